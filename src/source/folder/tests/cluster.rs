//! The folder against the Kubernetes store (the mock API server): what `orcaops sync
//! --once` does is this one pass.

use serde_json::json;

use super::*;
use crate::store::kube::SYNC_MANAGER;
use crate::store::kube::mock::{
    Exchange, collection_path, event_created, events_path, list, mock_store, object_path, served,
    served_applied,
};

fn job(name: &str, image: &str, file: Option<&str>) -> Object {
    let mut obj = Object::new(
        Kind::Job,
        "default",
        name,
        json!({"image": image, "steps": [{"name": "build", "run": "make"}]}),
    );
    if let Some(file) = file {
        obj.metadata
            .annotations
            .insert(keys::SOURCE.into(), format!("file:{file}"));
    }
    obj
}

#[tokio::test]
async fn one_pass_applies_new_files_skips_unchanged_ones_and_prunes_deleted_ones() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("a.yaml"), job_yaml("one", "alpine")).unwrap();
    std::fs::write(folder.path().join("b.yaml"), job_yaml("two", "alpine")).unwrap();
    let two = job("two", "alpine", Some("b.yaml"));
    // From a file that is gone: pruned. Without a source (kubectl made it): left alone.
    let gone = job("gone", "alpine", Some("gone.yaml"));
    let manual = job("manual", "alpine", None);

    let (store, api) = mock_store();
    let mut scenario: Vec<Exchange> = Kind::ALL
        .into_iter()
        .map(|kind| {
            let items = match kind {
                Kind::Job => vec![
                    served_applied(&two, &two, "5"),
                    served(&gone, "6"),
                    served(&manual, "7"),
                ],
                _ => vec![],
            };
            Exchange::get(collection_path(kind, None)).reply(200, list(kind, items, "9"))
        })
        .collect();
    let path = |name: &str| object_path(Kind::Job, "default", name);
    scenario.extend([
        Exchange::get(path("one")).not_found(),
        Exchange::patch(path("one"))
            .applied_by(SYNC_MANAGER)
            .body(
                "/metadata/annotations/orcaops.dev~1source",
                json!("file:a.yaml"),
            )
            .body("/spec/image", json!("alpine"))
            .reply(201, served(&job("one", "alpine", Some("a.yaml")), "10")),
        Exchange::post(events_path("default"))
            .body("/regarding/name", json!("one"))
            .body("/reason", json!("Applied"))
            .reply(201, event_created()),
        // b.yaml is what the cluster has: read, not written.
        Exchange::get(path("two")).reply(200, served_applied(&two, &two, "5")),
        Exchange::delete(path("gone")).reply(200, served(&gone, "11")),
        Exchange::post(events_path("default"))
            .body("/regarding/name", json!("gone"))
            .body("/reason", json!("Deleted"))
            .body("/note", json!("deleted: gone.yaml was deleted"))
            .reply(201, event_created()),
    ]);
    let api = api.expect(scenario);
    let report = FolderSource::new(folder.path().to_path_buf(), Arc::new(store))
        .sync_all()
        .await;
    api.done().await;
    let report = report.unwrap();
    assert_eq!(report.created, [job_key("one")]);
    assert_eq!(report.unchanged, 1);
    assert_eq!(report.deleted, [job_key("gone")]);
    assert_eq!(
        (report.failed.len(), report.clashes.len()),
        (0, 0),
        "{report:?}"
    );
}
