//! The store: every resource with metadata, spec and status, versioned for optimistic
//! concurrency, with a watch stream; plus events and run records.
//!
//! Local mode uses [`LocalStore`] (SQLite in WAL mode).

pub mod events;
pub mod local;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::resources::{Object, ObjectKey};

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
