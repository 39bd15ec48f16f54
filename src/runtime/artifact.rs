//! Storing what `copy_out` reads from a container.
//!
//! Docker's archive endpoint always answers with a tar. A directory is kept
//! as that tar; a single regular file is unpacked, so that the stored file and
//! its sha256 are those of the file itself. Files are written under a
//! temporary name and renamed into place, so a crash never leaves a partial
//! artifact under its real name.
//!
//! Bounded by design: the archive is counted as it streams in and abandoned past the
//! artifact's limit, so a sparse file (no disk in the container) is refused at its
//! full size before it fills the data dir. Only regular files, directories and links
//! that stay inside the copied directory are kept; a FIFO, a device or a socket is
//! never read, and is named in [`CopiedArtifact::skipped`] instead.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{CopiedArtifact, Result, RuntimeError};

/// Stores the tar `archive` of one path as `dest_dir/<name>.tar` (directory)
/// or `dest_dir/<name>` (regular file).
pub(crate) async fn store_archive<S>(
    archive: S,
    dest_dir: &Path,
    name: &str,
    is_dir: bool,
    limit: u64,
) -> Result<CopiedArtifact>
where
    S: Stream<Item = Result<Bytes>>,
{
    store_archive_of(archive, dest_dir, name, Some(is_dir), limit).await
}

/// Like [`store_archive`], for a tar whose first entry says what was copied (a
/// directory or not): the `tar cf - -C <dir> <base>` of the pod runtime, where no stat
/// came first.
pub(crate) async fn store_tar<S>(
    archive: S,
    dest_dir: &Path,
    name: &str,
    limit: u64,
) -> Result<CopiedArtifact>
where
    S: Stream<Item = Result<Bytes>>,
{
    store_archive_of(archive, dest_dir, name, None, limit).await
}

async fn store_archive_of<S>(
    archive: S,
    dest_dir: &Path,
    name: &str,
    is_dir: Option<bool>,
    limit: u64,
) -> Result<CopiedArtifact>
where
    S: Stream<Item = Result<Bytes>>,
{
    check_name(name)?;
    tokio::fs::create_dir_all(dest_dir).await?;
    let partial = dest_dir.join(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()));
    let result = store(archive, &partial, dest_dir, name, is_dir, limit).await;
    if result.is_err() {
        // Best effort: the partial file may not exist yet.
        let _ = tokio::fs::remove_file(&partial).await;
    }
    if let Ok(stored) = &result {
        // A file and a directory of one name are two stored names: an earlier attempt
        // of the run may have left the other one, which must not be served instead.
        let other = if stored.is_dir {
            dest_dir.join(name)
        } else {
            dest_dir.join(format!("{name}.tar"))
        };
        let _ = tokio::fs::remove_file(other).await;
    }
    result
}

async fn store<S>(
    archive: S,
    partial: &Path,
    dest_dir: &Path,
    name: &str,
    is_dir: Option<bool>,
    limit: u64,
) -> Result<CopiedArtifact>
where
    S: Stream<Item = Result<Bytes>>,
{
    write_stream(archive, partial, name, limit).await?;
    let is_dir = match is_dir {
        Some(is_dir) => is_dir,
        None => {
            let tar = partial.to_path_buf();
            match tokio::task::spawn_blocking(move || first_entry_kind(&tar))
                .await
                .map_err(io::Error::other)??
            {
                tar::EntryType::Directory => true,
                kind if kind.is_file() => false,
                kind => {
                    return Err(RuntimeError::NotRegular {
                        path: name.to_string(),
                        kind: kind_name(kind).to_string(),
                    });
                }
            }
        }
    };
    if is_dir {
        let path = dest_dir.join(format!("{name}.tar"));
        let (tar, target) = (partial.to_path_buf(), path.clone());
        let (size, sha256, skipped) =
            tokio::task::spawn_blocking(move || keep_plain_entries(&tar, &target))
                .await
                .map_err(io::Error::other)??;
        tokio::fs::remove_file(partial).await?;
        return Ok(CopiedArtifact {
            path,
            size,
            sha256,
            is_dir,
            skipped,
        });
    }
    let path = dest_dir.join(name);
    let (tar, target) = (partial.to_path_buf(), path.clone());
    let unpacked = tokio::task::spawn_blocking(move || unpack_single_file(&tar, &target, limit))
        .await
        .map_err(io::Error::other)?;
    let (size, sha256) = match unpacked {
        Ok(stored) => stored,
        Err(e) => {
            let _ = tokio::fs::remove_file(partial).await;
            return Err(
                match e.get_ref().and_then(|e| e.downcast_ref::<OverLimit>()) {
                    Some(OverLimit(size)) => RuntimeError::ArtifactTooLarge {
                        path: name.to_string(),
                        size: *size,
                        limit,
                    },
                    None => e.into(),
                },
            );
        }
    };
    tokio::fs::remove_file(partial).await?;
    Ok(CopiedArtifact {
        path,
        size,
        sha256,
        is_dir,
        skipped: Vec::new(),
    })
}

