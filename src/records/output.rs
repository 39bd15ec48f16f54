//! The pure parts of keeping an attempt's output bounded: the per-attempt output cap
//! and its marker, the step index that gives each step its view of the one attempt
//! log, and finding where the last lines of a log start by reading it backwards.
//!
//! An attempt's output is stored once, in the attempt log; the steps' views are byte
//! ranges of it, recorded in `attempt-N.steps` as the steps start (see
//! [`super::step_index`]). So neither the server nor the controller ever holds a whole
//! log in memory, whatever a job prints.

use std::io::{self, Read, Seek, SeekFrom};

/// The output an attempt keeps unless the server is told otherwise (`--max-output-bytes`).
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Sizes as people read them: `64 MiB`, `1.5 KiB`, `100 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

/// The line that ends an attempt log cut at `limit` bytes.
pub fn cut_marker(limit: u64) -> String {
    format!(
        "[orcaops: output cut at {}; the step kept running, its further output was discarded]",
        human_bytes(limit)
    )
}

/// What to do with the next line of output.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write it.
    Write,
    /// It does not fit: write the cut marker instead, once.
    Cut,
    /// The log was cut already: drop it.
    Drop,
}

/// Counts the bytes written to one attempt log against its cap. Whole lines only: a
/// line that does not fit is not written in part, so the log ends with the marker.
#[derive(Debug, Clone)]
pub struct OutputCap {
    limit: u64,
    written: u64,
    cut: bool,
}

impl OutputCap {
    pub fn new(limit: u64) -> OutputCap {
        OutputCap {
            limit,
            written: 0,
            cut: false,
        }
    }

    /// Accounts for a line of `len` bytes (with its newline).
    pub fn admit(&mut self, len: u64) -> Admit {
        if self.cut {
            return Admit::Drop;
        }
        if self.written.saturating_add(len) <= self.limit {
            self.written += len;
            return Admit::Write;
        }
        self.cut = true;
        Admit::Cut
    }

    /// Whether the output was cut.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// One line of a step index: step `index` (0-based) starts at `offset` in the attempt log.
pub fn encode_step_start(index: usize, offset: u64) -> String {
    format!("{index} {offset}\n")
}

/// The step starts of a step index file; unreadable (torn) lines are skipped.
pub fn decode_step_index(text: &str) -> Vec<(usize, u64)> {
    text.lines()
        .filter_map(|line| {
            let (index, offset) = line.split_once(' ')?;
            Some((index.parse().ok()?, offset.parse().ok()?))
        })
        .collect()
}

/// The byte range of step `index` in the attempt log: from its start to the start of the
/// next step that started (None: to the end of the log). The output before the first
/// step (the runner's own, a shell error) belongs to the first step. A step that has not
/// started has no range.
pub fn step_range(starts: &[(usize, u64)], index: usize) -> Option<(u64, Option<u64>)> {
    let start = match starts.iter().find(|(i, _)| *i == index) {
        Some(_) if index == 0 => 0,
        Some((_, offset)) => *offset,
        None if index == 0 => 0,
        None => return None,
    };
    let end = starts
        .iter()
        .filter(|(i, _)| *i > index)
        .map(|(_, offset)| *offset)
        .min();
    Some((start, end))
}

/// How much [`tail_start`] reads at a time.
const TAIL_BLOCK: usize = 16 * 1024;

/// Where the last `n` lines of `reader[start..end]` begin, reading blocks backwards from
/// `end`: memory is one block, whatever the size of the log. A last line without its
/// newline counts as a line.
pub fn tail_start<R: Read + Seek>(
    reader: &mut R,
    start: u64,
    end: u64,
    n: usize,
) -> io::Result<u64> {
    if n == 0 {
        return Ok(end);
    }
    let mut block = vec![0u8; TAIL_BLOCK];
    let mut pos = end;
    let mut seen = 0usize;
    // A newline that ends the view ends its last line; it does not start another.
    let mut skip_last = true;
    while pos > start {
        let len = (pos - start).min(TAIL_BLOCK as u64) as usize;
        pos -= len as u64;
        reader.seek(SeekFrom::Start(pos))?;
        reader.read_exact(&mut block[..len])?;
        for i in (0..len).rev() {
            if block[i] != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            seen += 1;
            if seen == n {
                return Ok(pos + i as u64 + 1);
            }
        }
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn tail(text: &[u8], n: usize) -> u64 {
        tail_start(&mut Cursor::new(text), 0, text.len() as u64, n).unwrap()
    }

    #[test]
    fn tails_match_the_lines_they_name() {
        assert_eq!(tail(b"a\nb\nc\n", 2), 2);
        assert_eq!(tail(b"a\nb\nc", 1), 4);
        assert_eq!(tail(b"a\nb\n", 5), 0);
        assert_eq!(tail(b"a\nb\n", 0), 4);
        assert_eq!(tail(b"", 3), 0);
        assert_eq!(tail(b"\n\n\n", 1), 2);
    }

    #[test]
    fn a_tail_across_many_blocks_reads_backwards_to_the_right_line() {
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        let bytes = text.as_bytes();
        let at = tail(bytes, 3) as usize;
        assert_eq!(&text[at..], "line 99997\nline 99998\nline 99999\n");
        // A line longer than a block.
        let long = format!("first\n{}\nlast\n", "x".repeat(3 * TAIL_BLOCK + 5));
        let at = tail(long.as_bytes(), 2) as usize;
        assert!(long[at..].starts_with("xxx") && long[at..].ends_with("\nlast\n"));
        // Within a range: the view ends before the file does.
        let mut cursor = Cursor::new(b"skip\na\nb\nc\nafter\n".to_vec());
        assert_eq!(tail_start(&mut cursor, 5, 11, 2).unwrap(), 7);
        assert_eq!(tail_start(&mut cursor, 5, 11, 9).unwrap(), 5);
    }

    #[test]
    fn the_cap_admits_whole_lines_then_cuts_once() {
        let mut cap = OutputCap::new(10);
        assert_eq!(cap.admit(6), Admit::Write);
        assert_eq!(cap.admit(4), Admit::Write);
        assert!(!cap.was_cut());
        assert_eq!(cap.admit(1), Admit::Cut);
        assert_eq!(cap.admit(1), Admit::Drop);
        assert!(cap.was_cut());
        let mut small = OutputCap::new(3);
        assert_eq!(
            small.admit(100),
            Admit::Cut,
            "a line over the cap is not written in part"
        );
    }

    #[test]
    fn markers_and_sizes_read_well() {
        assert_eq!(
            cut_marker(64 << 20),
            "[orcaops: output cut at 64 MiB; the step kept running, its further output was discarded]"
        );
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
    }

    #[test]
    fn step_ranges_come_from_the_starts() {
        let starts = decode_step_index("0 5\n2 40\n1 20\ntorn");
        assert_eq!(starts, [(0, 5), (2, 40), (1, 20)]);
        // The first step owns what came before it.
        assert_eq!(step_range(&starts, 0), Some((0, Some(20))));
        assert_eq!(step_range(&starts, 1), Some((20, Some(40))));
        assert_eq!(step_range(&starts, 2), Some((40, None)));
        assert_eq!(step_range(&starts, 3), None);
        assert_eq!(step_range(&[], 0), Some((0, None)));
        assert_eq!(encode_step_start(1, 20), "1 20\n");
    }
}
