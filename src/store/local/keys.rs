//! API keys in SQLite: one row per key, holding the hash of its secret, never the key.
//! The server keeps them all in memory and writes through these (see `server::auth`).

use chrono::{DateTime, Utc};

use super::LocalStore;
use crate::store::Result;

/// One API key as stored. Times are UTC; `hash` is the SHA-256 of the secret part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    /// None for a server admin key.
    pub workspace: Option<String>,
    pub member: String,
    /// The agent label objects created through the key are annotated with.
    pub agent: Option<String>,
    pub hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The key that replaced this one, once rotated.
    pub rotated_to: Option<String>,
}

const COLUMNS: &str = "id, workspace, member, agent, hash, created_at, expires_at, revoked_at, \
     last_used_at, rotated_to";

type Row = (
    String,
    Option<String>,
    String,
    Option<String>,
    Vec<u8>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl LocalStore {
    /// Every key, revoked and expired ones included (they are listed until deleted).
    pub async fn api_keys(&self) -> Result<Vec<StoredKey>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id");
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.inner.readers)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| StoredKey {
                id: r.0,
                workspace: r.1,
                member: r.2,
                agent: r.3,
                hash: r.4,
                created_at: time(r.5),
                expires_at: r.6.map(time),
                revoked_at: r.7.map(time),
                last_used_at: r.8.map(time),
                rotated_to: r.9,
            })
            .collect())
    }

    /// Stores a key, replacing one with the same id (the admin key, made again).
    pub async fn put_api_key(&self, key: &StoredKey) -> Result<()> {
        let sql = format!(
            "INSERT OR REPLACE INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        );
        let mut writer = self.inner.writer.lock().await;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&key.id)
            .bind(&key.workspace)
            .bind(&key.member)
            .bind(&key.agent)
            .bind(&key.hash)
            .bind(micros(key.created_at))
            .bind(key.expires_at.map(micros))
            .bind(key.revoked_at.map(micros))
            .bind(key.last_used_at.map(micros))
            .bind(&key.rotated_to)
            .execute(&mut *writer)
            .await?;
        Ok(())
    }

    /// Records when keys were last used, in one transaction.
    pub async fn touch_api_keys(&self, used: &[(String, DateTime<Utc>)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let mut writer = self.inner.writer.lock().await;
        let mut tx = sqlx::Connection::begin(&mut *writer).await?;
        for (id, at) in used {
            sqlx::query("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")
                .bind(id)
                .bind(micros(*at))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
