//! The holding runner, run by the host's `/bin/sh` and released through a file in a
//! temporary directory.

use super::*;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn run(name: &str, script: &str) -> Step {
    Step::script(name, script)
}

struct Held {
    child: Child,
    release_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Held {
    fn start(steps: &[Step], max_seconds: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let release_file = dir.path().join("collected");
        let hold = Hold {
            release_file: release_file.to_str().unwrap(),
            max_seconds,
        };
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script(
                steps,
                "n0",
                Some(hold),
                dir.path().to_str().unwrap(),
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests run the runner with the host's /bin/sh");
        Held {
            child,
            release_file,
            _dir: dir,
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The exit code and stdout, once it exits; panics after `within`.
    fn exit(mut self, within: Duration) -> (i32, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the runner did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (status.code().expect("exited, not killed"), stdout)
    }
}

#[test]
fn runner_holds_after_the_last_end_marker_until_released() {
    let mut held = Held::start(&[run("a", "echo out")], 60);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(held.is_running(), "the runner did not hold");
    std::fs::write(&held.release_file, "").unwrap();
    let (code, stdout) = held.exit(Duration::from_secs(10));
    assert_eq!(code, 0);
    // The usage marker reads the cgroup of wherever the script runs (here: the test's).
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "the steps' markers and output come before the hold, and nothing after: {stdout}"
    );
    assert_eq!(lines[..2], ["::orcaops:n0:start:0", "out"]);
    assert!(lines[2].starts_with("::orcaops:n0:usage:0:"), "{stdout}");
    assert_eq!(lines[3], "::orcaops:n0:end:0:0");
}

#[test]
fn a_failed_step_holds_too_and_gives_up_after_the_limit_with_its_exit_code() {
    let started = Instant::now();
    let held = Held::start(&[run("a", "exit 3"), run("b", "echo never")], 1);
    let (code, stdout) = held.exit(Duration::from_secs(10));
    assert_eq!(code, 3);
    assert!(started.elapsed() >= Duration::from_secs(1), "did not hold");
    assert!(stdout.ends_with("::orcaops:n0:end:0:3\n"), "{stdout}");
}

#[test]
fn a_stop_request_ends_the_hold_with_the_steps_exit_code() {
    let mut held = Held::start(&[run("a", "true")], 60);
    std::thread::sleep(Duration::from_millis(500));
    assert!(held.is_running());
    let killed = Command::new("kill")
        .args(["-TERM", &held.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, _) = held.exit(Duration::from_secs(5));
    assert_eq!(code, 0);
}
