//! Sandbox activity: when each sandbox was last used, and whether something is using
//! it right now. The HTTP API records exec calls and file transfers here; the Sandbox
//! controller reads it to move the idle deadline. It lives in memory: the controller
//! copies it into `status.lastActivityTime`, which is what survives a restart.
//!
//! Activity wakes the Sandbox controller (through the waker it sets), at most once per
//! [`WAKE_EVERY`] per sandbox, so `status.expiresAt` follows use without a status
//! write per exec.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, TimeDelta, Utc};

/// The shortest time between two wake-ups of the controller for one sandbox.
pub const WAKE_EVERY: TimeDelta = TimeDelta::seconds(10);

type Waker = Box<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
pub struct SandboxActivity {
    by_uid: Mutex<HashMap<String, Entry>>,
    waker: OnceLock<Waker>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    last: DateTime<Utc>,
    in_flight: u32,
    woken: Option<DateTime<Utc>>,
}

/// Marks a sandbox busy until dropped (an exec or a transfer in progress).
pub struct ActivityGuard {
    activity: Arc<SandboxActivity>,
    uid: String,
}

impl SandboxActivity {
    pub fn new() -> Arc<Self> {
        Arc::new(SandboxActivity::default())
    }

    /// Sets what is called (with a sandbox uid) when activity should wake its
    /// controller. Only the first call has an effect.
    pub fn set_waker(&self, waker: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.waker.set(Box::new(waker));
    }

    /// Records activity now.
    pub fn touch(&self, uid: &str) {
        let now = Utc::now();
        let wake = {
            let mut map = self.by_uid.lock().expect("activity lock");
            let entry = map
                .entry(uid.to_string())
                .and_modify(|e| e.last = e.last.max(now))
                .or_insert(Entry {
                    last: now,
                    in_flight: 0,
                    woken: None,
                });
            due_wake(entry, now)
        };
        if wake {
            self.wake(uid);
        }
    }

    fn wake(&self, uid: &str) {
        if let Some(waker) = self.waker.get() {
            waker(uid);
        }
    }

    /// Records activity now and keeps the sandbox busy until the guard is dropped.
    pub fn begin(self: &Arc<Self>, uid: &str) -> ActivityGuard {
        self.touch(uid);
        if let Some(e) = self.by_uid.lock().expect("activity lock").get_mut(uid) {
            e.in_flight += 1;
        }
        ActivityGuard {
            activity: Arc::clone(self),
            uid: uid.to_string(),
        }
    }

    /// When the sandbox was last used (through this process).
    pub fn last(&self, uid: &str) -> Option<DateTime<Utc>> {
        self.by_uid
            .lock()
            .expect("activity lock")
            .get(uid)
            .map(|e| e.last)
    }

    /// Whether an exec or a transfer is in progress.
    pub fn busy(&self, uid: &str) -> bool {
        self.by_uid
            .lock()
            .expect("activity lock")
            .get(uid)
            .is_some_and(|e| e.in_flight > 0)
    }

    /// Drops what is known of a deleted sandbox.
    pub fn forget(&self, uid: &str) {
        self.by_uid.lock().expect("activity lock").remove(uid);
    }
}

/// Whether to wake the controller now, and if so notes that it was.
fn due_wake(entry: &mut Entry, now: DateTime<Utc>) -> bool {
    if entry.woken.is_some_and(|w| now - w < WAKE_EVERY) {
        return false;
    }
    entry.woken = Some(now);
    true
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        let now = Utc::now();
        let wake = self
            .activity
            .by_uid
            .lock()
            .expect("activity lock")
            .get_mut(&self.uid)
            .is_some_and(|e| {
                e.in_flight = e.in_flight.saturating_sub(1);
                e.last = e.last.max(now);
                due_wake(e, now)
            });
        if wake {
            self.activity.wake(&self.uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_keeps_the_sandbox_busy_and_its_end_counts_as_activity() {
        let activity = SandboxActivity::new();
        assert!(activity.last("u").is_none());
        let guard = activity.begin("u");
        let started = activity.last("u").unwrap();
        assert!(activity.busy("u"));
        let second = activity.begin("u");
        drop(guard);
        assert!(activity.busy("u"), "one exec still runs");
        drop(second);
        assert!(!activity.busy("u"));
        assert!(activity.last("u").unwrap() >= started);
        activity.forget("u");
        assert!(activity.last("u").is_none());
    }

    #[test]
    fn activity_wakes_the_controller_at_most_every_ten_seconds() {
        let activity = SandboxActivity::new();
        let woken = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&woken);
        activity.set_waker(move |uid| seen.lock().unwrap().push(uid.to_string()));
        activity.touch("u");
        activity.touch("u");
        drop(activity.begin("u"));
        activity.touch("v");
        assert_eq!(*woken.lock().unwrap(), vec!["u", "v"]);
    }
}
