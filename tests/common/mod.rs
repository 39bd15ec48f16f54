//! Shared fixtures for end-to-end tests: a real `orcaops serve` on a temporary
//! folder and data dir, and the real CLI pointed at it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod browser;
pub mod docker;

pub const BIN: &str = env!("CARGO_BIN_EXE_orcaops");
pub const IMAGE: &str = "busybox:latest";

/// Fails the test with instructions when Docker or the test image is missing.
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs a running Docker daemon and the image {IMAGE}: run ./scripts/setup.sh (it installs and starts both)"
    );
}

/// The server admin key of the server whose data dir is `data_dir` (its `admin.key`),
/// waiting briefly for a server that is starting to write it.
pub fn admin_key(data_dir: &Path) -> String {
    let path = data_dir.join("admin.key");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match std::fs::read_to_string(&path) {
            Ok(key) if !key.trim().is_empty() => return key.trim().to_string(),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("no server admin key at {}: {other:?}", path.display()),
        }
    }
}

/// An HTTP client that sends `key` with every request.
pub fn http_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// `curl` with the server admin key of `data_dir` in its `Authorization` header.
pub fn curl_with_key(data_dir: &Path) -> Command {
    let mut curl = Command::new("curl");
    curl.arg("-H")
        .arg(format!("Authorization: Bearer {}", admin_key(data_dir)));
    curl
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `orcaops serve`, killed (SIGKILL) when dropped.
pub struct Server {
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    /// With [`Server::start_tls`]: the HTTPS URL and the certificate that signs it.
    pub tls: Option<(String, PathBuf)>,
    /// Extra flags of `serve`, kept for restarts.
    args: Vec<String>,
}

impl Server {
    /// A new server on a new temporary folder and data dir.
    pub fn start() -> Server {
        require_docker();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("folder");
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Server::start_on(&dir, &data_dir, free_port());
        server._tmp = Some(tmp);
        server
    }

    /// A new server like [`Server::start`], with `env` set for it (the flags of `serve`
    /// read `ORCAOPS_*` variables).
    #[allow(dead_code)]
    pub fn start_with_env(env: &[(&str, &str)]) -> Server {
        require_docker();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("folder");
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Server::start_on_with(&dir, &data_dir, free_port(), env, &[]);
        server._tmp = Some(tmp);
        server
    }

    /// A new server like [`Server::start`] that also serves HTTPS (`--tls-listen`) with a
    /// self-signed certificate made by openssl, for kubectl, which sends `--token` only
    /// over TLS.
    pub fn start_tls() -> Server {
        require_docker();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("folder");
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output();
        assert!(
            made.as_ref().is_ok_and(|o| o.status.success()),
            "openssl could not make a test certificate ({made:?}): apt-get install openssl (./scripts/setup.sh does)"
        );
        let tls_port = free_port();
        let args = [
            "--tls-listen".to_string(),
            format!("127.0.0.1:{tls_port}"),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ];
        let mut server = Server::start_on_with(&dir, &data_dir, free_port(), &[], &args);
        server.tls = Some((format!("https://127.0.0.1:{tls_port}"), cert));
        server._tmp = Some(tmp);
        server
    }

    pub fn start_on(dir: &Path, data_dir: &Path, port: u16) -> Server {
        Server::start_on_with(dir, data_dir, port, &[], &[])
    }

    fn start_on_with(
        dir: &Path,
        data_dir: &Path,
        port: u16,
        env: &[(&str, &str)],
        args: &[String],
    ) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(
                data_dir
                    .parent()
                    .unwrap_or(data_dir)
                    .join(format!("serve-{port}.log")),
            )
            .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--dir"])
            .arg(dir)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("RUST_LOG", "info,orcaops=debug")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the orcaops binary starts");
        let server = Server {
            dir: dir.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            url: format!("http://127.0.0.1:{port}"),
            port,
            child: Some(child),
            _tmp: None,
            tls: None,
            args: args.to_vec(),
        };
        wait_until(
            Duration::from_secs(20),
            "the server answers /healthz",
            || server.cli(&["get", "jobs"]).status.success().then_some(()),
        );
        server
    }

    /// Kills the server at once (SIGKILL), leaving its containers running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Stops the server as Ctrl-C or a service manager does (SIGTERM) and waits up to
    /// `within` for it to exit; returns its exit status, or None if it did not exit.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        let exited = poll(within, || child.try_wait().ok().flatten());
        if exited.is_none() {
            child.kill().ok();
            child.wait().ok();
        }
        exited
    }

    /// Starts the server again on the same folder, data dir and port.
    pub fn restart(&mut self) {
        self.kill();
        let fresh = Server::start_on_with(&self.dir, &self.data_dir, self.port, &[], &self.args);
        self.child = fresh.into_child();
    }

    fn into_child(mut self) -> Option<Child> {
        self.child.take()
    }

    pub fn log(&self) -> String {
        let path = self
            .data_dir
            .parent()
            .unwrap_or(&self.data_dir)
            .join(format!("serve-{}.log", self.port));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The server admin key (`admin.key` in the data dir).
    pub fn key(&self) -> String {
        admin_key(&self.data_dir)
    }

    /// `curl` that sends the server admin key.
    pub fn curl(&self) -> Command {
        curl_with_key(&self.data_dir)
    }

    /// An HTTP client that sends the server admin key.
    pub fn http(&self) -> reqwest::Client {
        http_with_key(&self.key())
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("ORCAOPS_SERVER", &self.url)
            .output()
            .expect("the orcaops binary runs")
    }

    /// Runs the CLI and returns stdout, failing the test if it exits non-zero.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "orcaops {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Write to a temporary name and rename, as editors do, so the watcher never sees half a file.
        let tmp = self.dir.join(format!(".{}.tmp", rel.replace('/', "_")));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// Makes the Secret `name` in workspace `ns` through the API, with `key` holding
    /// `value`, as `kubectl create secret generic` would.
    pub fn create_secret(&self, ns: &str, name: &str, key: &str, value: &str) {
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {key: value},
        });
        let out = self
            .curl()
            .args(["-s", "-w", "\n%{http_code}", "-X", "POST"])
            .args(["-H", "Content-Type: application/json"])
            .args(["--data", &secret.to_string()])
            .arg(format!("{}/api/v1/namespaces/{ns}/secrets", self.url))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.ends_with("\n201"),
            "secret {ns}/{name} is created: {text}"
        );
    }

    /// The job as JSON, or None when it does not exist.
    pub fn job(&self, name: &str) -> Option<Value> {
        self.object("job", name)
    }

    /// The workflow as JSON, or None when it does not exist.
    pub fn workflow(&self, name: &str) -> Option<Value> {
        self.object("workflow", name)
    }

    /// `orcaops get KIND NAME -o json`, or None when it does not exist.
    fn object(&self, kind: &str, name: &str) -> Option<Value> {
        let out = self.cli(&["get", kind, name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("get -o json prints JSON"))
    }

    /// Waits until `done(workflow)`; on timeout fails with the last state and the server log.
    pub fn wait_workflow(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_object("workflow", name, what, timeout, done)
    }

    /// The job's run records, as `GET .../jobs/{name}/runs` serves them.
    pub fn job_runs(&self, name: &str) -> Value {
        let out = self
            .curl()
            .args([
                "-sf",
                &format!(
                    "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/{name}/runs",
                    self.url
                ),
            ])
            .output()
            .expect("curl runs");
        serde_json::from_slice(&out.stdout).expect("the runs are JSON")
    }

    /// Waits until the job's phase is `phase`; returns the job.
    pub fn wait_phase(&self, name: &str, phase: &str, timeout: Duration) -> Value {
        self.wait_job(name, &format!("reaches {phase}"), timeout, |job| {
            job.pointer("/status/phase").and_then(Value::as_str) == Some(phase)
        })
    }

    /// Waits until `done(job)`; on timeout fails with the last state and the server log.
    pub fn wait_job(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_object("job", name, what, timeout, done)
    }

    fn wait_object(
        &self,
        kind: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let found = poll(timeout, || {
            let obj = self.object(kind, name)?;
            last = obj.clone();
            done(&obj).then_some(obj)
        });
        found.unwrap_or_else(|| {
            panic!(
                "{kind} {name} never {what} within {timeout:?}; last seen:\n{}\nserver log tail:\n{}",
                serde_json::to_string_pretty(&last).unwrap(),
                tail(&self.log(), 60)
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

pub fn wait_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting until {what}"))
}

/// Containers (running or not) carrying a label `key=value`, as `docker ps` sees them.
pub fn containers_with_label(key: &str, value: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label={key}={value}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

/// `orcaops get KIND NAME -o json` in workspace `ns` ("" for a cluster-scoped kind), or
/// None when it does not exist.
#[allow(dead_code)]
pub fn get_in(server: &Server, kind: &str, ns: &str, name: &str) -> Option<Value> {
    let mut args = vec!["get", kind, name, "-o", "json"];
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    let out = server.cli(&args);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("get -o json prints JSON"))
}

/// The message of the object's condition `type_` when it is True.
#[allow(dead_code)]
pub fn true_condition(obj: &Value, type_: &str) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
}

pub fn job_yaml(name: &str, body: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  image: {IMAGE}\n{body}"
    )
}
