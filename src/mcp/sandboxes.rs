//! The sandbox lifecycle tools: `create_sandbox` (from a template, waiting until it is
//! Ready), `list_sandboxes`, `stop_sandbox`, `start_sandbox` and `delete_sandbox`.

use std::fmt::Write;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::compact::{self, MAX_ROWS};
use super::params::{CreateSandboxArgs, ListSandboxesArgs, SandboxArgs, StartSandboxArgs};
use super::{Answer, ToolError};
use crate::client::{ApiClient, Change, ClientError, ResumingWatch, collection_path, object_path};
use crate::resources::sandbox::{SandboxPhase, SandboxSpec, SandboxStatus};
use crate::resources::{Kind, Object, ObjectKey};

const DEFAULT_WAIT_SECS: u64 = 120;
const MAX_WAIT_SECS: u64 = 600;

pub(super) fn sandbox_key(workspace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(Kind::Sandbox, workspace, name)
}

/// `sandbox="x"`, with the workspace when it is not the default one: the arguments a
/// follow-up call needs.
pub(super) fn call_args(key: &ObjectKey) -> String {
    if key.namespace == crate::resources::DEFAULT_WORKSPACE {
        format!("sandbox=\"{}\"", key.name)
    } else {
        format!("sandbox=\"{}\", workspace=\"{}\"", key.name, key.namespace)
    }
}

fn status_of(obj: &Object) -> SandboxStatus {
    serde_json::from_value(obj.status.clone()).unwrap_or_default()
}

fn phase_of(obj: &Object) -> SandboxPhase {
    status_of(obj).phase.unwrap_or(SandboxPhase::Pending)
}

/// A sandbox that does not exist, and how to find the right one.
pub(super) fn not_found(key: &ObjectKey) -> ToolError {
    ToolError::new(format!(
        "sandbox {}/{} not found; list them with list_sandboxes(workspace=\"{}\"), or create one with create_sandbox(template=...)",
        key.namespace, key.name, key.namespace
    ))
}

/// A failed API call as a tool error; a 404 names the sandbox and how to list them.
pub(super) fn api_error(key: &ObjectKey, e: ClientError) -> ToolError {
    match e {
        ClientError::NotFound(message)
            if message.contains("sandbox") && message.contains("not found") =>
        {
            not_found(key)
        }
        e => ToolError::from(e),
    }
}

/// The facts about a sandbox an agent acts on: phase, services and where they listen,
/// and when it expires.
pub(super) fn describe(obj: &Object) -> (String, Value) {
    let key = obj.key();
    let spec: SandboxSpec = serde_json::from_value(obj.spec.clone()).unwrap_or_default();
    let status = status_of(obj);
    let phase = status.phase.unwrap_or(SandboxPhase::Pending);
    let mut text = format!(
        "sandbox {}/{} is {}",
        key.namespace,
        key.name,
        phase.as_str()
    );
    if let Some(template) = &spec.template_ref {
        let _ = write!(text, " (template {template})");
    }
    if let Some(message) = status
        .message
        .as_deref()
        .filter(|_| phase != SandboxPhase::Ready)
    {
        let _ = write!(text, ": {}", compact::clip(message, 300));
    }
    text.push('\n');
    let mut services = Vec::new();
    let mut lines = Vec::new();
    for s in &status.services {
        let endpoints: Vec<String> = s
            .endpoints
            .iter()
            .map(|e| {
                let name = e
                    .name
                    .as_deref()
                    .map(|n| format!("{n} "))
                    .unwrap_or_default();
                format!("{name}{}:{}->{}", e.host_ip, e.host_port, e.container_port)
            })
            .collect();
        let mut line = format!(
            "{} ({}",
            s.name,
            if s.ready { "ready" } else { "not ready" }
        );
        if !endpoints.is_empty() {
            let _ = write!(line, "; {}", endpoints.join(", "));
        }
        line.push(')');
        lines.push(line);
        services.push(json!({
            "name": s.name,
            "ready": s.ready,
            "state": s.state,
            "endpoints": s.endpoints,
        }));
    }
    if !lines.is_empty() {
        let _ = writeln!(text, "services: {}", lines.join(", "));
    }
    if let Some(at) = status.expires_at {
        let why = status.expiry_reason.as_deref().unwrap_or("deadline");
        let _ = writeln!(
            text,
            "expires: {} ({}, {why})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            crate::client::format::until(at)
        );
    }
    let structured = json!({
        "sandbox": key.name,
        "workspace": key.namespace,
        "phase": phase.as_str(),
        "template": spec.template_ref,
        "message": status.message,
        "services": services,
        "expiresAt": status.expires_at,
        "expiryReason": status.expiry_reason,
    });
    (text, structured)
}

