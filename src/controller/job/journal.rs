//! The attempt's raw output as it was followed, kept beside the attempt log
//! (`attempt-N.journal`), so that a harvest can read what the runtime no longer serves.
//!
//! The kubelet rotates container logs (10 MiB by default) and `pods/log` answers only
//! the current file, and Docker keeps only the last few files of an orcaops container's
//! json-file log (see `runtime::docker::attempt::log_config`), so a harvest that reads
//! the log from the start would lose the runner's markers of the early steps. The
//! follower appends every line it keeps in the attempt log (up to the output cap) and
//! every line that carries a marker, with its timestamp and stream, as it arrives; the
//! harvest puts the journal's lines from before the runtime's first line in front of
//! what the runtime still has. When nothing was rotated away, the journal is read no
//! further than its first line. Once the attempt is harvested, the journal is removed.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::runtime::{LogLine, LogStream};

/// Where the journal of the attempt logged at `attempt_log` is.
pub(super) fn path(attempt_log: &Path) -> PathBuf {
    attempt_log.with_extension("journal")
}

/// One line of the journal: `<RFC 3339 timestamp>\t<o|e>\t<text>`.
fn encode(line: &LogLine) -> String {
    let stream = match line.stream {
        LogStream::Stdout => 'o',
        LogStream::Stderr => 'e',
    };
    format!(
        "{}\t{stream}\t{}\n",
        line.timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true),
        line.text
    )
}

fn decode(line: &str) -> Option<LogLine> {
    let mut parts = line.splitn(3, '\t');
    let timestamp = DateTime::parse_from_rfc3339(parts.next()?)
        .ok()?
        .with_timezone(&Utc);
    let stream = match parts.next()? {
        "o" => LogStream::Stdout,
        "e" => LogStream::Stderr,
        _ => return None,
    };
    Some(LogLine {
        stream,
        timestamp,
        text: parts.next()?.to_string(),
    })
}

/// Appends to a journal, skipping what it holds already: a follower started again
/// (after a controller restart) reads the log from the start once more. Two lines can
/// share a timestamp, so the lines at the journal's last timestamp are compared by text.
pub(super) struct Writer {
    file: tokio::fs::File,
    /// The journal's last timestamp and the texts logged at it, until the first new line.
    held: Option<(DateTime<Utc>, Vec<String>)>,
}

