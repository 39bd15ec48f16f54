//! watch: newline-delimited `{"type", "object"}` events (ADDED, MODIFIED, DELETED,
//! BOOKMARK, ERROR) from the store's watch stream, as the Kubernetes API streams them.
//!
//! A watch is gapless: it starts from a list (or a resourceVersion) and continues with
//! `ObjectStore::watch_from`, which replays what followed and hands over to the live feed
//! without a gap or a duplicate (the local store from its history and broadcast feed, the
//! Kubernetes store with an API watch from that version).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::error::ApiError;
use super::selector::Selectors;
use crate::resources::{API_VERSION, Kind, Object};
use crate::store::{ObjectStore, StoreError, WatchEvent, WatchEventType};

/// How often an idle watch that allows bookmarks is told its position (Kubernetes: about
/// a minute; a local store can afford more, and clients resume closer to the present).
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// Lines buffered between the watch task and the connection. When the client reads too
/// slowly, the task waits here and the store's broadcast buffer fills instead: a watcher
/// that falls 4096 events behind gets ERROR 410 and must list again.
const LINES_BUFFERED: usize = 64;
/// The annotation on the BOOKMARK that ends the initial events of `sendInitialEvents`.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// What a watch request asked for.
#[derive(Debug)]
pub(super) struct WatchParams {
    pub kind: Kind,
    pub ns: Option<String>,
    pub selectors: Selectors,
    /// Resume after this resourceVersion; None or "0" starts with the current objects.
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout: Option<Duration>,
}

/// Serves a watch as JSON lines, or as server-sent events when `sse` (the client sent
/// `Accept: text/event-stream`, as a browser's `EventSource` does): each line becomes one
/// `data:` event, so the dashboard reads the same events kubectl does.
pub(super) async fn watch(
    state: AppState,
    params: WatchParams,
    sse: bool,
) -> Result<Response, ApiError> {
    let start = start(state.objects.as_ref(), &params).await?;
    let lines = spawn_watch(start, params, state.shutdown.clone(), BOOKMARK_INTERVAL);
    let lines = tokio_stream::wrappers::ReceiverStream::new(lines);
    if sse {
        let events = lines.map(|line| Ok::<_, Infallible>(sse_event(&line)));
        return Ok((
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(events),
        )
            .into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines.map(Ok::<_, Infallible>)),
    )
        .into_response())
}

/// One watch line (compact JSON, so no newline inside) as a server-sent event.
fn sse_event(line: &[u8]) -> Bytes {
    let json = line.strip_suffix(b"\n").unwrap_or(line);
    let mut event = Vec::with_capacity(json.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(json);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

/// Where a watch starts: the objects to announce as ADDED first, the buffered events to
/// replay after them, the live feed, and the resourceVersion all of that begins at.
pub(super) struct Start {
    initial: Vec<Object>,
    replay: Vec<WatchEvent>,
    feed: BoxStream<'static, Result<WatchEvent, StoreError>>,
    position: u64,
}

fn expired(rv: &str, e: &StoreError) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "Expired",
        format!(
            "too old resource version: {rv} ({e}); list again and watch from the list's resourceVersion"
        ),
    )
}

pub(super) async fn start(
    store: &dyn ObjectStore,
    params: &WatchParams,
) -> Result<Start, ApiError> {
    let resume = params
        .resource_version
        .as_deref()
        .filter(|rv| *rv != "0" && params.send_initial_events != Some(true));
    if let Some(rv) = resume {
        let position: u64 = rv.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion \"{rv}\" is not one this server issued; it is a number from a list or an object"
            ))
        })?;
        let ns = params.ns.as_deref();
        let watch = store
            .watch_from(params.kind, ns, rv, &[])
            .await
            .map_err(|e| match e {
                StoreError::Gone { .. } => expired(rv, &e),
                other => other.into(),
            })?;
        let (replay, feed) = (watch.replay, watch.feed);
        return Ok(Start {
            initial: Vec::new(),
            replay,
            feed,
            position,
        });
    }
    // Without a version: the current objects as ADDED (unless sendInitialEvents=false),
    // then everything after the version the list was read at. Should more than the
    // history's worth of writes land between the two, try again.
    let mut last_error = None;
    for _ in 0..3 {
        let (initial, rv) = if params.send_initial_events == Some(false) {
            (Vec::new(), store.current_resource_version().await?)
        } else {
            store.list(params.kind, params.ns.as_deref()).await?
        };
        match store
            .watch_from(params.kind, params.ns.as_deref(), &rv, &initial)
            .await
        {
            Ok(watch) => {
                let (replay, feed) = (watch.replay, watch.feed);
                return Ok(Start {
                    initial,
                    replay,
                    feed,
                    position: rv.parse().unwrap_or_default(),
                });
            }
            Err(e @ StoreError::Gone { .. }) => last_error = Some(expired(&rv, &e)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_error.expect("three attempts failed"))
}

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    type_: &'static str,
    object: &'a T,
}

