//! `orcaops operator`: cluster mode, the controllers against the Kubernetes API.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, exit};
use crate::controller::DEFAULT_WORKERS;
use crate::operator::{OperatorError, OperatorOptions};
use crate::store::kube::AccessError;

pub const AFTER_HELP: &str = "\
The operator reconciles the orcaops resources of the cluster (the CRDs must be
installed: orcaops crds | kubectl apply -f -). A Job attempt runs as one pod in the
Job's namespace, owned by the Job and labelled as in local mode
(kubectl get pods -l orcaops.dev/name=NAME); a Job with `network: none` gets a
NetworkPolicy that allows no traffic. Run records, step logs and artifacts go to
--data-dir; the Job's status keeps the recent history. A Sandbox runs as one
pod (a container per service) with a Service for its ports and a claim per named
volume; SandboxTemplates' warm pools are not run on a cluster (their sandboxes
start cold, and the template says so).

Where it runs: in a pod it uses the pod's service account; elsewhere the current
kubeconfig context (or --kubeconfig and --context).

Replicas: with --leader-election (the default) replicas share the Lease
orcaops-operator in the operator's namespace (--namespace, else $POD_NAMESPACE, else
the service account's namespace, else the kubeconfig context's); one leads and acts,
the others stand by and take over within about 15 s. The holder is $POD_NAME (else the
host name). Never run more than one replica with --no-leader-election.

Notifications: failed runs, anomalies, waiting approvals and expiring sandboxes are
POSTed as signed JSON to every --notify-url (key: --notify-secret-file, e.g. a mounted
Secret) and to each Workspace's spec.notifications (signed with the Secret its
secretRef names in the workspace's namespace); the leader sends them. See
docs/observability.md.

Endpoints on --metrics-addr: /metrics (Prometheus: reconciles, queue depth, leader,
Jobs and Sandboxes by phase, run durations; the list is in docs/observability.md;
also on --api-addr with --api), /healthz (the process answers), /readyz (the cluster
answers, the CRDs are served, and the leader's controllers have listed the objects).

The REST facade and MCP (--api): the same API as `orcaops serve` (MCP at /mcp) on
--api-addr, acting on the cluster with the operator's service account. Objects, status,
watches and events come from the cluster on every replica; run records, step logs and
artifacts from this replica's --data-dir, so a standby answers 503 for those (run one
replica with the API, or reach the leader). Sandbox exec, files and /containers answer
501 on a cluster: use kubectl exec and kubectl cp. There is no authentication yet: keep
the port on a ClusterIP Service and reach it with kubectl port-forward.

