//! A Job's outputs: the `key=value` lines its steps write to `$ORCAOPS_OUTPUT`, read
//! back from the runner's output markers (see the [runner](super)) into one map,
//! within [`MAX_OUTPUT_KEYS`] keys and [`MAX_OUTPUT_BYTES`] bytes. Pure.
//!
//! Each step writes its own file; the map is the steps' lines in step order, so a
//! later step that writes a key again replaces its value. A line is `key=value`
//! (the value is everything after the first `=`, possibly empty) or, for a value of
//! several lines, `key<<DELIMITER`, the lines of the value, then a line holding only
//! `DELIMITER`. Empty lines are skipped; a trailing `\r` is dropped.

use std::collections::BTreeMap;

use crate::resources::job::Step;

/// The most keys a Job's outputs hold.
pub const MAX_OUTPUT_KEYS: usize = 64;
/// The most bytes a Job's outputs hold: keys and values of the final map together.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024;
/// The most one step may write to its file (twice the map's bound: the file also holds
/// `=`, newlines, heredoc delimiters and keys written again). The runner prints only
/// the size of a larger file.
pub const MAX_STEP_FILE_BYTES: usize = 2 * MAX_OUTPUT_BYTES;

/// What one step wrote to its `ORCAOPS_OUTPUT`, as the runner's markers carried it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepOutputs {
    /// The file's bytes, kept up to one byte over [`MAX_STEP_FILE_BYTES`].
    pub bytes: Vec<u8>,
    /// The file's size, when the runner found it over the bound and did not print it.
    pub too_large: Option<u64>,
    /// The step wrote to the file, and the image has no `od` to print it with.
    pub unreadable: bool,
}

impl StepOutputs {
    pub(super) fn push_bytes(&mut self, bytes: &[u8]) {
        let room = (MAX_STEP_FILE_BYTES + 1).saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// Why a Job's outputs are refused; each names the step and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputsError {
    #[error(
        "step \"{step}\" wrote {size} bytes to $ORCAOPS_OUTPUT, over the bound of {MAX_STEP_FILE_BYTES} bytes (32 KiB) one step may write; a Job's outputs hold at most 16 KiB: keep large results in an artifact"
    )]
    StepTooLarge { step: String, size: u64 },
    #[error(
        "the Job's outputs come to {size} bytes (keys and values) with what step \"{step}\" wrote, over the bound of {MAX_OUTPUT_BYTES} bytes (16 KiB); keep large results in an artifact"
    )]
    TooLarge { step: String, size: usize },
    #[error(
        "the Job's outputs have {count} keys with what step \"{step}\" wrote, over the bound of {MAX_OUTPUT_KEYS} keys"
    )]
    TooManyKeys { step: String, count: usize },
    #[error(
        "step \"{step}\" wrote a bad line {line} to $ORCAOPS_OUTPUT ({why}): {text:?}; write `key=value` (or `key<<EOF`, lines, `EOF`), a key being a letter or `_` followed by letters, digits, `_` or `-`"
    )]
    Malformed {
        step: String,
        line: usize,
        text: String,
        why: &'static str,
    },
    #[error("step \"{step}\" wrote bytes to $ORCAOPS_OUTPUT that are not UTF-8 text")]
    NotUtf8 { step: String },
    #[error(
        "step \"{step}\" wrote to $ORCAOPS_OUTPUT, but the image has no `od` for orcaops to read the file with; use an image with coreutils or busybox"
    )]
    Unreadable { step: String },
}

/// The outputs of an attempt: the map its steps wrote, and the first reason it was
/// refused, if any (the map then holds what the steps before that one wrote, so it is
/// always within the bounds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    pub values: BTreeMap<String, String>,
    pub error: Option<OutputsError>,
}

/// Reads every step's lines, in step order, into one map within the bounds.
pub fn collect(steps: &[Step], written: &[StepOutputs]) -> Outputs {
    let mut outputs = Outputs::default();
    for (step, raw) in steps.iter().zip(written) {
        if let Err(error) = add_step(&mut outputs.values, &step.name, raw) {
            outputs.error = Some(error);
            break;
        }
    }
    outputs
}

