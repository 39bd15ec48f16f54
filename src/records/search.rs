//! Searching run records across Jobs (`orcaops history --all`, `GET .../runs`, the MCP
//! tool `search_runs`): the query, the text a run is found by, and how a `--grep` is
//! put to SQLite's full-text index.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::RunRecord;

/// The most text of one run the index holds.
pub const INDEXED_BYTES: usize = 32 << 10;

/// The most runs one search returns.
pub const MAX_LIMIT: usize = 1000;

/// Which runs to find; every filter set must hold. Newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunQuery {
    /// The workspace (namespace); None: every one.
    pub namespace: Option<String>,
    /// The Job's name.
    pub name: Option<String>,
    /// The run's phase (`Succeeded`, `Failed`, `TimedOut`, `Cancelled`).
    pub phase: Option<String>,
    /// Finished (else started) at or after.
    pub since: Option<DateTime<Utc>>,
    /// Finished (else started) before.
    pub until: Option<DateTime<Utc>>,
    /// Labels the Job had when the run ended, each `key=value`.
    pub labels: BTreeMap<String, String>,
    /// The image as the spec named it: `busybox` matches `busybox`, `busybox:1.36` and
    /// `busybox@sha256:…`.
    pub image: Option<String>,
    /// Only runs that showed an anomaly.
    pub anomalous: bool,
    /// Words or a phrase in the summary, error lines or output tails.
    pub grep: Option<String>,
    pub limit: usize,
}

/// What a run is found by: its summary, its steps' error lines and output tails, cut at
/// [`INDEXED_BYTES`].
pub fn search_text(rec: &RunRecord) -> String {
    let mut text = rec.summary.clone();
    for step in &rec.steps {
        for e in &step.errors {
            text.push('\n');
            text.push_str(&e.text);
        }
    }
    for step in &rec.steps {
        text.push('\n');
        text.push_str(&step.output_tail);
    }
    if text.len() > INDEXED_BYTES {
        let mut end = INDEXED_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// `--grep TEXT` as an FTS5 query: the words of TEXT as one phrase, so that what a
/// person types (quotes, colons, `*`, `AND`) is searched for, never read as query
/// syntax. None when TEXT has no word to search for.
pub fn fts_phrase(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return None;
    }
    Some(format!("\"{}\"", words.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grep_is_one_phrase_of_its_words_never_query_syntax() {
        assert_eq!(
            fts_phrase("error: undefined reference").as_deref(),
            Some("\"error undefined reference\"")
        );
        assert_eq!(
            fts_phrase("\" OR x* AND NEAR(a b)").as_deref(),
            Some("\"OR x AND NEAR a b\"")
        );
        assert_eq!(fts_phrase(" :*\" "), None);
    }
}
