//! `orcaops diff job|workflow` and `orcaops stats`: two runs side by side, the trend
//! over a job's last runs, and a workspace's usage, from the run records (see
//! [`crate::client::compare`]).

use clap::Args;

use crate::client::compare::usage::{render_usage, usage_report};
use crate::client::compare::workflow::{WorkflowRun, diff_workflow as diff_workflow_runs};
use crate::client::compare::{RunStats, diff as diff_runs};
use crate::client::run::{RunSearch, job_runs, search_runs};
use crate::client::workflow::{workflow_runs, workflow_spec};
use crate::client::{ApiClient, ClientError, exit};
use crate::records::search::MAX_LIMIT;
use crate::records::usage::Prices;
use crate::resources::{DEFAULT_WORKSPACE, Kind, ObjectKey, keys};

pub const DIFF_HELP: &str = "Examples:\n  \
    orcaops diff job build          # its last two runs\n  \
    orcaops diff job build 3        # run 3 against the last run\n  \
    orcaops diff job build 3 7      # run 3 against run 7\n  \
    orcaops diff workflow ci 4 5    # two runs of a workflow, node by node\n\n\
    Shows phase, trigger (file, api, rerun, workflow), duration, attempts, the image and \
    the image id the run really ran, the spec's hash and a line diff of the spec, each \
    step's exit code and duration with the change, the outputs that differ, usage (CPU, \
    peak memory, output), and each run's extracted errors and anomalies. Runs recorded \
    before orcaops kept the spec show no spec diff.\n\n\
    For a workflow: phase, trigger, duration, progress, inputs and the spec, then each \
    node's phase, duration, attempts, CPU and peak memory with the change, why a node \
    ended as it did with its first error line, and each run's critical path and slowest \
    node. See docs/observability.md.";

pub const STATS_HELP: &str = "Examples:\n  \
    orcaops stats job build             # over every recorded run\n  \
    orcaops stats job build --last 20   # the sparkline covers the last 20\n\n\
    The success rate leaves cancelled runs out. Durations are those of succeeded runs \
    (p50 and p95 by the nearest rank). The sparkline has one bar per run, oldest first, \
    its height the run's duration against the longest shown; under it . is a success, \
    F a failure, T a timeout and C a cancel.\n\n\
    Without a kind, the usage of a workspace's runs over a period, by job (a workflow's \
    nodes under the workflow) and by day: runs, failures, wall time, CPU and memory \
    GB-hours (each run's peak held for its wall time), with a cost column when prices \
    are given:\n  \
    orcaops stats --workspace team-a                     # the last 30 days\n  \
    orcaops stats -n team-a --since 7d --price-cpu-hour 0.04 --price-gb-hour 0.005\n  \
    orcaops stats -A --since 2026-12-01T00:00:00Z        # every workspace (server admin)";

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The kind: job or workflow.
    pub kind: String,
    /// The job's or workflow's name.
    pub name: String,
    /// The first run (default: the one before the last).
    pub run_a: Option<u32>,
    /// The second run (default: the last).
    pub run_b: Option<u32>,
    /// The workspace (namespace).
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The kind: job. Leave it out for the workspace's usage totals.
    pub kind: Option<String>,
    /// The job's name.
    pub name: Option<String>,
    /// How many of the last runs the sparkline shows.
    #[arg(long, default_value_t = 30)]
    pub last: usize,
    /// The workspace (namespace).
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
    /// Usage totals of every workspace (a server admin key is needed).
    #[arg(short = 'A', long = "all-namespaces", conflicts_with_all = ["kind", "name"])]
    pub all_namespaces: bool,
    /// Usage of the runs that ended since then: a time (2026-12-01T00:00:00Z) or a
    /// duration back from now (24h, 7d).
    #[arg(long, default_value = "30d")]
    pub since: String,
    /// ... and before then (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// What one CPU-hour costs, for a cost column (any currency).
    #[arg(long, value_name = "PRICE", env = "ORCAOPS_PRICE_CPU_HOUR")]
    pub price_cpu_hour: Option<f64>,
    /// What one GB-hour of memory costs.
    #[arg(long, value_name = "PRICE", env = "ORCAOPS_PRICE_GB_HOUR")]
    pub price_gb_hour: Option<f64>,
}

fn job_key(
    command: &str,
    kind: &str,
    name: &str,
    namespace: &str,
) -> Result<ObjectKey, ClientError> {
    match Kind::parse(kind) {
        Some(Kind::Job) => Ok(ObjectKey::new(Kind::Job, namespace, name)),
        Some(Kind::Workflow) if command == "diff" => {
            Ok(ObjectKey::new(Kind::Workflow, namespace, name))
        }
        _ => Err(ClientError::usage(format!(
            "`orcaops {command}` compares the runs of a job{}, so its first word is `job` (not {kind:?}); \
             for a workflow's runs use `orcaops history workflow {name}`",
            if command == "diff" {
                " or a workflow"
            } else {
                ""
            }
        ))),
    }
}

