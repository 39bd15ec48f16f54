//! Events and run records in the local store. Neither takes a resourceVersion nor
//! produces watch events; both go through the single writer connection anyway, because
//! a second writer would only wait on SQLite's lock.

use chrono::{DateTime, Utc};

use super::LocalStore;
use crate::records::search::{MAX_LIMIT, RunQuery, fts_phrase, search_text};
use crate::records::usage::UsageRow;
use crate::records::{AttemptRecord, RunRecord, WorkflowRunRecord};
use crate::store::{Event, EventQuery, EventType, InvolvedObject, NewEvent, Result};

const RECORD_EVENT: &str = "INSERT INTO events \
     (involved_kind, involved_namespace, involved_name, involved_uid, type, reason, message, \
      count, first_timestamp, last_timestamp) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8) \
     ON CONFLICT (involved_kind, involved_namespace, involved_name, involved_uid, type, reason, message) \
     DO UPDATE SET count = count + 1, last_timestamp = excluded.last_timestamp";
/// How many events one object keeps: the newest, by last occurrence.
pub const EVENTS_PER_OBJECT: i64 = 100;
/// How long an event is kept after it last occurred.
pub const EVENT_TTL: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// How often, at most, events past [`EVENT_TTL`] are looked for.
const PRUNE_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
// The object's events past its newest EVENTS_PER_OBJECT; the UNIQUE index on
// (involved_kind, involved_namespace, involved_name, ...) finds them without a scan.
const BOUND_EVENTS: &str = "DELETE FROM events \
     WHERE involved_kind = ?1 AND involved_namespace = ?2 AND involved_name = ?3 \
       AND id NOT IN (SELECT id FROM events \
         WHERE involved_kind = ?1 AND involved_namespace = ?2 AND involved_name = ?3 \
         ORDER BY last_timestamp DESC, id DESC LIMIT ?4)";
const EXPIRE_EVENTS: &str = "DELETE FROM events WHERE last_timestamp < ?1";
const LIST_EVENTS: &str = "SELECT involved_kind, involved_namespace, involved_name, involved_uid, \
     type, reason, message, count, first_timestamp, last_timestamp FROM events \
     WHERE (?1 IS NULL OR involved_kind = ?1) \
       AND (?2 IS NULL OR involved_namespace = ?2) \
       AND (?3 IS NULL OR involved_name = ?3) \
     ORDER BY last_timestamp DESC, id DESC LIMIT ?4";
const PUT_ATTEMPT: &str = "INSERT INTO attempts (uid, run, attempt, document) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (uid, run, attempt) DO UPDATE SET document = excluded.document";
const PUT_RUN: &str = "INSERT INTO runs (uid, run, namespace, name, sort_time, document) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (uid, run) DO UPDATE SET namespace = excluded.namespace, name = excluded.name, \
     sort_time = excluded.sort_time, document = excluded.document";

// A run with neither start nor completion time has not started: it is the newest.
const RECENT_RUNS: &str = "SELECT document FROM runs WHERE namespace = ?1 AND name = ?2 \
     ORDER BY sort_time IS NULL DESC, sort_time DESC, run DESC LIMIT ?3";
// The expressions of the index runs_by_workflow_node (migration 0007).
pub(super) const NODE_RUNS: &str = "SELECT document FROM runs WHERE namespace = ?1 \
     AND json_extract(document, '$.context.labels.\"orcaops.dev/workflow\"') = ?2 \
     AND json_extract(document, '$.context.labels.\"orcaops.dev/node\"') = ?3 \
     ORDER BY sort_time IS NULL DESC, sort_time DESC, run DESC LIMIT ?4";
const USAGE_ROWS: &str = "SELECT namespace, name, \
     json_extract(document, '$.context.labels.\"orcaops.dev/workflow\"'), \
     json_extract(document, '$.phase'), json_extract(document, '$.startTime'), \
     json_extract(document, '$.completionTime'), json_extract(document, '$.usage.cpuMillis'), \
     json_extract(document, '$.usage.peakMemoryBytes') FROM runs \
     WHERE (?1 IS NULL OR namespace = ?1) AND (?2 IS NULL OR sort_time >= ?2) \
     AND (?3 IS NULL OR sort_time < ?3)";
