//! Hostile requests against a real `orcaops serve`: what a web page the user visits can
//! send (form and text/plain writes, foreign Origins on requests and WebSockets, DNS
//! rebinding through the Host header), path parameters that are not names, and inputs
//! that used to be answered with 500. One test per finding of issue 11 (sections 5, 6).
//!
//! Requests go over a raw TCP connection where a client library would rewrite them (a
//! `..` segment, a Host header of our choosing).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{BIN, IMAGE, Server, free_port, job_yaml, require_docker, wait_until};
use serde_json::{Value, json};

const BASE: &str = "/apis/orcaops.dev/v1alpha1";

/// A request: method, path, headers, body.
type Call<'a> = (&'a str, String, &'a [(&'a str, &'a str)], Vec<u8>);

/// One answer: status code, raw headers (lowercase names), body.
struct Answer {
    code: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.code, self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    /// A Kubernetes Status with this code, whose message mentions `says`.
    fn status(&self, code: u16, says: &str) -> Value {
        assert_eq!(self.code, code, "{}", self.body);
        let status = self.json();
        assert_eq!(status["kind"], "Status", "{status}");
        assert_eq!(status["code"], code, "{status}");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{says:?} not in {message:?}");
        status
    }
}

/// The server admin key of the server on `port`, found as the CLI finds it: the server
/// tells a loopback caller where its key file is.
fn admin_key(port: u16) -> String {
    static KEYS: std::sync::Mutex<Vec<(u16, String)>> = std::sync::Mutex::new(Vec::new());
    if let Some((_, key)) = KEYS.lock().unwrap().iter().find(|(p, _)| *p == port) {
        return key.clone();
    }
    let found = raw(
        port,
        "GET",
        "/.well-known/orcaops/local-admin-key",
        &[],
        b"",
    )
    .json();
    let path = found["path"]
        .as_str()
        .expect("the server says where its key is");
    let key = std::fs::read_to_string(path).unwrap().trim().to_string();
    KEYS.lock().unwrap().push((port, key.clone()));
    key
}

/// Sends one request as written, with the server admin key unless the request names
/// an `Authorization` of its own, and reads the answer.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    if headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        return raw(port, method, path, headers, body);
    }
    let auth = format!("Bearer {}", admin_key(port));
    let mut with_key = headers.to_vec();
    with_key.push(("Authorization", &auth));
    raw(port, method, path, &with_key, body)
}

/// Sends one request exactly as written (Host defaults to 127.0.0.1:PORT) and reads the
/// answer.
fn raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = head.split_once("\r\n").map_or("", |h| h.1).to_string();
    let chunked = headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        code,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

fn workflow(name: &str) -> String {
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": { "name": name },
        // Scheduled, and the scheduler is not built yet: it never runs, and the Workflow
        // controller leaves the status of a Workflow that never ran alone.
        "spec": { "schedule": "0 3 1 1 *", "jobs": [{ "name": "a", "job": { "image": IMAGE, "steps": [{ "name": "s", "run": "true" }] } }] },
    })
    .to_string()
}

fn workflows_in(port: u16, ns: &str) -> usize {
    let answer = http(
        port,
        "GET",
        &format!("{BASE}/namespaces/{ns}/workflows"),
        &[],
        b"",
    );
    assert_eq!(answer.code, 200, "{}", answer.body);
    answer.json()["items"].as_array().unwrap().len()
}

/// `orcaops serve` with extra flags (`--cors-origin`, `--allowed-host`), killed on drop.
struct FlaggedServer {
    port: u16,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl FlaggedServer {
    fn start(extra: &[&str]) -> FlaggedServer {
        require_docker();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("folder");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let child = serve_command(&dir, &tmp.path().join("data"), port, extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the orcaops binary starts");
        let server = FlaggedServer {
            port,
            child,
            _tmp: tmp,
        };
        wait_until(Duration::from_secs(20), "the server answers", || {
            TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| http(port, "GET", "/healthz", &[], b""))
                .filter(|a| a.code == 200)
        });
        server
    }
}

fn serve_command(dir: &Path, data_dir: &Path, port: u16, extra: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--dir"])
        .arg(dir)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra);
    command
}

impl Drop for FlaggedServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

// --- Section 5: requests from a browser ---------------------------------------------

