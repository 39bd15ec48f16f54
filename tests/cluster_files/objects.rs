//! Reading Kubernetes YAML into untyped and typed objects, and the checks that the
//! manifests and the rendered chart share.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the operator keeps its run records, logs and artifacts.
pub const DATA_DIR: &str = "/var/lib/orcaops";

/// One YAML document and where it came from.
pub struct Doc {
    pub origin: String,
    pub value: Value,
}

impl Doc {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// Deserializes into the typed Kubernetes struct, failing on any field that does not
    /// survive the round trip: k8s-openapi ignores fields it does not know, so without this
    /// a misspelt one (`readOnlyRootFileSystem`) would pass unnoticed.
    pub fn typed<T: DeserializeOwned + Serialize>(&self) -> T {
        let typed: T = serde_json::from_value(self.value.clone()).unwrap_or_else(|e| {
            panic!(
                "{}: not a valid {}: {e}",
                self.origin,
                std::any::type_name::<T>()
            )
        });
        let back = serde_json::to_value(&typed).expect("a typed object serializes");
        let mut unknown = Vec::new();
        dropped_fields(&self.value, &back, "", &mut unknown);
        assert!(
            unknown.is_empty(),
            "{}: fields the Kubernetes API does not know (misspelt or misplaced?): {unknown:?}",
            self.origin
        );
        typed
    }
}

