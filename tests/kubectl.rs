//! A real, unmodified kubectl (Debian's `/usr/bin/kubectl`) against a real `orcaops serve`:
//! discovery, Tables, apply (client-side and server-side), patches, watch, explain.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, wait_until};
use serde_json::Value;

fn example(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
        .display()
        .to_string()
}

/// kubectl pointed at one server, with a throwaway kubeconfig, home and discovery cache,
/// so it never reads or writes the user's own configuration.
struct Kubectl {
    /// The server's HTTPS URL: kubectl sends a token over TLS only.
    server: String,
    /// The certificate the server's HTTPS listener presents.
    ca: PathBuf,
    /// The key kubectl sends (`--token`), as it sends a service account's token.
    token: String,
    tmp: tempfile::TempDir,
}

impl Kubectl {
    fn new(server: &Server) -> Kubectl {
        let found = Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "these tests run a real kubectl, and none is on PATH: apt-get install kubectl"
        );
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("kubeconfig"), "").unwrap();
        std::fs::create_dir_all(tmp.path().join("home")).unwrap();
        let (url, ca) = server
            .tls
            .clone()
            .expect("kubectl needs a server started with Server::start_tls");
        Kubectl {
            server: url,
            ca,
            token: server.key(),
            tmp,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .env("KUBECONFIG", self.tmp.path().join("kubeconfig"))
            .env("HOME", self.tmp.path().join("home"))
            .arg("--server")
            .arg(&self.server)
            .arg("--token")
            .arg(&self.token)
            .arg("--certificate-authority")
            .arg(&self.ca)
            .arg("--cache-dir")
            .arg(self.tmp.path().join("cache"))
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Runs kubectl and returns stdout, failing the test if it exits non-zero.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs kubectl, expects it to fail, and returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// Writes a file into this kubectl's temporary directory (not the watched folder,
    /// which would apply it too) and returns its path.
    fn file(&self, name: &str, content: &str) -> String {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    /// Waits until the job has finished `runs` runs, the last one with `phase`.
    fn wait_runs(&self, name: &str, runs: u64, phase: &str) {
        wait_until(
            Duration::from_secs(60),
            &format!("run {runs} of job {name} ends {phase}"),
            || {
                let job = self.json(&["get", "job", name]);
                (job["status"]["totalRuns"] == runs && job["status"]["phase"] == phase)
                    .then_some(())
            },
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args)).expect("kubectl -o json prints JSON")
    }

    fn wait_phase(&self, name: &str, phase: &str) {
        let jsonpath = "jsonpath={.status.phase}";
        wait_until(
            Duration::from_secs(60),
            &format!("job {name} reaches {phase}"),
            || (self.ok(&["get", "job", name, "-o", jsonpath]) == phase).then_some(()),
        );
    }
}

/// The header line and the row of `name` of kubectl's table output, split on whitespace.
fn table_row(output: &str, name: &str) -> (Vec<String>, Vec<String>) {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{output}"));
    let words = |s: &str| s.split_whitespace().map(String::from).collect();
    (words(header), words(row))
}

#[test]
fn discovery_lists_the_kinds_with_short_names_and_explain_reads_the_schemas() {
    let server = Server::start_tls();
    let kubectl = Kubectl::new(&server);

    let resources = kubectl.ok(&["api-resources"]);
    let jobs = resources
        .lines()
        .find(|l| l.starts_with("jobs "))
        .unwrap_or_else(|| panic!("no jobs in api-resources:\n{resources}"));
    let jobs: Vec<&str> = jobs.split_whitespace().collect();
    assert_eq!(
        jobs,
        ["jobs", "ojob", "orcaops.dev/v1alpha1", "true", "Job"]
    );
    assert!(resources.contains("policies"), "{resources}");
    assert!(resources.contains("events"), "{resources}");
    let in_category = kubectl.ok(&["api-resources", "--categories=orcaops", "-o", "name"]);
    assert_eq!(in_category.lines().count(), 6, "{in_category}");

    let version = kubectl.ok(&["version"]);
    let expected = format!("Server Version: v{}", env!("CARGO_PKG_VERSION"));
    assert!(version.contains(&expected), "{version}");

    let explain = kubectl.ok(&["explain", "job"]);
    assert!(explain.contains("GROUP:      orcaops.dev"), "{explain}");
    assert!(explain.contains("KIND:       Job"), "{explain}");
    assert!(explain.contains("spec\t<Object> -required-"), "{explain}");
    let steps = kubectl.ok(&["explain", "jobs.spec.steps"]);
    assert!(steps.contains("FIELD: steps <[]Object>"), "{steps}");
    assert!(steps.contains("run\t<string>"), "{steps}");
    let policy = kubectl.ok(&["explain", "policies.spec"]);
    assert!(policy.contains("KIND:       Policy"), "{policy}");

    // kubectl falls back to v3 when v2 is absent; the answer is a clean NotFound Status.
    let v2 = kubectl.fails(&["get", "--raw", "/openapi/v2"]);
    assert!(v2.contains("NotFound") || v2.contains("not found"), "{v2}");
}

