//! The doors to Workflows end to end: the real `orcaops` binary as server and as CLI,
//! real Docker. `run workflow` with inputs and its exit codes, a retried Idempotency-Key,
//! the control commands (what they write on the stored object), `describe` drawing the
//! DAG, `logs --node` and `history`, and overlapping runs (`concurrencyPolicy: Allow`)
//! steered one by one with `--run`.
//!
//! The workflows here carry a schedule that is not due for months, so applying them
//! starts no run: every run a test sees is one it asked for.

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn workflow(server: &Server, name: &str) -> Value {
    let out = server.cli_ok(&["get", "workflow", name, "-o", "json"]);
    serde_json::from_str(&out).expect("get -o json prints JSON")
}

fn annotation(wf: &Value, key: &str) -> Option<String> {
    wf.pointer(&format!("/metadata/annotations/{}", key.replace('/', "~1")))
        .and_then(Value::as_str)
        .map(String::from)
}

/// Waits until the stored workflow satisfies `done`.
fn wait_workflow(server: &Server, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    poll(T, || {
        let wf = workflow(server, name);
        last = wf.clone();
        done(&wf).then_some(wf)
    })
    .unwrap_or_else(|| {
        panic!(
            "workflow {name} never {what}; last seen:\n{}\nserver log tail:\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            tail(&server.log(), 60)
        )
    })
}

fn finished(wf: &Value) -> bool {
    matches!(
        wf.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Cancelled")
    )
}

/// Removes, when a test ends, the containers its workflows' Jobs left (exited ones stay
/// until their Job's history drops them): those named `orcaops-default-<prefix>...`.
struct RemoveContainers(&'static str);

impl Drop for RemoveContainers {
    fn drop(&mut self) {
        let out = std::process::Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                "label=orcaops.dev/kind=Job",
                "--format",
                "{{.Names}}",
            ])
            .output();
        let Ok(out) = out else { return };
        let prefix = format!("orcaops-default-{}", self.0);
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            if name.starts_with(&prefix) {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", name])
                    .output();
            }
        }
    }
}

/// Applies a file through the folder and waits until the server has stored it.
fn apply(server: &Server, name: &str, yaml: &str) {
    server.write(&format!("{name}.yaml"), yaml);
    wait_until(T, &format!("workflow {name} is stored"), || {
        server
            .cli(&["get", "workflow", name])
            .status
            .success()
            .then_some(())
    });
}

const PIPELINE: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: wfcli-pipe
spec:
  schedule: "0 0 1 1 *"
  inputs:
    - {name: outcome, default: ok}
    - {name: nap, default: "0"}
  jobs:
    - name: build
      job: {image: busybox:latest, steps: [{name: b, run: 'echo built for ${{ inputs.outcome }}; sleep ${{ inputs.nap }}'}]}
    - name: test
      needs: [build]
      matrix: {shard: ["1", "2"]}
      job: {image: busybox:latest, steps: [{name: t, run: 'echo testing shard ${{ matrix.shard }}'}]}
    - name: check
      needs: [test]
      job: {image: busybox:latest, steps: [{name: c, run: 'test "${{ inputs.outcome }}" = ok'}]}
"#;

