//! `orcaops sync` against a real cluster: the one of the current kubeconfig context
//! (kind or k3d), with the CRDs installed. Run with
//! `cargo test --test kube_cluster -- --ignored`.

use std::path::Path;
use std::process::{Command, Output};

use orcaops::resources::{Kind, ObjectKey, keys};
use orcaops::store::{KubeStore, ObjectStore};

const BIN: &str = env!("CARGO_BIN_EXE_orcaops");

fn sync_once(dir: &Path) -> Output {
    let output = Command::new(BIN)
        .args(["sync", "--once", "--dir"])
        .arg(dir)
        .output()
        .expect("the orcaops binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(5),
        "this test needs a Kubernetes cluster in the current kubeconfig context (kind create \
         cluster, or k3d cluster create):\n{stderr}"
    );
    assert!(
        output.status.success(),
        "orcaops sync --once failed (are the CRDs installed? orcaops crds | kubectl apply -f -):\n{stderr}"
    );
    output
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn sync_once_applies_the_hello_job_and_prunes_it_with_its_file() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("hello.yaml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.yaml"),
        &file,
    )
    .unwrap();

    let first = sync_once(folder.path());
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(summary.contains("0 failed files"), "{summary}");

    let store = KubeStore::from_kubeconfig(None).await.unwrap();
    let key = ObjectKey::new(Kind::Job, "default", "hello");
    let job = store
        .get(&key)
        .await
        .unwrap()
        .expect("the Job hello exists in the cluster");
    assert_eq!(job.source(), Some("file:hello.yaml"));
    assert!(!job.metadata.annotations.contains_key(keys::CANCEL));

    // Again: nothing to do.
    let again = sync_once(folder.path());
    let summary = String::from_utf8_lossy(&again.stdout);
    assert!(
        summary.contains("0 created, 0 configured, 1 unchanged"),
        "{summary}"
    );

    std::fs::remove_file(&file).unwrap();
    let pruned = sync_once(folder.path());
    let summary = String::from_utf8_lossy(&pruned.stdout);
    assert!(summary.contains("1 pruned"), "{summary}");
    let left = store.get(&key).await.unwrap();
    assert!(
        left.is_none_or(|job| job.metadata.deletion_timestamp.is_some()),
        "the Job is deleted (or being deleted)"
    );
}
