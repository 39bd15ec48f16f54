//! Two runs of one Workflow side by side (`orcaops diff workflow`): the run's own
//! figures and spec, then node by node its phase, duration and attempts, and from each
//! node's Job run record its usage and first error; last the critical path of each run.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{delta, short_hash, spec_section};
use crate::client::format::{duration, table_with_gap};
use crate::client::workflow::{critical_path_text, dag, phase_str, slowest_node};
use crate::records::output::human_bytes;
use crate::records::{RunRecord, WorkflowRunRecord};
use crate::resources::workflow::{NodeStatus, WorkflowSpec, WorkflowStatus};

/// One run to compare: its record, the spec it ran (its own when recorded, else the
/// Workflow's current one, for the shape of the DAG), and the run records of its
/// nodes' Jobs.
pub struct WorkflowRun<'a> {
    pub record: &'a WorkflowRunRecord,
    pub spec: Option<WorkflowSpec>,
    pub jobs: &'a [RunRecord],
}

impl WorkflowRun<'_> {
    fn node(&self, name: &str) -> Option<&NodeStatus> {
        self.record.nodes.iter().find(|n| n.name == name)
    }

    /// The newest run record of the Job that ran node `name`.
    fn job_run(&self, name: &str) -> Option<&RunRecord> {
        let job = self.node(name)?.job.as_deref()?;
        self.jobs
            .iter()
            .filter(|r| r.name == job)
            .max_by_key(|r| r.run)
    }

    fn ms(&self) -> Option<u64> {
        let r = self.record;
        match (r.start_time, r.completion_time) {
            (Some(s), Some(c)) => Some((c - s).num_milliseconds().max(0) as u64),
            _ => None,
        }
    }

    fn spec_yaml(&self) -> Option<String> {
        serde_saphyr::to_string(self.record.spec.as_ref()?).ok()
    }

    /// The critical path and slowest node of the run, when its spec is known.
    fn paths(&self) -> (Option<String>, Option<String>) {
        let Some(spec) = &self.spec else {
            return (None, None);
        };
        let status = WorkflowStatus {
            nodes: self.record.nodes.clone(),
            ..Default::default()
        };
        let layers = dag(spec, &status);
        let slowest = slowest_node(&layers)
            .map(|(node, s)| format!("{node} ({})", crate::client::workflow::seconds(s)));
        (critical_path_text(&layers), slowest)
    }
}

fn node_ms(n: Option<&NodeStatus>) -> Option<u64> {
    let n = n?;
    match (n.start_time, n.completion_time) {
        (Some(s), Some(c)) => Some((c - s).num_milliseconds().max(0) as u64),
        _ => None,
    }
}

