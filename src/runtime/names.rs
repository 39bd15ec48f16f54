//! What the runtimes name and label, in one place: the label contract every tool that
//! looks at containers or pods may rely on, the deterministic names of Job attempts,
//! the runner's nonce label, and the grace period of a stop. Docker and pods use the
//! same ones, so a controller restarted in either mode finds what it made.

use std::collections::BTreeMap;

use crate::resources::common::EnvVar;
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
    // A Workflow node's Job passes on which workflow, run, node (and `until` iteration)
    // it is, so that its containers and pods can be counted per node.
    let from_workflow = [
        keys::LABEL_WORKFLOW,
        keys::LABEL_WORKFLOW_RUN,
        keys::LABEL_NODE,
        keys::LABEL_ITERATION,
    ]
    .into_iter()
    .filter_map(|key| {
        job.metadata
            .labels
            .get(key)
            .map(|value| (key.to_string(), value.clone()))
    });
    let own = [
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
    ];
    own.into_iter().chain(from_workflow).collect()
}

/// The variables every step sees about its own run, as GitHub Actions' `GITHUB_*` and
/// the Kubernetes downward API give them; the last three only on a Workflow's node.
pub const CONTEXT_ENV: [&str; 7] = [
    "ORCAOPS_JOB",
    "ORCAOPS_WORKSPACE",
    "ORCAOPS_RUN",
    "ORCAOPS_ATTEMPT",
    "ORCAOPS_WORKFLOW",
    "ORCAOPS_WORKFLOW_RUN",
    "ORCAOPS_NODE",
];

/// The steps' environment: the spec's `env` in order, then the [`CONTEXT_ENV`] of this
/// attempt (which a spec cannot set: its own entries of those names are dropped).
pub fn step_env(job: &Object, env: &[EnvVar], run: u32, attempt: u32) -> Vec<(String, String)> {
    let label = |key: &str| job.metadata.labels.get(key).cloned();
    let context = [
        Some(job.metadata.name.clone()),
        Some(job.metadata.namespace.clone().unwrap_or_default()),
        Some(run.to_string()),
        Some(attempt.to_string()),
        label(keys::LABEL_WORKFLOW),
        label(keys::LABEL_WORKFLOW_RUN),
        label(keys::LABEL_NODE),
    ];
    env.iter()
        .filter(|e| !CONTEXT_ENV.contains(&e.name.as_str()))
        .map(|e| (e.name.clone(), e.value.clone()))
        .chain(
            CONTEXT_ENV
                .iter()
                .zip(context)
                .filter_map(|(name, value)| Some((name.to_string(), value?))),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_nodes_containers_carry_its_workflow_run_and_node() {
        let mut job = Object::new(Kind::Job, "ci", "ci-3-test", serde_json::json!({}));
        for (k, v) in [
            (keys::LABEL_WORKFLOW, "ci"),
            (keys::LABEL_WORKFLOW_RUN, "3"),
            (keys::LABEL_NODE, "test"),
            ("team", "web"),
        ] {
            job.metadata.labels.insert(k.into(), v.into());
        }
        let labels = container_labels(&job, "i1", 1, 2, "n");
        assert_eq!(labels[keys::LABEL_WORKFLOW], "ci");
        assert_eq!(labels[keys::LABEL_WORKFLOW_RUN], "3");
        assert_eq!(labels[keys::LABEL_NODE], "test");
        assert_eq!(labels[keys::LABEL_ATTEMPT], "2");
        assert!(
            !labels.contains_key("team"),
            "only orcaops's own labels: {labels:?}"
        );
        assert!(!labels.contains_key(keys::LABEL_ITERATION));
        let plain = Object::new(Kind::Job, "ci", "build", serde_json::json!({}));
        assert!(!container_labels(&plain, "i1", 1, 1, "n").contains_key(keys::LABEL_NODE));
    }

    #[test]
    fn steps_see_their_context_after_their_own_env_which_cannot_fake_it() {
        let mut job = Object::new(Kind::Job, "team-a", "build", serde_json::json!({}));
        let env = [
            EnvVar {
                name: "MODE".into(),
                value: "fast".into(),
                value_from: None,
            },
            EnvVar {
                name: "ORCAOPS_RUN".into(),
                value: "999".into(),
                value_from: None,
            },
        ];
        let pairs = |job: &Object| -> Vec<String> {
            step_env(job, &env, 3, 2)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        };
        assert_eq!(
            pairs(&job),
            [
                "MODE=fast",
                "ORCAOPS_JOB=build",
                "ORCAOPS_WORKSPACE=team-a",
                "ORCAOPS_RUN=3",
                "ORCAOPS_ATTEMPT=2"
            ]
        );
        job.metadata.labels = BTreeMap::from([
            (keys::LABEL_WORKFLOW.to_string(), "ci".to_string()),
            (keys::LABEL_WORKFLOW_RUN.to_string(), "4".to_string()),
            (keys::LABEL_NODE.to_string(), "test-1".to_string()),
        ]);
        assert_eq!(
            pairs(&job)[5..],
            [
                "ORCAOPS_WORKFLOW=ci",
                "ORCAOPS_WORKFLOW_RUN=4",
                "ORCAOPS_NODE=test-1"
            ]
        );
    }

    #[test]
    fn uid8_keeps_letters_and_digits() {
        assert_eq!(uid8("0f3a9c1e-7d2b-4e5f-a6b7-c8d9e0f1a2b3"), "0f3a9c1e");
        assert_eq!(uid8("ab-cd"), "abcd");
    }
}