fn add_step(
    values: &mut BTreeMap<String, String>,
    step: &str,
    raw: &StepOutputs,
) -> Result<(), OutputsError> {
    let step_name = || step.to_string();
    if raw.unreadable {
        return Err(OutputsError::Unreadable { step: step_name() });
    }
    let size = raw
        .too_large
        .unwrap_or(raw.bytes.len() as u64)
        .max(raw.bytes.len() as u64);
    if size > MAX_STEP_FILE_BYTES as u64 {
        return Err(OutputsError::StepTooLarge {
            step: step_name(),
            size,
        });
    }
    let text =
        std::str::from_utf8(&raw.bytes).map_err(|_| OutputsError::NotUtf8 { step: step_name() })?;
    // The step's lines are taken whole or not at all, so the map never passes the bounds.
    let mut with_step = values.clone();
    with_step.extend(parse_lines(step, text)?);
    if with_step.len() > MAX_OUTPUT_KEYS {
        return Err(OutputsError::TooManyKeys {
            step: step_name(),
            count: with_step.len(),
        });
    }
    let total: usize = with_step.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_OUTPUT_BYTES {
        return Err(OutputsError::TooLarge {
            step: step_name(),
            size: total,
        });
    }
    *values = with_step;
    Ok(())
}

/// The `(key, value)` pairs of one step's file, in the order written.
fn parse_lines(step: &str, text: &str) -> Result<Vec<(String, String)>, OutputsError> {
    let malformed = |line: usize, text: &str, why| OutputsError::Malformed {
        step: step.to_string(),
        line,
        text: text.to_string(),
        why,
    };
    let mut pairs = Vec::new();
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    while let Some((number, line)) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line
            .find("<<")
            .filter(|at| equals.is_none_or(|eq| *at < eq));
        let (key, value) = match (heredoc, equals) {
            (Some(at), _) => {
                let delimiter = &line[at + 2..];
                if delimiter.is_empty() {
                    return Err(malformed(number, line, "no delimiter after `<<`"));
                }
                let mut value: Vec<&str> = Vec::new();
                loop {
                    match lines.next() {
                        Some((_, l)) if l == delimiter => break,
                        Some((_, l)) => value.push(l),
                        None => {
                            return Err(malformed(
                                number,
                                line,
                                "no line closes the value with its delimiter",
                            ));
                        }
                    }
                }
                (&line[..at], value.join("\n"))
            }
            (None, Some(at)) => (&line[..at], line[at + 1..].to_string()),
            (None, None) => return Err(malformed(number, line, "no `=`")),
        };
        if key.is_empty() {
            return Err(malformed(number, line, "empty key"));
        }
        if !valid_key(key) {
            return Err(malformed(number, line, "invalid key"));
        }
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

/// A letter or `_`, then letters, digits, `_` or `-`: a name a workflow can refer to.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(names: &[&str]) -> Vec<Step> {
        names.iter().map(|n| Step::script(*n, "true")).collect()
    }

    fn written(text: &str) -> StepOutputs {
        StepOutputs {
            bytes: text.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lines_become_a_map_and_later_steps_replace_earlier_keys() {
        let outputs = collect(
            &steps(&["a", "b", "c"]),
            &[
                written("version=1.2\nempty=\nurl=http://x/?a=b\r\n\n"),
                StepOutputs::default(),
                written("version=1.3"),
            ],
        );
        assert_eq!(outputs.error, None);
        assert_eq!(
            outputs.values,
            map(&[("version", "1.3"), ("empty", ""), ("url", "http://x/?a=b")])
        );
    }

    #[test]
    fn a_heredoc_holds_a_value_of_several_lines() {
        let outputs = collect(
            &steps(&["a"]),
            &[written("notes<<EOF\nline one\nx=y\n\nEOF\nafter=1\n")],
        );
        assert_eq!(outputs.error, None);
        assert_eq!(
            outputs.values,
            map(&[("notes", "line one\nx=y\n"), ("after", "1")])
        );
        let open = collect(&steps(&["a"]), &[written("notes<<EOF\nline\n")]);
        assert!(
            matches!(open.error, Some(OutputsError::Malformed { line: 1, why, .. }) if why.contains("delimiter"))
        );
    }

    #[test]
    fn malformed_lines_name_the_step_the_line_and_why() {
        for (text, line, why) in [
            ("ok=1\nno equals here\n", 2, "no `=`"),
            ("=value", 1, "empty key"),
            ("1abc=x", 1, "invalid key"),
            ("a b=x", 1, "invalid key"),
            ("ké=x", 1, "invalid key"),
            ("k<<", 1, "no delimiter after `<<`"),
        ] {
            let outputs = collect(&steps(&["build"]), &[written(text)]);
            let error = outputs.error.expect(text);
            assert_eq!(
                error,
                OutputsError::Malformed {
                    step: "build".into(),
                    line,
                    text: text.lines().nth(line - 1).unwrap().into(),
                    why,
                },
                "{text}"
            );
            let message = error.to_string();
            assert!(message.contains("step \"build\""), "{message}");
            assert!(message.contains(&format!("line {line}")), "{message}");
        }
    }

    #[test]
    fn keys_may_hold_dashes_and_underscores() {
        for key in ["a", "_x", "build-id", "A_1-b"] {
            assert!(valid_key(key), "{key}");
        }
        for key in ["", "-a", "1", "a.b", "a=b", "a b"] {
            assert!(!valid_key(key), "{key}");
        }
    }

    #[test]
    fn more_than_64_keys_is_over_the_bound_and_says_so() {
        let sixty_four: String = (0..64).map(|i| format!("k{i}=v\n")).collect();
        let ok = collect(&steps(&["a"]), &[written(&sixty_four)]);
        assert_eq!((ok.error, ok.values.len()), (None, 64));
        // The same keys again from another step are still 64.
        let again = collect(
            &steps(&["a", "b"]),
            &[written(&sixty_four), written(&sixty_four)],
        );
        assert_eq!(again.error, None);
        let over = collect(
            &steps(&["a", "b"]),
            &[written(&sixty_four), written("one_more=x")],
        );
        let error = over.error.unwrap();
        assert_eq!(
            error,
            OutputsError::TooManyKeys {
                step: "b".into(),
                count: 65
            }
        );
        assert!(error.to_string().contains("bound of 64 keys"), "{error}");
        assert_eq!(
            over.values.len(),
            64,
            "what came before the error is kept, and the map stays within the bound"
        );
    }

    #[test]
    fn more_than_16_kib_is_over_the_bound_and_says_so() {
        let half = format!("a={}\n", "x".repeat(MAX_OUTPUT_BYTES / 2));
        let over = collect(
            &steps(&["a", "b"]),
            &[written(&half), written(&half.replace("a=", "b="))],
        );
        let error = over.error.unwrap();
        assert_eq!(
            error,
            OutputsError::TooLarge {
                step: "b".into(),
                size: MAX_OUTPUT_BYTES + 2
            }
        );
        assert!(
            error.to_string().contains("16384 bytes (16 KiB)"),
            "{error}"
        );
        // Exactly at the bound is fine (the map counts keys and values, not `=`).
        let exact = format!("a={}\n", "x".repeat(MAX_OUTPUT_BYTES - 1));
        assert_eq!(collect(&steps(&["a"]), &[written(&exact)]).error, None);
        // A file may hold more than the map when it writes a key again.
        let twice = format!("a={}\na={0}\n", "x".repeat(10_000));
        let outputs = collect(&steps(&["a"]), &[written(&twice)]);
        assert_eq!((outputs.error, outputs.values.len()), (None, 1));
        // The runner printed only the size of a file over the bound.
        let huge = StepOutputs {
            too_large: Some(1 << 30),
            ..Default::default()
        };
        let error = collect(&steps(&["big"]), &[huge]).error.unwrap();
        assert_eq!(
            error,
            OutputsError::StepTooLarge {
                step: "big".into(),
                size: 1 << 30
            }
        );
        assert!(error.to_string().contains("1073741824 bytes"), "{error}");
    }

    #[test]
    fn bytes_past_the_bound_are_not_kept() {
        let mut raw = StepOutputs::default();
        for _ in 0..100 {
            raw.push_bytes(&[b'x'; 1000]);
        }
        assert_eq!(raw.bytes.len(), MAX_STEP_FILE_BYTES + 1);
        assert!(matches!(
            collect(&steps(&["a"]), &[raw]).error,
            Some(OutputsError::StepTooLarge { .. })
        ));
    }

    #[test]
    fn not_utf8_and_unreadable_name_the_step() {
        let bad = StepOutputs {
            bytes: vec![b'k', b'=', 0xff],
            ..Default::default()
        };
        assert_eq!(
            collect(&steps(&["s"]), &[bad]).error,
            Some(OutputsError::NotUtf8 { step: "s".into() })
        );
        let unreadable = StepOutputs {
            unreadable: true,
            ..Default::default()
        };
        let error = collect(&steps(&["s"]), &[unreadable]).error.unwrap();
        assert!(error.to_string().contains("no `od`"), "{error}");
    }
}
