//! Unit tests of the pure Job decision.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::records::anomaly::AnomalyKind;
use crate::records::{AttemptOutcome, AttemptRecord};
use crate::resources::job::{JobPhase, JobSpec, JobStatus, Retry, Step, StepStatus};
use crate::resources::{ObjectMeta, keys};
use crate::runtime::{ContainerInfo, ContainerState};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// A fixture: one Job with one step, observed at `t0`.
struct Fixture {
    obs: Observed,
}

impl Fixture {
    fn new() -> Self {
        let meta = ObjectMeta {
            name: "build".into(),
            namespace: Some("default".into()),
            uid: "0123abcd-0000-0000-0000-000000000000".into(),
            resource_version: "7".into(),
            generation: 1,
            ..Default::default()
        };
        let spec = JobSpec {
            image: "busybox:latest".into(),
            steps: vec![Step::script("main", "true")],
            ..Default::default()
        };
        Fixture {
            obs: Observed {
                meta,
                spec,
                status: JobStatus::default(),
                containers: vec![],
                attempts: vec![],
                harvested: HashSet::new(),
                running_step: None,
                previous_runs: Vec::new(),
                secret_missing: None,
                now: t0(),
            },
        }
    }

    fn with_retry(mut self, limit: u32, backoff: u64) -> Self {
        self.obs.spec.retry = Some(Retry {
            limit,
            backoff_seconds: backoff,
            max_backoff_seconds: 300,
        });
        self
    }

    fn with_timeout(mut self, secs: u64) -> Self {
        self.obs.spec.timeout_seconds = Some(secs);
        self
    }

    /// Applies a decision's status as the store would, and moves the clock.
    fn after(mut self, d: &Decision, seconds: i64) -> Self {
        self.obs.status = d.status.clone();
        self.obs.now += secs(seconds);
        self
    }

    fn container(mut self, run: u32, attempt: u32, state: ContainerState) -> Self {
        let labels = BTreeMap::from([
            (keys::LABEL_RUN.to_string(), run.to_string()),
            (keys::LABEL_ATTEMPT.to_string(), attempt.to_string()),
            (keys::LABEL_UID.to_string(), self.obs.meta.uid.clone()),
        ]);
        self.obs.containers.push(ContainerInfo {
            id: format!("c-{run}-{attempt}"),
            name: container_name(&self.obs.meta, run, attempt),
            labels,
            state,
            started_at: Some(self.obs.now),
            finished_at: None,
            image_id: None,
        });
        self
    }

    fn no_containers(mut self) -> Self {
        self.obs.containers.clear();
        self
    }

    fn record(mut self, run: u32, attempt: u32, outcome: AttemptOutcome, exit_code: i64) -> Self {
        self.obs.attempts.push(AttemptRecord {
            uid: self.obs.meta.uid.clone(),
            run,
            attempt,
            container_name: container_name(&self.obs.meta, run, attempt),
            outcome,
            exit_code: Some(exit_code),
            message: format!("step \"main\" exited with {exit_code}"),
            started_at: Some(self.obs.now - secs(1)),
            finished_at: self.obs.now,
            steps: vec![StepStatus {
                name: "main".into(),
                exit_code: Some(exit_code),
                start_time: None,
                duration_ms: Some(5),
                output_tail: "out".into(),
                errors: Vec::new(),
            }],
            artifacts: vec![],
            outputs: Default::default(),
            usage: None,
            image_id: Some("sha256:feedbeef".into()),
        });
        self.obs.harvested.insert((run, attempt));
        self
    }

    fn decide(&self) -> Decision {
        decide(&self.obs)
    }
}

fn starts(d: &Decision) -> Vec<(u32, u32)> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            JobAction::Start { run, attempt, .. } => Some((*run, *attempt)),
            _ => None,
        })
        .collect()
}

fn harvest_forced(d: &Decision) -> Option<Option<AttemptOutcome>> {
    d.actions.iter().find_map(|a| match a {
        JobAction::Harvest { forced, .. } => Some(*forced),
        _ => None,
    })
}

