//! The Workflow kind: a DAG of jobs. Each node runs as a real Job (see
//! `controller::workflow`); expressions in it are CEL ([`super::expr`]).

// kube's `printcolumn(...)` attributes repeat `type_ = ...`; this lint misreads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

pub mod matrix;
pub mod naming;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;
use super::job::JobSpec;
pub use matrix::{Matrix, MatrixValue};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "orcaops.dev",
    version = "v1alpha1",
    kind = "Workflow",
    namespaced,
    status = "WorkflowStatus",
    shortname = "wf",
    category = "orcaops",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Progress", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "Run", type_ = "integer", json_path = ".status.run"),
    printcolumn(
        name = "Summary",
        type_ = "string",
        json_path = ".status.summary",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSpec {
    /// The nodes of the DAG; each runs one job.
    pub jobs: Vec<WorkflowJob>,
    /// Named values a run starts with, seen by expressions as `inputs.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<WorkflowInput>,
    /// Stop starting new nodes once one fails (the default), or carry on.
    #[serde(default = "default_true")]
    pub fail_fast: bool,
    /// How many nodes may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// A cron expression; each tick is a new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The IANA time zone of `schedule` (`Europe/Paris`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// A tick missed by more than this many seconds is not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<u64>,
    /// What a new run does while one is in progress.
    #[serde(default, skip_serializing_if = "is_default")]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Under `concurrencyPolicy: Allow`, how many runs may be in progress at once (5 when
    /// absent); a run asked for beyond it waits for one to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
    /// A suspended Workflow starts no node; its running nodes finish. Resuming continues
    /// the same run.
    #[serde(default, skip_serializing_if = "is_default")]
    pub suspend: bool,
    /// What else starts a run: a signed webhook (`POST /hooks/<workspace>/<name>`). A
    /// Workflow with triggers, like one with a schedule, is not run by being applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<WorkflowTrigger>,
}

/// One way a run is started from outside.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowTrigger {
    /// A delivery to `/hooks/<workspace>/<name>`, signed with a shared secret (GitHub's
    /// `X-Hub-Signature-256`, or GitLab's `X-Gitlab-Token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTrigger>,
}

/// A webhook: where its secret is, which deliveries start a run, and with what inputs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTrigger {
    /// The key of a Secret in the Workflow's workspace that holds the shared secret.
    pub secret_ref: super::common::SecretKeySelector,
    /// The run's inputs, each a template over the delivery: `${{ body.ref }}`,
    /// `${{ headers['x-github-event'] }}`. Inputs not given keep their defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// A CEL condition over `body` and `headers` (names in lower case): a delivery for
    /// which it is false is answered 202 and starts nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl WorkflowSpec {
    /// The webhook trigger, if the Workflow has one.
    pub fn webhook(&self) -> Option<&WebhookTrigger> {
        self.triggers.iter().find_map(|t| t.webhook.as_ref())
    }
}

impl WorkflowSpec {
    /// The names of the nodes upstream of node `i`: its needs, and theirs, transitively
    /// (unknown needs and cycles are tolerated: validation reports them).
    pub fn upstream(&self, i: usize) -> std::collections::BTreeSet<&str> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            for need in &self.jobs[n].needs {
                if let Some(j) = self.jobs.iter().position(|node| &node.name == need)
                    && j != i
                    && seen.insert(self.jobs[j].name.as_str())
                {
                    stack.push(j);
                }
            }
        }
        seen
    }
}

/// How many runs may be in progress at once under `Allow` when `maxActiveRuns` is absent.
pub const DEFAULT_MAX_ACTIVE_RUNS: u32 = 5;

impl WorkflowSpec {
    /// How many runs may be in progress at once: `maxActiveRuns` under `Allow`, else 1.
    pub fn max_active_runs(&self) -> usize {
        match self.concurrency_policy {
            ConcurrencyPolicy::Allow => self
                .max_active_runs
                .unwrap_or(DEFAULT_MAX_ACTIVE_RUNS)
                .max(1) as usize,
            _ => 1,
        }
    }
}

