//! What the runtimes name and label, in one place: the label contract every tool that
//! looks at containers or pods may rely on, the deterministic names of Job attempts,
//! the runner's nonce label, and the grace period of a stop. Docker and pods use the
//! same ones, so a controller restarted in either mode finds what it made.

use std::collections::BTreeMap;

use crate::resources::{Kind, Object, ObjectMeta, keys};

/// How long a stopped container (a Job attempt or a sandbox service) gets between
/// SIGTERM and SIGKILL; a pod's `terminationGracePeriodSeconds`.
pub const STOP_GRACE_SECS: u32 = 5;

/// The label on every container of a Job attempt that holds the runner's marker nonce.
pub const NONCE_LABEL: &str = "orcaops.dev/runner-nonce";

/// The label on the container of a Job's service (value: the service's name). It also
/// carries the attempt's labels; this one keeps it out of the attempts themselves.
pub const SERVICE_LABEL: &str = "orcaops.dev/job-service";

/// The label on the steps' container of an attempt that has services (value: how many),
/// so that removing an attempt without any costs no look-up.
pub const HAS_SERVICES_LABEL: &str = "orcaops.dev/job-services";

/// The PID limit of every container (a fork bomb stops here).
pub const PIDS_LIMIT: i64 = 512;

/// The first 8 letters and digits of a uid: enough to tell apart two objects of one
/// name (a name deleted and made again), short enough for a DNS label.
pub fn uid8(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect()
}

/// The container of one Job attempt: `orcaops-<ns>-<name>-<uid8>-r<run>a<attempt>`.
/// Deterministic, so a crash between creating it and recording it ends in adopting
/// it, never in a second one.
pub fn container_name(meta: &ObjectMeta, run: u32, attempt: u32) -> String {
    let ns = meta.namespace.as_deref().unwrap_or("default");
    format!(
        "orcaops-{ns}-{}-{}-r{run}a{attempt}",
        meta.name,
        uid8(&meta.uid)
    )
}

/// The labels every container (or pod) of a Job attempt carries; the keys are a
/// public contract.
pub fn container_labels(
    job: &Object,
    instance: &str,
    run: u32,
    attempt: u32,
    nonce: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (keys::LABEL_INSTANCE.to_string(), instance.to_string()),
        (
            keys::LABEL_WORKSPACE.to_string(),
            job.metadata.namespace.clone().unwrap_or_default(),
        ),
        (keys::LABEL_KIND.to_string(), Kind::Job.as_str().to_string()),
        (keys::LABEL_NAME.to_string(), job.metadata.name.clone()),
        (keys::LABEL_UID.to_string(), job.metadata.uid.clone()),
        (keys::LABEL_RUN.to_string(), run.to_string()),
        (keys::LABEL_ATTEMPT.to_string(), attempt.to_string()),
        (NONCE_LABEL.to_string(), nonce.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid8_keeps_letters_and_digits() {
        assert_eq!(uid8("0f3a9c1e-7d2b-4e5f-a6b7-c8d9e0f1a2b3"), "0f3a9c1e");
        assert_eq!(uid8("ab-cd"), "abcd");
    }
}
