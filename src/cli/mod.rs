//! The `orcaops` command line. `serve` runs local mode, `operator` cluster mode and `sync`
//! feeds a cluster; every other command is a client of the HTTP API, as kubectl is of
//! Kubernetes'.

mod anomalies;
mod apply;
mod audit;
mod compare;
mod completion;
mod cp;
mod describe;
mod doctor;
mod exec;
mod history;
mod init;
mod key;
mod limits;
mod mcp;
mod notify;
mod operator;
mod output;
mod policy;
mod run;
mod serve;
mod sync;
mod terminal;
mod ui;
mod workflow;

/// The pure tar extraction of `orcaops cp`, reachable for the fuzz tests (tests/fuzz.rs)
/// only: not an API of orcaops.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::cp::links::unpack_as;
}

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::client::{ApiClient, ClientError, exit, object_path, urlencode};
use crate::resources::{DEFAULT_WORKSPACE, Kind};

const ABOUT: &str =
    "Declarative, sandboxed execution: Jobs declared as YAML run in Docker containers.";

const AFTER_HELP: &str = "\
Getting started:
  orcaops serve --dir examples          run local mode on a folder of YAML files
  orcaops sync --dir examples --once     apply the same folder to a Kubernetes cluster
  orcaops operator                       reconcile that cluster (usually as its Deployment)
  orcaops get jobs                       list jobs and their phases
  orcaops logs job hello -f              stream a job's output
  orcaops logs sandbox box --service db  a sandbox service's output
  orcaops run --image busybox:latest -- echo hi
                                         run a one-off job and wait (works without a server)
  orcaops run workflow ci --input ref=main
                                         run a workflow and follow its DAG to the end
  orcaops describe workflow ci           the DAG, each node's phase, duration, attempts
  orcaops exec scratch -- ls /           run a command in a sandbox (-it for a shell)
  orcaops cp ./src scratch:/work         copy files into or out of a sandbox

Exit codes: 0 ok, 1 usage or configuration error, 2 the job failed, 3 timed out,
4 refused by a policy, 5 Docker or the server unreachable.";

