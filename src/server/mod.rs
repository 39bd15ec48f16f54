//! The HTTP API in Kubernetes path form (`/apis/orcaops.dev/v1alpha1/...`). The CLI is
//! its client, as kubectl is a client of the Kubernetes API.

mod audited;
pub mod auth;
#[cfg(test)]
mod cluster_tests;
mod containers;
mod discovery;
mod error;
mod guard;
mod hooks;
mod inputs;
mod jobs;
mod layers;
mod list;
mod logs;
mod metrics;
mod objects;
mod openapi;
mod patch;
mod policy;
mod ratelimit;
mod sandbox;
mod search;
mod secrets;
mod selector;
mod serve;
mod status;
mod table;
#[cfg(test)]
mod test_state;
pub mod tls;
pub mod ui;
mod watch;
mod workflows;
#[cfg(test)]
mod workflows_tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, POLICY_VIOLATION, Status, StatusCause, StatusDetails};
pub use guard::{Access, AccessError};
pub use layers::REQUEST_TIMEOUT;
pub use metrics::scrape;
pub use sandbox::{MAX_FILE_BYTES, PATH_KIND_HEADER};
pub use serve::{ServeError, serve_api, serve_api_with};
pub use watch::BOOKMARK_INTERVAL;
pub use workflows::{
    IDEMPOTENCY_KEY, phase_str as workflow_phase_str, runs_from_status, trigger_has_token,
};

/// The pure functions a request body or query goes through before anything is stored or
/// run, reachable for the fuzz tests (tests/fuzz.rs) only: not an API of orcaops.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::objects::admit;
    pub use super::patch::{PatchKind, apply_patch, pins_resource_version};
    pub use super::sandbox::check_tar;
    pub use super::selector::{FieldSelector, LabelSelector, Selectors};
}

use crate::controller::activity::SandboxActivity;
use crate::runtime::sandbox::SandboxIo;
use crate::store::{LocalStore, ObjectStore};

/// The largest request body accepted (a YAML document is far smaller).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What the handlers share. Local mode: the SQLite store is both `objects` and
/// `records`, and Docker runs sandboxes. Cluster mode (`orcaops operator --api`): the
/// Kubernetes API holds the objects, the operator's data dir the records, and sandboxes
/// run as pods. The handlers see only the traits.
#[derive(Clone)]
pub struct AppState {
    /// Objects, status, watches and events: the local store or the Kubernetes API.
    pub objects: Arc<dyn ObjectStore>,
    /// Run records, step logs and artifacts: the local data dir in both modes. Read it
    /// through [`AppState::records`].
    pub records: LocalStore,
    /// Exec, files and `/containers` in what runs sandboxes (Docker, or pods); what it
    /// cannot do it answers as unsupported, which becomes a 501.
    pub sandboxes: Arc<dyn SandboxIo>,
    /// Where exec calls and file transfers are recorded as sandbox activity.
    pub activity: Arc<SandboxActivity>,
    /// Cancelled at shutdown: watches and log streams end cleanly.
    pub shutdown: CancellationToken,
    /// Cluster mode: whether this replica leads, and so whether its data dir is where
    /// the run records are being written. None (local mode): always.
    pub leading: Option<tokio::sync::watch::Receiver<bool>>,
    /// What `/metrics` exports: the controllers' metrics, and the API's requests.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The live policies every write is reviewed against (shared with the folder and
    /// the controllers).
    pub policies: Arc<crate::policy::Policies>,
}

/// What run records, logs and artifacts answer on a replica that does not lead.
pub const NOT_LEADING: &str = "this operator replica is a standby: run records, step logs \
and artifacts are written to the data dir of the leading replica, not this one. Reach the \
leader's API (its pod is the holder of the Lease orcaops-operator: kubectl get lease \
orcaops-operator -n NAMESPACE -o jsonpath='{.spec.holderIdentity}', then kubectl \
port-forward pod/HOLDER 8080), or run one replica when the API is on";

impl AppState {
    /// Local mode: one SQLite store for objects and records, and what runs sandboxes.
    pub fn local(
        store: LocalStore,
        sandboxes: impl SandboxIo,
        activity: Arc<SandboxActivity>,
        shutdown: CancellationToken,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let objects: Arc<dyn ObjectStore> = Arc::new(store.clone());
        AppState {
            policies: crate::policy::Policies::watching(objects.clone()),
            objects,
            records: store,
            sandboxes: Arc::new(sandboxes),
            activity,
            shutdown,
            leading: None,
            metrics,
        }
    }

    /// The run records, or 503 on a standby replica (whose data dir is not written).
    pub fn records(&self) -> Result<&LocalStore, ApiError> {
        match &self.leading {
            Some(leading) if !*leading.borrow() => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                NOT_LEADING,
            )),
            _ => Ok(&self.records),
        }
    }
}

const BASE: &str = "/apis/orcaops.dev/v1alpha1";

