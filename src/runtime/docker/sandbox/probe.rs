//! Health probes and the activity check of a sandbox's containers.
//!
//! - exec: the command runs (with the probe marker, so it is not activity) and
//!   exit code 0 means ready;
//! - tcp: the port is listening in the container's network namespace, read from the
//!   host's `/proc/<container pid>/net/tcp{,6}` (works for every network mode,
//!   `none` included; inside the container with `cat` when the daemon is remote);
//! - http: a GET from the host to the container's IP on its network; with no IP
//!   (network `none`) or no route from here, `wget` inside the container.

use std::io;
use std::time::Duration;

use bollard::models::ContainerInspectResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::exec::exec_error;
use super::procfs;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::docker::gate::Lane;
use crate::runtime::sandbox::{EXEC_MARKER_ENV, ExecRequest, PROBE_MARKER_ENV, Probe};
use crate::runtime::{Result, RuntimeError};

/// The part of an HTTP answer read for its status line.
const STATUS_LINE_LIMIT: usize = 1024;

/// What a probe needs to know about the container.
struct Target {
    id: String,
    running: bool,
    pid: i64,
    /// The container's address on its network (none with network `none`).
    ip: Option<String>,
}

impl DockerRuntime {
    /// Runs one health probe; `Ok(false)` is a failed check (a container that is not
    /// running fails every check), `Err` a runtime error.
    pub async fn probe(&self, container: &str, probe: &Probe, timeout: Duration) -> Result<bool> {
        let ready = match probe {
            Probe::Exec(command) => self.probe_exec(container, command.clone(), timeout).await,
            Probe::Tcp { port } => self.probe_tcp(container, *port, timeout).await,
            Probe::Http { port, path } => self.probe_http(container, *port, path, timeout).await,
        };
        match ready {
            Err(RuntimeError::ContainerNotRunning { .. }) => Ok(false),
            other => other,
        }
    }

