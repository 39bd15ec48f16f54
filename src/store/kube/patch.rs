//! The pure half of the writes: the bodies of server-side apply and JSON patches, and the
//! comparison that lets an apply which would change nothing send nothing.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Map, Value, json};

use crate::resources::{API_VERSION, Object, ObjectKey, keys};

/// The field manager of declarative sources (the folder, `orcaops sync`). Server-side
/// apply removes what this manager set before and no longer declares, and leaves alone
/// what others (kubectl, the controllers) set.
pub const SYNC_MANAGER: &str = "orcaops-sync";
/// The field manager of status writes by the controllers.
pub const STATUS_MANAGER: &str = "orcaops";

/// What a source declares, as a server-side apply body: name, namespace, labels,
/// annotations and spec, nothing else. Control annotations the stored object has and the
/// declaration lacks are carried over, as `LocalStore::apply` keeps them: re-applying a
/// file must not withdraw a cancel request.
pub(super) fn declared(obj: &Object, existing: Option<&Object>) -> Object {
    let mut declared = Object::new(
        obj.kind,
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        &obj.metadata.name,
        obj.spec.clone(),
    );
    declared.metadata.labels = obj.metadata.labels.clone();
    declared.metadata.annotations = obj.metadata.annotations.clone();
    if let Some(existing) = existing {
        for control in keys::CONTROL {
            if let Some(value) = existing.metadata.annotations.get(*control) {
                declared
                    .metadata
                    .annotations
                    .entry((*control).to_string())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    declared
}

/// The apply body of a declaration (see [`declared`]).
pub(super) fn apply_body(declared: &Object) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(declared.metadata.name));
    if let Some(namespace) = &declared.metadata.namespace {
        metadata.insert("namespace".into(), json!(namespace));
    }
    // Absent rather than empty: either way what this manager set before is removed.
    if !declared.metadata.labels.is_empty() {
        metadata.insert("labels".into(), json!(declared.metadata.labels));
    }
    if !declared.metadata.annotations.is_empty() {
        metadata.insert("annotations".into(), json!(declared.metadata.annotations));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": declared.kind,
        "metadata": metadata,
        "spec": declared.spec,
    })
}

/// The label and annotation keys a field manager owns through server-side apply.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Owned {
    pub labels: BTreeSet<String>,
    pub annotations: BTreeSet<String>,
}

impl Owned {
    /// Reads `managedFields` (fieldsV1: `{"f:metadata": {"f:labels": {"f:team": {}}}}`).
    pub fn by(manager: &str, managed: &[ManagedFieldsEntry]) -> Owned {
        let mut owned = Owned::default();
        let entries = managed.iter().filter(|entry| {
            entry.manager.as_deref() == Some(manager) && entry.operation.as_deref() == Some("Apply")
        });
        for entry in entries {
            let Some(fields) = entry.fields_v1.as_ref().map(|f| &f.0) else {
                continue;
            };
            let names = |section: &str| -> Vec<String> {
                fields
                    .pointer(&format!("/f:metadata/f:{section}"))
                    .and_then(Value::as_object)
                    .map(|keys| {
                        keys.keys()
                            .filter_map(|k| k.strip_prefix("f:"))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            owned.labels.extend(names("labels"));
            owned.annotations.extend(names("annotations"));
        }
        owned
    }
}

/// Whether applying `declared` over `existing` would change nothing: the spec is the same,
/// every declared label and annotation is there with its value, and nothing this manager
/// set before has been dropped from the declaration (server-side apply would remove it).
/// Labels and annotations others set do not count: apply leaves them alone.
pub(super) fn unchanged(declared: &Object, existing: &Object, owned: &Owned) -> bool {
    let (want, have) = (&declared.metadata, &existing.metadata);
    declared.spec == existing.spec
        && want
            .labels
            .iter()
            .all(|(k, v)| have.labels.get(k) == Some(v))
        && want
            .annotations
            .iter()
            .all(|(k, v)| have.annotations.get(k) == Some(v))
        && owned.labels.iter().all(|k| want.labels.contains_key(k))
        && owned
            .annotations
            .iter()
            .all(|k| want.annotations.contains_key(k))
}

/// The server-side apply body of a status write. With a resourceVersion the API server
/// refuses (409) the write when the object has moved on since the caller read it.
pub(super) fn status_body(key: &ObjectKey, resource_version: &str, status: &Value) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(key.name));
    if key.kind.namespaced() {
        metadata.insert("namespace".into(), json!(key.namespace));
    }
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), json!(resource_version));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": key.kind,
        "metadata": metadata,
        "status": status,
    })
}

/// A JSON patch (RFC 6902) adding finalizer `name`, or None when it is there already. The
/// `test` of the whole list makes the patch fail, rather than lose a finalizer, when
/// someone changed the list since it was read (a missing list tests as null).
pub(super) fn add_finalizer(current: &[String], name: &str) -> Option<Value> {
    if current.iter().any(|f| f == name) {
        return None;
    }
    Some(if current.is_empty() {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ])
    })
}

