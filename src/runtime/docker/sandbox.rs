//! Sandbox primitives on Docker. See [`crate::runtime::sandbox`].
//!
//! This module holds the service containers, their networks and volumes; exec,
//! files and probes live in the submodules. Like the rest of the runtime, every
//! call is idempotent where the controller needs it: ensuring what exists adopts
//! it, removing what is gone succeeds.

mod exec;
mod files;
mod io;
mod logs;
mod probe;
mod procfs;

use std::collections::{BTreeMap, HashMap};

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, Mount, MountType, Network, NetworkCreateRequest,
    NetworkingConfig, PortBinding, PortMap, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveVolumeOptionsBuilder, RenameContainerOptionsBuilder,
};

use super::gate::Lane;
use super::{DockerRuntime, docker_message, hardened_host_config, label_filters, owner_of, status};
use crate::runtime::sandbox::{PublishedPort, ServiceContainerSpec, ServiceNetwork};
use crate::runtime::{ContainerInfo, ContainerState, Result, RuntimeError};

/// Where published ports listen on the host.
const PUBLISH_HOST_IP: &str = "127.0.0.1";

impl DockerRuntime {
    /// Creates a bridge network that is internal (no route outside: services reach
    /// each other by alias and nothing else), unless one of that name exists.
    pub async fn ensure_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.ensure_network_with(name, labels, true).await
    }

    /// [`DockerRuntime::ensure_network`], internal or not (a Job with `network: bridge`
    /// reaches out through its network).
    pub async fn ensure_network_with(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        internal: bool,
    ) -> Result<()> {
        match self
            .call(
                "inspect_network",
                Lane::Read,
                self.docker.inspect_network(name, None),
            )
            .await?
        {
            // Inspect also matches an id prefix: only the same name counts.
            Ok(network) if network.name.as_deref() == Some(name) => return Ok(()),
            Ok(_) => {}
            Err(e) if status(&e) == Some(404) => {}
            // "network ... is ambiguous": it exists twice; keep one.
            Err(e) if status(&e) == Some(400) && docker_message(&e).contains("ambiguous") => {
                return self.remove_network_twins(name).await;
            }
            Err(e) => return Err(e.into()),
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        match self
            .call(
                "create_network",
                Lane::Gated,
                self.docker.create_network(request),
            )
            .await?
        {
            Ok(_) => {}
            Err(e) if status(&e) == Some(409) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        // Docker before API 1.44 does not refuse a second network of the same name
        // (it may warn, or not even that when two creates race).
        self.remove_network_twins(name).await
    }

    /// Keeps the first-created network of this name and removes the others. Every
    /// caller that raced keeps the same one, and it is the only one an earlier
    /// caller can already be using.
    async fn remove_network_twins(&self, name: &str) -> Result<()> {
        let mut twins = self.networks_named(name).await?;
        if twins.len() < 2 {
            return Ok(());
        }
        twins.sort_by_key(|network| {
            let created = network
                .created
                .as_deref()
                .and_then(|created| chrono::DateTime::parse_from_rfc3339(created).ok());
            (created.is_none(), created, network.id.clone())
        });
        for twin in twins.into_iter().skip(1) {
            let Some(id) = twin.id else { continue };
            match self
                .call(
                    "remove_network",
                    Lane::Gated,
                    self.docker.remove_network(&id),
                )
                .await?
            {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The networks of exactly this name (Docker's name filter matches substrings).
    async fn networks_named(&self, name: &str) -> Result<Vec<Network>> {
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let mut networks = self
            .call(
                "list_networks",
                Lane::Read,
                self.docker.list_networks(Some(options)),
            )
            .await??;
        networks.retain(|network| network.name.as_deref() == Some(name));
        Ok(networks)
    }

    /// Removes a network (every network of that name); a missing one is not an
    /// error. Containers still attached to it make this fail.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        for network in self.networks_named(name).await? {
            let Some(id) = network.id else { continue };
            match self
                .call(
                    "remove_network",
                    Lane::Gated,
                    self.docker.remove_network(&id),
                )
                .await?
            {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Names of the networks carrying all these labels (a name twice if Docker
    /// holds two networks of that name).
    pub async fn list_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        let filters = label_filters(labels);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let mut names: Vec<String> = self
            .call(
                "list_networks",
                Lane::Read,
                self.docker.list_networks(Some(options)),
            )
            .await??
            .into_iter()
            .filter_map(|network| network.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Creates a named volume (local driver) unless it exists.
    pub async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        // Docker answers an existing name with that volume: creating is idempotent.
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: Some("local".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.call(
            "create_volume",
            Lane::Gated,
            self.docker.create_volume(request),
        )
        .await??;
        Ok(())
    }

    /// Removes a volume; a missing one is not an error, one in use by a container is.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self
            .call(
                "remove_volume",
                Lane::Gated,
                self.docker.remove_volume(name, Some(options)),
            )
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Names of the volumes carrying all these labels.
    pub async fn list_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<String>> {
        let filters = label_filters(labels);
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let mut names: Vec<String> = self
            .call(
                "list_volumes",
                Lane::Read,
                self.docker.list_volumes(Some(options)),
            )
            .await??
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|volume| volume.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Creates and starts a service container (the image is pulled when missing);
    /// an existing container of that name is adopted, and started if it is not
    /// running. The network and volumes must exist.
    ///
    /// Above the server's container limit it is refused with
    /// [`RuntimeError::ContainerLimit`](crate::runtime::RuntimeError::ContainerLimit).
    pub async fn create_service(&self, spec: &ServiceContainerSpec) -> Result<ContainerInfo> {
        let slot = self.gate.reserve(owner_of(&spec.name, &spec.labels))?;
        let id = match self.create_service_container(spec).await? {
            Ok(id) => id,
            Err(e) if status(&e) == Some(404) && docker_message(&e).contains("No such image") => {
                self.ensure_image(&spec.image).await?;
                self.create_service_container(spec).await?.map_err(|e| {
                    if status(&e) == Some(404) && docker_message(&e).contains("No such image") {
                        RuntimeError::ImageUnavailable {
                            image: spec.image.clone(),
                            reason: docker_message(&e),
                        }
                    } else {
                        e.into()
                    }
                })?
            }
            Err(e) if status(&e) == Some(409) => {
                let existing = self.inspect_required(&spec.name).await?;
                if existing.state != ContainerState::Running {
                    self.start_raw(&existing.id).await?;
                }
                slot.fill(&existing.id);
                return self.inspect_required(&existing.id).await;
            }
            Err(e) => return Err(e.into()),
        };
        self.start_raw(&id).await?;
        slot.fill(&id);
        // Just started: what we know is enough (no inspect on the critical path).
        Ok(ContainerInfo {
            id,
            name: spec.name.clone(),
            labels: spec.labels.clone(),
            state: ContainerState::Running,
            started_at: Some(chrono::Utc::now()),
            finished_at: None,
            image_id: None,
        })
    }

    /// Docker's answer to the create (the outer error: no answer).
    async fn create_service_container(
        &self,
        spec: &ServiceContainerSpec,
    ) -> Result<Result<String, BollardError>> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self
            .call(
                "create_container",
                Lane::Gated,
                self.docker
                    .create_container(Some(options), service_body(spec)),
            )
            .await?;
        Ok(created.map(|created| created.id))
    }

    /// Starts an existing container; one already running is fine. Counted against the
    /// server's container limit like a new one
    /// ([`RuntimeError::ContainerLimit`](crate::runtime::RuntimeError::ContainerLimit)).
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let Some(info) = self.inspect(id).await? else {
            return Err(RuntimeError::ContainerNotFound {
                container: id.to_string(),
            });
        };
        if info.state == ContainerState::Running {
            return Ok(());
        }
        if info.state == ContainerState::Other("paused".into()) {
            // Paused outside orcaops: its processes are frozen, not gone; it keeps its slot.
            match self
                .call(
                    "unpause_container",
                    Lane::Gated,
                    self.docker.unpause_container(&info.id),
                )
                .await?
            {
                Ok(()) => {}
                // Unpaused in between.
                Err(e) if status(&e) == Some(409) => {}
                Err(e) => return Err(e.into()),
            }
            self.gate.adopt(&info.id);
            return Ok(());
        }
        let slot = self.gate.reserve(owner_of(&info.name, &info.labels))?;
        self.start_raw(&info.id).await?;
        slot.fill(&info.id);
        Ok(())
    }

    /// Starts an existing container whose slot the caller holds.
    async fn start_raw(&self, id: &str) -> Result<()> {
        match self
            .call(
                "start_container",
                Lane::Gated,
                self.docker.start_container(id, None),
            )
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(304) => Ok(()),
            Err(e) if status(&e) == Some(404) => Err(RuntimeError::ContainerNotFound {
                container: id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Renames a container (the controller marks a claimed warm-pool container this
    /// way). Renaming to its current name is fine.
    pub async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let options = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        match self
            .call(
                "rename_container",
                Lane::Gated,
                self.docker.rename_container(id, options),
            )
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Err(RuntimeError::ContainerNotFound {
                container: id.to_string(),
            }),
            // Docker refuses a rename to the current name; that is already done.
            Err(e) => match self.inspect(id).await? {
                Some(info) if info.name == new_name => Ok(()),
                _ => Err(e.into()),
            },
        }
    }

    /// Where the container's ports are published on the host (empty while it is
    /// stopped: Docker picks the host ports again at each start).
    pub async fn published_ports(&self, id: &str) -> Result<Vec<PublishedPort>> {
        let inspect = self
            .call(
                "inspect_container",
                Lane::Read,
                self.docker.inspect_container(id, None),
            )
            .await?
            .map_err(|e| exec::exec_error(e, id))?;
        let ports = inspect
            .network_settings
            .and_then(|settings| settings.ports)
            .unwrap_or_default();
        Ok(published(&ports))
    }
}

/// The create request of a service container: the spec plus hardened defaults.
fn service_body(spec: &ServiceContainerSpec) -> ContainerCreateBody {
    let tcp = |port: &u16| format!("{port}/tcp");
    let (network_mode, networking_config) = match &spec.network {
        ServiceNetwork::None => ("none".to_string(), None),
        ServiceNetwork::Bridge => ("bridge".to_string(), None),
        ServiceNetwork::Private { network, aliases } => (
            network.clone(),
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.clone(),
                    EndpointSettings {
                        aliases: Some(aliases.clone()),
                        ..Default::default()
                    },
                )])),
            }),
        ),
    };
    let mut host_config = hardened_host_config(
        spec.cpu_millis,
        spec.memory_bytes,
        spec.pids_limit,
        &network_mode,
    );
    if !spec.ports.is_empty() {
        // No host port: Docker picks a free one at each start.
        let binding = PortBinding {
            host_ip: Some(PUBLISH_HOST_IP.into()),
            host_port: Some(String::new()),
        };
        host_config.port_bindings = Some(
            spec.ports
                .iter()
                .map(|port| (tcp(port), Some(vec![binding.clone()])))
                .collect(),
        );
    }
    if !spec.volumes.is_empty() {
        host_config.mounts = Some(
            spec.volumes
                .iter()
                .map(|(volume, path)| Mount {
                    typ: Some(MountType::VOLUME),
                    source: Some(volume.clone()),
                    target: Some(path.clone()),
                    ..Default::default()
                })
                .collect(),
        );
    }
    // An empty command keeps the image's entrypoint and command; otherwise an empty
    // (not absent) entrypoint clears the image's so that `command` is the whole line.
    let (entrypoint, cmd) = if spec.command.is_empty() {
        (None, None)
    } else {
        (Some(Vec::new()), Some(spec.command.clone()))
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint,
        cmd,
        env: Some(
            spec.env
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
        ),
        working_dir: spec.working_dir.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: (!spec.ports.is_empty()).then(|| spec.ports.iter().map(tcp).collect()),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

/// The TCP ports of an inspect's port map that are bound on the host.
fn published(ports: &PortMap) -> Vec<PublishedPort> {
    let mut published: Vec<PublishedPort> = ports
        .iter()
        .filter_map(|(key, bindings)| {
            let port = key.strip_suffix("/tcp")?.parse().ok()?;
            Some((port, bindings.as_deref()?))
        })
        .flat_map(|(container_port, bindings)| {
            bindings.iter().filter_map(move |binding| {
                Some(PublishedPort {
                    container_port,
                    host_ip: binding.host_ip.clone().unwrap_or_default(),
                    host_port: binding.host_port.as_deref()?.parse().ok()?,
                })
            })
        })
        .collect();
    published.sort_by(|a, b| {
        (a.container_port, &a.host_ip, a.host_port).cmp(&(
            b.container_port,
            &b.host_ip,
            b.host_port,
        ))
    });
    published
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceContainerSpec {
        ServiceContainerSpec {
            name: "orcaops-sb".into(),
            image: "busybox:latest".into(),
            command: Vec::new(),
            env: vec![("A".into(), "1".into())],
            working_dir: None,
            labels: BTreeMap::from([("orcaops.dev/kind".into(), "Sandbox".into())]),
            cpu_millis: Some(250),
            memory_bytes: None,
            network: ServiceNetwork::Private {
                network: "orcaops-net".into(),
                aliases: vec!["db".into()],
            },
            ports: vec![8080, 5432],
            volumes: vec![("orcaops-data".into(), "/data".into())],
            pids_limit: 256,
        }
    }

    #[test]
    fn a_service_keeps_the_image_command_unless_one_is_given() {
        let body = service_body(&spec());
        assert_eq!((body.entrypoint, body.cmd), (None, None));
        let mut with_command = spec();
        with_command.command = vec!["sleep".into(), "60".into()];
        let body = service_body(&with_command);
        assert_eq!(body.entrypoint, Some(vec![]));
        assert_eq!(body.cmd, Some(vec!["sleep".to_string(), "60".to_string()]));
    }

    #[test]
    fn a_service_is_hardened_published_on_loopback_and_aliased_on_its_network() {
        let body = service_body(&spec());
        let host = body.host_config.unwrap();
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".into()]));
        assert_eq!(host.pids_limit, Some(256));
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.network_mode.as_deref(), Some("orcaops-net"));
        let bindings = host.port_bindings.unwrap();
        assert_eq!(bindings.len(), 2);
        let binding = &bindings["8080/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some(""));
        let mut exposed = body.exposed_ports.unwrap();
        exposed.sort();
        assert_eq!(exposed, ["5432/tcp", "8080/tcp"]);
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(mount.typ, Some(MountType::VOLUME));
        assert_eq!(mount.source.as_deref(), Some("orcaops-data"));
        assert_eq!(mount.target.as_deref(), Some("/data"));
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints["orcaops-net"].aliases,
            Some(vec!["db".to_string()])
        );
    }

    #[test]
    fn none_and_bridge_networks_have_no_endpoint_settings() {
        for (network, mode) in [
            (ServiceNetwork::None, "none"),
            (ServiceNetwork::Bridge, "bridge"),
        ] {
            let mut spec = spec();
            spec.network = network;
            spec.ports.clear();
            let body = service_body(&spec);
            assert!(body.networking_config.is_none());
            assert!(body.exposed_ports.is_none());
            let host = body.host_config.unwrap();
            assert_eq!(host.network_mode.as_deref(), Some(mode));
            assert!(host.port_bindings.is_none());
        }
    }

    #[test]
    fn published_ports_are_read_from_the_port_map() {
        let ports: PortMap = HashMap::from([
            (
                "8080/tcp".to_string(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("49153".into()),
                }]),
            ),
            ("9090/tcp".to_string(), None),
            ("53/udp".to_string(), Some(vec![])),
        ]);
        assert_eq!(
            published(&ports),
            [PublishedPort {
                container_port: 8080,
                host_ip: "127.0.0.1".into(),
                host_port: 49153,
            }]
        );
    }
}