#[derive(Parser, Debug)]
#[command(name = "orcaops", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// The orcaops server to talk to.
    #[arg(
        long,
        global = true,
        env = "ORCAOPS_SERVER",
        default_value = "http://127.0.0.1:7700"
    )]
    pub server: String,
    /// The API key to send (`Authorization: Bearer`). Without it, the CLI uses the admin key of a server on this machine (`admin.key` in its data dir), when it can read it.
    #[arg(long, global = true, env = "ORCAOPS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Log format for diagnostics on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The kind: job, workflow (wf), sandbox (sb), sandboxtemplate (sbt), workspace (ws), policy; singular or plural.
    /// `KIND/NAME` in one word works too, as in `orcaops logs sandbox/box`.
    pub kind: String,
    /// The object's name (omit it when the first word is `KIND/NAME`).
    pub name: Option<String>,
    /// The workspace (namespace).
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    #[command(flatten)]
    pub target: Target,
    /// The run to cancel, when a workflow has several in progress (concurrencyPolicy: Allow).
    #[arg(long)]
    pub run: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run local mode: watch a folder of YAML, run Jobs in Docker, serve the API.
    #[command(
        after_help = "Every .yaml/.yml file under DIR (recursively; dot-files are ignored) is applied;\n\
        removing a file deletes what it declared. A broken file is reported and never\n\
        changes what is already running. State lives in --data-dir.\n\n\
        Browsers: a request from a web page of another origin, or naming a host the\n\
        server does not answer to (DNS rebinding), is refused with 403. To use the API\n\
        from your own page and by another name:\n  \
        orcaops serve --dir ./work --cors-origin http://localhost:3000 --allowed-host orcaops.lan\n\n\
        Notifications: failed runs, anomalies, waiting approvals and expiring sandboxes are\n\
        POSTed as JSON, signed with the key in the file, to every --notify-url (a Workspace's\n\
        spec.notifications adds its own; docs/observability.md shows how to check them):\n  \
        openssl rand -hex 32 > notify.key\n  \
        orcaops serve --dir ./work --notify-url http://alerts.internal:8080/orcaops --notify-secret-file notify.key"
    )]
    Serve(serve::ServeArgs),
    /// Run cluster mode: reconcile the cluster's resources, Job attempts as pods.
    #[command(after_help = operator::AFTER_HELP)]
    Operator(operator::OperatorArgs),
    /// Apply a folder of YAML to a Kubernetes cluster and keep it applied (GitOps).
    #[command(after_help = sync::AFTER_HELP)]
    Sync(sync::SyncArgs),
    /// Create or update resources from files, directories or stdin (-).
    Apply(apply::ApplyArgs),
    /// List resources, or show one.
    Get(output::GetArgs),
    /// Show a resource in detail: spec, status, steps, history and recent events.
    Describe(Target),
    /// Print a job's output, or a sandbox service's (`logs sandbox NAME --service S`).
    Logs(LogsArgs),
    /// Delete a resource.
    Delete(Target),
    /// Cancel the run in progress of a job or a workflow.
    #[command(
        after_help = "Examples:\n  orcaops cancel job nightly\n  orcaops cancel workflow ci\n  orcaops cancel workflow ci --run 3\n\n\
        A workflow with several runs in progress (concurrencyPolicy: Allow) needs --run.\n\
        Cancelling sets the annotation orcaops.dev/cancel=<run number>; the controller\n\
        stops what runs and the run ends Cancelled. With kubectl on a cluster:\n\
        kubectl annotate jobs.orcaops.dev NAME orcaops.dev/cancel=<run> --overwrite"
    )]
    Cancel(CancelArgs),
    /// Start a new run of a job or a workflow (of a workflow: all, --failed, or --from NODE).
    Rerun(workflow::RerunArgs),
    /// Approve (or --reject) an approval node of a workflow's current run.
    Approve(workflow::ApproveArgs),
    /// Suspend a workflow: no new node starts; running ones finish.
    #[command(after_help = "Example: orcaops suspend workflow ci\n\n\
        Sets spec.suspend: true (a merge patch). The run stays where it is, phase Suspended,\n\
        until `orcaops resume workflow NAME`, which continues the same run.")]
    Suspend(Target),
    /// Resume a suspended workflow: the same run goes on.
    #[command(after_help = "Example: orcaops resume workflow ci\n\n\
        Sets spec.suspend: false (a merge patch); the run continues where it stopped.")]
    Resume(Target),
    /// Run a command in a sandbox and exit with its exit code.
    Exec(exec::ExecArgs),
    /// Copy files and directories between this machine and a sandbox.
    Cp(cp::CpArgs),
    /// Stop a sandbox: its containers stop, their files and volumes are kept.
    #[command(after_help = "Example: orcaops stop sandbox scratch\n\n\
        Stopping sets spec.state: Stopped (POST .../sandboxes/NAME/stop); `orcaops start\n\
        sandbox NAME` brings it back with its files. `orcaops get sandbox NAME -w` shows\n\
        it reach Stopped.")]
    Stop(Target),
    /// Start a stopped or expired sandbox again.
    #[command(after_help = "Example: orcaops start sandbox scratch\n\n\
        Starting sets spec.state: Running and the annotation orcaops.dev/start (POST\n\
        .../sandboxes/NAME/start), which also revives an Expired sandbox; its idle and\n\
        TTL deadlines count from now. `orcaops get sandbox NAME -w` shows it reach Ready.")]
    Start(Target),
    /// API keys: create, list, revoke and rotate the keys of a workspace's members.
    #[command(after_help = key::AFTER_HELP)]
    Key(key::KeyArgs),
    /// The audit log: verify its chain, tail, search and export it.
    #[command(after_help = audit::AFTER_HELP)]
    Audit(audit::AuditArgs),
    /// Policies: what they found (`report`), and what they say of files (`test`).
    #[command(after_help = policy::AFTER_HELP)]
    Policy(policy::PolicyArgs),
    /// Every run of a job or a workflow, or with --all the runs of every job, searched.
    #[command(after_help = history::AFTER_HELP)]
    History(history::HistoryArgs),
    /// Two runs of a job or workflow side by side: spec, image, trigger, steps or nodes, usage, errors.
    #[command(after_help = compare::DIFF_HELP)]
    Diff(compare::DiffArgs),
    /// A job's success rate, durations and sparkline; or a workspace's usage and cost.
    #[command(after_help = compare::STATS_HELP)]
    Stats(compare::StatsArgs),
    /// What was unusual about each job's last run, against the runs before it.
    #[command(after_help = anomalies::AFTER_HELP)]
    Anomalies(anomalies::AnomaliesArgs),
    /// Run a one-off job (works without a server), or a workflow (`run workflow NAME`).
    Run(run::RunCommand),
    /// Print the CustomResourceDefinitions of all kinds as YAML.
    Crds,
    /// Write a starter folder (a job, a workflow, a sandbox template, a workspace) and a README.
    #[command(after_help = init::AFTER_HELP)]
    Init(init::InitArgs),
    /// Check what a first run depends on (Docker, images, data dir, port, server) and how to fix it.
    #[command(after_help = doctor::AFTER_HELP)]
    Doctor(doctor::DoctorArgs),
    /// Print the completion script of a shell (bash, zsh, fish, powershell, elvish).
    #[command(after_help = completion::AFTER_HELP)]
    Completion(completion::CompletionArgs),
    /// Open the web dashboard in a browser, logged in by a one-time link.
    #[command(after_help = ui::AFTER_HELP)]
    Ui(ui::UiArgs),
    /// Serve MCP tools over stdio for AI agents (Claude Code: `claude mcp add orcaops -- orcaops mcp`).
    Mcp(mcp::McpArgs),
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Keep streaming until the run ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Only this step's output.
    #[arg(long)]
    pub step: Option<String>,
    /// Which run (default: the latest).
    #[arg(long)]
    pub run: Option<u32>,
    /// Which attempt of the run (default: the latest).
    #[arg(long)]
    pub attempt: Option<u32>,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<usize>,
    /// A sandbox's service (default: its first): `orcaops logs sandbox NAME --service S`.
    #[arg(short = 'c', long, visible_alias = "container")]
    pub service: Option<String>,
    /// A workflow's node (its Job in the current run): `orcaops logs workflow ci --node build`.
    /// A matrix node: name one combination (`test-shard-1`), or the node to see each.
    #[arg(long)]
    pub node: Option<String>,
}

