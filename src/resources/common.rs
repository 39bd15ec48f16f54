//! Types shared by several kinds: conditions, env vars, resource limits.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The status of a condition, as in Kubernetes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// A typed condition: `T` is the kind's own enum of condition types.
///
/// `lastTransitionTime` moves only when `status` flips; see [`set_condition`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition<T> {
    #[serde(rename = "type")]
    pub type_: T,
    pub status: ConditionStatus,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub last_transition_time: DateTime<Utc>,
}

/// Sets a condition, keeping `lastTransitionTime` when the status does not change.
pub fn set_condition<T: PartialEq + Clone>(
    conditions: &mut Vec<Condition<T>>,
    type_: T,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status {
            existing.last_transition_time = now;
        }
        existing.status = status;
        existing.reason = reason.to_string();
        existing.message = message.to_string();
    } else {
        conditions.push(Condition {
            type_,
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now,
        });
    }
}

/// An environment variable, Kubernetes style.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

impl EnvVar {
    /// One variable per `(name, value)` pair, in their order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<Self> {
        pairs
            .into_iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

/// CPU and memory limits as Kubernetes quantities (`500m`, `2`, `256Mi`, `1G`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}
