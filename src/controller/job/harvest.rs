//! Harvesting a finished (or stopped) attempt: its output split into steps, its exit
//! code and artifacts become an attempt record; then the container is removed.
//! Every part is idempotent, so a harvest interrupted by a crash simply runs again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{info, warn};

use crate::records::errors::Extractor;
use crate::records::output::human_bytes;
use crate::records::{self, AttemptOutcome, AttemptRecord};
use crate::resources::job::{ArtifactStatus, JobSpec, StepStatus, Usage};
use crate::resources::{Object, keys};
use crate::runtime::runner::{RunnerParser, outputs};
use crate::runtime::{ContainerInfo, ContainerState, RuntimeError};

use super::super::{Context, ControllerError};
use super::journal;
use super::log_writer::{LogWriter, partial};
use crate::runtime::names::{NONCE_LABEL, STOP_GRACE_SECS};

/// How much of a step's output its status keeps.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 2048;

pub(super) async fn harvest(
    ctx: &Arc<Context>,
    obj: &Object,
    spec: &JobSpec,
    container: &ContainerInfo,
    (run, attempt): (u32, u32),
    forced: Option<AttemptOutcome>,
    deadline: Option<DateTime<Utc>>,
) -> Result<AttemptRecord, ControllerError> {
    if forced.is_some() {
        ctx.jobs.stop(&container.id, STOP_GRACE_SECS).await?;
    }
    let (exit_code, finished_at, image_id) = match ctx.jobs.inspect(&container.id).await? {
        Some(ContainerInfo {
            state: ContainerState::Exited { code },
            finished_at,
            image_id,
            ..
        }) => (Some(code), finished_at, image_id),
        _ => (None, None, None),
    };
    let image_id = image_id.or_else(|| container.image_id.clone());
    let run_dir = super::run_dir(ctx, obj, run);
    let nonce = container.label(NONCE_LABEL).unwrap_or_default().to_string();
    let journal = journal::path(&records::attempt_log(&run_dir, attempt));
    let mut output =
        write_output(ctx, container, &run_dir, attempt, &nonce, spec.steps.len()).await?;

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
                output_tail: tail(output.tails[i].make_contiguous()),
                errors: output.errors.get(i).cloned().unwrap_or_default().finish(),
            }
        })
        .collect();

    let failed_step = steps.iter().find(|s| s.exit_code.is_some_and(|c| c != 0));
    // The runner exits 0 only after every step reported its end. A container that ended
    // 0 without that was ended from outside: a Docker daemon killed and started again
    // reports 0 for the containers it finds running and stops.
    let unfinished = steps.iter().position(|s| s.exit_code.is_none());
    let job_outputs = outputs::collect(&spec.steps, &output.outputs);
    let mut outcome = forced.unwrap_or(if exit_code == Some(0) && unfinished.is_none() {
        AttemptOutcome::Succeeded
    } else {
        AttemptOutcome::Failed
    });
    // Steps that succeeded but wrote outputs out of bounds (or unreadable) fail the
    // attempt; a failure of its own keeps its message, with this as a note.
    let mut outputs_note = None;
    if let Some(error) = &job_outputs.error {
        if outcome.succeeded() {
            outcome = AttemptOutcome::Failed;
        } else {
            outputs_note = Some(error.to_string());
        }
    }
    let mut message = match (outcome, failed_step, &job_outputs.error) {
        (AttemptOutcome::Succeeded, _, _) => "all steps succeeded".to_string(),
        (AttemptOutcome::Failed, None, Some(error)) if outputs_note.is_none() => error.to_string(),
        (AttemptOutcome::Failed, Some(step), _) => {
            let mut message = format!(
                "step \"{}\" exited with {}",
                step.name,
                step.exit_code.unwrap_or_default()
            );
            if let Some(first) = step.errors.first() {
                message.push_str(&format!(" (line {}: {})", first.line, first.text));
            }
            message
        }
        (AttemptOutcome::Failed, None, _) if exit_code == Some(0) => {
            let i = unfinished.unwrap_or_default();
            format!(
                "the container ended (exit 0) before step {} \"{}\" reported its end: it was stopped from outside the runner",
                i + 1,
                spec.steps
                    .get(i)
                    .map(|s| s.name.as_str())
                    .unwrap_or_default()
            )
        }
        (AttemptOutcome::Failed, None, _) => {
            let oom = exit_code == Some(137) && ctx.jobs.oom_killed(&container.id).await?;
            super::decide::ended::before_steps_finished(exit_code, oom, &output.progress)
        }
        (AttemptOutcome::TimedOut, _, _) => "stopped at the timeout".to_string(),
        _ if obj.metadata.deletion_timestamp.is_some() => {
            "stopped because the Job was deleted".to_string()
        }
        _ => "stopped on request".to_string(),
    };

    // A container that a signal ended just as the runtime went away (a Docker daemon
    // stopped, or killed and started again, stops its containers) did not fail on its own.
    if outcome == AttemptOutcome::Failed
        && forced.is_none()
        && (exit_code.is_some_and(|code| code > 128) || unfinished.is_some())
        && let Some(since) = finished_at.and_then(|at| ctx.jobs.went_away_around(at))
    {
        message.push_str(&format!(
            "; the Docker daemon went away at {} (stopped or restarted), which ends the containers it runs",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    if let Some(note) = outputs_note {
        message.push_str("; ");
        message.push_str(&note);
    }
    if output.cut {
        message.push_str(&format!(
            "; output cut at {} (--max-output-bytes): the step kept running, its further output was discarded",
            human_bytes(ctx.limits.max_output_bytes)
        ));
    }
    let collected = collect_artifacts(ctx, obj, spec, container, &run_dir, run, deadline).await?;
    if let Some(why) = collected.failure
        && outcome.succeeded()
    {
        outcome = AttemptOutcome::Failed;
        message = why;
    }
    if let Some((stopped, why)) = collected.stopped {
        outcome = stopped;
        message = why;
    }
    for note in &collected.notes {
        message.push_str("; ");
        message.push_str(note);
    }
    if !spec.services.is_empty() {
        for note in ctx.jobs.service_notes(&container.id).await? {
            message.push_str("; ");
            message.push_str(&note);
        }
    }
    let artifacts = collected.artifacts;
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
        outputs: job_outputs.values,
        usage: Some(Usage {
            cpu_millis: output.cpu_millis,
            peak_memory_bytes: output.peak_memory_bytes,
            output_bytes: output.bytes,
        }),
        image_id,
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
    let container = container.clone();
    tokio::spawn(async move {
        if let Err(e) = runtime.remove(&container).await {
            warn!(container = %container.id, error = %e, "cannot remove a harvested container");
        }
    });
    Ok(record)
}

struct Output {
    /// The last lines of each step's output (not the preamble's).
    tails: Vec<VecDeque<String>>,
    progress: Vec<crate::runtime::runner::StepProgress>,
    /// What each step wrote to its `ORCAOPS_OUTPUT`.
    outputs: Vec<outputs::StepOutputs>,
    first_time: Option<DateTime<Utc>>,
    last_time: Option<DateTime<Utc>>,
    /// The output went past the cap.
    cut: bool,
    /// Each step's error lines, as its output goes by.
    errors: Vec<Extractor>,
    /// Bytes of output (a newline counted per line), before any cut.
    bytes: u64,
    cpu_millis: Option<u64>,
    peak_memory_bytes: Option<u64>,
}

/// Writes the attempt's output into its log and step index, from what the runtime
/// serves after what it no longer serves but the follower kept in the journal (see
/// [`journal`]), one line at a time; returns what the record needs of it.
async fn write_output(
    ctx: &Context,
    container: &ContainerInfo,
    run_dir: &std::path::Path,
    attempt: u32,
    nonce: &str,
    step_count: usize,
) -> Result<Output, ControllerError> {
    let log_path = records::attempt_log(run_dir, attempt);
    let index_path = records::step_index(run_dir, attempt);
    let (log_partial, index_partial) = (partial(&log_path), partial(&index_path));
    let mut log = LogWriter::create(
        &log_partial,
        &index_partial,
        step_count,
        ctx.limits.max_output_bytes,
    )
    .await?;
    let mut parser = RunnerParser::new(nonce, step_count);
    let mut output = Output {
        tails: vec![VecDeque::new(); step_count],
        progress: Vec::new(),
        outputs: Vec::new(),
        first_time: None,
        last_time: None,
        cut: false,
        errors: vec![Extractor::default(); step_count],
        bytes: 0,
        cpu_millis: None,
        peak_memory_bytes: None,
    };
    let mut lines = ctx.jobs.logs(&container.id, false);
    let mut next = async || match lines.next().await {
        Some(Ok(line)) => Ok(Some(line)),
        // Gone meanwhile (a stopped pod is deleted): what was read is what there is.
        Some(Err(RuntimeError::ContainerNotFound { .. })) | None => Ok(None),
        Some(Err(e)) => Err(ControllerError::from(e)),
    };
    let head = next().await?;
    let journal_path = journal::path(&log_path);
    let mut lost = journal::LostBefore::open(&journal_path, head.as_ref()).await?;
    let mut pending = head;
    let mut gap_noted = false;
    loop {
        let line = match lost.next().await? {
            Some(line) => line,
            None if !gap_noted && lost.gap() => {
                gap_noted = true;
                log.note(GAP_MARKER).await?;
                continue;
            }
            None => match pending.take() {
                Some(line) => line,
                None => match next().await? {
                    Some(line) => line,
                    None => break,
                },
            },
        };
        output.first_time.get_or_insert(line.timestamp);
        output.last_time = Some(line.timestamp);
        let carried = parser.push(&line);
        log.step_started(parser.running_step()).await?;
        if let Some((step, text)) = carried {
            output.bytes += text.len() as u64 + 1;
            if let Some(extractor) = step.and_then(|i| output.errors.get_mut(i)) {
                extractor.push(&text);
            }
            log.push(step, &text).await?;
            if let Some(i) = step
                && let Some(tail) = output.tails.get_mut(i)
            {
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(last_bytes(text));
            }
        }
    }
    log.flush().await?;
    output.cut = log.was_cut();
    drop(log);
    tokio::fs::rename(&index_partial, &index_path).await?;
    tokio::fs::rename(&log_partial, &log_path).await?;
    output.progress = parser.steps().to_vec();
    output.outputs = parser.outputs().to_vec();
    (output.cpu_millis, output.peak_memory_bytes) = parser.usage();
    Ok(output)
}

/// Where the attempt log misses output that the runtime rotated away before the
/// follower read it.
const GAP_MARKER: &str =
    "[orcaops: output missing here: the container's log was rotated before orcaops read it]";

/// A line kept for a step's tail: at most its last [`TAIL_BYTES`].
fn last_bytes(text: String) -> String {
    if text.len() <= TAIL_BYTES {
        return text;
    }
    let mut cut = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text[cut..].to_string()
}

/// What collecting the artifacts came to.
#[derive(Default)]
struct Collected {
    artifacts: Vec<ArtifactStatus>,
    /// Why the attempt fails: a required artifact missing, refused or too large.
    failure: Option<String>,
    /// What was skipped or left out, for the attempt's message.
    notes: Vec<String>,
    /// A cancel or the timeout came first: collecting stopped there.
    stopped: Option<(AttemptOutcome, String)>,
}

/// How often a harvest looks for a cancel while it copies artifacts.
const CANCEL_POLL: Duration = Duration::from_millis(500);
/// The time a harvest gets for artifacts when the run has no timeout, or has run out of
/// it (an attempt stopped at its timeout still gets its files, quickly).
const ARTIFACT_GRACE: Duration = Duration::from_secs(600);
const ARTIFACT_GRACE_AFTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Copies the Job's artifacts out, each under its own folder (see
/// [`records::artifact_store_dir`]), within the per-artifact and per-job limits, giving
/// way to a cancel of the run and to its timeout: neither waits for a copy.
async fn collect_artifacts(
    ctx: &Arc<Context>,
    obj: &Object,
    spec: &JobSpec,
    container: &ContainerInfo,
    run_dir: &std::path::Path,
    run: u32,
    deadline: Option<DateTime<Utc>>,
) -> Result<Collected, ControllerError> {
    let mut collected = Collected::default();
    if spec.artifacts.is_empty() {
        return Ok(collected);
    }
    let budget = match deadline.map(|d| (d - Utc::now()).to_std()) {
        Some(Ok(left)) if !left.is_zero() => left,
        Some(_) => ARTIFACT_GRACE_AFTER_TIMEOUT,
        None => ARTIFACT_GRACE,
    };
    let until = tokio::time::Instant::now() + budget;
    let mut left_for_job = ctx.limits.max_job_artifact_bytes;
    for artifact in &spec.artifacts {
        let limit = ctx.limits.max_artifact_bytes.min(left_for_job);
        let dest = records::artifact_store_dir(run_dir, &artifact.name);
        let copy = ctx
            .jobs
            .copy_out(&container.id, &artifact.path, &dest, &artifact.name, limit);
        let copied = tokio::select! {
            copied = copy => copied,
            why = cancelled(ctx, obj, run) => {
                remove_partials(&dest).await;
                collected.stopped = Some((AttemptOutcome::Cancelled, format!(
                    "stopped on request while collecting artifact \"{}\"; the artifacts not yet collected were dropped",
                    artifact.name
                )));
                info!(run, artifact = %artifact.name, "{why}: artifact collection abandoned");
                return Ok(collected);
            }
            _ = tokio::time::sleep_until(until) => {
                remove_partials(&dest).await;
                collected.stopped = Some((AttemptOutcome::TimedOut, format!(
                    "collecting artifact \"{}\" took longer than the {} s left of the run's time; the artifacts not yet collected were dropped",
                    artifact.name,
                    budget.as_secs()
                )));
                return Ok(collected);
            }
        };
        let problem = match copied {
            Ok(copied) => {
                left_for_job = left_for_job.saturating_sub(copied.size);
                if !copied.skipped.is_empty() {
                    collected.notes.push(format!(
                        "artifact \"{}\" left out what is not a regular file or directory: {}",
                        artifact.name,
                        copied.skipped.join(", ")
                    ));
                }
                collected.artifacts.push(ArtifactStatus {
                    name: artifact.name.clone(),
                    size: copied.size,
                    sha256: copied.sha256,
                });
                continue;
            }
            Err(RuntimeError::PathNotFound { .. }) => {
                format!(
                    "artifact \"{}\" was not found at {}",
                    artifact.name, artifact.path
                )
            }
            Err(RuntimeError::NotRegular { kind, .. }) => format!(
                "artifact \"{}\" at {} is a {kind}: only regular files and directories are collected",
                artifact.name, artifact.path
            ),
            Err(RuntimeError::ArtifactTooLarge { size, limit, .. }) => {
                let which = if limit < ctx.limits.max_artifact_bytes {
                    format!(
                        "what is left of the job's {} for all its artifacts (--max-job-artifact-bytes)",
                        human_bytes(ctx.limits.max_job_artifact_bytes)
                    )
                } else {
                    "the limit of one artifact (--max-artifact-bytes)".to_string()
                };
                format!(
                    "artifact \"{}\" at {} is {} or more, over {} of {}; it was not kept",
                    artifact.name,
                    artifact.path,
                    human_bytes(size),
                    which,
                    human_bytes(limit)
                )
            }
            Err(e) => return Err(e.into()),
        };
        if artifact.optional {
            collected.notes.push(format!("optional {problem}"));
        } else if collected.failure.is_none() {
            collected.failure = Some(problem);
        }
    }
    Ok(collected)
}

/// Removes what an abandoned copy left in `dir` (its temporary files end in `.partial`).
async fn remove_partials(dir: &std::path::Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry.file_name().to_string_lossy().ends_with(".partial") {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
    }
}

/// Resolves when the run is to stop: its cancel was asked for, or the Job is being
/// deleted or is gone. Never resolves otherwise.
async fn cancelled(ctx: &Context, obj: &Object, run: u32) -> &'static str {
    let key = obj.key();
    loop {
        tokio::time::sleep(CANCEL_POLL).await;
        match ctx.store.get(&key).await {
            Ok(Some(now)) if now.metadata.uid != obj.metadata.uid => return "the job was replaced",
            Ok(Some(now)) => {
                if now.metadata.deletion_timestamp.is_some() {
                    return "the job is being deleted";
                }
                if now
                    .metadata
                    .annotations
                    .get(keys::CANCEL)
                    .is_some_and(|v| *v == run.to_string())
                {
                    return "the run was cancelled";
                }
            }
            Ok(None) => return "the job was deleted",
            Err(_) => {}
        }
    }
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
