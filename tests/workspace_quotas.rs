//! Workspace quotas with real containers (the real `orcaops` binary, a watched folder,
//! real Docker): jobs over `concurrentJobs` or `cpu` wait Pending with `QuotaExceeded`
//! and start as room frees up, never more at once than the quota allows, and all of them
//! finish; a second sandbox over `sandboxes: 1` waits until the first is deleted; the
//! Workspace's status shows the usage.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

/// A namespace no other test (or run) shares, so `docker ps` by its label sees only ours.
fn namespace(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

fn workspace_yaml(name: &str, quotas: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\nspec:\n  quotas:\n{quotas}"
    )
}

fn job_in(ns: &str, name: &str, body: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  image: {IMAGE}\n{body}"
    )
}

fn phase(obj: &Value) -> Option<&str> {
    obj.pointer("/status/phase").and_then(Value::as_str)
}

/// The job containers running in workspace `ns` now, as `docker ps` sees them.
fn running_jobs(ns: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=orcaops.dev/workspace={ns}"),
            "--filter",
            "label=orcaops.dev/kind=Job",
        ])
        .output()
        .expect("docker ps runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

/// The most runs that overlapped in time, from the jobs' `startTime`/`completionTime`.
fn most_at_once(jobs: &[Value]) -> usize {
    let mut edges: Vec<(String, i32)> = Vec::new();
    for job in jobs {
        let start = job.pointer("/status/startTime").and_then(Value::as_str);
        let end = job
            .pointer("/status/completionTime")
            .and_then(Value::as_str);
        let (Some(start), Some(end)) = (start, end) else {
            panic!("a finished job has a start and a completion time: {job}");
        };
        // RFC 3339 in UTC with the same precision sorts as time; an end sorts before a
        // start at the same instant.
        edges.push((format!("{start}1"), 1));
        edges.push((format!("{end}0"), -1));
    }
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

/// Watches jobs `names` in `ns` until all succeed: samples `docker ps` and the jobs,
/// returns the most containers seen running at once and the jobs seen waiting with
/// `QuotaExceeded` (with one of their messages).
fn watch_until_all_succeed(
    server: &Server,
    ns: &str,
    names: &[String],
) -> (usize, HashSet<String>, String, Vec<Value>) {
    let start = Instant::now();
    let mut most = 0;
    let mut waited = HashSet::new();
    let mut message = String::new();
    loop {
        most = most.max(running_jobs(ns));
        let jobs: Vec<Value> = names
            .iter()
            .filter_map(|n| get_in(server, "job", ns, n))
            .collect();
        for job in &jobs {
            if let Some(m) = true_condition(job, "QuotaExceeded") {
                assert_eq!(
                    phase(job),
                    Some("Pending"),
                    "a job over quota waits Pending: {job}"
                );
                waited.insert(job["metadata"]["name"].as_str().unwrap().to_string());
                message = m;
            }
        }
        let done = jobs.len() == names.len() && jobs.iter().all(|j| phase(j) == Some("Succeeded"));
        if done {
            return (most, waited, message, jobs);
        }
        for job in &jobs {
            assert!(
                matches!(phase(job), Some("Pending" | "Running" | "Succeeded") | None),
                "no job fails or is dropped: {job}"
            );
        }
        assert!(
            start.elapsed() < T,
            "not all of {names:?} succeeded within {T:?}: {jobs:#?}\nserver log:\n{}",
            tail(&server.log(), 60)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn concurrent_jobs_2_runs_six_jobs_two_at_a_time_and_all_succeed() {
    let server = Server::start();
    let ns = namespace("quota-jobs");
    server.write("ws.yaml", &workspace_yaml(&ns, "    concurrentJobs: 2\n"));
    wait_until(Duration::from_secs(20), "the workspace is read", || {
        get_in(&server, "workspace", "", &ns)
    });
    let names: Vec<String> = (1..=6).map(|i| format!("j{i}")).collect();
    let jobs: String = names
        .iter()
        .map(|n| job_in(&ns, n, "  steps:\n    - name: nap\n      run: sleep 2\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    server.write("jobs.yaml", &jobs);
    let (most, waited, message, jobs) = watch_until_all_succeed(&server, &ns, &names);
    assert!(
        most <= 2,
        "docker ps saw {most} job containers of {ns} at once"
    );
    assert!(most >= 1, "docker ps never saw a job running");
    assert!(
        most_at_once(&jobs) <= 2,
        "the jobs' start and completion times overlap more than 2 at once: {jobs:#?}"
    );
    assert!(
        waited.len() >= 3,
        "at least 4 of 6 jobs wait at first, and their status says so: seen {waited:?}"
    );
    // The message names the quota and what fills it: the jobs running, and those
    // created earlier that wait for a slot first (a job that waits behind one about to
    // start sees "1/2 in use, 1 more waiting ahead").
    let usage = message
        .strip_prefix(&format!("workspace {ns}: concurrentJobs "))
        .unwrap_or_else(|| panic!("the message names the workspace and the quota: {message}"));
    let number = |text: &str| -> usize {
        text.parse()
            .unwrap_or_else(|_| panic!("{text:?} in {message:?} is a count"))
    };
    let (in_use, rest) = usage
        .split_once("/2 in use")
        .unwrap_or_else(|| panic!("the message says the usage against 2: {message}"));
    let ahead = rest
        .strip_prefix(", ")
        .and_then(|r| r.split_once(" more waiting ahead"))
        .map_or(0, |(n, _)| number(n));
    assert!(
        number(in_use) + ahead >= 2 && number(in_use) <= 2,
        "a job waits only while the running and those ahead of it fill the quota: {message}"
    );
    for job in &jobs {
        assert_eq!(
            true_condition(job, "QuotaExceeded"),
            None,
            "the condition goes once the job starts: {job}"
        );
    }
    // Creation order: the first two started before the last two.
    let started = |name: &str| {
        jobs.iter()
            .find(|j| j["metadata"]["name"] == name)
            .and_then(|j| j.pointer("/status/startTime"))
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    };
    for (early, late) in [("j1", "j5"), ("j1", "j6"), ("j2", "j5"), ("j2", "j6")] {
        assert!(
            started(early) < started(late),
            "{early} was created first, so it starts before {late}: {jobs:#?}"
        );
    }
    // The workspace counts what runs: nothing now.
    let ws = poll(Duration::from_secs(20), || {
        let ws = get_in(&server, "workspace", "", &ns)?;
        (ws.pointer("/status/usage/concurrentJobs/used")? == "0").then_some(ws)
    })
    .unwrap_or_else(|| {
        panic!(
            "the workspace never shows 0 jobs in use: {:#?}\nserver log:\n{}",
            get_in(&server, "workspace", "", &ns),
            tail(&server.log(), 80)
        )
    });
    assert_eq!(
        ws.pointer("/status/usage/concurrentJobs/hard"),
        Some(&Value::from("2")),
        "{ws}"
    );
}

#[test]
fn a_cpu_quota_of_one_runs_jobs_asking_600m_one_at_a_time() {
    let server = Server::start();
    let ns = namespace("quota-cpu");
    server.write("ws.yaml", &workspace_yaml(&ns, "    cpu: \"1\"\n"));
    wait_until(Duration::from_secs(20), "the workspace is read", || {
        get_in(&server, "workspace", "", &ns)
    });
    let names: Vec<String> = (1..=3).map(|i| format!("c{i}")).collect();
    let jobs: String = names
        .iter()
        .map(|n| {
            job_in(
                &ns,
                n,
                "  resources: {cpu: 600m}\n  steps:\n    - name: nap\n      run: sleep 2\n",
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    server.write("jobs.yaml", &jobs);
    let (most, waited, message, jobs) = watch_until_all_succeed(&server, &ns, &names);
    assert_eq!(
        most, 1,
        "docker ps saw {most} jobs of 600m under a 1-cpu quota"
    );
    assert_eq!(most_at_once(&jobs), 1, "{jobs:#?}");
    assert!(!waited.is_empty(), "a job waited for cpu");
    assert!(
        message.contains("cpu 600m/1 in use") && message.contains("asks for 600m"),
        "{message}"
    );
}

#[test]
fn a_second_sandbox_over_the_quota_waits_until_the_first_is_deleted() {
    let server = Server::start();
    let ns = namespace("quota-sbx");
    server.write("ws.yaml", &workspace_yaml(&ns, "    sandboxes: 1\n"));
    wait_until(Duration::from_secs(20), "the workspace is read", || {
        get_in(&server, "workspace", "", &ns)
    });
    let sandbox = |name: &str| {
        format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Sandbox\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  network: none\n  services:\n    - name: shell\n      image: {IMAGE}\n      command: [\"sleep\", \"infinity\"]\n"
        )
    };
    server.write("first.yaml", &sandbox("first"));
    wait_until(T, "the first sandbox is Ready", || {
        let sb = get_in(&server, "sandbox", &ns, "first")?;
        (phase(&sb) == Some("Ready")).then_some(())
    });
    server.write("second.yaml", &sandbox("second"));
    let waiting = wait_until(T, "the second sandbox waits for quota", || {
        let sb = get_in(&server, "sandbox", &ns, "second")?;
        true_condition(&sb, "QuotaExceeded").map(|m| (sb, m))
    });
    assert_eq!(phase(&waiting.0), Some("Pending"), "{}", waiting.0);
    assert_eq!(
        waiting.1,
        format!("workspace {ns}: sandboxes 1/1 in use; starts when one is stopped or deleted")
    );
    // Still waiting a while later: nothing lets it in while the first runs.
    std::thread::sleep(Duration::from_secs(2));
    let still = get_in(&server, "sandbox", &ns, "second").expect("the second sandbox");
    assert_eq!(phase(&still), Some("Pending"), "{still}");
    let ws = wait_until(
        Duration::from_secs(20),
        "the workspace counts the sandbox",
        || {
            let ws = get_in(&server, "workspace", "", &ns)?;
            (ws.pointer("/status/usage/sandboxes/used")? == "1").then_some(ws)
        },
    );
    assert_eq!(ws.pointer("/status/waiting"), Some(&Value::from(1)), "{ws}");
    let listed = server.cli_ok(&["get", "workspaces"]);
    assert!(listed.contains("sandboxes 1/1"), "{listed}");

    server.cli_ok(&["delete", "sandbox", "first", "-n", &ns]);
    let ready = wait_until(T, "the second sandbox starts", || {
        let sb = get_in(&server, "sandbox", &ns, "second")?;
        (phase(&sb) == Some("Ready")).then_some(sb)
    });
    assert_eq!(true_condition(&ready, "QuotaExceeded"), None, "{ready}");
    server.cli_ok(&["delete", "sandbox", "second", "-n", &ns]);
}

#[test]
fn raising_the_quota_lets_a_waiting_job_start_and_describe_shows_usage_and_defaults() {
    let server = Server::start();
    let ns = namespace("quota-raise");
    let ws = |quotas: &str| {
        format!(
            "{}  defaults:\n    timeoutSeconds: 600\n",
            workspace_yaml(&ns, quotas)
        )
    };
    server.write("ws.yaml", &ws("    concurrentJobs: 0\n"));
    wait_until(Duration::from_secs(20), "the workspace is read", || {
        get_in(&server, "workspace", "", &ns)
    });
    server.write(
        "job.yaml",
        &job_in(
            &ns,
            "held",
            "  steps:\n    - name: hi\n      run: echo hi\n",
        ),
    );
    let held = wait_until(T, "the job waits for quota", || {
        let job = get_in(&server, "job", &ns, "held")?;
        true_condition(&job, "QuotaExceeded")
    });
    assert!(held.contains("never starts"), "{held}");
    let describe = server.cli_ok(&["describe", "job", "held", "-n", &ns]);
    assert!(
        describe.contains("Timeout:      600s (workspace default)"),
        "{describe}"
    );
    assert!(describe.contains("QuotaExceeded"), "{describe}");

    server.write("ws.yaml", &ws("    concurrentJobs: 1\n"));
    let job = wait_until(T, "the job runs once the quota is raised", || {
        let job = get_in(&server, "job", &ns, "held")?;
        (phase(&job) == Some("Succeeded")).then_some(job)
    });
    assert_eq!(true_condition(&job, "QuotaExceeded"), None, "{job}");
    let described = server.cli_ok(&["describe", "workspace", &ns]);
    assert!(described.contains("concurrentJobs"), "{described}");
    assert!(described.contains("0/1"), "{described}");
}
