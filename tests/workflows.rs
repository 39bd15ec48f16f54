//! Workflows end to end: the real `orcaops` binary, a watched folder, real Docker. Each
//! node is a real Job, run by the Job controller.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(90);

fn workflow(server: &Server, name: &str) -> Option<Value> {
    let out = server.cli(&["get", "workflow", name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("get -o json prints JSON"))
}

fn wait_workflow(server: &Server, name: &str, phase: &str) -> Value {
    let mut last = Value::Null;
    poll(T, || {
        let wf = workflow(server, name)?;
        last = wf.clone();
        (wf.pointer("/status/phase").and_then(Value::as_str) == Some(phase)).then_some(wf)
    })
    .unwrap_or_else(|| {
        panic!(
            "workflow {name} never reached {phase}; last seen:\n{}\nserver log tail:\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            tail(&server.log(), 60)
        )
    })
}

fn time(job: &Value, field: &str) -> DateTime<Utc> {
    job.pointer(&format!("/status/{field}"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no status.{field} in {job}"))
        .parse()
        .unwrap()
}

const DIAMOND: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: diamond
spec:
  inputs: [{name: greeting, default: hello}]
  jobs:
    - name: top
      job: {image: busybox:latest, steps: [{name: s, run: 'echo ${{ inputs.greeting }} from top'}]}
    - name: left
      needs: [top]
      job: {image: busybox:latest, steps: [{name: s, run: 'sleep 1; echo left'}]}
    - name: right
      needs: [top]
      matrix: {side: [r1, r2]}
      job: {image: busybox:latest, steps: [{name: s, run: 'sleep 2; echo ${{ matrix.side }}'}]}
    - name: bottom
      needs: [left, right]
      if: "jobs.left.phase == 'Succeeded' && jobs.right.phase == 'Succeeded'"
      job: {image: busybox:latest, steps: [{name: s, run: 'echo bottom of run ${{ workflow.run }}'}]}
    - name: never
      needs: [top]
      if: "inputs.greeting == 'bye'"
      job: {image: busybox:latest, steps: [{name: s, run: 'echo should not run'}]}
"#;

#[test]
fn a_diamond_runs_each_node_as_a_job_in_the_order_of_its_needs() {
    let server = Server::start();
    server.write("diamond.yaml", DIAMOND);
    let wf = wait_workflow(&server, "diamond", "Succeeded");
    assert_eq!(wf.pointer("/status/run"), Some(&Value::from(1)));
    assert_eq!(
        wf.pointer("/status/progress").and_then(Value::as_str),
        Some("6/6")
    );
    let nodes = wf
        .pointer("/status/nodes")
        .and_then(Value::as_array)
        .unwrap();
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name} in {nodes:?}"))
    };
    assert_eq!(node("never")["phase"], "Skipped");
    assert_eq!(
        node("never")["message"],
        "if `inputs.greeting == 'bye'` is false"
    );
    assert_eq!(node("right-side-r2")["job"], "diamond-1-right-side-r2");

    // Every node that ran is a Job of its own, labelled with the workflow, run and node.
    let listed = server.cli_ok(&["get", "jobs", "-l", "orcaops.dev/workflow=diamond"]);
    for job in [
        "diamond-1-top",
        "diamond-1-left",
        "diamond-1-right-side-r1",
        "diamond-1-right-side-r2",
        "diamond-1-bottom",
    ] {
        assert!(listed.contains(job), "{job} missing from:\n{listed}");
    }
    assert!(!listed.contains("never"), "{listed}");
    assert_eq!(listed.lines().count(), 6, "a header and 5 jobs:\n{listed}");

    // The bottom started only once both middle branches had ended.
    let job = |name: &str| server.job(name).unwrap_or_else(|| panic!("no job {name}"));
    let bottom_start = time(&job("diamond-1-bottom"), "startTime");
    for middle in [
        "diamond-1-left",
        "diamond-1-right-side-r1",
        "diamond-1-right-side-r2",
    ] {
        let j = job(middle);
        assert!(
            time(&j, "completionTime") <= bottom_start,
            "{middle} ended at {} after bottom started at {bottom_start}",
            time(&j, "completionTime")
        );
        assert!(time(&j, "startTime") >= time(&job("diamond-1-top"), "completionTime"));
        assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "Workflow");
    }
    let top = job("diamond-1-top");
    assert_eq!(top["metadata"]["labels"]["orcaops.dev/node"], "top");
    assert_eq!(top["metadata"]["labels"]["orcaops.dev/workflow-run"], "1");
    let logs = server.cli_ok(&["logs", "job", "diamond-1-top"]);
    assert!(
        logs.contains("hello from top"),
        "inputs are rendered: {logs}"
    );
    let logs = server.cli_ok(&["logs", "job", "diamond-1-right-side-r2"]);
    assert!(logs.contains("r2"), "the matrix is rendered: {logs}");
    let logs = server.cli_ok(&["logs", "job", "diamond-1-bottom"]);
    assert!(logs.contains("bottom of run 1"), "{logs}");

    // The columns of `get workflows`.
    let table = server.cli_ok(&["get", "workflows"]);
    let header = table.lines().next().unwrap();
    for column in ["PHASE", "PROGRESS", "RUN", "AGE"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.contains("6/6"), "{table}");

    // Deleting the workflow's file deletes it, and its Jobs with it.
    std::fs::remove_file(server.dir.join("diamond.yaml")).unwrap();
    wait_until(
        Duration::from_secs(30),
        "the workflow's Jobs are deleted",
        || {
            let listed = server.cli_ok(&["get", "jobs", "-l", "orcaops.dev/workflow=diamond"]);
            (!listed.contains("diamond-1")).then_some(())
        },
    );
    assert!(workflow(&server, "diamond").is_none());
}

