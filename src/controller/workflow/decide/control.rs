//! What people ask of a run through the Workflow's annotations: approving or rejecting
//! a node (`orcaops.dev/approvals`), cancelling a run (`orcaops.dev/cancel`), which nodes
//! a re-run keeps (`orcaops.dev/rerun-mode`); and the run record written as a run starts
//! and ends. The annotations are written by the CLI, the REST facade and MCP tools, or
//! by hand; everything here reads them, and the status, and nothing else.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::*;

/// The run that ends as a new one starts: its number, the spec part of its trigger, and
/// its nodes.
pub(super) struct PreviousRun {
    pub run: Option<u32>,
    pub spec: Option<String>,
    pub nodes: Vec<NodeStatus>,
}

/// The annotation `orcaops.dev/approvals`.
#[derive(Deserialize)]
struct Approvals {
    run: u32,
    #[serde(default)]
    nodes: BTreeMap<String, ApprovalDecision>,
}

#[derive(Deserialize)]
struct ApprovalDecision {
    approved: bool,
    #[serde(default)]
    message: String,
    #[serde(default)]
    by: String,
}

/// The annotation holds the decisions of one run, or (with overlapping runs) a list of
/// them, one entry per run.
#[derive(Deserialize)]
#[serde(untagged)]
enum ApprovalsAnnotation {
    One(Approvals),
    Several(Vec<Approvals>),
}

/// The decisions of the annotation for run `run`, if any; an unreadable annotation says
/// why and how to fix it.
fn approvals(meta: &ObjectMeta, run: u32) -> Result<Option<Approvals>, String> {
    let Some(text) = meta.annotations.get(keys::APPROVALS) else {
        return Ok(None);
    };
    let read: ApprovalsAnnotation = serde_json::from_str(text).map_err(|e| {
        format!(
            "annotation {} cannot be read ({e}); write it as \
             {{\"run\": 1, \"nodes\": {{\"deploy\": {{\"approved\": true, \"message\": \"ok\", \"by\": \"alice\"}}}}}} \
             (or a list of such objects, one per run)",
            keys::APPROVALS
        )
    })?;
    Ok(match read {
        ApprovalsAnnotation::One(one) => Some(one).filter(|a| a.run == run),
        ApprovalsAnnotation::Several(all) => all.into_iter().find(|a| a.run == run),
    })
}

/// "approved by alice: looks good", or without the reason when none was given.
fn decided(verb: &str, decision: &ApprovalDecision) -> String {
    let by = if decision.by.trim().is_empty() {
        "someone"
    } else {
        decision.by.trim()
    };
    let message = decision.message.trim();
    if message.is_empty() {
        format!("{verb} by {by}")
    } else {
        format!("{verb} by {by}: {message}")
    }
}