/// Artifact names become file names in dest_dir; they must stay inside it.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(RuntimeError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("artifact name {name:?} is not a plain file name"),
        )));
    }
    Ok(())
}

/// Writes the archive to `path`, counting its bytes: past `limit` the copy stops (the
/// tar of a single file is its size plus a few headers, so a file of exactly `limit`
/// bytes is still kept; the unpacked size is checked again).
async fn write_stream<S>(archive: S, path: &Path, name: &str, limit: u64) -> Result<u64>
where
    S: Stream<Item = Result<Bytes>>,
{
    let allowed = limit.saturating_add(TAR_OVERHEAD);
    let mut file = tokio::fs::File::create(path).await?;
    let mut size = 0u64;
    let mut archive = std::pin::pin!(archive);
    while let Some(chunk) = archive.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > allowed {
            return Err(RuntimeError::ArtifactTooLarge {
                path: name.to_string(),
                size,
                limit,
            });
        }
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(size)
}

/// What a tar adds around one file: its header blocks (a long name or pax header
/// included) and the two zero blocks that end it, rounded up generously.
const TAR_OVERHEAD: u64 = 16 * 1024;

/// The kind of the first entry of the tar at `tar` (long-name and pax headers are read
/// through by the tar crate).
fn first_entry_kind(tar: &Path) -> io::Result<tar::EntryType> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar)?);
    let mut entries = archive.entries()?;
    match entries.next() {
        Some(entry) => Ok(entry?.header().entry_type()),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the archive is empty",
        )),
    }
}

/// How an entry's kind reads in a message.
pub(crate) fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Fifo => "FIFO",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Directory => "directory",
        kind if kind.is_file() => "regular file",
        _ => "special file",
    }
}

/// Whether a link at `entry` (a path in the tar) to `target` stays inside the tar's
/// top directory.
fn link_stays_inside(entry: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    // The directory the link is in, below the top directory.
    let mut depth: i64 = entry.components().count() as i64 - 2;
    for part in target.components() {
        match part {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Copies the tar at `tar` to `target` with only regular files, directories, and links
/// that stay inside; returns the new tar's size, sha256 and what was left out.
fn keep_plain_entries(tar: &Path, target: &Path) -> io::Result<(u64, String, Vec<String>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar)?);
    let partial = PathBuf::from(format!("{}.kept", tar.display()));
    let mut builder = tar::Builder::new(std::fs::File::create(&partial)?);
    let mut skipped = Vec::new();
    let written = (|| {
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            let kind = entry.header().entry_type();
            let keep = match kind {
                tar::EntryType::Directory => true,
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    entry.link_name()?.is_some_and(|to| {
                        kind == tar::EntryType::Link || link_stays_inside(&path, &to)
                    })
                }
                kind => kind.is_file(),
            };
            if !keep {
                skipped.push(format!("{} ({})", path.display(), kind_name(kind)));
                continue;
            }
            let mut header = entry.header().clone();
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let to = entry.link_name()?.unwrap_or_default().into_owned();
                    builder.append_link(&mut header, &path, to)?;
                }
                _ => builder.append_data(&mut header, &path, &mut entry)?,
            }
        }
        builder.into_inner()?.sync_all()
    })();
    let result = written.and_then(|()| {
        let (size, sha256) = hash_file(&partial)?;
        std::fs::rename(&partial, target)?;
        Ok((size, sha256, skipped))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Writes the first regular file of the tar at `tar` to `target`.
fn unpack_single_file(tar: &Path, target: &Path, limit: u64) -> io::Result<(u64, String)> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let size = entry.header().size()?;
        if size > limit {
            return Err(io::Error::other(OverLimit(size)));
        }
        let partial = PathBuf::from(format!("{}.partial", tar.display()));
        let written = copy_hashing(&mut entry, &partial).and_then(|stored| {
            std::fs::rename(&partial, target)?;
            Ok(stored)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        return written;
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the archive holds no regular file",
    ))
}

/// A file over its limit, found by its tar header (see [`unpack_single_file`]).
#[derive(Debug)]
struct OverLimit(u64);

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes, over the limit", self.0)
    }
}

