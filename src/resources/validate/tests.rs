use serde_json::{Value, json};

use super::*;

fn job(spec: Value) -> Object {
    Object::new(Kind::Job, "default", "build", spec)
}

fn simple_job() -> Value {
    json!({"image": "alpine", "steps": [{"name": "a", "run": "true"}]})
}

fn workflow(jobs: Value) -> Object {
    Object::new(
        Kind::Workflow,
        "default",
        "release",
        json!({ "jobs": jobs }),
    )
}

fn node(name: &str, needs: &[&str]) -> Value {
    json!({"name": name, "needs": needs, "job": simple_job()})
}

/// The fields of every problem, in order.
fn fields(obj: &Object) -> Vec<String> {
    validate(obj).into_iter().map(|e| e.field).collect()
}

fn only_error(obj: &Object) -> FieldError {
    let mut errors = validate(obj);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.remove(0)
}

#[test]
fn a_simple_job_is_valid() {
    assert_eq!(validate(&job(simple_job())), vec![]);
}

#[test]
fn names_must_be_dns_labels() {
    let mut obj = job(simple_job());
    obj.metadata.name = "Build_1".into();
    let e = only_error(&obj);
    assert_eq!(e.field, "metadata.name");
    assert!(e.message.contains("'B'"), "{e}");
    assert!(e.fix.contains("\"build-1\""), "{e}");

    obj.metadata.name = "b".repeat(53);
    let e = only_error(&obj);
    assert!(e.message.contains("at most 52"), "{e}");
    assert!(e.message.contains("63"), "{e}");

    obj.metadata.name = "ok".into();
    obj.metadata.namespace = Some("Team A".into());
    assert_eq!(only_error(&obj).field, "metadata.namespace");
}

#[test]
fn label_keys_and_values_are_checked() {
    let mut obj = job(simple_job());
    obj.metadata
        .labels
        .insert("example.com/team".into(), "web".into());
    obj.metadata.labels.insert("bad key".into(), "x".into());
    obj.metadata.labels.insert("ok".into(), "not ok!".into());
    assert_eq!(
        fields(&obj),
        ["metadata.labels[\"bad key\"]", "metadata.labels[\"ok\"]"]
    );
}

#[test]
fn duplicate_step_names_are_refused() {
    let obj = job(json!({"image": "alpine", "steps": [
        {"name": "test", "run": "a"}, {"name": "test", "run": "b"}
    ]}));
    let e = only_error(&obj);
    assert_eq!(e.field, "spec.steps[1].name");
    assert!(e.message.contains("\"test\" is used twice"), "{e}");
}

#[test]
fn each_step_has_exactly_one_of_run_and_command() {
    let obj = job(json!({"image": "alpine", "steps": [
        {"name": "both", "run": "a", "command": ["b"]},
        {"name": "neither"},
        {"name": "empty", "command": []},
        {"name": "Bad Name", "run": "x"},
    ]}));
    assert_eq!(
        fields(&obj),
        [
            "spec.steps[0]",
            "spec.steps[1]",
            "spec.steps[2].command",
            "spec.steps[3].name"
        ]
    );
}

#[test]
fn a_program_name_starting_with_a_dash_is_refused_with_its_path_as_the_fix() {
    let obj = job(json!({"image": "alpine", "steps": [
        {"name": "dash", "command": ["-rf", "x"]},
        {"name": "fine", "command": ["rm", "-rf", "x"]},
    ]}));
    let e = only_error(&obj);
    assert_eq!(e.field, "spec.steps[0].command[0]");
    assert!(e.message.contains("\"-rf\" starts with '-'"), "{e}");
    assert!(e.to_string().contains("./-rf"), "{e}");
}

#[test]
fn job_fields_are_checked() {
    let obj = job(json!({
        "image": "",
        "steps": [],
        "env": [{"name": "1X"}, {"name": "A"}, {"name": "A"}],
        "workingDir": "src",
        "resources": {"cpu": "lots", "memory": "12 parsecs"},
        "timeoutSeconds": 0,
        "retry": {"limit": 3, "backoffSeconds": 600, "maxBackoffSeconds": 60},
        "artifacts": [{"name": "../x", "path": "out"}, {"name": "r", "path": "/r"}, {"name": "r", "path": "/s"}],
        "ttlSecondsAfterFinished": 999_999_999_999u64,
    }));
    assert_eq!(
        fields(&obj),
        [
            "spec.image",
            "spec.steps",
            "spec.env[0].name",
            "spec.env[2].name",
            "spec.workingDir",
            "spec.resources.cpu",
            "spec.resources.memory",
            "spec.timeoutSeconds",
            "spec.retry.backoffSeconds",
            "spec.ttlSecondsAfterFinished",
            "spec.artifacts[0].name",
            "spec.artifacts[0].path",
            "spec.artifacts[2].name",
        ]
    );
}

