//! Reads and writes of objects: create, get, list, apply, replace, status, delete.

use serde_json::json;

use super::*;
use crate::resources::keys;
use crate::store::PageQuery;

#[tokio::test]
async fn create_assigns_identity_and_get_reads_it_back() {
    let (_dir, store) = store().await;
    let mut input = job("default", "build");
    input.metadata.uid = "caller-chosen".into();
    input.metadata.generation = 9;
    let created = store.create(input).await.unwrap();
    assert_eq!(created.metadata.generation, 1);
    assert_eq!(
        uuid::Uuid::parse_str(&created.metadata.uid)
            .unwrap()
            .get_version_num(),
        4
    );
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.resource_version, "1");
    let read = store
        .get(&created.key())
        .await
        .unwrap()
        .expect("the object is stored");
    assert_eq!(read, created);
    assert_eq!(
        store
            .get(&ObjectKey::new(Kind::Job, "default", "other"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn list_filters_by_namespace_and_sorts() {
    let (_dir, store) = store().await;
    for (namespace, name) in [
        ("team-b", "z"),
        ("team-a", "y"),
        ("team-b", "a"),
        ("team-a", "x"),
    ] {
        store.create(job(namespace, name)).await.unwrap();
    }
    store
        .create(Object::new(Kind::Sandbox, "team-a", "sb", json!({})))
        .await
        .unwrap();
    let names = |objects: &[Object]| -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o.metadata.namespace.as_deref().unwrap(),
                    o.metadata.name
                )
            })
            .collect()
    };
    let (all, version) = store.list(Kind::Job, None).await.unwrap();
    assert_eq!(
        names(&all),
        ["team-a/x", "team-a/y", "team-b/a", "team-b/z"]
    );
    assert_eq!(version, "5");
    let (team_b, _) = store.list(Kind::Job, Some("team-b")).await.unwrap();
    assert_eq!(names(&team_b), ["team-b/a", "team-b/z"]);
    let (none, _) = store.list(Kind::Job, Some("team-c")).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn cluster_scoped_objects_are_found_whatever_namespace_the_key_has() {
    let (_dir, store) = store().await;
    store
        .create(Object::new(Kind::Policy, "", "limits", json!({})))
        .await
        .unwrap();
    let stray = ObjectKey {
        kind: Kind::Policy,
        namespace: "default".into(),
        name: "limits".into(),
    };
    assert!(store.get(&stray).await.unwrap().is_some());
    let (policies, _) = store.list(Kind::Policy, Some("default")).await.unwrap();
    assert_eq!(policies.len(), 1);
}

#[tokio::test]
async fn create_twice_is_already_exists() {
    let (_dir, store) = store().await;
    store.create(job("default", "build")).await.unwrap();
    let err = store.create(job("default", "build")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { ref key } if key.name == "build"),
        "{err}"
    );
    assert_eq!(store.current_resource_version().await.unwrap(), "1");
}

