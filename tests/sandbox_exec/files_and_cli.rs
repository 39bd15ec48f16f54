//! Files over REST, and the CLI: exec, exec -i, cp, stop and start.

use super::*;

#[test]
fn files_up_and_down() {
    // Declared first, so it runs after the server is killed and nothing recreates them.
    let cleanup = Cleanup::default();
    let server = Server::start();
    let api = Api::new(&server);
    ready_sandbox(&server, &cleanup, "files", &sandbox_yaml("files", ""));

    // Every byte value, into a directory that does not exist yet, with a mode.
    let (code, answer) = api.put_file(
        "files",
        "path=/data/new/all.bin&mode=0600",
        "application/octet-stream",
        all_bytes(),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["bytes"], 256);
    let (code, headers, body) = api.get_file("files", "path=/data/new/all.bin");
    assert_eq!(code, 200);
    assert_eq!(body, all_bytes());
    assert_eq!(headers["content-length"], "256");
    assert_eq!(headers["x-orcaops-path-kind"], "file");
    assert_eq!(
        headers["x-checksum-sha256"],
        answer["sha256"].as_str().unwrap()
    );
    let ls = api.exec_ok(
        "files",
        json!({"command": ["ls", "-l", "/data/new/all.bin"]}),
    );
    assert!(
        ls["stdout"].as_str().unwrap().starts_with("-rw-------"),
        "{ls}"
    );
    // What an exec writes, a download reads, and the reverse.
    api.exec_ok(
        "files",
        json!({"command": ["sh", "-c", "mkdir -p /out/sub && echo made > /out/sub/f"]}),
    );
    let cat = api.exec_ok(
        "files",
        json!({"command": ["od", "-An", "-tu1", "/data/new/all.bin"]}),
    );
    assert!(
        cat["stdout"].as_str().unwrap().trim_end().ends_with("255"),
        "{cat}"
    );

    // A directory comes as a tar with its name at the root.
    let (code, headers, tar) = api.get_file("files", "path=/out");
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "application/x-tar");
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut found = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).ok();
        found.push((path, text));
    }
    assert!(
        found.contains(&("out/sub/f".to_string(), "made\n".to_string())),
        "{found:?}"
    );

    // A tar upload is extracted into the directory, which is made if missing.
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in [("a.txt", &b"a\n"[..]), ("deep/b.bin", &all_bytes()[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data).unwrap();
    }
    let (code, answer) = api.put_file(
        "files",
        "path=/unpacked/here",
        "application/x-tar",
        builder.into_inner().unwrap(),
    );
    assert_eq!(code, 200, "{answer}");
    let (_, _, b) = api.get_file("files", "path=/unpacked/here/deep/b.bin");
    assert_eq!(b, all_bytes());

    // Errors.
    for (query, code, field) in [
        ("path=relative/x", 422, Some("path")),
        ("path=/tmp/../etc/passwd", 422, Some("path")),
        ("path=/does/not/exist", 404, None),
    ] {
        let (got, _, body) = api.get_file("files", query);
        let status: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, code, "{query}: {status}");
        assert_eq!(status["kind"], "Status");
        if let Some(field) = field {
            assert_eq!(status["details"]["causes"][0]["field"], field, "{status}");
        }
    }
    let (code, status) = api.put_file("files", "path=/x", "text/plain", b"x".to_vec());
    assert_eq!(code, 415, "{status}");
    // Over the 512 MiB limit: refused from its Content-Length, before the body is sent,
    // and the connection is closed.
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "PUT {NS_PATH}/sandboxes/files/files?path=/big HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\nabc",
        server.key(),
        600u64 * 1024 * 1024
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut socket, &mut answer).ok();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("512 MiB"), "{answer}");
    let (code, status) = api.put_file("nope", "path=/x", "application/octet-stream", b"x".to_vec());
    assert_eq!(code, 404, "{status}");
}

