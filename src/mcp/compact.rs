//! Making answers small enough for a model to read: log tails cut by lines and bytes,
//! long strings and arrays clipped with a note of what was left out, objects reduced to
//! what a decision needs, and plain-text tables. Pure functions; the tools call them.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::client::format::{list_header, list_row};
use crate::resources::job::JobStatus;
use crate::resources::{Kind, Object};

/// The end of a text, cut to at most `max_lines` lines and `max_bytes` bytes.
#[derive(Debug, PartialEq)]
pub struct Tail {
    pub text: String,
    /// Lines kept.
    pub lines: usize,
    /// True when anything before `text` was left out.
    pub truncated: bool,
}

impl Tail {
    /// The first line of a log answer: `what`, then how much of the log follows.
    /// `empty` says why there is none ("no output"); `more` says how to see what was
    /// left out.
    pub fn header(&self, what: &str, empty: &str, more: &str) -> String {
        match (self.text.is_empty(), self.truncated) {
            (true, _) => format!("{what}: {empty}"),
            (false, true) => format!(
                "{what}: last {} lines (earlier lines left out; {more})",
                self.lines
            ),
            (false, false) => format!("{what}: {}", count(self.lines, "line", "lines")),
        }
    }
}

/// Keeps the last `max_lines` lines of `text`, then drops whole lines from the front
/// until it fits in `max_bytes`; a single line longer than that keeps its end.
pub fn tail(text: &str, max_lines: usize, max_bytes: usize) -> Tail {
    let all: Vec<&str> = text.lines().collect();
    let mut start = all.len().saturating_sub(max_lines);
    let mut truncated = start > 0;
    let size = |from: usize| all[from..].iter().map(|l| l.len() + 1).sum::<usize>();
    while start < all.len() && size(start) > max_bytes {
        if start + 1 == all.len() {
            // One line alone is too long: keep its end, on a character boundary.
            let line = all[start];
            let mut cut = line.len().saturating_sub(max_bytes.saturating_sub(4));
            while !line.is_char_boundary(cut) {
                cut += 1;
            }
            return Tail {
                text: format!("…{}\n", &line[cut..]),
                lines: 1,
                truncated: true,
            };
        }
        start += 1;
        truncated = true;
    }
    let kept = &all[start..];
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Tail {
        text: out,
        lines: kept.len(),
        truncated,
    }
}

/// `s` cut to `max` characters, saying how many were left out.
pub fn clip(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        return s.to_string();
    }
    let kept: String = s.chars().take(max).collect();
    format!("{kept}… ({} more characters)", count - max)
}

/// `text` cut to about `max` bytes by keeping its start (`head` bytes) and its end,
/// with a note of how much was cut between them; also returns the bytes cut. Cuts
/// fall on line ends when one is near, and always on character boundaries.
pub fn head_tail(text: &str, max: usize, head: usize) -> (String, usize) {
    if text.len() <= max {
        return (text.to_string(), 0);
    }
    let head = head.min(max);
    let tail = max - head;
    let mut head_end = head;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    // Prefer to end the head after a newline within its last quarter.
    if let Some(nl) = text[..head_end]
        .rfind('\n')
        .filter(|nl| *nl + 1 >= head_end * 3 / 4)
    {
        head_end = nl + 1;
    }
    let mut tail_start = text.len() - tail;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    if let Some(nl) = text[tail_start..].find('\n').filter(|nl| *nl < tail / 4) {
        tail_start += nl + 1;
    }
    let cut = tail_start - head_end;
    (
        format!(
            "{}… [{cut} bytes cut here] …\n{}",
            &text[..head_end],
            &text[tail_start..]
        ),
        cut,
    )
}

/// Limits for [`compact`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub string_chars: usize,
    pub array_items: usize,
    pub depth: usize,
}

pub const DEFAULT_LIMITS: Limits = Limits {
    string_chars: 300,
    array_items: 10,
    depth: 6,
};

/// A copy of `value` with long strings clipped, long arrays cut (with a closing note)
/// and deep nesting replaced by a note, so that any spec or status stays readable.
pub fn compact(value: &Value, limits: Limits) -> Value {
    compact_at(value, limits, 0)
}

