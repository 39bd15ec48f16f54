use serde_json::json;

use super::*;
use crate::resources::Object;

fn policy(spec: serde_json::Value) -> Compiled {
    Compiled::new("p", serde_json::from_value(spec).expect("a policy spec"))
}

fn job(spec: serde_json::Value) -> Object {
    Object::new(Kind::Job, "team-a", "build", spec)
}

fn rules(found: &[Violation]) -> Vec<&str> {
    found.iter().map(|v| v.rule.as_str()).collect()
}

#[test]
fn globs_match_any_run_and_one_character() {
    assert!(glob("*:latest", "busybox:latest"));
    assert!(glob("*:latest", "ghcr.io/a/b:latest"));
    assert!(!glob("*:latest", "busybox:1.36"));
    assert!(glob("team-*", "team-a"));
    assert!(!glob("team-*", "teams"));
    assert!(glob("a?c", "abc"));
    assert!(glob("*curl*", "curl -s http://x | sh"));
    assert!(glob("*", ""));
    assert!(!glob("", "x"));
    assert!(glob("a*b*c", "aXXbYYc"));
    assert!(!glob("a*b*c", "aXXbYY"));
}

#[test]
fn an_image_without_a_tag_is_latest_and_its_registry_is_docker_hub() {
    assert_eq!(full_reference("busybox"), "busybox:latest");
    assert_eq!(
        full_reference("localhost:5000/x"),
        "localhost:5000/x:latest"
    );
    assert_eq!(full_reference("x@sha256:ab"), "x@sha256:ab");
    assert_eq!(registry_of("busybox"), "docker.io");
    assert_eq!(registry_of("library/busybox"), "docker.io");
    assert_eq!(registry_of("ghcr.io/o/x:1"), "ghcr.io");
    assert_eq!(registry_of("localhost/x"), "localhost");
    assert_eq!(
        registry_of("registry.internal:5000/x"),
        "registry.internal:5000"
    );
}

#[test]
fn images_are_denied_allowed_and_pinned_as_the_policy_says() {
    let p = policy(
        json!({"images": {"deny": ["*:latest"], "registries": ["ghcr.io"], "requireDigest": true}}),
    );
    let found = check(
        &p,
        &job(json!({"image": "busybox", "steps": [{"name": "s", "run": "true"}]})),
        None,
        None,
    );
    assert_eq!(
        rules(&found),
        ["images.deny", "images.registries", "images.requireDigest"]
    );
    assert_eq!(found[0].field, "spec.image");
    assert!(
        found[0].message.contains("*:latest"),
        "{}",
        found[0].message
    );

    let pinned = "ghcr.io/o/x@sha256:0123";
    let found = check(
        &p,
        &job(json!({"image": pinned, "steps": [{"name": "s", "run": "true"}]})),
        None,
        None,
    );
    assert!(found.is_empty(), "{found:?}");

    let allow = policy(json!({"images": {"allow": ["busybox:1.*"]}}));
    let found = check(
        &allow,
        &job(json!({"image": "alpine:3", "steps": [{"name": "s", "run": "true"}]})),
        None,
        None,
    );
    assert_eq!(rules(&found), ["images.allow"]);
}

#[test]
fn every_node_of_a_workflow_and_every_service_is_checked() {
    let p = policy(json!({"images": {"deny": ["evil/*"]}}));
    let wf = Object::new(
        Kind::Workflow,
        "team-a",
        "w",
        json!({"jobs": [
            {"name": "a", "job": {"image": "busybox:1", "steps": [{"name": "s", "run": "true"}]}},
            {"name": "b", "job": {"image": "evil/x:1", "steps": [{"name": "s", "run": "true"}],
                "services": [{"name": "db", "image": "evil/db:2"}]}}
        ]}),
    );
    let found = check(&p, &wf, None, None);
    let fields: Vec<&str> = found.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.jobs[1].job.image",
            "spec.jobs[1].job.services[0].image"
        ]
    );

    let sb = Object::new(
        Kind::Sandbox,
        "team-a",
        "s",
        json!({"services": [
        {"name": "main", "image": "busybox:1"}, {"name": "x", "image": "evil/y:1"}]}),
    );
    let found = check(&p, &sb, None, None);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "spec.services[1].image");
}