    /// How many processes started by an exec still run in the container (those whose
    /// environment carries [`EXEC_MARKER_ENV`]); 0 when it is not running. Read from
    /// the host's `/proc`: with a remote daemon this is
    /// [`RuntimeError::ProcessesUnreadable`].
    pub async fn exec_processes(&self, container: &str) -> Result<usize> {
        let target = self.target(container).await?;
        if !target.running {
            return Ok(0);
        }
        procfs::is_containers_process(target.pid, &target.id)
            .await
            .map_err(|reason| RuntimeError::ProcessesUnreadable {
                container: container.to_string(),
                reason,
            })?;
        let pids = match self.host_pids(container).await {
            Ok(pids) => pids,
            Err(RuntimeError::ContainerNotRunning { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut count = 0;
        for pid in pids {
            let environ =
                procfs::environ(pid)
                    .await
                    .map_err(|e| RuntimeError::ProcessesUnreadable {
                        container: container.to_string(),
                        reason: format!("/proc/{pid}/environ: {e}"),
                    })?;
            if procfs::environ_has(&environ, EXEC_MARKER_ENV, None) {
                count += 1;
            }
        }
        Ok(count)
    }

    async fn probe_exec(
        &self,
        container: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<bool> {
        let request = ExecRequest {
            command,
            timeout: Some(timeout),
            ..Default::default()
        };
        let output = self.run_exec(container, &request, PROBE_MARKER_ENV).await?;
        Ok(output.exit_code == 0 && !output.timed_out)
    }

    async fn probe_tcp(&self, container: &str, port: u16, timeout: Duration) -> Result<bool> {
        let target = self.target(container).await?;
        if !target.running {
            return Ok(false);
        }
        let tables = if procfs::is_containers_process(target.pid, &target.id)
            .await
            .is_ok()
        {
            let mut tables = String::new();
            for table in ["tcp", "tcp6"] {
                // A kernel without IPv6 has no tcp6 table.
                if let Ok(text) =
                    tokio::fs::read_to_string(format!("/proc/{}/net/{table}", target.pid)).await
                {
                    tables.push_str(&text);
                }
            }
            tables
        } else {
            let request = ExecRequest {
                command: ["cat", "/proc/net/tcp", "/proc/net/tcp6"]
                    .map(String::from)
                    .to_vec(),
                timeout: Some(timeout),
                ..Default::default()
            };
            let output = self.run_exec(container, &request, PROBE_MARKER_ENV).await?;
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        Ok(procfs::listening_ports(&tables).any(|listening| listening == port))
    }

    async fn probe_http(
        &self,
        container: &str,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let target = self.target(container).await?;
        if !target.running {
            return Ok(false);
        }
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(ip) = &target.ip {
            match tokio::time::timeout_at(deadline, http_status(ip, port, &path)).await {
                Err(_elapsed) => return Ok(false),
                Ok(Ok(status)) => return Ok((200..400).contains(&status)),
                // No route from here to the container's network: ask from inside.
                Ok(Err(e)) if unreachable(&e) => {}
                Ok(Err(_)) => return Ok(false),
            }
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Ok(false);
        }
        let request = ExecRequest {
            command: vec![
                "wget".into(),
                "-q".into(),
                "-O".into(),
                "/dev/null".into(),
                format!("http://127.0.0.1:{port}{path}"),
            ],
            timeout: Some(remaining),
            ..Default::default()
        };
        let output = self.run_exec(container, &request, PROBE_MARKER_ENV).await?;
        Ok(output.exit_code == 0 && !output.timed_out)
    }

    async fn target(&self, container: &str) -> Result<Target> {
        let inspect = self
            .call(
                "inspect_container",
                Lane::Read,
                self.docker.inspect_container(container, None),
            )
            .await?
            .map_err(|e| exec_error(e, container))?;
        Ok(target(inspect))
    }
}

fn target(inspect: ContainerInspectResponse) -> Target {
    let state = inspect.state.unwrap_or_default();
    let ip = inspect
        .network_settings
        .and_then(|settings| settings.networks)
        .into_iter()
        .flatten()
        .filter_map(|(_, endpoint)| endpoint.ip_address)
        .find(|ip| !ip.is_empty());
    Target {
        id: inspect.id.unwrap_or_default(),
        running: state.running == Some(true),
        pid: state.pid.unwrap_or_default(),
        ip,
    }
}

/// Whether a connect error means there is no route to the address from here (as
/// opposed to nothing listening there).
fn unreachable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::PermissionDenied
    )
}

/// The status code of `GET path` on `ip:port`.
async fn http_status(ip: &str, port: u16, path: &str) -> io::Result<u16> {
    let host = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let mut stream = TcpStream::connect(&host).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: orcaops-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::with_capacity(256);
    let mut buffer = [0u8; 256];
    while !answer.contains(&b'\n') && answer.len() < STATUS_LINE_LIMIT {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    status_code(&answer).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the answer does not start with an HTTP status line",
        )
    })
}

/// The code of an HTTP status line (`HTTP/1.1 204 No Content`).
fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|byte| *byte == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_parsed() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(
            status_code(b"HTTP/1.0 302 Found\r\nLocation: /x\r\n"),
            Some(302)
        );
        assert_eq!(status_code(b"HTTP/1.1 404"), Some(404));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[test]
    fn a_none_network_has_no_ip() {
        use bollard::models::{EndpointSettings, NetworkSettings};
        use std::collections::HashMap;
        let inspect = |networks: Vec<(&str, &str)>| ContainerInspectResponse {
            network_settings: Some(NetworkSettings {
                networks: Some(
                    networks
                        .into_iter()
                        .map(|(name, ip)| {
                            (
                                name.to_string(),
                                EndpointSettings {
                                    ip_address: Some(ip.to_string()),
                                    ..Default::default()
                                },
                            )
                        })
                        .collect::<HashMap<_, _>>(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(target(inspect(vec![("none", "")])).ip, None);
        assert_eq!(
            target(inspect(vec![("sb-net", "172.18.0.2")]))
                .ip
                .as_deref(),
            Some("172.18.0.2")
        );
    }
}