fn compact_at(value: &Value, limits: Limits, depth: usize) -> Value {
    match value {
        Value::String(s) => Value::String(clip(s, limits.string_chars)),
        Value::Array(items) if depth >= limits.depth => {
            Value::String(format!("[{} items]", items.len()))
        }
        Value::Object(map) if depth >= limits.depth => {
            Value::String(format!("{{{} fields}}", map.len()))
        }
        Value::Array(items) => {
            let mut out: Vec<Value> = items
                .iter()
                .take(limits.array_items)
                .map(|v| compact_at(v, limits, depth + 1))
                .collect();
            if items.len() > limits.array_items {
                out.push(Value::String(format!(
                    "… {} more items",
                    items.len() - limits.array_items
                )));
            }
            Value::Array(out)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), compact_at(v, limits, depth + 1)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub use crate::client::format::duration;

/// How long ago `t` was, as kubectl's AGE column.
pub fn age(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map_or_else(|| "-".into(), |t| crate::client::format::age_since(t, now))
}

/// Rows as aligned columns (two spaces apart, to stay compact); the first row is the header.
pub fn table(rows: &[Vec<String>]) -> String {
    crate::client::format::table_with_gap(rows, 2)
}

/// The most rows a list answer shows; the rest are only counted.
pub const MAX_ROWS: usize = 100;

/// A list answer: `title:`, then the table of the first [`MAX_ROWS`] of `total` items,
/// then how many more there are and `hint` (how to narrow the list) when some were cut.
pub fn listing(title: &str, rows: &[Vec<String>], total: usize, hint: &str) -> String {
    let mut text = format!("{title}:\n{}", table(rows));
    if total > MAX_ROWS {
        text.push_str(&format!("… {} more{hint}\n", total - MAX_ROWS));
    }
    text
}

fn job_status(obj: &Object) -> JobStatus {
    serde_json::from_value(obj.status.clone()).unwrap_or_default()
}

/// The phase a list shows: a Job not yet seen by the controller is Pending.
pub fn phase(obj: &Object) -> String {
    match obj.status.get("phase").and_then(Value::as_str) {
        Some(p) => p.to_string(),
        None if obj.kind == Kind::Job => "Pending".into(),
        None => "-".into(),
    }
}

/// How many lines of each step's output tail [`object_summary`] keeps.
const STEP_TAIL_LINES: usize = 5;
/// How many runs of `status.history` it keeps.
const HISTORY_RUNS: usize = 5;

/// What a model needs to know about one object: identity, a clipped spec and the status
/// (for a Job: phase, run, per-step exit codes and durations, short output tails).
pub fn object_summary(obj: &Object, now: DateTime<Utc>) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(obj.kind.as_str()));
    if let Some(ns) = &obj.metadata.namespace {
        out.insert("workspace".into(), json!(ns));
    }
    out.insert("name".into(), json!(obj.metadata.name));
    out.insert("generation".into(), json!(obj.metadata.generation));
    out.insert(
        "age".into(),
        json!(age(obj.metadata.creation_timestamp, now)),
    );
    if !obj.metadata.labels.is_empty() {
        out.insert("labels".into(), json!(obj.metadata.labels));
    }
    if let Some(source) = obj.source() {
        out.insert("source".into(), json!(source));
    }
    out.insert("spec".into(), compact(&obj.spec, DEFAULT_LIMITS));
    let status = if obj.kind == Kind::Job {
        job_status_summary(&job_status(obj))
    } else {
        compact(&obj.status, DEFAULT_LIMITS)
    };
    if !status.is_null() {
        out.insert("status".into(), status);
    }
    Value::Object(out)
}

