//! Folder tests: a temporary folder and a real SQLite store in a temporary data dir.

mod cluster;
mod links;
mod tombstones;

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::resources::keys;
use crate::store::{Event, EventQuery, LocalStore};

/// A folder, a store, and the source between them.
struct Fixture {
    folder: tempfile::TempDir,
    _data: tempfile::TempDir,
    store: LocalStore,
}

impl Fixture {
    async fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let store = LocalStore::open(data.path()).await.unwrap();
        Fixture {
            folder: tempfile::tempdir().unwrap(),
            _data: data,
            store,
        }
    }

    fn source(&self) -> FolderSource {
        FolderSource::new(
            self.folder.path().to_path_buf(),
            Arc::new(self.store.clone()),
        )
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.folder.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.folder.path().join(rel)).unwrap();
    }

    async fn sync(&self) -> SyncReport {
        self.source().sync_all().await.unwrap()
    }

    async fn job(&self, name: &str) -> Option<Object> {
        self.store
            .get(&ObjectKey::new(Kind::Job, "default", name))
            .await
            .unwrap()
    }

    async fn file_events(&self, rel: &str) -> Vec<Event> {
        self.store
            .list_events(EventQuery::newest(50).kind("File").name(rel))
            .await
            .unwrap()
    }
}

fn job_yaml(name: &str, image: &str) -> String {
    format!(
        "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n  \
         steps:\n    - name: build\n      run: make\n"
    )
}

fn job_key(name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Job, "default", name)
}

#[tokio::test]
async fn applies_every_document_with_its_source() {
    let f = Fixture::new().await;
    f.write(
        "jobs/build.yaml",
        &format!(
            "{}---\n{}",
            job_yaml("build", "alpine"),
            job_yaml("test", "alpine")
        ),
    );
    let report = f.sync().await;
    assert_eq!(report.created, [job_key("build"), job_key("test")]);
    assert_eq!(report.files, 1);
    let job = f.job("build").await.unwrap();
    assert_eq!(
        job.metadata.annotations[keys::SOURCE],
        "file:jobs/build.yaml"
    );
    assert_eq!(job.metadata.generation, 1);
    let events = f
        .store
        .list_events(EventQuery::newest(10).kind("Job").name("build"))
        .await
        .unwrap();
    assert_eq!(events[0].reason, "Applied");
}

#[tokio::test]
async fn an_edit_bumps_the_generation() {
    let f = Fixture::new().await;
    f.write("build.yaml", &job_yaml("build", "alpine"));
    f.sync().await;
    f.write("build.yaml", &job_yaml("build", "busybox"));
    let report = f.sync().await;
    assert_eq!(report.configured, [job_key("build")]);
    let job = f.job("build").await.unwrap();
    assert_eq!(job.metadata.generation, 2);
    assert_eq!(job.spec["image"], "busybox");
}

#[tokio::test]
async fn a_broken_edit_keeps_the_last_good_version_and_records_an_event() {
    let f = Fixture::new().await;
    f.write(
        "build.yaml",
        &format!(
            "{}---\n{}",
            job_yaml("build", "alpine"),
            job_yaml("test", "alpine")
        ),
    );
    f.sync().await;
    // The second document gets a typo; the first one changes and still applies.
    let broken = job_yaml("test", "alpine").replace("run: make", "rnu: make");
    f.write(
        "build.yaml",
        &format!("{}---\n{broken}", job_yaml("build", "busybox")),
    );
    let report = f.sync().await;
    assert_eq!(report.configured, [job_key("build")]);
    assert_eq!(report.invalid.len(), 1);
    assert_eq!(report.deleted, []);
    let test = f.job("test").await.expect("a typo must not delete the job");
    assert_eq!(test.metadata.generation, 1);
    let events = f.file_events("build.yaml").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].type_, EventType::Warning);
    assert_eq!(events[0].reason, "InvalidDocument");
    assert!(
        events[0]
            .message
            .starts_with("build.yaml:19:7: document 2 (Job default/test)"),
        "{}",
        events[0].message
    );
    assert!(
        events[0].message.contains("did you mean \"run\""),
        "{}",
        events[0].message
    );

    // Removing the broken document from a file that now parses cleanly prunes its object.
    f.write("build.yaml", &job_yaml("build", "busybox"));
    let report = f.sync().await;
    assert_eq!(report.deleted, [job_key("test")]);
    assert!(f.job("test").await.is_none());
}

