//! The Workspace controller on a cluster: a Workspace owns its tenant there (see
//! [`crate::runtime::pod::tenant`]): its Namespace, a ResourceQuota, a LimitRange, a
//! NetworkPolicy that isolates it and a RoleBinding per member. They are applied
//! server-side when the Workspace is new to this operator or its generation moved, and
//! again every [`REAPPLY`] (a no-op write when nothing changed, a repair when someone
//! edited or deleted one), not at every one-minute resync; the quotas are then enforced
//! by the API server itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::controller::event::Event;
use crate::controller::reconcile::{self, Observation, Reconciler, invalid};
use crate::controller::{Context, ControllerError};
use crate::resources::Object;
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::workspace::{WorkspaceConditionType, WorkspaceSpec, WorkspaceStatus};
use crate::runtime::RuntimeError;
use crate::runtime::pod::PodRuntime;
use crate::runtime::pod::tenant::{Applied, Tenant, TenantOwner, build_tenant};

/// How often a tenant is applied again when its Workspace did not change.
pub const REAPPLY: Duration = Duration::from_secs(300);

/// What applies a tenant: the pod runtime's Kubernetes client.
#[async_trait::async_trait]
pub trait TenantRuntime: Send + Sync {
    async fn apply_tenant(&self, tenant: &Tenant) -> Result<Applied, RuntimeError>;
}

#[async_trait::async_trait]
impl TenantRuntime for PodRuntime {
    async fn apply_tenant(&self, tenant: &Tenant) -> Result<Applied, RuntimeError> {
        PodRuntime::apply_tenant(self, tenant).await
    }
}

#[derive(Clone, Debug)]
pub struct Observed {
    pub generation: i64,
    /// Whether the tenant is to be applied: not yet by this process, for another
    /// generation, or [`REAPPLY`] ago.
    pub due: bool,
    pub tenant: Tenant,
    pub members: u32,
    pub status: WorkspaceStatus,
    pub now: DateTime<Utc>,
}

pub type Decision = reconcile::Decision<Box<Tenant>, WorkspaceStatus>;

/// The tenant to apply, and the status that says it is.
pub fn decide(observed: &Observed) -> Decision {
    let tenant = &observed.tenant;
    let mut parts = vec![format!(
        "namespace {}",
        tenant
            .namespace
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
    )];
    if tenant.quota.is_some() {
        parts.push("its ResourceQuota".into());
    }
    if tenant.limits.is_some() {
        parts.push("its LimitRange".into());
    }
    parts.push("its isolating NetworkPolicy".into());
    if !tenant.role_bindings.is_empty() {
        parts.push(format!(
            "{} member RoleBinding(s)",
            tenant.role_bindings.len()
        ));
    }
    let message = format!("applied: {}", parts.join(", "));
    let mut status = observed.status.clone();
    let was_ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == WorkspaceConditionType::Ready && c.message == message);
    status.observed_generation = Some(observed.generation);
    status.members = observed.members;
    set_condition(
        &mut status.conditions,
        WorkspaceConditionType::Ready,
        ConditionStatus::True,
        "TenantApplied",
        &message,
        observed.now,
    );
    Decision {
        actions: if observed.due {
            vec![Box::new(tenant.clone())]
        } else {
            Vec::new()
        },
        status,
        events: if was_ready {
            Vec::new()
        } else {
            vec![Event::normal("TenantApplied", message)]
        },
        requeue_after: Some(REAPPLY),
        status_first: false,
        fate: reconcile::Fate::Keep,
        hints: (),
    }
}

/// The Workspace controller where the runtime applies tenants (a cluster), with what it
/// last applied: per Workspace name, its uid, generation and when.
pub struct Tenants {
    runtime: Arc<dyn TenantRuntime>,
    applied: Mutex<HashMap<String, (String, i64, Instant)>>,
}

impl Tenants {
    pub fn new(runtime: Arc<dyn TenantRuntime>) -> Self {
        Tenants {
            runtime,
            applied: Mutex::default(),
        }
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, i64, Instant)>> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn due(&self, obj: &Object) -> bool {
        self.applied()
            .get(&obj.metadata.name)
            .is_none_or(|(uid, generation, at)| {
                *uid != obj.metadata.uid
                    || *generation != obj.metadata.generation
                    || at.elapsed() >= REAPPLY
            })
    }
}

#[async_trait::async_trait]
impl Reconciler for Tenants {
    const FINALIZER: bool = false;
    type Observed = Observed;
    type Action = Box<Tenant>;
    type Status = WorkspaceStatus;
    type Hints = ();

    async fn observe(
        &self,
        _ctx: &Arc<Context>,
        obj: &Object,
        stored: &WorkspaceStatus,
    ) -> Result<Observation<Observed>, ControllerError> {
        let spec: WorkspaceSpec =
            serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(&obj.key(), e))?;
        let owner = TenantOwner {
            name: obj.metadata.name.clone(),
            uid: obj.metadata.uid.clone(),
        };
        Ok(Observation::Ready(Observed {
            generation: obj.metadata.generation,
            due: self.due(obj),
            members: spec.members.len() as u32,
            tenant: build_tenant(&owner, &spec),
            status: stored.clone(),
            now: Utc::now(),
        }))
    }

    fn decide(observed: &Observed) -> Decision {
        decide(observed)
    }

    async fn act(
        &self,
        _ctx: &Arc<Context>,
        obj: &Object,
        _observed: &mut Observed,
        actions: Vec<Box<Tenant>>,
        _status: &WorkspaceStatus,
    ) -> Result<bool, ControllerError> {
        for tenant in actions {
            let done = self.runtime.apply_tenant(&tenant).await?;
            if !done.removed.is_empty() {
                tracing::info!(workspace = %obj.metadata.name, removed = ?done.removed, "tenant objects no longer declared removed");
            }
            self.applied().insert(
                obj.metadata.name.clone(),
                (
                    obj.metadata.uid.clone(),
                    obj.metadata.generation,
                    Instant::now(),
                ),
            );
        }
        Ok(false)
    }

    async fn gone(&self, _ctx: &Arc<Context>, key: &crate::resources::ObjectKey) {
        self.applied().remove(&key.name);
    }
}

#[cfg(test)]
mod tests;
