//! `orcaops completion` with the real binary: a script for every shell, and in a real
//! bash the script loads, completes commands, and completes the names of live objects
//! from a running server.

mod common;

use std::process::Command;

use common::*;

fn completion(shell: &str) -> String {
    let out = Command::new(BIN)
        .args(["completion", shell])
        .output()
        .expect("orcaops runs");
    assert!(
        out.status.success(),
        "completion {shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("a script is text")
}

#[test]
fn every_shell_gets_a_script_with_the_commands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = completion(shell);
        for word in ["orcaops", "describe", "completion", "namespace"] {
            assert!(script.contains(word), "{shell}: no {word} in the script");
        }
    }
    let out = Command::new(BIN)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("possible values"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Completes `words` (the last one being completed) in a bash that loaded the script,
/// with the orcaops of this build on PATH and the server at `server`.
fn complete(script: &std::path::Path, server: &str, words: &[&str]) -> Vec<String> {
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let program = format!(
        // As bash calls a completion function: the command, the word being completed
        // and the one before it.
        "source {}\ncomplete -p orcaops\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_orcaops_live_names orcaops '{}' '{}'\nprintf 'reply:%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2]
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("ORCAOPS_SERVER", server)
        .output()
        .expect("bash runs (apt-get install bash)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("_orcaops_live_names"),
        "the script did not load: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("reply:"))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn in_bash_commands_and_the_names_of_live_objects_complete() {
    let server = Server::start();
    server.write(
        "jobs.yaml",
        &format!(
            "{}---\n{}",
            job_yaml(
                "hello-one",
                "  suspend: true\n  steps:\n    - name: s\n      run: echo hi\n"
            ),
            job_yaml(
                "hello-two",
                "  suspend: true\n  steps:\n    - name: s\n      run: echo hi\n"
            )
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server
        .cli_ok(&["get", "job", "-o", "name"])
        .contains("hello-two")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the jobs of the folder were not applied"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("orcaops.bash");
    std::fs::write(&script, completion("bash")).unwrap();

    let commands = complete(&script, &server.url, &["orcaops", "desc"]);
    assert_eq!(commands, ["describe"], "commands complete");
    let kinds = complete(&script, &server.url, &["orcaops", "logs", "w"]);
    assert_eq!(kinds, ["workflow", "workspace"], "kinds complete");
    let mut names = complete(&script, &server.url, &["orcaops", "logs", "job", "hello-"]);
    names.sort();
    assert_eq!(names, ["hello-one", "hello-two"], "live job names complete");
    let names = complete(
        &script,
        &server.url,
        &["orcaops", "describe", "jobs", "hello-t"],
    );
    assert_eq!(names, ["hello-two"]);
    // Another workspace has none of them.
    let names = complete(
        &script,
        &server.url,
        &["orcaops", "get", "-n", "elsewhere", "job", "hello"],
    );
    assert!(names.is_empty(), "{names:?}");
    // No server answering: nothing offered, and no error printed into the prompt.
    let names = complete(
        &script,
        "http://127.0.0.1:1",
        &["orcaops", "logs", "job", "h"],
    );
    assert!(names.is_empty(), "{names:?}");
}
