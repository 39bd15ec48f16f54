//! Times and tables as the CLI prints them; the MCP tools print theirs the same way.

use chrono::{DateTime, Utc};

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
