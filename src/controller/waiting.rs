//! Objects waiting on the runtime, and saying so.
//!
//! Two refusals of the runtime are not failures of the object: Docker not answering
//! ([`RuntimeError::is_unavailable`]) and the server's container limit
//! ([`RuntimeError::ContainerLimit`]). A Job or Sandbox that meets one stays as it is
//! (a Job that has not started stays Pending) and gets a condition that says what
//! happened and what happens next: `RuntimeUnavailable` with Docker's error and when the
//! controller retries, or `ContainerLimitReached` with how full the server is. The next
//! reconcile that gets through drops the condition (each kind's decide does).
//!
//! Retries back off while Docker does not answer (1 s doubling to 60 s, the queue's
//! error backoff with a floor), so a hung daemon is not hammered with new calls. Objects
//! refused a container slot do not poll: the runtime says when a slot frees up and the
//! controller wakes the ones first in line ([`wake_next_in_line`]), with a slow recheck
//! as a safety net.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::reconcile::{read_status, write_status};
use super::{Context, ControllerError};
use crate::resources::common::{Condition, ConditionStatus, set_condition};
use crate::resources::job::{JobConditionType, JobPhase, JobStatus};
use crate::resources::sandbox::{SandboxConditionType, SandboxPhase, SandboxStatus};
use crate::resources::{Kind, ObjectKey};
use crate::runtime::{DockerRuntime, RuntimeError};

/// The shortest wait before retrying against a runtime that does not answer.
pub const MIN_UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(1);
/// How long an object refused a container slot waits, if nothing wakes it, before it
/// looks again.
pub const ROOM_RECHECK: Duration = Duration::from_secs(30);

/// Why an object waits on the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    Unavailable,
    Room,
}

impl Wait {
    /// Which wait (if any) this reconcile error is.
    pub fn of(error: &ControllerError) -> Option<Wait> {
        match error {
            ControllerError::Runtime(e) if e.is_unavailable() => Some(Wait::Unavailable),
            ControllerError::Runtime(RuntimeError::ContainerLimit { .. }) => Some(Wait::Room),
            _ => None,
        }
    }

    /// When to look again: `backoff` is the queue's error backoff for the key.
    pub fn retry_in(self, backoff: Duration) -> Duration {
        match self {
            Wait::Unavailable => backoff.max(MIN_UNAVAILABLE_BACKOFF),
            Wait::Room => ROOM_RECHECK,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Wait::Unavailable => "DockerNotAnswering",
            Wait::Room => "ContainerLimit",
        }
    }
}

/// The objects refused a container slot, by the owner the runtime's waiting line knows
/// them by (their uid).
#[derive(Default)]
pub struct WaitingForRoom {
    by_owner: Mutex<HashMap<String, ObjectKey>>,
}

impl WaitingForRoom {
    fn insert(&self, owner: &str, key: &ObjectKey) {
        self.by_owner
            .lock()
            .expect("waiting lock")
            .insert(owner.to_string(), key.clone());
    }

    fn take(&self, owner: &str) -> Option<ObjectKey> {
        self.by_owner.lock().expect("waiting lock").remove(owner)
    }
}

/// What a condition says: what happened, and what happens next.
fn message(wait: Wait, error: &RuntimeError, retry_in: Duration) -> String {
    match wait {
        Wait::Unavailable => format!(
            "{error}; orcaops retries in {}s (backing off while Docker does not answer)",
            retry_in.as_secs().max(1)
        ),
        Wait::Room => error.to_string(),
    }
}

