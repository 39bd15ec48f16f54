//! Secrets against real SQLite files and key files in temporary directories.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::KEY_FILE;
use crate::store::StoreError;
use crate::store::local::tests::store;
use crate::store::local::{DB_FILE, LocalStore};
use crate::store::secrets::{SecretValue, SecretValues};

const VALUE: &str = "s3cr3t-value-that-must-not-leak-7f1c";

fn secret(name: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("team".into(), "a".into())])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("token".into(), VALUE.into())])),
        ..Default::default()
    }
}

/// Every file of the database (the main file, the WAL, the shared memory), concatenated.
fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(dir.join(format!("{DB_FILE}{suffix}"))) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_secret_round_trips_with_string_data_folded_into_data() {
    let (_dir, store) = store().await;
    let created = store
        .create_secret("default", secret("hook"))
        .await
        .unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.string_data.is_none());
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));

    let got = store.get_secret("default", "hook").await.unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(
        got.data.unwrap()["token"],
        ByteString(VALUE.as_bytes().to_vec())
    );
    assert_eq!(got.metadata.labels.unwrap()["team"], "a");
    assert!(store.get_secret("other", "hook").await.unwrap().is_none());

    let again = store.create_secret("default", secret("hook")).await;
    assert!(
        matches!(again, Err(StoreError::SecretExists { .. })),
        "{again:?}"
    );

    // Replace: data replaced, uid and creation kept, the version moves; a stale one conflicts.
    let mut changed = created.clone();
    changed.data = Some(BTreeMap::from([(
        "other".into(),
        ByteString(b"x".to_vec()),
    )]));
    let replaced = store
        .replace_secret("default", changed.clone())
        .await
        .unwrap();
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    assert_eq!(
        replaced.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    let stale = store.replace_secret("default", changed).await;
    assert!(
        matches!(stale, Err(StoreError::SecretConflict { .. })),
        "{stale:?}"
    );

    let (all, _) = store.list_secrets(None).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        store
            .secret_value("default", "hook", "other")
            .await
            .unwrap(),
        SecretValue::Found("x".into())
    );
    assert_eq!(
        store
            .secret_value("default", "hook", "token")
            .await
            .unwrap(),
        SecretValue::NoKey
    );
    store.delete_secret("default", "hook").await.unwrap();
    assert_eq!(
        store
            .secret_value("default", "hook", "other")
            .await
            .unwrap(),
        SecretValue::NoSecret
    );
    let gone = store.delete_secret("default", "hook").await;
    assert!(
        matches!(gone, Err(StoreError::SecretNotFound { .. })),
        "{gone:?}"
    );
}

#[tokio::test]
async fn values_are_encrypted_in_the_database_and_its_wal() {
    let (dir, store) = store().await;
    store
        .create_secret("default", secret("hook"))
        .await
        .unwrap();
    let bytes = database_bytes(dir.path());
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, VALUE.as_bytes()),
        "the value is in the database in clear"
    );
    // Not in base64 either, as the API carries it.
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(VALUE);
    assert!(!contains(&bytes, encoded.as_bytes()));
    // And the secret is not an object: no other kind's list or search carries it.
    for kind in crate::resources::Kind::ALL {
        let (objects, _) = store.list(kind, None).await.unwrap();
        assert!(objects.is_empty(), "{kind:?}: {objects:?}");
    }
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM secrets")
        .fetch_one(&store.inner.readers)
        .await
        .unwrap();
    assert!(!contains(&sealed, VALUE.as_bytes()));
    assert!(
        !contains(&sealed, b"hook"),
        "the name is sealed with the rest"
    );
}

#[tokio::test]
async fn the_key_file_is_made_once_with_mode_0600() {
    let (dir, store) = store().await;
    let path = dir.path().join(KEY_FILE);
    assert!(!path.exists(), "made on first use, not at open");
    store
        .create_secret("default", secret("hook"))
        .await
        .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    let key = std::fs::read(&path).unwrap();
    drop(store);
    // Opened again: the same key is read, never made again, and the secret opens.
    let store = LocalStore::open(dir.path()).await.unwrap();
    let got = store.get_secret("default", "hook").await.unwrap().unwrap();
    assert_eq!(got.data.unwrap()["token"].0, VALUE.as_bytes());
    assert_eq!(std::fs::read(&path).unwrap(), key);
}

#[tokio::test]
async fn a_wrong_key_fails_clearly_without_the_value() {
    let (dir, store) = store().await;
    store
        .create_secret("default", secret("hook"))
        .await
        .unwrap();
    drop(store);
    let path = dir.path().join(KEY_FILE);
    std::fs::write(&path, [7u8; 32]).unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    let err = store.get_secret("default", "hook").await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::SecretKey { .. }), "{err:?}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("default/hook"), "{message}");
    assert!(message.contains("backup"), "{message}");
    assert!(!message.contains(VALUE), "{message}");
    // A secret that no longer opens can still be deleted.
    store.delete_secret("default", "hook").await.unwrap();
}

#[tokio::test]
async fn a_key_file_of_the_wrong_size_is_refused_and_kept() {
    let (dir, store) = store().await;
    let path = dir.path().join(KEY_FILE);
    std::fs::write(&path, b"too short").unwrap();
    let err = store
        .create_secret("default", secret("hook"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("9 bytes, not the 32"), "{message}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"too short",
        "never made again over it"
    );
}

#[tokio::test]
async fn invalid_names_and_keys_are_refused_naming_the_field() {
    let (_dir, store) = store().await;
    let err = store
        .create_secret("default", secret("Bad_Name"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("metadata.name"), "{err}");
    let mut bad_key = secret("hook");
    bad_key.string_data = Some(BTreeMap::from([("a/b".into(), VALUE.into())]));
    let err = store.create_secret("default", bad_key).await.unwrap_err();
    assert!(err.to_string().contains("data key \"a/b\""), "{err}");
    assert!(!err.to_string().contains(VALUE), "{err}");
}
