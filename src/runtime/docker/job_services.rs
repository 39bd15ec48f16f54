//! The services of a Job attempt on Docker: a private network per attempt, a container
//! per service on it (reachable under the service's name), readiness checks before the
//! steps start, and their removal with the attempt.
//!
//! The network is named like the attempt's container (Docker keeps networks and
//! containers apart); it is `internal` (no route out) for `network: none`, so the steps
//! reach their services and nothing else. Service containers are named
//! `<attempt>-<service>` and carry the attempt's labels plus [`SERVICE_LABEL`], which
//! keeps them out of the attempts the Job controller sees; they are hardened like the
//! steps' container and count against the server's container slots.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bollard::query_parameters::ListNetworksOptionsBuilder;
use chrono::Utc;

use super::gate::Lane;
use super::{DockerRuntime, label_filters};
use crate::resources::job::{JobNetwork, JobService, ReadinessCheck};
use crate::resources::keys;
use crate::runtime::docker::attempt::env_pairs;
use crate::runtime::names::{PIDS_LIMIT, SERVICE_LABEL};
use crate::runtime::sandbox::{ExecRequest, Probe, ServiceContainerSpec, ServiceNetwork};
use crate::runtime::{AttemptRequest, ContainerInfo, ContainerState, Result, RuntimeError};

/// The container of one service of an attempt.
pub fn service_container_name(attempt: &str, service: &str) -> String {
    format!("{attempt}-{service}")
}

/// The service's container, built from the Job's service and the attempt's labels. Pure.
pub fn service_spec(
    service: &JobService,
    attempt_labels: &BTreeMap<String, String>,
    attempt: &str,
    default_memory_bytes: u64,
) -> ServiceContainerSpec {
    let mut labels = attempt_labels.clone();
    labels.insert(SERVICE_LABEL.to_string(), service.name.clone());
    ServiceContainerSpec {
        name: service_container_name(attempt, &service.name),
        image: service.image.clone(),
        command: service.command.clone(),
        env: env_pairs(&service.env),
        working_dir: None,
        labels,
        cpu_millis: None,
        memory_bytes: Some(default_memory_bytes),
        network: ServiceNetwork::Private {
            network: attempt.to_string(),
            aliases: vec![service.name.clone()],
        },
        // Reached on the attempt's network; nothing is published on the host.
        ports: Vec::new(),
        volumes: Vec::new(),
        pids_limit: PIDS_LIMIT,
    }
}

