//! Files in and out of a sandbox's containers, through Docker's archive endpoint
//! (which works on stopped containers too, and reaches into mounted volumes).
//!
//! Uploads are tars extracted by the daemon: one file is a one-entry tar whose entry
//! is the full path relative to `/`, extracted at `/`, so that the daemon creates
//! missing parent directories.

use std::io::Read;
use std::path::{Component, Path};

use bollard::body_full;
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::runtime::docker::gate::Lane;
use crate::runtime::docker::{DockerRuntime, GO_MODE_DIR, status};
use crate::runtime::sandbox::PathKind;
use crate::runtime::{Result, RuntimeError};

/// Room for the tar headers (long names included) and padding around one file.
const TAR_OVERHEAD: u64 = 64 * 1024;

impl DockerRuntime {
    /// Writes one file with `mode` and the current time; missing parent directories
    /// are created (0755, owned by root). The path must be absolute.
    pub async fn write_file(
        &self,
        container: &str,
        path: &str,
        content: Bytes,
        mode: u32,
    ) -> Result<()> {
        let relative = relative_to_root(path)?;
        let tar = one_entry_tar(&relative, Some(&content), mode)?;
        self.upload(container, "/", tar).await
    }

    /// Extracts a tar archive into a directory of the container, creating the
    /// directory first when it is missing.
    pub async fn extract_tar(&self, container: &str, dir: &str, tar: Bytes) -> Result<()> {
        let relative = relative_to_root(dir)?;
        let dir = format!("/{relative}");
        match self.upload(container, &dir, tar.clone()).await {
            Err(RuntimeError::PathNotFound { .. }) if !relative.is_empty() => {
                let directory = one_entry_tar(&relative, None, 0o755)?;
                self.upload(container, "/", directory).await?;
                self.upload(container, &dir, tar).await
            }
            other => other,
        }
    }

    /// Whether a path is a file or a directory, symlinks followed
    /// ([`RuntimeError::PathNotFound`] when neither).
    pub async fn path_kind(&self, container: &str, path: &str) -> Result<PathKind> {
        let (_, stat) = self.stat_path(container, path).await?;
        Ok(if stat.file_mode & GO_MODE_DIR != 0 {
            PathKind::Directory
        } else {
            PathKind::File
        })
    }

    /// A path as a tar stream (Docker's archive: the path's base name at its root).
    /// A missing path ends the stream with [`RuntimeError::PathNotFound`] (or
    /// [`RuntimeError::ContainerNotFound`]).
    pub fn download_tar(
        &self,
        container: &str,
        path: &str,
    ) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let archive = self
            .docker
            .download_from_container(container, Some(options));
        let (runtime, container, path) = (self.clone(), container.to_string(), path.to_string());
        archive.then(move |chunk| {
            let (runtime, container, path) = (runtime.clone(), container.clone(), path.clone());
            async move {
                match chunk {
                    Ok(bytes) => Ok(bytes),
                    Err(e) if status(&e) == Some(404) => {
                        Err(runtime.missing_path_or_container(&container, &path).await)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        })
    }

    /// Reads one regular file whole, symlinks followed. A file over `max_bytes` is
    /// [`RuntimeError::TooLarge`] (refused before it is read), a directory or any
    /// other non-file [`RuntimeError::NotAFile`].
    pub async fn read_file(&self, container: &str, path: &str, max_bytes: u64) -> Result<Bytes> {
        let (resolved, stat) = self.stat_path(container, path).await?;
        let not_a_file = || RuntimeError::NotAFile {
            container: container.to_string(),
            path: path.to_string(),
        };
        if stat.file_mode & GO_MODE_DIR != 0 {
            return Err(not_a_file());
        }
        let too_large = |size: u64| RuntimeError::TooLarge {
            container: container.to_string(),
            path: path.to_string(),
            size,
            limit: max_bytes,
        };
        let size = u64::try_from(stat.size).unwrap_or_default();
        if size > max_bytes {
            return Err(too_large(size));
        }
        // The file may grow between the stat and the download: bound what is read.
        let mut archive = std::pin::pin!(self.download_tar(container, &resolved));
        let mut tar = BytesMut::new();
        while let Some(chunk) = archive.next().await {
            tar.extend_from_slice(&chunk?);
            if tar.len() as u64 > max_bytes.saturating_add(TAR_OVERHEAD) {
                return Err(too_large(tar.len() as u64));
            }
        }
        match first_regular_file(&tar, max_bytes)? {
            FirstFile::Content(content) => Ok(content),
            FirstFile::TooLarge(size) => Err(too_large(size)),
            FirstFile::None => Err(not_a_file()),
        }
    }

    /// Uploads a tar to be extracted into `dir` (which must exist).
    async fn upload(&self, container: &str, dir: &str, tar: Bytes) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        match self
            .call(
                "upload_to_container",
                Lane::Gated,
                self.docker
                    .upload_to_container(container, Some(options), body_full(tar)),
            )
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => {
                Err(self.missing_path_or_container(container, dir).await)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// An absolute container path as a tar entry path: relative to `/`, normalised,
/// with no `..` (`""` for `/` itself).
fn relative_to_root(path: &str) -> Result<String> {
    let invalid = |reason: &str| RuntimeError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if !path.starts_with('/') {
        return Err(invalid("it must be absolute (start with /)"));
    }
    if path.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => return Err(invalid("it must not contain \"..\"")),
            Component::Prefix(_) => return Err(invalid("it is not a Unix path")),
        }
    }
    Ok(parts.join("/"))
}

/// A tar of one regular file (`content`) or one directory (`None`) at `path`.
fn one_entry_tar(path: &str, content: Option<&[u8]>, mode: u32) -> Result<Bytes> {
    if path.is_empty() {
        return Err(RuntimeError::InvalidPath {
            path: "/".into(),
            reason: "it is the root directory, not a file".into(),
        });
    }
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode & 0o7777);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    let capacity = content.map_or(0, <[u8]>::len) + 2048;
    let mut builder = tar::Builder::new(Vec::with_capacity(capacity));
    match content {
        Some(content) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(content.len() as u64);
            builder.append_data(&mut header, path, content)?;
        }
        None => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, path, std::io::empty())?;
        }
    }
    Ok(Bytes::from(builder.into_inner()?))
}

