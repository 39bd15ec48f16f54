use super::*;

const JOB: &str = "\
apiVersion: orcaops.dev/v1alpha1
kind: Job
metadata:
  name: build
spec:
  image: alpine:3.20
  steps:
    - name: compile
      run: make
";

/// The only error of a one-document text.
fn error_of(text: &str) -> DocumentError {
    let mut results = parse_documents("jobs/build.yaml", text);
    assert_eq!(results.len(), 1, "{results:?}");
    results
        .remove(0)
        .expect_err("the document should be refused")
}

fn object_of(text: &str) -> Object {
    let mut results = parse_documents("jobs/build.yaml", text);
    assert_eq!(results.len(), 1, "{results:?}");
    results.remove(0).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_job_parses_into_a_normalized_object() {
    let obj = object_of(JOB);
    assert_eq!(obj.kind, Kind::Job);
    assert_eq!(obj.api_version, API_VERSION);
    assert_eq!(obj.metadata.name, "build");
    assert_eq!(obj.metadata.namespace.as_deref(), Some(DEFAULT_WORKSPACE));
    assert_eq!(
        obj.spec,
        serde_json::json!({"image": "alpine:3.20", "steps": [{"name": "compile", "run": "make"}]})
    );
    let typed: crate::resources::Job = obj.typed().unwrap();
    assert_eq!(typed.spec.steps[0].run.as_deref(), Some("make"));
}

#[test]
fn output_of_get_is_accepted_again() {
    let text = "\
apiVersion: orcaops.dev/v1alpha1
kind: Job
metadata:
  name: build
  namespace: team-a
  uid: 0b6c1a9e
  resourceVersion: \"12\"
  generation: 3
  creationTimestamp: 2024-01-01T00:00:00Z
  labels: {app: web}
  annotations: {note: hello}
spec:
  image: alpine
  steps: [{name: a, run: x}]
status:
  phase: Succeeded
";
    let obj = object_of(text);
    assert_eq!(obj.metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(obj.metadata.labels["app"], "web");
    assert_eq!(obj.metadata.annotations["note"], "hello");
    assert_eq!(obj.metadata.generation, 0);
    assert!(obj.status.is_null());
}

#[test]
fn a_broken_document_in_the_middle_hides_nothing() {
    let text = format!(
        "{JOB}---\napiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: bad\nspec:\n  image: \"unclosed\n  steps: []\n---\n{}",
        JOB.replace("build", "test")
    );
    let results = parse_documents("jobs/all.yaml", &text);
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap().metadata.name, "build");
    assert_eq!(results[2].as_ref().unwrap().metadata.name, "test");
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.document, 2);
    // The document starts on line 11 of the file; the bad quote runs into line 17.
    assert!(err.line.unwrap() >= 16 && err.line.unwrap() <= 17, "{err}");
    assert!(err.message.starts_with("invalid YAML"), "{err}");
    assert_eq!(err.kind, Some(Kind::Job));
    assert_eq!(err.name.as_deref(), Some("bad"));
}

#[test]
fn unknown_field_suggests_the_closest_and_points_at_it() {
    let text = format!(
        "# the build\n{JOB}---\n{}",
        JOB.replace("run: make", "comand: [make]")
    );
    let results = parse_documents("jobs/build.yaml", &text);
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.document, 2);
    assert_eq!((err.line, err.column), (Some(20), Some(7)), "{err}");
    assert_eq!(err.field.as_deref(), Some("spec.steps[0].comand"));
    assert_eq!(
        err.message,
        "unknown field \"comand\", did you mean \"command\"?"
    );
    assert_eq!(err.fix.as_deref(), Some("rename \"comand\" to \"command\""));
    assert_eq!(
        err.to_string(),
        "jobs/build.yaml:20:7: document 2 (Job default/build): spec.steps[0].comand: unknown field \"comand\", \
         did you mean \"command\"?\n  fix: rename \"comand\" to \"command\""
    );
}

#[test]
fn unknown_field_without_a_close_match_lists_the_known_ones() {
    let err = error_of(&JOB.replace("run: make", "shell: make"));
    assert!(
        err.message
            .contains("known fields here: name, run, command"),
        "{err}"
    );
}

