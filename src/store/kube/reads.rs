//! What the REST facade reads from the cluster beyond objects: list pages, watches
//! resumed from a resourceVersion, and the events.k8s.io Events the store records.
//!
//! Pages are cut from a full list in (namespace, name) order, as the local store cuts
//! them, so that the facade's continue tokens mean the same in both modes. A watch from a
//! version is a real API watch of one kind; the API server's 410 becomes
//! [`StoreError::Gone`], so that the facade answers 410 Expired as in local mode.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, DynamicObject, ListParams, WatchParams};
use kube::core::WatchEvent as KubeWatchEvent;
use tokio::sync::mpsc;

use super::convert::{api_resource, from_dynamic};
use crate::resources::{API_VERSION, Kind, Object, ObjectKey};
use crate::store::{
    Event, EventQuery, EventType, InvolvedObject, ListPage, Result, StoreError, WatchEvent,
    WatchEventType, WatchFrom,
};

/// How long one API watch request lasts before it is made again from the last version
/// seen (the API server ends watches after at most this long anyway).
const WATCH_REQUEST_SECONDS: u32 = 290;
/// Events buffered between the API watch and the facade's watcher.
const FEED_BUFFER: usize = 64;
/// How long to wait before watching again when an API watch ended at once with nothing
/// in it (a proxy cutting connections, say), so that such a cluster is not asked in a loop.
const RENEW_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// The API of `kind` in `namespace` (None, or a cluster-scoped kind: all).
pub(super) fn kind_api(
    client: &kube::Client,
    kind: Kind,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let resource = api_resource(kind);
    match namespace.filter(|_| kind.namespaced()) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The page of `objects` (any order) after `after`, at most `limit` long.
pub(super) fn page(
    mut objects: Vec<Object>,
    after: Option<(&str, &str)>,
    limit: Option<usize>,
    resource_version: String,
) -> ListPage {
    let key = |o: &Object| {
        (
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone(),
        )
    };
    objects.sort_by_key(key);
    if let Some((ns, name)) = after {
        let after = (ns.to_string(), name.to_string());
        objects.retain(|o| key(o) > after);
    }
    let remaining = limit.map_or(0, |l| objects.len().saturating_sub(l));
    objects.truncate(objects.len() - remaining);
    ListPage {
        items: objects,
        resource_version,
        remaining,
    }
}

/// The resourceVersion of the cluster now: that of a one-item list of Jobs.
pub(super) async fn current_resource_version(client: &kube::Client) -> Result<String> {
    let list = kind_api(client, Kind::Job, None)
        .list(&ListParams::default().limit(1))
        .await
        .map_err(StoreError::Kube)?;
    Ok(list.metadata.resource_version.unwrap_or_default())
}

/// A watch of `kind` after `rv`. The first API watch request is made before this returns,
/// so that a version the API server no longer has is `Gone` here, not in the feed.
pub(super) async fn watch_from(
    client: &kube::Client,
    kind: Kind,
    namespace: Option<&str>,
    rv: &str,
    known: &[Object],
) -> Result<WatchFrom> {
    let api = kind_api(client, kind, namespace);
    let first = open(&api, rv).await?;
    let (tx, rx) = mpsc::channel(FEED_BUFFER);
    let seen = known
        .iter()
        .map(|o| (o.key(), Arc::new(o.clone())))
        .collect();
    tokio::spawn(follow(api, kind, rv.to_string(), first, seen, tx));
    Ok(WatchFrom {
        replay: Vec::new(),
        feed: tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
    })
}

type ApiWatch = futures::stream::BoxStream<'static, kube::Result<KubeWatchEvent<DynamicObject>>>;

async fn open(api: &Api<DynamicObject>, rv: &str) -> Result<ApiWatch> {
    // Bookmarks are on by default: they keep `rv` recent for the next request.
    let params = WatchParams::default().timeout(WATCH_REQUEST_SECONDS);
    match api.watch(&params, rv).await {
        Ok(stream) => Ok(stream.boxed()),
        Err(kube::Error::Api(s)) if s.code == 410 => Err(StoreError::Gone { rv: rv.to_string() }),
        Err(e) => Err(StoreError::Kube(e)),
    }
}

/// Forwards the API's events until the receiver goes or the watch cannot go on; an API
/// watch that ends (its timeout) is made again from the last version seen.
async fn follow(
    api: Api<DynamicObject>,
    kind: Kind,
    mut rv: String,
    mut stream: ApiWatch,
    mut seen: HashMap<ObjectKey, Arc<Object>>,
    tx: mpsc::Sender<Result<WatchEvent>>,
) {
    // `seen`: the last state of each object this watch saw (or started from), so that
    // MODIFIED carries `previous` (the facade's selectors need it to turn a change into
    // ADDED or DELETED).
    let mut opened = (tokio::time::Instant::now(), false);
    loop {
        let next = tokio::select! {
            _ = tx.closed() => return,
            next = stream.next() => next,
        };
        let event = match next {
            Some(Ok(event)) => {
                opened.1 = true;
                event
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(StoreError::Kube(e))).await;
                return;
            }
            None => {
                let (at, yielded) = opened;
                if !yielded && at.elapsed() < RENEW_PAUSE {
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(RENEW_PAUSE) => {}
                    }
                }
                opened = (tokio::time::Instant::now(), false);
                stream = match open(&api, &rv).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                continue;
            }
        };
        let (type_, obj) = match event {
            KubeWatchEvent::Added(obj) => (WatchEventType::Added, obj),
            KubeWatchEvent::Modified(obj) => (WatchEventType::Modified, obj),
            KubeWatchEvent::Deleted(obj) => (WatchEventType::Deleted, obj),
            KubeWatchEvent::Bookmark(bookmark) => {
                rv = bookmark.metadata.resource_version;
                continue;
            }
            KubeWatchEvent::Error(status) => {
                let error = match status.code {
                    410 => StoreError::Gone { rv: rv.clone() },
                    _ => StoreError::Kube(kube::Error::Api(status)),
                };
                let _ = tx.send(Err(error)).await;
                return;
            }
        };
        let obj = match from_dynamic(kind, obj) {
            Ok(obj) => obj,
            Err(error) => {
                tracing::warn!(%kind, %error, "skipping an object the store cannot read");
                continue;
            }
        };
        rv = obj.metadata.resource_version.clone();
        let key = obj.key();
        let previous = match type_ {
            WatchEventType::Deleted => seen.remove(&key),
            _ => seen.insert(key, Arc::new(obj.clone())),
        };
        let event = WatchEvent {
            type_,
            previous: previous.filter(|_| type_ == WatchEventType::Modified),
            object: obj,
        };
        if tx.send(Ok(event)).await.is_err() {
            return;
        }
    }
}

