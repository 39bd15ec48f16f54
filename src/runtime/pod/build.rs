//! Building the Pod and the NetworkPolicy of one Job attempt. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HostAlias, Pod, PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::resources::common::Resources;
use crate::resources::job::{JobNetwork, JobSpec, ReadinessCheck};
use crate::resources::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::resources::{API_VERSION, DEFAULT_WORKSPACE, Kind, Object, keys};
use crate::runtime::names::{CONTEXT_ENV, STOP_GRACE_SECS, container_labels, step_env, uid8};
use crate::runtime::runner::{self, COLLECTION_DIR, RunnerOptions};

/// The longest pod name: a pod's hostname is its name, and a hostname is one DNS label.
pub const MAX_POD_NAME: usize = 63;

/// The name of the one container in an attempt's pod.
pub const STEPS_CONTAINER: &str = "steps";

/// The `emptyDir` holding the runner's files: the steps' outputs, the release file.
const COLLECTION_VOLUME: &str = "orcaops";
/// The `emptyDir` at `/tmp` of a read-only root filesystem.
const TMP_VOLUME: &str = "tmp";

/// One attempt of a Job: everything its pod is built from.
#[derive(Clone, Copy, Debug)]
pub struct JobAttempt<'a> {
    /// The Job as stored: its name, namespace and uid name and own the pod.
    pub job: &'a Object,
    /// The Job's spec, already read from `job`.
    pub spec: &'a JobSpec,
    pub run: u32,
    pub attempt: u32,
    /// The runner's marker nonce ([`runner::new_nonce`]); also a label.
    pub nonce: &'a str,
    /// The identity of the store that owns the pod (`orcaops.dev/instance`).
    pub instance: &'a str,
    /// What is left of the run's `timeoutSeconds` when this attempt starts, if it has one.
    pub active_deadline_seconds: Option<i64>,
    /// The memory limit when the spec names none (the server's `--default-memory`).
    pub default_memory_bytes: u64,
}

impl JobAttempt<'_> {
    fn name(&self) -> String {
        pod_name(&self.job.metadata, self.run, self.attempt)
    }

    fn namespace(&self) -> String {
        self.job
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string())
    }

    fn labels(&self) -> BTreeMap<String, String> {
        container_labels(self.job, self.instance, self.run, self.attempt, self.nonce)
    }

    /// Named like the pod, in its namespace, with its labels, owned by the Job.
    fn metadata(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name()),
            namespace: Some(self.namespace()),
            labels: Some(self.labels()),
            owner_references: Some(vec![job_owner(self.job)]),
            ..Default::default()
        }
    }

    fn holds_for_collection(&self) -> bool {
        !self.spec.artifacts.is_empty()
    }
}

/// The pod of one attempt: the Docker container name scheme
/// (`orcaops-<ns>-<name>-<uid8>-r<run>a<attempt>`), cut to [`MAX_POD_NAME`].
/// What is cut is the end of `orcaops-<ns>-<name>`: the uid and the attempt
/// that make the name unique always stay whole.
pub fn pod_name(meta: &crate::resources::ObjectMeta, run: u32, attempt: u32) -> String {
    let namespace = meta.namespace.as_deref().unwrap_or(DEFAULT_WORKSPACE);
    fit_name(
        &format!("orcaops-{namespace}-{}", meta.name),
        &format!("-{}-r{run}a{attempt}", uid8(&meta.uid)),
        MAX_POD_NAME,
    )
}

/// `prefix + suffix` as a DNS label of at most `max` characters, cutting the
/// prefix. A cut prefix loses its trailing `-`, so the name never holds a
/// doubled dash where it was cut.
pub(super) fn fit_name(prefix: &str, suffix: &str, max: usize) -> String {
    let dns = |text: &str| -> String {
        text.chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    };
    let (prefix, suffix) = (dns(prefix), dns(suffix));
    let room = max.saturating_sub(suffix.len());
    if prefix.len() <= room {
        return prefix + &suffix;
    }
    let cut = prefix[..room].trim_end_matches('-');
    format!("{cut}{suffix}")
}

