//! Events and run records.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::records::{AttemptOutcome, AttemptRecord, RunRecord};
use crate::resources::job::JobPhase;
use crate::store::{EventQuery, EventType};

#[tokio::test]
async fn events_are_bounded_per_object_and_by_age() {
    use crate::store::local::records::{EVENT_TTL, EVENTS_PER_OBJECT};
    let (_dir, store) = store().await;
    let bound = EVENTS_PER_OBJECT as usize;
    store
        .record_event(new_event("quiet", "Started", "once"))
        .await
        .unwrap();
    for i in 0..bound + 30 {
        store
            .record_event(new_event("busy", "Retried", &format!("attempt {i}")))
            .await
            .unwrap();
    }
    let busy = store
        .list_events(EventQuery::newest(1000).kind("Job").name("busy"))
        .await
        .unwrap();
    assert_eq!(busy.len(), bound, "one object keeps its newest {bound}");
    assert_eq!(
        busy[0].message,
        format!("attempt {}", bound + 29),
        "the newest kept"
    );
    assert_eq!(
        busy[bound - 1].message,
        "attempt 30",
        "the oldest ones dropped"
    );
    let quiet = store
        .list_events(EventQuery::newest(10).name("quiet"))
        .await
        .unwrap();
    assert_eq!(quiet.len(), 1, "another object's events are untouched");

    // An event last seen longer ago than the TTL goes at the next prune.
    let old = (Utc::now() - EVENT_TTL - chrono::TimeDelta::hours(1)).timestamp_micros();
    sqlx::query("UPDATE events SET last_timestamp = ?1 WHERE involved_name = 'quiet'")
        .bind(old)
        .execute(&mut *store.inner.writer.lock().await)
        .await
        .unwrap();
    store
        .inner
        .events_pruned
        .store(0, std::sync::atomic::Ordering::Relaxed);
    store
        .record_event(new_event("busy", "Retried", "one more"))
        .await
        .unwrap();
    let quiet = store
        .list_events(EventQuery::newest(10).name("quiet"))
        .await
        .unwrap();
    assert!(quiet.is_empty(), "expired: {quiet:?}");
}

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
        context: None,
        explanation: None,
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
        image_id: None,
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
        spec_hash: None,
        spec: None,
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

/// A finished run of `namespace/name` with an error line, labels and an image.
fn searchable(
    (namespace, name, uid, n): (&str, &str, &str, u32),
    phase: JobPhase,
    error: &str,
    labels: &[(&str, &str)],
    image: &str,
) -> RunRecord {
    use crate::resources::job::{ErrorLine, StepStatus};
    let mut r = run(uid, n, Some(n), Some(n + 1));
    r.namespace = namespace.into();
    r.name = name.into();
    r.phase = phase;
    r.summary = format!("run {n} {}", phase.as_str());
    r.steps = vec![StepStatus {
        name: "main".into(),
        exit_code: Some(0),
        start_time: None,
        duration_ms: Some(5),
        output_tail: format!("tail of {name} run {n}"),
        errors: if error.is_empty() {
            Vec::new()
        } else {
            vec![ErrorLine {
                line: 3,
                text: error.into(),
            }]
        },
    }];
    r.context = Some(crate::records::RunContext {
        spec_hash: String::new(),
        spec: serde_json::json!({}),
        trigger: "api".into(),
        source: None,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        image: image.into(),
        image_id: None,
    });
    r
}