fn next_steps(key: &ObjectKey) -> String {
    let args = call_args(key);
    format!(
        "Next: exec_in_sandbox({args}, command=\"...\"), write_file({args}, path=..., content=...), read_file({args}, path=...); stop_sandbox or delete_sandbox({args}) when done."
    )
}

enum Waited {
    Ready(Object),
    Failed(Object),
    StillWaiting(Object),
    Deleted,
}

/// Waits on a watch of the sandbox until it is Ready or Failed, or the wait ends.
async fn wait_ready(
    client: &ApiClient,
    mut current: Object,
    max_wait: Duration,
    cancelled: &CancellationToken,
) -> Result<Waited, ToolError> {
    let key = current.key();
    let deadline = tokio::time::Instant::now() + max_wait;
    let by_name = format!("metadata.name={}", key.name);
    let mut watch = ResumingWatch::new(
        client.clone(),
        Kind::Sandbox,
        Some(&key.namespace),
        None,
        Some(&by_name),
        &current.metadata.resource_version,
    );
    loop {
        match phase_of(&current) {
            SandboxPhase::Ready => return Ok(Waited::Ready(current)),
            SandboxPhase::Failed => return Ok(Waited::Failed(current)),
            _ => {}
        }
        let change = tokio::select! {
            change = tokio::time::timeout_at(deadline, watch.next()) => change,
            _ = cancelled.cancelled() => {
                return Err(ToolError::new(format!(
                    "the wait was cancelled by the client; sandbox {} keeps starting",
                    key.name
                )));
            }
        };
        match change {
            Err(_) => return Ok(Waited::StillWaiting(current)),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(Change::Event { type_, .. })) if type_ == "DELETED" => {
                return Ok(Waited::Deleted);
            }
            Ok(Ok(Change::Event { object, .. })) => current = *object,
            Ok(Ok(Change::Relisted(mut objects))) => match objects.pop() {
                Some(obj) => current = obj,
                None => return Ok(Waited::Deleted),
            },
        }
    }
}

/// The answer once a sandbox was (re)started: Ready, failed, or still starting.
async fn wait_and_answer(
    client: &ApiClient,
    obj: Object,
    max_wait_seconds: Option<u64>,
    verb: &str,
    cancelled: &CancellationToken,
) -> Result<Answer, ToolError> {
    let key = obj.key();
    let max_wait = Duration::from_secs(
        max_wait_seconds
            .unwrap_or(DEFAULT_WAIT_SECS)
            .clamp(1, MAX_WAIT_SECS),
    );
    let started = Instant::now();
    match wait_ready(client, obj, max_wait, cancelled).await? {
        Waited::Ready(obj) => {
            let (mut text, mut structured) = describe(&obj);
            let took = compact::duration(u64::try_from(started.elapsed().as_millis()).unwrap_or(0));
            // "... is Ready (template t)" becomes "... is Ready (template t; created in 180ms)".
            let (headline, rest) = text.split_once('\n').unwrap_or((&text, ""));
            let headline = match headline.strip_suffix(')') {
                Some(open) => format!("{open}; {verb} in {took})"),
                None => format!("{headline} ({verb} in {took})"),
            };
            text = format!("{headline}\n{rest}");
            text.push_str(&next_steps(&key));
            structured["ready"] = json!(true);
            Ok(Answer { text, structured })
        }
        Waited::Failed(obj) => {
            let (text, _) = describe(&obj);
            Err(ToolError::new(format!(
                "{text}It did not start. See why with get_resource(kind=\"sandbox\", name=\"{}\"); fix the template and create another, or delete_sandbox({}).",
                key.name,
                call_args(&key)
            )))
        }
        Waited::StillWaiting(obj) => {
            let (mut text, mut structured) = describe(&obj);
            let _ = write!(
                text,
                "It is not Ready after {}s and keeps starting. Check again with get_resource(kind=\"sandbox\", name=\"{}\"), or start_sandbox({}) to wait again.",
                max_wait.as_secs(),
                key.name,
                call_args(&key)
            );
            structured["ready"] = json!(false);
            Ok(Answer { text, structured })
        }
        Waited::Deleted => Err(ToolError::new(format!(
            "sandbox {}/{} was deleted while starting (an expiry with onExpiry: Delete, or someone deleted it)",
            key.namespace, key.name
        ))),
    }
}