#[test]
fn apply_get_label_annotate_and_delete_as_on_a_cluster() {
    let server = Server::start_tls();
    let kubectl = Kubectl::new(&server);
    let hello = example("hello.yaml");

    let empty = kubectl.run(&["get", "jobs"]);
    assert!(empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("No resources found"));

    // Client-side apply: GET (404), then POST with the last-applied annotation.
    assert_eq!(
        kubectl.ok(&["apply", "-f", &hello]).trim(),
        "job.orcaops.dev/hello created"
    );
    kubectl.wait_phase("hello", "Succeeded");

    // The CRD's printer columns, as `kubectl get jobs` shows them on a cluster.
    let (header, row) = table_row(&kubectl.ok(&["get", "jobs"]), "hello");
    assert_eq!(header, ["NAME", "PHASE", "RUNS", "ATTEMPT", "AGE"]);
    assert_eq!(row[..4], ["hello", "Succeeded", "1", "1"]);
    let wide = kubectl.ok(&["get", "jobs", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("SUMMARY"), "{wide}");
    assert!(wide.contains("run 1 succeeded"), "{wide}");
    let (header, _) = table_row(&kubectl.ok(&["get", "jobs", "-A"]), "default");
    assert_eq!(header[..2], ["NAMESPACE", "NAME"]);
    let (_, row) = table_row(&kubectl.ok(&["get", "ojob", "hello"]), "hello");
    assert_eq!(row[1], "Succeeded");

    let list = kubectl.json(&["get", "jobs"]);
    assert_eq!(list["items"][0]["metadata"]["name"], "hello");
    assert_eq!(list["items"][0]["status"]["phase"], "Succeeded");
    let job = kubectl.json(&["get", "job", "hello"]);
    assert!(
        job.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
            .is_some(),
        "{job}"
    );
    let yaml = kubectl.ok(&["get", "job", "hello", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Job") && yaml.contains("phase: Succeeded"),
        "{yaml}"
    );

    // The same file again: the three-way merge patch is empty.
    assert_eq!(
        kubectl.ok(&["apply", "-f", &hello]).trim(),
        "job.orcaops.dev/hello unchanged"
    );

    // A changed file: a merge patch, and a new run.
    let text = std::fs::read_to_string(&hello).unwrap();
    let changed = kubectl.file(
        "hello-changed.yaml",
        &text.replace("hello from", "hello again from"),
    );
    assert_eq!(
        kubectl.ok(&["apply", "-f", &changed]).trim(),
        "job.orcaops.dev/hello configured"
    );
    kubectl.wait_runs("hello", 2, "Succeeded");

    // Server-side apply.
    assert_eq!(
        kubectl.ok(&["apply", "--server-side", "-f", &hello]).trim(),
        "job.orcaops.dev/hello serverside-applied"
    );
    // The spec changed back: a third run. Wait for it, so that no status write races
    // the replace below.
    kubectl.wait_runs("hello", 3, "Succeeded");
    let job = kubectl.json(&["get", "job", "hello"]);
    assert_eq!(
        job["spec"]["steps"][0]["run"],
        "echo \"hello from orcaops on $(uname -s)\""
    );

    assert!(
        kubectl
            .ok(&["label", "job", "hello", "team=a"])
            .contains("labeled")
    );
    assert!(
        kubectl
            .ok(&["annotate", "job", "hello", "note=hi"])
            .contains("annotated")
    );
    let job = kubectl.json(&["get", "job", "hello"]);
    assert_eq!(job["metadata"]["labels"]["team"], "a");
    assert_eq!(job["metadata"]["annotations"]["note"], "hi");
    let labelled = kubectl.ok(&["get", "jobs", "-l", "team=a", "-L", "team"]);
    let (header, row) = table_row(&labelled, "hello");
    assert_eq!(header.last().unwrap(), "TEAM");
    assert_eq!(row.last().unwrap(), "a");

    // Replace (PUT) with what get returned.
    let current = kubectl.file(
        "current.json",
        &kubectl.ok(&["get", "job", "hello", "-o", "json"]),
    );
    assert!(
        kubectl
            .ok(&["replace", "-f", &current])
            .contains("replaced")
    );

    assert_eq!(
        kubectl.ok(&["delete", "job", "hello"]).trim(),
        "job.orcaops.dev \"hello\" deleted"
    );
    let gone = kubectl.fails(&["get", "job", "hello"]);
    assert!(gone.contains("NotFound"), "{gone}");
}

#[test]
fn patches_are_validated_like_files_and_errors_are_statuses() {
    let server = Server::start_tls();
    let kubectl = Kubectl::new(&server);
    kubectl.ok(&["apply", "-f", &example("hello.yaml")]);

    // A typo in a merge patch: the folder source's message, with the fix.
    let typo = kubectl.fails(&[
        "patch",
        "job",
        "hello",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"steps":[{"name":"x","comand":"ls"}]}}"#,
    ]);
    assert!(typo.contains("is invalid"), "{typo}");
    assert!(
        typo.contains("unknown field \"comand\", did you mean \"command\"?"),
        "{typo}"
    );

    let json_patch = r#"[{"op":"replace","path":"/spec/steps/0/run","value":"echo patched"}]"#;
    kubectl.ok(&["patch", "job", "hello", "--type", "json", "-p", json_patch]);
    let job = kubectl.json(&["get", "job", "hello"]);
    assert_eq!(job["spec"]["steps"][0]["run"], "echo patched");
    assert_eq!(job["metadata"]["generation"], 2);

    let failed_test = r#"[{"op":"test","path":"/spec/image","value":"alpine"}]"#;
    let failed = kubectl.fails(&["patch", "job", "hello", "--type", "json", "-p", failed_test]);
    assert!(failed.contains("does not apply"), "{failed}");

    let strategic = kubectl.fails(&["patch", "job", "hello", "--type", "strategic", "-p", "{}"]);
    assert!(strategic.contains("merge-patch+json"), "{strategic}");

    let missing = kubectl.fails(&["patch", "job", "nope", "--type", "merge", "-p", "{}"]);
    assert!(missing.contains("NotFound"), "{missing}");

    // Events are listed under core v1, with the columns kubectl shows on a cluster.
    wait_until(Duration::from_secs(30), "an event about the job", || {
        let events = kubectl.ok(&["get", "events"]);
        events.contains("job/hello").then_some(events)
    });
    let events = kubectl.ok(&["get", "events"]);
    let header: Vec<&str> = events.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
}

