//! Reads a container's log as lines.
//!
//! With `timestamps=true` Docker writes one frame per log message, each
//! starting with an RFC 3339 timestamp and a space. A message is normally one
//! line with its newline, but a long line (over 16 KiB) or the last output of
//! a container that did not end with a newline arrives as partial messages
//! without one. Each stream is buffered separately, and a line keeps the
//! timestamp of its first fragment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::LogsOptionsBuilder;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};

use super::docker::not_found_as;
use super::{LogLine, LogStream, Result, RuntimeError};

/// The container's output from the start, with Docker's timestamps, split
/// into lines. With `follow` the stream goes on until the container
/// stops, then ends.
///
/// Docker 20.10 sometimes ends a followed log before the container's last
/// output that had no newline (it is flushed when the pipe closes). So a
/// followed log, once Docker ends it, reads the log again from the second
/// of the last frame seen and goes on after that frame.
pub(crate) fn container_log(
    docker: &Docker,
    id: &str,
    follow: bool,
) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
    let last_frame: Arc<Mutex<Option<Frame>>> = Arc::default();
    let failed = Arc::new(AtomicBool::new(false));
    let first = {
        let (last_frame, failed) = (last_frame.clone(), failed.clone());
        log_frames(docker, id, follow, 0).inspect(move |frame| match frame {
            Ok(frame) => *lock(&last_frame) = Some(frame.clone()),
            Err(_) => failed.store(true, Ordering::Relaxed),
        })
    };
    let (docker, container) = (docker.clone(), id.to_string());
    let catch_up = futures::stream::once(async move {
        if !follow || failed.load(Ordering::Relaxed) {
            return futures::stream::empty().boxed();
        }
        let last = lock(&last_frame).take();
        let since = last.as_ref().map_or(0, |(_, bytes)| {
            let seconds = frame_timestamp(bytes).timestamp();
            i32::try_from(seconds).unwrap_or(0)
        });
        let mut past_last = last.is_none();
        log_frames(&docker, &container, false, since)
            .try_filter(move |frame| {
                let keep = past_last;
                past_last = past_last || Some(frame) == last.as_ref();
                futures::future::ready(keep)
            })
            .boxed()
    })
    .flatten();

    let container = id.to_string();
    let mut assembler = LineAssembler::default();
    let mut finished = false;
    first
        .chain(catch_up)
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .flat_map(move |frame| {
            let lines: Vec<Result<LogLine>> = match frame {
                _ if finished => Vec::new(),
                Some(Ok((stream, bytes))) => assembler
                    .push_frame(stream, &bytes)
                    .into_iter()
                    .map(Ok)
                    .collect(),
                Some(Err(e)) => {
                    finished = true;
                    vec![Err(not_found_as(e, || RuntimeError::ContainerNotFound {
                        container: container.clone(),
                    }))]
                }
                None => assembler.finish().into_iter().map(Ok).collect(),
            };
            futures::stream::iter(lines)
        })
}

/// One log frame as Docker sent it: timestamp, space, payload.
type Frame = (LogStream, Bytes);

fn log_frames(
    docker: &Docker,
    id: &str,
    follow: bool,
    since: i32,
) -> impl Stream<Item = Result<Frame, BollardError>> + Send + 'static {
    let options = LogsOptionsBuilder::default()
        .follow(follow)
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(since)
        .build();
    docker.logs(id, Some(options)).try_filter_map(|output| {
        let frame = output_stream(&output).map(|stream| (stream, output.into_bytes()));
        futures::future::ready(Ok(frame))
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn output_stream(output: &bollard::container::LogOutput) -> Option<LogStream> {
    match output {
        bollard::container::LogOutput::StdOut { .. } => Some(LogStream::Stdout),
        bollard::container::LogOutput::StdErr { .. } => Some(LogStream::Stderr),
        // Only a TTY container mixes streams ("console"); orcaops never allocates one.
        bollard::container::LogOutput::Console { .. } => Some(LogStream::Stdout),
        bollard::container::LogOutput::StdIn { .. } => None,
    }
}

/// The longest line kept whole; a longer one becomes lines of about this size.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    timestamp: Option<DateTime<Utc>>,
}

/// Assembles the frames of one container's log into lines.
#[derive(Debug, Default)]
pub(crate) struct LineAssembler {
    stdout: Pending,
    stderr: Pending,
}

impl LineAssembler {
    /// Takes one frame (timestamp, space, payload) and returns the lines it completes.
    pub(crate) fn push_frame(&mut self, stream: LogStream, frame: &[u8]) -> Vec<LogLine> {
        let (timestamp, payload) = split_timestamp(frame);
        let pending = match stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        };
        let mut lines = Vec::new();
        let mut rest = payload;
        while !rest.is_empty() {
            pending.timestamp.get_or_insert(timestamp);
            match rest.iter().position(|&b| b == b'\n') {
                Some(newline) => {
                    pending.bytes.extend_from_slice(&rest[..newline]);
                    lines.push(take_line(stream, pending));
                    rest = &rest[newline + 1..];
                }
                None => {
                    pending.bytes.extend_from_slice(rest);
                    rest = &[];
                    // A line that never ends (a binary blob, a progress bar without
                    // newlines) is passed on in pieces: memory stays bounded.
                    if pending.bytes.len() >= MAX_LINE_BYTES {
                        lines.push(take_line(stream, pending));
                    }
                }
            }
        }
        lines
    }

    /// The unterminated last line of each stream, once the log has ended.
    pub(crate) fn finish(&mut self) -> Vec<LogLine> {
        let mut lines = Vec::new();
        for (stream, pending) in [
            (LogStream::Stdout, &mut self.stdout),
            (LogStream::Stderr, &mut self.stderr),
        ] {
            if pending.timestamp.is_some() {
                lines.push(take_line(stream, pending));
            }
        }
        lines.sort_by_key(|line| line.timestamp);
        lines
    }
}

