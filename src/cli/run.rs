//! `orcaops run`: create a one-off job (or run a job file), stream its output, wait,
//! and exit with its outcome. Without a reachable server it starts an embedded one.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::serve::LocalMode;
use crate::client::run::{RunState, RunWatch, job_status, start_run};
use crate::client::{ApiClient, ClientError, exit, object_path};
use crate::resources::job::{JobNetwork, JobPhase, JobSpec, Step};
use crate::resources::{DEFAULT_WORKSPACE, Kind, Object, ObjectKey, validate};

/// `orcaops run` with a job's flags, or `orcaops run workflow NAME`.
#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  orcaops run --image busybox:latest -- echo hello\n  orcaops run -f examples/hello.yaml\n  orcaops run --image busybox:latest --timeout 10 -e GREETING=hi -- sh -c 'echo $GREETING'\n  orcaops run workflow ci --input ref=main   (see orcaops run workflow --help)\n\n\
    With no server at --server, run starts an embedded store and controller (data in\n$ORCAOPS_DATA_DIR or ~/.local/share/orcaops), so it works alone in CI scripts.\n\
    Exit codes: 0 succeeded, 2 failed or cancelled, 3 timed out, 5 Docker unreachable."
)]
pub struct RunCommand {
    #[command(subcommand)]
    pub what: Option<RunWhat>,
    #[command(flatten)]
    pub args: RunArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum RunWhat {
    /// Start a run of an applied Workflow and follow its DAG to the end.
    Workflow(super::workflow::RunWorkflowArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The image to run the command in.
    #[arg(long, conflicts_with = "file")]
    pub image: Option<String>,
    /// The job's name (default: run-<random>).
    #[arg(long)]
    pub name: Option<String>,
    /// Run the Job declared in this file instead.
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
    /// Seconds before the run is stopped and counted as timed out.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Environment variables, NAME=value. Repeatable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Give the container a network (the default is none).
    #[arg(long)]
    pub network: bool,
    /// Always use an embedded controller, even when a server answers.
    #[arg(long)]
    pub embedded: bool,
    /// Data dir of the embedded controller.
    #[arg(long, env = "ORCAOPS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

fn build_job(args: &RunArgs) -> Result<Object, ClientError> {
    let mut obj = if let Some(file) = &args.file {
        let (objects, errors) = super::apply::load(std::slice::from_ref(file), None)?;
        if let Some(e) = errors.first() {
            return Err(ClientError::usage(e.to_string()));
        }
        let mut jobs = objects.into_iter().filter(|o| o.kind == Kind::Job);
        let job = jobs.next().ok_or_else(|| {
            ClientError::usage(format!("{}: no Job in this file", file.display()))
        })?;
        if jobs.next().is_some() {
            return Err(ClientError::usage(format!(
                "{}: holds several Jobs; run takes a file with one",
                file.display()
            )));
        }
        job
    } else {
        let image = args.image.clone().ok_or_else(|| {
            ClientError::usage("say what to run: --image IMAGE -- COMMAND ARGS, or -f job.yaml")
        })?;
        if args.command.is_empty() {
            return Err(ClientError::usage(
                "no command: put it after --, as in `orcaops run --image busybox:latest -- echo hi`",
            ));
        }
        let env = super::env_vars(&args.env)?;
        let spec = JobSpec {
            image,
            steps: vec![Step::exec("main", args.command.clone())],
            env,
            timeout_seconds: args.timeout,
            network: if args.network {
                JobNetwork::Bridge
            } else {
                JobNetwork::None
            },
            ..Default::default()
        };
        let name = args
            .name
            .clone()
            .unwrap_or_else(|| format!("run-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]));
        Object::new(
            Kind::Job,
            &args.namespace,
            &name,
            serde_json::to_value(spec).expect("a spec serializes"),
        )
    };
    if args.file.is_some() {
        if let Some(name) = &args.name {
            obj.metadata.name = name.clone();
        }
        obj.metadata.namespace = Some(args.namespace.clone());
    }
    let problems = validate::validate(&obj);
    if !problems.is_empty() {
        let text: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {} (fix: {})", p.field, p.message, p.fix))
            .collect();
        return Err(ClientError::usage(text.join("\n")));
    }
    Ok(obj)
}

pub async fn run(server: &str, token: Option<String>, args: RunArgs) -> Result<u8, ClientError> {
    let obj = build_job(&args)?;
    let mut client = ApiClient::new(server)?.with_token(token);
    let mut embedded = None;
    if args.embedded || !client.is_up().await {
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(super::default_data_dir);
        let local = LocalMode::start(
            data_dir.clone(),
            None,
            "127.0.0.1:0".parse().expect("an address"),
            4,
        )
        .await?;
        if !args.embedded {
            eprintln!(
                "no server at {server}; running with an embedded controller (data in {})",
                data_dir.display()
            );
        }
        client = ApiClient::new(&format!("http://{}", local.addr))?;
        embedded = Some(local);
    }
    let result = run_and_wait(&client, obj).await;
    if let Some(local) = embedded {
        local.stop().await;
    }
    result
}

async fn run_and_wait(client: &ApiClient, obj: Object) -> Result<u8, ClientError> {
    let started = start_run(client, &obj).await?;
    let (key, target) = (started.key.clone(), started.run);
    eprintln!(
        "job.orcaops.dev/{} {}; waiting for run {target}",
        key.name, started.outcome
    );
    let mut watch = RunWatch::new(client, &started);

    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    let begun = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    let mut log_task: Option<tokio::task::JoinHandle<()>> = None;
    // Only redraws the elapsed time; it sends no request.
    let mut redraw = tokio::time::interval(Duration::from_millis(100));
    let mut stdout = std::io::stdout();
    let mut phase = JobPhase::Pending;
    let final_status = loop {
        tokio::select! {
            Some(chunk) = rx.recv() => {
                bar.suspend(|| { let _ = stdout.write_all(&chunk); let _ = stdout.flush(); });
            }
            _ = redraw.tick() => {
                bar.set_message(format!("{} · {} · {:.1}s", key.name, phase.as_str(), begun.elapsed().as_secs_f64()));
            }
            state = watch.next() => {
                let state = match state {
                    Ok(state) => state,
                    Err(e) => {
                        bar.finish_and_clear();
                        return Err(e);
                    }
                };
                // A run that ends before any other change was seen still has output to print.
                if state.has_started() && log_task.is_none() {
                    log_task = Some(tokio::spawn(follow_logs(
                        client.clone(),
                        key.clone(),
                        target,
                        tx.clone(),
                    )));
                }
                match state {
                    RunState::Finished(status) => break status,
                    RunState::Deleted => {
                        bar.finish_and_clear();
                        return Err(ClientError::Failed(format!("job {} was deleted while running", key.name)));
                    }
                    state => phase = state.phase(),
                }
            }
        }
    };
    drop(watch);
    drop(tx);
    if let Some(task) = log_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    while let Ok(chunk) = rx.try_recv() {
        let _ = stdout.write_all(&chunk);
    }
    let _ = stdout.flush();
    bar.finish_and_clear();
    let summary = final_status.summary.clone().unwrap_or_default();
    eprintln!("{}: {summary}", key.name);
    Ok(match final_status.phase {
        JobPhase::Succeeded => exit::OK,
        JobPhase::TimedOut => exit::TIMED_OUT,
        _ => exit::FAILED,
    })
}

/// Follows the output of every attempt of `run` in turn.
async fn follow_logs(
    client: ApiClient,
    key: ObjectKey,
    run: u32,
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
) {
    let mut attempt = 1;
    loop {
        let path = format!(
            "{}/log?follow=true&run={run}&attempt={attempt}",
            object_path(&key)
        );
        if let Ok(mut stream) = client.stream(&path).await {
            while let Some(Ok(chunk)) = stream.next().await {
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        }
        let Ok(Some(obj)) = client.find_object(&key).await else {
            return;
        };
        let status = job_status(&obj);
        match status.attempt {
            Some(a) if status.run == Some(run) && a > attempt => {
                attempt = a;
                let _ = tx
                    .send(bytes::Bytes::from(format!("--- attempt {a} ---\n")))
                    .await;
            }
            _ if status.phase.is_finished() || status.run != Some(run) => return,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
