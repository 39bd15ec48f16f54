//! Cluster mode's process (`orcaops operator`): leader election among replicas
//! ([`lease`]), acting only while leading ([`while_leading`]), and the metrics and health
//! endpoints ([`http`], [`metrics`]).

pub mod http;
pub mod lease;
pub mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::controller::{self, Backend, Context};
use crate::runtime::PodRuntime;
use crate::server::{self, AppState, ServeError};
use crate::store::kube::{AccessError, ConnectError, KubeStore};
use crate::store::{LocalStore, StoreError};
use lease::{LeaderElector, LeaseConfig, own_identity, own_namespace};

/// What `orcaops operator` runs with.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// The operator's own namespace (the Lease's); None: found out (see [`own_namespace`]).
    pub namespace: Option<String>,
    /// Run records, step logs and artifacts.
    pub data_dir: PathBuf,
    pub leader_election: bool,
    pub metrics_addr: SocketAddr,
    /// Where the REST facade and MCP listen (`--api`); None: they do not run.
    pub api_addr: Option<SocketAddr>,
    /// The origins and host names browsers may reach the API from (`--cors-origin`,
    /// `--allowed-host`).
    pub api_access: server::Access,
    pub workers: usize,
    /// The bounds on a Job's output, artifacts and memory, and the server-wide
    /// notification endpoints.
    pub controllers: controller::Options,
    /// Where the admission webhook listens over HTTPS, and its certificate
    /// (`--webhook-addr`, `--webhook-cert`, `--webhook-key`); None: it does not run.
    pub webhook: Option<server::tls::TlsOptions>,
    /// The optional summariser of failed runs (`--summarizer-url`).
    pub summarizer: Option<crate::summary::SummarizerConfig>,
}

#[derive(thiserror::Error, Debug)]
pub enum OperatorError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("cannot open the run records in {}: {source}", dir.display())]
    Records {
        dir: PathBuf,
        source: Box<StoreError>,
    },
    #[error("cannot listen on {addr} for {what}: {source}")]
    Listen {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start MCP: {0}")]
    Mcp(String),
    #[error("cannot start the API: {0}")]
    Api(String),
    #[error("cannot start the admission webhook: {0}")]
    Webhook(server::tls::TlsError),
    #[error("cannot start the summariser: {0}")]
    Summarizer(String),
}

