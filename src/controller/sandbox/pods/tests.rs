//! The Sandbox controller on a cluster: reconciles of one Sandbox against a small fake
//! API server (the tower-test mock, answering from the state below), through the real
//! `KubeStore` and `PodRuntime`. Each scenario sets the pod's state as the kubelet
//! would, reconciles, and reads what the controller wrote.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::controller::reconcile::drive;
use crate::controller::sandbox::SandboxReconciler;
use crate::controller::{Context, ControllerError};
use crate::resources::sandbox::{SandboxPhase, SandboxStatus};
use crate::resources::{Kind, ObjectKey, keys};
use crate::store::kube::mock::{Reply, Seen, event_created, status};

const NS: &str = "default";
const UID: &str = "0123abcd-4567-89ef-0123-456789abcdef";
const SB_PATH: &str = "/apis/orcaops.dev/v1alpha1/namespaces/default/sandboxes/web-dev";
const POD: &str = "orcaops-default-web-dev-0123abcd";
const CLAIM: &str = "orcaops-default-web-dev-0123abcd-site";

/// What the fake API server holds: the Sandbox, and what it owns by kind and name.
#[derive(Default)]
struct Cluster {
    sandbox: Option<Value>,
    version: u64,
    pods: BTreeMap<String, Value>,
    services: BTreeMap<String, Value>,
    claims: BTreeMap<String, Value>,
    policies: BTreeMap<String, Value>,
    /// The reasons of the events recorded.
    events: Vec<String>,
    /// Every request, as `METHOD path`.
    requests: Vec<String>,
}

/// The collections a sandbox owns, by their API path.
const PODS: &str = "/api/v1/namespaces/default/pods";
const SERVICES: &str = "/api/v1/namespaces/default/services";
const CLAIMS: &str = "/api/v1/namespaces/default/persistentvolumeclaims";
const POLICIES: &str = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";

impl Cluster {
    fn bump(&mut self) -> Value {
        self.version += 1;
        let sb = self.sandbox.as_mut().expect("the sandbox exists");
        sb["metadata"]["resourceVersion"] = json!(self.version.to_string());
        sb.clone()
    }

    fn collection(&mut self, path: &str) -> Option<&mut BTreeMap<String, Value>> {
        match path {
            PODS => Some(&mut self.pods),
            SERVICES => Some(&mut self.services),
            CLAIMS => Some(&mut self.claims),
            POLICIES => Some(&mut self.policies),
            _ => None,
        }
    }

