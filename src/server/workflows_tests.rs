//! The Workflow doors through the real router over a local store, with no controller:
//! each test writes the status the controller would, and reads back what the door wrote.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::workflows::trigger_has_token;
use super::{AppState, BASE, router};
use crate::resources::workflow::{
    ActiveRun, NodePhase, NodeStatus, WorkflowPhase, WorkflowRunSummary, WorkflowStatus,
};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::store::LocalStore;

struct Api {
    app: Router,
    store: LocalStore,
    _data: tempfile::TempDir,
}

async fn api() -> Api {
    let data = tempfile::tempdir().unwrap();
    let store = LocalStore::open(data.path()).await.unwrap();
    let state = AppState::for_door_tests(&store);
    Api {
        app: router(state),
        store,
        _data: data,
    }
}

fn uri(rest: &str) -> String {
    format!("{BASE}/namespaces/default/workflows/ci{rest}")
}

impl Api {
    async fn post(&self, rest: &str, body: Value, idem: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri(rest))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = idem {
            request = request.header("Idempotency-Key", key);
        }
        let request = request.body(Body::from(body.to_string())).unwrap();
        self.send(request).await
    }

    async fn get(&self, rest: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .uri(uri(rest))
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let code = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Stores the workflow `ci`: build -> test (a matrix of two) -> deploy (an approval).
    async fn workflow(&self) -> Object {
        let spec = json!({
            "inputs": [{"name": "ref", "default": "main"}, {"name": "env", "default": "dev"}],
            "schedule": "0 0 1 1 *",
            "jobs": [
                {"name": "build", "job": {"image": "busybox:latest", "steps": [{"name": "b", "run": "true"}]}},
                {"name": "test", "needs": ["build"], "matrix": {"shard": ["1", "2"]},
                 "job": {"image": "busybox:latest", "steps": [{"name": "t", "run": "true"}]}},
                {"name": "deploy", "needs": ["test"], "approval": {"message": "ship?"},
                 "job": {"image": "busybox:latest", "steps": [{"name": "d", "run": "true"}]}}
            ]
        });
        self.store
            .create(Object::new(Kind::Workflow, "default", "ci", spec))
            .await
            .unwrap()
    }

    async fn object(&self) -> Object {
        self.store
            .get(&ObjectKey::new(Kind::Workflow, "default", "ci"))
            .await
            .unwrap()
            .unwrap()
    }

    /// Writes a status as the controller would.
    async fn status(&self, status: WorkflowStatus) {
        let key = ObjectKey::new(Kind::Workflow, "default", "ci");
        self.store
            .update_status(&key, "", serde_json::to_value(status).unwrap())
            .await
            .unwrap();
    }
}

fn annotation(obj: &Object, key: &str) -> Option<String> {
    obj.metadata.annotations.get(key).cloned()
}

fn running(run: u32, trigger: Option<String>, nodes: Vec<NodeStatus>) -> WorkflowStatus {
    WorkflowStatus {
        phase: WorkflowPhase::Running,
        run: Some(run),
        run_trigger: trigger,
        nodes,
        ..Default::default()
    }
}