/// Runs a fresh job through start -> running -> exited -> recorded.
fn finished_with(f: Fixture, outcome: AttemptOutcome, code: i64) -> (Fixture, Decision) {
    let d = f.decide();
    let f = f
        .after(&d, 1)
        .container(1, 1, ContainerState::Exited { code });
    let d = f.decide();
    assert_eq!(harvest_forced(&d), Some(None));
    let f = f.after(&d, 0).no_containers().record(1, 1, outcome, code);
    let d = f.decide();
    (f, d)
}

#[test]
fn a_new_job_starts_run_one() {
    let d = Fixture::new().decide();
    assert_eq!(starts(&d), vec![(1, 1)]);
    assert_eq!(d.status.phase, JobPhase::Running);
    assert_eq!(d.status.total_runs, 1);
    assert_eq!(d.status.observed_generation, Some(1));
    assert_eq!(d.status.run_trigger.as_deref(), Some("g1"));
    assert_eq!(d.status.start_time, Some(t0()));
    assert_eq!(d.status.steps.len(), 1);
}

/// The summary of a running Job said "starting 1 step" until the attempt ended; the
/// follower now wakes the Job at each step, and the summary names it.
#[test]
fn a_running_jobs_summary_names_the_step_its_follower_saw_start() {
    let mut f = Fixture::new();
    f.obs.spec.steps = vec![
        Step::script("build", "make"),
        Step::script("test", "make test"),
    ];
    let d = f.decide();
    let f = f.after(&d, 1).container(1, 1, ContainerState::Running);
    let d = f.decide();
    assert_eq!(
        d.status.summary.as_deref(),
        Some("run 1, attempt 1: running 2 steps")
    );
    let mut f = f.after(&d, 1);
    f.obs.running_step = Some(1);
    let d = f.decide();
    assert_eq!(
        d.status.summary.as_deref(),
        Some("run 1, attempt 1: step 2 of 2 (\"test\") running")
    );
}

#[test]
fn a_running_container_is_followed_and_nothing_else() {
    let f = Fixture::new().with_timeout(30);
    let d = f.decide();
    let f = f.after(&d, 5).container(1, 1, ContainerState::Running);
    let d = f.decide();
    assert!(
        matches!(
            d.actions.as_slice(),
            [JobAction::Follow {
                run: 1,
                attempt: 1,
                ..
            }]
        ),
        "{:?}",
        d.actions
    );
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_secs(25)),
        "looks again at the deadline"
    );
}

#[test]
fn a_successful_attempt_finishes_the_run() {
    let (_, d) = finished_with(Fixture::new(), AttemptOutcome::Succeeded, 0);
    assert_eq!(d.status.phase, JobPhase::Succeeded);
    assert_eq!(d.status.history.len(), 1);
    assert_eq!(d.status.history[0].exit_code, Some(0));
    assert!(
        d.status
            .summary
            .as_deref()
            .unwrap()
            .starts_with("run 1 succeeded")
    );
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, JobAction::RecordRun(r) if r.phase == JobPhase::Succeeded))
    );
    assert!(starts(&d).is_empty());
}

#[test]
fn a_finished_job_is_left_alone_across_restarts() {
    let (f, d) = finished_with(Fixture::new(), AttemptOutcome::Succeeded, 0);
    let f = f.after(&d, 3600);
    let d = f.decide();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status, f.obs.status, "no status change means no write");
}

#[test]
fn a_failed_attempt_is_retried_after_exponential_backoff() {
    let (f, d) = finished_with(Fixture::new().with_retry(2, 4), AttemptOutcome::Failed, 3);
    assert_eq!(d.status.phase, JobPhase::Pending);
    assert_eq!(d.status.attempt, Some(2));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(4)));
    assert!(starts(&d).is_empty());
    // Too early: still waiting.
    let f = f.after(&d, 2);
    assert!(starts(&f.decide()).is_empty());
    // Backoff over: attempt 2 starts.
    let d = f.decide();
    let f = f.after(&d, 2);
    let d = f.decide();
    assert_eq!(starts(&d), vec![(1, 2)]);
    // Attempt 2 fails too: the wait doubles.
    let f = f.after(&d, 1).record(1, 2, AttemptOutcome::Failed, 3);
    let d = f.decide();
    assert_eq!(d.requeue_after, Some(Duration::from_secs(8)));
    // Attempt 3 is the last.
    let f = f.after(&d, 8);
    let d = f.decide();
    assert_eq!(starts(&d), vec![(1, 3)]);
    let f = f.after(&d, 1).record(1, 3, AttemptOutcome::Failed, 3);
    let d = f.decide();
    assert_eq!(d.status.phase, JobPhase::Failed);
    assert_eq!(d.status.history[0].attempts, 3);
    assert!(
        d.status
            .summary
            .as_deref()
            .unwrap()
            .contains("after 3 attempts"),
        "{:?}",
        d.status.summary
    );
}

