//! Snapshots of what Sandboxes become on a cluster (pod, Service, claims, policy), and
//! the properties a snapshot review could miss. Accept a deliberate change with
//! `INSTA_UPDATE=always cargo test --lib runtime::pod::sandbox` and read every changed
//! `.snap` before committing it.

use super::build::*;
use crate::resources::ObjectMeta;
use crate::resources::common::{EnvVar, Resources};
use crate::resources::sandbox::{
    EffectiveSandbox, ExpiryAction, HealthCheck, HttpCheck, SandboxNetwork, SandboxService,
    ServicePort, TcpCheck, VolumeMount,
};
use crate::runtime::sandbox::names::service_hash;

const UID: &str = "0123abcd-4567-89ef-0123-456789abcdef";
const INSTANCE: &str = "a1b2c3d4e5f6";

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: Some("team-a".into()),
        uid: UID.into(),
        generation: 1,
        ..Default::default()
    }
}

fn effective(services: Vec<SandboxService>, network: SandboxNetwork) -> EffectiveSandbox {
    EffectiveSandbox {
        services,
        idle_timeout_seconds: None,
        ttl_seconds: Some(3600),
        on_expiry: ExpiryAction::Stop,
        network,
        poolable: false,
    }
}

fn shell() -> SandboxService {
    SandboxService {
        name: "shell".into(),
        image: "busybox:1.36".into(),
        command: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    }
}

/// A web server with a port, a volume and an HTTP check, a database with a TCP check
/// and a volume of its own, and a worker that shares the web server's volume.
fn app() -> Vec<SandboxService> {
    vec![
        SandboxService {
            name: "web".into(),
            image: "nginx:1.27".into(),
            env: vec![EnvVar {
                name: "MODE".into(),
                value: "dev".into(),
                value_from: None,
            }],
            working_dir: Some("/srv".into()),
            ports: vec![ServicePort {
                container_port: 8080,
                name: Some("http".into()),
            }],
            health_check: Some(HealthCheck {
                http: Some(HttpCheck {
                    port: 8080,
                    path: Some("/healthz".into()),
                }),
                interval_seconds: Some(5),
                ..Default::default()
            }),
            volumes: vec![VolumeMount {
                name: "site".into(),
                mount_path: "/srv".into(),
            }],
            resources: Some(Resources {
                cpu: Some("500m".into()),
                memory: Some("256Mi".into()),
            }),
            ..Default::default()
        },
        SandboxService {
            name: "db".into(),
            image: "redis:7".into(),
            command: vec!["redis-server".into(), "--port".into(), "6379".into()],
            ports: vec![ServicePort {
                container_port: 6379,
                name: None,
            }],
            health_check: Some(HealthCheck {
                tcp: Some(TcpCheck { port: 6379 }),
                timeout_seconds: Some(3),
                failure_threshold: Some(5),
                ..Default::default()
            }),
            volumes: vec![VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
            }],
            ..Default::default()
        },
        SandboxService {
            name: "worker".into(),
            image: "busybox:1.36".into(),
            command: vec!["sleep".into(), "infinity".into()],
            health_check: Some(HealthCheck {
                exec: Some(vec!["test".into(), "-d".into(), "/srv".into()]),
                ..Default::default()
            }),
            volumes: vec![VolumeMount {
                name: "site".into(),
                mount_path: "/srv".into(),
            }],
            ..Default::default()
        },
    ]
}

fn placement<'a>(meta: &'a ObjectMeta, effective: &'a EffectiveSandbox) -> SandboxPlacement<'a> {
    SandboxPlacement {
        meta,
        effective,
        instance: INSTANCE,
    }
}

#[test]
fn one_service_sandbox_pod() {
    let (m, e) = (
        meta("agent"),
        effective(vec![shell()], SandboxNetwork::None),
    );
    insta::assert_yaml_snapshot!(build_sandbox_pod(&placement(&m, &e)).unwrap());
}

#[test]
fn multi_service_sandbox_pod_with_ports_volumes_and_checks() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::Private));
    insta::assert_yaml_snapshot!(build_sandbox_pod(&placement(&m, &e)).unwrap());
}

#[test]
fn multi_service_sandbox_service() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::Private));
    insta::assert_yaml_snapshot!(build_sandbox_service(&placement(&m, &e)).unwrap());
}