fn node(name: &str, phase: NodePhase) -> NodeStatus {
    NodeStatus {
        name: name.into(),
        phase,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_run_request_writes_its_token_and_inputs_and_a_retry_finds_its_run() {
    let api = api().await;
    api.workflow().await;
    let (code, body) = api
        .post(
            "/runs",
            json!({"inputs": {"ref": "release"}}),
            Some("abc-1"),
        )
        .await;
    // No controller here: the run is accepted, not started.
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["token"], "run-abc-1");
    assert_eq!(body["run"], Value::Null);
    let obj = api.object().await;
    assert_eq!(annotation(&obj, keys::RERUN).as_deref(), Some("run-abc-1"));
    assert_eq!(
        annotation(&obj, keys::INPUTS).as_deref(),
        Some(r#"{"ref":"release"}"#)
    );
    let version = obj.metadata.resource_version.clone();

    // Retried before the controller started it: the same answer, nothing written.
    let (code, body) = api
        .post(
            "/runs",
            json!({"inputs": {"ref": "release"}}),
            Some("abc-1"),
        )
        .await;
    assert_eq!(
        (code, body["duplicate"].clone()),
        (StatusCode::ACCEPTED, json!(true))
    );
    assert_eq!(api.object().await.metadata.resource_version, version);

    // Once it runs (and after another run replaced the annotation), a retry names it.
    api.status(running(4, Some("rerun=run-abc-1".into()), vec![]))
        .await;
    let (code, body) = api.post("/runs", json!({}), Some("abc-1")).await;
    assert_eq!(
        (code, body["run"].clone()),
        (StatusCode::OK, json!(4)),
        "{body}"
    );
    let mut finished = running(5, Some("rerun=run-other".into()), vec![]);
    finished.phase = WorkflowPhase::Succeeded;
    finished.history = vec![WorkflowRunSummary {
        run: 4,
        phase: WorkflowPhase::Failed,
        trigger: Some("rerun=run-abc-1".into()),
        start_time: None,
        completion_time: None,
        progress: None,
        summary: None,
    }];
    api.status(finished).await;
    let (code, body) = api.post("/runs", json!({}), Some("abc-1")).await;
    assert_eq!(
        (code, body["run"].clone(), body["phase"].clone()),
        (StatusCode::OK, json!(4), json!("Failed")),
        "{body}"
    );
    assert_eq!(
        annotation(&api.object().await, keys::RERUN).as_deref(),
        Some("run-abc-1")
    );
}

#[tokio::test]
async fn a_run_request_is_refused_for_an_undeclared_input_or_a_bad_key() {
    let api = api().await;
    api.workflow().await;
    let (code, body) = api
        .post("/runs", json!({"inputs": {"branch": "x"}}), None)
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("\"branch\"") && message.contains("ref, env"),
        "{message}"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "inputs.branch");
    let (code, body) = api.post("/runs", json!({}), Some("has space")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(annotation(&api.object().await, keys::RERUN).is_none());
    // Without a key, each request is a run of its own.
    let (_, one) = api.post("/runs", json!({}), None).await;
    let (_, two) = api.post("/runs", json!({}), None).await;
    assert_ne!(one["token"], two["token"]);
    assert!(one["token"].as_str().unwrap().starts_with("run-"));
}

#[tokio::test]
async fn a_rerun_writes_its_mode_and_keeps_the_last_inputs() {
    let api = api().await;
    api.workflow().await;
    let (code, body) = api.post("/rerun", json!({"mode": "failed"}), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");

    let mut last = running(2, Some("rerun=x".into()), vec![]);
    last.phase = WorkflowPhase::Failed;
    last.inputs = [("ref".to_string(), "release".to_string())].into();
    api.status(last).await;
    let (code, body) = api.post("/rerun", json!({"mode": "failed"}), None).await;
    assert!(code.is_success(), "{body}");
    let obj = api.object().await;
    assert_eq!(
        annotation(&obj, keys::RERUN_MODE).as_deref(),
        Some("failed")
    );
    assert_eq!(
        annotation(&obj, keys::INPUTS).as_deref(),
        Some(r#"{"ref":"release"}"#)
    );
    let token = annotation(&obj, keys::RERUN).unwrap();

    let (code, _) = api
        .post(
            "/rerun",
            json!({"from": "test", "inputs": {"env": "prod"}}),
            None,
        )
        .await;
    assert!(code.is_success());
    let obj = api.object().await;
    assert_eq!(
        annotation(&obj, keys::RERUN_MODE).as_deref(),
        Some("from=test")
    );
    assert_eq!(
        annotation(&obj, keys::INPUTS).as_deref(),
        Some(r#"{"env":"prod","ref":"release"}"#)
    );
    assert_ne!(annotation(&obj, keys::RERUN).unwrap(), token);

    // A plain rerun removes the mode; unknown nodes and modes are refused.
    let (code, _) = api.post("/rerun", json!({}), None).await;
    assert!(code.is_success());
    assert!(annotation(&api.object().await, keys::RERUN_MODE).is_none());
    let (code, body) = api.post("/rerun", json!({"from": "nope"}), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("build, test, deploy")
    );
    let (code, _) = api.post("/rerun", json!({"mode": "some"}), None).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn decisions_merge_for_the_current_run_and_are_refused_when_nothing_can_wait() {
    let api = api().await;
    api.workflow().await;
    let (code, body) = api.post("/approve", json!({"node": "deploy"}), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not started a run")
    );

    // An old run's decision is dropped when the current run's first one is written.
    let key = ObjectKey::new(Kind::Workflow, "default", "ci");
    let mut obj = api.store.get(&key).await.unwrap().unwrap();
    obj.metadata.annotations.insert(
        keys::APPROVALS.into(),
        r#"{"run": 2, "nodes": {"deploy": {"approved": true}}}"#.into(),
    );
    api.store.replace(obj).await.unwrap();
    api.status(running(
        3,
        None,
        vec![
            node("build", NodePhase::Succeeded),
            node("deploy", NodePhase::Pending),
        ],
    ))
    .await;
    let (code, body) = api
        .post(
            "/reject",
            json!({"node": "deploy", "message": "not today", "by": "ana"}),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let approvals: Value =
        serde_json::from_str(&annotation(&api.object().await, keys::APPROVALS).unwrap()).unwrap();
    assert_eq!(
        approvals,
        json!({"run": 3, "nodes": {"deploy": {"approved": false, "message": "not today", "by": "ana"}}})
    );
    // A second decision for the same run replaces the node's own.
    api.post("/approve", json!({"node": "deploy", "message": "ok"}), None)
        .await;
    let approvals: Value =
        serde_json::from_str(&annotation(&api.object().await, keys::APPROVALS).unwrap()).unwrap();
    assert_eq!(approvals["nodes"]["deploy"]["approved"], true);
    assert_eq!(approvals["run"], 3);

    let (code, body) = api.post("/approve", json!({"node": "ghost"}), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("approval gate are: deploy")
    );
    let (code, body) = api.post("/approve", json!({"node": "build"}), None).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("has no approval gate")
    );

    api.status(running(3, None, vec![node("deploy", NodePhase::Succeeded)]))
        .await;
    let (code, body) = api.post("/approve", json!({"node": "deploy"}), None).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(
        body["message"].as_str().unwrap().contains("already ended"),
        "{body}"
    );
}

#[tokio::test]
async fn cancel_names_the_run_in_progress_and_runs_fall_back_to_the_status() {
    let api = api().await;
    api.workflow().await;
    let (code, _) = api.post("/cancel", json!({}), None).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let mut status = running(
        2,
        Some("rerun=run-a".into()),
        vec![node("build", NodePhase::Running)],
    );
    status.history = vec![WorkflowRunSummary {
        run: 1,
        phase: WorkflowPhase::Succeeded,
        trigger: None,
        start_time: None,
        completion_time: None,
        progress: Some("5/5".into()),
        summary: None,
    }];
    api.status(status).await;
    let (code, _) = api.post("/cancel", json!({}), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        annotation(&api.object().await, keys::CANCEL).as_deref(),
        Some("2")
    );

    let (code, body) = api.get("/runs").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "WorkflowRunList");
    let runs: Vec<(u64, String)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run"].as_u64().unwrap(),
                r["phase"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [(2, "Running".to_string()), (1, "Succeeded".to_string())]
    );
    assert_eq!(body["items"][0]["nodes"][0]["name"], "build");
}

#[test]
fn a_trigger_holds_a_token_only_as_a_whole_part() {
    assert!(trigger_has_token("s0a1b2c/rerun=run-x", "run-x"));
    assert!(trigger_has_token("rerun=run-x", "run-x"));
    assert!(!trigger_has_token("rerun=run-xy", "run-x"));
    assert!(!trigger_has_token("s0a1b2c", "run-x"));
    // A tick carries the token already used; it was not started by it.
    assert!(!trigger_has_token(
        "rerun=run-x/schedule=2026-12-03T10:00:00Z",
        "run-x"
    ));
}

/// Runs 2 and 3 in progress at once (concurrencyPolicy: Allow): 3 current, 2 beside it,
/// both waiting for approval of `deploy`.
fn overlapping() -> WorkflowStatus {
    let waiting = vec![
        node("build", NodePhase::Succeeded),
        node("deploy", NodePhase::WaitingApproval),
    ];
    let mut status = running(3, Some("rerun=run-b".into()), waiting.clone());
    let mut older = running(2, Some("rerun=run-a".into()), waiting);
    older.phase = WorkflowPhase::WaitingApproval;
    status.active_runs = vec![ActiveRun::from_status(&older)];
    status
}

#[tokio::test]
async fn with_several_runs_in_progress_cancel_and_approve_need_the_run_and_list_them() {
    let api = api().await;
    api.workflow().await;
    api.status(overlapping()).await;

    let (code, body) = api.post("/cancel", json!({}), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(
            "has 2 runs in progress (2 and 3); say which: orcaops cancel workflow ci --run N"
        ),
        "{message}"
    );
    let (code, body) = api.post("/cancel", json!({"run": 7}), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("run 7 of workflow ci is not in progress (in progress: 2 and 3)"),
        "{body}"
    );
    // Two cancels in a row: both runs stay asked for.
    let (code, body) = api.post("/cancel", json!({"run": 2}), None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = api.post("/cancel", json!({"run": 3}), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        annotation(&api.object().await, keys::CANCEL).as_deref(),
        Some("2,3")
    );

    let (code, body) = api.post("/approve", json!({"node": "deploy"}), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("orcaops approve workflow ci deploy --run N"),
        "{body}"
    );
    // Decisions for both runs are kept side by side, one entry per run.
    let (code, body) = api
        .post(
            "/approve",
            json!({"node": "deploy", "run": 2, "by": "ana"}),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["run"], 2);
    let (code, _) = api
        .post(
            "/reject",
            json!({"node": "deploy", "run": 3, "by": "bob"}),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let written: Value =
        serde_json::from_str(&annotation(&api.object().await, keys::APPROVALS).unwrap()).unwrap();
    assert_eq!(written[0]["run"], 2);
    assert_eq!(written[0]["nodes"]["deploy"]["approved"], true);
    assert_eq!(written[1]["run"], 3);
    assert_eq!(written[1]["nodes"]["deploy"]["approved"], false);

    // A retried run request finds a run in progress beside the current one.
    let (code, body) = api.post("/runs", json!({}), Some("a")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["run"], 2);
    assert_eq!(body["duplicate"], true);

    // The runs list shows both in progress, newest first.
    let (_, body) = api.get("/runs").await;
    let runs: Vec<u64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_u64().unwrap())
        .collect();
    assert_eq!(runs, [3, 2]);
}

#[test]
fn a_decision_drops_the_runs_that_ended_and_keeps_those_in_progress() {
    let one = super::workflows::merge_decision(None, 4, &[4], "deploy", json!({"approved": true}));
    assert_eq!(
        one,
        json!({"run": 4, "nodes": {"deploy": {"approved": true}}})
    );
    let existing = json!([
        {"run": 1, "nodes": {"deploy": {"approved": true}}},
        {"run": 3, "nodes": {"deploy": {"approved": true}}},
    ])
    .to_string();
    let merged = super::workflows::merge_decision(
        Some(&existing),
        4,
        &[3, 4],
        "deploy",
        json!({"approved": false}),
    );
    assert_eq!(
        merged,
        json!([
            {"run": 3, "nodes": {"deploy": {"approved": true}}},
            {"run": 4, "nodes": {"deploy": {"approved": false}}},
        ])
    );
}

#[tokio::test]
async fn a_key_whose_run_left_the_status_is_found_in_the_run_records() {
    let api = api().await;
    let obj = api.workflow().await;
    // Run 12 is current; run 1 (key "first") is only in the run records now.
    api.status(WorkflowStatus {
        phase: WorkflowPhase::Succeeded,
        run: Some(12),
        run_trigger: Some("rerun=run-twelfth".into()),
        ..Default::default()
    })
    .await;
    let record = |uid: &str, token: &str| crate::records::WorkflowRunRecord {
        uid: uid.into(),
        namespace: "default".into(),
        name: "ci".into(),
        run: 1,
        generation: 1,
        phase: WorkflowPhase::Failed,
        trigger: "api".into(),
        token: Some(token.into()),
        inputs: Default::default(),
        start_time: None,
        completion_time: None,
        progress: "1/1".into(),
        summary: String::new(),
        nodes: Vec::new(),
        spec_hash: None,
        spec: None,
    };
    api.store
        .put_workflow_run(&record(&obj.metadata.uid, "run-first"))
        .await
        .unwrap();
    // A Workflow of the same name that was deleted: its keys are not this one's.
    api.store
        .put_workflow_run(&record("an-earlier-uid", "run-gone"))
        .await
        .unwrap();

    let (code, body) = api.post("/runs", json!({}), Some("first")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["run"], 1);
    assert_eq!(body["phase"], "Failed");
    assert_eq!(body["duplicate"], true);
    assert!(
        body["message"].as_str().unwrap().contains("run records"),
        "{body}"
    );
    assert_eq!(
        annotation(&api.object().await, keys::RERUN),
        None,
        "nothing asked"
    );

    let (code, body) = api.post("/runs", json!({}), Some("gone")).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["duplicate"], false);
    assert_eq!(
        annotation(&api.object().await, keys::RERUN).as_deref(),
        Some("run-gone")
    );
}
