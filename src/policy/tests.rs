use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::resources::Object;
use crate::store::LocalStore;

fn policy(name: &str, spec: serde_json::Value) -> Object {
    Object::new(Kind::Policy, "", name, spec)
}

fn job(ns: &str, image: &str) -> Object {
    Object::new(
        Kind::Job,
        ns,
        "build",
        json!({"image": image, "steps": [{"name": "s", "run": "true"}]}),
    )
}

#[test]
fn a_policy_covers_the_workspaces_it_selects_and_those_that_list_it() {
    let policies = [
        policy(
            "teams",
            json!({"workspaces": ["team-*"], "images": {"deny": ["*:latest"]}}),
        ),
        policy(
            "listed",
            json!({"workspaces": ["nowhere"], "mode": "Warn", "images": {"deny": ["busybox:*"]}}),
        ),
    ];
    let workspaces = [Object::new(
        Kind::Workspace,
        "",
        "ops",
        json!({"policies": ["listed"]}),
    )];
    let set = PolicySet::build(&policies, &workspaces);
    let names = |ns: &str| set.covering(ns).map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(names("team-a"), ["teams"]);
    assert_eq!(names("ops"), ["listed"]);
    assert!(names("default").is_empty());

    let review = set.review(&job("team-a", "busybox:latest"), None);
    assert!(review.refused());
    let message = review.refusal_message(&job("team-a", "busybox:latest"));
    assert!(
        message.contains("policy teams, rule images.deny: spec.image"),
        "{message}"
    );
    let review = set.review(&job("ops", "busybox:1"), None);
    assert!(!review.refused());
    assert_eq!(review.warnings().count(), 1);
}

#[tokio::test]
async fn a_review_right_after_a_policy_write_sees_that_policy() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    let policies = Policies::watching(Arc::new(store.clone()));
    assert!(
        policies
            .review(&job("default", "busybox"), None)
            .await
            .unwrap()
            .violations
            .is_empty()
    );
    store
        .create(policy("p", json!({"images": {"deny": ["*:latest"]}})))
        .await
        .unwrap();
    let review = policies
        .review(&job("default", "busybox"), None)
        .await
        .unwrap();
    assert!(review.refused(), "{review:?}");
    // A status write does not rebuild; a spec change does.
    let stored = store
        .get(&ObjectKey::new(Kind::Policy, "", "p"))
        .await
        .unwrap()
        .unwrap();
    let mut changed = stored.clone();
    changed.spec = json!({"mode": "Audit", "images": {"deny": ["*:latest"]}});
    store.replace(changed).await.unwrap();
    let review = policies
        .review(&job("default", "busybox"), None)
        .await
        .unwrap();
    assert!(!review.refused());
    assert_eq!(review.violations.len(), 1);
    store
        .delete(&ObjectKey::new(Kind::Policy, "", "p"))
        .await
        .unwrap();
    assert!(
        policies
            .review(&job("default", "busybox"), None)
            .await
            .unwrap()
            .violations
            .is_empty()
    );
}

#[tokio::test]
async fn findings_land_in_the_policys_status_bounded_and_in_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    store
        .create(policy(
            "p",
            json!({"mode": "Audit", "images": {"deny": ["*:latest"]}}),
        ))
        .await
        .unwrap();
    let policies = Policies::watching(Arc::new(store.clone()));
    for round in 0..3 {
        for i in 0..30 {
            let mut obj = job("default", "busybox");
            obj.metadata.name = format!("job-{i}");
            let review = policies.review(&obj, None).await.unwrap();
            policies.record(&review, &obj, &Door::Api, false);
        }
        policies.flush().await;
        let stored = store
            .get(&ObjectKey::new(Kind::Policy, "", "p"))
            .await
            .unwrap()
            .unwrap();
        let status: crate::resources::policy::PolicyStatus =
            serde_json::from_value(stored.status).unwrap();
        let report = status.violations.expect("a report");
        assert_eq!(report.audited, 30 * (round + 1));
        assert_eq!(report.refused, 0);
        assert_eq!(report.by_rule["images.deny"], 30 * (round + 1));
        assert_eq!(
            report.recent.len(),
            crate::resources::policy::ViolationReport::RECENT
        );
        assert!(
            report
                .recent
                .iter()
                .all(|e| e.count == round + 1 && e.door == "api" && e.action == "audited")
        );
    }
    let events = store
        .list_events(crate::store::EventQuery::newest(100).name("job-3"))
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].reason, "PolicyViolation");
    assert_eq!(events[0].count, 3);
}