/// The events.k8s.io Events about orcaops objects matching kind, namespace and name
/// (None: any), newest first, at most `limit`.
pub(super) async fn list_events(
    client: &kube::Client,
    query: EventQuery<'_>,
) -> Result<Vec<Event>> {
    let EventQuery {
        kind, name, limit, ..
    } = query;
    let api: Api<KubeEvent> = match query.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut selector = Vec::new();
    if let Some(kind) = kind {
        selector.push(format!("regarding.kind={kind}"));
    }
    if let Some(name) = name {
        selector.push(format!("regarding.name={name}"));
    }
    let mut params = ListParams::default();
    if !selector.is_empty() {
        params = params.fields(&selector.join(","));
    }
    let list = api.list(&params).await.map_err(StoreError::Kube)?;
    let mut events: Vec<Event> = list
        .items
        .into_iter()
        .filter_map(ours)
        .filter(|e| {
            kind.is_none_or(|k| e.involved_object.kind == k)
                && name.is_none_or(|n| e.involved_object.name == n)
        })
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.last_timestamp));
    events.truncate(limit);
    Ok(events)
}

/// An Event about an orcaops object, as the facade shapes events (core/v1 style).
fn ours(event: KubeEvent) -> Option<Event> {
    let regarding = event.regarding?;
    let group = |v: &str| v.split_once('/').map(|(group, _)| group.to_string());
    if regarding.api_version.as_deref().and_then(group) != group(API_VERSION) {
        return None;
    }
    let time = |t: Option<String>| t.and_then(|t| t.parse::<DateTime<Utc>>().ok());
    let event_time = time(event.event_time.map(|t| t.0.to_string()));
    let created = time(event.metadata.creation_timestamp.map(|t| t.0.to_string()));
    let first = time(event.deprecated_first_timestamp.map(|t| t.0.to_string()))
        .or(event_time)
        .or(created)
        .unwrap_or_default();
    let last = time(
        event
            .series
            .as_ref()
            .map(|s| s.last_observed_time.0.to_string()),
    )
    .or_else(|| time(event.deprecated_last_timestamp.map(|t| t.0.to_string())))
    .unwrap_or(first);
    let count = event
        .series
        .as_ref()
        .map(|s| s.count)
        .or(event.deprecated_count)
        .unwrap_or(1);
    Some(Event {
        involved_object: InvolvedObject {
            kind: regarding.kind.unwrap_or_default(),
            namespace: regarding.namespace.unwrap_or_default(),
            name: regarding.name.unwrap_or_default(),
            uid: regarding.uid.unwrap_or_default(),
        },
        type_: match event.type_.as_deref() {
            Some("Warning") => EventType::Warning,
            _ => EventType::Normal,
        },
        reason: event.reason.unwrap_or_default(),
        message: event.note.unwrap_or_default(),
        count: u32::try_from(count).unwrap_or(1),
        first_timestamp: first,
        last_timestamp: last,
    })
}
