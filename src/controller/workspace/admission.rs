//! Quota admission against the store: reads a workspace's members (its Jobs and
//! Sandboxes, the containers that run, the runs of the last hour) into a
//! [`quota::Snapshot`], and keeps the objects admitted but not yet seen running
//! ([`Admitted`]), so that two objects deciding at once cannot both take the last room.
//! Local mode only: on a cluster quotas belong to the Namespace's ResourceQuota.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::quota::{self, Applicant, Demand, Limits, Member, Refusal, Snapshot, Standing};
use crate::controller::job::decide::run_trigger;
use crate::controller::reconcile::{invalid, read_status};
use crate::controller::{Context, ControllerError};
use crate::records::search::RunQuery;
use crate::resources::common::{ConditionStatus, Resources, set_condition};
use crate::resources::job::{JobConditionType, JobPhase, JobSpec, JobStatus};
use crate::resources::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::resources::sandbox::{
    SandboxConditionType, SandboxPhase, SandboxSpec, SandboxState, SandboxStatus,
};
use crate::resources::workspace::{WorkspaceDefaults, WorkspaceSpec};
use crate::resources::{Kind, Object, ObjectKey, ObjectMeta, keys};
use crate::runtime::ContainerState;

/// The objects admitted and not yet finished, by uid: they hold their demand even
/// before the store or the runtime shows them running.
#[derive(Default)]
pub struct Admitted {
    by_uid: Mutex<HashMap<String, Held>>,
}

/// What one admitted object holds, and where.
#[derive(Clone, Debug)]
struct Held {
    namespace: String,
    demand: Demand,
}

impl Admitted {
    /// Lets `uid` go: it finished, stopped, backs off, or is gone.
    pub fn release(&self, uid: &str) {
        self.by_uid.lock().expect("admitted lock").remove(uid);
    }

