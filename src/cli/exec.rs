//! `orcaops exec`: run a command in a sandbox and exit with its exit code. Without
//! `-i`/`-t` it is one streamed POST (output written as it arrives); with them, a
//! WebSocket in Kubernetes' channel protocol carries stdin, output and resizes.

use std::io::Write;

use clap::Args;
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::terminal;
use crate::client::wire::{ExecBody, StreamEvent, StreamName, channel, decode};
use crate::client::{ApiClient, ClientError, object_path, urlencode};
use crate::resources::{DEFAULT_WORKSPACE, Kind, ObjectKey};
use crate::server::Status;

const AFTER_HELP: &str = "\
Examples:
  orcaops exec scratch -- ls -la /
  orcaops exec scratch -- sh -c 'echo $HOME > /tmp/home && cat /tmp/home'
  orcaops exec scratch --service db -e PGUSER=app -w /srv -- psql -c 'select 1'
  orcaops exec scratch --timeout 30 -- make test
  tar cf - src | orcaops exec -i scratch -- tar xf - -C /work
  orcaops exec -it scratch -- sh                 an interactive shell

The exit code is the command's own (124 when --timeout ended it), as with
docker exec and kubectl exec; 5 when the server cannot be reached, 1 for a usage
error or a sandbox that is not Ready (the message says whether to wait for it or
start it).

Without -i/-t, stdout and stderr are written to your stdout and stderr as the
command produces them, and the command's stdin is empty. -i sends your stdin (a
pipe or a file) and closes it at its end; -t allocates a terminal in the sandbox
(stdout and stderr then arrive together) and puts yours in raw mode until the
command ends. Both use a WebSocket at GET .../sandboxes/NAME/exec
(docs/sandboxes-exec.md).";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct ExecArgs {
    /// The sandbox to run in.
    pub sandbox: String,
    /// The workspace (namespace).
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
    /// The service (container) to run in [default: the sandbox's first service].
    #[arg(short = 'c', long, visible_alias = "container")]
    pub service: Option<String>,
    /// Send your stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a terminal (for shells and other interactive programs).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Environment variables, NAME=value. Repeatable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// The directory to run in (absolute).
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Seconds after which the command is killed (exit code 124).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn body_of(args: &ExecArgs) -> Result<ExecBody, ClientError> {
    let env = super::env_vars(&args.env)?;
    Ok(ExecBody {
        command: args.command.clone(),
        service: args.service.clone(),
        env,
        working_dir: args.workdir.clone(),
        timeout_seconds: args.timeout,
        ..Default::default()
    })
}

/// An exit code as a process exit status (Docker's codes are 0..=255 already).
fn status_byte(code: i64) -> u8 {
    (code & 0xff) as u8
}

pub async fn exec(client: &ApiClient, args: ExecArgs) -> Result<u8, ClientError> {
    let body = body_of(&args)?;
    let key = ObjectKey::new(Kind::Sandbox, &args.namespace, &args.sandbox);
    if args.stdin || args.tty {
        interactive(client, &key, &body, args.stdin, args.tty).await
    } else {
        streamed(client, &key, &body).await
    }
}

async fn streamed(client: &ApiClient, key: &ObjectKey, body: &ExecBody) -> Result<u8, ClientError> {
    let path = format!("{}/exec?stream=true", object_path(key));
    let json = serde_json::to_vec(body).expect("an exec body serializes");
    let response = client
        .request(Method::POST, &path, Some(("application/json", json)))
        .await?;
    let mut chunks = response.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|e| ClientError::unreachable(format!("the exec's output broke off: {e}")))?;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let event: StreamEvent = serde_json::from_slice(&line).map_err(|e| {
                ClientError::usage(format!(
                    "the server sent an exec line that is not understood ({e})"
                ))
            })?;
            match event {
                StreamEvent::Output {
                    stream,
                    data,
                    encoding,
                } => {
                    let bytes = decode(&data, encoding).unwrap_or_default();
                    let out: &mut dyn Write = match stream {
                        StreamName::Stdout => &mut stdout,
                        StreamName::Stderr => &mut stderr,
                    };
                    // A closed pipe (`| head`) is not an error of the command.
                    let _ = out.write_all(&bytes).and_then(|_| out.flush());
                }
                StreamEvent::Exit { exit } => {
                    if exit.timed_out {
                        eprintln!(
                            "orcaops: the command was killed after {} s (--timeout)",
                            body.timeout_seconds.unwrap_or_default()
                        );
                    }
                    return Ok(status_byte(exit.code));
                }
                StreamEvent::Error { error } => {
                    return Err(ClientError::unreachable(format!(
                        "the exec broke off: {error}"
                    )));
                }
            }
        }
    }
    Err(ClientError::unreachable(
        "the exec's output ended before the command's exit code arrived (did the server stop?)",
    ))
}

