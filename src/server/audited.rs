//! What the API records in the audit log ([`crate::audit`]), and the log's endpoints for
//! server admins. The layer sits outside authentication, so it sees every answer: each
//! write (create, update, patch, delete, the status subresource), each action (run,
//! cancel, rerun, approve, reject, exec, cp, start, stop), each key change, each read
//! of a Secret, and every 401 and 403 (failed authentication, a role that does not
//! allow, a policy's refusal), with who (the key, its member and agent), from where and
//! the code answered.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::Identity;
use super::auth::request::{Need, Verb, need};
use super::error::ApiError;
use super::hooks::Delivered;
use crate::audit::{self, AuditLog, Entry};

/// The layer: records what [`entry_for`] says is worth recording.
pub async fn middleware(State(log): State<AuditLog>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // The URI shares the request's bytes: kept without copying the path.
    let uri = req.uri().clone();
    let remote = super::tls::peer(&req);
    let response = next.run(req).await;
    let code = response.status().as_u16();
    if let Some(delivered) = response.extensions().get::<Delivered>() {
        log.record(delivery_entry(delivered, code, remote));
    } else if !quiet_read(&method, uri.path(), code) {
        let who = response.extensions().get::<Identity>();
        if let Some(entry) = entry_for(&method, uri.path(), uri.query(), code, who, remote) {
            log.record(entry);
        }
    }
    response
}

/// A GET that was answered (not refused), is not of a Secret and is not an exec or a
/// file download (both GETs): never recorded, so not worth working out what it asked
/// for. [`entry_for`] decides the rest.
fn quiet_read(method: &Method, path: &str, code: u16) -> bool {
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    matches!(*method, Method::GET | Method::HEAD)
        && code != 401
        && code != 403
        && !matches!(last, "exec" | "files" | "attach")
        && !path.contains("/secrets")
}

/// The entry of a webhook delivery, whatever it was answered: the sender is named by
/// the delivery id it sent.
fn delivery_entry(delivered: &Delivered, code: u16, remote: Option<SocketAddr>) -> Entry {
    Entry {
        time: Utc::now(),
        actor: format!("webhook:{}", delivered.delivery),
        verb: "webhook".into(),
        resource: "workflows".into(),
        namespace: delivered.namespace.clone(),
        name: delivered.name.clone(),
        remote: remote.map(|r| r.to_string()).unwrap_or_default(),
        code,
        ..Default::default()
    }
}

/// The entry for a request and its answer, or None when it is a plain read.
pub fn entry_for(
    method: &Method,
    path: &str,
    query: Option<&str>,
    code: u16,
    who: Option<&Identity>,
    remote: Option<SocketAddr>,
) -> Option<Entry> {
    let refused = code == 401 || code == 403;
    let (verb, resource, namespace, name) = match need(method, path, query) {
        Need::Resource {
            verb,
            resource,
            namespace,
            name,
        } => {
            let verb = match (verb, resource.as_str()) {
                (Verb::Get | Verb::List, "secrets") => "read-secret".to_string(),
                (v, _) if is_read(v) && !refused => return None,
                (v, _) => verb_name(v).to_string(),
            };
            (
                verb,
                resource,
                namespace.unwrap_or_default(),
                name.unwrap_or_default(),
            )
        }
        _ if path.contains("/apikeys") && *method != Method::GET => {
            let verb = match *method {
                Method::POST if path.ends_with("/rotate") => "rotate-key",
                Method::POST => "create-key",
                Method::DELETE => "revoke-key",
                _ => "update-key",
            };
            let name = path.rsplit('/').find(|s| *s != "rotate" && *s != "apikeys");
            (
                verb.to_string(),
                "apikeys".into(),
                String::new(),
                name.unwrap_or_default().to_string(),
            )
        }
        _ if refused => (
            "authenticate".into(),
            String::new(),
            String::new(),
            String::new(),
        ),
        _ => return None,
    };
    // A failed authentication is what the entry is about, whatever was asked.
    let verb = if code == 401 {
        "authenticate".to_string()
    } else {
        verb
    };
    Some(Entry {
        time: Utc::now(),
        actor: who.map_or_else(|| "anonymous".to_string(), |w| format!("key:{}", w.key_id)),
        member: who.map(|w| w.member.clone()),
        agent: who.and_then(|w| w.agent.clone()),
        verb,
        resource,
        namespace,
        name,
        remote: remote.map(|r| r.to_string()).unwrap_or_default(),
        code,
        detail: if refused {
            format!("{method} {path}")
        } else {
            String::new()
        },
        ..Default::default()
    })
}

