//! The pure decision of the SandboxTemplate controller: how big the warm pool should
//! be now, which slots to start and which to remove, what `status.pool` says.
//!
//! Shaping the refill so a burst cannot starve the pool:
//! - a claim never waits for the pool: an empty pool means a cold start at once
//!   (counted as `missed`), so a burst is served in parallel by cold starts and slots;
//! - every claim (hit or miss) in the last 60 s raises the desired size by one, up to
//!   `maxSize`: a burst grows the pool, and it shrinks back as the claims age out;
//! - at most `refillConcurrency` slots start at once, so the refill never floods the
//!   Docker daemon that the cold starts of the same burst need;
//! - a slot that fails to start backs the refill off (1 s doubling to 5 min), so a
//!   broken image does not spin.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::pool::{CLAIM_WINDOW, Fingerprint, PoolSnapshot};
use crate::controller::event::Event;
use crate::resources::sandbox::{PoolStatus, SandboxTemplateStatus, WarmPool};

/// How many slots start at once when `refillConcurrency` is not given.
pub const DEFAULT_REFILL_CONCURRENCY: u32 = 4;
/// A slot not ready after this long is removed (and another one started).
pub const SLOT_START_TIMEOUT: TimeDelta = TimeDelta::seconds(120);
const FIRST_REFILL_BACKOFF: TimeDelta = TimeDelta::seconds(1);
const MAX_REFILL_BACKOFF: TimeDelta = TimeDelta::seconds(300);

/// The wait before the refill tries again after `n` slots failed in a row.
pub fn refill_backoff(n: u32) -> TimeDelta {
    let doublings = n.saturating_sub(1).min(16);
    (FIRST_REFILL_BACKOFF * (1 << doublings)).min(MAX_REFILL_BACKOFF)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Being made, or made and not yet passing its health checks.
    Starting,
    /// Every service runs and passes: claimable.
    Ready,
    /// Failed to start, or a container stopped: to be removed.
    Broken(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SlotView {
    pub id: String,
    pub fingerprint: Fingerprint,
    pub created_at: DateTime<Utc>,
    pub state: SlotState,
}

/// The pool size wanted now: `size`, plus one per claim in the last 60 s, at most
/// `maxSize` (which defaults to `size`: no growth).
pub fn desired_size(pool: Option<&WarmPool>, recent_claims: usize) -> u32 {
    let Some(pool) = pool else { return 0 };
    if pool.size == 0 {
        return 0;
    }
    let max = pool.max_size.unwrap_or(pool.size).max(pool.size);
    let grown = u64::from(pool.size) + recent_claims as u64;
    u32::try_from(grown.min(u64::from(max))).unwrap_or(max)
}

#[derive(Clone, Debug, PartialEq)]
pub struct PoolDecision {
    /// How many new slots to start.
    pub start: u32,
    /// Slots to remove, with why.
    pub remove: Vec<(String, String)>,
    pub status: SandboxTemplateStatus,
    pub events: Vec<Event>,
    /// How many misses the events above report.
    pub misses_reported: u64,
    pub requeue_after: Option<Duration>,
}

pub fn decide(
    pool: Option<&WarmPool>,
    fingerprint: &Fingerprint,
    snapshot: &PoolSnapshot,
    stored: &SandboxTemplateStatus,
    generation: i64,
    now: DateTime<Utc>,
) -> PoolDecision {
    let mut remove = Vec::new();
    let mut events = Vec::new();
    let mut requeue: Option<Duration> = None;
    let mut requeue_at = |at: DateTime<Utc>| {
        let after = (at - now).to_std().unwrap_or(Duration::ZERO);
        requeue = Some(requeue.map_or(after, |r: Duration| r.min(after)));
    };
    let desired = desired_size(pool, snapshot.recent_claims.len());
    if let Some(oldest) = snapshot.recent_claims.first()
        && desired > pool.map_or(0, |p| p.size)
    {
        // The pool shrinks back as claims age out of the window.
        requeue_at(*oldest + CLAIM_WINDOW);
    }

    let (mut ready, mut starting) = (Vec::new(), 0u32);
    for slot in &snapshot.slots {
        let stale = &slot.fingerprint != fingerprint;
        match &slot.state {
            SlotState::Broken(why) => {
                events.push(Event::warning(
                    "PoolSlotFailed",
                    format!("pooled sandbox {}: {why}", slot.id),
                ));
                remove.push((slot.id.clone(), why.clone()));
            }
            // One still being made is taken out too: its maker then removes what it made.
            _ if stale => remove.push((slot.id.clone(), "the template changed".into())),
            SlotState::Starting if now - slot.created_at >= SLOT_START_TIMEOUT => {
                let why = format!(
                    "not ready {}s after it started",
                    SLOT_START_TIMEOUT.num_seconds()
                );
                events.push(Event::warning(
                    "PoolSlotFailed",
                    format!("pooled sandbox {}: {why}", slot.id),
                ));
                remove.push((slot.id.clone(), why));
            }
            SlotState::Starting => {
                starting += 1;
                requeue_at(slot.created_at + SLOT_START_TIMEOUT);
            }
            SlotState::Ready => ready.push(slot),
        }
    }
    // Too many (the burst is over, or the size went down): remove the surplus of ready
    // slots, oldest first; slots still starting finish and are counted next time.
    let live = ready.len() as u32 + starting;
    let mut ready_count = ready.len() as u32;
    if live > desired {
        let surplus = (live - desired).min(ready_count) as usize;
        ready.sort_by_key(|s| s.created_at);
        for slot in ready.iter().take(surplus) {
            remove.push((slot.id.clone(), "more than the pool needs".into()));
        }
        ready_count -= surplus as u32;
    }
    let concurrency = pool
        .and_then(|p| p.refill_concurrency)
        .unwrap_or(DEFAULT_REFILL_CONCURRENCY)
        .max(1);
    let missing = desired.saturating_sub(ready_count + starting);
    let mut start = missing.min(concurrency.saturating_sub(starting));
    let mut message = None;
    if start > 0
        && let Some(retry_at) = snapshot.retry_at
        && now < retry_at
    {
        start = 0;
        requeue_at(retry_at);
        message = Some(format!(
            "refill paused after {} failed pooled sandboxes (last: {}); retrying at {}",
            snapshot.failures_in_a_row,
            snapshot.last_failure.as_deref().unwrap_or("unknown"),
            retry_at.to_rfc3339()
        ));
    }
    let misses = snapshot.unreported_misses;
    if misses > 0 {
        events.push(Event::warning(
            "PoolEmpty",
            format!(
                "pool empty: {misses} claim{} started cold",
                if misses == 1 { "" } else { "s" }
            ),
        ));
    }
    if start > 0 {
        events.push(Event::normal(
            "Refilling",
            format!(
                "starting {start} pooled sandbox{} (ready {ready_count} of {desired})",
                if start == 1 { "" } else { "es" }
            ),
        ));
    }
    let pool_status =
        (desired > 0 || ready_count + starting > 0 || stored.pool.is_some()).then(|| PoolStatus {
            desired,
            ready: ready_count,
            starting: starting + start,
            claimed: snapshot.counters.claimed,
            missed: snapshot.counters.missed,
            last_claim_time: snapshot.counters.last_claim_time,
        });
    PoolDecision {
        start,
        remove,
        status: SandboxTemplateStatus {
            observed_generation: Some(generation),
            pool: pool_status,
            message,
            ..Default::default()
        },
        events,
        misses_reported: misses,
        requeue_after: requeue,
    }
}

#[cfg(test)]
mod tests;
