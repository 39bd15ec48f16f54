//! The Job controller: observe (store + containers + records), decide (pure), act.

#[cfg(test)]
mod cluster_tests;
pub mod decide;
mod harvest;
mod journal;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, instrument, warn};

use crate::records::{self, AttemptOutcome, AttemptRecord};
use crate::resources::job::{JobNetwork, JobSecurity, JobSpec, JobStatus};
use crate::resources::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::runtime::runner::{self, RunnerParser};
use crate::runtime::{AttemptRequest, ContainerSpec, NetworkMode, RuntimeError};
use crate::store::{InvolvedObject, NewEvent, StoreError};

use super::{Context, ControllerError};
use decide::{JobAction, NONCE_LABEL, Observed, decide};

/// The PID limit of every job container (a fork bomb stops here).
pub const PIDS_LIMIT: i64 = 512;

/// The uid (and gid) Docker runs a `runAsNonRoot` Job as when it names no user: `nobody`.
pub const NON_ROOT_ID: i64 = 65534;

/// How long a stopped attempt gets between SIGTERM and SIGKILL.
pub const STOP_GRACE_SECS: u32 = 5;

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
                    ctx.follow(&key, obj, &container, run, attempt);
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
            ctx.follow(&key, obj, &container, run, attempt);
            Ok(None)
        }
        JobAction::Harvest {
            container,
            run,
            attempt,
            forced,
        } => {
            ctx.unfollow(&container.id);
            harvest::harvest(ctx, obj, spec, &container, run, attempt, forced)
                .await
                .map(Some)
        }
        JobAction::Remove { container } => {
            ctx.unfollow(&container.id);
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
            ctx.unfollow(&container.id);
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

/// The labels every container of this Job attempt carries; the keys are a public contract.
pub fn container_labels(
    obj: &Object,
    instance: &str,
    run: u32,
    attempt: u32,
    nonce: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (keys::LABEL_INSTANCE.to_string(), instance.to_string()),
        (
            keys::LABEL_WORKSPACE.to_string(),
            obj.metadata.namespace.clone().unwrap_or_default(),
        ),
        (keys::LABEL_KIND.to_string(), Kind::Job.as_str().to_string()),
        (keys::LABEL_NAME.to_string(), obj.metadata.name.clone()),
        (keys::LABEL_UID.to_string(), obj.metadata.uid.clone()),
        (keys::LABEL_RUN.to_string(), run.to_string()),
        (keys::LABEL_ATTEMPT.to_string(), attempt.to_string()),
        (NONCE_LABEL.to_string(), nonce.to_string()),
    ])
}

/// The container of one attempt, built from the spec and its labels. Pure.
pub fn container_spec(
    spec: &JobSpec,
    labels: BTreeMap<String, String>,
    name: &str,
    nonce: &str,
) -> ContainerSpec {
    let resources = spec.resources.clone().unwrap_or_default();
    ContainerSpec {
        name: name.to_string(),
        image: spec.image.clone(),
        command: runner::runner_command(&spec.steps, nonce),
        env: spec
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect(),
        working_dir: spec.working_dir.clone(),
        labels,
        // Validation has already rejected quantities that do not parse.
        cpu_millis: resources
            .cpu
            .as_deref()
            .and_then(|c| parse_cpu_millis(c).ok()),
        memory_bytes: resources
            .memory
            .as_deref()
            .and_then(|m| parse_memory_bytes(m).ok()),
        network: match spec.network {
            JobNetwork::None => NetworkMode::None,
            JobNetwork::Bridge => NetworkMode::Bridge,
        },
        pids_limit: PIDS_LIMIT,
        user: docker_user(&spec.security),
        read_only_root: spec.security.read_only_root_filesystem,
    }
}

