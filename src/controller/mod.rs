//! Controllers: one per kind, all driven by the same [`WorkQueue`], fed from the
//! store's watch stream and periodic resyncs. Each reconcile is observe -> decide -> act.

pub mod activity;
pub mod job;
pub mod queue;
pub mod sandbox;
pub mod template;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::operator::metrics::Metrics;
use crate::records;
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::runtime::{ContainerInfo, DockerRuntime, JobRuntime, RuntimeError};
use crate::store::{LocalStore, ObjectStore, StoreError, WatchEvent, WatchEventType};
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
    /// Run and attempt records (and the data dir of logs and artifacts): the local
    /// store's database in both modes, since the cluster keeps only recent history.
    pub records: LocalStore,
    /// What runs Job attempts: Docker, or pods.
    pub jobs: Arc<dyn JobRuntime>,
    /// Docker, for what only local mode runs (warm pools); None in cluster mode.
    pub docker: Option<DockerRuntime>,
    /// What runs Sandboxes: Docker, or a pod per sandbox. None: Sandboxes and
    /// SandboxTemplates are stored and not run.
    pub sandbox_runtime: Option<Arc<dyn SandboxRuntime>>,
    /// Whether the store keeps finalizers (a cluster): Jobs then carry one.
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
    /// Log followers by container id.
    followers: Mutex<HashMap<String, JoinHandle<()>>>,
}

/// How often every object is reconciled even when nothing changed.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(60);
/// How many objects are reconciled at once.
pub const DEFAULT_WORKERS: usize = 16;

impl Context {
    /// Local mode: the SQLite store holds objects and records, Docker runs everything.
    pub fn new(store: LocalStore, runtime: DockerRuntime) -> Arc<Self> {
        Self::build(
            Arc::new(store.clone()),
            store,
            Arc::new(runtime.clone()),
            Some(runtime.clone()),
            Some(Arc::new(runtime)),
            false,
        )
    }

    /// Cluster mode: objects in the Kubernetes API, records in the local data dir,
    /// Job attempts as pods (`jobs`), Sandboxes as pods (`sandboxes`; None stores
    /// them without running them), and no Docker (so no warm pools).
    pub fn cluster(
        store: Arc<dyn ObjectStore>,
        records: LocalStore,
        jobs: Arc<dyn JobRuntime>,
        sandboxes: Option<Arc<dyn SandboxRuntime>>,
    ) -> Arc<Self> {
        Self::build(store, records, jobs, None, sandboxes, true)
    }

    fn build(
        store: Arc<dyn ObjectStore>,
        records: LocalStore,
        jobs: Arc<dyn JobRuntime>,
        docker: Option<DockerRuntime>,
        sandbox_runtime: Option<Arc<dyn SandboxRuntime>>,
        finalizers: bool,
    ) -> Arc<Self> {
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
        Arc::new(Context {
            store,
            records,
            jobs,
            finalizers,
            synced: std::sync::atomic::AtomicBool::new(false),
            docker,
            sandbox_runtime,
            queue,
            metrics: Arc::new(Metrics::new()),
            activity,
            sandboxes,
            pools: template::Pools::default(),
            followers: Mutex::new(HashMap::new()),
        })
    }

    /// Docker, for warm pools (the SandboxTemplate controller and claims). They run
    /// only in local mode: [`reconcile_one`], [`run`] and the Sandbox controller
    /// (through [`SandboxRuntime::runs_warm_pools`]) never call into them without
    /// Docker, so its absence here is a bug.
    pub fn runtime(&self) -> &DockerRuntime {
        self.docker
            .as_ref()
            .expect("warm pools run only in local mode, with Docker")
    }

    /// What runs Sandboxes. [`reconcile_one`] and [`on_change`] never reconcile a
    /// Sandbox without one, so its absence here is a bug.
    pub fn sandbox_runtime(&self) -> &dyn SandboxRuntime {
        self.sandbox_runtime
            .as_deref()
            .expect("sandboxes are reconciled only with a sandbox runtime")
    }

    /// Starts following a running container's output unless that already happens.
    fn follow(
        self: &Arc<Self>,
        key: &ObjectKey,
        obj: &Object,
        container: &ContainerInfo,
        run: u32,
        attempt: u32,
    ) {
        let mut followers = self.followers.lock().expect("followers lock");
        followers.retain(|_, task| !task.is_finished());
        if followers.contains_key(&container.id) {
            return;
        }
        let spec: crate::resources::JobSpec = match serde_json::from_value(obj.spec.clone()) {
            Ok(spec) => spec,
            Err(_) => return,
        };
        let log_path = records::attempt_log(&job::run_dir(self, obj, run), attempt);
        let nonce = container
            .label(job::decide::NONCE_LABEL)
            .unwrap_or_default()
            .to_string();
        let task = tokio::spawn(job::follow_output(
            Arc::clone(self),
            key.clone(),
            log_path,
            container.id.clone(),
            nonce,
            spec.steps.len(),
            !spec.artifacts.is_empty(),
        ));
        followers.insert(container.id.clone(), task);
    }

    fn unfollow(&self, container_id: &str) {
        if let Some(task) = self
            .followers
            .lock()
            .expect("followers lock")
            .remove(container_id)
        {
            task.abort();
        }
    }

