//! The layering of `src/`, checked: every path into the crate that a file names
//! (`use crate::…`, `crate::…` inline, and `super::…` chains that climb out of its
//! layer) is an edge from the file's top-level module to another, and the edges that
//! docs/architecture.md forbids fail here, naming the file, the line and the import.
//! It reads shipped code: a module declared `#[cfg(test)]` and an inline
//! `#[cfg(test)] mod tests { … }` may wire concrete pieces together, as `main` does.
//!
//! The rules (see "Layers" in docs/architecture.md):
//! - `resources` know nothing else of ours;
//! - `store` never reaches `controller` or `runtime` (nor anything above them);
//! - `runtime` owns what it runs and reaches none of `controller`, `store`, `server`, `cli`;
//! - controllers know no HTTP, CLI or process wiring: no `server`, `cli`, `operator`, `mcp`;
//! - `policy` (what Policies find in an object) reads `store` and `resources` only, so
//!   every door (the REST handlers, the folder, `sync`, the controllers) can share it;
//! - `server` handlers see traits, never Docker or pods (`DockerRuntime`, `PodRuntime`,
//!   `runtime::docker`, `runtime::pod`);
//! - `mcp` shares the `client` module with the CLI and never reaches into `cli`;
//! - `notifications` read `store`, `resources` and `metrics` only: the controllers offer
//!   them events, `serve` and `operator` give them their settings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `(layer, layers it must not reach)`.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "resources",
        &[
            "store",
            "runtime",
            "controller",
            "server",
            "cli",
            "mcp",
            "operator",
            "source",
            "records",
            "client",
            "kubeapi",
            "metrics",
            "policy",
            "notifications",
        ],
    ),
    (
        "store",
        &[
            "policy",
            "notifications",
            "controller",
            "runtime",
            "server",
            "cli",
            "mcp",
            "operator",
            "source",
        ],
    ),
    (
        "runtime",
        &[
            "policy",
            "notifications",
            "controller",
            "store",
            "server",
            "cli",
            "mcp",
            "operator",
            "source",
        ],
    ),
    (
        "controller",
        &["server", "cli", "operator", "mcp", "client"],
    ),
    (
        "policy",
        &[
            "controller",
            "runtime",
            "server",
            "cli",
            "mcp",
            "operator",
            "source",
            "client",
        ],
    ),
    (
        "audit",
        &[
            "store",
            "controller",
            "runtime",
            "server",
            "cli",
            "mcp",
            "operator",
            "source",
            "client",
            "policy",
        ],
    ),
    (
        "notifications",
        &[
            "controller",
            "runtime",
            "server",
            "cli",
            "mcp",
            "operator",
            "source",
            "client",
            "policy",
        ],
    ),
    ("mcp", &["cli"]),
    (
        "client",
        &["cli", "mcp", "controller", "runtime", "operator"],
    ),
];

/// Names a `server` file must not use: the concrete runtimes.
const CONCRETE_RUNTIMES: &[&str] = &[
    "DockerRuntime",
    "PodRuntime",
    "runtime::docker",
    "runtime::pod",
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    text: String,
    why: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} ({})",
            self.file, self.line, self.text, self.why
        )
    }
}

/// The module path of a file under `src/`: `runtime/pod/build.rs` is
/// `["runtime", "pod", "build"]`, `runtime/mod.rs` and `runtime.rs` are `["runtime"]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The top-level modules a line of code reaches: `crate::x`, each `x` of
/// `crate::{x::…, y}`, and `super::…` chains that climb to the crate root.
fn reached(line: &str, module: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        // `orcaops_crate::` or `my_crate::` are not ours.
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group));
        } else {
            found.push(ident(rest));
        }
    }
    // `super::super::x` from `a::b::c` is `a::x`; only a chain that climbs out of
    // the file's top-level module reaches another layer.
    let mut rest = line;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].chars().last();
        let chain = &rest[at..];
        let mut depth = 0;
        let mut tail = chain;
        while let Some(next) = tail.strip_prefix("super::") {
            depth += 1;
            tail = next;
        }
        rest = &rest[at + "super::".len() * depth..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if depth >= module.len() {
            if let Some(group) = tail.strip_prefix('{') {
                found.extend(group_heads(group));
            } else {
                found.push(ident(tail));
            }
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first segment of each item of a `{a::x, b, c::{d, e}}` group (its text after `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&group[i..]));
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// Strips a `//` comment (doc comments included), so prose may name any module.
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// The directory a file's child modules live in: `a/mod.rs` and `lib.rs` -> their own
/// directory, `a/b.rs` -> `a/b/`.
fn children_dir(file: &Path) -> PathBuf {
    let parent = file.parent().expect("a file has a directory");
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod" | "lib" | "main") => parent.to_path_buf(),
        Some(stem) => parent.join(stem),
        None => parent.to_path_buf(),
    }
}

/// The files and directories of modules declared `#[cfg(test)] mod name;`: test code,
/// which may wire concrete pieces together as `main` does. The layering is about what
/// ships.
fn test_only_paths(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("readable source");
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            let Some(next) = lines.next() else { break };
            let declared = next
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'));
            if let Some(name) = declared {
                let dir = children_dir(file);
                paths.push(dir.join(format!("{name}.rs")));
                paths.push(dir.join(name));
            }
        }
    }
    paths
}

