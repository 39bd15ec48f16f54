//! The Kubernetes store: the same objects as [`LocalStore`](super::LocalStore), kept by a
//! Kubernetes API server as custom resources (`orcaops crds` prints their definitions).
//!
//! Objects travel as `DynamicObject`s, one `ApiResource` per kind. Declarative sources
//! write with server-side apply (field manager `orcaops-sync`), the controllers write
//! status with server-side apply to the status subresource (field manager `orcaops`),
//! and changes arrive through one kube-runtime watcher per kind.

mod convert;
#[cfg(test)]
pub(crate) mod mock;
mod patch;
mod reads;
#[cfg(test)]
mod tests;
mod watch;

use std::sync::{Arc, Once};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use kube::{Client, Config};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::local::decide::validated;
use super::{
    ApplyOutcome, Event, EventQuery, EventType, ListPage, NewEvent, ObjectStore, PageQuery, Result,
    SecretValue, StoreError, WatchEvent, WatchFrom,
};
use crate::resources::{Kind, Object, ObjectKey};
use convert::{api_resource, from_dynamic, object_reference, to_dynamic};
pub use patch::{STATUS_MANAGER, SYNC_MANAGER};

/// How far a slow watcher may fall behind before it gets `RecvError::Lagged`.
const WATCH_CAPACITY: usize = 4096;
/// How long to wait for a TCP connection to the API server: kube's 30 s is long to learn
/// that a laptop's cluster is not running.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a write guarded by a `test` (finalizers) or a read version is tried again
/// after losing a race with another writer.
const RACE_ATTEMPTS: usize = 5;
/// events.k8s.io refuses a note longer than this many bytes.
const MAX_NOTE: usize = 1024;
/// What a Conflict says the object is at: a status apply refused for its resourceVersion
/// does not say which version won.
const NEWER: &str = "a newer version";

/// The store of cluster mode. Cloning is cheap and every clone is the same store.
#[derive(Clone)]
pub struct KubeStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    instance: String,
    /// The kubeconfig context the client came from, when it came from one.
    context: Option<String>,
    /// The API server's URL, when known.
    server: Option<String>,
    recorder: Recorder,
    feed: broadcast::Sender<WatchEvent>,
    /// The watchers start with the first `watch()`: a one-shot `orcaops sync` never needs them.
    watching: Once,
    /// Stops the watchers when the last clone of the store goes.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

/// Why a client could not be built.
#[derive(thiserror::Error, Debug)]
pub enum ConnectError {
    #[error("cannot use the kubeconfig context \"{context}\": {source}")]
    Context {
        context: String,
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no Kubernetes configuration found: no kubeconfig ($KUBECONFIG or ~/.kube/config) and not running inside a cluster ({0})"
    )]
    Infer(kube::config::InferConfigError),
    #[error("cannot build a Kubernetes client: {0}")]
    Client(kube::Error),
    #[error("cannot read the kubeconfig {}: {source}", path.display())]
    File {
        path: std::path::PathBuf,
        source: kube::config::KubeconfigError,
    },
}

/// Why the cluster cannot be used, from [`KubeStore::check_access`].
#[derive(thiserror::Error, Debug)]
pub enum AccessError {
    #[error("{}", describe(.0))]
    Unreachable(kube::Error),
    #[error("the orcaops CRDs are not installed in this cluster (jobs.orcaops.dev is not served)")]
    CrdsMissing,
    #[error("the Kubernetes API refused access: {0}")]
    Refused(String),
    #[error("{}", describe(.0))]
    Other(kube::Error),
}

impl KubeStore {
    /// A store on `client`. `instance_id` identifies this orcaops among others sharing the
    /// cluster: it labels the pods it owns, so it never cleans up another's.
    pub fn new(client: Client, instance_id: impl Into<String>) -> Self {
        Self::build(client, instance_id.into(), None, None)
    }

