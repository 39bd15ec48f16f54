//! The REST facade over the Kubernetes store (`orcaops operator --api`), driven through
//! the real router against the mock API server: each test is the HTTP requests a client
//! sends, the requests the facade must make of the cluster, and the answers it gives.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{AppState, BASE, router};
use crate::controller::activity::SandboxActivity;
use crate::records::{self, RunRecord};
use crate::resources::job::JobPhase;
use crate::resources::{Kind, Object};
use crate::store::LocalStore;
use crate::store::kube::mock::{
    Exchange, MockApi, collection_path, list, mock_store, object_path, served, status,
};
use crate::store::kube::{STATUS_MANAGER, SYNC_MANAGER};

/// The facade of one operator replica: objects on the mock cluster, records in a
/// temporary data dir, and whether the replica leads.
struct Replica {
    app: Router,
    records: LocalStore,
    lead: watch::Sender<bool>,
    _data: tempfile::TempDir,
}

async fn replica() -> (Replica, MockApi) {
    let (store, api) = mock_store();
    let data = tempfile::tempdir().unwrap();
    let records = LocalStore::open(data.path()).await.unwrap();
    let (lead, leading) = watch::channel(true);
    let pods = crate::runtime::PodRuntime::new(store.client().clone());
    let objects: std::sync::Arc<dyn crate::store::ObjectStore> = std::sync::Arc::new(store);
    let state = AppState {
        policies: crate::policy::Policies::disabled(objects.clone()),
        objects,
        records: records.clone(),
        sandboxes: std::sync::Arc::new(pods),
        activity: SandboxActivity::new(),
        shutdown: CancellationToken::new(),
        leading: Some(leading),
        metrics: Default::default(),
    };
    let replica = Replica {
        app: router(state),
        records,
        lead,
        _data: data,
    };
    (replica, api)
}

/// What the facade answered: the status, and the body as JSON (or as a string).
struct Answer {
    code: StatusCode,
    body: Value,
    text: String,
}

impl Replica {
    async fn call(&self, method: Method, uri: &str, content_type: &str, body: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let code = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            code,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, "application/json", "").await
    }
}

fn jobs_uri(rest: &str) -> String {
    format!("{BASE}/namespaces/default/jobs{rest}")
}

fn job(name: &str) -> Object {
    Object::new(
        Kind::Job,
        "default",
        name,
        json!({"image": "busybox:latest", "steps": [{"name": "greet", "run": "echo hi"}]}),
    )
}

fn job_yaml(name: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  image: busybox:latest\n  steps:\n    - name: greet\n      run: echo hi\n"
    )
}

fn jobs() -> String {
    collection_path(Kind::Job, Some("default"))
}

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_list_is_cut_into_pages_in_key_order_at_the_first_pages_version() {
    let (cluster, api) = replica().await;
    let three = || {
        // The API server's order is not ours: pages go by (namespace, name).
        let items = ["c", "a", "b"]
            .iter()
            .map(|n| served(&job(n), "5"))
            .collect();
        list(Kind::Job, items, "40")
    };
    let later = list(
        Kind::Job,
        ["c", "a", "b"]
            .iter()
            .map(|n| served(&job(n), "5"))
            .collect(),
        "41",
    );
    let api = api.expect(vec![
        Exchange::get(jobs()).reply(200, three()),
        Exchange::get(jobs()).reply(200, later),
    ]);
    let first = cluster.get(&jobs_uri("?limit=2")).await;
    assert_eq!(first.code, StatusCode::OK, "{}", first.text);
    assert_eq!(names(&first.body), ["a", "b"]);
    assert_eq!(first.body["metadata"]["remainingItemCount"], 1);
    assert_eq!(first.body["metadata"]["resourceVersion"], "40");
    let token = first.body["metadata"]["continue"].as_str().unwrap();
    let second = cluster
        .get(&jobs_uri(&format!("?limit=2&continue={token}")))
        .await;
    api.done().await;
    assert_eq!(names(&second.body), ["c"]);
    assert!(second.body["metadata"]["continue"].is_null());
    assert_eq!(
        second.body["metadata"]["resourceVersion"], "40",
        "every page reports the first page's version"
    );
}

