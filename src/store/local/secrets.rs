//! Secrets (the core `v1` Secret of local mode), encrypted at rest.
//!
//! Each Secret is sealed whole (metadata, type, data) with XChaCha20-Poly1305 under a key
//! kept next to the database, `<data-dir>/secrets.key` (32 random bytes, mode 0600, made
//! on first use and never made again over an existing one), with a random nonce per
//! write and the namespace and name as associated data. The database and its WAL hold
//! only ciphertext, so searching them for a value finds nothing; losing the key file
//! loses the secrets. They live in their own table (migration 0009), apart from the
//! objects, so the lists, watches, labels and searches of other kinds never carry them.
//!
//! Nothing here logs, or puts in an error, a secret's data.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{LocalStore, to_revision};
use crate::resources::validate::{MAX_NAME, dns_label_problem};
use crate::store::{Result, StoreError};

/// The key file inside the data dir.
pub const KEY_FILE: &str = "secrets.key";
const KEY_BYTES: usize = 32;
/// The type of a Secret that names none, as in Kubernetes.
pub const DEFAULT_TYPE: &str = "Opaque";
/// The largest Secret, as in Kubernetes (1 MiB of data).
const MAX_DATA_BYTES: usize = 1024 * 1024;

const SELECT_ONE: &str = "SELECT nonce, sealed FROM secrets WHERE namespace = ?1 AND name = ?2";
const SELECT_ALL: &str = "SELECT namespace, name, nonce, sealed FROM secrets \
     WHERE (?1 IS NULL OR namespace = ?1) ORDER BY namespace, name";
const SELECT_VERSION: &str =
    "SELECT resource_version FROM secrets WHERE namespace = ?1 AND name = ?2";
const NEXT_REVISION: &str =
    "UPDATE secret_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision";
const SELECT_REVISION: &str = "SELECT revision FROM secret_revision WHERE id = 1";
const UPSERT: &str = "INSERT INTO secrets (namespace, name, uid, resource_version, nonce, sealed) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (namespace, name) DO UPDATE SET \
     uid = excluded.uid, resource_version = excluded.resource_version, \
     nonce = excluded.nonce, sealed = excluded.sealed";
const DELETE: &str = "DELETE FROM secrets WHERE namespace = ?1 AND name = ?2";

/// The cipher of one data dir, read (or made) from its key file once.
pub(super) struct SecretKey {
    path: PathBuf,
    cipher: XChaCha20Poly1305,
}

impl SecretKey {
    /// Reads `<data_dir>/secrets.key`, or makes it (mode 0600) when there is none.
    pub(super) fn load_or_create(data_dir: &Path) -> Result<SecretKey> {
        let path = data_dir.join(KEY_FILE);
        let key = match read_key(&path)? {
            Some(key) => key,
            None => create_key(&path)?,
        };
        let cipher = XChaCha20Poly1305::new_from_slice(&key)
            .map_err(|_| key_error(&path, "is not a 32-byte key"))?;
        Ok(SecretKey { path, cipher })
    }

    fn seal(&self, namespace: &str, name: &str, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = XNonce::default();
        getrandom::fill(&mut nonce).map_err(|e| {
            StoreError::Io(io::Error::other(format!(
                "no random bytes from the operating system to encrypt secret {namespace}/{name}: {e}"
            )))
        })?;
        let aad = associated_data(namespace, name);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                StoreError::Io(io::Error::other(format!(
                    "cannot encrypt secret {namespace}/{name}"
                )))
            })?;
        Ok((nonce.to_vec(), sealed))
    }

    fn open(&self, namespace: &str, name: &str, nonce: &[u8], sealed: &[u8]) -> Result<Secret> {
        let unreadable = || StoreError::SecretKey {
            path: self.path.clone(),
            message: format!(
                "cannot decrypt secret {namespace}/{name} with it: it is not the key the secret was stored with (or the database row was altered); put back the secrets.key this data dir was used with (from your backup), or delete the secret and create it again"
            ),
        };
        let nonce = XNonce::try_from(nonce).map_err(|_| unreadable())?;
        let aad = associated_data(namespace, name);
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| unreadable())?;
        // Never echo the plaintext in an error: serde's message would quote it.
        serde_json::from_slice(&plain).map_err(|_| unreadable())
    }
}

fn associated_data(namespace: &str, name: &str) -> Vec<u8> {
    format!("orcaops.dev/secret\0{namespace}\0{name}").into_bytes()
}

