//! The Workflow controller on a cluster: reconciles of one Workflow against a small fake
//! API server (the tower-test mock, answering from the state below), through the real
//! `KubeStore`. The controller only writes Job objects, so these scenarios check exactly
//! what a cluster sees: Jobs POSTed to the orcaops.dev jobs endpoint (owned and
//! labelled), the status written through the status subresource, and the finalizer's
//! cleanup. The mock plays the Job controller by setting a Job's status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::controller::Context;
use crate::resources::workflow::{NodePhase, NodeStatus, WorkflowPhase};
use crate::resources::{Kind, ObjectKey};
use crate::store::kube::mock::{Reply, Seen, event_created, status};

const NS: &str = "default";
const UID: &str = "feedc0de-4567-89ef-0123-456789abcdef";
const WORKFLOW_PATH: &str = "/apis/orcaops.dev/v1alpha1/namespaces/default/workflows/ci";
const JOBS_PATH: &str = "/apis/orcaops.dev/v1alpha1/namespaces/default/jobs";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// What the fake API server holds.
#[derive(Default)]
struct Cluster {
    workflow: Option<Value>,
    jobs: BTreeMap<String, Value>,
    version: u64,
    /// Every request, as `METHOD path`, with its body.
    requests: Vec<(String, Value)>,
}

impl Cluster {
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    fn bump_workflow(&mut self) -> Value {
        let version = self.next_version();
        let wf = self.workflow.as_mut().expect("the workflow exists");
        wf["metadata"]["resourceVersion"] = json!(version);
        wf.clone()
    }

    fn answer(&mut self, request: &Seen) -> Reply {
        let path = request.path.as_str();
        self.requests
            .push((format!("{} {path}", request.method), request.body.clone()));
        let ok = |value: Value| Reply::Json(200, value);
        let gone = || Reply::Json(404, status(404, "NotFound", "not found"));
        let status_path = format!("{WORKFLOW_PATH}/status");
        match (request.method.as_str(), path) {
            ("GET", WORKFLOW_PATH) => self.workflow.clone().map_or_else(gone, ok),
            // The finalizer's JSON patches.
            ("PATCH", WORKFLOW_PATH) => {
                let Some(wf) = self.workflow.as_mut() else {
                    return gone();
                };
                let ops: json_patch::Patch =
                    serde_json::from_value(request.body.clone()).expect("a JSON patch");
                // The API server tests a missing list as null.
                let meta = wf["metadata"].as_object_mut().unwrap();
                meta.entry("finalizers").or_insert(Value::Null);
                if json_patch::patch(wf, &ops).is_err() {
                    return Reply::Json(422, status(422, "Invalid", "the test failed"));
                }
                let finalizers = wf["metadata"]["finalizers"].as_array().cloned();
                if wf["metadata"]["deletionTimestamp"].is_string()
                    && finalizers.is_none_or(|f| f.is_empty())
                {
                    return ok(self.workflow.take().unwrap());
                }
                ok(self.bump_workflow())
            }
            // The status subresource: a server-side apply guarded by the version read.
            ("PATCH", p) if p == status_path => {
                let Some(wf) = self.workflow.as_ref() else {
                    return gone();
                };
                let expected = request.body["metadata"]["resourceVersion"].clone();
                if expected != wf["metadata"]["resourceVersion"] {
                    return Reply::Json(
                        409,
                        status(409, "Conflict", "the object has been modified"),
                    );
                }
                self.workflow.as_mut().unwrap()["status"] = request.body["status"].clone();
                ok(self.bump_workflow())
            }
            ("GET", JOBS_PATH) => ok(json!({
                "apiVersion": "orcaops.dev/v1alpha1", "kind": "JobList",
                "metadata": {"resourceVersion": self.version.to_string()},
                "items": self.jobs.values().cloned().collect::<Vec<_>>(),
            })),
            ("POST", JOBS_PATH) => {
                let name = request.body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if self.jobs.contains_key(&name) {
                    return Reply::Json(409, status(409, "AlreadyExists", "already exists"));
                }
                let mut job = request.body.clone();
                let version = self.next_version();
                let meta = &mut job["metadata"];
                meta["uid"] = json!(format!("uid-{name}"));
                meta["resourceVersion"] = json!(version);
                meta["generation"] = json!(1);
                meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                self.jobs.insert(name, job.clone());
                Reply::Json(201, job)
            }
            (method, p) if p.starts_with(&format!("{JOBS_PATH}/")) => {
                let name = &p[JOBS_PATH.len() + 1..];
                match (method, self.jobs.get_mut(name)) {
                    (_, None) => gone(),
                    ("GET", Some(job)) => ok(job.clone()),
                    // A Job its own controller holds by the finalizer stays, deleting,
                    // until that controller has stopped its pod.
                    ("DELETE", Some(job))
                        if job["metadata"]["finalizers"]
                            .as_array()
                            .is_some_and(|f| !f.is_empty()) =>
                    {
                        job["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:05:00Z");
                        ok(job.clone())
                    }
                    ("DELETE", Some(_)) => ok(self.jobs.remove(name).unwrap()),
                    _ => Reply::Json(405, status(405, "MethodNotAllowed", p)),
                }
            }
            ("POST", EVENTS_PATH) => Reply::Json(201, event_created()),
            // A repeated event: its series is counted up.
            ("PATCH", p) if p.starts_with(&format!("{EVENTS_PATH}/")) => ok(event_created()),
            (method, p) => Reply::Json(500, status(500, "Unexpected", &format!("{method} {p}"))),
        }
    }
}

