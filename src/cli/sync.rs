//! `orcaops sync`: the watched folder of local mode, applied to a Kubernetes cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::client::{ClientError, exit};
use crate::source::{FolderSource, SourceError, SyncReport};
use crate::store::StoreError;
use crate::store::kube::{AccessError, ConnectError, KubeStore};

pub const AFTER_HELP: &str = "\
Every .yaml/.yml file under DIR (recursively; dot-files are ignored) is applied to the
cluster of the current kubeconfig context with server-side apply (field manager
orcaops-sync), exactly as `orcaops serve` applies it to its local store. Each object is
marked `orcaops.dev/source: file:<path>`; when a file is deleted, or no longer declares
an object, that object is deleted (pruned). Only objects carrying such a mark are ever
pruned, so what kubectl or the API created is never touched. A file with an error is
reported with its line and field, and changes nothing: its last good version stays.

The CRDs must be installed first: orcaops crds | kubectl apply -f -

Examples:
  orcaops sync --dir examples --once      apply once, print a summary, exit (CI)
  orcaops sync --dir deploy               keep the cluster in step with the folder
  orcaops sync --dir deploy -n team-a --context kind-dev
                                          into one namespace of another context

Exit codes: 0 synced, 1 a file was invalid or an object was refused (or a usage or
configuration error), 5 the cluster is unreachable.";

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The folder of YAML files to apply.
    #[arg(long)]
    pub dir: PathBuf,
    /// The kubeconfig context to use [default: the current context].
    #[arg(long)]
    pub context: Option<String>,
    /// Put every namespaced object in this namespace, and prune only there.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Sync once, print a summary and exit, instead of following the folder.
    #[arg(long)]
    pub once: bool,
    /// Delete what a deleted file declared (the default).
    #[arg(long, overrides_with = "no_prune")]
    pub prune: bool,
    /// Never delete: only create and update.
    #[arg(long, overrides_with = "prune")]
    pub no_prune: bool,
}

pub async fn sync(args: SyncArgs) -> Result<u8, ClientError> {
    if !args.dir.is_dir() {
        return Err(ClientError::usage(format!(
            "--dir {}: not a directory; point it at a folder of YAML files",
            args.dir.display()
        )));
    }
    let store = KubeStore::from_kubeconfig(args.context.as_deref())
        .await
        .map_err(connect_error)?;
    let cluster = Cluster {
        context: store.context().unwrap_or("NAME").to_string(),
        server: store.server().map(str::to_string),
    };
    store
        .check_access()
        .await
        .map_err(|e| access_error(&cluster, e))?;
    let store: Arc<dyn crate::store::ObjectStore> = Arc::new(store);
    // The cluster's admission webhook is the authority; reviewing here too names the file
    // in the refusal, and reads the cluster's Policies at most every 10 s.
    let policies = crate::policy::Policies::polling(store.clone(), Duration::from_secs(10));
    let source = FolderSource::new(args.dir.clone(), store)
        .with_policies(policies, crate::policy::Door::Sync)
        .with_namespace(args.namespace)
        .with_prune(!args.no_prune);
    if args.once {
        let report = source
            .sync_all()
            .await
            .map_err(|e| source_error(&cluster, e))?;
        for line in problems(&report) {
            eprintln!("{line}");
        }
        let summary = Summary::of(&report);
        println!(
            "synced {} into context {}: {summary}",
            args.dir.display(),
            cluster.context
        );
        return Ok(summary.exit_code());
    }
    eprintln!(
        "orcaops syncing {} into {cluster}. Ctrl-C stops.",
        args.dir.display()
    );
    let shutdown = CancellationToken::new();
    let mut following = tokio::spawn(source.run(shutdown.clone()));
    tokio::select! {
        _ = super::serve::wait_for_signal() => {
            shutdown.cancel();
            let _ = following.await;
            Ok(exit::OK)
        }
        stopped = &mut following => match stopped {
            Ok(Ok(())) => Ok(exit::OK),
            Ok(Err(e)) => Err(source_error(&cluster, e)),
            Err(e) => Err(ClientError::usage(format!("the folder source stopped: {e}"))),
        },
    }
}

/// The counts of one pass, as the summary line prints them.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
    pub pruned: usize,
    /// Files with a document that did not parse or validate.
    pub failed_files: usize,
    /// Objects the cluster refused, or not applied because another owner has them.
    pub refused: usize,
}

