//! The tools that work inside a sandbox: `exec_in_sandbox`, `write_file`,
//! `read_file` and `sandbox_logs`. Outputs are cut to what a model can read, keeping both ends.

use std::fmt::Write;

use futures::StreamExt;
use reqwest::Method;
use serde_json::json;

use super::compact;
use super::jobs::{DEFAULT_LOG_TAIL, MAX_LOG_BYTES, MAX_LOG_TAIL};
use super::params::{
    CommandLine, ContentEncoding, ExecInSandboxArgs, ReadFileArgs, SandboxLogsArgs, WriteFileArgs,
};
use super::sandboxes::{api_error, call_args, sandbox_key};
use super::{Answer, ToolError};
use crate::client::wire::{self, Encoding, ExecBody, ExecResult};
use crate::client::{ApiClient, ClientError, object_path, urlencode};
use crate::resources::ObjectKey;
use crate::resources::common::EnvVar;
use crate::server::PATH_KIND_HEADER;

const DEFAULT_EXEC_TIMEOUT_SECS: u64 = 120;
const MAX_EXEC_TIMEOUT_SECS: u64 = 900;
/// The most of each output stream an answer carries; the start and the end are kept.
const MAX_STREAM_BYTES: usize = 8 * 1024;
/// Of that, how much comes from the start (errors usually show at the end).
const HEAD_BYTES: usize = 2 * 1024;
const DEFAULT_READ_BYTES: usize = 64 * 1024;
const MAX_READ_BYTES: usize = 1024 * 1024;

/// An API error with the hint that fits it: a sandbox that is not Ready says whether
/// to wait or to start it, in the words of the tools.
fn exec_error(key: &ObjectKey, e: ClientError) -> ToolError {
    let args = call_args(key);
    let message = e.to_string();
    if message.contains("not Ready yet") {
        return ToolError::new(format!(
            "{message}\nFor an agent: wait a moment, then call again; get_resource(kind=\"sandbox\", name=\"{}\") shows its phase.",
            key.name
        ));
    }
    if message.contains("orcaops start sandbox") {
        return ToolError::new(format!(
            "{message}\nFor an agent: start_sandbox({args}) starts it again (its files are kept), then call again."
        ));
    }
    api_error(key, e)
}

fn argv(command: &CommandLine) -> Result<Vec<String>, ToolError> {
    let empty = match command {
        CommandLine::Shell(line) => line.trim().is_empty(),
        CommandLine::Argv(argv) => argv.first().is_none_or(|p| p.is_empty()),
    };
    if empty {
        return Err(ToolError::new(
            "command is empty: give a shell line such as \"ls -la /work\", or an array such as [\"python3\", \"--version\"]",
        ));
    }
    Ok(match command {
        CommandLine::Shell(line) => vec!["sh".into(), "-c".into(), line.clone()],
        CommandLine::Argv(argv) => argv.clone(),
    })
}

/// One output stream as text for the answer, cut to size with a note.
fn shown(name: &str, data: &str, encoding: Encoding) -> (String, usize, usize) {
    let bytes = wire::decode(data, encoding).unwrap_or_default();
    let total = bytes.len();
    let text = String::from_utf8_lossy(&bytes);
    let (kept, cut) = compact::head_tail(&text, MAX_STREAM_BYTES, HEAD_BYTES);
    let mut out = String::new();
    if total == 0 {
        let _ = writeln!(out, "{name}: (empty)");
        return (out, 0, 0);
    }
    let binary = if encoding == Encoding::Base64 {
        " (not UTF-8 text; invalid bytes shown as \u{fffd})"
    } else {
        ""
    };
    if cut > 0 {
        let _ = writeln!(
            out,
            "{name} ({total} bytes{binary}; {cut} cut from the middle — to see all of it, redirect it to a file and read_file it, or narrow it with grep, head or tail):"
        );
    } else {
        let _ = writeln!(out, "{name}{binary}:");
    }
    out.push_str(&kept);
    if !kept.ends_with('\n') {
        out.push('\n');
    }
    (out, total, cut)
}

