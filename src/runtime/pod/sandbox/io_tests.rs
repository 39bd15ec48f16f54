//! A sandbox service's log on a cluster: `pods/log` of the service's container, with
//! the tail and follow asked for, against the mock API server.

use futures::StreamExt;

use crate::kubeapi::mock::{Exchange, core_path, mock_client};
use crate::runtime::RuntimeError;
use crate::runtime::pod::PodRuntime;
use crate::runtime::sandbox::SandboxIo;

const POD: &str = "orcaops-team-a-box-0123abcd";

fn log_path(pod: &str) -> String {
    core_path(Some("team-a"), &format!("pods/{pod}/log"))
}

#[tokio::test]
async fn a_service_log_is_its_containers_pod_log_with_tail_and_follow() {
    let (client, api) = mock_client();
    let api = api.expect(vec![
        Exchange::get(log_path(POD))
            .query("container", "db")
            .query("follow", "true")
            .query("tailLines", "2")
            .reply_text(200, "ready to accept connections\nlistening on 5432\n"),
        Exchange::get(log_path("gone")).not_found(),
    ]);
    let runtime = PodRuntime::new(client);
    let stream = runtime
        .logs(&format!("team-a/{POD}/db"), true, Some(2))
        .await
        .expect("the log opens");
    let chunks: Vec<_> = stream.collect().await;
    let text: Vec<u8> = chunks
        .into_iter()
        .flat_map(|c| c.expect("a chunk").to_vec())
        .collect();
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "ready to accept connections\nlistening on 5432\n"
    );
    let gone = runtime.logs("team-a/gone/db", false, None).await;
    assert!(
        matches!(&gone, Err(RuntimeError::ContainerNotFound { container }) if container == "team-a/gone/db"),
        "{:?}",
        gone.err()
    );
    // A container id that is not namespace/pod/service never reaches the API.
    let malformed = runtime.logs("just-a-name", false, None).await;
    assert!(
        matches!(&malformed, Err(RuntimeError::ContainerNotFound { .. })),
        "{:?}",
        malformed.err()
    );
    api.done().await;
}
