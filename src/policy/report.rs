//! The policies' reports: violations aggregated per policy, rule and object, so that
//! what is stored stays bounded whatever the traffic. [`Pending`] gathers them between
//! flushes; [`merge`] folds them into a Policy's `status.violations` (pure);
//! [`Pending::write`] writes the statuses and one Warning event per rule and object.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::resources::Object;
use crate::resources::policy::{PolicyMode, PolicyStatus, ViolationEntry, ViolationReport};
use crate::store::{EventType, InvolvedObject, NewEvent, ObjectStore};

use super::{Door, Review};

/// What was found since the last flush, per policy.
#[derive(Debug, Default)]
pub struct Pending {
    policies: BTreeMap<String, Delta>,
    /// One event per (object, message): repeats only add to the event's count.
    events: BTreeMap<(String, String, String, String), (InvolvedObject, String)>,
}

/// One policy's findings since the last flush.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delta {
    pub report: ViolationReport,
}

/// What was done about a violation.
fn action(mode: PolicyMode, blocked: bool) -> &'static str {
    match (mode, blocked) {
        (PolicyMode::Enforce, true) => "blocked",
        (PolicyMode::Enforce, false) => "refused",
        (PolicyMode::Warn, _) => "warned",
        (PolicyMode::Audit, _) => "audited",
    }
}

fn object_name(obj: &Object) -> String {
    match obj.metadata.namespace.as_deref() {
        Some(ns) if obj.kind.namespaced() => format!("{}/{ns}/{}", obj.kind, obj.metadata.name),
        _ => format!("{}/{}", obj.kind, obj.metadata.name),
    }
}

impl Pending {
    pub fn add(
        &mut self,
        review: &Review,
        obj: &Object,
        door: &Door,
        blocked: bool,
        now: DateTime<Utc>,
    ) {
        let object = object_name(obj);
        for v in &review.violations {
            let act = action(v.mode, blocked);
            let delta = self.policies.entry(v.policy.clone()).or_default();
            let entry = ViolationEntry {
                rule: v.rule.clone(),
                object: object.clone(),
                field: v.field.clone(),
                message: v.message.clone(),
                action: act.to_string(),
                door: door.label(),
                count: 1,
                last_seen: now,
            };
            fold(&mut delta.report, entry);
            let message = format!(
                "{act} by policy {}, rule {}: {}: {} ({})",
                v.policy, v.rule, v.field, v.message, v.fix
            );
            let involved = InvolvedObject {
                kind: obj.kind.to_string(),
                namespace: obj.metadata.namespace.clone().unwrap_or_default(),
                name: obj.metadata.name.clone(),
                uid: obj.metadata.uid.clone(),
            };
            let key = (
                involved.kind.clone(),
                involved.namespace.clone(),
                involved.name.clone(),
                message.clone(),
            );
            self.events.insert(key, (involved, message));
        }
    }

    /// The findings of `policy` since the last flush.
    pub fn delta(&self, policy: &str) -> Option<&Delta> {
        self.policies.get(policy)
    }

    /// Writes each policy's merged status and the events. A policy deleted meanwhile is
    /// skipped; a failed write is logged (the next findings are written on the next flush).
    pub async fn write(self, store: &dyn ObjectStore) {
        for (name, delta) in self.policies {
            let key = crate::resources::ObjectKey::new(crate::resources::Kind::Policy, "", &name);
            for _ in 0..3 {
                let stored = match store.get(&key).await {
                    Ok(Some(stored)) => stored,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(policy = %name, error = %e, "could not read a policy to report its violations");
                        break;
                    }
                };
                let mut status: PolicyStatus =
                    serde_json::from_value(stored.status.clone()).unwrap_or_default();
                let mut report = status.violations.take().unwrap_or_default();
                merge(&mut report, &delta.report);
                status.violations = Some(report);
                let value = serde_json::to_value(&status).unwrap_or_default();
                let rv = stored.metadata.resource_version.clone();
                match store.update_status(&key, &rv, value).await {
                    Ok(_) => break,
                    Err(crate::store::StoreError::Conflict { .. }) => continue,
                    Err(e) => {
                        tracing::warn!(policy = %name, error = %e, "could not write a policy's violation report");
                        break;
                    }
                }
            }
        }
        for (_, (involved, message)) in self.events {
            let event = NewEvent {
                involved,
                type_: EventType::Warning,
                reason: "PolicyViolation".into(),
                message,
            };
            if let Err(e) = store.record_event(event).await {
                tracing::warn!(error = %e, "could not record a policy violation event");
            }
        }
    }
}

/// Adds one finding to a report: its counts, and its entry (one per rule and object,
/// newest first, at most [`ViolationReport::RECENT`]).
pub fn fold(report: &mut ViolationReport, entry: ViolationEntry) {
    add_counts(report, &entry.action, &entry.rule, entry.count);
    add_entry(report, entry);
}

fn add_counts(report: &mut ViolationReport, action: &str, rule: &str, count: u64) {
    match action {
        "warned" => report.warned += count,
        "audited" => report.audited += count,
        _ => report.refused += count,
    }
    *report.by_rule.entry(rule.to_string()).or_default() += count;
}

fn add_entry(report: &mut ViolationReport, entry: ViolationEntry) {
    let count = match report
        .recent
        .iter()
        .position(|e| e.rule == entry.rule && e.object == entry.object)
    {
        Some(i) => report.recent.remove(i).count + entry.count,
        None => entry.count,
    };
    report.recent.insert(0, ViolationEntry { count, ..entry });
    report
        .recent
        .sort_by_key(|b| std::cmp::Reverse(b.last_seen));
    report.recent.truncate(ViolationReport::RECENT);
}

/// Folds a delta (what was found since the last flush) into a stored report.
pub fn merge(stored: &mut ViolationReport, delta: &ViolationReport) {
    stored.refused += delta.refused;
    stored.warned += delta.warned;
    stored.audited += delta.audited;
    for (rule, count) in &delta.by_rule {
        *stored.by_rule.entry(rule.clone()).or_default() += count;
    }
    // Oldest first, so the newest ends up in front.
    for entry in delta.recent.iter().rev() {
        add_entry(stored, entry.clone());
    }
}
