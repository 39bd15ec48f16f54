//! Times, lists and tables as the CLI prints them; the MCP tools print theirs the same way.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::resources::{Kind, Object, columns};

/// The header of a list of `kind`: WORKSPACE (with `with_workspace`) and NAME, then the
/// kind's printer columns, the same ones the REST facade's Tables and `kubectl get`
/// show (with `wide`, also those of a higher priority, as `-o wide`).
pub fn list_header(kind: Kind, wide: bool, with_workspace: bool) -> Vec<String> {
    let mut header = Vec::new();
    if with_workspace {
        header.push("WORKSPACE".to_string());
    }
    header.push("NAME".to_string());
    header.extend(columns::columns(kind, wide).map(columns::header));
    header
}

/// One object's row under [`list_header`].
pub fn list_row(obj: &Object, wide: bool, with_workspace: bool, now: DateTime<Utc>) -> Vec<String> {
    let mut cells = Vec::new();
    if with_workspace {
        cells.push(obj.metadata.namespace.clone().unwrap_or_default());
    }
    cells.push(obj.metadata.name.clone());
    let value = serde_json::to_value(obj).unwrap_or_default();
    cells.extend(columns::columns(obj.kind, wide).map(|c| {
        let cell = columns::find(&value, &c.json_path).filter(|v| !v.is_null());
        match cell {
            // A Job the controller has not looked at yet is waiting to start.
            None if obj.kind == Kind::Job && c.json_path == ".status.phase" => "Pending".into(),
            cell => cell_text(&c.type_, cell, now),
        }
    }));
    cells
}

/// A cell as text: a time as an age, or `in 5m` when it is ahead (a sandbox's expiry);
/// nothing as `-`.
fn cell_text(type_: &str, value: Option<&Value>, now: DateTime<Utc>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if type_ == "date" => match DateTime::parse_from_rfc3339(s) {
            Ok(t) if t > now => format!("in {}", age_since(now, t.with_timezone(&Utc))),
            Ok(t) => age_since(t.with_timezone(&Utc), now),
            Err(_) => s.clone(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A duration for reading: `420ms`, `3.2s`, `4m05s`, `2h10m`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// How long before `now` the time `t` was, as kubectl's AGE column (`45s`, `3m`, `2h`, `4d`).
pub fn age_since(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// How long until a time in the future, as `in 5m`; `due` once it has passed.
pub fn until(t: DateTime<Utc>) -> String {
    let now = Utc::now();
    if t <= now {
        "due".into()
    } else {
        format!("in {}", age_since(now, t))
    }
}

/// Left-aligned columns separated by `gap` spaces; trailing spaces are trimmed.
pub fn table_with_gap(rows: &[Vec<String>], gap: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + gap));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
