//! Baselines over a Job's recent runs, and the anomalies a finished run shows against
//! them. Every detector is a pure function of the run, the history before it and the
//! thresholds, so each rule is tested on synthetic histories.
//!
//! A baseline is taken over the last [`Thresholds::window`] runs before the current one
//! (20 by default): duration p50 and p95 and the median absolute deviation (MAD) of the
//! successful runs, peak memory and output size, and the failure rate. No anomaly is
//! judged on fewer than [`Thresholds::min_runs`] runs (5).
//!
//! | anomaly | reported when (defaults) |
//! | --- | --- |
//! | `SlowerThanUsual` | a successful run took longer than max(p95 × 1.5, p50 + 4 × MAD) |
//! | `FasterThanUsual` | a successful run took less than p50 × 0.3, and at least max(4 × MAD, 1 s) less than p50 (often a step that did nothing) |
//! | `MemorySpike` | peak memory above max(p95 × 1.5, p50 × 2), and at least 32 MiB above p50 |
//! | `NewFailure` | a failure after at least 5 successes in a row |
//! | `Flaky` | the outcome changed at least 4 times over the window and this run changed it again |
//! | `NewErrorSignature` | an error line whose [signature](super::errors::signature) no run of the window showed |
//! | `OutputSizeJump` | output 10 × larger or smaller than p50, and at least 64 KiB apart |

use std::collections::BTreeSet;
use std::fmt::Write;

/// What a run contributes to a baseline. Figures the runtime could not measure are None.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFacts {
    pub run: u32,
    pub succeeded: bool,
    pub duration_ms: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
    pub output_bytes: Option<u64>,
    /// [`signature`](super::errors::signature)s of the run's error lines.
    pub error_signatures: Vec<String>,
}

pub use crate::resources::anomaly::{Anomaly, AnomalyKind, Thresholds};

impl RunFacts {
    /// What a recorded run contributes: its outcome, duration, usage and the
    /// signatures of its steps' error lines.
    pub fn of(record: &super::RunRecord) -> RunFacts {
        let duration_ms = match (record.start_time, record.completion_time) {
            (Some(start), Some(end)) => Some((end - start).num_milliseconds().max(0) as u64),
            _ => None,
        };
        let usage = record.usage.as_ref();
        RunFacts {
            run: record.run,
            succeeded: record.phase == crate::resources::job::JobPhase::Succeeded,
            duration_ms,
            peak_memory_bytes: usage.and_then(|u| u.peak_memory_bytes),
            output_bytes: usage.map(|u| u.output_bytes),
            error_signatures: record
                .steps
                .iter()
                .flat_map(|s| &s.errors)
                .map(|e| super::errors::signature(&e.text))
                .collect(),
        }
    }
}

/// Rolling figures over a window of runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Baseline {
    /// Runs in the window, and how many of them succeeded.
    pub runs: usize,
    pub successes: usize,
    pub duration: Option<Spread>,
    pub peak_memory: Option<Spread>,
    pub output: Option<Spread>,
    pub failure_rate: f64,
}

/// p50, p95 and the median absolute deviation of some figures, and how many there were.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub p50: f64,
    pub p95: f64,
    pub mad: f64,
    pub count: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let p50 = median(&sorted);
        let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - p50).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        Some(Spread {
            p50,
            p95: nearest_rank(&sorted, 0.95),
            mad: median(&deviations),
            count: sorted.len(),
        })
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The nearest-rank percentile: the smallest value with at least `q` of them at or below it.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The baseline of the last `window` runs of `history` (oldest first).
pub fn baseline(history: &[RunFacts], window: usize) -> Baseline {
    let recent = &history[history.len().saturating_sub(window)..];
    let ok: Vec<&RunFacts> = recent.iter().filter(|r| r.succeeded).collect();
    let figures = |f: fn(&RunFacts) -> Option<u64>| -> Vec<f64> {
        ok.iter().filter_map(|r| f(r)).map(|v| v as f64).collect()
    };
    Baseline {
        runs: recent.len(),
        successes: ok.len(),
        duration: Spread::of(&figures(|r| r.duration_ms)),
        peak_memory: Spread::of(&figures(|r| r.peak_memory_bytes)),
        output: Spread::of(&figures(|r| r.output_bytes)),
        failure_rate: if recent.is_empty() {
            0.0
        } else {
            (recent.len() - ok.len()) as f64 / recent.len() as f64
        },
    }
}

