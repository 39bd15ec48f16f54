//! Policies on every door, with the real `orcaops` binary, a watched folder and real
//! Docker: an Enforce policy refuses through REST (403) and the CLI (exit 4) and nothing
//! is created or run; a dry run checks and writes nothing; Warn sends `Warning` headers
//! that the CLI prints; Audit accepts and reports; a refused file keeps its last good
//! version and gets a Warning event; a policy added after a Job blocks its next run
//! until the policy goes; a CEL rule refuses what it says.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(90);
const API: &str = "/apis/orcaops.dev/v1alpha1";

/// A namespace no other test (or run) shares, so its policies cover only this test.
fn namespace(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

fn policy_yaml(name: &str, mode: &str, ns: &str, rules: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: {name}\nspec:\n  mode: {mode}\n  workspaces: [\"{ns}\"]\n{rules}"
    )
}

/// One step named `main` that runs `run`.
fn step(run: &str) -> String {
    format!("  steps:\n    - name: main\n      run: {run}\n")
}

fn job_in(ns: &str, name: &str, image: &str, body: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  image: {image}\n{body}"
    )
}

/// Writes `content` to a file outside the watched folder and returns its path.
fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

/// `policy report --policy NAME -o json`: the policy's violations.
fn report(server: &Server, policy: &str) -> Value {
    let out = server.cli_ok(&["policy", "report", "--policy", policy, "-o", "json"]);
    let all: Value = serde_json::from_str(&out).expect("policy report -o json prints JSON");
    all[0]["violations"].clone()
}

/// Waits until the policy's report satisfies `done`.
fn wait_report(server: &Server, policy: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    poll(T, || {
        last = report(server, policy);
        done(&last).then_some(())
    })
    .unwrap_or_else(|| panic!("the report of {policy} never {what}; last:\n{last:#}"));
    last
}

/// The containers (running or not) carrying every label of `labels`, as `docker ps -a`
/// sees them.
fn containers(labels: &[(&str, &str)]) -> usize {
    let mut docker = std::process::Command::new("docker");
    docker.args(["ps", "-a", "-q"]);
    for (key, value) in labels {
        docker.args(["--filter", &format!("label={key}={value}")]);
    }
    let out = docker.output().expect("docker ps runs");
    text(&out.stdout).lines().filter(|l| !l.is_empty()).count()
}

/// The containers of job `name` in workspace `ns` (of its run `run`, if given).
fn containers_of(ns: &str, name: &str, run: Option<&str>) -> usize {
    let mut labels = vec![("orcaops.dev/workspace", ns), ("orcaops.dev/name", name)];
    labels.extend(run.map(|r| ("orcaops.dev/run", r)));
    containers(&labels)
}

/// POSTs `body` (JSON) to `path` with the admin key; returns the code, the headers and
/// the body.
fn post(server: &Server, path: &str, body: &Value) -> (u16, String, Value) {
    let out = server
        .curl()
        .args([
            "-s",
            "-i",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["--data-binary", &body.to_string()])
        .arg(format!("{}{path}", server.url))
        .output()
        .expect("curl runs");
    let raw = text(&out.stdout);
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (code, head.to_string(), body)
}

fn job_json(ns: &str, name: &str, image: &str, run: &str) -> Value {
    serde_json::json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"image": image, "steps": [{"name": "main", "run": run}]},
    })
}

