//! Idle cost of a server holding many objects (run with `cargo bench --bench idle`;
//! issue 17). It fills a data dir with Jobs, half suspended and half finished, as the
//! issue counted them, starts the real `orcaops serve` on it and prints:
//!
//! - the time from start until the controllers are idle (no reconcile for 5 seconds,
//!   by `orcaops_reconciles_total` on `/metrics`);
//! - the CPU it then uses over 75 s, which spans one periodic resync (every 60 s): the
//!   average, and the busiest 5 s;
//! - its resident memory, idle.
//!
//! `ORCAOPS_BENCH_JOBS` sets the count (20,000 by default; the figure is
//! 100,000), `ORCAOPS_BENCH_BIN` another server binary to time (an older build, for a
//! before and after). It asserts nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use orcaops::resources::{Kind, Object};
use orcaops::store::LocalStore;
use serde_json::json;

const NAMESPACE: &str = "default";

fn job(i: usize) -> Object {
    let finished = i % 2 == 1;
    let mut obj = Object::new(
        Kind::Job,
        NAMESPACE,
        &format!("job-{i:06}"),
        json!({
            "image": "busybox:latest",
            "suspend": !finished,
            "steps": [{ "name": "main", "run": "echo hi" }],
        }),
    );
    if finished {
        obj.status = json!({
            "phase": "Succeeded", "summary": "run 1 succeeded in 0.2s (1 step)",
            "run": 1, "totalRuns": 1, "attempt": 1, "observedGeneration": 1,
        });
    }
    obj
}

/// The process's CPU time so far (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    common::require_docker();
    let count: usize = std::env::var("ORCAOPS_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let bin = std::env::var("ORCAOPS_BENCH_BIN").unwrap_or_else(|_| common::BIN.to_string());
    let tmp = tempfile::tempdir().unwrap();
    let (dir, data) = (tmp.path().join("folder"), tmp.path().join("data"));
    std::fs::create_dir_all(&dir).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let filled = Instant::now();
    rt.block_on(async {
        let store = LocalStore::open(&data).await.unwrap();
        let mut creates = futures::stream::iter(0..count)
            .map(|i| {
                let store = store.clone();
                async move { store.create(job(i)).await }
            })
            .buffer_unordered(64);
        while let Some(created) = creates.next().await {
            created.expect("a bench Job is stored");
        }
    });
    println!(
        "{count} jobs stored ({} suspended, {} finished) in {:.1} s; server {bin}",
        count - count / 2,
        count / 2,
        filled.elapsed().as_secs_f64()
    );

    let port = common::free_port();
    let log = std::fs::File::create(tmp.path().join("serve.log")).unwrap();
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .args(["serve", "--dir"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the server starts");
    let pid = child.id();

    // Idle: no reconcile for 5 seconds in a row (the sum of orcaops_reconciles_total
    // on /metrics stands still); the time reported is when that quiet began.
    let key = data.join("admin.key");
    let reconciles = || -> Option<f64> {
        let key = std::fs::read_to_string(&key).ok()?;
        let out = Command::new("curl")
            .args([
                "-sf",
                "-m",
                "5",
                "-H",
                &format!("Authorization: Bearer {}", key.trim()),
            ])
            .arg(format!("http://127.0.0.1:{port}/metrics"))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        out.status.success().then(|| {
            text.lines()
                .filter(|l| l.starts_with("orcaops_reconciles_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
    };
    let mut last = None;
    let mut quiet = 0;
    let idle_after = loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = reconciles();
        quiet = if now.is_some() && now == last {
            quiet + 1
        } else {
            0
        };
        last = now;
        if quiet == 5 {
            break started.elapsed() - Duration::from_secs(5);
        }
        if started.elapsed() > Duration::from_secs(600) {
            println!("reconciles never stopped for 5 s within 10 minutes: measuring it busy");
            break started.elapsed();
        }
    };
    let startup_cpu = cpu_seconds(pid);
    println!(
        "start until idle: {:.1} s ({startup_cpu:.1} s of CPU); RSS idle {:.0} MiB",
        idle_after.as_secs_f64(),
        rss_mib(pid)
    );

    // 75 s, which spans the resync every 60 s after start.
    let window = Duration::from_secs(75);
    let begin = Instant::now();
    let first = cpu_seconds(pid);
    let mut busiest: f64 = 0.0;
    let mut prev = first;
    while begin.elapsed() < window {
        std::thread::sleep(Duration::from_secs(5));
        let now = cpu_seconds(pid);
        busiest = busiest.max((now - prev) / 5.0);
        prev = now;
    }
    let average = (cpu_seconds(pid) - first) / begin.elapsed().as_secs_f64();
    println!(
        "idle over {:.0} s (one resync in it): CPU {:.2} % of a core on average, busiest 5 s {:.1} % (goal < 1 %); RSS {:.0} MiB",
        begin.elapsed().as_secs_f64(),
        average * 100.0,
        busiest * 100.0,
        rss_mib(pid)
    );
    child.kill().ok();
    child.wait().ok();
}
