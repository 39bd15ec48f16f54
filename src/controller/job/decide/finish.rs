//! Ending a run: its summary, conditions, history entry and run record, and the TTL
//! that follows.

use super::{Decider, JobAction, fmt_duration, secs};
use crate::controller::event::Event;
use crate::controller::reconcile::Fate;
use crate::records::anomaly::{self, Anomaly, RunFacts};
use crate::records::{AttemptRecord, RunContext, RunRecord, spec_hash};
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::job::{HISTORY_LIMIT, JobConditionType, JobPhase, RunSummary};
use crate::resources::keys;
use crate::store::EventType;

impl Decider<'_> {
    /// Ends the current run in `phase`, records it, and keeps it in `history`.
    pub(super) fn finish_run(
        &mut self,
        phase: JobPhase,
        record: Option<&AttemptRecord>,
        why: &str,
    ) {
        let now = self.obs.now;
        let run = self.status.run.unwrap_or(0);
        let attempts = self.status.attempt.unwrap_or(1);
        let completion = record.map_or(now, |r| {
            r.finished_at
                .max(self.status.start_time.unwrap_or(r.finished_at))
        });
        let completion = if phase == JobPhase::Succeeded || phase == JobPhase::Failed {
            completion
        } else {
            now
        };
        if let Some(r) = record {
            self.status.steps = r.steps.clone();
            self.status.artifacts = r.artifacts.clone();
            self.status.outputs = r.outputs.clone();
            self.status.usage = r.usage.clone();
        }
        let exit_code = record.and_then(|r| r.exit_code);
        let record_image = record.and_then(|r| r.image_id.clone()).or_else(|| {
            self.obs
                .attempts
                .iter()
                .rev()
                .find_map(|a| a.image_id.clone())
        });
        let duration_ms = self
            .status
            .start_time
            .map(|s| secs(completion - s).as_millis() as u64);
        let took = duration_ms.map(fmt_duration).unwrap_or_default();
        let summary = match phase {
            JobPhase::Succeeded => {
                let steps = self.status.steps.len();
                let notes = if why.is_empty() {
                    String::new()
                } else {
                    format!("; {why}")
                };
                format!(
                    "run {run} succeeded in {took} ({steps} step{}){notes}",
                    if steps == 1 { "" } else { "s" }
                )
            }
            JobPhase::Failed if attempts > 1 => {
                format!("run {run} failed after {attempts} attempts: {why}")
            }
            JobPhase::Failed => format!("run {run} failed: {why}"),
            JobPhase::TimedOut => format!("run {run} {why}"),
            _ => format!("run {run} cancelled: {why}"),
        };
        self.status.phase = phase;
        self.status.completion_time = Some(completion);
        self.status.next_attempt_time = None;
        self.status.container = None;
        self.status.summary = Some(summary.clone());
        let failed = phase != JobPhase::Succeeded;
        set_condition(
            &mut self.status.conditions,
            JobConditionType::Complete,
            ConditionStatus::True,
            phase.as_str(),
            &summary,
            now,
        );
        set_condition(
            &mut self.status.conditions,
            JobConditionType::Failed,
            if failed {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            phase.as_str(),
            if failed { &summary } else { "" },
            now,
        );
        let generation = self
            .status
            .observed_generation
            .unwrap_or(self.obs.meta.generation);
        self.status.history.insert(
            0,
            RunSummary {
                run,
                generation,
                phase,
                start_time: self.status.start_time,
                duration_ms,
                exit_code,
                attempts,
            },
        );
        self.status.history.truncate(HISTORY_LIMIT);
        let event_type = if failed {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let reason = match phase {
            JobPhase::Succeeded => "Succeeded",
            JobPhase::Failed => "Failed",
            JobPhase::TimedOut => "TimedOut",
            _ => "Cancelled",
        };
        self.events.push(Event {
            type_: event_type,
            reason,
            message: summary.clone(),
        });
        let mut record = RunRecord {
            uid: self.obs.meta.uid.clone(),
            namespace: self.obs.meta.namespace.clone().unwrap_or_default(),
            name: self.obs.meta.name.clone(),
            run,
            generation,
            phase,
            attempts,
            start_time: self.status.start_time,
            completion_time: Some(completion),
            exit_code,
            summary,
            steps: self.status.steps.clone(),
            artifacts: self.status.artifacts.clone(),
            outputs: self.status.outputs.clone(),
            usage: self.status.usage.clone(),
            anomalies: Vec::new(),
            context: Some(self.run_context(record_image)),
            explanation: None,
        };
        record.anomalies = self.anomalies(&record);
        self.actions.push(JobAction::RecordRun(Box::new(record)));
    }

    /// What the run ran and what started it, for its record.
    fn run_context(&self, image_id: Option<String>) -> RunContext {
        let meta = &self.obs.meta;
        let spec = serde_json::to_value(&self.obs.spec).unwrap_or_default();
        let label = |key: &str| meta.labels.get(key).map(String::as_str);
        let (trigger, source) = if self
            .status
            .run_trigger
            .as_deref()
            .is_some_and(|t| t.contains("/rerun="))
        {
            ("rerun", None)
        } else if let Some(workflow) = label(keys::LABEL_WORKFLOW) {
            let mut source = workflow.to_string();
            if let Some(run) = label(keys::LABEL_WORKFLOW_RUN) {
                source.push_str(&format!(" run {run}"));
            }
            if let Some(node) = label(keys::LABEL_NODE) {
                source.push_str(&format!(" node {node}"));
            }
            ("workflow", Some(source))
        } else {
            match meta.annotations.get(keys::SOURCE) {
                Some(file) if file.starts_with("file:") => ("file", Some(file.clone())),
                // Who created it through the API: its key's agent label, or member.
                _ => (
                    "api",
                    meta.annotations
                        .get(keys::CREATED_BY)
                        .map(|who| format!("by {who}")),
                ),
            }
        };
        RunContext {
            spec_hash: spec_hash(&spec),
            spec,
            trigger: trigger.to_string(),
            source,
            labels: meta.labels.clone(),
            image: self.obs.spec.image.clone(),
            image_id,
        }
    }

    /// What is unusual about the run just ended (`record`) against the runs before it:
    /// into `status.anomalies`, the `Anomalous` condition and one Warning event each. A
    /// cancelled run is not judged, and clears them.
    fn anomalies(&mut self, record: &RunRecord) -> Vec<Anomaly> {
        let now = self.obs.now;
        let thresholds = self.obs.spec.anomalies.clone().unwrap_or_default();
        let found = if matches!(record.phase, JobPhase::Cancelled) {
            Vec::new()
        } else {
            anomaly::detect(&RunFacts::of(record), &self.obs.previous_runs, &thresholds)
        };
        for a in &found {
            self.events.push(Event {
                type_: EventType::Warning,
                reason: a.kind.as_str(),
                message: format!("run {}: {}", a.run, a.message),
            });
        }
        let had = self
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == JobConditionType::Anomalous);
        if !found.is_empty() || had {
            let (status, reason, message) = match found.first() {
                Some(first) => (
                    ConditionStatus::True,
                    first.kind.as_str(),
                    found
                        .iter()
                        .map(|a| a.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                None => (
                    ConditionStatus::False,
                    "AsUsual",
                    format!("run {} showed nothing unusual", record.run),
                ),
            };
            set_condition(
                &mut self.status.conditions,
                JobConditionType::Anomalous,
                status,
                reason,
                &message,
                now,
            );
        }
        self.status.anomalies = found.clone();
        found
    }

    pub(super) fn after_finish(&mut self) {
        let (Some(ttl), Some(done)) = (
            self.obs.spec.ttl_seconds_after_finished,
            self.status.completion_time,
        ) else {
            return;
        };
        let due = done + chrono::TimeDelta::seconds(ttl as i64);
        if self.obs.now >= due {
            self.fate = Fate::Delete {
                reason: "ttlSecondsAfterFinished",
            };
        } else {
            self.requeue_in(secs(due - self.obs.now));
        }
    }
}
