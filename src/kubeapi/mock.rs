//! A mock Kubernetes API server (tower-test) for the tests of the Kubernetes store, the
//! pod runtime, the Lease and whatever else talks to the API. A scenario is the list of requests the code under test must send,
//! in order, each with the answer to give:
//!
//! ```ignore
//! let (store, api) = mock_store();
//! let api = api.expect(vec![
//!     Exchange::get(object_path(Kind::Job, "default", "build")).not_found(),
//!     Exchange::patch(object_path(Kind::Job, "default", "build"))
//!         .query("fieldManager", "orcaops-sync")
//!         .body("/spec/image", json!("alpine"))
//!         .reply(201, served(..)),
//! ]);
//! let outcome = store.apply(obj).await;
//! api.done().await; // panics naming every request that was not as expected, or missing
//! ```
//!
//! A request that does not match gets a 500 whose message says what was expected, so the
//! code under test fails with that message too; one beyond the scenario gets a 500 as well.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_test::mock::{Handle, SendResponse};

use crate::resources::{API_VERSION, Kind, Object};

/// The content type of a server-side apply.
pub(crate) const APPLY_PATCH: &str = "application/apply-patch+yaml";
/// The content type of a JSON patch (RFC 6902).
pub(crate) const JSON_PATCH: &str = "application/json-patch+json";
type MockHandle = Handle<Request<Body>, Response<Body>>;

/// A client whose API server is the returned [`MockApi`] (for the pod runtime, the
/// Lease, and anything else that is not the store).
pub(crate) fn mock_client() -> (kube::Client, MockApi) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), MockApi { handle })
}

/// The path of a core (`/api/v1`) resource: `pods` or `pods/NAME[/log]` in a namespace,
/// or across all with `namespace` None.
pub(crate) fn core_path(namespace: Option<&str>, rest: &str) -> String {
    match namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/{rest}"),
        None => format!("/api/v1/{rest}"),
    }
}

/// The path of one object.
pub(crate) fn object_path(kind: Kind, namespace: &str, name: &str) -> String {
    format!("{}/{name}", collection_path(kind, Some(namespace)))
}

/// The path of a kind's objects in one namespace, or in all (and of cluster-scoped kinds).
pub(crate) fn collection_path(kind: Kind, namespace: Option<&str>) -> String {
    match namespace.filter(|_| kind.namespaced()) {
        Some(ns) => format!("/apis/{API_VERSION}/namespaces/{ns}/{}", kind.plural()),
        None => format!("/apis/{API_VERSION}/{}", kind.plural()),
    }
}

/// `obj` as the API server returns it: with a uid, a creation time, the given
/// resourceVersion and generation 1 (unless it has one).
pub(crate) fn served(obj: &Object, resource_version: &str) -> Value {
    let mut obj = obj.clone();
    let meta = &mut obj.metadata;
    if meta.uid.is_empty() {
        meta.uid = format!("uid-{}", meta.name);
    }
    meta.resource_version = resource_version.to_string();
    meta.generation = meta.generation.max(1);
    meta.creation_timestamp
        .get_or_insert(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap());
    serde_json::to_value(obj).expect("an object serializes")
}

/// The answer to the creation of an events.k8s.io Event.
pub(crate) fn event_created() -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "orcaops.1", "namespace": "default"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
    })
}

/// The path events.k8s.io Events about objects of `namespace` are created at (cluster-scoped
/// objects' go to `default`).
pub(crate) fn events_path(namespace: &str) -> String {
    format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events")
}

/// A list as the API server returns it.
pub(crate) fn list(kind: Kind, items: Vec<Value>, resource_version: &str) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    })
}

/// A Kubernetes `Status` error answer.
pub(crate) fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    })
}

/// An answer.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    Json(u16, Value),
    /// A watch stream: one JSON event per line, then the end of the response.
    Lines(Vec<Value>),
    /// Plain text, as `pods/log` answers.
    Text(u16, String),
}

impl Reply {
    fn into_response(self) -> Response<Body> {
        let (code, bytes, content_type) = match self {
            Reply::Json(code, value) => (
                code,
                serde_json::to_vec(&value).unwrap(),
                "application/json",
            ),
            Reply::Lines(lines) => {
                let text: Vec<String> = lines.iter().map(Value::to_string).collect();
                (
                    200,
                    format!("{}\n", text.join("\n")).into_bytes(),
                    "application/json",
                )
            }
            Reply::Text(code, text) => (code, text.into_bytes(), "text/plain"),
        };
        Response::builder()
            .status(StatusCode::from_u16(code).expect("a valid status code"))
            .header("content-type", content_type)
            .body(Body::from(bytes))
            .expect("a valid response")
    }
}

/// One expected request and its answer.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    body: Vec<(String, Value)>,
    reply: Reply,
}