    /// A store on the cluster of kubeconfig context `context`, or by default of the current
    /// context, or, with no kubeconfig at all, of the cluster this process runs in. The
    /// instance id is derived from the API server's URL.
    pub async fn from_kubeconfig(
        context: Option<&str>,
    ) -> std::result::Result<KubeStore, ConnectError> {
        Self::connect(None, context).await
    }

    /// Like [`KubeStore::from_kubeconfig`], reading the kubeconfig at `kubeconfig` when
    /// given (instead of `$KUBECONFIG` or `~/.kube/config`).
    pub async fn connect(
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
    ) -> std::result::Result<KubeStore, ConnectError> {
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let context_error = |source| ConnectError::Context {
            context: context.unwrap_or("(current)").to_string(),
            source,
        };
        let mut config = match (kubeconfig, context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path).map_err(|source| ConnectError::File {
                    path: path.to_path_buf(),
                    source,
                })?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(context_error)?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(context_error)?,
            (None, None) => Config::infer().await.map_err(ConnectError::Infer)?,
        };
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let server = config.cluster_url.to_string();
        let instance = instance_for(&server);
        // Every call the process makes to the API is timed here (`/metrics`).
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(ConnectError::Client)?
            .with_layer(&crate::kubeapi::timing::TimedLayer(
                crate::kubeapi::timing::call_latency(),
            ))
            .build();
        let context = match kubeconfig {
            Some(path) => context.map(str::to_string).or_else(|| {
                Kubeconfig::read_from(path)
                    .ok()
                    .and_then(|c| c.current_context)
            }),
            None => context.map(str::to_string).or_else(current_context),
        };
        Ok(Self::build(client, instance, context, Some(server)))
    }

    fn build(
        client: Client,
        instance: String,
        context: Option<String>,
        server: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: "orcaops".into(),
            instance: Some(instance.clone()),
        };
        let stop = CancellationToken::new();
        KubeStore {
            inner: Arc::new(Inner {
                recorder: Recorder::new(client.clone(), reporter),
                client,
                instance,
                context,
                server,
                feed: broadcast::channel(WATCH_CAPACITY).0,
                watching: Once::new(),
                _stop_on_drop: stop.clone().drop_guard(),
                stop,
            }),
        }
    }

    /// The kubeconfig context in use ("in-cluster" or None when not from a kubeconfig).
    pub fn context(&self) -> Option<&str> {
        self.inner.context.as_deref()
    }

    /// The API server's URL, when the store was built from a configuration.
    pub fn server(&self) -> Option<&str> {
        self.inner.server.as_deref()
    }

    /// The client, for what the store does not cover (pods, namespaces, quotas).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Whether the cluster answers and serves the orcaops kinds: one small list of Jobs.
    pub async fn check_access(&self) -> std::result::Result<(), AccessError> {
        let api: Api<DynamicObject> =
            Api::all_with(self.client().clone(), &api_resource(Kind::Job));
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => Ok(()),
            Err(e) if is_unreachable(&e) => Err(AccessError::Unreachable(e)),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(AccessError::CrdsMissing),
            Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => {
                Err(AccessError::Refused(s.message))
            }
            Err(e) => Err(AccessError::Other(e)),
        }
    }

    /// The API of the kind of `key`, in its namespace.
    fn api(&self, key: &ObjectKey) -> Result<Api<DynamicObject>> {
        let resource = api_resource(key.kind);
        if !key.kind.namespaced() {
            return Ok(Api::all_with(self.client().clone(), &resource));
        }
        if key.namespace.is_empty() {
            return Err(StoreError::Invalid {
                key: key.clone(),
                message: format!("a {} needs a namespace", key.kind),
            });
        }
        Ok(Api::namespaced_with(
            self.client().clone(),
            &key.namespace,
            &resource,
        ))
    }

    async fn get_dynamic(&self, key: &ObjectKey) -> Result<Option<DynamicObject>> {
        self.api(key)?
            .get_opt(&key.name)
            .await
            .map_err(|e| refused(key, "", e))
    }

    /// PUT with the version the caller read; with none, with the current one, retried
    /// while others win the race (an unconditional replace, which custom resources lack).
    async fn put(&self, obj: Object) -> Result<Object> {
        let key = obj.key();
        let api = self.api(&key)?;
        let pinned = !obj.metadata.resource_version.is_empty();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut body = to_dynamic(&obj)?;
            if !pinned {
                let current = self
                    .get_dynamic(&key)
                    .await?
                    .ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
                body.metadata.resource_version = current.metadata.resource_version;
            }
            let expected = body.metadata.resource_version.clone().unwrap_or_default();
            match api.replace(&key.name, &PostParams::default(), &body).await {
                Ok(stored) => return Ok(from_dynamic(key.kind, stored)?),
                Err(e) => match refused(&key, &expected, e) {
                    StoreError::Conflict { .. } if !pinned && attempt < RACE_ATTEMPTS => continue,
                    other => return Err(other),
                },
            }
        }
    }

    /// Applies a JSON patch built from the object's current finalizers by `build` (None:
    /// nothing to do), again from a fresh read when another writer changed the list first.
    async fn patch_finalizers(
        &self,
        key: &ObjectKey,
        gone_is_fine: bool,
        build: impl Fn(&[String]) -> Option<serde_json::Value>,
    ) -> Result<()> {
        let api = self.api(key)?;
        for attempt in 1..=RACE_ATTEMPTS {
            let Some(current) = self.get_dynamic(key).await? else {
                return match gone_is_fine {
                    true => Ok(()),
                    false => Err(StoreError::NotFound { key: key.clone() }),
                };
            };
            let finalizers = current.metadata.finalizers.unwrap_or_default();
            let Some(ops) = build(&finalizers) else {
                return Ok(());
            };
            let patch = Patch::Json::<()>(serde_json::from_value(ops)?);
            match api.patch(&key.name, &PatchParams::default(), &patch).await {
                Ok(_) => return Ok(()),
                // A failed `test` is 422; a concurrent write of the object, 409.
                Err(kube::Error::Api(s))
                    if (s.code == 422 || s.code == 409) && attempt < RACE_ATTEMPTS =>
                {
                    tracing::debug!(%key, reason = %s.reason, "finalizers changed meanwhile; reading again");
                }
                Err(kube::Error::Api(s)) if s.code == 404 && gone_is_fine => return Ok(()),
                Err(e) => return Err(refused(key, "", e)),
            }
        }
        unreachable!("the last attempt returns")
    }
}