pub(super) async fn exec(client: &ApiClient, args: ExecInSandboxArgs) -> Result<Answer, ToolError> {
    let key = sandbox_key(&args.workspace, &args.sandbox);
    let command = argv(&args.command)?;
    let timeout = args
        .timeout_seconds
        .unwrap_or(DEFAULT_EXEC_TIMEOUT_SECS)
        .clamp(1, MAX_EXEC_TIMEOUT_SECS);
    let body = ExecBody {
        command: command.clone(),
        service: args.service.clone(),
        env: EnvVar::from_pairs(&args.env),
        working_dir: args.working_dir.clone(),
        timeout_seconds: Some(timeout),
        stdin: args.stdin.clone(),
        stdin_base64: None,
    };
    let path = format!("{}/exec", object_path(&key));
    let result = client
        .json(
            Method::POST,
            &path,
            Some((
                "application/json",
                serde_json::to_vec(&body).expect("serializes"),
            )),
        )
        .await
        .map_err(|e| exec_error(&key, e))?;
    let result: ExecResult = serde_json::from_value(result)
        .map_err(|e| ToolError::new(format!("unexpected answer to exec: {e}")))?;
    let service = args
        .service
        .as_deref()
        .map(|s| format!(", service {s}"))
        .unwrap_or_default();
    let place = format!("sandbox {}/{}{service}", key.namespace, key.name);
    let mut text = if result.timed_out {
        format!(
            "timed out after {timeout}s and was killed (exit code {}; {place}). Raise timeout_seconds (at most {MAX_EXEC_TIMEOUT_SECS}), or run it in the background: command=\"nohup CMD > /tmp/out.log 2>&1 &\", then read_file(path=\"/tmp/out.log\").\n",
            result.exit_code
        )
    } else {
        format!(
            "exit code {} in {} ({place})\n",
            result.exit_code,
            compact::duration(result.duration_ms)
        )
    };
    let (stdout, stdout_bytes, stdout_cut) =
        shown("stdout", &result.stdout, result.stdout_encoding);
    let (stderr, stderr_bytes, stderr_cut) =
        shown("stderr", &result.stderr, result.stderr_encoding);
    text.push_str(&stdout);
    text.push_str(&stderr);
    let keep = |data: &str, encoding: Encoding| {
        let bytes = wire::decode(data, encoding).unwrap_or_default();
        compact::head_tail(
            &String::from_utf8_lossy(&bytes),
            MAX_STREAM_BYTES,
            HEAD_BYTES,
        )
        .0
    };
    Ok(Answer {
        text,
        structured: json!({
            "sandbox": key.name,
            "workspace": key.namespace,
            "command": command,
            "exitCode": result.exit_code,
            "timedOut": result.timed_out,
            "durationMs": result.duration_ms,
            "stdout": keep(&result.stdout, result.stdout_encoding),
            "stderr": keep(&result.stderr, result.stderr_encoding),
            "stdoutBytes": stdout_bytes,
            "stderrBytes": stderr_bytes,
            "stdoutCutBytes": stdout_cut,
            "stderrCutBytes": stderr_cut,
        }),
    })
}

fn files_path(key: &ObjectKey, path: &str, service: Option<&str>) -> String {
    let mut p = format!("{}/files?path={}", object_path(key), urlencode(path));
    if let Some(s) = service {
        p.push_str(&format!("&service={}", urlencode(s)));
    }
    p
}

pub(super) async fn write(client: &ApiClient, args: WriteFileArgs) -> Result<Answer, ToolError> {
    let key = sandbox_key(&args.workspace, &args.sandbox);
    let content = match args.encoding {
        ContentEncoding::Utf8 => args.content.clone().into_bytes(),
        ContentEncoding::Base64 => wire::base64_decode(args.content.trim()).map_err(|e| {
            ToolError::new(format!(
                "content is not standard base64 ({e}); send text with encoding=\"utf-8\" instead"
            ))
        })?,
    };
    let mut path = files_path(&key, &args.path, args.service.as_deref());
    if let Some(mode) = &args.mode {
        path.push_str(&format!("&mode={}", urlencode(mode)));
    }
    let size = content.len();
    let answer = client
        .json(
            Method::PUT,
            &path,
            Some(("application/octet-stream", content)),
        )
        .await
        .map_err(|e| exec_error(&key, e))?;
    let service = answer
        .get("service")
        .and_then(|s| s.as_str())
        .unwrap_or("-");
    Ok(Answer {
        text: format!(
            "wrote {size} bytes to {} in sandbox {}/{} (service {service})",
            args.path, key.namespace, key.name
        ),
        structured: json!({
            "sandbox": key.name,
            "workspace": key.namespace,
            "path": args.path,
            "service": service,
            "bytes": size,
            "sha256": answer.get("sha256"),
        }),
    })
}

