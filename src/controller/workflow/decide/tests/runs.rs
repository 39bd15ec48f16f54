//! `until` loops, run records and the scheduler.

use super::*;

const LOOP: &str = "jobs:\n\
     - {name: w, until: {expression: \"outputs.ready == 'yes'\", limit: 3, delaySeconds: 5}, job: JOB}\n\
     - {name: next, needs: [w], job: JOB}\n";

#[test]
fn until_repeats_a_node_with_a_job_per_iteration_until_its_outputs_say_so() {
    let mut f = Fixture::new(&spec(LOOP));
    f.step();
    assert_eq!(f.node("w").iterations, Some(1));
    f.finish("w", JobPhase::Succeeded, &[("ready", "no")]);
    let d = f.step();
    assert!(d.actions.is_empty(), "the delay first: {:?}", d.actions);
    assert_eq!(f.node("w").phase, NodePhase::Running);
    assert_eq!(f.node("w").outputs["ready"], "no");
    assert!(
        f.node("w")
            .message
            .as_deref()
            .unwrap()
            .contains("iteration 2 at"),
        "{:?}",
        f.node("w").message
    );
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_secs(4)),
        "woken when the delay is over"
    );

    f.obs.now += chrono::TimeDelta::seconds(4);
    let d = f.step();
    assert_eq!(d.actions.len(), 1);
    let WorkflowAction::CreateJob(job) = &d.actions[0] else {
        panic!("{:?}", d.actions)
    };
    assert_eq!(job.metadata.name, "ci-1-w-i2");
    assert_eq!(job.metadata.labels[keys::LABEL_ITERATION], "2");
    assert_eq!(job.metadata.labels[keys::LABEL_NODE], "w");
    assert_eq!(f.node("w").iterations, Some(2));
    assert_eq!(f.node("w").job.as_deref(), Some("ci-1-w-i2"));

    // A restart before the status said so adopts iteration 2, and makes no third.
    let mut restarted = f.obs.clone();
    restarted.status.nodes[0].iterations = Some(1);
    restarted.status.nodes[0].job = Some("ci-1-w".into());
    let d = decide_jobs(&restarted);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.nodes[0].iterations, Some(2));

    f.finish("w", JobPhase::Succeeded, &[("ready", "yes")]);
    f.step();
    let w = f.node("w");
    assert_eq!(w.phase, NodePhase::Succeeded);
    assert_eq!(w.iterations, Some(2));
    assert_eq!(
        w.message.as_deref(),
        Some("until `outputs.ready == 'yes'` was true after 2 iterations")
    );
    assert_eq!(f.running(), ["next"]);
}

#[test]
fn until_fails_the_node_at_its_limit_or_when_an_iteration_fails() {
    let mut f = Fixture::new(&spec(
        &LOOP.replace("limit: 3, delaySeconds: 5", "limit: 2"),
    ));
    f.step();
    f.finish("w", JobPhase::Succeeded, &[("ready", "no")]);
    f.step();
    f.finish("w", JobPhase::Succeeded, &[("ready", "no")]);
    let d = f.step();
    assert_eq!(f.node("w").phase, NodePhase::Failed);
    assert_eq!(
        f.node("w").message.as_deref(),
        Some("until `outputs.ready == 'yes'` was still false after 2 iterations, its limit")
    );
    assert_eq!(d.status.phase, WorkflowPhase::Failed);

    let mut g = Fixture::new(&spec(LOOP));
    g.step();
    g.finish("w", JobPhase::Failed, &[]);
    g.step();
    assert_eq!(g.node("w").phase, NodePhase::Failed);
    assert!(
        g.node("w")
            .message
            .as_deref()
            .unwrap()
            .starts_with("iteration 1: ")
    );
}

#[test]
fn iteration_job_names_are_deterministic_and_bounded() {
    assert_eq!(iteration_job_name("ci", 1, "w", 1), "ci-1-w");
    assert_eq!(iteration_job_name("ci", 1, "w", 12), "ci-1-w-i12");
    let long = iteration_job_name(&"x".repeat(40), 3, &"n".repeat(30), 9);
    assert!(
        long.len() <= crate::resources::validate::MAX_JOB_NAME,
        "{long}"
    );
    assert_ne!(
        long,
        iteration_job_name(&"x".repeat(40), 3, &"n".repeat(30), 10)
    );
}

