//! The Sandbox controller on a cluster: one pod per sandbox, with a container per
//! service ([`crate::runtime::pod::sandbox`]). The decision stays the one Docker gets;
//! its per-container actions map onto the pod:
//!
//! | decided | on a cluster |
//! | --- | --- |
//! | Create (some services) | create the claims, policy, Service and the pod (all services) |
//! | Stop | delete the pod (claims, Service and policy stay) |
//! | Remove (a changed or removed service) | delete the pod; it is created again without it |
//! | Start (a container that exited) | the pod ended (evicted): delete it; it is created again |
//! | Rename (warm-pool claims) | never decided: warm pools do not run on a cluster |
//!
//! The kubelet restarts dead containers (`restartPolicy: Always`) and runs the health
//! checks as readiness probes, so there is no monitor: a container's `restartCount`
//! is the service's restarts, its `ready` the check's verdict, and the controller
//! looks at a running sandbox's pod every [`POD_POLL`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tracing::{debug, info, warn};

use super::decide::{FAILED_AFTER, Observed, SandboxAction, ServiceObserved};
use super::runtime::SandboxRuntime;
use crate::controller::{Context, ControllerError};
use crate::resources::sandbox::{EffectiveSandbox, SandboxStatus};
use crate::resources::{Object, ObjectKey, ObjectMeta, keys};
use crate::runtime::names::STOP_GRACE_SECS;
use crate::runtime::pod::pod_time;
use crate::runtime::pod::sandbox::build::{SandboxPlacement, sandbox_pod_name};
use crate::runtime::pod::sandbox::{Created, SPEC_HASH_ANNOTATION, service_host};
use crate::runtime::sandbox::PublishedPort;
use crate::runtime::sandbox::names::{LABEL_SPEC_HASH, service_hash};
use crate::runtime::{ContainerInfo, ContainerState, DockerRuntime, PodRuntime};

/// How often a running sandbox's pod is read: nothing else wakes the controller when
/// the kubelet restarts a container or a readiness probe flips.
pub const POD_POLL: Duration = Duration::from_secs(10);

/// The state of a container of a pod being deleted: not running, nothing to stop.
const REMOVING: &str = "removing";

