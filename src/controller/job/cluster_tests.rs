//! The Job controller on a cluster: reconciles of one Job against a small fake API
//! server (the tower-test mock, answering from the state below), through the real
//! `KubeStore` and `PodRuntime`. Each scenario sets the pod's state as the kubelet
//! would, reconciles, and reads what the controller wrote.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::controller::Context;
use crate::records::AttemptOutcome;
use crate::resources::job::JobPhase;
use crate::resources::{Kind, ObjectKey};
use crate::store::kube::mock::{Reply, Seen, event_created, status};

const NS: &str = "default";
const UID: &str = "0123abcd-4567-89ef-0123-456789abcdef";
const JOB_PATH: &str = "/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/build";

/// What the fake API server holds.
#[derive(Default)]
struct Cluster {
    job: Option<Value>,
    version: u64,
    pods: BTreeMap<String, Value>,
    policies: Vec<String>,
    /// What `pods/log` answers, for every pod.
    log: String,
    /// Status writes still to refuse with 409.
    status_conflicts: usize,
    /// Every request, as `METHOD path`.
    requests: Vec<String>,
}

impl Cluster {
    fn bump(&mut self) -> Value {
        self.version += 1;
        let job = self.job.as_mut().expect("the job exists");
        job["metadata"]["resourceVersion"] = json!(self.version.to_string());
        job.clone()
    }

    fn answer(&mut self, request: &Seen) -> Reply {
        let path = request.path.as_str();
        self.requests.push(format!("{} {path}", request.method));
        let pods = format!("/api/v1/namespaces/{NS}/pods");
        let policies = format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies");
        let ok = |value: Value| Reply::Json(200, value);
        let gone = || Reply::Json(404, status(404, "NotFound", "not found"));
        match (request.method.as_str(), path) {
            ("GET", JOB_PATH) => self.job.clone().map_or_else(gone, ok),
            ("PATCH", JOB_PATH) => {
                let ops: json_patch::Patch =
                    serde_json::from_value(request.body.clone()).expect("a JSON patch");
                let job = self.job.as_mut().expect("the job exists");
                // The API server tests a missing list as null.
                let meta = job["metadata"].as_object_mut().unwrap();
                meta.entry("finalizers").or_insert(Value::Null);
                json_patch::patch(job, &ops).expect("the patch applies");
                let finalizers = job["metadata"]["finalizers"].as_array().cloned();
                if job["metadata"]["deletionTimestamp"].is_string()
                    && finalizers.is_none_or(|f| f.is_empty())
                {
                    return ok(self.job.take().unwrap());
                }
                ok(self.bump())
            }
            ("PATCH", p) if p == format!("{JOB_PATH}/status") => {
                if self.status_conflicts > 0 {
                    self.status_conflicts -= 1;
                    return Reply::Json(
                        409,
                        status(409, "Conflict", "the object has been modified"),
                    );
                }
                let job = self.job.as_mut().expect("the job exists");
                job["status"] = request.body["status"].clone();
                ok(self.bump())
            }
            ("GET", "/api/v1/pods") => ok(json!({
                "apiVersion": "v1", "kind": "PodList", "metadata": {},
                "items": self.pods.values().cloned().collect::<Vec<_>>(),
            })),
            ("POST", p) if p == pods => {
                let name = request.body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default();
                if self.pods.contains_key(name) {
                    return Reply::Json(409, status(409, "AlreadyExists", "already exists"));
                }
                let mut pod = request.body.clone();
                pod["status"] = json!({"phase": "Pending"});
                let name = pod["metadata"]["name"].as_str().unwrap().to_string();
                self.pods.insert(name, pod.clone());
                Reply::Json(201, pod)
            }
            ("POST", p) if p == policies => {
                self.policies
                    .push(request.body["metadata"]["name"].as_str().unwrap().into());
                Reply::Json(201, request.body.clone())
            }
            ("POST", "/apis/events.k8s.io/v1/namespaces/default/events") => {
                Reply::Json(201, event_created())
            }
            (method, p) if p.starts_with(&format!("{pods}/")) => {
                let rest = &p[pods.len() + 1..];
                let (name, log) = match rest.strip_suffix("/log") {
                    Some(name) => (name, true),
                    None => (rest, false),
                };
                match (method, log, self.pods.contains_key(name)) {
                    (_, _, false) => gone(),
                    ("GET", true, true) => Reply::Text(200, self.log.clone()),
                    ("GET", false, true) => ok(self.pods[name].clone()),
                    // A graceful delete leaves the pod terminating (its log readable)
                    // until the kubelet has stopped it; here, until the next delete.
                    ("DELETE", false, true)
                        if request.body["gracePeriodSeconds"].as_i64().unwrap_or(0) > 0
                            && self.pods[name]["metadata"]["deletionTimestamp"].is_null() =>
                    {
                        let pod = self.pods.get_mut(name).unwrap();
                        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
                        ok(pod.clone())
                    }
                    ("DELETE", false, true) => ok(self.pods.remove(name).unwrap()),
                    _ => Reply::Json(405, status(405, "MethodNotAllowed", p)),
                }
            }
            ("DELETE", p) if p.starts_with(&format!("{policies}/")) => {
                let name = &p[policies.len() + 1..];
                match self.policies.iter().position(|n| n == name) {
                    Some(i) => {
                        self.policies.remove(i);
                        ok(status(200, "", ""))
                    }
                    None => gone(),
                }
            }
            (method, p) => Reply::Json(500, status(500, "Unexpected", &format!("{method} {p}"))),
        }
    }
}

