//! list, watch, get, create, patch (server-side apply, merge, JSON), replace and delete
//! for every kind.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;

use super::auth::{CREATED_BY, Identity};
use super::list::ListQuery;
use super::patch::{self, PatchKind};
use super::policy::police;
use super::{AppState, error::ApiError};
use crate::resources::parse::parse_documents;
use crate::resources::{Kind, Object, ObjectKey};
use crate::store::{StoreError, Write};

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
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    super::list::list(state, kind_for(&plural)?, None, query, &headers).await
}

pub(super) async fn list_namespaced(
    State(state): State<AppState>,
    Path((ns, plural)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    super::list::list(state, kind_for(&plural)?, Some(ns), query, &headers).await
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
    match state.objects.get(key).await? {
        Some(obj) => Ok(Json(obj)),
        None => Err(crate::store::StoreError::NotFound { key: key.clone() }.into()),
    }
}

/// Query parameters of writes. kubectl sends `fieldManager` and `fieldValidation=Strict`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct WriteQuery {
    #[serde(default)]
    dry_run: Option<String>,
    #[serde(default)]
    field_validation: Option<String>,
}

impl WriteQuery {
    /// Refuses what orcaops cannot honour, so that nothing is written that the client did
    /// not mean to write. Field validation is always strict (unknown fields are errors with
    /// the folder source's messages), which satisfies every directive a client may send.
    /// `dryRun` takes `All` (everything is checked, policies included, and nothing is
    /// written), as in Kubernetes.
    fn check(&self) -> Result<(), ApiError> {
        match self.dry_run.as_deref() {
            None | Some("" | "All") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid dryRun value \"{other}\"; the only one is All (nothing was changed)"
                )));
            }
        }
        match self.field_validation.as_deref() {
            None | Some("" | "Strict" | "Warn" | "Ignore") => Ok(()),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid field validation directive: \"{other}\"; use Strict, Warn or Ignore (orcaops always validates strictly)"
            ))),
        }
    }

    /// `dryRun=All`: check everything, write nothing.
    fn dry_run(&self) -> bool {
        self.dry_run.as_deref() == Some("All")
    }
}

/// Parses and validates a request body exactly as the folder source parses a file.
pub fn admit(
    body: &Bytes,
    plural: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Result<Object, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8 text"))?;
    admit_text("request body", text, plural, ns, name)
}

/// Parses and validates one document of `text` (called `file` in error messages), and
/// checks that it belongs at the path it was sent to.
fn admit_text(
    file: &str,
    text: &str,
    plural: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Result<Object, ApiError> {
    let kind = kind_for(plural)?;
    let mut docs = parse_documents(file, text);
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

/// The parser drops the metadata a server owns; a replace or a patch carries three of
/// those fields over from the JSON it was given: the resourceVersion (the precondition
/// of the write), finalizers and ownerReferences. Finalizers and owners of the wrong
/// shape are refused, as Kubernetes refuses them, rather than stored or dropped.
fn carry_server_metadata(obj: &mut Object, raw: &Value) -> Result<(), ApiError> {
    if let Some(rv) = raw
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        obj.metadata.resource_version = rv.to_string();
    }
    match raw.pointer("/metadata/finalizers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let mut finalizers = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(name) if !name.is_empty() && name.len() <= 253 => {
                        finalizers.push(name.to_string())
                    }
                    _ => {
                        return Err(invalid_metadata(
                            &format!("metadata.finalizers[{i}]"),
                            format!(
                                "{item} is not a finalizer name: give a non-empty string such as \"example.com/cleanup\""
                            ),
                        ));
                    }
                }
            }
            obj.metadata.finalizers = finalizers;
        }
        Some(other) => {
            return Err(invalid_metadata(
                "metadata.finalizers",
                format!("{other} is not a list: give a list of strings"),
            ));
        }
    }
    match raw.pointer("/metadata/ownerReferences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(owners)) => {
            for (i, owner) in owners.iter().enumerate() {
                check_owner_reference(i, owner)?;
            }
            obj.metadata.owner_references = owners.clone();
        }
        Some(other) => {
            return Err(invalid_metadata(
                "metadata.ownerReferences",
                format!("{other} is not a list: give a list of {{apiVersion, kind, name, uid}}"),
            ));
        }
    }
    Ok(())
}

