//! The pod runtime against the mock API server: the requests each call sends, and how
//! the answers (pods, logs, 404s, 409s) become what the controller sees.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;
use crate::kubeapi::mock::{Exchange, core_path, mock_client, status};
use crate::resources::job::{JobNetwork, JobSpec, Step};
use crate::resources::{Kind, Object, keys};
use crate::runtime::runner::COLLECTION_DIR;

const UID: &str = "0123abcd-4567-89ef-0123-456789abcdef";
const NONCE: &str = "f00dfeedc0ffee42";
const POD: &str = "orcaops-team-a-build-0123abcd-r1a1";
const ID: &str = "team-a/orcaops-team-a-build-0123abcd-r1a1";

fn spec(network: JobNetwork) -> JobSpec {
    JobSpec {
        image: "busybox:1.36".into(),
        steps: vec![
            Step::script("one", "echo one"),
            Step::script("two", "echo two"),
        ],
        network,
        ..Default::default()
    }
}

fn job(spec: &JobSpec) -> Object {
    let mut job = Object::new(
        Kind::Job,
        "team-a",
        "build",
        serde_json::to_value(spec).unwrap(),
    );
    job.metadata.uid = UID.into();
    job
}

fn request<'a>(job: &'a Object, spec: &'a JobSpec) -> AttemptRequest<'a> {
    AttemptRequest {
        job,
        spec,
        run: 1,
        attempt: 1,
        name: "orcaops-team-a-build-0123abcd-r1a1",
        nonce: NONCE,
        instance: "kube-test",
        deadline: Some(Utc::now() + chrono::TimeDelta::seconds(300)),
        default_memory_bytes: 512 << 20,
    }
}

/// A pod as the API server would serve it: `labels`, a phase and the steps
/// container's state (`{"running": {...}}`, `{"terminated": {...}}`, ...).
fn pod(name: &str, labels: Value, phase: &str, state: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a", "labels": labels},
        "spec": {"containers": [{"name": "steps", "image": "busybox:1.36"}]},
        "status": {
            "phase": phase,
            "startTime": "2026-01-01T00:00:00Z",
            "containerStatuses": [{
                "name": "steps", "image": "busybox:1.36", "imageID": "", "ready": false,
                "restartCount": 0, "state": state,
            }],
        },
    })
}

/// A running pod whose runner holds for collection, with `steps` steps.
fn holding_pod(name: &str, steps: usize) -> Value {
    let mut pod = pod(
        name,
        json!({keys::LABEL_UID: UID, NONCE_LABEL: NONCE}),
        "Running",
        json!({"running": {"startedAt": "2026-01-01T00:00:01Z"}}),
    );
    pod["metadata"]["annotations"] = json!({STEPS_ANNOTATION: steps.to_string()});
    pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "orcaops", "mountPath": COLLECTION_DIR}]);
    pod["spec"]["containers"][0]["command"] =
        json!(["/bin/sh", "-c", format!("... [ ! -e {RELEASE_FILE} ] ...")]);
    pod
}

fn marker(at: &str, what: &str) -> String {
    format!("2026-01-01T00:00:{at}Z ::orcaops:{NONCE}:{what}\n")
}

fn pods_path(rest: &str) -> String {
    core_path(Some("team-a"), &format!("pods{rest}"))
}

fn policies_path(rest: &str) -> String {
    format!("/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies{rest}")
}

fn already_exists() -> Value {
    status(409, "AlreadyExists", "already exists")
}

#[tokio::test]
async fn start_creates_the_policy_then_the_pod() {
    let (client, api) = mock_client();
    let spec = spec(JobNetwork::None);
    let job = job(&spec);
    let api = api.expect(vec![
        Exchange::post(policies_path(""))
            .body("/metadata/name", json!(POD))
            .body("/spec/policyTypes", json!(["Egress", "Ingress"]))
            .reply(201, json!({"metadata": {"name": POD}})),
        Exchange::post(pods_path(""))
            .body("/metadata/name", json!(POD))
            .body("/metadata/annotations/orcaops.dev~1steps", json!("2"))
            .body("/metadata/labels/orcaops.dev~1uid", json!(UID))
            .body("/metadata/ownerReferences/0/uid", json!(UID))
            .body("/spec/restartPolicy", json!("Never"))
            .reply(201, pod(POD, json!({}), "Pending", json!({"waiting": {}}))),
    ]);
    let started = PodRuntime::new(client)
        .start_attempt(&request(&job, &spec))
        .await;
    api.done().await;
    let started = started.unwrap();
    assert_eq!(started.id, ID);
    assert_eq!(started.name, POD);
    assert_eq!(started.state, ContainerState::Running);
}

