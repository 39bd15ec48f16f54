//! `orcaops serve`: local mode in one process (store, folder source, controllers, API).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::client::{ApiClient, ClientError, exit};
use crate::controller::{self, Context};
use crate::runtime::DockerRuntime;
use crate::runtime::docker::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_CALLS, DEFAULT_MAX_CONTAINERS, DockerLimits,
};
use crate::server::{self, AppState};
use crate::source::FolderSource;
use crate::store::LocalStore;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The folder of YAML files to follow.
    #[arg(long)]
    pub dir: PathBuf,
    /// Where the database, logs and artifacts live [default: $ORCAOPS_DATA_DIR or ~/.local/share/orcaops].
    #[arg(long, env = "ORCAOPS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// How many objects are reconciled at once.
    #[arg(long, default_value_t = controller::DEFAULT_WORKERS)]
    pub workers: usize,
    #[command(flatten)]
    pub access: AccessArgs,
    #[command(flatten)]
    pub docker: DockerArgs,
    // The bounds on a Job's output, artifacts and memory.
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    #[command(flatten)]
    pub summarizer: SummarizerArgs,
    // The server-wide notification endpoints.
    #[command(flatten)]
    pub notify: super::notify::NotifyArgs,
}

/// The optional summariser of failed runs. Shared by `serve` and `operator`.
#[derive(Args, Debug, Default, Clone)]
pub struct SummarizerArgs {
    /// An OpenAI-compatible chat endpoint (its base URL, such as
    /// http://127.0.0.1:8080/v1): a failed run's extracted errors and output tails are
    /// sent to it, and its few sentences on why the run failed go into the run record
    /// (`explanation`, shown by `orcaops history job NAME`). Off when not given. The
    /// run's text leaves this machine for that endpoint.
    #[arg(long, value_name = "URL", env = "ORCAOPS_SUMMARIZER_URL")]
    pub summarizer_url: Option<String>,
    /// The model the endpoint serves.
    #[arg(
        long,
        value_name = "NAME",
        env = "ORCAOPS_SUMMARIZER_MODEL",
        default_value = "gpt-4o-mini"
    )]
    pub summarizer_model: String,
    /// A file holding the endpoint's API key, sent as a bearer token.
    #[arg(long, value_name = "FILE", requires = "summarizer_url")]
    pub summarizer_key_file: Option<PathBuf>,
}

impl SummarizerArgs {
    /// The summariser asked for, checked; None when it is off.
    pub fn config(&self) -> Result<Option<crate::summary::SummarizerConfig>, ClientError> {
        let Some(url) = &self.summarizer_url else {
            return Ok(None);
        };
        let api_key = match &self.summarizer_key_file {
            None => None,
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| {
                        ClientError::usage(format!("--summarizer-key-file {}: {e}", file.display()))
                    })?
                    .trim()
                    .to_string(),
            ),
        };
        let config = crate::summary::SummarizerConfig {
            url: url.clone(),
            model: self.summarizer_model.clone(),
            api_key,
        };
        config.validate().map_err(ClientError::usage)?;
        Ok(Some(config))
    }
}

/// Which web pages and host names may reach the API from a browser. Shared by `serve`
/// and `operator --api`.
#[derive(Args, Debug, Default, Clone)]
pub struct AccessArgs {
    /// Let web pages at ORIGIN (scheme://host[:port], e.g. http://localhost:3000) use the API from a browser, with CORS answers; repeat for more. Without it, a request whose Origin header is not the server's own is refused with 403, so that no page you visit can act on the API.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Answer to NAME in the Host header too (e.g. orcaops.internal, or *.example.com); repeat for more. By default the API answers to localhost, IP addresses and, when listening beyond loopback, the machine's host name; other names are refused with 403 (that defeats DNS rebinding from a web page).
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Requests a second one API key may make (bursts of ten times as many); past it the API answers 429 with Retry-After. 0 lifts the limit.
    #[arg(long, value_name = "N", env = "ORCAOPS_RATE_LIMIT", default_value_t = server::auth::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// Also serve the API over HTTPS on ADDR (e.g. 127.0.0.1:7443), with --tls-cert and --tls-key. kubectl sends --token only over HTTPS, so kubectl against local mode needs this.
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<std::net::SocketAddr>,
    /// The PEM certificate (with its chain) of --tls-listen.
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_listen")]
    pub tls_key: Option<PathBuf>,
}

