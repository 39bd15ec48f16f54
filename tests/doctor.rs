//! `orcaops doctor` end to end (the real binary): against a running server and real
//! Docker everything needed is found; with the Docker daemon gone (a socket nobody
//! listens on, as a stopped or crashed daemon leaves it) it fails and names the fix;
//! a data dir whose key others can read fails with the chmod that fixes it.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_orcaops");

fn checks(out: &std::process::Output) -> Vec<Value> {
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor -o json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    json["checks"].as_array().cloned().unwrap_or_default()
}

fn find<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {checks:?}"))
}

#[test]
fn beside_a_running_server_everything_a_first_run_needs_is_found() {
    let server = Server::start();
    let listen = format!("127.0.0.1:{}", server.port);
    let data_dir = server.data_dir.to_string_lossy().to_string();
    let out = server.cli(&[
        "doctor",
        "--listen",
        &listen,
        "--data-dir",
        &data_dir,
        "--dir",
        server.dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ok    docker    Docker "), "{text}");
    assert!(
        text.contains("ok    images    present on this machine: busybox:latest"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ok    port      {listen} is taken by a running orcaops server"
        )),
        "{text}"
    );
    assert!(text.contains("the same as this CLI"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");

    // An image named in the folder that is not on this machine is a warning with a fix.
    server.write(
        "missing.yaml",
        &job_yaml("missing", "  steps:\n    - name: a\n      run: echo hi\n")
            .replace("busybox:latest", "orcaops-doctor-absent:1"),
    );
    let out = server.cli(&[
        "doctor",
        "-o",
        "json",
        "--listen",
        &listen,
        "--data-dir",
        &data_dir,
        "--dir",
        server.dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "a warning does not fail");
    let checks = checks(&out);
    let images = find(&checks, "images");
    assert_eq!(images["verdict"], "warn", "{images}");
    assert!(
        images["message"]
            .as_str()
            .unwrap()
            .contains("orcaops-doctor-absent:1"),
        "{images}"
    );
    assert!(
        images["fix"]
            .as_str()
            .unwrap()
            .contains("docker pull orcaops-doctor-absent:1"),
        "{images}"
    );
}

#[test]
fn with_the_docker_daemon_gone_doctor_fails_and_names_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    // A socket file nobody listens on: what a stopped or crashed daemon leaves.
    let socket = tmp.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("admin.key"), "not-a-real-key").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data.join("admin.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let port = free_port();
    let out = Command::new(BIN)
        .args([
            "doctor",
            "-o",
            "json",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .expect("the orcaops binary runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let checks = checks(&out);
    let docker = find(&checks, "docker");
    assert_eq!(docker["verdict"], "fail", "{docker}");
    assert!(
        docker["message"]
            .as_str()
            .unwrap()
            .contains(&socket.display().to_string()),
        "the message names the socket: {docker}"
    );
    assert!(
        docker["fix"]
            .as_str()
            .unwrap()
            .contains("systemctl start docker"),
        "{docker}"
    );
    assert_eq!(find(&checks, "images")["verdict"], "warn");
    let key = checks
        .iter()
        .find(|c| c["name"] == "data dir" && c["verdict"] == "fail")
        .unwrap_or_else(|| panic!("the open key is a failure: {checks:?}"));
    assert!(
        key["fix"].as_str().unwrap().starts_with("chmod 600 "),
        "{key}"
    );
    let server = find(&checks, "server");
    assert_eq!(
        server["verdict"], "warn",
        "no server is a warning: {server}"
    );
    assert!(
        server["fix"]
            .as_str()
            .unwrap()
            .contains("orcaops serve --dir"),
        "{server}"
    );
    assert_eq!(find(&checks, "port")["verdict"], "ok");
}
