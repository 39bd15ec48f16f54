//! The audit log: one entry per write, exec, key change, secret read, refusal and failed
//! authentication, append-only and tamper-evident.
//!
//! Entries are JSON lines in `<data-dir>/audit/audit-NNNNNN.jsonl`. Each carries its
//! sequence number, the hash of the entry before it (`prev`) and its own `hash`: the
//! SHA-256 of `prev` and the entry's content. So editing a byte of an entry breaks its
//! hash, and removing or reordering entries breaks the next one's `prev`. The chain head
//! (sequence and hash) is also written, after every batch and fsynced, to
//! `<data-dir>/audit/audit.head`: removing the newest entries (which leaves a valid
//! shorter chain) no longer matches it. Files rotate at a size; the chain runs on across
//! them, from sequence 1.
//!
//! [`AuditLog::record`] never waits for the disk: a writer task gathers what is recorded
//! within [`GROUP_COMMIT`] into one batch, appends it, fsyncs the file, then the head.
//! [`verify`] walks the whole chain.
//!
//! This layer knows no HTTP and no store: the server records what requests did, and the
//! CLI reads the files.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::resources::ObjectKey;

#[cfg(test)]
mod tests;

/// The directory of the log under the data dir.
pub const DIR: &str = "audit";
/// The file the chain head is kept in, beside the log.
pub const HEAD: &str = "audit.head";
/// Where a log file is rotated.
pub const ROTATE_AT: u64 = 64 * 1024 * 1024;
/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited action.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Its place in the chain, from 1.
    #[serde(default)]
    pub seq: u64,
    pub time: DateTime<Utc>,
    /// Who: `key:<id>` (a member's or admin's API key), `anonymous` (no valid key),
    /// `folder:<file>`, `controller`, `local-admin`.
    pub actor: String,
    /// The member the key acts as, and the agent label it carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `create`, `update`, `patch`, `delete`, `exec`, `cp`, `cancel`, `rerun`, `approve`,
    /// `reject`, `run`, `start`, `stop`, `read-secret`, `create-key`, `revoke-key`,
    /// `rotate-key`, `authenticate`, ...
    pub verb: String,
    /// The resource (plural, as in the path), its workspace and its name, where known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// From where: the client's address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote: String,
    /// The outcome: the HTTP status code answered.
    pub code: u16,
    /// What else is worth keeping (a refusal's reason).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(default)]
    pub prev: String,
    #[serde(default)]
    pub hash: String,
}

impl Entry {
    /// An entry of `actor` doing `verb` to the object `key`, answered `code`, now.
    pub fn on_object(
        actor: String,
        verb: &str,
        key: &ObjectKey,
        code: u16,
        detail: String,
    ) -> Entry {
        Entry {
            time: Utc::now(),
            actor,
            verb: verb.to_string(),
            resource: key.kind.plural().to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            code,
            detail,
            ..Default::default()
        }
    }

