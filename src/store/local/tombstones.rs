//! Tombstones in SQLite: what a controller deleted by itself from a file's declaration,
//! so that the folder does not create it again from the same declaration at a restart
//! (see [`Tombstone`]).

use chrono::Utc;

use super::LocalStore;
use crate::resources::{Kind, ObjectKey, keys};
use crate::store::{Result, Tombstone, spec_digest};

const UPSERT: &str = "INSERT INTO tombstones (kind, namespace, name, source, spec_digest, reason, deleted_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT (kind, namespace, name) DO UPDATE SET source = excluded.source, \
     spec_digest = excluded.spec_digest, reason = excluded.reason, deleted_at = excluded.deleted_at";
const SELECT_ALL: &str =
    "SELECT kind, namespace, name, source, spec_digest, reason FROM tombstones";
const DELETE: &str = "DELETE FROM tombstones WHERE kind = ?1 AND namespace = ?2 AND name = ?3";

impl LocalStore {
    /// Keeps a tombstone for `obj`, deleted by a controller for `reason`, when a file
    /// of the folder declared it (others are not re-created by anything).
    pub async fn record_tombstone(
        &self,
        obj: &crate::resources::Object,
        reason: &str,
    ) -> Result<()> {
        let Some(source) = obj.metadata.annotations.get(keys::SOURCE) else {
            return Ok(());
        };
        let key = super::decide::stored_key(&obj.key());
        let mut writer = self.inner.writer.lock().await;
        sqlx::query(UPSERT)
            .bind(key.kind.as_str())
            .bind(&key.namespace)
            .bind(&key.name)
            .bind(source)
            .bind(spec_digest(&obj.spec))
            .bind(reason)
            .bind(Utc::now().timestamp_micros())
            .execute(&mut *writer)
            .await?;
        Ok(())
    }

    /// Every tombstone.
    pub async fn tombstones(&self) -> Result<Vec<Tombstone>> {
        let rows: Vec<(String, String, String, String, String, String)> =
            sqlx::query_as(SELECT_ALL)
                .fetch_all(&self.inner.readers)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(kind, namespace, name, source, spec_digest, reason)| {
                let kind = Kind::ALL.into_iter().find(|k| k.as_str() == kind)?;
                Some(Tombstone {
                    key: ObjectKey::new(kind, &namespace, &name),
                    source,
                    spec_digest,
                    reason,
                })
            })
            .collect())
    }

    /// Forgets the tombstone of `key` (its file declares something new).
    pub async fn remove_tombstone(&self, key: &ObjectKey) -> Result<()> {
        let key = super::decide::stored_key(key);
        let mut writer = self.inner.writer.lock().await;
        sqlx::query(DELETE)
            .bind(key.kind.as_str())
            .bind(&key.namespace)
            .bind(&key.name)
            .execute(&mut *writer)
            .await?;
        Ok(())
    }
}