fn job_owner(job: &Object) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.to_string(),
        kind: Kind::Job.as_str().to_string(),
        name: job.metadata.name.clone(),
        uid: job.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod of one attempt. Pure: the same attempt always gives the same pod.
pub fn build_pod(attempt: &JobAttempt<'_>) -> Pod {
    let spec = attempt.spec;
    let security = &spec.security;
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    // The runner's own files: the steps' `ORCAOPS_OUTPUT` and the release file. An
    // `emptyDir` is writable by any user, whatever the root filesystem. In memory and
    // 1 MiB, as Docker's tmpfs: a step that writes there without end gets "no space
    // left" instead of the pod being evicted for its disk use.
    volumes.push(Volume {
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_string()),
            size_limit: Some(Quantity("1Mi".to_string())),
            ..Default::default()
        }),
        ..empty_dir(COLLECTION_VOLUME)
    });
    mounts.push(mount(COLLECTION_VOLUME, COLLECTION_DIR));
    if security.read_only_root_filesystem {
        // As Docker's tmpfs: shells need somewhere to write here documents.
        volumes.push(empty_dir(TMP_VOLUME));
        mounts.push(mount(TMP_VOLUME, "/tmp"));
    }
    let container = Container {
        name: STEPS_CONTAINER.to_string(),
        image: Some(spec.image.clone()),
        command: Some(runner::runner_command_with(
            &spec.steps,
            attempt.nonce,
            RunnerOptions {
                hold_for_collection: attempt.holds_for_collection(),
            },
        )),
        env: Some(step_env_vars(attempt, &spec.env)),
        working_dir: spec.working_dir.clone(),
        resources: resources(Some(&with_default_memory(
            spec.resources.as_ref(),
            attempt.default_memory_bytes,
        ))),
        security_context: Some(SecurityContext {
            read_only_root_filesystem: security.read_only_root_filesystem.then_some(true),
            ..hardened_container()
        }),
        // The results travel in the log; the message stays unused (see the module doc).
        termination_message_policy: Some("File".to_string()),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    };
    let services = service_containers(attempt);
    Pod {
        metadata: attempt.metadata(),
        spec: Some(PodSpec {
            containers: vec![container],
            // Native sidecars: the kubelet starts the steps once every one has passed its
            // startup probe, and stops them when the steps end.
            init_containers: (!services.is_empty()).then_some(services),
            // The steps reach each service by its name, as on Docker's network.
            host_aliases: (!spec.services.is_empty()).then(|| {
                vec![HostAlias {
                    ip: "127.0.0.1".to_string(),
                    hostnames: Some(spec.services.iter().map(|s| s.name.clone()).collect()),
                }]
            }),
            restart_policy: Some("Never".to_string()),
            // Kubernetes refuses 0; a run with no time left should not start a pod at all,
            // and if it does, it ends at once.
            active_deadline_seconds: attempt.active_deadline_seconds.map(|s| s.max(1)),
            termination_grace_period_seconds: Some(i64::from(STOP_GRACE_SECS)),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(runtime_default_seccomp()),
                run_as_non_root: security.run_as_non_root.then_some(true),
                run_as_user: security.run_as_user,
                run_as_group: security.run_as_group,
                ..Default::default()
            }),
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..Default::default()
        }),
        status: None,
    }
}

