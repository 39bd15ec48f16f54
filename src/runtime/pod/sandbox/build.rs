//! Building what one Sandbox becomes on a cluster: its pod (one container per
//! service), the Service for its ports, a PersistentVolumeClaim per named volume, and
//! the NetworkPolicy of `network: none` and `private`. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, HTTPGetAction, HostAlias, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec,
    Probe as K8sProbe, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::build::{
    MAX_POD_NAME, env_vars, fit_name, hardened_container, resources, runtime_default_seccomp,
};
use crate::resources::sandbox::{EffectiveSandbox, SandboxNetwork, SandboxService};
use crate::resources::{API_VERSION, DEFAULT_WORKSPACE, Kind, ObjectMeta as SandboxMeta, keys};
use crate::runtime::names::STOP_GRACE_SECS;
use crate::runtime::names::uid8;
use crate::runtime::sandbox::Probe;
use crate::runtime::sandbox::names::{Owner, owner_labels, probe_spec, service_hash};

/// The annotation prefix of the pod's per-service spec hashes
/// (`spec-hash.orcaops.dev/<service>`): a changed service means a new pod.
pub const SPEC_HASH_ANNOTATION: &str = "spec-hash.orcaops.dev/";

/// What a named volume's claim asks for: the spec has no size, and a sandbox's
/// volumes hold work files, not databases.
pub const VOLUME_SIZE: &str = "1Gi";

/// One Sandbox as placed on a cluster: everything its objects are built from.
#[derive(Clone, Copy, Debug)]
pub struct SandboxPlacement<'a> {
    pub meta: &'a SandboxMeta,
    /// The spec with its template applied.
    pub effective: &'a EffectiveSandbox,
    /// The identity of the store that owns the objects (`orcaops.dev/instance`).
    pub instance: &'a str,
}

/// Why a sandbox cannot be one pod: the user's to fix, named by field.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    #[error(
        "services {first} and {second} both listen on port {port}: on a cluster the services of a sandbox share one pod, and so one network namespace; give each its own containerPort"
    )]
    SharedPort {
        first: String,
        second: String,
        port: u16,
    },
}

impl SandboxPlacement<'_> {
    pub fn namespace(&self) -> String {
        self.meta
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string())
    }

    pub fn pod_name(&self) -> String {
        sandbox_pod_name(self.meta)
    }

    fn labels(&self) -> BTreeMap<String, String> {
        owner_labels(Owner::Sandbox(self.meta), self.instance)
    }

    /// The labels that pick out this sandbox's pod, and only it.
    fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                keys::LABEL_KIND.to_string(),
                Kind::Sandbox.as_str().to_string(),
            ),
            (keys::LABEL_UID.to_string(), self.meta.uid.clone()),
        ])
    }

    fn metadata(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace()),
            labels: Some(self.labels()),
            owner_references: Some(vec![sandbox_owner(self.meta)]),
            ..Default::default()
        }
    }
}

/// `orcaops-<ns>-<name>-<uid8>` (the Docker container prefix), cut to a DNS label:
/// a pod's hostname is its name.
pub fn sandbox_pod_name(meta: &SandboxMeta) -> String {
    let namespace = meta.namespace.as_deref().unwrap_or(DEFAULT_WORKSPACE);
    fit_name(
        &format!("orcaops-{namespace}-{}", meta.name),
        &format!("-{}", uid8(&meta.uid)),
        MAX_POD_NAME,
    )
}

/// The Service is named after the sandbox, so its ports are at
/// `<sandbox>.<namespace>.svc`. A sandbox name that cannot name a Service (a DNS-1035
/// label: a letter first, at most 63 characters, no dots) falls back to the pod's name.
pub fn sandbox_service_name(meta: &SandboxMeta) -> String {
    let name = meta.name.as_str();
    let label = !name.is_empty()
        && name.len() <= MAX_POD_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if label {
        name.to_string()
    } else {
        sandbox_pod_name(meta)
    }
}

