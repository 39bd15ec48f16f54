//! Token buckets, one per caller (an API key, or a webhook sender's address): a rate a
//! second and a burst above it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Requests per second per caller, and the burst allowed above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    /// `--rate-limit N`: N requests a second, bursts of 10 N; 0 turns the limit off.
    pub fn per_second(n: u32) -> Option<RateLimit> {
        (n > 0).then(|| RateLimit {
            per_second: f64::from(n),
            burst: f64::from(n) * 10.0,
        })
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How many callers are remembered before the full buckets (callers quiet long enough
/// to have their whole burst back) are forgotten.
const REMEMBERED: usize = 10_000;

/// One bucket per caller.
pub struct Buckets {
    rate: Option<RateLimit>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    /// Buckets of `rate`; None lets everything through.
    pub fn new(rate: Option<RateLimit>) -> Buckets {
        Buckets {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `caller`'s bucket; Err with the seconds to wait when empty.
    pub fn take(&self, caller: &str) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= REMEMBERED && !buckets.contains_key(caller) {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second < rate.burst
            });
        }
        let bucket = buckets.entry(caller.to_string()).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate.per_second;
        bucket.tokens = (bucket.tokens + refill).min(rate.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_and_callers_are_apart() {
        let buckets = Buckets::new(Some(RateLimit {
            per_second: 1.0,
            burst: 3.0,
        }));
        for _ in 0..3 {
            assert_eq!(buckets.take("a"), Ok(()));
        }
        assert_eq!(buckets.take("a"), Err(1));
        assert_eq!(
            buckets.take("b"),
            Ok(()),
            "another caller has its own bucket"
        );
        assert_eq!(Buckets::new(None).take("a"), Ok(()));
    }

    #[test]
    fn many_callers_are_forgotten_once_their_buckets_are_full() {
        let buckets = Buckets::new(Some(RateLimit {
            per_second: 1e9,
            burst: 2.0,
        }));
        for i in 0..REMEMBERED + 10 {
            buckets.take(&format!("caller-{i}")).unwrap();
        }
        let remembered = buckets.buckets.lock().unwrap().len();
        assert!(remembered < REMEMBERED, "{remembered} callers remembered");
    }
}
