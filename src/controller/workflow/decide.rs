//! The pure decision of the Workflow controller: from the Workflow and the Jobs it made
//! (and the time) to the Jobs to create or delete and the new status. No I/O happens
//! here; this is where the DAG rules are tested.
//!
//! Everything a run needs to go on is in the store: the status (run, trigger, inputs,
//! each node's phase) and the Jobs, named deterministically (`<workflow>-<run>-<node>`).
//! So a restarted controller decides the same thing again, and a Job created before a
//! crash is found by its name and adopted, never made twice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::controller::event::Event;
use crate::controller::reconcile::{self, Fate};
use crate::records::WorkflowRunRecord;
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::expr::{self, NodeVars, Vars};
use crate::resources::job::{JobPhase, JobSpec, JobStatus};
use crate::resources::workflow::naming::{self, RunNode};
use crate::resources::workflow::{
    ConcurrencyPolicy, HISTORY_LIMIT, NodePhase, NodeStatus, WorkflowConditionType, WorkflowPhase,
    WorkflowRunSummary, WorkflowSpec, WorkflowStatus,
};
use crate::resources::{API_VERSION, Kind, Object, ObjectMeta, keys};

mod control;
mod overlap;
mod render;
mod schedule;
mod summary;
#[cfg(test)]
mod tests;
mod trigger;
mod until;

use control::PreviousRun;
use schedule::Due;
use trigger::{default_inputs, request_of, run_inputs, spec_part};
pub use trigger::{run_token, run_trigger, trigger_name};
pub use until::iteration_job_name;

/// Jobs of this many runs (the current one included) are kept; older ones are deleted
/// (each Job keeps its own run records).
pub const RUNS_KEPT: u32 = 3;
/// How often a running Workflow is looked at even when no Job woke it.
pub const POLL: Duration = Duration::from_secs(30);

/// Everything the decision needs, read by the observe step.
#[derive(Clone, Debug)]
pub struct Observed {
    pub meta: ObjectMeta,
    pub spec: WorkflowSpec,
    pub status: WorkflowStatus,
    /// The Jobs labelled with this Workflow's name.
    pub jobs: Vec<NodeJob>,
    pub now: DateTime<Utc>,
}

/// One Job of a Workflow, as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeJob {
    pub name: String,
    pub run: Option<u32>,
    pub node: Option<String>,
    /// Which iteration of an `until` node it runs (1 for every other node).
    pub iteration: u32,
    /// Whether its ownerReference is this Workflow (by uid).
    pub owned: bool,
    /// Whether it is owned by another Workflow of this name: one deleted and made again
    /// before its Jobs were gone. (A Job that merely carries the label is left alone.)
    pub foreign: bool,
    pub deleting: bool,
    pub status: JobStatus,
}

