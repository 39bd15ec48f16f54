//! The reconcile driver: what every controller repeats (read the object, the finalizer,
//! observe -> decide -> act passes, one status write, events), written once. A kind's
//! controller is a [`Reconciler`]: its observe, its pure decide, its act.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, instrument};

use super::event::{self, Event};
use super::finalizer::{self, Step};
use super::{Context, ControllerError};
use crate::resources::{Object, ObjectKey, keys};
use crate::store::{InvolvedObject, StoreError};

/// Acting may make something known at once (a harvested attempt, a started container):
/// the driver decides again with it, so most changes take one reconcile and one status
/// write. Bounded, so a decision that keeps acting cannot spin within a reconcile.
const MAX_PASSES: usize = 3;

/// What a pure decide returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<A, S, H = ()> {
    pub actions: Vec<A>,
    /// The status wanted; written unless it equals the stored one.
    pub status: S,
    pub events: Vec<Event>,
    pub requeue_after: Option<Duration>,
    /// Record the decision before acting: the status (unless the object goes) and the
    /// events. Stopping takes seconds, and what was decided (Stopping, Expired, and why)
    /// must show at once.
    pub status_first: bool,
    /// What becomes of the object itself once the actions ran.
    pub fate: Fate,
    /// What only this kind's hooks read (a Sandbox's: watch its services, count its
    /// processes first).
    pub hints: H,
}

/// What becomes of the reconciled object after the actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fate {
    #[default]
    Keep,
    /// Delete it (a finished Job's TTL, a Sandbox's expiry); `reason` is logged.
    Delete { reason: &'static str },
    /// Being deleted, and its cleanup is finished: remove our finalizer, so the deletion
    /// completes.
    Release,
}

/// What observing came to.
pub enum Observation<O> {
    /// Decide on this.
    Ready(O),
    /// The reconcile was finished while observing (a Sandbox claimed a warm-pool slot
    /// and wrote its status); look again after this.
    Settled(Option<Duration>),
}

/// How a deleting object held by our finalizer is cleaned up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Everything is gone: the driver removes the finalizer now.
    Finished,
    /// The cleanup takes reconciles of its own (stop, wait, harvest, record): observe,
    /// decide and act as usual; the decision's [`Fate::Release`] ends it.
    Reconcile,
}

/// One kind's controller, as the driver runs it.
#[async_trait::async_trait]
pub trait Reconciler: Sync {
    /// Whether objects of this kind hold the cleanup finalizer where the store keeps them.
    const FINALIZER: bool;
    type Observed: Send;
    type Action: Send + Sync;
    type Status: Serialize + DeserializeOwned + Default + PartialEq + Clone + Send + Sync;
    type Hints: Send + Sync;

    /// Reads what the decision needs (`stored` is the object's status as stored).
    async fn observe(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        stored: &Self::Status,
    ) -> Result<Observation<Self::Observed>, ControllerError>;

    /// Pure: what to do, the status wanted, events, when to look again.
    fn decide(observed: &Self::Observed) -> Decision<Self::Action, Self::Status, Self::Hints>;

    /// Runs `actions` (decided along with `status`), updating `observed` with what they
    /// made known. Returns whether to decide again.
    async fn act(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &mut Self::Observed,
        actions: Vec<Self::Action>,
        status: &Self::Status,
    ) -> Result<bool, ControllerError>;

    /// The object is not in the store (any more).
    async fn gone(&self, ctx: &Arc<Context>, key: &ObjectKey) {
        let _ = (ctx, key);
    }

    /// Cleans up after a deleting object our finalizer holds.
    async fn cleanup(&self, ctx: &Arc<Context>, obj: &Object) -> Result<Cleanup, ControllerError> {
        let _ = (ctx, obj);
        Ok(Cleanup::Reconcile)
    }

    /// Reads what the first decision found missing, before anything is done (a
    /// Sandbox's background processes). Returns whether to decide again.
    async fn complete(
        &self,
        ctx: &Arc<Context>,
        observed: &mut Self::Observed,
        decision: &Decision<Self::Action, Self::Status, Self::Hints>,
    ) -> Result<bool, ControllerError> {
        let _ = (ctx, observed, decision);
        Ok(false)
    }

    /// Whether a changed status is written now; `Err(wait)` defers it (a template's
    /// refill progress is written at most so often).
    fn status_write_due(
        &self,
        ctx: &Context,
        key: &ObjectKey,
        stored: &Self::Status,
        status: &Self::Status,
    ) -> Result<(), Duration> {
        let _ = (ctx, key, stored, status);
        Ok(())
    }

    /// After the status is written (for an object that stays): returns when to look
    /// again at the latest (a Sandbox watches its running services).
    fn after_status(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &Self::Observed,
        decision: &Decision<Self::Action, Self::Status, Self::Hints>,
    ) -> Option<Duration> {
        let _ = (ctx, obj, observed, decision);
        None
    }
}

