//! The Job controller: observe (store + containers + records), decide (pure, [`decide`]),
//! act ([`act`]), run by [`crate::controller::reconcile::drive`].

mod act;
#[cfg(test)]
mod cluster_tests;
pub mod decide;
pub mod deleted;
pub mod follow;
mod harvest;
mod journal;
mod log_writer;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;

use crate::records;
use crate::records::anomaly::RunFacts;
use crate::resources::job::{JobPhase, JobSpec, JobStatus};
use crate::resources::{Object, keys};

use super::blocked;
use super::reconcile::{Observation, Reconciler, write_status};
use super::workspace::{admission, quota};
use super::{Context, ControllerError};
use decide::{Decision, JobAction, Observed};

/// The Job controller, for [`crate::controller::reconcile::drive`].
pub struct JobReconciler;

#[async_trait::async_trait]
impl Reconciler for JobReconciler {
    // On a cluster a Job keeps a finalizer, so that its deletion waits for this
    // controller to stop its attempt and record the run.
    const FINALIZER: bool = true;
    type Observed = Observed;
    type Action = JobAction;
    type Status = JobStatus;
    type Hints = ();

    async fn observe(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        stored: &JobStatus,
    ) -> Result<Observation<Observed>, ControllerError> {
        let workspace = match obj.metadata.namespace.as_deref() {
            Some(ns) if admission::enforced(ctx) => admission::workspace_of(ctx, ns).await?,
            _ => None,
        };
        let observed = observe(ctx, obj, stored.clone(), workspace.as_ref()).await?;
        if wants_to_start(&observed)
            && let Some(review) = blocked::refusal(ctx, obj).await?
        {
            let mut status = stored.clone();
            blocked::job_blocked(&mut status, &review.refusal_message(obj), observed.now);
            blocked::record(ctx, &review, obj, !blocked::job_is_blocked(stored));
            if status != *stored {
                write_status(ctx, &obj.key(), obj, &status).await?;
            }
            return Ok(Observation::Settled(Some(blocked::RECHECK)));
        }
        if let Some(ws) = workspace.filter(|w| !w.limits.is_empty())
            && let Some(refusal) = admit(ctx, &ws, &observed).await?
        {
            let mut status = stored.clone();
            admission::job_refused(&mut status, &refusal.message, observed.now);
            if status != *stored {
                write_status(ctx, &obj.key(), obj, &status).await?;
            }
            let recheck = refusal.retry_after.unwrap_or(QUOTA_RECHECK);
            return Ok(Observation::Settled(Some(recheck.min(QUOTA_RECHECK))));
        }
        Ok(Observation::Ready(observed))
    }

    fn decide(observed: &Observed) -> Decision {
        decide::decide(observed)
    }

    async fn act(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &mut Observed,
        actions: Vec<JobAction>,
        status: &JobStatus,
    ) -> Result<bool, ControllerError> {
        let again = act::act(ctx, obj, observed, actions, status).await?;
        // Room is held while the Job runs; finished, suspended or backing off, it lets go.
        if status.phase != JobPhase::Running {
            ctx.admitted.release(&obj.metadata.uid);
        }
        Ok(again)
    }
}

/// How long a Job refused by quota waits, if nothing wakes it, before it looks again.
pub const QUOTA_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether the decision would start a container (none of the Job's lives).
fn wants_to_start(observed: &Observed) -> bool {
    let live = observed
        .containers
        .iter()
        .any(|c| admission::holds_room(&c.state));
    !live
        && admission::job_wants_to_start(
            &observed.meta,
            &observed.spec,
            &observed.status,
            observed.now,
        )
}

/// Asks the workspace for room when the decision would start a container. Returns why
/// not, if it may not.
async fn admit(
    ctx: &Context,
    workspace: &admission::Workspace,
    observed: &Observed,
) -> Result<Option<quota::Refusal>, ControllerError> {
    if !wants_to_start(observed) {
        return Ok(None);
    }
    let new_run = admission::job_new_run(&observed.meta, &observed.status);
    let applicant = quota::Applicant {
        uid: &observed.meta.uid,
        name: &observed.meta.name,
        created: observed.meta.creation_timestamp.unwrap_or_default(),
        what: "job",
        demand: admission::job_demand(&observed.spec, ctx.limits.default_memory_bytes, new_run),
    };
    Ok(admission::admit(ctx, workspace, &applicant).await?.err())
}

async fn observe(
    ctx: &Arc<Context>,
    obj: &Object,
    status: JobStatus,
    workspace: Option<&admission::Workspace>,
) -> Result<Observed, ControllerError> {
    // What the Job leaves out, its workspace's defaults fill in.
    let spec = admission::job_spec(obj, workspace)?;
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
    // The step the current attempt runs, if its container is followed.
    let running_step = containers
        .iter()
        .filter(|c| {
            c.label(keys::LABEL_RUN).and_then(|r| r.parse().ok()) == status.run
                && c.label(keys::LABEL_ATTEMPT).and_then(|a| a.parse().ok()) == status.attempt
        })
        .find_map(|c| ctx.followers.running_step(&c.id));
    let previous_runs = previous_runs(ctx, obj, &spec, &status).await?;
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
    let secret_missing =
        crate::controller::secrets::missing(ctx.secrets.as_ref(), namespace, &spec)
            .await?
            .map(|m| m.to_string());
    Ok(Observed {
        meta: obj.metadata.clone(),
        spec,
        status,
        containers,
        attempts,
        harvested,
        running_step,
        previous_runs,
        secret_missing,
        now: Utc::now(),
    })
}

/// The baseline's runs, while a run that may finish is in progress: those of this name
/// (earlier incarnations included), or for a workflow's node those of the node in the
/// workflow's earlier runs, before the current run, oldest first.
async fn previous_runs(
    ctx: &Context,
    obj: &Object,
    spec: &JobSpec,
    status: &JobStatus,
) -> Result<Vec<RunFacts>, ControllerError> {
    let thresholds = spec.anomalies.clone().unwrap_or_default();
    if thresholds.disabled || spec.suspend || status.run.is_none() || status.phase.is_finished() {
        return Ok(Vec::new());
    }
    let current = status.run.unwrap_or_default();
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
    // A workflow's node has a Job of its own name in each run: its baseline is the node's
    // runs across the workflow's runs.
    let labels = &obj.metadata.labels;
    let recent = match (
        labels.get(keys::LABEL_WORKFLOW),
        labels.get(keys::LABEL_NODE),
    ) {
        (Some(workflow), Some(node)) => {
            ctx.records
                .node_runs(namespace, workflow, node, thresholds.window + 1)
                .await?
        }
        _ => {
            ctx.records
                .recent_runs(namespace, &obj.metadata.name, thresholds.window + 1)
                .await?
        }
    };
    let mut runs: Vec<RunFacts> = recent
        .iter()
        .filter(|r| r.uid != obj.metadata.uid || r.run < current)
        .take(thresholds.window)
        .map(RunFacts::of)
        .collect();
    runs.reverse();
    Ok(runs)
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