#[test]
fn get_watch_prints_each_change() {
    let server = Server::start_tls();
    let kubectl = Kubectl::new(&server);
    kubectl.ok(&["apply", "-f", &example("hello.yaml")]);
    kubectl.wait_phase("hello", "Succeeded");

    let mut watch = kubectl
        .command(&["get", "jobs", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w starts");
    let (tx, rx) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut labelled = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
        // Change the job once the watch has shown it as it was.
        if !labelled && seen.iter().any(|l| l.starts_with("ADDED")) {
            kubectl.ok(&["label", "job", "hello", "watched=yes"]);
            labelled = true;
        }
        if seen.iter().any(|l| l.starts_with("MODIFIED")) {
            break;
        }
    }
    watch.kill().ok();
    watch.wait().ok();
    let header: Vec<&str> = seen
        .first()
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        header,
        ["EVENT", "NAME", "PHASE", "RUNS", "ATTEMPT", "AGE"],
        "{seen:#?}"
    );
    let modified = seen
        .iter()
        .find(|l| l.starts_with("MODIFIED"))
        .unwrap_or_else(|| panic!("kubectl get -w printed no change within 20 s:\n{seen:#?}"));
    let cells: Vec<&str> = modified.split_whitespace().collect();
    assert_eq!(cells[..3], ["MODIFIED", "hello", "Succeeded"], "{seen:#?}");
}

