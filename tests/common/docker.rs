//! Docker for the tests that drive the runtime directly: connecting (or failing with
//! how to get Docker), and running a test body so that whatever it made is removed
//! even when it panics or runs out of time.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use orcaops::runtime::DockerRuntime;

use super::IMAGE;

/// The local daemon with the test image present, or a failure saying how to get both.
pub async fn connect() -> DockerRuntime {
    let runtime = DockerRuntime::connect().await.unwrap_or_else(|error| {
        panic!("these tests need Docker: start Docker with scripts/setup.sh ({error})")
    });
    runtime.ensure_image(IMAGE).await.unwrap_or_else(|error| {
        panic!("these tests need {IMAGE}: start Docker with scripts/setup.sh ({error})")
    });
    runtime
}

/// The label on everything a [`scratch_test`] makes, with the test's id.
pub const TEST_LABEL: &str = "orcaops.test/id";

/// A test's handle on Docker: the runtime, and the id that labels what it makes.
pub struct Scratch {
    pub runtime: DockerRuntime,
    pub id: String,
}

/// How long a [`scratch_test`] may take.
pub const SCRATCH_TEST_LIMIT: Duration = Duration::from_secs(120);

/// Connects, runs `body` with a new id for at most [`SCRATCH_TEST_LIMIT`], then
/// removes every container, network and volume labelled with that id, even when
/// `body` panicked or ran out of time.
pub async fn scratch_test<F, Fut>(body: F)
where
    F: FnOnce(Scratch) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = connect().await;
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let scratch = Scratch {
        runtime: runtime.clone(),
        id: id.clone(),
    };
    let label = [(TEST_LABEL, id.as_str())];
    guarded(
        SCRATCH_TEST_LIMIT,
        body(scratch),
        remove_labelled(&runtime, &label),
    )
    .await;
}

/// Runs `body` for at most `limit`, then `cleanup` whatever happened, then fails the
/// test if `body` panicked or ran out of time.
pub async fn guarded(
    limit: Duration,
    body: impl Future<Output = ()>,
    cleanup: impl Future<Output = ()>,
) {
    let outcome = AssertUnwindSafe(tokio::time::timeout(limit, body))
        .catch_unwind()
        .await;
    cleanup.await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the test did not finish within {limit:?}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Removes every container, network and volume matching `selector`, and fails if
/// any is left.
pub async fn remove_labelled(runtime: &DockerRuntime, selector: &[(&str, &str)]) {
    for container in runtime.list(selector).await.unwrap() {
        runtime.remove(&container.id).await.unwrap();
    }
    for network in runtime.list_networks(selector).await.unwrap() {
        runtime.remove_network(&network).await.unwrap();
    }
    for volume in runtime.list_volumes(selector).await.unwrap() {
        runtime.remove_volume(&volume).await.unwrap();
    }
    assert!(
        runtime.list(selector).await.unwrap().is_empty()
            && runtime.list_networks(selector).await.unwrap().is_empty()
            && runtime.list_volumes(selector).await.unwrap().is_empty(),
        "containers, networks or volumes left behind"
    );
}
