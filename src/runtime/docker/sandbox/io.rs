//! The HTTP API's exec, files and container list on Docker: every [`SandboxIo`] call
//! is one of the runtime's own, so Docker serves all of it.

use bytes::Bytes;
use futures::StreamExt;

use crate::runtime::sandbox::{
    ByteStream, ExecOutput, ExecRequest, ExecSession, PathKind, SandboxIo,
};
use crate::runtime::{ContainerInfo, DockerRuntime, Result};

#[async_trait::async_trait]
impl SandboxIo for DockerRuntime {
    async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecOutput> {
        DockerRuntime::exec(self, container, request).await
    }

    async fn exec_session(&self, container: &str, request: &ExecRequest) -> Result<ExecSession> {
        DockerRuntime::exec_session(self, container, request).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        DockerRuntime::exec_exit_code(self, exec_id).await
    }

    async fn exec_resize(&self, exec_id: &str, width: u16, height: u16) -> Result<()> {
        DockerRuntime::exec_resize(self, exec_id, width, height).await
    }

    async fn write_file(&self, container: &str, path: &str, data: Bytes, mode: u32) -> Result<()> {
        DockerRuntime::write_file(self, container, path, data, mode).await
    }

    async fn extract_tar(&self, container: &str, dir: &str, tar: Bytes) -> Result<()> {
        DockerRuntime::extract_tar(self, container, dir, tar).await
    }

    async fn path_kind(&self, container: &str, path: &str) -> Result<PathKind> {
        DockerRuntime::path_kind(self, container, path).await
    }

    async fn read_file(&self, container: &str, path: &str, max_bytes: u64) -> Result<Bytes> {
        DockerRuntime::read_file(self, container, path, max_bytes).await
    }

    async fn download_tar(&self, container: &str, path: &str) -> Result<ByteStream> {
        Ok(DockerRuntime::download_tar(self, container, path).boxed())
    }

    async fn ping(&self) -> Result<()> {
        DockerRuntime::ping(self).await
    }

    async fn containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        DockerRuntime::list(self, labels).await
    }

    async fn logs(&self, container: &str, follow: bool, tail: Option<usize>) -> Result<ByteStream> {
        Ok(super::logs::service_log(
            &self.docker,
            container,
            follow,
            tail,
        ))
    }
}