#[tokio::test]
async fn start_gives_the_pod_what_is_left_of_the_timeout() {
    let (client, api) = mock_client();
    let spec = spec(JobNetwork::Bridge);
    let job = job(&spec);
    // Bridge: no policy, the pod at once.
    let api = api.expect(vec![
        Exchange::post(pods_path("")).reply(201, pod(POD, json!({}), "Pending", json!({}))),
    ]);
    let mut no_deadline = request(&job, &spec);
    no_deadline.deadline = None;
    let started = PodRuntime::new(client).start_attempt(&no_deadline).await;
    api.done().await;
    assert_eq!(started.unwrap().state, ContainerState::Running);

    let (client, api) = mock_client();
    let api = api.expect(vec![
        Exchange::post(pods_path(""))
            // 300 s left, less the moment the test takes.
            .body("/spec/activeDeadlineSeconds", json!(299))
            .reply(201, pod(POD, json!({}), "Pending", json!({}))),
    ]);
    let mut timed = request(&job, &spec);
    timed.deadline = Some(Utc::now() + chrono::TimeDelta::milliseconds(299_500));
    let _ = PodRuntime::new(client).start_attempt(&timed).await;
    api.done().await;
}

#[tokio::test]
async fn start_adopts_what_exists() {
    let (client, api) = mock_client();
    let spec = spec(JobNetwork::None);
    let job = job(&spec);
    let running = pod(
        POD,
        json!({keys::LABEL_UID: UID}),
        "Running",
        json!({"running": {"startedAt": "2026-01-01T00:00:01Z"}}),
    );
    let api = api.expect(vec![
        Exchange::post(policies_path("")).reply(409, already_exists()),
        Exchange::post(pods_path("")).reply(409, already_exists()),
        Exchange::get(pods_path(&format!("/{POD}"))).reply(200, running),
    ]);
    let adopted = PodRuntime::new(client)
        .start_attempt(&request(&job, &spec))
        .await;
    api.done().await;
    let adopted = adopted.unwrap();
    assert_eq!(adopted.state, ContainerState::Running);
    assert_eq!(adopted.label(keys::LABEL_UID), Some(UID));
    assert_eq!(
        adopted.started_at.map(|t| t.to_rfc3339()),
        Some("2026-01-01T00:00:01+00:00".to_string())
    );
}

#[tokio::test]
async fn a_refused_pod_is_an_error() {
    let (client, api) = mock_client();
    let spec = spec(JobNetwork::Bridge);
    let job = job(&spec);
    let api = api.expect(vec![Exchange::post(pods_path("")).reply(
        403,
        status(403, "Forbidden", "pods is forbidden: exceeded quota"),
    )]);
    let refused = PodRuntime::new(client)
        .start_attempt(&request(&job, &spec))
        .await;
    api.done().await;
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("exceeded quota"), "{message}");
}

#[tokio::test]
async fn list_selects_by_label_in_every_namespace_and_reads_the_states() {
    let (client, api) = mock_client();
    let labels = json!({keys::LABEL_UID: UID, NONCE_LABEL: NONCE});
    let pods = json!({
        "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5"},
        "items": [
            pod("running", labels.clone(), "Running", json!({"running": {}})),
            pod("failed", labels.clone(), "Failed", json!({"terminated": {
                "exitCode": 3, "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:09Z"}})),
            holding_pod("held", 2),
            holding_pod("busy", 2),
        ],
    });
    let done_log = [
        marker("01", "start:0"),
        "2026-01-01T00:00:02Z one\n".to_string(),
        marker("02", "end:0:0"),
        marker("03", "start:1"),
        marker("04", "end:1:0"),
    ]
    .concat();
    let busy_log = [
        marker("01", "start:0"),
        marker("02", "end:0:0"),
        marker("03", "start:1"),
    ]
    .concat();
    let api = api.expect(vec![
        Exchange::get(core_path(None, "pods"))
            .query(
                "labelSelector",
                &format!("{}={UID},{}=Job", keys::LABEL_UID, keys::LABEL_KIND),
            )
            .reply(200, pods),
        Exchange::get(pods_path("/held/log"))
            .query("container", "steps")
            .query("timestamps", "true")
            .reply_text(200, done_log),
        Exchange::get(pods_path("/busy/log")).reply_text(200, busy_log),
    ]);
    let listed = PodRuntime::new(client)
        .list(&[(keys::LABEL_UID, UID), (keys::LABEL_KIND, "Job")])
        .await;
    api.done().await;
    let listed = listed.unwrap();
    let states: Vec<(&str, &ContainerState)> =
        listed.iter().map(|c| (c.id.as_str(), &c.state)).collect();
    assert_eq!(
        states,
        [
            ("team-a/running", &ContainerState::Running),
            ("team-a/failed", &ContainerState::Exited { code: 3 }),
            // Steps over, holding for its artifacts: for the controller, it has exited.
            ("team-a/held", &ContainerState::Exited { code: 0 }),
            ("team-a/busy", &ContainerState::Running),
        ]
    );
    assert!(listed[1].finished_at.is_some());
}

