//! Workflows from the client side, shared by the CLI and the MCP tools: the requests of
//! the Workflow doors (start a run, rerun, approve or reject, cancel, suspend), following
//! one run to its end on a watch ([`WorkflowRunWatch`]), and the DAG of a Workflow in
//! topological layers, each node with where it stands ([`dag`]).

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{ApiClient, Change, ClientError, ResumingWatch, object_path};
use crate::resources::workflow::naming;
use crate::resources::workflow::{NodeStatus, WorkflowPhase, WorkflowSpec, WorkflowStatus};
use crate::resources::{Object, ObjectKey, keys};
use crate::server::trigger_has_token;

/// The status of a workflow object; the default when it has none yet.
pub fn workflow_status(obj: &Object) -> WorkflowStatus {
    serde_json::from_value(obj.status.clone()).unwrap_or_default()
}

pub fn workflow_spec(obj: &Object) -> Result<WorkflowSpec, ClientError> {
    serde_json::from_value(obj.spec.clone()).map_err(|e| {
        ClientError::usage(format!(
            "workflow {} has a spec this client cannot read: {e}",
            obj.metadata.name
        ))
    })
}

pub fn phase_str(phase: WorkflowPhase) -> &'static str {
    crate::server::workflow_phase_str(phase)
}

/// `--input k=v` flags (or an agent's map) as the inputs of a run.
pub fn parse_inputs(flags: &[String]) -> Result<BTreeMap<String, String>, ClientError> {
    let mut inputs = BTreeMap::new();
    for flag in flags {
        let (name, value) = flag.split_once('=').ok_or_else(|| {
            ClientError::usage(format!(
                "--input {flag}: write NAME=value, as in --input ref=main"
            ))
        })?;
        if name.is_empty() {
            return Err(ClientError::usage(format!(
                "--input {flag}: the input has no name; write NAME=value"
            )));
        }
        inputs.insert(name.to_string(), value.to_string());
    }
    Ok(inputs)
}

/// The answer of `POST .../runs` and `.../rerun`: the token of the run asked for, and
/// its number once the controller has started it.
#[derive(Debug, Clone)]
pub struct RunRequested {
    pub key: ObjectKey,
    pub token: String,
    pub run: Option<u32>,
    /// A retried request: this run was asked for before.
    pub duplicate: bool,
    /// The run's phase when the answer named the run.
    pub phase: Option<WorkflowPhase>,
    pub message: String,
}

impl RunRequested {
    fn from_answer(key: &ObjectKey, value: &Value) -> RunRequested {
        RunRequested {
            key: key.clone(),
            token: value["token"].as_str().unwrap_or_default().to_string(),
            run: value["run"].as_u64().map(|r| r as u32),
            duplicate: value["duplicate"].as_bool().unwrap_or(false),
            phase: value["phase"]
                .as_str()
                .and_then(|p| serde_json::from_value(json!(p)).ok()),
            message: value["message"].as_str().unwrap_or_default().to_string(),
        }
    }
}

fn json_body(value: &Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", value.to_string().into_bytes()))
}

/// Starts a run of a workflow. `idempotency_key` makes a retried request start one run.
pub async fn start_run(
    client: &ApiClient,
    key: &ObjectKey,
    inputs: &BTreeMap<String, String>,
    idempotency_key: &str,
) -> Result<RunRequested, ClientError> {
    let path = format!("{}/runs", object_path(key));
    let value = client
        .json_with_headers(
            Method::POST,
            &path,
            json_body(&json!({ "inputs": inputs })),
            &[(crate::server::IDEMPOTENCY_KEY, idempotency_key)],
        )
        .await?;
    Ok(RunRequested::from_answer(key, &value))
}

/// Which nodes a rerun runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RerunMode {
    All,
    /// Only what did not succeed in the last run.
    Failed,
    /// This node and everything downstream of it.
    From(String),
}

pub async fn rerun(
    client: &ApiClient,
    key: &ObjectKey,
    mode: &RerunMode,
    inputs: &BTreeMap<String, String>,
) -> Result<RunRequested, ClientError> {
    let mut body = json!({ "inputs": inputs });
    match mode {
        RerunMode::All => {}
        RerunMode::Failed => body["mode"] = json!("failed"),
        RerunMode::From(node) => body["from"] = json!(node),
    }
    let path = format!("{}/rerun", object_path(key));
    let value = client.json(Method::POST, &path, json_body(&body)).await?;
    Ok(RunRequested::from_answer(key, &value))
}

