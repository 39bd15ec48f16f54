//! The watched folder: YAML files in a directory are the desired state of the store.
//!
//! Every good document is applied, marked `orcaops.dev/source: file:<relative path>`; what a
//! deleted file owned is deleted, and so is a document removed from a file that now parses
//! cleanly. A file with any broken document prunes nothing, so a typo never deletes a running
//! job: the last good version stays in force, and the broken document becomes a Warning event.
//! Files are only ever read.
//!
//! An object its controller deleted on purpose (a Job's `ttlSecondsAfterFinished`) while
//! its file stays is not created again from the same spec: the store keeps a tombstone
//! ([`crate::store::tombstone`]), and a `NotRecreated` event says so. Links that lead
//! out of the folder are not followed (see `scan`).

mod plan;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditLog, Entry};
use crate::policy::{Door, Policies};
use crate::resources::parse::DocumentError;
use crate::resources::{Kind, Object, ObjectKey};
use crate::store::{
    ApplyOutcome, EventType, InvolvedObject, NewEvent, ObjectStore, StoreError, Tombstone,
    spec_digest,
};
use plan::{Clash, Owners};
use scan::Files;

/// How long to gather file events before acting: an editor's save is several events
/// (write, close, rename), and a batch is read once. Short, because file-to-container
/// latency is what a person waits for.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// How long to wait before reading the folder again after a failed sync.
const RETRY: Duration = Duration::from_secs(1);

type Batch = Vec<notify::Result<notify::Event>>;

#[derive(thiserror::Error, Debug)]
pub enum SourceError {
    #[error("cannot read the watched folder {}: {source}", dir.display())]
    ReadDir { dir: PathBuf, source: io::Error },
    #[error("cannot watch the folder {}: {source}", dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
    #[error("the folder source cannot use the store: {0}")]
    Store(#[from] StoreError),
}

type Result<T, E = SourceError> = std::result::Result<T, E>;

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    /// YAML files in the folder.
    pub files: usize,
    pub created: Vec<ObjectKey>,
    pub configured: Vec<ObjectKey>,
    pub unchanged: usize,
    pub deleted: Vec<ObjectKey>,
    /// Documents that did not parse or validate.
    pub invalid: Vec<DocumentError>,
    /// Declarations not applied because another owner has the object (one message each).
    pub clashes: Vec<String>,
    /// Writes the store refused (one message each).
    pub failed: Vec<String>,
    /// Links that lead out of the folder, not followed (one message each).
    pub links_out: Vec<String>,
}

/// Which keys and files one incremental sync is about.
struct Scope {
    keys: BTreeSet<ObjectKey>,
    files: BTreeSet<String>,
}

/// What a batch of file events asks for.
#[derive(Debug, PartialEq)]
enum Changes {
    /// These files (relative paths) may have changed, appeared or gone.
    Files(BTreeSet<String>),
    /// Events were lost or the folder itself changed: read everything again.
    Rescan,
}

/// The door a file's documents come through, for the policies' reports.
type DoorOf = fn(String) -> Door;

/// Applies the YAML files of a folder (recursively) to a store, and keeps them applied:
/// the local store in local mode, the Kubernetes API with `orcaops sync`.
pub struct FolderSource {
    dir: PathBuf,
    store: Arc<dyn ObjectStore>,
    /// Where namespaced objects go, whatever their files say; and the only namespace
    /// whose objects are pruned (None: as the files say, and everywhere).
    namespace: Option<String>,
    /// Whether objects a file no longer declares are deleted.
    prune: bool,
    /// What every document is reviewed against before it is applied, and which door it
    /// is reported as coming through (None: nothing is reviewed).
    policies: Option<(Arc<Policies>, DoorOf)>,
    /// Where each write (and refusal) is recorded, as actor `folder:<file>`.
    audit: Option<AuditLog>,
}