#[test]
fn a_failed_step_ends_a_holding_runner_with_its_code() {
    let mut parser = RunnerParser::new(NONCE, 3);
    for (at, what) in [
        ("01", "start:0"),
        ("02", "end:0:0"),
        ("03", "start:1"),
        ("04", "end:1:7"),
    ] {
        let line =
            LineAssembler::default().push_frame(LogStream::Stdout, marker(at, what).as_bytes());
        parser.push(&line[0]);
    }
    assert_eq!(parser.finished_code(), Some(7));
    assert_eq!(RunnerParser::new(NONCE, 3).finished_code(), None);
}

#[test]
fn pods_that_ended_without_the_container_running_have_exited() {
    let info = |phase: &str, state: Value| {
        let pod: Pod = serde_json::from_value(pod(POD, json!({}), phase, state)).unwrap();
        pod_info(&pod).state
    };
    assert_eq!(
        info(
            "Pending",
            json!({"waiting": {"reason": "ContainerCreating"}})
        ),
        ContainerState::Running
    );
    assert_eq!(
        info("Failed", json!({})),
        ContainerState::Exited { code: 1 }
    );
    assert_eq!(
        info("Succeeded", json!({})),
        ContainerState::Exited { code: 0 }
    );
    assert_eq!(
        info("Unknown", json!({})),
        ContainerState::Other("Unknown".into())
    );
}

