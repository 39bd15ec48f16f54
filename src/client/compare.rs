//! Looking across the runs of one Job, from the run records the server lists
//! (`GET …/jobs/{name}/runs`): two runs side by side (`orcaops diff job`, the MCP tool
//! `compare_runs`) and the trend over the last runs (`orcaops stats job`). Pure
//! functions from records to text, so that the CLI and MCP print the same thing.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::records::RunRecord;
use crate::records::output::human_bytes;
use crate::resources::job::{JobPhase, Usage};

use super::format::duration;

pub mod usage;
pub mod workflow;

/// How long a run took, when it has both ends.
pub fn run_ms(r: &RunRecord) -> Option<u64> {
    match (r.start_time, r.completion_time) {
        (Some(s), Some(c)) => Some((c - s).num_milliseconds().max(0) as u64),
        _ => None,
    }
}

/// A figure of run `b` against run `a`: `b`, then the change when there is one
/// (`3.1s (+2.1s, +210%)`).
fn delta(a: Option<u64>, b: Option<u64>, show: impl Fn(u64) -> String) -> String {
    match (a, b) {
        (_, None) => "-".into(),
        (None, Some(b)) => show(b),
        (Some(a), Some(b)) if a == b => format!("{} (same)", show(b)),
        (Some(a), Some(b)) => {
            let sign = if b > a { "+" } else { "-" };
            let change = show(a.abs_diff(b));
            if a == 0 {
                format!("{} ({sign}{change})", show(b))
            } else {
                let pct = (b as f64 - a as f64) / a as f64 * 100.0;
                format!("{} ({sign}{change}, {pct:+.0}%)", show(b))
            }
        }
    }
}

fn short_hash(h: &str) -> String {
    let h = h.strip_prefix("sha256:").unwrap_or(h);
    h.chars().take(12).collect()
}

fn trigger(r: &RunRecord) -> String {
    match &r.context {
        None => "-".into(),
        Some(c) => match &c.source {
            Some(source) => format!("{} ({source})", c.trigger),
            None => c.trigger.clone(),
        },
    }
}

/// A line diff of two texts, as `-`/`+`/` ` lines, with at most `context` unchanged
/// lines around each change. Longest common subsequence: specs are short.
pub fn line_diff(a: &str, b: &str, context: usize) -> Vec<String> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // lcs[i][j]: the LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= context);
    let mut out = Vec::new();
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if *op != ' ' || near(k) {
            if skipped && !out.is_empty() {
                out.push("  ...".to_string());
            }
            skipped = false;
            out.push(format!("{op} {line}"));
        } else {
            skipped = true;
        }
    }
    out
}

fn spec_yaml(r: &RunRecord) -> Option<String> {
    let spec = &r.context.as_ref()?.spec;
    serde_saphyr::to_string(spec).ok()
}

/// The line diff of two runs' specs as YAML (`ra`, `rb` name the runs), nothing when
/// they are equal, or which run did not record its spec.
fn spec_section(out: &mut String, a: Option<String>, b: Option<String>, ra: &str, rb: &str) {
    match (a, b) {
        (Some(sa), Some(sb)) if sa != sb => {
            let _ = writeln!(out, "\nspec ({ra} -> {rb}):");
            for line in line_diff(&sa, &sb, 2) {
                let _ = writeln!(out, "  {line}");
            }
        }
        (Some(_), Some(_)) => {}
        (a, _) => {
            let _ = writeln!(
                out,
                "\nspec: not recorded for {}; runs recorded before orcaops kept the spec cannot be compared by spec",
                if a.is_none() { ra } else { rb }
            );
        }
    }
}

