//! The Workflow commands: `run workflow` (start a run and follow its DAG to the end),
//! `rerun workflow`, `approve workflow`, `cancel`/`suspend`/`resume workflow`, and the
//! Workflow forms of `describe` (the DAG drawn in layers), `logs --node` and `history`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use clap::Args;
use reqwest::Method;

use super::output::{age, table};
use super::{Target, target_key};
use crate::client::workflow::{
    self, DagNode, RerunMode, RunRequested, WorkflowRunState, WorkflowRunWatch, critical_path_text,
    dag, parse_inputs, phase_str, slowest_node, workflow_spec, workflow_status,
};
use crate::client::{ApiClient, ClientError, exit, object_path};
use crate::records::WorkflowRunRecord;
use crate::resources::workflow::{NodePhase, NodeStatus, WorkflowPhase};
use crate::resources::{Kind, Object, ObjectKey};

pub const RUN_HELP: &str = "\
Examples:
  orcaops run workflow ci
  orcaops run workflow ci --input ref=release --input env=prod
  orcaops run workflow ci --timeout 600 --idempotency-key \"$CI_PIPELINE_ID\"

The run starts through POST .../workflows/NAME/runs. Each change of a node prints one
line (NODE PHASE, with the duration and the message when there is one) until the run
ends. The Workflow must already be applied (orcaops apply -f ci.yaml).

--idempotency-key makes a retried command safe: the server starts one run per key, and
a second command with the same key follows that run instead of starting another.

Exit codes: 0 the run succeeded, 2 it failed or was cancelled, 3 --timeout passed
(the run is then cancelled), 1 a bad input or an unknown workflow, 5 no server.";

#[derive(Args, Debug)]
#[command(after_help = RUN_HELP)]
pub struct RunWorkflowArgs {
    /// The Workflow to run.
    pub name: String,
    /// An input of the run, NAME=value (declared in spec.inputs). Repeatable.
    #[arg(short = 'i', long = "input")]
    pub inputs: Vec<String>,
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = crate::resources::DEFAULT_WORKSPACE)]
    pub namespace: String,
    /// Seconds to wait for the run to end; then it is cancelled and the exit code is 3.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// The request's Idempotency-Key (default: a fresh one).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Start the run and return at once, without following it.
    #[arg(long)]
    pub no_wait: bool,
}

pub async fn run_workflow(client: &ApiClient, args: RunWorkflowArgs) -> Result<u8, ClientError> {
    let inputs = parse_inputs(&args.inputs)?;
    let key = ObjectKey::new(Kind::Workflow, &args.namespace, &args.name);
    let idem = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let asked = workflow::start_run(client, &key, &inputs, &idem).await?;
    announce(&asked);
    if args.no_wait {
        return Ok(exit::OK);
    }
    follow(client, &asked, args.timeout.map(Duration::from_secs)).await
}

fn announce(asked: &RunRequested) {
    let what = match asked.run {
        Some(run) if asked.duplicate => format!("run {run} (already started by this request)"),
        Some(run) => format!("run {run} started"),
        None => asked.message.clone(),
    };
    eprintln!("workflow.orcaops.dev/{}: {what}", asked.key.name);
}

