use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::resources::sandbox::{
    ExpiryAction, HealthCheck, SandboxNetwork, SandboxService, ServicePort, TcpCheck, effective,
};
use crate::resources::sandbox::{SandboxSpec, SandboxTemplateSpec};
use crate::runtime::sandbox::names::{LABEL_SPEC_HASH, child_name, sandbox_base, service_hash};

mod expiry;
mod restarts;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn shell() -> SandboxService {
    SandboxService {
        name: "shell".into(),
        image: "busybox:latest".into(),
        command: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    }
}

fn web() -> SandboxService {
    SandboxService {
        name: "web".into(),
        image: "busybox:latest".into(),
        command: vec!["httpd".into(), "-f".into()],
        ports: vec![ServicePort {
            container_port: 80,
            name: Some("http".into()),
        }],
        health_check: Some(HealthCheck {
            tcp: Some(TcpCheck { port: 80 }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A sandbox under test: its observation, moved along as the controller would.
#[derive(Clone)]
struct Case {
    obs: Observed,
}

impl Case {
    fn new(services: Vec<SandboxService>) -> Self {
        let spec = SandboxSpec {
            services,
            ..Default::default()
        };
        Case {
            obs: Observed {
                meta: ObjectMeta {
                    name: "sb".into(),
                    namespace: Some("default".into()),
                    uid: "abcdef01-2345".into(),
                    generation: 1,
                    ..Default::default()
                },
                state: SandboxState::Running,
                effective: effective(&spec, None),
                template_missing: None,
                status: SandboxStatus::default(),
                shown_phase: None,
                services: BTreeMap::new(),
                activity: Activity::default(),
                now: t0(),
            },
        }
    }

    fn idle(mut self, secs: u64) -> Self {
        self.obs.effective.idle_timeout_seconds = Some(secs);
        self
    }

    fn ttl(mut self, secs: u64) -> Self {
        self.obs.effective.ttl_seconds = Some(secs);
        self
    }

    fn on_expiry_delete(mut self) -> Self {
        self.obs.effective.on_expiry = ExpiryAction::Delete;
        self
    }

    fn service_spec(&self, name: &str) -> SandboxService {
        self.obs
            .effective
            .services
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .expect("a service of the case")
    }

    fn container(mut self, service: &str, state: ContainerState) -> Self {
        let spec = self.service_spec(service);
        let hash = service_hash(&spec, self.obs.effective.network);
        let running = state == ContainerState::Running;
        let started = self.obs.now - secs(1);
        let info = ContainerInfo {
            id: format!("c-{service}"),
            name: child_name(&sandbox_base(&self.obs.meta), service),
            labels: BTreeMap::from([(LABEL_SPEC_HASH.to_string(), hash)]),
            state,
            started_at: Some(started),
            finished_at: (!running).then_some(self.obs.now),
            image_id: None,
        };
        let entry = self.obs.services.entry(service.to_string()).or_default();
        entry.container = Some(info);
        entry.ports = if running {
            spec.ports
                .iter()
                .map(|p| PublishedPort {
                    container_port: p.container_port,
                    host_ip: "127.0.0.1".into(),
                    host_port: 40000 + p.container_port,
                })
                .collect()
        } else {
            Vec::new()
        };
        self
    }

    fn running(self, service: &str) -> Self {
        self.container(service, ContainerState::Running)
    }

    fn exited(self, service: &str, code: i64) -> Self {
        self.container(service, ContainerState::Exited { code })
    }

    /// The container ran `ran` seconds before it exited.
    fn died_after(mut self, service: &str, code: i64, ran: i64) -> Self {
        self = self.exited(service, code);
        let now = self.obs.now;
        let c = self
            .obs
            .services
            .get_mut(service)
            .unwrap()
            .container
            .as_mut()
            .unwrap();
        c.started_at = Some(now - secs(ran));
        self
    }

    fn probe(mut self, service: &str, ready: Option<bool>) -> Self {
        self.obs
            .services
            .entry(service.into())
            .or_default()
            .probe_ready = ready;
        self
    }

    fn activity(mut self, ago: i64) -> Self {
        self.obs.activity.last = Some(self.obs.now - secs(ago));
        self
    }

    fn decide(&self) -> Decision {
        decide(&self.obs)
    }

    /// Applies a decision's status as the store would, and moves the clock.
    fn after(mut self, d: &Decision, seconds: i64) -> Self {
        self.obs.status = d.status.clone();
        self.obs.shown_phase = d.status.phase;
        self.obs.now += secs(seconds);
        self
    }

    fn at(mut self, time: DateTime<Utc>) -> Self {
        self.obs.now = time;
        self
    }

    /// A sandbox already Ready with every service running (and passing).
    fn ready(services: Vec<SandboxService>) -> Self {
        let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
        let mut case = Case::new(services);
        let d = case.decide();
        case = case.after(&d, 0);
        for name in &names {
            case = case.running(name).probe(name, Some(true));
        }
        let d = case.decide();
        assert_eq!(d.status.phase, Some(SandboxPhase::Ready), "{d:#?}");
        case.after(&d, 0)
    }
}

fn reasons(d: &Decision) -> Vec<&'static str> {
    d.events.iter().map(|e| e.reason).collect()
}

fn service<'a>(d: &'a Decision, name: &str) -> &'a ServiceStatus {
    d.status.services.iter().find(|s| s.name == name).unwrap()
}

fn condition(d: &Decision, type_: SandboxConditionType) -> Option<(ConditionStatus, String)> {
    d.status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason.clone()))
}

