//! Job services end to end: the real `orcaops` binary, a watched folder, real Docker.
//! A busybox `httpd` beside the steps, reached by its name on the attempt's private
//! network; with `network: none` that network reaches nothing else; nothing is left
//! once the attempt ends.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(90);

fn uid(job: &Value) -> String {
    job.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .expect("a uid")
        .to_string()
}

/// Docker networks carrying the label `key=value`.
fn networks_with_label(key: &str, value: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label={key}={value}"),
        ])
        .output()
        .expect("docker network ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .filter(|l| !l.is_empty())
        .collect()
}

fn nothing_left_of(job: &Value) {
    let uid = uid(job);
    wait_until(
        Duration::from_secs(20),
        "the attempt's containers and network are removed",
        || {
            (containers_with_label("orcaops.dev/uid", &uid).is_empty()
                && networks_with_label("orcaops.dev/uid", &uid).is_empty())
            .then_some(())
        },
    );
}

/// An address of this host that a container could reach over a routed network.
fn host_address() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.contains('.'))
        .expect("the host has an IPv4 address (hostname -I)")
        .to_string()
}

#[test]
fn a_step_reaches_its_service_by_name_and_nothing_else_with_network_none() {
    let server = Server::start();
    // Something listening on the host: a step on an internal network must not reach it.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let host = format!(
        "{}:{}",
        host_address(),
        listener.local_addr().unwrap().port()
    );
    let yaml = job_yaml(
        "with-web",
        &format!(
            r#"  network: none
  services:
    - name: web
      image: {IMAGE}
      command: ["sh", "-c", "mkdir -p /srv && echo served-by-web > /srv/index.html && exec httpd -f -p 8080 -h /srv"]
      ports: [8080]
  steps:
    - name: fetch
      run: |
        wget -qO- http://web:8080/index.html
        echo "page=$(wget -qO- http://web:8080/index.html)" >> "$ORCAOPS_OUTPUT"
    - name: isolated
      run: |
        if wget -q -T 3 -O /dev/null http://{host}/ 2>/dev/null; then echo reached the host; exit 1; fi
        if wget -q -T 3 -O /dev/null http://1.1.1.1/ 2>/dev/null; then echo reached outside; exit 1; fi
        echo isolated
"#
        ),
    );
    server.write("web.yaml", &yaml);
    let job = server.wait_phase("with-web", "Succeeded", T);
    assert_eq!(
        job.pointer("/status/steps/0/outputTail")
            .and_then(Value::as_str),
        Some("served-by-web"),
        "{job}"
    );
    assert_eq!(
        job.pointer("/status/outputs/page"),
        Some(&Value::from("served-by-web")),
        "{job}"
    );
    assert_eq!(
        job.pointer("/status/steps/1/outputTail")
            .and_then(Value::as_str),
        Some("isolated"),
        "{job}"
    );
    nothing_left_of(&job);
}

#[test]
fn a_service_that_never_gets_ready_fails_the_attempt_naming_it_and_leaves_nothing() {
    let server = Server::start();
    let yaml = job_yaml(
        "never-ready",
        &format!(
            r#"  services:
    - name: silent
      image: {IMAGE}
      command: ["sleep", "300"]
      ports: [9999]
      readiness: {{periodSeconds: 1, failureThreshold: 3}}
  steps:
    - name: never
      run: 'echo the steps must not run; exit 1'
"#
        ),
    );
    server.write("never.yaml", &yaml);
    let job = server.wait_phase("never-ready", "Failed", T);
    let summary = job
        .pointer("/status/summary")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        summary.contains("service \"silent\" did not become ready")
            && summary.contains("3 checks")
            && summary.contains("nothing listens on port 9999"),
        "{summary}"
    );
    assert_eq!(
        job.pointer("/status/steps/0/exitCode"),
        None,
        "the steps never started: {job}"
    );
    nothing_left_of(&job);

    // A service that exits before it is ready says so, with what it printed.
    let yaml = job_yaml(
        "quits",
        &format!(
            r#"  services:
    - name: quitter
      image: {IMAGE}
      command: ["sh", "-c", "echo bye; sleep 1; exit 3"]
      readiness: {{exec: ["sh", "-c", "exit 1"]}}
  steps:
    - name: never
      run: 'exit 1'
"#
        ),
    );
    server.write("quits.yaml", &yaml);
    let job = server.wait_phase("quits", "Failed", T);
    let summary = job
        .pointer("/status/summary")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        summary.contains("service \"quitter\" did not become ready")
            && summary.contains("exited with 3 before it was ready")
            && summary.contains("bye"),
        "{summary}"
    );
    nothing_left_of(&job);
}