#[test]
fn commands_are_matched_line_by_line() {
    let p = policy(json!({"commands": {"deny": ["*curl*|*sh*", "rm -rf /*"]}}));
    let spec = json!({"image": "busybox:1", "steps": [
        {"name": "ok", "run": "echo hi\nls"},
        {"name": "bad", "run": "echo start\n  curl -s http://x | sh"},
        {"name": "cmd", "command": ["rm", "-rf", "/var"]}
    ]});
    let found = check(&p, &job(spec), None, None);
    let fields: Vec<&str> = found.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["spec.steps[1].run", "spec.steps[2].command"]);
}

#[test]
fn resources_and_timeouts_are_bounded_with_the_workspace_defaults_filled_in() {
    let p = policy(json!({"maxCpu": "1", "maxMemory": "512Mi", "maxTimeoutSeconds": 600}));
    let over = json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}],
        "resources": {"cpu": "2", "memory": "1Gi"}, "timeoutSeconds": 3600});
    assert_eq!(
        rules(&check(&p, &job(over), None, None)),
        ["maxCpu", "maxMemory", "maxTimeoutSeconds"]
    );

    let bare = json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}]});
    let found = check(&p, &job(bare.clone()), None, None);
    assert_eq!(rules(&found), ["maxCpu", "maxMemory", "maxTimeoutSeconds"]);
    assert!(
        found[0].message.contains("no cpu limit"),
        "{}",
        found[0].message
    );

    let defaults: WorkspaceDefaults = serde_json::from_value(json!({
        "timeoutSeconds": 300, "resources": {"cpu": "500m", "memory": "256Mi"}}))
    .unwrap();
    assert!(check(&p, &job(bare), None, Some(&defaults)).is_empty());
}

#[test]
fn networks_are_allowed_by_mode() {
    let bridge = job(
        json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}], "network": "bridge"}),
    );
    let none = job(json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}]}));
    let no = policy(json!({"allowNetwork": ["none", "private"]}));
    assert_eq!(rules(&check(&no, &bridge, None, None)), ["allowNetwork"]);
    assert!(check(&no, &none, None, None).is_empty());
    let modes = policy(json!({"allowNetwork": ["none", "bridge"]}));
    assert!(check(&modes, &bridge, None, None).is_empty());
    let private = Object::new(
        Kind::Sandbox,
        "team-a",
        "s",
        json!({"network": "private",
        "services": [{"name": "main", "image": "busybox:1"}]}),
    );
    assert!(check(&no, &private, None, None).is_empty());
    assert_eq!(
        rules(&check(&modes, &private, None, None)),
        ["allowNetwork"]
    );
}

#[test]
fn required_labels_need_the_key_and_the_value_when_given() {
    let p = policy(json!({"requiredLabels": ["team", "env=prod"]}));
    let mut obj = job(json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}]}));
    assert_eq!(check(&p, &obj, None, None).len(), 2);
    obj.metadata.labels.insert("team".into(), "a".into());
    obj.metadata.labels.insert("env".into(), "dev".into());
    let found = check(&p, &obj, None, None);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "metadata.labels.env");
    obj.metadata.labels.insert("env".into(), "prod".into());
    assert!(check(&p, &obj, None, None).is_empty());
}

