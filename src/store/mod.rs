//! The store: every resource with metadata, spec and status, versioned for optimistic
//! concurrency, with a watch stream; plus events and run records.
//!
//! [`ObjectStore`] is what controllers and sources use; local mode implements it with
//! [`LocalStore`] (SQLite in WAL mode), cluster mode with [`KubeStore`] (the Kubernetes API).

pub mod audited;
pub mod events;
pub mod kube;
pub mod local;
pub mod secrets;
pub use secrets::SecretValue;
pub mod tombstone;

use std::sync::Arc;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::resources::selector::LabelSelector;
use crate::resources::{Kind, Object, ObjectKey};

pub use self::kube::KubeStore;
pub use events::{Event, EventType, InvolvedObject, NewEvent};
pub use local::keys::StoredKey;
pub use local::{ListPage, LocalStore};
pub use tombstone::{Tombstone, spec_digest};

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
    /// A watch fell behind the store's buffer and lost `missed` events; the watcher must
    /// list again and watch from the list's version.
    #[error("the watch fell {missed} events behind the store and lost them")]
    Lagged { missed: u64 },
    #[error("cannot store {key}: {message}")]
    Invalid { key: ObjectKey, message: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot use the data dir: {0}")]
    Io(#[from] std::io::Error),
    /// Writes fail on the disk (full, read-only): the store refuses writes until one
    /// succeeds again. Reads still work.
    #[error(
        "the store cannot write since {since}: {message}; free space in (or make writable) the data dir, and writes resume by themselves"
    )]
    Unwritable {
        since: chrono::DateTime<chrono::Utc>,
        message: String,
    },
    #[error("stored record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("secrets \"{name}\" not found in namespace {namespace}")]
    SecretNotFound { namespace: String, name: String },
    #[error("secrets \"{name}\" already exists in namespace {namespace}")]
    SecretExists { namespace: String, name: String },
    #[error(
        "conflict writing secret {namespace}/{name}: resourceVersion {expected} is stale (the secret is now at {current}); read it again and retry"
    )]
    SecretConflict {
        namespace: String,
        name: String,
        expected: String,
        current: String,
    },
    #[error("cannot store secret {name}: {message}")]
    SecretInvalid { name: String, message: String },
    /// The key file of the secrets (`<data-dir>/secrets.key`) cannot be used, or does not
    /// open a stored secret. The message never carries a secret's data.
    #[error("the secrets key file {}: {message}", .path.display())]
    SecretKey {
        path: std::path::PathBuf,
        message: String,
    },
    /// The Kubernetes API answered with an error the variants above do not name, or
    /// could not be reached ([`StoreError::is_unreachable`]).
    #[error("{}", self::kube::describe(.0))]
    Kube(#[source] ::kube::Error),
}

impl StoreError {
    /// The HTTP status code a request that met this error is answered with, as the
    /// audit log records outcomes (the API's answer adds a reason and details).
    pub fn code(&self) -> u16 {
        match self {
            StoreError::NotFound { .. } | StoreError::SecretNotFound { .. } => 404,
            StoreError::AlreadyExists { .. }
            | StoreError::SecretExists { .. }
            | StoreError::Conflict { .. }
            | StoreError::SecretConflict { .. } => 409,
            StoreError::Invalid { .. } | StoreError::SecretInvalid { .. } => 422,
            StoreError::Gone { .. } => 410,
            StoreError::Kube(::kube::Error::Api(status)) => status.code,
            StoreError::Unwritable { .. } => 503,
            _ if self.is_unreachable() || self.is_storage_failure() => 503,
            _ => 500,
        }
    }

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

/// One page of a list of `kind` (in `namespace`, or all) in (namespace, name) order:
/// the objects after `after` that `labels` selects (None: all), at most `limit` of them
/// (None: all).
#[derive(Clone, Copy, Debug)]
pub struct PageQuery<'a> {
    pub kind: Kind,
    pub namespace: Option<&'a str>,
    pub after: Option<(&'a str, &'a str)>,
    pub limit: Option<usize>,
    /// The local store answers it from its label index; the Kubernetes store filters.
    pub labels: Option<&'a LabelSelector>,
}

impl<'a> PageQuery<'a> {
    /// Every object of `kind` in `namespace` (None: all namespaces).
    pub fn all(kind: Kind, namespace: Option<&'a str>) -> Self {
        PageQuery {
            kind,
            namespace,
            after: None,
            limit: None,
            labels: None,
        }
    }

