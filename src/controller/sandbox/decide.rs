//! The pure decision of the Sandbox controller: from what is observed (the Sandbox,
//! its effective spec, its containers by service, the monitor's probe verdicts, its
//! activity, the time) to the actions to take, the new status, events, and when to
//! look again. No I/O happens here; most of the Sandbox behaviour is tested here.

mod expiry;
mod services;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::controller::event::Event;
use crate::controller::reconcile::{self, Fate};
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::sandbox::{
    EffectiveSandbox, Endpoint, PoolClaim, SandboxConditionType, SandboxPhase, SandboxState,
    SandboxStatus, ServiceStatus,
};
use crate::resources::{ObjectMeta, keys};
use crate::runtime::sandbox::PublishedPort;
use crate::runtime::{ContainerInfo, ContainerState};
use crate::store::EventType;

pub use expiry::{ACTIVITY_WRITE_SLACK, EXPIRING_AHEAD, ExpiryKind, deadline};
pub use services::{FAILED_AFTER, MAX_RESTART_BACKOFF, STABLE_AFTER, restart_backoff};

/// Everything the decision needs, read by the observe step.
#[derive(Clone, Debug)]
pub struct Observed {
    pub meta: ObjectMeta,
    /// `spec.state`: whether the sandbox should run.
    pub state: SandboxState,
    /// The spec with its template applied (without it when the template is missing).
    pub effective: EffectiveSandbox,
    /// The name of the template `templateRef` names, when it does not exist.
    pub template_missing: Option<String>,
    pub status: SandboxStatus,
    /// The phase as stored, which watchers have seen: phase events are about changes
    /// to it (when the reconcile decides again after acting, `status` is the first
    /// decision's, and must not announce a phase twice).
    pub shown_phase: Option<SandboxPhase>,
    /// What Docker holds for each service (of the effective spec, and of the stored
    /// status, so a service removed from the spec is found and removed).
    pub services: BTreeMap<String, ServiceObserved>,
    pub activity: Activity,
    pub now: DateTime<Utc>,
}

/// One service's container as observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceObserved {
    pub container: Option<ContainerInfo>,
    /// Found under its warm-pool name: a claim whose rename has not happened yet.
    pub pool_named: bool,
    /// Where its ports are published (running containers that declare ports).
    pub ports: Vec<PublishedPort>,
    /// The monitor's verdict on its health check: `None` while it has none.
    pub probe_ready: Option<bool>,
    /// Creating the container failed with the user's error (an image that cannot be
    /// pulled), or the runtime reports it failing for good: the message says which.
    pub create_error: Option<String>,
    /// How many times the runtime itself restarted the container (a pod's kubelet
    /// does; Docker leaves restarts to this controller and says `None`).
    pub restarts: Option<u32>,
}

/// How the sandbox is being used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Activity {
    /// The last exec or file transfer seen by this process.
    pub last: Option<DateTime<Utc>>,
    /// An exec or transfer is in progress.
    pub busy: bool,
    /// Processes started by an exec that still run, summed over the services. Counted
    /// only when an idle deadline is reached (see [`Decision::count_processes`]).
    pub background: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SandboxAction {
    /// Pull the images, make the network and volumes, then create and start these
    /// services' containers (an existing container of the same name is adopted).
    Create { services: Vec<String> },
    /// Start an existing, stopped container.
    Start {
        service: String,
        container_id: String,
    },
    /// Remove a container (its service changed or was removed); volumes are kept.
    Remove {
        service: String,
        container_id: String,
    },
    /// Give a claimed warm-pool container the sandbox's own name.
    Rename { container_id: String, to: String },
    /// Stop containers (SIGTERM, then SIGKILL); their files and the volumes are kept.
    Stop { container_ids: Vec<String> },
}

/// The Sandbox's decision. It writes its status first when it stops containers, and
/// its events first when it deletes the Sandbox (expiry with `onExpiry: Delete`, its
/// [`Fate::Delete`]; the cleanup follows).
pub type Decision = reconcile::Decision<SandboxAction, SandboxStatus, Hints>;

/// What only the Sandbox's own steps read of a decision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hints {
    /// The services should be running: their containers are watched and probed.
    pub watch: bool,
    /// An idle deadline passed and nothing in this process was using the sandbox: count
    /// the processes exec'd into it ([`Activity::background`]) and decide again.
    pub count_processes: bool,
}

/// Whether the decision goes on or is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Continue,
    Done,
}

pub(super) struct Decider<'a> {
    obs: &'a Observed,
    status: SandboxStatus,
    actions: Vec<SandboxAction>,
    events: Vec<Event>,
    requeue: Option<Duration>,
    status_first: bool,
    fate: Fate,
    watch: bool,
    count_processes: bool,
}

