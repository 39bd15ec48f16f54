//! Controllers: one per kind, all driven by the same [`WorkQueue`], fed from the
//! store's watch stream and periodic resyncs. Each reconcile is observe -> decide -> act,
//! run by one driver ([`reconcile::drive`]).

pub mod activity;
mod backend;
pub mod blocked;
pub mod event;
pub mod explain;
pub mod finalizer;
pub mod job;
pub mod limits;
pub mod queue;
pub mod reconcile;
pub mod resync;
pub mod sandbox;
pub mod secrets;
pub mod template;
pub mod waiting;
pub mod workflow;
pub mod workspace;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::audit::AuditLog;
use crate::metrics::Metrics;
use crate::notifications::{self, Notifier};
use crate::resources::{Kind, ObjectKey};
use crate::runtime::{JobRuntime, RuntimeError};
use crate::store::audited::{AuditedStore, CONTROLLER};
use crate::store::{LocalStore, ObjectStore, StoreError, WatchEvent, WatchEventType};
pub use backend::Backend;
pub use sandbox::runtime::SandboxRuntime;

pub use queue::WorkQueue;

#[derive(thiserror::Error, Debug)]
pub enum ControllerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{key} cannot be read: {message}")]
    InvalidObject { key: ObjectKey, message: String },
    #[error("cannot write run records: {0}")]
    Io(#[from] std::io::Error),
}

impl ControllerError {
    /// A stable category, for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            ControllerError::Store(StoreError::Conflict { .. }) => "conflict",
            ControllerError::Store(_) => "store",
            ControllerError::Runtime(_) => "runtime",
            ControllerError::InvalidObject { .. } => "invalid",
            ControllerError::Io(_) => "io",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The objects: the local store, or the Kubernetes API.
    pub store: Arc<dyn ObjectStore>,
    /// The live policies: a Job or Sandbox they refuse is not started (`Blocked`).
    pub policies: Arc<crate::policy::Policies>,
    /// Run and attempt records (and the data dir of logs and artifacts): the local
    /// store's database in both modes, since the cluster keeps only recent history.
    pub records: LocalStore,
    /// What runs Job attempts: Docker, or pods.
    pub jobs: Arc<dyn JobRuntime>,
    /// What runs Sandboxes (and, where the mode has them, warm pools): Docker, or a pod
    /// per sandbox.
    pub sandbox_runtime: Arc<dyn SandboxRuntime>,
    /// Where `env[].valueFrom.secretKeyRef` is read: the local store's secrets, or (on a
    /// cluster) nowhere, as the pods read their Secrets themselves.
    pub secrets: Arc<dyn crate::store::secrets::SecretValues>,
    /// Whether the store keeps finalizers (a cluster): Jobs and Sandboxes then carry one.
    pub finalizers: bool,
    /// Whether [`run`] has listed what exists and follows the watch (for `/readyz`).
    pub synced: std::sync::atomic::AtomicBool,
    pub queue: Arc<WorkQueue<ObjectKey>>,
    pub metrics: Arc<Metrics>,
    /// Sandbox use seen by the HTTP API (exec, files), read by the Sandbox controller.
    pub activity: Arc<activity::SandboxActivity>,
    /// The Sandbox controller's monitors and uid index.
    pub sandboxes: sandbox::Tracker,
    /// The warm pools of SandboxTemplates.
    pub pools: template::Pools,
    /// The Job controller's log followers.
    pub followers: job::follow::Followers,
    /// Objects refused a container slot, woken when one frees up.
    pub waiting_for_room: waiting::WaitingForRoom,
    /// The bounds on a Job's output, artifacts and memory.
    pub limits: limits::Limits,
    /// Jobs and Sandboxes admitted by their workspace's quotas and not yet finished.
    pub admitted: workspace::admission::Admitted,
    /// Jobs and Sandboxes a policy blocks, woken when a Policy or Workspace changes.
    pub blocked: blocked::Blocked,
    /// The Workspace controller of a cluster, which applies each Workspace's tenant;
    /// None on one machine.
    pub tenants: Option<Arc<workspace::tenant::Tenants>>,
    /// The optional summariser, set once at start: it explains failed runs.
    pub explainer: std::sync::OnceLock<Arc<dyn explain::Explainer>>,
    /// Where the events worth a notification go (see [`event::record`]).
    pub notifier: Arc<Notifier>,
}

