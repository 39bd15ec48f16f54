//! The files that put orcaops on a cluster, checked without one: the plain manifests, the
//! Helm chart (rendered by a small test-only renderer), the Dockerfile, and the CRDs'
//! schemas against the API server's rules for structural schemas.

#[path = "cluster_files/chart.rs"]
mod chart;
#[path = "cluster_files/objects.rs"]
mod objects;
#[path = "cluster_files/render.rs"]
mod render;
#[path = "cluster_files/structural.rs"]
mod structural;

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use orcaops::resources::{Kind, crds_yaml};
use serde_json::{Value, json};

use chart::load_chart;
use objects::{Doc, check_object, documents, one, read};

const NAMESPACE: &str = "orcaops-system";
/// The Lease the operator takes for leader election, in its own namespace.
const LEASE: &str = "orcaops-operator";
/// A kind being added beside the five of `Kind::ALL`; the ClusterRole grants it already.
const SANDBOX_TEMPLATES: &str = "sandboxtemplates";
/// The ClusterRoles a Workspace's members are bound to, by the names the operator uses.
const WORKSPACE_ROLES: [&str; 3] = [
    "orcaops-workspace-admin",
    "orcaops-workspace-developer",
    "orcaops-workspace-viewer",
];
const REGENERATE: &str = "regenerate with `cargo run -- crds > crds/orcaops.dev.yaml && cp crds/orcaops.dev.yaml manifests/01-crds.yaml && cp crds/orcaops.dev.yaml charts/orcaops/crds/orcaops.dev.yaml`";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document of every file in manifests/, in file order.
fn manifests() -> Vec<Doc> {
    let dir = root().join("manifests");
    // `kubectl apply -f manifests/` reads the files of the directory, not those of its
    // subdirectories (manifests/webhook/ is applied on its own).
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.is_dir())
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        assert!(
            file.extension().is_some_and(|e| e == "yaml"),
            "{}: manifests/ holds only .yaml files (kubectl apply -f reads them all)",
            file.display()
        );
        let origin = format!("manifests/{}", file.file_name().unwrap().to_string_lossy());
        let file_docs = documents(&origin, &read(&file));
        assert!(!file_docs.is_empty(), "{origin} holds no document");
        docs.extend(file_docs);
    }
    docs
}

#[test]
fn every_manifest_parses_into_its_typed_kubernetes_object() {
    let docs = manifests();
    for doc in &docs {
        check_object(doc);
    }
    let expected: BTreeSet<&str> = [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    ]
    .into();
    assert_eq!(objects::kinds(&docs), expected);
    assert_eq!(one(&docs, "Namespace").name(), NAMESPACE);
    for doc in &docs {
        let cluster_scoped = [
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        ];
        if !cluster_scoped.contains(&doc.kind()) {
            assert_eq!(
                doc.value["metadata"]["namespace"], NAMESPACE,
                "{}: every namespaced object belongs in {NAMESPACE}",
                doc.origin
            );
        }
    }
}

#[test]
fn crd_copies_are_fresh() {
    let expected = crds_yaml();
    for copy in [
        "manifests/01-crds.yaml",
        "charts/orcaops/crds/orcaops.dev.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(copy)).unwrap_or_default();
        assert!(text == expected, "{copy} is stale or missing: {REGENERATE}");
    }
}

