//! `orcaops diff job` and `orcaops stats job`: two runs side by side, and the trend over
//! the last runs, from the run records (see [`crate::client::compare`]).

use clap::Args;

use crate::client::compare::{RunStats, diff};
use crate::client::run::job_runs;
use crate::client::{ApiClient, ClientError, exit};
use crate::records::RunRecord;
use crate::resources::{DEFAULT_WORKSPACE, Kind, ObjectKey};

pub const DIFF_HELP: &str = "Examples:\n  \
    orcaops diff job build          # its last two runs\n  \
    orcaops diff job build 3        # run 3 against the last run\n  \
    orcaops diff job build 3 7      # run 3 against run 7\n\n\
    Shows phase, trigger (file, api, rerun, workflow), duration, attempts, the image and \
    the image id the run really ran, the spec's hash and a line diff of the spec, each \
    step's exit code and duration with the change, the outputs that differ, usage (CPU, \
    peak memory, output), and each run's extracted errors and anomalies. Runs recorded \
    before orcaops kept the spec show no spec diff. See docs/observability.md.";

pub const STATS_HELP: &str = "Examples:\n  \
    orcaops stats job build             # over every recorded run\n  \
    orcaops stats job build --last 20   # the sparkline covers the last 20\n\n\
    The success rate leaves cancelled runs out. Durations are those of succeeded runs \
    (p50 and p95 by the nearest rank). The sparkline has one bar per run, oldest first, \
    its height the run's duration against the longest shown; under it . is a success, \
    F a failure, T a timeout and C a cancel.";

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The kind: job.
    pub kind: String,
    /// The job's name.
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
    /// The kind: job.
    pub kind: String,
    /// The job's name.
    pub name: String,
    /// How many of the last runs the sparkline shows.
    #[arg(long, default_value_t = 30)]
    pub last: usize,
    /// The workspace (namespace).
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
}

fn job_key(
    command: &str,
    kind: &str,
    name: &str,
    namespace: &str,
) -> Result<ObjectKey, ClientError> {
    match Kind::parse(kind) {
        Some(Kind::Job) => Ok(ObjectKey::new(Kind::Job, namespace, name)),
        _ => Err(ClientError::usage(format!(
            "`orcaops {command}` compares the runs of a job, so its first word is `job` (not {kind:?}); \
             for a workflow use `orcaops history workflow {name}`"
        ))),
    }
}

/// The run numbered `n` among `runs`, or an error listing the runs there are.
fn pick<'a>(runs: &'a [RunRecord], n: u32, key: &ObjectKey) -> Result<&'a RunRecord, ClientError> {
    runs.iter().find(|r| r.run == n).ok_or_else(|| {
        let mut have: Vec<u32> = runs.iter().map(|r| r.run).collect();
        have.sort_unstable();
        let list = have
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        ClientError::usage(format!(
            "job {} has no run {n}; its recorded runs are {list} (`orcaops history job {}`)",
            key.name, key.name
        ))
    })
}

pub async fn diff_job(client: &ApiClient, args: DiffArgs) -> Result<u8, ClientError> {
    let key = job_key("diff", &args.kind, &args.name, &args.namespace)?;
    let mut runs = job_runs(client, &key).await?;
    runs.sort_by_key(|r| r.run);
    let last = runs.last().map(|r| r.run);
    let (a, b) = match (args.run_a, args.run_b, last) {
        (_, _, None) => {
            return Err(ClientError::usage(format!(
                "job {} has no finished runs yet, so there is nothing to compare",
                key.name
            )));
        }
        (Some(a), Some(b), _) => (a, b),
        (Some(a), None, Some(last)) => (a, last),
        (None, _, Some(_)) if runs.len() < 2 => {
            return Err(ClientError::usage(format!(
                "job {} has one finished run ({}); a diff needs two (`orcaops rerun job {}` starts another)",
                key.name, runs[0].run, key.name
            )));
        }
        (None, _, Some(_)) => (runs[runs.len() - 2].run, runs[runs.len() - 1].run),
    };
    let (a, b) = (pick(&runs, a, &key)?, pick(&runs, b, &key)?);
    print!("{}", diff(a, b));
    Ok(exit::OK)
}

pub async fn stats_job(client: &ApiClient, args: StatsArgs) -> Result<u8, ClientError> {
    let key = job_key("stats", &args.kind, &args.name, &args.namespace)?;
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
