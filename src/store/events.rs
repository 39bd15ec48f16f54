//! Kubernetes-style events: what happened to an object (or a file), aggregated by count.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// The object an event is about. `kind` is a resource kind, or `File` for an event about
/// a file of the watched folder (then `name` is the file's relative path).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
}

impl InvolvedObject {
    /// The object `obj`, by kind, namespace, name and uid.
    pub fn of(obj: &crate::resources::Object) -> InvolvedObject {
        InvolvedObject {
            kind: obj.kind.to_string(),
            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
            name: obj.metadata.name.clone(),
            uid: obj.metadata.uid.clone(),
        }
    }
}

/// An event to record; repeats of the same (object, type, reason, message) add to `count`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub involved: InvolvedObject,
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

/// A recorded event, shaped as Kubernetes' core/v1 Event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub involved_object: InvolvedObject,
    #[serde(rename = "type")]
    pub type_: EventType,
    pub reason: String,
    pub message: String,
    pub count: u32,
    pub first_timestamp: DateTime<Utc>,
    pub last_timestamp: DateTime<Utc>,
}