/// Every (API group, resource, verb) a set of rules grants; no rule may use `*` or
/// non-resource URLs. A rule limited to some names counts as a grant of the whole resource,
/// which errs on the side of finding too much.
fn grants(rules: &[PolicyRule], origin: &str) -> BTreeSet<(String, String, String)> {
    let mut grants = BTreeSet::new();
    for rule in rules {
        assert!(rule.non_resource_urls.is_none(), "{origin}: {rule:?}");
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for word in groups.iter().chain(&resources).chain(&rule.verbs) {
            assert!(!word.contains('*'), "{origin}: `{word}` grants too much");
        }
        for group in &groups {
            for resource in &resources {
                for verb in &rule.verbs {
                    grants.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    grants
}

/// What the operator needs across the cluster; manifests/03-clusterrole.yaml says why.
fn needed_cluster_grants() -> BTreeSet<(String, String, String)> {
    let mut needed = BTreeSet::new();
    let mut grant = |group: &str, resource: &str, verbs: &[&str]| {
        for verb in verbs {
            needed.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    };
    let plurals = Kind::ALL
        .iter()
        .map(|k| k.plural())
        .chain([SANDBOX_TEMPLATES]);
    for plural in plurals {
        let all = [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ];
        grant("orcaops.dev", plural, &all);
        grant(
            "orcaops.dev",
            &format!("{plural}/status"),
            &["get", "update", "patch"],
        );
        grant("orcaops.dev", &format!("{plural}/finalizers"), &["update"]);
    }
    let read_create_delete = ["get", "list", "watch", "create", "delete"];
    grant("", "pods", &read_create_delete);
    grant("", "pods/log", &["get"]);
    grant("", "pods/exec", &["get", "create"]);
    grant("", "services", &read_create_delete);
    grant("", "persistentvolumeclaims", &read_create_delete);
    grant("", "events", &["create", "patch"]);
    grant("events.k8s.io", "events", &["create", "patch", "list"]);
    grant(
        "networking.k8s.io",
        "networkpolicies",
        &["get", "list", "watch", "create", "patch", "delete"],
    );
    grant(
        "",
        "namespaces",
        &["get", "list", "watch", "create", "patch"],
    );
    grant("", "resourcequotas", &["get", "create", "patch", "delete"]);
    grant("", "limitranges", &["get", "create", "patch", "delete"]);
    grant(
        "rbac.authorization.k8s.io",
        "rolebindings",
        &["get", "list", "create", "patch", "delete"],
    );
    grant("rbac.authorization.k8s.io", "clusterroles", &["bind"]);
    grant("", "secrets", &["get"]);
    needed
}

/// The ClusterRole grants what the operator needs and nothing else.
fn check_cluster_role(role: &ClusterRole, origin: &str) {
    let granted = grants(role.rules.as_deref().unwrap_or_default(), origin);
    // `bind` reaches the members' roles only, never any ClusterRole.
    for rule in role.rules.as_deref().unwrap_or_default() {
        if rule.verbs.contains(&"bind".to_string()) {
            let mut names = rule.resource_names.clone().unwrap_or_default();
            names.sort();
            assert_eq!(names, WORKSPACE_ROLES, "{origin}: bind is limited to them");
        }
    }
    for kind in Kind::ALL {
        let plural = kind.plural();
        for (resource, verb) in [
            (plural.to_string(), "watch"),
            (plural.to_string(), "patch"),
            (format!("{plural}/status"), "patch"),
            (format!("{plural}/finalizers"), "update"),
        ] {
            let grant = ("orcaops.dev".to_string(), resource, verb.to_string());
            assert!(granted.contains(&grant), "{origin}: {kind} needs {grant:?}");
        }
    }
    let needed = needed_cluster_grants();
    let extra: Vec<_> = granted.difference(&needed).collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{origin}: grants beyond what the operator needs: {extra:?}; needed but not granted: {missing:?}"
    );
}

/// The leader election Role: the Lease and nothing else.
fn check_lease_role(role: &Role, origin: &str) {
    let rules = role.rules.as_deref().unwrap_or_default();
    let granted = grants(rules, origin);
    let lease = |verb: &str| {
        (
            "coordination.k8s.io".to_string(),
            "leases".to_string(),
            verb.to_string(),
        )
    };
    assert_eq!(
        granted,
        BTreeSet::from([lease("get"), lease("create"), lease("update")]),
        "{origin}"
    );
    for rule in rules {
        if let Some(names) = &rule.resource_names {
            assert_eq!(names, &[LEASE], "{origin}: the Lease is named {LEASE}");
        }
    }
}

#[test]
fn the_cluster_role_grants_exactly_what_the_operator_needs() {
    let docs = manifests();
    let role = operator_role(&docs);
    check_cluster_role(&role.typed(), &role.origin);
    let lease_role = one(&docs, "Role");
    check_lease_role(&lease_role.typed(), &lease_role.origin);
}

#[test]
fn the_bindings_give_the_roles_to_the_operators_service_account() {
    let docs = manifests();
    let account = one(&docs, "ServiceAccount");
    let cluster_binding: ClusterRoleBinding = one(&docs, "ClusterRoleBinding").typed();
    let binding: RoleBinding = one(&docs, "RoleBinding").typed();
    for (role_ref, subjects, role) in [
        (
            &cluster_binding.role_ref,
            &cluster_binding.subjects,
            operator_role(&docs),
        ),
        (&binding.role_ref, &binding.subjects, one(&docs, "Role")),
    ] {
        assert_eq!(role_ref.kind, role.kind());
        assert_eq!(
            role_ref.name,
            role.name(),
            "{} binds a role that is not there",
            role.origin
        );
        let subjects = subjects.as_deref().unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, account.name());
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
    }
    let deployment: Deployment = one(&docs, "Deployment").typed();
    let (pod, _) = objects::operator_pod(&deployment);
    assert_eq!(pod.service_account_name.as_deref(), Some(account.name()));
}

#[test]
fn the_deployment_runs_the_hardened_operator_and_the_service_reaches_it() {
    let docs = manifests();
    let deployment: Deployment = one(&docs, "Deployment").typed();
    let (pod, container) = objects::operator_pod(&deployment);
    objects::check_hardened(pod, container);
    objects::check_runs_the_operator(pod, container, 9090);
    let args = container.args.clone().unwrap_or_default();
    assert!(args.contains(&"--leader-election".to_string()), "{args:?}");
    assert!(
        !args.contains(&"--api".to_string()),
        "the API is off unless asked for: {args:?}"
    );
    assert_eq!(
        container.image.as_deref(),
        Some(format!("orcaops:{}", env!("CARGO_PKG_VERSION")).as_str()),
        "the image is tagged with the crate's version"
    );
    let service: Service = one(&docs, "Service").typed();
    objects::check_service(&service, &deployment, &[("metrics", 9090)]);
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_orcaops_as_non_root() {
    let text = read(&root().join("Dockerfile"));
    let instructions = dockerfile_instructions(&text);
    let stages: Vec<usize> = (0..instructions.len())
        .filter(|&i| instructions[i].0 == "FROM")
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let builder = &instructions[stages[0]].1;
    assert!(builder.starts_with("rust:1-bookworm"), "builder: {builder}");
    assert!(
        instructions
            .iter()
            .any(|(op, args)| op == "RUN" && args.contains("cargo build --release --locked")),
        "the builder runs cargo build --release --locked"
    );
    let last = &instructions[*stages.last().unwrap()..];
    let user = last
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, args)| args.split(':').next().unwrap().to_string())
        .expect("the final stage sets a USER");
    assert!(user != "root" && user != "0", "USER {user}");
    // Kubernetes checks runAsNonRoot against a numeric user only.
    assert!(user.parse::<u32>().is_ok(), "USER {user} is numeric");
    let json_arg = |name: &str| -> Vec<String> {
        let (_, args) = last
            .iter()
            .find(|(op, _)| op == name)
            .unwrap_or_else(|| panic!("the final stage has no {name}"));
        serde_json::from_str(args).unwrap_or_else(|e| panic!("{name} {args}: not exec form: {e}"))
    };
    assert_eq!(json_arg("ENTRYPOINT"), ["/usr/local/bin/orcaops"]);
    assert_eq!(json_arg("CMD"), ["operator"]);

    let ignored = read(&root().join(".dockerignore"));
    let ignored: Vec<&str> = ignored.lines().map(str::trim).collect();
    for pattern in ["target/", ".git"] {
        assert!(
            ignored.contains(&pattern),
            ".dockerignore leaves out {pattern}"
        );
    }
}

/// (INSTRUCTION, arguments) of a Dockerfile, with continuation lines joined and comments
/// dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (op, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                instructions.push((op.to_ascii_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends in a continuation line"
    );
    instructions
}

