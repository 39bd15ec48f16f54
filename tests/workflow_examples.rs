//! The workflow examples under examples/workflows/ run as their comments say: the real
//! `orcaops` binary watching a folder, real Docker. `ci.yaml` (outputs, a service per
//! matrix shard, an `if`, an approval) and `nightly.yaml` (a schedule that starts nothing
//! when applied, run on demand, an `until` loop).

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(240);

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/workflows")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn node<'a>(wf: &'a Value, name: &str) -> &'a Value {
    wf.pointer("/status/nodes")
        .and_then(Value::as_array)
        .and_then(|nodes| nodes.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no node {name} in {wf}"))
}

fn phase(wf: &Value) -> &str {
    wf.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Removes the containers the examples' Jobs left when the test ends.
struct RemoveContainers(&'static [&'static str]);

impl Drop for RemoveContainers {
    fn drop(&mut self) {
        for workflow in self.0 {
            for name in containers_with_label("orcaops.dev/workflow", workflow) {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f", &name])
                    .output();
            }
        }
    }
}

#[test]
fn the_ci_example_passes_outputs_uses_its_service_and_waits_for_approval() {
    let _cleanup = RemoveContainers(&["ci"]);
    let started = chrono::Utc::now().timestamp() - 1;
    let server = Server::start();
    server.write("ci.yaml", &example("ci.yaml"));
    let wf = server.wait_workflow("ci", "waits for the release approval", T, |wf| {
        phase(wf) == "WaitingApproval" || matches!(phase(wf), "Failed" | "Cancelled")
    });
    assert_eq!(phase(&wf), "WaitingApproval", "{wf}");
    assert_eq!(node(&wf, "build")["outputs"]["version"], "1.1.0", "{wf}");
    for suite in ["unit", "api"] {
        for shard in ["1", "2"] {
            let name = format!("test-suite-{suite}-shard-{shard}");
            let name = if wf.to_string().contains(&name) {
                name
            } else {
                format!("test-shard-{shard}-suite-{suite}")
            };
            assert_eq!(node(&wf, &name)["phase"], "Succeeded", "{name}: {wf}");
        }
    }
    assert_eq!(
        node(&wf, "lint")["phase"],
        "Succeeded",
        "ref main runs lint: {wf}"
    );
    let release = node(&wf, "release");
    assert_eq!(release["phase"], "WaitingApproval", "{wf}");
    assert_eq!(release["message"], "Release 1.1.0 of main?", "{wf}");

    let shard_logs = server.cli_ok(&["logs", "workflow", "ci", "--node", "test"]);
    assert_eq!(
        shard_logs.matches("of 1.1.0: api says pong").count(),
        4,
        "each shard reached its own service by name: {shard_logs}"
    );

    server.cli_ok(&[
        "approve",
        "workflow",
        "ci",
        "release",
        "--message",
        "ship it",
    ]);
    let wf = server.wait_workflow("ci", "ends", T, |wf| {
        matches!(phase(wf), "Succeeded" | "Failed" | "Cancelled")
    });
    assert_eq!(phase(&wf), "Succeeded", "{wf}");
    let deploy = server.cli_ok(&["logs", "workflow", "ci", "--node", "deploy"]);
    assert!(deploy.contains("deployed 1.1.0"), "{deploy}");
    // Containers carry their node's labels: the daemon's own record of what it created
    // (containers are removed once harvested) shows one container per node.
    let created = std::process::Command::new("docker")
        .args([
            "events",
            "--since",
            &started.to_string(),
            "--until",
            // Whole seconds: the current one must be in.
            &(chrono::Utc::now().timestamp() + 2).to_string(),
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--filter",
            "label=orcaops.dev/workflow=ci",
            "--format",
            "{{index .Actor.Attributes \"orcaops.dev/node\"}}",
        ])
        .output()
        .expect("docker events runs");
    let created = String::from_utf8_lossy(&created.stdout).to_string();
    for node in ["build", "lint", "release", "deploy"] {
        assert_eq!(
            created.lines().filter(|l| *l == node).count(),
            1,
            "one container created for node {node}: {created}"
        );
    }
    let jobs = server.cli_ok(&["get", "jobs", "-l", "orcaops.dev/workflow=ci"]);
    assert_eq!(
        jobs.lines().skip(1).count(),
        8,
        "build, 4 shards, lint, release and deploy, and nothing else: {jobs}"
    );
}

#[test]
fn the_nightly_example_waits_for_its_schedule_and_runs_on_demand() {
    let _cleanup = RemoveContainers(&["nightly"]);
    let server = Server::start();
    server.write("nightly.yaml", &example("nightly.yaml"));
    wait_until(T, "workflow nightly is stored", || {
        server.workflow("nightly").map(|_| ())
    });
    // A schedule means applying starts nothing.
    std::thread::sleep(Duration::from_secs(2));
    let wf = server.workflow("nightly").unwrap();
    assert!(
        wf.pointer("/status/run").is_none(),
        "no run before its tick: {wf}"
    );
    assert!(
        containers_with_label("orcaops.dev/workflow", "nightly").is_empty(),
        "no container before its tick"
    );

    let out = server.cli(&["run", "workflow", "nightly"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let wf = server.workflow("nightly").unwrap();
    assert_eq!(phase(&wf), "Succeeded", "{wf}");
    let wait = node(&wf, "wait-for-data");
    assert_eq!(wait["iterations"], 3, "ready on the third try: {wf}");
    assert_eq!(wait["outputs"]["ready"], "yes", "{wf}");
    let backup = server.cli_ok(&["logs", "workflow", "nightly", "--node", "backup"]);
    assert!(backup.contains("backing up at"), "{backup}");
}
