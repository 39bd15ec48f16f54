//! The pure half of every object write: from the stored object (if any) and the request,
//! decide what to store. The SQL half lives in `local.rs`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::resources::{API_VERSION, Object, ObjectKey, keys};
use crate::store::{Result, StoreError, WatchEventType};

/// What a write does to the stored object.
#[derive(Debug, PartialEq)]
pub(in crate::store) enum Decision {
    /// Nothing changes: no new resourceVersion, no watch event. Carries the stored object.
    Keep(Object),
    /// Store this object and announce it with this event type.
    Put(Object, WatchEventType),
    /// Delete the object; carries its last state for the DELETED event.
    Remove(Object),
}

impl Decision {
    /// The object the write stores, or last had (a delete).
    pub(in crate::store) fn into_object(self) -> Object {
        match self {
            Decision::Keep(obj) | Decision::Put(obj, _) | Decision::Remove(obj) => obj,
        }
    }
}

/// Checks what every store relies on (a name, and a namespace where the kind has
/// one) and normalizes the rest: cluster-scoped kinds carry no namespace.
pub(in crate::store) fn validated(mut obj: Object) -> Result<Object> {
    let key = obj.key();
    if obj.metadata.name.is_empty() {
        return Err(StoreError::Invalid {
            key,
            message: "metadata.name is empty; give the object a name".into(),
        });
    }
    if obj.kind.namespaced() {
        if obj
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(StoreError::Invalid {
                key,
                message: format!(
                    "a {} needs metadata.namespace (for example `default`)",
                    obj.kind
                ),
            });
        }
    } else {
        obj.metadata.namespace = None;
    }
    if obj.api_version.is_empty() {
        obj.api_version = API_VERSION.to_string();
    }
    Ok(obj)
}

/// The key as stored: cluster-scoped kinds have the empty namespace, whoever built the key.
pub(super) fn stored_key(key: &ObjectKey) -> ObjectKey {
    ObjectKey::new(key.kind, key.namespace.clone(), key.name.clone())
}

/// A new object: the store assigns identity, generation and creation time. The caller's
/// labels, annotations, finalizers, owner references, spec and status are kept.
fn fresh(mut obj: Object, now: DateTime<Utc>) -> Object {
    let meta = &mut obj.metadata;
    meta.uid = uuid::Uuid::new_v4().to_string();
    meta.generation = 1;
    meta.creation_timestamp = Some(now);
    meta.deletion_timestamp = None;
    meta.resource_version.clear();
    obj
}

pub(in crate::store) fn create(
    existing: Option<Object>,
    obj: Object,
    now: DateTime<Utc>,
) -> Result<Decision> {
    match existing {
        Some(_) => Err(StoreError::AlreadyExists { key: obj.key() }),
        None => Ok(Decision::Put(fresh(obj, now), WatchEventType::Added)),
    }
}

/// Create-or-update from a declarative source. Replaces labels, annotations and spec,
/// keeps the control annotations a file does not mention, and leaves status alone.
pub(in crate::store) fn apply(
    existing: Option<Object>,
    obj: Object,
    now: DateTime<Utc>,
) -> Result<Decision> {
    let Some(existing) = existing else {
        return Ok(Decision::Put(fresh(obj, now), WatchEventType::Added));
    };
    let mut annotations = obj.metadata.annotations;
    // A cancel or rerun request came from the CLI or a controller, not from the file:
    // re-applying the file must not withdraw it.
    for control in keys::CONTROL {
        if !annotations.contains_key(*control)
            && let Some(value) = existing.metadata.annotations.get(*control)
        {
            annotations.insert((*control).to_string(), value.clone());
        }
    }
    let mut next = existing.clone();
    next.metadata.labels = obj.metadata.labels;
    next.metadata.annotations = annotations;
    set_spec(&mut next, obj.spec);
    Ok(changed(existing, next))
}

/// Full replace (PUT): everything a client owns in metadata, and the spec.
pub(in crate::store) fn replace(existing: Option<Object>, obj: Object) -> Result<Decision> {
    let key = obj.key();
    let existing = existing.ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
    check_version(&key, &obj.metadata.resource_version, &existing)?;
    let mut next = existing.clone();
    next.metadata.labels = obj.metadata.labels;
    next.metadata.annotations = obj.metadata.annotations;
    next.metadata.finalizers = obj.metadata.finalizers;
    next.metadata.owner_references = obj.metadata.owner_references;
    set_spec(&mut next, obj.spec);
    Ok(changed(existing, next))
}

pub(super) fn update_status(
    existing: Option<Object>,
    key: &ObjectKey,
    resource_version: &str,
    status: Value,
) -> Result<Decision> {
    let existing = existing.ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
    check_version(key, resource_version, &existing)?;
    let mut next = existing.clone();
    next.status = status;
    Ok(changed(existing, next))
}

pub(in crate::store) fn delete(existing: Option<Object>, key: &ObjectKey) -> Result<Decision> {
    existing
        .map(Decision::Remove)
        .ok_or_else(|| StoreError::NotFound { key: key.clone() })
}

/// The generation counts spec changes only, so controllers can tell "the user asked for
/// something new" from "someone touched labels or status".
fn set_spec(next: &mut Object, spec: Value) {
    if next.spec != spec {
        next.spec = spec;
        next.metadata.generation += 1;
    }
}

