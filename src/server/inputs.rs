//! What a request must be before any handler sees it: path parameters that are names
//! (checked once, for every route, by the rules objects' names follow), and write bodies
//! in a media type the route reads.
//!
//! Why here and not in each handler: namespaces and names become file paths and Docker
//! names, and a route that forgot a check let `..`, `a/b` or upper case through on POST
//! while PATCH refused them. Why the media types: `text/plain`, form and multipart bodies
//! are what a web page can send to another site without a CORS preflight, and no client
//! of this API sends them; refusing them closes that door even before the Origin check.

use axum::body::HttpBody;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{MatchedPath, RawPathParams, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, StatusCause};
use crate::resources::validate::{MAX_NAME, dns_label_problem};

/// The longest artifact name (as `spec.artifacts[].name` allows).
const MAX_ARTIFACT_NAME: usize = 100;

/// Why a path parameter's value is refused, if it is: `(what it is called, problem,
/// the rule)`. Parameters that are not names (the resource type) pass: a wrong one is
/// an unknown resource, 404.
pub(super) fn param_problem(key: &str, value: &str) -> Option<(&'static str, String, String)> {
    let dns = |what: &'static str| {
        dns_label_problem(value, MAX_NAME).map(|problem| {
            (
                what,
                problem,
                format!(
                    "a {what} is a DNS-1123 label: at most {MAX_NAME} lowercase letters, digits and '-', starting and ending with a letter or digit"
                ),
            )
        })
    };
    match key {
        "ns" => dns("namespace"),
        "name" => dns("name"),
        "artifact" => artifact_problem(value).map(|problem| {
            (
                "artifact",
                problem,
                format!(
                    "an artifact name is at most {MAX_ARTIFACT_NAME} letters, digits, '-', '_' and '.', and not \".\" or \"..\""
                ),
            )
        }),
        _ => None,
    }
}

/// The rule of `spec.artifacts[].name` (an artifact is stored under its name).
fn artifact_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > MAX_ARTIFACT_NAME {
        return Some(format!(
            "is {} characters long, over the limit of {MAX_ARTIFACT_NAME}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} is a directory, not a file name"));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .map(|c| format!("contains {c:?}"))
}

fn invalid_param(what: &str, value: &str, problem: &str, rule: &str) -> ApiError {
    // The value is shown escaped: it may hold NUL or control characters.
    let shown: String = value.chars().take(80).collect();
    let more = if value.chars().count() > 80 {
        "…"
    } else {
        ""
    };
    let mut err = ApiError::bad_request(format!(
        "the {what} {shown:?}{more} in the path {problem}; {rule}"
    ));
    err.details.causes = vec![StatusCause {
        field: what.into(),
        message: format!("{problem}; {rule}"),
        reason: "FieldValueInvalid".into(),
    }];
    err
}

/// Route middleware (`route_layer`): every named path parameter of the matched route is
/// checked before its handler runs.
pub(super) async fn path_params(
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let params = match params {
        Ok(params) => params,
        Err(e) => {
            return ApiError::bad_request(format!(
                "a path parameter is not valid UTF-8 once percent-decoded ({e}); names are lowercase letters, digits and '-'"
            ))
            .into_response();
        }
    };
    for (key, value) in &params {
        if let Some((what, problem, rule)) = param_problem(key, value) {
            return invalid_param(what, value, &problem, &rule).into_response();
        }
    }
    next.run(req).await
}

/// Object bodies: one object as JSON or YAML.
const OBJECT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
];
/// PATCH bodies (strategic merge is let through to be refused with its own reason).
const PATCH_TYPES: &[&str] = &[
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
    "application/apply-patch+json",
    "application/strategic-merge-patch+json",
];
/// A Secret written by kubectl, which sends core kinds as protobuf.
const SECRET_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
/// A sandbox exec's body.
const EXEC_TYPES: &[&str] = &["application/json"];
/// A file upload: one file, or a tar to extract.
const FILE_TYPES: &[&str] = &[
    "application/octet-stream",
    "application/x-tar",
    "application/tar",
];

/// The media types a write to the route `route` (its pattern, such as
/// `.../{name}/files`, so that an object named `files` is not taken for the
/// subresource) with `method` reads.
pub(super) fn accepted_types(method: &Method, route: &str) -> &'static [&'static str] {
    if route.ends_with("/{name}/files") {
        FILE_TYPES
    } else if route.ends_with("/{name}/exec") {
        EXEC_TYPES
    } else if method == Method::PATCH {
        PATCH_TYPES
    } else if route.starts_with("/api/v1/namespaces/{ns}/secrets") {
        SECRET_TYPES
    } else {
        OBJECT_TYPES
    }
}

