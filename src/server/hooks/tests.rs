//! Deliveries through the real route over a local store with a real (encrypted) Secret;
//! no controller runs, so a run asked for stays asked (the Workflow is suspended, so the
//! answer does not wait for one).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tower::ServiceExt;

use super::*;
use crate::resources::Object;
use crate::store::{EventQuery, LocalStore};

const SECRET: &str = "It's a Secret to Everybody";

struct Fixture {
    app: Router,
    store: LocalStore,
    _data: tempfile::TempDir,
}

fn workflow(triggers: serde_json::Value) -> serde_json::Value {
    json!({
        "suspend": true,
        "inputs": [{"name": "ref", "default": "main"}, {"name": "sha"}],
        "triggers": triggers,
        "jobs": [{"name": "build", "job": {"image": "busybox:latest", "steps": [{"name": "s", "run": "echo ${{ inputs.ref }}"}]}}],
    })
}

fn hook() -> serde_json::Value {
    json!([{"webhook": {
        "secretRef": {"name": "hook", "key": "token"},
        "filter": "headers['x-github-event'] == 'push' && body.ref.startsWith('refs/heads/')",
        "inputs": {"ref": "${{ body.ref }}", "sha": "${{ body.after }}"},
    }}])
}

async fn fixture() -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let store = LocalStore::open(data.path()).await.unwrap();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("hook".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("token".into(), SECRET.into())])),
        ..Default::default()
    };
    store.create_secret("default", secret).await.unwrap();
    for (name, spec) in [
        ("ci", workflow(hook())),
        ("plain", workflow(json!([]))),
        (
            "no-secret",
            workflow(json!([{"webhook": {"secretRef": {"name": "absent", "key": "token"}}}])),
        ),
    ] {
        store
            .create(Object::new(Kind::Workflow, "default", name, spec))
            .await
            .unwrap();
    }
    let state = AppState::for_door_tests(&store);
    Fixture {
        app: routes(state),
        store,
        _data: data,
    }
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    signature::sign(secret.as_bytes(), body)
}

fn push(reference: &str) -> Vec<u8> {
    json!({"ref": reference, "after": "0123abc", "repository": {"full_name": "acme/app"}})
        .to_string()
        .into_bytes()
}

impl Fixture {
    async fn send(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let code = response.status();
        assert!(
            response.extensions().get::<Delivered>().is_some(),
            "every answer names the delivery for the audit log"
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (code, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// A GitHub delivery of `body` to `ci`, signed with `secret`.
    async fn github(
        &self,
        event: &str,
        id: &str,
        secret: &str,
        body: Vec<u8>,
    ) -> (StatusCode, serde_json::Value) {
        let headers = [
            ("x-github-event", event.to_string()),
            ("x-github-delivery", id.to_string()),
            ("x-hub-signature-256", github_signature(secret, &body)),
        ];
        self.send("/hooks/default/ci", &headers, body).await
    }

    async fn annotations(&self, name: &str) -> BTreeMap<String, String> {
        let key = ObjectKey::new(Kind::Workflow, "default", name);
        self.store
            .get(&key)
            .await
            .unwrap()
            .unwrap()
            .metadata
            .annotations
    }
}

#[test]
fn github_s_documented_signature_is_valid_and_any_change_is_not() {
    // The example of GitHub's "Validating webhook deliveries".
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
            .parse()
            .unwrap(),
    );
    assert_eq!(
        signature(&headers, SECRET.as_bytes(), b"Hello, World!"),
        Signature::Valid
    );
    assert_eq!(
        signature(&headers, SECRET.as_bytes(), b"Hello, World?"),
        Signature::Wrong
    );
    assert_eq!(
        signature(&headers, b"another secret", b"Hello, World!"),
        Signature::Wrong
    );
    headers.insert("x-hub-signature-256", "sha1=757107ea".parse().unwrap());
    assert_eq!(
        signature(&headers, SECRET.as_bytes(), b"Hello, World!"),
        Signature::Wrong
    );
    assert_eq!(
        signature(&HeaderMap::new(), SECRET.as_bytes(), b""),
        Signature::Missing
    );
    let mut gitlab = HeaderMap::new();
    gitlab.insert("x-gitlab-token", SECRET.parse().unwrap());
    assert_eq!(
        signature(&gitlab, SECRET.as_bytes(), b"{}"),
        Signature::Valid
    );
    assert_eq!(
        signature(&gitlab, b"It's a Secret to Everybody!", b"{}"),
        Signature::Wrong
    );
}

#[tokio::test]
async fn a_signed_push_asks_for_a_run_with_its_inputs_once_per_delivery() {
    let f = fixture().await;
    let (code, body) = f
        .github("push", "d-1", SECRET, push("refs/heads/main"))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["token"], "hook-d-1");
    assert_eq!(body["duplicate"], false);
    let a = f.annotations("ci").await;
    assert_eq!(a.get(keys::RERUN).map(String::as_str), Some("hook-d-1"));
    let inputs: BTreeMap<String, String> = serde_json::from_str(&a[keys::INPUTS]).unwrap();
    assert_eq!(inputs["ref"], "refs/heads/main");
    assert_eq!(inputs["sha"], "0123abc");

    // GitHub's "Redeliver": the same delivery id is the same run.
    let (code, body) = f
        .github("push", "d-1", SECRET, push("refs/heads/main"))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["duplicate"], true);
    assert_eq!(f.annotations("ci").await, a);
}

