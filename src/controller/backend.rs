//! What orcaops runs on, chosen once at start-up: one machine (SQLite and Docker) or a
//! cluster (the Kubernetes API and pods). A [`Backend`] hands out complete traits: the
//! objects, the run records, what runs Job attempts, what runs Sandboxes (with exec and
//! files for the HTTP API) and, where the mode has them, warm pools. Nothing downstream
//! asks which mode it is in; a capability a mode lacks says so with a typed error
//! ([`RuntimeError::Unsupported`](crate::runtime::RuntimeError::Unsupported)) or an
//! absent warm-pool runtime ([`SandboxRuntime::warm_pools`]).

use std::sync::Arc;

use super::sandbox::SandboxRuntime;
use super::workspace::tenant::TenantRuntime;
use crate::runtime::sandbox::SandboxIo;
use crate::runtime::{DockerRuntime, JobRuntime, PodRuntime};
use crate::store::secrets::{PodSecrets, SecretValues};
use crate::store::{KubeStore, LocalStore, ObjectStore};

/// Where objects live and what runs them.
#[derive(Clone)]
pub enum Backend {
    /// `orcaops serve`: one SQLite store for objects and records, Docker for everything
    /// that runs (Job attempts, Sandboxes, warm pools).
    Local {
        store: LocalStore,
        docker: DockerRuntime,
    },
    /// `orcaops operator`: objects in the Kubernetes API, run records in the operator's
    /// data dir, a pod per Job attempt and per Sandbox; no warm pools.
    Cluster {
        store: KubeStore,
        records: LocalStore,
        pods: PodRuntime,
    },
}

impl Backend {
    /// Objects, status, watches and events.
    pub fn objects(&self) -> Arc<dyn ObjectStore> {
        match self {
            Backend::Local { store, .. } => Arc::new(store.clone()),
            Backend::Cluster { store, .. } => Arc::new(store.clone()),
        }
    }

    /// The Policies every door reviews writes against. On one machine they are followed
    /// live from the store; on a cluster the API server's admission webhook enforces
    /// them, so the operator's own reviews are off (and add no requests to the API).
    pub fn policies(&self) -> Arc<crate::policy::Policies> {
        match self {
            Backend::Local { .. } => crate::policy::Policies::watching(self.objects()),
            Backend::Cluster { .. } => crate::policy::Policies::disabled(self.objects()),
        }
    }

    /// Run and attempt records, logs and artifacts: the local data dir in both modes
    /// (a cluster object keeps only recent history).
    pub fn records(&self) -> LocalStore {
        match self {
            Backend::Local { store, .. } => store.clone(),
            Backend::Cluster { records, .. } => records.clone(),
        }
    }

    /// What runs Job attempts.
    pub fn jobs(&self) -> Arc<dyn JobRuntime> {
        match self {
            Backend::Local { docker, .. } => Arc::new(docker.clone()),
            Backend::Cluster { pods, .. } => Arc::new(pods.clone()),
        }
    }

    /// What runs Sandboxes, as the controller drives them.
    pub fn sandboxes(&self) -> Arc<dyn SandboxRuntime> {
        match self {
            Backend::Local { docker, .. } => Arc::new(docker.clone()),
            Backend::Cluster { pods, .. } => Arc::new(pods.clone()),
        }
    }

    /// Exec, files and the list of what runs, as the HTTP API serves them.
    pub fn sandbox_io(&self) -> Arc<dyn SandboxIo> {
        match self {
            Backend::Local { docker, .. } => Arc::new(docker.clone()),
            Backend::Cluster { pods, .. } => Arc::new(pods.clone()),
        }
    }

    /// Where the values of `env[].valueFrom.secretKeyRef` come from: the local store's
    /// encrypted secrets, or on a cluster the pod itself (its own `secretKeyRef`).
    pub fn secrets(&self) -> Arc<dyn SecretValues> {
        match self {
            Backend::Local { store, .. } => Arc::new(store.clone()),
            Backend::Cluster { .. } => Arc::new(PodSecrets),
        }
    }

    /// What applies a Workspace's tenant (Namespace, quota, limits, isolation, member
    /// bindings): on a cluster the pod runtime's client; one machine has none.
    pub fn tenants(&self) -> Option<Arc<dyn TenantRuntime>> {
        match self {
            Backend::Local { .. } => None,
            Backend::Cluster { pods, .. } => Some(Arc::new(pods.clone())),
        }
    }

    /// Whether objects carry the controllers' finalizer, so that a deletion waits for
    /// cleanup: on a cluster, where deleting is someone else's API call. Locally the
    /// controller sees every deletion itself.
    pub fn keeps_finalizers(&self) -> bool {
        matches!(self, Backend::Cluster { .. })
    }
}
