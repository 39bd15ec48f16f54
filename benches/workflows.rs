//! Workflow benchmark (run with `cargo bench --bench workflows`). It prints figures and
//! ratios against Docker measured in the same run; it asserts nothing but completion.
//!
//! 1. a chain of 10 one-step nodes (each needs the one before), applied and watched until
//!    `Succeeded`, vs 10 `docker run --rm --network none busybox:latest true` one after
//!    another; with where the time between two nodes goes;
//! 2. 100 independent nodes with `concurrency: 16` vs `xargs -P 16` running the same 100
//!    `docker run --rm --network none`;
//! 3. a 500-node matrix (25 x 20, `concurrency: 16`) on a server of its own: the time, the
//!    Workflow's size as the API serves it, and the server's peak RSS.
//!
//! Each node's Job runs `true` with the Job's default network (`none`), the command and
//! network of the baseline. Waiting uses one watch connection per kind, so the benchmark
//! spends no CPU polling.

mod common;

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{IMAGE, Served, Watched, percentile, require_docker};

const WORKERS: usize = 16;
const CHAIN: usize = 10;
const CHAIN_ROUNDS: usize = 5;
const WIDE: usize = 100;
const CONCURRENCY: usize = 16;
/// The matrix's two axes: 25 x 20 = 500 combinations.
const AXES: (usize, usize) = (25, 20);

const BAD: &[&str] = &["Failed", "Cancelled", "Suspended"];

/// One node's Job: one step running `true`, on the Job's default network (`none`).
fn node_job() -> String {
    format!("{{image: {IMAGE}, steps: [{{name: s, command: [\"true\"]}}]}}")
}

fn chain_yaml(name: &str) -> String {
    let mut yaml = format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: {name}\nspec:\n  jobs:\n"
    );
    for i in 0..CHAIN {
        let _ = writeln!(yaml, "    - name: n{i}");
        if i > 0 {
            let _ = writeln!(yaml, "      needs: [n{}]", i - 1);
        }
        let _ = writeln!(yaml, "      job: {}", node_job());
    }
    yaml
}

fn wide_yaml(name: &str) -> String {
    let mut yaml = format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: {name}\nspec:\n  concurrency: {CONCURRENCY}\n  jobs:\n"
    );
    for i in 0..WIDE {
        let _ = writeln!(yaml, "    - name: n{i}\n      job: {}", node_job());
    }
    yaml
}

fn matrix_yaml(name: &str) -> String {
    let values = |n: usize| {
        (1..=n)
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: {name}\nspec:\n  concurrency: {CONCURRENCY}\n  jobs:\n    - name: cell\n      matrix:\n        a: [{}]\n        b: [{}]\n      job: {}\n",
        values(AXES.0),
        values(AXES.1),
        node_job()
    )
}

fn workflow_url(url: &str, name: &str) -> String {
    format!("{url}/apis/orcaops.dev/v1alpha1/namespaces/default/workflows/{name}")
}

/// Applies a Workflow as `kubectl apply --server-side` would (the REST apply).
fn apply(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
    name: &str,
    yaml: String,
) {
    let response = rt
        .block_on(
            http.patch(workflow_url(url, name))
                .header("Content-Type", "application/apply-patch+yaml")
                .body(yaml)
                .send(),
        )
        .unwrap();
    let status = response.status();
    let body = rt.block_on(response.text()).unwrap_or_default();
    assert!(status.is_success(), "apply of {name}: {status}: {body}");
}

fn wait_succeeded(workflows: &Watched, name: &str) {
    workflows.wait_phase(name, "Succeeded", BAD);
}

