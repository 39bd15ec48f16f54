//! Local-mode benchmark (run with `cargo bench --bench local_mode`). It prints figures
//! and ratios against Docker measured in the same run; it asserts nothing.
//!
//! 1. one hello job end to end (apply -> Succeeded) vs `docker run --rm` of the same command;
//! 2. 100 jobs dropped into the folder at once vs `xargs -P` running `docker run --rm`
//!    at the controller's concurrency;
//! 3. the latency from a file appearing to its container being created.
//!
//! Waiting uses one watch connection, so the benchmark spends no CPU polling.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_orcaops");
const IMAGE: &str = "busybox:latest";
const WORKERS: usize = 16;
const ROUNDS: usize = 15;
const BURST: usize = 100;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn job_yaml(name: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  image: {IMAGE}\n  steps:\n    - name: main\n      command: [\"echo\", \"hi\"]\n"
    )
}

/// The phase of every job, kept current by one watch connection.
#[derive(Clone, Default)]
struct Phases {
    map: Arc<Mutex<HashMap<String, String>>>,
    changed: Arc<Condvar>,
}

impl Phases {
    fn watch(rt: &tokio::runtime::Runtime, url: &str) -> Phases {
        let phases = Phases::default();
        let feed = phases.clone();
        let url = format!("{url}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs?watch=true");
        rt.spawn(async move {
            let response = reqwest::get(&url).await.expect("the watch starts");
            let mut body = response.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    let field = |p: &str| {
                        event
                            .pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    let (name, phase) = (
                        field("/object/metadata/name"),
                        field("/object/status/phase"),
                    );
                    feed.map.lock().unwrap().insert(name, phase);
                    feed.changed.notify_all();
                }
            }
        });
        phases
    }

    fn wait(&self, what: &str, done: impl Fn(&HashMap<String, String>) -> bool) {
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

    fn wait_succeeded(&self, name: &str) {
        self.wait(name, |m| match m.get(name).map(String::as_str) {
            Some("Failed" | "TimedOut" | "Cancelled") => panic!("bench job {name} did not succeed"),
            Some("Succeeded") => true,
            _ => false,
        });
    }
}

fn docker_run() -> Duration {
    let start = Instant::now();
    let ok = Command::new("docker")
        .args(["run", "--rm", "--network", "none", IMAGE, "echo", "hi"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    start.elapsed()
}

fn start_server(dir: &Path, data: &Path, port: u16) -> Child {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--dir",
            dir.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--workers",
            &WORKERS.to_string(),
        ])
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

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() {
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
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("folder");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = start_server(&dir, &data, port);
    let url = format!("http://127.0.0.1:{port}");
    let phases = Phases::watch(&rt, &url);
    std::thread::sleep(Duration::from_millis(300));

    // Warm up both paths once.
    docker_run();
    std::fs::write(dir.join("warm.yaml"), job_yaml("warm")).unwrap();
    phases.wait_succeeded("warm");

    // 1. A single job end to end, alternating with the baseline.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        theirs.push(docker_run().as_secs_f64() * 1000.0);
        let name = format!("single-{i}");
        let start = Instant::now();
        let response = rt
            .block_on(
                http.patch(format!(
                    "{url}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/{name}"
                ))
                .header("Content-Type", "application/apply-patch+yaml")
                .body(job_yaml(&name))
                .send(),
            )
            .unwrap();
        assert!(
            response.status().is_success(),
            "apply: {}",
            response.status()
        );
        phases.wait_succeeded(&name);
        ours.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let (o, t) = (percentile(&mut ours, 0.5), percentile(&mut theirs, 0.5));
    println!(
        "single job end to end (median of {ROUNDS}): orcaops {o:.0} ms, docker run --rm {t:.0} ms, ratio {:.2}x (goal <= 1.10x)",
        o / t
    );

    // 2. BURST jobs at once.
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "seq {BURST} | xargs -P {WORKERS} -I{{}} docker run --rm --network none {IMAGE} echo hi > /dev/null"
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let docker_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..BURST {
        std::fs::write(
            dir.join(format!("burst-{i}.yaml")),
            job_yaml(&format!("burst-{i}")),
        )
        .unwrap();
    }
    phases.wait("the burst", |m| {
        m.iter()
            .filter(|(k, v)| k.starts_with("burst-") && v.as_str() == "Succeeded")
            .count()
            == BURST
    });
    let ours_secs = start.elapsed().as_secs_f64();
    let (ot, dt) = (BURST as f64 / ours_secs, BURST as f64 / docker_secs);
    println!(
        "{BURST} jobs at once: orcaops {ot:.1} jobs/s ({ours_secs:.1} s), xargs -P {WORKERS} docker run {dt:.1} jobs/s ({docker_secs:.1} s), ratio {:.2}x (goal >= 0.80x)",
        ot / dt
    );

    // 3. File appears -> container created (Docker's create event), excluding the start.
    let mut latencies = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("latency-{i}");
        let since = unix_nanos() as f64 / 1e9 - 1.0;
        let written = unix_nanos();
        std::fs::write(dir.join(format!("{name}.yaml")), job_yaml(&name)).unwrap();
        phases.wait_succeeded(&name);
        let out = Command::new("docker")
            .args([
                "events",
                "--since",
                &format!("{since:.3}"),
                "--until",
                &format!("{:.3}", unix_nanos() as f64 / 1e9),
            ])
            .args([
                "--filter",
                "event=create",
                "--filter",
                &format!("label=orcaops.dev/name={name}"),
            ])
            .args(["--format", "{{.TimeNano}}"])
            .output()
            .unwrap();
        let created: u128 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a create event");
        latencies.push(created.saturating_sub(written) as f64 / 1e6);
    }
    let p50 = percentile(&mut latencies, 0.5);
    let p90 = percentile(&mut latencies, 0.9);
    println!(
        "file -> container created ({ROUNDS} files): p50 {p50:.1} ms, p90 {p90:.1} ms (goal p50 <= 50 ms)"
    );

    server.kill().ok();
    server.wait().ok();
}
