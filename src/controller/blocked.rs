//! The policies' last word, before anything runs: a Job attempt or a Sandbox that an
//! Enforce policy refuses now (one added or tightened after the object was written) is
//! not started. It stays Pending with condition `Blocked`, which names the policy, the
//! rule and the fix; a change to a Policy or a Workspace wakes the blocked objects, and
//! the first reconcile that gets through drops the condition (see
//! [`crate::controller::waiting::is_job_wait`]).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use super::{Context, ControllerError};
use crate::policy::{Door, Review};
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::job::{JobConditionType, JobPhase, JobStatus};
use crate::resources::sandbox::{SandboxConditionType, SandboxPhase, SandboxStatus};
use crate::resources::{Kind, Object, ObjectKey};
use crate::store::{WatchEvent, WatchEventType};
use chrono::{DateTime, Utc};

/// How long a blocked object waits, if no Policy or Workspace change wakes it, before
/// it is reviewed again.
pub const RECHECK: Duration = Duration::from_secs(60);

/// The condition's reason.
pub const REASON: &str = "PolicyViolation";

/// What the live policies refuse in `obj`, about to start: None when it may start.
pub async fn refusal(ctx: &Context, obj: &Object) -> Result<Option<Review>, ControllerError> {
    let review = ctx.policies.review(obj, None).await?;
    Ok(review.refused().then_some(review))
}

/// The objects blocked now, by key: what a Policy or Workspace change wakes. Kept in
/// memory (a restart reconciles everything anyway, and [`RECHECK`] looks again).
#[derive(Default)]
pub struct Blocked {
    keys: Mutex<HashSet<ObjectKey>>,
}

impl Blocked {
    fn insert(&self, key: ObjectKey) {
        self.keys.lock().expect("blocked lock").insert(key);
    }

    fn take_all(&self) -> Vec<ObjectKey> {
        self.keys.lock().expect("blocked lock").drain().collect()
    }
}

/// Notes `obj` as blocked (to be woken by a Policy or Workspace change), and records
/// what the review found, once: when it was not blocked already.
pub fn record(ctx: &Context, review: &Review, obj: &Object, newly: bool) {
    ctx.blocked.insert(obj.key());
    if newly {
        ctx.policies.record(review, obj, &Door::Controller, true);
    }
}

/// A Job's status while a policy blocks it: Pending (before its attempt starts), the
/// condition, and the summary.
pub fn job_blocked(status: &mut JobStatus, message: &str, now: DateTime<Utc>) {
    set_condition(
        &mut status.conditions,
        JobConditionType::Blocked,
        ConditionStatus::True,
        REASON,
        message,
        now,
    );
    if status.phase != JobPhase::Running {
        status.phase = JobPhase::Pending;
    }
    status.summary = Some(format!("blocked by policy: {}", first_line(message)));
}

/// A Sandbox's status while a policy blocks it.
pub fn sandbox_blocked(status: &mut SandboxStatus, message: &str, now: DateTime<Utc>) {
    set_condition(
        &mut status.conditions,
        SandboxConditionType::Blocked,
        ConditionStatus::True,
        REASON,
        message,
        now,
    );
    status.phase = Some(SandboxPhase::Pending);
    status.message = Some(format!("blocked by policy: {}", first_line(message)));
}

/// The refusal's first violation, for the one-line summary (the condition has them all).
fn first_line(message: &str) -> &str {
    message.lines().nth(1).map(str::trim).unwrap_or(message)
}

pub fn job_is_blocked(status: &JobStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == JobConditionType::Blocked && c.status == ConditionStatus::True)
}

pub fn sandbox_is_blocked(status: &SandboxStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == SandboxConditionType::Blocked && c.status == ConditionStatus::True)
}

/// Called for every change the controllers see: a Policy or a Workspace whose spec
/// changed (or that went) may unblock what waits; every blocked Job and Sandbox is
/// queued to be reviewed again (one still refused notes itself blocked again).
pub fn on_change(ctx: &Context, event: &WatchEvent) {
    if !matches!(event.object.kind, Kind::Policy | Kind::Workspace) {
        return;
    }
    let spec_unchanged = event.type_ != WatchEventType::Deleted
        && event
            .previous
            .as_deref()
            .is_some_and(|before| before.spec == event.object.spec);
    if spec_unchanged {
        return;
    }
    for key in ctx.blocked.take_all() {
        ctx.queue.add(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_job_stays_pending_and_says_why_in_one_line() {
        let mut status = JobStatus::default();
        let message = "Job default/j is refused by policy:\n  policy p, rule images.deny: spec.image: denied (use another)";
        job_blocked(&mut status, message, Utc::now());
        assert_eq!(status.phase, JobPhase::Pending);
        assert!(job_is_blocked(&status));
        assert_eq!(
            status.summary.as_deref(),
            Some("blocked by policy: policy p, rule images.deny: spec.image: denied (use another)")
        );
        let condition = &status.conditions[0];
        assert_eq!(condition.reason, REASON);
        assert_eq!(condition.message, message);
    }

    #[test]
    fn a_blocked_sandbox_is_pending() {
        let mut status = SandboxStatus::default();
        sandbox_blocked(
            &mut status,
            "refused\n  policy p, rule x: f: m (fix)",
            Utc::now(),
        );
        assert_eq!(status.phase, Some(SandboxPhase::Pending));
        assert!(sandbox_is_blocked(&status));
    }
}