fn take_line(stream: LogStream, pending: &mut Pending) -> LogLine {
    let bytes = std::mem::take(&mut pending.bytes);
    LogLine {
        stream,
        timestamp: pending.timestamp.take().unwrap_or_else(Utc::now),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The timestamp a frame starts with (or now, for a frame without one).
pub(crate) fn frame_timestamp(frame: &[u8]) -> DateTime<Utc> {
    split_timestamp(frame).0
}

/// Splits `<RFC 3339 timestamp> <payload>`. A frame without a readable
/// timestamp is kept whole and stamped with the time it was read.
fn split_timestamp(frame: &[u8]) -> (DateTime<Utc>, &[u8]) {
    let parsed = frame.iter().position(|&b| b == b' ').and_then(|space| {
        let text = std::str::from_utf8(&frame[..space]).ok()?;
        let timestamp = DateTime::parse_from_rfc3339(text).ok()?;
        Some((timestamp.with_timezone(&Utc), &frame[space + 1..]))
    });
    parsed.unwrap_or_else(|| (Utc::now(), frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-01-01T00:00:01.000000001Z";
    const T2: &str = "2026-01-01T00:00:02.5Z";

    fn ts(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn frame(timestamp: &str, payload: &str) -> Vec<u8> {
        format!("{timestamp} {payload}").into_bytes()
    }

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|line| line.text.as_str()).collect()
    }

    #[test]
    fn one_frame_one_line() {
        let mut lines = LineAssembler::default();
        let got = lines.push_frame(LogStream::Stdout, &frame(T1, "hello world\n"));
        assert_eq!(
            got,
            [LogLine {
                stream: LogStream::Stdout,
                timestamp: ts(T1),
                text: "hello world".into()
            }]
        );
        assert!(lines.finish().is_empty());
    }

    #[test]
    fn partial_frames_join_and_keep_the_first_timestamp() {
        let mut lines = LineAssembler::default();
        assert!(
            lines
                .push_frame(LogStream::Stdout, &frame(T1, "first half "))
                .is_empty()
        );
        let got = lines.push_frame(LogStream::Stdout, &frame(T2, "second half\nnext\n"));
        assert_eq!(texts(&got), ["first half second half", "next"]);
        assert_eq!(got[0].timestamp, ts(T1));
        assert_eq!(got[1].timestamp, ts(T2));
    }

    #[test]
    fn streams_are_buffered_separately() {
        let mut lines = LineAssembler::default();
        assert!(
            lines
                .push_frame(LogStream::Stdout, &frame(T1, "out "))
                .is_empty()
        );
        let got = lines.push_frame(LogStream::Stderr, &frame(T2, "err\n"));
        assert_eq!(got[0].stream, LogStream::Stderr);
        assert_eq!(texts(&got), ["err"]);
        let got = lines.push_frame(LogStream::Stdout, &frame(T2, "done\n"));
        assert_eq!(texts(&got), ["out done"]);
    }

    #[test]
    fn finish_flushes_unterminated_lines_and_empty_lines_survive() {
        let mut lines = LineAssembler::default();
        let got = lines.push_frame(LogStream::Stdout, &frame(T1, "\n\ntail"));
        assert_eq!(texts(&got), ["", ""]);
        assert_eq!(texts(&lines.finish()), ["tail"]);
        assert!(lines.finish().is_empty());
    }

    #[test]
    fn multibyte_characters_split_across_frames_survive() {
        let mut lines = LineAssembler::default();
        let bytes = "日本\n".as_bytes();
        let mut first = format!("{T1} ").into_bytes();
        first.extend_from_slice(&bytes[..2]);
        let mut second = format!("{T2} ").into_bytes();
        second.extend_from_slice(&bytes[2..]);
        assert!(lines.push_frame(LogStream::Stdout, &first).is_empty());
        assert_eq!(
            texts(&lines.push_frame(LogStream::Stdout, &second)),
            ["日本"]
        );
    }

    #[test]
    fn frame_without_timestamp_is_kept_whole() {
        let mut lines = LineAssembler::default();
        let got = lines.push_frame(LogStream::Stdout, b"no timestamp here\n");
        assert_eq!(texts(&got), ["no timestamp here"]);
    }

    #[test]
    fn a_line_without_end_is_passed_on_in_bounded_pieces() {
        let mut lines = LineAssembler::default();
        let piece = "x".repeat(16 * 1024);
        let mut out = Vec::new();
        for _ in 0..10 {
            out.extend(lines.push_frame(LogStream::Stdout, &frame(T1, &piece)));
        }
        out.extend(lines.finish());
        assert_eq!(out.len(), 3, "64 KiB, 64 KiB, then the rest");
        assert!(out.iter().all(|l| l.text.len() <= MAX_LINE_BYTES));
        assert_eq!(
            out.iter().map(|l| l.text.len()).sum::<usize>(),
            10 * piece.len()
        );
    }
}
