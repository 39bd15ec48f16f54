//! API benchmark (run with `cargo bench --bench api`): GET and create throughput and
//! latency against a release `orcaops serve`, with the load generator in this process on
//! loopback. It prints figures next to the goals (5,000 GET/s, 1,000 creates/s, p99 under
//! 20 ms); it asserts nothing, because timings on a shared machine are not a test.
//!
//! Each kind of request is measured two ways:
//! - at the goal rate (open loop: requests are sent on a fixed schedule whatever the
//!   answers do, and latency counts from the scheduled time, so a slow answer cannot
//!   hide the queue behind it): the p99 a client sees at that load;
//! - at saturation (closed loop, 16 requests in flight): the most the server does.
//!
//! Every phase is bounded in both requests and time. Created Jobs are suspended, so the
//! Job controller reconciles each one (a Docker list and a status write) but starts no
//! container: the figure includes the controller's reaction, as in real use. Created
//! Workflows are scheduled, which the Workflow controller leaves alone until a run starts,
//! so their figure is the API and the store (and one reconcile that writes nothing).
//!
//! `BENCH_WORKERS=N` passes `--workers N` to the server (default 16), to see how much of
//! the Job figure is the controller's concurrent reconciles competing for the cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::Served;

const BASE: &str = "/apis/orcaops.dev/v1alpha1/namespaces/bench";
/// Requests in flight at once: enough to keep both cores busy, few enough that queueing
/// alone does not push the latency past the goal.
const CONCURRENCY: usize = 16;
/// How long each phase runs under `cargo bench`; `cargo test` runs the bench too (a
/// smoke run that proves it still works) with much shorter phases.
fn phase_time() -> Duration {
    if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(300)
    }
}
const SEEDED: usize = 100;

fn job_json(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Job",
        "metadata": { "name": name, "labels": { "bench": "api" } },
        "spec": {
            "image": "busybox:latest",
            "suspend": true,
            "steps": [{ "name": "main", "run": "echo hi" }],
        },
    }))
    .unwrap()
}

fn workflow_json(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": { "name": name },
        // Scheduled (no scheduler yet): the Workflow controller starts no run for it, so
        // thousands of creates start no containers.
        "spec": { "schedule": "0 3 1 1 *", "jobs": [{ "name": "a", "job": { "image": "busybox:latest", "steps": [{ "name": "s", "run": "true" }] } }] },
    }))
    .unwrap()
}

/// A create's body for a name.
type Body = fn(&str) -> Vec<u8>;
/// Create rates by round: without policies, with them.
type Rates = [Vec<f64>; 2];

/// How many Policies the policy phase creates.
const POLICIES: usize = 50;

/// Policy `i` of the policy phase: Enforce, covering the bench workspace, with rules every
/// bench object passes (so every create is reviewed in full and none is refused); one in
/// five also has a CEL rule.
fn policy_json(i: usize) -> Vec<u8> {
    let mut spec = serde_json::json!({
        "mode": "Enforce",
        "workspaces": ["bench", "other-*"],
        "images": { "deny": [format!("*miner-{i}*")], "registries": ["docker.io"] },
        "commands": { "deny": [format!("*rm -rf /{i}*")] },
        "allowNetwork": ["none", "bridge"],
    });
    if i.is_multiple_of(5) {
        spec["rules"] = serde_json::json!([{
            "name": "short-names",
            "expression": "object.metadata.name.size() < 200",
            "message": "names are short",
        }]);
    }
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Policy",
        "metadata": { "name": format!("bench-{i}") },
        "spec": spec,
    }))
    .unwrap()
}

struct Outcome {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, what: &str, goal_rate: f64) {
        let goal = if goal_rate > 0.0 {
            format!(" (goals: >= {goal_rate:.0}/s, p99 < 20 ms)")
        } else {
            String::new()
        };
        println!(
            "{what}: {:.0}/s ({} in {:.1} s, {} errors), p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms{goal}",
            self.rate(),
            self.requests,
            self.elapsed.as_secs_f64(),
            self.errors,
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(1.0),
        );
    }
}

/// Runs `request(i)` from CONCURRENCY tasks until `max` requests or the phase time.
async fn load<F, Fut>(max: usize, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    load_for(phase_time(), max, request).await
}