fn key_error(path: &Path, message: &str) -> StoreError {
    StoreError::SecretKey {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The key in `path`, None when there is no such file.
fn read_key(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(key_error(
                path,
                &format!(
                    "cannot read it ({e}); make it readable by the user orcaops runs as (and only by it: chmod 600)"
                ),
            ));
        }
    };
    let mut key = Vec::with_capacity(KEY_BYTES);
    file.read_to_end(&mut key).map_err(|e| {
        key_error(
            path,
            &format!("cannot read it ({e}); make it readable by the user orcaops runs as"),
        )
    })?;
    if key.len() != KEY_BYTES {
        return Err(key_error(
            path,
            &format!(
                "it holds {} bytes, not the {KEY_BYTES} of an orcaops secrets key; put back the original file from your backup (the secrets stored with it cannot be read without it), or move it away to start with no secrets",
                key.len()
            ),
        ));
    }
    Ok(Some(key))
}

/// Makes a new key file, readable and writable by its owner only. Never over an existing
/// file: if another process made one first, that one is read.
fn create_key(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;

    let mut key = vec![0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| {
        key_error(
            path,
            &format!("cannot make it: no random bytes from the operating system ({e})"),
        )
    })?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return read_key(path)?.ok_or_else(|| key_error(path, "it vanished while read"));
        }
        Err(e) => {
            return Err(key_error(
                path,
                &format!("cannot create it ({e}); the data dir must be writable"),
            ));
        }
    };
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error(path, &format!("cannot write it ({e})")))?;
    tracing::info!(path = %path.display(), "made the secrets key; back it up: without it the stored secrets cannot be read");
    Ok(key)
}

/// Why a Secret cannot be stored, if it cannot: its name, data keys and size.
pub fn secret_problem(secret: &Secret) -> Option<String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    if let Some(problem) = dns_label_problem(name, MAX_NAME) {
        return Some(format!(
            "metadata.name {name:?} {problem}; a secret's name is a DNS-1123 label (at most {MAX_NAME} lowercase letters, digits and '-')"
        ));
    }
    let keys = secret
        .data
        .iter()
        .flat_map(BTreeMap::keys)
        .chain(secret.string_data.iter().flat_map(BTreeMap::keys));
    let mut size = 0;
    for key in keys {
        let valid = !key.is_empty()
            && key.len() <= 253
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid || key == "." || key == ".." {
            return Some(format!(
                "data key {key:?} of secret {name} is not valid: a key is 1 to 253 letters, digits, '-', '_' or '.' (and not \".\" or \"..\")"
            ));
        }
        size += key.len();
    }
    size += secret
        .data
        .iter()
        .flat_map(BTreeMap::values)
        .map(|v| v.0.len())
        .sum::<usize>();
    size += secret
        .string_data
        .iter()
        .flat_map(BTreeMap::values)
        .map(String::len)
        .sum::<usize>();
    if size > MAX_DATA_BYTES {
        return Some(format!(
            "secret {name} holds {size} bytes of data, over the limit of {MAX_DATA_BYTES}; keep large files out of secrets"
        ));
    }
    None
}

