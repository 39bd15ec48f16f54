//! A Docker daemon of the chaos suite's own, so that it can be restarted (and killed)
//! without touching the machine's shared daemon that other tests and people use.
//!
//! It runs in a network namespace of its own, with its own socket, data root, exec root,
//! pid file, containerd namespace and address pool, and no iptables rules, so it
//! coexists with the main daemon (and leaves its `docker0` alone). Its `busybox:latest` is imported from `/bin/busybox` the way
//! `scripts/setup.sh` builds the main daemon's. Dropping it removes every container it
//! holds, stops it, ends what it started (containerd, shims), unmounts what it mounted
//! and removes its directories, also when the test failed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PrivateDockerd {
    /// A short directory under /tmp: Unix socket paths must stay under 108 bytes.
    root: PathBuf,
    child: Option<Child>,
    /// How many times it was started (its log says which start a line is from).
    starts: u32,
}

/// How the daemon is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: Docker stops its containers and exits, as `systemctl restart docker` does.
    Term,
    /// SIGKILL: the daemon vanishes at once; its containers' shims live on.
    Kill,
}

impl PrivateDockerd {
    /// Starts a new daemon and imports the test image, or fails saying what is missing.
    pub fn start() -> PrivateDockerd {
        assert!(
            Command::new("dockerd")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "the chaos suite starts a Docker daemon of its own: install Docker with ./scripts/setup.sh (it needs `dockerd` on PATH)"
        );
        assert!(
            is_root(),
            "the chaos suite starts its own Docker daemon and mounts a tmpfs: run it as root (CI and scripts/test.sh do)"
        );
        let root = PathBuf::from(
            String::from_utf8(
                Command::new("mktemp")
                    .args(["-d", "/tmp/orcaops-chaos-XXXXXX"])
                    .output()
                    .expect("mktemp runs")
                    .stdout,
            )
            .unwrap()
            .trim(),
        );
        std::fs::write(root.join("daemon.json"), "{}").unwrap();
        let mut daemon = PrivateDockerd {
            root,
            child: None,
            starts: 0,
        };
        let main_bridge = Path::new("/sys/class/net/docker0");
        let had_docker0 = main_bridge.exists();
        daemon.start_again();
        daemon.stop(Stop::Term);
        daemon.start_again();
        assert!(
            !had_docker0 || main_bridge.exists(),
            "starting the private dockerd (twice) removed the main daemon's docker0"
        );
        daemon.import_busybox();
        daemon
    }