/// Like the Kubernetes API server, a write that changes nothing is not a write: no new
/// resourceVersion and no watch event, so a controller re-writing what it read does not
/// wake itself up.
fn changed(existing: Object, next: Object) -> Decision {
    if next == existing {
        Decision::Keep(existing)
    } else {
        Decision::Put(next, WatchEventType::Modified)
    }
}

/// An empty expected version writes unconditionally.
fn check_version(key: &ObjectKey, expected: &str, existing: &Object) -> Result<()> {
    if expected.is_empty() || expected == existing.metadata.resource_version {
        return Ok(());
    }
    Err(StoreError::Conflict {
        key: key.clone(),
        expected: expected.to_string(),
        current: existing.metadata.resource_version.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::Kind;

    fn stored(spec: Value) -> Object {
        let mut obj = fresh(Object::new(Kind::Job, "default", "build", spec), Utc::now());
        obj.metadata.resource_version = "7".into();
        obj
    }

    fn put(decision: Decision) -> Object {
        match decision {
            Decision::Put(obj, _) => obj,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_missing_field() {
        let nameless = Object::new(Kind::Job, "default", "", json!({}));
        let err = validated(nameless).unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
        let mut homeless = Object::new(Kind::Job, "default", "build", json!({}));
        homeless.metadata.namespace = None;
        let err = validated(homeless).unwrap_err();
        assert!(err.to_string().contains("metadata.namespace"), "{err}");
    }

    #[test]
    fn cluster_scoped_objects_lose_their_namespace() {
        let mut policy = Object::new(Kind::Policy, "", "limits", json!({}));
        policy.metadata.namespace = Some("default".into());
        assert_eq!(validated(policy).unwrap().metadata.namespace, None);
    }

    #[test]
    fn apply_with_the_same_content_keeps_the_object() {
        let existing = stored(json!({"image": "alpine"}));
        let again = Object::new(Kind::Job, "default", "build", json!({"image": "alpine"}));
        assert_eq!(
            apply(Some(existing.clone()), again, Utc::now()).unwrap(),
            Decision::Keep(existing)
        );
    }

    #[test]
    fn apply_bumps_generation_only_for_spec_changes() {
        let existing = stored(json!({"image": "alpine"}));
        let mut labelled = Object::new(Kind::Job, "default", "build", json!({"image": "alpine"}));
        labelled.metadata.labels.insert("team".into(), "a".into());
        assert_eq!(
            put(apply(Some(existing.clone()), labelled, Utc::now()).unwrap())
                .metadata
                .generation,
            1
        );
        let respecced = Object::new(Kind::Job, "default", "build", json!({"image": "debian"}));
        let next = put(apply(Some(existing), respecced, Utc::now()).unwrap());
        assert_eq!(next.metadata.generation, 2);
        assert_eq!(next.spec, json!({"image": "debian"}));
    }

    #[test]
    fn apply_keeps_control_annotations_but_not_others() {
        let mut existing = stored(json!({}));
        existing
            .metadata
            .annotations
            .insert(keys::CANCEL.into(), "latest".into());
        existing
            .metadata
            .annotations
            .insert("note".into(), "old".into());
        let file = Object::new(Kind::Job, "default", "build", json!({}));
        let next = put(apply(Some(existing), file, Utc::now()).unwrap());
        assert_eq!(
            next.metadata
                .annotations
                .get(keys::CANCEL)
                .map(String::as_str),
            Some("latest")
        );
        assert!(!next.metadata.annotations.contains_key("note"));
    }

    #[test]
    fn apply_lets_the_file_set_a_control_annotation() {
        let mut existing = stored(json!({}));
        existing
            .metadata
            .annotations
            .insert(keys::RERUN.into(), "1".into());
        let mut file = Object::new(Kind::Job, "default", "build", json!({}));
        file.metadata
            .annotations
            .insert(keys::RERUN.into(), "2".into());
        let next = put(apply(Some(existing), file, Utc::now()).unwrap());
        assert_eq!(
            next.metadata
                .annotations
                .get(keys::RERUN)
                .map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn stale_versions_conflict_and_empty_ones_do_not() {
        let existing = stored(json!({}));
        let key = existing.key();
        let err = update_status(
            Some(existing.clone()),
            &key,
            "6",
            json!({"phase": "Running"}),
        )
        .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { ref current, .. } if current == "7"),
            "{err}"
        );
        let next = put(update_status(
            Some(existing.clone()),
            &key,
            "",
            json!({"phase": "Running"}),
        )
        .unwrap());
        assert_eq!(next.status, json!({"phase": "Running"}));
        assert_eq!(next.metadata.generation, existing.metadata.generation);
    }

    #[test]
    fn replace_keeps_status_and_identity() {
        let mut existing = stored(json!({"a": 1}));
        existing.status = json!({"phase": "Running"});
        let mut desired = Object::new(Kind::Job, "default", "build", json!({"a": 2}));
        desired.metadata.finalizers = vec!["orcaops.dev/cleanup".into()];
        desired.metadata.resource_version = "7".into();
        let next = put(replace(Some(existing.clone()), desired).unwrap());
        assert_eq!(next.status, existing.status);
        assert_eq!(next.metadata.uid, existing.metadata.uid);
        assert_eq!(next.metadata.finalizers, ["orcaops.dev/cleanup"]);
        assert_eq!(next.metadata.generation, 2);
    }
}
