//! The Sandbox controller: observe (the Sandbox, its template, its containers by name,
//! the monitor's verdicts, its activity), decide (pure, [`decide`]), act (idempotent
//! Docker calls), then one status write. A Sandbox naming a template with a warm pool
//! first tries to claim a ready pooled sandbox ([`claim`]).

mod claim;
pub mod cleanup;
pub mod decide;
pub mod make;
pub mod monitor;
pub mod names;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use tracing::{debug, info, instrument, warn};

use crate::resources::sandbox::{
    EffectiveSandbox, SandboxSpec, SandboxStatus, SandboxTemplateSpec, effective,
};
use crate::resources::{Kind, Object, ObjectKey};
use crate::runtime::{ContainerInfo, ContainerState, RuntimeError};
use crate::store::{EventType, InvolvedObject, NewEvent, StoreError};

use super::{Context, ControllerError};
use decide::{Activity, Decision, Observed, SandboxAction, ServiceObserved, decide};
use make::{Placement, make_services};
use monitor::{Monitors, Target};
use names::{Owner, child_name, owner_labels, pool_base, probe_spec, sandbox_base, storage_base};

/// How long a stopping container gets between SIGTERM and SIGKILL.
pub const STOP_GRACE_SECS: u32 = 5;

/// What the Sandbox controller keeps in memory: the monitors, and which Sandbox a uid
/// is (so activity, reported by uid, can wake it).
#[derive(Default)]
pub struct Tracker {
    pub monitors: Monitors,
    keys: Arc<Mutex<HashMap<String, ObjectKey>>>,
}

impl Tracker {
    pub(crate) fn keys(&self) -> Arc<Mutex<HashMap<String, ObjectKey>>> {
        Arc::clone(&self.keys)
    }

    fn remember(&self, uid: &str, key: &ObjectKey) {
        let mut keys = self.keys.lock().expect("sandbox keys lock");
        if !keys.contains_key(uid) {
            keys.insert(uid.to_string(), key.clone());
        }
    }

    pub(crate) fn forget(&self, uid: &str) {
        self.keys.lock().expect("sandbox keys lock").remove(uid);
        self.monitors.stop(uid);
    }
}

pub(super) fn invalid(key: &ObjectKey, e: serde_json::Error) -> ControllerError {
    ControllerError::InvalidObject {
        key: key.clone(),
        message: e.to_string(),
    }
}

fn status_of(key: &ObjectKey, obj: &Object) -> Result<SandboxStatus, ControllerError> {
    if obj.status.is_null() {
        Ok(SandboxStatus::default())
    } else {
        serde_json::from_value(obj.status.clone()).map_err(|e| invalid(key, e))
    }
}

/// The Sandbox's template, read fresh: `Err(name)` when it names one that is missing.
async fn template_of(
    ctx: &Context,
    key: &ObjectKey,
    spec: &SandboxSpec,
) -> Result<Result<Option<SandboxTemplateSpec>, String>, ControllerError> {
    let Some(name) = &spec.template_ref else {
        return Ok(Ok(None));
    };
    let tkey = ObjectKey::new(Kind::SandboxTemplate, &key.namespace, name);
    match ctx.store.get(&tkey).await? {
        Some(t) => {
            let spec = serde_json::from_value(t.spec.clone()).map_err(|e| invalid(&tkey, e))?;
            Ok(Ok(Some(spec)))
        }
        None => Ok(Err(name.clone())),
    }
}

