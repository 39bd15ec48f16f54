//! The Workspace controller's pure decision: the usage of each quota (what runs
//! against the limit, as a ResourceQuota's `status.used` and `status.hard`), the
//! member count, and `Ready`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::admission::Workspace;
use super::quota::{Dim, Snapshot};
use crate::controller::reconcile;
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::workspace::{QuotaUsage, WorkspaceConditionType, WorkspaceStatus};

/// How often usage is counted again while `runsPerHour` is set: runs leave its window
/// with time alone, with no change to wake the controller.
pub const RUN_WINDOW_RECOUNT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Observed {
    pub generation: i64,
    pub workspace: Workspace,
    pub snapshot: Snapshot,
    pub status: WorkspaceStatus,
    pub now: DateTime<Utc>,
}

pub type Decision = reconcile::Decision<(), WorkspaceStatus>;

/// Each quota set, with what is in use (`runsPerHour`: runs started within the hour).
pub fn usage(observed: &Observed) -> BTreeMap<String, QuotaUsage> {
    let limits = observed.workspace.limits;
    let held = observed.snapshot.held(observed.now, "");
    Dim::ALL
        .into_iter()
        .filter_map(|dim| {
            let hard = limits.hard(dim)?;
            Some((
                dim.field().to_string(),
                QuotaUsage {
                    used: dim.format(held.get(dim)),
                    hard: dim.format(hard),
                },
            ))
        })
        .collect()
}

pub fn decide(observed: &Observed) -> Decision {
    let mut status = observed.status.clone();
    status.observed_generation = Some(observed.generation);
    status.usage = usage(observed);
    status.summary = summary(&status.usage);
    status.members = observed.workspace.spec.members.len() as u32;
    let waiting = observed
        .snapshot
        .members
        .iter()
        .filter(|m| m.standing == super::quota::Standing::Waiting)
        .count();
    let message = if status.usage.is_empty() {
        "no quotas: objects start as soon as they are created".to_string()
    } else {
        "quotas admit Jobs and Sandboxes in creation order".to_string()
    };
    set_condition(
        &mut status.conditions,
        WorkspaceConditionType::Ready,
        ConditionStatus::True,
        "Counted",
        &message,
        observed.now,
    );
    status.waiting = waiting as u32;
    Decision {
        actions: Vec::new(),
        status,
        events: Vec::new(),
        requeue_after: observed
            .workspace
            .limits
            .runs_per_hour
            .map(|_| RUN_WINDOW_RECOUNT),
        status_first: false,
        fate: reconcile::Fate::Keep,
        hints: (),
    }
}

/// The usage on one line, in the order of `spec.quotas`' fields.
fn summary(usage: &BTreeMap<String, QuotaUsage>) -> Option<String> {
    let parts: Vec<String> = Dim::ALL
        .into_iter()
        .filter_map(|dim| {
            let u = usage.get(dim.field())?;
            Some(format!("{} {}/{}", dim.field(), u.used, u.hard))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests;
