//! The notifier against a real HTTP receiver on 127.0.0.1 and a real local store:
//! retries, signatures, where each notice goes, and the outcome recorded as an event.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex as SyncMutex;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::*;
use crate::resources::{Kind, Object};
use crate::store::{EventQuery, EventType, InvolvedObject, LocalStore};

const SERVER_KEY: &[u8] = b"server-wide key";
const WORKSPACE_KEY: &str = "team-a's key";

/// What the receiver got: headers and body of each request, in order.
type Received = Arc<SyncMutex<Vec<(HeaderMap, bytes::Bytes)>>>;

/// An HTTP receiver on 127.0.0.1 that answers with `script`'s codes in turn, then 200.
async fn receiver(script: &[u16]) -> (url::Url, Received) {
    let received: Received = Arc::default();
    let script = Arc::new(SyncMutex::new(
        script.iter().copied().collect::<VecDeque<_>>(),
    ));
    let seen = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: bytes::Bytes| {
            let (seen, script) = (Arc::clone(&seen), Arc::clone(&script));
            async move {
                seen.lock().unwrap().push((headers, body));
                let code = script.lock().unwrap().pop_front().unwrap_or(200);
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = url::Url::parse(&format!("http://{addr}/hook?token=not-for-logs")).unwrap();
    (url, received)
}

struct Fixture {
    store: LocalStore,
    notifier: Arc<Notifier>,
    shutdown: CancellationToken,
    _data: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A running notifier over a fresh store, with `urls` server-wide (signed with
/// [`SERVER_KEY`]) and milliseconds between attempts. Workspace `team-a` declares
/// `notifications`, and has the Secret `notify` (key `key`) when `notifications` is not
/// null.
async fn fixture(urls: Vec<url::Url>, notifications: Value) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let store = LocalStore::open(data.path()).await.unwrap();
    if !notifications.is_null() {
        let spec = json!({"notifications": notifications});
        let workspace = Object::new(Kind::Workspace, "", "team-a", spec);
        store.create(workspace).await.unwrap();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("notify".into()),
                ..Default::default()
            },
            string_data: Some(BTreeMap::from([("key".into(), WORKSPACE_KEY.into())])),
            ..Default::default()
        };
        store.create_secret("team-a", secret).await.unwrap();
    }
    let settings = Settings {
        urls,
        key: Some(SigningKey(SERVER_KEY.to_vec())),
        retry: Retry {
            backoff: vec![Duration::from_millis(20); 4],
            attempt_timeout: Duration::from_secs(5),
        },
    };
    let notifier = Arc::new(Notifier::new(
        settings,
        Arc::new(store.clone()),
        Arc::new(Metrics::new()),
    ));
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::clone(&notifier).run(shutdown.clone()));
    Fixture {
        store,
        notifier,
        shutdown,
        _data: data,
    }
}

fn recorded(kind: &str, name: &str, reason: &str) -> NewEvent {
    NewEvent {
        involved: InvolvedObject {
            kind: kind.into(),
            namespace: "team-a".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        },
        type_: EventType::Warning,
        reason: reason.into(),
        message: "step build exited with code 1".into(),
    }
}

