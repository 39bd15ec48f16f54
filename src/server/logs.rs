//! `GET .../jobs/{name}/log`: a run's output as plain text, or as server-sent events
//! when the client sends `Accept: text/event-stream`; either one finished or followed.
//!
//! SSE: one `data:` event per line, with the byte offset after the line as its `id`, so a
//! reconnecting `EventSource` (which sends `Last-Event-ID`) continues where it stopped;
//! `event: end` closes a log that is complete.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::jobs::{job_key, job_status, resolve_run};
use super::{AppState, error::ApiError};
use crate::records;

/// How often a followed log is read again.
const FOLLOW_POLL: Duration = Duration::from_millis(150);
/// An SSE comment sent on an idle followed log, so that proxies keep the connection.
const KEEP_ALIVE_EVERY: u32 = 100; // polls, 15 s

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct LogQuery {
    run: Option<u32>,
    attempt: Option<u32>,
    step: Option<String>,
    #[serde(default)]
    follow: Option<String>,
    tail_lines: Option<usize>,
}

/// A piece of a log on its way out.
#[derive(Debug, PartialEq)]
enum Chunk {
    Data(Bytes),
    /// Nothing new for a while (SSE sends a comment; plain text sends nothing).
    Idle,
    /// The log is complete. A stream that stops without it (shutdown) is not.
    End,
}

/// A stream fed by a task; the task stops when the receiver is dropped.
pub(super) fn async_stream<T, F, Fut>(f: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn latest_attempt(dir: &std::path::Path) -> Option<u32> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("attempt-")?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .max()
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// Where the last `n` lines of `text` start.
fn tail_offset(text: &[u8], n: usize) -> usize {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    if n == 0 { text.len() } else { 0 }
}

pub(super) async fn log(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = job_key(&ns, &plural, &name)?;
    let target = resolve_run(&state, &key, q.run).await?;
    let dir = records::run_dir(
        state.records()?.data_dir(),
        &ns,
        &name,
        &target.uid,
        target.run,
    );
    let follow = matches!(q.follow.as_deref(), Some("true" | "1"));
    let sse = wants_event_stream(&headers);
    // An EventSource reconnecting after a drop says where it got to.
    let resume_at: Option<usize> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .filter(|_| sse);
    let attempt = q.attempt.or_else(|| latest_attempt(&dir)).unwrap_or(1);
    let path: PathBuf = match &q.step {
        None => records::attempt_log(&dir, attempt),
        Some(step) => {
            let index = target
                .spec
                .as_ref()
                .and_then(|s| s.steps.iter().position(|x| &x.name == step));
            let found = match index {
                Some(i) => Some(records::step_log(&dir, attempt, i, step)),
                // Without the spec (a deleted job), find the step file by its name.
                None => std::fs::read_dir(dir.join(format!("attempt-{attempt}")))
                    .ok()
                    .and_then(|entries| {
                        entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
                            p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.ends_with(&format!("-{step}.log")))
                        })
                    }),
            };
            found.ok_or_else(|| ApiError::not_found(format!("step \"{step}\" in job {name}")))?
        }
    };
    let existing = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(_) if target.live => Vec::new(),
        Err(_) => {
            return Err(ApiError::not_found(format!(
                "logs of run {} attempt {attempt} of job {name}",
                target.run
            )));
        }
    };
    let start = match (resume_at, q.tail_lines) {
        (Some(offset), _) => offset.min(existing.len()),
        (None, Some(n)) => tail_offset(&existing, n),
        (None, None) => 0,
    };
    let chunks: std::pin::Pin<Box<dyn Stream<Item = Chunk> + Send>> = if !follow || !target.live {
        let rest = Bytes::from(existing).slice(start..);
        Box::pin(futures::stream::iter([Chunk::Data(rest), Chunk::End]))
    } else {
        let run = target.run;
        Box::pin(async_stream(move |tx| async move {
            let mut offset = start as u64;
            let mut idle = 0;
            loop {
                let finished = match state.objects.get(&key).await {
                    Ok(Some(obj)) => {
                        let status = job_status(&obj);
                        status.run != Some(run)
                            || status.phase.is_finished()
                            || status.attempt.is_some_and(|a| a > attempt)
                    }
                    _ => true,
                };
                let mut buf = Vec::new();
                if let Ok(mut file) = tokio::fs::File::open(&path).await
                    && file.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
                {
                    let _ = file.read_to_end(&mut buf).await;
                }
                idle += 1;
                let next = if !buf.is_empty() {
                    idle = 0;
                    offset += buf.len() as u64;
                    Some(Chunk::Data(Bytes::from(buf)))
                } else if idle >= KEEP_ALIVE_EVERY {
                    idle = 0;
                    Some(Chunk::Idle)
                } else {
                    None
                };
                if let Some(chunk) = next
                    && tx.send(chunk).await.is_err()
                {
                    return;
                }
                if finished {
                    let _ = tx.send(Chunk::End).await;
                    return;
                }
                tokio::select! {
                    _ = state.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                }
            }
        }))
    };
    if sse {
        let events = sse_events(chunks, start as u64).map(Ok::<_, Infallible>);
        return Ok((
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(events),
        )
            .into_response());
    }
    let text = chunks.filter_map(|c| async move {
        match c {
            Chunk::Data(bytes) => Some(Ok::<_, Infallible>(bytes)),
            Chunk::Idle | Chunk::End => None,
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(text),
    )
        .into_response())
}