#[async_trait::async_trait]
impl ObjectStore for KubeStore {
    fn instance_id(&self) -> &str {
        &self.inner.instance
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Object>> {
        Ok(match self.get_dynamic(key).await? {
            Some(obj) => Some(from_dynamic(key.kind, obj)?),
            None => None,
        })
    }

    async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Object>, String)> {
        let list = reads::kind_api(self.client(), kind, namespace)
            .list(&ListParams::default())
            .await
            .map_err(StoreError::Kube)?;
        let items = list
            .items
            .into_iter()
            .map(|obj| from_dynamic(kind, obj))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((items, list.metadata.resource_version.unwrap_or_default()))
    }

    async fn create(&self, obj: Object) -> Result<Object> {
        let mut obj = validated(obj)?;
        let key = obj.key();
        // The API server assigns these, and refuses a create that sets a resourceVersion.
        obj.metadata.resource_version.clear();
        obj.metadata.uid.clear();
        obj.metadata.creation_timestamp = None;
        obj.metadata.deletion_timestamp = None;
        let created = self
            .api(&key)?
            .create(&PostParams::default(), &to_dynamic(&obj)?)
            .await
            .map_err(|e| refused(&key, "", e))?;
        Ok(from_dynamic(key.kind, created)?)
    }

    /// Server-side apply of what the source declares, after a read: when the apply would
    /// change nothing, nothing is sent. The API server bumps `generation` only for spec
    /// changes, as the local store does.
    async fn apply(&self, obj: Object) -> Result<(ApplyOutcome, Object)> {
        let obj = validated(obj)?;
        let key = obj.key();
        let existing = self.get_dynamic(&key).await?;
        let owned = existing
            .as_ref()
            .and_then(|e| e.metadata.managed_fields.as_deref())
            .map(|managed| patch::Owned::by(SYNC_MANAGER, managed))
            .unwrap_or_default();
        let existing = existing.map(|e| from_dynamic(key.kind, e)).transpose()?;
        let declared = patch::declared(&obj, existing.as_ref());
        if let Some(existing) = &existing
            && patch::unchanged(&declared, existing, &owned)
        {
            return Ok((ApplyOutcome::Unchanged, existing.clone()));
        }
        let params = PatchParams::apply(SYNC_MANAGER).force();
        let body = Patch::Apply(patch::apply_body(&declared));
        let applied = self
            .api(&key)?
            .patch(&key.name, &params, &body)
            .await
            .map_err(|e| refused(&key, "", e))?;
        let applied = from_dynamic(key.kind, applied)?;
        let outcome = match &existing {
            None => ApplyOutcome::Created,
            // Others' fields can make the read differ while the apply changes nothing;
            // the API server then keeps the version.
            Some(e) if e.metadata.resource_version == applied.metadata.resource_version => {
                ApplyOutcome::Unchanged
            }
            Some(_) => ApplyOutcome::Configured,
        };
        Ok((outcome, applied))
    }

