//! Outputs through the runner: its markers parsed, and the generated script run by the
//! host's `/bin/sh` with its output files in a temporary directory.

use super::outputs::{MAX_STEP_FILE_BYTES, OutputsError, collect};
use super::*;
use chrono::TimeZone;
use std::process::Command;

fn line(stream: LogStream, text: &str) -> LogLine {
    LogLine {
        stream,
        timestamp: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        text: text.into(),
    }
}

/// Runs the Docker runner script (no hold) with the host's shell; returns the parser fed
/// with its stdout and stderr (stdout first, as lines), and its exit code.
fn run_on_host(steps: &[Step]) -> (RunnerParser, Vec<String>, i32) {
    run_with_shell("/bin/sh", steps)
}

fn run_with_shell(shell: &str, steps: &[Step]) -> (RunnerParser, Vec<String>, i32) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(shell)
        .arg("-c")
        .arg(script(steps, "n0", None, dir.path().to_str().unwrap()))
        .output()
        .unwrap_or_else(|e| panic!("these tests run the runner with {shell} ({e}); install it (apt-get install dash bash busybox-static)"));
    let mut parser = RunnerParser::new("n0", steps.len());
    let mut carried = Vec::new();
    for (stream, bytes) in [
        (LogStream::Stdout, &output.stdout),
        (LogStream::Stderr, &output.stderr),
    ] {
        for text in String::from_utf8_lossy(bytes).lines() {
            if let Some((_, text)) = parser.push(&line(stream, text)) {
                carried.push(text);
            }
        }
    }
    (parser, carried, output.status.code().unwrap_or(-1))
}

#[test]
fn output_markers_carry_bytes_and_are_not_step_output() {
    let mut parser = RunnerParser::new("n0", 2);
    parser.push(&line(LogStream::Stdout, "::orcaops:n0:start:1"));
    assert_eq!(
        parser.push(&line(
            LogStream::Stdout,
            "::orcaops:n0:output:1: 6b 3d 76 0a"
        )),
        None
    );
    assert_eq!(
        parser.push(&line(LogStream::Stdout, "::orcaops:n0:output:1: 0a")),
        None
    );
    assert_eq!(parser.outputs()[1].bytes, b"k=v\n\n");
    assert_eq!(
        parser.push(&line(
            LogStream::Stdout,
            "::orcaops:n0:outputs-too-large:0:99999"
        )),
        None
    );
    assert_eq!(parser.outputs()[0].too_large, Some(99999));
    parser.push(&line(
        LogStream::Stdout,
        "::orcaops:n0:outputs-unreadable:0",
    ));
    assert!(parser.outputs()[0].unreadable);
    // Bad shapes and another nonce are output; stderr carries no outputs.
    for forged in [
        "::orcaops:n0:output:1:6k",
        "::orcaops:n0:output:1:6b3d",
        "::orcaops:n0:output:9:6b",
        "::orcaops:n1:output:1:6b",
        "::orcaops:n0:outputs-too-large:0:-1",
    ] {
        assert_eq!(
            parser.push(&line(LogStream::Stdout, forged)),
            Some((Some(1), forged.to_string())),
            "{forged}"
        );
    }
    parser.push(&line(LogStream::Stderr, "::orcaops:n0:output:1: 78"));
    assert_eq!(parser.outputs()[1].bytes, b"k=v\n\n");
}

#[test]
fn steps_outputs_travel_through_the_script_and_later_steps_start_with_an_empty_file() {
    let steps = [
        Step::script(
            "build",
            r#"echo "version=1.2" >> "$ORCAOPS_OUTPUT"; printf 'notes<<EOF\n::orcaops:n0:end:0:7\nEOF\n' >> "$ORCAOPS_OUTPUT""#,
        ),
        Step::script(
            "check",
            r#"test ! -s "$ORCAOPS_OUTPUT" && echo "seen=$(($(wc -c < "$ORCAOPS_OUTPUT")))" >> "$ORCAOPS_OUTPUT""#,
        ),
        Step::script("again", "echo 'version=2' >> \"$ORCAOPS_OUTPUT\""),
    ];
    let (parser, carried, code) = run_on_host(&steps);
    assert_eq!(code, 0, "{carried:?}");
    assert!(
        carried.is_empty(),
        "outputs are not step output: {carried:?}"
    );
    assert_eq!(
        parser.steps()[0].exit_code,
        Some(0),
        "a marker inside a value cannot end a step"
    );
    let outputs = collect(&steps, parser.outputs());
    assert_eq!(outputs.error, None);
    assert_eq!(
        outputs.values.into_iter().collect::<Vec<_>>(),
        [
            ("notes".to_string(), "::orcaops:n0:end:0:7".to_string()),
            ("seen".to_string(), "0".to_string()),
            ("version".to_string(), "2".to_string()),
        ]
    );
}

