//! Sandboxes on a cluster, through the Kubernetes API: a pod per Sandbox (one
//! container per service), a Service for its ports, a claim per named volume, and the
//! NetworkPolicy of `network: none` or `private`. What they are built from is pure
//! ([`build`]); these calls send it and read pods back.
//!
//! Every create is idempotent: an object of the same name is adopted, so a controller
//! that crashed between two creates finishes the set on its next reconcile.

pub mod build;
pub mod exec;
pub mod files;
mod io;
#[cfg(test)]
mod io_tests;
#[cfg(test)]
mod tests;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::runtime::PodRuntime;
use crate::resources::{Kind, ObjectKey, ObjectMeta, keys};
use crate::runtime::{Result, RuntimeError};
use build::{
    SandboxPlacement, build_sandbox_network_policy, build_sandbox_pod, build_sandbox_pvcs,
    build_sandbox_service, sandbox_pod_name, sandbox_service_name,
};

pub use build::{
    PlacementError, SPEC_HASH_ANNOTATION, VOLUME_SIZE, service_host, volume_claim_name,
};
pub use exec::sandbox_container_id;

/// What creating a sandbox's pod came to.
#[derive(Debug)]
pub enum Created {
    /// The pod was created (or one of the same name was adopted).
    Pod(Box<Pod>),
    /// A pod of that name is still terminating (a stop, or a changed service): the
    /// next reconcile creates it once it is gone.
    Terminating,
    /// The sandbox cannot be one pod; the message says what to fix.
    Refused(PlacementError),
}

impl PodRuntime {
    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client().clone(), namespace)
    }

    /// The pod of a sandbox, if it exists.
    pub async fn sandbox_pod(&self, meta: &ObjectMeta) -> Result<Option<Pod>> {
        let namespace = namespace_of(meta);
        self.api::<Pod>(&namespace)
            .get_opt(&sandbox_pod_name(meta))
            .await
            .map_err(RuntimeError::Kube)
    }

    /// Creates what the sandbox needs that is missing: its claims, its policy (before
    /// the pod: a pod that starts first has the network until the policy arrives), its
    /// Service, then its pod.
    pub async fn create_sandbox(&self, placement: &SandboxPlacement<'_>) -> Result<Created> {
        let pod = match build_sandbox_pod(placement) {
            Ok(pod) => pod,
            Err(e) => return Ok(Created::Refused(e)),
        };
        let namespace = placement.namespace();
        for claim in build_sandbox_pvcs(placement) {
            self.create_or_adopt::<PersistentVolumeClaim>(&namespace, &claim)
                .await?;
        }
        if let Some(policy) = build_sandbox_network_policy(placement) {
            self.create_or_adopt::<NetworkPolicy>(&namespace, &policy)
                .await?;
        }
        if let Some(service) = build_sandbox_service(placement) {
            self.create_or_adopt::<Service>(&namespace, &service)
                .await?;
        }
        let pods = self.api::<Pod>(&namespace);
        match pods.create(&PostParams::default(), &pod).await {
            Ok(created) => Ok(Created::Pod(Box::new(created))),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let name = placement.pod_name();
                match pods.get_opt(&name).await.map_err(RuntimeError::Kube)? {
                    Some(p) if p.metadata.deletion_timestamp.is_some() => Ok(Created::Terminating),
                    Some(p) => Ok(Created::Pod(Box::new(p))),
                    // Gone in between: the next reconcile creates it.
                    None => Ok(Created::Terminating),
                }
            }
            Err(e) => Err(RuntimeError::Kube(e)),
        }
    }

    async fn create_or_adopt<K>(&self, namespace: &str, object: &K) -> Result<()>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned,
        <K as kube::Resource>::DynamicType: Default,
    {
        match self
            .api::<K>(namespace)
            .create(&PostParams::default(), object)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
            Err(e) => Err(RuntimeError::Kube(e)),
        }
    }

    /// Deletes the sandbox's pod, with `grace_secs` between SIGTERM and SIGKILL. Its
    /// claims, Service and policy stay: starting again mounts the same volumes.
    pub async fn delete_sandbox_pod(&self, meta: &ObjectMeta, grace_secs: u32) -> Result<()> {
        let params = DeleteParams {
            grace_period_seconds: Some(grace_secs),
            ..Default::default()
        };
        ignore_not_found(
            self.api::<Pod>(&namespace_of(meta))
                .delete(&sandbox_pod_name(meta), &params)
                .await
                .map(drop),
        )
    }

    /// Deletes everything of a deleted sandbox: its pod, Service, policy and claims
    /// (found by its uid label, so claims of volumes no longer declared go too).
    pub async fn remove_sandbox(&self, meta: &ObjectMeta) -> Result<()> {
        let namespace = namespace_of(meta);
        let pod = sandbox_pod_name(meta);
        let params = DeleteParams::default();
        ignore_not_found(
            self.api::<Pod>(&namespace)
                .delete(&pod, &params)
                .await
                .map(drop),
        )?;
        ignore_not_found(
            self.api::<Service>(&namespace)
                .delete(&sandbox_service_name(meta), &params)
                .await
                .map(drop),
        )?;
        ignore_not_found(
            self.api::<NetworkPolicy>(&namespace)
                .delete(&pod, &params)
                .await
                .map(drop),
        )?;
        let selector = format!(
            "{}={},{}={}",
            keys::LABEL_KIND,
            Kind::Sandbox.as_str(),
            keys::LABEL_UID,
            meta.uid
        );
        let claims = self.api::<PersistentVolumeClaim>(&namespace);
        let list = claims
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(RuntimeError::Kube)?;
        for claim in list.items {
            if let Some(name) = claim.metadata.name {
                ignore_not_found(claims.delete(&name, &params).await.map(drop))?;
            }
        }
        Ok(())
    }
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| crate::resources::DEFAULT_WORKSPACE.to_string())
}

fn ignore_not_found(result: kube::Result<()>) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(RuntimeError::Kube(e)),
    }
}

/// The Sandbox a pod belongs to, from its labels (a pool slot's pod has no sandbox name).
fn sandbox_of(pod: &Pod) -> Option<ObjectKey> {
    let labels = pod.metadata.labels.as_ref()?;
    let name = labels.get(keys::LABEL_NAME)?;
    let namespace = labels
        .get(keys::LABEL_WORKSPACE)
        .or(pod.metadata.namespace.as_ref())?;
    Some(ObjectKey::new(Kind::Sandbox, namespace, name))
}

impl PodRuntime {
    /// Every change to the pod of one of `instance`'s sandboxes, in every namespace, as
    /// the key of its Sandbox: made, a container restarted or a probe flipped by the
    /// kubelet, evicted, deleted. One kube-runtime watcher (it lists, then watches, and
    /// starts again with a backoff when the API server ends the watch or fails).
    pub fn sandbox_pod_changes(&self, instance: &str) -> BoxStream<'static, ObjectKey> {
        let selector = format!(
            "{}={},{}={instance}",
            keys::LABEL_KIND,
            Kind::Sandbox.as_str(),
            keys::LABEL_INSTANCE
        );
        let pods: Api<Pod> = Api::all(self.client().clone());
        watcher(pods, watcher::Config::default().labels(&selector))
            .default_backoff()
            .filter_map(|event| async move {
                match event {
                    Ok(
                        watcher::Event::Apply(pod)
                        | watcher::Event::InitApply(pod)
                        | watcher::Event::Delete(pod),
                    ) => sandbox_of(&pod),
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                    Err(e) => {
                        warn!(error = %e, "the watch of sandbox pods failed; it starts again");
                        None
                    }
                }
            })
            .boxed()
    }
}