#[test]
fn a_record_is_written_when_a_run_starts_and_when_it_ends() {
    let mut f = Fixture::new(&spec("jobs:\n- {name: a, job: JOB}\n"));
    f.step();
    f.step();
    assert_eq!(f.records.len(), 1, "one record as the run starts");
    let first = &f.records[0];
    assert_eq!((first.run, first.phase), (1, WorkflowPhase::Running));
    assert_eq!(first.trigger, "spec");
    assert_eq!(first.nodes[0].phase, NodePhase::Running);
    f.finish("a", JobPhase::Succeeded, &[]);
    f.step();
    f.step();
    assert_eq!(f.records.len(), 2, "and one as it ends");
    let end = &f.records[1];
    assert_eq!((end.run, end.phase), (1, WorkflowPhase::Succeeded));
    assert_eq!(end.nodes[0].phase, NodePhase::Succeeded);
    assert!(end.completion_time.is_some());
    assert_eq!((end.uid.as_str(), end.name.as_str()), ("u1", "ci"));

    f.annotate(keys::RERUN, &format!("{}abc", keys::RUN_TOKEN_PREFIX));
    f.step();
    assert_eq!(f.records.last().unwrap().trigger, "api");
    f.finish("a", JobPhase::Succeeded, &[]);
    f.annotate(keys::RERUN, "by-hand");
    f.step();
    let runs: Vec<(u32, &str)> = f
        .records
        .iter()
        .map(|r| (r.run, r.trigger.as_str()))
        .collect();
    assert_eq!(
        runs,
        [
            (1, "spec"),
            (1, "spec"),
            (2, "api"),
            (2, "api"),
            (3, "rerun")
        ]
    );
    assert_eq!(
        trigger_name("rerun=x/schedule=2026-03-01T12:00:00Z"),
        "schedule"
    );
    // Each record keeps the token that started its run (a retried Idempotency-Key finds
    // its run by it); the spec's run has none, and neither has a tick.
    let tokens: Vec<Option<&str>> = f.records.iter().map(|r| r.token.as_deref()).collect();
    let api = format!("{}abc", keys::RUN_TOKEN_PREFIX);
    assert_eq!(
        tokens,
        [
            None,
            None,
            Some(api.as_str()),
            Some(api.as_str()),
            Some("by-hand")
        ]
    );
    assert_eq!(run_token("s1a2b3/rerun=run-k"), Some("run-k"));
    assert_eq!(run_token("rerun=run-k/schedule=2026-03-01T12:00:00Z"), None);
}

const SCHEDULED: &str = "schedule: '*/5 * * * *'\njobs:\n- {name: a, job: JOB}\n";

#[test]
fn a_schedule_starts_a_run_per_tick_and_one_catch_up_run_after_an_outage() {
    // Created at 11:00:30 and first seen at 12:00:01: eleven ticks were missed; one runs.
    let mut f = Fixture::new(&spec(SCHEDULED));
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    let tick = |h, m| Some(Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).unwrap());
    assert_eq!(d.status.last_schedule_time, tick(12, 0));
    assert_eq!(d.status.next_schedule_time, tick(12, 5));
    assert_eq!(
        Fixture::events_of(&d, "Scheduled"),
        [
            "the tick of 2026-03-01T12:00:00Z starts run 1 (11 earlier ticks were missed; they do not run)"
        ]
    );
    assert_eq!(f.records[0].trigger, "schedule");
    // A restart decides the same: no second run for the tick.
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    assert!(d.actions.is_empty());

    // Under Forbid, a tick while run 1 goes on waits for it.
    f.at(12, 5, 1);
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    assert!(
        d.status
            .summary
            .as_deref()
            .unwrap()
            .contains("the tick of 2026-03-01T12:05:00Z waits"),
        "{:?}",
        d.status.summary
    );
    f.at(12, 11, 0);
    f.finish("a", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(
        d.status.run,
        Some(2),
        "the latest waiting tick runs once run 1 ends"
    );
    assert_eq!(d.status.last_schedule_time, tick(12, 10));
    f.finish("a", JobPhase::Succeeded, &[]);
    f.step();

    // Down from 12:12 to 13:02: one catch-up run, not a burst.
    f.at(13, 2, 0);
    let d = f.step();
    assert_eq!(d.status.run, Some(3));
    assert_eq!(f.running(), ["a"]);
    let d = f.step();
    assert_eq!(d.status.run, Some(3));
}

#[test]
fn a_tick_past_its_starting_deadline_is_reported_and_not_run() {
    let mut f = Fixture::new(&spec(&format!("startingDeadlineSeconds: 60\n{SCHEDULED}")));
    f.at(12, 3, 0);
    let d = f.step();
    assert_eq!(d.status.run, None);
    assert_eq!(
        Fixture::events_of(&d, "MissedSchedule"),
        [
            "the tick of 2026-03-01T12:00:00Z does not run: it is more than startingDeadlineSeconds (60) late"
        ]
    );
    assert_eq!(
        d.status.last_schedule_time,
        Some(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap())
    );
    let d = f.step();
    assert!(
        Fixture::events_of(&d, "MissedSchedule").is_empty(),
        "reported once"
    );
    f.at(12, 5, 30);
    assert_eq!(f.step().status.run, Some(1));
}

