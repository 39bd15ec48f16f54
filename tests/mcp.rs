//! The MCP server, driven by a client this project did not write: the official MCP
//! Python SDK (tests/mcp/agent_session.py), over stdio and over streamable HTTP, against
//! the real binary and real Docker. `./scripts/setup.sh` prepares its Python venv.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SETUP_HINT: &str = "run ./scripts/setup.sh (it installs the Python MCP SDK)";

/// The venv's Python, with the `mcp` package importable; fails the test otherwise.
fn python() -> PathBuf {
    let venv = std::env::var_os("ORCAOPS_MCP_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/orcaops/mcp-venv"))
        })
        .expect("HOME or ORCAOPS_MCP_VENV is set");
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python venv at {}: {SETUP_HINT}",
        venv.display()
    );
    let imports = Command::new(&python)
        .args(["-c", "import mcp"])
        .output()
        .expect("the venv's python runs");
    assert!(
        imports.status.success(),
        "the venv at {} has no `mcp` package ({}): {SETUP_HINT}",
        venv.display(),
        String::from_utf8_lossy(&imports.stderr).trim()
    );
    python
}

/// Runs the agent session script with `args`; fails with its output unless it passes.
fn agent(args: &[&str]) {
    run_script("agent_session.py", args, None);
}

/// Runs the agent session script over streamable HTTP at `server`'s `/mcp`, sending its
/// server admin key.
fn agent_http(server: &Server, args: &[&str]) {
    let url = format!("{}/mcp", server.url);
    let args = [args, &["--http", &url]].concat();
    run_script("agent_session.py", &args, Some(&server.key()));
}

/// Runs a script of tests/mcp with `args`; fails with its output unless it passes.
/// With `token`, the script sends it as its bearer key over HTTP (ORCAOPS_MCP_TOKEN).
fn run_script(name: &str, args: &[&str], token: Option<&str>) {
    let python = python();
    let script = format!("{}/tests/mcp/{name}", env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let log_path = tmp.path().join("agent.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(python)
        .arg(&script)
        .args(args)
        .env("RUST_LOG", "info")
        .envs(token.map(|t| ("ORCAOPS_MCP_TOKEN", t)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the agent script starts");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => assert!(output.contains("all checks passed"), "{output}"),
        Some(s) => panic!("the MCP agent session failed ({s}):\n{}", tail(&output, 80)),
        None => panic!(
            "the MCP agent session took over 300s:\n{}",
            tail(&output, 80)
        ),
    }
}

#[test]
fn stdio_against_a_running_server() {
    let server = Server::start();
    agent(&["--", BIN, "--server", &server.url, "mcp"]);
}

#[test]
fn stdio_without_a_server_runs_an_embedded_controller() {
    require_docker();
    let data = tempfile::tempdir().unwrap();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    // `legacy`: the initialize handshake most MCP clients speak today.
    agent(&[
        "--scenario",
        "basic",
        "--mode",
        "legacy",
        "--",
        BIN,
        "--server",
        &nobody,
        "mcp",
        "--data-dir",
        data.path().to_str().unwrap(),
    ]);
    // The embedded store kept the job, in the data dir it was given.
    assert!(data.path().join("orcaops.db").exists());
}

#[test]
fn streamable_http_on_serve() {
    let server = Server::start();
    agent_http(&server, &[]);
}

#[test]
fn streamable_http_with_the_initialize_handshake() {
    let server = Server::start();
    agent_http(&server, &["--scenario", "basic", "--mode", "legacy"]);
}

/// An agent opens a sandbox from a template, writes a file, runs a command that reads
/// it, lists, stops, starts and deletes the sandbox, over streamable HTTP.
#[test]
fn sandbox_session_over_streamable_http() {
    let server = Server::start();
    run_script(
        "sandbox_session.py",
        &["--http", &format!("{}/mcp", server.url)],
        Some(&server.key()),
    );
}

/// An agent runs a Workflow with inputs (and retries it with the same idempotency key),
/// reads its DAG, decides its approval gate and asks for a rerun, over streamable HTTP.
#[test]
fn workflow_session_over_streamable_http() {
    let server = Server::start();
    run_script(
        "workflow_session.py",
        &["--http", &format!("{}/mcp", server.url)],
        Some(&server.key()),
    );
}

/// The same over stdio, against a running server.
#[test]
fn sandbox_session_over_stdio() {
    let server = Server::start();
    run_script(
        "sandbox_session.py",
        &["--", BIN, "--server", &server.url, "mcp"],
        None,
    );
}

/// stdout is the protocol: with every log turned on, each line on it must still be a
/// JSON-RPC message (logs go to stderr).
#[test]
fn stdout_carries_only_protocol_messages() {
    require_docker();
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--server", &format!("http://127.0.0.1:{}", free_port())])
        .args(["mcp", "--data-dir", data.path().to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Read stderr as it comes: with every log on, a pipe nobody reads fills up (64 KiB)
    // and the server blocks on its next log line.
    let mut child_stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut child_stderr, &mut text).unwrap();
        text
    });
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "get_resource", "arguments": {"kind": "job", "name": "nope"}}}),
    ];
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            let done = line.contains("\"id\":3");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    for m in &messages {
        writeln!(stdin, "{m}").unwrap();
        // Answer the handshake before sending the rest, as a client does.
        std::thread::sleep(Duration::from_millis(if m["id"] == 1 { 500 } else { 50 }));
    }
    // A server that never answers must fail the test, not hang it.
    if poll(Duration::from_secs(60), || {
        reader.is_finished().then_some(())
    })
    .is_none()
    {
        child.kill().ok();
    }
    let lines = reader.join().unwrap();
    assert!(
        lines.last().is_some_and(|l| l.contains("\"id\":3")),
        "no answer to every request within 60s; stdout: {lines:?}"
    );
    drop(stdin);
    let exited = poll(Duration::from_secs(15), || child.try_wait().unwrap());
    if exited.is_none() {
        child.kill().ok();
    }
    let stderr = stderr_reader.join().unwrap();
    for line in &lines {
        let message: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
    }
    let tools = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|m| m["id"] == 2)
        .expect("tools/list answered");
    assert_eq!(tools["result"]["tools"].as_array().unwrap().len(), 22);
    let missing = serde_json::from_str::<Value>(lines.last().unwrap()).unwrap();
    assert_eq!(missing["result"]["isError"], true, "{missing}");
    let text = missing["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("list_resources"), "{text}");
    assert!(
        stderr.contains("embedded"),
        "stderr should say it runs embedded: {stderr}"
    );
    assert!(
        exited.is_some(),
        "orcaops mcp should exit when stdin closes"
    );
}