/// An owner reference needs `apiVersion`, `kind`, `name` and `uid` as strings;
/// `controller` and `blockOwnerDeletion`, when given, are booleans.
fn check_owner_reference(i: usize, owner: &Value) -> Result<(), ApiError> {
    let field = format!("metadata.ownerReferences[{i}]");
    let Value::Object(map) = owner else {
        return Err(invalid_metadata(
            &field,
            format!("{owner} is not an owner reference: give {{apiVersion, kind, name, uid}}"),
        ));
    };
    for required in ["apiVersion", "kind", "name", "uid"] {
        match map.get(required) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(other) => {
                return Err(invalid_metadata(
                    &format!("{field}.{required}"),
                    format!("{other} is not a non-empty string"),
                ));
            }
            None => {
                return Err(invalid_metadata(
                    &format!("{field}.{required}"),
                    format!(
                        "{required} is required in an owner reference (apiVersion, kind, name and uid)"
                    ),
                ));
            }
        }
    }
    for flag in ["controller", "blockOwnerDeletion"] {
        if let Some(value) = map.get(flag)
            && !value.is_boolean()
            && !value.is_null()
        {
            return Err(invalid_metadata(
                &format!("{field}.{flag}"),
                format!("{value} is not true or false"),
            ));
        }
    }
    Ok(())
}

fn invalid_metadata(field: &str, message: String) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{field}: {message}"),
    );
    err.details.causes = vec![crate::server::error::StatusCause {
        field: field.to_string(),
        message,
        reason: "FieldValueInvalid".into(),
    }];
    err
}

pub(super) async fn create_cluster(
    state: State<AppState>,
    Path(plural): Path<String>,
    query: Query<WriteQuery>,
    who: Option<Extension<Identity>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create(state, plural, None, query.0, who.map(|w| w.0), body).await
}

pub(super) async fn create_namespaced(
    state: State<AppState>,
    Path((ns, plural)): Path<(String, String)>,
    query: Query<WriteQuery>,
    who: Option<Extension<Identity>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create(state, plural, Some(ns), query.0, who.map(|w| w.0), body).await
}

/// Marks an object as created by the caller's key (its agent label, or its member),
/// whatever the body said: the annotation is the server's word, not the client's.
fn mark_creator(obj: &mut Object, who: Option<&Identity>) {
    if let Some(who) = who {
        obj.metadata
            .annotations
            .insert(CREATED_BY.to_string(), who.created_by());
    }
}

async fn create(
    State(state): State<AppState>,
    plural: String,
    ns: Option<String>,
    query: WriteQuery,
    who: Option<Identity>,
    body: Bytes,
) -> Result<Response, ApiError> {
    query.check()?;
    let mut obj = admit(&body, &plural, ns.as_deref(), None)?;
    mark_creator(&mut obj, who.as_ref());
    // Finalizers and owners given at creation are kept (a resourceVersion is not: the
    // store assigns it).
    let raw: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let assigned = std::mem::take(&mut obj.metadata.resource_version);
    carry_server_metadata(&mut obj, &raw)?;
    obj.metadata.resource_version = assigned;
    let warnings = police(&state, &obj, None, query.dry_run()).await?;
    let created = if query.dry_run() {
        state.objects.preview(Write::Create(obj)).await?
    } else {
        state.objects.create(obj).await?
    };
    Ok(warnings.attach((StatusCode::CREATED, Json(created)).into_response()))
}

pub(super) async fn patch_cluster(
    state: State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    query: Query<WriteQuery>,
    headers: HeaderMap,
    who: Option<Extension<Identity>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = who.map(|w| w.0);
    patch(state, plural, None, name, query.0, headers, who, body).await
}

pub(super) async fn patch_namespaced(
    state: State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    query: Query<WriteQuery>,
    headers: HeaderMap,
    who: Option<Extension<Identity>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let who = who.map(|w| w.0);
    patch(state, plural, Some(ns), name, query.0, headers, who, body).await
}

/// PATCH: server-side apply (`application/apply-patch+yaml`), merge patch
/// (`application/merge-patch+json`) or JSON patch (`application/json-patch+json`).
#[allow(clippy::too_many_arguments)]
async fn patch(
    State(state): State<AppState>,
    plural: String,
    ns: Option<String>,
    name: String,
    query: WriteQuery,
    headers: HeaderMap,
    who: Option<Identity>,
    body: Bytes,
) -> Result<Response, ApiError> {
    query.check()?;
    let kind = patch::patch_kind(&headers)?;
    if kind == PatchKind::Apply {
        let (ns, who, dry_run) = (ns.as_deref(), who.as_ref(), query.dry_run());
        return server_side_apply(&state, &plural, ns, &name, who, &body, dry_run).await;
    }
    let key = key_for(&plural, ns.as_deref(), &name)?;
    // Without a resourceVersion in the patch, a conflict with a concurrent writer (often
    // the controller writing status) is retried on the fresh object, as Kubernetes does.
    let pinned = patch::pins_resource_version(kind, &body);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let stored = state
            .objects
            .get(&key)
            .await?
            .ok_or_else(|| crate::store::StoreError::NotFound { key: key.clone() })?;
        let mut value = serde_json::to_value(&stored).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("serializing {key}: {e}"),
            )
        })?;
        patch::apply_patch(&mut value, kind, &body)?;
        // Admitted as the folder source admits a file, so errors carry the same messages.
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        let mut obj = admit_text(
            "the patched object",
            &text,
            &plural,
            ns.as_deref(),
            Some(&name),
        )?;
        carry_server_metadata(&mut obj, &value)?;
        let warnings = police(&state, &obj, Some(&stored), query.dry_run()).await?;
        if query.dry_run() {
            let preview = state.objects.preview(Write::Replace(obj)).await?;
            return Ok(warnings.attach(Json(preview).into_response()));
        }
        match state.objects.replace(obj).await {
            Err(crate::store::StoreError::Conflict { .. }) if !pinned && attempts < 5 => continue,
            result => return Ok(warnings.attach(Json(result?).into_response())),
        }
    }
}

