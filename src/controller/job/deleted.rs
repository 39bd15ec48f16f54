//! Recording the run that a deletion interrupted, where the store deletes at once.
//!
//! On a cluster a Job keeps our finalizer, so its deletion waits for the reconcile to
//! stop the attempt, harvest it and record the run as Cancelled ([`super::decide`]'s
//! `being_deleted`). The local store keeps no finalizers: the Job is gone before any
//! reconcile sees a deletionTimestamp, and only its containers are left. Without this,
//! the orphan sweep would remove the running attempt's container and the run would
//! never be recorded. So the last state of the Job (the watch event's object) is
//! reconciled once more, as if it were being deleted: the same pure decision stops and
//! harvests the attempt (its log so far stays at its path), ends the run Cancelled and
//! records it; nothing is written to the store, where the Job no longer is. Records are
//! keyed by (uid, run) and replaced, so doing it again (a second event, a retry) is
//! harmless.

use std::sync::Arc;

use chrono::Utc;
use tracing::{info, warn};

use super::decide::{self, Observed};
use crate::controller::reconcile::{Fate, read_status};
use crate::controller::{Context, ControllerError};
use crate::resources::Object;
use crate::resources::job::JobStatus;

/// At most this many decide -> act passes: stop and harvest, then record and let go.
const MAX_PASSES: usize = 4;

/// Records the run `last` (the Job as it was when deleted) had in progress, if any, as
/// Cancelled, with its attempt; returns its number. Removes the attempt's container.
pub async fn record_interrupted(
    ctx: &Arc<Context>,
    last: &Object,
) -> Result<Option<u32>, ControllerError> {
    let status: JobStatus = read_status(&last.key(), last)?;
    let Some(run) = interrupted(&status) else {
        return Ok(None);
    };
    let uid = last.metadata.uid.clone();
    // The orphan sweep leaves this Job's containers to us meanwhile.
    let _guard = ctx.followers.recording(&uid);
    let mut obj = last.clone();
    obj.metadata.deletion_timestamp.get_or_insert_with(Utc::now);
    let mut observed: Observed = super::observe(ctx, &obj, status, None).await?;
    for _ in 0..MAX_PASSES {
        let decision = decide::decide(&observed);
        let again =
            super::act::act(ctx, &obj, &mut observed, decision.actions, &decision.status).await?;
        if decision.fate == Fate::Release {
            info!(%uid, run, "recorded the run the deletion of its job interrupted");
            return Ok(Some(run));
        }
        if !again {
            // The harvest did not make the attempt known (it ended meanwhile): look again.
            observed = super::observe(ctx, &obj, observed.status.clone(), None).await?;
        }
    }
    warn!(%uid, run, "the run of a deleted job did not end within {MAX_PASSES} passes; its containers are left to the orphan sweep");
    Ok(None)
}

/// The run a deletion interrupts: one that started and has not finished.
pub fn interrupted(status: &JobStatus) -> Option<u32> {
    status.run.filter(|_| !status.phase.is_finished())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::job::JobPhase;

    #[test]
    fn only_a_run_in_progress_is_interrupted() {
        let mut status = JobStatus::default();
        assert_eq!(interrupted(&status), None, "never ran");
        status.run = Some(2);
        for (phase, want) in [
            (JobPhase::Pending, Some(2)),
            (JobPhase::Running, Some(2)),
            (JobPhase::Succeeded, None),
            (JobPhase::Failed, None),
            (JobPhase::TimedOut, None),
            (JobPhase::Cancelled, None),
        ] {
            status.phase = phase;
            assert_eq!(interrupted(&status), want, "{phase:?}");
        }
    }
}