    /// How many objects hold room in memory (for tests and logs).
    pub fn len(&self) -> usize {
        self.by_uid.lock().expect("admitted lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Holds `uid`'s room if it still has it. Returns whether it did.
    fn holds(&self, uid: &str) -> bool {
        self.by_uid.lock().expect("admitted lock").contains_key(uid)
    }
}

/// A Workspace as admission reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Workspace {
    pub name: String,
    pub spec: WorkspaceSpec,
    pub limits: Limits,
}

impl Workspace {
    pub fn defaults(&self) -> WorkspaceDefaults {
        self.spec.defaults.clone().unwrap_or_default()
    }
}

/// The workspace a namespace is (`default` without quotas when not declared).
pub async fn workspace_of(
    ctx: &Context,
    namespace: &str,
) -> Result<Option<Workspace>, ControllerError> {
    let key = ObjectKey::new(Kind::Workspace, "", namespace);
    let Some(obj) = ctx.store.get(&key).await? else {
        return Ok(None);
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let spec: WorkspaceSpec =
        serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(&key, e))?;
    let limits = spec.quotas.as_ref().map(Limits::of).unwrap_or_default();
    Ok(Some(Workspace {
        name: namespace.to_string(),
        spec,
        limits,
    }))
}

/// Whether quotas are admitted here: local mode (a cluster's are its ResourceQuota's).
pub fn enforced(ctx: &Context) -> bool {
    !ctx.finalizers
}

/// A Job's spec with its workspace's defaults filled in.
pub fn job_spec(obj: &Object, workspace: Option<&Workspace>) -> Result<JobSpec, ControllerError> {
    let mut spec: JobSpec =
        serde_json::from_value(obj.spec.clone()).map_err(|e| invalid(&obj.key(), e))?;
    if let Some(ws) = workspace {
        ws.defaults().apply_to_job(&mut spec, &obj.spec);
    }
    Ok(spec)
}

/// What a Job holds while it runs: one job, its cpu, and its memory (the server's
/// default memory limit when it names none, since that is what its container gets).
pub fn job_demand(spec: &JobSpec, default_memory: u64, new_run: bool) -> Demand {
    let (cpu, memory) = requested(spec.resources.as_ref());
    Demand {
        jobs: 1,
        sandboxes: 0,
        cpu_millis: cpu,
        memory_bytes: memory.unwrap_or(default_memory),
        runs: u64::from(new_run),
    }
}

/// What a Sandbox holds: one sandbox, and its services' cpu and memory (a service naming
/// none takes the workspace's default resources).
pub fn sandbox_demand(spec: &SandboxSpec, defaults: Option<&Resources>) -> Demand {
    let mut demand = Demand {
        sandboxes: 1,
        ..Default::default()
    };
    for service in &spec.services {
        let (cpu, memory) = requested(service.resources.as_ref().or(defaults));
        demand.cpu_millis += cpu;
        demand.memory_bytes += memory.unwrap_or(0);
    }
    demand
}

fn requested(resources: Option<&Resources>) -> (u64, Option<u64>) {
    let Some(r) = resources else {
        return (0, None);
    };
    let cpu = r
        .cpu
        .as_deref()
        .and_then(|c| parse_cpu_millis(c).ok())
        .unwrap_or(0);
    let memory = r.memory.as_deref().and_then(|m| parse_memory_bytes(m).ok());
    (cpu, memory)
}

/// Whether the Job's next decision starts a container (a new run, a retry whose
/// backoff is over, or a start that was refused): only such a Job asks for room.
pub fn job_wants_to_start(
    meta: &ObjectMeta,
    spec: &JobSpec,
    status: &JobStatus,
    now: DateTime<Utc>,
) -> bool {
    if meta.deletion_timestamp.is_some() || spec.suspend {
        return false;
    }
    if status.run_trigger.as_deref() != Some(run_trigger(meta).as_str()) {
        return true;
    }
    status.run.is_some()
        && status.phase == JobPhase::Pending
        && status.next_attempt_time.is_none_or(|at| at <= now)
}

/// Whether starting now begins a new run (counted by `runsPerHour`), not a retry.
pub fn job_new_run(meta: &ObjectMeta, status: &JobStatus) -> bool {
    status.run_trigger.as_deref() != Some(run_trigger(meta).as_str())
}

/// Where a Job stands: holding while its container lives or its status says Running.
pub fn job_standing(
    meta: &ObjectMeta,
    spec: &JobSpec,
    status: &JobStatus,
    live: bool,
    now: DateTime<Utc>,
) -> Standing {
    if live || status.phase == JobPhase::Running {
        Standing::Holding
    } else if job_wants_to_start(meta, spec, status, now) {
        Standing::Waiting
    } else {
        Standing::Idle
    }
}

/// Whether the Sandbox's next decision starts its services.
pub fn sandbox_wants_to_start(
    meta: &ObjectMeta,
    spec: &SandboxSpec,
    status: &SandboxStatus,
) -> bool {
    meta.deletion_timestamp.is_none()
        && spec.state == SandboxState::Running
        && matches!(
            status.phase,
            None | Some(SandboxPhase::Pending) | Some(SandboxPhase::Stopped)
        )
}

/// Where a Sandbox stands: holding from Starting until it is stopped.
pub fn sandbox_standing(meta: &ObjectMeta, spec: &SandboxSpec, status: &SandboxStatus) -> Standing {
    if matches!(
        status.phase,
        Some(SandboxPhase::Starting | SandboxPhase::Ready | SandboxPhase::Stopping)
    ) {
        Standing::Holding
    } else if sandbox_wants_to_start(meta, spec, status) {
        Standing::Waiting
    } else {
        Standing::Idle
    }
}

/// Reads the workspace's members and the runs of its last hour.
pub async fn snapshot(
    ctx: &Context,
    workspace: &Workspace,
    now: DateTime<Utc>,
) -> Result<Snapshot, ControllerError> {
    let ns = workspace.name.as_str();
    let defaults = workspace.defaults();
    let live: HashSet<String> = ctx
        .jobs
        .list(&[
            (keys::LABEL_WORKSPACE, ns),
            (keys::LABEL_INSTANCE, ctx.store.instance_id()),
        ])
        .await?
        .into_iter()
        .filter(|c| holds_room(&c.state))
        .filter_map(|c| c.label(keys::LABEL_UID).map(str::to_string))
        .collect();
    let mut members = Vec::new();
    let mut run_starts: HashMap<(String, u32), DateTime<Utc>> = HashMap::new();
    let (jobs, _) = ctx.store.list(Kind::Job, Some(ns)).await?;
    for obj in &jobs {
        let key = obj.key();
        let status: JobStatus = read_status(&key, obj)?;
        let Ok(spec) = job_spec(obj, Some(workspace)) else {
            continue;
        };
        if let (Some(run), Some(start)) = (status.run, status.start_time)
            && start > now - quota::RUN_WINDOW
        {
            run_starts.insert((obj.metadata.uid.clone(), run), start);
        }
        let standing = job_standing(
            &obj.metadata,
            &spec,
            &status,
            live.contains(&obj.metadata.uid),
            now,
        );
        let new_run = job_new_run(&obj.metadata, &status);
        members.push(member(
            obj,
            standing,
            job_demand(&spec, ctx.limits.default_memory_bytes, new_run),
        ));
    }
    let (sandboxes, _) = ctx.store.list(Kind::Sandbox, Some(ns)).await?;
    for obj in &sandboxes {
        let key = obj.key();
        let status: SandboxStatus = read_status(&key, obj)?;
        let Ok(spec) = serde_json::from_value::<SandboxSpec>(obj.spec.clone()) else {
            continue;
        };
        let standing = sandbox_standing(&obj.metadata, &spec, &status);
        members.push(member(
            obj,
            standing,
            sandbox_demand(&spec, defaults.resources.as_ref()),
        ));
    }
    if workspace.limits.runs_per_hour.is_some() {
        let query = RunQuery {
            namespace: Some(ns.to_string()),
            since: Some(now - quota::RUN_WINDOW),
            limit: crate::records::search::MAX_LIMIT,
            ..Default::default()
        };
        for run in ctx.records.search_runs(&query).await? {
            if let Some(start) = run.start_time
                && start > now - quota::RUN_WINDOW
            {
                run_starts.insert((run.uid.clone(), run.run), start);
            }
        }
    }
    Ok(Snapshot {
        members,
        run_starts: run_starts.into_values().collect(),
    })
}

/// Whether a job container still holds room: one that exited, or is being removed
/// after its harvest (`removing`, `dead`), does not.
pub fn holds_room(state: &ContainerState) -> bool {
    match state {
        ContainerState::Running | ContainerState::Created => true,
        ContainerState::Other(s) => !matches!(s.as_str(), "removing" | "dead"),
        ContainerState::Exited { .. } | ContainerState::CannotStart { .. } => false,
    }
}

fn member(obj: &Object, standing: Standing, demand: Demand) -> Member {
    Member {
        uid: obj.metadata.uid.clone(),
        created: obj.metadata.creation_timestamp.unwrap_or_default(),
        name: obj.metadata.name.clone(),
        standing,
        demand,
    }
}

/// The objects admitted in memory hold their room, whatever the store says yet.
fn with_admitted(
    mut snapshot: Snapshot,
    ledger: &HashMap<String, Held>,
    ns: &str,
    now: DateTime<Utc>,
) -> Snapshot {
    let mut known = HashSet::new();
    for m in &mut snapshot.members {
        known.insert(m.uid.clone());
        if let Some(held) = ledger.get(&m.uid)
            && m.standing != Standing::Holding
        {
            m.standing = Standing::Holding;
            if held.demand.runs > 0 {
                // Its run is starting: it counts within the hour already.
                snapshot.run_starts.push(now);
            }
        }
    }
    // Admitted, but not in the list read (it was created since): it holds all the same.
    for (uid, held) in ledger {
        if held.namespace == ns && !known.contains(uid) {
            snapshot.members.push(Member {
                uid: uid.clone(),
                created: DateTime::<Utc>::MIN_UTC,
                name: String::new(),
                standing: Standing::Holding,
                demand: held.demand,
            });
        }
    }
    snapshot
}

/// Admits `applicant` into `workspace`, or says why it waits. Admitted, it holds its
/// room in memory until [`Admitted::release`].
pub async fn admit(
    ctx: &Context,
    workspace: &Workspace,
    applicant: &Applicant<'_>,
) -> Result<Result<(), Refusal>, ControllerError> {
    if ctx.admitted.holds(applicant.uid) {
        return Ok(Ok(()));
    }
    let now = Utc::now();
    let snapshot = snapshot(ctx, workspace, now).await?;
    let mut ledger = ctx.admitted.by_uid.lock().expect("admitted lock");
    let snapshot = with_admitted(snapshot, &ledger, &workspace.name, now);
    let verdict = quota::admit(
        &workspace.name,
        &workspace.limits,
        &snapshot,
        applicant,
        now,
    );
    if verdict.is_ok() {
        ledger.insert(
            applicant.uid.to_string(),
            Held {
                namespace: workspace.name.clone(),
                demand: applicant.demand,
            },
        );
    }
    Ok(verdict)
}

/// The snapshot a Workspace's status is written from (what the ledger holds included).
pub async fn usage_snapshot(
    ctx: &Context,
    workspace: &Workspace,
    now: DateTime<Utc>,
) -> Result<Snapshot, ControllerError> {
    let snapshot = snapshot(ctx, workspace, now).await?;
    let ledger = ctx.admitted.by_uid.lock().expect("admitted lock");
    Ok(with_admitted(snapshot, &ledger, &workspace.name, now))
}

/// Whether a Job's status says it waits for quota.
pub fn job_waits_for_quota(status: &JobStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == JobConditionType::QuotaExceeded && c.status == ConditionStatus::True)
}