#[tokio::test]
async fn a_deleted_file_prunes_what_it_owned() {
    let f = Fixture::new().await;
    f.write("a.yaml", &job_yaml("one", "alpine"));
    f.write("b.yaml", &job_yaml("two", "alpine"));
    f.sync().await;
    f.remove("a.yaml");
    let report = f.sync().await;
    assert_eq!(report.deleted, [job_key("one")]);
    assert!(f.job("one").await.is_none());
    assert!(f.job("two").await.is_some());
}

#[tokio::test]
async fn without_prune_a_deleted_file_leaves_its_objects() {
    let f = Fixture::new().await;
    f.write("a.yaml", &job_yaml("one", "alpine"));
    f.sync().await;
    f.remove("a.yaml");
    let report = f.source().with_prune(false).sync_all().await.unwrap();
    assert_eq!(report.deleted, []);
    assert!(f.job("one").await.is_some());
}

#[tokio::test]
async fn a_namespace_places_the_objects_and_limits_pruning_to_it() {
    let f = Fixture::new().await;
    // Another folder's object in another namespace, from a file this folder lacks.
    let mut theirs = Object::new(Kind::Job, "team-b", "theirs", serde_json::json!({}));
    theirs
        .metadata
        .annotations
        .insert(keys::SOURCE.into(), "file:gone.yaml".into());
    f.store.create(theirs).await.unwrap();
    f.write("a.yaml", &job_yaml("one", "alpine"));
    let source = || f.source().with_namespace(Some("team-a".into()));
    let report = source().sync_all().await.unwrap();
    assert_eq!(report.created, [ObjectKey::new(Kind::Job, "team-a", "one")]);
    assert_eq!(report.deleted, []);
    let key = ObjectKey::new(Kind::Job, "team-b", "theirs");
    assert!(f.store.get(&key).await.unwrap().is_some());
    // Its own objects are still pruned.
    f.remove("a.yaml");
    let report = source().sync_all().await.unwrap();
    assert_eq!(report.deleted, [ObjectKey::new(Kind::Job, "team-a", "one")]);
}

#[tokio::test]
async fn dot_files_and_other_files_are_ignored() {
    let f = Fixture::new().await;
    f.write(".build.yaml.swp", &job_yaml("swap", "alpine"));
    f.write(".git/config.yaml", &job_yaml("git", "alpine"));
    f.write("notes.txt", &job_yaml("notes", "alpine"));
    f.write("build.yaml~", &job_yaml("backup", "alpine"));
    f.write("nested/ok.yml", &job_yaml("ok", "alpine"));
    let report = f.sync().await;
    assert_eq!(report.created, [job_key("ok")]);
    assert_eq!(report.files, 1);
}

#[tokio::test]
async fn a_name_clash_keeps_the_first_owner_and_warns() {
    let f = Fixture::new().await;
    f.write("a.yaml", &job_yaml("build", "alpine"));
    f.write("b.yaml", &job_yaml("build", "busybox"));
    let report = f.sync().await;
    assert_eq!(report.created, [job_key("build")]);
    assert_eq!(report.clashes.len(), 1);
    assert_eq!(f.job("build").await.unwrap().spec["image"], "alpine");
    let events = f.file_events("b.yaml").await;
    assert_eq!(events[0].reason, "NameClash");
    assert!(
        events[0].message.contains("a.yaml") && events[0].message.contains("b.yaml"),
        "{}",
        events[0].message
    );
    assert!(events[0].message.contains("Fix:"), "{}", events[0].message);

    // An object made another way is not taken over.
    let mut api = Object::new(
        Kind::Job,
        "default",
        "manual",
        serde_json::json!({"image": "x", "steps": []}),
    );
    api.metadata
        .annotations
        .insert(keys::SOURCE.into(), "api".into());
    f.store.apply(api).await.unwrap();
    f.write("c.yaml", &job_yaml("manual", "alpine"));
    let report = f.sync().await;
    assert!(
        report.clashes.iter().any(|c| c.contains("source: api")),
        "{:?}",
        report.clashes
    );
    assert_eq!(f.job("manual").await.unwrap().spec["image"], "x");
}