/// Paths where a CRD may keep fields it does not describe, as "Kind .path". Such fields
/// escape validation and pruning, so each entry here must say why it needs to.
const PRESERVE_UNKNOWN_FIELDS_ALLOWED: &[&str] = &[
    // A matrix maps each axis to a list of values, and its reserved keys `include` and
    // `exclude` to lists of combinations (maps): one structural schema cannot type both
    // item shapes. orcaops' own reader (`resources::workflow::matrix`) types each one and
    // refuses anything else, locally and through the REST facade.
    "Workflow .spec.jobs[*].matrix{*}[*]",
];

#[test]
fn every_crd_schema_is_structural() {
    let mut violations = Vec::new();
    let mut preserved = BTreeSet::new();
    for kind in Kind::ALL {
        let crd = serde_json::to_value(kind.crd()).unwrap();
        let versions = crd["spec"]["versions"].as_array().expect("versions");
        for version in versions {
            let schema = &version["schema"]["openAPIV3Schema"];
            assert!(schema.is_object(), "{kind} {}: no schema", version["name"]);
            let findings = structural::check(schema);
            violations.extend(findings.violations.iter().map(|v| format!("{kind} {v}")));
            preserved.extend(
                findings
                    .preserve_unknown_fields
                    .iter()
                    .map(|p| format!("{kind} {p}")),
            );
        }
    }
    assert!(
        violations.is_empty(),
        "the API server would refuse these CRDs (not structural):\n{}",
        violations.join("\n")
    );
    let allowed: BTreeSet<String> = PRESERVE_UNKNOWN_FIELDS_ALLOWED
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        preserved, allowed,
        "x-kubernetes-preserve-unknown-fields appears where it is not expected (or no longer appears where the allow-list says); type the field, or add it to PRESERVE_UNKNOWN_FIELDS_ALLOWED with a reason"
    );
}

