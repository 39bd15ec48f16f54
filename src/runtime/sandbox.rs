//! What a runtime offers Sandboxes: service containers on networks with volumes,
//! exec (collected, or streamed with stdin), file transfer, health probes, and the
//! activity check that keeps a busy sandbox from idling out.
//!
//! [`DockerRuntime`](super::DockerRuntime) implements these in `docker/sandbox.rs`.

pub mod names;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::io::AsyncWrite;

use super::Result;

/// The environment variable every exec'd process carries (value: the exec id).
/// Children inherit it, so a background job started by an exec is recognised by it.
pub const EXEC_MARKER_ENV: &str = "ORCAOPS_EXEC";

/// The exit code of an exec that ran out of time (as coreutils' `timeout` says it).
pub const TIMED_OUT_EXIT_CODE: i64 = 124;

/// The environment variable of the execs orcaops runs itself (health probes and
/// housekeeping), so that they are never counted as activity.
pub const PROBE_MARKER_ENV: &str = "ORCAOPS_PROBE";

/// How a service container is attached to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceNetwork {
    /// No network at all.
    None,
    /// Docker's default bridge, with outside access.
    Bridge,
    /// A network of the sandbox's own (internal: no outside access); the service is
    /// reachable on it under `aliases` (its service name).
    Private {
        network: String,
        aliases: Vec<String>,
    },
}

/// Everything needed to create one service container of a sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceContainerSpec {
    pub name: String,
    pub image: String,
    /// The full command; empty keeps the image's entrypoint and command.
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub network: ServiceNetwork,
    /// Container ports published on 127.0.0.1 at ports Docker picks.
    pub ports: Vec<u16>,
    /// (Docker volume name, mount path).
    pub volumes: Vec<(String, String)>,
    pub pids_limit: i64,
}

/// A published port: where a container port is reachable on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedPort {
    pub container_port: u16,
    pub host_ip: String,
    pub host_port: u16,
}

/// One command to run inside a running container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// Bytes written to the command's stdin, then stdin is closed. Ignored by
    /// [`ExecSession`]s, whose caller writes stdin itself.
    pub stdin: Option<Bytes>,
    /// Killed after this long; the result then says `timed_out`.
    pub timeout: Option<Duration>,
    /// Allocate a terminal (stdout and stderr then arrive merged, as stdout).
    pub tty: bool,
}

/// The collected result of an exec.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecOutput {
    /// The command's exit code; 124 when it timed out, 126/127 when it could not run.
    pub exit_code: i64,
    pub stdout: Bytes,
    pub stderr: Bytes,
    pub timed_out: bool,
    pub duration: Duration,
}

/// A chunk of an exec's output, as it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecChunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

pub type ExecOutputStream = Pin<Box<dyn Stream<Item = Result<ExecChunk>> + Send>>;

/// A started exec: write its stdin, read its output; its exit code comes from
/// [`DockerRuntime::exec_exit_code`](super::DockerRuntime) once `output` ends.
pub struct ExecSession {
    pub id: String,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    pub output: ExecOutputStream,
}

/// A health probe, resolved from a service's `healthCheck`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Exec(Vec<String>),
    Tcp { port: u16 },
    Http { port: u16, path: String },
}

/// What a path in a container is, for downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    File,
    Directory,
}

/// Output of a download as it is read.
pub type ByteStream = futures::stream::BoxStream<'static, Result<Bytes>>;

/// What the HTTP API does inside running sandboxes, whatever runs them: exec, file
/// transfer, and the list of what runs. Docker does all of it; a runtime that cannot do
/// one of these answers [`RuntimeError::Unsupported`](super::RuntimeError::Unsupported),
/// which the API turns into a 501 saying what to use instead. `container` is what the
/// Sandbox's status names (a Docker container, or `namespace/pod/service` on a cluster).
#[async_trait::async_trait]
pub trait SandboxIo: Send + Sync + 'static {
    /// Runs a command to its end and collects its output.
    async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecOutput>;
    /// Starts a command whose stdin the caller writes and whose output arrives as it
    /// is written; its exit code is [`SandboxIo::exec_exit_code`] once the output ends.
    async fn exec_session(&self, container: &str, request: &ExecRequest) -> Result<ExecSession>;
    /// The exit code of a session's command, None while it still runs.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>>;
    /// Resizes a session's terminal.
    async fn exec_resize(&self, exec_id: &str, width: u16, height: u16) -> Result<()>;
    /// Writes one file with `mode`, creating missing parent directories.
    async fn write_file(&self, container: &str, path: &str, data: Bytes, mode: u32) -> Result<()>;
    /// Extracts a tar into a directory, creating it when missing.
    async fn extract_tar(&self, container: &str, dir: &str, tar: Bytes) -> Result<()>;
    /// Whether a path is a file or a directory.
    async fn path_kind(&self, container: &str, path: &str) -> Result<PathKind>;
    /// Reads one regular file whole, refusing one over `max_bytes`.
    async fn read_file(&self, container: &str, path: &str, max_bytes: u64) -> Result<Bytes>;
    /// A path as a tar stream.
    async fn download_tar(&self, container: &str, path: &str) -> Result<ByteStream>;
    /// Whether the runtime answers (for `/readyz`). `Err` says what is wrong.
    async fn ping(&self) -> Result<()>;
    /// Every container (or pod) carrying all the labels `key=value`.
    async fn containers(&self, labels: &[(&str, &str)]) -> Result<Vec<super::ContainerInfo>>;
    /// A service container's output, stdout and stderr as they interleave: the last
    /// `tail` lines (everything when None) and, with `follow`, what it writes next,
    /// until it stops.
    async fn logs(&self, container: &str, follow: bool, tail: Option<usize>) -> Result<ByteStream>;
}
