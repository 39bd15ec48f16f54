//! `POST .../sandboxes/{name}/stop` and `/start`: conveniences over the spec, so a
//! client needs no patch. Stop sets `spec.state: Stopped`; start sets `Running` and
//! the `orcaops.dev/start` annotation, which also revives an Expired sandbox.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::{get_sandbox, sandbox_key};
use crate::resources::sandbox::SandboxState;
use crate::resources::{Object, ObjectKey, keys};
use crate::server::AppState;
use crate::server::error::ApiError;

/// Applies `change` to the stored sandbox and writes it, retrying when the controller
/// wrote in between.
async fn update(
    state: &AppState,
    key: &ObjectKey,
    change: impl Fn(&mut Object),
) -> Result<Object, ApiError> {
    // First for its message when the sandbox is missing.
    get_sandbox(state, key).await?;
    crate::server::objects::replace_retrying(state, key, |obj| {
        change(obj);
        Ok(())
    })
    .await
}

fn set_state(obj: &mut Object, to: SandboxState) {
    if !obj.spec.is_object() {
        obj.spec = Value::Object(Default::default());
    }
    let value = serde_json::to_value(to).expect("a state serializes");
    obj.spec["state"] = value;
}

pub(super) async fn stop(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Object>, ApiError> {
    let key = sandbox_key(&ns, &plural, &name)?;
    let obj = update(&state, &key, |obj| set_state(obj, SandboxState::Stopped)).await?;
    Ok(Json(obj))
}

pub(super) async fn start(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Object>, ApiError> {
    let key = sandbox_key(&ns, &plural, &name)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let obj = update(&state, &key, |obj| {
        set_state(obj, SandboxState::Running);
        obj.metadata
            .annotations
            .insert(keys::START.to_string(), now.clone());
    })
    .await?;
    Ok(Json(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;
    use serde_json::json;

    #[test]
    fn the_state_is_written_into_the_spec() {
        let mut obj = Object::new(Kind::Sandbox, "default", "b", json!({"templateRef": "t"}));
        set_state(&mut obj, SandboxState::Stopped);
        assert_eq!(obj.spec, json!({"templateRef": "t", "state": "Stopped"}));
        set_state(&mut obj, SandboxState::Running);
        assert_eq!(obj.spec["state"], "Running");
    }
}
