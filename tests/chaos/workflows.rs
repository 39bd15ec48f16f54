//! The Workflows of the kill-9 test: two diamonds and a small matrix, some nodes sleeping
//! 1-2 s, created among the Jobs so that they run while the server is killed. Checked
//! afterwards by the labels of their Jobs (`orcaops.dev/workflow`, `workflow-run`,
//! `node`), the Jobs' run records and the containers Docker made for them: every Workflow
//! ends, each node of run 1 has exactly one Job, each Job one run with one container per
//! attempt, and no node's step ran twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::IMAGE;
use crate::serve::{API, ChaosServer, phase};

/// Containers Docker created and started, by (Job uid, run, attempt).
pub type Made = BTreeMap<(String, u32, u32), (u32, u32)>;

/// A Workflow to create: its name, its body and how many nodes a run of it has.
pub struct Planned {
    pub name: String,
    pub body: Value,
    pub nodes: usize,
}

fn node(wf: &str, name: &str, needs: &[&str], sleep: u32) -> Value {
    let run = match sleep {
        0 => format!("echo ran-{wf}-{name}"),
        s => format!("sleep {s}; echo ran-{wf}-{name}"),
    };
    json!({
        "name": name,
        "needs": needs,
        "job": {"image": IMAGE, "steps": [{"name": "work", "run": run}]},
    })
}

fn workflow(name: &str, jobs: Vec<Value>) -> Value {
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"jobs": jobs},
    })
}

/// Two diamonds (top, then left and right at once, then bottom) and a matrix of three
/// shards at most two at a time between a build and a report.
pub fn planned() -> Vec<Planned> {
    let mut all = Vec::new();
    for i in 0..2 {
        let wf = format!("wf-diamond-{i}");
        let body = workflow(
            &wf,
            vec![
                node(&wf, "top", &[], 0),
                node(&wf, "left", &["top"], 1),
                node(&wf, "right", &["top"], 2),
                node(&wf, "bottom", &["left", "right"], 0),
            ],
        );
        all.push(Planned {
            name: wf,
            body,
            nodes: 4,
        });
    }
    let wf = "wf-matrix-0".to_string();
    let mut test = node(&wf, "test", &["build"], 1);
    test["matrix"] = json!({"shard": ["1", "2", "3"]});
    test["maxParallel"] = json!(2);
    // Each combination prints its own node's name: `test-shard-<n>`.
    test["job"]["steps"][0]["run"] = json!(format!(
        "sleep 1; echo ran-{wf}-test-shard-${{{{ matrix.shard }}}}"
    ));
    let body = workflow(
        &wf,
        vec![
            node(&wf, "build", &[], 0),
            test,
            node(&wf, "report", &["test"], 0),
        ],
    );
    all.push(Planned {
        name: wf,
        body,
        nodes: 5,
    });
    all
}

/// How many of the kills fell between the Workflow's start and its completion.
pub fn kills_during(wf: &Value, killed_at: &[DateTime<Utc>]) -> usize {
    let time = |field: &str| {
        wf["status"][field]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let (Some(start), Some(end)) = (time("startTime"), time("completionTime")) else {
        return 0;
    };
    killed_at
        .iter()
        .filter(|k| (start..=end).contains(k))
        .count()
}

pub fn is_final(obj: &Value) -> bool {
    matches!(phase(obj), "Succeeded" | "Failed" | "Cancelled")
}

fn label<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj["metadata"]["labels"][key].as_str().unwrap_or("")
}