pub(super) async fn read(client: &ApiClient, args: ReadFileArgs) -> Result<Answer, ToolError> {
    let key = sandbox_key(&args.workspace, &args.sandbox);
    let max = args
        .max_bytes
        .unwrap_or(DEFAULT_READ_BYTES)
        .clamp(1, MAX_READ_BYTES);
    let response = client
        .request(
            Method::GET,
            &files_path(&key, &args.path, args.service.as_deref()),
            None,
        )
        .await
        .map_err(|e| exec_error(&key, e))?;
    if response
        .headers()
        .get(PATH_KIND_HEADER)
        .is_some_and(|k| k.as_bytes() == b"directory")
    {
        return Err(ToolError::new(format!(
            "{} is a directory; list it with exec_in_sandbox({}, command=\"ls -la {}\")",
            args.path,
            call_args(&key),
            args.path
        )));
    }
    let total = response.content_length().map(|n| n as usize);
    // Read no more than asked for (plus one byte, to know whether there was more).
    let mut bytes = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ToolError::new(format!("the download broke off: {e}")))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() > max {
            break;
        }
    }
    let truncated = bytes.len() > max;
    bytes.truncate(max);
    // A cut through a character leaves an incomplete one at the end: drop it, so the
    // text stays text.
    if truncated
        && let Err(e) = std::str::from_utf8(&bytes)
        && e.error_len().is_none()
    {
        bytes.truncate(e.valid_up_to());
    }
    let (content, encoding) = wire::encode(&bytes);
    let total_text = total.map_or(String::new(), |t| format!(" of {t}"));
    let mut text = match (truncated, encoding) {
        (false, Encoding::Utf8) => format!(
            "{} ({} bytes) in sandbox {}/{}:\n",
            args.path,
            bytes.len(),
            key.namespace,
            key.name
        ),
        (true, Encoding::Utf8) => format!(
            "{} in sandbox {}/{}: the first {} bytes{total_text} (raise max_bytes, at most {MAX_READ_BYTES}, or read a part with exec_in_sandbox and tail -c / sed -n):\n",
            args.path,
            key.namespace,
            key.name,
            bytes.len()
        ),
        (cut, Encoding::Base64) => format!(
            "{} in sandbox {}/{} is not UTF-8 text: {}{} bytes as base64:\n",
            args.path,
            key.namespace,
            key.name,
            if cut { "the first " } else { "" },
            bytes.len()
        ),
    };
    text.push_str(&content);
    if !content.ends_with('\n') {
        text.push('\n');
    }
    Ok(Answer {
        text,
        structured: json!({
            "sandbox": key.name,
            "workspace": key.namespace,
            "path": args.path,
            "bytes": bytes.len(),
            "totalBytes": total,
            "truncated": truncated,
            "encoding": encoding.as_str(),
            "content": content,
        }),
    })
}

/// The last lines a sandbox service wrote to its stdout and stderr (its main process,
/// not the commands run with exec, whose output each exec returns).
pub(super) async fn logs(client: &ApiClient, args: SandboxLogsArgs) -> Result<Answer, ToolError> {
    let key = sandbox_key(&args.workspace, &args.sandbox);
    let lines = args
        .tail_lines
        .unwrap_or(DEFAULT_LOG_TAIL)
        .clamp(1, MAX_LOG_TAIL);
    let mut query = vec![format!("tailLines={}", lines + 1)];
    if let Some(service) = &args.service {
        query.push(format!("service={}", urlencode(service)));
    }
    let path = format!("{}/log?{}", object_path(&key), query.join("&"));
    let response = client
        .request(Method::GET, &path, None)
        .await
        .map_err(|e| exec_error(&key, e))?;
    let text = response
        .text()
        .await
        .map_err(|e| ToolError::new(format!("the log could not be read: {e}")))?;
    // One line more than asked for tells whether anything was left out.
    let mut tail = compact::tail(&text, lines, MAX_LOG_BYTES);
    tail.truncated |= text.lines().count() > lines;
    let service = args.service.as_deref().unwrap_or("its first service");
    let what = format!("sandbox {}/{} ({service})", key.namespace, key.name);
    let header = tail.header(
        &what,
        "no output",
        &format!("raise tail_lines, at most {MAX_LOG_TAIL}"),
    );
    Ok(Answer {
        text: format!("{header}\n{}", tail.text),
        structured: json!({
            "sandbox": key.name,
            "workspace": key.namespace,
            "service": args.service,
            "lines": tail.lines,
            "truncated": tail.truncated,
            "output": tail.text,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_line_runs_with_sh_c_and_an_array_as_given() {
        assert_eq!(
            argv(&CommandLine::Shell("ls | wc -l".into())).unwrap(),
            ["sh", "-c", "ls | wc -l"]
        );
        assert_eq!(
            argv(&CommandLine::Argv(vec!["python3".into(), "-V".into()])).unwrap(),
            ["python3", "-V"]
        );
        assert!(argv(&CommandLine::Shell("  ".into())).is_err());
        assert!(argv(&CommandLine::Argv(vec![])).is_err());
    }

    #[test]
    fn long_output_keeps_its_start_and_end() {
        let out: String = (1..=5000).map(|i| format!("line {i}\n")).collect();
        let (text, total, cut) = shown("stdout", &out, Encoding::Utf8);
        assert_eq!(total, out.len());
        assert!(cut > 0);
        assert!(
            text.contains("line 1\n") && text.ends_with("line 5000\n"),
            "{text}"
        );
        assert!(text.len() < MAX_STREAM_BYTES + 400, "{}", text.len());
        assert!(text.starts_with(&format!("stdout ({total} bytes;")));
        let (empty, _, _) = shown("stderr", "", Encoding::Utf8);
        assert_eq!(empty, "stderr: (empty)\n");
    }

    #[test]
    fn command_lines_deserialize_from_a_string_or_an_array() {
        let a: ExecInSandboxArgs =
            serde_json::from_value(json!({"sandbox": "b", "command": "echo hi"})).unwrap();
        assert_eq!(a.command, CommandLine::Shell("echo hi".into()));
        let b: ExecInSandboxArgs = serde_json::from_value(
            json!({"name": "b", "command": ["ls", "/"], "timeoutSeconds": 5}),
        )
        .unwrap();
        assert_eq!(b.command, CommandLine::Argv(vec!["ls".into(), "/".into()]));
        assert_eq!(b.timeout_seconds, Some(5));
    }
}
