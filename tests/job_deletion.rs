//! Deleting a Job mid-run, end to end (the real binary, real Docker): the local store
//! deletes at once, and the run it interrupted is still recorded, as Cancelled, with its
//! log so far.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// The Job's run records, from the API (they outlive the Job).
fn runs(server: &Server, name: &str) -> Vec<Value> {
    let out = server
        .curl()
        .args([
            "-sf",
            &format!(
                "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/{name}/runs",
                server.url
            ),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let list: Value = serde_json::from_slice(&out.stdout).expect("the run list is JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn deleting_a_running_job_records_the_interrupted_run_as_cancelled() {
    let mut server = Server::start();
    // Applied with the CLI (not the watched folder), so nothing applies it again.
    let file = server.data_dir.parent().unwrap().join("doomed.yaml");
    std::fs::write(
        &file,
        job_yaml(
            "doomed",
            "  steps:\n    - name: first\n      run: echo first-done\n    - name: wait\n      run: echo before-delete; sleep 30\n",
        ),
    )
    .unwrap();
    server.cli_ok(&["apply", "-f", file.to_str().unwrap()]);
    let job = server.wait_phase("doomed", "Running", T);
    let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
    wait_until(T, "the second step has printed", || {
        let out = server.cli(&["logs", "job", "doomed"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("before-delete")
            .then_some(())
    });
    assert!(runs(&server, "doomed").is_empty(), "no run is recorded yet");

    let deleted_at = chrono::Utc::now();
    server.cli_ok(&["delete", "job", "doomed"]);
    let run = wait_until(Duration::from_secs(30), "run 1 is recorded", || {
        runs(&server, "doomed").into_iter().find(|r| r["run"] == 1)
    });
    assert_eq!(run["phase"], "Cancelled", "{run}");
    assert_eq!(run["uid"], uid.as_str(), "{run}");
    let summary = run["summary"].as_str().unwrap();
    assert!(
        summary.contains("the Job was deleted while run 1 was running"),
        "{summary}"
    );
    let time = |field: &str| -> chrono::DateTime<chrono::Utc> {
        run[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {run}"))
            .parse()
            .unwrap()
    };
    let (started, completed) = (time("startTime"), time("completionTime"));
    assert!(started <= completed, "{run}");
    // The completion is the deletion, not the 30 s the step would have taken.
    assert!(
        completed >= deleted_at - chrono::TimeDelta::seconds(2)
            && completed - started < chrono::TimeDelta::seconds(25),
        "{run}"
    );
    // The steps as far as they went: the first finished with 0, the second never did.
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{run}");
    assert_eq!(steps[0]["exitCode"], 0, "{run}");
    assert!(
        steps[1]["exitCode"].is_null() || steps[1]["exitCode"] != 0,
        "{run}"
    );

    // The history shows it, and the output up to the deletion stays readable.
    let history = server.cli_ok(&["history", "job", "doomed"]);
    assert!(history.contains("Cancelled"), "{history}");
    let logs = server.cli_ok(&["logs", "job", "doomed"]);
    assert!(
        logs.contains("first-done") && logs.contains("before-delete"),
        "{logs}"
    );
    // And its container is gone.
    wait_until(Duration::from_secs(30), "the container is removed", || {
        containers_with_label("orcaops.dev/uid", &uid)
            .is_empty()
            .then_some(())
    });
    assert!(server.job("doomed").is_none());

    // The attempt record, read from the store's own files once the server is gone.
    server.kill();
    let attempts = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = orcaops::store::LocalStore::open(&server.data_dir)
            .await
            .expect("the data dir opens once the server is gone");
        store.attempts(&uid, 1).await.unwrap()
    });
    let [attempt] = attempts.as_slice() else {
        panic!("one attempt of run 1: {attempts:?}")
    };
    assert_eq!(attempt.outcome, orcaops::records::AttemptOutcome::Cancelled);
    assert_eq!(attempt.message, "stopped because the Job was deleted");
    assert!(
        attempt
            .container_name
            .starts_with("orcaops-default-doomed-"),
        "{attempt:?}"
    );
    assert!(attempt.started_at.is_some(), "{attempt:?}");
    assert_eq!(attempt.steps[0].exit_code, Some(0), "{attempt:?}");
}

#[test]
fn removing_the_file_of_a_running_job_records_its_run() {
    let server = Server::start();
    server.write(
        "filed.yaml",
        &job_yaml(
            "filed",
            "  steps:\n    - name: wait\n      run: echo from-the-folder; sleep 30\n",
        ),
    );
    server.wait_phase("filed", "Running", T);
    wait_until(T, "the step has printed", || {
        let out = server.cli(&["logs", "job", "filed"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("from-the-folder")
            .then_some(())
    });
    std::fs::remove_file(server.dir.join("filed.yaml")).unwrap();
    let run = wait_until(Duration::from_secs(30), "run 1 is recorded", || {
        runs(&server, "filed").into_iter().find(|r| r["run"] == 1)
    });
    assert_eq!(run["phase"], "Cancelled", "{run}");
    assert!(
        run["summary"]
            .as_str()
            .unwrap()
            .contains("the Job was deleted while run 1 was running"),
        "{run}"
    );
    assert!(run["completionTime"].is_string(), "{run}");
    let logs = server.cli_ok(&["logs", "job", "filed"]);
    assert!(logs.contains("from-the-folder"), "{logs}");
}