impl Summary {
    pub fn of(report: &SyncReport) -> Summary {
        let mut files: Vec<&str> = report.invalid.iter().map(|e| e.file.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        Summary {
            created: report.created.len(),
            configured: report.configured.len(),
            unchanged: report.unchanged,
            pruned: report.deleted.len(),
            failed_files: files.len(),
            refused: report.failed.len() + report.clashes.len(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        if self.failed_files > 0 || self.refused > 0 {
            exit::USAGE
        } else {
            exit::OK
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} created, {} configured, {} unchanged, {} pruned, {} failed files",
            self.created, self.configured, self.unchanged, self.pruned, self.failed_files
        )?;
        if self.refused > 0 {
            write!(f, ", {} not applied", self.refused)?;
        }
        Ok(())
    }
}

/// What went wrong in a pass, one line each (an invalid document's line carries its fix).
fn problems(report: &SyncReport) -> Vec<String> {
    let invalid = report.invalid.iter().map(|e| format!("error: {e}"));
    let clashes = report.clashes.iter().map(|c| format!("error: {c}"));
    let failed = report.failed.iter().map(|m| format!("error: {m}"));
    let links = report.links_out.iter().map(|m| format!("warning: {m}"));
    invalid.chain(clashes).chain(failed).chain(links).collect()
}

fn connect_error(e: ConnectError) -> ClientError {
    let hint = match &e {
        ConnectError::Context { .. } => {
            "; `kubectl config get-contexts` lists the contexts of your kubeconfig"
        }
        ConnectError::Infer(_) => {
            "; create a cluster (kind create cluster, k3d cluster create) or set KUBECONFIG"
        }
        ConnectError::Client(_) => "",
        ConnectError::File { .. } => "; point --kubeconfig at a kubeconfig file",
    };
    ClientError::usage(format!("{e}{hint}"))
}

/// Which cluster, for messages: the kubeconfig context and the API server's URL.
struct Cluster {
    context: String,
    server: Option<String>,
}

impl std::fmt::Display for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kubeconfig context {}", self.context)?;
        match &self.server {
            Some(server) => write!(f, ", API server {server}"),
            None => Ok(()),
        }
    }
}

fn access_error(cluster: &Cluster, e: AccessError) -> ClientError {
    let context = &cluster.context;
    match e {
        AccessError::Unreachable(_) => ClientError::unreachable(unreachable_message(cluster, &e)),
        AccessError::CrdsMissing => ClientError::usage(format!(
            "{e} ({cluster}); install them with: orcaops crds | kubectl --context {context} apply -f -"
        )),
        AccessError::Refused(_) => ClientError::usage(format!(
            "{e} ({cluster}); check your credentials and rights: kubectl --context {context} auth can-i patch jobs.orcaops.dev"
        )),
        AccessError::Other(_) => ClientError::usage(format!("{e} ({cluster})")),
    }
}

fn unreachable_message(cluster: &Cluster, e: &dyn std::fmt::Display) -> String {
    format!(
        "{e} ({cluster}). Check that the cluster is running (kubectl --context {} \
         cluster-info), that KUBECONFIG names the file you meant, or choose another \
         context with --context NAME",
        cluster.context
    )
}

fn source_error(cluster: &Cluster, e: SourceError) -> ClientError {
    match e {
        SourceError::Store(store) if store.is_unreachable() => {
            ClientError::unreachable(unreachable_message(cluster, &store))
        }
        SourceError::Store(StoreError::Kube(e)) => {
            ClientError::usage(format!("{} ({cluster})", crate::kubeapi::describe(&e)))
        }
        other => ClientError::usage(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::parse::DocumentError;
    use crate::resources::{Kind, ObjectKey};

    fn invalid(file: &str) -> DocumentError {
        DocumentError {
            file: file.into(),
            document: 1,
            line: Some(3),
            column: Some(1),
            field: Some("spec.image".into()),
            message: "missing field".into(),
            fix: None,
            kind: None,
            namespace: None,
            name: None,
            also: Vec::new(),
        }
    }

    #[test]
    fn the_summary_counts_files_not_documents_and_fails_on_them() {
        let key = ObjectKey::new(Kind::Job, "default", "a");
        let report = SyncReport {
            created: vec![key.clone()],
            deleted: vec![key],
            unchanged: 2,
            invalid: vec![invalid("a.yaml"), invalid("a.yaml"), invalid("b.yaml")],
            ..Default::default()
        };
        let summary = Summary::of(&report);
        assert_eq!(
            summary.to_string(),
            "1 created, 0 configured, 2 unchanged, 1 pruned, 2 failed files"
        );
        assert_eq!(summary.exit_code(), exit::USAGE);
        assert!(problems(&report)[0].starts_with("error: a.yaml:3:1"));
        let clean = Summary::of(&SyncReport {
            unchanged: 3,
            ..Default::default()
        });
        assert_eq!(clean.exit_code(), exit::OK);
    }

    #[test]
    fn a_refused_object_fails_the_pass_too() {
        let report = SyncReport {
            failed: vec!["job/default/a from a.yaml was not applied: invalid".into()],
            ..Default::default()
        };
        let summary = Summary::of(&report);
        assert!(
            summary.to_string().ends_with(", 1 not applied"),
            "{summary}"
        );
        assert_eq!(summary.exit_code(), exit::USAGE);
    }

    #[test]
    fn unreachable_names_the_context_and_what_to_check() {
        let cluster = Cluster {
            context: "kind-dev".into(),
            server: Some("https://127.0.0.1:6443/".into()),
        };
        let message = unreachable_message(&cluster, &"cannot reach the Kubernetes API");
        assert!(message.contains("6443"), "{message}");
        assert!(message.contains("kind-dev"), "{message}");
        assert!(message.contains("cluster-info"), "{message}");
        assert!(message.contains("--context"), "{message}");
    }
}