impl FolderSource {
    pub fn new(dir: PathBuf, store: Arc<dyn ObjectStore>) -> Self {
        FolderSource {
            dir,
            store,
            namespace: None,
            prune: true,
            policies: None,
            audit: None,
        }
    }

    /// Records every create, update and delete the folder makes, and every document a
    /// policy or the store refuses, in `log`, as actor `folder:<file>`.
    pub fn with_audit(mut self, log: AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// Records in the audit log (if any) that `file` did `verb` to `key`, answered `code`.
    fn audit(&self, file: &str, verb: &str, key: &ObjectKey, code: u16, detail: String) {
        if let Some(log) = &self.audit {
            log.record(Entry::on_object(
                format!("folder:{file}"),
                verb,
                key,
                code,
                detail,
            ));
        }
    }

    /// Reviews every document against `policies` before applying it: one an Enforce
    /// policy refuses is not applied (what its file declared before stays in force) and
    /// gets a `PolicyRefused` Warning event naming the file. `door` names where the
    /// findings came from in the policies' reports (`Door::Folder`, `Door::Sync`).
    pub fn with_policies(mut self, policies: Arc<Policies>, door: DoorOf) -> Self {
        self.policies = Some((policies, door));
        self
    }

    /// Puts every namespaced object in `namespace` (as `kubectl apply -n` does) and limits
    /// pruning to it, so that folders synced into different namespaces of one cluster
    /// never delete each other's objects.
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace;
        self
    }

