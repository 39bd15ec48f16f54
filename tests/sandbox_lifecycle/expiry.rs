//! Idle and TTL expiry: on time, recorded, held off by background work, undone.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_background_process_keeps_an_idle_sandbox_alive_until_it_ends() {
    sandbox_test(|h| async move {
        let obj = h
            .create(
                Kind::Sandbox,
                "busy",
                json!({"idleTimeoutSeconds": 2, "services": [idle_service("shell")]}),
            )
            .await;
        h.wait_phase("busy", SandboxPhase::Ready).await;
        // As the HTTP API does: the exec is activity, and it leaves a process behind.
        let started = Instant::now();
        {
            let _busy = h.ctx.activity.begin(&obj.metadata.uid);
            let (code, _) = h.exec("busy", "shell", "sleep 8 >/dev/null 2>&1 &").await;
            assert_eq!(code, 0);
        }
        // Well past the idle timeout, while the sleep runs: still Ready.
        while started.elapsed() < Duration::from_secs(6) {
            let status = h.status("busy").await;
            assert_eq!(
                status.phase,
                Some(SandboxPhase::Ready),
                "expired at {:?} although a background process runs: {status:#?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(h.has_event(Kind::Sandbox, "busy", "KeptAlive").await);
        // Once it ends, the sandbox idles out: 8 s of sleep, 2 s idle, and a check.
        let status = h.wait_phase("busy", SandboxPhase::Expired).await;
        let lasted = started.elapsed();
        assert!(
            lasted >= Duration::from_secs(8) && lasted < Duration::from_secs(14),
            "expired after {lasted:?}"
        );
        assert_eq!(status.expiry_reason, None);
        let events = h.events(Kind::Sandbox, "busy").await;
        let expired = events
            .iter()
            .find(|e| e.reason == "Expired")
            .unwrap_or_else(|| panic!("no Expired event: {events:#?}"));
        assert!(expired.message.contains("idle"), "{}", expired.message);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_expiry_happens_on_time_is_recorded_and_can_be_undone() {
    sandbox_test(|h| async move {
        h.create(
            Kind::Sandbox,
            "short",
            json!({"ttlSeconds": 3, "services": [idle_service("shell")]}),
        )
        .await;
        let ready = h.wait_phase("short", SandboxPhase::Ready).await;
        let expires_at = ready.expires_at.expect("a TTL shows in expiresAt");
        assert_eq!(ready.expiry_reason.as_deref(), Some("ttl"));
        let before = h.container("short", "shell").await;
        let status = h.wait_phase("short", SandboxPhase::Expired).await;
        let seen = Utc::now();
        let expired_at = status.expired_at.expect("expiredAt is set");
        assert!(
            secs_between(expires_at, expired_at).abs() < 2.0,
            "expired at {expired_at}, {:.2}s from expiresAt {expires_at}",
            secs_between(expires_at, expired_at)
        );
        assert!(secs_between(expires_at, seen) < 2.5, "seen Expired {seen}");
        let events = h.events(Kind::Sandbox, "short").await;
        let expired = events
            .iter()
            .find(|e| e.reason == "Expired")
            .unwrap_or_else(|| panic!("no Expired event: {events:#?}"));
        assert!(expired.message.contains("ttl"), "{}", expired.message);
        // Stopped, not removed.
        let deadline = Instant::now() + WAIT;
        loop {
            let c = h.runtime.inspect(&before.id).await.unwrap().unwrap();
            if matches!(c.state, ContainerState::Exited { .. }) {
                break;
            }
            assert!(Instant::now() < deadline, "still {:?}", c.state);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Started again by the annotation: Ready, the same container, a new TTL.
        let now = Utc::now().to_rfc3339();
        h.edit(Kind::Sandbox, "short", |o| {
            o.metadata
                .annotations
                .insert(keys::START.into(), now.clone());
        })
        .await;
        let again = h
            .wait_sandbox("short", "Ready after the start annotation", |s| {
                s.phase == Some(SandboxPhase::Ready) && s.started_at > ready.started_at
            })
            .await;
        assert!(again.expires_at.unwrap() > expires_at);
        assert_eq!(h.container("short", "shell").await.id, before.id);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_with_delete_removes_the_sandbox_and_what_it_owned() {
    sandbox_test(|h| async move {
        let shell = idle_service_with_data("shell");
        let obj = h
            .create(
                Kind::Sandbox,
                "gone",
                json!({"ttlSeconds": 2, "onExpiry": "Delete", "network": "private", "services": [shell, idle_service("other")]}),
            )
            .await;
        h.wait_phase("gone", SandboxPhase::Ready).await;
        assert_eq!(h.owned(&obj.metadata.uid).await, (2, 1, 1));
        let deadline = Instant::now() + WAIT;
        while h.get(Kind::Sandbox, "gone").await.is_some() {
            assert!(Instant::now() < deadline, "the sandbox was not deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(h.has_event(Kind::Sandbox, "gone", "Expired").await);
        h.wait_nothing_owned(&obj.metadata.uid).await;
    })
    .await;
}