/// Follows the run of `asked` to its end, one line per node change; the exit code says
/// how it ended.
pub async fn follow(
    client: &ApiClient,
    asked: &RunRequested,
    timeout: Option<Duration>,
) -> Result<u8, ClientError> {
    let mut watch = WorkflowRunWatch::new(client, asked).await?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    let mut announced_run = asked.run;
    loop {
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, watch.next()).await.ok(),
                None => Some(watch.next().await),
            }
        };
        let Some(state) = next.await else {
            eprintln!(
                "workflow {}: still not finished after {}s; cancelling it",
                asked.key.name,
                timeout.unwrap_or_default().as_secs()
            );
            // This run, by its number: others may be in progress beside it.
            if let Err(e) = workflow::cancel(client, &asked.key, announced_run).await {
                eprintln!("  (the cancel was refused: {e})");
            }
            return Ok(exit::TIMED_OUT);
        };
        match state? {
            WorkflowRunState::Waiting(_) => {}
            WorkflowRunState::Running { run, status } => {
                if announced_run != Some(run) {
                    eprintln!("workflow {}: run {run} started", asked.key.name);
                    announced_run = Some(run);
                }
                print_changes(&mut shown, &status.nodes);
            }
            WorkflowRunState::Finished {
                run,
                phase,
                summary,
                status,
            } => {
                if let Some(status) = &status {
                    print_changes(&mut shown, &status.nodes);
                }
                eprintln!(
                    "workflow {} run {run}: {}{}",
                    asked.key.name,
                    phase_str(phase),
                    if summary.is_empty() {
                        String::new()
                    } else {
                        format!(" ({summary})")
                    }
                );
                if phase != WorkflowPhase::Succeeded {
                    let failed: Vec<&str> = status
                        .iter()
                        .flat_map(|s| &s.nodes)
                        .filter(|n| matches!(n.phase, NodePhase::Failed | NodePhase::Cancelled))
                        .map(|n| n.name.as_str())
                        .collect();
                    if let Some(first) = failed.first() {
                        let ns = if asked.key.namespace == crate::resources::DEFAULT_WORKSPACE {
                            String::new()
                        } else {
                            format!(" -n {}", asked.key.namespace)
                        };
                        eprintln!(
                            "  see why: orcaops logs workflow {}{ns} --node {first}; rerun what failed: orcaops rerun workflow {}{ns} --failed",
                            asked.key.name, asked.key.name
                        );
                    }
                }
                return Ok(match phase {
                    WorkflowPhase::Succeeded => exit::OK,
                    _ => exit::FAILED,
                });
            }
            WorkflowRunState::Superseded => {
                return Err(ClientError::Failed(format!(
                    "workflow {}: another run request replaced this one before it started",
                    asked.key.name
                )));
            }
            WorkflowRunState::Deleted => {
                return Err(ClientError::Failed(format!(
                    "workflow {} was deleted while running",
                    asked.key.name
                )));
            }
        }
    }
}

/// Prints a line for each node whose phase changed since the last call.
fn print_changes(shown: &mut BTreeMap<String, String>, nodes: &[NodeStatus]) {
    for node in nodes {
        let phase = node.phase.as_str();
        if shown.get(&node.name).map(String::as_str) == Some(phase) {
            continue;
        }
        shown.insert(node.name.clone(), phase.to_string());
        let mut line = format!("{:<28} {phase}", node.name);
        if let (Some(s), Some(c)) = (node.start_time, node.completion_time) {
            let _ = write!(line, " {}", duration((c - s).num_seconds().max(0)));
        }
        if let Some(message) = &node.message {
            let _ = write!(line, "  {}", message.lines().next().unwrap_or_default());
        }
        println!("{line}");
    }
}

fn duration(seconds: i64) -> String {
    crate::client::workflow::seconds(seconds)
}

pub const RERUN_HELP: &str = "\
Examples:
  orcaops rerun job nightly                  a new run of a job, same spec
  orcaops rerun workflow ci                  every node again
  orcaops rerun workflow ci --failed         only what did not succeed last time
  orcaops rerun workflow ci --from test      `test` and everything downstream of it
  orcaops rerun workflow ci --input ref=hotfix

A workflow rerun keeps the last run's inputs unless --input replaces them. With
--failed (or --from), the nodes kept are not run again: they keep their Job and
outputs. A run in progress finishes first (concurrencyPolicy: Forbid) or is replaced
(Replace). `orcaops get workflow NAME -w` shows the new run.";

#[derive(Args, Debug)]
#[command(after_help = RERUN_HELP)]
pub struct RerunArgs {
    #[command(flatten)]
    pub target: Target,
    /// Workflows: rerun only the nodes that did not succeed in the last run.
    #[arg(long, conflicts_with = "from")]
    pub failed: bool,
    /// Workflows: rerun this node and everything downstream of it.
    #[arg(long, value_name = "NODE")]
    pub from: Option<String>,
    /// Workflows: an input, NAME=value, replacing the last run's. Repeatable.
    #[arg(short = 'i', long = "input")]
    pub inputs: Vec<String>,
}

pub async fn rerun(client: &ApiClient, args: RerunArgs) -> Result<u8, ClientError> {
    let key = target_key(&args.target)?;
    if key.kind != Kind::Workflow {
        if args.failed || args.from.is_some() || !args.inputs.is_empty() {
            return Err(ClientError::usage(
                "--failed, --from and --input are for workflows; a job reruns whole: orcaops rerun job NAME",
            ));
        }
        super::require_job(&args.target)?;
        let path = format!("{}/rerun", object_path(&key));
        client.json(Method::POST, &path, None).await?;
        println!("job.orcaops.dev/{} rerun requested", key.name);
        return Ok(exit::OK);
    }
    let mode = match (&args.from, args.failed) {
        (Some(node), _) => RerunMode::From(node.clone()),
        (None, true) => RerunMode::Failed,
        (None, false) => RerunMode::All,
    };
    let asked = workflow::rerun(client, &key, &mode, &parse_inputs(&args.inputs)?).await?;
    let what = match &mode {
        RerunMode::All => "rerun requested".to_string(),
        RerunMode::Failed => "rerun of what failed requested".to_string(),
        RerunMode::From(node) => format!("rerun from {node} requested"),
    };
    println!("workflow.orcaops.dev/{} {what}", key.name);
    eprintln!("{}", asked.message);
    Ok(exit::OK)
}