#[test]
fn multi_service_sandbox_volume_claims() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::Private));
    insta::assert_yaml_snapshot!(build_sandbox_pvcs(&placement(&m, &e)));
}

#[test]
fn network_none_is_a_deny_all_policy() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::None));
    insta::assert_yaml_snapshot!(build_sandbox_network_policy(&placement(&m, &e)).unwrap());
}

#[test]
fn network_private_allows_ingress_to_the_declared_ports_only() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::Private));
    insta::assert_yaml_snapshot!(build_sandbox_network_policy(&placement(&m, &e)).unwrap());
}

#[test]
fn network_bridge_has_no_policy_and_no_aliases() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::Bridge));
    let p = placement(&m, &e);
    assert!(build_sandbox_network_policy(&p).is_none());
    let pod = build_sandbox_pod(&p).unwrap();
    assert!(pod.spec.unwrap().host_aliases.is_none());
}

#[test]
fn only_a_private_network_names_the_services_as_localhost() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::Private));
    let pod = build_sandbox_pod(&placement(&m, &e)).unwrap();
    let aliases = pod.spec.unwrap().host_aliases.unwrap();
    assert_eq!(aliases[0].ip, "127.0.0.1");
    assert_eq!(
        aliases[0].hostnames.as_deref().unwrap(),
        ["web", "db", "worker"]
    );
    let e = effective(app(), SandboxNetwork::None);
    let pod = build_sandbox_pod(&placement(&m, &e)).unwrap();
    assert!(pod.spec.unwrap().host_aliases.is_none());
}

#[test]
fn no_ports_no_service_no_volumes_no_claims() {
    let (m, e) = (
        meta("agent"),
        effective(vec![shell()], SandboxNetwork::Bridge),
    );
    let p = placement(&m, &e);
    assert!(build_sandbox_service(&p).is_none());
    assert!(build_sandbox_pvcs(&p).is_empty());
    assert!(
        build_sandbox_pod(&p)
            .unwrap()
            .spec
            .unwrap()
            .volumes
            .is_none()
    );
}

#[test]
fn a_shared_volume_is_one_claim_mounted_by_both_services() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::Private));
    let p = placement(&m, &e);
    let claims: Vec<String> = build_sandbox_pvcs(&p)
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(
        claims,
        [
            "orcaops-team-a-web-dev-0123abcd-data",
            "orcaops-team-a-web-dev-0123abcd-site"
        ]
    );
    let pod = build_sandbox_pod(&p).unwrap();
    let volumes = pod.spec.unwrap().volumes.unwrap();
    assert_eq!(volumes.len(), 2);
    let site = volumes.iter().find(|v| v.name == "site").unwrap();
    assert_eq!(
        site.persistent_volume_claim.as_ref().unwrap().claim_name,
        "orcaops-team-a-web-dev-0123abcd-site"
    );
}

#[test]
fn every_object_is_owned_by_the_sandbox_and_carries_its_labels() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::None));
    let p = placement(&m, &e);
    let mut metas = vec![
        build_sandbox_pod(&p).unwrap().metadata,
        build_sandbox_service(&p).unwrap().metadata,
        build_sandbox_network_policy(&p).unwrap().metadata,
    ];
    metas.extend(build_sandbox_pvcs(&p).into_iter().map(|c| c.metadata));
    for meta in metas {
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Sandbox", UID));
        assert_eq!(owner.controller, Some(true));
        let labels = meta.labels.unwrap();
        assert_eq!(labels["orcaops.dev/uid"], UID);
        assert_eq!(labels["orcaops.dev/kind"], "Sandbox");
        assert_eq!(labels["orcaops.dev/instance"], INSTANCE);
        assert_eq!(meta.namespace.as_deref(), Some("team-a"));
    }
}

#[test]
fn the_pod_carries_each_services_spec_hash() {
    let (m, e) = (meta("web-dev"), effective(app(), SandboxNetwork::Private));
    let pod = build_sandbox_pod(&placement(&m, &e)).unwrap();
    let annotations = pod.metadata.annotations.unwrap();
    for service in app() {
        assert_eq!(
            annotations[&format!("{SPEC_HASH_ANNOTATION}{}", service.name)],
            service_hash(&service, SandboxNetwork::Private)
        );
    }
}