// --- The Helm chart ------------------------------------------------------------------------
/// Every option of values.yaml turned away from its default.
fn every_option_flipped() -> Value {
    json!({
        "serviceMonitor": { "enabled": true, "labels": { "release": "prometheus" } },
        "grafanaDashboard": { "enabled": true, "namespace": "monitoring", "labels": { "team": "ops" } },
        "api": { "enabled": true },
        "webhook": { "enabled": true, "certManager": { "enabled": true } },
        "persistence": { "existingClaim": "orcaops-data" },
        "leaderElection": { "enabled": false },
        "image": { "tag": "dev" },
        "fullnameOverride": "ops",
        "podAnnotations": { "example.com/note": "yes" },
        "imagePullSecrets": [{ "name": "registry" }],
        "nodeSelector": { "kubernetes.io/os": "linux" },
        "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "orcaops", "effect": "NoSchedule" }],
        "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{ "matchExpressions": [
                { "key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"] }
            ] }]
        } } }
    })
}

#[test]
fn chart_metadata_and_values_parse() {
    let chart = load_chart();
    assert_eq!(chart.metadata["ApiVersion"], "v2");
    assert_eq!(chart.metadata["Name"], "orcaops");
    assert_eq!(
        chart.metadata["AppVersion"],
        env!("CARGO_PKG_VERSION"),
        "appVersion follows the crate's version"
    );
    let values = &chart.values;
    assert_eq!(values["image"]["repository"], "orcaops");
    assert_eq!(values["replicaCount"], 1);
    assert_eq!(values["leaderElection"]["enabled"], true);
    assert_eq!(values["serviceMonitor"]["enabled"], false);
    assert_eq!(values["grafanaDashboard"]["enabled"], false);
    assert_eq!(values["metrics"]["port"], 9090);
    assert_eq!(values["api"]["service"]["port"], 8080);
    let templates: BTreeSet<&str> = chart.manifests.iter().map(String::as_str).collect();
    let expected = [
        "clusterrole.yaml",
        "dashboard-configmap.yaml",
        "deployment.yaml",
        "role.yaml",
        "service.yaml",
        "serviceaccount.yaml",
        "servicemonitor.yaml",
        "webhook.yaml",
        "workspace-roles.yaml",
    ];
    assert_eq!(templates, expected.into());
}

#[test]
fn chart_renders_with_the_default_values() {
    let chart = load_chart();
    let docs = chart.render(&json!({}));
    let kinds: Vec<&str> = objects::kinds(&docs).into_iter().collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment: Deployment = one(&docs, "Deployment").typed();
    let (pod, container) = objects::operator_pod(&deployment);
    objects::check_hardened(pod, container);
    objects::check_runs_the_operator(pod, container, 9090);
    let args = container.args.clone().unwrap_or_default();
    assert!(args.contains(&"--leader-election".to_string()), "{args:?}");
    assert!(
        !args.contains(&"--api".to_string()),
        "the API is off unless asked for: {args:?}"
    );
    let data = pod.volumes.iter().flatten().find(|v| v.name == "data");
    assert!(
        data.is_some_and(|v| v.empty_dir.is_some()),
        "an emptyDir by default"
    );
    let service: Service = one(&docs, "Service").typed();
    objects::check_service(&service, &deployment, &[("metrics", 9090)]);
    check_cluster_role(&operator_role(&docs).typed(), "the chart's ClusterRole");
    check_lease_role(&one(&docs, "Role").typed(), "the chart's Role");
    assert!(!chart.notes(&json!({})).contains("port-forward"));
}