#[tokio::test]
async fn get_create_apply_status_and_delete_go_to_the_cluster() {
    let (cluster, api) = replica().await;
    let mut running = job("build");
    running.status = json!({"phase": "Running"});
    let api = api.expect(vec![
        Exchange::get(object_path(Kind::Job, "default", "build"))
            .reply(200, served(&job("build"), "7")),
        Exchange::get(object_path(Kind::Job, "default", "nope")).not_found(),
        Exchange::post(jobs())
            .body("/metadata/name", json!("build"))
            .body("/spec/image", json!("busybox:latest"))
            .body("/metadata/resourceVersion", Value::Null)
            .reply(201, served(&job("build"), "8")),
        // Server-side apply: a read, then an apply by the sync manager.
        Exchange::get(object_path(Kind::Job, "default", "deploy")).not_found(),
        Exchange::patch(object_path(Kind::Job, "default", "deploy"))
            .applied_by(SYNC_MANAGER)
            .body("/spec/steps/0/run", json!("echo hi"))
            .reply(201, served(&job("deploy"), "9")),
        Exchange::patch(format!(
            "{}/status",
            object_path(Kind::Job, "default", "build")
        ))
        .applied_by(STATUS_MANAGER)
        .body("/status/phase", json!("Running"))
        .body("/metadata/resourceVersion", json!("8"))
        .reply(200, served(&running, "10")),
        Exchange::delete(object_path(Kind::Job, "default", "build"))
            .reply(200, served(&job("build"), "11")),
    ]);
    let got = cluster.get(&jobs_uri("/build")).await;
    let missing = cluster.get(&jobs_uri("/nope")).await;
    let created = cluster
        .call(
            Method::POST,
            &jobs_uri(""),
            "application/yaml",
            &job_yaml("build"),
        )
        .await;
    let applied = cluster
        .call(
            Method::PATCH,
            &jobs_uri("/deploy"),
            "application/apply-patch+yaml",
            &job_yaml("deploy"),
        )
        .await;
    let status_body = json!({
        "apiVersion": "orcaops.dev/v1alpha1", "kind": "Job",
        "metadata": {"name": "build", "namespace": "default", "resourceVersion": "8"},
        "status": {"phase": "Running"},
    });
    let status_written = cluster
        .call(
            Method::PUT,
            &jobs_uri("/build/status"),
            "application/json",
            &status_body.to_string(),
        )
        .await;
    let deleted = cluster
        .call(Method::DELETE, &jobs_uri("/build"), "application/json", "")
        .await;
    api.done().await;

    assert_eq!(got.code, StatusCode::OK, "{}", got.text);
    assert_eq!(got.body["metadata"]["resourceVersion"], "7");
    assert_eq!(missing.code, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["kind"], "Status");
    assert_eq!(missing.body["reason"], "NotFound");
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["metadata"]["uid"], "uid-build");
    assert_eq!(applied.code, StatusCode::CREATED, "{}", applied.text);
    assert_eq!(
        status_written.code,
        StatusCode::OK,
        "{}",
        status_written.text
    );
    assert_eq!(status_written.body["status"]["phase"], "Running");
    assert_eq!(deleted.code, StatusCode::OK, "{}", deleted.text);
}

#[tokio::test]
async fn what_the_cluster_refuses_is_answered_with_its_code_and_message() {
    let (cluster, api) = replica().await;
    let api = api.expect(vec![Exchange::get(jobs()).reply(
        403,
        status(
            403,
            "Forbidden",
            "jobs.orcaops.dev is forbidden: User \"system:serviceaccount:ops:orcaops\" cannot list",
        ),
    )]);
    let refused = cluster.get(&jobs_uri("")).await;
    api.done().await;
    assert_eq!(refused.code, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.body["reason"], "Forbidden");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("cannot list"),
        "{}",
        refused.text
    );
}