pub const APPROVE_HELP: &str = "\
Examples:
  orcaops approve workflow ci deploy
  orcaops approve workflow ci deploy --message \"release 1.2 checked\"
  orcaops approve workflow ci deploy --reject --message \"not on a Friday\"

The decision counts for one run only (orcaops.dev/approvals names the run): the run in
progress, or with several in progress (concurrencyPolicy: Allow) the one --run names.
An approved node starts; a rejected one fails with your message. NODE is the node's
name in spec.jobs (deciding every matrix combination of it), or one combination's.";

#[derive(Args, Debug)]
#[command(after_help = APPROVE_HELP)]
pub struct ApproveArgs {
    /// The kind: workflow (wf).
    pub kind: String,
    /// The Workflow.
    pub name: String,
    /// The approval node.
    pub node: String,
    /// Reject instead: the node fails, and what needs it is skipped.
    #[arg(long)]
    pub reject: bool,
    /// Why; kept with the decision and shown on the node.
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Who decides (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// The run whose node this decides (needed when several runs are in progress).
    #[arg(long)]
    pub run: Option<u32>,
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = crate::resources::DEFAULT_WORKSPACE)]
    pub namespace: String,
}

pub async fn approve(client: &ApiClient, args: ApproveArgs) -> Result<u8, ClientError> {
    let kind = super::parse_kind(&args.kind)?;
    if kind != Kind::Workflow {
        return Err(ClientError::usage(format!(
            "approve works on workflows, not {}: orcaops approve workflow NAME NODE",
            kind.plural()
        )));
    }
    let key = ObjectKey::new(Kind::Workflow, &args.namespace, &args.name);
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    let decision = workflow::Decision {
        node: &args.node,
        approved: !args.reject,
        message: &args.message,
        by: &by,
        run: args.run,
    };
    let answer = workflow::decide(client, &key, &decision).await?;
    println!(
        "workflow.orcaops.dev/{} {}",
        key.name,
        answer["message"].as_str().unwrap_or("decided")
    );
    Ok(exit::OK)
}

pub async fn cancel(
    client: &ApiClient,
    key: &ObjectKey,
    run: Option<u32>,
) -> Result<u8, ClientError> {
    let run = workflow::cancel(client, key, run).await?;
    println!(
        "workflow.orcaops.dev/{} run {run} cancel requested",
        key.name
    );
    Ok(exit::OK)
}

pub async fn suspend(client: &ApiClient, t: &Target, suspend: bool) -> Result<u8, ClientError> {
    let key = target_key(t)?;
    if key.kind != Kind::Workflow {
        return Err(ClientError::usage(format!(
            "{} works on workflows, not {}; a sandbox stops and starts (orcaops stop sandbox NAME)",
            if suspend { "suspend" } else { "resume" },
            key.kind.plural()
        )));
    }
    workflow::set_suspend(client, &key, suspend).await?;
    let what = if suspend {
        "suspended: no new node starts, running ones finish"
    } else {
        "resumed: the run goes on where it stopped"
    };
    println!("workflow.orcaops.dev/{} {what}", key.name);
    Ok(exit::OK)
}

/// The workflow part of `describe`: the run, then the DAG in layers.
pub fn describe(out: &mut String, obj: &Object) {
    let status = workflow_status(obj);
    let Ok(spec) = workflow_spec(obj) else {
        let _ = writeln!(out, "Spec:         (cannot be read)");
        return;
    };
    let run = status.run.map_or("-".to_string(), |r| r.to_string());
    let _ = writeln!(out, "Phase:        {}", phase_str(status.phase));
    let _ = writeln!(out, "Run:          {run}");
    if let Some(progress) = &status.progress {
        let _ = writeln!(out, "Progress:     {progress}");
    }
    if let Some(summary) = &status.summary {
        let _ = writeln!(out, "Summary:      {summary}");
    }
    if spec.suspend {
        let _ = writeln!(
            out,
            "Suspended:    yes (orcaops resume workflow {})",
            obj.metadata.name
        );
    }
    if !status.inputs.is_empty() {
        let inputs: Vec<String> = status
            .inputs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "Inputs:       {}", inputs.join(", "));
    }
    let _ = writeln!(out, "DAG:");
    let layers = dag(&spec, &status);
    out.push_str(&draw_dag(&layers));
    if let Some(line) = critical_path_text(&layers) {
        let _ = writeln!(out, "Critical path: {line}");
    }
    if let Some((node, secs)) = slowest_node(&layers) {
        let _ = writeln!(out, "Slowest node:  {node} ({})", duration(secs));
    }
    if !status.history.is_empty() {
        let _ = writeln!(
            out,
            "Recent runs:  (orcaops history workflow {})",
            obj.metadata.name
        );
        for h in status.history.iter().take(5) {
            let _ = writeln!(
                out,
                "  run {:<4} {:<10} {}",
                h.run,
                phase_str(h.phase),
                h.summary.clone().unwrap_or_default()
            );
        }
    }
}