#[test]
fn a_failed_node_skips_what_needs_it_and_fails_the_run() {
    let server = Server::start();
    server.write(
        "fails.yaml",
        r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: fails
spec:
  failFast: false
  jobs:
    - name: broken
      job: {image: busybox:latest, steps: [{name: s, run: 'exit 3'}]}
    - name: after
      needs: [broken]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo never'}]}
    - name: tolerated
      continueOnError: true
      job: {image: busybox:latest, steps: [{name: s, run: 'exit 1'}]}
    - name: goes-on
      needs: [tolerated]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo on'}]}
"#,
    );
    let wf = wait_workflow(&server, "fails", "Failed");
    let nodes = wf
        .pointer("/status/nodes")
        .and_then(Value::as_array)
        .unwrap();
    let phase = |name: &str| {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .map(|n| (n["phase"].clone(), n["message"].clone()))
            .unwrap()
    };
    assert_eq!(phase("broken").0, "Failed");
    assert_eq!(
        phase("after"),
        ("Skipped".into(), "needs broken failed".into())
    );
    assert_eq!(phase("tolerated").0, "Failed");
    assert_eq!(phase("goes-on").0, "Succeeded");
    let summary = wf
        .pointer("/status/summary")
        .and_then(Value::as_str)
        .unwrap();
    assert!(summary.starts_with("run 1 failed:"), "{summary}");
    assert!(summary.contains("broken"), "{summary}");
}

#[test]
fn a_bad_expression_is_refused_at_apply_with_its_place() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: bad
spec:
  jobs:
    - name: a
      job: {image: busybox:latest, steps: [{name: s, run: 'true'}]}
    - name: b
      if: "jobs.c.phase == 'Succeeded'"
      job: {image: busybox:latest, steps: [{name: s, run: 'echo ${{ nope.x }}'}]}
    - name: c
      needs: [a]
      job: {image: busybox:latest, steps: [{name: s, run: 'true'}]}
"#,
    )
    .unwrap();
    let out = server.cli(&["apply", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:10:7"), "{err}");
    assert!(err.contains("spec.jobs[1].if"), "{err}");
    assert!(err.contains("not upstream of \"b\""), "{err}");
    assert!(err.contains("spec.jobs[1].job.steps[0].run"), "{err}");
    assert!(err.contains("unknown variable \"nope\""), "{err}");
    assert!(workflow(&server, "bad").is_none());
}

#[test]
fn the_example_workflow_runs() {
    let server = Server::start();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/other-kinds/workflow.yaml"
    ))
    .unwrap();
    server.write("workflow.yaml", &example);
    let wf = wait_workflow(&server, "build-and-test", "Succeeded");
    assert_eq!(
        wf.pointer("/status/progress").and_then(Value::as_str),
        Some("6/6")
    );
    let logs = server.cli_ok(&["logs", "job", "build-and-test-1-test-shard-2"]);
    assert!(logs.contains("testing shard 2"), "{logs}");
    let logs = server.cli_ok(&["logs", "job", "build-and-test-1-report"]);
    assert!(logs.contains("tests Succeeded, lint Succeeded"), "{logs}");
}

#[test]
fn kill_9_mid_workflow_continues_the_same_run_with_one_job_per_node() {
    let mut server = Server::start();
    server.write(
        "crash.yaml",
        r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: crash
spec:
  jobs:
    - name: first
      job: {image: busybox:latest, steps: [{name: s, run: 'echo first-ran'}]}
    - name: slow
      needs: [first]
      job: {image: busybox:latest, steps: [{name: s, run: 'sleep 4; echo slow-done'}]}
    - name: last
      needs: [slow]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo last-ran'}]}
"#,
    );
    server.wait_phase("crash-1-slow", "Running", T);
    server.kill();
    std::thread::sleep(Duration::from_millis(500));
    server.restart();
    let wf = wait_workflow(&server, "crash", "Succeeded");
    assert_eq!(
        wf.pointer("/status/run"),
        Some(&Value::from(1)),
        "the same run"
    );
    let listed = server.cli_ok(&["get", "jobs", "-l", "orcaops.dev/workflow=crash"]);
    assert_eq!(
        listed.lines().count(),
        4,
        "a header and one Job per node:\n{listed}"
    );
    for (job, line) in [
        ("crash-1-first", "first-ran"),
        ("crash-1-slow", "slow-done"),
        ("crash-1-last", "last-ran"),
    ] {
        let j = server.job(job).unwrap();
        assert_eq!(
            j.pointer("/status/totalRuns"),
            Some(&Value::from(1)),
            "{job}"
        );
        assert_eq!(j.pointer("/status/attempt"), Some(&Value::from(1)), "{job}");
        let logs = server.cli_ok(&["logs", "job", job]);
        assert_eq!(logs.matches(line).count(), 1, "{job} ran once: {logs}");
    }
}
