//! The Sandbox and SandboxTemplate controllers, in process, against real Docker and a
//! real SQLite store: start, endpoints, private networks, stop and start with volumes,
//! idle expiry held off by background work, TTL expiry, delete, restarts of a killed
//! service, warm-pool claims and bursts, and adoption after a controller restart.
//!
//! Needs Docker and the local `busybox:latest` image; both come from
//! `scripts/setup.sh`. Without them these tests fail, saying so. Every test runs with a
//! store of its own, so everything it made carries that store's instance label, and
//! is removed by that label at the end, whether the test passed or not. The tests run
//! one at a time: they measure deadlines, and the machine is shared.

#[path = "sandbox_lifecycle/expiry.rs"]
mod expiry;
#[path = "sandbox_lifecycle/pools.rs"]
mod pools;
#[path = "sandbox_lifecycle/restarts.rs"]
mod restarts;
#[path = "sandbox_lifecycle/running.rs"]
mod running;

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use orcaops::controller::{self, Backend, Context};
use orcaops::resources::sandbox::{SandboxPhase, SandboxStatus, SandboxTemplateStatus};
use orcaops::resources::{Kind, Object, ObjectKey, keys};
use orcaops::runtime::sandbox::ExecRequest;
use orcaops::runtime::{ContainerState, DockerRuntime};
use orcaops::store::{Event, EventQuery, LocalStore};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "busybox:latest";
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);
/// A shell that stops at once on SIGTERM (PID 1 ignores signals it does not handle).
const IDLE: &[&str] = &[
    "sh",
    "-c",
    "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done",
];

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A store of its own and the controllers running on it.
struct Harness {
    store: LocalStore,
    runtime: DockerRuntime,
    ctx: Arc<Context>,
    /// The test's token: cancelling it stops every controller the test started.
    stop: CancellationToken,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Harness {
    /// Controllers on `store`, stopped when `stop` is cancelled (or on their own).
    fn start_controllers(
        store: &LocalStore,
        runtime: &DockerRuntime,
        stop: &CancellationToken,
    ) -> Harness {
        let ctx = Context::new(&Backend::Local {
            store: store.clone(),
            docker: runtime.clone(),
        });
        let shutdown = stop.child_token();
        let task = tokio::spawn(controller::run(Arc::clone(&ctx), 8, shutdown.clone()));
        Harness {
            store: store.clone(),
            runtime: runtime.clone(),
            ctx,
            stop: stop.clone(),
            shutdown,
            task: Some(task),
        }
    }

    /// Stops the controllers, as a killed process would (the containers stay).
    async fn stop_controllers(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    async fn create(&self, kind: Kind, name: &str, spec: Value) -> Object {
        self.store
            .create(Object::new(kind, "default", name, spec))
            .await
            .unwrap()
    }

    async fn get(&self, kind: Kind, name: &str) -> Option<Object> {
        self.store
            .get(&ObjectKey::new(kind, "default", name))
            .await
            .unwrap()
    }

    /// Changes a stored object as a client would (spec or annotations): read,
    /// change, write guarded by the resourceVersion read, and read again when
    /// a controller's status write got in between (a Conflict), as kubectl does.
    async fn edit(&self, kind: Kind, name: &str, change: impl Fn(&mut Object)) {
        for _ in 0..20 {
            let mut obj = self.get(kind, name).await.unwrap();
            change(&mut obj);
            match self.store.replace(obj).await {
                Ok(_) => return,
                Err(orcaops::store::StoreError::Conflict { .. }) => continue,
                Err(e) => panic!("editing {kind:?} {name}: {e}"),
            }
        }
        panic!("editing {kind:?} {name}: 20 conflicts in a row");
    }

    async fn status(&self, name: &str) -> SandboxStatus {
        let obj = self
            .get(Kind::Sandbox, name)
            .await
            .expect("the sandbox exists");
        serde_json::from_value(obj.status).unwrap_or_default()
    }

    async fn template_status(&self, name: &str) -> SandboxTemplateStatus {
        let obj = self.get(Kind::SandboxTemplate, name).await.unwrap();
        serde_json::from_value(obj.status).unwrap_or_default()
    }

    /// Waits until the sandbox's status satisfies `done`, failing with it otherwise.
    async fn wait_sandbox(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&SandboxStatus) -> bool,
    ) -> SandboxStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = self.status(name).await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: waited {WAIT:?} for {what}; status: {status:#?}\nevents: {:#?}",
                self.events(Kind::Sandbox, name).await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_phase(&self, name: &str, phase: SandboxPhase) -> SandboxStatus {
        self.wait_sandbox(name, phase.as_str(), |s| s.phase == Some(phase))
            .await
    }

    async fn wait_pool(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&SandboxTemplateStatus) -> bool,
    ) -> SandboxTemplateStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = self.template_status(name).await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "template {name}: waited {WAIT:?} for {what}; status: {status:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn events(&self, kind: Kind, name: &str) -> Vec<Event> {
        self.store
            .list_events(
                EventQuery::newest(100)
                    .kind(kind.as_str())
                    .namespace("default")
                    .name(name),
            )
            .await
            .unwrap()
    }

    async fn has_event(&self, kind: Kind, name: &str, reason: &str) -> bool {
        self.events(kind, name)
            .await
            .iter()
            .any(|e| e.reason == reason)
    }

