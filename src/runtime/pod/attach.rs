//! Reading an exec through `pods/exec` to its end, whichever way it ends.
//!
//! kube's message loop shuts the output pipes after the exec's `Status` arrives, so a
//! reader sees end-of-file. When the connection breaks instead (the API server or the
//! kubelet goes away, a proxy resets it), the loop returns its error without shutting
//! them, and a reader waiting for end-of-file would wait forever. So the output is read
//! until end-of-file **or** until the loop is known to be over ([`Ending`]); what the
//! loop wrote before it ended is still taken from the pipe, and a missing status is
//! told apart from a broken connection ([`Ending::finish`]).

use futures::FutureExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachedProcess;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How much one read takes from an output pipe.
const CHUNK: usize = 64 * 1024;

/// Whether an exec's message loop is over.
#[derive(Default)]
pub(super) struct Ending(CancellationToken);

impl Ending {
    /// Awaits the exec's status (`process.take_status()`), then marks the loop over:
    /// the status is sent last, and a loop that fails drops its sender, so either way
    /// everything it will write to the pipes is there.
    pub async fn status(
        &self,
        status: Option<impl Future<Output = Option<Status>>>,
    ) -> Option<Status> {
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        self.0.cancel();
        status
    }

    /// Copies `reader` into `sink` until end-of-file, or, once the loop is over, until
    /// the pipe is empty. Returns the bytes copied.
    pub async fn drain<R, W>(&self, reader: &mut R, sink: &mut W) -> std::io::Result<u64>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = vec![0; CHUNK];
        let mut copied = 0u64;
        loop {
            let n = tokio::select! {
                // A read is cancel-safe: nothing is lost when the loop's end wins.
                biased;
                n = reader.read(&mut buf) => n?,
                () = self.0.cancelled() => {
                    while let Some(n) = reader.read(&mut buf).now_or_never() {
                        let n = n?;
                        if n == 0 {
                            break;
                        }
                        sink.write_all(&buf[..n]).await?;
                        copied += n as u64;
                    }
                    return Ok(copied);
                }
            };
            if n == 0 {
                return Ok(copied);
            }
            sink.write_all(&buf[..n]).await?;
            copied += n as u64;
        }
    }

    /// The end of `process` with the `status` [`Ending::status`] returned: a command
    /// that ended has its status; without one, the loop's error says what broke.
    pub async fn finish(
        process: AttachedProcess,
        status: Option<Status>,
    ) -> Result<Status, String> {
        let joined = process.join().await;
        match (status, joined) {
            (Some(status), _) => Ok(status),
            (None, Err(error)) => Err(format!("the connection to the pod broke: {error}")),
            (None, Ok(())) => {
                Err("the API server closed the exec without the command's exit status".to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pipe kube leaves open when its loop fails: the writer is dropped, not shut.
    #[tokio::test]
    async fn a_pipe_left_open_is_drained_once_the_loop_is_over() {
        let (mut reader, mut writer) = tokio::io::simplex(1024);
        writer.write_all(b"partial").await.unwrap();
        drop(writer);
        let ending = Ending::default();
        let mut out = Vec::new();
        let no_status: Option<std::future::Ready<Option<Status>>> = Some(std::future::ready(None));
        let (copied, status) = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            tokio::join!(
                ending.drain(&mut reader, &mut out),
                ending.status(no_status)
            )
        })
        .await
        .expect("the drain ends when the loop does, without end-of-file");
        assert_eq!(copied.unwrap(), 7);
        assert_eq!(out, b"partial");
        assert!(status.is_none());
    }

    /// On the way a command ends, the pipe is read to end-of-file, status or not yet.
    #[tokio::test]
    async fn a_shut_pipe_is_read_to_its_end() {
        let (mut reader, mut writer) = tokio::io::simplex(4);
        let ending = Ending::default();
        let mut out = Vec::new();
        let write = async {
            writer.write_all(b"more than the pipe holds").await.unwrap();
            writer.shutdown().await.unwrap();
        };
        let (_, copied) = tokio::join!(write, ending.drain(&mut reader, &mut out));
        assert_eq!(copied.unwrap(), 24);
        assert_eq!(out, b"more than the pipe holds");
    }
}