/// [`load`] for `time` instead of the phase time.
async fn load_for<F, Fut>(time: Duration, max: usize, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + time;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= max || Instant::now() >= deadline {
                        return (latencies, errors);
                    }
                    let t = Instant::now();
                    let ok = request(i).await;
                    latencies.push(t.elapsed());
                    errors += usize::from(!ok);
                }
            })
        })
        .collect();
    let mut outcome = Outcome {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        outcome.latencies.extend(latencies);
        outcome.errors += errors;
    }
    outcome.elapsed = started.elapsed();
    outcome.requests = outcome.latencies.len();
    outcome.latencies.sort();
    outcome
}

/// Sends `request(i)` at `rate` per second for the phase time (at most `max`), each on its
/// own task; latency counts from when the request was due.
async fn load_at_rate<F, Fut>(rate: usize, max: usize, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let started = tokio::time::Instant::now();
    let total = max.min((rate as f64 * phase_time().as_secs_f64()) as usize);
    let mut tasks = Vec::with_capacity(total);
    // The timer ticks every millisecond; each tick sends what has come due.
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0;
    while sent < total {
        tick.tick().await;
        let due_now = ((started.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(total);
        while sent < due_now {
            let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
            let fut = request(sent);
            tasks.push(tokio::spawn(async move {
                let ok = fut.await;
                (due.elapsed(), ok)
            }));
            sent += 1;
        }
    }
    let mut outcome = Outcome {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(total),
    };
    for task in tasks {
        let (latency, ok) = task.await.unwrap();
        outcome.latencies.push(latency);
        outcome.errors += usize::from(!ok);
    }
    outcome.elapsed = started.elapsed();
    outcome.requests = outcome.latencies.len();
    outcome.latencies.sort();
    outcome
}

async fn get_ok(http: &reqwest::Client, url: String) -> bool {
    match http.get(url).send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn post_created(http: &reqwest::Client, url: String, body: Vec<u8>) -> bool {
    match http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status() == reqwest::StatusCode::CREATED && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Makes the [`POLICIES`] policies exist (`with`) or not, and waits until the server
/// reviews writes by them: a dry-run create of an image policy 0 denies is refused
/// exactly while they are there.
async fn set_policies(http: &reqwest::Client, url: &str, with: bool) {
    let policies = format!("{url}/apis/orcaops.dev/v1alpha1/policies");
    for i in 0..POLICIES {
        if with {
            let made = http
                .post(&policies)
                .header("content-type", "application/json")
                .body(policy_json(i))
                .send()
                .await;
            // 409: there from the round before.
            assert!(
                made.is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED
                    || r.status() == reqwest::StatusCode::CONFLICT),
                "policy {i} was not created"
            );
        } else {
            let gone = http.delete(format!("{policies}/bench-{i}")).send().await;
            assert!(gone.is_ok_and(
                |r| r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND
            ));
        }
    }
    let canary = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Job",
        "metadata": { "name": "canary" },
        "spec": { "image": "busybox-miner-0:latest", "suspend": true, "steps": [{ "name": "s", "run": "true" }] },
    }))
    .unwrap();
    for _ in 0..200 {
        let answer = http
            .post(format!("{url}{BASE}/jobs?dryRun=All"))
            .header("content-type", "application/json")
            .body(canary.clone())
            .send()
            .await
            .expect("the server answers");
        if (answer.status() == reqwest::StatusCode::FORBIDDEN) == with {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the server did not take up the policies being {}",
        if with { "made" } else { "deleted" }
    );
}

/// Request `i` creates `<prefix>-<i>` of `plural` on the server at `url`.
fn creates(
    http: &reqwest::Client,
    url: &str,
    plural: &'static str,
    prefix: String,
    body: Body,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
+ Send
+ Sync
+ 'static {
    let (http, url) = (http.clone(), format!("{url}{BASE}/{plural}"));
    move |i: usize| {
        let (http, url) = (http.clone(), url.clone());
        let body = body(&format!("{prefix}-{i}"));
        Box::pin(async move { post_created(&http, url, body).await })
    }
}

async fn wait_ready(http: &reqwest::Client, server: &Served) {
    for _ in 0..200 {
        if get_ok(http, format!("{}/healthz", server.url)).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the server did not start; see {}",
        server.data.with_extension("log").display()
    );
}

fn main() {
    let workers = std::env::var("BENCH_WORKERS")
        .ok()
        .map(|w| w.parse().expect("BENCH_WORKERS is a number"));
    let server = Served::start(workers);
    let url = server.url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = server.http_with(reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY));
        wait_ready(&http, &server).await;
        for i in 0..SEEDED {
            assert!(post_created(&http, format!("{url}{BASE}/jobs"), job_json(&format!("seed-{i}"))).await);
        }
        println!(
            "orcaops serve on loopback, {} cores, saturation with {CONCURRENCY} requests in flight, phases of at most {:.1} s",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            phase_time().as_secs_f64()
        );
        if phase_time() < Duration::from_secs(1) {
            println!("(a smoke run under cargo test, not a measurement: use cargo bench --bench api)");
        }

        let get = {
            let (http, url) = (http.clone(), url.clone());
            move |i: usize| {
                let (http, url) = (http.clone(), format!("{url}{BASE}/jobs/seed-{}", i % SEEDED));
                async move { get_ok(&http, url).await }
            }
        };
        let create = |plural, prefix, body| creates(&http, &url, plural, prefix, body);
        load(2_000, get.clone()).await; // warm-up
        load_at_rate(5_000, 100_000, get.clone()).await.print("GET one job at 5,000/s", 5000.0);
        load(100_000, get).await.print("GET one job, saturated", 5000.0);
        load_at_rate(1_000, 100_000, create("workflows", "wf-r".into(), workflow_json))
            .await
            .print("create Workflow at 1,000/s (API + store)", 1000.0);
        load(30_000, create("workflows", "wf-s".into(), workflow_json))
            .await
            .print("create Workflow, saturated (API + store)", 1000.0);
        load_at_rate(1_000, 100_000, create("jobs", "job-r".into(), job_json))
            .await
            .print("create Job at 1,000/s (+ its reconcile)", 1000.0);
        load(30_000, create("jobs", "job-s".into(), job_json))
            .await
            .print("create Job, saturated (+ its reconcile)", 1000.0);
        let (h, u) = (http.clone(), url.clone());
        load(20_000, move |_| {
            let (http, url) = (h.clone(), format!("{u}{BASE}/jobs?limit=100"));
            async move { get_ok(&http, url).await }
        })
        .await
        .print("list 100 of the jobs (limit=100), saturated", 0.0);

    });
    // The policy phase gets a server of its own, started now: the first one's store
    // is large by now, and its resync of every object (each minute) would land in
    // some rounds and not others.
    drop(server);
    let fresh = Served::start(workers);
    rt.block_on(policy_phase(&fresh));
}

