//! What a Sandbox, or a warm-pool slot, owns in Docker: the names and labels of its
//! containers, network and volumes, the spec hash that tells a changed service, and
//! the container spec of each service. All pure.
//!
//! Names are deterministic, so a controller that crashed between creating something and
//! recording it finds it again instead of making a second one:
//!
//! | object | own sandbox | warm-pool slot |
//! | --- | --- | --- |
//! | container | `orcaops-<ns>-<name>-<uid8>-<service>` | `orcaops-pool-<ns>-<template>-<slot>-<service>` |
//! | network | `orcaops-<ns>-<name>-<uid8>` | `orcaops-pool-<ns>-<template>-<slot>` |
//! | volume | `orcaops-<ns>-<name>-<uid8>-<volume>` | `orcaops-pool-<ns>-<template>-<slot>-<volume>` |
//!
//! A claimed slot's containers are renamed to the sandbox's own names (Docker can
//! rename a container, not relabel it); its network and volumes keep their pool names,
//! which the sandbox finds again from `status.claimedFrom`.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::resources::sandbox::{HealthCheck, PoolClaim, SandboxNetwork, SandboxService};
use crate::resources::{Kind, ObjectMeta, keys};
use crate::runtime::docker::attempt::{env_pairs, limits};
use crate::runtime::names::{PIDS_LIMIT, uid8};
use crate::runtime::sandbox::{Probe, ServiceContainerSpec, ServiceNetwork};

/// The hash of the effective service (and the network mode) a container was made from.
pub const LABEL_SPEC_HASH: &str = "orcaops.dev/spec-hash";
/// Every Docker object of a warm-pool slot, and only those, has a name starting so.
pub const POOL_PREFIX: &str = "orcaops-pool-";

/// `orcaops-<ns>-<name>-<uid8>`: the prefix of a sandbox's container names, and the
/// name of its network (unless it was claimed from a pool).
pub fn sandbox_base(meta: &ObjectMeta) -> String {
    let ns = meta.namespace.as_deref().unwrap_or("default");
    format!("orcaops-{ns}-{}-{}", meta.name, uid8(&meta.uid))
}

/// `orcaops-pool-<ns>-<template>-<slot>`: a slot's network, and its name prefix.
pub fn pool_base(namespace: &str, template: &str, slot: &str) -> String {
    format!("{POOL_PREFIX}{namespace}-{template}-{slot}")
}

pub fn child_name(base: &str, child: &str) -> String {
    format!("{base}-{child}")
}

/// Where the network and volumes of a sandbox are: its own, or those of the pool slot
/// it was claimed from (they cannot be renamed).
pub fn storage_base(meta: &ObjectMeta, claimed: Option<&PoolClaim>) -> String {
    match claimed {
        Some(claim) => pool_base(
            meta.namespace.as_deref().unwrap_or("default"),
            &claim.template,
            &claim.slot,
        ),
        None => sandbox_base(meta),
    }
}

/// Who owns a Docker object, for its labels.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    Sandbox(&'a ObjectMeta),
    Slot {
        namespace: &'a str,
        template: &'a str,
        slot: &'a str,
    },
}

/// The labels of a network or volume (and, with the service's, of a container).
pub fn owner_labels(owner: Owner<'_>, instance: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (keys::LABEL_INSTANCE.to_string(), instance.to_string()),
        (
            keys::LABEL_KIND.to_string(),
            Kind::Sandbox.as_str().to_string(),
        ),
    ]);
    match owner {
        Owner::Sandbox(meta) => {
            labels.insert(
                keys::LABEL_WORKSPACE.to_string(),
                meta.namespace.clone().unwrap_or_default(),
            );
            labels.insert(keys::LABEL_NAME.to_string(), meta.name.clone());
            labels.insert(keys::LABEL_UID.to_string(), meta.uid.clone());
        }
        Owner::Slot {
            namespace,
            template,
            slot,
        } => {
            labels.insert(keys::LABEL_WORKSPACE.to_string(), namespace.to_string());
            labels.insert(keys::LABEL_POOL.to_string(), template.to_string());
            labels.insert(keys::LABEL_SLOT.to_string(), slot.to_string());
        }
    }
    labels
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_json(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_vec(value).expect("a sandbox spec always serializes");
    hex(&Sha256::digest(&json)[..8])
}