impl Fixture {
    /// The message of the first event `reason` about `name`, waiting up to 10 s.
    async fn outcome(&self, name: &str, reason: &str) -> String {
        for _ in 0..200 {
            let events = self
                .store
                .list_events(EventQuery::newest(50).name(name))
                .await
                .unwrap();
            if let Some(event) = events.iter().find(|e| e.reason == reason) {
                return event.message.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {reason} event about {name} within 10 s");
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("the delivery has {name}: {headers:?}"))
}

#[tokio::test]
async fn a_busy_endpoint_gets_the_same_signed_delivery_until_it_takes_it() {
    let (url, received) = receiver(&[500, 500]).await;
    let shown = format!("http://127.0.0.1:{}/hook", url.port().unwrap());
    let fx = fixture(vec![url], Value::Null).await;
    fx.notifier.offer(&recorded("Job", "build", "Failed"));

    let message = fx.outcome("build", "Notified").await;
    assert_eq!(
        message,
        format!("sent runFailed to {shown}: 200 OK after 3 attempts")
    );
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 3, "two 500s, then the 200");
    let delivery = header(&received[0].0, "x-orcaops-delivery").to_string();
    for (headers, body) in &received {
        assert_eq!(header(headers, "x-orcaops-delivery"), delivery);
        assert_eq!(header(headers, "x-orcaops-event"), "runFailed");
        assert_eq!(header(headers, "content-type"), "application/json");
        let signed = header(headers, "x-orcaops-signature-256");
        assert!(signature::verify(SERVER_KEY, body, signed), "{signed}");
        assert!(!signature::verify(b"another key", body, signed));
    }
    let body: Value = serde_json::from_slice(&received[0].1).unwrap();
    assert_eq!(body["event"], "runFailed");
    assert_eq!(body["object"]["name"], "build");
    assert_eq!(body["workspace"], "team-a");
    assert_eq!(body["delivery"], delivery.as_str());
}

#[tokio::test]
async fn a_refusal_is_tried_once_and_recorded_as_failed() {
    let (url, received) = receiver(&[400]).await;
    let declared = json!([{"url": url.as_str(), "secretRef": {"name": "notify", "key": "key"}}]);
    let fx = fixture(vec![], declared).await;
    fx.notifier.offer(&recorded("Job", "build", "TimedOut"));

    let message = fx.outcome("build", "NotificationFailed").await;
    assert!(
        message.starts_with("could not send runFailed to http://127.0.0.1:")
            && message.ends_with(
                "/hook after 1 attempt: 400 Bad Request (not retried: the endpoint refused it)"
            ),
        "{message}"
    );
    assert!(!message.contains("token"), "no query in events: {message}");
    // Retries would come 20 ms apart.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "a 400 is not retried");
    let (headers, body) = &received[0];
    let signed = header(headers, "x-orcaops-signature-256");
    assert!(
        signature::verify(WORKSPACE_KEY.as_bytes(), body, signed),
        "signed with the workspace's Secret"
    );
}

#[tokio::test]
async fn a_workspace_endpoint_gets_only_the_events_it_chose() {
    let (url, received) = receiver(&[]).await;
    let declared = json!([{"url": url.as_str(), "events": ["sandboxExpiring"]}]);
    let fx = fixture(vec![], declared).await;
    fx.notifier.offer(&recorded("Job", "build", "Failed"));
    fx.notifier.offer(&recorded("Job", "build", "Succeeded"));
    fx.notifier.offer(&recorded("Sandbox", "dev", "Expiring"));

    let message = fx.outcome("dev", "Notified").await;
    assert!(message.starts_with("sent sandboxExpiring to "), "{message}");
    let received = received.lock().unwrap().clone();
    let events: Vec<&str> = received
        .iter()
        .map(|(headers, _)| header(headers, "x-orcaops-event"))
        .collect();
    assert_eq!(events, ["sandboxExpiring"]);
    assert!(
        received[0].0.get("x-orcaops-signature-256").is_none(),
        "no secretRef: unsigned"
    );
}

#[tokio::test]
async fn a_missing_secret_sends_nothing_and_says_how_to_create_it() {
    let (url, received) = receiver(&[]).await;
    let declared = json!([{"url": url.as_str(), "secretRef": {"name": "absent", "key": "key"}}]);
    let fx = fixture(vec![], declared).await;
    fx.notifier.offer(&recorded("Job", "build", "NewFailure"));

    let message = fx.outcome("build", "NotificationFailed").await;
    assert!(message.starts_with("did not send anomaly to "), "{message}");
    assert!(
        message.contains("there is no secret absent in workspace team-a")
            && message.contains(
                "kubectl create secret generic absent --from-literal=key=VALUE -n team-a"
            ),
        "{message}"
    );
    assert!(received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_is_given_up_after_the_last_attempt() {
    // A port nobody listens on: bound, then released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = url::Url::parse(&format!("http://user:pw@127.0.0.1:{port}/gone")).unwrap();
    let fx = fixture(vec![url], Value::Null).await;
    fx.notifier.offer(&recorded("Job", "build", "Failed"));

    let message = fx.outcome("build", "NotificationFailed").await;
    assert!(
        message.starts_with(&format!(
            "could not send runFailed to http://127.0.0.1:{port}/gone after 5 attempts: no answer: "
        )),
        "{message}"
    );
    assert!(
        !message.contains("pw"),
        "no credentials in events: {message}"
    );
}
