//! `orcaops cp`: files and directories between this machine and a sandbox, as
//! `docker cp` copies them (a directory travels as a tar), except for links: see
//! [`links`] for why a copy never creates, follows or sends one that leaves it.

pub(super) mod links;

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use futures::StreamExt;
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::client::{ApiClient, ClientError, exit, object_path, urlencode};
use crate::resources::{DEFAULT_WORKSPACE, Kind, ObjectKey};
use crate::server::PATH_KIND_HEADER;

const AFTER_HELP: &str = "\
One side is SANDBOX:/absolute/path, the other a local path:
  orcaops cp ./app.py scratch:/work/app.py        a file into the sandbox
  orcaops cp ./src scratch:/work                  a directory: /work/src (when /work exists)
  orcaops cp scratch:/work/out.csv .              a file out, into the current directory
  orcaops cp scratch:/var/log ./logs              a directory out: ./logs (or ./logs/log if ./logs exists)
  tar cf - . | orcaops cp - scratch:/work         a tar from stdin, extracted into /work
  orcaops cp scratch:/etc - | tar tf -            a tar to stdout

As with docker cp: copying onto an existing directory puts the source inside it,
otherwise the destination is created with the source's content. Parent
directories in the sandbox are created; local ones must exist.

Unlike docker cp, links never lead out of a copy: a symbolic link is kept only
when it is relative and stays inside the copied directory (others are skipped,
named on stderr), nothing is written through an existing link, and entries
named with .. or an absolute path stop the copy.";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct CpArgs {
    /// Where from: a local path, SANDBOX:/path, or - (a tar on stdin).
    pub src: String,
    /// Where to: a local path, SANDBOX:/path, or - (a tar on stdout).
    pub dst: String,
    /// The workspace (namespace).
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
    /// The service (container) [default: the sandbox's first service].
    #[arg(short = 'c', long, visible_alias = "container")]
    pub service: Option<String>,
}

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Local(PathBuf),
    /// `-`: a tar on stdin or stdout.
    Stdio,
    Remote {
        sandbox: String,
        path: String,
    },
}

fn side(s: &str) -> Result<Side, ClientError> {
    if s == "-" {
        return Ok(Side::Stdio);
    }
    if !s.starts_with('/')
        && !s.starts_with('.')
        && let Some((sandbox, path)) = s.split_once(':')
        && !sandbox.is_empty()
        && !sandbox.contains('/')
    {
        if !path.starts_with('/') {
            return Err(ClientError::usage(format!(
                "{s}: the path in a sandbox is absolute; write {sandbox}:/{path}"
            )));
        }
        return Ok(Side::Remote {
            sandbox: sandbox.into(),
            path: path.into(),
        });
    }
    Ok(Side::Local(PathBuf::from(s)))
}

fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

pub async fn cp(client: &ApiClient, args: CpArgs) -> Result<u8, ClientError> {
    let remote = |sandbox: &str| ObjectKey::new(Kind::Sandbox, &args.namespace, sandbox);
    let copy = Copy {
        client,
        service: args.service.as_deref(),
    };
    match (side(&args.src)?, side(&args.dst)?) {
        (Side::Remote { .. }, Side::Remote { .. }) => Err(ClientError::usage(
            "both sides are in a sandbox; copy to a local path first, then on",
        )),
        (Side::Remote { sandbox, path }, local) => {
            copy.download(&remote(&sandbox), &path, local).await
        }
        (local, Side::Remote { sandbox, path }) => {
            copy.upload(local, &remote(&sandbox), &path).await
        }
        _ => Err(ClientError::usage(
            "one side must be in a sandbox, written SANDBOX:/path (for example scratch:/work)",
        )),
    }
}

struct Copy<'a> {
    client: &'a ApiClient,
    service: Option<&'a str>,
}