#[tokio::test]
async fn runs_are_searched_by_workspace_phase_time_labels_image_anomaly_and_words() {
    use crate::records::search::RunQuery;
    let (_dir, store) = store().await;
    let runs = [
        searchable(
            ("default", "build", "b", 1),
            JobPhase::Succeeded,
            "",
            &[("team", "web")],
            "busybox:latest",
        ),
        searchable(
            ("default", "build", "b", 2),
            JobPhase::Failed,
            "error: undefined reference to `main'",
            &[("team", "web")],
            "busybox:latest",
        ),
        searchable(
            ("default", "test", "t", 3),
            JobPhase::Failed,
            "FAILED tests/test_api.py::test_login",
            &[("team", "api"), ("orcaops.dev/node", "x")],
            "python:3.12",
        ),
        searchable(
            ("other", "build", "o", 4),
            JobPhase::Failed,
            "error: undefined reference to `start'",
            &[("team", "web")],
            "busybox@sha256:abc",
        ),
        searchable(
            ("other", "lint", "l", 5),
            JobPhase::TimedOut,
            "",
            &[],
            "busyboxy:1",
        ),
    ];
    for r in &runs {
        store.put_run(r).await.unwrap();
    }
    let mut anomalous = runs[2].clone();
    anomalous.anomalies = vec![crate::resources::anomaly::Anomaly {
        kind: crate::resources::anomaly::AnomalyKind::NewFailure,
        run: 3,
        observed: "failed".into(),
        baseline: "5 successes".into(),
        message: "failed after 5 successes".into(),
    }];
    // Stored again (as a record is, once more is known): replaced, and indexed once.
    store.put_run(&anomalous).await.unwrap();

    let found = |q: RunQuery| {
        let store = store.clone();
        async move {
            let q = RunQuery { limit: 100, ..q };
            store
                .search_runs(&q)
                .await
                .unwrap()
                .iter()
                .map(|r| r.run)
                .collect::<Vec<u32>>()
        }
    };
    assert_eq!(
        found(RunQuery::default()).await,
        [5, 4, 3, 2, 1],
        "newest first"
    );
    let ns = |s: &str| Some(s.to_string());
    assert_eq!(
        found(RunQuery {
            namespace: ns("other"),
            ..Default::default()
        })
        .await,
        [5, 4]
    );
    assert_eq!(
        found(RunQuery {
            name: ns("build"),
            ..Default::default()
        })
        .await,
        [4, 2, 1]
    );
    assert_eq!(
        found(RunQuery {
            phase: ns("Failed"),
            ..Default::default()
        })
        .await,
        [4, 3, 2]
    );
    assert_eq!(
        found(RunQuery {
            since: Some(at(3)),
            until: Some(at(5)),
            ..Default::default()
        })
        .await,
        [3, 2],
        "by completion time: run n ends at minute n + 1"
    );
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        found(RunQuery {
            labels: labels(&[("team", "web")]),
            ..Default::default()
        })
        .await,
        [4, 2, 1]
    );
    assert_eq!(
        found(RunQuery {
            labels: labels(&[("team", "api"), ("orcaops.dev/node", "x")]),
            ..Default::default()
        })
        .await,
        [3],
        "a key with dots and a slash"
    );
    assert_eq!(
        found(RunQuery {
            image: ns("busybox"),
            ..Default::default()
        })
        .await,
        [4, 2, 1],
        "not busyboxy"
    );
    assert_eq!(
        found(RunQuery {
            image: ns("python:3.12"),
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        found(RunQuery {
            anomalous: true,
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        found(RunQuery {
            grep: ns("undefined reference"),
            ..Default::default()
        })
        .await,
        [4, 2]
    );
    assert_eq!(
        found(RunQuery {
            grep: ns("undefined reference"),
            namespace: ns("default"),
            ..Default::default()
        })
        .await,
        [2]
    );
    assert_eq!(
        found(RunQuery {
            grep: ns("test_login"),
            ..Default::default()
        })
        .await,
        [3],
        "once, though stored twice"
    );
    assert_eq!(
        found(RunQuery {
            grep: ns("tail of lint"),
            ..Default::default()
        })
        .await,
        [5],
        "output tails too"
    );
    assert_eq!(
        found(RunQuery {
            grep: ns("reference main"),
            ..Default::default()
        })
        .await,
        Vec::<u32>::new(),
        "a phrase, in order"
    );
    // What a person types is searched for, never read as FTS5 syntax.
    for hostile in ["\"", "x* OR", "NEAR(", "'; DROP TABLE runs; --", "::", ""] {
        let q = RunQuery {
            grep: ns(hostile),
            limit: 10,
            ..Default::default()
        };
        store
            .search_runs(&q)
            .await
            .unwrap_or_else(|e| panic!("{hostile:?}: {e}"));
    }
    assert_eq!(
        found(RunQuery::default()).await.len(),
        5,
        "nothing was dropped"
    );
    assert_eq!(
        store
            .search_runs(&RunQuery {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_workflow_nodes_runs_are_found_across_its_jobs_by_an_index() {
    let (_dir, store) = store().await;
    let node = |name: &str, uid: &str, n: u32, workflow: &str, node: &str| {
        searchable(
            ("default", name, uid, n),
            JobPhase::Succeeded,
            "",
            &[
                ("orcaops.dev/workflow", workflow),
                ("orcaops.dev/node", node),
            ],
            "busybox",
        )
    };
    // Each workflow run made a Job of its own name for node `test`.
    for r in [
        node("ci-r1-test", "u1", 1, "ci", "test"),
        node("ci-r2-test", "u2", 2, "ci", "test"),
        node("ci-r2-build", "u3", 3, "ci", "build"),
        node("nightly-r1-test", "u4", 4, "nightly", "test"),
        node("ci-r3-test", "u5", 5, "ci", "test"),
    ] {
        store.put_run(&r).await.unwrap();
    }
    let names = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.node_runs("default", "ci", "test", 10).await.unwrap()),
        ["ci-r3-test", "ci-r2-test", "ci-r1-test"],
        "newest first, other nodes and workflows left out"
    );
    assert_eq!(
        store
            .node_runs("default", "ci", "test", 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .node_runs("other", "ci", "test", 10)
            .await
            .unwrap()
            .is_empty()
    );

    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {}",
        super::super::records::NODE_RUNS
    )))
    .bind("default")
    .bind("ci")
    .bind("test")
    .bind(10_i64)
    .fetch_all(&store.inner.readers)
    .await
    .unwrap();
    let plan: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
    assert!(
        plan.iter().any(|p| p.contains("runs_by_workflow_node")),
        "the node's runs are read by the index, not a scan: {plan:?}"
    );
}

#[tokio::test]
async fn usage_rows_are_the_runs_of_a_period_with_their_usage_and_workflow() {
    use crate::resources::job::Usage;
    let (_dir, store) = store().await;
    let mut measured = run("u1", 1, Some(0), Some(2));
    measured.usage = Some(Usage {
        cpu_millis: Some(1500),
        peak_memory_bytes: Some(64 << 20),
        output_bytes: 10,
    });
    measured.phase = JobPhase::Failed;
    let mut node = run("u2", 1, Some(10), Some(12));
    node.namespace = "team-a".into();
    node.name = "ci-1-test".into();
    node.context = Some(crate::records::RunContext {
        spec_hash: String::new(),
        spec: serde_json::Value::Null,
        trigger: "workflow".into(),
        source: None,
        labels: [("orcaops.dev/workflow".to_string(), "ci".to_string())].into(),
        image: "busybox".into(),
        image_id: None,
    });
    let late = run("u1", 2, Some(30), Some(40));
    for r in [&measured, &node, &late] {
        store.put_run(r).await.unwrap();
    }

    let rows = store.usage_rows(None, None, None).await.unwrap();
    assert_eq!(rows.len(), 3);
    let first = rows
        .iter()
        .find(|r| r.name == "build" && r.start_time == Some(at(0)))
        .unwrap();
    assert_eq!(first.phase, "Failed");
    assert_eq!(first.cpu_millis, Some(1500));
    assert_eq!(first.peak_memory_bytes, Some(64 << 20));
    assert_eq!(first.completion_time, Some(at(2)));
    let ci = rows.iter().find(|r| r.name == "ci-1-test").unwrap();
    assert_eq!(ci.workflow.as_deref(), Some("ci"));
    assert_eq!(ci.group(), "workflow/ci");

    // By workspace, and by the time each run ended.
    let team = store.usage_rows(Some("team-a"), None, None).await.unwrap();
    assert_eq!(team.len(), 1);
    let window = store
        .usage_rows(None, Some(at(5)), Some(at(20)))
        .await
        .unwrap();
    assert_eq!(window.len(), 1, "{window:?}");
    assert_eq!(window[0].name, "ci-1-test");
}

#[tokio::test]
async fn an_explanation_is_added_to_a_recorded_run_and_nothing_else_changes() {
    let (_dir, store) = store().await;
    let mut failed = run("u1", 1, Some(0), Some(1));
    failed.phase = JobPhase::Failed;
    failed.summary = "step test exited with code 2".into();
    store.put_run(&failed).await.unwrap();
    store
        .set_run_explanation("u1", 1, "The test step panicked.")
        .await
        .unwrap();
    // A run that was never recorded stays unrecorded.
    store.set_run_explanation("u1", 9, "nothing").await.unwrap();
    let runs = store.runs("default", "build").await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].explanation.as_deref(),
        Some("The test step panicked.")
    );
    assert_eq!(
        RunRecord {
            explanation: None,
            ..runs[0].clone()
        },
        failed
    );
}