/// Reconciles one Sandbox; returns when to look at it again.
#[instrument(skip(ctx), fields(kind = "Sandbox", namespace = %key.namespace, name = %key.name))]
pub async fn reconcile(
    ctx: &Arc<Context>,
    key: &ObjectKey,
) -> Result<Option<Duration>, ControllerError> {
    let Some(obj) = ctx.store.get(key).await? else {
        return Ok(None);
    };
    let uid = obj.metadata.uid.clone();
    ctx.sandboxes.remember(&uid, key);
    let spec: SandboxSpec =
        serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(key, e))?;
    let status = status_of(key, &obj)?;
    let (template, template_missing) = match template_of(ctx, key, &spec).await? {
        Ok(t) => (t, None),
        Err(name) => (None, Some(name)),
    };
    let effective = effective(&spec, template.as_ref());
    if let Some(requeue) =
        claim::try_claim(ctx, &obj, &spec, &status, template.as_ref(), &effective).await?
    {
        return Ok(requeue);
    }

    let mut observed = observe(
        ctx,
        &obj,
        &spec,
        status.clone(),
        effective,
        template_missing,
    )
    .await?;
    let mut decision = decide(&observed);
    if decision.count_processes {
        observed.activity.background = Some(count_processes(ctx, &observed).await?);
        decision = decide(&observed);
    }
    let mut events = Vec::new();
    let mut written = false;
    let mut deleted = false;
    for pass in 0..3 {
        deleted = decision.actions.contains(&SandboxAction::DeleteSandbox);
        if decision.status_first || deleted {
            // Stopping takes seconds: what was decided (Stopping, Expired, and why)
            // is recorded before it starts.
            if decision.status_first {
                write_status(ctx, key, &obj, &decision.status).await?;
                written = true;
            }
            events.append(&mut decision.events);
            record_events(ctx, key, &uid, std::mem::take(&mut events)).await?;
        }
        let acted = act(ctx, &obj, &mut observed, &decision).await?;
        events.append(&mut decision.events);
        if deleted || decision.status_first || !acted || pass == 2 {
            break;
        }
        // What was just made or started is known now: decide again with it, so a cold
        // start is Ready in one reconcile and one status write.
        observed.status = decision.status.clone();
        observed.now = Utc::now();
        decision = decide(&observed);
    }
    if !deleted && !written && decision.status != status {
        write_status(ctx, key, &obj, &decision.status).await?;
    }
    record_events(ctx, key, &uid, events).await?;
    if deleted {
        return Ok(None);
    }
    if decision.watch {
        watch(ctx, key, &uid, &observed, &decision.status);
    } else {
        ctx.sandboxes.monitors.stop(&uid);
    }
    Ok(decision.requeue_after)
}

async fn write_status(
    ctx: &Context,
    key: &ObjectKey,
    obj: &Object,
    status: &SandboxStatus,
) -> Result<(), ControllerError> {
    let value = serde_json::to_value(status).map_err(|e| invalid(key, e))?;
    ctx.store
        .update_status(key, &obj.metadata.resource_version, value)
        .await?;
    Ok(())
}

async fn record_events(
    ctx: &Context,
    key: &ObjectKey,
    uid: &str,
    events: Vec<(EventType, &'static str, String)>,
) -> Result<(), ControllerError> {
    let involved = InvolvedObject {
        kind: Kind::Sandbox.as_str().into(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: uid.to_string(),
    };
    for (type_, reason, message) in events {
        debug!(reason, %message, "sandbox event");
        ctx.store
            .record_event(NewEvent {
                involved: involved.clone(),
                type_,
                reason: reason.into(),
                message,
            })
            .await?;
    }
    Ok(())
}

async fn observe(
    ctx: &Context,
    obj: &Object,
    spec: &SandboxSpec,
    status: SandboxStatus,
    effective: EffectiveSandbox,
    template_missing: Option<String>,
) -> Result<Observed, ControllerError> {
    let meta = &obj.metadata;
    let base = sandbox_base(meta);
    let mut names: Vec<String> = effective.services.iter().map(|s| s.name.clone()).collect();
    for s in &status.services {
        if !names.contains(&s.name) {
            names.push(s.name.clone());
        }
    }
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
            if let Some(c) = ctx.runtime().inspect(&own).await? {
                return Ok::<_, RuntimeError>(Some((c, false)));
            }
            match pooled {
                Some(pooled) => Ok(ctx.runtime().inspect(&pooled).await?.map(|c| (c, true))),
                None => Ok(None),
            }
        }
    }))
    .await;
    let mut services = BTreeMap::new();
    for (name, found) in names.into_iter().zip(found) {
        let mut observed = ServiceObserved::default();
        if let Some((container, pool_named)) = found? {
            let declares_ports = effective
                .services
                .iter()
                .any(|s| s.name == name && !s.ports.is_empty());
            if container.state == ContainerState::Running && declares_ports {
                observed.ports = ctx.runtime().published_ports(&container.id).await?;
            }
            observed.probe_ready =
                ctx.sandboxes
                    .monitors
                    .verdict_for(&meta.uid, &name, &container.id);
            observed.pool_named = pool_named;
            observed.container = Some(container);
        }
        services.insert(name, observed);
    }
    Ok(Observed {
        meta: meta.clone(),
        state: spec.state,
        effective,
        template_missing,
        shown_phase: status.phase,
        status,
        services,
        activity: Activity {
            last: ctx.activity.last(&meta.uid),
            busy: ctx.activity.busy(&meta.uid),
            background: None,
        },
        now: Utc::now(),
    })
}

