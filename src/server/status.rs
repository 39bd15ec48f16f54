//! The `/status` subresource: replace (PUT) or patch (PATCH) an object's status and
//! nothing else. As in Kubernetes, whatever else the body changes is ignored, and a
//! stale `metadata.resourceVersion` is a 409 Conflict.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

use super::AppState;
use super::error::{ApiError, StatusCause};
use super::objects::kind_for;
use crate::resources::{Kind, Object, ObjectKey, registry};
use crate::store::StoreError;

/// How many times a patch re-reads the object when another writer got there first.
const PATCH_RETRIES: usize = 5;

fn key_for(plural: &str, ns: Option<&str>, name: &str) -> Result<ObjectKey, ApiError> {
    let kind = kind_for(plural)?;
    match (kind.namespaced(), ns) {
        (true, Some(ns)) => Ok(ObjectKey::new(kind, ns, name)),
        (false, None) => Ok(ObjectKey::new(kind, "", name)),
        _ => Err(ApiError::not_found(format!(
            "{} at this path ({} are {})",
            kind.plural(),
            kind.plural(),
            if kind.namespaced() {
                "namespaced"
            } else {
                "cluster-scoped"
            }
        ))),
    }
}

/// A JSON body (YAML is accepted too: JSON is YAML, and kubectl users paste either).
fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8 text"))?;
    serde_json::from_str(text)
        .or_else(|_| serde_saphyr::from_str::<Value>(text))
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON or YAML: {e}")))
}

/// The body must be about the object in the path, when it says which one it is.
fn check_identity(body: &Value, key: &ObjectKey) -> Result<(), ApiError> {
    let field = |p: &str| body.pointer(p).and_then(Value::as_str);
    if let Some(kind) = field("/kind")
        && kind != key.kind.as_str()
    {
        return Err(ApiError::bad_request(format!(
            "the body is a {kind}, but the path is for {}",
            key.kind.plural()
        )));
    }
    if let Some(name) = field("/metadata/name")
        && name != key.name
    {
        return Err(ApiError::bad_request(format!(
            "metadata.name \"{name}\" does not match the name \"{}\" in the path",
            key.name
        )));
    }
    if key.kind.namespaced()
        && let Some(ns) = field("/metadata/namespace")
        && ns != key.namespace
    {
        return Err(ApiError::bad_request(format!(
            "metadata.namespace \"{ns}\" does not match the workspace \"{}\" in the path",
            key.namespace
        )));
    }
    Ok(())
}

/// A status must read as its kind's status type, or the controllers could not use it.
fn validate_status(kind: Kind, status: &Value) -> Result<(), ApiError> {
    if status.is_null() {
        return Ok(());
    }
    registry::check_status(kind, status).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "status".to_string(),
            p => format!("status.{p}"),
        };
        let message = format!("{field}: {}", e.inner());
        let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message.clone());
        err.details.causes = vec![StatusCause {
            field,
            message,
            reason: "FieldValueInvalid".into(),
        }];
        err
    })
}

fn not_found(key: &ObjectKey) -> ApiError {
    StoreError::NotFound { key: key.clone() }.into()
}

pub(super) async fn replace_namespaced(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    replace(&state, &key_for(&plural, Some(&ns), &name)?, &body).await
}

pub(super) async fn replace_cluster(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    replace(&state, &key_for(&plural, None, &name)?, &body).await
}

/// PUT: the body's `.status` replaces the stored one; an empty resourceVersion writes
/// unconditionally, a stale one is a Conflict.
async fn replace(
    state: &AppState,
    key: &ObjectKey,
    body: &Bytes,
) -> Result<Json<Object>, ApiError> {
    let body = parse_body(body)?;
    check_identity(&body, key)?;
    let status = body.get("status").cloned().unwrap_or(Value::Null);
    validate_status(key.kind, &status)?;
    let rv = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok(Json(state.objects.update_status(key, rv, status).await?))
}

pub(super) async fn patch_namespaced(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    patch(
        &state,
        &key_for(&plural, Some(&ns), &name)?,
        &headers,
        &body,
    )
    .await
}

pub(super) async fn patch_cluster(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    patch(&state, &key_for(&plural, None, &name)?, &headers, &body).await
}

/// PATCH: a JSON merge patch (RFC 7386) applied to the whole object, of which only the
/// status is kept; `apply-patch+yaml` merges the status the declaration carries.
async fn patch(
    state: &AppState,
    key: &ObjectKey,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Json<Object>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let body = parse_body(body)?;
    let patch = if content_type.starts_with("application/merge-patch+json") {
        body
    } else if content_type.starts_with("application/apply-patch+yaml") {
        check_identity(&body, key)?;
        let mut only_status = Map::new();
        if let Some(status) = body.get("status") {
            only_status.insert("status".into(), status.clone());
        }
        Value::Object(only_status)
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "PATCH of /status supports Content-Type application/merge-patch+json or application/apply-patch+yaml; got \"{content_type}\""
            ),
        ));
    };
    // A resourceVersion in the patch is a precondition; without one, a write that lost a
    // race is retried on the new version, as Kubernetes does.
    let precondition = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(String::from);
    for _ in 0..PATCH_RETRIES {
        let current = state
            .objects
            .get(key)
            .await?
            .ok_or_else(|| not_found(key))?;
        let mut doc = serde_json::to_value(&current).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })?;
        merge_patch(&mut doc, &patch);
        let status = doc.get("status").cloned().unwrap_or(Value::Null);
        validate_status(key.kind, &status)?;
        let expected = precondition
            .clone()
            .unwrap_or_else(|| current.metadata.resource_version.clone());
        match state.objects.update_status(key, &expected, status).await {
            Err(StoreError::Conflict { .. }) if precondition.is_none() => continue,
            other => return Ok(Json(other?)),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!("{key} kept changing while its status was patched; try again"),
    ))
}

/// RFC 7386: objects merge key by key, `null` removes a key, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut doc,
            &json!({"a": "z", "c": {"f": null, "h": 1}, "l": [3], "n": {"x": null}}),
        );
        assert_eq!(
            doc,
            json!({"a": "z", "c": {"d": "e", "h": 1}, "l": [3], "n": {}})
        );
    }

    #[test]
    fn statuses_are_checked_against_their_kind() {
        assert!(validate_status(Kind::Job, &json!({"phase": "Running", "attempt": 2})).is_ok());
        let err = validate_status(Kind::Job, &json!({"phase": "Sleeping"})).unwrap_err();
        assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.details.causes[0].field, "status.phase");
        let err = validate_status(Kind::Job, &json!({"attempt": "two"})).unwrap_err();
        assert_eq!(err.details.causes[0].field, "status.attempt");
    }

    #[test]
    fn bodies_about_another_object_are_refused() {
        let key = ObjectKey::new(Kind::Job, "default", "build");
        assert!(check_identity(&json!({"metadata": {"name": "build"}}), &key).is_ok());
        assert!(check_identity(&json!({"metadata": {"name": "other"}}), &key).is_err());
        assert!(check_identity(&json!({"kind": "Policy"}), &key).is_err());
        assert!(check_identity(&json!({"metadata": {"namespace": "x"}}), &key).is_err());
    }
}
