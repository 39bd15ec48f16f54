//! The key endpoints, for admins: `GET/POST /apis/orcaops.dev/v1alpha1/apikeys`,
//! `DELETE .../apikeys/{id}` (revoke) and `POST .../apikeys/{id}/rotate`. A workspace
//! admin manages the keys of their workspace; a server admin manages every key. A key's
//! secret is in the answer to create and rotate only; nothing stores it.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ADMIN_KEY_ID, Auth, Identity, forbidden, role_str, token};
use crate::resources::quantity::parse_duration_secs;
use crate::resources::workspace::Role;
use crate::server::error::{ApiError, StatusCause};
use crate::store::StoredKey;

const KEYS: &str = "/apis/orcaops.dev/v1alpha1/apikeys";

pub fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route(KEYS, get(list).post(create))
        .route(&format!("{KEYS}/{{id}}"), get(show).delete(revoke))
        .route(&format!("{KEYS}/{{id}}/rotate"), post(rotate))
        .route(super::LOCAL_KEY_PATH, get(super::local_admin_key))
        .with_state(auth)
}

#[derive(Deserialize)]
struct ListQuery {
    workspace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    workspace: Option<String>,
    member: String,
    #[serde(default)]
    agent: Option<String>,
    /// How long the key lives, such as `30d` or `12h`; forever when absent.
    #[serde(default)]
    expires: Option<String>,
    /// A key with every right, across workspaces (server admins only).
    #[serde(default)]
    server_admin: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateBody {
    /// How long the old key keeps working, such as `1h`; 0 ends it at once.
    #[serde(default)]
    grace: Option<String>,
}

fn invalid(field: &str, message: String) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message.clone());
    e.details.kind = "APIKey".into();
    e.details.causes = vec![StatusCause {
        field: field.into(),
        message,
        reason: "FieldValueInvalid".into(),
    }];
    e
}

/// Whether `who` may manage keys of `workspace` (None: server admin keys).
async fn may_manage(auth: &Auth, who: &Identity, workspace: Option<&str>) -> Result<(), ApiError> {
    if who.is_server_admin() {
        return Ok(());
    }
    let own = who.workspace.as_deref().unwrap_or_default();
    let admin = auth.role(own, &who.member).await? == Some(Role::Admin);
    match workspace {
        Some(ws) if ws == own && admin => Ok(()),
        Some(ws) => Err(forbidden(format!(
            "\"{}\" of workspace {own} may not manage API keys of workspace {ws}: that takes an admin of {ws} (spec.members role admin) or a server admin key",
            who.member
        ))),
        None => Err(forbidden(format!(
            "\"{}\" of workspace {own} may not manage server admin keys: that takes a server admin key",
            who.member
        ))),
    }
}

fn state_of(key: &StoredKey, now: DateTime<Utc>) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

fn key_json(key: &StoredKey) -> Value {
    let time =
        |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    json!({
        "kind": "APIKey",
        "id": key.id,
        "workspace": key.workspace,
        "member": key.member,
        "agent": key.agent,
        "serverAdmin": key.workspace.is_none(),
        "state": state_of(key, Utc::now()),
        "createdAt": time(Some(key.created_at)),
        "expiresAt": time(key.expires_at),
        "revokedAt": time(key.revoked_at),
        "lastUsedAt": time(key.last_used_at),
        "rotatedTo": key.rotated_to,
    })
}

async fn list(
    State(auth): State<Arc<Auth>>,
    Extension(who): Extension<Identity>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let scope = match (&query.workspace, &who.workspace) {
        (Some(ws), _) => Some(ws.clone()),
        (None, Some(own)) => Some(own.clone()),
        (None, None) => None,
    };
    match &scope {
        Some(ws) => may_manage(&auth, &who, Some(ws)).await?,
        None => may_manage(&auth, &who, None).await?,
    }
    let items: Vec<Value> = auth
        .keys_snapshot()
        .iter()
        .filter(|k| scope.is_none() || k.workspace == scope)
        .map(key_json)
        .collect();
    Ok(Json(json!({ "kind": "APIKeyList", "items": items })).into_response())
}

async fn show(
    State(auth): State<Arc<Auth>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = found(&auth, &who, &id).await?;
    Ok(Json(key_json(&key)).into_response())
}

/// The key `id`, if `who` may manage it; 404 for keys of other workspaces too.
async fn found(auth: &Auth, who: &Identity, id: &str) -> Result<StoredKey, ApiError> {
    let missing = || ApiError::not_found(format!("API key {id}"));
    let key = auth.key(id).ok_or_else(missing)?;
    if !who.is_server_admin() && key.workspace != who.workspace {
        return Err(missing());
    }
    may_manage(auth, who, key.workspace.as_deref()).await?;
    Ok(key)
}