#[test]
fn chart_with_the_api_serves_it_on_a_cluster_ip_and_says_it_has_no_authentication() {
    let chart = load_chart();
    let overrides = json!({"api": {"enabled": true, "port": 8181, "service": {"port": 80}}});
    let docs = chart.render(&overrides);
    let deployment: Deployment = one(&docs, "Deployment").typed();
    let (_, container) = objects::operator_pod(&deployment);
    let args = container.args.clone().unwrap_or_default();
    let api = args.iter().position(|a| a == "--api").expect("--api");
    assert_eq!(args[api + 1..api + 3], ["--api-addr", "0.0.0.0:8181"]);
    // Clients in the cluster name the Service in Host; the guard must answer to it.
    let service_name = one(&docs, "Service").value["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let namespace = one(&docs, "Service").value["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let allowed: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--allowed-host")
        .map(|w| w[1].as_str())
        .collect();
    for name in [
        service_name.clone(),
        format!("{service_name}.{namespace}"),
        format!("{service_name}.{namespace}.svc"),
        format!("{service_name}.{namespace}.svc.cluster.local"),
    ] {
        assert!(
            allowed.contains(&name.as_str()),
            "{name} not in {allowed:?}"
        );
    }
    let service: Service = one(&docs, "Service").typed();
    assert_eq!(
        service.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("ClusterIP")
    );
    let port = service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("api"))
        .expect("the api port");
    assert_eq!(port.port, 80);
    let notes = chart.notes(&overrides);
    assert!(notes.contains("no authentication"), "{notes}");
    assert!(notes.contains("port-forward"), "{notes}");
    // With standbys, run records and logs are only on the leader: the notes say so.
    assert!(notes.contains("standby answers 503"), "{notes}");
    assert!(!chart.notes(&json!({})).contains("no authentication"));
}

#[test]
fn chart_renders_with_every_option_flipped() {
    let chart = load_chart();
    let overrides = every_option_flipped();
    let docs = chart.render(&overrides);
    let kinds = objects::kinds(&docs);
    assert!(kinds.contains("ServiceMonitor"), "{kinds:?}");
    assert!(
        !kinds.contains("Role"),
        "no Lease Role without leader election"
    );
    check_dashboard_configmap(one(&docs, "ConfigMap"));
    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor.value["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor.value["spec"]["endpoints"][0]["port"], "metrics");

    let deployment: Deployment = one(&docs, "Deployment").typed();
    assert_eq!(deployment.metadata.name.as_deref(), Some("ops"));
    let strategy = deployment
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref());
    assert_eq!(
        strategy,
        Some("Recreate"),
        "a claim is released before the new pod starts"
    );
    let (pod, container) = objects::operator_pod(&deployment);
    objects::check_hardened(pod, container);
    objects::check_runs_the_operator(pod, container, 9090);
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.contains(&"--no-leader-election".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--api".to_string()), "{args:?}");
    assert_eq!(container.image.as_deref(), Some("orcaops:dev"));
    let data = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "data")
        .unwrap();
    let claim = data
        .persistent_volume_claim
        .as_ref()
        .map(|c| c.claim_name.as_str());
    assert_eq!(claim, Some("orcaops-data"));
    let node_selector = pod.node_selector.clone().unwrap_or_default();
    assert_eq!(node_selector["kubernetes.io/os"], "linux");
    assert_eq!(pod.tolerations.as_ref().map(Vec::len), Some(1));
    assert!(
        pod.affinity
            .as_ref()
            .is_some_and(|a| a.node_affinity.is_some())
    );

    let service: Service = one(&docs, "Service").typed();
    objects::check_service(
        &service,
        &deployment,
        &[("metrics", 9090), ("api", 8080), ("webhook", 443)],
    );
    check_webhook(&docs, "ops");
    let notes = chart.notes(&overrides);
    assert!(notes.contains("port-forward"), "{notes}");
    assert!(notes.contains("orcaops-data"), "{notes}");
}

