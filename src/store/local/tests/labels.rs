//! The label index: kept in step with every write, filled from the objects stored before
//! it existed, read by selected lists (checked against filtering every object, on random
//! objects, labels, writes and selectors), and read through its index.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::resources::selector::{LabelRequirement, LabelSelector};
use crate::store::PageQuery;

fn labelled(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Object {
    let mut obj = job(namespace, name);
    obj.metadata.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    obj
}

/// Every row of the index, as (kind, namespace, name, key, value).
async fn index_rows(store: &LocalStore) -> Vec<(String, String, String, String, String)> {
    sqlx::query_as(
        "SELECT kind, namespace, name, key, value FROM object_labels \
         ORDER BY kind, namespace, name, key",
    )
    .fetch_all(&store.inner.readers)
    .await
    .unwrap()
}

/// What the index should hold: the labels of every stored object of `kinds`.
async fn expected_rows(
    store: &LocalStore,
    kinds: &[Kind],
) -> Vec<(String, String, String, String, String)> {
    let mut rows = Vec::new();
    for kind in kinds {
        let (objects, _) = store.list(*kind, None).await.unwrap();
        for o in objects {
            for (k, v) in &o.metadata.labels {
                rows.push((
                    kind.as_str().to_string(),
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone(),
                    k.clone(),
                    v.clone(),
                ));
            }
        }
    }
    rows.sort();
    rows
}

fn names(items: &[Object]) -> Vec<String> {
    items
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or(""),
                o.metadata.name
            )
        })
        .collect()
}

