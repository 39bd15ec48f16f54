//! The Job controller's act: runs the decided actions (start, follow, harvest, remove,
//! record), each one idempotent, and tells the driver when a harvest made the current
//! attempt's result known, so it decides again at once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use super::decide::{JobAction, Observed};
use super::{follow, harvest};
use crate::controller::{Context, ControllerError, secrets};
use crate::records::{AttemptOutcome, AttemptRecord};
use crate::resources::Object;
use crate::resources::job::{JobSpec, JobStatus};
use crate::runtime::runner;
use crate::runtime::{AttemptRequest, RuntimeError};

/// Runs `actions` in order. Returns whether the current attempt (of `status`) was
/// harvested, with `observed` updated by what harvesting recorded: the run then finishes
/// in one reconcile and one status write.
pub(super) async fn act(
    ctx: &Arc<Context>,
    obj: &Object,
    observed: &mut Observed,
    actions: Vec<JobAction>,
    status: &JobStatus,
) -> Result<bool, ControllerError> {
    let deadline = run_deadline(&observed.spec, status);
    let mut harvested = Vec::new();
    for action in actions {
        harvested.extend(act_one(ctx, obj, &observed.spec, deadline, action).await?);
    }
    let current = (status.run, status.attempt);
    let again = harvested
        .iter()
        .any(|r| (Some(r.run), Some(r.attempt)) == current);
    if !again {
        return Ok(false);
    }
    for record in harvested {
        observed
            .containers
            .retain(|c| c.name != record.container_name);
        observed.harvested.insert((record.run, record.attempt));
        if Some(record.run) == status.run {
            observed.attempts.push(record);
        }
    }
    observed.status = status.clone();
    observed.now = Utc::now();
    Ok(true)
}

/// When the current run's `timeoutSeconds` runs out.
fn run_deadline(spec: &JobSpec, status: &JobStatus) -> Option<DateTime<Utc>> {
    let timeout = spec.timeout_seconds?;
    Some(status.start_time? + chrono::TimeDelta::seconds(i64::try_from(timeout).ok()?))
}

async fn act_one(
    ctx: &Arc<Context>,
    obj: &Object,
    spec: &JobSpec,
    deadline: Option<DateTime<Utc>>,
    action: JobAction,
) -> Result<Option<AttemptRecord>, ControllerError> {
    let key = obj.key();
    match action {
        JobAction::Start {
            run,
            attempt,
            container_name,
        } => {
            debug!(run, attempt, container = %container_name, "starting attempt");
            let attempt_of = Attempt {
                run,
                attempt,
                name: &container_name,
                deadline,
            };
            match start(ctx, obj, spec, attempt_of).await {
                Ok(container) => {
                    follow::follow(ctx, &key, obj, &container, run, attempt);
                    Ok(None)
                }
                // The attempt could not start, and says why: a missing image, a service
                // that never got ready, or a secret deleted since the run was decided
                // (never started with an empty value). A retry, or the next run, may do
                // better.
                Err(
                    failure @ (Start::SecretMissing(_)
                    | Start::Runtime(
                        RuntimeError::ImageUnavailable { .. }
                        | RuntimeError::ServiceNotReady { .. },
                    )),
                ) => {
                    let message = match failure {
                        Start::SecretMissing(missing) => format!("not started: {missing}"),
                        Start::Runtime(e) => e.to_string(),
                        _ => unreachable!("matched above"),
                    };
                    warn!(reason = %message, "cannot start attempt");
                    record_without_container(
                        ctx,
                        obj,
                        run,
                        attempt,
                        container_name,
                        AttemptOutcome::StartFailed,
                        message,
                    )
                    .await
                    .map(Some)
                }
                Err(Start::Store(e)) => Err(e.into()),
                Err(Start::Runtime(e)) => Err(e.into()),
            }
        }
        JobAction::Follow {
            container,
            run,
            attempt,
        } => {
            follow::follow(ctx, &key, obj, &container, run, attempt);
            Ok(None)
        }
        JobAction::Harvest {
            container,
            run,
            attempt,
            forced,
        } => {
            ctx.followers.stop(&container.id);
            harvest::harvest(ctx, obj, spec, &container, (run, attempt), forced, deadline)
                .await
                .map(Some)
        }
        JobAction::Remove { container } => {
            ctx.followers.stop(&container.id);
            ctx.jobs.remove(&container).await?;
            Ok(None)
        }
        JobAction::Abandon {
            container,
            run,
            attempt,
            outcome,
            message,
        } => {
            warn!(run, attempt, pod = %container.id, "{message}");
            ctx.followers.stop(&container.id);
            ctx.jobs.remove(&container).await?;
            record_without_container(ctx, obj, run, attempt, container.name, outcome, message)
                .await
                .map(Some)
        }
        JobAction::RecordLost {
            run,
            attempt,
            container_name,
        } => {
            let message = format!(
                "container {container_name} was removed outside orcaops (e.g. `docker rm -f`) before its result was read"
            );
            warn!(run, attempt, "{message}");
            record_without_container(
                ctx,
                obj,
                run,
                attempt,
                container_name,
                AttemptOutcome::Lost,
                message,
            )
            .await
            .map(Some)
        }
        JobAction::RecordRun(record) => {
            ctx.records.put_run(&record).await?;
            if let Some(explainer) = ctx.explainer.get()
                && crate::controller::explain::wanted(&record)
            {
                crate::controller::explain::spawn(
                    Arc::clone(explainer),
                    ctx.records.clone(),
                    *record,
                );
            }
            Ok(None)
        }
    }
}

