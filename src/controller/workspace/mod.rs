//! The Workspace controller, and quota admission for the Jobs and Sandboxes of a
//! workspace (a namespace is a workspace). Observe reads the Workspace and what its
//! members hold ([`admission`]); decide ([`decide`], pure) writes `status.usage`
//! against each quota, the member count and `Ready`; there is nothing to act on. That is
//! local mode; on a cluster a Workspace owns its tenant ([`tenant`]) and the API server
//! enforces its quotas.

pub mod admission;
pub mod decide;
pub mod quota;
pub mod tenant;
pub mod wake;

use std::sync::Arc;

use chrono::Utc;

use crate::resources::Object;
use crate::resources::workspace::{WorkspaceSpec, WorkspaceStatus};

use super::reconcile::{Observation, Reconciler, invalid};
use super::{Context, ControllerError};
use admission::Workspace;
use decide::{Decision, Observed};

/// The Workspace controller, for [`crate::controller::reconcile::drive`].
pub struct WorkspaceReconciler;

#[async_trait::async_trait]
impl Reconciler for WorkspaceReconciler {
    const FINALIZER: bool = false;
    type Observed = Observed;
    type Action = ();
    type Status = WorkspaceStatus;
    type Hints = ();

    async fn observe(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        stored: &WorkspaceStatus,
    ) -> Result<Observation<Observed>, ControllerError> {
        let key = obj.key();
        let spec: WorkspaceSpec =
            serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(&key, e))?;
        let workspace = Workspace {
            name: obj.metadata.name.clone(),
            limits: spec
                .quotas
                .as_ref()
                .map(quota::Limits::of)
                .unwrap_or_default(),
            spec,
        };
        let now = Utc::now();
        let snapshot = admission::usage_snapshot(ctx, &workspace, now).await?;
        let holding: Vec<&str> = snapshot
            .members
            .iter()
            .filter(|m| m.standing == quota::Standing::Holding)
            .map(|m| m.name.as_str())
            .collect();
        tracing::debug!(
            ?holding,
            admitted = ctx.admitted.len(),
            "workspace usage counted"
        );
        let keys = ctx
            .records
            .api_keys()
            .await?
            .iter()
            .filter(|k| {
                k.workspace.as_deref() == Some(obj.metadata.name.as_str())
                    && k.revoked_at.is_none()
                    && k.expires_at.is_none_or(|at| at > now)
            })
            .count() as u32;
        Ok(Observation::Ready(Observed {
            generation: obj.metadata.generation,
            workspace,
            snapshot,
            status: stored.clone(),
            now,
            keys,
        }))
    }

    fn decide(observed: &Observed) -> Decision {
        decide::decide(observed)
    }

    async fn act(
        &self,
        _ctx: &Arc<Context>,
        _obj: &Object,
        _observed: &mut Observed,
        _actions: Vec<()>,
        _status: &WorkspaceStatus,
    ) -> Result<bool, ControllerError> {
        Ok(false)
    }
}