#[test]
fn an_enforce_policy_refuses_through_rest_and_the_cli_and_nothing_is_created() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let ns = namespace("pol-enforce");
    let policy = file(
        &tmp,
        "policy.yaml",
        &policy_yaml(
            "no-miners",
            "Enforce",
            &ns,
            "  images:\n    deny: [\"*miner*\"]\n",
        ),
    );
    server.cli_ok(&["apply", "-f", &policy]);

    // REST: 403 Forbidden, one cause naming the policy, the rule and the field.
    let jobs = format!("{API}/namespaces/{ns}/jobs");
    let (code, _, status) = post(
        &server,
        &jobs,
        &job_json(&ns, "rest", "evil/miner:1", "true"),
    );
    assert_eq!(code, 403, "{status:#}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Forbidden");
    let cause = &status["details"]["causes"][0];
    assert_eq!(cause["reason"], "PolicyViolation", "{status:#}");
    assert_eq!(cause["field"], "spec.image", "{status:#}");
    let message = cause["message"].as_str().unwrap();
    assert!(
        message.contains("no-miners") && message.contains("images.deny"),
        "{message}"
    );

    // The CLI: exit 4, the refusal on stderr.
    let job = file(
        &tmp,
        "job.yaml",
        &job_in(&ns, "cli", "evil/miner:1", &step("exit 0")),
    );
    let out = server.cli(&["apply", "-f", &job]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refused by policy") && stderr.contains("images.deny"),
        "{stderr}"
    );

    // `policy test`: the same verdict, exit 4, nothing written; a good file passes.
    let out = server.cli(&["policy", "test", "-f", &job]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("REFUSED"),
        "{}",
        text(&out.stdout)
    );
    let good = file(
        &tmp,
        "good.yaml",
        &job_in(&ns, "good", IMAGE, &step("echo fine")),
    );
    let out = server.cli_ok(&["policy", "test", "-f", &good]);
    assert!(
        out.contains("allowed") && out.contains("nothing was written"),
        "{out}"
    );
    assert!(
        get_in(&server, "job", &ns, "good").is_none(),
        "a dry run wrote the job"
    );

    // Nothing of the refused jobs exists or runs.
    assert!(get_in(&server, "job", &ns, "rest").is_none());
    assert!(get_in(&server, "job", &ns, "cli").is_none());

    // What the policy allows still runs, on a real container.
    server.cli_ok(&["apply", "-f", &good]);
    let done = poll(T, || {
        get_in(&server, "job", &ns, "good").filter(|j| j["status"]["phase"] == "Succeeded")
    });
    assert!(
        done.is_some(),
        "the allowed job never succeeded:\n{}",
        tail(&server.log(), 40)
    );
    assert_eq!(containers_of(&ns, "rest", None), 0);
    assert_eq!(containers_of(&ns, "cli", None), 0);

    // Both refusals are reported (the dry runs are not).
    let found = wait_report(&server, "no-miners", "counts two refusals", |r| {
        r["refused"] == 2
    });
    assert_eq!(found["byRule"]["images.deny"], 2, "{found:#}");
    let recent = found["recent"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .any(|e| e["object"] == format!("Job/{ns}/cli") && e["door"] == "api"),
        "{found:#}"
    );
}

#[test]
fn server_side_dry_runs_check_everything_and_write_nothing() {
    let server = Server::start();
    let ns = namespace("pol-dry");
    let jobs = format!("{API}/namespaces/{ns}/jobs");
    let (code, _, created) = post(
        &server,
        &format!("{jobs}?dryRun=All"),
        &job_json(&ns, "dry", IMAGE, "echo hi"),
    );
    assert_eq!(code, 201, "{created:#}");
    assert_eq!(created["metadata"]["name"], "dry");
    assert!(
        get_in(&server, "job", &ns, "dry").is_none(),
        "dryRun=All wrote"
    );
    let (code, _, status) = post(
        &server,
        &format!("{jobs}?dryRun=Some"),
        &job_json(&ns, "dry", IMAGE, "echo hi"),
    );
    assert_eq!(code, 400, "{status:#}");
    assert!(status["message"].as_str().unwrap().contains("All"));

    // A delete in dry run says what it would delete, and deletes nothing.
    let (code, _, _) = post(&server, &jobs, &job_json(&ns, "kept", IMAGE, "echo hi"));
    assert_eq!(code, 201);
    let out = server
        .curl()
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(format!("{}{jobs}/kept?dryRun=All", server.url))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "200");
    assert!(
        get_in(&server, "job", &ns, "kept").is_some(),
        "a dry-run delete deleted"
    );
}

#[test]
fn warn_sends_warning_headers_the_cli_prints_and_audit_only_reports() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (warn_ns, audit_ns) = (namespace("pol-warn"), namespace("pol-audit"));
    let policies = format!(
        "{}\n---\n{}",
        policy_yaml(
            "latest-warn",
            "Warn",
            &warn_ns,
            "  images:\n    deny: [\"*:latest\"]\n"
        ),
        policy_yaml(
            "team-audit",
            "Audit",
            &audit_ns,
            "  requiredLabels: [team]\n"
        ),
    );
    server.cli_ok(&["apply", "-f", &file(&tmp, "policies.yaml", &policies)]);

    // Warn: accepted, with a `Warning: 299` header, printed by the CLI as kubectl does.
    let (code, head, _) = post(
        &server,
        &format!("{API}/namespaces/{warn_ns}/jobs"),
        &job_json(&warn_ns, "curl", IMAGE, "echo warned"),
    );
    assert_eq!(code, 201);
    let header = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("warning:"))
        .unwrap_or_else(|| panic!("no Warning header in:\n{head}"));
    assert!(
        header.contains("299 - \"policy latest-warn, rule images.deny"),
        "{header}"
    );
    let job = file(
        &tmp,
        "job.yaml",
        &job_in(&warn_ns, "cli", IMAGE, &step("echo warned")),
    );
    let out = server.cli(&["apply", "-f", &job]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Warning: policy latest-warn, rule images.deny: spec.image"),
        "{stderr}"
    );
    // Accepted means it runs.
    let ran = poll(T, || {
        get_in(&server, "job", &warn_ns, "cli").filter(|j| j["status"]["phase"] == "Succeeded")
    });
    assert!(
        ran.is_some(),
        "the warned job did not run:\n{}",
        tail(&server.log(), 40)
    );

    // Audit: accepted silently, and reported.
    let job = file(
        &tmp,
        "audited.yaml",
        &job_in(&audit_ns, "unlabelled", IMAGE, &step("echo audited")),
    );
    let out = server.cli(&["apply", "-f", &job]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("Warning"),
        "Audit warns nobody: {}",
        text(&out.stderr)
    );
    let found = wait_report(&server, "team-audit", "records the audit", |r| {
        r["audited"] == 1
    });
    assert_eq!(found["byRule"]["requiredLabels"], 1, "{found:#}");
    assert_eq!(found["refused"], 0);
    let warned = wait_report(&server, "latest-warn", "counts both warnings", |r| {
        r["warned"] == 2
    });
    assert_eq!(warned["recent"][0]["action"], "warned", "{warned:#}");
    let table = server.cli_ok(&["policy", "report", "--workspace", &audit_ns]);
    assert!(
        table.contains("team-audit") && !table.contains("latest-warn"),
        "{table}"
    );
}