fn job_with_security(security: Value) -> Object {
    let mut spec = simple_job();
    spec["security"] = security;
    job(spec)
}

#[test]
fn security_settings_that_can_run_are_valid() {
    for security in [
        json!({}),
        json!({"runAsNonRoot": true}),
        json!({"runAsNonRoot": true, "runAsGroup": 100}),
        json!({"runAsUser": 0}),
        json!({"runAsUser": 1000, "runAsGroup": 1000, "readOnlyRootFilesystem": true}),
    ] {
        assert_eq!(
            validate(&job_with_security(security.clone())),
            vec![],
            "{security}"
        );
    }
}

#[test]
fn run_as_non_root_with_uid_0_is_refused_at_run_as_user() {
    let e = only_error(&job_with_security(
        json!({"runAsNonRoot": true, "runAsUser": 0}),
    ));
    assert_eq!(e.field, "spec.security.runAsUser");
    assert!(e.message.contains("runAsNonRoot"), "{e}");
    assert!(e.fix.contains("65534"), "{e}");
}

#[test]
fn security_ids_must_fit_both_runtimes_and_a_group_needs_a_user() {
    let obj = job_with_security(json!({"runAsUser": -1, "runAsGroup": 2_147_483_648u64}));
    assert_eq!(
        fields(&obj),
        ["spec.security.runAsUser", "spec.security.runAsGroup"]
    );
    let e = only_error(&job_with_security(json!({"runAsGroup": 100})));
    assert_eq!(e.field, "spec.security.runAsGroup");
    assert!(e.fix.contains("runAsUser"), "{e}");
    assert_eq!(
        only_error(&job_with_security(json!({"readOnly": true}))).field,
        "spec",
        "unknown fields are refused"
    );
}

#[test]
fn a_bad_quantity_says_how_to_write_one() {
    let obj = job(
        json!({"image": "alpine", "steps": [{"name": "a", "run": "x"}], "resources": {"memory": "1 GB"}}),
    );
    let e = only_error(&obj);
    assert_eq!(e.field, "spec.resources.memory");
    assert!(e.message.contains("\"1 GB\""), "{e}");
    assert!(e.fix.contains("256Mi"), "{e}");
}

#[test]
fn a_valid_workflow_passes() {
    let obj = workflow(json!([
        node("build", &[]),
        node("test", &["build"]),
        node("ship", &["build", "test"])
    ]));
    assert_eq!(validate(&obj), vec![]);
}

#[test]
fn workflow_cycles_are_named() {
    let obj = workflow(json!([
        node("a", &["c"]),
        node("b", &["a"]),
        node("c", &["b"]),
        node("d", &[])
    ]));
    let e = only_error(&obj);
    assert_eq!(e.field, "spec.jobs[0].needs");
    assert!(e.message.contains("a -> c -> b -> a"), "{e}");
}

#[test]
fn workflow_needs_must_exist_and_not_be_the_node_itself() {
    let obj = workflow(json!([
        node("build", &[]),
        node("test", &["biuld", "test"])
    ]));
    let errors = validate(&obj);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].field, "spec.jobs[1].needs[0]");
    assert!(
        errors[0].message.contains("did you mean \"build\""),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1].field, "spec.jobs[1].needs[1]");
}

#[test]
fn workflow_node_jobs_are_checked_with_their_full_path() {
    let mut bad = node("b", &[]);
    bad["job"]["steps"][0]["name"] = json!("A B");
    let obj = workflow(json!([node("a", &[]), node("a", &[]), bad]));
    assert_eq!(
        fields(&obj),
        ["spec.jobs[1].name", "spec.jobs[2].job.steps[0].name"]
    );
}

#[test]
fn a_bad_cron_schedule_is_refused() {
    let mut obj = workflow(json!([node("a", &[])]));
    obj.spec["schedule"] = json!("every day at noon");
    let e = only_error(&obj);
    assert_eq!(e.field, "spec.schedule");
    assert!(e.message.contains("not a valid cron schedule"), "{e}");

    obj.spec["schedule"] = json!("*/5 * * * *");
    assert_eq!(validate(&obj), vec![]);
    obj.spec["schedule"] = json!("@daily");
    assert_eq!(validate(&obj), vec![]);
}