/// Runs `a` and `b` of one Job side by side: phase, trigger, duration, image, spec,
/// usage, then the spec's diff, each step's exit code and duration, the outputs, and
/// the errors and anomalies of each.
pub fn diff(a: &RunRecord, b: &RunRecord) -> String {
    let (ra, rb) = (format!("run {}", a.run), format!("run {}", b.run));
    let ctx = |r: &RunRecord, f: &dyn Fn(&crate::records::RunContext) -> String| {
        r.context.as_ref().map_or_else(|| "-".to_string(), f)
    };
    let same = |x: &str, y: &str| {
        if x == y || y == "-" {
            y.to_string()
        } else {
            format!("{y} (changed)")
        }
    };
    let image = |r: &RunRecord| ctx(r, &|c| c.image.clone());
    let image_id =
        |r: &RunRecord| ctx(r, &|c| c.image_id.as_deref().map_or("-".into(), short_hash));
    let spec_hash = |r: &RunRecord| ctx(r, &|c| short_hash(&c.spec_hash));
    let usage = |r: &RunRecord, f: fn(&Usage) -> Option<u64>| r.usage.as_ref().and_then(f);
    // One figure of the usage: a's, then b's with the change.
    let usage_row = |label: &str, pick: fn(&Usage) -> Option<u64>, show: fn(u64) -> String| {
        let (x, y) = (usage(a, pick), usage(b, pick));
        vec![
            label.to_string(),
            x.map_or("-".into(), show),
            delta(x, y, show),
        ]
    };
    let started = |r: &RunRecord| {
        r.start_time
            .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
    };
    let rows = vec![
        vec![String::new(), ra.clone(), rb.clone()],
        vec![
            "phase".into(),
            a.phase.as_str().into(),
            same(a.phase.as_str(), b.phase.as_str()),
        ],
        vec!["trigger".into(), trigger(a), trigger(b)],
        vec![
            "generation".into(),
            a.generation.to_string(),
            same(&a.generation.to_string(), &b.generation.to_string()),
        ],
        vec!["started".into(), started(a), started(b)],
        vec![
            "duration".into(),
            run_ms(a).map_or("-".into(), duration),
            delta(run_ms(a), run_ms(b), duration),
        ],
        vec![
            "attempts".into(),
            a.attempts.to_string(),
            same(&a.attempts.to_string(), &b.attempts.to_string()),
        ],
        vec![
            "exit code".into(),
            a.exit_code.map_or("-".into(), |c| c.to_string()),
            b.exit_code.map_or("-".into(), |c| c.to_string()),
        ],
        vec!["image".into(), image(a), same(&image(a), &image(b))],
        vec![
            "image id".into(),
            image_id(a),
            same(&image_id(a), &image_id(b)),
        ],
        vec![
            "spec".into(),
            spec_hash(a),
            same(&spec_hash(a), &spec_hash(b)),
        ],
        usage_row("cpu", |u| u.cpu_millis, duration),
        usage_row("peak memory", |u| u.peak_memory_bytes, human_bytes),
        usage_row("output", |u| Some(u.output_bytes), human_bytes),
    ];
    let mut out = format!(
        "job {}/{}: {ra} against {rb}\n\n{}",
        b.namespace,
        b.name,
        super::format::table_with_gap(&rows, 3)
    );

    spec_section(&mut out, spec_yaml(a), spec_yaml(b), &ra, &rb);

    let names: Vec<&str> = {
        let mut seen = BTreeSet::new();
        a.steps
            .iter()
            .chain(&b.steps)
            .map(|s| s.name.as_str())
            .filter(|n| seen.insert(*n))
            .collect()
    };
    if !names.is_empty() {
        let mut rows = vec![vec![
            "STEP".to_string(),
            format!("EXIT ({} -> {})", a.run, b.run),
            format!("DURATION ({} -> {})", a.run, b.run),
        ]];
        for name in names {
            let sa = a.steps.iter().find(|s| s.name == name);
            let sb = b.steps.iter().find(|s| s.name == name);
            let exit = |s: Option<&crate::resources::job::StepStatus>| match s {
                None => "absent".to_string(),
                Some(s) => s.exit_code.map_or("-".into(), |c| c.to_string()),
            };
            let took = |s: Option<&crate::resources::job::StepStatus>| match s {
                None => "absent".to_string(),
                Some(s) => s.duration_ms.map_or("-".into(), duration),
            };
            let dur = match (
                sa.and_then(|s| s.duration_ms),
                sb.and_then(|s| s.duration_ms),
            ) {
                (Some(x), Some(y)) => {
                    format!("{} -> {}", duration(x), delta(Some(x), Some(y), duration))
                }
                _ => format!("{} -> {}", took(sa), took(sb)),
            };
            rows.push(vec![
                name.to_string(),
                format!("{} -> {}", exit(sa), exit(sb)),
                dur,
            ]);
        }
        let _ = write!(out, "\nsteps:\n{}", super::format::table_with_gap(&rows, 3));
    }

    let keys: BTreeSet<&String> = a.outputs.keys().chain(b.outputs.keys()).collect();
    let changed: Vec<String> = keys
        .into_iter()
        .filter(|k| a.outputs.get(*k) != b.outputs.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.map_or("(none)".to_string(), |v| format!("{v:?}"));
            format!(
                "  {k}: {} -> {}",
                show(a.outputs.get(k)),
                show(b.outputs.get(k))
            )
        })
        .collect();
    if !changed.is_empty() {
        let _ = writeln!(out, "\noutputs that differ:\n{}", changed.join("\n"));
    }

    for r in [a, b] {
        let errors: Vec<String> = r
            .steps
            .iter()
            .flat_map(|s| {
                s.errors
                    .iter()
                    .map(move |e| format!("  {} line {}: {}", s.name, e.line, e.text))
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "\nerrors of run {}:\n{}", r.run, errors.join("\n"));
        }
        if !r.anomalies.is_empty() {
            let lines: Vec<String> = r
                .anomalies
                .iter()
                .map(|x| format!("  {}: {}", x.kind.as_str(), x.message))
                .collect();
            let _ = writeln!(out, "\nanomalies of run {}:\n{}", r.run, lines.join("\n"));
        }
        if let Some(text) = &r.explanation {
            let _ = writeln!(
                out,
                "\nwhy run {} failed (the summariser's words):\n  {text}",
                r.run
            );
        }
    }
    out
}

