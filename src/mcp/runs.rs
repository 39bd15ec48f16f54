//! The MCP tool `search_runs`: Job runs across jobs, for an agent debugging its own
//! failures (which runs failed with this error before, and when).

use serde_json::json;

use super::compact::{clip, duration, listing};
use super::params::SearchRunsArgs;
use super::{Answer, ToolError};
use crate::client::ApiClient;
use crate::client::compare::run_ms;
use crate::client::run::{RunSearch, matching_line, search_runs};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

pub(super) async fn search(client: &ApiClient, args: SearchRunsArgs) -> Result<Answer, ToolError> {
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let query = RunSearch {
        namespace: args.workspace.clone(),
        name: args.job.clone(),
        phase: args.phase.clone(),
        since: args.since.clone(),
        until: None,
        labels: args.labels.clone(),
        image: args.image.clone(),
        anomalous: args.anomalous,
        grep: args.grep.clone(),
        limit: Some(limit),
    };
    let (runs, more) = search_runs(client, &query).await?;
    let mut rows = vec![
        [
            "workspace",
            "job",
            "run",
            "phase",
            "finished",
            "took",
            "summary",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut items = Vec::new();
    for r in &runs {
        let matched = args.grep.as_deref().and_then(|g| matching_line(r, g));
        let finished = r
            .completion_time
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let mut summary = clip(&r.summary, 120);
        if let Some(line) = &matched {
            summary = format!("{summary} | matched {}", clip(line, 160));
        }
        rows.push(vec![
            r.namespace.clone(),
            r.name.clone(),
            r.run.to_string(),
            r.phase.as_str().into(),
            finished.clone(),
            run_ms(r).map_or("-".into(), duration),
            summary,
        ]);
        items.push(json!({
            "workspace": r.namespace,
            "job": r.name,
            "run": r.run,
            "phase": r.phase.as_str(),
            "finished": finished,
            "durationMs": run_ms(r),
            "summary": r.summary,
            "matched": matched,
            "trigger": r.context.as_ref().map(|c| c.trigger.clone()),
            "anomalies": r.anomalies.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(),
        }));
    }
    let text = if runs.is_empty() {
        "no run matches; widen the search (drop a filter, or a longer since).".to_string()
    } else {
        let mut text = listing("runs, newest first", &rows, runs.len(), "");
        if more {
            text.push_str(&format!(
                "\nonly the newest {}: narrow the search (job, phase, since) or raise limit (at most {MAX_LIMIT}).",
                runs.len()
            ));
        }
        text.push_str("\nget_logs(job=..., workspace=..., run=N) reads a run's output.");
        text
    };
    Ok(Answer {
        text,
        structured: json!({ "runs": items, "maybeMore": more }),
    })
}