/// A controller context on the fake cluster, with its records in a temporary directory.
struct Scenario {
    cluster: Arc<Mutex<Cluster>>,
    ctx: Arc<Context>,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl Scenario {
    /// The Job `build` in `default`: two steps, `spec` merged over that.
    async fn new(spec: Value) -> Scenario {
        let mut full = json!({
            "image": "busybox:1.36",
            "network": "bridge",
            "steps": [{"name": "one", "run": "echo one"}, {"name": "two", "run": "echo two"}],
        });
        json_patch::merge(&mut full, &spec);
        let cluster = Arc::new(Mutex::new(Cluster {
            job: Some(json!({
                "apiVersion": "orcaops.dev/v1alpha1", "kind": "Job",
                "metadata": {"name": "build", "namespace": NS, "uid": UID,
                    "generation": 1, "resourceVersion": "1",
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": full,
            })),
            version: 1,
            ..Default::default()
        }));
        let state = cluster.clone();
        let (ctx, dir, server) = crate::controller::mock_cluster(move |request| {
            Some(state.lock().unwrap().answer(request))
        })
        .await;
        Scenario {
            cluster,
            ctx,
            _dir: dir,
            _server: server,
        }
    }

    async fn reconcile(&self) -> Result<Option<Duration>, ControllerError> {
        let key = ObjectKey::new(Kind::Job, NS, "build");
        crate::controller::reconcile::drive(&JobReconciler, &self.ctx, &key).await
    }

    fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        f(&mut self.cluster.lock().unwrap())
    }

    fn status(&self) -> JobStatus {
        self.with(|c| serde_json::from_value(c.job.as_ref().unwrap()["status"].clone()).unwrap())
    }

    fn pod_names(&self) -> Vec<String> {
        self.with(|c| c.pods.keys().cloned().collect())
    }

    /// Sets the one pod's phase and its steps container's state.
    fn set_pod(&self, phase: &str, state: Value) {
        self.with(|c| {
            let pod = c.pods.values_mut().next().expect("a pod");
            pod["status"] = json!({
                "phase": phase,
                "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": [{"name": "steps", "image": "busybox:1.36", "imageID": "",
                    "ready": false, "restartCount": 0, "state": state}],
            });
        });
    }

    /// The runner's output of the pod: each step prints its name and ends with `codes[i]`.
    fn set_log(&self, codes: &[i64]) {
        let nonce = self.with(|c| {
            let pod = c.pods.values().next().expect("a pod");
            pod["metadata"]["labels"][crate::runtime::names::NONCE_LABEL]
                .as_str()
                .unwrap()
                .to_string()
        });
        // Ten seconds ago, a second per step.
        let start = Utc::now() - chrono::TimeDelta::seconds(10);
        let at = |tenths: i64| {
            (start + chrono::TimeDelta::milliseconds(100 * tenths))
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        };
        let mut log = String::new();
        for (i, code) in codes.iter().enumerate() {
            let t = 10 * i as i64;
            log += &format!("{} ::orcaops:{nonce}:start:{i}\n", at(t));
            log += &format!("{} output of step {i}\n", at(t + 5));
            log += &format!("{} ::orcaops:{nonce}:end:{i}:{code}\n", at(t + 10));
        }
        self.with(|c| c.log = log);
    }

    fn requests(&self, prefix: &str) -> Vec<String> {
        self.with(|c| {
            c.requests
                .iter()
                .filter(|r| r.starts_with(prefix))
                .cloned()
                .collect()
        })
    }

    /// Lets the harvest's background removal and the log followers run.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminated(code: i64) -> Value {
    json!({"terminated": {"exitCode": code, "startedAt": "2026-01-01T00:00:01Z",
        "finishedAt": "2026-01-01T00:00:05Z"}})
}

#[tokio::test]
async fn a_new_job_gets_its_finalizer_and_its_pod() {
    let s = Scenario::new(json!({"network": "none", "timeoutSeconds": 600})).await;
    s.reconcile().await.unwrap();
    let job = s.with(|c| c.job.clone().unwrap());
    assert_eq!(job["metadata"]["finalizers"], json!([keys::FINALIZER]));
    let pods = s.pod_names();
    assert_eq!(pods, ["orcaops-default-build-0123abcd-r1a1"]);
    // The policy before the pod, then the status, then the event.
    let writes = s.requests("POST");
    assert!(writes[0].ends_with("/networkpolicies"), "{writes:?}");
    assert!(writes[1].ends_with("/pods"), "{writes:?}");
    let pod = s.with(|c| c.pods[&pods[0]].clone());
    let deadline = pod["spec"]["activeDeadlineSeconds"].as_i64().unwrap();
    assert!((598..=600).contains(&deadline), "{deadline}");
    let status = s.status();
    assert_eq!(status.phase, JobPhase::Running);
    assert_eq!((status.run, status.attempt), (Some(1), Some(1)));
}

#[tokio::test]
async fn a_running_pod_keeps_the_job_running_and_is_not_duplicated() {
    let s = Scenario::new(json!({})).await;
    s.reconcile().await.unwrap();
    s.set_pod(
        "Running",
        json!({"running": {"startedAt": "2026-01-01T00:00:01Z"}}),
    );
    s.reconcile().await.unwrap();
    assert_eq!(s.pod_names().len(), 1);
    assert_eq!(s.requests("POST /api/v1/namespaces/default/pods").len(), 1);
    let status = s.status();
    assert_eq!(status.phase, JobPhase::Running);
    assert!(status.summary.unwrap().contains("running 2 steps"));
}

#[tokio::test]
async fn a_succeeded_pod_finishes_the_run_with_its_step_results() {
    let s = Scenario::new(json!({})).await;
    s.reconcile().await.unwrap();
    s.set_pod("Succeeded", terminated(0));
    s.set_log(&[0, 0]);
    s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(status.phase, JobPhase::Succeeded, "{:?}", status.summary);
    let codes: Vec<Option<i64>> = status.steps.iter().map(|s| s.exit_code).collect();
    assert_eq!(codes, [Some(0), Some(0)]);
    assert_eq!(status.steps[1].output_tail, "output of step 1");
    assert_eq!(status.steps[0].duration_ms, Some(1000));
    s.settle().await;
    assert!(s.pod_names().is_empty(), "the harvested pod is removed");
    let runs = s.ctx.records.runs(NS, "build").await.unwrap();
    assert_eq!(runs.len(), 1);
}

#[tokio::test]
async fn a_failed_pod_is_retried_after_the_backoff() {
    let s = Scenario::new(json!({"retry": {"limit": 2, "backoffSeconds": 30}})).await;
    s.reconcile().await.unwrap();
    s.set_pod("Failed", terminated(3));
    s.set_log(&[0, 3]);
    let requeue = s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(status.phase, JobPhase::Pending);
    assert_eq!(status.attempt, Some(2));
    assert!(status.next_attempt_time.is_some());
    assert!(
        requeue.is_some_and(|r| r > Duration::from_secs(20) && r <= Duration::from_secs(30)),
        "{requeue:?}"
    );
    s.settle().await;
    assert!(s.pod_names().is_empty());
    // Once the backoff has passed, attempt 2 gets its own pod.
    s.with(|c| {
        c.job.as_mut().unwrap()["status"]["nextAttemptTime"] = json!("2020-01-01T00:00:00Z");
    });
    s.reconcile().await.unwrap();
    assert_eq!(s.pod_names(), ["orcaops-default-build-0123abcd-r1a2"]);
    assert_eq!(s.status().phase, JobPhase::Running);
}

#[tokio::test]
async fn a_pod_that_cannot_pull_its_image_fails_its_attempt_with_the_kubelets_reason() {
    let s = Scenario::new(json!({"retry": {"limit": 1, "backoffSeconds": 30}})).await;
    s.reconcile().await.unwrap();
    s.set_pod(
        "Pending",
        json!({"waiting": {
            "reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"busybox:nope\""
        }}),
    );
    s.reconcile().await.unwrap();
    s.settle().await;
    assert!(s.pod_names().is_empty(), "the stuck pod is removed");
    let status = s.status();
    assert_eq!(status.phase, JobPhase::Pending, "{:?}", status.summary);
    assert_eq!(status.attempt, Some(2), "retried like any failed attempt");
    let uid = s.with(|c| {
        c.job.as_ref().unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let attempts = s.ctx.records.attempts(&uid, 1).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::StartFailed);
    assert!(
        attempts[0].message.contains("ImagePullBackOff")
            && attempts[0].message.contains("busybox:nope"),
        "{}",
        attempts[0].message
    );
}

#[tokio::test]
async fn a_log_rotated_away_is_read_from_the_journal_the_follower_kept() {
    let s = Scenario::new(json!({})).await;
    s.reconcile().await.unwrap();
    s.set_pod("Running", json!({"running": {}}));
    s.set_log(&[0, 4]);
    // The follower reads the log as it is; twice, as after a controller restart.
    for _ in 0..2 {
        s.reconcile().await.unwrap();
        s.settle().await;
    }
    // The kubelet rotates: pods/log now starts at step 1 (the last three lines).
    s.with(|c| {
        let lines: Vec<&str> = c.log.lines().collect();
        c.log = lines[3..].join("\n") + "\n";
    });
    s.set_pod("Failed", terminated(4));
    s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(status.phase, JobPhase::Failed, "{:?}", status.summary);
    let codes: Vec<Option<i64>> = status.steps.iter().map(|s| s.exit_code).collect();
    assert_eq!(
        codes,
        [Some(0), Some(4)],
        "step one's markers came from the journal"
    );
    assert_eq!(status.steps[0].output_tail, "output of step 0");
    let journals: Vec<_> = walk(s._dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    assert!(
        journals.is_empty(),
        "a harvested journal is removed: {journals:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn the_timeout_stops_the_pod_and_the_run_times_out() {
    let s = Scenario::new(json!({"timeoutSeconds": 60})).await;
    s.reconcile().await.unwrap();
    s.set_pod("Running", json!({"running": {}}));
    s.set_log(&[0]);
    // A minute later.
    s.with(|c| {
        c.job.as_mut().unwrap()["status"]["startTime"] = json!("2020-01-01T00:00:00Z");
    });
    s.reconcile().await.unwrap();
    assert!(
        !s.requests("DELETE /api/v1/namespaces/default/pods/")
            .is_empty(),
        "the pod is stopped"
    );
    let status = s.status();
    assert_eq!(status.phase, JobPhase::TimedOut, "{:?}", status.summary);
    assert_eq!(status.steps[0].exit_code, Some(0), "what ran is kept");
}

#[tokio::test]
async fn deleting_a_running_job_stops_its_pod_records_the_run_and_removes_the_finalizer() {
    let s = Scenario::new(json!({"network": "none"})).await;
    s.reconcile().await.unwrap();
    s.set_pod("Running", json!({"running": {}}));
    s.set_log(&[0]);
    s.with(|c| {
        c.job.as_mut().unwrap()["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    });
    s.reconcile().await.unwrap();
    s.settle().await;
    assert!(
        s.with(|c| c.job.is_none()),
        "the finalizer is gone, so is the job"
    );
    assert!(s.pod_names().is_empty());
    assert!(
        s.with(|c| c.policies.is_empty()),
        "the policy goes with the pod"
    );
    let runs = s.ctx.records.runs(NS, "build").await.unwrap();
    assert_eq!(runs[0].phase, JobPhase::Cancelled);
}

#[tokio::test]
async fn deleting_a_job_whose_pod_is_already_gone_still_lets_it_go() {
    let s = Scenario::new(json!({})).await;
    s.reconcile().await.unwrap();
    s.with(|c| {
        c.pods.clear();
        c.job.as_mut().unwrap()["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    });
    s.reconcile().await.unwrap();
    assert!(s.with(|c| c.job.is_none()));
    let runs = s.ctx.records.runs(NS, "build").await.unwrap();
    assert_eq!(runs[0].phase, JobPhase::Cancelled);
}

#[tokio::test]
async fn a_conflict_on_the_status_write_is_retried_without_a_second_pod() {
    let s = Scenario::new(json!({})).await;
    s.with(|c| c.status_conflicts = 1);
    let first = s.reconcile().await;
    assert!(
        matches!(&first, Err(e) if e.category() == "conflict"),
        "{first:?}"
    );
    // The queue retries it (after a backoff): the pod exists and is adopted.
    s.reconcile().await.unwrap();
    assert_eq!(s.pod_names().len(), 1);
    assert_eq!(s.status().phase, JobPhase::Running);
}
