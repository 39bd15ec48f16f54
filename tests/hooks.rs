//! Webhook triggers with the real binary: `examples/workflows/on-push.yaml` in a watched
//! folder, its Secret made through the API, and deliveries signed as GitHub signs them,
//! sent with curl. Applying starts nothing; a signed push runs the workflow with inputs
//! from the delivery (real Docker); a redelivery is the same run; a bad signature and a
//! tag push start nothing; each delivery, and the folder's create, are in the audit log.

mod common;

use std::time::Duration;

use common::*;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "8c1f0e6a2b7d4e3f9a5c1b0d7e2f4a6c";
const T: Duration = Duration::from_secs(120);

fn signed(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `body` to the hook as GitHub would; the code and the answer.
fn deliver(server: &Server, id: &str, event: &str, body: &str, signature: &str) -> (u16, Value) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", &format!("X-GitHub-Event: {event}")])
        .args(["-H", &format!("X-GitHub-Delivery: {id}")])
        .args(["-H", &format!("X-Hub-Signature-256: {signature}")])
        .args(["--data-binary", body])
        .arg(format!("{}/hooks/default/on-push", server.url))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (answer, code) = text.rsplit_once('\n').expect("curl prints the code last");
    (
        code.trim().parse().expect("a status code"),
        serde_json::from_str(answer).unwrap_or(Value::Null),
    )
}

fn push(reference: &str, sha: &str) -> String {
    json!({"ref": reference, "after": sha, "repository": {"full_name": "acme/app"}}).to_string()
}

fn runs(wf: &Value) -> u64 {
    wf.pointer("/status/run")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

#[test]
fn a_signed_push_runs_the_example_once_and_everything_is_audited() {
    let server = Server::start();
    server.create_secret("default", "hook", "token", SECRET);
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflows/on-push.yaml");
    server.write("on-push.yaml", &std::fs::read_to_string(example).unwrap());
    let wf = wait_until(T, "the workflow is applied", || server.workflow("on-push"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        runs(&server.workflow("on-push").unwrap()),
        0,
        "applying starts nothing: {wf}"
    );

    // A bad signature, and a tag push: nothing starts.
    let body = push("refs/heads/main", "c0ffee1");
    let (code, answer) = deliver(&server, "d-0", "push", &body, "sha256=00");
    assert_eq!(code, 401, "{answer}");
    let tag = push("refs/tags/v1.0.0", "c0ffee0");
    let (code, answer) = deliver(&server, "d-tag", "push", &tag, &signed(&tag));
    assert_eq!(
        (code, answer["kind"].as_str()),
        (202, Some("WebhookIgnored")),
        "{answer}"
    );

    let (code, answer) = deliver(&server, "d-1", "push", &body, &signed(&body));
    assert!(code == 201 || code == 202, "{code}: {answer}");
    assert_eq!(answer["token"], "hook-d-1", "{answer}");
    let wf = server.wait_workflow("on-push", "run 1 ends", T, |wf| {
        runs(wf) == 1 && wf.pointer("/status/completionTime").is_some()
    });
    assert_eq!(wf["status"]["phase"], "Succeeded", "{wf}");
    let logs = server.cli_ok(&["logs", "workflow", "on-push", "--node", "build"]);
    assert!(
        logs.contains("building acme/app at c0ffee1 (refs/heads/main)"),
        "the inputs came from the delivery: {logs}"
    );
    let history = server.cli_ok(&["history", "workflow", "on-push"]);
    assert!(
        history.contains("webhook"),
        "the run's trigger is webhook: {history}"
    );

    // GitHub's Redeliver sends the same delivery id: the same run, not a second.
    let (code, answer) = deliver(&server, "d-1", "push", &body, &signed(&body));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        (answer["run"].as_u64(), answer["duplicate"].as_bool()),
        (Some(1), Some(true))
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(runs(&server.workflow("on-push").unwrap()), 1);

    let hooks = server.cli_ok(&["audit", "search", "--verb", "webhook"]);
    for expected in ["webhook:d-0", "webhook:d-tag", "webhook:d-1", "401", "202"] {
        assert!(hooks.contains(expected), "{expected} in {hooks}");
    }
    let folder = server.cli_ok(&["audit", "search", "--verb", "create"]);
    assert!(
        folder.contains("folder:on-push.yaml") && folder.contains("workflows/default/on-push"),
        "{folder}"
    );
}
