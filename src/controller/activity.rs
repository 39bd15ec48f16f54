//! Sandbox activity: when each sandbox was last used, and whether something is using
//! it right now. The HTTP API records exec calls and file transfers here; the Sandbox
//! controller reads it to move the idle deadline. It lives in memory: the controller
//! copies it into `status.lastActivityTime`, which is what survives a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct SandboxActivity {
    by_uid: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    last: DateTime<Utc>,
    in_flight: u32,
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

    /// Records activity now.
    pub fn touch(&self, uid: &str) {
        let now = Utc::now();
        let mut map = self.by_uid.lock().expect("activity lock");
        map.entry(uid.to_string())
            .and_modify(|e| e.last = e.last.max(now))
            .or_insert(Entry {
                last: now,
                in_flight: 0,
            });
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

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        let now = Utc::now();
        if let Some(e) = self
            .activity
            .by_uid
            .lock()
            .expect("activity lock")
            .get_mut(&self.uid)
        {
            e.in_flight = e.in_flight.saturating_sub(1);
            e.last = e.last.max(now);
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
}
