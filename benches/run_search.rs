//! Run search benchmark (run with `cargo bench --bench run_search`): searching run
//! records across jobs (issue 15: "over 10,000 runs answers in under 100 ms"). It fills
//! a real SQLite store (`LocalStore` on a temporary data dir) with 10,000 run records
//! (100 Jobs of 100 runs, each run with two steps' output tails, a fifth of them failed
//! with error lines), then times what `orcaops history --all` and `search_runs` ask:
//! `--grep` for a rare phrase and for a common word, `--phase`, `-l`, `--anomalous`,
//! and the usage sums of `orcaops stats --workspace`. Each is set against what a client
//! would do without the search: read every run of every job and filter them itself,
//! measured in the same run on the same store. It prints figures and asserts nothing,
//! because timings on a shared machine are not a test.
//!
//! `cargo test --benches` runs it at 1,000 runs, a smoke run that proves it still works.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use orcaops::records::search::RunQuery;
use orcaops::records::{RunContext, RunRecord};
use orcaops::resources::anomaly::{Anomaly, AnomalyKind};
use orcaops::resources::job::{ErrorLine, JobPhase, StepStatus, Usage};
use orcaops::store::LocalStore;

const NAMESPACE: &str = "bench";
const RUNS_PER_JOB: usize = 100;
/// One run in this many prints the rare error.
const RARE: usize = 1_000;

