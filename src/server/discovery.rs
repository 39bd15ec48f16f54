//! Discovery documents (`/api`, `/apis`, `/apis/orcaops.dev[/v1alpha1]`, `/version`): what
//! kubectl reads first to learn which resources a server has, their verbs and short names.
//!
//! They are built from the CRDs, so `kubectl api-resources` against local mode shows the
//! same names, short names and categories as on a cluster with the CRDs installed.

use std::sync::OnceLock;

use axum::Json;
use serde_json::{Value, json};

use crate::resources::{API_VERSION, GROUP, Kind, VERSION, registry};

/// Every verb kubectl needs on a main resource.
const VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The subresources the router serves for `kind`, with their verbs.
fn subresources(kind: Kind) -> Vec<(&'static str, &'static [&'static str])> {
    let mut subs: Vec<(&str, &[&str])> = Vec::new();
    if kind.namespaced() {
        subs.push(("status", &["get"]));
    }
    if kind == Kind::Job {
        subs.extend([
            ("log", &["get"][..]),
            ("cancel", &["create"][..]),
            ("rerun", &["create"][..]),
            ("runs", &["get"][..]),
        ]);
    }
    if kind == Kind::Workflow {
        subs.extend([
            ("runs", &["create", "get"][..]),
            ("rerun", &["create"][..]),
            ("approve", &["create"][..]),
            ("reject", &["create"][..]),
            ("cancel", &["create"][..]),
        ]);
    }
    if kind == Kind::Sandbox {
        subs.extend([
            ("exec", &["create", "get"][..]),
            ("files", &["get", "update"][..]),
            ("stop", &["create"][..]),
            ("start", &["create"][..]),
        ]);
    }
    subs
}

/// `GET /apis/orcaops.dev/v1alpha1`: an APIResourceList.
pub(super) fn resource_list() -> Value {
    let mut resources = Vec::new();
    for kind in Kind::ALL {
        resources.push(json!({
            "name": kind.plural(),
            "singularName": kind.singular(),
            "namespaced": kind.namespaced(),
            "kind": kind.as_str(),
            "verbs": VERBS,
            "shortNames": registry::crd_short_names(kind),
            "categories": registry::categories(kind),
        }));
        for (sub, verbs) in subresources(kind) {
            resources.push(json!({
                "name": format!("{}/{sub}", kind.plural()),
                "singularName": "",
                "namespaced": kind.namespaced(),
                "kind": kind.as_str(),
                "verbs": verbs,
            }));
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": resources,
    })
}

fn group() -> Value {
    let version = json!({ "groupVersion": API_VERSION, "version": VERSION });
    json!({
        "name": GROUP,
        "versions": [version.clone()],
        "preferredVersion": version,
    })
}

pub(super) async fn api_group_list() -> Json<Value> {
    Json(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": [group()] }))
}

pub(super) async fn api_group() -> Json<Value> {
    let mut group = group();
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    Json(group)
}

pub(super) async fn api_resources() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(resource_list).clone())
}

/// `GET /api`: the core group. Its resources are `events` (read-only), so that
/// `kubectl get events` works against local mode, and `secrets` (see `server::secrets`).
pub(super) async fn core_versions() -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    }))
}

pub(super) async fn core_resources() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [{
            "name": "events",
            "singularName": "event",
            "namespaced": true,
            "kind": "Event",
            "verbs": ["list"],
            "shortNames": ["ev"],
        }, {
            "name": "secrets",
            "singularName": "secret",
            "namespaced": true,
            "kind": "Secret",
            "verbs": ["create", "delete", "get", "list", "patch", "update"],
        }],
    }))
}

/// `GET /version`, shaped as Kubernetes' version.Info.
pub(super) async fn version() -> Json<Value> {
    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Json(json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{version}"),
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_list_carries_short_names_categories_and_subresources() {
        let list = resource_list();
        let resources = list["resources"].as_array().unwrap();
        let jobs = resources.iter().find(|r| r["name"] == "jobs").unwrap();
        assert_eq!(jobs["shortNames"], json!(["ojob"]));
        assert_eq!(jobs["categories"], json!(["orcaops"]));
        assert_eq!(jobs["namespaced"], json!(true));
        assert_eq!(jobs["verbs"].as_array().unwrap().len(), 7);
        assert!(resources.iter().any(|r| r["name"] == "jobs/log"));
        assert!(resources.iter().any(|r| r["name"] == "jobs/status"));
        let policies = resources.iter().find(|r| r["name"] == "policies").unwrap();
        assert_eq!(policies["namespaced"], json!(false));
        assert_eq!(policies["shortNames"], json!(["opol"]));
    }
}