impl NodeJob {
    /// The Job as observed from a stored object.
    pub fn from_object(obj: &Object, workflow_uid: &str) -> Self {
        let label = |key: &str| obj.metadata.labels.get(key).cloned();
        let owners: Vec<&str> = obj
            .metadata
            .owner_references
            .iter()
            .filter(|r| r.get("kind").and_then(|k| k.as_str()) == Some("Workflow"))
            .filter_map(|r| r.get("uid").and_then(|u| u.as_str()))
            .collect();
        NodeJob {
            name: obj.metadata.name.clone(),
            run: label(keys::LABEL_WORKFLOW_RUN).and_then(|r| r.parse().ok()),
            node: label(keys::LABEL_NODE),
            iteration: label(keys::LABEL_ITERATION)
                .and_then(|i| i.parse().ok())
                .unwrap_or(1),
            owned: owners.contains(&workflow_uid),
            foreign: !owners.is_empty() && !owners.contains(&workflow_uid),
            deleting: obj.metadata.deletion_timestamp.is_some(),
            status: if obj.status.is_null() {
                JobStatus::default()
            } else {
                serde_json::from_value(obj.status.clone()).unwrap_or_default()
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum WorkflowAction {
    /// Create the Job of a node (an existing one of that name is adopted).
    CreateJob(Box<Object>),
    /// Delete a Job: of a cancelled node, of an old run, or not this Workflow's.
    DeleteJob { name: String, why: &'static str },
    /// Write the run's record (when it starts, as its nodes change, and when it finishes;
    /// a write replaces the one of the same run).
    RecordRun(Box<WorkflowRunRecord>),
}

pub type Decision = reconcile::Decision<WorkflowAction, WorkflowStatus>;

pub fn decide(obs: &Observed) -> Decision {
    let mut d = Decider {
        obs,
        plan: naming::expand(&obs.spec),
        status: obs.status.clone(),
        actions: Vec::new(),
        events: Vec::new(),
        due: schedule::due(obs),
        wake: None,
        older: false,
    };
    d.status.observed_generation = Some(obs.meta.generation);
    d.sweep_jobs();
    d.honour_cancel();
    // The older runs first: those that end make room for a run that waits.
    d.drive_older();
    let started_before = d.status.run;
    d.request_runs();
    if d.active() {
        d.drive();
    }
    // The run just finished and another waits (a re-run or a tick under Forbid): start
    // it now.
    if !d.active() {
        let run = d.status.run;
        d.request_runs();
        if d.status.run != run && d.active() {
            d.drive();
        }
    }
    d.schedule_status();
    d.phase();
    d.waiting_condition();
    // The record follows the run as its nodes change (not only as it starts and ends),
    // so the run records show a run in progress node by node.
    let nodes_changed = obs.status.run == d.status.run && obs.status.nodes != d.status.nodes;
    if d.active() && (d.status.run != started_before || nodes_changed) {
        d.record_run();
    }
    let in_progress = d.active() || !d.status.active_runs.is_empty();
    let mut requeue = (in_progress && !obs.spec.suspend).then_some(POLL);
    for wake in [d.wake, d.next_tick()].into_iter().flatten() {
        requeue = Some(requeue.map_or(wake, |r| r.min(wake)));
    }
    // A scheduled Workflow that never ran, and starts nothing now, has nothing to report:
    // its status stays as it is (no write, no watch event), and it is woken at its next
    // tick all the same (the tick comes from the spec and the creation time, not the
    // status). So a store of many scheduled Workflows is not rewritten at each start.
    if obs.status.run.is_none()
        && d.status.run.is_none()
        && !obs.spec.suspend
        && obs.status.conditions.is_empty()
        && d.actions.is_empty()
        && d.events.is_empty()
    {
        d.status = obs.status.clone();
    }
    Decision {
        actions: d.actions,
        status: d.status,
        events: d.events,
        requeue_after: requeue,
        status_first: false,
        fate: Fate::Keep,
        hints: (),
    }
}

struct Decider<'a> {
    obs: &'a Observed,
    plan: Vec<RunNode>,
    status: WorkflowStatus,
    actions: Vec<WorkflowAction>,
    events: Vec<Event>,
    /// What the schedule says now (None without a schedule).
    due: Option<Due>,
    /// When an `until` loop's next iteration is due.
    wake: Option<Duration>,
    /// This decider drives a run of `activeRuns` (not the current one): it starts no
    /// run, and its summary speaks of that run only.
    older: bool,
}

impl Decider<'_> {
    /// A run that has not finished.
    fn active(&self) -> bool {
        self.status.run.is_some() && self.status.completion_time.is_none()
    }

    /// The run asked for by the spec or a re-run token, when it is not the current one.
    fn wanted(&self) -> Option<String> {
        let trigger = run_trigger(&self.obs.meta, &self.obs.spec)?;
        let current = self.status.run_trigger.as_deref().map(request_of);
        (current.as_deref() != Some(trigger.as_str())).then_some(trigger)
    }

    /// Starts the run asked for (by the spec, a token or a tick), cancelling the one in
    /// progress when the spec changed or the policy is Replace; under Forbid it waits for
    /// the current run to finish; under Allow the current run goes on beside it (in
    /// `activeRuns`) while fewer than `maxActiveRuns` are in progress, and it waits
    /// otherwise.
    fn request_runs(&mut self) {
        if let Some(trigger) = self.wanted() {
            // Runs of another spec cannot go on: their nodes are not this spec's.
            if let Some(spec) = spec_part(&trigger) {
                self.cancel_older_of_another_spec(spec);
            }
            if self.active() {
                let spec_changed =
                    self.status.run_trigger.as_deref().and_then(spec_part) != spec_part(&trigger);
                let policy = self.obs.spec.concurrency_policy;
                if spec_changed || policy == ConcurrencyPolicy::Replace {
                    self.cancel_run(if spec_changed {
                        "the spec changed"
                    } else {
                        "a new run replaced it"
                    });
                } else if policy == ConcurrencyPolicy::Allow
                    && !self.obs.spec.suspend
                    && self.room()
                {
                    // The current run goes on beside the new one.
                    self.park_current();
                    let by_token = trigger.contains("rerun=");
                    self.start_run(trigger, by_token);
                    return;
                }
            }
            if !self.active() && !self.obs.spec.suspend && self.room() {
                let by_token = trigger.contains("rerun=");
                self.start_run(trigger, by_token);
            }
            return;
        }
        self.tick();
    }

    fn delete(&mut self, name: &str, why: &'static str) {
        let listed = self
            .actions
            .iter()
            .any(|a| matches!(a, WorkflowAction::DeleteJob { name: n, .. } if n == name));
        if !listed {
            self.actions.push(WorkflowAction::DeleteJob {
                name: name.to_string(),
                why,
            });
        }
    }

    /// Jobs that are not this Workflow's (left by a deleted one of the same name), and
    /// those of runs older than the ones kept.
    fn sweep_jobs(&mut self) {
        let current = self.status.run.unwrap_or(0);
        for job in &self.obs.jobs {
            if job.deleting {
                continue;
            }
            // A run still in progress keeps its Jobs, however many runs started since.
            if job
                .run
                .is_some_and(|r| self.status.active_runs.iter().any(|a| a.run == r))
            {
                continue;
            }
            // A node kept by a re-run still shows its Job from an earlier run.
            let kept = self
                .status
                .nodes
                .iter()
                .any(|n| n.job.as_deref() == Some(job.name.as_str()));
            if job.foreign {
                self.delete(&job.name, "it belongs to an earlier Workflow of this name");
            } else if job.owned && !kept && job.run.is_some_and(|r| r + RUNS_KEPT <= current) {
                self.delete(&job.name, "its run is older than the runs kept");
            }
        }
    }

    /// The Job of node `node` in the current run, if there is one of ours (for a node
    /// with `until`, the latest iteration's).
    fn job_of(&self, node: &str) -> Option<&NodeJob> {
        let run = self.status.run?;
        self.obs
            .jobs
            .iter()
            .filter(|j| j.owned && j.run == Some(run) && j.node.as_deref() == Some(node))
            .max_by_key(|j| j.iteration)
    }

    /// Starts the next run. `by_token`: a re-run token started it, so the re-run mode
    /// and the inputs annotation apply.
    fn start_run(&mut self, trigger: String, by_token: bool) {
        let run = self.status.run.unwrap_or(0) + 1;
        let now = self.obs.now;
        let previous = PreviousRun {
            run: self.status.run,
            spec: self
                .status
                .run_trigger
                .as_deref()
                .and_then(spec_part)
                .map(String::from),
            nodes: std::mem::take(&mut self.status.nodes),
        };
        self.status.run = Some(run);
        let inputs = if by_token {
            run_inputs(&self.obs.meta, &self.obs.spec)
        } else {
            Ok(default_inputs(&self.obs.spec))
        };
        let kept = if by_token {
            self.kept_nodes(&previous, spec_part(&trigger))
        } else {
            Ok(HashMap::new())
        };
        self.status.run_trigger = Some(trigger);
        self.status.start_time = Some(now);
        self.status.completion_time = None;
        let (mut kept, kept_problem) = match kept {
            Ok(kept) => (kept, None),
            Err(e) => (HashMap::new(), Some(e)),
        };
        self.status.nodes = self
            .plan
            .iter()
            .map(|n| {
                kept.remove(&n.name).unwrap_or_else(|| NodeStatus {
                    name: n.name.clone(),
                    ..Default::default()
                })
            })
            .collect();
        self.status.phase = WorkflowPhase::Running;
        // Those two are about the Workflow, not about the run that ended.
        self.status.conditions.retain(|c| {
            matches!(
                c.type_,
                WorkflowConditionType::Suspended | WorkflowConditionType::RunWaiting
            )
        });
        let problem = match (inputs, kept_problem) {
            (Err(e), _) | (Ok(_), Some(e)) => Some(e),
            (Ok(inputs), None) => {
                self.status.inputs = inputs;
                None
            }
        };
        match problem {
            None => {
                let kept = self
                    .status
                    .nodes
                    .iter()
                    .filter(|n| n.phase == NodePhase::Succeeded)
                    .count();
                let kept = if kept > 0 {
                    format!(" ({kept} kept from earlier runs)")
                } else {
                    String::new()
                };
                self.events.push(Event::normal(
                    "RunStarted",
                    format!("run {run} started with {} nodes{kept}", self.plan.len()),
                ));
            }
            Some(e) => {
                self.status.inputs.clear();
                for node in &mut self.status.nodes {
                    node.phase = NodePhase::Cancelled;
                    node.message =
                        Some("not started: the run could not start (see its summary)".into());
                }
                self.finish_run(WorkflowPhase::Failed, &e);
            }
        }
    }

    /// Ends the current run as Cancelled: nodes not finished are Cancelled, and their
    /// running Jobs deleted (which stops them).
    fn cancel_run(&mut self, why: &str) {
        let nodes: Vec<String> = self.status.nodes.iter().map(|n| n.name.clone()).collect();
        for name in nodes {
            let job = self
                .job_of(&name)
                .filter(|j| !j.deleting && !j.status.phase.is_finished())
                .map(|j| j.name.clone());
            let node = self
                .status
                .nodes
                .iter_mut()
                .find(|n| n.name == name)
                .expect("listed");
            if !node.phase.is_finished() {
                node.phase = NodePhase::Cancelled;
                node.message = Some(format!("cancelled: {why}"));
                node.completion_time.get_or_insert(self.obs.now);
                if let Some(job) = job {
                    self.delete(&job, "its run was cancelled");
                }
            }
        }
        self.finish_run(WorkflowPhase::Cancelled, &format!("cancelled: {why}"));
    }

    /// Follows the Jobs, then skips and starts what the DAG allows.
    fn drive(&mut self) {
        self.align_nodes();
        self.follow_jobs();
        self.advance();
        if self.status.nodes.iter().all(|n| n.phase.is_finished()) {
            let failed = self.failures();
            let phase = if failed.is_empty() {
                WorkflowPhase::Succeeded
            } else {
                WorkflowPhase::Failed
            };
            let summary = self.counts();
            self.finish_run(phase, &summary);
        } else {
            self.progress();
            let run = self.status.run.unwrap_or(0);
            let waiting = if self.older {
                String::new()
            } else if let Some(why) = self.no_room() {
                format!("; a new run waits: {why}")
            } else if self.wanted().is_some() {
                format!("; run {} waits for it to finish", run + 1)
            } else if let Some(tick) = self.waiting_tick() {
                format!(
                    "; the tick of {} waits for it to finish",
                    schedule::shown(tick)
                )
            } else {
                String::new()
            };
            self.status.summary = Some(format!("run {run}: {}{waiting}", self.counts()));
        }
    }

    /// The status lists the plan's nodes in its order (a spec change replaces a run, so
    /// this only repairs a status edited by hand).
    fn align_nodes(&mut self) {
        if self.status.nodes.len() == self.plan.len()
            && self
                .status
                .nodes
                .iter()
                .zip(&self.plan)
                .all(|(s, p)| s.name == p.name)
        {
            return;
        }
        let mut old: HashMap<String, NodeStatus> = std::mem::take(&mut self.status.nodes)
            .into_iter()
            .map(|n| (n.name.clone(), n))
            .collect();
        self.status.nodes = self
            .plan
            .iter()
            .map(|p| {
                old.remove(&p.name).unwrap_or_else(|| NodeStatus {
                    name: p.name.clone(),
                    ..Default::default()
                })
            })
            .collect();
    }

    fn follow_jobs(&mut self) {
        for i in 0..self.status.nodes.len() {
            if self.status.nodes[i].phase.is_finished() {
                continue;
            }
            let name = self.status.nodes[i].name.clone();
            let job = self.job_of(&name).cloned();
            let looping = self.obs.spec.jobs[self.plan[i].index].until.is_some();
            let node = &mut self.status.nodes[i];
            match job {
                Some(job) => {
                    node.job = Some(job.name.clone());
                    node.attempts = job.status.attempt;
                    if looping {
                        node.iterations = Some(job.iteration);
                    }
                    if job.status.start_time.is_some()
                        && (job.iteration == 1 || node.start_time.is_none())
                    {
                        node.start_time = job.status.start_time;
                    }
                    let (phase, message) = match job.status.phase {
                        JobPhase::Succeeded => (NodePhase::Succeeded, None),
                        JobPhase::Failed => (NodePhase::Failed, job.status.summary.clone()),
                        JobPhase::TimedOut => (
                            NodePhase::Failed,
                            Some(
                                job.status
                                    .summary
                                    .clone()
                                    .unwrap_or_else(|| "timed out".into()),
                            ),
                        ),
                        JobPhase::Cancelled => (NodePhase::Cancelled, job.status.summary.clone()),
                        JobPhase::Pending | JobPhase::Running => (NodePhase::Running, None),
                    };
                    if phase == NodePhase::Running {
                        // Its message stays: who approved it, or where its loop stands.
                        node.phase = phase;
                        continue;
                    }
                    node.outputs = job.status.outputs.clone();
                    let (phase, message) = if looping && phase == NodePhase::Succeeded {
                        match self.iterate(i, &job) {
                            Some(ended) => ended,
                            None => continue,
                        }
                    } else if looping {
                        let why = message.unwrap_or_default();
                        (phase, Some(format!("iteration {}: {why}", job.iteration)))
                    } else {
                        (phase, message)
                    };
                    let node = &mut self.status.nodes[i];
                    node.phase = phase;
                    // Who approved it stays, unless the Job has more to say.
                    node.message = message.or_else(|| node.message.take());
                    node.completion_time = job.status.completion_time.or(Some(self.obs.now));
                    let (reason, text) = match phase {
                        NodePhase::Succeeded => ("NodeSucceeded", "succeeded"),
                        NodePhase::Cancelled => ("NodeCancelled", "was cancelled"),
                        _ => ("NodeFailed", "failed"),
                    };
                    let event = format!("node {name} {text} (Job {})", job.name);
                    self.events.push(if phase == NodePhase::Succeeded {
                        Event::normal(reason, event)
                    } else {
                        Event::warning(reason, event)
                    });
                }
                None if node.job.is_some() => {
                    node.phase = NodePhase::Failed;
                    node.completion_time = Some(self.obs.now);
                    node.message = Some(format!(
                        "its Job {} was deleted before it finished",
                        node.job.as_deref().unwrap_or_default()
                    ));
                }
                None => {}
            }
        }
    }

    /// Whether a node's failure stops what follows (it has no continueOnError).
    fn stops(&self, i: usize) -> bool {
        let node = &self.status.nodes[i];
        match node.phase {
            NodePhase::Failed => !self.obs.spec.jobs[self.plan[i].index].continue_on_error,
            NodePhase::Cancelled => true,
            _ => false,
        }
    }

    fn failures(&self) -> Vec<String> {
        (0..self.status.nodes.len())
            .filter(|&i| self.stops(i))
            .map(|i| self.status.nodes[i].name.clone())
            .collect()
    }

    /// Skips what cannot run, and starts what may, within the limits.
    fn advance(&mut self) {
        let obs = self.obs;
        let spec = &obs.spec;
        let mut ready = Vec::new();
        for i in 0..self.plan.len() {
            let waiting = matches!(
                self.status.nodes[i].phase,
                NodePhase::Pending | NodePhase::WaitingApproval
            );
            if !waiting || self.status.nodes[i].job.is_some() {
                continue;
            }
            let decl = &spec.jobs[self.plan[i].index];
            let needs: Vec<usize> = (0..self.plan.len())
                .filter(|&j| decl.needs.contains(&spec.jobs[self.plan[j].index].name))
                .collect();
            if let Some(&j) = needs.iter().find(|&&j| self.stops(j)) {
                let why = format!("needs {} failed", self.status.nodes[j].name);
                self.skip(i, why);
                continue;
            }
            if let Some(&j) = needs
                .iter()
                .find(|&&j| self.status.nodes[j].phase == NodePhase::Skipped)
            {
                let why = format!("needs {} was skipped", self.status.nodes[j].name);
                self.skip(i, why);
                continue;
            }
            let failed = self.failures();
            if spec.fail_fast && !failed.is_empty() {
                self.skip(i, format!("failFast: {} failed", failed[0]));
                continue;
            }
            if spec.suspend
                || needs
                    .iter()
                    .any(|&j| !self.status.nodes[j].phase.is_finished())
            {
                continue;
            }
            let vars = self.vars(i);
            if let Some(condition) = &decl.if_ {
                match expr::eval_bool(condition, &vars) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.skip(i, format!("if `{condition}` is false"));
                        continue;
                    }
                    Err(e) => {
                        self.fail(i, format!("if: {e}"));
                        continue;
                    }
                }
            }
            if decl.approval.is_some() && !self.approved(i, &vars) {
                continue;
            }
            ready.push((i, vars));
        }
        self.start(ready);
    }

    /// Starts `ready` nodes in order while `concurrency` and each node's `maxParallel` allow.
    fn start(&mut self, ready: Vec<(usize, Vars)>) {
        let obs = self.obs;
        let spec = &obs.spec;
        let running = |d: &Self, decl: Option<usize>| {
            (0..d.plan.len())
                .filter(|&j| d.status.nodes[j].phase == NodePhase::Running)
                .filter(|&j| decl.is_none_or(|x| d.plan[j].index == x))
                .count()
        };
        for (i, vars) in ready {
            let failed = self.failures();
            if spec.fail_fast && !failed.is_empty() {
                self.skip(i, format!("failFast: {} failed", failed[0]));
                continue;
            }
            if spec
                .concurrency
                .is_some_and(|limit| running(self, None) >= limit as usize)
            {
                break;
            }
            let index = self.plan[i].index;
            if spec.jobs[index]
                .max_parallel
                .is_some_and(|limit| running(self, Some(index)) >= limit as usize)
            {
                continue;
            }
            if self.create_job(i, 1, &vars) {
                let node = &mut self.status.nodes[i];
                node.phase = NodePhase::Running;
                node.start_time = Some(self.obs.now);
                if spec.jobs[index].until.is_some() {
                    node.iterations = Some(1);
                }
            }
        }
    }

    /// Creates the Job of node `i`'s `iteration` (1 for a node without `until`) and
    /// records it in the node; false when it cannot be made now (the name is still held
    /// by an earlier Workflow's Job) or at all (a template failed: the node failed).
    fn create_job(&mut self, i: usize, iteration: u32, vars: &Vars) -> bool {
        let obs = self.obs;
        let index = self.plan[i].index;
        let run = self.status.run.expect("an active run");
        let node_name = self.plan[i].name.clone();
        match render::job_spec(&obs.spec.jobs[index].job, vars) {
            Ok(job) => {
                let name = iteration_job_name(&obs.meta.name, run, &node_name, iteration);
                // A Job of an earlier Workflow of this name still holds the name: it
                // is being deleted (see sweep_jobs); start once it is gone.
                if obs.jobs.iter().any(|j| j.name == name && !j.owned) {
                    return false;
                }
                let mut obj = job_object(&obs.meta, run, &node_name, &name, &job);
                if iteration > 1 {
                    obj.metadata
                        .labels
                        .insert(keys::LABEL_ITERATION.to_string(), iteration.to_string());
                }
                self.actions.push(WorkflowAction::CreateJob(Box::new(obj)));
                self.status.nodes[i].job = Some(name);
                true
            }
            Err(e) => {
                self.fail(i, e);
                false
            }
        }
    }

    fn skip(&mut self, i: usize, why: String) {
        let node = &mut self.status.nodes[i];
        node.phase = NodePhase::Skipped;
        node.message = Some(why);
        node.completion_time = Some(self.obs.now);
    }

    fn fail(&mut self, i: usize, why: String) {
        let node = &mut self.status.nodes[i];
        node.phase = NodePhase::Failed;
        node.completion_time = Some(self.obs.now);
        self.events.push(Event::warning(
            "NodeFailed",
            format!("node {} failed: {why}", node.name),
        ));
        node.message = Some(why);
    }

    /// What node `i`'s expressions see: the run's inputs, its matrix combination, and
    /// each node upstream of it (a matrix node's phase over all its combinations, and
    /// their outputs merged in order).
    fn vars(&self, i: usize) -> Vars {
        let spec = &self.obs.spec;
        let index = self.plan[i].index;
        let mut jobs = BTreeMap::new();
        for upstream in spec.upstream(index) {
            let nodes: Vec<&NodeStatus> = (0..self.plan.len())
                .filter(|&j| spec.jobs[self.plan[j].index].name == upstream)
                .map(|j| &self.status.nodes[j])
                .collect();
            let phases: Vec<NodePhase> = nodes.iter().map(|n| n.phase).collect();
            let phase = if phases.contains(&NodePhase::Failed) {
                NodePhase::Failed
            } else if phases.contains(&NodePhase::Cancelled) {
                NodePhase::Cancelled
            } else if phases.iter().all(|p| *p == NodePhase::Skipped) {
                NodePhase::Skipped
            } else if phases.iter().all(|p| p.is_finished()) {
                NodePhase::Succeeded
            } else {
                NodePhase::Running
            };
            let mut outputs = BTreeMap::new();
            for node in nodes {
                outputs.extend(node.outputs.clone());
            }
            jobs.insert(
                upstream.to_string(),
                NodeVars {
                    phase: phase.as_str().to_string(),
                    outputs,
                },
            );
        }
        Vars {
            inputs: self.status.inputs.clone(),
            matrix: self.plan[i].matrix.clone(),
            jobs,
            run: self.status.run.unwrap_or(0),
            outputs: None,
        }
    }
}

/// The Job object of node `node` in run `run`: labelled, and owned by the Workflow
/// (`controller: true`; on a cluster the garbage collector deletes it with the Workflow).
pub fn job_object(meta: &ObjectMeta, run: u32, node: &str, name: &str, spec: &JobSpec) -> Object {
    let namespace = meta.namespace.clone().unwrap_or_default();
    let mut obj = Object::new(
        Kind::Job,
        &namespace,
        name,
        serde_json::to_value(spec).expect("a Job spec serializes"),
    );
    obj.metadata.labels = BTreeMap::from([
        (keys::LABEL_WORKFLOW.to_string(), meta.name.clone()),
        (keys::LABEL_WORKFLOW_RUN.to_string(), run.to_string()),
        (keys::LABEL_NODE.to_string(), node.to_string()),
    ]);
    obj.metadata.owner_references = vec![serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "name": meta.name,
        "uid": meta.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })];
    obj
}
