//! The watch of the Kubernetes store: one kube-runtime watcher per kind over all
//! namespaces, turned into our [`WatchEvent`]s. A cache of the last state of each object
//! gives MODIFIED its `previous` (the controllers skip status-only changes with it) and
//! turns a relist into the ADDED and DELETED events it implies.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::convert::{api_resource, from_dynamic};
use crate::resources::{Kind, Object, ObjectKey};
use crate::store::{WatchEvent, WatchEventType};

/// The last state of every object of one kind, as its watcher last saw it.
#[derive(Debug, Default)]
pub(super) struct KindCache {
    objects: HashMap<ObjectKey, Arc<Object>>,
    /// During a (re)list: the keys listed so far. Whatever the cache holds beyond them
    /// when the list is done was deleted while nobody watched.
    relisting: Option<HashSet<ObjectKey>>,
}

impl KindCache {
    /// The events one watcher event means.
    pub fn handle(&mut self, event: watcher::Event<Object>) -> Vec<WatchEvent> {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                if let Some(listed) = &mut self.relisting {
                    listed.insert(obj.key());
                }
                self.upsert(obj).into_iter().collect()
            }
            watcher::Event::InitDone => {
                let Some(listed) = self.relisting.take() else {
                    return Vec::new();
                };
                let vanished: Vec<ObjectKey> = self
                    .objects
                    .keys()
                    .filter(|key| !listed.contains(*key))
                    .cloned()
                    .collect();
                vanished
                    .into_iter()
                    .filter_map(|key| self.objects.remove(&key))
                    .map(|last| WatchEvent::new(WatchEventType::Deleted, unshared(last)))
                    .collect()
            }
            watcher::Event::Apply(obj) => self.upsert(obj).into_iter().collect(),
            watcher::Event::Delete(obj) => {
                self.objects.remove(&obj.key());
                vec![WatchEvent::new(WatchEventType::Deleted, obj)]
            }
        }
    }

    /// ADDED for an object not seen before, MODIFIED (with `previous`) for a new version
    /// of one, nothing for a version already seen (a relist repeats them all).
    fn upsert(&mut self, obj: Object) -> Option<WatchEvent> {
        let key = obj.key();
        let previous = self.objects.insert(key, Arc::new(obj.clone()));
        match previous {
            None => Some(WatchEvent::new(WatchEventType::Added, obj)),
            Some(previous)
                if previous.metadata.resource_version == obj.metadata.resource_version =>
            {
                None
            }
            Some(previous) => Some(WatchEvent {
                type_: WatchEventType::Modified,
                object: obj,
                previous: Some(previous),
            }),
        }
    }
}

fn unshared(obj: Arc<Object>) -> Object {
    Arc::try_unwrap(obj).unwrap_or_else(|shared| (*shared).clone())
}

/// Watches one kind in every namespace until `stop`, sending what changes to `feed`.
/// Errors (the API unreachable, the CRD missing, a watch expired) are logged and retried
/// with the watcher's default backoff; this never gives up while the store exists.
pub(super) async fn watch_kind(
    client: kube::Client,
    kind: Kind,
    feed: broadcast::Sender<WatchEvent>,
    stop: CancellationToken,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &api_resource(kind));
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut cache = KindCache::default();
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            Some(Ok(event)) => {
                let Some(event) = ours(kind, event) else {
                    continue;
                };
                for change in cache.handle(event) {
                    // No receiver is not an error: nobody is listening yet.
                    let _ = feed.send(change);
                }
            }
            Some(Err(error)) => {
                tracing::warn!(%kind, %error, "the watch failed; retrying with backoff");
            }
            None => return,
        }
    }
}

/// The watcher event with our objects in it; None (logged) when an object does not
/// convert, which only a CRD at another version than ours could cause.
fn ours(kind: Kind, event: watcher::Event<DynamicObject>) -> Option<watcher::Event<Object>> {
    let convert = |obj: DynamicObject| {
        let name = obj.metadata.name.clone().unwrap_or_default();
        from_dynamic(kind, obj)
            .map_err(|error| {
                tracing::warn!(%kind, name, %error, "skipping an object the store cannot read");
            })
            .ok()
    };
    Some(match event {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::InitApply(obj) => watcher::Event::InitApply(convert(obj)?),
        watcher::Event::Apply(obj) => watcher::Event::Apply(convert(obj)?),
        watcher::Event::Delete(obj) => watcher::Event::Delete(convert(obj)?),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(name: &str, rv: &str, image: &str) -> Object {
        let mut obj = Object::new(Kind::Job, "default", name, json!({"image": image}));
        obj.metadata.resource_version = rv.into();
        obj
    }

    fn summary(events: &[WatchEvent]) -> Vec<(WatchEventType, String)> {
        events
            .iter()
            .map(|e| (e.type_, e.object.metadata.name.clone()))
            .collect()
    }

    #[test]
    fn a_new_version_is_modified_and_carries_the_previous_one() {
        let mut cache = KindCache::default();
        let added = cache.handle(watcher::Event::Apply(job("a", "1", "alpine")));
        assert_eq!(summary(&added), [(WatchEventType::Added, "a".into())]);
        let modified = cache.handle(watcher::Event::Apply(job("a", "2", "debian")));
        assert_eq!(modified[0].type_, WatchEventType::Modified);
        let previous = modified[0].previous.as_ref().expect("previous");
        assert_eq!(previous.spec["image"], "alpine");
        assert_eq!(modified[0].object.spec["image"], "debian");
        // The same version again (a watch restarted from an older version) is no change.
        assert!(
            cache
                .handle(watcher::Event::Apply(job("a", "2", "debian")))
                .is_empty()
        );
        let deleted = cache.handle(watcher::Event::Delete(job("a", "3", "debian")));
        assert_eq!(summary(&deleted), [(WatchEventType::Deleted, "a".into())]);
        assert_eq!(
            summary(&cache.handle(watcher::Event::Apply(job("a", "4", "alpine")))),
            [(WatchEventType::Added, "a".into())]
        );
    }

    #[test]
    fn a_relist_adds_the_new_changes_the_moved_and_deletes_the_vanished() {
        let mut cache = KindCache::default();
        let mut events = Vec::new();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(job("kept", "1", "alpine")),
            watcher::Event::InitApply(job("moved", "2", "alpine")),
            watcher::Event::InitApply(job("gone", "3", "alpine")),
            watcher::Event::InitDone,
        ] {
            events.extend(cache.handle(event));
        }
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.type_ == WatchEventType::Added));

        // The watch broke; meanwhile `moved` changed, `gone` was deleted, `new` created.
        let mut events = Vec::new();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(job("kept", "1", "alpine")),
            watcher::Event::InitApply(job("moved", "7", "debian")),
            watcher::Event::InitApply(job("new", "8", "alpine")),
            watcher::Event::InitDone,
        ] {
            events.extend(cache.handle(event));
        }
        assert_eq!(
            summary(&events),
            [
                (WatchEventType::Modified, "moved".into()),
                (WatchEventType::Added, "new".into()),
                (WatchEventType::Deleted, "gone".into()),
            ]
        );
        assert_eq!(events[0].previous.as_ref().unwrap().spec["image"], "alpine");
        assert_eq!(events[2].object.metadata.resource_version, "3");
    }
}