async fn select(store: &LocalStore, selector: &str, limit: Option<usize>) -> ListPage {
    let selector = LabelSelector::parse(selector).unwrap();
    store
        .list_page(PageQuery {
            limit,
            ..PageQuery::selected(Kind::Job, None, &selector)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn the_index_follows_creates_label_changes_and_deletes() {
    let (_dir, store) = store().await;
    let a = store
        .create(labelled("default", "a", &[("batch", "3"), ("app", "web")]))
        .await
        .unwrap();
    store
        .create(labelled("default", "b", &[("batch", "4")]))
        .await
        .unwrap();
    store.create(job("default", "plain")).await.unwrap();
    assert_eq!(
        index_rows(&store).await,
        expected_rows(&store, &[Kind::Job]).await
    );
    assert_eq!(index_rows(&store).await.len(), 3);

    // A status write keeps the labels (and writes no index row).
    store
        .update_status(&a.key(), "", json!({"phase": "Running"}))
        .await
        .unwrap();
    assert_eq!(
        names(&select(&store, "batch=3", None).await.items),
        ["default/a"]
    );

    // Labels changed by a replace and by an apply.
    let mut moved = store.get(&a.key()).await.unwrap().unwrap();
    moved.metadata.labels = BTreeMap::from([("batch".into(), "4".into())]);
    store.replace(moved).await.unwrap();
    assert!(select(&store, "batch=3", None).await.items.is_empty());
    assert!(select(&store, "app", None).await.items.is_empty());
    assert_eq!(
        names(&select(&store, "batch=4", None).await.items),
        ["default/a", "default/b"]
    );
    store
        .apply(labelled("default", "plain", &[("batch", "3")]))
        .await
        .unwrap();
    assert_eq!(
        names(&select(&store, "batch=3", None).await.items),
        ["default/plain"]
    );
    assert_eq!(
        index_rows(&store).await,
        expected_rows(&store, &[Kind::Job]).await
    );

    // A delete drops the rows; the same name made again starts with its new labels.
    store.delete(&a.key()).await.unwrap();
    assert_eq!(
        names(&select(&store, "batch=4", None).await.items),
        ["default/b"]
    );
    store
        .create(labelled("default", "a", &[("app", "api")]))
        .await
        .unwrap();
    assert!(select(&store, "batch=4,app", None).await.items.is_empty());
    assert_eq!(
        names(&select(&store, "app=api", None).await.items),
        ["default/a"]
    );
    assert_eq!(
        index_rows(&store).await,
        expected_rows(&store, &[Kind::Job]).await
    );
}

#[tokio::test]
async fn selected_pages_continue_and_count_what_follows() {
    let (_dir, store) = store().await;
    for (namespace, name, batch) in [
        ("b", "1", "3"),
        ("a", "2", "3"),
        ("a", "1", "3"),
        ("c", "1", "4"),
        ("b", "2", "3"),
        ("c", "2", "3"),
    ] {
        store
            .create(labelled(namespace, name, &[("batch", batch)]))
            .await
            .unwrap();
    }
    // Another kind with the same label is not a Job.
    let mut policy = Object::new(Kind::Policy, "", "p", json!({}));
    policy.metadata.labels = BTreeMap::from([("batch".into(), "3".into())]);
    store.create(policy).await.unwrap();

    let selector = LabelSelector::parse("batch=3").unwrap();
    let page = |after, limit| PageQuery {
        after,
        limit,
        ..PageQuery::selected(Kind::Job, None, &selector)
    };
    let first = store.list_page(page(None, Some(2))).await.unwrap();
    assert_eq!(names(&first.items), ["a/1", "a/2"]);
    assert_eq!(first.remaining, 3);
    assert_eq!(first.resource_version, "7");
    let second = store
        .list_page(page(Some(("a", "2")), Some(2)))
        .await
        .unwrap();
    assert_eq!(names(&second.items), ["b/1", "b/2"]);
    assert_eq!(second.remaining, 1);
    let last = store
        .list_page(page(Some(("b", "2")), Some(2)))
        .await
        .unwrap();
    assert_eq!(names(&last.items), ["c/2"]);
    assert_eq!(last.remaining, 0);

    let in_c = store
        .list_page(PageQuery::selected(Kind::Job, Some("c"), &selector))
        .await
        .unwrap();
    assert_eq!(names(&in_c.items), ["c/2"]);
    // A key before the namespace starts it whole; one after it leaves nothing.
    for (after, expected) in [(("b", "9"), vec!["c/2"]), (("d", "0"), vec![])] {
        let page = store
            .list_page(PageQuery {
                after: Some(after),
                ..PageQuery::selected(Kind::Job, Some("c"), &selector)
            })
            .await
            .unwrap();
        assert_eq!(names(&page.items), expected, "after {after:?}");
    }
    let policies = store
        .list_page(PageQuery::selected(Kind::Policy, None, &selector))
        .await
        .unwrap();
    assert_eq!(names(&policies.items), ["/p"]);
    // Negative terms alone filter every Job; with a positive one they filter its rows.
    assert_eq!(
        names(&select(&store, "batch!=3", None).await.items),
        ["c/1"]
    );
    assert_eq!(
        names(
            &select(&store, "batch notin (4),!missing", Some(1))
                .await
                .items
        ),
        ["a/1"]
    );
    assert_eq!(
        select(&store, "batch notin (4),!missing", Some(1))
            .await
            .remaining,
        4
    );
    assert_eq!(
        names(&select(&store, "batch in (4, 5),batch", None).await.items),
        ["c/1"]
    );
}

#[tokio::test]
async fn equality_reads_the_index_in_list_order() {
    let (_dir, store) = store().await;
    for i in 0..50 {
        let batch = (i % 5).to_string();
        store
            .create(labelled(
                "default",
                &format!("j{i:03}"),
                &[("batch", &batch)],
            ))
            .await
            .unwrap();
    }
    let plan_of = |text: &str, namespace: Option<&'static str>| {
        let store = store.clone();
        let text = text.to_string();
        async move {
            let selector = LabelSelector::parse(&text).unwrap();
            let query = crate::store::local::labels::Selected {
                kind: Kind::Job,
                namespace,
                after: ("default", "j010"),
                selector: &selector,
            };
            let mut conn = store.inner.readers.acquire().await.unwrap();
            crate::store::local::labels::explain(&mut conn, &query)
                .await
                .unwrap()
        }
    };
    // Without statistics (a new store) and with them, in all namespaces and in one.
    for analyzed in [false, true] {
        if analyzed {
            sqlx::query("ANALYZE")
                .execute(&store.inner.readers)
                .await
                .unwrap();
        }
        for namespace in [None, Some("default")] {
            let context = format!("analyzed {analyzed}, namespace {namespace:?}");
            let plan = plan_of("batch=3,app!=x", namespace).await;
            assert!(
                plan.iter().any(|step| step.contains(
                    "USING COVERING INDEX object_labels_by_label (kind=? AND key=? AND value=?"
                )),
                "{context}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{context}: the index gives list order without a sort: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN")),
                "{context}: no term reads every row: {plan:?}"
            );
            let plan = plan_of("batch in (1,2)", namespace).await;
            assert!(
                plan.iter()
                    .any(|step| step
                        .contains("object_labels_by_label (kind=? AND key=? AND value=?")),
                "{context}: {plan:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_migration_indexes_objects_stored_before_it() {
    let dir = TempDir::new().unwrap();
    {
        let store = LocalStore::open(dir.path()).await.unwrap();
        store
            .create(labelled("default", "a", &[("batch", "3"), ("app", "web")]))
            .await
            .unwrap();
        store.create(job("default", "plain")).await.unwrap();
        // Back to the schema before migration 0005, with the objects still stored.
        let mut writer = store.inner.writer.lock().await;
        sqlx::query("DROP TABLE object_labels")
            .execute(&mut *writer)
            .await
            .unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 5")
            .execute(&mut *writer)
            .await
            .unwrap();
    }
    let store = LocalStore::open(dir.path()).await.unwrap();
    assert_eq!(
        index_rows(&store).await,
        [
            (
                "Job".into(),
                "default".into(),
                "a".into(),
                "app".into(),
                "web".into()
            ),
            (
                "Job".into(),
                "default".into(),
                "a".into(),
                "batch".into(),
                "3".into()
            ),
        ]
    );
    assert_eq!(
        names(&select(&store, "batch=3", None).await.items),
        ["default/a"]
    );
}

/// A small deterministic generator (xorshift), so that a failure names its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: [&str; 4] = ["a", "b", "c", "example.com/d"];
const VALUES: [&str; 3] = ["1", "2", "3"];
const NAMESPACES: [&str; 3] = ["n1", "n2", "n3"];

fn random_labels(rng: &mut Rng) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for key in KEYS {
        if rng.below(2) == 0 {
            labels.insert(key.to_string(), rng.pick(&VALUES).to_string());
        }
    }
    labels
}

fn random_values(rng: &mut Rng) -> Vec<String> {
    let n = 1 + rng.below(2);
    (0..n).map(|_| rng.pick(&VALUES).to_string()).collect()
}

fn random_selector(rng: &mut Rng) -> LabelSelector {
    let terms = 1 + rng.below(3);
    LabelSelector::of(
        (0..terms)
            .map(|_| {
                let key = rng.pick(&KEYS).to_string();
                match rng.below(6) {
                    0 => LabelRequirement::Equals(key, rng.pick(&VALUES).into()),
                    1 => LabelRequirement::NotEquals(key, rng.pick(&VALUES).into()),
                    2 => LabelRequirement::In(key, random_values(rng)),
                    3 => LabelRequirement::NotIn(key, random_values(rng)),
                    4 => LabelRequirement::Exists(key),
                    _ => LabelRequirement::DoesNotExist(key),
                }
            })
            .collect(),
    )
}

/// One random write: a create, a change of labels, a status write or a delete.
async fn random_write(store: &LocalStore, rng: &mut Rng) {
    let (kind, namespace) = if rng.below(5) == 0 {
        (Kind::Policy, "")
    } else {
        (Kind::Job, rng.pick(&NAMESPACES))
    };
    let name = format!("o{}", rng.below(12));
    let key = ObjectKey::new(kind, namespace, &name);
    let stored = store.get(&key).await.unwrap();
    match (stored, rng.below(4)) {
        (None, _) => {
            let mut obj = Object::new(kind, namespace, &name, json!({}));
            obj.metadata.labels = random_labels(rng);
            store.create(obj).await.unwrap();
        }
        (Some(mut obj), 0 | 1) => {
            obj.metadata.labels = random_labels(rng);
            store.replace(obj).await.unwrap();
        }
        (Some(_), 2) => {
            store
                .update_status(&key, "", json!({"phase": rng.pick(&VALUES)}))
                .await
                .unwrap();
        }
        (Some(_), _) => {
            store.delete(&key).await.unwrap();
        }
    }
}

/// The objects a selector selects, by filtering every object: what the index must give.
fn brute(all: &[Object], namespace: Option<&str>, selector: &LabelSelector) -> Vec<String> {
    let kept: Vec<Object> = all
        .iter()
        .filter(|o| namespace.is_none_or(|ns| o.metadata.namespace.as_deref() == Some(ns)))
        .filter(|o| selector.matches(&o.metadata.labels))
        .cloned()
        .collect();
    names(&kept)
}

#[tokio::test]
async fn selected_lists_equal_filtering_every_object() {
    for seed in 1..=6u64 {
        let (_dir, store) = store().await;
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for round in 0..5 {
            for _ in 0..30 {
                random_write(&store, &mut rng).await;
            }
            assert_eq!(
                index_rows(&store).await,
                expected_rows(&store, &[Kind::Job, Kind::Policy]).await,
                "seed {seed}, round {round}: the index is the objects' labels"
            );
            for _ in 0..25 {
                let selector = random_selector(&mut rng);
                let kind = if rng.below(4) == 0 {
                    Kind::Policy
                } else {
                    Kind::Job
                };
                let namespace =
                    (kind == Kind::Job && rng.below(3) == 0).then(|| rng.pick(&NAMESPACES));
                let (all, _) = store.list(kind, None).await.unwrap();
                let expected = brute(&all, namespace, &selector);
                let context = format!(
                    "seed {seed}, round {round}, {kind} in {namespace:?}, selector {selector:?}"
                );

                let whole = store
                    .list_page(PageQuery::selected(kind, namespace, &selector))
                    .await
                    .unwrap();
                assert_eq!(names(&whole.items), expected, "{context}");
                assert_eq!(whole.remaining, 0, "{context}");

                // The same in pages: each continues after the last key of the one before
                // and counts exactly what follows it.
                let limit = 1 + rng.below(4);
                let mut paged = Vec::new();
                let mut after: Option<(String, String)> = None;
                loop {
                    let page = store
                        .list_page(PageQuery {
                            after: after.as_ref().map(|(n, m)| (n.as_str(), m.as_str())),
                            limit: Some(limit),
                            ..PageQuery::selected(kind, namespace, &selector)
                        })
                        .await
                        .unwrap();
                    assert!(page.items.len() <= limit, "{context}");
                    paged.extend(names(&page.items));
                    assert_eq!(
                        page.remaining,
                        expected.len() - paged.len(),
                        "{context}: remaining after {paged:?}"
                    );
                    match page.items.last() {
                        Some(last) if page.remaining > 0 => {
                            after = Some((
                                last.metadata.namespace.clone().unwrap_or_default(),
                                last.metadata.name.clone(),
                            ))
                        }
                        _ => break,
                    }
                }
                assert_eq!(paged, expected, "{context}: pages of {limit}");

                // From any key, in the namespace asked for or not.
                let from = (
                    rng.pick(&["", "n1", "n2", "n3", "n4"]),
                    format!("o{}", rng.below(13)),
                );
                let from_key = format!("{}/{}", from.0, from.1);
                let after_from: Vec<String> = expected
                    .iter()
                    .filter(|key| {
                        let (ns, name) = key.split_once('/').unwrap();
                        (ns, name) > (from.0, from.1.as_str())
                    })
                    .cloned()
                    .collect();
                let page = store
                    .list_page(PageQuery {
                        after: Some((from.0, &from.1)),
                        ..PageQuery::selected(kind, namespace, &selector)
                    })
                    .await
                    .unwrap();
                assert_eq!(
                    names(&page.items),
                    after_from,
                    "{context}: after {from_key}"
                );
            }
        }
    }
}