pub fn decide(obs: &Observed) -> Decision {
    let mut status = obs.status.clone();
    // Deciding means the runtime answered: the waits it caused are over (a reconcile
    // that meets one again records it again, see controller::waiting).
    status
        .conditions
        .retain(|c| !crate::controller::waiting::is_sandbox_wait(c));
    let mut d = Decider {
        obs,
        status,
        actions: Vec::new(),
        events: Vec::new(),
        requeue: None,
        status_first: false,
        fate: Fate::Keep,
        watch: false,
        count_processes: false,
    };
    d.decide();
    if d.count_processes {
        // Nothing is decided until the processes are counted.
        d.actions.clear();
        d.events.clear();
        d.status = obs.status.clone();
    }
    Decision {
        actions: d.actions,
        status: d.status,
        events: d.events,
        requeue_after: d.requeue,
        status_first: d.status_first,
        fate: d.fate,
        hints: Hints {
            watch: d.watch,
            count_processes: d.count_processes,
        },
    }
}

/// Whether a container in this state has processes to stop (a created, exited, dead or
/// departing one has none: stopping it again would never end).
fn needs_stop(state: &ContainerState) -> bool {
    match state {
        ContainerState::Running => true,
        ContainerState::Other(other) => {
            !matches!(other.as_str(), "dead" | "removing" | "created" | "exited")
        }
        ContainerState::Created
        | ContainerState::Exited { .. }
        | ContainerState::CannotStart { .. } => false,
    }
}

