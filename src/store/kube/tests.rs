//! The Kubernetes store against the mock API server: each test is the requests the store
//! must send and the answers it gets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::mock::{
    Exchange, JSON_PATCH, Reply, collection_path, event_created, events_path, list, mock_store,
    object_path, served, served_applied, status,
};
use super::*;
use crate::resources::keys;
use crate::store::{InvolvedObject, WatchEventType};

fn job(name: &str, image: &str) -> Object {
    Object::new(Kind::Job, "default", name, json!({"image": image}))
}

fn from_file(mut obj: Object, file: &str) -> Object {
    obj.metadata
        .annotations
        .insert(keys::SOURCE.into(), format!("file:{file}"));
    obj
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Job, "default", name)
}

fn path(name: &str) -> String {
    object_path(Kind::Job, "default", name)
}

fn with_finalizers(obj: &Object, finalizers: &[&str]) -> Object {
    let mut obj = obj.clone();
    obj.metadata.finalizers = finalizers.iter().map(|f| f.to_string()).collect();
    obj
}

#[tokio::test]
async fn get_returns_the_object_or_none() {
    let (store, api) = mock_store();
    let api = api.expect(vec![
        Exchange::get(path("build")).reply(200, served(&job("build", "alpine"), "7")),
        Exchange::get(path("nope")).not_found(),
    ]);
    let found = store.get(&key("build")).await;
    let missing = store.get(&key("nope")).await;
    api.done().await;
    let found = found.unwrap().expect("found");
    assert_eq!(found.metadata.resource_version, "7");
    assert_eq!(found.spec["image"], "alpine");
    assert_eq!(missing.unwrap(), None);
}

#[tokio::test]
async fn list_covers_every_namespace_or_one() {
    let (store, api) = mock_store();
    let mut other = served(&Object::new(Kind::Job, "team-b", "b", json!({})), "12");
    // List items may come without their type fields.
    other.as_object_mut().unwrap().remove("kind");
    let api = api.expect(vec![
        Exchange::get(collection_path(Kind::Job, None)).reply(
            200,
            list(Kind::Job, vec![served(&job("a", "x"), "11"), other], "99"),
        ),
        Exchange::get(collection_path(Kind::Job, Some("team-b")))
            .reply(200, list(Kind::Job, vec![], "100")),
        // Cluster-scoped kinds ignore the namespace.
        Exchange::get(collection_path(Kind::Policy, None))
            .reply(200, list(Kind::Policy, vec![], "101")),
    ]);
    let all = store.list(Kind::Job, None).await;
    let team_b = store.list(Kind::Job, Some("team-b")).await;
    let policies = store.list(Kind::Policy, Some("team-b")).await;
    api.done().await;
    let (items, rv) = all.unwrap();
    let keys: Vec<String> = items.iter().map(|o| o.key().to_string()).collect();
    assert_eq!(keys, ["job/default/a", "job/team-b/b"]);
    assert_eq!(rv, "99");
    assert_eq!(team_b.unwrap().1, "100");
    assert_eq!(policies.unwrap().1, "101");
}

#[tokio::test]
async fn create_posts_the_object_and_reports_an_existing_one() {
    let (store, api) = mock_store();
    let mut obj = job("build", "alpine");
    // A copy of a stored object: the API server refuses a create with a resourceVersion.
    obj.metadata.resource_version = "3".into();
    let collection = collection_path(Kind::Job, Some("default"));
    let api = api.expect(vec![
        Exchange::post(&collection)
            .body("/metadata/name", json!("build"))
            .body("/metadata/resourceVersion", Value::Null)
            .body("/spec/image", json!("alpine"))
            .reply(201, served(&job("build", "alpine"), "20")),
        Exchange::post(&collection).reply(
            409,
            status(
                409,
                "AlreadyExists",
                "jobs.orcaops.dev \"build\" already exists",
            ),
        ),
    ]);
    let created = store.create(obj.clone()).await;
    let again = store.create(obj).await;
    api.done().await;
    assert_eq!(created.unwrap().metadata.resource_version, "20");
    assert!(
        matches!(again, Err(StoreError::AlreadyExists { ref key }) if key.name == "build"),
        "{again:?}"
    );
}

