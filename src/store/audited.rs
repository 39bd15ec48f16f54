//! A store whose writes are recorded in the audit log under one actor: what the
//! controllers create, update and delete (the Jobs of a workflow run, a schedule's runs,
//! what a TTL or an owner's deletion removes) is then in the log beside what people
//! and agents did, as actor `controller`.
//!
//! Status writes, events, finalizers and tombstones are not recorded: they follow from
//! the writes that are (a status is what the controller saw, not a decision anyone
//! made), and a busy server writes status many times a second.

use std::sync::Arc;

use super::{
    ApplyOutcome, Event, EventQuery, ListPage, NewEvent, ObjectStore, PageQuery, Result,
    SecretValue, StoreError, Tombstone, WatchEvent, WatchFrom, Write,
};
use crate::audit::{AuditLog, Entry};
use crate::resources::{Kind, Object, ObjectKey};

/// The actor of what the controllers write.
pub const CONTROLLER: &str = "controller";

/// `inner`, with its object writes recorded in `log` as done by `actor`.
pub struct AuditedStore {
    inner: Arc<dyn ObjectStore>,
    log: AuditLog,
    actor: String,
}

impl AuditedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, log: AuditLog, actor: &str) -> Self {
        AuditedStore {
            inner,
            log,
            actor: actor.to_string(),
        }
    }

    fn record<T>(&self, verb: &str, key: &ObjectKey, done: u16, outcome: &Result<T>) {
        let (code, detail) = match outcome {
            Ok(_) => (done, String::new()),
            Err(e) => (e.code(), e.to_string()),
        };
        let entry = Entry::on_object(self.actor.clone(), verb, key, code, detail);
        self.log.record(entry);
    }
}

#[async_trait::async_trait]
impl ObjectStore for AuditedStore {
    fn instance_id(&self) -> &str {
        self.inner.instance_id()
    }
    async fn get(&self, key: &ObjectKey) -> Result<Option<Object>> {
        self.inner.get(key).await
    }
    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Object>, String)> {
        self.inner.list(kind, namespace).await
    }
    async fn create(&self, obj: Object) -> Result<Object> {
        let key = obj.key();
        let created = self.inner.create(obj).await;
        self.record("create", &key, 201, &created);
        created
    }
    async fn apply(&self, obj: Object) -> Result<(ApplyOutcome, Object)> {
        let key = obj.key();
        let applied = self.inner.apply(obj).await;
        match &applied {
            // Nothing changed: nothing was done.
            Ok((ApplyOutcome::Unchanged, _)) => {}
            Ok((ApplyOutcome::Created, _)) => self.record("create", &key, 201, &applied),
            _ => self.record("apply", &key, 200, &applied),
        }
        applied
    }
    async fn replace(&self, obj: Object) -> Result<Object> {
        let key = obj.key();
        let replaced = self.inner.replace(obj).await;
        self.record("update", &key, 200, &replaced);
        replaced
    }
    async fn update_status(
        &self,
        key: &ObjectKey,
        resource_version: &str,
        status: serde_json::Value,
    ) -> Result<Object> {
        self.inner
            .update_status(key, resource_version, status)
            .await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<Object> {
        let deleted = self.inner.delete(key).await;
        // Deleting what is gone already is how a controller makes sure; not an action.
        if !matches!(deleted, Err(StoreError::NotFound { .. })) {
            self.record("delete", key, 200, &deleted);
        }
        deleted
    }
    async fn preview(&self, write: Write) -> Result<Object> {
        self.inner.preview(write).await
    }
    fn watch(&self) -> tokio::sync::broadcast::Receiver<WatchEvent> {
        self.inner.watch()
    }
    fn watch_if_running(&self) -> Option<tokio::sync::broadcast::Receiver<WatchEvent>> {
        self.inner.watch_if_running()
    }
    async fn record_event(&self, event: NewEvent) -> Result<()> {
        self.inner.record_event(event).await
    }
    async fn list_page(&self, query: PageQuery<'_>) -> Result<ListPage> {
        self.inner.list_page(query).await
    }
    fn can_resume_from(&self, rv: &str) -> bool {
        self.inner.can_resume_from(rv)
    }
    async fn current_resource_version(&self) -> Result<String> {
        self.inner.current_resource_version().await
    }
    async fn writable(&self) -> Result<()> {
        self.inner.writable().await
    }
    async fn watch_from(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        rv: &str,
        known: &[Object],
    ) -> Result<WatchFrom> {
        self.inner.watch_from(kind, namespace, rv, known).await
    }
    async fn list_events(&self, query: EventQuery<'_>) -> Result<Vec<Event>> {
        self.inner.list_events(query).await
    }
    async fn add_finalizer(&self, key: &ObjectKey, name: &str) -> Result<()> {
        self.inner.add_finalizer(key, name).await
    }
    async fn remove_finalizer(&self, key: &ObjectKey, name: &str) -> Result<()> {
        self.inner.remove_finalizer(key, name).await
    }
    async fn record_tombstone(&self, obj: &Object, reason: &str) -> Result<()> {
        self.inner.record_tombstone(obj, reason).await
    }
    async fn tombstones(&self) -> Result<Vec<Tombstone>> {
        self.inner.tombstones().await
    }
    async fn remove_tombstone(&self, key: &ObjectKey) -> Result<()> {
        self.inner.remove_tombstone(key).await
    }
    async fn read_secret_key(&self, namespace: &str, name: &str, key: &str) -> Result<SecretValue> {
        self.inner.read_secret_key(namespace, name, key).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::LocalStore;

    /// What a controller writes is in the log as its, with the outcome; reads, status
    /// writes and re-deleting what is gone are not.
    #[tokio::test]
    async fn the_controllers_writes_are_recorded_and_their_status_writes_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let audited = AuditedStore::new(Arc::new(store), log.clone(), CONTROLLER);
        let job = Object::new(Kind::Job, "team-a", "step-1", json!({"image": "busybox"}));
        let key = job.key();
        audited.create(job.clone()).await.unwrap();
        assert!(audited.create(job.clone()).await.is_err());
        audited.get(&key).await.unwrap().unwrap();
        audited
            .update_status(&key, "", json!({"phase": "Running"}))
            .await
            .unwrap();
        let (outcome, _) = audited.apply(job.clone()).await.unwrap();
        assert_eq!(outcome, ApplyOutcome::Unchanged);
        let mut changed = job.clone();
        changed.spec = json!({"image": "busybox", "timeoutSeconds": 5});
        audited.apply(changed).await.unwrap();
        audited.delete(&key).await.unwrap();
        assert!(audited.delete(&key).await.is_err());
        log.flush().await;

        let entries = crate::audit::read_all(log.dir()).unwrap();
        let seen: Vec<(&str, &str, u16)> = entries
            .iter()
            .map(|e| (e.actor.as_str(), e.verb.as_str(), e.code))
            .collect();
        assert_eq!(
            seen,
            [
                ("controller", "create", 201),
                ("controller", "create", 409),
                ("controller", "apply", 200),
                ("controller", "delete", 200),
            ]
        );
        assert!(
            entries
                .iter()
                .all(|e| e.resource == "jobs" && e.namespace == "team-a" && e.name == "step-1")
        );
        assert!(
            entries[1].detail.contains("already exists"),
            "{:?}",
            entries[1]
        );
        assert_eq!(crate::audit::verify(log.dir()).unwrap().unwrap(), 4);
    }
}