/// What a decision on an approval node says.
pub struct Decision<'a> {
    pub node: &'a str,
    pub approved: bool,
    pub message: &'a str,
    pub by: &'a str,
    /// The run (needed when several are in progress; else the one in progress).
    pub run: Option<u32>,
}

/// Approves (or rejects) an approval node of a run; the answer says which run.
pub async fn decide(
    client: &ApiClient,
    key: &ObjectKey,
    decision: &Decision<'_>,
) -> Result<Value, ClientError> {
    let verb = if decision.approved {
        "approve"
    } else {
        "reject"
    };
    let path = format!("{}/{verb}", object_path(key));
    let mut body = json!({ "node": decision.node, "message": decision.message, "by": decision.by });
    if let Some(run) = decision.run {
        body["run"] = json!(run);
    }
    client.json(Method::POST, &path, json_body(&body)).await
}

/// Asks for run `run` (or the only run in progress) to be cancelled; answers the runs
/// asked to be cancelled.
pub async fn cancel(
    client: &ApiClient,
    key: &ObjectKey,
    run: Option<u32>,
) -> Result<String, ClientError> {
    let path = format!("{}/cancel", object_path(key));
    let body = run.map(|run| json!({ "run": run }));
    let obj = client
        .json(Method::POST, &path, body.as_ref().and_then(json_body))
        .await?;
    Ok(match run {
        Some(run) => run.to_string(),
        None => obj
            .pointer("/metadata/annotations/orcaops.dev~1cancel")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    })
}

/// Sets `spec.suspend` with a merge patch.
pub async fn set_suspend(
    client: &ApiClient,
    key: &ObjectKey,
    suspend: bool,
) -> Result<Object, ClientError> {
    let body = json!({ "spec": { "suspend": suspend } }).to_string();
    let value = client
        .json(
            Method::PATCH,
            &object_path(key),
            Some(("application/merge-patch+json", body.into_bytes())),
        )
        .await?;
    serde_json::from_value(value)
        .map_err(|e| ClientError::usage(format!("unexpected object from the server: {e}")))
}

/// Where the run asked for with a token stands, as a state of its workflow shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowRunState {
    /// Asked for; the controller has not started it (a run in progress, suspended).
    Waiting(WorkflowStatus),
    /// Started and not ended.
    Running { run: u32, status: WorkflowStatus },
    /// Ended. The status is the run's own while it is the current one; None when only
    /// the history still shows it.
    Finished {
        run: u32,
        phase: WorkflowPhase,
        summary: String,
        status: Option<WorkflowStatus>,
    },
    /// Another request replaced the token before this run started.
    Superseded,
    /// The workflow was deleted.
    Deleted,
}

impl WorkflowRunState {
    pub fn of(token: &str, obj: &Object) -> WorkflowRunState {
        let status = workflow_status(obj);
        if let (Some(run), Some(trigger)) = (status.run, &status.run_trigger)
            && trigger_has_token(trigger, token)
        {
            return if status.phase.is_finished() {
                WorkflowRunState::Finished {
                    run,
                    phase: status.phase,
                    summary: status.summary.clone().unwrap_or_default(),
                    status: Some(status),
                }
            } else {
                WorkflowRunState::Running { run, status }
            };
        }
        // A run in progress beside the current one (concurrencyPolicy: Allow).
        if let Some(active) = status.active_runs.iter().find(|r| {
            r.trigger
                .as_deref()
                .is_some_and(|t| trigger_has_token(t, token))
        }) {
            return WorkflowRunState::Running {
                run: active.run,
                status: active.as_status(),
            };
        }
        if let Some(past) = status.history.iter().find(|h| {
            h.trigger
                .as_deref()
                .is_some_and(|t| trigger_has_token(t, token))
        }) {
            return WorkflowRunState::Finished {
                run: past.run,
                phase: past.phase,
                summary: past.summary.clone().unwrap_or_default(),
                status: None,
            };
        }
        if obj
            .metadata
            .annotations
            .get(keys::RERUN)
            .map(String::as_str)
            == Some(token)
        {
            return WorkflowRunState::Waiting(status);
        }
        WorkflowRunState::Superseded
    }
}