    /// With `false`, objects whose file was deleted (or no longer declares them) are left
    /// in place: the folder only creates and updates.
    pub fn with_prune(mut self, prune: bool) -> Self {
        self.prune = prune;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the whole folder once and converges the store: applies every good document,
    /// prunes what a vanished file (or a document removed from a file that now parses
    /// cleanly) owned.
    pub async fn sync_all(&self) -> Result<SyncReport> {
        let mut files = Files::default();
        self.resync(&mut files).await
    }

    /// [`sync_all`](Self::sync_all), then watches the folder and applies each change until
    /// `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        // Events carry canonical paths; the folder is compared against them.
        let dir = std::fs::canonicalize(&self.dir).map_err(|source| SourceError::ReadDir {
            dir: self.dir.clone(),
            source,
        })?;
        let source = FolderSource {
            dir: dir.clone(),
            ..self
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })
        .map_err(|source| SourceError::Watch {
            dir: dir.clone(),
            source,
        })?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|source| SourceError::Watch {
                dir: dir.clone(),
                source,
            })?;

        // Watching starts first: a change made during the first read is seen by one or the other.
        let mut files = Files::default();
        let report = source.resync(&mut files).await?;
        tracing::info!(
            dir = %dir.display(),
            files = report.files,
            created = report.created.len(),
            configured = report.configured.len(),
            deleted = report.deleted.len(),
            invalid = report.invalid.len(),
            "watching the folder"
        );
        // After a failed sync the cache may be ahead of the store: read everything again soon.
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let changes = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = retry => Changes::Rescan,
                batch = next_batch(&mut rx) => match batch {
                    Some(batch) => {
                        let known: Vec<String> = files.files.keys().cloned().collect();
                        let events_dir = dir.clone();
                        tokio::task::spawn_blocking(move || changes(&events_dir, &known, batch))
                            .await
                            .unwrap_or(Changes::Rescan)
                    }
                    None => return Ok(()),
                },
            };
            let result = match changes {
                Changes::Files(changed) if changed.is_empty() => continue,
                Changes::Files(changed) if retry_at.is_none() => {
                    source.update(&mut files, changed).await
                }
                _ => source.resync(&mut files).await,
            };
            retry_at = match result {
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "the folder source could not sync; it tries again in a second");
                    Some(tokio::time::Instant::now() + RETRY)
                }
            };
        }
    }

    /// Reads every file again, then converges everything.
    async fn resync(&self, files: &mut Files) -> Result<SyncReport> {
        let dir = self.dir.clone();
        let scanned = tokio::task::spawn_blocking(move || scan::scan(&dir))
            .await
            .map_err(|e| SourceError::ReadDir {
                dir: self.dir.clone(),
                source: io::Error::other(e),
            })?
            .map_err(|source| SourceError::ReadDir {
                dir: self.dir.clone(),
                source,
            })?;
        *files = scanned;
        for state in files.files.values_mut() {
            self.place(state);
        }
        self.converge(files, None).await
    }

    /// Reads the `changed` files again, then converges what they declared before, declare
    /// now, and own in the store.
    async fn update(&self, files: &mut Files, changed: BTreeSet<String>) -> Result<SyncReport> {
        let mut keys = BTreeSet::new();
        for rel in &changed {
            if let Some(old) = files.files.get(rel) {
                keys.extend(old.objects.iter().map(Object::key));
            }
        }
        let dir = self.dir.clone();
        let rels: Vec<String> = changed.iter().cloned().collect();
        let read = tokio::task::spawn_blocking(move || {
            rels.into_iter()
                .map(|rel| (scan::read_file(&dir, &rel), rel))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| SourceError::ReadDir {
            dir: self.dir.clone(),
            source: io::Error::other(e),
        })?;
        for (state, rel) in read {
            match state {
                Some(mut state) => {
                    self.place(&mut state);
                    keys.extend(state.objects.iter().map(Object::key));
                    files.files.insert(rel, state);
                }
                None => {
                    files.files.remove(&rel);
                }
            }
        }
        self.converge(
            files,
            Some(Scope {
                keys,
                files: changed,
            }),
        )
        .await
    }

    /// Moves the namespaced objects of a file into the namespace given, if one was.
    fn place(&self, state: &mut scan::FileState) {
        let Some(namespace) = &self.namespace else {
            return;
        };
        for obj in state.objects.iter_mut().filter(|o| o.kind.namespaced()) {
            obj.metadata.namespace = Some(namespace.clone());
        }
    }

    /// Every object of every kind (in the namespace given, if one was), with its source
    /// annotation.
    async fn owners(&self) -> Result<Owners> {
        let mut owners = Owners::new();
        for kind in Kind::ALL {
            let (objects, _) = self.store.list(kind, self.namespace.as_deref()).await?;
            owners.extend(
                objects
                    .into_iter()
                    .map(|obj| (obj.key(), obj.source().map(str::to_string))),
            );
        }
        Ok(owners)
    }

    /// Brings the store in line with `files`, for the keys in `scope` (everything when None).
    async fn converge(&self, files: &Files, scope: Option<Scope>) -> Result<SyncReport> {
        let owners = self.owners().await?;
        let keys = scope.as_ref().map(|scope| {
            let owned = owners.iter().filter(|(_, source)| {
                source
                    .as_deref()
                    .and_then(|s| s.strip_prefix("file:"))
                    .is_some_and(|file| scope.files.contains(file))
            });
            let mut keys = scope.keys.clone();
            keys.extend(owned.map(|(key, _)| key.clone()));
            keys
        });
        let plan = plan::plan(files, &owners, keys.as_ref());
        let mut report = SyncReport {
            files: files.files.len(),
            ..Default::default()
        };

        for (rel, state) in &files.files {
            if scope.as_ref().is_none_or(|s| s.files.contains(rel)) {
                for error in &state.errors {
                    self.invalid_document(error).await;
                    report.invalid.push(error.clone());
                }
                if let Some(real) = &state.link_out {
                    report.links_out.push(self.link_out(rel, real).await);
                }
            }
        }
        for clash in &plan.clashes {
            report.clashes.push(self.clash(clash).await);
        }
        let tombstones = self.tombstones().await;
        for (file, obj) in plan.apply {
            let key = obj.key();
            if let Some(tombstone) = tombstones.iter().find(|t| t.key == key) {
                if !owners.contains_key(&key)
                    && tombstone.source == scan::source_of(&file)
                    && tombstone.spec_digest == spec_digest(&obj.spec)
                {
                    self.not_recreated(&file, &key, &tombstone.reason).await;
                    report.unchanged += 1;
                    continue;
                }
                // A new declaration (or the object is back): a new intent.
                if let Err(e) = self.store.remove_tombstone(&key).await {
                    tracing::warn!(%key, error = %e, "could not remove a tombstone");
                }
            }
            self.apply(&file, obj, &mut report).await;
        }
        let prune = if self.prune { plan.delete } else { Vec::new() };
        for (key, file) in prune {
            let gone = match files.files.contains_key(&file) {
                true => format!("{file} no longer declares it"),
                false => format!("{file} was deleted"),
            };
            self.delete(&key, &file, &gone, &mut report).await;
        }
        Ok(report)
    }

    async fn apply(&self, file: &str, obj: Object, report: &mut SyncReport) {
        let key = obj.key();
        if let Err((code, message)) = self.police(file, &obj).await {
            let first = message.lines().next().unwrap_or_default().to_string();
            self.audit(file, "apply", &key, code, first);
            report.failed.push(message);
            return;
        }
        match self.store.apply(obj).await {
            Ok((ApplyOutcome::Unchanged, _)) => report.unchanged += 1,
            Ok((outcome, stored)) => {
                let (reason, verb, audited, code) = match outcome {
                    ApplyOutcome::Created => ("Applied", "created", "create", 201),
                    _ => ("Configured", "updated", "update", 200),
                };
                self.audit(file, audited, &key, code, String::new());
                tracing::info!(
                    kind = %key.kind, namespace = %key.namespace, name = %key.name, file,
                    generation = stored.metadata.generation, "{verb} from the folder"
                );
                let message = format!(
                    "{verb} from {file} (generation {})",
                    stored.metadata.generation
                );
                self.event(
                    InvolvedObject::of(&stored),
                    EventType::Normal,
                    reason,
                    message,
                )
                .await;
                match outcome {
                    ApplyOutcome::Created => report.created.push(key),
                    _ => report.configured.push(key),
                }
            }
            Err(e) => {
                tracing::warn!(kind = %key.kind, namespace = %key.namespace, name = %key.name, file, error = %e, "the store refused an object from the folder");
                self.audit(file, "apply", &key, e.code(), e.to_string());
                let message = format!("{key} from {file} was not applied: {e}");
                report.failed.push(self.apply_failed(file, message).await);
            }
        }
    }

    /// Says in a Warning event on `file` that one of its objects was not applied; returns
    /// the message, for the report.
    async fn apply_failed(&self, file: &str, message: String) -> String {
        self.event(
            file_involved(file),
            EventType::Warning,
            "ApplyFailed",
            message.clone(),
        )
        .await;
        message
    }

    /// What the policies say of `obj` from `file`: Err (the code the API would answer,
    /// 403 for a refusal, and the message, said in a Warning event on the file) when it
    /// must not be applied. Policies that cannot be read refuse too (503): a document is
    /// never applied unreviewed.
    async fn police(&self, file: &str, obj: &Object) -> std::result::Result<(), (u16, String)> {
        let Some((policies, door)) = &self.policies else {
            return Ok(());
        };
        let key = obj.key();
        let review = match policies.current().await {
            Ok(set) if set.is_empty() => return Ok(()),
            Ok(_) => {
                let old = self.store.get(&key).await.ok().flatten();
                policies.review(obj, old.as_ref()).await
            }
            Err(e) => Err(e),
        };
        let review = match review {
            Ok(review) => review,
            Err(e) => {
                let message = format!(
                    "{key} from {file} was not applied: the policies could not be read ({e}); it is tried again with the next change or restart"
                );
                return Err((503, self.apply_failed(file, message).await));
            }
        };
        policies.record(&review, obj, &door(file.to_string()), false);
        for warning in review.warnings() {
            let message = format!("{key} from {file}: {}", warning.line());
            self.event(
                file_involved(file),
                EventType::Warning,
                "PolicyWarning",
                message,
            )
            .await;
        }
        if !review.refused() {
            return Ok(());
        }
        let message = format!(
            "{file}: {}\nnothing of it was applied; what the file declared before stays in force",
            review.refusal_message(obj)
        );
        tracing::warn!(%key, file, "a policy refused an object from the folder; not applied");
        self.event(
            file_involved(file),
            EventType::Warning,
            "PolicyRefused",
            message.clone(),
        )
        .await;
        Err((403, message))
    }

    async fn delete(&self, key: &ObjectKey, file: &str, gone: &str, report: &mut SyncReport) {
        match self.store.delete(key).await {
            Ok(deleted) => {
                self.audit(file, "delete", key, 200, gone.to_string());
                tracing::info!(kind = %key.kind, namespace = %key.namespace, name = %key.name, file, "deleted: {gone}");
                self.event(
                    InvolvedObject::of(&deleted),
                    EventType::Normal,
                    "Deleted",
                    format!("deleted: {gone}"),
                )
                .await;
                report.deleted.push(key.clone());
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => {
                self.audit(file, "delete", key, e.code(), e.to_string());
                tracing::warn!(kind = %key.kind, namespace = %key.namespace, name = %key.name, file, error = %e, "could not delete an object the folder no longer declares");
                report
                    .failed
                    .push(format!("{key} ({gone}) was not deleted: {e}"));
            }
        }
    }

    async fn invalid_document(&self, error: &DocumentError) {
        tracing::warn!(
            file = %error.file,
            document = error.document,
            line = error.line,
            column = error.column,
            field = error.field.as_deref(),
            error = %error.message,
            "invalid document in the watched folder; the file's last good version stays in force"
        );
        self.event(
            file_involved(&error.file),
            EventType::Warning,
            "InvalidDocument",
            error.to_string(),
        )
        .await;
    }

    /// The tombstones of the store; none (everything is applied) when it cannot say.
    async fn tombstones(&self) -> Vec<Tombstone> {
        self.store.tombstones().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the tombstones; applying every file");
            Vec::new()
        })
    }

    /// An object a controller deleted (a Job's TTL) whose file still declares the
    /// same spec: not created again, said in an event.
    async fn not_recreated(&self, file: &str, key: &ObjectKey, reason: &str) {
        let message = format!(
            "{key} from {file} is not created again: it was deleted ({reason}) and the file still declares the same spec; change its spec to run it again, or delete the file"
        );
        tracing::info!(%key, file, reason, "not re-created: deleted by its controller, file unchanged");
        self.event(
            file_involved(file),
            EventType::Normal,
            "NotRecreated",
            message,
        )
        .await;
    }

    /// A link that leads out of the folder: not followed, said in an event.
    async fn link_out(&self, rel: &str, real: &Path) -> String {
        let message = format!(
            "{rel} is a symbolic link to {}, outside the watched folder: it is not read (what it declared before stays); copy the file into the folder, or link only to files inside it",
            real.display()
        );
        tracing::warn!(file = %rel, target = %real.display(), "a link leads out of the watched folder; not followed");
        self.event(
            file_involved(rel),
            EventType::Warning,
            "LinkOutsideFolder",
            message.clone(),
        )
        .await;
        message
    }

    async fn clash(&self, clash: &Clash) -> String {
        let message = clash.message();
        tracing::warn!(file = %clash.file, object = %clash.key, owner = clash.owner.as_deref(), "{message}");
        self.event(
            file_involved(&clash.file),
            EventType::Warning,
            "NameClash",
            message.clone(),
        )
        .await;
        message
    }

    /// Records an event; a failure to record one is logged, never fatal.
    async fn event(
        &self,
        involved: InvolvedObject,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let event = NewEvent {
            involved,
            type_,
            reason: reason.to_string(),
            message,
        };
        if let Err(e) = self.store.record_event(event).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    }
}

