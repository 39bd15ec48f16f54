//! Claiming a ready sandbox from a template's warm pool: the fast path of a new
//! Sandbox. The slot comes from the in-memory registry (no Docker list), its containers
//! are renamed to the sandbox's own names (one quick Docker call each, all at once),
//! and the status is written (phase Ready, `claimedFrom`). A container still under its
//! pool name is found through `status.claimedFrom` and renamed by the next reconcile.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use tracing::{debug, warn};

use super::decide::{ClaimedSlot, claimed_status};
use crate::controller::event;
use crate::controller::reconcile::{involved, write_status};
use crate::controller::template::{fingerprint, sizing::desired_size};
use crate::controller::{Context, ControllerError};
use crate::resources::sandbox::{
    EffectiveSandbox, SandboxNetwork, SandboxPhase, SandboxSpec, SandboxState, SandboxStatus,
    SandboxTemplateSpec,
};
use crate::resources::{Kind, Object, ObjectKey};
use crate::runtime::DockerRuntime;
use crate::runtime::sandbox::names::{child_name, pool_base, sandbox_base};

/// Claims a ready slot for a new poolable Sandbox. `Some(requeue)` when it did (the
/// reconcile is over), `None` when the sandbox must start cold (a miss is counted when
/// the template has a pool).
pub(super) async fn try_claim(
    ctx: &Arc<Context>,
    docker: &DockerRuntime,
    obj: &Object,
    spec: &SandboxSpec,
    status: &SandboxStatus,
    template: Option<&SandboxTemplateSpec>,
    effective: &EffectiveSandbox,
) -> Result<Option<Option<Duration>>, ControllerError> {
    let fresh = matches!(status.phase, None | Some(SandboxPhase::Pending));
    let (Some(template), Some(template_name)) = (template, spec.template_ref.as_deref()) else {
        return Ok(None);
    };
    if !fresh
        || spec.state != SandboxState::Running
        || !effective.poolable
        || desired_size(template.warm_pool.as_ref(), 0) == 0
    {
        return Ok(None);
    }
    let key = obj.key();
    let meta = &obj.metadata;
    let tkey = ObjectKey::new(Kind::SandboxTemplate, &key.namespace, template_name);
    let fingerprint = fingerprint(&effective.services, effective.network);
    let now = Utc::now();
    // Until the claim is written (renames and the status included): what a claimer waits.
    let started = std::time::Instant::now();
    let claimed = ctx
        .pools
        .claim(&tkey, &fingerprint, &meta.uid, &ctx.sandboxes.monitors, now);
    // A claim, hit or miss, is news for the pool: refill, grow, report.
    ctx.queue.add(tkey.clone());
    let Some(claimed) = claimed else {
        debug!(template = template_name, "warm pool empty; starting cold");
        ctx.metrics.warm_pool_claimed(false, started.elapsed());
        return Ok(None);
    };
    let base = sandbox_base(meta);
    let slot = ClaimedSlot {
        template: template_name.to_string(),
        slot: claimed.slot.clone(),
        network: (effective.network == SandboxNetwork::Private)
            .then(|| pool_base(&key.namespace, template_name, &claimed.slot)),
        services: claimed
            .containers
            .iter()
            .map(|c| {
                (
                    c.service.clone(),
                    child_name(&base, &c.service),
                    c.ports.clone(),
                )
            })
            .collect(),
    };
    // The containers take the sandbox's names before the status says Ready, so an
    // agent that execs the moment it sees Ready finds them by the names it reads.
    let renames = join_all(claimed.containers.iter().map(|c| {
        let to = child_name(&base, &c.service);
        async move { (c, docker.rename_container(&c.id, &to).await) }
    }))
    .await;
    if let Some((c, Err(e))) = renames.iter().find(|(_, r)| r.is_err()) {
        warn!(container = %c.name, error = %e, "cannot rename a claimed container; starting cold");
        // Half renamed: neither the pool nor the sandbox can use it as it is.
        for (c, _) in &renames {
            let _ = docker.remove(&c.id).await;
        }
        ctx.pools.unclaim(&tkey, fingerprint, claimed);
        return Ok(None);
    }
    let (new_status, events) = claimed_status(meta, effective, &slot, now);
    if let Err(e) = write_status(ctx, &key, obj, &new_status).await {
        // Not recorded: the retry starts anew. The slot goes back as broken, so its
        // network and volumes are removed with it.
        for c in &claimed.containers {
            let _ = docker.remove(&c.id).await;
        }
        ctx.pools.unclaim(&tkey, fingerprint, claimed);
        return Err(e);
    }
    ctx.metrics.warm_pool_claimed(true, started.elapsed());
    debug!(slot = %slot.slot, "claimed a warm-pool sandbox");
    event::record(ctx, &involved(&key, obj), events).await?;
    // Look again at once: the monitor, expiry and the rest of the status follow.
    Ok(Some(Some(Duration::ZERO)))
}
