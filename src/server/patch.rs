//! PATCH bodies: which kind of patch a Content-Type names, and applying merge patches
//! (RFC 7386) and JSON patches (RFC 6902) to a stored object's JSON.
//!
//! Server-side apply (`application/apply-patch+yaml`) is not applied here: its body is a
//! whole declaration, admitted and applied like a file of the watched folder.

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::error::ApiError;

/// The PATCH flavours orcaops accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/apply-patch+yaml`: server-side apply of a whole declaration.
    Apply,
    /// `application/merge-patch+json` (RFC 7386), what kubectl sends for custom resources.
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
}

const ACCEPTED: &str =
    "application/apply-patch+yaml, application/merge-patch+json, application/json-patch+json";

/// The patch kind named by the request's Content-Type, or 415 Unsupported Media Type.
pub(super) fn patch_kind(headers: &HeaderMap) -> Result<PatchKind, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/strategic-merge-patch+json" => Err(unsupported(format!(
            "strategic merge patch is not supported: orcaops resources are custom resources, which take only {ACCEPTED} (kubectl uses merge patch for them by itself)"
        ))),
        _ => Err(unsupported(format!(
            "the body of the request was in an unknown format (Content-Type \"{content_type}\"); accepted media types include: {ACCEPTED}"
        ))),
    }
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        message,
    )
}

/// Applies a merge or JSON patch body to `target` in place. A body that is not a patch
/// is a 400; a JSON patch whose operation cannot apply (a `test` that fails, a path that
/// does not exist) is a 422, as in Kubernetes.
pub fn apply_patch(target: &mut Value, kind: PatchKind, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        PatchKind::Merge => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("the merge patch is not valid JSON: {e}"))
            })?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a merge patch must be a JSON object, such as {\"metadata\":{\"labels\":{\"a\":\"b\"}}}",
                ));
            }
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the JSON patch is not a list of RFC 6902 operations: {e}"
                ))
            })?;
            // Applied to a copy, kept only if every operation applies: json-patch's own
            // rollback (`json_patch::patch`) panics when it cannot undo an operation, as
            // after `add` then `move` of the same path (found by tests/fuzz.rs).
            let mut patched = target.clone();
            json_patch::patch_unsafe(&mut patched, &patch).map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the JSON patch does not apply: {e}"),
                )
            })?;
            *target = patched;
            Ok(())
        }
        PatchKind::Apply => Err(ApiError::bad_request(
            "server-side apply is not a patch of the stored object",
        )),
    }
}

/// Whether a patch sets `metadata.resourceVersion`: then it is a precondition, and a
/// conflict is answered instead of retried.
pub fn pins_resource_version(kind: PatchKind, body: &[u8]) -> bool {
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match kind {
        PatchKind::Merge => patch
            .pointer("/metadata/resourceVersion")
            .is_some_and(|v| !v.is_null()),
        PatchKind::Json => patch.as_array().is_some_and(|ops| {
            ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
                    && op.get("op").and_then(Value::as_str) != Some("remove")
            })
        }),
        PatchKind::Apply => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn content_type(ct: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        headers
    }

    fn stored() -> Value {
        json!({
            "apiVersion": "orcaops.dev/v1alpha1",
            "kind": "Job",
            "metadata": { "name": "a", "labels": { "x": "1", "y": "2" }, "resourceVersion": "5" },
            "spec": { "image": "busybox:latest", "steps": [{ "name": "s", "run": "true" }] },
        })
    }

    #[test]
    fn content_types_name_the_patch_kind() {
        let kind = |ct| patch_kind(&content_type(ct));
        assert_eq!(
            kind("application/merge-patch+json").unwrap(),
            PatchKind::Merge
        );
        assert_eq!(
            kind("application/json-patch+json; charset=utf-8").unwrap(),
            PatchKind::Json
        );
        assert_eq!(
            kind("application/apply-patch+yaml").unwrap(),
            PatchKind::Apply
        );
        let smp = kind("application/strategic-merge-patch+json").unwrap_err();
        assert_eq!(smp.code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(smp.message.contains("merge-patch+json"), "{}", smp.message);
        assert_eq!(
            patch_kind(&HeaderMap::new()).unwrap_err().code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn merge_patch_sets_and_removes_fields() {
        let mut object = stored();
        let body = br#"{"metadata":{"labels":{"x":null,"z":"3"}},"spec":{"timeoutSeconds":5}}"#;
        apply_patch(&mut object, PatchKind::Merge, body).unwrap();
        assert_eq!(object["metadata"]["labels"], json!({ "y": "2", "z": "3" }));
        assert_eq!(object["spec"]["timeoutSeconds"], 5);
        assert_eq!(object["spec"]["image"], "busybox:latest");
        let err = apply_patch(&mut object, PatchKind::Merge, b"[1]").unwrap_err();
        assert_eq!(err.code, StatusCode::BAD_REQUEST);
        let err = apply_patch(&mut object, PatchKind::Merge, b"{").unwrap_err();
        assert_eq!(err.code, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn json_patch_applies_operations_and_reports_failures() {
        let mut object = stored();
        let body = br#"[{"op":"test","path":"/metadata/name","value":"a"},
                       {"op":"replace","path":"/spec/steps/0/run","value":"echo hi"},
                       {"op":"add","path":"/metadata/annotations","value":{"n":"v"}}]"#;
        apply_patch(&mut object, PatchKind::Json, body).unwrap();
        assert_eq!(object["spec"]["steps"][0]["run"], "echo hi");
        assert_eq!(object["metadata"]["annotations"]["n"], "v");
        let failing = br#"[{"op":"test","path":"/metadata/name","value":"b"}]"#;
        let err = apply_patch(&mut object, PatchKind::Json, failing).unwrap_err();
        assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY);
        let err = apply_patch(&mut object, PatchKind::Json, br#"{"op":"add"}"#).unwrap_err();
        assert_eq!(err.code, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_patch_that_names_a_resource_version_is_a_precondition() {
        assert!(pins_resource_version(
            PatchKind::Merge,
            br#"{"metadata":{"resourceVersion":"3"}}"#
        ));
        assert!(!pins_resource_version(
            PatchKind::Merge,
            br#"{"metadata":{"labels":{"a":"b"}}}"#
        ));
        assert!(pins_resource_version(
            PatchKind::Json,
            br#"[{"op":"replace","path":"/metadata/resourceVersion","value":"3"}]"#
        ));
    }
}