// --- starting ---

#[test]
fn a_new_sandbox_makes_every_service_and_is_starting() {
    let d = Case::new(vec![shell(), web()]).decide();
    assert_eq!(
        d.actions,
        vec![SandboxAction::Create {
            services: vec!["shell".into(), "web".into()]
        }]
    );
    assert_eq!(d.status.phase, Some(SandboxPhase::Starting));
    assert_eq!(d.status.started_at, Some(t0()));
    assert_eq!(d.status.last_activity_time, Some(t0()));
    assert_eq!(reasons(&d), vec!["Starting"]);
    assert_eq!(
        service(&d, "shell").container.as_deref(),
        Some("orcaops-default-sb-abcdef01-shell")
    );
    assert!(d.hints.watch);
    assert!(!d.status_first);
}

#[test]
fn running_services_without_checks_are_ready_with_their_endpoints() {
    let mut web = web();
    web.health_check = None;
    let case = Case::new(vec![shell(), web]);
    let d = case.decide();
    let d = case.after(&d, 0).running("shell").running("web").decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
    assert_eq!(reasons(&d), vec!["Ready"]);
    assert!(d.actions.is_empty());
    let endpoints = &service(&d, "web").endpoints;
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].name.as_deref(), Some("http"));
    assert_eq!(endpoints[0].host_port, 40080);
    assert_eq!(
        condition(&d, SandboxConditionType::Ready),
        Some((ConditionStatus::True, "AllServicesReady".into()))
    );
}

#[test]
fn a_service_with_a_health_check_is_ready_only_once_it_passes() {
    let case = Case::new(vec![web()]);
    let d = case.decide();
    let case = case.after(&d, 0).running("web");
    let waiting = case.decide();
    assert_eq!(waiting.status.phase, Some(SandboxPhase::Starting));
    assert!(
        waiting
            .status
            .message
            .as_deref()
            .unwrap()
            .contains("health check")
    );
    let failing = case.probe("web", Some(false));
    assert_eq!(failing.decide().status.phase, Some(SandboxPhase::Starting));
    let d = failing.probe("web", Some(true)).decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
    assert!(service(&d, "web").ready);
}

#[test]
fn a_created_container_is_started() {
    let case = Case::new(vec![shell()]);
    let d = case.decide();
    let d = case
        .after(&d, 0)
        .container("shell", ContainerState::Created)
        .decide();
    assert_eq!(
        d.actions,
        vec![SandboxAction::Start {
            service: "shell".into(),
            container_id: "c-shell".into()
        }]
    );
    assert_eq!(service(&d, "shell").restarts, 0);
}

#[test]
fn a_missing_template_keeps_a_new_sandbox_pending_with_a_clear_message() {
    let mut case = Case::new(Vec::new());
    case.obs.template_missing = Some("shell".into());
    let d = case.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Pending));
    let message = d.status.message.clone().unwrap();
    assert!(
        message.contains("SandboxTemplate \"shell\" not found"),
        "{message}"
    );
    assert!(message.contains("workspace \"default\""), "{message}");
    assert!(d.actions.is_empty());
    assert_eq!(reasons(&d), vec!["TemplateNotFound"]);
    // Asked again, nothing new is said.
    let again = case.after(&d, 5).decide();
    assert!(again.events.is_empty());
    assert_eq!(again.status, d.status);
}

#[test]
fn a_template_that_goes_away_leaves_a_running_sandbox_alone() {
    let mut case = Case::ready(vec![shell()]);
    case.obs.template_missing = Some("shell".into());
    let d = case.exited("shell", 1).decide();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(d.status.message.unwrap().contains("left as it is"));
}

