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
use crate::resources::job::{JobSpec, JobStatus};
use crate::resources::{Object, keys};

use super::reconcile::{Observation, Reconciler, invalid};
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
        observe(ctx, obj, stored.clone())
            .await
            .map(Observation::Ready)
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
        act::act(ctx, obj, observed, actions, status).await
    }
}

async fn observe(
    ctx: &Arc<Context>,
    obj: &Object,
    status: JobStatus,
) -> Result<Observed, ControllerError> {
    let key = obj.key();
    let spec: JobSpec = serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(&key, e))?;
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