impl Writer {
    pub(super) async fn open(path: &Path) -> std::io::Result<Writer> {
        // Only the lines at the last timestamp are kept in memory.
        let mut held: Option<(DateTime<Utc>, Vec<String>)> = None;
        let mut lines = Lines::open(path).await?;
        while let Some(line) = lines.next().await? {
            match &mut held {
                Some((at, texts)) if *at == line.timestamp => texts.push(line.text),
                _ => held = Some((line.timestamp, vec![line.text])),
            }
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        Ok(Writer { file, held })
    }

    pub(super) async fn push(&mut self, line: &LogLine) -> std::io::Result<()> {
        if let Some((at, texts)) = &mut self.held {
            if line.timestamp < *at {
                return Ok(());
            }
            if line.timestamp == *at
                && let Some(i) = texts.iter().position(|t| *t == line.text)
            {
                texts.swap_remove(i);
                return Ok(());
            }
            // The first line the journal lacks: the rest are new too.
            self.held = None;
        }
        self.file.write_all(encode(line).as_bytes()).await
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().await
    }
}

/// The journal's lines, one at a time; none when there is no journal. A torn last line
/// (a crash mid-write) is skipped.
struct Lines(Option<tokio::io::Lines<BufReader<tokio::fs::File>>>);

impl Lines {
    async fn open(path: &Path) -> std::io::Result<Lines> {
        match tokio::fs::File::open(path).await {
            Ok(file) => Ok(Lines(Some(BufReader::new(file).lines()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lines(None)),
            Err(e) => Err(e),
        }
    }

    async fn next(&mut self) -> std::io::Result<Option<LogLine>> {
        let Some(lines) = &mut self.0 else {
            return Ok(None);
        };
        while let Some(line) = lines.next_line().await? {
            if let Some(line) = decode(&line) {
                return Ok(Some(line));
            }
        }
        Ok(None)
    }
}

/// What the runtime lost, read from the journal at `path` one line at a time: the
/// journal's lines before `first` (the first line the runtime still serves), or all of
/// them when it serves none. Lines that share `first`'s timestamp count as lost only
/// when they come before it in the journal. Docker keeps the whole log, so there this
/// reads one line.
pub(super) struct LostBefore {
    lines: Lines,
    first: Option<LogLine>,
    /// Lines at `first`'s instant, lost only if `first` itself follows them.
    held: std::collections::VecDeque<LogLine>,
    /// `first` was found: `held` is lost, and nothing after.
    found: bool,
    done: bool,
    /// The journal had a line.
    seen: bool,
}

impl LostBefore {
    pub(super) async fn open(path: &Path, first: Option<&LogLine>) -> std::io::Result<LostBefore> {
        Ok(LostBefore {
            lines: Lines::open(path).await?,
            first: first.cloned(),
            held: Default::default(),
            found: false,
            done: false,
            seen: false,
        })
    }

    /// Whether lines were lost for good: the journal ended before the runtime's first
    /// line (both rotated faster than the follower read). Known once [`Self::next`]
    /// has returned None.
    pub(super) fn gap(&self) -> bool {
        self.first.is_some() && !self.found && self.seen
    }

    pub(super) async fn next(&mut self) -> std::io::Result<Option<LogLine>> {
        loop {
            if self.found {
                return Ok(self.held.pop_front());
            }
            if self.done {
                return Ok(None);
            }
            let Some(line) = self.lines.next().await? else {
                // `first` never appeared: only what came before its instant is lost.
                self.done = true;
                return Ok(None);
            };
            self.seen = true;
            let Some(first) = &self.first else {
                return Ok(Some(line));
            };
            if line.timestamp == first.timestamp && line.text == first.text {
                self.found = true;
            } else if line.timestamp < first.timestamp {
                return Ok(Some(line));
            } else if line.timestamp == first.timestamp {
                self.held.push_back(line);
            } else {
                self.done = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(second: u32, text: &str) -> LogLine {
        LogLine {
            stream: if second.is_multiple_of(2) {
                LogStream::Stdout
            } else {
                LogStream::Stderr
            },
            timestamp: DateTime::parse_from_rfc3339(&format!("2026-01-01T00:00:{second:02}.5Z"))
                .unwrap()
                .with_timezone(&Utc),
            text: text.to_string(),
        }
    }

    #[tokio::test]
    async fn a_journal_keeps_lines_with_tabs_and_streams_and_skips_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(&dir.path().join("attempt-1.log"));
        assert_eq!(path.file_name().unwrap(), "attempt-1.journal");
        assert!(read(&path).await.is_empty(), "no journal yet");
        let mut twin = line(2, "twin");
        twin.stream = LogStream::Stdout;
        let lines = [line(1, "a\tb"), line(2, ""), twin, line(3, "ü")];
        let mut writer = Writer::open(&path).await.unwrap();
        for l in &lines[..2] {
            writer.push(l).await.unwrap();
        }
        writer.flush().await.unwrap();
        drop(writer);
        // A follower started again sees the log from the start: nothing is doubled.
        let mut writer = Writer::open(&path).await.unwrap();
        for l in &lines {
            writer.push(l).await.unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(read(&path).await, lines);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attempt-1.journal");
        let whole = encode(&line(1, "whole"));
        tokio::fs::write(&path, format!("{whole}2026-01-01T00:0"))
            .await
            .unwrap();
        assert_eq!(read(&path).await, [line(1, "whole")]);
    }

    async fn read(path: &Path) -> Vec<LogLine> {
        let mut lines = Lines::open(path).await.unwrap();
        let mut out = Vec::new();
        while let Some(line) = lines.next().await.unwrap() {
            out.push(line);
        }
        out
    }

    async fn lost_before(journal: Vec<LogLine>, first: Option<&LogLine>) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.journal");
        let text: String = journal.iter().map(encode).collect();
        tokio::fs::write(&path, text).await.unwrap();
        let mut lost = LostBefore::open(&path, first).await.unwrap();
        let mut out = Vec::new();
        while let Some(line) = lost.next().await.unwrap() {
            out.push(line.text);
        }
        out
    }

    #[tokio::test]
    async fn only_what_the_runtime_lost_is_put_back() {
        let journal = vec![line(1, "one"), line(2, "two"), line(3, "three")];
        // Rotated: the runtime starts at second 3.
        assert_eq!(
            lost_before(journal.clone(), Some(&line(3, "three"))).await,
            ["one", "two"]
        );
        // Nothing lost (Docker): the runtime starts where the journal does.
        assert!(
            lost_before(journal.clone(), Some(&line(1, "one")))
                .await
                .is_empty()
        );
        // Two lines at one instant, the rotation between them: the first one is lost.
        let same = vec![line(1, "one"), line(2, "end"), line(2, "start")];
        assert_eq!(
            lost_before(same.clone(), Some(&line(2, "start"))).await,
            ["one", "end"]
        );
        // A first line the journal never saw: everything before its instant.
        assert_eq!(
            lost_before(same.clone(), Some(&line(3, "unseen"))).await,
            ["one", "end", "start"]
        );
        // Unseen, at an instant the journal has: those lines are not lost.
        assert_eq!(lost_before(same, Some(&line(2, "unseen"))).await, ["one"]);
        // The runtime serves nothing at all any more.
        assert_eq!(lost_before(journal, None).await, ["one", "two", "three"]);
    }

    #[tokio::test]
    async fn a_journal_that_ends_before_the_runtime_starts_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.journal");
        let text: String = [line(1, "one"), line(2, "two")]
            .iter()
            .map(encode)
            .collect();
        tokio::fs::write(&path, text).await.unwrap();
        let gap_for = |first: Option<LogLine>| {
            let path = path.clone();
            async move {
                let mut lost = LostBefore::open(&path, first.as_ref()).await.unwrap();
                while lost.next().await.unwrap().is_some() {}
                lost.gap()
            }
        };
        assert!(
            gap_for(Some(line(5, "later"))).await,
            "rotated past the journal"
        );
        assert!(
            !gap_for(Some(line(2, "two"))).await,
            "found: nothing lost for good"
        );
        assert!(!gap_for(None).await, "the runtime serves nothing");
        assert!(!gap_for(Some(line(1, "one"))).await);
    }
}