#[test]
fn sandbox_rules() {
    let sandbox = |spec: Value| Object::new(Kind::Sandbox, "default", "dev", spec);
    assert_eq!(fields(&sandbox(json!({}))), ["spec.services"]);
    assert_eq!(validate(&sandbox(json!({"templateRef": "python"}))), vec![]);
    let obj = sandbox(json!({
        "services": [
            {"name": "db", "image": "postgres", "healthCheck": {"exec": ["pg_isready"], "tcp": {"port": 5432}}},
            {"name": "db", "image": "redis", "healthCheck": {}},
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
             "healthCheck": {"http": {"path": "/", "port": 80}, "intervalSeconds": 0},
             "volumes": [{"name": "data", "mountPath": "data"}]},
        ],
        "idleTimeoutSeconds": 0,
    }));
    assert_eq!(
        fields(&obj),
        [
            "spec.services[0].healthCheck",
            "spec.services[1].name",
            "spec.services[1].healthCheck",
            "spec.services[2].healthCheck.intervalSeconds",
            "spec.services[2].volumes[0].mountPath",
            "spec.idleTimeoutSeconds",
        ]
    );
}

#[test]
fn sandbox_template_rules() {
    let template = |spec: Value| Object::new(Kind::SandboxTemplate, "default", "shell", spec);
    assert_eq!(
        fields(&template(json!({"services": []}))),
        ["spec.services"]
    );
    let ok = json!({
        "services": [{"name": "shell", "image": "busybox:latest"}],
        "warmPool": {"size": 2, "maxSize": 6},
    });
    assert_eq!(validate(&template(ok)), vec![]);
    let obj = template(json!({
        "services": [{"name": "web", "image": "nginx",
                      "healthCheck": {"http": {"port": 0, "path": "health"}, "failureThreshold": 0}}],
        "warmPool": {"size": 4, "maxSize": 2, "refillConcurrency": 0},
        "ttlSeconds": 0,
    }));
    assert_eq!(
        fields(&obj),
        [
            "spec.services[0].healthCheck.http.port",
            "spec.services[0].healthCheck.http.path",
            "spec.services[0].healthCheck.failureThreshold",
            "spec.ttlSeconds",
            "spec.warmPool.maxSize",
            "spec.warmPool.refillConcurrency",
        ]
    );
}

#[test]
fn workspace_quotas_must_parse() {
    let obj = Object::new(
        Kind::Workspace,
        "",
        "team-a",
        json!({"quotas": {"cpu": "4", "memory": "lots"}}),
    );
    assert_eq!(fields(&obj), ["spec.quotas.memory"]);
}

#[test]
fn policy_rules_need_name_expression_and_message() {
    let obj = Object::new(
        Kind::Policy,
        "",
        "strict",
        json!({
            "images": {"allow": ["docker.io/*", ""]},
            "maxMemory": "8Gi",
            "rules": [
                {"name": "no-root", "expression": "object.spec.user != 'root'", "message": "run as a user"},
                {"name": "", "expression": " ", "message": ""},
            ],
        }),
    );
    assert_eq!(
        fields(&obj),
        [
            "spec.images.allow[1]",
            "spec.rules[1].name",
            "spec.rules[1].expression",
            "spec.rules[1].message"
        ]
    );
}

#[test]
fn a_spec_that_does_not_match_the_schema_is_one_error() {
    let obj = job(json!({"image": 5}));
    assert_eq!(fields(&obj), ["spec"]);
}

#[test]
fn steps_too_large_for_one_argument_are_refused() {
    let big = "echo x\n".repeat(20_000);
    let obj = job(json!({"image": "alpine", "steps": [{"name": "a", "run": big}]}));
    let problems = validate(&obj);
    assert!(
        problems
            .iter()
            .any(|e| e.field == "spec.steps" && e.message.contains("KiB")),
        "{problems:?}"
    );
}

