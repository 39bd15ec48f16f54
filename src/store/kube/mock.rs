//! The mock API server of [`crate::kubeapi::mock`], with what only the store's tests
//! need: a [`KubeStore`] on it, and objects as a sync applied them.

use serde_json::{Value, json};

pub(crate) use crate::kubeapi::mock::*;
use crate::resources::{API_VERSION, Object};

use super::KubeStore;

/// The instance id of [`mock_store`]'s store.
pub(crate) const INSTANCE: &str = "kube-test";

/// A store whose API server is the returned [`MockApi`].
pub(crate) fn mock_store() -> (KubeStore, MockApi) {
    let (client, api) = mock_client();
    (KubeStore::new(client, INSTANCE), api)
}

/// `obj` as served (see [`served`]), with `managedFields` saying that `orcaops-sync`
/// applied the labels and annotations of `declared`.
pub(crate) fn served_applied(obj: &Object, declared: &Object, resource_version: &str) -> Value {
    let mut served = served(obj, resource_version);
    let names = |map: &std::collections::BTreeMap<String, String>| -> Value {
        map.keys().map(|k| (format!("f:{k}"), json!({}))).collect()
    };
    served["metadata"]["managedFields"] = json!([{
        "manager": super::SYNC_MANAGER,
        "operation": "Apply",
        "apiVersion": API_VERSION,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {
            "f:labels": names(&declared.metadata.labels),
            "f:annotations": names(&declared.metadata.annotations),
        }, "f:spec": {}},
    }]);
    served
}