fn record(i: usize) -> RunRecord {
    let job = i / RUNS_PER_JOB;
    let run = (i % RUNS_PER_JOB) as u32 + 1;
    let failed = i.is_multiple_of(5);
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        + chrono::TimeDelta::seconds(i as i64 * 60);
    let mut tail = String::new();
    for line in 0..30 {
        tail.push_str(&format!(
            "[{line:02}] compiling module_{job}_{line} ... ok in {}ms\n",
            (i * 7 + line) % 900
        ));
    }
    let mut errors = Vec::new();
    if failed {
        let text = if i.is_multiple_of(RARE) {
            format!("error: segmentation fault in libwidget at 0x{i:08x}")
        } else {
            format!(
                "error[E0308]: mismatched types in src/mod_{}.rs:{}",
                i % 37,
                i % 400
            )
        };
        tail.push_str(&text);
        tail.push('\n');
        errors.push(ErrorLine { line: 31, text });
    }
    let step = |name: &str, exit: i64, tail: String, errors: Vec<ErrorLine>| StepStatus {
        name: name.into(),
        exit_code: Some(exit),
        start_time: Some(start),
        duration_ms: Some(1_000 + (i % 500) as u64),
        output_tail: tail,
        errors,
    };
    let spec =
        serde_json::json!({"image": "busybox:latest", "steps": [{"name": "build", "run": "make"}]});
    RunRecord {
        uid: format!("uid-{job:04}"),
        namespace: NAMESPACE.into(),
        name: format!("job-{job:04}"),
        run,
        generation: 1,
        phase: if failed {
            JobPhase::Failed
        } else {
            JobPhase::Succeeded
        },
        attempts: 1,
        start_time: Some(start),
        completion_time: Some(start + chrono::TimeDelta::seconds(30)),
        exit_code: Some(if failed { 1 } else { 0 }),
        summary: if failed {
            "step build exited with code 1".into()
        } else {
            "2 steps succeeded".into()
        },
        steps: vec![
            step("checkout", 0, "cloned in 0.4s\n".into(), Vec::new()),
            step("build", i64::from(failed), tail, errors),
        ],
        artifacts: Vec::new(),
        outputs: Default::default(),
        usage: Some(Usage {
            cpu_millis: Some(500 + (i % 1000) as u64),
            peak_memory_bytes: Some((32 + (i % 64) as u64) << 20),
            output_bytes: 2_000,
        }),
        anomalies: if i.is_multiple_of(97) {
            vec![Anomaly {
                kind: AnomalyKind::SlowerThanUsual,
                observed: "48.2 s".into(),
                baseline: "p50 9.8 s, p95 11.0 s over 20 runs".into(),
                run,
                message: "took 48.2 s; usually 9.8 s".into(),
            }]
        } else {
            Vec::new()
        },
        context: Some(RunContext {
            spec_hash: orcaops::records::spec_hash(&spec),
            spec,
            trigger: "file".into(),
            source: Some(format!("file:jobs/job-{job:04}.yaml")),
            labels: [(
                "team".to_string(),
                ["web", "api", "db"][job % 3].to_string(),
            )]
            .into(),
            image: "busybox:latest".into(),
            image_id: Some("sha256:0123456789abcdef".into()),
        }),
        explanation: None,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Times `rounds` runs of `query` (after one untimed run) in ms, sorted, checking each
/// result count against the first.
async fn time<F, Fut>(rounds: usize, mut query: F) -> (usize, Vec<f64>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let found = query().await;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let again = query().await;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(again, found, "the same query found the same runs");
    }
    times.sort_by(f64::total_cmp);
    (found, times)
}

/// What a client does without the search: every run of every job, read and filtered.
async fn scan(store: &LocalStore, jobs: usize, keep: impl Fn(&RunRecord) -> bool) -> usize {
    let mut found = 0;
    for job in 0..jobs {
        let runs = store
            .runs(NAMESPACE, &format!("job-{job:04}"))
            .await
            .unwrap();
        found += runs.iter().filter(|r| keep(r)).count();
    }
    found
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let total = if full { 10_000 } else { 1_000 };
    let jobs = total / RUNS_PER_JOB;
    let (rounds, scan_rounds) = if full { (50, 3) } else { (5, 1) };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    rt.block_on(async {
        let store = LocalStore::open(dir.path()).await.unwrap();
        let start = Instant::now();
        let mut puts = futures::stream::iter(0..total)
            .map(|i| {
                let store = store.clone();
                async move { store.put_run(&record(i)).await }
            })
            .buffer_unordered(32);
        while let Some(put) = puts.next().await {
            put.expect("a run record is stored");
        }
        println!(
            "{total} run records of {jobs} jobs written in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;

        let query = |q: RunQuery| {
            let store = store.clone();
            move || {
                let (store, q) = (store.clone(), q.clone());
                async move { store.search_runs(&q).await.unwrap().len() }
            }
        };
        let base = RunQuery {
            namespace: Some(NAMESPACE.into()),
            limit: 100,
            ..Default::default()
        };
        let word_in = |r: &RunRecord, word: &str| {
            r.summary.contains(word)
                || r.steps.iter().any(|s| {
                    s.output_tail.contains(word) || s.errors.iter().any(|e| e.text.contains(word))
                })
        };
        type Keep = Box<dyn Fn(&RunRecord) -> bool>;
        let cases: Vec<(&str, RunQuery, Keep)> = vec![
            (
                "--grep 'segmentation fault' (rare)",
                RunQuery {
                    grep: Some("segmentation fault".into()),
                    ..base.clone()
                },
                Box::new(move |r| word_in(r, "segmentation fault")),
            ),
            (
                "--grep mismatched (a fifth of runs), limit 100",
                RunQuery {
                    grep: Some("mismatched".into()),
                    ..base.clone()
                },
                Box::new(move |r| word_in(r, "mismatched")),
            ),
            (
                "--phase Failed, limit 100",
                RunQuery {
                    phase: Some("Failed".into()),
                    ..base.clone()
                },
                Box::new(|r| r.phase == JobPhase::Failed),
            ),
            (
                "-l team=db --phase Failed, limit 100",
                RunQuery {
                    phase: Some("Failed".into()),
                    labels: [("team".to_string(), "db".to_string())].into(),
                    ..base.clone()
                },
                Box::new(|r| {
                    r.phase == JobPhase::Failed
                        && r.context
                            .as_ref()
                            .is_some_and(|c| c.labels.get("team").map(String::as_str) == Some("db"))
                }),
            ),
            (
                "--anomalous, limit 100",
                RunQuery {
                    anomalous: true,
                    ..base.clone()
                },
                Box::new(|r| !r.anomalies.is_empty()),
            ),
        ];
        println!("search over {total} runs (p50 / p99 against a client-side scan of every run):");
        for (name, q, keep) in cases {
            let limit = q.limit;
            let (found, times) = time(rounds, query(q)).await;
            let (scanned, scan_times) = time(scan_rounds, || scan(&store, jobs, &keep)).await;
            assert_eq!(found, scanned.min(limit), "{name}: the search and the scan agree");
            let p50 = percentile(&times, 0.5);
            println!(
                "  {name}: {found} found; p50 {p50:.2} ms, p99 {:.2} ms; scan p50 {:.1} ms; {:.0}x faster{}",
                percentile(&times, 0.99),
                percentile(&scan_times, 0.5),
                percentile(&scan_times, 0.5) / p50,
                if full {
                    format!(
                        " (goal < 100 ms: {})",
                        if p50 < 100.0 { "met" } else { "NOT met" }
                    )
                } else {
                    String::new()
                }
            );
        }
        let (rows, times) = time(rounds, || {
            let store = store.clone();
            async move { store.usage_rows(Some(NAMESPACE), None, None).await.unwrap().len() }
        })
        .await;
        assert_eq!(rows, total);
        let (_, scan_times) = time(scan_rounds, || scan(&store, jobs, |_| true)).await;
        let p50 = percentile(&times, 0.5);
        println!(
            "  usage of every run (stats --workspace): {rows} rows; p50 {p50:.2} ms, p99 {:.2} ms; reading every record p50 {:.1} ms; {:.1}x faster",
            percentile(&times, 0.99),
            percentile(&scan_times, 0.5),
            percentile(&scan_times, 0.5) / p50
        );
    });
}