impl AccessArgs {
    /// The checked values; a bad one is a usage error naming the flag.
    pub fn access(&self) -> Result<server::Access, ClientError> {
        server::Access::new(&self.cors_origins, &self.allowed_hosts)
            .map(|access| {
                let tls = match (&self.tls_listen, &self.tls_cert, &self.tls_key) {
                    (Some(listen), Some(cert), Some(key)) => Some(server::tls::TlsOptions {
                        listen: *listen,
                        cert: cert.clone(),
                        key: key.clone(),
                    }),
                    _ => None,
                };
                access.with_rate_limit(self.rate_limit).with_tls(tls)
            })
            .map_err(|e| ClientError::usage(e.to_string()))
    }
}

/// How `serve` spares the Docker daemon (docs/local-mode.md, "Protecting the Docker daemon").
#[derive(Args, Debug, Clone, Copy)]
pub struct DockerArgs {
    /// Containers (job attempts, sandbox services, warm-pool slots) running at once; above
    /// it, jobs and sandboxes wait Pending (condition ContainerLimitReached) in order.
    #[arg(long, default_value_t = DEFAULT_MAX_CONTAINERS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_containers: u32,
    /// Docker calls that make the daemon work (create, start, stop, remove, exec, copy)
    /// sent at once; the rest wait in line, first come first served.
    #[arg(long, default_value_t = DEFAULT_MAX_CALLS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_docker_calls: u32,
    /// Seconds one Docker call may take before the daemon counts as not answering.
    #[arg(long, default_value_t = DEFAULT_CALL_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub docker_timeout: u64,
}

impl DockerArgs {
    pub fn limits(&self) -> DockerLimits {
        DockerLimits {
            max_calls: self.max_docker_calls as usize,
            call_timeout: std::time::Duration::from_secs(self.docker_timeout),
            max_containers: self.max_containers as usize,
        }
    }
}

/// How local mode runs beyond its folder and address: who may reach the API from a
/// browser (`serve`'s `--cors-origin` and `--allowed-host`), how the Docker daemon is
/// spared, what the controllers are started with, and the summariser.
#[derive(Default)]
pub struct LocalOptions {
    pub access: server::Access,
    pub docker_limits: DockerLimits,
    /// The bounds on a Job's output, artifacts and memory; the server-wide notification
    /// endpoints.
    pub controllers: controller::Options,
    pub summarizer: Option<crate::summary::SummarizerConfig>,
}