#[test]
fn two_services_on_one_port_are_refused_with_the_fix() {
    let mut services = app();
    services[2].ports = vec![ServicePort {
        container_port: 8080,
        name: None,
    }];
    let (m, e) = (meta("web-dev"), effective(services, SandboxNetwork::Bridge));
    let err = build_sandbox_pod(&placement(&m, &e)).unwrap_err();
    assert_eq!(
        err,
        PlacementError::SharedPort {
            first: "web".into(),
            second: "worker".into(),
            port: 8080
        }
    );
    assert!(err.to_string().contains("give each its own containerPort"));
}

#[test]
fn names_are_dns_labels_and_the_service_falls_back_to_the_pod_name() {
    let m = meta("web-dev");
    assert_eq!(sandbox_pod_name(&m), "orcaops-team-a-web-dev-0123abcd");
    assert_eq!(sandbox_service_name(&m), "web-dev");
    assert_eq!(service_host(&m), "web-dev.team-a.svc");
    let dotted = meta("web.dev");
    assert_eq!(
        sandbox_service_name(&dotted),
        "orcaops-team-a-web-dev-0123abcd"
    );
    let long = meta(&"x".repeat(100));
    let name = sandbox_pod_name(&long);
    assert!(name.len() <= 63, "{name}");
    assert!(name.ends_with("-0123abcd"), "{name}");
    let digit = meta("1st");
    assert_eq!(
        sandbox_service_name(&digit),
        "orcaops-team-a-1st-0123abcd",
        "a Service name starts with a letter"
    );
}

/// A pod as the API serves it, with the sandbox labels (`name` None: a pool slot's).
fn labelled_pod(namespace: &str, pod: &str, sandbox: Option<&str>) -> serde_json::Value {
    let mut labels = serde_json::json!({
        "orcaops.dev/kind": "Sandbox",
        "orcaops.dev/instance": "kube-test",
        "orcaops.dev/workspace": namespace,
    });
    if let Some(name) = sandbox {
        labels["orcaops.dev/name"] = name.into();
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "namespace": namespace, "resourceVersion": "5", "labels": labels},
    })
}

#[tokio::test]
async fn the_pods_of_this_stores_sandboxes_wake_their_sandboxes() {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::StreamExt;

    use crate::kubeapi::mock::{Reply, mock_client};
    use crate::resources::{Kind, ObjectKey};
    use crate::runtime::PodRuntime;

    let (client, api) = mock_client();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut watches = 0;
    let server = api.route(seen.clone(), move |request| {
        if request.path != "/api/v1/pods" {
            return None;
        }
        let watching = request
            .query
            .iter()
            .any(|(n, v)| n == "watch" && v == "true");
        if !watching {
            return Some(Reply::Json(
                200,
                serde_json::json!({
                    "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "10"},
                    "items": [
                        labelled_pod("team-a", "orcaops-team-a-box-0123abcd", Some("box")),
                        labelled_pod("team-a", "orcaops-pool-team-a-shell-x1", None),
                    ],
                }),
            ));
        }
        watches += 1;
        (watches == 1).then(|| {
            Reply::Lines(vec![serde_json::json!({
                "type": "MODIFIED",
                "object": labelled_pod("team-b", "orcaops-team-b-web-4567cdef", Some("web")),
            })])
        })
    });
    let mut changes = PodRuntime::new(client).sandbox_pod_changes("kube-test");
    let mut keys = Vec::new();
    while keys.len() < 2 {
        let key = tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("a change within 5 s")
            .expect("the stream goes on");
        keys.push(key);
    }
    server.abort();
    assert_eq!(
        keys,
        [
            ObjectKey::new(Kind::Sandbox, "team-a", "box"),
            ObjectKey::new(Kind::Sandbox, "team-b", "web"),
        ],
        "the pool slot's pod wakes nothing"
    );
    let seen = seen.lock().unwrap();
    let selector = seen[0]
        .query
        .iter()
        .find(|(n, _)| n == "labelSelector")
        .map(|(_, v)| v.clone());
    assert_eq!(
        selector.as_deref(),
        Some("orcaops.dev/kind=Sandbox,orcaops.dev/instance=kube-test"),
        "only this store's sandbox pods"
    );
}