/// The states of one run, from a watch of its workflow: every status change arrives as
/// it happens. Cancel-safe, as [`super::run::RunWatch`].
pub struct WorkflowRunWatch {
    token: String,
    /// A retried request's run that ended long ago: the server found it in the run
    /// records, and the Workflow's status no longer shows it.
    recorded: Option<(u32, WorkflowPhase, String)>,
    first: Option<WorkflowRunState>,
    changes: mpsc::Receiver<Result<Option<Object>, ClientError>>,
    watcher: JoinHandle<()>,
}

impl WorkflowRunWatch {
    /// Reads the workflow now, then watches it from there: the run `asked` for.
    pub async fn new(client: &ApiClient, asked: &RunRequested) -> Result<Self, ClientError> {
        let (key, token) = (&asked.key, asked.token.as_str());
        let obj = client.get_object(key).await?;
        let (tx, changes) = mpsc::channel(16);
        let watcher = tokio::spawn(watch_object(
            client.clone(),
            key.clone(),
            obj.metadata.resource_version.clone(),
            tx,
        ));
        let recorded = match (asked.duplicate, asked.run, asked.phase) {
            (true, Some(run), Some(phase)) if phase.is_finished() => {
                Some((run, phase, asked.message.clone()))
            }
            _ => None,
        };
        Ok(WorkflowRunWatch {
            token: token.to_string(),
            recorded,
            first: Some(WorkflowRunState::of(token, &obj)),
            changes,
            watcher,
        })
    }

    pub async fn next(&mut self) -> Result<WorkflowRunState, ClientError> {
        if let Some(first) = self.first.take() {
            return Ok(self.or_recorded(first));
        }
        match self.changes.recv().await {
            Some(Ok(Some(obj))) => Ok(self.or_recorded(WorkflowRunState::of(&self.token, &obj))),
            Some(Ok(None)) => Ok(WorkflowRunState::Deleted),
            Some(Err(e)) => Err(e),
            None => Err(ClientError::unreachable(
                "the watch of the workflow stopped",
            )),
        }
    }
}

impl WorkflowRunWatch {
    /// A token the status no longer knows is not a superseded request when the server
    /// answered with its run from the run records: that run ended.
    fn or_recorded(&self, state: WorkflowRunState) -> WorkflowRunState {
        match (&state, &self.recorded) {
            (WorkflowRunState::Superseded, Some((run, phase, summary))) => {
                WorkflowRunState::Finished {
                    run: *run,
                    phase: *phase,
                    summary: summary.clone(),
                    status: None,
                }
            }
            _ => state,
        }
    }
}

impl Drop for WorkflowRunWatch {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

async fn watch_object(
    client: ApiClient,
    key: ObjectKey,
    rv: String,
    tx: mpsc::Sender<Result<Option<Object>, ClientError>>,
) {
    let by_name = format!("metadata.name={}", key.name);
    let mut watch = ResumingWatch::new(
        client,
        key.kind,
        Some(&key.namespace),
        None,
        Some(&by_name),
        &rv,
    );
    loop {
        let update = match watch.next().await {
            Ok(Change::Event { type_, .. }) if type_ == "DELETED" => Ok(None),
            Ok(Change::Event { object, .. }) => Ok(Some(*object)),
            Ok(Change::Relisted(mut objects)) => Ok(objects.pop()),
            Err(e) => Err(e),
        };
        let stop = !matches!(update, Ok(Some(_)));
        if tx.send(update).await.is_err() || stop {
            return;
        }
    }
}

/// One node of the DAG as a person or an agent reads it: a node of the spec, with its
/// matrix combinations grouped under it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DagNode {
    pub name: String,
    pub needs: Vec<String>,
    /// Its phase (over all combinations for a matrix node; see [`group_phase`]).
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// A matrix node's combinations, each with its own phase.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub combinations: Vec<DagNode>,
    pub approval: bool,
}

/// Every run of a Workflow as the server lists them: its run records, newest first.
pub async fn workflow_runs(
    client: &ApiClient,
    key: &ObjectKey,
) -> Result<Vec<crate::records::WorkflowRunRecord>, ClientError> {
    let value: serde_json::Value = client
        .json(Method::GET, &format!("{}/runs", object_path(key)), None)
        .await?;
    serde_json::from_value(value.get("items").cloned().unwrap_or_default())
        .map_err(|e| ClientError::usage(format!("unexpected run list from the server: {e}")))
}

