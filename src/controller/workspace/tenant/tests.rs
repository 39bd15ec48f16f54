//! The Workspace controller on a cluster: reconciles of one Workspace against the
//! tower-test mock API server (answering from the state below), through the real
//! `KubeStore` and `PodRuntime`: what it applies, what it removes when the spec no
//! longer declares it, and the status it writes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::*;
use crate::controller::reconcile::drive;
use crate::resources::{Kind, ObjectKey};
use crate::runtime::PodRuntime;
use crate::store::kube::mock::{Reply, Seen, event_created, mock_client, status};

const WS_PATH: &str = "/apis/orcaops.dev/v1alpha1/workspaces/team-a";
const UID: &str = "11112222-3333-4444-5555-666677778888";

/// What the fake API server holds: the Workspace, and every other object by its path.
#[derive(Default)]
struct Cluster {
    workspace: Value,
    version: u64,
    objects: BTreeMap<String, Value>,
    /// Every request but events, as `METHOD path`.
    requests: Vec<String>,
    events: Vec<String>,
    /// The field manager of each apply.
    managers: Vec<String>,
}

impl Cluster {
    fn answer(&mut self, request: &Seen) -> Reply {
        let path = request.path.clone();
        let ok = |value: Value| Reply::Json(200, value);
        if path.ends_with("/events") || path.contains("/events/") {
            // A new event is a POST; the same one again, a PATCH of its series.
            match request.method.as_str() {
                "POST" => {
                    let reason = request.body["reason"].as_str().unwrap_or_default();
                    self.events.push(reason.to_string());
                }
                "PATCH" => self.events.push("(series)".into()),
                _ => {}
            }
            return Reply::Json(201, event_created());
        }
        self.requests.push(format!("{} {path}", request.method));
        match (request.method.as_str(), path.as_str()) {
            ("GET", WS_PATH) => return ok(self.workspace.clone()),
            ("PATCH", p) if p == format!("{WS_PATH}/status") => {
                self.version += 1;
                self.workspace["status"] = request.body["status"].clone();
                self.workspace["metadata"]["resourceVersion"] = json!(self.version.to_string());
                return ok(self.workspace.clone());
            }
            _ => {}
        }
        match request.method.as_str() {
            // Server-side apply: the body is the object.
            "PATCH" => {
                let manager = request
                    .query
                    .iter()
                    .find(|(k, _)| k == "fieldManager")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                self.managers.push(manager);
                self.objects.insert(path, request.body.clone());
                ok(request.body.clone())
            }
            "GET" => {
                let prefix = format!("{path}/");
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix))
                    .map(|(_, v)| v.clone())
                    .collect();
                ok(json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}))
            }
            "DELETE" => match self.objects.remove(&path) {
                Some(object) => ok(object),
                None => Reply::Json(404, status(404, "NotFound", "not found")),
            },
            _ => Reply::Json(405, status(405, "MethodNotAllowed", &path)),
        }
    }
}