pub fn parse_kind(s: &str) -> Result<Kind, ClientError> {
    Kind::parse(s).ok_or_else(|| {
        ClientError::usage(format!(
            "unknown kind \"{s}\"; use one of job, workflow (wf), sandbox (sb), sandboxtemplate (sbt), workspace (ws), policy"
        ))
    })
}

/// The object a command names: `KIND NAME`, or `KIND/NAME` in one word (kubectl's form).
pub fn target_key(t: &Target) -> Result<crate::resources::ObjectKey, ClientError> {
    let (kind, name) = match (t.kind.split_once('/'), &t.name) {
        (None, Some(name)) => (t.kind.as_str(), name.as_str()),
        (Some((kind, name)), None) if !kind.is_empty() && !name.is_empty() => (kind, name),
        (Some(_), Some(extra)) => {
            return Err(ClientError::usage(format!(
                "\"{}\" already names the object; drop the extra \"{extra}\" (write KIND NAME or KIND/NAME)",
                t.kind
            )));
        }
        _ => {
            return Err(ClientError::usage(format!(
                "which {}? name it: KIND NAME or KIND/NAME, as in `job hello` or `job/hello`",
                t.kind.trim_end_matches('/')
            )));
        }
    };
    Ok(crate::resources::ObjectKey::new(
        parse_kind(kind)?,
        &t.namespace,
        name,
    ))
}

