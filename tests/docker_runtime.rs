//! The Docker runtime and the step runner against a real Docker daemon.
//!
//! Needs Docker and the local `busybox:latest` image; both come from
//! `scripts/setup.sh`. Without them these tests fail, saying so.
//! Every container is labelled with its test's id and removed at the end of
//! the test, whether it passed or not.

mod common;

use common::docker::{Scratch, TEST_LABEL, scratch_test as docker_test};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use orcaops::resources::job::Step;
use orcaops::runtime::runner::{RunnerParser, StepProgress, new_nonce, runner_command};
use orcaops::runtime::{
    ContainerSpec, ContainerState, DockerRuntime, LogLine, LogStream, NetworkMode, RuntimeError,
};

const IMAGE: &str = "busybox:latest";

impl Scratch {
    /// A spec with a unique name and this test's label.
    fn spec(&self, purpose: &str, command: Vec<String>) -> ContainerSpec {
        ContainerSpec {
            name: format!("orcaops-test-{}-{purpose}", self.id),
            image: IMAGE.into(),
            command,
            env: Vec::new(),
            working_dir: None,
            labels: BTreeMap::from([(TEST_LABEL.to_string(), self.id.clone())]),
            cpu_millis: None,
            memory_bytes: None,
            network: NetworkMode::None,
            pids_limit: 256,
            user: None,
            read_only_root: false,
        }
    }

    fn shell(&self, purpose: &str, script: &str) -> ContainerSpec {
        self.spec(purpose, vec!["/bin/sh".into(), "-c".into(), script.into()])
    }

    /// Runs `spec` to completion: its id, exit code and whole log.
    async fn run(&self, spec: &ContainerSpec) -> (String, i64, Vec<LogLine>) {
        let info = self.runtime.create_and_start(spec).await.unwrap();
        let code = self.runtime.wait(&info.id).await.unwrap();
        let lines = self
            .runtime
            .logs(&info.id, false)
            .try_collect()
            .await
            .unwrap();
        (info.id, code, lines)
    }

    /// Runs `steps` through the runner: exit code, per-step progress, and
    /// per-step output (stdout and stderr lines, in order per stream).
    async fn run_steps(&self, purpose: &str, steps: &[Step]) -> StepRun {
        self.run_steps_with(self.spec(purpose, Vec::new()), steps)
            .await
    }

    async fn run_steps_with(&self, mut spec: ContainerSpec, steps: &[Step]) -> StepRun {
        let nonce = new_nonce();
        spec.command = runner_command(steps, &nonce);
        let (_, code, lines) = self.run(&spec).await;
        StepRun::parse(code, &nonce, steps.len(), &lines)
    }
}

#[derive(Debug)]
struct StepRun {
    code: i64,
    progress: Vec<StepProgress>,
    /// Output before the first marker (index 0), then each step's.
    stdout: Vec<Vec<String>>,
    stderr: Vec<Vec<String>>,
}

impl StepRun {
    fn parse(code: i64, nonce: &str, step_count: usize, lines: &[LogLine]) -> Self {
        let mut parser = RunnerParser::new(nonce, step_count);
        let mut stdout = vec![Vec::new(); step_count + 1];
        let mut stderr = vec![Vec::new(); step_count + 1];
        for line in lines {
            if let Some((step, text)) = parser.push(line) {
                let slot = step.map_or(0, |index| index + 1);
                match line.stream {
                    LogStream::Stdout => stdout[slot].push(text),
                    LogStream::Stderr => stderr[slot].push(text),
                }
            }
        }
        Self {
            code,
            progress: parser.steps().to_vec(),
            stdout,
            stderr,
        }
    }

    fn out(&self, step: usize) -> Vec<&str> {
        self.stdout[step + 1].iter().map(String::as_str).collect()
    }

    fn err(&self, step: usize) -> Vec<&str> {
        self.stderr[step + 1].iter().map(String::as_str).collect()
    }

    fn exit_codes(&self) -> Vec<Option<i64>> {
        self.progress.iter().map(|step| step.exit_code).collect()
    }
}

fn run(script: &str) -> Step {
    Step {
        name: "run".into(),
        run: Some(script.into()),
        command: None,
    }
}

fn command(args: &[&str]) -> Step {
    Step {
        name: "command".into(),
        run: None,
        command: Some(args.iter().map(|arg| arg.to_string()).collect()),
    }
}

