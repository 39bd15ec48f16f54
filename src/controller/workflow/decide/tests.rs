//! The DAG rules, on fixtures: a small in-memory "store" of Jobs that the actions create
//! and delete, and Jobs finished by hand.

use chrono::TimeZone;

use super::*;

/// A Workflow `ci` (uid `u1`) with the spec in `yaml`, and the Jobs made for it so far.
struct Fixture {
    obs: Observed,
    /// Every decision's actions, in order.
    log: Vec<WorkflowAction>,
    /// The run records written, in order.
    records: Vec<WorkflowRunRecord>,
}

impl Fixture {
    fn new(yaml: &str) -> Self {
        let spec: WorkflowSpec = serde_saphyr::from_str(yaml).expect("a valid spec");
        let meta = ObjectMeta {
            name: "ci".into(),
            namespace: Some("default".into()),
            uid: "u1".into(),
            generation: 1,
            creation_timestamp: Some(Utc.with_ymd_and_hms(2026, 3, 1, 11, 0, 30).unwrap()),
            ..Default::default()
        };
        Fixture {
            obs: Observed {
                meta,
                spec,
                status: WorkflowStatus::default(),
                jobs: Vec::new(),
                now: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
            },
            log: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Decides, applies the actions to the Jobs, stores the status; returns the decision.
    fn step(&mut self) -> Decision {
        self.obs.now += chrono::TimeDelta::seconds(1);
        let d = decide(&self.obs);
        for action in &d.actions {
            match action {
                WorkflowAction::CreateJob(obj) => {
                    assert!(
                        !self.obs.jobs.iter().any(|j| j.name == obj.metadata.name),
                        "{} created twice",
                        obj.metadata.name
                    );
                    self.obs.jobs.push(NodeJob::from_object(obj, "u1"));
                }
                WorkflowAction::DeleteJob { name, .. } => self.obs.jobs.retain(|j| &j.name != name),
                WorkflowAction::RecordRun(record) => self.records.push((**record).clone()),
            }
        }
        self.log.extend(d.actions.clone());
        self.obs.status = d.status.clone();
        without_records(d)
    }

    /// The nodes whose Jobs exist and have not finished, in creation order.
    fn running(&self) -> Vec<String> {
        self.obs
            .jobs
            .iter()
            .filter(|j| !j.status.phase.is_finished())
            .filter_map(|j| j.node.clone())
            .collect()
    }

    fn finish(&mut self, node: &str, phase: JobPhase, outputs: &[(&str, &str)]) {
        let now = self.obs.now;
        let job = self
            .obs
            .jobs
            .iter_mut()
            .filter(|j| j.node.as_deref() == Some(node) && j.run == self.obs.status.run)
            .max_by_key(|j| j.iteration)
            .unwrap_or_else(|| panic!("no Job for {node}"));
        job.status.phase = phase;
        job.status.attempt = Some(1);
        job.status.start_time = Some(now - chrono::TimeDelta::seconds(1));
        job.status.completion_time = Some(now);
        job.status.outputs = outputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    fn node(&self, name: &str) -> &NodeStatus {
        self.obs
            .status
            .nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn created(&self) -> Vec<&Object> {
        self.log
            .iter()
            .filter_map(|a| match a {
                WorkflowAction::CreateJob(obj) => Some(obj.as_ref()),
                _ => None,
            })
            .collect()
    }

    fn script_of(&self, job: &str) -> String {
        let obj = self
            .created()
            .into_iter()
            .find(|o| o.metadata.name == job)
            .unwrap_or_else(|| panic!("{job} was not created"));
        let spec: JobSpec = serde_json::from_value(obj.spec.clone()).unwrap();
        spec.steps[0].run.clone().unwrap()
    }
}

/// A decision's Job actions (the run records are checked apart).
fn without_records(mut d: Decision) -> Decision {
    d.actions
        .retain(|a| !matches!(a, WorkflowAction::RecordRun(_)));
    d
}

/// Decides, without storing anything.
fn decide_jobs(obs: &Observed) -> Decision {
    without_records(decide(obs))
}

const JOB: &str = "{image: busybox:latest, steps: [{name: s, run: 'true'}]}";

fn spec(nodes: &str) -> String {
    nodes.replace("JOB", JOB)
}

#[test]
fn a_diamond_runs_in_order_of_its_needs() {
    let mut f = Fixture::new(&spec(
        "jobs:\n\
         - {name: a, job: JOB}\n\
         - {name: b, needs: [a], job: JOB}\n\
         - {name: c, needs: [a], job: JOB}\n\
         - {name: d, needs: [b, c], job: JOB}\n",
    ));
    let d = f.step();
    assert_eq!(f.running(), ["a"]);
    assert_eq!(d.status.phase, WorkflowPhase::Running);
    assert_eq!(d.status.run, Some(1));
    assert_eq!(d.status.progress.as_deref(), Some("0/4"));
    assert!(d.events.iter().any(|e| e.reason == "RunStarted"));
    assert_eq!(d.requeue_after, Some(POLL));

    f.finish("a", JobPhase::Succeeded, &[]);
    f.step();
    assert_eq!(f.running(), ["b", "c"]);
    f.finish("b", JobPhase::Succeeded, &[]);
    f.step();
    assert_eq!(f.running(), ["c"], "d waits for c");
    f.finish("c", JobPhase::Succeeded, &[]);
    f.step();
    assert_eq!(f.running(), ["d"]);
    f.finish("d", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Succeeded);
    assert_eq!(d.status.progress.as_deref(), Some("4/4"));
    assert_eq!(
        d.status.summary.as_deref(),
        Some("run 1 succeeded: 4 succeeded")
    );
    assert_eq!(d.status.history.len(), 1);
    assert_eq!(d.requeue_after, None);
    assert_eq!(f.node("d").job.as_deref(), Some("ci-1-d"));
    assert_eq!(f.node("d").attempts, Some(1));
    // Finished: deciding again changes nothing.
    let again = f.step();
    assert!(again.actions.is_empty());
    assert_eq!(again.status, d.status);
}

#[test]
fn a_matrix_expands_with_include_and_exclude_and_renders_each_combination() {
    let mut f = Fixture::new(
        "jobs:\n- {name: test, matrix: {shard: [1, 2, 3], exclude: [{shard: 2}], include: [{shard: 4}]}, \
         job: {image: busybox:latest, steps: [{name: t, run: 'echo shard ${{ matrix.shard }}'}]}}\n",
    );
    f.step();
    assert_eq!(
        f.running(),
        ["test-shard-1", "test-shard-3", "test-shard-4"]
    );
    assert_eq!(f.script_of("ci-1-test-shard-3"), "echo shard 3");
    let job = f.created()[0];
    assert_eq!(job.metadata.labels[keys::LABEL_NODE], "test-shard-1");
    assert_eq!(job.metadata.labels[keys::LABEL_WORKFLOW], "ci");
    assert_eq!(job.metadata.labels[keys::LABEL_WORKFLOW_RUN], "1");
    assert_eq!(job.metadata.owner_references[0]["uid"], "u1");
    assert_eq!(job.metadata.owner_references[0]["controller"], true);
    assert_eq!(job.metadata.namespace.as_deref(), Some("default"));
}

#[test]
fn max_parallel_bounds_a_matrix_and_concurrency_the_whole_run() {
    let mut f = Fixture::new(&spec(
        "jobs:\n\
         - {name: m, matrix: {i: [1, 2, 3, 4, 5]}, maxParallel: 2, job: JOB}\n",
    ));
    f.step();
    assert_eq!(f.running(), ["m-i-1", "m-i-2"]);
    f.finish("m-i-1", JobPhase::Succeeded, &[]);
    f.step();
    assert_eq!(f.running(), ["m-i-2", "m-i-3"]);

    let mut f = Fixture::new(&spec(
        "concurrency: 3\njobs:\n\
         - {name: a, job: JOB}\n- {name: b, job: JOB}\n- {name: c, job: JOB}\n- {name: d, job: JOB}\n",
    ));
    f.step();
    assert_eq!(f.running(), ["a", "b", "c"]);
    f.finish("b", JobPhase::Succeeded, &[]);
    f.step();
    assert_eq!(f.running(), ["a", "c", "d"]);
}

#[test]
fn a_false_if_skips_the_node_and_what_needs_it() {
    let mut f = Fixture::new(&spec(
        "inputs: [{name: ref, default: main}]\njobs:\n\
         - {name: deploy, if: \"inputs.ref == 'release'\", job: JOB}\n\
         - {name: notify, needs: [deploy], job: JOB}\n\
         - {name: lint, if: \"inputs.ref == 'main'\", job: JOB}\n",
    ));
    let d = f.step();
    assert_eq!(f.running(), ["lint"]);
    assert_eq!(f.node("deploy").phase, NodePhase::Skipped);
    assert_eq!(
        f.node("deploy").message.as_deref(),
        Some("if `inputs.ref == 'release'` is false")
    );
    assert_eq!(f.node("notify").phase, NodePhase::Skipped);
    assert_eq!(
        f.node("notify").message.as_deref(),
        Some("needs deploy was skipped")
    );
    assert_eq!(d.status.progress.as_deref(), Some("2/3"));
    f.finish("lint", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(
        d.status.phase,
        WorkflowPhase::Succeeded,
        "skipped by if is not a failure"
    );
}

#[test]
fn a_failed_need_skips_downstream_while_the_rest_goes_on_without_fail_fast() {
    let mut f = Fixture::new(&spec(
        "failFast: false\njobs:\n\
         - {name: a, job: JOB}\n- {name: b, needs: [a], job: JOB}\n- {name: c, job: JOB}\n\
         - {name: d, needs: [c], job: JOB}\n",
    ));
    f.step();
    f.finish("a", JobPhase::Failed, &[]);
    f.step();
    assert_eq!(f.node("a").phase, NodePhase::Failed);
    assert_eq!(f.node("b").phase, NodePhase::Skipped);
    assert_eq!(f.node("b").message.as_deref(), Some("needs a failed"));
    f.finish("c", JobPhase::Succeeded, &[]);
    f.step();
    assert_eq!(f.running(), ["d"], "the independent branch goes on");
    f.finish("d", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Failed);
    assert_eq!(
        d.status.summary.as_deref(),
        Some("run 1 failed: 2 succeeded, 1 failed (a), 1 skipped")
    );
    assert!(d.events.iter().any(|e| e.reason == "RunFailed"));
}

#[test]
fn continue_on_error_lets_the_dag_go_on_and_the_run_succeed() {
    let mut f = Fixture::new(&spec(
        "jobs:\n- {name: a, continueOnError: true, job: JOB}\n- {name: b, needs: [a], job: JOB}\n",
    ));
    f.step();
    f.finish("a", JobPhase::Failed, &[]);
    f.step();
    assert_eq!(f.running(), ["b"]);
    f.finish("b", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Succeeded);
}

#[test]
fn fail_fast_starts_nothing_new_and_lets_running_nodes_finish() {
    let mut f = Fixture::new(&spec(
        "concurrency: 2\njobs:\n- {name: a, job: JOB}\n- {name: b, job: JOB}\n- {name: c, job: JOB}\n",
    ));
    f.step();
    assert_eq!(f.running(), ["a", "b"]);
    f.finish("a", JobPhase::TimedOut, &[]);
    let d = f.step();
    assert!(d.actions.is_empty(), "b is not stopped: {:?}", d.actions);
    assert_eq!(f.running(), ["b"]);
    assert_eq!(f.node("a").phase, NodePhase::Failed);
    assert_eq!(f.node("c").phase, NodePhase::Skipped);
    assert_eq!(f.node("c").message.as_deref(), Some("failFast: a failed"));
    assert_eq!(d.status.phase, WorkflowPhase::Running);
    f.finish("b", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(d.status.phase, WorkflowPhase::Failed);
}

#[test]
fn outputs_of_upstream_nodes_are_rendered_into_later_jobs() {
    let mut f = Fixture::new(
        "jobs:\n- {name: build, job: {image: busybox:latest, steps: [{name: b, run: 'true'}]}}\n\
         - {name: test, needs: [build], if: \"jobs.build.outputs.version.startsWith('1.')\", \
         job: {image: busybox:latest, steps: [{name: t, run: 'echo ${{ jobs.build.outputs.version }} ${{ jobs.build.phase }}'}]}}\n",
    );
    f.step();
    f.finish("build", JobPhase::Succeeded, &[("version", "1.2")]);
    f.step();
    assert_eq!(f.node("build").outputs["version"], "1.2");
    assert_eq!(f.script_of("ci-1-test"), "echo 1.2 Succeeded");
}

#[test]
fn a_template_that_cannot_render_fails_the_node_with_the_field() {
    let mut f = Fixture::new(
        "jobs:\n- {name: a, job: {image: busybox:latest, steps: [{name: s, run: 'true'}]}}\n\
         - {name: b, needs: [a], job: {image: busybox:latest, steps: [{name: s, run: 'echo ${{ jobs.a.outputs.nope }}'}]}}\n",
    );
    f.step();
    f.finish("a", JobPhase::Succeeded, &[]);
    f.step();
    let b = f.node("b");
    assert_eq!(b.phase, NodePhase::Failed);
    assert!(
        b.message
            .as_deref()
            .unwrap()
            .starts_with("job.steps[0].run:"),
        "{b:?}"
    );
}

#[test]
fn a_restart_mid_run_continues_the_same_run_without_a_second_job() {
    let mut f = Fixture::new(&spec(
        "jobs:\n- {name: a, job: JOB}\n- {name: b, job: JOB}\n- {name: c, needs: [a, b], job: JOB}\n",
    ));
    f.step();
    f.finish("a", JobPhase::Succeeded, &[]);
    // A restarted controller decides from the store alone: the same status, the same Jobs.
    let d = f.step();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.run, Some(1));
    assert_eq!(f.node("a").phase, NodePhase::Succeeded);

    // A crash after a Job was created but before the status said so: the stored status
    // is from before, and the Job is adopted by its name.
    let before = f.obs.status.clone();
    f.finish("b", JobPhase::Succeeded, &[]);
    let made = decide_jobs(&f.obs);
    assert_eq!(made.actions.len(), 1, "c is created");
    if let WorkflowAction::CreateJob(obj) = &made.actions[0] {
        f.obs.jobs.push(NodeJob::from_object(obj, "u1"));
    }
    f.obs.status = before;
    let d = f.step();
    assert!(d.actions.is_empty(), "no second Job for c: {:?}", d.actions);
    assert_eq!(f.node("c").phase, NodePhase::Running);
    assert_eq!(f.node("c").job.as_deref(), Some("ci-1-c"));

    // A crash before run 1 was even recorded: its Job exists, the status is empty.
    let mut g = Fixture::new(&spec("jobs:\n- {name: a, job: JOB}\n"));
    let first = decide_jobs(&g.obs);
    if let WorkflowAction::CreateJob(obj) = &first.actions[0] {
        g.obs.jobs.push(NodeJob::from_object(obj, "u1"));
    }
    let d = g.step();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.run, Some(1));
    assert_eq!(g.node("a").phase, NodePhase::Running);
}

#[test]
fn a_job_of_an_earlier_workflow_of_the_same_name_is_deleted_not_adopted() {
    let mut f = Fixture::new(&spec("jobs:\n- {name: a, job: JOB}\n"));
    let old = job_object(
        &ObjectMeta {
            uid: "old".into(),
            ..f.obs.meta.clone()
        },
        1,
        "a",
        "ci-1-a",
        &JobSpec::default(),
    );
    f.obs.jobs.push(NodeJob::from_object(&old, "u1"));
    let d = decide_jobs(&f.obs);
    assert_eq!(
        d.actions,
        vec![WorkflowAction::DeleteJob {
            name: "ci-1-a".into(),
            why: "it belongs to an earlier Workflow of this name"
        }],
        "the node waits for the name to be free"
    );
    // A Job that only carries the label is not ours to delete.
    let mut stray = job_object(&f.obs.meta, 1, "x", "stray", &JobSpec::default());
    stray.metadata.owner_references.clear();
    let stray = NodeJob::from_object(&stray, "u1");
    assert!(!stray.owned && !stray.foreign);
}

#[test]
fn a_changed_spec_replaces_the_run_and_a_rerun_waits_under_forbid() {
    let mut f = Fixture::new(&spec(
        "jobs:\n- {name: a, job: JOB}\n- {name: b, needs: [a], job: JOB}\n",
    ));
    f.step();
    // A re-run asked while run 1 is in progress waits for it (Forbid, the default).
    f.obs
        .meta
        .annotations
        .insert(keys::RERUN.into(), "t1".into());
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    assert!(
        d.status.summary.as_deref().unwrap().contains("run 2 waits"),
        "{:?}",
        d.status.summary
    );
    f.finish("a", JobPhase::Succeeded, &[]);
    f.step();
    f.finish("b", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert_eq!(
        d.status.run,
        Some(2),
        "the re-run starts once run 1 is over"
    );
    assert_eq!(d.status.history[0].run, 1);
    assert_eq!(f.running(), ["a"]);

    // A changed spec cancels run 2 (its running Job deleted) and starts run 3.
    f.obs.spec.jobs[0].job.steps[0].run = Some("echo changed".into());
    f.obs.meta.generation = 2;
    let d = f.step();
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, WorkflowAction::DeleteJob { name, .. } if name == "ci-2-a"))
    );
    assert_eq!(d.status.run, Some(3));
    assert_eq!(d.status.history[0].run, 2);
    assert_eq!(d.status.history[0].phase, WorkflowPhase::Cancelled);
    assert_eq!(f.running(), ["a"]);
    assert_eq!(f.script_of("ci-3-a"), "echo changed");
}

#[test]
fn suspend_holds_the_first_run_and_resuming_continues_the_same_run() {
    let mut f = Fixture::new(&spec(
        "suspend: true\njobs:\n- {name: a, job: JOB}\n- {name: b, needs: [a], job: JOB}\n",
    ));
    let d = f.step();
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, WorkflowPhase::Suspended);
    assert_eq!(d.status.run, None);
    f.obs.spec.suspend = false;
    f.step();
    assert_eq!(f.running(), ["a"]);
    // Suspended mid-run: a finishes, b does not start; resumed: b starts in the same run.
    f.obs.spec.suspend = true;
    f.finish("a", JobPhase::Succeeded, &[]);
    let d = f.step();
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, WorkflowPhase::Suspended);
    f.obs.spec.suspend = false;
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    assert_eq!(f.running(), ["b"]);
}

