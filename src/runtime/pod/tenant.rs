//! What a Workspace becomes on a cluster, built here (pure) and applied by
//! [`PodRuntime::apply_tenant`]: its Namespace, a ResourceQuota from `spec.quotas`, a
//! LimitRange from `spec.defaults.resources`, a NetworkPolicy that lets no pod of
//! another namespace in, and a RoleBinding per member to the ClusterRole of its role.
//! Every object carries the label `orcaops.dev/workspace` and, except the Namespace,
//! the Workspace as its owner, so Kubernetes removes them with it; the Namespace is
//! left, as what runs in it is people's work.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use super::runtime::PodRuntime;
use crate::resources::API_VERSION;
use crate::resources::workspace::{Role, WorkspaceSpec};
use crate::runtime::RuntimeError;

/// The field manager of what the Workspace controller applies.
pub const MANAGER: &str = "orcaops-workspace";
/// The label every object of a workspace's tenant carries: the workspace's name.
pub const LABEL_WORKSPACE: &str = "orcaops.dev/workspace";
/// The names of the objects one per workspace.
pub const QUOTA: &str = "orcaops-quota";
pub const LIMITS: &str = "orcaops-defaults";
pub const ISOLATION: &str = "orcaops-isolation";
/// The CPU and memory a container without requests asks for when the workspace has a
/// cpu or memory quota but no default resources: a quota on requests refuses pods that
/// name none.
pub const FALLBACK_CPU: &str = "100m";
pub const FALLBACK_MEMORY: &str = "128Mi";

/// The ClusterRole a member's role binds to (shipped in the manifests and the chart).
pub fn cluster_role(role: Role) -> &'static str {
    match role {
        Role::Admin => "orcaops-workspace-admin",
        Role::Developer => "orcaops-workspace-developer",
        Role::Viewer => "orcaops-workspace-viewer",
    }
}

/// The Workspace an object belongs to.
#[derive(Clone, Debug)]
pub struct TenantOwner {
    pub name: String,
    pub uid: String,
}

/// Everything a workspace's tenant is made of.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Tenant {
    pub namespace: Namespace,
    pub quota: Option<ResourceQuota>,
    pub limits: Option<LimitRange>,
    pub isolation: NetworkPolicy,
    pub role_bindings: Vec<RoleBinding>,
}

fn labels(workspace: &str) -> BTreeMap<String, String> {
    [
        (LABEL_WORKSPACE.to_string(), workspace.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "orcaops".to_string(),
        ),
    ]
    .into()
}

fn meta(owner: &TenantOwner, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(owner.name.clone()),
        labels: Some(labels(&owner.name)),
        owner_references: Some(vec![OwnerReference {
            api_version: API_VERSION.to_string(),
            kind: "Workspace".to_string(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }]),
        ..Default::default()
    }
}

/// A member's name as a DNS label part: lower case, `-` for anything else, at most 40
/// characters (the binding's name also says the role).
fn dns_part(name: &str) -> String {
    crate::resources::validate::dns_label_suggestion(name, 40)
}

/// The tenant of workspace `owner` as `spec` declares it.
pub fn build_tenant(owner: &TenantOwner, spec: &WorkspaceSpec) -> Tenant {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(owner.name.clone()),
            labels: Some(labels(&owner.name)),
            ..Default::default()
        },
        ..Default::default()
    };

    let quotas = spec.quotas.clone().unwrap_or_default();
    let mut hard: BTreeMap<String, Quantity> = BTreeMap::new();
    // Each Job attempt and each Sandbox is a pod: the pods a workspace may run at once
    // are its concurrent jobs and its sandboxes together.
    if let Some(jobs) = quotas.concurrent_jobs {
        let pods = u64::from(jobs) + u64::from(quotas.sandboxes.unwrap_or(0));
        hard.insert("pods".into(), Quantity(pods.to_string()));
    }
    if let Some(sandboxes) = quotas.sandboxes {
        hard.insert(
            "count/sandboxes.orcaops.dev".into(),
            Quantity(sandboxes.to_string()),
        );
    }
    if let Some(cpu) = &quotas.cpu {
        hard.insert("requests.cpu".into(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &quotas.memory {
        hard.insert("requests.memory".into(), Quantity(memory.clone()));
    }
    let quota = (!hard.is_empty()).then(|| ResourceQuota {
        metadata: meta(owner, QUOTA),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..Default::default()
        }),
        ..Default::default()
    });

    let defaults = spec.defaults.as_ref().and_then(|d| d.resources.clone());
    let mut request: BTreeMap<String, Quantity> = BTreeMap::new();
    if let Some(cpu) = defaults.as_ref().and_then(|r| r.cpu.clone()) {
        request.insert("cpu".into(), Quantity(cpu));
    } else if quotas.cpu.is_some() {
        request.insert("cpu".into(), Quantity(FALLBACK_CPU.into()));
    }
    if let Some(memory) = defaults.as_ref().and_then(|r| r.memory.clone()) {
        request.insert("memory".into(), Quantity(memory));
    } else if quotas.memory.is_some() {
        request.insert("memory".into(), Quantity(FALLBACK_MEMORY.into()));
    }
    let limits = (!request.is_empty()).then(|| LimitRange {
        metadata: meta(owner, LIMITS),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                // Requests equal to limits, as orcaops' own pods have them.
                default: Some(request.clone()),
                default_request: Some(request),
                ..Default::default()
            }],
        }),
    });

    let isolation = NetworkPolicy {
        metadata: meta(owner, ISOLATION),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".to_string()]),
            // From this namespace's pods only: nothing of another workspace gets in.
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector::default()),
                    ..Default::default()
                }]),
                ports: None,
            }]),
            egress: None,
        }),
    };

    let mut role_bindings: Vec<RoleBinding> = spec
        .members
        .iter()
        .map(|m| {
            let role = cluster_role(m.role);
            let name = format!("{role}-{}", dns_part(&m.name));
            let mut metadata = meta(owner, &name);
            metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert("orcaops.dev/member".into(), dns_part(&m.name));
            RoleBinding {
                metadata,
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "ClusterRole".into(),
                    name: role.into(),
                },
                subjects: Some(vec![Subject {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "User".into(),
                    name: m.name.clone(),
                    namespace: None,
                }]),
            }
        })
        .collect();
    role_bindings.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    role_bindings.dedup_by(|a, b| a.metadata.name == b.metadata.name);

    Tenant {
        namespace,
        quota,
        limits,
        isolation,
        role_bindings,
    }
}

