//! Issue 11, section 9: a Job its `ttlSecondsAfterFinished` deleted, whose file is
//! still in the watched folder, is not created and run again at a restart; a changed
//! file is. The real binary, real Docker, the real data dir across the restart.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn file_event_reasons(server: &Server) -> Vec<(String, String)> {
    let out = server
        .curl()
        .args([
            "-sf",
            &format!(
                "{}/api/v1/events?fieldSelector=involvedObject.kind=File&limit=100",
                server.url
            ),
        ])
        .output()
        .unwrap();
    let events: Value = serde_json::from_slice(&out.stdout).unwrap();
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The output of the Job's latest run (it outlives the Job).
fn latest_log(server: &Server, name: &str) -> String {
    String::from_utf8_lossy(&server.cli(&["logs", "job", name]).stdout).to_string()
}

#[test]
fn a_job_deleted_by_its_ttl_is_not_run_again_at_a_restart() {
    let mut server = Server::start();
    let body = "  ttlSecondsAfterFinished: 1\n  steps:\n    - name: s\n      run: echo once\n";
    server.write("once.yaml", &job_yaml("once", body));
    wait_until(T, "the job runs and its TTL deletes it", || {
        (server.job("once").is_none() && latest_log(&server, "once").contains("once")).then_some(())
    });

    server.restart();
    // The folder has been read again once the server answers; give a re-created job
    // time to show.
    wait_until(T, "the server answers", || {
        server.cli(&["get", "jobs"]).status.success().then_some(())
    });
    let skipped = wait_until(T, "a NotRecreated event", || {
        file_event_reasons(&server)
            .into_iter()
            .find(|(reason, _)| reason == "NotRecreated")
    });
    assert!(skipped.1.contains("ttlSecondsAfterFinished"), "{skipped:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(server.job("once").is_none(), "re-created at the restart");

    // A changed spec is a new intent: it runs again.
    let changed = "  ttlSecondsAfterFinished: 1\n  steps:\n    - name: s\n      run: echo twice\n";
    server.write("once.yaml", &job_yaml("once", changed));
    wait_until(T, "the changed job runs", || {
        latest_log(&server, "once").contains("twice").then_some(())
    });
}
