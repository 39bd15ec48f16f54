//! Splitting a file into its YAML documents on `---` lines, before any YAML parsing.
//!
//! Splitting first means a syntax error in one document cannot hide the documents after it
//! (the YAML parser stops at the first syntax error of a stream), and each document keeps the
//! line it starts on so that errors give line numbers counted from the top of the file.

use std::borrow::Cow;

/// One document's text and where it sits in the file.
#[derive(Debug, PartialEq)]
pub(super) struct Chunk<'a> {
    /// The file line (1-based) that line 1 of `text` is.
    pub start_line: u64,
    /// The first line with content (not blank, not a comment): where document-wide errors point.
    pub first_content_line: Option<u64>,
    /// The document, with a leading `---` blanked out so that columns stay those of the file.
    pub text: Cow<'a, str>,
}

impl Chunk<'_> {
    /// Converts a line of `text` (1-based) into a line of the file.
    pub fn file_line(&self, line: u64) -> u64 {
        self.start_line + line.saturating_sub(1)
    }
}

/// `---` or `...` at the start of a line, alone or followed by whitespace.
fn marker<'l>(line: &'l str, marker: &str) -> Option<&'l str> {
    let rest = line.strip_prefix(marker)?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// Blank lines, comments and directives (`%YAML 1.2`) carry no document content.
fn has_content(line: &str) -> bool {
    let trimmed = line.trim();
    !(trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%'))
}

struct Builder<'a> {
    text: &'a str,
    chunks: Vec<Chunk<'a>>,
    /// Byte offset and file line where the current document starts.
    start: usize,
    start_line: u64,
    /// Whether the current document begins on a `---` line that also holds content.
    inline_marker: bool,
    first_content_line: Option<u64>,
}

impl<'a> Builder<'a> {
    fn finish(&mut self, end: usize) {
        let slice = &self.text[self.start..end];
        let text = if self.inline_marker {
            // "--- {a: 1}" keeps its columns: the marker becomes three spaces.
            Cow::Owned(format!("   {}", &slice[3..]))
        } else {
            Cow::Borrowed(slice)
        };
        if self.first_content_line.is_some() {
            self.chunks.push(Chunk {
                start_line: self.start_line,
                first_content_line: self.first_content_line,
                text,
            });
        }
        self.first_content_line = None;
        self.inline_marker = false;
    }
}

/// Splits `text` into documents; documents with no content (only blank lines, comments or
/// directives) are left out.
pub(super) fn documents(text: &str) -> Vec<Chunk<'_>> {
    let mut b = Builder {
        text,
        chunks: Vec::new(),
        start: 0,
        start_line: 1,
        inline_marker: false,
        first_content_line: None,
    };
    let mut offset = 0;
    for (index, raw_line) in text.split_inclusive('\n').enumerate() {
        let line_number = index as u64 + 1;
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let next = offset + raw_line.len();
        if let Some(rest) = marker(line, "---") {
            b.finish(offset);
            if has_content(rest) {
                b.start = offset;
                b.start_line = line_number;
                b.inline_marker = true;
                b.first_content_line = Some(line_number);
            } else {
                b.start = next;
                b.start_line = line_number + 1;
            }
        } else if marker(line, "...").is_some() {
            // A document end: what follows, up to the next `---`, is a new bare document.
            b.finish(offset);
            b.start = next;
            b.start_line = line_number + 1;
        } else if b.first_content_line.is_none() && has_content(line) {
            b.first_content_line = Some(line_number);
        }
        offset = next;
    }
    b.finish(text.len());
    b.chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(u64, Option<u64>, String)> {
        documents(text)
            .into_iter()
            .map(|c| (c.start_line, c.first_content_line, c.text.into_owned()))
            .collect()
    }

    #[test]
    fn splits_on_marker_lines_and_keeps_file_lines() {
        let text = "a: 1\n---\n# comment\nb: 2\n---\n---\n\n";
        assert_eq!(
            lines(text),
            vec![
                (1, Some(1), "a: 1\n".to_string()),
                (3, Some(4), "# comment\nb: 2\n".to_string())
            ]
        );
    }

    #[test]
    fn leading_marker_and_directives_make_no_document() {
        let text = "%YAML 1.2\n---\nkind: Job\n";
        assert_eq!(lines(text), vec![(3, Some(3), "kind: Job\n".to_string())]);
    }

    #[test]
    fn inline_content_after_the_marker_keeps_its_columns() {
        let text = "--- {a: 1}\n";
        assert_eq!(lines(text), vec![(1, Some(1), "    {a: 1}\n".to_string())]);
    }

    #[test]
    fn dashes_that_are_not_markers_stay_in_the_document() {
        let text = "run: |\n  ---\n----: x\n---x: y\n";
        assert_eq!(lines(text).len(), 1);
    }

    #[test]
    fn document_end_marker_ends_a_document() {
        let text = "a: 1\n...\nb: 2\r\n";
        assert_eq!(
            lines(text),
            vec![
                (1, Some(1), "a: 1\n".to_string()),
                (3, Some(3), "b: 2\r\n".to_string())
            ]
        );
    }
}