#[test]
fn wrong_type_says_what_was_expected_and_found() {
    let err = error_of(&JOB.replace(
        "  steps:\n    - name: compile\n      run: make\n",
        "  steps: \"echo hi\"\n",
    ));
    assert_eq!(err.field.as_deref(), Some("spec.steps"));
    assert_eq!((err.line, err.column), (Some(7), Some(10)));
    assert_eq!(err.message, "expected a list, found the text \"echo hi\"");
    assert!(
        err.fix
            .as_deref()
            .unwrap()
            .contains("make \"steps\" a list"),
        "{err}"
    );

    let err = error_of(&JOB.replace(
        "  image: alpine:3.20\n",
        "  image: alpine\n  timeoutSeconds: ten\n",
    ));
    assert_eq!(err.field.as_deref(), Some("spec.timeoutSeconds"));
    assert!(err.message.starts_with("expected a whole number"), "{err}");
    assert!(err.message.ends_with("found the text \"ten\""), "{err}");
}

#[test]
fn a_misspelt_spec_is_an_unknown_field_not_a_missing_spec() {
    let err = error_of(&JOB.replace("spec:", "sepc:"));
    assert_eq!(err.field.as_deref(), Some("sepc"));
    assert!(err.message.contains("did you mean \"spec\""), "{err}");
}

#[test]
fn a_shell_line_as_command_suggests_a_list_or_run() {
    let err = error_of(&JOB.replace("run: make", "command: make test"));
    assert_eq!(
        err.fix.as_deref(),
        Some(
            "write the command as a list ([\"make\", \"test\"]), or use `run: make test` for a shell line"
        )
    );
}

#[test]
fn unknown_enum_value_suggests_the_closest() {
    let err = error_of(&JOB.replace(
        "  image: alpine:3.20\n",
        "  image: alpine\n  network: brige\n",
    ));
    assert_eq!(err.field.as_deref(), Some("spec.network"));
    assert!(err.message.contains("did you mean \"bridge\""), "{err}");
}

#[test]
fn missing_required_field_names_it() {
    let err = error_of(&JOB.replace("  image: alpine:3.20\n", ""));
    assert_eq!(err.field.as_deref(), Some("spec.image"));
    assert_eq!(err.message, "missing required field \"image\"");
    assert_eq!(err.line, Some(6));
}

#[test]
fn bad_api_version_names_the_right_one() {
    let err = error_of(&JOB.replace("orcaops.dev/v1alpha1", "orcaops.dev/v1"));
    assert_eq!(err.field.as_deref(), Some("apiVersion"));
    assert_eq!((err.line, err.column), (Some(1), Some(1)));
    assert!(err.message.contains("orcaops.dev/v1alpha1"), "{err}");
    assert_eq!(
        err.fix.as_deref(),
        Some("set `apiVersion: orcaops.dev/v1alpha1`")
    );

    let err = error_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    assert!(err.message.contains("not an orcaops resource"), "{err}");

    let err = error_of(&JOB.replace("apiVersion: orcaops.dev/v1alpha1\n", ""));
    assert_eq!(err.message, "missing apiVersion");
    assert_eq!(err.line, Some(1));
}

#[test]
fn unknown_kind_lists_the_kinds_and_suggests_the_closest() {
    let err = error_of(&JOB.replace("kind: Job", "kind: Jbo"));
    assert_eq!(err.field.as_deref(), Some("kind"));
    assert_eq!((err.line, err.column), (Some(2), Some(1)));
    assert!(err.message.contains("did you mean \"Job\""), "{err}");
    assert!(
        err.message
            .contains("Job, Workflow, Sandbox, SandboxTemplate, Workspace, Policy"),
        "{err}"
    );
    assert_eq!(err.fix.as_deref(), Some("set `kind: Job`"));

    let err = error_of(&JOB.replace("kind: Job", "kind: jobs"));
    assert!(err.message.contains("did you mean \"Job\""), "{err}");
}

#[test]
fn missing_name_and_missing_spec_are_reported() {
    let err = error_of(&JOB.replace("  name: build\n", "  labels: {a: b}\n"));
    assert_eq!(err.field.as_deref(), Some("metadata.name"));
    assert_eq!(err.line, Some(3));

    let err = error_of("apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: build\n");
    assert_eq!(err.field.as_deref(), Some("spec"));
    assert!(err.message.starts_with("missing spec"), "{err}");

    // A Workspace's spec is all optional, so it may be left out.
    let obj =
        object_of("apiVersion: orcaops.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: team-a\n");
    assert_eq!(obj.metadata.namespace, None);
}

