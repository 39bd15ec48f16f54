//! The sandbox primitives of the Docker runtime against a real Docker daemon:
//! service containers, networks, volumes, exec, files, probes, the activity check.
//!
//! Needs Docker and the local `busybox:latest` image; both come from
//! `scripts/setup.sh`. Without them these tests fail, saying so. Every container,
//! network and volume is labelled with its test's id and removed at the end of the
//! test, whether it passed or not.

mod common;

use common::docker::{Scratch, TEST_LABEL, scratch_test as sandbox_test};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use orcaops::runtime::sandbox::{
    ExecChunk, ExecOutput, ExecRequest, PathKind, Probe, ServiceContainerSpec, ServiceNetwork,
    TIMED_OUT_EXIT_CODE,
};
use orcaops::runtime::{ContainerInfo, ContainerState, RuntimeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IMAGE: &str = "busybox:latest";
/// How long a condition that should become true may take (a server starting).
const SETTLE: Duration = Duration::from_secs(10);

impl Scratch {
    /// A unique name for a container, network or volume of this test.
    fn name(&self, purpose: &str) -> String {
        format!("orcaops-sbtest-{}-{purpose}", self.id)
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(TEST_LABEL.to_string(), self.id.clone())])
    }

    /// A service running `command` with no network, with this test's label.
    fn service(&self, purpose: &str, command: &[&str]) -> ServiceContainerSpec {
        ServiceContainerSpec {
            name: self.name(purpose),
            image: IMAGE.into(),
            command: command.iter().map(|arg| arg.to_string()).collect(),
            env: Vec::new(),
            working_dir: None,
            labels: self.labels(),
            cpu_millis: None,
            memory_bytes: None,
            network: ServiceNetwork::None,
            ports: Vec::new(),
            volumes: Vec::new(),
            pids_limit: 256,
        }
    }

    /// A running service that does nothing (something to exec into).
    async fn idle(&self, purpose: &str) -> ContainerInfo {
        self.start(&self.service(purpose, &["sleep", "3600"])).await
    }

    async fn start(&self, spec: &ServiceContainerSpec) -> ContainerInfo {
        self.runtime.create_service(spec).await.unwrap()
    }

    async fn sh(&self, container: &str, script: &str) -> ExecOutput {
        self.runtime
            .exec(container, &shell(script))
            .await
            .unwrap_or_else(|error| panic!("exec {script:?}: {error}"))
    }

    /// Stdout of a script that must succeed.
    async fn sh_ok(&self, container: &str, script: &str) -> String {
        let output = self.sh(container, script).await;
        assert_eq!(output.exit_code, 0, "{script:?}: {output:?}");
        text(&output.stdout)
    }

    /// Polls `probe` until it passes; false if it never does within [`SETTLE`].
    async fn eventually(&self, container: &str, probe: &Probe) -> bool {
        let started = Instant::now();
        while started.elapsed() < SETTLE {
            if self
                .runtime
                .probe(container, probe, Duration::from_secs(2))
                .await
                .unwrap()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

fn shell(script: &str) -> ExecRequest {
    ExecRequest {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn all_byte_values(times: usize) -> Bytes {
    Bytes::from((0..=255u8).cycle().take(256 * times).collect::<Vec<_>>())
}

/// `GET path` over HTTP/1.0: (status code, body).
async fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
}

#[tokio::test]
async fn services_on_a_private_network_reach_each_other_by_alias_and_nothing_else() {
    sandbox_test(|t| async move {
        let network = t.name("net");
        t.runtime
            .ensure_network(&network, &t.labels())
            .await
            .unwrap();
        // Idempotent: the second call finds it (and never makes a twin).
        t.runtime
            .ensure_network(&network, &t.labels())
            .await
            .unwrap();
        // Concurrent ensures of a new name: Docker 20.10 would make twins, the
        // losers remove theirs.
        let raced = t.name("raced");
        let labels = t.labels();
        let ensures = (0..4).map(|_| t.runtime.ensure_network(&raced, &labels));
        for ensured in futures::future::join_all(ensures).await {
            ensured.unwrap();
        }
        let listed = t
            .runtime
            .list_networks(&[(TEST_LABEL, &t.id)])
            .await
            .unwrap();
        let mut expected = vec![network.clone(), raced.clone()];
        expected.sort();
        assert_eq!(listed, expected);
        t.runtime.remove_network(&raced).await.unwrap();
        let on_network = |purpose: &str, alias: &str, command: &[&str]| {
            let mut spec = t.service(purpose, command);
            spec.network = ServiceNetwork::Private {
                network: network.clone(),
                aliases: vec![alias.into()],
            };
            spec
        };
        let mut web_spec = on_network("web", "web", &["httpd", "-f", "-p", "8080", "-h", "/www"]);
        web_spec.working_dir = Some("/www".into());
        let web = t.start(&web_spec).await;
        let client = t
            .start(&on_network("client", "client", &["sleep", "3600"]))
            .await;
        t.runtime
            .write_file(
                &web.id,
                "/www/index.html",
                Bytes::from_static(b"hello from web\n"),
                0o644,
            )
            .await
            .unwrap();
        let http = Probe::Http {
            port: 8080,
            path: "/".into(),
        };
        assert!(t.eventually(&web.id, &http).await, "web never served");
        assert_eq!(
            t.sh_ok(&client.id, "wget -q -O - http://web:8080/").await,
            "hello from web\n"
        );
        // A path that is not there fails the probe (404).
        let missing = Probe::Http {
            port: 8080,
            path: "/nope".into(),
        };
        assert!(
            !t.runtime
                .probe(&web.id, &missing, Duration::from_secs(2))
                .await
                .unwrap()
        );
        // Nothing listens on the client: connection refused is a failed check.
        assert!(
            !t.runtime
                .probe(&client.id, &http, Duration::from_secs(2))
                .await
                .unwrap()
        );
        // Internal: a server outside the network (on the default bridge, where the
        // host reaches it) is out of reach from inside.
        let mut outside_spec = t.service("outside", &["httpd", "-f", "-p", "8080"]);
        outside_spec.network = ServiceNetwork::Bridge;
        let outside = t.start(&outside_spec).await;
        assert!(t.eventually(&outside.id, &Probe::Tcp { port: 8080 }).await);
        let outside_ip = t.sh_ok(&outside.id, "hostname -i").await;
        let outside_ip = outside_ip.trim();
        assert_eq!(http_get(&format!("{outside_ip}:8080"), "/").await.0, 404);
        let reach = t
            .sh(&client.id, &format!("echo | nc -w 1 {outside_ip} 8080"))
            .await;
        assert_ne!(reach.exit_code, 0, "{reach:?}");
        // A network with containers on it cannot go; without them it can, twice.
        assert!(t.runtime.remove_network(&network).await.is_err());
        t.runtime.remove(&web.id).await.unwrap();
        t.runtime.remove(&client.id).await.unwrap();
        t.runtime.remove_network(&network).await.unwrap();
        t.runtime.remove_network(&network).await.unwrap();
        assert!(
            t.runtime
                .list_networks(&[(TEST_LABEL, &t.id)])
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn published_ports_are_reachable_from_the_host_on_loopback() {
    sandbox_test(|t| async move {
        let mut spec = t.service("published", &["httpd", "-f", "-p", "8080", "-h", "/www"]);
        spec.working_dir = Some("/www".into());
        spec.network = ServiceNetwork::Bridge;
        spec.ports = vec![8080];
        let web = t.start(&spec).await;
        t.runtime
            .write_file(
                &web.id,
                "/www/index.html",
                Bytes::from_static(b"published\n"),
                0o644,
            )
            .await
            .unwrap();
        assert!(t.eventually(&web.id, &Probe::Tcp { port: 8080 }).await);
        let ports = t.runtime.published_ports(&web.id).await.unwrap();
        assert_eq!(ports.len(), 1, "{ports:?}");
        assert_eq!(ports[0].container_port, 8080);
        assert_eq!(ports[0].host_ip, "127.0.0.1");
        assert_ne!(ports[0].host_port, 0);
        let address = format!("127.0.0.1:{}", ports[0].host_port);
        assert_eq!(http_get(&address, "/").await, (200, "published\n".into()));
        assert!(
            t.runtime
                .probe(
                    &web.id,
                    &Probe::Http {
                        port: 8080,
                        path: "/".into()
                    },
                    Duration::from_secs(2)
                )
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn network_none_has_only_loopback_and_the_image_command_is_kept_when_none_is_given() {
    sandbox_test(|t| async move {
        let service = t.idle("none").await;
        let interfaces = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
        assert_eq!(t.sh_ok(&service.id, interfaces).await, "lo\n");
        // busybox's own command is `sh`: with no command given it runs (and, with no
        // stdin, exits at once), proving the image's entrypoint and command were kept.
        let image_default = t
            .runtime
            .create_service(&t.service("default-cmd", &[]))
            .await
            .unwrap();
        let code = t.runtime.wait(&image_default.id).await.unwrap();
        assert_eq!(code, 0);
        assert!(
            t.runtime
                .published_ports(&service.id)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn create_service_adopts_and_a_restart_keeps_volume_data() {
    sandbox_test(|t| async move {
        let volume = t.name("data");
        t.runtime.ensure_volume(&volume, &t.labels()).await.unwrap();
        t.runtime.ensure_volume(&volume, &t.labels()).await.unwrap();
        assert_eq!(
            t.runtime
                .list_volumes(&[(TEST_LABEL, &t.id)])
                .await
                .unwrap(),
            std::slice::from_ref(&volume)
        );
        let mut spec = t.service("volume", &["sleep", "3600"]);
        spec.volumes = vec![(volume.clone(), "/data".into())];
        let first = t.start(&spec).await;
        assert_eq!(first.state, ContainerState::Running);
        t.sh_ok(&first.id, "echo kept > /data/file").await;
        // Running: adopted as is.
        let again = t.start(&spec).await;
        assert_eq!(again.id, first.id);
        assert_eq!(again.state, ContainerState::Running);
        // Stopped: start_container brings it back with its volume.
        t.runtime.stop(&first.id, 0).await.unwrap();
        assert!(matches!(
            t.runtime.exec(&first.id, &shell("true")).await,
            Err(RuntimeError::ContainerNotRunning { .. })
        ));
        t.runtime.start_container(&first.id).await.unwrap();
        t.runtime.start_container(&first.id).await.unwrap();
        assert_eq!(t.sh_ok(&first.id, "cat /data/file").await, "kept\n");
        // Stopped again: create_service adopts it and starts it.
        t.runtime.stop(&first.id, 0).await.unwrap();
        let adopted = t.start(&spec).await;
        assert_eq!(adopted.id, first.id);
        assert_eq!(adopted.state, ContainerState::Running);
        assert_eq!(
            t.runtime
                .read_file(&first.id, "/data/file", 100)
                .await
                .unwrap(),
            Bytes::from_static(b"kept\n")
        );
        // A volume in use cannot go; once free it can, and twice is fine.
        assert!(t.runtime.remove_volume(&volume).await.is_err());
        t.runtime.remove(&first.id).await.unwrap();
        t.runtime.remove_volume(&volume).await.unwrap();
        t.runtime.remove_volume(&volume).await.unwrap();
        assert!(
            t.runtime
                .list_volumes(&[(TEST_LABEL, &t.id)])
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn exec_passes_stdin_env_and_working_dir_and_reports_exit_codes() {
    sandbox_test(|t| async move {
        let service = t.idle("exec").await;
        let echo = ExecRequest {
            command: vec!["cat".into()],
            stdin: Some(Bytes::from_static(b"line one\nno newline")),
            ..Default::default()
        };
        let output = t.runtime.exec(&service.id, &echo).await.unwrap();
        assert_eq!(output.stdout, Bytes::from_static(b"line one\nno newline"));
        assert_eq!((output.exit_code, output.timed_out), (0, false));
        let request = ExecRequest {
            env: vec![("GREETING".into(), "a 'b' $c".into())],
            working_dir: Some("/tmp".into()),
            ..shell("echo \"$GREETING\"; pwd; echo oops >&2; exit 3")
        };
        let output = t.runtime.exec(&service.id, &request).await.unwrap();
        assert_eq!(text(&output.stdout), "a 'b' $c\n/tmp\n");
        assert_eq!(text(&output.stderr), "oops\n");
        assert_eq!(output.exit_code, 3);
        // Every exec carries its own marker; a caller cannot override it.
        let marked = ExecRequest {
            env: vec![("ORCAOPS_EXEC".into(), "forged".into())],
            ..shell("echo $ORCAOPS_EXEC")
        };
        let first = text(&t.runtime.exec(&service.id, &marked).await.unwrap().stdout);
        let second = text(&t.runtime.exec(&service.id, &marked).await.unwrap().stdout);
        assert_eq!(first.trim().len(), 32, "{first:?}");
        assert_ne!(first, second);
        // A command that does not exist: Docker's reason on stderr, not an error.
        let missing = ExecRequest {
            command: vec!["no-such-command".into()],
            ..Default::default()
        };
        let output = t.runtime.exec(&service.id, &missing).await.unwrap();
        assert!(matches!(output.exit_code, 126 | 127), "{output:?}");
        assert!(
            text(&output.stderr).contains("no-such-command"),
            "{output:?}"
        );
        assert!(output.stdout.is_empty());
        // A container that does not exist.
        assert!(matches!(
            t.runtime.exec(&t.name("ghost"), &shell("true")).await,
            Err(RuntimeError::ContainerNotFound { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn exec_collects_ten_megabytes_of_output_exactly() {
    sandbox_test(|t| async move {
        let service = t.idle("big").await;
        let started = Instant::now();
        let output = t
            .sh(
                &service.id,
                "head -c 10485760 /dev/zero | tr '\\0' a; echo done >&2",
            )
            .await;
        let elapsed = started.elapsed();
        assert_eq!(output.exit_code, 0);
        assert_eq!(output.stdout.len(), 10 * 1024 * 1024);
        assert!(output.stdout.iter().all(|byte| *byte == b'a'));
        assert_eq!(text(&output.stderr), "done\n");
        assert!(elapsed < Duration::from_secs(10), "10 MB took {elapsed:?}");
    })
    .await;
}

#[tokio::test]
async fn binary_data_round_trips_through_stdin_stdout_and_files() {
    sandbox_test(|t| async move {
        let service = t.idle("binary").await;
        let data = all_byte_values(4096); // 1 MiB, every byte value
        let request = ExecRequest {
            command: vec!["cat".into()],
            stdin: Some(data.clone()),
            ..Default::default()
        };
        let output = t.runtime.exec(&service.id, &request).await.unwrap();
        assert_eq!(output.exit_code, 0);
        assert!(output.stdout == data, "stdout differs from stdin");
        t.runtime
            .write_file(&service.id, "/tmp/bytes.bin", data.clone(), 0o600)
            .await
            .unwrap();
        let read = t
            .runtime
            .read_file(&service.id, "/tmp/bytes.bin", 1 << 20)
            .await
            .unwrap();
        assert!(read == data, "read_file differs from write_file");
        let catted = t.sh(&service.id, "cat /tmp/bytes.bin").await;
        assert!(catted.stdout == data, "the file in the container differs");
        // And on stderr.
        let stderr = t.sh(&service.id, "cat /tmp/bytes.bin >&2").await;
        assert!(stderr.stderr == data && stderr.stdout.is_empty());
    })
    .await;
}

#[tokio::test]
async fn twenty_execs_in_parallel_each_get_their_own_output() {
    sandbox_test(|t| async move {
        let service = t.idle("parallel").await;
        let runs = (0..20).map(|i| {
            let request = ExecRequest {
                stdin: Some(Bytes::from(format!("input {i}\n"))),
                env: vec![("N".into(), i.to_string())],
                ..shell("read line; i=0; while [ $i -lt 200 ]; do echo \"$N $line $i\"; i=$((i+1)); done; exit $N")
            };
            let runtime = t.runtime.clone();
            let container = service.id.clone();
            async move { (i, runtime.exec(&container, &request).await.unwrap()) }
        });
        for (i, output) in futures::future::join_all(runs).await {
            assert_eq!(output.exit_code, i64::from(i));
            let expected: String = (0..200).map(|n| format!("{i} input {i} {n}\n")).collect();
            assert_eq!(text(&output.stdout), expected, "exec {i}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_timeout_kills_the_exec_and_what_it_started() {
    sandbox_test(|t| async move {
        let service = t.idle("timeout").await;
        let request = ExecRequest {
            timeout: Some(Duration::from_millis(500)),
            ..shell("echo started; sleep 30 & sleep 31; echo never")
        };
        let started = Instant::now();
        let output = t.runtime.exec(&service.id, &request).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(output.exit_code, TIMED_OUT_EXIT_CODE);
        assert!(output.timed_out);
        assert_eq!(text(&output.stdout), "started\n");
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
        // Both sleeps are gone: nothing started by an exec is left.
        assert_eq!(t.runtime.exec_processes(&service.id).await.unwrap(), 0);
        let left = t
            .sh_ok(&service.id, "ps -o args | grep -c '^sleep 3[01]$' || true")
            .await;
        assert_eq!(left.trim(), "0");
        // Fast commands are not affected by a timeout.
        let quick = ExecRequest {
            timeout: Some(Duration::from_secs(5)),
            ..shell("echo quick")
        };
        let output = t.runtime.exec(&service.id, &quick).await.unwrap();
        assert_eq!(
            (
                output.exit_code,
                output.timed_out,
                text(&output.stdout).as_str()
            ),
            (0, false, "quick\n")
        );
    })
    .await;
}

#[tokio::test]
async fn an_exec_session_is_interactive() {
    sandbox_test(|t| async move {
        let service = t.idle("session").await;
        let request =
            shell("while read line; do echo \"got $line\"; echo \"err $line\" >&2; done; exit 5");
        let mut session = t.runtime.exec_session(&service.id, &request).await.unwrap();
        assert_eq!(t.runtime.exec_exit_code(&session.id).await.unwrap(), None);
        for word in ["one", "two"] {
            session
                .input
                .write_all(format!("{word}\n").as_bytes())
                .await
                .unwrap();
            session.input.flush().await.unwrap();
            let (mut stdout, mut stderr) = (String::new(), String::new());
            while !stdout.ends_with('\n') || !stderr.ends_with('\n') {
                match session.output.next().await.unwrap().unwrap() {
                    ExecChunk::Stdout(bytes) => stdout.push_str(&text(&bytes)),
                    ExecChunk::Stderr(bytes) => stderr.push_str(&text(&bytes)),
                }
            }
            assert_eq!(
                (stdout, stderr),
                (format!("got {word}\n"), format!("err {word}\n"))
            );
        }
        session.input.shutdown().await.unwrap();
        let rest: Vec<ExecChunk> = session.output.try_collect().await.unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        assert_eq!(
            t.runtime.exec_exit_code(&session.id).await.unwrap(),
            Some(5)
        );
    })
    .await;
}

#[tokio::test]
async fn a_tty_session_is_resized_and_a_session_timeout_kills_it() {
    sandbox_test(|t| async move {
        let service = t.idle("tty").await;
        let request = ExecRequest {
            tty: true,
            ..shell("read go; stty size")
        };
        let mut session = t.runtime.exec_session(&service.id, &request).await.unwrap();
        t.runtime.exec_resize(&session.id, 100, 40).await.unwrap();
        session.input.write_all(b"go\n").await.unwrap();
        let chunks: Vec<ExecChunk> = session.output.try_collect().await.unwrap();
        let all: String = chunks
            .iter()
            .map(|chunk| match chunk {
                ExecChunk::Stdout(bytes) => text(bytes),
                ExecChunk::Stderr(_) => panic!("a tty merges stderr into stdout"),
            })
            .collect();
        assert!(all.contains("40 100"), "{all:?}");
        assert_eq!(
            t.runtime.exec_exit_code(&session.id).await.unwrap(),
            Some(0)
        );
        // A session with a timeout is killed when it passes.
        let request = ExecRequest {
            timeout: Some(Duration::from_millis(300)),
            ..shell("sleep 30")
        };
        let started = Instant::now();
        let session = t.runtime.exec_session(&service.id, &request).await.unwrap();
        let _: Vec<ExecChunk> = session.output.try_collect().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            t.runtime.exec_exit_code(&session.id).await.unwrap(),
            Some(137)
        );
    })
    .await;
}

#[tokio::test]
async fn files_are_written_extracted_downloaded_and_read() {
    sandbox_test(|t| async move {
        let service = t.idle("files").await;
        let id = service.id.as_str();
        // Parents are created; mode and content are kept.
        t.runtime
            .write_file(
                id,
                "/srv/deep/er/note.txt",
                Bytes::from_static(b"note\n"),
                0o640,
            )
            .await
            .unwrap();
        assert_eq!(
            t.sh_ok(id, "stat -c '%a %s' /srv/deep/er/note.txt").await,
            "640 5\n"
        );
        assert_eq!(
            t.runtime.path_kind(id, "/srv/deep").await.unwrap(),
            PathKind::Directory
        );
        assert_eq!(
            t.runtime
                .path_kind(id, "/srv/deep/er/note.txt")
                .await
                .unwrap(),
            PathKind::File
        );
        t.sh_ok(id, "ln -s /srv/deep/er/note.txt /srv/link").await;
        assert_eq!(
            t.runtime.path_kind(id, "/srv/link").await.unwrap(),
            PathKind::File
        );
        assert_eq!(
            t.runtime.read_file(id, "/srv/link", 5).await.unwrap(),
            Bytes::from_static(b"note\n")
        );
        assert!(matches!(
            t.runtime.path_kind(id, "/srv/missing").await,
            Err(RuntimeError::PathNotFound { .. })
        ));
        // Overwriting replaces the content.
        t.runtime
            .write_file(
                id,
                "/srv/deep/er/note.txt",
                Bytes::from_static(b"v2"),
                0o644,
            )
            .await
            .unwrap();
        assert_eq!(t.sh_ok(id, "cat /srv/deep/er/note.txt").await, "v2");
        // A tar extracted into a directory that does not exist yet.
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in [("a.txt", &b"A"[..]), ("sub/b.txt", &b"BB"[..])] {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, content).unwrap();
        }
        let archive = Bytes::from(builder.into_inner().unwrap());
        t.runtime
            .extract_tar(id, "/srv/new/dir", archive.clone())
            .await
            .unwrap();
        assert_eq!(
            t.sh_ok(id, "cat /srv/new/dir/a.txt /srv/new/dir/sub/b.txt")
                .await,
            "ABB"
        );
        // Again into the now existing directory.
        t.runtime
            .extract_tar(id, "/srv/new/dir", archive)
            .await
            .unwrap();
        // Downloaded as Docker's tar: the base name at the root.
        let downloaded: Vec<Bytes> = t
            .runtime
            .download_tar(id, "/srv/new")
            .try_collect()
            .await
            .unwrap();
        let downloaded = downloaded.concat();
        let mut names: Vec<String> = tar::Archive::new(&downloaded[..])
            .entries()
            .unwrap()
            .map(|entry| {
                entry
                    .unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "new/",
                "new/dir/",
                "new/dir/a.txt",
                "new/dir/sub/",
                "new/dir/sub/b.txt"
            ]
        );
        let missing: Result<Vec<Bytes>, _> = t
            .runtime
            .download_tar(id, "/srv/missing")
            .try_collect()
            .await;
        assert!(
            matches!(missing, Err(RuntimeError::PathNotFound { .. })),
            "{missing:?}"
        );
        // read_file: limits, directories, bad paths.
        t.runtime
            .write_file(id, "/srv/big", all_byte_values(8), 0o644)
            .await
            .unwrap();
        assert_eq!(
            t.runtime
                .read_file(id, "/srv/big", 2048)
                .await
                .unwrap()
                .len(),
            2048
        );
        let too_large = t.runtime.read_file(id, "/srv/big", 2047).await.unwrap_err();
        assert!(
            matches!(
                too_large,
                RuntimeError::TooLarge {
                    size: 2048,
                    limit: 2047,
                    ..
                }
            ),
            "{too_large}"
        );
        assert!(too_large.to_string().contains("/srv/big"), "{too_large}");
        assert!(matches!(
            t.runtime.read_file(id, "/srv/new", 1 << 20).await,
            Err(RuntimeError::NotAFile { .. })
        ));
        assert!(matches!(
            t.runtime
                .write_file(id, "relative.txt", Bytes::new(), 0o644)
                .await,
            Err(RuntimeError::InvalidPath { .. })
        ));
        assert!(matches!(
            t.runtime
                .write_file(id, "/srv/../etc/x", Bytes::new(), 0o644)
                .await,
            Err(RuntimeError::InvalidPath { .. })
        ));
        // Files work on a stopped container too.
        t.runtime.stop(id, 0).await.unwrap();
        t.runtime
            .write_file(id, "/srv/while-stopped", Bytes::from_static(b"s"), 0o644)
            .await
            .unwrap();
        assert_eq!(
            t.runtime
                .read_file(id, "/srv/while-stopped", 1)
                .await
                .unwrap(),
            Bytes::from_static(b"s")
        );
        assert!(matches!(
            t.runtime
                .read_file(&t.name("ghost"), "/etc/passwd", 1 << 20)
                .await,
            Err(RuntimeError::ContainerNotFound { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn probes_fail_before_the_server_starts_and_pass_after() {
    sandbox_test(|t| async move {
        // Network none: tcp reads the container's socket table from the host, http
        // falls back to wget inside the container.
        let service = t.idle("probes").await;
        let id = service.id.as_str();
        let timeout = Duration::from_secs(2);
        let exec = Probe::Exec(vec!["test".into(), "-f".into(), "/tmp/ready".into()]);
        let tcp = Probe::Tcp { port: 8080 };
        let http = Probe::Http {
            port: 8080,
            path: "index.html".into(),
        };
        for probe in [&exec, &tcp, &http] {
            assert!(
                !t.runtime.probe(id, probe, timeout).await.unwrap(),
                "{probe:?}"
            );
        }
        t.sh_ok(
            id,
            "mkdir -p /www && echo ok > /www/index.html && touch /tmp/ready",
        )
        .await;
        // httpd daemonizes; it carries the exec marker like anything an exec starts.
        t.sh_ok(id, "httpd -p 8080 -h /www").await;
        for probe in [&exec, &tcp, &http] {
            assert!(t.eventually(id, probe).await, "{probe:?}");
        }
        assert!(
            !t.runtime
                .probe(id, &Probe::Tcp { port: 8081 }, timeout)
                .await
                .unwrap()
        );
        let slow = Probe::Exec(vec!["sleep".into(), "30".into()]);
        let started = Instant::now();
        assert!(
            !t.runtime
                .probe(id, &slow, Duration::from_millis(300))
                .await
                .unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        // Probes are not activity: the daemonized httpd is the only exec process.
        assert_eq!(t.runtime.exec_processes(id).await.unwrap(), 1);
        // A stopped container fails every probe.
        t.runtime.stop(id, 0).await.unwrap();
        for probe in [&exec, &tcp, &http] {
            assert!(
                !t.runtime.probe(id, probe, timeout).await.unwrap(),
                "{probe:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn exec_processes_counts_what_execs_left_running() {
    sandbox_test(|t| async move {
        let service = t.idle("activity").await;
        let id = service.id.as_str();
        assert_eq!(t.runtime.exec_processes(id).await.unwrap(), 0);
        let pid = t.sh_ok(id, "sleep 30 >/dev/null 2>&1 & echo $!").await;
        assert_eq!(t.runtime.exec_processes(id).await.unwrap(), 1);
        t.sh_ok(id, "sleep 30 >/dev/null 2>&1 & sleep 30 >/dev/null 2>&1 &")
            .await;
        assert_eq!(t.runtime.exec_processes(id).await.unwrap(), 3);
        t.sh_ok(id, &format!("kill -9 {}", pid.trim())).await;
        assert_eq!(t.runtime.exec_processes(id).await.unwrap(), 2);
        // The container's own processes never count.
        t.runtime.stop(id, 0).await.unwrap();
        assert_eq!(t.runtime.exec_processes(id).await.unwrap(), 0);
        t.runtime.start_container(id).await.unwrap();
        assert_eq!(t.runtime.exec_processes(id).await.unwrap(), 0);
        assert!(matches!(
            t.runtime.exec_processes(&t.name("ghost")).await,
            Err(RuntimeError::ContainerNotFound { .. })
        ));
    })
    .await;
}

#[tokio::test]
async fn rename_container_is_idempotent() {
    sandbox_test(|t| async move {
        let service = t.idle("before").await;
        let new_name = t.name("after");
        t.runtime
            .rename_container(&service.id, &new_name)
            .await
            .unwrap();
        t.runtime
            .rename_container(&service.id, &new_name)
            .await
            .unwrap();
        let renamed = t.runtime.inspect(&service.id).await.unwrap().unwrap();
        assert_eq!(renamed.name, new_name);
        assert!(
            t.runtime
                .inspect(&t.name("before"))
                .await
                .unwrap()
                .is_none()
        );
        // A name that is taken is refused.
        let other = t.idle("other").await;
        assert!(
            t.runtime
                .rename_container(&other.id, &new_name)
                .await
                .is_err()
        );
        assert!(matches!(
            t.runtime.rename_container(&t.name("ghost"), "x").await,
            Err(RuntimeError::ContainerNotFound { .. })
        ));
    })
    .await;
}