/// A form or text/plain body is what a page can post cross-site without a preflight.
#[test]
fn text_plain_form_and_untyped_writes_are_refused_with_415() {
    let server = Server::start();
    let port = server.port;
    let path = format!("{BASE}/namespaces/default/workflows");
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=xyz"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| vec![("Content-Type", c)])
            .unwrap_or_default();
        let answer = http(port, "POST", &path, &headers, workflow("w").as_bytes());
        let status = answer.status(415, "application/json, application/yaml");
        assert_eq!(status["reason"], "UnsupportedMediaType");
        assert_eq!(status["details"]["causes"][0]["field"], "Content-Type");
    }
    assert_eq!(workflows_in(port, "default"), 0, "nothing was created");
    // PUT and the exec route are guarded the same way; a form is no exec body.
    let answer = http(
        port,
        "PUT",
        &format!("{path}/w"),
        &[("Content-Type", "text/plain")],
        workflow("w").as_bytes(),
    );
    answer.status(415, "application/json");
    let answer = http(
        port,
        "POST",
        &format!("{BASE}/namespaces/default/sandboxes/box/exec"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        br#"{"command":["id"]}"#,
    );
    answer.status(415, "application/json");
    // What clients send still works: JSON, YAML, and body-less POSTs.
    let answer = http(
        port,
        "POST",
        &path,
        &[("Content-Type", "application/yaml")],
        workflow("w").as_bytes(),
    );
    assert_eq!(answer.code, 201, "{}", answer.body);
    assert_eq!(workflows_in(port, "default"), 1);
    // Objects named like a subresource are objects: their writes take object types.
    for name in ["files", "exec"] {
        let answer = http(
            port,
            "PATCH",
            &format!("{path}/{name}"),
            &[("Content-Type", "application/apply-patch+yaml")],
            workflow(name).as_bytes(),
        );
        assert_eq!(answer.code, 201, "{name}: {}", answer.body);
        let answer = http(
            port,
            "PUT",
            &format!("{path}/{name}"),
            &[("Content-Type", "application/json")],
            workflow(name).as_bytes(),
        );
        assert_eq!(answer.code, 200, "{name}: {}", answer.body);
    }
}