/// The WebSocket URL of an exec.
fn websocket_url(
    client: &ApiClient,
    key: &ObjectKey,
    body: &ExecBody,
    stdin: bool,
    tty: bool,
) -> String {
    let base = client.base();
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", base.trim_start_matches("http://"))
    };
    let mut query: Vec<String> = body
        .command
        .iter()
        .map(|c| format!("command={}", urlencode(c)))
        .collect();
    query.push(format!("stdin={stdin}"));
    query.push(format!("tty={tty}"));
    if let Some(s) = &body.service {
        query.push(format!("service={}", urlencode(s)));
    }
    for var in &body.env {
        query.push(format!(
            "env={}",
            urlencode(&format!("{}={}", var.name, var.value))
        ));
    }
    if let Some(dir) = &body.working_dir {
        query.push(format!("workingDir={}", urlencode(dir)));
    }
    if let Some(t) = body.timeout_seconds {
        query.push(format!("timeoutSeconds={t}"));
    }
    format!("{base}{}/exec?{}", object_path(key), query.join("&"))
}

/// A refused WebSocket handshake as a CLI error: the server's Status when it sent one.
fn handshake_error(client: &ApiClient, e: tungstenite::Error) -> ClientError {
    match e {
        tungstenite::Error::Http(response) => {
            let code = response.status();
            let body = response.body().clone().unwrap_or_default();
            match serde_json::from_slice::<Status>(&body) {
                Ok(status) => ClientError::from_status(code.as_u16(), status),
                Err(_) => ClientError::usage(format!(
                    "the server refused the exec ({code}): {}",
                    String::from_utf8_lossy(&body)
                )),
            }
        }
        tungstenite::Error::Io(e) => ClientError::unreachable(format!(
            "cannot reach the orcaops server at {}: {e}\n  start one with `orcaops serve --dir DIR`, or point --server / ORCAOPS_SERVER at a running one",
            client.base()
        )),
        other => ClientError::unreachable(format!("the exec connection failed: {other}")),
    }
}

/// Reads stdin on a thread of its own (a blocked read must never keep the process
/// alive once the command has ended); None at its end.
fn stdin_reader() -> tokio::sync::mpsc::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match std::io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

fn resize_message(size: (u16, u16)) -> Message {
    let json = serde_json::json!({"Width": size.0, "Height": size.1}).to_string();
    Message::Binary(channel::frame(channel::RESIZE, json.as_bytes()).into())
}

