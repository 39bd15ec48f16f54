//! The store on a disk that fills up or turns read-only while it runs: a small tmpfs
//! mounted for the test (root is needed to mount it; CI runs as root).

use std::path::Path;
use std::process::Command;

use super::*;

/// A tmpfs of `size` mounted on a new temporary directory, unmounted when dropped.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = TempDir::new().expect("a temporary directory");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "this test mounts a small tmpfs to fill it up: run it as root (CI and scripts/test.sh do)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount {mode}");
    }

    /// Fills the disk with one file, up to its last byte.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).expect("the filler file");
        let block = vec![0u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Small writes take the last partial block.
        while file.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

/// Writes objects until one is refused; returns the acknowledged ones and the error.
async fn create_until_refused(store: &LocalStore, prefix: &str) -> (Vec<Object>, StoreError) {
    let mut acknowledged = Vec::new();
    for i in 0..100_000 {
        let mut obj = job("default", &format!("{prefix}-{i}"));
        // A large spec fills the log quickly.
        obj.spec["padding"] = json!("x".repeat(4096));
        match store.create(obj).await {
            Ok(created) => acknowledged.push(created),
            Err(e) => return (acknowledged, e),
        }
    }
    panic!("the disk never filled up");
}

async fn assert_all_present(store: &LocalStore, objects: &[Object]) {
    for obj in objects {
        let key = obj.key();
        let stored = store.get(&key).await.unwrap();
        assert_eq!(
            stored.map(|o| o.metadata.uid),
            Some(obj.metadata.uid.clone()),
            "acknowledged {key} is lost"
        );
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_then_the_store_recovers_without_a_restart() {
    let disk = SmallDisk::mount("6m");
    let store = LocalStore::open(disk.path()).await.unwrap();
    let (mut acknowledged, _) = {
        let filler = disk.fill();
        // Full before any write of the store's failed (the logs beside it fail first).
        let full = store.writable().await.unwrap_err();
        assert!(full.to_string().contains("bytes free"), "{full}");
        let refused = create_until_refused(&store, "full").await;
        // Every later write fails the same way, runs and events too, and says why.
        assert!(refused.1.is_storage_failure(), "{}", refused.1);
        let again = store.create(job("default", "again")).await.unwrap_err();
        assert!(again.is_storage_failure(), "{again}");
        let event = store.record_event(new_event("again", "R", "m")).await;
        assert!(event.is_err(), "an event was written to a full disk");
        let unwritable = store.writable().await.unwrap_err();
        assert!(
            matches!(unwritable, StoreError::Unwritable { .. }),
            "{unwritable}"
        );
        assert!(unwritable.to_string().contains("full"), "{unwritable}");
        // Reads still work meanwhile.
        assert_all_present(&store, &refused.0).await;
        std::fs::remove_file(filler).unwrap();
        refused
    };
    // Space is back: the store writes again, with no restart.
    store.writable().await.expect("writable once space is back");
    let created = store.create(job("default", "after")).await.unwrap();
    acknowledged.push(created);
    store
        .record_event(new_event("after", "Recovered", "m"))
        .await
        .unwrap();
    assert_all_present(&store, &acknowledged).await;
    // And everything acknowledged is on disk, not only in memory.
    drop(store);
    let reopened = LocalStore::open(disk.path()).await.unwrap();
    assert_all_present(&reopened, &acknowledged).await;
    assert!(
        reopened
            .get(&ObjectKey::new(Kind::Job, "default", "again"))
            .await
            .unwrap()
            .is_none(),
        "a refused write was stored"
    );
}

#[tokio::test]
async fn a_read_only_data_dir_is_refused_at_start_with_the_reason() {
    let disk = SmallDisk::mount("16m");
    let store = LocalStore::open(disk.path()).await.unwrap();
    store.create(job("default", "before")).await.unwrap();
    drop(store);
    // Files open for writing keep a remount read-only from happening; closed, it may.
    tokio::time::sleep(Duration::from_millis(200)).await;
    disk.remount("ro");
    let refused = LocalStore::open(disk.path()).await.err().expect("refused");
    disk.remount("rw");
    assert!(refused.is_storage_failure(), "{refused}");
    assert!(
        refused
            .to_string()
            .contains(&disk.path().display().to_string()),
        "{refused}"
    );
}
