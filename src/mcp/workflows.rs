//! The workflow tools: `run_workflow` (start a run, wait for its end), `get_workflow` (a
//! compact DAG), `approve_node` and `rerun_workflow`. All through `client::workflow`, as
//! the CLI's commands.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::params::{ApproveNodeArgs, RerunWorkflowArgs, RunWorkflowArgs, WorkflowArgs};
use super::{Answer, ToolError};
use crate::client::ApiClient;
use crate::client::workflow::{
    self, DagNode, RerunMode, WorkflowRunState, WorkflowRunWatch, dag, phase_str, workflow_spec,
    workflow_status,
};
use crate::resources::{Kind, ObjectKey};

const DEFAULT_WAIT_SECS: u64 = 300;
const MAX_WAIT_SECS: u64 = 900;
/// Matrix combinations listed one by one up to this many; beyond, only counted.
const MAX_COMBINATIONS_SHOWN: usize = 20;

fn key(name: &str, workspace: &str) -> ObjectKey {
    ObjectKey::new(Kind::Workflow, workspace, name)
}

fn follow_up(key: &ObjectKey) -> String {
    format!(
        "Follow up: get_workflow(name=\"{}\") for each node's phase; get_logs(job=JOB) for a node's output (its Job is named in get_workflow).",
        key.name
    )
}

pub(super) async fn run(client: &ApiClient, args: RunWorkflowArgs) -> Result<Answer, ToolError> {
    let key = key(&args.name, &args.workspace);
    let idem = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let asked = workflow::start_run(client, &key, &args.inputs, &idem).await?;
    if !args.wait.unwrap_or(true) {
        return Ok(Answer {
            text: format!(
                "workflow {}: {}\n{}",
                key.name,
                asked
                    .run
                    .map_or(asked.message.clone(), |r| format!("run {r} started")),
                follow_up(&key)
            ),
            structured: json!({"workflow": key.name, "run": asked.run, "token": asked.token,
                "duplicate": asked.duplicate, "finished": false}),
        });
    }
    let max_wait = Duration::from_secs(
        args.max_wait_seconds
            .unwrap_or(DEFAULT_WAIT_SECS)
            .min(MAX_WAIT_SECS),
    );
    let mut watch = WorkflowRunWatch::new(client, &asked).await?;
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut last_run = asked.run;
    loop {
        let Ok(state) = tokio::time::timeout_at(deadline, watch.next()).await else {
            let run = last_run.map_or("the run asked for".into(), |r| format!("run {r}"));
            return Ok(Answer {
                text: format!(
                    "workflow {}: {run} has not ended after {}s; it goes on.\n{}",
                    key.name,
                    max_wait.as_secs(),
                    follow_up(&key)
                ),
                structured: json!({"workflow": key.name, "run": last_run, "token": asked.token,
                    "finished": false}),
            });
        };
        match state? {
            WorkflowRunState::Waiting(_) => {}
            WorkflowRunState::Running { run, .. } => last_run = Some(run),
            WorkflowRunState::Finished {
                run,
                phase,
                summary,
                ..
            } => {
                let dag = get(client, &key).await?;
                return Ok(Answer {
                    text: format!(
                        "workflow {} run {run} {}: {summary}\n{}",
                        key.name,
                        phase_str(phase),
                        dag.text
                    ),
                    structured: json!({"workflow": key.name, "run": run, "phase": phase_str(phase),
                        "finished": true, "summary": summary, "dag": dag.structured}),
                });
            }
            WorkflowRunState::Superseded => {
                return Err(ToolError::new(format!(
                    "workflow {}: another run request replaced this one before it started; get_workflow shows the run in progress",
                    key.name
                )));
            }
            WorkflowRunState::Deleted => {
                return Err(ToolError::new(format!(
                    "workflow {} was deleted while waiting",
                    key.name
                )));
            }
        }
    }
}

