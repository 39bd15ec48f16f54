//! The resource tools: `apply_resource`, `get_resource`, `list_resources`,
//! `delete_resource`, and `list_containers`.

use std::fmt::Write;

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

use super::compact::{self, MAX_ROWS};
use super::params::{ApplyArgs, ContainersArgs, ListArgs, ResourceArgs};
use super::{Answer, ToolError};
use crate::client::{ApiClient, ClientError, object_path, urlencode};
use crate::resources::parse::parse_documents;
use crate::resources::{Kind, ObjectKey};
use crate::store::Event;

/// What `apply_resource` calls the YAML it was given, in error positions.
const INPUT: &str = "<yaml>";

fn kind_of(s: &str) -> Result<Kind, ToolError> {
    Kind::parse(s).ok_or_else(|| {
        ToolError::new(format!(
            "unknown kind \"{s}\"; use one of job, workflow, sandbox, workspace, policy"
        ))
    })
}

fn key_of(args: &ResourceArgs) -> Result<ObjectKey, ToolError> {
    Ok(ObjectKey::new(
        kind_of(&args.kind)?,
        &args.workspace,
        &args.name,
    ))
}

/// "job default/x" or "policy x".
fn describe_key(key: &ObjectKey) -> String {
    if key.namespace.is_empty() {
        format!("{} {}", key.kind.singular(), key.name)
    } else {
        format!("{} {}/{}", key.kind.singular(), key.namespace, key.name)
    }
}

fn list_hint(key: &ObjectKey) -> String {
    if key.namespace.is_empty() {
        format!(
            "list them with list_resources(kind=\"{}\")",
            key.kind.singular()
        )
    } else {
        format!(
            "list them with list_resources(kind=\"{}\", workspace=\"{}\"), or all_workspaces=true",
            key.kind.singular(),
            key.namespace
        )
    }
}

fn not_found(key: &ObjectKey) -> ToolError {
    ToolError::new(format!(
        "{} not found; {}",
        describe_key(key),
        list_hint(key)
    ))
}

pub(super) async fn apply(client: &ApiClient, args: ApplyArgs) -> Result<Answer, ToolError> {
    let mut lines = Vec::new();
    let mut applied = Vec::new();
    let mut failed = 0;
    for doc in parse_documents(INPUT, &args.yaml) {
        let mut obj = match doc {
            Ok(obj) => obj,
            Err(e) => {
                lines.push(format!("error: {e}"));
                failed += 1;
                continue;
            }
        };
        if let Some(ws) = &args.workspace
            && obj.kind.namespaced()
        {
            obj.metadata.namespace = Some(ws.clone());
        }
        let label = format!("{}.orcaops.dev/{}", obj.kind.singular(), obj.metadata.name);
        match client.apply(&obj).await {
            Ok((_, outcome)) => {
                lines.push(format!("{label} {outcome}"));
                applied.push(json!({
                    "kind": obj.kind.as_str(),
                    "workspace": obj.metadata.namespace,
                    "name": obj.metadata.name,
                    "outcome": outcome,
                }));
            }
            Err(e @ ClientError::Unreachable(_)) => return Err(e.into()),
            Err(e) => {
                lines.push(format!("error: {label}: {e}"));
                failed += 1;
            }
        }
    }
    if applied.is_empty() && failed == 0 {
        return Err(ToolError::new(
            "no resources in the YAML: each document needs apiVersion: orcaops.dev/v1alpha1, kind, metadata.name and spec",
        ));
    }
    if failed > 0 {
        let mut text = lines.join("\n");
        let _ = write!(
            text,
            "\n{failed} document(s) failed{}; fix them and apply again (applying is idempotent).",
            if applied.is_empty() {
                String::new()
            } else {
                format!(", {} applied", applied.len())
            }
        );
        return Err(ToolError::new(text));
    }
    Ok(Answer {
        text: lines.join("\n"),
        structured: json!({ "applied": applied }),
    })
}

/// The newest few events of an object, one line each.
async fn recent_events(client: &ApiClient, key: &ObjectKey) -> Vec<String> {
    let selector = urlencode(&format!(
        "involvedObject.kind={},involvedObject.name={}",
        key.kind, key.name
    ));
    let path = if key.namespace.is_empty() {
        format!("/api/v1/events?fieldSelector={selector}&limit=5")
    } else {
        format!(
            "/api/v1/namespaces/{}/events?fieldSelector={selector}&limit=5",
            key.namespace
        )
    };
    let events: Vec<Event> = client
        .json(Method::GET, &path, None)
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v.get("items").cloned()?).ok())
        .unwrap_or_default();
    let now = Utc::now();
    events
        .iter()
        .map(|e| {
            format!(
                "{:?} {} ({}x, {} ago): {}",
                e.type_,
                e.reason,
                e.count,
                compact::age(Some(e.last_timestamp), now),
                compact::clip(&e.message.replace('\n', " "), 200)
            )
        })
        .collect()
}

pub(super) async fn get(client: &ApiClient, args: ResourceArgs) -> Result<Answer, ToolError> {
    let key = key_of(&args)?;
    let obj = client
        .find_object(&key)
        .await?
        .ok_or_else(|| not_found(&key))?;
    let mut summary = compact::object_summary(&obj, Utc::now());
    let events = recent_events(client, &key).await;
    if !events.is_empty() {
        summary["events"] = json!(events);
    }
    Ok(Answer {
        text: format!(
            "{}\n{}",
            compact::headline(&obj),
            serde_json::to_string_pretty(&summary).expect("JSON serializes")
        ),
        structured: summary,
    })
}

