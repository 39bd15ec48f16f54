//! Job subresources (cancel, rerun, runs, artifacts) and events; logs are in `logs.rs`.
//! cancel, rerun and runs of a Workflow, and its approve and reject, are handed to
//! `workflows.rs`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{AppState, error::ApiError};
use crate::records::{self, RunRecord};
use crate::resources::job::{JobSpec, JobStatus};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::store;

pub(super) fn job_key(ns: &str, plural: &str, name: &str) -> Result<ObjectKey, ApiError> {
    match super::objects::kind_for(plural)? {
        Kind::Job => Ok(ObjectKey::new(Kind::Job, ns, name)),
        other => Err(ApiError::not_found(format!(
            "this subresource of {} (it exists for jobs)",
            other.plural()
        ))),
    }
}

pub(super) fn job_status(obj: &Object) -> JobStatus {
    serde_json::from_value(obj.status.clone()).unwrap_or_default()
}

/// Sets a control annotation, retrying on write conflicts.
async fn annotate(
    state: &AppState,
    key: &ObjectKey,
    annotation: &str,
    value: impl Fn(&Object) -> Result<String, ApiError>,
) -> Result<Object, ApiError> {
    super::objects::replace_retrying(state, key, |obj| {
        let v = value(obj)?;
        obj.metadata.annotations.insert(annotation.to_string(), v);
        Ok(())
    })
    .await
}

/// The key of a Workflow named by a path, when the path names one.
fn workflow_key(ns: &str, plural: &str, name: &str) -> Result<Option<ObjectKey>, ApiError> {
    Ok((super::objects::kind_for(plural)? == Kind::Workflow)
        .then(|| ObjectKey::new(Kind::Workflow, ns, name)))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(key) = workflow_key(&ns, &plural, &name)? {
        return super::workflows::cancel(&state, &key, &body).await;
    }
    let key = job_key(&ns, &plural, &name)?;
    let obj = annotate(&state, &key, keys::CANCEL, |obj| {
        let status = job_status(obj);
        match status.run {
            Some(run) if !status.phase.is_finished() => Ok(run.to_string()),
            Some(run) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "job {name} has no run in progress: run {run} is {}",
                    status.phase.as_str()
                ),
            )),
            None => Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!("job {name} has not started a run yet"),
            )),
        }
    })
    .await?;
    Ok(Json(obj).into_response())
}

pub(super) async fn rerun(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(key) = workflow_key(&ns, &plural, &name)? {
        return super::workflows::rerun(&state, &key, &body).await;
    }
    let key = job_key(&ns, &plural, &name)?;
    let token = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    Ok(Json(annotate(&state, &key, keys::RERUN, |_| Ok(token.clone())).await?).into_response())
}

/// `POST .../workflows/{name}/runs` (Jobs start runs by apply or rerun).
pub(super) async fn start_run(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    match workflow_key(&ns, &plural, &name)? {
        Some(key) => super::workflows::start(&state, &key, &headers, &body).await,
        None => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "POST runs starts a run of a workflow; a {} run starts by apply, or with POST .../{plural}/{name}/rerun",
                super::objects::kind_for(&plural)?.singular()
            ),
        )),
    }
}

/// `POST .../workflows/{name}/approve` and `/reject`.
pub(super) async fn approve(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    decide(&state, &ns, &plural, &name, &body, true).await
}

pub(super) async fn reject(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    decide(&state, &ns, &plural, &name, &body, false).await
}

async fn decide(
    state: &AppState,
    ns: &str,
    plural: &str,
    name: &str,
    body: &Bytes,
    approved: bool,
) -> Result<Response, ApiError> {
    match workflow_key(ns, plural, name)? {
        Some(key) => super::workflows::decide(state, &key, body, approved).await,
        None => Err(ApiError::not_found(format!(
            "this subresource of {plural} (it exists for workflows)"
        ))),
    }
}

pub(super) async fn runs(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    if let Some(key) = workflow_key(&ns, &plural, &name)? {
        return super::workflows::runs(&state, &key).await;
    }
    job_key(&ns, &plural, &name)?;
    let runs = state.records()?.runs(&ns, &name).await?;
    if runs.is_empty()
        && state
            .objects
            .get(&ObjectKey::new(Kind::Job, &ns, &name))
            .await?
            .is_none()
    {
        return Err(ApiError::not_found(format!(
            "job {ns}/{name} (and no run records of it)"
        )));
    }
    Ok(Json(json!({ "kind": "RunList", "items": runs })).into_response())
}

/// Which object (uid) and run a log or artifact request means.
pub(super) struct RunTarget {
    pub uid: String,
    pub run: u32,
    pub live: bool,
    pub spec: Option<JobSpec>,
}

