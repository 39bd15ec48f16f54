//! Leader election against the mock API server.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::*;
use crate::store::kube::mock::{Exchange, Reply, mock_client, status};

const NS: &str = "orcaops-system";
const ME: &str = "orcaops-operator-abc";

fn path() -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{LEASE_NAME}")
}

fn collection() -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases")
}

fn lease(holder: &str, renewed: DateTime<Utc>, rv: &str, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": NS, "resourceVersion": rv},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": micro_time(renewed - chrono::TimeDelta::seconds(30)),
            "renewTime": micro_time(renewed),
            "leaseTransitions": transitions,
        },
    })
}

fn elector(client: Client) -> LeaderElector {
    LeaderElector::new(client, LeaseConfig::new(NS, ME))
}

#[tokio::test]
async fn a_free_lease_is_taken() {
    let (client, api) = mock_client();
    let now = Utc::now();
    let api = api.expect(vec![
        Exchange::get(path()).not_found(),
        Exchange::post(collection())
            .body("/metadata/name", json!(LEASE_NAME))
            .body("/spec/holderIdentity", json!(ME))
            .body("/spec/leaseDurationSeconds", json!(15))
            .body("/spec/renewTime", json!(micro_time(now)))
            .body("/spec/leaseTransitions", json!(0))
            .reply(201, lease(ME, now, "1", 0)),
    ]);
    let observed = elector(client).try_acquire_or_renew(now).await;
    api.done().await;
    assert_eq!(observed.unwrap(), Observation::Leading);
}