struct Scenario {
    cluster: Arc<Mutex<Cluster>>,
    ctx: Arc<Context>,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl Scenario {
    async fn new(spec: Value) -> Scenario {
        let cluster = Arc::new(Mutex::new(Cluster {
            workspace: json!({
                "apiVersion": "orcaops.dev/v1alpha1", "kind": "Workspace",
                "metadata": {"name": "team-a", "uid": UID, "generation": 1,
                    "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": spec,
            }),
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
        let tenants = self.ctx.tenants.clone().expect("a cluster applies tenants");
        let key = ObjectKey::new(Kind::Workspace, "", "team-a");
        drive(tenants.as_ref(), &self.ctx, &key).await
    }

    fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        f(&mut self.cluster.lock().unwrap())
    }
}

const NS: &str = "/api/v1/namespaces/team-a";
const QUOTA_PATH: &str = "/api/v1/namespaces/team-a/resourcequotas/orcaops-quota";
const LIMITS_PATH: &str = "/api/v1/namespaces/team-a/limitranges/orcaops-defaults";
const ISOLATION_PATH: &str =
    "/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/orcaops-isolation";
const BINDINGS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings";

#[tokio::test]
async fn a_workspace_applies_its_tenant_and_says_so_in_its_status() {
    let s = Scenario::new(json!({
        "quotas": {"concurrentJobs": 2, "cpu": "2", "memory": "4Gi"},
        "members": [{"name": "alice", "role": "admin"}, {"name": "bob", "role": "viewer"}],
    }))
    .await;
    let requeue = s.reconcile().await.unwrap();
    assert_eq!(requeue, Some(REAPPLY));
    s.with(|c| {
        let applied: Vec<&str> = c.objects.keys().map(String::as_str).collect();
        assert_eq!(
            applied,
            [
                NS,
                LIMITS_PATH,
                QUOTA_PATH,
                ISOLATION_PATH,
                &format!("{BINDINGS}/orcaops-workspace-admin-alice"),
                &format!("{BINDINGS}/orcaops-workspace-viewer-bob"),
            ],
            "{:#?}",
            c.requests
        );
        assert!(c.managers.iter().all(|m| m == "orcaops-workspace"), "{:?}", c.managers);
        let quota = &c.objects[QUOTA_PATH];
        assert_eq!(quota["spec"]["hard"]["pods"], "2");
        assert_eq!(quota["spec"]["hard"]["requests.memory"], "4Gi");
        assert_eq!(quota["metadata"]["ownerReferences"][0]["uid"], UID);
        // The cpu and memory quotas need a request in every container to count.
        let limits = &c.objects[LIMITS_PATH];
        assert_eq!(limits["spec"]["limits"][0]["defaultRequest"]["cpu"], "100m");
        let binding = &c.objects[&format!("{BINDINGS}/orcaops-workspace-viewer-bob")];
        assert_eq!(binding["roleRef"]["name"], "orcaops-workspace-viewer");
        assert_eq!(binding["subjects"][0]["name"], "bob");

        let status: WorkspaceStatus =
            serde_json::from_value(c.workspace["status"].clone()).unwrap();
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(status.members, 2);
        let ready = &status.conditions[0];
        assert_eq!(ready.type_, WorkspaceConditionType::Ready);
        assert_eq!(ready.reason, "TenantApplied");
        assert_eq!(
            ready.message,
            "applied: namespace team-a, its ResourceQuota, its LimitRange, its isolating NetworkPolicy, 2 member RoleBinding(s)"
        );
        assert_eq!(c.events, ["TenantApplied"]);
    });

    // Again with nothing changed (a resync): no new event, and nothing applied again
    // before REAPPLY has passed.
    let applies = s.with(|c| c.managers.len());
    s.reconcile().await.unwrap();
    s.with(|c| assert_eq!(c.events, ["TenantApplied"]));
    s.with(|c| assert_eq!(c.managers.len(), applies, "{:#?}", c.requests));
}

#[test]
fn a_tenant_is_applied_only_when_due() {
    let tenant = build_tenant(
        &TenantOwner {
            name: "team-a".into(),
            uid: UID.into(),
        },
        &WorkspaceSpec::default(),
    );
    let observed = |due: bool| Observed {
        generation: 1,
        due,
        tenant: tenant.clone(),
        members: 0,
        status: WorkspaceStatus::default(),
        now: chrono::Utc::now(),
    };
    assert_eq!(decide(&observed(true)).actions.len(), 1);
    let idle = decide(&observed(false));
    assert!(idle.actions.is_empty());
    assert_eq!(idle.requeue_after, Some(REAPPLY));
}

#[tokio::test]
async fn what_the_spec_no_longer_declares_is_removed() {
    let s = Scenario::new(json!({
        "quotas": {"concurrentJobs": 2},
        "members": [{"name": "alice", "role": "admin"}, {"name": "bob", "role": "viewer"}],
    }))
    .await;
    s.reconcile().await.unwrap();
    s.with(|c| {
        assert!(c.objects.contains_key(QUOTA_PATH));
        assert!(
            !c.objects.contains_key(LIMITS_PATH),
            "no cpu or memory quota, no defaults"
        );
        c.workspace["spec"] = json!({"members": [{"name": "alice", "role": "admin"}]});
        c.workspace["metadata"]["generation"] = json!(2);
    });
    s.reconcile().await.unwrap();
    s.with(|c| {
        assert!(!c.objects.contains_key(QUOTA_PATH), "{:#?}", c.requests);
        assert!(
            !c.objects
                .contains_key(&format!("{BINDINGS}/orcaops-workspace-viewer-bob"))
        );
        assert!(
            c.objects
                .contains_key(&format!("{BINDINGS}/orcaops-workspace-admin-alice"))
        );
        assert!(c.objects.contains_key(NS), "the namespace stays");
        assert!(
            c.requests.contains(&format!("DELETE {QUOTA_PATH}")),
            "{:#?}",
            c.requests
        );
        let status: WorkspaceStatus =
            serde_json::from_value(c.workspace["status"].clone()).unwrap();
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.members, 1);
        assert_eq!(c.events.len(), 2, "the message changed: {:?}", c.events);
    });
}

#[tokio::test]
async fn a_refused_apply_is_an_error_and_a_bad_spec_writes_no_status() {
    let s = Scenario::new(json!({})).await;
    // The operator may not create namespaces: the API server answers 403.
    let (client, api) = mock_client();
    let server = api.route(Arc::new(Mutex::new(Vec::new())), |_| {
        Some(Reply::Json(
            403,
            status(
                403,
                "Forbidden",
                "namespaces is forbidden: cannot patch resource",
            ),
        ))
    });
    let err = PodRuntime::new(client)
        .apply_tenant(&build_tenant(
            &TenantOwner {
                name: "team-a".into(),
                uid: UID.into(),
            },
            &WorkspaceSpec::default(),
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    server.abort();
    // Through the controller, nothing is written when the apply fails.
    s.with(|c| c.workspace["spec"] = json!({"members": [{"name": "x", "role": "bogus"}]}));
    let err = s.reconcile().await.unwrap_err();
    assert!(
        matches!(err, ControllerError::InvalidObject { .. }),
        "{err}"
    );
    s.with(|c| assert!(c.workspace.get("status").is_none()));
}
