//! `/metrics` on the API's own listener (`orcaops serve`, `orcaops operator --api`), and
//! the layer that counts every API request by method, route template and status code.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::Metrics;

/// The `/metrics` answer for a request with `headers`: OpenMetrics when the scraper asks
/// for it (Prometheus does), else the classic text format. Shared with the operator's
/// own `/metrics`.
pub fn scrape(metrics: &Metrics, headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = metrics.exposition(accept);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

pub async fn handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    scrape(&state.metrics, &headers)
}

/// Counts the request once its response headers are ready. The route is the template
/// axum matched (`.../namespaces/{ns}/{plural}/{name}`), never the raw path: names in
/// paths would make a series per object.
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let response = next.run(request).await;
    metrics.request_served(
        method.as_str(),
        route.as_deref(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
