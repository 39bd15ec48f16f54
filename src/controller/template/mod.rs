//! The SandboxTemplate controller: keeps each template's warm pool of ready sandboxes
//! ("slots") at the size [`sizing`] decides, and shows its depth in `status.pool`.
//!
//! Slots are made in background tasks (the reconcile only registers them), watched by
//! a monitor like any sandbox, and claimed by Sandboxes through the registry
//! ([`pool::Pools`]). A slot belongs to no Sandbox until claimed; its Docker objects
//! are named `orcaops-pool-<ns>-<template>-<slot>[-<service>|-<volume>]`.

mod act;
mod cluster;
pub mod pool;
pub mod sizing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info};

use super::reconcile::{Decision, Fate, Observation, Reconciler, invalid};
use super::sandbox::monitor::Target;
use super::{Context, ControllerError};
use crate::resources::sandbox::{
    SandboxNetwork, SandboxService, SandboxStatus, SandboxTemplateSpec, SandboxTemplateStatus,
};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::runtime::sandbox::names::{LABEL_SPEC_HASH, POOL_PREFIX, probe_spec, service_hash};
use crate::runtime::{ContainerState, DockerRuntime};

pub use act::PoolAction;
use act::remove_slot;
pub use cluster::{NO_POOL_ON_A_CLUSTER, NoPoolReconciler};
use pool::{Counters, PoolSnapshot, SlotContainer, slot_monitor_id};
pub use pool::{Fingerprint, Pools};

/// A stored template's spec.
pub(super) fn spec_of(obj: &Object) -> Result<SandboxTemplateSpec, ControllerError> {
    serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(&obj.key(), e))
}

/// What a pool slot (or a claim) must match: each service's hash.
pub fn fingerprint(services: &[SandboxService], network: SandboxNetwork) -> Fingerprint {
    services
        .iter()
        .map(|s| (s.name.clone(), service_hash(s, network)))
        .collect()
}

/// The SandboxTemplate controller where warm pools run (Docker).
pub struct PoolReconciler<'a> {
    pub docker: &'a DockerRuntime,
}

/// What the pool's sizing needs, read by the observe step.
pub struct PoolObserved {
    spec: SandboxTemplateSpec,
    stored: SandboxTemplateStatus,
    fingerprint: Fingerprint,
    snapshot: PoolSnapshot,
    generation: i64,
    now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl Reconciler for PoolReconciler<'_> {
    const FINALIZER: bool = false;
    type Observed = PoolObserved;
    type Action = PoolAction;
    type Status = SandboxTemplateStatus;
    type Hints = ();

    async fn observe(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        stored: &SandboxTemplateStatus,
    ) -> Result<Observation<PoolObserved>, ControllerError> {
        let key = obj.key();
        let spec = spec_of(obj)?;
        let counters = stored
            .pool
            .as_ref()
            .map_or_else(Counters::default, |p| Counters {
                claimed: p.claimed,
                missed: p.missed,
                last_claim_time: p.last_claim_time,
            });
        ctx.pools.seed(&key, counters);
        let network = spec.network.unwrap_or_default();
        let fingerprint = fingerprint(&spec.services, network);
        let now = Utc::now();
        let snapshot = ctx.pools.snapshot(&key, &ctx.sandboxes.monitors, now);
        if snapshot.failures_in_a_row > 0
            && snapshot
                .slots
                .iter()
                .any(|s| s.state == sizing::SlotState::Ready)
        {
            ctx.pools.succeeded(&key);
        }
        Ok(Observation::Ready(PoolObserved {
            spec,
            stored: stored.clone(),
            fingerprint,
            snapshot,
            generation: obj.metadata.generation,
            now,
        }))
    }

    fn decide(obs: &PoolObserved) -> Decision<PoolAction, SandboxTemplateStatus> {
        let d = sizing::decide(
            obs.spec.warm_pool.as_ref(),
            &obs.fingerprint,
            &obs.snapshot,
            &obs.stored,
            obs.generation,
            obs.now,
        );
        let mut actions: Vec<PoolAction> = d
            .remove
            .into_iter()
            .map(|(slot, why)| PoolAction::Remove { slot, why })
            .collect();
        actions.extend((0..d.start).map(|_| PoolAction::Start));
        if d.misses_reported > 0 {
            actions.push(PoolAction::MissesReported(d.misses_reported));
        }
        Decision {
            actions,
            status: d.status,
            events: d.events,
            requeue_after: d.requeue_after,
            status_first: false,
            fate: Fate::Keep,
            hints: (),
        }
    }

    async fn act(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &mut PoolObserved,
        actions: Vec<PoolAction>,
        _status: &SandboxTemplateStatus,
    ) -> Result<bool, ControllerError> {
        act::act(ctx, self.docker, &obj.key(), observed, actions);
        Ok(false)
    }

    async fn gone(&self, ctx: &Arc<Context>, key: &ObjectKey) {
        drain(ctx, self.docker, key).await;
    }

    fn status_write_due(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        stored: &SandboxTemplateStatus,
        status: &SandboxTemplateStatus,
    ) -> Result<(), Duration> {
        // A claim shows at once (whoever waits for the pool to be full again must not
        // see it full before the claim); refill progress is written at most every 100 ms.
        let claims = |s: &SandboxTemplateStatus| s.pool.as_ref().map(|p| (p.claimed, p.missed));
        ctx.pools
            .status_write_due(key, claims(status) != claims(stored))
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
