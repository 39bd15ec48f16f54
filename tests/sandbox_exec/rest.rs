//! Exec over REST: collected, streamed as NDJSON, over a WebSocket, and refused.

use super::*;

#[test]
fn rest_exec_collected_and_streamed() {
    // Declared first, so it runs after the server is killed and nothing recreates them.
    let cleanup = Cleanup::default();
    let server = Server::start();
    let api = Api::new(&server);
    ready_sandbox(
        &server,
        &cleanup,
        "box",
        &sandbox_yaml("box", SECOND_SERVICE),
    );

    // Exit codes, stdin, env, working dir, the service.
    let out = api.exec_ok(
        "box",
        json!({"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]}),
    );
    assert_eq!(out["exitCode"], 3, "{out}");
    assert_eq!(
        (out["stdout"].as_str(), out["stderr"].as_str()),
        (Some("out\n"), Some("err\n"))
    );
    assert_eq!(out["timedOut"], false);
    assert!(out["durationMs"].as_u64().is_some());
    let out = api.exec_ok(
        "box",
        json!({"command": ["sh", "-c", "cat; echo \"$GREETING\"; pwd"], "stdin": "from stdin\n",
               "env": [{"name": "GREETING", "value": "hi there"}], "workingDir": "/tmp"}),
    );
    assert_eq!(out["stdout"], "from stdin\nhi there\n/tmp\n", "{out}");
    let shell_host = api.exec_ok("box", json!({"command": ["hostname"]}))["stdout"].clone();
    let db_host =
        api.exec_ok("box", json!({"command": ["hostname"], "service": "db"}))["stdout"].clone();
    assert_ne!(shell_host, db_host, "service picks the container");
    let missing = api.exec_ok("box", json!({"command": ["no-such-program"]}));
    assert!(
        matches!(missing["exitCode"].as_i64(), Some(126 | 127)),
        "{missing}"
    );

    // Binary: every byte value through stdin and back, as base64.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(all_bytes());
    let out = api.exec_ok("box", json!({"command": ["cat"], "stdinBase64": b64}));
    assert_eq!(out["stdoutEncoding"], "base64");
    assert_eq!(bytes_of(&out, "stdout"), all_bytes());

    // 10 MB of output, collected and streamed.
    let ten_mb = json!({"command": ["sh", "-c", "head -c 10485760 /dev/zero | tr '\\0' 'x'"]});
    let out = api.exec_ok("box", ten_mb.clone());
    assert_eq!(out["stdout"].as_str().unwrap().len(), 10 * 1024 * 1024);
    assert!(out["stdout"].as_str().unwrap().bytes().all(|b| b == b'x'));
    let lines = api.exec_streamed("box", ten_mb);
    let streamed: usize = lines
        .iter()
        .filter(|(_, l)| l["stream"] == "stdout")
        .map(|(_, l)| l["data"].as_str().unwrap().len())
        .sum();
    assert_eq!(streamed, 10 * 1024 * 1024);
    assert!(lines.len() > 2, "10 MB came in {} lines", lines.len());
    assert_eq!(lines.last().unwrap().1["exit"]["code"], 0);

    // Streaming: the first chunk arrives while the command still runs.
    let lines = api.exec_streamed(
        "box",
        json!({"command": ["sh", "-c", "echo first; sleep 2; echo second >&2; exit 5"]}),
    );
    let (first_at, first) = &lines[0];
    assert_eq!(
        first,
        &json!({"stream": "stdout", "data": "first\n", "encoding": "utf-8"})
    );
    let (end_at, end) = lines.last().unwrap();
    assert_eq!(end["exit"]["code"], 5, "{lines:?}");
    assert!(
        *end_at - *first_at >= Duration::from_millis(1500),
        "the first chunk came at {first_at:?}, the end at {end_at:?}: it was not streamed"
    );
    assert!(
        lines
            .iter()
            .any(|(_, l)| l["stream"] == "stderr" && l["data"] == "second\n")
    );
    // Binary bytes stream as base64.
    let lines = api.exec_streamed("box", json!({"command": ["cat"], "stdinBase64": b64}));
    let mut got = Vec::new();
    for (_, l) in &lines {
        if l["stream"] == "stdout" {
            let data = l["data"].as_str().unwrap();
            match l["encoding"].as_str().unwrap() {
                "base64" => got.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap(),
                ),
                _ => got.extend_from_slice(data.as_bytes()),
            }
        }
    }
    assert_eq!(got, all_bytes());

    // Timeouts: killed, exit code 124, in both forms.
    let out = api.exec_ok(
        "box",
        json!({"command": ["sleep", "30"], "timeoutSeconds": 1}),
    );
    assert_eq!(
        (out["exitCode"].as_i64(), out["timedOut"].as_bool()),
        (Some(124), Some(true)),
        "{out}"
    );
    let lines = api.exec_streamed(
        "box",
        json!({"command": ["sleep", "30"], "timeoutSeconds": 1}),
    );
    assert_eq!(
        lines.last().unwrap().1["exit"]["timedOut"],
        true,
        "{lines:?}"
    );

    // 20 execs at once, each with its own answer.
    let answers: Vec<Value> = api.rt.block_on(async {
        let calls = (0..20).map(|i| {
            let http = api.http.clone();
            let url = api.sandbox_url("box", "/exec");
            async move {
                let r = http
                    .post(url)
                    .json(&json!({"command": ["sh", "-c", format!("sleep 0.5; echo {i}; exit {}", i % 7)]}))
                    .send()
                    .await
                    .unwrap();
                r.json::<Value>().await.unwrap()
            }
        });
        futures::future::join_all(calls).await
    });
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer["stdout"], format!("{i}\n"), "{answer}");
        assert_eq!(answer["exitCode"], i % 7, "{answer}");
    }

    // Errors: each a Status that says what to do.
    let (code, status) = api.exec("nope", json!({"command": ["ls"]}));
    assert_eq!(
        (code, status["reason"].as_str()),
        (404, Some("NotFound")),
        "{status}"
    );
    let (code, status) = api.exec("box", json!({"command": ["ls"], "service": "web"}));
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("shell, db"),
        "{status}"
    );
    let (code, status) = api.exec("box", json!({"command": []}));
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "command");
    let (code, status) = api.exec("box", json!({"command": ["ls"], "workdir": "/"}));
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("workdir"),
        "{status}"
    );
}

