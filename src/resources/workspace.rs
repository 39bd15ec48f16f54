//! The Workspace kind: a tenant with quotas, members and policies. Parsed and validated here.

// kube's `printcolumn(...)` attributes repeat `type_ = ...`; this lint misreads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::common::{Condition, Resources, SecretKeySelector};
use super::job::{JobNetwork, JobSpec};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "orcaops.dev",
    version = "v1alpha1",
    kind = "Workspace",
    status = "WorkspaceStatus",
    shortname = "ws",
    category = "orcaops",
    printcolumn(
        name = "Usage",
        type_ = "string",
        description = "Each quota's use against its limit",
        json_path = ".status.summary"
    ),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.members"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<WorkspaceDefaults>,
    /// Names of the Policies that apply here, beside those that select this workspace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// HTTP endpoints told (a signed JSON POST) when something here needs attention: a
    /// run failed, an anomaly, an approval waiting, a sandbox about to expire.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<Notification>,
}

/// One endpoint of `spec.notifications`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notification {
    /// Where the notification is POSTed: an `http://` URL.
    pub url: String,
    /// Which events are sent here; empty or absent: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NotificationEvent>,
    /// The key of a Secret in this workspace whose value signs each body
    /// (`X-Orcaops-Signature-256: sha256=<hex HMAC-SHA256>`); absent: sent unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeySelector>,
}

impl Notification {
    /// Whether `event` is sent to this endpoint.
    pub fn wants(&self, event: NotificationEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// What a notification can be about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NotificationEvent {
    /// A Job's run ended Failed or TimedOut.
    RunFailed,
    /// A finished Job run is anomalous (slower than usual, a memory spike, ...).
    Anomaly,
    /// A Workflow node waits for someone to approve it.
    ApprovalWaiting,
    /// A Sandbox expires soon (idle timeout or TTL).
    SandboxExpiring,
}

impl NotificationEvent {
    /// The name in `events`, in bodies and in the `X-Orcaops-Event` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunFailed => "runFailed",
            Self::Anomaly => "anomaly",
            Self::ApprovalWaiting => "approvalWaiting",
            Self::SandboxExpiring => "sandboxExpiring",
        }
    }
}

/// A notification endpoint as declared (`spec.notifications[].url`, `--notify-url`),
/// checked: an absolute `http://` URL. On a problem, what is wrong and the fix.
pub fn notification_url(text: &str) -> Result<url::Url, (String, String)> {
    let url = url::Url::parse(text).map_err(|e| {
        (
            format!("\"{text}\" is not a URL ({e})"),
            "write an absolute URL such as http://alerts.internal:8080/orcaops".to_string(),
        )
    })?;
    match url.scheme() {
        "http" if url.host().is_some() => Ok(url),
        "http" => Err((
            format!("\"{text}\" names no host"),
            "write an absolute URL such as http://alerts.internal:8080/orcaops".into(),
        )),
        // The HTTP client is built without TLS (no TLS stack beyond kube's own).
        "https" => Err((
            format!("\"{text}\": orcaops sends notifications over plain HTTP only"),
            "send to an http:// endpoint (a relay beside orcaops can forward over TLS); bodies are signed either way".into(),
        )),
        other => Err((
            format!("\"{text}\" is not HTTP (scheme {other})"),
            "write an http:// URL".into(),
        )),
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quotas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_jobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandboxes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Job runs that may start within any hour (retries of a run do not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_per_hour: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    pub name: String,
    pub role: Role,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Developer,
    Viewer,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The cpu and memory of a Job (or a Sandbox service) that names neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The network of a Job that does not say `network`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<JobNetwork>,
}

/// Which fields of a Job came from its workspace's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaulted {
    pub timeout_seconds: bool,
    pub resources: bool,
    pub network: bool,
}

impl WorkspaceDefaults {
    /// Fills what `spec` leaves out from these defaults. `raw` is the spec as written
    /// (JSON): `network` has a default of its own, so only its absence there counts as
    /// leaving it out. The image is required by a Job's schema, so it is never missing.
    pub fn apply_to_job(&self, spec: &mut JobSpec, raw: &serde_json::Value) -> Defaulted {
        let mut defaulted = Defaulted::default();
        if spec.timeout_seconds.is_none() && self.timeout_seconds.is_some() {
            spec.timeout_seconds = self.timeout_seconds;
            defaulted.timeout_seconds = true;
        }
        if spec.resources.is_none() && self.resources.is_some() {
            spec.resources = self.resources.clone();
            defaulted.resources = true;
        }
        if raw.get("network").is_none()
            && let Some(network) = self.network
        {
            spec.network = network;
            defaulted.network = true;
        }
        defaulted
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WorkspaceConditionType {
    Ready,
}

/// One quota's use, as a ResourceQuota's `status.used` and `status.hard` say it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUsage {
    pub used: String,
    pub hard: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Each quota set in `spec.quotas` (by its field name): what is in use, and the limit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub usage: BTreeMap<String, QuotaUsage>,
    /// `usage` on one line (`concurrentJobs 2/2, cpu 1200m/2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// How many members `spec.members` lists.
    #[serde(default)]
    pub members: u32,
    /// How many API keys of the workspace work now (neither expired nor revoked);
    /// counted again at least every minute.
    #[serde(default)]
    pub keys: u32,
    /// How many Jobs and Sandboxes wait for room (condition `QuotaExceeded`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waiting: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition<WorkspaceConditionType>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
