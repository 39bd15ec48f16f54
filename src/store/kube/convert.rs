//! Our [`Object`] and kube's `DynamicObject` are the same JSON document: apiVersion, kind,
//! metadata, spec and status. Converting goes through `serde_json::Value`, which also moves
//! times between chrono (the application) and jiff (k8s-openapi) as RFC 3339 strings.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DynamicObject, TypeMeta};

use crate::resources::{API_VERSION, GROUP, Kind, Object, VERSION};

/// Where a kind lives in the API: group, version, kind and plural.
pub(crate) fn api_resource(kind: Kind) -> ApiResource {
    ApiResource {
        group: GROUP.to_string(),
        version: VERSION.to_string(),
        api_version: API_VERSION.to_string(),
        kind: kind.as_str().to_string(),
        plural: kind.plural().to_string(),
    }
}

/// The object as the API takes it. Fails only for owner references that are not shaped
/// as one (an object of strings and booleans).
pub(crate) fn to_dynamic(obj: &Object) -> Result<DynamicObject, serde_json::Error> {
    serde_json::from_value(serde_json::to_value(obj)?)
}

/// The object as the store hands it out. List items and watch events may leave out
/// apiVersion and kind; the kind asked for fills them in. `managedFields` are dropped: they
/// are the API server's bookkeeping, and would make every comparison of two objects differ.
pub(crate) fn from_dynamic(
    kind: Kind,
    mut obj: DynamicObject,
) -> Result<Object, serde_json::Error> {
    if obj.types.is_none() {
        obj.types = Some(TypeMeta {
            api_version: API_VERSION.to_string(),
            kind: kind.as_str().to_string(),
        });
    }
    obj.metadata.managed_fields = None;
    serde_json::from_value(serde_json::to_value(obj)?)
}

/// What an event is about, as events.k8s.io names it.
pub(crate) fn object_reference(
    kind: Kind,
    namespace: &str,
    name: &str,
    uid: &str,
) -> ObjectReference {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    ObjectReference {
        api_version: Some(API_VERSION.to_string()),
        kind: Some(kind.as_str().to_string()),
        namespace: if kind.namespaced() {
            non_empty(namespace)
        } else {
            None
        },
        name: Some(name.to_string()),
        uid: non_empty(uid),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;

    /// A Job as the API server returns it, with everything metadata can carry.
    fn served() -> serde_json::Value {
        json!({
            "apiVersion": "orcaops.dev/v1alpha1",
            "kind": "Job",
            "metadata": {
                "name": "build",
                "namespace": "team-a",
                "uid": "8d3c1f5e-0000-4000-8000-000000000001",
                "resourceVersion": "4711",
                "generation": 3,
                "creationTimestamp": "2025-03-04T05:06:07Z",
                "deletionTimestamp": "2025-03-05T00:00:01Z",
                "labels": {"team": "a"},
                "annotations": {"orcaops.dev/source": "file:jobs/build.yaml"},
                "finalizers": ["orcaops.dev/cleanup"],
                "ownerReferences": [{
                    "apiVersion": "orcaops.dev/v1alpha1",
                    "kind": "Workflow",
                    "name": "release",
                    "uid": "8d3c1f5e-0000-4000-8000-000000000002",
                    "controller": true
                }],
                "managedFields": [{"manager": "orcaops-sync", "operation": "Apply"}]
            },
            "spec": {"image": "alpine", "steps": [{"name": "a", "run": "make"}]},
            "status": {"phase": "Running", "observedGeneration": 3}
        })
    }

    #[test]
    fn a_served_object_becomes_ours_with_every_metadata_field() {
        let dynamic: DynamicObject = serde_json::from_value(served()).unwrap();
        let obj = from_dynamic(Kind::Job, dynamic).unwrap();
        let meta = &obj.metadata;
        assert_eq!(obj.kind, Kind::Job);
        assert_eq!(obj.key().to_string(), "job/team-a/build");
        assert_eq!(meta.resource_version, "4711");
        assert_eq!(meta.generation, 3);
        assert_eq!(
            meta.creation_timestamp,
            Some(Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap())
        );
        assert_eq!(
            meta.deletion_timestamp,
            Some(Utc.with_ymd_and_hms(2025, 3, 5, 0, 0, 1).unwrap())
        );
        assert_eq!(meta.labels["team"], "a");
        assert_eq!(obj.source(), Some("file:jobs/build.yaml"));
        assert_eq!(meta.finalizers, ["orcaops.dev/cleanup"]);
        assert_eq!(meta.owner_references[0]["name"], "release");
        assert_eq!(meta.owner_references[0]["controller"], true);
        assert_eq!(obj.spec["image"], "alpine");
        assert_eq!(obj.status["phase"], "Running");
    }

    #[test]
    fn ours_becomes_a_dynamic_object_and_comes_back_equal() {
        let dynamic: DynamicObject = serde_json::from_value(served()).unwrap();
        let ours = from_dynamic(Kind::Job, dynamic).unwrap();
        let back = to_dynamic(&ours).unwrap();
        let meta = &back.metadata;
        assert_eq!(back.types.as_ref().unwrap().kind, "Job");
        assert_eq!(meta.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            meta.creation_timestamp.as_ref().unwrap().0,
            "2025-03-04T05:06:07Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            meta.deletion_timestamp.as_ref().unwrap().0,
            "2025-03-05T00:00:01Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(meta.labels.as_ref().unwrap()["team"], "a");
        assert_eq!(
            meta.finalizers.as_deref(),
            Some(&["orcaops.dev/cleanup".to_string()][..])
        );
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Workflow", Some(true))
        );
        assert_eq!(back.data["status"]["observedGeneration"], 3);
        assert_eq!(from_dynamic(Kind::Job, back).unwrap(), ours);
    }

    #[test]
    fn sub_second_times_survive_as_whole_seconds() {
        // Kubernetes' metav1.Time has whole seconds; a chrono time with nanoseconds is
        // accepted and truncated, never refused.
        let mut obj = Object::new(Kind::Job, "default", "t", json!({}));
        obj.metadata.creation_timestamp = Some(
            Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
                + chrono::Duration::milliseconds(678),
        );
        let back = from_dynamic(Kind::Job, to_dynamic(&obj).unwrap()).unwrap();
        assert_eq!(
            back.metadata.creation_timestamp,
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap())
        );
    }

    #[test]
    fn list_items_without_type_fields_take_the_kind_asked_for() {
        let mut item = served();
        let fields = item.as_object_mut().unwrap();
        fields.remove("apiVersion");
        fields.remove("kind");
        let dynamic: DynamicObject = serde_json::from_value(item).unwrap();
        let obj = from_dynamic(Kind::Job, dynamic).unwrap();
        assert_eq!(
            (obj.kind, obj.api_version.as_str()),
            (Kind::Job, API_VERSION)
        );
    }

    #[test]
    fn cluster_scoped_kinds_live_at_their_plural_without_a_namespace() {
        let resource = api_resource(Kind::Policy);
        assert_eq!(
            (resource.api_version.as_str(), resource.plural.as_str()),
            ("orcaops.dev/v1alpha1", "policies")
        );
        let reference = object_reference(Kind::Policy, "default", "limits", "");
        assert_eq!((reference.namespace, reference.uid), (None, None));
    }
}
