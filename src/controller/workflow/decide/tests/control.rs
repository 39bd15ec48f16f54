//! Approvals, re-run modes, cancelling, `until` loops, run records and the scheduler.

use super::*;

impl Fixture {
    fn annotate(&mut self, key: &str, value: &str) {
        self.obs
            .meta
            .annotations
            .insert(key.to_string(), value.to_string());
    }

    fn events_of(d: &Decision, reason: &str) -> Vec<String> {
        d.events
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.message.clone())
            .collect()
    }

    fn created_names(&self) -> Vec<String> {
        self.created()
            .iter()
            .map(|o| o.metadata.name.clone())
            .collect()
    }

    fn at(&mut self, h: u32, m: u32, s: u32) {
        self.obs.now = Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap();
    }
}

const GATED: &str = "jobs:\n\
     - {name: build, job: JOB}\n\
     - {name: deploy, needs: [build], approval: {message: 'Deploy ${{ jobs.build.outputs.version }}?'}, job: JOB}\n\
     - {name: after, needs: [deploy], job: JOB}\n";

#[test]
fn an_approval_node_waits_then_runs_once_approved_for_its_run() {
    let mut f = Fixture::new(&spec(GATED));
    f.step();
    f.finish("build", JobPhase::Succeeded, &[("version", "1.2")]);
    let d = f.step();
    assert_eq!(f.node("deploy").phase, NodePhase::WaitingApproval);
    assert_eq!(f.node("deploy").message.as_deref(), Some("Deploy 1.2?"));
    assert_eq!(d.status.phase, WorkflowPhase::WaitingApproval);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(
        Fixture::events_of(&d, "ApprovalRequested"),
        ["node deploy of run 1 waits for approval: Deploy 1.2?"]
    );
    assert!(
        d.status
            .summary
            .as_deref()
            .unwrap()
            .contains("1 waiting for approval (deploy)"),
        "{:?}",
        d.status.summary
    );
    let again = f.step();
    assert!(Fixture::events_of(&again, "ApprovalRequested").is_empty());

    // A decision for another run does not count.
    f.annotate(
        keys::APPROVALS,
        r#"{"run": 2, "nodes": {"deploy": {"approved": true, "by": "alice"}}}"#,
    );
    f.step();
    assert_eq!(f.node("deploy").phase, NodePhase::WaitingApproval);

    f.annotate(
        keys::APPROVALS,
        r#"{"run": 1, "nodes": {"deploy": {"approved": true, "message": "ship it", "by": "alice"}}}"#,
    );
    let d = f.step();
    assert_eq!(f.running(), ["deploy"]);
    assert_eq!(d.status.phase, WorkflowPhase::Running);
    assert_eq!(
        Fixture::events_of(&d, "NodeApproved"),
        ["node deploy approved by alice: ship it"]
    );
    f.finish("deploy", JobPhase::Succeeded, &[]);
    f.step();
    assert_eq!(
        f.node("deploy").message.as_deref(),
        Some("approved by alice: ship it"),
        "who approved stays on the node"
    );
    f.finish("after", JobPhase::Succeeded, &[]);
    assert_eq!(f.step().status.phase, WorkflowPhase::Succeeded);
}

#[test]
fn a_rejection_fails_the_node_and_skips_what_follows() {
    let mut f = Fixture::new(&spec(GATED));
    f.step();
    f.finish("build", JobPhase::Succeeded, &[("version", "1.2")]);
    f.step();
    f.annotate(
        keys::APPROVALS,
        r#"{"run": 1, "nodes": {"deploy": {"approved": false, "message": "not today", "by": "bob"}}}"#,
    );
    let d = f.step();
    assert_eq!(f.node("deploy").phase, NodePhase::Failed);
    assert_eq!(
        f.node("deploy").message.as_deref(),
        Some("rejected by bob: not today")
    );
    assert_eq!(f.node("after").phase, NodePhase::Skipped);
    assert_eq!(d.status.phase, WorkflowPhase::Failed);
    assert_eq!(
        Fixture::events_of(&d, "NodeRejected"),
        ["node deploy rejected by bob: not today"]
    );
    assert!(!f.created_names().contains(&"ci-1-deploy".to_string()));
}