/// What the controllers are started with, beside the backend.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The bounds on a Job's output, artifacts and memory.
    pub limits: limits::Limits,
    /// The server-wide notification endpoints and how deliveries are retried.
    pub notifications: notifications::Settings,
}

/// A controller context on the tower-test mock API server, which answers as `answer`
/// does (None: no answer, the request hangs), with run records in a temporary dir.
/// Keep the dir and the server's task for as long as the context is used.
#[cfg(test)]
pub(crate) async fn mock_cluster(
    answer: impl FnMut(&crate::store::kube::mock::Seen) -> Option<crate::store::kube::mock::Reply>
    + Send
    + 'static,
) -> (Arc<Context>, tempfile::TempDir, tokio::task::JoinHandle<()>) {
    let (client, api) = crate::store::kube::mock::mock_client();
    let server = api.route(Arc::new(std::sync::Mutex::new(Vec::new())), answer);
    let dir = tempfile::tempdir().unwrap();
    let records = LocalStore::open(dir.path()).await.unwrap();
    let ctx = Context::new(&Backend::Cluster {
        store: crate::store::KubeStore::new(client.clone(), "kube-test"),
        records,
        pods: crate::runtime::PodRuntime::new(client),
    });
    (ctx, dir, server)
}

/// How often every object is reconciled even when nothing changed.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(60);
/// How many objects are reconciled at once.
pub const DEFAULT_WORKERS: usize = 16;

impl Context {
    /// The controllers' shared state over `backend`.
    pub fn new(backend: &Backend) -> Arc<Self> {
        Self::with_options(backend, Options::default())
    }

    /// Like [`Context::new`], with what the server was started with.
    pub fn with_options(backend: &Backend, options: Options) -> Arc<Self> {
        Self::build(backend, options, None)
    }

    /// Like [`Context::with_options`], with what the controllers create, update and
    /// delete recorded in `audit` as actor `controller`.
    pub fn audited(backend: &Backend, options: Options, audit: AuditLog) -> Arc<Self> {
        Self::build(backend, options, Some(audit))
    }

    fn build(backend: &Backend, options: Options, audit: Option<AuditLog>) -> Arc<Self> {
        let queue = WorkQueue::new();
        let activity = activity::SandboxActivity::new();
        let sandboxes = sandbox::Tracker::default();
        // Use of a sandbox wakes its controller, so `expiresAt` follows it.
        let keys = sandboxes.keys();
        let wake = Arc::clone(&queue);
        activity.set_waker(move |uid| {
            let key = keys.lock().expect("sandbox keys lock").get(uid).cloned();
            if let Some(key) = key {
                wake.add(key);
            }
        });
        let metrics = Arc::new(Metrics::new());
        let depth = Arc::clone(&queue);
        metrics.sample_queue_depth(move || depth.len());
        let sandbox_runtime = backend.sandboxes();
        if let Some(docker) = sandbox_runtime.warm_pools() {
            metrics.register_docker_calls(docker.call_latency());
        }
        // Outcomes are recorded on the undecorated store: they are no controller's writes.
        let notifier = Arc::new(Notifier::new(
            options.notifications,
            backend.objects(),
            Arc::clone(&metrics),
        ));
        let ctx = Arc::new(Context {
            policies: backend.policies(),
            store: match audit {
                Some(log) => Arc::new(AuditedStore::new(backend.objects(), log, CONTROLLER)),
                None => backend.objects(),
            },
            records: backend.records(),
            jobs: backend.jobs(),
            sandbox_runtime,
            secrets: backend.secrets(),
            finalizers: backend.keeps_finalizers(),
            synced: std::sync::atomic::AtomicBool::new(false),
            queue,
            metrics,
            activity,
            sandboxes,
            pools: template::Pools::default(),
            followers: job::follow::Followers::default(),
            waiting_for_room: waiting::WaitingForRoom::default(),
            limits: options.limits,
            admitted: workspace::admission::Admitted::default(),
            blocked: blocked::Blocked::default(),
            explainer: std::sync::OnceLock::new(),
            tenants: backend
                .tenants()
                .map(|runtime| Arc::new(workspace::tenant::Tenants::new(runtime))),
            notifier,
        });
        let weak = Arc::downgrade(&ctx);
        ctx.metrics.sample_warm_pools(move || {
            weak.upgrade()
                .map(|ctx| ctx.pools.ready_counts(&ctx.sandboxes.monitors))
                .unwrap_or_default()
        });
        ctx
    }

