//! The label index (`object_labels`, migration 0005): kept in step with every object
//! write, and read by lists with a label selector.
//!
//! A selector is answered in SQL. One of its `key=value`, `key in (...)` or `key` terms
//! drives: its rows of `object_labels_by_label` are the candidates, for `key=value`
//! already in (namespace, name) order, so a page of 10 reads about 10 index entries
//! whatever the number of objects. Every other term is a lookup of the candidate's own
//! labels by primary key (`EXISTS`, or `NOT EXISTS` for `!=`, `notin` and `!key`), so
//! `limit`, the continue key and the count of what follows are exact. A selector of
//! negative terms only has nothing to drive with and filters the kind's objects.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, SqliteConnection};

use crate::resources::selector::{LabelRequirement, LabelSelector};
use crate::resources::{Kind, ObjectKey};
use crate::store::Result;

const DELETE_LABELS: &str =
    "DELETE FROM object_labels WHERE kind = ?1 AND namespace = ?2 AND name = ?3";
// One statement whatever the number of labels: the labels as a JSON object, split by
// json_each as the backfill of migration 0005 does.
const INSERT_LABELS: &str = "INSERT INTO object_labels (kind, namespace, name, key, value) \
     SELECT ?1, ?2, ?3, key, value FROM json_each(?4)";

/// Brings the index of `key` from the labels it had (`before`, None: not stored) to the
/// ones it has now (`after`, None: deleted), in the caller's transaction. Nothing is
/// written when the labels did not change, as for a status write.
pub(super) async fn sync(
    tx: &mut SqliteConnection,
    key: &ObjectKey,
    before: Option<&BTreeMap<String, String>>,
    after: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let had = before.is_some_and(|l| !l.is_empty());
    let has = after.is_some_and(|l| !l.is_empty());
    if before == after || (!had && !has) {
        return Ok(());
    }
    if had {
        sqlx::query(DELETE_LABELS)
            .bind(key.kind.as_str())
            .bind(&key.namespace)
            .bind(&key.name)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(labels) = after.filter(|_| has) {
        sqlx::query(INSERT_LABELS)
            .bind(key.kind.as_str())
            .bind(&key.namespace)
            .bind(&key.name)
            .bind(serde_json::to_string(labels)?)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A value bound to a `?` of a built statement, in order.
#[derive(Debug)]
enum Bind {
    Text(String),
    Int(i64),
}

/// A statement's text and its values.
#[derive(Debug, Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn text(&mut self, value: &str) -> &mut Self {
        self.text.push('?');
        self.binds.push(Bind::Text(value.to_string()));
        self
    }

    /// `(?, ?, ...)` of `values`.
    fn list(&mut self, values: &[String]) -> &mut Self {
        self.text.push('(');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.text(value);
        }
        self.text.push(')');
        self
    }

    /// The text is built from this module's fixed fragments and `?` only: every key,
    /// value and name the request gave is bound, never spliced in.
    fn statement(&self) -> AssertSqlSafe<&str> {
        AssertSqlSafe(&self.text)
    }

    fn bind_all<'q, O>(
        &'q self,
        mut query: sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
    ) -> sqlx::query::QueryScalar<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
        for bind in &self.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.as_str()),
                Bind::Int(n) => query.bind(*n),
            };
        }
        query
    }
}

/// What a selected page asks for; see [`page`].
pub(super) struct Selected<'a> {
    pub kind: Kind,
    pub namespace: Option<&'a str>,
    pub after: (&'a str, &'a str),
    pub selector: &'a LabelSelector,
}

/// The documents of one page of the objects `query` selects (at most `fetch` of them;
/// -1: all), in (namespace, name) order.
pub(super) async fn page(
    tx: &mut SqliteConnection,
    query: &Selected<'_>,
    fetch: i64,
) -> Result<Vec<String>> {
    let sql = page_statement(query, fetch);
    Ok(sql
        .bind_all(sqlx::query_scalar::<_, String>(sql.statement()))
        .fetch_all(&mut *tx)
        .await?)
}

fn page_statement(query: &Selected<'_>, fetch: i64) -> Sql {
    let plan = plan(query);
    let mut sql = Sql::default();
    sql.push("SELECT o.document ");
    plan.candidates(&mut sql, query, true);
    sql.push(" ORDER BY ")
        .push(plan.alias)
        .push(".namespace, ")
        .push(plan.alias)
        .push(".name LIMIT ?");
    sql.binds.push(Bind::Int(fetch));
    sql
}

/// How many objects `query` selects after its key.
pub(super) async fn count(tx: &mut SqliteConnection, query: &Selected<'_>) -> Result<usize> {
    let plan = plan(query);
    let mut sql = Sql::default();
    sql.push("SELECT COUNT(*) ");
    plan.candidates(&mut sql, query, false);
    let count: i64 = sql
        .bind_all(sqlx::query_scalar::<_, i64>(sql.statement()))
        .fetch_one(&mut *tx)
        .await?;
    Ok(usize::try_from(count).unwrap_or_default())
}

/// Which term drives (its index rows are the candidates) and which filter them.
struct Plan<'s> {
    driver: Option<&'s LabelRequirement>,
    filters: Vec<&'s LabelRequirement>,
    /// The table the candidates' (kind, namespace, name) are read from: `d`, the driving
    /// index rows, or `o`, the objects.
    alias: &'static str,
}

