//! The HTTP API against a real `orcaops serve`: pagination, selectors, watches (list then
//! watch under concurrent writers, resume, 410, bookmarks), the status subresource, SSE
//! logs, artifacts, Status bodies on every error path, and graceful shutdown.
//!
//! Most tests use scheduled Workflows whose first tick is months away (no re-run asked):
//! the Workflow controller writes nothing to a Workflow before its first run, so every
//! event a test sees is one it caused.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::{IMAGE, Server, job_yaml};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BASE: &str = "/apis/orcaops.dev/v1alpha1";
const T: Duration = Duration::from_secs(60);

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            base: server.url.clone(),
            http: server.http(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the server answers");
        let code = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered {code} with non-JSON ({e}): {text}"));
        (code, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, "application/json", vec![])
            .await
    }

    /// GETs `path` and checks that it fails with `expected` and a Status of `reason`.
    async fn get_fails(&self, path: &str, expected: StatusCode, reason: &str) -> Value {
        let (code, body) = self.get(path).await;
        assert_status(code, &body, expected, reason);
        body
    }

    /// GETs `path` and checks that it fails as a bad request.
    async fn get_bad_request(&self, path: &str) -> Value {
        self.get_fails(path, StatusCode::BAD_REQUEST, "BadRequest")
            .await
    }

    async fn ok(&self, path: &str) -> Value {
        let (code, value) = self.get(path).await;
        assert_eq!(code, StatusCode::OK, "{path}: {value}");
        value
    }

    async fn create_workflow(&self, ns: &str, name: &str, labels: Value) -> Value {
        let body = workflow(name, labels);
        let (code, value) = self
            .send(
                Method::POST,
                &format!("{BASE}/namespaces/{ns}/workflows"),
                "application/json",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{value}");
        value
    }

    async fn watch(&self, path: &str) -> Lines {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the watch starts");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        Lines {
            body: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
        }
    }
}

fn workflow(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": { "name": name, "labels": labels },
        // Scheduled once a year: it does not run during a test, and the Workflow
        // controller leaves the status of a Workflow that never ran alone.
        "spec": { "schedule": "0 3 1 1 *", "jobs": [{ "name": "a", "job": { "image": IMAGE, "steps": [{ "name": "s", "run": "true" }] } }] },
    })
}

fn rv_of(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap()
        .to_string()
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The lines of a newline-delimited JSON stream.
struct Lines {
    body: ByteStream,
    buf: Vec<u8>,
}

impl Lines {
    /// The next event; None when the stream has ended. Fails the test after 20 s.
    async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=pos).collect();
                    return Some(serde_json::from_slice(&line).expect("each line is JSON"));
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                    Some(Err(e)) => panic!("the watch stream broke: {e}"),
                    None => {
                        assert!(self.buf.is_empty(), "a partial last line");
                        return None;
                    }
                }
            }
        })
        .await
        .expect("a watch event (or the end) within 20 s")
    }
}