/// Records in the object's status that it waits on the runtime, and remembers who
/// waits for room. Only Jobs and Sandboxes say so; a template's pool logs it.
pub async fn record(
    ctx: &Context,
    key: &ObjectKey,
    wait: Wait,
    error: &RuntimeError,
    retry_in: Duration,
) -> Result<(), ControllerError> {
    if let RuntimeError::ContainerLimit { owner, .. } = error {
        ctx.waiting_for_room.insert(owner, key);
    }
    if !matches!(key.kind, Kind::Job | Kind::Sandbox) {
        return Ok(());
    }
    let Some(obj) = ctx.store.get(key).await? else {
        return Ok(());
    };
    let message = message(wait, error, retry_in);
    let now = Utc::now();
    match key.kind {
        Kind::Job => {
            let mut status: JobStatus = read_status(key, &obj)?;
            let before = status.clone();
            job_waits(&mut status, wait, &message, now);
            if status != before {
                write_status(ctx, key, &obj, &status).await?;
            }
        }
        _ => {
            let mut status: SandboxStatus = read_status(key, &obj)?;
            let before = status.clone();
            sandbox_waits(&mut status, wait, &message, now);
            if status != before {
                write_status(ctx, key, &obj, &status).await?;
            }
        }
    }
    Ok(())
}

/// A Job's status while it waits: the condition, and (before it runs) its summary.
pub fn job_waits(status: &mut JobStatus, wait: Wait, message: &str, now: DateTime<Utc>) {
    let (this, other) = match wait {
        Wait::Unavailable => (
            JobConditionType::RuntimeUnavailable,
            JobConditionType::ContainerLimitReached,
        ),
        Wait::Room => (
            JobConditionType::ContainerLimitReached,
            JobConditionType::RuntimeUnavailable,
        ),
    };
    mark(&mut status.conditions, (this, other), wait, message, now);
    if status.phase == JobPhase::Pending {
        status.summary = Some(format!("waiting: {message}"));
    }
}

/// A Sandbox's status while it waits: the condition, and (before it is ready) its
/// message.
pub fn sandbox_waits(status: &mut SandboxStatus, wait: Wait, message: &str, now: DateTime<Utc>) {
    let (this, other) = match wait {
        Wait::Unavailable => (
            SandboxConditionType::RuntimeUnavailable,
            SandboxConditionType::ContainerLimitReached,
        ),
        Wait::Room => (
            SandboxConditionType::ContainerLimitReached,
            SandboxConditionType::RuntimeUnavailable,
        ),
    };
    mark(&mut status.conditions, (this, other), wait, message, now);
    match status.phase {
        None => {
            status.phase = Some(SandboxPhase::Pending);
            status.message = Some(format!("waiting: {message}"));
        }
        Some(SandboxPhase::Pending | SandboxPhase::Starting) => {
            status.message = Some(format!("waiting: {message}"));
        }
        _ => {}
    }
}

/// Whether a Job condition is one of the waits (dropped by a reconcile that gets
/// through: the runtime answered and had room, and the workspace's quotas let it in).
pub fn is_job_wait(condition: &Condition<JobConditionType>) -> bool {
    matches!(
        condition.type_,
        JobConditionType::RuntimeUnavailable
            | JobConditionType::ContainerLimitReached
            | JobConditionType::QuotaExceeded
            | JobConditionType::Blocked
    )
}

/// Like [`is_job_wait`], for a Sandbox.
pub fn is_sandbox_wait(condition: &Condition<SandboxConditionType>) -> bool {
    matches!(
        condition.type_,
        SandboxConditionType::RuntimeUnavailable
            | SandboxConditionType::ContainerLimitReached
            | SandboxConditionType::QuotaExceeded
            | SandboxConditionType::Blocked
    )
}

/// Wakes the objects first in line for the container slots free now.
pub fn wake_next_in_line(ctx: &Context, docker: &DockerRuntime) {
    for owner in docker.next_in_line() {
        if let Some(key) = ctx.waiting_for_room.take(&owner) {
            ctx.queue.add(key);
        }
    }
}