/// The webhook as the chart renders it: the configuration calls the Service on a port
/// that reaches the operator's `--webhook-addr`, with the certificate it mounts, for our
/// four kinds' creates and updates; with cert-manager, the CA is injected from the
/// Certificate whose Secret the pod mounts.
fn check_webhook(docs: &[objects::Doc], fullname: &str) {
    let config: ValidatingWebhookConfiguration =
        one(docs, "ValidatingWebhookConfiguration").typed();
    let hook = &config.webhooks.as_ref().expect("webhooks")[0];
    assert_eq!(hook.admission_review_versions, ["v1"]);
    assert_eq!(hook.side_effects, "NoneOnDryRun");
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    let rule = &hook.rules.as_ref().expect("rules")[0];
    assert_eq!(
        rule.api_groups.as_deref(),
        Some(&["orcaops.dev".to_string()][..])
    );
    let resources: BTreeSet<&str> = rule
        .resources
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(
        resources,
        ["jobs", "workflows", "sandboxes", "sandboxtemplates"].into()
    );
    assert_eq!(
        rule.operations.as_deref(),
        Some(&["CREATE".to_string(), "UPDATE".to_string()][..])
    );
    let target = hook.client_config.service.as_ref().expect("a service");
    assert_eq!(target.path.as_deref(), Some("/validate"));
    let service: Service = one(docs, "Service").typed();
    assert_eq!(service.metadata.name.as_deref(), Some(target.name.as_str()));
    assert_eq!(
        service.metadata.namespace.as_deref(),
        Some(target.namespace.as_str())
    );
    let port = service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .find(|p| Some(p.port) == target.port)
        .expect("the Service has the port the webhook calls");
    assert_eq!(port.name.as_deref(), Some("webhook"));

    let deployment: Deployment = one(docs, "Deployment").typed();
    let (pod, container) = objects::operator_pod(&deployment);
    let args = container.args.clone().unwrap_or_default();
    let flag = |name: &str| {
        let at = args
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("{name} in {args:?}"));
        args[at + 1].clone()
    };
    let listen_port: i32 = flag("--webhook-addr")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let container_port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("webhook"))
        .expect("a webhook container port");
    assert_eq!(container_port.container_port, listen_port);
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| flag("--webhook-cert").starts_with(&m.mount_path))
        .expect("the certificate is on a mounted volume");
    assert!(flag("--webhook-key").starts_with(&mount.mount_path));
    let secret = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.secret.as_ref())
        .and_then(|s| s.secret_name.clone())
        .expect("the certificate's volume is a Secret");
    let certificate = one(docs, "Certificate");
    assert_eq!(certificate.value["spec"]["secretName"], secret.as_str());
    let namespace = &target.namespace;
    let dns = certificate.value["spec"]["dnsNames"].to_string();
    assert!(
        dns.contains(&format!("{fullname}.{namespace}.svc")),
        "{dns}"
    );
    let inject = &config.metadata.annotations.as_ref().expect("annotations")["cert-manager.io/inject-ca-from"];
    assert_eq!(inject, &format!("{namespace}/{}", certificate.name()));
}

#[test]
fn chart_with_the_webhook_and_its_own_secret_sets_the_ca_bundle() {
    let chart = load_chart();
    let overrides = json!({"webhook": {
        "enabled": true,
        "secretName": "my-webhook-tls",
        "caBundle": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
        "failurePolicy": "Ignore",
    }});
    let docs = chart.render(&overrides);
    let kinds = objects::kinds(&docs);
    assert!(
        !kinds.contains("Certificate") && !kinds.contains("Issuer"),
        "{kinds:?}"
    );
    let config: ValidatingWebhookConfiguration =
        one(&docs, "ValidatingWebhookConfiguration").typed();
    let hook = &config.webhooks.unwrap()[0];
    assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
    assert!(
        hook.client_config.ca_bundle.is_some(),
        "the caBundle given is set"
    );
    let deployment: Deployment = one(&docs, "Deployment").typed();
    let (pod, _) = objects::operator_pod(&deployment);
    let secret = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref())
        .and_then(|s| s.secret_name.clone());
    assert_eq!(secret.as_deref(), Some("my-webhook-tls"));
}