fn require_job(t: &Target) -> Result<crate::resources::ObjectKey, ClientError> {
    let key = target_key(t)?;
    if key.kind != Kind::Job {
        return Err(ClientError::usage(format!(
            "this command works on jobs, not {}",
            key.kind.plural()
        )));
    }
    Ok(key)
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<u8, ClientError> {
    let client = || ApiClient::new(&cli.server).map(|c| c.with_token(cli.token.clone()));
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Sync(args) => sync::sync(args).await,
        Command::Operator(args) => operator::operator(args).await,
        Command::Apply(args) => apply::apply(&client()?, args).await,
        Command::Get(args) => output::get(&client()?, args).await,
        Command::Describe(t) => describe::describe(&client()?, &target_key(&t)?).await,
        Command::Approve(args) => workflow::approve(&client()?, args).await,
        Command::Suspend(t) => workflow::suspend(&client()?, &t, true).await,
        Command::Resume(t) => workflow::suspend(&client()?, &t, false).await,
        Command::Logs(args) => logs(&client()?, args).await,
        Command::Delete(t) => {
            let key = target_key(&t)?;
            client()?
                .request(reqwest::Method::DELETE, &object_path(&key), None)
                .await?;
            println!("{}.orcaops.dev/{} deleted", key.kind.singular(), key.name);
            Ok(exit::OK)
        }
        Command::Cancel(CancelArgs { target: t, run })
            if target_key(&t)?.kind == Kind::Workflow =>
        {
            workflow::cancel(&client()?, &target_key(&t)?, run).await
        }
        Command::Cancel(CancelArgs { run: Some(_), .. }) => Err(ClientError::usage(
            "--run names one of several runs in progress, which only a workflow has (concurrencyPolicy: Allow); a job has one run at a time: orcaops cancel job NAME",
        )),
        Command::Cancel(CancelArgs { target: t, .. }) => {
            let key = require_job(&t)?;
            let path = format!("{}/cancel", object_path(&key));
            let obj = client()?.json(reqwest::Method::POST, &path, None).await?;
            let run = obj
                .pointer("/metadata/annotations/orcaops.dev~1cancel")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            println!("job.orcaops.dev/{} run {run} cancel requested", key.name);
            Ok(exit::OK)
        }
        Command::Rerun(args) => workflow::rerun(&client()?, args).await,
        Command::Exec(args) => exec::exec(&client()?, args).await,
        Command::Cp(args) => cp::cp(&client()?, args).await,
        Command::Stop(t) => sandbox_state(&client()?, &t, "stop").await,
        Command::Start(t) => sandbox_state(&client()?, &t, "start").await,
        Command::History(args) => history::history(&client()?, args).await,
        Command::Key(args) => key::key(&client()?, args).await,
        Command::Policy(args) => policy::policy(&client()?, args).await,
        Command::Audit(args) => audit::audit(&client()?, args).await,
        Command::Anomalies(args) => anomalies::anomalies(&client()?, args).await,
        Command::Diff(args) => compare::diff(&client()?, args).await,
        Command::Stats(args) => compare::stats(&client()?, args).await,
        Command::Run(run::RunCommand {
            what: Some(run::RunWhat::Workflow(args)),
            ..
        }) => workflow::run_workflow(&client()?, args).await,
        Command::Run(command) => run::run(&cli.server, cli.token.clone(), command.args).await,
        Command::Mcp(args) => mcp::mcp(&cli.server, cli.token.clone(), args).await,
        Command::Crds => {
            print!("{}", crate::resources::crds_yaml());
            Ok(exit::OK)
        }
        Command::Completion(args) => Ok(completion::print(&args)),
        Command::Init(args) => init::init(&args),
        Command::Doctor(args) => doctor::doctor(args, &client()?, &cli.server).await,
        Command::Ui(args) => ui::ui(&client()?, args).await,
    }
}