/// The next batch of file events. It ends as soon as every file it touched is complete:
/// closed after writing, renamed into place (an editor's save), or removed; a writer that
/// has not closed its file yet holds the batch open for up to [`DEBOUNCE`] after the
/// first event, as before. So a whole file is applied at once, and only partial writes
/// wait. `None` when the watcher is gone.
async fn next_batch(
    rx: &mut mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
) -> Option<Batch> {
    let first = rx.recv().await?;
    let deadline = tokio::time::Instant::now() + DEBOUNCE;
    let mut writes = Writes::default();
    writes.see(&first);
    let mut batch = vec![first];
    loop {
        // What is queued already joins the batch before it is judged complete.
        while let Ok(event) = rx.try_recv() {
            writes.see(&event);
            batch.push(event);
        }
        if writes.complete() {
            return Some(batch);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Some(batch),
            event = rx.recv() => match event {
                Some(event) => {
                    writes.see(&event);
                    batch.push(event);
                }
                None => return Some(batch),
            },
        }
    }
}

/// Which files of a batch are being written and which are done.
#[derive(Default)]
struct Writes {
    /// Created or written to, and not closed, renamed or removed since.
    open: std::collections::HashSet<PathBuf>,
    /// Whether any file was finished (closed after writing, renamed, removed).
    finished: bool,
    /// An event that asks for a rescan (or an error): act at once.
    rescan: bool,
}