    /// What runs Sandboxes.
    pub fn sandbox_runtime(&self) -> &dyn SandboxRuntime {
        self.sandbox_runtime.as_ref()
    }

    /// Removes what belongs to no Job, Sandbox or warm pool any more: Job containers,
    /// and Sandbox containers, networks and volumes. Returns how many were removed.
    pub async fn remove_orphans(&self) -> Result<usize, ControllerError> {
        let jobs = job::follow::remove_orphans(self).await?;
        let sandboxes = self.sandbox_runtime.remove_orphans(self).await?;
        Ok(jobs + sandboxes)
    }
}

/// Runs the controllers until `shutdown`: feeds the queue from the store's watch
/// stream and resyncs, and reconciles with `workers` workers.
pub async fn run(ctx: Arc<Context>, workers: usize, shutdown: CancellationToken) {
    // Subscribe before listing, so nothing written in between is missed.
    let mut watch = ctx.store.watch();
    // Before any Sandbox is reconciled: the pools this store left running are claimable
    // again, and the slots Sandboxes claimed are never handed out twice.
    if let Some(docker) = ctx.sandbox_runtime.warm_pools()
        && let Err(e) = template::rebuild(&ctx, docker).await
    {
        warn!(error = %e, "cannot look for warm-pool sandboxes");
    }
    ctx.synced
        .store(false, std::sync::atomic::Ordering::Relaxed);
    recount_containers(&ctx).await;
    let mut active = resync::Active::default();
    match enqueue_all(&ctx, &mut active).await {
        Ok(()) => ctx.synced.store(true, std::sync::atomic::Ordering::Relaxed),
        Err(e) => error!(error = %e, "cannot list objects at start-up"),
    }
    if let Err(e) = ctx.remove_orphans().await {
        warn!(error = %e, "cannot look for orphaned containers");
    }

    let mut tasks = vec![tokio::spawn(
        Arc::clone(&ctx.notifier).run(shutdown.clone()),
    )];
    for _ in 0..workers.max(1) {
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let key = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    key = ctx.queue.next() => key,
                };
                reconcile_one(&ctx, &key).await;
                ctx.queue.done(&key);
            }
        }));
    }

    // A freed container slot wakes the objects first in line for it.
    if let Some(docker) = ctx.sandbox_runtime.warm_pools().cloned() {
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        let mut room = docker.room();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    changed = room.changed() => match changed {
                        Ok(()) => waiting::wake_next_in_line(&ctx, &docker),
                        Err(_) => break,
                    },
                }
            }
        }));
    }

    // A runtime that reports changes to what runs (a cluster's pods) wakes their Sandboxes.
    if let Some(mut changes) = ctx.sandbox_runtime.changes(ctx.store.instance_id()) {
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    key = futures::StreamExt::next(&mut changes) => match key {
                        Some(key) => ctx.queue.add(key),
                        None => break,
                    },
                }
            }
        }));
    }

    let mut resync = tokio::time::interval(RESYNC_PERIOD);
    resync.tick().await;
    let mut resyncs: u32 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = resync.tick() => {
                recount_containers(&ctx).await;
                resyncs = resyncs.wrapping_add(1);
                // Level-triggered: what is not at rest each time, everything now and then
                // (see `resync`).
                if resyncs.is_multiple_of(resync::FULL_EVERY) || !ctx.synced.load(std::sync::atomic::Ordering::Relaxed) {
                    match enqueue_all(&ctx, &mut active).await {
                        Ok(()) => ctx.synced.store(true, std::sync::atomic::Ordering::Relaxed),
                        Err(e) => warn!(error = %e, "resync failed"),
                    }
                } else {
                    debug!(active = active.len(), "resync of the objects not at rest");
                    for key in active.keys() {
                        ctx.queue.add(key.clone());
                    }
                }
                if let Err(e) = ctx.remove_orphans().await {
                    warn!(error = %e, "orphan sweep failed");
                }
            }
            event = watch.recv() => match event {
                Ok(event) => {
                    if RECONCILED.contains(&event.object.kind) {
                        active.note(&event.object, event.type_ == WatchEventType::Deleted);
                    }
                    on_change(&ctx, event)
                }
                Err(RecvError::Lagged(missed)) => {
                    warn!(missed, "watch stream lagged; relisting");
                    if let Err(e) = enqueue_all(&ctx, &mut active).await {
                        warn!(error = %e, "relist failed");
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    }
    for task in tasks {
        task.abort();
    }
    ctx.followers.stop_all();
    ctx.sandboxes.monitors.stop_all();
}

/// Queues what a change in the store asks the controllers to look at.
fn on_change(ctx: &Arc<Context>, event: WatchEvent) {
    let key = event.object.key();
    let deleted = event.type_ == WatchEventType::Deleted;
    // Any change to a Workflow's Job (its status above all) is the Workflow's to follow.
    if key.kind == Kind::Job
        && let Some(owner) = workflow::owner_of(&event.object)
    {
        ctx.queue.add(owner);
    }
    if deleted {
        ctx.metrics.object_deleted(&event.object);
    } else {
        ctx.metrics.object_changed(&event.object);
    }
    workspace::wake::on_change(ctx, &event);
    blocked::on_change(ctx, &event);
    match key.kind {
        Kind::Job if deleted => {
            let ctx = Arc::clone(ctx);
            tokio::spawn(async move {
                // The run it interrupted first (local mode deletes at once), then what is left.
                if let Err(e) = job::deleted::record_interrupted(&ctx, &event.object).await {
                    warn!(%key, error = %e, "cannot record the run a deleted job interrupted");
                }
                if let Err(e) = job::follow::remove_orphans(&ctx).await {
                    warn!(error = %e, "cannot remove the containers of a deleted job");
                }
            });
        }
        Kind::Sandbox if deleted => {
            let ctx = Arc::clone(ctx);
            tokio::spawn(async move {
                if let Err(e) = ctx
                    .sandbox_runtime()
                    .remove_deleted(&ctx, &event.object)
                    .await
                {
                    warn!(%key, error = %e, "cannot remove what a deleted sandbox left; the next sweep retries");
                }
            });
        }
        Kind::SandboxTemplate if !only_status_changed(&event) => {
            // The template itself (its pool), and every Sandbox made from it.
            ctx.queue.add(key.clone());
            let ctx = Arc::clone(ctx);
            tokio::spawn(async move {
                if let Err(e) = wake_sandboxes_of(&ctx, &key).await {
                    warn!(%key, error = %e, "cannot list the sandboxes of a template");
                }
            });
        }
        // Deleted: the reconcile finds it gone and deletes its Jobs.
        Kind::Workflow if deleted => ctx.queue.add(key),
        // START and spec.state are metadata and spec changes: they wake the sandbox.
        Kind::Job | Kind::Sandbox | Kind::Workflow if !only_status_changed(&event) => {
            ctx.queue.add(key)
        }
        _ => {}
    }
}

async fn wake_sandboxes_of(ctx: &Context, template: &ObjectKey) -> Result<(), StoreError> {
    let (sandboxes, _) = ctx
        .store
        .list(Kind::Sandbox, Some(&template.namespace))
        .await?;
    for sb in sandboxes {
        if sb.spec.get("templateRef").and_then(|t| t.as_str()) == Some(template.name.as_str()) {
            ctx.queue.add(sb.key());
        }
    }
    Ok(())
}

/// A change to the status alone (almost always the controller's own write) asks
/// nothing new of the controller: what it has to do next it has already scheduled (a
/// requeue, a follower that wakes it), as kube-runtime's generation predicate assumes.
/// Skipping these halves the reconciles, and with them the Docker lists, of every run.
fn only_status_changed(event: &WatchEvent) -> bool {
    let Some(before) = event.previous.as_deref() else {
        return false;
    };
    let after = &event.object;
    let mut meta = before.metadata.clone();
    meta.resource_version
        .clone_from(&after.metadata.resource_version);
    event.type_ == WatchEventType::Modified && before.spec == after.spec && meta == after.metadata
}

async fn reconcile_one(ctx: &Arc<Context>, key: &ObjectKey) {
    let started = std::time::Instant::now();
    let result = match key.kind {
        Kind::Job => reconcile::drive(&job::JobReconciler, ctx, key).await,
        Kind::Sandbox => reconcile::drive(&sandbox::SandboxReconciler, ctx, key).await,
        Kind::Workflow => reconcile::drive(&workflow::WorkflowReconciler, ctx, key).await,
        // Warm pools run where the runtime has them (Docker): a cluster's templates say so.
        Kind::SandboxTemplate => match ctx.sandbox_runtime.warm_pools() {
            Some(docker) => reconcile::drive(&template::PoolReconciler { docker }, ctx, key).await,
            None => reconcile::drive(&template::NoPoolReconciler, ctx, key).await,
        },
        Kind::Workspace if workspace::admission::enforced(ctx) => {
            reconcile::drive(&workspace::WorkspaceReconciler, ctx, key).await
        }
        Kind::Workspace => match &ctx.tenants {
            Some(tenants) => reconcile::drive(tenants.as_ref(), ctx, key).await,
            None => Ok(None),
        },
        // Policies are stored and validated.
        _ => Ok(None),
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.category(),
    };
    ctx.metrics.reconciled(key.kind, outcome, started.elapsed());
    match result {
        Ok(requeue) => {
            ctx.queue.forget(key);
            if let Some(after) = requeue {
                ctx.queue.add_after(key.clone(), after);
            }
        }
        Err(e) if waiting::Wait::of(&e).is_some() => {
            let wait = waiting::Wait::of(&e).expect("a wait");
            let retry_in = wait.retry_in(ctx.queue.backoff(key));
            if wait == waiting::Wait::Room {
                // Not a failure: it waits its turn, and a freed slot wakes it.
                ctx.queue.forget(key);
                debug!(%key, error = %e, "waiting for a container slot");
            } else {
                warn!(%key, error = %e, retry_in_ms = retry_in.as_millis() as u64, "the runtime does not answer; retrying");
            }
            if let ControllerError::Runtime(error) = &e
                && let Err(write) = waiting::record(ctx, key, wait, error, retry_in).await
            {
                debug!(%key, error = %write, "cannot record the wait in the status");
            }
            ctx.queue.add_after(key.clone(), retry_in);
        }
        Err(e) => {
            let backoff = ctx.queue.backoff(key);
            match &e {
                ControllerError::Store(StoreError::Conflict { .. }) => {
                    debug!(%key, error = %e, "conflict; retrying")
                }
                _ => {
                    warn!(%key, error = %e, category = e.category(), retry_in_ms = backoff.as_millis() as u64, "reconcile failed")
                }
            }
            ctx.queue.add_after(key.clone(), backoff);
        }
    }
}

/// Counts this server's running containers again, for the container limit (a restart,
/// a container removed by hand). Docker only: a cluster's pods are the scheduler's.
async fn recount_containers(ctx: &Context) {
    if let Some(docker) = ctx.sandbox_runtime.warm_pools() {
        let instance = ctx.store.instance_id();
        match docker
            .recount_containers(&[(crate::resources::keys::LABEL_INSTANCE, instance)])
            .await
        {
            Ok(count) => debug!(count, "containers running"),
            Err(e) => warn!(error = %e, "cannot count the running containers"),
        }
        waiting::wake_next_in_line(ctx, docker);
    }
}

/// The kinds the controllers run (`registry::reconciled`), templates before sandboxes: a
/// pool is known before the sandboxes that may claim from it are looked at.
const RECONCILED: [Kind; 5] = [
    Kind::Job,
    Kind::SandboxTemplate,
    Kind::Sandbox,
    Kind::Workflow,
    Kind::Workspace,
];

/// Lists every object the controllers run and queues it, noting which are not at rest.
async fn enqueue_all(ctx: &Context, active: &mut resync::Active) -> Result<(), StoreError> {
    active.clear();
    for kind in RECONCILED {
        let (objects, _) = ctx.store.list(kind, None).await?;
        ctx.metrics.objects_listed(kind, &objects);
        for obj in objects {
            active.note(&obj, false);
            // A Workflow's Job queues its Workflow too: one deleted while the server was
            // down is then found gone, and its Jobs deleted.
            if let Some(owner) = workflow::owner_of(&obj) {
                ctx.queue.add(owner);
            }
            ctx.queue.add(obj.key());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::resources::{Object, keys};

    fn modified(before: &Object, after: &Object) -> WatchEvent {
        WatchEvent {
            previous: Some(Arc::new(before.clone())),
            ..WatchEvent::new(WatchEventType::Modified, after.clone())
        }
    }

    #[test]
    fn every_kind_the_registry_says_is_reconciled_is_listed_at_each_resync() {
        let mut listed = RECONCILED.to_vec();
        listed.sort();
        let mut reconciled: Vec<Kind> = crate::resources::registry::reconciled().collect();
        reconciled.sort();
        assert_eq!(listed, reconciled);
    }

    #[test]
    fn status_only_changes_do_not_wake_the_controller() {
        let mut before = Object::new(Kind::Job, "default", "a", json!({"image": "x"}));
        before.metadata.resource_version = "1".into();
        let mut status = before.clone();
        status.status = json!({"phase": "Running"});
        status.metadata.resource_version = "2".into();
        assert!(only_status_changed(&modified(&before, &status)));

        let mut cancelled = status.clone();
        cancelled
            .metadata
            .annotations
            .insert(keys::CANCEL.into(), "1".into());
        assert!(!only_status_changed(&modified(&status, &cancelled)));
        let mut respecced = status.clone();
        respecced.spec = json!({"image": "y"});
        assert!(!only_status_changed(&modified(&status, &respecced)));
        assert!(!only_status_changed(&WatchEvent::new(
            WatchEventType::Added,
            before
        )));
    }

    #[test]
    fn a_start_request_or_a_new_state_wakes_a_sandbox_its_status_does_not() {
        let mut before = Object::new(Kind::Sandbox, "default", "s", json!({"services": []}));
        before.metadata.resource_version = "1".into();
        let mut written = before.clone();
        written.status = json!({"phase": "Expired"});
        written.metadata.resource_version = "2".into();
        assert!(only_status_changed(&modified(&before, &written)));
        let mut started = written.clone();
        started
            .metadata
            .annotations
            .insert(keys::START.into(), "2026-03-01T12:00:00Z".into());
        assert!(!only_status_changed(&modified(&written, &started)));
        let mut stopped = written.clone();
        stopped.spec = json!({"services": [], "state": "Stopped"});
        assert!(!only_status_changed(&modified(&written, &stopped)));
    }
}
