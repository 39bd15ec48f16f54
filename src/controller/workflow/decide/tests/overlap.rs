//! Overlapping runs (`concurrencyPolicy: Allow`): each run with its own Jobs, bounded by
//! `maxActiveRuns`, cancelled and approved one by one.

use super::*;

const ALLOW: &str = "concurrencyPolicy: Allow\n\
     jobs:\n- {name: a, job: JOB}\n- {name: b, needs: [a], job: JOB}\n";

impl Fixture {
    /// Finishes the Job of `node` in run `run` (not necessarily the current one).
    fn finish_in(&mut self, run: u32, node: &str, phase: JobPhase) {
        let current = self.obs.status.run;
        self.obs.status.run = Some(run);
        self.finish(node, phase, &[]);
        self.obs.status.run = current;
    }

    fn active(&self) -> Vec<u32> {
        self.obs.status.active_runs.iter().map(|r| r.run).collect()
    }

    fn ask_run(&mut self, token: &str) -> Decision {
        self.annotate(keys::RERUN, token);
        self.step()
    }

    fn condition(
        &self,
        type_: WorkflowConditionType,
    ) -> Option<&crate::resources::common::Condition<WorkflowConditionType>> {
        self.obs.status.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[test]
fn under_allow_runs_overlap_each_with_its_own_jobs() {
    let mut f = Fixture::new(&spec(ALLOW));
    f.step();
    assert_eq!(f.running(), ["a"]);
    let d = f.ask_run("t1");
    assert_eq!(
        d.status.run,
        Some(2),
        "run 2 starts while run 1 is in progress"
    );
    assert_eq!(f.active(), [1]);
    assert_eq!(f.obs.status.runs_in_progress(), [1, 2]);
    assert_eq!(f.created_names(), ["ci-1-a", "ci-2-a"]);
    let labels = &f.created()[1].metadata.labels;
    assert_eq!(labels[keys::LABEL_WORKFLOW_RUN], "2");
    assert_eq!(f.obs.status.active_runs[0].phase, WorkflowPhase::Running);
    assert_eq!(
        f.obs.status.active_runs[0].nodes.len(),
        1,
        "pending b is left out"
    );

    // Run 1 goes on by its own Jobs, while run 2 is the current one.
    f.finish_in(1, "a", JobPhase::Succeeded);
    f.step();
    assert_eq!(f.created_names(), ["ci-1-a", "ci-2-a", "ci-1-b"]);
    let older = &f.obs.status.active_runs[0];
    assert_eq!(older.progress.as_deref(), Some("1/2"));
    assert_eq!(f.obs.status.progress.as_deref(), Some("0/2"));

    // Run 1 ends: out of activeRuns, into the history and its record.
    f.finish_in(1, "b", JobPhase::Failed);
    let d = f.step();
    assert!(f.active().is_empty());
    assert_eq!(d.status.run, Some(2));
    assert_eq!(d.status.phase, WorkflowPhase::Running);
    assert_eq!(d.status.history[0].run, 1);
    assert_eq!(d.status.history[0].phase, WorkflowPhase::Failed);
    assert!(
        d.status.conditions.is_empty(),
        "run 1's end does not mark the current run"
    );
    let record = f.records.iter().rev().find(|r| r.run == 1).unwrap();
    assert_eq!(record.phase, WorkflowPhase::Failed);
    assert_eq!(record.nodes.len(), 2);

    f.finish("a", JobPhase::Succeeded, &[]);
    f.step();
    f.finish("b", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Succeeded);
    assert_eq!(d.requeue_after, None, "nothing is in progress any more");
}

#[test]
fn beyond_max_active_runs_a_new_run_waits_and_says_why() {
    let mut f = Fixture::new(&spec(&format!("maxActiveRuns: 2\n{ALLOW}")));
    f.step();
    f.ask_run("t1");
    let d = f.ask_run("t2");
    assert_eq!(d.status.run, Some(2), "a third run waits");
    assert_eq!(f.active(), [1]);
    let waiting = f.condition(WorkflowConditionType::RunWaiting).unwrap();
    assert_eq!(waiting.status, ConditionStatus::True);
    assert_eq!(waiting.reason, "MaxActiveRuns");
    assert!(
        waiting
            .message
            .contains("2 runs are in progress (1, 2), the most spec.maxActiveRuns (2) allows"),
        "{}",
        waiting.message
    );
    assert!(
        d.status
            .summary
            .as_deref()
            .unwrap()
            .contains("a new run waits"),
        "{:?}",
        d.status.summary
    );

    // Run 1 ends: the waiting run starts beside run 2.
    f.finish_in(1, "a", JobPhase::Succeeded);
    f.step();
    f.finish_in(1, "b", JobPhase::Succeeded);
    let d = f.step();
    assert_eq!(d.status.run, Some(3));
    assert_eq!(f.active(), [2]);
    assert!(f.created_names().contains(&"ci-3-a".to_string()));
    let waiting = f.condition(WorkflowConditionType::RunWaiting).unwrap();
    assert_eq!(waiting.status, ConditionStatus::False);
}

#[test]
fn five_runs_at_once_by_default_and_their_jobs_are_not_swept_as_old() {
    let mut f = Fixture::new(&spec(ALLOW));
    f.step();
    for token in ["t1", "t2", "t3", "t4", "t5"] {
        f.ask_run(token);
    }
    assert_eq!(f.obs.status.run, Some(5));
    assert_eq!(f.active(), [1, 2, 3, 4]);
    assert_eq!(
        f.obs.jobs.len(),
        5,
        "run 1's Job is kept while run 1 is in progress, though 4 runs started since"
    );
    assert!(
        !f.log
            .iter()
            .any(|a| matches!(a, WorkflowAction::DeleteJob { .. })),
        "{:?}",
        f.log
    );
}

#[test]
fn a_given_run_is_cancelled_and_the_others_go_on() {
    let mut f = Fixture::new(&spec(ALLOW));
    f.step();
    f.ask_run("t1");
    f.ask_run("t2");
    assert_eq!(f.obs.status.runs_in_progress(), [1, 2, 3]);

    f.annotate(keys::CANCEL, "2");
    let d = f.step();
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, WorkflowAction::DeleteJob { name, .. } if name == "ci-2-a")),
        "{:?}",
        d.actions
    );
    assert_eq!(f.obs.status.runs_in_progress(), [1, 3]);
    assert_eq!(d.status.history[0].run, 2);
    assert_eq!(d.status.history[0].phase, WorkflowPhase::Cancelled);
    assert_eq!(d.status.phase, WorkflowPhase::Running, "run 3 goes on");
    let record = f.records.iter().rev().find(|r| r.run == 2).unwrap();
    assert_eq!(record.phase, WorkflowPhase::Cancelled);
    assert!(record.nodes.iter().all(|n| n.phase == NodePhase::Cancelled));

    // Several at once: the older one and the current one.
    f.annotate(keys::CANCEL, "1,3");
    let d = f.step();
    assert!(f.obs.status.runs_in_progress().is_empty());
    assert_eq!(d.status.phase, WorkflowPhase::Cancelled);
    assert_eq!(f.running(), Vec::<String>::new());
}

