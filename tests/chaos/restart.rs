//! The Docker daemon restarted (SIGTERM) or killed and started again (SIGKILL) while a
//! Job's step runs and while a Sandbox is Ready.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::dockerd::{PrivateDockerd, Stop, tail};
use crate::serve::{API, ChaosServer, condition, job, phase, sandbox};

const T: Duration = Duration::from_secs(90);

pub fn run(how: Stop) {
    let daemon = &mut PrivateDockerd::start();
    let tmp = tempfile::tempdir().unwrap();
    let server = ChaosServer::start(tmp.path(), &tmp.path().join("data"), &daemon.host(), &[]);
    assert_eq!(server.readyz().0, 200, "ready while Docker answers");

    let created = server.post(&format!("{API}/sandboxes"), &sandbox("sb"));
    assert!(created.ok(), "{created:?}");
    let created = server.post(
        &format!("{API}/jobs"),
        &job(
            "long",
            &[("work", "echo first; sleep 5; echo second")],
            json!({"retry": {"limit": 1, "backoffSeconds": 1}}),
        ),
    );
    assert!(created.ok(), "{created:?}");
    let running = server.wait_for("jobs", "long", "runs its step", T, |j| {
        phase(j) == "Running" && j.pointer("/status/container").is_some()
    });
    let container = running["status"]["container"].as_str().unwrap().to_string();
    let started = Instant::now();
    while !String::from_utf8_lossy(&daemon.docker(&["logs", &container]).stdout).contains("first") {
        assert!(started.elapsed() < T, "the step never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = server.wait_for("sandboxes", "sb", "is Ready", T, |s| phase(s) == "Ready");
    let sandbox_container = ready
        .pointer("/status/services/0/container")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();

    // The daemon goes away under both.
    daemon.stop(how);
    let went_at = Instant::now();
    let (code, message) = wait_readyz(&server, |code| code == 503);
    assert!(message.contains("runtime"), "{code} {message}");
    for (plural, name) in [("jobs", "long"), ("sandboxes", "sb")] {
        let obj = server.wait_for(plural, name, "says RuntimeUnavailable", T, |o| {
            condition(o, "RuntimeUnavailable").is_some()
        });
        assert!(
            !matches!(phase(&obj), "Succeeded" | "Failed"),
            "{plural}/{name} must not finish while Docker is away: {obj:#}"
        );
    }
    // Down for a while: nothing finishes, nothing pretends the runtime answers.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        server.readyz().0,
        503,
        "still not ready while Docker is away"
    );
    eprintln!(
        "down for {:?}, starting the daemon again",
        went_at.elapsed()
    );

    daemon.start_again();
    wait_readyz(&server, |code| code == 200);
    // The step was cut short by the daemon: the attempt fails saying so, and the retry
    // runs the step again to the end.
    let done = server.wait_for("jobs", "long", "finishes", T, |j| {
        matches!(phase(j), "Succeeded" | "Failed")
    });
    assert_eq!(phase(&done), "Succeeded", "{:#}", done["status"]);
    assert!(
        condition(&done, "RuntimeUnavailable").is_none(),
        "{:#}",
        done["status"]
    );
    let runs = server.get(&format!("{API}/jobs/long/runs"));
    let runs = runs.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 1, "one run: {runs:#?}");
    assert_eq!(runs[0]["attempts"], 2, "{:#}", runs[0]);
    assert_eq!(runs[0]["steps"][0]["outputTail"], "first\nsecond");
    let events = server.get("/api/v1/namespaces/default/events");
    let retry = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == "long")
        .filter_map(|e| e["message"].as_str())
        .find(|m| m.starts_with("attempt 1 failed"))
        .unwrap_or_else(|| panic!("no event about attempt 1: {:#}", events.body))
        .to_string();
    assert!(
        retry.contains("the Docker daemon went away at"),
        "attempt 1's failure names the daemon: {retry}"
    );
    // The sandbox's service is started again: Ready, and its status says it restarted.
    let back = server.wait_for("sandboxes", "sb", "is Ready again", T, |s| {
        phase(s) == "Ready"
            && condition(s, "RuntimeUnavailable").is_none()
            && s.pointer("/status/services/0/restarts")
                .and_then(Value::as_u64)
                .is_some_and(|n| n >= 1)
    });
    assert_eq!(
        back.pointer("/status/services/0/container")
            .and_then(Value::as_str),
        Some(sandbox_container.as_str())
    );
    let exec = server.post(
        &format!("{API}/sandboxes/sb/exec"),
        &json!({"command": ["echo", "alive"]}),
    );
    assert!(
        exec.ok() && exec.body["stdout"] == "alive\n",
        "exec after the restart: {exec:?}"
    );
    eprintln!("job attempt 1: {retry}");

    // Deleting everything leaves nothing on the daemon.
    for plural in ["jobs/long", "sandboxes/sb"] {
        let deleted = server.delete(&format!("{API}/{plural}"));
        assert!(deleted.ok(), "{deleted:?}");
    }
    for (plural, name) in [("jobs", "long"), ("sandboxes", "sb")] {
        let started = Instant::now();
        while server.object(plural, name).is_some() {
            assert!(
                started.elapsed() < T,
                "{plural}/{name} was never deleted; log:\n{}",
                tail(&server.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let started = Instant::now();
    loop {
        let left = daemon.orcaops_leftovers();
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < T,
            "left on the daemon after deleting everything: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until `/readyz` answers a code `want` accepts; returns the code and message.
fn wait_readyz(server: &ChaosServer, want: impl Fn(u16) -> bool) -> (u16, String) {
    let started = Instant::now();
    loop {
        let (code, message) = server.readyz();
        if want(code) {
            return (code, message);
        }
        assert!(
            started.elapsed() < T,
            "/readyz still answers {code} {message} after {T:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
