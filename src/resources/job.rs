//! The Job kind: ordered steps run in one container image.

// kube's `printcolumn(...)` attributes repeat `type_ = ...`; this lint misreads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::anomaly::{Anomaly, Thresholds};
use super::common::{Condition, EnvVar, Resources};

/// What should run: steps in order, in one container of `image`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "orcaops.dev",
    version = "v1alpha1",
    kind = "Job",
    namespaced,
    status = "JobStatus",
    shortname = "ojob",
    category = "orcaops",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Runs", type_ = "integer", json_path = ".status.totalRuns"),
    printcolumn(name = "Attempt", type_ = "integer", json_path = ".status.attempt"),
    printcolumn(
        name = "Summary",
        type_ = "string",
        json_path = ".status.summary",
        priority = "1"
    ),
    printcolumn(
        name = "Anomaly",
        type_ = "string",
        json_path = ".status.anomalies[0].kind",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    /// The container image every step runs in. It needs `/bin/sh`.
    pub image: String,
    /// Steps run in order; the first failing step fails the attempt.
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// `none` (the default) gives the container no network at all.
    #[serde(default, skip_serializing_if = "is_default")]
    pub network: JobNetwork,
    /// Who the steps run as, and whether the root filesystem is writable.
    #[serde(default, skip_serializing_if = "is_default")]
    pub security: JobSecurity,
    /// Deadline for the whole run, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// Containers beside the steps for one attempt (a database for the tests, say): the
    /// steps start once every one is ready, and reach each by its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<JobService>,
    /// Once finished, the Job is deleted after this many seconds; its run records stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<u64>,
    /// A suspended Job starts no run, and stops the one in progress.
    #[serde(default, skip_serializing_if = "is_default")]
    pub suspend: bool,
    /// The anomaly detectors' thresholds for this Job (each field overrides its default;
    /// `disabled: true` turns detection off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<Thresholds>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// One step: `run` is a shell script for `/bin/sh -c`; `command` is an exec-form array.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
}

impl Step {
    /// A step that runs `script` with `/bin/sh -c`.
    pub fn script(name: impl Into<String>, script: impl Into<String>) -> Step {
        Step {
            name: name.into(),
            run: Some(script.into()),
            command: None,
        }
    }

    /// A step that runs `argv` as it is, with no shell.
    pub fn exec(name: impl Into<String>, argv: Vec<String>) -> Step {
        Step {
            name: name.into(),
            run: None,
            command: Some(argv),
        }
    }
}

/// A container that lives for one attempt beside the steps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobService {
    /// A DNS label, unique in the Job: the host name the steps reach the service by.
    pub name: String,
    pub image: String,
    /// The full command (the image's entrypoint is replaced). Empty: the image's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The container ports the service listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// When the service is ready. Without one: a TCP connect to the first port, or,
    /// with no ports, as soon as the container runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ServiceReadiness>,
}

/// A readiness check: `tcpPort` or `exec`, tried every `periodSeconds` until it passes;
/// after `failureThreshold` failures in a row the attempt fails.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceReadiness {
    /// Ready once this container port accepts connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_port: Option<u16>,
    /// Ready once this command, run inside the service, exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// Seconds between checks (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<u64>,
    /// Seconds one check may take (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Failed checks in a row before the attempt fails (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
}

/// What a service's readiness check is, once the defaults are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadinessCheck {
    /// Ready as soon as it runs.
    Running,
    TcpPort(u16),
    Exec(Vec<String>),
}

impl ServiceReadiness {
    pub const DEFAULT_PERIOD_SECONDS: u64 = 1;
    pub const DEFAULT_TIMEOUT_SECONDS: u64 = 1;
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 60;
}

impl JobService {
    /// The check, with the default when none is given.
    pub fn check(&self) -> ReadinessCheck {
        let readiness = self.readiness.as_ref();
        if let Some(port) = readiness.and_then(|r| r.tcp_port) {
            return ReadinessCheck::TcpPort(port);
        }
        if let Some(command) = readiness.and_then(|r| r.exec.clone()) {
            return ReadinessCheck::Exec(command);
        }
        match self.ports.first() {
            Some(port) => ReadinessCheck::TcpPort(*port),
            None => ReadinessCheck::Running,
        }
    }

    /// (period, timeout, failure threshold), defaults applied.
    pub fn timing(&self) -> (u64, u64, u32) {
        let r = self.readiness.clone().unwrap_or_default();
        (
            r.period_seconds
                .unwrap_or(ServiceReadiness::DEFAULT_PERIOD_SECONDS),
            r.timeout_seconds
                .unwrap_or(ServiceReadiness::DEFAULT_TIMEOUT_SECONDS),
            r.failure_threshold
                .unwrap_or(ServiceReadiness::DEFAULT_FAILURE_THRESHOLD),
        )
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobNetwork {
    #[default]
    None,
    Bridge,
}

/// Hardening beyond the defaults every Job gets (no capabilities, no privilege escalation).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSecurity {
    /// Refuse to run as root. Without `runAsUser`, Docker runs the steps as uid and gid 65534
    /// (nobody); a cluster keeps the image's user and refuses to start if that user is root.
    #[serde(default, skip_serializing_if = "is_default")]
    pub run_as_non_root: bool,
    /// The uid the steps run as, instead of the image's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// The primary gid the steps run as; needs `runAsUser` or `runAsNonRoot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// Mount the image read-only; `/tmp` stays writable (an empty temporary directory).
    #[serde(default, skip_serializing_if = "is_default")]
    pub read_only_root_filesystem: bool,
}

/// Retries of a failed attempt, with exponential backoff capped at `maxBackoffSeconds`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// How many times a failed attempt is retried (0: never).
    #[serde(default)]
    pub limit: u32,
    /// The wait before the first retry; it doubles for each one after.
    #[serde(default = "default_backoff")]
    pub backoff_seconds: u64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_seconds: u64,
}

