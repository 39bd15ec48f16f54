//! A sandbox service's log on Docker: the container's own output (what its command
//! writes, not what execs print), as raw bytes in the order written, for the API's
//! `GET .../sandboxes/{name}/log`.

use bollard::Docker;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;

use crate::runtime::RuntimeError;
use crate::runtime::docker::not_found_as;
use crate::runtime::sandbox::ByteStream;

/// The last `tail` lines of `container`'s stdout and stderr (all when None), then,
/// with `follow`, what it writes until it stops.
pub(super) fn service_log(
    docker: &Docker,
    container: &str,
    follow: bool,
    tail: Option<usize>,
) -> ByteStream {
    let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
    let options = LogsOptionsBuilder::default()
        .follow(follow)
        .stdout(true)
        .stderr(true)
        .tail(&tail)
        .build();
    let id = container.to_string();
    docker
        .logs(container, Some(options))
        .map(move |frame| {
            frame.map(|output| output.into_bytes()).map_err(|e| {
                not_found_as(e, || RuntimeError::ContainerNotFound {
                    container: id.clone(),
                })
            })
        })
        .boxed()
}
