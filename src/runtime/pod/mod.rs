//! The pod runtime's pure half: the Kubernetes objects one Job attempt becomes.
//!
//! A Job attempt is **one pod** (`restartPolicy: Never`) in the Job's namespace,
//! owned by the Job, labelled and named as the Docker container of the same
//! attempt would be. Its one container runs the same generated `/bin/sh` step
//! runner as Docker ([`super::runner`]), so per-step exit codes, durations and
//! output come from the pod's log (read with timestamps) through the same
//! [`RunnerParser`](super::runner::RunnerParser); nothing is passed through
//! the 4 KB termination message.
//!
//! A finished pod's filesystem cannot be read through the API, so when the Job
//! declares artifacts the runner holds the container after the last step
//! until the controller has copied them out with an exec of `tar`
//! ([`artifact_copy_command`]) and released it ([`release_command`]).
//! `network: none` is a deny-all NetworkPolicy that selects the pod
//! ([`build_network_policy`]); it must exist before the pod does.
//!
//! The builders are pure functions from the Job to objects; [`PodRuntime`]
//! sends what they return and reads pods back for the controller. Why this shape (and not a
//! container per step, or init containers) is told in `docs/architecture.md`.

mod attach;
mod build;
mod collect;
pub(crate) mod runtime;
pub mod sandbox;
pub mod tenant;
#[cfg(test)]
mod tests;

pub use build::{
    JobAttempt, MAX_POD_NAME, STEPS_CONTAINER, build_network_policy, build_pod, pod_name,
};
pub use collect::{artifact_copy_command, release_command};
pub(crate) use runtime::time as pod_time;
pub use runtime::{PodRuntime, STEPS_ANNOTATION};