fn job_status_summary(status: &JobStatus) -> Value {
    let mut out = Map::new();
    out.insert("phase".into(), json!(status.phase.as_str()));
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            out.insert(key.into(), value);
        }
    };
    put("run", json!(status.run));
    put("attempt", json!(status.attempt));
    put("summary", json!(status.summary));
    put("startTime", json!(status.start_time));
    put("completionTime", json!(status.completion_time));
    put("nextAttemptTime", json!(status.next_attempt_time));
    put("totalRuns", json!(status.total_runs));
    let steps: Vec<Value> = status
        .steps
        .iter()
        .map(|s| {
            let mut step = Map::new();
            step.insert("name".into(), json!(s.name));
            if let Some(code) = s.exit_code {
                step.insert("exitCode".into(), json!(code));
            }
            if let Some(ms) = s.duration_ms {
                step.insert("duration".into(), json!(duration(ms)));
            }
            let output = tail(&s.output_tail, STEP_TAIL_LINES, 600);
            if !output.text.is_empty() {
                step.insert("outputTail".into(), json!(output.text));
            }
            Value::Object(step)
        })
        .collect();
    if !steps.is_empty() {
        put("steps", Value::Array(steps));
    }
    if !status.outputs.is_empty() {
        put("outputs", json!(status.outputs));
    }
    if !status.artifacts.is_empty() {
        put(
            "artifacts",
            status
                .artifacts
                .iter()
                .map(|a| json!({ "name": a.name, "size": a.size }))
                .collect(),
        );
    }
    if !status.history.is_empty() {
        let runs: Vec<Value> = status
            .history
            .iter()
            .take(HISTORY_RUNS)
            .map(|r| {
                json!({
                    "run": r.run,
                    "phase": r.phase.as_str(),
                    "duration": r.duration_ms.map(duration),
                    "exitCode": r.exit_code,
                    "attempts": r.attempts,
                })
            })
            .collect();
        put("recentRuns", Value::Array(runs));
    }
    // One line per condition: the full objects repeat timestamps and empty messages.
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .map(|c| {
            let mut line = format!("{:?}={:?} ({})", c.type_, c.status, c.reason);
            if !c.message.is_empty() {
                line.push_str(": ");
                line.push_str(&clip(&c.message, 200));
            }
            line
        })
        .collect();
    if !conditions.is_empty() {
        put("conditions", json!(conditions));
    }
    Value::Object(out)
}

/// One line that says what an object is and how it is doing, to read before the details.
pub fn headline(obj: &Object) -> String {
    let key = obj.key();
    let mut line = if key.namespace.is_empty() {
        format!("{} {}", key.kind.singular(), key.name)
    } else {
        format!("{} {}/{}", key.kind.singular(), key.namespace, key.name)
    };
    line.push_str(": ");
    line.push_str(&phase(obj));
    if let Some(summary) = obj.status.get("summary").and_then(Value::as_str) {
        line.push_str(" — ");
        line.push_str(&clip(summary, 200));
    }
    line
}