/// The anomalies `current` shows against the runs before it (`history`, oldest first,
/// not including `current`).
pub fn detect(current: &RunFacts, history: &[RunFacts], t: &Thresholds) -> Vec<Anomaly> {
    if t.disabled {
        return Vec::new();
    }
    let base = baseline(history, t.window);
    let mut found = Vec::new();
    let mut push = |kind, observed: String, baseline: String, message: String| {
        found.push(Anomaly {
            kind,
            run: current.run,
            observed,
            baseline,
            message,
        })
    };
    let enough = |spread: &Option<Spread>| spread.filter(|s| s.count >= t.min_runs.max(1));

    if current.succeeded
        && let (Some(ms), Some(d)) = (current.duration_ms, enough(&base.duration))
    {
        let took = ms as f64;
        let usual = format!(
            "p50 {}, p95 {} over {} runs",
            seconds(d.p50),
            seconds(d.p95),
            d.count
        );
        let slow_above = (d.p95 * t.slower_p95_factor).max(d.p50 + t.slower_mads * d.mad);
        if took > slow_above {
            push(
                AnomalyKind::SlowerThanUsual,
                seconds(took),
                usual.clone(),
                format!(
                    "took {}; usually {} (p95 {} over {} runs): {:.1}x the usual",
                    seconds(took),
                    seconds(d.p50),
                    seconds(d.p95),
                    d.count,
                    took / d.p50.max(1.0)
                ),
            );
        }
        let fast_below = d.p50 * t.faster_p50_factor;
        let margin = (t.slower_mads * d.mad).max(1000.0);
        if took < fast_below && d.p50 - took >= margin {
            push(
                AnomalyKind::FasterThanUsual,
                seconds(took),
                usual,
                format!(
                    "took {}; usually {} over {} runs: a step may have done nothing",
                    seconds(took),
                    seconds(d.p50),
                    d.count
                ),
            );
        }
    }

    if let (Some(peak), Some(m)) = (current.peak_memory_bytes, enough(&base.peak_memory)) {
        let peak = peak as f64;
        let above = (m.p95 * t.memory_p95_factor).max(m.p50 * 2.0);
        if peak > above && peak - m.p50 >= (t.memory_min_mib * 1024 * 1024) as f64 {
            push(
                AnomalyKind::MemorySpike,
                bytes(peak),
                format!(
                    "p50 {}, p95 {} over {} runs",
                    bytes(m.p50),
                    bytes(m.p95),
                    m.count
                ),
                format!(
                    "peak memory {}; usually {} (p95 {} over {} runs): {:.1}x the usual",
                    bytes(peak),
                    bytes(m.p50),
                    bytes(m.p95),
                    m.count,
                    peak / m.p50.max(1.0)
                ),
            );
        }
    }

    if !current.succeeded && history.len() >= t.min_runs {
        let streak = history.iter().rev().take_while(|r| r.succeeded).count();
        if streak >= t.failure_streak.max(1) {
            let streak_text = if streak >= t.window {
                format!("{streak}+")
            } else {
                streak.to_string()
            };
            push(
                AnomalyKind::NewFailure,
                "failed".into(),
                format!("{streak_text} successes in a row"),
                format!("failed after {streak_text} successful runs in a row"),
            );
        }
    }

    let recent = &history[history.len().saturating_sub(t.window)..];
    if recent.len() >= t.min_runs
        && let Some(last) = recent.last()
        && last.succeeded != current.succeeded
    {
        let outcomes: Vec<bool> = recent
            .iter()
            .map(|r| r.succeeded)
            .chain([current.succeeded])
            .collect();
        let flips = outcomes.windows(2).filter(|w| w[0] != w[1]).count();
        if flips >= t.flaky_flips.max(1) {
            let failures = outcomes.iter().filter(|ok| !**ok).count();
            push(
                AnomalyKind::Flaky,
                format!("{flips} changes"),
                format!("{failures} failures in the last {} runs", outcomes.len()),
                format!(
                    "the outcome changed {flips} times over the last {} runs ({failures} failed): the job is flaky",
                    outcomes.len()
                ),
            );
        }
    }

    if recent.len() >= t.min_runs {
        let seen: BTreeSet<&str> = recent
            .iter()
            .flat_map(|r| r.error_signatures.iter().map(String::as_str))
            .collect();
        let mut reported = BTreeSet::new();
        for signature in &current.error_signatures {
            if !seen.contains(signature.as_str()) && reported.insert(signature.as_str()) {
                push(
                    AnomalyKind::NewErrorSignature,
                    signature.clone(),
                    format!(
                        "{} distinct errors in the last {} runs",
                        seen.len(),
                        recent.len()
                    ),
                    format!(
                        "a new error, not seen in the last {} runs: {signature}",
                        recent.len()
                    ),
                );
            }
        }
    }

    if let (Some(out), Some(o)) = (current.output_bytes, enough(&base.output)) {
        let out = out as f64;
        let usual = o.p50.max(1.0);
        let apart = (out - o.p50).abs() >= (t.output_min_kib * 1024) as f64;
        let ratio = if out >= usual {
            out / usual
        } else {
            usual / out.max(1.0)
        };
        if apart && ratio >= t.output_factor {
            let direction = if out > o.p50 { "more" } else { "less" };
            let mut message = format!(
                "wrote {} of output; usually {} over {} runs",
                bytes(out),
                bytes(o.p50),
                o.count
            );
            let _ = write!(message, ": {ratio:.0}x {direction}");
            push(
                AnomalyKind::OutputSizeJump,
                bytes(out),
                format!("p50 {} over {} runs", bytes(o.p50), o.count),
                message,
            );
        }
    }
    found
}

/// Milliseconds as seconds for people: "0.2 s", "9.8 s", "48.2 s", "3 min 5 s".
fn seconds(ms: f64) -> String {
    let s = ms / 1000.0;
    if s < 100.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        format!("{} min {} s", whole / 60, whole % 60)
    }
}

/// Bytes for people: "512 B", "3.0 KiB", "48.0 MiB", "1.2 GiB".
fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024.0 {
        return format!("{n:.0} B");
    }
    let mut value = n / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests;