#[test]
fn a_scheduled_workflow_starts_no_run_before_its_tick_but_a_rerun_runs_at_once() {
    let mut f = Fixture::new(&spec(
        "schedule: '0 3 * * *'\njobs:\n- {name: a, job: JOB}\n",
    ));
    let d = f.step();
    assert!(d.actions.is_empty());
    let next = Utc.with_ymd_and_hms(2026, 3, 2, 3, 0, 0).unwrap();
    assert_eq!(
        d.status,
        WorkflowStatus::default(),
        "nothing is written before the first run"
    );
    assert_eq!(
        d.requeue_after,
        Some((next - f.obs.now).to_std().unwrap()),
        "woken at the tick"
    );
    f.obs
        .meta
        .annotations
        .insert(keys::RERUN.into(), "now".into());
    let d = f.step();
    assert_eq!(d.status.run, Some(1));
    assert_eq!(f.running(), ["a"]);
}

#[test]
fn old_runs_jobs_are_deleted_beyond_the_runs_kept() {
    let mut f = Fixture::new(&spec("jobs:\n- {name: a, job: JOB}\n"));
    for run in 1..=RUNS_KEPT + 1 {
        f.obs
            .meta
            .annotations
            .insert(keys::RERUN.into(), format!("t{run}"));
        f.step();
        assert_eq!(f.obs.status.run, Some(run));
        f.finish("a", JobPhase::Succeeded, &[]);
        f.step();
    }
    let runs: Vec<u32> = f.obs.jobs.iter().filter_map(|j| j.run).collect();
    assert_eq!(runs, (2..=RUNS_KEPT + 1).collect::<Vec<_>>());
}

