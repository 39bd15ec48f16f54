//! The exec command lines that copy artifacts out of a holding pod and release it.
//!
//! The controller runs them through `pods/exec` in the steps container, as
//! `kubectl cp` does: the copy writes a tar of one path to stdout, which the
//! controller stores and hashes exactly as local mode stores Docker's archive
//! (a directory as the tar, a single file unpacked). So the image needs `tar`
//! for its artifacts to be collected on a cluster.

use crate::runtime::runner::{RELEASE_FILE, shell_quote};

/// `tar cf - -C <dir> <base>` for an artifact's absolute `path`: the tar
/// holds `<base>` (a file, or a directory and what is in it), as Docker's
/// archive of the same path does. A base that starts with `-` is written
/// `./-...`, so that tar cannot read it as an option.
pub fn artifact_copy_command(path: &str) -> Vec<String> {
    let (dir, base) = split_path(path);
    let base = if base.starts_with('-') {
        format!("./{base}")
    } else {
        base.to_string()
    };
    ["tar", "cf", "-", "-C", dir, &base]
        .into_iter()
        .map(String::from)
        .collect()
}

/// Creates the runner's release file, so that the holding runner exits.
/// Through the shell rather than `touch`: `/bin/sh` is the one program every
/// Job image has, and the release must work even when the copy did not
/// (an image without `tar`), or the pod would hold to the end of its limit.
pub fn release_command() -> Vec<String> {
    vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        format!(": > {}", shell_quote(RELEASE_FILE)),
    ]
}

/// `/work/out/report.txt` is (`/work/out`, `report.txt`); `/report` is (`/`, `report`);
/// a trailing `/` is ignored; `/` itself is (`/`, `.`).
fn split_path(path: &str) -> (&str, &str) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        None if trimmed.is_empty() => ("/", "."),
        // Validation refuses relative paths; read one from the working directory.
        None => (".", trimmed),
        Some(("", base)) => ("/", base),
        Some((dir, base)) => (dir, base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_command_tars_the_base_name_from_its_directory() {
        assert_eq!(
            artifact_copy_command("/work/out/report.txt"),
            ["tar", "cf", "-", "-C", "/work/out", "report.txt"]
        );
        assert_eq!(
            artifact_copy_command("/work/out/"),
            ["tar", "cf", "-", "-C", "/work", "out"]
        );
        assert_eq!(
            artifact_copy_command("/report"),
            ["tar", "cf", "-", "-C", "/", "report"]
        );
        assert_eq!(
            artifact_copy_command("/"),
            ["tar", "cf", "-", "-C", "/", "."]
        );
        assert_eq!(
            artifact_copy_command("/work/-rf"),
            ["tar", "cf", "-", "-C", "/work", "./-rf"]
        );
        // Exec passes arguments as they are: nothing is quoted or expanded.
        assert_eq!(
            artifact_copy_command("/work/it's $HOME"),
            ["tar", "cf", "-", "-C", "/work", "it's $HOME"]
        );
    }

    #[test]
    fn release_command_creates_the_file_the_runner_waits_for() {
        assert_eq!(
            release_command(),
            ["/bin/sh", "-c", ": > '/.orcaops/collected'"]
        );
    }

    #[test]
    fn release_command_run_by_a_shell_creates_the_release_file() {
        // The script of the release command, pointed at a temporary directory, run by the
        // host's shell: the file it creates is the one `[ -e ]` in the runner looks for.
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("collected");
        let script = release_command()[2].replace(RELEASE_FILE, release.to_str().unwrap());
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(release.exists());
    }
}
