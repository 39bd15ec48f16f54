//! The job tools: `run_job` (create, wait, report), `get_logs` and `cancel_job`.

use std::fmt::Write;
use std::time::{Duration, Instant};

use reqwest::Method;
use rmcp::RoleServer;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use serde_json::{Value, json};

use super::compact::{self, duration};
use super::params::{JobArgs, LogsArgs, RunJobArgs};
use super::{Answer, ToolError};
use crate::client::run::{RunState, RunWatch, StartedRun, job_status, start_run};
use crate::client::{ApiClient, ClientError, object_path, urlencode};
use crate::resources::common::EnvVar;
use crate::resources::job::{JobNetwork, JobPhase, JobSpec, JobStatus, Step};
use crate::resources::{DEFAULT_WORKSPACE, Kind, Object, ObjectKey, validate};

const DEFAULT_WAIT_SECS: u64 = 120;
const MAX_WAIT_SECS: u64 = 900;
const DEFAULT_RUN_TAIL: usize = 40;
const MAX_RUN_TAIL: usize = 500;
pub(super) const DEFAULT_LOG_TAIL: usize = 100;
pub(super) const MAX_LOG_TAIL: usize = 2000;
/// No answer carries more log than this, whatever the line count.
pub(super) const MAX_LOG_BYTES: usize = 16 * 1024;
/// How often `cancel_job` looks again while the container stops.
const POLL: Duration = Duration::from_millis(200);
/// How often a waiting `run_job` reports progress, when the client asked for it.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The Job object `run_job` creates, validated as every write path validates.
pub(super) fn build_job(args: &RunJobArgs, name: &str) -> Result<Object, ToolError> {
    let steps: Vec<Step> = match (&args.script, args.commands.as_slice()) {
        (Some(_), [_, ..]) => {
            return Err(ToolError::new(
                "give either `commands` (one step each) or `script` (one step), not both",
            ));
        }
        (Some(script), []) => vec![Step::script("script", script.clone())],
        (None, []) => {
            return Err(ToolError::new(
                "nothing to run: give `commands`, e.g. [\"echo hello\"], or a `script`",
            ));
        }
        (None, commands) => commands
            .iter()
            .enumerate()
            .map(|(i, c)| Step::script(format!("step-{}", i + 1), c.clone()))
            .collect(),
    };
    let spec = JobSpec {
        image: args.image.clone(),
        steps,
        env: EnvVar::from_pairs(&args.env),
        timeout_seconds: args.timeout_seconds,
        network: if args.network.unwrap_or(false) {
            JobNetwork::Bridge
        } else {
            JobNetwork::None
        },
        ..Default::default()
    };
    let workspace = args.workspace.as_deref().unwrap_or(DEFAULT_WORKSPACE);
    let obj = Object::new(
        Kind::Job,
        workspace,
        name,
        serde_json::to_value(spec).expect("a spec serializes"),
    );
    let problems = validate::validate(&obj);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(ToolError::new(format!(
            "the job is not valid:\n{}",
            lines.join("\n")
        )));
    }
    Ok(obj)
}

enum Waited {
    Finished(Box<JobStatus>),
    /// The wait ended first; the run was in this phase.
    StillRunning(JobPhase),
}

pub(super) async fn run_job(
    client: &ApiClient,
    args: RunJobArgs,
    ctx: &RequestContext<RoleServer>,
) -> Result<Answer, ToolError> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("run-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]));
    let obj = build_job(&args, &name)?;
    let started = start_run(client, &obj).await?;
    let (key, run, outcome) = (&started.key, started.run, &started.outcome);
    let job = format!("{}/{}", key.namespace, key.name);
    let follow_up = follow_up(key);
    if !args.wait.unwrap_or(true) {
        return Ok(Answer {
            text: format!("job {job} {outcome}; run {run} starts now.\n{follow_up}"),
            structured: json!({
                "job": key.name, "workspace": key.namespace, "run": run,
                "phase": "Pending", "outcome": outcome,
            }),
        });
    }
    let max_wait = Duration::from_secs(
        args.max_wait_seconds
            .unwrap_or(DEFAULT_WAIT_SECS)
            .min(MAX_WAIT_SECS),
    );
    let status = match wait_for_run(client, &started, max_wait, ctx).await? {
        Waited::Finished(status) => *status,
        Waited::StillRunning(phase) => {
            let phase = phase.as_str();
            return Ok(Answer {
                text: format!(
                    "job {job} run {run} is still {phase} after {}s; it keeps running.\n{follow_up}",
                    max_wait.as_secs()
                ),
                structured: json!({
                    "job": key.name, "workspace": key.namespace, "run": run,
                    "phase": phase, "finished": false,
                }),
            });
        }
    };
    let lines = args
        .tail_lines
        .unwrap_or(DEFAULT_RUN_TAIL)
        .clamp(1, MAX_RUN_TAIL);
    let log = fetch_log(client, key, &format!("run={run}"), lines).await;
    Ok(finished_answer(key, run, &status, log))
}

