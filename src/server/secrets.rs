//! The core `v1` Secret at `/api/v1/namespaces/{ns}/secrets`, so that `kubectl create
//! secret generic`, `kubectl get secrets` and `kubectl delete secret` work against local
//! mode as on a cluster. The secrets live in the local store's encrypted table
//! (`store::local::secrets`), never among the objects.
//!
//! Nothing here logs a secret, and no error message quotes its data: a body that does not
//! parse is refused with serde's path and category only, never its text.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, StatusDetails};
use super::patch::{PatchKind, apply_patch};
use super::table::{TableRequest, human_duration};
use crate::resources::selector::LabelSelector;
use crate::store::LocalStore;

mod proto;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
}

/// The local store, where secrets are kept. On a cluster (`operator --api`) the cluster
/// keeps its own Secrets, and the pods read them: this facade does not serve them.
fn store(state: &AppState) -> Result<&LocalStore, ApiError> {
    if state.leading.is_some() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "secrets are not served by the operator's API: on a cluster they are the cluster's own Secrets; create them with kubectl against the cluster (kubectl create secret generic NAME --from-literal=KEY=VALUE -n NAMESPACE), and Jobs read them through env[].valueFrom.secretKeyRef",
        ));
    }
    Ok(&state.records)
}

/// The JSON of one Secret, as the API server answers it.
fn secret_json(secret: &Secret) -> Value {
    let mut value = serde_json::to_value(secret).unwrap_or_else(|_| json!({}));
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("Secret");
    value
}

/// A body as a Secret. serde's own message would quote the offending text (a value), so
/// only where it failed is said.
fn parse_body(body: &[u8]) -> Result<Secret, ApiError> {
    // JSON, protobuf (what kubectl sends for core kinds), or YAML.
    let value: Value = serde_json::from_slice(body)
        .ok()
        .or_else(|| proto::decode(body))
        .or_else(|| {
            std::str::from_utf8(body)
                .ok()
                .and_then(|text| serde_saphyr::from_str::<Value>(text).ok())
        })
        .filter(Value::is_object)
        .ok_or_else(|| {
            ApiError::bad_request(
                "the body is not a Secret in JSON or YAML; send {\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": NAME}, \"data\": {KEY: BASE64}} (or stringData: {KEY: TEXT})",
            )
        })?;
    check_kind(&value)?;
    serde_path_to_error::deserialize(&value).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "Secret field {} is not valid: data values are base64 strings, stringData values are strings, and type is a string",
                e.path()
            ),
        )
    })
}

fn check_kind(value: &Value) -> Result<(), ApiError> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    match (field("apiVersion"), field("kind")) {
        ("" | "v1", "" | "Secret") => Ok(()),
        (api_version, kind) => Err(ApiError::bad_request(format!(
            "the body is a {kind} of {api_version}, not a Secret of v1; this path takes apiVersion: v1, kind: Secret"
        ))),
    }
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    use crate::store::StoreError;
    let details = |name: &str| StatusDetails {
        name: name.to_string(),
        kind: "secrets".into(),
        causes: vec![],
    };
    // Kubernetes' own wording: `secrets "hook" not found`.
    let refused = |code, reason, name: &str, what: &str| {
        let mut err = ApiError::new(code, reason, format!("secrets \"{name}\" {what}"));
        err.details = details(name);
        err
    };
    match &e {
        StoreError::SecretNotFound { name, .. } => {
            refused(StatusCode::NOT_FOUND, "NotFound", name, "not found")
        }
        StoreError::SecretExists { name, .. } => refused(
            StatusCode::CONFLICT,
            "AlreadyExists",
            name,
            "already exists",
        ),
        StoreError::SecretConflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "Conflict", e.to_string())
        }
        StoreError::SecretInvalid { name, .. } => {
            let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string());
            err.details = details(name);
            err
        }
        // The key file: the operator of this server has to act; the message names the
        // file and the fix, and carries no value.
        StoreError::SecretKey { .. } => {
            tracing::error!(error = %e, "the secrets key file cannot be used");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        }
        _ => e.into(),
    }
}

/// The name a write's body gives, checked against the path's namespace (and name).
fn admit(ns: &str, name: Option<&str>, secret: &mut Secret) -> Result<(), ApiError> {
    if let Some(body_ns) = secret.metadata.namespace.as_deref()
        && !body_ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
        )));
    }
    if let Some(name) = name {
        match secret.metadata.name.as_deref() {
            None | Some("") => secret.metadata.name = Some(name.to_string()),
            Some(body) if body != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body}) does not match the name on the URL ({name})"
                )));
            }
            Some(_) => {}
        }
    }
    if secret
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "Secret metadata.name: Required value: name is required (kubectl create secret generic NAME ...)",
        ));
    }
    secret.metadata.namespace = Some(ns.to_string());
    Ok(())
}

fn name_selected(field_selector: Option<&str>) -> Result<Option<String>, ApiError> {
    let mut name = None;
    for term in field_selector
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
    {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "field selector {term:?} is not FIELD=VALUE; secrets are selected by metadata.name or metadata.namespace"
                ))
            })?;
        match field {
            "metadata.name" => name = Some(value.to_string()),
            "metadata.namespace" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {other}; secrets are selected by metadata.name or metadata.namespace"
                )));
            }
        }
    }
    Ok(name)
}

