//! Restarting orcaops: adoption without changes, and the start-up sweep.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_controller_adopts_what_runs_and_changes_nothing() {
    sandbox_test(|mut h| async move {
        h.create(
            Kind::Sandbox,
            "steady",
            json!({"idleTimeoutSeconds": 600, "services": [web_service(), idle_service("shell")]}),
        )
        .await;
        h.warm_pool("pool", 1).await;
        h.wait_phase("steady", SandboxPhase::Ready).await;
        // Let the status settle (the first write after Ready adds the Expiring condition).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = h.get(Kind::Sandbox, "steady").await.unwrap();
        let web = h.container("steady", "web").await.id;
        let shell = h.container("steady", "shell").await.id;
        let pooled = h.pool_containers("pool").await;
        assert_eq!(pooled.len(), 1);

        h.stop_controllers().await;
        let h = Harness::start_controllers(&h.store, &h.runtime, &h.stop);
        tokio::time::sleep(Duration::from_secs(2)).await;

        let after = h.get(Kind::Sandbox, "steady").await.unwrap();
        assert_eq!(
            after.metadata.resource_version, before.metadata.resource_version,
            "nothing changed, so nothing was written: {:#?} -> {:#?}",
            before.status, after.status
        );
        assert_eq!(h.container("steady", "web").await.id, web);
        assert_eq!(h.container("steady", "shell").await.id, shell);
        let pooled_after = h.pool_containers("pool").await;
        assert_eq!(
            pooled_after, pooled,
            "the pooled sandbox is adopted, not made again"
        );
        // It is claimable again.
        h.wait_pool("pool", "one ready after the restart", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 1)
        })
        .await;
        h.create(Kind::Sandbox, "late", json!({"templateRef": "pool"}))
            .await;
        let status = h.wait_phase("late", SandboxPhase::Ready).await;
        assert!(status.claimed_from.is_some());
        // And a killed service is still watched.
        let killed = std::process::Command::new("docker")
            .args(["kill", &shell])
            .output()
            .unwrap();
        assert!(killed.status.success());
        h.wait_sandbox("steady", "a restart after adoption", |s| {
            s.services
                .iter()
                .any(|x| x.name == "shell" && x.restarts == 1)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_a_sandbox_deleted_while_orcaops_was_down_left_is_removed_at_start() {
    sandbox_test(|mut h| async move {
        let shell = idle_service_with_data("shell");
        let obj = h
            .create(
                Kind::Sandbox,
                "orphan",
                json!({"network": "private", "services": [shell]}),
            )
            .await;
        h.wait_phase("orphan", SandboxPhase::Ready).await;
        h.stop_controllers().await;
        h.store
            .delete(&ObjectKey::new(Kind::Sandbox, "default", "orphan"))
            .await
            .unwrap();
        assert_eq!(h.owned(&obj.metadata.uid).await, (1, 1, 1));
        let h = Harness::start_controllers(&h.store, &h.runtime, &h.stop);
        h.wait_nothing_owned(&obj.metadata.uid).await;
    })
    .await;
}