#[tokio::test]
async fn update_status_applies_the_status_guarded_by_the_version() {
    let (store, api) = mock_store();
    let mut running = job("build", "alpine");
    running.status = json!({"phase": "Running"});
    let status_path = format!("{}/status", path("build"));
    let api = api.expect(vec![
        Exchange::patch(&status_path)
            .applied_by(STATUS_MANAGER)
            .body("/metadata/resourceVersion", json!("7"))
            .body("/kind", json!("Job"))
            .body("/status", json!({"phase": "Running"}))
            .body("/spec", Value::Null)
            .reply(200, served(&running, "8")),
        Exchange::patch(&status_path).applied_by(STATUS_MANAGER).reply(
            409,
            status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again"),
        ),
    ]);
    let written = store
        .update_status(&key("build"), "7", json!({"phase": "Running"}))
        .await;
    let stale = store
        .update_status(&key("build"), "7", json!({"phase": "Failed"}))
        .await;
    api.done().await;
    let written = written.unwrap();
    assert_eq!(
        (
            written.status["phase"].as_str(),
            written.metadata.resource_version.as_str()
        ),
        (Some("Running"), "8")
    );
    assert!(
        matches!(stale, Err(StoreError::Conflict { ref expected, .. }) if expected == "7"),
        "{stale:?}"
    );
}

#[tokio::test]
async fn apply_creates_with_server_side_apply() {
    let (store, api) = mock_store();
    let file = from_file(job("build", "alpine"), "build.yaml");
    let api = api.expect(vec![
        Exchange::get(path("build")).not_found(),
        Exchange::patch(path("build"))
            .applied_by(SYNC_MANAGER)
            .body("/metadata/name", json!("build"))
            .body("/metadata/namespace", json!("default"))
            .body(
                "/metadata/annotations/orcaops.dev~1source",
                json!("file:build.yaml"),
            )
            .body("/spec", json!({"image": "alpine"}))
            .body("/status", Value::Null)
            .reply(201, served_applied(&file, &file, "30")),
    ]);
    let applied = store.apply(file).await;
    api.done().await;
    let (outcome, obj) = applied.unwrap();
    assert_eq!(outcome, ApplyOutcome::Created);
    assert_eq!(obj.metadata.generation, 1);
}

#[tokio::test]
async fn apply_of_what_is_there_sends_no_write() {
    let (store, api) = mock_store();
    let file = from_file(job("build", "alpine"), "build.yaml");
    let mut stored = file.clone();
    // Set by others: apply leaves these alone, so they are no change.
    stored.metadata.labels.insert("tier".into(), "gold".into());
    stored.status = json!({"phase": "Succeeded"});
    let api = api.expect(vec![
        Exchange::get(path("build")).reply(200, served_applied(&stored, &file, "31")),
    ]);
    let applied = store.apply(file).await;
    api.done().await;
    let (outcome, obj) = applied.unwrap();
    assert_eq!(outcome, ApplyOutcome::Unchanged);
    assert_eq!(obj.metadata.resource_version, "31");
}

#[tokio::test]
async fn apply_of_a_changed_spec_configures_and_keeps_a_cancel_request() {
    let (store, api) = mock_store();
    let mut stored = from_file(job("build", "alpine"), "build.yaml");
    stored
        .metadata
        .annotations
        .insert(keys::CANCEL.into(), "2".into());
    let file = from_file(job("build", "debian"), "build.yaml");
    let mut after = stored.clone();
    after.spec = json!({"image": "debian"});
    after.metadata.generation = 2;
    let api = api.expect(vec![
        Exchange::get(path("build")).reply(200, served_applied(&stored, &stored, "40")),
        Exchange::patch(path("build"))
            .applied_by(SYNC_MANAGER)
            .body("/spec/image", json!("debian"))
            .body("/metadata/annotations/orcaops.dev~1cancel", json!("2"))
            .reply(200, served_applied(&after, &after, "41")),
    ]);
    let applied = store.apply(file).await;
    api.done().await;
    let (outcome, obj) = applied.unwrap();
    assert_eq!(outcome, ApplyOutcome::Configured);
    assert_eq!(obj.metadata.generation, 2);
}

#[tokio::test]
async fn apply_that_the_server_finds_unchanged_is_unchanged() {
    let (store, api) = mock_store();
    let file = job("build", "alpine");
    // Another manager added a spec field: the read differs, the apply changes nothing.
    let mut stored = file.clone();
    stored.spec["suspend"] = json!(false);
    let api = api.expect(vec![
        Exchange::get(path("build")).reply(200, served(&stored, "50")),
        Exchange::patch(path("build"))
            .applied_by(SYNC_MANAGER)
            .reply(200, served(&stored, "50")),
    ]);
    let applied = store.apply(file).await;
    api.done().await;
    assert_eq!(applied.unwrap().0, ApplyOutcome::Unchanged);
}

