//! Each service's container: create it, adopt it, recreate it when its service changed,
//! start it, and restart it with backoff when it dies.

use std::time::Duration;

use chrono::TimeDelta;

use super::{Decider, SandboxAction, ServiceObserved, endpoints};
use crate::resources::sandbox::{SandboxNetwork, SandboxPhase, SandboxService, ServiceStatus};
use crate::runtime::ContainerState;
use crate::runtime::sandbox::names::{
    LABEL_SPEC_HASH, child_name, probe_spec, sandbox_base, service_hash, storage_base,
};
use crate::store::EventType;

/// The first restart waits this long; each death in a row doubles it.
pub const FIRST_RESTART_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long before dying was not crash-looping: its death
/// counts as the first in a row again, and after this long up the count resets.
pub const STABLE_AFTER: TimeDelta = TimeDelta::seconds(60);
/// After this many deaths in a row the sandbox is Failed (restarts go on).
pub const FAILED_AFTER: u32 = 5;

/// The wait before restarting after the `nth` death in a row (1-based).
pub fn restart_backoff(nth: u32) -> Duration {
    let doublings = nth.saturating_sub(1).min(16);
    FIRST_RESTART_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_RESTART_BACKOFF)
}

fn secs_text(d: Duration) -> String {
    format!("{}s", d.as_secs_f64().ceil() as u64)
}