/// Whether a Sandbox's status says it waits for quota.
pub fn sandbox_waits_for_quota(status: &SandboxStatus) -> bool {
    status.conditions.iter().any(|c| {
        c.type_ == SandboxConditionType::QuotaExceeded && c.status == ConditionStatus::True
    })
}

/// A Job's status while quota holds it back: Pending (before its run starts), the
/// condition, and the summary, which say which quota and how full it is.
pub fn job_refused(status: &mut JobStatus, message: &str, now: DateTime<Utc>) {
    set_condition(
        &mut status.conditions,
        JobConditionType::QuotaExceeded,
        ConditionStatus::True,
        "QuotaExceeded",
        message,
        now,
    );
    if status.phase != JobPhase::Running {
        status.phase = JobPhase::Pending;
    }
    status.summary = Some(format!("waiting: {message}"));
}

/// A Sandbox's status while quota holds it back.
pub fn sandbox_refused(status: &mut SandboxStatus, message: &str, now: DateTime<Utc>) {
    set_condition(
        &mut status.conditions,
        SandboxConditionType::QuotaExceeded,
        ConditionStatus::True,
        "QuotaExceeded",
        message,
        now,
    );
    status.phase = Some(SandboxPhase::Pending);
    status.message = Some(format!("waiting: {message}"));
}

#[cfg(test)]
mod tests;