    fn answer(&mut self, request: &Seen) -> Reply {
        let path = request.path.as_str();
        self.requests.push(format!("{} {path}", request.method));
        let ok = |value: Value| Reply::Json(200, value);
        let gone = || Reply::Json(404, status(404, "NotFound", "not found"));
        match (request.method.as_str(), path) {
            ("GET", SB_PATH) => return self.sandbox.clone().map_or_else(gone, ok),
            ("PATCH", SB_PATH) => {
                let ops: json_patch::Patch =
                    serde_json::from_value(request.body.clone()).expect("a JSON patch");
                let sb = self.sandbox.as_mut().expect("the sandbox exists");
                let meta = sb["metadata"].as_object_mut().unwrap();
                meta.entry("finalizers").or_insert(Value::Null);
                json_patch::patch(sb, &ops).expect("the patch applies");
                let finalizers = sb["metadata"]["finalizers"].as_array().cloned();
                if sb["metadata"]["deletionTimestamp"].is_string()
                    && finalizers.is_none_or(|f| f.is_empty())
                {
                    return ok(self.sandbox.take().unwrap());
                }
                return ok(self.bump());
            }
            // With its finalizer the Sandbox stays, marked for deletion.
            ("DELETE", SB_PATH) => {
                let sb = self.sandbox.as_mut().expect("the sandbox exists");
                sb["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:09:00Z");
                return ok(self.bump());
            }
            ("PATCH", p) if p == format!("{SB_PATH}/status") => {
                let sb = self.sandbox.as_mut().expect("the sandbox exists");
                sb["status"] = request.body["status"].clone();
                return ok(self.bump());
            }
            ("POST", "/apis/events.k8s.io/v1/namespaces/default/events") => {
                let reason = request.body["reason"].as_str().unwrap_or_default();
                self.events.push(reason.to_string());
                return Reply::Json(201, event_created());
            }
            // A repeated event is a series: its count is patched.
            ("PATCH", p) if p.starts_with("/apis/events.k8s.io/v1/namespaces/default/events/") => {
                return ok(event_created());
            }
            _ => {}
        }
        let method = request.method.as_str().to_string();
        let (collection, name) = match path.rsplit_once('/') {
            Some((c, n)) if self.collection(c).is_some() => (c.to_string(), Some(n.to_string())),
            _ => (path.to_string(), None),
        };
        let Some(objects) = self.collection(&collection) else {
            return Reply::Json(500, status(500, "Unexpected", &format!("{method} {path}")));
        };
        match (method.as_str(), name) {
            ("POST", None) => {
                let name = request.body["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string();
                if objects.contains_key(&name) {
                    return Reply::Json(409, status(409, "AlreadyExists", "already exists"));
                }
                let mut object = request.body.clone();
                if collection == PODS {
                    object["status"] = json!({"phase": "Pending"});
                }
                objects.insert(name, object.clone());
                Reply::Json(201, object)
            }
            ("GET", None) => ok(json!({
                "apiVersion": "v1", "kind": "List", "metadata": {},
                "items": objects.values().cloned().collect::<Vec<_>>(),
            })),
            ("GET", Some(name)) => objects.get(&name).cloned().map_or_else(gone, ok),
            ("DELETE", Some(name)) => {
                let Some(object) = objects.get_mut(&name) else {
                    return gone();
                };
                // A graceful delete leaves a pod terminating until the kubelet has
                // stopped it; here, until the next delete.
                if collection == PODS
                    && request.body["gracePeriodSeconds"].as_i64().unwrap_or(0) > 0
                    && object["metadata"]["deletionTimestamp"].is_null()
                {
                    object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
                    return ok(object.clone());
                }
                ok(objects.remove(&name).unwrap())
            }
            _ => Reply::Json(405, status(405, "MethodNotAllowed", path)),
        }
    }
}

/// A controller context on the fake cluster.
struct Scenario {
    cluster: Arc<Mutex<Cluster>>,
    ctx: Arc<Context>,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

/// `web` (port 8080, volume `site`) and `shell`, on the bridge; `spec` merged over it.
fn spec(extra: Value) -> Value {
    let mut full = json!({
        "network": "bridge",
        "services": [
            {"name": "web", "image": "nginx:1.27",
             "ports": [{"name": "http", "containerPort": 8080}],
             "volumes": [{"name": "site", "mountPath": "/srv"}]},
            {"name": "shell", "image": "busybox:1.36", "command": ["sleep", "infinity"],
             "volumes": [{"name": "site", "mountPath": "/srv"}]},
        ],
    });
    json_patch::merge(&mut full, &extra);
    full
}

impl Scenario {
    async fn new(spec: Value) -> Scenario {
        let cluster = Arc::new(Mutex::new(Cluster {
            sandbox: Some(json!({
                "apiVersion": "orcaops.dev/v1alpha1", "kind": "Sandbox",
                "metadata": {"name": "web-dev", "namespace": NS, "uid": UID,
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

    async fn reconcile(&self) -> Result<Option<Duration>, ControllerError> {
        let key = ObjectKey::new(Kind::Sandbox, NS, "web-dev");
        drive(&SandboxReconciler, &self.ctx, &key).await
    }

    fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        f(&mut self.cluster.lock().unwrap())
    }

    fn status(&self) -> SandboxStatus {
        self.with(|c| {
            serde_json::from_value(c.sandbox.as_ref().unwrap()["status"].clone()).unwrap()
        })
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

    fn edit_sandbox(&self, change: impl FnOnce(&mut Value)) {
        self.with(|c| {
            change(c.sandbox.as_mut().unwrap());
            c.bump();
        });
    }

    /// Every container of the pod running, as the kubelet reports it.
    fn run_pod(&self, ready: bool, restarts: i64) {
        self.with(|c| {
            let pod = c.pods.get_mut(POD).expect("the pod exists");
            let statuses: Vec<Value> = pod["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|container| {
                    json!({"name": container["name"], "image": container["image"], "imageID": "",
                        "ready": ready, "restartCount": restarts,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}})
                })
                .collect();
            pod["status"] = json!({"phase": "Running", "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": statuses});
        });
    }

    /// The kubelet finishing a graceful delete.
    fn pod_gone(&self) {
        self.with(|c| c.pods.clear());
    }

    /// Reconciles until the sandbox has a pod (the first reconcile adds the finalizer).
    async fn started(spec: Value) -> Scenario {
        let s = Scenario::new(spec).await;
        s.reconcile().await.unwrap();
        assert!(s.with(|c| c.pods.contains_key(POD)), "the pod is created");
        s
    }

    /// Started and Ready.
    async fn ready(spec: Value) -> Scenario {
        let s = Scenario::started(spec).await;
        s.run_pod(true, 0);
        s.reconcile().await.unwrap();
        assert_eq!(s.status().phase, Some(SandboxPhase::Ready));
        s
    }
}

#[tokio::test]
async fn a_new_sandbox_gets_its_finalizer_claims_service_and_pod() {
    let s = Scenario::new(spec(json!({}))).await;
    let requeue = s.reconcile().await.unwrap();
    let sb = s.with(|c| c.sandbox.clone().unwrap());
    assert_eq!(sb["metadata"]["finalizers"], json!([keys::FINALIZER]));
    let posts = s.requests("POST /api");
    let order: Vec<&str> = posts
        .iter()
        .filter(|p| !p.contains("/events"))
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(order, ["persistentvolumeclaims", "services", "pods"]);
    assert_eq!(
        s.with(|c| c.claims.keys().cloned().collect::<Vec<_>>()),
        [CLAIM]
    );
    assert!(s.with(|c| c.services.contains_key("web-dev")));
    assert!(s.with(|c| c.policies.is_empty()), "bridge: no policy");
    let pod = s.with(|c| c.pods[POD].clone());
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "shell"]);
    assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], UID);
    let status = s.status();
    assert_eq!(status.phase, Some(SandboxPhase::Starting));
    assert_eq!(status.services[0].state.as_deref(), Some("pending"));
    assert!(
        requeue.is_some_and(|r| r <= Duration::from_secs(10)),
        "a starting pod is looked at again: {requeue:?}"
    );
}

#[tokio::test]
async fn network_none_creates_the_deny_all_policy_before_the_pod() {
    let s = Scenario::started(spec(json!({"network": "none"}))).await;
    let posts: Vec<String> = s
        .requests("POST /api")
        .into_iter()
        .filter(|p| p.contains("networkpolicies") || p.ends_with("/pods"))
        .collect();
    assert!(posts[0].ends_with("/networkpolicies"), "{posts:?}");
    assert!(posts[1].ends_with("/pods"), "{posts:?}");
    let policy = s.with(|c| c.policies[POD].clone());
    assert_eq!(policy["spec"]["policyTypes"], json!(["Egress", "Ingress"]));
    assert!(policy["spec"]["ingress"].is_null());
}

#[tokio::test]
async fn a_running_ready_pod_makes_the_sandbox_ready_with_its_endpoints() {
    let s = Scenario::started(spec(json!({}))).await;
    s.run_pod(false, 0);
    s.reconcile().await.unwrap();
    // No health checks: a running container is ready whatever the probe says.
    let status = s.status();
    assert_eq!(status.phase, Some(SandboxPhase::Ready), "{status:?}");
    let web = &status.services[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.endpoints.len(), 1);
    assert_eq!(web.endpoints[0].host_ip, "web-dev.default.svc");
    assert_eq!(web.endpoints[0].host_port, 8080);
    assert_eq!(web.endpoints[0].name.as_deref(), Some("http"));
    assert!(s.with(|c| c.events.contains(&"Ready".to_string())));
    assert_eq!(s.requests("POST /api/v1/namespaces/default/pods").len(), 1);
}

#[tokio::test]
async fn a_health_check_is_the_containers_readiness() {
    let mut sb = spec(json!({}));
    sb["services"][0]["healthCheck"] = json!({"tcp": {"port": 8080}});
    let s = Scenario::started(sb).await;
    s.run_pod(false, 0);
    s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(status.phase, Some(SandboxPhase::Starting));
    assert!(!status.services[0].ready);
    assert!(status.services[1].ready, "shell has no check");
    s.run_pod(true, 0);
    s.reconcile().await.unwrap();
    assert_eq!(s.status().phase, Some(SandboxPhase::Ready));
}

#[tokio::test]
async fn a_container_restarted_by_the_kubelet_is_counted() {
    let s = Scenario::ready(spec(json!({}))).await;
    s.run_pod(true, 2);
    s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(status.services[0].restarts, 2);
    assert!(status.services[0].last_restart_time.is_some());
    assert!(s.with(|c| c.events.contains(&"ServiceRestarted".to_string())));
    assert_eq!(
        s.requests("POST /api/v1/namespaces/default/pods").len(),
        1,
        "the kubelet restarted it: no new pod"
    );
}

#[tokio::test]
async fn stopping_deletes_the_pod_and_keeps_the_claims_and_starting_mounts_them_again() {
    let s = Scenario::ready(spec(json!({}))).await;
    s.edit_sandbox(|sb| sb["spec"]["state"] = json!("Stopped"));
    s.reconcile().await.unwrap();
    assert_eq!(
        s.requests("DELETE /api/v1/namespaces/default/pods/").len(),
        1
    );
    assert_eq!(s.status().phase, Some(SandboxPhase::Stopping));
    // The pod terminates: the sandbox is stopped, and nothing else was deleted.
    s.reconcile().await.unwrap();
    assert_eq!(s.status().phase, Some(SandboxPhase::Stopped));
    s.pod_gone();
    s.reconcile().await.unwrap();
    assert_eq!(s.status().phase, Some(SandboxPhase::Stopped));
    assert!(
        s.with(|c| c.claims.contains_key(CLAIM)),
        "the volume is kept"
    );
    assert!(s.with(|c| c.services.contains_key("web-dev")));
    assert!(
        s.requests("DELETE /api/v1/namespaces/default/persistentvolumeclaims")
            .is_empty()
    );

    s.edit_sandbox(|sb| sb["spec"]["state"] = json!("Running"));
    s.reconcile().await.unwrap();
    let pod = s.with(|c| c.pods.get(POD).cloned()).expect("a new pod");
    assert_eq!(
        pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        CLAIM
    );
    assert_eq!(s.with(|c| c.claims.len()), 1, "the same claim, adopted");
    assert_eq!(s.status().phase, Some(SandboxPhase::Starting));
    s.run_pod(true, 0);
    s.reconcile().await.unwrap();
    assert_eq!(s.status().phase, Some(SandboxPhase::Ready));
}

#[tokio::test]
async fn a_changed_service_makes_the_pod_again() {
    let s = Scenario::ready(spec(json!({}))).await;
    s.edit_sandbox(|sb| {
        sb["spec"]["services"][1]["image"] = json!("busybox:1.37");
        sb["metadata"]["generation"] = json!(2);
    });
    s.reconcile().await.unwrap();
    assert_eq!(
        s.requests("DELETE /api/v1/namespaces/default/pods/").len(),
        1
    );
    assert_ne!(s.status().phase, Some(SandboxPhase::Ready));
    s.pod_gone();
    s.reconcile().await.unwrap();
    let pod = s.with(|c| c.pods.get(POD).cloned()).expect("a new pod");
    assert_eq!(pod["spec"]["containers"][1]["image"], "busybox:1.37");
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_sandbox_with_the_reason() {
    let s = Scenario::started(spec(json!({}))).await;
    s.with(|c| {
        let pod = c.pods.get_mut(POD).unwrap();
        pod["status"] = json!({"phase": "Pending", "containerStatuses": [
            {"name": "web", "image": "nginx:1.27", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "manifest unknown"}}},
            {"name": "shell", "image": "busybox:1.36", "imageID": "", "ready": true, "restartCount": 0,
             "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}},
        ]});
    });
    s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(status.phase, Some(SandboxPhase::Failed));
    let message = status.message.unwrap();
    assert!(
        message.contains("image \"nginx:1.27\" is not available: manifest unknown"),
        "{message}"
    );
}

#[tokio::test]
async fn the_ttl_expires_the_sandbox_and_deletes_its_pod() {
    let s = Scenario::ready(spec(json!({"ttlSeconds": 60}))).await;
    assert!(s.status().expires_at.is_some());
    s.edit_sandbox(|sb| sb["status"]["startedAt"] = json!("2020-01-01T00:00:00Z"));
    s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(status.phase, Some(SandboxPhase::Expired), "{status:?}");
    assert_eq!(
        s.requests("DELETE /api/v1/namespaces/default/pods/").len(),
        1
    );
    assert!(
        s.with(|c| c.claims.contains_key(CLAIM)),
        "onExpiry Stop keeps volumes"
    );
    assert!(s.with(|c| c.events.contains(&"Expired".to_string())));
}

#[tokio::test]
async fn expiry_with_delete_deletes_the_sandbox_and_the_finalizer_cleans_up() {
    let s = Scenario::ready(spec(json!({"ttlSeconds": 60, "onExpiry": "Delete"}))).await;
    s.edit_sandbox(|sb| sb["status"]["startedAt"] = json!("2020-01-01T00:00:00Z"));
    s.reconcile().await.unwrap();
    assert_eq!(s.requests("DELETE /apis/orcaops.dev").len(), 1);
    // The watch sees the deletion mark and wakes the sandbox: its finalizer runs.
    s.reconcile().await.unwrap();
    assert!(s.with(|c| c.sandbox.is_none()));
    s.with(|c| assert!(c.pods.is_empty() && c.claims.is_empty() && c.services.is_empty()));
}

#[tokio::test]
async fn deleting_a_sandbox_removes_its_pod_service_and_claims_then_lets_it_go() {
    let s = Scenario::ready(spec(json!({"network": "private"}))).await;
    assert!(s.with(|c| c.policies.contains_key(POD)));
    s.edit_sandbox(|sb| sb["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:05:00Z"));
    s.reconcile().await.unwrap();
    assert!(
        s.with(|c| c.sandbox.is_none()),
        "the finalizer is gone, so is it"
    );
    s.with(|c| {
        assert!(c.pods.is_empty() && c.services.is_empty());
        assert!(c.claims.is_empty() && c.policies.is_empty());
    });
}

#[tokio::test]
async fn deleting_a_sandbox_whose_pod_is_already_gone_still_lets_it_go() {
    let s = Scenario::ready(spec(json!({}))).await;
    s.with(|c| {
        c.pods.clear();
        c.services.clear();
    });
    s.edit_sandbox(|sb| sb["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:05:00Z"));
    s.reconcile().await.unwrap();
    assert!(s.with(|c| c.sandbox.is_none()));
    assert!(s.with(|c| c.claims.is_empty()));
}

#[tokio::test]
async fn two_services_on_one_port_fail_with_the_fix_and_make_no_pod() {
    let mut sb = spec(json!({}));
    sb["services"][1]["ports"] = json!([{"containerPort": 8080}]);
    let s = Scenario::new(sb).await;
    s.reconcile().await.unwrap();
    assert!(s.with(|c| c.pods.is_empty()));
    let status = s.status();
    assert_eq!(status.phase, Some(SandboxPhase::Failed));
    assert!(
        status
            .message
            .unwrap()
            .contains("give each its own containerPort")
    );
}

/// `(API group, resource, verb)` of a request, as RBAC authorizes it.
fn authorized_as(request: &str) -> (String, String, String) {
    let (method, path) = request.split_once(' ').unwrap();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/namespaces/ns/<resource>[/name[/sub]] or /apis/<group>/<v>/namespaces/...
    let (group, rest) = match parts[0] {
        "api" => ("", &parts[2..]),
        _ => (parts[1], &parts[3..]),
    };
    let rest = &rest[2..];
    let resource = match rest {
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [resource, ..] => resource.to_string(),
        [] => panic!("no resource in {request}"),
    };
    let verb = match (method, rest.len()) {
        ("GET", 1) => "list",
        ("GET", _) => "get",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        _ => panic!("unexpected {request}"),
    };
    (group.to_string(), resource, verb.to_string())
}

/// Every request a sandbox's whole life sends (create, ready, stop, start, delete) is
/// granted by the operator's ClusterRole, as the plain manifests install it.
#[tokio::test]
async fn the_operators_cluster_role_grants_every_request_of_a_sandboxs_life() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let s = Scenario::ready(spec(json!({"network": "private"}))).await;
    s.edit_sandbox(|sb| sb["spec"]["state"] = json!("Stopped"));
    s.reconcile().await.unwrap();
    s.pod_gone();
    s.edit_sandbox(|sb| sb["spec"]["state"] = json!("Running"));
    s.reconcile().await.unwrap();
    s.edit_sandbox(|sb| sb["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:05:00Z"));
    s.reconcile().await.unwrap();
    assert!(s.with(|c| c.sandbox.is_none()));

    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/03-clusterrole.yaml"),
    )
    .unwrap();
    let first = file.split("\n---\n").next().unwrap();
    let role: ClusterRole = serde_saphyr::from_str(first).unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for rule in role.rules.unwrap() {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    let requests = s.requests("");
    let kinds: std::collections::BTreeSet<String> =
        requests.iter().map(|r| authorized_as(r).1).collect();
    for needed in [
        "pods",
        "services",
        "persistentvolumeclaims",
        "networkpolicies",
    ] {
        assert!(
            kinds.contains(needed),
            "the scenario never touched {needed}"
        );
    }
    for request in &requests {
        let grant = authorized_as(request);
        assert!(
            granted.contains(&grant),
            "{request} needs {grant:?}, which manifests/03-clusterrole.yaml does not grant"
        );
    }
}

#[tokio::test]
async fn an_evicted_pod_is_made_again_after_the_restart_backoff() {
    let s = Scenario::ready(spec(json!({}))).await;
    s.with(|c| {
        let pod = c.pods.get_mut(POD).unwrap();
        let terminated = json!({"terminated": {"exitCode": 137, "reason": "Error",
            "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:30Z"}});
        pod["status"] = json!({"phase": "Failed", "reason": "Evicted", "containerStatuses": [
            {"name": "web", "image": "nginx:1.27", "imageID": "", "ready": false,
             "restartCount": 0, "state": terminated},
            {"name": "shell", "image": "busybox:1.36", "imageID": "", "ready": false,
             "restartCount": 0, "state": terminated},
        ]});
    });
    s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(
        status.services[0].state.as_deref(),
        Some("exited (code 137)")
    );
    let at = status.services[0]
        .next_restart_time
        .expect("a restart is scheduled");
    assert!(s.with(|c| c.events.contains(&"ServiceDied".to_string())));
    // The backoff is over: the ended pod is deleted and made again.
    s.edit_sandbox(|sb| {
        for service in sb["status"]["services"].as_array_mut().unwrap() {
            service["nextRestartTime"] = json!("2020-01-01T00:00:00Z");
        }
    });
    assert!(at > chrono::Utc::now() - chrono::TimeDelta::seconds(5));
    s.reconcile().await.unwrap();
    assert_eq!(s.requests("POST /api/v1/namespaces/default/pods").len(), 2);
    let pod = s.with(|c| c.pods[POD].clone());
    assert_eq!(pod["status"]["phase"], "Pending", "a new pod");
}

#[tokio::test]
async fn a_service_crash_looping_past_five_restarts_fails_the_sandbox() {
    let s = Scenario::ready(spec(json!({}))).await;
    s.with(|c| {
        let pod = c.pods.get_mut(POD).unwrap();
        pod["status"]["containerStatuses"][0] = json!({
            "name": "web", "image": "nginx:1.27", "imageID": "", "ready": false,
            "restartCount": 6,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
            "lastState": {"terminated": {"exitCode": 1}},
        });
    });
    s.reconcile().await.unwrap();
    let status = s.status();
    assert_eq!(status.phase, Some(SandboxPhase::Failed));
    assert_eq!(status.services[0].restarts, 6);
    assert_eq!(
        status.services[0].state.as_deref(),
        Some("waiting (CrashLoopBackOff)")
    );
    let message = status.message.unwrap();
    assert!(
        message.contains("keeps failing: exited (code 1), restarted 6 times"),
        "{message}"
    );
    assert_eq!(s.requests("POST /api/v1/namespaces/default/pods").len(), 1);
}