fn follow_up(key: &ObjectKey) -> String {
    let args = if key.namespace == DEFAULT_WORKSPACE {
        format!("name=\"{}\"", key.name)
    } else {
        format!("name=\"{}\", workspace=\"{}\"", key.name, key.namespace)
    };
    format!(
        "Follow up: get_resource(kind=\"job\", {args}) for its phase and step results, \
         get_logs(job=\"{}\") for its output, cancel_job({args}) to stop it.",
        key.name
    )
}

/// Follows the run on a watch of its job until it finishes or `max_wait` passes, sending a progress
/// notification each second when the client asked for them (some clients extend their
/// timeout on each).
async fn wait_for_run(
    client: &ApiClient,
    started: &StartedRun,
    max_wait: Duration,
    ctx: &RequestContext<RoleServer>,
) -> Result<Waited, ToolError> {
    let (key, run) = (&started.key, started.run);
    let mut watch = RunWatch::new(client, started);
    let begun = Instant::now();
    let progress = ctx.meta.get_progress_token();
    let deadline = tokio::time::sleep(max_wait);
    tokio::pin!(deadline);
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut phase = JobPhase::Pending;
    loop {
        tokio::select! {
            // A run that ended as the wait did counts as finished.
            biased;
            state = watch.next() => match state? {
                RunState::Finished(status) => return Ok(Waited::Finished(Box::new(status))),
                RunState::Deleted => {
                    return Err(ToolError::new(format!(
                        "job {}/{} was deleted while waiting; its logs may still be read with get_logs(job=\"{}\", run={run})",
                        key.namespace, key.name, key.name
                    )));
                }
                state => phase = state.phase(),
            },
            _ = ctx.ct.cancelled() => {
                return Err(ToolError::new(format!(
                    "the wait was cancelled by the client; job {} keeps running",
                    key.name
                )));
            }
            _ = &mut deadline => return Ok(Waited::StillRunning(phase)),
            _ = ticks.tick(), if progress.is_some() => {
                let token = progress.clone().expect("checked by the branch's condition");
                let note = ProgressNotificationParam::new(token, begun.elapsed().as_secs_f64())
                    .with_total(max_wait.as_secs_f64())
                    .with_message(format!("job {} run {run}: {}", key.name, phase.as_str()));
                let _ = ctx.peer.notify_progress(note).await;
            }
        }
    }
}

/// A log tail as fetched: the text kept, whether lines were left out, or why it failed.
type LogTail = Result<compact::Tail, String>;

/// The last `lines` lines of a log; `query` picks run, attempt and step.
async fn fetch_log(client: &ApiClient, key: &ObjectKey, query: &str, lines: usize) -> LogTail {
    // One line more than asked tells whether anything was left out.
    let path = format!("{}/log?{query}&tailLines={}", object_path(key), lines + 1);
    let response = client
        .request(Method::GET, &path, None)
        .await
        .map_err(|e| e.to_string())?;
    let text = response
        .text()
        .await
        .map_err(|e| format!("the log could not be read: {e}"))?;
    let mut tail = compact::tail(&text, lines, MAX_LOG_BYTES);
    tail.truncated |= text.lines().count() > lines;
    Ok(tail)
}

