use serde_json::json;

use super::*;
use crate::resources::policy::PolicyStatus;
use crate::resources::{Object, ObjectKey};
use crate::store::LocalStore;

/// A store with an Enforce policy denying `*miner*` and a Warn policy denying
/// `*:latest`, both over `team-*`; and the live policies of it.
async fn policies() -> (tempfile::TempDir, LocalStore, Arc<Policies>) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    for (name, mode, deny) in [
        ("no-miners", "Enforce", "*miner*"),
        ("pinned", "Warn", "*:latest"),
    ] {
        let spec = json!({"mode": mode, "workspaces": ["team-*"], "images": {"deny": [deny]}});
        store
            .create(Object::new(Kind::Policy, "", name, spec))
            .await
            .unwrap();
    }
    let policies = Policies::watching(Arc::new(store.clone()));
    (dir, store, policies)
}

fn job(image: &str) -> Value {
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "build", "namespace": "team-a", "uid": "u-1"},
        "spec": {"image": image, "steps": [{"name": "s", "run": "true"}]},
    })
}

fn request(operation: &str, group: &str, kind: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": "v1alpha1", "kind": kind},
            "resource": {"group": group, "version": "v1alpha1", "resource": "jobs"},
            "namespace": "team-a",
            "name": "build",
            "operation": operation,
            "userInfo": {"username": "alice@example.com", "groups": ["devs"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
        }
    })
}

async fn answer(policies: &Arc<Policies>, review: &Value) -> Response {
    super::review(policies, review.to_string().as_bytes())
        .await
        .expect("a well-formed review is answered")
}

async fn violations(
    store: &LocalStore,
    policy: &str,
) -> Option<crate::resources::policy::ViolationReport> {
    let key = ObjectKey::new(Kind::Policy, "", policy);
    let obj = store.get(&key).await.unwrap().unwrap();
    if obj.status.is_null() {
        return None;
    }
    serde_json::from_value::<PolicyStatus>(obj.status)
        .unwrap()
        .violations
}

#[tokio::test]
async fn an_enforce_violation_is_refused_with_a_403_status_naming_the_field() {
    let (_dir, store, policies) = policies().await;
    let review = request("CREATE", "orcaops.dev", "Job", job("evil/miner:1"));
    let response = answer(&policies, &review).await;
    assert_eq!(response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert!(!response.allowed);
    let status = response.status.clone().unwrap();
    assert_eq!(status["code"], 403);
    assert_eq!(status["reason"], "Forbidden");
    let cause = &status["details"]["causes"][0];
    assert_eq!(cause["field"], "spec.image");
    assert_eq!(cause["reason"], "PolicyViolation");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("policy no-miners, rule images.deny"),
        "{status}"
    );
    let out = response.into_review();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    assert_eq!(out["response"]["allowed"], false);

    // Recorded, with the user the API server names.
    policies.flush().await;
    let found = violations(&store, "no-miners").await.unwrap();
    assert_eq!(found.refused, 1);
    assert_eq!(found.recent[0].door, "admission:alice@example.com");
}

#[tokio::test]
async fn warn_findings_go_back_as_warnings_and_the_write_is_allowed() {
    let (_dir, _store, policies) = policies().await;
    let review = request("UPDATE", "orcaops.dev", "Job", job("busybox:latest"));
    let response = answer(&policies, &review).await;
    assert!(response.allowed);
    assert!(response.status.is_none());
    assert_eq!(response.warnings.len(), 1);
    assert!(
        response.warnings[0].starts_with("policy pinned, rule images.deny: spec.image"),
        "{:?}",
        response.warnings
    );
}

#[tokio::test]
async fn what_is_not_ours_to_review_is_allowed_untouched() {
    let (_dir, _store, policies) = policies().await;
    let miner = job("evil/miner:1");
    for review in [
        request("DELETE", "orcaops.dev", "Job", Value::Null),
        request("CONNECT", "orcaops.dev", "Job", miner.clone()),
        request("CREATE", "batch", "Job", miner.clone()),
        request(
            "CREATE",
            "orcaops.dev",
            "Workspace",
            json!({"metadata": {"name": "team-a"}, "spec": {}}),
        ),
        // An object that does not read as one of ours (the CRD schema let it by).
        request("CREATE", "orcaops.dev", "Job", json!("not an object")),
    ] {
        let response = answer(&policies, &review).await;
        assert!(response.allowed, "{review}");
        assert!(response.warnings.is_empty());
    }
}

#[tokio::test]
async fn a_dry_run_is_judged_but_not_recorded() {
    let (_dir, store, policies) = policies().await;
    let mut review = request("CREATE", "orcaops.dev", "Job", job("evil/miner:1"));
    review["request"]["dryRun"] = json!(true);
    assert!(!answer(&policies, &review).await.allowed);
    policies.flush().await;
    assert_eq!(violations(&store, "no-miners").await, None);
}

#[tokio::test]
async fn malformed_reviews_are_errors_that_say_what_is_wrong() {
    let (_dir, _store, policies) = policies().await;
    type Expected = fn(&AdmissionError) -> bool;
    let cases: [(&[u8], Expected); 6] = [
        (b"", |e| matches!(e, AdmissionError::Malformed(_))),
        (b"{not json", |e| matches!(e, AdmissionError::Malformed(_))),
        (b"[1, 2]", |e| matches!(e, AdmissionError::Malformed(_))),
        (
            br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x", "kind": {"group": "", "kind": "Pod"}}}"#,
            |e| matches!(e, AdmissionError::Version(_)),
        ),
        (
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#,
            |e| *e == AdmissionError::NoRequest,
        ),
        (
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "", "kind": {"group": "", "kind": "Pod"}}}"#,
            |e| *e == AdmissionError::NoRequest,
        ),
    ];
    for (body, expected) in cases {
        let err = super::review(&policies, body).await.unwrap_err();
        assert!(expected(&err), "{}: {err}", String::from_utf8_lossy(body));
    }
    let version = super::review(
        &policies,
        br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}"#,
    )
    .await
    .unwrap_err();
    assert!(
        version
            .to_string()
            .contains("admissionReviewVersions: [v1]"),
        "{version}"
    );
}