#[tokio::test]
async fn unsigned_and_badly_signed_deliveries_are_refused_and_change_nothing() {
    let f = fixture().await;
    let before = f.annotations("ci").await;
    let (code, body) = f
        .github("push", "d-2", "a guess", push("refs/heads/main"))
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("does not match"),
        "{body}"
    );
    let (code, body) = f
        .send(
            "/hooks/default/ci",
            &[("x-github-event", "push".into())],
            push("refs/heads/main"),
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256"),
        "{body}"
    );
    let wrong = [("x-gitlab-token", "nope".to_string())];
    assert_eq!(
        f.send("/hooks/default/ci", &wrong, push("x")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(f.annotations("ci").await, before);
}

#[tokio::test]
async fn a_gitlab_token_is_accepted_and_the_filter_decides() {
    let f = fixture().await;
    let headers = [
        ("x-gitlab-token", SECRET.to_string()),
        ("x-gitlab-event-uuid", "g-1".to_string()),
    ];
    // The filter wants a GitHub push event header: this one is ignored, with why.
    let (code, body) = f
        .send("/hooks/default/ci", &headers, push("refs/heads/main"))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["kind"], "WebhookIgnored");
    assert!(
        body["message"].as_str().unwrap().contains("filter"),
        "{body}"
    );
    assert!(!f.annotations("ci").await.contains_key(keys::RERUN));

    // A tag push is filtered out too.
    let (code, body) = f.github("push", "d-3", SECRET, push("refs/tags/v1")).await;
    assert_eq!(
        (code, body["kind"].as_str()),
        (StatusCode::ACCEPTED, Some("WebhookIgnored"))
    );
    assert!(!f.annotations("ci").await.contains_key(keys::RERUN));
}