/// `stop` or `start` a sandbox through its subresource.
async fn sandbox_state(client: &ApiClient, t: &Target, verb: &str) -> Result<u8, ClientError> {
    let key = target_key(t)?;
    if key.kind != Kind::Sandbox {
        return Err(ClientError::usage(format!(
            "{verb} works on sandboxes, not {}; for a job use cancel or rerun",
            key.kind.plural()
        )));
    }
    let path = format!("{}/{verb}", object_path(&key));
    client.json(reqwest::Method::POST, &path, None).await?;
    let ns = if key.namespace == DEFAULT_WORKSPACE {
        String::new()
    } else {
        format!(" -n {}", key.namespace)
    };
    let until = if verb == "stop" { "Stopped" } else { "Ready" };
    println!("sandbox.orcaops.dev/{} {verb} requested", key.name);
    eprintln!(
        "`orcaops get sandbox {}{ns} -w` shows it reach {until}",
        key.name
    );
    Ok(exit::OK)
}

async fn logs(client: &ApiClient, args: LogsArgs) -> Result<u8, ClientError> {
    use futures::StreamExt;
    use std::io::Write;
    let key = target_key(&args.target)?;
    if key.kind == Kind::Workflow {
        let Some(node) = &args.node else {
            return Err(ClientError::usage(format!(
                "a workflow's output is its nodes': name one, as in `orcaops logs workflow {} --node NODE` (`orcaops describe workflow {}` lists them)",
                key.name, key.name
            )));
        };
        if args.step.is_some()
            || args.run.is_some()
            || args.attempt.is_some()
            || args.service.is_some()
        {
            return Err(ClientError::usage(
                "a workflow's logs take --node, -f and --tail; for --step, --run or --attempt use the node's Job: orcaops logs job JOB (orcaops get jobs -l orcaops.dev/workflow=NAME)",
            ));
        }
        return workflow::logs(client, &key, node, args.follow, args.tail).await;
    }
    if args.node.is_some() {
        return Err(ClientError::usage(
            "--node is for workflows: orcaops logs workflow NAME --node N",
        ));
    }
    let mut query = vec![];
    if key.kind == Kind::Sandbox {
        if args.step.is_some() || args.run.is_some() || args.attempt.is_some() {
            return Err(ClientError::usage(
                "--step, --run and --attempt are for jobs; a sandbox's log takes --service, -f and --tail",
            ));
        }
        if let Some(service) = &args.service {
            query.push(format!("service={}", urlencode(service)));
        }
    } else {
        require_job(&args.target)?;
        if args.service.is_some() {
            return Err(ClientError::usage(
                "--service is for sandboxes: orcaops logs sandbox NAME --service S",
            ));
        }
    }
    if args.follow {
        query.push("follow=true".to_string());
    }
    if let Some(step) = &args.step {
        query.push(format!("step={}", urlencode(step)));
    }
    if let Some(run) = args.run {
        query.push(format!("run={run}"));
    }
    if let Some(attempt) = args.attempt {
        query.push(format!("attempt={attempt}"));
    }
    if let Some(tail) = args.tail {
        query.push(format!("tailLines={tail}"));
    }
    let path = format!("{}/log?{}", object_path(&key), query.join("&"));
    let mut stream = client.stream(&path).await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ClientError::unreachable(format!("the log stream broke: {e}")))?;
        out.write_all(&chunk)
            .and_then(|_| out.flush())
            .map_err(|e| ClientError::usage(format!("cannot write: {e}")))?;
    }
    Ok(exit::OK)
}