impl Decider<'_> {
    pub(super) fn reconcile_services(&mut self) {
        let base = sandbox_base(&self.obs.meta);
        self.status.network_name = (self.obs.effective.network == SandboxNetwork::Private)
            .then(|| storage_base(&self.obs.meta, self.status.claimed_from.as_ref()));
        let mut statuses = Vec::new();
        let mut to_create = Vec::new();
        for service in &self.obs.effective.services {
            let observed = self
                .obs
                .services
                .get(&service.name)
                .cloned()
                .unwrap_or_default();
            let previous = self
                .status
                .services
                .iter()
                .find(|s| s.name == service.name)
                .cloned()
                .unwrap_or_else(|| ServiceStatus {
                    name: service.name.clone(),
                    ..Default::default()
                });
            let own_name = child_name(&base, &service.name);
            let (status, create) = self.service(service, &observed, previous, &own_name);
            if create {
                to_create.push(service.name.clone());
            }
            statuses.push(status);
        }
        // Services no longer declared: remove their containers (volumes stay).
        for (name, observed) in &self.obs.services {
            if self.obs.effective.services.iter().any(|s| &s.name == name) {
                continue;
            }
            if let Some(c) = &observed.container {
                self.actions.push(SandboxAction::Remove {
                    service: name.clone(),
                    container_id: c.id.clone(),
                });
            }
        }
        if !to_create.is_empty() {
            self.actions.push(SandboxAction::Create {
                services: to_create,
            });
        }
        self.status.services = statuses;
    }

    /// One service: its new status, and whether its container must be created.
    fn service(
        &mut self,
        service: &SandboxService,
        observed: &ServiceObserved,
        mut status: ServiceStatus,
        own_name: &str,
    ) -> (ServiceStatus, bool) {
        let network = self.obs.effective.network;
        status.container = Some(own_name.to_string());
        status.message = None;
        if let Some(restarts) = observed.restarts {
            // The runtime restarts the container itself: its count is the service's.
            if restarts > status.restarts {
                status.last_restart_time = Some(self.obs.now);
                self.event(
                    EventType::Normal,
                    "ServiceRestarted",
                    format!(
                        "service {} was restarted by the runtime (restart {restarts})",
                        service.name
                    ),
                );
            }
            status.restarts = restarts;
        }
        let Some(container) = &observed.container else {
            status.ready = false;
            status.endpoints.clear();
            if let Some(error) = &observed.create_error {
                status.state = Some("not created".into());
                status.message = Some(error.clone());
                // The user has to fix the spec or the image; look again now and then.
                self.requeue_in(Duration::from_secs(30));
                return (status, false);
            }
            if self.was_running()
                && self
                    .obs
                    .status
                    .services
                    .iter()
                    .any(|s| s.name == service.name && s.state.as_deref() == Some("running"))
            {
                self.event(
                    EventType::Warning,
                    "ServiceRecreated",
                    format!(
                        "the container of service {} vanished; making it again (volumes kept)",
                        service.name
                    ),
                );
            }
            status.state = Some("creating".into());
            return (status, true);
        };
        if container.label(LABEL_SPEC_HASH) != Some(service_hash(service, network).as_str()) {
            self.actions.push(SandboxAction::Remove {
                service: service.name.clone(),
                container_id: container.id.clone(),
            });
            self.event(
                EventType::Normal,
                "ServiceUpdated",
                format!(
                    "service {} changed; making its container again (volumes kept)",
                    service.name
                ),
            );
            status.ready = false;
            status.endpoints.clear();
            status.state = Some("updating".into());
            status.next_restart_time = None;
            status.consecutive_failures = 0;
            return (status, true);
        }
        if observed.pool_named {
            self.actions.push(SandboxAction::Rename {
                container_id: container.id.clone(),
                to: own_name.to_string(),
            });
        }
        match &container.state {
            ContainerState::Running => {
                status.state = Some("running".into());
                status.next_restart_time = None;
                status.endpoints = endpoints(&self.obs.effective, &service.name, &observed.ports);
                status.ready = match probe_spec(service.health_check.as_ref()) {
                    None => true,
                    Some(_) => match observed.probe_ready {
                        Some(verdict) => verdict,
                        // No verdict yet (a controller that just started): what was known.
                        None => self
                            .obs
                            .status
                            .services
                            .iter()
                            .any(|s| s.name == service.name && s.ready),
                    },
                };
                if !status.ready {
                    status.message = Some("health check not passing yet".into());
                }
                if status.consecutive_failures > 0 {
                    match container.started_at {
                        Some(started) if self.obs.now - started >= STABLE_AFTER => {
                            status.consecutive_failures = 0;
                        }
                        Some(started) => self.requeue_at(started + STABLE_AFTER),
                        None => {}
                    }
                }
            }
            ContainerState::Created => {
                self.start(service, container.id.clone(), &mut status, false);
            }
            // A pod that cannot pull its image: the kubelet goes on trying; say why.
            ContainerState::CannotStart { reason } => {
                status.ready = false;
                status.state = Some("waiting".into());
                status.message = Some(reason.clone());
                self.requeue_in(Duration::from_secs(5));
                return (status, false);
            }
            ContainerState::Exited { .. } | ContainerState::Other(_) => {
                let code = match container.state {
                    ContainerState::Exited { code } => Some(code),
                    _ => None,
                };
                if let ContainerState::Other(state) = &container.state
                    && state == "paused"
                {
                    // Nothing of ours pauses a service: someone did, outside orcaops.
                    // Its processes are frozen, so exec and probes hang or fail; unpause.
                    self.start(service, container.id.clone(), &mut status, false);
                    status.state = Some("paused".into());
                    status.message = Some(
                        "its container was paused outside orcaops; the controller unpauses it"
                            .into(),
                    );
                    self.event(
                        EventType::Warning,
                        "ServicePaused",
                        format!(
                            "the container of service {} was paused outside orcaops; unpausing it",
                            service.name
                        ),
                    );
                    return (status, false);
                }
                if let ContainerState::Other(state) = &container.state
                    && state != "dead"
                {
                    // Paused, restarting, being removed: not ready; look again soon.
                    status.ready = false;
                    status.state = Some(state.clone());
                    self.requeue_in(Duration::from_secs(1));
                    return (status, false);
                }
                status.ready = false;
                status.endpoints.clear();
                status.state = Some(match code {
                    Some(code) => format!("exited (code {code})"),
                    None => "dead".into(),
                });
                if self.was_running() {
                    self.died(service, container, &mut status);
                } else {
                    // Stopped by us (stop, expiry): start it again, no restart counted.
                    self.start(service, container.id.clone(), &mut status, false);
                }
            }
        }
        (status, false)
    }

    /// Whether the sandbox was meant to be running before this decision, so an exited
    /// container died rather than being stopped.
    fn was_running(&self) -> bool {
        matches!(
            self.obs.status.phase,
            Some(SandboxPhase::Starting | SandboxPhase::Ready | SandboxPhase::Failed)
        )
    }

    fn start(
        &mut self,
        service: &SandboxService,
        container_id: String,
        status: &mut ServiceStatus,
        restart: bool,
    ) {
        self.actions.push(SandboxAction::Start {
            service: service.name.clone(),
            container_id,
        });
        status.ready = false;
        status.state = Some("starting".into());
        status.next_restart_time = None;
        if restart {
            status.restarts += 1;
            status.last_restart_time = Some(self.obs.now);
            self.event(
                EventType::Normal,
                "ServiceRestarted",
                format!(
                    "restarted service {} (restart {})",
                    service.name, status.restarts
                ),
            );
        }
    }

    /// A container died while the sandbox should run: schedule its restart with
    /// backoff, or restart it when the backoff is over.
    fn died(
        &mut self,
        service: &SandboxService,
        container: &crate::runtime::ContainerInfo,
        status: &mut ServiceStatus,
    ) {
        let now = self.obs.now;
        match status.next_restart_time {
            None => {
                let quick = match (container.started_at, container.finished_at) {
                    (Some(started), Some(finished)) => finished - started < STABLE_AFTER,
                    _ => true,
                };
                status.consecutive_failures = if quick {
                    status.consecutive_failures + 1
                } else {
                    1
                };
                let wait = restart_backoff(status.consecutive_failures);
                let at = now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
                status.next_restart_time = Some(at);
                status.message = Some(format!("restarting in {}", secs_text(wait)));
                self.event(
                    EventType::Warning,
                    "ServiceDied",
                    format!(
                        "service {} {}; restarting in {}",
                        service.name,
                        status.state.as_deref().unwrap_or("died"),
                        secs_text(wait)
                    ),
                );
                self.requeue_at(at);
            }
            Some(at) if now >= at => {
                self.start(service, container.id.clone(), status, true);
            }
            Some(at) => {
                let wait = (at - now).to_std().unwrap_or_default();
                status.message = Some(format!("restarting in {}", secs_text(wait)));
                self.requeue_at(at);
            }
        }
    }
}