fn is_read(verb: Verb) -> bool {
    matches!(
        verb,
        Verb::Get | Verb::List | Verb::Watch | Verb::Logs | Verb::History | Verb::Artifacts
    )
}

fn verb_name(verb: Verb) -> &'static str {
    match verb {
        Verb::Get => "get",
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Create => "create",
        Verb::Update => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::UpdateStatus => "update-status",
        Verb::Logs => "logs",
        Verb::History => "history",
        Verb::Artifacts => "artifacts",
        Verb::Run => "run",
        Verb::Cancel => "cancel",
        Verb::Rerun => "rerun",
        Verb::Approve => "approve",
        Verb::Reject => "reject",
        Verb::Exec => "exec",
        Verb::Cp => "cp",
        Verb::Start => "start",
        Verb::Stop => "stop",
    }
}

/// `GET /apis/orcaops.dev/v1alpha1/auditlog` and `.../auditlog/verify`, for server admins
/// (the auth layer says so).
pub fn routes(log: AuditLog) -> Router {
    Router::new()
        .route(&format!("{}/auditlog", super::BASE), get(search))
        .route(&format!("{}/auditlog/verify", super::BASE), get(verify))
        .with_state(log)
}

/// The filters of a search: each one given must match.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchQuery {
    pub actor: Option<String>,
    pub verb: Option<String>,
    /// The resource (plural) or kind, case-insensitive (`jobs`, `job`, `Job`).
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries after this sequence number (`audit tail -f` follows with it).
    pub after_seq: Option<u64>,
    /// At most this many, the newest (default 1,000).
    pub limit: Option<usize>,
}

impl SearchQuery {
    pub fn matches(&self, e: &Entry) -> bool {
        let kind = self.kind.as_deref().map(str::to_ascii_lowercase);
        let resource = e.resource.to_ascii_lowercase();
        self.actor.as_deref().is_none_or(|a| {
            e.actor == a || e.member.as_deref() == Some(a) || e.agent.as_deref() == Some(a)
        }) && self.verb.as_deref().is_none_or(|v| e.verb == v)
            && kind.is_none_or(|k| {
                resource == k || resource == format!("{k}s") || resource == format!("{k}es")
            })
            && self.namespace.as_deref().is_none_or(|n| e.namespace == n)
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time <= t)
            && self.after_seq.is_none_or(|s| e.seq > s)
    }
}

async fn search(
    State(log): State<AuditLog>,
    Query(query): Query<SearchQuery>,
) -> Result<Response, ApiError> {
    log.flush().await;
    let dir = log.dir().to_path_buf();
    let entries = tokio::task::spawn_blocking(move || audit::read_all(&dir))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))?;
    let mut found: Vec<Entry> = entries.into_iter().filter(|e| query.matches(e)).collect();
    let limit = query.limit.unwrap_or(1_000);
    if found.len() > limit {
        found.drain(..found.len() - limit);
    }
    Ok(axum::Json(serde_json::json!({"items": found})).into_response())
}

async fn verify(State(log): State<AuditLog>) -> Result<Response, ApiError> {
    log.flush().await;
    let dir = log.dir().to_path_buf();
    let verdict = tokio::task::spawn_blocking(move || audit::verify(&dir))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))?;
    let body = match verdict {
        Ok(entries) => serde_json::json!({"intact": true, "entries": entries}),
        Err(broken) => serde_json::json!({
            "intact": false,
            "seq": broken.seq,
            "place": broken.place,
            "message": broken.to_string(),
        }),
    };
    Ok(axum::Json(body).into_response())
}