fn mark(phase: &str) -> &'static str {
    match phase {
        "Succeeded" => "✓",
        "Failed" | "Cancelled" => "✗",
        "Running" => "▶",
        "Skipped" => "-",
        "WaitingApproval" => "?",
        _ => "·",
    }
}

/// The DAG, one block per layer; a layer's nodes need only nodes of earlier layers.
pub fn draw_dag(layers: &[Vec<DagNode>]) -> String {
    let mut out = String::new();
    for (i, layer) in layers.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out, "    │");
            let _ = writeln!(out, "    ▼");
        }
        let _ = writeln!(out, "  layer {}", i + 1);
        for node in layer {
            let _ = writeln!(out, "{}", node_line("    ", node));
            for combo in &node.combinations {
                let _ = writeln!(out, "{}", node_line("      ├ ", combo));
            }
        }
    }
    out
}

fn node_line(prefix: &str, node: &DagNode) -> String {
    let mut line = format!(
        "{prefix}{} {:<24} {:<15}",
        mark(&node.phase),
        node.name,
        node.phase
    );
    if let Some(d) = node.duration_seconds {
        let _ = write!(line, " {:>6}", duration(d));
    }
    if let Some(a) = node.attempts {
        let _ = write!(line, "  attempts {a}");
    }
    if !node.needs.is_empty() {
        let _ = write!(line, "  needs {}", node.needs.join(", "));
    }
    if node.approval {
        line.push_str("  [approval]");
    }
    if let Some(m) = &node.message {
        let _ = write!(line, "  {}", m.lines().next().unwrap_or_default());
    }
    line.trim_end().to_string()
}

/// `orcaops logs workflow NAME --node N`: the output of that node's Job in the current
/// run; a matrix node named as declared: each combination's in turn, under a heading.
pub async fn logs(
    client: &ApiClient,
    key: &ObjectKey,
    node: &str,
    follow: bool,
    tail: Option<usize>,
) -> Result<u8, ClientError> {
    use futures::StreamExt;
    use std::io::Write as _;
    let obj = client.get_object(key).await?;
    let spec = workflow_spec(&obj)?;
    let status = workflow_status(&obj);
    let jobs = workflow::node_jobs(&spec, &status, node)?;
    let several = jobs.len() > 1;
    let mut out = std::io::stdout();
    for (name, job) in jobs {
        if several {
            let _ = writeln!(out, "==> {name} <==");
        }
        let Some(job) = job else {
            let phase = status
                .nodes
                .iter()
                .find(|n| n.name == name)
                .map_or("Pending", |n| n.phase.as_str());
            eprintln!("node {name} has no Job in this run ({phase}): nothing to show");
            continue;
        };
        let mut query = Vec::new();
        if follow {
            query.push("follow=true".to_string());
        }
        if let Some(tail) = tail {
            query.push(format!("tailLines={tail}"));
        }
        let job_key = ObjectKey::new(Kind::Job, &key.namespace, &job);
        let path = format!("{}/log?{}", object_path(&job_key), query.join("&"));
        let mut stream = client.stream(&path).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ClientError::unreachable(format!("the log stream broke: {e}")))?;
            out.write_all(&chunk)
                .and_then(|_| out.flush())
                .map_err(|e| ClientError::usage(format!("cannot write: {e}")))?;
        }
    }
    Ok(exit::OK)
}