#[test]
fn a_template_sandbox_takes_the_templates_services_and_lifetimes() {
    let template = SandboxTemplateSpec {
        services: vec![shell()],
        idle_timeout_seconds: Some(300),
        ..Default::default()
    };
    let spec = SandboxSpec {
        template_ref: Some("t".into()),
        ..Default::default()
    };
    let mut case = Case::new(Vec::new());
    case.obs.effective = effective(&spec, Some(&template));
    let d = case.decide();
    assert_eq!(
        d.actions,
        vec![SandboxAction::Create {
            services: vec!["shell".into()]
        }]
    );
    assert_eq!(d.status.expires_at, Some(t0() + secs(300)));
}

// --- stop and start ---

#[test]
fn stopping_stops_the_containers_first_and_then_says_stopped() {
    let mut case = Case::ready(vec![shell(), web()]);
    case.obs.state = SandboxState::Stopped;
    let d = case.decide();
    assert!(d.status_first, "Stopping is written before the stop");
    assert_eq!(
        d.actions,
        vec![SandboxAction::Stop {
            container_ids: vec!["c-shell".into(), "c-web".into()]
        }]
    );
    assert_eq!(d.status.phase, Some(SandboxPhase::Stopping));
    assert_eq!(d.status.expires_at, None);
    assert_eq!(reasons(&d), vec!["Stopping"]);
    assert_eq!(d.requeue_after, Some(Duration::ZERO));
    assert!(!d.hints.watch);
    let d = case
        .after(&d, 1)
        .exited("shell", 137)
        .exited("web", 137)
        .decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Stopped));
    assert_eq!(reasons(&d), vec!["Stopped"]);
    assert!(
        d.actions.is_empty(),
        "nothing is removed: files and volumes are kept"
    );
    assert!(!service(&d, "web").ready);
    assert!(service(&d, "web").endpoints.is_empty());
}

#[test]
fn starting_again_starts_the_kept_containers_without_counting_restarts() {
    let mut case = Case::ready(vec![shell()]);
    case.obs.state = SandboxState::Stopped;
    let d = case.decide();
    let case = case.after(&d, 1).exited("shell", 137);
    let d = case.decide();
    let mut case = case.after(&d, 100);
    case.obs.state = SandboxState::Running;
    let d = case.decide();
    assert_eq!(
        d.actions,
        vec![SandboxAction::Start {
            service: "shell".into(),
            container_id: "c-shell".into()
        }]
    );
    assert_eq!(d.status.phase, Some(SandboxPhase::Starting));
    assert_eq!(
        d.status.started_at,
        Some(t0() + secs(101)),
        "the TTL clock starts again"
    );
    assert_eq!(service(&d, "shell").restarts, 0);
    assert_eq!(reasons(&d), vec!["Starting"]);
}

#[test]
fn a_container_that_never_started_counts_as_stopped() {
    let mut case = Case::new(vec![shell(), web()]);
    case.obs.state = SandboxState::Stopped;
    case.obs.status.phase = Some(SandboxPhase::Stopping);
    let d = case
        .container("shell", ContainerState::Created)
        .container("web", ContainerState::Other("dead".into()))
        .decide();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, Some(SandboxPhase::Stopped));
    assert_eq!(d.requeue_after, None);
}

#[test]
fn a_sandbox_declared_stopped_starts_nothing() {
    let mut case = Case::new(vec![shell()]);
    case.obs.state = SandboxState::Stopped;
    let d = case.decide();
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Some(SandboxPhase::Stopped));
}

// --- spec changes, claims, adoption ---

#[test]
fn a_changed_service_is_made_again_and_a_removed_one_removed() {
    let case = Case::ready(vec![shell(), web()]);
    let mut changed = shell();
    changed.command = vec!["sleep".into(), "999".into()];
    let mut case = case;
    case.obs.effective.services = vec![changed];
    let d = case.decide();
    assert_eq!(
        d.actions,
        vec![
            SandboxAction::Remove {
                service: "shell".into(),
                container_id: "c-shell".into()
            },
            SandboxAction::Remove {
                service: "web".into(),
                container_id: "c-web".into()
            },
            SandboxAction::Create {
                services: vec!["shell".into()]
            },
        ]
    );
    assert_eq!(reasons(&d), vec!["ServiceUpdated"]);
    assert_eq!(d.status.services.len(), 1);
}

#[test]
fn a_network_change_remakes_every_container() {
    let mut case = Case::ready(vec![shell()]);
    assert_eq!(case.obs.status.network_name, None);
    case.obs.effective.network = SandboxNetwork::Private;
    let d = case.decide();
    assert!(
        d.actions
            .iter()
            .any(|a| matches!(a, SandboxAction::Remove { .. }))
    );
    assert_eq!(
        d.status.network_name.as_deref(),
        Some("orcaops-default-sb-abcdef01")
    );
}

