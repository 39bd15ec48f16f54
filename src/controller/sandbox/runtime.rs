//! The seam between the Sandbox controller and what runs sandboxes: Docker (a
//! container per service, local mode) or a pod per sandbox (cluster mode). The
//! controller observes through it, hands it the pure decision's actions, and never
//! asks which runtime it drives.
//!
//! It lives beside the controller rather than in `runtime/` because it speaks the
//! controller's terms ([`ServiceObserved`], [`SandboxAction`]): each implementation
//! translates them to its runtime's calls (`docker.rs`, `pods.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;

use super::decide::{Observed, SandboxAction, ServiceObserved};
use crate::controller::{Context, ControllerError};
use crate::resources::sandbox::{EffectiveSandbox, SandboxStatus};
use crate::resources::{Object, ObjectKey};
use crate::runtime::DockerRuntime;

#[async_trait::async_trait]
pub trait SandboxRuntime: Send + Sync {
    /// What runs for each of `names` (the effective services, and those the stored
    /// status still lists).
    async fn observe_services(
        &self,
        ctx: &Context,
        obj: &Object,
        effective: &EffectiveSandbox,
        status: &SandboxStatus,
        names: &[String],
    ) -> Result<BTreeMap<String, ServiceObserved>, ControllerError>;

    /// Runs one action, updating `observed` with what it did. Returns whether anything
    /// was made, started, renamed or removed (the controller then decides again).
    async fn act(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &mut Observed,
        action: &SandboxAction,
    ) -> Result<bool, ControllerError>;

    /// Processes started by an exec that still run, over every running service.
    async fn count_processes(&self, observed: &Observed) -> Result<usize, ControllerError>;

    /// Keeps an eye on the running services (health checks, deaths) and wakes the
    /// sandbox when something changes. Returns when to look again at the latest, for a
    /// runtime that cannot wake the controller itself.
    fn watch(
        &self,
        ctx: &Arc<Context>,
        key: &ObjectKey,
        uid: &str,
        observed: &Observed,
        status: &SandboxStatus,
    ) -> Option<Duration>;

    /// Stops watching a sandbox's services.
    fn unwatch(&self, ctx: &Context, uid: &str);

    /// Removes everything of a deleted Sandbox. Tolerates finding nothing.
    async fn remove_deleted(&self, ctx: &Context, obj: &Object) -> Result<(), ControllerError>;

    /// Removes what belongs to no Sandbox any more; returns how many objects.
    async fn remove_orphans(&self, ctx: &Context) -> Result<usize, ControllerError>;

    /// What runs SandboxTemplates' warm pools (and lets Sandboxes claim from them), where
    /// this runtime has them: Docker. None: templates say their pools do not run here.
    fn warm_pools(&self) -> Option<&DockerRuntime>;

    /// Sandboxes whose services changed on their own (a container restarted, a probe
    /// flipped), for a runtime that can report it as it happens; the controller looks at
    /// each one again. None: [`SandboxRuntime::watch`] covers it.
    fn changes(&self, instance: &str) -> Option<BoxStream<'static, ObjectKey>> {
        let _ = instance;
        None
    }
}
