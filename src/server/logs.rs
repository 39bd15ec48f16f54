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

/// Returns when the store reports a change of the job `key` (or lost track of changes,
/// which may have included one); never when its feed is closed, or when the store has
/// no feed running (a cluster's API facade without controllers: the poll does it all).
async fn changed(
    changes: &mut Option<tokio::sync::broadcast::Receiver<crate::store::WatchEvent>>,
    key: &crate::resources::ObjectKey,
) {
    use tokio::sync::broadcast::error::RecvError;
    let Some(changes) = changes else {
        return std::future::pending().await;
    };
    loop {
        match changes.recv().await {
            Ok(e) => {
                let m = &e.object.metadata;
                if e.object.kind == key.kind
                    && m.name == key.name
                    && m.namespace.as_deref().unwrap_or_default() == key.namespace
                {
                    return;
                }
            }
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
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
    bounded_stream(64, f)
}

/// [`async_stream`] with `capacity` items waiting at most.
fn bounded_stream<T, F, Fut>(capacity: usize, f: F) -> impl Stream<Item = T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
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

/// Whether the client asked for server-sent events (`Accept: text/event-stream`).
pub(super) fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// How much of a log one read takes: a request holds at most this, plus what waits in
/// its channel, whatever the size of the log.
const READ_CHUNK: usize = 16 * 1024;
/// Chunks a request may have on their way to a slow client.
const CHANNEL_CHUNKS: usize = 4;

/// What a request reads: the attempt log, or one step's range of it (see
/// [`records::output::step_range`]). A step still running has no end yet: its index is
/// read again as the log grows.
#[derive(Clone, Debug)]
struct View {
    path: PathBuf,
    /// The step's index file and its index, for a step of a log that has one.
    step: Option<(PathBuf, usize)>,
}

impl View {
    fn whole(path: PathBuf) -> View {
        View { path, step: None }
    }

    /// Where the view is in the file now: `(start, end)`, end None for "to the end".
    fn range(&self) -> Option<(u64, Option<u64>)> {
        let Some((index, i)) = &self.step else {
            return Some((0, None));
        };
        let text = std::fs::read_to_string(index).unwrap_or_default();
        records::output::step_range(&records::output::decode_step_index(&text), *i)
    }

    /// Up to [`READ_CHUNK`] bytes of the view from `offset` (within the view); empty
    /// when there is nothing more yet.
    async fn read_at(&self, offset: u64) -> Bytes {
        let view = self.clone();
        tokio::task::spawn_blocking(move || view.read_blocking(offset).unwrap_or_default())
            .await
            .unwrap_or_default()
    }

    fn read_blocking(&self, offset: u64) -> std::io::Result<Bytes> {
        use std::io::{Read, Seek};
        let Some((start, end)) = self.range() else {
            return Ok(Bytes::new());
        };
        let mut file = std::fs::File::open(&self.path)?;
        let len = file.metadata()?.len();
        let end = end.unwrap_or(len).min(len);
        let at = start.saturating_add(offset);
        if at >= end {
            return Ok(Bytes::new());
        }
        let want = (end - at).min(READ_CHUNK as u64) as usize;
        file.seek(std::io::SeekFrom::Start(at))?;
        let mut buf = vec![0u8; want];
        let mut got = 0;
        while got < want {
            let n = file.read(&mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        Ok(Bytes::from(buf))
    }

    /// Where the last `n` lines of the view start, within the view.
    fn tail(&self, n: usize) -> std::io::Result<u64> {
        let Some((start, end)) = self.range() else {
            return Ok(0);
        };
        let mut file = std::fs::File::open(&self.path)?;
        let len = file.metadata()?.len();
        let end = end.unwrap_or(len).min(len);
        let at = records::output::tail_start(&mut file, start.min(end), end, n)?;
        Ok(at - start.min(end))
    }
}

/// The view of step `step` (its index in the spec, when the Job is still known): a range
/// of the attempt log, or for runs harvested before the step index, the step's own file.
fn step_view(
    dir: &std::path::Path,
    attempt: u32,
    step: &str,
    index: Option<usize>,
) -> Option<View> {
    let log = records::attempt_log(dir, attempt);
    let steps = records::step_index(dir, attempt);
    let legacy = || {
        // Without the spec (a deleted job), find the step file by its name.
        std::fs::read_dir(dir.join(format!("attempt-{attempt}")))
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(&format!("-{step}.log")))
            })
            .map(View::whole)
    };
    match index {
        Some(i) if steps.exists() || !dir.join(format!("attempt-{attempt}")).exists() => {
            Some(View {
                path: log,
                step: Some((steps, i)),
            })
        }
        Some(i) => Some(View::whole(records::step_log(dir, attempt, i, step))),
        None => legacy(),
    }
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
    let resume_at: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .filter(|_| sse);
    let attempt = q.attempt.or_else(|| latest_attempt(&dir)).unwrap_or(1);
    let view = match &q.step {
        None => View::whole(records::attempt_log(&dir, attempt)),
        Some(step) => {
            let index = target
                .spec
                .as_ref()
                .and_then(|s| s.steps.iter().position(|x| &x.name == step));
            step_view(&dir, attempt, step, index)
                .ok_or_else(|| ApiError::not_found(format!("step \"{step}\" in job {name}")))?
        }
    };
    let exists = tokio::fs::metadata(&view.path).await.is_ok();
    if !exists && !target.live {
        return Err(ApiError::not_found(format!(
            "logs of run {} attempt {attempt} of job {name}",
            target.run
        )));
    }
    // Offsets below are within the view (a step's range of the attempt log).
    let start = match (resume_at, q.tail_lines) {
        (Some(offset), _) => offset,
        (None, Some(n)) => {
            let view = view.clone();
            tokio::task::spawn_blocking(move || view.tail(n))
                .await
                .unwrap_or(Ok(0))
                .unwrap_or(0)
        }
        (None, None) => 0,
    };
    let live = follow && target.live;
    let run = target.run;
    let chunks: std::pin::Pin<Box<dyn Stream<Item = Chunk> + Send>> =
        Box::pin(bounded_stream(CHANNEL_CHUNKS, move |tx| async move {
            let mut offset = start;
            let mut idle = 0;
            // Subscribed before the first look at the job, so that no change is missed:
            // the run's end wakes the loop at once, and the log ends with it (the CLI's
            // `run` waits for that end, so a poll's sleep here was its latency).
            let mut changes = state.objects.watch_if_running();
            loop {
                let finished = !live
                    || match state.objects.get(&key).await {
                        Ok(Some(obj)) => {
                            let status = job_status(&obj);
                            status.run != Some(run)
                                || status.phase.is_finished()
                                || status.attempt.is_some_and(|a| a > attempt)
                        }
                        _ => true,
                    };
                // Everything there is now, one bounded chunk at a time.
                let mut sent = false;
                loop {
                    let chunk = view.read_at(offset).await;
                    if chunk.is_empty() {
                        break;
                    }
                    offset += chunk.len() as u64;
                    sent = true;
                    if tx.send(Chunk::Data(chunk)).await.is_err() {
                        return;
                    }
                }
                idle += 1;
                if sent {
                    idle = 0;
                } else if idle >= KEEP_ALIVE_EVERY {
                    idle = 0;
                    if tx.send(Chunk::Idle).await.is_err() {
                        return;
                    }
                }
                if finished {
                    let _ = tx.send(Chunk::End).await;
                    return;
                }
                tokio::select! {
                    _ = state.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = changed(&mut changes, &key) => {}
                }
            }
        }));
    if sse {
        let events = sse_events(chunks, start).map(Ok::<_, Infallible>);
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
    fn views_read_bounded_chunks_of_a_step_range_and_tail_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = records::attempt_log(dir.path(), 1);
        let mut text = String::from("pre\n");
        let second = (0..5000).map(|i| format!("two {i}\n")).collect::<String>();
        text.push_str("one\n");
        let step_two_at = text.len();
        text.push_str(&second);
        std::fs::write(&log, &text).unwrap();
        std::fs::write(
            records::step_index(dir.path(), 1),
            format!("0 4\n1 {step_two_at}\n"),
        )
        .unwrap();
        let one = step_view(dir.path(), 1, "one", Some(0)).unwrap();
        assert_eq!(one.read_blocking(0).unwrap(), "pre\none\n");
        assert_eq!(one.read_blocking(8).unwrap(), "");
        assert_eq!(one.tail(1).unwrap(), 4);
        let two = step_view(dir.path(), 1, "two", Some(1)).unwrap();
        let first = two.read_blocking(0).unwrap();
        assert_eq!(first.len(), READ_CHUNK, "one bounded chunk at a time");
        assert_eq!(&first[..6], b"two 0\n");
        let at = two.tail(2).unwrap();
        assert_eq!(two.read_blocking(at).unwrap(), "two 4998\ntwo 4999\n");
        // A step that never started has nothing.
        let three = step_view(dir.path(), 1, "three", Some(2)).unwrap();
        assert_eq!(three.read_blocking(0).unwrap(), "");
    }
}