#[test]
fn an_approval_counts_for_the_run_it_names_among_overlapping_runs() {
    let gated = "concurrencyPolicy: Allow\njobs:\n\
         - {name: build, job: JOB}\n\
         - {name: deploy, needs: [build], approval: {message: 'go?'}, job: JOB}\n";
    let mut f = Fixture::new(&spec(gated));
    f.step();
    f.finish("build", JobPhase::Succeeded, &[]);
    f.step();
    f.ask_run("t1");
    f.finish("build", JobPhase::Succeeded, &[]);
    f.step();
    assert_eq!(f.node("deploy").phase, NodePhase::WaitingApproval);
    let older = f.obs.status.active_runs[0].clone();
    assert_eq!(older.phase, WorkflowPhase::WaitingApproval);

    // Decisions for both runs in one annotation (a list): run 1 approved, run 2 rejected.
    f.annotate(
        keys::APPROVALS,
        r#"[{"run": 1, "nodes": {"deploy": {"approved": true, "by": "ana"}}},
            {"run": 2, "nodes": {"deploy": {"approved": false, "by": "bob"}}}]"#,
    );
    let d = f.step();
    assert!(f.created_names().contains(&"ci-1-deploy".to_string()));
    assert!(!f.created_names().contains(&"ci-2-deploy".to_string()));
    assert_eq!(d.status.phase, WorkflowPhase::Failed, "run 2 rejected");
    assert_eq!(
        f.obs.status.active_runs[0].nodes[1].message.as_deref(),
        Some("approved by ana")
    );
}

#[test]
fn a_changed_spec_cancels_every_run_in_progress() {
    let mut f = Fixture::new(&spec(ALLOW));
    f.step();
    f.ask_run("t1");
    f.obs.spec.jobs[0].job.steps[0].run = Some("echo changed".into());
    let d = f.step();
    assert_eq!(d.status.run, Some(3));
    assert!(f.active().is_empty());
    let cancelled: Vec<u32> = d
        .status
        .history
        .iter()
        .filter(|h| h.phase == WorkflowPhase::Cancelled)
        .map(|h| h.run)
        .collect();
    assert_eq!(cancelled.len(), 2, "{:?}", d.status.history);
    assert_eq!(f.running(), ["a"]);
}

#[test]
fn under_allow_a_tick_starts_beside_the_run_in_progress() {
    let mut f = Fixture::new(&spec(&format!("schedule: '*/5 * * * *'\n{ALLOW}")));
    f.at(12, 0, 10);
    f.step();
    assert_eq!(f.obs.status.run, Some(1));
    f.at(12, 5, 1);
    let d = f.step();
    assert_eq!(d.status.run, Some(2));
    assert_eq!(f.active(), [1]);
}

#[test]
fn five_overlapping_runs_of_a_500_node_matrix_stay_small() {
    let mut f = Fixture::new(&spec(
        "concurrencyPolicy: Allow\njobs:\n- {name: m, matrix: {a: [0,1,2,3,4,5,6,7,8,9], b: [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49]}, job: JOB}\n",
    ));
    f.step();
    for token in ["t1", "t2", "t3", "t4"] {
        f.ask_run(token);
    }
    assert_eq!(f.obs.status.runs_in_progress().len(), 5);
    assert_eq!(f.obs.jobs.len(), 2500);
    let bytes = serde_json::to_vec(&f.obs.status).unwrap().len();
    assert!(bytes < 256 * 1024, "{bytes} bytes");
}
