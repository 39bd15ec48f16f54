//! The validating admission webhook (`--webhook-addr`): `POST /validate` over HTTPS,
//! where the Kubernetes API server sends every write of a Job, Workflow, Sandbox or
//! SandboxTemplate (the `ValidatingWebhookConfiguration` of manifests/ and the chart)
//! and the policies answer (see [`crate::policy::admission`]). A body that is not an
//! `AdmissionReview` v1 is answered 400 with a `Status`; the configuration's
//! `failurePolicy` decides what the API server does then, and when this does not answer.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio_util::sync::CancellationToken;

use crate::policy::Policies;
use crate::policy::admission;
use crate::server::tls::{TlsOptions, TlsPeer};

/// The largest review read: an object and the object it replaces, each at most the API
/// server's 1.5 MiB, with room for the envelope.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The router of `/validate` (and `/healthz`, for the Service's probes).
pub fn router(policies: Arc<Policies>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(policies)
}

async fn validate(State(policies): State<Arc<Policies>>, body: Bytes) -> Response {
    match admission::review(&policies, &body).await {
        Ok(response) => axum::Json(response.into_review()).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "a malformed admission review");
            let status = serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "reason": "BadRequest",
                "message": e.to_string(),
                "code": 400,
            });
            (StatusCode::BAD_REQUEST, axum::Json(status)).into_response()
        }
    }
}

/// Serves the webhook over HTTPS on `options` until `shutdown`.
pub async fn serve(
    options: &TlsOptions,
    policies: Arc<Policies>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, crate::server::tls::TlsError> {
    let listener = crate::server::tls::bind(options).await?;
    tracing::info!(addr = %options.listen, "the admission webhook listens (POST /validate)");
    let app = router(policies).into_make_service_with_connect_info::<TlsPeer>();
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the admission webhook stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::resources::{Kind, Object};
    use crate::store::LocalStore;

    async fn send(app: Router, body: Vec<u8>) -> (StatusCode, Value) {
        let request = Request::post("/validate")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let code = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn reviews_are_answered_and_malformed_or_huge_bodies_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        let spec = json!({"images": {"deny": ["*miner*"]}});
        store
            .create(Object::new(Kind::Policy, "", "no-miners", spec))
            .await
            .unwrap();
        let app = router(Policies::watching(Arc::new(store)));
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "abc",
                "kind": {"group": "orcaops.dev", "version": "v1alpha1", "kind": "Job"},
                "operation": "CREATE",
                "object": {
                    "apiVersion": "orcaops.dev/v1alpha1", "kind": "Job",
                    "metadata": {"name": "m", "namespace": "default"},
                    "spec": {"image": "evil/miner:1", "steps": [{"name": "s", "run": "true"}]},
                },
            },
        });
        let (code, answer) = send(app.clone(), review.to_string().into_bytes()).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(answer["response"]["uid"], "abc");
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["code"], 403);

        let (code, status) = send(app.clone(), b"{\"apiVersion\": 1".to_vec()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(status["kind"], "Status");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("not an AdmissionReview")
        );

        let (code, _) = send(app, vec![b' '; BODY_LIMIT + 1]).await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
