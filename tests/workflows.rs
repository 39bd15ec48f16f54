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

/// `yaml` with `annotations` added under its metadata (the folder applies them as any
/// field; the controller reads them).
fn annotated(yaml: &str, annotations: &[(&str, &str)]) -> String {
    let mut block = String::from("  annotations:\n");
    for (key, value) in annotations {
        block.push_str(&format!("    {key}: '{value}'\n"));
    }
    yaml.replacen("metadata:\n", &format!("metadata:\n{block}"), 1)
}

fn node<'a>(wf: &'a Value, name: &str) -> &'a Value {
    wf.pointer("/status/nodes")
        .and_then(Value::as_array)
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no node {name} in {wf}"))
}

const GATED: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: gated
spec:
  jobs:
    - name: build
      job: {image: busybox:latest, steps: [{name: s, run: 'echo version=1.2 >> $ORCAOPS_OUTPUT'}]}
    - name: deploy
      needs: [build]
      approval: {message: 'Deploy ${{ jobs.build.outputs.version }}?'}
      job: {image: busybox:latest, steps: [{name: s, run: 'echo deploying'}]}
    - name: after
      needs: [deploy]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo after'}]}
"#;

#[test]
fn an_approval_node_waits_until_approved_and_a_rejection_fails_the_run() {
    let server = Server::start();
    server.write("gated.yaml", GATED);
    let wf = wait_workflow(&server, "gated", "WaitingApproval");
    assert_eq!(node(&wf, "deploy")["phase"], "WaitingApproval");
    assert_eq!(node(&wf, "deploy")["message"], "Deploy 1.2?");
    assert!(
        server.job("gated-1-deploy").is_none(),
        "no Job before approval"
    );

    server.write(
        "gated.yaml",
        &annotated(
            GATED,
            &[(
                "orcaops.dev/approvals",
                r#"{"run": 1, "nodes": {"deploy": {"approved": true, "message": "ship it", "by": "alice"}}}"#,
            )],
        ),
    );
    let wf = wait_workflow(&server, "gated", "Succeeded");
    assert_eq!(node(&wf, "deploy")["message"], "approved by alice: ship it");
    let logs = server.cli_ok(&["logs", "job", "gated-1-deploy"]);
    assert!(logs.contains("deploying"), "{logs}");

    // Run 2, rejected: the node fails with who and why, and what follows is skipped.
    server.write(
        "gated.yaml",
        &annotated(
            GATED,
            &[
                ("orcaops.dev/rerun", "2"),
                (
                    "orcaops.dev/approvals",
                    r#"{"run": 2, "nodes": {"deploy": {"approved": false, "message": "not today", "by": "bob"}}}"#,
                ),
            ],
        ),
    );
    let wf = poll(T, || {
        let wf = workflow(&server, "gated")?;
        (wf.pointer("/status/run") == Some(&Value::from(2))
            && wf.pointer("/status/phase").and_then(Value::as_str) == Some("Failed"))
        .then_some(wf)
    })
    .unwrap_or_else(|| panic!("run 2 never failed:\n{}", tail(&server.log(), 60)));
    assert_eq!(node(&wf, "deploy")["phase"], "Failed");
    assert_eq!(node(&wf, "deploy")["message"], "rejected by bob: not today");
    assert_eq!(node(&wf, "after")["phase"], "Skipped");
    assert!(server.job("gated-2-deploy").is_none());
    let events = server.cli_ok(&["describe", "workflow", "gated"]);
    assert!(events.contains("NodeRejected"), "{events}");
}

const FLAKY: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: flaky
spec:
  inputs: [{name: pass, default: "no"}]
  jobs:
    - name: first
      job: {image: busybox:latest, steps: [{name: s, run: 'echo token=abc >> $ORCAOPS_OUTPUT'}]}
    - name: side
      job: {image: busybox:latest, steps: [{name: s, run: 'echo side'}]}
    - name: shaky
      needs: [first]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo got ${{ jobs.first.outputs.token }}; test "${{ inputs.pass }}" = yes'}]}
    - name: last
      needs: [shaky]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo last'}]}
"#;

