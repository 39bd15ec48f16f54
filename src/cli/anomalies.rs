//! `orcaops anomalies`: what was unusual about the last run of each Job, across jobs.

use chrono::{DateTime, Utc};
use clap::Args;

use super::output::{age, table};
use crate::client::{ApiClient, ClientError, exit};
use crate::resources::job::JobStatus;
use crate::resources::quantity::parse_duration_secs;
use crate::resources::{DEFAULT_WORKSPACE, Kind};

pub const AFTER_HELP: &str = "Examples:\n  \
    orcaops anomalies                 # the jobs of workspace default\n  \
    orcaops anomalies -A --since 24h  # every workspace, runs finished in the last day\n\n\
    Each Job's last finished run is compared with its runs before it (20 by default; at \
    least 5 are needed): SlowerThanUsual, FasterThanUsual, MemorySpike, NewFailure, \
    Flaky, NewErrorSignature and OutputSizeJump. What a run showed is in the Job's \
    status.anomalies and its Anomalous condition, and as Warning events; spec.anomalies \
    tunes the thresholds. See docs/observability.md.";

#[derive(Args, Debug)]
pub struct AnomaliesArgs {
    /// The workspace (namespace).
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
    /// Every workspace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only runs that finished within this long, such as 30m, 24h or 7d.
    #[arg(long)]
    pub since: Option<String>,
}

pub async fn anomalies(client: &ApiClient, args: AnomaliesArgs) -> Result<u8, ClientError> {
    let since = match &args.since {
        Some(text) => {
            let secs = parse_duration_secs(text).map_err(|e| {
                ClientError::usage(format!("--since {text}: {e} (write it as 30m, 24h or 7d)"))
            })?;
            Some(Utc::now() - chrono::TimeDelta::seconds(secs as i64))
        }
        None => None,
    };
    let ns = (!args.all_namespaces).then_some(args.namespace.as_str());
    let (jobs, _) = client.list(Kind::Job, ns, None).await?;
    let mut rows = Vec::new();
    for job in &jobs {
        let status: JobStatus = serde_json::from_value(job.status.clone()).unwrap_or_default();
        let finished: Option<DateTime<Utc>> = status.completion_time;
        if since.is_some_and(|since| finished.is_none_or(|t| t < since)) {
            continue;
        }
        for a in &status.anomalies {
            let mut row = Vec::new();
            if args.all_namespaces {
                row.push(job.metadata.namespace.clone().unwrap_or_default());
            }
            row.extend([
                job.metadata.name.clone(),
                a.run.to_string(),
                a.kind.as_str().to_string(),
                age(finished),
                a.message.clone(),
            ]);
            rows.push(row);
        }
    }
    if rows.is_empty() {
        let scope = if args.all_namespaces {
            "any workspace".to_string()
        } else {
            format!("workspace {}", args.namespace)
        };
        let when = args
            .since
            .as_deref()
            .map(|s| format!(" in the last {s}"))
            .unwrap_or_default();
        eprintln!("No anomalies in {scope}{when}.");
        return Ok(exit::OK);
    }
    let mut header: Vec<String> = Vec::new();
    if args.all_namespaces {
        header.push("WORKSPACE".into());
    }
    header.extend(["JOB", "RUN", "ANOMALY", "AGE", "MESSAGE"].map(String::from));
    rows.insert(0, header);
    print!("{}", table(&rows));
    Ok(exit::OK)
}
