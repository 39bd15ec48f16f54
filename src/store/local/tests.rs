//! The local store against real SQLite files in temporary directories.

mod faults;
mod labels;
mod objects;
mod records;
mod watch;

use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use tokio::sync::broadcast::Receiver;

use super::*;
use crate::store::{EventType, InvolvedObject, NewEvent};

pub(super) async fn store() -> (TempDir, LocalStore) {
    let dir = TempDir::new().expect("a temporary directory");
    let store = LocalStore::open(dir.path()).await.expect("the store opens");
    (dir, store)
}

pub(super) fn job(namespace: &str, name: &str) -> Object {
    Object::new(
        Kind::Job,
        namespace,
        name,
        json!({"steps": [{"name": "hi", "run": "echo hi"}]}),
    )
}

pub(super) fn rv(obj: &Object) -> u64 {
    obj.metadata
        .resource_version
        .parse()
        .expect("a numeric resourceVersion")
}

pub(super) async fn next(rx: &mut Receiver<WatchEvent>) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a watch event within 5 s")
        .expect("the watch stream is open")
}

pub(super) fn event_rv(event: &WatchEvent) -> u64 {
    rv(&event.object)
}
pub(super) fn new_event(name: &str, reason: &str, message: &str) -> NewEvent {
    NewEvent {
        involved: InvolvedObject {
            kind: "Job".into(),
            namespace: "default".into(),
            name: name.into(),
            uid: "u1".into(),
        },
        type_: EventType::Normal,
        reason: reason.into(),
        message: message.into(),
    }
}
#[tokio::test]
async fn open_creates_the_data_dir_and_the_database() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("nested").join("data");
    let store = LocalStore::open(&data).await.unwrap();
    assert_eq!(store.data_dir(), data);
    assert!(data.join(DB_FILE).is_file());
    assert_eq!(store.current_resource_version().await.unwrap(), "0");
    let readers = &store.inner.readers;
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(readers)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(readers)
        .await
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(readers)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
}
#[tokio::test]
async fn objects_and_versions_survive_a_reopen() {
    let dir = TempDir::new().unwrap();
    let (kept, before) = {
        let store = LocalStore::open(dir.path()).await.unwrap();
        let kept = store.create(job("default", "kept")).await.unwrap();
        let gone = store.create(job("default", "gone")).await.unwrap();
        store.delete(&gone.key()).await.unwrap();
        (kept, store.current_resource_version().await.unwrap())
    };
    assert_eq!(before, "3");
    let store = LocalStore::open(dir.path()).await.unwrap();
    assert_eq!(
        store.current_resource_version().await.unwrap(),
        "3",
        "the delete's version is kept too"
    );
    assert_eq!(store.get(&kept.key()).await.unwrap(), Some(kept.clone()));
    let (listed, at) = store.list(Kind::Job, None).await.unwrap();
    assert_eq!((listed.len(), at.as_str()), (1, "3"));
    // The events before the restart are not in memory any more.
    assert!(matches!(
        store.watch_since("1").await,
        Err(StoreError::Gone { .. })
    ));
    let next_write = store.create(job("default", "new")).await.unwrap();
    assert_eq!(next_write.metadata.resource_version, "4");
}
#[test]
fn store_futures_can_be_spawned() {
    fn assert_send<T: Send>(_: T) {}
    let store: Option<LocalStore> = None;
    if let Some(store) = store {
        assert_send(store.watch_since("1"));
        assert_send(store.create(job("default", "a")));
        assert_send(store.list(Kind::Job, None));
        assert_send(store.record_event(new_event("a", "b", "c")));
    }
}