#[tokio::test]
async fn replace_puts_with_the_version_read() {
    let (store, api) = mock_store();
    let api = api.expect(vec![
        Exchange::get(path("build")).reply(200, served(&job("build", "alpine"), "60")),
        Exchange::put(path("build"))
            .body("/metadata/resourceVersion", json!("60"))
            .body("/spec/image", json!("debian"))
            .reply(200, served(&job("build", "debian"), "61")),
    ]);
    let replaced = store.replace(job("build", "debian")).await;
    api.done().await;
    assert_eq!(replaced.unwrap().metadata.resource_version, "61");
}

#[tokio::test]
async fn delete_returns_the_object_as_the_api_left_it() {
    let (store, api) = mock_store();
    let mut deleting = with_finalizers(&job("build", "alpine"), &[keys::FINALIZER]);
    deleting.metadata.deletion_timestamp = Some(chrono::Utc::now());
    let api = api.expect(vec![
        Exchange::delete(path("build")).reply(200, served(&deleting, "70")),
        Exchange::delete(path("gone")).not_found(),
    ]);
    let deleted = store.delete(&key("build")).await;
    let gone = store.delete(&key("gone")).await;
    api.done().await;
    let deleted = deleted.unwrap();
    assert!(deleted.metadata.deletion_timestamp.is_some());
    assert_eq!(deleted.metadata.finalizers, [keys::FINALIZER]);
    assert!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");
}

#[tokio::test]
async fn finalizers_are_added_and_removed_by_guarded_json_patches() {
    let (store, api) = mock_store();
    let plain = job("build", "alpine");
    let finalized = with_finalizers(&plain, &["other", keys::FINALIZER]);
    let api = api.expect(vec![
        // Added: the list was empty.
        Exchange::get(path("build")).reply(200, served(&plain, "80")),
        Exchange::patch(path("build"))
            .content_type(JSON_PATCH)
            .body(
                "",
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": [keys::FINALIZER]},
                ]),
            )
            .reply(
                200,
                served(&with_finalizers(&plain, &[keys::FINALIZER]), "81"),
            ),
        // Adding again: already there, no write.
        Exchange::get(path("build")).reply(200, served(&finalized, "82")),
        // Removed by index, tested first.
        Exchange::get(path("build")).reply(200, served(&finalized, "82")),
        Exchange::patch(path("build"))
            .content_type(JSON_PATCH)
            .body(
                "",
                json!([
                    {"op": "test", "path": "/metadata/finalizers/1", "value": keys::FINALIZER},
                    {"op": "remove", "path": "/metadata/finalizers/1"},
                ]),
            )
            .reply(200, served(&with_finalizers(&plain, &["other"]), "83")),
        // Removing from an object that is gone is done.
        Exchange::get(path("build")).not_found(),
    ]);
    let added = store.add_finalizer(&key("build"), keys::FINALIZER).await;
    let again = store.add_finalizer(&key("build"), keys::FINALIZER).await;
    let removed = store.remove_finalizer(&key("build"), keys::FINALIZER).await;
    let gone = store.remove_finalizer(&key("build"), keys::FINALIZER).await;
    api.done().await;
    added.unwrap();
    again.unwrap();
    removed.unwrap();
    gone.unwrap();
}

#[tokio::test]
async fn a_finalizer_patch_that_lost_a_race_is_built_again_from_a_fresh_read() {
    let (store, api) = mock_store();
    let plain = job("build", "alpine");
    let theirs = with_finalizers(&plain, &["theirs"]);
    let api = api.expect(vec![
        Exchange::get(path("build")).reply(200, served(&plain, "90")),
        Exchange::patch(path("build"))
            .body("/0/value", Value::Null)
            .reply(
                422,
                status(422, "Invalid", "testing value /metadata/finalizers failed"),
            ),
        Exchange::get(path("build")).reply(200, served(&theirs, "91")),
        Exchange::patch(path("build"))
            .body("/0/value", json!(["theirs"]))
            .body("/1/path", json!("/metadata/finalizers/-"))
            .reply(
                200,
                served(&with_finalizers(&plain, &["theirs", keys::FINALIZER]), "92"),
            ),
    ]);
    let added = store.add_finalizer(&key("build"), keys::FINALIZER).await;
    api.done().await;
    added.unwrap();
}