#[test]
fn run_workflow_follows_the_dag_and_exits_with_the_outcome_then_describe_logs_and_history_show_it()
{
    let _cleanup = RemoveContainers("wfcli-pipe-");
    let server = Server::start();
    apply(&server, "wfcli-pipe", PIPELINE);

    // A run with inputs that succeeds: one line per node change, exit 0.
    let out = server.cli(&[
        "run",
        "workflow",
        "wfcli-pipe",
        "--input",
        "outcome=ok",
        "--timeout",
        "120",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for node in ["build", "test-shard-1", "test-shard-2", "check"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(node) && l.contains("Succeeded")),
            "no Succeeded line for {node}:\n{stdout}"
        );
    }
    assert!(stderr.contains("run 1"), "{stderr}");
    let wf = workflow(&server, "wfcli-pipe");
    assert_eq!(
        wf.pointer("/status/inputs/outcome"),
        Some(&Value::from("ok"))
    );

    // One that fails: exit 2, and the failing node says so.
    let out = server.cli(&["run", "workflow", "wfcli-pipe", "--input", "outcome=bad"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("check") && l.contains("Failed")),
        "{stdout}"
    );
    assert!(stderr.contains("run 2: Failed"), "{stderr}");
    assert!(
        stderr.contains("orcaops logs workflow wfcli-pipe --node check"),
        "{stderr}"
    );

    // An input the workflow does not declare: refused before anything runs, exit 1.
    let out = server.cli(&["run", "workflow", "wfcli-pipe", "--input", "colour=red"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"colour\"") && stderr.contains("outcome, nap"),
        "{stderr}"
    );

    // describe draws the DAG in layers, the matrix grouped under its node.
    let described = server.cli_ok(&["describe", "workflow", "wfcli-pipe"]);
    let layer = |n: usize| {
        described
            .find(&format!("layer {n}"))
            .unwrap_or_else(|| panic!("no layer {n} in:\n{described}"))
    };
    assert!(layer(1) < layer(2) && layer(2) < layer(3), "{described}");
    let line = |needle: &str| {
        described
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle} in:\n{described}"))
            .to_string()
    };
    assert!(line("✓ build").contains("attempts 1"), "{described}");
    assert!(line("test ").contains("needs build"), "{described}");
    assert!(
        line("├ ✓ test-shard-2").contains("Succeeded"),
        "{described}"
    );
    assert!(line("✗ check").contains("Failed"), "{described}");
    assert!(described.contains("Run:          2"), "{described}");

    // logs --node: a node's Job's output; a matrix node shows each combination.
    let build = server.cli_ok(&["logs", "workflow", "wfcli-pipe", "--node", "build"]);
    assert!(build.contains("built for bad"), "{build}");
    let shards = server.cli_ok(&["logs", "workflow", "wfcli-pipe", "--node", "test"]);
    assert!(
        shards.contains("==> test-shard-1 <==") && shards.contains("testing shard 2"),
        "{shards}"
    );
    let one = server.cli_ok(&["logs", "workflow", "wfcli-pipe", "--node", "test-shard-1"]);
    assert!(
        one.contains("testing shard 1") && !one.contains("shard 2"),
        "{one}"
    );
    let out = server.cli(&["logs", "workflow", "wfcli-pipe", "--node", "deploy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("test-shard-1"), "{}", text(&out).1);

    // history: both runs, newest first.
    let history = server.cli_ok(&["history", "workflow", "wfcli-pipe"]);
    let rows: Vec<&str> = history.lines().skip(1).take(2).collect();
    assert!(
        rows[0].starts_with('2') && rows[0].contains("Failed"),
        "{history}"
    );
    assert!(
        rows[1].starts_with('1') && rows[1].contains("Succeeded"),
        "{history}"
    );
    assert!(
        history.contains("2 runs: 1 succeeded, 1 did not"),
        "{history}"
    );

    // A run that outlasts --timeout: exit 3.
    let out = server.cli(&[
        "run",
        "workflow",
        "wfcli-pipe",
        "--input",
        "nap=6",
        "--timeout",
        "2",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("still not finished after 2s"), "{stderr}");
    // Its cancel request names run 3; the test ends once the run has (whether the
    // controller cancelled it or it ran out), so no container outlives it.
    let wf = workflow(&server, "wfcli-pipe");
    assert_eq!(annotation(&wf, "orcaops.dev/cancel").as_deref(), Some("3"));
    wait_workflow(&server, "wfcli-pipe", "ended run 3", |wf| {
        wf.pointer("/status/run") == Some(&Value::from(3)) && finished(wf)
    });
}

const ONE_NODE: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: wfcli-idem
spec:
  schedule: "0 0 1 1 *"
  jobs:
    - name: only
      job: {image: busybox:latest, steps: [{name: s, run: 'echo once'}]}
"#;

#[test]
fn a_retried_idempotency_key_starts_one_run() {
    let _cleanup = RemoveContainers("wfcli-idem-");
    let server = Server::start();
    apply(&server, "wfcli-idem", ONE_NODE);
    let args = [
        "run",
        "workflow",
        "wfcli-idem",
        "--idempotency-key",
        "ci-build-77",
        "--timeout",
        "120",
    ];
    let first = server.cli(&args);
    assert_eq!(first.status.code(), Some(0), "{:?}", text(&first));
    // The same key again, after the run ended: the answer is that run, not a new one.
    let again = server.cli(&args);
    let (_, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("run 1 (already started by this request)"),
        "{stderr}"
    );

    // And straight over HTTP, as an agent would retry.
    let url = format!(
        "{}/apis/orcaops.dev/v1alpha1/namespaces/default/workflows/wfcli-idem/runs",
        server.url
    );
    let http = server.http();
    let (code, body) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let response = http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "ci-build-77")
            .body("{}")
            .send()
            .await
            .expect("the server answers");
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    });
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["run"].clone(), body["duplicate"].clone()),
        (Value::from(1), Value::Bool(true))
    );
    assert_eq!(body["token"], "run-ci-build-77");

    std::thread::sleep(Duration::from_secs(2));
    let wf = workflow(&server, "wfcli-idem");
    assert_eq!(wf.pointer("/status/run"), Some(&Value::from(1)), "{wf}");
    let history = wf
        .pointer("/status/history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(history.len() <= 1, "one run in the history: {history:?}");
    let jobs = server.cli_ok(&["get", "jobs", "-l", "orcaops.dev/workflow=wfcli-idem"]);
    assert_eq!(jobs.lines().count(), 2, "a header and one Job:\n{jobs}");
    assert!(jobs.contains("wfcli-idem-1-only"), "{jobs}");
    // Docker saw one container for the node, and none for a second run.
    assert!(
        containers_with_label("orcaops.dev/name", "wfcli-idem-2-only").is_empty(),
        "a second run started a container"
    );
    assert!(containers_with_label("orcaops.dev/name", "wfcli-idem-1-only").len() <= 1);
    let logs = server.cli_ok(&["logs", "workflow", "wfcli-idem", "--node", "only"]);
    assert_eq!(logs.matches("once").count(), 1, "{logs}");
}

