//! How `orcaops cp` packs and unpacks directories without leaving the copy.
//!
//! `docker cp` recreates a sandbox's absolute symlinks on this machine, and a later
//! copy through such a link writes wherever it points. Here a copy never creates a
//! link that could lead out of it and never writes through a link at all:
//!
//! - a symbolic link is kept only when its target is relative, a run of `..` then
//!   names (`../lib/x.so`, `usr/lib`), with no more `..` than the link is deep in the
//!   copy; any other (absolute, `a/../../b`, too many `..`) is skipped with a warning
//!   naming it. Since every directory a copy writes into is a real directory, such a
//!   link resolves inside the copy;
//! - an entry whose parent is a link is skipped; an existing link where a file or a
//!   directory is unpacked is replaced, never followed; files are opened with
//!   `O_NOFOLLOW`;
//! - a hard link is kept only to a regular file the copy already holds; devices,
//!   FIFOs and sockets are skipped; an entry named with `..` or a root stops the copy.
//!
//! Uploads follow the same rule on this machine's side: links are sent as links, those
//! that lead out of the source directory are left out with a warning, and nothing is
//! read through a link.

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Whether a link at `depth` directories below the copy's top, pointing at `target`,
/// stays inside the copy: relative, only leading `..`, no more of them than `depth`.
pub(super) fn link_stays_inside(target: &Path, depth: usize) -> bool {
    let mut ups = 0usize;
    let mut names = false;
    for component in target.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if !names => ups += 1,
            Component::Normal(_) => names = true,
            // `..` after a name, a root or a prefix.
            _ => return false,
        }
    }
    ups <= depth
}

/// What one unpack did that the user should hear of (skipped entries, with why).
pub type Warnings = Vec<String>;

/// Unpacks a Docker archive of a directory (its name at the root) so that the
/// directory becomes `target`, under the rules in the module doc.
pub fn unpack_as(tar: &[u8], target: &Path) -> io::Result<Warnings> {
    if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::other(format!(
            "{} is a symbolic link; orcaops cp does not write through links: name a directory",
            target.display()
        )));
    }
    fs::create_dir_all(target)?;
    let mut warnings = Vec::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(rest) = below_root(&path)? else {
            continue;
        };
        let shown = rest.display().to_string();
        let full = target.join(&rest);
        if let Some(link) = parent_link(target, &rest)? {
            warnings.push(format!(
                "skipped {shown}: its directory {} is a symbolic link",
                link.display()
            ));
            continue;
        }
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match kind {
            tar::EntryType::Directory => {
                replace_non_directory(&full)?;
                if !full.is_dir() {
                    fs::create_dir(&full)?;
                }
                fs::set_permissions(&full, fs::Permissions::from_mode(mode | 0o700))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_non_directory(&full)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&full)?;
                io::copy(&mut entry, &mut file)?;
                // An absurd mtime (past what SystemTime holds) is dropped, not a panic.
                if let Some(when) = entry.header().mtime().ok().and_then(|mtime| {
                    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(mtime))
                }) {
                    file.set_modified(when).ok();
                }
            }
            tar::EntryType::Symlink => {
                let link_target = entry.link_name()?.map(|l| l.into_owned());
                let Some(link_target) = link_target else {
                    warnings.push(format!("skipped {shown}: a link without a target"));
                    continue;
                };
                let depth = rest.components().count() - 1;
                if !link_stays_inside(&link_target, depth) {
                    warnings.push(format!(
                        "skipped the link {shown} -> {}: it leads out of the copy",
                        link_target.display()
                    ));
                    continue;
                }
                remove_non_directory(&full)?;
                std::os::unix::fs::symlink(&link_target, &full)?;
            }
            tar::EntryType::Link => {
                let source = entry
                    .link_name()?
                    .map(|l| l.into_owned())
                    .and_then(|l| below_root(&l).ok().flatten());
                let source = match source {
                    Some(source)
                        if parent_link(target, &source)?.is_none()
                            && fs::symlink_metadata(target.join(&source))
                                .is_ok_and(|m| m.file_type().is_file()) =>
                    {
                        target.join(source)
                    }
                    _ => {
                        warnings.push(format!(
                            "skipped the hard link {shown}: it does not name a file of the copy"
                        ));
                        continue;
                    }
                };
                remove_non_directory(&full)?;
                fs::hard_link(source, &full)?;
            }
            other => warnings.push(format!("skipped {shown}: a {other:?} entry is not copied")),
        }
    }
    Ok(warnings)
}

/// An entry's path below the archive's top directory: None for the top itself; an
/// error for `..`, a root or a prefix anywhere in it.
fn below_root(path: &Path) -> io::Result<Option<PathBuf>> {
    let mut parts = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir));
    parts.next(); // the directory's own name
    let rest: Vec<Component> = parts.collect();
    if rest.iter().any(|c| !matches!(c, Component::Normal(_)))
        || path.is_absolute()
        || path.components().any(|c| matches!(c, Component::ParentDir))
    {
        return Err(io::Error::other(format!(
            "the archive entry {} leaves the directory",
            path.display()
        )));
    }
    Ok((!rest.is_empty()).then(|| rest.iter().collect()))
}

/// The first directory of `rest` (below `top`) that is a symbolic link, if any.
fn parent_link(top: &Path, rest: &Path) -> io::Result<Option<PathBuf>> {
    let mut at = top.to_path_buf();
    let mut shown = PathBuf::new();
    let count = rest.components().count();
    for component in rest.components().take(count.saturating_sub(1)) {
        at.push(component);
        shown.push(component);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return Ok(Some(shown)),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is a file where the archive has a directory",
                    at.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&at)?,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Removes what is at `path` unless it is a real directory (a link to one is
/// removed, never followed).
fn replace_non_directory(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes a file or link at `path`; a real directory there is an error.
fn remove_non_directory(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(io::Error::other(format!(
            "{} is a directory where the archive has a file",
            path.display()
        ))),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A tar of a local directory whose entries sit under `root` (`.`: at the top), with
/// links as links and those leading out of `dir` left out (named in the warnings).
pub(super) fn tar_directory(dir: &Path, root: &str) -> io::Result<(Vec<u8>, Warnings)> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut warnings = Vec::new();
    builder.append_dir(root, dir)?;
    pack(&mut builder, dir, Path::new(root), 0, &mut warnings)?;
    Ok((builder.into_inner()?, warnings))
}

fn pack(
    builder: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    name: &Path,
    depth: usize,
    warnings: &mut Warnings,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let entry_name = name.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            builder.append_dir(&entry_name, &path)?;
            pack(builder, &path, &entry_name, depth + 1, warnings)?;
        } else if kind.is_file() {
            builder.append_path_with_name(&path, &entry_name)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&path)?;
            if link_stays_inside(&target, depth) {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_mode(0o777);
                builder.append_link(&mut header, &entry_name, &target)?;
            } else {
                warnings.push(format!(
                    "left out the link {} -> {}: it leads out of the copied directory",
                    path.display(),
                    target.display()
                ));
            }
        } else {
            warnings.push(format!(
                "left out {}: not a file, directory or link",
                path.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "links_tests.rs"]
mod tests;
