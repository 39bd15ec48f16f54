//! Sandbox exec and files on a cluster (`orcaops operator --api`): the collected exec
//! and single-file transfers go through `pods/exec` (a WebSocket server that speaks the
//! API server's channel protocol stands in for it); what only Docker serves answers 501.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::controller::activity::SandboxActivity;
use crate::resources::{Kind, Object, ObjectKey};
use crate::runtime::pod::runtime::exec_tests::{exec_server, exit_code, success};
use crate::server::{AppState, BASE, PATH_KIND_HEADER, router};
use crate::store::LocalStore;

const POD: &str = "orcaops-team-a-box-0123abcd";

/// A Ready sandbox `box` in `team-a` whose service `shell` runs in pod [`POD`].
async fn ready_sandbox(store: &LocalStore) {
    let obj = Object::new(
        Kind::Sandbox,
        "team-a",
        "box",
        json!({"services": [{"name": "shell", "image": "busybox:latest"}]}),
    );
    store.create(obj).await.unwrap();
    store
        .update_status(
            &ObjectKey::new(Kind::Sandbox, "team-a", "box"),
            "",
            json!({"phase": "Ready", "services": [
                {"name": "shell", "container": format!("team-a/{POD}/shell"), "ready": true}
            ]}),
        )
        .await
        .unwrap();
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    content_type: &str,
    body: Bytes,
) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body)
}

#[tokio::test]
async fn on_a_cluster_exec_and_single_files_go_through_pods_exec_and_the_rest_is_501() {
    let (pods, seen) = exec_server(vec![
        exit_code(3, "no such thing\n"),
        success(Vec::new()),
        success(b"hello from the pod".to_vec()),
        exit_code(7, "streamed\n"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    ready_sandbox(&store).await;
    let app = router(AppState {
        objects: std::sync::Arc::new(store.clone()),
        policies: crate::policy::Policies::watching(std::sync::Arc::new(store.clone())),
        records: store,
        sandboxes: std::sync::Arc::new(pods),
        activity: SandboxActivity::new(),
        shutdown: CancellationToken::new(),
        leading: None,
        metrics: Default::default(),
    });
    let sandbox = format!("{BASE}/namespaces/team-a/sandboxes/box");

    // The exec's own exit code and output come back as from Docker.
    let (status, _, body) = call(
        &app,
        Method::POST,
        &format!("{sandbox}/exec"),
        "application/json",
        Bytes::from(
            json!({"command": ["ls", "/nope"], "env": [{"name": "A", "value": "1"}]}).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let result: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(result["exitCode"], 3, "{result}");
    assert_eq!(result["stderr"], "no such thing\n", "{result}");

    // One file up, one file down.
    let (status, _, body) = call(
        &app,
        Method::PUT,
        &format!("{sandbox}/files?path=/work/a.txt"),
        "application/octet-stream",
        Bytes::from_static(b"hi"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let written: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(written["kind"], "file");
    assert_eq!(written["bytes"], 2);
    let (status, headers, body) = call(
        &app,
        Method::GET,
        &format!("{sandbox}/files?path=/work/a.txt"),
        "application/octet-stream",
        Bytes::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"hello from the pod");
    assert_eq!(headers[PATH_KIND_HEADER], "file");
    assert_eq!(headers[header::CONTENT_LENGTH], "18");

    // A streamed exec (what `orcaops exec` asks for) gets the output when it ends.
    let (status, headers, body) = call(
        &app,
        Method::POST,
        &format!("{sandbox}/exec?stream=true"),
        "application/json",
        Bytes::from(json!({"command": ["sh", "-c", "exit 7"]}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
    let events: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["data"], "streamed\n", "{events:?}");
    assert_eq!(events[1]["exit"]["code"], 7, "{events:?}");

    // Each went to the service's container of the sandbox's pod.
    let seen = seen.lock().unwrap().clone();
    let uris: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris.len(), 4, "{uris:?}");
    for uri in &uris {
        assert!(
            uri.starts_with(&format!("/api/v1/namespaces/team-a/pods/{POD}/exec?"))
                && uri.contains("container=shell"),
            "{uri}"
        );
    }
    assert!(uris[0].contains("command=ls"), "{}", uris[0]);
    // The upload's bytes went to the write command's stdin, closed after them.
    assert!(uris[1].contains("stdin=true"), "{}", uris[1]);
    assert_eq!(seen[1].stdin, b"hi");
    assert!(seen[0].stdin.is_empty() && !uris[0].contains("stdin=true"));

    // A tar upload and /containers are Docker's only, and say what to use instead.
    for (method, uri, content_type, body) in [
        (
            Method::PUT,
            format!("{sandbox}/files?path=/work"),
            "application/x-tar",
            // An empty archive: two zero blocks.
            "\0".repeat(1024),
        ),
        (
            Method::GET,
            format!("{BASE}/containers"),
            "application/json",
            String::new(),
        ),
    ] {
        let (status, _, answer) = call(&app, method, &uri, content_type, Bytes::from(body)).await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{uri}");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert!(
            answer["message"].as_str().unwrap().contains("kubectl exec"),
            "{answer}"
        );
    }
}
