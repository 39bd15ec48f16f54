//! Warm pools: claims, bursts, growth, timing, and template changes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_from_a_warm_pool_is_ready_at_once_and_the_pool_refills() {
    sandbox_test(|h| async move {
        h.warm_pool("shell", 2).await;
        let started = Instant::now();
        let obj = h
            .create(Kind::Sandbox, "agent", json!({"templateRef": "shell"}))
            .await;
        let status = h.wait_phase("agent", SandboxPhase::Ready).await;
        let took = started.elapsed();
        println!("claim to Ready: {took:?}");
        assert!(took < Duration::from_millis(500), "a claim took {took:?}");
        let claim = status.claimed_from.clone().expect("claimed from the pool");
        assert_eq!(claim.template, "shell");
        assert_eq!(status.expiry_reason.as_deref(), Some("idle"));
        // The container takes the sandbox's name; it keeps working.
        let uid8 = orcaops::runtime::names::uid8(&obj.metadata.uid);
        let name = format!("orcaops-default-agent-{uid8}-shell");
        let deadline = Instant::now() + WAIT;
        while h.runtime.inspect(&name).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "{name} never appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (code, out) = h.exec("agent", "shell", "echo hi").await;
        assert_eq!((code, out.as_str()), (0, "hi"));
        assert!(h.has_event(Kind::Sandbox, "agent", "Claimed").await);
        let pool = h
            .wait_pool("shell", "refilled to two", |s| {
                s.pool
                    .as_ref()
                    .is_some_and(|p| p.ready == 2 && p.claimed == 1)
            })
            .await
            .pool
            .unwrap();
        assert_eq!(pool.missed, 0);
        assert!(pool.last_claim_time.is_some());
        // Deleting the sandbox removes the claimed containers, never the pool's.
        h.store
            .delete(&ObjectKey::new(Kind::Sandbox, "default", "agent"))
            .await
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while h.runtime.inspect(&name).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{name} was not removed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(h.template_status("shell").await.pool.unwrap().ready, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_claims_is_served_and_the_pool_refills() {
    sandbox_test(|h| async move {
        h.warm_pool("shell", 2).await;
        let names: Vec<String> = (0..5).map(|i| format!("burst-{i}")).collect();
        futures::future::join_all(
            names
                .iter()
                .map(|n| h.create(Kind::Sandbox, n, json!({"templateRef": "shell"}))),
        )
        .await;
        let mut claimed = 0;
        for name in &names {
            let status = h.wait_phase(name, SandboxPhase::Ready).await;
            claimed += usize::from(status.claimed_from.is_some());
        }
        assert_eq!(claimed, 2, "two from the pool, three cold");
        let pool = h
            .wait_pool("shell", "refilled after the burst", |s| {
                s.pool
                    .as_ref()
                    .is_some_and(|p| p.ready == 2 && p.claimed == 2 && p.missed == 3)
            })
            .await;
        assert_eq!(
            pool.pool.unwrap().desired,
            2,
            "no maxSize: the pool does not grow"
        );
        assert!(
            h.has_event(Kind::SandboxTemplate, "shell", "PoolEmpty")
                .await
        );
        assert!(
            h.has_event(Kind::SandboxTemplate, "shell", "Refilling")
                .await
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_grows_a_pool_with_room_to_grow() {
    sandbox_test(|h| async move {
        h.create(Kind::SandboxTemplate, "shell", pooled_template(1, Some(4)))
            .await;
        h.wait_pool("shell", "one ready", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 1)
        })
        .await;
        for i in 0..3 {
            h.create(
                Kind::Sandbox,
                &format!("g-{i}"),
                json!({"templateRef": "shell"}),
            )
            .await;
        }
        for i in 0..3 {
            h.wait_phase(&format!("g-{i}"), SandboxPhase::Ready).await;
        }
        h.wait_pool("shell", "grown to four ready", |s| {
            s.pool
                .as_ref()
                .is_some_and(|p| p.desired == 4 && p.ready == 4)
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_take_milliseconds_and_cold_starts_little_more_than_docker() {
    sandbox_test(|h| async move {
        // Cold: create to Ready, against `docker run -d` of the same container.
        let (mut ours, mut docker) = (Vec::new(), Vec::new());
        for i in 0..5 {
            let name = format!("cold-{i}");
            let (took, _) = create_until_ready(
                &h,
                &name,
                json!({"services": [{"name": "shell", "image": IMAGE, "command": ["sleep", "infinity"]}]}),
            )
            .await;
            ours.push(took);
            let baseline = format!("orcaops-test-baseline-{}-{i}", h.store.instance_id());
            let started = Instant::now();
            let out = std::process::Command::new("docker")
                .args(["run", "-d", "--network", "none", "--label"])
                .arg(format!("{}={}", keys::LABEL_INSTANCE, h.store.instance_id()))
                .args(["--name", &baseline, IMAGE, "sleep", "infinity"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            docker.push(started.elapsed());
        }
        let (cold, run) = (median(ours), median(docker));
        println!("cold create-to-Ready p50 {cold:?}; docker run -d p50 {run:?}");
        assert!(
            cold < run * 2 + Duration::from_millis(200),
            "a cold start took {cold:?} against {run:?} for docker run -d"
        );

        // Warm: each claim made with the pool full.
        h.create(Kind::SandboxTemplate, "quick", pooled_template(3, None))
            .await;
        let mut claims = Vec::new();
        for i in 0..10 {
            h.wait_pool("quick", "a full pool", |s| {
                s.pool.as_ref().is_some_and(|p| p.ready == 3 && p.claimed == i)
            })
            .await;
            let (took, status) =
                create_until_ready(&h, &format!("claim-{i}"), json!({"templateRef": "quick"}))
                    .await;
            assert!(status.claimed_from.is_some(), "claim-{i} started cold");
            claims.push(took);
        }
        let p50 = median(claims.clone());
        println!("claim-to-Ready p50 {p50:?}, all {claims:?}");
        assert!(p50 < Duration::from_millis(50), "claims took {claims:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_template_change_replaces_its_pool_and_updates_claimed_sandboxes() {
    sandbox_test(|h| async move {
        let mut client = idle_service("client");
        client["volumes"] = json!([{"name": "work", "mountPath": "/work"}]);
        let template = json!({
            "network": "private",
            "services": [web_service(), client],
            "warmPool": {"size": 1},
        });
        h.create(Kind::SandboxTemplate, "dev", template.clone())
            .await;
        h.wait_pool("dev", "one ready", |s| {
            s.pool.as_ref().is_some_and(|p| p.ready == 1)
        })
        .await;
        let slot_selector = |h: &Harness| {
            let instance = h.store.instance_id().to_string();
            let runtime = h.runtime.clone();
            async move {
                let mut names: Vec<String> = runtime
                    .list(&[
                        (keys::LABEL_INSTANCE, instance.as_str()),
                        (keys::LABEL_POOL, "dev"),
                    ])
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|c| c.name.starts_with("orcaops-pool-"))
                    .map(|c| c.name)
                    .collect();
                names.sort();
                names
            }
        };
        let obj = h
            .create(Kind::Sandbox, "dev-1", json!({"templateRef": "dev"}))
            .await;
        let status = h.wait_phase("dev-1", SandboxPhase::Ready).await;
        let claim = status.claimed_from.clone().expect("claimed");
        let network = status.network_name.clone().expect("a private network");
        assert_eq!(network, format!("orcaops-pool-default-dev-{}", claim.slot));
        let (code, out) = h
            .exec(
                "dev-1",
                "client",
                "echo kept > /work/f && wget -q -O - http://web:8080/index.html",
            )
            .await;
        assert_eq!((code, out.as_str()), (0, "hello"));
        h.wait_pool("dev", "refilled", |s| {
            s.pool
                .as_ref()
                .is_some_and(|p| p.ready == 1 && p.claimed == 1)
        })
        .await;
        let old_slot = slot_selector(&h).await;
        let old_client = h.container("dev-1", "client").await.id;

        // Change the client: the pool is made again, and the claimed sandbox follows
        // (its client container is made again, on the same network and volume).
        let mut changed = template.clone();
        changed["services"][1]["env"] = json!([{"name": "VERSION", "value": "2"}]);
        h.edit(Kind::SandboxTemplate, "dev", |o| o.spec = changed.clone())
            .await;
        let deadline = Instant::now() + WAIT;
        loop {
            let now = slot_selector(&h).await;
            let ready = h
                .template_status("dev")
                .await
                .pool
                .is_some_and(|p| p.ready == 1);
            if ready && !now.is_empty() && now.iter().all(|n| !old_slot.contains(n)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the pool was not replaced: {old_slot:?} -> {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = h
            .wait_sandbox("dev-1", "the client made again", |s| {
                s.phase == Some(SandboxPhase::Ready)
            })
            .await;
        let deadline = Instant::now() + WAIT;
        while h
            .container_id("dev-1", "client")
            .await
            .is_none_or(|id| id == old_client)
        {
            assert!(Instant::now() < deadline, "the client was not made again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        h.wait_phase("dev-1", SandboxPhase::Ready).await;
        assert_eq!(status.network_name.as_deref(), Some(network.as_str()));
        let (code, out) = h
            .exec(
                "dev-1",
                "client",
                "echo $VERSION; cat /work/f; wget -q -O - http://web:8080/index.html",
            )
            .await;
        assert_eq!((code, out.as_str()), (0, "2\nkept\nhello"));
        assert!(h.has_event(Kind::Sandbox, "dev-1", "ServiceUpdated").await);

        // Deleting it removes the slot's network and volume it used.
        h.store
            .delete(&ObjectKey::new(Kind::Sandbox, "default", "dev-1"))
            .await
            .unwrap();
        let instance = h.store.instance_id().to_string();
        let slot = [
            (keys::LABEL_INSTANCE, instance.as_str()),
            (keys::LABEL_SLOT, claim.slot.as_str()),
        ];
        let deadline = Instant::now() + WAIT;
        loop {
            let left = (
                h.runtime.list(&slot).await.unwrap().len(),
                h.runtime.list_networks(&slot).await.unwrap().len(),
                h.runtime.list_volumes(&slot).await.unwrap().len(),
            );
            if left == (0, 0, 0) {
                break;
            }
            assert!(Instant::now() < deadline, "left behind: {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(h.owned(&obj.metadata.uid).await, (0, 0, 0));
    })
    .await;
}
