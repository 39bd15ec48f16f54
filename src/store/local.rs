//! The local store: every object in one SQLite file (`<data_dir>/orcaops.db`, WAL mode),
//! one global resourceVersion, and a watch stream fed from the same writes.
//!
//! All writes go through one connection behind one lock, so resourceVersions are taken,
//! committed and announced in order; reads use a pool (WAL lets them run beside the writer).

pub(in crate::store) mod decide;
mod health;
mod history;
pub mod keys;
mod labels;
mod records;
pub mod secrets;
#[cfg(test)]
mod tests;
mod tombstones;
mod write;

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::broadcast;

use self::decide::Decision;
use self::history::WatchHistory;
use super::{ApplyOutcome, PageQuery, Result, StoreError, WatchEvent, WatchEventType};
use crate::resources::{Kind, Object, ObjectKey};

/// The database file inside the data dir.
pub const DB_FILE: &str = "orcaops.db";
/// How many recent watch events [`LocalStore::watch_since`] can replay.
const WATCH_HISTORY: usize = 10_000;
/// How far a slow watcher may fall behind before it gets `RecvError::Lagged`.
const WATCH_CAPACITY: usize = 4096;
/// How long a statement waits for a lock held by another process on the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READERS: u32 = 8;
/// How often the WAL is copied back into the database file, off the write path. A
/// checkpoint run by the committing connection (SQLite's default, every 1000 pages)
/// stalls that commit and every write queued behind it.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The writer still checkpoints by itself past this many WAL pages (about 40 MiB), so
/// the log stays bounded should the background checkpoints stop.
const WRITER_CHECKPOINT_PAGES: &str = "10000";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const SELECT_OBJECT: &str =
    "SELECT document FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3";
const SELECT_REVISION: &str = "SELECT revision FROM store_revision WHERE id = 1";
const UPSERT_OBJECT: &str = "INSERT INTO objects (kind, namespace, name, uid, resource_version, document) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (kind, namespace, name) DO UPDATE SET \
     uid = excluded.uid, resource_version = excluded.resource_version, document = excluded.document";
// A page of a list: the objects of a kind (in one namespace when ?2 is not NULL) after
// the key (?3, ?4), in key order. The empty key sorts before every stored one (names are
// never empty), so the first page starts after ('', '').
const SELECT_PAGE: &str = "SELECT document FROM objects \
     WHERE kind = ?1 AND (?2 IS NULL OR namespace = ?2) AND (namespace, name) > (?3, ?4) \
     ORDER BY namespace, name LIMIT ?5";
const COUNT_PAGE: &str = "SELECT COUNT(*) FROM objects \
     WHERE kind = ?1 AND (?2 IS NULL OR namespace = ?2) AND (namespace, name) > (?3, ?4)";
const DELETE_OBJECT: &str = "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3";

/// The SQLite store of local mode. Cloning is cheap and every clone is the same store.
///
/// Watching: [`watch`](Self::watch) and [`watch_since`](Self::watch_since) hand out
/// `tokio::sync::broadcast` receivers that buffer up to 4096 events. A receiver that falls
/// further behind gets `RecvError::Lagged` and has lost events: it must list again and
/// resume with `watch_since` from the list's resourceVersion.
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    /// This store's identity, made once when the database is created.
    instance: String,
    readers: SqlitePool,
    /// The only connection that writes. Holding this lock across the transaction and
    /// the publication of its event is what keeps watch events in resourceVersion order.
    writer: tokio::sync::Mutex<SqliteConnection>,
    /// Taken briefly, and only inside `writer` when both are held.
    history: Mutex<WatchHistory>,
    feed: broadcast::Sender<WatchEvent>,
    /// Object writes waiting for the writer (see `write.rs`).
    pending: Mutex<Vec<write::PendingWrite>>,
    /// How to open the writer again after the disk failed it (see `health.rs`).
    writer_options: SqliteConnectOptions,
    /// The failure of the last write, while writes fail.
    write_failure: Mutex<Option<health::WriteFailure>>,
    /// The cipher of the secrets, read from (or made as) `secrets.key` on first use.
    secret_key: std::sync::OnceLock<secrets::SecretKey>,
    /// When events older than [`EVENT_TTL`] were last pruned (Unix microseconds).
    events_pruned: std::sync::atomic::AtomicI64,
}

