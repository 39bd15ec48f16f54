//! Sandbox primitives on Docker. See [`crate::runtime::sandbox`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use super::DockerRuntime;
use crate::runtime::sandbox::{
    ExecOutput, ExecRequest, ExecSession, PathKind, Probe, PublishedPort, ServiceContainerSpec,
};
use crate::runtime::{ContainerInfo, Result};

impl DockerRuntime {
    /// Creates a network (internal: no route outside) unless one of that name exists.
    pub async fn ensure_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let _ = (name, labels);
        todo!("sandbox runtime")
    }

    /// Removes a network; a missing one is not an error.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        let _ = name;
        todo!("sandbox runtime")
    }

    /// Names of the networks carrying all these labels.
    pub async fn list_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        let _ = labels;
        todo!("sandbox runtime")
    }

    /// Creates a named volume unless it exists.
    pub async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        let _ = (name, labels);
        todo!("sandbox runtime")
    }

    /// Removes a volume; a missing one is not an error.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let _ = name;
        todo!("sandbox runtime")
    }

    /// Names of the volumes carrying all these labels.
    pub async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        let _ = labels;
        todo!("sandbox runtime")
    }

    /// Creates and starts a service container; an existing container of that name
    /// is adopted (and started if it is not running).
    pub async fn create_service(&self, spec: &ServiceContainerSpec) -> Result<ContainerInfo> {
        let _ = spec;
        todo!("sandbox runtime")
    }

    /// Renames a container (a claimed warm-pool container takes its sandbox's name).
    pub async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let _ = (id, new_name);
        todo!("sandbox runtime")
    }

    /// Starts an existing, stopped container.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let _ = id;
        todo!("sandbox runtime")
    }

    /// Where the container's ports are published on the host.
    pub async fn published_ports(&self, id: &str) -> Result<Vec<PublishedPort>> {
        let _ = id;
        todo!("sandbox runtime")
    }

    /// Runs a command to completion and collects its output.
    pub async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecOutput> {
        let _ = (container, request);
        todo!("sandbox runtime")
    }

    /// Starts a command with stdin attached; see [`ExecSession`].
    pub async fn exec_session(
        &self,
        container: &str,
        request: &ExecRequest,
    ) -> Result<ExecSession> {
        let _ = (container, request);
        todo!("sandbox runtime")
    }

    /// The exit code of a finished exec (`None` while it runs).
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let _ = exec_id;
        todo!("sandbox runtime")
    }

    /// Resizes an exec's terminal.
    pub async fn exec_resize(&self, exec_id: &str, width: u16, height: u16) -> Result<()> {
        let _ = (exec_id, width, height);
        todo!("sandbox runtime")
    }

    /// Writes one file (parent directories are created).
    pub async fn write_file(
        &self,
        container: &str,
        path: &str,
        content: Bytes,
        mode: u32,
    ) -> Result<()> {
        let _ = (container, path, content, mode);
        todo!("sandbox runtime")
    }

    /// Extracts a tar archive into a directory of the container.
    pub async fn extract_tar(&self, container: &str, dir: &str, tar: Bytes) -> Result<()> {
        let _ = (container, dir, tar);
        todo!("sandbox runtime")
    }

    /// Whether a path is a file or a directory ([`RuntimeError::PathNotFound`] when neither).
    pub async fn path_kind(&self, container: &str, path: &str) -> Result<PathKind> {
        let _ = (container, path);
        todo!("sandbox runtime")
    }

    /// A path as a tar stream (Docker's archive: the path's base name at its root).
    pub fn download_tar(
        &self,
        container: &str,
        path: &str,
    ) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let _ = (container, path);
        futures::stream::empty()
    }

    /// Reads one regular file whole (refused past `max_bytes`).
    pub async fn read_file(&self, container: &str, path: &str, max_bytes: u64) -> Result<Bytes> {
        let _ = (container, path, max_bytes);
        todo!("sandbox runtime")
    }

    /// Runs one health probe; `Ok(false)` is a failed check, `Err` a runtime error.
    pub async fn probe(&self, container: &str, probe: &Probe, timeout: Duration) -> Result<bool> {
        let _ = (container, probe, timeout);
        todo!("sandbox runtime")
    }

    /// How many processes started by an exec still run in the container (those whose
    /// environment carries [`EXEC_MARKER_ENV`](crate::runtime::sandbox::EXEC_MARKER_ENV)).
    pub async fn exec_processes(&self, container: &str) -> Result<usize> {
        let _ = container;
        todo!("sandbox runtime")
    }
}