    /// Every object of `kind` in `namespace` (None: all namespaces) that `labels` selects.
    pub fn selected(kind: Kind, namespace: Option<&'a str>, labels: &'a LabelSelector) -> Self {
        PageQuery {
            labels: Some(labels),
            ..PageQuery::all(kind, namespace)
        }
    }
}

/// Which events to list: those about objects matching `kind`, `namespace` and `name`
/// (None: any), at most `limit` of them.
#[derive(Clone, Copy, Debug)]
pub struct EventQuery<'a> {
    pub kind: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub limit: usize,
}

impl<'a> EventQuery<'a> {
    /// The newest `limit` events about anything; narrow with the setters.
    pub fn newest(limit: usize) -> Self {
        EventQuery {
            kind: None,
            namespace: None,
            name: None,
            limit,
        }
    }

    pub fn kind(self, kind: &'a str) -> Self {
        EventQuery {
            kind: Some(kind),
            ..self
        }
    }

    pub fn namespace(self, namespace: &'a str) -> Self {
        EventQuery {
            namespace: Some(namespace),
            ..self
        }
    }

    pub fn name(self, name: &'a str) -> Self {
        EventQuery {
            name: Some(name),
            ..self
        }
    }
}

/// The changes of a watch resumed from a resourceVersion (see [`ObjectStore::watch_from`]).
pub struct WatchFrom {
    /// The changes after the version that the store already has at hand, to send first.
    pub replay: Vec<WatchEvent>,
    /// Everything after `replay`, with no gap and no duplicate. It may carry other kinds
    /// and namespaces than asked (the watcher filters). It ends with an error item when it
    /// cannot go on: [`StoreError::Lagged`] or [`StoreError::Gone`] (the watcher must list
    /// again), or another error of the store.
    pub feed: BoxStream<'static, Result<WatchEvent>>,
}

/// A write, for [`ObjectStore::preview`].
#[derive(Clone, Debug)]
pub enum Write {
    Create(Object),
    Apply(Object),
    Replace(Object),
    Delete(ObjectKey),
}

