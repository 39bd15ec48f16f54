//! The pure decision of the Job controller: from what is observed (the Job, its
//! containers, its attempt records, the time) to the actions to take and the new status.
//! No I/O happens here; this is where most of the Job behaviour is tested.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::controller::event::Event;
use crate::controller::reconcile::{self, Fate};
use crate::records::anomaly::RunFacts;
use crate::records::{AttemptOutcome, AttemptRecord, RunRecord};
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::job::{JobConditionType, JobPhase, JobSpec, JobStatus, StepStatus};
use crate::resources::{ObjectMeta, keys};
use crate::runtime::names::container_name;
use crate::runtime::{ContainerInfo, ContainerState};

pub mod ended;
mod finish;
#[cfg(test)]
mod tests;

/// Everything the decision needs, read by the observe step.
#[derive(Clone, Debug)]
pub struct Observed {
    pub meta: ObjectMeta,
    pub spec: JobSpec,
    pub status: JobStatus,
    /// Every container labelled with this Job's uid.
    pub containers: Vec<ContainerInfo>,
    /// Attempt records of the current run.
    pub attempts: Vec<AttemptRecord>,
    /// `(run, attempt)` of every container above whose result is already recorded.
    pub harvested: HashSet<(u32, u32)>,
    /// The step the current attempt's container is running, as its log follower last
    /// saw it (None when not followed, or before the first step starts).
    pub running_step: Option<usize>,
    /// The runs before the current one (oldest first, at most the anomaly window), for
    /// its baseline; read only while a run is in progress.
    pub previous_runs: Vec<RunFacts>,
    /// Why the Job's env cannot be made yet: a `secretKeyRef` whose Secret or key is
    /// missing (the message names them, never a value). A new run waits while it is.
    pub secret_missing: Option<String>,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum JobAction {
    /// Pull the image if needed, create and start the attempt's container.
    Start {
        run: u32,
        attempt: u32,
        container_name: String,
    },
    /// Make sure the container's output is being followed (it wakes the Job when it exits).
    Follow {
        container: ContainerInfo,
        run: u32,
        attempt: u32,
    },
    /// Stop the container if `outcome` says so, save its output, steps and artifacts
    /// as an attempt record, then remove it.
    Harvest {
        container: ContainerInfo,
        run: u32,
        attempt: u32,
        forced: Option<AttemptOutcome>,
    },
    /// Remove a container whose result is already recorded.
    Remove { container: ContainerInfo },
    /// The attempt never started and will not ([`ContainerState::CannotStart`]): remove
    /// it and record it with `outcome` and `message`; nothing ran, so there is no output.
    Abandon {
        container: ContainerInfo,
        run: u32,
        attempt: u32,
        outcome: AttemptOutcome,
        message: String,
    },
    /// Record that the attempt's container vanished before its result was read.
    RecordLost {
        run: u32,
        attempt: u32,
        container_name: String,
    },
    /// Persist a finished run in the run records.
    RecordRun(Box<RunRecord>),
}

/// The Job's decision. Its fate is [`Fate::Delete`] once the TTL after a finish is due
/// (its run records stay), and [`Fate::Release`] once a deleting Job has nothing left
/// running and its run is recorded.
pub type Decision = reconcile::Decision<JobAction, JobStatus>;

fn label_u32(c: &ContainerInfo, key: &str) -> Option<u32> {
    c.label(key).and_then(|v| v.parse().ok())
}

/// What starts a run: the generation, plus the re-run token when someone asked for one.
pub fn run_trigger(meta: &ObjectMeta) -> String {
    match meta.annotations.get(keys::RERUN) {
        Some(token) if !token.is_empty() => format!("g{}/rerun={token}", meta.generation),
        _ => format!("g{}", meta.generation),
    }
}

fn is_live(c: &ContainerInfo) -> bool {
    matches!(
        c.state,
        ContainerState::Running | ContainerState::Created | ContainerState::Other(_)
    )
}

pub(super) fn secs(d: chrono::TimeDelta) -> Duration {
    d.to_std().unwrap_or(Duration::ZERO)
}

pub(super) fn fmt_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

pub(super) struct Decider<'a> {
    obs: &'a Observed,
    status: JobStatus,
    actions: Vec<JobAction>,
    events: Vec<Event>,
    requeue: Option<Duration>,
    fate: Fate,
}