/// Everything local mode runs, started; used by `serve` and by `run` without a server.
pub struct LocalMode {
    /// Held for as long as local mode runs: one process per data dir.
    _lock: std::fs::File,
    pub shutdown: CancellationToken,
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LocalMode {
    pub async fn start(
        data_dir: PathBuf,
        dir: Option<PathBuf>,
        listen: SocketAddr,
        workers: usize,
    ) -> Result<LocalMode, ClientError> {
        Self::start_with(data_dir, dir, listen, workers, LocalOptions::default()).await
    }

    /// [`LocalMode::start`] as `options` say.
    pub async fn start_with(
        data_dir: PathBuf,
        dir: Option<PathBuf>,
        listen: SocketAddr,
        workers: usize,
        options: LocalOptions,
    ) -> Result<LocalMode, ClientError> {
        let LocalOptions {
            access,
            docker_limits,
            controllers,
            summarizer,
        } = options;
        docker_limits.validate().map_err(ClientError::usage)?;
        let lock = super::lock_data_dir(
            &data_dir,
            "talk to it with --server, or choose another --data-dir",
        )?;
        let store = LocalStore::open(&data_dir).await.map_err(|e| {
            ClientError::usage(format!(
                "cannot open the store in {}: {e}",
                data_dir.display()
            ))
        })?;
        let runtime = DockerRuntime::connect_with(docker_limits)
            .await
            .map_err(|e| ClientError::unreachable(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            ClientError::usage(format!("cannot listen on {listen}: {e} (is another orcaops serve running? choose another --listen)"))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| ClientError::usage(e.to_string()))?;
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let backend = controller::Backend::Local {
            store: store.clone(),
            docker: runtime,
        };
        // One log for the API, the folder and the controllers (opening it again gives
        // the same writer, so the chain never forks).
        let audit = crate::audit::AuditLog::open(&data_dir)
            .map_err(|e| ClientError::usage(format!("cannot open the audit log: {e}")))?;
        // The controllers' own writes are recorded as actor `controller`; the API's
        // are recorded by its audit layer, so it writes to the store undecorated.
        let ctx = Context::audited(&backend, controllers, audit.clone());
        if let Some(config) = summarizer {
            crate::summary::install(&ctx, config).map_err(ClientError::usage)?;
        }
        let policies = ctx.policies.clone();
        let state = AppState {
            objects: backend.objects(),
            policies: policies.clone(),
            records: ctx.records.clone(),
            sandboxes: backend.sandbox_io(),
            activity: ctx.activity.clone(),
            shutdown: shutdown.clone(),
            leading: None,
            metrics: ctx.metrics.clone(),
        };
        tasks.push(tokio::spawn(controller::run(
            ctx,
            workers,
            shutdown.clone(),
        )));
        if let Some(dir) = dir {
            let source = FolderSource::new(dir, std::sync::Arc::new(store.clone()))
                .with_policies(policies, crate::policy::Door::Folder)
                .with_audit(audit);
            let token = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = source.run(token).await {
                    warn!(error = %e, "the folder source stopped");
                }
            }));
        }
        tasks.push(
            server::serve_api_with(listener, state, access)
                .await
                .map_err(|e| ClientError::usage(e.to_string()))?,
        );
        Ok(LocalMode {
            _lock: lock,
            shutdown,
            addr,
            tasks,
        })
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
        }
    }
}

pub async fn serve(args: ServeArgs) -> Result<u8, ClientError> {
    if !args.dir.is_dir() {
        return Err(ClientError::usage(format!(
            "--dir {}: not a directory; create it or point at a folder of YAML files",
            args.dir.display()
        )));
    }
    let access = args.access.access()?;
    let summarizer = args.summarizer.config()?;
    let data_dir = args.data_dir.unwrap_or_else(super::default_data_dir);
    if !args.listen.ip().is_loopback() {
        warn!(listen = %args.listen, "the API is reachable beyond this machine over plain HTTP: API keys travel in clear; put a TLS-terminating proxy in front of it");
    }
    let local = LocalMode::start_with(
        data_dir.clone(),
        Some(args.dir.clone()),
        args.listen,
        args.workers,
        LocalOptions {
            access,
            docker_limits: args.docker.limits(),
            controllers: controller::Options {
                limits: args.limits.limits(),
                notifications: args.notify.settings()?,
            },
            summarizer,
        },
    )
    .await?;
    info!(dir = %args.dir.display(), data_dir = %data_dir.display(), api = %format!("http://{}", local.addr), "orcaops is serving");
    eprintln!(
        "orcaops serving {} (data in {}); API on http://{addr}, MCP on http://{addr}/mcp. Ctrl-C stops.",
        args.dir.display(),
        data_dir.display(),
        addr = local.addr
    );
    // The dashboard's login link, asked of the server just started, as `orcaops ui` does.
    let own = ApiClient::new(&format!("http://{}", loopback(local.addr)))?.with_token(
        std::fs::read_to_string(data_dir.join(crate::server::auth::ADMIN_KEY_FILE)).ok(),
    );
    match crate::client::ui::login_link(&own).await {
        Ok(url) => eprintln!("Dashboard: {url} (one-time link; later: orcaops ui)"),
        Err(e) => warn!(error = %e, "no dashboard login link"),
    }
    wait_for_signal().await;
    info!("shutting down");
    local.stop().await;
    Ok(exit::OK)
}

/// The address to reach a listener at from this machine (its own, unless unspecified).
fn loopback(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

pub(super) async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
