//! Harvesting a finished (or stopped) attempt: its output split into steps, its exit
//! code and artifacts become an attempt record; then the container is removed.
//! Every part is idempotent, so a harvest interrupted by a crash simply runs again.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{info, warn};

use crate::records::{self, AttemptOutcome, AttemptRecord};
use crate::resources::Object;
use crate::resources::job::{ArtifactStatus, JobSpec, StepStatus};
use crate::runtime::runner::RunnerParser;
use crate::runtime::{ContainerInfo, ContainerState, LogLine, RuntimeError};

use super::super::{Context, ControllerError};
use super::journal;
use crate::runtime::names::{NONCE_LABEL, STOP_GRACE_SECS};

/// How much of a step's output its status keeps.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 2048;

pub(super) async fn harvest(
    ctx: &Arc<Context>,
    obj: &Object,
    spec: &JobSpec,
    container: &ContainerInfo,
    run: u32,
    attempt: u32,
    forced: Option<AttemptOutcome>,
) -> Result<AttemptRecord, ControllerError> {
    if forced.is_some() {
        ctx.jobs.stop(&container.id, STOP_GRACE_SECS).await?;
    }
    let exit_code = match ctx.jobs.inspect(&container.id).await? {
        Some(ContainerInfo {
            state: ContainerState::Exited { code },
            ..
        }) => Some(code),
        _ => None,
    };
    let run_dir = super::run_dir(ctx, obj, run);
    let nonce = container.label(NONCE_LABEL).unwrap_or_default().to_string();
    let journal = journal::path(&records::attempt_log(&run_dir, attempt));
    let output = read_output(ctx, container, &journal, &nonce, spec.steps.len()).await?;
    write_logs(&run_dir, attempt, spec, &output).await?;

    let steps: Vec<StepStatus> = spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let progress = output.progress.get(i).cloned().unwrap_or_default();
            let duration_ms = match (progress.started_at, progress.finished_at) {
                (Some(s), Some(f)) => Some((f - s).num_milliseconds().max(0) as u64),
                _ => None,
            };
            StepStatus {
                name: step.name.clone(),
                exit_code: progress.exit_code,
                start_time: progress.started_at,
                duration_ms,
                output_tail: tail(&output.per_step[i]),
            }
        })
        .collect();

    let failed_step = steps.iter().find(|s| s.exit_code.is_some_and(|c| c != 0));
    let mut outcome = forced.unwrap_or(if exit_code == Some(0) {
        AttemptOutcome::Succeeded
    } else {
        AttemptOutcome::Failed
    });
    let mut message = match (outcome, failed_step) {
        (AttemptOutcome::Succeeded, _) => "all steps succeeded".to_string(),
        (AttemptOutcome::Failed, Some(step)) => {
            format!(
                "step \"{}\" exited with {}",
                step.name,
                step.exit_code.unwrap_or_default()
            )
        }
        (AttemptOutcome::Failed, None) => {
            let oom = exit_code == Some(137) && ctx.jobs.oom_killed(&container.id).await?;
            super::decide::ended::before_steps_finished(exit_code, oom, &output.progress)
        }
        (AttemptOutcome::TimedOut, _) => "stopped at the timeout".to_string(),
        _ => "stopped on request".to_string(),
    };

    let mut artifacts = Vec::new();
    let artifact_dir = records::artifact_dir(&run_dir);
    for artifact in &spec.artifacts {
        match ctx
            .jobs
            .copy_out(&container.id, &artifact.path, &artifact_dir, &artifact.name)
            .await
        {
            Ok(copied) => artifacts.push(ArtifactStatus {
                name: artifact.name.clone(),
                size: copied.size,
                sha256: copied.sha256,
            }),
            Err(RuntimeError::PathNotFound { .. }) if !artifact.optional && outcome.succeeded() => {
                outcome = AttemptOutcome::Failed;
                message = format!(
                    "artifact \"{}\" was not found at {}",
                    artifact.name, artifact.path
                );
            }
            Err(RuntimeError::PathNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !spec.artifacts.is_empty() {
        // A pod holds after its steps until this; Docker has nothing to release. The
        // removal below ends the attempt anyway, so a failure is only logged.
        if let Err(e) = ctx.jobs.release(&container.id).await {
            warn!(container = %container.name, error = %e, "cannot release the attempt after copying its artifacts");
        }
    }

    let record = AttemptRecord {
        uid: obj.metadata.uid.clone(),
        run,
        attempt,
        container_name: container.name.clone(),
        outcome,
        exit_code: failed_step.and_then(|s| s.exit_code).or(exit_code),
        message,
        started_at: container.started_at.or(output.first_time),
        finished_at: output
            .last_time
            .filter(|_| forced.is_none())
            .unwrap_or_else(Utc::now),
        steps,
        artifacts,
    };
    ctx.records.put_attempt(&record).await?;
    info!(run, attempt, outcome = ?record.outcome, "attempt recorded");
    // Its lines are in the step logs now.
    if let Err(e) = tokio::fs::remove_file(&journal).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(journal = %journal.display(), error = %e, "cannot remove a harvested attempt's journal");
    }
    // The record is safe; the container is no longer needed. Removal is off the
    // critical path: a crash before it happens leaves a harvested container that the
    // next reconcile removes.
    let runtime = Arc::clone(&ctx.jobs);
    let id = container.id.clone();
    tokio::spawn(async move {
        if let Err(e) = runtime.remove(&id).await {
            warn!(container = %id, error = %e, "cannot remove a harvested container");
        }
    });
    Ok(record)
}

struct Output {
    per_step: Vec<Vec<String>>,
    /// Output before the first step marker (the runner itself, or a shell error).
    preamble: Vec<String>,
    all: Vec<String>,
    progress: Vec<crate::runtime::runner::StepProgress>,
    first_time: Option<DateTime<Utc>>,
    last_time: Option<DateTime<Utc>>,
}

/// The attempt's output, split into steps: what the runtime serves, after what it no
/// longer serves but the follower kept in the journal (see [`journal`]).
async fn read_output(
    ctx: &Context,
    container: &ContainerInfo,
    journal_path: &std::path::Path,
    nonce: &str,
    step_count: usize,
) -> Result<Output, ControllerError> {
    let mut parser = RunnerParser::new(nonce, step_count);
    let mut output = Output {
        per_step: vec![Vec::new(); step_count],
        preamble: Vec::new(),
        all: Vec::new(),
        progress: Vec::new(),
        first_time: None,
        last_time: None,
    };
    let mut lines = ctx.jobs.logs(&container.id, false);
    let mut next = async || match lines.next().await {
        Some(Ok(line)) => Ok(Some(line)),
        // Gone meanwhile (a stopped pod is deleted): what was read is what there is.
        Some(Err(RuntimeError::ContainerNotFound { .. })) | None => Ok(None),
        Some(Err(e)) => Err(ControllerError::from(e)),
    };
    let head = next().await?;
    let lost = journal::lost_before(journal::read(journal_path).await?, head.as_ref());
    let mut push = |line: LogLine| {
        output.first_time.get_or_insert(line.timestamp);
        output.last_time = Some(line.timestamp);
        if let Some((step, text)) = parser.push(&line) {
            match step {
                Some(i) if i < step_count => output.per_step[i].push(text.clone()),
                _ => output.preamble.push(text.clone()),
            }
            output.all.push(text);
        }
    };
    for line in lost.into_iter().chain(head) {
        push(line);
    }
    while let Some(line) = next().await? {
        push(line);
    }
    output.progress = parser.steps().to_vec();
    Ok(output)
}

async fn write_logs(
    run_dir: &std::path::Path,
    attempt: u32,
    spec: &JobSpec,
    output: &Output,
) -> Result<(), ControllerError> {
    let log = records::attempt_log(run_dir, attempt);
    if let Some(dir) = log.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::write(&log, join_lines(&output.all)).await?;
    for (i, step) in spec.steps.iter().enumerate() {
        let path = records::step_log(run_dir, attempt, i, &step.name);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut text = String::new();
        if i == 0 && !output.preamble.is_empty() {
            text.push_str(&join_lines(&output.preamble));
        }
        text.push_str(&join_lines(&output.per_step[i]));
        tokio::fs::write(&path, text).await?;
    }
    Ok(())
}

fn join_lines(lines: &[String]) -> String {
    let mut s = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// The last lines of a step's output, at most [`TAIL_LINES`] lines and about [`TAIL_BYTES`].
fn tail(lines: &[String]) -> String {
    let start = lines.len().saturating_sub(TAIL_LINES);
    let text = lines[start..].join("\n");
    if text.len() <= TAIL_BYTES {
        return text;
    }
    let mut cut = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &text[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_and_bytes() {
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let t = tail(&lines);
        assert!(t.starts_with("line 80"));
        assert!(t.ends_with("line 99"));
        let long = vec!["é".repeat(3000)];
        let t = tail(&long);
        assert!(t.len() <= TAIL_BYTES + 4);
        assert!(t.starts_with('…'));
    }
}
