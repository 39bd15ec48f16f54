//! The dashboard in a real headless Chromium (run with `cargo bench --bench dashboard`).
//! It prints figures and asserts nothing:
//!
//! 1. the first load: the bytes the browser transferred for the shell, its script and
//!    style (compressed, as served), against the 150 KiB budget;
//! 2. a list of 1,000 jobs: from navigation to all 1,000 rows in the page, against
//!    fetching the same list as JSON over HTTP in the same run (the floor any page has);
//! 3. live updates while 100 of those jobs run: how long after the server saw the last
//!    one succeed the page showed it, and the longest gap between frames meanwhile
//!    (jank: a page that falls behind or freezes shows here).

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{IMAGE, Served, Watched, percentile, require_docker};
use futures::StreamExt;
use serde_json::{Value, json};

const JOBS: usize = 1000;
const RUNNING: usize = 100;
const ROUNDS: usize = 5;

fn job(name: &str, suspend: bool) -> Value {
    json!({"apiVersion": "orcaops.dev/v1alpha1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"image": IMAGE, "suspend": suspend,
                 "steps": [{"name": "main", "run": "sleep 2; echo done"}]}})
}

/// Watches the page's rows from before its first script runs: records, in
/// `window.__bench`, when the count of job rows first reached `n`, and the longest gap
/// between animation frames.
const PROBE: &str = r#"
window.__bench = {at: null, gap: 0, last: null, want: Number(sessionStorage.getItem('bench-want') || 0)};
(function frame(t) {
  const b = window.__bench;
  if (b.last !== null) b.gap = Math.max(b.gap, t - b.last);
  b.last = t;
  if (b.at === null && b.want > 0 &&
      document.querySelectorAll('[data-testid^="row-job-"]').length >= b.want) b.at = performance.now();
  requestAnimationFrame(frame);
})(performance.now());
"#;

fn main() {
    require_docker();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Served::start(Some(16));
    let http = server.http();
    let jobs_url = format!(
        "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs",
        server.url
    );
    let phases = Watched::start(&rt, &server, "jobs");

    rt.block_on(async {
        // 1,000 suspended jobs, 16 requests at a time.
        futures::stream::iter(0..JOBS)
            .map(|i| {
                let (http, url) = (http.clone(), jobs_url.clone());
                async move {
                    let r = http.post(&url).json(&job(&format!("job-{i:04}"), true)).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;

        let browser = Browser::start(1280, 900).await;
        browser
            .cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": PROBE}))
            .await;
        browser.goto(&format!("{}/ui/?token={}", server.url, server.key())).await;
        browser.wait_ready().await;

        // 1. The first load, as the browser transferred it.
        let sizes = browser
            .run(
                "const nav = performance.getEntriesByType('navigation')[0];
                 const files = performance.getEntriesByType('resource')
                   .filter(r => r.name.includes('/ui/assets/'))
                   .map(r => [r.name.split('/').pop(), r.transferSize, r.decodedBodySize]);
                 return {page: [nav.transferSize, nav.decodedBodySize], files};",
                json!([]),
            )
            .await;
        let mut transferred = sizes["page"][0].as_f64().unwrap_or(0.0);
        let mut decoded = sizes["page"][1].as_f64().unwrap_or(0.0);
        println!("first load (as transferred, headers included; decoded body):");
        println!("  {:<12} {:>8.1} KiB  {:>8.1} KiB", "index", transferred / 1024.0, decoded / 1024.0);
        for f in sizes["files"].as_array().cloned().unwrap_or_default() {
            let (t, d) = (f[1].as_f64().unwrap_or(0.0), f[2].as_f64().unwrap_or(0.0));
            println!("  {:<12} {:>8.1} KiB  {:>8.1} KiB", f[0].as_str().unwrap_or("?"), t / 1024.0, d / 1024.0);
            transferred += t;
            decoded += d;
        }
        println!(
            "  total        {:>8.1} KiB  {:>8.1} KiB   (budget 150 KiB compressed: {:.0} %)",
            transferred / 1024.0,
            decoded / 1024.0,
            transferred / 1024.0 / 150.0 * 100.0
        );

        // 2. The list of 1,000 jobs, against the JSON list over HTTP.
        let mut render = Vec::new();
        let mut fetch = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let list: Value = http.get(&jobs_url).send().await.unwrap().json().await.unwrap();
            fetch.push(start.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(list["items"].as_array().map(Vec::len), Some(JOBS));

            browser
                .run(&format!("sessionStorage.setItem('bench-want', '{JOBS}');"), json!([]))
                .await;
            browser.goto(&format!("{}/ui/jobs?ns=default", server.url)).await;
            let at = browser
                .wait(Duration::from_secs(60), "1,000 rows", || async {
                    browser.run("return window.__bench && window.__bench.at;", json!([])).await.as_f64()
                })
                .await;
            render.push(at);
        }
        println!(
            "list of {JOBS} jobs: rendered in p50 {:.0} ms (max {:.0}), navigation start to the last row; \
             the same list as JSON over HTTP p50 {:.0} ms: {:.1}x",
            percentile(&mut render.clone(), 0.5),
            render.iter().cloned().fold(0.0, f64::max),
            percentile(&mut fetch.clone(), 0.5),
            percentile(&mut render.clone(), 0.5) / percentile(&mut fetch.clone(), 0.5)
        );

        // 3. 100 of them run while the page shows all 1,000.
        browser.run("window.__bench.gap = 0;", json!([])).await;
        let patch = json!({"spec": {"suspend": false}});
        futures::stream::iter(0..RUNNING)
            .map(|i| {
                let (http, url) = (http.clone(), format!("{jobs_url}/job-{i:04}"));
                let patch = patch.clone();
                async move {
                    http.patch(&url)
                        .header("content-type", "application/merge-patch+json")
                        .body(patch.to_string())
                        .send()
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        let started = Instant::now();
        let names: Vec<String> = (0..RUNNING).map(|i| format!("job-{i:04}")).collect();
        for name in &names {
            phases.wait_phase(name, "Succeeded", &["Failed", "TimedOut"]);
        }
        let server_done = Instant::now();
        let shown = browser
            .wait(Duration::from_secs(60), "100 rows Succeeded", || async {
                let n = browser
                    .run(
                        "return [...document.querySelectorAll('[data-testid^=\"row-job-default-job-00\"] [data-testid=\"phase\"]')]
                           .filter(e => e.textContent.includes('Succeeded')).length;",
                        json!([]),
                    )
                    .await
                    .as_u64()
                    .unwrap_or(0);
                (n as usize >= RUNNING).then(Instant::now)
            })
            .await;
        let gap = browser.run("return window.__bench.gap;", json!([])).await.as_f64().unwrap_or(0.0);
        println!(
            "{RUNNING} jobs running among {JOBS} rows: all Succeeded on the server after {:.1} s; \
             the page showed the last {:.0} ms later (polled every 100 ms); longest frame gap meanwhile {gap:.0} ms",
            (server_done - started).as_secs_f64(),
            (shown - server_done).as_secs_f64() * 1000.0
        );
    });
}