/// What is stored of a Secret: `stringData` folded into `data` (it wins, as in
/// Kubernetes), the type defaulted, and no status-like fields.
fn normalized(mut secret: Secret) -> Secret {
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (key, value) in strings {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    if secret.type_.as_deref().unwrap_or_default().is_empty() {
        secret.type_ = Some(DEFAULT_TYPE.to_string());
    }
    secret.metadata.managed_fields = None;
    secret
}

fn not_found(namespace: &str, name: &str) -> StoreError {
    StoreError::SecretNotFound {
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

impl LocalStore {
    fn secret_key(&self) -> Result<&SecretKey> {
        if let Some(key) = self.inner.secret_key.get() {
            return Ok(key);
        }
        let key = SecretKey::load_or_create(self.data_dir())?;
        Ok(self.inner.secret_key.get_or_init(|| key))
    }

    /// The Secret `namespace/name`, decrypted; None when there is none.
    pub async fn get_secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(SELECT_ONE)
            .bind(namespace)
            .bind(name)
            .fetch_optional(&self.inner.readers)
            .await?;
        row.map(|(nonce, sealed)| self.secret_key()?.open(namespace, name, &nonce, &sealed))
            .transpose()
    }

    /// The Secrets of `namespace` (None: all), in (namespace, name) order, with the
    /// resourceVersion of the newest secret write.
    pub async fn list_secrets(&self, namespace: Option<&str>) -> Result<(Vec<Secret>, String)> {
        let mut tx = self.inner.readers.begin().await?;
        let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = sqlx::query_as(SELECT_ALL)
            .bind(namespace)
            .fetch_all(&mut *tx)
            .await?;
        let revision: i64 = sqlx::query_scalar(SELECT_REVISION)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let secrets = if rows.is_empty() {
            Vec::new()
        } else {
            let key = self.secret_key()?;
            rows.iter()
                .map(|(ns, name, nonce, sealed)| key.open(ns, name, nonce, sealed))
                .collect::<Result<Vec<_>>>()?
        };
        Ok((secrets, to_revision(revision).to_string()))
    }

    /// Stores a new Secret (`stringData` folded into `data`), with a uid,
    /// creationTimestamp and resourceVersion. `SecretExists` if there is one.
    pub async fn create_secret(&self, namespace: &str, secret: Secret) -> Result<Secret> {
        self.write_secret(namespace, secret, None).await
    }

    /// Replaces a Secret's labels, annotations, type and data. A non-empty
    /// `metadata.resourceVersion` that is not the stored one is a `SecretConflict`.
    pub async fn replace_secret(&self, namespace: &str, secret: Secret) -> Result<Secret> {
        let expected = secret.metadata.resource_version.clone().unwrap_or_default();
        self.write_secret(namespace, secret, Some(expected)).await
    }

    /// `replace`: None creates, Some(version) replaces ("" unconditionally).
    async fn write_secret(
        &self,
        namespace: &str,
        secret: Secret,
        replace: Option<String>,
    ) -> Result<Secret> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        if let Some(message) = secret_problem(&secret) {
            return Err(StoreError::SecretInvalid { name, message });
        }
        let key = self.secret_key()?;
        let mut secret = normalized(secret);
        let mut writer = self.inner.writer.lock().await;
        let mut tx = sqlx::Connection::begin(&mut *writer).await?;
        let stored: Option<i64> = sqlx::query_scalar(SELECT_VERSION)
            .bind(namespace)
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?;
        match (&replace, stored) {
            (None, Some(_)) => {
                return Err(StoreError::SecretExists {
                    namespace: namespace.to_string(),
                    name,
                });
            }
            (Some(_), None) => return Err(not_found(namespace, &name)),
            (Some(expected), Some(current))
                if !expected.is_empty() && *expected != current.to_string() =>
            {
                return Err(StoreError::SecretConflict {
                    namespace: namespace.to_string(),
                    name,
                    expected: expected.clone(),
                    current: current.to_string(),
                });
            }
            _ => {}
        }
        if replace.is_some() {
            // Identity and creation stay those of the stored secret.
            let nonce_sealed: (Vec<u8>, Vec<u8>) = sqlx::query_as(SELECT_ONE)
                .bind(namespace)
                .bind(&name)
                .fetch_one(&mut *tx)
                .await?;
            let old = key.open(namespace, &name, &nonce_sealed.0, &nonce_sealed.1)?;
            secret.metadata.uid = old.metadata.uid;
            secret.metadata.creation_timestamp = old.metadata.creation_timestamp;
        } else {
            secret.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
            // Whole seconds, as the API serialises it: what is returned is what is read.
            let now = k8s_openapi::jiff::Timestamp::now();
            let now = k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
            secret.metadata.creation_timestamp = Some(Time(now));
        }
        let revision: i64 = sqlx::query_scalar(NEXT_REVISION)
            .fetch_one(&mut *tx)
            .await?;
        secret.metadata.namespace = Some(namespace.to_string());
        secret.metadata.resource_version = Some(revision.to_string());
        secret.metadata.generation = None;
        secret.metadata.deletion_timestamp = None;
        let plain = serde_json::to_vec(&secret)?;
        let (nonce, sealed) = key.seal(namespace, &name, &plain)?;
        sqlx::query(UPSERT)
            .bind(namespace)
            .bind(&name)
            .bind(secret.metadata.uid.as_deref().unwrap_or_default())
            .bind(revision)
            .bind(nonce)
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// Deletes a Secret and returns its last state.
    pub async fn delete_secret(&self, namespace: &str, name: &str) -> Result<Secret> {
        let key = self.secret_key()?;
        let mut writer = self.inner.writer.lock().await;
        let mut tx = sqlx::Connection::begin(&mut *writer).await?;
        let row: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(SELECT_ONE)
            .bind(namespace)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((nonce, sealed)) = row else {
            return Err(not_found(namespace, name));
        };
        // A secret that no longer opens (a lost key) can still be deleted.
        let last = key.open(namespace, name, &nonce, &sealed).ok();
        sqlx::query(DELETE)
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(NEXT_REVISION).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(last.unwrap_or_else(|| Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests;