async fn list(state: &AppState, ns: Option<&str>, q: ListQuery) -> Result<Json<Value>, ApiError> {
    let store = store(state)?;
    let labels = q
        .label_selector
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(LabelSelector::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("labelSelector: {e}")))?;
    let name = name_selected(q.field_selector.as_deref())?;
    let field_ns = q
        .field_selector
        .as_deref()
        .unwrap_or("")
        .split(',')
        .find_map(|t| {
            t.strip_prefix("metadata.namespace=")
                .map(|v| v.trim_start_matches('='))
        });
    let (secrets, resource_version) = store
        .list_secrets(ns.or(field_ns))
        .await
        .map_err(store_error)?;
    let empty = BTreeMap::new();
    let items: Vec<Value> = secrets
        .iter()
        .filter(|s| name.is_none() || s.metadata.name == name)
        .filter(|s| {
            labels
                .as_ref()
                .is_none_or(|l| l.matches(s.metadata.labels.as_ref().unwrap_or(&empty)))
        })
        .map(secret_json)
        .collect();
    Ok(Json(json!({
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    })))
}

pub(super) async fn list_namespaced(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    list(&state, Some(&ns), q).await
}

pub(super) async fn list_all(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    list(&state, None, q).await
}

pub(super) async fn create(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let store = store(&state)?;
    let mut secret = parse_body(&body)?;
    admit(&ns, None, &mut secret)?;
    let created = store
        .create_secret(&ns, secret)
        .await
        .map_err(store_error)?;
    tracing::info!(namespace = %ns, name = created.metadata.name.as_deref().unwrap_or_default(), "secret created");
    Ok((StatusCode::CREATED, Json(secret_json(&created))).into_response())
}

async fn read(store: &LocalStore, ns: &str, name: &str) -> Result<Secret, ApiError> {
    store
        .get_secret(ns, name)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            store_error(crate::store::StoreError::SecretNotFound {
                namespace: ns.to_string(),
                name: name.to_string(),
            })
        })
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    Ok(Json(secret_json(&read(store, &ns, &name).await?)))
}

pub(super) async fn replace(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let mut secret = parse_body(&body)?;
    admit(&ns, Some(&name), &mut secret)?;
    let replaced = store
        .replace_secret(&ns, secret)
        .await
        .map_err(store_error)?;
    tracing::info!(namespace = %ns, name = %name, "secret replaced");
    Ok(Json(secret_json(&replaced)))
}

/// Merge patch, JSON patch, and strategic merge patch (for a Secret, whose fields are
/// maps and scalars, the same as a merge patch: what kubectl sends for core kinds).
pub(super) async fn patch(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let kind = patch_kind(&headers)?;
    let current = read(store, &ns, &name).await?;
    let mut value = secret_json(&current);
    apply_patch(&mut value, kind, &body)?;
    // The patch was made against what was read: a write in between is a conflict, unless
    // the patch names a version of its own.
    let mut secret = parse_body(&serde_json::to_vec(&value).unwrap_or_default())?;
    if secret
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        secret.metadata.resource_version = current.metadata.resource_version.clone();
    }
    admit(&ns, Some(&name), &mut secret)?;
    let patched = store
        .replace_secret(&ns, secret)
        .await
        .map_err(store_error)?;
    tracing::info!(namespace = %ns, name = %name, "secret patched");
    Ok(Json(secret_json(&patched)))
}

fn patch_kind(headers: &HeaderMap) -> Result<PatchKind, ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().is_some_and(|e| {
        e.trim()
            .eq_ignore_ascii_case("application/strategic-merge-patch+json")
    }) {
        return Ok(PatchKind::Merge);
    }
    match super::patch::patch_kind(headers)? {
        PatchKind::Apply => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "server-side apply of secrets is not supported; use kubectl apply without --server-side, kubectl create secret, or a merge patch",
        )),
        other => Ok(other),
    }
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = store(&state)?;
    let deleted = store.delete_secret(&ns, &name).await.map_err(store_error)?;
    tracing::info!(namespace = %ns, name = %name, "secret deleted");
    Ok(Json(secret_json(&deleted)))
}

/// The Table of `kubectl get secrets`: the columns the API server prints for Secrets
/// (name, type, how many keys, age), never a value; rows carry only metadata unless the
/// client asked for whole objects.
pub(super) fn table(body: &Value, request: TableRequest, now: DateTime<Utc>) -> Option<Value> {
    let items: Vec<Value> = match body.get("kind")?.as_str()? {
        "SecretList" => body.get("items")?.as_array()?.clone(),
        "Secret" => vec![body.clone()],
        _ => return None,
    };
    let column = |name: &str, type_: &str, format: &str, description: &str| json!({"name": name, "type": type_, "format": format, "description": description, "priority": 0});
    let definitions = vec![
        column(
            "Name",
            "string",
            "name",
            "Name must be unique within a namespace.",
        ),
        column("Type", "string", "", "The type of secret"),
        column(
            "Data",
            "string",
            "",
            "The number of keys in the secret's data",
        ),
        column("Age", "string", "", "How long ago the secret was created"),
    ];
    let rows: Vec<Value> = items
        .iter()
        .map(|secret| {
            let keys = secret
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |d| d.len());
            let age = secret
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(
                    || "<unknown>".to_string(),
                    |t| human_duration(now - t.with_timezone(&Utc)),
                );
            let cells = json!([
                secret
                    .pointer("/metadata/name")
                    .cloned()
                    .unwrap_or(Value::Null),
                secret.get("type").cloned().unwrap_or(json!("Opaque")),
                keys,
                age,
            ]);
            let mut row = json!({"cells": cells});
            match request.include {
                super::table::IncludeObject::None => {}
                super::table::IncludeObject::Object => row["object"] = secret.clone(),
                super::table::IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": format!("meta.k8s.io/{}", request.version),
                        "metadata": secret.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    });
                }
            }
            row
        })
        .collect();
    Some(json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{}", request.version),
        "metadata": body.get("metadata").filter(|_| body["kind"] == "SecretList").cloned().unwrap_or_else(|| json!({})),
        "columnDefinitions": definitions,
        "rows": rows,
    }))
}
