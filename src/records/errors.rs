//! Error lines picked out of a step's output: the first few lines that look like a
//! failure, with their line numbers, so a summary can name the failing step and its
//! first error without anyone reading the whole log.
//!
//! What counts as an error line (each rule is checked on one line, in this order):
//!
//! | rule | examples |
//! | --- | --- |
//! | a Python traceback's exception line: the first unindented line after `Traceback (most recent call last):` | `FileNotFoundError: [Errno 2] ...` |
//! | a panic | Rust `thread 'main' panicked at src/x.rs:5:21:`, Go `panic: runtime error: ...` |
//! | a Java (or Kotlin, Scala) exception | `Exception in thread "main" java.lang.X: ...`, `Caused by: ...` |
//! | npm | `npm ERR! ...`, `npm error ...` (the first of a run of them) |
//! | make | `make: *** [Makefile:4: build] Error 1`, `make[2]: *** ...` |
//! | a word `error` or `fatal` followed by `:` or `[`, in any case | `error: linking failed`, `ERROR: x`, `error[E0308]: ...`, `cc1: fatal error: ...`, `fatal: not a git repository` |
//! | an identifier ending in `Error` or `Exception` followed by `:` | `TypeError: x is undefined` |
//! | the word `Error` or `FAILED` on its own | `Error opening file`, `test result: FAILED` |
//!
//! Lines like `0 errors`, `-Werror` or `error_count=0` do not match. At most
//! [`MAX_ERRORS`] lines are kept, each cut to [`MAX_ERROR_CHARS`] characters.
//!
//! [`signature`] masks what changes from run to run (numbers, hex ids, paths, quoted
//! values), so the same failure in two runs has the same signature and a new one stands
//! out.

/// The most error lines kept per step.
pub const MAX_ERRORS: usize = 5;
/// The longest error line kept, in characters; longer ones are cut with `…`.
pub const MAX_ERROR_CHARS: usize = 240;

/// One line of output that looks like an error (the type is the Job status's).
pub use crate::resources::job::ErrorLine;

/// The first [`MAX_ERRORS`] error lines of `lines`, in order.
pub fn extract<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<ErrorLine> {
    let mut extractor = Extractor::default();
    for line in lines {
        if extractor.is_full() {
            break;
        }
        extractor.push(line);
    }
    extractor.finish()
}

/// [`extract`] one line at a time, for output read as a stream: the state between
/// lines (inside a traceback, after an npm line) is kept here.
#[derive(Clone, Debug, Default)]
pub struct Extractor {
    found: Vec<ErrorLine>,
    /// Lines seen so far.
    lines: usize,
    in_traceback: bool,
    previous_npm: bool,
}

impl Extractor {
    /// Whether [`MAX_ERRORS`] lines were found: later lines change nothing.
    pub fn is_full(&self) -> bool {
        self.found.len() >= MAX_ERRORS
    }

    /// Looks at the next line.
    pub fn push(&mut self, raw: &str) {
        self.lines += 1;
        if self.is_full() {
            return;
        }
        let line = raw.trim_end_matches(['\r', '\n']);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return;
        }
        let mut is_error = false;
        if self.in_traceback {
            // The frames are indented; the exception line that ends it is not.
            if line.starts_with([' ', '\t']) {
                return;
            }
            self.in_traceback = false;
            is_error = true;
        } else if trimmed.starts_with("Traceback (most recent call last)") {
            self.in_traceback = true;
            return;
        }
        let npm = trimmed.starts_with("npm ERR!") || trimmed.starts_with("npm error");
        if npm {
            // npm repeats its prefix on every line of one message: keep the first.
            is_error = !self.previous_npm;
        } else if !is_error {
            is_error = looks_like_error(trimmed);
        }
        self.previous_npm = npm;
        if is_error {
            self.found.push(ErrorLine {
                line: self.lines,
                text: clip(trimmed),
            });
        }
    }

    /// The error lines found, in order.
    pub fn finish(self) -> Vec<ErrorLine> {
        self.found
    }
}

fn looks_like_error(line: &str) -> bool {
    if line.contains("panicked at") || line.starts_with("panic: ") {
        return true;
    }
    if line.starts_with("Exception in thread") || line.starts_with("Caused by:") {
        return true;
    }
    if (line.starts_with("make: ***") || line.starts_with("make[")) && line.contains("***") {
        return true;
    }
    let words = words(line);
    for (i, (word, next)) in words.iter().enumerate() {
        let lower = word.to_ascii_lowercase();
        // `error:` / `ERROR:` / `error[E0308]:` / `fatal:` / `fatal error:`
        if (lower == "error" || lower == "fatal") && matches!(next, Some(':' | '[')) {
            return true;
        }
        if lower == "error" && i > 0 && words[i - 1].0.eq_ignore_ascii_case("fatal") {
            return true;
        }
        // `TypeError:`, `java.io.IOException:`
        if word.len() > "Error".len()
            && (word.ends_with("Error") || word.ends_with("Exception"))
            && *next == Some(':')
        {
            return true;
        }
        if *word == "Error" || *word == "FAILED" {
            return true;
        }
    }
    false
}

/// The words of a line (letters, digits, `_`, `.`, `$`), each with the character that
/// follows it.
fn words(line: &str) -> Vec<(&str, Option<char>)> {
    let is_word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '$');
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (start, is_word(c)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                out.push((line[s..i].trim_end_matches('.'), Some(c)));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((line[s..].trim_end_matches('.'), None));
    }
    out
}

fn clip(line: &str) -> String {
    match line.char_indices().nth(MAX_ERROR_CHARS) {
        None => line.to_string(),
        Some((at, _)) => format!("{}…", &line[..at]),
    }
}