Examples:
  orcaops operator --no-leader-election --data-dir ./data --metrics-addr 127.0.0.1:9090
                                  try it from a laptop against the current context
  orcaops operator --data-dir /var/lib/orcaops
                                  as the Deployment in manifests/ runs it
  orcaops operator --no-leader-election --api --api-addr 127.0.0.1:8080
                                  with the REST facade and MCP (orcaops --server
                                  http://127.0.0.1:8080 get jobs)

Exit codes: 0 stopped by SIGTERM or Ctrl-C, 1 a usage or configuration error (CRDs
missing, access refused, an address in use), 5 the cluster is unreachable.";

#[derive(Args, Debug)]
pub struct OperatorArgs {
    /// The kubeconfig file [default: $KUBECONFIG, ~/.kube/config, or the pod's service account].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: the current context].
    #[arg(long)]
    pub context: Option<String>,
    /// The operator's own namespace, where the Lease lives [default: $POD_NAMESPACE, the service account's, or the context's].
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Where run records, step logs and artifacts live [default: $ORCAOPS_DATA_DIR or ~/.local/share/orcaops].
    #[arg(long, env = "ORCAOPS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Act only while holding the Lease orcaops-operator (the default).
    #[arg(long, overrides_with = "no_leader_election")]
    pub leader_election: bool,
    /// Act at once, without a Lease: for exactly one replica.
    #[arg(long, overrides_with = "leader_election")]
    pub no_leader_election: bool,
    /// The address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Also serve the REST facade and MCP (at /mcp) on --api-addr, acting on the cluster. No authentication yet: keep it on a ClusterIP Service.
    #[arg(long)]
    pub api: bool,
    /// The address of the REST facade and MCP, with --api.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub api_addr: SocketAddr,
    #[command(flatten)]
    pub access: super::serve::AccessArgs,
    /// Serve the validating admission webhook (POST /validate) over HTTPS on this address, so the API server checks every write against the Policies (needs --webhook-cert and --webhook-key; see docs/policies.md).
    #[arg(long, requires_all = ["webhook_cert", "webhook_key"])]
    pub webhook_addr: Option<SocketAddr>,
    /// The webhook's certificate (PEM, with its chain), for the Service's DNS name; the caBundle of the ValidatingWebhookConfiguration must sign it.
    #[arg(long, requires = "webhook_addr")]
    pub webhook_cert: Option<PathBuf>,
    /// The webhook certificate's private key (PEM).
    #[arg(long, requires = "webhook_addr")]
    pub webhook_key: Option<PathBuf>,
    /// How many objects are reconciled at once.
    #[arg(long, default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    // The bounds on a Job's output, artifacts and memory.
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    #[command(flatten)]
    pub summarizer: super::serve::SummarizerArgs,
    // The server-wide notification endpoints.
    #[command(flatten)]
    pub notify: super::notify::NotifyArgs,
}

/// Checks the arguments before anything is built: cheap errors first.
pub fn options(args: OperatorArgs) -> Result<OperatorOptions, ClientError> {
    if args.workers == 0 {
        return Err(ClientError::usage("--workers must be at least 1"));
    }
    if let Some(path) = &args.kubeconfig
        && !path.is_file()
    {
        return Err(ClientError::usage(format!(
            "--kubeconfig {}: no such file",
            path.display()
        )));
    }
    Ok(OperatorOptions {
        kubeconfig: args.kubeconfig,
        context: args.context,
        namespace: args.namespace,
        data_dir: args.data_dir.unwrap_or_else(super::default_data_dir),
        leader_election: !args.no_leader_election,
        metrics_addr: args.metrics_addr,
        api_addr: args.api.then_some(args.api_addr),
        api_access: args.access.access()?,
        workers: args.workers,
        controllers: crate::controller::Options {
            limits: args.limits.limits(),
            notifications: args.notify.settings()?,
        },
        webhook: match (args.webhook_addr, args.webhook_cert, args.webhook_key) {
            (Some(listen), Some(cert), Some(key)) => {
                Some(crate::server::tls::TlsOptions { listen, cert, key })
            }
            _ => None,
        },
        summarizer: args.summarizer.config()?,
    })
}

pub async fn operator(args: OperatorArgs) -> Result<u8, ClientError> {
    let options = options(args)?;
    // Without a Lease, nothing else keeps a second operator from acting beside this
    // one, writing the same run records; refuse it before connecting. (With the Lease,
    // replicas may share a ReadWriteMany data dir: only the leader writes.)
    let _lock = if options.leader_election {
        None
    } else {
        Some(super::lock_data_dir(
            &options.data_dir,
            "without leader election, each operator needs a data dir of its own; \
             choose another --data-dir, or use --leader-election so that one of them acts",
        )?)
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        super::serve::wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    match crate::operator::run(options, shutdown).await {
        Ok(()) => Ok(exit::OK),
        Err(e) => Err(error(e)),
    }
}

fn error(e: OperatorError) -> ClientError {
    match &e {
        OperatorError::Access(AccessError::Unreachable(_)) => ClientError::unreachable(format!(
            "{e}. Check that the cluster is running (kubectl cluster-info) and that the \
             kubeconfig (or the pod's service account) points at it"
        )),
        OperatorError::Access(AccessError::CrdsMissing) => ClientError::usage(format!(
            "{e}; install them with: orcaops crds | kubectl apply -f -"
        )),
        OperatorError::Access(AccessError::Refused(_)) => ClientError::usage(format!(
            "{e}; the operator's service account needs the ClusterRole of manifests/03-clusterrole.yaml"
        )),
        OperatorError::Listen {
            what: "the API", ..
        } => ClientError::usage(format!("{e}; choose another --api-addr")),
        _ => ClientError::usage(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> OperatorArgs {
        let cli = Cli::try_parse_from([&["orcaops", "operator"], args].concat()).unwrap();
        match cli.command {
            Command::Operator(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_flags_of_the_manifests_and_the_chart_parse() {
        let args = parse(&[
            "--data-dir",
            "/var/lib/orcaops",
            "--metrics-addr",
            "0.0.0.0:9090",
            "--leader-election",
        ]);
        let options = options(args).unwrap();
        assert!(options.leader_election);
        assert_eq!(options.data_dir, PathBuf::from("/var/lib/orcaops"));
        assert_eq!(options.metrics_addr.port(), 9090);
        let options = options_of(&[
            "--no-leader-election",
            "--workers",
            "4",
            "--context",
            "kind-dev",
            "-n",
            "ops",
        ]);
        assert!(!options.leader_election);
        assert_eq!(options.workers, 4);
        assert_eq!(options.context.as_deref(), Some("kind-dev"));
        assert_eq!(options.namespace.as_deref(), Some("ops"));
        assert!(options_of(&[]).leader_election, "on by default");
    }

    fn options_of(args: &[&str]) -> OperatorOptions {
        options(parse(args)).unwrap()
    }

    #[test]
    fn api_is_served_on_api_addr_only_when_asked() {
        let options = options_of(&["--api", "--api-addr", "127.0.0.1:8181"]);
        assert_eq!(options.api_addr, Some("127.0.0.1:8181".parse().unwrap()));
        assert_eq!(
            options_of(&["--api"]).api_addr,
            Some("0.0.0.0:8080".parse().unwrap()),
            "the default address"
        );
        assert_eq!(options_of(&["--api-addr", "127.0.0.1:8181"]).api_addr, None);
        assert_eq!(options_of(&[]).api_addr, None);
    }

    #[test]
    fn the_webhook_needs_its_address_certificate_and_key() {
        let options = options_of(&[
            "--webhook-addr",
            "0.0.0.0:9443",
            "--webhook-cert",
            "/tls/tls.crt",
            "--webhook-key",
            "/tls/tls.key",
        ]);
        let tls = options.webhook.unwrap();
        assert_eq!(tls.listen.port(), 9443);
        assert_eq!(tls.cert, PathBuf::from("/tls/tls.crt"));
        assert!(options_of(&[]).webhook.is_none());
        let half = Cli::try_parse_from(["orcaops", "operator", "--webhook-addr", "0.0.0.0:9443"]);
        let err = half.unwrap_err().to_string();
        assert!(err.contains("--webhook-cert"), "{err}");
    }

    #[test]
    fn a_missing_kubeconfig_is_a_usage_error() {
        let missing = options(parse(&["--kubeconfig", "/nonexistent/kubeconfig"])).unwrap_err();
        assert!(missing.to_string().contains("no such file"));
        assert!(matches!(missing, ClientError::Usage(_)), "{missing:?}");
    }
}
