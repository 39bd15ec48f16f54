//! `orcaops doctor`: checks what a first run depends on (the Docker daemon and its API
//! version, the images the starters and your folder name, the data dir's permissions and
//! free space, the port `serve` listens on, a server's reachability and version) and
//! says how to fix each problem. Nothing is changed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use reqwest::Method;
use serde::Serialize;

use crate::client::{ApiClient, ClientError, exit};
use crate::runtime::DockerRuntime;

pub const AFTER_HELP: &str = "\
Examples:
  orcaops doctor                          # Docker, the starters' images, the data dir, port 7700, the server
  orcaops doctor --dir my-jobs            # also the images your folder's files name
  orcaops doctor --listen 127.0.0.1:7800  # the address you will serve on
  orcaops doctor -o json                  # for scripts

Each line is ok, warn or FAIL, with how to fix it. Exit code 0 when nothing failed
(warnings included), 1 when something did. Nothing is changed.";

/// The oldest Docker API orcaops is tested with (Docker 20.10).
pub const MIN_DOCKER_API: (u32, u32) = (1, 41);
/// Below this much free space in the data dir is a failure; below `LOW_SPACE`, a warning.
const NO_SPACE: u64 = 100 << 20;
const LOW_SPACE: u64 = 1 << 30;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// A folder of YAML (the one you serve): the images its files name are checked too.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The data dir to check [default: $ORCAOPS_DATA_DIR or ~/.local/share/orcaops].
    #[arg(long, env = "ORCAOPS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address `orcaops serve` will listen on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One finding.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub message: String,
    /// What to do about it, when something is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, message: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Ok,
            message: message.into(),
            fix: None,
        }
    }
    fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// `1.41` as numbers.
fn api_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The Docker daemon: reachable, and speaking an API version orcaops knows.
fn docker_check(host: &str, answer: Result<(String, String), String>) -> Check {
    match answer {
        Err(e) => Check::fail(
            "docker",
            format!("the Docker daemon at {host} does not answer: {e}"),
            "start it (`sudo systemctl start docker`, or `sudo dockerd &` where there is no systemd), \
             or point DOCKER_HOST at a running daemon; `docker info` should then answer",
        ),
        Ok((version, api)) => match api_version(&api) {
            Some(v) if v >= MIN_DOCKER_API => {
                Check::ok("docker", format!("Docker {version} at {host}, API {api}"))
            }
            _ => Check::fail(
                "docker",
                format!(
                    "Docker {version} at {host} speaks API {api}; orcaops needs {}.{} or later",
                    MIN_DOCKER_API.0, MIN_DOCKER_API.1
                ),
                "upgrade Docker to 20.10 or later",
            ),
        },
    }
}

