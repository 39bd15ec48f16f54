use chrono::TimeZone;

use super::*;
use crate::controller::template::pool::Counters;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn fp() -> Fingerprint {
    Fingerprint::from([("shell".to_string(), "h1".to_string())])
}

fn pool(size: u32, max: Option<u32>, concurrency: Option<u32>) -> WarmPool {
    WarmPool {
        size,
        max_size: max,
        refill_concurrency: concurrency,
    }
}

fn slot(id: &str, state: SlotState, age: i64) -> SlotView {
    SlotView {
        id: id.into(),
        fingerprint: fp(),
        created_at: t0() - TimeDelta::seconds(age),
        state,
    }
}

fn snapshot(slots: Vec<SlotView>, claims_ago: &[i64]) -> PoolSnapshot {
    PoolSnapshot {
        slots,
        recent_claims: claims_ago
            .iter()
            .map(|a| t0() - TimeDelta::seconds(*a))
            .collect(),
        ..Default::default()
    }
}

fn run(pool: &WarmPool, snapshot: &PoolSnapshot) -> PoolDecision {
    decide(
        Some(pool),
        &fp(),
        snapshot,
        &SandboxTemplateStatus::default(),
        1,
        t0(),
    )
}

#[test]
fn desired_grows_with_recent_claims_up_to_max_size() {
    assert_eq!(desired_size(None, 10), 0);
    assert_eq!(desired_size(Some(&pool(0, Some(5), None)), 10), 0);
    assert_eq!(
        desired_size(Some(&pool(2, None, None)), 10),
        2,
        "no maxSize: no growth"
    );
    assert_eq!(desired_size(Some(&pool(2, Some(6), None)), 0), 2);
    assert_eq!(desired_size(Some(&pool(2, Some(6), None)), 3), 5);
    assert_eq!(desired_size(Some(&pool(2, Some(6), None)), 30), 6);
}

#[test]
fn an_empty_pool_fills_up_to_its_size() {
    let d = run(&pool(2, None, None), &snapshot(vec![], &[]));
    assert_eq!(d.start, 2);
    let status = d.status.pool.unwrap();
    assert_eq!((status.desired, status.ready, status.starting), (2, 0, 2));
    assert_eq!(d.events[0].reason, "Refilling");
}

#[test]
fn refill_concurrency_bounds_how_many_start_at_once() {
    let d = run(&pool(10, None, Some(3)), &snapshot(vec![], &[]));
    assert_eq!(d.start, 3);
    let d = run(&pool(10, None, None), &snapshot(vec![], &[]));
    assert_eq!(d.start, DEFAULT_REFILL_CONCURRENCY);
    let starting = vec![
        slot("a", SlotState::Starting, 1),
        slot("b", SlotState::Starting, 1),
    ];
    let d = run(&pool(10, None, Some(3)), &snapshot(starting, &[]));
    assert_eq!(d.start, 1, "two are already starting");
}

#[test]
fn a_burst_grows_the_pool_and_it_shrinks_back_when_claims_age_out() {
    let p = pool(2, Some(6), Some(4));
    // Five claims in the last seconds emptied the pool: desired 6, four start now.
    let d = run(&p, &snapshot(vec![], &[50, 3, 2, 1, 1]));
    assert_eq!(d.status.pool.as_ref().unwrap().desired, 6);
    assert_eq!(d.start, 4);
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_secs(10)),
        "when the oldest claim ages out"
    );
    // A minute later, no claims: six ready slots shrink back to two, oldest first.
    let ready: Vec<SlotView> = (0..6)
        .map(|i| slot(&format!("s{i}"), SlotState::Ready, 100 - i))
        .collect();
    let d = run(&p, &snapshot(ready, &[]));
    assert_eq!(d.start, 0);
    assert_eq!(
        d.remove
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        vec!["s0", "s1", "s2", "s3"]
    );
    assert_eq!(d.status.pool.unwrap().ready, 2);
}

#[test]
fn misses_are_reported_once_as_a_warning() {
    let mut s = snapshot(vec![], &[0, 0, 0]);
    s.unreported_misses = 3;
    s.counters = Counters {
        claimed: 2,
        missed: 3,
        last_claim_time: Some(t0()),
    };
    let d = run(&pool(2, None, None), &s);
    assert!(d.events.contains(&Event::warning(
        "PoolEmpty",
        "pool empty: 3 claims started cold"
    )));
    assert_eq!(d.misses_reported, 3);
    let status = d.status.pool.unwrap();
    assert_eq!((status.claimed, status.missed), (2, 3));
    assert_eq!(status.last_claim_time, Some(t0()));
}

#[test]
fn stale_broken_and_stuck_slots_are_removed_and_replaced() {
    let mut stale = slot("old", SlotState::Ready, 10);
    stale.fingerprint = Fingerprint::from([("shell".to_string(), "h0".to_string())]);
    let slots = vec![
        stale,
        slot(
            "dead",
            SlotState::Broken("a container of it stopped".into()),
            10,
        ),
        slot("stuck", SlotState::Starting, 121),
        slot("good", SlotState::Ready, 10),
    ];
    let d = run(&pool(2, None, None), &snapshot(slots, &[]));
    let removed: Vec<&str> = d.remove.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(removed, vec!["old", "dead", "stuck"]);
    assert_eq!(d.start, 1);
    assert_eq!(
        d.events
            .iter()
            .filter(|e| e.reason == "PoolSlotFailed")
            .count(),
        2
    );
}

#[test]
fn failures_pause_the_refill() {
    let mut s = snapshot(vec![], &[]);
    s.failures_in_a_row = 3;
    s.retry_at = Some(t0() + TimeDelta::seconds(4));
    s.last_failure = Some("image \"nope\" is not available".into());
    let d = run(&pool(2, None, None), &s);
    assert_eq!(d.start, 0);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(4)));
    assert!(d.status.message.unwrap().contains("not available"));
    assert_eq!(refill_backoff(1), TimeDelta::seconds(1));
    assert_eq!(refill_backoff(3), TimeDelta::seconds(4));
    assert_eq!(refill_backoff(50), TimeDelta::seconds(300));
}

#[test]
fn no_pool_means_no_slots_and_no_status() {
    let d = decide(
        None,
        &fp(),
        &snapshot(vec![slot("a", SlotState::Ready, 1)], &[]),
        &SandboxTemplateStatus::default(),
        1,
        t0(),
    );
    assert_eq!(d.start, 0);
    assert_eq!(d.remove.len(), 1);
    let d = decide(
        None,
        &fp(),
        &snapshot(vec![], &[]),
        &SandboxTemplateStatus::default(),
        1,
        t0(),
    );
    assert_eq!(d.status.pool, None);
    assert!(d.events.is_empty());
}
