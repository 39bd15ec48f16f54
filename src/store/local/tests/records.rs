//! Events and run records.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::records::{AttemptOutcome, AttemptRecord, RunRecord};
use crate::resources::job::JobPhase;
use crate::store::{EventQuery, EventType};

#[tokio::test]
async fn repeated_events_are_counted() {
    let (_dir, store) = store().await;
    store
        .record_event(new_event("build", "Started", "attempt 1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    store
        .record_event(new_event("build", "Started", "attempt 1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    store
        .record_event(new_event("build", "Failed", "exit 1"))
        .await
        .unwrap();
    let mut warning = new_event("test", "Pulled", "alpine");
    warning.type_ = EventType::Warning;
    store.record_event(warning).await.unwrap();

    let events = store
        .list_events(
            EventQuery::newest(10)
                .kind("Job")
                .namespace("default")
                .name("build"),
        )
        .await
        .unwrap();
    let summary: Vec<(&str, u32)> = events
        .iter()
        .map(|e| (e.reason.as_str(), e.count))
        .collect();
    assert_eq!(
        summary,
        [("Failed", 1), ("Started", 2)],
        "newest first, repeats counted"
    );
    let started = &events[1];
    assert!(started.last_timestamp > started.first_timestamp);

    let all = store.list_events(EventQuery::newest(10)).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        (all[0].involved_object.name.as_str(), all[0].type_),
        ("test", EventType::Warning)
    );
    assert_eq!(
        store
            .list_events(EventQuery::newest(1))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .list_events(EventQuery::newest(10).kind("Sandbox"))
            .await
            .unwrap()
            .is_empty()
    );
}

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, minute, 0).unwrap()
}

fn run(uid: &str, run: u32, start: Option<u32>, end: Option<u32>) -> RunRecord {
    RunRecord {
        uid: uid.into(),
        namespace: "default".into(),
        name: "build".into(),
        run,
        generation: 1,
        phase: if end.is_some() {
            JobPhase::Succeeded
        } else {
            JobPhase::Running
        },
        attempts: 1,
        start_time: start.map(at),
        completion_time: end.map(at),
        exit_code: None,
        summary: String::new(),
        steps: Vec::new(),
        artifacts: Vec::new(),
        outputs: Default::default(),
        usage: None,
        anomalies: Vec::new(),
    }
}

fn attempt(uid: &str, run: u32, attempt: u32, outcome: AttemptOutcome) -> AttemptRecord {
    AttemptRecord {
        uid: uid.into(),
        run,
        attempt,
        container_name: format!("orcaops-build-{run}-{attempt}"),
        outcome,
        exit_code: Some(if outcome.succeeded() { 0 } else { 1 }),
        message: String::new(),
        started_at: Some(at(attempt)),
        finished_at: at(attempt + 1),
        steps: Vec::new(),
        artifacts: Vec::new(),
        outputs: Default::default(),
        usage: None,
    }
}

#[tokio::test]
async fn run_records_upsert_and_outlive_the_object() {
    let (_dir, store) = store().await;
    let created = store.create(job("default", "build")).await.unwrap();
    let uid = created.metadata.uid.clone();

    store
        .put_attempt(&attempt(&uid, 1, 2, AttemptOutcome::Failed))
        .await
        .unwrap();
    store
        .put_attempt(&attempt(&uid, 1, 1, AttemptOutcome::Failed))
        .await
        .unwrap();
    store
        .put_attempt(&attempt(&uid, 1, 2, AttemptOutcome::Succeeded))
        .await
        .unwrap();
    store
        .put_attempt(&attempt(&uid, 2, 1, AttemptOutcome::Succeeded))
        .await
        .unwrap();
    let attempts = store.attempts(&uid, 1).await.unwrap();
    let seen: Vec<(u32, AttemptOutcome)> =
        attempts.iter().map(|a| (a.attempt, a.outcome)).collect();
    assert_eq!(
        seen,
        [(1, AttemptOutcome::Failed), (2, AttemptOutcome::Succeeded)]
    );

    store.put_run(&run(&uid, 1, Some(0), None)).await.unwrap();
    let mut finished = run(&uid, 1, Some(0), Some(5));
    finished.summary = "2 attempts".into();
    store.put_run(&finished).await.unwrap();

    store.delete(&created.key()).await.unwrap();
    let runs = store.runs("default", "build").await.unwrap();
    assert_eq!(
        runs,
        [finished.clone()],
        "one record per run, kept after the delete"
    );
    assert_eq!(store.attempts(&uid, 1).await.unwrap().len(), 2);
}

#[tokio::test]
async fn runs_come_newest_first_across_incarnations() {
    let (_dir, store) = store().await;
    // "old" is a deleted object of the same name; "new" is the current one.
    store
        .put_run(&run("old", 1, Some(0), Some(10)))
        .await
        .unwrap();
    store
        .put_run(&run("old", 2, Some(20), Some(30)))
        .await
        .unwrap();
    store
        .put_run(&run("new", 1, Some(40), Some(45)))
        .await
        .unwrap();
    store.put_run(&run("new", 2, Some(50), None)).await.unwrap(); // running: ordered by start
    store.put_run(&run("new", 3, None, None)).await.unwrap(); // not started yet
    store
        .put_run(&run("new", 4, Some(30), Some(30)))
        .await
        .unwrap(); // same time as old/2
    let mut other = run("x", 1, Some(59), Some(59));
    other.name = "deploy".into();
    store.put_run(&other).await.unwrap();

    let order: Vec<(String, u32)> = store
        .runs("default", "build")
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.uid, r.run))
        .collect();
    let expected = [
        ("new", 3),
        ("new", 2),
        ("new", 1),
        ("new", 4),
        ("old", 2),
        ("old", 1),
    ];
    assert_eq!(order, expected.map(|(uid, run)| (uid.to_string(), run)));
}