#[test]
fn the_webhook_manifests_parse_and_reach_the_operator() {
    let dir = root().join("manifests/webhook");
    let docs = documents(
        "manifests/webhook/webhook.yaml",
        &read(&dir.join("webhook.yaml")),
    );
    for doc in &docs {
        check_object(doc);
    }
    let config: ValidatingWebhookConfiguration =
        one(&docs, "ValidatingWebhookConfiguration").typed();
    let hook = &config.webhooks.unwrap()[0];
    let target = hook.client_config.service.as_ref().unwrap();
    let service: Service = one(&docs, "Service").typed();
    assert_eq!(service.metadata.name.as_deref(), Some(target.name.as_str()));
    assert_eq!(target.namespace, NAMESPACE);
    let plain_deployment: Deployment = one(&manifests(), "Deployment").typed();
    let pod_labels = plain_deployment
        .spec
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    for (key, value) in service.spec.unwrap().selector.unwrap() {
        assert_eq!(
            pod_labels.get(&key),
            Some(&value),
            "the Service selects the operator"
        );
    }
    assert_eq!(
        one(&docs, "Certificate").value["spec"]["secretName"],
        "orcaops-webhook-tls",
        "the Secret docs/policies.md mounts"
    );
}

/// The dashboard ConfigMap: labelled for Grafana's sidecar, holding the dashboard file
/// as it is, whose every query names metrics orcaops exports.
fn check_dashboard_configmap(configmap: &objects::Doc) {
    let value = &configmap.value;
    assert_eq!(value["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(value["metadata"]["labels"]["team"], "ops");
    assert_eq!(value["metadata"]["namespace"], "monitoring");
    let embedded = value["data"]["orcaops.json"]
        .as_str()
        .expect("data.orcaops.json");
    let file = std::fs::read_to_string(root().join("charts/orcaops/dashboards/orcaops.json"))
        .expect("charts/orcaops/dashboards/orcaops.json");
    assert_eq!(embedded.trim_end(), file.trim_end(), "the file, unchanged");
    let dashboard: Value = serde_json::from_str(embedded).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());

    // Every metric a query names is one orcaops exports (a renamed metric would leave
    // an empty panel behind).
    // A family is written once it has a sample: give each one.
    let metrics = orcaops::metrics::Metrics::new();
    let docker = orcaops::metrics::CallLatency::default();
    metrics.register_docker_calls(docker.clone());
    let took = std::time::Duration::from_millis(5);
    docker.observe("create_container", "answered", took);
    let kube = orcaops::metrics::CallLatency::default();
    metrics.register_kube_calls(kube.clone());
    kube.observe("list jobs", "answered", took);
    metrics.reconciled(Kind::Job, "ok", took);
    metrics.run_finished("default", "build", "Succeeded", took);
    metrics.request_served("GET", Some("/healthz"), 200, took);
    metrics.warm_pool_claimed(true, took);
    metrics.sample_warm_pools(|| vec![("default".into(), "py".into(), 1)]);
    let mut job = orcaops::resources::Object::new(Kind::Job, "default", "build", json!({}));
    job.metadata.uid = "u".into();
    metrics.object_changed(&job);
    // A run that ends with an anomaly, for orcaops_job_anomalies_total.
    job.metadata.resource_version = "1".into();
    job.status = json!({"phase": "Running", "startTime": "2026-03-01T12:00:00Z"});
    metrics.object_changed(&job);
    job.metadata.resource_version = "2".into();
    job.status = json!({"phase": "Failed", "startTime": "2026-03-01T12:00:00Z",
        "completionTime": "2026-03-01T12:00:01Z",
        "anomalies": [{"kind": "NewFailure", "run": 1, "observed": "", "baseline": "", "message": ""}]});
    metrics.object_changed(&job);
    let exported: BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(at) = rest.find("orcaops_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                let family = ["_bucket", "_count", "_sum", "_total"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name);
                assert!(
                    exported.contains(family),
                    "panel {:?} queries {name}, which orcaops does not export ({exported:?})",
                    panel["title"]
                );
            }
        }
    }
}

