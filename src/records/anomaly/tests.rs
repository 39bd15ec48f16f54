//! Each detector on synthetic histories: at its threshold, just under it, with too few
//! runs, and with all-equal figures (a MAD of zero).

use super::*;

fn ok(run: u32, ms: u64) -> RunFacts {
    RunFacts {
        run,
        succeeded: true,
        duration_ms: Some(ms),
        ..Default::default()
    }
}

fn failed(run: u32) -> RunFacts {
    RunFacts {
        run,
        succeeded: false,
        duration_ms: Some(100),
        ..Default::default()
    }
}

/// `n` successful runs with the given durations, cycling.
fn runs(n: u32, durations: &[u64]) -> Vec<RunFacts> {
    (1..=n)
        .map(|i| ok(i, durations[(i as usize - 1) % durations.len()]))
        .collect()
}

fn kinds(found: &[Anomaly]) -> Vec<AnomalyKind> {
    found.iter().map(|a| a.kind).collect()
}

fn defaults() -> Thresholds {
    Thresholds::default()
}

#[test]
fn spread_is_p50_p95_and_mad() {
    let s = Spread::of(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
    assert_eq!((s.p50, s.p95, s.mad, s.count), (3.0, 100.0, 1.0, 5));
    let even = Spread::of(&[10.0, 20.0, 30.0, 40.0]).unwrap();
    assert_eq!(even.p50, 25.0);
    assert_eq!(Spread::of(&[]), None);
    // Twenty values: p95 is the 19th.
    let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
    assert_eq!(Spread::of(&twenty).unwrap().p95, 19.0);
}

#[test]
fn slower_than_usual_above_the_threshold_with_the_figures_in_words() {
    // Eight runs at about 0.2 s, then one at 3 s (the end-to-end case).
    let history = runs(8, &[200, 210, 190, 205, 195]);
    let found = detect(&ok(9, 3000), &history, &defaults());
    assert_eq!(kinds(&found), [AnomalyKind::SlowerThanUsual]);
    let a = &found[0];
    assert_eq!(a.run, 9);
    assert_eq!(a.observed, "3.0 s");
    assert_eq!(a.baseline, "p50 0.2 s, p95 0.2 s over 8 runs");
    assert!(
        a.message
            .starts_with("took 3.0 s; usually 0.2 s (p95 0.2 s over 8 runs)"),
        "{}",
        a.message
    );
}

#[test]
fn slower_is_judged_at_exactly_the_threshold() {
    // All equal: MAD 0, p95 = p50 = 1000; the threshold is 1500 ms.
    let history = runs(10, &[1000]);
    assert!(detect(&ok(11, 1500), &history, &defaults()).is_empty());
    assert_eq!(
        kinds(&detect(&ok(11, 1501), &history, &defaults())),
        [AnomalyKind::SlowerThanUsual]
    );
}

#[test]
fn a_wide_spread_raises_the_slow_threshold() {
    // p50 1000, MAD 400: p50 + 4 MAD = 2600 beats p95 × 1.5 = 2400.
    let history = runs(9, &[600, 1000, 1400, 600, 1000, 1400, 600, 1000, 1400]);
    let base = baseline(&history, 20);
    let d = base.duration.unwrap();
    assert_eq!((d.p50, d.mad, d.p95), (1000.0, 400.0, 1400.0));
    assert!(detect(&ok(10, 2600), &history, &defaults()).is_empty());
    assert_eq!(
        kinds(&detect(&ok(10, 2601), &history, &defaults())),
        [AnomalyKind::SlowerThanUsual]
    );
}

#[test]
fn nothing_is_judged_on_fewer_than_five_runs() {
    let history = runs(4, &[200]);
    assert!(detect(&ok(5, 60_000), &history, &defaults()).is_empty());
    let mut failing = runs(4, &[200]);
    failing.push(failed(5));
    assert!(detect(&failed(6), &failing[..4], &defaults()).is_empty());
    // Four successes and a failure are five runs, but only four durations.
    assert!(detect(&ok(6, 60_000), &failing, &defaults()).is_empty());
}

#[test]
fn faster_than_usual_needs_a_real_gap() {
    let history = runs(10, &[10_000]);
    assert_eq!(
        kinds(&detect(&ok(11, 2_000), &history, &defaults())),
        [AnomalyKind::FasterThanUsual]
    );
    // Under p50 × 0.3 is the rule: 3 s is not.
    assert!(detect(&ok(11, 3_000), &history, &defaults()).is_empty());
    // Short jobs do not fire on sub-second noise: 0.05 s against 0.2 s is under a second.
    let quick = runs(10, &[200]);
    assert!(detect(&ok(11, 50), &quick, &defaults()).is_empty());
}

#[test]
fn a_failed_run_is_not_judged_on_its_duration() {
    let history = runs(10, &[1000]);
    let mut slow_failure = failed(11);
    slow_failure.duration_ms = Some(60_000);
    let found = detect(&slow_failure, &history, &defaults());
    assert_eq!(kinds(&found), [AnomalyKind::NewFailure]);
}

#[test]
fn memory_spike_needs_both_the_factor_and_the_floor() {
    let mib = 1024 * 1024;
    let with_memory = |run: u32, bytes: u64| RunFacts {
        peak_memory_bytes: Some(bytes),
        ..ok(run, 1000)
    };
    let history: Vec<RunFacts> = (1..=10).map(|i| with_memory(i, 100 * mib)).collect();
    // Above max(150, 200) MiB and 32 MiB above p50.
    assert!(detect(&with_memory(11, 200 * mib), &history, &defaults()).is_empty());
    let found = detect(&with_memory(11, 201 * mib), &history, &defaults());
    assert_eq!(kinds(&found), [AnomalyKind::MemorySpike]);
    assert!(
        found[0]
            .message
            .starts_with("peak memory 201.0 MiB; usually 100.0 MiB"),
        "{}",
        found[0].message
    );
    // A tiny job tripling its 4 MiB is not a spike: under the 32 MiB floor.
    let tiny: Vec<RunFacts> = (1..=10).map(|i| with_memory(i, 4 * mib)).collect();
    assert!(detect(&with_memory(11, 12 * mib), &tiny, &defaults()).is_empty());
}

#[test]
fn a_new_failure_follows_a_streak_of_successes() {
    let history = runs(5, &[100]);
    let found = detect(&failed(6), &history, &defaults());
    assert_eq!(kinds(&found), [AnomalyKind::NewFailure]);
    assert_eq!(found[0].message, "failed after 5 successful runs in a row");
    // Four in a row (after a failure) is no streak.
    let mut broken = runs(5, &[100]);
    broken[0] = failed(1);
    assert!(!kinds(&detect(&failed(6), &broken, &defaults())).contains(&AnomalyKind::NewFailure));
}

#[test]
fn flaky_when_the_outcome_keeps_changing() {
    // ok, fail, ok, fail, ok, then fail: five changes.
    let history: Vec<RunFacts> = (1..=5)
        .map(|i| if i % 2 == 1 { ok(i, 100) } else { failed(i) })
        .collect();
    let found = detect(&failed(6), &history, &defaults());
    assert_eq!(kinds(&found), [AnomalyKind::Flaky]);
    assert!(
        found[0]
            .message
            .contains("changed 5 times over the last 6 runs (3 failed)")
    );
    // The same outcome as the run before: not reported again on this run.
    assert!(
        detect(&ok(6, 100), &history, &defaults())
            .iter()
            .all(|a| a.kind != AnomalyKind::Flaky)
    );
    // Three changes are under the threshold.
    let calm = vec![ok(1, 100), ok(2, 100), failed(3), ok(4, 100), ok(5, 100)];
    assert!(
        detect(&failed(6), &calm, &defaults())
            .iter()
            .all(|a| a.kind != AnomalyKind::Flaky)
    );
}

#[test]
fn a_new_error_signature_is_one_no_recent_run_showed() {
    let with_errors = |run: u32, errors: &[&str]| RunFacts {
        error_signatures: errors.iter().map(|e| e.to_string()).collect(),
        ..failed(run)
    };
    let history: Vec<RunFacts> = (1..=6)
        .map(|i| with_errors(i, &["error: connection refused"]))
        .collect();
    let same = detect(
        &with_errors(7, &["error: connection refused"]),
        &history,
        &defaults(),
    );
    assert!(same.is_empty(), "{same:?}");
    let found = detect(
        &with_errors(
            7,
            &[
                "error: connection refused",
                "error: disk full",
                "error: disk full",
            ],
        ),
        &history,
        &defaults(),
    );
    assert_eq!(kinds(&found), [AnomalyKind::NewErrorSignature]);
    assert_eq!(found[0].observed, "error: disk full");
    assert_eq!(
        found[0].message,
        "a new error, not seen in the last 6 runs: error: disk full"
    );
    // Four runs of history are too few to call anything new.
    assert!(
        detect(
            &with_errors(5, &["error: disk full"]),
            &history[..4],
            &defaults()
        )
        .is_empty()
    );
}

#[test]
fn output_size_jumps_either_way() {
    let kib = 1024;
    let with_output = |run: u32, bytes: u64| RunFacts {
        output_bytes: Some(bytes),
        ..ok(run, 1000)
    };
    let history: Vec<RunFacts> = (1..=8).map(|i| with_output(i, 100 * kib)).collect();
    let more = detect(&with_output(9, 1000 * kib), &history, &defaults());
    assert_eq!(kinds(&more), [AnomalyKind::OutputSizeJump]);
    assert!(more[0].message.ends_with("10x more"), "{}", more[0].message);
    let less = detect(&with_output(9, 10 * kib), &history, &defaults());
    assert_eq!(kinds(&less), [AnomalyKind::OutputSizeJump]);
    assert!(less[0].message.ends_with("10x less"), "{}", less[0].message);
    assert!(detect(&with_output(9, 999 * kib), &history, &defaults()).is_empty());
    // Small outputs need 64 KiB of difference: 1 KiB to 20 KiB is not a jump.
    let small: Vec<RunFacts> = (1..=8).map(|i| with_output(i, kib)).collect();
    assert!(detect(&with_output(9, 20 * kib), &small, &defaults()).is_empty());
}

#[test]
fn thresholds_can_be_changed_or_detection_turned_off() {
    let history = runs(10, &[1000]);
    let off = Thresholds {
        disabled: true,
        ..defaults()
    };
    assert!(detect(&ok(11, 60_000), &history, &off).is_empty());
    let strict = Thresholds {
        slower_p95_factor: 1.1,
        ..defaults()
    };
    assert_eq!(
        kinds(&detect(&ok(11, 1200), &history, &strict)),
        [AnomalyKind::SlowerThanUsual]
    );
    // The window bounds the history the baseline sees.
    let mut long = runs(30, &[60_000]);
    long.extend(runs(10, &[1000]));
    let narrow = Thresholds {
        window: 10,
        ..defaults()
    };
    assert_eq!(
        kinds(&detect(&ok(41, 5000), &long, &narrow)),
        [AnomalyKind::SlowerThanUsual]
    );
    // Unknown fields in spec.anomalies are refused; known ones fill in over defaults.
    let parsed: Thresholds = serde_json::from_value(serde_json::json!({"window": 7})).unwrap();
    assert_eq!((parsed.window, parsed.min_runs), (7, 5));
    assert!(serde_json::from_value::<Thresholds>(serde_json::json!({"windw": 7})).is_err());
}

#[test]
fn figures_read_as_people_write_them() {
    assert_eq!(seconds(48_213.0), "48.2 s");
    assert_eq!(seconds(185_000.0), "3 min 5 s");
    assert_eq!(bytes(512.0), "512 B");
    assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
}
