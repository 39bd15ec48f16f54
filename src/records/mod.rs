//! Run records: every run and attempt of a Job, its steps, artifacts and logs.
//!
//! The resource keeps only the last few runs in `status.history`; these records keep
//! them all, and outlive the resource (a Job deleted by its TTL keeps its records).
//! Logs and artifacts are files under the data dir; the records point at them.

pub mod anomaly;
pub mod errors;
pub mod output;
pub mod search;
pub mod usage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::resources::job::{ArtifactStatus, JobPhase, StepStatus, Usage};
use crate::resources::workflow::{NodeStatus, WorkflowPhase};

/// How an attempt ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// The container could not be created or started (for example, an unknown image).
    StartFailed,
    /// The container disappeared before its result was read.
    Lost,
}

impl AttemptOutcome {
    pub fn succeeded(self) -> bool {
        self == AttemptOutcome::Succeeded
    }
}

/// One attempt of one run: one container.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    pub uid: String,
    pub run: u32,
    pub attempt: u32,
    pub container_name: String,
    pub outcome: AttemptOutcome,
    /// The exit code of the failing step (or 0), when one ran.
    pub exit_code: Option<i64>,
    /// Why it ended, for a person.
    pub message: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub steps: Vec<StepStatus>,
    pub artifacts: Vec<ArtifactStatus>,
    /// What the steps wrote to `$ORCAOPS_OUTPUT` (records from before outputs have none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// What it used (records from before usage have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The image the attempt ran, as the runtime reports it (see [`RunContext::image_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// One run of a Job: a generation, a re-run or a retry series ending in one phase.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub run: u32,
    pub generation: i64,
    pub phase: JobPhase,
    pub attempts: u32,
    pub start_time: Option<DateTime<Utc>>,
    pub completion_time: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    pub summary: String,
    pub steps: Vec<StepStatus>,
    pub artifacts: Vec<ArtifactStatus>,
    /// The outputs of the run's last attempt.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// What the run's last attempt used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What was unusual about it against the runs before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<crate::resources::anomaly::Anomaly>,
    /// What ran and why (runs recorded before the context was kept have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<RunContext>,
    /// A few sentences on why the run failed, written after it ended by the optional
    /// summariser (`serve --summarizer-url`); None when it is off, down, or the run
    /// succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// What a run ran and what started it, so that any two runs can be compared
/// (`orcaops diff job`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunContext {
    /// The sha256 of the spec as canonical JSON (sorted keys, no spaces).
    pub spec_hash: String,
    /// The Job's spec as the run saw it.
    pub spec: serde_json::Value,
    /// What started the run: `file` (the watched folder or `sync`), `api` (REST,
    /// kubectl, MCP), `rerun` (a re-run request) or `workflow` (a Workflow's node).
    pub trigger: String,
    /// Where it came from, for `file` the path (`file:jobs/build.yaml`) and for
    /// `workflow` the Workflow, its run and node (`ci run 3 node test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The Job's labels when the run ended (what `history --all -l` selects on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The image as the spec names it.
    pub image: String,
    /// The image the last attempt really ran, as the runtime reports it (Docker's image
    /// id `sha256:…`, a pod's `imageID`); absent when the runtime did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// The sha256 of `spec` as canonical JSON, in hex: equal specs, equal hashes.
pub fn spec_hash(spec: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    // serde_json's maps are sorted (no preserve_order), so this text is canonical.
    let text = serde_json::to_string(spec).unwrap_or_default();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One run of a Workflow: the whole DAG as it ended (or as it started, until it ends).
/// The Workflow's status keeps only the current run's nodes and a short history; these
/// records keep every run, and outlive the Workflow. Each node's Job keeps its own
/// [`RunRecord`]s (logs, steps, artifacts) under the Job's name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRunRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub run: u32,
    pub generation: i64,
    pub phase: WorkflowPhase,
    /// What started it: `spec`, `rerun`, `api`, `schedule`, `webhook`, ... (see the
    /// Workflow controller).
    pub trigger: String,
    /// The re-run token that started it (`run-<Idempotency-Key>` for `POST .../runs`), if
    /// a token did: a retried request finds its run by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    pub start_time: Option<DateTime<Utc>>,
    pub completion_time: Option<DateTime<Utc>>,
    /// Finished nodes over all nodes, such as "5/9".
    #[serde(default)]
    pub progress: String,
    #[serde(default)]
    pub summary: String,
    /// Every node of the run (a matrix node has one per combination).
    pub nodes: Vec<NodeStatus>,
    /// The Workflow's spec as the run ran it, and its hash (as a Job run's context has
    /// them), so that two runs can be compared: `orcaops diff workflow`. Runs recorded
    /// before orcaops kept them have neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
}

/// Where logs and artifacts of one run live:
/// `<data>/runs/<namespace>/<name>/<uid>/run-<N>/`.
pub fn run_dir(data_dir: &Path, namespace: &str, name: &str, uid: &str, run: u32) -> PathBuf {
    data_dir
        .join("runs")
        .join(namespace)
        .join(name)
        .join(uid)
        .join(format!("run-{run}"))
}

/// The combined output of one attempt.
pub fn attempt_log(run_dir: &Path, attempt: u32) -> PathBuf {
    run_dir.join(format!("attempt-{attempt}.log"))
}

/// Where each step's output starts in the attempt log (see [`output::step_range`]): the
/// steps' views of the one stored output.
pub fn step_index(run_dir: &Path, attempt: u32) -> PathBuf {
    run_dir.join(format!("attempt-{attempt}.steps"))
}

/// The output of one step of one attempt, as runs harvested before the step index kept
/// it (a second copy of the attempt log); read only for those runs.
pub fn step_log(run_dir: &Path, attempt: u32, step_index: usize, step_name: &str) -> PathBuf {
    run_dir
        .join(format!("attempt-{attempt}"))
        .join(format!("{:02}-{step_name}.log", step_index + 1))
}

/// Where the collected artifacts of a run are.
pub fn artifact_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("artifacts")
}

/// The folder of one artifact: `artifacts/<name>/`, holding `<name>` (a file) or
/// `<name>.tar` (a directory). A folder per name, so that no two artifacts can share a
/// stored file (`out` as a directory and `out.tar` as a file once did). Runs collected
/// before kept the files in [`artifact_dir`] itself.
pub fn artifact_store_dir(run_dir: &Path, name: &str) -> PathBuf {
    artifact_dir(run_dir).join(name)
}