/// A Job that reads `token` of secret `secret` as `$TOKEN` and prints its SHA-256.
fn secret_job(name: &str, secret: &str) -> String {
    format!(
        r#"apiVersion: orcaops.dev/v1alpha1
kind: Job
metadata:
  name: {name}
spec:
  image: busybox:latest
  env:
    - name: TOKEN
      valueFrom:
        secretKeyRef: {{name: {secret}, key: token}}
  steps:
    - name: hash
      run: printf %s "$TOKEN" | sha256sum
"#
    )
}

/// The hex SHA-256 of `value`, as sha256sum prints it.
fn sha256_hex(value: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file of the server's database (the file, its WAL and shared memory).
fn database_bytes(server: &Server) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = server.data_dir.join(format!("orcaops.db{suffix}"));
        all.extend(std::fs::read(path).unwrap_or_default());
    }
    assert!(
        !all.is_empty(),
        "no database in {}",
        server.data_dir.display()
    );
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_secret_from_kubectl_reaches_a_job_and_nowhere_else() {
    let server = Server::start_tls();
    let kubectl = Kubectl::new(&server);
    let value = format!("orca-{}", uuid::Uuid::new_v4().simple());

    let created = kubectl.ok(&[
        "create",
        "secret",
        "generic",
        "hook",
        &format!("--from-literal=token={value}"),
    ]);
    assert_eq!(created.trim(), "secret/hook created");
    let (header, row) = table_row(&kubectl.ok(&["get", "secrets"]), "hook");
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(row[..3], ["hook", "Opaque", "1"]);
    let (header, row) = table_row(&server.cli_ok(&["get", "secrets"]), "hook");
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(row[..3], ["hook", "Opaque", "1"]);
    // kubectl reads it back as on a cluster (base64 in data).
    let secret = kubectl.json(&["get", "secret", "hook"]);
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&value);
    assert_eq!(secret["data"]["token"], encoded.as_str());
    assert_eq!(secret["type"], "Opaque");

    let job = kubectl.file("use-secret.yaml", &secret_job("use-secret", "hook"));
    kubectl.ok(&["apply", "-f", &job]);
    kubectl.wait_phase("use-secret", "Succeeded");
    let job = kubectl.json(&["get", "job", "use-secret"]);
    let printed = job["status"]["steps"][0]["outputTail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        printed.split_whitespace().next(),
        Some(sha256_hex(&value).as_str()),
        "the step saw another value: {job}"
    );

    // Nowhere else: not the database and its WAL (not even base64), the server's log,
    // the events, describe, or orcaops get.
    let db = database_bytes(&server);
    assert!(!contains(&db, &value), "the value is in the database");
    assert!(
        !contains(&db, &encoded),
        "the base64 value is in the database"
    );
    let log = server.log();
    assert!(!log.is_empty());
    assert!(
        !log.contains(&value) && !log.contains(&encoded),
        "in the log"
    );
    let events = kubectl.ok(&["get", "events"]);
    assert!(events.contains("use-secret"), "{events}");
    assert!(!events.contains(&value), "{events}");
    let events = kubectl.ok(&["get", "events", "-o", "json"]);
    assert!(
        !events.contains(&value) && !events.contains(&encoded),
        "{events}"
    );
    let describe = server.cli_ok(&["describe", "job", "use-secret"]);
    assert!(
        describe.contains("TOKEN from secret hook key token"),
        "{describe}"
    );
    assert!(!describe.contains(&value), "{describe}");
    for format in ["yaml", "json"] {
        let got = server.cli_ok(&["get", "secret", "hook", "-o", format]);
        assert!(got.contains("token"), "{got}");
        assert!(!got.contains(&value) && !got.contains(&encoded), "{got}");
    }
    let key = std::fs::metadata(server.data_dir.join("secrets.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    // Patched and deleted as on a cluster.
    assert!(
        kubectl
            .ok(&["label", "secret", "hook", "team=a"])
            .contains("labeled")
    );
    let labelled = kubectl.json(&["get", "secrets", "-l", "team=a"]);
    assert_eq!(labelled["items"][0]["metadata"]["name"], "hook");
    assert_eq!(labelled["items"][0]["data"]["token"], encoded.as_str());
    assert_eq!(
        kubectl.ok(&["delete", "secret", "hook"]).trim(),
        "secret \"hook\" deleted"
    );
    let gone = kubectl.fails(&["get", "secret", "hook"]);
    assert!(gone.contains("NotFound") && gone.contains("hook"), "{gone}");
    let again = kubectl.fails(&["delete", "secret", "hook"]);
    assert!(again.contains("NotFound"), "{again}");
}

#[test]
fn a_job_waits_pending_for_a_missing_secret_then_runs() {
    let server = Server::start_tls();
    let kubectl = Kubectl::new(&server);
    let job = kubectl.file("waits.yaml", &secret_job("waits", "late"));
    kubectl.ok(&["apply", "-f", &job]);

    let condition = wait_until(
        Duration::from_secs(30),
        "job waits reports SecretMissing",
        || {
            let job = kubectl.json(&["get", "job", "waits"]);
            let conditions = job["status"]["conditions"].as_array()?.clone();
            conditions
                .into_iter()
                .find(|c| c["type"] == "SecretMissing" && c["status"] == "True")
        },
    );
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no secret late in namespace default"),
        "{message}"
    );
    assert!(
        message.contains("kubectl create secret generic late --from-literal=token="),
        "{message}"
    );
    // It stays Pending, and nothing ran: no run, no container.
    std::thread::sleep(Duration::from_secs(4));
    let job = kubectl.json(&["get", "job", "waits"]);
    assert_eq!(job["status"]["phase"], "Pending", "{job}");
    assert_eq!(job["status"]["totalRuns"].as_u64().unwrap_or(0), 0, "{job}");

    // A secret without the key: still waiting, now saying which key.
    kubectl.ok(&[
        "create",
        "secret",
        "generic",
        "late",
        "--from-literal=other=x",
    ]);
    wait_until(
        Duration::from_secs(30),
        "the condition names the missing key",
        || {
            let job = kubectl.json(&["get", "job", "waits"]);
            job["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| {
                    c["type"] == "SecretMissing"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("has no key token"))
                })
                .then_some(())
        },
    );
    assert_eq!(
        kubectl.json(&["get", "job", "waits"])["status"]["phase"],
        "Pending"
    );

    // The key appears: the job runs with it, and the condition goes.
    let value = format!("late-{}", uuid::Uuid::new_v4().simple());
    kubectl.ok(&["delete", "secret", "late"]);
    kubectl.ok(&[
        "create",
        "secret",
        "generic",
        "late",
        &format!("--from-literal=token={value}"),
    ]);
    kubectl.wait_phase("waits", "Succeeded");
    let job = kubectl.json(&["get", "job", "waits"]);
    let printed = job["status"]["steps"][0]["outputTail"]
        .as_str()
        .unwrap_or_default();
    assert!(printed.starts_with(&sha256_hex(&value)), "{job}");
    let conditions = job["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions.iter().all(|c| c["type"] != "SecretMissing"),
        "{job}"
    );
}

