//! Jobs, Sandboxes and Workflows by phase, kept up to date from what the controllers already see
//! (the store's watch, and the lists of each start-up and resync), never by listing the
//! store at a scrape; and the moment a Job's run finishes, for the run histogram.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::labels::OTHER;
use crate::resources::{Kind, Object};

/// The kinds counted by phase.
const TRACKED: [Kind; 3] = [Kind::Job, Kind::Sandbox, Kind::Workflow];
/// The phases a Job run ends in.
const FINISHED: [&str; 4] = ["Succeeded", "Failed", "TimedOut", "Cancelled"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub(super) struct PhaseLabels {
    kind: String,
    phase: String,
}

#[derive(Clone, Debug)]
struct Seen {
    kind: Kind,
    phase: String,
    /// The resourceVersion it was seen at, when it is a number (both stores' are): an
    /// older sighting (a watch event queued before a list) never undoes a newer one.
    version: Option<u64>,
}

/// A Job run that has just finished.
#[derive(Debug, PartialEq)]
pub(super) struct FinishedRun {
    pub workspace: String,
    pub job: String,
    pub phase: String,
    pub took: Duration,
    /// The kinds of the anomalies the run showed (`status.anomalies`, written with the
    /// phase that ends the run).
    pub anomalies: Vec<String>,
}

#[derive(Default)]
pub(super) struct ObjectPhases {
    /// By uid.
    seen: Mutex<HashMap<String, Seen>>,
    /// Every (kind, phase) that has a series.
    labelled: Mutex<std::collections::HashSet<(Kind, String)>>,
    gauges: Family<PhaseLabels, Gauge>,
}

/// The phase label of an object: its `status.phase`, `Pending` before the controller
/// wrote one (what both kinds' typed status defaults to), and [`OTHER`] for a value that
/// is not a phase name (a status written by hand).
fn phase_of(object: &Object) -> String {
    match object.status.get("phase").and_then(|p| p.as_str()) {
        None | Some("") => "Pending".to_string(),
        Some(p) if p.len() <= 32 && p.chars().all(|c| c.is_ascii_alphanumeric()) => p.to_string(),
        Some(_) => OTHER.to_string(),
    }
}

fn version_of(object: &Object) -> Option<u64> {
    object.metadata.resource_version.parse().ok()
}

fn time_of(object: &Object, field: &str) -> Option<DateTime<Utc>> {
    let text = object.status.get(field)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl ObjectPhases {
    pub(super) fn gauges(&self) -> Family<PhaseLabels, Gauge> {
        self.gauges.clone()
    }

    fn gauge(&self, kind: Kind, phase: &str) -> Gauge {
        self.labelled
            .lock()
            .expect("object phases lock")
            .insert((kind, phase.to_string()));
        self.gauges.get_or_create_owned(&PhaseLabels {
            kind: kind.as_str().to_string(),
            phase: phase.to_string(),
        })
    }

    /// `object` as the store now has it. Returns the Job run it shows finished, if it
    /// was last seen in a phase that had not.
    pub(super) fn changed(&self, object: &Object) -> Option<FinishedRun> {
        let kind = object.kind;
        if !TRACKED.contains(&kind) || object.metadata.uid.is_empty() {
            return None;
        }
        let phase = phase_of(object);
        let version = version_of(object);
        let mut seen = self.seen.lock().expect("object phases lock");
        let before = seen.get(&object.metadata.uid).cloned();
        if let Some(before) = &before
            && let (Some(old), Some(new)) = (before.version, version)
            && new <= old
        {
            return None;
        }
        seen.insert(
            object.metadata.uid.clone(),
            Seen {
                kind,
                phase: phase.clone(),
                version,
            },
        );
        drop(seen);
        match &before {
            Some(before) if before.phase == phase => return None,
            Some(before) => {
                self.gauge(kind, &before.phase).dec();
            }
            None => {}
        }
        self.gauge(kind, &phase).inc();
        // A run finished: seen unfinished before, finished now. (An object first seen
        // finished finished before this process looked: it is not counted twice.)
        let was_running = before.is_some_and(|b| !FINISHED.contains(&b.phase.as_str()));
        if kind != Kind::Job || !was_running || !FINISHED.contains(&phase.as_str()) {
            return None;
        }
        let started = time_of(object, "startTime")?;
        let completed = time_of(object, "completionTime")?;
        Some(FinishedRun {
            workspace: object.metadata.namespace.clone().unwrap_or_default(),
            job: object.metadata.name.clone(),
            phase,
            took: (completed - started).to_std().unwrap_or_default(),
            anomalies: object
                .status
                .get("anomalies")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
                .filter_map(|a| a.get("kind").and_then(|k| k.as_str()))
                .map(|k| {
                    if k.len() <= 32 && k.chars().all(|c| c.is_ascii_alphanumeric()) {
                        k.to_string()
                    } else {
                        OTHER.to_string()
                    }
                })
                .collect(),
        })
    }

    pub(super) fn deleted(&self, object: &Object) {
        let gone = self
            .seen
            .lock()
            .expect("object phases lock")
            .remove(&object.metadata.uid);
        if let Some(gone) = gone {
            self.gauge(gone.kind, &gone.phase).dec();
        }
    }

    /// Every object of `kind` as just listed: forgets the ones gone, takes the listed
    /// phase unless a newer one was seen, and sets the kind's gauges from the counts.
    pub(super) fn listed(&self, kind: Kind, objects: &[Object]) {
        if !TRACKED.contains(&kind) {
            return;
        }
        let mut seen = self.seen.lock().expect("object phases lock");
        let listed: std::collections::HashSet<&str> =
            objects.iter().map(|o| o.metadata.uid.as_str()).collect();
        seen.retain(|uid, s| s.kind != kind || listed.contains(uid.as_str()));
        for object in objects.iter().filter(|o| !o.metadata.uid.is_empty()) {
            let version = version_of(object);
            let newer_seen = seen.get(&object.metadata.uid).is_some_and(
                |s| matches!((s.version, version), (Some(old), Some(new)) if old > new),
            );
            if !newer_seen {
                seen.insert(
                    object.metadata.uid.clone(),
                    Seen {
                        kind,
                        phase: phase_of(object),
                        version,
                    },
                );
            }
        }
        let mut counts: HashMap<String, i64> = HashMap::new();
        for s in seen.values().filter(|s| s.kind == kind) {
            *counts.entry(s.phase.clone()).or_default() += 1;
        }
        drop(seen);
        // Phases counted before and absent now drop to 0 (their series stay).
        let labelled: Vec<String> = self
            .labelled
            .lock()
            .expect("object phases lock")
            .iter()
            .filter(|(k, phase)| *k == kind && !counts.contains_key(phase))
            .map(|(_, phase)| phase.clone())
            .collect();
        for phase in labelled {
            self.gauge(kind, &phase).set(0);
        }
        for (phase, n) in counts {
            self.gauge(kind, &phase).set(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(uid: &str, version: u64, phase: &str) -> Object {
        let mut job = Object::new(Kind::Job, "default", uid, json!({}));
        job.metadata.uid = uid.into();
        job.metadata.resource_version = version.to_string();
        job.status = json!({"phase": phase, "startTime": "2026-03-01T12:00:00Z",
            "completionTime": "2026-03-01T12:00:01Z"});
        job
    }

    fn count(phases: &ObjectPhases, phase: &str) -> i64 {
        phases.gauge(Kind::Job, phase).get()
    }

    #[test]
    fn objects_move_between_phases_and_leave_when_deleted() {
        let phases = ObjectPhases::default();
        assert_eq!(phases.changed(&job("a", 1, "Pending")), None);
        assert_eq!(phases.changed(&job("b", 2, "Running")), None);
        assert_eq!(
            (count(&phases, "Pending"), count(&phases, "Running")),
            (1, 1)
        );
        let run = phases
            .changed(&job("a", 3, "Failed"))
            .expect("a finished run");
        assert_eq!(
            (run.phase.as_str(), run.took),
            ("Failed", Duration::from_secs(1))
        );
        assert_eq!(
            (count(&phases, "Pending"), count(&phases, "Failed")),
            (0, 1)
        );
        phases.deleted(&job("a", 4, "Failed"));
        assert_eq!(count(&phases, "Failed"), 0);
    }

    #[test]
    fn an_older_sighting_never_undoes_a_newer_one() {
        let phases = ObjectPhases::default();
        // A list that already shows the run finished, then the watch event that was
        // queued before it: no regression, and no run counted.
        phases.listed(Kind::Job, &[job("a", 5, "Succeeded")]);
        assert_eq!(phases.changed(&job("a", 4, "Running")), None);
        assert_eq!(
            (count(&phases, "Running"), count(&phases, "Succeeded")),
            (0, 1)
        );
    }

    #[test]
    fn a_list_counts_again_and_forgets_what_is_gone() {
        let phases = ObjectPhases::default();
        phases.changed(&job("a", 1, "Running"));
        phases.changed(&job("b", 2, "Running"));
        // b was deleted while the watch lagged: the list does not have it.
        phases.listed(Kind::Job, &[job("a", 3, "Succeeded")]);
        assert_eq!(
            (count(&phases, "Running"), count(&phases, "Succeeded")),
            (0, 1)
        );
        // The first run of an object first seen finished is not counted.
        assert_eq!(phases.changed(&job("c", 4, "Succeeded")), None);
        // A rerun of a is: Pending then finished again.
        assert_eq!(phases.changed(&job("a", 5, "Pending")), None);
        assert!(phases.changed(&job("a", 6, "Succeeded")).is_some());
    }

    #[test]
    fn odd_phases_share_other_and_an_empty_status_is_pending() {
        let mut odd = job("a", 1, "x");
        odd.status = json!({"phase": "{{ not a phase }}"});
        assert_eq!(phase_of(&odd), OTHER);
        odd.status = serde_json::Value::Null;
        assert_eq!(phase_of(&odd), "Pending");
    }
}