async fn record_without_container(
    ctx: &Arc<Context>,
    obj: &Object,
    run: u32,
    attempt: u32,
    container_name: String,
    outcome: AttemptOutcome,
    message: String,
) -> Result<AttemptRecord, ControllerError> {
    // Look again even if this reconcile stops re-deciding before using the record.
    ctx.queue.add(obj.key());
    let record = AttemptRecord {
        uid: obj.metadata.uid.clone(),
        run,
        attempt,
        container_name,
        outcome,
        exit_code: None,
        message,
        started_at: None,
        finished_at: Utc::now(),
        steps: Vec::new(),
        artifacts: Vec::new(),
        outputs: Default::default(),
        usage: None,
        image_id: None,
    };
    ctx.records.put_attempt(&record).await?;
    Ok(record)
}

/// Which attempt [`start`] starts.
struct Attempt<'a> {
    run: u32,
    attempt: u32,
    name: &'a str,
    deadline: Option<DateTime<Utc>>,
}

/// Why [`start`] did not start an attempt.
enum Start {
    Runtime(RuntimeError),
    SecretMissing(secrets::SecretMissing),
    Store(crate::store::StoreError),
}

impl From<RuntimeError> for Start {
    fn from(e: RuntimeError) -> Self {
        Start::Runtime(e)
    }
}

async fn start(
    ctx: &Arc<Context>,
    obj: &Object,
    spec: &JobSpec,
    attempt: Attempt<'_>,
) -> Result<crate::runtime::ContainerInfo, Start> {
    // The secrets' values are read here, at the container's creation, and only go to
    // the runtime: the spec with them is dropped once the container exists.
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
    let spec = secrets::resolve_job(ctx.secrets.as_ref(), namespace, spec)
        .await
        .map_err(Start::Store)?
        .map_err(Start::SecretMissing)?;
    ctx.jobs.ensure_image(&spec.image).await?;
    let nonce = runner::new_nonce();
    Ok(ctx
        .jobs
        .start_attempt(&AttemptRequest {
            job: obj,
            spec: &spec,
            run: attempt.run,
            attempt: attempt.attempt,
            name: attempt.name,
            nonce: &nonce,
            instance: ctx.store.instance_id(),
            deadline: attempt.deadline,
            default_memory_bytes: ctx.limits.default_memory_bytes,
        })
        .await?)
}