    async fn replace(&self, obj: Object) -> Result<Object> {
        self.put(validated(obj)?).await
    }

    /// Server-side apply to the status subresource with field manager `orcaops`. The
    /// status given replaces what this manager wrote before; with a resourceVersion the
    /// API server refuses a stale write (Conflict).
    async fn update_status(
        &self,
        key: &ObjectKey,
        resource_version: &str,
        status: serde_json::Value,
    ) -> Result<Object> {
        let params = PatchParams::apply(STATUS_MANAGER).force();
        let body = Patch::Apply(patch::status_body(key, resource_version, &status));
        let stored = self
            .api(key)?
            .patch_status(&key.name, &params, &body)
            .await
            .map_err(|e| refused(key, resource_version, e))?;
        Ok(from_dynamic(key.kind, stored)?)
    }

    /// Asks the API server to delete. An object with finalizers stays, marked with a
    /// deletionTimestamp, until they are removed; it is returned as it now is.
    async fn delete(&self, key: &ObjectKey) -> Result<Object> {
        let deleted = self
            .api(key)?
            .delete(&key.name, &DeleteParams::default())
            .await
            .map_err(|e| refused(key, "", e))?;
        match deleted.left() {
            Some(obj) => Ok(from_dynamic(key.kind, obj)?),
            // Custom resources answer with the object; a bare Status leaves only the key.
            None => Ok(Object::new(
                key.kind,
                &key.namespace,
                &key.name,
                serde_json::Value::Null,
            )),
        }
    }

    /// Every change from now on. The first call starts one watcher per kind (so it must
    /// be made inside a Tokio runtime); their first lists arrive as ADDED events for
    /// every existing object, and every relist after a broken watch as the ADDED,
    /// MODIFIED and DELETED events it implies.
    fn watch(&self) -> broadcast::Receiver<WatchEvent> {
        let receiver = self.inner.feed.subscribe();
        self.inner.watching.call_once(|| {
            for kind in Kind::ALL {
                tokio::spawn(watch::watch_kind(
                    self.client().clone(),
                    kind,
                    self.inner.feed.clone(),
                    self.inner.stop.clone(),
                ));
            }
        });
        receiver
    }

    /// Only once [`watch`](Self::watch) has started the watches of every kind (the
    /// operator's controllers do): a followed log alone must not start them.
    fn watch_if_running(&self) -> Option<broadcast::Receiver<WatchEvent>> {
        self.inner
            .watching
            .is_completed()
            .then(|| self.inner.feed.subscribe())
    }