const PUT_WORKFLOW_RUN: &str = "INSERT INTO workflow_runs (uid, run, namespace, name, sort_time, document, token) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT (uid, run) DO UPDATE SET namespace = excluded.namespace, name = excluded.name, \
     sort_time = excluded.sort_time, document = excluded.document, token = excluded.token";
const WORKFLOW_RUN_BY_TOKEN: &str = "SELECT document FROM workflow_runs WHERE uid = ?1 AND token = ?2 \
     ORDER BY run LIMIT 1";
const WORKFLOW_RUNS: &str = "SELECT document FROM workflow_runs WHERE namespace = ?1 AND name = ?2 \
     ORDER BY sort_time IS NULL DESC, sort_time DESC, run DESC";

/// A value bound to a `?` of [`LocalStore::search_runs`]'s statement.
#[derive(Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

type EventRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
);

impl LocalStore {
    /// Records an event. The same (involved object, type, reason, message) as an event
    /// already recorded adds 1 to its count and moves its lastTimestamp to now.
    ///
    /// Events do not pile up: an object keeps its newest [`EVENTS_PER_OBJECT`], and an
    /// event is dropped [`EVENT_TTL`] after it last occurred (looked for at most once a
    /// minute, in the same transaction as an event being recorded).
    pub async fn record_event(&self, ev: NewEvent) -> Result<()> {
        use std::sync::atomic::Ordering;
        let now = Utc::now().timestamp_micros();
        let involved = &ev.involved;
        let record = sqlx::query(RECORD_EVENT)
            .bind(&involved.kind)
            .bind(&involved.namespace)
            .bind(&involved.name)
            .bind(&involved.uid)
            .bind(event_type_name(ev.type_))
            .bind(&ev.reason)
            .bind(&ev.message)
            .bind(now);
        let bound = sqlx::query(BOUND_EVENTS)
            .bind(&involved.kind)
            .bind(&involved.namespace)
            .bind(&involved.name)
            .bind(EVENTS_PER_OBJECT);
        let mut statements = vec![record, bound];
        let last = self.inner.events_pruned.load(Ordering::Relaxed);
        let every = PRUNE_EVERY.num_microseconds().unwrap_or(i64::MAX);
        if now - last >= every
            && self
                .inner
                .events_pruned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let cutoff = now - EVENT_TTL.num_microseconds().unwrap_or(i64::MAX);
            statements.push(sqlx::query(EXPIRE_EVENTS).bind(cutoff));
        }
        self.inner.write_all(statements).await
    }

    /// Events about objects matching kind, namespace and name (None: any), newest
    /// lastTimestamp first, at most `limit`.
    pub async fn list_events(&self, query: EventQuery<'_>) -> Result<Vec<Event>> {
        let rows: Vec<EventRow> = sqlx::query_as(LIST_EVENTS)
            .bind(query.kind)
            .bind(query.namespace)
            .bind(query.name)
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.readers)
            .await?;
        rows.into_iter().map(event_from_row).collect()
    }

    /// Stores an attempt, replacing the one with the same (uid, run, attempt).
    pub async fn put_attempt(&self, rec: &AttemptRecord) -> Result<()> {
        let document = serde_json::to_string(rec)?;
        let statement = sqlx::query(PUT_ATTEMPT)
            .bind(&rec.uid)
            .bind(i64::from(rec.run))
            .bind(i64::from(rec.attempt))
            .bind(document);
        self.inner.write_one(statement).await
    }

    /// The attempts of one run, first attempt first.
    pub async fn attempts(&self, uid: &str, run: u32) -> Result<Vec<AttemptRecord>> {
        let documents: Vec<String> = sqlx::query_scalar(
            "SELECT document FROM attempts WHERE uid = ?1 AND run = ?2 ORDER BY attempt",
        )
        .bind(uid)
        .bind(i64::from(run))
        .fetch_all(&self.inner.readers)
        .await?;
        parse_all(&documents)
    }

    /// Stores a run, replacing the one with the same (uid, run).
    pub async fn put_run(&self, rec: &RunRecord) -> Result<()> {
        let document = serde_json::to_string(rec)?;
        let sort_time = rec
            .completion_time
            .or(rec.start_time)
            .map(|t| t.timestamp_micros());
        let put = sqlx::query(PUT_RUN)
            .bind(&rec.uid)
            .bind(i64::from(rec.run))
            .bind(&rec.namespace)
            .bind(&rec.name)
            .bind(sort_time)
            .bind(document);
        // Its searchable text goes with it, in the same transaction.
        let forget = sqlx::query("DELETE FROM run_text WHERE uid = ?1 AND run = ?2")
            .bind(&rec.uid)
            .bind(i64::from(rec.run));
        let index = sqlx::query("INSERT INTO run_text (text, uid, run) VALUES (?1, ?2, ?3)")
            .bind(search_text(rec))
            .bind(&rec.uid)
            .bind(i64::from(rec.run));
        self.inner.write_all(vec![put, forget, index]).await
    }

    /// Adds the summariser's explanation to a run's record (see
    /// [`crate::records::RunRecord::explanation`]); a run not recorded is left alone.
    pub async fn set_run_explanation(&self, uid: &str, run: u32, text: &str) -> Result<()> {
        let set = sqlx::query(
            "UPDATE runs SET document = json_set(document, '$.explanation', ?3) \
             WHERE uid = ?1 AND run = ?2",
        )
        .bind(uid.to_string())
        .bind(i64::from(run))
        .bind(text.to_string());
        self.inner.write_all(vec![set]).await
    }

    /// The usage figures of every Job run that ended (else started) in `[since, until)`,
    /// in one workspace or all: only the fields usage is summed from, never the whole
    /// documents, so a month of runs is read in one pass.
    pub async fn usage_rows(
        &self,
        namespace: Option<&str>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<UsageRow>> {
        type Row = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(USAGE_ROWS)
            .bind(namespace)
            .bind(since.map(|t| t.timestamp_micros()))
            .bind(until.map(|t| t.timestamp_micros()))
            .fetch_all(&self.inner.readers)
            .await?;
        let time = |t: Option<String>| {
            t.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.to_utc())
        };
        Ok(rows
            .into_iter()
            .map(
                |(namespace, name, workflow, phase, start, end, cpu, memory)| UsageRow {
                    namespace,
                    name,
                    workflow,
                    phase: phase.unwrap_or_default(),
                    start_time: time(start),
                    completion_time: time(end),
                    cpu_millis: cpu.and_then(|n| u64::try_from(n).ok()),
                    peak_memory_bytes: memory.and_then(|n| u64::try_from(n).ok()),
                },
            )
            .collect())
    }

    /// The runs of every Job that `query` selects, newest first (see [`RunQuery`]).
    pub async fn search_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>> {
        let mut sql = String::from("SELECT r.document FROM runs r WHERE 1 = 1");
        let mut binds: Vec<Bind> = Vec::new();
        let mut add = |clause: &str, values: Vec<Bind>| {
            sql.push_str(" AND ");
            sql.push_str(clause);
            binds.extend(values);
        };
        if let Some(ns) = &query.namespace {
            add("r.namespace = ?", vec![Bind::Text(ns.clone())]);
        }
        if let Some(name) = &query.name {
            add("r.name = ?", vec![Bind::Text(name.clone())]);
        }
        if let Some(phase) = &query.phase {
            add(
                "json_extract(r.document, '$.phase') = ?",
                vec![Bind::Text(phase.clone())],
            );
        }
        if let Some(since) = query.since {
            add(
                "r.sort_time >= ?",
                vec![Bind::Int(since.timestamp_micros())],
            );
        }
        if let Some(until) = query.until {
            add("r.sort_time < ?", vec![Bind::Int(until.timestamp_micros())]);
        }
        for (key, value) in &query.labels {
            add(
                "json_extract(r.document, '$.context.labels.' || json_quote(?)) = ?",
                vec![Bind::Text(key.clone()), Bind::Text(value.clone())],
            );
        }
        if let Some(image) = &query.image {
            add(
                "(json_extract(r.document, '$.context.image') = ? \
                  OR substr(json_extract(r.document, '$.context.image'), 1, length(?) + 1) IN (? || ':', ? || '@'))",
                vec![Bind::Text(image.clone()); 4],
            );
        }
        if query.anomalous {
            add(
                "json_array_length(r.document, '$.anomalies') > 0",
                Vec::new(),
            );
        }
        match query.grep.as_deref().map(fts_phrase) {
            None => {}
            // Nothing to search for: nothing matches.
            Some(None) => return Ok(Vec::new()),
            // Not correlated: the full-text match runs once, not once per run.
            Some(Some(phrase)) => add(
                "(r.uid, r.run) IN (SELECT uid, run FROM run_text WHERE run_text MATCH ?)",
                vec![Bind::Text(phrase)],
            ),
        }
        sql.push_str(" ORDER BY r.sort_time IS NULL DESC, r.sort_time DESC, r.run DESC LIMIT ?");
        let limit = query.limit.clamp(1, MAX_LIMIT);
        // Only the fixed clauses above make up the text; every value is bound.
        let mut select = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            select = match bind {
                Bind::Text(text) => select.bind(text),
                Bind::Int(n) => select.bind(n),
            };
        }
        let documents = select
            .bind(limit as i64)
            .fetch_all(&self.inner.readers)
            .await?;
        parse_all(&documents)
    }

    /// Every run of every object that had this namespace and name, including deleted and
    /// re-created ones: newest first by completion (else start) time, then by run number.
    /// Runs that have neither time (not started yet) come first.
    pub async fn runs(&self, namespace: &str, name: &str) -> Result<Vec<RunRecord>> {
        self.recent_runs(namespace, name, usize::MAX).await
    }
}