#[tokio::test]
async fn ping_unknown_hooks_big_and_broken_deliveries_get_their_answers() {
    let f = fixture().await;
    let (code, body) = f
        .github(
            "ping",
            "p-1",
            SECRET,
            b"{\"zen\": \"Keep it simple.\"}".to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "WebhookPing");

    for path in [
        "/hooks/default/nope",
        "/hooks/default/plain",
        "/hooks/elsewhere/ci",
    ] {
        let (code, _) = f.send(path, &[], push("refs/heads/main")).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
    }

    let big = vec![b' '; MAX_DELIVERY_BYTES + 1];
    assert_eq!(
        f.github("push", "b-1", SECRET, big).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let (code, body) = f.github("push", "j-1", SECRET, b"{not json".to_vec()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");

    // `after` missing: the input cannot be made, so no run.
    let body = json!({"ref": "refs/heads/main"}).to_string().into_bytes();
    let (code, answer) = f.github("push", "i-1", SECRET, body).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("input sha"),
        "{answer}"
    );
    assert!(!f.annotations("ci").await.contains_key(keys::RERUN));

    let (code, body) = f
        .send(
            "/hooks/default/ci",
            &[
                ("x-github-delivery", "bad id!".into()),
                (
                    "x-hub-signature-256",
                    github_signature(SECRET, &push("refs/heads/main")),
                ),
            ],
            push("refs/heads/main"),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_missing_secret_is_named_in_an_event_not_to_the_sender() {
    let f = fixture().await;
    let (code, body) = f.send("/hooks/default/no-secret", &[], push("x")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !body["message"].as_str().unwrap().contains("absent"),
        "{body}"
    );
    let events = f
        .store
        .list_events(EventQuery::newest(10).kind("Workflow").name("no-secret"))
        .await
        .unwrap();
    let event = events
        .iter()
        .find(|e| e.reason == "WebhookSecretMissing")
        .expect("a Warning event on the Workflow");
    assert!(
        event.message.contains("there is no secret absent"),
        "{}",
        event.message
    );
}

#[tokio::test]
async fn a_sender_past_its_rate_waits() {
    let f = fixture().await;
    let mut codes = Vec::new();
    for _ in 0..SENDER_RATE.burst as usize + 5 {
        codes.push(f.send("/hooks/default/nope", &[], Vec::new()).await.0);
    }
    assert!(
        codes[..SENDER_RATE.burst as usize]
            .iter()
            .all(|c| *c == StatusCode::NOT_FOUND)
    );
    assert_eq!(codes.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
}

/// On a cluster (`operator --api`): the Workflow and its Secret are read from the API
/// server (the operator's `get` on secrets), and the run is asked for on the Workflow
/// there; a Secret the operator may not read is a 503 and a Warning event naming the
/// missing grant, never the sender's 401.
#[tokio::test]
async fn on_a_cluster_the_secret_is_the_namespaces_and_the_run_is_asked_there() {
    use crate::store::kube::mock::{
        Exchange, core_path, event_created, events_path, mock_store, object_path, served, status,
    };
    let (store, api) = mock_store();
    let data = tempfile::tempdir().unwrap();
    let records = LocalStore::open(data.path()).await.unwrap();
    let (_lead, leading) = tokio::sync::watch::channel(true);
    let objects: Arc<dyn crate::store::ObjectStore> = Arc::new(store.clone());
    let state = AppState {
        policies: crate::policy::Policies::disabled(objects.clone()),
        objects,
        records: records.clone(),
        sandboxes: Arc::new(crate::runtime::PodRuntime::new(store.client().clone())),
        activity: crate::controller::activity::SandboxActivity::new(),
        shutdown: tokio_util::sync::CancellationToken::new(),
        leading: Some(leading),
        metrics: Default::default(),
    };
    let f = Fixture {
        app: routes(state),
        store: records,
        _data: data,
    };
    let ci = Object::new(Kind::Workflow, "default", "ci", workflow(hook()));
    let mut asked = ci.clone();
    asked
        .metadata
        .annotations
        .insert(keys::RERUN.into(), "hook-c-1".into());
    let secret = serde_json::to_value(Secret {
        metadata: ObjectMeta {
            name: Some("hook".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "token".to_string(),
            k8s_openapi::ByteString(SECRET.as_bytes().to_vec()),
        )])),
        ..Default::default()
    })
    .unwrap();
    let workflow = object_path(Kind::Workflow, "default", "ci");
    let secret_path = core_path(Some("default"), "secrets/hook");
    let api = api.expect(vec![
        // The delivery: the Workflow, its Secret; no run of that token yet (the status
        // and the records say so); the request for the run, written on the Workflow.
        Exchange::get(workflow.clone()).reply(200, served(&ci, "5")),
        Exchange::get(secret_path.clone()).reply(200, secret),
        Exchange::get(workflow.clone()).reply(200, served(&ci, "5")),
        Exchange::get(workflow.clone()).reply(200, served(&ci, "5")),
        Exchange::put(workflow.clone())
            .body("/metadata/annotations/orcaops.dev~1rerun", json!("hook-c-1"))
            .body("/metadata/resourceVersion", json!("5"))
            .reply(200, served(&asked, "6")),
        // A second delivery, when the operator may not read Secrets.
        Exchange::get(workflow.clone()).reply(200, served(&asked, "6")),
        Exchange::get(secret_path).reply(
            403,
            status(
                403,
                "Forbidden",
                "secrets \"hook\" is forbidden: User \"system:serviceaccount:orcaops-system:orcaops-operator\" cannot get resource \"secrets\"",
            ),
        ),
        Exchange::post(events_path("default"))
            .body("/regarding/name", json!("ci"))
            .body("/reason", json!("WebhookSecretMissing"))
            .reply(201, event_created()),
    ]);
    let (code, body) = f
        .github("push", "c-1", SECRET, push("refs/heads/main"))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["token"], "hook-c-1");
    let (code, body) = f
        .github("push", "c-2", SECRET, push("refs/heads/main"))
        .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    api.done().await;
}