pub fn router(state: AppState) -> Router {
    let ns = format!("{BASE}/namespaces/{{ns}}/{{plural}}");
    // Every route but the sandbox ones gets the request timeout: an exec runs as long as
    // its own timeoutSeconds allows, and file transfers have a longer limit of their own.
    let timed = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::handler))
        .route(&format!("{BASE}/containers"), get(containers::list))
        .route(
            &format!("{BASE}/{{plural}}"),
            get(objects::list_all).post(objects::create_cluster),
        )
        .route(
            &format!("{BASE}/{{plural}}/{{name}}"),
            get(objects::get_cluster)
                .put(objects::replace_cluster)
                .patch(objects::patch_cluster)
                .delete(objects::delete_cluster),
        )
        .route(
            &ns,
            get(objects::list_namespaced).post(objects::create_namespaced),
        )
        .route(
            &format!("{ns}/{{name}}"),
            get(objects::get_namespaced)
                .put(objects::replace_namespaced)
                .patch(objects::patch_namespaced)
                .delete(objects::delete_namespaced),
        )
        .route(
            &format!("{BASE}/{{plural}}/{{name}}/status"),
            get(objects::get_cluster)
                .put(status::replace_cluster)
                .patch(status::patch_cluster),
        )
        .route(
            &format!("{ns}/{{name}}/status"),
            get(objects::get_namespaced)
                .put(status::replace_namespaced)
                .patch(status::patch_namespaced),
        )
        // Job runs across jobs, and their usage; before `{plural}`, which would read
        // `runs` or `usage` as a kind.
        .route(&format!("{BASE}/runs"), get(search::runs_all))
        .route(
            &format!("{BASE}/namespaces/{{ns}}/runs"),
            get(search::runs_namespaced),
        )
        .route(&format!("{BASE}/usage"), get(search::usage_all))
        .route(
            &format!("{BASE}/namespaces/{{ns}}/usage"),
            get(search::usage_namespaced),
        )
        .route(&format!("{ns}/{{name}}/log"), get(sandbox::log))
        .route(&format!("{ns}/{{name}}/cancel"), post(jobs::cancel))
        .route(&format!("{ns}/{{name}}/rerun"), post(jobs::rerun))
        .route(
            &format!("{ns}/{{name}}/runs"),
            get(jobs::runs).post(jobs::start_run),
        )
        .route(&format!("{ns}/{{name}}/approve"), post(jobs::approve))
        .route(&format!("{ns}/{{name}}/reject"), post(jobs::reject))
        .route(
            &format!("{ns}/{{name}}/artifacts/{{artifact}}"),
            get(jobs::artifact),
        )
        .route(
            "/api/v1/namespaces/{ns}/events",
            get(jobs::events_namespaced),
        )
        .route("/api/v1/events", get(jobs::events_all))
        .route(
            "/api/v1/namespaces/{ns}/secrets",
            get(secrets::list_namespaced).post(secrets::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/secrets/{name}",
            get(secrets::get)
                .put(secrets::replace)
                .patch(secrets::patch)
                .delete(secrets::delete),
        )
        .route("/api/v1/secrets", get(secrets::list_all))
        // Discovery and OpenAPI, so that kubectl works against local mode.
        .route("/api", get(discovery::core_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route("/apis", get(discovery::api_group_list))
        .route("/apis/orcaops.dev", get(discovery::api_group))
        .route(BASE, get(discovery::api_resources))
        .route("/version", get(discovery::version))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::index))
        .route(&format!("/openapi/v3{BASE}"), get(openapi::document))
        .fallback(|| async { ApiError::not_found("the requested resource") })
        .layer(layers::timeout());
    Router::new()
        .merge(sandbox::routes(&ns))
        .merge(timed)
        // Path parameters and the media types of writes are checked once here, for
        // every route (see `inputs`).
        .route_layer(axum::middleware::from_fn(inputs::media_types))
        .route_layer(axum::middleware::from_fn(inputs::path_params))
        .layer(axum::middleware::from_fn(table::middleware))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outside the timeout, so that a timed-out request also gets a Status body.
        .layer(axum::middleware::map_response(layers::status_bodies))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    let unready =
        |what: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", what);
    if let Err(e) = state.objects.current_resource_version().await {
        return unready(format!("store: {e}")).into_response();
    }
    // Reads can go on while writes fail (a full or read-only data dir): not ready.
    if let Err(e) = state.objects.writable().await {
        return unready(format!("store: {e}")).into_response();
    }
    // The runtime's ping also fails while its calls time out (a daemon can answer pings
    // while its creates hang).
    let ping = tokio::time::timeout(Duration::from_secs(2), state.sandboxes.ping()).await;
    if let Err(e) = ping.unwrap_or_else(|_| {
        Err(crate::runtime::RuntimeError::Unreachable {
            message: "no answer to a ping within 2s".into(),
        })
    }) {
        return unready(format!("runtime: {e}")).into_response();
    }
    "ok".into_response()
}
