//! Exec into a running container: collected ([`DockerRuntime::exec`]) or streamed
//! with stdin ([`DockerRuntime::exec_session`]).
//!
//! Every exec carries a marker in its environment (see [`procfs::Marker`]). A timeout
//! kills every process carrying the exec's marker, found through the host's `/proc`;
//! when that is not possible (a remote daemon), a small shell loop inside the container
//! does the same.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::{ResizeExecOptionsBuilder, TopOptionsBuilder};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::procfs::{self, Marker};
use crate::runtime::docker::gate::Lane;
use crate::runtime::docker::{DockerRuntime, docker_message, status};
use crate::runtime::sandbox::{
    EXEC_MARKER_ENV, ExecChunk, ExecOutput, ExecRequest, ExecSession, PROBE_MARKER_ENV,
    TIMED_OUT_EXIT_CODE,
};
use crate::runtime::{Result, RuntimeError};

/// How long a session's output waits, once it ends, for Docker to record the exit code.
const SESSION_EXIT_SETTLE: Duration = Duration::from_secs(2);
/// The first frame buffer; Docker sends frames of up to 32 KiB.
const OUTPUT_CAPACITY: usize = 64 * 1024;
/// How long the in-container kill (remote daemons only) may take.
const INSIDE_KILL_TIMEOUT: Duration = Duration::from_secs(5);

type RawOutput = Pin<Box<dyn Stream<Item = Result<LogOutput, BollardError>> + Send>>;

/// A started exec whose output is not read yet.
struct Attached {
    id: String,
    marker: Marker,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    output: RawOutput,
}

/// Output collected so far (kept outside the future that reads it, so a timeout
/// still has it).
#[derive(Default)]
struct Collected {
    stdout: BytesMut,
    stderr: BytesMut,
}

impl Collected {
    fn push(&mut self, item: LogOutput) {
        match item {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                self.stdout.extend_from_slice(&message)
            }
            LogOutput::StdErr { message } => self.stderr.extend_from_slice(&message),
            LogOutput::StdIn { .. } => {}
        }
    }

    fn finish(self, exit_code: i64, timed_out: bool, started: Instant) -> ExecOutput {
        let (mut stdout, mut stderr) = (self.stdout.freeze(), self.stderr.freeze());
        // When the command cannot start, Docker writes why on stdout; it belongs on stderr.
        if matches!(exit_code, 126 | 127)
            && stderr.is_empty()
            && stdout.starts_with(b"OCI runtime exec failed")
        {
            let message = String::from_utf8_lossy(&stdout);
            stderr = Bytes::from(format!("{}\n", message.trim_end()));
            stdout = Bytes::new();
        }
        ExecOutput {
            exit_code,
            stdout,
            stderr,
            timed_out,
            duration: started.elapsed(),
        }
    }
}

impl DockerRuntime {
    /// Runs a command to completion and collects its output (bytes, exactly).
    ///
    /// `request.stdin`, when given, is written and then closed, so the command sees
    /// end of file. When `request.timeout` passes, every process the exec started is
    /// killed and the result is exit code 124 with `timed_out` and the output so far.
    /// A command that cannot run is exit code 126 or 127 with Docker's reason on
    /// stderr. A missing container is [`RuntimeError::ContainerNotFound`], a stopped
    /// one [`RuntimeError::ContainerNotRunning`].
    pub async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecOutput> {
        self.run_exec(container, request, EXEC_MARKER_ENV).await
    }

    /// [`DockerRuntime::exec`] with the marker of the caller's choice: probes use
    /// [`PROBE_MARKER_ENV`] so they are not counted as activity.
    pub(super) async fn run_exec(
        &self,
        container: &str,
        request: &ExecRequest,
        marker: &'static str,
    ) -> Result<ExecOutput> {
        let started = Instant::now();
        let deadline = request
            .timeout
            .map(|timeout| tokio::time::Instant::now() + timeout);
        let Attached {
            id,
            marker,
            input,
            mut output,
        } = self
            .attach_exec(container, request, marker, request.stdin.is_some())
            .await?;
        let mut collected = Collected::default();
        let run = async {
            // Stdin is written while the output is read: a command that echoes its
            // input would otherwise block on a full pipe while we block writing.
            let write_stdin = write_and_close(input, request.stdin.clone());
            let read_output = async {
                while let Some(item) = output.next().await {
                    collected.push(item?);
                }
                Ok::<_, RuntimeError>(())
            };
            let ((), read) = futures::future::join(write_stdin, read_output).await;
            read?;
            // Unbounded, the wait always ends with a code.
            Ok::<_, RuntimeError>(self.wait_exec_exit(&id, None).await?.unwrap_or(126))
        };
        let exit_code = match deadline {
            None => Some(run.await?),
            Some(deadline) => tokio::time::timeout_at(deadline, run)
                .await
                .ok()
                .transpose()?,
        };
        match exit_code {
            Some(exit_code) => Ok(collected.finish(exit_code, false, started)),
            None => {
                if let Err(error) = self.kill_exec(container, &id, &marker).await {
                    tracing::warn!(%container, exec = %id, %error, "could not kill a timed-out exec");
                }
                Ok(collected.finish(TIMED_OUT_EXIT_CODE, true, started))
            }
        }
    }

