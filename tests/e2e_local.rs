//! End to end: the real `orcaops` binary, a watched folder, real Docker.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn phase(job: &Value) -> &str {
    job.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[test]
fn hello_example_runs_end_to_end() {
    let server = Server::start();
    let hello =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello.yaml"))
            .unwrap();
    server.write("hello.yaml", &hello);
    let job = server.wait_phase("hello", "Succeeded", T);
    assert_eq!(
        job.pointer("/status/steps/0/exitCode"),
        Some(&Value::from(0))
    );
    assert_eq!(
        job.pointer("/metadata/annotations/orcaops.dev~1source")
            .and_then(Value::as_str),
        Some("file:hello.yaml")
    );
    assert_eq!(job.pointer("/status/totalRuns"), Some(&Value::from(1)));
    let logs = server.cli_ok(&["logs", "job", "hello"]);
    assert!(logs.contains("hello from orcaops on Linux"), "logs: {logs}");
    assert!(
        !logs.contains("::orcaops:"),
        "runner markers must not reach the logs: {logs}"
    );
    let describe = server.cli_ok(&["describe", "job", "hello"]);
    assert!(
        describe.contains("Succeeded") && describe.contains("greet"),
        "{describe}"
    );
    let history = server.cli_ok(&["history", "job", "hello"]);
    assert!(history.contains("Succeeded"), "{history}");
    let table = server.cli_ok(&["get", "jobs"]);
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        table.contains("hello") && table.contains("Succeeded"),
        "{table}"
    );
    // The container is removed once logs are saved.
    let uid = job
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    wait_until(Duration::from_secs(10), "the container is removed", || {
        containers_with_label("orcaops.dev/uid", &uid)
            .is_empty()
            .then_some(())
    });
}

#[test]
fn multi_step_job_collects_artifacts_with_checksums() {
    let server = Server::start();
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/build-with-artifact.yaml"
    ))
    .unwrap();
    server.write("build.yaml", &yaml);
    let job = server.wait_phase("build-report", "Succeeded", T);
    let steps = job
        .pointer("/status/steps")
        .and_then(Value::as_array)
        .unwrap();
    assert_eq!(steps.len(), 3);
    for s in steps {
        assert_eq!(s.get("exitCode"), Some(&Value::from(0)), "{s}");
        assert!(s.get("durationMs").is_some(), "{s}");
    }
    assert!(steps[2]["outputTail"].as_str().unwrap().contains("sum=15"));
    let artifacts = job
        .pointer("/status/artifacts")
        .and_then(Value::as_array)
        .unwrap();
    let report = artifacts
        .iter()
        .find(|a| a["name"] == "report")
        .expect("report artifact");
    assert_eq!(report["size"], Value::from("sum=15\n".len()));
    // The sha256 matches what the API serves.
    let body = server.curl()
        .args(["-sf", &format!("{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/build-report/artifacts/report", server.url)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&body.stdout), "sum=15\n");
    let step_log = server.cli_ok(&["logs", "job", "build-report", "--step", "build"]);
    assert_eq!(step_log.trim(), "built");
    assert!(
        artifacts.iter().any(|a| a["name"] == "out"),
        "directory artifact: {artifacts:?}"
    );
}

#[test]
fn failing_job_retries_with_backoff_then_fails() {
    let server = Server::start();
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/flaky-with-retries.yaml"
    ))
    .unwrap();
    server.write("flaky.yaml", &yaml);
    let job = server.wait_phase("flaky", "Failed", T);
    assert_eq!(job.pointer("/status/attempt"), Some(&Value::from(3)));
    assert_eq!(
        job.pointer("/status/history/0/exitCode"),
        Some(&Value::from(3))
    );
    assert_eq!(
        job.pointer("/status/history/0/attempts"),
        Some(&Value::from(3))
    );
    let summary = job
        .pointer("/status/summary")
        .and_then(Value::as_str)
        .unwrap();
    assert!(
        summary.contains("3 attempts") && summary.contains("check"),
        "{summary}"
    );
    let second = server.cli_ok(&["logs", "job", "flaky", "--attempt", "2"]);
    assert!(second.contains("checking something"), "{second}");
    let events = server.cli_ok(&["describe", "job", "flaky"]);
    assert!(
        events.contains("BackOff"),
        "describe shows the backoff events: {events}"
    );
}