#[tokio::test]
async fn a_lease_another_replica_renews_is_left_alone() {
    let (client, api) = mock_client();
    let now = Utc::now();
    let api = api.expect(vec![Exchange::get(path()).reply(
        200,
        lease("other", now - chrono::TimeDelta::seconds(3), "7", 1),
    )]);
    let observed = elector(client).try_acquire_or_renew(now).await;
    // No write: the scenario has none, and one would be reported.
    api.done().await;
    assert_eq!(observed.unwrap(), Observation::HeldBy("other".into()));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_guarded_by_its_version() {
    let (client, api) = mock_client();
    let now = Utc::now();
    let api = api.expect(vec![
        Exchange::get(path()).reply(
            200,
            lease("other", now - chrono::TimeDelta::seconds(16), "7", 2),
        ),
        Exchange::put(path())
            .body("/metadata/resourceVersion", json!("7"))
            .body("/spec/holderIdentity", json!(ME))
            .body("/spec/acquireTime", json!(micro_time(now)))
            .body("/spec/leaseTransitions", json!(3))
            .reply(200, lease(ME, now, "8", 3)),
    ]);
    let observed = elector(client).try_acquire_or_renew(now).await;
    api.done().await;
    assert_eq!(observed.unwrap(), Observation::Leading);
}

#[tokio::test]
async fn renewing_keeps_the_acquire_time_and_a_409_loses_the_lease() {
    let (client, api) = mock_client();
    let now = Utc::now();
    let ours = lease(ME, now - chrono::TimeDelta::seconds(5), "8", 3);
    let acquired = ours["spec"]["acquireTime"].clone();
    let api = api.expect(vec![
        Exchange::get(path()).reply(200, ours.clone()),
        Exchange::put(path())
            .body("/metadata/resourceVersion", json!("8"))
            .body("/spec/acquireTime", acquired)
            .body("/spec/renewTime", json!(micro_time(now)))
            .body("/spec/leaseTransitions", json!(3))
            .reply(200, lease(ME, now, "9", 3)),
        Exchange::get(path()).reply(200, ours),
        Exchange::put(path()).reply(409, status(409, "Conflict", "the object has been modified")),
    ]);
    let elector = elector(client);
    let renewed = elector.try_acquire_or_renew(now).await;
    let raced = elector.try_acquire_or_renew(now).await;
    api.done().await;
    assert_eq!(renewed.unwrap(), Observation::Leading);
    assert_eq!(raced.unwrap(), Observation::LostRace);
}

#[tokio::test]
async fn a_lost_create_race_is_not_leading() {
    let (client, api) = mock_client();
    let api = api.expect(vec![
        Exchange::get(path()).not_found(),
        Exchange::post(collection()).reply(
            409,
            status(
                409,
                "AlreadyExists",
                "leases \"orcaops-operator\" already exists",
            ),
        ),
    ]);
    let observed = elector(client).try_acquire_or_renew(Utc::now()).await;
    api.done().await;
    assert_eq!(observed.unwrap(), Observation::LostRace);
}

fn fast(client: Client) -> LeaderElector {
    let config = LeaseConfig {
        renew_period: Duration::from_millis(10),
        retry_period: Duration::from_millis(10),
        renew_deadline: Duration::from_millis(100),
        ..LeaseConfig::new(NS, ME)
    };
    LeaderElector::new(client, config)
}

async fn becomes(leading: &mut watch::Receiver<bool>, expected: bool) {
    tokio::time::timeout(Duration::from_secs(5), leading.wait_for(|l| *l == expected))
        .await
        .unwrap_or_else(|_| panic!("leading never became {expected}"))
        .expect("the election runs");
}

#[tokio::test]
async fn the_leader_steps_down_when_renewals_fail_past_the_deadline() {
    let (client, api) = mock_client();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut answered = 0;
    let server = api.route(seen.clone(), move |request| {
        answered += 1;
        Some(match (answered, request.method.as_str()) {
            (1, "GET") => Reply::Json(404, status(404, "NotFound", "not found")),
            (2, "POST") => Reply::Json(201, lease(ME, Utc::now(), "1", 0)),
            // Then the API server breaks down.
            _ => Reply::Json(503, status(503, "ServiceUnavailable", "etcd is down")),
        })
    });
    let shutdown = CancellationToken::new();
    let (mut leading, task) = fast(client).run(shutdown.clone());
    becomes(&mut leading, true).await;
    let led_at = tokio::time::Instant::now();
    becomes(&mut leading, false).await;
    assert!(
        led_at.elapsed() >= Duration::from_millis(80),
        "kept leading through failures within the deadline"
    );
    shutdown.cancel();
    task.await.unwrap();
    server.abort();
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_stops_renewing_and_releases_on_shutdown() {
    let (client, api) = mock_client();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stale_after = Utc::now() + chrono::TimeDelta::milliseconds(50);
    // What a PUT wrote is what the next GET reads.
    let mut written: Option<Value> = None;
    let server = api.route(seen.clone(), move |request| {
        Some(match (request.method.as_str(), &written) {
            ("PUT", _) => {
                written = Some(request.body.clone());
                Reply::Json(200, request.body.clone())
            }
            ("GET", Some(current)) => Reply::Json(200, current.clone()),
            // Another replica's Lease, renewed for the last time 15 s before `stale_after`.
            ("GET", None) if Utc::now() < stale_after => Reply::Json(
                200,
                lease("other", Utc::now() - chrono::TimeDelta::seconds(1), "7", 0),
            ),
            ("GET", None) => Reply::Json(
                200,
                lease(
                    "other",
                    stale_after - chrono::TimeDelta::seconds(16),
                    "7",
                    0,
                ),
            ),
            _ => Reply::Json(500, status(500, "Unexpected", "unexpected request")),
        })
    });
    let shutdown = CancellationToken::new();
    let (mut leading, task) = fast(client).run(shutdown.clone());
    assert!(!*leading.borrow());
    becomes(&mut leading, true).await;
    shutdown.cancel();
    task.await.unwrap();
    assert!(!*leading.borrow());
    server.abort();
    let seen = seen.lock().unwrap();
    let takeover = seen.iter().find(|r| r.method == "PUT").expect("a takeover");
    assert_eq!(takeover.body["spec"]["leaseTransitions"], 1);
    // The release: the last write empties the holder.
    let last = seen.iter().rev().find(|r| r.method == "PUT").unwrap();
    assert_eq!(last.body["spec"]["holderIdentity"], Value::Null);
}