const GATED: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: wfcli-gate
spec:
  schedule: "0 0 1 1 *"
  jobs:
    - name: slow
      job: {image: busybox:latest, steps: [{name: s, run: 'sleep 8'}]}
    - name: gate
      needs: [slow]
      approval: {message: "ship it?"}
      job: {image: busybox:latest, steps: [{name: g, run: 'echo shipped'}]}
"#;

#[test]
fn approve_reject_suspend_cancel_and_rerun_write_what_the_controller_reads() {
    let _cleanup = RemoveContainers("wfcli-gate-");
    let server = Server::start();
    apply(&server, "wfcli-gate", GATED);
    let out = server.cli(&["approve", "workflow", "wfcli-gate", "gate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("has not started a run"),
        "{:?}",
        text(&out)
    );

    let started = server.cli_ok(&["run", "workflow", "wfcli-gate", "--no-wait"]);
    let _ = started;
    wait_workflow(&server, "wfcli-gate", "ran run 1", |wf| {
        wf.pointer("/status/run") == Some(&Value::from(1)) && !finished(wf)
    });

    server.cli_ok(&[
        "approve",
        "workflow",
        "wfcli-gate",
        "gate",
        "--message",
        "looks good",
        "--by",
        "ana",
    ]);
    let approvals = |server: &Server| -> Value {
        let wf = workflow(server, "wfcli-gate");
        serde_json::from_str(&annotation(&wf, "orcaops.dev/approvals").expect("approvals written"))
            .unwrap()
    };
    assert_eq!(
        approvals(&server),
        serde_json::json!({"run": 1, "nodes": {"gate": {"approved": true, "message": "looks good", "by": "ana"}}})
    );
    let out = server.cli_ok(&[
        "approve",
        "workflow",
        "wfcli-gate",
        "gate",
        "--reject",
        "-m",
        "not today",
    ]);
    assert!(out.contains("rejected"), "{out}");
    let decided = approvals(&server);
    assert_eq!(decided["nodes"]["gate"]["approved"], false);
    assert_eq!(decided["nodes"]["gate"]["message"], "not today");

    // Nodes that cannot be decided, with a reason.
    let out = server.cli(&["approve", "workflow", "wfcli-gate", "slow"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("no approval gate"),
        "{:?}",
        text(&out)
    );
    let out = server.cli(&["approve", "workflow", "wfcli-gate", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("nodes with an approval gate are: gate"),
        "{:?}",
        text(&out)
    );

    server.cli_ok(&["suspend", "workflow", "wfcli-gate"]);
    assert_eq!(
        workflow(&server, "wfcli-gate").pointer("/spec/suspend"),
        Some(&Value::Bool(true))
    );
    server.cli_ok(&["resume", "workflow", "wfcli-gate"]);
    // false is the default, which the stored spec leaves out.
    assert_ne!(
        workflow(&server, "wfcli-gate").pointer("/spec/suspend"),
        Some(&Value::Bool(true))
    );

    let out = server.cli_ok(&["cancel", "workflow", "wfcli-gate"]);
    assert!(out.contains("run 1 cancel requested"), "{out}");
    assert_eq!(
        annotation(&workflow(&server, "wfcli-gate"), "orcaops.dev/cancel").as_deref(),
        Some("1")
    );

    server.cli_ok(&["rerun", "workflow", "wfcli-gate", "--failed"]);
    let wf = workflow(&server, "wfcli-gate");
    assert_eq!(
        annotation(&wf, "orcaops.dev/rerun-mode").as_deref(),
        Some("failed")
    );
    let token = annotation(&wf, "orcaops.dev/rerun").expect("a rerun token");
    assert!(!token.starts_with("run-"), "{token}");
    server.cli_ok(&["rerun", "workflow", "wfcli-gate", "--from", "gate"]);
    let wf = workflow(&server, "wfcli-gate");
    assert_eq!(
        annotation(&wf, "orcaops.dev/rerun-mode").as_deref(),
        Some("from=gate")
    );
    assert_ne!(annotation(&wf, "orcaops.dev/rerun"), Some(token));
    let out = server.cli(&["rerun", "workflow", "wfcli-gate", "--from", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("slow, gate"), "{:?}", text(&out));
    let out = server.cli(&["rerun", "job", "x", "--failed"]);
    assert_eq!(out.status.code(), Some(1));

    // Deleting the workflow deletes its Jobs (the rerun's gate may wait for a decision
    // once approvals are honoured); what they left is removed when the test ends.
    server.cli_ok(&["delete", "workflow", "wfcli-gate"]);
}

const SLOW: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: wfcli-slow
spec:
  schedule: "0 0 1 1 *"
  inputs:
    - {name: nap, default: "0"}
  jobs:
    - name: work
      job: {image: busybox:latest, steps: [{name: w, run: 'sleep ${{ inputs.nap }}; echo done'}]}
"#;

/// A node's Job has a new name in each workflow run; its baseline is the node's runs
/// across the workflow's runs, so a slow run of the node is told apart.
#[test]
fn a_nodes_anomalies_are_judged_against_the_node_in_earlier_workflow_runs() {
    let _cleanup = RemoveContainers("wfcli-slow");
    let server = Server::start();
    apply(&server, "wfcli-slow", SLOW);
    for _ in 0..6 {
        server.cli_ok(&["run", "workflow", "wfcli-slow"]);
    }
    server.cli_ok(&["run", "workflow", "wfcli-slow", "--input", "nap=6"]);
    let found = server.cli_ok(&[
        "history",
        "--all",
        "-l",
        "orcaops.dev/workflow=wfcli-slow,orcaops.dev/node=work",
        "--anomalous",
    ]);
    let rows: Vec<&str> = found
        .lines()
        .filter(|l| l.starts_with("default "))
        .collect();
    assert_eq!(rows.len(), 1, "only the slow run is anomalous: {found}");
    let job = rows[0].split_whitespace().nth(1).unwrap().to_string();
    let runs = server.cli_ok(&[
        "history",
        "--all",
        "-l",
        "orcaops.dev/node=work",
        "--limit",
        "100",
    ]);
    assert_eq!(
        runs.lines().filter(|l| l.starts_with("default ")).count(),
        7,
        "seven runs of the node, each its own Job: {runs}"
    );
    let describe = server.cli_ok(&["describe", "job", &job]);
    assert!(
        describe.contains("SlowerThanUsual") && describe.contains("over 6 runs"),
        "the slow node run is judged on the 6 before it: {describe}"
    );
    let wf = server.cli_ok(&["describe", "workflow", "wfcli-slow"]);
    let path = wf
        .lines()
        .find(|l| l.starts_with("Critical path: work ("))
        .unwrap_or_else(|| panic!("no critical path: {wf}"));
    let secs: i64 = path
        .rsplit("= ")
        .next()
        .and_then(|t| t.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("{path}"));
    assert!((6..30).contains(&secs), "the 6 s run's path: {path}");
    assert!(wf.contains("Slowest node:  work ("), "{wf}");

    // The slow run against the one before it, node by node.
    let diff = server.cli_ok(&["diff", "workflow", "wfcli-slow"]);
    assert!(
        diff.starts_with("workflow default/wfcli-slow: run 6 against run 7"),
        "{diff}"
    );
    assert!(
        diff.contains("nap=6 (changed)"),
        "the inputs differ: {diff}"
    );
    let row = diff
        .lines()
        .find(|l| l.starts_with("work "))
        .unwrap_or_else(|| panic!("no row for the node: {diff}"));
    assert!(row.contains("Succeeded -> Succeeded"), "{row}");
    assert!(row.contains("(+"), "run 7's node took longer: {row}");
    assert!(diff.contains("critical path of run 7: work ("), "{diff}");
    assert!(
        diff.contains("SlowerThanUsual"),
        "the node's anomaly: {diff}"
    );
    let none = server.cli(&["diff", "workflow", "wfcli-slow", "2", "99"]);
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        err.contains(
            "workflow wfcli-slow has no run 99; its recorded runs are 1, 2, 3, 4, 5, 6, 7"
        ),
        "{err}"
    );
}

const OVERLAP: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: wfcli-allow
spec:
  schedule: "0 0 1 1 *"
  concurrencyPolicy: Allow
  maxActiveRuns: 2
  inputs:
    - {name: nap, default: "30"}
  jobs:
    - name: work
      job: {image: busybox:latest, steps: [{name: w, run: 'sleep ${{ inputs.nap }}'}]}
    - name: gate
      needs: [work]
      approval: {message: "ship?"}
      job: {image: busybox:latest, steps: [{name: g, run: 'echo shipped'}]}
"#;

/// The runs in progress as the status shows them: the current one, and those beside it.
fn in_progress(wf: &Value) -> Vec<u64> {
    let mut runs: Vec<u64> = wf
        .pointer("/status/activeRuns")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r["run"].as_u64()).collect())
        .unwrap_or_default();
    if !finished(wf)
        && let Some(run) = wf.pointer("/status/run").and_then(Value::as_u64)
    {
        runs.push(run);
    }
    runs
}

/// The phase of run `run` in the status: current, in progress beside it, or ended.
fn run_phase(wf: &Value, run: u64) -> Option<String> {
    let status = wf.get("status")?;
    if status["run"].as_u64() == Some(run) {
        return status["phase"].as_str().map(String::from);
    }
    for list in ["activeRuns", "history"] {
        if let Some(found) = status[list]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["run"].as_u64() == Some(run)))
        {
            return found["phase"].as_str().map(String::from);
        }
    }
    None
}

