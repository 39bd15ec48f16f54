//! list, watch, get, create, apply, replace and delete for every kind.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::list::ListQuery;
use super::{AppState, error::ApiError};
use crate::resources::parse::parse_documents;
use crate::resources::{Kind, Object, ObjectKey};

pub(super) fn kind_for(plural: &str) -> Result<Kind, ApiError> {
    Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural)
        .ok_or_else(|| ApiError::not_found(format!("resource type \"{plural}\"")))
}

fn key_for(plural: &str, ns: Option<&str>, name: &str) -> Result<ObjectKey, ApiError> {
    let kind = kind_for(plural)?;
    match (kind.namespaced(), ns) {
        (true, Some(ns)) => Ok(ObjectKey::new(kind, ns, name)),
        (false, None) => Ok(ObjectKey::new(kind, "", name)),
        (true, None) => Err(ApiError::bad_request(format!(
            "{} are namespaced: use {}/namespaces/<workspace>/{plural}/{name}",
            kind.plural(),
            super::BASE
        ))),
        (false, Some(_)) => Err(ApiError::bad_request(format!(
            "{} are cluster-scoped: drop /namespaces/<ns>",
            kind.plural()
        ))),
    }
}

pub(super) async fn list_all(
    State(state): State<AppState>,
    Path(plural): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    super::list::list(state, kind_for(&plural)?, None, query).await
}

pub(super) async fn list_namespaced(
    State(state): State<AppState>,
    Path((ns, plural)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    super::list::list(state, kind_for(&plural)?, Some(ns), query).await
}

pub(super) async fn get_cluster(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Json<Object>, ApiError> {
    get(&state, &key_for(&plural, None, &name)?).await
}

pub(super) async fn get_namespaced(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Object>, ApiError> {
    get(&state, &key_for(&plural, Some(&ns), &name)?).await
}

async fn get(state: &AppState, key: &ObjectKey) -> Result<Json<Object>, ApiError> {
    match state.store.get(key).await? {
        Some(obj) => Ok(Json(obj)),
        None => Err(crate::store::StoreError::NotFound { key: key.clone() }.into()),
    }
}

/// Parses and validates a request body exactly as the folder source parses a file.
fn admit(
    body: &Bytes,
    plural: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Result<Object, ApiError> {
    let kind = kind_for(plural)?;
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8 text"))?;
    let mut docs = parse_documents("request body", text);
    if docs.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "the request body must hold exactly one object, found {}",
            docs.len()
        )));
    }
    let mut obj = docs
        .pop()
        .expect("one document")
        .map_err(|e| ApiError::invalid(&[e]))?;
    if obj.kind != kind {
        return Err(ApiError::bad_request(format!(
            "the body is a {}, but the path is for {}",
            obj.kind,
            kind.plural()
        )));
    }
    if let Some(ns) = ns {
        match obj.metadata.namespace.as_deref() {
            Some(given) if given != ns && given != crate::resources::DEFAULT_WORKSPACE => {
                return Err(ApiError::bad_request(format!(
                    "metadata.namespace \"{given}\" does not match the workspace \"{ns}\" in the path"
                )));
            }
            _ => obj.metadata.namespace = Some(ns.to_string()),
        }
    }
    if let Some(name) = name
        && obj.metadata.name != name
    {
        return Err(ApiError::bad_request(format!(
            "metadata.name \"{}\" does not match the name \"{name}\" in the path",
            obj.metadata.name
        )));
    }
    Ok(obj)
}

pub(super) async fn create_cluster(
    state: State<AppState>,
    Path(plural): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create(state, plural, None, body).await
}

pub(super) async fn create_namespaced(
    state: State<AppState>,
    Path((ns, plural)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create(state, plural, Some(ns), body).await
}

async fn create(
    State(state): State<AppState>,
    plural: String,
    ns: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let obj = admit(&body, &plural, ns.as_deref(), None)?;
    let created = state.store.create(obj).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub(super) async fn apply_cluster(
    state: State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    apply(state, plural, None, name, headers, body).await
}

pub(super) async fn apply_namespaced(
    state: State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    apply(state, plural, Some(ns), name, headers, body).await
}

/// PATCH with `application/apply-patch+yaml`: create or update from a declaration.
async fn apply(
    State(state): State<AppState>,
    plural: String,
    ns: Option<String>,
    name: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/apply-patch+yaml") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "PATCH supports Content-Type application/apply-patch+yaml (server-side apply); got \"{content_type}\""
            ),
        ));
    }
    let obj = admit(&body, &plural, ns.as_deref(), Some(&name))?;
    let (outcome, obj) = state.store.apply(obj).await?;
    let code = if outcome == crate::store::ApplyOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (code, Json(obj)).into_response();
    if let Ok(v) = serde_json::to_value(outcome)
        && let Some(s) = v.as_str()
        && let Ok(h) = s.parse()
    {
        response.headers_mut().insert("x-orcaops-apply", h);
    }
    Ok(response)
}

pub(super) async fn replace_cluster(
    state: State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    replace(state, plural, None, name, body).await
}

pub(super) async fn replace_namespaced(
    state: State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    replace(state, plural, Some(ns), name, body).await
}

async fn replace(
    State(state): State<AppState>,
    plural: String,
    ns: Option<String>,
    name: String,
    body: Bytes,
) -> Result<Json<Object>, ApiError> {
    let mut obj = admit(&body, &plural, ns.as_deref(), Some(&name))?;
    // The parser drops server-set metadata; take resourceVersion from the raw body.
    let raw: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(rv) = raw
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        obj.metadata.resource_version = rv.to_string();
    }
    Ok(Json(state.store.replace(obj).await?))
}

pub(super) async fn delete_cluster(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Json<Object>, ApiError> {
    Ok(Json(
        state.store.delete(&key_for(&plural, None, &name)?).await?,
    ))
}

pub(super) async fn delete_namespaced(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Result<Json<Object>, ApiError> {
    Ok(Json(
        state
            .store
            .delete(&key_for(&plural, Some(&ns), &name)?)
            .await?,
    ))
}
