//! Local-mode benchmark (run with `cargo bench --bench local_mode`). It prints figures
//! and ratios against Docker measured in the same run; it asserts nothing.
//!
//! 1. one hello job end to end (apply -> Succeeded) vs `docker run --rm` of the same command;
//! 2. 100 jobs dropped into the folder at once vs `xargs -P` running `docker run --rm`
//!    at the controller's concurrency;
//! 3. the latency from a file appearing to its container being created.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_orcaops");
const IMAGE: &str = "busybox:latest";
const WORKERS: usize = 16;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn job_yaml(name: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  image: {IMAGE}\n  steps:\n    - name: main\n      command: [\"echo\", \"hi\"]\n"
    )
}

fn curl(args: &[&str]) -> Vec<u8> {
    Command::new("curl")
        .arg("-sf")
        .args(args)
        .output()
        .expect("curl runs")
        .stdout
}

fn phase(url: &str, name: &str) -> Option<String> {
    let body = curl(&[&format!(
        "{url}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/{name}"
    )]);
    let v: Value = serde_json::from_slice(&body).ok()?;
    v.pointer("/status/phase")
        .and_then(Value::as_str)
        .map(String::from)
}

fn wait_succeeded(url: &str, name: &str) {
    let start = Instant::now();
    loop {
        if let Some(p) = phase(url, name) {
            match p.as_str() {
                "Succeeded" => return,
                "Failed" | "TimedOut" | "Cancelled" => panic!("bench job {name} ended {p}"),
                _ => {}
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "bench job {name} did not finish"
        );
        std::thread::sleep(Duration::from_millis(3));
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
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if !curl(&[&format!("{url}/healthz")]).is_empty() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
    panic!("the server did not start");
}

fn now_nanos() -> u128 {
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
    let rounds = 15;

    // Warm up both paths once.
    docker_run();
    std::fs::write(dir.join("warm.yaml"), job_yaml("warm")).unwrap();
    wait_succeeded(&url, "warm");

    // 1. A single job end to end, alternating with the baseline.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        theirs.push(docker_run().as_secs_f64() * 1000.0);
        let name = format!("single-{i}");
        let body = job_yaml(&name);
        let start = Instant::now();
        curl(&[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/apply-patch+yaml",
            "--data-binary",
            &body,
            &format!("{url}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/{name}"),
        ]);
        wait_succeeded(&url, &name);
        ours.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let (o, t) = (median(&mut ours), median(&mut theirs));
    println!(
        "single job end to end (median of {rounds}): orcaops {o:.0} ms, docker run --rm {t:.0} ms, ratio {:.2}x (goal <= 1.10x)",
        o / t
    );

    // 2. 100 jobs at once.
    let n = 100;
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("seq {n} | xargs -P {WORKERS} -I{{}} docker run --rm --network none {IMAGE} echo hi > /dev/null"))
        .status()
        .unwrap();
    assert!(status.success());
    let docker_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..n {
        std::fs::write(
            dir.join(format!("burst-{i}.yaml")),
            job_yaml(&format!("burst-{i}")),
        )
        .unwrap();
    }
    loop {
        let body = curl(&[&format!(
            "{url}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs"
        )]);
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        let done = v["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|j| {
                        j["metadata"]["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("burst-"))
                    })
                    .filter(|j| j["status"]["phase"] == "Succeeded")
                    .count()
            })
            .unwrap_or(0);
        if done == n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the burst did not finish ({done}/{n})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ours_secs = start.elapsed().as_secs_f64();
    let (ot, dt) = (n as f64 / ours_secs, n as f64 / docker_secs);
    println!(
        "{n} jobs at once: orcaops {ot:.1} jobs/s ({ours_secs:.1} s), xargs -P {WORKERS} docker run {dt:.1} jobs/s ({docker_secs:.1} s), ratio {:.2}x (goal >= 0.80x)",
        ot / dt
    );

    // 3. File appears -> container created (Docker's create event), excluding the start.
    let mut latencies = Vec::new();
    for i in 0..rounds {
        let name = format!("latency-{i}");
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            - 1.0;
        let written = now_nanos();
        std::fs::write(dir.join(format!("{name}.yaml")), job_yaml(&name)).unwrap();
        wait_succeeded(&url, &name);
        let out = Command::new("docker")
            .args([
                "events",
                "--since",
                &format!("{since:.3}"),
                "--until",
                &format!("{:.3}", now_nanos() as f64 / 1e9),
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
        latencies.push((created.saturating_sub(written)) as f64 / 1e6);
    }
    let p50 = percentile(&mut latencies, 0.5);
    let p90 = percentile(&mut latencies, 0.9);
    println!(
        "file -> container created ({rounds} files): p50 {p50:.1} ms, p90 {p90:.1} ms (goal p50 <= 50 ms)"
    );

    server.kill().ok();
    server.wait().ok();
}
