//! Turning YAML and serde errors into messages a person can act on: what is wrong, where, and
//! the fix (with a `did you mean` when a name is close to a known one).

use serde_json::Value;
use serde_path_to_error::{Path, Segment};
use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};

/// One problem, positioned in the document's own text.
#[derive(Debug, PartialEq)]
pub(super) struct Problem {
    pub location: Option<(u64, u64)>,
    pub field: Option<String>,
    pub message: String,
    pub fix: Option<String>,
}

/// The known name closest to `word`, when it is close enough to be what was meant.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // `timeout_seconds`, `TimeoutSeconds` and `timeout-seconds` all mean `timeoutSeconds`.
    let squash = |s: &str| {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    };
    let word_squashed = squash(word);
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let squashed = squash(candidate);
        let score = if squashed == word_squashed {
            2.0
        } else if strsim::damerau_levenshtein(&squashed, &word_squashed)
            <= 1 + word_squashed.len() / 5
        {
            1.0 + strsim::jaro_winkler(&squashed, &word_squashed)
        } else {
            strsim::jaro_winkler(&squashed, &word_squashed)
        };
        if score >= 0.85 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// The error itself, under the wrappers that only add context.
fn original(mut err: &Error) -> &Error {
    loop {
        match err {
            Error::WithSnippet { error, .. } | Error::AliasError { error, .. } => err = error,
            other => return other,
        }
    }
}

/// The error's message alone, without serde-saphyr's "at line X, column Y" suffix.
fn plain_message(err: &Error) -> String {
    UserMessageFormatter
        .format_message(original(err))
        .into_owned()
}

/// A field path as written in YAML: `spec.steps[0].command`. `None` for the document itself.
pub(super) fn field_path(path: &Path) -> Option<String> {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => break,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The value at `path` in the leniently read document, to say what was found.
fn value_at<'v>(raw: &'v Value, path: &Path) -> Option<&'v Value> {
    let mut value = raw;
    for segment in path.iter() {
        value = match segment {
            Segment::Seq { index } => value.get(*index)?,
            Segment::Map { key } => value.get(key)?,
            Segment::Enum { .. } | Segment::Unknown => return None,
        };
    }
    Some(value)
}

/// Says what a value is, quoting short scalars: `the text "echo hi"`, `a list`.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("the text {s:?}"),
        Value::String(_) => "a text".to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

/// What serde or serde-saphyr says it expected, in the words of a YAML author.
fn expected_words(expected: &str) -> String {
    let expected = expected.trim();
    match expected {
        "sequence start" | "a sequence" => "a list".into(),
        "mapping start" | "a map" => "a mapping (indented `key: value` lines)".into(),
        "string scalar" | "scalar" | "a string" => "a single value (text)".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "u128" => {
            let max = match expected {
                "u8" => u8::MAX.to_string(),
                "u16" => u16::MAX.to_string(),
                "u32" => u32::MAX.to_string(),
                _ => u64::MAX.to_string(),
            };
            format!("a whole number from 0 to {max}")
        }
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "a whole number".into(),
        "f32" | "f64" | "floating point" => "a number".into(),
        "boolean" | "a boolean" => "true or false".into(),
        "char" | "a character" => "a single character".into(),
        other => match other.strip_prefix("struct ") {
            Some(_) => "a mapping (indented `key: value` lines)".into(),
            None => other.to_string(),
        },
    }
}

/// How to write a value of the expected shape, for the `fix:` line.
fn shape_fix(leaf: &str, expected: &str) -> String {
    if expected.starts_with("a list") {
        format!("make \"{leaf}\" a list: one \"- item\" line per entry, or [a, b]")
    } else if expected.starts_with("a mapping") {
        format!(
            "make \"{leaf}\" a mapping of fields, each `name: value` on its own line, indented under it"
        )
    } else if expected.starts_with("a whole number") {
        format!("set \"{leaf}\" to {expected}, without quotes or units")
    } else if expected.starts_with("a number") {
        format!("set \"{leaf}\" to a number, without quotes or units")
    } else if expected == "true or false" {
        format!("set \"{leaf}\" to true or false")
    } else {
        format!("set \"{leaf}\" to {expected}")
    }
}

