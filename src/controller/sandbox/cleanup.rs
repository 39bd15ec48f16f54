//! Removing what Sandboxes leave behind: at once when one is deleted (the local store
//! has no finalizers: the object is gone before anything is removed), and in a sweep
//! at start-up and every resync, for deletions this process did not see. Only Docker
//! objects labelled with this store's instance are ever considered.

use std::collections::HashSet;

use tracing::{info, warn};

use crate::controller::template;
use crate::controller::{Context, ControllerError};
use crate::resources::sandbox::{SandboxSpec, SandboxStatus};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::runtime::DockerRuntime;
use crate::runtime::sandbox::names::{POOL_PREFIX, child_name, pool_base, sandbox_base};

/// Removes the containers, network and volumes of a deleted Sandbox, and forgets it.
pub async fn remove_deleted(
    ctx: &Context,
    docker: &DockerRuntime,
    obj: &Object,
) -> Result<(), ControllerError> {
    let uid = obj.metadata.uid.as_str();
    ctx.sandboxes.forget(uid);
    ctx.activity.forget(uid);
    ctx.pools.forget_claims_of(uid);
    let instance = ctx.store.instance_id();
    let ns = obj.metadata.namespace.clone().unwrap_or_default();
    let status: SandboxStatus = serde_json::from_value(obj.status.clone()).unwrap_or_default();
    // Containers it made carry its uid; those it claimed carry their pool slot's labels.
    let mut selectors = vec![vec![
        (keys::LABEL_INSTANCE, instance),
        (keys::LABEL_UID, uid),
    ]];
    let mut networks = vec![sandbox_base(&obj.metadata)];
    if let Some(claim) = &status.claimed_from {
        selectors.push(vec![
            (keys::LABEL_INSTANCE, instance),
            (keys::LABEL_WORKSPACE, ns.as_str()),
            (keys::LABEL_POOL, claim.template.as_str()),
            (keys::LABEL_SLOT, claim.slot.as_str()),
        ]);
        networks.push(pool_base(&ns, &claim.template, &claim.slot));
    }
    // By name when the names are known: one inspect each, where a list by label makes
    // the daemon look at every container it has, which 500 deletions at once turned
    // into 500 scans of 500 containers. The labels are checked before removing.
    let names = container_names(obj, &status);
    let mut removed = 0;
    if names.is_empty() {
        for selector in &selectors {
            for c in docker.list(selector).await? {
                docker.remove(&c.id).await?;
                removed += 1;
            }
        }
    } else {
        for name in &names {
            let Some(c) = docker.inspect(name).await? else {
                continue;
            };
            if c.label(keys::LABEL_INSTANCE) != Some(instance) {
                continue;
            }
            docker.remove(&c.id).await?;
            removed += 1;
        }
    }
    for network in &networks {
        docker.remove_network(network).await?;
    }
    for selector in &selectors {
        for volume in docker.list_volumes(selector).await? {
            docker.remove_volume(&volume).await?;
        }
    }
    info!(namespace = %ns, name = %obj.metadata.name, containers = removed, "removed a deleted sandbox");
    Ok(())
}

/// The names a sandbox's containers may have: each service's, under the sandbox's own
/// base and, for a claimed slot not yet renamed, the slot's; and those its status
/// recorded. Empty when neither spec nor status names a service (the caller lists by
/// label instead).
fn container_names(obj: &Object, status: &SandboxStatus) -> Vec<String> {
    let spec: SandboxSpec = serde_json::from_value(obj.spec.clone()).unwrap_or_default();
    let services: HashSet<&str> = spec
        .services
        .iter()
        .map(|s| s.name.as_str())
        .chain(status.services.iter().map(|s| s.name.as_str()))
        .collect();
    let ns = obj.metadata.namespace.as_deref().unwrap_or("default");
    let mut bases = vec![sandbox_base(&obj.metadata)];
    if let Some(claim) = &status.claimed_from {
        bases.push(pool_base(ns, &claim.template, &claim.slot));
    }
    let mut names: Vec<String> = bases
        .iter()
        .flat_map(|base| services.iter().map(move |s| child_name(base, s)))
        .chain(status.services.iter().filter_map(|s| s.container.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Removes every Sandbox container, network and volume of this instance that belongs
/// to no existing Sandbox and to no live warm-pool slot. Returns how many objects.
pub async fn remove_orphans(
    ctx: &Context,
    docker: &DockerRuntime,
) -> Result<usize, ControllerError> {
    let instance = ctx.store.instance_id();
    let selector = [
        (keys::LABEL_INSTANCE, instance),
        (keys::LABEL_KIND, Kind::Sandbox.as_str()),
    ];
    // Docker first, the store and the registry after: anything made after the Docker
    // lists is not looked at, and what it belongs to already exists when they are read.
    let containers = docker.list(&selector).await?;
    let networks = docker.list_networks(&selector).await?;
    let volumes = docker.list_volumes(&selector).await?;
    let (sandboxes, _) = ctx.store.list(Kind::Sandbox, None).await?;
    let (templates, _) = ctx.store.list(Kind::SandboxTemplate, None).await?;

    // The pools of templates that are gone.
    let live_templates: HashSet<ObjectKey> = templates.iter().map(Object::key).collect();
    let mut gone: Vec<ObjectKey> = ctx
        .pools
        .slots()
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| !live_templates.contains(t))
        .collect();
    gone.dedup();
    for t in gone {
        template::drain(ctx, docker, &t).await;
    }

    let mut sandbox_bases = HashSet::new();
    let mut slot_bases = HashSet::new();
    for sb in &sandboxes {
        sandbox_bases.insert(sandbox_base(&sb.metadata));
        let status: SandboxStatus = serde_json::from_value(sb.status.clone()).unwrap_or_default();
        if let Some(claim) = status.claimed_from {
            let ns = sb.metadata.namespace.clone().unwrap_or_default();
            slot_bases.insert(pool_base(&ns, &claim.template, &claim.slot));
        }
    }
    for ((ns, t, slot), _) in ctx.pools.claimed_slots() {
        slot_bases.insert(pool_base(&ns, &t, &slot));
    }
    for (t, slot) in ctx.pools.slots() {
        slot_bases.insert(pool_base(&t.namespace, &t.name, &slot));
    }
    let storage_bases: HashSet<String> = sandbox_bases.union(&slot_bases).cloned().collect();

    let mut removed = 0;
    for c in containers {
        let live = if c.name.starts_with(POOL_PREFIX) {
            under(&c.name, &slot_bases)
        } else {
            under(&c.name, &sandbox_bases)
        };
        if !live {
            info!(container = %c.name, "removing a sandbox container that nothing owns");
            docker.remove(&c.id).await?;
            removed += 1;
        }
    }
    for network in networks {
        if !storage_bases.contains(&network) {
            info!(%network, "removing a sandbox network that nothing owns");
            if let Err(e) = docker.remove_network(&network).await {
                warn!(%network, error = %e, "cannot remove a network");
            } else {
                removed += 1;
            }
        }
    }
    for volume in volumes {
        if !under(&volume, &storage_bases) {
            info!(%volume, "removing a sandbox volume that nothing owns");
            if let Err(e) = docker.remove_volume(&volume).await {
                warn!(%volume, error = %e, "cannot remove a volume");
            } else {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Whether `name` is one of `bases`, or a child of one (`<base>-...`).
fn under(name: &str, bases: &HashSet<String>) -> bool {
    bases.contains(name)
        || bases.iter().any(|b| {
            name.strip_prefix(b.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
        })
}
