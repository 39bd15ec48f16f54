use super::*;

fn entry(i: usize) -> Entry {
    Entry {
        time: Utc::now(),
        actor: format!("key:k{i}"),
        member: Some("alice".into()),
        verb: "create".into(),
        resource: "jobs".into(),
        namespace: "team-a".into(),
        name: format!("job-{i}"),
        remote: "127.0.0.1:5000".into(),
        code: 201,
        ..Default::default()
    }
}

/// A log of `n` entries, written through the writer, rotating every `rotate_at` bytes.
async fn written(n: usize, rotate_at: u64) -> (tempfile::TempDir, PathBuf) {
    let data = tempfile::tempdir().unwrap();
    let log = AuditLog::open_rotating(data.path(), rotate_at).unwrap();
    for i in 0..n {
        log.record(entry(i));
        // Several batches, so that a small `rotate_at` rotates (a file rotates between
        // batches, never inside one).
        if i % 5 == 4 {
            log.flush().await;
        }
    }
    log.flush().await;
    let dir = data.path().join(DIR);
    (data, dir)
}

/// The lines of all files, with the file each came from.
fn lines(dir: &Path) -> Vec<(PathBuf, String)> {
    log_files(dir)
        .unwrap()
        .into_iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            text.lines()
                .map(|l| (p.clone(), l.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Writes `lines` back, each to the file it came from.
fn rewrite(dir: &Path, lines: &[(PathBuf, String)]) {
    for path in log_files(dir).unwrap() {
        let text: String = lines
            .iter()
            .filter(|(p, _)| *p == path)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        std::fs::write(&path, text).unwrap();
    }
}

fn broken(dir: &Path) -> Broken {
    verify(dir)
        .unwrap()
        .expect_err("verify finds the tampering")
}

#[tokio::test]
async fn a_written_chain_verifies_across_rotated_files_and_reopening_continues_it() {
    let (data, dir) = written(50, 2_000).await;
    assert!(log_files(&dir).unwrap().len() > 2, "the files rotated");
    assert_eq!(verify(&dir).unwrap(), Ok(50));
    let all = read_all(&dir).unwrap();
    assert_eq!(all.len(), 50);
    assert_eq!(all[0].prev, GENESIS);
    assert_eq!(all[1].prev, all[0].hash);

    // A restart goes on from the last entry.
    let log = AuditLog::open_rotating(data.path(), 2_000).unwrap();
    log.record(entry(50));
    log.flush().await;
    assert_eq!(verify(&dir).unwrap(), Ok(51));
    assert_eq!(read_all(&dir).unwrap()[50].seq, 51);
}

#[tokio::test]
async fn one_edited_byte_is_found_and_named() {
    let (_data, dir) = written(20, ROTATE_AT).await;
    let mut all = lines(&dir);
    all[6].1 = all[6].1.replace("\"code\":201", "\"code\":200");
    rewrite(&dir, &all);
    let found = broken(&dir);
    assert_eq!(found.seq, Some(7), "{found}");
    assert!(found.why.contains("edited"), "{found}");
    assert!(
        found.to_string().contains("audit-000001.jsonl:7"),
        "{found}"
    );
}

#[tokio::test]
async fn a_line_edited_past_parsing_is_found() {
    let (_data, dir) = written(5, ROTATE_AT).await;
    let mut all = lines(&dir);
    all[2].1.replace_range(0..1, "[");
    rewrite(&dir, &all);
    let found = broken(&dir);
    assert_eq!(found.seq, Some(3), "{found}");
    assert!(found.why.contains("does not parse"), "{found}");
}

#[tokio::test]
async fn a_removed_entry_is_found_at_the_gap() {
    let (_data, dir) = written(20, ROTATE_AT).await;
    let mut all = lines(&dir);
    all.remove(9);
    rewrite(&dir, &all);
    let found = broken(&dir);
    assert_eq!(found.seq, Some(11), "{found}");
    assert!(found.why.contains("entries 10..10 were removed"), "{found}");
}

#[tokio::test]
async fn two_swapped_entries_are_found() {
    let (_data, dir) = written(20, ROTATE_AT).await;
    let mut all = lines(&dir);
    all.swap(4, 5);
    rewrite(&dir, &all);
    let found = broken(&dir);
    assert!(found.why.contains("reordered"), "{found}");
    assert!(
        found.to_string().contains("audit-000001.jsonl:5"),
        "{found}"
    );
}

#[tokio::test]
async fn removing_the_newest_entries_is_found_by_the_head_kept_apart() {
    let (_data, dir) = written(20, ROTATE_AT).await;
    let mut all = lines(&dir);
    all.truncate(17);
    rewrite(&dir, &all);
    let found = broken(&dir);
    assert_eq!(found.seq, Some(18), "{found}");
    assert!(found.why.contains("removed from the end"), "{found}");
}

#[tokio::test]
async fn a_chain_rewritten_whole_does_not_match_the_head() {
    let (_data, dir) = written(10, ROTATE_AT).await;
    // Someone edits entry 4 and recomputes every hash after it: a valid chain, but not
    // the one whose head was kept apart.
    let mut entries = read_all(&dir).unwrap();
    entries[3].code = 200;
    for i in 3..entries.len() {
        if i > 0 {
            entries[i].prev = entries[i - 1].hash.clone();
        }
        entries[i].hash = entries[i].digest();
    }
    let path = log_files(&dir).unwrap()[0].clone();
    let text: String = entries
        .iter()
        .map(|e| format!("{}\n", serde_json::to_string(e).unwrap()))
        .collect();
    std::fs::write(&path, text).unwrap();
    let found = broken(&dir);
    assert_eq!(found.seq, Some(10), "{found}");
    assert!(found.why.contains("chain head"), "{found}");
}

#[tokio::test]
async fn an_empty_log_verifies_with_no_entries() {
    let data = tempfile::tempdir().unwrap();
    assert_eq!(verify(&data.path().join(DIR)).unwrap(), Ok(0));
}

#[tokio::test]
async fn entries_recorded_close_together_share_one_append() {
    let data = tempfile::tempdir().unwrap();
    let log = AuditLog::open(data.path()).unwrap();
    // 100 entries over about 200 ms: one write each would be 100 appends and 200 fsyncs.
    for i in 0..100 {
        log.record(entry(i));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    log.flush().await;
    let appends = log.appends();
    assert!(
        appends <= 100 / 5,
        "{appends} appends for 100 entries recorded within about 200 ms"
    );
    assert_eq!(verify(log.dir()).unwrap(), Ok(100));
}

#[tokio::test]
async fn opening_an_open_log_again_gives_the_same_writer() {
    let data = tempfile::tempdir().unwrap();
    let api = AuditLog::open(data.path()).unwrap();
    let folder = AuditLog::open(data.path()).unwrap();
    for i in 0..20 {
        api.record(entry(i));
        folder.record(entry(100 + i));
    }
    folder.flush().await;
    api.flush().await;
    // Two writers would each have started their own chain at entry 1 in one file.
    assert_eq!(verify(api.dir()).unwrap(), Ok(40));
}

/// The head is rewritten in place at a fixed width, and names the newest entry.
#[tokio::test]
async fn the_head_is_rewritten_in_place_and_names_the_newest_entry() {
    let (_data, dir) = written(12, ROTATE_AT).await;
    let text = std::fs::read_to_string(dir.join(HEAD)).unwrap();
    assert_eq!(text.len(), HEAD_WIDTH, "{text:?}");
    let head: Head = serde_json::from_str(&text).unwrap();
    let newest = read_all(&dir).unwrap().pop().unwrap();
    assert_eq!((head.seq, head.hash), (12, newest.hash));
    // A head of an older version (written whole, shorter) is overwritten whole.
    std::fs::write(dir.join(HEAD), r#"{"seq":1,"hash":"x"}"#).unwrap();
    let log = AuditLog::open(dir.parent().unwrap()).unwrap();
    log.record(entry(12));
    log.flush().await;
    let head: Head =
        serde_json::from_str(&std::fs::read_to_string(dir.join(HEAD)).unwrap()).unwrap();
    assert_eq!(head.seq, 13);
}
