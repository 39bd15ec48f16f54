//! What the anomaly detectors (`records::anomaly`) report, and their knobs: kept on the
//! resources, as a Job's `spec.anomalies` and `status.anomalies`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The rules' knobs; `spec.anomalies` on a Job overrides them one by one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Thresholds {
    /// Turn detection off for this Job.
    pub disabled: bool,
    /// How many runs before the current one the baseline covers.
    pub window: usize,
    /// No anomaly is judged on fewer runs than this.
    pub min_runs: usize,
    /// `SlowerThanUsual` above max(p95 × this, p50 + `slowerMads` × MAD).
    pub slower_p95_factor: f64,
    pub slower_mads: f64,
    /// `FasterThanUsual` below p50 × this (and 4 MADs and a second below p50).
    pub faster_p50_factor: f64,
    /// `MemorySpike` above max(p95 × this, p50 × 2), and this many MiB above p50.
    pub memory_p95_factor: f64,
    pub memory_min_mib: u64,
    /// `NewFailure` after at least this many successes in a row.
    pub failure_streak: usize,
    /// `Flaky` when the outcome changed at least this many times over the window.
    pub flaky_flips: usize,
    /// `OutputSizeJump` at this factor either way, and this many KiB apart.
    pub output_factor: f64,
    pub output_min_kib: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            disabled: false,
            window: 20,
            min_runs: 5,
            slower_p95_factor: 1.5,
            slower_mads: 4.0,
            faster_p50_factor: 0.3,
            memory_p95_factor: 1.5,
            memory_min_mib: 32,
            failure_streak: 5,
            flaky_flips: 4,
            output_factor: 10.0,
            output_min_kib: 64,
        }
    }
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum AnomalyKind {
    SlowerThanUsual,
    FasterThanUsual,
    MemorySpike,
    NewFailure,
    Flaky,
    NewErrorSignature,
    OutputSizeJump,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SlowerThanUsual => "SlowerThanUsual",
            Self::FasterThanUsual => "FasterThanUsual",
            Self::MemorySpike => "MemorySpike",
            Self::NewFailure => "NewFailure",
            Self::Flaky => "Flaky",
            Self::NewErrorSignature => "NewErrorSignature",
            Self::OutputSizeJump => "OutputSizeJump",
        }
    }
}

/// One anomaly of one run, in plain words.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub run: u32,
    /// What this run showed, e.g. "48.2 s".
    pub observed: String,
    /// What is usual, e.g. "p50 9.8 s, p95 11.0 s over 20 runs".
    pub baseline: String,
    /// The sentence for people: what is unusual and by how much.
    pub message: String,
}