/// One page of a list; see [`LocalStore::list_page`].
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Object>,
    pub resource_version: String,
    /// How many objects follow the page (0 when it is the last one).
    pub remaining: usize,
}

/// The result of one object write.
struct Written {
    object: Object,
    /// None when the write changed nothing and was skipped.
    event: Option<WatchEventType>,
}

impl LocalStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory if missing and
    /// running the embedded migrations.
    pub async fn open(data_dir: &Path) -> Result<LocalStore> {
        Self::open_with_history(data_dir, WATCH_HISTORY).await
    }

    async fn open_with_history(data_dir: &Path, history: usize) -> Result<LocalStore> {
        tokio::fs::create_dir_all(data_dir).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", data_dir.display()),
            )
        })?;
        let path = data_dir.join(DB_FILE);
        // WAL with synchronous=NORMAL: a commit is an append to the log and no fsync, so a
        // power loss can lose the last commits but never corrupts the file.
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer_options = options
            .clone()
            .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES);
        let opened = async {
            let mut writer = writer_options.connect().await?;
            MIGRATOR.run(&mut writer).await?;
            let revision: i64 = sqlx::query_scalar(SELECT_REVISION)
                .fetch_one(&mut writer)
                .await?;
            let instance: String =
                sqlx::query_scalar("SELECT instance FROM store_instance WHERE id = 1")
                    .fetch_one(&mut writer)
                    .await?;
            let readers = SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(options)
                .await?;
            Ok::<_, StoreError>((writer, revision, instance, readers))
        };
        let (writer, revision, instance, readers) = opened.await.map_err(|e| match e {
            e if e.is_storage_failure() => StoreError::Io(io::Error::other(format!(
                "cannot open the store {}: {e}; the data dir must be writable and have free space",
                path.display()
            ))),
            e => e,
        })?;
        tracing::debug!(path = %path.display(), revision, "opened the local store");
        let inner = Arc::new(Inner {
            data_dir: data_dir.to_path_buf(),
            instance,
            readers,
            writer: tokio::sync::Mutex::new(writer),
            history: Mutex::new(WatchHistory::new(
                to_revision(revision),
                history,
                history::HISTORY_BYTES,
            )),
            feed: broadcast::channel(WATCH_CAPACITY).0,
            pending: Mutex::new(Vec::new()),
            writer_options,
            write_failure: Mutex::new(None),
            secret_key: std::sync::OnceLock::new(),
            events_pruned: std::sync::atomic::AtomicI64::new(0),
        });
        spawn_checkpointer(Arc::downgrade(&inner));
        Ok(LocalStore { inner })
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// A random identity of this store, stable across restarts. Containers carry it as
    /// the `orcaops.dev/instance` label, so an orcaops only cleans up its own.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Object>> {
        let key = decide::stored_key(key);
        let document: Option<String> = sqlx::query_scalar(SELECT_OBJECT)
            .bind(key.kind.as_str())
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&self.inner.readers)
            .await?;
        document.as_deref().map(parse_object).transpose()
    }

    /// The objects of one kind in `namespace` (None = all namespaces; ignored for
    /// cluster-scoped kinds), sorted by namespace and name, with the resourceVersion they
    /// are current at: watch from there with [`watch_since`](Self::watch_since).
    pub async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<(Vec<Object>, String)> {
        let page = self.list_page(PageQuery::all(kind, namespace)).await?;
        Ok((page.items, page.resource_version))
    }

    /// One page of [`list`](Self::list): the objects after `after` (by namespace, then
    /// name) that the label selector selects (read from the label index, see `labels.rs`),
    /// at most `limit` of them, how many more follow, and the resourceVersion the page is
    /// current at.
    pub async fn list_page(&self, query: PageQuery<'_>) -> Result<ListPage> {
        let PageQuery {
            kind,
            namespace,
            after,
            limit,
            labels,
        } = query;
        let namespace = namespace.filter(|_| kind.namespaced());
        let (after_ns, after_name) = after.unwrap_or(("", ""));
        // -1 is SQLite's "no limit"; one more than asked tells whether more follow.
        let fetch = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX - 1) + 1);
        // One read transaction is one snapshot: the objects and the version agree.
        let mut tx = self.inner.readers.begin().await?;
        let selected = labels
            .filter(|s| !s.is_empty())
            .map(|selector| labels::Selected {
                kind,
                namespace,
                after: (after_ns, after_name),
                selector,
            });
        let mut documents: Vec<String> = match &selected {
            Some(selected) => labels::page(&mut tx, selected, fetch).await?,
            None => {
                sqlx::query_scalar(SELECT_PAGE)
                    .bind(kind.as_str())
                    .bind(namespace)
                    .bind(after_ns)
                    .bind(after_name)
                    .bind(fetch)
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        let mut remaining = 0;
        if let Some(limit) = limit
            && documents.len() > limit
        {
            documents.truncate(limit);
            let count = match &selected {
                Some(selected) => labels::count(&mut tx, selected).await?,
                None => {
                    let count: i64 = sqlx::query_scalar(COUNT_PAGE)
                        .bind(kind.as_str())
                        .bind(namespace)
                        .bind(after_ns)
                        .bind(after_name)
                        .fetch_one(&mut *tx)
                        .await?;
                    usize::try_from(count).unwrap_or_default()
                }
            };
            remaining = count.saturating_sub(limit);
        }
        let revision: i64 = sqlx::query_scalar(SELECT_REVISION)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let items = documents
            .iter()
            .map(|d| parse_object(d))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListPage {
            items,
            resource_version: revision.to_string(),
            remaining,
        })
    }

    /// Stores a new object: assigns uid, generation 1, creationTimestamp and
    /// resourceVersion, and keeps the given status. AlreadyExists if present. Emits ADDED.
    pub async fn create(&self, obj: Object) -> Result<Object> {
        let obj = decide::validated(obj)?;
        let now = Utc::now();
        Ok(self
            .write(obj.key(), move |existing| {
                decide::create(existing, obj.clone(), now)
            })
            .await?
            .object)
    }

    /// Create-or-update from a declarative source (the folder, `orcaops apply`).
    ///
    /// Absent: created as by [`create`](Self::create). Present: labels, annotations and
    /// spec are replaced, except that control annotations (`resources::keys::CONTROL`)
    /// the stored object has and the new one lacks are kept, so re-applying a file does
    /// not withdraw a cancel request. The generation moves only when the spec changed;
    /// status is never touched. When nothing changed: `Unchanged`, no write, no event.
    pub async fn apply(&self, obj: Object) -> Result<(ApplyOutcome, Object)> {
        let obj = decide::validated(obj)?;
        let now = Utc::now();
        let written = self
            .write(obj.key(), move |existing| {
                decide::apply(existing, obj.clone(), now)
            })
            .await?;
        let outcome = match written.event {
            Some(WatchEventType::Added) => ApplyOutcome::Created,
            Some(_) => ApplyOutcome::Configured,
            None => ApplyOutcome::Unchanged,
        };
        Ok((outcome, written.object))
    }

    /// Full replace (PUT) of labels, annotations, finalizers, ownerReferences and spec;
    /// status untouched. A non-empty resourceVersion that is stale is a Conflict.
    /// Like Kubernetes, a replace that changes nothing returns the stored object without
    /// a new resourceVersion or watch event.
    pub async fn replace(&self, obj: Object) -> Result<Object> {
        let obj = decide::validated(obj)?;
        Ok(self
            .write(obj.key(), move |existing| {
                decide::replace(existing, obj.clone())
            })
            .await?
            .object)
    }

    /// Writes the status only. `resource_version` "" writes unconditionally; otherwise a
    /// stale one is a Conflict. Emits MODIFIED, unless the status is already this one
    /// (then nothing is written, as in Kubernetes).
    pub async fn update_status(
        &self,
        key: &ObjectKey,
        resource_version: &str,
        status: serde_json::Value,
    ) -> Result<Object> {
        let key = decide::stored_key(key);
        let expected = resource_version.to_string();
        let target = key.clone();
        let decision =
            move |existing| decide::update_status(existing, &target, &expected, status.clone());
        Ok(self.write(key, decision).await?.object)
    }

    /// Deletes at once (finalizers are not waited for). Emits DELETED with the last state,
    /// its resourceVersion bumped as Kubernetes does.
    pub async fn delete(&self, key: &ObjectKey) -> Result<Object> {
        let key = decide::stored_key(key);
        let target = key.clone();
        Ok(self
            .write(key, move |existing| decide::delete(existing, &target))
            .await?
            .object)
    }

    /// Every change from now on. See the type's documentation about lagging.
    pub fn watch(&self) -> broadcast::Receiver<WatchEvent> {
        self.inner.feed.subscribe()
    }

    /// The events after resourceVersion `rv` that the store still remembers (the last
    /// 10 000), and a receiver for everything after them: together they have no gap and no
    /// duplicate. `Gone` when `rv` is older than that memory (or not a version this store
    /// has reached): list again. An empty `rv` means "from now", with nothing to replay.
    pub async fn watch_since(
        &self,
        rv: &str,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<WatchEvent>)> {
        if rv.is_empty() {
            return Ok((Vec::new(), self.watch()));
        }
        let revision: u64 = rv
            .parse()
            .map_err(|_| StoreError::Gone { rv: rv.to_string() })?;
        // With the writer lock held every committed write has been published, so a version
        // that `list` read from the database is already in the history.
        let _writer = self.inner.writer.lock().await;
        let history = self.inner.history();
        let receiver = self.inner.feed.subscribe();
        Ok((history.since(revision, rv)?, receiver))
    }

    /// Whether a watch from `rv` can still be served without listing again: false once
    /// the events after it have left the in-memory history (or it was never reached).
    pub fn can_resume_from(&self, rv: &str) -> bool {
        rv.parse()
            .is_ok_and(|revision| self.inner.history().covers(revision))
    }

    /// The resourceVersion of the newest change published to watchers.
    pub async fn current_resource_version(&self) -> Result<String> {
        Ok(self.inner.history().head().to_string())
    }

    /// Runs one object write to completion (committed with whatever else is queued),
    /// even if the caller stops waiting.
    async fn write<D>(&self, key: ObjectKey, decide: D) -> Result<Written>
    where
        D: Fn(Option<Object>) -> Result<Decision> + Send + Sync + 'static,
    {
        write::write(&self.inner, key, Box::new(decide)).await
    }
}

impl Inner {
    fn history(&self) -> MutexGuard<'_, WatchHistory> {
        // The history is consistent after every statement, so a panic elsewhere while
        // holding the lock cannot have left it half-updated.
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] from a reader connection (PASSIVE: it
/// never waits for the writer or blocks it), for as long as the store exists.
fn spawn_checkpointer(inner: std::sync::Weak<Inner>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&inner.readers)
                .await
            {
                tracing::debug!(error = %e, "WAL checkpoint failed; the next one retries");
            }
        }
    });
}

/// Runs `work` as its own task, so dropping the caller's future does not cancel it.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(StoreError::Io(io::Error::other(format!(
            "a store write was cancelled: {err}"
        )))),
    }
}

fn parse_object(document: &str) -> Result<Object> {
    Ok(serde_json::from_str(document)?)
}

/// Revisions start at 0 and only grow, so the stored i64 is never negative.
fn to_revision(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or_default()
}
