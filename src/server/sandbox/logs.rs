//! `GET .../sandboxes/{name}/log?service=S&follow=true&tailLines=N`: a sandbox
//! service's own output as text, through [`SandboxIo::logs`](crate::runtime::sandbox::SandboxIo)
//! (the server never sees Docker). It shares its path form with a Job's log, so the
//! one `{plural}/{name}/log` route comes here and hands Jobs to `server::logs`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::{resolve, runtime_error};
use crate::resources::{Kind, ObjectKey};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::logs::LogQuery;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SandboxLogQuery {
    service: Option<String>,
    follow: Option<String>,
    tail_lines: Option<usize>,
}

/// The log of a Job, or of a Sandbox's service.
pub(in crate::server) async fn log(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if plural != Kind::Sandbox.plural() {
        let Query(q) = Query::<LogQuery>::try_from_uri(&uri)
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        return crate::server::logs::log(State(state), Path((ns, plural, name)), Query(q), headers)
            .await;
    }
    let Query(q) = Query::<SandboxLogQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    let key = ObjectKey::new(Kind::Sandbox, &ns, &name);
    let target = resolve(&state, &key, q.service.as_deref()).await?;
    let follow = matches!(q.follow.as_deref(), Some("true" | "1"));
    let stream = state
        .sandboxes
        .logs(&target.container, follow, q.tail_lines)
        .await
        .map_err(|e| runtime_error(&target, e))?;
    let body = stream.map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    let mut response = Body::from_stream(body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}
