//! The six kinds of `orcaops.dev/v1alpha1`, the generic stored object, and CRD generation.

pub mod anomaly;
pub mod columns;
pub mod common;
pub mod expr;
pub mod job;
pub mod parse;
pub mod policy;
pub mod quantity;
pub mod registry;
pub mod sandbox;
pub mod schedule;
pub mod selector;
pub mod validate;
pub mod workflow;
pub mod workspace;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use job::{Job, JobSpec, JobStatus};
pub use policy::Policy;
pub use sandbox::{Sandbox, SandboxTemplate};
pub use workflow::Workflow;
pub use workspace::Workspace;

pub const GROUP: &str = "orcaops.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "orcaops.dev/v1alpha1";
/// The workspace (namespace) used when none is given.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Well-known annotation and label keys. The label keys are the contract for
/// every tool that looks at containers.
pub mod keys {
    pub const SOURCE: &str = "orcaops.dev/source";
    /// Who created an object through the API: the agent label of the caller's key, or
    /// its member. Set by the server at creation, whatever the body said.
    pub const CREATED_BY: &str = "orcaops.dev/created-by";
    /// Set to a run number (or `latest`) to cancel that run.
    pub const CANCEL: &str = "orcaops.dev/cancel";
    /// Changed to any new value to start a new run with the same spec.
    pub const RERUN: &str = "orcaops.dev/rerun";
    /// Set to a new timestamp to start an expired or stopped Sandbox again.
    pub const START: &str = "orcaops.dev/start";
    pub const LABEL_WORKSPACE: &str = "orcaops.dev/workspace";
    pub const LABEL_KIND: &str = "orcaops.dev/kind";
    pub const LABEL_NAME: &str = "orcaops.dev/name";
    pub const LABEL_UID: &str = "orcaops.dev/uid";
    pub const LABEL_RUN: &str = "orcaops.dev/run";
    pub const LABEL_ATTEMPT: &str = "orcaops.dev/attempt";
    /// The store instance that owns a container (several orcaops may share a Docker daemon).
    pub const LABEL_INSTANCE: &str = "orcaops.dev/instance";
    /// The service of a Sandbox a container runs.
    pub const LABEL_SERVICE: &str = "orcaops.dev/service";
    /// The SandboxTemplate whose warm pool a container, network or volume belongs to.
    pub const LABEL_POOL: &str = "orcaops.dev/pool";
    /// The warm-pool slot (one pooled sandbox) a container, network or volume belongs to.
    pub const LABEL_SLOT: &str = "orcaops.dev/slot";
    /// On a Job a Workflow made: the Workflow, its run, and the node the Job runs.
    pub const LABEL_WORKFLOW: &str = "orcaops.dev/workflow";
    pub const LABEL_WORKFLOW_RUN: &str = "orcaops.dev/workflow-run";
    pub const LABEL_NODE: &str = "orcaops.dev/node";
    /// On the Job of a node with `until`: which iteration it runs (absent on the first).
    pub const LABEL_ITERATION: &str = "orcaops.dev/iteration";
    /// The finalizer the cluster-mode controllers put on an object whose deletion needs
    /// cleanup first (pods, run records): Kubernetes keeps the object, marked with a
    /// deletionTimestamp, until the controller has cleaned up and removed it.
    pub const FINALIZER: &str = "orcaops.dev/cleanup";
    /// Annotations the controllers and CLI own: an apply from a file keeps them.
    pub const CONTROL: &[&str] = &[CANCEL, RERUN, START, INPUTS, RERUN_MODE, APPROVALS];
    /// On a Workflow: the inputs (a JSON object of strings) of the run the next
    /// `orcaops.dev/rerun` starts; inputs it does not give take their defaults.
    pub const INPUTS: &str = "orcaops.dev/inputs";
    /// On a Workflow: which nodes the run the next `orcaops.dev/rerun` starts runs.
    /// Absent or `all`: every node. `failed`: the nodes that did not succeed in the
    /// previous run (failed, skipped, cancelled or never started); the ones that
    /// succeeded are kept, with their Job and outputs. `from=<node>`: that node and
    /// everything downstream of it; the rest is kept. Whoever sets the token sets (or
    /// removes) this in the same write.
    pub const RERUN_MODE: &str = "orcaops.dev/rerun-mode";
    /// On a Workflow: decisions on approval nodes, a JSON object
    /// `{"run": 3, "nodes": {"deploy": {"approved": true, "message": "ok", "by": "alice"}}}`.
    /// A decision counts only for the run it names. A node key is a node's name as
    /// declared (deciding for every matrix combination of it) or as expanded.
    pub const APPROVALS: &str = "orcaops.dev/approvals";
    /// Prefix of the `orcaops.dev/rerun` token set by `POST .../workflows/{name}/runs`:
    /// `run-<Idempotency-Key or a fresh id>`. A run whose token has it is triggered by
    /// `api`; other tokens by `rerun`.
    pub const RUN_TOKEN_PREFIX: &str = "run-";
    /// Prefix of the token a webhook delivery sets: `hook-<delivery id>`. A run whose
    /// token has it is triggered by `webhook`.
    pub const HOOK_TOKEN_PREFIX: &str = "hook-";
}