/// Takes `<data_dir>/orcaops.lock` for as long as the returned file lives, so that two
/// processes never share a data dir: a second store's writes would never reach the
/// first one's watchers, and two operators would write the same run records. `hint`
/// ends the error: what the caller should do instead.
pub(crate) fn lock_data_dir(data_dir: &Path, hint: &str) -> Result<std::fs::File, ClientError> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(data_dir).map_err(|e| {
        ClientError::usage(format!(
            "cannot create the data dir {}: {e}",
            data_dir.display()
        ))
    })?;
    let path = data_dir.join("orcaops.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| ClientError::usage(format!("cannot open {}: {e}", path.display())))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(ClientError::usage(format!(
            "the data dir {} is in use by another orcaops (pid {}); {hint}",
            data_dir.display(),
            holder.trim()
        )));
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

/// Where local state lives when `--data-dir` is not given.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ORCAOPS_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("orcaops");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/orcaops"),
        None => PathBuf::from(".orcaops-data"),
    }
}

/// `--env NAME=value` flags as a resource's `env`, in order.
fn env_vars(flags: &[String]) -> Result<Vec<crate::resources::common::EnvVar>, ClientError> {
    flags
        .iter()
        .map(|e| {
            let (name, value) = e
                .split_once('=')
                .ok_or_else(|| ClientError::usage(format!("--env {e}: use NAME=value")))?;
            Ok(crate::resources::common::EnvVar {
                name: name.into(),
                value: value.into(),
                value_from: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn key_of(args: &[&str]) -> Result<crate::resources::ObjectKey, ClientError> {
        let cli = Cli::try_parse_from(args).expect("the arguments parse");
        match cli.command {
            Command::Describe(t) => target_key(&t),
            Command::Logs(args) => target_key(&args.target),
            other => panic!("unexpected command {other:?}"),
        }
    }

    #[test]
    fn a_target_is_kind_and_name_or_kind_slash_name() {
        let spaced = key_of(&["orcaops", "describe", "job", "hello"]).unwrap();
        let slashed = key_of(&["orcaops", "describe", "job/hello"]).unwrap();
        assert_eq!(spaced, slashed);
        assert_eq!((spaced.kind, spaced.name.as_str()), (Kind::Job, "hello"));
        let sandbox = key_of(&["orcaops", "logs", "sb/box", "-n", "team", "--tail", "2"]).unwrap();
        assert_eq!(
            (
                sandbox.kind,
                sandbox.namespace.as_str(),
                sandbox.name.as_str()
            ),
            (Kind::Sandbox, "team", "box")
        );
    }

    #[test]
    fn run_takes_a_job_s_flags_or_a_workflow_s_name() {
        let cli = Cli::try_parse_from(["orcaops", "run", "--image", "busybox", "--", "echo", "hi"])
            .unwrap();
        let Command::Run(job) = cli.command else {
            panic!("not run")
        };
        assert!(job.what.is_none());
        assert_eq!(job.args.command, ["echo", "hi"]);
        let cli = Cli::try_parse_from([
            "orcaops", "run", "workflow", "ci", "--input", "ref=x", "-i", "env=y",
        ])
        .unwrap();
        let Command::Run(run::RunCommand {
            what: Some(run::RunWhat::Workflow(wf)),
            ..
        }) = cli.command
        else {
            panic!("not run workflow")
        };
        assert_eq!((wf.name.as_str(), wf.inputs.len()), ("ci", 2));
        assert!(
            Cli::try_parse_from([
                "orcaops", "rerun", "workflow", "ci", "--failed", "--from", "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn a_target_without_a_name_or_with_two_says_how_to_write_it() {
        let missing = key_of(&["orcaops", "describe", "job"]).unwrap_err();
        assert!(missing.to_string().contains("KIND/NAME"), "{missing}");
        let empty = key_of(&["orcaops", "describe", "job/"]).unwrap_err();
        assert!(empty.to_string().contains("which job?"), "{empty}");
        let both = key_of(&["orcaops", "describe", "job/a", "b"]).unwrap_err();
        assert!(both.to_string().contains("drop the extra \"b\""), "{both}");
        let unknown = key_of(&["orcaops", "describe", "jobz/a"]).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown kind \"jobz\""),
            "{unknown}"
        );
    }
}
