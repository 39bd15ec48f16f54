//! The SandboxTemplate controller: keeps each template's warm pool of ready sandboxes
//! ("slots") at the size [`sizing`] decides, and shows its depth in `status.pool`.
//!
//! Slots are made in background tasks (the reconcile only registers them), watched by
//! a monitor like any sandbox, and claimed by Sandboxes through the registry
//! ([`pool::Pools`]). A slot belongs to no Sandbox until claimed; its Docker objects
//! are named `orcaops-pool-<ns>-<template>-<slot>[-<service>|-<volume>]`.

mod cluster;
pub mod pool;
pub mod sizing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::{debug, info, instrument, warn};

use super::sandbox::invalid;
use super::sandbox::make::{Placement, make_services};
use super::sandbox::monitor::Target;
use super::{Context, ControllerError};
use crate::resources::sandbox::{
    SandboxNetwork, SandboxService, SandboxStatus, SandboxTemplateSpec, SandboxTemplateStatus,
};
use crate::resources::{Kind, ObjectKey, keys};
use crate::runtime::sandbox::names::{
    LABEL_SPEC_HASH, Owner, POOL_PREFIX, new_slot_id, owner_labels, pool_base, probe_spec,
    service_hash,
};
use crate::runtime::{ContainerState, DockerRuntime};
use crate::store::{InvolvedObject, NewEvent};

pub use cluster::{NO_POOL_ON_A_CLUSTER, report_no_pool};
use pool::{Counters, SlotContainer, slot_monitor_id};

/// A stored template's spec and status (a template never written to has the default).
pub(super) fn read(
    obj: &crate::resources::Object,
    key: &ObjectKey,
) -> Result<(SandboxTemplateSpec, SandboxTemplateStatus), ControllerError> {
    let spec = serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(key, e))?;
    let stored = if obj.status.is_null() {
        SandboxTemplateStatus::default()
    } else {
        serde_json::from_value(obj.status.clone()).map_err(|e| invalid(key, e))?
    };
    Ok((spec, stored))
}
pub use pool::{Fingerprint, Pools};

/// What a pool slot (or a claim) must match: each service's hash.
pub fn fingerprint(services: &[SandboxService], network: SandboxNetwork) -> Fingerprint {
    services
        .iter()
        .map(|s| (s.name.clone(), service_hash(s, network)))
        .collect()
}

