//! What authentication and the audit log cost (run with `cargo bench --bench auth`): GET
//! and create throughput of the API served three times in this process: as `orcaops
//! serve` serves it (every request carries the server admin key, checked and authorized,
//! and every write is recorded in the audit log), with no authentication layer, and with
//! authentication but no audit log, in the same run and on the same machine. Rounds
//! alternate between them, and the figures are the medians of the rounds. It prints the
//! overheads next to the goal (authentication at most 5 %); it asserts nothing.
//!
//! Both servers have their own SQLite data dir and no controllers, so the figures are the
//! API and the store, which is all that authentication touches. The load generator runs
//! in this process over loopback, 16 requests in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orcaops::controller::activity::SandboxActivity;
use orcaops::server::{Access, AppState, serve_api_with};
use orcaops::store::LocalStore;

const CONCURRENCY: usize = 16;
const BASE: &str = "/apis/orcaops.dev/v1alpha1/namespaces/bench";

fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn job_json(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Job",
        "metadata": { "name": name },
        "spec": { "image": "busybox:latest", "suspend": true, "steps": [{ "name": "main", "run": "true" }] },
    }))
    .unwrap()
}

struct Target {
    url: String,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

/// How a target is served.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Full,
    NoAuthentication,
    NoAudit,
}

async fn start(served: Mode) -> Target {
    let authenticated = served != Mode::NoAuthentication;
    let data = tempfile::tempdir().unwrap();
    let store = LocalStore::open(data.path()).await.unwrap();
    let docker = orcaops::runtime::DockerRuntime::connect()
        .await
        .expect("this bench needs a Docker daemon (for the sandbox I/O it never calls): run ./scripts/setup.sh");
    let state = AppState::local(
        store,
        docker,
        SandboxActivity::new(),
        tokio_util::sync::CancellationToken::new(),
        Arc::new(orcaops::metrics::Metrics::new()),
    );
    let mut access = Access::default().with_rate_limit(0);
    match served {
        Mode::Full => {}
        Mode::NoAuthentication => access = access.unauthenticated_for_benchmarks(),
        Mode::NoAudit => access = access.unaudited_for_benchmarks(),
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    serve_api_with(listener, state, access).await.unwrap();
    let key = std::fs::read_to_string(data.path().join("admin.key")).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    if authenticated {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", key.trim()).parse().unwrap(),
        );
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    Target {
        url,
        http,
        _data: data,
    }
}

/// Requests per second for `time`, 16 in flight; `create` posts new Jobs, else GETs one.
async fn rate(target: &Target, create: bool, time: Duration, round: usize) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let (http, url) = (target.http.clone(), target.url.clone());
            let (done, failed) = (done.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while start.elapsed() < time {
                    let answer = if create {
                        http.post(format!("{url}{BASE}/jobs"))
                            .header("content-type", "application/json")
                            .body(job_json(&format!("r{round}-w{w}-{i}")))
                            .send()
                            .await
                    } else {
                        http.get(format!("{url}{BASE}/jobs/seed")).send().await
                    };
                    match answer {
                        Ok(r) if r.status().is_success() => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} requests failed against {}", target.url);
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (rounds, time) = if bench_mode() {
        (9, Duration::from_secs(2))
    } else {
        (1, Duration::from_millis(200))
    };
    rt.block_on(async {
        let with = start(Mode::Full).await;
        let without = start(Mode::NoAuthentication).await;
        let unaudited = start(Mode::NoAudit).await;
        for target in [&with, &without, &unaudited] {
            let seeded = target
                .http
                .post(format!("{}{BASE}/jobs", target.url))
                .header("content-type", "application/json")
                .body(job_json("seed"))
                .send()
                .await
                .unwrap();
            assert!(seeded.status().is_success(), "{}", seeded.text().await.unwrap());
        }
        let targets = [&with, &without, &unaudited];
        for (what, create) in [("GET one job", false), ("create a job", true)] {
            let mut rates = [Vec::new(), Vec::new(), Vec::new()];
            for round in 0..rounds {
                // Each round starts with another server, so none always goes first.
                for k in 0..targets.len() {
                    let t = (round + k) % targets.len();
                    rates[t].push(rate(targets[t], create, time, round).await);
                }
            }
            // The cost of a layer is the median over the rounds of its round's ratio:
            // a round disturbed by other work weighs on one ratio, not on the figure.
            let cost = |than: usize| {
                let ratios: Vec<f64> = rates[than]
                    .iter()
                    .zip(&rates[0])
                    .map(|(other, served)| (other / served - 1.0) * 100.0)
                    .collect();
                median(ratios)
            };
            let [a, b, c] = rates.clone().map(median);
            println!(
                "{what}: as served {a:.0} req/s, without authentication {b:.0} req/s (authentication costs {:+.1}%, goal <= 5%), without the audit log {c:.0} req/s (the audit log costs {:+.1}%); medians of {rounds} rounds of {time:?}, each server first in turn, {CONCURRENCY} in flight",
                cost(1),
                cost(2),
            );
        }
    });
}
