//! The Sandbox controller: observe (the Sandbox, its template, its services' containers
//! and their health, its activity), decide (pure, [`decide`]), act (idempotent runtime
//! calls), run by [`crate::controller::reconcile::drive`]. What runs the services is a
//! [`SandboxRuntime`]: Docker ([`docker`]) or a pod per sandbox on a cluster ([`pods`]);
//! its `act` is this controller's act. A Sandbox naming a template with a warm pool
//! first tries to claim a ready pooled sandbox ([`claim`]) while it is observed.

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

use crate::resources::sandbox::{
    EffectiveSandbox, SandboxPhase, SandboxSpec, SandboxStatus, SandboxTemplateSpec, effective,
};
use crate::resources::{Kind, Object, ObjectKey};

use super::blocked;
use super::reconcile::{Cleanup, Observation, Reconciler, invalid, write_status};
use super::workspace::{admission, quota};
use super::{Context, ControllerError};
use decide::{Activity, Decision, Hints, Observed, SandboxAction};
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

/// The Sandbox controller, for [`crate::controller::reconcile::drive`].
pub struct SandboxReconciler;

#[async_trait::async_trait]
impl Reconciler for SandboxReconciler {
    // On a cluster the Sandbox keeps a finalizer, so that its deletion waits for its
    // pod, Service and volumes to be removed.
    const FINALIZER: bool = true;
    type Observed = Observed;
    type Action = SandboxAction;
    type Status = SandboxStatus;
    type Hints = Hints;

    async fn observe(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        stored: &SandboxStatus,
    ) -> Result<Observation<Observed>, ControllerError> {
        let key = obj.key();
        ctx.sandboxes.remember(&obj.metadata.uid, &key);
        let spec: SandboxSpec =
            serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(&key, e))?;
        let (template, template_missing) = match template_of(ctx, &key, &spec).await? {
            Ok(t) => (t, None),
            Err(name) => (None, Some(name)),
        };
        if let Some(recheck) = admit(ctx, obj, &spec, stored).await? {
            return Ok(Observation::Settled(Some(recheck)));
        }
        let effective = effective(&spec, template.as_ref());
        if let Some(docker) = ctx.sandbox_runtime().warm_pools()
            && let Some(requeue) = claim::try_claim(
                ctx,
                docker,
                obj,
                &spec,
                stored,
                template.as_ref(),
                &effective,
            )
            .await?
        {
            return Ok(Observation::Settled(requeue));
        }
        let observed =
            observe(ctx, obj, &spec, stored.clone(), effective, template_missing).await?;
        Ok(Observation::Ready(observed))
    }

    fn decide(observed: &Observed) -> Decision {
        decide::decide(observed)
    }

    async fn act(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &mut Observed,
        actions: Vec<SandboxAction>,
        status: &SandboxStatus,
    ) -> Result<bool, ControllerError> {
        // Room is held from the start until the sandbox is stopped or ends.
        if matches!(
            status.phase,
            Some(SandboxPhase::Stopped | SandboxPhase::Failed | SandboxPhase::Expired)
        ) {
            ctx.admitted.release(&obj.metadata.uid);
        }
        let mut acted = false;
        for action in &actions {
            acted |= ctx
                .sandbox_runtime()
                .act(ctx, obj, observed, action)
                .await?;
        }
        if acted {
            // What was just made or started is known now: decide again with it, so a
            // cold start is Ready in one reconcile and one status write.
            observed.status = status.clone();
            observed.now = Utc::now();
        }
        Ok(acted)
    }

    async fn cleanup(&self, ctx: &Arc<Context>, obj: &Object) -> Result<Cleanup, ControllerError> {
        ctx.sandbox_runtime().remove_deleted(ctx, obj).await?;
        Ok(Cleanup::Finished)
    }

    async fn complete(
        &self,
        ctx: &Arc<Context>,
        observed: &mut Observed,
        decision: &Decision,
    ) -> Result<bool, ControllerError> {
        if !decision.hints.count_processes {
            return Ok(false);
        }
        observed.activity.background = Some(ctx.sandbox_runtime().count_processes(observed).await?);
        Ok(true)
    }

    fn after_status(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &Observed,
        decision: &Decision,
    ) -> Option<Duration> {
        let uid = &obj.metadata.uid;
        if decision.hints.watch {
            ctx.sandbox_runtime()
                .watch(ctx, &obj.key(), uid, observed, &decision.status)
        } else {
            ctx.sandbox_runtime().unwatch(ctx, uid);
            None
        }
    }
}

/// How long a Sandbox refused by quota waits, if nothing wakes it, before it looks again.
const QUOTA_RECHECK: Duration = Duration::from_secs(30);

/// Asks the workspace for room when the sandbox is to start. Refused, the status says
/// why (written here) and the reconcile ends: returns when to look again.
async fn admit(
    ctx: &Context,
    obj: &Object,
    spec: &SandboxSpec,
    stored: &SandboxStatus,
) -> Result<Option<Duration>, ControllerError> {
    let Some(ns) = obj.metadata.namespace.as_deref() else {
        return Ok(None);
    };
    if !admission::sandbox_wants_to_start(&obj.metadata, spec, stored) {
        return Ok(None);
    }
    if let Some(review) = blocked::refusal(ctx, obj).await? {
        let mut status = stored.clone();
        blocked::sandbox_blocked(&mut status, &review.refusal_message(obj), Utc::now());
        blocked::record(ctx, &review, obj, !blocked::sandbox_is_blocked(stored));
        if status != *stored {
            write_status(ctx, &obj.key(), obj, &status).await?;
        }
        return Ok(Some(blocked::RECHECK));
    }
    if !admission::enforced(ctx) {
        return Ok(None);
    }
    let Some(workspace) = admission::workspace_of(ctx, ns).await? else {
        return Ok(None);
    };
    if workspace.limits.is_empty() {
        return Ok(None);
    }
    let defaults = workspace.defaults();
    let applicant = quota::Applicant {
        uid: &obj.metadata.uid,
        name: &obj.metadata.name,
        created: obj.metadata.creation_timestamp.unwrap_or_default(),
        what: "sandbox",
        demand: admission::sandbox_demand(spec, defaults.resources.as_ref()),
    };
    let Err(refusal) = admission::admit(ctx, &workspace, &applicant).await? else {
        return Ok(None);
    };
    let mut status = stored.clone();
    admission::sandbox_refused(&mut status, &refusal.message, Utc::now());
    if status != *stored {
        write_status(ctx, &obj.key(), obj, &status).await?;
    }
    Ok(Some(
        refusal
            .retry_after
            .unwrap_or(QUOTA_RECHECK)
            .min(QUOTA_RECHECK),
    ))
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