/// The Job's services as native sidecars: init containers that keep running
/// (`restartPolicy: Always`), each with its readiness check as a `startupProbe`, so the
/// steps' container starts after they are ready. Hardened like the steps' container,
/// with the default memory limit.
fn service_containers(attempt: &JobAttempt<'_>) -> Vec<Container> {
    attempt
        .spec
        .services
        .iter()
        .map(|service| {
            let (period, timeout, threshold) = service.timing();
            let probe = |handler: Probe| Probe {
                period_seconds: Some(i32::try_from(period).unwrap_or(i32::MAX)),
                timeout_seconds: Some(i32::try_from(timeout).unwrap_or(i32::MAX)),
                failure_threshold: Some(i32::try_from(threshold).unwrap_or(i32::MAX)),
                ..handler
            };
            let startup_probe = match service.check() {
                ReadinessCheck::Running => None,
                ReadinessCheck::TcpPort(port) => Some(probe(Probe {
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(i32::from(port)),
                        host: None,
                    }),
                    ..Default::default()
                })),
                ReadinessCheck::Exec(command) => Some(probe(Probe {
                    exec: Some(ExecAction {
                        command: Some(command),
                    }),
                    ..Default::default()
                })),
            };
            Container {
                name: service.name.clone(),
                image: Some(service.image.clone()),
                command: (!service.command.is_empty()).then(|| service.command.clone()),
                env: env_vars(&service.env),
                ports: (!service.ports.is_empty()).then(|| {
                    service
                        .ports
                        .iter()
                        .map(|port| ContainerPort {
                            container_port: i32::from(*port),
                            ..Default::default()
                        })
                        .collect()
                }),
                restart_policy: Some("Always".to_string()),
                startup_probe,
                resources: resources(Some(&with_default_memory(
                    None,
                    attempt.default_memory_bytes,
                ))),
                security_context: Some(hardened_container()),
                termination_message_policy: Some("FallbackToLogsOnError".to_string()),
                ..Default::default()
            }
        })
        .collect()
}

/// For `network: none`, a policy that selects exactly this attempt's pod and
/// allows no traffic either way. It is named like the pod and must be
/// created before it: a pod that starts first has the network until the
/// policy arrives. `network: bridge` has none.
pub fn build_network_policy(attempt: &JobAttempt<'_>) -> Option<NetworkPolicy> {
    if attempt.spec.network != JobNetwork::None {
        return None;
    }
    let labels = attempt.labels();
    let selector = [keys::LABEL_UID, keys::LABEL_RUN, keys::LABEL_ATTEMPT]
        .into_iter()
        .map(|key| (key.to_string(), labels[key].clone()))
        .collect();
    Some(NetworkPolicy {
        metadata: attempt.metadata(),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Egress".to_string(), "Ingress".to_string()]),
            // No rules: nothing is allowed.
            egress: None,
            ingress: None,
        }),
    })
}

/// The Job's resources, with `default_bytes` of memory when it names none: a pod with
/// no limit could take the node's memory, as a container without one takes the host's.
fn with_default_memory(wanted: Option<&Resources>, default_bytes: u64) -> Resources {
    let mut resources = wanted.cloned().unwrap_or_default();
    if resources.memory.is_none() {
        resources.memory = Some(if default_bytes.is_multiple_of(1 << 20) {
            format!("{}Mi", default_bytes >> 20)
        } else {
            default_bytes.to_string()
        });
    }
    resources
}

/// Requests equal to limits, as Docker has only limits: the scheduler then
/// reserves what the Job (or the sandbox service) may use.
pub(super) fn resources(wanted: Option<&Resources>) -> Option<ResourceRequirements> {
    let wanted = wanted?;
    let mut quantities = BTreeMap::new();
    if let Some(cpu) = &wanted.cpu {
        let canonical = parse_cpu_millis(cpu).ok().map(|m| format!("{m}m"));
        quantities.insert("cpu".to_string(), quantity(cpu, canonical, CPU_SUFFIXES));
    }
    if let Some(memory) = &wanted.memory {
        let canonical = parse_memory_bytes(memory).ok().map(|b| b.to_string());
        quantities.insert(
            "memory".to_string(),
            quantity(memory, canonical, MEMORY_SUFFIXES),
        );
    }
    if quantities.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        requests: Some(quantities.clone()),
        limits: Some(quantities),
        claims: None,
    })
}

const CPU_SUFFIXES: &[&str] = &["m"];
const MEMORY_SUFFIXES: &[&str] = &["Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"];

