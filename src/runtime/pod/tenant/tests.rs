use super::*;
use crate::resources::common::Resources;
use crate::resources::workspace::{Member, Quotas, WorkspaceDefaults};

fn owner() -> TenantOwner {
    TenantOwner {
        name: "team-a".into(),
        uid: "ws-uid".into(),
    }
}

fn member(name: &str, role: Role) -> Member {
    Member {
        name: name.into(),
        role,
    }
}

#[test]
fn a_full_workspace_becomes_its_namespace_quota_limits_isolation_and_bindings() {
    let spec = WorkspaceSpec {
        quotas: Some(Quotas {
            concurrent_jobs: Some(4),
            sandboxes: Some(2),
            cpu: Some("4".into()),
            memory: Some("8Gi".into()),
            runs_per_hour: Some(100),
        }),
        members: vec![
            member("alice@example.com", Role::Admin),
            member("bob", Role::Viewer),
            member("ci-bot", Role::Developer),
        ],
        defaults: Some(WorkspaceDefaults {
            resources: Some(Resources {
                cpu: Some("500m".into()),
                memory: Some("256Mi".into()),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    insta::assert_yaml_snapshot!(build_tenant(&owner(), &spec));
}

#[test]
fn a_bare_workspace_is_a_namespace_and_its_isolation_only() {
    let tenant = build_tenant(&owner(), &WorkspaceSpec::default());
    assert_eq!(tenant.namespace.metadata.name.as_deref(), Some("team-a"));
    assert!(tenant.quota.is_none());
    assert!(tenant.limits.is_none());
    assert!(tenant.role_bindings.is_empty());
    let spec = tenant.isolation.spec.unwrap();
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
}

#[test]
fn a_cpu_quota_without_defaults_gives_containers_a_request_to_count() {
    let spec = WorkspaceSpec {
        quotas: Some(Quotas {
            cpu: Some("2".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tenant = build_tenant(&owner(), &spec);
    let hard = tenant.quota.unwrap().spec.unwrap().hard.unwrap();
    assert_eq!(hard.keys().collect::<Vec<_>>(), ["requests.cpu"]);
    let item = &tenant.limits.unwrap().spec.unwrap().limits[0];
    assert_eq!(
        item.default_request.as_ref().unwrap()["cpu"],
        Quantity(FALLBACK_CPU.into())
    );
    assert!(
        !item
            .default_request
            .as_ref()
            .unwrap()
            .contains_key("memory")
    );
    // Concurrent jobs without a sandboxes quota: pods are the jobs' alone.
    let jobs = build_tenant(
        &owner(),
        &WorkspaceSpec {
            quotas: Some(Quotas {
                concurrent_jobs: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    assert_eq!(
        jobs.quota.unwrap().spec.unwrap().hard.unwrap()["pods"],
        Quantity("3".into())
    );
}

#[test]
fn member_names_become_valid_binding_names_once_each() {
    let spec = WorkspaceSpec {
        members: vec![
            member("Alice.Smith@Example.com", Role::Developer),
            member("Alice.Smith@Example.com", Role::Developer),
            member("@@@", Role::Viewer),
        ],
        ..Default::default()
    };
    let names: Vec<String> = build_tenant(&owner(), &spec)
        .role_bindings
        .iter()
        .map(|b| b.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "orcaops-workspace-developer-alice-smith-example-com",
            "orcaops-workspace-viewer-my-name"
        ]
    );
}
