//! `orcaops history`: the runs of one job or workflow, or with `--all` (or any filter)
//! the runs of every job, filtered and searched (`GET …/runs`, see docs/observability.md).

use clap::Args;

use super::output::table;
use super::{Target, describe, require_job, target_key, workflow};
use crate::client::compare::run_ms;
use crate::client::format::duration;
use crate::client::run::{RunSearch, matching_line, search_runs};
use crate::client::{ApiClient, ClientError, exit};
use crate::resources::{DEFAULT_WORKSPACE, Kind};

pub const AFTER_HELP: &str = "Examples:\n  \
    orcaops history job build                      # every run of one job\n  \
    orcaops history workflow ci                    # every run of a workflow\n  \
    orcaops history --all --phase Failed --since 24h\n  \
    orcaops history --all --grep 'undefined reference' -n default\n  \
    orcaops history --all -l team=web --image python --anomalous\n  \
    orcaops history job build --grep timeout       # one job's runs, searched\n\n\
    --all searches the runs of every job in every workspace (-n/--workspace narrows it), \
    newest first, 50 at most unless --limit says otherwise. The run records outlive \
    their jobs, so deleted jobs are found too. --grep looks for its words, as a phrase, \
    in each run's summary, the error lines picked out of its steps and each step's \
    output tail (the last lines; not the whole log), and prints the line that matched. \
    -l selects on the labels the job had when the run ended, key=value terms only. \
    --image busybox matches busybox, busybox:1.36 and busybox@sha256:…. --since and \
    --until take a duration back from now (30m, 24h, 7d) or a time \
    (2026-12-04T10:00:00Z).";

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The kind, job or workflow (omit it with --all).
    pub kind: Option<String>,
    /// The job's or workflow's name.
    pub name: Option<String>,
    /// The workspace (namespace); with --all, the default is every workspace.
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace")]
    pub namespace: Option<String>,
    /// The runs of every job, filtered by the options below.
    #[arg(long)]
    pub all: bool,
    /// Only runs that ended so: Succeeded, Failed, TimedOut or Cancelled.
    #[arg(long)]
    pub phase: Option<String>,
    /// Only runs that finished at or after this: 30m, 24h, 7d back, or a time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only runs that finished before this: 30m, 24h, 7d back, or a time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only runs of jobs labelled so (key=value terms, comma-separated).
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Only runs of this image (a name matches every tag and digest of it).
    #[arg(long)]
    pub image: Option<String>,
    /// Only runs that showed an anomaly.
    #[arg(long)]
    pub anomalous: bool,
    /// Only runs whose summary, error lines or output tails hold these words.
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
    /// The most runs to show (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

impl HistoryArgs {
    fn filtered(&self) -> bool {
        self.phase.is_some()
            || self.since.is_some()
            || self.until.is_some()
            || self.selector.is_some()
            || self.image.is_some()
            || self.anomalous
            || self.grep.is_some()
    }
}

pub async fn history(client: &ApiClient, args: HistoryArgs) -> Result<u8, ClientError> {
    if args.all && args.kind.is_some() {
        return Err(ClientError::usage(
            "--all searches the runs of every job; drop it to see one job's runs, or drop the job",
        ));
    }
    let Some(kind) = args.kind.clone() else {
        if !args.all {
            return Err(ClientError::usage(
                "which runs? name a job or workflow (`orcaops history job build`), or search every job's with --all",
            ));
        }
        return search(client, &args, None).await;
    };
    let target = Target {
        kind,
        name: args.name.clone(),
        namespace: args
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string()),
    };
    let key = target_key(&target)?;
    match (key.kind, args.filtered()) {
        (Kind::Workflow, false) => workflow::history(client, &key).await,
        (Kind::Workflow, true) => Err(ClientError::usage(
            "the filters search job runs; for a workflow's nodes use `orcaops history --all -l orcaops.dev/workflow=NAME`",
        )),
        (_, false) => describe::history(client, &require_job(&target)?).await,
        (_, true) => {
            let key = require_job(&target)?;
            let namespace = args.namespace.clone().or(Some(key.namespace.clone()));
            search(client, &HistoryArgs { namespace, ..args }, Some(key.name)).await
        }
    }
}

async fn search(
    client: &ApiClient,
    args: &HistoryArgs,
    name: Option<String>,
) -> Result<u8, ClientError> {
    let query = RunSearch {
        namespace: args.namespace.clone(),
        name,
        phase: args.phase.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        labels: args.selector.clone(),
        image: args.image.clone(),
        anomalous: args.anomalous,
        grep: args.grep.clone(),
        limit: Some(args.limit),
    };
    let (runs, more) = search_runs(client, &query).await?;
    if runs.is_empty() {
        eprintln!("no run matches.");
        return Ok(exit::OK);
    }
    let mut rows = vec![
        [
            "WORKSPACE",
            "JOB",
            "RUN",
            "PHASE",
            "FINISHED",
            "DURATION",
            "TRIGGER",
            "SUMMARY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut matches = Vec::new();
    for r in &runs {
        rows.push(vec![
            r.namespace.clone(),
            r.name.clone(),
            r.run.to_string(),
            r.phase.as_str().into(),
            r.completion_time
                .or(r.start_time)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            run_ms(r).map_or("-".into(), duration),
            r.context.as_ref().map_or("-".into(), |c| c.trigger.clone()),
            r.summary.clone(),
        ]);
        if let Some(grep) = &args.grep
            && let Some(line) = matching_line(r, grep)
        {
            matches.push(format!(
                "  {}/{} run {}: {line}",
                r.namespace, r.name, r.run
            ));
        }
    }
    print!("{}", table(&rows));
    if !matches.is_empty() {
        println!("\nmatched:\n{}", matches.join("\n"));
    }
    if more {
        eprintln!(
            "\n(the newest {}; there may be more: narrow the search or raise --limit)",
            runs.len()
        );
    }
    Ok(exit::OK)
}