fn watch_line(type_: &str, obj: &Object, rv: &str) -> Value {
    json!({"type": type_, "object": served(obj, rv)})
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_watch_resumes_from_the_version_asked_and_ends_with_410_when_it_expires() {
    let (cluster, api) = replica().await;
    let mut labelled = job("b");
    labelled.metadata.labels.insert("app".into(), "web".into());
    let api = api.expect(vec![
        Exchange::get(jobs())
            .query("watch", "true")
            .query("resourceVersion", "5")
            .reply_lines(vec![
                watch_line("ADDED", &job("a"), "6"),
                watch_line("ADDED", &labelled, "7"),
                // The label is removed: for a watcher of app=web, b is gone.
                watch_line("MODIFIED", &job("b"), "8"),
            ]),
        // The API ended that watch (its timeout): watched again from the last version,
        // which the API server no longer has.
        Exchange::get(jobs())
            .query("watch", "true")
            .query("resourceVersion", "8")
            .reply_lines(vec![json!({
                "type": "ERROR",
                "object": status(410, "Expired", "too old resource version: 8 (12)"),
            })]),
    ]);
    let watched = cluster
        .get(&jobs_uri(
            "?watch=true&resourceVersion=5&labelSelector=app%3Dweb",
        ))
        .await;
    api.done().await;
    assert_eq!(watched.code, StatusCode::OK, "{}", watched.text);
    let events = lines(&watched.text);
    let summary: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(summary, [("ADDED", "b"), ("DELETED", "b"), ("ERROR", "")]);
    let error = &events[2]["object"];
    assert_eq!(error["code"], 410);
    assert_eq!(error["reason"], "Expired");
}

#[tokio::test]
async fn a_watch_from_a_version_the_cluster_no_longer_has_is_410_expired() {
    let (cluster, api) = replica().await;
    let api = api.expect(vec![
        Exchange::get(jobs())
            .query("watch", "true")
            .query("resourceVersion", "3")
            .reply(
                410,
                status(410, "Expired", "too old resource version: 3 (40)"),
            ),
    ]);
    let expired = cluster
        .get(&jobs_uri("?watch=true&resourceVersion=3"))
        .await;
    api.done().await;
    assert_eq!(expired.code, StatusCode::GONE, "{}", expired.text);
    assert_eq!(expired.body["reason"], "Expired");
    assert!(
        expired.body["message"]
            .as_str()
            .unwrap()
            .contains("list again"),
        "{}",
        expired.text
    );
}

#[tokio::test]
async fn a_watch_without_a_version_lists_then_watches_from_the_lists_version() {
    let (cluster, api) = replica().await;
    let web = |name: &str| {
        let mut obj = job(name);
        obj.metadata.labels.insert("app".into(), "web".into());
        obj
    };
    let api = api.expect(vec![
        Exchange::get(jobs()).reply(
            200,
            list(
                Kind::Job,
                vec![served(&web("a"), "6"), served(&web("b"), "7")],
                "20",
            ),
        ),
        Exchange::get(jobs())
            .query("watch", "true")
            .query("resourceVersion", "20")
            .reply_lines(vec![
                watch_line("DELETED", &web("a"), "21"),
                // b loses its label: it was listed, so the watcher is told it is gone.
                watch_line("MODIFIED", &job("b"), "22"),
            ]),
        Exchange::get(jobs())
            .query("watch", "true")
            .query("resourceVersion", "22")
            .reply(410, status(410, "Expired", "gone")),
    ]);
    let watched = cluster
        .get(&jobs_uri("?watch=true&labelSelector=app%3Dweb"))
        .await;
    api.done().await;
    let summary: Vec<String> = lines(&watched.text)
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        summary,
        ["ADDED a", "ADDED b", "DELETED a", "DELETED b", "ERROR -"],
        "{}",
        watched.text
    );
}

#[tokio::test]
async fn the_events_of_an_object_come_from_events_k8s_io() {
    let (cluster, api) = replica().await;
    let event = |name: &str, kind: &str, api_version: &str, reason: &str, time: &str| {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "default"},
            "eventTime": time,
            "reason": reason, "note": format!("{reason} happened"), "type": "Warning",
            "action": reason, "reportingController": "orcaops",
            "regarding": {"apiVersion": api_version, "kind": kind, "namespace": "default",
                "name": "build", "uid": "uid-build"},
            "series": {"count": 3, "lastObservedTime": "2025-01-01T00:05:00.000000Z"},
        })
    };
    let api = api.expect(vec![
        Exchange::get("/apis/events.k8s.io/v1/namespaces/default/events")
            .query("fieldSelector", "regarding.kind=Job,regarding.name=build")
            .reply(
                200,
                json!({
                    "apiVersion": "events.k8s.io/v1", "kind": "EventList",
                    "metadata": {"resourceVersion": "50"},
                    "items": [
                        event("e1", "Job", "orcaops.dev/v1alpha1", "Failed", "2025-01-01T00:00:00.000000Z"),
                        // batch/v1 Jobs are not ours.
                        event("e2", "Job", "batch/v1", "Completed", "2025-01-01T00:00:00.000000Z"),
                    ],
                }),
            ),
    ]);
    let events = cluster
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind=Job,involvedObject.name=build")
        .await;
    api.done().await;
    assert_eq!(events.code, StatusCode::OK, "{}", events.text);
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", events.text);
    let e = &items[0];
    assert_eq!(e["involvedObject"]["kind"], "Job");
    assert_eq!(e["involvedObject"]["name"], "build");
    assert_eq!(e["reason"], "Failed");
    assert_eq!(e["message"], "Failed happened");
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["count"], 3);
    assert_eq!(e["lastTimestamp"], "2025-01-01T00:05:00Z");
}