impl Exchange {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Exchange {
            method,
            path: path.into(),
            query: Vec::new(),
            content_type: None,
            body: Vec::new(),
            reply: Reply::Json(200, json!({})),
        }
    }
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// The query must have `name=value`.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
    /// A server-side apply by `manager`, forced.
    pub fn applied_by(self, manager: &str) -> Self {
        self.query("fieldManager", manager)
            .query("force", "true")
            .content_type(APPLY_PATCH)
    }
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
    /// The JSON body must hold `value` at `pointer` (RFC 6901; "" is the whole body, and
    /// `Value::Null` means absent).
    pub fn body(mut self, pointer: &str, value: Value) -> Self {
        self.body.push((pointer.into(), value));
        self
    }

    pub fn reply(mut self, code: u16, body: Value) -> Self {
        self.reply = Reply::Json(code, body);
        self
    }
    /// A watch stream: these events, one per line, then the end of the response.
    pub fn reply_lines(mut self, lines: Vec<Value>) -> Self {
        self.reply = Reply::Lines(lines);
        self
    }
    pub fn reply_text(mut self, code: u16, text: impl Into<String>) -> Self {
        self.reply = Reply::Text(code, text.into());
        self
    }
    pub fn not_found(self) -> Self {
        let message = format!("{} not found", self.path);
        self.reply(404, status(404, "NotFound", &message))
    }

    /// What differs between this expectation and a request (None: it matches).
    fn mismatch(&self, seen: &Seen) -> Option<String> {
        let mut wrong = Vec::new();
        if seen.method != self.method || seen.path != self.path {
            wrong.push(format!("expected {} {}", self.method, self.path));
        }
        for (name, value) in &self.query {
            if !seen.query.iter().any(|(n, v)| n == name && v == value) {
                wrong.push(format!("expected query {name}={value}"));
            }
        }
        if let Some(expected) = &self.content_type
            && seen.content_type.as_deref() != Some(expected.as_str())
        {
            wrong.push(format!("expected content-type {expected}"));
        }
        for (pointer, expected) in &self.body {
            let got = seen.body.pointer(pointer).unwrap_or(&Value::Null);
            if got != expected {
                wrong.push(format!("expected body {pointer:?} = {expected}, got {got}"));
            }
        }
        (!wrong.is_empty()).then(|| format!("{}: {}", seen, wrong.join("; ")))
    }
}

/// A request as the mock saw it.
#[derive(Debug)]
pub(crate) struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Value,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let query: Vec<String> = self.query.iter().map(|(n, v)| format!("{n}={v}")).collect();
        write!(f, "{} {}?{}", self.method, self.path, query.join("&"))
    }
}

impl Seen {
    async fn read(request: Request<Body>) -> Seen {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let query = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                (n.to_string(), percent_decoded(v))
            })
            .collect();
        Seen {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query,
            content_type: parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}

/// A query value as it was before form encoding (`%XX` escapes and `+` for a space).
fn percent_decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mock API server's side of the connection.
pub(crate) struct MockApi {
    handle: MockHandle,
}

impl MockApi {
    /// Answers the `exchanges` in order. Call [`Scenario::done`] when the code under test
    /// has finished.
    pub fn expect(self, exchanges: Vec<Exchange>) -> Scenario {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(self.handle, exchanges, stopped));
        Scenario {
            stop: Some(stop),
            task,
        }
    }

    /// Answers every request with what `route` says, in any order: for code that sends
    /// requests concurrently (the watchers). `None` leaves the request unanswered, as a
    /// watch with nothing to report. Every request is kept in `seen`.
    pub fn route(
        mut self,
        seen: Arc<Mutex<Vec<Seen>>>,
        mut route: impl FnMut(&Seen) -> Option<Reply> + Send + 'static,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut held: Vec<SendResponse<Response<Body>>> = Vec::new();
            while let Some((request, respond)) = self.handle.next_request().await {
                let request = Seen::read(request).await;
                match route(&request) {
                    Some(reply) => respond.send_response(reply.into_response()),
                    None => held.push(respond),
                }
                seen.lock().unwrap().push(request);
            }
        })
    }
}

/// A scenario being served.
pub(crate) struct Scenario {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Report>,
}

#[derive(Debug, Default)]
struct Report {
    mismatches: Vec<String>,
    missing: Vec<String>,
}

impl Scenario {
    /// Ends the scenario; panics when a request was not as expected, came beyond the
    /// scenario, or never came.
    pub async fn done(mut self) {
        // Let requests already on their way arrive first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = self.stop.take().map(|stop| stop.send(()));
        let report = tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("the mock API server stops")
            .expect("the mock API server does not panic");
        let mut problems = report.mismatches;
        problems.extend(
            report
                .missing
                .iter()
                .map(|e| format!("expected but never sent: {e}")),
        );
        assert!(
            problems.is_empty(),
            "the requests were not as expected:\n  {}",
            problems.join("\n  ")
        );
    }
}

async fn serve(
    mut handle: MockHandle,
    exchanges: Vec<Exchange>,
    mut stopped: oneshot::Receiver<()>,
) -> Report {
    let mut report = Report::default();
    let mut expected = exchanges.into_iter();
    loop {
        let next = tokio::select! {
            _ = &mut stopped => break,
            next = handle.next_request() => next,
        };
        let Some((request, respond)) = next else {
            break;
        };
        let seen = Seen::read(request).await;
        let reply = match expected.next() {
            Some(exchange) => match exchange.mismatch(&seen) {
                None => exchange.reply,
                Some(problem) => {
                    report.mismatches.push(problem.clone());
                    Reply::Json(500, status(500, "MockMismatch", &problem))
                }
            },
            None => {
                let problem = format!("{seen}: beyond the scenario");
                report.mismatches.push(problem.clone());
                Reply::Json(500, status(500, "MockUnexpected", &problem))
            }
        };
        respond.send_response(reply.into_response());
    }
    report.missing = expected
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    report
}