/// Which two runs to compare: both given, one given and the last, or the last two.
fn which_two(
    kind: &str,
    key: &ObjectKey,
    have: &[u32],
    a: Option<u32>,
    b: Option<u32>,
) -> Result<(u32, u32), ClientError> {
    let mut have = have.to_vec();
    have.sort_unstable();
    let last = have.last().copied();
    let (a, b) = match (a, b, last) {
        (_, _, None) => {
            return Err(ClientError::usage(format!(
                "{kind} {} has no finished runs yet, so there is nothing to compare",
                key.name
            )));
        }
        (Some(a), Some(b), _) => (a, b),
        (Some(a), None, Some(last)) => (a, last),
        (None, _, Some(_)) if have.len() < 2 => {
            return Err(ClientError::usage(format!(
                "{kind} {} has one run ({}); a diff needs two (`orcaops rerun {kind} {}` starts another)",
                key.name, have[0], key.name
            )));
        }
        (None, _, Some(_)) => (have[have.len() - 2], have[have.len() - 1]),
    };
    for n in [a, b] {
        if !have.contains(&n) {
            let list = have
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ClientError::usage(format!(
                "{kind} {} has no run {n}; its recorded runs are {list} (`orcaops history {kind} {}`)",
                key.name, key.name
            )));
        }
    }
    Ok((a, b))
}

pub async fn diff(client: &ApiClient, args: DiffArgs) -> Result<u8, ClientError> {
    let key = job_key("diff", &args.kind, &args.name, &args.namespace)?;
    if key.kind == Kind::Workflow {
        return diff_workflow(client, &key, args.run_a, args.run_b).await;
    }
    let runs = job_runs(client, &key).await?;
    let have: Vec<u32> = runs.iter().map(|r| r.run).collect();
    let (a, b) = which_two("job", &key, &have, args.run_a, args.run_b)?;
    let pick = |n: u32| {
        runs.iter()
            .find(|r| r.run == n)
            .expect("checked by which_two")
    };
    print!("{}", diff_runs(pick(a), pick(b)));
    Ok(exit::OK)
}

async fn diff_workflow(
    client: &ApiClient,
    key: &ObjectKey,
    a: Option<u32>,
    b: Option<u32>,
) -> Result<u8, ClientError> {
    let runs = workflow_runs(client, key).await?;
    let have: Vec<u32> = runs.iter().map(|r| r.run).collect();
    let (a, b) = which_two("workflow", key, &have, a, b)?;
    // The DAG of a run recorded without its spec is drawn from the current one.
    let current = match client.get_object(key).await {
        Ok(obj) => workflow_spec(&obj).ok(),
        Err(_) => None,
    };
    let mut sides = Vec::new();
    for n in [a, b] {
        let record = runs
            .iter()
            .find(|r| r.run == n)
            .expect("checked by which_two");
        let spec = record
            .spec
            .as_ref()
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .or_else(|| current.clone());
        let search = RunSearch {
            namespace: Some(key.namespace.clone()),
            labels: Some(format!(
                "{}={},{}={n}",
                keys::LABEL_WORKFLOW,
                key.name,
                keys::LABEL_WORKFLOW_RUN
            )),
            limit: Some(MAX_LIMIT),
            ..Default::default()
        };
        let (jobs, _) = search_runs(client, &search).await?;
        sides.push((record, spec, jobs));
    }
    let side = |i: usize| WorkflowRun {
        record: sides[i].0,
        spec: sides[i].1.clone(),
        jobs: &sides[i].2,
    };
    print!("{}", diff_workflow_runs(&side(0), &side(1)));
    Ok(exit::OK)
}

pub async fn stats(client: &ApiClient, args: StatsArgs) -> Result<u8, ClientError> {
    let (kind, name) = match (&args.kind, &args.name) {
        (None, _) => return stats_usage(client, &args).await,
        (Some(kind), Some(name)) => (kind, name),
        (Some(kind), None) => {
            return Err(ClientError::usage(format!(
                "which {kind}? `orcaops stats job NAME` shows one job's trend; `orcaops stats --workspace W` (no kind) shows a workspace's usage"
            )));
        }
    };
    let key = job_key("stats", kind, name, &args.namespace)?;
    let runs = job_runs(client, &key).await?;
    if runs.is_empty() {
        eprintln!("job {} has no finished runs yet.", key.name);
        return Ok(exit::OK);
    }
    print!(
        "{}",
        RunStats::of(&runs, args.last.max(1)).render(&key.name)
    );
    Ok(exit::OK)
}

async fn stats_usage(client: &ApiClient, args: &StatsArgs) -> Result<u8, ClientError> {
    let prices = match (args.price_cpu_hour, args.price_gb_hour) {
        (None, None) => None,
        (cpu, gb) => {
            let (cpu, gb) = (cpu.unwrap_or(0.0), gb.unwrap_or(0.0));
            if !(cpu.is_finite() && gb.is_finite() && cpu >= 0.0 && gb >= 0.0) {
                return Err(ClientError::usage(
                    "--price-cpu-hour and --price-gb-hour take a price of 0 or more, such as 0.04",
                ));
            }
            Some(Prices {
                cpu_hour: cpu,
                gb_hour: gb,
            })
        }
    };
    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
    let report = usage_report(
        client,
        namespace,
        Some(args.since.as_str()),
        args.until.as_deref(),
    )
    .await?;
    print!("{}", render_usage(&report, prices.as_ref()));
    Ok(exit::OK)
}