/// Builds the problem for a failed strict read. `path` is where serde was when it failed;
/// `raw` is the same document read leniently.
pub(super) fn from_serde(err: &Error, path: &Path, raw: &Value) -> Problem {
    let location = err.location().map(|l| (l.line(), l.column()));
    let field = field_path(path);
    let leaf = path
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .next_back()
        .unwrap_or("this value")
        .to_string();
    let found = || {
        value_at(raw, path)
            .map(|v| format!(", found {}", describe(v)))
            .unwrap_or_default()
    };
    let (message, fix) = match original(err) {
        Error::SerdeUnknownField {
            field: unknown,
            expected,
            ..
        } => {
            let known = expected.join(", ");
            match closest(unknown, expected.iter().copied()) {
                Some(near) => (
                    format!("unknown field \"{unknown}\", did you mean \"{near}\"?"),
                    format!("rename \"{unknown}\" to \"{near}\""),
                ),
                None => (
                    format!("unknown field \"{unknown}\" (known fields here: {known})"),
                    format!("remove \"{unknown}\", or use one of: {known}"),
                ),
            }
        }
        Error::SerdeMissingField { field: missing, .. } => {
            let parent = field.clone().unwrap_or_else(|| "the document".into());
            let full = match &field {
                Some(parent) => format!("{parent}.{missing}"),
                None => missing.to_string(),
            };
            return Problem {
                location,
                field: Some(full),
                message: format!("missing required field \"{missing}\""),
                fix: Some(format!("add \"{missing}:\" to {parent}")),
            };
        }
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let known = expected.join(", ");
            match closest(variant, expected.iter().copied()) {
                Some(near) => (
                    format!(
                        "\"{variant}\" is not a valid value, did you mean \"{near}\"? (expected one of {known})"
                    ),
                    format!("change \"{variant}\" to \"{near}\""),
                ),
                None => (
                    format!("\"{variant}\" is not a valid value (expected one of {known})"),
                    format!("use one of: {known}"),
                ),
            }
        }
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => {
            let expected = expected_words(expected);
            (
                format!("expected {expected}, found {unexpected}"),
                shape_fix(&leaf, &expected),
            )
        }
        Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            let expected = expected_words(expected);
            (
                format!("invalid value {unexpected}, expected {expected}"),
                shape_fix(&leaf, &expected),
            )
        }
        Error::SerdeInvalidLength { len, expected, .. } => (
            format!("{len} entries where {expected} were expected"),
            format!("give \"{leaf}\" {expected}"),
        ),
        Error::Unexpected { expected, .. } => {
            let expected = expected_words(expected);
            let fix = match value_at(raw, path) {
                // The most common slip: a shell line given as an exec-form command.
                Some(Value::String(line)) if leaf == "command" => format!(
                    "write the command as a list ({:?}), or use `run: {line}` for a shell line",
                    line.split_whitespace().collect::<Vec<_>>()
                ),
                _ => shape_fix(&leaf, &expected),
            };
            (format!("expected {expected}{}", found()), fix)
        }
        Error::InvalidScalar { ty, .. } => {
            let expected = expected_words(ty);
            (
                format!("expected {expected}{}", found()),
                shape_fix(&leaf, &expected),
            )
        }
        Error::DuplicateMappingKey { key, .. } => {
            let key = key.as_deref().unwrap_or("a key");
            (
                format!("\"{key}\" appears twice in the same mapping"),
                format!("keep only one \"{key}\""),
            )
        }
        other => return from_syntax(other),
    };
    Problem {
        location,
        field,
        message,
        fix: Some(fix),
    }
}

/// Builds the problem for a document that is not valid YAML.
pub(super) fn from_syntax(err: &Error) -> Problem {
    let message = plain_message(err);
    let fix = if message.contains("tab") {
        "indent with spaces: YAML does not allow tabs for indentation".to_string()
    } else if matches!(original(err), Error::Budget { .. }) {
        "make the document smaller, or use fewer aliases (*name)".to_string()
    } else if matches!(original(err), Error::DuplicateMappingKey { .. }) {
        "keep only one of the repeated keys".to_string()
    } else {
        "check the YAML at this line: indentation, closing quotes and brackets, and a space after each ':' and '-'"
            .to_string()
    };
    Problem {
        location: err.location().map(|l| (l.line(), l.column())),
        field: None,
        message: format!("invalid YAML: {message}"),
        fix: Some(fix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_other_spellings() {
        let fields = ["name", "run", "command"];
        assert_eq!(closest("comand", fields), Some("command"));
        assert_eq!(closest("Run", fields), Some("run"));
        assert_eq!(closest("script", fields), None);
        assert_eq!(
            closest("timeout_seconds", ["timeoutSeconds", "image"]),
            Some("timeoutSeconds")
        );
        assert_eq!(closest("Jbo", ["Job", "Workflow", "Sandbox"]), Some("Job"));
        assert_eq!(
            closest("Worfklow", ["Job", "Workflow", "Sandbox"]),
            Some("Workflow")
        );
    }
}
