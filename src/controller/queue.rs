//! A keyed work queue: each key is queued at most once, never handed to two workers at
//! once, can be re-added after a delay, and backs off exponentially on errors.
//!
//! It is fed by the store's watch stream, by periodic resyncs and by runtime watchers,
//! and is the only reconcile machinery: every controller runs on it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

struct State<K> {
    queue: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    /// Keys added while a worker held them: queued again when the worker is done.
    dirty: HashSet<K>,
    failures: HashMap<K, u32>,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
}

/// The first error backoff; it doubles per consecutive failure up to [`MAX_ERROR_BACKOFF`].
pub const BASE_ERROR_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(60);

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    pub fn new() -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
        })
    }

    pub fn add(&self, key: K) {
        let mut state = self.state.lock().expect("queue lock");
        if state.active.contains(&key) {
            state.dirty.insert(key);
        } else if state.queued.insert(key.clone()) {
            state.queue.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Waits for the next key and marks it active; call [`WorkQueue::done`] when finished.
    pub async fn next(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().expect("queue lock");
                if let Some(key) = state.queue.pop_front() {
                    state.queued.remove(&key);
                    state.active.insert(key.clone());
                    // Another worker may be waiting for work that is still queued.
                    if !state.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &K) {
        let requeue = {
            let mut state = self.state.lock().expect("queue lock");
            state.active.remove(key);
            state.dirty.remove(key)
        };
        if requeue {
            self.add(key.clone());
        }
    }

    /// Counts a failure and returns how long to wait before retrying this key.
    pub fn backoff(&self, key: &K) -> Duration {
        let mut state = self.state.lock().expect("queue lock");
        let failures = state.failures.entry(key.clone()).or_insert(0);
        *failures = failures.saturating_add(1);
        let factor = 1u32 << (*failures - 1).min(16);
        BASE_ERROR_BACKOFF
            .saturating_mul(factor)
            .min(MAX_ERROR_BACKOFF)
    }

    /// Clears the failure count after a success.
    pub fn forget(&self, key: &K) {
        self.state.lock().expect("queue lock").failures.remove(key);
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("queue lock").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deduplicates_queued_keys() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, "a");
        assert_eq!(q.next().await, "b");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_added_while_active_comes_back_after_done() {
        let q = WorkQueue::new();
        q.add("a");
        let key = q.next().await;
        q.add("a");
        assert!(q.is_empty(), "an active key must not be handed out twice");
        q.done(&key);
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test]
    async fn backoff_doubles_and_resets() {
        let q: Arc<WorkQueue<&str>> = WorkQueue::new();
        assert_eq!(q.backoff(&"a"), BASE_ERROR_BACKOFF);
        assert_eq!(q.backoff(&"a"), BASE_ERROR_BACKOFF * 2);
        assert_eq!(q.backoff(&"a"), BASE_ERROR_BACKOFF * 4);
        q.forget(&"a");
        assert_eq!(q.backoff(&"a"), BASE_ERROR_BACKOFF);
        for _ in 0..40 {
            q.backoff(&"b");
        }
        assert_eq!(q.backoff(&"b"), MAX_ERROR_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_waits() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(q.is_empty());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(q.next().await, "a");
    }
}
