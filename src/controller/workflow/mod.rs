//! The Workflow controller: each node of a run becomes a real Job in the store, which
//! the Job controller runs. Observe (the Workflow and the Jobs labelled with it), decide
//! (pure, [`decide`]), act (create and delete Jobs), run by
//! [`crate::controller::reconcile::drive`]. It never touches a runtime: the same
//! Workflow runs on a cluster, where the Jobs become pods.

#[cfg(test)]
mod cluster_tests;
pub mod decide;

use std::sync::Arc;

use chrono::Utc;
use tracing::{debug, info};

use super::reconcile::{Cleanup, Observation, Reconciler, invalid};
use super::{Context, ControllerError};
use crate::resources::selector::LabelSelector;
use crate::resources::workflow::{WorkflowSpec, WorkflowStatus};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::store::{PageQuery, StoreError};
use decide::{Decision, NodeJob, Observed, WorkflowAction};

/// The Workflow controller, for [`crate::controller::reconcile::drive`].
pub struct WorkflowReconciler;

#[async_trait::async_trait]
impl Reconciler for WorkflowReconciler {
    // On a cluster a Workflow keeps a finalizer, so its Jobs are deleted (and stop)
    // before it goes, as they are locally; the garbage collector would do it later.
    const FINALIZER: bool = true;
    type Observed = Observed;
    type Action = WorkflowAction;
    type Status = WorkflowStatus;
    type Hints = ();

    async fn observe(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        stored: &WorkflowStatus,
    ) -> Result<Observation<Observed>, ControllerError> {
        let key = obj.key();
        let spec: WorkflowSpec =
            serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(&key, e))?;
        let jobs = jobs_of(ctx, &key)
            .await?
            .iter()
            .map(|job| NodeJob::from_object(job, &obj.metadata.uid))
            .collect();
        Ok(Observation::Ready(Observed {
            meta: obj.metadata.clone(),
            spec,
            status: stored.clone(),
            jobs,
            now: Utc::now(),
        }))
    }

    fn decide(observed: &Observed) -> Decision {
        decide::decide(observed)
    }

    async fn act(
        &self,
        ctx: &Arc<Context>,
        obj: &Object,
        observed: &mut Observed,
        actions: Vec<WorkflowAction>,
        status: &WorkflowStatus,
    ) -> Result<bool, ControllerError> {
        let again = !actions.is_empty();
        for action in actions {
            match action {
                WorkflowAction::CreateJob(job) => {
                    let name = job.metadata.name.clone();
                    let made = match ctx.store.create(*job).await {
                        Ok(made) => {
                            info!(job = %name, "created the Job of a node");
                            made
                        }
                        // Made before a crash or a lost status write: the name is
                        // deterministic, so this is the node's Job; adopt it.
                        Err(StoreError::AlreadyExists { key }) => {
                            debug!(job = %name, "the node's Job exists; adopting it");
                            match ctx.store.get(&key).await? {
                                Some(found) => found,
                                None => continue,
                            }
                        }
                        Err(e) => return Err(e.into()),
                    };
                    observed.jobs.retain(|j| j.name != name);
                    observed
                        .jobs
                        .push(NodeJob::from_object(&made, &obj.metadata.uid));
                }
                WorkflowAction::DeleteJob { name, why } => {
                    delete_job(ctx, &obj.key(), &name, why).await?;
                    observed.jobs.retain(|j| j.name != name);
                }
                // Before the status that says the run started or ended: a crash in
                // between decides (and writes) it again, replacing the same run's record.
                WorkflowAction::RecordRun(record) => {
                    ctx.records.put_workflow_run(&record).await?;
                    debug!(run = record.run, phase = ?record.phase, "recorded the workflow run");
                }
            }
        }
        // A further pass decides from what was just decided, as the next reconcile would
        // from the written status: a run is started (and its events and record made) once.
        observed.status = status.clone();
        Ok(again)
    }

    /// Deleted (locally at once, or on a cluster once the finalizer was released): its
    /// Jobs go too. Also reached at a resync for Jobs whose Workflow vanished while the
    /// server was down.
    async fn gone(&self, ctx: &Arc<Context>, key: &ObjectKey) {
        if let Err(e) = delete_jobs(ctx, key, None).await {
            tracing::warn!(%key, error = %e, "cannot delete the Jobs of a deleted workflow; the next resync retries");
        }
    }

    async fn cleanup(&self, ctx: &Arc<Context>, obj: &Object) -> Result<Cleanup, ControllerError> {
        delete_jobs(ctx, &obj.key(), Some(&obj.metadata.uid)).await?;
        Ok(Cleanup::Finished)
    }
}

/// The Jobs labelled with the Workflow at `key`: a lookup in the local store's label
/// index, not a read of every Job of the namespace.
async fn jobs_of(ctx: &Context, key: &ObjectKey) -> Result<Vec<Object>, ControllerError> {
    let selector = LabelSelector::equals(keys::LABEL_WORKFLOW, &key.name);
    let page = ctx
        .store
        .list_page(PageQuery::selected(
            Kind::Job,
            Some(&key.namespace),
            &selector,
        ))
        .await?;
    Ok(page.items)
}

/// Deletes the Jobs of the Workflow at `key` (those owned by `uid`, when given; else
/// every Job labelled with it and owned by a Workflow of that name).
async fn delete_jobs(
    ctx: &Context,
    key: &ObjectKey,
    uid: Option<&str>,
) -> Result<(), ControllerError> {
    for job in jobs_of(ctx, key).await? {
        let owned = job.metadata.owner_references.iter().any(|r| {
            r.get("kind").and_then(|k| k.as_str()) == Some("Workflow")
                && r.get("name").and_then(|n| n.as_str()) == Some(key.name.as_str())
                && uid.is_none_or(|uid| r.get("uid").and_then(|u| u.as_str()) == Some(uid))
        });
        if owned && job.metadata.deletion_timestamp.is_none() {
            delete_job(ctx, key, &job.metadata.name, "its workflow was deleted").await?;
        }
    }
    Ok(())
}

async fn delete_job(
    ctx: &Context,
    workflow: &ObjectKey,
    name: &str,
    why: &str,
) -> Result<(), ControllerError> {
    let key = ObjectKey::new(Kind::Job, &workflow.namespace, name);
    match ctx.store.delete(&key).await {
        Ok(_) => {
            info!(job = %name, why, "deleted a Job of the workflow");
            Ok(())
        }
        Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The Workflow a Job was made for, from its labels.
pub fn owner_of(job: &Object) -> Option<ObjectKey> {
    let name = job.metadata.labels.get(keys::LABEL_WORKFLOW)?;
    Some(ObjectKey::new(
        Kind::Workflow,
        job.metadata.namespace.clone().unwrap_or_default(),
        name,
    ))
}
