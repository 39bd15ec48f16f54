//! The operator's own small HTTP server (`--metrics-addr`): `/metrics`, `/healthz` (the
//! process answers) and `/readyz` (the cluster answers, the CRDs are installed and the
//! controllers have listed what exists; a standby replica is ready too, as it can take
//! over at any moment).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What `/readyz` answers from: Ok, or why not.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: ReadinessCheck,
}

/// The router of `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<Metrics>, readiness: ReadinessCheck) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, readiness })
}

/// OpenMetrics for Prometheus, the classic text format for anything that does not ask
/// for it (see `metrics::text`).
async fn metrics_text(State(state): State<AppState>, headers: HeaderMap) -> Response {
    crate::server::scrape(&state.metrics, &headers)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match (state.readiness)().await {
        Ok(()) => "ok\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, shutdown: CancellationToken) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "metrics and health endpoints listening");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "the metrics server stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::resources::Kind;

    async fn start(
        readiness: ReadinessCheck,
        metrics: Arc<Metrics>,
    ) -> (String, CancellationToken) {
        let depth = Arc::new(AtomicUsize::new(7));
        metrics.sample_queue_depth(move || depth.load(Ordering::Relaxed));
        let app = router(metrics, readiness);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, app, shutdown.clone()));
        (url, shutdown)
    }

    #[tokio::test]
    async fn health_readiness_and_metrics_answer() {
        let store_up = Arc::new(AtomicBool::new(false));
        let synced = Arc::new(AtomicBool::new(false));
        let (up, listed) = (store_up.clone(), synced.clone());
        let readiness: ReadinessCheck = Arc::new(move || {
            let (up, listed) = (up.load(Ordering::Relaxed), listed.load(Ordering::Relaxed));
            Box::pin(async move {
                match (up, listed) {
                    (false, _) => Err("cannot reach the Kubernetes API".to_string()),
                    (true, false) => {
                        Err("the controllers have not listed the objects yet".to_string())
                    }
                    (true, true) => Ok(()),
                }
            })
        });
        let metrics = Arc::new(Metrics::new());
        metrics.reconciled(Kind::Job, "ok", std::time::Duration::from_millis(2));
        let (url, shutdown) = start(readiness, metrics).await;
        let http = reqwest::Client::new();
        let get = |path: &str| http.get(format!("{url}{path}")).send();

        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        let unready = get("/readyz").await.unwrap();
        assert_eq!(unready.status(), 503);
        assert!(unready.text().await.unwrap().contains("cannot reach"));
        store_up.store(true, Ordering::Relaxed);
        let unsynced = get("/readyz").await.unwrap();
        assert_eq!(unsynced.status(), 503);
        assert!(unsynced.text().await.unwrap().contains("not listed"));
        synced.store(true, Ordering::Relaxed);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);

        let scraped = http
            .get(format!("{url}/metrics"))
            .header(
                "accept",
                "application/openmetrics-text;version=1.0.0,*/*;q=0.1",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(scraped.status(), 200);
        let text = scraped.text().await.unwrap();
        assert!(text.contains("orcaops_queue_depth 7"), "{text}");
        assert!(text.contains(r#"orcaops_reconciles_total{kind="Job",outcome="ok"} 1"#));
        assert!(text.contains("orcaops_leader 0"));
        assert!(text.ends_with("# EOF\n"));
        // Without asking for OpenMetrics: the classic text format.
        let classic = get("/metrics").await.unwrap();
        assert!(
            classic.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = classic.text().await.unwrap();
        assert!(
            text.contains("# TYPE orcaops_reconciles_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        shutdown.cancel();
    }
}
