//! The Docker runtime (bollard).
//!
//! Every call is idempotent where the controller needs it to be: creating a
//! container that exists adopts it, stopping or removing one that is gone
//! succeeds. Containers are never auto-removed: the controller removes them
//! after it has saved their logs and artifacts.

pub mod attempt;
mod gate;
pub mod job_services;
mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::PathStatResponse;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HostConfig,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use chrono::{DateTime, Datelike, Utc};
use futures::{Stream, StreamExt, TryStreamExt};

pub use gate::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_CALLS, DEFAULT_MAX_CONTAINERS, DockerLimits, Health,
};
use gate::{Gate, Lane};

use super::artifact::store_archive;
use super::log_lines;
use super::{
    ContainerInfo, ContainerSpec, ContainerState, CopiedArtifact, LogLine, NetworkMode, Result,
    RuntimeError,
};

/// How long connecting (version negotiation and ping) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Go's `os.ModeDir` and `os.ModeSymlink`, as Docker reports them in a path stat.
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;
/// Go's other file type bits: what an artifact path must not be.
const GO_MODE_KINDS: [(u32, &str); 5] = [
    (1 << 26, "device"),
    (1 << 25, "FIFO"),
    (1 << 24, "socket"),
    (1 << 21, "character device"),
    (1 << 19, "special file"),
];

/// What a path of Docker's stat is when it is neither a file nor a directory.
fn irregular_kind(file_mode: u32) -> Option<&'static str> {
    GO_MODE_KINDS
        .iter()
        .find(|(bit, _)| file_mode & bit != 0)
        .map(|(_, kind)| *kind)
}
/// Symlinks followed by `copy_out` before giving up (a loop, most likely).
const MAX_SYMLINK_HOPS: usize = 8;

