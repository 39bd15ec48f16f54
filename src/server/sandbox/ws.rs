//! `GET .../sandboxes/{name}/exec` upgraded to a WebSocket: an interactive exec (stdin,
//! a terminal, resizes) in Kubernetes' channel protocol (`v5.channel.k8s.io` and
//! `v4.channel.k8s.io`), so the framing is the one `kubectl exec` speaks to a kubelet.
//!
//! Every binary message's first byte is its channel: 0 stdin (client to server), 1
//! stdout, 2 stderr, 3 the final status (JSON), 4 terminal size (client to server,
//! `{"Width": w, "Height": h}`), and in v5, 255 to close a channel (`[255, 0]`: the
//! client's stdin has ended).

use axum::body::Bytes;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::exec::{exit_code, request_of};
use super::{invalid_field, resolve, sandbox_key};
use crate::client::wire::{ExecBody, channel};
use crate::controller::activity::ActivityGuard;
use crate::resources::common::EnvVar;
use crate::runtime::sandbox::{ExecChunk, ExecRequest, ExecSession, TIMED_OUT_EXIT_CODE};
use crate::server::AppState;
use crate::server::error::ApiError;

/// What the query string of a WebSocket exec asks for.
#[derive(Debug, Default, PartialEq)]
pub(super) struct WsQuery {
    pub body: ExecBody,
    pub stdin: bool,
    pub tty: bool,
}

fn flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(invalid_field(
            name,
            format!("\"{other}\" is not a boolean; use true or false"),
        )),
    }
}

/// Reads `command=sh&command=-c&command=...&stdin=true&tty=true&service=...`, as
/// Kubernetes' exec does (`container=` is taken for `service=`; `stdout` and `stderr`
/// are accepted and always on).
pub(super) fn parse_query(raw: Option<&str>) -> Result<WsQuery, ApiError> {
    let mut q = WsQuery::default();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "command" => q.body.command.push(value.into_owned()),
            "service" | "container" => q.body.service = Some(value.into_owned()),
            "stdin" => q.stdin = flag("stdin", &value)?,
            "tty" => q.tty = flag("tty", &value)?,
            "stdout" | "stderr" => {
                flag(&key, &value)?;
            }
            "env" => {
                let (name, value) = value.split_once('=').ok_or_else(|| {
                    invalid_field("env", format!("\"{value}\" is not NAME=value"))
                })?;
                q.body.env.push(EnvVar {
                    name: name.into(),
                    value: value.into(),
                    value_from: None,
                });
            }
            "workingDir" => q.body.working_dir = Some(value.into_owned()),
            "timeoutSeconds" => {
                q.body.timeout_seconds = Some(value.parse().map_err(|_| {
                    invalid_field(
                        "timeoutSeconds",
                        format!("\"{value}\" is not a number of seconds"),
                    )
                })?);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter \"{other}\"; an exec takes command (repeated), service, stdin, tty, env (NAME=value, repeated), workingDir and timeoutSeconds"
                )));
            }
        }
    }
    Ok(q)
}

pub(super) async fn exec_websocket(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let key = sandbox_key(&ns, &plural, &name)?;
    let query = parse_query(raw.as_deref())?;
    let mut request = request_of(&query.body)?;
    request.tty = query.tty;
    let target = resolve(&state, &key, query.body.service.as_deref()).await?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::bad_request(format!(
            "GET .../exec is the interactive exec and needs a WebSocket upgrade (subprotocol {}): {e}. For a one-shot command, POST a JSON body {{\"command\": [...]}} to the same path",
            channel::PROTOCOLS[0]
        ))
    })?;
    let busy = state.activity.begin(&target.uid);
    // Started before the upgrade, so that a runtime that cannot (a cluster's pods) or a
    // service that is gone answers with a status the client reads, not a closed socket.
    let exec = state
        .sandboxes
        .exec_session(&target.container, &request)
        .await
        .map_err(|e| super::runtime_error(&target, e))?;
    let stdin = query.stdin;
    Ok(upgrade
        .protocols(channel::PROTOCOLS)
        .on_upgrade(move |socket| session(socket, state, exec, request, stdin, busy))
        .into_response())
}

#[derive(Deserialize)]
struct Resize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

fn binary(channel: u8, payload: &[u8]) -> Message {
    Message::Binary(Bytes::from(channel::frame(channel, payload)))
}

fn failure(message: &str) -> Message {
    let status = serde_json::json!({
        "metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
    });
    binary(channel::ERROR, status.to_string().as_bytes())
}