impl Copy<'_> {
    fn files_path(&self, key: &ObjectKey, path: &str, extra: &str) -> String {
        let mut p = format!("{}/files?path={}", object_path(key), urlencode(path));
        if let Some(s) = self.service {
            p.push_str(&format!("&service={}", urlencode(s)));
        }
        p.push_str(extra);
        p
    }

    /// `file`, `directory`, or None when the path does not exist in the sandbox.
    async fn remote_kind(
        &self,
        key: &ObjectKey,
        path: &str,
    ) -> Result<Option<String>, ClientError> {
        match self
            .client
            .request(Method::HEAD, &self.files_path(key, path, ""), None)
            .await
        {
            Ok(response) => Ok(response
                .headers()
                .get(PATH_KIND_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(String::from)),
            Err(ClientError::NotFound(_)) => {
                // A HEAD answer has no body: tell a missing path from a missing sandbox.
                self.client.get_object(key).await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn put(
        &self,
        key: &ObjectKey,
        path: &str,
        extra: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(), ClientError> {
        self.client
            .request(
                Method::PUT,
                &self.files_path(key, path, extra),
                Some((content_type, body)),
            )
            .await?;
        Ok(())
    }

    async fn upload(&self, from: Side, key: &ObjectKey, to: &str) -> Result<u8, ClientError> {
        let label = format!("{}:{to}", key.name);
        let local = match from {
            Side::Stdio => {
                let mut tar = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut tar).map_err(|e| {
                    ClientError::usage(format!("cannot read the tar on stdin: {e}"))
                })?;
                let size = tar.len();
                self.put(key, to, "", "application/x-tar", tar).await?;
                eprintln!("copied a {size}-byte tar into {label}");
                return Ok(exit::OK);
            }
            Side::Local(path) => path,
            Side::Remote { .. } => unreachable!("checked by the caller"),
        };
        let meta = std::fs::metadata(&local).map_err(|e| {
            ClientError::usage(format!(
                "{}: {e}; give an existing file or directory to copy",
                local.display()
            ))
        })?;
        let name = local
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "root".into());
        let into_dir =
            to.ends_with('/') || self.remote_kind(key, to).await?.as_deref() == Some("directory");
        if meta.is_file() {
            let target = if into_dir {
                format!("{}/{name}", to.trim_end_matches('/'))
            } else {
                to.to_string()
            };
            let content = std::fs::read(&local)
                .map_err(|e| ClientError::usage(format!("cannot read {}: {e}", local.display())))?;
            let size = content.len();
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o7777
            };
            self.put(
                key,
                &target,
                &format!("&mode={mode:o}"),
                "application/octet-stream",
                content,
            )
            .await?;
            eprintln!(
                "copied {} ({size} bytes) to {}:{target}",
                local.display(),
                key.name
            );
        } else {
            // Onto an existing directory the source goes inside it; otherwise the
            // destination becomes a copy of the source.
            let root = if into_dir { name.as_str() } else { "." };
            let (tar, warnings) = links::tar_directory(&local, root)
                .map_err(|e| ClientError::usage(format!("cannot pack {}: {e}", local.display())))?;
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
            let size = tar.len();
            self.put(key, to, "", "application/x-tar", tar).await?;
            let shown = if into_dir {
                format!("{}/{name}", to.trim_end_matches('/'))
            } else {
                to.to_string()
            };
            eprintln!(
                "copied {} ({size}-byte tar) to {}:{shown}",
                local.display(),
                key.name
            );
        }
        Ok(exit::OK)
    }

    async fn download(&self, key: &ObjectKey, from: &str, to: Side) -> Result<u8, ClientError> {
        let response = self
            .client
            .request(Method::GET, &self.files_path(key, from, ""), None)
            .await?;
        let kind = response
            .headers()
            .get(PATH_KIND_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("file")
            .to_string();
        let checksum = response
            .headers()
            .get("x-checksum-sha256")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let name = base_name(from);
        if to == Side::Stdio && kind == "directory" {
            // Straight through, as it arrives.
            let mut stream = response.bytes_stream();
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    ClientError::unreachable(format!("the download broke off: {e}"))
                })?;
                out.write_all(&chunk)
                    .map_err(|e| ClientError::usage(format!("cannot write to stdout: {e}")))?;
            }
            return Ok(exit::OK);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::unreachable(format!("the download broke off: {e}")))?;
        if let Some(expected) = checksum {
            let actual: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if actual != expected {
                return Err(ClientError::unreachable(format!(
                    "{}:{from} arrived damaged (sha256 {actual}, expected {expected}); copy it again",
                    key.name
                )));
            }
        }
        let Side::Local(local) = to else {
            // A file to stdout: as a one-entry tar, as docker cp does.
            let tar = tar_file(name, &bytes)
                .map_err(|e| ClientError::usage(format!("cannot pack {from}: {e}")))?;
            std::io::stdout()
                .lock()
                .write_all(&tar)
                .map_err(|e| ClientError::usage(format!("cannot write to stdout: {e}")))?;
            return Ok(exit::OK);
        };
        let existing_dir = local.is_dir();
        let target = if existing_dir {
            local.join(name)
        } else {
            local.clone()
        };
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(ClientError::usage(format!(
                "{}: no such directory here; create it first (mkdir -p {})",
                parent.display(),
                parent.display()
            )));
        }
        if kind == "directory" {
            let warnings = links::unpack_as(&bytes, &target).map_err(|e| {
                ClientError::usage(format!(
                    "cannot unpack {}:{from} into {}: {e}",
                    key.name,
                    target.display()
                ))
            })?;
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
        } else {
            if let Ok(link) = std::fs::read_link(&target) {
                return Err(ClientError::usage(format!(
                    "{} is a symbolic link (to {}); orcaops cp does not write through links: remove it or name the file itself",
                    target.display(),
                    link.display()
                )));
            }
            std::fs::write(&target, &bytes).map_err(|e| {
                ClientError::usage(format!("cannot write {}: {e}", target.display()))
            })?;
        }
        eprintln!(
            "copied {}:{from} ({} bytes) to {}",
            key.name,
            bytes.len(),
            target.display()
        );
        Ok(exit::OK)
    }
}

fn tar_file(name: &str, content: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    builder.append_data(&mut header, name, content)?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_told_apart_as_docker_cp_does() {
        assert_eq!(
            side("box:/tmp/x").unwrap(),
            Side::Remote {
                sandbox: "box".into(),
                path: "/tmp/x".into()
            }
        );
        assert_eq!(side("./a:b").unwrap(), Side::Local("./a:b".into()));
        assert_eq!(side("/abs/a:b").unwrap(), Side::Local("/abs/a:b".into()));
        assert_eq!(side("dir/a:b").unwrap(), Side::Local("dir/a:b".into()));
        assert_eq!(side("-").unwrap(), Side::Stdio);
        let err = side("box:tmp/x").unwrap_err();
        assert!(err.to_string().contains("box:/tmp/x"), "{err}");
    }

    #[test]
    fn a_directory_round_trips_through_a_tar() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.txt"), "a").unwrap();
        std::fs::write(src.join("sub/b.bin"), [0u8, 255]).unwrap();
        // Docker's archive of a directory has its name at the root.
        let (tar, warnings) = links::tar_directory(&src, "src").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let out = tmp.path().join("copy");
        links::unpack_as(&tar, &out).unwrap();
        assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"a");
        assert_eq!(std::fs::read(out.join("sub/b.bin")).unwrap(), [0, 255]);
    }
}