/// Over HTTP without a key the session is refused; with a viewer's key the tools act as
/// that viewer: reads in its workspace, no writes, nothing of another workspace.
#[test]
fn streamable_http_needs_a_key_and_acts_with_its_role() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workspace.yaml");
    std::fs::write(
        &file,
        "apiVersion: orcaops.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: team-v\nspec:\n  members:\n    - name: watcher\n      role: viewer\n",
    )
    .unwrap();
    server.cli_ok(&["apply", "-f", file.to_str().unwrap()]);
    let key = server.cli_ok(&["key", "create", "-w", "team-v", "--member", "watcher", "-q"]);
    let url = format!("{}/mcp", server.url);
    run_script(
        "auth_session.py",
        &["--http", &url, "--workspace", "team-v"],
        Some(key.trim()),
    );
}

/// An agent under Policies, over streamable HTTP: an Enforce refusal is a tool error
/// naming the rule, and a Warn finding comes back with the result for the model to read.
#[test]
fn policies_reach_the_agent_over_streamable_http() {
    let server = Server::start();
    let namespace = format!("mcp-pol-{}", std::process::id());
    let policies = format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: mcp-no-miners\nspec:\n  mode: Enforce\n  workspaces: [\"{namespace}\"]\n  images:\n    deny: [\"*miner*\"]\n---\napiVersion: orcaops.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: mcp-pinned\nspec:\n  mode: Warn\n  workspaces: [\"{namespace}\"]\n  images:\n    deny: [\"*:latest\"]\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("policies.yaml");
    std::fs::write(&file, policies).unwrap();
    server.cli_ok(&["apply", "-f", file.to_str().unwrap()]);
    run_script(
        "policy_session.py",
        &[
            "--http",
            &format!("{}/mcp", server.url),
            "--namespace",
            &namespace,
        ],
        Some(&server.key()),
    );
}
