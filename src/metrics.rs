//! The process's metrics, in the Prometheus (OpenMetrics) text format: the controllers
//! count into them (a neutral module, so controllers need no process wiring), and the
//! operator's `/metrics` endpoint encodes them.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::resources::Kind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    /// `ok`, or the error's stable category (`conflict`, `store`, `runtime`, ...).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Every metric the operator exports. Shared by the controllers (which count) and the
/// metrics endpoint (which encodes).
pub struct Metrics {
    registry: Mutex<Registry>,
    reconciles: Family<ReconcileLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    queue_depth: Gauge,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("orcaops");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and outcome (ok, or the error category)",
            reconciles.clone(),
        );
        // 1 ms to about 16 s.
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register(
            "reconcile_duration_seconds",
            "How long one reconcile took, by kind",
            duration.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Objects waiting in the work queue",
            queue_depth.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the Lease and acts, 0 while it stands by",
            leader.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            reconciles,
            duration,
            queue_depth,
            leader,
        }
    }

    /// Counts one reconcile of `kind` with its outcome and duration.
    pub fn reconciled(&self, kind: Kind, outcome: &str, took: Duration) {
        let kind = kind.as_str().to_string();
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().expect("metrics registry lock");
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_by_kind_and_outcome() {
        let metrics = Metrics::new();
        metrics.reconciled(Kind::Job, "ok", Duration::from_millis(3));
        metrics.reconciled(Kind::Job, "ok", Duration::from_millis(5));
        metrics.reconciled(Kind::Job, "conflict", Duration::from_millis(1));
        metrics.set_queue_depth(4);
        metrics.set_leader(true);
        let text = metrics.encode();
        assert!(
            text.contains(r#"orcaops_reconciles_total{kind="Job",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"orcaops_reconciles_total{kind="Job",outcome="conflict"} 1"#));
        assert!(text.contains(r#"orcaops_reconcile_duration_seconds_count{kind="Job"} 3"#));
        assert!(text.contains("orcaops_queue_depth 4"));
        assert!(text.contains("orcaops_leader 1"));
    }
}