#[test]
fn rerun_failed_runs_only_what_did_not_succeed() {
    let mut server = Server::start();
    server.write("flaky.yaml", FLAKY);
    let wf = wait_workflow(&server, "flaky", "Failed");
    assert_eq!(node(&wf, "shaky")["phase"], "Failed");
    assert_eq!(node(&wf, "last")["phase"], "Skipped");

    server.write(
        "flaky.yaml",
        &annotated(
            FLAKY,
            &[
                ("orcaops.dev/rerun", "again"),
                ("orcaops.dev/rerun-mode", "failed"),
                ("orcaops.dev/inputs", r#"{"pass": "yes"}"#),
            ],
        ),
    );
    let wf = poll(T, || {
        let wf = workflow(&server, "flaky")?;
        (wf.pointer("/status/run") == Some(&Value::from(2))
            && wf.pointer("/status/phase").and_then(Value::as_str) == Some("Succeeded"))
        .then_some(wf)
    })
    .unwrap_or_else(|| panic!("run 2 never succeeded:\n{}", tail(&server.log(), 60)));
    for kept in ["first", "side"] {
        assert_eq!(node(&wf, kept)["message"], "kept from run 1", "{wf}");
        assert_eq!(node(&wf, kept)["job"], format!("flaky-1-{kept}"));
        assert!(server.job(&format!("flaky-2-{kept}")).is_none());
    }
    assert_eq!(node(&wf, "first")["outputs"]["token"], "abc");
    let logs = server.cli_ok(&["logs", "job", "flaky-2-shaky"]);
    assert!(
        logs.contains("got abc"),
        "kept outputs reach the rerun: {logs}"
    );

    // The Jobs per node: the kept ones ran once in all, the others once per run.
    for (label, jobs) in [
        ("first", vec!["flaky-1-first"]),
        ("side", vec!["flaky-1-side"]),
        ("shaky", vec!["flaky-1-shaky", "flaky-2-shaky"]),
        ("last", vec!["flaky-2-last"]),
    ] {
        let listed = server.cli_ok(&["get", "jobs", "-l", &format!("orcaops.dev/node={label}")]);
        let names: Vec<&str> = listed
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(names, jobs, "{listed}");
    }
    let uids: Vec<(String, String)> = [
        "flaky-1-first",
        "flaky-1-side",
        "flaky-1-shaky",
        "flaky-2-shaky",
        "flaky-2-last",
    ]
    .iter()
    .map(|job| {
        let j = server.job(job).unwrap();
        (
            job.to_string(),
            j["metadata"]["uid"].as_str().unwrap().to_string(),
        )
    })
    .collect();

    // Each of those Jobs ran one container (its one attempt); each run has its record,
    // with every node and what started it.
    server.kill();
    let (runs, attempts) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = orcaops::store::LocalStore::open(&server.data_dir)
            .await
            .expect("the data dir opens once the server is gone");
        let mut attempts = Vec::new();
        for (job, uid) in &uids {
            let made = store.attempts(uid, 1).await.unwrap();
            attempts.push((job.clone(), made.len()));
        }
        (
            store.workflow_runs("default", "flaky").await.unwrap(),
            attempts,
        )
    });
    for (job, count) in attempts {
        assert_eq!(count, 1, "{job} ran one container");
    }
    let seen: Vec<(u32, String, String)> = runs
        .iter()
        .map(|r| (r.run, format!("{:?}", r.phase), r.trigger.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (2, "Succeeded".into(), "rerun".into()),
            (1, "Failed".into(), "spec".into())
        ]
    );
    assert_eq!(runs[0].nodes.len(), 4);
    assert_eq!(runs[0].inputs["pass"], "yes");
}

#[test]
fn until_repeats_a_node_until_its_outputs_satisfy_the_condition() {
    let server = Server::start();
    server.write(
        "poll.yaml",
        r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: poll
spec:
  jobs:
    - name: start
      job: {image: busybox:latest, steps: [{name: s, run: 'echo t0=$(date +%s) >> $ORCAOPS_OUTPUT'}]}
    - name: wait-ready
      needs: [start]
      until: {expression: "outputs.ready == 'yes'", limit: 30, delaySeconds: 1}
      job:
        image: busybox:latest
        steps:
          - name: s
            run: |
              if [ $(( $(date +%s) - ${{ jobs.start.outputs.t0 }} )) -ge 3 ]; then r=yes; else r=no; fi
              echo "ready=$r" >> $ORCAOPS_OUTPUT
    - name: after
      needs: [wait-ready]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo after'}]}
"#,
    );
    let wf = wait_workflow(&server, "poll", "Succeeded");
    let looped = node(&wf, "wait-ready");
    let iterations = looped["iterations"].as_u64().unwrap();
    assert!(iterations >= 2, "{looped}");
    assert_eq!(looped["outputs"]["ready"], "yes");
    assert_eq!(
        looped["message"],
        format!("until `outputs.ready == 'yes'` was true after {iterations} iterations")
    );
    assert_eq!(looped["job"], format!("poll-1-wait-ready-i{iterations}"));
    // A Job per iteration, labelled with it; the first without.
    let listed = server.cli_ok(&["get", "jobs", "-l", "orcaops.dev/node=wait-ready"]);
    assert_eq!(
        listed.lines().count() as u64,
        iterations + 1,
        "a header and one Job per iteration:\n{listed}"
    );
    let second = server.job("poll-1-wait-ready-i2").unwrap();
    assert_eq!(second["metadata"]["labels"]["orcaops.dev/iteration"], "2");
    assert_eq!(node(&wf, "after")["phase"], "Succeeded");
}