fn texts(lines: &[LogLine], stream: LogStream) -> Vec<&str> {
    lines
        .iter()
        .filter(|line| line.stream == stream)
        .map(|line| line.text.as_str())
        .collect()
}

#[tokio::test]
async fn runner_runs_steps_in_order_and_stops_at_the_first_failure() {
    docker_test(|t| async move {
        let steps = [
            run("echo one"),
            run("echo two; echo warning >&2"),
            run("echo three; exit 3"),
            run("echo four"),
        ];
        let result = t.run_steps("steps", &steps).await;
        assert_eq!(result.code, 3);
        assert_eq!(result.exit_codes(), [Some(0), Some(0), Some(3), None]);
        assert_eq!(result.out(0), ["one"]);
        assert_eq!(result.out(1), ["two"]);
        assert_eq!(result.err(1), ["warning"]);
        assert_eq!(result.out(2), ["three"]);
        assert!(result.out(3).is_empty());
        assert_eq!(result.progress[3], StepProgress::default());
        assert!(result.stdout[0].is_empty() && result.stderr[0].is_empty());
        for step in &result.progress[..3] {
            assert!(step.started_at.unwrap() <= step.finished_at.unwrap());
        }
        for pair in result.progress[..3].windows(2) {
            assert!(pair[0].finished_at.unwrap() <= pair[1].started_at.unwrap());
        }
    })
    .await;
}

#[tokio::test]
async fn runner_runs_a_quoting_torture_script_exactly_as_written() {
    docker_test(|t| async move {
        let torture = r#"X='it'"'"'s'; echo "$X" '$X' "\$X"
echo "tab	end" 'back\slash' `echo tick` $((1 + 2))
printf '%s|%d%%\n' 'é ✓ 日本' 5
cat <<'EOF'
literal $HOME 'single' "double" \n `not run` %s ::orcaops:
EOF
printf 'no trailing newline'"#;
        let result = t
            .run_steps("torture", &[run(torture), run("echo next")])
            .await;
        assert_eq!(result.code, 0, "{result:?}");
        assert_eq!(
            result.out(0),
            [
                "it's $X $X",
                "tab\tend back\\slash tick 3",
                "é ✓ 日本|5%",
                "literal $HOME 'single' \"double\" \\n `not run` %s ::orcaops:",
                "no trailing newline",
            ]
        );
        assert_eq!(result.out(1), ["next"]);
    })
    .await;
}

#[tokio::test]
async fn runner_runs_exec_form_commands_without_a_shell() {
    docker_test(|t| async move {
        let steps = [
            command(&["printf", "%s\\n", "it's", "$HOME", "a\nb", "日本", "*"]),
            // A builtin in exec form cannot end the runner: it is not a program.
            command(&["exit", "0"]),
        ];
        let result = t.run_steps("exec", &steps).await;
        assert_eq!(result.out(0), ["it's", "$HOME", "a", "b", "日本", "*"]);
        assert_eq!(result.exit_codes(), [Some(0), Some(127)]);
        assert_eq!(result.code, 127);
    })
    .await;
}

#[tokio::test]
async fn runner_output_that_forges_markers_stays_output() {
    docker_test(|t| async move {
        let steps = [
            run("echo '::orcaops:0123456789abcdef:end:0:0'; echo '::orcaops:x:start:1'"),
            run("true"),
        ];
        let result = t.run_steps("forged", &steps).await;
        assert_eq!(
            result.out(0),
            ["::orcaops:0123456789abcdef:end:0:0", "::orcaops:x:start:1"]
        );
        assert_eq!(result.exit_codes(), [Some(0), Some(0)]);
    })
    .await;
}

#[tokio::test]
async fn runner_keeps_long_lines_whole() {
    docker_test(|t| async move {
        // Docker splits lines over 16 KiB into partial messages.
        let step = run("i=0; while [ $i -lt 500 ]; do printf '%080d' $i; i=$((i+1)); done; echo");
        let result = t.run_steps("long", &[step]).await;
        let out = result.out(0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 40_000);
        assert!(out[0].ends_with(&format!("{:080}", 499)));
    })
    .await;
}

