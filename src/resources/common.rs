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

/// An environment variable, Kubernetes style: a `value`, or a value read `valueFrom` a
/// Secret when the container is created (never both).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Where an environment variable's value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVarSource {
    /// A key of a Secret in the object's namespace (`kubectl create secret generic NAME
    /// --from-literal=KEY=VALUE`). A missing Secret or key keeps a Job Pending.
    pub secret_key_ref: SecretKeySelector,
}

/// One key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeySelector {
    /// The Secret's name.
    pub name: String,
    /// The key in the Secret's data.
    pub key: String,
}

impl EnvVar {
    /// A variable with a plain value.
    pub fn plain(name: impl Into<String>, value: impl Into<String>) -> Self {
        EnvVar {
            name: name.into(),
            value: value.into(),
            value_from: None,
        }
    }

    /// The Secret key this variable reads, if it reads one.
    pub fn secret_ref(&self) -> Option<&SecretKeySelector> {
        self.value_from.as_ref().map(|f| &f.secret_key_ref)
    }
}

impl EnvVar {
    /// One variable per `(name, value)` pair, in their order.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<Self> {
        pairs
            .into_iter()
            .map(|(name, value)| EnvVar::plain(name.clone(), value.clone()))
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