    /// The hash of this entry after `prev`: SHA-256 over `prev`, a newline, and the entry's
    /// JSON with `hash` empty.
    pub fn digest(&self) -> String {
        let mut content = self.clone();
        content.hash.clear();
        let json = serde_json::to_string(&content).expect("an entry serializes");
        let mut hasher = Sha256::new();
        hasher.update(self.prev.as_bytes());
        hasher.update(b"\n");
        hasher.update(json.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// The chain head as `audit.head` keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

#[derive(thiserror::Error, Debug)]
pub enum AuditError {
    #[error("audit log {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

enum Message {
    Entry(Box<Entry>),
    /// Answered once everything sent before is on disk.
    Flush(oneshot::Sender<()>),
}

/// The log a server records into. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::UnboundedSender<Message>,
    dir: PathBuf,
    /// How many appends (each one fsync of the file and one of the head) the writer made.
    appends: std::sync::Arc<AtomicU64>,
}

impl AuditLog {
    /// Opens (or starts) the log under `data_dir` and its writer task.
    pub fn open(data_dir: &Path) -> Result<AuditLog, AuditError> {
        Self::open_rotating(data_dir, ROTATE_AT)
    }

    /// As [`open`](Self::open), rotating files at `rotate_at` bytes.
    ///
    /// One chain has one writer: opening a log this process has open already (the API
    /// and the watched folder of one `serve`) gives that log, whose writer still runs,
    /// so that the two never interleave two chains into one file.
    pub fn open_rotating(data_dir: &Path, rotate_at: u64) -> Result<AuditLog, AuditError> {
        static OPEN: std::sync::LazyLock<
            std::sync::Mutex<std::collections::HashMap<PathBuf, AuditLog>>,
        > = std::sync::LazyLock::new(Default::default);
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let key = dir.canonicalize().map_err(io(&dir))?;
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = open.get(&key)
            && !log.sender.is_closed()
        {
            return Ok(log.clone());
        }
        let log = Self::start(dir, rotate_at)?;
        open.insert(key, log.clone());
        Ok(log)
    }

    fn start(dir: PathBuf, rotate_at: u64) -> Result<AuditLog, AuditError> {
        let last = last_entry(&dir)?;
        let writer = Writer {
            dir: dir.clone(),
            rotate_at,
            seq: last.as_ref().map_or(0, |e| e.seq),
            prev: last.map_or_else(|| GENESIS.to_string(), |e| e.hash),
            file: None,
            head: None,
            appends: Default::default(),
        };
        let appends = writer.appends.clone();
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(writer.run(receiver));
        Ok(AuditLog {
            sender,
            dir,
            appends,
        })
    }

    /// Records `entry` (its seq, prev and hash are the writer's to set). Never waits.
    pub fn record(&self, entry: Entry) {
        RECORDED.fetch_add(1, Ordering::Relaxed);
        let _ = self.sender.send(Message::Entry(Box::new(entry)));
    }

    /// Waits until everything recorded so far is on disk.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many appends the writer has made: each one write and two fsyncs.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::Relaxed)
    }
}

/// Entries recorded since start (for the metrics and tests).
pub static RECORDED: AtomicU64 = AtomicU64::new(0);

/// How long the writer gathers entries after the first before writing them: everything
/// recorded meanwhile shares one append and one pair of fsyncs (a group commit). A
/// request's entry is recorded after it is answered either way, so this delays only when
/// the entry reaches the disk, by at most this long; a flush does not wait for it.
pub const GROUP_COMMIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Adds to `batch` what arrives within [`GROUP_COMMIT`], stopping early for a flush (or
/// when the log is closed).
async fn gather(receiver: &mut mpsc::UnboundedReceiver<Message>, batch: &mut Vec<Message>) {
    let flushing = |batch: &[Message]| batch.iter().any(|m| matches!(m, Message::Flush(_)));
    let deadline = tokio::time::sleep(GROUP_COMMIT);
    tokio::pin!(deadline);
    while !flushing(batch) {
        tokio::select! {
            received = receiver.recv_many(batch, 1024) => if received == 0 { return },
            () = &mut deadline => return,
        }
    }
}

struct Writer {
    dir: PathBuf,
    rotate_at: u64,
    seq: u64,
    prev: String,
    file: Option<(File, u64)>,
    /// `audit.head`, open for rewriting in place.
    head: Option<File>,
    appends: std::sync::Arc<AtomicU64>,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Message>) {
        let mut batch = Vec::new();
        while receiver.recv_many(&mut batch, 1024).await > 0 {
            gather(&mut receiver, &mut batch).await;
            let mut waiting = Vec::new();
            let mut entries = Vec::new();
            for message in batch.drain(..) {
                match message {
                    Message::Entry(entry) => entries.push(*entry),
                    Message::Flush(done) => waiting.push(done),
                }
            }
            if !entries.is_empty() {
                let dir = self.dir.clone();
                let written = tokio::task::spawn_blocking(move || {
                    let result = self.append(entries);
                    (self, result)
                })
                .await;
                match written {
                    Ok((writer, result)) => {
                        self = writer;
                        if let Err(e) = result {
                            tracing::error!(error = %e, dir = %dir.display(), "cannot write the audit log");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the audit log writer failed");
                        return;
                    }
                }
            }
            for done in waiting {
                let _ = done.send(());
            }
        }
    }

    /// Chains and appends `entries`, fsyncs the file, then writes the head.
    fn append(&mut self, entries: Vec<Entry>) -> Result<(), AuditError> {
        let mut text = String::new();
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        for mut entry in entries {
            seq += 1;
            entry.seq = seq;
            entry.prev = prev;
            entry.hash = entry.digest();
            prev = entry.hash.clone();
            text.push_str(&serde_json::to_string(&entry).expect("an entry serializes"));
            text.push('\n');
        }
        let path = self.dir.clone();
        let (file, size) = self.current_file()?;
        file.write_all(text.as_bytes()).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))?;
        *size += text.len() as u64;
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.seq = seq;
        self.prev = prev;
        let head = Head {
            seq: self.seq,
            hash: self.prev.clone(),
        };
        let path = self.dir.join(HEAD);
        let file = match &mut self.head {
            Some(file) => file,
            None => self.head.insert(open_head(&self.dir)?),
        };
        write_head(file, &head).map_err(io(&path))
    }

    /// The file to append to: the newest, or a new one once it is past `rotate_at`.
    fn current_file(&mut self) -> Result<(&mut File, &mut u64), AuditError> {
        let full = self
            .file
            .as_ref()
            .is_some_and(|(_, size)| *size >= self.rotate_at);
        if self.file.is_none() || full {
            let files = log_files(&self.dir)?;
            let newest = files.last().cloned();
            let path = match newest {
                Some(path) if !full && size_of(&path) < self.rotate_at => path,
                _ => self.dir.join(format!("audit-{:06}.jsonl", files.len() + 1)),
            };
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            let size = size_of(&path);
            self.file = Some((file, size));
        }
        let (file, size) = self.file.as_mut().expect("opened above");
        Ok((file, size))
    }
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The width `audit.head` is padded to, so that each write covers all of it: a head
/// (a sequence number and a SHA-256) takes about 90 bytes.
const HEAD_WIDTH: usize = 160;

/// Opens `audit.head` for rewriting in place; a new one's directory entry is fsynced.
fn open_head(dir: &Path) -> Result<File, AuditError> {
    let path = dir.join(HEAD);
    let existed = path.exists();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    if !existed && let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(file)
}

/// Rewrites the head in place, padded to [`HEAD_WIDTH`], and fsyncs it: one small write
/// within one disk sector and one fsync, with no file made or renamed (which would
/// commit the file system's journal at every batch, stalling the store's writes too).
fn write_head(file: &File, head: &Head) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut text = serde_json::to_string(head).expect("a head serializes");
    let width = HEAD_WIDTH.max(text.len() + 1);
    text.extend(std::iter::repeat_n(' ', width - 1 - text.len()));
    text.push('\n');
    // The width never changes, so the file keeps its length (no metadata to sync).
    file.write_all_at(text.as_bytes(), 0)?;
    file.sync_data()
}

/// The log's files, oldest first.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(dir)(e)),
    };
    files.sort();
    Ok(files)
}