#[tokio::test]
async fn workflow_runs_are_kept_apart_from_job_runs_and_replaced_by_run() {
    use crate::records::WorkflowRunRecord;
    use crate::resources::workflow::{NodePhase, NodeStatus, WorkflowPhase};
    let (_dir, store) = store().await;
    let at = |s: i64| Some(Utc.timestamp_opt(s, 0).unwrap());
    let record = |run: u32, phase: WorkflowPhase, end: Option<i64>| WorkflowRunRecord {
        uid: "wf-uid".into(),
        namespace: "default".into(),
        name: "build".into(),
        run,
        generation: 1,
        phase,
        trigger: "spec".into(),
        token: (run == 2).then(|| "run-key-2".to_string()),
        inputs: [("ref".to_string(), "main".to_string())].into(),
        start_time: at(i64::from(run) * 10),
        completion_time: end.and_then(at),
        progress: "1/2".into(),
        summary: String::new(),
        nodes: vec![NodeStatus {
            name: "a".into(),
            phase: NodePhase::Succeeded,
            ..Default::default()
        }],
    };
    store
        .put_workflow_run(&record(1, WorkflowPhase::Running, None))
        .await
        .unwrap();
    store
        .put_workflow_run(&record(1, WorkflowPhase::Failed, Some(15)))
        .await
        .unwrap();
    store
        .put_workflow_run(&record(2, WorkflowPhase::Succeeded, Some(25)))
        .await
        .unwrap();
    // A Job of the same name has its own runs, which workflow_runs never returns.
    store
        .put_run(&run("job-uid", 1, Some(0), Some(1)))
        .await
        .unwrap();

    let runs = store.workflow_runs("default", "build").await.unwrap();
    let seen: Vec<(u32, WorkflowPhase)> = runs.iter().map(|r| (r.run, r.phase)).collect();
    assert_eq!(
        seen,
        [(2, WorkflowPhase::Succeeded), (1, WorkflowPhase::Failed)]
    );
    assert_eq!(runs[1].nodes[0].name, "a");
    assert_eq!(store.runs("default", "build").await.unwrap().len(), 1);
    // A retried request finds its run by its token, for that Workflow (uid) only.
    let found = store
        .workflow_run_by_token("wf-uid", "run-key-2")
        .await
        .unwrap();
    assert_eq!(
        found.map(|r| (r.run, r.token)),
        Some((2, Some("run-key-2".to_string())))
    );
    for (uid, token) in [("wf-uid", "run-key-1"), ("other-uid", "run-key-2")] {
        assert!(
            store
                .workflow_run_by_token(uid, token)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert!(
        store
            .workflow_runs("default", "other")
            .await
            .unwrap()
            .is_empty()
    );
}
