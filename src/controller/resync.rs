//! What the periodic resync looks at. Watches and timers drive the controllers; the
//! resync is the safety net for what they miss (a container that died unseen, a runtime
//! that did not answer). An object at rest (a finished or suspended Job, a finished
//! Workflow) has nothing such a net could catch, so the minute's resync skips it: only
//! the [`Active`] objects are queued, from memory, without reading the store. Every
//! [`FULL_EVERY`] resyncs, everything is listed and queued, as at start-up.
//!
//! With 100,000 finished Jobs, a resync used to read, parse and reconcile all of them
//! every minute; now it touches the few that are running.

use std::collections::HashSet;

use serde_json::Value;

use crate::resources::job::JobPhase;
use crate::resources::workflow::WorkflowPhase;
use crate::resources::{Kind, Object, ObjectKey};

/// Every how many resyncs every object is queued again.
pub const FULL_EVERY: u32 = 10;

/// The objects a periodic resync queues: every one not at rest, kept current from the
/// store's watch.
#[derive(Default, Debug)]
pub struct Active {
    keys: HashSet<ObjectKey>,
}

impl Active {
    /// Notes an object as seen in a list or a watch event.
    pub fn note(&mut self, obj: &Object, deleted: bool) {
        let key = obj.key();
        if deleted || at_rest(obj) {
            self.keys.remove(&key);
        } else {
            self.keys.insert(key);
        }
    }

    /// Forgets everything, before a full list notes it again.
    pub fn clear(&mut self) {
        self.keys.clear();
    }

    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.keys.iter()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Whether an object asks nothing of the controllers until it changes (a change comes
/// through the watch and queues it at once). Conservative: anything being deleted,
/// changed since its status was written, waiting on a timer of its own (a Job's TTL, a
/// Workflow's schedule), and every kind with few objects (Sandboxes, templates,
/// Workspaces) is active.
pub fn at_rest(obj: &Object) -> bool {
    if obj.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let observed = obj.status.get("observedGeneration").and_then(Value::as_i64);
    if observed != Some(obj.metadata.generation) {
        return false;
    }
    // The phase as its kind defines it; none (a new object) reads as the default, Pending.
    fn phase<P: serde::de::DeserializeOwned + Default>(obj: &Object) -> P {
        obj.status
            .get("phase")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default()
    }
    let set = |field: &str| obj.spec.get(field).is_some_and(|v| !v.is_null());
    match obj.kind {
        Kind::Job => {
            let phase: JobPhase = phase(obj);
            let suspended = obj.spec.get("suspend").and_then(Value::as_bool) == Some(true);
            (phase.is_finished() && !set("ttlSecondsAfterFinished"))
                || (suspended && phase != JobPhase::Running)
        }
        Kind::Workflow => phase::<WorkflowPhase>(obj).is_finished() && !set("schedule"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(kind: Kind, spec: Value, status: Value) -> Object {
        let mut obj = Object::new(kind, "default", "x", spec);
        obj.metadata.generation = 2;
        obj.status = status;
        obj
    }

    #[test]
    fn finished_and_suspended_jobs_rest_and_anything_pending_does_not() {
        let job = |spec: Value, status: Value| at_rest(&object(Kind::Job, spec, status));
        let done = json!({"phase": "Succeeded", "observedGeneration": 2});
        assert!(job(json!({}), done.clone()));
        assert!(job(
            json!({"suspend": true}),
            json!({"phase": "Pending", "observedGeneration": 2})
        ));
        // Not yet seen at this generation, running, waiting for its TTL, or new.
        assert!(!job(
            json!({}),
            json!({"phase": "Succeeded", "observedGeneration": 1})
        ));
        assert!(!job(
            json!({}),
            json!({"phase": "Running", "observedGeneration": 2})
        ));
        assert!(!job(
            json!({"suspend": true}),
            json!({"phase": "Running", "observedGeneration": 2})
        ));
        assert!(!job(json!({"ttlSecondsAfterFinished": 60}), done.clone()));
        assert!(!job(json!({}), json!({})));
        let mut deleting = object(Kind::Job, json!({}), done);
        deleting.metadata.deletion_timestamp = Some(chrono::Utc::now());
        assert!(!at_rest(&deleting));
    }

    #[test]
    fn workflows_rest_when_finished_and_unscheduled_and_other_kinds_never() {
        let done = json!({"phase": "Failed", "observedGeneration": 2});
        assert!(at_rest(&object(Kind::Workflow, json!({}), done.clone())));
        assert!(!at_rest(&object(
            Kind::Workflow,
            json!({"schedule": "0 * * * *"}),
            done.clone()
        )));
        assert!(!at_rest(&object(
            Kind::Workflow,
            json!({}),
            json!({"phase": "WaitingApproval", "observedGeneration": 2})
        )));
        assert!(!at_rest(&object(
            Kind::Sandbox,
            json!({}),
            json!({"phase": "Expired", "observedGeneration": 2})
        )));
    }

    #[test]
    fn the_active_set_follows_the_watch() {
        let mut active = Active::default();
        let running = object(
            Kind::Job,
            json!({}),
            json!({"phase": "Running", "observedGeneration": 2}),
        );
        active.note(&running, false);
        assert_eq!(active.len(), 1);
        let done = object(
            Kind::Job,
            json!({}),
            json!({"phase": "Succeeded", "observedGeneration": 2}),
        );
        active.note(&done, false);
        assert!(active.is_empty(), "a job that finished leaves the set");
        active.note(&running, false);
        active.note(&running, true);
        assert!(active.is_empty(), "a deleted one too");
    }
}