impl Writes {
    fn see(&mut self, event: &notify::Result<notify::Event>) {
        use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
        let Ok(event) = event else {
            self.rescan = true;
            return;
        };
        if event.need_rescan() {
            self.rescan = true;
            return;
        }
        match event.kind {
            EventKind::Create(CreateKind::Folder) => self.finished = true,
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                self.open.extend(event.paths.iter().cloned());
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(
                RenameMode::To | RenameMode::From | RenameMode::Both | RenameMode::Any,
            )) => {
                for path in &event.paths {
                    self.open.remove(path);
                }
                self.finished = true;
            }
            _ => {}
        }
    }

    fn complete(&self) -> bool {
        self.rescan || (self.finished && self.open.is_empty())
    }
}

fn file_involved(rel: &str) -> InvolvedObject {
    InvolvedObject {
        kind: "File".into(),
        namespace: String::new(),
        name: rel.to_string(),
        uid: String::new(),
    }
}

/// The files a batch of events touches. `known` are the files read so far, so that a
/// removed directory removes its files.
fn changes(dir: &Path, known: &[String], batch: Batch) -> Changes {
    let mut changed = BTreeSet::new();
    for event in batch {
        let Ok(event) = event else {
            return Changes::Rescan;
        };
        if event.need_rescan() {
            return Changes::Rescan;
        }
        // Opening a file (as this source does to read it) is not a change; closing it after
        // writing is.
        if let EventKind::Access(access) = event.kind
            && access != notify::event::AccessKind::Close(notify::event::AccessMode::Write)
        {
            continue;
        }
        for path in &event.paths {
            if path == dir {
                return Changes::Rescan;
            }
            let Some(rel) = scan::relative(dir, path) else {
                continue;
            };
            let under = format!("{rel}/");
            if path.is_dir() {
                let mut unreadable = Vec::new();
                changed.extend(scan::walk(dir, path, &mut unreadable).unwrap_or_default());
                changed.extend(known.iter().filter(|k| k.starts_with(&under)).cloned());
            } else if scan::is_yaml(path) {
                changed.insert(rel);
            } else {
                // Perhaps a directory that was removed or moved away.
                changed.extend(known.iter().filter(|k| k.starts_with(&under)).cloned());
            }
        }
    }
    Changes::Files(changed)
}