/// Sets condition `this` for `wait`, and drops `other` (the other wait's condition).
fn mark<T: PartialEq + Clone>(
    conditions: &mut Vec<Condition<T>>,
    (this, other): (T, T),
    wait: Wait,
    message: &str,
    now: DateTime<Utc>,
) {
    conditions.retain(|c| c.type_ != other);
    set_condition(
        conditions,
        this,
        ConditionStatus::True,
        wait.reason(),
        message,
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> RuntimeError {
        RuntimeError::ContainerLimit {
            in_use: 64,
            limit: 64,
            owner: "uid".into(),
            ahead: 0,
        }
    }

    #[test]
    fn unavailable_and_limit_errors_are_waits_and_others_are_not() {
        let timeout = ControllerError::Runtime(RuntimeError::Timeout {
            call: "create_container",
            after: Duration::from_secs(30),
        });
        assert_eq!(Wait::of(&timeout), Some(Wait::Unavailable));
        assert_eq!(
            Wait::of(&ControllerError::Runtime(limit())),
            Some(Wait::Room)
        );
        let missing = ControllerError::Runtime(RuntimeError::ContainerNotFound {
            container: "x".into(),
        });
        assert_eq!(Wait::of(&missing), None);
        assert_eq!(
            Wait::Unavailable.retry_in(Duration::from_millis(200)),
            MIN_UNAVAILABLE_BACKOFF
        );
        assert_eq!(
            Wait::Unavailable.retry_in(Duration::from_secs(8)),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn a_pending_job_says_it_waits_for_room_and_what_happens_next() {
        let mut status = JobStatus::default();
        let now = Utc::now();
        let text = message(Wait::Room, &limit(), ROOM_RECHECK);
        job_waits(&mut status, Wait::Room, &text, now);
        assert_eq!(status.phase, JobPhase::Pending);
        let condition = &status.conditions[0];
        assert_eq!(condition.type_, JobConditionType::ContainerLimitReached);
        assert_eq!(condition.status, ConditionStatus::True);
        assert_eq!(
            condition.message,
            "64 of 64 containers in use on this server; it starts when one ends; raise --max-containers to allow more"
        );
        assert!(status.summary.unwrap().starts_with("waiting: 64 of 64"));
    }

    #[test]
    fn docker_not_answering_replaces_the_limit_and_names_the_retry() {
        let mut status = JobStatus::default();
        let now = Utc::now();
        job_waits(&mut status, Wait::Room, "full", now);
        let error = RuntimeError::Timeout {
            call: "list_containers",
            after: Duration::from_secs(30),
        };
        let text = message(Wait::Unavailable, &error, Duration::from_secs(4));
        job_waits(&mut status, Wait::Unavailable, &text, now);
        assert_eq!(status.conditions.len(), 1);
        let condition = &status.conditions[0];
        assert_eq!(condition.type_, JobConditionType::RuntimeUnavailable);
        assert!(condition.message.contains("list_containers"), "{text}");
        assert!(condition.message.contains("retries in 4s"), "{text}");
        assert!(is_job_wait(condition));
    }

    #[test]
    fn a_running_job_keeps_its_summary_and_a_ready_sandbox_its_message() {
        let mut job = JobStatus {
            phase: JobPhase::Running,
            summary: Some("run 1: running".into()),
            ..Default::default()
        };
        job_waits(&mut job, Wait::Unavailable, "no answer", Utc::now());
        assert_eq!(job.summary.as_deref(), Some("run 1: running"));

        let mut ready = SandboxStatus {
            phase: Some(SandboxPhase::Ready),
            ..Default::default()
        };
        sandbox_waits(&mut ready, Wait::Unavailable, "no answer", Utc::now());
        assert_eq!(ready.message, None);
        assert!(is_sandbox_wait(&ready.conditions[0]));

        let mut new = SandboxStatus::default();
        sandbox_waits(&mut new, Wait::Room, "full", Utc::now());
        assert_eq!(new.phase, Some(SandboxPhase::Pending));
        assert_eq!(new.message.as_deref(), Some("waiting: full"));
        assert_eq!(
            new.conditions[0].type_,
            SandboxConditionType::ContainerLimitReached
        );
    }
}