fn expiry(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let secs = parse_duration_secs(value).map_err(|e| invalid(field, format!("{field}: {e}")))?;
    let secs = i64::try_from(secs)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .ok_or_else(|| invalid(field, format!("{field}: {value} is too long")))?;
    Ok(Some(Utc::now() + secs))
}

fn check_label(field: &str, value: &str, what: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{field}: {value:?} is not a valid {what}: use 1 to 63 letters, digits, '-', '_', '.' or '@'"
            ),
        ))
    }
}

async fn create(
    State(auth): State<Arc<Auth>>,
    Extension(who): Extension<Identity>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not an API key request: {e}; send {{\"workspace\": \"team-a\", \"member\": \"alice\", \"expires\": \"30d\"}}")))?;
    check_label("member", &body.member, "member name")?;
    if let Some(agent) = &body.agent {
        check_label("agent", agent, "agent label")?;
    }
    let workspace = match (body.server_admin, body.workspace) {
        (true, Some(_)) => {
            return Err(invalid(
                "workspace",
                "workspace: a server admin key belongs to no workspace; leave workspace out, or serverAdmin false".into(),
            ));
        }
        (true, None) => None,
        (false, Some(ws)) => Some(ws),
        (false, None) => {
            return Err(invalid(
                "workspace",
                "workspace: required; name the workspace the key acts in (a server admin key takes serverAdmin: true)".into(),
            ));
        }
    };
    may_manage(&auth, &who, workspace.as_deref()).await?;
    // The member's role, which the answer shows; a key for someone not listed is refused.
    let role = match &workspace {
        Some(ws) => match auth.role(ws, &body.member).await? {
            Some(role) => Some(role),
            None => {
                return Err(invalid(
                    "member",
                    format!(
                        "member: {:?} is not in spec.members of Workspace {ws}; add it there with a role (admin, developer or viewer) first",
                        body.member
                    ),
                ));
            }
        },
        None => None,
    };
    let expires_at = expiry("expires", body.expires.as_deref())?;
    let new = token::generate();
    let key = StoredKey {
        id: new.id.clone(),
        workspace,
        member: body.member,
        agent: body.agent,
        hash: new.hash,
        created_at: Utc::now(),
        expires_at,
        revoked_at: None,
        last_used_at: None,
        rotated_to: None,
    };
    auth.save(key.clone()).await?;
    tracing::info!(id = %key.id, workspace = ?key.workspace, member = %key.member, by = %who.key_id, "API key created");
    let mut answer = key_json(&key);
    answer["key"] = Value::String(new.token);
    if let Some(role) = role {
        answer["role"] = json!(role_str(role));
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn revoke(
    State(auth): State<Arc<Auth>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id == ADMIN_KEY_ID {
        return Err(forbidden(
            "the server admin key cannot be revoked through the API; to replace it, stop the server, delete admin.key from its data dir and start it again",
        ));
    }
    let mut key = found(&auth, &who, &id).await?;
    if key.revoked_at.is_none() {
        key.revoked_at = Some(Utc::now());
        auth.save(key.clone()).await?;
        tracing::info!(id = %key.id, by = %who.key_id, "API key revoked");
    }
    Ok(Json(key_json(&key)).into_response())
}

async fn rotate(
    State(auth): State<Arc<Auth>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if id == ADMIN_KEY_ID {
        return Err(forbidden(
            "the server admin key is rotated by deleting admin.key from the data dir and restarting the server",
        ));
    }
    let body: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not a rotation request: {e}; send {{\"grace\": \"1h\"}}"
            ))
        })?
    };
    let mut old = found(&auth, &who, &id).await?;
    let now = Utc::now();
    if state_of(&old, now) != "active" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "API key {id} is {}; only an active key can be rotated (create a new one with `orcaops key create`)",
                state_of(&old, now)
            ),
        ));
    }
    let grace_end = expiry("grace", Some(body.grace.as_deref().unwrap_or("0")))?.unwrap_or(now);
    let new = token::generate();
    let key = StoredKey {
        id: new.id.clone(),
        hash: new.hash,
        created_at: now,
        // The new key lives as long as the old one would have, from now.
        expires_at: old.expires_at.map(|at| now + (at - old.created_at)),
        revoked_at: None,
        last_used_at: None,
        rotated_to: None,
        ..old.clone()
    };
    auth.save(key.clone()).await?;
    old.expires_at = Some(old.expires_at.map_or(grace_end, |at| at.min(grace_end)));
    old.rotated_to = Some(key.id.clone());
    auth.save(old.clone()).await?;
    tracing::info!(old = %old.id, new = %key.id, by = %who.key_id, "API key rotated");
    let mut answer = key_json(&key);
    answer["key"] = Value::String(new.token);
    answer["replaces"] = key_json(&old);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}
