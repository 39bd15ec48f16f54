//! The warm-pool registry: every pooled sandbox (slot) of this process, by template,
//! with what a claim needs (container ids, names, published ports) so a claim touches
//! no Docker at all, and the claim itself under one lock, so two sandboxes never take
//! the same slot.
//!
//! It lives in memory and is rebuilt at start-up from Docker (pool membership is a
//! container name starting with `orcaops-pool-`) and from the Sandboxes' `claimedFrom`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

use super::sizing::{SlotState, SlotView};
use crate::controller::sandbox::monitor::Monitors;
use crate::resources::ObjectKey;
use crate::runtime::sandbox::PublishedPort;

/// Per service: the hash of the service its container was made from.
pub type Fingerprint = BTreeMap<String, String>;

/// Claims older than this no longer count towards growing the pool.
pub const CLAIM_WINDOW: TimeDelta = TimeDelta::seconds(60);

/// One container of a slot.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotContainer {
    pub service: String,
    pub id: String,
    /// Its pool name (`orcaops-pool-...`).
    pub name: String,
    pub ports: Vec<PublishedPort>,
}

#[derive(Clone, Debug, PartialEq)]
enum Contents {
    /// Its network, volumes and containers are being made.
    Creating,
    /// Made: ready once its monitor says every service passes.
    Created(Vec<SlotContainer>),
    /// Making it failed, or one of its containers stopped: to be removed.
    Broken(String),
}

#[derive(Clone, Debug)]
struct Slot {
    fingerprint: Fingerprint,
    created_at: DateTime<Utc>,
    contents: Contents,
}

/// What the registry knows of one template's pool.
#[derive(Default)]
struct TemplatePool {
    slots: BTreeMap<String, Slot>,
    /// Hits and misses within [`CLAIM_WINDOW`], oldest first.
    claims: VecDeque<DateTime<Utc>>,
    counters: Counters,
    /// Counters were taken from the template's stored status (done once per process).
    seeded: bool,
    /// Misses not yet reported by an event.
    unreported_misses: u64,
    /// Slots that failed in a row, and when the refill may try again.
    failures_in_a_row: u32,
    retry_at: Option<DateTime<Utc>>,
    last_failure: Option<String>,
}

/// The cumulative counts shown in `status.pool`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub claimed: u64,
    pub missed: u64,
    pub last_claim_time: Option<DateTime<Utc>>,
}

/// A slot handed to a claimer.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    pub slot: String,
    pub containers: Vec<SlotContainer>,
}

/// A template's pool as its reconcile sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolSnapshot {
    pub slots: Vec<SlotView>,
    pub recent_claims: Vec<DateTime<Utc>>,
    pub counters: Counters,
    pub seeded: bool,
    pub unreported_misses: u64,
    pub failures_in_a_row: u32,
    pub retry_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
}

/// The id of a slot's monitor.
pub fn slot_monitor_id(template: &ObjectKey, slot: &str) -> String {
    format!("pool:{}/{}/{slot}", template.namespace, template.name)
}

/// (workspace, template, slot) of a claimed slot, and the uid that claimed it.
pub type ClaimedSlots = HashMap<(String, String, String), String>;

#[derive(Default)]
pub struct Pools {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    pools: HashMap<ObjectKey, TemplatePool>,
    /// Slots claimed by a sandbox: never reused, removed with the sandbox.
    claimed: ClaimedSlots,
    /// When each template's status was last written (writes are throttled).
    written: HashMap<ObjectKey, std::time::Instant>,
}

