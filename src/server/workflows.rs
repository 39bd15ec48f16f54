//! Workflow subresources: start a run (`runs`, honouring `Idempotency-Key`), `approve`
//! and `reject` a node, `cancel` the run in progress, `rerun` (all, only what failed, or
//! from a node), and the run history (`GET runs`).
//!
//! Each door writes control annotations on the Workflow (see `resources::keys`); the
//! Workflow controller reads them. Nothing here starts a container.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, error::ApiError};
use crate::records::WorkflowRunRecord;
use crate::resources::workflow::naming;
use crate::resources::workflow::{WorkflowPhase, WorkflowSpec, WorkflowStatus};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::store::StoreError;

/// The header a client sends so that a retried `POST .../runs` starts one run.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How long `POST .../runs` waits for the controller to start the run it asked for,
/// when nothing stands in its way, so that the answer can carry the run's number.
const START_WAIT: Duration = Duration::from_secs(3);
const MAX_IDEMPOTENCY_KEY: usize = 100;

fn spec_of(obj: &Object) -> Result<WorkflowSpec, ApiError> {
    serde_json::from_value(obj.spec.clone()).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "workflow {} has a spec that cannot be read ({e}); apply a valid one first",
                obj.metadata.name
            ),
        )
    })
}

pub(super) fn status_of(obj: &Object) -> WorkflowStatus {
    serde_json::from_value(obj.status.clone()).unwrap_or_default()
}

fn conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "Conflict", message)
}

pub(super) fn unprocessable(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message.clone());
    err.details.kind = Kind::Workflow.as_str().to_string();
    err.details.causes = vec![super::StatusCause {
        field: field.to_string(),
        message,
        reason: "FieldValueInvalid".into(),
    }];
    err
}

/// A body that may be empty (then `T::default()`), else JSON.
fn body_of<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not what this subresource reads: {e}"
        ))
    })
}

/// Reads the Workflow, lets `change` edit it (or refuse, or say there is nothing to
/// write), and writes it back, again from a fresh read after a write conflict.
async fn change_workflow<T>(
    state: &AppState,
    key: &ObjectKey,
    change: impl Fn(&mut Object) -> Result<Change<T>, ApiError>,
) -> Result<(Object, T), ApiError> {
    for _ in 0..5 {
        let Some(mut obj) = state.objects.get(key).await? else {
            return Err(StoreError::NotFound { key: key.clone() }.into());
        };
        match change(&mut obj)? {
            Change::Unchanged(t) => return Ok((obj, t)),
            Change::Write(t) => match state.objects.replace(obj).await {
                Err(StoreError::Conflict { .. }) => continue,
                other => return Ok((other?, t)),
            },
        }
    }
    Err(conflict(format!("{key} kept changing; try again")))
}

enum Change<T> {
    /// Nothing to write; answer with this.
    Unchanged(T),
    /// Write the edited object, then answer with this.
    Write(T),
}

// ---------------------------------------------------------------------------------
// POST runs

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RunRequest {
    #[serde(default)]
    inputs: BTreeMap<String, String>,
}