#[test]
fn without_retries_a_failure_is_final() {
    let (_, d) = finished_with(Fixture::new(), AttemptOutcome::Failed, 7);
    assert_eq!(d.status.phase, JobPhase::Failed);
    assert_eq!(d.status.history[0].exit_code, Some(7));
    assert!(
        d.status
            .conditions
            .iter()
            .any(|c| format!("{:?}", c.type_) == "Failed" && format!("{:?}", c.status) == "True")
    );
}

#[test]
fn the_deadline_stops_the_container_and_the_run_times_out() {
    let f = Fixture::new().with_timeout(10).with_retry(3, 1);
    let d = f.decide();
    let f = f.after(&d, 11).container(1, 1, ContainerState::Running);
    let d = f.decide();
    assert_eq!(harvest_forced(&d), Some(Some(AttemptOutcome::TimedOut)));
    assert_eq!(
        d.status.phase,
        JobPhase::Running,
        "finishes only once harvested"
    );
    let f = f
        .after(&d, 1)
        .no_containers()
        .record(1, 1, AttemptOutcome::TimedOut, 143);
    let d = f.decide();
    assert_eq!(d.status.phase, JobPhase::TimedOut);
    assert!(starts(&d).is_empty(), "a timed-out run is not retried");
}

#[test]
fn the_deadline_also_ends_a_retry_wait() {
    let (f, d) = finished_with(
        Fixture::new().with_timeout(5).with_retry(3, 60),
        AttemptOutcome::Failed,
        1,
    );
    assert_eq!(d.status.phase, JobPhase::Pending);
    let f = f.after(&d, 10);
    let d = f.decide();
    assert_eq!(d.status.phase, JobPhase::TimedOut);
    assert!(starts(&d).is_empty());
}

#[test]
fn cancel_applies_to_its_run_only() {
    let f = Fixture::new();
    let d = f.decide();
    let mut f = f.after(&d, 1).container(1, 1, ContainerState::Running);
    f.obs
        .meta
        .annotations
        .insert(keys::CANCEL.into(), "0".into());
    assert_eq!(
        harvest_forced(&f.decide()),
        None,
        "a cancel for another run is ignored"
    );
    f.obs
        .meta
        .annotations
        .insert(keys::CANCEL.into(), "1".into());
    let d = f.decide();
    assert_eq!(harvest_forced(&d), Some(Some(AttemptOutcome::Cancelled)));
    let f = f
        .after(&d, 1)
        .no_containers()
        .record(1, 1, AttemptOutcome::Cancelled, 143);
    let d = f.decide();
    assert_eq!(d.status.phase, JobPhase::Cancelled);
}

#[test]
fn a_new_generation_supersedes_the_running_run() {
    let f = Fixture::new();
    let d = f.decide();
    let mut f = f.after(&d, 1).container(1, 1, ContainerState::Running);
    f.obs.meta.generation = 2;
    let d = f.decide();
    assert_eq!(harvest_forced(&d), Some(Some(AttemptOutcome::Cancelled)));
    assert_eq!(starts(&d), vec![(2, 1)]);
    assert_eq!(d.status.total_runs, 2);
    assert_eq!(d.status.observed_generation, Some(2));
    assert_eq!(d.status.history[0].phase, JobPhase::Cancelled);
    assert_eq!(d.status.history[0].generation, 1);
}

