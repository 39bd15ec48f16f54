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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::store::LocalStore;

    /// The API as `serve` runs it (guard, MCP, the counting layer) over a real SQLite
    /// store; sandboxes go nowhere (never called here).
    #[tokio::test]
    async fn requests_are_counted_by_route_template_never_by_path() {
        let data = tempfile::tempdir().unwrap();
        let store = LocalStore::open(data.path()).await.unwrap();
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let state = AppState {
            objects: Arc::new(store.clone()),
            policies: crate::policy::Policies::watching(Arc::new(store.clone())),
            records: store,
            sandboxes: Arc::new(crate::runtime::PodRuntime::new(
                crate::kubeapi::mock::mock_client().0,
            )),
            activity: crate::controller::activity::SandboxActivity::new(),
            shutdown: shutdown.clone(),
            leading: None,
            metrics: metrics.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = super::super::serve_api(listener, state).await.unwrap();
        let http = crate::server::auth::admin_client(data.path());
        let jobs = format!("{url}/apis/orcaops.dev/v1alpha1/namespaces/team-a/jobs");
        for name in ["secret-name-1", "secret-name-2"] {
            let answer = http.get(format!("{jobs}/{name}")).send().await.unwrap();
            assert_eq!(answer.status(), 404);
        }
        assert_eq!(http.get(&jobs).send().await.unwrap().status(), 200);
        assert_eq!(
            http.get(format!("{url}/nowhere"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let refused = http
            .get(&jobs)
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "the guard refuses a foreign origin");

        let text = http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let ns = "/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}";
        for line in [
            format!(
                r#"orcaops_api_requests_total{{method="GET",route="{ns}/{{name}}",code="404"}} 2"#
            ),
            format!(r#"orcaops_api_requests_total{{method="GET",route="{ns}",code="200"}} 1"#),
            format!(r#"orcaops_api_requests_total{{method="GET",route="{ns}",code="403"}} 1"#),
            r#"orcaops_api_requests_total{method="GET",route="_unmatched",code="404"} 1"#
                .to_string(),
        ] {
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        assert!(!text.contains("secret-name"), "{text}");
        shutdown.cancel();
        let _ = served.await;
    }
}