impl LocalStore {
    /// The newest `limit` runs of [`LocalStore::runs`]: what a baseline reads.
    pub async fn recent_runs(
        &self,
        namespace: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let documents: Vec<String> = sqlx::query_scalar(RECENT_RUNS)
            .bind(namespace)
            .bind(name)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.readers)
            .await?;
        parse_all(&documents)
    }

    /// The newest `limit` runs of the Jobs of node `node` of Workflow `workflow`, across
    /// the Workflow's runs (each has a Job of its own name for the node): a node's
    /// baseline. Newest first, as [`LocalStore::recent_runs`].
    pub async fn node_runs(
        &self,
        namespace: &str,
        workflow: &str,
        node: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let documents: Vec<String> = sqlx::query_scalar(NODE_RUNS)
            .bind(namespace)
            .bind(workflow)
            .bind(node)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.readers)
            .await?;
        parse_all(&documents)
    }

    /// Stores a Workflow run, replacing the one with the same (uid, run): written when
    /// the run starts and again when it finishes.
    pub async fn put_workflow_run(&self, rec: &WorkflowRunRecord) -> Result<()> {
        let document = serde_json::to_string(rec)?;
        let sort_time = rec
            .completion_time
            .or(rec.start_time)
            .map(|t| t.timestamp_micros());
        let statement = sqlx::query(PUT_WORKFLOW_RUN)
            .bind(&rec.uid)
            .bind(i64::from(rec.run))
            .bind(&rec.namespace)
            .bind(&rec.name)
            .bind(sort_time)
            .bind(document)
            .bind(rec.token.as_deref());
        self.inner.write_one(statement).await
    }

    /// The run of the Workflow with this uid that the re-run token `token` started, if
    /// its record says so (the first, should a token have started several).
    pub async fn workflow_run_by_token(
        &self,
        uid: &str,
        token: &str,
    ) -> Result<Option<WorkflowRunRecord>> {
        let documents: Vec<String> = sqlx::query_scalar(WORKFLOW_RUN_BY_TOKEN)
            .bind(uid)
            .bind(token)
            .fetch_all(&self.inner.readers)
            .await?;
        Ok(parse_all(&documents)?.into_iter().next())
    }

    /// Every run of every Workflow that had this namespace and name, newest first, in
    /// the order of [`LocalStore::runs`].
    pub async fn workflow_runs(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<WorkflowRunRecord>> {
        let documents: Vec<String> = sqlx::query_scalar(WORKFLOW_RUNS)
            .bind(namespace)
            .bind(name)
            .fetch_all(&self.inner.readers)
            .await?;
        parse_all(&documents)
    }
}

fn event_type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

fn event_from_row(row: EventRow) -> Result<Event> {
    let (kind, namespace, name, uid, type_, reason, message, count, first, last) = row;
    Ok(Event {
        involved_object: InvolvedObject {
            kind,
            namespace,
            name,
            uid,
        },
        // Written by event_type_name, so it parses; serde names the value if it does not.
        type_: serde_json::from_value(serde_json::Value::String(type_))?,
        reason,
        message,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        first_timestamp: from_micros(first),
        last_timestamp: from_micros(last),
    })
}

fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// Stored JSON documents, parsed.
fn parse_all<T: serde::de::DeserializeOwned>(documents: &[String]) -> Result<Vec<T>> {
    documents
        .iter()
        .map(|d| Ok(serde_json::from_str(d)?))
        .collect()
}
