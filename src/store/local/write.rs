//! Object writes, committed in groups: writes that arrive while a transaction commits
//! wait in a queue, and the next writer to take the lock commits all of them in one
//! transaction. Each keeps its own resourceVersion and watch event, in order; only the
//! per-transaction costs (BEGIN, the revision row, COMMIT) are shared.
//!
//! Under load this is what lets one SQLite writer keep up: a transaction costs several
//! round trips to SQLite's thread and a WAL commit, a queued write only two statements.

use std::sync::Arc;

use sqlx::SqliteConnection;
use tokio::sync::oneshot;

use super::decide::Decision;
use super::labels;
use super::{DELETE_OBJECT, Inner, SELECT_OBJECT, UPSERT_OBJECT, Written, detached, parse_object};
use crate::resources::{Object, ObjectKey};
use crate::store::{Result, StoreError, WatchEvent, WatchEventType};

/// Decides a write from the stored object. `Fn`, not `FnOnce`: when a group fails as a
/// whole, each of its writes is decided again in a transaction of its own.
pub(super) type Decide = Box<dyn Fn(Option<Object>) -> Result<Decision> + Send + Sync>;

pub(super) struct PendingWrite {
    key: ObjectKey,
    decide: Decide,
    done: oneshot::Sender<Result<Written>>,
}

/// The largest group committed in one transaction; more stay queued for the next one.
const MAX_GROUP: usize = 256;

const SET_REVISION: &str = "UPDATE store_revision SET revision = ?1 WHERE id = 1";

impl Inner {
    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<PendingWrite>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Queues one write and sees it committed and published. It runs to completion even if
/// the caller stops waiting: a write committed but never published would leave every
/// watcher with a gap.
pub(super) async fn write(inner: &Arc<Inner>, key: ObjectKey, decide: Decide) -> Result<Written> {
    let (done, result) = oneshot::channel();
    inner.pending().push(PendingWrite { key, decide, done });
    let committer = Arc::clone(inner);
    detached(async move {
        commit_pending(&committer).await;
        Ok(())
    })
    .await?;
    // Whoever held the lock before us committed our write, or we did: it is done.
    result.await.unwrap_or_else(|_| {
        Err(StoreError::Io(std::io::Error::other(
            "a store write was dropped before it was committed",
        )))
    })
}

/// Takes the writer lock and commits what is queued as one group. One group per turn:
/// every queued write has a committer of its own waiting for the lock, so nothing is
/// left behind, and the lock (which is fair) still reaches the run-record writers and
/// `watch_since` between groups.
async fn commit_pending(inner: &Inner) {
    let mut writer = inner.writer.lock().await;
    let group: Vec<PendingWrite> = {
        let mut pending = inner.pending();
        let n = pending.len().min(MAX_GROUP);
        pending.drain(..n).collect()
    };
    if group.is_empty() {
        return;
    }
    inner.renew_writer_if_stale(&mut writer).await;
    let committed = commit_group(inner, &mut writer, &group).await;
    match inner.note(&mut writer, committed).await {
        Ok(results) => deliver(group, results),
        Err(err) if group.len() == 1 => deliver(group, vec![Err(err)]),
        Err(err) => {
            // One write broke the transaction (a disk error, a constraint): find out
            // which by committing each alone, so the others still succeed.
            tracing::warn!(error = %err, writes = group.len(), "a grouped store write failed; retrying each write alone");
            for one in group {
                inner.renew_writer_if_stale(&mut writer).await;
                let committed = commit_group(inner, &mut writer, std::slice::from_ref(&one)).await;
                let result = match inner.note(&mut writer, committed).await {
                    Ok(mut results) => results.pop().expect("one result per write"),
                    Err(err) => Err(err),
                };
                let _ = one.done.send(result);
            }
        }
    }
}

fn deliver(group: Vec<PendingWrite>, results: Vec<Result<Written>>) {
    for (write, result) in group.into_iter().zip(results) {
        // The caller may have stopped waiting; the write stands either way.
        let _ = write.done.send(result);
    }
}

/// One transaction for `group`. The outer error means nothing was committed; the inner
/// results are each write's own outcome (a refused write does not stop the others).
async fn commit_group(
    inner: &Inner,
    writer: &mut SqliteConnection,
    group: &[PendingWrite],
) -> Result<Vec<Result<Written>>> {
    use sqlx::Connection;
    // Every committed write has been published, so the history's head is the last
    // committed revision; the writer lock keeps it so until we publish ours.
    let mut revision = inner.history().head();
    let mut results = Vec::with_capacity(group.len());
    let mut events = Vec::new();
    // IMMEDIATE takes the write lock up front, so the reads below cannot go stale.
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    for write in group {
        let key = &write.key;
        let document: Option<String> = sqlx::query_scalar(SELECT_OBJECT)
            .bind(key.kind.as_str())
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&mut *tx)
            .await?;
        let stored_len = document.as_ref().map_or(0, String::len);
        let existing = document.as_deref().map(parse_object).transpose()?;
        let previous = existing.clone().map(Arc::new);
        let (mut object, type_) = match (write.decide)(existing) {
            Ok(Decision::Put(object, type_)) => (object, type_),
            Ok(Decision::Remove(object)) => (object, WatchEventType::Deleted),
            Ok(Decision::Keep(object)) => {
                results.push(Ok(Written {
                    object,
                    event: None,
                }));
                continue;
            }
            Err(err) => {
                results.push(Err(err));
                continue;
            }
        };
        revision += 1;
        object.metadata.resource_version = revision.to_string();
        // What the event holds in the watch history, measured by the stored JSON: the
        // object, and for a change the object it replaced as well.
        let weight;
        if type_ == WatchEventType::Deleted {
            weight = stored_len;
            sqlx::query(DELETE_OBJECT)
                .bind(key.kind.as_str())
                .bind(&key.namespace)
                .bind(&key.name)
                .execute(&mut *tx)
                .await?;
            let before = previous.as_deref().map(|p| &p.metadata.labels);
            labels::sync(&mut tx, key, before, None).await?;
        } else {
            let json = serde_json::to_string(&object)?;
            weight = json.len()
                + if type_ == WatchEventType::Modified {
                    stored_len
                } else {
                    0
                };
            sqlx::query(UPSERT_OBJECT)
                .bind(key.kind.as_str())
                .bind(&key.namespace)
                .bind(&key.name)
                .bind(&object.metadata.uid)
                .bind(i64::try_from(revision).unwrap_or(i64::MAX))
                .bind(json)
                .execute(&mut *tx)
                .await?;
            let before = previous.as_deref().map(|p| &p.metadata.labels);
            labels::sync(&mut tx, key, before, Some(&object.metadata.labels)).await?;
        }
        tracing::debug!(kind = %key.kind, namespace = %key.namespace, name = %key.name, revision, event = ?type_, "stored");
        events.push((
            revision,
            weight,
            WatchEvent {
                type_,
                object: object.clone(),
                previous: previous.filter(|_| type_ == WatchEventType::Modified),
            },
        ));
        results.push(Ok(Written {
            object,
            event: Some(type_),
        }));
    }
    if events.is_empty() {
        tx.rollback().await?;
        return Ok(results);
    }
    sqlx::query(SET_REVISION)
        .bind(i64::try_from(revision).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut history = inner.history();
    for (revision, weight, event) in events {
        history.push(revision, event.clone(), weight);
        // No receiver is not an error: nobody is watching yet.
        let _ = inner.feed.send(event);
    }
    Ok(results)
}