/// A controller context on the fake cluster holding the Workflow `ci`.
struct Scenario {
    cluster: Arc<Mutex<Cluster>>,
    ctx: Arc<Context>,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl Scenario {
    /// The Workflow `ci` in `default` with `spec`.
    async fn new(spec: Value) -> Scenario {
        let cluster = Arc::new(Mutex::new(Cluster {
            workflow: Some(json!({
                "apiVersion": "orcaops.dev/v1alpha1", "kind": "Workflow",
                "metadata": {"name": "ci", "namespace": NS, "uid": UID,
                    "generation": 1, "resourceVersion": "1",
                    "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": spec,
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

    /// Build, then test: a chain of two one-step nodes.
    async fn chain() -> Scenario {
        let node = json!({"image": "busybox:1.36", "steps": [{"name": "s", "run": "true"}]});
        Scenario::new(json!({"jobs": [
            {"name": "build", "job": node},
            {"name": "test", "needs": ["build"], "job": node},
        ]}))
        .await
    }

    async fn reconcile(&self) -> Result<Option<Duration>, ControllerError> {
        let key = ObjectKey::new(Kind::Workflow, NS, "ci");
        crate::controller::reconcile::drive(&WorkflowReconciler, &self.ctx, &key).await
    }

    fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        f(&mut self.cluster.lock().unwrap())
    }

    fn status(&self) -> WorkflowStatus {
        self.with(|c| {
            serde_json::from_value(c.workflow.as_ref().unwrap()["status"].clone()).unwrap()
        })
    }

    fn node(&self, name: &str) -> NodeStatus {
        self.status()
            .nodes
            .into_iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn job_names(&self) -> Vec<String> {
        self.with(|c| c.jobs.keys().cloned().collect())
    }

    /// The requests whose `METHOD path` starts with `prefix`, with their bodies.
    fn requests(&self, prefix: &str) -> Vec<(String, Value)> {
        self.with(|c| {
            c.requests
                .iter()
                .filter(|(r, _)| r.starts_with(prefix))
                .cloned()
                .collect()
        })
    }

    fn forget_requests(&self) {
        self.with(|c| c.requests.clear());
    }

    /// Sets a Job's status as its own controller would write it.
    fn set_job_status(&self, name: &str, status: Value) {
        self.with(|c| {
            c.version += 1;
            let version = c.version.to_string();
            let job = c.jobs.get_mut(name).expect("the job exists");
            job["status"] = status;
            job["metadata"]["resourceVersion"] = json!(version);
        });
    }

    fn succeed(&self, name: &str) {
        self.set_job_status(
            name,
            json!({"phase": "Succeeded", "run": 1, "attempt": 1,
                "startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:00:02Z",
                "summary": "2 steps succeeded"}),
        );
    }
}

#[tokio::test]
async fn a_chain_creates_the_second_nodes_job_only_once_the_first_succeeded() {
    let s = Scenario::chain().await;
    s.reconcile().await.unwrap();

    // The finalizer first, by a JSON patch of the Workflow itself.
    let wf = s.with(|c| c.workflow.clone().unwrap());
    assert_eq!(wf["metadata"]["finalizers"], json!([keys::FINALIZER]));

    // One Job, POSTed to the orcaops.dev jobs endpoint, owned by and labelled with the
    // Workflow and its run and node.
    let posts = s.requests(&format!("POST {JOBS_PATH}"));
    assert_eq!(posts.len(), 1, "{posts:?}");
    let body = &posts[0].1;
    assert_eq!(body["metadata"]["name"], "ci-1-build");
    assert_eq!(body["metadata"]["namespace"], NS);
    assert_eq!(body["apiVersion"], "orcaops.dev/v1alpha1");
    assert_eq!(body["kind"], "Job");
    assert_eq!(
        body["metadata"]["labels"],
        json!({"orcaops.dev/workflow": "ci", "orcaops.dev/workflow-run": "1",
            "orcaops.dev/node": "build"})
    );
    assert_eq!(
        body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "orcaops.dev/v1alpha1", "kind": "Workflow", "name": "ci",
            "uid": UID, "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(body["spec"]["image"], "busybox:1.36");
    assert_eq!(body["metadata"]["resourceVersion"], Value::Null);

    // The status went through the status subresource, never through the object.
    let writes = s.requests(&format!("PATCH {WORKFLOW_PATH}/status"));
    assert_eq!(writes.len(), 1, "one status write per reconcile");
    assert_eq!(writes[0].1["status"]["phase"], "Running");
    let status = s.status();
    assert_eq!(status.phase, WorkflowPhase::Running);
    assert_eq!(status.run, Some(1));
    assert_eq!(status.progress.as_deref(), Some("0/2"));
    assert_eq!(s.node("build").phase, NodePhase::Running);
    assert_eq!(s.node("build").job.as_deref(), Some("ci-1-build"));
    assert_eq!(s.node("test").phase, NodePhase::Pending);
    assert_eq!(s.job_names(), ["ci-1-build"]);

    // Nothing changed: no second Job, and no status write.
    s.forget_requests();
    s.reconcile().await.unwrap();
    assert!(s.requests("POST /apis/orcaops.dev").is_empty());
    assert!(s.requests("PATCH").is_empty(), "{:?}", s.requests("PATCH"));

    // The first Job runs: still nothing for the second node.
    s.set_job_status(
        "ci-1-build",
        json!({"phase": "Running", "run": 1, "attempt": 1, "startTime": "2026-01-01T00:00:01Z"}),
    );
    s.reconcile().await.unwrap();
    assert_eq!(s.job_names(), ["ci-1-build"]);
    assert_eq!(s.node("build").attempts, Some(1));

    // It succeeds: the second node's Job is created, labelled with its node.
    s.succeed("ci-1-build");
    s.forget_requests();
    s.reconcile().await.unwrap();
    let posts = s.requests(&format!("POST {JOBS_PATH}"));
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].1["metadata"]["name"], "ci-1-test");
    assert_eq!(posts[0].1["metadata"]["labels"]["orcaops.dev/node"], "test");
    assert_eq!(s.job_names(), ["ci-1-build", "ci-1-test"]);
    assert_eq!(s.node("build").phase, NodePhase::Succeeded);
    assert_eq!(s.node("test").phase, NodePhase::Running);
    assert_eq!(s.status().progress.as_deref(), Some("1/2"));

    // It succeeds too: the run is over, and nothing more is created.
    s.succeed("ci-1-test");
    s.forget_requests();
    let requeue = s.reconcile().await.unwrap();
    assert!(s.requests(&format!("POST {JOBS_PATH}")).is_empty());
    let status = s.status();
    assert_eq!(
        status.phase,
        WorkflowPhase::Succeeded,
        "{:?}",
        status.summary
    );
    assert_eq!(status.progress.as_deref(), Some("2/2"));
    assert!(status.completion_time.is_some());
    assert_eq!(requeue, None, "a finished run is not polled");
    assert!(
        s.requests("DELETE").is_empty(),
        "a finished run keeps its Jobs"
    );
}

#[tokio::test]
async fn a_failed_first_node_skips_the_second_without_creating_its_job() {
    let s = Scenario::chain().await;
    s.reconcile().await.unwrap();
    s.set_job_status(
        "ci-1-build",
        json!({"phase": "Failed", "run": 1, "attempt": 1,
            "startTime": "2026-01-01T00:00:01Z", "completionTime": "2026-01-01T00:00:02Z",
            "summary": "step s exited with 1"}),
    );
    s.reconcile().await.unwrap();
    assert_eq!(s.job_names(), ["ci-1-build"]);
    let status = s.status();
    assert_eq!(status.phase, WorkflowPhase::Failed);
    assert_eq!(
        s.node("build").message.as_deref(),
        Some("step s exited with 1")
    );
    assert_eq!(s.node("test").phase, NodePhase::Skipped);
    assert_eq!(
        s.node("test").message.as_deref(),
        Some("needs build failed")
    );
}

#[tokio::test]
async fn a_job_made_before_a_crash_is_followed_not_created_twice() {
    // The controller created the first node's Job, then died before writing the status.
    let s = Scenario::chain().await;
    s.with(|c| {
        c.jobs.insert(
            "ci-1-build".into(),
            json!({"apiVersion": "orcaops.dev/v1alpha1", "kind": "Job",
                "metadata": {"name": "ci-1-build", "namespace": NS, "uid": "uid-ci-1-build",
                    "resourceVersion": "2",
                    "labels": {"orcaops.dev/workflow": "ci", "orcaops.dev/workflow-run": "1",
                        "orcaops.dev/node": "build"},
                    "ownerReferences": [{"apiVersion": "orcaops.dev/v1alpha1",
                        "kind": "Workflow", "name": "ci", "uid": UID, "controller": true}]},
                "spec": {"image": "busybox:1.36", "steps": [{"name": "s", "run": "true"}]},
                "status": {"phase": "Running", "run": 1, "attempt": 1,
                    "startTime": "2026-01-01T00:00:01Z"}}),
        );
    });
    s.reconcile().await.unwrap();
    assert!(
        s.requests(&format!("POST {JOBS_PATH}")).is_empty(),
        "the listed Job is the node's: no second create"
    );
    assert_eq!(s.job_names(), ["ci-1-build"]);
    assert_eq!(s.status().run, Some(1), "the same run goes on");
    assert_eq!(s.node("build").job.as_deref(), Some("ci-1-build"));
    assert_eq!(s.node("build").phase, NodePhase::Running);
    assert_eq!(s.node("build").attempts, Some(1));
}

#[tokio::test]
async fn deleting_the_workflow_deletes_its_jobs_and_releases_the_finalizer() {
    let s = Scenario::chain().await;
    s.reconcile().await.unwrap();
    // The Job controller holds its Job by its own finalizer, as on a real cluster.
    s.with(|c| {
        let job = c.jobs.get_mut("ci-1-build").unwrap();
        job["metadata"]["finalizers"] = json!([keys::FINALIZER]);
    });
    // A Job labelled with the Workflow but owned by nothing is not ours to delete.
    s.with(|c| {
        c.jobs.insert(
            "stray".into(),
            json!({"apiVersion": "orcaops.dev/v1alpha1", "kind": "Job",
                "metadata": {"name": "stray", "namespace": NS, "uid": "uid-stray",
                    "resourceVersion": "3", "labels": {"orcaops.dev/workflow": "ci"}},
                "spec": {"image": "busybox:1.36", "steps": [{"name": "s", "run": "true"}]}}),
        );
    });
    // kubectl delete: the API server sets the deletionTimestamp; the finalizer holds it.
    s.with(|c| {
        c.workflow.as_mut().unwrap()["metadata"]["deletionTimestamp"] =
            json!("2026-01-01T00:05:00Z");
    });
    s.forget_requests();
    s.reconcile().await.unwrap();
    let deletes = s.requests("DELETE");
    assert_eq!(
        deletes.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        [format!("DELETE {JOBS_PATH}/ci-1-build")]
    );
    // The finalizer was released after the Jobs' deletion was asked for, so the API
    // server let the Workflow go.
    let order: Vec<String> = s.with(|c| c.requests.iter().map(|(r, _)| r.clone()).collect());
    let deleted = order.iter().position(|r| r.starts_with("DELETE")).unwrap();
    let released = order
        .iter()
        .rposition(|r| r == &format!("PATCH {WORKFLOW_PATH}"))
        .expect("the finalizer is removed by a patch");
    assert!(deleted < released, "{order:?}");
    assert!(s.with(|c| c.workflow.is_none()), "the Workflow is gone");
    assert!(
        s.requests("PATCH")
            .iter()
            .all(|(r, _)| !r.ends_with("/status")),
        "a deleting Workflow's status is not written"
    );
    let job = s.with(|c| c.jobs["ci-1-build"].clone());
    assert!(
        job["metadata"]["deletionTimestamp"].is_string(),
        "the node's Job is deleting (its own controller stops its pod)"
    );
    assert!(s.job_names().contains(&"stray".to_string()));

    // A reconcile after the Workflow has gone finds nothing of its own left to delete.
    s.forget_requests();
    s.reconcile().await.unwrap();
    assert!(
        s.requests("DELETE").is_empty(),
        "{:?}",
        s.requests("DELETE")
    );
}

/// What the API server authorizes a request as: (API group, resource, verb).
fn authorized_as(request: &str, body: &Value) -> Vec<(String, String, String)> {
    let (method, path) = request.split_once(' ').expect("METHOD path");
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not an API path: {path}"),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [plural] => (plural.to_string(), false),
        [plural, _name] => (plural.to_string(), true),
        [plural, _name, sub] => (format!("{plural}/{sub}"), true),
        _ => panic!("not a resource path: {path}"),
    };
    let verb = match (method, named) {
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => panic!("no verb for {request}"),
    };
    let mut grants = vec![(group.to_string(), resource, verb.to_string())];
    // An ownerReference with blockOwnerDeletion needs update on the owner's finalizers
    // (OwnerReferencesPermissionEnforcement).
    for owner in body["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if owner["blockOwnerDeletion"] == true {
            let plural = Kind::ALL
                .iter()
                .find(|k| k.as_str() == owner["kind"])
                .expect("an orcaops kind owns it")
                .plural();
            grants.push((
                "orcaops.dev".into(),
                format!("{plural}/finalizers"),
                "update".into(),
            ));
        }
    }
    grants
}

/// The (group, resource, verb) triples the operator's ClusterRole in `file` grants.
fn cluster_role_grants(file: &str) -> Vec<(String, String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let role = text
        .split("\n---")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).expect("a YAML document"))
        .find(|doc| doc["kind"] == "ClusterRole")
        .unwrap_or_else(|| panic!("{file} holds no ClusterRole"));
    let mut grants = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    grants.push((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    grants
}

#[tokio::test]
async fn every_request_of_a_whole_run_and_its_deletion_is_granted_by_the_cluster_role() {
    let s = Scenario::chain().await;
    s.reconcile().await.unwrap();
    s.succeed("ci-1-build");
    s.reconcile().await.unwrap();
    s.with(|c| {
        c.workflow.as_mut().unwrap()["metadata"]["deletionTimestamp"] =
            json!("2026-01-01T00:05:00Z");
    });
    s.reconcile().await.unwrap();
    s.reconcile().await.unwrap();
    assert!(s.with(|c| c.workflow.is_none() && c.jobs.is_empty()));
    let mut needed: Vec<(String, String, String)> = s
        .with(|c| c.requests.clone())
        .iter()
        .flat_map(|(request, body)| authorized_as(request, body))
        .collect();
    needed.sort();
    needed.dedup();
    // Watches are the controller loop's, not the reconcile's: it watches both kinds.
    for plural in ["workflows", "jobs"] {
        needed.push(("orcaops.dev".into(), plural.into(), "watch".into()));
    }
    for needed_resource in ["workflows", "workflows/status", "jobs"] {
        assert!(
            needed.iter().any(|(_, r, _)| r == needed_resource),
            "the scenario touched {needed_resource}: {needed:?}"
        );
    }
    // The chart's ClusterRole has the same rules (tests/cluster_files.rs checks that).
    let file = "manifests/03-clusterrole.yaml";
    let granted = cluster_role_grants(file);
    let missing: Vec<_> = needed.iter().filter(|g| !granted.contains(g)).collect();
    assert!(
        missing.is_empty(),
        "{file}: the Workflow controller needs {missing:?}; add them to its rules (and the chart's)"
    );
}