/// Runs one exec for one WebSocket, until the command ends or the client goes.
async fn session(
    socket: WebSocket,
    state: AppState,
    exec: ExecSession,
    request: ExecRequest,
    stdin: bool,
    _busy: ActivityGuard,
) {
    let (mut sink, mut incoming) = socket.split();
    let runtime = state.sandboxes.as_ref();
    let ExecSession {
        id,
        mut input,
        mut output,
    } = exec;
    // Stdin is written by its own task, so a command that does not read it never
    // stops its output from being forwarded.
    let (stdin_tx, mut stdin_rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    // Dropped when the session ends, which lets the writer go.
    let (_session_alive, session_ended) = tokio::sync::oneshot::channel::<()>();
    let tty = request.tty;
    tokio::spawn(async move {
        let mut line_open = false;
        while let Some(bytes) = stdin_rx.recv().await {
            if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                break;
            }
            if let Some(last) = bytes.last() {
                line_open = *last != b'\n';
            }
        }
        if tty {
            // Closing a terminal's input makes Docker drop the whole stream, output
            // included: end it as a keyboard does, with Ctrl-D (twice after an
            // unfinished line: the first only hands that line over), and keep it open.
            if stdin {
                let eot: &[u8] = if line_open { &[0x04, 0x04] } else { &[0x04] };
                let _ = input.write_all(eot).await;
                let _ = input.flush().await;
            }
            let _ = session_ended.await;
        } else {
            let _ = input.shutdown().await;
        }
    });
    let mut stdin_tx = stdin.then_some(stdin_tx);
    let started = tokio::time::Instant::now();
    let give_up = request.timeout.map(|t| started + t);
    let result: Result<i64, String> = loop {
        let timeout = async {
            match give_up {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            chunk = output.next() => {
                let message = match chunk {
                    Some(Ok(ExecChunk::Stdout(b))) => binary(channel::STDOUT, &b),
                    Some(Ok(ExecChunk::Stderr(b))) => binary(channel::STDERR, &b),
                    Some(Err(e)) => break Err(format!("the output broke off: {e}")),
                    None => {
                        let timed_out = request.timeout.is_some_and(|t| started.elapsed() >= t);
                        if timed_out {
                            break Ok(TIMED_OUT_EXIT_CODE);
                        }
                        break exit_code(runtime, &id)
                            .await
                            .ok_or_else(|| "Docker did not report the exit code".to_string());
                    }
                };
                if sink.send(message).await.is_err() {
                    return; // the client is gone
                }
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) => match data.first().copied() {
                    Some(channel::STDIN) => {
                        if let Some(tx) = &stdin_tx {
                            let _ = tx.send(data.slice(1..)).await;
                        }
                    }
                    Some(channel::RESIZE) => {
                        if let Ok(size) = serde_json::from_slice::<Resize>(&data[1..]) {
                            let _ = runtime.exec_resize(&id, size.width, size.height).await;
                        }
                    }
                    Some(channel::CLOSE) if data.get(1) == Some(&channel::STDIN) => stdin_tx = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = timeout => break Ok(TIMED_OUT_EXIT_CODE),
            _ = state.shutdown.cancelled() => break Err("the server is shutting down".into()),
        }
    };
    let status = match result {
        Ok(code) => binary(
            channel::ERROR,
            channel::exit_status(code).to_string().as_bytes(),
        ),
        Err(message) => failure(&message),
    };
    let _ = sink.send(status).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_style_queries_parse() {
        let q = parse_query(Some(
            "command=sh&command=-c&command=echo%20%24A&stdin=true&stdout=true&stderr=true&tty=false&container=db&env=A%3D1&workingDir=%2Ftmp",
        ))
        .unwrap();
        assert_eq!(q.body.command, ["sh", "-c", "echo $A"]);
        assert_eq!(q.body.service.as_deref(), Some("db"));
        assert_eq!(q.body.env[0].value, "1");
        assert_eq!(q.body.working_dir.as_deref(), Some("/tmp"));
        assert!(q.stdin && !q.tty);
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        assert_eq!(
            parse_query(Some("command=ls&tty=maybe"))
                .unwrap_err()
                .details
                .causes[0]
                .field,
            "tty"
        );
        assert!(
            parse_query(Some("command=ls&shell=bash"))
                .unwrap_err()
                .message
                .contains("unknown query parameter \"shell\"")
        );
        let empty = parse_query(None).unwrap();
        assert_eq!(
            request_of(&empty.body).unwrap_err().details.causes[0].field,
            "command"
        );
    }
}