/// Runs `a` and `b` of one Workflow side by side.
pub fn diff_workflow(a: &WorkflowRun, b: &WorkflowRun) -> String {
    let (ra, rb) = (
        format!("run {}", a.record.run),
        format!("run {}", b.record.run),
    );
    let same = |x: &str, y: &str| {
        if x == y || y == "-" {
            y.to_string()
        } else {
            format!("{y} (changed)")
        }
    };
    let inputs = |r: &WorkflowRunRecord| {
        if r.inputs.is_empty() {
            "-".to_string()
        } else {
            let pairs: Vec<String> = r.inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            pairs.join(",")
        }
    };
    let hash = |r: &WorkflowRunRecord| r.spec_hash.as_deref().map_or("-".into(), short_hash);
    let started = |r: &WorkflowRunRecord| {
        r.start_time
            .map_or("-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
    };
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let (x, y) = (a.record, b.record);
    let rows = vec![
        vec![String::new(), ra.clone(), rb.clone()],
        vec![
            "phase".into(),
            phase_str(x.phase).into(),
            same(phase_str(x.phase), phase_str(y.phase)),
        ],
        vec!["trigger".into(), or_dash(&x.trigger), or_dash(&y.trigger)],
        vec![
            "generation".into(),
            x.generation.to_string(),
            same(&x.generation.to_string(), &y.generation.to_string()),
        ],
        vec!["started".into(), started(x), started(y)],
        vec![
            "duration".into(),
            a.ms().map_or("-".into(), duration),
            delta(a.ms(), b.ms(), duration),
        ],
        vec![
            "progress".into(),
            or_dash(&x.progress),
            or_dash(&y.progress),
        ],
        vec!["inputs".into(), inputs(x), same(&inputs(x), &inputs(y))],
        vec!["spec".into(), hash(x), same(&hash(x), &hash(y))],
    ];
    let mut out = format!(
        "workflow {}/{}: {ra} against {rb}\n\n{}",
        y.namespace,
        y.name,
        table_with_gap(&rows, 3)
    );

    spec_section(&mut out, a.spec_yaml(), b.spec_yaml(), &ra, &rb);

    let names: Vec<&str> = {
        let mut seen = BTreeSet::new();
        x.nodes
            .iter()
            .chain(&y.nodes)
            .map(|n| n.name.as_str())
            .filter(|n| seen.insert(*n))
            .collect()
    };
    if !names.is_empty() {
        let arrow = format!("({} -> {})", x.run, y.run);
        let mut rows = vec![vec![
            "NODE".to_string(),
            format!("PHASE {arrow}"),
            format!("DURATION {arrow}"),
            format!("ATTEMPTS {arrow}"),
            format!("CPU {arrow}"),
            format!("PEAK MEMORY {arrow}"),
        ]];
        for name in names {
            let (na, nb) = (a.node(name), b.node(name));
            let phase = |n: Option<&NodeStatus>| n.map_or("absent", |n| n.phase.as_str());
            let attempts = |n: Option<&NodeStatus>| {
                n.and_then(|n| n.attempts)
                    .map_or("-".to_string(), |n| n.to_string())
            };
            let pair = |x: Option<u64>, y: Option<u64>, show: fn(u64) -> String| match (x, y) {
                (None, None) => "-".to_string(),
                (Some(x), _) => format!("{} -> {}", show(x), delta(Some(x), y, show)),
                (None, Some(_)) => format!("- -> {}", delta(None, y, show)),
            };
            let usage =
                |r: &WorkflowRun, pick: fn(&crate::resources::job::Usage) -> Option<u64>| {
                    r.job_run(name)
                        .and_then(|j| j.usage.as_ref())
                        .and_then(pick)
                };
            rows.push(vec![
                name.to_string(),
                format!("{} -> {}", phase(na), phase(nb)),
                pair(node_ms(na), node_ms(nb), duration),
                format!("{} -> {}", attempts(na), attempts(nb)),
                pair(
                    usage(a, |u| u.cpu_millis),
                    usage(b, |u| u.cpu_millis),
                    duration,
                ),
                pair(
                    usage(a, |u| u.peak_memory_bytes),
                    usage(b, |u| u.peak_memory_bytes),
                    human_bytes,
                ),
            ]);
        }
        let _ = write!(out, "\nnodes:\n{}", table_with_gap(&rows, 3));
    }

    for r in [a, b] {
        // Why each node that did not succeed ended as it did, and its first error line.
        let mut lines = Vec::new();
        for node in &r.record.nodes {
            if let Some(message) = node.message.as_deref().filter(|m| !m.is_empty()) {
                lines.push(format!("  {}: {message}", node.name));
            }
            if let Some(job) = r.job_run(&node.name) {
                let first = job
                    .steps
                    .iter()
                    .find_map(|s| s.errors.first().map(|e| (s, e)));
                if let Some((step, e)) = first {
                    lines.push(format!(
                        "  {} (job {} run {}): step {} line {}: {}",
                        node.name, job.name, job.run, step.name, e.line, e.text
                    ));
                }
                for anomaly in &job.anomalies {
                    lines.push(format!(
                        "  {}: {}: {}",
                        node.name,
                        anomaly.kind.as_str(),
                        anomaly.message
                    ));
                }
            }
        }
        if !lines.is_empty() {
            let _ = writeln!(
                out,
                "\nmessages, errors and anomalies of run {}:\n{}",
                r.record.run,
                lines.join("\n")
            );
        }
    }

    let _ = writeln!(out);
    for r in [a, b] {
        let (path, slowest) = r.paths();
        let _ = writeln!(
            out,
            "critical path of run {}: {}",
            r.record.run,
            path.unwrap_or_else(|| "- (no node has a duration, or the spec is unknown)".into())
        );
        if let Some(slowest) = slowest {
            let _ = writeln!(out, "slowest node of run {}:  {slowest}", r.record.run);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::resources::job::{ErrorLine, JobPhase, StepStatus, Usage};
    use crate::resources::workflow::{NodePhase, WorkflowPhase};

    fn spec(test_image: &str) -> serde_json::Value {
        json!({"jobs": [
            {"name": "build", "job": {"image": "busybox", "steps": []}},
            {"name": "test", "needs": ["build"], "job": {"image": test_image, "steps": []}},
            {"name": "docs", "job": {"image": "busybox", "steps": []}}
        ]})
    }

    fn node(name: &str, phase: NodePhase, from: i64, secs: i64, job: &str) -> NodeStatus {
        let at = |s: i64| Some(Utc.timestamp_opt(1_000_000 + s, 0).unwrap());
        NodeStatus {
            name: name.into(),
            phase,
            job: Some(job.into()),
            attempts: Some(1),
            start_time: at(from),
            completion_time: at(from + secs),
            ..Default::default()
        }
    }

    fn record(
        run: u32,
        phase: WorkflowPhase,
        spec: serde_json::Value,
        nodes: Vec<NodeStatus>,
    ) -> WorkflowRunRecord {
        let at = |s: i64| Some(Utc.timestamp_opt(1_000_000 + s, 0).unwrap());
        WorkflowRunRecord {
            uid: "wf".into(),
            namespace: "default".into(),
            name: "ci".into(),
            run,
            generation: 1,
            phase,
            trigger: "api".into(),
            token: None,
            inputs: [("ref".to_string(), format!("v{run}"))].into(),
            start_time: at(0),
            completion_time: at(60),
            progress: "3/3".into(),
            summary: String::new(),
            nodes,
            spec_hash: Some(crate::records::spec_hash(&spec)),
            spec: Some(spec),
        }
    }

    fn job_run(name: &str, phase: JobPhase, cpu: u64, error: Option<&str>) -> RunRecord {
        RunRecord {
            uid: name.into(),
            namespace: "default".into(),
            name: name.into(),
            run: 1,
            generation: 1,
            phase,
            attempts: 1,
            start_time: None,
            completion_time: None,
            exit_code: None,
            summary: String::new(),
            steps: vec![StepStatus {
                name: "main".into(),
                exit_code: Some(if error.is_some() { 1 } else { 0 }),
                start_time: None,
                duration_ms: None,
                output_tail: String::new(),
                errors: error
                    .map(|e| ErrorLine {
                        line: 3,
                        text: e.into(),
                    })
                    .into_iter()
                    .collect(),
            }],
            artifacts: Vec::new(),
            outputs: Default::default(),
            usage: Some(Usage {
                cpu_millis: Some(cpu),
                peak_memory_bytes: Some(8 << 20),
                output_bytes: 0,
            }),
            anomalies: Vec::new(),
            context: None,
            explanation: None,
        }
    }

    fn side<'a>(r: &'a WorkflowRunRecord, jobs: &'a [RunRecord]) -> WorkflowRun<'a> {
        WorkflowRun {
            record: r,
            spec: serde_json::from_value(r.spec.clone().unwrap()).ok(),
            jobs,
        }
    }

    #[test]
    fn two_workflow_runs_compare_node_by_node_with_their_critical_paths() {
        let a = record(
            3,
            WorkflowPhase::Succeeded,
            spec("busybox"),
            vec![
                node("build", NodePhase::Succeeded, 0, 10, "ci-3-build"),
                node("test", NodePhase::Succeeded, 10, 40, "ci-3-test"),
                node("docs", NodePhase::Succeeded, 0, 5, "ci-3-docs"),
            ],
        );
        let mut failed_test = node("test", NodePhase::Failed, 12, 45, "ci-4-test");
        failed_test.message = Some("exit code 1".into());
        let b = record(
            4,
            WorkflowPhase::Failed,
            spec("alpine"),
            vec![
                node("build", NodePhase::Succeeded, 0, 12, "ci-4-build"),
                failed_test,
                node("docs", NodePhase::Succeeded, 0, 5, "ci-4-docs"),
            ],
        );
        let jobs_a = [job_run("ci-3-test", JobPhase::Succeeded, 2000, None)];
        let jobs_b = [job_run(
            "ci-4-test",
            JobPhase::Failed,
            3000,
            Some("assertion failed: left == right"),
        )];
        let text = diff_workflow(&side(&a, &jobs_a), &side(&b, &jobs_b));
        assert!(
            text.starts_with("workflow default/ci: run 3 against run 4\n"),
            "{text}"
        );
        assert!(text.contains("Failed (changed)"), "{text}");
        assert!(text.contains("ref=v4 (changed)"), "{text}");
        assert!(
            text.contains("(changed)\n") && text.contains("+ "),
            "the spec differs: {text}"
        );
        assert!(text.contains("alpine"), "{text}");
        let test_row = text
            .lines()
            .find(|l| l.starts_with("test "))
            .unwrap_or_else(|| panic!("no test row: {text}"));
        assert!(test_row.contains("Succeeded -> Failed"), "{test_row}");
        assert!(
            test_row.contains("40.0s -> 45.0s (+5.0s, +12%)"),
            "{test_row}"
        );
        assert!(
            test_row.contains("2.0s -> 3.0s (+1.0s, +50%)"),
            "cpu: {test_row}"
        );
        assert!(text.contains("  test: exit code 1"), "{text}");
        assert!(
            text.contains(
                "  test (job ci-4-test run 1): step main line 3: assertion failed: left == right"
            ),
            "{text}"
        );
        assert!(
            text.contains("critical path of run 3: build (10s) -> test (40s) = 50s"),
            "{text}"
        );
        // Run 4's test started 2 s late: the path counts durations, not the gap.
        assert!(
            text.contains("critical path of run 4: build (12s) -> test (45s) = 57s"),
            "{text}"
        );
        assert!(
            text.contains("slowest node of run 4:  test (45s)"),
            "{text}"
        );
    }
}