fn recorded_context(d: &Decision) -> crate::records::RunContext {
    d.actions
        .iter()
        .find_map(|a| match a {
            JobAction::RecordRun(r) => r.context.clone(),
            _ => None,
        })
        .expect("a run record with its context")
}

#[test]
fn a_run_record_keeps_the_spec_its_hash_the_image_and_the_trigger() {
    let (mut f, d) = finished_with(Fixture::new(), AttemptOutcome::Succeeded, 0);
    let context = recorded_context(&d);
    let spec = serde_json::to_value(&f.obs.spec).unwrap();
    assert_eq!(context.spec_hash, crate::records::spec_hash(&spec));
    assert_eq!(context.spec, spec);
    assert_eq!(context.image, f.obs.spec.image);
    assert_eq!(context.image_id.as_deref(), Some("sha256:feedbeef"));
    assert_eq!((context.trigger.as_str(), context.source), ("api", None));

    // A re-run says so, whatever else the Job carries.
    f = f.after(&d, 5);
    f.obs
        .meta
        .annotations
        .insert(keys::RERUN.into(), "tok".into());
    f.obs
        .meta
        .annotations
        .insert(keys::SOURCE.into(), "file:jobs/build.yaml".into());
    let d = f.decide();
    let f = f
        .after(&d, 1)
        .container(2, 1, ContainerState::Exited { code: 0 });
    let d = f.decide();
    let f = f
        .after(&d, 0)
        .no_containers()
        .record(2, 1, AttemptOutcome::Succeeded, 0);
    assert_eq!(recorded_context(&f.decide()).trigger, "rerun");
}

#[test]
fn a_run_created_through_the_api_names_who_created_the_job() {
    let mut f = Fixture::new();
    f.obs
        .meta
        .annotations
        .insert(keys::CREATED_BY.into(), "claude-code".into());
    let (_, d) = finished_with(f, AttemptOutcome::Succeeded, 0);
    let context = recorded_context(&d);
    assert_eq!(
        (context.trigger.as_str(), context.source.as_deref()),
        ("api", Some("by claude-code"))
    );
}

#[test]
fn the_trigger_names_the_file_or_the_workflow_node() {
    let mut f = Fixture::new();
    f.obs
        .meta
        .annotations
        .insert(keys::SOURCE.into(), "file:jobs/build.yaml".into());
    let (_, d) = finished_with(f, AttemptOutcome::Failed, 1);
    let context = recorded_context(&d);
    assert_eq!(context.trigger, "file");
    assert_eq!(context.source.as_deref(), Some("file:jobs/build.yaml"));

    let mut f = Fixture::new();
    for (k, v) in [
        (keys::LABEL_WORKFLOW, "ci"),
        (keys::LABEL_WORKFLOW_RUN, "3"),
        (keys::LABEL_NODE, "test"),
    ] {
        f.obs.meta.labels.insert(k.into(), v.into());
    }
    let (_, d) = finished_with(f, AttemptOutcome::Succeeded, 0);
    let context = recorded_context(&d);
    assert_eq!(context.trigger, "workflow");
    assert_eq!(context.source.as_deref(), Some("ci run 3 node test"));
}

#[test]
fn a_rerun_annotation_starts_a_new_run() {
    let (mut f, d) = finished_with(Fixture::new(), AttemptOutcome::Succeeded, 0);
    f = f.after(&d, 5);
    f.obs
        .meta
        .annotations
        .insert(keys::RERUN.into(), "tok".into());
    let d = f.decide();
    assert_eq!(starts(&d), vec![(2, 1)]);
    assert_eq!(d.status.run_trigger.as_deref(), Some("g1/rerun=tok"));
}

#[test]
fn ttl_deletes_the_job_once_due() {
    let mut f = Fixture::new();
    f.obs.spec.ttl_seconds_after_finished = Some(60);
    let (f, d) = finished_with(f, AttemptOutcome::Succeeded, 0);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(60)));
    assert_eq!(d.fate, Fate::Keep);
    let f = f.after(&d, 60);
    assert_eq!(
        f.decide().fate,
        Fate::Delete {
            reason: "ttlSecondsAfterFinished"
        }
    );
}

