//! Regression tests for issue 11, sections 3 and 4: what a job prints and the files it
//! leaves are bounded by the server, not by the job. The real `orcaops` binary, real
//! Docker (busybox).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(180);

fn summary(job: &Value) -> String {
    job.pointer("/status/summary")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn curl(server: &Server, args: &[&str]) -> Vec<u8> {
    let out = server.curl().arg("-sf").args(args).output().unwrap();
    assert!(out.status.success(), "curl {args:?} failed");
    out.stdout
}

fn log_url(server: &Server, job: &str, query: &str) -> String {
    format!(
        "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/{job}/log{query}",
        server.url
    )
}

/// Every file below `dir`, at any depth.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn files_under(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    files_below(dir)
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()) == Some(name))
        .collect()
}

fn total_size(dir: &std::path::Path) -> u64 {
    files_below(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[test]
fn output_past_the_cap_ends_with_a_marker_and_the_file_stays_bounded() {
    let server = Server::start_with_env(&[("ORCAOPS_MAX_OUTPUT_BYTES", "64Ki")]);
    // About 1.5 MB, over twenty times the cap; then a second step that still runs.
    server.write(
        "loud.yaml",
        &job_yaml(
            "loud",
            "  steps:\n    - name: flood\n      run: yes 'a line of output' | head -c 1500000\n    - name: after\n      run: echo after-the-cut\n",
        ),
    );
    let job = server.wait_phase("loud", "Succeeded", T);
    assert!(
        summary(&job).contains("output cut at 64 KiB"),
        "the status says so: {job}"
    );
    let logs = files_under(&server.data_dir, "attempt-1.log");
    assert_eq!(logs.len(), 1, "{logs:?}");
    let size = std::fs::metadata(&logs[0]).unwrap().len();
    assert!(size <= 64 * 1024 + 200, "the stored log is bounded: {size}");
    let text = String::from_utf8(curl(&server, &[&log_url(&server, "loud", "")])).unwrap();
    assert_eq!(text.len() as u64, size, "served as stored");
    assert!(
        text.ends_with("[orcaops: output cut at 64 KiB; the step kept running, its further output was discarded]\n"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(!text.contains("after-the-cut"), "nothing after the marker");
    // Stored once: no per-step copies.
    assert!(files_under(&server.data_dir, "01-flood.log").is_empty());
    let tail =
        String::from_utf8(curl(&server, &[&log_url(&server, "loud", "?tailLines=1")])).unwrap();
    assert!(tail.starts_with("[orcaops: output cut"), "{tail}");
    // The step view of the first step is the whole (cut) output.
    let step = curl(
        &server,
        &[&log_url(&server, "loud", "?step=flood&tailLines=2")],
    );
    let step = String::from_utf8(step).unwrap();
    assert_eq!(step.lines().count(), 2, "{step}");
    assert!(step.starts_with("a line of output\n"), "{step}");
}

#[test]
fn tail_lines_of_a_large_log_are_the_last_lines() {
    let server = Server::start();
    server.write(
        "count.yaml",
        &job_yaml(
            "count",
            "  steps:\n    - name: first\n      run: echo hello\n    - name: count\n      run: seq 1 100000\n",
        ),
    );
    server.wait_phase("count", "Succeeded", T);
    let tail = curl(&server, &[&log_url(&server, "count", "?tailLines=3")]);
    assert_eq!(String::from_utf8(tail).unwrap(), "99998\n99999\n100000\n");
    let first = curl(&server, &[&log_url(&server, "count", "?step=first")]);
    assert_eq!(String::from_utf8(first).unwrap(), "hello\n");
    let step_tail = curl(
        &server,
        &[&log_url(&server, "count", "?step=count&tailLines=1")],
    );
    assert_eq!(String::from_utf8(step_tail).unwrap(), "100000\n");
    let all = curl(&server, &[&log_url(&server, "count", "")]);
    assert_eq!(all.iter().filter(|b| **b == b'\n').count(), 100_001);
    // The CLI reads the same view.
    let cli = server.cli_ok(&["logs", "job", "count", "--tail", "2"]);
    assert!(cli.ends_with("99999\n100000\n"), "{cli}");
}

#[test]
fn containers_get_capped_json_file_logs_and_a_default_memory_limit() {
    let server = Server::start_with_env(&[("ORCAOPS_DEFAULT_MEMORY", "96Mi")]);
    server.write(
        "idle.yaml",
        &job_yaml("idle", "  steps:\n    - name: s\n      run: sleep 30\n"),
    );
    let job = server.wait_phase("idle", "Running", T);
    let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
    let ids = wait_until(T, "the container exists", || {
        let ids = containers_with_label("orcaops.dev/uid", &uid);
        (!ids.is_empty()).then_some(ids)
    });
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{index .HostConfig.LogConfig.Config \"max-file\"}} {{.HostConfig.Memory}}",
            &ids[0],
        ])
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(seen, format!("json-file 20m 5 {}", 96 * 1024 * 1024));
    server.cli_ok(&["cancel", "job", "idle"]);
    server.wait_phase("idle", "Cancelled", T);
}

#[test]
fn a_sparse_artifact_over_the_limit_is_refused_and_an_optional_one_skipped() {
    let server = Server::start_with_env(&[("ORCAOPS_MAX_ARTIFACT_BYTES", "1Mi")]);
    let step = "  steps:\n    - name: s\n      run: dd if=/dev/zero of=/tmp/sparse bs=1 count=0 seek=200M && echo small > /tmp/small\n";
    server.write(
        "sparse.yaml",
        &job_yaml(
            "sparse",
            &format!("{step}  artifacts:\n    - name: big\n      path: /tmp/sparse\n"),
        ),
    );
    server.write(
        "sparse-ok.yaml",
        &job_yaml(
            "sparse-ok",
            &format!("{step}  artifacts:\n    - name: big\n      path: /tmp/sparse\n      optional: true\n    - name: small\n      path: /tmp/small\n"),
        ),
    );
    let failed = server.wait_phase("sparse", "Failed", T);
    let why = summary(&failed);
    assert!(
        why.contains("artifact \"big\" at /tmp/sparse is 200 MiB or more, over the limit of one artifact (--max-artifact-bytes) of 1 MiB"),
        "{why}"
    );
    let ok = server.wait_phase("sparse-ok", "Succeeded", T);
    assert!(summary(&ok).contains("optional artifact \"big\""), "{ok}");
    let names: Vec<&str> = ok["status"]["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["small"]);
    assert!(
        total_size(&server.data_dir.join("runs")) < 4 * 1024 * 1024,
        "the sparse file never landed in the data dir"
    );
}

#[test]
fn a_fifo_at_an_artifact_path_does_not_hang_the_job() {
    let server = Server::start();
    let step = "  steps:\n    - name: s\n      run: mkfifo /tmp/f && mkdir /tmp/d && echo kept > /tmp/d/a && mkfifo /tmp/d/p\n";
    server.write(
        "fifo.yaml",
        &job_yaml(
            "fifo",
            &format!("{step}  artifacts:\n    - name: pipe\n      path: /tmp/f\n"),
        ),
    );
    server.write(
        "fifo-ok.yaml",
        &job_yaml(
            "fifo-ok",
            &format!("{step}  artifacts:\n    - name: pipe\n      path: /tmp/f\n      optional: true\n    - name: dir\n      path: /tmp/d\n"),
        ),
    );
    let failed = server.wait_phase("fifo", "Failed", T);
    assert!(
        summary(&failed).contains("artifact \"pipe\" at /tmp/f is a FIFO"),
        "{failed}"
    );
    let ok = server.wait_phase("fifo-ok", "Succeeded", T);
    let why = summary(&ok);
    assert!(why.contains("optional artifact \"pipe\""), "{why}");
    assert!(
        why.contains("d/p (FIFO)"),
        "the skipped entry is named: {why}"
    );
    for job in ["fifo", "fifo-ok"] {
        let uid = server.job(job).unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        wait_until(T, "the container is removed", || {
            containers_with_label("orcaops.dev/uid", &uid)
                .is_empty()
                .then_some(())
        });
    }
}

#[test]
fn artifacts_whose_stored_names_once_collided_keep_their_own_bytes() {
    let server = Server::start();
    server.write(
        "pair.yaml",
        &job_yaml(
            "pair",
            "  steps:\n    - name: s\n      run: mkdir -p /tmp/out && echo in-the-dir > /tmp/out/a && echo the-file > /tmp/file\n  artifacts:\n    - name: out\n      path: /tmp/out\n    - name: out.tar\n      path: /tmp/file\n",
        ),
    );
    let job = server.wait_phase("pair", "Succeeded", T);
    for artifact in job["status"]["artifacts"].as_array().unwrap() {
        let name = artifact["name"].as_str().unwrap();
        let url = format!(
            "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/pair/artifacts/{name}",
            server.url
        );
        let body = curl(&server, &[&url]);
        let sha = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&body)?;
                child.wait_with_output()
            })
            .unwrap();
        let sha = String::from_utf8_lossy(&sha.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(sha, artifact["sha256"].as_str().unwrap(), "{name}");
        if name == "out.tar" {
            assert_eq!(body, b"the-file\n");
        } else {
            assert!(
                body.windows(10).any(|w| w == b"in-the-dir"),
                "{name} is the tar"
            );
        }
    }
}

#[test]
fn cancel_wins_over_a_slow_artifact_collection() {
    // A 3 GiB sparse file under generous limits: copying it out takes a while, and a
    // cancel asked for meanwhile ends the run without waiting for it.
    let server = Server::start_with_env(&[
        ("ORCAOPS_MAX_ARTIFACT_BYTES", "8Gi"),
        ("ORCAOPS_MAX_JOB_ARTIFACT_BYTES", "8Gi"),
    ]);
    server.write(
        "slowcopy.yaml",
        &job_yaml(
            "slowcopy",
            "  steps:\n    - name: s\n      run: dd if=/dev/zero of=/tmp/huge bs=1 count=0 seek=3G\n  artifacts:\n    - name: huge\n      path: /tmp/huge\n",
        ),
    );
    server.wait_job("slowcopy", "starts collecting", T, |job| {
        job.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
    });
    wait_until(T, "the copy has started", || {
        let partial = std::fs::read_dir(&server.data_dir).ok().map(|_| {
            let mut found = false;
            let mut stack = vec![server.data_dir.join("runs")];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.to_string_lossy().ends_with(".partial")
                        && p.to_string_lossy().contains("huge")
                    {
                        found = true;
                    }
                }
            }
            found
        });
        (partial == Some(true)).then_some(())
    });
    let asked = std::time::Instant::now();
    server.cli_ok(&["cancel", "job", "slowcopy"]);
    let job = server.wait_phase("slowcopy", "Cancelled", T);
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "the cancel did not wait for the copy: {:?}",
        asked.elapsed()
    );
    assert!(
        job["status"]["artifacts"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "nothing was collected: {job}"
    );
    // The abandoned copy leaves nothing behind, and the container goes.
    let uid = job["metadata"]["uid"].as_str().unwrap().to_string();
    wait_until(T, "the partial copy is removed", || {
        (total_size(&server.data_dir.join("runs")) < 1024 * 1024).then_some(())
    });
    wait_until(T, "the container is removed", || {
        containers_with_label("orcaops.dev/uid", &uid)
            .is_empty()
            .then_some(())
    });
}
