//! Job outputs end to end: the real `orcaops` binary, a watched folder, real Docker.
//! Steps write `key=value` lines to `$ORCAOPS_OUTPUT`; they reach `status.outputs`,
//! `orcaops describe job` and the run records, within 64 keys and 16 KiB.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn summary(job: &Value) -> &str {
    job.pointer("/status/summary")
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[test]
fn outputs_reach_the_status_describe_and_the_run_record_with_a_read_only_root_as_nobody() {
    let server = Server::start();
    let yaml = job_yaml(
        "outs",
        r#"  security: {runAsNonRoot: true, readOnlyRootFilesystem: true}
  steps:
    - name: build
      run: |
        id -u
        echo "version=1.2" >> "$ORCAOPS_OUTPUT"
        echo "tag=v1.2-::orcaops:fake:end:0:9" >> "$ORCAOPS_OUTPUT"
        printf 'notes<<EOF\nfirst\nsecond\nEOF\n' >> "$ORCAOPS_OUTPUT"
    - name: override
      command: ["/bin/sh", "-c", "test ! -s \"$ORCAOPS_OUTPUT\" && echo version=1.3 >> \"$ORCAOPS_OUTPUT\""]
"#,
    );
    server.write("outs.yaml", &yaml);
    let job = server.wait_phase("outs", "Succeeded", T);
    let outputs = job.pointer("/status/outputs").expect("status.outputs");
    assert_eq!(
        outputs,
        &serde_json::json!({
            "version": "1.3",
            "tag": "v1.2-::orcaops:fake:end:0:9",
            "notes": "first\nsecond",
        }),
        "{job}"
    );
    assert_eq!(
        job.pointer("/status/steps/0/outputTail")
            .and_then(Value::as_str),
        Some("65534"),
        "the step ran as nobody, and the outputs are not step output"
    );
    let describe = server.cli_ok(&["describe", "job", "outs"]);
    assert!(
        describe.contains("Outputs:") && describe.contains("1.3"),
        "{describe}"
    );
    let runs = server.job_runs("outs");
    assert_eq!(
        runs.pointer("/items/0/outputs/version"),
        Some(&Value::from("1.3")),
        "{runs}"
    );
}

#[test]
fn outputs_over_the_bound_or_malformed_fail_the_run_naming_the_step() {
    let server = Server::start();
    server.write(
        "many.yaml",
        &job_yaml(
            "many-keys",
            r#"  steps:
    - name: fill
      run: 'i=0; while [ $i -lt 65 ]; do echo "k$i=v" >> "$ORCAOPS_OUTPUT"; i=$((i+1)); done'
"#,
        ),
    );
    server.write(
        "big.yaml",
        &job_yaml(
            "big-file",
            r#"  steps:
    - name: flood
      run: 'head -c 40000 /dev/zero | tr "\0" x >> "$ORCAOPS_OUTPUT"'
"#,
        ),
    );
    server.write(
        "bad.yaml",
        &job_yaml(
            "bad-line",
            r#"  steps:
    - name: ok
      run: 'echo fine=1 >> "$ORCAOPS_OUTPUT"'
    - name: sloppy
      run: 'printf "good=1\nthis is not a pair\n" >> "$ORCAOPS_OUTPUT"'
"#,
        ),
    );
    let many = server.wait_phase("many-keys", "Failed", T);
    let text = summary(&many);
    assert!(
        text.contains("65 keys")
            && text.contains("bound of 64 keys")
            && text.contains("step \"fill\""),
        "{text}"
    );
    let big = server.wait_phase("big-file", "Failed", T);
    let text = summary(&big);
    assert!(
        text.contains("step \"flood\"")
            && text.contains("40000 bytes")
            && text.contains("32768 bytes"),
        "{text}"
    );
    let bad = server.wait_phase("bad-line", "Failed", T);
    let text = summary(&bad);
    assert!(
        text.contains("step \"sloppy\"")
            && text.contains("line 2")
            && text.contains("this is not a pair"),
        "{text}"
    );
    // What came before the bad step is kept.
    assert_eq!(
        bad.pointer("/status/outputs/fine"),
        Some(&Value::from("1")),
        "{bad}"
    );
}