/// Create or update from a whole declaration, as a file of the watched folder is applied.
async fn server_side_apply(
    state: &AppState,
    plural: &str,
    ns: Option<&str>,
    name: &str,
    who: Option<&Identity>,
    body: &Bytes,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let mut obj = admit(body, plural, ns, Some(name))?;
    // An apply that creates marks the creator; one that updates keeps the mark it has.
    // (Without a caller, as in the handlers' own tests, there is nothing to mark.)
    let stored = match who.is_some() || state.policies.enabled() {
        true => state.objects.get(&obj.key()).await?,
        false => None,
    };
    match &stored {
        None => mark_creator(&mut obj, who),
        Some(_) if who.is_none() => {}
        Some(stored) => match stored.metadata.annotations.get(CREATED_BY) {
            Some(creator) => {
                obj.metadata
                    .annotations
                    .insert(CREATED_BY.to_string(), creator.clone());
            }
            None => {
                obj.metadata.annotations.remove(CREATED_BY);
            }
        },
    }
    let warnings = police(state, &obj, stored.as_ref(), dry_run).await?;
    if dry_run {
        let preview = state.objects.preview(Write::Apply(obj)).await?;
        // A new object has no resourceVersion until it is stored.
        let code = match preview.metadata.resource_version.is_empty() {
            true => StatusCode::CREATED,
            false => StatusCode::OK,
        };
        return Ok(warnings.attach((code, Json(preview)).into_response()));
    }
    let (outcome, obj) = state.objects.apply(obj).await?;
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
    Ok(warnings.attach(response))
}

pub(super) async fn replace_cluster(
    state: State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    query: Query<WriteQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    replace(state, plural, None, name, query.0, body).await
}

pub(super) async fn replace_namespaced(
    state: State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    query: Query<WriteQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    replace(state, plural, Some(ns), name, query.0, body).await
}

async fn replace(
    State(state): State<AppState>,
    plural: String,
    ns: Option<String>,
    name: String,
    query: WriteQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    query.check()?;
    let mut obj = admit(&body, &plural, ns.as_deref(), Some(&name))?;
    let raw: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    carry_server_metadata(&mut obj, &raw)?;
    let stored = match state.policies.enabled() {
        true => state.objects.get(&obj.key()).await?,
        false => None,
    };
    let warnings = police(&state, &obj, stored.as_ref(), query.dry_run()).await?;
    let replaced = if query.dry_run() {
        state.objects.preview(Write::Replace(obj)).await?
    } else {
        state.objects.replace(obj).await?
    };
    Ok(warnings.attach(Json(replaced).into_response()))
}

pub(super) async fn delete_cluster(
    State(state): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
    Query(query): Query<WriteQuery>,
) -> Result<Json<Object>, ApiError> {
    query.check()?;
    let key = key_for(&plural, None, &name)?;
    delete(&state, &key, query.dry_run()).await
}

pub(super) async fn delete_namespaced(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(query): Query<WriteQuery>,
) -> Result<Json<Object>, ApiError> {
    query.check()?;
    let key = key_for(&plural, Some(&ns), &name)?;
    delete(&state, &key, query.dry_run()).await
}

/// Deletes (a dry run: says what would be deleted, and deletes nothing).
async fn delete(
    state: &AppState,
    key: &ObjectKey,
    dry_run: bool,
) -> Result<Json<Object>, ApiError> {
    let gone = if dry_run {
        state.objects.preview(Write::Delete(key.clone())).await?
    } else {
        state.objects.delete(key).await?
    };
    Ok(Json(gone))
}

/// Reads the object, applies `change` and writes it back; when another writer got in
/// between (a Conflict), reads it again and retries, five times at most.
pub(super) async fn replace_retrying(
    state: &AppState,
    key: &ObjectKey,
    change: impl Fn(&mut Object) -> Result<(), ApiError>,
) -> Result<Object, ApiError> {
    for _ in 0..5 {
        let Some(mut obj) = state.objects.get(key).await? else {
            return Err(StoreError::NotFound { key: key.clone() }.into());
        };
        change(&mut obj)?;
        match state.objects.replace(obj).await {
            Err(StoreError::Conflict { .. }) => continue,
            other => return Ok(other?),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!("{key} kept changing; try again"),
    ))
}