/// The kinds orcaops knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Job,
    Workflow,
    Sandbox,
    SandboxTemplate,
    Workspace,
    Policy,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Job,
        Kind::Workflow,
        Kind::Sandbox,
        Kind::SandboxTemplate,
        Kind::Workspace,
        Kind::Policy,
    ];

    // The names and the scope are read from the kind's CRD, through the registry.

    pub fn as_str(self) -> &'static str {
        registry::name(self)
    }

    pub fn plural(self) -> &'static str {
        registry::plural(self)
    }

    pub fn singular(self) -> &'static str {
        registry::singular(self)
    }

    /// Short names the CLI accepts (the CRDs declare cluster-safe ones).
    pub fn short_names(self) -> &'static [&'static str] {
        registry::short_names(self)
    }

    pub fn namespaced(self) -> bool {
        registry::namespaced(self)
    }

    /// Whether a controller acts on objects of this kind (the others are stored only).
    pub fn reconciled(self) -> bool {
        registry::controller(self) == registry::Controller::Reconciled
    }

    /// Resolves `Job`, `job`, `jobs`, `wf`, `jobs.orcaops.dev` and the like.
    pub fn parse(s: &str) -> Option<Kind> {
        let s = s
            .strip_suffix(".orcaops.dev")
            .unwrap_or(s)
            .to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| k.singular() == s || k.plural() == s || k.short_names().contains(&s.as_str()))
    }

    /// The typed kind from a `kind:` field, exactly as written.
    pub fn from_kind_field(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn crd(
        self,
    ) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition
    {
        registry::crd(self).clone()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one object: kind, workspace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        let namespace = if kind.namespaced() {
            namespace.into()
        } else {
            String::new()
        };
        ObjectKey {
            kind,
            namespace,
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind.singular(), self.name)
        } else {
            write!(
                f,
                "{}/{}/{}",
                self.kind.singular(),
                self.namespace,
                self.name
            )
        }
    }
}

/// Object metadata, serialized exactly as Kubernetes' ObjectMeta.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default)]
    pub generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<Value>,
}

/// A stored object of any kind: what the store, the API and the folder source pass around.
/// Controllers turn it into the typed kind with [`Object::typed`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    pub api_version: String,
    pub kind: Kind,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Value,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub status: Value,
}

impl Object {
    pub fn new(kind: Kind, namespace: &str, name: &str, spec: Value) -> Self {
        Object {
            api_version: API_VERSION.to_string(),
            kind,
            metadata: ObjectMeta {
                name: name.to_string(),
                namespace: kind.namespaced().then(|| namespace.to_string()),
                ..Default::default()
            },
            spec,
            status: Value::Null,
        }
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            self.kind,
            self.metadata.namespace.clone().unwrap_or_default(),
            &self.metadata.name,
        )
    }

    /// The typed resource (for example [`Job`]) this object holds.
    pub fn typed<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(serde_json::to_value(self)?)
    }

    /// `orcaops.dev/source` of this object, if a source wrote it.
    pub fn source(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(keys::SOURCE)
            .map(String::as_str)
    }
}

/// The CRDs of all six kinds as one multi-document YAML stream, as `orcaops crds` prints it.
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for kind in Kind::ALL {
        let value = serde_json::to_value(kind.crd()).expect("a CRD always serializes");
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&value).expect("a CRD always serializes to YAML"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_every_spelling() {
        assert_eq!(Kind::parse("job"), Some(Kind::Job));
        assert_eq!(Kind::parse("Jobs"), Some(Kind::Job));
        assert_eq!(Kind::parse("wf"), Some(Kind::Workflow));
        assert_eq!(Kind::parse("sb"), Some(Kind::Sandbox));
        assert_eq!(Kind::parse("ws"), Some(Kind::Workspace));
        assert_eq!(Kind::parse("policies"), Some(Kind::Policy));
        assert_eq!(Kind::parse("jobs.orcaops.dev"), Some(Kind::Job));
        assert_eq!(Kind::parse("pods"), None);
    }

    #[test]
    fn cluster_scoped_keys_drop_the_namespace() {
        assert_eq!(ObjectKey::new(Kind::Policy, "default", "p").namespace, "");
        assert_eq!(
            ObjectKey::new(Kind::Job, "default", "j").namespace,
            "default"
        );
    }

    #[test]
    fn crds_have_status_and_columns() {
        let crd = Kind::Job.crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("jobs.orcaops.dev"));
        let version = &crd.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns = version.additional_printer_columns.as_ref().unwrap();
        assert!(columns.iter().any(|c| c.name == "Phase"));
    }
}
