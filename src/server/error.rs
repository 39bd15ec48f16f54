//! API errors, answered as Kubernetes `Status` objects with per-field causes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::error;

use crate::resources::parse::DocumentError;
use crate::store::StoreError;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// Kubernetes' `Status` (meta/v1), the body of every error response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    /// Always empty, as in Kubernetes' own answers (its schema requires the field).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    pub message: String,
    pub reason: String,
    #[serde(default)]
    pub details: StatusDetails,
    pub code: u16,
}

/// The reason of each cause of a policy's refusal (a 403 `Status`, reason `Forbidden`):
/// what tells the CLI to exit 4.
pub const POLICY_VIOLATION: &str = "PolicyViolation";

#[derive(Debug)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: StatusDetails,
}

impl ApiError {
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: StatusDetails::default(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} not found", what.into()),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// A body that failed parsing or validation: one cause per document error.
    pub fn invalid(errors: &[DocumentError]) -> Self {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                field: e.field.clone().unwrap_or_default(),
                message: e.to_string(),
                reason: "FieldValueInvalid".into(),
            })
            .collect();
        let mut err = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message);
        err.details.causes = causes;
        if let Some(first) = errors.first() {
            err.details.name = first.name.clone().unwrap_or_default();
            err.details.kind = first
                .kind
                .map(|k| k.as_str().to_string())
                .unwrap_or_default();
        }
        err
    }

    pub fn to_status(&self) -> Status {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: serde_json::Map::new(),
            status: "Failure".into(),
            message: self.message.clone(),
            reason: self.reason.into(),
            details: self.details.clone(),
            code: self.code.as_u16(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { key } => {
                let mut err = ApiError::new(StatusCode::NOT_FOUND, "NotFound", e.to_string());
                err.details = StatusDetails {
                    name: key.name.clone(),
                    kind: key.kind.plural().into(),
                    causes: vec![],
                };
                err
            }
            StoreError::AlreadyExists { key } => {
                let mut err = ApiError::new(StatusCode::CONFLICT, "AlreadyExists", e.to_string());
                err.details = StatusDetails {
                    name: key.name.clone(),
                    kind: key.kind.plural().into(),
                    causes: vec![],
                };
                err
            }
            StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "Conflict", e.to_string())
            }
            StoreError::Invalid { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string())
            }
            // Cluster mode: what the Kubernetes API refused (the operator's service account
            // may not be allowed something) is the caller's to know, as the API said it.
            StoreError::Kube(::kube::Error::Api(s)) if (400..500).contains(&s.code) => {
                let code = StatusCode::from_u16(s.code).unwrap_or(StatusCode::BAD_REQUEST);
                ApiError::new(code, kube_reason(code), e.to_string())
            }
            StoreError::Kube(_) if e.is_unreachable() => {
                error!(error = %e, "the Kubernetes API is unreachable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    e.to_string(),
                )
            }
            // A full or read-only data dir: the request was not stored, and the same
            // request succeeds once the disk takes writes again.
            StoreError::Unwritable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                e.to_string(),
            ),
            _ if e.is_storage_failure() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!(
                    "the store cannot write ({e}); nothing was stored: free space in (or make writable) the data dir and retry"
                ),
            ),
            _ => {
                // Internal: log the detail once, answer with a generic message.
                error!(error = %e, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "internal error; see the server log",
                )
            }
        }
    }
}

/// The Status reason Kubernetes gives with a client error code.
fn kube_reason(code: StatusCode) -> &'static str {
    match code {
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::GONE => "Expired",
        StatusCode::UNPROCESSABLE_ENTITY => "Invalid",
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        _ => "BadRequest",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, Json(self.to_status())).into_response()
    }
}
