//! The Sandbox and SandboxTemplate kinds: long-lived services that agents exec into,
//! and the blueprints (with warm pools) they start from.

// kube's `printcolumn(...)` attributes repeat `type_ = ...`; this lint misreads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use chrono::{DateTime, Utc};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, EnvVar, Resources};

/// A sandbox: service containers that run until stopped, idle or expired.
///
/// Fields left out are taken from the template named by `templateRef`, if any.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "orcaops.dev",
    version = "v1alpha1",
    kind = "Sandbox",
    namespaced,
    status = "SandboxStatus",
    shortname = "sb",
    category = "orcaops",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Template", type_ = "string", json_path = ".spec.templateRef"),
    printcolumn(name = "Expires", type_ = "date", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxSpec {
    /// The name of a SandboxTemplate in the same workspace to start from. A Sandbox that
    /// names a template and declares no services of its own can be claimed from the
    /// template's warm pool at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<String>,
    /// The containers of the sandbox. When given, they replace the template's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<SandboxService>,
    /// `Running` (the default) or `Stopped`. Stopping keeps the containers' files and
    /// the volumes; starting again restores them.
    #[serde(default, skip_serializing_if = "is_default")]
    pub state: SandboxState,
    /// Stop or delete (see `onExpiry`) after this long without activity. Exec calls,
    /// file transfers, and any process still running from an exec count as activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// The longest the sandbox runs after each start, whatever its activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// What expiry does: `Stop` (the default; files and volumes are kept) or `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_expiry: Option<ExpiryAction>,
    /// `none` (the default): no network at all. `private`: a network of the sandbox's
    /// own, where services reach each other by name and nothing else. `bridge`: the
    /// Docker bridge, with outside access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<SandboxNetwork>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// One container of a sandbox.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxService {
    /// The service's name; other services reach it by this name on a `private` network.
    pub name: String,
    pub image: String,
    /// The full command (the image's entrypoint is replaced). Empty: the image's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Ports published on the host's loopback; `status.services[].endpoints` says where.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// How readiness is checked. Without one, a running container is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Named volumes, kept across stop and start and removed with the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    pub container_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A readiness check: exactly one of `exec`, `tcp` or `http`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// A command run inside the container; exit code 0 means ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// A TCP connect to this container port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// An HTTP GET; any 2xx or 3xx answer means ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// Seconds between checks (default 2; 0.2 s while starting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// Seconds one check may take (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Consecutive failures after which a ready service is no longer ready (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpCheck {
    pub port: u16,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCheck {
    pub port: u16,
    /// The path to GET (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SandboxState {
    #[default]
    Running,
    Stopped,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExpiryAction {
    #[default]
    Stop,
    Delete,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SandboxNetwork {
    #[default]
    None,
    Private,
    Bridge,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SandboxPhase {
    Pending,
    Starting,
    Ready,
    Stopping,
    Stopped,
    Failed,
    Expired,
}

impl SandboxPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxPhase::Pending => "Pending",
            SandboxPhase::Starting => "Starting",
            SandboxPhase::Ready => "Ready",
            SandboxPhase::Stopping => "Stopping",
            SandboxPhase::Stopped => "Stopped",
            SandboxPhase::Failed => "Failed",
            SandboxPhase::Expired => "Expired",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SandboxConditionType {
    /// Every service is running and passes its health check.
    Ready,
    /// Expiry is due within a minute (the reason says idle or ttl).
    Expiring,
    /// The runtime (Docker) does not answer; the controller retries with backoff.
    /// Removed once it answers again.
    RuntimeUnavailable,
    /// The server runs as many containers as `orcaops serve --max-containers` allows:
    /// the services start when containers end, in the order the sandboxes were refused.
    ContainerLimitReached,
    /// The workspace's quotas (`Workspace.spec.quotas`) have no room for this sandbox: it
    /// stays Pending and starts when room frees up, in the order the sandboxes were created.
    QuotaExceeded,
    /// A policy (an Enforce `Policy` covering the Sandbox's workspace) refuses it: it
    /// stays Pending until the policy or the Sandbox changes.
    Blocked,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SandboxPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One line for people: what the sandbox is doing or why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceStatus>,
    /// The sandbox's own network, when `network: private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    /// When the sandbox last started; `ttlSeconds` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When an exec, a file transfer or a process started by an exec was last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_time: Option<DateTime<Utc>>,
    /// When the sandbox will expire if nothing happens: the earlier of the idle and
    /// TTL deadlines. Always set while a deadline applies, so expiry is never a surprise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Which deadline `expiresAt` is: `idle` or `ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_reason: Option<String>,
    /// When the sandbox expired (phase Expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<DateTime<Utc>>,
    /// Set when the sandbox was claimed from a template's warm pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_from: Option<PoolClaim>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition<SandboxConditionType>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub name: String,
    /// The container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default)]
    pub ready: bool,
    /// How many times the container was restarted after it died.
    #[serde(default)]
    pub restarts: u32,
    /// `running`, `exited (code N)`, `waiting to restart`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where each port is published on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_time: Option<DateTime<Utc>>,
    /// When a dead container will be restarted (exponential backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_restart_time: Option<DateTime<Utc>>,
    /// Deaths in a row, each within a minute of the container's start; the restart
    /// backoff doubles with each. Back to 0 once the container stays up a minute.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: u16,
    pub host_ip: String,
    pub host_port: u16,
}

/// The warm-pool slot a sandbox was claimed from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolClaim {
    pub template: String,
    pub slot: String,
    pub claimed_at: DateTime<Utc>,
}

/// A reusable sandbox blueprint, optionally with a pool of ready sandboxes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "orcaops.dev",
    version = "v1alpha1",
    kind = "SandboxTemplate",
    namespaced,
    status = "SandboxTemplateStatus",
    shortname = "sbt",
    category = "orcaops",
    printcolumn(name = "Pool", type_ = "integer", json_path = ".spec.warmPool.size"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.pool.ready"),
    printcolumn(
        name = "Starting",
        type_ = "integer",
        json_path = ".status.pool.starting"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SandboxTemplateSpec {
    pub services: Vec<SandboxService>,
    /// Defaults for sandboxes made from this template; a Sandbox may override each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_expiry: Option<ExpiryAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<SandboxNetwork>,
    /// Keep this many sandboxes started and ready, so a claim takes milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmPool {
    /// How many ready sandboxes to keep.
    pub size: u32,
    /// Under a burst of claims the pool grows up to this size, then shrinks back to
    /// `size` once claims slow down (default: `size`, no growth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    /// How many pool sandboxes start at once while refilling (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill_concurrency: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxTemplateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition<SandboxTemplateConditionType>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SandboxTemplateConditionType {
    /// Whether the declared warm pool is kept. False on a cluster, where warm pools do
    /// not run yet: Sandboxes of the template start cold.
    WarmPool,
}

/// The depth of a warm pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// The size the pool is being kept at now (grows under bursts).
    pub desired: u32,
    /// Started and healthy, waiting to be claimed.
    pub ready: u32,
    /// Being started.
    pub starting: u32,
    /// Claims served from the pool since the template was created.
    #[serde(default)]
    pub claimed: u64,
    /// Claims that found the pool empty and started cold.
    #[serde(default)]
    pub missed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_claim_time: Option<DateTime<Utc>>,
}

/// What a Sandbox runs once its template is applied: every field resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveSandbox {
    pub services: Vec<SandboxService>,
    pub idle_timeout_seconds: Option<u64>,
    pub ttl_seconds: Option<u64>,
    pub on_expiry: ExpiryAction,
    pub network: SandboxNetwork,
    /// True when the services come from the template unchanged, so a warm-pool
    /// sandbox of that template is an exact match.
    pub poolable: bool,
}

/// Resolves a Sandbox against its template (`None` when it names none). Pure.
pub fn effective(spec: &SandboxSpec, template: Option<&SandboxTemplateSpec>) -> EffectiveSandbox {
    let own_services = !spec.services.is_empty();
    let services = match (own_services, template) {
        (false, Some(t)) => t.services.clone(),
        _ => spec.services.clone(),
    };
    let network = spec
        .network
        .or(template.and_then(|t| t.network))
        .unwrap_or_default();
    let template_network = template.and_then(|t| t.network).unwrap_or_default();
    EffectiveSandbox {
        services,
        idle_timeout_seconds: spec
            .idle_timeout_seconds
            .or(template.and_then(|t| t.idle_timeout_seconds)),
        ttl_seconds: spec.ttl_seconds.or(template.and_then(|t| t.ttl_seconds)),
        on_expiry: spec
            .on_expiry
            .or(template.and_then(|t| t.on_expiry))
            .unwrap_or_default(),
        network,
        poolable: template.is_some() && !own_services && network == template_network,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> SandboxService {
        SandboxService {
            name: name.into(),
            image: "busybox:latest".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_sandbox_inherits_what_it_leaves_out() {
        let template = SandboxTemplateSpec {
            services: vec![service("shell")],
            idle_timeout_seconds: Some(600),
            ttl_seconds: Some(3600),
            on_expiry: Some(ExpiryAction::Delete),
            network: Some(SandboxNetwork::Private),
            warm_pool: None,
        };
        let spec = SandboxSpec {
            template_ref: Some("t".into()),
            ttl_seconds: Some(60),
            ..Default::default()
        };
        let e = effective(&spec, Some(&template));
        assert_eq!(e.services, vec![service("shell")]);
        assert_eq!(e.idle_timeout_seconds, Some(600));
        assert_eq!(e.ttl_seconds, Some(60));
        assert_eq!(e.on_expiry, ExpiryAction::Delete);
        assert_eq!(e.network, SandboxNetwork::Private);
        assert!(e.poolable);
    }

    #[test]
    fn own_services_or_another_network_cannot_come_from_the_pool() {
        let template = SandboxTemplateSpec {
            services: vec![service("shell")],
            ..Default::default()
        };
        let own = SandboxSpec {
            template_ref: Some("t".into()),
            services: vec![service("db")],
            ..Default::default()
        };
        let e = effective(&own, Some(&template));
        assert_eq!(e.services, vec![service("db")]);
        assert!(!e.poolable);
        let bridged = SandboxSpec {
            template_ref: Some("t".into()),
            network: Some(SandboxNetwork::Bridge),
            ..Default::default()
        };
        assert!(!effective(&bridged, Some(&template)).poolable);
        let plain = SandboxSpec {
            services: vec![service("x")],
            ..Default::default()
        };
        let e = effective(&plain, None);
        assert!(!e.poolable);
        assert_eq!(e.network, SandboxNetwork::None);
        assert_eq!(e.on_expiry, ExpiryAction::Stop);
    }
}
