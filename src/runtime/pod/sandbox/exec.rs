//! Exec into a service of a sandbox's pod (`pods/exec` over a WebSocket), with the same
//! request and result types as Docker's ([`ExecRequest`], [`ExecOutput`]).
//!
//! The API's exec has no environment and no working directory, so the command is
//! wrapped: `env` sets the variables (the exec marker first), and a shell `cd`s first
//! when a working directory is asked for. A timeout kills the exec's processes with a
//! second exec that finds them by their marker in `/proc/*/environ`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncWriteExt;

use super::super::attach::Ending;
use super::super::runtime::PodRuntime;
use super::build::sandbox_pod_name;
use crate::resources::{DEFAULT_WORKSPACE, ObjectMeta};
use crate::runtime::sandbox::{EXEC_MARKER_ENV, ExecOutput, ExecRequest, TIMED_OUT_EXIT_CODE};
use crate::runtime::{Result, RuntimeError};

/// The pipe between an exec's WebSocket and its collected output.
const EXEC_BUFFER: usize = 64 * 1024;
/// How long the kill of a timed-out exec may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The id of a service's container in a sandbox's pod, as the pod sandbox runtime
/// reports it and [`PodRuntime::sandbox_exec`] takes it: `<namespace>/<pod>/<service>`.
pub fn sandbox_container_id(meta: &ObjectMeta, service: &str) -> String {
    let namespace = meta.namespace.as_deref().unwrap_or(DEFAULT_WORKSPACE);
    format!("{namespace}/{}/{service}", sandbox_pod_name(meta))
}

/// `(namespace, pod, service)` of a container id `namespace/pod/service`.
pub(super) fn split_container(id: &str) -> Result<(&str, &str, &str)> {
    let mut parts = id.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(pod), Some(service))
            if !ns.is_empty() && !pod.is_empty() && !service.is_empty() =>
        {
            Ok((ns, pod, service))
        }
        _ => Err(RuntimeError::ContainerNotFound {
            container: format!("{id} (a sandbox's container is namespace/pod/service)"),
        }),
    }
}

/// The command the API runs for `request`: the marker and the variables through `env`,
/// and a `cd` through `/bin/sh` when there is a working directory. Pure.
pub fn exec_command(request: &ExecRequest, exec_id: &str) -> Vec<String> {
    let mut command = vec!["env".to_string(), format!("{EXEC_MARKER_ENV}={exec_id}")];
    command.extend(request.env.iter().map(|(k, v)| format!("{k}={v}")));
    command.extend(request.command.iter().cloned());
    match &request.working_dir {
        None => command,
        Some(dir) => {
            // `$0` is the directory, `"$@"` the command: nothing is re-parsed by the shell.
            let mut wrapped = vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                "cd -- \"$0\" || exit 126; exec \"$@\"".to_string(),
                dir.clone(),
            ];
            wrapped.append(&mut command);
            wrapped
        }
    }
}

/// A shell loop killing every process whose environment carries `marker=exec_id`.
pub fn kill_command(exec_id: &str) -> Vec<String> {
    let wanted = format!("{EXEC_MARKER_ENV}={exec_id}");
    vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        "for p in /proc/[0-9]*; do \
         if tr '\\0' '\\n' < \"$p/environ\" 2>/dev/null | grep -qxF \"$0\"; then \
         kill -9 \"${p#/proc/}\" 2>/dev/null; fi; done; exit 0"
            .to_string(),
        wanted,
    ]
}

/// The exit code in the API's exec `Status`: 0 on success, the `ExitCode` cause on a
/// non-zero exit, 126 (could not run) otherwise, with the reason.
fn exit_code_of(
    status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status,
) -> (i64, Option<String>) {
    if status.status.as_deref() == Some("Success") {
        return (0, None);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref()?.parse().ok());
    match code {
        Some(code) => (code, None),
        None => (126, status.message.clone()),
    }
}