#[test]
fn a_suspended_job_starts_nothing() {
    let mut f = Fixture::new();
    f.obs.spec.suspend = true;
    let d = f.decide();
    assert!(starts(&d).is_empty());
    assert_eq!(d.status.phase, JobPhase::Pending);
    assert!(
        d.status
            .conditions
            .iter()
            .any(|c| format!("{:?}", c.type_) == "Suspended")
    );
    // Unsuspending is a spec change: a new generation starts run 1.
    let mut f = f.after(&d, 1);
    f.obs.spec.suspend = false;
    f.obs.meta.generation = 2;
    assert_eq!(starts(&f.decide()), vec![(1, 1)]);
}

#[test]
fn leftovers_are_harvested_or_removed() {
    let (f, d) = finished_with(Fixture::new(), AttemptOutcome::Succeeded, 0);
    // The harvested container of attempt 1 is still there (a crash before removal).
    let f = f
        .after(&d, 1)
        .container(1, 1, ContainerState::Exited { code: 0 });
    let d = f.decide();
    assert!(
        matches!(d.actions.as_slice(), [JobAction::Remove { .. }]),
        "{:?}",
        d.actions
    );
}

#[test]
fn a_vanished_container_is_recorded_as_lost() {
    let f = Fixture::new();
    let d = f.decide();
    let f = f.after(&d, 1);
    let d = f.decide();
    assert!(
        d.actions.iter().any(|a| matches!(
            a,
            JobAction::RecordLost {
                run: 1,
                attempt: 1,
                ..
            }
        )),
        "{:?}",
        d.actions
    );
}

#[test]
fn a_created_but_unstarted_container_is_started_not_duplicated() {
    let f = Fixture::new();
    let d = f.decide();
    let f = f.after(&d, 1).container(1, 1, ContainerState::Created);
    let d = f.decide();
    let name = container_name(&f.obs.meta, 1, 1);
    assert_eq!(
        d.actions,
        vec![JobAction::Start {
            run: 1,
            attempt: 1,
            container_name: name
        }]
    );
}

#[test]
fn history_keeps_the_last_ten_runs() {
    let mut f = Fixture::new();
    for generation in 1..=12 {
        f.obs.meta.generation = generation;
        let d = f.decide();
        let run = d.status.run.unwrap();
        f = f.after(&d, 1).record(run, 1, AttemptOutcome::Succeeded, 0);
        let d = f.decide();
        f = f.after(&d, 1);
    }
    assert_eq!(f.obs.status.total_runs, 12);
    assert_eq!(f.obs.status.history.len(), 10);
    assert_eq!(f.obs.status.history[0].run, 12);
    assert_eq!(f.obs.status.history[9].run, 3);
}

#[test]
fn container_names_are_deterministic_and_docker_safe() {
    let f = Fixture::new();
    assert_eq!(
        container_name(&f.obs.meta, 3, 2),
        "orcaops-default-build-0123abcd-r3a2"
    );
}

#[test]
fn a_deleted_job_stops_its_attempt_records_the_run_and_lets_go() {
    let f = Fixture::new();
    let d = f.decide();
    let mut f = f.after(&d, 5).container(1, 1, ContainerState::Running);
    f.obs.meta.deletion_timestamp = Some(f.obs.now);
    let d = f.decide();
    assert_eq!(harvest_forced(&d), Some(Some(AttemptOutcome::Cancelled)));
    assert_eq!(d.fate, Fate::Keep, "not before the harvest");
    // Harvested: the run ends Cancelled, is recorded, and the finalizer goes.
    let f = f
        .no_containers()
        .record(1, 1, AttemptOutcome::Cancelled, 143);
    let d = f.decide();
    assert_eq!(d.status.phase, JobPhase::Cancelled);
    assert_eq!(
        d.status.summary.as_deref(),
        Some("run 1 cancelled: the Job was deleted while run 1 was running")
    );
    assert!(
        matches!(d.actions.as_slice(), [JobAction::RecordRun(r)]
            if r.phase == JobPhase::Cancelled && r.completion_time == Some(f.obs.now)),
        "{:?}",
        d.actions
    );
    assert_eq!(d.fate, Fate::Release);
}