/// The workflow's current run as a compact DAG: one line per node (matrix combinations
/// under their node), with phase, needs, duration, attempts and message.
pub(super) async fn get(client: &ApiClient, key: &ObjectKey) -> Result<Answer, ToolError> {
    let obj = client.get_object(key).await?;
    let spec = workflow_spec(&obj)?;
    let status = workflow_status(&obj);
    let layers = dag(&spec, &status);
    let mut text = format!(
        "workflow {} ({}): {} run {}, progress {}",
        key.name,
        key.namespace,
        phase_str(status.phase),
        status.run.map_or("-".into(), |r| r.to_string()),
        status.progress.as_deref().unwrap_or("-"),
    );
    if let Some(summary) = &status.summary {
        let _ = write!(text, "\n{summary}");
    }
    let mut nodes = Vec::new();
    for (layer, layer_nodes) in layers.iter().enumerate() {
        for node in layer_nodes {
            let _ = write!(text, "\n{}", line(node, ""));
            for combo in node.combinations.iter().take(MAX_COMBINATIONS_SHOWN) {
                let _ = write!(text, "\n{}", line(combo, "  "));
            }
            if node.combinations.len() > MAX_COMBINATIONS_SHOWN {
                let _ = write!(
                    text,
                    "\n  … {} more combinations",
                    node.combinations.len() - MAX_COMBINATIONS_SHOWN
                );
            }
            let mut value = serde_json::to_value(node).unwrap_or(Value::Null);
            value["layer"] = json!(layer + 1);
            nodes.push(value);
        }
    }
    Ok(Answer {
        text,
        structured: json!({
            "workflow": key.name, "workspace": key.namespace,
            "phase": phase_str(status.phase), "run": status.run,
            "progress": status.progress, "summary": status.summary,
            "inputs": status.inputs, "suspended": spec.suspend, "nodes": nodes,
        }),
    })
}

fn line(node: &DagNode, indent: &str) -> String {
    let mut line = format!("{indent}{}: {}", node.name, node.phase);
    if !node.needs.is_empty() {
        let _ = write!(line, " (needs {})", node.needs.join(", "));
    }
    if let Some(d) = node.duration_seconds {
        let _ = write!(line, " {d}s");
    }
    if let Some(a) = node.attempts.filter(|a| *a > 1) {
        let _ = write!(line, " attempts {a}");
    }
    if node.approval {
        line.push_str(" [approval]");
    }
    if let Some(job) = &node.job {
        let _ = write!(line, " job {job}");
    }
    if let Some(m) = &node.message {
        let _ = write!(line, " — {}", m.lines().next().unwrap_or_default());
    }
    line
}

pub(super) async fn get_workflow(
    client: &ApiClient,
    args: WorkflowArgs,
) -> Result<Answer, ToolError> {
    get(client, &key(&args.name, &args.workspace)).await
}

pub(super) async fn approve(
    client: &ApiClient,
    args: ApproveNodeArgs,
) -> Result<Answer, ToolError> {
    let key = key(&args.name, &args.workspace);
    let approved = args.approve.unwrap_or(true);
    let decision = workflow::Decision {
        node: &args.node,
        approved,
        message: &args.message,
        by: "mcp",
        run: args.run,
    };
    let answer = workflow::decide(client, &key, &decision).await?;
    let message = answer["message"].as_str().unwrap_or("decided").to_string();
    Ok(Answer {
        text: format!("workflow {}: {message}", key.name),
        structured: json!({"workflow": key.name, "node": args.node, "approved": approved,
            "run": answer["run"]}),
    })
}

pub(super) async fn rerun(
    client: &ApiClient,
    args: RerunWorkflowArgs,
) -> Result<Answer, ToolError> {
    let key = key(&args.name, &args.workspace);
    let mode = match (args.mode.as_deref(), &args.from) {
        (Some(_), Some(_)) => {
            return Err(ToolError::new(
                "give mode (\"failed\" or \"all\") or from (a node), not both",
            ));
        }
        (_, Some(node)) => RerunMode::From(node.clone()),
        (Some("failed"), None) => RerunMode::Failed,
        (None | Some("all"), None) => RerunMode::All,
        (Some(other), None) => {
            return Err(ToolError::new(format!(
                "mode \"{other}\" is not one of: failed, all"
            )));
        }
    };
    let asked = workflow::rerun(client, &key, &mode, &args.inputs).await?;
    Ok(Answer {
        text: format!(
            "workflow {}: rerun requested ({}). {}\n{}",
            key.name,
            match &mode {
                RerunMode::All => "every node".to_string(),
                RerunMode::Failed => "only what did not succeed".to_string(),
                RerunMode::From(n) => format!("from {n} downstream"),
            },
            asked.message,
            follow_up(&key)
        ),
        structured: json!({"workflow": key.name, "token": asked.token, "run": asked.run}),
    })
}