fn finished_answer(key: &ObjectKey, run: u32, status: &JobStatus, log: LogTail) -> Answer {
    let mut text = format!(
        "job {}/{} run {run}: {}",
        key.namespace,
        key.name,
        status.phase.as_str()
    );
    let total_ms = match (status.start_time, status.completion_time) {
        (Some(start), Some(end)) => u64::try_from((end - start).num_milliseconds()).ok(),
        _ => None,
    };
    if let Some(ms) = total_ms {
        let _ = write!(text, " in {}", duration(ms));
    }
    if let Some(attempt) = status.attempt.filter(|a| *a > 1) {
        let _ = write!(text, " (attempt {attempt})");
    }
    if let Some(summary) = &status.summary {
        let _ = write!(text, " — {}", compact::clip(summary, 200));
    }
    text.push('\n');
    let steps: Vec<Value> = status
        .steps
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "exitCode": s.exit_code,
                "durationMs": s.duration_ms,
            })
        })
        .collect();
    let step_text: Vec<String> = status
        .steps
        .iter()
        .map(|s| {
            let code = s
                .exit_code
                .map_or("did not run".to_string(), |c| format!("exit {c}"));
            match s.duration_ms {
                Some(ms) => format!("{} {code} ({})", s.name, duration(ms)),
                None => format!("{} {code}", s.name),
            }
        })
        .collect();
    if !step_text.is_empty() {
        let _ = writeln!(text, "steps: {}", step_text.join(", "));
    }
    let mut structured = json!({
        "job": key.name,
        "workspace": key.namespace,
        "run": run,
        "phase": status.phase.as_str(),
        "attempt": status.attempt,
        "summary": status.summary,
        "durationMs": total_ms,
        "steps": steps,
    });
    match log {
        Ok(tail) => {
            let header = if tail.text.is_empty() {
                "output: (none)".to_string()
            } else if tail.truncated {
                format!(
                    "output (last {} lines; get_logs(job=\"{}\", run={run}, tail_lines=N) for more):",
                    tail.lines, key.name
                )
            } else {
                "output:".to_string()
            };
            let _ = writeln!(text, "{header}");
            text.push_str(&tail.text);
            structured["logTail"] = json!(tail.text);
            structured["logTruncated"] = json!(tail.truncated);
        }
        Err(e) => {
            let _ = writeln!(text, "output: unavailable ({e})");
        }
    }
    Answer { text, structured }
}

pub(super) async fn logs(client: &ApiClient, args: LogsArgs) -> Result<Answer, ToolError> {
    let key = ObjectKey::new(Kind::Job, &args.workspace, &args.job);
    let job = client.find_object(&key).await?;
    let status = job.as_ref().map(job_status);
    let run = args.run.or(status.as_ref().and_then(|s| s.run));
    let attempt = args.attempt.or_else(|| {
        let s = status.as_ref()?;
        (args.run.is_none() || args.run == s.run)
            .then_some(s.attempt)
            .flatten()
    });
    let mut query = Vec::new();
    if let Some(run) = run {
        query.push(format!("run={run}"));
    }
    if let Some(attempt) = attempt {
        query.push(format!("attempt={attempt}"));
    }
    if let Some(step) = &args.step {
        query.push(format!("step={}", urlencode(step)));
    }
    let lines = args
        .tail_lines
        .unwrap_or(DEFAULT_LOG_TAIL)
        .clamp(1, MAX_LOG_TAIL);
    let tail = fetch_log(client, &key, &query.join("&"), lines)
        .await
        .map_err(|message| log_error(&key, job.as_ref(), &args, message))?;
    let mut what = format!("job {}/{}", key.namespace, key.name);
    if let Some(run) = run {
        let _ = write!(what, " run {run}");
    }
    if let Some(attempt) = attempt {
        let _ = write!(what, " attempt {attempt}");
    }
    if let Some(step) = &args.step {
        let _ = write!(what, " step {step}");
    }
    let live = status
        .as_ref()
        .is_some_and(|s| s.run == run && !s.phase.is_finished() && s.phase != JobPhase::Pending);
    let empty = if live {
        "no output yet (the run is in progress)"
    } else {
        "no output"
    };
    let header = tail.header(
        &what,
        empty,
        &format!("raise tail_lines, at most {MAX_LOG_TAIL}, or pick a step"),
    );
    Ok(Answer {
        text: format!("{header}\n{}", tail.text),
        structured: json!({
            "job": key.name,
            "workspace": key.namespace,
            "run": run,
            "attempt": attempt,
            "step": args.step,
            "lines": tail.lines,
            "truncated": tail.truncated,
            "inProgress": live,
            "text": tail.text,
        }),
    })
}

/// A log request that failed, with what the model can do about it.
fn log_error(key: &ObjectKey, job: Option<&Object>, args: &LogsArgs, message: String) -> ToolError {
    let Some(job) = job else {
        return ToolError::new(format!(
            "{message}\njob {}/{} does not exist (and has no run records); list jobs with list_resources(kind=\"job\", workspace=\"{}\")",
            key.namespace, key.name, key.namespace
        ));
    };
    let status = job_status(job);
    let Some(run) = status.run else {
        return ToolError::new(format!(
            "job {} has not started a run yet (it is {}); ask again in a moment, or see why with get_resource(kind=\"job\", name=\"{}\")",
            key.name,
            compact::phase(job),
            key.name
        ));
    };
    let mut hints = Vec::new();
    if args.step.is_some() {
        let spec: Option<JobSpec> = serde_json::from_value(job.spec.clone()).ok();
        if let Some(spec) = spec {
            let names: Vec<&str> = spec.steps.iter().map(|s| s.name.as_str()).collect();
            hints.push(format!("its steps are: {}", names.join(", ")));
        }
    }
    hints.push(format!(
        "its latest run is {run} (attempt {})",
        status.attempt.unwrap_or(1)
    ));
    ToolError::new(format!("{message}\njob {}: {}", key.name, hints.join("; ")))
}