#[tokio::test]
async fn record_event_posts_an_event_about_the_object() {
    let (store, api) = mock_store();
    let api = api.expect(vec![
        Exchange::post(events_path("default"))
            .body("/regarding/kind", json!("Job"))
            .body("/regarding/name", json!("build"))
            .body("/regarding/apiVersion", json!("orcaops.dev/v1alpha1"))
            .body("/regarding/uid", json!("uid-build"))
            .body("/type", json!("Warning"))
            .body("/reason", json!("ImagePullFailed"))
            .body("/note", json!("cannot pull alpine:nope"))
            .body("/reportingController", json!("orcaops"))
            .body("/reportingInstance", json!(super::mock::INSTANCE))
            .reply(201, event_created()),
    ]);
    let event = |kind: &str, name: &str| NewEvent {
        involved: InvolvedObject {
            kind: kind.into(),
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        },
        type_: EventType::Warning,
        reason: "ImagePullFailed".into(),
        message: "cannot pull alpine:nope".into(),
    };
    let recorded = store.record_event(event("Job", "build")).await;
    // An event about a file of the folder has nothing to attach to: no request.
    let file = store.record_event(event("File", "jobs/a.yaml")).await;
    api.done().await;
    recorded.unwrap();
    file.unwrap();
}

#[tokio::test]
async fn watch_turns_the_list_and_the_stream_into_our_events() {
    let (store, api) = mock_store();
    let a = job("a", "alpine");
    let jobs = collection_path(Kind::Job, None);
    let mut watches = 0;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = api.route(seen.clone(), move |request| {
        let watching = request
            .query
            .iter()
            .any(|(n, v)| n == "watch" && v == "true");
        let kind = Kind::ALL
            .into_iter()
            .find(|k| request.path == collection_path(*k, None))?;
        match (kind, watching) {
            (Kind::Job, false) => Some(Reply::Json(
                200,
                list(Kind::Job, vec![served(&a, "10")], "10"),
            )),
            (kind, false) => Some(Reply::Json(200, list(kind, vec![], "10"))),
            (Kind::Job, true) if watches == 0 => {
                watches += 1;
                Some(Reply::Lines(vec![
                    json!({"type": "ADDED", "object": served(&job("b", "alpine"), "11")}),
                    json!({"type": "MODIFIED", "object": served(&job("a", "debian"), "12")}),
                    json!({"type": "DELETED", "object": served(&job("b", "alpine"), "13")}),
                ]))
            }
            // Later watches (and those of the other kinds) stay open with nothing to say.
            _ => None,
        }
    });
    let mut events = store.watch();
    let mut got = Vec::new();
    while got.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("the watch delivers within 5 s")
            .expect("the feed is open");
        got.push(event);
    }
    server.abort();
    let summary: Vec<(WatchEventType, &str)> = got
        .iter()
        .map(|e| (e.type_, e.object.metadata.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (WatchEventType::Added, "a"),
            (WatchEventType::Added, "b"),
            (WatchEventType::Modified, "a"),
            (WatchEventType::Deleted, "b"),
        ]
    );
    let previous = got[2].previous.as_ref().expect("MODIFIED carries previous");
    assert_eq!(previous.spec["image"], "alpine");
    assert_eq!(got[2].object.spec["image"], "debian");
    let seen = seen.lock().unwrap();
    let job_watch = seen
        .iter()
        .find(|r| r.path == jobs && r.query.iter().any(|(n, _)| n == "watch"))
        .expect("a watch of jobs in all namespaces");
    assert!(
        job_watch
            .query
            .contains(&("resourceVersion".into(), "10".into())),
        "{job_watch}"
    );
}

#[tokio::test]
async fn an_unreachable_api_is_told_apart_from_a_refusal() {
    let (store, api) = mock_store();
    // The mock server gone: every request fails before any answer.
    drop(api);
    let err = store.get(&key("build")).await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(
        err.to_string().contains("cannot reach the Kubernetes API"),
        "{err}"
    );
    let Err(AccessError::Unreachable(_)) = store.check_access().await else {
        panic!("check_access must say unreachable");
    };
    let (store, api) = mock_store();
    let api = api.expect(vec![
        Exchange::get(collection_path(Kind::Job, None))
            .query("limit", "1")
            .not_found(),
    ]);
    let missing = store.check_access().await;
    api.done().await;
    assert!(
        matches!(missing, Err(AccessError::CrdsMissing)),
        "{missing:?}"
    );
}
