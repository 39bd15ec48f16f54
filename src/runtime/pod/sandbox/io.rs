//! Exec, files and logs in a sandbox's pod, as the HTTP API asks for them: a command
//! with collected output and one file up or down go through `pods/exec`, a service's
//! log through `pods/log` of its container. A session with
//! live output and stdin, a terminal, a tar in either direction and the list of what
//! runs are not served here yet; each says so, and what to use instead.

use bytes::Bytes;
use futures::{AsyncReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use super::exec::split_container;
use super::files;
use crate::runtime::pod::PodRuntime;
use crate::runtime::sandbox::{
    ByteStream, ExecOutput, ExecRequest, ExecSession, PathKind, SandboxIo,
};
use crate::runtime::{ContainerInfo, Result, RuntimeError};

/// What to use on a cluster for what the pods do not serve through orcaops.
const USE_KUBECTL: &str = "use kubectl instead: kubectl exec -it -n NAMESPACE POD -c SERVICE -- \
COMMAND and kubectl cp (the pods carry the labels orcaops.dev/kind and orcaops.dev/name: kubectl \
get pods -l orcaops.dev/name=NAME), or `orcaops serve` for sandboxes on one machine";

fn unsupported(what: &'static str) -> RuntimeError {
    RuntimeError::Unsupported {
        what,
        instead: USE_KUBECTL,
    }
}

#[async_trait::async_trait]
impl SandboxIo for PodRuntime {
    async fn exec(&self, container: &str, request: &ExecRequest) -> Result<ExecOutput> {
        self.sandbox_exec(container, request).await
    }

    async fn exec_session(&self, _: &str, _: &ExecRequest) -> Result<ExecSession> {
        Err(unsupported(
            "an exec with live output, stdin or a terminal on a cluster",
        ))
    }

    async fn exec_exit_code(&self, _: &str) -> Result<Option<i64>> {
        Err(unsupported("an exec session on a cluster"))
    }

    async fn exec_resize(&self, _: &str, _: u16, _: u16) -> Result<()> {
        Err(unsupported("a terminal on a cluster"))
    }

    /// Missing parent directories are made; the path must be absolute.
    async fn write_file(&self, container: &str, path: &str, data: Bytes, mode: u32) -> Result<()> {
        let request = files::write_request(path, data, mode)?;
        files::written(
            container,
            path,
            self.sandbox_exec(container, &request).await?,
        )
    }

    async fn extract_tar(&self, _: &str, _: &str, _: Bytes) -> Result<()> {
        Err(unsupported("a directory upload (tar) on a cluster"))
    }

    async fn path_kind(&self, _: &str, _: &str) -> Result<PathKind> {
        Err(unsupported("telling a file from a directory on a cluster"))
    }

    /// Symlinks are followed; a file over `max_bytes` is [`RuntimeError::TooLarge`],
    /// refused before it is read.
    async fn read_file(&self, container: &str, path: &str, max_bytes: u64) -> Result<Bytes> {
        let request = files::read_request(path, max_bytes)?;
        let output = self.sandbox_exec(container, &request).await?;
        files::read(container, path, max_bytes, output)
    }

    async fn download_tar(&self, _: &str, _: &str) -> Result<ByteStream> {
        Err(unsupported("a directory download (tar) on a cluster"))
    }

    /// The cluster answers when the store does, which `/readyz` asks first.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn containers(&self, _: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        Err(unsupported("/containers on a cluster"))
    }

    /// The service container's log as the kubelet keeps it (what `kubectl logs POD -c
    /// SERVICE` prints): the last `tail` lines, then, with `follow`, until it stops.
    async fn logs(&self, container: &str, follow: bool, tail: Option<usize>) -> Result<ByteStream> {
        let (namespace, pod, service) = split_container(container)?;
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), namespace);
        let params = LogParams {
            container: Some(service.to_string()),
            follow,
            tail_lines: tail.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            ..Default::default()
        };
        let reader = pods.log_stream(pod, &params).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => RuntimeError::ContainerNotFound {
                container: container.to_string(),
            },
            e => RuntimeError::Kube(e),
        })?;
        Ok(chunks(reader))
    }
}

/// A byte stream of what `reader` yields, in chunks of at most 16 KiB.
fn chunks(reader: impl futures::AsyncRead + Send + 'static) -> ByteStream {
    let reader = Box::pin(reader);
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; 16 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(RuntimeError::Io(e)), None)),
        }
    })
    .boxed()
}