pub(super) async fn cancel(client: &ApiClient, args: JobArgs) -> Result<Answer, ToolError> {
    let key = ObjectKey::new(Kind::Job, &args.workspace, &args.name);
    let path = format!("{}/cancel", object_path(&key));
    let obj = client
        .json(Method::POST, &path, None)
        .await
        .map_err(|e| match e {
            ClientError::NotFound(message) => ToolError::new(format!(
                "{message}; list jobs with list_resources(kind=\"job\", workspace=\"{}\")",
                key.namespace
            )),
            e => ToolError::from(e),
        })?;
    let run: Option<u32> = obj
        .pointer("/metadata/annotations/orcaops.dev~1cancel")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok());
    // The controller stops the container within moments; report where it ended.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut status = job_status(&client.get_object(&key).await?);
    while !status.phase.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        status = job_status(&client.get_object(&key).await?);
    }
    let run_text = run.map_or(String::new(), |r| format!(" run {r}"));
    let text = if status.phase.is_finished() {
        format!(
            "job {}/{}{run_text} cancelled; it ended {}.",
            key.namespace,
            key.name,
            status.phase.as_str()
        )
    } else {
        format!(
            "job {}/{}{run_text}: cancel requested; it is still {} (stopping the container). Check with get_resource(kind=\"job\", name=\"{}\").",
            key.namespace,
            key.name,
            status.phase.as_str(),
            key.name
        )
    };
    Ok(Answer {
        text,
        structured: json!({
            "job": key.name,
            "workspace": key.namespace,
            "run": run,
            "phase": status.phase.as_str(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::job::StepStatus;

    fn args(commands: &[&str]) -> RunJobArgs {
        RunJobArgs {
            image: "busybox:latest".into(),
            commands: commands.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn each_command_is_one_step() {
        let obj = build_job(&args(&["make", "make test"]), "j").unwrap();
        let spec: JobSpec = serde_json::from_value(obj.spec).unwrap();
        let runs: Vec<_> = spec.steps.iter().map(|s| s.run.clone().unwrap()).collect();
        assert_eq!(runs, ["make", "make test"]);
        assert_eq!(spec.steps[1].name, "step-2");
        assert_eq!(spec.network, JobNetwork::None);
    }

    #[test]
    fn commands_and_script_exclude_each_other() {
        let mut both = args(&["a"]);
        both.script = Some("b".into());
        assert!(build_job(&both, "j").unwrap_err().0.contains("not both"));
        assert!(
            build_job(&args(&[]), "j")
                .unwrap_err()
                .0
                .contains("nothing to run")
        );
    }

    #[test]
    fn an_invalid_job_says_which_field_and_the_fix() {
        let mut a = args(&["true"]);
        a.image = "busy box".into();
        let err = build_job(&a, "j").unwrap_err().0;
        assert!(err.contains("spec.image") && err.contains("fix:"), "{err}");
    }

    #[test]
    fn a_finished_answer_is_short_and_points_to_more() {
        let key = ObjectKey::new(Kind::Job, "default", "j");
        let status = JobStatus {
            phase: JobPhase::Succeeded,
            run: Some(1),
            attempt: Some(1),
            steps: vec![StepStatus {
                name: "step-1".into(),
                exit_code: Some(0),
                start_time: None,
                duration_ms: Some(310),
                output_tail: String::new(),
                errors: Vec::new(),
            }],
            ..Default::default()
        };
        let big: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        let mut tail = compact::tail(&big, 40, MAX_LOG_BYTES);
        tail.truncated = true;
        let answer = finished_answer(&key, 1, &status, Ok(tail));
        assert!(answer.text.starts_with("job default/j run 1: Succeeded\n"));
        assert!(answer.text.contains("step-1 exit 0 (310ms)"));
        assert!(
            answer
                .text
                .contains("get_logs(job=\"j\", run=1, tail_lines=N)")
        );
        assert!(answer.text.ends_with("line 4999\n"));
        assert!(answer.text.len() < 1_000, "{}", answer.text.len());
        assert_eq!(answer.structured["steps"][0]["exitCode"], 0);
        assert_eq!(answer.structured["logTruncated"], true);
    }
}
