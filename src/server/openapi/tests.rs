use std::collections::BTreeSet;

use super::schemas::{OBJECT_META, STATUS};
use super::*;

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.push(r.to_string());
                }
                refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.clone(), method.clone(), op));
        }
    }
    ops
}

#[test]
fn every_operation_has_a_unique_id_a_summary_and_a_description() {
    let document = build();
    assert_eq!(document["openapi"], "3.0.0");
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&document) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        assert!(op["summary"].is_string(), "{id} has no summary");
        assert!(op["description"].is_string(), "{id} has no description");
    }
    for id in [
        "listJobs",
        "listJobsInAllWorkspaces",
        "createJob",
        "readJob",
        "patchJob",
        "deleteJob",
        "readJobLog",
        "cancelJob",
        "listPolicies",
        "listEvents",
        "execInSandbox",
        "execInSandboxInteractive",
        "readSandboxFiles",
        "writeSandboxFiles",
        "stopSandbox",
        "startSandbox",
        "startWorkflowRun",
        "listWorkflowRuns",
        "rerunWorkflow",
        "approveWorkflowNode",
        "rejectWorkflowNode",
        "cancelWorkflow",
    ] {
        assert!(ids.contains(id), "missing {id}; have {ids:?}");
    }
}

#[test]
fn every_reference_resolves() {
    let document = build();
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "$ref {r} does not resolve"
        );
    }
}

/// kubectl decides from the PATCH operations whether the server validates fields itself
/// (then it never fetches OpenAPI v2) and whether to send a strategic merge patch.
#[test]
fn patch_operations_tell_kubectl_what_it_needs() {
    let document = build();
    let mut seen = BTreeSet::new();
    for (path, method, op) in operations(&document) {
        if method != "patch" {
            continue;
        }
        let gvk = &op["x-kubernetes-group-version-kind"];
        assert_eq!(gvk["group"], "orcaops.dev", "{path}");
        assert_eq!(gvk["version"], "v1alpha1", "{path}");
        seen.insert(gvk["kind"].as_str().unwrap().to_string());
        let params = op["parameters"].as_array().unwrap();
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
            "{path}"
        );
        let content = op["requestBody"]["content"].as_object().unwrap();
        assert!(content.contains_key("application/merge-patch+json"));
        assert!(!content.contains_key("application/strategic-merge-patch+json"));
    }
    assert_eq!(seen.len(), Kind::ALL.len());
}

#[test]
fn kind_schemas_come_from_the_crds_and_carry_their_gvk() {
    let document = build();
    let job = &document["components"]["schemas"]["dev.orcaops.v1alpha1.Job"];
    assert_eq!(
        job["x-kubernetes-group-version-kind"],
        json!([{ "group": "orcaops.dev", "version": "v1alpha1", "kind": "Job" }])
    );
    assert!(
        job.pointer("/properties/spec/properties/steps/items/properties/run")
            .is_some()
    );
    assert!(job.pointer("/properties/metadata/allOf/0/$ref").is_some());
    let meta = &document["components"]["schemas"][OBJECT_META];
    assert!(meta.pointer("/properties/labels").is_some());
    assert!(
        document["components"]["schemas"][STATUS]
            .pointer("/properties/details")
            .is_some()
    );
}
