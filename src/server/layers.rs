//! What wraps every route: a `Status` body for the errors the framework answers by
//! itself (unknown paths, wrong methods, bad query strings, oversized bodies, timeouts),
//! and a request timeout that never cuts a stream.

use std::time::Duration;

use axum::body::to_bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// How long a request may take to produce its response. It covers reading the request
/// body and the handler, not the response body, so watches and followed logs, which
/// answer at once and then stream, are never cut by it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Framework error bodies are one line; anything longer is not one of them.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// The timeout layer: 504 with reason `Timeout`, as the Kubernetes API server answers.
pub fn timeout() -> tower_http::timeout::TimeoutLayer {
    tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::GATEWAY_TIMEOUT,
        REQUEST_TIMEOUT,
    )
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Turns an error response that is not already JSON (axum's plain-text rejections, the
/// empty 405 and 504) into a Kubernetes `Status`, keeping its message and headers.
pub async fn status_bodies(response: Response) -> Response {
    let code = response.status();
    if !(code.is_client_error() || code.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, ERROR_BODY_LIMIT).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let (reason, fallback) = match code {
        StatusCode::BAD_REQUEST => ("BadRequest", "the request is malformed".to_string()),
        StatusCode::NOT_FOUND => (
            "NotFound",
            "the server could not find the requested resource".to_string(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "MethodNotAllowed",
            match parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
            {
                Some(allow) => format!("this method is not allowed here; allowed: {allow}"),
                None => "this method is not allowed here".to_string(),
            },
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "RequestEntityTooLarge",
            format!(
                "the request body is larger than {} MiB",
                super::MAX_BODY_BYTES / (1024 * 1024)
            ),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "UnsupportedMediaType",
            "the request body has an unsupported Content-Type".to_string(),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ("Invalid", "the request body is invalid".to_string()),
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => (
            "Timeout",
            format!(
                "the request did not complete within {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        ),
        StatusCode::TOO_MANY_REQUESTS => ("TooManyRequests", "too many requests".to_string()),
        StatusCode::SERVICE_UNAVAILABLE => ("ServiceUnavailable", "not ready".to_string()),
        c if c.is_server_error() => ("InternalError", "internal error".to_string()),
        _ => ("BadRequest", "the request was refused".to_string()),
    };
    let message = match (text.is_empty(), code) {
        (true, _) => fallback,
        // axum's body-limit text ("length limit exceeded") says less than ours.
        (false, StatusCode::PAYLOAD_TOO_LARGE) => format!("{fallback} ({text})"),
        (false, _) => text,
    };
    let mut status = ApiError::new(code, reason, message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::CONNECTION] {
        if let Some(value) = parts.headers.get(&name) {
            status.headers_mut().insert(name, value.clone());
        }
    }
    // The unread rest of a refused body is still on the connection: close it, and say
    // so, or a client would send its next request on it and lose that request.
    if matches!(
        code,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT
    ) {
        status.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    status
}
