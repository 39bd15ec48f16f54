//! Deadlines, the Expiring condition, background work, expiry and starting again.

use std::time::Duration;

use super::*;

#[test]
fn expires_at_is_the_earlier_deadline_and_says_which() {
    let d = Case::new(vec![shell()]).idle(600).ttl(3600).decide();
    assert_eq!(d.status.expires_at, Some(t0() + secs(600)));
    assert_eq!(d.status.expiry_reason.as_deref(), Some("idle"));
    let d = Case::new(vec![shell()]).idle(600).ttl(300).decide();
    assert_eq!(d.status.expires_at, Some(t0() + secs(300)));
    assert_eq!(d.status.expiry_reason.as_deref(), Some("ttl"));
    let d = Case::new(vec![shell()]).decide();
    assert_eq!(d.status.expires_at, None, "no deadline, no expiry");
}

#[test]
fn the_next_look_is_a_minute_before_expiry() {
    let d = Case::new(vec![shell()]).idle(600).decide();
    assert_eq!(d.requeue_after, Some(Duration::from_secs(540)));
    assert_eq!(
        condition(&d, SandboxConditionType::Expiring),
        Some((ConditionStatus::False, "NotDue".into()))
    );
}

#[test]
fn a_minute_ahead_the_expiring_condition_warns_once() {
    let case = Case::ready(vec![shell()]).idle(600);
    let d = case.decide();
    let case = case.after(&d, 540);
    let d = case.decide();
    assert_eq!(
        condition(&d, SandboxConditionType::Expiring),
        Some((ConditionStatus::True, "Idle".into()))
    );
    assert_eq!(
        d.events,
        vec![Event::warning("Expiring", "expires in 60s (idle)")]
    );
    assert_eq!(d.requeue_after, Some(Duration::from_secs(60)));
    let again = case.after(&d, 30).decide();
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn idle_expiry_stops_the_sandbox_and_keeps_its_files() {
    let case = Case::ready(vec![shell()]).idle(600);
    let d = case.decide();
    let case = case.after(&d, 600);
    // Nothing here used it: the exec'd processes are counted before deciding.
    let d = case.decide();
    assert!(d.hints.count_processes);
    assert!(d.actions.is_empty() && d.events.is_empty());
    assert_eq!(d.status, case.obs.status);
    let mut case = case;
    case.obs.activity.background = Some(0);
    let d = case.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Expired));
    assert_eq!(d.status.expired_at, Some(t0() + secs(600)));
    assert!(d.status_first);
    assert_eq!(
        d.actions,
        vec![SandboxAction::Stop {
            container_ids: vec!["c-shell".into()]
        }]
    );
    let Event {
        type_,
        reason,
        message,
    } = &d.events[0];
    assert_eq!((*type_, *reason), (EventType::Warning, "Expired"));
    assert!(message.contains("idle"), "{message}");
    assert!(message.contains("files and volumes kept"), "{message}");
    assert_eq!(d.status.expires_at, None);
    assert!(!d.hints.watch);
}

#[test]
fn ttl_expiry_needs_no_process_count_and_ignores_activity() {
    let mut case = Case::ready(vec![shell()]).ttl(60);
    case.obs.activity.busy = true;
    let d = case.decide();
    let d = case.after(&d, 60).activity(0).decide();
    assert!(!d.hints.count_processes);
    assert_eq!(d.status.phase, Some(SandboxPhase::Expired));
    assert!(d.events[0].message.contains("ttl"), "{:?}", d.events);
}

#[test]
fn expiry_with_delete_deletes_the_sandbox() {
    let case = Case::ready(vec![shell()]).ttl(60).on_expiry_delete();
    let d = case.decide();
    let d = case.after(&d, 61).decide();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.fate, Fate::Delete { reason: "expired" });
    assert!(
        d.status_first,
        "the events are recorded before the sandbox goes"
    );
    assert_eq!(reasons(&d), vec!["Expired"]);
    assert!(d.events[0].message.contains("deleting"));
}

#[test]
fn a_background_process_postpones_idle_expiry_and_is_reported_once() {
    let case = Case::ready(vec![shell()]).idle(2);
    let d = case.decide();
    let mut case = case.after(&d, 2);
    case.obs.activity.background = Some(1);
    let d = case.decide();
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
    assert_eq!(d.status.last_activity_time, Some(case.obs.now));
    assert_eq!(d.status.expires_at, Some(case.obs.now + secs(2)));
    assert_eq!(
        d.events,
        vec![Event::normal(
            "KeptAlive",
            "background process keeps sandbox alive"
        )]
    );
    assert_eq!(d.requeue_after, Some(Duration::from_secs(2)));
    // Two seconds on, still running: postponed again, without another event.
    let mut case = case.after(&d, 2);
    case.obs.activity.background = Some(1);
    let d = case.decide();
    assert!(d.events.is_empty(), "{:?}", d.events);
    assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
    // The process ended: expired at the next deadline.
    let mut case = case.after(&d, 2);
    case.obs.activity.background = Some(0);
    let d = case.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Expired));
}

