//! Approvals, re-run modes and cancelling.

use super::*;

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