impl DockerRuntime {
    /// Makes the attempt's network and starts its services (adopting what exists), then
    /// waits until every one is ready. A service that is not ready in time, or that
    /// exits first, is [`RuntimeError::ServiceNotReady`], and what was made is removed.
    pub(in crate::runtime) async fn start_services(
        &self,
        request: &AttemptRequest<'_>,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let internal = request.spec.network == JobNetwork::None;
        self.ensure_network_with(request.name, labels, internal)
            .await?;
        let mut started = Vec::new();
        for service in &request.spec.services {
            let spec = service_spec(service, labels, request.name, request.default_memory_bytes);
            started.push((service, self.create_service(&spec).await?));
        }
        for (service, container) in &started {
            if let Err(e) = self.wait_ready(service, container, request).await {
                if let Err(cleanup) = self.remove_services_of(labels).await {
                    tracing::warn!(attempt = %request.name, error = %cleanup, "cannot remove the services of an attempt that did not start");
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Checks the service every period until it passes, at most `failureThreshold`
    /// times; gives up early when its container exits or the run's deadline passes.
    async fn wait_ready(
        &self,
        service: &JobService,
        container: &ContainerInfo,
        request: &AttemptRequest<'_>,
    ) -> Result<()> {
        let check = service.check();
        let (period, timeout, threshold) = service.timing();
        let not_ready = |reason: String| RuntimeError::ServiceNotReady {
            service: service.name.clone(),
            reason,
        };
        let mut last = String::from("it was never checked");
        for _ in 0..threshold.max(1) {
            let info = self.inspect(&container.id).await?;
            match info.map(|i| i.state) {
                Some(ContainerState::Running) => {}
                Some(ContainerState::Exited { code }) => {
                    return Err(not_ready(format!(
                        "its container exited with {code} before it was ready{}",
                        self.last_lines(&container.id).await
                    )));
                }
                // Still starting (or restarting): the check says how it goes.
                Some(_) => {}
                None => return Err(not_ready("its container is gone".to_string())),
            }
            match self.check_once(&container.id, &check, timeout).await? {
                None => return Ok(()),
                Some(why) => last = why,
            }
            if request.deadline.is_some_and(|d| Utc::now() >= d) {
                return Err(not_ready(format!(
                    "the run's timeoutSeconds ran out first; last check: {last}"
                )));
            }
            tokio::time::sleep(Duration::from_secs(period)).await;
        }
        Err(not_ready(format!(
            "{threshold} checks {period} s apart failed; the last: {last}"
        )))
    }

    /// One readiness check: None when it passes, else why not.
    async fn check_once(
        &self,
        id: &str,
        check: &ReadinessCheck,
        timeout: u64,
    ) -> Result<Option<String>> {
        let timeout = Duration::from_secs(timeout);
        Ok(match check {
            ReadinessCheck::Running => None,
            ReadinessCheck::TcpPort(port) => {
                let probe = Probe::Tcp { port: *port };
                (!self.probe(id, &probe, timeout).await?)
                    .then(|| format!("nothing listens on port {port}"))
            }
            ReadinessCheck::Exec(command) => {
                let request = ExecRequest {
                    command: command.clone(),
                    timeout: Some(timeout),
                    ..Default::default()
                };
                match self.exec(id, &request).await {
                    Ok(out) if out.exit_code == 0 && !out.timed_out => None,
                    Ok(out) if out.timed_out => Some(format!(
                        "{command:?} took longer than its {} s",
                        timeout.as_secs()
                    )),
                    Ok(out) => {
                        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
                        let said = if said.is_empty() {
                            String::from_utf8_lossy(&out.stdout).trim().to_string()
                        } else {
                            said
                        };
                        Some(format!(
                            "{command:?} exited with {}{}",
                            out.exit_code,
                            if said.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", tail_chars(&said, 300))
                            }
                        ))
                    }
                    Err(RuntimeError::ContainerNotRunning { .. }) => {
                        Some("its container is not running".to_string())
                    }
                    Err(e) => return Err(e),
                }
            }
        })
    }

    /// The last lines a service printed, for the message of one that exited.
    async fn last_lines(&self, id: &str) -> String {
        use futures::StreamExt;
        let lines: Vec<String> = self
            .logs(id, false)
            .filter_map(|line| async move { line.ok().map(|l| l.text) })
            .collect()
            .await;
        let start = lines.len().saturating_sub(3);
        if lines.is_empty() {
            String::new()
        } else {
            format!(
                "; it printed: {}",
                tail_chars(&lines[start..].join(" | "), 300)
            )
        }
    }

    /// Every service container of the attempt these labels name (its uid, run and
    /// attempt), running or not.
    pub(in crate::runtime) async fn services_of(
        &self,
        attempt_labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>> {
        let Some(selector) = attempt_selector(attempt_labels) else {
            return Ok(Vec::new());
        };
        let mut containers = self.list(&selector).await?;
        containers.retain(|c| c.labels.contains_key(SERVICE_LABEL));
        Ok(containers)
    }

    /// Removes the attempt's services, then its network; gone is fine.
    pub(in crate::runtime) async fn remove_services_of(
        &self,
        attempt_labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        for service in self.services_of(attempt_labels).await? {
            self.remove(&service.id).await?;
        }
        if let Some(selector) = attempt_selector(attempt_labels) {
            for network in self.list_networks(&selector).await? {
                self.remove_network(&network).await?;
            }
        }
        Ok(())
    }

    /// Removes the services and networks of Job attempts of this store whose Job is no
    /// longer `live`. Returns how many services went.
    pub(in crate::runtime) async fn remove_orphan_services(
        &self,
        instance: &str,
        live: &HashSet<String>,
    ) -> Result<usize> {
        let selector = [(keys::LABEL_KIND, "Job"), (keys::LABEL_INSTANCE, instance)];
        let mut removed = 0;
        for c in self.list(&selector).await? {
            if c.labels.contains_key(SERVICE_LABEL)
                && c.label(keys::LABEL_UID)
                    .is_some_and(|uid| !live.contains(uid))
            {
                self.remove(&c.id).await?;
                removed += 1;
            }
        }
        let filters = label_filters(&selector);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .call(
                "list_networks",
                Lane::Read,
                self.docker.list_networks(Some(options)),
            )
            .await??;
        for network in networks {
            let uid = network
                .labels
                .as_ref()
                .and_then(|labels| labels.get(keys::LABEL_UID));
            if let (Some(name), Some(uid)) = (&network.name, uid)
                && !live.contains(uid)
            {
                self.remove_network(name).await?;
            }
        }
        Ok(removed)
    }

    /// What became of the attempt's services while the steps ran: one note for each
    /// that is no longer running.
    pub(in crate::runtime) async fn service_notes(&self, id: &str) -> Result<Vec<String>> {
        let Some(attempt) = self.inspect(id).await? else {
            return Ok(Vec::new());
        };
        let mut notes = Vec::new();
        for service in self.services_of(&attempt.labels).await? {
            let name = service.label(SERVICE_LABEL).unwrap_or_default();
            match &service.state {
                ContainerState::Running => {}
                ContainerState::Exited { code } => notes.push(format!(
                    "service \"{name}\" exited with {code} while the steps ran"
                )),
                other => notes.push(format!(
                    "service \"{name}\" was {other:?} when the steps ended"
                )),
            }
        }
        Ok(notes)
    }
}

/// The labels that pick out one attempt's services and network: its uid, run and
/// attempt (None for a container that is not an attempt's).
fn attempt_selector(labels: &BTreeMap<String, String>) -> Option<[(&'static str, &str); 3]> {
    Some([
        (keys::LABEL_UID, labels.get(keys::LABEL_UID)?.as_str()),
        (keys::LABEL_RUN, labels.get(keys::LABEL_RUN)?.as_str()),
        (
            keys::LABEL_ATTEMPT,
            labels.get(keys::LABEL_ATTEMPT)?.as_str(),
        ),
    ])
}

/// At most the last `max` characters of `text`, `…` where cut.
fn tail_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - max).collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::common::EnvVar;

    #[test]
    fn a_service_is_named_after_its_attempt_labelled_as_a_service_and_aliased_by_name() {
        let labels = BTreeMap::from([
            (keys::LABEL_UID.to_string(), "u1".to_string()),
            (keys::LABEL_RUN.to_string(), "1".to_string()),
            (keys::LABEL_ATTEMPT.to_string(), "2".to_string()),
        ]);
        let service = JobService {
            name: "db".into(),
            image: "postgres:16".into(),
            env: vec![EnvVar {
                name: "A".into(),
                value: "1".into(),
                value_from: None,
            }],
            ports: vec![5432],
            ..Default::default()
        };
        let spec = service_spec(&service, &labels, "orcaops-default-j-u1-r1a2", 1 << 20);
        assert_eq!(spec.name, "orcaops-default-j-u1-r1a2-db");
        assert_eq!(spec.labels[SERVICE_LABEL], "db");
        assert_eq!(spec.labels[keys::LABEL_UID], "u1");
        assert_eq!(
            spec.network,
            ServiceNetwork::Private {
                network: "orcaops-default-j-u1-r1a2".into(),
                aliases: vec!["db".into()]
            }
        );
        assert!(spec.ports.is_empty(), "nothing is published on the host");
        assert_eq!(spec.memory_bytes, Some(1 << 20));
        assert_eq!(spec.pids_limit, PIDS_LIMIT);
        assert_eq!(spec.env, [("A".to_string(), "1".to_string())]);
        assert_eq!(
            attempt_selector(&labels).unwrap(),
            [
                (keys::LABEL_UID, "u1"),
                (keys::LABEL_RUN, "1"),
                (keys::LABEL_ATTEMPT, "2")
            ]
        );
        assert_eq!(attempt_selector(&BTreeMap::new()), None);
    }

    #[test]
    fn tail_chars_keeps_the_end() {
        assert_eq!(tail_chars("abc", 5), "abc");
        assert_eq!(tail_chars("abcdef", 3), "…def");
    }
}