/// The time in `orcaops.dev/start`, if it holds one.
pub fn start_request(meta: &ObjectMeta) -> Option<DateTime<Utc>> {
    let value = meta.annotations.get(keys::START)?;
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Decider<'_> {
    fn decide(&mut self) {
        self.status.observed_generation = Some(self.obs.meta.generation);
        let phase = self.status.phase;
        if let Some(template) = self.obs.template_missing.clone()
            && !self.has_started()
        {
            self.pending_on_template(&template);
            return;
        }
        if self.obs.state == SandboxState::Stopped {
            self.stop_all();
            return;
        }
        if phase == Some(SandboxPhase::Expired) {
            if !self.restart_requested() {
                // Expired stays expired; make sure nothing runs (a stop may have failed).
                self.stop_containers();
                return;
            }
            self.begin_start("started again after expiry");
        } else if !self.has_started()
            || matches!(phase, Some(SandboxPhase::Stopped | SandboxPhase::Stopping))
        {
            self.begin_start("starting");
        }
        if self.check_expiry() == Step::Done {
            return;
        }
        self.watch = true;
        if let Some(template) = self.obs.template_missing.clone() {
            // Started once, then its template went away: leave it as it is.
            self.status.message = Some(format!(
                "SandboxTemplate \"{template}\" not found: the sandbox is left as it is until the template is back"
            ));
            return;
        }
        self.reconcile_services();
        self.settle_phase();
    }

    fn has_started(&self) -> bool {
        self.status.started_at.is_some()
            && !matches!(self.status.phase, None | Some(SandboxPhase::Pending))
    }

    /// A START annotation newer than the expiry, or a new generation of the spec.
    fn restart_requested(&self) -> bool {
        let expired_at = self.status.expired_at;
        let annotated =
            start_request(&self.obs.meta).is_some_and(|t| expired_at.is_none_or(|e| t > e));
        let respecced = self
            .obs
            .status
            .observed_generation
            .is_some_and(|g| g < self.obs.meta.generation);
        annotated || respecced
    }

    fn pending_on_template(&mut self, template: &str) {
        let ns = self.obs.meta.namespace.as_deref().unwrap_or("default");
        let message = format!(
            "SandboxTemplate \"{template}\" not found in workspace \"{ns}\": create it, or fix spec.templateRef"
        );
        if self.status.phase != Some(SandboxPhase::Pending)
            || self.status.message.as_deref() != Some(&message)
        {
            self.event(EventType::Warning, "TemplateNotFound", message.clone());
        }
        self.status.phase = Some(SandboxPhase::Pending);
        self.status.message = Some(message.clone());
        self.set_ready(ConditionStatus::False, "TemplateNotFound", &message);
    }

    /// (Re)starts the TTL and idle clocks: the sandbox is about to run.
    fn begin_start(&mut self, why: &str) {
        let now = self.obs.now;
        let n = self.obs.effective.services.len();
        self.event(
            EventType::Normal,
            "Starting",
            format!("{why}: {n} service{}", if n == 1 { "" } else { "s" }),
        );
        self.status.started_at = Some(now);
        self.status.last_activity_time = Some(now);
        self.status.phase = Some(SandboxPhase::Starting);
        self.status.message = None;
        for service in &mut self.status.services {
            service.next_restart_time = None;
            service.consecutive_failures = 0;
        }
        self.status
            .conditions
            .retain(|c| c.type_ != SandboxConditionType::Expiring);
    }

    /// `spec.state: Stopped`: stop what runs (Stopping), then Stopped.
    fn stop_all(&mut self) {
        let stopping = self.stop_containers();
        self.status.expires_at = None;
        self.status.expiry_reason = None;
        self.status
            .conditions
            .retain(|c| c.type_ != SandboxConditionType::Expiring);
        if stopping {
            self.set_phase(
                SandboxPhase::Stopping,
                EventType::Normal,
                "Stopping",
                "stopping (spec.state is Stopped)".into(),
            );
            self.status.message = Some("stopping (spec.state is Stopped)".into());
            // Look again once the stop is done.
            self.requeue_in(Duration::ZERO);
        } else if self.status.phase.is_some() {
            self.set_phase(
                SandboxPhase::Stopped,
                EventType::Normal,
                "Stopped",
                "stopped; files and volumes are kept".into(),
            );
            self.status.message =
                Some("stopped (spec.state); set spec.state to Running to start it again".into());
        } else {
            // Declared stopped from the start: nothing to run, nothing to stop.
            self.set_phase_quietly(SandboxPhase::Stopped);
            self.status.message =
                Some("stopped (spec.state); set spec.state to Running to start it".into());
        }
        self.set_ready(ConditionStatus::False, "Stopped", "the sandbox is stopped");
    }

    /// Stops every container that is not stopped. Returns whether there was any.
    fn stop_containers(&mut self) -> bool {
        let ids: Vec<String> = self
            .obs
            .services
            .values()
            .filter_map(|s| s.container.as_ref())
            .filter(|c| needs_stop(&c.state))
            .map(|c| c.id.clone())
            .collect();
        for service in &mut self.status.services {
            service.ready = false;
            service.endpoints.clear();
            service.next_restart_time = None;
            if let Some(c) = self
                .obs
                .services
                .get(&service.name)
                .and_then(|s| s.container.as_ref())
            {
                service.state = Some(match &c.state {
                    ContainerState::Exited { code } => format!("exited (code {code})"),
                    ContainerState::Created => "created".to_string(),
                    state if needs_stop(state) => "stopping".to_string(),
                    ContainerState::Other(other) => other.clone(),
                    _ => "stopped".to_string(),
                });
            }
        }
        if ids.is_empty() {
            return false;
        }
        self.status_first = true;
        self.actions
            .push(SandboxAction::Stop { container_ids: ids });
        true
    }

    fn any_running(&self) -> bool {
        self.obs.services.values().any(|s| {
            s.container
                .as_ref()
                .is_some_and(|c| c.state == ContainerState::Running)
        })
    }

    /// The phase once the services are reconciled: Ready, Starting or Failed.
    fn settle_phase(&mut self) {
        if let Some(failure) = self.failure() {
            self.status.message = Some(failure.clone());
            self.set_ready(ConditionStatus::False, "Failed", &failure);
            self.set_phase(SandboxPhase::Failed, EventType::Warning, "Failed", failure);
            return;
        }
        let waiting: Vec<String> = self
            .status
            .services
            .iter()
            .filter(|s| !s.ready)
            .map(|s| match &s.message {
                Some(m) => format!("{}: {m}", s.name),
                None => format!("{}: {}", s.name, s.state.as_deref().unwrap_or("starting")),
            })
            .collect();
        if waiting.is_empty() {
            self.status.message = None;
            self.set_ready(
                ConditionStatus::True,
                "AllServicesReady",
                "every service is ready",
            );
            let n = self.status.services.len();
            self.set_phase(
                SandboxPhase::Ready,
                EventType::Normal,
                "Ready",
                format!("{n} service{} ready", if n == 1 { "" } else { "s" }),
            );
        } else {
            let message = format!("waiting for {}", waiting.join("; "));
            self.status.message = Some(message.clone());
            self.set_ready(ConditionStatus::False, "Starting", &message);
            // Starting after Ready is not a new start: no event, the service events say why.
            self.set_phase_quietly(SandboxPhase::Starting);
        }
    }

    fn failure(&self) -> Option<String> {
        self.status
            .services
            .iter()
            .filter(|s| !s.ready)
            .find_map(|s| {
                let create = self
                    .obs
                    .services
                    .get(&s.name)
                    .and_then(|o| o.create_error.clone());
                if let Some(error) = create {
                    return Some(format!("service {}: {error}", s.name));
                }
                (s.consecutive_failures >= FAILED_AFTER).then(|| {
                    format!(
                        "service {} keeps failing: {}, {} times in a row; restarts go on with backoff",
                        s.name,
                        s.state.as_deref().unwrap_or("exited"),
                        s.consecutive_failures
                    )
                })
            })
    }

    fn set_phase(
        &mut self,
        phase: SandboxPhase,
        type_: EventType,
        reason: &'static str,
        message: String,
    ) {
        if self.obs.shown_phase != Some(phase) {
            self.event(type_, reason, message);
        }
        self.status.phase = Some(phase);
    }

    fn set_phase_quietly(&mut self, phase: SandboxPhase) {
        self.status.phase = Some(phase);
    }

    fn set_ready(&mut self, status: ConditionStatus, reason: &str, message: &str) {
        set_condition(
            &mut self.status.conditions,
            SandboxConditionType::Ready,
            status,
            reason,
            message,
            self.obs.now,
        );
    }

    fn event(&mut self, type_: EventType, reason: &'static str, message: String) {
        self.events.push(Event {
            type_,
            reason,
            message,
        });
    }

    fn requeue_in(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    fn requeue_at(&mut self, at: DateTime<Utc>) {
        self.requeue_in((at - self.obs.now).to_std().unwrap_or(Duration::ZERO));
    }
}

/// A ready warm-pool slot, as the claim hands it over.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedSlot {
    pub template: String,
    pub slot: String,
    /// The slot's network, when the template's is private.
    pub network: Option<String>,
    /// Per service: the container's name once renamed, and where its ports are.
    pub services: Vec<(String, String, Vec<PublishedPort>)>,
}

