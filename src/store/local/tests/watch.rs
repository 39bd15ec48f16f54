//! Watch streams: order under concurrent writers, and resuming with watch_since.

use std::collections::HashSet;

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_are_watched_in_version_order() {
    let (_dir, store) = store().await;
    let mut rx = store.watch();
    let writers: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let created = store
                    .create(job("default", &format!("job-{i}")))
                    .await
                    .unwrap();
                store
                    .update_status(&created.key(), "", json!({"phase": "Running"}))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut versions = Vec::new();
    let mut names = HashSet::new();
    for _ in 0..100 {
        let event = next(&mut rx).await;
        names.insert(event.object.metadata.name.clone());
        versions.push(event_rv(&event));
    }
    assert_eq!(
        versions,
        (1..=100).collect::<Vec<u64>>(),
        "every write, in order, no gaps"
    );
    assert_eq!(names.len(), 50);
}

#[tokio::test]
async fn watch_since_replays_what_followed() {
    let (_dir, store) = store().await;
    store.create(job("default", "a")).await.unwrap();
    let (_, listed_at) = store.list(Kind::Job, None).await.unwrap();
    store.create(job("default", "b")).await.unwrap();
    store.create(job("default", "c")).await.unwrap();
    let (replay, mut rx) = store.watch_since(&listed_at).await.unwrap();
    let replayed: Vec<&str> = replay
        .iter()
        .map(|e| e.object.metadata.name.as_str())
        .collect();
    assert_eq!(replayed, ["b", "c"]);
    store.create(job("default", "d")).await.unwrap();
    let live = next(&mut rx).await;
    assert_eq!(
        (live.object.metadata.name.as_str(), event_rv(&live)),
        ("d", 4)
    );
    let (replay, _) = store.watch_since("4").await.unwrap();
    assert!(replay.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_since_during_writes_has_no_gap_and_no_duplicate() {
    let (_dir, store) = store().await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                store
                    .create(job("default", &format!("job-{i}")))
                    .await
                    .unwrap();
            }
        })
    };
    // Resume from a list taken while the writer runs.
    while store
        .current_resource_version()
        .await
        .unwrap()
        .parse::<u64>()
        .unwrap()
        < 50
        && !writer.is_finished()
    {
        tokio::task::yield_now().await;
    }
    let (listed, listed_at) = store.list(Kind::Job, None).await.unwrap();
    let (replay, mut rx) = store.watch_since(&listed_at).await.unwrap();
    let from: u64 = listed_at.parse().unwrap();
    assert_eq!(listed.len() as u64, from);
    let mut versions: Vec<u64> = replay.iter().map(event_rv).collect();
    while versions.last().copied().unwrap_or(from) < 200 {
        versions.push(event_rv(&next(&mut rx).await));
    }
    writer.await.unwrap();
    assert_eq!(versions, (from + 1..=200).collect::<Vec<u64>>());
}

#[tokio::test]
async fn watch_since_a_forgotten_version_is_gone() {
    let dir = TempDir::new().unwrap();
    let store = LocalStore::open_with_history(dir.path(), 3).await.unwrap();
    for i in 0..6 {
        store
            .create(job("default", &format!("job-{i}")))
            .await
            .unwrap();
    }
    let err = store.watch_since("2").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Gone { ref rv } if rv == "2"),
        "{err}"
    );
    assert!(err.to_string().contains("list again"));
    let (replay, _) = store.watch_since("3").await.unwrap();
    assert_eq!(replay.iter().map(event_rv).collect::<Vec<_>>(), [4, 5, 6]);
    assert!(
        matches!(store.watch_since("7").await, Err(StoreError::Gone { .. })),
        "a version never reached"
    );
    assert!(matches!(
        store.watch_since("abc").await,
        Err(StoreError::Gone { .. })
    ));
    let (replay, _) = store.watch_since("").await.unwrap();
    assert!(replay.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_writes_keep_each_outcome_and_contiguous_versions() {
    let (dir, store) = store().await;
    let mut rx = store.watch();
    // 40 writers, half of them racing for the same name: a group decides each write on
    // its own, so exactly one racer wins and the refusals do not disturb the rest.
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let name = if i % 2 == 0 {
                    "contested".to_string()
                } else {
                    format!("job-{i}")
                };
                store.create(job("default", &name)).await
            })
        })
        .collect();
    let (mut won, mut lost) = (0, 0);
    for writer in writers {
        match writer.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::AlreadyExists { .. }) => lost += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!((won, lost), (21, 19));
    let mut versions = Vec::new();
    for _ in 0..21 {
        versions.push(event_rv(&next(&mut rx).await));
    }
    assert_eq!(versions, (1..=21).collect::<Vec<u64>>());
    assert_eq!(store.current_resource_version().await.unwrap(), "21");
    // The revision a group reached is what a reopened store continues from.
    drop(store);
    let store = LocalStore::open(dir.path()).await.unwrap();
    let next_one = store.create(job("default", "after")).await.unwrap();
    assert_eq!(rv(&next_one), 22);
}
