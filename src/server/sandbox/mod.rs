//! Sandbox subresources: exec (collected, streamed as NDJSON, or interactive over a
//! WebSocket), files (upload and download), and stop/start. Each request finds the
//! sandbox's service container from `status.services[].container` and refuses, with
//! what to do instead, a sandbox that is not Ready.

mod exec;
mod files;
mod lifecycle;
mod logs;
#[cfg(test)]
mod pod_tests;
mod ws;

pub use files::{PATH_KIND_HEADER, check_tar};
pub(super) use logs::log;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tracing::error;

use super::error::{ApiError, StatusCause, StatusDetails};
use super::{AppState, layers};
use crate::resources::sandbox::{SandboxPhase, SandboxSpec, SandboxState, SandboxStatus};
use crate::resources::{Kind, Object, ObjectKey};
use crate::runtime::RuntimeError;
use crate::store::StoreError;

/// The largest file or tar archive an upload may carry, and the largest file a download
/// reads. Uploads are collected in memory before they go to Docker, so this also bounds
/// what one request holds.
pub const MAX_FILE_BYTES: usize = 512 * 1024 * 1024;
/// How long a file transfer may take, body included (other requests get
/// [`layers::REQUEST_TIMEOUT`]).
pub const FILE_TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// The sandbox routes. Exec answers are not cut by the API's request timeout (a
/// command runs as long as its own `timeoutSeconds` says); file transfers get a longer
/// one and a larger body limit.
pub(super) fn routes(ns: &str) -> Router<AppState> {
    let exec = Router::new().route(
        &format!("{ns}/{{name}}/exec"),
        post(exec::exec).get(ws::exec_websocket),
    );
    let files = Router::new()
        .route(
            &format!("{ns}/{{name}}/files"),
            get(files::download).put(files::upload),
        )
        .layer(DefaultBodyLimit::max(MAX_FILE_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            FILE_TRANSFER_TIMEOUT,
        ));
    let lifecycle = Router::new()
        .route(&format!("{ns}/{{name}}/stop"), post(lifecycle::stop))
        .route(&format!("{ns}/{{name}}/start"), post(lifecycle::start))
        .layer(layers::timeout());
    exec.merge(files).merge(lifecycle)
}

/// The key of a sandbox from a path; other kinds have no such subresource.
pub(super) fn sandbox_key(ns: &str, plural: &str, name: &str) -> Result<ObjectKey, ApiError> {
    match super::objects::kind_for(plural)? {
        Kind::Sandbox => Ok(ObjectKey::new(Kind::Sandbox, ns, name)),
        other => Err(ApiError::not_found(format!(
            "this subresource of {} (it exists for sandboxes)",
            other.plural()
        ))),
    }
}

pub(super) async fn get_sandbox(state: &AppState, key: &ObjectKey) -> Result<Object, ApiError> {
    match state.objects.get(key).await? {
        Some(obj) => Ok(obj),
        None => {
            let mut err = ApiError::from(StoreError::NotFound { key: key.clone() });
            err.message = format!(
                "sandbox {}/{} not found; list them with `orcaops get sandboxes -n {}`",
                key.namespace, key.name, key.namespace
            );
            Err(err)
        }
    }
}

/// The container an exec or a transfer goes to.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Target {
    pub key: ObjectKey,
    pub uid: String,
    pub service: String,
    pub container: String,
}

fn conflict(key: &ObjectKey, message: String) -> ApiError {
    let mut err = ApiError::new(StatusCode::CONFLICT, "Conflict", message);
    err.details = StatusDetails {
        name: key.name.clone(),
        kind: key.kind.plural().into(),
        causes: vec![],
    };
    err
}

