//! The validating admission webhook's review: an `AdmissionReview` (admission.k8s.io/v1)
//! from the Kubernetes API server in, the policies' verdict out. A write an Enforce
//! policy refuses is answered `allowed: false` with a 403 `Status` naming every
//! violation; Warn findings go back as `warnings`, which kubectl prints; Audit findings
//! are only recorded. What is not ours (another group, a DELETE, a kind no policy
//! covers) is allowed untouched. The HTTP side (TLS, the route, the body limit) is the
//! operator's.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Door, Policies, eval};
use crate::resources::{GROUP, Kind, Object};

/// The API version of the reviews this webhook reads and answers.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Why a body is not a review this webhook can answer (the API server never sends one;
/// answered 400, and the webhook's `failurePolicy` decides).
#[derive(thiserror::Error, Debug, PartialEq)]
pub enum AdmissionError {
    #[error("the body is not an AdmissionReview: {0}")]
    Malformed(String),
    #[error(
        "AdmissionReview apiVersion \"{0}\" is not served; use {API_VERSION} (admissionReviewVersions: [v1])"
    )]
    Version(String),
    #[error("the AdmissionReview has no request (or its request has no uid)")]
    NoRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default)]
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    object: Option<Value>,
    #[serde(default)]
    old_object: Option<Value>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    user_info: Option<UserInfo>,
}

#[derive(Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize)]
struct UserInfo {
    #[serde(default)]
    username: String,
}

/// The answer's `response`.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Response {
    fn allow(uid: String) -> Response {
        Response {
            uid,
            allowed: true,
            status: None,
            warnings: Vec::new(),
        }
    }

    /// The whole `AdmissionReview` to send back.
    pub fn into_review(self) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": self})
    }
}

/// Reviews one `AdmissionReview` body against `policies`; records what it finds unless
/// the request is a dry run.
pub async fn review(policies: &Arc<Policies>, body: &[u8]) -> Result<Response, AdmissionError> {
    let review: Review =
        serde_json::from_slice(body).map_err(|e| AdmissionError::Malformed(e.to_string()))?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(AdmissionError::Version(format!(
            "{}/{}",
            review.api_version, review.kind
        )));
    }
    let request = review
        .request
        .filter(|r| !r.uid.is_empty())
        .ok_or(AdmissionError::NoRequest)?;
    let uid = request.uid.clone();
    let kind = Kind::from_kind_field(&request.kind.kind);
    let ours = request.kind.group == GROUP && kind.is_some_and(eval::covers);
    let writes = matches!(request.operation.as_str(), "CREATE" | "UPDATE");
    let (Some(value), true, true) = (request.object, ours, writes) else {
        return Ok(Response::allow(uid));
    };
    let obj: Object = match serde_json::from_value(value) {
        Ok(obj) => obj,
        // The CRD's schema passed it, so this is ours to fix; refusing would block
        // every write of the kind.
        Err(e) => {
            tracing::warn!(error = %e, "an admission request's object does not read as an orcaops object; allowed");
            return Ok(Response::allow(uid));
        }
    };
    let old: Option<Object> = request
        .old_object
        .and_then(|v| serde_json::from_value(v).ok());
    let found = match policies.review(&obj, old.as_ref()).await {
        Ok(found) => found,
        Err(e) => {
            // Fail closed: a write no policy could be checked against is not let in.
            let message = format!("the policies could not be read ({e}); try again");
            return Ok(Response {
                uid,
                allowed: false,
                status: Some(status(500, "InternalError", &message, Vec::new())),
                warnings: Vec::new(),
            });
        }
    };
    if !request.dry_run.unwrap_or(false) {
        let user = request.user_info.map(|u| u.username).unwrap_or_default();
        policies.record(&found, &obj, &Door::Admission(user), false);
    }
    let warnings = found.warnings().map(|v| v.line()).collect();
    if !found.refused() {
        return Ok(Response {
            warnings,
            ..Response::allow(uid)
        });
    }
    let causes = found
        .refusals()
        .map(|v| json!({"field": v.field, "message": v.line(), "reason": "PolicyViolation"}))
        .collect();
    Ok(Response {
        uid,
        allowed: false,
        status: Some(status(
            403,
            "Forbidden",
            &found.refusal_message(&obj),
            causes,
        )),
        warnings,
    })
}

/// A `Status` (meta/v1) for the response.
fn status(code: u16, reason: &str, message: &str, causes: Vec<Value>) -> Value {
    json!({
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": {"causes": causes},
    })
}

#[cfg(test)]
mod tests;
