//! Exec and files in sandboxes, end to end: a real `orcaops serve`, real Docker, a
//! Sandbox of busybox `sleep infinity`, driven over REST (collected, NDJSON-streamed,
//! WebSocket) and through the CLI (`exec`, `exec -i`, `cp`, `stop`, `start`).

mod common;
#[path = "sandbox_exec/files_and_cli.rs"]
mod files_and_cli;
#[path = "sandbox_exec/init_and_links.rs"]
mod init_and_links;
#[path = "sandbox_exec/rest.rs"]
mod rest;
#[path = "sandbox_exec/service_logs.rs"]
mod service_logs;

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
    /// The server admin key.
    _key: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            http: server.http(),
            url: server.url.clone(),
            _key: server.key(),
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