#[test]
fn a_sandbox_service_reads_its_secret_when_its_container_is_made() {
    let server = Server::start_tls();
    let kubectl = Kubectl::new(&server);
    let sandbox = kubectl.file(
        "vault.yaml",
        r#"apiVersion: orcaops.dev/v1alpha1
kind: Sandbox
metadata:
  name: vault
spec:
  network: none
  services:
    - name: shell
      image: busybox:latest
      command: ["sleep", "infinity"]
      env:
        - name: TOKEN
          valueFrom:
            secretKeyRef: {name: sbx, key: token}
"#,
    );
    kubectl.ok(&["apply", "-f", &sandbox]);
    // No secret: the service is not made, and says why (never made with an empty value).
    let message = wait_until(
        Duration::from_secs(30),
        "the sandbox's service says its secret is missing",
        || {
            let sandbox = kubectl.json(&["get", "sandbox", "vault"]);
            let service = sandbox["status"]["services"].as_array()?.first()?.clone();
            (service["state"] == "not created").then(|| service["message"].to_string())
        },
    );
    assert!(
        message.contains("no secret sbx in namespace default"),
        "{message}"
    );

    let value = format!("sbx-{}", uuid::Uuid::new_v4().simple());
    kubectl.ok(&[
        "create",
        "secret",
        "generic",
        "sbx",
        &format!("--from-literal=token={value}"),
    ]);
    let printed = wait_until(
        Duration::from_secs(90),
        "the sandbox's service runs with its secret",
        || {
            let out = server.cli(&[
                "exec",
                "vault",
                "--",
                "sh",
                "-c",
                "printf %s \"$TOKEN\" | sha256sum",
            ]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).to_string())
        },
    );
    assert!(printed.starts_with(&sha256_hex(&value)), "{printed}");
    let describe = server.cli_ok(&["describe", "sandbox", "vault"]);
    assert!(!describe.contains(&value), "{describe}");
    assert!(!server.log().contains(&value), "the value is in the log");
    kubectl.ok(&["delete", "sandbox", "vault"]);
}

