//! Webhook deliveries: `POST /hooks/{workspace}/{name}` starts a run of a Workflow that
//! declares a webhook trigger (`spec.triggers[].webhook`).
//!
//! A delivery carries no API key: it is signed with the trigger's shared secret, the way
//! GitHub (`X-Hub-Signature-256`, an HMAC-SHA256 of the body) and GitLab
//! (`X-Gitlab-Token`) send it. Its filter (CEL over `body` and `headers`) decides whether
//! it starts a run, and its inputs are templates over the same. The delivery id
//! (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`) is the run's token, so a redelivery
//! answers with the run the first delivery started instead of starting another.
//!
//! Answers: 201/202 with the run, as `POST .../runs` gives it; 200 for GitHub's `ping`;
//! 202 `WebhookIgnored` when the filter says no; 401 unsigned or badly signed; 404 no such
//! Workflow, or one without a webhook (after as much work as a real delivery, so the time
//! taken tells nothing); 413 past [`MAX_DELIVERY_BYTES`]; 422 an input that cannot be
//! rendered; 429 past the rate of the sender's address; 503 while the secret cannot be
//! read (with a Warning event on the Workflow saying why). The secret is the local
//! store's, or on a cluster the namespace's Secret, which the operator reads. Each
//! delivery is in the audit log, as actor `webhook:<delivery id>`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::ratelimit::{Buckets, RateLimit};
use super::{AppState, workflows};
use crate::notifications::signature;
use crate::resources::expr::{self, HookContext};
use crate::resources::workflow::{WebhookTrigger, WorkflowSpec};
use crate::resources::{Kind, ObjectKey, keys};
use crate::store::{EventType, InvolvedObject, NewEvent, SecretValue, StoreError};

#[cfg(test)]
mod tests;

/// The largest delivery accepted. GitHub caps its payloads at 25 MB, but a push or a
/// merge request is a few kilobytes: this leaves room for big ones.
pub const MAX_DELIVERY_BYTES: usize = 5 << 20;
/// Where a delivery's id is read from, first found first.
const DELIVERY_IDS: [&str; 3] = ["x-github-delivery", "x-gitlab-event-uuid", "x-request-id"];
/// Deliveries a second from one address, and the burst above it: a forge sends a few, a
/// loop trying secrets sends many.
const SENDER_RATE: RateLimit = RateLimit {
    per_second: 10.0,
    burst: 60.0,
};

struct Hooks {
    state: AppState,
    senders: Buckets,
}

/// The route, with its own body limit (the API's does not apply: it is merged beside it).
pub fn routes(state: AppState) -> Router {
    let hooks = Arc::new(Hooks {
        state,
        senders: Buckets::new(Some(SENDER_RATE)),
    });
    Router::new()
        .route("/hooks/{namespace}/{name}", post(deliver))
        .with_state(hooks)
}

/// What the audit log records of a delivery: the audit layer finds it in the answer.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub namespace: String,
    pub name: String,
    /// The delivery id as sent (cut to 100 characters), or `-`.
    pub delivery: String,
}

async fn deliver(
    State(hooks): State<Arc<Hooks>>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let delivery = DELIVERY_IDS
        .iter()
        .find_map(|h| req.headers().get(*h))
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(100)
                .collect()
        })
        .unwrap_or_else(|| "-".to_string());
    let remote = super::tls::peer(&req);
    let mut response = receive(&hooks, &namespace, &name, remote, req)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(Delivered {
        namespace,
        name,
        delivery,
    });
    response
}

async fn receive(
    hooks: &Hooks,
    namespace: &str,
    name: &str,
    remote: Option<SocketAddr>,
    req: Request,
) -> Result<Response, ApiError> {
    let sender = remote.map(|r| r.ip().to_string()).unwrap_or_default();
    if let Err(wait) = hooks.senders.take(&sender) {
        let err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!(
                "too many deliveries from {sender} (at most {} a second, bursts of {}); retry in {wait}s",
                SENDER_RATE.per_second, SENDER_RATE.burst
            ),
        );
        let mut response = err.into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.into());
        return Ok(response);
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_DELIVERY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "the delivery is larger than {} MiB, the most a webhook accepts; send fewer events to this hook",
                    MAX_DELIVERY_BYTES >> 20
                ),
            )
        })?;
    let key = ObjectKey::new(Kind::Workflow, namespace, name);
    let found = hooks.state.objects.get(&key).await?;
    let trigger = found
        .as_ref()
        .and_then(|o| serde_json::from_value::<WorkflowSpec>(o.spec.clone()).ok())
        .and_then(|spec| spec.webhook().cloned());
    let Some((obj, trigger)) = found.zip(trigger) else {
        // As much work as checking a real delivery's signature.
        let _ = signature(
            &parts.headers,
            b"no secret: there is no such webhook",
            &body,
        );
        return Err(ApiError::not_found(format!(
            "webhook {namespace}/{name}: workspace {namespace} has no Workflow {name} with a webhook trigger"
        )));
    };
    let secret = read_secret(hooks, &obj, &trigger).await?;
    match signature(&parts.headers, secret.as_bytes(), &body) {
        Signature::Valid => {}
        Signature::Missing => {
            return Err(unauthorized(
                "the delivery is not signed: give the webhook its secret where it is sent from (GitHub: Secret, sent as X-Hub-Signature-256; GitLab: Secret token, sent as X-Gitlab-Token)",
            ));
        }
        Signature::Wrong => {
            return Err(unauthorized(
                "the delivery's signature does not match the webhook's secret: give the sender the value of the Secret named in spec.triggers[].webhook.secretRef",
            ));
        }
    }
    if header_text(&parts.headers, "x-github-event") == Some("ping") {
        let message = format!("pong: webhook {namespace}/{name} is set up");
        return Ok((
            StatusCode::OK,
            Json(json!({"kind": "WebhookPing", "message": message})),
        )
            .into_response());
    }
    let id = workflows::request_id(&parts.headers, &DELIVERY_IDS)?;
    let context = HookContext {
        body: json_body(&parts.headers, &body)?,
        headers: headers_of(&parts.headers),
    };
    let evaluated = tokio::task::spawn_blocking(move || evaluate(&trigger, &context))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            )
        })?;
    let inputs = match evaluated {
        Evaluated::Inputs(inputs) => inputs,
        Evaluated::Ignored(why) => {
            let body = json!({
                "kind": "WebhookIgnored",
                "apiVersion": "orcaops.dev/v1alpha1",
                "workflow": name,
                "namespace": namespace,
                "message": why,
            });
            return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
        }
        Evaluated::Bad { field, message } => {
            return Err(workflows::unprocessable(&field, message));
        }
    };
    workflows::start_token(&hooks.state, &key, keys::HOOK_TOKEN_PREFIX, id, inputs).await
}

