//! Outgoing notifications with the real binary and real Docker: `orcaops serve` with a
//! server-wide `--notify-url` (signed with `--notify-secret-file`), a Workspace whose
//! `spec.notifications` point at a second endpoint signed with its own Secret, and a Job
//! in it whose step exits 1. Both endpoints (a real HTTP receiver on 127.0.0.1) get a
//! `runFailed` body naming the Job, signed with their key; the Job's events say so.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

const T: Duration = Duration::from_secs(120);
const SERVER_KEY: &str = "server-wide signing key";
const WORKSPACE_KEY: &str = "9d2a61c0b4e84f37a1c5d6e7f8091a2b";

/// Each request the receiver got: path, headers, body.
type Received = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

/// An HTTP receiver on 127.0.0.1 (on a thread of its own) that answers 200 to every POST
/// and keeps what it got.
fn receiver() -> (u16, Received) {
    let received: Received = Arc::default();
    let seen = Arc::clone(&received);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().fallback(
                move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let path = uri.path().to_string();
                        seen.lock().unwrap().push((path, headers, body.to_vec()));
                        "ok"
                    }
                },
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (port, received)
}

fn valid(key: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    header == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The runFailed body the receiver got at `path`, with its signature header.
fn run_failed_at(received: &Received, path: &str) -> Option<(Value, String, Vec<u8>)> {
    let received = received.lock().unwrap();
    received.iter().find_map(|(at, headers, body)| {
        let event = headers.get("x-orcaops-event")?.to_str().ok()?;
        (at == path && event == "runFailed").then(|| {
            let signature = headers
                .get("x-orcaops-signature-256")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (
                serde_json::from_slice(body).expect("a JSON body"),
                signature,
                body.clone(),
            )
        })
    })
}

#[test]
fn a_failed_run_is_posted_signed_to_the_workspace_and_server_wide_endpoints() {
    let (port, received) = receiver();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("notify.key");
    std::fs::write(&key_file, format!("{SERVER_KEY}\n")).unwrap();
    let server_wide = format!("http://127.0.0.1:{port}/server-wide");
    let server = Server::start_with_env(&[
        ("ORCAOPS_NOTIFY_URL", server_wide.as_str()),
        ("ORCAOPS_NOTIFY_SECRET_FILE", key_file.to_str().unwrap()),
    ]);
    let ns = format!("notify-{}", std::process::id());

    // The workspace's signing key, as a Secret made through the API.
    server.create_secret(&ns, "notify", "key", WORKSPACE_KEY);
    server.write(
        "workspace.yaml",
        &format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: {ns}\nspec:\n  notifications:\n    - url: http://127.0.0.1:{port}/workspace?team=a\n      events: [runFailed]\n      secretRef: {{name: notify, key: key}}\n"
        ),
    );
    wait_until(T, "the workspace is applied", || {
        get_in(&server, "workspace", "", &ns)
    });
    server.write(
        "job.yaml",
        &format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: breaks\n  namespace: {ns}\nspec:\n  image: {IMAGE}\n  steps:\n    - name: fail\n      run: echo broken; exit 1\n"
        ),
    );
    let job = wait_until(T, "the job fails", || {
        get_in(&server, "job", &ns, "breaks")
            .filter(|j| j.pointer("/status/phase").and_then(Value::as_str) == Some("Failed"))
    });

    let (body, signature, raw) = wait_until(
        Duration::from_secs(30),
        "the workspace's endpoint gets runFailed",
        || run_failed_at(&received, "/workspace"),
    );
    assert!(
        valid(WORKSPACE_KEY, &raw, &signature),
        "signed with the workspace's Secret: {signature}"
    );
    assert_eq!(body["kind"], "Notification");
    assert_eq!(body["event"], "runFailed");
    assert_eq!(body["reason"], "Failed");
    assert_eq!(body["workspace"], ns.as_str());
    assert_eq!(body["object"]["kind"], "Job");
    assert_eq!(body["object"]["name"], "breaks");
    assert_eq!(body["object"]["uid"], job["metadata"]["uid"]);

    let (body, signature, raw) = wait_until(
        Duration::from_secs(30),
        "the server-wide endpoint gets runFailed",
        || run_failed_at(&received, "/server-wide"),
    );
    assert!(
        valid(SERVER_KEY, &raw, &signature),
        "signed with --notify-secret-file's key (without its newline): {signature}"
    );
    assert!(!valid(WORKSPACE_KEY, &raw, &signature));
    assert_eq!(body["object"]["name"], "breaks");

    let described = wait_until(T, "the job's events say both were sent", || {
        let text = server.cli_ok(&["describe", "job", "breaks", "-n", &ns]);
        (text.matches("Notified").count() >= 2).then_some(text)
    });
    assert!(
        described.contains(&format!(
            "sent runFailed to http://127.0.0.1:{port}/workspace: 200 OK after 1 attempt"
        )),
        "{described}"
    );
    assert!(
        !described.contains("team=a"),
        "no query strings in events: {described}"
    );

    let out = server
        .curl()
        .args(["-s", &format!("{}/metrics", server.url)])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"orcaops_notifications_total{event="runFailed",outcome="delivered"} 2"#),
        "both deliveries are counted:\n{metrics}"
    );
}