#[test]
fn job_past_its_timeout_is_stopped() {
    let server = Server::start();
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/timeout.yaml"
    ))
    .unwrap();
    server.write("timeout.yaml", &yaml);
    let job = server.wait_phase("too-slow", "TimedOut", Duration::from_secs(30));
    let started = job
        .pointer("/status/startTime")
        .and_then(Value::as_str)
        .unwrap();
    let done = job
        .pointer("/status/completionTime")
        .and_then(Value::as_str)
        .unwrap();
    let took = chrono::DateTime::parse_from_rfc3339(done).unwrap()
        - chrono::DateTime::parse_from_rfc3339(started).unwrap();
    assert!(
        took.num_seconds() < 20,
        "stopped near the 3 s deadline, took {took}"
    );
    let logs = server.cli_ok(&["logs", "job", "too-slow"]);
    assert!(
        logs.contains("starting a long wait") && !logs.contains("never printed"),
        "{logs}"
    );
}

#[test]
fn cancel_stops_the_run_in_progress() {
    let server = Server::start();
    server.write(
        "long.yaml",
        &job_yaml(
            "long",
            "  steps:\n    - name: wait\n      run: echo waiting; sleep 120\n",
        ),
    );
    server.wait_phase("long", "Running", T);
    let out = server.cli_ok(&["cancel", "job", "long"]);
    assert!(out.contains("cancel requested"), "{out}");
    let job = server.wait_phase("long", "Cancelled", Duration::from_secs(30));
    assert!(
        job.pointer("/status/summary")
            .and_then(Value::as_str)
            .unwrap()
            .contains("cancel")
    );
    // Cancelling a finished run is refused with a reason.
    let again = server.cli(&["cancel", "job", "long"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no run in progress"));
}

#[test]
fn a_changed_spec_is_a_new_run_and_a_restart_is_not() {
    let mut server = Server::start();
    server.write(
        "v.yaml",
        &job_yaml(
            "versioned",
            "  steps:\n    - name: one\n      run: echo v1\n",
        ),
    );
    server.wait_phase("versioned", "Succeeded", T);
    server.write(
        "v.yaml",
        &job_yaml(
            "versioned",
            "  steps:\n    - name: one\n      run: echo v2\n",
        ),
    );
    let job = wait_until(T, "run 2 succeeds", || {
        server.job("versioned").filter(|j| {
            j.pointer("/status/totalRuns") == Some(&Value::from(2)) && phase(j) == "Succeeded"
        })
    });
    assert_eq!(job.pointer("/metadata/generation"), Some(&Value::from(2)));
    assert_eq!(
        job.pointer("/status/history/1/generation"),
        Some(&Value::from(1))
    );
    assert!(server.cli_ok(&["logs", "job", "versioned"]).contains("v2"));
    assert!(
        server
            .cli_ok(&["logs", "job", "versioned", "--run", "1"])
            .contains("v1")
    );
    server.restart();
    std::thread::sleep(Duration::from_secs(2));
    let job = server.job("versioned").unwrap();
    assert_eq!(
        job.pointer("/status/totalRuns"),
        Some(&Value::from(2)),
        "a restart must not start a run"
    );
    assert_eq!(job.pointer("/metadata/generation"), Some(&Value::from(2)));
}

#[test]
fn broken_files_never_disturb_anything_else() {
    let server = Server::start();
    server.write(
        "good.yaml",
        &job_yaml("good", "  steps:\n    - name: s\n      run: echo good\n"),
    );
    server.wait_phase("good", "Succeeded", T);
    // A typo in a file that declared a job keeps the last good version.
    server.write(
        "good.yaml",
        &job_yaml("good", "  steps:\n    - name: s\n      comand: echo typo\n"),
    );
    server.write(
        "syntax.yaml",
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata: {name: [unclosed\n",
    );
    server.write(
        "wrong-type.yaml",
        &job_yaml("wrongtype", "  steps: \"echo not a list\"\n"),
    );
    server.write(
        "garbage.yaml",
        &String::from_utf8_lossy(&[0xff, 0xfe, 0, 1, 2, 3, 0x80, 0x81]),
    );
    std::fs::write(
        server.dir.join("binary.yml"),
        [0u8, 159, 146, 150, 255, 0, 7],
    )
    .unwrap();
    server.write("huge.yaml", &format!("# {}\n", "x".repeat(5 * 1024 * 1024)));
    server.write(
        "after.yaml",
        &job_yaml(
            "after",
            "  steps:\n    - name: s\n      run: echo still working\n",
        ),
    );
    server.wait_phase("after", "Succeeded", T);
    let good = server
        .job("good")
        .expect("the job with a typo in its file is still there");
    assert_eq!(phase(&good), "Succeeded");
    assert_eq!(
        good.pointer("/metadata/generation"),
        Some(&Value::from(1)),
        "the broken edit was not applied"
    );
    assert!(server.job("wrongtype").is_none());
    // The errors are recorded as events that name the file, line and fix.
    let events = server
        .curl()
        .args([
            "-sf",
            &format!(
                "{}/api/v1/events?fieldSelector=involvedObject.kind=File&limit=50",
                server.url
            ),
        ])
        .output()
        .unwrap();
    let events: Value = serde_json::from_slice(&events.stdout).unwrap();
    let messages: Vec<String> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    let all = messages.join("\n");
    assert!(
        all.contains("good.yaml") && all.contains("did you mean \"command\""),
        "{all}"
    );
    assert!(all.contains("syntax.yaml"), "{all}");
    assert!(all.contains("wrong-type.yaml"), "{all}");
    assert!(all.contains("huge.yaml"), "{all}");
    assert!(all.contains("binary.yml"), "{all}");
    // Files are never modified.
    assert!(
        std::fs::read_to_string(server.dir.join("good.yaml"))
            .unwrap()
            .contains("comand")
    );
    // The server is alive and well.
    assert!(server.cli(&["get", "jobs"]).status.success());
}

#[test]
fn deleting_a_file_deletes_its_jobs_and_a_clash_is_refused() {
    let server = Server::start();
    server.write(
        "a.yaml",
        &job_yaml(
            "shared",
            "  steps:\n    - name: s\n      run: echo from-a\n",
        ),
    );
    server.wait_phase("shared", "Succeeded", T);
    server.write(
        "b.yaml",
        &job_yaml(
            "shared",
            "  steps:\n    - name: s\n      run: echo from-b\n",
        ),
    );
    std::thread::sleep(Duration::from_secs(1));
    let job = server.job("shared").unwrap();
    assert_eq!(
        job.pointer("/metadata/annotations/orcaops.dev~1source")
            .and_then(Value::as_str),
        Some("file:a.yaml")
    );
    assert_eq!(
        job.pointer("/metadata/generation"),
        Some(&Value::from(1)),
        "b.yaml must not take over a.yaml's job"
    );
    std::fs::remove_file(server.dir.join("a.yaml")).unwrap();
    wait_until(
        Duration::from_secs(10),
        "the job of a deleted file is deleted",
        || {
            server
                .job("shared")
                .is_none_or(|j| {
                    j.pointer("/metadata/annotations/orcaops.dev~1source")
                        .and_then(Value::as_str)
                        == Some("file:b.yaml")
                })
                .then_some(())
        },
    );
}

#[test]
fn an_unknown_image_fails_with_the_image_and_reason() {
    let server = Server::start();
    server.write(
        "nope.yaml",
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: nope\nspec:\n  image: orcaops-test/no-such-image:never\n  steps:\n    - name: s\n      run: echo\n",
    );
    let job = server.wait_phase("nope", "Failed", T);
    let summary = job
        .pointer("/status/summary")
        .and_then(Value::as_str)
        .unwrap();
    assert!(
        summary.contains("orcaops-test/no-such-image:never"),
        "{summary}"
    );
}

#[test]
fn kill_9_mid_job_adopts_the_running_container() {
    let mut server = Server::start();
    server.write(
        "crash.yaml",
        &job_yaml(
            "crash",
            "  steps:\n    - name: first\n      run: echo first-step-ran\n    - name: slow\n      run: sleep 4; echo slow-done\n    - name: last\n      run: echo last-step-ran\n",
        ),
    );
    let job = server.wait_phase("crash", "Running", T);
    let uid = job
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    let before = containers_with_label("orcaops.dev/uid", &uid);
    assert_eq!(before.len(), 1, "one container for the attempt");
    server.kill();
    std::thread::sleep(Duration::from_millis(500));
    server.restart();
    let job = server.wait_phase("crash", "Succeeded", T);
    assert_eq!(
        job.pointer("/status/attempt"),
        Some(&Value::from(1)),
        "no second attempt"
    );
    assert_eq!(
        job.pointer("/status/totalRuns"),
        Some(&Value::from(1)),
        "no second run"
    );
    let logs = server.cli_ok(&["logs", "job", "crash"]);
    assert_eq!(
        logs.matches("first-step-ran").count(),
        1,
        "no step ran twice: {logs}"
    );
    assert!(
        logs.contains("slow-done") && logs.contains("last-step-ran"),
        "{logs}"
    );
    let steps = job
        .pointer("/status/steps")
        .and_then(Value::as_array)
        .unwrap();
    assert!(steps.iter().all(|s| s["exitCode"] == 0), "{steps:?}");
    let log = server.log();
    assert!(!log.contains("r1a2"), "no second container was created");
}

#[test]
fn containers_whose_job_is_gone_are_removed_at_restart() {
    let mut server = Server::start();
    server.write(
        "orphan.yaml",
        &job_yaml(
            "orphan",
            "  steps:\n    - name: wait\n      run: sleep 120\n",
        ),
    );
    let job = server.wait_phase("orphan", "Running", T);
    let uid = job
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert_eq!(containers_with_label("orcaops.dev/uid", &uid).len(), 1);
    // The job's file goes away while the server is down.
    server.kill();
    std::fs::remove_file(server.dir.join("orphan.yaml")).unwrap();
    server.restart();
    wait_until(
        Duration::from_secs(20),
        "the orphaned container is removed",
        || {
            containers_with_label("orcaops.dev/uid", &uid)
                .is_empty()
                .then_some(())
        },
    );
    assert!(server.job("orphan").is_none());
}

#[test]
fn containers_of_another_orcaops_are_left_alone() {
    require_docker();
    let uid = format!("foreign-{}", std::process::id());
    let name = format!("orcaops-test-foreign-{}", std::process::id());
    let made = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "orcaops.dev/kind=Job",
        ])
        .args([
            "--label",
            &format!("orcaops.dev/uid={uid}"),
            "--label",
            "orcaops.dev/instance=someone-else",
            IMAGE,
            "sleep",
            "300",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let server = Server::start();
    // Give the start-up sweep time to run, and prove it ran by running a job.
    server.write(
        "j.yaml",
        &job_yaml("j", "  steps:\n    - name: s\n      run: echo\n"),
    );
    server.wait_phase("j", "Succeeded", T);
    let still_there = containers_with_label("orcaops.dev/uid", &uid);
    std::process::Command::new("docker")
        .args(["rm", "-f", &name])
        .output()
        .unwrap();
    assert_eq!(
        still_there.len(),
        1,
        "a container owned by another orcaops instance must not be removed"
    );
}

#[test]
fn ttl_deletes_the_job_but_keeps_its_history() {
    let server = Server::start();
    // Applied with the CLI (not the watched folder), so nothing re-applies it.
    let file = server.data_dir.parent().unwrap().join("ttl.yaml");
    std::fs::write(&file, job_yaml("short-lived", "  ttlSecondsAfterFinished: 1\n  steps:\n    - name: s\n      run: echo kept-after-ttl\n")).unwrap();
    let out = server.cli_ok(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.contains("job.orcaops.dev/short-lived created"), "{out}");
    wait_until(T, "the job is deleted by its TTL", || {
        server.job("short-lived").is_none().then_some(())
    });
    let history = server.cli_ok(&["history", "job", "short-lived"]);
    assert!(history.contains("Succeeded"), "{history}");
    let logs = server.cli_ok(&["logs", "job", "short-lived"]);
    assert!(logs.contains("kept-after-ttl"), "{logs}");
}

#[test]
fn run_works_without_a_server_and_exits_with_the_outcome() {
    require_docker();
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(["run", "--data-dir", data.path().to_str().unwrap()])
            .args(args)
            .env(
                "ORCAOPS_SERVER",
                format!("http://127.0.0.1:{}", free_port()),
            )
            .output()
            .unwrap()
    };
    let ok = run(&["--image", IMAGE, "--", "echo", "hello from run"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "hello from run\n");
    assert!(String::from_utf8_lossy(&ok.stderr).contains("embedded"));
    let failed = run(&["--image", IMAGE, "--", "sh", "-c", "echo oops >&2; exit 7"]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("oops"));
    let timed_out = run(&["--image", IMAGE, "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(timed_out.status.code(), Some(3));
    let usage = run(&["--image", IMAGE]);
    assert_eq!(usage.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--"));
}

#[test]
fn cli_reports_an_unreachable_server_with_exit_5() {
    let out = std::process::Command::new(BIN)
        .args(["get", "jobs"])
        .env(
            "ORCAOPS_SERVER",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("orcaops serve"));
}

#[test]
fn logs_follow_streams_until_the_run_ends() {
    let server = Server::start();
    server.write(
        "slow.yaml",
        &job_yaml(
            "slow",
            "  steps:\n    - name: s\n      run: echo first; sleep 2; echo second\n",
        ),
    );
    server.wait_phase("slow", "Running", T);
    let started = std::time::Instant::now();
    let out = server.cli_ok(&["logs", "job", "slow", "-f"]);
    assert!(out.contains("first") && out.contains("second"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "logs -f ends with the run"
    );
    assert_eq!(phase(&server.job("slow").unwrap()), "Succeeded");
}

#[test]
fn get_watch_prints_changes() {
    let server = Server::start();
    let mut child = std::process::Command::new(BIN)
        .args(["get", "jobs", "-w", "-o", "name"])
        .env("ORCAOPS_SERVER", &server.url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    server.write(
        "w.yaml",
        &job_yaml("watched", "  steps:\n    - name: s\n      run: echo\n"),
    );
    server.wait_phase("watched", "Succeeded", T);
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ADDED job.orcaops.dev/watched"), "{text}");
    assert!(text.contains("MODIFIED job.orcaops.dev/watched"), "{text}");
}

#[test]
fn apply_reports_bad_documents_and_applies_the_good_ones() {
    let server = Server::start();
    let file = server.data_dir.parent().unwrap().join("mixed.yaml");
    let content = format!(
        "{}---\n{}",
        job_yaml("fine", "  steps:\n    - name: s\n      run: echo fine\n"),
        job_yaml("typo", "  steps:\n    - name: s\n      comand: [echo]\n")
    );
    std::fs::write(&file, content).unwrap();
    let out = server.cli(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mixed.yaml:19:7:"),
        "names the file and the absolute line: {stderr}"
    );
    assert!(
        stderr.contains("document 2") && stderr.contains("did you mean \"command\""),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("job.orcaops.dev/fine created"));
    server.wait_phase("fine", "Succeeded", T);
    assert!(server.job("typo").is_none());
}

#[test]
fn the_api_answers_invalid_requests_with_kubernetes_status_objects() {
    let server = Server::start();
    let post = |body: &str| {
        let out = server
            .curl()
            .args([
                "-s",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/yaml",
                "--data-binary",
                body,
            ])
            .arg(format!(
                "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs",
                server.url
            ))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    };
    let invalid = post(&job_yaml(
        "bad",
        "  steps:\n    - name: s\n      run: echo\n      timeout: 3\n",
    ));
    assert_eq!(invalid["kind"], "Status");
    assert_eq!(invalid["reason"], "Invalid");
    assert_eq!(invalid["code"], 422);
    let cause = &invalid["details"]["causes"][0];
    assert!(
        cause["field"].as_str().unwrap().contains("spec.steps[0]"),
        "{invalid}"
    );
    let created = post(&job_yaml(
        "good",
        "  steps:\n    - name: s\n      run: echo\n",
    ));
    assert_eq!(created["metadata"]["name"], "good");
    let again = post(&job_yaml(
        "good",
        "  steps:\n    - name: s\n      run: echo\n",
    ));
    assert_eq!(again["reason"], "AlreadyExists");
    assert_eq!(again["code"], 409);
    let missing = server
        .curl()
        .args([
            "-s",
            &format!(
                "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/nope",
                server.url
            ),
        ])
        .output()
        .unwrap();
    let missing: Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(missing["reason"], "NotFound");
}

#[test]
fn a_second_process_cannot_share_a_data_dir() {
    let server = Server::start();
    let out = std::process::Command::new(BIN)
        .args([
            "run",
            "--embedded",
            "--data-dir",
            server.data_dir.to_str().unwrap(),
            "--image",
            IMAGE,
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another orcaops"), "{stderr}");
    assert!(
        server.cli(&["get", "jobs"]).status.success(),
        "the server is undisturbed"
    );
}

#[test]
fn an_operator_cannot_share_a_data_dir() {
    let server = Server::start();
    // A kubeconfig that parses: without the lock, the operator would go on to the
    // (unreachable) cluster and exit 5 instead.
    let kubeconfig = server.data_dir.parent().unwrap().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n\
         current-context: x\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "operator",
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another orcaops"), "{stderr}");
    assert!(stderr.contains("a data dir of its own"), "{stderr}");
    assert!(
        server.cli(&["get", "jobs"]).status.success(),
        "the server is undisturbed"
    );
}

#[test]
fn run_f_runs_a_job_file_and_reruns_it_unchanged() {
    let server = Server::start();
    let example = |name: &str| format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let first = server.cli(&["run", "-f", &example("hello.yaml")]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("hello from orcaops"));
    // The same file again is a new run of the unchanged job.
    let second = server.cli(&["run", "-f", &example("hello.yaml")]);
    assert_eq!(second.status.code(), Some(0));
    let job = server.job("hello").unwrap();
    assert_eq!(job.pointer("/status/totalRuns"), Some(&Value::from(2)));
    assert_eq!(job.pointer("/metadata/generation"), Some(&Value::from(1)));
    let timed_out = server.cli(&["run", "-f", &example("timeout.yaml")]);
    assert_eq!(timed_out.status.code(), Some(3), "a timed-out job exits 3");
    let failed = server.cli(&["run", "-f", &example("flaky-with-retries.yaml")]);
    assert_eq!(failed.status.code(), Some(2), "a failed job exits 2");
    assert!(
        String::from_utf8_lossy(&failed.stdout).contains("--- attempt 2 ---"),
        "retries show up in the output"
    );
}

/// A running Job's summary said "starting 1 step" until its attempt ended; it now names
/// the step that is running, as soon as the step starts.
#[test]
fn a_running_jobs_summary_names_its_current_step() {
    let server = Server::start();
    server.write(
        "steps.yaml",
        &job_yaml(
            "stepwise",
            "  steps:\n    - name: quick\n      run: echo one\n    - name: slow\n      run: sleep 6\n",
        ),
    );
    server.wait_job("stepwise", "says it runs step 2 of 2", T, |job| {
        job.pointer("/status/summary").and_then(Value::as_str)
            == Some("run 1, attempt 1: step 2 of 2 (\"slow\") running")
    });
    server.wait_phase("stepwise", "Succeeded", T);
}