    /// `unix://…/docker.sock`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.root.join("docker.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    /// Starts the daemon (again) on the same directories and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "the private dockerd is already running"
        );
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("dockerd.log"))
            .unwrap();
        let r = &self.root;
        // In a network namespace of its own: a second dockerd in the machine's namespace
        // deletes or takes over the main daemon's `docker0` (with `--bridge=none` it
        // deletes it at start; with a bridge of its own, at its next start), and every
        // bridged container of the main daemon then fails to start.
        let child = Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                "ip link set lo up && exec dockerd \"$@\"",
                "sh",
            ])
            .arg("-H")
            .arg(self.host())
            .arg("--data-root")
            .arg(r.join("root"))
            .arg("--exec-root")
            .arg(r.join("exec"))
            .arg("--pidfile")
            .arg(r.join("docker.pid"))
            .arg("--config-file")
            .arg(r.join("daemon.json"))
            // No iptables rules, and addresses the main daemon does not use, though the
            // namespace keeps both apart already.
            .args(["--iptables=false", "--ip-masq=false"])
            .args(["--default-address-pool", "base=10.231.0.0/16,size=24"])
            .args(["--containerd-namespace", "orcaops-chaos"])
            .args(["--containerd-plugins-namespace", "orcaops-chaos-plugins"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd starts (through `unshare` from util-linux)");
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the private dockerd exited ({status}) at start; its log:\n{}",
                    tail(&self.log(), 30)
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "the private dockerd did not answer within {START_TIMEOUT:?}; its log:\n{}",
                tail(&self.log(), 30)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether `docker info` answers (within 10 s).
    pub fn answers(&self) -> bool {
        self.docker_within(&["info", "--format", "{{.ID}}"], Duration::from_secs(10))
            .is_some_and(|o| o.status.success())
    }

    /// Stops the daemon as `how` says and waits until it has exited.
    pub fn stop(&mut self, how: Stop) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let signal = match how {
            Stop::Term => "-TERM",
            Stop::Kill => "-KILL",
        };
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        // Docker gives containers 15 s to stop on SIGTERM, then needs a little more.
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(40) {
                child.kill().ok();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Its containerd dies with it (parent-death signal), a moment later; a daemon
        // started before that would adopt the dying one and fail.
        let containerd = std::fs::read_to_string(self.root.join("exec/containerd/containerd.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        if let Some(pid) = containerd {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let started = Instant::now();
            while proc.exists() && started.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // A dead daemon leaves its socket file: make sure nothing connects to a stale one.
        let _ = std::fs::remove_file(self.socket());
    }

    /// The docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_within(args, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("docker {args:?} did not answer within 60 s"))
    }

    /// The docker CLI against this daemon, or None when it did not exit within `limit`.
    pub fn docker_within(&self, args: &[&str], limit: Duration) -> Option<Output> {
        let child = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the docker CLI runs");
        let pid = child.id();
        // Read its output while waiting: a full pipe would stall it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        match rx.recv_timeout(limit) {
            Ok(output) => Some(output.expect("docker runs")),
            Err(_) => {
                Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status()
                    .ok();
                None
            }
        }
    }

    /// The lines `docker` printed, failing the test if it failed.
    pub fn docker_lines(&self, args: &[&str]) -> Vec<String> {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }

    /// Everything orcaops made on this daemon: `kind name` of each container, network
    /// and volume labelled `orcaops.dev/kind`.
    pub fn orcaops_leftovers(&self) -> Vec<String> {
        let filter = "label=orcaops.dev/kind";
        let mut left = Vec::new();
        for (what, args) in [
            (
                "container",
                vec![
                    "ps",
                    "-a",
                    "--filter",
                    filter,
                    "--format",
                    "{{.Names}} {{.Status}}",
                ],
            ),
            (
                "network",
                vec!["network", "ls", "--filter", filter, "--format", "{{.Name}}"],
            ),
            (
                "volume",
                vec!["volume", "ls", "--filter", filter, "--format", "{{.Name}}"],
            ),
        ] {
            left.extend(
                self.docker_lines(&args)
                    .into_iter()
                    .map(|l| format!("{what} {l}")),
            );
        }
        left
    }

    /// The busybox image as scripts/setup.sh builds it: /bin/busybox and its applets,
    /// `docker import`ed.
    fn import_busybox(&self) {
        assert!(
            Path::new("/bin/busybox").is_file(),
            "the chaos suite builds busybox:latest from /bin/busybox: install busybox-static (./scripts/setup.sh does)"
        );
        let script = r#"set -e
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/work"
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["sh"]' - busybox:latest >/dev/null
"#;
        let out = Command::new("sh")
            .args(["-c", script])
            .env("DOCKER_HOST", self.host())
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "importing busybox:latest into the private dockerd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Ends every process whose command line names this daemon's directory (containerd
    /// and the shims it started), by pid.
    fn end_leftover_processes(&self) {
        let me = self.root.to_string_lossy().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&me) {
                Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status()
                    .ok();
            }
        }
    }

    /// Unmounts everything mounted under the daemon's directory, deepest first.
    fn unmount_all(&self) {
        let me = self.root.to_string_lossy().to_string();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|p| p.starts_with(&me))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            Command::new("umount")
                .args(["-l", point])
                .stderr(Stdio::null())
                .status()
                .ok();
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            let all = self
                .docker_within(&["ps", "-aq"], Duration::from_secs(20))
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            let ids: Vec<&str> = all.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker_within(&args, Duration::from_secs(120));
            }
            self.stop(Stop::Term);
        }
        self.end_leftover_processes();
        std::thread::sleep(Duration::from_millis(300));
        self.unmount_all();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
