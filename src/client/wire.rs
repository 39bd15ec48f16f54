//! What the sandbox exec and file endpoints send and receive, shared by the server,
//! the CLI and the MCP tools: the exec request and result, the lines of a streamed
//! exec, the channels of the WebSocket exec, and how bytes become JSON strings.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::resources::common::EnvVar;

/// The body of `POST .../sandboxes/{name}/exec`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecBody {
    /// The program and its arguments (no shell: use `["sh", "-c", "..."]` for one).
    pub command: Vec<String>,
    /// The service to run in (default: the sandbox's first service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Killed after this many seconds; the result then says `timedOut` (exit code 124).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Text written to the command's stdin, which is then closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// The same for bytes that are not text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_base64: Option<String>,
}

/// How the bytes of an output are carried in a JSON string.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encoding {
    /// The bytes are valid UTF-8 and the string is that text.
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// The bytes are not valid UTF-8; the string is their standard base64.
    #[serde(rename = "base64")]
    Base64,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Base64 => "base64",
        }
    }
}

/// Bytes as a JSON string: the text itself when it is UTF-8, else base64.
pub fn encode(bytes: &[u8]) -> (String, Encoding) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), Encoding::Utf8),
        Err(_) => (STANDARD.encode(bytes), Encoding::Base64),
    }
}

/// The bytes a JSON string carries.
pub fn decode(data: &str, encoding: Encoding) -> Result<Vec<u8>, base64::DecodeError> {
    match encoding {
        Encoding::Utf8 => Ok(data.as_bytes().to_vec()),
        Encoding::Base64 => STANDARD.decode(data),
    }
}

pub fn base64_decode(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(data)
}

pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The answer to a collected exec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// The command's exit code; 124 when it timed out, 126/127 when it could not run.
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    pub stdout_encoding: Encoding,
    pub stderr_encoding: Encoding,
    pub timed_out: bool,
    pub duration_ms: u64,
}

impl ExecResult {
    pub fn stdout_bytes(&self) -> Vec<u8> {
        decode(&self.stdout, self.stdout_encoding).unwrap_or_default()
    }

    pub fn stderr_bytes(&self) -> Vec<u8> {
        decode(&self.stderr, self.stderr_encoding).unwrap_or_default()
    }
}

/// Which output a streamed chunk belongs to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StreamName {
    Stdout,
    Stderr,
}

/// How a streamed exec ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecExit {
    pub code: i64,
    pub timed_out: bool,
    pub duration_ms: u64,
}

/// One line of `POST .../exec?stream=true` (`application/x-ndjson`): output as it
/// arrives, then exactly one `exit`, or an `error` when the exec broke off.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum StreamEvent {
    Output {
        stream: StreamName,
        data: String,
        encoding: Encoding,
    },
    Exit {
        exit: ExecExit,
    },
    Error {
        error: String,
    },
}

impl StreamEvent {
    /// The event as one line of NDJSON.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("stream events serialize");
        line.push(b'\n');
        line
    }
}

/// Splits a stream of output bytes into chunks that are each either valid UTF-8 or
/// sent as base64, without ever cutting a character in two: the end of a chunk that
/// could be the start of a character waits for the next chunk.
#[derive(Default, Debug)]
pub struct ChunkEncoder {
    carry: Vec<u8>,
}

impl ChunkEncoder {
    /// The string for `bytes` (after what was carried over), or None while everything
    /// is held back.
    pub fn push(&mut self, bytes: &[u8]) -> Option<(String, Encoding)> {
        self.carry.extend_from_slice(bytes);
        match std::str::from_utf8(&self.carry) {
            Ok(_) => {
                let all = std::mem::take(&mut self.carry);
                Some((
                    String::from_utf8(all).expect("checked as UTF-8"),
                    Encoding::Utf8,
                ))
            }
            // The only problem is an unfinished character at the very end: send the rest.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                if valid == 0 {
                    return None;
                }
                let rest = self.carry.split_off(valid);
                let text = std::mem::replace(&mut self.carry, rest);
                Some((
                    String::from_utf8(text).expect("checked as UTF-8"),
                    Encoding::Utf8,
                ))
            }
            Err(_) => {
                let all = std::mem::take(&mut self.carry);
                Some((STANDARD.encode(all), Encoding::Base64))
            }
        }
    }

    /// Whatever is still held back, at the end of the stream.
    pub fn finish(&mut self) -> Option<(String, Encoding)> {
        if self.carry.is_empty() {
            return None;
        }
        let all = std::mem::take(&mut self.carry);
        Some(encode(&all))
    }
}

