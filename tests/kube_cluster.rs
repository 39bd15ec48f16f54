//! `orcaops sync` against a real cluster: the one of the current kubeconfig context
//! (kind or k3d), with the CRDs installed. Run with
//! `cargo test --test kube_cluster -- --ignored`.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{BIN, free_port};

use orcaops::resources::{Kind, ObjectKey, keys};
use orcaops::store::{KubeStore, ObjectStore};

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

/// The operator, in-process, against the cluster of the current context (the CRDs
/// installed; no operator Deployment running, or two would act): a Job with an artifact
/// runs as a pod, succeeds with its steps and the artifact's sha256, and its deletion
/// waits for the finalizer, which the operator removes.
#[tokio::test]
#[ignore = "needs cluster"]
async fn the_operator_runs_a_job_as_a_pod_collects_its_artifact_and_lets_it_go() {
    use orcaops::operator::{OperatorOptions, run};
    use orcaops::resources::Object;
    use serde_json::json;
    use std::time::Duration;

    let store = KubeStore::from_kubeconfig(None).await.unwrap();
    let key = ObjectKey::new(Kind::Job, "default", "operator-e2e");
    let _ = store.delete(&key).await;
    let job = Object::new(
        Kind::Job,
        "default",
        "operator-e2e",
        json!({
            "image": "busybox:1.36",
            "steps": [
                {"name": "write", "run": "mkdir -p /tmp/out && echo hello > /tmp/out/greeting.txt"},
                {"name": "read", "run": "cat /tmp/out/greeting.txt"},
            ],
            "artifacts": [{"name": "greeting", "path": "/tmp/out/greeting.txt"}],
            "timeoutSeconds": 300,
        }),
    );
    store.create(job).await.unwrap();

    let data = tempfile::tempdir().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let operator = run(
        OperatorOptions {
            kubeconfig: None,
            context: None,
            namespace: None,
            data_dir: data.path().to_path_buf(),
            leader_election: false,
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            api_addr: None,
            api_access: Default::default(),
            workers: 2,
            controllers: Default::default(),
            webhook: None,
            summarizer: None,
        },
        shutdown.clone(),
    );
    let checks = async {
        let mut phase = String::new();
        for _ in 0..240 {
            let job = store.get(&key).await.unwrap().expect("the job exists");
            phase = job.status["phase"].as_str().unwrap_or_default().to_string();
            if phase == "Succeeded" || phase == "Failed" {
                assert_eq!(phase, "Succeeded", "{}", job.status);
                assert_eq!(job.status["steps"][1]["outputTail"], "hello");
                // sha256 of "hello\n".
                assert_eq!(
                    job.status["artifacts"][0]["sha256"],
                    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
                );
                assert!(
                    job.metadata
                        .finalizers
                        .contains(&keys::FINALIZER.to_string())
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            phase, "Succeeded",
            "the job did not finish within 2 minutes"
        );

        store.delete(&key).await.unwrap();
        let mut gone = false;
        for _ in 0..60 {
            if store.get(&key).await.unwrap().is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        shutdown.cancel();
        assert!(gone, "the operator removed its finalizer");
    };
    let (operator, ()) = tokio::join!(operator, checks);
    operator.unwrap();
}

/// Stops the operator's child process when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_operators_api_creates_watches_and_deletes_on_the_cluster() {
    let data = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let _operator = Child(
        Command::new(BIN)
            .args([
                "operator",
                "--no-leader-election",
                "--api",
                "--api-addr",
                &api,
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .arg("--data-dir")
            .arg(data.path())
            .spawn()
            .expect("the orcaops binary runs"),
    );
    let url = format!("http://{api}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await {
            ready = r.status() == 200;
            if ready {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        ready,
        "the operator's API never became ready (a cluster in the current context, with the CRDs installed?)"
    );

    // Every request but health needs a key: the operator's admin key in its data dir.
    let http = common::http_with_key(&common::admin_key(data.path()));
    let jobs = format!("{url}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs");
    let listed: serde_json::Value = http.get(&jobs).send().await.unwrap().json().await.unwrap();
    let rv = listed["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let yaml = "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: api-hello\nspec:\n  image: busybox:latest\n  suspend: true\n  steps:\n    - name: greet\n      run: echo hi\n";
    let created = http
        .post(&jobs)
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let watched = http
        .get(format!(
            "{jobs}?watch=true&resourceVersion={rv}&timeoutSeconds=3"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        watched
            .lines()
            .any(|l| l.contains("\"ADDED\"") && l.contains("api-hello")),
        "{watched}"
    );
    let deleted = http
        .delete(format!("{jobs}/api-hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let exec = http
        .post(format!(
            "{url}/apis/orcaops.dev/v1alpha1/namespaces/default/sandboxes/x/exec"
        ))
        .json(&serde_json::json!({"command": ["true"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(exec.status(), 501);
}

/// The operator, in-process, against the cluster of the current context: a Sandbox
/// with a port and a volume becomes a pod, a Service and a claim, is Ready, stops
/// (pod gone, claim kept), starts again, and its deletion removes everything.
#[tokio::test]
#[ignore = "needs cluster"]
async fn the_operator_runs_a_sandbox_as_a_pod_stops_starts_and_deletes_it() {
    use orcaops::operator::{OperatorOptions, run};
    use orcaops::resources::Object;
    use serde_json::json;
    use std::time::Duration;

    let store = KubeStore::from_kubeconfig(None).await.unwrap();
    let client = kube::Client::try_default().await.unwrap();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), "default");
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(client, "default");
    let key = ObjectKey::new(Kind::Sandbox, "default", "sandbox-e2e");
    let _ = store.delete(&key).await;
    let sandbox = Object::new(
        Kind::Sandbox,
        "default",
        "sandbox-e2e",
        json!({
            "network": "private",
            "ttlSeconds": 600,
            "services": [{"name": "web", "image": "busybox:1.36",
                "command": ["httpd", "-f", "-p", "8080"],
                "ports": [{"containerPort": 8080}],
                "healthCheck": {"tcp": {"port": 8080}},
                "volumes": [{"name": "data", "mountPath": "/data"}]}],
        }),
    );
    let created = store.create(sandbox).await.unwrap();
    let uid8 = orcaops::runtime::names::uid8(&created.metadata.uid);
    let pod = format!("orcaops-default-sandbox-e2e-{uid8}");
    let claim = format!("{pod}-data");

    let data = tempfile::tempdir().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let operator = run(
        OperatorOptions {
            kubeconfig: None,
            context: None,
            namespace: None,
            data_dir: data.path().to_path_buf(),
            leader_election: false,
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            api_addr: None,
            api_access: Default::default(),
            workers: 2,
            controllers: Default::default(),
            webhook: None,
            summarizer: None,
        },
        shutdown.clone(),
    );
    let phase_is = |want: &'static str| {
        let store = store.clone();
        let key = key.clone();
        async move {
            for _ in 0..240 {
                let sb = store.get(&key).await.unwrap().expect("the sandbox exists");
                if sb.status["phase"] == want {
                    return sb;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            panic!("the sandbox was not {want} within 2 minutes");
        }
    };
    let checks = async {
        let ready = phase_is("Ready").await;
        assert_eq!(
            ready.status["services"][0]["endpoints"][0]["hostIp"],
            "sandbox-e2e.default.svc"
        );
        assert!(pods.get_opt(&pod).await.unwrap().is_some());

        let mut stopped = store.get(&key).await.unwrap().unwrap();
        stopped.spec["state"] = json!("Stopped");
        store.replace(stopped).await.unwrap();
        phase_is("Stopped").await;
        assert!(
            claims.get_opt(&claim).await.unwrap().is_some(),
            "the volume is kept"
        );

        let mut running = store.get(&key).await.unwrap().unwrap();
        running.spec["state"] = json!("Running");
        store.replace(running).await.unwrap();
        phase_is("Ready").await;

        store.delete(&key).await.unwrap();
        let mut gone = false;
        for _ in 0..120 {
            if store.get(&key).await.unwrap().is_none() {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        shutdown.cancel();
        assert!(gone, "the operator removed its finalizer");
        let left = claims.get_opt(&claim).await.unwrap();
        assert!(
            left.is_none_or(|c| c.metadata.deletion_timestamp.is_some()),
            "the claim is deleted"
        );
    };
    let (operator, ()) = tokio::join!(operator, checks);
    operator.unwrap();
}