#[test]
fn the_status_of_a_500_node_matrix_stays_small() {
    let mut f = Fixture::new(&spec(
        "jobs:\n- {name: m, matrix: {a: [0,1,2,3,4,5,6,7,8,9], b: [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49]}, job: JOB}\n",
    ));
    f.step();
    let names: Vec<String> = f.running();
    for node in names {
        f.finish(&node, JobPhase::Succeeded, &[("k", "v")]);
    }
    let d = f.step();
    assert_eq!(d.status.progress.as_deref(), Some("500/500"));
    let bytes = serde_json::to_vec(&d.status).unwrap().len();
    assert!(bytes < 256 * 1024, "{bytes} bytes");
}

#[test]
fn a_rerun_takes_its_inputs_from_the_annotation_and_refuses_unknown_ones() {
    let mut f = Fixture::new(
        "inputs: [{name: ref, default: main}, {name: mode, default: fast}]\n\
         jobs:\n- {name: a, job: {image: busybox:latest, steps: [{name: s, run: 'echo ${{ inputs.ref }} ${{ inputs.mode }}'}]}}\n",
    );
    f.step();
    assert_eq!(f.script_of("ci-1-a"), "echo main fast");
    f.finish("a", JobPhase::Succeeded, &[]);
    f.obs
        .meta
        .annotations
        .insert(keys::INPUTS.into(), r#"{"ref": "dev"}"#.into());
    f.step();
    assert_eq!(f.obs.status.run, Some(1), "inputs alone start nothing");
    f.obs
        .meta
        .annotations
        .insert(keys::RERUN.into(), "1".into());
    let d = f.step();
    assert_eq!(d.status.run, Some(2));
    assert_eq!(d.status.inputs["ref"], "dev");
    assert_eq!(f.script_of("ci-2-a"), "echo dev fast");
    f.finish("a", JobPhase::Succeeded, &[]);
    f.step();

    f.obs
        .meta
        .annotations
        .insert(keys::INPUTS.into(), r#"{"branch": "x"}"#.into());
    f.obs
        .meta
        .annotations
        .insert(keys::RERUN.into(), "2".into());
    let d = f.step();
    assert_eq!(d.status.run, Some(3));
    assert_eq!(d.status.phase, WorkflowPhase::Failed);
    assert!(d.actions.is_empty());
    let summary = d.status.summary.unwrap();
    assert!(summary.contains("gives input \"branch\""), "{summary}");
}

mod control;
mod overlap;
mod runs;

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