/// Finds the container of `service` (default: the first) in a Ready sandbox. Pure:
/// every refusal says why and what to do.
pub(super) fn target(obj: &Object, service: Option<&str>) -> Result<Target, ApiError> {
    let key = obj.key();
    let name = &key.name;
    let ns_flag = if key.namespace == crate::resources::DEFAULT_WORKSPACE {
        String::new()
    } else {
        format!(" -n {}", key.namespace)
    };
    let spec: SandboxSpec = serde_json::from_value(obj.spec.clone()).unwrap_or_default();
    let status: SandboxStatus = serde_json::from_value(obj.status.clone()).unwrap_or_default();
    let mut names: Vec<&str> = status.services.iter().map(|s| s.name.as_str()).collect();
    if names.is_empty() {
        names = spec.services.iter().map(|s| s.name.as_str()).collect();
    }
    if let Some(wanted) = service
        && !names.is_empty()
        && !names.contains(&wanted)
    {
        let mut err = ApiError::bad_request(format!(
            "sandbox {name} has no service \"{wanted}\"; its services are: {}",
            names.join(", ")
        ));
        err.details = StatusDetails {
            name: name.clone(),
            kind: "sandboxes".into(),
            causes: vec![StatusCause {
                field: "service".into(),
                message: format!("choose one of: {}", names.join(", ")),
                reason: "FieldValueNotFound".into(),
            }],
        };
        return Err(err);
    }
    if obj.metadata.deletion_timestamp.is_some() {
        return Err(conflict(&key, format!("sandbox {name} is being deleted")));
    }
    let phase = status.phase.unwrap_or(SandboxPhase::Pending);
    let why = status
        .message
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    let wait = format!("wait until it is Ready: `orcaops get sandbox {name}{ns_flag} -w`");
    let start = format!("start it with `orcaops start sandbox {name}{ns_flag}`");
    match phase {
        SandboxPhase::Ready if spec.state == SandboxState::Stopped => {
            return Err(conflict(
                &key,
                format!("sandbox {name} is being stopped (spec.state is Stopped); {start}"),
            ));
        }
        SandboxPhase::Ready => {}
        SandboxPhase::Pending | SandboxPhase::Starting => {
            return Err(conflict(
                &key,
                format!(
                    "sandbox {name} is {} and not Ready yet{why}; {wait}",
                    phase.as_str()
                ),
            ));
        }
        SandboxPhase::Stopping | SandboxPhase::Stopped => {
            return Err(conflict(
                &key,
                format!("sandbox {name} is {}; {start}", phase.as_str()),
            ));
        }
        SandboxPhase::Expired => {
            let when = status
                .expired_at
                .map(|t| format!(" at {}", t.to_rfc3339()))
                .unwrap_or_default();
            return Err(conflict(
                &key,
                format!(
                    "sandbox {name} expired{when}{why}; {start} (its files and volumes were kept)"
                ),
            ));
        }
        SandboxPhase::Failed => {
            return Err(conflict(
                &key,
                format!(
                    "sandbox {name} Failed{why}; see why with `orcaops describe sandbox {name}{ns_flag}`"
                ),
            ));
        }
    }
    let chosen = match service {
        Some(wanted) => status.services.iter().find(|s| s.name == wanted),
        None => status.services.first(),
    };
    let Some(chosen) = chosen else {
        return Err(conflict(
            &key,
            format!("sandbox {name} reports no services yet; {wait}"),
        ));
    };
    let Some(container) = chosen.container.clone() else {
        let state = chosen
            .state
            .as_deref()
            .map(|s| format!(" (it is {s})"))
            .unwrap_or_default();
        return Err(conflict(
            &key,
            format!(
                "service {} of sandbox {name} has no container yet{state}; {wait}",
                chosen.name
            ),
        ));
    };
    Ok(Target {
        uid: obj.metadata.uid.clone(),
        service: chosen.name.clone(),
        container,
        key,
    })
}

/// Reads the sandbox and finds its target container.
pub(super) async fn resolve(
    state: &AppState,
    key: &ObjectKey,
    service: Option<&str>,
) -> Result<Target, ApiError> {
    let obj = get_sandbox(state, key).await?;
    target(&obj, service.filter(|s| !s.is_empty()))
}

/// A runtime error as an answer: what the caller can act on keeps its meaning (a
/// vanished container, a missing path); the rest is logged and answered generically.
pub(super) fn runtime_error(target: &Target, e: RuntimeError) -> ApiError {
    let name = &target.key.name;
    match e {
        RuntimeError::ContainerNotFound { .. } => conflict(
            &target.key,
            format!(
                "the container of service {} of sandbox {name} is gone (the controller restarts it); wait until the sandbox is Ready: `orcaops get sandbox {name} -w`",
                target.service
            ),
        ),
        RuntimeError::PathNotFound { path, .. } => ApiError::not_found(format!(
            "path {path} in service {} of sandbox {name}",
            target.service
        )),
        RuntimeError::ContainerNotRunning { .. } => conflict(
            &target.key,
            format!(
                "service {} of sandbox {name} is not running (stopped or paused; the controller starts or unpauses it again); wait until the sandbox is Ready: `orcaops get sandbox {name} -w`",
                target.service
            ),
        ),
        RuntimeError::TooLarge {
            path, size, limit, ..
        } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!(
                "{path} is {size} bytes, over the {} MiB a transfer may carry; compress or split it in the sandbox first",
                limit / (1024 * 1024)
            ),
        ),
        RuntimeError::NotAFile { path, .. } => invalid_field(
            "path",
            format!("{path} is neither a regular file nor a directory"),
        ),
        RuntimeError::InvalidPath { path, reason } => {
            invalid_field("path", format!("\"{path}\": {reason}"))
        }
        RuntimeError::Unsupported { .. } => {
            ApiError::new(StatusCode::NOT_IMPLEMENTED, "NotImplemented", e.to_string())
        }
        RuntimeError::Unreachable { .. } | RuntimeError::Timeout { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            e.to_string(),
        ),
        RuntimeError::Docker(bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        }) if (400..500).contains(&status_code) => {
            let code = StatusCode::from_u16(status_code).unwrap_or(StatusCode::BAD_REQUEST);
            match code {
                StatusCode::NOT_FOUND => ApiError::not_found(format!(
                    "in service {} of sandbox {name}: {message}",
                    target.service
                )),
                StatusCode::CONFLICT => conflict(
                    &target.key,
                    format!(
                        "service {} of sandbox {name} is not running ({message}); wait until the sandbox is Ready: `orcaops get sandbox {name} -w`",
                        target.service
                    ),
                ),
                _ => ApiError::bad_request(format!(
                    "service {} of sandbox {name}: {message}",
                    target.service
                )),
            }
        }
        other => {
            error!(sandbox = %target.key, service = %target.service, error = %other, "sandbox runtime call failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "internal error; see the server log",
            )
        }
    }
}

