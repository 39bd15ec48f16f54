//! Secrets as the CLI shows them: name, type, how many keys, age. The values are dropped
//! as soon as the answer is read; nothing here can print one.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiClient, ClientError, urlencode};

/// What `orcaops get secrets` shows of one Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSummary {
    pub namespace: String,
    pub name: String,
    pub type_: String,
    /// The names of its keys (never their values).
    pub keys: Vec<String>,
    pub created: Option<DateTime<Utc>>,
}

impl SecretSummary {
    fn of(secret: &Value) -> SecretSummary {
        let text = |pointer: &str| {
            secret
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        SecretSummary {
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
            type_: text("/type"),
            keys: secret
                .get("data")
                .and_then(Value::as_object)
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default(),
            created: DateTime::parse_from_rfc3339(&text("/metadata/creationTimestamp"))
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// The summary as JSON or YAML print it: metadata and key names, no data.
    pub fn to_json(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "creationTimestamp": self.created.map(|t| t.to_rfc3339()),
            },
            "type": self.type_,
            "keys": self.keys,
        })
    }
}

/// The Secrets of `namespace` (None: all), or the one named `name`.
pub async fn list_secrets(
    client: &ApiClient,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<SecretSummary>, ClientError> {
    let mut path = match namespace {
        Some(ns) => format!("/api/v1/namespaces/{}/secrets", urlencode(ns)),
        None => "/api/v1/secrets".to_string(),
    };
    if let Some(name) = name {
        path.push_str(&format!(
            "?fieldSelector=metadata.name%3D{}",
            urlencode(name)
        ));
    }
    let list = client.json(Method::GET, &path, None).await?;
    Ok(list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(SecretSummary::of).collect())
        .unwrap_or_default())
}