#[tokio::test]
async fn a_restart_converges_with_nothing_changed() {
    let f = Fixture::new().await;
    f.write("a.yaml", &job_yaml("one", "alpine"));
    f.write("more/b.yaml", &job_yaml("two", "alpine"));
    f.sync().await;
    let before = f.job("one").await.unwrap();
    let report = f.source().sync_all().await.unwrap();
    assert_eq!(report.created, []);
    assert_eq!(report.configured, []);
    assert_eq!(report.deleted, []);
    assert_eq!(report.unchanged, 2);
    assert_eq!(f.job("one").await.unwrap(), before);
}

#[tokio::test]
async fn an_unreadable_folder_is_an_error_and_prunes_nothing() {
    let f = Fixture::new().await;
    f.write("a.yaml", &job_yaml("one", "alpine"));
    f.sync().await;
    let missing = FolderSource::new(f.folder.path().join("nope"), Arc::new(f.store.clone()));
    assert!(matches!(
        missing.sync_all().await,
        Err(SourceError::ReadDir { .. })
    ));
    assert!(f.job("one").await.is_some());
}

/// Polls until `check` holds, for up to five seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn run_follows_changes_until_shut_down() {
    let f = Fixture::new().await;
    f.write("a.yaml", &job_yaml("one", "alpine"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(f.source().run(shutdown.clone()));
    eventually("the first sync applies a.yaml", || async {
        f.job("one").await.is_some()
    })
    .await;

    f.write("sub/b.yaml", &job_yaml("two", "alpine"));
    eventually("a new file in a new directory is applied", || async {
        f.job("two").await.is_some()
    })
    .await;

    f.write("a.yaml", &job_yaml("one", "busybox"));
    eventually("an edit is applied", || async {
        f.job("one")
            .await
            .is_some_and(|j| j.spec["image"] == "busybox")
    })
    .await;

    f.write("a.yaml", "kind: [\n");
    eventually("a broken edit is reported", || async {
        !f.file_events("a.yaml").await.is_empty()
    })
    .await;
    assert!(f.job("one").await.is_some());

    f.remove("a.yaml");
    eventually("a deleted file is pruned", || async {
        f.job("one").await.is_none()
    })
    .await;

    std::fs::remove_dir_all(f.folder.path().join("sub")).unwrap();
    eventually("a deleted directory is pruned", || async {
        f.job("two").await.is_none()
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn opening_a_file_is_not_a_change() {
    use notify::event::{AccessKind, AccessMode, CreateKind};
    let dir = Path::new("/srv/f");
    let open = notify::Event::new(EventKind::Access(AccessKind::Open(AccessMode::Any)))
        .add_path(dir.join("a.yaml"));
    assert_eq!(
        changes(dir, &[], vec![Ok(open)]),
        Changes::Files(BTreeSet::new())
    );
    let written = notify::Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
        .add_path(dir.join("a.yaml"));
    let created =
        notify::Event::new(EventKind::Create(CreateKind::File)).add_path(dir.join(".a.yaml.swp"));
    assert_eq!(
        changes(dir, &[], vec![Ok(written), Ok(created)]),
        Changes::Files(BTreeSet::from(["a.yaml".to_string()]))
    );
    let removed_dir = notify::Event::new(EventKind::Remove(notify::event::RemoveKind::Folder))
        .add_path(dir.join("sub"));
    let known = ["sub/x.yaml".to_string(), "subway.yaml".to_string()];
    assert_eq!(
        changes(dir, &known, vec![Ok(removed_dir)]),
        Changes::Files(BTreeSet::from(["sub/x.yaml".to_string()]))
    );
}

/// `orcaops sync`'s door: a document an Enforce policy refuses is not applied, what the
/// file declared before stays, the file gets a `PolicyRefused` event, and the policy's
/// report names the file as the door.
#[tokio::test]
async fn a_policy_refuses_a_document_and_the_last_good_version_stays() {
    let f = Fixture::new().await;
    let spec = serde_json::json!({"images": {"deny": ["*miner*"]}});
    f.store
        .create(Object::new(Kind::Policy, "", "no-miners", spec))
        .await
        .unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(f.store.clone());
    let policies = Policies::polling(store.clone(), Duration::from_secs(10));
    let source = || f.source().with_policies(policies.clone(), Door::Sync);

    f.write("build.yaml", &job_yaml("build", "busybox:1"));
    let report = source().sync_all().await.unwrap();
    assert_eq!(report.created, [job_key("build")]);

    f.write("build.yaml", &job_yaml("build", "evil/miner:1"));
    f.write("new.yaml", &job_yaml("fresh", "evil/miner:2"));
    let report = source().sync_all().await.unwrap();
    assert_eq!(report.failed.len(), 2, "{:?}", report.failed);
    assert!(report.failed[0].contains("build.yaml") && report.failed[0].contains("images.deny"));
    assert!(report.created.is_empty() && report.configured.is_empty());
    let kept = f.job("build").await.unwrap();
    assert_eq!(
        kept.spec["image"], "busybox:1",
        "the last good version stays"
    );
    assert!(f.job("fresh").await.is_none());
    let events = f.file_events("new.yaml").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason == "PolicyRefused" && e.message.contains("new.yaml")),
        "{events:?}"
    );

    policies.flush().await;
    let policy = f
        .store
        .get(&ObjectKey::new(Kind::Policy, "", "no-miners"))
        .await
        .unwrap()
        .unwrap();
    let doors: Vec<&str> = policy.status["violations"]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["door"].as_str().unwrap())
        .collect();
    assert!(doors.contains(&"sync:build.yaml"), "{doors:?}");
    assert_eq!(policy.status["violations"]["refused"], 2);
}

#[tokio::test]
async fn every_write_the_folder_makes_is_in_the_audit_log_as_its_file() {
    let f = Fixture::new().await;
    let data = tempfile::tempdir().unwrap();
    let log = AuditLog::open(data.path()).unwrap();
    let source = || f.source().with_audit(log.clone());
    f.write("jobs/a.yaml", &job_yaml("a", "busybox:1"));
    source().sync_all().await.unwrap();
    f.write("jobs/a.yaml", &job_yaml("a", "busybox:2"));
    source().sync_all().await.unwrap();
    // Unchanged: nothing is written, so nothing is recorded.
    source().sync_all().await.unwrap();
    f.remove("jobs/a.yaml");
    source().sync_all().await.unwrap();
    log.flush().await;

    let entries = crate::audit::read_all(log.dir()).unwrap();
    let seen: Vec<(&str, &str, &str, u16)> = entries
        .iter()
        .map(|e| (e.actor.as_str(), e.verb.as_str(), e.name.as_str(), e.code))
        .collect();
    assert_eq!(
        seen,
        [
            ("folder:jobs/a.yaml", "create", "a", 201),
            ("folder:jobs/a.yaml", "update", "a", 200),
            ("folder:jobs/a.yaml", "delete", "a", 200),
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e.resource == "jobs" && e.namespace == "default")
    );
    assert_eq!(crate::audit::verify(log.dir()).unwrap(), Ok(3));
}

/// A batch ends once every file it touched is finished, and not before: a file still
/// being written keeps it open (to the debounce), a closed or renamed one ends it.
#[tokio::test(start_paused = true)]
async fn a_batch_ends_when_its_files_are_complete_and_waits_for_partial_writes() {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RenameMode};
    let created = EventKind::Create(CreateKind::File);
    let written = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
    let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let send = |kind: EventKind, paths: &[&str]| {
        tx.send(Ok(notify::Event {
            kind,
            paths: paths.iter().map(PathBuf::from).collect(),
            attrs: Default::default(),
        }))
        .unwrap()
    };

    // A whole file: created, written, closed. Done without waiting for the debounce.
    send(created, &["/f/a.yaml"]);
    send(written, &["/f/a.yaml"]);
    send(closed, &["/f/a.yaml"]);
    let start = tokio::time::Instant::now();
    assert_eq!(next_batch(&mut rx).await.unwrap().len(), 3);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "a complete file waits for nothing"
    );

    // Two files, one closed, the other still being written: the batch waits for the
    // debounce (the paused clock advances only by that sleep).
    send(written, &["/f/b.yaml"]);
    send(written, &["/f/c.yaml"]);
    send(closed, &["/f/b.yaml"]);
    let start = tokio::time::Instant::now();
    assert_eq!(next_batch(&mut rx).await.unwrap().len(), 3);
    assert_eq!(
        start.elapsed(),
        DEBOUNCE,
        "a partial write holds the batch to the debounce"
    );

    // An editor's save: the temporary file renamed over the real one ends it at once.
    send(created, &["/f/.a.yaml.swp"]);
    send(renamed, &["/f/.a.yaml.swp", "/f/a.yaml"]);
    let start = tokio::time::Instant::now();
    assert_eq!(next_batch(&mut rx).await.unwrap().len(), 2);
    assert_eq!(start.elapsed(), Duration::ZERO);
}
