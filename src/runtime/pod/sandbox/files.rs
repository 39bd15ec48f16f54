//! File upload and download for a service of a sandbox's pod, through exec (the API has
//! no archive endpoint): a shell writes stdin to the file, or checks the file and
//! `cat`s it. The errors are Docker's ([`RuntimeError::PathNotFound`],
//! [`RuntimeError::NotAFile`], [`RuntimeError::TooLarge`]), so callers treat both
//! runtimes alike. The image needs `/bin/sh`, `cat`, `wc`, `mkdir` and `chmod`.

use bytes::Bytes;

use crate::runtime::sandbox::{ExecOutput, ExecRequest};
use crate::runtime::{Result, RuntimeError};

/// Exit codes of the read script.
const NOT_A_FILE: i64 = 3;
const MISSING: i64 = 4;
const TOO_LARGE: i64 = 5;

fn absolute(path: &str) -> Result<()> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(RuntimeError::InvalidPath {
            path: path.to_string(),
            reason: "give an absolute path (starting with /)".to_string(),
        })
    }
}

/// The command that writes stdin to `path` with `mode`, making its directory. Pure.
pub fn write_command(path: &str, mode: u32) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        "set -e; mkdir -p -- \"$(dirname -- \"$0\")\"; cat > \"$0\"; chmod \"$1\" \"$0\"".into(),
        path.into(),
        format!("{mode:o}"),
    ]
}

/// The command that prints `path` if it is a regular file of at most `max` bytes. Pure.
pub fn read_command(path: &str, max: u64) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "[ -e \"$0\" ] || exit {MISSING}; [ -f \"$0\" ] || exit {NOT_A_FILE}; \
             s=$(wc -c < \"$0\"); if [ \"$s\" -gt \"$1\" ]; then echo \"$s\" >&2; exit {TOO_LARGE}; fi; \
             exec cat -- \"$0\""
        ),
        path.into(),
        max.to_string(),
    ]
}

/// The exec that writes `data` to the absolute `path` with `mode`.
pub fn write_request(path: &str, data: Bytes, mode: u32) -> Result<ExecRequest> {
    absolute(path)?;
    Ok(ExecRequest {
        command: write_command(path, mode),
        stdin: Some(data),
        ..Default::default()
    })
}

/// What the write exec's `output` says: written, or why not. Pure.
pub fn written(container: &str, path: &str, output: ExecOutput) -> Result<()> {
    if output.exit_code == 0 {
        return Ok(());
    }
    Err(RuntimeError::Exec {
        pod: container.to_string(),
        command: format!("write {path}"),
        message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// The exec that prints the absolute `path` if it is a file of at most `max_bytes`.
pub fn read_request(path: &str, max_bytes: u64) -> Result<ExecRequest> {
    absolute(path)?;
    Ok(ExecRequest {
        command: read_command(path, max_bytes),
        ..Default::default()
    })
}

/// The file's content from the read exec's `output`, or Docker's error for why not.
/// Pure.
pub fn read(container: &str, path: &str, max_bytes: u64, output: ExecOutput) -> Result<Bytes> {
    let (container, path) = (container.to_string(), path.to_string());
    match output.exit_code {
        0 if output.stdout.len() as u64 <= max_bytes => Ok(output.stdout),
        // Grown between the check and the read.
        0 => Err(RuntimeError::TooLarge {
            size: output.stdout.len() as u64,
            container,
            path,
            limit: max_bytes,
        }),
        MISSING => Err(RuntimeError::PathNotFound { container, path }),
        NOT_A_FILE => Err(RuntimeError::NotAFile { container, path }),
        TOO_LARGE => Err(RuntimeError::TooLarge {
            size: String::from_utf8_lossy(&output.stderr)
                .trim()
                .parse()
                .unwrap_or(0),
            container,
            path,
            limit: max_bytes,
        }),
        code => Err(RuntimeError::Exec {
            pod: container,
            command: format!("read {path}"),
            message: format!(
                "exit code {code}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_take_the_path_as_an_argument_never_as_code() {
        let write = write_command("/a b/$(rm -rf x)", 0o644);
        assert_eq!(write[3], "/a b/$(rm -rf x)");
        assert_eq!(write[4], "644");
        assert!(!write[2].contains("rm -rf"));
        let read = read_command("/etc/motd", 1024);
        assert_eq!(read[3..], ["/etc/motd", "1024"]);
        assert!(read[2].contains("exit 4") && read[2].contains("exit 5"));
    }
}
