//! What controllers need of secrets: the value of one key of a Secret, to put in a
//! container's env at its creation. Local mode reads the local store's encrypted table;
//! on a cluster the pod reads its `secretKeyRef` itself ([`SecretValue::Native`]).

use crate::store::{LocalStore, Result};

/// The answer for one `secretKeyRef`.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// The key's value, as text.
    Found(String),
    /// No Secret of that name in the namespace.
    NoSecret,
    /// The Secret has no such key.
    NoKey,
    /// The key's value is not UTF-8 text, so it cannot be an environment variable.
    NotText,
    /// What runs the container reads the reference itself (a pod's own `secretKeyRef`).
    Native,
}

/// Never prints a value: this is what a `{:?}` in a log line would show.
impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::Found(_) => f.write_str("Found(<redacted>)"),
            SecretValue::NoSecret => f.write_str("NoSecret"),
            SecretValue::NoKey => f.write_str("NoKey"),
            SecretValue::NotText => f.write_str("NotText"),
            SecretValue::Native => f.write_str("Native"),
        }
    }
}

/// Where the Job and Sandbox controllers read `env[].valueFrom.secretKeyRef`.
#[async_trait::async_trait]
pub trait SecretValues: Send + Sync + 'static {
    async fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Result<SecretValue>;
}

#[async_trait::async_trait]
impl SecretValues for LocalStore {
    async fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Result<SecretValue> {
        let secret = self.get_secret(namespace, name).await?;
        Ok(SecretValue::of(secret.as_ref(), key))
    }
}

impl SecretValue {
    /// What `secret` (None: there is none) holds under `key`.
    pub fn of(secret: Option<&k8s_openapi::api::core::v1::Secret>, key: &str) -> SecretValue {
        let Some(secret) = secret else {
            return SecretValue::NoSecret;
        };
        let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
            return SecretValue::NoKey;
        };
        match String::from_utf8(bytes.0.clone()) {
            Ok(text) => SecretValue::Found(text),
            Err(_) => SecretValue::NotText,
        }
    }
}

/// Cluster mode: the pod's own `env[].valueFrom.secretKeyRef` reads the Secret, so the
/// operator never holds its value.
pub struct PodSecrets;

#[async_trait::async_trait]
impl SecretValues for PodSecrets {
    async fn secret_value(&self, _: &str, _: &str, _: &str) -> Result<SecretValue> {
        Ok(SecretValue::Native)
    }
}
