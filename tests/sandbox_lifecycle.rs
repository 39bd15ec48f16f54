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

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use orcaops::controller::{self, Context};
use orcaops::resources::sandbox::{SandboxPhase, SandboxStatus, SandboxTemplateStatus};
use orcaops::resources::{Kind, Object, ObjectKey, keys};
use orcaops::runtime::sandbox::ExecRequest;
use orcaops::runtime::{ContainerState, DockerRuntime};
use orcaops::store::{Event, LocalStore};
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
        let ctx = Context::new(store.clone(), runtime.clone());
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

    /// Changes a stored object as a client would (spec or annotations).
    async fn edit(&self, kind: Kind, name: &str, change: impl FnOnce(&mut Object)) {
        let mut obj = self.get(kind, name).await.unwrap();
        change(&mut obj);
        self.store.replace(obj).await.unwrap();
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
            .list_events(Some(kind.as_str()), Some("default"), Some(name), 100)
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
    let runtime = DockerRuntime::connect().await.unwrap_or_else(|error| {
        panic!("these tests need Docker: start Docker with scripts/setup.sh ({error})")
    });
    runtime.ensure_image(IMAGE).await.unwrap_or_else(|error| {
        panic!("these tests need {IMAGE}: start Docker with scripts/setup.sh ({error})")
    });
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path()).await.unwrap();
    let instance = store.instance_id().to_string();
    let stop = CancellationToken::new();
    let harness = Harness::start_controllers(&store, &runtime, &stop);
    let outcome = AssertUnwindSafe(tokio::time::timeout(TEST_TIMEOUT, body(harness)))
        .catch_unwind()
        .await;
    // Stop every controller of the test first (it would make again what is removed),
    // let Docker calls in flight land, then remove by label.
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let selector = [(keys::LABEL_INSTANCE, instance.as_str())];
    for c in runtime.list(&selector).await.unwrap() {
        runtime.remove(&c.id).await.unwrap();
    }
    for n in runtime.list_networks(&selector).await.unwrap() {
        runtime.remove_network(&n).await.unwrap();
    }
    for v in runtime.list_volumes(&selector).await.unwrap() {
        runtime.remove_volume(&v).await.unwrap();
    }
    assert!(
        runtime.list(&selector).await.unwrap().is_empty(),
        "containers left behind"
    );
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the test did not finish within {TEST_TIMEOUT:?}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn idle_service(name: &str) -> Value {
    json!({"name": name, "image": IMAGE, "command": IDLE})
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sandbox_starts_ready_with_its_endpoints() {
    sandbox_test(|h| async move {
        let obj = h
            .create(
                Kind::Sandbox,
                "web",
                json!({"network": "bridge", "services": [web_service()]}),
            )
            .await;
        let status = h.wait_phase("web", SandboxPhase::Ready).await;
        let web = &status.services[0];
        assert!(web.ready);
        assert_eq!(web.state.as_deref(), Some("running"));
        let endpoint = &web.endpoints[0];
        assert_eq!(endpoint.name.as_deref(), Some("http"));
        assert_eq!(endpoint.container_port, 8080);
        assert_eq!(endpoint.host_ip, "127.0.0.1");
        // The endpoint answers.
        let mut stream =
            tokio::net::TcpStream::connect((endpoint.host_ip.as_str(), endpoint.host_port))
                .await
                .expect("the published port accepts connections");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.contains("hello"), "{answer}");
        // Named and labelled as documented.
        let uid8: String = obj
            .metadata
            .uid
            .chars()
            .filter(|c| *c != '-')
            .take(8)
            .collect();
        let container = h.container("web", "web").await;
        assert_eq!(container.name, format!("orcaops-default-web-{uid8}-web"));
        assert_eq!(container.label(keys::LABEL_KIND), Some("Sandbox"));
        assert_eq!(
            container.label(keys::LABEL_UID),
            Some(obj.metadata.uid.as_str())
        );
        assert_eq!(container.label(keys::LABEL_SERVICE), Some("web"));
        assert_eq!(
            container.label(keys::LABEL_INSTANCE),
            Some(h.store.instance_id())
        );
        assert!(h.has_event(Kind::Sandbox, "web", "Ready").await);
        assert!(status.started_at.is_some());
        assert_eq!(status.observed_generation, Some(1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_on_a_private_network_reach_each_other_by_name() {
    sandbox_test(|h| async move {
        h.create(
            Kind::Sandbox,
            "pair",
            json!({"network": "private", "services": [web_service(), idle_service("client")]}),
        )
        .await;
        let status = h.wait_phase("pair", SandboxPhase::Ready).await;
        let network = status
            .network_name
            .clone()
            .expect("a private network is named");
        assert!(network.starts_with("orcaops-default-pair-"), "{network}");
        let (code, out) = h
            .exec("pair", "client", "wget -q -O - http://web:8080/index.html")
            .await;
        assert_eq!((code, out.as_str()), (0, "hello"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_keeps_files_and_volumes_and_starting_restores_them() {
    sandbox_test(|h| async move {
        let mut shell = idle_service("shell");
        shell["volumes"] = json!([{"name": "data", "mountPath": "/data"}]);
        h.create(Kind::Sandbox, "keep", json!({"services": [shell]}))
            .await;
        h.wait_phase("keep", SandboxPhase::Ready).await;
        let before = h.container("keep", "shell").await;
        let (code, _) = h
            .exec(
                "keep",
                "shell",
                "echo volume > /data/f && echo layer > /root/g",
            )
            .await;
        assert_eq!(code, 0);

        h.edit(Kind::Sandbox, "keep", |o| {
            o.spec["state"] = json!("Stopped")
        })
        .await;
        h.wait_phase("keep", SandboxPhase::Stopped).await;
        let stopped = h.runtime.inspect(&before.id).await.unwrap().unwrap();
        assert!(
            matches!(stopped.state, ContainerState::Exited { .. }),
            "{stopped:?}"
        );
        assert!(h.has_event(Kind::Sandbox, "keep", "Stopping").await);
        assert!(h.has_event(Kind::Sandbox, "keep", "Stopped").await);

        h.edit(Kind::Sandbox, "keep", |o| {
            o.spec["state"] = json!("Running")
        })
        .await;
        let status = h.wait_phase("keep", SandboxPhase::Ready).await;
        assert_eq!(status.services[0].restarts, 0, "a start is not a restart");
        let after = h.container("keep", "shell").await;
        assert_eq!(after.id, before.id, "the same container, started again");
        let (_, out) = h.exec("keep", "shell", "cat /data/f /root/g").await;
        assert_eq!(out, "volume\nlayer");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_background_process_keeps_an_idle_sandbox_alive_until_it_ends() {
    sandbox_test(|h| async move {
        let obj = h
            .create(
                Kind::Sandbox,
                "busy",
                json!({"idleTimeoutSeconds": 2, "services": [idle_service("shell")]}),
            )
            .await;
        h.wait_phase("busy", SandboxPhase::Ready).await;
        // As the HTTP API does: the exec is activity, and it leaves a process behind.
        let started = Instant::now();
        {
            let _busy = h.ctx.activity.begin(&obj.metadata.uid);
            let (code, _) = h.exec("busy", "shell", "sleep 8 >/dev/null 2>&1 &").await;
            assert_eq!(code, 0);
        }
        // Well past the idle timeout, while the sleep runs: still Ready.
        while started.elapsed() < Duration::from_secs(6) {
            let status = h.status("busy").await;
            assert_eq!(
                status.phase,
                Some(SandboxPhase::Ready),
                "expired at {:?} although a background process runs: {status:#?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(h.has_event(Kind::Sandbox, "busy", "KeptAlive").await);
        // Once it ends, the sandbox idles out: 8 s of sleep, 2 s idle, and a check.
        let status = h.wait_phase("busy", SandboxPhase::Expired).await;
        let lasted = started.elapsed();
        assert!(
            lasted >= Duration::from_secs(8) && lasted < Duration::from_secs(14),
            "expired after {lasted:?}"
        );
        assert_eq!(status.expiry_reason, None);
        let events = h.events(Kind::Sandbox, "busy").await;
        let expired = events
            .iter()
            .find(|e| e.reason == "Expired")
            .unwrap_or_else(|| panic!("no Expired event: {events:#?}"));
        assert!(expired.message.contains("idle"), "{}", expired.message);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_expiry_happens_on_time_is_recorded_and_can_be_undone() {
    sandbox_test(|h| async move {
        h.create(
            Kind::Sandbox,
            "short",
            json!({"ttlSeconds": 3, "services": [idle_service("shell")]}),
        )
        .await;
        let ready = h.wait_phase("short", SandboxPhase::Ready).await;
        let expires_at = ready.expires_at.expect("a TTL shows in expiresAt");
        assert_eq!(ready.expiry_reason.as_deref(), Some("ttl"));
        let before = h.container("short", "shell").await;
        let status = h.wait_phase("short", SandboxPhase::Expired).await;
        let seen = Utc::now();
        let expired_at = status.expired_at.expect("expiredAt is set");
        assert!(
            secs_between(expires_at, expired_at).abs() < 2.0,
            "expired at {expired_at}, {:.2}s from expiresAt {expires_at}",
            secs_between(expires_at, expired_at)
        );
        assert!(secs_between(expires_at, seen) < 2.5, "seen Expired {seen}");
        let events = h.events(Kind::Sandbox, "short").await;
        let expired = events
            .iter()
            .find(|e| e.reason == "Expired")
            .unwrap_or_else(|| panic!("no Expired event: {events:#?}"));
        assert!(expired.message.contains("ttl"), "{}", expired.message);
        // Stopped, not removed.
        let deadline = Instant::now() + WAIT;
        loop {
            let c = h.runtime.inspect(&before.id).await.unwrap().unwrap();
            if matches!(c.state, ContainerState::Exited { .. }) {
                break;
            }
            assert!(Instant::now() < deadline, "still {:?}", c.state);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Started again by the annotation: Ready, the same container, a new TTL.
        let now = Utc::now().to_rfc3339();
        h.edit(Kind::Sandbox, "short", |o| {
            o.metadata.annotations.insert(keys::START.into(), now);
        })
        .await;
        let again = h
            .wait_sandbox("short", "Ready after the start annotation", |s| {
                s.phase == Some(SandboxPhase::Ready) && s.started_at > ready.started_at
            })
            .await;
        assert!(again.expires_at.unwrap() > expires_at);
        assert_eq!(h.container("short", "shell").await.id, before.id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_with_delete_removes_the_sandbox_and_what_it_owned() {
    sandbox_test(|h| async move {
        let mut shell = idle_service("shell");
        shell["volumes"] = json!([{"name": "data", "mountPath": "/data"}]);
        let obj = h
            .create(
                Kind::Sandbox,
                "gone",
                json!({"ttlSeconds": 2, "onExpiry": "Delete", "network": "private", "services": [shell, idle_service("other")]}),
            )
            .await;
        h.wait_phase("gone", SandboxPhase::Ready).await;
        assert_eq!(h.owned(&obj.metadata.uid).await, (2, 1, 1));
        let deadline = Instant::now() + WAIT;
        while h.get(Kind::Sandbox, "gone").await.is_some() {
            assert!(Instant::now() < deadline, "the sandbox was not deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(h.has_event(Kind::Sandbox, "gone", "Expired").await);
        loop {
            let owned = h.owned(&obj.metadata.uid).await;
            if owned == (0, 0, 0) {
                break;
            }
            assert!(Instant::now() < deadline, "left behind: {owned:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_sandbox_removes_its_containers_network_and_volumes() {
    sandbox_test(|h| async move {
        let mut shell = idle_service("shell");
        shell["volumes"] = json!([{"name": "data", "mountPath": "/data"}]);
        let obj = h
            .create(
                Kind::Sandbox,
                "del",
                json!({"network": "private", "services": [shell]}),
            )
            .await;
        h.wait_phase("del", SandboxPhase::Ready).await;
        h.store
            .delete(&ObjectKey::new(Kind::Sandbox, "default", "del"))
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let owned = h.owned(&obj.metadata.uid).await;
            if owned == (0, 0, 0) {
                break;
            }
            assert!(Instant::now() < deadline, "left behind: {owned:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_service_is_restarted_and_counted() {
    sandbox_test(|h| async move {
        h.create(
            Kind::Sandbox,
            "phoenix",
            json!({"services": [idle_service("shell")]}),
        )
        .await;
        h.wait_phase("phoenix", SandboxPhase::Ready).await;
        let before = h.container("phoenix", "shell").await;
        let killed = std::process::Command::new("docker")
            .args(["kill", &before.id])
            .output()
            .expect("the docker CLI runs");
        assert!(killed.status.success(), "{killed:?}");
        let status = h
            .wait_sandbox("phoenix", "one restart, then Ready", |s| {
                s.services[0].restarts == 1 && s.phase == Some(SandboxPhase::Ready)
            })
            .await;
        let service = &status.services[0];
        assert!(service.last_restart_time.is_some());
        assert_eq!(service.next_restart_time, None);
        assert_eq!(h.container("phoenix", "shell").await.id, before.id);
        assert!(h.has_event(Kind::Sandbox, "phoenix", "ServiceDied").await);
        assert!(
            h.has_event(Kind::Sandbox, "phoenix", "ServiceRestarted")
                .await
        );
        let died = h.events(Kind::Sandbox, "phoenix").await;
        let died = died.iter().find(|e| e.reason == "ServiceDied").unwrap();
        assert!(died.message.contains("code 137"), "{}", died.message);
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_from_a_warm_pool_is_ready_at_once_and_the_pool_refills() {
    sandbox_test(|h| async move {
        h.create(Kind::SandboxTemplate, "shell", pooled_template(2, None))
            .await;
        h.wait_pool("shell", "two ready", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 2)
        })
        .await;
        let started = Instant::now();
        let obj = h
            .create(Kind::Sandbox, "agent", json!({"templateRef": "shell"}))
            .await;
        let status = h.wait_phase("agent", SandboxPhase::Ready).await;
        let took = started.elapsed();
        println!("claim to Ready: {took:?}");
        assert!(took < Duration::from_millis(500), "a claim took {took:?}");
        let claim = status.claimed_from.clone().expect("claimed from the pool");
        assert_eq!(claim.template, "shell");
        assert_eq!(status.expiry_reason.as_deref(), Some("idle"));
        // The container takes the sandbox's name; it keeps working.
        let uid8: String = obj
            .metadata
            .uid
            .chars()
            .filter(|c| *c != '-')
            .take(8)
            .collect();
        let name = format!("orcaops-default-agent-{uid8}-shell");
        let deadline = Instant::now() + WAIT;
        while h.runtime.inspect(&name).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "{name} never appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (code, out) = h.exec("agent", "shell", "echo hi").await;
        assert_eq!((code, out.as_str()), (0, "hi"));
        assert!(h.has_event(Kind::Sandbox, "agent", "Claimed").await);
        let pool = h
            .wait_pool("shell", "refilled to two", |s| {
                s.pool
                    .as_ref()
                    .is_some_and(|p| p.ready == 2 && p.claimed == 1)
            })
            .await
            .pool
            .unwrap();
        assert_eq!(pool.missed, 0);
        assert!(pool.last_claim_time.is_some());
        // Deleting the sandbox removes the claimed containers, never the pool's.
        h.store
            .delete(&ObjectKey::new(Kind::Sandbox, "default", "agent"))
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while h.runtime.inspect(&name).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{name} was not removed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(h.template_status("shell").await.pool.unwrap().ready, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_claims_is_served_and_the_pool_refills() {
    sandbox_test(|h| async move {
        h.create(Kind::SandboxTemplate, "shell", pooled_template(2, None))
            .await;
        h.wait_pool("shell", "two ready", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 2)
        })
        .await;
        let names: Vec<String> = (0..5).map(|i| format!("burst-{i}")).collect();
        futures::future::join_all(
            names
                .iter()
                .map(|n| h.create(Kind::Sandbox, n, json!({"templateRef": "shell"}))),
        )
        .await;
        let mut claimed = 0;
        for name in &names {
            let status = h.wait_phase(name, SandboxPhase::Ready).await;
            claimed += usize::from(status.claimed_from.is_some());
        }
        assert_eq!(claimed, 2, "two from the pool, three cold");
        let pool = h
            .wait_pool("shell", "refilled after the burst", |s| {
                s.pool
                    .as_ref()
                    .is_some_and(|p| p.ready == 2 && p.claimed == 2 && p.missed == 3)
            })
            .await;
        assert_eq!(
            pool.pool.unwrap().desired,
            2,
            "no maxSize: the pool does not grow"
        );
        assert!(
            h.has_event(Kind::SandboxTemplate, "shell", "PoolEmpty")
                .await
        );
        assert!(
            h.has_event(Kind::SandboxTemplate, "shell", "Refilling")
                .await
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_grows_a_pool_with_room_to_grow() {
    sandbox_test(|h| async move {
        h.create(Kind::SandboxTemplate, "shell", pooled_template(1, Some(4)))
            .await;
        h.wait_pool("shell", "one ready", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 1)
        })
        .await;
        for i in 0..3 {
            h.create(
                Kind::Sandbox,
                &format!("g-{i}"),
                json!({"templateRef": "shell"}),
            )
            .await;
        }
        for i in 0..3 {
            h.wait_phase(&format!("g-{i}"), SandboxPhase::Ready).await;
        }
        h.wait_pool("shell", "grown to four ready", |s| {
            s.pool
                .as_ref()
                .is_some_and(|p| p.desired == 4 && p.ready == 4)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_controller_adopts_what_runs_and_changes_nothing() {
    sandbox_test(|mut h| async move {
        h.create(
            Kind::Sandbox,
            "steady",
            json!({"idleTimeoutSeconds": 600, "services": [web_service(), idle_service("shell")]}),
        )
        .await;
        h.create(Kind::SandboxTemplate, "pool", pooled_template(1, None))
            .await;
        h.wait_phase("steady", SandboxPhase::Ready).await;
        h.wait_pool("pool", "one ready", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 1)
        })
        .await;
        // Let the status settle (the first write after Ready adds the Expiring condition).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = h.get(Kind::Sandbox, "steady").await.unwrap();
        let web = h.container("steady", "web").await.id;
        let shell = h.container("steady", "shell").await.id;
        let instance = h.store.instance_id().to_string();
        let pool_selector = [
            (keys::LABEL_INSTANCE, instance.as_str()),
            (keys::LABEL_POOL, "pool"),
        ];
        let pooled: Vec<String> = h
            .runtime
            .list(&pool_selector)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(pooled.len(), 1);

        h.stop_controllers().await;
        let h = Harness::start_controllers(&h.store, &h.runtime, &h.stop);
        tokio::time::sleep(Duration::from_secs(2)).await;

        let after = h.get(Kind::Sandbox, "steady").await.unwrap();
        assert_eq!(
            after.metadata.resource_version, before.metadata.resource_version,
            "nothing changed, so nothing was written: {:#?} -> {:#?}",
            before.status, after.status
        );
        assert_eq!(h.container("steady", "web").await.id, web);
        assert_eq!(h.container("steady", "shell").await.id, shell);
        let pooled_after: Vec<String> = h
            .runtime
            .list(&pool_selector)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(
            pooled_after, pooled,
            "the pooled sandbox is adopted, not made again"
        );
        // It is claimable again.
        h.wait_pool("pool", "one ready after the restart", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 1)
        })
        .await;
        h.create(Kind::Sandbox, "late", json!({"templateRef": "pool"}))
            .await;
        let status = h.wait_phase("late", SandboxPhase::Ready).await;
        assert!(status.claimed_from.is_some());
        // And a killed service is still watched.
        let killed = std::process::Command::new("docker")
            .args(["kill", &shell])
            .output()
            .unwrap();
        assert!(killed.status.success());
        h.wait_sandbox("steady", "a restart after adoption", |s| {
            s.services
                .iter()
                .any(|x| x.name == "shell" && x.restarts == 1)
        })
        .await;
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_take_milliseconds_and_cold_starts_little_more_than_docker() {
    sandbox_test(|h| async move {
        // Cold: create to Ready, against `docker run -d` of the same container.
        let (mut ours, mut docker) = (Vec::new(), Vec::new());
        for i in 0..5 {
            let name = format!("cold-{i}");
            let (took, _) = create_until_ready(
                &h,
                &name,
                json!({"services": [{"name": "shell", "image": IMAGE, "command": ["sleep", "infinity"]}]}),
            )
            .await;
            ours.push(took);
            let baseline = format!("orcaops-test-baseline-{}-{i}", h.store.instance_id());
            let started = Instant::now();
            let out = std::process::Command::new("docker")
                .args(["run", "-d", "--network", "none", "--label"])
                .arg(format!("{}={}", keys::LABEL_INSTANCE, h.store.instance_id()))
                .args(["--name", &baseline, IMAGE, "sleep", "infinity"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            docker.push(started.elapsed());
        }
        let (cold, run) = (median(ours), median(docker));
        println!("cold create-to-Ready p50 {cold:?}; docker run -d p50 {run:?}");
        assert!(
            cold < run * 2 + Duration::from_millis(200),
            "a cold start took {cold:?} against {run:?} for docker run -d"
        );

        // Warm: each claim made with the pool full.
        h.create(Kind::SandboxTemplate, "quick", pooled_template(3, None))
            .await;
        let mut claims = Vec::new();
        for i in 0..10 {
            h.wait_pool("quick", "a full pool", |s| {
                s.pool.as_ref().is_some_and(|p| p.ready == 3 && p.claimed == i)
            })
            .await;
            let (took, status) =
                create_until_ready(&h, &format!("claim-{i}"), json!({"templateRef": "quick"}))
                    .await;
            assert!(status.claimed_from.is_some(), "claim-{i} started cold");
            claims.push(took);
        }
        let p50 = median(claims.clone());
        println!("claim-to-Ready p50 {p50:?}, all {claims:?}");
        assert!(p50 < Duration::from_millis(50), "claims took {claims:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_a_sandbox_deleted_while_orcaops_was_down_left_is_removed_at_start() {
    sandbox_test(|mut h| async move {
        let mut shell = idle_service("shell");
        shell["volumes"] = json!([{"name": "data", "mountPath": "/data"}]);
        let obj = h
            .create(
                Kind::Sandbox,
                "orphan",
                json!({"network": "private", "services": [shell]}),
            )
            .await;
        h.wait_phase("orphan", SandboxPhase::Ready).await;
        h.stop_controllers().await;
        h.store
            .delete(&ObjectKey::new(Kind::Sandbox, "default", "orphan"))
            .await
            .unwrap();
        assert_eq!(h.owned(&obj.metadata.uid).await, (1, 1, 1));
        let h = Harness::start_controllers(&h.store, &h.runtime, &h.stop);
        let deadline = Instant::now() + WAIT;
        loop {
            let owned = h.owned(&obj.metadata.uid).await;
            if owned == (0, 0, 0) {
                break;
            }
            assert!(Instant::now() < deadline, "left behind: {owned:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_template_change_replaces_its_pool_and_updates_claimed_sandboxes() {
    sandbox_test(|h| async move {
        let mut client = idle_service("client");
        client["volumes"] = json!([{"name": "work", "mountPath": "/work"}]);
        let template = json!({
            "network": "private",
            "services": [web_service(), client],
            "warmPool": {"size": 1},
        });
        h.create(Kind::SandboxTemplate, "dev", template.clone())
            .await;
        h.wait_pool("dev", "one ready", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 1)
        })
        .await;
        let slot_selector = |h: &Harness| {
            let instance = h.store.instance_id().to_string();
            let runtime = h.runtime.clone();
            async move {
                let mut names: Vec<String> = runtime
                    .list(&[
                        (keys::LABEL_INSTANCE, instance.as_str()),
                        (keys::LABEL_POOL, "dev"),
                    ])
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|c| c.name.starts_with("orcaops-pool-"))
                    .map(|c| c.name)
                    .collect();
                names.sort();
                names
            }
        };
        let obj = h
            .create(Kind::Sandbox, "dev-1", json!({"templateRef": "dev"}))
            .await;
        let status = h.wait_phase("dev-1", SandboxPhase::Ready).await;
        let claim = status.claimed_from.clone().expect("claimed");
        let network = status.network_name.clone().expect("a private network");
        assert_eq!(network, format!("orcaops-pool-default-dev-{}", claim.slot));
        let (code, out) = h
            .exec(
                "dev-1",
                "client",
                "echo kept > /work/f && wget -q -O - http://web:8080/index.html",
            )
            .await;
        assert_eq!((code, out.as_str()), (0, "hello"));
        h.wait_pool("dev", "refilled", |s| {
            s.pool
                .as_ref()
                .is_some_and(|p| p.ready == 1 && p.claimed == 1)
        })
        .await;
        let old_slot = slot_selector(&h).await;
        let old_client = h.container("dev-1", "client").await.id;

        // Change the client: the pool is made again, and the claimed sandbox follows
        // (its client container is made again, on the same network and volume).
        let mut changed = template.clone();
        changed["services"][1]["env"] = json!([{"name": "VERSION", "value": "2"}]);
        h.edit(Kind::SandboxTemplate, "dev", |o| o.spec = changed)
            .await;
        let deadline = Instant::now() + WAIT;
        loop {
            let now = slot_selector(&h).await;
            let ready = h
                .template_status("dev")
                .await
                .pool
                .is_some_and(|p| p.ready == 1);
            if ready && !now.is_empty() && now.iter().all(|n| !old_slot.contains(n)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the pool was not replaced: {old_slot:?} -> {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = h
            .wait_sandbox("dev-1", "the client made again", |s| {
                s.phase == Some(SandboxPhase::Ready)
            })
            .await;
        let deadline = Instant::now() + WAIT;
        while h
            .container_id("dev-1", "client")
            .await
            .is_none_or(|id| id == old_client)
        {
            assert!(Instant::now() < deadline, "the client was not made again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        h.wait_phase("dev-1", SandboxPhase::Ready).await;
        assert_eq!(status.network_name.as_deref(), Some(network.as_str()));
        let (code, out) = h
            .exec(
                "dev-1",
                "client",
                "echo $VERSION; cat /work/f; wget -q -O - http://web:8080/index.html",
            )
            .await;
        assert_eq!((code, out.as_str()), (0, "2\nkept\nhello"));
        assert!(h.has_event(Kind::Sandbox, "dev-1", "ServiceUpdated").await);

        // Deleting it removes the slot's network and volume it used.
        h.store
            .delete(&ObjectKey::new(Kind::Sandbox, "default", "dev-1"))
            .await
            .unwrap();
        let instance = h.store.instance_id().to_string();
        let slot = [
            (keys::LABEL_INSTANCE, instance.as_str()),
            (keys::LABEL_SLOT, claim.slot.as_str()),
        ];
        let deadline = Instant::now() + WAIT;
        loop {
            let left = (
                h.runtime.list(&slot).await.unwrap().len(),
                h.runtime.list_networks(&slot).await.unwrap().len(),
                h.runtime.list_volumes(&slot).await.unwrap().len(),
            );
            if left == (0, 0, 0) {
                break;
            }
            assert!(Instant::now() < deadline, "left behind: {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(h.owned(&obj.metadata.uid).await, (0, 0, 0));
    })
    .await;
}