#[test]
fn cel_rules_see_the_object_and_the_one_it_replaces_and_fail_closed() {
    let p = policy(json!({"rules": [
        {"name": "short", "expression": "has(object.spec.timeoutSeconds) && object.spec.timeoutSeconds <= 60", "message": "jobs must time out within a minute"},
        {"name": "same-image", "expression": "oldObject == null || object.spec.image == oldObject.spec.image", "message": "the image cannot change"}
    ]}));
    let run = |obj: &Object, old: Option<&Object>| {
        crate::resources::expr::on_cel_stack(|| check(&p, obj, old, None)).unwrap()
    };
    let a = job(
        json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}], "timeoutSeconds": 30}),
    );
    assert!(run(&a, None).is_empty());
    let b = job(
        json!({"image": "busybox:2", "steps": [{"name": "s", "run": "true"}], "timeoutSeconds": 30}),
    );
    assert_eq!(rules(&run(&b, Some(&a))), ["rules.same-image"]);
    let c = job(json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}]}));
    let found = run(&c, None);
    assert_eq!(rules(&found), ["rules.short"]);
    assert_eq!(found[0].message, "jobs must time out within a minute");
}

#[test]
fn kinds_a_policy_does_not_cover_are_never_refused() {
    let p = policy(json!({"requiredLabels": ["team"]}));
    let ws = Object::new(Kind::Workspace, "", "team-a", json!({}));
    assert!(check(&p, &ws, None, None).is_empty());
}

/// A rule of `additions` `+ 0u` (the timeout is unsigned) around the timeout: one level deeper for each.
fn nested_rule(additions: usize) -> String {
    format!(
        "has(object.spec.timeoutSeconds) && object.spec.timeoutSeconds{} <= 60",
        " + 0u".repeat(additions)
    )
}

#[test]
fn shallow_rules_run_on_any_stack_and_deep_ones_ask_for_the_cel_stack() {
    use crate::resources::expr::{PolicyRule, SHALLOW_DEPTH};
    let shallow =
        policy(json!({"rules": [{"name": "short", "expression": nested_rule(0), "message": "m"}]}));
    assert!(shallow.has_cel());
    assert!(!shallow.needs_cel_stack(), "a plain rule is shallow");
    let deep = policy(
        json!({"rules": [{"name": "deep", "expression": nested_rule(SHALLOW_DEPTH), "message": "m"}]}),
    );
    assert!(deep.needs_cel_stack(), "{} levels", SHALLOW_DEPTH + 4);

    // The deepest rule still called shallow is evaluated on a stack half a tokio
    // worker's, in this (debug) build, and gives the right answer both ways.
    let deepest = (0..64)
        .map(nested_rule)
        .take_while(|r| PolicyRule::compile(r).unwrap().is_shallow())
        .last()
        .expect("some rule is shallow");
    assert_eq!(
        PolicyRule::compile(&deepest).unwrap().depth(),
        SHALLOW_DEPTH
    );
    let p = policy(
        json!({"rules": [{"name": "deepest", "expression": deepest, "message": "too long"}]}),
    );
    assert!(!p.needs_cel_stack());
    let ok = job(
        json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}], "timeoutSeconds": 30}),
    );
    let slow = job(
        json!({"image": "busybox:1", "steps": [{"name": "s", "run": "true"}], "timeoutSeconds": 90}),
    );
    let found = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || (check(&p, &ok, None, None), check(&p, &slow, None, None)))
        .unwrap()
        .join()
        .expect("evaluated within 1 MiB of stack");
    assert!(found.0.is_empty(), "{:?}", found.0);
    assert_eq!(rules(&found.1), ["rules.deepest"]);
}

#[test]
fn globs_match_the_same_over_bytes_and_characters() {
    for (pattern, text, expected) in [
        ("*:latest", "docker.io/busybox:latest", true),
        ("busy?ox:*", "busybox:1.36", true),
        ("*rm -rf /*", "sudo rm -rf / --no-preserve-root", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbY", false),
        ("é*", "été", true),
        ("?té", "été", true),
        ("??té", "été", false),
        ("*", "", true),
        ("?", "", false),
    ] {
        assert_eq!(glob(pattern, text), expected, "{pattern} against {text}");
    }
}
