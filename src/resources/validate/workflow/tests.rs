//! Each refusal of a bad Workflow, read through the real parser: the file, line and
//! column of the field, the field, what is wrong and the fix.

use crate::resources::parse::{DocumentError, parse_documents};

/// A Workflow `ci` whose `spec:` block is `spec` (indented by two).
fn problems(spec: &str) -> Vec<DocumentError> {
    let text = format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: ci\nspec:\n{spec}"
    );
    match parse_documents("ci.yaml", &text).remove(0) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems()
            .map(|p| DocumentError {
                also: Vec::new(),
                ..p.clone()
            })
            .collect(),
    }
}

/// The one problem of `spec`, displayed.
fn refused(spec: &str) -> String {
    let found = problems(spec);
    assert_eq!(found.len(), 1, "{found:#?}");
    found[0].to_string()
}

const OK: &str = "{image: busybox:latest, steps: [{name: s, run: 'true'}]}";

fn with_job(spec: &str) -> String {
    spec.replace("JOB", OK)
}

#[test]
fn a_good_workflow_passes() {
    let found = problems(&with_job(
        "  inputs: [{name: ref, default: main}]\n  schedule: '0 3 * * *'\n  timeZone: Europe/Paris\n  jobs:\n\
         \x20   - {name: build, job: JOB}\n\
         \x20   - {name: wait-ready, needs: [build], until: {expression: \"outputs.ready == 'yes'\", limit: 5}, job: JOB}\n\
         \x20   - name: test\n      needs: [wait-ready]\n      matrix: {shard: [1, 2], include: [{shard: 3}]}\n      maxParallel: 1\n\
         \x20     if: \"jobs['wait-ready'].outputs.ready == 'yes' && inputs.ref == 'main'\"\n\
         \x20     approval: {message: 'ship ${{ jobs.build.outputs.version }}?'}\n\
         \x20     job: {image: 'busybox:${{ inputs.ref }}', env: [{name: S, value: '${{ matrix.shard }}'}], steps: [{name: t, command: [echo, '${{ workflow.run }}']}]}\n",
    ));
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn a_bad_if_is_refused_at_its_line_and_column() {
    let e = refused(&with_job(
        "  jobs:\n    - name: a\n      if: \"inputs.ref ==\"\n      job: JOB\n",
    ));
    assert!(
        e.starts_with("ci.yaml:8:7: document 1 (Workflow default/ci): spec.jobs[0].if:"),
        "{e}"
    );
    assert!(e.contains("not a valid CEL expression"), "{e}");
    assert!(e.contains("fix:"), "{e}");
}

#[test]
fn an_unknown_variable_in_a_template_is_refused_at_its_step() {
    let e = refused(
        "  jobs:\n    - name: a\n      job:\n        image: busybox:latest\n        steps:\n          - name: s\n            run: echo ${{ secrets.token }}\n",
    );
    assert!(e.starts_with("ci.yaml:12:13:"), "{e}");
    assert!(e.contains("spec.jobs[0].job.steps[0].run"), "{e}");
    assert!(e.contains("unknown variable \"secrets\""), "{e}");
}

#[test]
fn a_node_that_is_unknown_or_not_upstream_is_refused() {
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, job: JOB}\n    - {name: b, if: \"jobs.a.phase == 'Succeeded'\", job: JOB}\n",
    ));
    assert!(e.starts_with("ci.yaml:8:"), "{e}");
    assert!(e.contains("node \"a\" is not upstream of \"b\""), "{e}");
    assert!(e.contains("add \"a\" to the needs of \"b\""), "{e}");
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, job: JOB}\n    - {name: b, needs: [a], if: \"jobs.z.phase == 'Succeeded'\", job: JOB}\n",
    ));
    assert!(e.contains("no node \"z\""), "{e}");
}

#[test]
fn unknown_inputs_and_matrix_keys_are_refused() {
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, if: \"inputs.ref == 'x'\", job: JOB}\n",
    ));
    assert!(e.contains("no input \"ref\""), "{e}");
    assert!(e.contains("spec.inputs"), "{e}");
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, matrix: {os: [linux]}, if: \"matrix.shard == '1'\", job: JOB}\n",
    ));
    assert!(e.contains("no key \"shard\" (it has os)"), "{e}");
}

#[test]
fn a_cycle_and_an_unknown_need_are_refused() {
    let found = problems(&with_job(
        "  jobs:\n    - {name: a, needs: [b], job: JOB}\n    - {name: b, needs: [a], job: JOB}\n    - {name: c, needs: [bulid], job: JOB}\n",
    ));
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(
        text.iter().any(|e| e.contains("spec.jobs[2].needs[0]")
            && e.contains("needs \"bulid\", which is not a job")),
        "{text:#?}"
    );
    assert!(
        text.iter()
            .any(|e| e.starts_with("ci.yaml:7:") && e.contains("a -> b -> a")),
        "{text:#?}"
    );
}