/// The waiting reasons that mean the image cannot be had.
const IMAGE_FAILURES: &[&str] = &["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

#[async_trait::async_trait]
impl SandboxRuntime for PodRuntime {
    async fn observe_services(
        &self,
        _ctx: &Context,
        obj: &Object,
        effective: &EffectiveSandbox,
        _status: &SandboxStatus,
        names: &[String],
    ) -> Result<BTreeMap<String, ServiceObserved>, ControllerError> {
        let pod = self.sandbox_pod(&obj.metadata).await?;
        Ok(services_of(pod.as_ref(), &obj.metadata, effective, names))
    }

    async fn act(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &mut Observed,
        action: &SandboxAction,
    ) -> Result<bool, ControllerError> {
        let meta = &obj.metadata;
        match action {
            SandboxAction::Create { services } => {
                let effective = observed.effective.clone();
                let placement = SandboxPlacement {
                    meta,
                    effective: &effective,
                    instance: ctx.store.instance_id(),
                };
                debug!(services = ?services, "creating the sandbox's pod");
                match self.create_sandbox(&placement).await? {
                    Created::Pod(pod) => {
                        let names: Vec<String> = observed.services.keys().cloned().collect();
                        let mut found = services_of(Some(&pod), meta, &effective, &names);
                        for name in services {
                            found.entry(name.clone()).or_default();
                        }
                        observed.services.extend(found);
                    }
                    Created::Terminating => mark_removing(meta, observed),
                    Created::Refused(why) => {
                        warn!(error = %why, "a sandbox that cannot be one pod");
                        for name in services {
                            let entry = observed.services.entry(name.clone()).or_default();
                            entry.create_error = Some(why.to_string());
                        }
                    }
                }
                Ok(true)
            }
            SandboxAction::Start { .. } => {
                // Only an ended pod (evicted, failed) has exited containers: it is made
                // again from scratch.
                info!("the sandbox's pod ended; deleting it to create it again");
                self.delete_sandbox_pod(meta, 0).await?;
                for entry in observed.services.values_mut() {
                    entry.container = None;
                    entry.ports.clear();
                }
                Ok(true)
            }
            SandboxAction::Remove { service, .. } => {
                info!(%service, "a service changed or went away; deleting the pod to make it again");
                self.delete_sandbox_pod(meta, STOP_GRACE_SECS).await?;
                if !observed
                    .effective
                    .services
                    .iter()
                    .any(|s| &s.name == service)
                {
                    observed.services.remove(service);
                }
                mark_removing(meta, observed);
                Ok(true)
            }
            SandboxAction::Rename { .. } => {
                warn!("a warm-pool rename was decided on a cluster, where pools do not run");
                Ok(false)
            }
            SandboxAction::Stop { .. } => {
                info!("stopping the sandbox: deleting its pod (volumes are kept)");
                self.delete_sandbox_pod(meta, STOP_GRACE_SECS).await?;
                Ok(false)
            }
        }
    }

    /// The processes of a pod's containers cannot be listed through the API without an
    /// exec per container per look: background work is not counted, and the idle
    /// timeout applies as declared.
    async fn count_processes(&self, _observed: &Observed) -> Result<usize, ControllerError> {
        debug!("background processes are not counted on a cluster");
        Ok(0)
    }

    fn watch(
        &self,
        _ctx: &Arc<Context>,
        _key: &ObjectKey,
        _uid: &str,
        _observed: &Observed,
        _status: &SandboxStatus,
    ) -> Option<Duration> {
        Some(POD_POLL)
    }

    fn unwatch(&self, _ctx: &Context, _uid: &str) {}

    async fn remove_deleted(&self, ctx: &Context, obj: &Object) -> Result<(), ControllerError> {
        let uid = obj.metadata.uid.as_str();
        ctx.sandboxes.forget(uid);
        ctx.activity.forget(uid);
        self.remove_sandbox(&obj.metadata).await?;
        info!(namespace = ?obj.metadata.namespace, name = %obj.metadata.name, "removed a deleted sandbox's pod, Service and volumes");
        Ok(())
    }

    /// Everything a Sandbox makes is owned by it: Kubernetes' garbage collector removes
    /// what a Sandbox deleted without its finalizer left.
    async fn remove_orphans(&self, _ctx: &Context) -> Result<usize, ControllerError> {
        Ok(0)
    }

    fn warm_pools(&self) -> Option<&DockerRuntime> {
        None
    }

    /// The kubelet's changes arrive at once through a watch of the sandbox pods; the
    /// poll of [`POD_POLL`] stays as a safety net.
    fn changes(&self, instance: &str) -> Option<futures::stream::BoxStream<'static, ObjectKey>> {
        Some(self.sandbox_pod_changes(instance))
    }
}

/// Every container of the pod as being removed (it is being deleted).
fn mark_removing(meta: &ObjectMeta, observed: &mut Observed) {
    let pod = sandbox_pod_name(meta);
    let ns = meta.namespace.clone().unwrap_or_default();
    for (name, entry) in observed.services.iter_mut() {
        // The declared hash: what goes away is waited for, not removed again.
        let labels = observed
            .effective
            .services
            .iter()
            .find(|s| &s.name == name)
            .map(|s| {
                BTreeMap::from([(
                    LABEL_SPEC_HASH.to_string(),
                    service_hash(s, observed.effective.network),
                )])
            })
            .unwrap_or_default();
        entry.container = Some(ContainerInfo {
            id: format!("{ns}/{pod}/{name}"),
            name: format!("{pod}/{name}"),
            labels,
            state: ContainerState::Other(REMOVING.to_string()),
            started_at: None,
            finished_at: None,
            image_id: None,
        });
        entry.ports.clear();
        entry.probe_ready = None;
    }
}