/// The newest entry, read from the end of the newest file (a torn last line, from a
/// crash mid-write, is skipped).
fn last_entry(dir: &Path) -> Result<Option<Entry>, AuditError> {
    for path in log_files(dir)?.iter().rev() {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        if let Some(entry) = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Entry>(l).ok())
        {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

/// Every entry, oldest first, with the file and line it is on; a line that does not
/// parse is an error naming it.
pub fn read_all(dir: &Path) -> Result<Vec<Entry>, AuditError> {
    let mut entries = Vec::new();
    for path in log_files(dir)? {
        let file = File::open(&path).map_err(io(&path))?;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io(&path))?;
            if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

/// What [`verify`] found wrong: the first break, naming the entry.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    /// `audit-000001.jsonl:17`.
    pub place: String,
    pub seq: Option<u64>,
    pub why: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "entry {seq} ({}): {}", self.place, self.why),
            None => write!(f, "{}: {}", self.place, self.why),
        }
    }
}

/// Walks the whole chain under `dir` (the log's directory). Ok: how many entries, all
/// intact and matching the head. Err: the first entry edited, removed or reordered.
pub fn verify(dir: &Path) -> Result<Result<u64, Broken>, AuditError> {
    let head: Option<Head> = std::fs::read_to_string(dir.join(HEAD))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut expected_seq = 1;
    let mut prev = GENESIS.to_string();
    let mut last_place = String::from("the start of the log");
    for path in log_files(dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = File::open(&path).map_err(io(&path))?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io(&path))?;
            let place = format!("{name}:{}", i + 1);
            let broken = |seq: Option<u64>, why: String| {
                Ok(Err(Broken {
                    place: place.clone(),
                    seq,
                    why,
                }))
            };
            let entry: Entry = match serde_json::from_str(&line) {
                Ok(entry) => entry,
                Err(e) => {
                    return broken(
                        Some(expected_seq),
                        format!("does not parse ({e}): it was edited"),
                    );
                }
            };
            if entry.seq != expected_seq {
                let why = match entry.seq.cmp(&expected_seq) {
                    std::cmp::Ordering::Greater => format!(
                        "expected entry {expected_seq} here: entries {expected_seq}..{} were removed (or entries were reordered)",
                        entry.seq - 1
                    ),
                    _ => format!(
                        "expected entry {expected_seq} here: entries were reordered (or this one was copied)"
                    ),
                };
                return broken(Some(entry.seq), why);
            }
            if entry.prev != prev {
                return broken(
                    Some(entry.seq),
                    format!(
                        "its prev does not match the hash of entry {}: an entry before it was edited, removed or reordered",
                        entry.seq - 1
                    ),
                );
            }
            if entry.digest() != entry.hash {
                return broken(
                    Some(entry.seq),
                    "its content does not match its hash: it was edited".into(),
                );
            }
            if let Some(head) = &head
                && head.seq == entry.seq
                && head.hash != entry.hash
            {
                return broken(
                    Some(entry.seq),
                    "it does not match the chain head kept apart: the log was rewritten from here or before".into(),
                );
            }
            prev = entry.hash;
            expected_seq += 1;
            last_place = place;
        }
    }
    let count = expected_seq - 1;
    match head {
        None if count > 0 => Ok(Err(Broken {
            place: HEAD.into(),
            seq: None,
            why: "the chain head is missing or unreadable: it was removed or edited".into(),
        })),
        Some(head) if head.seq > count => Ok(Err(Broken {
            place: last_place,
            seq: Some(count + 1),
            why: format!(
                "the chain head says {} entries and the log has {count}: entries {}..{} were removed from the end",
                head.seq,
                count + 1,
                head.seq
            ),
        })),
        // Entries past the head are those of a crash after the append and before the
        // head's write; the writer's next batch moves the head past them.
        _ => Ok(Ok(count)),
    }
}