#[test]
fn a_matrix_is_approved_by_its_declared_name_or_one_combination_at_a_time() {
    let mut f = Fixture::new(&spec(
        "jobs:\n- {name: d, matrix: {env: [a, b]}, approval: {message: 'go ${{ matrix.env }}'}, job: JOB}\n",
    ));
    f.step();
    assert_eq!(f.node("d-env-b").message.as_deref(), Some("go b"));
    f.annotate(
        keys::APPROVALS,
        r#"{"run": 1, "nodes": {"d-env-b": {"approved": true, "by": "carol"}}}"#,
    );
    f.step();
    assert_eq!(f.running(), ["d-env-b"]);
    assert_eq!(f.node("d-env-a").phase, NodePhase::WaitingApproval);
    assert_eq!(f.obs.status.phase, WorkflowPhase::Running, "one node runs");
    f.annotate(
        keys::APPROVALS,
        r#"{"run": 1, "nodes": {"d": {"approved": true}}}"#,
    );
    f.step();
    assert_eq!(f.running(), ["d-env-b", "d-env-a"]);
    assert_eq!(
        f.node("d-env-a").message.as_deref(),
        Some("approved by someone")
    );
}

#[test]
fn an_unreadable_approvals_annotation_is_named_on_the_waiting_node() {
    let mut f = Fixture::new(&spec(GATED));
    f.annotate(keys::APPROVALS, "yes please");
    f.step();
    f.finish("build", JobPhase::Succeeded, &[("version", "1.2")]);
    f.step();
    let message = f.node("deploy").message.clone().unwrap();
    assert!(
        message.starts_with("Deploy 1.2? (annotation orcaops.dev/approvals cannot be read"),
        "{message}"
    );
    assert!(message.contains("write it as"), "{message}");
    assert_eq!(f.node("deploy").phase, NodePhase::WaitingApproval);
}

const CHAIN: &str = "failFast: false\njobs:\n\
     - {name: a, job: JOB}\n\
     - {name: b, needs: [a], job: {image: busybox:latest, steps: [{name: s, run: 'echo ${{ jobs.a.outputs.v }}'}]}}\n\
     - {name: c, needs: [b], job: JOB}\n\
     - {name: d, job: JOB}\n";

/// Run 1 of CHAIN: a and d succeed, b fails, c is skipped.
fn failed_chain() -> Fixture {
    let mut f = Fixture::new(&spec(CHAIN));
    f.step();
    f.finish("a", JobPhase::Succeeded, &[("v", "7")]);
    f.finish("d", JobPhase::Succeeded, &[]);
    f.step();
    f.finish("b", JobPhase::Failed, &[]);
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Failed);
    f
}

#[test]
fn rerun_failed_keeps_what_succeeded_and_runs_the_rest() {
    let mut f = failed_chain();
    let a_before = f.node("a").clone();
    f.annotate(keys::RERUN_MODE, "failed");
    f.annotate(keys::RERUN, "again");
    let d = f.step();
    assert_eq!(d.status.run, Some(2));
    assert_eq!(f.running(), ["b"], "only b starts; a and d are kept");
    let a = f.node("a");
    assert_eq!(a.phase, NodePhase::Succeeded);
    assert_eq!(a.job.as_deref(), Some("ci-1-a"));
    assert_eq!(a.outputs["v"], "7");
    assert_eq!(a.completion_time, a_before.completion_time);
    assert_eq!(a.message.as_deref(), Some("kept from run 1"));
    assert_eq!(f.node("d").phase, NodePhase::Succeeded);
    assert_eq!(
        f.script_of("ci-2-b"),
        "echo 7",
        "kept outputs feed what reruns"
    );
    assert!(
        Fixture::events_of(&d, "RunStarted")[0].contains("2 kept from earlier runs"),
        "{:?}",
        d.events
    );
    f.finish("b", JobPhase::Succeeded, &[]);
    f.step();
    f.finish("c", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Succeeded);
    assert_eq!(d.status.progress.as_deref(), Some("4/4"));
    let made: Vec<String> = f.created_names();
    assert_eq!(made, ["ci-1-a", "ci-1-d", "ci-1-b", "ci-2-b", "ci-2-c"]);

    // Kept again by later runs, a still names its run; its Job outlives the runs kept.
    for (n, token) in ["t3", "t4", "t5"].iter().enumerate() {
        f.annotate(keys::RERUN_MODE, "from=c");
        f.annotate(keys::RERUN, token);
        f.step();
        assert_eq!(f.running(), ["c"], "run {}", n + 3);
        f.finish("c", JobPhase::Succeeded, &[]);
        f.step();
    }
    assert_eq!(f.node("a").message.as_deref(), Some("kept from run 1"));
    assert_eq!(f.node("b").message.as_deref(), Some("kept from run 2"));
    assert!(
        f.obs.jobs.iter().any(|j| j.name == "ci-1-a"),
        "a kept node's Job is not swept"
    );
    assert!(
        !f.obs.jobs.iter().any(|j| j.name == "ci-2-c"),
        "an old run's Job is swept"
    );
}