#[test]
fn a_cron_tick_starts_a_run() {
    let server = Server::start();
    server.write(
        "cron.yaml",
        r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: cron
spec:
  schedule: "* * * * *"
  jobs:
    - name: tick
      job: {image: busybox:latest, steps: [{name: s, run: 'echo tick of run ${{ workflow.run }}'}]}
"#,
    );
    // Nothing is written before the first tick: the Workflow is only woken at it.
    std::thread::sleep(Duration::from_secs(1));
    let before = workflow(&server, "cron").expect("the workflow is stored");
    if before.pointer("/status/run").is_none() {
        assert!(
            before.pointer("/status/nextScheduleTime").is_none(),
            "no status before the first run: {before}"
        );
    }

    let wf = poll(Duration::from_secs(100), || {
        let wf = workflow(&server, "cron")?;
        (wf.pointer("/status/phase").and_then(Value::as_str) == Some("Succeeded")).then_some(wf)
    })
    .unwrap_or_else(|| panic!("no tick ran:\n{}", tail(&server.log(), 60)));
    assert_eq!(wf.pointer("/status/run"), Some(&Value::from(1)));
    let trigger = wf
        .pointer("/status/runTrigger")
        .and_then(Value::as_str)
        .unwrap();
    let tick: DateTime<Utc> = wf["status"]["lastScheduleTime"]
        .as_str()
        .expect("lastScheduleTime")
        .parse()
        .unwrap();
    assert_eq!(
        trigger,
        format!(
            "schedule={}",
            tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    );
    assert_eq!(tick.timestamp() % 60, 0, "a minute's tick: {tick}");
    let started = time(&wf, "startTime");
    assert!(started >= tick, "started {started} before its tick {tick}");
    let next: DateTime<Utc> = wf["status"]["nextScheduleTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next > time(&wf, "startTime"),
        "the next tick is ahead: {next}"
    );
    let logs = server.cli_ok(&["logs", "job", "cron-1-tick"]);
    assert!(logs.contains("tick of run 1"), "{logs}");
}

const STOPPABLE: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: stoppable
spec:
  jobs:
    - name: slow
      job: {image: busybox:latest, steps: [{name: s, run: 'sleep 60'}]}
    - name: after
      needs: [slow]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo after'}]}
"#;

#[test]
fn the_cancel_annotation_cancels_the_run_in_progress() {
    let server = Server::start();
    server.write("stoppable.yaml", STOPPABLE);
    server.wait_phase("stoppable-1-slow", "Running", T);
    server.write(
        "stoppable.yaml",
        &annotated(STOPPABLE, &[("orcaops.dev/cancel", "latest")]),
    );
    let wf = wait_workflow(&server, "stoppable", "Cancelled");
    assert_eq!(wf.pointer("/status/cancelLatestRun"), Some(&Value::from(1)));
    assert_eq!(node(&wf, "slow")["phase"], "Cancelled");
    assert_eq!(
        node(&wf, "slow")["message"],
        "cancelled: orcaops.dev/cancel asked for it"
    );
    assert_eq!(node(&wf, "after")["phase"], "Cancelled");
    wait_until(
        Duration::from_secs(30),
        "the running node's Job is deleted",
        || server.job("stoppable-1-slow").is_none().then_some(()),
    );
    // `latest` was run 1: a new run is not cancelled by it.
    server.write(
        "stoppable.yaml",
        &annotated(
            STOPPABLE,
            &[("orcaops.dev/cancel", "latest"), ("orcaops.dev/rerun", "2")],
        ),
    );
    server.wait_phase("stoppable-2-slow", "Running", T);
    let wf = workflow(&server, "stoppable").unwrap();
    assert_eq!(wf.pointer("/status/run"), Some(&Value::from(2)));
    assert_eq!(
        wf.pointer("/status/phase").and_then(Value::as_str),
        Some("Running")
    );
    // A run number cancels that run (and stops its container before the test ends).
    server.write(
        "stoppable.yaml",
        &annotated(
            STOPPABLE,
            &[("orcaops.dev/cancel", "2"), ("orcaops.dev/rerun", "2")],
        ),
    );
    let wf = wait_workflow(&server, "stoppable", "Cancelled");
    assert_eq!(wf.pointer("/status/run"), Some(&Value::from(2)));
    assert_eq!(wf.pointer("/status/cancelLatestRun"), None);
}
