//! What the benchmarks share: starting the real server, and following objects'
//! phases through one watch connection, so waiting costs no CPU.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_orcaops");
pub const IMAGE: &str = "busybox:latest";

pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails with instructions when Docker or the image is missing.
pub fn require_docker() {
    let docker_ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        docker_ok,
        "the benchmark needs Docker and {IMAGE}: run ./scripts/setup.sh"
    );
}

/// Starts `orcaops serve` on `port` and waits until it accepts connections.
pub fn start_server(dir: &Path, data: &Path, port: u16, workers: usize) -> Child {
    let mut child = Command::new(BIN)
        .args(["serve", "--dir"])
        .arg(dir)
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--workers", &workers.to_string()])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
    panic!("the server did not start");
}

/// The latest version of every object of one kind, kept current by one watch.
#[derive(Clone, Default)]
pub struct Watched {
    map: Arc<Mutex<HashMap<String, Value>>>,
    changed: Arc<Condvar>,
}

impl Watched {
    /// Watches `plural` in the default workspace.
    pub fn start(rt: &tokio::runtime::Runtime, url: &str, plural: &str) -> Watched {
        let watched = Watched::default();
        let feed = watched.clone();
        let url = format!("{url}/apis/orcaops.dev/v1alpha1/namespaces/default/{plural}?watch=true");
        rt.spawn(async move {
            let response = reqwest::get(&url).await.expect("the watch starts");
            let mut body = response.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let Ok(mut event) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    let object = event["object"].take();
                    let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str)
                    else {
                        continue;
                    };
                    let name = name.to_string();
                    let mut map = feed.map.lock().unwrap();
                    if event["type"] == "DELETED" {
                        map.remove(&name);
                    } else {
                        map.insert(name, object);
                    }
                    feed.changed.notify_all();
                }
            }
        });
        watched
    }

    /// Waits until `done` holds over the objects by name (ten minutes at most).
    pub fn wait(&self, what: &str, done: impl Fn(&HashMap<String, Value>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut map = self.map.lock().unwrap();
        while !done(&map) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("timed out waiting for {what}"));
            map = self
                .changed
                .wait_timeout(map, left.min(Duration::from_millis(200)))
                .unwrap()
                .0;
        }
    }

    /// Waits for `status.phase` of `name` to be `want`; panics on any of `bad`.
    pub fn wait_phase(&self, name: &str, want: &str, bad: &[&str]) {
        self.wait(name, |m| {
            let phase = m
                .get(name)
                .and_then(|o| o.pointer("/status/phase"))
                .and_then(Value::as_str)
                .unwrap_or("");
            assert!(!bad.contains(&phase), "{name} became {phase}");
            phase == want
        });
    }

    pub fn get(&self, name: &str) -> Option<Value> {
        self.map.lock().unwrap().get(name).cloned()
    }
}