#[test]
fn a_file_over_the_bound_is_reported_by_its_size_only() {
    let steps = [Step::script(
        "flood",
        "i=0; while [ $i -lt 4000 ]; do echo \"key$i=0123456789\"; i=$((i+1)); done >> \"$ORCAOPS_OUTPUT\"",
    )];
    let (parser, _, code) = run_on_host(&steps);
    assert_eq!(code, 0);
    assert!(parser.outputs()[0].bytes.is_empty());
    let size = parser.outputs()[0].too_large.unwrap();
    assert!(size > MAX_STEP_FILE_BYTES as u64, "{size}");
    assert_eq!(
        collect(&steps, parser.outputs()).error,
        Some(OutputsError::StepTooLarge {
            step: "flood".into(),
            size
        })
    );
}

#[test]
fn a_failed_step_still_reports_what_it_wrote() {
    let steps = [
        Step::script("half", "echo partial=yes >> \"$ORCAOPS_OUTPUT\"; exit 3"),
        Step::script("never", "echo never=1 >> \"$ORCAOPS_OUTPUT\""),
    ];
    let (parser, _, code) = run_on_host(&steps);
    assert_eq!(code, 3);
    let outputs = collect(&steps, parser.outputs());
    assert_eq!(
        outputs.values.into_iter().collect::<Vec<_>>(),
        [("partial".to_string(), "yes".to_string())]
    );
}

/// Exec-form steps ran as `(exec -- prog ...)`, which dash (the `/bin/sh` of Debian and
/// Ubuntu images) reads as a program named `--`: every `command:` step failed with 127.
/// The same script must run under dash, bash and busybox's sh.
#[test]
fn exec_form_steps_run_under_dash_bash_and_busybox_sh() {
    let steps = [
        Step::exec(
            "argv",
            vec!["printf".into(), "%s|".into(), "a b".into(), "-n".into()],
        ),
        Step::exec("program", vec!["true".into()]),
        Step::script("after", "echo after"),
    ];
    for shell in ["/bin/dash", "/bin/bash", "/bin/busybox"] {
        let (parser, carried, code) = if shell == "/bin/busybox" {
            // `busybox sh -c SCRIPT`: the applet first.
            let dir = tempfile::tempdir().unwrap();
            let output = Command::new(shell)
                .args(["sh", "-c"])
                .arg(script(&steps, "n0", None, dir.path().to_str().unwrap()))
                .output()
                .expect("scripts/setup.sh installs busybox-static");
            let mut parser = RunnerParser::new("n0", steps.len());
            let mut carried = Vec::new();
            for text in String::from_utf8_lossy(&output.stdout).lines() {
                if let Some((_, text)) = parser.push(&line(LogStream::Stdout, text)) {
                    carried.push(text);
                }
            }
            (parser, carried, output.status.code().unwrap_or(-1))
        } else {
            run_with_shell(shell, &steps)
        };
        assert_eq!(code, 0, "{shell}: {carried:?}");
        let codes: Vec<Option<i64>> = parser.steps().iter().map(|p| p.exit_code).collect();
        assert_eq!(codes, [Some(0), Some(0), Some(0)], "{shell}: {carried:?}");
        assert!(
            carried.iter().any(|l| l == "a b|-n|"),
            "{shell}: {carried:?}"
        );
        assert!(carried.iter().any(|l| l == "after"), "{shell}: {carried:?}");
    }
}