/// What applying a tenant did, for the Workspace's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Objects applied, as `kind/name`.
    pub applied: Vec<String>,
    /// Objects of the workspace no longer declared, removed.
    pub removed: Vec<String>,
}

impl PodRuntime {
    /// Applies `tenant` with server-side apply (field manager [`MANAGER`]) and removes
    /// what an earlier spec made that this one no longer declares (a quota or limits
    /// taken out, a member gone).
    pub async fn apply_tenant(&self, tenant: &Tenant) -> Result<Applied, RuntimeError> {
        let client = self.client().clone();
        let ns = tenant.namespace.metadata.name.clone().unwrap_or_default();
        let params = PatchParams::apply(MANAGER).force();
        let mut done = Applied::default();
        Api::<Namespace>::all(client.clone())
            .patch(&ns, &params, &Patch::Apply(&tenant.namespace))
            .await
            .map_err(RuntimeError::Kube)?;
        done.applied.push(format!("Namespace/{ns}"));

        let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
        match &tenant.quota {
            Some(q) => {
                quotas
                    .patch(QUOTA, &params, &Patch::Apply(q))
                    .await
                    .map_err(RuntimeError::Kube)?;
                done.applied.push(format!("ResourceQuota/{QUOTA}"));
            }
            None => {
                if remove(&quotas, QUOTA).await? {
                    done.removed.push(format!("ResourceQuota/{QUOTA}"));
                }
            }
        }
        let ranges: Api<LimitRange> = Api::namespaced(client.clone(), &ns);
        match &tenant.limits {
            Some(l) => {
                ranges
                    .patch(LIMITS, &params, &Patch::Apply(l))
                    .await
                    .map_err(RuntimeError::Kube)?;
                done.applied.push(format!("LimitRange/{LIMITS}"));
            }
            None => {
                if remove(&ranges, LIMITS).await? {
                    done.removed.push(format!("LimitRange/{LIMITS}"));
                }
            }
        }
        Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
            .patch(ISOLATION, &params, &Patch::Apply(&tenant.isolation))
            .await
            .map_err(RuntimeError::Kube)?;
        done.applied.push(format!("NetworkPolicy/{ISOLATION}"));

        let bindings: Api<RoleBinding> = Api::namespaced(client, &ns);
        let mut wanted = Vec::new();
        for binding in &tenant.role_bindings {
            let name = binding.metadata.name.clone().unwrap_or_default();
            bindings
                .patch(&name, &params, &Patch::Apply(binding))
                .await
                .map_err(RuntimeError::Kube)?;
            done.applied.push(format!("RoleBinding/{name}"));
            wanted.push(name);
        }
        let ours = bindings
            .list(&ListParams::default().labels(&format!("{LABEL_WORKSPACE}={ns}")))
            .await
            .map_err(RuntimeError::Kube)?;
        for old in ours.items {
            let name = old.metadata.name.unwrap_or_default();
            if !wanted.contains(&name) && remove(&bindings, &name).await? {
                done.removed.push(format!("RoleBinding/{name}"));
            }
        }
        Ok(done)
    }
}

/// Deletes `name`; false when it was not there.
async fn remove<K>(api: &Api<K>, name: &str) -> Result<bool, RuntimeError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(RuntimeError::Kube(e)),
    }
}

#[cfg(test)]
mod tests;