fn internal(message: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        format!("the audit log cannot be read: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Identity {
        Identity {
            key_id: "k1".into(),
            member: "alice".into(),
            workspace: Some("team-a".into()),
            agent: Some("claude".into()),
        }
    }

    fn entry(method: Method, path: &str, code: u16) -> Option<Entry> {
        entry_for(&method, path, None, code, Some(&admin()), None)
    }

    #[test]
    fn writes_actions_secrets_keys_and_refusals_are_recorded_and_reads_are_not() {
        let base = "/apis/orcaops.dev/v1alpha1/namespaces/team-a";
        let e = entry(Method::POST, &format!("{base}/jobs"), 201).unwrap();
        assert_eq!(
            (e.verb.as_str(), e.resource.as_str(), e.namespace.as_str()),
            ("create", "jobs", "team-a")
        );
        assert_eq!(e.actor, "key:k1");
        assert_eq!(e.agent.as_deref(), Some("claude"));
        let e = entry(Method::DELETE, &format!("{base}/jobs/build"), 200).unwrap();
        assert_eq!((e.verb.as_str(), e.name.as_str()), ("delete", "build"));
        let e = entry(Method::GET, &format!("{base}/sandboxes/box/exec"), 101).unwrap();
        assert_eq!(e.verb, "exec");
        let e = entry(Method::POST, &format!("{base}/workflows/ci/approve"), 200).unwrap();
        assert_eq!(e.verb, "approve");
        let e = entry(Method::GET, "/api/v1/namespaces/team-a/secrets/db", 200).unwrap();
        assert_eq!(e.verb, "read-secret");
        let e = entry(
            Method::POST,
            "/apis/orcaops.dev/v1alpha1/apikeys/abc/rotate",
            201,
        )
        .unwrap();
        assert_eq!((e.verb.as_str(), e.name.as_str()), ("rotate-key", "abc"));

        assert!(entry(Method::GET, &format!("{base}/jobs/build"), 200).is_none());
        assert!(entry(Method::GET, &format!("{base}/jobs"), 200).is_none());
        let refused = entry(Method::GET, &format!("{base}/jobs"), 403).unwrap();
        assert_eq!((refused.verb.as_str(), refused.code), ("list", 403));
        let unknown_key = entry_for(&Method::GET, &format!("{base}/jobs"), None, 401, None, None);
        let unknown_key = unknown_key.unwrap();
        assert_eq!(
            (unknown_key.verb.as_str(), unknown_key.resource.as_str()),
            ("authenticate", "jobs")
        );
        let anonymous = entry_for(&Method::GET, "/apis", None, 401, None, None).unwrap();
        assert_eq!(
            (anonymous.actor.as_str(), anonymous.verb.as_str()),
            ("anonymous", "authenticate")
        );
    }

    /// What the layer skips without asking [`entry_for`] is what it would not record.
    #[test]
    fn the_reads_skipped_early_are_those_never_recorded() {
        let base = "/apis/orcaops.dev/v1alpha1/namespaces/team-a";
        for (method, path, code) in [
            (Method::GET, format!("{base}/jobs/build"), 200),
            (Method::GET, format!("{base}/jobs"), 200),
            (Method::GET, format!("{base}/jobs/build/log"), 200),
            (Method::HEAD, format!("{base}/jobs/build"), 404),
            (Method::GET, format!("{base}/sandboxes/box/exec"), 101),
            (Method::GET, format!("{base}/sandboxes/box/files/"), 200),
            (Method::GET, format!("{base}/jobs"), 403),
            (
                Method::GET,
                "/api/v1/namespaces/team-a/secrets/db".to_string(),
                200,
            ),
            (
                Method::GET,
                "/api/v1/namespaces/team-a/secrets".to_string(),
                200,
            ),
            (Method::POST, format!("{base}/jobs"), 201),
        ] {
            let recorded = entry(method.clone(), &path, code).is_some();
            if quiet_read(&method, &path, code) {
                assert!(!recorded, "{method} {path} {code} is skipped but recorded");
            }
            let expect_quiet = !recorded && matches!(method, Method::GET | Method::HEAD);
            assert_eq!(
                quiet_read(&method, &path, code),
                expect_quiet,
                "{method} {path} {code}"
            );
        }
    }

    #[test]
    fn a_search_matches_every_filter_given() {
        let e = entry(
            Method::POST,
            "/apis/orcaops.dev/v1alpha1/namespaces/a/jobs",
            201,
        )
        .unwrap();
        let q = |json: serde_json::Value| serde_json::from_value::<SearchQuery>(json).unwrap();
        assert!(q(serde_json::json!({})).matches(&e));
        assert!(
            q(serde_json::json!({"actor": "alice", "verb": "create", "kind": "Job"})).matches(&e)
        );
        assert!(q(serde_json::json!({"actor": "claude"})).matches(&e));
        assert!(!q(serde_json::json!({"verb": "delete"})).matches(&e));
        assert!(!q(serde_json::json!({"kind": "sandbox"})).matches(&e));
        assert!(!q(serde_json::json!({"since": "2999-01-01T00:00:00Z"})).matches(&e));
    }
}
