//! `POST .../sandboxes/{name}/exec`: run a command in a service container, answer its
//! exit code and output at the end, or with `?stream=true` stream the output as
//! NDJSON lines while it runs.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Target, invalid_field, resolve, runtime_error, sandbox_key};
use crate::client::wire::{
    self, ChunkEncoder, ExecBody, ExecExit, ExecResult, StreamEvent, StreamName,
};
use crate::resources::validate::MAX_SECONDS;
use crate::runtime::RuntimeError;
use crate::runtime::sandbox::{
    ExecChunk, ExecOutput, ExecRequest, ExecSession, SandboxIo, TIMED_OUT_EXIT_CODE,
};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::logs::async_stream;

/// How long after its timeout a streamed exec is given up on, should the runtime not
/// have ended it by then.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for Docker to record the exit code once the output has ended.
const EXIT_CODE_WAIT: Duration = Duration::from_secs(5);

#[derive(Deserialize, Default)]
pub(super) struct ExecQuery {
    stream: Option<String>,
}

/// Reads and checks the JSON body: every problem is a 422 naming the field.
pub(super) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<ExecBody, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    // Not a form either (what curl -d sends unless told otherwise): a web page can post
    // a form to any site, so the server reads only what a page cannot send cross-site.
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the exec body is JSON (Content-Type: application/json), not {content_type}; with curl, add -H 'Content-Type: application/json'"
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "body".into() } else { field };
        invalid_field(&field, e.into_inner().to_string())
    })
}

/// The runtime request for a checked body.
pub(super) fn request_of(body: &ExecBody) -> Result<ExecRequest, ApiError> {
    if body.command.is_empty() || body.command[0].is_empty() {
        return Err(invalid_field(
            "command",
            "is empty; give the program and its arguments, e.g. [\"ls\", \"-la\"] or [\"sh\", \"-c\", \"echo $HOME\"]",
        ));
    }
    let stdin = match (&body.stdin, &body.stdin_base64) {
        (Some(_), Some(_)) => {
            return Err(invalid_field(
                "stdinBase64",
                "give either stdin (text) or stdinBase64 (bytes), not both",
            ));
        }
        (Some(text), None) => Some(Bytes::from(text.clone().into_bytes())),
        (None, Some(b64)) => Some(Bytes::from(wire::base64_decode(b64).map_err(|e| {
            invalid_field("stdinBase64", format!("is not standard base64: {e}"))
        })?)),
        (None, None) => None,
    };
    // A NUL cannot be passed to a process: the runtime would fail with a server error.
    for (i, arg) in body.command.iter().enumerate() {
        if arg.contains('\0') {
            return Err(invalid_field(
                &format!("command[{i}]"),
                "contains a NUL character, which no program argument can hold",
            ));
        }
    }
    for (i, var) in body.env.iter().enumerate() {
        if var.name.is_empty() || var.name.contains('=') || var.name.contains('\0') {
            return Err(invalid_field(
                &format!("env[{i}].name"),
                format!("\"{}\" is not a variable name", var.name.escape_debug()),
            ));
        }
        if var.value.contains('\0') {
            return Err(invalid_field(
                &format!("env[{i}].value"),
                "contains a NUL character, which no environment variable can hold",
            ));
        }
    }
    if body
        .working_dir
        .as_deref()
        .is_some_and(|d| d.contains('\0'))
    {
        return Err(invalid_field("workingDir", "contains a NUL character"));
    }
    if let Some(dir) = &body.working_dir
        && !dir.starts_with('/')
    {
        return Err(invalid_field(
            "workingDir",
            format!("\"{dir}\" is relative; give an absolute directory, e.g. /{dir}"),
        ));
    }
    if body.timeout_seconds == Some(0) {
        return Err(invalid_field(
            "timeoutSeconds",
            "must be at least 1; leave it out for no limit",
        ));
    }
    // Deadlines are computed from it: a value near u64::MAX would overflow them.
    if body.timeout_seconds.is_some_and(|t| t > MAX_SECONDS) {
        return Err(invalid_field(
            "timeoutSeconds",
            format!("must be at most {MAX_SECONDS} (ten years); leave it out for no limit"),
        ));
    }
    Ok(ExecRequest {
        command: body.command.clone(),
        env: body
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect(),
        working_dir: body.working_dir.clone(),
        stdin,
        timeout: body.timeout_seconds.map(Duration::from_secs),
        tty: false,
    })
}

