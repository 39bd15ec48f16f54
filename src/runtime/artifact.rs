//! Storing what `copy_out` reads from a container.
//!
//! Docker's archive endpoint always answers with a tar. A directory is kept
//! as that tar; a single regular file is unpacked, so that the stored file and
//! its sha256 are those of the file itself. Files are written under a
//! temporary name and renamed into place, so a crash never leaves a partial
//! artifact under its real name.

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
) -> Result<CopiedArtifact>
where
    S: Stream<Item = Result<Bytes>>,
{
    store_archive_of(archive, dest_dir, name, Some(is_dir)).await
}

/// Like [`store_archive`], for a tar whose first entry says what was copied (a
/// directory or not): the `tar cf - -C <dir> <base>` of the pod runtime, where no stat
/// came first.
pub(crate) async fn store_tar<S>(archive: S, dest_dir: &Path, name: &str) -> Result<CopiedArtifact>
where
    S: Stream<Item = Result<Bytes>>,
{
    store_archive_of(archive, dest_dir, name, None).await
}

async fn store_archive_of<S>(
    archive: S,
    dest_dir: &Path,
    name: &str,
    is_dir: Option<bool>,
) -> Result<CopiedArtifact>
where
    S: Stream<Item = Result<Bytes>>,
{
    check_name(name)?;
    tokio::fs::create_dir_all(dest_dir).await?;
    let partial = dest_dir.join(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()));
    let result = store(archive, &partial, dest_dir, name, is_dir).await;
    if result.is_err() {
        // Best effort: the partial file may not exist yet.
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

async fn store<S>(
    archive: S,
    partial: &Path,
    dest_dir: &Path,
    name: &str,
    is_dir: Option<bool>,
) -> Result<CopiedArtifact>
where
    S: Stream<Item = Result<Bytes>>,
{
    let (size, sha256) = write_stream(archive, partial).await?;
    let is_dir = match is_dir {
        Some(is_dir) => is_dir,
        None => {
            let tar = partial.to_path_buf();
            tokio::task::spawn_blocking(move || first_entry_is_dir(&tar))
                .await
                .map_err(io::Error::other)??
        }
    };
    if is_dir {
        let path = dest_dir.join(format!("{name}.tar"));
        tokio::fs::rename(partial, &path).await?;
        return Ok(CopiedArtifact {
            path,
            size,
            sha256,
            is_dir,
        });
    }
    let path = dest_dir.join(name);
    let (tar, target) = (partial.to_path_buf(), path.clone());
    let (size, sha256) = tokio::task::spawn_blocking(move || unpack_single_file(&tar, &target))
        .await
        .map_err(io::Error::other)??;
    tokio::fs::remove_file(partial).await?;
    Ok(CopiedArtifact {
        path,
        size,
        sha256,
        is_dir,
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

async fn write_stream<S>(archive: S, path: &Path) -> Result<(u64, String)>
where
    S: Stream<Item = Result<Bytes>>,
{
    let mut file = tokio::fs::File::create(path).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut archive = std::pin::pin!(archive);
    while let Some(chunk) = archive.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok((size, hex(&hasher.finalize())))
}

/// Whether the first entry of the tar at `tar` is a directory (long-name and pax
/// headers are read through by the tar crate).
fn first_entry_is_dir(tar: &Path) -> io::Result<bool> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar)?);
    let mut entries = archive.entries()?;
    match entries.next() {
        Some(entry) => Ok(entry?.header().entry_type().is_dir()),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the archive is empty",
        )),
    }
}

/// Writes the first regular file of the tar at `tar` to `target`.
fn unpack_single_file(tar: &Path, target: &Path) -> io::Result<(u64, String)> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar)?);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
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
        let stored = store_archive(archive, dir.path(), "report", false)
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
        let stored = store_archive(chunks(tar.clone()), dir.path(), "out", true)
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
        let stored = store_tar(chunks(tar.clone()), dir.path(), "out")
            .await
            .unwrap();
        assert_eq!(stored.path, dir.path().join("out.tar"));
        assert_eq!((stored.size, stored.is_dir), (tar.len() as u64, true));
        assert_eq!(stored.sha256, sha256_hex(&tar));
        let file = store_tar(
            chunks(tar_of(&[("report.txt", Some(b"hi"))])),
            dir.path(),
            "report",
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
        let error = store_archive(archive, dir.path(), "x", true)
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
                store_archive(archive, dir.path(), name, false)
                    .await
                    .is_err(),
                "{name:?}"
            );
        }
    }
}
