//! Local-mode benchmark (run with `cargo bench --bench local_mode`). It prints figures
//! and ratios against Docker measured in the same run; it asserts nothing.
//!
//! 1. one hello job end to end (apply -> Succeeded) vs `docker run --rm` of the same command;
//!    and the same through `orcaops run` from a shell, the path a user takes;
//! 2. 100 jobs dropped into the folder at once vs `xargs -P` running `docker run --rm`
//!    at the controller's concurrency;
//! 3. the latency from a file appearing to its container being created.
//!
//! Waiting uses one watch connection, so the benchmark spends no CPU polling.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{IMAGE, Served, Watched, percentile, require_docker};

const WORKERS: usize = 16;
const ROUNDS: usize = 15;
const BURST: usize = 100;

fn job_yaml(name: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  image: {IMAGE}\n  steps:\n    - name: main\n      command: [\"echo\", \"hi\"]\n"
    )
}

fn wait_succeeded(jobs: &Watched, name: &str) {
    jobs.wait_phase(name, "Succeeded", &["Failed", "TimedOut", "Cancelled"]);
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

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() {
    require_docker();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Served::start(Some(WORKERS));
    let http = server.http();
    let (dir, url) = (&server.dir, server.url.clone());
    let phases = Watched::start(&rt, &server, "jobs");
    std::thread::sleep(Duration::from_millis(300));

    // Warm up both paths once.
    docker_run();
    std::fs::write(dir.join("warm.yaml"), job_yaml("warm")).unwrap();
    wait_succeeded(&phases, "warm");

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
        wait_succeeded(&phases, &name);
        ours.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let (o, t) = (percentile(&mut ours, 0.5), percentile(&mut theirs, 0.5));
    println!(
        "single job end to end (median of {ROUNDS}): orcaops {o:.0} ms, docker run --rm {t:.0} ms, ratio {:.2}x (goal <= 1.10x)",
        o / t
    );

    // 1b. The path a user takes: `orcaops run` from a shell (process start, discovery of
    // the local key, apply, watch, log follow, exit), against the same baseline.
    // ORCAOPS_BENCH_CLI names another binary to time (an older build, for a before/after).
    let cli = std::env::var("ORCAOPS_BENCH_CLI").unwrap_or_else(|_| common::BIN.to_string());
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        theirs.push(docker_run().as_secs_f64() * 1000.0);
        let start = Instant::now();
        let ok = Command::new(&cli)
            .args(["run", "--image", IMAGE, "--", "echo", "hi"])
            .env("ORCAOPS_SERVER", &url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "orcaops run failed");
        ours.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let (o, t) = (percentile(&mut ours, 0.5), percentile(&mut theirs, 0.5));
    println!(
        "`orcaops run --image {IMAGE} -- echo hi` from a shell (median of {ROUNDS}): {o:.0} ms, docker run --rm --network none {t:.0} ms, ratio {:.2}x (goal <= 1.10x)",
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
            .filter(|(k, v)| {
                k.starts_with("burst-") && v.pointer("/status/phase") == Some(&"Succeeded".into())
            })
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
        wait_succeeded(&phases, &name);
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

    drop(server);
}
