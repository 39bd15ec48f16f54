//! `orcaops init` with the real binary: into an empty folder, into one with files (which
//! it never overwrites), and a starter folder that `orcaops serve` runs.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn init(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("init")
        .args(args)
        .output()
        .expect("orcaops runs");
    assert!(
        out.status.success(),
        "init {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn init_writes_a_starter_and_never_overwrites_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my-jobs");
    let printed = init(&[dir.to_str().unwrap()]);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "README.md",
            "ci-workflow.yaml",
            "hello-job.yaml",
            "shell-template.yaml",
            "workspace.yaml"
        ]
    );
    assert_eq!(printed.matches("created ").count(), 5, "{printed}");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("orcaops serve --dir {}", dir.display())),
        "{readme}"
    );

    // Again, after an edit: the edit stays, nothing is written, and it says so.
    let job = dir.join("hello-job.yaml");
    std::fs::write(&job, "# mine now\n").unwrap();
    let before: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read(dir.join(f)).unwrap()))
        .collect();
    let printed = init(&[dir.to_str().unwrap()]);
    assert_eq!(printed.matches("skipped ").count(), 5, "{printed}");
    assert!(!printed.contains("created "), "{printed}");
    for (file, content) in before {
        assert_eq!(std::fs::read(dir.join(&file)).unwrap(), content, "{file}");
    }

    // A smaller starter beside the files of another: only what is missing is written.
    let printed = init(&[dir.to_str().unwrap(), "--template", "sandbox"]);
    assert!(
        printed.contains("created ") && printed.contains("scratch-sandbox.yaml"),
        "{printed}"
    );
    assert!(
        printed.contains("skipped ") && printed.contains("shell-template.yaml"),
        "{printed}"
    );

    // A starter that is not one is a usage error naming the choices.
    let out = Command::new(BIN)
        .args(["init", "--template", "everything"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn a_ci_starter_served_runs_its_job_and_waits_for_the_approval() {
    let server = Server::start();
    init(&[server.dir.to_str().unwrap(), "--template", "ci"]);
    server.wait_phase("hello", "Succeeded", Duration::from_secs(90));
    let logs = server.cli_ok(&["logs", "job", "hello"]);
    assert!(logs.contains("step two, line 3"), "{logs}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let workflow = server.cli_ok(&["get", "workflow", "ci", "-o", "json"]);
        if workflow.contains("WaitingApproval") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the starter workflow did not reach its approval: {workflow}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.cli_ok(&["approve", "workflow", "ci", "release"]);
}