/// Pairs of rounds of the same creates without and with [`POLICIES`] Enforce policies
/// covering the workspace, on `server` (new, so that the whole phase runs before its
/// first resync of everything it holds).
async fn policy_phase(server: &Served) {
    let url = server.url.clone();
    let http = server.http_with(reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY));
    wait_ready(&http, server).await;
    let create = |plural, prefix, body| creates(&http, &url, plural, prefix, body);
    // Each policy is passed, so every write is reviewed by all 50. A pair's two rounds
    // run back to back, so what changes slowly (the store growing) weighs on both
    // alike; the cost is the median over the pairs, so that one round disturbed by
    // other work does not decide it.
    let (rounds, time) = if phase_time() < Duration::from_secs(1) {
        (1, phase_time())
    } else {
        (8, Duration::from_secs(1))
    };
    let (mut wf, mut job) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..rounds {
        // Which goes first alternates, so neither always follows the other.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with in order {
            set_policies(&http, &url, with).await;
            let tag = if with { "p" } else { "n" };
            let kinds: [(&str, Body, &mut Rates); 2] = [
                ("workflows", workflow_json, &mut wf),
                ("jobs", job_json, &mut job),
            ];
            for (plural, body, rates) in kinds {
                let prefix = format!("{plural}-{tag}{round}");
                let created = load_for(time, 30_000, create(plural, prefix, body)).await;
                assert_eq!(
                    created.errors, 0,
                    "a create of {plural} failed with policies {with}"
                );
                rates[usize::from(with)].push(created.rate());
            }
        }
    }
    let show = |rates: &[f64]| {
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (what, rates) in [("Workflow", &wf), ("Job", &job)] {
        println!(
            "create {what}, saturated, by round: no policies {}/s; {POLICIES} policies {}/s",
            show(&rates[0]),
            show(&rates[1])
        );
    }
    let cost = |rates: &[Vec<f64>; 2]| {
        let pairs: Vec<f64> = rates[0]
            .iter()
            .zip(&rates[1])
            .map(|(without, with)| 100.0 * (1.0 - with / without))
            .collect();
        median(&pairs)
    };
    println!(
        "{POLICIES} policies cost {:.1} % of the Workflow create rate and {:.1} % of the Job create rate (medians over {rounds} pairs of {:.1} s rounds; goal: at most 10 %)",
        cost(&wf),
        cost(&job),
        time.as_secs_f64(),
    );
}