fn docker_run() {
    let ok = Command::new("docker")
        .args(["run", "--rm", "--network", "none", IMAGE, "true"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "docker run failed");
}

/// `docker run --rm --network none` of `true`, `n` times, `parallel` at once.
fn docker_runs(n: usize, parallel: usize) -> Duration {
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "seq {n} | xargs -P {parallel} -I{{}} docker run --rm --network none {IMAGE} true"
        ))
        .status()
        .unwrap();
    assert!(status.success(), "xargs docker run failed");
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    require_docker();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Served::start(Some(WORKERS));
    let http = server.http();
    let url = server.url.clone();
    let workflows = Watched::start(&rt, &server, "workflows");
    let jobs = Watched::start(&rt, &server, "jobs");
    std::thread::sleep(Duration::from_millis(300));

    // Warm up both paths once.
    docker_run();
    apply(&rt, &http, &url, "warm", chain_yaml("warm"));
    wait_succeeded(&workflows, "warm");

    // 1. The chain, alternating with the baseline.
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    // Between two nodes: the Job before shows Succeeded -> the next Job appears (the
    // Workflow controller) -> it shows Succeeded (the Job controller and Docker).
    let (mut wake, mut run) = (Vec::new(), Vec::new());
    for round in 0..CHAIN_ROUNDS {
        let start = Instant::now();
        for _ in 0..CHAIN {
            docker_run();
        }
        theirs.push(ms(start.elapsed()));
        let name = format!("chain-{round}");
        let start = Instant::now();
        apply(&rt, &http, &url, &name, chain_yaml(&name));
        wait_succeeded(&workflows, &name);
        ours.push(ms(start.elapsed()));
        let job = |i: usize| format!("{name}-1-n{i}");
        for i in 0..CHAIN {
            let created = jobs.seen(&job(i), "").expect("each node's Job was seen");
            let done = jobs
                .seen(&job(i), "Succeeded")
                .expect("each node's Job succeeded");
            run.push(ms(done - created));
            if i > 0 {
                let before = jobs.seen(&job(i - 1), "Succeeded").unwrap();
                wake.push(ms(created.saturating_duration_since(before)));
            }
        }
    }
    let (o, t) = (percentile(&mut ours, 0.5), percentile(&mut theirs, 0.5));
    println!(
        "chain of {CHAIN} nodes (median of {CHAIN_ROUNDS}): orcaops {o:.0} ms, {CHAIN} x docker run --rm --network none {t:.0} ms, ratio {:.2}x (goal <= 1.15x)",
        o / t
    );
    println!(
        "  per node: Job Succeeded -> next Job created p50 {:.1} ms (p90 {:.1}); Job created -> Succeeded p50 {:.0} ms (p90 {:.0}); one docker run {:.0} ms",
        percentile(&mut wake, 0.5),
        percentile(&mut wake, 0.9),
        percentile(&mut run, 0.5),
        percentile(&mut run, 0.9),
        t / CHAIN as f64,
    );

    // 2. Wide: 100 independent nodes, 16 at once.
    let docker = docker_runs(WIDE, CONCURRENCY).as_secs_f64();
    let start = Instant::now();
    apply(&rt, &http, &url, "wide", wide_yaml("wide"));
    wait_succeeded(&workflows, "wide");
    let secs = start.elapsed().as_secs_f64();
    let (ot, dt) = (WIDE as f64 / secs, WIDE as f64 / docker);
    println!(
        "{WIDE} independent nodes, concurrency {CONCURRENCY}: orcaops {ot:.1} nodes/s ({secs:.1} s), xargs -P {CONCURRENCY} docker run {dt:.1} runs/s ({docker:.1} s), ratio {:.2}x (goal >= 0.80x)",
        ot / dt
    );
    drop(server);

    // 3. The 500-node matrix, on a server of its own so that its peak RSS is this run's.
    let server = Served::start(Some(WORKERS));
    let http = server.http();
    let url = server.url.clone();
    let workflows = Watched::start(&rt, &server, "workflows");
    std::thread::sleep(Duration::from_millis(300));
    let idle_kib = server.memory_kib("VmHWM");
    let nodes = AXES.0 * AXES.1;
    let start = Instant::now();
    apply(&rt, &http, &url, "matrix", matrix_yaml("matrix"));
    wait_succeeded(&workflows, "matrix");
    let secs = start.elapsed().as_secs_f64();
    let body = rt
        .block_on(async {
            http.get(workflow_url(&url, "matrix"))
                .send()
                .await?
                .bytes()
                .await
        })
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let listed = stored
        .pointer("/status/nodes")
        .and_then(|n| n.as_array())
        .map_or(0, Vec::len);
    let progress = stored
        .pointer("/status/progress")
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_string();
    let peak_kib = server.memory_kib("VmHWM");
    let rss_kib = server.memory_kib("VmRSS");
    println!(
        "{nodes}-node matrix ({}x{}, concurrency {CONCURRENCY}): Succeeded in {secs:.1} s ({:.1} nodes/s), progress {progress}, {listed} node entries; Workflow as served {:.1} KiB (goal < 256 KiB); server peak RSS {:.1} MiB (idle {:.1} MiB, {:.1} MiB at the end)",
        AXES.0,
        AXES.1,
        nodes as f64 / secs,
        body.len() as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        idle_kib as f64 / 1024.0,
        rss_kib as f64 / 1024.0,
    );
    drop(server);
}