/// Drives with the first `key=value` (its rows come in list order), else the first
/// `key in (...)`, else the first `key`; negative terms never drive: they match objects
/// without the label, which the index has no row for.
fn plan<'s>(query: &Selected<'s>) -> Plan<'s> {
    let terms = query.selector.requirements();
    let rank = |r: &LabelRequirement| match r {
        LabelRequirement::Equals(..) => Some(0),
        LabelRequirement::In(_, values) if values.len() == 1 => Some(0),
        LabelRequirement::In(..) => Some(1),
        LabelRequirement::Exists(_) => Some(2),
        _ => None,
    };
    let driving = terms
        .iter()
        .enumerate()
        .filter_map(|(i, r)| rank(r).map(|rank| (rank, i)))
        .min()
        .map(|(_, i)| i);
    Plan {
        driver: driving.map(|i| &terms[i]),
        filters: terms
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != driving)
            .map(|(_, r)| r)
            .collect(),
        alias: if driving.is_some() { "d" } else { "o" },
    }
}

impl Plan<'_> {
    /// `FROM ... WHERE ...` of the candidates after the query's key that pass every
    /// filter. `documents`: join the objects for their documents (a count needs only the
    /// index, whose rows exist only for stored objects).
    fn candidates(&self, sql: &mut Sql, query: &Selected<'_>, documents: bool) {
        let a = self.alias;
        match self.driver {
            Some(driver) => {
                // CROSS JOIN keeps the index rows outermost: SQLite never reorders it.
                // INDEXED BY: in one namespace the primary key (kind, namespace, name, key)
                // also gives list order, and without statistics the planner may take it
                // and read every label of the namespace.
                sql.push(if documents {
                    "FROM object_labels d INDEXED BY object_labels_by_label \
                     CROSS JOIN objects o WHERE o.kind = d.kind \
                     AND o.namespace = d.namespace AND o.name = d.name AND d.kind = "
                } else {
                    "FROM object_labels d INDEXED BY object_labels_by_label WHERE d.kind = "
                })
                .text(query.kind.as_str());
                match driver {
                    LabelRequirement::Equals(key, value) => {
                        sql.push(" AND d.key = ").text(key);
                        sql.push(" AND d.value = ").text(value);
                    }
                    LabelRequirement::In(key, values) if values.len() == 1 => {
                        sql.push(" AND d.key = ").text(key);
                        sql.push(" AND d.value = ").text(&values[0]);
                    }
                    LabelRequirement::In(key, values) => {
                        sql.push(" AND d.key = ").text(key);
                        sql.push(" AND d.value IN ").list(values);
                    }
                    LabelRequirement::Exists(key) => {
                        sql.push(" AND d.key = ").text(key);
                    }
                    _ => unreachable!("negative terms never drive"),
                }
            }
            None => {
                sql.push("FROM objects o WHERE o.kind = ")
                    .text(query.kind.as_str());
            }
        }
        let (after_ns, after_name) = query.after;
        match query.namespace {
            // In one namespace the key is the name alone: the namespace equal and a range on
            // the name is what the index reads in order (with a row-value range there, the
            // planner may sort instead).
            Some(namespace) => {
                sql.push(" AND ")
                    .push(a)
                    .push(".namespace = ")
                    .text(namespace);
                match namespace.cmp(after_ns) {
                    std::cmp::Ordering::Less => {
                        sql.push(" AND 0");
                    }
                    std::cmp::Ordering::Equal => {
                        sql.push(" AND ").push(a).push(".name > ").text(after_name);
                    }
                    std::cmp::Ordering::Greater => {}
                }
            }
            None => {
                sql.push(" AND (")
                    .push(a)
                    .push(".namespace, ")
                    .push(a)
                    .push(".name) > (")
                    .text(after_ns)
                    .push(", ")
                    .text(after_name)
                    .push(")");
            }
        }
        for filter in &self.filters {
            filter_sql(sql, a, filter);
        }
    }
}

/// ` AND [NOT] EXISTS (the candidate's label row that the term is about)`.
fn filter_sql(sql: &mut Sql, a: &str, term: &LabelRequirement) {
    let (negated, key, values): (bool, &str, Option<&[String]>) = match term {
        LabelRequirement::Equals(k, v) | LabelRequirement::NotEquals(k, v) => (
            matches!(term, LabelRequirement::NotEquals(..)),
            k,
            Some(std::slice::from_ref(v)),
        ),
        LabelRequirement::In(k, vs) => (false, k, Some(vs)),
        LabelRequirement::NotIn(k, vs) => (true, k, Some(vs)),
        LabelRequirement::Exists(k) => (false, k, None),
        LabelRequirement::DoesNotExist(k) => (true, k, None),
    };
    sql.push(if negated {
        " AND NOT EXISTS ("
    } else {
        " AND EXISTS ("
    });
    sql.push("SELECT 1 FROM object_labels l WHERE l.kind = ")
        .push(a)
        .push(".kind AND l.namespace = ")
        .push(a)
        .push(".namespace AND l.name = ")
        .push(a)
        .push(".name AND l.key = ")
        .text(key);
    if let Some(values) = values {
        sql.push(" AND l.value IN ").list(values);
    }
    sql.push(")");
}

/// SQLite's plan of the page statement of `query`, one line per step, for the tests that
/// check that a selector reads the index rather than every object.
#[cfg(test)]
pub(super) async fn explain(
    tx: &mut SqliteConnection,
    query: &Selected<'_>,
) -> Result<Vec<String>> {
    let sql = page_statement(query, 11);
    let text = format!("EXPLAIN QUERY PLAN {}", sql.text);
    let mut statement = sqlx::query_as::<_, (i64, i64, i64, String)>(AssertSqlSafe(text));
    for bind in &sql.binds {
        statement = match bind {
            Bind::Text(text) => statement.bind(text.as_str()),
            Bind::Int(n) => statement.bind(*n),
        };
    }
    let rows = statement.fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(|(_, _, _, detail)| detail).collect())
}