    /// Removes what belongs to no Job, Sandbox or warm pool any more: Job containers,
    /// and Sandbox containers, networks and volumes. Returns how many were removed.
    pub async fn remove_orphans(&self) -> Result<usize, ControllerError> {
        let jobs = self.remove_job_orphans().await?;
        let sandboxes = match &self.sandbox_runtime {
            Some(runtime) => runtime.remove_orphans(self).await?,
            None => 0,
        };
        Ok(jobs + sandboxes)
    }

    /// Removes containers labelled as orcaops Job containers whose Job no longer exists.
    async fn remove_job_orphans(&self) -> Result<usize, ControllerError> {
        let (jobs, _) = self.store.list(Kind::Job, None).await?;
        let live: HashSet<&str> = jobs.iter().map(|j| j.metadata.uid.as_str()).collect();
        // Only this store's containers: other orcaops may share the Docker daemon.
        let containers = self
            .jobs
            .list(&[
                (keys::LABEL_KIND, Kind::Job.as_str()),
                (keys::LABEL_INSTANCE, self.store.instance_id()),
            ])
            .await?;
        let mut removed = 0;
        for c in containers {
            if c.label(keys::LABEL_UID)
                .is_some_and(|uid| !live.contains(uid))
            {
                info!(container = %c.name, "removing a container whose Job is gone");
                self.unfollow(&c.id);
                self.jobs.remove(&c.id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Runs the controllers until `shutdown`: feeds the queue from the store's watch
/// stream and resyncs, and reconciles with `workers` workers.
pub async fn run(ctx: Arc<Context>, workers: usize, shutdown: CancellationToken) {
    // Subscribe before listing, so nothing written in between is missed.
    let mut watch = ctx.store.watch();
    // Before any Sandbox is reconciled: the pools this store left running are claimable
    // again, and the slots Sandboxes claimed are never handed out twice.
    if ctx.docker.is_some()
        && let Err(e) = template::rebuild(&ctx).await
    {
        warn!(error = %e, "cannot look for warm-pool sandboxes");
    }
    ctx.synced
        .store(false, std::sync::atomic::Ordering::Relaxed);
    match enqueue_all(&ctx).await {
        Ok(()) => ctx.synced.store(true, std::sync::atomic::Ordering::Relaxed),
        Err(e) => error!(error = %e, "cannot list objects at start-up"),
    }
    if let Err(e) = ctx.remove_orphans().await {
        warn!(error = %e, "cannot look for orphaned containers");
    }

    let mut tasks = Vec::new();
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

    // A runtime that reports changes to what runs (a cluster's pods) wakes their Sandboxes.
    if let Some(mut changes) = ctx
        .sandbox_runtime
        .as_ref()
        .and_then(|runtime| runtime.changes(ctx.store.instance_id()))
    {
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
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = resync.tick() => {
                match enqueue_all(&ctx).await {
                    Ok(()) => ctx.synced.store(true, std::sync::atomic::Ordering::Relaxed),
                    Err(e) => warn!(error = %e, "resync failed"),
                }
                if let Err(e) = ctx.remove_orphans().await {
                    warn!(error = %e, "orphan sweep failed");
                }
            }
            event = watch.recv() => match event {
                Ok(event) => on_change(&ctx, event),
                Err(RecvError::Lagged(missed)) => {
                    warn!(missed, "watch stream lagged; relisting");
                    if let Err(e) = enqueue_all(&ctx).await {
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
    for (_, task) in ctx.followers.lock().expect("followers lock").drain() {
        task.abort();
    }
    ctx.sandboxes.monitors.stop_all();
}

/// Queues what a change in the store asks the controllers to look at.
fn on_change(ctx: &Arc<Context>, event: WatchEvent) {
    let key = event.object.key();
    let deleted = event.type_ == WatchEventType::Deleted;
    let sandboxes = ctx.sandbox_runtime.is_some();
    match key.kind {
        Kind::Job if deleted => {
            let ctx = Arc::clone(ctx);
            tokio::spawn(async move {
                if let Err(e) = ctx.remove_job_orphans().await {
                    warn!(error = %e, "cannot remove the containers of a deleted job");
                }
            });
        }
        // Without a sandbox runtime the sandbox controllers do not run.
        Kind::Sandbox | Kind::SandboxTemplate if !sandboxes => {}
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
        // START and spec.state are metadata and spec changes: they wake the sandbox.
        Kind::Job | Kind::Sandbox if !only_status_changed(&event) => ctx.queue.add(key),
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
        Kind::Job => job::reconcile(ctx, key).await,
        // Without a sandbox runtime Sandboxes are stored, not run (the operator says so
        // once at start-up).
        Kind::Sandbox | Kind::SandboxTemplate if ctx.sandbox_runtime.is_none() => Ok(None),
        Kind::Sandbox => sandbox::reconcile(ctx, key).await,
        // Warm pools run on Docker only: a cluster's templates say so.
        Kind::SandboxTemplate if ctx.docker.is_none() => template::report_no_pool(ctx, key).await,
        Kind::SandboxTemplate => template::reconcile(ctx, key).await,
        // The other kinds are stored and validated; their controllers come later.
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

async fn enqueue_all(ctx: &Context) -> Result<(), StoreError> {
    for kind in [Kind::Job, Kind::SandboxTemplate, Kind::Sandbox] {
        let (objects, _) = ctx.store.list(kind, None).await?;
        for obj in objects {
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

    fn modified(before: &Object, after: &Object) -> WatchEvent {
        WatchEvent {
            previous: Some(Arc::new(before.clone())),
            ..WatchEvent::new(WatchEventType::Modified, after.clone())
        }
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