/// A member's key works with kubectl in its own workspace, and is refused in another
/// with the Forbidden Status kubectl prints as a cluster's RBAC refusal.
#[test]
fn a_members_token_works_in_its_workspace_and_is_refused_in_another() {
    let server = Server::start_tls();
    let admin = Kubectl::new(&server);
    let workspace = "apiVersion: orcaops.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: team-a\nspec:\n  members:\n    - name: dev\n      role: developer\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workspace.yaml");
    std::fs::write(&file, workspace).unwrap();
    admin.ok(&["apply", "-f", file.to_str().unwrap()]);
    let key = server.cli_ok(&["key", "create", "-w", "team-a", "--member", "dev", "-q"]);
    let dev = Kubectl {
        token: key.trim().to_string(),
        ..Kubectl::new(&server)
    };
    let hello = example("hello.yaml");
    let applied = dev.ok(&["apply", "-n", "team-a", "-f", &hello]);
    assert!(applied.contains("created"), "{applied}");
    let listed = dev.ok(&["get", "jobs", "-n", "team-a"]);
    assert!(listed.contains("hello"), "{listed}");
    let refused = dev.fails(&["get", "jobs", "-n", "default"]);
    assert!(
        refused.contains("Forbidden") || refused.contains("forbidden"),
        "{refused}"
    );
    assert!(refused.contains("default"), "{refused}");
    let refused = dev.fails(&["apply", "-n", "default", "-f", &hello]);
    assert!(refused.to_lowercase().contains("forbidden"), "{refused}");
    assert!(
        server.job("hello").is_none(),
        "the refused apply created nothing in default"
    );
    let deleted = dev.ok(&["delete", "job", "hello", "-n", "team-a"]);
    assert!(deleted.contains("deleted"), "{deleted}");
    let bad = Kubectl {
        token: format!("orca_admin_{}", "0".repeat(64)),
        ..Kubectl::new(&server)
    };
    let refused = bad.fails(&["get", "jobs"]);
    assert!(
        refused.contains("Unauthorized") || refused.contains("credentials"),
        "{refused}"
    );
}

#[test]
fn kubectl_shows_a_warn_policys_warnings_and_server_dry_runs_and_diff_write_nothing() {
    let server = Server::start_tls();
    let kubectl = Kubectl::new(&server);
    let policy = kubectl.file(
        "policy.yaml",
        "apiVersion: orcaops.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: no-latest\nspec:\n  mode: Warn\n  images:\n    deny: [\"*:latest\"]\n",
    );
    kubectl.ok(&["apply", "-f", &policy]);
    let job = |name: &str, run: &str| {
        format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  image: {}\n  steps:\n    - name: main\n      run: {run}\n",
            common::IMAGE
        )
    };

    // Warn: kubectl prints the server's Warning header, and the job is created and runs.
    let warned = kubectl.file("warned.yaml", &job("warned", "echo one"));
    let out = kubectl.run(&["apply", "-f", &warned]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: policy no-latest, rule images.deny: spec.image"),
        "kubectl did not show the warning: {stderr}"
    );
    kubectl.wait_phase("warned", "Succeeded");

    // --dry-run=server: checked (the warning comes back) and not written.
    let dry = kubectl.file("dry.yaml", &job("dry", "echo dry"));
    let out = kubectl.run(&["apply", "--dry-run=server", "-f", &dry]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(server dry run)"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Warning: policy no-latest"));
    let missing = kubectl.fails(&["get", "job", "dry"]);
    assert!(
        missing.contains("NotFound") || missing.contains("not found"),
        "{missing}"
    );

    // diff: a server-side dry run of the change, nothing applied.
    let changed = kubectl.file("warned.yaml", &job("warned", "echo two"));
    let out = kubectl.run(&["diff", "-f", &changed]);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "kubectl diff: {diff}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed_line = |sign: char, text: &str| {
        diff.lines()
            .any(|l| l.starts_with(sign) && l.trim_end().ends_with(text))
    };
    assert!(
        changed_line('-', "run: echo one") && changed_line('+', "run: echo two"),
        "{diff}"
    );
    let live = kubectl.json(&["get", "job", "warned"]);
    assert_eq!(
        live["spec"]["steps"][0]["run"], "echo one",
        "diff applied the change"
    );
}