#[test]
fn job_services_are_checked() {
    let mut spec = simple_job();
    spec["services"] = json!([
        {"name": "db", "image": "postgres:16", "ports": [5432], "readiness": {"exec": ["pg_isready"], "periodSeconds": 2}},
        {"name": "Web_1", "image": "", "ports": [0, 80, 80]},
        {"name": "db", "image": "a b", "command": [""], "readiness": {"tcpPort": 1, "exec": ["x"]}},
        {"name": "steps", "image": "busybox", "readiness": {"tcpPort": 0, "periodSeconds": 0, "timeoutSeconds": 0, "failureThreshold": 0}},
        {"name": "cache", "image": "busybox", "readiness": {"exec": []}, "env": [{"name": "1X", "value": ""}]},
        {"name": "web", "image": "busybox", "ports": [5432]},
    ]);
    assert_eq!(
        fields(&job(spec)),
        [
            "spec.services[1].name",
            "spec.services[1].image",
            "spec.services[1].ports[0]",
            "spec.services[1].ports[2]",
            "spec.services[2].name",
            "spec.services[2].image",
            "spec.services[2].command",
            "spec.services[2].readiness",
            "spec.services[3].name",
            "spec.services[3].readiness.tcpPort",
            "spec.services[3].readiness.periodSeconds",
            "spec.services[3].readiness.timeoutSeconds",
            "spec.services[3].readiness.failureThreshold",
            "spec.services[4].env[0].name",
            "spec.services[4].readiness.exec",
            "spec.services[5].ports[0]",
        ]
    );
    let mut good = simple_job();
    good["services"] =
        json!([{"name": "web", "image": "busybox", "command": ["httpd", "-f"], "ports": [8080]}]);
    assert_eq!(fields(&job(good)), Vec::<String>::new());
}

#[test]
fn env_value_and_value_from_are_exclusive_and_a_secret_ref_is_checked() {
    let mut spec = simple_job();
    spec["env"] =
        json!([{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hook", "key": "token"}}}]);
    assert_eq!(validate(&job(spec.clone())), vec![]);

    spec["env"][0]["value"] = json!("literal");
    let e = only_error(&job(spec.clone()));
    assert_eq!(e.field, "spec.env[0]");
    assert!(e.message.contains("both value and valueFrom"), "{e}");
    assert!(e.fix.contains("secretKeyRef"), "{e}");

    spec["env"][0]["value"] = json!("");
    spec["env"][0]["valueFrom"]["secretKeyRef"] = json!({"name": "Hook_1", "key": ""});
    assert_eq!(
        fields(&job(spec)),
        [
            "spec.env[0].valueFrom.secretKeyRef.name",
            "spec.env[0].valueFrom.secretKeyRef.key"
        ]
    );
}

#[test]
fn workspace_defaults_resources_must_parse_and_quotas_take_runs_per_hour() {
    let obj = Object::new(
        Kind::Workspace,
        "",
        "team-a",
        json!({
            "quotas": {"concurrentJobs": 2, "runsPerHour": 30, "cpu": "2"},
            "defaults": {"timeoutSeconds": 600, "network": "bridge",
                         "resources": {"cpu": "half", "memory": "256Mi"}},
        }),
    );
    let error = only_error(&obj);
    assert_eq!(error.field, "spec.defaults.resources.cpu");
}

#[test]
fn workspace_quotas_refuse_unknown_fields() {
    let obj = Object::new(
        Kind::Workspace,
        "",
        "team-a",
        json!({"quotas": {"runsPerDay": 3}}),
    );
    assert!(!validate(&obj).is_empty());
}

#[test]
fn workspace_notifications_need_an_http_url_and_a_named_secret() {
    let obj = Object::new(
        Kind::Workspace,
        "",
        "team-a",
        json!({"notifications": [
            {"url": "http://alerts.internal:8080/orcaops", "events": ["runFailed", "anomaly"],
             "secretRef": {"name": "notify", "key": "key"}},
            {"url": "alerts.internal/orcaops"},
            {"url": "ftp://alerts.internal/"},
            {"url": "http://alerts.internal/", "secretRef": {"name": "", "key": "key"}},
        ]}),
    );
    assert_eq!(
        fields(&obj),
        [
            "spec.notifications[1].url",
            "spec.notifications[2].url",
            "spec.notifications[3].secretRef",
        ]
    );
    let bad = &validate(&obj)[0];
    assert!(bad.fix.contains("http://"), "{bad:?}");
}

#[test]
fn workspace_notifications_refuse_unknown_events() {
    let obj = Object::new(
        Kind::Workspace,
        "",
        "team-a",
        json!({"notifications": [{"url": "http://a/", "events": ["runSucceeded"]}]}),
    );
    let error = only_error(&obj);
    assert!(
        error.message.contains("unknown variant `runSucceeded`")
            && error
                .message
                .contains("`runFailed`, `anomaly`, `approvalWaiting`, `sandboxExpiring`"),
        "the events a notification can choose are named: {error:?}"
    );
}
