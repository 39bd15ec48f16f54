//! Symbolic links in the folder: followed inside it, never out of it (with an event).

use std::os::unix::fs::symlink;

use super::*;

/// The reasons and messages of the events about `rel`.
async fn reasons(f: &Fixture, rel: &str) -> Vec<(String, String)> {
    f.file_events(rel)
        .await
        .into_iter()
        .map(|e| (e.reason, e.message))
        .collect()
}

#[tokio::test]
async fn a_yaml_link_out_of_the_folder_is_not_read_and_is_named_in_an_event() {
    let f = Fixture::new().await;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.yaml");
    std::fs::write(&secret, job_yaml("leaked", "alpine")).unwrap();
    symlink(&secret, f.folder.path().join("leak.yaml")).unwrap();
    symlink("/etc/passwd", f.folder.path().join("passwd.yaml")).unwrap();
    let report = f.sync().await;
    assert!(report.created.is_empty(), "{report:?}");
    assert!(f.job("leaked").await.is_none());
    assert_eq!(report.links_out.len(), 2, "{report:?}");
    let events = reasons(&f, "leak.yaml").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "LinkOutsideFolder");
    assert!(events[0].1.contains("secret.yaml"), "{events:?}");
    assert!(
        events[0].1.contains("outside the watched folder"),
        "{events:?}"
    );
    let events = reasons(&f, "passwd.yaml").await;
    assert!(events[0].1.contains("/etc/passwd"), "{events:?}");
    // No "cannot parse /etc/passwd" either: the file was not read at all.
    assert!(report.invalid.is_empty(), "{report:?}");
}

#[tokio::test]
async fn directory_links_out_are_not_walked_and_are_named() {
    let f = Fixture::new().await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yaml"), job_yaml("outer", "alpine")).unwrap();
    symlink(outside.path(), f.folder.path().join("elsewhere")).unwrap();
    symlink("..", f.folder.path().join("up")).unwrap();
    f.write("real.yaml", &job_yaml("real", "alpine"));
    let report = f.sync().await;
    assert_eq!(report.created, [job_key("real")]);
    assert!(f.job("outer").await.is_none());
    for link in ["elsewhere", "up"] {
        let events = reasons(&f, link).await;
        assert_eq!(events.len(), 1, "{link}: {events:?}");
        assert_eq!(events[0].0, "LinkOutsideFolder", "{link}");
    }
}

#[tokio::test]
async fn links_inside_the_folder_are_followed_and_cycles_do_not_hang() {
    let f = Fixture::new().await;
    f.write("jobs/a.yaml", &job_yaml("a", "alpine"));
    symlink("jobs/a.yaml", f.folder.path().join("alias.yaml")).unwrap();
    // A loop of links, and a directory link back into the folder.
    symlink("loop2.yaml", f.folder.path().join("loop1.yaml")).unwrap();
    symlink("loop1.yaml", f.folder.path().join("loop2.yaml")).unwrap();
    symlink(".", f.folder.path().join("self")).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), f.sync())
        .await
        .expect("a sync over link loops ends");
    assert!(report.links_out.is_empty(), "{report:?}");
    assert!(f.job("a").await.is_some());
    // Both files declare job a: the second is a clash, not a second copy.
    assert_eq!(report.created, [job_key("a")]);
}

#[tokio::test]
async fn a_file_replaced_by_a_link_out_keeps_what_it_declared() {
    let f = Fixture::new().await;
    f.write("build.yaml", &job_yaml("build", "alpine"));
    f.sync().await;
    assert!(f.job("build").await.is_some());
    let outside = tempfile::tempdir().unwrap();
    let other = outside.path().join("other.yaml");
    std::fs::write(&other, job_yaml("other", "alpine")).unwrap();
    f.remove("build.yaml");
    symlink(&other, f.folder.path().join("build.yaml")).unwrap();
    let report = f.sync().await;
    assert!(report.deleted.is_empty(), "{report:?}");
    assert!(
        f.job("build").await.is_some(),
        "the last good version stays"
    );
    assert!(f.job("other").await.is_none());
    assert_eq!(report.links_out.len(), 1);
}
