//! Artifact copy and release through a real WebSocket exec: a small server that speaks
//! the API server's `v5.channel.k8s.io` protocol (stdin on channel 0 until a close of
//! it, stdout on 1, stderr on 2, the exit `Status` on 3), since the tower-test mock
//! cannot upgrade a connection.

use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use super::*;
use crate::runtime::artifact::hex;
use crate::runtime::sandbox::SandboxIo;

const ID: &str = "team-a/orcaops-team-a-build-0123abcd-r1a1";

/// What one exec answers.
#[derive(Clone)]
pub(crate) struct Answer {
    stdout: Vec<u8>,
    stderr: String,
    /// `None`: the connection is dropped after stdin, before any status.
    status: Option<Value>,
    /// The command runs on, with no status, until the client goes away.
    runs_on: bool,
}

pub(crate) fn success(stdout: Vec<u8>) -> Answer {
    Answer {
        stdout,
        stderr: String::new(),
        status: Some(json!({"metadata": {}, "status": "Success"})),
        runs_on: false,
    }
}

pub(crate) fn exit_code(code: i64, stderr: &str) -> Answer {
    Answer {
        stdout: Vec::new(),
        stderr: stderr.to_string(),
        status: Some(json!({
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": format!("command terminated with non-zero exit code: {code}"),
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })),
        runs_on: false,
    }
}

/// Some output, then the connection drops: no status, no close handshake.
pub(crate) fn broken(stdout: &[u8]) -> Answer {
    Answer {
        stdout: stdout.to_vec(),
        stderr: String::new(),
        status: None,
        runs_on: false,
    }
}

/// Some output, then nothing: the command runs on until the client goes away (the
/// server keeps serving the next execs meanwhile).
pub(crate) fn running(stdout: &[u8]) -> Answer {
    Answer {
        runs_on: true,
        ..broken(stdout)
    }
}

/// What one exec asked for: the request's URI and what it wrote to stdin.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub uri: String,
    pub stdin: Vec<u8>,
}

/// The `v5.channel.k8s.io` message that closes channel 0: stdin is at its end.
const STDIN_CLOSED: [u8; 2] = [255, 0];

/// Serves one exec per answer, in order, as the API server does with protocol v5: an
/// exec with stdin first reads it to its end (the command, like `cat > file`, exits
/// only then); then the output, the status and a close; then it reads until the
/// client goes, so that nothing unread turns the close into a reset. Returns the
/// runtime and what each exec asked for.
pub(crate) async fn exec_server(answers: Vec<Answer>) -> (PodRuntime, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for answer in answers {
            let (stream, _) = listener.accept().await.unwrap();
            let uri = Arc::new(Mutex::new(String::new()));
            let asked = uri.clone();
            // The error type is tungstenite's, not ours to shrink.
            #[allow(clippy::result_large_err)]
            let callback = move |request: &Request, mut response: Response| {
                *asked.lock().unwrap() = request.uri().to_string();
                let offered = request
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                assert!(offered.contains("v5.channel.k8s.io"), "{offered}");
                response.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    "v5.channel.k8s.io".parse().unwrap(),
                );
                Ok(response)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
                .await
                .unwrap();
            let uri = uri.lock().unwrap().clone();
            let mut stdin = Vec::new();
            if uri.contains("stdin=true") {
                while let Some(Ok(message)) = ws.next().await {
                    match message {
                        Message::Binary(bytes) if bytes[..] == STDIN_CLOSED => break,
                        Message::Binary(bytes) if bytes.first() == Some(&0) => {
                            stdin.extend_from_slice(&bytes[1..]);
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
            }
            log.lock().unwrap().push(Seen { uri, stdin });
            let channel = |n: u8, bytes: &[u8]| {
                let mut message = vec![n];
                message.extend_from_slice(bytes);
                Message::Binary(message.into())
            };
            for chunk in answer.stdout.chunks(1000) {
                ws.send(channel(1, chunk)).await.unwrap();
            }
            if !answer.stderr.is_empty() {
                ws.send(channel(2, answer.stderr.as_bytes())).await.unwrap();
            }
            if answer.runs_on {
                tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
                continue;
            }
            let Some(status) = answer.status else {
                drop(ws);
                continue;
            };
            ws.send(channel(3, status.to_string().as_bytes()))
                .await
                .unwrap();
            let _ = ws.close(None).await;
            let rest = async { while let Some(Ok(_)) = ws.next().await {} };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), rest).await;
        }
    });
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    (PodRuntime::new(client), seen)
}

fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        match content {
            Some(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                header.set_mode(0o644);
                builder.append_data(&mut header, path, *content).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_mode(0o755);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

#[tokio::test]
async fn copy_out_stores_what_tar_writes_as_local_mode_stores_it() {
    let report = b"all good\n".repeat(300);
    let dir_tar = tar_of(&[("out", None), ("out/a.txt", Some(b"a"))]);
    let (runtime, seen) = exec_server(vec![
        success(tar_of(&[("report.txt", Some(&report))])),
        success(dir_tar.clone()),
        success(Vec::new()),
    ])
    .await;
    let dest = tempfile::tempdir().unwrap();
    let file = runtime
        .copy_out(ID, "/work/out/report.txt", dest.path(), "report", 1 << 30)
        .await
        .unwrap();
    let directory = runtime
        .copy_out(ID, "/work/out", dest.path(), "out", 1 << 30)
        .await
        .unwrap();
    runtime.release(ID).await.unwrap();

    // A file: unpacked, hashed as itself (as Docker's archive of it is).
    assert_eq!(file.path, dest.path().join("report"));
    assert_eq!(std::fs::read(&file.path).unwrap(), report);
    assert_eq!(file.size, report.len() as u64);
    assert_eq!(file.sha256, hex(&Sha256::digest(&report)));
    assert!(!file.is_dir);
    // A directory: the tar itself.
    assert_eq!(directory.path, dest.path().join("out.tar"));
    assert_eq!(directory.sha256, hex(&Sha256::digest(&dir_tar)));
    assert!(directory.is_dir);
    let mut names: Vec<String> = std::fs::read_dir(dest.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["out.tar", "report"], "no spool files left");

    let seen = seen.lock().unwrap();
    let path = "/api/v1/namespaces/team-a/pods/orcaops-team-a-build-0123abcd-r1a1/exec?";
    assert!(seen[0].uri.starts_with(path), "{}", seen[0].uri);
    assert!(
        seen[0].uri.contains("container=steps")
            && seen[0].uri.contains("command=tar&command=cf&command=-&command=-C&command=%2Fwork%2Fout&command=report.txt"),
        "{}",
        seen[0].uri
    );
    assert!(
        seen[2].uri.contains("command=%2Fbin%2Fsh&command=-c"),
        "{}",
        seen[2].uri
    );
}

#[tokio::test]
async fn a_missing_path_is_path_not_found_and_other_failures_say_why() {
    let (runtime, _) = exec_server(vec![
        exit_code(2, "tar: report.txt: Cannot stat: No such file or directory\ntar: Exiting with failure status due to previous errors\n"),
        exit_code(127, "exec: \"tar\": executable file not found in $PATH"),
    ])
    .await;
    let dest = tempfile::tempdir().unwrap();
    let missing = runtime
        .copy_out(ID, "/work/out/report.txt", dest.path(), "report", 1 << 30)
        .await;
    assert!(
        matches!(&missing, Err(RuntimeError::PathNotFound { path, .. }) if path == "/work/out/report.txt"),
        "{missing:?}"
    );
    let no_tar = runtime
        .copy_out(ID, "/work/out/report.txt", dest.path(), "report", 1 << 30)
        .await;
    let message = no_tar.unwrap_err().to_string();
    assert!(message.contains("executable file not found"), "{message}");
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}

/// An exec into a sandbox's service: the command wrapped with the marker, the
/// service's container, and stdout, stderr and the exit code collected as on Docker.
#[tokio::test]
async fn a_sandbox_exec_collects_output_and_the_exit_code() {
    use crate::runtime::sandbox::ExecRequest;
    let answer = Answer {
        stdout: b"out\n".to_vec(),
        stderr: "err\n".to_string(),
        ..exit_code(3, "")
    };
    let (runtime, seen) = exec_server(vec![answer, success(b"fine".to_vec())]).await;
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        env: vec![("A".into(), "1".into())],
        ..Default::default()
    };
    let output = runtime
        .sandbox_exec("team-a/orcaops-team-a-web-dev-0123abcd/web", &request)
        .await
        .unwrap();
    assert_eq!(output.exit_code, 3);
    assert_eq!(&output.stdout[..], b"out\n");
    assert_eq!(&output.stderr[..], b"err\n");
    assert!(!output.timed_out);
    let uri = seen.lock().unwrap()[0].uri.clone();
    assert!(
        uri.starts_with("/api/v1/namespaces/team-a/pods/orcaops-team-a-web-dev-0123abcd/exec?"),
        "{uri}"
    );
    assert!(uri.contains("container=web"), "{uri}");
    assert!(uri.contains("command=env"), "{uri}");
    assert!(uri.contains("command=A%3D1"), "{uri}");
    assert!(!uri.contains("stdin=true"), "{uri}");

    let ok = runtime
        .sandbox_exec(
            "team-a/orcaops-team-a-web-dev-0123abcd/web",
            &ExecRequest {
                command: vec!["true".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((ok.exit_code, &ok.stdout[..]), (0, &b"fine"[..]));
}

/// Reading a file of a sandbox's service: its bytes, or Docker's errors for a missing
/// path, a directory and a file over the limit.
#[tokio::test]
async fn a_sandbox_file_read_says_what_is_wrong_as_docker_does() {
    const WEB: &str = "team-a/orcaops-team-a-web-dev-0123abcd/web";
    let (runtime, seen) = exec_server(vec![
        success(b"hello\n".to_vec()),
        exit_code(4, ""),
        exit_code(3, ""),
        exit_code(5, "2048\n"),
    ])
    .await;
    let read = |path: &'static str| runtime.read_file(WEB, path, 1024);
    assert_eq!(&read("/etc/motd").await.unwrap()[..], b"hello\n");
    assert!(matches!(
        read("/nope").await,
        Err(RuntimeError::PathNotFound { .. })
    ));
    assert!(matches!(
        read("/etc").await,
        Err(RuntimeError::NotAFile { .. })
    ));
    assert!(matches!(
        read("/big").await,
        Err(RuntimeError::TooLarge {
            size: 2048,
            limit: 1024,
            ..
        })
    ));
    assert!(matches!(
        runtime.read_file(WEB, "relative", 10).await,
        Err(RuntimeError::InvalidPath { .. })
    ));
    let uri = seen.lock().unwrap()[0].uri.clone();
    assert!(uri.contains("command=%2Fetc%2Fmotd"), "{uri}");
    assert_eq!(seen.lock().unwrap().len(), 4, "no exec for a relative path");
}

/// A connection that breaks before the command's status is an error that says so, at
/// once: kube leaves the output pipes open then, and a read to their end never ends.
#[tokio::test]
async fn a_broken_connection_is_an_error_not_a_wait_or_a_success() {
    use crate::runtime::sandbox::ExecRequest;
    const WEB: &str = "team-a/orcaops-team-a-web-dev-0123abcd/web";
    let (runtime, seen) = exec_server(vec![
        broken(b"half of it"),
        broken(b""),
        broken(b"part of a tar"),
    ])
    .await;
    async fn within<T>(what: impl Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(20), what)
            .await
            .expect("a broken exec ends without waiting")
    }
    let exec = within(runtime.sandbox_exec(
        WEB,
        &ExecRequest {
            command: vec!["cat".into()],
            ..Default::default()
        },
    ))
    .await;
    let message = exec.unwrap_err().to_string();
    assert!(message.contains("broke"), "{message}");

    let write =
        within(runtime.write_file(WEB, "/work/a.txt", bytes::Bytes::from_static(b"hi"), 0o644))
            .await;
    assert!(matches!(write, Err(RuntimeError::Exec { .. })), "{write:?}");
    assert_eq!(seen.lock().unwrap()[1].stdin, b"hi");

    let dest = tempfile::tempdir().unwrap();
    let copy =
        within(runtime.copy_out(ID, "/work/out/report.txt", dest.path(), "report", 1 << 30)).await;
    assert!(matches!(copy, Err(RuntimeError::Exec { .. })), "{copy:?}");
    assert_eq!(
        std::fs::read_dir(dest.path()).unwrap().count(),
        0,
        "half an artifact is not kept"
    );
}

/// A sandbox exec past its timeout ends at its timeout, with the output so far, and
/// the command is killed by a second exec; it does not wait for the command to end.
#[tokio::test]
async fn a_sandbox_exec_past_its_timeout_is_killed_not_waited_for() {
    use crate::runtime::sandbox::{ExecRequest, TIMED_OUT_EXIT_CODE};
    const WEB: &str = "team-a/orcaops-team-a-web-dev-0123abcd/web";
    let (runtime, seen) = exec_server(vec![running(b"working\n"), success(Vec::new())]).await;
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        runtime.sandbox_exec(
            WEB,
            &ExecRequest {
                command: vec!["sleep".into(), "3600".into()],
                timeout: Some(std::time::Duration::from_millis(500)),
                ..Default::default()
            },
        ),
    )
    .await
    .expect("a timed-out exec returns, not waiting for the command")
    .unwrap();
    assert!(output.timed_out);
    assert_eq!(output.exit_code, TIMED_OUT_EXIT_CODE);
    assert_eq!(&output.stdout[..], b"working\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "the kill is a second exec: {seen:?}");
    assert!(
        seen[1].uri.contains("command=%2Fbin%2Fsh"),
        "{}",
        seen[1].uri
    );
}