/// Runs the operator until `shutdown`: the Kubernetes store, pods for Job attempts, run
/// records in the data dir, the metrics and health endpoints, and the controllers while
/// this replica leads.
pub async fn run(
    options: OperatorOptions,
    shutdown: CancellationToken,
) -> Result<(), OperatorError> {
    let store =
        KubeStore::connect(options.kubeconfig.as_deref(), options.context.as_deref()).await?;
    store.check_access().await?;
    let records = LocalStore::open(&options.data_dir)
        .await
        .map_err(|source| OperatorError::Records {
            dir: options.data_dir.clone(),
            source: Box::new(source),
        })?;
    let client = store.client().clone();
    let backend = Backend::Cluster {
        store: store.clone(),
        records,
        pods: PodRuntime::new(client.clone()),
    };
    let ctx = Context::with_options(&backend, options.controllers.clone());
    if let Some(config) = options.summarizer.clone() {
        crate::summary::install(&ctx, config).map_err(OperatorError::Summarizer)?;
    }
    ctx.metrics
        .register_kube_calls(crate::kubeapi::timing::call_latency());

    let (leading, election) = if options.leader_election {
        let config = LeaseConfig::new(
            own_namespace(options.namespace.as_deref(), &client),
            own_identity(),
        );
        info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "leader election on");
        let (leading, task) = LeaderElector::new(client, config).run(shutdown.clone());
        (leading, Some(task))
    } else {
        let (lead, leading) = watch::channel(true);
        // Keep the sender: a dropped one would end `while_leading` at once.
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            drop(lead);
        });
        (leading, None)
    };
    let mut gauge = leading.clone();
    let metrics = ctx.metrics.clone();
    tokio::spawn(async move {
        loop {
            metrics.set_leader(*gauge.borrow_and_update());
            if gauge.changed().await.is_err() {
                break;
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(options.metrics_addr)
        .await
        .map_err(|source| OperatorError::Listen {
            addr: options.metrics_addr,
            what: "metrics",
            source,
        })?;
    let readiness = readiness(store, ctx.clone(), leading.clone());
    let app = http::router(ctx.metrics.clone(), readiness);
    let server = tokio::spawn(http::serve(listener, app, shutdown.clone()));
    let api = match options.api_addr {
        Some(addr) => {
            let state = AppState {
                objects: ctx.store.clone(),
                policies: ctx.policies.clone(),
                records: ctx.records.clone(),
                sandboxes: backend.sandbox_io(),
                activity: ctx.activity.clone(),
                shutdown: shutdown.clone(),
                leading: Some(leading.clone()),
                metrics: ctx.metrics.clone(),
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| OperatorError::Listen {
                    addr,
                    what: "the API",
                    source,
                })?;
            Some(serve_api(listener, state, options.api_access.clone()).await?)
        }
        None => None,
    };

    // Every replica answers the API server's admission reviews, leading or not: the
    // policies are read from the cluster and followed on its watch.
    let webhook = match &options.webhook {
        Some(tls) => {
            let policies = crate::policy::Policies::watching(ctx.store.clone());
            Some(
                webhook::serve(tls, policies, shutdown.clone())
                    .await
                    .map_err(OperatorError::Webhook)?,
            )
        }
        None => None,
    };
    info!(
        "cluster mode reconciles Jobs and Sandboxes as pods; SandboxTemplates' warm pools are not run"
    );
    let workers = options.workers;
    while_leading(leading, shutdown.clone(), move |term| {
        controller::run(ctx.clone(), workers, term)
    })
    .await;
    if let Some(election) = election {
        let _ = election.await;
    }
    let _ = server.await;
    if let Some(api) = api {
        let _ = api.await;
    }
    if let Some(webhook) = webhook {
        let _ = webhook.await;
    }
    Ok(())
}

/// Serves the REST facade with MCP at `/mcp` on `listener` ([`server::serve_api`], as
/// `orcaops serve` does), until `state.shutdown`. Objects, watches and events come from
/// the cluster; run records, logs and artifacts from this replica's data dir (a standby
/// answers 503).
async fn serve_api(
    listener: tokio::net::TcpListener,
    state: AppState,
    access: server::Access,
) -> Result<tokio::task::JoinHandle<()>, OperatorError> {
    if let Ok(bound) = listener.local_addr() {
        warn!(%bound, "the API acts with the operator's service account for every holder of an API key; the server admin key is admin.key in the data dir. Keep it on a ClusterIP Service behind TLS, or reach it with kubectl port-forward");
    }
    server::serve_api_with(listener, state, access)
        .await
        .map_err(|e| match e {
            ServeError::LocalAddr(source) => OperatorError::Listen {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                what: "the API",
                source,
            },
            ServeError::Mcp(e) => OperatorError::Mcp(e.to_string()),
            ServeError::Auth(e) => OperatorError::Api(e.to_string()),
            ServeError::Tls(e) => OperatorError::Api(e.to_string()),
            ServeError::Audit(e) => OperatorError::Api(e.to_string()),
        })
}

/// Ready when the cluster answers and serves the CRDs, and, on the leader, once the
/// controllers have listed what exists. A standby is ready: it can take over any time.
fn readiness(
    store: KubeStore,
    ctx: Arc<Context>,
    leading: watch::Receiver<bool>,
) -> http::ReadinessCheck {
    Arc::new(move || {
        let (store, ctx, leading) = (store.clone(), ctx.clone(), *leading.borrow());
        Box::pin(async move {
            store.check_access().await.map_err(|e| e.to_string())?;
            if leading && !ctx.synced.load(Ordering::Relaxed) {
                return Err("the controllers have not listed the objects yet".to_string());
            }
            Ok(())
        })
    })
}

/// Runs `act` for as long as this replica leads: started (with a fresh token) each time
/// `leading` turns true, its token cancelled and the task awaited when it turns false,
/// and for good at `shutdown`. A replica that never leads never acts.
pub async fn while_leading<F, Fut>(
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
    mut act: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            led = leading.wait_for(|l| *l) => if led.is_err() { return },
        }
        info!("leading: starting the controllers");
        let term = shutdown.child_token();
        let task = tokio::spawn(act(term.clone()));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = leading.wait_for(|l| !*l) => info!("no longer leading: stopping the controllers"),
        }
        term.cancel();
        let _ = task.await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Counts the terms started and the terms ended.
    fn counting() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)))
    }

    #[tokio::test]
    async fn a_standby_never_acts() {
        let (_lead, leading) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let (started, _) = counting();
        let count = started.clone();
        let running = tokio::spawn(while_leading(leading, shutdown.clone(), move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            async {}
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_controllers_run_only_while_leading() {
        let (lead, leading) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let (started, ended) = counting();
        let (s, e) = (started.clone(), ended.clone());
        let running = tokio::spawn(while_leading(leading, shutdown.clone(), move |term| {
            s.fetch_add(1, Ordering::SeqCst);
            let e = e.clone();
            async move {
                term.cancelled().await;
                e.fetch_add(1, Ordering::SeqCst);
            }
        }));
        let settle = || tokio::time::sleep(Duration::from_millis(30));
        lead.send_replace(true);
        settle().await;
        assert_eq!(
            (started.load(Ordering::SeqCst), ended.load(Ordering::SeqCst)),
            (1, 0)
        );
        lead.send_replace(false);
        settle().await;
        assert_eq!(
            (started.load(Ordering::SeqCst), ended.load(Ordering::SeqCst)),
            (1, 1)
        );
        lead.send_replace(true);
        settle().await;
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(
            (started.load(Ordering::SeqCst), ended.load(Ordering::SeqCst)),
            (2, 2)
        );
    }

    /// `--api`: the REST facade answers from the cluster and MCP is mounted at /mcp, in
    /// the operator's process, until shutdown.
    #[tokio::test]
    async fn the_api_and_mcp_are_served_beside_the_operator() {
        use crate::resources::Kind;
        use crate::store::kube::mock::{Reply, collection_path, list, mock_store};

        let (store, api) = mock_store();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let cluster = api.route(seen.clone(), |request| {
            Some(
                match request.path == collection_path(Kind::Job, Some("default")) {
                    true => Reply::Json(200, list(Kind::Job, vec![], "42")),
                    false => Reply::Json(404, serde_json::json!({})),
                },
            )
        });
        let data = tempfile::tempdir().unwrap();
        let records = LocalStore::open(data.path()).await.unwrap();
        let shutdown = CancellationToken::new();
        let (_lead, leading) = watch::channel(true);
        let pods = PodRuntime::new(store.client().clone());
        let objects: Arc<dyn crate::store::ObjectStore> = Arc::new(store);
        let state = AppState {
            policies: crate::policy::Policies::disabled(objects.clone()),
            objects,
            records,
            sandboxes: Arc::new(pods),
            activity: crate::controller::activity::SandboxActivity::new(),
            shutdown: shutdown.clone(),
            leading: Some(leading),
            metrics: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = serve_api(listener, state, server::Access::default())
            .await
            .unwrap();
        let http = server::auth::admin_client(data.path());

        let jobs = http
            .get(format!(
                "{url}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(jobs.status(), 200);
        let jobs: serde_json::Value = jobs.json().await.unwrap();
        assert_eq!(jobs["metadata"]["resourceVersion"], "42");

        let initialize = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"}}});
        let mcp = http
            .post(format!("{url}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
            .await
            .unwrap();
        assert_eq!(mcp.status(), 200);
        let text = mcp.text().await.unwrap();
        assert!(text.contains("serverInfo"), "{text}");

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("the API stops at shutdown")
            .unwrap();
        cluster.abort();
    }

    /// The scenario: another replica holds the Lease, so this one reads the Lease
    /// and does nothing else: no list of Jobs, no pod.
    #[tokio::test]
    async fn with_the_lease_held_by_another_replica_nothing_is_reconciled() {
        use crate::store::kube::mock::{Reply, mock_client, status};
        use serde_json::json;

        let (client, api) = mock_client();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let server = api.route(seen.clone(), |request| {
            let renewed = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            Some(match (request.method.as_str(), request.path.contains("/leases/")) {
                ("GET", true) => Reply::Json(200, json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "orcaops-operator", "namespace": "ops", "resourceVersion": "3"},
                    "spec": {"holderIdentity": "the-other-replica", "leaseDurationSeconds": 15,
                        "renewTime": renewed},
                })),
                _ => Reply::Json(500, status(500, "Unexpected", "a standby sent this")),
            })
        });
        let dir = tempfile::tempdir().unwrap();
        let records = crate::store::LocalStore::open(dir.path()).await.unwrap();
        let store = crate::store::KubeStore::new(client.clone(), "kube-test");
        let ctx = Context::new(&Backend::Cluster {
            store,
            records,
            pods: PodRuntime::new(client.clone()),
        });
        let config = LeaseConfig {
            retry_period: Duration::from_millis(20),
            ..LeaseConfig::new("ops", "this-replica")
        };
        let shutdown = CancellationToken::new();
        let (leading, election) = LeaderElector::new(client, config).run(shutdown.clone());
        let acting = tokio::spawn(while_leading(leading, shutdown.clone(), move |term| {
            controller::run(ctx.clone(), 2, term)
        }));
        tokio::time::sleep(Duration::from_millis(200)).await;
        shutdown.cancel();
        acting.await.unwrap();
        election.await.unwrap();
        server.abort();
        let seen = seen.lock().unwrap();
        assert!(seen.len() >= 3, "the standby keeps looking: {}", seen.len());
        let other: Vec<String> = seen
            .iter()
            .filter(|r| !(r.method == "GET" && r.path.ends_with("/leases/orcaops-operator")))
            .map(ToString::to_string)
            .collect();
        assert!(other.is_empty(), "a standby acted: {other:?}");
    }
}
