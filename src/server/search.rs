//! `GET /apis/orcaops.dev/v1alpha1[/namespaces/{ns}]/runs`: Job runs across jobs, from
//! the run records (they outlive their Jobs), filtered and searched. What
//! `orcaops history --all` and the MCP tool `search_runs` ask. And
//! `GET …[/namespaces/{ns}]/usage`: what those runs used (`orcaops stats --workspace`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::records::search::{MAX_LIMIT, RunQuery};
use crate::records::usage::UsageReport;
use crate::resources::quantity::parse_duration_secs;

/// The runs one answer holds unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;

const PHASES: [&str; 4] = ["Succeeded", "Failed", "TimedOut", "Cancelled"];

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SearchParams {
    name: Option<String>,
    phase: Option<String>,
    since: Option<String>,
    until: Option<String>,
    label_selector: Option<String>,
    image: Option<String>,
    anomalous: Option<bool>,
    grep: Option<String>,
    limit: Option<usize>,
}

/// A point in time: RFC 3339 (`2026-12-04T10:00:00Z`), or a duration back from now
/// (`30m`, `24h`, `7d`).
fn when(param: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let secs = parse_duration_secs(text).map_err(|e| {
        ApiError::bad_request(format!(
            "{param}={text:?}: {e}; give a time (2026-12-04T10:00:00Z) or a duration back from now (30m, 24h, 7d)"
        ))
    })?;
    Ok(now - chrono::TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2_000_000)))
}

/// Since when and until when; None: unbounded.
type Period = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `since` and `until` as times, with since before until.
fn period(
    since: Option<&str>,
    until: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Period, ApiError> {
    let since = since.map(|t| when("since", t, now)).transpose()?;
    let until = until.map(|t| when("until", t, now)).transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(ApiError::bad_request(format!(
            "since ({s}) is not before until ({u}), so no run can match"
        )));
    }
    Ok((since, until))
}

/// `team=web,tier==1`: runs are selected on key=value terms only.
fn labels(text: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (key, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(k, v)| !k.trim().is_empty() && !k.ends_with('!') && !v.contains('='))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "labelSelector term {term:?}: runs are selected by key=value terms only, such as labelSelector=team=web,tier=1"
                ))
            })?;
        out.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(out)
}

pub(super) fn query(
    namespace: Option<String>,
    p: SearchParams,
    now: DateTime<Utc>,
) -> Result<RunQuery, ApiError> {
    if let Some(phase) = &p.phase
        && !PHASES.contains(&phase.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "phase={phase:?} is not a phase a run ends in; use one of {}",
            PHASES.join(", ")
        )));
    }
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: give 1 to {MAX_LIMIT}"
        )));
    }
    let (since, until) = period(p.since.as_deref(), p.until.as_deref(), now)?;
    Ok(RunQuery {
        namespace,
        name: p.name.filter(|n| !n.is_empty()),
        phase: p.phase,
        since,
        until,
        labels: labels(p.label_selector.as_deref().unwrap_or(""))?,
        image: p.image.filter(|i| !i.is_empty()),
        anomalous: p.anomalous.unwrap_or(false),
        grep: p.grep,
        limit,
    })
}

async fn search(state: &AppState, q: RunQuery) -> Result<Response, ApiError> {
    let limit = q.limit;
    let runs = state.records()?.search_runs(&q).await?;
    let more = runs.len() == limit;
    Ok(Json(json!({
        "kind": "RunList",
        "items": runs,
        // Only the newest `limit`: a narrower query or a larger limit shows the rest.
        "metadata": { "limit": limit, "maybeMore": more },
    }))
    .into_response())
}

pub(super) async fn runs_all(
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(query_error(&e)))?;
    search(&state, query(None, p, Utc::now())?).await
}

pub(super) async fn runs_namespaced(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request(query_error(&e)))?;
    search(&state, query(Some(ns), p, Utc::now())?).await
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UsageParams {
    since: Option<String>,
    until: Option<String>,
}

/// What the runs that ended in a period used, summed by job and by day (see
/// [`crate::records::usage`]).
async fn usage(
    state: &AppState,
    namespace: Option<String>,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; the parameters are since and until (a time such as 2026-12-04T10:00:00Z, or a duration back from now such as 7d)",
            e.body_text()
        ))
    })?;
    let (since, until) = period(p.since.as_deref(), p.until.as_deref(), Utc::now())?;
    let rows = state
        .records()?
        .usage_rows(namespace.as_deref(), since, until)
        .await?;
    let report = UsageReport::of(&rows, namespace, since, until);
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.insert("kind".into(), json!("UsageReport"));
    }
    Ok(Json(body).into_response())
}

pub(super) async fn usage_all(
    State(state): State<AppState>,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    usage(&state, None, params).await
}

pub(super) async fn usage_namespaced(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    usage(&state, Some(ns), params).await
}

fn query_error(e: &axum::extract::rejection::QueryRejection) -> String {
    format!(
        "{}; the parameters are name, phase, since, until, labelSelector, image, anomalous (true/false), grep and limit",
        e.body_text()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> SearchParams {
        let text = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::client::urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let uri: axum::http::Uri = format!("/runs?{text}").parse().unwrap();
        Query::<SearchParams>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn parameters_become_a_query_and_bad_ones_say_what_to_give() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .to_utc();
        let q = query(
            Some("default".into()),
            params(&[
                ("phase", "Failed"),
                ("since", "24h"),
                ("until", "2026-12-04T11:00:00Z"),
                ("labelSelector", "team=web, tier==1"),
                ("anomalous", "true"),
                ("grep", "undefined reference"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(q.since, Some(now - chrono::TimeDelta::hours(24)));
        assert_eq!(q.until.unwrap().to_rfc3339(), "2026-12-04T11:00:00+00:00");
        assert_eq!(q.labels.get("tier").map(String::as_str), Some("1"));
        assert_eq!(q.labels.len(), 2);
        assert!(q.anomalous);
        assert_eq!(q.limit, DEFAULT_LIMIT);

        let err = |pairs: &[(&str, &str)]| query(None, params(pairs), now).unwrap_err().message;
        assert!(err(&[("phase", "Done")]).contains("Succeeded, Failed, TimedOut, Cancelled"));
        assert!(err(&[("since", "yesterday")]).contains("duration back from now"));
        assert!(err(&[("labelSelector", "team!=web")]).contains("key=value terms only"));
        assert!(err(&[("labelSelector", "team in (a,b)")]).contains("key=value terms only"));
        assert!(err(&[("limit", "0")]).contains("give 1 to 1000"));
        assert!(err(&[("since", "1h"), ("until", "2h")]).contains("not before until"));
    }
}
