//! The Job controller: observe (store + containers + records), decide (pure), act.

#[cfg(test)]
mod cluster_tests;
pub mod decide;
pub mod follow;
mod harvest;
mod journal;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info, instrument, warn};

use crate::records::{self, AttemptOutcome, AttemptRecord};
use crate::resources::job::{JobSpec, JobStatus};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::runtime::runner;
use crate::runtime::{AttemptRequest, RuntimeError};
use crate::store::{InvolvedObject, NewEvent, StoreError};

use super::{Context, ControllerError};
use decide::{JobAction, Observed, decide};

fn invalid(key: &ObjectKey, e: serde_json::Error) -> ControllerError {
    ControllerError::InvalidObject {
        key: key.clone(),
        message: e.to_string(),
    }
}

/// Reconciles one Job; returns when to look at it again.
#[instrument(skip(ctx), fields(kind = "Job", namespace = %key.namespace, name = %key.name))]
pub async fn reconcile(
    ctx: &Arc<Context>,
    key: &ObjectKey,
) -> Result<Option<Duration>, ControllerError> {
    let Some(mut obj) = ctx.store.get(key).await? else {
        return Ok(None);
    };
    // On a cluster a Job keeps a finalizer, so that its deletion waits for this
    // controller to stop its attempt and record the run.
    if ctx.finalizers
        && obj.metadata.deletion_timestamp.is_none()
        && !obj.metadata.finalizers.iter().any(|f| f == keys::FINALIZER)
    {
        ctx.store.add_finalizer(key, keys::FINALIZER).await?;
        let Some(fresh) = ctx.store.get(key).await? else {
            return Ok(None);
        };
        obj = fresh;
    }
    let mut observed = observe(ctx, key, &obj).await?;
    let stored_status = observed.status.clone();
    let mut events = Vec::new();
    let mut deleted = false;
    // Harvesting the current attempt makes its record known at once: decide again
    // with it, so a run finishes in one reconcile and one status write.
    let mut decision = decide(&observed);
    for pass in 0..3 {
        let mut harvested = Vec::new();
        let deadline = run_deadline(&observed.spec, &decision.status);
        for action in std::mem::take(&mut decision.actions) {
            match action {
                JobAction::DeleteJob => {
                    info!(reason = "ttlSecondsAfterFinished", "deleting finished job");
                    match ctx.store.delete(key).await {
                        Ok(_) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                    deleted = true;
                }
                JobAction::RemoveFinalizer => {
                    info!("cleaned up after deletion; letting the job go");
                    ctx.store.remove_finalizer(key, keys::FINALIZER).await?;
                    deleted = true;
                }
                action => harvested.extend(act(ctx, &obj, &observed.spec, deadline, action).await?),
            }
        }
        events.append(&mut decision.events);
        let current = (decision.status.run, decision.status.attempt);
        let again = harvested
            .iter()
            .any(|r| (Some(r.run), Some(r.attempt)) == current);
        if deleted || !again || pass == 2 {
            break;
        }
        for record in harvested {
            observed
                .containers
                .retain(|c| c.name != record.container_name);
            observed.harvested.insert((record.run, record.attempt));
            if Some(record.run) == decision.status.run {
                observed.attempts.push(record);
            }
        }
        observed.status = decision.status.clone();
        observed.now = Utc::now();
        decision = decide(&observed);
    }
    let involved = InvolvedObject {
        kind: Kind::Job.as_str().into(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: obj.metadata.uid.clone(),
    };
    // The status first: it is what clients wait for; events are for people.
    if !deleted && decision.status != stored_status {
        let status = serde_json::to_value(&decision.status).map_err(|e| invalid(key, e))?;
        ctx.store
            .update_status(key, &obj.metadata.resource_version, status)
            .await?;
    }
    for (type_, reason, message) in events {
        ctx.store
            .record_event(NewEvent {
                involved: involved.clone(),
                type_,
                reason: reason.into(),
                message,
            })
            .await?;
    }
    if deleted {
        return Ok(None);
    }
    Ok(decision.requeue_after)
}

async fn observe(
    ctx: &Arc<Context>,
    key: &ObjectKey,
    obj: &Object,
) -> Result<Observed, ControllerError> {
    let spec: JobSpec = serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(key, e))?;
    let status: JobStatus = if obj.status.is_null() {
        JobStatus::default()
    } else {
        serde_json::from_value(obj.status.clone()).map_err(|e| invalid(key, e))?
    };
    let uid = obj.metadata.uid.as_str();
    let containers = ctx.jobs.list(&[(keys::LABEL_UID, uid)]).await?;
    let mut runs: HashSet<u32> = containers
        .iter()
        .filter_map(|c| c.label(keys::LABEL_RUN).and_then(|r| r.parse().ok()))
        .collect();
    runs.extend(status.run);
    let mut all_attempts = Vec::new();
    for run in runs {
        all_attempts.extend(ctx.records.attempts(uid, run).await?);
    }
    let harvested = all_attempts.iter().map(|a| (a.run, a.attempt)).collect();
    let attempts = all_attempts
        .into_iter()
        .filter(|a| Some(a.run) == status.run)
        .collect();
    Ok(Observed {
        meta: obj.metadata.clone(),
        spec,
        status,
        containers,
        attempts,
        harvested,
        now: Utc::now(),
    })
}

/// When the current run's `timeoutSeconds` runs out.
fn run_deadline(spec: &JobSpec, status: &JobStatus) -> Option<DateTime<Utc>> {
    let timeout = spec.timeout_seconds?;
    Some(status.start_time? + chrono::TimeDelta::seconds(i64::try_from(timeout).ok()?))
}

async fn act(
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
                Err(RuntimeError::ImageUnavailable { image, reason }) => {
                    let message = format!("image \"{image}\" is not available: {reason}");
                    warn!(%image, %reason, "cannot start attempt");
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
                Err(e) => Err(e.into()),
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
            harvest::harvest(ctx, obj, spec, &container, run, attempt, forced)
                .await
                .map(Some)
        }
        JobAction::Remove { container } => {
            ctx.followers.stop(&container.id);
            ctx.jobs.remove(&container.id).await?;
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
            ctx.jobs.remove(&container.id).await?;
            record_without_container(ctx, obj, run, attempt, container.name, outcome, message)
                .await
                .map(Some)
        }
        JobAction::RecordLost {
            run,
            attempt,
            container_name,
        } => {
            let message =
                format!("container {container_name} disappeared before its result was read");
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
            Ok(None)
        }
        JobAction::DeleteJob | JobAction::RemoveFinalizer => unreachable!("handled by reconcile"),
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

async fn start(
    ctx: &Arc<Context>,
    obj: &Object,
    spec: &JobSpec,
    attempt: Attempt<'_>,
) -> Result<crate::runtime::ContainerInfo, RuntimeError> {
    ctx.jobs.ensure_image(&spec.image).await?;
    let nonce = runner::new_nonce();
    ctx.jobs
        .start_attempt(&AttemptRequest {
            job: obj,
            spec,
            run: attempt.run,
            attempt: attempt.attempt,
            name: attempt.name,
            nonce: &nonce,
            instance: ctx.store.instance_id(),
            deadline: attempt.deadline,
        })
        .await
}

pub(crate) fn run_dir(ctx: &Context, obj: &Object, run: u32) -> std::path::PathBuf {
    records::run_dir(
        ctx.records.data_dir(),
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        &obj.metadata.name,
        &obj.metadata.uid,
        run,
    )
}
