//! The process's metrics, in the Prometheus text formats: the controllers, the Docker
//! gate and the HTTP API count into them (a neutral module, so none of them needs any
//! process wiring), and `/metrics` (the API's in `serve` and `operator --api`, the
//! operator's own on `--metrics-addr`) encodes them. The list, with the label bounds,
//! is in docs/observability.md.

mod labels;
mod objects;
mod text;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use labels::{BoundedNames, bounded_method};
pub use labels::{MAX_JOBS, MAX_WORKSPACES, OTHER};
use objects::ObjectPhases;
pub use text::{OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, wants_openmetrics};

use crate::resources::{Kind, Object};

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

/// An anomaly's workspace (bounded as the runs') and kind (one of seven, see
/// `resources::anomaly`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnomalyLabels {
    workspace: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    workspace: String,
    /// Not `job`: Prometheus gives every scraped series a `job` label of its own (the
    /// scrape job), and would rename this one to `exported_job`.
    job_name: String,
    /// The phase the run ended in: Succeeded, Failed, TimedOut or Cancelled.
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}`), never
    /// the raw path, so names in paths do not multiply the series.
    route: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    operation: String,
    /// `answered` (the daemon or API server answered, even with an error), `timeout` or
    /// `unreachable`.
    outcome: String,
}

/// A notification's event (`runFailed`, `anomaly`, `approvalWaiting`, `sandboxExpiring`)
/// and outcome (`delivered`, `failed`, `dropped`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    event: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    workspace: String,
    template: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClaimLabels {
    /// `hit` (a warm slot was taken) or `miss` (the sandbox starts cold).
    outcome: String,
}

/// The latency of calls to something outside (the Docker daemon), by operation. Made
/// by what makes the calls, and registered into [`Metrics`] once there is one.
#[derive(Clone)]
pub struct CallLatency {
    family: Family<CallLabels, Histogram>,
}

impl Default for CallLatency {
    fn default() -> Self {
        // 1 ms to about 33 s: a call timeout is 30 s by default.
        CallLatency {
            family: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
        }
    }
}

impl CallLatency {
    /// One call of `operation` (a fixed name such as `create_container`) that ended with
    /// `outcome` (`answered`, `timeout` or `unreachable`) after `took`.
    pub fn observe(&self, operation: &'static str, outcome: &'static str, took: Duration) {
        self.observe_named(operation.to_string(), outcome, took);
    }

    /// [`CallLatency::observe`] for an operation named from a bounded set at run time
    /// (a Kubernetes verb and resource).
    pub fn observe_named(&self, operation: String, outcome: &'static str, took: Duration) {
        self.family
            .get_or_create(&CallLabels {
                operation,
                outcome: outcome.to_string(),
            })
            .observe(took.as_secs_f64());
    }
}

/// A gauge read fresh at every scrape from what already holds the figure in memory.
type Sampler = Box<dyn Fn() + Send + Sync>;

/// Every metric the process exports. Shared by what counts and by `/metrics`.
pub struct Metrics {
    registry: Mutex<Registry>,
    reconciles: Family<ReconcileLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    queue_depth: Gauge,
    leader: Gauge,
    objects: ObjectPhases,
    runs: Family<RunLabels, Histogram>,
    anomalies: Family<AnomalyLabels, Counter>,
    workspaces: BoundedNames,
    jobs: BoundedNames,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram>,
    pool_ready: Family<PoolLabels, Gauge>,
    claims: Family<ClaimLabels, Histogram>,
    notifications: Family<NotificationLabels, Counter>,
    docker_calls: OnceLock<()>,
    kube_calls: OnceLock<()>,
    samplers: Mutex<Vec<Sampler>>,
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
        let objects = ObjectPhases::default();
        registry.register(
            "objects",
            "Jobs and Sandboxes by phase, as the controllers last saw them",
            objects.gauges(),
        );
        // 0.1 s to about 55 min.
        let runs = Family::<RunLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.1, 2.0, 16))
        });
        registry.register(
            "job_run_duration_seconds",
            "How long finished Job runs took (start to completion, every attempt), by \
             workspace, job and final phase",
            runs.clone(),
        );
        let anomalies = Family::<AnomalyLabels, Counter>::default();
        registry.register(
            "job_anomalies",
            "Anomalies found in finished Job runs (SlowerThanUsual, MemorySpike, ...), by \
             workspace and kind",
            anomalies.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "HTTP API requests by method, route template and status code",
            requests.clone(),
        );
        // 1 ms to about 33 s (a request times out after 60 s; streams last longer).
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "api_request_duration_seconds",
            "How long the HTTP API took to answer (up to the response headers), by method \
             and route template",
            request_duration.clone(),
        );
        let pool_ready = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "warm_pool_ready",
            "Ready warm-pool slots by workspace and SandboxTemplate",
            pool_ready.clone(),
        );
        // 10 us to about 10 s: a hit is a lookup in memory, a miss is counted at once.
        let claims = Family::<ClaimLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00001, 4.0, 11))
        });
        registry.register(
            "warm_pool_claim_duration_seconds",
            "How long a Sandbox's claim on its template's warm pool took, by outcome (hit \
             or miss)",
            claims.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Outgoing notifications by event and outcome: delivered (a 2xx answer), failed \
             (refused, out of attempts, or unsigned for want of its secret), dropped (the \
             queue was full)",
            notifications.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            reconciles,
            duration,
            queue_depth,
            leader,
            objects,
            runs,
            anomalies,
            workspaces: BoundedNames::new(MAX_WORKSPACES),
            jobs: BoundedNames::new(MAX_JOBS),
            requests,
            request_duration,
            pool_ready,
            claims,
            notifications,
            docker_calls: OnceLock::new(),
            kube_calls: OnceLock::new(),
            samplers: Mutex::new(Vec::new()),
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

    /// Counts one notification of `event` that ended with `outcome`; both from fixed
    /// sets, so the series stay few.
    pub fn notification(&self, event: &'static str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                event: event.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Reads the queue depth from `depth` at every scrape.
    pub fn sample_queue_depth(&self, depth: impl Fn() -> usize + Send + Sync + 'static) {
        let gauge = self.queue_depth.clone();
        self.sample(move || {
            gauge.set(i64::try_from(depth()).unwrap_or(i64::MAX));
        });
    }

    /// Reads the ready warm-pool slots from `ready` at every scrape, as
    /// `(workspace, template, ready slots)`.
    pub fn sample_warm_pools(
        &self,
        ready: impl Fn() -> Vec<(String, String, usize)> + Send + Sync + 'static,
    ) {
        let family = self.pool_ready.clone();
        self.sample(move || {
            // A template gone since the last scrape leaves no series behind.
            family.clear();
            for (workspace, template, n) in ready() {
                family
                    .get_or_create(&PoolLabels {
                        workspace,
                        template,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        });
    }

    fn sample(&self, sampler: impl Fn() + Send + Sync + 'static) {
        self.samplers
            .lock()
            .expect("metrics samplers lock")
            .push(Box::new(sampler));
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Exports the Docker calls `latency` counts (once: later calls do nothing).
    pub fn register_docker_calls(&self, latency: CallLatency) {
        self.docker_calls.get_or_init(|| {
            self.registry
                .lock()
                .expect("metrics registry lock")
                .register(
                    "docker_call_duration_seconds",
                    "How long Docker calls took, by operation and outcome (answered, \
                     timeout, unreachable); gated calls include their wait for a permit",
                    latency.family,
                );
        });
    }

    /// Exports the Kubernetes API calls `latency` counts (once: later calls do nothing).
    pub fn register_kube_calls(&self, latency: CallLatency) {
        self.kube_calls.get_or_init(|| {
            self.registry
                .lock()
                .expect("metrics registry lock")
                .register(
                    "kube_call_duration_seconds",
                    "How long Kubernetes API calls took to answer (to the response headers), \
                     by verb and resource, and outcome (answered, unreachable)",
                    latency.family,
                );
        });
    }

    /// A Job or Sandbox as the store now has it (from the watch): moves it between the
    /// phase gauges, and observes a Job's run that has just finished.
    pub fn object_changed(&self, object: &Object) {
        if let Some(run) = self.objects.changed(object) {
            self.run_finished(&run.workspace, &run.job, &run.phase, run.took);
            for kind in &run.anomalies {
                let labels = AnomalyLabels {
                    workspace: self.workspaces.label(&run.workspace, &run.workspace),
                    kind: kind.clone(),
                };
                self.anomalies.get_or_create(&labels).inc();
            }
        }
    }

    /// A Job or Sandbox deleted from the store.
    pub fn object_deleted(&self, object: &Object) {
        self.objects.deleted(object);
    }

    /// Every object of `kind`, as just listed (at start-up and at each resync): the
    /// phase gauges of the kind are counted again from them.
    pub fn objects_listed(&self, kind: Kind, objects: &[Object]) {
        self.objects.listed(kind, objects);
    }

    /// One finished Job run, with its labels bounded (see [`MAX_JOBS`]).
    pub fn run_finished(&self, workspace: &str, job: &str, phase: &str, took: Duration) {
        let labels = RunLabels {
            workspace: self.workspaces.label(workspace, workspace),
            job_name: self.jobs.label(&format!("{workspace}/{job}"), job),
            phase: phase.to_string(),
        };
        self.runs.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// One HTTP API request: `route` is the matched route template, or None when no
    /// route matched.
    pub fn request_served(&self, method: &str, route: Option<&str>, code: u16, took: Duration) {
        let method = bounded_method(method).to_string();
        let route = labels::route_label(route);
        self.requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                route: route.clone(),
                code: code.to_string(),
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { method, route })
            .observe(took.as_secs_f64());
    }

    /// One claim on a warm pool: `hit` when a ready slot was taken.
    pub fn warm_pool_claimed(&self, hit: bool, took: Duration) {
        let outcome = if hit { "hit" } else { "miss" };
        self.claims
            .get_or_create(&ClaimLabels {
                outcome: outcome.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics exposition of every metric (what Prometheus asks for).
    pub fn encode(&self) -> String {
        for sampler in self.samplers.lock().expect("metrics samplers lock").iter() {
            sampler();
        }
        let mut text = String::new();
        let registry = self.registry.lock().expect("metrics registry lock");
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }

    /// The exposition in the format the `Accept` header asks for: OpenMetrics when it
    /// names it, else the classic Prometheus text format (0.0.4) that older scrapers,
    /// `promtool check metrics` and people with curl read. Returns (content type, body).
    pub fn exposition(&self, accept: Option<&str>) -> (&'static str, String) {
        let openmetrics = self.encode();
        if wants_openmetrics(accept) {
            (OPENMETRICS_CONTENT_TYPE, openmetrics)
        } else {
            (TEXT_CONTENT_TYPE, text::classic(&openmetrics))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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

    #[test]
    fn samplers_run_at_each_scrape() {
        let metrics = Metrics::new();
        let depth = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(3));
        let read = depth.clone();
        metrics.sample_queue_depth(move || read.load(std::sync::atomic::Ordering::Relaxed));
        assert!(metrics.encode().contains("orcaops_queue_depth 3"));
        depth.store(9, std::sync::atomic::Ordering::Relaxed);
        assert!(metrics.encode().contains("orcaops_queue_depth 9"));

        let pools = std::sync::Arc::new(Mutex::new(vec![("ws".to_string(), "py".to_string(), 2)]));
        let read = pools.clone();
        metrics.sample_warm_pools(move || read.lock().unwrap().clone());
        let text = metrics.encode();
        assert!(
            text.contains(r#"orcaops_warm_pool_ready{workspace="ws",template="py"} 2"#),
            "{text}"
        );
        pools.lock().unwrap().clear();
        assert!(
            !metrics.encode().contains(r#"template="py""#),
            "a removed template leaves"
        );
    }

    #[test]
    fn a_finished_run_is_observed_once_with_its_duration() {
        let metrics = Metrics::new();
        let mut job = Object::new(Kind::Job, "team-a", "build", json!({}));
        job.metadata.uid = "u1".into();
        job.metadata.resource_version = "1".into();
        job.status = json!({"phase": "Running", "startTime": "2026-03-01T12:00:00Z"});
        metrics.object_changed(&job);
        job.metadata.resource_version = "2".into();
        job.status = json!({"phase": "Succeeded", "startTime": "2026-03-01T12:00:00Z",
            "completionTime": "2026-03-01T12:00:02.5Z"});
        metrics.object_changed(&job);
        // The same status seen again (a resync's list, a repeated event) is no new run.
        metrics.object_changed(&job);
        metrics.objects_listed(Kind::Job, std::slice::from_ref(&job));
        let text = metrics.encode();
        let labels = r#"{workspace="team-a",job_name="build",phase="Succeeded"}"#;
        assert!(
            text.contains(&format!("orcaops_job_run_duration_seconds_count{labels} 1")),
            "{text}"
        );
        assert!(text.contains(&format!("orcaops_job_run_duration_seconds_sum{labels} 2.5")));
        assert!(text.contains(r#"orcaops_objects{kind="Job",phase="Succeeded"} 1"#));
        assert!(text.contains(r#"orcaops_objects{kind="Job",phase="Running"} 0"#));
        assert!(!text.contains("orcaops_job_anomalies_total{"), "{text}");
    }

    #[test]
    fn a_finished_runs_anomalies_are_counted_by_kind() {
        let metrics = Metrics::new();
        let mut job = Object::new(Kind::Job, "team-a", "build", json!({}));
        job.metadata.uid = "u1".into();
        for (version, run) in [(1, 1), (3, 2)] {
            job.metadata.resource_version = version.to_string();
            job.status = json!({"phase": "Running", "startTime": "2026-03-01T12:00:00Z"});
            metrics.object_changed(&job);
            job.metadata.resource_version = (version + 1).to_string();
            job.status = json!({"phase": "Succeeded", "startTime": "2026-03-01T12:00:00Z",
            "completionTime": "2026-03-01T12:00:09Z",
            "anomalies": [
                {"kind": "SlowerThanUsual", "run": run, "observed": "9 s", "baseline": "1 s", "message": "slow"},
                {"kind": "MemorySpike", "run": run, "observed": "", "baseline": "", "message": ""},
                {"kind": "made up {label}", "run": run, "observed": "", "baseline": "", "message": ""}
            ]});
            metrics.object_changed(&job);
            // Seen again: not counted again.
            metrics.object_changed(&job);
        }
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"orcaops_job_anomalies_total{workspace="team-a",kind="SlowerThanUsual"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"orcaops_job_anomalies_total{workspace="team-a",kind="MemorySpike"} 2"#
            )
        );
        assert!(
            text.contains(r#"orcaops_job_anomalies_total{workspace="team-a",kind="_other"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn docker_calls_are_registered_once() {
        let metrics = Metrics::new();
        let latency = CallLatency::default();
        metrics.register_docker_calls(latency.clone());
        metrics.register_docker_calls(latency.clone());
        latency.observe("create_container", "answered", Duration::from_millis(20));
        let text = metrics.encode();
        assert_eq!(
            text.matches("# TYPE orcaops_docker_call_duration_seconds histogram")
                .count(),
            1,
            "{text}"
        );
        assert!(text.contains(
            r#"orcaops_docker_call_duration_seconds_count{operation="create_container",outcome="answered"} 1"#
        ));
    }

    #[test]
    fn requests_are_counted_by_route_template_and_code() {
        let metrics = Metrics::new();
        let route = "/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}/{name}";
        metrics.request_served("GET", Some(route), 200, Duration::from_millis(2));
        metrics.request_served("GET", Some(route), 404, Duration::from_millis(1));
        metrics.request_served("GET", None, 404, Duration::from_millis(1));
        metrics.request_served("BREW", None, 405, Duration::from_millis(1));
        let text = metrics.encode();
        assert!(
            text.contains(&format!(
                r#"orcaops_api_requests_total{{method="GET",route="{route}",code="200"}} 1"#
            )),
            "{text}"
        );
        assert!(text.contains(
            r#"orcaops_api_requests_total{method="GET",route="_unmatched",code="404"} 1"#
        ));
        assert!(text.contains(
            r#"orcaops_api_requests_total{method="_other",route="_unmatched",code="405"} 1"#
        ));
    }
}