#[test]
fn an_exec_in_progress_postpones_idle_expiry() {
    let case = Case::ready(vec![shell()]).idle(10);
    let d = case.decide();
    let mut case = case.after(&d, 30);
    case.obs.activity.busy = true;
    case.obs.activity.last = Some(t0() + secs(1));
    let d = case.decide();
    assert!(!d.hints.count_processes, "busy is enough");
    assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
    assert_eq!(reasons(&d), vec!["KeptAlive"]);
    assert!(d.events[0].message.contains("exec in progress"));
}

#[test]
fn activity_moves_the_deadline_but_is_written_only_when_it_matters() {
    let case = Case::ready(vec![shell()]).idle(600);
    let d = case.decide();
    let case = case.after(&d, 100);
    // 5 s of activity since the stored time, expiry far: not worth a write.
    let d = case.clone().activity(95).decide();
    assert_eq!(d.status, case.obs.status);
    // 20 s: written, and expiresAt follows.
    let d = case.activity(80).decide();
    assert_eq!(d.status.last_activity_time, Some(t0() + secs(20)));
    assert_eq!(d.status.expires_at, Some(t0() + secs(620)));
    // Near expiry, any activity is written.
    let case = Case::ready(vec![shell()]).idle(60);
    let d = case.decide();
    let d = case.after(&d, 30).activity(28).decide();
    assert_eq!(d.status.last_activity_time, Some(t0() + secs(2)));
}

#[test]
fn fresh_activity_is_honoured_even_when_not_written() {
    let case = Case::ready(vec![shell()]).idle(600);
    let d = case.decide();
    // The stored deadline is t0+600; activity 5 s later moves the real one to t0+605.
    let case = case.after(&d, 600).activity(595);
    let d = case.decide();
    assert!(!d.hints.count_processes);
    assert_ne!(d.status.phase, Some(SandboxPhase::Expired));
    assert_eq!(d.status.last_activity_time, Some(t0() + secs(5)));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(5)));
}

#[test]
fn an_expired_sandbox_stays_expired_until_started_again() {
    let case = Case::ready(vec![shell()]).ttl(10);
    let d = case.decide();
    let case = case.after(&d, 10);
    let d = case.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Expired));
    let expired_at = d.status.expired_at.unwrap();
    let mut case = case.after(&d, 5).exited("shell", 137);
    let d = case.decide();
    assert!(d.actions.is_empty());
    assert_eq!(d.status.phase, Some(SandboxPhase::Expired));
    assert!(!d.hints.watch);
    // A start request from before the expiry is stale.
    case.obs
        .meta
        .annotations
        .insert(keys::START.into(), (expired_at - secs(1)).to_rfc3339());
    assert_eq!(case.decide().status.phase, Some(SandboxPhase::Expired));
    // A newer one starts it, and the TTL counts from now.
    case.obs
        .meta
        .annotations
        .insert(keys::START.into(), case.obs.now.to_rfc3339());
    let d = case.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Starting));
    assert_eq!(d.status.started_at, Some(case.obs.now));
    assert_eq!(d.status.expires_at, Some(case.obs.now + secs(10)));
    assert_eq!(
        d.actions,
        vec![SandboxAction::Start {
            service: "shell".into(),
            container_id: "c-shell".into()
        }]
    );
    assert_eq!(service(&d, "shell").restarts, 0);
    // A TTL of 10 s is within the minute of warning at once.
    assert_eq!(reasons(&d), vec!["Starting", "Expiring"]);
    // Running again, the annotation does not restart it a second time.
    let case = case.after(&d, 1).running("shell");
    let d = case.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Ready));
    assert_eq!(d.status.started_at, Some(t0() + secs(15)));
}

#[test]
fn a_changed_spec_starts_an_expired_sandbox_again() {
    let case = Case::ready(vec![shell()]).ttl(10);
    let d = case.decide();
    let d = case.after(&d, 10).decide();
    let mut case = Case::ready(vec![shell()])
        .ttl(10)
        .after(&d, 20)
        .exited("shell", 0);
    case.obs.meta.generation = 2;
    let d = case.decide();
    assert_eq!(d.status.phase, Some(SandboxPhase::Starting));
    assert_eq!(d.status.observed_generation, Some(2));
}