/// `orcaops history workflow NAME`: every run, newest first.
pub async fn history(client: &ApiClient, key: &ObjectKey) -> Result<u8, ClientError> {
    let runs = crate::client::workflow::workflow_runs(client, key).await?;
    if runs.is_empty() {
        eprintln!("workflow {} has not run yet.", key.name);
        return Ok(exit::OK);
    }
    print!("{}", history_table(&runs));
    print!("{}", nodes_in_progress(&runs));
    let ok = runs
        .iter()
        .filter(|r| r.phase == WorkflowPhase::Succeeded)
        .count();
    println!(
        "\n{} runs: {ok} succeeded, {} did not",
        runs.len(),
        runs.len() - ok
    );
    Ok(exit::OK)
}

fn history_table(runs: &[WorkflowRunRecord]) -> String {
    let mut rows = vec![
        [
            "RUN", "PHASE", "STARTED", "DURATION", "PROGRESS", "TRIGGER", "INPUTS", "SUMMARY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in runs {
        let inputs: Vec<String> = r.inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(vec![
            r.run.to_string(),
            phase_str(r.phase).into(),
            r.start_time
                .map(|t| format!("{} ago", age(Some(t))))
                .unwrap_or_else(|| "-".into()),
            match (r.start_time, r.completion_time) {
                (Some(s), Some(c)) => duration((c - s).num_seconds().max(0)),
                _ => "-".into(),
            },
            if r.progress.is_empty() {
                "-".into()
            } else {
                r.progress.clone()
            },
            trigger_word(&r.trigger),
            inputs.join(","),
            r.summary.clone(),
        ]);
    }
    table(&rows)
}

/// The nodes of each run in progress, as its record (written as nodes change) has them.
fn nodes_in_progress(runs: &[WorkflowRunRecord]) -> String {
    let mut out = String::new();
    for r in runs.iter().filter(|r| !r.phase.is_finished()) {
        let mut rows = vec![
            ["NODE", "PHASE", "DURATION", "MESSAGE"]
                .map(String::from)
                .to_vec(),
        ];
        for n in &r.nodes {
            rows.push(vec![
                n.name.clone(),
                n.phase.as_str().into(),
                match (n.start_time, n.completion_time) {
                    (Some(s), Some(c)) => duration((c - s).num_seconds().max(0)),
                    _ => "-".into(),
                },
                n.message.clone().unwrap_or_default(),
            ]);
        }
        let _ = write!(
            out,
            "\nrun {} in progress, node by node:\n{}",
            r.run,
            table(&rows)
        );
    }
    out
}

/// A trigger as one word: the records say `api`, `rerun`, ...; the status's fallback
/// holds the raw trigger (`s<digest>/rerun=run-...`).
fn trigger_word(trigger: &str) -> String {
    let token = trigger.split('/').find_map(|p| p.strip_prefix("rerun="));
    match token {
        Some(t) if t.starts_with(crate::resources::keys::RUN_TOKEN_PREFIX) => "api".into(),
        Some(_) => "rerun".into(),
        None if trigger.len() > 1
            && trigger.starts_with('s')
            && trigger[1..].chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            "spec".into()
        }
        None if trigger.is_empty() => "-".into(),
        None => trigger.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dag_is_drawn_layer_by_layer_with_combinations_under_their_node() {
        let node = |name: &str, phase: &str| DagNode {
            name: name.into(),
            needs: vec![],
            phase: phase.into(),
            duration_seconds: None,
            attempts: None,
            message: None,
            job: None,
            combinations: vec![],
            approval: false,
        };
        let mut test = node("test", "Running");
        test.needs = vec!["build".into()];
        test.combinations = vec![
            node("test-shard-1", "Succeeded"),
            node("test-shard-2", "Running"),
        ];
        let mut build = node("build", "Succeeded");
        build.duration_seconds = Some(3);
        build.attempts = Some(1);
        let drawn = draw_dag(&[vec![build], vec![test]]);
        let lines: Vec<&str> = drawn.lines().collect();
        assert_eq!(lines[0], "  layer 1");
        assert!(
            lines[1].contains("✓ build")
                && lines[1].contains("3s")
                && lines[1].contains("attempts 1"),
            "{drawn}"
        );
        assert_eq!(lines[4], "  layer 2");
        assert!(
            lines[5].contains("▶ test") && lines[5].contains("needs build"),
            "{drawn}"
        );
        assert!(lines[6].starts_with("      ├ ✓ test-shard-1"), "{drawn}");
    }

    #[test]
    fn triggers_read_as_one_word() {
        assert_eq!(trigger_word("s01ab/rerun=run-x"), "api");
        assert_eq!(trigger_word("rerun=20260101T000000Z"), "rerun");
        assert_eq!(trigger_word("s01ab"), "spec");
        assert_eq!(trigger_word("schedule"), "schedule");
    }
}
