//! The recent watch events, kept in memory so that a watcher can resume from a
//! resourceVersion without listing again.

use std::collections::VecDeque;

use crate::store::{Result, StoreError, WatchEvent};

/// How many bytes of events the history keeps at most, measured by their stored JSON.
/// Ten thousand small Jobs fit many times over; ten thousand 1 MiB workflow statuses do
/// not, and without this bound a burst of large updates held gigabytes.
pub(super) const HISTORY_BYTES: usize = 16 << 20;

/// The last `capacity` watch events, and no more than `max_bytes` of them, in
/// resourceVersion order. The newest event is always kept, whatever its size.
///
/// It holds every event with a resourceVersion above `base` and up to `head`; a watcher
/// that last saw a version below `base` has missed events and must list again.
#[derive(Debug)]
pub(super) struct WatchHistory {
    events: VecDeque<(u64, WatchEvent, usize)>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    base: u64,
    head: u64,
}

impl WatchHistory {
    /// An empty history that starts at `revision`: what happened before is not known.
    pub(super) fn new(revision: u64, capacity: usize, max_bytes: usize) -> Self {
        WatchHistory {
            events: VecDeque::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
            base: revision,
            head: revision,
        }
    }

    /// The resourceVersion of the newest event published.
    pub(super) fn head(&self) -> u64 {
        self.head
    }

    /// Appends the event of `revision`, which weighs `bytes`, dropping the oldest events
    /// while the history holds too many or too much.
    pub(super) fn push(&mut self, revision: u64, event: WatchEvent, bytes: usize) {
        self.events.push_back((revision, event, bytes));
        self.bytes += bytes;
        self.head = revision;
        while self.events.len() > 1
            && (self.events.len() > self.capacity || self.bytes > self.max_bytes)
            && let Some((dropped, _, weight)) = self.events.pop_front()
        {
            self.base = dropped;
            self.bytes -= weight;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether every event after `revision` is still here.
    pub(super) fn covers(&self, revision: u64) -> bool {
        (self.base..=self.head).contains(&revision)
    }

    /// Every event after `revision`. A revision older than the history, or newer than
    /// anything published (the store was reset under the watcher), is Gone: the watcher
    /// can only recover by listing again.
    pub(super) fn since(&self, revision: u64, asked: &str) -> Result<Vec<WatchEvent>> {
        if !self.covers(revision) {
            return Err(StoreError::Gone {
                rv: asked.to_string(),
            });
        }
        // Versions are contiguous within the history, but a binary search does not rely on it.
        let start = self.events.partition_point(|(rv, _, _)| *rv <= revision);
        Ok(self
            .events
            .range(start..)
            .map(|(_, event, _)| event.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::{Kind, Object};
    use crate::store::WatchEventType;

    fn event(rv: u64) -> WatchEvent {
        let mut object = Object::new(Kind::Job, "default", &format!("job-{rv}"), json!({}));
        object.metadata.resource_version = rv.to_string();
        WatchEvent::new(WatchEventType::Added, object)
    }

    fn versions(events: &[WatchEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| e.object.metadata.resource_version.clone())
            .collect()
    }

    #[test]
    fn replays_only_what_follows_the_version() {
        let mut history = WatchHistory::new(10, 100, HISTORY_BYTES);
        for rv in 11..=14 {
            history.push(rv, event(rv), 100);
        }
        assert_eq!(versions(&history.since(12, "12").unwrap()), ["13", "14"]);
        assert_eq!(
            versions(&history.since(10, "10").unwrap()),
            ["11", "12", "13", "14"]
        );
        assert!(history.since(14, "14").unwrap().is_empty());
        assert_eq!(history.head(), 14);
    }

    #[test]
    fn versions_before_the_start_are_gone() {
        let history = WatchHistory::new(10, 100, HISTORY_BYTES);
        assert!(matches!(history.since(9, "9"), Err(StoreError::Gone { rv }) if rv == "9"));
        assert!(history.since(10, "10").unwrap().is_empty());
    }

    #[test]
    fn dropping_old_events_moves_the_horizon() {
        let mut history = WatchHistory::new(0, 3, HISTORY_BYTES);
        for rv in 1..=5 {
            history.push(rv, event(rv), 100);
        }
        // 1 and 2 were dropped: a watcher at 1 missed event 2.
        assert!(matches!(
            history.since(1, "1"),
            Err(StoreError::Gone { .. })
        ));
        assert_eq!(versions(&history.since(2, "2").unwrap()), ["3", "4", "5"]);
    }

    #[test]
    fn versions_from_the_future_are_gone() {
        let mut history = WatchHistory::new(0, 3, HISTORY_BYTES);
        history.push(1, event(1), 100);
        assert!(matches!(
            history.since(2, "2"),
            Err(StoreError::Gone { .. })
        ));
    }

    #[test]
    fn large_events_are_dropped_by_weight_not_only_by_count() {
        let mut history = WatchHistory::new(0, 10_000, 1000);
        for rv in 1..=10 {
            history.push(rv, event(rv), 300);
        }
        // 1000 bytes hold three events of 300: the rest are gone, and a watcher that
        // saw 7 can still resume, one that saw 6 cannot.
        assert_eq!(history.len(), 3);
        assert_eq!(versions(&history.since(7, "7").unwrap()), ["8", "9", "10"]);
        assert!(matches!(
            history.since(6, "6"),
            Err(StoreError::Gone { .. })
        ));
        // One event larger than the whole bound is still kept: it is the newest.
        history.push(11, event(11), 5000);
        assert_eq!(history.len(), 1);
        assert_eq!(versions(&history.since(10, "10").unwrap()), ["11"]);
        history.push(12, event(12), 10);
        assert_eq!(versions(&history.since(11, "11").unwrap()), ["12"]);
    }
}