    /// The container of one service, by the name the status gives.
    async fn container(&self, sandbox: &str, service: &str) -> orcaops::runtime::ContainerInfo {
        let status = self.status(sandbox).await;
        let name = status
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| s.container.clone())
            .expect("the status names the container");
        self.runtime
            .inspect(&name)
            .await
            .unwrap()
            .expect("the container exists")
    }

    /// The id of a service's container, if it exists now (it may be being made again).
    async fn container_id(&self, sandbox: &str, service: &str) -> Option<String> {
        let status = self.status(sandbox).await;
        let name = status
            .services
            .iter()
            .find(|s| s.name == service)?
            .container
            .clone()?;
        self.runtime.inspect(&name).await.unwrap().map(|c| c.id)
    }

    async fn exec(&self, sandbox: &str, service: &str, script: &str) -> (i64, String) {
        let container = self.container(sandbox, service).await;
        let out = self
            .runtime
            .exec(
                &container.id,
                &ExecRequest {
                    command: vec!["sh".into(), "-c".into(), script.into()],
                    timeout: Some(Duration::from_secs(10)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (
            out.exit_code,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }

    /// Creates a template with a warm pool of `size` and waits until it is full.
    async fn warm_pool(&self, name: &str, size: u32) {
        self.create(Kind::SandboxTemplate, name, pooled_template(size, None))
            .await;
        self.wait_pool(name, "a full pool", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == size)
        })
        .await;
    }

    /// The ids of the containers of template `pool`'s warm pool.
    async fn pool_containers(&self, pool: &str) -> Vec<String> {
        let selector = [
            (keys::LABEL_INSTANCE, self.store.instance_id()),
            (keys::LABEL_POOL, pool),
        ];
        let pooled = self.runtime.list(&selector).await.unwrap();
        pooled.into_iter().map(|c| c.id).collect()
    }

    /// Waits until Docker holds nothing for the sandbox uid.
    async fn wait_nothing_owned(&self, uid: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let owned = self.owned(uid).await;
            if owned == (0, 0, 0) {
                return;
            }
            assert!(Instant::now() < deadline, "left behind: {owned:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What Docker holds for a sandbox uid: (containers, networks, volumes).
    async fn owned(&self, uid: &str) -> (usize, usize, usize) {
        let selector = [
            (keys::LABEL_INSTANCE, self.store.instance_id()),
            (keys::LABEL_UID, uid),
        ];
        (
            self.runtime.list(&selector).await.unwrap().len(),
            self.runtime.list_networks(&selector).await.unwrap().len(),
            self.runtime.list_volumes(&selector).await.unwrap().len(),
        )
    }
}

/// Runs `body` with a fresh store and running controllers; afterwards removes every
/// container, network and volume labelled with that store's instance, even when
/// `body` panicked or timed out.
async fn sandbox_test<F, Fut>(body: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()>,
{
    let _serial = SERIAL.lock().await;
    // RUST_LOG=orcaops=debug shows what the controllers did.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let runtime = common::docker::connect().await;
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path()).await.unwrap();
    let instance = store.instance_id().to_string();
    let stop = CancellationToken::new();
    let harness = Harness::start_controllers(&store, &runtime, &stop);
    let cleanup = async {
        // Stop every controller of the test first (it would make again what is
        // removed), let Docker calls in flight land, then remove by label.
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(500)).await;
        common::docker::remove_labelled(&runtime, &[(keys::LABEL_INSTANCE, &instance)]).await;
    };
    common::docker::guarded(TEST_TIMEOUT, body(harness), cleanup).await;
}

fn idle_service(name: &str) -> Value {
    json!({"name": name, "image": IMAGE, "command": IDLE})
}

/// An idle service with a volume `data` at /data.
fn idle_service_with_data(name: &str) -> Value {
    let mut service = idle_service(name);
    service["volumes"] = json!([{"name": "data", "mountPath": "/data"}]);
    service
}

fn web_service() -> Value {
    json!({
        "name": "web",
        "image": IMAGE,
        "command": ["sh", "-c", "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "healthCheck": {"tcp": {"port": 8080}},
    })
}

fn secs_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

fn pooled_template(size: u32, max: Option<u32>) -> Value {
    let mut pool = json!({"size": size});
    if let Some(max) = max {
        pool["maxSize"] = json!(max);
    }
    json!({
        "idleTimeoutSeconds": 600,
        "services": [idle_service("shell")],
        "warmPool": pool,
    })
}

/// Creates a Sandbox and waits, on the store's watch, for it to be Ready: how long
/// that took.
async fn create_until_ready(h: &Harness, name: &str, spec: Value) -> (Duration, SandboxStatus) {
    let mut watch = h.store.watch();
    let started = Instant::now();
    h.create(Kind::Sandbox, name, spec).await;
    loop {
        let event = tokio::time::timeout(WAIT, watch.recv())
            .await
            .unwrap_or_else(|_| panic!("{name} was not Ready within {WAIT:?}"))
            .unwrap();
        if event.object.kind != Kind::Sandbox || event.object.metadata.name != name {
            continue;
        }
        let status: SandboxStatus =
            serde_json::from_value(event.object.status.clone()).unwrap_or_default();
        if status.phase == Some(SandboxPhase::Ready) {
            return (started.elapsed(), status);
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