#[test]
fn under_replace_a_tick_cancels_the_run_in_progress() {
    let mut f = Fixture::new(&spec(&format!("concurrencyPolicy: Replace\n{SCHEDULED}")));
    f.step();
    f.at(12, 5, 2);
    let d = f.step();
    assert_eq!(d.status.run, Some(2));
    assert_eq!(d.status.history[0].phase, WorkflowPhase::Cancelled);
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, WorkflowAction::DeleteJob { name, .. } if name == "ci-1-a"))
    );
    assert_eq!(f.running(), ["a"]);
    assert_eq!(f.node("a").job.as_deref(), Some("ci-2-a"));
}

#[test]
fn a_suspended_schedule_runs_the_latest_missed_tick_once_resumed() {
    let mut f = Fixture::new(&spec(&format!("suspend: true\n{SCHEDULED}")));
    let d = f.step();
    assert_eq!(d.status.run, None);
    f.at(12, 20, 0);
    f.obs.spec.suspend = false;
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    assert_eq!(
        d.status.last_schedule_time,
        Some(Utc.with_ymd_and_hms(2026, 3, 1, 12, 20, 0).unwrap())
    );
}

#[test]
fn a_suspended_workflow_under_replace_keeps_its_run_through_a_tick() {
    let mut f = Fixture::new(&spec(&format!("concurrencyPolicy: Replace\n{SCHEDULED}")));
    f.step();
    f.obs.spec.suspend = true;
    f.at(12, 5, 2);
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    assert_eq!(d.status.phase, WorkflowPhase::Suspended);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
}

#[test]
fn a_record_follows_the_run_as_its_nodes_change_and_only_then() {
    let mut f = Fixture::new(&spec(
        "concurrencyPolicy: Allow\njobs:\n- {name: a, job: JOB}\n- {name: b, needs: [a], job: JOB}\n",
    ));
    f.step();
    assert_eq!(f.records.len(), 1, "as the run starts");
    f.step();
    assert_eq!(f.records.len(), 1, "nothing changed, nothing written");

    f.finish("a", JobPhase::Succeeded, &[("v", "1")]);
    f.step();
    assert_eq!(f.records.len(), 2, "a finished and b started: written");
    let mid = f.records.last().unwrap();
    assert_eq!((mid.run, mid.phase), (1, WorkflowPhase::Running));
    assert_eq!(mid.progress, "1/2");
    let phases: Vec<(&str, NodePhase)> = mid
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.phase))
        .collect();
    assert_eq!(
        phases,
        [("a", NodePhase::Succeeded), ("b", NodePhase::Running)]
    );
    assert_eq!(mid.nodes[0].outputs["v"], "1");
    assert_eq!(mid.nodes[1].job.as_deref(), Some("ci-1-b"));

    // A run beside a newer one (Allow) is recorded as its nodes change too.
    f.annotate(keys::RERUN, "t1");
    f.step();
    let before = f.records.len();
    f.step();
    assert_eq!(f.records.len(), before, "nothing changed");
    let current = f.obs.status.run;
    f.obs.status.run = Some(1);
    f.finish("b", JobPhase::Failed, &[]);
    f.obs.status.run = current;
    f.step();
    let ended = f.records.last().unwrap();
    assert_eq!((ended.run, ended.phase), (1, WorkflowPhase::Failed));
    f.finish("a", JobPhase::Succeeded, &[]);
    f.step();
    let run2 = f.records.last().unwrap();
    assert_eq!((run2.run, run2.phase), (2, WorkflowPhase::Running));
    assert_eq!(run2.progress, "1/2");
}

#[test]
fn a_workflow_with_a_webhook_runs_only_for_a_delivery_and_records_it() {
    let hooked = "triggers:\n- webhook: {secretRef: {name: hook, key: token}}\njobs:\n- {name: a, job: JOB}\n";
    let mut f = Fixture::new(&spec(hooked));
    let d = f.step();
    assert_eq!(d.status.run, None, "applying it starts nothing");
    assert!(d.actions.is_empty());
    let token = format!("{}delivery-1", keys::HOOK_TOKEN_PREFIX);
    f.annotate(keys::RERUN, &token);
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    assert_eq!(f.records[0].trigger, "webhook");
    assert_eq!(f.records[0].token.as_deref(), Some(token.as_str()));
}