/// Reconciles the object at `key` with `reconciler`; returns when to look at it again.
///
/// The store sees: get; (add the finalizer, get again); what observe reads; what act
/// does; the status write; the events. A `status_first` decision writes its status and
/// events before acting.
#[instrument(skip(reconciler, ctx), fields(kind = key.kind.as_str(), namespace = %key.namespace, name = %key.name))]
pub async fn drive<R: Reconciler>(
    reconciler: &R,
    ctx: &Arc<Context>,
    key: &ObjectKey,
) -> Result<Option<Duration>, ControllerError> {
    let Some(mut obj) = ctx.store.get(key).await? else {
        reconciler.gone(ctx, key).await;
        return Ok(None);
    };
    match finalizer::step(&obj.metadata, R::FINALIZER && ctx.finalizers) {
        Step::Add => {
            ctx.store.add_finalizer(key, keys::FINALIZER).await?;
            let Some(fresh) = ctx.store.get(key).await? else {
                reconciler.gone(ctx, key).await;
                return Ok(None);
            };
            obj = fresh;
        }
        Step::Apply => {}
        Step::Done => return Ok(None),
        Step::Cleanup => match reconciler.cleanup(ctx, &obj).await? {
            Cleanup::Finished => {
                release(ctx, key).await?;
                return Ok(None);
            }
            Cleanup::Reconcile => {}
        },
    }
    let stored: R::Status = read_status(key, &obj)?;
    let mut observed = match reconciler.observe(ctx, &obj, &stored).await? {
        Observation::Ready(observed) => observed,
        Observation::Settled(requeue) => return Ok(requeue),
    };
    let mut decision = R::decide(&observed);
    if reconciler.complete(ctx, &mut observed, &decision).await? {
        decision = R::decide(&observed);
    }
    let involved = involved(key, &obj);
    let mut events = Vec::new();
    let mut written = false;
    for pass in 0..MAX_PASSES {
        let goes = decision.fate != Fate::Keep;
        if decision.status_first {
            if !goes {
                write_status(ctx, key, &obj, &decision.status).await?;
                written = true;
            }
            events.append(&mut decision.events);
            event::record(ctx, &involved, std::mem::take(&mut events)).await?;
        }
        let actions = std::mem::take(&mut decision.actions);
        let again = reconciler
            .act(ctx, &obj, &mut observed, actions, &decision.status)
            .await?;
        match decision.fate {
            Fate::Keep => {}
            Fate::Delete { reason } => {
                info!(reason, "deleting");
                match ctx.store.delete(key).await {
                    // Its file must not create it again at a restart (store::tombstone).
                    Ok(gone) => ctx.store.record_tombstone(&gone, reason).await?,
                    Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Fate::Release => release(ctx, key).await?,
        }
        events.append(&mut decision.events);
        if goes || decision.status_first || !again || pass == MAX_PASSES - 1 {
            break;
        }
        decision = R::decide(&observed);
    }
    let goes = decision.fate != Fate::Keep;
    let mut requeue = decision.requeue_after;
    // The status first: it is what clients wait for; events are for people.
    if !goes && !written && decision.status != stored {
        match reconciler.status_write_due(ctx, key, &stored, &decision.status) {
            Ok(()) => write_status(ctx, key, &obj, &decision.status).await?,
            Err(wait) => requeue = Some(requeue.map_or(wait, |r| r.min(wait))),
        }
    }
    event::record(ctx, &involved, events).await?;
    if goes {
        return Ok(None);
    }
    if let Some(poll) = reconciler.after_status(ctx, &obj, &observed, &decision) {
        requeue = Some(requeue.map_or(poll, |r| r.min(poll)));
    }
    Ok(requeue)
}

/// Lets a deleting object go: its cleanup is finished.
async fn release(ctx: &Context, key: &ObjectKey) -> Result<(), ControllerError> {
    info!("cleaned up after deletion; letting it go");
    ctx.store.remove_finalizer(key, keys::FINALIZER).await?;
    Ok(())
}

/// An object that cannot be read as its kind.
pub(crate) fn invalid(key: &ObjectKey, e: serde_json::Error) -> ControllerError {
    ControllerError::InvalidObject {
        key: key.clone(),
        message: e.to_string(),
    }
}

/// The stored status, typed; an object never written to has the default.
pub(crate) fn read_status<S: DeserializeOwned + Default>(
    key: &ObjectKey,
    obj: &Object,
) -> Result<S, ControllerError> {
    if obj.status.is_null() {
        Ok(S::default())
    } else {
        serde_json::from_value(obj.status.clone()).map_err(|e| invalid(key, e))
    }
}

/// Writes `status`, guarded by the resourceVersion `obj` was read at.
pub(crate) async fn write_status<S: Serialize>(
    ctx: &Context,
    key: &ObjectKey,
    obj: &Object,
    status: &S,
) -> Result<(), ControllerError> {
    let value = serde_json::to_value(status).map_err(|e| invalid(key, e))?;
    ctx.store
        .update_status(key, &obj.metadata.resource_version, value)
        .await?;
    Ok(())
}

/// Who the events of a reconcile of `obj` are about.
pub(crate) fn involved(key: &ObjectKey, obj: &Object) -> InvolvedObject {
    InvolvedObject {
        kind: key.kind.as_str().into(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: obj.metadata.uid.clone(),
    }
}