#[test]
fn matrix_mistakes_are_refused() {
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, matrix: {flag: [true]}, job: JOB}\n",
    ));
    assert!(e.contains("quote"), "{e}");
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, matrix: {os: [linux], exclude: [{arch: x}]}, job: JOB}\n",
    ));
    assert!(e.contains("exclude names \"arch\""), "{e}");
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, matrix: {os: [linux], exlude: [{os: linux}]}, job: JOB}\n",
    ));
    assert!(e.contains("did you mean \"exclude\""), "{e}");
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, matrix: {os: [linux], exclude: [{os: linux}]}, job: JOB}\n",
    ));
    assert!(e.contains("removes every combination"), "{e}");
    let e = refused(&with_job(
        "  jobs:\n    - {name: a, maxParallel: 2, job: JOB}\n",
    ));
    assert!(e.contains("no matrix"), "{e}");
    let e = refused(&with_job(
        "  jobs:\n    - {name: t, matrix: {a: [x]}, job: JOB}\n    - {name: t-a-x, job: JOB}\n",
    ));
    assert!(e.contains("would both be named \"t-a-x\""), "{e}");
}

#[test]
fn schedule_fields_are_checked() {
    let e = refused(&with_job(
        "  timeZone: Mars/Olympus\n  schedule: '@daily'\n  jobs: [{name: a, job: JOB}]\n",
    ));
    assert!(
        e.contains("spec.timeZone") && e.contains("not a time zone"),
        "{e}"
    );
    let e = refused(&with_job(
        "  startingDeadlineSeconds: 30\n  jobs: [{name: a, job: JOB}]\n",
    ));
    assert!(e.contains("without a schedule"), "{e}");
    let e = refused(&with_job(
        "  concurrencyPolicy: Sometimes\n  jobs: [{name: a, job: JOB}]\n",
    ));
    assert!(e.contains("Forbid"), "{e}");
    let found = problems(&with_job(
        "  jobs: [{name: a, until: {expression: \"output.x == '1'\", limit: 0}, job: JOB}]\n",
    ));
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(text[0].contains("spec.jobs[0].until.limit"), "{text:#?}");
    assert!(
        text[1].contains("spec.jobs[0].until.expression")
            && text[1].contains("inputs, matrix, jobs, workflow and outputs"),
        "{text:#?}"
    );
}

#[test]
fn max_active_runs_needs_allow_and_a_bound() {
    let jobs = with_job("  jobs: [{name: a, job: JOB}]\n");
    let e = refused(&format!("  maxActiveRuns: 3\n{jobs}"));
    assert!(e.contains("spec.maxActiveRuns:"), "{e}");
    assert!(e.contains("set concurrencyPolicy: Allow"), "{e}");
    let e = refused(&format!(
        "  concurrencyPolicy: Allow\n  maxActiveRuns: 0\n{jobs}"
    ));
    assert!(e.contains("use 1 to 10"), "{e}");
    let e = refused(&format!(
        "  concurrencyPolicy: Allow\n  maxActiveRuns: 11\n{jobs}"
    ));
    assert!(e.contains("out of range"), "{e}");
    assert!(
        problems(&format!(
            "  concurrencyPolicy: Allow\n  maxActiveRuns: 10\n{jobs}"
        ))
        .is_empty()
    );
}

#[test]
fn webhook_triggers_are_checked() {
    let hook = |webhook: &str| {
        with_job(&format!(
            "  inputs: [{{name: ref}}]\n  triggers:\n    - webhook: {webhook}\n  jobs: [{{name: a, job: JOB}}]\n"
        ))
    };
    let good = "{secretRef: {name: hook, key: token}, filter: \"body.ref == 'refs/heads/main'\", inputs: {ref: '${{ body.ref }}'}}";
    assert!(
        problems(&hook(good)).is_empty(),
        "{:#?}",
        problems(&hook(good))
    );

    let e = refused(&hook(
        "{secretRef: {name: hook, key: token}, filter: \"object.spec == 1\"}",
    ));
    assert!(
        e.contains("spec.triggers[0].webhook.filter") && e.contains("names `object`"),
        "{e}"
    );
    assert!(e.contains("`body`"), "the fix says what a filter sees: {e}");

    let e = refused(&hook(
        "{secretRef: {name: hook, key: token}, inputs: {branch: '${{ body.ref }}'}}",
    ));
    assert!(
        e.contains("spec.triggers[0].webhook.inputs.branch") && e.contains("it declares ref"),
        "{e}"
    );

    let e = refused(&hook(
        "{secretRef: {name: hook, key: token}, inputs: {ref: '${{ inputs.ref }}'}}",
    ));
    assert!(e.contains("names `inputs`"), "{e}");

    let e = refused(&hook("{secretRef: {name: '', key: token}}"));
    assert!(e.contains("secretRef") && e.contains("not named"), "{e}");

    let e = refused(&with_job(
        "  triggers: [{}]\n  jobs: [{name: a, job: JOB}]\n",
    ));
    assert!(
        e.contains("spec.triggers[0]") && e.contains("says nothing"),
        "{e}"
    );
}