#[test]
fn under_allow_runs_overlap_and_are_cancelled_and_approved_one_by_one() {
    let _cleanup = RemoveContainers("wfcli-allow-");
    let server = Server::start();
    apply(&server, "wfcli-allow", OVERLAP);
    let name = "wfcli-allow";

    // Two runs at once: each with its own Job, named and labelled by its run.
    for _ in 0..2 {
        let out = server.cli(&["run", "workflow", name, "--no-wait"]);
        assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    }
    let wf = wait_workflow(&server, name, "had runs 1 and 2 in progress", |wf| {
        in_progress(wf) == [1, 2]
    });
    assert_eq!(
        wf.pointer("/status/activeRuns/0/run"),
        Some(&Value::from(1))
    );
    wait_until(T, "both runs' containers run at once", || {
        let one = containers_with_label("orcaops.dev/name", "wfcli-allow-1-work");
        let two = containers_with_label("orcaops.dev/name", "wfcli-allow-2-work");
        (one.len() == 1 && two.len() == 1).then_some(())
    });
    let jobs = server.cli_ok(&["get", "jobs", "-l", "orcaops.dev/workflow-run=2"]);
    assert!(jobs.contains("wfcli-allow-2-work"), "{jobs}");
    assert!(!jobs.contains("wfcli-allow-1-work"), "{jobs}");

    // A third run is beyond maxActiveRuns: it waits, and says why.
    let out = server.cli(&["run", "workflow", name, "--no-wait", "--input", "nap=1"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("2 runs are in progress (1 and 2), the most spec.maxActiveRuns (2) allows"),
        "{stderr}"
    );
    let wf = wait_workflow(&server, name, "said a run waits", |wf| {
        wf.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "RunWaiting" && c["status"] == "True")
            })
    });
    assert_eq!(in_progress(&wf), [1, 2], "the third run has not started");

    // Which run to cancel must be said; then only that one stops, and the waiting run
    // takes its place.
    let out = server.cli(&["cancel", "workflow", name]);
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("2 runs in progress (1 and 2)") && stderr.contains("--run N"),
        "{stderr}"
    );
    let out = server.cli_ok(&["cancel", "workflow", name, "--run", "1"]);
    assert!(out.contains("run 1 cancel requested"), "{out}");
    let wf = wait_workflow(&server, name, "cancelled run 1 and started run 3", |wf| {
        in_progress(wf) == [2, 3]
    });
    assert_eq!(run_phase(&wf, 1).as_deref(), Some("Cancelled"));
    wait_until(T, "run 1's container is stopped", || {
        containers_with_label("orcaops.dev/name", "wfcli-allow-1-work")
            .is_empty()
            .then_some(())
    });

    // Both runs reach their approval gate; a decision must name its run.
    let wf = wait_workflow(&server, name, "had runs 2 and 3 wait for approval", |wf| {
        run_phase(wf, 2).as_deref() == Some("WaitingApproval")
            && run_phase(wf, 3).as_deref() == Some("WaitingApproval")
    });
    assert_eq!(in_progress(&wf), [2, 3]);
    let out = server.cli(&["approve", "workflow", name, "gate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("--run N"), "{:?}", text(&out));
    server.cli_ok(&[
        "approve", "workflow", name, "gate", "--run", "2", "--by", "ana",
    ]);
    server.cli_ok(&[
        "approve",
        "workflow",
        name,
        "gate",
        "--run",
        "3",
        "--reject",
        "-m",
        "not this one",
    ]);
    let wf = wait_workflow(&server, name, "ended runs 2 and 3", |wf| {
        in_progress(wf).is_empty()
    });
    assert_eq!(run_phase(&wf, 2).as_deref(), Some("Succeeded"), "{wf}");
    assert_eq!(run_phase(&wf, 3).as_deref(), Some("Failed"), "{wf}");
    // The approved gate ran as a Job of run 2; the rejected one never got a Job.
    let jobs = server.cli_ok(&["get", "jobs", "-l", "orcaops.dev/workflow=wfcli-allow"]);
    assert!(jobs.contains("wfcli-allow-2-gate"), "{jobs}");
    assert!(!jobs.contains("wfcli-allow-3-gate"), "{jobs}");
    let logs = server.cli_ok(&["logs", "job", "wfcli-allow-2-gate"]);
    assert!(logs.contains("shipped"), "{logs}");
    let history = server.cli_ok(&["history", "workflow", name]);
    for run in ["1", "2", "3"] {
        assert!(
            history
                .lines()
                .any(|l| l.split_whitespace().next() == Some(run)),
            "run {run} in the history:\n{history}"
        );
    }
    server.cli_ok(&["delete", "workflow", name]);
}

#[test]
fn a_key_retried_after_its_run_left_the_status_history_finds_it_in_the_run_records() {
    let _cleanup = RemoveContainers("wfcli-keys-");
    let server = Server::start();
    apply(
        &server,
        "wfcli-keys",
        &ONE_NODE.replace("wfcli-idem", "wfcli-keys"),
    );
    // 12 runs, each with its key: the status history keeps the last 10.
    for i in 1..=12 {
        let key = format!("pipeline-{i}");
        let out = server.cli(&[
            "run",
            "workflow",
            "wfcli-keys",
            "--idempotency-key",
            &key,
            "--timeout",
            "120",
        ]);
        assert_eq!(out.status.code(), Some(0), "run {i}: {:?}", text(&out));
    }
    let wf = workflow(&server, "wfcli-keys");
    assert_eq!(wf.pointer("/status/run"), Some(&Value::from(12)));
    let remembered: Vec<u64> = wf
        .pointer("/status/history")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter_map(|h| h["run"].as_u64())
        .collect();
    assert!(
        !remembered.contains(&1),
        "run 1 has left the history: {remembered:?}"
    );

    // The first key again: run 1, from the run records; no run 13.
    let out = server.cli(&[
        "run",
        "workflow",
        "wfcli-keys",
        "--idempotency-key",
        "pipeline-1",
        "--timeout",
        "60",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("run 1 (already started by this request)"),
        "{stderr}"
    );
    assert!(stderr.contains("run 1: Succeeded"), "{stderr}");
    std::thread::sleep(Duration::from_secs(2));
    let wf = workflow(&server, "wfcli-keys");
    assert_eq!(wf.pointer("/status/run"), Some(&Value::from(12)), "{wf}");
    assert_ne!(
        annotation(&wf, "orcaops.dev/rerun").as_deref(),
        Some("run-pipeline-1"),
        "the retry wrote no new request"
    );
    assert!(
        containers_with_label("orcaops.dev/name", "wfcli-keys-13-only").is_empty(),
        "a 13th run started a container"
    );
}

#[test]
fn history_shows_the_nodes_of_a_run_in_progress_from_its_record() {
    let _cleanup = RemoveContainers("wfcli-live-");
    let server = Server::start();
    apply(
        &server,
        "wfcli-live",
        r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: wfcli-live
spec:
  schedule: "0 0 1 1 *"
  jobs:
    - name: quick
      job: {image: busybox:latest, steps: [{name: q, run: 'echo done'}]}
    - name: slow
      needs: [quick]
      job: {image: busybox:latest, steps: [{name: s, run: 'sleep 60'}]}
"#,
    );
    server.cli_ok(&["run", "workflow", "wfcli-live", "--no-wait"]);
    wait_workflow(&server, "wfcli-live", "ran its slow node", |wf| {
        wf.pointer("/status/nodes/1/phase") == Some(&Value::from("Running"))
    });
    // The run record was written as the nodes changed: it has quick done and slow
    // running, not the nodes as they were when the run started.
    let history = wait_until(T, "history shows the run's nodes", || {
        let out = server.cli_ok(&["history", "workflow", "wfcli-live"]);
        out.contains("run 1 in progress, node by node:")
            .then_some(out)
    });
    let row = |node: &str| {
        history
            .lines()
            .find(|l| l.split_whitespace().next() == Some(node))
            .unwrap_or_else(|| panic!("no row for {node}:\n{history}"))
            .to_string()
    };
    assert!(row("quick").contains("Succeeded"), "{history}");
    assert!(row("slow").contains("Running"), "{history}");
    let progress = history.lines().nth(1).unwrap_or_default();
    assert!(progress.contains("1/2"), "{history}");
    server.cli_ok(&["cancel", "workflow", "wfcli-live"]);
    wait_workflow(&server, "wfcli-live", "was cancelled", finished);
    let history = server.cli_ok(&["history", "workflow", "wfcli-live"]);
    assert!(!history.contains("in progress, node by node"), "{history}");
    assert!(history.contains("Cancelled"), "{history}");
}