/// Reconciles one SandboxTemplate's warm pool; returns when to look at it again.
#[instrument(skip(ctx, docker), fields(kind = "SandboxTemplate", namespace = %key.namespace, name = %key.name))]
pub async fn reconcile(
    ctx: &Arc<Context>,
    docker: &DockerRuntime,
    key: &ObjectKey,
) -> Result<Option<Duration>, ControllerError> {
    let Some(obj) = ctx.store.get(key).await? else {
        drain(ctx, docker, key).await;
        return Ok(None);
    };
    let (spec, stored) = read(&obj, key)?;
    if let Some(p) = &stored.pool {
        ctx.pools.seed(
            key,
            Counters {
                claimed: p.claimed,
                missed: p.missed,
                last_claim_time: p.last_claim_time,
            },
        );
    } else {
        ctx.pools.seed(key, Counters::default());
    }
    let network = spec.network.unwrap_or_default();
    let fingerprint = fingerprint(&spec.services, network);
    let now = Utc::now();
    let snapshot = ctx.pools.snapshot(key, &ctx.sandboxes.monitors, now);
    if snapshot.failures_in_a_row > 0
        && snapshot
            .slots
            .iter()
            .any(|s| s.state == sizing::SlotState::Ready)
    {
        ctx.pools.succeeded(key);
    }
    let decision = sizing::decide(
        spec.warm_pool.as_ref(),
        &fingerprint,
        &snapshot,
        &stored,
        obj.metadata.generation,
        now,
    );
    for (slot, why) in &decision.remove {
        if ctx.pools.take(key, slot) {
            debug!(%slot, %why, "removing a pooled sandbox");
            let (ctx, docker) = (Arc::clone(ctx), docker.clone());
            let key = key.clone();
            let slot = slot.clone();
            tokio::spawn(async move { remove_slot(&ctx, &docker, &key, &slot).await });
        }
    }
    for _ in 0..decision.start {
        let slot = new_slot_id();
        ctx.pools.add_creating(key, &slot, fingerprint.clone());
        tokio::spawn(make_slot(
            Arc::clone(ctx),
            docker.clone(),
            key.clone(),
            spec.clone(),
            slot,
        ));
    }
    ctx.pools.misses_reported(key, decision.misses_reported);

    let mut requeue = decision.requeue_after;
    if decision.status != stored {
        // A claim shows at once (whoever waits for the pool to be full again must not
        // see it full before the claim); refill progress is written at most every 100 ms.
        let claims = |s: &SandboxTemplateStatus| s.pool.as_ref().map(|p| (p.claimed, p.missed));
        let urgent = claims(&decision.status) != claims(&stored);
        match ctx.pools.status_write_due(key, urgent) {
            Ok(()) => {
                let value = serde_json::to_value(&decision.status).map_err(|e| invalid(key, e))?;
                ctx.store
                    .update_status(key, &obj.metadata.resource_version, value)
                    .await?;
            }
            Err(wait) => requeue = Some(requeue.map_or(wait, |r| r.min(wait))),
        }
    }
    let involved = InvolvedObject {
        kind: Kind::SandboxTemplate.as_str().into(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: obj.metadata.uid.clone(),
    };
    for (type_, reason, message) in decision.events {
        ctx.store
            .record_event(NewEvent {
                involved: involved.clone(),
                type_,
                reason: reason.into(),
                message,
            })
            .await?;
    }
    Ok(requeue)
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
    let made = match make_services(&docker, &services, &placement).await {
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
async fn remove_slot(ctx: &Context, docker: &DockerRuntime, key: &ObjectKey, slot: &str) {
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

/// Removes a deleted template's pool.
pub async fn drain(ctx: &Context, docker: &DockerRuntime, key: &ObjectKey) {
    let slots = ctx.pools.drop_template(key);
    if !slots.is_empty() {
        info!(template = %key, slots = slots.len(), "removing the warm pool of a deleted template");
    }
    for slot in slots {
        remove_slot(ctx, docker, key, &slot).await;
    }
}

/// Rebuilds the registry at start-up: the slots Docker still holds (unless a Sandbox
/// claimed them) are watched again; what Sandboxes claimed is never reused.
pub async fn rebuild(ctx: &Context, docker: &DockerRuntime) -> Result<(), ControllerError> {
    let selector = [
        (keys::LABEL_INSTANCE, ctx.store.instance_id()),
        (keys::LABEL_KIND, Kind::Sandbox.as_str()),
    ];
    let containers = docker.list(&selector).await?;
    let (sandboxes, _) = ctx.store.list(Kind::Sandbox, None).await?;
    for sb in &sandboxes {
        let status: SandboxStatus = serde_json::from_value(sb.status.clone()).unwrap_or_default();
        if let Some(claim) = status.claimed_from {
            let ns = sb.metadata.namespace.clone().unwrap_or_default();
            ctx.pools
                .note_claimed(&ns, &claim.template, &claim.slot, &sb.metadata.uid);
        }
    }
    let claimed = ctx.pools.claimed_slots();
    let mut slots: BTreeMap<(String, String, String), Vec<crate::runtime::ContainerInfo>> =
        BTreeMap::new();
    for c in containers {
        if !c.name.starts_with(POOL_PREFIX) {
            continue;
        }
        let label = |k| c.label(k).unwrap_or_default().to_string();
        let id = (
            label(keys::LABEL_WORKSPACE),
            label(keys::LABEL_POOL),
            label(keys::LABEL_SLOT),
        );
        if !claimed.contains_key(&id) {
            slots.entry(id).or_default().push(c);
        }
    }
    for ((ns, template, slot), containers) in slots {
        let key = ObjectKey::new(Kind::SandboxTemplate, &ns, &template);
        let fingerprint: Fingerprint = containers
            .iter()
            .map(|c| {
                (
                    c.label(keys::LABEL_SERVICE).unwrap_or_default().to_string(),
                    c.label(LABEL_SPEC_HASH).unwrap_or_default().to_string(),
                )
            })
            .collect();
        let contents = if containers
            .iter()
            .all(|c| c.state == ContainerState::Running)
        {
            let mut made = Vec::new();
            for c in &containers {
                made.push(SlotContainer {
                    service: c.label(keys::LABEL_SERVICE).unwrap_or_default().to_string(),
                    id: c.id.clone(),
                    name: c.name.clone(),
                    ports: docker.published_ports(&c.id).await?,
                });
            }
            Ok(made)
        } else {
            Err("a container of it stopped while orcaops was not running".to_string())
        };
        debug!(%key, %slot, "found a pooled sandbox");
        let ok = contents.is_ok();
        ctx.pools.add_existing(&key, &slot, fingerprint, contents);
        if ok {
            // Probe again before it may be claimed; the template's spec tells how.
            let template = ctx.store.get(&key).await?;
            let spec: Option<SandboxTemplateSpec> =
                template.and_then(|t| serde_json::from_value(t.spec).ok());
            let targets = containers
                .iter()
                .map(|c| {
                    let service = c.label(keys::LABEL_SERVICE).unwrap_or_default();
                    Target {
                        service: service.to_string(),
                        container_id: c.id.clone(),
                        probe: spec
                            .as_ref()
                            .and_then(|s| s.services.iter().find(|s| s.name == service))
                            .and_then(|s| probe_spec(s.health_check.as_ref())),
                    }
                })
                .collect();
            ctx.sandboxes.monitors.ensure(
                &slot_monitor_id(&key, &slot),
                &key,
                targets,
                |_| false,
                docker,
                &ctx.queue,
            );
        }
    }
    Ok(())
}