/// Runs containers on the local Docker daemon. Clones share one client (one pool of
/// connections) and one [`gate`](self::gate): its call limit, deadlines, health and
/// container count.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    gate: Arc<Gate>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("limits", &self.gate.limits())
            .finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects with local defaults (`DOCKER_HOST` honoured), negotiates the
    /// API version and pings; any failure is [`RuntimeError::Unreachable`].
    pub async fn connect() -> Result<Self> {
        Self::connect_with(DockerLimits::default()).await
    }

    /// Like [`DockerRuntime::connect`], sparing the daemon as `limits` say.
    pub async fn connect_with(limits: DockerLimits) -> Result<Self> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        Self::connect_to_with(&host, limits).await
    }

    /// Like [`DockerRuntime::connect`], to the daemon at `host`
    /// (`unix://...`, `tcp://...`).
    pub async fn connect_to(host: &str) -> Result<Self> {
        Self::connect_to_with(host, DockerLimits::default()).await
    }

    /// Like [`DockerRuntime::connect_to`], sparing the daemon as `limits` say.
    pub async fn connect_to_with(host: &str, limits: DockerLimits) -> Result<Self> {
        let unreachable = |message: String| RuntimeError::Unreachable {
            message: format!("{host}: {message}"),
        };
        let docker = Docker::connect_with_host(host).map_err(|e| unreachable(e.to_string()))?;
        let connect = async {
            // bollard 0.21 speaks API 1.53 by default; Debian's Docker 20.10 speaks 1.41.
            let docker = docker.negotiate_version().await?;
            docker.ping().await?;
            Ok::<_, BollardError>(docker)
        };
        let within = CONNECT_TIMEOUT.min(limits.call_timeout);
        let docker = tokio::time::timeout(within, connect)
            .await
            .map_err(|_| unreachable(format!("no answer within {within:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self {
            docker,
            gate: Arc::new(Gate::new(limits)),
        })
    }

    /// Ok while the daemon answers: a ping within the call timeout, and no call has
    /// timed out or lost its connection since the last one that was answered (a daemon
    /// can answer pings while its creates hang).
    pub async fn ping(&self) -> Result<()> {
        self.gate.probe("ping", self.docker.ping()).await?;
        match self.gate.health() {
            Health::Answering => Ok(()),
            Health::Unavailable { since, error } => {
                let (running, waiting) = self.gate.load();
                Err(RuntimeError::Unreachable {
                    message: format!(
                        "calls fail since {} ({running} running, {waiting} waiting): {error}",
                        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                })
            }
        }
    }

    /// What the runtime last learned of the daemon.
    pub fn health(&self) -> Health {
        self.gate.health()
    }

    /// When the daemon last went away, if a container that ended at `ended` most likely
    /// ended with it: stopping a daemon stops its containers, and a daemon killed and
    /// started again stops the containers it finds.
    pub fn went_away_around(&self, ended: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.gate.went_away_around(ended)
    }

    /// How long the calls to the daemon take, by operation, for `/metrics`.
    pub fn call_latency(&self) -> crate::metrics::CallLatency {
        self.gate.latency()
    }

    /// How it spares the daemon.
    pub fn limits(&self) -> DockerLimits {
        self.gate.limits()
    }

    /// `(in use, limit)` of the server's containers.
    pub fn container_slots(&self) -> (usize, usize) {
        self.gate.containers()
    }

    /// The owners (object uids, or container names) that may take the container slots
    /// free now, first in line first: the ones to wake when [`DockerRuntime::room`] changes.
    pub fn next_in_line(&self) -> Vec<String> {
        self.gate.next_in_line()
    }

    /// Changes whenever a container slot frees up.
    pub fn room(&self) -> tokio::sync::watch::Receiver<u64> {
        self.gate.room()
    }

    /// Counts again, from Docker's list, the running containers carrying all `labels`
    /// (this server's instance label): what the limit counts is what runs, even after a
    /// restart or a container removed by hand.
    pub async fn recount_containers(&self, labels: &[(&str, &str)]) -> Result<usize> {
        let summaries = self.summaries(labels, false).await?;
        let alive: std::collections::HashSet<String> =
            summaries.into_iter().filter_map(|s| s.id).collect();
        let count = alive.len();
        self.gate.recount(alive);
        Ok(count)
    }

    /// One Docker call through the gate: see [`Gate::call`].
    async fn call<T>(
        &self,
        name: &'static str,
        lane: Lane,
        call: impl std::future::Future<Output = std::result::Result<T, BollardError>>,
    ) -> Result<std::result::Result<T, BollardError>> {
        self.gate.call(name, lane, call).await
    }

    /// The daemon's version and the API version both ends speak after negotiation
    /// (`orcaops doctor`).
    pub async fn daemon_version(&self) -> Result<(String, String)> {
        let version = self
            .call("version", Lane::Read, self.docker.version())
            .await??;
        Ok((
            version.version.unwrap_or_else(|| "unknown".into()),
            self.docker.client_version().to_string(),
        ))
    }

    /// Whether `image` is on this machine, without pulling it (`orcaops doctor`).
    pub async fn image_present(&self, image: &str) -> Result<bool> {
        match self
            .call(
                "inspect_image",
                Lane::Read,
                self.docker.inspect_image(image),
            )
            .await?
        {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Present locally: Ok after one inspect. Otherwise pulls it; a failed
    /// pull is [`RuntimeError::ImageUnavailable`] with Docker's reason.
    pub async fn ensure_image(&self, image: &str) -> Result<()> {
        if self.image_present(image).await? {
            return Ok(());
        }
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let unavailable = |e: BollardError| RuntimeError::ImageUnavailable {
            image: image.to_string(),
            reason: docker_message(&e),
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(progress) = pull.next().await {
            progress.map_err(unavailable)?;
        }
        // A pull can end without an error and still leave no image (e.g. a
        // platform mismatch); only an inspect says for sure.
        self.call(
            "inspect_image",
            Lane::Read,
            self.docker.inspect_image(image),
        )
        .await?
        .map_err(unavailable)?;
        Ok(())
    }

    /// Creates and starts the container. Idempotent: if a container named
    /// `spec.name` exists, it is adopted, started only if it was merely
    /// created (starting an exited one would run its steps again), and
    /// returned. Never creates a second one.
    ///
    /// Above the server's container limit it is refused with
    /// [`RuntimeError::ContainerLimit`] before Docker is asked anything.
    pub async fn create_and_start(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        let slot = self.gate.reserve(owner_of(&spec.name, &spec.labels))?;
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let id = match self
            .call(
                "create_container",
                Lane::Gated,
                self.docker
                    .create_container(Some(options), container_body(spec)),
            )
            .await?
        {
            Ok(created) => created.id,
            Err(e) if status(&e) == Some(409) => {
                let existing = self.inspect_required(&spec.name).await?;
                if existing.state != ContainerState::Created {
                    if existing.state == ContainerState::Running {
                        slot.fill(&existing.id);
                    }
                    return Ok(existing);
                }
                existing.id
            }
            Err(e) if status(&e) == Some(404) => {
                return Err(RuntimeError::ImageUnavailable {
                    image: spec.image.clone(),
                    reason: docker_message(&e),
                });
            }
            Err(e) => return Err(e.into()),
        };
        match self
            .call(
                "start_container",
                Lane::Gated,
                self.docker.start_container(&id, None),
            )
            .await?
        {
            Ok(()) => {}
            // 304: someone else started it in between.
            Err(e) if status(&e) == Some(304) => {
                slot.fill(&id);
                return self.inspect_required(&id).await;
            }
            Err(e) => return Err(e.into()),
        }
        slot.fill(&id);
        // Just started: what we know is enough, and an inspect here would sit on the
        // critical path of every job.
        Ok(ContainerInfo {
            id,
            name: spec.name.clone(),
            labels: spec.labels.clone(),
            state: ContainerState::Running,
            started_at: Some(chrono::Utc::now()),
            finished_at: None,
            image_id: None,
        })
    }

    /// Docker's list of the containers having every label `key=value`: the running
    /// ones, or `all`.
    async fn summaries(
        &self,
        labels: &[(&str, &str)],
        all: bool,
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        let filters = label_filters(labels);
        let options = ListContainersOptionsBuilder::default()
            .all(all)
            .filters(&filters)
            .build();
        let summaries = self
            .call(
                "list_containers",
                Lane::Read,
                self.docker.list_containers(Some(options)),
            )
            .await??;
        Ok(summaries)
    }

    /// All containers (running or not) having every given label `key=value`.
    pub async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        let summaries = self.summaries(labels, true).await?;
        // The list omits exit codes and times; inspect each. One that is
        // removed in between is simply not listed.
        let inspected = futures::future::try_join_all(
            summaries
                .iter()
                .filter_map(|summary| summary.id.as_deref())
                .map(|id| self.inspect(id)),
        )
        .await?;
        Ok(inspected.into_iter().flatten().collect())
    }

    pub async fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>> {
        match self
            .call(
                "inspect_container",
                Lane::Read,
                self.docker.inspect_container(id_or_name, None),
            )
            .await?
        {
            Ok(response) => Ok(Some(container_info(response))),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the kernel killed the container for going over its memory limit. Gone: false.
    pub async fn oom_killed(&self, id: &str) -> Result<bool> {
        match self
            .call(
                "inspect_container",
                Lane::Read,
                self.docker.inspect_container(id, None),
            )
            .await?
        {
            Ok(response) => Ok(response
                .state
                .and_then(|state| state.oom_killed)
                .unwrap_or(false)),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn inspect_required(&self, id_or_name: &str) -> Result<ContainerInfo> {
        self.inspect(id_or_name)
            .await?
            .ok_or_else(|| RuntimeError::ContainerNotFound {
                container: id_or_name.to_string(),
            })
    }

    /// The container's output from the start, with Docker's timestamps, split
    /// into lines. With `follow` the stream goes on until the container
    /// stops, then ends.
    pub fn logs(
        &self,
        id: &str,
        follow: bool,
    ) -> impl Stream<Item = Result<LogLine>> + Send + 'static {
        log_lines::container_log(&self.docker, id, follow)
    }

    /// Waits for the container to stop and returns its exit code.
    pub async fn wait(&self, id: &str) -> Result<i64> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut responses = self.docker.wait_container(id, Some(options));
        let mut code = None;
        while let Some(response) = responses.next().await {
            match response {
                Ok(response) => code = Some(response.status_code),
                // bollard reports a non-zero exit as an error.
                Err(BollardError::DockerContainerWaitError { code: exit, .. }) => {
                    code = Some(exit);
                }
                Err(e) => {
                    return Err(not_found_as(e, || RuntimeError::ContainerNotFound {
                        container: id.to_string(),
                    }));
                }
            }
        }
        match code {
            Some(code) => Ok(code),
            // The daemon closed the stream without a status (it restarted, say).
            None => self
                .inspect_required(id)
                .await
                .and_then(|info| match info.state {
                    ContainerState::Exited { code } => Ok(code),
                    state => Err(RuntimeError::Io(std::io::Error::other(format!(
                        "wait on container {id} ended while it is {state:?}"
                    )))),
                }),
        }
    }

    /// Stops the container: SIGTERM, then SIGKILL after `grace_secs`.
    /// Already stopped or missing: Ok.
    pub async fn stop(&self, id: &str, grace_secs: u32) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(i32::try_from(grace_secs).unwrap_or(i32::MAX))
            .build();
        // Stopping waits out the grace period: the deadline allows for it.
        let result = self
            .gate
            .call_within(
                "stop_container",
                Duration::from_secs(u64::from(grace_secs)),
                self.docker.stop_container(id, Some(options)),
            )
            .await?;
        match result {
            Ok(()) => {}
            Err(e) if matches!(status(&e), Some(304 | 404)) => {}
            Err(e) => return Err(e.into()),
        }
        self.gate.ended(id);
        Ok(())
    }

    /// Force-removes the container with its anonymous volumes. Missing: Ok.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self
            .call(
                "remove_container",
                Lane::Gated,
                self.docker.remove_container(id, Some(options)),
            )
            .await?
        {
            Ok(()) => {}
            Err(e) if status(&e) == Some(404) => {}
            // "removal already in progress"
            Err(e) if status(&e) == Some(409) && docker_message(&e).contains("in progress") => {}
            Err(e) => return Err(e.into()),
        }
        self.gate.ended(id);
        Ok(())
    }

    /// Copies `path` out of a (possibly stopped) container into `dest_dir`: a
    /// regular file is stored as `dest_dir/<name>`, a directory as
    /// `dest_dir/<name>.tar`. Symlinks are followed. Returns the stored
    /// file's size and sha256. A missing path is [`RuntimeError::PathNotFound`];
    /// anything but a file or a directory is [`RuntimeError::NotRegular`] and never
    /// read (a FIFO would have no end); a file whose stat is over `limit` is refused
    /// before it is read, and the archive is counted against `limit` as it streams in.
    pub async fn copy_out(
        &self,
        id: &str,
        path: &str,
        dest_dir: &Path,
        name: &str,
        limit: u64,
    ) -> Result<CopiedArtifact> {
        let (resolved, stat) = self.stat_path(id, path).await?;
        let is_dir = stat.file_mode & GO_MODE_DIR != 0;
        if let Some(kind) = irregular_kind(stat.file_mode) {
            return Err(RuntimeError::NotRegular {
                path: path.to_string(),
                kind: kind.to_string(),
            });
        }
        let size = u64::try_from(stat.size).unwrap_or(0);
        if !is_dir && size > limit {
            return Err(RuntimeError::ArtifactTooLarge {
                path: path.to_string(),
                size,
                limit,
            });
        }
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(&resolved)
            .build();
        let archive = self
            .docker
            .download_from_container(id, Some(options))
            .map_err(RuntimeError::from);
        store_archive(archive, dest_dir, name, is_dir, limit)
            .await
            .map_err(|e| match e {
                RuntimeError::ArtifactTooLarge { size, limit, .. } => {
                    RuntimeError::ArtifactTooLarge {
                        path: path.to_string(),
                        size,
                        limit,
                    }
                }
                e => e,
            })
    }

    /// The path with its symlinks followed, and Docker's stat of what it points to.
    async fn stat_path(&self, id: &str, path: &str) -> Result<(String, PathStatResponse)> {
        let mut current = path.to_string();
        for _ in 0..=MAX_SYMLINK_HOPS {
            let options = ContainerArchiveInfoOptionsBuilder::default()
                .path(&current)
                .build();
            let stat = match self
                .call(
                    "get_container_archive_info",
                    Lane::Read,
                    self.docker.get_container_archive_info(id, Some(options)),
                )
                .await?
            {
                Ok(stat) => stat,
                Err(e) if status(&e) == Some(404) => {
                    return Err(self.missing_path_or_container(id, path).await);
                }
                Err(e) => return Err(e.into()),
            };
            if stat.file_mode & GO_MODE_SYMLINK == 0 {
                return Ok((current, stat));
            }
            let target = PathBuf::from(&stat.link_target);
            current = if target.is_absolute() {
                stat.link_target
            } else {
                let parent = Path::new(&current).parent().unwrap_or(Path::new("/"));
                parent.join(target).to_string_lossy().into_owned()
            };
        }
        Err(RuntimeError::PathNotFound {
            container: id.to_string(),
            path: format!("{path} (more than {MAX_SYMLINK_HOPS} symlinks)"),
        })
    }

    async fn missing_path_or_container(&self, id: &str, path: &str) -> RuntimeError {
        match self.inspect(id).await {
            Ok(Some(_)) => RuntimeError::PathNotFound {
                container: id.to_string(),
                path: path.to_string(),
            },
            Ok(None) => RuntimeError::ContainerNotFound {
                container: id.to_string(),
            },
            Err(e) => e,
        }
    }
}

/// The runner's own directory ([`super::runner::COLLECTION_DIR`]: the steps' output files),
/// writable by any user whatever the root filesystem; 1 MiB, so that a step writing
/// without end to `$ORCAOPS_OUTPUT` fills it rather than the memory limit. With a
/// read-only root, `/tmp` too: shells write here documents and scratch files there (its
/// pages count against the memory limit, so no size of its own).
fn tmpfs_mounts(read_only_root: bool) -> HashMap<String, String> {
    let mut mounts = HashMap::from([(
        super::runner::COLLECTION_DIR.to_string(),
        "rw,nosuid,nodev,noexec,size=1m,mode=1777".to_string(),
    )]);
    if read_only_root {
        mounts.insert("/tmp".to_string(), "rw,nosuid,nodev,mode=1777".to_string());
    }
    mounts
}

/// The create request: the spec plus hardened defaults.
fn container_body(spec: &ContainerSpec) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        // An empty (not absent) entrypoint clears the image's, so that
        // `command` is the whole command line.
        entrypoint: Some(Vec::new()),
        cmd: Some(spec.command.clone()),
        env: Some(
            spec.env
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
        ),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        host_config: Some(HostConfig {
            readonly_rootfs: spec.read_only_root.then_some(true),
            tmpfs: Some(tmpfs_mounts(spec.read_only_root)),
            ..hardened_host_config(
                spec.cpu_millis,
                spec.memory_bytes,
                spec.pids_limit,
                match &spec.network {
                    NetworkMode::None => "none",
                    NetworkMode::Bridge => "bridge",
                    NetworkMode::Attached(network) => network,
                },
            )
        }),
        ..Default::default()
    }
}

/// The host settings every orcaops container gets: limits, no capabilities, no
/// privilege escalation, a PID limit, an init that reaps zombies, and never
/// auto-removed (the controller removes containers once it has what it needs from
/// them).
pub(super) fn hardened_host_config(
    cpu_millis: Option<u64>,
    memory_bytes: Option<u64>,
    pids_limit: i64,
    network_mode: &str,
) -> HostConfig {
    HostConfig {
        nano_cpus: cpu_millis
            .map(|millis| i64::try_from(millis.saturating_mul(1_000_000)).unwrap_or(i64::MAX)),
        memory: Some(
            i64::try_from(memory_bytes.unwrap_or(attempt::DEFAULT_MEMORY_BYTES))
                .unwrap_or(i64::MAX),
        ),
        log_config: Some(attempt::log_config()),
        network_mode: Some(network_mode.to_string()),
        cap_drop: Some(vec!["ALL".to_string()]),
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        pids_limit: Some(pids_limit),
        // Docker's init (tini) as PID 1 reaps the orphans execs and steps leave.
        init: Some(true),
        auto_remove: Some(false),
        ..Default::default()
    }
}

fn container_info(response: ContainerInspectResponse) -> ContainerInfo {
    let state = response.state.unwrap_or_default();
    let container_state = match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited {
            code: state.exit_code.unwrap_or_default(),
        },
        Some(other) => ContainerState::Other(other.to_string()),
        None => ContainerState::Other(String::new()),
    };
    let name = response.name.unwrap_or_default();
    let image_id = response.image.filter(|id| !id.is_empty());
    ContainerInfo {
        id: response.id.unwrap_or_default(),
        name: name.strip_prefix('/').unwrap_or(&name).to_string(),
        labels: response
            .config
            .and_then(|config| config.labels)
            .map(|labels| labels.into_iter().collect::<BTreeMap<_, _>>())
            .unwrap_or_default(),
        state: container_state,
        started_at: docker_time(state.started_at.as_deref()),
        finished_at: docker_time(state.finished_at.as_deref()),
        image_id,
    }
}

