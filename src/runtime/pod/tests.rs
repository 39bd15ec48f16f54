//! Snapshots of the pods and policies Job attempts become, and the properties
//! a snapshot review could miss.
//!
//! Every input is fixed (uid, nonce, instance), so a snapshot only changes
//! when the builder does. Accept a deliberate change with
//! `INSTA_UPDATE=always cargo test --lib runtime::pod` and read every changed
//! `.snap` before committing it; with `CI=true` a missing or different
//! snapshot fails.

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::resources::common::{EnvVar, Resources};
use crate::resources::job::{
    Artifact, JobNetwork, JobSecurity, JobService, JobSpec, ServiceReadiness, Step,
};
use crate::resources::validate::dns_label_problem;
use crate::resources::{Kind, Object};
use crate::runtime::names::{container_labels, container_name};
use crate::runtime::runner::{self, RELEASE_FILE, RunnerOptions};

const UID: &str = "0123abcd-4567-89ef-0123-456789abcdef";
const NONCE: &str = "f00dfeedc0ffee42";
const INSTANCE: &str = "a1b2c3d4e5f6";

/// A Job and the inputs of its attempt 1 of run 2.
struct Fixture {
    job: Object,
    spec: JobSpec,
    active_deadline_seconds: Option<i64>,
}

impl Fixture {
    /// `build` in `team-a`: two steps (a script and an exec form), one env var, a working dir.
    fn new() -> Self {
        let spec = JobSpec {
            image: "busybox:1.36".into(),
            steps: vec![
                Step::script(
                    "prepare",
                    "mkdir -p out && echo \"it's $TARGET\" > out/report.txt",
                ),
                Step::exec(
                    "check",
                    vec!["test".into(), "-s".into(), "out/report.txt".into()],
                ),
            ],
            env: vec![EnvVar {
                name: "TARGET".into(),
                value: "release".into(),
                value_from: None,
            }],
            working_dir: Some("/work".into()),
            ..Default::default()
        };
        Self::named("team-a", "build", spec)
    }

    fn named(namespace: &str, name: &str, spec: JobSpec) -> Self {
        let mut job = Object::new(
            Kind::Job,
            namespace,
            name,
            serde_json::to_value(&spec).unwrap(),
        );
        job.metadata.uid = UID.into();
        job.metadata.generation = 1;
        Fixture {
            job,
            spec,
            active_deadline_seconds: None,
        }
    }

    fn with(mut self, change: impl FnOnce(&mut JobSpec)) -> Self {
        change(&mut self.spec);
        self.job.spec = serde_json::to_value(&self.spec).unwrap();
        self
    }

    fn attempt(&self) -> JobAttempt<'_> {
        JobAttempt {
            job: &self.job,
            spec: &self.spec,
            run: 2,
            attempt: 1,
            nonce: NONCE,
            instance: INSTANCE,
            active_deadline_seconds: self.active_deadline_seconds,
            default_memory_bytes: 512 << 20,
        }
    }

    fn pod(&self) -> Pod {
        build_pod(&self.attempt())
    }

    /// The pod as a snapshot shows it: the runner script, one long line, is named
    /// instead of printed when it is exactly the script of the Job's steps (with the
    /// hold when the Job has artifacts). Any other script is printed whole.
    fn pod_for_review(&self) -> serde_json::Value {
        let mut pod = serde_json::to_value(self.pod()).unwrap();
        let script = pod
            .pointer_mut("/spec/containers/0/command/2")
            .expect("the runner script is the third word of the command");
        let steps = &self.spec.steps;
        let hold = RunnerOptions {
            hold_for_collection: true,
        };
        let name = if script == &runner::runner_script(steps, NONCE) {
            "<the runner script of the steps, as on Docker>"
        } else if script == &runner::runner_command_with(steps, NONCE, hold)[2] {
            "<the runner script of the steps, holding for collection at the end>"
        } else {
            return pod;
        };
        *script = name.into();
        pod
    }

    fn container_command(&self) -> Vec<String> {
        let pod = self.pod();
        pod.spec.unwrap().containers[0].command.clone().unwrap()
    }
}

fn security(change: impl FnOnce(&mut JobSecurity)) -> impl FnOnce(&mut JobSpec) {
    |spec| change(&mut spec.security)
}

fn resources(cpu: Option<&str>, memory: Option<&str>) -> impl FnOnce(&mut JobSpec) {
    let resources = Resources {
        cpu: cpu.map(String::from),
        memory: memory.map(String::from),
    };
    |spec| spec.resources = Some(resources)
}