#[test]
fn a_claimed_container_still_under_its_pool_name_is_renamed() {
    let mut case = Case::ready(vec![shell()]);
    case.obs.services.get_mut("shell").unwrap().pool_named = true;
    let d = case.decide();
    assert_eq!(
        d.actions,
        vec![SandboxAction::Rename {
            container_id: "c-shell".into(),
            to: "orcaops-default-sb-abcdef01-shell".into()
        }]
    );
    assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
}

#[test]
fn after_a_controller_restart_nothing_changes() {
    let case = Case::ready(vec![shell(), web()]).idle(600).ttl(3600);
    let d = case.decide();
    let mut case = case.after(&d, 30);
    // A new process: no monitor verdict yet, no in-memory activity.
    case = case.probe("web", None);
    case.obs.activity = Activity::default();
    let d = case.decide();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert_eq!(d.status, case.obs.status);
}

#[test]
fn an_image_that_cannot_be_pulled_fails_the_sandbox_and_is_retried() {
    let case = Case::new(vec![shell()]);
    let d = case.decide();
    let mut case = case.after(&d, 0);
    case.obs
        .services
        .entry("shell".into())
        .or_default()
        .create_error = Some("image \"nope\" is not available: not found".into());
    let d = case.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Failed));
    assert!(
        d.status
            .message
            .as_deref()
            .unwrap()
            .contains("not available")
    );
    assert_eq!(reasons(&d), vec!["Failed"]);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(30)));
    // Retried 30 s later: the first pass makes it again (Starting, not stored), the
    // second sees it fail again; Failed is not announced twice.
    let mut retry = case.after(&d, 30);
    retry.obs.services.clear();
    let first = retry.decide();
    assert!(matches!(first.actions[0], SandboxAction::Create { .. }));
    let mut second = retry.clone();
    second.obs.status = first.status.clone();
    second
        .obs
        .services
        .entry("shell".into())
        .or_default()
        .create_error = Some("image \"nope\" is not available: not found".into());
    let d = second.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Failed));
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[test]
fn a_claimed_sandbox_is_ready_at_once() {
    let case = Case::new(vec![shell(), web()]).idle(300);
    let slot = ClaimedSlot {
        template: "t".into(),
        slot: "k3x9a0zq".into(),
        network: None,
        services: vec![
            (
                "web".into(),
                "orcaops-default-sb-abcdef01-web".into(),
                vec![PublishedPort {
                    container_port: 80,
                    host_ip: "127.0.0.1".into(),
                    host_port: 5555,
                }],
            ),
            (
                "shell".into(),
                "orcaops-default-sb-abcdef01-shell".into(),
                vec![],
            ),
        ],
    };
    let (status, events) = claimed_status(&case.obs.meta, &case.obs.effective, &slot, t0());
    assert_eq!(status.phase, Some(SandboxPhase::Ready));
    assert_eq!(status.claimed_from.as_ref().unwrap().slot, "k3x9a0zq");
    assert_eq!(
        status
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["shell", "web"],
        "in the spec's order"
    );
    assert_eq!(status.services[1].endpoints[0].host_port, 5555);
    assert_eq!(status.expires_at, Some(t0() + secs(300)));
    assert_eq!(events[0].reason, "Claimed");
}

#[test]
fn start_requests_are_read_as_times() {
    let mut meta = ObjectMeta::default();
    assert_eq!(start_request(&meta), None);
    meta.annotations
        .insert(keys::START.into(), "2026-03-01T12:00:05Z".into());
    assert_eq!(start_request(&meta), Some(t0() + secs(5)));
    meta.annotations.insert(keys::START.into(), "soon".into());
    assert_eq!(start_request(&meta), None);
}

// --- a runtime that restarts containers itself (a pod's kubelet) ---

#[test]
fn restarts_counted_by_the_runtime_become_the_services_restarts() {
    let mut case = Case::ready(vec![shell()]);
    case.obs.services.get_mut("shell").unwrap().restarts = Some(0);
    let d = case.decide();
    assert_eq!(service(&d, "shell").restarts, 0);
    assert!(!reasons(&d).contains(&"ServiceRestarted"));
    let mut case = case.after(&d, 5);
    case.obs.services.get_mut("shell").unwrap().restarts = Some(2);
    let d = case.decide();
    assert_eq!(service(&d, "shell").restarts, 2);
    assert_eq!(service(&d, "shell").last_restart_time, Some(case.obs.now));
    assert_eq!(reasons(&d), vec!["ServiceRestarted"]);
    assert!(d.actions.is_empty(), "the runtime restarted it: {d:#?}");
    // A new pod counts from zero again: the status follows, without an event.
    let mut case = case.after(&d, 5);
    case.obs.services.get_mut("shell").unwrap().restarts = Some(0);
    let d = case.decide();
    assert_eq!(service(&d, "shell").restarts, 0);
    assert!(!reasons(&d).contains(&"ServiceRestarted"));
}
