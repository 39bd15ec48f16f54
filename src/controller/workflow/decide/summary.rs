//! How a run reads: its end (phase, conditions, history, record, event), its progress
//! and one-line summary, and the Workflow's phase.

use super::*;

impl Decider<'_> {
    pub(super) fn finish_run(&mut self, phase: WorkflowPhase, summary: &str) {
        let run = self.status.run.unwrap_or(0);
        let now = self.obs.now;
        self.progress();
        self.status.phase = phase;
        self.status.completion_time = Some(now);
        let verb = match phase {
            WorkflowPhase::Succeeded => "succeeded",
            WorkflowPhase::Cancelled => "was cancelled",
            _ => "failed",
        };
        let summary = format!("run {run} {verb}: {summary}");
        self.status.summary = Some(summary.clone());
        let failed = phase != WorkflowPhase::Succeeded;
        let reason = match phase {
            WorkflowPhase::Succeeded => "Succeeded",
            WorkflowPhase::Cancelled => "Cancelled",
            _ => "Failed",
        };
        set_condition(
            &mut self.status.conditions,
            WorkflowConditionType::Complete,
            ConditionStatus::True,
            reason,
            &summary,
            now,
        );
        set_condition(
            &mut self.status.conditions,
            WorkflowConditionType::Failed,
            if failed {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason,
            &summary,
            now,
        );
        self.status.history.insert(
            0,
            WorkflowRunSummary {
                run,
                phase,
                trigger: self.status.run_trigger.clone(),
                start_time: self.status.start_time,
                completion_time: Some(now),
                progress: self.status.progress.clone(),
                summary: Some(summary.clone()),
            },
        );
        self.status.history.truncate(HISTORY_LIMIT);
        self.record_run();
        self.events.push(if failed {
            Event::warning("RunFailed", summary)
        } else {
            Event::normal("RunSucceeded", summary)
        });
    }

    pub(super) fn progress(&mut self) {
        let done = self
            .status
            .nodes
            .iter()
            .filter(|n| n.phase.is_finished())
            .count();
        self.status.progress = Some(format!("{done}/{}", self.status.nodes.len()));
    }

    /// "4 succeeded, 1 failed (test-shard-2), 2 skipped, 1 running".
    pub(super) fn counts(&self) -> String {
        let mut parts = Vec::new();
        for phase in [
            NodePhase::Succeeded,
            NodePhase::Failed,
            NodePhase::Cancelled,
            NodePhase::Skipped,
            NodePhase::Running,
            NodePhase::WaitingApproval,
            NodePhase::Pending,
        ] {
            let names: Vec<&str> = self
                .status
                .nodes
                .iter()
                .filter(|n| n.phase == phase)
                .map(|n| n.name.as_str())
                .collect();
            if names.is_empty() {
                continue;
            }
            let label = match phase {
                NodePhase::WaitingApproval => "waiting for approval".to_string(),
                _ => phase.as_str().to_lowercase(),
            };
            let mut part = format!("{} {label}", names.len());
            if matches!(
                phase,
                NodePhase::Failed | NodePhase::Cancelled | NodePhase::WaitingApproval
            ) {
                let shown: Vec<&str> = names.iter().take(3).copied().collect();
                let more = if names.len() > 3 { ", ..." } else { "" };
                part.push_str(&format!(" ({}{more})", shown.join(", ")));
            }
            parts.push(part);
        }
        parts.join(", ")
    }

    /// The phase of a run in progress: WaitingApproval when it waits for someone, and for
    /// nothing else; Running otherwise.
    pub(super) fn run_phase(&self) -> WorkflowPhase {
        let nodes = &self.status.nodes;
        let waits = nodes.iter().any(|n| n.phase == NodePhase::WaitingApproval);
        let runs = nodes.iter().any(|n| n.phase == NodePhase::Running);
        if waits && !runs {
            WorkflowPhase::WaitingApproval
        } else {
            WorkflowPhase::Running
        }
    }

    /// The phase and the Suspended condition.
    pub(super) fn phase(&mut self) {
        let now = self.obs.now;
        if self.obs.spec.suspend {
            if self.active() || self.status.run.is_none() {
                self.status.phase = WorkflowPhase::Suspended;
                if self.status.run.is_none() {
                    self.status.summary = Some("suspended before its first run".into());
                }
            }
            set_condition(
                &mut self.status.conditions,
                WorkflowConditionType::Suspended,
                ConditionStatus::True,
                "Suspended",
                "spec.suspend is true: no node starts; running ones finish",
                now,
            );
            return;
        }
        if self.active() {
            self.status.phase = self.run_phase();
        } else if self.status.run.is_none() {
            self.status.phase = WorkflowPhase::Pending;
        }
        if self
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == WorkflowConditionType::Suspended)
        {
            set_condition(
                &mut self.status.conditions,
                WorkflowConditionType::Suspended,
                ConditionStatus::False,
                "Resumed",
                "spec.suspend is false",
                now,
            );
        }
    }
}
