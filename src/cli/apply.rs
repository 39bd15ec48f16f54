//! `orcaops apply -f FILE|DIR|-`: validate locally, then apply through the server.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::client::{ApiClient, ClientError, exit};
use crate::resources::Object;
use crate::resources::parse::{DocumentError, parse_bytes};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A YAML file, a directory (every .yaml/.yml under it), or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Workspace for objects that do not name one.
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace")]
    pub namespace: Option<String>,
}

/// Every YAML file named by `-f` arguments, directories walked in name order.
pub fn collect_files(args: &[String]) -> Result<Vec<PathBuf>, ClientError> {
    let mut files = Vec::new();
    for arg in args {
        if arg == "-" {
            files.push(PathBuf::from("-"));
            continue;
        }
        let path = Path::new(arg);
        if path.is_dir() {
            walk(path, &mut files)
                .map_err(|e| ClientError::usage(format!("cannot read directory {arg}: {e}")))?;
        } else if path.exists() {
            files.push(path.to_path_buf());
        } else {
            return Err(ClientError::usage(format!(
                "{arg}: no such file or directory"
            )));
        }
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads and parses the files; returns good objects and every document error.
pub fn load(
    files: &[PathBuf],
    namespace: Option<&str>,
) -> Result<(Vec<Object>, Vec<DocumentError>), ClientError> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let (label, bytes) = if file.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| ClientError::usage(format!("cannot read stdin: {e}")))?;
            ("<stdin>".to_string(), buf)
        } else {
            let bytes = std::fs::read(file)
                .map_err(|e| ClientError::usage(format!("cannot read {}: {e}", file.display())))?;
            (file.display().to_string(), bytes)
        };
        for doc in parse_bytes(&label, &bytes) {
            match doc {
                Ok(mut obj) => {
                    if let Some(ns) = namespace
                        && obj.kind.namespaced()
                    {
                        obj.metadata.namespace = Some(ns.to_string());
                    }
                    objects.push(obj);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    Ok((objects, errors))
}

pub async fn apply(client: &ApiClient, args: ApplyArgs) -> Result<u8, ClientError> {
    let files = collect_files(&args.files)?;
    let (objects, errors) = load(&files, args.namespace.as_deref())?;
    for e in &errors {
        eprintln!("error: {e}");
    }
    let mut failed = !errors.is_empty();
    let mut refused = false;
    for obj in &objects {
        match client.apply(obj).await {
            Ok((_, outcome)) => println!(
                "{}.orcaops.dev/{} {outcome}",
                obj.kind.singular(),
                obj.metadata.name
            ),
            Err(e @ ClientError::Unreachable(_)) => return Err(e),
            Err(ClientError::Policy(message)) => {
                eprintln!(
                    "error: {}.orcaops.dev/{}: {message}",
                    obj.kind.singular(),
                    obj.metadata.name
                );
                refused = true;
            }
            Err(e) => {
                eprintln!(
                    "error: {}.orcaops.dev/{}: {e}",
                    obj.kind.singular(),
                    obj.metadata.name
                );
                failed = true;
            }
        }
    }
    if objects.is_empty() && errors.is_empty() {
        return Err(ClientError::usage("no objects found in the given files"));
    }
    // A policy's refusal says so in the exit code (4), unless something else failed too.
    Ok(if failed {
        exit::USAGE
    } else if refused {
        exit::POLICY
    } else {
        exit::OK
    })
}