/// Turns log chunks into SSE: an event per complete line; at the end, the unterminated
/// last line (if any) and `event: end`.
fn sse_events(
    chunks: impl Stream<Item = Chunk> + Send + 'static,
    start: u64,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let mut encoder = SseEncoder {
        pending: Vec::new(),
        offset: start,
    };
    chunks.map(move |chunk| Bytes::from(encoder.encode(chunk)))
}

struct SseEncoder {
    /// The start of a line whose end has not arrived yet.
    pending: Vec<u8>,
    /// The file offset where `pending` starts.
    offset: u64,
}

impl SseEncoder {
    fn encode(&mut self, chunk: Chunk) -> Vec<u8> {
        let mut out = Vec::new();
        match chunk {
            Chunk::Data(bytes) => {
                self.pending.extend_from_slice(&bytes);
                let mut consumed = 0;
                while let Some(pos) = self.pending[consumed..].iter().position(|b| *b == b'\n') {
                    let end = consumed + pos + 1;
                    self.line(&mut out, consumed, end - 1, end);
                    consumed = end;
                }
                self.pending.drain(..consumed);
                self.offset += consumed as u64;
            }
            Chunk::Idle => out.extend_from_slice(b": keep-alive\n\n"),
            Chunk::End => {
                if !self.pending.is_empty() {
                    let len = self.pending.len();
                    self.line(&mut out, 0, len, len);
                    self.offset += len as u64;
                    self.pending.clear();
                }
                out.extend_from_slice(b"event: end\ndata:\n\n");
            }
        }
        out
    }

    /// One event for `pending[from..to]`, whose id is the offset of `pending[next]`.
    fn line(&self, out: &mut Vec<u8>, from: usize, to: usize, next: usize) {
        let text = String::from_utf8_lossy(&self.pending[from..to]);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        out.extend_from_slice(format!("id: {}\n", self.offset + next as u64).as_bytes());
        // A carriage return inside a line (a progress bar) would end the field early.
        for part in text.split('\r') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(part.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(chunks: Vec<Chunk>, start: u64) -> String {
        let mut encoder = SseEncoder {
            pending: Vec::new(),
            offset: start,
        };
        chunks
            .into_iter()
            .map(|c| String::from_utf8(encoder.encode(c)).unwrap())
            .collect()
    }

    #[test]
    fn lines_become_events_with_their_end_offset_as_id() {
        let out = encode(
            vec![
                Chunk::Data(Bytes::from_static(b"one\ntw")),
                Chunk::Data(Bytes::from_static(b"o\n\nthree")),
                Chunk::End,
            ],
            0,
        );
        assert_eq!(
            out,
            "id: 4\ndata: one\n\nid: 8\ndata: two\n\nid: 9\ndata: \n\nid: 14\ndata: three\n\nevent: end\ndata:\n\n"
        );
    }

    #[test]
    fn offsets_count_from_where_the_stream_started() {
        let out = encode(vec![Chunk::Data(Bytes::from_static(b"x\r\n"))], 10);
        assert_eq!(out, "id: 13\ndata: x\n\n");
    }

    #[test]
    fn carriage_returns_inside_a_line_stay_in_one_event() {
        let out = encode(vec![Chunk::Data(Bytes::from_static(b"10%\r50%\n"))], 0);
        assert_eq!(out, "id: 8\ndata: 10%\ndata: 50%\n\n");
    }

    #[test]
    fn tails() {
        assert_eq!(tail_offset(b"a\nb\nc\n", 2), 2);
        assert_eq!(tail_offset(b"a\nb\nc", 1), 4);
        assert_eq!(tail_offset(b"a\nb\n", 5), 0);
        assert_eq!(tail_offset(b"a\nb\n", 0), 4);
        assert_eq!(tail_offset(b"", 3), 0);
    }
}