// Snapshots.

#[test]
fn plain_job() {
    insta::assert_yaml_snapshot!(Fixture::new().pod_for_review());
}

#[test]
fn security_run_as_non_root() {
    let fixture = Fixture::new().with(security(|s| s.run_as_non_root = true));
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn security_run_as_user_and_group() {
    let fixture = Fixture::new().with(security(|s| {
        s.run_as_user = Some(1000);
        s.run_as_group = Some(100);
    }));
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn security_read_only_root() {
    let fixture = Fixture::new().with(security(|s| s.read_only_root_filesystem = true));
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn security_all_at_once() {
    let fixture = Fixture::new().with(|spec| {
        spec.security = JobSecurity {
            run_as_non_root: true,
            run_as_user: Some(1000),
            run_as_group: Some(100),
            read_only_root_filesystem: true,
        };
        spec.artifacts = vec![Artifact {
            name: "report".into(),
            path: "/work/out/report.txt".into(),
            optional: false,
        }];
    });
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn network_none_is_a_pod_and_a_deny_all_policy() {
    let fixture = Fixture::new().with(|spec| spec.network = JobNetwork::None);
    let policy = build_network_policy(&fixture.attempt()).expect("network none has a policy");
    insta::assert_yaml_snapshot!((fixture.pod_for_review(), policy));
}

#[test]
fn network_bridge_is_a_pod_without_policy() {
    let fixture = Fixture::new().with(|spec| spec.network = JobNetwork::Bridge);
    assert!(build_network_policy(&fixture.attempt()).is_none());
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn resources_cpu_only() {
    let fixture = Fixture::new().with(resources(Some("500m"), None));
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn resources_memory_only() {
    let fixture = Fixture::new().with(resources(None, Some("256Mi")));
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn resources_cpu_and_memory() {
    let fixture = Fixture::new().with(resources(Some("1.5"), Some("1G")));
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn resources_none() {
    // An empty `resources: {}` block is the same as none at all.
    let fixture = Fixture::new().with(resources(None, None));
    assert_eq!(fixture.pod(), Fixture::new().pod());
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

#[test]
fn artifacts_mount_the_collection_volume_and_hold() {
    let fixture = Fixture::new().with(|spec| {
        spec.artifacts = vec![
            Artifact {
                name: "report".into(),
                path: "/work/out/report.txt".into(),
                optional: false,
            },
            Artifact {
                name: "out".into(),
                path: "/work/out".into(),
                optional: true,
            },
        ]
    });
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
    // The script itself, to read the hold at its end.
    insta::assert_snapshot!("holding_runner_script", &fixture.container_command()[2]);
}

#[test]
fn services_are_native_sidecars_with_startup_probes_and_host_aliases() {
    let fixture = Fixture::new().with(|spec| {
        spec.network = JobNetwork::None;
        spec.services = vec![
            JobService {
                name: "db".into(),
                image: "postgres:16".into(),
                env: vec![EnvVar {
                    name: "POSTGRES_PASSWORD".into(),
                    value: "test".into(),
                    value_from: None,
                }],
                ports: vec![5432],
                readiness: Some(ServiceReadiness {
                    exec: Some(vec!["pg_isready".into()]),
                    period_seconds: Some(2),
                    failure_threshold: Some(30),
                    ..Default::default()
                }),
                ..Default::default()
            },
            JobService {
                name: "web".into(),
                image: "busybox:latest".into(),
                command: vec!["httpd".into(), "-f".into(), "-p".into(), "8080".into()],
                ports: vec![8080],
                ..Default::default()
            },
            JobService {
                name: "worker".into(),
                image: "busybox:latest".into(),
                command: vec!["sleep".into(), "600".into()],
                ..Default::default()
            },
        ];
    });
    let pod = fixture.pod();
    let spec = pod.spec.clone().unwrap();
    let sidecars = spec.init_containers.clone().unwrap();
    assert_eq!(
        sidecars
            .iter()
            .map(|c| (c.name.as_str(), c.restart_policy.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("db", Some("Always")),
            ("web", Some("Always")),
            ("worker", Some("Always"))
        ]
    );
    // The web server's readiness defaults to its first port; a service without ports
    // is ready once it runs.
    let web = sidecars[1].startup_probe.clone().unwrap();
    assert_eq!(
        web.tcp_socket.unwrap().port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080)
    );
    assert_eq!(
        (
            web.period_seconds,
            web.timeout_seconds,
            web.failure_threshold
        ),
        (Some(1), Some(1), Some(60))
    );
    assert!(sidecars[2].startup_probe.is_none());
    for sidecar in &sidecars {
        let security = sidecar.security_context.clone().unwrap();
        assert_eq!(security.allow_privilege_escalation, Some(false), "hardened");
        assert!(
            sidecar
                .resources
                .as_ref()
                .is_some_and(|r| r.limits.as_ref().is_some_and(|l| l.contains_key("memory"))),
            "the default memory limit"
        );
    }
    let aliases = spec.host_aliases.clone().unwrap();
    assert_eq!(aliases[0].ip, "127.0.0.1");
    assert_eq!(
        aliases[0].hostnames.clone().unwrap(),
        ["db", "web", "worker"]
    );
    // The same deny-all policy: a pod's containers share its network namespace, so the
    // steps reach their services over loopback, which a NetworkPolicy does not touch.
    let policy = build_network_policy(&fixture.attempt()).unwrap();
    assert_eq!(policy.spec.as_ref().unwrap().egress, None);
    insta::assert_yaml_snapshot!((fixture.pod_for_review(), policy));
}

#[test]
fn timeout_is_the_active_deadline() {
    let mut fixture = Fixture::new().with(|spec| spec.timeout_seconds = Some(600));
    fixture.active_deadline_seconds = Some(540);
    insta::assert_yaml_snapshot!(fixture.pod_for_review());
}

// Properties.

#[test]
fn pod_labels_are_the_container_labels_with_the_nonce() {
    let fixture = Fixture::new();
    let labels = fixture.pod().metadata.labels.unwrap();
    assert_eq!(
        labels,
        container_labels(&fixture.job, INSTANCE, 2, 1, NONCE)
    );
    assert_eq!(labels["orcaops.dev/runner-nonce"], NONCE);
}

#[test]
fn the_policy_selects_the_pod_and_carries_its_name_labels_and_owner() {
    let fixture = Fixture::new();
    let pod = fixture.pod();
    let policy = build_network_policy(&fixture.attempt()).unwrap();
    let pod_labels = pod.metadata.labels.clone().unwrap();
    let selector = policy
        .spec
        .unwrap()
        .pod_selector
        .unwrap()
        .match_labels
        .unwrap();
    assert_eq!(selector.len(), 3, "uid, run and attempt: {selector:?}");
    for (key, value) in &selector {
        assert_eq!(pod_labels.get(key), Some(value), "{key}");
    }
    assert_eq!(policy.metadata, pod.metadata);
    // Another attempt of the same Job is not selected.
    let mut next = fixture.attempt();
    next.attempt = 2;
    let next_labels = build_pod(&next).metadata.labels.unwrap();
    assert!(
        selector
            .iter()
            .any(|(key, value)| next_labels.get(key) != Some(value))
    );
}

#[test]
fn the_pod_is_owned_by_its_job_as_its_controller() {
    let owners = Fixture::new().pod().metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1);
    let owner = &owners[0];
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str()),
        ("orcaops.dev/v1alpha1", "Job")
    );
    assert_eq!((owner.name.as_str(), owner.uid.as_str()), ("build", UID));
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
}

#[test]
fn without_artifacts_the_pod_runs_exactly_the_docker_runner() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture.container_command(),
        runner::runner_command(&fixture.spec.steps, NONCE)
    );
    // Only the runner's own volume (for the steps' outputs), not holding.
    let volumes = fixture.pod().spec.unwrap().volumes.unwrap();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].name, "orcaops");
}

#[test]
fn with_artifacts_the_runner_holds_for_the_release_file_in_the_mounted_volume() {
    let fixture = Fixture::new().with(|spec| {
        spec.artifacts = vec![Artifact {
            name: "report".into(),
            path: "/work/out/report.txt".into(),
            optional: false,
        }]
    });
    let script = &fixture.container_command()[2];
    assert!(
        script.contains(&runner::shell_quote(RELEASE_FILE)),
        "{script}"
    );
    let pod = fixture.pod();
    let spec = pod.spec.unwrap();
    let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert!(RELEASE_FILE.starts_with(&format!("{}/", mount.mount_path)));
    let volume = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(volume.name, mount.name);
    assert!(volume.empty_dir.is_some());
}

#[test]
fn a_spent_deadline_still_gives_a_pod_kubernetes_accepts() {
    let mut fixture = Fixture::new();
    fixture.active_deadline_seconds = Some(0);
    let deadline = |f: &Fixture| f.pod().spec.unwrap().active_deadline_seconds;
    assert_eq!(deadline(&fixture), Some(1));
    fixture.active_deadline_seconds = None;
    assert_eq!(deadline(&fixture), None);
}

#[test]
fn the_pod_is_named_as_the_docker_container_when_that_fits() {
    let fixture = Fixture::new();
    let name = fixture.pod().metadata.name.unwrap();
    assert_eq!(name, container_name(&fixture.job.metadata, 2, 1));
    assert_eq!(name, "orcaops-team-a-build-0123abcd-r2a1");
}

#[test]
fn long_pod_names_are_cut_to_a_dns_label_keeping_uid_run_and_attempt() {
    let namespace = "n".repeat(63);
    let name = format!("{}-x", "j".repeat(50));
    let long = Fixture::named(&namespace, &name, Fixture::new().spec);
    for (run, attempt) in [(1, 1), (u32::MAX, u32::MAX)] {
        let pod_name = pod_name(&long.job.metadata, run, attempt);
        assert!(pod_name.len() <= MAX_POD_NAME, "{pod_name}");
        assert_eq!(
            dns_label_problem(&pod_name, MAX_POD_NAME),
            None,
            "{pod_name}"
        );
        assert!(pod_name.starts_with("orcaops-nnn"), "{pod_name}");
        assert!(
            pod_name.ends_with(&format!("-0123abcd-r{run}a{attempt}")),
            "{pod_name}"
        );
        assert!(!pod_name.contains("--"), "{pod_name}");
    }
    // Cut right after a dash: the dash goes, not the suffix.
    let at_dash = Fixture::named(
        "ns",
        &format!("{}-tail", "j".repeat(37)),
        Fixture::new().spec,
    );
    assert_eq!(
        pod_name(&at_dash.job.metadata, 1, 1),
        format!("orcaops-ns-{}-0123abcd-r1a1", "j".repeat(37))
    );
    // Jobs that differ only past the cut keep different pods: the uid is never cut.
    let mut other = Fixture::named(
        &namespace,
        &format!("{}-y", "j".repeat(50)),
        Fixture::new().spec,
    );
    other.job.metadata.uid = "fedcba98-0000-0000-0000-000000000000".into();
    let (a, b) = (
        pod_name(&long.job.metadata, 1, 1),
        pod_name(&other.job.metadata, 1, 1),
    );
    assert_eq!(a[..40], b[..40]);
    assert_ne!(a, b);
}

/// On a cluster a secret-derived variable is the pod's own `secretKeyRef`: the kubelet
/// reads the Secret, and the operator never holds the value (nor puts one in the pod).
#[test]
fn env_from_a_secret_becomes_the_pods_own_secret_key_ref() {
    use crate::resources::common::{EnvVarSource, SecretKeySelector};
    let reference = |name: &str| EnvVar {
        name: name.into(),
        value: String::new(),
        value_from: Some(EnvVarSource {
            secret_key_ref: SecretKeySelector {
                name: "hook".into(),
                key: "token".into(),
            },
        }),
    };
    let pod = Fixture::new()
        .with(|spec| {
            spec.env.push(reference("TOKEN"));
            spec.services = vec![JobService {
                name: "db".into(),
                image: "postgres:16".into(),
                env: vec![reference("POSTGRES_PASSWORD")],
                ..Default::default()
            }];
        })
        .pod();
    let json = serde_json::to_value(&pod).unwrap();
    let steps = pod.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let token = steps
        .iter()
        .find(|e| e.name == "TOKEN")
        .expect("TOKEN in the steps' env");
    assert_eq!(token.value, None, "no value in the pod: {token:?}");
    let selector = token
        .value_from
        .as_ref()
        .and_then(|f| f.secret_key_ref.as_ref())
        .expect("a secretKeyRef");
    assert_eq!(selector.name, "hook");
    assert_eq!(selector.key, "token");
    assert_eq!(
        selector.optional,
        Some(false),
        "a missing secret must not start the pod"
    );
    // The plain variables and the run's context are still values.
    assert!(
        steps
            .iter()
            .any(|e| e.name == "TARGET" && e.value.as_deref() == Some("release"))
    );
    assert!(
        steps
            .iter()
            .any(|e| e.name == "ORCAOPS_RUN" && e.value.as_deref() == Some("2"))
    );
    // The service (a native sidecar) reads the same way.
    let text = json.to_string();
    assert_eq!(text.matches("\"secretKeyRef\"").count(), 2, "{text}");
    assert!(text.contains("\"POSTGRES_PASSWORD\""), "{text}");
}
