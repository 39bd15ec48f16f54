//! A Job deleted by its TTL is not created again from an unchanged file at a restart;
//! a changed file is a new intent.

use super::*;

/// What the Job controller does when `ttlSecondsAfterFinished` is due: delete, and
/// keep a tombstone (controller::reconcile, Fate::Delete).
async fn ttl_delete(f: &Fixture, name: &str) {
    let gone = f.store.delete(&job_key(name)).await.unwrap();
    f.store
        .record_tombstone(&gone, "ttlSecondsAfterFinished")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_restart_does_not_recreate_a_job_its_ttl_deleted() {
    let f = Fixture::new().await;
    f.write("build.yaml", &job_yaml("build", "alpine"));
    assert_eq!(f.sync().await.created, [job_key("build")]);
    ttl_delete(&f, "build").await;
    assert!(f.job("build").await.is_none());

    // A restart: a new source over the same store reads the unchanged file.
    let report = f.sync().await;
    assert!(report.created.is_empty(), "{report:?}");
    assert!(
        f.job("build").await.is_none(),
        "re-created from an unchanged file"
    );
    let events = f.file_events("build.yaml").await;
    let skipped: Vec<_> = events
        .iter()
        .filter(|e| e.reason == "NotRecreated")
        .collect();
    assert_eq!(skipped.len(), 1, "{events:?}");
    assert!(
        skipped[0].message.contains("ttlSecondsAfterFinished"),
        "{events:?}"
    );
    assert!(skipped[0].message.contains("change its spec"), "{events:?}");
    // Still so at the next restart: the tombstone stays while the file is unchanged.
    assert!(f.sync().await.created.is_empty());
    assert_eq!(f.store.tombstones().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_changed_file_is_a_new_intent_and_is_applied() {
    let f = Fixture::new().await;
    f.write("build.yaml", &job_yaml("build", "alpine"));
    f.sync().await;
    ttl_delete(&f, "build").await;
    f.write("build.yaml", &job_yaml("build", "alpine:3.20"));
    let report = f.sync().await;
    assert_eq!(report.created, [job_key("build")]);
    assert!(f.store.tombstones().await.unwrap().is_empty());
    // And once it exists again, later syncs treat it as any other object.
    assert_eq!(f.sync().await.unchanged, 1);
}

#[tokio::test]
async fn objects_not_from_a_file_get_no_tombstone() {
    let f = Fixture::new().await;
    let obj = crate::resources::parse::parse_bytes("x.yaml", job_yaml("api", "alpine").as_bytes())
        .remove(0)
        .unwrap();
    f.store.create(obj).await.unwrap();
    ttl_delete(&f, "api").await;
    assert!(f.store.tombstones().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_tombstone_survives_reopening_the_store() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("b.yaml"), job_yaml("b", "alpine")).unwrap();
    {
        let store = LocalStore::open(data.path()).await.unwrap();
        FolderSource::new(folder.path().into(), Arc::new(store.clone()))
            .sync_all()
            .await
            .unwrap();
        let gone = store.delete(&job_key("b")).await.unwrap();
        store
            .record_tombstone(&gone, "ttlSecondsAfterFinished")
            .await
            .unwrap();
    }
    let store = LocalStore::open(data.path()).await.unwrap();
    let report = FolderSource::new(folder.path().into(), Arc::new(store.clone()))
        .sync_all()
        .await
        .unwrap();
    assert!(report.created.is_empty(), "{report:?}");
    assert!(store.get(&job_key("b")).await.unwrap().is_none());
}