enum FirstFile {
    Content(Bytes),
    TooLarge(u64),
    /// The archive's first entry is not a regular file.
    None,
}

/// The content of the first entry of a tar, when it is a regular file.
fn first_regular_file(tar: &[u8], max_bytes: u64) -> Result<FirstFile> {
    let mut archive = tar::Archive::new(tar);
    let Some(entry) = archive.entries()?.next() else {
        return Ok(FirstFile::None);
    };
    let mut entry = entry?;
    if !matches!(
        entry.header().entry_type(),
        tar::EntryType::Regular | tar::EntryType::Continuous
    ) {
        return Ok(FirstFile::None);
    }
    let size = entry.size();
    if size > max_bytes {
        return Ok(FirstFile::TooLarge(size));
    }
    let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
    entry.read_to_end(&mut content)?;
    Ok(FirstFile::Content(Bytes::from(content)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_entries_relative_to_root() {
        assert_eq!(relative_to_root("/a/b/c.txt").unwrap(), "a/b/c.txt");
        assert_eq!(relative_to_root("//a/./b//").unwrap(), "a/b");
        assert_eq!(relative_to_root("/").unwrap(), "");
        for bad in ["a/b", "", "/a/../etc", "/a\0b"] {
            assert!(
                matches!(relative_to_root(bad), Err(RuntimeError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_file_tars_round_trip_with_mode_and_long_names() {
        let long = format!("{}/file.bin", "deep/".repeat(40).trim_end_matches('/'));
        let content: Vec<u8> = (0..=255).collect();
        let tar = one_entry_tar(&long, Some(&content), 0o100_750).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str().unwrap(), long);
        assert_eq!(entry.header().mode().unwrap(), 0o750);
        assert!(entry.header().mtime().unwrap() > 1_700_000_000);
        let mut read = Vec::new();
        entry.read_to_end(&mut read).unwrap();
        assert_eq!(read, content);
        match first_regular_file(&tar, 256).unwrap() {
            FirstFile::Content(bytes) => assert_eq!(&bytes[..], &content[..]),
            _ => panic!("expected the file"),
        }
        assert!(matches!(
            first_regular_file(&tar, 255).unwrap(),
            FirstFile::TooLarge(256)
        ));
    }

    #[test]
    fn a_directory_tar_holds_no_file() {
        let tar = one_entry_tar("srv/data", None, 0o755).unwrap();
        assert!(matches!(
            first_regular_file(&tar, 10).unwrap(),
            FirstFile::None
        ));
        assert!(one_entry_tar("", None, 0o755).is_err());
    }
}