/// The nodes of `spec` in topological layers (a node's layer is one more than its
/// deepest need's), each with its state from `status` (the current run).
pub fn dag(spec: &WorkflowSpec, status: &WorkflowStatus) -> Vec<Vec<DagNode>> {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    // Validation refuses cycles and unknown needs; a bad spec still terminates here,
    // since each pass only places nodes whose needs are all placed.
    let mut left: Vec<&crate::resources::workflow::WorkflowJob> = spec.jobs.iter().collect();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|job| {
            let needs: Option<Vec<usize>> = job
                .needs
                .iter()
                .map(|n| depth.get(n.as_str()).copied())
                .collect();
            match needs {
                Some(needs) => {
                    depth.insert(&job.name, needs.iter().map(|d| d + 1).max().unwrap_or(0));
                    false
                }
                None => true,
            }
        });
        if left.len() == before {
            for job in &left {
                depth.insert(&job.name, 0);
            }
            break;
        }
    }
    let layers = depth.values().max().map_or(0, |d| d + 1);
    let mut out: Vec<Vec<DagNode>> = vec![Vec::new(); layers];
    let expanded = naming::expand(spec);
    for (index, job) in spec.jobs.iter().enumerate() {
        let own: Vec<&str> = expanded
            .iter()
            .filter(|n| n.index == index)
            .map(|n| n.name.as_str())
            .collect();
        let states: Vec<DagNode> = own
            .iter()
            .map(|name| node_state(name, status.nodes.iter().find(|n| n.name == *name)))
            .collect();
        let mut node = if job.matrix.is_empty() {
            states
                .into_iter()
                .next()
                .unwrap_or_else(|| node_state(&job.name, None))
        } else {
            let mut group = node_state(&job.name, None);
            group.phase = group_phase(states.iter().map(|s| s.phase.as_str()));
            group.combinations = states;
            group
        };
        node.name = job.name.clone();
        node.needs = job.needs.clone();
        node.approval = job.approval.is_some();
        out[depth[job.name.as_str()]].push(node);
    }
    out
}

fn node_state(name: &str, node: Option<&NodeStatus>) -> DagNode {
    DagNode {
        name: name.to_string(),
        needs: Vec::new(),
        phase: node.map_or("Pending", |n| n.phase.as_str()).to_string(),
        duration_seconds: node.and_then(|n| match (n.start_time, n.completion_time) {
            (Some(s), Some(c)) => Some((c - s).num_seconds().max(0)),
            (Some(s), None) => Some((chrono::Utc::now() - s).num_seconds().max(0)),
            _ => None,
        }),
        attempts: node.and_then(|n| n.attempts),
        message: node.and_then(|n| n.message.clone()),
        job: node.and_then(|n| n.job.clone()),
        combinations: Vec::new(),
        approval: false,
    }
}

/// The phase of a matrix node over its combinations: Failed (or Cancelled, waiting,
/// Running) if any is; Pending while none has started; Running while some have finished
/// and others not; else Succeeded (Skipped when every one was).
pub fn group_phase<'a>(phases: impl Iterator<Item = &'a str>) -> String {
    let phases: Vec<&str> = phases.collect();
    for first in ["Failed", "Cancelled", "WaitingApproval", "Running"] {
        if phases.contains(&first) {
            return first.to_string();
        }
    }
    let pending = phases.iter().filter(|p| **p == "Pending").count();
    if pending == phases.len() {
        "Pending".into()
    } else if pending > 0 {
        "Running".into()
    } else if phases.iter().all(|p| *p == "Skipped") {
        "Skipped".into()
    } else {
        "Succeeded".into()
    }
}

/// The Job of a node of the current run: a node's name (as declared, or a matrix
/// combination's). A matrix node named as declared answers every combination's.
pub fn node_jobs(
    spec: &WorkflowSpec,
    status: &WorkflowStatus,
    node: &str,
) -> Result<Vec<(String, Option<String>)>, ClientError> {
    let expanded = naming::expand(spec);
    let names: Vec<&str> = match spec.jobs.iter().position(|j| j.name == node) {
        Some(index) => expanded
            .iter()
            .filter(|n| n.index == index)
            .map(|n| n.name.as_str())
            .collect(),
        None => expanded
            .iter()
            .filter(|n| n.name == node)
            .map(|n| n.name.as_str())
            .collect(),
    };
    if names.is_empty() {
        let known: Vec<&str> = expanded.iter().map(|n| n.name.as_str()).collect();
        return Err(ClientError::usage(format!(
            "no node \"{node}\" in this workflow; its nodes are: {}",
            known.join(", ")
        )));
    }
    Ok(names
        .into_iter()
        .map(|name| {
            let job = status
                .nodes
                .iter()
                .find(|n| n.name == name)
                .and_then(|n| n.job.clone());
            (name.to_string(), job)
        })
        .collect())
}

