//! `GET /apis/orcaops.dev/v1alpha1/containers`: the Docker containers this store owns,
//! each with the resource it belongs to. Read-only: agents (the MCP `list_containers`
//! tool) and people use it to see what is running and why.

use std::cmp::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::{AppState, error::ApiError};
use crate::resources::{API_VERSION, keys};
use crate::runtime::{ContainerInfo, ContainerState, RuntimeError};

/// One container, flattened for reading: Docker's view plus the owner from its labels.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerItem {
    pub id: String,
    pub name: String,
    /// `created`, `running`, `exited`, or Docker's own word for anything else.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub owner: Owner,
}

/// The resource a container belongs to, from the `orcaops.dev/*` labels.
#[derive(Serialize, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub workspace: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl From<ContainerInfo> for ContainerItem {
    fn from(c: ContainerInfo) -> Self {
        let label = |key: &str| c.label(key).unwrap_or_default().to_string();
        let number = |key: &str| c.label(key).and_then(|v| v.parse().ok());
        let owner = Owner {
            kind: label(keys::LABEL_KIND),
            workspace: label(keys::LABEL_WORKSPACE),
            name: label(keys::LABEL_NAME),
            uid: label(keys::LABEL_UID),
            run: number(keys::LABEL_RUN),
            attempt: number(keys::LABEL_ATTEMPT),
        };
        let (state, exit_code) = match &c.state {
            ContainerState::Created => ("created".to_string(), None),
            ContainerState::Running => ("running".to_string(), None),
            ContainerState::Exited { code } => ("exited".to_string(), Some(*code)),
            ContainerState::Other(s) => (s.clone(), None),
            ContainerState::CannotStart { reason } => (format!("cannot start: {reason}"), None),
        };
        ContainerItem {
            id: c.id,
            name: c.name.trim_start_matches('/').to_string(),
            state,
            exit_code,
            started_at: c.started_at,
            finished_at: c.finished_at,
            owner,
        }
    }
}

fn by_owner(a: &ContainerItem, b: &ContainerItem) -> Ordering {
    let key = |c: &ContainerItem| {
        (
            c.owner.workspace.clone(),
            c.owner.kind.clone(),
            c.owner.name.clone(),
            c.owner.run,
            c.owner.attempt,
        )
    };
    key(a).cmp(&key(b))
}

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let instance = state.objects.instance_id().to_string();
    let containers = state
        .sandboxes
        .containers(&[(keys::LABEL_INSTANCE, instance.as_str())])
        .await
        .map_err(|e| match e {
            RuntimeError::Unsupported { .. } => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "NotImplemented", e.to_string())
            }
            e => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                e.to_string(),
            ),
        })?;
    let mut items: Vec<ContainerItem> = containers.into_iter().map(ContainerItem::from).collect();
    items.sort_by(by_owner);
    Ok(Json(json!({
        "apiVersion": API_VERSION,
        "kind": "ContainerList",
        "items": items,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_the_owner() {
        let info = ContainerInfo {
            id: "abc".into(),
            name: "/orcaops-default-hello-1-1".into(),
            labels: [
                (keys::LABEL_KIND, "Job"),
                (keys::LABEL_WORKSPACE, "default"),
                (keys::LABEL_NAME, "hello"),
                (keys::LABEL_RUN, "3"),
                (keys::LABEL_ATTEMPT, "2"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            state: ContainerState::Exited { code: 7 },
            started_at: None,
            finished_at: None,
            image_id: None,
        };
        let item = ContainerItem::from(info);
        assert_eq!(item.name, "orcaops-default-hello-1-1");
        assert_eq!(item.state, "exited");
        assert_eq!(item.exit_code, Some(7));
        assert_eq!(item.owner.name, "hello");
        assert_eq!(item.owner.run, Some(3));
        assert_eq!(item.owner.attempt, Some(2));
    }
}