/// `1 container`, `3 containers`.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// One list row per object: WORKSPACE (when asked) and NAME, then the kind's printer
/// columns with the wide ones (the CLI's `-o wide`), long cells clipped.
pub fn list_rows(objects: &[Object], with_workspace: bool, now: DateTime<Utc>) -> Vec<Vec<String>> {
    let Some(kind) = objects.first().map(|o| o.kind) else {
        return Vec::new();
    };
    let mut rows = vec![list_header(kind, true, with_workspace)];
    rows.extend(objects.iter().map(|obj| {
        list_row(obj, true, with_workspace, now)
            .into_iter()
            .map(|cell| clip(&cell.replace('\n', " "), 80))
            .collect()
    }));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn a_job_summary_carries_its_outputs() {
        let status = JobStatus {
            outputs: [("version".to_string(), "1.2".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            job_status_summary(&status)["outputs"],
            json!({"version": "1.2"})
        );
        assert!(
            job_status_summary(&JobStatus::default())
                .get("outputs")
                .is_none()
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let t = tail(&numbered(10), 3, 10_000);
        assert_eq!(t.text, "line 8\nline 9\nline 10\n");
        assert_eq!(t.lines, 3);
        assert!(t.truncated);
        let all = tail(&numbered(3), 3, 10_000);
        assert_eq!(all.text, numbered(3));
        assert!(!all.truncated);
    }

    #[test]
    fn tail_respects_the_byte_budget_by_whole_lines() {
        // 7 bytes per line ("line N\n"), 20 bytes allow two lines.
        let t = tail(&numbered(9), 100, 20);
        assert_eq!(t.text, "line 8\nline 9\n");
        assert!(t.truncated);
    }

    #[test]
    fn tail_of_one_huge_line_keeps_its_end() {
        let line = format!("{}END", "é".repeat(50_000));
        let t = tail(&line, 10, 100);
        assert!(t.text.len() <= 100, "{}", t.text.len());
        assert!(t.text.starts_with('…') && t.text.ends_with("END\n"));
        assert!(t.truncated);
    }

    #[test]
    fn tail_of_nothing_is_empty() {
        let t = tail("", 10, 100);
        assert_eq!(t.text, "");
        assert_eq!(t.lines, 0);
        assert!(!t.truncated);
    }

    #[test]
    fn head_tail_keeps_both_ends_and_says_what_it_cut() {
        assert_eq!(head_tail("short", 100, 20), ("short".to_string(), 0));
        let text = numbered(1000);
        let (kept, cut) = head_tail(&text, 200, 50);
        assert!(kept.starts_with("line 1\n"), "{kept}");
        assert!(kept.ends_with("line 1000\n"), "{kept}");
        assert!(kept.contains(&format!("[{cut} bytes cut here]")));
        assert!(kept.len() < 260, "{}", kept.len());
        assert_eq!(
            text.len() - cut,
            kept.len() - format!("… [{cut} bytes cut here] …\n").len()
        );
        // Multi-byte characters are never split.
        let wide = "é".repeat(500);
        let (kept, _) = head_tail(&wide, 101, 51);
        assert!(kept.starts_with('é') && kept.ends_with('é'));
    }

    #[test]
    fn clip_says_what_it_left_out() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdefghij", 4), "abcd… (6 more characters)");
    }

    #[test]
    fn compact_clips_strings_arrays_and_depth() {
        let big = json!({
            "s": "x".repeat(1000),
            "a": (0..25).collect::<Vec<_>>(),
            "deep": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}},
        });
        let small = compact(&big, DEFAULT_LIMITS);
        assert!(
            small["s"]
                .as_str()
                .unwrap()
                .ends_with("(700 more characters)")
        );
        let a = small["a"].as_array().unwrap();
        assert_eq!(a.len(), 11);
        assert_eq!(a[10], json!("… 15 more items"));
        assert_eq!(small["deep"]["a"]["b"]["c"]["d"]["e"], json!("{1 fields}"));
        assert!(small.to_string().len() < 700);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(420), "420ms");
        assert_eq!(duration(3_240), "3.2s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(7_800_000), "2h10m");
    }

    #[test]
    fn tables_align_and_trim() {
        let rows = vec![
            vec!["NAME".to_string(), "PHASE".into()],
            vec!["a-long-name".into(), "Running".into()],
        ];
        assert_eq!(table(&rows), "NAME         PHASE\na-long-name  Running\n");
    }

    fn job_with_status(status: Value) -> Object {
        let mut obj = Object::new(
            Kind::Job,
            "default",
            "build",
            json!({"image": "busybox:latest", "steps": [{"name": "a", "run": "y".repeat(2000)}]}),
        );
        obj.status = status;
        obj
    }

    #[test]
    fn a_job_summary_is_small_and_keeps_what_matters() {
        let history: Vec<Value> = (1..=10)
            .rev()
            .map(|run| json!({"run": run, "generation": 1, "phase": "Succeeded", "attempts": 1, "durationMs": 1200}))
            .collect();
        let obj = job_with_status(json!({
            "phase": "Failed",
            "run": 10,
            "attempt": 1,
            "totalRuns": 10,
            "summary": "step a exited 2",
            "steps": [{"name": "a", "exitCode": 2, "durationMs": 1500, "outputTail": numbered(200)}],
            "history": history,
            "conditions": [{"type": "Complete", "status": "True", "reason": "Failed", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        }));
        let summary = object_summary(&obj, Utc::now());
        let text = summary.to_string();
        assert!(text.len() < 2_000, "{} bytes: {text}", text.len());
        assert_eq!(summary["status"]["phase"], "Failed");
        assert_eq!(summary["status"]["steps"][0]["exitCode"], 2);
        assert_eq!(summary["status"]["steps"][0]["duration"], "1.5s");
        assert!(
            summary["status"]["steps"][0]["outputTail"]
                .as_str()
                .unwrap()
                .ends_with("line 200\n")
        );
        assert_eq!(summary["status"]["recentRuns"].as_array().unwrap().len(), 5);
        assert_eq!(
            headline(&obj),
            "job default/build: Failed — step a exited 2"
        );
        assert!(
            summary["spec"]["steps"][0]["run"]
                .as_str()
                .unwrap()
                .ends_with("(1700 more characters)")
        );
        assert_eq!(
            summary["status"]["conditions"],
            json!(["Complete=True (Failed)"])
        );
    }

    #[test]
    fn a_job_without_status_lists_as_pending() {
        let obj = job_with_status(Value::Null);
        let rows = list_rows(&[obj], false, Utc::now());
        // The Job's printer columns, wide ones included, as `orcaops get jobs -o wide`.
        assert_eq!(
            rows[0],
            [
                "NAME", "PHASE", "RUNS", "ATTEMPT", "SUMMARY", "ANOMALY", "AGE"
            ]
        );
        assert_eq!(rows[1][..4], ["build", "Pending", "-", "-"]);
    }
}
