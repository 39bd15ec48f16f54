//! The Sandbox controller on Docker: a container per service, found by name, made
//! with its network and volumes ([`make`](super::make)), watched by a monitor that
//! runs the health checks ([`monitor`](super::monitor)).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use tracing::{debug, info, warn};

use super::cleanup;
use super::decide::{Observed, SandboxAction, ServiceObserved};
use super::make::{Placement, make_services};
use super::monitor::Target;
use super::runtime::SandboxRuntime;
use crate::controller::{Context, ControllerError, secrets};
use crate::resources::sandbox::{EffectiveSandbox, SandboxStatus};
use crate::resources::{Object, ObjectKey};
use crate::runtime::names::STOP_GRACE_SECS;
use crate::runtime::sandbox::names::{
    Owner, child_name, owner_labels, pool_base, probe_spec, sandbox_base, storage_base,
};
use crate::runtime::{ContainerInfo, ContainerState, DockerRuntime, RuntimeError};

#[async_trait::async_trait]
impl SandboxRuntime for DockerRuntime {
    async fn observe_services(
        &self,
        ctx: &Context,
        obj: &Object,
        effective: &EffectiveSandbox,
        status: &SandboxStatus,
        names: &[String],
    ) -> Result<BTreeMap<String, ServiceObserved>, ControllerError> {
        let meta = &obj.metadata;
        let base = sandbox_base(meta);
        let claimed_base = status.claimed_from.as_ref().map(|c| {
            pool_base(
                meta.namespace.as_deref().unwrap_or("default"),
                &c.template,
                &c.slot,
            )
        });
        let found = join_all(names.iter().map(|name| {
            let own = child_name(&base, name);
            let pooled = claimed_base.as_ref().map(|b| child_name(b, name));
            async move {
                if let Some(c) = self.inspect(&own).await? {
                    return Ok::<_, RuntimeError>(Some((c, false)));
                }
                match pooled {
                    Some(pooled) => Ok(self.inspect(&pooled).await?.map(|c| (c, true))),
                    None => Ok(None),
                }
            }
        }))
        .await;
        let mut services = BTreeMap::new();
        for (name, found) in names.iter().zip(found) {
            let mut observed = ServiceObserved::default();
            if let Some((container, pool_named)) = found? {
                let declares_ports = effective
                    .services
                    .iter()
                    .any(|s| &s.name == name && !s.ports.is_empty());
                if container.state == ContainerState::Running && declares_ports {
                    observed.ports = self.published_ports(&container.id).await?;
                }
                observed.probe_ready =
                    ctx.sandboxes
                        .monitors
                        .verdict_for(&meta.uid, name, &container.id);
                observed.pool_named = pool_named;
                observed.container = Some(container);
            }
            services.insert(name.clone(), observed);
        }
        Ok(services)
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
                let labels = owner_labels(Owner::Sandbox(meta), ctx.store.instance_id());
                let storage = storage_base(meta, observed.status.claimed_from.as_ref());
                // Secrets are read now, at the containers' creation; a service whose
                // secret is missing is not made (never with an empty value), and says why.
                let namespace = meta.namespace.as_deref().unwrap_or_default();
                let mut wanted = Vec::new();
                let mut resolved_env = BTreeMap::new();
                for service in observed
                    .effective
                    .services
                    .iter()
                    .filter(|s| services.contains(&s.name))
                {
                    let env =
                        secrets::resolve(ctx.secrets.as_ref(), namespace, &service.env).await?;
                    match env {
                        Ok(env) => {
                            resolved_env.insert(service.name.clone(), env);
                            wanted.push(service);
                        }
                        Err(missing) => {
                            let entry = observed.services.entry(service.name.clone()).or_default();
                            entry.create_error = Some(missing.to_string());
                        }
                    }
                }
                let placement = Placement {
                    container_base: &sandbox_base(meta),
                    storage_base: &storage,
                    network: observed.effective.network,
                    labels: &labels,
                };
                debug!(services = ?services, "making service containers");
                let made = make_services(self, &wanted, &resolved_env, &placement).await?;
                for (service, result) in made {
                    let entry = observed.services.entry(service.clone()).or_default();
                    match result {
                        Ok((container, ports)) => {
                            entry.container = Some(container);
                            entry.ports = ports;
                            entry.pool_named = false;
                            entry.create_error = None;
                        }
                        Err(RuntimeError::ImageUnavailable { image, reason }) => {
                            warn!(%service, %image, %reason, "cannot make a service container");
                            entry.create_error =
                                Some(format!("image \"{image}\" is not available: {reason}"));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(true)
            }
            SandboxAction::Start {
                service,
                container_id,
            } => {
                let entry = observed.services.entry(service.clone()).or_default();
                match self.start_container(container_id).await {
                    Ok(()) => {
                        if let Some(c) = &mut entry.container {
                            c.state = ContainerState::Running;
                            c.started_at = Some(Utc::now());
                            c.finished_at = None;
                        }
                        entry.probe_ready = None;
                        // A restarted container gets new host ports.
                        let declares_ports = observed
                            .effective
                            .services
                            .iter()
                            .any(|s| &s.name == service && !s.ports.is_empty());
                        if declares_ports {
                            entry.ports = self.published_ports(container_id).await?;
                        }
                    }
                    // Gone in between: it is made again on the next pass.
                    Err(RuntimeError::ContainerNotFound { .. }) => entry.container = None,
                    Err(e) => return Err(e.into()),
                }
                Ok(true)
            }
            SandboxAction::Remove {
                service,
                container_id,
            } => {
                self.remove(container_id).await?;
                if let Some(entry) = observed.services.get_mut(service) {
                    entry.container = None;
                    entry.ports.clear();
                }
                if !observed
                    .effective
                    .services
                    .iter()
                    .any(|s| &s.name == service)
                {
                    observed.services.remove(service);
                }
                Ok(true)
            }
            SandboxAction::Rename { container_id, to } => {
                self.rename_container(container_id, to).await?;
                for entry in observed.services.values_mut() {
                    if let Some(c) = entry.container.as_mut().filter(|c| &c.id == container_id) {
                        c.name = to.clone();
                        entry.pool_named = false;
                    }
                }
                Ok(true)
            }
            SandboxAction::Stop { container_ids } => {
                ctx.sandboxes.monitors.stop(&meta.uid);
                info!(
                    containers = container_ids.len(),
                    "stopping sandbox containers"
                );
                let stopped = join_all(
                    container_ids
                        .iter()
                        .map(|id| self.stop(id, STOP_GRACE_SECS)),
                )
                .await;
                for result in stopped {
                    result?;
                }
                Ok(false)
            }
        }
    }

    async fn count_processes(&self, observed: &Observed) -> Result<usize, ControllerError> {
        let running: Vec<&ContainerInfo> = observed
            .services
            .values()
            .filter_map(|s| s.container.as_ref())
            .filter(|c| c.state == ContainerState::Running)
            .collect();
        let counts = join_all(running.iter().map(|c| self.exec_processes(&c.id))).await;
        let mut total = 0;
        for count in counts {
            match count {
                Ok(n) => total += n,
                // Stopped or gone in between: nothing runs in it.
                Err(
                    RuntimeError::ContainerNotFound { .. }
                    | RuntimeError::ContainerNotRunning { .. },
                ) => {}
                // Processes cannot be seen from here (a remote Docker daemon): background
                // work cannot be told, so the idle timeout applies as declared.
                Err(e @ RuntimeError::ProcessesUnreadable { .. }) => {
                    warn!(error = %e, "cannot count background processes; expiring on idle time alone");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(total)
    }

    /// Hands the running containers to the sandbox's monitor, which wakes it.
    fn watch(
        &self,
        ctx: &Arc<Context>,
        key: &ObjectKey,
        uid: &str,
        observed: &Observed,
        status: &SandboxStatus,
    ) -> Option<Duration> {
        let targets: Vec<Target> = observed
            .effective
            .services
            .iter()
            .filter_map(|service| {
                let container = observed.services.get(&service.name)?.container.as_ref()?;
                (container.state == ContainerState::Running).then(|| Target {
                    service: service.name.clone(),
                    container_id: container.id.clone(),
                    probe: probe_spec(service.health_check.as_ref()),
                })
            })
            .collect();
        let seed = |t: &Target| {
            status
                .services
                .iter()
                .any(|s| s.name == t.service && s.ready)
        };
        ctx.sandboxes
            .monitors
            .ensure(uid, key, targets, seed, self, &ctx.queue);
        None
    }

    fn unwatch(&self, ctx: &Context, uid: &str) {
        ctx.sandboxes.monitors.stop(uid);
    }

    async fn remove_deleted(&self, ctx: &Context, obj: &Object) -> Result<(), ControllerError> {
        cleanup::remove_deleted(ctx, self, obj).await
    }

    async fn remove_orphans(&self, ctx: &Context) -> Result<usize, ControllerError> {
        cleanup::remove_orphans(ctx, self).await
    }

    fn warm_pools(&self) -> Option<&DockerRuntime> {
        Some(self)
    }
}
