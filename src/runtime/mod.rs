//! Runtimes run containers. The Job controller holds a [`JobRuntime`]: local mode's
//! [`DockerRuntime`], or cluster mode's [`PodRuntime`].
//!
//! A Job attempt is one container whose main process is the step runner
//! ([`runner`]): a generated `/bin/sh` script that runs the steps in order and
//! prints markers around each. Docker keeps the container's output, so after a
//! crash the controller re-reads it and knows exactly which steps ran.
//!
//! Cluster mode runs the same attempt as one pod; [`pod`] builds it (and its
//! NetworkPolicy) from the Job.

mod artifact;
pub mod docker;
pub mod job;
mod log_lines;
pub mod names;
pub mod pod;
pub mod runner;
pub mod sandbox;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub use docker::DockerRuntime;
pub use job::{AttemptRequest, JobRuntime, LogLines};
pub use pod::PodRuntime;

#[derive(thiserror::Error, Debug)]
pub enum RuntimeError {
    #[error(
        "cannot reach the Docker daemon: {message}. Start it (scripts/setup.sh does) or set DOCKER_HOST"
    )]
    Unreachable { message: String },
    /// A Docker call got no answer within the call timeout (`orcaops serve --docker-timeout`).
    #[error(
        "the Docker daemon did not answer {call} within {after:?}; it may be overloaded or hung (does `docker info` answer?)"
    )]
    Timeout {
        call: &'static str,
        after: std::time::Duration,
    },
    /// The server runs as many containers as it may (`orcaops serve --max-containers`).
    /// `owner` (the uid the container was for) waits in line behind `ahead` others.
    #[error(
        "{in_use} of {limit} containers in use on this server; it starts when one ends; raise --max-containers to allow more"
    )]
    ContainerLimit {
        in_use: usize,
        limit: usize,
        owner: String,
        ahead: usize,
    },
    #[error("image \"{image}\" is not available: {reason}")]
    ImageUnavailable { image: String, reason: String },
    #[error("container {container} not found")]
    ContainerNotFound { container: String },
    #[error("path {path} not found in container {container}")]
    PathNotFound { container: String, path: String },
    #[error(
        "container {container} is not running: start the sandbox (spec.state: Running) and try again"
    )]
    ContainerNotRunning { container: String },
    #[error(
        "{path} in container {container} is {size} bytes, over the {limit}-byte limit: download it as an archive instead"
    )]
    TooLarge {
        container: String,
        path: String,
        size: u64,
        limit: u64,
    },
    #[error("{path} in container {container} is not a regular file: download it as an archive")]
    NotAFile { container: String, path: String },
    /// An artifact over its size limit: `size` is what was read before giving up (at
    /// least `limit + 1`), or the size the container reported.
    #[error("{path} is over the {limit}-byte limit ({size} bytes or more)")]
    ArtifactTooLarge { path: String, size: u64, limit: u64 },
    /// An artifact path that is neither a regular file nor a directory.
    #[error("{path} is a {kind}, not a regular file or a directory")]
    NotRegular { path: String, kind: String },
    #[error("{path:?} is not a usable path in a container: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error(
        "cannot see the processes of container {container} from this host ({reason}): the activity check reads /proc, so orcaops must run beside the Docker daemon, in its PID namespace"
    )]
    ProcessesUnreadable { container: String, reason: String },
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The Kubernetes API refused a request of the pod runtime, or could not be reached.
    #[error("{}", crate::kubeapi::describe(.0))]
    Kube(#[source] kube::Error),
    /// What this runtime cannot do (yet): `what` names it, `instead` what to use.
    #[error("{what} is not available here: {instead}")]
    Unsupported {
        what: &'static str,
        instead: &'static str,
    },
    /// A service of a Job attempt did not become ready, so the steps never started.
    #[error("service \"{service}\" did not become ready: {reason}")]
    ServiceNotReady { service: String, reason: String },
    /// A command run in a pod (artifact copy, release) failed.
    #[error("exec of {command:?} in pod {pod} failed: {message}")]
    Exec {
        pod: String,
        command: String,
        message: String,
    },
}

impl RuntimeError {
    /// The runtime did not answer (it is down, hung or overloaded): what failed will be
    /// retried, with backoff, and nothing about the object itself is wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            RuntimeError::Unreachable { .. } | RuntimeError::Timeout { .. }
        )
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    None,
    Bridge,
    /// A user-defined network (a Job attempt's own, shared with its services).
    Attached(String),
}

/// Everything needed to create one container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// The full command (entrypoint is cleared), e.g. `["/bin/sh", "-c", script]`.
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub network: NetworkMode,
    pub pids_limit: i64,
    /// `uid` or `uid:gid`; None keeps the image's user.
    pub user: Option<String>,
    /// Mount the image read-only, with a tmpfs at `/tmp` so that shells still work.
    pub read_only_root: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited {
        code: i64,
    },
    /// Any other Docker state (paused, restarting, removing, dead).
    Other(String),
    /// It never started and the runtime will not get it going by itself: on a cluster, a
    /// pod whose image cannot be pulled (`ErrImagePull`, `ImagePullBackOff`,
    /// `InvalidImageName`) or whose container the kubelet refuses to create
    /// (`CreateContainerConfigError`). `reason` is the kubelet's, with its message. Docker
    /// never reports it: there the pull or the create fails in the call itself.
    CannotStart {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The image it runs, as the runtime identifies it (Docker's image id `sha256:…`,
    /// a pod's `imageID`); None when not known (as just after a start).
    pub image_id: Option<String>,
}

impl ContainerInfo {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of container output, with Docker's timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub stream: LogStream,
    pub timestamp: DateTime<Utc>,
    /// The line without its trailing newline (lossy UTF-8).
    pub text: String,
}

/// An artifact copied out of a container.
#[derive(Clone, Debug, PartialEq)]
pub struct CopiedArtifact {
    /// The stored file: the file itself, or a tar of a directory.
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    pub is_dir: bool,
    /// Entries of a directory that were left out, as `path (kind)`: only regular files,
    /// directories, and links that stay inside the directory are kept.
    pub skipped: Vec<String>,
}