#[tokio::test]
async fn invalid_objects_are_refused_before_any_write() {
    let (_dir, store) = store().await;
    let mut homeless = job("default", "build");
    homeless.metadata.namespace = None;
    assert!(matches!(
        store.create(homeless.clone()).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store.apply(homeless).await,
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        store.replace(job("default", "")).await,
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(store.current_resource_version().await.unwrap(), "0");
}

#[tokio::test]
async fn apply_creates_then_is_unchanged_then_configures() {
    let (_dir, store) = store().await;
    let mut rx = store.watch();
    let (outcome, created) = store.apply(job("default", "build")).await.unwrap();
    assert_eq!(outcome, ApplyOutcome::Created);
    assert_eq!(next(&mut rx).await.type_, WatchEventType::Added);

    let (outcome, same) = store.apply(job("default", "build")).await.unwrap();
    assert_eq!(outcome, ApplyOutcome::Unchanged);
    assert_eq!(same, created);
    assert_eq!(
        store.current_resource_version().await.unwrap(),
        created.metadata.resource_version
    );

    let mut labelled = job("default", "build");
    labelled.metadata.labels.insert("team".into(), "a".into());
    let (outcome, configured) = store.apply(labelled).await.unwrap();
    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(configured.metadata.generation, 1, "labels are not spec");
    assert!(rv(&configured) > rv(&created));
    // The Unchanged apply sent nothing: the next event is the label change.
    let event = next(&mut rx).await;
    assert_eq!(
        (event.type_, event_rv(&event)),
        (WatchEventType::Modified, rv(&configured))
    );

    let respecced = Object::new(Kind::Job, "default", "build", json!({"steps": []}));
    let (outcome, configured) = store.apply(respecced).await.unwrap();
    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(configured.metadata.generation, 2);
    assert!(
        configured.metadata.labels.is_empty(),
        "apply replaces labels"
    );
    assert_eq!(configured.metadata.uid, created.metadata.uid);
}

#[tokio::test]
async fn apply_keeps_the_cancel_request_and_the_status() {
    let (_dir, store) = store().await;
    let (_, created) = store.apply(job("default", "build")).await.unwrap();
    let status = json!({"phase": "Running", "observedGeneration": 1});
    store
        .update_status(&created.key(), "", status.clone())
        .await
        .unwrap();
    let mut cancelled = store.get(&created.key()).await.unwrap().unwrap();
    cancelled
        .metadata
        .annotations
        .insert(keys::CANCEL.into(), "latest".into());
    store.replace(cancelled).await.unwrap();

    let mut from_file = job("default", "build");
    from_file
        .metadata
        .annotations
        .insert(keys::SOURCE.into(), "file:build.yaml".into());
    let (outcome, applied) = store.apply(from_file).await.unwrap();
    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(
        applied
            .metadata
            .annotations
            .get(keys::CANCEL)
            .map(String::as_str),
        Some("latest")
    );
    assert_eq!(
        applied
            .metadata
            .annotations
            .get(keys::SOURCE)
            .map(String::as_str),
        Some("file:build.yaml")
    );
    assert_eq!(applied.status, status);
}

#[tokio::test]
async fn replace_with_a_stale_version_conflicts() {
    let (_dir, store) = store().await;
    let created = store.create(job("default", "build")).await.unwrap();
    let mut first = created.clone();
    first.metadata.labels.insert("a".into(), "1".into());
    let replaced = store.replace(first).await.unwrap();
    assert!(rv(&replaced) > rv(&created));

    let mut stale = created.clone();
    stale.metadata.labels.insert("b".into(), "2".into());
    let err = store.replace(stale).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref expected, ref current, .. }
            if *expected == created.metadata.resource_version && *current == replaced.metadata.resource_version),
        "{err}"
    );
    let stored = store.get(&created.key()).await.unwrap().unwrap();
    assert_eq!(
        stored.metadata.labels.get("a").map(String::as_str),
        Some("1")
    );
    assert!(!stored.metadata.labels.contains_key("b"));

    let missing = job("default", "nope");
    assert!(matches!(
        store.replace(missing).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn update_status_checks_the_version_unless_empty() {
    let (_dir, store) = store().await;
    let created = store.create(job("default", "build")).await.unwrap();
    let mut rx = store.watch();
    let running = store
        .update_status(
            &created.key(),
            &created.metadata.resource_version,
            json!({"phase": "Running"}),
        )
        .await
        .unwrap();
    assert_eq!(running.status, json!({"phase": "Running"}));
    assert_eq!(running.metadata.generation, 1);
    let event = next(&mut rx).await;
    assert_eq!(
        (event.type_, event.object.status.clone()),
        (WatchEventType::Modified, json!({"phase": "Running"}))
    );

    let err = store
        .update_status(
            &created.key(),
            &created.metadata.resource_version,
            json!({"phase": "Failed"}),
        )
        .await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "{err:?}");

    let done = store
        .update_status(&created.key(), "", json!({"phase": "Succeeded"}))
        .await
        .unwrap();
    assert_eq!(done.status, json!({"phase": "Succeeded"}));
    assert_eq!(store.get(&created.key()).await.unwrap().unwrap(), done);

    let missing = ObjectKey::new(Kind::Job, "default", "nope");
    assert!(matches!(
        store.update_status(&missing, "", json!({})).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn writing_the_same_status_again_is_not_a_write() {
    let (_dir, store) = store().await;
    let created = store.create(job("default", "build")).await.unwrap();
    let first = store
        .update_status(&created.key(), "", json!({"phase": "Running"}))
        .await
        .unwrap();
    let again = store
        .update_status(&created.key(), "", json!({"phase": "Running"}))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(
        store.current_resource_version().await.unwrap(),
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn delete_emits_deleted_and_then_not_found() {
    let (_dir, store) = store().await;
    let created = store.create(job("default", "build")).await.unwrap();
    let mut rx = store.watch();
    let deleted = store.delete(&created.key()).await.unwrap();
    assert_eq!(
        rv(&deleted),
        rv(&created) + 1,
        "a delete takes a new resourceVersion"
    );
    let event = next(&mut rx).await;
    assert_eq!(event.type_, WatchEventType::Deleted);
    assert_eq!(event.object, deleted);
    assert_eq!(store.get(&created.key()).await.unwrap(), None);
    assert!(matches!(
        store.delete(&created.key()).await,
        Err(StoreError::NotFound { .. })
    ));
    // The name is free again, with a new identity.
    let again = store.create(job("default", "build")).await.unwrap();
    assert_ne!(again.metadata.uid, created.metadata.uid);
}

#[tokio::test]
async fn pages_walk_the_keys_in_order_and_count_what_follows() {
    let (_dir, store) = store().await;
    for (namespace, name) in [("b", "1"), ("a", "2"), ("a", "1"), ("c", "1"), ("b", "2")] {
        store.create(job(namespace, name)).await.unwrap();
    }
    store
        .create(Object::new(Kind::Policy, "", "p", json!({})))
        .await
        .unwrap();
    let key = |o: &Object| {
        format!(
            "{}/{}",
            o.metadata.namespace.as_deref().unwrap(),
            o.metadata.name
        )
    };
    let first = store
        .list_page(PageQuery {
            kind: Kind::Job,
            namespace: None,
            after: None,
            limit: Some(2),
            labels: None,
        })
        .await
        .unwrap();
    assert_eq!(
        first.items.iter().map(key).collect::<Vec<_>>(),
        ["a/1", "a/2"]
    );
    assert_eq!(first.remaining, 3);
    assert_eq!(first.resource_version, "6");
    let second = store
        .list_page(PageQuery {
            kind: Kind::Job,
            namespace: None,
            after: Some(("a", "2")),
            limit: Some(2),
            labels: None,
        })
        .await
        .unwrap();
    assert_eq!(
        second.items.iter().map(key).collect::<Vec<_>>(),
        ["b/1", "b/2"]
    );
    assert_eq!(second.remaining, 1);
    let last = store
        .list_page(PageQuery {
            kind: Kind::Job,
            namespace: None,
            after: Some(("b", "2")),
            limit: Some(2),
            labels: None,
        })
        .await
        .unwrap();
    assert_eq!(last.items.iter().map(key).collect::<Vec<_>>(), ["c/1"]);
    assert_eq!(last.remaining, 0);
    let in_b = store
        .list_page(PageQuery {
            kind: Kind::Job,
            namespace: Some("b"),
            after: Some(("b", "1")),
            limit: None,
            labels: None,
        })
        .await
        .unwrap();
    assert_eq!(in_b.items.iter().map(key).collect::<Vec<_>>(), ["b/2"]);
    assert!(store.can_resume_from("6"));
    assert!(!store.can_resume_from("7"), "a version not reached yet");
}

#[tokio::test]
async fn modified_events_carry_the_previous_object() {
    let (_dir, store) = store().await;
    let created = store.create(job("default", "a")).await.unwrap();
    let mut rx = store.watch();
    store
        .update_status(&created.key(), "", json!({"phase": "Running"}))
        .await
        .unwrap();
    let event = next(&mut rx).await;
    assert_eq!(event.type_, WatchEventType::Modified);
    assert_eq!(event.previous.as_deref(), Some(&created));
    store.delete(&created.key()).await.unwrap();
    assert_eq!(next(&mut rx).await.previous, None);
}