/// A 422 naming the request field at fault.
pub(super) fn invalid_field(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    let mut err = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{field}: {message}"),
    );
    err.details.causes = vec![StatusCause {
        field: field.into(),
        message,
        reason: "FieldValueInvalid".into(),
    }];
    err
}

/// A path inside a container: absolute, without `..`, normalised (`//` and `/./`
/// collapsed, no trailing slash except for `/` itself).
pub(super) fn container_path(path: &str) -> Result<String, ApiError> {
    if path.is_empty() {
        return Err(invalid_field(
            "path",
            "is required, e.g. path=/tmp/file.txt",
        ));
    }
    if !path.starts_with('/') {
        return Err(invalid_field(
            "path",
            format!("\"{path}\" is relative; give an absolute path, e.g. /{path}"),
        ));
    }
    if path.contains('\0') {
        return Err(invalid_field("path", "contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(invalid_field(
                    "path",
                    format!("\"{path}\" has a \"..\" component; give the path without it"),
                ));
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sandbox(spec: serde_json::Value, status: serde_json::Value) -> Object {
        let mut obj = Object::new(Kind::Sandbox, "default", "box", spec);
        obj.metadata.uid = "u1".into();
        obj.status = status;
        obj
    }

    fn ready() -> serde_json::Value {
        json!({
            "phase": "Ready",
            "services": [
                {"name": "shell", "container": "c-shell", "ready": true},
                {"name": "db", "container": "c-db", "ready": true},
            ]
        })
    }

    #[test]
    fn the_first_service_is_the_default() {
        let t = target(&sandbox(json!({"templateRef": "t"}), ready()), None).unwrap();
        assert_eq!(
            (t.service.as_str(), t.container.as_str()),
            ("shell", "c-shell")
        );
        assert_eq!(t.uid, "u1");
        let t = target(&sandbox(json!({"templateRef": "t"}), ready()), Some("db")).unwrap();
        assert_eq!(t.container, "c-db");
    }

    #[test]
    fn an_unknown_service_lists_the_services() {
        let err = target(&sandbox(json!({}), ready()), Some("web")).unwrap_err();
        assert_eq!(err.code, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("shell, db"), "{}", err.message);
        assert_eq!(err.details.causes[0].field, "service");
    }

    #[test]
    fn a_sandbox_that_is_not_ready_says_what_to_do() {
        let pending = target(&sandbox(json!({}), serde_json::Value::Null), None).unwrap_err();
        assert_eq!(pending.code, StatusCode::CONFLICT);
        assert!(
            pending.message.contains("orcaops get sandbox box -w"),
            "{}",
            pending.message
        );
        for phase in ["Stopped", "Expired"] {
            let err = target(&sandbox(json!({}), json!({"phase": phase})), None).unwrap_err();
            assert_eq!(err.code, StatusCode::CONFLICT);
            assert!(
                err.message.contains("orcaops start sandbox box"),
                "{}",
                err.message
            );
        }
        let stopping = target(&sandbox(json!({"state": "Stopped"}), ready()), None).unwrap_err();
        assert!(stopping.message.contains("being stopped"));
        let failed = target(
            &sandbox(
                json!({}),
                json!({"phase": "Failed", "message": "image missing"}),
            ),
            None,
        )
        .unwrap_err();
        assert!(failed.message.contains("image missing") && failed.message.contains("describe"));
    }

    #[test]
    fn paths_must_be_absolute_and_free_of_dot_dot() {
        assert_eq!(container_path("/tmp//a/./b/").unwrap(), "/tmp/a/b");
        assert_eq!(container_path("/").unwrap(), "/");
        for bad in ["", "tmp/a", "/tmp/../etc/passwd", "/a/.."] {
            let err = container_path(bad).unwrap_err();
            assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert_eq!(err.details.causes[0].field, "path");
        }
    }
}