/// Docker writes Go's zero time ("0001-01-01T00:00:00Z") for "never".
fn docker_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    let time = DateTime::parse_from_rfc3339(text?)
        .ok()?
        .with_timezone(&Utc);
    (time.year() > 1).then_some(time)
}

/// Whom a container is for, as the waiting line for container slots knows it: the uid
/// of its object, or (a warm-pool slot) its own name.
fn owner_of<'a>(name: &'a str, labels: &'a BTreeMap<String, String>) -> &'a str {
    labels
        .get(crate::resources::keys::LABEL_UID)
        .map_or(name, String::as_str)
}

fn status(error: &BollardError) -> Option<u16> {
    match error {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Docker's own words, without bollard's wrapping.
fn docker_message(error: &BollardError) -> String {
    match error {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

pub(super) fn not_found_as(
    error: BollardError,
    not_found: impl FnOnce() -> RuntimeError,
) -> RuntimeError {
    if status(&error) == Some(404) {
        not_found()
    } else {
        error.into()
    }
}

/// Docker's `label` filter: every `key=value` must match.
pub(super) fn label_filters(labels: &[(&str, &str)]) -> HashMap<&'static str, Vec<String>> {
    HashMap::from([(
        "label",
        labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect(),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerState as DockerState;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "orcaops-test".into(),
            image: "busybox:latest".into(),
            command: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec![("A".into(), "1=2".into())],
            working_dir: Some("/tmp".into()),
            labels: BTreeMap::from([("orcaops.dev/kind".into(), "Job".into())]),
            cpu_millis: Some(500),
            memory_bytes: Some(64 << 20),
            network: NetworkMode::None,
            pids_limit: 128,
            user: None,
            read_only_root: false,
        }
    }

    #[test]
    fn container_body_applies_the_spec_and_hardened_defaults() {
        let body = container_body(&spec());
        assert_eq!(body.entrypoint, Some(vec![]));
        assert_eq!(body.env, Some(vec!["A=1=2".to_string()]));
        assert_eq!(body.working_dir.as_deref(), Some("/tmp"));
        let host = body.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert_eq!(host.pids_limit, Some(128));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.auto_remove, Some(false));
        assert_eq!(body.user, None);
        assert_eq!(host.readonly_rootfs, None);
        let tmpfs = host.tmpfs.unwrap();
        assert_eq!(tmpfs.keys().collect::<Vec<_>>(), ["/.orcaops"]);
        assert!(
            tmpfs["/.orcaops"].contains("mode=1777") && tmpfs["/.orcaops"].contains("size=1m"),
            "the runner's directory, writable by any user and small"
        );
    }

    #[test]
    fn container_body_sets_the_user_and_a_read_only_root_with_a_writable_tmp() {
        let body = container_body(&ContainerSpec {
            user: Some("1000:100".into()),
            read_only_root: true,
            ..spec()
        });
        assert_eq!(body.user.as_deref(), Some("1000:100"));
        let host = body.host_config.unwrap();
        assert_eq!(host.readonly_rootfs, Some(true));
        let tmpfs = host.tmpfs.unwrap();
        let mut paths: Vec<_> = tmpfs.keys().collect();
        paths.sort();
        assert_eq!(paths, ["/.orcaops", "/tmp"]);
        assert!(tmpfs["/tmp"].contains("mode=1777"), "writable by any user");
    }

    #[test]
    fn zero_time_means_never() {
        assert_eq!(docker_time(Some("0001-01-01T00:00:00Z")), None);
        assert_eq!(docker_time(None), None);
        assert_eq!(
            docker_time(Some("2026-01-02T03:04:05.123456789Z"))
                .unwrap()
                .timestamp_subsec_nanos(),
            123_456_789
        );
    }

    #[test]
    fn inspect_response_becomes_container_info() {
        let response = ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/job-1".into()),
            state: Some(DockerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(3),
                started_at: Some("2026-01-02T03:04:05Z".into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let info = container_info(response);
        assert_eq!(info.name, "job-1");
        assert_eq!(info.state, ContainerState::Exited { code: 3 });
        assert!(info.started_at.is_some());
        assert_eq!(info.finished_at, None);
    }
}