/// The hash of one service as it runs: a change to it (or to the network mode)
/// means its container is made again. Volumes are kept.
pub fn service_hash(service: &SandboxService, network: SandboxNetwork) -> String {
    hash_json(&(service, network))
}

/// The hash of a whole template's services: a pool slot made from another one is stale.
pub fn template_hash(services: &[SandboxService], network: SandboxNetwork) -> String {
    hash_json(&(services, network))
}

/// A new warm-pool slot id: 8 lowercase letters and digits.
pub fn new_slot_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(8)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Everything [`service_container`] needs besides the service itself.
pub struct ServicePlacement<'a> {
    pub container_name: String,
    /// The sandbox's (or slot's) network, when `network: private`.
    pub network_name: Option<&'a str>,
    /// The prefix of its volume names.
    pub storage_base: &'a str,
    pub labels: BTreeMap<String, String>,
}

/// The container of one service, with the runtime's hardened defaults. Pure.
pub fn service_container(
    service: &SandboxService,
    network: SandboxNetwork,
    placement: ServicePlacement<'_>,
) -> ServiceContainerSpec {
    let mut labels = placement.labels;
    labels.insert(keys::LABEL_SERVICE.to_string(), service.name.clone());
    labels.insert(LABEL_SPEC_HASH.to_string(), service_hash(service, network));
    let (cpu_millis, memory_bytes) = limits(service.resources.as_ref());
    ServiceContainerSpec {
        name: placement.container_name,
        image: service.image.clone(),
        command: service.command.clone(),
        env: env_pairs(&service.env),
        working_dir: service.working_dir.clone(),
        labels,
        cpu_millis,
        memory_bytes,
        network: match (network, placement.network_name) {
            (SandboxNetwork::Private, Some(name)) => ServiceNetwork::Private {
                network: name.to_string(),
                aliases: vec![service.name.clone()],
            },
            (SandboxNetwork::Bridge, _) => ServiceNetwork::Bridge,
            _ => ServiceNetwork::None,
        },
        ports: service.ports.iter().map(|p| p.container_port).collect(),
        volumes: service
            .volumes
            .iter()
            .map(|v| {
                (
                    child_name(placement.storage_base, &v.name),
                    v.mount_path.clone(),
                )
            })
            .collect(),
        pids_limit: PIDS_LIMIT,
    }
}

