//! What the benchmarks share: starting the real server, and following objects'
//! phases through one watch connection, so waiting costs no CPU.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

// The tests' fixtures: the binary, the image, a free port and the Docker check.
#[path = "../../tests/common/mod.rs"]
mod fixtures;
#[allow(unused_imports)]
pub use fixtures::browser;
#[allow(unused_imports)] // each bench takes what it needs
pub use fixtures::{BIN, IMAGE, free_port, require_docker};

pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// `orcaops serve` on a new temporary folder and data dir, killed when dropped. Its
/// log is `data.log`, beside the data dir.
pub struct Served {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub url: String,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl Served {
    /// Starts the server (`--workers N` when given) and waits until it accepts
    /// connections.
    pub fn start(workers: Option<usize>) -> Served {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, data) = (tmp.path().join("folder"), tmp.path().join("data"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--dir"])
            .arg(&dir)
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // The benches send thousands of requests a second with one key: not throttled.
            .args(["--rate-limit", "0"])
            .args(workers.map(|w| format!("--workers={w}")))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the orcaops binary starts");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Served {
                    url: format!("http://127.0.0.1:{port}"),
                    dir,
                    data,
                    child,
                    _tmp: tmp,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().ok();
        child.wait().ok();
        panic!(
            "the server did not start; see {}",
            data.with_extension("log").display()
        );
    }
}

impl Served {
    /// The server admin key it wrote into its data dir.
    pub fn key(&self) -> String {
        for _ in 0..200 {
            if let Ok(key) = std::fs::read_to_string(self.data.join("admin.key")) {
                return key.trim().to_string();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server wrote no admin.key into {}", self.data.display());
    }

    /// An HTTP client that sends the server admin key with every request.
    pub fn http(&self) -> reqwest::Client {
        self.http_with(reqwest::Client::builder())
    }

    /// `builder`, sending the server admin key with every request.
    pub fn http_with(&self, builder: reqwest::ClientBuilder) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.key()).parse().unwrap(),
        );
        builder.default_headers(headers).build().unwrap()
    }

    /// The server's process id (for its memory figures in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `VmHWM` (peak resident set) or `VmRSS` line of the server's /proc status, in KiB.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server's /proc status is readable");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The latest version of every object of one kind, kept current by one watch.
#[derive(Clone, Default)]
pub struct Watched {
    map: Arc<Mutex<HashMap<String, Value>>>,
    /// When the watch first showed each (name, phase): the phase "" is the object's
    /// first appearance.
    seen: Arc<Mutex<HashMap<(String, String), Instant>>>,
    changed: Arc<Condvar>,
}

impl Watched {
    /// Watches `plural` in the default workspace of `server`.
    pub fn start(rt: &tokio::runtime::Runtime, server: &Served, plural: &str) -> Watched {
        let (url, http) = (&server.url, server.http());
        let watched = Watched::default();
        let feed = watched.clone();
        let url = format!("{url}/apis/orcaops.dev/v1alpha1/namespaces/default/{plural}?watch=true");
        rt.spawn(async move {
            let response = http.get(&url).send().await.expect("the watch starts");
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
                    let phase = object
                        .pointer("/status/phase")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    {
                        let now = Instant::now();
                        let mut seen = feed.seen.lock().unwrap();
                        seen.entry((name.clone(), String::new())).or_insert(now);
                        seen.entry((name.clone(), phase)).or_insert(now);
                    }
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

    /// When the watch first showed `name` in `phase` ("" for its first appearance).
    pub fn seen(&self, name: &str, phase: &str) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap()
            .get(&(name.to_string(), phase.to_string()))
            .copied()
    }
}