pub(super) async fn exec(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(query): Query<ExecQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = sandbox_key(&ns, &plural, &name)?;
    let body = parse_body(&headers, &body)?;
    let request = request_of(&body)?;
    let stream = matches!(query.stream.as_deref(), Some("true" | "1"));
    let target = resolve(&state, &key, body.service.as_deref()).await?;
    if stream {
        match streamed(&state, &target, &request).await {
            // A runtime without live output (a cluster's pods) answers the same stream
            // in one piece when the command ends: the output, then the exit.
            Err(RuntimeError::Unsupported { .. }) => {}
            other => return other.map_err(|e| runtime_error(&target, e)),
        }
    }
    let _busy = state.activity.begin(&target.uid);
    let out = state
        .sandboxes
        .exec(&target.container, &request)
        .await
        .map_err(|e| runtime_error(&target, e))?;
    Ok(if stream {
        stream_of(&out)
    } else {
        collected(&out)
    })
}

/// A finished exec as a stream: its stdout, its stderr, then the exit.
fn stream_of(out: &ExecOutput) -> Response {
    let mut lines = Vec::new();
    for (stream, bytes) in [
        (StreamName::Stdout, &out.stdout),
        (StreamName::Stderr, &out.stderr),
    ] {
        if !bytes.is_empty() {
            let (data, encoding) = wire::encode(bytes);
            lines.extend(
                StreamEvent::Output {
                    stream,
                    data,
                    encoding,
                }
                .to_line(),
            );
        }
    }
    let exit = ExecExit {
        code: out.exit_code,
        timed_out: out.timed_out,
        duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
    };
    lines.extend(StreamEvent::Exit { exit }.to_line());
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        lines,
    )
        .into_response()
}

/// A finished exec as the answer: exit code, output (base64 where not UTF-8) and time.
fn collected(out: &ExecOutput) -> Response {
    let (stdout, stdout_encoding) = wire::encode(&out.stdout);
    let (stderr, stderr_encoding) = wire::encode(&out.stderr);
    Json(ExecResult {
        exit_code: out.exit_code,
        stdout,
        stderr,
        stdout_encoding,
        stderr_encoding,
        timed_out: out.timed_out,
        duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
    })
    .into_response()
}