async fn interactive(
    client: &ApiClient,
    key: &ObjectKey,
    body: &ExecBody,
    stdin: bool,
    tty: bool,
) -> Result<u8, ClientError> {
    let url = websocket_url(client, key, body, stdin, tty);
    let mut request = url
        .into_client_request()
        .map_err(|e| ClientError::usage(format!("cannot build the exec request: {e}")))?;
    if let Some(token) = client.token().await {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::usage("the API key is not a valid header value"))?;
        request.headers_mut().insert("Authorization", value);
    }
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        channel::PROTOCOLS[..2]
            .join(", ")
            .parse()
            .expect("a header value"),
    );
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| handshake_error(client, e))?;
    // v5 can say that stdin ended; with v4 the command sees its end only when it exits.
    let can_close_stdin = response
        .headers()
        .get("sec-websocket-protocol")
        .is_some_and(|p| p.as_bytes().starts_with(b"v5."));
    let (mut sink, mut incoming) = socket.split();
    // Raw mode only when our stdin is the terminal the remote one stands for.
    let _raw = (tty && stdin)
        .then(|| terminal::RawMode::enable(0))
        .flatten();
    let mut resizes = None;
    if tty && let Some(size) = terminal::size(1).or_else(|| terminal::size(0)) {
        let _ = sink.send(resize_message(size)).await;
        resizes =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    }
    let mut input = stdin.then(stdin_reader);
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let mut code: Option<i64> = None;
    let mut failure: Option<String> = None;
    loop {
        let resized = async {
            match resizes.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let typed = async {
            match input.as_mut() {
                Some(rx) => rx.recv().await.flatten(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) => match data.first().copied() {
                    Some(channel::STDOUT) => {
                        let _ = stdout.write_all(&data[1..]).and_then(|_| stdout.flush());
                    }
                    Some(channel::STDERR) => {
                        let _ = stderr.write_all(&data[1..]).and_then(|_| stderr.flush());
                    }
                    Some(channel::ERROR) => {
                        let status: serde_json::Value =
                            serde_json::from_slice(&data[1..]).unwrap_or_default();
                        code = channel::exit_code(&status);
                        if code.is_none() {
                            failure = Some(
                                status
                                    .get("message")
                                    .and_then(|m| m.as_str())
                                    .unwrap_or("the exec failed")
                                    .to_string(),
                            );
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    failure.get_or_insert_with(|| format!("the exec connection broke: {e}"));
                    break;
                }
                Some(Ok(_)) => {}
            },
            chunk = typed => match chunk {
                Some(bytes) => {
                    if sink.send(Message::Binary(channel::frame(channel::STDIN, &bytes).into())).await.is_err() {
                        break;
                    }
                }
                None => {
                    input = None;
                    if can_close_stdin {
                        let _ = sink
                            .send(Message::Binary(vec![channel::CLOSE, channel::STDIN].into()))
                            .await;
                    }
                }
            },
            Some(()) = resized => {
                if let Some(size) = terminal::size(1).or_else(|| terminal::size(0)) {
                    let _ = sink.send(resize_message(size)).await;
                }
            }
        }
    }
    drop(_raw);
    match (code, failure) {
        (Some(code), _) => {
            if body.timeout_seconds.is_some() && code == 124 {
                eprintln!("orcaops: the command may have been killed by --timeout");
            }
            Ok(status_byte(code))
        }
        (None, Some(message)) => Err(ClientError::usage(message)),
        (None, None) => Err(ClientError::unreachable(
            "the exec connection closed before the command's exit code arrived (did the server stop?)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ExecArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            exec: ExecArgs,
        }
        let mut argv = vec!["exec"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).exec
    }

    #[test]
    fn flags_become_the_exec_body() {
        let a = args(&[
            "box",
            "-c",
            "db",
            "-e",
            "A=1=2",
            "-w",
            "/srv",
            "--timeout",
            "5",
            "--",
            "ls",
            "-la",
        ]);
        let body = body_of(&a).unwrap();
        assert_eq!(body.command, ["ls", "-la"]);
        assert_eq!(body.service.as_deref(), Some("db"));
        assert_eq!(body.env[0].value, "1=2");
        assert_eq!(body.working_dir.as_deref(), Some("/srv"));
        assert_eq!(body.timeout_seconds, Some(5));
        assert!(body_of(&args(&["box", "-e", "NOVALUE", "--", "x"])).is_err());
    }

    #[test]
    fn the_websocket_url_carries_the_command_as_repeated_parameters() {
        let client = ApiClient::new("http://127.0.0.1:7700").unwrap();
        let key = ObjectKey::new(Kind::Sandbox, "team", "box");
        let body = ExecBody {
            command: vec!["sh".into(), "-c".into(), "echo a b".into()],
            service: Some("db".into()),
            ..Default::default()
        };
        let url = websocket_url(&client, &key, &body, true, false);
        assert_eq!(
            url,
            "ws://127.0.0.1:7700/apis/orcaops.dev/v1alpha1/namespaces/team/sandboxes/box/exec?command=sh&command=-c&command=echo%20a%20b&stdin=true&tty=false&service=db"
        );
    }

    #[test]
    fn exit_codes_pass_through() {
        assert_eq!(status_byte(0), 0);
        assert_eq!(status_byte(3), 3);
        assert_eq!(status_byte(137), 137);
        assert_eq!(status_byte(256 + 2), 2);
    }
}