/// Paths present in `original` but gone from `kept`.
fn dropped_fields(original: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (original, kept) {
        (Value::Object(original), Value::Object(kept)) => {
            for (key, value) in original.iter().filter(|(_, v)| !v.is_null()) {
                let path = format!("{path}.{key}");
                match kept.get(key) {
                    Some(kept) => dropped_fields(value, kept, &path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Array(original), Value::Array(kept)) => {
            for (i, (value, kept)) in original.iter().zip(kept).enumerate() {
                dropped_fields(value, kept, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Every non-empty document of a multi-document YAML text.
pub fn documents(origin: &str, text: &str) -> Vec<Doc> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text)
        .unwrap_or_else(|e| panic!("{origin} is not valid YAML: {e}"));
    values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(i, value)| Doc {
            origin: format!("{origin} (document {})", i + 1),
            value,
        })
        .collect()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Checks that a document names itself, and that it deserializes into its typed struct.
pub fn check_object(doc: &Doc) {
    for field in ["apiVersion", "kind"] {
        assert!(
            doc.value[field].as_str().is_some_and(|s| !s.is_empty()),
            "{}: no {field}",
            doc.origin
        );
    }
    assert!(!doc.name().is_empty(), "{}: no metadata.name", doc.origin);
    match doc.kind() {
        "Namespace" => drop(doc.typed::<Namespace>()),
        "CustomResourceDefinition" => drop(doc.typed::<CustomResourceDefinition>()),
        "ServiceAccount" => drop(doc.typed::<ServiceAccount>()),
        "ClusterRole" => drop(doc.typed::<ClusterRole>()),
        "ClusterRoleBinding" => drop(doc.typed::<ClusterRoleBinding>()),
        "Role" => drop(doc.typed::<Role>()),
        "RoleBinding" => drop(doc.typed::<RoleBinding>()),
        "Deployment" => drop(doc.typed::<Deployment>()),
        "Service" => drop(doc.typed::<Service>()),
        "ConfigMap" => drop(doc.typed::<ConfigMap>()),
        "ValidatingWebhookConfiguration" => drop(doc.typed::<ValidatingWebhookConfiguration>()),
        // cert-manager's kinds: k8s-openapi has no struct for them.
        "Issuer" | "Certificate" => assert_eq!(
            doc.value["apiVersion"], "cert-manager.io/v1",
            "{}",
            doc.origin
        ),
        // The Prometheus Operator's kind: k8s-openapi has no struct for it.
        "ServiceMonitor" => assert_eq!(
            doc.value["apiVersion"], "monitoring.coreos.com/v1",
            "{}",
            doc.origin
        ),
        other => panic!(
            "{}: no typed check for kind {other}; add one to check_object",
            doc.origin
        ),
    }
}

/// The one document of a kind (failing when there are none or several).
pub fn one<'a>(docs: &'a [Doc], kind: &str) -> &'a Doc {
    let found: Vec<&Doc> = docs.iter().filter(|d| d.kind() == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind}, found {}",
        found.len()
    );
    found[0]
}

pub fn kinds(docs: &[Doc]) -> BTreeSet<&str> {
    docs.iter().map(Doc::kind).collect()
}

/// The operator's pod and its one container.
pub fn operator_pod(deployment: &Deployment) -> (&PodSpec, &Container) {
    let pod = deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("the Deployment has a pod template");
    assert_eq!(pod.containers.len(), 1, "one container: the operator");
    (pod, &pod.containers[0])
}

/// The hardening every deployment of the operator must keep: non-root, read-only root
/// filesystem, no capabilities, no privilege escalation, the runtime's seccomp profile.
pub fn check_hardened(pod: &PodSpec, container: &Container) {
    let pod_security = pod.security_context.clone().unwrap_or_default();
    let security = container.security_context.clone().unwrap_or_default();
    let run_as_non_root = security.run_as_non_root.or(pod_security.run_as_non_root);
    assert_eq!(run_as_non_root, Some(true), "runAsNonRoot");
    let uid = security.run_as_user.or(pod_security.run_as_user);
    assert!(
        uid.is_some_and(|u| u != 0),
        "runAsUser must be set and not 0"
    );
    let seccomp = security.seccomp_profile.or(pod_security.seccomp_profile);
    assert_eq!(
        seccomp.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault"),
        "seccompProfile"
    );
    assert_eq!(
        security.read_only_root_filesystem,
        Some(true),
        "readOnlyRootFilesystem"
    );
    assert_eq!(
        security.allow_privilege_escalation,
        Some(false),
        "allowPrivilegeEscalation"
    );
    assert_ne!(security.privileged, Some(true), "privileged");
    let capabilities = security.capabilities.unwrap_or_default();
    assert_eq!(
        capabilities.drop,
        Some(vec!["ALL".to_string()]),
        "capabilities.drop"
    );
    assert_eq!(capabilities.add, None, "no capability is added back");
}

/// The command line, the probes on the metrics port, and the data dir on a volume.
pub fn check_runs_the_operator(pod: &PodSpec, container: &Container, metrics_port: i32) {
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(
        args.first().map(String::as_str),
        Some("operator"),
        "args: {args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == ["--data-dir", DATA_DIR]),
        "args pass --data-dir {DATA_DIR}: {args:?}"
    );
    assert_eq!(
        container_port(container, "metrics"),
        Some(metrics_port),
        "the metrics port"
    );
    for (probe, path) in [
        (&container.liveness_probe, "/healthz"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("no HTTP probe for {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        let port = match &get.port {
            IntOrString::Int(port) => Some(*port),
            IntOrString::String(name) => container_port(container, name),
        };
        assert_eq!(port, Some(metrics_port), "the {path} probe's port");
    }
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == DATA_DIR)
        .unwrap_or_else(|| panic!("no volume mounted at {DATA_DIR}"));
    assert!(
        pod.volumes.iter().flatten().any(|v| v.name == mount.name),
        "the data dir's volume {} is not in the pod",
        mount.name
    );
}

pub fn container_port(container: &Container, name: &str) -> Option<i32> {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
}

/// The Service selects the operator's pods, and each of its ports (name, port) reaches a
/// named port of the container.
pub fn check_service(service: &Service, deployment: &Deployment, expected: &[(&str, i32)]) {
    let spec = service.spec.as_ref().expect("the Service has a spec");
    let pod_labels = deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = spec.selector.clone().unwrap_or_default();
    assert!(!selector.is_empty(), "the Service has a selector");
    for (key, value) in &selector {
        assert_eq!(
            pod_labels.get(key),
            Some(value),
            "the Service selects {key}={value}, which the pods do not carry"
        );
    }
    let (_, container) = operator_pod(deployment);
    let ports: Vec<(&str, i32)> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref().unwrap_or_default(), p.port))
        .collect();
    assert_eq!(ports, expected, "the Service's ports");
    for port in spec.ports.iter().flatten() {
        // Without a targetPort, the Service forwards to the same port number.
        let target = port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port));
        let reaches = match &target {
            IntOrString::String(name) => container_port(container, name).is_some(),
            IntOrString::Int(n) => container
                .ports
                .iter()
                .flatten()
                .any(|p| p.container_port == *n),
        };
        assert!(
            reaches,
            "the Service's port {:?} reaches no container port",
            port.name
        );
    }
}