/// The webhook's shared secret. Where it is missing, the Workflow gets a Warning event
/// naming the Secret and key, and the sender a 503 that names neither.
async fn read_secret(
    hooks: &Hooks,
    obj: &crate::resources::Object,
    trigger: &WebhookTrigger,
) -> Result<String, ApiError> {
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
    let reference = &trigger.secret_ref;
    let read = hooks
        .state
        .objects
        .read_secret_key(namespace, &reference.name, &reference.key)
        .await;
    let create = format!(
        "create it with kubectl create secret generic {} --from-literal={}=VALUE -n {namespace}, and give the sender the same VALUE",
        reference.name, reference.key
    );
    let why = match read {
        Ok(SecretValue::Found(value)) => return Ok(value),
        Ok(SecretValue::NoSecret) => format!(
            "there is no secret {} in workspace {namespace}; {create}",
            reference.name
        ),
        Ok(SecretValue::NoKey) => format!(
            "secret {} has no key {}; {create}",
            reference.name, reference.key
        ),
        Ok(SecretValue::NotText) => format!(
            "key {} of secret {} is not text; {create}",
            reference.key, reference.name
        ),
        Ok(SecretValue::Native) => format!("the secret is not readable here; {create}"),
        // The operator's service account may not read Secrets: not the sender's fault,
        // and an admin can fix it.
        Err(StoreError::Kube(kube::Error::Api(status))) if status.code == 403 => format!(
            "the operator may not read secret {}: its ClusterRole needs get on secrets (manifests/03-clusterrole.yaml and the chart grant it)",
            reference.name
        ),
        Err(e) => return Err(e.into()),
    };
    let message = format!("a webhook delivery could not be verified: {why}");
    let event = NewEvent {
        involved: InvolvedObject::of(obj),
        type_: EventType::Warning,
        reason: "WebhookSecretMissing".into(),
        message,
    };
    if let Err(e) = hooks.state.objects.record_event(event).await {
        tracing::warn!(error = %e, "could not record an event");
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "the webhook cannot verify deliveries yet: its secret is not set up (the Workflow's events say what to fix)",
    ))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

#[derive(Debug, PartialEq)]
enum Signature {
    Valid,
    Missing,
    Wrong,
}

/// Whether the delivery is signed with `secret`: an `X-Hub-Signature-256` HMAC of the
/// body, or an `X-Gitlab-Token` equal to it; both compared in constant time.
fn signature(headers: &HeaderMap, secret: &[u8], body: &[u8]) -> Signature {
    if let Some(given) = header_text(headers, "x-hub-signature-256") {
        return match signature::verify(secret, body, given) {
            true => Signature::Valid,
            false => Signature::Wrong,
        };
    }
    if let Some(token) = header_text(headers, "x-gitlab-token") {
        // Equal digests, compared without stopping at the first difference.
        let (a, b) = (Sha256::digest(token.as_bytes()), Sha256::digest(secret));
        let differ = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        return match differ {
            0 => Signature::Valid,
            _ => Signature::Wrong,
        };
    }
    Signature::Missing
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The headers as the filter sees them: names in lower case, repeats joined by ", ".
fn headers_of(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

/// The delivery's body as JSON (null when empty).
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    if header_text(headers, "content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the delivery is form-encoded; set the webhook's content type to application/json where it is sent from",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the delivery's body is not JSON ({e}); send application/json"
        ))
    })
}

enum Evaluated {
    /// The filter said no (or could not say): nothing starts.
    Ignored(String),
    Inputs(BTreeMap<String, String>),
    Bad {
        field: String,
        message: String,
    },
}

/// The filter, then each input, over the delivery.
fn evaluate(trigger: &WebhookTrigger, context: &HookContext) -> Evaluated {
    if let Some(filter) = &trigger.filter {
        match expr::eval_bool(filter, context) {
            Ok(true) => {}
            Ok(false) => {
                return Evaluated::Ignored(format!(
                    "the webhook's filter `{filter}` is false for this delivery; no run was started"
                ));
            }
            Err(e) => {
                return Evaluated::Ignored(format!(
                    "the webhook's filter could not be evaluated for this delivery ({e}), which counts as false; no run was started"
                ));
            }
        }
    }
    let mut inputs = BTreeMap::new();
    for (name, template) in &trigger.inputs {
        match expr::render(template, context) {
            Ok(value) => {
                inputs.insert(name.clone(), value);
            }
            Err(e) => {
                return Evaluated::Bad {
                    field: format!("spec.triggers[].webhook.inputs.{name}"),
                    message: format!(
                        "input {name} cannot be made from this delivery: {e}; no run was started"
                    ),
                };
            }
        }
    }
    Evaluated::Inputs(inputs)
}