fn assert_status(code: StatusCode, body: &Value, expected: StatusCode, reason: &str) {
    assert_eq!(code, expected, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], expected.as_u16(), "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(!body["message"].as_str().unwrap_or("").is_empty(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pagination_walks_every_item_exactly_once_in_key_order() {
    let server = Server::start();
    let api = Api::new(&server);
    let mut expected = BTreeSet::new();
    for i in 0..23 {
        let ns = if i % 2 == 0 { "ns-a" } else { "ns-b" };
        let name = format!("wf-{i:02}");
        api.create_workflow(
            ns,
            &name,
            json!({"parity": if i % 2 == 0 { "even" } else { "odd" }}),
        )
        .await;
        expected.insert(format!("{ns}/{name}"));
    }
    let walk = |selector: &'static str| {
        let api = &api;
        async move {
            let (mut seen, mut token, mut versions, mut pages) =
                (Vec::new(), None::<String>, BTreeSet::new(), 0);
            loop {
                let mut path = format!("{BASE}/workflows?limit=5{selector}");
                if let Some(t) = &token {
                    path.push_str(&format!("&continue={t}"));
                }
                let page = api.ok(&path).await;
                pages += 1;
                assert_eq!(page["kind"], "WorkflowList");
                let items = page["items"].as_array().unwrap();
                assert!(items.len() <= 5);
                seen.extend(items.iter().map(|o| {
                    format!(
                        "{}/{}",
                        o["metadata"]["namespace"].as_str().unwrap(),
                        name_of(o)
                    )
                }));
                versions.insert(
                    page["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
                match page["metadata"]["continue"].as_str() {
                    Some(t) => {
                        let remaining = page["metadata"]["remainingItemCount"].as_u64().unwrap();
                        assert!(remaining > 0, "{page}");
                        token = Some(t.to_string());
                    }
                    None => {
                        assert!(
                            page["metadata"].get("remainingItemCount").is_none(),
                            "{page}"
                        );
                        break;
                    }
                }
                // A write between pages must not disturb the walk.
                if pages == 2 {
                    api.create_workflow("ns-c", &format!("late-{}", selector.len()), json!({}))
                        .await;
                }
            }
            assert_eq!(
                versions.len(),
                1,
                "every page reports the first page's version: {versions:?}"
            );
            (seen, pages)
        }
    };
    let (seen, pages) = walk("").await;
    assert_eq!(
        pages, 5,
        "23 items in pages of 5 (plus one created on the way)"
    );
    let without_late: Vec<&String> = seen.iter().filter(|s| !s.starts_with("ns-c/")).collect();
    assert_eq!(
        without_late
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        expected
    );
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "in key order and never twice");

    let (evens, _) = walk("&labelSelector=parity%3Deven").await;
    assert_eq!(evens.len(), 12);
    assert!(evens.iter().all(|s| s.starts_with("ns-a/")), "{evens:?}");

    api.get_bad_request(&format!("{BASE}/workflows?limit=5&continue=garbage"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn field_selectors_on_name_namespace_and_phase() {
    let server = Server::start();
    let api = Api::new(&server);
    for (ns, name) in [("ns-a", "one"), ("ns-a", "two"), ("ns-b", "one")] {
        api.create_workflow(ns, name, json!({})).await;
    }
    let (code, _) = api
        .send(
            Method::PATCH,
            &format!("{BASE}/namespaces/ns-a/workflows/two/status"),
            "application/merge-patch+json",
            br#"{"status":{"phase":"Running"}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let names = |list: Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["metadata"]["namespace"].as_str().unwrap(),
                    name_of(o)
                )
            })
            .collect()
    };
    let list = |q: &str| format!("{BASE}/workflows?fieldSelector={q}");
    assert_eq!(
        names(api.ok(&list("metadata.name%3Done")).await),
        ["ns-a/one", "ns-b/one"]
    );
    assert_eq!(
        names(
            api.ok(&list("metadata.name%3D%3Done,metadata.namespace%3Dns-b"))
                .await
        ),
        ["ns-b/one"]
    );
    assert_eq!(
        names(api.ok(&list("metadata.namespace!%3Dns-a")).await),
        ["ns-b/one"]
    );
    assert_eq!(
        names(api.ok(&list("status.phase%3DRunning")).await),
        ["ns-a/two"]
    );
    assert_eq!(
        names(
            api.ok(&format!(
                "{BASE}/namespaces/ns-a/workflows?fieldSelector=status.phase!%3DRunning"
            ))
            .await
        ),
        ["ns-a/one"]
    );
    let body = api.get_bad_request(&list("spec.concurrency%3D2")).await;
    let message = body["message"].as_str().unwrap();
    for field in ["metadata.name", "metadata.namespace", "status.phase"] {
        assert!(message.contains(field), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_then_watch_misses_nothing_under_concurrent_writers() {
    let server = Server::start();
    let api = std::sync::Arc::new(Api::new(&server));
    // 50 creates over HTTP, ten at a time; the list lands somewhere in the middle.
    let writers = {
        let api = api.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..50)
                .map(|i| {
                    let api = api.clone();
                    async move {
                        let created = api
                            .create_workflow("default", &format!("w{i:02}"), json!({}))
                            .await;
                        (name_of(&created), rv_of(&created))
                    }
                })
                .buffer_unordered(10)
                .collect::<Vec<_>>()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let list = api
        .ok(&format!("{BASE}/namespaces/default/workflows"))
        .await;
    let listed_at: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let listed: BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(name_of)
        .collect();
    let mut watch = api
        .watch(&format!(
            "{BASE}/namespaces/default/workflows?watch=true&resourceVersion={listed_at}"
        ))
        .await;
    let created: HashMap<String, u64> = writers.await.unwrap().into_iter().collect();
    let expected: Vec<u64> = {
        let mut v: Vec<u64> = created
            .values()
            .copied()
            .filter(|rv| *rv > listed_at)
            .collect();
        v.sort();
        v
    };
    let mut watched = Vec::new();
    while watched.len() < expected.len() {
        let event = watch.next().await.expect("the watch stays open");
        assert_eq!(event["type"], "ADDED", "{event}");
        let name = name_of(&event["object"]);
        assert!(!listed.contains(&name), "{name} was listed and watched");
        watched.push(rv_of(&event["object"]));
    }
    assert_eq!(
        watched, expected,
        "every version after the list, once, in order"
    );
    let mut all: BTreeSet<String> = listed;
    all.extend(
        created
            .iter()
            .filter(|(_, rv)| **rv > listed_at)
            .map(|(n, _)| n.clone()),
    );
    assert_eq!(all.len(), 50, "list + watch cover every object");
    assert!(
        expected.len() < 50 && !expected.is_empty(),
        "the list landed among the writes ({} after it); the test proves less otherwise",
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_resume_filter_and_bookmark() {
    let server = Server::start();
    let api = Api::new(&server);
    let a = api
        .create_workflow("default", "a", json!({"team": "x"}))
        .await;
    api.create_workflow("default", "b", json!({"team": "y"}))
        .await;
    api.create_workflow("default", "c", json!({"team": "x"}))
        .await;

    // Resume after a: b and c replayed, then whatever comes next, live.
    let mut watch = api
        .watch(&format!(
            "{BASE}/namespaces/default/workflows?watch=true&resourceVersion={}",
            rv_of(&a)
        ))
        .await;
    assert_eq!(name_of(&watch.next().await.unwrap()["object"]), "b");
    assert_eq!(name_of(&watch.next().await.unwrap()["object"]), "c");
    api.create_workflow("default", "d", json!({"team": "y"}))
        .await;
    let live = watch.next().await.unwrap();
    assert_eq!(
        (live["type"].as_str(), name_of(&live["object"]).as_str()),
        (Some("ADDED"), "d")
    );

    // A label selector on a watch from the start: the current matches, then new ones.
    let mut team_x = api
        .watch(&format!(
            "{BASE}/namespaces/default/workflows?watch=true&labelSelector=team%3Dx"
        ))
        .await;
    let mut first = vec![name_of(&team_x.next().await.unwrap()["object"])];
    first.push(name_of(&team_x.next().await.unwrap()["object"]));
    assert_eq!(first, ["a", "c"]);

    // A field selector on status.phase: objects enter and leave it.
    let mut running = api
        .watch(&format!(
            "{BASE}/namespaces/default/workflows?watch=true&resourceVersion={}&fieldSelector=status.phase%3DRunning",
            rv_of(&live["object"])
        ))
        .await;
    for phase in ["Running", "Succeeded"] {
        let (code, body) = api
            .send(
                Method::PATCH,
                &format!("{BASE}/namespaces/default/workflows/c/status"),
                "application/merge-patch+json",
                serde_json::to_vec(&json!({"status": {"phase": phase}})).unwrap(),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let entered = running.next().await.unwrap();
    assert_eq!(
        (
            entered["type"].as_str(),
            name_of(&entered["object"]).as_str()
        ),
        (Some("ADDED"), "c")
    );
    let left = running.next().await.unwrap();
    assert_eq!(left["type"], "DELETED", "{left}");
    assert_eq!(left["object"]["status"]["phase"], "Succeeded");
    let e = team_x.next().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), name_of(&e["object"]).as_str()),
        (Some("MODIFIED"), "c")
    );

    // Bookmarks: a watch that allows them ends its timeout with one, at the newest
    // version it has passed, carrying nothing but that version.
    let (_, list) = api.get(&format!("{BASE}/namespaces/other/workflows")).await;
    let head = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut quiet = api
        .watch(&format!(
            "{BASE}/namespaces/other/workflows?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={}",
            rv_of(&a)
        ))
        .await;
    let bookmark = quiet.next().await.expect("a bookmark before the end");
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["kind"], "Workflow");
    assert_eq!(
        bookmark["object"]["metadata"]["resourceVersion"],
        head.as_str()
    );
    assert!(bookmark["object"].get("spec").is_none(), "{bookmark}");
    assert!(
        quiet.next().await.is_none(),
        "timeoutSeconds ends the watch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_versions_and_continue_tokens_get_410() {
    let mut server = Server::start();
    let api = Api::new(&server);
    let first = api.create_workflow("default", "a", json!({})).await;
    api.create_workflow("default", "b", json!({})).await;
    let page = api.ok(&format!("{BASE}/workflows?limit=1")).await;
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    api.create_workflow("default", "c", json!({})).await;
    // A restart starts the watch history afresh at the current version: older ones can
    // no longer be resumed.
    server.restart();
    let api = Api::new(&server);
    api.get_fails(
        &format!(
            "{BASE}/namespaces/default/workflows?watch=true&resourceVersion={}",
            rv_of(&first)
        ),
        StatusCode::GONE,
        "Expired",
    )
    .await;
    api.get_fails(
        &format!("{BASE}/workflows?limit=1&continue={token}"),
        StatusCode::GONE,
        "Expired",
    )
    .await;
    // A list gives a version that can be watched from.
    let list = api.ok(&format!("{BASE}/workflows")).await;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let mut watch = api
        .watch(&format!(
            "{BASE}/workflows?watch=true&resourceVersion={rv}&timeoutSeconds=1"
        ))
        .await;
    assert!(watch.next().await.is_none());
    api.get_bad_request(&format!("{BASE}/workflows?watch=true&resourceVersion=abc"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_subresource_writes_only_status() {
    let server = Server::start();
    let api = Api::new(&server);
    let created = api.create_workflow("default", "wf", json!({})).await;
    let path = format!("{BASE}/namespaces/default/workflows/wf/status");
    let mut body = created.clone();
    body["status"] = json!({"phase": "Running", "observedGeneration": 1});
    body["spec"]["concurrency"] = json!(7);
    body["metadata"]["labels"] = json!({"sneaky": "yes"});
    let (code, updated) = api
        .send(
            Method::PUT,
            &path,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["status"]["phase"], "Running");
    assert_eq!(
        updated["spec"], created["spec"],
        "spec changes through /status are ignored"
    );
    assert!(updated["metadata"].get("labels").is_none(), "{updated}");
    assert_eq!(
        updated["metadata"]["generation"],
        created["metadata"]["generation"]
    );
    assert!(rv_of(&updated) > rv_of(&created));
    assert_eq!(api.ok(&path).await["status"]["phase"], "Running");

    // The same body again carries the old version now: 409.
    let (code, conflict) = api
        .send(
            Method::PUT,
            &path,
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_status(code, &conflict, StatusCode::CONFLICT, "Conflict");

    let (code, patched) = api
        .send(
            Method::PATCH,
            &path,
            "application/merge-patch+json",
            br#"{"status":{"phase":"Succeeded"},"spec":{"concurrency":9}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["status"],
        json!({"phase": "Succeeded", "observedGeneration": 1})
    );
    assert_eq!(patched["spec"], created["spec"]);

    let (code, stale) = api
        .send(
            Method::PATCH,
            &path,
            "application/merge-patch+json",
            serde_json::to_vec(&json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "status": {"phase": "Failed"}})).unwrap(),
        )
        .await;
    assert_status(code, &stale, StatusCode::CONFLICT, "Conflict");

    let (code, body) = api
        .send(
            Method::PATCH,
            &path,
            "application/strategic-merge-patch+json",
            b"{}".to_vec(),
        )
        .await;
    assert_status(
        code,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
    );
    let (code, body) = api
        .send(
            Method::PUT,
            &path,
            "application/json",
            br#"{"status":{"observedGeneration":"one"}}"#.to_vec(),
        )
        .await;
    assert_status(code, &body, StatusCode::UNPROCESSABLE_ENTITY, "Invalid");
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "status.observedGeneration"
    );
    let (code, body) = api
        .send(
            Method::PUT,
            &format!("{BASE}/namespaces/default/workflows/missing/status"),
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    assert_status(code, &body, StatusCode::NOT_FOUND, "NotFound");
}

/// Reads an SSE body to its end: (id, data) per event, and the name of the last event.
fn parse_sse(text: &str) -> (Vec<(String, String)>, Option<String>) {
    let mut events = Vec::new();
    let mut last_name = None;
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (mut id, mut data, mut name) = (String::new(), Vec::new(), None);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
            } else if let Some(v) = line.strip_prefix("event: ") {
                name = Some(v.to_string());
            } else if !line.starts_with(':') {
                panic!("not an SSE line: {line:?}");
            }
        }
        match name {
            Some(n) => last_name = Some(n),
            None => events.push((id, data.join("\n"))),
        }
    }
    (events, last_name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_as_server_sent_events_and_artifacts_with_checksums() {
    let server = Server::start();
    let http = server.http();
    server.write(
        "job.yaml",
        &job_yaml(
            "talk",
            "  steps:\n    - name: say\n      run: |\n        sleep 1\n        for i in 1 2 3; do echo line $i; sleep 0.3; done\n        head -c 3000 /dev/zero | tr '\\0' x > /tmp/big.txt\n  artifacts:\n    - name: big\n      path: /tmp/big.txt\n",
        ),
    );
    let log = format!("{}{BASE}/namespaces/default/jobs/talk/log", server.url);
    // Following while it runs: every line, then the end.
    server.wait_phase("talk", "Running", T);
    let followed = http
        .get(format!("{log}?follow=true"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(followed.headers()["content-type"], "text/event-stream");
    let (events, end) = parse_sse(&followed.text().await.unwrap());
    let lines: Vec<&str> = events.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(lines, ["line 1", "line 2", "line 3"]);
    assert_eq!(end.as_deref(), Some("end"));
    assert_eq!(events[0].0, "7", "ids are byte offsets after each line");
    server.wait_phase("talk", "Succeeded", T);

    // Finished, with tailLines: the same format.
    let tail = http
        .get(format!("{log}?tailLines=2"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (events, end) = parse_sse(&tail);
    assert_eq!(
        events,
        [
            ("14".to_string(), "line 2".to_string()),
            ("21".to_string(), "line 3".to_string())
        ]
    );
    assert_eq!(end.as_deref(), Some("end"));
    // An EventSource that reconnects with Last-Event-ID gets only what followed.
    let resumed = http
        .get(format!("{log}?step=say"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "14")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        parse_sse(&resumed).0,
        [("21".to_string(), "line 3".to_string())]
    );
    // Plain text is unchanged.
    let plain = http.get(format!("{log}?tailLines=1")).send().await.unwrap();
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(plain.text().await.unwrap(), "line 3\n");

    let artifact = http
        .get(format!(
            "{}{BASE}/namespaces/default/jobs/talk/artifacts/big",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(artifact.status(), StatusCode::OK);
    let length: usize = artifact.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let checksum = artifact.headers()["x-checksum-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = artifact.bytes().await.unwrap();
    assert_eq!((length, bytes.len()), (3000, 3000));
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(checksum, digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_error_path_answers_a_status() {
    let server = Server::start();
    let api = Api::new(&server);
    let (code, body) = api
        .send(
            Method::POST,
            &format!("{BASE}/namespaces/default/workflows"),
            "application/json",
            vec![b' '; 9 * 1024 * 1024],
        )
        .await;
    assert_status(
        code,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
    );

    api.get_fails("/no/such/path", StatusCode::NOT_FOUND, "NotFound")
        .await;
    api.get_fails(&format!("{BASE}/gizmos"), StatusCode::NOT_FOUND, "NotFound")
        .await;

    let response = api
        .http
        .delete(format!("{}{BASE}/namespaces/default/workflows", api.base))
        .send()
        .await
        .unwrap();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    let code = response.status();
    let body: Value = response.json().await.unwrap();
    assert_status(
        code,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
    );
    assert!(
        allow.unwrap_or_default().contains("GET"),
        "405 keeps its Allow header"
    );

    for bad in [
        "limit=abc",
        "watch=maybe",
        "labelSelector=a%20in%20()",
        "fieldSelector=spec.x%3D1",
    ] {
        api.get_bad_request(&format!("{BASE}/namespaces/default/workflows?{bad}"))
            .await;
    }
    api.get_bad_request(&format!(
        "{BASE}/namespaces/default/jobs/x/log?tailLines=-1"
    ))
    .await;
    api.get_fails(
        &format!("{BASE}/namespaces/default/workflows/nope"),
        StatusCode::NOT_FOUND,
        "NotFound",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_ends_watches_cleanly_and_exits_zero() {
    let mut server = Server::start();
    let api = Api::new(&server);
    api.create_workflow("default", "a", json!({})).await;
    let mut watch = api.watch(&format!("{BASE}/workflows?watch=true")).await;
    assert_eq!(watch.next().await.unwrap()["type"], "ADDED");
    let status = server
        .terminate(Duration::from_secs(10))
        .expect("the server exits within 10 s");
    assert!(status.success(), "exit status {status}");
    assert!(
        watch.next().await.is_none(),
        "the watch ends cleanly, not with an error"
    );
}

/// `orcaops get -w` outlives the server: it waits through a restart, finds its version
/// gone (410), lists again, and goes on watching.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_watch_survives_a_server_restart() {
    use std::io::BufRead;
    let mut server = Server::start();
    let api = Api::new(&server);
    api.create_workflow("default", "before", json!({})).await;
    let mut cli = std::process::Command::new(common::BIN)
        .args(["get", "workflows", "-w", "-o", "name"])
        .env("ORCAOPS_SERVER", &server.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = cli.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let wait_for = |wanted: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if line == wanted {
                    return;
                }
                seen.push(line);
            }
        }
        panic!("get -w never printed {wanted:?}; printed {seen:?}");
    };
    wait_for("workflow.orcaops.dev/before");
    api.create_workflow("default", "live", json!({})).await;
    wait_for("ADDED workflow.orcaops.dev/live");
    server.restart();
    let api = Api::new(&server);
    api.create_workflow("default", "after", json!({})).await;
    wait_for("ADDED workflow.orcaops.dev/after");
    cli.kill().ok();
    cli.wait().ok();
}