/// The names of the volumes a set of services mounts (each once).
pub fn volume_names(services: &[SandboxService], storage_base: &str) -> Vec<String> {
    let mut names: Vec<String> = services
        .iter()
        .flat_map(|s| s.volumes.iter())
        .map(|v| child_name(storage_base, &v.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// How a service's readiness is checked, with its timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    pub probe: Probe,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub failure_threshold: u32,
}

pub const DEFAULT_PROBE_INTERVAL_SECS: u64 = 2;
pub const DEFAULT_PROBE_TIMEOUT_SECS: u64 = 2;
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// The probe of a health check; `None` without one (a running container is ready).
pub fn probe_spec(check: Option<&HealthCheck>) -> Option<ProbeSpec> {
    let check = check?;
    let probe = if let Some(command) = &check.exec {
        Probe::Exec(command.clone())
    } else if let Some(tcp) = &check.tcp {
        Probe::Tcp { port: tcp.port }
    } else if let Some(http) = &check.http {
        Probe::Http {
            port: http.port,
            path: http.path.clone().unwrap_or_else(|| "/".to_string()),
        }
    } else {
        return None;
    };
    Some(ProbeSpec {
        probe,
        interval: std::time::Duration::from_secs(
            check
                .interval_seconds
                .unwrap_or(DEFAULT_PROBE_INTERVAL_SECS)
                .max(1),
        ),
        timeout: std::time::Duration::from_secs(
            check
                .timeout_seconds
                .unwrap_or(DEFAULT_PROBE_TIMEOUT_SECS)
                .max(1),
        ),
        failure_threshold: check
            .failure_threshold
            .unwrap_or(DEFAULT_FAILURE_THRESHOLD)
            .max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::sandbox::{ServicePort, TcpCheck, VolumeMount};

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: "agent".into(),
            namespace: Some("team".into()),
            uid: "0123abcd-ef45-6789".into(),
            ..Default::default()
        }
    }

    fn web() -> SandboxService {
        SandboxService {
            name: "web".into(),
            image: "busybox:latest".into(),
            command: vec!["httpd".into(), "-f".into()],
            ports: vec![ServicePort {
                container_port: 80,
                name: None,
            }],
            volumes: vec![VolumeMount {
                name: "site".into(),
                mount_path: "/srv".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn names_follow_the_documented_scheme() {
        let m = meta();
        assert_eq!(sandbox_base(&m), "orcaops-team-agent-0123abcd");
        assert_eq!(
            child_name(&sandbox_base(&m), "web"),
            "orcaops-team-agent-0123abcd-web"
        );
        assert_eq!(
            pool_base("team", "shell", "k3x9a0zq"),
            "orcaops-pool-team-shell-k3x9a0zq"
        );
        let claim = PoolClaim {
            template: "shell".into(),
            slot: "k3x9a0zq".into(),
            claimed_at: chrono::Utc::now(),
        };
        assert_eq!(
            storage_base(&m, Some(&claim)),
            "orcaops-pool-team-shell-k3x9a0zq"
        );
        assert_eq!(storage_base(&m, None), "orcaops-team-agent-0123abcd");
    }

    #[test]
    fn slot_ids_are_eight_lowercase_alphanumerics() {
        for _ in 0..50 {
            let id = new_slot_id();
            assert_eq!(id.len(), 8);
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            );
        }
        assert_ne!(new_slot_id(), new_slot_id());
    }

    #[test]
    fn the_hash_moves_with_the_service_and_the_network() {
        let a = service_hash(&web(), SandboxNetwork::None);
        assert_eq!(a, service_hash(&web(), SandboxNetwork::None));
        assert_ne!(a, service_hash(&web(), SandboxNetwork::Private));
        let mut changed = web();
        changed.image = "busybox:1.36".into();
        assert_ne!(a, service_hash(&changed, SandboxNetwork::None));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn a_private_service_gets_its_alias_volumes_labels_and_limits() {
        let m = meta();
        let base = sandbox_base(&m);
        let spec = service_container(
            &web(),
            SandboxNetwork::Private,
            ServicePlacement {
                container_name: child_name(&base, "web"),
                network_name: Some(&base),
                storage_base: &base,
                labels: owner_labels(Owner::Sandbox(&m), "inst"),
            },
        );
        assert_eq!(
            spec.network,
            ServiceNetwork::Private {
                network: base.clone(),
                aliases: vec!["web".into()]
            }
        );
        assert_eq!(
            spec.volumes,
            vec![(format!("{base}-site"), "/srv".to_string())]
        );
        assert_eq!(spec.ports, vec![80]);
        assert_eq!(spec.pids_limit, PIDS_LIMIT);
        assert_eq!(spec.labels[keys::LABEL_SERVICE], "web");
        assert_eq!(spec.labels[keys::LABEL_UID], m.uid);
        assert_eq!(spec.labels[keys::LABEL_INSTANCE], "inst");
        assert_eq!(spec.labels[keys::LABEL_KIND], "Sandbox");
        assert_eq!(
            spec.labels[LABEL_SPEC_HASH],
            service_hash(&web(), SandboxNetwork::Private)
        );
        let none = service_container(
            &web(),
            SandboxNetwork::None,
            ServicePlacement {
                container_name: "x".into(),
                network_name: None,
                storage_base: &base,
                labels: owner_labels(
                    Owner::Slot {
                        namespace: "team",
                        template: "t",
                        slot: "s",
                    },
                    "inst",
                ),
            },
        );
        assert_eq!(none.network, ServiceNetwork::None);
        assert_eq!(none.labels[keys::LABEL_POOL], "t");
        assert!(!none.labels.contains_key(keys::LABEL_UID));
    }

    #[test]
    fn probes_take_their_defaults() {
        assert_eq!(probe_spec(None), None);
        let check = HealthCheck {
            tcp: Some(TcpCheck { port: 8080 }),
            ..Default::default()
        };
        let p = probe_spec(Some(&check)).unwrap();
        assert_eq!(p.probe, Probe::Tcp { port: 8080 });
        assert_eq!(p.interval, std::time::Duration::from_secs(2));
        assert_eq!(p.failure_threshold, 3);
    }
}