fn default_true() -> bool {
    true
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// One input of a run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowInput {
    pub name: String,
    /// The value when a run is not given one ("" when absent).
    #[serde(default)]
    pub default: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What a run that is asked for while another is in progress does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap: a new run starts while others are in progress (at most
    /// `maxActiveRuns` at once; beyond it, it waits).
    Allow,
    /// The new run starts once the one in progress has finished.
    #[default]
    Forbid,
    /// The run in progress is cancelled, and the new one starts.
    Replace,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowJob {
    pub name: String,
    /// Names of the nodes that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// A CEL expression; the node runs only when it is true, and is Skipped otherwise.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub if_: Option<String>,
    /// Fan-out: one node per combination of these values (`include` and `exclude` as in
    /// GitHub Actions).
    #[serde(default, skip_serializing_if = "Matrix::is_empty")]
    pub matrix: Matrix,
    /// How many of this node's matrix combinations may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// A failure of this node does not fail the workflow, nor skip what needs it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub continue_on_error: bool,
    /// Repeat the node (a new Job each time) until its outputs satisfy the expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Until>,
    /// Wait for someone to approve (or reject) before the node runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    pub job: JobSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Until {
    /// CEL over `outputs` (the node's own) and what `if` sees.
    pub expression: String,
    /// The most times the node runs.
    pub limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    /// What the approver reads; may hold `${{ }}` templates.
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum WorkflowPhase {
    #[default]
    Pending,
    Running,
    WaitingApproval,
    Succeeded,
    Failed,
    Cancelled,
    Suspended,
}

impl WorkflowPhase {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum NodePhase {
    #[default]
    Pending,
    Running,
    /// An `approval` node whose needs are done, waiting for someone to approve or reject
    /// it (the annotation `orcaops.dev/approvals`).
    WaitingApproval,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl NodePhase {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::WaitingApproval => "WaitingApproval",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
            Self::Cancelled => "Cancelled",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WorkflowConditionType {
    /// The current run finished, whatever its outcome.
    Complete,
    /// The current run failed or was cancelled.
    Failed,
    Suspended,
    /// A run asked for waits because `maxActiveRuns` runs are in progress (`Allow`).
    RunWaiting,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    #[serde(default)]
    pub phase: WorkflowPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The number of the current (or last) run, counting from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u32>,
    /// What started the current run: `s<spec digest>` (no schedule), `rerun=<token>` when
    /// re-run by hand or through the API, `schedule=<tick>` for a scheduler tick; joined
    /// by `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_trigger: Option<String>,
    /// The inputs of the current run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// Finished nodes over all nodes of the run, such as "5/9".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// One line a person reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition<WorkflowConditionType>>,
    /// One entry per node of the run (a matrix node has one per combination).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    /// With a `schedule`: the last tick a run was started for (or given up as missed).
    /// Ticks up to it never start a run again, which keeps a restart from repeating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// With a `schedule`: the next tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<DateTime<Utc>>,
    /// The run that `orcaops.dev/cancel: latest` was read as: the one current when the
    /// controller first saw it. The annotation stays set, and must not cancel later runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_latest_run: Option<u32>,
    /// The most recent finished runs, newest first, at most [`HISTORY_LIMIT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<WorkflowRunSummary>,
    /// Under `concurrencyPolicy: Allow`: the runs still in progress besides the current
    /// one (`run`, always the newest), oldest first; at most `maxActiveRuns` - 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_runs: Vec<ActiveRun>,
}

impl WorkflowStatus {
    /// The numbers of the runs in progress, oldest first.
    pub fn runs_in_progress(&self) -> Vec<u32> {
        let mut runs: Vec<u32> = self.active_runs.iter().map(|r| r.run).collect();
        if let Some(run) = self.run
            && self.completion_time.is_none()
            && !self.phase.is_finished()
        {
            runs.push(run);
        }
        runs
    }

    /// Run `run` as a status of its own, when it is the current run or one in progress
    /// (its nodes: those of `activeRuns`, which lists only the nodes past Pending).
    pub fn run_view(&self, run: u32) -> Option<WorkflowStatus> {
        if self.run == Some(run) {
            let mut view = self.clone();
            view.active_runs.clear();
            return Some(view);
        }
        self.active_runs
            .iter()
            .find(|r| r.run == run)
            .map(ActiveRun::as_status)
    }
}

/// A run in progress that is not the current one (`concurrencyPolicy: Allow`). Kept
/// compact: nodes still Pending with nothing to say are left out (the spec lists them).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRun {
    pub run: u32,
    #[serde(default)]
    pub phase: WorkflowPhase,
    /// What started it (as `runTrigger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Its nodes past Pending (or with a message, such as an approval's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
}

impl ActiveRun {
    /// The run as a status of its own (nodes left out are Pending).
    pub fn as_status(&self) -> WorkflowStatus {
        WorkflowStatus {
            phase: self.phase,
            run: Some(self.run),
            run_trigger: self.trigger.clone(),
            inputs: self.inputs.clone(),
            progress: self.progress.clone(),
            start_time: self.start_time,
            summary: self.summary.clone(),
            nodes: self.nodes.clone(),
            ..Default::default()
        }
    }

    /// A run in progress, from its status (its Pending nodes with nothing to say dropped).
    pub fn from_status(status: &WorkflowStatus) -> ActiveRun {
        ActiveRun {
            run: status.run.unwrap_or(0),
            phase: status.phase,
            trigger: status.run_trigger.clone(),
            inputs: status.inputs.clone(),
            progress: status.progress.clone(),
            start_time: status.start_time,
            summary: status.summary.clone(),
            nodes: status
                .nodes
                .iter()
                .filter(|n| {
                    **n != NodeStatus {
                        name: n.name.clone(),
                        ..Default::default()
                    }
                })
                .cloned()
                .collect(),
        }
    }
}

/// One node of the current run. Kept compact (every field but the name may be absent): a
/// 500-node matrix must stay far below the 1 MB an object may take.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    #[serde(default)]
    pub phase: NodePhase,
    /// The Job that runs it, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Why it was skipped, failed or cancelled; what an approval asks; where an `until`
    /// loop stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many times a node with `until` has run (its current iteration while running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
}

/// One finished run, as kept in `status.history`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRunSummary {
    pub run: u32,
    pub phase: WorkflowPhase,
    /// The status's `runTrigger` of that run (a `POST .../runs` retried with the same
    /// Idempotency-Key finds its run by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// How many runs `status.history` keeps.
pub const HISTORY_LIMIT: usize = 10;