/// Each service as the pod shows it. Pure.
///
/// A service declared but missing from the pod (added to the spec), or present with
/// another spec hash, shows a hash that does not match, so the decision makes it
/// again, which here means a new pod.
pub fn services_of(
    pod: Option<&Pod>,
    meta: &ObjectMeta,
    effective: &EffectiveSandbox,
    names: &[String],
) -> BTreeMap<String, ServiceObserved> {
    let mut services: BTreeMap<String, ServiceObserved> = names
        .iter()
        .map(|n| (n.clone(), ServiceObserved::default()))
        .collect();
    let Some(pod) = pod else {
        return services;
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let labels: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let in_pod: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.as_str()))
        .collect();
    for (name, observed) in services.iter_mut() {
        let declared = effective.services.iter().find(|s| &s.name == name);
        if !in_pod.contains(&name.as_str()) && declared.is_none() {
            continue;
        }
        let mut container_labels = labels.clone();
        container_labels.insert(keys::LABEL_SERVICE.to_string(), name.clone());
        let hash = match declared {
            // Going away already: nothing to remove again, only to wait for.
            Some(declared) if terminating => service_hash(declared, effective.network),
            _ => annotations
                .get(&format!("{SPEC_HASH_ANNOTATION}{name}"))
                .filter(|_| in_pod.contains(&name.as_str()))
                .cloned()
                // Not in this pod: no hash matches, so the pod is made again.
                .unwrap_or_else(|| "not-in-the-pod".to_string()),
        };
        container_labels.insert(LABEL_SPEC_HASH.to_string(), hash);
        let container_status = status
            .container_statuses
            .iter()
            .flatten()
            .find(|c| &c.name == name);
        let (state, started_at, finished_at) = if terminating {
            (ContainerState::Other(REMOVING.to_string()), None, None)
        } else {
            container_state(phase, container_status)
        };
        if let Some(cs) = container_status.filter(|_| !terminating) {
            observed.restarts = Some(u32::try_from(cs.restart_count).unwrap_or(0));
            observed.create_error = failing(cs);
            if state == ContainerState::Running {
                observed.probe_ready = Some(cs.ready);
            }
        }
        if state == ContainerState::Running
            && let Some(declared) = declared
        {
            let host = service_host(meta);
            observed.ports = declared
                .ports
                .iter()
                .map(|p| PublishedPort {
                    container_port: p.container_port,
                    host_ip: host.clone(),
                    host_port: p.container_port,
                })
                .collect();
        }
        observed.container = Some(ContainerInfo {
            id: format!("{ns}/{pod_name}/{name}"),
            name: format!("{pod_name}/{name}"),
            labels: container_labels,
            state,
            started_at,
            finished_at,
            image_id: None,
        });
    }
    services
}

type StateAndTimes = (
    ContainerState,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// A container of a sandbox's pod as the decision sees one. While the pod lives, the
/// kubelet restarts what dies: waiting and terminated containers are "other" states
/// (not ready, looked at again soon), never exited. Only an ended pod has exited ones.
fn container_state(phase: &str, status: Option<&ContainerStatus>) -> StateAndTimes {
    let state = status.and_then(|c| c.state.clone()).unwrap_or_default();
    let ended = matches!(phase, "Failed" | "Succeeded");
    if let Some(t) = &state.terminated {
        let code = i64::from(t.exit_code);
        let started = t.started_at.as_ref().and_then(|t| pod_time(&t.0));
        let finished = t.finished_at.as_ref().and_then(|t| pod_time(&t.0));
        if ended {
            return (ContainerState::Exited { code }, started, finished);
        }
        return (
            ContainerState::Other(format!("exited (code {code}), restarting")),
            started,
            finished,
        );
    }
    if ended {
        return (
            ContainerState::Exited {
                code: i64::from(phase == "Failed"),
            },
            None,
            None,
        );
    }
    if let Some(running) = &state.running {
        let started = running.started_at.as_ref().and_then(|t| pod_time(&t.0));
        return (ContainerState::Running, started, None);
    }
    let waiting = state
        .waiting
        .as_ref()
        .and_then(|w| w.reason.clone())
        .unwrap_or_else(|| "pending".to_string());
    let text = if waiting == "pending" {
        // Not scheduled yet, or no status at all yet.
        "pending".to_string()
    } else {
        format!("waiting ({waiting})")
    };
    (ContainerState::Other(text), None, None)
}

/// The user's error a container shows: an image that cannot be pulled, or a service
/// that keeps dying (the kubelet goes on restarting it with backoff).
fn failing(status: &ContainerStatus) -> Option<String> {
    let waiting = status.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    let message = waiting.message.clone().unwrap_or_default();
    if IMAGE_FAILURES.contains(&reason) {
        return Some(format!(
            "image \"{}\" is not available: {}",
            status.image,
            if message.is_empty() { reason } else { &message }
        ));
    }
    if reason == "CrashLoopBackOff"
        && status.restart_count >= i32::try_from(FAILED_AFTER).unwrap_or(5)
    {
        let last = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| format!("exited (code {})", t.exit_code))
            .unwrap_or_else(|| "exited".to_string());
        return Some(format!(
            "keeps failing: {last}, restarted {} times; the kubelet restarts it with backoff",
            status.restart_count
        ));
    }
    None
}

#[cfg(test)]
mod tests;
