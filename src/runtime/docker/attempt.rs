//! The Docker container of a Job attempt: the steps' runner as its command, the Job's
//! env, limits and security block, the hardened defaults, and the labels that make it
//! findable after a crash. Pure.

use std::collections::BTreeMap;

use crate::resources::common::{EnvVar, Resources};
use crate::resources::job::{JobNetwork, JobSecurity, JobSpec};
use crate::resources::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::runtime::names::PIDS_LIMIT;
use crate::runtime::runner;
use crate::runtime::{ContainerSpec, NetworkMode};

/// The memory limit of a container whose spec names none (the server's `--default-memory`
/// changes it for Jobs). Docker's own default is no limit at all.
pub const DEFAULT_MEMORY_BYTES: u64 = 512 * 1024 * 1024;

/// Docker keeps a container's output in json-file logs; each container gets at most
/// [`LOG_MAX_FILES`] files of [`LOG_MAX_SIZE`], so that what a container prints cannot
/// fill the daemon's disk. orcaops keeps the output it serves in its own attempt log,
/// read as the container writes it.
/// 5 × 20 MB: more than the default output cap, so that a follower that falls behind
/// still finds what it keeps.
pub const LOG_MAX_SIZE: &str = "20m";
pub const LOG_MAX_FILES: &str = "5";

/// The log settings of every container orcaops creates (Jobs and Sandboxes).
pub fn log_config() -> bollard::models::HostConfigLogConfig {
    bollard::models::HostConfigLogConfig {
        typ: Some("json-file".to_string()),
        config: Some(
            [
                ("max-size".to_string(), LOG_MAX_SIZE.to_string()),
                ("max-file".to_string(), LOG_MAX_FILES.to_string()),
            ]
            .into_iter()
            .collect(),
        ),
    }
}

/// The uid (and gid) Docker runs a `runAsNonRoot` Job as when it names no user: `nobody`.
pub const NON_ROOT_ID: i64 = 65534;

/// A resources block as Docker reads it: CPU in millicores, memory in bytes. Validation
/// has already refused quantities that do not parse, so one that does not is unlimited.
pub fn limits(resources: Option<&Resources>) -> (Option<u64>, Option<u64>) {
    let Some(resources) = resources else {
        return (None, None);
    };
    (
        resources
            .cpu
            .as_deref()
            .and_then(|c| parse_cpu_millis(c).ok()),
        resources
            .memory
            .as_deref()
            .and_then(|m| parse_memory_bytes(m).ok()),
    )
}

/// A resource's `env` as Docker's `NAME=value` pairs, in order.
pub fn env_pairs(env: &[EnvVar]) -> Vec<(String, String)> {
    env.iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

/// The container of one attempt, built from the spec and its labels. Pure.
pub fn container_spec(
    spec: &JobSpec,
    labels: BTreeMap<String, String>,
    name: &str,
    nonce: &str,
    default_memory_bytes: u64,
) -> ContainerSpec {
    let (cpu_millis, memory_bytes) = limits(spec.resources.as_ref());
    let memory_bytes = memory_bytes.or(Some(default_memory_bytes));
    ContainerSpec {
        name: name.to_string(),
        image: spec.image.clone(),
        command: runner::runner_command(&spec.steps, nonce),
        env: env_pairs(&spec.env),
        working_dir: spec.working_dir.clone(),
        labels,
        cpu_millis,
        memory_bytes,
        network: match spec.network {
            JobNetwork::None => NetworkMode::None,
            JobNetwork::Bridge => NetworkMode::Bridge,
        },
        pids_limit: PIDS_LIMIT,
        user: docker_user(&spec.security),
        read_only_root: spec.security.read_only_root_filesystem,
    }
}

/// Docker's `--user` for the Job's security block. Docker cannot check the image's user
/// before it runs, so `runAsNonRoot` without a uid picks one: [`NON_ROOT_ID`].
fn docker_user(security: &JobSecurity) -> Option<String> {
    let uid = match (security.run_as_user, security.run_as_non_root) {
        (Some(uid), _) => uid,
        (None, true) => NON_ROOT_ID,
        // Validation refuses a group without a user.
        (None, false) => return None,
    };
    let gid = match (security.run_as_group, security.run_as_user) {
        (Some(gid), _) => Some(gid),
        // Not the root group for the uid we picked (a numeric uid missing from the image's
        // /etc/passwd would otherwise get gid 0).
        (None, None) => Some(NON_ROOT_ID),
        (None, Some(_)) => None,
    };
    Some(match gid {
        Some(gid) => format!("{uid}:{gid}"),
        None => uid.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(
        run_as_non_root: bool,
        run_as_user: Option<i64>,
        run_as_group: Option<i64>,
    ) -> JobSecurity {
        JobSecurity {
            run_as_non_root,
            run_as_user,
            run_as_group,
            read_only_root_filesystem: false,
        }
    }

    #[test]
    fn docker_user_follows_the_security_block() {
        let cases = [
            (security(false, None, None), None),
            (security(false, Some(0), None), Some("0")),
            (security(false, Some(1000), None), Some("1000")),
            (security(false, Some(1000), Some(100)), Some("1000:100")),
            (security(true, Some(1000), None), Some("1000")),
            (security(true, None, None), Some("65534:65534")),
            (security(true, None, Some(100)), Some("65534:100")),
        ];
        for (security, user) in cases {
            assert_eq!(docker_user(&security).as_deref(), user, "{security:?}");
        }
    }

    #[test]
    fn container_spec_carries_the_user_and_the_read_only_root() {
        let spec = JobSpec {
            image: "busybox".into(),
            security: JobSecurity {
                read_only_root_filesystem: true,
                ..security(true, None, None)
            },
            ..Default::default()
        };
        let container = container_spec(&spec, BTreeMap::new(), "c", "n0", DEFAULT_MEMORY_BYTES);
        assert_eq!(container.user.as_deref(), Some("65534:65534"));
        assert!(container.read_only_root);
        let plain = container_spec(&JobSpec::default(), BTreeMap::new(), "c", "n0", 1 << 20);
        assert_eq!((plain.user, plain.read_only_root), (None, false));
        assert_eq!(
            plain.memory_bytes,
            Some(1 << 20),
            "the default when none is given"
        );
        let sized = JobSpec {
            resources: Some(Resources {
                memory: Some("64Mi".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sized = container_spec(&sized, BTreeMap::new(), "c", "n0", 1 << 20);
        assert_eq!(
            sized.memory_bytes,
            Some(64 << 20),
            "the spec's own limit wins"
        );
    }
}