/// A finished run of `build` in the records, with its log.
async fn recorded_run(cluster: &Replica) {
    let run = RunRecord {
        uid: "uid-build".into(),
        namespace: "default".into(),
        name: "build".into(),
        run: 1,
        generation: 1,
        phase: JobPhase::Succeeded,
        attempts: 1,
        start_time: None,
        completion_time: Some(chrono::Utc::now()),
        exit_code: Some(0),
        summary: "1 step succeeded".into(),
        steps: vec![],
        artifacts: vec![],
        outputs: Default::default(),
        usage: None,
        anomalies: Vec::new(),
        context: None,
        explanation: None,
    };
    cluster.records.put_run(&run).await.unwrap();
    let dir = records::run_dir(
        cluster.records.data_dir(),
        "default",
        "build",
        "uid-build",
        1,
    );
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(records::attempt_log(&dir, 1), "hi\n").unwrap();
}

#[tokio::test]
async fn runs_and_logs_come_from_the_records_of_the_data_dir() {
    let (cluster, api) = replica().await;
    recorded_run(&cluster).await;
    let mut finished = job("build");
    finished.status = json!({"phase": "Succeeded", "run": 1, "attempt": 1});
    let api = api.expect(vec![
        // The log asks the cluster which run is current.
        Exchange::get(object_path(Kind::Job, "default", "build"))
            .reply(200, served(&finished, "30")),
    ]);
    let runs = cluster.get(&jobs_uri("/build/runs")).await;
    let log = cluster.get(&jobs_uri("/build/log")).await;
    api.done().await;
    assert_eq!(runs.code, StatusCode::OK, "{}", runs.text);
    assert_eq!(runs.body["items"][0]["run"], 1);
    assert_eq!(runs.body["items"][0]["summary"], "1 step succeeded");
    assert_eq!(log.code, StatusCode::OK, "{}", log.text);
    assert_eq!(log.text, "hi\n");
}

#[tokio::test]
async fn a_standby_replica_says_where_the_run_records_are() {
    let (cluster, api) = replica().await;
    recorded_run(&cluster).await;
    cluster.lead.send_replace(false);
    let api = api.expect(vec![]);
    let runs = cluster.get(&jobs_uri("/build/runs")).await;
    api.done().await;
    assert_eq!(runs.code, StatusCode::SERVICE_UNAVAILABLE, "{}", runs.text);
    assert!(
        runs.body["message"]
            .as_str()
            .unwrap()
            .contains("holderIdentity"),
        "{}",
        runs.text
    );
}

/// Exec and single files go through the pods (src/server/sandbox/pod_tests.rs); the
/// list of what runs is not served on a cluster, and says what to use instead without
/// asking the API server anything.
#[tokio::test]
async fn containers_are_501_on_a_cluster_with_what_to_use_instead() {
    let (cluster, api) = replica().await;
    let api = api.expect(vec![]);
    let containers = cluster.get(&format!("{BASE}/containers")).await;
    api.done().await;
    assert_eq!(
        containers.code,
        StatusCode::NOT_IMPLEMENTED,
        "{}",
        containers.text
    );
    assert_eq!(containers.body["kind"], "Status");
    assert_eq!(containers.body["reason"], "NotImplemented");
    assert!(
        containers.body["message"]
            .as_str()
            .unwrap()
            .contains("kubectl exec"),
        "{}",
        containers.text
    );
}

#[tokio::test]
async fn ready_when_the_cluster_answers() {
    let (cluster, api) = replica().await;
    let api = api.expect(vec![
        Exchange::get(collection_path(Kind::Job, None))
            .query("limit", "1")
            .reply(200, list(Kind::Job, vec![], "60")),
        Exchange::get(collection_path(Kind::Job, None))
            .query("limit", "1")
            .not_found(),
    ]);
    let ready = cluster.get("/readyz").await;
    let unready = cluster.get("/readyz").await;
    api.done().await;
    assert_eq!(ready.code, StatusCode::OK, "{}", ready.text);
    assert_eq!(
        unready.code,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        unready.text
    );
}