pub fn decide(obs: &Observed) -> Decision {
    let mut status = obs.status.clone();
    // Deciding means the runtime answered: the waits it caused are over (a reconcile
    // that meets one again records it again, see controller::waiting).
    status
        .conditions
        .retain(|c| !crate::controller::waiting::is_job_wait(c));
    let mut d = Decider {
        obs,
        status,
        actions: Vec::new(),
        events: Vec::new(),
        requeue: None,
        fate: Fate::Keep,
    };
    d.decide();
    d.adopt_what_starts();
    Decision {
        actions: d.actions,
        status: d.status,
        events: d.events,
        requeue_after: d.requeue,
        status_first: false,
        fate: d.fate,
        hints: (),
    }
}

impl Decider<'_> {
    fn requeue_in(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    /// A container of the very attempt being started is not a leftover: it was started
    /// before its status was written (a crash, or a status write that lost a race), and
    /// the Start adopts it (names are deterministic). Harvesting it would cancel it.
    fn adopt_what_starts(&mut self) {
        let starting: Vec<(u32, u32)> = self
            .actions
            .iter()
            .filter_map(|a| match a {
                JobAction::Start { run, attempt, .. } => Some((*run, *attempt)),
                _ => None,
            })
            .collect();
        self.actions.retain(|a| {
            !matches!(a, JobAction::Harvest { run, attempt, .. } if starting.contains(&(*run, *attempt)))
        });
    }

    fn current(&self) -> Option<(u32, u32)> {
        Some((self.status.run?, self.status.attempt?))
    }

    fn is_active(&self) -> bool {
        self.status.run.is_some() && !self.status.phase.is_finished()
    }

    fn decide(&mut self) {
        let live_current = self.sort_containers();
        if self.obs.meta.deletion_timestamp.is_some() {
            self.being_deleted(live_current);
            return;
        }
        let trigger = run_trigger(&self.obs.meta);
        if self.status.run_trigger.as_deref() != Some(trigger.as_str()) {
            self.new_run_wanted(trigger, live_current);
        } else {
            if self.is_active() {
                self.drive_run(live_current);
            }
            if self.status.phase.is_finished() {
                self.after_finish();
            }
        }
    }

    /// Removes or harvests every container that is not the current attempt's, and
    /// returns the current attempt's container, if there is one.
    fn sort_containers(&mut self) -> Option<ContainerInfo> {
        let current = self.current().filter(|_| self.is_active());
        let mut found = None;
        for c in &self.obs.containers {
            let (Some(run), Some(attempt)) = (
                label_u32(c, keys::LABEL_RUN),
                label_u32(c, keys::LABEL_ATTEMPT),
            ) else {
                self.actions.push(JobAction::Remove {
                    container: c.clone(),
                });
                continue;
            };
            if self.obs.harvested.contains(&(run, attempt)) {
                self.actions.push(JobAction::Remove {
                    container: c.clone(),
                });
            } else if Some((run, attempt)) == current {
                found = Some(c.clone());
            } else if let ContainerState::CannotStart { reason } = &c.state {
                self.actions.push(JobAction::Abandon {
                    container: c.clone(),
                    run,
                    attempt,
                    outcome: AttemptOutcome::Cancelled,
                    message: format!("never started: {reason}"),
                });
            } else {
                // A leftover of an earlier attempt: keep its output, then remove it.
                let forced = is_live(c).then_some(AttemptOutcome::Cancelled);
                self.actions.push(JobAction::Harvest {
                    container: c.clone(),
                    run,
                    attempt,
                    forced,
                });
            }
        }
        found
    }

    /// A Job with a deletionTimestamp (a cluster waits for the finalizer): stop the
    /// attempt and keep what it printed, end the run as Cancelled and record it, then
    /// let the Job go. The leftovers of earlier attempts are already being removed.
    fn being_deleted(&mut self, live_current: Option<ContainerInfo>) {
        if self.is_active() {
            let (run, attempt) = self.current().expect("active run has a number");
            if let Some(c) = live_current {
                self.status.summary =
                    Some(format!("run {run}: stopping (the job is being deleted)"));
                if let ContainerState::CannotStart { reason } = &c.state {
                    let message = format!("never started: {reason}");
                    self.abandon(c, run, attempt, AttemptOutcome::Cancelled, message);
                    return;
                }
                let forced = is_live(&c).then_some(AttemptOutcome::Cancelled);
                self.actions.push(JobAction::Harvest {
                    container: c,
                    run,
                    attempt,
                    forced,
                });
                self.requeue_in(Duration::ZERO);
                return;
            }
            let record = self
                .obs
                .attempts
                .iter()
                .find(|a| a.run == run && a.attempt == attempt)
                .cloned();
            let why = format!("the Job was deleted while run {run} was running");
            self.finish_run(JobPhase::Cancelled, record.as_ref(), &why);
        }
        self.fate = Fate::Release;
    }

    fn new_run_wanted(&mut self, trigger: String, live_current: Option<ContainerInfo>) {
        let now = self.obs.now;
        if self.is_active() {
            if let Some(c) = live_current {
                let (run, attempt) = self.current().expect("active run has a number");
                self.actions.push(JobAction::Harvest {
                    container: c,
                    run,
                    attempt,
                    forced: Some(AttemptOutcome::Cancelled),
                });
            }
            let why = if self.obs.spec.suspend {
                "the job was suspended".to_string()
            } else {
                format!("superseded by generation {}", self.obs.meta.generation)
            };
            self.finish_run(JobPhase::Cancelled, None, &why);
        }
        self.status.observed_generation = Some(self.obs.meta.generation);
        if self.obs.spec.suspend {
            set_condition(
                &mut self.status.conditions,
                JobConditionType::Suspended,
                ConditionStatus::True,
                "Suspended",
                "spec.suspend is true; no run starts until it is false",
                now,
            );
            if !self.status.phase.is_finished() {
                self.status.phase = JobPhase::Pending;
            }
            self.status.summary =
                Some("suspended: no run starts while spec.suspend is true".into());
            return;
        }
        if self
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == JobConditionType::Suspended)
        {
            set_condition(
                &mut self.status.conditions,
                JobConditionType::Suspended,
                ConditionStatus::False,
                "Resumed",
                "spec.suspend is false",
                now,
            );
        }
        if self.waits_for_secret() {
            return;
        }
        let run = self.status.total_runs + 1;
        self.status.total_runs = run;
        self.status.run = Some(run);
        self.status.run_trigger = Some(trigger);
        self.status.start_time = Some(now);
        self.status.completion_time = None;
        self.status.artifacts.clear();
        self.events
            .push(Event::normal("RunStarted", format!("run {run} started")));
        self.start_attempt(run, 1);
    }

    /// A run never starts with a secret missing from its env (it would run with an empty
    /// value): the Job stays Pending with `SecretMissing`, and looks again shortly.
    fn waits_for_secret(&mut self) -> bool {
        let Some(message) = &self.obs.secret_missing else {
            self.status
                .conditions
                .retain(|c| c.type_ != JobConditionType::SecretMissing);
            return false;
        };
        set_condition(
            &mut self.status.conditions,
            JobConditionType::SecretMissing,
            ConditionStatus::True,
            "SecretMissing",
            message,
            self.obs.now,
        );
        self.status.phase = JobPhase::Pending;
        self.status.summary = Some(format!("waiting for a secret: {message}"));
        self.requeue_in(crate::controller::secrets::SECRET_RECHECK);
        true
    }

    fn start_attempt(&mut self, run: u32, attempt: u32) {
        let now = self.obs.now;
        let name = container_name(&self.obs.meta, run, attempt);
        self.status.attempt = Some(attempt);
        self.status.phase = JobPhase::Running;
        self.status.next_attempt_time = None;
        self.status.container = Some(name.clone());
        // Outputs are the current attempt's: a retry starts with none.
        self.status.outputs.clear();
        self.status.usage = None;
        self.status.steps = self
            .obs
            .spec
            .steps
            .iter()
            .map(|s| StepStatus {
                name: s.name.clone(),
                exit_code: None,
                start_time: None,
                duration_ms: None,
                output_tail: String::new(),
                errors: Vec::new(),
            })
            .collect();
        let steps = self.obs.spec.steps.len();
        self.status.summary = Some(format!(
            "run {run}, attempt {attempt}: starting {steps} step{}",
            if steps == 1 { "" } else { "s" }
        ));
        set_condition(
            &mut self.status.conditions,
            JobConditionType::Started,
            ConditionStatus::True,
            "ContainerStarted",
            &name,
            now,
        );
        set_condition(
            &mut self.status.conditions,
            JobConditionType::Complete,
            ConditionStatus::False,
            "Running",
            "",
            now,
        );
        set_condition(
            &mut self.status.conditions,
            JobConditionType::Failed,
            ConditionStatus::False,
            "Running",
            "",
            now,
        );
        self.actions.push(JobAction::Start {
            run,
            attempt,
            container_name: name,
        });
        self.requeue_deadline();
    }

    fn abandon(
        &mut self,
        container: ContainerInfo,
        run: u32,
        attempt: u32,
        outcome: AttemptOutcome,
        message: String,
    ) {
        self.actions.push(JobAction::Abandon {
            container,
            run,
            attempt,
            outcome,
            message,
        });
        self.requeue_in(Duration::ZERO);
    }

    fn deadline(&self) -> Option<DateTime<Utc>> {
        let timeout = self.obs.spec.timeout_seconds?;
        Some(self.status.start_time? + chrono::TimeDelta::seconds(timeout as i64))
    }

    fn requeue_deadline(&mut self) {
        if let Some(deadline) = self.deadline() {
            self.requeue_in(secs(deadline - self.obs.now));
        }
    }

    fn cancel_requested(&self) -> bool {
        let run = self.status.run.map(|r| r.to_string());
        self.obs
            .meta
            .annotations
            .get(keys::CANCEL)
            .is_some_and(|v| Some(v) == run.as_ref())
    }

    fn drive_run(&mut self, live_current: Option<ContainerInfo>) {
        let (run, attempt) = self.current().expect("active run has a number");
        let now = self.obs.now;
        let record = self
            .obs
            .attempts
            .iter()
            .find(|a| a.run == run && a.attempt == attempt)
            .cloned();

        // A container that already exited, or an attempt that succeeded, is read as it is.
        let exited = live_current
            .as_ref()
            .is_some_and(|c| matches!(c.state, ContainerState::Exited { .. }));
        let succeeded = record.as_ref().is_some_and(|r| r.outcome.succeeded());
        let stop_for = if exited || succeeded {
            None
        } else if self.cancel_requested() {
            Some((JobPhase::Cancelled, AttemptOutcome::Cancelled))
        } else if self.deadline().is_some_and(|d| now >= d) {
            Some((JobPhase::TimedOut, AttemptOutcome::TimedOut))
        } else {
            None
        };
        if let Some(c) = &live_current
            && let ContainerState::CannotStart { reason } = &c.state
        {
            // Nothing ran, so there is nothing to harvest: record why, then retry or end
            // as any failed attempt does (or as the cancel or timeout says).
            let (outcome, message) = match stop_for {
                Some((_, outcome)) => (outcome, format!("never started: {reason}")),
                None => (
                    AttemptOutcome::StartFailed,
                    format!("the pod cannot start: {reason}"),
                ),
            };
            let c = c.clone();
            self.abandon(c, run, attempt, outcome, message);
            return;
        }
        if let Some((phase, outcome)) = stop_for {
            // Stop and harvest first, so the run ends with the steps that really ran.
            if let Some(c) = live_current {
                let forced = is_live(&c).then_some(outcome);
                self.status.summary = Some(format!("run {run}: stopping ({})", phase.as_str()));
                self.actions.push(JobAction::Harvest {
                    container: c,
                    run,
                    attempt,
                    forced,
                });
                self.requeue_in(Duration::ZERO);
                return;
            }
            let why = match phase {
                JobPhase::Cancelled => "cancelled on request".to_string(),
                _ => format!(
                    "timed out after {}s",
                    self.obs.spec.timeout_seconds.unwrap_or(0)
                ),
            };
            self.finish_run(phase, record.as_ref(), &why);
            return;
        }

        if let Some(record) = record {
            self.after_attempt(run, attempt, &record);
            return;
        }
        match live_current {
            Some(c) => match c.state {
                ContainerState::Running => {
                    self.status.phase = JobPhase::Running;
                    let steps = self.obs.spec.steps.len();
                    let running = self
                        .obs
                        .running_step
                        .and_then(|i| Some((i, self.obs.spec.steps.get(i)?)));
                    self.status.summary = Some(match running {
                        Some((i, step)) => format!(
                            "run {run}, attempt {attempt}: step {} of {steps} (\"{}\") running",
                            i + 1,
                            step.name
                        ),
                        None => format!(
                            "run {run}, attempt {attempt}: running {steps} step{}",
                            if steps == 1 { "" } else { "s" }
                        ),
                    });
                    self.actions.push(JobAction::Follow {
                        container: c,
                        run,
                        attempt,
                    });
                    self.requeue_deadline();
                }
                ContainerState::Exited { .. } => {
                    self.actions.push(JobAction::Harvest {
                        container: c,
                        run,
                        attempt,
                        forced: None,
                    });
                    self.requeue_in(Duration::ZERO);
                }
                ContainerState::Created => {
                    let name = c.name.clone();
                    self.actions.push(JobAction::Start {
                        run,
                        attempt,
                        container_name: name,
                    });
                    self.requeue_deadline();
                }
                ContainerState::Other(_) => self.requeue_in(Duration::from_secs(1)),
                ContainerState::CannotStart { .. } => unreachable!("abandoned above"),
            },
            None if self.status.phase == JobPhase::Running => {
                let container_name = self
                    .status
                    .container
                    .clone()
                    .unwrap_or_else(|| container_name(&self.obs.meta, run, attempt));
                self.actions.push(JobAction::RecordLost {
                    run,
                    attempt,
                    container_name,
                });
                self.requeue_in(Duration::ZERO);
            }
            // Waiting out a retry backoff.
            None => match self.status.next_attempt_time {
                Some(at) if at > now => {
                    self.requeue_in(secs(at - now));
                    self.requeue_deadline();
                }
                _ => self.start_attempt(run, attempt),
            },
        }
    }

    fn after_attempt(&mut self, run: u32, attempt: u32, record: &AttemptRecord) {
        let now = self.obs.now;
        self.status.steps = record.steps.clone();
        self.status.artifacts = record.artifacts.clone();
        self.status.outputs = record.outputs.clone();
        self.status.usage = record.usage.clone();
        if record.outcome.succeeded() {
            // What the harvest noted past "all steps succeeded" (output cut, artifacts
            // skipped) stays visible in the summary.
            let notes = record
                .message
                .split_once("; ")
                .map_or("", |(_, notes)| notes);
            self.finish_run(JobPhase::Succeeded, Some(record), notes);
            return;
        }
        let limit = self.obs.spec.retry.as_ref().map_or(0, |r| r.limit);
        let retriable = matches!(
            record.outcome,
            AttemptOutcome::Failed | AttemptOutcome::StartFailed | AttemptOutcome::Lost
        );
        if attempt > limit || !retriable {
            let phase = match record.outcome {
                AttemptOutcome::TimedOut => JobPhase::TimedOut,
                AttemptOutcome::Cancelled => JobPhase::Cancelled,
                _ => JobPhase::Failed,
            };
            self.finish_run(phase, Some(record), &record.message);
            return;
        }
        let next = attempt + 1;
        let backoff = self
            .obs
            .spec
            .retry
            .as_ref()
            .map_or(0, |r| r.backoff_before(next));
        let at = record.finished_at + chrono::TimeDelta::seconds(backoff as i64);
        if at <= now {
            self.events.push(Event::warning(
                "Retrying",
                format!(
                    "attempt {attempt} failed ({}); starting attempt {next}",
                    record.message
                ),
            ));
            self.start_attempt(run, next);
            return;
        }
        self.status.phase = JobPhase::Pending;
        self.status.attempt = Some(next);
        self.status.container = None;
        self.status.next_attempt_time = Some(at);
        self.status.summary = Some(format!(
            "attempt {attempt} of {} failed ({}); retrying in {}s",
            limit + 1,
            record.message,
            secs(at - now).as_secs().max(1)
        ));
        self.events.push(Event::warning(
            "BackOff",
            format!(
                "attempt {attempt} failed ({}); attempt {next} starts in {backoff}s",
                record.message
            ),
        ));
        self.requeue_in(secs(at - now));
        self.requeue_deadline();
    }
}