#[test]
fn a_service_that_exits_while_the_steps_run_is_reported() {
    let server = Server::start();
    let yaml = job_yaml(
        "short-lived",
        &format!(
            r#"  services:
    - name: brief
      image: {IMAGE}
      command: ["sh", "-c", "sleep 1; exit 4"]
  steps:
    - name: wait
      run: 'sleep 4'
"#
        ),
    );
    server.write("brief.yaml", &yaml);
    let job = server.wait_phase("short-lived", "Succeeded", T);
    let summary = job
        .pointer("/status/summary")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        summary.contains("service \"brief\" exited with 4 while the steps ran"),
        "{summary}"
    );
    nothing_left_of(&job);
}

#[test]
fn the_service_example_runs_end_to_end() {
    let server = Server::start();
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/job-with-service.yaml"
    ))
    .unwrap();
    server.write("smoke.yaml", &yaml);
    let job = server.wait_phase("smoke-test", "Succeeded", T);
    assert_eq!(
        job.pointer("/status/outputs/health"),
        Some(&Value::from("ok")),
        "{job}"
    );
    nothing_left_of(&job);
}

#[test]
fn services_left_by_a_killed_server_go_when_their_job_is_deleted() {
    let mut server = Server::start();
    let yaml = job_yaml(
        "slow-service",
        &format!(
            r#"  services:
    - name: slow
      image: {IMAGE}
      command: ["sleep", "300"]
      ports: [9999]
      readiness: {{periodSeconds: 1, failureThreshold: 120}}
  steps:
    - name: never
      run: 'true'
"#
        ),
    );
    server.write("slow.yaml", &yaml);
    // The service runs and the steps wait for it when the server dies.
    let uid = wait_until(T, "the service container runs", || {
        let uid = uid(&server.job("slow-service")?);
        (!containers_with_label("orcaops.dev/uid", &uid).is_empty()).then_some(uid)
    });
    server.kill();
    assert!(
        !networks_with_label("orcaops.dev/uid", &uid).is_empty(),
        "the attempt's network is there while its service is"
    );
    std::fs::remove_file(server.dir.join("slow.yaml")).unwrap();
    server.restart();
    wait_until(
        Duration::from_secs(30),
        "the deleted job's service and network are removed",
        || {
            (containers_with_label("orcaops.dev/uid", &uid).is_empty()
                && networks_with_label("orcaops.dev/uid", &uid).is_empty())
            .then_some(())
        },
    );
}

#[test]
fn with_network_bridge_the_steps_reach_their_service_on_a_routed_network() {
    let server = Server::start();
    let yaml = job_yaml(
        "bridged",
        &format!(
            r#"  network: bridge
  services:
    - name: web
      image: {IMAGE}
      command: ["sh", "-c", "mkdir -p /srv && echo bridged > /srv/index.html && exec httpd -f -p 8080 -h /srv"]
      ports: [8080]
  steps:
    - name: fetch
      run: |
        wget -qO- http://web:8080/index.html
        ip route | grep -q '^default' && echo has-a-route
        sleep 3
"#
        ),
    );
    server.write("bridged.yaml", &yaml);
    let uid = wait_until(T, "the attempt's network exists", || {
        let uid = uid(&server.job("bridged")?);
        let networks = networks_with_label("orcaops.dev/uid", &uid);
        let internal = Command::new("docker")
            .args(["network", "inspect", "-f", "{{.Internal}}"])
            .args(&networks)
            .output()
            .ok()?;
        let internal = String::from_utf8_lossy(&internal.stdout).trim().to_string();
        (!networks.is_empty() && !internal.is_empty()).then_some((uid, internal))
    });
    assert_eq!(uid.1, "false", "network: bridge gets a routed network");
    let job = server.wait_phase("bridged", "Succeeded", T);
    assert_eq!(
        job.pointer("/status/steps/0/outputTail")
            .and_then(Value::as_str),
        Some("bridged\nhas-a-route"),
        "{job}"
    );
    nothing_left_of(&job);
}
