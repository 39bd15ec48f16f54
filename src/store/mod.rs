//! The store: every resource with metadata, spec and status, versioned for optimistic
//! concurrency, with a watch stream; plus events and run records.
//!
//! [`ObjectStore`] is what controllers and sources use; local mode implements it with
//! [`LocalStore`] (SQLite in WAL mode), cluster mode with [`KubeStore`] (the Kubernetes API).

pub mod events;
pub mod kube;
pub mod local;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::resources::{Kind, Object, ObjectKey};

pub use self::kube::KubeStore;
pub use events::{Event, EventType, InvolvedObject, NewEvent};
pub use local::{ListPage, LocalStore};

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    #[error("{key} already exists")]
    AlreadyExists { key: ObjectKey },
    #[error(
        "conflict writing {key}: resourceVersion {expected} is stale (the object is now at {current}); read it again and retry"
    )]
    Conflict {
        key: ObjectKey,
        expected: String,
        current: String,
    },
    /// A watch asked to resume from a resourceVersion the store no longer has the events
    /// after (or never had); the watcher must list again and watch from the list's version.
    #[error("resourceVersion {rv} is too old; list again")]
    Gone { rv: String },
    #[error("cannot store {key}: {message}")]
    Invalid { key: ObjectKey, message: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot use the data dir: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The Kubernetes API answered with an error the variants above do not name, or
    /// could not be reached ([`StoreError::is_unreachable`]).
    #[error("{}", self::kube::describe(.0))]
    Kube(#[source] ::kube::Error),
}

impl StoreError {
    /// Whether the store could not be reached at all (as opposed to refusing a request).
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Kube(e) => self::kube::is_unreachable(e),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as Kubernetes watch streams send it: `{"type": "ADDED", "object": {...}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub type_: WatchEventType,
    pub object: Object,
    /// The object before a MODIFIED change (None for ADDED and DELETED). A watch with a
    /// selector needs it: an object that stops matching is DELETED for that watcher, one
    /// that starts matching is ADDED, as the Kubernetes watch cache does.
    #[serde(skip)]
    pub previous: Option<Arc<Object>>,
}

impl WatchEvent {
    pub fn new(type_: WatchEventType, object: Object) -> Self {
        WatchEvent {
            type_,
            object,
            previous: None,
        }
    }
}

/// What an apply did.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    Created,
    Configured,
    Unchanged,
}

/// What controllers and sources need of a store, whichever it is: [`LocalStore`]
/// (SQLite) in local mode, the Kubernetes API in cluster mode. Run records, logs and
/// artifacts are not here: they stay in the local data dir in both modes.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// A stable identity of this store, put on every container it owns, so that two
    /// stores sharing one Docker daemon or cluster never clean up each other's.
    fn instance_id(&self) -> &str;
    async fn get(&self, key: &ObjectKey) -> Result<Option<Object>>;
    /// Every object of a kind (in one namespace, or all), with the list's resourceVersion.
    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Object>, String)>;
    async fn create(&self, obj: Object) -> Result<Object>;
    /// Creates or updates from a declarative source; `generation` moves only with `spec`.
    async fn apply(&self, obj: Object) -> Result<(ApplyOutcome, Object)>;
    async fn replace(&self, obj: Object) -> Result<Object>;
    /// Writes the status only; a stale `resource_version` ("" = unconditional) is a Conflict.
    async fn update_status(
        &self,
        key: &ObjectKey,
        resource_version: &str,
        status: serde_json::Value,
    ) -> Result<Object>;
    async fn delete(&self, key: &ObjectKey) -> Result<Object>;
    /// Every change from now on (subscribe before listing, so nothing is missed).
    fn watch(&self) -> tokio::sync::broadcast::Receiver<WatchEvent>;
    async fn record_event(&self, event: NewEvent) -> Result<()>;
    /// Adds finalizer `name` to the object unless it is there already. The local store
    /// deletes at once and keeps no finalizers, so there this does nothing.
    async fn add_finalizer(&self, key: &ObjectKey, name: &str) -> Result<()> {
        let _ = (key, name);
        Ok(())
    }
    /// Removes finalizer `name` from the object if it is there; an object already gone is
    /// fine (removing the last finalizer of a deleted object is what lets it go).
    async fn remove_finalizer(&self, key: &ObjectKey, name: &str) -> Result<()> {
        let _ = (key, name);
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalStore {
    fn instance_id(&self) -> &str {
        LocalStore::instance_id(self)
    }
    async fn get(&self, key: &ObjectKey) -> Result<Option<Object>> {
        LocalStore::get(self, key).await
    }
    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Object>, String)> {
        LocalStore::list(self, kind, namespace).await
    }
    async fn create(&self, obj: Object) -> Result<Object> {
        LocalStore::create(self, obj).await
    }
    async fn apply(&self, obj: Object) -> Result<(ApplyOutcome, Object)> {
        LocalStore::apply(self, obj).await
    }
    async fn replace(&self, obj: Object) -> Result<Object> {
        LocalStore::replace(self, obj).await
    }
    async fn update_status(
        &self,
        key: &ObjectKey,
        resource_version: &str,
        status: serde_json::Value,
    ) -> Result<Object> {
        LocalStore::update_status(self, key, resource_version, status).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<Object> {
        LocalStore::delete(self, key).await
    }
    fn watch(&self) -> tokio::sync::broadcast::Receiver<WatchEvent> {
        LocalStore::watch(self)
    }
    async fn record_event(&self, event: NewEvent) -> Result<()> {
        LocalStore::record_event(self, event).await
    }
}