/// The template names of a workspace, for an error that lists them.
async fn template_names(client: &ApiClient, workspace: &str) -> Vec<String> {
    client
        .list(Kind::SandboxTemplate, Some(workspace), None)
        .await
        .map(|(items, _)| items.into_iter().map(|o| o.metadata.name).collect())
        .unwrap_or_default()
}

pub(super) async fn create(
    client: &ApiClient,
    args: CreateSandboxArgs,
    cancelled: &CancellationToken,
) -> Result<Answer, ToolError> {
    let template_key = ObjectKey::new(Kind::SandboxTemplate, &args.workspace, &args.template);
    if client.find_object(&template_key).await?.is_none() {
        let names = template_names(client, &args.workspace).await;
        let have = if names.is_empty() {
            "there are none: apply one with apply_resource (kind SandboxTemplate)".to_string()
        } else {
            format!("its templates are: {}", names.join(", "))
        };
        return Err(ToolError::new(format!(
            "no SandboxTemplate \"{}\" in workspace {}; {have}",
            args.template, args.workspace
        )));
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("sb-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]));
    let spec = SandboxSpec {
        template_ref: Some(args.template.clone()),
        idle_timeout_seconds: args.idle_timeout_seconds,
        ttl_seconds: args.ttl_seconds,
        ..Default::default()
    };
    let obj = Object::new(
        Kind::Sandbox,
        &args.workspace,
        &name,
        serde_json::to_value(spec).expect("a spec serializes"),
    );
    let key = obj.key();
    let body = serde_json::to_vec(&obj).expect("an object serializes");
    let created = client
        .json(
            Method::POST,
            &collection_path(Kind::Sandbox, Some(&args.workspace)),
            Some(("application/json", body)),
        )
        .await
        .map_err(|e| {
            if e.to_string().contains("already exists") {
                ToolError::new(format!(
                    "sandbox {}/{name} already exists; use it with exec_in_sandbox({}, command=...), or choose another name (or leave name out for a generated one)",
                    args.workspace,
                    call_args(&key)
                ))
            } else {
                ToolError::from(e)
            }
        })?;
    let created: Object = serde_json::from_value(created)
        .map_err(|e| ToolError::new(format!("unexpected answer to create: {e}")))?;
    if !args.wait.unwrap_or(true) {
        let (mut text, structured) = describe(&created);
        let _ = write!(
            text,
            "Created; it starts now. Check with get_resource(kind=\"sandbox\", name=\"{name}\") until it is Ready. {}",
            next_steps(&key)
        );
        return Ok(Answer { text, structured });
    }
    wait_and_answer(client, created, args.max_wait_seconds, "created", cancelled).await
}

fn expires(obj: &Object, now: DateTime<Utc>) -> String {
    match status_of(obj).expires_at {
        Some(at) if at > now => format!("in {}", crate::client::format::age_since(now, at)),
        Some(_) => "due".into(),
        None => "-".into(),
    }
}

pub(super) async fn list(client: &ApiClient, args: ListSandboxesArgs) -> Result<Answer, ToolError> {
    let ns = (!args.all_workspaces).then_some(args.workspace.as_str());
    let (items, _) = client.list(Kind::Sandbox, ns, None).await?;
    let where_ = match ns {
        Some(ns) => format!(" in workspace {ns}"),
        None => " in all workspaces".into(),
    };
    if items.is_empty() {
        return Ok(Answer {
            text: format!(
                "no sandboxes{where_}; create one with create_sandbox(template=...) (templates: list_resources(kind=\"sandboxtemplate\"))"
            ),
            structured: json!({ "count": 0, "items": [] }),
        });
    }
    let now = Utc::now();
    let mut header = Vec::new();
    if ns.is_none() {
        header.push("WORKSPACE");
    }
    header.extend(["NAME", "PHASE", "TEMPLATE", "EXPIRES", "AGE"]);
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    let mut structured = Vec::new();
    for obj in items.iter().take(MAX_ROWS) {
        let spec: SandboxSpec = serde_json::from_value(obj.spec.clone()).unwrap_or_default();
        let template = spec.template_ref.clone().unwrap_or_else(|| "-".into());
        let phase = phase_of(obj).as_str();
        let mut row = Vec::new();
        if ns.is_none() {
            row.push(obj.metadata.namespace.clone().unwrap_or_default());
        }
        row.extend([
            obj.metadata.name.clone(),
            phase.to_string(),
            template.clone(),
            expires(obj, now),
            compact::age(obj.metadata.creation_timestamp, now),
        ]);
        rows.push(row);
        structured.push(json!({
            "sandbox": obj.metadata.name,
            "workspace": obj.metadata.namespace,
            "phase": phase,
            "template": spec.template_ref,
            "expiresAt": status_of(obj).expires_at,
        }));
    }
    let title = format!(
        "{}{where_}",
        compact::count(items.len(), "sandbox", "sandboxes")
    );
    let text = compact::listing(&title, &rows, items.len(), "");
    Ok(Answer {
        text,
        structured: json!({ "count": items.len(), "items": structured }),
    })
}

pub(super) async fn stop(client: &ApiClient, args: SandboxArgs) -> Result<Answer, ToolError> {
    let key = sandbox_key(&args.workspace, &args.sandbox);
    client
        .json(Method::POST, &format!("{}/stop", object_path(&key)), None)
        .await
        .map_err(|e| api_error(&key, e))?;
    Ok(Answer {
        text: format!(
            "sandbox {}/{} is stopping: its containers stop, their files and volumes are kept. start_sandbox({}) brings it back.",
            key.namespace,
            key.name,
            call_args(&key)
        ),
        structured: json!({ "sandbox": key.name, "workspace": key.namespace, "state": "Stopped" }),
    })
}

pub(super) async fn start(
    client: &ApiClient,
    args: StartSandboxArgs,
    cancelled: &CancellationToken,
) -> Result<Answer, ToolError> {
    let key = sandbox_key(&args.workspace, &args.sandbox);
    let obj = client
        .json(Method::POST, &format!("{}/start", object_path(&key)), None)
        .await
        .map_err(|e| api_error(&key, e))?;
    let obj: Object = serde_json::from_value(obj)
        .map_err(|e| ToolError::new(format!("unexpected answer to start: {e}")))?;
    if !args.wait.unwrap_or(true) {
        let (mut text, structured) = describe(&obj);
        let _ = write!(text, "Start requested. {}", next_steps(&key));
        return Ok(Answer { text, structured });
    }
    // The object just written may still show the old phase (Ready before a stop took
    // effect): wait for the controller to have seen the start.
    wait_and_answer(client, obj, args.max_wait_seconds, "started", cancelled).await
}

pub(super) async fn delete(client: &ApiClient, args: SandboxArgs) -> Result<Answer, ToolError> {
    let key = sandbox_key(&args.workspace, &args.sandbox);
    super::objects::delete_object(client, &key, not_found).await?;
    Ok(Answer {
        text: format!(
            "sandbox {}/{} deleted (its containers, network and volumes are removed)",
            key.namespace, key.name
        ),
        structured: json!({ "deleted": { "sandbox": key.name, "workspace": key.namespace } }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(status: Value) -> Object {
        let mut obj = Object::new(
            Kind::Sandbox,
            "default",
            "box",
            json!({"templateRef": "web"}),
        );
        obj.status = status;
        obj
    }

    #[test]
    fn a_ready_sandbox_reads_in_two_lines() {
        let at = Utc::now() + chrono::Duration::minutes(10);
        let (text, structured) = describe(&sandbox(json!({
            "phase": "Ready",
            "services": [
                {"name": "api", "ready": true, "endpoints": [{"name": "http", "containerPort": 8080, "hostIp": "127.0.0.1", "hostPort": 49153}]},
                {"name": "client", "ready": true},
            ],
            "expiresAt": at,
            "expiryReason": "idle",
        })));
        assert!(
            text.starts_with("sandbox default/box is Ready (template web)\n"),
            "{text}"
        );
        assert!(
            text.contains("api (ready; http 127.0.0.1:49153->8080), client (ready)"),
            "{text}"
        );
        assert!(text.contains("idle)"), "{text}");
        assert_eq!(structured["services"][0]["endpoints"][0]["hostPort"], 49153);
        assert_eq!(structured["phase"], "Ready");
    }

    #[test]
    fn a_sandbox_without_status_is_pending() {
        let (text, structured) = describe(&sandbox(Value::Null));
        assert!(text.starts_with("sandbox default/box is Pending"));
        assert_eq!(structured["phase"], "Pending");
    }

    #[test]
    fn follow_ups_name_the_workspace_only_when_needed() {
        assert_eq!(call_args(&sandbox_key("default", "a")), "sandbox=\"a\"");
        assert_eq!(
            call_args(&sandbox_key("team", "a")),
            "sandbox=\"a\", workspace=\"team\""
        );
    }
}