/// The images named by `image:` anywhere in the YAML documents of `text`.
fn images_in(text: &str, out: &mut Vec<String>) {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("image", serde_json::Value::String(image))
                            if !image.is_empty() && !image.contains("${{") =>
                        {
                            if !out.contains(image) {
                                out.push(image.clone());
                            }
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    for obj in crate::resources::parse::parse_documents("doctor", text)
        .into_iter()
        .flatten()
    {
        walk(&obj.spec, out);
    }
}

/// The `.yaml` and `.yml` files under `dir`, as `serve` reads them (dot-files left out).
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

async fn images_check(docker: Option<&DockerRuntime>, dir: Option<&Path>) -> Check {
    let mut images = Vec::new();
    for (_, text) in super::init::Template::All.files() {
        images_in(text, &mut images);
    }
    let mut unread = Vec::new();
    if let Some(dir) = dir {
        let mut files = Vec::new();
        if let Err(e) = yaml_files(dir, &mut files) {
            return Check::fail(
                "images",
                format!("cannot read --dir {}: {e}", dir.display()),
                "give the folder of YAML files you serve",
            );
        }
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => images_in(&text, &mut images),
                Err(e) => unread.push(format!("{}: {e}", file.display())),
            }
        }
    }
    let Some(docker) = docker else {
        return Check::warn(
            "images",
            format!("not checked without Docker: {}", images.join(", ")),
            "fix Docker first",
        );
    };
    let mut missing = Vec::new();
    for image in &images {
        match docker.image_present(image).await {
            Ok(true) => {}
            Ok(false) => missing.push(image.clone()),
            Err(e) => missing.push(format!("{image} ({e})")),
        }
    }
    if !unread.is_empty() {
        return Check::warn(
            "images",
            format!("some files could not be read: {}", unread.join("; ")),
            "check their permissions",
        );
    }
    if missing.is_empty() {
        Check::ok(
            "images",
            format!("present on this machine: {}", images.join(", ")),
        )
    } else {
        Check::warn(
            "images",
            format!(
                "not on this machine: {} (orcaops pulls an image at a job's first run; without a registry that run fails)",
                missing.join(", ")
            ),
            format!(
                "docker pull {} now, or build it locally (offline, busybox: `docker import` a root filesystem made from /bin/busybox, as scripts/setup.sh does)",
                missing[0].split(' ').next().unwrap_or_default()
            ),
        )
    }
}

/// Free bytes for an unprivileged writer on the filesystem of `path`.
fn free_space(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `stat` a valid out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The data dir: there (or makeable), writable, its keys private, with room.
fn data_dir_checks(dir: &Path) -> Vec<Check> {
    use std::os::unix::fs::PermissionsExt;
    let mut checks = Vec::new();
    // The nearest directory that exists: the data dir, or where it will be made.
    let existing = dir
        .ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("/"));
    let probe = existing.join(format!(".orcaops-doctor-{}", std::process::id()));
    let writable = std::fs::write(&probe, b"probe").and_then(|()| std::fs::remove_file(&probe));
    match (dir.is_dir(), writable) {
        (_, Err(e)) => checks.push(Check::fail(
            "data dir",
            format!("{} is not writable: {e}", existing.display()),
            format!(
                "give yourself write access (`sudo chown -R $USER {}`), or choose another with --data-dir or ORCAOPS_DATA_DIR",
                existing.display()
            ),
        )),
        (true, Ok(())) => checks.push(Check::ok(
            "data dir",
            format!("{} is writable", dir.display()),
        )),
        (false, Ok(())) => checks.push(Check::ok(
            "data dir",
            format!(
                "{} does not exist yet; serve will make it in {}",
                dir.display(),
                existing.display()
            ),
        )),
    }
    for key in ["admin.key", "secrets.key"] {
        let path = dir.join(key);
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                checks.push(Check::fail(
                    "data dir",
                    format!("{} is readable by others (mode {mode:o})", path.display()),
                    format!("chmod 600 {}", path.display()),
                ));
            }
        }
    }
    match free_space(existing) {
        Err(e) => checks.push(Check::warn(
            "disk",
            format!("cannot read the free space of {}: {e}", existing.display()),
            "check it with `df -h`",
        )),
        Ok(free) if free < NO_SPACE => checks.push(Check::fail(
            "disk",
            format!("{} free where the data dir lives", gib(free)),
            "free some space: logs and artifacts of runs go there (`orcaops gc`, or remove old data), or choose another --data-dir",
        )),
        Ok(free) if free < LOW_SPACE => checks.push(Check::warn(
            "disk",
            format!("only {} free where the data dir lives", gib(free)),
            "logs and artifacts of runs go there; free some space or choose another --data-dir",
        )),
        Ok(free) => checks.push(Check::ok(
            "disk",
            format!("{} free where the data dir lives", gib(free)),
        )),
    }
    checks
}

