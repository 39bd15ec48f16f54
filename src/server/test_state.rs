//! The state tests of the doors share (test code: it may name concrete runtimes).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::AppState;
use crate::store::LocalStore;

impl AppState {
    /// Local mode over `store`, for tests of doors that only write objects: the sandbox
    /// I/O is a pod runtime over a mock API server, never called.
    pub(crate) fn for_door_tests(store: &LocalStore) -> AppState {
        AppState {
            objects: Arc::new(store.clone()),
            policies: crate::policy::Policies::watching(Arc::new(store.clone())),
            records: store.clone(),
            sandboxes: Arc::new(crate::runtime::PodRuntime::new(
                crate::kubeapi::mock::mock_client().0,
            )),
            activity: crate::controller::activity::SandboxActivity::new(),
            shutdown: CancellationToken::new(),
            leading: None,
            metrics: Default::default(),
        }
    }
}
