//! Reading the folder: which files count, their relative names, and what each one declares.
//!
//! A symbolic link is followed only when it resolves inside the folder: a YAML link
//! to `/etc/passwd` or a directory link to `..` would otherwise let a file in the
//! folder read (and apply) what lies outside it. Such a link is not read; it counts as
//! a file that could not be read (what it owned stays) and is named in an event.
//! Links to directories inside the folder are not walked either (they could loop, and
//! what they point at is walked anyway).

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::resources::parse::{DocumentError, parse_bytes};
use crate::resources::{Object, keys};

/// What one file declares, as last read.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct FileState {
    /// The documents that parsed, each carrying `orcaops.dev/source: file:<path>`.
    pub objects: Vec<Object>,
    /// The documents that did not (or the one error for a file that could not be read).
    pub errors: Vec<DocumentError>,
    /// Where the file's link points when it leads out of the folder (then not read).
    pub link_out: Option<PathBuf>,
}

impl FileState {
    /// A file with any error, or a link out of the folder, keeps everything it owned:
    /// the last good version stays in force.
    pub fn failed(&self) -> bool {
        !self.errors.is_empty() || self.link_out.is_some()
    }
}

/// Where `path` really is, when that is outside `dir` (both resolved): a link out.
/// A path that cannot be resolved (missing, a link cycle) is not a link out; reading
/// it fails on its own.
pub(super) fn link_out(dir: &Path, path: &Path) -> Option<PathBuf> {
    let root = std::fs::canonicalize(dir).ok()?;
    let real = std::fs::canonicalize(path).ok()?;
    (!real.starts_with(&root)).then_some(real)
}

/// Every file of the folder that counts, by relative path (forward slashes).
#[derive(Clone, Debug, Default)]
pub(super) struct Files {
    pub files: BTreeMap<String, FileState>,
    /// Directories that could not be listed: what their files owned is left alone.
    pub unreadable_dirs: Vec<String>,
}

impl Files {
    /// Whether `file` may hold objects this scan could not see.
    pub fn unknown(&self, file: &str) -> bool {
        self.unreadable_dirs
            .iter()
            .any(|dir| file.starts_with(&format!("{dir}/")))
    }
}

/// The value of the source annotation for a file.
pub(super) fn source_of(rel: &str) -> String {
    format!("file:{rel}")
}

/// Only YAML files count.
pub(super) fn is_yaml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml")
}

/// `path` relative to `dir` with forward slashes, or `None` when it is outside `dir` or any
/// part of it is hidden (dot-files and dot-dirs: editors' swap files, `.git`).
pub(super) fn relative(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_str()?;
                if part.starts_with('.') {
                    return None;
                }
                parts.push(part);
            }
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Parses a file's bytes and marks each object with its source.
pub(super) fn parse_file(rel: &str, bytes: &[u8]) -> FileState {
    let mut state = FileState::default();
    for result in parse_bytes(rel, bytes) {
        match result {
            Ok(mut obj) => {
                obj.metadata
                    .annotations
                    .insert(keys::SOURCE.to_string(), source_of(rel));
                state.objects.push(obj);
            }
            Err(e) => state.errors.push(e),
        }
    }
    state
}

/// Reads one file: `None` when it no longer exists (or is not a regular file).
pub(super) fn read_file(dir: &Path, rel: &str) -> Option<FileState> {
    let path = dir.join(rel);
    if let Some(real) = link_out(dir, &path) {
        return Some(FileState {
            link_out: Some(real),
            ..FileState::default()
        });
    }
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => return Some(unreadable(rel, &e)),
    }
    match std::fs::read(&path) {
        Ok(bytes) => Some(parse_file(rel, &bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(unreadable(rel, &e)),
    }
}

fn unreadable(rel: &str, e: &io::Error) -> FileState {
    FileState {
        objects: Vec::new(),
        link_out: None,
        errors: vec![DocumentError {
            file: rel.to_string(),
            document: 0,
            line: None,
            column: None,
            field: None,
            message: format!("cannot read the file: {e}"),
            fix: Some("make the file readable by orcaops".into()),
            kind: None,
            namespace: None,
            name: None,
            also: Vec::new(),
        }],
    }
}

/// The YAML files under `start` (a directory inside `dir`), recursively, as relative paths.
/// Symbolic links to files inside the folder are followed; links to directories are
/// not (they could loop). YAML and directory links that lead out of the folder are
/// listed, so that reading them reports the link (see [`read_file`]).
/// Subdirectories that cannot be listed go to `unreadable`.
pub(super) fn walk(
    dir: &Path,
    start: &Path,
    unreadable: &mut Vec<String>,
) -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = vec![start.to_path_buf()];
    let mut first = true;
    while let Some(current) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            // The folder itself must be readable: otherwise every object would look deleted.
            Err(e) if first => return Err(e),
            Err(e) => {
                tracing::warn!(dir = %current.display(), error = %e, "cannot list a directory of the watched folder");
                unreadable.extend(relative(dir, &current));
                continue;
            }
        };
        first = false;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(rel) = relative(dir, &path) else {
                continue;
            };
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            // A link out of the folder is listed (as a YAML file or a directory) so
            // that reading it reports the link instead of its content.
            let link_out_listed = file_type.is_symlink()
                && (is_yaml(&path) || path.is_dir())
                && link_out(dir, &path).is_some();
            let yaml_file = is_yaml(&path)
                && (file_type.is_file() || (file_type.is_symlink() && path.is_file()));
            if file_type.is_dir() {
                pending.push(path);
            } else if link_out_listed || yaml_file {
                found.push(rel);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads the whole folder.
pub(super) fn scan(dir: &Path) -> io::Result<Files> {
    let mut files = Files::default();
    for rel in walk(dir, dir, &mut files.unreadable_dirs)? {
        if let Some(state) = read_file(dir, &rel) {
            files.files.insert(rel, state);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_skip_hidden_parts() {
        let dir = Path::new("/srv/orcaops");
        assert_eq!(
            relative(dir, Path::new("/srv/orcaops/jobs/a.yaml")).as_deref(),
            Some("jobs/a.yaml")
        );
        assert_eq!(relative(dir, Path::new("/srv/orcaops/.a.yaml.swp")), None);
        assert_eq!(relative(dir, Path::new("/srv/orcaops/.git/x.yaml")), None);
        assert_eq!(relative(dir, Path::new("/srv/other/a.yaml")), None);
        assert_eq!(relative(dir, dir), None);
    }

    #[test]
    fn only_yaml_counts() {
        assert!(is_yaml(Path::new("a.yaml")));
        assert!(is_yaml(Path::new("a.yml")));
        assert!(!is_yaml(Path::new("a.yaml~")));
        assert!(!is_yaml(Path::new("4913")));
    }
}
