//! What a workspace's runs used, summed by job and by day (`orcaops stats --workspace`,
//! `GET …/usage`): the unit of cost. CPU seconds are measured; memory is charged as the
//! run's peak held for its whole wall time (GB-seconds, a GB being 2^30 bytes as price
//! sheets count memory), an upper bound of what it held.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const GIB: f64 = (1u64 << 30) as f64;

/// The figures of one finished Job run that usage is summed from.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRow {
    pub namespace: String,
    pub name: String,
    /// The Workflow the Job ran a node of, if any: its runs are summed under it.
    pub workflow: Option<String>,
    pub phase: String,
    pub start_time: Option<DateTime<Utc>>,
    pub completion_time: Option<DateTime<Utc>>,
    pub cpu_millis: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
}

impl UsageRow {
    /// The row's group: `job/NAME`, or `workflow/NAME` for the Jobs of a workflow's nodes.
    pub fn group(&self) -> String {
        match &self.workflow {
            Some(w) => format!("workflow/{w}"),
            None => format!("job/{}", self.name),
        }
    }

    fn wall_seconds(&self) -> f64 {
        match (self.start_time, self.completion_time) {
            (Some(s), Some(c)) => (c - s).num_milliseconds().max(0) as f64 / 1000.0,
            _ => 0.0,
        }
    }
}

/// Sums over some runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    pub runs: u64,
    /// Runs that ended Failed or TimedOut.
    pub failed: u64,
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    /// Peak memory times wall time, in GiB-seconds.
    pub memory_gb_seconds: f64,
    /// Runs without a usage reading (ended before it was taken, or recorded before
    /// orcaops read usage): counted in `runs` and `wallSeconds` only.
    pub unmeasured: u64,
}

impl UsageTotals {
    fn add(&mut self, row: &UsageRow) {
        self.runs += 1;
        if matches!(row.phase.as_str(), "Failed" | "TimedOut") {
            self.failed += 1;
        }
        let wall = row.wall_seconds();
        self.wall_seconds += wall;
        if row.cpu_millis.is_none() && row.peak_memory_bytes.is_none() {
            self.unmeasured += 1;
        }
        self.cpu_seconds += row.cpu_millis.unwrap_or(0) as f64 / 1000.0;
        self.memory_gb_seconds += row.peak_memory_bytes.unwrap_or(0) as f64 / GIB * wall;
    }

    /// The cost of these totals at a price per CPU-hour and per GB-hour.
    pub fn cost(&self, prices: &Prices) -> f64 {
        self.cpu_seconds / 3600.0 * prices.cpu_hour
            + self.memory_gb_seconds / 3600.0 * prices.gb_hour
    }
}

/// What one CPU-hour and one GB-hour of memory cost, in the user's currency.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prices {
    pub cpu_hour: f64,
    pub gb_hour: f64,
}

/// One group's totals: a job (or workflow), or a day.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageEntry {
    /// `job/NAME`, `workflow/NAME`, or a day (`2026-12-05`, UTC).
    pub name: String,
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// The usage of the runs that finished in a period, in one workspace or all.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// The workspace; None: every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    pub total: UsageTotals,
    /// By job or workflow, the most CPU first.
    pub by_job: Vec<UsageEntry>,
    /// By the day each run ended, oldest first.
    pub by_day: Vec<UsageEntry>,
}

impl UsageReport {
    pub fn of(
        rows: &[UsageRow],
        namespace: Option<String>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> UsageReport {
        let mut total = UsageTotals::default();
        let mut by_job: BTreeMap<String, UsageTotals> = BTreeMap::new();
        let mut by_day: BTreeMap<String, UsageTotals> = BTreeMap::new();
        for row in rows {
            total.add(row);
            let group = match &namespace {
                Some(_) => row.group(),
                None => format!("{}/{}", row.namespace, row.group()),
            };
            by_job.entry(group).or_default().add(row);
            if let Some(at) = row.completion_time.or(row.start_time) {
                by_day
                    .entry(at.format("%Y-%m-%d").to_string())
                    .or_default()
                    .add(row);
            }
        }
        let entry = |(name, totals): (String, UsageTotals)| UsageEntry { name, totals };
        let mut by_job: Vec<UsageEntry> = by_job.into_iter().map(entry).collect();
        by_job.sort_by(|a, b| {
            b.totals
                .cpu_seconds
                .total_cmp(&a.totals.cpu_seconds)
                .then_with(|| a.name.cmp(&b.name))
        });
        UsageReport {
            namespace,
            since,
            until,
            total,
            by_job,
            by_day: by_day.into_iter().map(entry).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(name: &str, workflow: Option<&str>, phase: &str, start: i64, secs: i64) -> UsageRow {
        let at = |s: i64| Some(Utc.timestamp_opt(s, 0).unwrap());
        UsageRow {
            namespace: "team-a".into(),
            name: name.into(),
            workflow: workflow.map(String::from),
            phase: phase.into(),
            start_time: at(start),
            completion_time: at(start + secs),
            cpu_millis: Some(secs as u64 * 500),
            peak_memory_bytes: Some(1 << 30),
        }
    }

    #[test]
    fn runs_are_summed_by_job_and_workflow_and_by_the_day_they_ended() {
        let day = 1_764_892_800; // 2025-12-05T00:00:00Z
        let rows = vec![
            row("build", None, "Succeeded", day + 100, 60),
            row("build", None, "Failed", day + 200, 120),
            row(
                "ci-3-test",
                Some("ci"),
                "Succeeded",
                day + 86_400 + 10,
                3600,
            ),
            row("ci-3-lint", Some("ci"), "TimedOut", day + 86_400 + 20, 10),
            UsageRow {
                cpu_millis: None,
                peak_memory_bytes: None,
                ..row("old", None, "Succeeded", day - 86_400 + 5, 30)
            },
        ];
        let report = UsageReport::of(&rows, Some("team-a".into()), None, None);
        assert_eq!(report.total.runs, 5);
        assert_eq!(report.total.failed, 2);
        assert_eq!(report.total.unmeasured, 1);
        assert_eq!(
            report.total.cpu_seconds,
            (60 + 120 + 3600 + 10) as f64 * 0.5
        );
        // 1 GiB held for each measured run's wall time.
        assert_eq!(
            report.total.memory_gb_seconds,
            (60 + 120 + 3600 + 10) as f64
        );
        let names: Vec<&str> = report.by_job.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["workflow/ci", "job/build", "job/old"]);
        assert_eq!(report.by_job[0].totals.runs, 2);
        assert_eq!(report.by_job[1].totals.failed, 1);
        let days: Vec<(&str, u64)> = report
            .by_day
            .iter()
            .map(|e| (e.name.as_str(), e.totals.runs))
            .collect();
        assert_eq!(
            days,
            [("2025-12-04", 1), ("2025-12-05", 2), ("2025-12-06", 2)]
        );
        // An hour of one CPU at 0.04 and an hour of one GB at 0.01.
        let hour = UsageTotals {
            cpu_seconds: 3600.0,
            memory_gb_seconds: 3600.0,
            ..Default::default()
        };
        let prices = Prices {
            cpu_hour: 0.04,
            gb_hour: 0.01,
        };
        assert!((hour.cost(&prices) - 0.05).abs() < 1e-12);
        // Across workspaces, each group names its workspace.
        let all = UsageReport::of(&rows, None, None, None);
        assert_eq!(all.by_job[0].name, "team-a/workflow/ci");
    }
}