/// The chart and manifests/ install the same operator: same rules, same hardening.
/// The operator's ClusterRole, beside the members' roles.
fn operator_role(docs: &[Doc]) -> &Doc {
    let found: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.kind() == "ClusterRole" && !WORKSPACE_ROLES.contains(&d.name()))
        .collect();
    assert_eq!(found.len(), 1, "one ClusterRole of the operator");
    found[0]
}

/// The one `kind` of the operator (its ClusterRole among the members' roles).
fn the<'a>(docs: &'a [Doc], kind: &str) -> &'a Doc {
    if kind == "ClusterRole" {
        operator_role(docs)
    } else {
        one(docs, kind)
    }
}

/// The members' roles: each there once, each holding the one below it, none with `*`.
fn check_workspace_roles(docs: &[Doc], origin: &str) -> Vec<Value> {
    let role = |name: &str| -> BTreeSet<(String, String, String)> {
        let doc = docs
            .iter()
            .find(|d| d.kind() == "ClusterRole" && d.name() == name)
            .unwrap_or_else(|| panic!("{origin}: no ClusterRole {name}"));
        let typed: ClusterRole = doc.typed();
        grants(typed.rules.as_deref().unwrap_or_default(), origin)
    };
    let (viewer, developer, admin) = (
        role("orcaops-workspace-viewer"),
        role("orcaops-workspace-developer"),
        role("orcaops-workspace-admin"),
    );
    assert!(
        viewer.is_subset(&developer) && developer.is_subset(&admin),
        "{origin}"
    );
    let writes = |g: &BTreeSet<(String, String, String)>| {
        g.iter().any(|(_, r, v)| r == "jobs" && v == "create")
    };
    assert!(
        !writes(&viewer) && writes(&developer),
        "{origin}: viewers only read"
    );
    assert!(
        admin.iter().any(|(_, r, _)| r == "secrets")
            && !developer.iter().any(|(_, r, _)| r == "secrets"),
        "{origin}: only admins manage secrets"
    );
    WORKSPACE_ROLES
        .iter()
        .map(|name| {
            docs.iter()
                .find(|d| d.kind() == "ClusterRole" && d.name() == *name)
                .unwrap()
                .value["rules"]
                .clone()
        })
        .collect()
}

#[test]
fn the_members_roles_are_shipped_in_both_and_agree() {
    let plain = check_workspace_roles(&manifests(), "manifests/");
    let chart = check_workspace_roles(&load_chart().render(&json!({})), "the chart");
    assert_eq!(
        plain, chart,
        "the chart's member roles differ from manifests/"
    );
    // The names the operator binds to.
    for role in [
        orcaops::resources::workspace::Role::Admin,
        orcaops::resources::workspace::Role::Developer,
        orcaops::resources::workspace::Role::Viewer,
    ] {
        assert!(WORKSPACE_ROLES.contains(&orcaops::runtime::pod::tenant::cluster_role(role)));
    }
}

#[test]
fn chart_agrees_with_the_manifests() {
    let rendered = load_chart().render(&json!({}));
    let plain = manifests();
    for kind in ["ClusterRole", "Role"] {
        assert_eq!(
            the(&rendered, kind).value["rules"],
            the(&plain, kind).value["rules"],
            "the chart's {kind} differs from manifests/"
        );
    }
    let chart_deployment: Deployment = one(&rendered, "Deployment").typed();
    let plain_deployment: Deployment = one(&plain, "Deployment").typed();
    let (chart_pod, chart_container) = objects::operator_pod(&chart_deployment);
    let (plain_pod, plain_container) = objects::operator_pod(&plain_deployment);
    assert_eq!(chart_pod.security_context, plain_pod.security_context);
    assert_eq!(chart_pod.volumes, plain_pod.volumes);
    assert_eq!(chart_container.image, plain_container.image);
    assert_eq!(
        chart_container.security_context,
        plain_container.security_context
    );
    assert_eq!(chart_container.resources, plain_container.resources);
    assert_eq!(chart_container.ports, plain_container.ports);
    assert_eq!(chart_container.env, plain_container.env);
    assert_eq!(chart_container.volume_mounts, plain_container.volume_mounts);
    assert_eq!(
        chart_container.liveness_probe,
        plain_container.liveness_probe
    );
    assert_eq!(
        chart_container.readiness_probe,
        plain_container.readiness_probe
    );
}