/// The critical path of a run drawn by [`dag`]: the chain of needs whose durations add
/// up to the longest (what bounds the run however wide it runs), first node first, with
/// that total in seconds. A node without a duration (not run, or still running) counts
/// as 0; None when no node has one.
pub fn critical_path(layers: &[Vec<DagNode>]) -> Option<(Vec<String>, i64)> {
    if !layers
        .iter()
        .flatten()
        .any(|n| n.duration_seconds.is_some())
    {
        return None;
    }
    // Layers are topological: every need of a node is in an earlier layer.
    let mut finish: BTreeMap<&str, (i64, Option<&str>)> = BTreeMap::new();
    for node in layers.iter().flatten() {
        let before = node
            .needs
            .iter()
            .filter_map(|n| finish.get(n.as_str()).map(|(t, _)| (*t, n.as_str())))
            .max_by_key(|(t, _)| *t);
        let own = node.duration_seconds.unwrap_or(0).max(0);
        finish.insert(
            &node.name,
            (before.map_or(0, |(t, _)| t) + own, before.map(|(_, n)| n)),
        );
    }
    // The last node in layer order among those that finish latest.
    let (mut at, total) = layers
        .iter()
        .flatten()
        .map(|n| (n.name.as_str(), finish[n.name.as_str()].0))
        .fold(None, |best: Option<(&str, i64)>, (n, t)| match best {
            Some((_, bt)) if bt > t => best,
            _ => Some((n, t)),
        })?;
    let mut path = vec![at.to_string()];
    while let Some(prev) = finish[at].1 {
        path.push(prev.to_string());
        at = prev;
    }
    path.reverse();
    Some((path, total))
}

/// [`critical_path`] for reading: `build (10s) -> test (40s) -> deploy (3s) = 53s`.
pub fn critical_path_text(layers: &[Vec<DagNode>]) -> Option<String> {
    let (path, total) = critical_path(layers)?;
    let chain: Vec<String> = path
        .iter()
        .map(|name| {
            let took = layers
                .iter()
                .flatten()
                .find(|n| &n.name == name)
                .and_then(|n| n.duration_seconds)
                .map_or("-".to_string(), seconds);
            format!("{name} ({took})")
        })
        .collect();
    Some(format!("{} = {}", chain.join(" -> "), seconds(total)))
}

/// Whole seconds for reading: `40s`, `2m5s`.
pub fn seconds(seconds: i64) -> String {
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{}s", seconds / 60, seconds % 60)
    }
}