/// The WebSocket exec: Kubernetes' channel protocol. Every binary message starts with
/// the channel byte.
pub mod channel {
    /// The subprotocols served, preferred first. v5 adds closing a stream (stdin).
    pub const PROTOCOLS: [&str; 3] = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    /// A `Status` JSON when the command ends: Success, or Failure with the exit code.
    pub const ERROR: u8 = 3;
    /// `{"Width": w, "Height": h}` from the client.
    pub const RESIZE: u8 = 4;
    /// v5: `[255, channel]` closes that channel; the client sends `[255, 0]` at the end
    /// of its stdin.
    pub const CLOSE: u8 = 255;

    /// One message: the channel byte, then the payload.
    pub fn frame(channel: u8, payload: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(payload.len() + 1);
        message.push(channel);
        message.extend_from_slice(payload);
        message
    }

    /// The status sent on [`ERROR`] for an exit code, as the kubelet sends it.
    pub fn exit_status(code: i64) -> serde_json::Value {
        if code == 0 {
            serde_json::json!({"metadata": {}, "status": "Success"})
        } else {
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: exit status {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
    }

    /// The exit code in a status from [`ERROR`]: 0 for Success, the ExitCode cause for
    /// a Failure that has one, None for a failure without (the exec could not run).
    pub fn exit_code(status: &serde_json::Value) -> Option<i64> {
        if status.get("status").and_then(|s| s.as_str()) == Some("Success") {
            return Some(0);
        }
        status
            .pointer("/details/causes")?
            .as_array()?
            .iter()
            .find(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))?
            .get("message")?
            .as_str()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_other_bytes_become_base64() {
        assert_eq!(encode(b"hi\n"), ("hi\n".to_string(), Encoding::Utf8));
        let all: Vec<u8> = (0..=255).collect();
        let (data, encoding) = encode(&all);
        assert_eq!(encoding, Encoding::Base64);
        assert_eq!(decode(&data, encoding).unwrap(), all);
    }

    #[test]
    fn a_character_cut_between_chunks_is_not_sent_as_base64() {
        let text = "héllo wörld".as_bytes();
        let mut encoder = ChunkEncoder::default();
        // "h" + the first byte of "é".
        assert_eq!(encoder.push(&text[..2]), Some(("h".into(), Encoding::Utf8)));
        assert_eq!(
            encoder.push(&text[2..3]),
            Some(("é".into(), Encoding::Utf8))
        );
        assert_eq!(
            encoder.push(&text[3..]),
            Some(("llo wörld".into(), Encoding::Utf8))
        );
        assert_eq!(encoder.finish(), None);
        // A lone start byte is held, then sent as base64 when nothing completes it.
        assert_eq!(encoder.push(&[0xc3]), None);
        assert_eq!(
            encoder.finish(),
            Some((base64_encode(&[0xc3]), Encoding::Base64))
        );
        // Invalid bytes in the middle: the whole chunk goes as base64.
        let (data, encoding) = encoder.push(&[b'a', 0xff, b'b']).unwrap();
        assert_eq!(encoding, Encoding::Base64);
        assert_eq!(decode(&data, encoding).unwrap(), [b'a', 0xff, b'b']);
    }

    #[test]
    fn stream_lines_have_the_documented_shape() {
        let out = StreamEvent::Output {
            stream: StreamName::Stdout,
            data: "hi\n".into(),
            encoding: Encoding::Utf8,
        };
        assert_eq!(
            String::from_utf8(out.to_line()).unwrap(),
            "{\"stream\":\"stdout\",\"data\":\"hi\\n\",\"encoding\":\"utf-8\"}\n"
        );
        let exit = StreamEvent::Exit {
            exit: ExecExit {
                code: 3,
                timed_out: false,
                duration_ms: 12,
            },
        };
        let line = String::from_utf8(exit.to_line()).unwrap();
        assert_eq!(
            line,
            "{\"exit\":{\"code\":3,\"timedOut\":false,\"durationMs\":12}}\n"
        );
        assert_eq!(serde_json::from_str::<StreamEvent>(&line).unwrap(), exit);
        let error: StreamEvent = serde_json::from_str("{\"error\":\"broke\"}").unwrap();
        assert_eq!(
            error,
            StreamEvent::Error {
                error: "broke".into()
            }
        );
    }

    #[test]
    fn exit_statuses_round_trip() {
        assert_eq!(channel::exit_code(&channel::exit_status(0)), Some(0));
        assert_eq!(channel::exit_code(&channel::exit_status(42)), Some(42));
        assert_eq!(
            channel::exit_code(&serde_json::json!({"status": "Failure", "message": "x"})),
            None
        );
        assert_eq!(channel::frame(channel::STDOUT, b"ab"), [1, b'a', b'b']);
    }

    #[test]
    fn exec_bodies_refuse_unknown_fields() {
        let body: ExecBody =
            serde_json::from_str(r#"{"command": ["ls"], "workingDir": "/tmp"}"#).unwrap();
        assert_eq!(body.working_dir.as_deref(), Some("/tmp"));
        assert!(serde_json::from_str::<ExecBody>(r#"{"command": ["ls"], "cwd": "/"}"#).is_err());
    }
}