#[test]
fn a_deleted_job_whose_pod_is_already_gone_just_lets_go() {
    // Finished earlier: nothing to stop or record.
    let (mut f, _) = finished_with(Fixture::new(), AttemptOutcome::Succeeded, 0);
    let d = f.decide();
    f = f.after(&d, 1);
    f.obs.meta.deletion_timestamp = Some(f.obs.now);
    let d = f.decide();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.fate, Fate::Release);
    // Running, but its pod vanished: the run is recorded as cancelled all the same.
    let f = Fixture::new();
    let d = f.decide();
    let mut f = f.after(&d, 1);
    f.obs.meta.deletion_timestamp = Some(f.obs.now);
    let d = f.decide();
    assert_eq!(d.status.phase, JobPhase::Cancelled);
    assert!(
        matches!(d.actions.as_slice(), [JobAction::RecordRun(_)]),
        "{:?}",
        d.actions
    );
    assert_eq!(d.fate, Fate::Release);
}

#[test]
fn a_container_started_before_its_status_was_written_is_adopted_not_cancelled() {
    // The status write after starting run 1 failed: the status knows no run, the
    // container of run 1 attempt 1 runs.
    let f = Fixture::new().container(1, 1, ContainerState::Running);
    let d = f.decide();
    assert_eq!(harvest_forced(&d), None, "{:?}", d.actions);
    assert_eq!(starts(&d), vec![(1, 1)]);
    // The same after a failed attempt: attempt 2 was started, its status not written.
    let f = Fixture::new().with_retry(1, 0);
    let d = f.decide();
    let f = f
        .after(&d, 1)
        .record(1, 1, AttemptOutcome::Failed, 1)
        .container(1, 2, ContainerState::Running);
    let d = f.decide();
    assert_eq!(starts(&d), vec![(1, 2)]);
    assert_eq!(harvest_forced(&d), None, "{:?}", d.actions);
}

fn abandoned(d: &Decision) -> Option<(u32, u32, AttemptOutcome, String)> {
    d.actions.iter().find_map(|a| match a {
        JobAction::Abandon {
            run,
            attempt,
            outcome,
            message,
            ..
        } => Some((*run, *attempt, *outcome, message.clone())),
        _ => None,
    })
}

fn pull_failure() -> ContainerState {
    ContainerState::CannotStart {
        reason: "ImagePullBackOff: Back-off pulling image \"busybox:nope\"".into(),
    }
}

#[test]
fn an_attempt_that_cannot_start_is_abandoned_and_retried_as_a_failure() {
    let f = Fixture::new().with_retry(1, 4);
    let d = f.decide();
    let f = f.after(&d, 3).container(1, 1, pull_failure());
    let d = f.decide();
    let (run, attempt, outcome, message) = abandoned(&d).expect("abandoned");
    assert_eq!((run, attempt, outcome), (1, 1, AttemptOutcome::StartFailed));
    assert!(
        message.contains("cannot start") && message.contains("busybox:nope"),
        "{message}"
    );
    assert!(harvest_forced(&d).is_none(), "nothing ran: no harvest");
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, JobAction::Follow { .. })),
        "{:?}",
        d.actions
    );
    // Recorded as a failed start: the retry waits out its backoff like any failure.
    let f = f
        .after(&d, 0)
        .no_containers()
        .record(1, 1, AttemptOutcome::StartFailed, 0);
    let d = f.decide();
    assert_eq!(d.status.attempt, Some(2));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(4)));
    assert!(starts(&d).is_empty());
}

#[test]
fn a_stuck_attempt_past_the_deadline_or_cancelled_says_so() {
    let f = Fixture::new().with_timeout(10);
    let d = f.decide();
    let f = f.after(&d, 11).container(1, 1, pull_failure());
    let (_, _, outcome, message) = abandoned(&f.decide()).expect("abandoned");
    assert_eq!(outcome, AttemptOutcome::TimedOut);
    assert!(
        message.starts_with("never started: ImagePullBackOff"),
        "{message}"
    );

    let f = Fixture::new();
    let d = f.decide();
    let mut f = f.after(&d, 1).container(1, 1, pull_failure());
    f.obs
        .meta
        .annotations
        .insert(keys::CANCEL.to_string(), "1".to_string());
    let (_, _, outcome, _) = abandoned(&f.decide()).expect("abandoned");
    assert_eq!(outcome, AttemptOutcome::Cancelled);
}