/// The trend over a Job's runs.
#[derive(Debug, PartialEq)]
pub struct RunStats {
    /// Finished runs considered (cancelled ones are counted apart).
    pub runs: usize,
    pub succeeded: usize,
    pub cancelled: usize,
    /// Durations of the succeeded runs, in ms: p50, p95 and the longest.
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub max_ms: Option<u64>,
    pub cpu_ms_total: u64,
    pub peak_memory_max: Option<u64>,
    /// One character per run, oldest first: its duration as a bar.
    pub sparkline: String,
    /// One character per run under the bars: `.` succeeded, `F` failed, `T` timed out,
    /// `C` cancelled.
    pub outcomes: String,
}

/// The `q`-quantile (0..=1) of sorted `v`, by the nearest rank.
fn quantile(v: &[u64], q: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

impl RunStats {
    /// From the runs as the server lists them (any order); the sparkline covers the last
    /// `width` runs.
    pub fn of(runs: &[RunRecord], width: usize) -> RunStats {
        let mut runs: Vec<&RunRecord> = runs.iter().collect();
        runs.sort_by_key(|r| r.run);
        let cancelled = runs
            .iter()
            .filter(|r| r.phase == JobPhase::Cancelled)
            .count();
        let judged: Vec<&&RunRecord> = runs
            .iter()
            .filter(|r| r.phase != JobPhase::Cancelled)
            .collect();
        let succeeded = judged
            .iter()
            .filter(|r| r.phase == JobPhase::Succeeded)
            .count();
        let mut ok: Vec<u64> = judged
            .iter()
            .filter(|r| r.phase == JobPhase::Succeeded)
            .filter_map(|r| run_ms(r))
            .collect();
        ok.sort_unstable();
        let last = &runs[runs.len().saturating_sub(width)..];
        let longest = last.iter().filter_map(|r| run_ms(r)).max().unwrap_or(0);
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let sparkline = last
            .iter()
            .map(|r| match run_ms(r) {
                None => ' ',
                Some(_) if longest == 0 => BARS[0],
                Some(ms) => BARS[((ms as f64 / longest as f64) * 7.0).round() as usize],
            })
            .collect();
        let outcomes = last
            .iter()
            .map(|r| match r.phase {
                JobPhase::Succeeded => '.',
                JobPhase::Failed => 'F',
                JobPhase::TimedOut => 'T',
                JobPhase::Cancelled => 'C',
                _ => '?',
            })
            .collect();
        RunStats {
            runs: judged.len(),
            succeeded,
            cancelled,
            p50_ms: quantile(&ok, 0.5),
            p95_ms: quantile(&ok, 0.95),
            max_ms: ok.last().copied(),
            cpu_ms_total: runs
                .iter()
                .filter_map(|r| r.usage.as_ref()?.cpu_millis)
                .sum(),
            peak_memory_max: runs
                .iter()
                .filter_map(|r| r.usage.as_ref()?.peak_memory_bytes)
                .max(),
            sparkline,
            outcomes,
        }
    }

    /// For a person: the success rate, the durations, the usage and the sparkline.
    pub fn render(&self, job: &str) -> String {
        let mut out = String::new();
        let rate = if self.runs == 0 {
            "-".to_string()
        } else {
            format!("{:.0}%", self.succeeded as f64 * 100.0 / self.runs as f64)
        };
        let _ = writeln!(
            out,
            "job {job}: {} runs, {} succeeded, {} did not ({rate} success){}",
            self.runs,
            self.succeeded,
            self.runs - self.succeeded,
            if self.cancelled > 0 {
                format!("; {} cancelled, not counted", self.cancelled)
            } else {
                String::new()
            }
        );
        let d = |v: Option<u64>| v.map_or("-".into(), duration);
        let _ = writeln!(
            out,
            "duration of succeeded runs: p50 {}, p95 {}, longest {}",
            d(self.p50_ms),
            d(self.p95_ms),
            d(self.max_ms)
        );
        let _ = writeln!(
            out,
            "usage: {} of CPU in all, peak memory at most {}",
            duration(self.cpu_ms_total),
            self.peak_memory_max.map_or("-".into(), human_bytes)
        );
        if !self.sparkline.is_empty() {
            let n = self.sparkline.chars().count();
            let _ = writeln!(
                out,
                "last {n} runs, oldest first (bar: duration; . succeeded, F failed, T timed out, C cancelled):\n  {}\n  {}",
                self.sparkline, self.outcomes
            );
        }
        out
    }
}

#[cfg(test)]
mod tests;
