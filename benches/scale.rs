//! Scale benchmark (run with `cargo bench --bench scale`): the label index of the local
//! store (issue 17). It fills a real SQLite store (`LocalStore` on a temporary data dir)
//! with 10,000 Jobs, then 100,000, and at each size times a label-selected page against
//! the scan the REST list did before the index (read every Job of the kind, parse it,
//! filter, cut the page), measured in the same run on the same store. It prints figures
//! against the goal (≤ 20 ms for `?labelSelector=batch=3&limit=10` over 100,000) and how
//! each grows from 10,000 to 100,000; it asserts nothing, because timings on a shared
//! machine are not a test.
//!
//! The Jobs are as the issue made them: suspended, every other one finished, each with
//! `batch` = i mod 10 (so `batch=3` selects a tenth), `app=bench`, and the
//! `orcaops.dev/workflow` label of one of 5,000 Workflows (20 Jobs each at 100,000): the
//! lookup the Workflow controller makes at every reconcile (`jobs_of`).
//!
//! `cargo test --benches` runs it at 1,000 and 2,000 Jobs, a smoke run that proves it
//! still works.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orcaops::resources::selector::LabelSelector;
use orcaops::resources::{Kind, Object, keys};
use orcaops::store::{LocalStore, PageQuery};
use serde_json::json;

const NAMESPACE: &str = "bench";
/// Creates in flight at once: the store commits what is queued as one transaction.
const CONCURRENCY: usize = 64;
const WORKFLOWS: usize = 5_000;
const PAGE: usize = 10;