impl Decider<'_> {
    /// Whether approval node `i` (its needs done, its `if` true) may start. Undecided, it
    /// waits in WaitingApproval with the rendered message; rejected, it fails (and what
    /// needs it is skipped as after any failure).
    pub(super) fn approved(&mut self, i: usize, vars: &Vars) -> bool {
        let decl = &self.obs.spec.jobs[self.plan[i].index];
        let Some(approval) = &decl.approval else {
            return true;
        };
        let run = self.status.run.unwrap_or(0);
        let name = self.plan[i].name.clone();
        let read = approvals(&self.obs.meta, run);
        let decision = match &read {
            Ok(Some(approvals)) => approvals
                .nodes
                .get(&name)
                .or_else(|| approvals.nodes.get(&decl.name)),
            _ => None,
        };
        match decision {
            Some(decision) if decision.approved => {
                let text = decided("approved", decision);
                let node = &mut self.status.nodes[i];
                if node.message.as_deref() != Some(text.as_str()) {
                    node.phase = NodePhase::Pending;
                    node.message = Some(text.clone());
                    self.events
                        .push(Event::normal("NodeApproved", format!("node {name} {text}")));
                }
                true
            }
            Some(decision) => {
                let text = decided("rejected", decision);
                self.events.push(Event::warning(
                    "NodeRejected",
                    format!("node {name} {text}"),
                ));
                self.fail(i, text);
                false
            }
            None => {
                let asked = match expr::render(&approval.message, vars) {
                    Ok(asked) => asked,
                    Err(e) => {
                        self.fail(i, format!("approval.message: {e}"));
                        return false;
                    }
                };
                let text = match read {
                    Err(e) => format!("{asked} ({e})"),
                    Ok(_) => asked,
                };
                let node = &mut self.status.nodes[i];
                if node.phase != NodePhase::WaitingApproval {
                    node.phase = NodePhase::WaitingApproval;
                    self.events.push(Event::normal(
                        "ApprovalRequested",
                        format!("node {name} of run {run} waits for approval: {text}"),
                    ));
                }
                node.message = Some(text);
                false
            }
        }
    }

    /// `orcaops.dev/cancel`: a run number (or several, comma-separated, with overlapping
    /// runs), or `latest` (the run current when it was first seen). Each run named is
    /// cancelled if it is in progress: the current one, or one of `activeRuns`.
    pub(super) fn honour_cancel(&mut self) {
        let Some(value) = self
            .obs
            .meta
            .annotations
            .get(keys::CANCEL)
            .map(|v| v.trim())
        else {
            self.status.cancel_latest_run = None;
            return;
        };
        let targets: Vec<u32> = if value == "latest" {
            vec![
                *self
                    .status
                    .cancel_latest_run
                    .get_or_insert(self.status.run.unwrap_or(0)),
            ]
        } else {
            self.status.cancel_latest_run = None;
            value
                .split(',')
                .filter_map(|run| run.trim().parse::<u32>().ok())
                .collect()
        };
        let why = format!("{} asked for it", keys::CANCEL);
        for target in targets {
            if self.active() && self.status.run == Some(target) {
                self.cancel_run(&why);
            } else {
                self.cancel_older(target, &why);
            }
        }
    }

    /// The nodes a run started by a token keeps from the previous run, by name, per
    /// `orcaops.dev/rerun-mode`: none (`all` or absent); those that succeeded (`failed`);
    /// those that succeeded and are neither the node named nor downstream of it
    /// (`from=<node>`). Nothing is kept when the spec changed since the previous run.
    pub(super) fn kept_nodes(
        &mut self,
        previous: &PreviousRun,
        spec: Option<&str>,
    ) -> Result<HashMap<String, NodeStatus>, String> {
        let mode = self
            .obs
            .meta
            .annotations
            .get(keys::RERUN_MODE)
            .map(|m| m.trim())
            .unwrap_or("");
        let reruns: Vec<bool> = match mode {
            "" | "all" => return Ok(HashMap::new()),
            "failed" => vec![false; self.plan.len()],
            _ => match mode.strip_prefix("from=") {
                Some(from) => self.downstream_of(from.trim())?,
                None => {
                    return Err(format!(
                        "annotation {} is \"{mode}\", which is not a re-run mode; write all, failed or from=<node>",
                        keys::RERUN_MODE
                    ));
                }
            },
        };
        let Some(before) = previous.run else {
            return Ok(HashMap::new());
        };
        if previous.spec.as_deref() != spec {
            self.events.push(Event::normal(
                "RerunAll",
                format!(
                    "the spec changed since run {before}: {mode} keeps no node, every node runs"
                ),
            ));
            return Ok(HashMap::new());
        }
        let mut kept = HashMap::new();
        for (node, rerun) in self.plan.iter().zip(reruns) {
            let Some(old) = previous.nodes.iter().find(|n| n.name == node.name) else {
                continue;
            };
            if rerun || old.phase != NodePhase::Succeeded {
                continue;
            }
            let mut old = old.clone();
            if !old
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("kept from run"))
            {
                old.message = Some(format!("kept from run {before}"));
            }
            kept.insert(node.name.clone(), old);
        }
        Ok(kept)
    }

    /// For each node of the plan, whether it is `from` (a node as declared, meaning all its
    /// combinations, or one combination) or downstream of it.
    fn downstream_of(&self, from: &str) -> Result<Vec<bool>, String> {
        let spec = &self.obs.spec;
        let (index, only) = match self.plan.iter().find(|n| n.name == from) {
            Some(node) if spec.jobs[node.index].matrix.is_empty() => (node.index, None),
            Some(node) => (node.index, Some(node.name.as_str())),
            None => match spec.jobs.iter().position(|j| j.name == from) {
                Some(index) => (index, None),
                None => {
                    let names: Vec<&str> = spec.jobs.iter().map(|j| j.name.as_str()).collect();
                    return Err(format!(
                        "annotation {} asks to re-run from node \"{from}\", which this workflow does not have (its nodes: {})",
                        keys::RERUN_MODE,
                        names.join(", ")
                    ));
                }
            },
        };
        let declared = spec.jobs[index].name.as_str();
        Ok(self
            .plan
            .iter()
            .map(|node| {
                if node.index == index {
                    only.is_none_or(|only| only == node.name)
                } else {
                    spec.upstream(node.index).contains(declared)
                }
            })
            .collect())
    }

    /// Writes the current run's record (replacing one of the same run decided earlier in
    /// this decision: a run that starts and ends at once is recorded once).
    pub(super) fn record_run(&mut self) {
        let Some(run) = self.status.run else {
            return;
        };
        let meta = &self.obs.meta;
        let status = &self.status;
        let spec = serde_json::to_value(&self.obs.spec).unwrap_or_default();
        let record = WorkflowRunRecord {
            uid: meta.uid.clone(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone(),
            run,
            generation: meta.generation,
            phase: status.phase,
            trigger: trigger_name(status.run_trigger.as_deref().unwrap_or_default()).to_string(),
            token: status
                .run_trigger
                .as_deref()
                .and_then(run_token)
                .map(String::from),
            inputs: status.inputs.clone(),
            start_time: status.start_time,
            completion_time: status.completion_time,
            progress: status.progress.clone().unwrap_or_default(),
            summary: status.summary.clone().unwrap_or_default(),
            nodes: status.nodes.clone(),
            spec_hash: Some(crate::records::spec_hash(&spec)),
            spec: Some(spec),
        };
        self.actions
            .retain(|a| !matches!(a, WorkflowAction::RecordRun(r) if r.run == run));
        self.actions
            .push(WorkflowAction::RecordRun(Box::new(record)));
    }
}