#[test]
fn a_refused_file_keeps_its_last_good_version_and_says_so_in_an_event() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let ns = namespace("pol-folder");
    server.write("job.yaml", &job_in(&ns, "folder", IMAGE, &step("echo v1")));
    let first = poll(T, || {
        get_in(&server, "job", &ns, "folder").filter(|j| j["status"]["phase"] == "Succeeded")
    });
    assert!(
        first.is_some(),
        "v1 never ran:\n{}",
        tail(&server.log(), 40)
    );
    let policy = policy_yaml(
        "no-secrets-dump",
        "Enforce",
        &ns,
        "  commands:\n    deny: [\"*printenv*\"]\n",
    );
    server.cli_ok(&["apply", "-f", &file(&tmp, "policy.yaml", &policy)]);

    server.write("job.yaml", &job_in(&ns, "folder", IMAGE, &step("printenv")));
    server.write("new.yaml", &job_in(&ns, "fresh", IMAGE, &step("printenv")));
    let events = wait_until(T, "a PolicyRefused event names each file", || {
        let out = server
            .curl()
            .args(["-sf"])
            .arg(format!(
                "{}/api/v1/events?fieldSelector=involvedObject.kind=File&limit=50",
                server.url
            ))
            .output()
            .unwrap();
        let events: Value = serde_json::from_slice(&out.stdout).ok()?;
        let refused: Vec<String> = events["items"]
            .as_array()?
            .iter()
            .filter(|e| e["reason"] == "PolicyRefused" && e["type"] == "Warning")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect();
        let all = refused.join("\n");
        (all.contains("job.yaml") && all.contains("new.yaml")).then_some(all)
    });
    assert!(
        events.contains("commands.deny") && events.contains("stays in force"),
        "{events}"
    );
    // The last good version stays, and nothing of the refused ones runs.
    let job = get_in(&server, "job", &ns, "folder").unwrap();
    assert_eq!(
        job["spec"]["steps"][0]["run"], "echo v1",
        "the refused edit replaced the last good version"
    );
    assert_eq!(job["status"]["totalRuns"], 1, "{job:#}");
    assert!(get_in(&server, "job", &ns, "fresh").is_none());
    assert_eq!(containers_of(&ns, "fresh", None), 0);
    assert_eq!(
        containers_of(&ns, "folder", Some("2")),
        0,
        "the refused edit ran"
    );
}