pub(super) async fn list(client: &ApiClient, args: ListArgs) -> Result<Answer, ToolError> {
    let kind = kind_of(&args.kind)?;
    let every = args.all_workspaces || !kind.namespaced();
    let ns = (!every).then_some(args.workspace.as_str());
    let (mut items, _) = client
        .list(kind, ns, args.label_selector.as_deref())
        .await?;
    let total = items.len();
    let where_ = match ns {
        Some(ns) => format!(" in workspace {ns}"),
        None if kind.namespaced() => " in all workspaces".into(),
        None => String::new(),
    };
    let selector = args
        .label_selector
        .as_deref()
        .map_or(String::new(), |s| format!(" with labels {s}"));
    if items.is_empty() {
        let hint = if kind.namespaced() && !every {
            "; try all_workspaces=true"
        } else {
            ""
        };
        return Ok(Answer {
            text: format!("no {}{where_}{selector}{hint}", kind.plural()),
            structured: json!({ "kind": kind.as_str(), "count": 0, "items": [] }),
        });
    }
    items.truncate(MAX_ROWS);
    let now = Utc::now();
    let rows = compact::list_rows(&items, every && kind.namespaced(), now);
    let title = format!(
        "{}{where_}{selector}",
        compact::count(total, kind.singular(), kind.plural())
    );
    let text = compact::listing(
        &title,
        &rows,
        total,
        "; narrow the list with label_selector",
    );
    let structured_items: Vec<Value> = rows[1..]
        .iter()
        .map(|row| {
            let header = &rows[0];
            Value::Object(
                header
                    .iter()
                    .zip(row)
                    .map(|(h, v)| (h.to_lowercase(), json!(v)))
                    .collect(),
            )
        })
        .collect();
    Ok(Answer {
        text,
        structured: json!({
            "kind": kind.as_str(),
            "count": total,
            "truncated": total > MAX_ROWS,
            "items": structured_items,
        }),
    })
}

pub(super) async fn delete(client: &ApiClient, args: ResourceArgs) -> Result<Answer, ToolError> {
    let key = key_of(&args)?;
    delete_object(client, &key, not_found).await?;
    let note = if key.kind == Kind::Job {
        " (its containers are removed; its run records and logs stay readable with get_logs)"
    } else {
        ""
    };
    Ok(Answer {
        text: format!("{} deleted{note}", describe_key(&key)),
        structured: json!({
            "deleted": { "kind": key.kind.as_str(), "workspace": key.namespace, "name": key.name }
        }),
    })
}

pub(super) async fn containers(
    client: &ApiClient,
    args: ContainersArgs,
) -> Result<Answer, ToolError> {
    let list = client
        .json(Method::GET, "/apis/orcaops.dev/v1alpha1/containers", None)
        .await
        .map_err(|e| match e {
            ClientError::NotFound(_) => ToolError::new(
                "this orcaops server has no containers endpoint; upgrade it to list containers",
            ),
            e => e.into(),
        })?;
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            args.workspace
                .as_deref()
                .is_none_or(|ws| c.pointer("/owner/workspace").and_then(Value::as_str) == Some(ws))
        })
        .collect();
    if items.is_empty() {
        return Ok(Answer {
            text: "no containers: nothing is running (finished jobs' containers are removed once their logs are saved)".into(),
            structured: json!({ "count": 0, "items": [] }),
        });
    }
    let s = |c: &Value, p: &str| match c.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".into(),
    };
    let mut rows = vec![
        ["ID", "STATE", "RESOURCE", "RUN", "ATTEMPT", "CONTAINER"]
            .map(String::from)
            .to_vec(),
    ];
    for c in items.iter().take(MAX_ROWS) {
        let mut state = s(c, "/state");
        if let Some(code) = c.get("exitCode").and_then(Value::as_i64) {
            let _ = write!(state, " ({code})");
        }
        let owner = match s(c, "/owner/workspace").as_str() {
            "-" => format!(
                "{} {}",
                s(c, "/owner/kind").to_lowercase(),
                s(c, "/owner/name")
            ),
            ws => format!(
                "{} {ws}/{}",
                s(c, "/owner/kind").to_lowercase(),
                s(c, "/owner/name")
            ),
        };
        rows.push(vec![
            s(c, "/id").chars().take(12).collect(),
            state,
            owner,
            s(c, "/owner/run"),
            s(c, "/owner/attempt"),
            s(c, "/name"),
        ]);
    }
    let title = format!(
        "{} owned by orcaops",
        compact::count(items.len(), "container", "containers")
    );
    let text = compact::listing(&title, &rows, items.len(), "");
    Ok(Answer {
        text,
        structured: json!({ "count": items.len(), "items": items.iter().take(MAX_ROWS).collect::<Vec<_>>() }),
    })
}

/// Deletes the object; a missing one is `missing(key)`, the tool's own words for it.
pub(super) async fn delete_object(
    client: &ApiClient,
    key: &ObjectKey,
    missing: fn(&ObjectKey) -> ToolError,
) -> Result<(), ToolError> {
    client
        .request(Method::DELETE, &object_path(key), None)
        .await
        .map(drop)
        .map_err(|e| match e {
            ClientError::NotFound(_) => missing(key),
            e => e.into(),
        })
}