#[test]
fn a_pod_stuck_on_its_image_cannot_start_and_says_why() {
    let info = |state: Value| {
        let pod: Pod = serde_json::from_value(pod(POD, json!({}), "Pending", state)).unwrap();
        pod_info(&pod).state
    };
    assert_eq!(
        info(json!({"waiting": {
            "reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"busybox:nope\""
        }})),
        ContainerState::CannotStart {
            reason: "ImagePullBackOff: Back-off pulling image \"busybox:nope\"".into()
        }
    );
    assert_eq!(
        info(json!({"waiting": {"reason": "InvalidImageName"}})),
        ContainerState::CannotStart {
            reason: "InvalidImageName".into()
        }
    );
    // On its way: still Running as far as the controller is concerned.
    for reason in ["ContainerCreating", "PodInitializing"] {
        assert_eq!(
            info(json!({"waiting": {"reason": reason}})),
            ContainerState::Running,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn logs_follow_the_pod_log_with_timestamps() {
    let (client, api) = mock_client();
    let api = api.expect(vec![
        Exchange::get(pods_path(&format!("/{POD}/log")))
            .query("container", "steps")
            .query("follow", "true")
            .query("timestamps", "true")
            .reply_text(
                200,
                "2026-01-01T00:00:01.5Z hello\n2026-01-01T00:00:02Z no newline at the end",
            ),
        Exchange::get(pods_path("/gone/log")).not_found(),
    ]);
    let runtime = PodRuntime::new(client);
    let lines: Vec<_> = runtime.logs(ID, true).collect().await;
    let gone: Vec<_> = runtime.logs("team-a/gone", false).collect().await;
    api.done().await;
    let lines: Vec<LogLine> = lines.into_iter().map(Result::unwrap).collect();
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["hello", "no newline at the end"]);
    assert_eq!(
        lines[0].timestamp.to_rfc3339(),
        "2026-01-01T00:00:01.500+00:00"
    );
    assert!(
        matches!(gone.as_slice(), [Err(RuntimeError::ContainerNotFound { container })] if container == "team-a/gone"),
        "{gone:?}"
    );
}

#[tokio::test]
async fn stop_deletes_the_pod_with_the_grace_and_gone_is_fine() {
    let (client, api) = mock_client();
    let api = api.expect(vec![
        Exchange::delete(pods_path(&format!("/{POD}")))
            .body("/gracePeriodSeconds", json!(5))
            .reply(200, pod(POD, json!({}), "Running", json!({}))),
        Exchange::delete(pods_path(&format!("/{POD}"))).not_found(),
    ]);
    let runtime = PodRuntime::new(client);
    let first = runtime.stop(ID, 5).await;
    let again = runtime.stop(ID, 5).await;
    api.done().await;
    first.unwrap();
    again.unwrap();
}

#[tokio::test]
async fn remove_deletes_the_pod_and_its_policy_and_gone_is_fine() {
    let (client, api) = mock_client();
    let api = api.expect(vec![
        Exchange::delete(pods_path(&format!("/{POD}")))
            .reply(200, pod(POD, json!({}), "Succeeded", json!({}))),
        Exchange::delete(policies_path(&format!("/{POD}"))).reply(200, status(200, "", "")),
        Exchange::delete(pods_path(&format!("/{POD}"))).not_found(),
        Exchange::delete(policies_path(&format!("/{POD}"))).not_found(),
    ]);
    let runtime = PodRuntime::new(client);
    let attempt = ContainerInfo {
        id: ID.into(),
        name: POD.into(),
        labels: Default::default(),
        state: ContainerState::Exited { code: 0 },
        started_at: None,
        finished_at: None,
        image_id: None,
    };
    let first = runtime.remove(&attempt).await;
    let again = runtime.remove(&attempt).await;
    api.done().await;
    first.unwrap();
    again.unwrap();
}

#[tokio::test]
async fn copy_out_and_release_exec_in_the_steps_container() {
    let (client, api) = mock_client();
    let api = api.expect(vec![
        Exchange::get(pods_path(&format!("/{POD}/exec")))
            .query("container", "steps")
            .query("stdout", "true")
            .query("stderr", "true")
            .query("command", "tar")
            .query("command", "/work/out")
            .query("command", "report.txt")
            .not_found(),
        Exchange::get(pods_path(&format!("/{POD}/exec")))
            .query("command", "/bin/sh")
            .query("command", ": > '/.orcaops/collected'")
            .not_found(),
    ]);
    let runtime = PodRuntime::new(client);
    let dir = tempfile::tempdir().unwrap();
    let copied = runtime
        .copy_out(ID, "/work/out/report.txt", dir.path(), "report", 1 << 30)
        .await;
    let released = runtime.release(ID).await;
    api.done().await;
    assert!(
        matches!(copied, Err(RuntimeError::ContainerNotFound { .. })),
        "{copied:?}"
    );
    assert!(
        matches!(released, Err(RuntimeError::ContainerNotFound { .. })),
        "{released:?}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing is left behind"
    );
}

#[test]
fn holding_needs_a_holding_runner_and_the_step_count() {
    let held: Pod = serde_json::from_value(holding_pod("held", 2)).unwrap();
    assert_eq!(holding_steps(&held), Some(2));
    // Every pod mounts the runner's directory; that alone is not holding.
    let mut mounted = holding_pod("mounted", 2);
    mounted["spec"]["containers"][0]["command"] = json!(["/bin/sh", "-c", "exit 0"]);
    let mounted: Pod = serde_json::from_value(mounted).unwrap();
    assert_eq!(holding_steps(&mounted), None);
    let plain: Pod = serde_json::from_value(pod("plain", json!({}), "Running", json!({}))).unwrap();
    assert_eq!(holding_steps(&plain), None);
}

#[test]
fn a_service_restarted_before_the_steps_started_means_the_attempt_cannot_start() {
    let with_sidecar = |sidecar: Value, steps_state: Value| {
        let mut pod = pod(POD, json!({}), "Pending", steps_state);
        pod["status"]["initContainerStatuses"] = json!([sidecar]);
        let pod: Pod = serde_json::from_value(pod).unwrap();
        pod_info(&pod).state
    };
    let waiting = json!({"waiting": {"reason": "PodInitializing"}});
    let sidecar = |restarts: i32, last: Value| {
        json!({"name": "db", "image": "postgres:16", "imageID": "", "ready": false,
            "restartCount": restarts, "state": {"running": {}}, "lastState": last})
    };
    // Starting: the steps wait.
    assert_eq!(
        with_sidecar(sidecar(0, json!({})), waiting.clone()),
        ContainerState::Running
    );
    let ContainerState::CannotStart { reason } = with_sidecar(
        sidecar(
            1,
            json!({"terminated": {"exitCode": 137, "reason": "Error"}}),
        ),
        waiting.clone(),
    ) else {
        panic!("a restarted service is not ready");
    };
    assert!(
        reason.contains("service \"db\" did not become ready")
            && reason.contains("restarted it 1 time(s)")
            && reason.contains("Error with 137"),
        "{reason}"
    );
    let stuck = json!({"name": "db", "image": "nope", "imageID": "", "ready": false,
        "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}});
    assert_eq!(
        with_sidecar(stuck, waiting),
        ContainerState::CannotStart {
            reason: "service \"db\" did not become ready: ImagePullBackOff".into()
        }
    );
    // Once the steps run, a restarted service is theirs to notice, not a start failure.
    assert_eq!(
        with_sidecar(
            sidecar(2, json!({})),
            json!({"running": {"startedAt": "2026-01-01T00:00:01Z"}})
        ),
        ContainerState::Running
    );
}
