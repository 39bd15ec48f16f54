//! Whether the store can write, and writing again once it can.
//!
//! A write can fail on the disk: full, made read-only, gone. SQLite then rolls the
//! failed transaction back by itself, but the driver still counts it as open, and every
//! later BEGIN on that connection is refused ("attempted to call begin_with at non-zero
//! transaction depth") until a restart. So after a failure on the disk the writer
//! connection is replaced by a fresh one (again at the next write, if the disk refuses
//! even that), and the failure is remembered until a write succeeds: that is what
//! `/readyz` reports, and what [`LocalStore::writable`] probes. The logs and run files
//! beside the database fail the same way, so `writable` also looks at the data dir's
//! file system: read-only, or with less than 1 MiB free, is not writable either.

use chrono::{DateTime, Utc};
use sqlx::ConnectOptions;
use sqlx::SqliteConnection;

use super::{Inner, LocalStore};
use crate::store::{Result, StoreError};

/// The first failed write of the current run of failures.
#[derive(Clone, Debug)]
pub(super) struct WriteFailure {
    since: DateTime<Utc>,
    error: String,
    /// The writer connection could not be replaced yet: try again before the next write.
    stale_writer: bool,
}

/// A write that touches the database and changes nothing (SQLite rewrites the row).
const PROBE: &str = "UPDATE store_revision SET revision = revision WHERE id = 1";
/// The probe file written beside the database: a disk with less room than this is
/// still failing, though a row may fit into space the failed write left in the log.
const PROBE_FILE: &str = ".write-probe";
const PROBE_BYTES: usize = 1 << 20;
/// Less free space than this in the data dir counts as full.
const MIN_FREE_BYTES: u64 = 1 << 20;

impl StoreError {
    /// Whether the error is the disk's or the database file's (full, read-only, I/O)
    /// rather than the request's: the store is unavailable until that is fixed.
    pub fn is_storage_failure(&self) -> bool {
        match self {
            StoreError::Io(_) => true,
            StoreError::Database(sqlx::Error::Io(_)) => true,
            StoreError::Database(sqlx::Error::Database(db)) => {
                // SQLite's primary result codes (the extended ones carry them in the low
                // byte): READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB.
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
                matches!(code & 0xff, 8 | 10 | 11 | 13 | 14 | 26)
            }
            _ => false,
        }
    }
}

impl Inner {
    pub(super) fn failure(&self) -> std::sync::MutexGuard<'_, Option<WriteFailure>> {
        self.write_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called with the writer held, after a write on it failed with `err`. A failure of
    /// the disk is remembered, and the writer replaced by a fresh connection.
    pub(super) async fn write_failed(&self, writer: &mut SqliteConnection, err: &StoreError) {
        if !err.is_storage_failure() {
            return;
        }
        {
            let mut failure = self.failure();
            let first = failure.is_none();
            let (since, error) = match failure.take() {
                Some(f) => (f.since, f.error),
                None => (Utc::now(), err.to_string()),
            };
            *failure = Some(WriteFailure {
                since,
                error,
                stale_writer: true,
            });
            if first {
                tracing::error!(error = %err, data_dir = %self.data_dir.display(), "the store cannot write; writes are refused until the data dir takes writes again");
            }
        }
        self.renew_writer(writer).await;
    }

    /// Replaces the writer connection when a failure left it stale. Called with the
    /// writer held, before a write.
    pub(super) async fn renew_writer_if_stale(&self, writer: &mut SqliteConnection) {
        let stale = self.failure().as_ref().is_some_and(|f| f.stale_writer);
        if stale {
            self.renew_writer(writer).await;
        }
    }