/// Docker's `--user` for the Job's security block. Docker cannot check the image's user
/// before it runs, so `runAsNonRoot` without a uid picks one: [`NON_ROOT_ID`].
fn docker_user(security: &JobSecurity) -> Option<String> {
    let uid = match (security.run_as_user, security.run_as_non_root) {
        (Some(uid), _) => uid,
        (None, true) => NON_ROOT_ID,
        // Validation refuses a group without a user.
        (None, false) => return None,
    };
    let gid = match (security.run_as_group, security.run_as_user) {
        (Some(gid), _) => Some(gid),
        // Not the root group for the uid we picked (a numeric uid missing from the image's
        // /etc/passwd would otherwise get gid 0).
        (None, None) => Some(NON_ROOT_ID),
        (None, Some(_)) => None,
    };
    Some(match gid {
        Some(gid) => format!("{uid}:{gid}"),
        None => uid.to_string(),
    })
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

/// Streams a running container's output into the attempt log, and wakes the Job
/// when the container stops, or (for a runner that `holds` for its artifacts to be
/// collected) when its steps are over. Runs as a task per container; see
/// [`Context::follow`].
pub(super) async fn follow_output(
    ctx: Arc<Context>,
    key: ObjectKey,
    log_path: std::path::PathBuf,
    container_id: String,
    nonce: String,
    step_count: usize,
    holds: bool,
) {
    let result: Result<(), std::io::Error> = async {
        if let Some(dir) = log_path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::File::create(&log_path).await?;
        let mut journal = journal::Writer::open(&journal::path(&log_path)).await?;
        let mut parser = RunnerParser::new(&nonce, step_count);
        let mut lines = ctx.jobs.logs(&container_id, true);
        let mut woken = false;
        while let Some(line) = lines.next().await {
            let Ok(line) = line else { break };
            journal.push(&line).await?;
            if let Some((_, text)) = parser.push(&line) {
                file.write_all(text.as_bytes()).await?;
                file.write_all(b"\n").await?;
                file.flush().await?;
            }
            journal.flush().await?;
            if holds && !woken && parser.finished_code().is_some() {
                // The runner now waits for its artifacts to be copied out.
                woken = true;
                ctx.queue.add(key.clone());
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        warn!(container = %container_id, error = %e, "cannot write the live log");
    }
    // The stream ends when the container stops: look at the Job now.
    ctx.queue.add(key);
}

pub(super) fn run_dir(ctx: &Context, obj: &Object, run: u32) -> std::path::PathBuf {
    records::run_dir(
        ctx.records.data_dir(),
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        &obj.metadata.name,
        &obj.metadata.uid,
        run,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(
        run_as_non_root: bool,
        run_as_user: Option<i64>,
        run_as_group: Option<i64>,
    ) -> JobSecurity {
        JobSecurity {
            run_as_non_root,
            run_as_user,
            run_as_group,
            read_only_root_filesystem: false,
        }
    }

    #[test]
    fn docker_user_follows_the_security_block() {
        let cases = [
            (security(false, None, None), None),
            (security(false, Some(0), None), Some("0")),
            (security(false, Some(1000), None), Some("1000")),
            (security(false, Some(1000), Some(100)), Some("1000:100")),
            (security(true, Some(1000), None), Some("1000")),
            (security(true, None, None), Some("65534:65534")),
            (security(true, None, Some(100)), Some("65534:100")),
        ];
        for (security, user) in cases {
            assert_eq!(docker_user(&security).as_deref(), user, "{security:?}");
        }
    }

    #[test]
    fn container_spec_carries_the_user_and_the_read_only_root() {
        let spec = JobSpec {
            image: "busybox".into(),
            security: JobSecurity {
                read_only_root_filesystem: true,
                ..security(true, None, None)
            },
            ..Default::default()
        };
        let container = container_spec(&spec, BTreeMap::new(), "c", "n0");
        assert_eq!(container.user.as_deref(), Some("65534:65534"));
        assert!(container.read_only_root);
        let plain = container_spec(&JobSpec::default(), BTreeMap::new(), "c", "n0");
        assert_eq!((plain.user, plain.read_only_root), (None, false));
    }
}