/// Whether a write to `route` with this Content-Type (None: absent) may reach its
/// handler. Pure.
pub(super) fn check_media_type(
    method: &Method,
    route: &str,
    content_type: Option<&str>,
) -> Result<(), ApiError> {
    let accepted = accepted_types(method, route);
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    if essence.as_deref().is_some_and(|e| accepted.contains(&e)) {
        return Ok(());
    }
    let what = match content_type {
        None => "no Content-Type".to_string(),
        Some(c) => format!("Content-Type {c:?}"),
    };
    let mut err = ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        format!(
            "a {method} with a body here needs one of these media types: {}; the request has {what} (form, multipart and text/plain bodies are refused: web pages send them cross-site)",
            accepted.join(", ")
        ),
    );
    err.details.causes = vec![StatusCause {
        field: "Content-Type".into(),
        message: format!("use one of: {}", accepted.join(", ")),
        reason: "FieldValueNotSupported".into(),
    }];
    Err(err)
}

/// Route middleware (`route_layer`): a POST, PUT or PATCH that carries a body must say
/// what it is, in a type its route reads. Writes without a body (cancel, rerun, stop,
/// start) need none.
pub(super) async fn media_types(route: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if writes && !req.body().is_end_stream() {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let route = route.as_ref().map_or("", MatchedPath::as_str);
        if let Err(e) = check_media_type(req.method(), route, content_type) {
            let mut response = e.into_response();
            // The refused body is still on the connection.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return response;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::parse::parse_documents;
    use crate::resources::validate::validate;

    #[test]
    fn names_follow_the_metadata_rules() {
        let long = "a".repeat(300);
        for bad in [
            "a/b",
            "..",
            ".",
            "Upper",
            "a\0b",
            long.as_str(),
            "",
            "-a",
            "a_b",
        ] {
            for key in ["ns", "name"] {
                let (what, _, rule) = param_problem(key, bad).unwrap_or_else(|| panic!("{bad:?}"));
                assert!(rule.contains("DNS-1123"), "{rule}");
                assert_eq!(what, if key == "ns" { "namespace" } else { "name" });
            }
        }
        for good in ["default", "team-a", "a1", &"a".repeat(63)] {
            assert_eq!(param_problem("ns", good), None, "{good}");
            assert_eq!(param_problem("name", good), None, "{good}");
        }
        // The resource type is matched against the kinds (404), not checked here.
        assert_eq!(param_problem("plural", "Jobs"), None);
    }

    /// The artifact rule here is the one Job validation applies to `spec.artifacts`.
    #[test]
    fn artifact_names_follow_the_spec_rule() {
        let long = "a".repeat(101);
        for name in [
            "report.xml",
            "out",
            "a_b-c.tar",
            ".",
            "..",
            "",
            "a/b",
            "a b",
            "x\0",
            &long,
            "..hidden",
        ] {
            let yaml = format!(
                "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata: {{name: j, namespace: default}}\nspec:\n  image: busybox\n  steps: [{{name: s, run: \"true\"}}]\n  artifacts: [{{name: {name:?}, path: /out}}]\n"
            );
            let spec_allows = match parse_documents("t.yaml", &yaml).pop().unwrap() {
                Ok(obj) => validate(&obj).is_empty(),
                Err(_) => false,
            };
            assert_eq!(
                param_problem("artifact", name).is_none(),
                spec_allows,
                "{name:?}"
            );
        }
    }

    #[test]
    fn writes_need_their_routes_media_types() {
        // Route patterns, as `MatchedPath` gives them.
        let list = "/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}";
        let item = "/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}/{name}";
        let exec = "/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}/{name}/exec";
        let files = "/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}/{name}/files";
        let ok = |m: Method, route: &str, c: &str| check_media_type(&m, route, Some(c)).is_ok();
        assert!(ok(Method::POST, list, "application/json"));
        assert!(ok(Method::PUT, item, "application/yaml; charset=utf-8"));
        assert!(ok(Method::PATCH, item, "application/merge-patch+json"));
        assert!(ok(Method::POST, exec, "application/json"));
        assert!(ok(Method::PUT, files, "application/x-tar"));
        for (method, route, content_type) in [
            (Method::POST, list, "text/plain"),
            (Method::POST, list, "application/x-www-form-urlencoded"),
            (Method::POST, list, "multipart/form-data; boundary=x"),
            (Method::PATCH, item, "application/json"),
            (Method::POST, exec, "application/x-www-form-urlencoded"),
            (Method::POST, exec, "text/plain"),
            (Method::PUT, files, "text/plain"),
        ] {
            let err = check_media_type(&method, route, Some(content_type)).unwrap_err();
            assert_eq!(err.code, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{route}");
            assert_eq!(err.details.causes[0].field, "Content-Type");
        }
        let missing = check_media_type(&Method::POST, list, None).unwrap_err();
        assert!(
            missing
                .message
                .contains("application/json, application/yaml"),
            "{}",
            missing.message
        );
    }
}