/// The quantity as the Job wrote it, when Kubernetes reads it the same way;
/// otherwise the value our own parser read (`1K` means 1000 bytes to
/// orcaops, and nothing to Kubernetes, which writes `1k`).
fn quantity(written: &str, canonical: Option<String>, suffixes: &[&str]) -> Quantity {
    let written = written.trim();
    let number = suffixes
        .iter()
        .find_map(|suffix| written.strip_suffix(suffix))
        .unwrap_or(written);
    let plain_decimal = number.chars().any(|c| c.is_ascii_digit())
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1;
    match canonical {
        Some(canonical) if !plain_decimal => Quantity(canonical),
        _ => Quantity(written.to_string()),
    }
}

/// What every orcaops container runs with: no privileges, no capabilities.
pub(super) fn hardened_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        ..Default::default()
    }
}

/// The default seccomp profile, which Docker applies by itself.
pub(super) fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        localhost_profile: None,
    }
}

/// The steps' env on a pod: plain values and the run's context as values, and the
/// variables read from a Secret as the pod's own `valueFrom.secretKeyRef`, so that the
/// kubelet reads the Secret and the operator never holds its value.
fn step_env_vars(
    attempt: &JobAttempt<'_>,
    env: &[crate::resources::common::EnvVar],
) -> Vec<EnvVar> {
    let (from_secrets, plain): (Vec<_>, Vec<_>) =
        env.iter().cloned().partition(|e| e.secret_ref().is_some());
    step_env(attempt.job, &plain, attempt.run, attempt.attempt)
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            ..Default::default()
        })
        .chain(
            from_secrets
                .iter()
                .filter(|e| !CONTEXT_ENV.contains(&e.name.as_str()))
                .map(env_var),
        )
        .collect()
}

/// One variable as a container's: its value, or its Secret key reference.
fn env_var(e: &crate::resources::common::EnvVar) -> EnvVar {
    match e.secret_ref() {
        Some(reference) => EnvVar {
            name: e.name.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: reference.name.clone(),
                    key: reference.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        None => EnvVar {
            name: e.name.clone(),
            value: Some(e.value.clone()),
            ..Default::default()
        },
    }
}

/// A resource's `env` as a container's (None when empty, so that pods stay minimal).
pub(crate) fn env_vars(env: &[crate::resources::common::EnvVar]) -> Option<Vec<EnvVar>> {
    (!env.is_empty()).then(|| env.iter().map(env_var).collect())
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_name_keeps_the_suffix_and_drops_the_dash_at_the_cut() {
        assert_eq!(fit_name("orcaops-a-b", "-x-r1a1", 63), "orcaops-a-b-x-r1a1");
        assert_eq!(fit_name("abcd-efgh", "-s", 7), "abcd-s");
        assert_eq!(fit_name("abcd-efgh", "-s", 6), "abcd-s");
        assert_eq!(fit_name("abcd-efgh", "-s", 8), "abcd-e-s");
        assert_eq!(fit_name("Team_A", "-s", 63), "team-a-s");
    }

    #[test]
    fn quantities_keep_what_kubernetes_reads_and_convert_the_rest() {
        let cpu = |q: &str| {
            quantity(
                q,
                parse_cpu_millis(q).ok().map(|m| format!("{m}m")),
                CPU_SUFFIXES,
            )
            .0
        };
        let memory = |q: &str| {
            quantity(
                q,
                parse_memory_bytes(q).ok().map(|b| b.to_string()),
                MEMORY_SUFFIXES,
            )
            .0
        };
        assert_eq!(cpu("500m"), "500m");
        assert_eq!(cpu(" 1.5 "), "1.5");
        assert_eq!(cpu("2"), "2");
        assert_eq!(cpu("1e1"), "10000m");
        assert_eq!(memory("256Mi"), "256Mi");
        assert_eq!(memory("1G"), "1G");
        assert_eq!(memory("1048576"), "1048576");
        assert_eq!(memory("1K"), "1000");
        assert_eq!(memory("1E6"), "1000000");
    }
}