    async fn renew_writer(&self, writer: &mut SqliteConnection) {
        match self.writer_options.connect().await {
            Ok(fresh) => {
                let old = std::mem::replace(writer, fresh);
                // Closing rolls back whatever the old connection still had open.
                let _ = sqlx::Connection::close(old).await;
                if let Some(failure) = self.failure().as_mut() {
                    failure.stale_writer = false;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot open a fresh writer yet; the next write tries again")
            }
        }
    }

    /// Called after a write succeeded: a remembered failure is over.
    pub(super) fn write_succeeded(&self) {
        let over = self.failure().take();
        if let Some(failure) = over {
            tracing::info!(since = %failure.since, "the store writes again");
        }
    }

    /// What a write on `writer` returned, noted for the store's health.
    pub(super) async fn note<T>(
        &self,
        writer: &mut SqliteConnection,
        result: Result<T>,
    ) -> Result<T> {
        match &result {
            Ok(_) => self.write_succeeded(),
            Err(err) => self.write_failed(writer, err).await,
        }
        result
    }
}

/// One write statement, as the run records and events make them.
pub(super) type Statement<'q> =
    sqlx::query::Query<'q, sqlx::Sqlite, <sqlx::Sqlite as sqlx::Database>::Arguments>;

impl Inner {
    /// Runs one write statement on the writer, noting its outcome for the store's health.
    pub(super) async fn write_one(&self, statement: Statement<'_>) -> Result<()> {
        let mut writer = self.writer.lock().await;
        self.renew_writer_if_stale(&mut writer).await;
        let result = statement
            .execute(&mut *writer)
            .await
            .map(drop)
            .map_err(StoreError::from);
        self.note(&mut writer, result).await
    }

    /// Runs write statements in one transaction on the writer: all or none.
    pub(super) async fn write_all(&self, statements: Vec<Statement<'_>>) -> Result<()> {
        let mut writer = self.writer.lock().await;
        self.renew_writer_if_stale(&mut writer).await;
        let result = async {
            let mut tx = sqlx::Connection::begin(&mut *writer).await?;
            for statement in statements {
                statement.execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await
        .map_err(StoreError::from);
        self.note(&mut writer, result).await
    }
}

impl LocalStore {
    /// Ok while writes succeed. After a write failed on the disk, probes: a 1 MiB file
    /// in the data dir, then a row in the database. Ok once both succeed (the failure
    /// is then forgotten), else what has failed and since when.
    pub async fn writable(&self) -> Result<()> {
        let failed = self.inner.failure().clone();
        let Some(failure) = failed else {
            return match file_system_problem(&self.inner.data_dir) {
                Some(problem) => Err(StoreError::Unwritable {
                    since: Utc::now(),
                    message: problem,
                }),
                None => Ok(()),
            };
        };
        let mut writer = self.inner.writer.lock().await;
        let probe = match probe_file(self.inner.data_dir.join(PROBE_FILE)).await {
            Ok(()) => {
                self.inner.renew_writer_if_stale(&mut writer).await;
                sqlx::query(PROBE)
                    .execute(&mut *writer)
                    .await
                    .map(drop)
                    .map_err(StoreError::from)
            }
            Err(e) => Err(StoreError::Io(e)),
        };
        match probe {
            Ok(()) => {
                self.inner.write_succeeded();
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "the store still cannot write");
                if matches!(e, StoreError::Database(_)) {
                    self.inner.write_failed(&mut writer, &e).await;
                }
                // What the user's write was refused with, rather than the probe's words.
                Err(StoreError::Unwritable {
                    since: failure.since,
                    message: failure.error,
                })
            }
        }
    }
}

/// Writes, syncs and removes `PROBE_BYTES` at `path` (with std's blocking calls: a
/// tokio file can lose the error of a write it finished in the background).
async fn probe_file(path: std::path::PathBuf) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let written = std::fs::File::create(&path).and_then(|mut file| {
            file.write_all(&vec![0u8; PROBE_BYTES])?;
            file.sync_all()
        });
        let _ = std::fs::remove_file(&path);
        written
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Why the file system of `dir` cannot take writes (read-only, or nearly full), if it
/// cannot; None when it can, or when it cannot be asked.
fn file_system_problem(dir: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stat` is
    // a plain C struct that statvfs fills in (all zeroes is a valid value of it).
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        stat
    };
    if stat.f_flag & libc::ST_RDONLY != 0 {
        return Some(format!("{} is on a read-only file system", dir.display()));
    }
    // Both are u64 on 64-bit Linux; the conversion keeps 32-bit targets building.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize));
    (free < MIN_FREE_BYTES).then(|| {
        format!(
            "{} has {free} bytes free (database or disk is full)",
            dir.display()
        )
    })
}