#[test]
fn websocket_exec_with_stdin() {
    // Declared first, so it runs after the server is killed and nothing recreates them.
    let cleanup = Cleanup::default();
    let server = Server::start();
    ready_sandbox(&server, &cleanup, "ws", &sandbox_yaml("ws", ""));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws_base = server.url.replace("http://", "ws://");
    let url = format!(
        "{ws_base}{NS_PATH}/sandboxes/ws/exec?command=sh&command=-c&command=cat%3B%20echo%20oops%20%3E%262%3B%20exit%203&stdin=true"
    );
    let key = server.key();
    let (stdout, stderr, status) = rt.block_on(async {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {key}").parse().unwrap());
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v5.channel.k8s.io".parse().unwrap(),
        );
        let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "v5.channel.k8s.io"
        );
        let mut input = vec![0u8];
        input.extend_from_slice(b"hello over a websocket\n");
        socket.send(Message::Binary(input.into())).await.unwrap();
        socket
            .send(Message::Binary(vec![255u8, 0].into()))
            .await
            .unwrap();
        let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), Value::Null);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, socket.next()).await {
            match message.unwrap() {
                Message::Binary(data) => match data[0] {
                    1 => stdout.extend_from_slice(&data[1..]),
                    2 => stderr.extend_from_slice(&data[1..]),
                    3 => status = serde_json::from_slice(&data[1..]).unwrap(),
                    other => panic!("unexpected channel {other}"),
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
        (stdout, stderr, status)
    });
    assert_eq!(String::from_utf8_lossy(&stdout), "hello over a websocket\n");
    assert_eq!(String::from_utf8_lossy(&stderr), "oops\n");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    // A plain GET without the upgrade says what to do.
    let out = server
        .curl()
        .args([
            "-s",
            &format!("{}{NS_PATH}/sandboxes/ws/exec?command=ls", server.url),
        ])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["code"], 400, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("POST"),
        "{status}"
    );
}

#[test]
fn a_sandbox_that_is_not_ready_says_to_wait() {
    let cleanup = Cleanup::default();
    let server = Server::start();
    let api = Api::new(&server);
    // Never healthy: it stays Starting.
    let yaml = format!(
        "{}      healthCheck:\n        exec: [\"false\"]\n        intervalSeconds: 1\n",
        sandbox_yaml("slow", "")
    );
    let file = server.dir.join("slow.yaml");
    std::fs::write(&file, yaml).unwrap();
    server.cli_ok(&["apply", "-f", file.to_str().unwrap()]);
    let out = server.cli(&["get", "sandbox", "slow", "-o", "json"]);
    cleanup.track(&serde_json::from_slice(&out.stdout).unwrap());
    let (code, status) = api.exec("slow", json!({"command": ["true"]}));
    assert_eq!(code, 409, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("orcaops get sandbox slow -w"),
        "{status}"
    );
    let out = server.cli(&["exec", "slow", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not Ready yet"),
        "{out:?}"
    );
}