/// The shortest time between two writes of one template's pool status.
pub const STATUS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Pools {
    /// Takes a ready slot made from `fingerprint`, if there is one; otherwise counts a
    /// miss. Either way the claim counts towards growing the pool. No I/O.
    pub fn claim(
        &self,
        template: &ObjectKey,
        fingerprint: &Fingerprint,
        uid: &str,
        monitors: &Monitors,
        now: DateTime<Utc>,
    ) -> Option<Claimed> {
        let mut inner = self.inner.lock().expect("pools lock");
        let pool = inner.pools.entry(template.clone()).or_default();
        pool.claims.push_back(now);
        pool.counters.last_claim_time = Some(now);
        let found = pool
            .slots
            .iter()
            .find_map(|(id, slot)| match &slot.contents {
                Contents::Created(containers)
                    if &slot.fingerprint == fingerprint
                        && monitors.all_ready(&slot_monitor_id(template, id)) =>
                {
                    Some((id.clone(), containers.clone()))
                }
                _ => None,
            });
        let Some((slot, containers)) = found else {
            pool.counters.missed += 1;
            pool.unreported_misses += 1;
            return None;
        };
        pool.slots.remove(&slot);
        pool.counters.claimed += 1;
        inner.claimed.insert(
            (
                template.namespace.clone(),
                template.name.clone(),
                slot.clone(),
            ),
            uid.to_string(),
        );
        // The sandbox's own monitor takes over from here.
        monitors.stop(&slot_monitor_id(template, &slot));
        Some(Claimed { slot, containers })
    }

    /// Per template: (workspace, template, ready slots), for `/metrics`. No I/O.
    pub fn ready_counts(&self, monitors: &Monitors) -> Vec<(String, String, usize)> {
        let inner = self.inner.lock().expect("pools lock");
        inner
            .pools
            .iter()
            .map(|(template, pool)| {
                let ready = pool
                    .slots
                    .iter()
                    .filter(|(id, slot)| {
                        matches!(slot.contents, Contents::Created(_))
                            && monitors.all_ready(&slot_monitor_id(template, id))
                    })
                    .count();
                (template.namespace.clone(), template.name.clone(), ready)
            })
            .collect()
    }

    /// Gives a claimed slot back (the claimer could not record its claim).
    pub fn unclaim(&self, template: &ObjectKey, fingerprint: Fingerprint, claimed: Claimed) {
        let mut inner = self.inner.lock().expect("pools lock");
        inner.claimed.remove(&(
            template.namespace.clone(),
            template.name.clone(),
            claimed.slot.clone(),
        ));
        let pool = inner.pools.entry(template.clone()).or_default();
        pool.counters.claimed = pool.counters.claimed.saturating_sub(1);
        // Broken: its monitor was stopped, so it is removed and replaced.
        pool.slots.insert(
            claimed.slot,
            Slot {
                fingerprint,
                created_at: Utc::now(),
                contents: Contents::Broken("a claim of it was given up".into()),
            },
        );
    }

    /// Notes a claimed slot found at start-up or written in a Sandbox's status.
    pub fn note_claimed(&self, namespace: &str, template: &str, slot: &str, uid: &str) {
        self.inner.lock().expect("pools lock").claimed.insert(
            (
                namespace.to_string(),
                template.to_string(),
                slot.to_string(),
            ),
            uid.to_string(),
        );
    }

    /// Forgets the claims of a deleted sandbox.
    pub fn forget_claims_of(&self, uid: &str) {
        self.inner
            .lock()
            .expect("pools lock")
            .claimed
            .retain(|_, owner| owner != uid);
    }

    pub fn claimed_slots(&self) -> ClaimedSlots {
        self.inner.lock().expect("pools lock").claimed.clone()
    }

    /// Every unclaimed slot of every template: (template, slot).
    pub fn slots(&self) -> Vec<(ObjectKey, String)> {
        let inner = self.inner.lock().expect("pools lock");
        inner
            .pools
            .iter()
            .flat_map(|(key, pool)| pool.slots.keys().map(move |s| (key.clone(), s.clone())))
            .collect()
    }

    /// Registers a slot about to be made.
    pub fn add_creating(&self, template: &ObjectKey, slot: &str, fingerprint: Fingerprint) {
        self.add(template, slot, fingerprint, Contents::Creating);
    }

    /// Registers a slot found in Docker at start-up.
    pub fn add_existing(
        &self,
        template: &ObjectKey,
        slot: &str,
        fingerprint: Fingerprint,
        containers: Result<Vec<SlotContainer>, String>,
    ) {
        let contents = match containers {
            Ok(c) => Contents::Created(c),
            Err(why) => Contents::Broken(why),
        };
        self.add(template, slot, fingerprint, contents);
    }

    fn add(&self, template: &ObjectKey, slot: &str, fingerprint: Fingerprint, contents: Contents) {
        let mut inner = self.inner.lock().expect("pools lock");
        inner
            .pools
            .entry(template.clone())
            .or_default()
            .slots
            .insert(
                slot.to_string(),
                Slot {
                    fingerprint,
                    created_at: Utc::now(),
                    contents,
                },
            );
    }

    /// Records that a slot was made. False when the slot is no longer wanted (its
    /// template went away meanwhile): the caller removes what it made.
    /// `watch` runs under the registry's lock, so a slot is never removed between
    /// being recorded and being watched.
    pub fn created(
        &self,
        template: &ObjectKey,
        slot: &str,
        containers: Vec<SlotContainer>,
        watch: impl FnOnce(&[SlotContainer]),
    ) -> bool {
        let mut inner = self.inner.lock().expect("pools lock");
        let Some(entry) = inner
            .pools
            .get_mut(template)
            .and_then(|p| p.slots.get_mut(slot))
        else {
            return false;
        };
        watch(&containers);
        entry.contents = Contents::Created(containers);
        true
    }

    /// Records that making a slot failed; the refill backs off.
    pub fn failed(&self, template: &ObjectKey, slot: &str, why: String, now: DateTime<Utc>) {
        let mut inner = self.inner.lock().expect("pools lock");
        let Some(pool) = inner.pools.get_mut(template) else {
            return;
        };
        if let Some(entry) = pool.slots.get_mut(slot) {
            entry.contents = Contents::Broken(why.clone());
        }
        pool.failures_in_a_row += 1;
        let wait = super::sizing::refill_backoff(pool.failures_in_a_row);
        pool.retry_at = Some(now + wait);
        pool.last_failure = Some(why);
    }

    /// A slot became ready: the refill works again.
    pub fn succeeded(&self, template: &ObjectKey) {
        if let Some(pool) = self
            .inner
            .lock()
            .expect("pools lock")
            .pools
            .get_mut(template)
        {
            pool.failures_in_a_row = 0;
            pool.retry_at = None;
            pool.last_failure = None;
        }
    }

    /// Takes a slot out to remove it. False when it is no longer there (claimed).
    pub fn take(&self, template: &ObjectKey, slot: &str) -> bool {
        let mut inner = self.inner.lock().expect("pools lock");
        inner
            .pools
            .get_mut(template)
            .is_some_and(|p| p.slots.remove(slot).is_some())
    }

    /// Forgets a deleted template's pool, returning its slots to remove.
    pub fn drop_template(&self, template: &ObjectKey) -> Vec<String> {
        let mut inner = self.inner.lock().expect("pools lock");
        inner.written.remove(template);
        inner
            .pools
            .remove(template)
            .map(|p| p.slots.into_keys().collect())
            .unwrap_or_default()
    }

    /// Takes the stored counters once per process, so the counts go on across restarts.
    pub fn seed(&self, template: &ObjectKey, stored: Counters) {
        let mut inner = self.inner.lock().expect("pools lock");
        let pool = inner.pools.entry(template.clone()).or_default();
        if !pool.seeded {
            pool.counters.claimed += stored.claimed;
            pool.counters.missed += stored.missed;
            pool.counters.last_claim_time =
                pool.counters.last_claim_time.max(stored.last_claim_time);
            pool.seeded = true;
        }
    }

    /// Whether a template's status may be written now (and if so, notes it); otherwise
    /// how long until it may.
    pub fn status_write_due(
        &self,
        template: &ObjectKey,
        urgent: bool,
    ) -> Result<(), std::time::Duration> {
        let mut inner = self.inner.lock().expect("pools lock");
        let now = std::time::Instant::now();
        match inner.written.get(template) {
            Some(last) if !urgent && now.duration_since(*last) < STATUS_EVERY => {
                Err(STATUS_EVERY - now.duration_since(*last))
            }
            _ => {
                inner.written.insert(template.clone(), now);
                Ok(())
            }
        }
    }

    /// Misses were reported by an event.
    pub fn misses_reported(&self, template: &ObjectKey, n: u64) {
        if let Some(pool) = self
            .inner
            .lock()
            .expect("pools lock")
            .pools
            .get_mut(template)
        {
            pool.unreported_misses = pool.unreported_misses.saturating_sub(n);
        }
    }

    /// The pool of a template now, each slot's state read from its monitor.
    pub fn snapshot(
        &self,
        template: &ObjectKey,
        monitors: &Monitors,
        now: DateTime<Utc>,
    ) -> PoolSnapshot {
        let mut inner = self.inner.lock().expect("pools lock");
        let pool = inner.pools.entry(template.clone()).or_default();
        while pool
            .claims
            .front()
            .is_some_and(|t| now - *t >= CLAIM_WINDOW)
        {
            pool.claims.pop_front();
        }
        let slots = pool
            .slots
            .iter()
            .map(|(id, slot)| {
                let monitor = slot_monitor_id(template, id);
                let state = match &slot.contents {
                    Contents::Creating => SlotState::Starting,
                    Contents::Broken(why) => SlotState::Broken(why.clone()),
                    Contents::Created(_) if monitors.any_stopped(&monitor) => {
                        SlotState::Broken("a container of it stopped".into())
                    }
                    Contents::Created(_) if monitors.all_ready(&monitor) => SlotState::Ready,
                    Contents::Created(_) => SlotState::Starting,
                };
                SlotView {
                    id: id.clone(),
                    fingerprint: slot.fingerprint.clone(),
                    created_at: slot.created_at,
                    state,
                }
            })
            .collect();
        PoolSnapshot {
            slots,
            recent_claims: pool.claims.iter().copied().collect(),
            counters: pool.counters,
            seeded: pool.seeded,
            unreported_misses: pool.unreported_misses,
            failures_in_a_row: pool.failures_in_a_row,
            retry_at: pool.retry_at,
            last_failure: pool.last_failure.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;

    fn key() -> ObjectKey {
        ObjectKey::new(Kind::SandboxTemplate, "default", "shell")
    }

    fn fp() -> Fingerprint {
        Fingerprint::from([("shell".to_string(), "h1".to_string())])
    }

    #[test]
    fn a_miss_is_counted_and_a_slot_not_ready_is_not_claimed() {
        let pools = Pools::default();
        let monitors = Monitors::default();
        let now = Utc::now();
        pools.add_creating(&key(), "aaaaaaaa", fp());
        assert!(pools.claim(&key(), &fp(), "u1", &monitors, now).is_none());
        pools.created(&key(), "aaaaaaaa", Vec::new(), |_| {});
        // Made, but no monitor vouches for it yet.
        assert!(pools.claim(&key(), &fp(), "u2", &monitors, now).is_none());
        let snapshot = pools.snapshot(&key(), &monitors, now);
        assert_eq!(snapshot.counters.missed, 2);
        assert_eq!(snapshot.unreported_misses, 2);
        assert_eq!(snapshot.recent_claims.len(), 2);
        assert_eq!(snapshot.slots[0].state, SlotState::Starting);
        let later = pools.snapshot(&key(), &monitors, now + CLAIM_WINDOW);
        assert!(
            later.recent_claims.is_empty(),
            "claims age out of the window"
        );
    }

    #[test]
    fn a_taken_slot_cannot_be_taken_twice_and_counters_are_seeded_once() {
        let pools = Pools::default();
        pools.add_creating(&key(), "aaaaaaaa", fp());
        assert!(pools.take(&key(), "aaaaaaaa"));
        assert!(!pools.take(&key(), "aaaaaaaa"));
        let stored = Counters {
            claimed: 5,
            missed: 2,
            last_claim_time: None,
        };
        pools.seed(&key(), stored);
        pools.seed(&key(), stored);
        let monitors = Monitors::default();
        let snapshot = pools.snapshot(&key(), &monitors, Utc::now());
        assert_eq!(snapshot.counters.claimed, 5);
        assert_eq!(snapshot.counters.missed, 2);
    }
}
