//! Issue 11, section 8: an init reaps what execs leave behind, and `cp` never creates,
//! follows or sends a link that leaves the copy.

use std::path::Path;

use super::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn orphans_of_execs_are_reaped_and_the_sandbox_can_still_fork() {
    // Declared first, so it runs after the server is killed and nothing recreates them.
    let cleanup = Cleanup::default();
    let server = Server::start();
    ready_sandbox(&server, &cleanup, "reaper", &sandbox_yaml("reaper", ""));

    // Each inner shell exits at once, orphaning its `sleep 0`: 60 orphans from one
    // exec, and one more from each of 20 execs. Without an init they stay zombies of
    // PID 1 (`sleep infinity`, which never waits).
    server.cli_ok(&[
        "exec",
        "reaper",
        "--",
        "sh",
        "-c",
        "for i in $(seq 60); do sh -c 'sleep 0 &'; done",
    ]);
    for _ in 0..20 {
        server.cli_ok(&["exec", "reaper", "--", "sh", "-c", "sleep 0 & exit 0"]);
    }
    let count = "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l";
    let zombies = poll(Duration::from_secs(10), || {
        let out = server.cli(&["exec", "reaper", "--", "sh", "-c", count]);
        let n: usize = stdout(&out).trim().parse().ok()?;
        (n == 0).then_some(n)
    });
    let out = server.cli(&["exec", "reaper", "--", "sh", "-c", "ps -o pid,stat,comm"]);
    assert_eq!(zombies, Some(0), "zombies remain:\n{}", stdout(&out));
    // PID 1 is Docker's init, not the service's command.
    let out = server.cli(&["exec", "reaper", "--", "cat", "/proc/1/comm"]);
    assert_eq!(stdout(&out).trim(), "docker-init");
    let out = server.cli(&[
        "exec",
        "reaper",
        "--",
        "sh",
        "-c",
        "for i in $(seq 30); do true & done; wait; echo forked",
    ]);
    assert_eq!(stdout(&out), "forked\n", "{out:?}");
}

#[test]
fn cp_never_creates_or_follows_a_link_out_of_the_copy() {
    let cleanup = Cleanup::default();
    let server = Server::start();
    ready_sandbox(&server, &cleanup, "links", &sandbox_yaml("links", ""));
    server.cli_ok(&[
        "exec",
        "links",
        "--",
        "sh",
        "-c",
        "mkdir -p /work/tree/sub /work/tree/evil && cd /work/tree && echo alpha > a \
         && echo planted > evil/x && ln -s /etc/passwd abs && ln -s ../.. up \
         && ln -s a rel && ln -s ../a sub/back",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim"), "untouched").unwrap();

    // Out: links that leave the copy are skipped and named; the others are kept.
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let tree = dest.join("tree");
    std::fs::create_dir(&tree).unwrap();
    // Left there by an earlier copy: a link out where the sandbox has a directory.
    std::os::unix::fs::symlink(&outside, tree.join("evil")).unwrap();
    let out = server.cli(&["cp", "links:/work/tree", dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("abs -> /etc/passwd"), "{stderr}");
    assert!(stderr.contains("up -> ../.."), "{stderr}");
    assert!(std::fs::symlink_metadata(tree.join("abs")).is_err());
    assert!(std::fs::symlink_metadata(tree.join("up")).is_err());
    assert_eq!(
        std::fs::read_to_string(tree.join("rel")).unwrap(),
        "alpha\n"
    );
    assert_eq!(
        std::fs::read_link(tree.join("sub/back")).unwrap(),
        Path::new("../a")
    );
    assert_eq!(
        std::fs::read_to_string(tree.join("sub/back")).unwrap(),
        "alpha\n"
    );
    // The directory replaced the link: nothing was written outside.
    assert!(!outside.join("x").exists());
    assert_eq!(
        std::fs::read_to_string(tree.join("evil/x")).unwrap(),
        "planted\n"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("victim")).unwrap(),
        "untouched"
    );

    // A single file is not written through a link either.
    let link = tmp.path().join("file.txt");
    std::os::unix::fs::symlink(outside.join("victim"), &link).unwrap();
    let out = server.cli(&["cp", "links:/work/tree/a", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not write through links"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("victim")).unwrap(),
        "untouched"
    );

    // In: this machine's links that leave the source are left out, named.
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), "a\n").unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), src.join("abs")).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("rel")).unwrap();
    let out = server.cli(&["cp", src.to_str().unwrap(), "links:/up"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("left out the link"),
        "{out:?}"
    );
    let out = server.cli(&[
        "exec",
        "links",
        "--",
        "sh",
        "-c",
        "readlink /up/rel; cat /up/rel; test -e /up/abs || test -L /up/abs || echo no-abs",
    ]);
    assert_eq!(stdout(&out), "a.txt\na\nno-abs\n", "{out:?}");
}