impl PodRuntime {
    /// Runs a command in a service of a sandbox's pod and collects its output, as
    /// [`DockerRuntime::exec`](crate::runtime::DockerRuntime::exec) does: stdin (when
    /// given) is written then closed; after `timeout` the exec's processes are killed
    /// and the result is exit code 124 with `timed_out` and the output so far. A missing
    /// pod is [`RuntimeError::ContainerNotFound`], a connection that breaks before the
    /// command's status comes [`RuntimeError::Exec`]. `tty` merges stderr into stdout.
    pub async fn sandbox_exec(&self, container: &str, request: &ExecRequest) -> Result<ExecOutput> {
        let (namespace, pod, service) = split_container(container)?;
        let started = Instant::now();
        let exec_id = uuid::Uuid::new_v4().simple().to_string();
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let params = AttachParams {
            max_stdout_buf_size: Some(EXEC_BUFFER),
            max_stderr_buf_size: Some(EXEC_BUFFER),
            ..AttachParams::default()
                .container(service)
                .stdin(request.stdin.is_some())
                .stdout(true)
                .stderr(!request.tty)
                .tty(request.tty)
        };
        let mut process = pods
            .exec(pod, exec_command(request, &exec_id), &params)
            .await
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 404 => RuntimeError::ContainerNotFound {
                    container: container.to_string(),
                },
                e => RuntimeError::Kube(e),
            })?;
        let status = process.take_status();
        let stdin = process.stdin();
        let mut out = process.stdout();
        let mut err = process.stderr();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let ending = Ending::default();
        let run = async {
            let write = async {
                if let (Some(mut pipe), Some(bytes)) = (stdin, request.stdin.clone()) {
                    pipe.write_all(&bytes).await?;
                    pipe.shutdown().await?;
                }
                Ok::<_, std::io::Error>(())
            };
            let read_out = async {
                match out.as_mut() {
                    Some(out) => ending.drain(out, &mut stdout).await.map(drop),
                    None => Ok(()),
                }
            };
            let read_err = async {
                match err.as_mut() {
                    Some(err) => ending.drain(err, &mut stderr).await.map(drop),
                    None => Ok(()),
                }
            };
            let (w, o, e, status) = tokio::join!(write, read_out, read_err, ending.status(status));
            // A command that exits without reading its stdin closes the pipe early.
            drop(w);
            o?;
            e?;
            Ok::<_, RuntimeError>(status)
        };
        let outcome = match request.timeout {
            None => Some(run.await?),
            Some(timeout) => tokio::time::timeout(timeout, run).await.ok().transpose()?,
        };
        let outcome = match outcome {
            Some(status) => match Ending::finish(process, status).await {
                Ok(status) => Some(exit_code_of(&status)),
                Err(message) => {
                    return Err(RuntimeError::Exec {
                        pod: container.to_string(),
                        command: request.command.join(" "),
                        message,
                    });
                }
            },
            None => {
                // Timed out: the command still runs, so joining would wait for it.
                // Dropping the process ends our side; the kill below ends the command.
                drop(process);
                None
            }
        };
        let (exit_code, timed_out) = match outcome {
            Some((code, reason)) => {
                if let Some(reason) = reason.filter(|_| stderr.is_empty()) {
                    stderr.extend_from_slice(format!("{reason}\n").as_bytes());
                }
                (code, false)
            }
            None => {
                if let Err(error) = self.kill_sandbox_exec(&pods, pod, service, &exec_id).await {
                    tracing::warn!(%container, exec = %exec_id, %error, "could not kill a timed-out exec");
                }
                (TIMED_OUT_EXIT_CODE, true)
            }
        };
        Ok(ExecOutput {
            exit_code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            timed_out,
            duration: started.elapsed(),
        })
    }

    async fn kill_sandbox_exec(
        &self,
        pods: &Api<Pod>,
        pod: &str,
        service: &str,
        exec_id: &str,
    ) -> Result<()> {
        let params = AttachParams::default()
            .container(service)
            .stdin(false)
            .stdout(false)
            .stderr(true);
        let kill = async {
            let process = pods
                .exec(pod, kill_command(exec_id), &params)
                .await
                .map_err(RuntimeError::Kube)?;
            let _ = process.join().await;
            Ok::<_, RuntimeError>(())
        };
        tokio::time::timeout(KILL_TIMEOUT, kill)
            .await
            .unwrap_or(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_carries_the_marker_and_the_variables_and_cds_through_a_shell() {
        let request = ExecRequest {
            command: vec!["ls".into(), "-l".into(), "a b".into()],
            env: vec![("A".into(), "1 2".into())],
            ..Default::default()
        };
        assert_eq!(
            exec_command(&request, "x1"),
            ["env", "ORCAOPS_EXEC=x1", "A=1 2", "ls", "-l", "a b"]
        );
        let within = ExecRequest {
            working_dir: Some("/work dir".into()),
            ..request
        };
        let command = exec_command(&within, "x1");
        assert_eq!(command[..2], ["/bin/sh", "-c"]);
        assert_eq!(command[3], "/work dir");
        assert_eq!(
            command[4..],
            ["env", "ORCAOPS_EXEC=x1", "A=1 2", "ls", "-l", "a b"]
        );
    }

    #[test]
    fn container_ids_name_namespace_pod_and_service() {
        let meta = ObjectMeta {
            name: "web-dev".into(),
            namespace: Some("team-a".into()),
            uid: "0123abcd-4567".into(),
            ..Default::default()
        };
        let id = sandbox_container_id(&meta, "web");
        assert_eq!(id, "team-a/orcaops-team-a-web-dev-0123abcd/web");
        assert_eq!(
            split_container(&id).unwrap(),
            ("team-a", "orcaops-team-a-web-dev-0123abcd", "web")
        );
        assert!(split_container("team-a/pod").is_err());
    }

    #[test]
    fn the_kill_loop_matches_the_marker_exactly() {
        let command = kill_command("abc");
        assert_eq!(command[3], "ORCAOPS_EXEC=abc");
        assert!(command[2].contains("grep -qxF"));
    }
}
