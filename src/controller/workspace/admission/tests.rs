use serde_json::json;

use super::*;
use crate::resources::common::Condition;

fn meta(generation: i64) -> ObjectMeta {
    ObjectMeta {
        name: "j".into(),
        namespace: Some("team-a".into()),
        uid: "uid-j".into(),
        generation,
        ..Default::default()
    }
}

fn spec() -> JobSpec {
    serde_json::from_value(json!({"image": "busybox", "steps": [{"name": "s", "run": "true"}]}))
        .expect("a job spec")
}

#[test]
fn a_new_job_wants_to_start_and_a_finished_one_does_not() {
    let now = Utc::now();
    let fresh = JobStatus::default();
    assert!(job_wants_to_start(&meta(1), &spec(), &fresh, now));
    assert!(job_new_run(&meta(1), &fresh));
    assert_eq!(
        job_standing(&meta(1), &spec(), &fresh, false, now),
        Standing::Waiting
    );
    let done = JobStatus {
        phase: JobPhase::Succeeded,
        run: Some(1),
        run_trigger: Some(run_trigger(&meta(1))),
        ..Default::default()
    };
    assert!(!job_wants_to_start(&meta(1), &spec(), &done, now));
    assert_eq!(
        job_standing(&meta(1), &spec(), &done, false, now),
        Standing::Idle
    );
    // A new generation is a new run.
    assert!(job_wants_to_start(&meta(2), &spec(), &done, now));
    // A suspended job asks for nothing.
    let mut suspended = spec();
    suspended.suspend = true;
    assert!(!job_wants_to_start(&meta(2), &suspended, &done, now));
}

#[test]
fn a_running_job_holds_and_a_retry_waits_out_its_backoff_first() {
    let now = Utc::now();
    let running = JobStatus {
        phase: JobPhase::Running,
        run: Some(1),
        run_trigger: Some(run_trigger(&meta(1))),
        ..Default::default()
    };
    assert_eq!(
        job_standing(&meta(1), &spec(), &running, false, now),
        Standing::Holding
    );
    let backing_off = JobStatus {
        phase: JobPhase::Pending,
        next_attempt_time: Some(now + chrono::TimeDelta::seconds(30)),
        ..running.clone()
    };
    assert_eq!(
        job_standing(&meta(1), &spec(), &backing_off, false, now),
        Standing::Idle
    );
    assert!(!job_new_run(&meta(1), &backing_off));
    let due = JobStatus {
        next_attempt_time: Some(now - chrono::TimeDelta::seconds(1)),
        ..backing_off
    };
    assert_eq!(
        job_standing(&meta(1), &spec(), &due, false, now),
        Standing::Waiting
    );
    // A live container holds, whatever the status says.
    assert_eq!(
        job_standing(&meta(1), &spec(), &due, true, now),
        Standing::Holding
    );
}

#[test]
fn a_job_holds_its_requests_or_the_servers_default_memory() {
    let mut with = spec();
    with.resources = Some(Resources {
        cpu: Some("600m".into()),
        memory: Some("256Mi".into()),
    });
    let demand = job_demand(&with, 1 << 30, true);
    assert_eq!(
        (
            demand.jobs,
            demand.cpu_millis,
            demand.memory_bytes,
            demand.runs
        ),
        (1, 600, 256 << 20, 1)
    );
    let bare = job_demand(&spec(), 1 << 30, false);
    assert_eq!(
        (bare.cpu_millis, bare.memory_bytes, bare.runs),
        (0, 1 << 30, 0)
    );
}

#[test]
fn a_sandbox_holds_from_starting_until_stopped() {
    let sandbox: SandboxSpec = serde_json::from_value(json!({
        "services": [
            {"name": "a", "image": "busybox", "resources": {"cpu": "500m"}},
            {"name": "b", "image": "busybox"},
        ]
    }))
    .expect("a sandbox spec");
    let defaults = Resources {
        cpu: Some("250m".into()),
        memory: Some("64Mi".into()),
    };
    let demand = sandbox_demand(&sandbox, Some(&defaults));
    assert_eq!(
        (demand.sandboxes, demand.cpu_millis, demand.memory_bytes),
        (1, 750, 64 << 20)
    );
    let m = meta(1);
    let status = |phase| SandboxStatus {
        phase,
        ..Default::default()
    };
    assert_eq!(
        sandbox_standing(&m, &sandbox, &status(None)),
        Standing::Waiting
    );
    assert_eq!(
        sandbox_standing(&m, &sandbox, &status(Some(SandboxPhase::Ready))),
        Standing::Holding
    );
    assert_eq!(
        sandbox_standing(&m, &sandbox, &status(Some(SandboxPhase::Expired))),
        Standing::Idle
    );
    let mut stopped = sandbox.clone();
    stopped.state = SandboxState::Stopped;
    assert_eq!(
        sandbox_standing(&m, &stopped, &status(Some(SandboxPhase::Stopped))),
        Standing::Idle
    );
    assert_eq!(
        sandbox_standing(&m, &sandbox, &status(Some(SandboxPhase::Stopped))),
        Standing::Waiting
    );
}

#[test]
fn what_is_admitted_in_memory_holds_before_the_store_shows_it() {
    let now = Utc::now();
    let snapshot = Snapshot {
        members: vec![Member {
            uid: "a".into(),
            created: now,
            name: "a".into(),
            standing: Standing::Waiting,
            demand: Demand {
                jobs: 1,
                runs: 1,
                ..Default::default()
            },
        }],
        run_starts: vec![],
    };
    let mut ledger = HashMap::new();
    let held = Held {
        namespace: "w".into(),
        demand: Demand {
            jobs: 1,
            runs: 1,
            ..Default::default()
        },
    };
    ledger.insert("a".to_string(), held.clone());
    // Created after the list was read.
    ledger.insert("b".to_string(), held.clone());
    // Another workspace's.
    ledger.insert(
        "c".to_string(),
        Held {
            namespace: "other".into(),
            ..held
        },
    );
    let seen = with_admitted(snapshot, &ledger, "w", now);
    let held = seen.held(now, "");
    assert_eq!(held.jobs, 2);
    assert_eq!(
        held.runs, 1,
        "a's run is starting; b's is counted when seen"
    );
}

#[test]
fn a_refused_job_is_pending_with_the_condition_and_the_reason() {
    let now = Utc::now();
    let mut status = JobStatus::default();
    job_refused(
        &mut status,
        "workspace w: concurrentJobs 2/2 in use; starts when one ends",
        now,
    );
    assert_eq!(status.phase, JobPhase::Pending);
    assert!(job_waits_for_quota(&status));
    let condition: &Condition<JobConditionType> = &status.conditions[0];
    assert_eq!(condition.reason, "QuotaExceeded");
    assert!(crate::controller::waiting::is_job_wait(condition));
    assert_eq!(
        status.summary.as_deref(),
        Some("waiting: workspace w: concurrentJobs 2/2 in use; starts when one ends")
    );
    let mut sandbox = SandboxStatus::default();
    sandbox_refused(&mut sandbox, "full", now);
    assert_eq!(sandbox.phase, Some(SandboxPhase::Pending));
    assert!(sandbox_waits_for_quota(&sandbox));
}

#[test]
fn a_container_being_removed_after_its_harvest_holds_no_room() {
    assert!(holds_room(&ContainerState::Running));
    assert!(holds_room(&ContainerState::Other("paused".into())));
    assert!(!holds_room(&ContainerState::Other("removing".into())));
    assert!(!holds_room(&ContainerState::Exited { code: 0 }));
}