/// `line` with what varies between runs masked: quoted values as `'…'`, paths as `<path>`,
/// hex ids (`0x…`, or 8+ hex digits) as `<hex>`, numbers as `<n>`; spaces collapsed.
pub fn signature(line: &str) -> String {
    let mut out = Vec::new();
    for token in line.split_whitespace() {
        out.push(mask_token(token));
    }
    out.join(" ")
}

fn mask_token(token: &str) -> String {
    let core = token.trim_matches(|c: char| matches!(c, ',' | ';' | ')' | '(' | ']' | '['));
    if core.len() >= 2
        && ((core.starts_with('\'') && core.ends_with('\''))
            || (core.starts_with('"') && core.ends_with('"')))
    {
        return token.replace(core, "'…'");
    }
    if core.contains('/') && core.len() > 1 {
        return token.replace(core, "<path>");
    }
    let hexish = |s: &str| {
        (s.len() >= 3 && s.starts_with("0x") && s[2..].chars().all(|c| c.is_ascii_hexdigit()))
            || (s.len() >= 8
                && s.chars().all(|c| c.is_ascii_hexdigit())
                && s.chars().any(|c| c.is_ascii_digit()))
    };
    if hexish(core) {
        return token.replace(core, "<hex>");
    }
    let mut masked = String::with_capacity(token.len());
    let mut in_number = false;
    for c in token.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                masked.push_str("<n>");
                in_number = true;
            }
        } else {
            in_number = false;
            masked.push(c);
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output saved from the real tools (tests/fixtures/errors/).
    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/errors/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn texts(errors: &[ErrorLine]) -> Vec<(usize, &str)> {
        errors.iter().map(|e| (e.line, e.text.as_str())).collect()
    }

    #[test]
    fn a_python_traceback_gives_its_exception_line_not_the_frames() {
        let errors = extract(fixture("python-traceback.txt").lines());
        assert_eq!(
            texts(&errors),
            [(
                8,
                "FileNotFoundError: [Errno 2] No such file or directory: '/etc/orcaops/missing.json'"
            )]
        );
    }

    #[test]
    fn a_failing_make_gives_the_compiler_error_and_makes_summary() {
        let errors = extract(fixture("make-failure.txt").lines());
        assert_eq!(
            texts(&errors),
            [
                (2, "cc1: fatal error: nope.c: No such file or directory"),
                (4, "make: *** [Makefile:4: build] Error 1"),
            ]
        );
    }

    #[test]
    fn a_rust_panic_gives_the_panicked_at_line() {
        let errors = extract(fixture("rust-panic.txt").lines());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 3);
        assert!(
            errors[0].text.contains("panicked at p.rs:5:21"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_java_exception_gives_the_exception_and_its_cause() {
        let errors = extract(fixture("java-exception.txt").lines());
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4], "{errors:?}");
        assert!(
            errors[0]
                .text
                .starts_with("Exception in thread \"main\" java.lang.IllegalStateException")
        );
        assert!(
            errors[1]
                .text
                .starts_with("Caused by: java.lang.NumberFormatException")
        );
    }

    #[test]
    fn npm_counts_once_per_run_of_its_prefix() {
        let errors = extract(fixture("npm-missing-script.txt").lines());
        assert_eq!(texts(&errors), [(1, "npm error Missing script: \"test\"")]);
        let old = extract(["npm ERR! code ELIFECYCLE", "npm ERR! errno 1", "done"]);
        assert_eq!(texts(&old), [(1, "npm ERR! code ELIFECYCLE")]);
    }

    #[test]
    fn a_go_panic_and_common_error_forms_match() {
        let output = [
            "starting",
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "goroutine 1 [running]:",
            "error[E0308]: mismatched types",
            "ERROR: relation \"users\" does not exist",
            "fatal: not a git repository (or any of the parent directories): .git",
            "TypeError: x is undefined",
        ];
        let errors = extract(output);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4, 5, 6, 7], "{errors:?}");
    }

    #[test]
    fn ordinary_lines_that_mention_errors_do_not_match() {
        let output = [
            "compiled with 0 errors and 2 warnings",
            "cc -Wall -Werror -o app app.c",
            "error_count=0",
            "checking for errors... none",
            "ErrorHandler registered",
            "tests passed: 12, failed: 0",
        ];
        assert_eq!(extract(output), []);
    }

    #[test]
    fn at_most_five_lines_are_kept_and_long_ones_are_cut() {
        let long = format!("error: {}", "x".repeat(1000));
        let lines: Vec<&str> = std::iter::repeat_n(long.as_str(), 8).collect();
        let errors = extract(lines);
        assert_eq!(errors.len(), MAX_ERRORS);
        assert_eq!(errors[0].text.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(errors[0].text.ends_with('…'));
    }

    #[test]
    fn signatures_mask_what_changes_between_runs() {
        let a = signature("FileNotFoundError: [Errno 2] No such file: '/tmp/run-17/a.json'");
        let b = signature("FileNotFoundError: [Errno 2] No such file: '/tmp/run-18/a.json'");
        assert_eq!(a, b);
        assert_eq!(
            signature("thread 'main' (6032) panicked at p.rs:5:21:"),
            "thread '…' (<n>) panicked at p.rs:<n>:<n>:"
        );
        assert_eq!(
            signature("segfault at 0x7ffd3a2b in deadbeef42 after 120ms"),
            "segfault at <hex> in <hex> after <n>ms"
        );
        assert_eq!(
            signature("open /var/lib/x/1.db: permission denied"),
            "open <path> permission denied"
        );
        assert_ne!(
            signature("error: connection refused"),
            signature("error: connection reset")
        );
    }
}