#[test]
fn a_foreign_origin_is_refused_on_writes_and_reads_and_our_own_passes() {
    let server = Server::start();
    let port = server.port;
    let path = format!("{BASE}/namespaces/default/workflows");
    let evil = [
        ("Origin", "https://evil.example"),
        ("Content-Type", "application/json"),
    ];
    let answer = http(port, "POST", &path, &evil, workflow("w").as_bytes());
    let status = answer.status(403, "--cors-origin https://evil.example");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(status["details"]["causes"][0]["field"], "Origin");
    assert_eq!(workflows_in(port, "default"), 0, "nothing was created");
    // Reads too: a page must not read logs or objects cross-site either.
    for get in [
        path.clone(),
        format!("{BASE}/namespaces/default/jobs/j/log"),
    ] {
        http(port, "GET", &get, &evil[..1], b"").status(403, "evil.example");
    }
    // `null` (a sandboxed frame, a file:// page) is foreign.
    let answer = http(
        port,
        "POST",
        &path,
        &[("Origin", "null"), ("Content-Type", "application/json")],
        workflow("w").as_bytes(),
    );
    answer.status(403, "Origin");
    // The server's own origin is not cross-site.
    let own = format!("http://127.0.0.1:{port}");
    let answer = http(
        port,
        "POST",
        &path,
        &[("Origin", &own), ("Content-Type", "application/json")],
        workflow("w").as_bytes(),
    );
    assert_eq!(answer.code, 201, "{}", answer.body);
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

/// A WebSocket is not subject to CORS at all: the Origin check is all there is.
#[test]
fn a_websocket_exec_from_a_foreign_origin_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::{Error, http::HeaderValue};
    let server = Server::start();
    let url = format!(
        "ws://127.0.0.1:{}{BASE}/namespaces/default/sandboxes/box/exec?command=id",
        server.port
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bearer = format!("Bearer {}", server.key());
    let code_with = |origin: Option<&str>| {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        request
            .headers_mut()
            .insert("Authorization", HeaderValue::from_str(&bearer).unwrap());
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", HeaderValue::from_str(origin).unwrap());
        }
        match rt.block_on(tokio_tungstenite::connect_async(request)) {
            Err(Error::Http(response)) => {
                let body = response.body().clone().unwrap_or_default();
                (
                    response.status().as_u16(),
                    String::from_utf8_lossy(&body).to_string(),
                )
            }
            Err(e) => panic!("the handshake failed otherwise: {e}"),
            Ok(_) => panic!("the upgrade was accepted for a sandbox that does not exist"),
        }
    };
    let (code, body) = code_with(Some("https://evil.example"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--cors-origin"), "{body}");
    // Without a foreign Origin, the request reaches the handler: no such sandbox.
    let (code, body) = code_with(None);
    assert_eq!(code, 404, "{body}");
    let (code, body) = code_with(Some(&format!("http://127.0.0.1:{}", server.port)));
    assert_eq!(code, 404, "{body}");
}

#[test]
fn an_origin_listed_with_cors_origin_gets_preflights_and_cors_headers() {
    let server = FlaggedServer::start(&["--cors-origin", "http://localhost:3000"]);
    let port = server.port;
    let path = format!("{BASE}/namespaces/default/workflows");
    let preflight = http(
        port,
        "OPTIONS",
        &path,
        &[
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(preflight.code, 204, "{}", preflight.body);
    assert_eq!(
        preflight.header("access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
    let methods = preflight.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("POST") && methods.contains("PATCH"),
        "{methods}"
    );
    assert_eq!(
        preflight.header("access-control-allow-headers").as_deref(),
        Some("content-type")
    );
    let answer = http(
        port,
        "POST",
        &path,
        &[
            ("Origin", "http://localhost:3000"),
            ("Content-Type", "application/json"),
        ],
        workflow("w").as_bytes(),
    );
    assert_eq!(answer.code, 201, "{}", answer.body);
    assert_eq!(
        answer.header("access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
    assert!(answer.header("vary").unwrap().contains("Origin"));
    // Another origin is still refused, preflight or not.
    let other = http(
        port,
        "OPTIONS",
        &path,
        &[
            ("Origin", "http://localhost:4000"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    other.status(403, "--cors-origin http://localhost:4000");
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn a_host_the_server_does_not_answer_to_is_refused_dns_rebinding() {
    let server = FlaggedServer::start(&["--allowed-host", "orcaops.test"]);
    let port = server.port;
    let path = format!("{BASE}/namespaces/default/workflows");
    let rebound = format!("evil.example:{port}");
    let answer = http(port, "GET", &path, &[("Host", &rebound)], b"");
    let status = answer.status(403, "--allowed-host evil.example");
    assert_eq!(status["details"]["causes"][0]["field"], "Host");
    // A write through the rebound name is refused before it is read.
    let answer = http(
        port,
        "POST",
        &path,
        &[("Host", &rebound), ("Content-Type", "application/json")],
        workflow("w").as_bytes(),
    );
    answer.status(403, "DNS rebinding");
    // MCP is behind the same guard.
    let answer = http(
        port,
        "POST",
        "/mcp",
        &[("Host", &rebound), ("Content-Type", "application/json")],
        b"{}",
    );
    answer.status(403, "--allowed-host");
    assert_eq!(workflows_in(port, "default"), 0);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("orcaops.test:{port}"),
        "ORCAOPS.TEST".to_string(),
    ] {
        let answer = http(port, "GET", &path, &[("Host", &host)], b"");
        assert_eq!(answer.code, 200, "{host}: {}", answer.body);
    }
}

#[test]
fn bad_flag_values_stop_serve_with_a_message_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, value, says) in [
        ("--cors-origin", "*", "every web page"),
        ("--cors-origin", "localhost:3000", "scheme://host[:port]"),
        ("--allowed-host", "http://x", "without scheme or port"),
    ] {
        let out = serve_command(
            tmp.path(),
            &tmp.path().join("data"),
            free_port(),
            &[flag, value],
        )
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag} {value}: a usage error");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
    }
}

// --- Section 6: one validation for every route ----------------------------------------

/// Each bad form as a namespace and as a name, on every verb: the same 400, naming the
/// parameter, before anything reaches the store.
#[test]
fn bad_namespaces_and_names_are_refused_on_every_route_and_verb() {
    let server = Server::start();
    let port = server.port;
    let long = "a".repeat(300);
    let bad = ["a%2Fb", "..", "Upper", "a%00b", long.as_str(), "a_b", "-a"];
    let json = [("Content-Type", "application/json")];
    let merge = [("Content-Type", "application/merge-patch+json")];
    for value in bad {
        let ns_routes: Vec<Call> = vec![
            (
                "POST",
                format!("{BASE}/namespaces/{value}/workflows"),
                &json,
                workflow("w").into_bytes(),
            ),
            (
                "GET",
                format!("{BASE}/namespaces/{value}/workflows"),
                &[],
                vec![],
            ),
            (
                "GET",
                format!("{BASE}/namespaces/{value}/workflows/w"),
                &[],
                vec![],
            ),
            (
                "PUT",
                format!("{BASE}/namespaces/{value}/workflows/w"),
                &json,
                workflow("w").into_bytes(),
            ),
            (
                "PATCH",
                format!("{BASE}/namespaces/{value}/workflows/w"),
                &merge,
                b"{}".to_vec(),
            ),
            (
                "DELETE",
                format!("{BASE}/namespaces/{value}/workflows/w"),
                &[],
                vec![],
            ),
            (
                "GET",
                format!("{BASE}/namespaces/{value}/jobs/j/log"),
                &[],
                vec![],
            ),
            (
                "POST",
                format!("{BASE}/namespaces/{value}/sandboxes/box/stop"),
                &[],
                vec![],
            ),
            (
                "GET",
                format!("/api/v1/namespaces/{value}/events"),
                &[],
                vec![],
            ),
        ];
        for (method, path, headers, body) in &ns_routes {
            let answer = http(port, method, path, headers, body);
            let status = answer.status(400, "DNS-1123");
            assert_eq!(
                status["details"]["causes"][0]["field"], "namespace",
                "{method} {path}"
            );
        }
        let name_routes: Vec<Call> = vec![
            (
                "GET",
                format!("{BASE}/namespaces/default/workflows/{value}"),
                &[],
                vec![],
            ),
            (
                "PATCH",
                format!("{BASE}/namespaces/default/workflows/{value}"),
                &merge,
                b"{}".to_vec(),
            ),
            ("DELETE", format!("{BASE}/workspaces/{value}"), &[], vec![]),
            (
                "PUT",
                format!("{BASE}/namespaces/default/sandboxes/{value}/files?path=/x"),
                &[("Content-Type", "application/octet-stream")],
                b"x".to_vec(),
            ),
            (
                "POST",
                format!("{BASE}/namespaces/default/jobs/{value}/cancel"),
                &[],
                vec![],
            ),
        ];
        for (method, path, headers, body) in &name_routes {
            let answer = http(port, method, path, headers, body);
            let status = answer.status(400, "DNS-1123");
            assert_eq!(
                status["details"]["causes"][0]["field"], "name",
                "{method} {path}"
            );
        }
    }
    // A NUL shown in the message is escaped, not sent raw.
    let answer = http(
        port,
        "GET",
        &format!("{BASE}/namespaces/a%00b/workflows"),
        &[],
        b"",
    );
    assert!(answer.body.contains("\\0"), "{}", answer.body);
    // The good form still works on both POST and PATCH.
    let answer = http(
        port,
        "POST",
        &format!("{BASE}/namespaces/team-a/workflows"),
        &json,
        workflow("w").as_bytes(),
    );
    assert_eq!(answer.code, 201, "{}", answer.body);
    let answer = http(
        port,
        "PATCH",
        &format!("{BASE}/namespaces/team-a/workflows/w"),
        &merge,
        br#"{"metadata":{"labels":{"a":"b"}}}"#,
    );
    assert_eq!(answer.code, 200, "{}", answer.body);
    let all = http(port, "GET", &format!("{BASE}/workflows"), &[], b"");
    assert_eq!(all.json()["items"].as_array().unwrap().len(), 1);
}

/// `artifacts/.` opened the artifact directory itself and answered 500.
#[test]
fn an_artifact_path_segment_that_is_not_a_name_is_400_not_500() {
    let server = Server::start();
    server.write(
        "art.yaml",
        &job_yaml(
            "art",
            "  steps:\n    - name: s\n      run: echo hi > /tmp/out.txt\n  artifacts:\n    - name: out.txt\n      path: /tmp/out.txt\n",
        ),
    );
    server.wait_phase("art", "Succeeded", Duration::from_secs(90));
    let port = server.port;
    let artifacts = format!("{BASE}/namespaces/default/jobs/art/artifacts");
    let good = http(port, "GET", &format!("{artifacts}/out.txt"), &[], b"");
    assert_eq!(good.code, 200, "{}", good.body);
    assert_eq!(good.body, "hi\n");
    for bad in [".", "..", "a%2Fb", "%2E", "a%00"] {
        let answer = http(port, "GET", &format!("{artifacts}/{bad}"), &[], b"");
        let status = answer.status(400, "artifact name");
        assert_eq!(status["details"]["causes"][0]["field"], "artifact", "{bad}");
    }
    // An empty segment is another route (none): 404, not 500.
    let answer = http(port, "GET", &format!("{artifacts}/"), &[], b"");
    answer.status(404, "");
}

/// A garbage tar went to Docker, whose refusal was answered 500; and a NUL in an exec's
/// command reached the runtime too.
#[test]
fn a_garbage_tar_upload_is_400_and_a_nul_or_huge_timeout_in_an_exec_is_422() {
    let server = Server::start();
    server.write(
        "box.yaml",
        &format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Sandbox\nmetadata:\n  name: box\nspec:\n  services:\n    - name: shell\n      image: {IMAGE}\n      command: [\"sleep\", \"infinity\"]\n"
        ),
    );
    let ready = wait_until(Duration::from_secs(90), "the sandbox is Ready", || {
        let out = server.cli(&["get", "sandbox", "box", "-o", "json"]);
        let obj: Value = serde_json::from_slice(&out.stdout).ok()?;
        (obj.pointer("/status/phase").and_then(Value::as_str) == Some("Ready")).then_some(obj)
    });
    let uid = ready["metadata"]["uid"].as_str().unwrap().to_string();
    let port = server.port;
    let files = format!("{BASE}/namespaces/default/sandboxes/box/files?path=/tmp/x");
    for garbage in [
        b"this is not a tar archive".to_vec(),
        vec![0xab; 4096],
        vec![],
    ] {
        let answer = http(
            port,
            "PUT",
            &files,
            &[("Content-Type", "application/x-tar")],
            &garbage,
        );
        let status = answer.status(400, "not a tar archive");
        assert_eq!(status["details"]["causes"][0]["field"], "body");
    }
    // A real tar still goes in.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "a.txt", &b"hey"[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let answer = http(
        port,
        "PUT",
        &files,
        &[("Content-Type", "application/x-tar")],
        &tar,
    );
    assert_eq!(answer.code, 200, "{}", answer.body);
    let exec = format!("{BASE}/namespaces/default/sandboxes/box/exec");
    for (body, field) in [
        (json!({"command": ["echo", "a\u{0}b"]}), "command[1]"),
        (
            json!({"command": ["env"], "env": [{"name": "A", "value": "x\u{0}"}]}),
            "env[0].value",
        ),
        (
            json!({"command": ["pwd"], "workingDir": "/tmp\u{0}"}),
            "workingDir",
        ),
    ] {
        let answer = http(
            port,
            "POST",
            &exec,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        let status = answer.status(422, "NUL");
        assert_eq!(status["details"]["causes"][0]["field"], field);
    }
    // A timeout near u64::MAX overflowed the deadline computed from it (a panic, and the
    // connection dropped without an answer).
    let answer = http(
        port,
        "POST",
        &format!("{exec}?stream=true"),
        &[("Content-Type", "application/json")],
        br#"{"command":["true"],"timeoutSeconds":18446744073709551615}"#,
    );
    let status = answer.status(422, "at most");
    assert_eq!(status["details"]["causes"][0]["field"], "timeoutSeconds");
    let answer = http(
        port,
        "POST",
        &exec,
        &[("Content-Type", "application/json")],
        br#"{"command":["cat","/tmp/x/a.txt"]}"#,
    );
    assert_eq!(answer.code, 200, "{}", answer.body);
    assert_eq!(answer.json()["stdout"], "hey");
    drop(server);
    let ids = common::containers_with_label("orcaops.dev/uid", &uid);
    if !ids.is_empty() {
        Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .stdout(Stdio::null())
            .status()
            .ok();
    }
}

/// A watch's `timeoutSeconds` near u64::MAX overflowed its deadline: the handler
/// panicked and the connection closed without an answer.
#[test]
fn a_huge_watch_timeout_is_400_not_a_dropped_connection() {
    let server = Server::start();
    let answer = http(
        server.port,
        "GET",
        &format!(
            "{BASE}/namespaces/default/workflows?watch=true&timeoutSeconds=18446744073709551615"
        ),
        &[],
        b"",
    );
    answer.status(400, "timeoutSeconds");
    // A sane one still ends the watch on time.
    let answer = http(
        server.port,
        "GET",
        &format!("{BASE}/namespaces/default/workflows?watch=true&timeoutSeconds=1"),
        &[],
        b"",
    );
    assert_eq!(answer.code, 200, "{}", answer.body);
}

/// A patch stored `ownerReferences: [5]` and a create dropped owners without a word;
/// finalizers of the wrong shape were dropped. Each is refused with the field named,
/// and the stored object is left as it was.
#[test]
fn malformed_owner_references_and_finalizers_are_422_and_change_nothing() {
    let server = Server::start();
    let port = server.port;
    let list = format!("{BASE}/namespaces/default/workflows");
    let object = format!("{list}/owned");
    let json_body = [("Content-Type", "application/json")];
    let merge = [("Content-Type", "application/merge-patch+json")];

    // Owners and finalizers given at creation are kept.
    let mut created: Value = serde_json::from_str(&workflow("owned")).unwrap();
    created["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "orcaops.dev/v1alpha1", "kind": "Workflow", "name": "parent",
        "uid": "0b8f2c1e-0000-4000-8000-000000000001", "controller": true
    }]);
    created["metadata"]["finalizers"] = json!(["example.com/keep"]);
    let answer = http(
        port,
        "POST",
        &list,
        &json_body,
        created.to_string().as_bytes(),
    );
    assert_eq!(answer.code, 201, "{}", answer.body);
    let stored = answer.json();
    assert_eq!(stored["metadata"]["ownerReferences"][0]["name"], "parent");
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!(["example.com/keep"])
    );

    let bad_patches = [
        (
            json!({"metadata": {"ownerReferences": [5]}}),
            "metadata.ownerReferences[0]",
        ),
        (
            json!({"metadata": {"ownerReferences": 5}}),
            "metadata.ownerReferences",
        ),
        (
            json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n"}]}}),
            "metadata.ownerReferences[0].uid",
        ),
        (
            json!({"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n", "uid": "u", "controller": "yes"}]}}),
            "metadata.ownerReferences[0].controller",
        ),
        (
            json!({"metadata": {"finalizers": [7]}}),
            "metadata.finalizers[0]",
        ),
        (
            json!({"metadata": {"finalizers": "x"}}),
            "metadata.finalizers",
        ),
    ];
    for (patch, field) in bad_patches {
        let answer = http(port, "PATCH", &object, &merge, patch.to_string().as_bytes());
        let status = answer.status(422, field);
        assert_eq!(status["details"]["causes"][0]["field"], field, "{patch}");
    }
    // Replace (PUT) and create refuse them the same way.
    let mut replaced = stored.clone();
    replaced["metadata"]["ownerReferences"] = json!(["parent"]);
    let answer = http(
        port,
        "PUT",
        &object,
        &json_body,
        replaced.to_string().as_bytes(),
    );
    answer.status(422, "metadata.ownerReferences[0]");
    let mut second: Value = serde_json::from_str(&workflow("owned-2")).unwrap();
    second["metadata"]["finalizers"] = json!([null]);
    let answer = http(
        port,
        "POST",
        &list,
        &json_body,
        second.to_string().as_bytes(),
    );
    answer.status(422, "metadata.finalizers[0]");

    // Nothing changed, and nothing was created. (A controller may add its own finalizer
    // and status meanwhile; ours and the owners stay as they were.)
    let now = http(port, "GET", &object, &[], b"").json();
    assert_eq!(
        now["metadata"]["ownerReferences"],
        stored["metadata"]["ownerReferences"]
    );
    let finalizers = now["metadata"]["finalizers"].as_array().unwrap();
    assert!(finalizers.contains(&json!("example.com/keep")), "{now}");
    assert_eq!(workflows_in(port, "default"), 1);
}
