//! The Policy kind: rules on what may run. Parsed and validated here; evaluated by
//! `crate::policy` on every write (REST, the folder, `sync`) and once more before a Job
//! or Sandbox starts. See docs/policies.md.

// kube's `printcolumn(...)` attributes repeat `type_ = ...`; this lint misreads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "orcaops.dev",
    version = "v1alpha1",
    kind = "Policy",
    status = "PolicyStatus",
    shortname = "opol",
    category = "orcaops",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default)]
    pub mode: PolicyMode,
    /// Workspace name patterns (`*` matches any run of characters); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<PatternRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout_seconds: Option<u64>,
    /// Which network modes a Job or Sandbox may use (`none`, `private`, `bridge`); any
    /// other mode is refused. Absent: every mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_network: Option<NetworkRule>,
    /// Labels every covered object must carry: a key (`team`), or a key and its value
    /// (`env=prod`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_labels: Vec<String>,
    /// CEL expressions over `object` (what is written) and `oldObject` (what it replaces;
    /// null on create); an object is refused when one is false.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<CelRule>,
}

/// Which images may run. Patterns are globs over the whole reference (`*` matches any
/// run of characters, `/` included); a reference without a tag or digest is read as
/// `:latest`, as Docker reads it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRule {
    /// When not empty, every image must match one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// No image may match one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// When not empty, every image must come from one of these registries (`ghcr.io`,
    /// `registry.internal:5000`; an image without one is from `docker.io`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<String>,
    /// Every image must be pinned by digest (`name@sha256:…`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_digest: bool,
}

/// `allowNetwork`: the modes allowed (a list, so that the CRD's schema stays structural).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct NetworkRule(pub Vec<String>);

impl NetworkRule {
    /// The network modes a spec may name: `none`, `private` (a Sandbox's own network)
    /// and `bridge`.
    pub const MODES: [&'static str; 3] = ["none", "private", "bridge"];

    /// Whether `mode` is allowed.
    pub fn allows(&self, mode: &str) -> bool {
        self.0.iter().any(|m| m == mode)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PolicyMode {
    #[default]
    Enforce,
    Audit,
    Warn,
}

impl PolicyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Enforce => "Enforce",
            PolicyMode::Audit => "Audit",
            PolicyMode::Warn => "Warn",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatternRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CelRule {
    pub name: String,
    /// A CEL expression over `object`; the request is refused when it is false.
    pub expression: String,
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PolicyConditionType {
    Ready,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition<PolicyConditionType>>,
    /// What the policy found, aggregated: bounded whatever the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violations: Option<ViolationReport>,
}

/// A policy's violations: totals by what was done about them, counts by rule, and the
/// most recent per rule and object (at most [`ViolationReport::RECENT`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViolationReport {
    /// Writes refused (Enforce), and starts blocked.
    #[serde(default)]
    pub refused: u64,
    /// Writes accepted with a warning (Warn).
    #[serde(default)]
    pub warned: u64,
    /// Writes accepted and recorded (Audit).
    #[serde(default)]
    pub audited: u64,
    /// How many violations each rule found.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub by_rule: std::collections::BTreeMap<String, u64>,
    /// The newest violations, one entry per rule and object, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<ViolationEntry>,
}

impl ViolationReport {
    /// How many entries `recent` keeps.
    pub const RECENT: usize = 20;
}

/// One rule's finding on one object, with how often it was found.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViolationEntry {
    pub rule: String,
    /// `Kind/namespace/name` (`Kind/name` when cluster-scoped).
    pub object: String,
    pub field: String,
    pub message: String,
    /// `refused`, `blocked`, `warned` or `audited`.
    pub action: String,
    /// Where the object came from: `api`, `folder:<file>`, `sync:<file>`, `controller`.
    pub door: String,
    pub count: u64,
    pub last_seen: chrono::DateTime<chrono::Utc>,
}