    /// An events.k8s.io Event about the object, reported by `orcaops`. Events about files
    /// of a watched folder have no object in the cluster to attach to, and are only logged.
    async fn record_event(&self, event: NewEvent) -> Result<()> {
        let involved = &event.involved;
        let Some(kind) = Kind::from_kind_field(&involved.kind) else {
            tracing::debug!(kind = %involved.kind, name = %involved.name, reason = %event.reason,
                message = %event.message, "not recorded in the cluster: no object to attach it to");
            return Ok(());
        };
        let reference = object_reference(kind, &involved.namespace, &involved.name, &involved.uid);
        let note = truncated(&event.message, MAX_NOTE);
        let kube_event = KubeEvent {
            type_: match event.type_ {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: event.reason.clone(),
            note: Some(note.to_string()),
            action: event.reason,
            secondary: None,
        };
        self.inner
            .recorder
            .publish(&kube_event, &reference)
            .await
            .map_err(StoreError::Kube)
    }

    /// A page cut from a full list, in the local store's order, so that continue tokens
    /// mean the same in both modes (pages are not one snapshot: each is a fresh list).
    async fn list_page(&self, query: PageQuery<'_>) -> Result<ListPage> {
        let (mut items, rv) = self.list(query.kind, query.namespace).await?;
        if let Some(selector) = query.labels {
            items.retain(|o| selector.matches(&o.metadata.labels));
        }
        Ok(reads::page(items, query.after, query.limit, rv))
    }

    async fn current_resource_version(&self) -> Result<String> {
        reads::current_resource_version(self.client()).await
    }

    async fn watch_from(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        rv: &str,
        known: &[Object],
    ) -> Result<WatchFrom> {
        reads::watch_from(self.client(), kind, namespace, rv, known).await
    }

    async fn list_events(&self, query: EventQuery<'_>) -> Result<Vec<Event>> {
        reads::list_events(self.client(), query).await
    }

    async fn add_finalizer(&self, key: &ObjectKey, name: &str) -> Result<()> {
        self.patch_finalizers(key, false, |current| patch::add_finalizer(current, name))
            .await
    }

    async fn remove_finalizer(&self, key: &ObjectKey, name: &str) -> Result<()> {
        self.patch_finalizers(key, true, |current| patch::remove_finalizer(current, name))
            .await
    }

    /// One key of a Secret, read with the operator's `get` on secrets; a refusal is the
    /// API's (403 where the ClusterRole lacks it).
    async fn read_secret_key(&self, namespace: &str, name: &str, key: &str) -> Result<SecretValue> {
        let secrets: Api<Secret> = Api::namespaced(self.client().clone(), namespace);
        let secret = secrets.get_opt(name).await.map_err(StoreError::Kube)?;
        Ok(SecretValue::of(secret.as_ref(), key))
    }
}

/// Our error for what the API server answered about `key`. `expected` is the
/// resourceVersion the request was guarded by, for a Conflict.
fn refused(key: &ObjectKey, expected: &str, e: kube::Error) -> StoreError {
    let kube::Error::Api(status) = &e else {
        return StoreError::Kube(e);
    };
    match status.code {
        404 => StoreError::NotFound { key: key.clone() },
        409 if status.is_already_exists() => StoreError::AlreadyExists { key: key.clone() },
        409 => StoreError::Conflict {
            key: key.clone(),
            expected: expected.to_string(),
            current: NEWER.to_string(),
        },
        422 => StoreError::Invalid {
            key: key.clone(),
            message: status.message.clone(),
        },
        _ => StoreError::Kube(e),
    }
}

pub(crate) use crate::kubeapi::{describe, is_unreachable};

/// A stable identity for a store on the cluster at `url`, short enough for a label value.
fn instance_for(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("kube-{hex}")
}

/// The current context of the kubeconfig, or "in-cluster" when there is none.
fn current_context() -> Option<String> {
    match Kubeconfig::read() {
        Ok(config) => config.current_context,
        Err(_) => Some("in-cluster".to_string()),
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