#[test]
fn a_stuck_leftover_is_abandoned_not_harvested() {
    let f = Fixture::new().with_retry(2, 1);
    let d = f.decide();
    // The Job has moved on to attempt 2, but attempt 1's pod is still there, stuck.
    let mut f = f.after(&d, 1).container(1, 1, pull_failure());
    f.obs.status.attempt = Some(2);
    let d = f.decide();
    let (run, attempt, outcome, _) = abandoned(&d).expect("abandoned");
    assert_eq!((run, attempt, outcome), (1, 1, AttemptOutcome::Cancelled));
    assert!(harvest_forced(&d).is_none(), "{:?}", d.actions);
}

#[test]
fn a_run_slower_than_its_baseline_is_anomalous_in_the_status_an_event_and_the_record() {
    let quick = |run| RunFacts {
        run,
        succeeded: true,
        duration_ms: Some(200 + u64::from(run % 3) * 10),
        ..Default::default()
    };
    let mut f = Fixture::new();
    f.obs.previous_runs = (1..=8).map(quick).collect();
    // The run takes about a second: five times the usual 0.2 s.
    let (_, d) = finished_with(f, AttemptOutcome::Succeeded, 0);
    assert_eq!(d.status.phase, JobPhase::Succeeded);
    let kinds: Vec<AnomalyKind> = d.status.anomalies.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AnomalyKind::SlowerThanUsual], "{:?}", d.status);
    let condition = d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == JobConditionType::Anomalous)
        .expect("an Anomalous condition");
    assert_eq!(condition.status, ConditionStatus::True);
    assert_eq!(condition.reason, "SlowerThanUsual");
    assert!(
        d.events
            .iter()
            .any(|e| e.reason == "SlowerThanUsual" && e.message.contains("usually")),
        "{:?}",
        d.events
    );
    let recorded = d.actions.iter().find_map(|a| match a {
        JobAction::RecordRun(r) => Some(r),
        _ => None,
    });
    assert_eq!(
        recorded.expect("a run record").anomalies,
        d.status.anomalies
    );

    // Too few runs to judge: nothing, and no condition appears.
    let mut f2 = Fixture::new();
    f2.obs.previous_runs = (1..=4).map(quick).collect();
    let (_, d2) = finished_with(f2, AttemptOutcome::Succeeded, 0);
    assert!(d2.status.anomalies.is_empty());
    assert!(
        !d2.status
            .conditions
            .iter()
            .any(|c| c.type_ == JobConditionType::Anomalous)
    );
}

#[test]
fn a_missing_secret_keeps_the_job_pending_until_it_exists() {
    let mut f = Fixture::new();
    let message = "env TOKEN reads key token of secret hook, and there is no secret hook in namespace default; create it with kubectl create secret generic hook --from-literal=token=VALUE -n default";
    f.obs.secret_missing = Some(message.into());
    let d = decide(&f.obs);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, JobPhase::Pending);
    assert_eq!(d.status.total_runs, 0);
    assert_eq!(d.status.run, None);
    let condition = d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == JobConditionType::SecretMissing)
        .expect("a SecretMissing condition");
    assert_eq!(condition.status, ConditionStatus::True);
    assert_eq!(condition.message, message);
    assert_eq!(
        d.requeue_after,
        Some(crate::controller::secrets::SECRET_RECHECK)
    );

    // The secret appears: the run starts, and the condition goes.
    let mut f = f.after(&d, 2);
    f.obs.secret_missing = None;
    let d = decide(&f.obs);
    assert!(
        matches!(
            d.actions[..],
            [JobAction::Start {
                run: 1,
                attempt: 1,
                ..
            }]
        ),
        "{:?}",
        d.actions
    );
    assert_eq!(d.status.phase, JobPhase::Running);
    assert!(
        d.status
            .conditions
            .iter()
            .all(|c| c.type_ != JobConditionType::SecretMissing)
    );
}