impl std::error::Error for OverLimit {}

fn copy_hashing(reader: &mut impl Read, path: &Path) -> io::Result<(u64, String)> {
    let mut file = std::fs::File::create(path)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read])?;
        size += read as u64;
    }
    file.sync_all()?;
    Ok((size, hex(&hasher.finalize())))
}

/// Lowercase hex (sha2 0.11 digests do not implement `LowerHex`).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1 << 20;

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(content) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(content.len() as u64);
                    header.set_mode(0o644);
                    builder.append_data(&mut header, path, *content).unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    fn chunks(bytes: Vec<u8>) -> impl Stream<Item = Result<Bytes>> {
        let chunks: Vec<Result<Bytes>> = bytes
            .chunks(100)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        futures::stream::iter(chunks)
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn hex_is_lowercase_and_zero_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn a_file_is_unpacked_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"report contents\n".repeat(50);
        let archive = chunks(tar_of(&[("report.txt", Some(&content))]));
        let stored = store_archive(archive, dir.path(), "report", false, LIMIT)
            .await
            .unwrap();
        assert_eq!(stored.path, dir.path().join("report"));
        assert_eq!(std::fs::read(&stored.path).unwrap(), content);
        assert_eq!(stored.size, content.len() as u64);
        assert_eq!(stored.sha256, sha256_hex(&content));
        assert!(!stored.is_dir);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no partial files left behind");
    }

    #[tokio::test]
    async fn a_directory_is_kept_as_the_tar() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[("out", None), ("out/a.txt", Some(b"a"))]);
        let stored = store_archive(chunks(tar.clone()), dir.path(), "out", true, LIMIT)
            .await
            .unwrap();
        assert_eq!(stored.path, dir.path().join("out.tar"));
        assert_eq!(std::fs::read(&stored.path).unwrap(), tar);
        assert_eq!(stored.size, tar.len() as u64);
        assert_eq!(stored.sha256, sha256_hex(&tar));
        assert!(stored.is_dir);
    }

    #[tokio::test]
    async fn a_tar_says_itself_whether_it_holds_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[("out", None), ("out/a.txt", Some(b"a"))]);
        let stored = store_tar(chunks(tar.clone()), dir.path(), "out", LIMIT)
            .await
            .unwrap();
        assert_eq!(stored.path, dir.path().join("out.tar"));
        assert_eq!((stored.size, stored.is_dir), (tar.len() as u64, true));
        assert_eq!(stored.sha256, sha256_hex(&tar));
        let file = store_tar(
            chunks(tar_of(&[("report.txt", Some(b"hi"))])),
            dir.path(),
            "report",
            LIMIT,
        )
        .await
        .unwrap();
        assert_eq!(file.path, dir.path().join("report"));
        assert_eq!((file.size, file.is_dir), (2, false));
        assert_eq!(file.sha256, sha256_hex(b"hi"));
    }

    #[tokio::test]
    async fn a_broken_stream_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let archive = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(RuntimeError::Io(io::Error::other("connection reset"))),
        ]);
        let error = store_archive(archive, dir.path(), "x", true, LIMIT)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("connection reset"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn names_that_leave_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "..", "a/b", "../x"] {
            let archive = chunks(tar_of(&[("f", Some(b"x"))]));
            assert!(
                store_archive(archive, dir.path(), name, false, LIMIT)
                    .await
                    .is_err(),
                "{name:?}"
            );
        }
    }

    fn special(
        builder: &mut tar::Builder<Vec<u8>>,
        path: &str,
        kind: tar::EntryType,
        link: Option<&str>,
    ) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(0);
        header.set_mode(0o644);
        match link {
            Some(to) => builder.append_link(&mut header, path, to).unwrap(),
            None => builder.append_data(&mut header, path, io::empty()).unwrap(),
        }
    }

    #[tokio::test]
    async fn an_archive_over_the_limit_is_refused_as_it_streams_in() {
        let dir = tempfile::tempdir().unwrap();
        // A sparse file of the container arrives at its full size.
        let big = vec![0u8; 300 * 1024];
        let error = store_archive(
            chunks(tar_of(&[("sparse", Some(&big))])),
            dir.path(),
            "sparse",
            false,
            100 * 1024,
        )
        .await
        .unwrap_err();
        match error {
            RuntimeError::ArtifactTooLarge { path, size, limit } => {
                assert_eq!((path.as_str(), limit), ("sparse", 100 * 1024));
                assert!(size > limit, "{size}");
            }
            other => panic!("{other}"),
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing kept"
        );
        // Just over the limit, within the tar's headers: the header's size says it.
        let error = store_archive(
            chunks(tar_of(&[("f", Some(&big[..1025]))])),
            dir.path(),
            "f",
            false,
            1024,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, RuntimeError::ArtifactTooLarge { size: 1025, .. }),
            "{error}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Exactly the limit is kept.
        let kept = store_archive(
            chunks(tar_of(&[("f", Some(&big[..1024]))])),
            dir.path(),
            "f",
            false,
            1024,
        )
        .await
        .unwrap();
        assert_eq!(kept.size, 1024);
    }

    #[tokio::test]
    async fn a_directory_keeps_only_files_directories_and_links_inside() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        builder
            .append_data(&mut header, "out", io::empty())
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "out/a.txt", &b"hi"[..])
            .unwrap();
        special(&mut builder, "out/pipe", tar::EntryType::Fifo, None);
        special(&mut builder, "out/dev", tar::EntryType::Char, None);
        special(
            &mut builder,
            "out/passwd",
            tar::EntryType::Symlink,
            Some("/etc/passwd"),
        );
        special(
            &mut builder,
            "out/up",
            tar::EntryType::Symlink,
            Some("../../x"),
        );
        special(
            &mut builder,
            "out/same",
            tar::EntryType::Symlink,
            Some("a.txt"),
        );
        let stored = store_archive(
            chunks(builder.into_inner().unwrap()),
            dir.path(),
            "out",
            true,
            LIMIT,
        )
        .await
        .unwrap();
        assert_eq!(
            stored.skipped,
            [
                "out/pipe (FIFO)",
                "out/dev (character device)",
                "out/passwd (symbolic link)",
                "out/up (symbolic link)"
            ]
        );
        let kept = std::fs::read(&stored.path).unwrap();
        assert_eq!(
            stored.sha256,
            sha256_hex(&kept),
            "the digest is of the stored tar"
        );
        assert_eq!(stored.size, kept.len() as u64);
        let mut archive = tar::Archive::new(&kept[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["out", "out/a.txt", "out/same"]);
    }

    #[tokio::test]
    async fn a_fifo_is_refused_by_name_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        special(&mut builder, "pipe", tar::EntryType::Fifo, None);
        let error = store_tar(
            chunks(builder.into_inner().unwrap()),
            dir.path(),
            "pipe",
            LIMIT,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "pipe is a FIFO, not a regular file or a directory"
        );
    }

    #[tokio::test]
    async fn a_file_replaces_a_directory_of_the_same_name_from_an_earlier_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[("out", None), ("out/a.txt", Some(b"a"))]);
        store_archive(chunks(tar), dir.path(), "out", true, LIMIT)
            .await
            .unwrap();
        assert!(dir.path().join("out.tar").exists());
        store_archive(
            chunks(tar_of(&[("out", Some(b"file"))])),
            dir.path(),
            "out",
            false,
            LIMIT,
        )
        .await
        .unwrap();
        assert!(
            !dir.path().join("out.tar").exists(),
            "the directory's tar is gone"
        );
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), b"file");
    }
}
