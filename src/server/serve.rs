//! Serving the API as `orcaops serve` and `orcaops operator --api` both do: the REST
//! facade with MCP mounted at `/mcp`, until the state's shutdown token.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::auth::{self, Auth, AuthError};
use super::guard::{self, Access, Guard};
use super::{AppState, router};
use crate::client::ClientError;

#[derive(thiserror::Error, Debug)]
pub enum ServeError {
    #[error("cannot read the address the API listens on: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error("cannot start MCP: {0}")]
    Mcp(#[source] ClientError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    #[error("cannot open the audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
}

/// Starts serving the API on `listener` in a task of its own, which ends once
/// `state.shutdown` is cancelled and the open connections have closed. Browsers may
/// reach it only from its own origin, by localhost or an IP address (see `guard`).
/// Every request but health and version needs an API key (see `auth`); the server admin
/// key is in `admin.key` in the data dir of `state.records`.
pub async fn serve_api(
    listener: TcpListener,
    state: AppState,
) -> Result<JoinHandle<()>, ServeError> {
    serve_api_with(listener, state, Access::default()).await
}

/// [`serve_api`], with the other origins and host names browsers may reach it from
/// (`--cors-origin`, `--allowed-host`), and the rate limit of each key (`--rate-limit`).
pub async fn serve_api_with(
    listener: TcpListener,
    state: AppState,
    access: Access,
) -> Result<JoinHandle<()>, ServeError> {
    let keys = std::sync::Arc::new(
        Auth::open(state.records.clone(), state.objects.clone(), access.rate).await?,
    );
    // In the data dir, beside the run records: on a cluster too (the facade's own actions).
    let audit = crate::audit::AuditLog::open(state.records.data_dir())?;
    let tls = match &access.tls {
        Some(options) => Some(super::tls::bind(options).await?),
        None => None,
    };
    let addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    let shutdown = state.shutdown.clone();
    let metrics = state.metrics.clone();
    // MCP's tools are clients of this same API, over loopback. It is mounted outside
    // `router` so that the API's per-request layers (body limit, timeouts) never cut its
    // long waits and event streams.
    let mut own: SocketAddr = addr;
    if own.ip().is_unspecified() {
        own.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let mcp = crate::mcp::http_service(
        &format!("http://{own}"),
        // With names listed beyond loopback's, the guard decides on Host alone.
        addr.ip().is_loopback() && !access.lists_hosts(),
        shutdown.clone(),
    )
    .map_err(ServeError::Mcp)?;
    // The guard wraps MCP too: its tools act on the API as much as the API does.
    let hooks = super::hooks::routes(state.clone());
    let mut app = router(state)
        .merge(hooks)
        .nest_service("/mcp", mcp)
        .merge(auth::keys_api::routes(keys.clone()))
        .merge(super::audited::routes(audit.clone()))
        .merge(super::ui::routes(keys.clone()));
    if access.authenticate {
        // Inside the guard: a browser's foreign origin is refused before its key is read.
        app = app.layer(axum::middleware::from_fn_with_state(keys, auth::middleware));
    }
    let audited = access.audit;
    let mut app = app.layer(axum::middleware::from_fn_with_state(
        Guard::new(access, addr),
        guard::middleware,
    ));
    if audited {
        // Outside the guard and authentication: their refusals are audited too.
        app = app.layer(axum::middleware::from_fn_with_state(
            audit,
            super::audited::middleware,
        ));
    }
    let app = app
        // Outermost, so that the guard's refusals are counted too.
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            super::metrics::count,
        ));
    let secure = tls.map(|tls| {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Ok(addr) = axum::serve::Listener::local_addr(&tls) {
                info!(%addr, "API listening over HTTPS");
            }
            let app = app.into_make_service_with_connect_info::<super::tls::TlsPeer>();
            let served = axum::serve(tls, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "the HTTPS API server stopped");
            }
        })
    });
    Ok(tokio::spawn(async move {
        info!(%addr, "API listening (MCP at /mcp)");
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "the API server stopped");
        }
        if let Some(secure) = secure {
            let _ = secure.await;
        }
    }))
}