/// Runs the CLI with `input` on stdin.
fn cli_with_stdin(server: &Server, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("ORCAOPS_SERVER", &server.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn cli_exec_cp_stop_and_start() {
    // Declared first, so it runs after the server is killed and nothing recreates them.
    let cleanup = Cleanup::default();
    let server = Server::start();
    ready_sandbox(&server, &cleanup, "cli", &sandbox_yaml("cli", ""));

    // The command's exit code, its stdout and stderr apart.
    let out = exec_sh(&server, "cli", "echo to-out; echo to-err >&2; exit 42");
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");
    let out = server.cli(&[
        "exec",
        "cli",
        "-e",
        "A=b c",
        "-w",
        "/tmp",
        "--",
        "sh",
        "-c",
        "echo $A; pwd",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b c\n/tmp\n");
    let out = server.cli(&["exec", "cli", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(out.status.code(), Some(124));
    // -i: piped stdin reaches the command, and its end is the command's end of input.
    let out = cli_with_stdin(
        &server,
        &["exec", "-i", "cli", "--", "sh", "-c", "wc -c; exit 9"],
        &[7u8; 100_000],
    );
    assert_eq!(
        out.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100000");
    // Binary output comes out as bytes.
    let out = cli_with_stdin(&server, &["exec", "-i", "cli", "--", "cat"], &all_bytes());
    assert_eq!(out.stdout, all_bytes());

    // cp, both ways, a file and a directory.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(src.join("sub/b.bin"), all_bytes()).unwrap();
    let file = src.join("a.txt");
    server.cli_ok(&["cp", file.to_str().unwrap(), "cli:/work/a.txt"]);
    server.cli_ok(&["cp", src.to_str().unwrap(), "cli:/work"]);
    let out = exec_sh(
        &server,
        "cli",
        "cat /work/a.txt /work/src/a.txt; wc -c < /work/src/sub/b.bin",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alpha\nalpha\n256\n");
    let back = tmp.path().join("back");
    server.cli_ok(&["cp", "cli:/work/src", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("sub/b.bin")).unwrap(), all_bytes());
    assert_eq!(
        std::fs::read_to_string(back.join("a.txt")).unwrap(),
        "alpha\n"
    );
    server.cli_ok(&["cp", "cli:/work/a.txt", tmp.path().to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("a.txt")).unwrap(),
        "alpha\n"
    );
    // Errors name the path and what to do.
    let out = server.cli(&["cp", "cli:/nope", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nope"),
        "{out:?}"
    );
    let out = server.cli(&["cp", "cli:relative", "x"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cli:/relative"),
        "{out:?}"
    );

    // Errors of exec: an unknown sandbox or service, a server that is not there.
    let out = server.cli(&["exec", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let out = server.cli(&["exec", "cli", "--service", "web", "--", "true"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("its services are: shell"),
        "{out:?}"
    );
    for interactive in [false, true] {
        let mut args = vec!["--server", "http://127.0.0.1:9", "exec"];
        if interactive {
            args.push("-i");
        }
        args.extend(["cli", "--", "true"]);
        let out = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{out:?}");
    }

    // Stop: exec is refused with how to start it; start: the files are still there.
    server.cli_ok(&["stop", "sandbox", "cli"]);
    let out = server.cli(&["exec", "cli", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("orcaops start sandbox cli"),
        "{out:?}"
    );
    wait_sandbox(&server, "cli", "Stopped", Duration::from_secs(60));
    server.cli_ok(&["start", "sandbox", "cli"]);
    wait_sandbox(&server, "cli", "Ready", Duration::from_secs(60));
    let out = server.cli(&["exec", "cli", "--", "cat", "/work/a.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alpha\n");
}

/// `orcaops exec SANDBOX -- sh -c SCRIPT`.
fn exec_sh(server: &Server, sandbox: &str, script: &str) -> std::process::Output {
    server.cli(&["exec", sandbox, "--", "sh", "-c", script])
}