/// The node (or matrix combination) that took longest, with its seconds.
pub fn slowest_node(layers: &[Vec<DagNode>]) -> Option<(String, i64)> {
    layers
        .iter()
        .flatten()
        .flat_map(|n| std::iter::once(n).chain(&n.combinations))
        .filter(|n| n.combinations.is_empty())
        .filter_map(|n| n.duration_seconds.map(|d| (n.name.clone(), d)))
        .max_by_key(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::workflow::NodePhase;

    fn timed(name: &str, needs: &[&str], secs: Option<i64>) -> DagNode {
        DagNode {
            name: name.into(),
            needs: needs.iter().map(|n| n.to_string()).collect(),
            phase: "Succeeded".into(),
            duration_seconds: secs,
            attempts: None,
            message: None,
            job: None,
            combinations: vec![],
            approval: false,
        }
    }

    #[test]
    fn the_critical_path_is_the_longest_chain_of_needs() {
        // build 10 -> {lint 5, test 40} -> deploy 3; docs 50 stands alone.
        let mut test = timed("test", &["build"], Some(40));
        test.combinations = vec![
            timed("test-shard-1", &[], Some(40)),
            timed("test-shard-2", &[], Some(25)),
        ];
        let layers = vec![
            vec![timed("build", &[], Some(10)), timed("docs", &[], Some(50))],
            vec![timed("lint", &["build"], Some(5)), test],
            vec![timed("deploy", &["test", "lint"], Some(3))],
        ];
        assert_eq!(
            critical_path(&layers),
            Some((vec!["build".into(), "test".into(), "deploy".into()], 53))
        );
        assert_eq!(slowest_node(&layers), Some(("docs".into(), 50)));
        // docs alone becomes the critical path once it outlasts the chain.
        let mut longer = layers.clone();
        longer[0][1].duration_seconds = Some(60);
        assert_eq!(critical_path(&longer), Some((vec!["docs".into()], 60)));
        // Nothing has run: no path to speak of.
        let none = vec![vec![timed("a", &[], None)], vec![timed("b", &["a"], None)]];
        assert_eq!(critical_path(&none), None);
        assert_eq!(slowest_node(&none), None);
    }

    fn spec() -> WorkflowSpec {
        serde_json::from_value(json!({
            "jobs": [
                {"name": "deploy", "needs": ["test", "lint"], "approval": {"message": "ok?"},
                 "job": {"image": "busybox", "steps": []}},
                {"name": "build", "job": {"image": "busybox", "steps": []}},
                {"name": "lint", "needs": ["build"], "job": {"image": "busybox", "steps": []}},
                {"name": "test", "needs": ["build"], "matrix": {"shard": ["1", "2"]},
                 "job": {"image": "busybox", "steps": []}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn nodes_are_layered_by_their_deepest_need_and_matrices_grouped() {
        let status = WorkflowStatus {
            nodes: vec![
                NodeStatus {
                    name: "build".into(),
                    phase: NodePhase::Succeeded,
                    attempts: Some(1),
                    ..Default::default()
                },
                NodeStatus {
                    name: "test-shard-1".into(),
                    phase: NodePhase::Succeeded,
                    ..Default::default()
                },
                NodeStatus {
                    name: "test-shard-2".into(),
                    phase: NodePhase::Running,
                    job: Some("ci-1-test-shard-2".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let layers = dag(&spec(), &status);
        let names: Vec<Vec<&str>> = layers
            .iter()
            .map(|l| l.iter().map(|n| n.name.as_str()).collect())
            .collect();
        assert_eq!(names, [vec!["build"], vec!["lint", "test"], vec!["deploy"]]);
        assert_eq!(layers[0][0].phase, "Succeeded");
        assert_eq!(layers[0][0].attempts, Some(1));
        let test = &layers[1][1];
        assert_eq!(test.phase, "Running");
        assert_eq!(test.combinations.len(), 2);
        assert_eq!(test.combinations[1].name, "test-shard-2");
        assert_eq!(layers[2][0].phase, "Pending");
        assert!(layers[2][0].approval);
    }

    #[test]
    fn a_matrix_node_names_every_combination_job_and_an_unknown_node_lists_the_known() {
        let status = WorkflowStatus {
            nodes: vec![NodeStatus {
                name: "test-shard-1".into(),
                job: Some("ci-1-test-shard-1".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let jobs = node_jobs(&spec(), &status, "test").unwrap();
        assert_eq!(
            jobs,
            [
                (
                    "test-shard-1".to_string(),
                    Some("ci-1-test-shard-1".to_string())
                ),
                ("test-shard-2".to_string(), None)
            ]
        );
        assert_eq!(
            node_jobs(&spec(), &status, "test-shard-1").unwrap().len(),
            1
        );
        let err = node_jobs(&spec(), &status, "nope").unwrap_err().to_string();
        assert!(err.contains("test-shard-2"), "{err}");
    }

    #[test]
    fn inputs_are_name_equals_value() {
        let inputs = parse_inputs(&["ref=main".into(), "msg=a=b".into()]).unwrap();
        assert_eq!(inputs["msg"], "a=b");
        assert!(parse_inputs(&["ref".into()]).is_err());
        assert!(parse_inputs(&["=x".into()]).is_err());
    }

    #[test]
    fn a_group_fails_if_any_combination_failed() {
        assert_eq!(group_phase(["Succeeded", "Failed"].into_iter()), "Failed");
        assert_eq!(
            group_phase(["Succeeded", "Succeeded"].into_iter()),
            "Succeeded"
        );
        assert_eq!(group_phase(["Succeeded", "Pending"].into_iter()), "Running");
        assert_eq!(
            group_phase(["Succeeded", "Skipped"].into_iter()),
            "Succeeded"
        );
        assert_eq!(group_phase(["Skipped", "Skipped"].into_iter()), "Skipped");
        assert_eq!(group_phase(std::iter::empty()), "Pending");
    }
}