fn default_backoff() -> u64 {
    10
}

fn default_max_backoff() -> u64 {
    300
}

impl Retry {
    /// The wait before attempt `next_attempt` (2 for the first retry).
    pub fn backoff_before(&self, next_attempt: u32) -> u64 {
        let doublings = next_attempt.saturating_sub(2).min(32);
        self.backoff_seconds
            .saturating_mul(1u64 << doublings)
            .min(self.max_backoff_seconds)
    }
}

/// A file or directory collected from the container after the steps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Artifact {
    pub name: String,
    pub path: String,
    /// When false (the default), a missing artifact fails a run whose steps succeeded.
    #[serde(default, skip_serializing_if = "is_default")]
    pub optional: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum JobPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

impl JobPhase {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimedOut | Self::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::TimedOut => "TimedOut",
            Self::Cancelled => "Cancelled",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum JobConditionType {
    /// The current run has a container.
    Started,
    /// The current run finished, whatever its outcome.
    Complete,
    /// The current run failed, timed out or was cancelled.
    Failed,
    Suspended,
    /// The runtime (Docker) does not answer; the job stays as it is and the controller
    /// retries with backoff. Removed once it answers again.
    RuntimeUnavailable,
    /// The server runs as many containers as `orcaops serve --max-containers` allows:
    /// the attempt starts when one ends, in the order the jobs were refused.
    ContainerLimitReached,
    /// The workspace's quotas (`Workspace.spec.quotas`) have no room for this run: it
    /// stays Pending and starts when room frees up, in the order the jobs were created.
    QuotaExceeded,
    /// A policy (an Enforce `Policy` covering the Job's workspace) refuses what the
    /// attempt would run: it stays Pending until the policy or the Job changes. The
    /// message names the policy, the rule, the field and the fix.
    Blocked,
    /// The last run finished unlike the runs before it (see `status.anomalies`).
    Anomalous,
    /// An `env[].valueFrom.secretKeyRef` names a Secret or key that does not exist: no
    /// run starts until it does (the message says which, and how to create it).
    SecretMissing,
}

/// What happened: the current run, its steps and artifacts, and recent runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    #[serde(default)]
    pub phase: JobPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The number of the current (or last) run, counting from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u32>,
    /// What started the current run: `g<generation>` plus `/rerun=<token>` when re-run by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// When the next attempt starts, while waiting out a retry backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<DateTime<Utc>>,
    /// The container of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactStatus>,
    /// What the steps of the current (or last) run wrote to `$ORCAOPS_OUTPUT`, as
    /// `key=value` lines: at most 64 keys and 16 KiB. Set when an attempt ends; a
    /// Workflow passes them on to later nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// What was unusual about the last finished run against the runs before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<Anomaly>,
    /// What the last attempt used, as its container's cgroup counted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// One line a person reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The most recent runs, newest first, at most ten; every run is in the run records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RunSummary>,
    #[serde(default)]
    pub total_runs: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition<JobConditionType>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    pub name: String,
    /// Absent while the step runs, or when it never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The last lines of the step's output.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_tail: String,
    /// The first lines of its output that look like errors (at most five), with their
    /// line numbers in the step's output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorLine>,
}

/// One line of a step's output that looks like an error (see `records::errors`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ErrorLine {
    /// 1-based, counted over the step's own output.
    pub line: usize,
    pub text: String,
}

/// What one attempt used. The runner reads its container's cgroup after each step
/// (cgroup v2 `cpu.stat` and `memory.peak`, or v1 `cpuacct.usage` and
/// `memory.max_usage_in_bytes`); a figure the kernel does not offer is absent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// CPU time of every process of the attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<u64>,
    /// The most memory the attempt held at once (page cache included, as the limit counts it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// Bytes the steps printed (stdout and stderr, before any cut).
    #[serde(default)]
    pub output_bytes: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStatus {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// One finished run, as kept in `status.history`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub run: u32,
    pub generation: i64,
    pub phase: JobPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub attempts: u32,
}

/// How many runs `status.history` keeps.
pub const HISTORY_LIMIT: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let retry = Retry {
            limit: 5,
            backoff_seconds: 2,
            max_backoff_seconds: 10,
        };
        assert_eq!(retry.backoff_before(2), 2);
        assert_eq!(retry.backoff_before(3), 4);
        assert_eq!(retry.backoff_before(4), 8);
        assert_eq!(retry.backoff_before(5), 10);
        assert_eq!(retry.backoff_before(60), 10);
    }
}