/// A JSON patch removing finalizer `name` by its index, or None when it is not there. The
/// `test` of that index makes the patch fail, rather than remove someone else's
/// finalizer, when the list has shifted since it was read.
pub(super) fn remove_finalizer(current: &[String], name: &str) -> Option<Value> {
    let index = current.iter().position(|f| f == name)?;
    let path = format!("/metadata/finalizers/{index}");
    Some(json!([
        {"op": "test", "path": path, "value": name},
        {"op": "remove", "path": path},
    ]))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;

    use super::*;
    use crate::resources::Kind;

    fn job(spec: Value) -> Object {
        Object::new(Kind::Job, "default", "build", spec)
    }

    fn with_label(mut obj: Object, key: &str, value: &str) -> Object {
        obj.metadata.labels.insert(key.into(), value.into());
        obj
    }

    fn owning_labels(keys: &[&str]) -> Owned {
        Owned {
            labels: keys.iter().map(|k| k.to_string()).collect(),
            ..Owned::default()
        }
    }

    #[test]
    fn the_apply_body_declares_metadata_and_spec_only() {
        let mut file = with_label(job(json!({"image": "alpine"})), "team", "a");
        file.metadata.resource_version = "12".into();
        file.metadata.finalizers = vec!["x".into()];
        file.status = json!({"phase": "Running"});
        let body = apply_body(&declared(&file, None));
        assert_eq!(
            body,
            json!({
                "apiVersion": "orcaops.dev/v1alpha1",
                "kind": "Job",
                "metadata": {"name": "build", "namespace": "default", "labels": {"team": "a"}},
                "spec": {"image": "alpine"},
            })
        );
    }

    #[test]
    fn control_annotations_of_the_stored_object_are_kept() {
        let mut stored = job(json!({}));
        stored
            .metadata
            .annotations
            .insert(keys::CANCEL.into(), "3".into());
        stored
            .metadata
            .annotations
            .insert("note".into(), "x".into());
        let kept = declared(&job(json!({})), Some(&stored));
        assert_eq!(
            kept.metadata.annotations.keys().collect::<Vec<_>>(),
            [keys::CANCEL]
        );
    }

    #[test]
    fn owned_keys_come_from_this_managers_apply_entries_only() {
        let entry = |manager: &str, operation: &str, fields: Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        };
        let managed = [
            entry(
                SYNC_MANAGER,
                "Apply",
                json!({"f:metadata": {"f:labels": {"f:team": {}}, "f:annotations": {"f:orcaops.dev/source": {}}}, "f:spec": {}}),
            ),
            entry(
                "kubectl",
                "Update",
                json!({"f:metadata": {"f:labels": {"f:tier": {}}}}),
            ),
            entry(
                SYNC_MANAGER,
                "Update",
                json!({"f:metadata": {"f:labels": {"f:old": {}}}}),
            ),
        ];
        let owned = Owned::by(SYNC_MANAGER, &managed);
        assert_eq!(owned.labels, BTreeSet::from(["team".to_string()]));
        assert_eq!(
            owned.annotations,
            BTreeSet::from(["orcaops.dev/source".to_string()])
        );
    }

    #[test]
    fn unchanged_ignores_what_others_set_but_not_what_we_dropped() {
        let file = job(json!({"image": "alpine"}));
        let stored = with_label(job(json!({"image": "alpine"})), "tier", "gold");
        assert!(unchanged(&file, &stored, &Owned::default()));
        // We set `tier` before and the file no longer has it: apply would remove it.
        assert!(!unchanged(&file, &stored, &owning_labels(&["tier"])));
        // A new label, a changed value, a changed spec.
        let labelled = with_label(file.clone(), "team", "a");
        assert!(!unchanged(&labelled, &stored, &Owned::default()));
        let relabelled = with_label(file.clone(), "tier", "silver");
        assert!(!unchanged(&relabelled, &stored, &Owned::default()));
        assert!(!unchanged(
            &job(json!({"image": "debian"})),
            &stored,
            &Owned::default()
        ));
    }

    #[test]
    fn status_bodies_carry_the_version_only_when_given() {
        let key = ObjectKey::new(Kind::Job, "default", "build");
        let status = json!({"phase": "Running"});
        let guarded = status_body(&key, "42", &status);
        assert_eq!(guarded["metadata"]["resourceVersion"], "42");
        assert_eq!(guarded["status"], status);
        let free = status_body(&key, "", &status);
        assert!(free["metadata"].get("resourceVersion").is_none());
        let policy = status_body(&ObjectKey::new(Kind::Policy, "", "p"), "", &status);
        assert!(policy["metadata"].get("namespace").is_none());
    }

    #[test]
    fn finalizer_patches_test_before_they_change() {
        let name = keys::FINALIZER;
        assert_eq!(
            add_finalizer(&[], name).unwrap(),
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [name]},
            ])
        );
        let others = ["a".to_string()];
        assert_eq!(
            add_finalizer(&others, name).unwrap()[1],
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": name})
        );
        assert_eq!(add_finalizer(&[name.to_string()], name), None);
        let both = ["a".to_string(), name.to_string()];
        assert_eq!(
            remove_finalizer(&both, name).unwrap(),
            json!([
                {"op": "test", "path": "/metadata/finalizers/1", "value": name},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        assert_eq!(remove_finalizer(&others, name), None);
    }
}
