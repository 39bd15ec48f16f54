//! The audit log with the real binary: a scripted session against `orcaops serve` is
//! recorded (writes, a key made, a refused key, a failed authentication, a controller's
//! delete of a Job its TTL removes), searched and
//! exported through the API; `orcaops audit verify` passes on the files, then fails,
//! naming the entry, after one byte of one entry is edited, after one entry is removed,
//! and after two are swapped.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

/// The log file (one: a short session does not rotate).
fn log_file(data_dir: &Path) -> PathBuf {
    let dir = data_dir.join("audit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no audit dir in {}: {e}", data_dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 1, "{files:?}");
    files.remove(0)
}

fn verify(data_dir: &Path) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("orcaops runs")
}

#[test]
fn a_session_is_recorded_and_verify_finds_each_kind_of_tampering() {
    let mut server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let job = tmp.path().join("job.yaml");
    std::fs::write(
        &job,
        job_yaml("audited", "  steps:\n    - name: s\n      run: echo hi\n"),
    )
    .unwrap();
    server.cli_ok(&["apply", "-f", job.to_str().unwrap()]);
    server.wait_phase("audited", "Succeeded", Duration::from_secs(60));
    server.cli_ok(&["delete", "job", "audited"]);
    // A Job its TTL removes: the controller's delete is recorded as its own.
    let ttl = tmp.path().join("ttl.yaml");
    std::fs::write(
        &ttl,
        job_yaml(
            "short-lived",
            "  ttlSecondsAfterFinished: 0\n  steps:\n    - name: s\n      run: echo hi\n",
        ),
    )
    .unwrap();
    server.cli_ok(&["apply", "-f", ttl.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let by_controller = loop {
        let found = server.cli_ok(&["audit", "search", "--actor", "controller"]);
        if found.contains("jobs/default/short-lived") || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        by_controller.contains("delete") && by_controller.contains("jobs/default/short-lived"),
        "no controller delete of the TTL's Job: {by_controller}"
    );
    assert!(
        !by_controller.contains("jobs/default/audited"),
        "the API's delete is not the controller's: {by_controller}"
    );
    // A key made, and a request with a key that is not one.
    let key = server.cli_ok(&["key", "create", "--server-admin", "--member", "ops", "-q"]);
    assert!(!key.trim().is_empty());
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["-H", "Authorization: Bearer not-a-key"])
        .arg(format!(
            "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs",
            server.url
        ))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "401");

    // Searched through the API, by a server admin.
    // `apply` is a server-side apply: a PATCH, answered 201 when it creates.
    let created = server.cli_ok(&["audit", "search", "--verb", "patch", "--kind", "job"]);
    assert!(
        created.contains("jobs/default/audited") && created.contains("201"),
        "{created}"
    );
    let deleted = server.cli_ok(&["audit", "search", "--verb", "delete"]);
    assert!(deleted.contains("jobs/default/audited"), "{deleted}");
    let keys = server.cli_ok(&["audit", "search", "--verb", "create-key"]);
    assert!(keys.contains("apikeys"), "{keys}");
    let failed = server.cli_ok(&["audit", "search", "--verb", "authenticate"]);
    assert!(
        failed.contains("anonymous") && failed.contains("401"),
        "{failed}"
    );
    let tail = server.cli_ok(&["audit", "tail", "-n", "3"]);
    assert_eq!(tail.lines().count(), 4, "a header and 3 entries: {tail}");
    let export = server.cli_ok(&["audit", "export"]);
    let entries: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("export prints JSON lines"))
        .collect();
    assert!(entries.len() >= 4, "{export}");
    assert_eq!(entries[0]["seq"], 1);
    assert!(
        entries
            .iter()
            .all(|e| e["hash"].as_str().is_some_and(|h| h.len() == 64))
    );
    // Reads are not recorded (the searches above were reads).
    assert!(
        entries
            .iter()
            .all(|e| e["verb"] != "list" || e["code"] == 403)
    );

    // Stop the writer, then check the files themselves.
    server.kill();
    let data = server.data_dir.clone();
    let out = verify(&data);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("intact"),
        "{}",
        text(&out.stdout)
    );

    let file = log_file(&data);
    let original = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 4);
    let tampered = |lines: Vec<String>, expect: &str| {
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        let out = verify(&data);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "verify passed a tampered log: {}",
            text(&out.stdout)
        );
        assert!(stderr.contains(expect), "expected {expect:?} in: {stderr}");
        std::fs::write(&file, &original).unwrap();
    };
    // One byte of entry 2.
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    edited[1] = edited[1].replacen("\"code\":", "\"code\":9", 1);
    tampered(edited, "entry 2");
    // Entry 2 removed.
    let mut removed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    removed.remove(1);
    tampered(removed, "entry 3");
    // Entries 2 and 3 swapped.
    let mut swapped: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    swapped.swap(1, 2);
    tampered(swapped, "reordered");
    // Restored, it verifies again.
    assert!(verify(&data).status.success());
}
