//! Starting, endpoints, private networks, stop and start, restarts, deletion.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sandbox_starts_ready_with_its_endpoints() {
    sandbox_test(|h| async move {
        let obj = h
            .create(
                Kind::Sandbox,
                "web",
                json!({"network": "bridge", "services": [web_service()]}),
            )
            .await;
        let status = h.wait_phase("web", SandboxPhase::Ready).await;
        let web = &status.services[0];
        assert!(web.ready);
        assert_eq!(web.state.as_deref(), Some("running"));
        let endpoint = &web.endpoints[0];
        assert_eq!(endpoint.name.as_deref(), Some("http"));
        assert_eq!(endpoint.container_port, 8080);
        assert_eq!(endpoint.host_ip, "127.0.0.1");
        // The endpoint answers.
        let mut stream =
            tokio::net::TcpStream::connect((endpoint.host_ip.as_str(), endpoint.host_port))
                .await
                .expect("the published port accepts connections");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.contains("hello"), "{answer}");
        // Named and labelled as documented.
        let uid8 = orcaops::runtime::names::uid8(&obj.metadata.uid);
        let container = h.container("web", "web").await;
        assert_eq!(container.name, format!("orcaops-default-web-{uid8}-web"));
        assert_eq!(container.label(keys::LABEL_KIND), Some("Sandbox"));
        assert_eq!(
            container.label(keys::LABEL_UID),
            Some(obj.metadata.uid.as_str())
        );
        assert_eq!(container.label(keys::LABEL_SERVICE), Some("web"));
        assert_eq!(
            container.label(keys::LABEL_INSTANCE),
            Some(h.store.instance_id())
        );
        assert!(h.has_event(Kind::Sandbox, "web", "Ready").await);
        assert!(status.started_at.is_some());
        assert_eq!(status.observed_generation, Some(1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_on_a_private_network_reach_each_other_by_name() {
    sandbox_test(|h| async move {
        h.create(
            Kind::Sandbox,
            "pair",
            json!({"network": "private", "services": [web_service(), idle_service("client")]}),
        )
        .await;
        let status = h.wait_phase("pair", SandboxPhase::Ready).await;
        let network = status
            .network_name
            .clone()
            .expect("a private network is named");
        assert!(network.starts_with("orcaops-default-pair-"), "{network}");
        let (code, out) = h
            .exec("pair", "client", "wget -q -O - http://web:8080/index.html")
            .await;
        assert_eq!((code, out.as_str()), (0, "hello"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_keeps_files_and_volumes_and_starting_restores_them() {
    sandbox_test(|h| async move {
        let shell = idle_service_with_data("shell");
        h.create(Kind::Sandbox, "keep", json!({"services": [shell]}))
            .await;
        h.wait_phase("keep", SandboxPhase::Ready).await;
        let before = h.container("keep", "shell").await;
        let (code, _) = h
            .exec(
                "keep",
                "shell",
                "echo volume > /data/f && echo layer > /root/g",
            )
            .await;
        assert_eq!(code, 0);

        h.edit(Kind::Sandbox, "keep", |o| {
            o.spec["state"] = json!("Stopped")
        })
        .await;
        h.wait_phase("keep", SandboxPhase::Stopped).await;
        let stopped = h.runtime.inspect(&before.id).await.unwrap().unwrap();
        assert!(
            matches!(stopped.state, ContainerState::Exited { .. }),
            "{stopped:?}"
        );
        assert!(h.has_event(Kind::Sandbox, "keep", "Stopping").await);
        assert!(h.has_event(Kind::Sandbox, "keep", "Stopped").await);

        h.edit(Kind::Sandbox, "keep", |o| {
            o.spec["state"] = json!("Running")
        })
        .await;
        let status = h.wait_phase("keep", SandboxPhase::Ready).await;
        assert_eq!(status.services[0].restarts, 0, "a start is not a restart");
        let after = h.container("keep", "shell").await;
        assert_eq!(after.id, before.id, "the same container, started again");
        let (_, out) = h.exec("keep", "shell", "cat /data/f /root/g").await;
        assert_eq!(out, "volume\nlayer");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_sandbox_removes_its_containers_network_and_volumes() {
    sandbox_test(|h| async move {
        let shell = idle_service_with_data("shell");
        let obj = h
            .create(
                Kind::Sandbox,
                "del",
                json!({"network": "private", "services": [shell]}),
            )
            .await;
        h.wait_phase("del", SandboxPhase::Ready).await;
        h.store
            .delete(&ObjectKey::new(Kind::Sandbox, "default", "del"))
            .await
            .unwrap();
        h.wait_nothing_owned(&obj.metadata.uid).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_service_is_restarted_and_counted() {
    sandbox_test(|h| async move {
        h.create(
            Kind::Sandbox,
            "phoenix",
            json!({"services": [idle_service("shell")]}),
        )
        .await;
        h.wait_phase("phoenix", SandboxPhase::Ready).await;
        let before = h.container("phoenix", "shell").await;
        let killed = std::process::Command::new("docker")
            .args(["kill", &before.id])
            .output()
            .expect("the docker CLI runs");
        assert!(killed.status.success(), "{killed:?}");
        let status = h
            .wait_sandbox("phoenix", "one restart, then Ready", |s| {
                s.services[0].restarts == 1 && s.phase == Some(SandboxPhase::Ready)
            })
            .await;
        let service = &status.services[0];
        assert!(service.last_restart_time.is_some());
        assert_eq!(service.next_restart_time, None);
        assert_eq!(h.container("phoenix", "shell").await.id, before.id);
        assert!(h.has_event(Kind::Sandbox, "phoenix", "ServiceDied").await);
        assert!(
            h.has_event(Kind::Sandbox, "phoenix", "ServiceRestarted")
                .await
        );
        let died = h.events(Kind::Sandbox, "phoenix").await;
        let died = died.iter().find(|e| e.reason == "ServiceDied").unwrap();
        assert!(died.message.contains("code 137"), "{}", died.message);
    })
    .await;
}
