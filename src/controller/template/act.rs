//! The SandboxTemplate controller's act: slots are made and removed in background
//! tasks (a slot takes seconds; the reconcile only registers it and moves on).

use std::sync::Arc;

use chrono::Utc;
use tracing::{debug, warn};

use super::PoolObserved;
use super::pool::{SlotContainer, slot_monitor_id};
use crate::controller::Context;
use crate::controller::sandbox::make::{Placement, make_services};
use crate::controller::sandbox::monitor::Target;
use crate::resources::sandbox::{SandboxService, SandboxTemplateSpec};
use crate::resources::{ObjectKey, keys};
use crate::runtime::DockerRuntime;
use crate::runtime::sandbox::names::{
    Owner, POOL_PREFIX, new_slot_id, owner_labels, pool_base, probe_spec,
};

/// What the pool's sizing asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolAction {
    /// Take a slot out of the pool and remove it, saying why.
    Remove { slot: String, why: String },
    /// Make one new slot.
    Start,
    /// The events of this decision reported this many misses.
    MissesReported(u64),
}

/// Runs `actions` for the template at `key`; returns at once.
pub(super) fn act(
    ctx: &Arc<Context>,
    docker: &DockerRuntime,
    key: &ObjectKey,
    observed: &PoolObserved,
    actions: Vec<PoolAction>,
) {
    for action in actions {
        match action {
            PoolAction::Remove { slot, why } => {
                if ctx.pools.take(key, &slot) {
                    debug!(%slot, %why, "removing a pooled sandbox");
                    let (ctx, docker) = (Arc::clone(ctx), docker.clone());
                    let key = key.clone();
                    tokio::spawn(async move { remove_slot(&ctx, &docker, &key, &slot).await });
                }
            }
            PoolAction::Start => {
                let slot = new_slot_id();
                ctx.pools
                    .add_creating(key, &slot, observed.fingerprint.clone());
                tokio::spawn(make_slot(
                    Arc::clone(ctx),
                    docker.clone(),
                    key.clone(),
                    observed.spec.clone(),
                    slot,
                ));
            }
            PoolAction::MissesReported(n) => ctx.pools.misses_reported(key, n),
        }
    }
}

/// Makes one slot, then hands it to a monitor; wakes the template either way.
async fn make_slot(
    ctx: Arc<Context>,
    docker: DockerRuntime,
    key: ObjectKey,
    spec: SandboxTemplateSpec,
    slot: String,
) {
    let network = spec.network.unwrap_or_default();
    let base = pool_base(&key.namespace, &key.name, &slot);
    let labels = owner_labels(
        Owner::Slot {
            namespace: &key.namespace,
            template: &key.name,
            slot: &slot,
        },
        ctx.store.instance_id(),
    );
    let placement = Placement {
        container_base: &base,
        storage_base: &base,
        network,
        labels: &labels,
    };
    let services: Vec<&SandboxService> = spec.services.iter().collect();
    let made = match make_services(&docker, &services, &Default::default(), &placement).await {
        Ok(made) => made
            .into_iter()
            .map(|(service, result)| {
                result
                    .map(|(info, ports)| SlotContainer {
                        service,
                        id: info.id,
                        name: info.name,
                        ports,
                    })
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>(),
        Err(e) => Err(e.to_string()),
    };
    match made {
        Ok(containers) => {
            let targets: Vec<Target> = containers
                .iter()
                .map(|c| Target {
                    service: c.service.clone(),
                    container_id: c.id.clone(),
                    probe: spec
                        .services
                        .iter()
                        .find(|s| s.name == c.service)
                        .and_then(|s| probe_spec(s.health_check.as_ref())),
                })
                .collect();
            let watched = ctx.pools.created(&key, &slot, containers, |_| {
                ctx.sandboxes.monitors.ensure(
                    &slot_monitor_id(&key, &slot),
                    &key,
                    targets,
                    |_| false,
                    &docker,
                    &ctx.queue,
                );
            });
            if !watched {
                // Not wanted any more (the template changed or went away meanwhile).
                remove_slot(&ctx, &docker, &key, &slot).await;
            }
        }
        Err(why) => {
            warn!(template = %key, %slot, error = %why, "cannot make a pooled sandbox");
            ctx.pools.failed(&key, &slot, why, Utc::now());
        }
    }
    ctx.queue.add(key);
}

/// Removes a slot's containers, network and volumes (never a claimed container: those
/// no longer have a pool name).
pub(super) async fn remove_slot(
    ctx: &Context,
    docker: &DockerRuntime,
    key: &ObjectKey,
    slot: &str,
) {
    ctx.sandboxes.monitors.stop(&slot_monitor_id(key, slot));
    let selector = [
        (keys::LABEL_INSTANCE, ctx.store.instance_id()),
        (keys::LABEL_WORKSPACE, key.namespace.as_str()),
        (keys::LABEL_POOL, key.name.as_str()),
        (keys::LABEL_SLOT, slot),
    ];
    let result: Result<(), crate::runtime::RuntimeError> = async {
        for c in docker.list(&selector).await? {
            if c.name.starts_with(POOL_PREFIX) {
                docker.remove(&c.id).await?;
            }
        }
        docker
            .remove_network(&pool_base(&key.namespace, &key.name, slot))
            .await?;
        for volume in docker.list_volumes(&selector).await? {
            docker.remove_volume(&volume).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // The sweep at the next resync removes what is left.
        warn!(template = %key, %slot, error = %e, "cannot remove a pooled sandbox");
    }
}