fn job(i: usize) -> Object {
    let mut obj = Object::new(
        Kind::Job,
        NAMESPACE,
        &format!("job-{i:06}"),
        json!({
            "image": "busybox:latest",
            "suspend": true,
            "steps": [{ "name": "main", "run": "echo hi" }],
        }),
    );
    obj.metadata.labels = [
        ("batch", (i % 10).to_string()),
        ("app", "bench".to_string()),
        (keys::LABEL_WORKFLOW, format!("w{}", i % WORKFLOWS)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if i % 2 == 1 {
        obj.status = json!({ "phase": "Succeeded", "summary": "1 step succeeded" });
    }
    obj
}

async fn create_jobs(store: &LocalStore, range: std::ops::Range<usize>) {
    let mut creates = futures::stream::iter(range)
        .map(|i| {
            let store = store.clone();
            async move { store.create(job(i)).await }
        })
        .buffer_unordered(CONCURRENCY);
    while let Some(created) = creates.next().await {
        created.expect("a bench Job is stored");
    }
}

/// Times `rounds` runs of `query` (after one untimed run), in milliseconds, sorted; each
/// run's result count is checked against `expected`.
async fn time<F, Fut>(rounds: usize, expected: usize, mut query: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    assert_eq!(query().await, expected, "the query's result");
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let found = query().await;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(found, expected, "the query's result");
    }
    times.sort_by(f64::total_cmp);
    times
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A figure of one query: the index against the scan, both p50 (and the index's p99).
struct Figure {
    name: String,
    index_p50: f64,
    index_p99: f64,
    scan_p50: f64,
}

impl Figure {
    fn print(&self, goal: Option<f64>) {
        let verdict = goal.map_or(String::new(), |goal| {
            format!(
                " (goal <= {goal} ms: {})",
                if self.index_p50 <= goal {
                    "met"
                } else {
                    "NOT met"
                }
            )
        });
        println!(
            "  {}: index p50 {:.2} ms, p99 {:.2} ms; scan p50 {:.1} ms; {:.0}x faster{verdict}",
            self.name,
            self.index_p50,
            self.index_p99,
            self.scan_p50,
            self.scan_p50 / self.index_p50
        );
    }
}

/// The page and the Workflow lookup at the current size of the store.
async fn measure(store: &LocalStore, size: usize, full: bool) -> Vec<Figure> {
    let (index_rounds, scan_rounds) = if full { (200, 5) } else { (20, 2) };
    let batch = LabelSelector::parse("batch=3").unwrap();
    let batch_page = |after: Option<String>| {
        let store = store.clone();
        let batch = batch.clone();
        move || {
            let (store, batch, after) = (store.clone(), batch.clone(), after.clone());
            async move {
                let page = store
                    .list_page(PageQuery {
                        after: after.as_deref().map(|name| (NAMESPACE, name)),
                        limit: Some(PAGE),
                        ..PageQuery::selected(Kind::Job, Some(NAMESPACE), &batch)
                    })
                    .await
                    .unwrap();
                page.items.len()
            }
        }
    };
    // What the REST list did before the index: every Job of the namespace, then filter.
    let scan = |selector: LabelSelector, limit: Option<usize>| {
        let store = store.clone();
        move || {
            let (store, selector) = (store.clone(), selector.clone());
            async move {
                let page = store
                    .list_page(PageQuery::all(Kind::Job, Some(NAMESPACE)))
                    .await
                    .unwrap();
                let matched = page
                    .items
                    .iter()
                    .filter(|o| selector.matches(&o.metadata.labels))
                    .count();
                limit.map_or(matched, |l| matched.min(l))
            }
        }
    };

    let mut figures = Vec::new();
    let first = time(index_rounds, PAGE, batch_page(None)).await;
    let scanned = time(scan_rounds, PAGE, scan(batch.clone(), Some(PAGE))).await;
    figures.push(Figure {
        name: format!(
            "batch=3&limit=10, first page ({} of {size} match)",
            size / 10
        ),
        index_p50: percentile(&first, 0.5),
        index_p99: percentile(&first, 0.99),
        scan_p50: percentile(&scanned, 0.5),
    });
    // A continue token from the middle of the list: the index starts there, the scan
    // reads everything again.
    let deep = time(
        index_rounds,
        PAGE,
        batch_page(Some(format!("job-{:06}", size / 2))),
    )
    .await;
    figures.push(Figure {
        name: "batch=3&limit=10, a page from the middle (continue)".to_string(),
        index_p50: percentile(&deep, 0.5),
        index_p99: percentile(&deep, 0.99),
        scan_p50: percentile(&scanned, 0.5),
    });
    let workflow = LabelSelector::equals(keys::LABEL_WORKFLOW, "w42");
    let per_workflow = size / WORKFLOWS + usize::from(42 < size % WORKFLOWS);
    let jobs_of = {
        let store = store.clone();
        let workflow = workflow.clone();
        move || {
            let (store, workflow) = (store.clone(), workflow.clone());
            async move {
                store
                    .list_page(PageQuery::selected(Kind::Job, Some(NAMESPACE), &workflow))
                    .await
                    .unwrap()
                    .items
                    .len()
            }
        }
    };
    let looked_up = time(index_rounds, per_workflow, jobs_of).await;
    let scanned_all = time(scan_rounds, per_workflow, scan(workflow, None)).await;
    figures.push(Figure {
        name: format!("a Workflow's Jobs (jobs_of: {per_workflow} of {size})"),
        index_p50: percentile(&looked_up, 0.5),
        index_p99: percentile(&looked_up, 0.99),
        scan_p50: percentile(&scanned_all, 0.5),
    });
    figures
}

fn mib(dir: &Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full {
        &[10_000, 100_000]
    } else {
        &[1_000, 2_000]
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    rt.block_on(async {
        let store = LocalStore::open(dir.path()).await.unwrap();
        let mut made = 0;
        let mut rows: Vec<(usize, Vec<Figure>)> = Vec::new();
        for &size in sizes {
            let start = Instant::now();
            create_jobs(&store, made..size).await;
            let took = start.elapsed();
            made = size;
            // Let the background checkpoint fold the WAL in before timing reads.
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!(
                "{size} Jobs: {} created in {:.1} s ({:.0}/s); data dir {:.1} MiB",
                size - rows.last().map_or(0, |(s, _)| *s),
                took.as_secs_f64(),
                (size - rows.last().map_or(0, |(s, _)| *s)) as f64 / took.as_secs_f64(),
                mib(dir.path())
            );
            let figures = measure(&store, size, full).await;
            for (i, figure) in figures.iter().enumerate() {
                figure.print((i == 0 && size == 100_000).then_some(20.0));
            }
            rows.push((size, figures));
        }
        if let [(small, before), (large, after)] = &rows[..] {
            println!("growth from {small} to {large} Jobs (p50):");
            for (b, a) in before.iter().zip(after) {
                println!(
                    "  {}: index x{:.1}, scan x{:.1}",
                    a.name.split(" (").next().unwrap_or(&a.name),
                    a.index_p50 / b.index_p50,
                    a.scan_p50 / b.scan_p50
                );
            }
        }
    });
}
