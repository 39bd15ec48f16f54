//! Sandbox benchmark (run with `cargo bench --bench sandbox`). It prints figures and
//! ratios against Docker measured in the same run; it asserts nothing.
//!
//! 1. exec round trip: `orcaops exec SANDBOX -- echo hi` vs `docker exec CONTAINER echo hi`
//!    (both a CLI process per call), and the HTTP exec an agent makes, vs the same;
//! 2. claim from a warm pool: creating a Sandbox that names a pooled template, until
//!    the watch shows it Ready;
//! 3. cold create-to-Ready: creating a Sandbox of one busybox service until the watch
//!    shows it Ready, vs `docker run -d` of the same container.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{BIN, IMAGE, Served, Watched, percentile, require_docker};

const WORKERS: usize = 16;
const ROUNDS: usize = 20;
const POOL: u32 = 4;
const BASE: &str = "/apis/orcaops.dev/v1alpha1/namespaces/default";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn service() -> Value {
    json!({"name": "shell", "image": IMAGE, "command": ["sleep", "infinity"]})
}

fn sandbox(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Sandbox",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Runs a command, panicking with its stderr when it fails.
fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn send(&self, request: reqwest::RequestBuilder) -> Value {
        self.rt.block_on(async {
            let response = request.send().await.expect("the server answers");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(status.is_success(), "{status}: {body}");
            body
        })
    }

    fn create(&self, plural: &str, body: &Value) {
        self.send(
            self.http
                .post(format!("{}{BASE}/{plural}", self.url))
                .json(body),
        );
    }

    fn delete(&self, plural: &str, name: &str) {
        self.send(
            self.http
                .delete(format!("{}{BASE}/{plural}/{name}", self.url)),
        );
    }

    fn exec(&self, name: &str, command: &[&str]) -> Value {
        self.send(
            self.http
                .post(format!("{}{BASE}/sandboxes/{name}/exec", self.url))
                .json(&json!({ "command": command })),
        )
    }
}

fn container_of(sandboxes: &Watched, name: &str) -> String {
    sandboxes
        .get(name)
        .and_then(|o| {
            o.pointer("/status/services/0/container")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .expect("a Ready sandbox names its container")
}

/// The ready depth of template `name`'s pool, in the map [`Watched::wait`] hands over
/// (its lock is held there: calling `Watched::get` inside would deadlock).
fn pool_ready(templates: &HashMap<String, Value>, name: &str) -> u64 {
    templates
        .get(name)
        .and_then(|t| t.pointer("/status/pool/ready").and_then(Value::as_u64))
        .unwrap_or(0)
}

fn main() {
    require_docker();
    let server = Served::start(Some(WORKERS));
    let api = Api {
        rt: tokio::runtime::Runtime::new().unwrap(),
        http: server.http(),
        url: server.url.clone(),
    };
    let sandboxes = Watched::start(&api.rt, &server, "sandboxes");
    let templates = Watched::start(&api.rt, &server, "sandboxtemplates");
    std::thread::sleep(Duration::from_millis(300));
    let ready = |name: &str| sandboxes.wait_phase(name, "Ready", &["Failed", "Expired"]);

    // 3. Cold create-to-Ready, alternating with `docker run -d` (measured first, before
    // any pool competes for the daemon).
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let baseline = format!("orcaops-bench-baseline-{i}");
        theirs.push(ms(run(Command::new("docker").args([
            "run",
            "-d",
            "--name",
            &baseline,
            "--network",
            "none",
            IMAGE,
            "sleep",
            "infinity",
        ]))));
        let name = format!("cold-{i}");
        let start = Instant::now();
        api.create(
            "sandboxes",
            &sandbox(&name, json!({"services": [service()]})),
        );
        ready(&name);
        ours.push(ms(start.elapsed()));
        api.delete("sandboxes", &name);
        run(Command::new("docker").args(["rm", "-f", &baseline]));
    }
    let (o, t) = (percentile(&mut ours, 0.5), percentile(&mut theirs, 0.5));
    println!(
        "cold create-to-Ready (median of {ROUNDS}): orcaops {o:.0} ms, docker run -d {t:.0} ms, ratio {:.2}x (goal <= 1.15x)",
        o / t
    );

    // 1. Exec round trip into one sandbox, alternating with `docker exec`.
    api.create(
        "sandboxes",
        &sandbox("exec", json!({"services": [service()]})),
    );
    ready("exec");
    let container = container_of(&sandboxes, "exec");
    let server_arg = ["--server", api.url.as_str()];
    let (mut cli, mut http, mut docker) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        docker.push(ms(run(
            Command::new("docker").args(["exec", &container, "echo", "hi"])
        )));
        cli.push(ms(run(Command::new(BIN)
            .args(server_arg)
            .args(["exec", "exec", "--", "echo", "hi"]))));
        let start = Instant::now();
        let out = api.exec("exec", &["echo", "hi"]);
        http.push(ms(start.elapsed()));
        assert_eq!(out["exitCode"], 0, "{out}");
    }
    let d = percentile(&mut docker, 0.5);
    let c = percentile(&mut cli, 0.5);
    let h = percentile(&mut http, 0.5);
    println!(
        "exec round trip (median of {ROUNDS}): orcaops exec {c:.1} ms, docker exec {d:.1} ms, ratio {:.2}x (goal <= 1.10x); HTTP exec {h:.1} ms, ratio {:.2}x",
        c / d,
        h / d
    );
    api.delete("sandboxes", "exec");

    // 2. Claims from a warm pool: each claim is made with the pool full again, so every
    // one measures a claim, not a cold start.
    api.create(
        "sandboxtemplates",
        &json!({
            "apiVersion": "orcaops.dev/v1alpha1",
            "kind": "SandboxTemplate",
            "metadata": {"name": "pooled"},
            "spec": {"services": [service()], "warmPool": {"size": POOL}},
        }),
    );
    let mut claims = Vec::new();
    for i in 0..ROUNDS {
        templates.wait("the pool to fill", |m| {
            pool_ready(m, "pooled") >= u64::from(POOL)
        });
        let name = format!("claim-{i}");
        let start = Instant::now();
        api.create(
            "sandboxes",
            &sandbox(&name, json!({"templateRef": "pooled"})),
        );
        ready(&name);
        claims.push(ms(start.elapsed()));
        let claimed = sandboxes
            .get(&name)
            .and_then(|o| o.pointer("/status/claimedFrom").cloned());
        assert!(
            claimed.is_some(),
            "{name} started cold although the pool was full"
        );
    }
    let p50 = percentile(&mut claims, 0.5);
    let p90 = percentile(&mut claims, 0.9);
    println!(
        "claim from a warm pool ({ROUNDS} claims): p50 {p50:.1} ms, p90 {p90:.1} ms (goal p50 <= 20 ms)"
    );

    for i in 0..ROUNDS {
        api.delete("sandboxes", &format!("claim-{i}"));
    }
    api.delete("sandboxtemplates", "pooled");
    // Give the controller a moment to remove what it ran, then stop it.
    std::thread::sleep(Duration::from_secs(2));
    drop(server);
}
