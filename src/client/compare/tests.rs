use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::records::RunContext;
use crate::resources::job::{ErrorLine, StepStatus, Usage};

fn step(name: &str, exit: i64, ms: u64) -> StepStatus {
    StepStatus {
        name: name.into(),
        exit_code: Some(exit),
        start_time: None,
        duration_ms: Some(ms),
        output_tail: String::new(),
        errors: Vec::new(),
    }
}

fn record(run: u32, phase: JobPhase, secs: i64, spec: serde_json::Value) -> RunRecord {
    let start = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap()
        + chrono::TimeDelta::minutes(run as i64);
    RunRecord {
        uid: "u1".into(),
        namespace: "default".into(),
        name: "build".into(),
        run,
        generation: 1,
        phase,
        attempts: 1,
        start_time: Some(start),
        completion_time: Some(start + chrono::TimeDelta::seconds(secs)),
        exit_code: Some(0),
        summary: String::new(),
        steps: vec![step("compile", 0, 1000), step("test", 0, 500)],
        artifacts: Vec::new(),
        outputs: Default::default(),
        usage: Some(Usage {
            cpu_millis: Some(200),
            peak_memory_bytes: Some(4 << 20),
            output_bytes: 1024,
        }),
        anomalies: Vec::new(),
        context: Some(RunContext {
            spec_hash: crate::records::spec_hash(&spec),
            spec,
            trigger: "file".into(),
            source: Some("file:jobs/build.yaml".into()),
            labels: Default::default(),
            image: "busybox:latest".into(),
            image_id: Some("sha256:0123456789abcdef0123".into()),
        }),
        explanation: None,
    }
}

#[test]
fn line_diff_marks_changes_and_keeps_some_context() {
    let a = "a\nb\nc\nd\ne\nf\ng\nh\n";
    let b = "a\nb\nc\nD\ne\nf\ng\nh\ni\n";
    let lines = line_diff(a, b, 1);
    assert_eq!(
        lines,
        vec!["  c", "- d", "+ D", "  e", "  ...", "  h", "+ i"],
        "{lines:#?}"
    );
    assert!(line_diff(a, a, 2).is_empty());
}

#[test]
fn diff_shows_the_spec_change_the_step_deltas_and_the_errors() {
    let a = record(
        3,
        JobPhase::Succeeded,
        2,
        json!({"image": "busybox:latest", "steps": [{"name": "compile", "run": "make"}]}),
    );
    let mut b = record(
        5,
        JobPhase::Failed,
        6,
        json!({"image": "busybox:latest", "steps": [{"name": "compile", "run": "make -j4"}]}),
    );
    b.steps = vec![step("compile", 2, 3000)];
    b.steps[0].errors = vec![ErrorLine {
        line: 12,
        text: "error: undefined reference to `main'".into(),
    }];
    b.exit_code = Some(2);
    b.outputs.insert("version".into(), "1.3".into());
    b.context.as_mut().unwrap().trigger = "rerun".into();
    b.context.as_mut().unwrap().source = None;
    let text = diff(&a, &b);
    assert!(
        text.starts_with("job default/build: run 3 against run 5"),
        "{text}"
    );
    assert!(text.contains("Failed (changed)"), "{text}");
    assert!(
        text.contains("file (file:jobs/build.yaml)") && text.contains("rerun"),
        "{text}"
    );
    assert!(text.contains("6.0s (+4.0s, +200%)"), "{text}");
    assert!(text.contains("image id      0123456789ab"), "{text}");
    assert!(text.contains("(changed)\n"), "{text}");
    assert!(
        text.contains("  -   run: make\n  +   run: make -j4\n"),
        "{text}"
    );
    assert!(text.contains("compile   0 -> 2"), "{text}");
    assert!(text.contains("1.0s -> 3.0s (+2.0s, +200%)"), "{text}");
    assert!(text.contains("test      0 -> absent"), "{text}");
    assert!(text.contains("version: (none) -> \"1.3\""), "{text}");
    assert!(
        text.contains("errors of run 5:\n  compile line 12: error: undefined reference"),
        "{text}"
    );
}

#[test]
fn diff_of_runs_without_context_says_the_spec_was_not_kept() {
    let a = RunRecord {
        context: None,
        ..record(1, JobPhase::Succeeded, 1, json!({}))
    };
    let b = record(2, JobPhase::Succeeded, 1, json!({}));
    let text = diff(&a, &b);
    assert!(text.contains("spec: not recorded for run 1"), "{text}");
    assert!(text.contains("1.0s (same)"), "{text}");
}

#[test]
fn stats_count_percentiles_and_draw_one_bar_per_run() {
    let spec = json!({});
    let mut runs: Vec<RunRecord> = (1..=10)
        .map(|n| record(n, JobPhase::Succeeded, n as i64, spec.clone()))
        .collect();
    runs.push(record(11, JobPhase::Failed, 20, spec.clone()));
    runs.push(record(12, JobPhase::Cancelled, 1, spec.clone()));
    runs.reverse(); // as the server lists them, newest first
    let stats = RunStats::of(&runs, 5);
    assert_eq!((stats.runs, stats.succeeded, stats.cancelled), (11, 10, 1));
    assert_eq!(stats.p50_ms, Some(5_000));
    assert_eq!(stats.p95_ms, Some(10_000));
    assert_eq!(stats.max_ms, Some(10_000));
    assert_eq!(stats.cpu_ms_total, 12 * 200);
    assert_eq!(stats.outcomes, "...FC");
    // runs 8, 9, 10, 11 (20 s, the longest) and 12 (1 s)
    assert_eq!(stats.sparkline, "▄▄▅█▁");
    let text = stats.render("build");
    assert!(
        text.contains("11 runs, 10 succeeded, 1 did not (91% success); 1 cancelled, not counted"),
        "{text}"
    );
    assert!(
        text.contains("p50 5.0s, p95 10.0s, longest 10.0s"),
        "{text}"
    );
}

#[test]
fn quantiles_by_nearest_rank() {
    assert_eq!(quantile(&[], 0.5), None);
    assert_eq!(quantile(&[7], 0.95), Some(7));
    assert_eq!(quantile(&[1, 2, 3, 4], 0.5), Some(2));
    assert_eq!(quantile(&[1, 2, 3, 4], 0.95), Some(4));
}