pub(super) async fn resolve_run(
    state: &AppState,
    key: &ObjectKey,
    run: Option<u32>,
) -> Result<RunTarget, ApiError> {
    let obj = state.objects.get(key).await?;
    if let Some(obj) = &obj {
        let status = job_status(obj);
        let spec = serde_json::from_value(obj.spec.clone()).ok();
        match (run, status.run) {
            (None, Some(current)) => {
                return Ok(RunTarget {
                    uid: obj.metadata.uid.clone(),
                    run: current,
                    live: !status.phase.is_finished(),
                    spec,
                });
            }
            (Some(r), Some(current)) if r <= current => {
                let live = r == current && !status.phase.is_finished();
                return Ok(RunTarget {
                    uid: obj.metadata.uid.clone(),
                    run: r,
                    live,
                    spec,
                });
            }
            (None, None) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("job {} has not started a run yet", key.name),
                ));
            }
            _ => {}
        }
    }
    // A deleted job (or an old run): look in the run records.
    let runs: Vec<RunRecord> = state.records()?.runs(&key.namespace, &key.name).await?;
    let found = match run {
        Some(r) => runs.iter().find(|x| x.run == r),
        None => runs.first(),
    };
    match found {
        Some(rec) => Ok(RunTarget {
            uid: rec.uid.clone(),
            run: rec.run,
            live: false,
            spec: None,
        }),
        None if obj.is_none() => Err(ApiError::not_found(format!(
            "job {}/{}",
            key.namespace, key.name
        ))),
        None => Err(ApiError::not_found(format!(
            "run {} of job {}",
            run.unwrap_or(0),
            key.name
        ))),
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ArtifactQuery {
    run: Option<u32>,
}

pub(super) async fn artifact(
    State(state): State<AppState>,
    Path((ns, plural, name, artifact)): Path<(String, String, String, String)>,
    Query(q): Query<ArtifactQuery>,
) -> Result<Response, ApiError> {
    let key = job_key(&ns, &plural, &name)?;
    let target = resolve_run(&state, &key, q.run).await?;
    let dir = records::artifact_dir(&records::run_dir(
        state.records()?.data_dir(),
        &ns,
        &name,
        &target.uid,
        target.run,
    ));
    let record = state
        .records()?
        .runs(&ns, &name)
        .await?
        .into_iter()
        .find(|r| r.uid == target.uid && r.run == target.run);
    let sha = record
        .as_ref()
        .and_then(|r| r.artifacts.iter().find(|a| a.name == artifact))
        .map(|a| a.sha256.clone());
    // Its own folder first (see `records::artifact_store_dir`); runs collected before
    // kept the files in the artifacts folder itself.
    let own = dir.join(&artifact);
    for (folder, file_name, content_type) in [
        (&own, artifact.clone(), "application/octet-stream"),
        (&own, format!("{artifact}.tar"), "application/x-tar"),
        (&dir, artifact.clone(), "application/octet-stream"),
        (&dir, format!("{artifact}.tar"), "application/x-tar"),
    ] {
        let path = folder.join(&file_name);
        if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            continue;
        }
        let Ok(file) = tokio::fs::File::open(&path).await else {
            continue;
        };
        // Only files are artifacts (a name that reaches a directory is not one).
        if !file.metadata().await.is_ok_and(|m| m.is_file()) {
            continue;
        }
        let internal = |e: std::io::Error| {
            tracing::error!(path = %path.display(), error = %e, "cannot read an artifact");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "internal error; see the server log",
            )
        };
        let len = file.metadata().await.map_err(internal)?.len();
        // The run record has the digest; an artifact without one is hashed here, so the
        // header is never missing or wrong.
        let sha = match &sha {
            Some(sha) => sha.clone(),
            None => sha256_of(&path).await.map_err(internal)?,
        };
        let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
        let mut response = (
            [
                (header::CONTENT_TYPE, content_type.to_string()),
                (header::CONTENT_LENGTH, len.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file_name}\""),
                ),
            ],
            body,
        )
            .into_response();
        if let Ok(value) = sha.parse() {
            response.headers_mut().insert("x-checksum-sha256", value);
        }
        return Ok(response);
    }
    Err(ApiError::not_found(format!(
        "artifact \"{artifact}\" of run {} of job {name}",
        target.run
    )))
}

async fn sha256_of(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventQuery {
    field_selector: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn events_namespaced(
    state: State<AppState>,
    Path(ns): Path<String>,
    q: Query<EventQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    events(state, Some(ns), q.0).await
}

pub(super) async fn events_all(
    state: State<AppState>,
    q: Query<EventQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    events(state, None, q.0).await
}

/// Events, filtered by `fieldSelector=involvedObject.kind=Job,involvedObject.name=x`.
async fn events(
    State(state): State<AppState>,
    ns: Option<String>,
    q: EventQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (mut kind, mut name) = (None, None);
    for term in q
        .field_selector
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
    {
        match term.split_once('=') {
            Some(("involvedObject.kind", v)) => kind = Some(v.to_string()),
            Some(("involvedObject.name", v)) => name = Some(v.to_string()),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unsupported field selector \"{term}\"; use involvedObject.kind or involvedObject.name"
                )));
            }
        }
    }
    let items = state
        .objects
        .list_events(store::EventQuery {
            kind: kind.as_deref(),
            namespace: ns.as_deref(),
            name: name.as_deref(),
            limit: q.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(
        json!({ "apiVersion": "v1", "kind": "EventList", "items": items }),
    ))
}