/// `<pod name>-<volume>`: the claim of one named volume.
pub fn volume_claim_name(meta: &SandboxMeta, volume: &str) -> String {
    format!("{}-{volume}", sandbox_pod_name(meta))
}

/// Where a service's port is reachable on the cluster: the Service's DNS name.
pub fn service_host(meta: &SandboxMeta) -> String {
    let namespace = meta.namespace.as_deref().unwrap_or(DEFAULT_WORKSPACE);
    format!("{}.{namespace}.svc", sandbox_service_name(meta))
}

fn sandbox_owner(meta: &SandboxMeta) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.to_string(),
        kind: Kind::Sandbox.as_str().to_string(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod: one container per service, `restartPolicy: Always` (the kubelet restarts
/// a dead service), hardened as a Job's pod, each named volume a claim.
pub fn build_sandbox_pod(placement: &SandboxPlacement<'_>) -> Result<Pod, PlacementError> {
    let effective = placement.effective;
    check_ports(&effective.services)?;
    let mut metadata = placement.metadata(placement.pod_name());
    metadata.annotations = Some(
        effective
            .services
            .iter()
            .map(|s| {
                (
                    format!("{SPEC_HASH_ANNOTATION}{}", s.name),
                    service_hash(s, effective.network),
                )
            })
            .collect(),
    );
    let mut volumes: Vec<String> = effective
        .services
        .iter()
        .flat_map(|s| s.volumes.iter().map(|v| v.name.clone()))
        .collect();
    volumes.sort();
    volumes.dedup();
    // Services reach each other by name as on Docker's private network: in a pod
    // they share localhost, so each name is an alias of it.
    let host_aliases = (effective.network == SandboxNetwork::Private).then(|| {
        vec![HostAlias {
            ip: "127.0.0.1".to_string(),
            hostnames: Some(effective.services.iter().map(|s| s.name.clone()).collect()),
        }]
    });
    Ok(Pod {
        metadata,
        spec: Some(PodSpec {
            containers: effective.services.iter().map(container).collect(),
            restart_policy: Some("Always".to_string()),
            termination_grace_period_seconds: Some(i64::from(STOP_GRACE_SECS)),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            // The pause container is PID 1 of a shared namespace and reaps the
            // orphans that execs leave; without it they pin the PID limit as zombies.
            share_process_namespace: Some(true),
            host_aliases,
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(runtime_default_seccomp()),
                ..Default::default()
            }),
            volumes: (!volumes.is_empty()).then(|| {
                volumes
                    .iter()
                    .map(|v| Volume {
                        name: v.clone(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: volume_claim_name(placement.meta, v),
                            read_only: None,
                        }),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        }),
        status: None,
    })
}

/// Two services of one pod cannot listen on one port.
fn check_ports(services: &[SandboxService]) -> Result<(), PlacementError> {
    let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
    for service in services {
        for port in &service.ports {
            if let Some(first) = seen.insert(port.container_port, &service.name)
                && first != service.name
            {
                return Err(PlacementError::SharedPort {
                    first: first.to_string(),
                    second: service.name.clone(),
                    port: port.container_port,
                });
            }
        }
    }
    Ok(())
}

fn container(service: &SandboxService) -> Container {
    Container {
        name: service.name.clone(),
        image: Some(service.image.clone()),
        command: (!service.command.is_empty()).then(|| service.command.clone()),
        env: env_vars(&service.env),
        working_dir: service.working_dir.clone(),
        ports: (!service.ports.is_empty()).then(|| {
            service
                .ports
                .iter()
                .map(|p| ContainerPort {
                    container_port: i32::from(p.container_port),
                    name: p.name.clone(),
                    protocol: Some("TCP".to_string()),
                    ..Default::default()
                })
                .collect()
        }),
        readiness_probe: readiness_probe(service),
        resources: resources(service.resources.as_ref()),
        security_context: Some(hardened_container()),
        volume_mounts: (!service.volumes.is_empty()).then(|| {
            service
                .volumes
                .iter()
                .map(|v| VolumeMount {
                    name: v.name.clone(),
                    mount_path: v.mount_path.clone(),
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    }
}

/// The health check as the kubelet's readiness probe, with the same timing.
fn readiness_probe(service: &SandboxService) -> Option<K8sProbe> {
    let spec = probe_spec(service.health_check.as_ref())?;
    let mut probe = K8sProbe {
        period_seconds: Some(spec.interval.as_secs() as i32),
        timeout_seconds: Some(spec.timeout.as_secs() as i32),
        failure_threshold: Some(spec.failure_threshold as i32),
        ..Default::default()
    };
    match spec.probe {
        Probe::Exec(command) => {
            probe.exec = Some(ExecAction {
                command: Some(command),
            })
        }
        Probe::Tcp { port } => {
            probe.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(port)),
                host: None,
            })
        }
        Probe::Http { port, path } => {
            probe.http_get = Some(HTTPGetAction {
                port: IntOrString::Int(i32::from(port)),
                path: Some(path),
                ..Default::default()
            })
        }
    }
    Some(probe)
}

/// A ClusterIP Service for every declared port, named after the sandbox; None when
/// no service declares a port.
pub fn build_sandbox_service(placement: &SandboxPlacement<'_>) -> Option<Service> {
    let ports: Vec<ServicePort> = placement
        .effective
        .services
        .iter()
        .flat_map(|s| {
            s.ports.iter().map(move |p| ServicePort {
                // Unique across the Service: the port's own name is unique only
                // within its service.
                name: Some(format!("{}-{}", s.name, p.container_port)),
                port: i32::from(p.container_port),
                target_port: Some(IntOrString::Int(i32::from(p.container_port))),
                protocol: Some("TCP".to_string()),
                ..Default::default()
            })
        })
        .collect();
    if ports.is_empty() {
        return None;
    }
    Some(Service {
        metadata: placement.metadata(sandbox_service_name(placement.meta)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(placement.selector()),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    })
}

/// One claim per named volume (a volume mounted by two services is one claim), owned
/// by the Sandbox: kept while the sandbox is stopped, collected with it.
pub fn build_sandbox_pvcs(placement: &SandboxPlacement<'_>) -> Vec<PersistentVolumeClaim> {
    let mut names: Vec<&str> = placement
        .effective
        .services
        .iter()
        .flat_map(|s| s.volumes.iter().map(|v| v.name.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|volume| PersistentVolumeClaim {
            metadata: placement.metadata(volume_claim_name(placement.meta, volume)),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        Quantity(VOLUME_SIZE.to_string()),
                    )])),
                    limits: None,
                }),
                ..Default::default()
            }),
            status: None,
        })
        .collect()
}

/// `network: none`: a policy allowing no traffic either way. `private`: no egress,
/// and ingress only to the declared ports (as Docker's internal network, whose ports
/// are still reachable from the host). `bridge`: none. Named like the pod; it must
/// exist before the pod does.
pub fn build_sandbox_network_policy(placement: &SandboxPlacement<'_>) -> Option<NetworkPolicy> {
    let ingress = match placement.effective.network {
        SandboxNetwork::Bridge => return None,
        SandboxNetwork::None => None,
        SandboxNetwork::Private => {
            let ports: Vec<NetworkPolicyPort> = placement
                .effective
                .services
                .iter()
                .flat_map(|s| s.ports.iter())
                .map(|p| NetworkPolicyPort {
                    port: Some(IntOrString::Int(i32::from(p.container_port))),
                    protocol: Some("TCP".to_string()),
                    end_port: None,
                })
                .collect();
            (!ports.is_empty()).then(|| {
                vec![NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(ports),
                }]
            })
        }
    };
    Some(NetworkPolicy {
        metadata: placement.metadata(placement.pod_name()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(placement.selector()),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Egress".to_string(), "Ingress".to_string()]),
            egress: None,
            ingress,
        }),
    })
}