#[test]
fn cluster_scoped_kind_with_a_namespace_is_refused() {
    let text = "apiVersion: orcaops.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: strict\n  namespace: team-a\nspec:\n  mode: Audit\n";
    let err = error_of(text);
    assert_eq!(err.field.as_deref(), Some("metadata.namespace"));
    assert_eq!((err.line, err.column), (Some(5), Some(3)));
    assert!(err.message.contains("cluster-scoped"), "{err}");
    assert_eq!(err.fix.as_deref(), Some("remove metadata.namespace"));
}

#[test]
fn validation_errors_carry_the_line_of_their_field() {
    let text = JOB.replace(
        "      run: make\n",
        "      run: make\n    - name: compile\n      run: make test\n",
    );
    let err = error_of(&text);
    assert_eq!(err.field.as_deref(), Some("spec.steps[1].name"));
    assert_eq!((err.line, err.column), (Some(10), Some(7)), "{err}");
    assert!(err.message.contains("used twice"), "{err}");
}

#[test]
fn every_validation_problem_is_reported() {
    let text = JOB.replace(
        "  image: alpine:3.20\n",
        "  image: alpine\n  resources: {cpu: lots, memory: 1Gi}\n  timeoutSeconds: 0\n",
    );
    let err = error_of(&text);
    let fields: Vec<_> = err.problems().map(|e| e.field.clone().unwrap()).collect();
    assert_eq!(fields, ["spec.resources.cpu", "spec.timeoutSeconds"]);
    assert_eq!(err.line, Some(7));
    assert_eq!(err.also[0].line, Some(8));
    assert_eq!(
        err.to_string()
            .lines()
            .filter(|l| l.starts_with("jobs/build.yaml:"))
            .count(),
        2
    );
}

#[test]
fn empty_comment_only_and_null_documents_are_skipped() {
    let text = format!("# header\n---\n\n---\n~\n---\n{JOB}---\n# trailing\n");
    let results = parse_documents("f.yaml", &text);
    assert_eq!(results.len(), 1);
    assert!(results[0].is_ok());
}

#[test]
fn a_document_that_is_not_a_mapping_is_refused() {
    let err = error_of("- a\n- b\n");
    assert!(err.message.contains("must be a mapping"), "{err}");
    assert_eq!(err.line, Some(1));
}

#[test]
fn duplicate_keys_are_refused() {
    let err = error_of(&JOB.replace("  image: alpine:3.20\n", "  image: a\n  image: b\n"));
    assert!(
        err.message.contains("duplicate mapping key `image`"),
        "{err}"
    );
    assert_eq!(err.line, Some(7));
    assert_eq!(err.name.as_deref(), Some("build"));
}

#[test]
fn binary_garbage_is_one_clear_error() {
    let results = parse_bytes(
        "blob.yaml",
        &[0x7f, b'E', b'L', b'F', 0, 0, 0xff, 0xfe, 0x00],
    );
    assert_eq!(results.len(), 1);
    let err = results[0].as_ref().unwrap_err();
    assert_eq!(err.document, 0);
    assert!(err.message.contains("not UTF-8"), "{err}");
    assert!(
        err.to_string()
            .starts_with("blob.yaml:1:7: the file is not UTF-8"),
        "{err}"
    );

    let results = parse_bytes("nul.yaml", b"a: 1\n\0\0\0");
    let err = results[0].as_ref().unwrap_err();
    assert!(err.message.contains("NUL"), "{err}");
    assert_eq!(err.line, Some(2));
}

#[test]
fn a_huge_file_is_refused_with_its_size_and_the_limit() {
    let bytes = vec![b'#'; MAX_FILE_BYTES + 1];
    let results = parse_bytes("huge.yaml", &bytes);
    assert_eq!(results.len(), 1);
    let err = results[0].as_ref().unwrap_err();
    assert!(
        err.message.contains(&(MAX_FILE_BYTES + 1).to_string()),
        "{err}"
    );
    assert!(err.message.contains(&MAX_FILE_BYTES.to_string()), "{err}");
}

#[test]
fn bytes_that_are_text_parse_normally() {
    let results = parse_bytes("f.yaml", format!("\u{feff}{JOB}").as_bytes());
    assert_eq!(results.len(), 1);
    assert!(results[0].is_ok(), "{results:?}");
}

#[test]
fn a_quoted_true_stays_text() {
    let obj = object_of(&JOB.replace("run: make", "run: 'true'"));
    assert_eq!(obj.spec["steps"][0]["run"], "true");
}
