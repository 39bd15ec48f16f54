//! Dead services: backoff, counting, Failed, and made again when vanished.

use std::time::Duration;

use super::*;

#[test]
fn a_dead_service_is_restarted_with_doubling_backoff_and_counted() {
    let case = Case::ready(vec![shell()]);
    let d = case.died_after("shell", 1, 5).decide();
    let s = service(&d, "shell");
    assert!(!s.ready);
    assert_eq!(s.state.as_deref(), Some("exited (code 1)"));
    assert_eq!(s.consecutive_failures, 1);
    assert_eq!(s.next_restart_time, Some(t0() + secs(1)));
    assert_eq!(s.restarts, 0);
    assert!(d.actions.is_empty(), "not before the backoff");
    assert_eq!(d.status.phase, Some(SandboxPhase::Starting));
    assert!(
        d.status
            .message
            .as_deref()
            .unwrap()
            .contains("restarting in 1s")
    );
    assert_eq!(d.events[0].reason, "ServiceDied");
    assert!(d.events[0].message.contains("exited (code 1)"));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(1)));

    let case = Case::ready(vec![shell()])
        .died_after("shell", 1, 5)
        .after(&d, 1);
    let d = case.decide();
    assert_eq!(
        d.actions,
        vec![SandboxAction::Start {
            service: "shell".into(),
            container_id: "c-shell".into()
        }]
    );
    let s = service(&d, "shell");
    assert_eq!(s.restarts, 1);
    assert_eq!(s.last_restart_time, Some(case.obs.now));
    assert_eq!(s.next_restart_time, None);
    assert_eq!(reasons(&d), vec!["ServiceRestarted"]);

    // It dies again at once: the second wait is twice the first.
    let case = case.after(&d, 0).died_after("shell", 1, 1);
    let d = case.decide();
    assert_eq!(service(&d, "shell").consecutive_failures, 2);
    assert_eq!(
        service(&d, "shell").next_restart_time,
        Some(case.obs.now + secs(2))
    );
}

#[test]
fn five_deaths_in_a_row_fail_the_sandbox_but_restarts_go_on() {
    let mut case = Case::ready(vec![shell()]);
    let mut waits = Vec::new();
    for _ in 0..4 {
        case = case.died_after("shell", 3, 1);
        let d = case.decide();
        assert_ne!(d.status.phase, Some(SandboxPhase::Failed));
        let next = service(&d, "shell").next_restart_time.unwrap();
        waits.push((next - case.obs.now).num_seconds());
        case = case.after(&d, 0).at(next);
        let d = case.decide();
        assert!(matches!(d.actions[0], SandboxAction::Start { .. }));
        case = case.after(&d, 0).running("shell");
        let d = case.decide();
        assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
        case = case.after(&d, 0);
    }
    assert_eq!(waits, vec![1, 2, 4, 8]);
    let d = case.clone().died_after("shell", 3, 1).decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Failed));
    let message = d.status.message.clone().unwrap();
    assert!(message.contains("exited (code 3)"), "{message}");
    assert!(message.contains("5 times in a row"), "{message}");
    assert!(reasons(&d).contains(&"Failed"));
    assert_eq!(service(&d, "shell").restarts, 4);
    let next = service(&d, "shell")
        .next_restart_time
        .expect("it keeps trying");
    assert_eq!(next - case.obs.now, secs(16));
    // Restarted and running: Ready again.
    let case = case.died_after("shell", 3, 1).after(&d, 16);
    let d = case.decide();
    assert!(matches!(d.actions[0], SandboxAction::Start { .. }));
    let d = case.after(&d, 0).running("shell").decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
}

#[test]
fn backoff_is_capped_at_five_minutes() {
    assert_eq!(restart_backoff(1), Duration::from_secs(1));
    assert_eq!(restart_backoff(9), Duration::from_secs(256));
    assert_eq!(restart_backoff(10), MAX_RESTART_BACKOFF);
    assert_eq!(restart_backoff(1000), MAX_RESTART_BACKOFF);
}

#[test]
fn a_service_that_ran_a_while_before_dying_starts_a_new_count() {
    let mut case = Case::ready(vec![shell()]);
    case.obs.status.services[0].consecutive_failures = 4;
    let d = case.died_after("shell", 1, 600).decide();
    assert_eq!(service(&d, "shell").consecutive_failures, 1);
    assert_eq!(service(&d, "shell").next_restart_time, Some(t0() + secs(1)));
}

#[test]
fn a_service_up_for_a_minute_clears_its_failure_count() {
    let mut case = Case::ready(vec![shell()]);
    case.obs.status.services[0].consecutive_failures = 3;
    let d = case.decide();
    assert_eq!(service(&d, "shell").consecutive_failures, 3);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(59)));
    let d = case.at(t0() + secs(59)).decide();
    assert_eq!(service(&d, "shell").consecutive_failures, 0);
}

#[test]
fn a_vanished_container_is_made_again_with_its_volumes() {
    let mut case = Case::ready(vec![shell()]);
    case.obs.services.clear();
    let d = case.decide();
    assert_eq!(
        d.actions,
        vec![SandboxAction::Create {
            services: vec!["shell".into()]
        }]
    );
    assert_eq!(reasons(&d), vec!["ServiceRecreated"]);
}