#[test]
fn rerun_from_a_node_reruns_it_and_what_is_downstream() {
    let mut f = failed_chain();
    f.annotate(keys::RERUN_MODE, "from=a");
    f.annotate(keys::RERUN, "again");
    f.step();
    assert_eq!(f.running(), ["a"]);
    assert_eq!(f.node("d").message.as_deref(), Some("kept from run 1"));
    assert_eq!(f.node("b").phase, NodePhase::Pending);

    // A matrix combination reruns alone, with what follows its node.
    let mut g = Fixture::new(&spec(
        "jobs:\n- {name: m, matrix: {i: [1, 2]}, job: JOB}\n- {name: z, needs: [m], job: JOB}\n",
    ));
    g.step();
    g.finish("m-i-1", JobPhase::Succeeded, &[]);
    g.finish("m-i-2", JobPhase::Succeeded, &[]);
    g.step();
    g.finish("z", JobPhase::Succeeded, &[]);
    g.step();
    g.annotate(keys::RERUN_MODE, "from=m-i-2");
    g.annotate(keys::RERUN, "x");
    g.step();
    assert_eq!(g.running(), ["m-i-2"]);
    assert_eq!(g.node("m-i-1").phase, NodePhase::Succeeded);
    assert_eq!(g.node("z").phase, NodePhase::Pending);
}

#[test]
fn a_rerun_mode_naming_no_node_fails_the_run_at_start() {
    let mut f = failed_chain();
    f.annotate(keys::RERUN_MODE, "from=nope");
    f.annotate(keys::RERUN, "again");
    let d = f.step();
    assert_eq!(d.status.run, Some(2));
    assert_eq!(d.status.phase, WorkflowPhase::Failed);
    assert!(d.actions.is_empty());
    let summary = d.status.summary.unwrap();
    assert!(
        summary.contains(
            "re-run from node \"nope\", which this workflow does not have (its nodes: a, b, c, d)"
        ),
        "{summary}"
    );
    f.annotate(keys::RERUN_MODE, "everything");
    f.annotate(keys::RERUN, "again2");
    let d = f.step();
    let summary = d.status.summary.unwrap();
    assert!(
        summary.contains("write all, failed or from=<node>"),
        "{summary}"
    );
    // A rerun mode with a changed spec keeps nothing.
    f.obs.spec.jobs[3].job.steps[0].run = Some("echo new".into());
    f.annotate(keys::RERUN_MODE, "failed");
    f.annotate(keys::RERUN, "again3");
    let d = f.step();
    assert_eq!(f.running(), ["a", "d"]);
    assert_eq!(Fixture::events_of(&d, "RerunAll").len(), 1);
}

#[test]
fn the_cancel_annotation_cancels_the_current_run_only() {
    let mut f = Fixture::new(&spec(
        "jobs:\n- {name: a, job: JOB}\n- {name: b, needs: [a], job: JOB}\n",
    ));
    f.step();
    f.annotate(keys::CANCEL, "7");
    let d = f.step();
    assert_eq!(
        d.status.phase,
        WorkflowPhase::Running,
        "not the current run"
    );
    f.annotate(keys::CANCEL, "1");
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Cancelled);
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, WorkflowAction::DeleteJob { name, .. } if name == "ci-1-a"))
    );
    assert_eq!(f.node("b").phase, NodePhase::Cancelled);
    assert_eq!(
        f.node("b").message.as_deref(),
        Some("cancelled: orcaops.dev/cancel asked for it")
    );

    // `latest` is the run current when it is seen, not the runs after it.
    f.annotate(keys::RERUN, "r2");
    f.step();
    assert_eq!(f.obs.status.run, Some(2));
    f.annotate(keys::CANCEL, "latest");
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Cancelled);
    assert_eq!(d.status.cancel_latest_run, Some(2));
    f.annotate(keys::RERUN, "r3");
    let d = f.step();
    assert_eq!(d.status.run, Some(3));
    assert_eq!(
        d.status.phase,
        WorkflowPhase::Running,
        "run 3 is not cancelled"
    );
    assert_eq!(f.running(), ["a"]);
}

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
