//! Making service containers, with their network and volumes: for a sandbox's cold
//! start, for a service made again, and for a warm-pool slot. Every call is idempotent
//! (an existing network, volume or container of the same name is adopted).

use std::collections::BTreeMap;

use futures::future::join_all;

use crate::resources::common::EnvVar;
use crate::resources::sandbox::{SandboxNetwork, SandboxService};
use crate::runtime::docker::attempt::env_pairs;
use crate::runtime::sandbox::PublishedPort;
use crate::runtime::sandbox::names::{
    ServicePlacement, child_name, service_container, volume_names,
};
use crate::runtime::{ContainerInfo, DockerRuntime, RuntimeError};

/// Where the containers go and what they are labelled with.
pub struct Placement<'a> {
    /// Container names are `<container_base>-<service>`.
    pub container_base: &'a str,
    /// The network (when private) is `<storage_base>`, volumes `<storage_base>-<volume>`.
    pub storage_base: &'a str,
    pub network: SandboxNetwork,
    /// The owner's labels, for the containers, the network and the volumes.
    pub labels: &'a BTreeMap<String, String>,
}

/// A made (or adopted) container, running, with where its ports are published.
pub type Made = (ContainerInfo, Vec<PublishedPort>);

/// Makes the network and volumes, then each service's container (all at once).
/// The outer error is about the network or a volume; each service has its own result.
/// `resolved_env` is, by service name, the env with its secrets read: it goes to the
/// container only, while its labels (the spec hash) stay those of the declared service,
/// so that no value is hashed into a label and the service is not seen as changed.
pub async fn make_services(
    runtime: &DockerRuntime,
    services: &[&SandboxService],
    resolved_env: &BTreeMap<String, Vec<EnvVar>>,
    placement: &Placement<'_>,
) -> Result<Vec<(String, Result<Made, RuntimeError>)>, RuntimeError> {
    let private = placement.network == SandboxNetwork::Private;
    if private {
        runtime
            .ensure_network(placement.storage_base, placement.labels)
            .await?;
    }
    let owned: Vec<SandboxService> = services.iter().map(|s| (*s).clone()).collect();
    for volume in volume_names(&owned, placement.storage_base) {
        runtime.ensure_volume(&volume, placement.labels).await?;
    }
    let results = join_all(services.iter().map(|service| async move {
        let result = async {
            runtime.ensure_image(&service.image).await?;
            let mut spec = service_container(
                service,
                placement.network,
                ServicePlacement {
                    container_name: child_name(placement.container_base, &service.name),
                    network_name: private.then_some(placement.storage_base),
                    storage_base: placement.storage_base,
                    labels: placement.labels.clone(),
                },
            );
            if let Some(env) = resolved_env.get(&service.name) {
                spec.env = env_pairs(env);
            }
            let info = runtime.create_service(&spec).await?;
            let ports = if service.ports.is_empty() {
                Vec::new()
            } else {
                runtime.published_ports(&info.id).await?
            };
            Ok((info, ports))
        }
        .await;
        (service.name.clone(), result)
    }))
    .await;
    Ok(results)
}
