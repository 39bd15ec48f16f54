//! The data dir on a small tmpfs that fills up while `orcaops serve` runs: writes are
//! refused with 503 and a message that names the cause, `/readyz` says so, and once
//! space is freed the same process recovers, with every write it acknowledged (2xx)
//! before and during still there, and every acknowledged Job run to the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::dockerd::{PrivateDockerd, tail};
use crate::serve::{API, ChaosServer, job, phase};

const T: Duration = Duration::from_secs(90);

/// A tmpfs of `size` mounted on a new temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "this test mounts a small tmpfs to fill it up: run it as root (CI and scripts/test.sh do)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with one file, to its last byte.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        while file.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

pub fn run() {
    let daemon = PrivateDockerd::start();
    let tmp = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount("32m");
    let server = ChaosServer::start(tmp.path(), &disk.path().join("data"), &daemon.host(), &[]);
    let echo = |name: &str| job(name, &[("only", &format!("echo {name}"))], json!({}));

    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let name = format!("before-{i}");
        let created = server.post(&format!("{API}/jobs"), &echo(&name));
        assert!(created.ok(), "{created:?}");
        acknowledged.push(name);
    }
    for name in &acknowledged {
        server.wait_for("jobs", name, "succeeds", T, |j| phase(j) == "Succeeded");
    }

    let filler = disk.fill();
    // Keep writing: each acknowledged create must survive; the refusals must say why.
    let mut refusals = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while refusals.len() < 5 {
        assert!(
            started.elapsed() < T,
            "the full disk never refused a write; {} acknowledged",
            acknowledged.len()
        );
        let name = format!("during-{i}");
        i += 1;
        let created = server.post(&format!("{API}/jobs"), &echo(&name));
        if created.ok() {
            acknowledged.push(name);
        } else {
            refusals.push(created);
        }
    }
    eprintln!(
        "full: {} creates acknowledged, refusals: {:?}",
        i - refusals.len(),
        refusals
            .iter()
            .map(|r| (r.code, r.body["message"].clone()))
            .collect::<Vec<_>>()
    );
    for refusal in &refusals {
        assert_eq!(refusal.code, 503, "a full disk is a 503: {refusal:?}");
        let message = refusal.body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("full") || message.contains("space"),
            "the refusal names the cause: {message}"
        );
    }
    let (code, message) = server.readyz();
    assert_eq!(code, 503, "/readyz while the disk is full: {message}");
    assert!(message.contains("store"), "{message}");

    // Space comes back: the same process recovers.
    std::fs::remove_file(filler).unwrap();
    let started = Instant::now();
    loop {
        let (code, message) = server.readyz();
        if code == 200 {
            break;
        }
        assert!(
            started.elapsed() < T,
            "/readyz still {code} {message} after space was freed; log:\n{}",
            tail(&server.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for i in 0..3 {
        let name = format!("after-{i}");
        let created = server.post(&format!("{API}/jobs"), &echo(&name));
        assert!(created.ok(), "a write after recovery: {created:?}");
        acknowledged.push(name);
    }
    assert_eq!(server.starts, 1, "recovered without a restart");

    let listed: Vec<String> = server
        .list("jobs")
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !listed.contains(n))
        .collect();
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    for name in &acknowledged {
        server.wait_for("jobs", name, "succeeds after recovery", T, |j| {
            phase(j) == "Succeeded"
        });
    }
    eprintln!(
        "{} acknowledged jobs present and succeeded",
        acknowledged.len()
    );
    drop(server);
    drop(disk);
}
