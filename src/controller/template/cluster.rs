//! SandboxTemplates on a cluster: their Sandboxes run as pods, but warm pools do not
//! run there yet (a claim renames Docker containers; a pod cannot be renamed, and
//! relabelling a ready pod over to a Sandbox is not built). A template that declares a
//! pool says so, in its status (condition `WarmPool` False, and the message) and in
//! one event; Sandboxes made from it start cold.

use std::convert::Infallible;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::spec_of;
use crate::controller::event::Event;
use crate::controller::reconcile::{Decision, Fate, Observation, Reconciler};
use crate::controller::{Context, ControllerError};
use crate::resources::Object;
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::sandbox::{
    SandboxTemplateConditionType, SandboxTemplateSpec, SandboxTemplateStatus,
};

/// Why a template's pool is not kept here.
pub const NO_POOL_ON_A_CLUSTER: &str = "warm pools are not run on a cluster yet: sandboxes from this template start cold (remove spec.warmPool to silence this)";

/// The SandboxTemplate controller on a cluster: it reports that the template's warm
/// pool is not kept, and does nothing else.
pub struct NoPoolReconciler;

/// What the report needs.
pub struct NoPoolObserved {
    spec: SandboxTemplateSpec,
    stored: SandboxTemplateStatus,
    generation: i64,
    now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl Reconciler for NoPoolReconciler {
    const FINALIZER: bool = false;
    type Observed = NoPoolObserved;
    type Action = Infallible;
    type Status = SandboxTemplateStatus;
    type Hints = ();

    async fn observe(
        &self,
        _ctx: &Arc<Context>,
        obj: &Object,
        stored: &SandboxTemplateStatus,
    ) -> Result<Observation<NoPoolObserved>, ControllerError> {
        Ok(Observation::Ready(NoPoolObserved {
            spec: spec_of(obj)?,
            stored: stored.clone(),
            generation: obj.metadata.generation,
            now: Utc::now(),
        }))
    }

    fn decide(obs: &NoPoolObserved) -> Decision<Infallible, SandboxTemplateStatus> {
        let status = no_pool_status(&obs.spec, &obs.stored, obs.generation, obs.now);
        let mut events = Vec::new();
        if status.message.is_some() && obs.stored.message != status.message {
            events.push(Event::warning("WarmPoolNotRun", NO_POOL_ON_A_CLUSTER));
        }
        Decision {
            actions: Vec::new(),
            status,
            events,
            requeue_after: None,
            status_first: false,
            fate: Fate::Keep,
            hints: (),
        }
    }

    async fn act(
        &self,
        _ctx: &Arc<Context>,
        _obj: &Object,
        _observed: &mut NoPoolObserved,
        _actions: Vec<Infallible>,
        _status: &SandboxTemplateStatus,
    ) -> Result<bool, ControllerError> {
        Ok(false)
    }
}

/// The status of a template on a cluster. Pure.
pub fn no_pool_status(
    spec: &SandboxTemplateSpec,
    stored: &SandboxTemplateStatus,
    generation: i64,
    now: DateTime<Utc>,
) -> SandboxTemplateStatus {
    let mut status = stored.clone();
    status.observed_generation = Some(generation);
    status.pool = None;
    let wants_pool = spec
        .warm_pool
        .as_ref()
        .is_some_and(|p| p.size > 0 || p.max_size.unwrap_or(0) > 0);
    if wants_pool {
        status.message = Some(NO_POOL_ON_A_CLUSTER.to_string());
        set_condition(
            &mut status.conditions,
            SandboxTemplateConditionType::WarmPool,
            ConditionStatus::False,
            "NotOnCluster",
            NO_POOL_ON_A_CLUSTER,
            now,
        );
    } else {
        status.message = None;
        status
            .conditions
            .retain(|c| c.type_ != SandboxTemplateConditionType::WarmPool);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::sandbox::WarmPool;

    #[test]
    fn a_declared_pool_is_reported_not_run_and_no_pool_is_quiet() {
        let now = Utc::now();
        let pooled = SandboxTemplateSpec {
            warm_pool: Some(WarmPool {
                size: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = no_pool_status(&pooled, &SandboxTemplateStatus::default(), 3, now);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.message.as_deref(), Some(NO_POOL_ON_A_CLUSTER));
        let condition = &status.conditions[0];
        assert_eq!(condition.type_, SandboxTemplateConditionType::WarmPool);
        assert_eq!(condition.status, ConditionStatus::False);
        assert_eq!(condition.reason, "NotOnCluster");
        // Unchanged the next time: nothing to write.
        assert_eq!(no_pool_status(&pooled, &status, 3, now), status);
        // The pool removed from the spec: the report goes.
        let plain = SandboxTemplateSpec::default();
        let quiet = no_pool_status(&plain, &status, 4, now);
        assert!(quiet.message.is_none() && quiet.conditions.is_empty());
    }

    /// Through the real KubeStore on the mock API server: the status is written and the
    /// event recorded once; a second reconcile writes nothing.
    #[tokio::test]
    async fn a_template_with_a_pool_on_a_cluster_says_so_once() {
        use crate::resources::{Kind, ObjectKey};
        use crate::runtime::PodRuntime;
        use crate::store::kube::mock::{Reply, event_created, mock_client, status};
        use crate::store::{KubeStore, LocalStore};
        use serde_json::json;
        use std::sync::Mutex;

        const PATH: &str = "/apis/orcaops.dev/v1alpha1/namespaces/default/sandboxtemplates/shell";
        let template = Arc::new(Mutex::new(json!({
            "apiVersion": "orcaops.dev/v1alpha1", "kind": "SandboxTemplate",
            "metadata": {"name": "shell", "namespace": "default", "uid": "u-1",
                "generation": 1, "resourceVersion": "1"},
            "spec": {"services": [{"name": "shell", "image": "busybox:1.36"}],
                "warmPool": {"size": 2}},
        })));
        let writes = Arc::new(Mutex::new((0, Vec::<String>::new())));
        let (client, api) = mock_client();
        let (state, seen) = (template.clone(), writes.clone());
        let _server = api.route(Arc::new(Mutex::new(Vec::new())), move |request| {
            let path = request.path.as_str();
            Some(match (request.method.as_str(), path) {
                ("GET", PATH) => Reply::Json(200, state.lock().unwrap().clone()),
                ("PATCH", p) if p == format!("{PATH}/status") => {
                    let mut t = state.lock().unwrap();
                    t["status"] = request.body["status"].clone();
                    t["metadata"]["resourceVersion"] = json!("2");
                    seen.lock().unwrap().0 += 1;
                    Reply::Json(200, t.clone())
                }
                ("POST", "/apis/events.k8s.io/v1/namespaces/default/events") => {
                    let reason = request.body["reason"].as_str().unwrap_or_default();
                    seen.lock().unwrap().1.push(reason.to_string());
                    Reply::Json(201, event_created())
                }
                (method, p) => {
                    Reply::Json(500, status(500, "Unexpected", &format!("{method} {p}")))
                }
            })
        });
        let dir = tempfile::tempdir().unwrap();
        let records = LocalStore::open(dir.path()).await.unwrap();
        let ctx = Context::new(&crate::controller::Backend::Cluster {
            store: KubeStore::new(client.clone(), "kube-test"),
            records,
            pods: PodRuntime::new(client),
        });
        let key = ObjectKey::new(Kind::SandboxTemplate, "default", "shell");
        for _ in 0..2 {
            crate::controller::reconcile::drive(&NoPoolReconciler, &ctx, &key)
                .await
                .unwrap();
        }
        let stored = template.lock().unwrap()["status"].clone();
        assert_eq!(stored["conditions"][0]["type"], "WarmPool");
        assert_eq!(stored["conditions"][0]["status"], "False");
        assert_eq!(stored["message"], NO_POOL_ON_A_CLUSTER);
        let (status_writes, events) = writes.lock().unwrap().clone();
        assert_eq!(
            status_writes, 1,
            "the second reconcile has nothing to write"
        );
        assert_eq!(events, ["WarmPoolNotRun"]);
    }
}
