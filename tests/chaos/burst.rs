//! The sandbox burst of issue 11: many sandboxes created at once over REST, waited
//! Ready, deleted at once, three times in a row, while a probe asks the daemon
//! `docker info` every second and requires an answer within 2 s each time. At the end
//! nothing orcaops made is left on the daemon.
//!
//! `ORCAOPS_CHAOS_BURST` sets the burst size (the is 500); the default keeps the
//! whole chaos target within its CI budget on 2 cores (see docs/testing.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::dockerd::{PrivateDockerd, tail};
use crate::serve::{API, ChaosServer, phase, sandbox};

pub const DEFAULT_BURST: usize = 200;
const ROUNDS: usize = 3;
/// The probe's bound on one `docker info`.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

fn burst_size() -> usize {
    match std::env::var("ORCAOPS_CHAOS_BURST") {
        Ok(n) => n
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("ORCAOPS_CHAOS_BURST={n:?} is not a count")),
        Err(_) => DEFAULT_BURST,
    }
}

/// One `docker info` of the probe: when (in which round and stage), how long it took,
/// and how it ended.
struct Probe {
    stage: String,
    /// When it was sent, to read against the server's log.
    at: chrono::DateTime<chrono::Utc>,
    took: Duration,
    /// None: it answered; otherwise what went wrong.
    failure: Option<String>,
}

/// `docker info` every second until stopped, noting the stage the test is in.
fn probe(
    daemon: Arc<PrivateDockerd>,
    stop: Arc<AtomicBool>,
    stage: Arc<std::sync::Mutex<String>>,
) -> Vec<Probe> {
    let mut probes = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let at = chrono::Utc::now();
        let started = Instant::now();
        let answer =
            daemon.docker_within(&["info", "--format", "{{.ContainersRunning}}"], PROBE_LIMIT);
        let took = started.elapsed();
        let failure = match answer {
            None => Some(format!("no answer within {PROBE_LIMIT:?}")),
            Some(out) if !out.status.success() => Some(format!(
                "failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Some(_) => None,
        };
        probes.push(Probe {
            stage: stage.lock().unwrap().clone(),
            at,
            took,
            failure,
        });
        std::thread::sleep(Duration::from_secs(1).saturating_sub(took));
    }
    probes
}

pub fn run() {
    let n = burst_size();
    let daemon = Arc::new(PrivateDockerd::start());
    let tmp = tempfile::tempdir().unwrap();
    // The default limit (64 live containers) would keep all but 64 sandboxes Pending
    // for good: someone who opens n sandboxes raises it to n. The gate's other
    // defaults (8 Docker calls at once, a 30 s deadline) are what protects the daemon.
    let max = n.max(64).to_string();
    let server = ChaosServer::start(
        tmp.path(),
        &tmp.path().join("data"),
        &daemon.host(),
        &["--max-containers", &max],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stage = Arc::new(std::sync::Mutex::new("start".to_string()));
    let set_stage = |s: String| *stage.lock().unwrap() = s;
    let prober = {
        let (daemon, stop, stage) = (Arc::clone(&daemon), Arc::clone(&stop), Arc::clone(&stage));
        std::thread::spawn(move || probe(daemon, stop, stage))
    };
    let whole = Instant::now();
    let mut figures = Vec::new();
    for round in 1..=ROUNDS {
        let names: Vec<String> = (0..n).map(|i| format!("burst-{round}-{i}")).collect();
        let started = Instant::now();
        set_stage(format!("round {round}, creating"));
        let answers = server.burst(
            names
                .iter()
                .map(|name| {
                    (
                        Method::POST,
                        format!("{API}/sandboxes"),
                        Some(sandbox(name)),
                    )
                })
                .collect(),
        );
        let refused: Vec<_> = answers.iter().filter(|a| !a.ok()).collect();
        assert!(
            refused.is_empty(),
            "round {round}: creates refused: {refused:?}"
        );
        let accepted = started.elapsed();

        let limit = Duration::from_secs(60) + Duration::from_millis(600) * n as u32;
        set_stage(format!("round {round}, waiting for Ready"));
        let mut ready = 0;
        while ready < n {
            ready = server
                .list("sandboxes")
                .iter()
                .filter(|s| phase(s) == "Ready")
                .count();
            assert!(
                started.elapsed() < limit,
                "round {round}: {ready} of {n} sandboxes Ready after {limit:?}; log:\n{}",
                tail(&server.log(), 30)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let all_ready = started.elapsed();

        let deleting = Instant::now();
        set_stage(format!("round {round}, deleting"));
        let answers = server.burst(
            names
                .iter()
                .map(|name| (Method::DELETE, format!("{API}/sandboxes/{name}"), None))
                .collect(),
        );
        let refused: Vec<_> = answers.iter().filter(|a| !a.ok()).collect();
        assert!(
            refused.is_empty(),
            "round {round}: deletes refused: {refused:?}"
        );
        loop {
            let objects = server.list("sandboxes").len();
            let left = daemon.orcaops_leftovers();
            if objects == 0 && left.is_empty() {
                break;
            }
            assert!(
                deleting.elapsed() < limit,
                "round {round}: {objects} sandboxes and {} Docker objects left after {limit:?}: {:?}",
                left.len(),
                &left[..left.len().min(10)]
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let figure = format!(
            "round {round}: {n} accepted in {:.1}s, all Ready in {:.1}s, all gone in {:.1}s",
            accepted.as_secs_f64(),
            all_ready.as_secs_f64(),
            deleting.elapsed().as_secs_f64()
        );
        eprintln!("{figure}");
        figures.push(figure);
    }
    stop.store(true, Ordering::SeqCst);
    let probes = prober.join().unwrap();
    let slow: Vec<String> = probes
        .iter()
        .enumerate()
        .filter(|(_, p)| p.failure.is_some() || p.took > PROBE_LIMIT)
        .map(|(i, p)| {
            format!(
                "probe {i} at {} ({}): {:?} {}",
                p.at.format("%H:%M:%S%.3f"),
                p.stage,
                p.took,
                p.failure.as_deref().unwrap_or("")
            )
        })
        .collect();
    let worst = probes
        .iter()
        .filter(|p| p.failure.is_none())
        .map(|p| p.took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "burst of {n} x {ROUNDS} in {:.1}s; {} probes, the slowest answer {worst:?}",
        whole.elapsed().as_secs_f64(),
        probes.len()
    );
    // The server's log says which Docker calls were in flight each second while busy
    // ("docker calls in flight"), to read against the probes' times.
    let kept = keep_log(&server.log());
    eprintln!("the server's log is kept at {}", kept.display());
    assert!(
        slow.is_empty(),
        "docker info did not answer within {PROBE_LIMIT:?}:\n{}\n{}",
        slow.join("\n"),
        figures.join("\n")
    );
    assert!(probes.len() >= 3, "the probe ran {} times", probes.len());
}

/// Copies the server's log to `<target dir>/chaos-logs/burst-serve.log`.
fn keep_log(log: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("chaos-logs");
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join("burst-serve.log");
    std::fs::write(&path, log).ok();
    path
}