/// Everything wrong with one finished Workflow; empty when nothing is.
pub fn problems(server: &ChaosServer, plan: &Planned, wf: &Value, made: &Made) -> Vec<String> {
    let name = &plan.name;
    let mut problems = Vec::new();
    if phase(wf) != "Succeeded" {
        problems.push(format!(
            "workflow {name}: {} ({})",
            phase(wf),
            wf["status"]["summary"]
        ));
    }
    if wf["status"]["run"] != json!(1) {
        problems.push(format!(
            "workflow {name}: at run {}, not 1 (a run started again)",
            wf["status"]["run"]
        ));
    }
    let nodes = wf["status"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if nodes.len() != plan.nodes {
        problems.push(format!(
            "workflow {name}: {} nodes in its status, not {}",
            nodes.len(),
            plan.nodes
        ));
    }

    // Its Jobs, by their labels: exactly one per node, all of run 1.
    let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for job in server.list("jobs") {
        if label(&job, "orcaops.dev/workflow") != name {
            continue;
        }
        if label(&job, "orcaops.dev/workflow-run") != "1" {
            problems.push(format!(
                "workflow {name}: job {} is of run {:?}",
                job["metadata"]["name"],
                label(&job, "orcaops.dev/workflow-run")
            ));
        }
        by_node
            .entry(label(&job, "orcaops.dev/node").to_string())
            .or_default()
            .push(job);
    }
    for status in &nodes {
        let node = status["name"].as_str().unwrap_or_default();
        let jobs = by_node.remove(node).unwrap_or_default();
        if jobs.len() != 1 {
            problems.push(format!(
                "workflow {name} node {node}: {} jobs, not 1",
                jobs.len()
            ));
            continue;
        }
        let job = &jobs[0];
        let job_name = job["metadata"]["name"].as_str().unwrap_or_default();
        if status["phase"] != "Succeeded" || status["job"] != job_name {
            problems.push(format!(
                "workflow {name} node {node}: status {status} does not record job {job_name} as Succeeded"
            ));
        }
        problems.extend(job_problems(
            server,
            job,
            &format!("ran-{name}-{node}"),
            made,
        ));
    }
    for (node, jobs) in by_node {
        problems.push(format!(
            "workflow {name}: {} jobs for node {node:?}, which its status does not list",
            jobs.len()
        ));
    }
    problems
}

/// One node's Job: Succeeded, one run record, one container per attempt, and its step's
/// `line` printed once in the last attempt and at most once in any.
fn job_problems(server: &ChaosServer, job: &Value, line: &str, made: &Made) -> Vec<String> {
    let name = job["metadata"]["name"].as_str().unwrap_or_default();
    let uid = job["metadata"]["uid"].as_str().unwrap_or_default();
    let mut problems = Vec::new();
    if phase(job) != "Succeeded" {
        problems.push(format!(
            "job {name}: {} ({})",
            phase(job),
            job["status"]["summary"]
        ));
    }
    let runs = server.get(&format!("{API}/jobs/{name}/runs"));
    let runs = runs.body["items"].as_array().cloned().unwrap_or_default();
    if runs.len() != 1 {
        problems.push(format!("job {name}: {} run records, not 1", runs.len()));
        return problems;
    }
    let attempts = runs[0]["attempts"].as_u64().unwrap_or(0) as u32;
    for attempt in 1..=attempts {
        let (creates, starts) = made
            .get(&(uid.to_string(), 1, attempt))
            .copied()
            .unwrap_or((0, 0));
        if (creates, starts) != (1, 1) {
            problems.push(format!(
                "job {name} attempt {attempt}: {creates} containers created and {starts} started, not 1 and 1"
            ));
        }
        let log = server.get(&format!("{API}/jobs/{name}/log?run=1&attempt={attempt}"));
        let text = log.body.as_str().unwrap_or_default();
        let times = text.lines().filter(|l| l.trim() == line).count();
        if times > 1 || (attempt == attempts && times != 1) {
            problems.push(format!(
                "job {name} attempt {attempt}: `{line}` printed {times} times: {text:?}"
            ));
        }
    }
    let extra: Vec<_> = made
        .keys()
        .filter(|(u, run, attempt)| u == uid && (*run != 1 || *attempt > attempts))
        .collect();
    if !extra.is_empty() {
        problems.push(format!(
            "job {name}: containers of attempts it never recorded: {extra:?}"
        ));
    }
    problems
}