#[test]
fn a_policy_added_after_a_job_blocks_its_next_run_until_the_policy_goes() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let ns = namespace("pol-blocked");
    let job = file(
        &tmp,
        "job.yaml",
        &job_in(&ns, "nightly", IMAGE, &step("echo nightly")),
    );
    server.cli_ok(&["apply", "-f", &job]);
    let ran = poll(T, || {
        get_in(&server, "job", &ns, "nightly").filter(|j| j["status"]["phase"] == "Succeeded")
    });
    assert!(
        ran.is_some(),
        "run 1 never ended:\n{}",
        tail(&server.log(), 40)
    );

    let policy = file(
        &tmp,
        "policy.yaml",
        &policy_yaml(
            "pinned-only",
            "Enforce",
            &ns,
            "  images:\n    deny: [\"*:latest\"]\n",
        ),
    );
    server.cli_ok(&["apply", "-f", &policy]);
    server.cli_ok(&["rerun", "job", "nightly", "-n", &ns]);
    let blocked = wait_until(T, "the rerun is Blocked", || {
        get_in(&server, "job", &ns, "nightly").filter(|j| true_condition(j, "Blocked").is_some())
    });
    assert_eq!(blocked["status"]["phase"], "Pending", "{blocked:#}");
    let message = true_condition(&blocked, "Blocked").unwrap();
    assert!(
        message.contains("pinned-only") && message.contains("images.deny"),
        "{message}"
    );
    assert!(
        blocked["status"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("blocked by policy"),
        "{blocked:#}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        containers_of(&ns, "nightly", Some("2")),
        0,
        "a blocked run started a container"
    );
    let found = wait_report(&server, "pinned-only", "counts the block", |r| {
        r["refused"] == 1
    });
    assert_eq!(found["recent"][0]["action"], "blocked", "{found:#}");
    assert_eq!(found["recent"][0]["door"], "controller", "{found:#}");

    // The policy goes: the run starts at once (a Policy change wakes what it blocked).
    server.cli_ok(&["delete", "policy", "pinned-only"]);
    let ran = poll(Duration::from_secs(30), || {
        get_in(&server, "job", &ns, "nightly")
            .filter(|j| j["status"]["totalRuns"] == 2 && j["status"]["phase"] == "Succeeded")
    });
    assert!(
        ran.is_some(),
        "run 2 did not start when the policy went:\n{:#}",
        get_in(&server, "job", &ns, "nightly").unwrap()
    );
    let job = get_in(&server, "job", &ns, "nightly").unwrap();
    assert!(true_condition(&job, "Blocked").is_none(), "{job:#}");
}

#[test]
fn a_cel_rule_refuses_what_it_says_and_allows_the_rest() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let ns = namespace("pol-cel");
    let policy = policy_yaml(
        "owned",
        "Enforce",
        &ns,
        "  rules:\n    - name: owner-label\n      expression: \"has(object.metadata.labels) && 'owner' in object.metadata.labels\"\n      message: every job names its owner in label owner\n",
    );
    server.cli_ok(&["apply", "-f", &file(&tmp, "policy.yaml", &policy)]);
    let jobs = format!("{API}/namespaces/{ns}/jobs");
    let (code, _, status) = post(&server, &jobs, &job_json(&ns, "anon", IMAGE, "true"));
    assert_eq!(code, 403, "{status:#}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("rules.owner-label") && message.contains("names its owner"),
        "{message}"
    );
    let mut owned = job_json(&ns, "owned", IMAGE, "true");
    owned["metadata"]["labels"] = serde_json::json!({"owner": "alice"});
    let (code, _, created) = post(&server, &jobs, &owned);
    assert_eq!(code, 201, "{created:#}");
}

#[test]
fn hardened_defaults_hold_and_no_spec_field_turns_them_off() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let ns = namespace("pol-hardened");
    // What would loosen a container is no field of a spec: refused, naming the field.
    for (field, extra) in [
        ("privileged", "  privileged: true\n"),
        (
            "securityContext",
            "  securityContext:\n    privileged: true\n",
        ),
        ("capAdd", "  capAdd: [SYS_ADMIN]\n"),
    ] {
        let yaml = job_in(&ns, "loose", IMAGE, &format!("{}{extra}", step("id")));
        let out = server.cli(&["apply", "-f", &file(&tmp, "loose.yaml", &yaml)]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{field}: {stderr}");
        assert!(stderr.contains(field), "{field}: {stderr}");
        assert!(get_in(&server, "job", &ns, "loose").is_none());
    }
    // A running job's container: no privileges, every capability dropped, no new
    // privileges, a PID limit, and Docker's default seccomp profile (never unconfined).
    let yaml = job_in(&ns, "held", IMAGE, &step("sleep 30"));
    server.cli_ok(&["apply", "-f", &file(&tmp, "held.yaml", &yaml)]);
    let id = wait_until(T, "the job's container runs", || {
        let out = std::process::Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label=orcaops.dev/workspace={ns}"),
            ])
            .output()
            .ok()?;
        let id = text(&out.stdout).lines().next()?.to_string();
        (!id.is_empty()).then_some(id)
    });
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .HostConfig}}", &id])
        .output()
        .expect("docker inspect runs");
    let host: Value = serde_json::from_slice(&out.stdout).expect("docker inspect prints JSON");
    assert_eq!(host["Privileged"], false, "{host:#}");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "{host:#}");
    assert!(
        host["CapAdd"].is_null() || host["CapAdd"] == serde_json::json!([]),
        "{host:#}"
    );
    let options = host["SecurityOpt"].to_string();
    assert!(options.contains("no-new-privileges"), "{options}");
    assert!(!options.contains("unconfined"), "{options}");
    assert!(
        host["PidsLimit"].as_i64().is_some_and(|l| l > 0),
        "{host:#}"
    );
    server.cli_ok(&["cancel", "job", "held", "-n", &ns]);
}
