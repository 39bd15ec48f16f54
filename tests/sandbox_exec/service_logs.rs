//! A sandbox service's log: `orcaops logs sandbox NAME [--service S] [-f] [--tail N]`
//! over `GET .../sandboxes/{name}/log`, with the real binary and real Docker.

use std::io::{BufRead, BufReader};

use super::*;

const LOGGING: &str = "apiVersion: orcaops.dev/v1alpha1\nkind: Sandbox\nmetadata:\n  name: talk\nspec:\n  services:\n    - name: shell\n      image: busybox:latest\n      command: [\"sh\", \"-c\", \"echo first; echo second >&2; while true; do if [ -f /tmp/go ]; then echo late; rm /tmp/go; fi; sleep 0.2; done\"]\n    - name: db\n      image: busybox:latest\n      command: [\"sh\", \"-c\", \"echo from-db; exec sleep infinity\"]\n";

#[test]
fn logs_of_a_sandbox_service() {
    let cleanup = Cleanup::default();
    let server = Server::start();
    ready_sandbox(&server, &cleanup, "talk", LOGGING);

    // The first service by default: stdout and stderr both.
    let out = wait_until(Duration::from_secs(10), "the first lines", || {
        let out = server.cli(&["logs", "sandbox", "talk"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success() && text.contains("first\n") && text.contains("second\n"))
            .then_some(text)
    });
    assert!(!out.contains("from-db"), "{out}");
    let db = server.cli_ok(&["logs", "sandbox", "talk", "--service", "db"]);
    assert_eq!(db, "from-db\n");
    let tail = server.cli_ok(&["logs", "sandbox/talk", "--tail", "1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // An unknown service names the services; job flags are refused.
    let out = server.cli(&["logs", "sandbox", "talk", "--service", "web"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("its services are: shell, db"), "{stderr}");
    let out = server.cli(&["logs", "sandbox", "talk", "--step", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = server.cli(&["logs", "job", "talk", "--service", "db"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--service is for sandboxes"),
        "{out:?}"
    );

    // -f: a line written after the start arrives.
    let mut child = Command::new(BIN)
        .args(["logs", "sandbox", "talk", "-f"])
        .env("ORCAOPS_SERVER", &server.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // What was there before comes first.
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10))
            .ok()
            .as_deref()
            .map(|l| l == "first" || l == "second"),
        Some(true)
    );
    server.cli_ok(&["exec", "talk", "--", "touch", "/tmp/go"]);
    let late = poll(Duration::from_secs(15), || {
        rx.recv_timeout(Duration::from_millis(500))
            .ok()
            .filter(|l| l == "late")
    });
    child.kill().ok();
    child.wait().ok();
    assert_eq!(
        late.as_deref(),
        Some("late"),
        "the followed log never showed the new line"
    );
}