/// Processes started by an exec that still run, over every running service.
async fn count_processes(ctx: &Context, observed: &Observed) -> Result<usize, ControllerError> {
    let running: Vec<&ContainerInfo> = observed
        .services
        .values()
        .filter_map(|s| s.container.as_ref())
        .filter(|c| c.state == ContainerState::Running)
        .collect();
    let counts = join_all(running.iter().map(|c| ctx.runtime().exec_processes(&c.id))).await;
    let mut total = 0;
    for count in counts {
        match count {
            Ok(n) => total += n,
            // Stopped or gone in between: nothing runs in it.
            Err(
                RuntimeError::ContainerNotFound { .. } | RuntimeError::ContainerNotRunning { .. },
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

/// Runs the decision's actions, updating `observed` with what they did. Returns
/// whether any container was made, started, renamed or removed.
async fn act(
    ctx: &Arc<Context>,
    obj: &Object,
    observed: &mut Observed,
    decision: &Decision,
) -> Result<bool, ControllerError> {
    let key = obj.key();
    let meta = &obj.metadata;
    let mut acted = false;
    for action in &decision.actions {
        match action {
            SandboxAction::Create { services } => {
                acted = true;
                let labels = owner_labels(Owner::Sandbox(meta), ctx.store.instance_id());
                let storage = storage_base(meta, observed.status.claimed_from.as_ref());
                let wanted: Vec<_> = observed
                    .effective
                    .services
                    .iter()
                    .filter(|s| services.contains(&s.name))
                    .collect();
                let placement = Placement {
                    container_base: &sandbox_base(meta),
                    storage_base: &storage,
                    network: observed.effective.network,
                    labels: &labels,
                };
                debug!(services = ?services, "making service containers");
                let made = make_services(ctx.runtime(), &wanted, &placement).await?;
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
            }
            SandboxAction::Start {
                service,
                container_id,
            } => {
                acted = true;
                let entry = observed.services.entry(service.clone()).or_default();
                match ctx.runtime().start_container(container_id).await {
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
                            entry.ports = ctx.runtime().published_ports(container_id).await?;
                        }
                    }
                    // Gone in between: it is made again on the next pass.
                    Err(RuntimeError::ContainerNotFound { .. }) => entry.container = None,
                    Err(e) => return Err(e.into()),
                }
            }
            SandboxAction::Remove {
                service,
                container_id,
            } => {
                acted = true;
                ctx.runtime().remove(container_id).await?;
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
            }
            SandboxAction::Rename { container_id, to } => {
                acted = true;
                ctx.runtime().rename_container(container_id, to).await?;
                for entry in observed.services.values_mut() {
                    if let Some(c) = entry.container.as_mut().filter(|c| &c.id == container_id) {
                        c.name = to.clone();
                        entry.pool_named = false;
                    }
                }
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
                        .map(|id| ctx.runtime().stop(id, STOP_GRACE_SECS)),
                )
                .await;
                for result in stopped {
                    result?;
                }
            }
            SandboxAction::DeleteSandbox => {
                info!(reason = "expired", "deleting sandbox");
                match ctx.store.delete(&key).await {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(acted)
}

/// Hands the running containers to the sandbox's monitor.
fn watch(
    ctx: &Arc<Context>,
    key: &ObjectKey,
    uid: &str,
    observed: &Observed,
    status: &SandboxStatus,
) {
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
        .ensure(uid, key, targets, seed, ctx.runtime(), &ctx.queue);
}