/// The status of a sandbox that has just claimed a ready slot: Ready at once. Pure.
pub fn claimed_status(
    meta: &ObjectMeta,
    effective: &EffectiveSandbox,
    slot: &ClaimedSlot,
    now: DateTime<Utc>,
) -> (SandboxStatus, Vec<Event>) {
    let mut status = SandboxStatus {
        phase: Some(SandboxPhase::Ready),
        observed_generation: Some(meta.generation),
        // In the spec's order, as every later decision writes them.
        services: effective
            .services
            .iter()
            .filter_map(|s| slot.services.iter().find(|(name, ..)| *name == s.name))
            .map(|(name, container, ports)| ServiceStatus {
                name: name.clone(),
                container: Some(container.clone()),
                ready: true,
                state: Some("running".into()),
                endpoints: endpoints(effective, name, ports),
                ..Default::default()
            })
            .collect(),
        network_name: slot.network.clone(),
        started_at: Some(now),
        last_activity_time: Some(now),
        claimed_from: Some(PoolClaim {
            template: slot.template.clone(),
            slot: slot.slot.clone(),
            claimed_at: now,
        }),
        ..Default::default()
    };
    set_condition(
        &mut status.conditions,
        SandboxConditionType::Ready,
        ConditionStatus::True,
        "AllServicesReady",
        "every service is ready",
        now,
    );
    if let Some((expires, kind)) = deadline(
        effective.idle_timeout_seconds,
        effective.ttl_seconds,
        status.started_at,
        status.last_activity_time,
    ) {
        status.expires_at = Some(expires);
        status.expiry_reason = Some(kind.as_str().to_string());
    }
    let events = vec![Event::normal(
        "Claimed",
        format!(
            "claimed a ready sandbox from the warm pool of template {} (slot {})",
            slot.template, slot.slot
        ),
    )];
    (status, events)
}

/// The endpoints of a service from its published ports, named as the spec names them.
pub fn endpoints(
    effective: &EffectiveSandbox,
    service: &str,
    ports: &[PublishedPort],
) -> Vec<Endpoint> {
    let declared = effective
        .services
        .iter()
        .find(|s| s.name == service)
        .map(|s| s.ports.as_slice())
        .unwrap_or_default();
    let mut endpoints: Vec<Endpoint> = ports
        .iter()
        .filter(|p| {
            declared
                .iter()
                .any(|d| d.container_port == p.container_port)
        })
        .map(|p| Endpoint {
            name: declared
                .iter()
                .find(|d| d.container_port == p.container_port)
                .and_then(|d| d.name.clone()),
            container_port: p.container_port,
            host_ip: p.host_ip.clone(),
            host_port: p.host_port,
        })
        .collect();
    endpoints.sort_by_key(|e| e.container_port);
    endpoints.dedup_by_key(|e| e.container_port);
    endpoints
}