fn line<T: Serialize>(type_: &'static str, object: &T) -> Bytes {
    let mut text = serde_json::to_vec(&Line { type_, object }).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

/// What one watcher sees of the store's events: its kind, namespace and selectors.
struct Scope {
    kind: Kind,
    ns: Option<String>,
    selectors: Selectors,
}

impl Scope {
    /// The event this watcher gets for a store event, if any. With selectors, an object
    /// that starts matching is ADDED and one that stops matching is DELETED, so that a
    /// client's cache never keeps an object the selector no longer covers.
    fn translate<'a>(&self, e: &'a WatchEvent) -> Option<(&'static str, &'a Object)> {
        let obj = &e.object;
        if obj.kind != self.kind
            || self
                .ns
                .as_deref()
                .is_some_and(|ns| obj.metadata.namespace.as_deref() != Some(ns))
        {
            return None;
        }
        let now = self.selectors.matches(obj);
        let type_ = match e.type_ {
            WatchEventType::Added => now.then_some("ADDED"),
            WatchEventType::Deleted => now.then_some("DELETED"),
            WatchEventType::Modified => {
                let before = e
                    .previous
                    .as_deref()
                    .map_or(now, |p| self.selectors.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        };
        type_.map(|t| (t, obj))
    }
}

/// Runs the watch as its own task; its lines arrive on the returned channel, which
/// closes when the watch ends (timeout, shutdown, lag, or the client going away).
pub(super) fn spawn_watch(
    start: Start,
    params: WatchParams,
    shutdown: CancellationToken,
    bookmark_every: Duration,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(LINES_BUFFERED);
    let scope = Scope {
        kind: params.kind,
        ns: params.ns,
        selectors: params.selectors,
    };
    let mut watcher = Watcher {
        tx,
        kind: params.kind,
        position: start.position,
    };
    let (bookmarks, initial_end) = (
        params.bookmarks,
        params.bookmarks && params.send_initial_events == Some(true),
    );
    let deadline = params.timeout.map(|t| tokio::time::Instant::now() + t);
    let Start {
        initial,
        replay,
        mut feed,
        ..
    } = start;
    tokio::spawn(async move {
        for obj in initial.iter().filter(|o| scope.selectors.matches(o)) {
            if !watcher.send(line("ADDED", obj)).await {
                return;
            }
        }
        if initial_end && !watcher.bookmark(true).await {
            return;
        }
        for event in &replay {
            if !watcher.event(&scope, event).await {
                return;
            }
        }
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
        let until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until_deadline);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = watcher.tx.closed() => return,
                _ = &mut until_deadline => {
                    // As the Kubernetes watch cache does: tell the client where it stands
                    // right before the watch ends, so it resumes without a gap.
                    if bookmarks {
                        watcher.bookmark(false).await;
                    }
                    return;
                }
                received = feed.next() => match received {
                    Some(Ok(event)) => {
                        if !watcher.event(&scope, &event).await {
                            return;
                        }
                    }
                    Some(Err(StoreError::Lagged { missed })) => {
                        let status = ApiError::new(
                            StatusCode::GONE,
                            "Expired",
                            format!(
                                "the watch fell {missed} events behind the store and lost them; list again and watch from the list's resourceVersion (last seen: {})",
                                watcher.position
                            ),
                        )
                        .to_status();
                        watcher.send(line("ERROR", &status)).await;
                        return;
                    }
                    Some(Err(e)) => {
                        let status = match e {
                            StoreError::Gone { .. } => expired(&watcher.position.to_string(), &e),
                            other => ApiError::from(other),
                        };
                        watcher.send(line("ERROR", &status.to_status())).await;
                        return;
                    }
                    None => return,
                },
                _ = tick.tick(), if bookmarks => {
                    if !watcher.bookmark(false).await {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// The sending half of one watch, and how far through the store's history it is.
struct Watcher {
    tx: mpsc::Sender<Bytes>,
    kind: Kind,
    /// The resourceVersion of the last store event this watcher has considered, sent or
    /// filtered out: what a BOOKMARK reports, and where a client resumes.
    position: u64,
}

impl Watcher {
    /// False when the client has gone.
    async fn send(&self, line: Bytes) -> bool {
        self.tx.send(line).await.is_ok()
    }

    async fn event(&mut self, scope: &Scope, event: &WatchEvent) -> bool {
        if let Ok(rv) = event.object.metadata.resource_version.parse() {
            self.position = rv;
        }
        match scope.translate(event) {
            Some((type_, obj)) => self.send(line(type_, obj)).await,
            None => true,
        }
    }

    /// A BOOKMARK carries only the kind and `metadata.resourceVersion`.
    async fn bookmark(&self, initial_events_end: bool) -> bool {
        let mut metadata = json!({ "resourceVersion": self.position.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ INITIAL_EVENTS_END: "true" });
        }
        let object = json!({
            "apiVersion": API_VERSION,
            "kind": self.kind.as_str(),
            "metadata": metadata,
        });
        self.send(line("BOOKMARK", &object)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::store::LocalStore;

    fn job(name: &str, labels: &[(&str, &str)], phase: &str) -> Object {
        let mut obj = Object::new(Kind::Job, "default", name, json!({}));
        for (k, v) in labels {
            obj.metadata.labels.insert((*k).into(), (*v).into());
        }
        if !phase.is_empty() {
            obj.status = json!({ "phase": phase });
        }
        obj
    }

    fn modified(before: Object, after: Object) -> WatchEvent {
        WatchEvent {
            previous: Some(Arc::new(before)),
            ..WatchEvent::new(WatchEventType::Modified, after)
        }
    }

    fn scope(labels: &str, fields: &str) -> Scope {
        Scope {
            kind: Kind::Job,
            ns: Some("default".into()),
            selectors: Selectors::parse(Some(labels), Some(fields)).unwrap(),
        }
    }

    fn translated(scope: &Scope, e: &WatchEvent) -> Option<&'static str> {
        scope.translate(e).map(|(t, _)| t)
    }

    #[test]
    fn objects_entering_and_leaving_a_selector_are_added_and_deleted() {
        let running = scope("", "status.phase=Running");
        let pending = job("a", &[], "Pending");
        let run = job("a", &[], "Running");
        let done = job("a", &[], "Succeeded");
        assert_eq!(
            translated(&running, &modified(pending, run.clone())),
            Some("ADDED")
        );
        assert_eq!(
            translated(&running, &modified(run.clone(), run.clone())),
            Some("MODIFIED")
        );
        assert_eq!(
            translated(&running, &modified(run, done.clone())),
            Some("DELETED")
        );
        assert_eq!(translated(&running, &modified(done.clone(), done)), None);

        let web = scope("app=web", "");
        let labelled = job("b", &[("app", "web")], "");
        let plain = job("b", &[], "");
        assert_eq!(
            translated(&web, &modified(plain.clone(), labelled.clone())),
            Some("ADDED")
        );
        assert_eq!(
            translated(&web, &modified(labelled.clone(), plain.clone())),
            Some("DELETED")
        );
        assert_eq!(
            translated(&web, &WatchEvent::new(WatchEventType::Added, plain)),
            None
        );
        assert_eq!(
            translated(&web, &WatchEvent::new(WatchEventType::Deleted, labelled)),
            Some("DELETED")
        );
    }

    #[test]
    fn other_kinds_and_namespaces_are_not_seen() {
        let all = scope("", "");
        let mut elsewhere = job("a", &[], "");
        elsewhere.metadata.namespace = Some("other".into());
        assert_eq!(
            translated(&all, &WatchEvent::new(WatchEventType::Added, elsewhere)),
            None
        );
        let policy = Object::new(Kind::Policy, "", "p", json!({}));
        assert_eq!(
            translated(&all, &WatchEvent::new(WatchEventType::Added, policy)),
            None
        );
    }

    async fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).await.unwrap();
        (dir, store)
    }

    fn params(rv: Option<&str>, bookmarks: bool) -> WatchParams {
        WatchParams {
            kind: Kind::Job,
            ns: None,
            selectors: Selectors::default(),
            resource_version: rv.map(String::from),
            bookmarks,
            send_initial_events: None,
            timeout: None,
        }
    }

    async fn next_line(rx: &mut mpsc::Receiver<Bytes>) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a line within 10 s")
            .expect("the watch is still open");
        serde_json::from_slice(&line).unwrap()
    }

    #[tokio::test]
    async fn idle_watches_get_bookmarks_with_their_position() {
        let (_dir, store) = store().await;
        store.create(job("a", &[], "")).await.unwrap();
        let p = params(Some("1"), true);
        let start = start(&store, &p).await.unwrap();
        let mut rx = spawn_watch(
            start,
            p,
            CancellationToken::new(),
            Duration::from_millis(50),
        );
        // An event of another kind moves the position without being sent.
        store
            .create(Object::new(Kind::Policy, "", "p", json!({})))
            .await
            .unwrap();
        let bookmark = loop {
            let line = next_line(&mut rx).await;
            if line["object"]["metadata"]["resourceVersion"] == "2" {
                break line;
            }
        };
        assert_eq!(bookmark["type"], "BOOKMARK");
        assert_eq!(bookmark["object"]["kind"], "Job");
        assert!(bookmark["object"]["spec"].is_null(), "{bookmark}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watcher_that_falls_behind_gets_error_410_and_the_end() {
        let (_dir, store) = store().await;
        let p = params(None, false);
        let start = start(&store, &p).await.unwrap();
        let mut rx = spawn_watch(start, p, CancellationToken::new(), BOOKMARK_INTERVAL);
        // Nobody reads: 64 lines fill the channel, then the broadcast buffer (4096) overflows.
        for i in 0..(4096 + LINES_BUFFERED + 200) {
            store.create(job(&format!("j{i}"), &[], "")).await.unwrap();
        }
        let mut last = Value::Null;
        while let Some(line) = rx.recv().await {
            last = serde_json::from_slice(&line).unwrap();
        }
        assert_eq!(last["type"], "ERROR", "{last}");
        assert_eq!(last["object"]["kind"], "Status");
        assert_eq!(last["object"]["code"], 410);
        assert_eq!(last["object"]["reason"], "Expired");
    }

    #[tokio::test]
    async fn timeouts_end_the_watch_after_a_bookmark() {
        let (_dir, store) = store().await;
        let mut p = params(None, true);
        p.timeout = Some(Duration::from_millis(100));
        p.send_initial_events = Some(true);
        store.create(job("a", &[], "")).await.unwrap();
        let start = start(&store, &p).await.unwrap();
        let mut rx = spawn_watch(start, p, CancellationToken::new(), BOOKMARK_INTERVAL);
        assert_eq!(next_line(&mut rx).await["type"], "ADDED");
        let end = next_line(&mut rx).await;
        assert_eq!(end["type"], "BOOKMARK");
        assert_eq!(
            end["object"]["metadata"]["annotations"][INITIAL_EVENTS_END],
            "true"
        );
        let last = next_line(&mut rx).await;
        assert_eq!(last["type"], "BOOKMARK");
        assert_eq!(last["object"]["metadata"]["resourceVersion"], "1");
        assert!(rx.recv().await.is_none(), "the watch ends at its timeout");
    }
}