/// Starts the command, then answers at once with a body that streams its output.
async fn streamed(
    state: &AppState,
    target: &Target,
    request: &ExecRequest,
) -> Result<Response, RuntimeError> {
    let busy = state.activity.begin(&target.uid);
    let session = state
        .sandboxes
        .exec_session(&target.container, request)
        .await?;
    let started = Instant::now();
    let (state, request) = (state.clone(), request.clone());
    let lines = async_stream(move |tx| async move {
        let _busy = busy;
        let run = pump(
            state.sandboxes.as_ref(),
            session,
            &request,
            started,
            |event| {
                let tx = tx.clone();
                async move { tx.send(Bytes::from(event.to_line())).await.is_ok() }
            },
        );
        tokio::select! {
            _ = run => {}
            _ = state.shutdown.cancelled() => {
                let _ = tx
                    .send(Bytes::from(StreamEvent::Error { error: "the server is shutting down".into() }.to_line()))
                    .await;
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Body::from_stream(lines.map(Ok::<_, Infallible>)),
    )
        .into_response())
}

/// Feeds stdin, turns the output into events as it arrives, and ends with the exit (or
/// an error). Stops early when `send` reports that nobody listens any more.
async fn pump<F, Fut>(
    runtime: &dyn SandboxIo,
    session: ExecSession,
    request: &ExecRequest,
    started: Instant,
    send: F,
) where
    F: Fn(StreamEvent) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let ExecSession {
        id,
        mut input,
        mut output,
    } = session;
    let stdin = request.stdin.clone();
    // Written beside the reading: a command that writes before it reads would otherwise
    // block on a full pipe while we block on its stdin.
    tokio::spawn(async move {
        if let Some(bytes) = stdin {
            let _ = input.write_all(&bytes).await;
        }
        let _ = input.shutdown().await;
    });
    let give_up = request.timeout.map(|t| started + t + TIMEOUT_GRACE);
    let mut encoders = [ChunkEncoder::default(), ChunkEncoder::default()];
    let mut abandoned = false;
    loop {
        let next = match give_up {
            Some(at) => match tokio::time::timeout_at(at.into(), output.next()).await {
                Ok(next) => next,
                Err(_) => {
                    abandoned = true;
                    break;
                }
            },
            None => output.next().await,
        };
        let (stream, bytes) = match next {
            None => break,
            Some(Ok(ExecChunk::Stdout(b))) => (StreamName::Stdout, b),
            Some(Ok(ExecChunk::Stderr(b))) => (StreamName::Stderr, b),
            Some(Err(e)) => {
                tracing::warn!(exec = %id, error = %e, "an exec's output broke off");
                send(StreamEvent::Error {
                    error: format!("the output broke off: {e}"),
                })
                .await;
                return;
            }
        };
        let encoder = &mut encoders[stream as usize];
        if let Some((data, encoding)) = encoder.push(&bytes)
            && !send(StreamEvent::Output {
                stream,
                data,
                encoding,
            })
            .await
        {
            return;
        }
    }
    for (stream, encoder) in [StreamName::Stdout, StreamName::Stderr]
        .into_iter()
        .zip(encoders.iter_mut())
    {
        if let Some((data, encoding)) = encoder.finish() {
            send(StreamEvent::Output {
                stream,
                data,
                encoding,
            })
            .await;
        }
    }
    let elapsed = started.elapsed();
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let timed_out = abandoned || request.timeout.is_some_and(|t| elapsed >= t);
    let code = if timed_out {
        Some(TIMED_OUT_EXIT_CODE)
    } else {
        exit_code(runtime, &id).await
    };
    let event = match code {
        Some(code) => StreamEvent::Exit {
            exit: ExecExit {
                code,
                timed_out,
                duration_ms,
            },
        },
        None => StreamEvent::Error {
            error: "the command's output ended but Docker did not report its exit code".into(),
        },
    };
    send(event).await;
}

/// The exit code of an exec whose output has ended; Docker records it a moment later.
pub(super) async fn exit_code(runtime: &dyn SandboxIo, id: &str) -> Option<i64> {
    let deadline = Instant::now() + EXIT_CODE_WAIT;
    let mut pause = Duration::from_millis(5);
    loop {
        match runtime.exec_exit_code(id).await {
            Ok(Some(code)) => return Some(code),
            Ok(None) if Instant::now() < deadline => {}
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(exec = %id, error = %e, "cannot read an exec's exit code");
                return None;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        h
    }

    fn invalid(body: &str) -> ApiError {
        match parse_body(&json_headers(), body.as_bytes()) {
            Err(e) => e,
            Ok(b) => request_of(&b).unwrap_err(),
        }
    }

    #[test]
    fn a_full_body_becomes_a_runtime_request() {
        let body = parse_body(
            &json_headers(),
            br#"{"command": ["sh", "-c", "cat"], "service": "db", "env": [{"name": "A", "value": "1"}],
                "workingDir": "/tmp", "timeoutSeconds": 5, "stdinBase64": "AP8="}"#,
        )
        .unwrap();
        assert_eq!(body.service.as_deref(), Some("db"));
        let request = request_of(&body).unwrap();
        assert_eq!(request.command, ["sh", "-c", "cat"]);
        assert_eq!(request.env, [("A".to_string(), "1".to_string())]);
        assert_eq!(request.stdin.as_deref(), Some(&[0u8, 255][..]));
        assert_eq!(request.timeout, Some(Duration::from_secs(5)));
        assert!(!request.tty);
    }

    #[test]
    fn every_bad_field_is_named() {
        for (body, field) in [
            (r#"{"command": []}"#, "command"),
            (r#"{"command": [""]}"#, "command"),
            (r#"{}"#, "body"),
            (r#"{"command": "ls"}"#, "command"),
            (
                r#"{"command": ["ls"], "stdin": "a", "stdinBase64": "YQ=="}"#,
                "stdinBase64",
            ),
            (
                r#"{"command": ["ls"], "stdinBase64": "***"}"#,
                "stdinBase64",
            ),
            (
                r#"{"command": ["ls"], "env": [{"name": "A=B"}]}"#,
                "env[0].name",
            ),
            (r#"{"command": ["ls"], "workingDir": "tmp"}"#, "workingDir"),
            (
                r#"{"command": ["ls"], "timeoutSeconds": 0}"#,
                "timeoutSeconds",
            ),
            (
                r#"{"command": ["ls"], "timeoutSeconds": 18446744073709551615}"#,
                "timeoutSeconds",
            ),
            (r#"{"command": ["echo", "a\u0000"]}"#, "command[1]"),
            (
                r#"{"command": ["ls"], "env": [{"name": "A", "value": "\u0000"}]}"#,
                "env[0].value",
            ),
            (
                r#"{"command": ["ls"], "workingDir": "/\u0000"}"#,
                "workingDir",
            ),
        ] {
            let err = invalid(body);
            assert_eq!(
                err.code,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {err:?}"
            );
            assert_eq!(err.details.causes[0].field, field, "{body}: {err:?}");
        }
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let err = invalid(r#"{"command": ["ls"], "cwd": "/"}"#);
        assert!(err.message.contains("cwd"), "{}", err.message);
    }

    #[test]
    fn only_json_is_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let err = parse_body(&headers, b"ls").unwrap_err();
        assert_eq!(err.code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