/// What controllers, sources and the REST facade need of a store, whichever it is:
/// [`LocalStore`] (SQLite) in local mode, the Kubernetes API in cluster mode. Run records,
/// logs and artifacts are not here: they stay in the local data dir in both modes.
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
    /// What `write` would store (or, for a delete, remove), decided as the write itself
    /// decides but written nowhere: `dryRun=All`. Errors are the write's own (a create
    /// of an object that exists, a replace at a stale resourceVersion).
    async fn preview(&self, write: Write) -> Result<Object> {
        use local::decide;
        let key = match &write {
            Write::Create(obj) | Write::Apply(obj) | Write::Replace(obj) => obj.key(),
            Write::Delete(key) => key.clone(),
        };
        let existing = self.get(&key).await?;
        let now = chrono::Utc::now();
        let decision = match write {
            Write::Create(obj) => decide::create(existing, decide::validated(obj)?, now)?,
            Write::Apply(obj) => decide::apply(existing, decide::validated(obj)?, now)?,
            Write::Replace(obj) => decide::replace(existing, decide::validated(obj)?)?,
            Write::Delete(key) => decide::delete(existing, &key)?,
        };
        Ok(decision.into_object())
    }
    /// Every change from now on (subscribe before listing, so nothing is missed).
    fn watch(&self) -> tokio::sync::broadcast::Receiver<WatchEvent>;
    /// The same feed, but only when subscribing starts nothing (the feed runs already):
    /// for a caller that can do without it, such as a followed log, which wakes on it
    /// and polls otherwise. None by default.
    fn watch_if_running(&self) -> Option<tokio::sync::broadcast::Receiver<WatchEvent>> {
        None
    }
    async fn record_event(&self, event: NewEvent) -> Result<()>;
    /// One page of [`list`](Self::list): the objects the query asks for, how many more
    /// follow, and the resourceVersion.
    async fn list_page(&self, query: PageQuery<'_>) -> Result<ListPage>;
    /// Whether a list continued at resourceVersion `rv` can still be served as one
    /// consistent read (the local store: while `rv` is in its watch history).
    fn can_resume_from(&self, rv: &str) -> bool {
        let _ = rv;
        true
    }
    /// The resourceVersion of the newest change; answering it is the store's readiness.
    async fn current_resource_version(&self) -> Result<String>;
    /// Whether writes succeed: [`StoreError::Unwritable`] while they fail on the disk
    /// (the local store probes with a small write once one has failed).
    async fn writable(&self) -> Result<()> {
        Ok(())
    }
    /// The changes of `kind` (in `namespace`, or all) after resourceVersion `rv`; `Gone`
    /// when the store no longer has them: list again and watch from the list's version.
    /// `known` are the objects the watcher already has (the list it starts from): a
    /// MODIFIED of one of them carries it as `previous` where the store's own events do
    /// not (the local store's always do).
    async fn watch_from(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        rv: &str,
        known: &[Object],
    ) -> Result<WatchFrom>;
    /// The events the query asks for, newest first.
    async fn list_events(&self, query: EventQuery<'_>) -> Result<Vec<Event>>;
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
    /// Keeps a [`Tombstone`] for `obj`, which a controller deleted for `reason`, when a
    /// file declared it. Only the local store keeps them (a cluster's folder is synced
    /// by `orcaops sync`, which has no restart to survive).
    async fn record_tombstone(&self, obj: &Object, reason: &str) -> Result<()> {
        let _ = (obj, reason);
        Ok(())
    }
    /// Every tombstone kept.
    async fn tombstones(&self) -> Result<Vec<Tombstone>> {
        Ok(Vec::new())
    }
    /// Forgets the tombstone of `key`.
    async fn remove_tombstone(&self, key: &ObjectKey) -> Result<()> {
        let _ = key;
        Ok(())
    }
    /// The value of `key` in Secret `name` of `namespace`, for what the server checks
    /// itself (a webhook delivery's signature): the local store's own secrets, or the
    /// cluster's Secrets. A store that keeps none answers [`SecretValue::Native`].
    async fn read_secret_key(&self, namespace: &str, name: &str, key: &str) -> Result<SecretValue> {
        let _ = (namespace, name, key);
        Ok(SecretValue::Native)
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
    fn watch_if_running(&self) -> Option<tokio::sync::broadcast::Receiver<WatchEvent>> {
        Some(LocalStore::watch(self))
    }
    async fn record_event(&self, event: NewEvent) -> Result<()> {
        LocalStore::record_event(self, event).await
    }
    async fn list_page(&self, query: PageQuery<'_>) -> Result<ListPage> {
        LocalStore::list_page(self, query).await
    }
    fn can_resume_from(&self, rv: &str) -> bool {
        LocalStore::can_resume_from(self, rv)
    }
    async fn current_resource_version(&self) -> Result<String> {
        LocalStore::current_resource_version(self).await
    }
    async fn writable(&self) -> Result<()> {
        LocalStore::writable(self).await
    }
    /// Every kind's changes: the local store keeps one history for all of them.
    async fn watch_from(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        rv: &str,
        known: &[Object],
    ) -> Result<WatchFrom> {
        let _ = (kind, namespace, known);
        let (replay, receiver) = LocalStore::watch_since(self, rv).await?;
        Ok(WatchFrom {
            replay,
            feed: local_feed(receiver),
        })
    }
    async fn list_events(&self, query: EventQuery<'_>) -> Result<Vec<Event>> {
        LocalStore::list_events(self, query).await
    }
    async fn record_tombstone(&self, obj: &Object, reason: &str) -> Result<()> {
        LocalStore::record_tombstone(self, obj, reason).await
    }
    async fn tombstones(&self) -> Result<Vec<Tombstone>> {
        LocalStore::tombstones(self).await
    }
    async fn remove_tombstone(&self, key: &ObjectKey) -> Result<()> {
        LocalStore::remove_tombstone(self, key).await
    }
    async fn read_secret_key(&self, namespace: &str, name: &str, key: &str) -> Result<SecretValue> {
        <LocalStore as secrets::SecretValues>::secret_value(self, namespace, name, key).await
    }
}

/// A broadcast receiver as a feed: a receiver that lagged ends it with `Lagged`.
fn local_feed(
    receiver: tokio::sync::broadcast::Receiver<WatchEvent>,
) -> BoxStream<'static, Result<WatchEvent>> {
    use futures::StreamExt;
    use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

    let mut lagged = false;
    BroadcastStream::new(receiver)
        .map(|item| match item {
            Ok(event) => Ok(event),
            Err(BroadcastStreamRecvError::Lagged(missed)) => Err(StoreError::Lagged { missed }),
        })
        .take_while(move |item| {
            let go_on = !lagged;
            lagged |= item.is_err();
            futures::future::ready(go_on)
        })
        .boxed()
}
