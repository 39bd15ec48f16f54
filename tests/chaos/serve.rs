//! The real `orcaops serve` for the chaos suite: pointed at the private daemon through
//! `DOCKER_HOST`, killed with SIGKILL and started again on the same data dir, and its
//! REST API driven with plain HTTP (reqwest), many requests at once when asked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{BIN, IMAGE, free_port};
use crate::dockerd::tail;

pub const API: &str = "/apis/orcaops.dev/v1alpha1/namespaces/default";

pub struct ChaosServer {
    pub data_dir: PathBuf,
    pub url: String,
    port: u16,
    docker_host: String,
    args: Vec<String>,
    child: Option<Child>,
    log_path: PathBuf,
    /// How many times it was started.
    pub starts: u32,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// An answer: the status code (0 when the request got none) and the body as JSON
/// (`Null` when it was not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl ChaosServer {
    /// Starts `orcaops serve` on `data_dir`, talking to the Docker daemon at
    /// `docker_host`, with extra `args`; its watched folder and its log are in `work`.
    pub fn start(work: &Path, data_dir: &Path, docker_host: &str, args: &[&str]) -> ChaosServer {
        let folder = work.join("folder");
        std::fs::create_dir_all(&folder).unwrap();
        let mut all = vec!["--dir".to_string(), folder.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let port = free_port();
        let mut server = ChaosServer {
            data_dir: data_dir.to_path_buf(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            docker_host: docker_host.to_string(),
            args: all,
            child: None,
            log_path: work.join("serve.log"),
            starts: 0,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        };
        server.start_again();
        server
    }

    /// Starts the server (again) on the same data dir and port; waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(&self.args)
            .env("DOCKER_HOST", &self.docker_host)
            .env("RUST_LOG", "info,orcaops=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the orcaops binary starts");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self.get("/healthz").code == 200 {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "orcaops serve exited at start ({status}); log:\n{}",
                    tail(&self.log(), 40)
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "orcaops serve did not answer /healthz within 30 s; log:\n{}",
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, at once: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body.clone()))
    }

    pub fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None)
    }

    /// The server admin key (empty before the first start has written it).
    pub fn key(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.key"))
            .map(|k| k.trim().to_string())
            .unwrap_or_default()
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let key = self.key();
        self.rt
            .block_on(request(&self.http, &self.url, &key, method, path, body))
    }

    /// Sends every `(method, path, body)` at once and returns the answers in order.
    pub fn burst(&self, requests: Vec<(reqwest::Method, String, Option<Value>)>) -> Vec<Answer> {
        let (http, url, key) = (&self.http, &self.url, &self.key());
        self.rt.block_on(futures::future::join_all(
            requests
                .into_iter()
                .map(|(method, path, body)| request(http, url, key, method, path, body)),
        ))
    }

    /// `GET /readyz`: the code and the message.
    pub fn readyz(&self) -> (u16, String) {
        let answer = self.get("/readyz");
        let message = answer.body["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| answer.body.to_string());
        (answer.code, message)
    }

    /// The object, or None when it does not exist (or the server did not answer).
    pub fn object(&self, plural: &str, name: &str) -> Option<Value> {
        let answer = self.get(&format!("{API}/{plural}/{name}"));
        answer.ok().then_some(answer.body)
    }

    /// Every object of a kind in the default workspace.
    pub fn list(&self, plural: &str) -> Vec<Value> {
        let answer = self.get(&format!("{API}/{plural}"));
        assert!(answer.ok(), "listing {plural}: {answer:?}");
        answer.body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `done(object)`; on timeout fails with the last state and the log.
    pub fn wait_for(
        &self,
        plural: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        let mut last = Value::Null;
        loop {
            if let Some(obj) = self.object(plural, name) {
                if done(&obj) {
                    return obj;
                }
                last = obj;
            }
            if started.elapsed() > timeout {
                panic!(
                    "{plural}/{name} never {what} within {timeout:?}; last seen:\n{}\nserver log tail:\n{}",
                    serde_json::to_string_pretty(&last).unwrap(),
                    tail(&self.log(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ChaosServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn request(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    method: reqwest::Method,
    path: impl AsRef<str>,
    body: Option<Value>,
) -> Answer {
    let mut req = http
        .request(method, format!("{url}{}", path.as_ref()))
        .bearer_auth(key);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    match req.send().await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
            Answer { code, body }
        }
        Err(e) => Answer {
            code: 0,
            body: Value::String(e.to_string()),
        },
    }
}

/// A Job of `steps` (`(name, shell)`), as the REST API takes it.
pub fn job(name: &str, steps: &[(&str, &str)], extra: Value) -> Value {
    let mut spec = json!({
        "image": IMAGE,
        "steps": steps.iter().map(|(n, run)| json!({"name": n, "run": run})).collect::<Vec<_>>(),
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// A Sandbox of one service that sleeps.
pub fn sandbox(name: &str) -> Value {
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Sandbox",
        "metadata": {"name": name},
        "spec": {"services": [{"name": "shell", "image": IMAGE, "command": ["sleep", "infinity"]}]},
    })
}

pub fn phase(obj: &Value) -> &str {
    obj.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The condition of this type, if the object has one.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}
