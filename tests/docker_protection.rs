//! Protecting the Docker daemon, end to end with the real `orcaops` binary and real
//! Docker: a daemon that stops answering (simulated by a socket proxy in front of the
//! real one that holds every byte while "hung"), the per-server container limit, and
//! status that tells the truth about containers killed or paused outside orcaops.
//!
//! Needs Docker and the local `busybox:latest` image (`scripts/setup.sh`).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, IMAGE, free_port, job_yaml, poll, require_docker, tail, wait_until};
use orcaops::runtime::docker::{DockerLimits, Health};
use orcaops::runtime::{ContainerSpec, DockerRuntime, NetworkMode, RuntimeError};
use serde_json::Value;

const T: Duration = Duration::from_secs(40);

/// A Unix socket in front of the Docker daemon's that forwards everything, except that
/// while `hung` it holds every byte (and accepts new connections without answering):
/// a daemon that stopped answering, as Docker 20.10 did under a burst.
struct HangingProxy {
    path: PathBuf,
    hung: Arc<AtomicBool>,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl HangingProxy {
    fn start() -> HangingProxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let upstream = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|host| host.strip_prefix("unix://").map(String::from))
            .unwrap_or_else(|| "/var/run/docker.sock".into());
        let hung = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::bind(&path).unwrap()
        };
        let flag = Arc::clone(&hung);
        runtime.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (flag, upstream) = (Arc::clone(&flag), upstream.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::UnixStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(pump(client_read, server_write, Arc::clone(&flag)));
                    pump(server_read, client_write, flag).await;
                });
            }
        });
        HangingProxy {
            path,
            hung,
            _runtime: runtime,
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn hang(&self, hung: bool) {
        self.hung.store(hung, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, holding what it read while `hung`.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    hung: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while hung.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while hung.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `orcaops serve` with extra flags and environment, killed when dropped.
struct Serve {
    dir: PathBuf,
    data_dir: PathBuf,
    url: String,
    port: u16,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl Serve {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Serve {
        require_docker();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("folder");
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let log = std::fs::File::create(tmp.path().join("serve.log")).unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--dir"])
            .arg(&dir)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("RUST_LOG", "info,orcaops=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("the orcaops binary starts");
        let serve = Serve {
            dir,
            data_dir,
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
            _tmp: tmp,
        };
        wait_until(Duration::from_secs(20), "the server answers", || {
            serve.cli(&["get", "jobs"]).status.success().then_some(())
        });
        serve
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("ORCAOPS_SERVER", &self.url)
            .output()
            .expect("the orcaops binary runs")
    }

    fn write(&self, name: &str, content: &str) {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
    }

    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        let out = self.cli(&["get", kind, name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Removes the object's file and waits until the object is gone (with what it ran).
    fn remove(&self, file: &str, kind: &str, name: &str) {
        std::fs::remove_file(self.dir.join(file)).unwrap();
        wait_until(T, "the object is deleted", || {
            self.get(kind, name).is_none().then_some(())
        });
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.parent().unwrap().join("serve.log"))
            .unwrap_or_default()
    }

    /// Waits until `done(object)`; on timeout fails with the last state and the log.
    fn wait(&self, kind: &str, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let found = poll(T, || {
            let obj = self.get(kind, name)?;
            last = obj.clone();
            done(&obj).then_some(obj)
        });
        found.unwrap_or_else(|| {
            panic!(
                "{kind} {name} never {what} within {T:?}; last seen:\n{}\nserver log tail:\n{}",
                serde_json::to_string_pretty(&last).unwrap(),
                tail(&self.log(), 40)
            )
        })
    }

    /// `/readyz`: the status code and the body.
    fn readyz(&self) -> (u16, String) {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let code = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        (code, body.to_string())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn phase(obj: &Value) -> &str {
    obj.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The condition of this type, if the object has one.
fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// Removes every container of a job or sandbox named `name` (the tests' leftovers).
fn remove_containers_named(name: &str) {
    let out = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=orcaops.dev/name={name}"),
    ]);
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        docker(&["rm", "-f", id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_daemon_fails_calls_within_the_timeout_and_ping_says_so() {
    require_docker();
    let proxy = tokio::task::spawn_blocking(HangingProxy::start)
        .await
        .unwrap();
    let limits = DockerLimits {
        call_timeout: Duration::from_secs(1),
        ..DockerLimits::default()
    };
    let runtime = DockerRuntime::connect_to_with(&proxy.host(), limits)
        .await
        .expect("connects through the proxy");
    runtime.ping().await.expect("answers before it hangs");

    proxy.hang(true);
    let started = Instant::now();
    let spec = ContainerSpec {
        name: format!("orcaops-protection-{}", std::process::id()),
        image: IMAGE.into(),
        command: vec!["true".into()],
        env: Vec::new(),
        working_dir: None,
        labels: Default::default(),
        cpu_millis: None,
        memory_bytes: None,
        network: NetworkMode::None,
        pids_limit: 64,
        user: None,
        read_only_root: false,
    };
    let error = runtime.create_and_start(&spec).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            error,
            RuntimeError::Timeout {
                call: "create_container",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "the Docker daemon did not answer create_container within 1s; it may be overloaded or hung (does `docker info` answer?)"
    );
    let ping = runtime.ping().await.unwrap_err().to_string();
    assert!(ping.contains("did not answer ping within 1s"), "{ping}");
    assert!(matches!(runtime.health(), Health::Unavailable { .. }));
    // The refused slot was given back.
    assert_eq!(runtime.container_slots().0, 0);

    // Answering again: a call that gets through makes it healthy again.
    proxy.hang(false);
    let _ = wait_for(|| async { runtime.inspect("orcaops-no-such-container").await.ok() }).await;
    runtime
        .ping()
        .await
        .expect("healthy once calls are answered");
    let _ = runtime.remove(&spec.name).await;
    tokio::task::spawn_blocking(move || drop(proxy))
        .await
        .unwrap();
}

async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(f: impl Fn() -> F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < T, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn jobs_stay_pending_with_runtime_unavailable_while_docker_hangs_and_run_when_it_answers() {
    let proxy = HangingProxy::start();
    let host = proxy.host();
    let serve = Serve::start(&["--docker-timeout", "2"], &[("DOCKER_HOST", &host)]);
    assert_eq!(serve.readyz().0, 200, "ready while Docker answers");

    proxy.hang(true);
    serve.write(
        "hang.yaml",
        &job_yaml("hang", "  steps:\n    - name: s\n      run: echo done\n"),
    );
    let job = serve.wait("job", "hang", "says RuntimeUnavailable", |job| {
        condition(job, "RuntimeUnavailable").is_some()
    });
    assert_eq!(phase(&job), "Pending", "not Failed: {job:#}");
    let unavailable = condition(&job, "RuntimeUnavailable").unwrap();
    assert_eq!(unavailable["status"], "True");
    let message = unavailable["message"].as_str().unwrap();
    assert!(message.contains("did not answer"), "{message}");
    assert!(message.contains("within 2s"), "{message}");
    assert!(message.contains("retries in"), "{message}");
    let summary = job.pointer("/status/summary").and_then(Value::as_str);
    assert!(
        summary.is_some_and(|s| s.starts_with("waiting: ")),
        "{summary:?}"
    );
    let (code, body) = serve.readyz();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("runtime"), "{body}");
    assert!(body.contains("Docker"), "{body}");

    proxy.hang(false);
    let job = serve.wait("job", "hang", "succeeds once Docker answers", |job| {
        phase(job) == "Succeeded"
    });
    assert!(
        condition(&job, "RuntimeUnavailable").is_none(),
        "the condition goes once Docker answers: {job:#}"
    );
    wait_until(T, "/readyz is ready again", || {
        (serve.readyz().0 == 200).then_some(())
    });
    drop(serve);
    remove_containers_named("hang");
}

#[test]
fn above_max_containers_a_job_waits_pending_and_starts_when_one_ends() {
    let serve = Serve::start(&["--max-containers", "2"], &[]);
    let sleeper = |name: &str| {
        job_yaml(
            name,
            "  steps:\n    - name: s\n      run: sleep 8; echo done\n",
        )
    };
    serve.write("a.yaml", &sleeper("limit-a"));
    serve.write("b.yaml", &sleeper("limit-b"));
    for name in ["limit-a", "limit-b"] {
        serve.wait("job", name, "runs", |job| phase(job) == "Running");
    }
    serve.write("c.yaml", &sleeper("limit-c"));
    let waiting = serve.wait("job", "limit-c", "waits for a slot", |job| {
        condition(job, "ContainerLimitReached").is_some()
    });
    assert_eq!(phase(&waiting), "Pending", "{waiting:#}");
    assert_eq!(
        condition(&waiting, "ContainerLimitReached").unwrap()["message"],
        "2 of 2 containers in use on this server; it starts when one ends; raise --max-containers to allow more"
    );
    let running = docker(&["ps", "-q", "--filter", "label=orcaops.dev/name=limit-c"]);
    assert!(
        String::from_utf8_lossy(&running.stdout).trim().is_empty(),
        "no container for the waiting job"
    );
    for name in ["limit-a", "limit-b"] {
        assert_eq!(phase(&serve.get("job", name).unwrap()), "Running");
    }

    let done = serve.wait("job", "limit-c", "succeeds once a slot frees up", |job| {
        phase(job) == "Succeeded"
    });
    assert!(
        condition(&done, "ContainerLimitReached").is_none(),
        "{done:#}"
    );
    drop(serve);
    for name in ["limit-a", "limit-b", "limit-c"] {
        remove_containers_named(name);
    }
}

#[test]
fn a_job_killed_from_outside_says_so_and_not_that_the_shell_is_missing() {
    let serve = Serve::start(&[], &[]);
    serve.write(
        "killed.yaml",
        &job_yaml(
            "killed",
            "  steps:\n    - name: s\n      run: echo started; sleep 60\n",
        ),
    );
    let job = serve.wait("job", "killed", "runs its step", |job| {
        phase(job) == "Running" && job.pointer("/status/container").is_some()
    });
    let container = job["status"]["container"].as_str().unwrap().to_string();
    // The runner must have started the step (its marker is in the output) first.
    wait_until(T, "the step started", || {
        let logs = docker(&["logs", &container]);
        String::from_utf8_lossy(&logs.stdout)
            .contains("started")
            .then_some(())
    });
    assert!(docker(&["kill", &container]).status.success());
    let failed = serve.wait("job", "killed", "fails", |job| phase(job) == "Failed");
    let summary = failed["status"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("killed from outside orcaops (signal 9"),
        "{summary}"
    );
    assert!(!summary.contains("/bin/sh"), "{summary}");
    drop(serve);
    remove_containers_named("killed");
}

#[test]
fn a_sandbox_paused_outside_orcaops_is_unpaused_by_the_controller() {
    let serve = Serve::start(&[], &[]);
    serve.write(
        "paused.yaml",
        &format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Sandbox\nmetadata:\n  name: paused\nspec:\n  services:\n    - name: shell\n      image: {IMAGE}\n      command: [\"sleep\", \"infinity\"]\n"
        ),
    );
    let sandbox = serve.wait("sandbox", "paused", "is Ready", |sb| phase(sb) == "Ready");
    let container = sandbox
        .pointer("/status/services/0/container")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert!(docker(&["pause", &container]).status.success());

    // An exec meets the paused container, says what happens, and wakes the controller.
    let out = serve.cli(&["exec", "paused", "--", "true"]);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("paused"), "{stderr}");
    }
    wait_until(T, "the controller unpaused the container", || {
        let state = docker(&["inspect", "-f", "{{.State.Status}}", &container]);
        (String::from_utf8_lossy(&state.stdout).trim() == "running").then_some(())
    });
    let out = serve.cli(&["exec", "paused", "--", "echo", "alive"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alive\n");
    let sandbox = serve.wait("sandbox", "paused", "is Ready again", |sb| {
        phase(sb) == "Ready"
    });
    assert_eq!(
        sandbox
            .pointer("/status/services/0/container")
            .and_then(Value::as_str),
        Some(container.as_str()),
        "the same container, unpaused, not a new one"
    );
    serve.remove("paused.yaml", "sandbox", "paused");
    wait_until(T, "the sandbox's container is removed", || {
        (!docker(&["inspect", &container]).status.success()).then_some(())
    });
    drop(serve);
}