/// Checks that every input given is declared; the error names it and the declared ones.
pub(super) fn check_inputs(
    spec: &WorkflowSpec,
    name: &str,
    inputs: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    for given in inputs.keys() {
        if !spec.inputs.iter().any(|i| &i.name == given) {
            let declared: Vec<&str> = spec.inputs.iter().map(|i| i.name.as_str()).collect();
            let declared = if declared.is_empty() {
                "it declares none".to_string()
            } else {
                format!("it declares: {}", declared.join(", "))
            };
            return Err(unprocessable(
                &format!("inputs.{given}"),
                format!(
                    "input \"{given}\" is not declared by workflow {name} ({declared}); declare it under spec.inputs or drop it"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a run trigger (`s<digest>/rerun=<token>` or `rerun=<token>`) was started by
/// `token`. A scheduler tick's trigger carries the token already used
/// (`rerun=<token>/schedule=<tick>`) without having been started by it.
pub fn trigger_has_token(trigger: &str, token: &str) -> bool {
    let mut parts = trigger.split('/');
    !trigger.split('/').any(|part| part.starts_with("schedule="))
        && parts.any(|part| part.strip_prefix("rerun=") == Some(token))
}

/// Where the run asked for with `token` stands, as the object shows it.
#[derive(Debug, PartialEq)]
pub(super) enum TokenRun {
    /// No trace of it.
    Unknown,
    /// The annotation holds it; the controller has not started it yet.
    Asked,
    /// The current run, one in progress beside it, or one in the history.
    Started { run: u32, phase: WorkflowPhase },
}

pub(super) fn find_token_run(obj: &Object, token: &str) -> TokenRun {
    let status = status_of(obj);
    if let (Some(run), Some(trigger)) = (status.run, &status.run_trigger)
        && trigger_has_token(trigger, token)
    {
        return TokenRun::Started {
            run,
            phase: status.phase,
        };
    }
    if let Some(active) = status.active_runs.iter().find(|r| {
        r.trigger
            .as_deref()
            .is_some_and(|t| trigger_has_token(t, token))
    }) {
        return TokenRun::Started {
            run: active.run,
            phase: active.phase,
        };
    }
    if let Some(past) = status.history.iter().find(|h| {
        h.trigger
            .as_deref()
            .is_some_and(|t| trigger_has_token(t, token))
    }) {
        return TokenRun::Started {
            run: past.run,
            phase: past.phase,
        };
    }
    if obj
        .metadata
        .annotations
        .get(keys::RERUN)
        .map(String::as_str)
        == Some(token)
    {
        return TokenRun::Asked;
    }
    TokenRun::Unknown
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    request_id(headers, &[IDEMPOTENCY_KEY])
}

/// The first of the headers `names` the request has, as an id that may go in a run
/// token (an Idempotency-Key, a webhook's delivery id); a bad one is a 400 naming it.
pub(super) fn request_id(headers: &HeaderMap, names: &[&str]) -> Result<Option<String>, ApiError> {
    let Some((name, value)) = names
        .iter()
        .find_map(|name| headers.get(*name).map(|v| (name, v)))
    else {
        return Ok(None);
    };
    let id = value.to_str().unwrap_or("\u{fffd}").trim();
    let fine = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    if id.is_empty() || id.len() > MAX_IDEMPOTENCY_KEY || !id.chars().all(fine) {
        return Err(ApiError::bad_request(format!(
            "header {name} {id:?} must be 1 to {MAX_IDEMPOTENCY_KEY} characters of letters, digits, '-', '_', '.' or ':' (a UUID is a good one)"
        )));
    }
    Ok(Some(id.to_string()))
}

/// The answer of `runs` and `rerun`: the token, and the run once the controller has
/// started it.
fn run_answer(obj: &Object, token: &str, duplicate: bool) -> Response {
    let found = find_token_run(obj, token);
    let status = status_of(obj);
    let (code, run, phase, message) = match found {
        TokenRun::Started { run, phase } => (
            if duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            Some(run),
            Some(phase),
            format!("run {run} of workflow {}", obj.metadata.name),
        ),
        _ => {
            let spec = spec_of(obj).ok();
            let in_progress = status.runs_in_progress();
            let max = spec.as_ref().map_or(1, WorkflowSpec::max_active_runs);
            let why = if spec.as_ref().is_some_and(|s| s.suspend) {
                "the workflow is suspended; it starts once resumed".to_string()
            } else if max > 1 && in_progress.len() >= max {
                format!(
                    "{} runs are in progress ({}), the most spec.maxActiveRuns ({max}) allows; it starts when one of them ends",
                    in_progress.len(),
                    runs_list(&in_progress)
                )
            } else if let Some(run) = status.run.filter(|_| !status.phase.is_finished()) {
                format!(
                    "run {run} is in progress ({}); it starts when that ends, or at once with concurrencyPolicy: Replace",
                    phase_str(status.phase)
                )
            } else {
                "the controller has not started it yet".to_string()
            };
            (StatusCode::ACCEPTED, None, None, format!("accepted: {why}"))
        }
    };
    answer(obj, token, code, run, phase, duplicate, message)
}

/// The body of a `runs` or `rerun` answer.
fn answer(
    obj: &Object,
    token: &str,
    code: StatusCode,
    run: Option<u32>,
    phase: Option<WorkflowPhase>,
    duplicate: bool,
    message: String,
) -> Response {
    let body = json!({
        "kind": "WorkflowRun",
        "apiVersion": "orcaops.dev/v1alpha1",
        "workflow": obj.metadata.name,
        "namespace": obj.metadata.namespace,
        "token": token,
        "run": run,
        "phase": phase.map(phase_str),
        "duplicate": duplicate,
        "message": message,
    });
    (code, Json(body)).into_response()
}

pub fn phase_str(phase: WorkflowPhase) -> &'static str {
    match phase {
        WorkflowPhase::Pending => "Pending",
        WorkflowPhase::Running => "Running",
        WorkflowPhase::WaitingApproval => "WaitingApproval",
        WorkflowPhase::Succeeded => "Succeeded",
        WorkflowPhase::Failed => "Failed",
        WorkflowPhase::Cancelled => "Cancelled",
        WorkflowPhase::Suspended => "Suspended",
    }
}

/// `POST .../workflows/{name}/runs`: starts a run with these inputs. A request with an
/// `Idempotency-Key` already seen answers with the run it started instead.
pub(super) async fn start(
    state: &AppState,
    key: &ObjectKey,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let request: RunRequest = body_of(body)?;
    let idem = idempotency_key(headers)?;
    start_token(state, key, keys::RUN_TOKEN_PREFIX, idem, request.inputs).await
}

/// Starts a run of `key` with these inputs, by the token `<prefix><id>`: a request that
/// gives an `id` seen before (an Idempotency-Key, a webhook's delivery id) answers with
/// the run it started instead; without one, the id is fresh.
pub(super) async fn start_token(
    state: &AppState,
    key: &ObjectKey,
    prefix: &str,
    id: Option<String>,
    inputs: BTreeMap<String, String>,
) -> Result<Response, ApiError> {
    let retried = id.is_some();
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let token = format!("{prefix}{id}");
    if retried && let Some(found) = recorded_run(state, key, &token).await? {
        return Ok(found);
    }
    let (obj, duplicate) = change_workflow(state, key, |obj| {
        if find_token_run(obj, &token) != TokenRun::Unknown {
            return Ok(Change::Unchanged(true));
        }
        let spec = spec_of(obj)?;
        check_inputs(&spec, &key.name, &inputs)?;
        let a = &mut obj.metadata.annotations;
        a.insert(keys::RERUN.into(), token.clone());
        if inputs.is_empty() {
            a.remove(keys::INPUTS);
        } else {
            a.insert(
                keys::INPUTS.into(),
                serde_json::to_string(&inputs).expect("strings serialize"),
            );
        }
        a.remove(keys::RERUN_MODE);
        Ok(Change::Write(false))
    })
    .await?;
    let obj = wait_started(state, obj, &token).await?;
    Ok(run_answer(&obj, &token, duplicate))
}

/// A retried Idempotency-Key whose run has left the status (its history keeps the last
/// 10 runs): the answer for the run its record names, found by the token in the run
/// records of this Workflow (by uid: a Workflow made again under the same name starts
/// afresh). None when the status still knows the token (the usual path answers), or no
/// record has it. Where the run records cannot be read (an API replica that does not
/// lead), the status alone is asked, as before.
async fn recorded_run(
    state: &AppState,
    key: &ObjectKey,
    token: &str,
) -> Result<Option<Response>, ApiError> {
    let Some(obj) = state.objects.get(key).await? else {
        return Ok(None);
    };
    if find_token_run(&obj, token) != TokenRun::Unknown {
        return Ok(None);
    }
    let Ok(records) = state.records() else {
        return Ok(None);
    };
    let Some(record) = records
        .workflow_run_by_token(&obj.metadata.uid, token)
        .await?
    else {
        return Ok(None);
    };
    let message = format!(
        "run {} of workflow {} (found in its run records: it has left the status history)",
        record.run, obj.metadata.name
    );
    Ok(Some(answer(
        &obj,
        token,
        StatusCode::OK,
        Some(record.run),
        Some(record.phase),
        true,
        message,
    )))
}

/// Waits a little for the controller to start the run of `token`, when nothing holds it
/// back (no run in progress, not suspended), so that the answer can name the run.
async fn wait_started(state: &AppState, mut obj: Object, token: &str) -> Result<Object, ApiError> {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        let status = status_of(&obj);
        let held = spec_of(&obj)
            .is_ok_and(|s| s.suspend || status.runs_in_progress().len() >= s.max_active_runs());
        if !matches!(find_token_run(&obj, token), TokenRun::Asked)
            || held
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(obj);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        match state.objects.get(&obj.key()).await? {
            Some(fresh) => obj = fresh,
            None => return Ok(obj),
        }
    }
}

// ---------------------------------------------------------------------------------
// POST rerun

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RerunRequest {
    /// `all` (the default) or `failed`.
    #[serde(default)]
    mode: Option<String>,
    /// Rerun this node and everything downstream of it.
    #[serde(default)]
    from: Option<String>,
    /// Inputs that replace the last run's; the others keep the last run's values.
    #[serde(default)]
    inputs: BTreeMap<String, String>,
}

/// The value of `orcaops.dev/rerun-mode` a rerun request asks for (None: all).
pub(super) fn rerun_mode(
    spec: &WorkflowSpec,
    request_mode: Option<&str>,
    from: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match (request_mode, from) {
        (None | Some("all"), None) => Ok(None),
        (Some("failed"), None) => Ok(Some("failed".into())),
        (None, Some(node)) => {
            if !known_node(spec, node) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!(
                        "node \"{node}\" not found in this workflow; its nodes are: {}",
                        node_names(spec).join(", ")
                    ),
                ));
            }
            Ok(Some(format!("from={node}")))
        }
        (Some(_), Some(_)) => Err(unprocessable(
            "mode",
            "give either mode (failed | all) or from (a node), not both",
        )),
        (Some(other), None) => Err(unprocessable(
            "mode",
            format!("mode \"{other}\" is not one of: all, failed (or give from: NODE instead)"),
        )),
    }
}

/// Declared node names, and the expanded names of matrix combinations.
fn known_node(spec: &WorkflowSpec, node: &str) -> bool {
    spec.jobs.iter().any(|j| j.name == node) || naming::expand(spec).iter().any(|n| n.name == node)
}

fn node_names(spec: &WorkflowSpec) -> Vec<&str> {
    spec.jobs.iter().map(|j| j.name.as_str()).collect()
}

/// `POST .../workflows/{name}/rerun`: a new run; `{"mode": "failed"}` reruns only what did
/// not succeed in the last run, `{"from": "node"}` that node and what is downstream.
pub(super) async fn rerun(
    state: &AppState,
    key: &ObjectKey,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let request: RerunRequest = body_of(body)?;
    let token = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let (obj, ()) = change_workflow(state, key, |obj| {
        let spec = spec_of(obj)?;
        let mode = rerun_mode(&spec, request.mode.as_deref(), request.from.as_deref())?;
        let status = status_of(obj);
        if mode.is_some() && status.run.is_none() {
            return Err(conflict(format!(
                "workflow {} has not run yet, so there is no run to rerun part of; start one with POST .../runs",
                key.name
            )));
        }
        check_inputs(&spec, &key.name, &request.inputs)?;
        // The last run's inputs, as far as the spec still declares them, then the new ones.
        let mut inputs: BTreeMap<String, String> = status
            .inputs
            .into_iter()
            .filter(|(k, _)| spec.inputs.iter().any(|i| &i.name == k))
            .collect();
        inputs.extend(request.inputs.clone());
        let a = &mut obj.metadata.annotations;
        a.insert(keys::RERUN.into(), token.clone());
        match &mode {
            Some(mode) => a.insert(keys::RERUN_MODE.into(), mode.clone()),
            None => a.remove(keys::RERUN_MODE),
        };
        if inputs.is_empty() {
            a.remove(keys::INPUTS);
        } else {
            a.insert(
                keys::INPUTS.into(),
                serde_json::to_string(&inputs).expect("strings serialize"),
            );
        }
        Ok(Change::Write(()))
    })
    .await?;
    Ok(run_answer(&obj, &token, false))
}

// ---------------------------------------------------------------------------------
// POST approve, reject

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DecisionRequest {
    #[serde(default)]
    node: String,
    /// The run whose node this decides; needed when several runs are in progress.
    #[serde(default)]
    run: Option<u32>,
    #[serde(default)]
    message: String,
    /// Who decided (free text: a name, an agent).
    #[serde(default)]
    by: Option<String>,
}

/// `orcaops.dev/approvals` after deciding `node` in `run`: the decisions already made for
/// that run, and this one. Decisions of the other runs still in progress (`in_progress`)
/// are kept, those of runs that ended are dropped. One run's decisions are written as
/// one object, several runs' as a list of them.
pub fn merge_decision(
    existing: Option<&str>,
    run: u32,
    in_progress: &[u32],
    node: &str,
    decision: Value,
) -> Value {
    let entries = match existing.and_then(|text| serde_json::from_str::<Value>(text).ok()) {
        Some(Value::Array(entries)) => entries,
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let run_of = |v: &Value| v.get("run").and_then(Value::as_u64);
    let mut nodes = entries
        .iter()
        .find(|v| run_of(v) == Some(u64::from(run)))
        .and_then(|v| v.get("nodes").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    nodes.insert(node.to_string(), decision);
    let mut kept: Vec<Value> = entries
        .into_iter()
        .filter(|v| {
            run_of(v).is_some_and(|r| {
                r != u64::from(run) && in_progress.iter().any(|&p| u64::from(p) == r)
            })
        })
        .collect();
    kept.push(json!({ "run": run, "nodes": nodes }));
    kept.sort_by_key(|v| run_of(v));
    if kept.len() == 1 {
        kept.remove(0)
    } else {
        Value::Array(kept)
    }
}

/// "2, 3 and 5".
fn runs_list(runs: &[u32]) -> String {
    let names: Vec<String> = runs.iter().map(u32::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// The run a control request (cancel, approve, reject) acts on: the one it names, which
/// must be in progress; else the only run in progress. Several in progress and none
/// named: refused, listing them. None when no run is in progress (and none was named).
fn chosen_run(
    name: &str,
    status: &WorkflowStatus,
    asked: Option<u32>,
    how: &str,
) -> Result<Option<u32>, ApiError> {
    let in_progress = status.runs_in_progress();
    match asked {
        Some(run) if in_progress.contains(&run) => Ok(Some(run)),
        Some(run) => Err(conflict(format!(
            "run {run} of workflow {name} is not in progress ({}){}",
            if in_progress.is_empty() {
                "no run is".to_string()
            } else {
                format!("in progress: {}", runs_list(&in_progress))
            },
            if in_progress.is_empty() {
                String::new()
            } else {
                format!("; {how}")
            }
        ))),
        None if in_progress.len() > 1 => Err(conflict(format!(
            "workflow {name} has {} runs in progress ({}); say which: {how}",
            in_progress.len(),
            runs_list(&in_progress)
        ))),
        None => Ok(in_progress.first().copied()),
    }
}

/// Whether `node` can still be decided in run `asked` (or the only run in progress, or
/// the current one), as far as the status tells; answers that run.
fn check_decidable(
    name: &str,
    spec: &WorkflowSpec,
    status: &WorkflowStatus,
    node: &str,
    asked: Option<u32>,
) -> Result<u32, ApiError> {
    if node.is_empty() {
        return Err(unprocessable(
            "node",
            "say which node: {\"node\": \"deploy\", \"message\": \"...\"}",
        ));
    }
    let gates: Vec<&str> = spec
        .jobs
        .iter()
        .filter(|j| j.approval.is_some())
        .map(|j| j.name.as_str())
        .collect();
    let declared = spec.jobs.iter().find(|j| j.name == node).or_else(|| {
        naming::expand(spec)
            .into_iter()
            .find(|n| n.name == node)
            .map(|n| &spec.jobs[n.index])
    });
    let Some(declared) = declared else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "node \"{node}\" not found in workflow {name}; the nodes with an approval gate are: {}",
                if gates.is_empty() {
                    "none".to_string()
                } else {
                    gates.join(", ")
                }
            ),
        ));
    };
    if declared.approval.is_none() {
        return Err(conflict(format!(
            "node \"{node}\" of workflow {name} has no approval gate (spec.jobs[].approval), so nothing waits for a decision; the nodes with one are: {}",
            if gates.is_empty() {
                "none".to_string()
            } else {
                gates.join(", ")
            }
        )));
    }
    if status.run.is_none() {
        return Err(conflict(format!(
            "workflow {name} has not started a run yet; nothing waits for approval"
        )));
    }
    let how = format!(
        "orcaops approve workflow {name} {node} --run N (REST: {{\"node\": \"{node}\", \"run\": N}})"
    );
    let chosen = chosen_run(name, status, asked, &how)?;
    // The run's own status (one beside the current run has its own nodes).
    let status = &chosen
        .and_then(|run| status.run_view(run))
        .unwrap_or_else(|| status.clone());
    let run = status.run.unwrap_or_default();
    if status.phase.is_finished() {
        return Err(conflict(format!(
            "run {run} of workflow {name} has ended ({}); nothing waits for approval. Start a new run first",
            phase_str(status.phase)
        )));
    }
    // The node as the status shows it (a declared matrix node: every combination).
    let shown: Vec<_> = status
        .nodes
        .iter()
        .filter(|n| {
            n.name == node
                || naming::expand(spec)
                    .iter()
                    .any(|e| e.name == n.name && spec.jobs[e.index].name == node)
        })
        .collect();
    if !shown.is_empty() && shown.iter().all(|n| n.phase.is_finished()) {
        return Err(conflict(format!(
            "node \"{node}\" of run {run} has already ended ({}); nothing waits for approval",
            shown[0].phase.as_str()
        )));
    }
    Ok(run)
}

/// `POST .../approve` and `.../reject`: records the decision on a node of the current
/// run in `orcaops.dev/approvals`.
pub(super) async fn decide(
    state: &AppState,
    key: &ObjectKey,
    body: &Bytes,
    approved: bool,
) -> Result<Response, ApiError> {
    let request: DecisionRequest = body_of(body)?;
    let (obj, run) = change_workflow(state, key, |obj| {
        let spec = spec_of(obj)?;
        let status = status_of(obj);
        let run = check_decidable(&key.name, &spec, &status, &request.node, request.run)?;
        let decision = json!({
            "approved": approved,
            "message": request.message,
            "by": request.by.clone().unwrap_or_else(|| "api".into()),
        });
        let merged = merge_decision(
            obj.metadata
                .annotations
                .get(keys::APPROVALS)
                .map(String::as_str),
            run,
            &status.runs_in_progress(),
            &request.node,
            decision,
        );
        obj.metadata
            .annotations
            .insert(keys::APPROVALS.into(), merged.to_string());
        Ok(Change::Write(run))
    })
    .await?;
    let verb = if approved { "approved" } else { "rejected" };
    Ok(Json(json!({
        "kind": "WorkflowDecision",
        "apiVersion": "orcaops.dev/v1alpha1",
        "workflow": obj.metadata.name,
        "run": run,
        "node": request.node,
        "approved": approved,
        "message": format!("node {} of run {run} {verb}", request.node),
        "object": obj,
    }))
    .into_response())
}

// ---------------------------------------------------------------------------------
// POST cancel, GET runs

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelRequest {
    /// The run to cancel; needed when several runs are in progress.
    #[serde(default)]
    run: Option<u32>,
}

/// `POST .../workflows/{name}/cancel` (body `{"run": N}`, optional with one run in
/// progress): asks the controller to cancel that run. The runs asked for before and
/// still in progress stay in `orcaops.dev/cancel`, so two cancels in a row both count.
pub(super) async fn cancel(
    state: &AppState,
    key: &ObjectKey,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let request: CancelRequest = body_of(body)?;
    let (obj, ()) = change_workflow(state, key, |obj| {
        let status = status_of(obj);
        let how = format!(
            "orcaops cancel workflow {} --run N (REST: {{\"run\": N}})",
            key.name
        );
        match (
            status.run,
            chosen_run(&key.name, &status, request.run, &how)?,
        ) {
            (_, Some(run)) => {
                let in_progress = status.runs_in_progress();
                let mut runs: Vec<u32> = obj
                    .metadata
                    .annotations
                    .get(keys::CANCEL)
                    .map(|v| {
                        v.split(',')
                            .filter_map(|r| r.trim().parse().ok())
                            .filter(|r| *r != run && in_progress.contains(r))
                            .collect()
                    })
                    .unwrap_or_default();
                runs.push(run);
                runs.sort_unstable();
                let value: Vec<String> = runs.iter().map(u32::to_string).collect();
                obj.metadata
                    .annotations
                    .insert(keys::CANCEL.into(), value.join(","));
                Ok(Change::Write(()))
            }
            (Some(run), None) => Err(conflict(format!(
                "workflow {} has no run in progress: run {run} is {}",
                key.name,
                phase_str(status.phase)
            ))),
            (None, None) => Err(conflict(format!(
                "workflow {} has not started a run yet",
                key.name
            ))),
        }
    })
    .await?;
    Ok(Json(obj).into_response())
}

/// The runs of a Workflow: its run records, newest first; without any (a controller that
/// does not write them yet, or a cluster replica), what its status remembers.
pub(super) async fn runs(state: &AppState, key: &ObjectKey) -> Result<Response, ApiError> {
    let obj = state.objects.get(key).await?;
    let mut items = state
        .records()?
        .workflow_runs(&key.namespace, &key.name)
        .await?;
    if items.is_empty() {
        let Some(obj) = &obj else {
            return Err(ApiError::not_found(format!(
                "workflow {}/{} (and no run records of it)",
                key.namespace, key.name
            )));
        };
        items = runs_from_status(obj);
    }
    Ok(Json(json!({ "kind": "WorkflowRunList", "items": items })).into_response())
}

/// The current run (with its nodes) and the history's runs, newest first, as records.
pub fn runs_from_status(obj: &Object) -> Vec<WorkflowRunRecord> {
    let status = status_of(obj);
    let record = |run: u32| WorkflowRunRecord {
        uid: obj.metadata.uid.clone(),
        namespace: obj.metadata.namespace.clone().unwrap_or_default(),
        name: obj.metadata.name.clone(),
        run,
        generation: obj.metadata.generation,
        phase: WorkflowPhase::Pending,
        trigger: String::new(),
        token: None,
        inputs: BTreeMap::new(),
        start_time: None,
        completion_time: None,
        progress: String::new(),
        summary: String::new(),
        nodes: Vec::new(),
        spec_hash: None,
        spec: None,
    };
    let mut out = Vec::new();
    if let Some(run) = status.run {
        out.push(WorkflowRunRecord {
            phase: status.phase,
            trigger: status.run_trigger.clone().unwrap_or_default(),
            inputs: status.inputs.clone(),
            start_time: status.start_time,
            completion_time: status.completion_time,
            progress: status.progress.clone().unwrap_or_default(),
            summary: status.summary.clone().unwrap_or_default(),
            nodes: status.nodes.clone(),
            ..record(run)
        });
    }
    for active in status.active_runs.iter().rev() {
        out.push(WorkflowRunRecord {
            phase: active.phase,
            trigger: active.trigger.clone().unwrap_or_default(),
            inputs: active.inputs.clone(),
            start_time: active.start_time,
            progress: active.progress.clone().unwrap_or_default(),
            summary: active.summary.clone().unwrap_or_default(),
            nodes: active.nodes.clone(),
            ..record(active.run)
        });
    }
    for past in &status.history {
        if Some(past.run) == status.run {
            continue;
        }
        out.push(WorkflowRunRecord {
            phase: past.phase,
            trigger: past.trigger.clone().unwrap_or_default(),
            start_time: past.start_time,
            completion_time: past.completion_time,
            progress: past.progress.clone().unwrap_or_default(),
            summary: past.summary.clone().unwrap_or_default(),
            ..record(past.run)
        });
    }
    out
}