/// What answers at `url`'s `/version`: Ok(version) for an orcaops server.
async fn server_version(client: &ApiClient) -> Result<String, ClientError> {
    let value: serde_json::Value = client.json(Method::GET, "/version", None).await?;
    value
        .get("gitVersion")
        .and_then(|v| v.as_str())
        .map(|v| v.trim_start_matches('v').to_string())
        .ok_or_else(|| ClientError::usage("the answer to /version has no gitVersion"))
}

/// The port serve will listen on: free, or held by an orcaops server.
fn port_check(listen: SocketAddr, held_by: Option<&str>) -> Check {
    match std::net::TcpListener::bind(listen) {
        Ok(_) => Check::ok("port", format!("{listen} is free for `orcaops serve`")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match held_by {
            Some(version) => Check::ok(
                "port",
                format!("{listen} is taken by a running orcaops server ({version})"),
            ),
            None => Check::fail(
                "port",
                format!("{listen} is taken by another program"),
                format!(
                    "stop it (`ss -ltnp 'sport = :{}'` shows which), or serve elsewhere: `orcaops serve --listen 127.0.0.1:{}` and `--server http://127.0.0.1:{}` for the CLI",
                    listen.port(),
                    listen.port() + 1,
                    listen.port() + 1
                ),
            ),
        },
        Err(e) => Check::fail(
            "port",
            format!("cannot listen on {listen}: {e}"),
            "choose another address with `orcaops serve --listen` (ports below 1024 need root)",
        ),
    }
}

/// Every check, in the order a first run meets them.
pub async fn checks(args: &DoctorArgs, client: &ApiClient, server: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let docker = match tokio::time::timeout(Duration::from_secs(10), DockerRuntime::connect()).await
    {
        Ok(Ok(docker)) => Some(docker),
        Ok(Err(e)) => {
            out.push(docker_check(&host, Err(e.to_string())));
            None
        }
        Err(_) => {
            out.push(docker_check(&host, Err("no answer within 10 s".into())));
            None
        }
    };
    if let Some(docker) = &docker {
        let answer = docker.daemon_version().await.map_err(|e| e.to_string());
        out.push(docker_check(&host, answer));
    }
    out.push(images_check(docker.as_ref(), args.dir.as_deref()).await);
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(super::default_data_dir);
    out.extend(data_dir_checks(&data_dir));

    let answer = server_version(client).await;
    let same_address = server
        .trim_end_matches('/')
        .ends_with(&format!("//{}", args.listen));
    let held_by = match (&answer, same_address) {
        (Ok(v), true) => Some(format!("version {v}")),
        _ => None,
    };
    out.push(port_check(args.listen, held_by.as_deref()));
    let mine = env!("CARGO_PKG_VERSION");
    out.push(match answer {
        Ok(v) if v == mine => Check::ok(
            "server",
            format!("{server} answers: orcaops {v}, the same as this CLI"),
        ),
        Ok(v) => Check::warn(
            "server",
            format!("{server} runs orcaops {v}; this CLI is {mine}"),
            "use the same version on both ends: the CLI and the server may disagree on fields and flags",
        ),
        Err(ClientError::Unreachable(_)) => Check::warn(
            "server",
            format!("no orcaops server answers at {server}"),
            "start one with `orcaops serve --dir DIR` (`orcaops init DIR` writes a starter folder), or point --server / ORCAOPS_SERVER at yours",
        ),
        Err(e) => Check::fail(
            "server",
            format!("{server} answers, but not as orcaops does: {e}"),
            "check --server, and give a key with --token or ORCAOPS_TOKEN if the server asks for one",
        ),
    });
    out
}

fn print_text(checks: &[Check]) {
    for c in checks {
        let verdict = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        println!("{verdict}  {:<9} {}", c.name, c.message);
        if let Some(fix) = &c.fix {
            println!("      {:<9} fix: {fix}", "");
        }
    }
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    let warned = checks.iter().filter(|c| c.verdict == Verdict::Warn).count();
    println!(
        "\n{}",
        match (failed, warned) {
            (0, 0) => "Everything a first run needs is in place.".to_string(),
            (0, w) => format!("Ready, with {w} warning(s) above."),
            (f, _) => format!(
                "{f} problem(s) above stop a first run; fix them and run `orcaops doctor` again."
            ),
        }
    );
}

pub async fn doctor(args: DoctorArgs, client: &ApiClient, server: &str) -> Result<u8, ClientError> {
    let checks = checks(&args, client, server).await;
    match args.output {
        Output::Text => print_text(&checks),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "checks": checks }))
                .unwrap_or_default()
        ),
    }
    Ok(if checks.iter().any(|c| c.verdict == Verdict::Fail) {
        exit::USAGE
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_is_judged_by_whether_it_answers_and_its_api_version() {
        let ok = docker_check("unix:///d.sock", Ok(("28.2.2".into(), "1.50".into())));
        assert_eq!(ok.verdict, Verdict::Ok);
        assert_eq!(ok.message, "Docker 28.2.2 at unix:///d.sock, API 1.50");
        let old = docker_check("unix:///d.sock", Ok(("19.03".into(), "1.40".into())));
        assert_eq!(old.verdict, Verdict::Fail);
        assert!(
            old.message.contains("needs 1.41 or later"),
            "{}",
            old.message
        );
        let down = docker_check("unix:///d.sock", Err("connection refused".into()));
        assert_eq!(down.verdict, Verdict::Fail);
        assert!(down.fix.unwrap().contains("systemctl start docker"));
        assert_eq!(api_version("1.41"), Some((1, 41)));
        assert_eq!(api_version("x"), None);
    }

    #[test]
    fn images_are_found_in_every_document_and_templates_are_left_out() {
        let mut images = Vec::new();
        images_in(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata: {name: a}\nspec:\n  image: alpine:3\n  steps: [{name: s, run: x}]\n  services: [{name: db, image: postgres:16}]\n---\napiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata: {name: b}\nspec:\n  image: alpine:3\n  steps: [{name: s, run: x}]\n",
            &mut images,
        );
        images_in(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  jobs:\n    - name: n\n      job: {image: '${{ inputs.image }}', steps: [{name: s, run: x}]}\n",
            &mut images,
        );
        assert_eq!(images, ["alpine:3", "postgres:16"]);
        let mut starters = Vec::new();
        for (_, text) in super::super::init::Template::All.files() {
            images_in(text, &mut starters);
        }
        assert_eq!(starters, ["busybox:latest"]);
    }

    #[test]
    fn a_data_dir_is_judged_by_access_keys_and_space() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("not/yet");
        let checks = data_dir_checks(&missing);
        assert_eq!(checks[0].verdict, Verdict::Ok);
        assert!(checks[0].message.contains("does not exist yet"));
        assert!(checks.iter().any(|c| c.name == "disk"));

        std::fs::write(tmp.path().join("admin.key"), "k").unwrap();
        std::fs::set_permissions(
            tmp.path().join("admin.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let checks = data_dir_checks(tmp.path());
        let open = checks
            .iter()
            .find(|c| c.verdict == Verdict::Fail)
            .expect("a world-readable key is a failure");
        assert!(
            open.message
                .contains("admin.key is readable by others (mode 644)")
        );
        assert_eq!(
            open.fix.as_deref(),
            Some(format!("chmod 600 {}", tmp.path().join("admin.key").display()).as_str())
        );
    }

    #[test]
    fn a_port_held_by_another_program_names_the_fix() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let taken = port_check(addr, None);
        assert_eq!(taken.verdict, Verdict::Fail);
        assert!(taken.fix.unwrap().contains("--listen 127.0.0.1:"));
        let ours = port_check(addr, Some("version 0.1.0"));
        assert_eq!(ours.verdict, Verdict::Ok);
        drop(held);
        assert_eq!(port_check(addr, None).verdict, Verdict::Ok);
    }
}
