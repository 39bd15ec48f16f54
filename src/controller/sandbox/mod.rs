//! The Sandbox controller: observe (the Sandbox, its template, its services' containers
//! and their health, its activity), decide (pure, [`decide`]), act (idempotent runtime
//! calls), then one status write. What runs the services is a [`SandboxRuntime`]:
//! Docker ([`docker`]) or a pod per sandbox on a cluster ([`pods`]). A Sandbox naming a template with a warm pool
//! first tries to claim a ready pooled sandbox ([`claim`]).

mod claim;
pub mod cleanup;
pub mod decide;
mod docker;
pub mod make;
pub mod monitor;
mod pods;
pub mod runtime;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tracing::{debug, info, instrument};

use crate::resources::sandbox::{
    EffectiveSandbox, SandboxSpec, SandboxStatus, SandboxTemplateSpec, effective,
};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::store::{EventType, InvolvedObject, NewEvent, StoreError};

use super::{Context, ControllerError};
use decide::{Activity, Decision, Observed, SandboxAction, decide};
use monitor::Monitors;
pub use runtime::SandboxRuntime;

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
    let Some(mut obj) = ctx.store.get(key).await? else {
        return Ok(None);
    };
    let uid = obj.metadata.uid.clone();
    if ctx.finalizers {
        // On a cluster the Sandbox keeps a finalizer, so that its deletion waits for its
        // pod, Service and volumes to be removed.
        if obj.metadata.deletion_timestamp.is_some() {
            if obj.metadata.finalizers.iter().any(|f| f == keys::FINALIZER) {
                ctx.sandbox_runtime().remove_deleted(ctx, &obj).await?;
                info!("cleaned up after deletion; letting the sandbox go");
                ctx.store.remove_finalizer(key, keys::FINALIZER).await?;
            }
            return Ok(None);
        }
        if !obj.metadata.finalizers.iter().any(|f| f == keys::FINALIZER) {
            ctx.store.add_finalizer(key, keys::FINALIZER).await?;
            let Some(fresh) = ctx.store.get(key).await? else {
                return Ok(None);
            };
            obj = fresh;
        }
    }
    ctx.sandboxes.remember(&uid, key);
    let spec: SandboxSpec =
        serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(key, e))?;
    let status = status_of(key, &obj)?;
    let (template, template_missing) = match template_of(ctx, key, &spec).await? {
        Ok(t) => (t, None),
        Err(name) => (None, Some(name)),
    };
    let effective = effective(&spec, template.as_ref());
    if let Some(docker) = ctx.sandbox_runtime().warm_pools()
        && let Some(requeue) = claim::try_claim(
            ctx,
            docker,
            &obj,
            &spec,
            &status,
            template.as_ref(),
            &effective,
        )
        .await?
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
        observed.activity.background =
            Some(ctx.sandbox_runtime().count_processes(&observed).await?);
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
    let mut requeue = decision.requeue_after;
    if decision.watch {
        let look_again = ctx
            .sandbox_runtime()
            .watch(ctx, key, &uid, &observed, &decision.status);
        if let Some(poll) = look_again {
            requeue = Some(requeue.map_or(poll, |r| r.min(poll)));
        }
    } else {
        ctx.sandbox_runtime().unwatch(ctx, &uid);
    }
    Ok(requeue)
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
    let mut names: Vec<String> = effective.services.iter().map(|s| s.name.clone()).collect();
    for s in &status.services {
        if !names.contains(&s.name) {
            names.push(s.name.clone());
        }
    }
    let services = ctx
        .sandbox_runtime()
        .observe_services(ctx, obj, &effective, &status, &names)
        .await?;
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

/// Runs the decision's actions, updating `observed` with what they did. Returns
/// whether any container was made, started, renamed or removed.
async fn act(
    ctx: &Arc<Context>,
    obj: &Object,
    observed: &mut Observed,
    decision: &Decision,
) -> Result<bool, ControllerError> {
    let key = obj.key();
    let mut acted = false;
    for action in &decision.actions {
        if *action == SandboxAction::DeleteSandbox {
            info!(reason = "expired", "deleting sandbox");
            match ctx.store.delete(&key).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            continue;
        }
        acted |= ctx
            .sandbox_runtime()
            .act(ctx, obj, observed, action)
            .await?;
    }
    Ok(acted)
}
