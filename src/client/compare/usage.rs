//! A workspace's usage for a person (`orcaops stats --workspace`): totals, then by job
//! and by day, with a cost column when prices are given.

use std::fmt::Write as _;

use reqwest::Method;

use crate::client::format::table_with_gap;
use crate::client::{ApiClient, ClientError, urlencode};
use crate::records::usage::{Prices, UsageEntry, UsageReport, UsageTotals};

/// The usage report the server sums for a workspace (None: every one) over a period
/// (`since` and `until` as the API takes them: a time, or a duration back from now).
pub async fn usage_report(
    client: &ApiClient,
    namespace: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<UsageReport, ClientError> {
    let mut path = match namespace {
        Some(ns) => format!(
            "/apis/orcaops.dev/v1alpha1/namespaces/{}/usage",
            urlencode(ns)
        ),
        None => "/apis/orcaops.dev/v1alpha1/usage".to_string(),
    };
    let query: Vec<String> = [("since", since), ("until", until)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let value: serde_json::Value = client.json(Method::GET, &path, None).await?;
    serde_json::from_value(value)
        .map_err(|e| ClientError::usage(format!("unexpected usage report from the server: {e}")))
}

fn hours(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if seconds < 3600.0 {
        format!("{:.1}m", seconds / 60.0)
    } else {
        format!("{:.2}h", seconds / 3600.0)
    }
}

/// A cost with two decimals, or four below one unit (runs of seconds cost fractions).
fn money(cost: f64) -> String {
    if cost >= 1.0 || cost == 0.0 {
        format!("{cost:.2}")
    } else {
        format!("{cost:.4}")
    }
}

fn rows(entries: &[UsageEntry], first: &str, prices: Option<&Prices>) -> Vec<Vec<String>> {
    let mut header = [first, "RUNS", "FAILED", "WALL", "CPU", "MEMORY GB-H"]
        .map(String::from)
        .to_vec();
    if prices.is_some() {
        header.push("COST".into());
    }
    let mut out = vec![header];
    for e in entries {
        out.push(row(&e.name, &e.totals, prices));
    }
    out
}

fn row(name: &str, t: &UsageTotals, prices: Option<&Prices>) -> Vec<String> {
    let mut row = vec![
        name.to_string(),
        t.runs.to_string(),
        t.failed.to_string(),
        hours(t.wall_seconds),
        hours(t.cpu_seconds),
        format!("{:.4}", t.memory_gb_seconds / 3600.0),
    ];
    if let Some(p) = prices {
        row.push(money(t.cost(p)));
    }
    row
}

/// The report for reading: its period, the totals, the jobs by CPU and the days.
pub fn render_usage(report: &UsageReport, prices: Option<&Prices>) -> String {
    let mut out = String::new();
    let at = |t: Option<chrono::DateTime<chrono::Utc>>, none: &str| {
        t.map_or(none.to_string(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        })
    };
    let _ = writeln!(
        out,
        "usage of {} from {} to {}",
        report
            .namespace
            .as_deref()
            .map_or("every workspace".to_string(), |ns| format!(
                "workspace {ns}"
            )),
        at(report.since, "the first run"),
        at(report.until, "now")
    );
    let t = &report.total;
    if t.runs == 0 {
        let _ = writeln!(out, "no run ended in that period.");
        return out;
    }
    let _ = writeln!(
        out,
        "{} runs ({} failed): {} of CPU, {:.4} GB-hours of memory, {} wall time{}",
        t.runs,
        t.failed,
        hours(t.cpu_seconds),
        t.memory_gb_seconds / 3600.0,
        hours(t.wall_seconds),
        match prices {
            Some(p) => format!(
                "; cost {} at {} per CPU-hour and {} per GB-hour",
                money(t.cost(p)),
                p.cpu_hour,
                p.gb_hour
            ),
            None => String::new(),
        }
    );
    if t.unmeasured > 0 {
        let _ = writeln!(
            out,
            "{} runs have no usage reading (they ended before it was taken, or were recorded before orcaops read usage); they count as runs and wall time only",
            t.unmeasured
        );
    }
    let _ = write!(
        out,
        "\nby job (most CPU first):\n{}",
        table_with_gap(&rows(&report.by_job, "JOB", prices), 3)
    );
    let _ = write!(
        out,
        "\nby day (UTC, the day each run ended):\n{}",
        table_with_gap(&rows(&report.by_day, "DAY", prices), 3)
    );
    let _ = writeln!(
        out,
        "\nMemory is charged as each run's peak held for its whole wall time (1 GB = 2^30 bytes)."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_totals_groups_and_a_cost_only_with_prices() {
        let totals = |runs: u64, cpu: f64| UsageTotals {
            runs,
            failed: 1,
            wall_seconds: 7200.0,
            cpu_seconds: cpu,
            memory_gb_seconds: 7200.0,
            unmeasured: 0,
        };
        let report = UsageReport {
            namespace: Some("team-a".into()),
            since: None,
            until: None,
            total: totals(3, 7200.0),
            by_job: vec![UsageEntry {
                name: "job/build".into(),
                totals: totals(3, 7200.0),
            }],
            by_day: vec![UsageEntry {
                name: "2026-12-05".into(),
                totals: totals(3, 7200.0),
            }],
        };
        let plain = render_usage(&report, None);
        assert!(plain.contains("usage of workspace team-a from the first run to now"));
        assert!(plain.contains("3 runs (1 failed): 2.00h of CPU, 2.0000 GB-hours"));
        assert!(plain.contains("job/build"));
        assert!(plain.contains("2026-12-05"));
        assert!(!plain.contains("COST"));
        let priced = render_usage(
            &report,
            Some(&Prices {
                cpu_hour: 0.5,
                gb_hour: 0.25,
            }),
        );
        // 2 CPU-hours at 0.5 and 2 GB-hours at 0.25.
        assert!(priced.contains("cost 1.50"), "{priced}");
        assert!(priced.contains("COST"));
        let empty = UsageReport {
            total: UsageTotals::default(),
            by_job: vec![],
            by_day: vec![],
            ..report
        };
        assert!(render_usage(&empty, None).contains("no run ended in that period"));
    }
}