/// The lines of `text` outside inline `#[cfg(test)] mod name { … }` blocks, numbered
/// from 1.
fn shipped_lines(text: &str) -> Vec<(usize, &str)> {
    let mut kept = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let inline_tests = line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|(_, next)| {
                let next = next.trim();
                next.starts_with("mod ") && next.ends_with('{')
            });
        if !inline_tests {
            kept.push((n + 1, line));
            continue;
        }
        // Skip to the brace that closes the module.
        let mut depth = 0i64;
        for (_, line) in lines.by_ref() {
            depth += code_of(line).matches('{').count() as i64;
            depth -= code_of(line).matches('}').count() as i64;
            if depth <= 0 && code_of(line).contains('}') {
                break;
            }
        }
    }
    kept
}

/// Every violation in the shipped code of the tree under `src`.
fn check(src: &Path) -> Vec<Violation> {
    let mut violations = BTreeSet::new();
    let files = rust_files(src);
    let test_only = test_only_paths(&files);
    for file in files {
        if test_only.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        let relative = file.strip_prefix(src).expect("under src");
        let module = module_path(relative);
        let Some(layer) = module.first() else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let name = format!("src/{}", relative.display());
        let forbidden = FORBIDDEN
            .iter()
            .find(|(l, _)| l == layer)
            .map(|(_, f)| *f)
            .unwrap_or(&[]);
        for (n, line) in shipped_lines(&text) {
            let code = code_of(line);
            for target in reached(code, &module) {
                if forbidden.contains(&target.as_str()) {
                    violations.insert(Violation {
                        file: name.clone(),
                        line: n,
                        text: line.trim().to_string(),
                        why: format!("`{layer}` must not reach `{target}`"),
                    });
                }
            }
            if layer == "server" {
                for concrete in CONCRETE_RUNTIMES {
                    if code.contains(concrete) {
                        violations.insert(Violation {
                            file: name.clone(),
                            line: n,
                            text: line.trim().to_string(),
                            why: format!(
                                "`server` sees runtimes through traits, never `{concrete}`"
                            ),
                        });
                    }
                }
            }
        }
    }
    violations.into_iter().collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_layering_of_src_holds() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations = check(&src);
    assert!(
        violations.is_empty(),
        "{} import(s) cross a layer that docs/architecture.md (\"Layers\") forbids:\n{}",
        violations.len(),
        violations
            .iter()
            .map(|v| format!("  {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The checker itself: each forbidden form is caught, and what is allowed is not.
#[test]
fn the_checker_finds_each_forbidden_form() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |path: &str, text: &str| {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "runtime/job.rs",
        "use crate::controller::job::{container_labels, container_spec};\n",
    );
    write(
        "runtime/mod.rs",
        "    #[error(\"{}\", crate::store::kube::describe(.0))]\n// crate::controller in a comment is prose\n",
    );
    write(
        "store/local.rs",
        "use crate::{resources::Kind, runtime::ContainerInfo};\n",
    );
    write("mcp/jobs.rs", "use crate::cli::{ApiClient, object_path};\n");
    write(
        "controller/mod.rs",
        "use crate::operator::metrics::Metrics;\n",
    );
    write(
        "server/mod.rs",
        "pub docker: Option<DockerRuntime>,\nuse crate::runtime::JobRuntime;\n",
    );
    write("resources/job.rs", "use crate::store::Store;\n");
    write(
        "runtime/pod/build.rs",
        "use super::super::super::controller::job::X;\nuse super::super::names::uid8;\n",
    );
    write(
        "controller/job/mod.rs",
        "use crate::runtime::names::container_name;\nuse crate::store::StoreError;\n\
         #[cfg(test)]\nmod cluster_tests;\n",
    );
    // Test code may wire concrete pieces together: a test-only module's file, and an
    // inline test module, are not shipped.
    write(
        "controller/job/cluster_tests.rs",
        "use crate::operator::lease::Lease;\n",
    );
    write(
        "server/jobs.rs",
        "use crate::store::Store;\n#[cfg(test)]\nmod tests {\n    use crate::runtime::DockerRuntime;\n    fn f() { if true { } }\n}\nuse crate::runtime::pod::PodRuntime;\n",
    );
    // A line may break two rules (`runtime::pod::PodRuntime`); each line counts once.
    let found: Vec<(String, usize)> = check(src)
        .into_iter()
        .map(|v| (v.file, v.line))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        found,
        vec![
            ("src/controller/mod.rs".to_string(), 1),
            ("src/mcp/jobs.rs".to_string(), 1),
            ("src/resources/job.rs".to_string(), 1),
            ("src/runtime/job.rs".to_string(), 1),
            ("src/runtime/mod.rs".to_string(), 1),
            ("src/runtime/pod/build.rs".to_string(), 1),
            ("src/server/jobs.rs".to_string(), 7),
            ("src/server/mod.rs".to_string(), 1),
            ("src/store/local.rs".to_string(), 1),
        ]
    );
}
