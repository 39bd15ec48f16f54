//! Exec and files in sandboxes, end to end: a real `orcaops serve`, real Docker, a
//! Sandbox of busybox `sleep infinity`, driven over REST (collected, NDJSON-streamed,
//! WebSocket) and through the CLI (`exec`, `exec -i`, `cp`, `stop`, `start`).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

const NS_PATH: &str = "/apis/orcaops.dev/v1alpha1/namespaces/default";

fn sandbox_yaml(name: &str, extra_service: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Sandbox\nmetadata:\n  name: {name}\nspec:\n  services:\n    - name: shell\n      image: {IMAGE}\n      command: [\"sleep\", \"infinity\"]\n{extra_service}"
    )
}

const SECOND_SERVICE: &str =
    "    - name: db\n      image: busybox:latest\n      command: [\"sleep\", \"infinity\"]\n";

struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
            url: server.url.clone(),
        }
    }

    fn sandbox_url(&self, name: &str, sub: &str) -> String {
        format!("{}{NS_PATH}/sandboxes/{name}{sub}", self.url)
    }

    /// POST .../exec with `body`; (HTTP status, JSON answer).
    fn exec(&self, name: &str, body: Value) -> (u16, Value) {
        self.rt.block_on(async {
            let response = self
                .http
                .post(self.sandbox_url(name, "/exec"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            (code, response.json().await.unwrap())
        })
    }

    fn exec_ok(&self, name: &str, body: Value) -> Value {
        let (code, answer) = self.exec(name, body);
        assert_eq!(code, 200, "{answer}");
        answer
    }

    /// POST .../exec?stream=true: each line as it came, with when it came.
    fn exec_streamed(&self, name: &str, body: Value) -> Vec<(Duration, Value)> {
        self.rt.block_on(async {
            let started = Instant::now();
            let response = self
                .http
                .post(self.sandbox_url(name, "/exec?stream=true"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["content-type"],
                "application/x-ndjson",
                "the streamed exec is NDJSON"
            );
            let mut chunks = response.bytes_stream();
            let mut buf = Vec::new();
            let mut lines = Vec::new();
            while let Some(chunk) = chunks.next().await {
                buf.extend_from_slice(&chunk.unwrap());
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    lines.push((started.elapsed(), serde_json::from_slice(&line).unwrap()));
                }
            }
            lines
        })
    }

    fn put_file(&self, name: &str, query: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        self.rt.block_on(async {
            let response = self
                .http
                .put(self.sandbox_url(name, &format!("/files?{query}")))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            (code, response.json().await.unwrap())
        })
    }

    /// GET .../files: (status, headers, body).
    fn get_file(&self, name: &str, query: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        self.rt.block_on(async {
            let response = self
                .http
                .get(self.sandbox_url(name, &format!("/files?{query}")))
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            let headers = response.headers().clone();
            (code, headers, response.bytes().await.unwrap().to_vec())
        })
    }
}

/// Removes the containers of the sandboxes a test made, when the test ends (passed or
/// not): the server is killed at the end of a test, and `sleep infinity` would
/// otherwise keep running.
#[derive(Default)]
struct Cleanup(std::cell::RefCell<Vec<String>>);

impl Cleanup {
    fn track(&self, sandbox: &Value) {
        let uid = sandbox["metadata"]["uid"].as_str().expect("a uid");
        self.0.borrow_mut().push(uid.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Twice: a container the killed server was creating can appear a moment later.
        self.remove();
        std::thread::sleep(Duration::from_millis(500));
        self.remove();
    }
}

impl Cleanup {
    fn remove(&self) {
        for uid in self.0.borrow().iter() {
            let ids = containers_with_label("orcaops.dev/uid", uid);
            if !ids.is_empty() {
                Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .ok();
            }
        }
    }
}

/// Applies a sandbox and waits until it is Ready; returns it.
fn ready_sandbox(server: &Server, cleanup: &Cleanup, name: &str, yaml: &str) -> Value {
    let file = server.dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    server.cli_ok(&["apply", "-f", file.to_str().unwrap()]);
    let out = server.cli(&["get", "sandbox", name, "-o", "json"]);
    cleanup.track(&serde_json::from_slice(&out.stdout).unwrap());
    wait_sandbox(server, name, "Ready", Duration::from_secs(60))
}

fn wait_sandbox(server: &Server, name: &str, phase: &str, timeout: Duration) -> Value {
    let mut last = Value::Null;
    let found = poll(timeout, || {
        let out = server.cli(&["get", "sandbox", name, "-o", "json"]);
        let obj: Value = serde_json::from_slice(&out.stdout).ok()?;
        last = obj.clone();
        (obj.pointer("/status/phase").and_then(Value::as_str) == Some(phase)).then_some(obj)
    });
    found.unwrap_or_else(|| {
        panic!(
            "sandbox {name} never reached {phase} within {timeout:?}; last seen:\n{}\nserver log tail:\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            tail(&server.log(), 60)
        )
    })
}

fn bytes_of(answer: &Value, stream: &str) -> Vec<u8> {
    use base64::Engine;
    let data = answer[stream].as_str().unwrap();
    match answer[format!("{stream}Encoding")].as_str().unwrap() {
        "utf-8" => data.as_bytes().to_vec(),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
        other => panic!("unknown encoding {other}"),
    }
}

fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

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
fn files_up_and_down() {
    // Declared first, so it runs after the server is killed and nothing recreates them.
    let cleanup = Cleanup::default();
    let server = Server::start();
    let api = Api::new(&server);
    ready_sandbox(&server, &cleanup, "files", &sandbox_yaml("files", ""));

    // Every byte value, into a directory that does not exist yet, with a mode.
    let (code, answer) = api.put_file(
        "files",
        "path=/data/new/all.bin&mode=0600",
        "application/octet-stream",
        all_bytes(),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["bytes"], 256);
    let (code, headers, body) = api.get_file("files", "path=/data/new/all.bin");
    assert_eq!(code, 200);
    assert_eq!(body, all_bytes());
    assert_eq!(headers["content-length"], "256");
    assert_eq!(headers["x-orcaops-path-kind"], "file");
    assert_eq!(
        headers["x-checksum-sha256"],
        answer["sha256"].as_str().unwrap()
    );
    let ls = api.exec_ok(
        "files",
        json!({"command": ["ls", "-l", "/data/new/all.bin"]}),
    );
    assert!(
        ls["stdout"].as_str().unwrap().starts_with("-rw-------"),
        "{ls}"
    );
    // What an exec writes, a download reads, and the reverse.
    api.exec_ok(
        "files",
        json!({"command": ["sh", "-c", "mkdir -p /out/sub && echo made > /out/sub/f"]}),
    );
    let cat = api.exec_ok(
        "files",
        json!({"command": ["od", "-An", "-tu1", "/data/new/all.bin"]}),
    );
    assert!(
        cat["stdout"].as_str().unwrap().trim_end().ends_with("255"),
        "{cat}"
    );

    // A directory comes as a tar with its name at the root.
    let (code, headers, tar) = api.get_file("files", "path=/out");
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "application/x-tar");
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut found = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).ok();
        found.push((path, text));
    }
    assert!(
        found.contains(&("out/sub/f".to_string(), "made\n".to_string())),
        "{found:?}"
    );

    // A tar upload is extracted into the directory, which is made if missing.
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in [("a.txt", &b"a\n"[..]), ("deep/b.bin", &all_bytes()[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data).unwrap();
    }
    let (code, answer) = api.put_file(
        "files",
        "path=/unpacked/here",
        "application/x-tar",
        builder.into_inner().unwrap(),
    );
    assert_eq!(code, 200, "{answer}");
    let (_, _, b) = api.get_file("files", "path=/unpacked/here/deep/b.bin");
    assert_eq!(b, all_bytes());

    // Errors.
    for (query, code, field) in [
        ("path=relative/x", 422, Some("path")),
        ("path=/tmp/../etc/passwd", 422, Some("path")),
        ("path=/does/not/exist", 404, None),
    ] {
        let (got, _, body) = api.get_file("files", query);
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, code, "{query}: {status}");
        assert_eq!(status["kind"], "Status");
        if let Some(field) = field {
            assert_eq!(status["details"]["causes"][0]["field"], field, "{status}");
        }
    }
    let (code, status) = api.put_file("files", "path=/x", "text/plain", b"x".to_vec());
    assert_eq!(code, 415, "{status}");
    // Over the 512 MiB limit: refused from its Content-Length, before the body is sent,
    // and the connection is closed.
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "PUT {NS_PATH}/sandboxes/files/files?path=/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\nabc",
        600u64 * 1024 * 1024
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut socket, &mut answer).ok();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("512 MiB"), "{answer}");
    let (code, status) = api.put_file("nope", "path=/x", "application/octet-stream", b"x".to_vec());
    assert_eq!(code, 404, "{status}");
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
    let (stdout, stderr, status) = rt.block_on(async {
        let mut request = url.into_client_request().unwrap();
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
    let out = Command::new("curl")
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

/// Runs the CLI with `input` on stdin.
fn cli_with_stdin(server: &Server, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("ORCAOPS_SERVER", &server.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn cli_exec_cp_stop_and_start() {
    // Declared first, so it runs after the server is killed and nothing recreates them.
    let cleanup = Cleanup::default();
    let server = Server::start();
    ready_sandbox(&server, &cleanup, "cli", &sandbox_yaml("cli", ""));

    // The command's exit code, its stdout and stderr apart.
    let out = server.cli(&[
        "exec",
        "cli",
        "--",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; exit 42",
    ]);
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");
    let out = server.cli(&[
        "exec",
        "cli",
        "-e",
        "A=b c",
        "-w",
        "/tmp",
        "--",
        "sh",
        "-c",
        "echo $A; pwd",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b c\n/tmp\n");
    let out = server.cli(&["exec", "cli", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(out.status.code(), Some(124));
    // -i: piped stdin reaches the command, and its end is the command's end of input.
    let out = cli_with_stdin(
        &server,
        &["exec", "-i", "cli", "--", "sh", "-c", "wc -c; exit 9"],
        &[7u8; 100_000],
    );
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100000");
    // Binary output comes out as bytes.
    let out = cli_with_stdin(&server, &["exec", "-i", "cli", "--", "cat"], &all_bytes());
    assert_eq!(out.stdout, all_bytes());

    // cp, both ways, a file and a directory.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(src.join("sub/b.bin"), all_bytes()).unwrap();
    let file = src.join("a.txt");
    server.cli_ok(&["cp", file.to_str().unwrap(), "cli:/work/a.txt"]);
    server.cli_ok(&["cp", src.to_str().unwrap(), "cli:/work"]);
    let out = server.cli(&[
        "exec",
        "cli",
        "--",
        "sh",
        "-c",
        "cat /work/a.txt /work/src/a.txt; wc -c < /work/src/sub/b.bin",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alpha\nalpha\n256\n");
    let back = tmp.path().join("back");
    server.cli_ok(&["cp", "cli:/work/src", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("sub/b.bin")).unwrap(), all_bytes());
    assert_eq!(
        std::fs::read_to_string(back.join("a.txt")).unwrap(),
        "alpha\n"
    );
    server.cli_ok(&["cp", "cli:/work/a.txt", tmp.path().to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("a.txt")).unwrap(),
        "alpha\n"
    );
    // Errors name the path and what to do.
    let out = server.cli(&["cp", "cli:/nope", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nope"),
        "{out:?}"
    );
    let out = server.cli(&["cp", "cli:relative", "x"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cli:/relative"),
        "{out:?}"
    );

    // Errors of exec: an unknown sandbox or service, a server that is not there.
    let out = server.cli(&["exec", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = server.cli(&["exec", "cli", "--service", "web", "--", "true"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("its services are: shell"),
        "{out:?}"
    );
    for interactive in [false, true] {
        let mut args = vec!["--server", "http://127.0.0.1:9", "exec"];
        if interactive {
            args.push("-i");
        }
        args.extend(["cli", "--", "true"]);
        let out = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{out:?}");
    }

    // Stop: exec is refused with how to start it; start: the files are still there.
    server.cli_ok(&["stop", "sandbox", "cli"]);
    let out = server.cli(&["exec", "cli", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("orcaops start sandbox cli"),
        "{out:?}"
    );
    wait_sandbox(&server, "cli", "Stopped", Duration::from_secs(60));
    server.cli_ok(&["start", "sandbox", "cli"]);
    wait_sandbox(&server, "cli", "Ready", Duration::from_secs(60));
    let out = server.cli(&["exec", "cli", "--", "cat", "/work/a.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alpha\n");
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