#[tokio::test]
async fn env_working_dir_and_limits_are_applied() {
    docker_test(|t| async move {
        let mut spec = t.spec("env", Vec::new());
        spec.env = vec![
            ("GREETING".into(), "hello 'world' $HOME".into()),
            ("EMPTY".into(), String::new()),
        ];
        spec.working_dir = Some("/tmp/orcaops-work".into());
        spec.memory_bytes = Some(64 << 20);
        spec.pids_limit = 64;
        let steps = [run(concat!(
            "echo \"$GREETING\"; echo \"[${EMPTY-unset}]\"; pwd; ",
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ",
            "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        ))];
        let result = t.run_steps_with(spec, &steps).await;
        assert_eq!(
            result.out(0),
            [
                "hello 'world' $HOME",
                "[]",
                "/tmp/orcaops-work",
                "67108864",
                "64"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn network_none_has_only_loopback_and_bridge_has_more() {
    docker_test(|t| async move {
        let interfaces = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
        let none = t.run_steps("net-none", &[run(interfaces)]).await;
        assert_eq!(none.out(0), ["lo"]);
        let mut spec = t.spec("net-bridge", Vec::new());
        spec.network = NetworkMode::Bridge;
        let bridge = t.run_steps_with(spec, &[run(interfaces)]).await;
        assert!(bridge.out(0).len() > 1, "{:?}", bridge.out(0));
    })
    .await;
}

#[tokio::test]
async fn capabilities_are_dropped_and_privileges_cannot_grow() {
    docker_test(|t| async move {
        let result = t
            .run_steps(
                "caps",
                &[run(
                    "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status",
                )],
            )
            .await;
        assert_eq!(
            result.out(0),
            [
                "CapPrm:\t0000000000000000",
                "CapEff:\t0000000000000000",
                "NoNewPrivs:\t1"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn user_and_read_only_root_are_applied_and_tmp_stays_writable() {
    docker_test(|t| async move {
        let spec = ContainerSpec {
            user: Some("1000:100".into()),
            read_only_root: true,
            ..t.spec("readonly", Vec::new())
        };
        let steps = [
            run("id -u; id -g"),
            run("cat <<EOF\nhere document\nEOF\necho scratch > /tmp/x && cat /tmp/x"),
            run("touch /root-write 2>/dev/null && echo wrote || echo refused"),
        ];
        let result = t.run_steps_with(spec, &steps).await;
        assert_eq!(result.code, 0, "{result:?}");
        assert_eq!(result.out(0), ["1000", "100"]);
        assert_eq!(result.out(1), ["here document", "scratch"]);
        assert_eq!(result.out(2), ["refused"]);
    })
    .await;
}

#[tokio::test]
async fn create_and_start_twice_adopts_the_first_container_and_never_reruns_it() {
    docker_test(|t| async move {
        let spec = t.shell("twice", "echo ran");
        let first = t.runtime.create_and_start(&spec).await.unwrap();
        let second = t.runtime.create_and_start(&spec).await.unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(first.name, spec.name);
        assert_eq!(first.label(TEST_LABEL), Some(t.id.as_str()));
        assert_eq!(t.runtime.wait(&first.id).await.unwrap(), 0);
        // Exited: adopting it again must not start it a second time.
        let third = t.runtime.create_and_start(&spec).await.unwrap();
        assert_eq!(third.id, first.id);
        assert_eq!(third.state, ContainerState::Exited { code: 0 });
        assert!(third.started_at.is_some() && third.finished_at.is_some());
        let lines: Vec<LogLine> = t
            .runtime
            .logs(&first.id, false)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(texts(&lines, LogStream::Stdout), ["ran"]);
        let listed = t.runtime.list(&[(TEST_LABEL, &t.id)]).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0], third);
    })
    .await;
}

#[tokio::test]
async fn list_matches_every_label() {
    docker_test(|t| async move {
        let mut a = t.shell("list-a", "true");
        a.labels.insert("orcaops.dev/name".into(), "a".into());
        let mut b = t.shell("list-b", "true");
        b.labels.insert("orcaops.dev/name".into(), "b".into());
        t.runtime.create_and_start(&a).await.unwrap();
        t.runtime.create_and_start(&b).await.unwrap();
        let both = t.runtime.list(&[(TEST_LABEL, &t.id)]).await.unwrap();
        assert_eq!(both.len(), 2);
        let only_b = t
            .runtime
            .list(&[(TEST_LABEL, &t.id), ("orcaops.dev/name", "b")])
            .await
            .unwrap();
        assert_eq!(only_b.len(), 1);
        assert_eq!(only_b[0].name, b.name);
    })
    .await;
}

#[tokio::test]
async fn logs_follow_ends_when_the_container_exits() {
    docker_test(|t| async move {
        let spec = t.shell("follow", "echo a; sleep 1; echo b >&2; printf c");
        let info = t.runtime.create_and_start(&spec).await.unwrap();
        let started = Instant::now();
        let lines: Vec<LogLine> = tokio::time::timeout(
            Duration::from_secs(20),
            t.runtime.logs(&info.id, true).try_collect(),
        )
        .await
        .expect("the followed log did not end after the container exited")
        .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(texts(&lines, LogStream::Stdout), ["a", "c"]);
        assert_eq!(texts(&lines, LogStream::Stderr), ["b"]);
        let after = t.runtime.inspect(&info.id).await.unwrap().unwrap();
        assert_eq!(after.state, ContainerState::Exited { code: 0 });
    })
    .await;
}

/// Regression: Docker 20.10 sometimes ends a followed log before the last
/// output that had no newline (`docker logs -f` loses it too).
#[tokio::test]
async fn logs_follow_keeps_the_last_output_without_newline() {
    docker_test(|t| async move {
        let runs = (0..8).map(|i| {
            let spec = t.shell(&format!("tail-{i}"), "echo a; sleep 0.5; printf tail");
            let runtime = t.runtime.clone();
            async move {
                let info = runtime.create_and_start(&spec).await.unwrap();
                let lines: Vec<LogLine> = runtime.logs(&info.id, true).try_collect().await.unwrap();
                texts(&lines, LogStream::Stdout)
                    .into_iter()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            }
        });
        for lines in futures::future::join_all(runs).await {
            assert_eq!(lines, ["a", "tail"]);
        }
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_daemon_says_how_to_start_one() {
    let error = DockerRuntime::connect_to("unix:///nonexistent/orcaops-test.sock")
        .await
        .unwrap_err();
    assert!(
        matches!(error, RuntimeError::Unreachable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/orcaops-test.sock"),
        "{message}"
    );
    assert!(message.contains("scripts/setup.sh"), "{message}");
}

#[tokio::test]
async fn copy_out_stores_a_file_and_a_directory() {
    docker_test(|t| async move {
        let script = concat!(
            "mkdir -p /out/dir/sub && printf 'artifact é\\n' > /out/report.txt && ",
            "seq 1 20000 >> /out/report.txt && echo nested > /out/dir/sub/file && ",
            "ln -s /out/report.txt /out/link && ln -s report.txt /out/relative && ",
            "sha256sum /out/report.txt"
        );
        let (id, code, lines) = t.run(&t.shell("copy", script)).await;
        assert_eq!(code, 0, "{lines:?}");
        let expected_sha = texts(&lines, LogStream::Stdout)[0]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let dest = tempfile::tempdir().unwrap();

        let file = t
            .runtime
            .copy_out(&id, "/out/report.txt", dest.path(), "report", 1 << 30)
            .await
            .unwrap();
        assert_eq!(file.path, dest.path().join("report"));
        assert!(!file.is_dir);
        assert_eq!(file.sha256, expected_sha);
        let content = std::fs::read(&file.path).unwrap();
        assert_eq!(file.size, content.len() as u64);
        assert!(content.starts_with("artifact é\n1\n2\n".as_bytes()));

        for (link, name) in [("/out/link", "link"), ("/out/relative", "relative")] {
            let followed = t
                .runtime
                .copy_out(&id, link, dest.path(), name, 1 << 30)
                .await
                .unwrap();
            assert_eq!(followed.sha256, expected_sha, "{link}");
        }

        let dir = t
            .runtime
            .copy_out(&id, "/out/dir", dest.path(), "dir", 1 << 30)
            .await
            .unwrap();
        assert!(dir.is_dir);
        assert_eq!(dir.path, dest.path().join("dir.tar"));
        assert_eq!(dir.size, std::fs::metadata(&dir.path).unwrap().len());
        let mut archive = tar::Archive::new(std::fs::File::open(&dir.path).unwrap());
        let mut files = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            files.insert(path, text);
        }
        assert_eq!(
            files.get("dir/sub/file").map(String::as_str),
            Some("nested\n")
        );

        let missing = t
            .runtime
            .copy_out(&id, "/out/nope", dest.path(), "nope", 1 << 30)
            .await
            .unwrap_err();
        assert!(
            matches!(&missing, RuntimeError::PathNotFound { path, .. } if path == "/out/nope"),
            "{missing}"
        );
    })
    .await;
}

#[tokio::test]
async fn ensure_image_names_an_image_that_cannot_be_had() {
    docker_test(|t| async move {
        let started = Instant::now();
        t.runtime.ensure_image(IMAGE).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        let image = "orcaops-test/does-not-exist:never";
        let error = t.runtime.ensure_image(image).await.unwrap_err();
        match &error {
            RuntimeError::ImageUnavailable {
                image: named,
                reason,
            } => {
                assert_eq!(named, image);
                assert!(!reason.is_empty());
            }
            other => panic!("expected ImageUnavailable, got {other:?}"),
        }
        assert!(error.to_string().contains(image));
    })
    .await;
}

#[tokio::test]
async fn stop_passes_sigterm_to_the_running_step_and_no_further_step_starts() {
    docker_test(|t| async move {
        let nonce = new_nonce();
        let steps = [run("echo started; sleep 300"), run("echo never")];
        let spec = t.spec("stop-runner", runner_command(&steps, &nonce));
        let info = t.runtime.create_and_start(&spec).await.unwrap();
        wait_for_output(&t.runtime, &info.id, "started").await;
        let started = Instant::now();
        t.runtime.stop(&info.id, 30).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stop took {:?}: SIGTERM did not reach the step",
            started.elapsed()
        );
        assert_eq!(t.runtime.wait(&info.id).await.unwrap(), 143);
        let lines: Vec<LogLine> = t.runtime.logs(&info.id, false).try_collect().await.unwrap();
        let result = StepRun::parse(143, &nonce, steps.len(), &lines);
        assert_eq!(result.exit_codes(), [Some(143), None]);
        assert!(result.out(1).is_empty());
        // Stopping again, or stopping and removing what is gone, is fine.
        t.runtime.stop(&info.id, 1).await.unwrap();
        t.runtime.remove(&info.id).await.unwrap();
        t.runtime.remove(&info.id).await.unwrap();
        t.runtime.stop(&info.id, 1).await.unwrap();
        assert_eq!(t.runtime.inspect(&info.id).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn stop_kills_a_process_that_ignores_sigterm_after_the_grace() {
    docker_test(|t| async move {
        // A command that ignores SIGTERM (Docker's init passes it on): only SIGKILL
        // ends it.
        let spec = t.spec(
            "stop-sleep",
            vec!["sh".into(), "-c".into(), "trap '' TERM; sleep 300".into()],
        );
        let info = t.runtime.create_and_start(&spec).await.unwrap();
        let started = Instant::now();
        t.runtime.stop(&info.id, 1).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(t.runtime.wait(&info.id).await.unwrap(), 137);
    })
    .await;
}

#[tokio::test]
async fn missing_containers_are_reported_as_such() {
    docker_test(|t| async move {
        let name = format!("orcaops-test-{}-absent", t.id);
        assert_eq!(t.runtime.inspect(&name).await.unwrap(), None);
        assert!(matches!(
            t.runtime.wait(&name).await,
            Err(RuntimeError::ContainerNotFound { .. })
        ));
        let logs: Vec<_> = t.runtime.logs(&name, false).collect().await;
        assert!(
            matches!(
                logs.as_slice(),
                [Err(RuntimeError::ContainerNotFound { .. })]
            ),
            "{logs:?}"
        );
        let dest = tempfile::tempdir().unwrap();
        assert!(matches!(
            t.runtime
                .copy_out(&name, "/etc", dest.path(), "etc", 1 << 30)
                .await,
            Err(RuntimeError::ContainerNotFound { .. })
        ));
    })
    .await;
}

async fn wait_for_output(runtime: &DockerRuntime, id: &str, text: &str) {
    let mut lines = Box::pin(runtime.logs(id, true));
    while let Some(line) = lines.next().await {
        if line.unwrap().text == text {
            return;
        }
    }
    panic!("{text:?} never appeared in the log of {id}");
}