    /// Starts a command with stdin attached and returns at once; see [`ExecSession`].
    /// The output stream ends once Docker knows the exit code, so
    /// [`DockerRuntime::exec_exit_code`] is `Some` right after it ends. A timeout in
    /// the request kills the exec's processes when it passes (its exit code is then
    /// 137, SIGKILL). `request.stdin` is ignored: the caller writes `input`.
    pub async fn exec_session(
        &self,
        container: &str,
        request: &ExecRequest,
    ) -> Result<ExecSession> {
        let Attached {
            id,
            marker,
            input,
            output,
        } = self
            .attach_exec(container, request, EXEC_MARKER_ENV, true)
            .await?;
        if let Some(timeout) = request.timeout {
            let (runtime, container, id, marker) =
                (self.clone(), container.to_string(), id.clone(), marker);
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if let Ok(None) = runtime.exec_exit_code(&id).await
                    && let Err(error) = runtime.kill_exec(&container, &id, &marker).await
                {
                    tracing::warn!(%container, exec = %id, %error, "could not kill a timed-out exec session");
                }
            });
        }
        let chunks = output.filter_map(|item| {
            futures::future::ready(match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok(ExecChunk::Stdout(message)))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(ExecChunk::Stderr(message))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(RuntimeError::from(e))),
            })
        });
        let (runtime, exec_id) = (self.clone(), id.clone());
        let settle = futures::stream::once(async move {
            // Best effort: the caller asks for the exit code itself.
            let _ = runtime
                .wait_exec_exit(&exec_id, Some(SESSION_EXIT_SETTLE))
                .await;
        })
        .filter_map(|()| futures::future::ready(None));
        Ok(ExecSession {
            id,
            input,
            output: Box::pin(chunks.chain(settle)),
        })
    }

    /// Docker's view of an exec: whether it runs, and its exit code once it ended.
    async fn inspect_exec(&self, exec_id: &str) -> Result<bollard::models::ExecInspectResponse> {
        let inspect = self
            .call(
                "inspect_exec",
                Lane::Read,
                self.docker.inspect_exec(exec_id),
            )
            .await??;
        Ok(inspect)
    }

    /// The exit code of a finished exec (`None` while it runs).
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let inspect = self.inspect_exec(exec_id).await?;
        Ok(if inspect.running == Some(true) {
            None
        } else {
            inspect.exit_code
        })
    }

    /// Resizes an exec's terminal (one started with `tty`).
    pub async fn exec_resize(&self, exec_id: &str, width: u16, height: u16) -> Result<()> {
        let options = ResizeExecOptionsBuilder::default()
            .w(i32::from(width))
            .h(i32::from(height))
            .build();
        Ok(self
            .call(
                "resize_exec",
                Lane::Read,
                self.docker.resize_exec(exec_id, options),
            )
            .await??)
    }

    /// Creates and starts an exec with its output (and, if asked, stdin) attached.
    async fn attach_exec(
        &self,
        container: &str,
        request: &ExecRequest,
        marker: &'static str,
        attach_stdin: bool,
    ) -> Result<Attached> {
        if request.command.is_empty() {
            return Err(RuntimeError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an exec needs a command (an empty command was given)",
            )));
        }
        let marker = Marker::new(marker);
        let env = request
            .env
            .iter()
            .filter(|(name, _)| name != marker.name)
            .map(|(name, value)| format!("{name}={value}"))
            .chain([marker.entry()])
            .collect();
        let config = ExecConfig {
            attach_stdin: Some(attach_stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            env: Some(env),
            cmd: Some(request.command.clone()),
            working_dir: request.working_dir.clone(),
            ..Default::default()
        };
        let created = self
            .call(
                "create_exec",
                Lane::Gated,
                self.docker.create_exec(container, config),
            )
            .await?
            .map_err(|e| exec_error(e, container))?;
        let options = StartExecOptions {
            detach: false,
            tty: request.tty,
            output_capacity: Some(OUTPUT_CAPACITY),
        };
        // Bounded until attached; the output then lasts as long as the command.
        match self
            .call(
                "start_exec",
                Lane::Gated,
                self.docker.start_exec(&created.id, Some(options)),
            )
            .await?
            .map_err(|e| exec_error(e, container))?
        {
            StartExecResults::Attached { output, input } => Ok(Attached {
                id: created.id,
                marker,
                input,
                output,
            }),
            StartExecResults::Detached => Err(RuntimeError::Io(std::io::Error::other(
                "Docker started the exec detached although it was asked to attach",
            ))),
        }
    }

    /// Waits until Docker reports the exec finished and returns its exit code; with
    /// a bound, `None` when it is still running after that long. (The output can end
    /// a moment before the exit is recorded, or long before when the command closed
    /// its output and runs on.)
    async fn wait_exec_exit(&self, exec_id: &str, bound: Option<Duration>) -> Result<Option<i64>> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let inspect = self.inspect_exec(exec_id).await?;
            if inspect.running != Some(true) {
                // A finished exec without a code never started; Docker says 126 then.
                return Ok(Some(inspect.exit_code.unwrap_or(126)));
            }
            if bound.is_some_and(|bound| started.elapsed() >= bound) {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Kills every process of an exec: those carrying its marker, found through the
    /// host's `/proc`, and its main process's group; inside the container when the
    /// host cannot see them.
    pub(super) async fn kill_exec(
        &self,
        container: &str,
        exec_id: &str,
        marker: &Marker,
    ) -> Result<()> {
        let pid = self.inspect_exec(exec_id).await?.pid.unwrap_or(0);
        // The marker proves the PID is the exec's own process, not a stranger's; the
        // processes that left its group (setsid, daemons) still carry it.
        let others = self.host_pids(container).await.unwrap_or_default();
        let mut killed = 0;
        for pid in std::iter::once(pid).chain(others) {
            let environ = procfs::environ(pid).await.unwrap_or_default();
            if procfs::environ_has(&environ, marker.name, Some(&marker.value)) {
                procfs::kill_process_and_group(pid);
                killed += 1;
            }
        }
        if killed == 0 && self.exec_exit_code(exec_id).await?.is_none() {
            tracing::debug!(%container, exec = %exec_id, "killing a timed-out exec from inside the container");
            self.kill_inside(container, marker).await?;
        }
        Ok(())
    }

    /// The remote-daemon fallback of [`DockerRuntime::kill_exec`]: a shell loop in the
    /// container kills the processes carrying the marker (needs `sh`, `tr`, `grep`
    /// and `kill` in the image).
    async fn kill_inside(&self, container: &str, marker: &Marker) -> Result<()> {
        let script = format!(
            "for d in /proc/[0-9]*; do tr '\\0' '\\n' < \"$d/environ\" 2>/dev/null | grep -qx '{}' && kill -9 \"${{d#/proc/}}\"; done; true",
            marker.entry()
        );
        let request = ExecRequest {
            command: vec!["/bin/sh".into(), "-c".into(), script],
            ..Default::default()
        };
        let Attached { mut output, .. } = self
            .attach_exec(container, &request, PROBE_MARKER_ENV, false)
            .await?;
        let drain = async { while output.next().await.is_some() {} };
        let _ = tokio::time::timeout(INSIDE_KILL_TIMEOUT, drain).await;
        Ok(())
    }

    /// The host PIDs of the container's processes (`docker top`).
    pub(super) async fn host_pids(&self, container: &str) -> Result<Vec<i64>> {
        let options = TopOptionsBuilder::default().ps_args("-ef").build();
        let top = self
            .call(
                "top_processes",
                Lane::Read,
                self.docker.top_processes(container, Some(options)),
            )
            .await?
            .map_err(|e| exec_error(e, container))?;
        Ok(procfs::top_pids(
            top.titles.as_deref().unwrap_or_default(),
            top.processes.as_deref().unwrap_or_default(),
        ))
    }
}

/// Writes `stdin` (if any) and closes the input so the command sees end of file.
/// Errors are ignored: a command may exit without reading its input.
async fn write_and_close(mut input: Pin<Box<dyn AsyncWrite + Send>>, stdin: Option<Bytes>) {
    let Some(stdin) = stdin else {
        return;
    };
    let _ = input.write_all(&stdin).await;
    let _ = input.shutdown().await;
}

/// Docker's answers to exec-related calls, in the runtime's terms.
pub(super) fn exec_error(error: BollardError, container: &str) -> RuntimeError {
    match status(&error) {
        Some(404) if docker_message(&error).contains("No such exec") => error.into(),
        Some(404) => RuntimeError::ContainerNotFound {
            container: container.to_string(),
        },
        // "Container ... is not running" / "is paused" / "is restarting".
        Some(409) => RuntimeError::ContainerNotRunning {
            container: container.to_string(),
        },
        _ => error.into(),
    }
}
