//! Writes an attempt's output, once, into the attempt log, with the step index that
//! gives each step its view of it (`attempt-N.steps`, see
//! [`crate::records::output::step_range`]), and cuts it at the server's output cap
//! with a visible marker. The follower writes it live; the harvest writes it again
//! from the runtime's whole log under a temporary name and renames it into place.
//! Either way memory is one line, whatever the job prints.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncWriteExt, BufWriter};

use crate::records::output::{Admit, OutputCap, cut_marker, encode_step_start};

pub(super) struct LogWriter {
    log: BufWriter<tokio::fs::File>,
    index: BufWriter<tokio::fs::File>,
    cap: OutputCap,
    offset: u64,
    /// Steps whose start is in the index.
    started: Vec<bool>,
}

impl LogWriter {
    /// Creates (or empties) the log at `log_path` and the step index at `index_path`.
    pub(super) async fn create(
        log_path: &Path,
        index_path: &Path,
        step_count: usize,
        max_output_bytes: u64,
    ) -> std::io::Result<LogWriter> {
        if let Some(dir) = log_path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        Ok(LogWriter {
            log: BufWriter::new(tokio::fs::File::create(log_path).await?),
            index: BufWriter::new(tokio::fs::File::create(index_path).await?),
            cap: OutputCap::new(max_output_bytes),
            offset: 0,
            started: vec![false; step_count],
        })
    }

    /// Notes that `step` runs from here on (once per step).
    pub(super) async fn step_started(&mut self, step: Option<usize>) -> std::io::Result<()> {
        if let Some(i) = step
            && let Some(started) = self.started.get_mut(i)
            && !*started
        {
            *started = true;
            self.index
                .write_all(encode_step_start(i, self.offset).as_bytes())
                .await?;
        }
        Ok(())
    }

    /// Appends one line of output (of `step`, None before the first) unless the log was
    /// cut. Returns whether it counted: it was written, or it is the line that cut the
    /// log (the journal keeps it, so a harvest replaying the journal cuts at it too).
    pub(super) async fn push(&mut self, step: Option<usize>, text: &str) -> std::io::Result<bool> {
        self.step_started(step).await?;
        match self.cap.admit(text.len() as u64 + 1) {
            Admit::Write => {
                self.log.write_all(text.as_bytes()).await?;
                self.log.write_all(b"\n").await?;
                self.offset += text.len() as u64 + 1;
                Ok(true)
            }
            Admit::Cut => {
                let marker = cut_marker(self.cap.limit());
                self.log.write_all(marker.as_bytes()).await?;
                self.log.write_all(b"\n").await?;
                self.offset += marker.len() as u64 + 1;
                Ok(true)
            }
            Admit::Drop => Ok(false),
        }
    }

    /// Writes a line of orcaops' own (not counted against the cap) unless the log was cut.
    pub(super) async fn note(&mut self, text: &str) -> std::io::Result<()> {
        if self.cap.was_cut() {
            return Ok(());
        }
        self.log.write_all(text.as_bytes()).await?;
        self.log.write_all(b"\n").await?;
        self.offset += text.len() as u64 + 1;
        Ok(())
    }

    /// Whether the output went past the cap.
    pub(super) fn was_cut(&self) -> bool {
        self.cap.was_cut()
    }

    /// Makes what was written visible to readers.
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.index.flush().await?;
        self.log.flush().await
    }
}

/// The temporary name a harvest writes `path` under before renaming it into place.
pub(super) fn partial(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::output::{decode_step_index, step_range};

    #[tokio::test]
    async fn the_log_is_cut_with_a_marker_and_steps_are_ranges_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let (log, index) = (dir.path().join("a.log"), dir.path().join("a.steps"));
        let mut writer = LogWriter::create(&log, &index, 3, 20).await.unwrap();
        assert!(writer.push(None, "pre").await.unwrap());
        assert!(writer.push(Some(0), "one").await.unwrap());
        writer.step_started(Some(1)).await.unwrap();
        assert!(writer.push(Some(2), "two").await.unwrap());
        assert!(writer.push(Some(2), "x").await.unwrap());
        assert!(
            writer.push(Some(2), "over the cap").await.unwrap(),
            "it cuts"
        );
        assert!(!writer.push(Some(2), "dropped").await.unwrap());
        assert!(writer.was_cut());
        writer.flush().await.unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, format!("pre\none\ntwo\nx\n{}\n", cut_marker(20)));
        let starts = decode_step_index(&std::fs::read_to_string(&index).unwrap());
        let view = |i| {
            let (from, to) = step_range(&starts, i).unwrap();
            text[from as usize..to.map_or(text.len(), |t| t as usize)].to_string()
        };
        assert_eq!(view(0), "pre\none\n");
        assert_eq!(view(1), "");
        assert!(view(2).starts_with("two\nx\n[orcaops: output cut at 20 bytes"));
        assert_eq!(
            partial(&log).file_name().unwrap().to_str(),
            Some("a.log.partial")
        );
    }
}
