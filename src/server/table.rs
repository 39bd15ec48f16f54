//! Server-side printing: `meta.k8s.io/v1` Tables, which kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints as they come.
//!
//! The columns are the CRD's `additionalPrinterColumns`, evaluated as the Kubernetes API
//! server does for custom resources, so `kubectl get jobs` shows the same columns against
//! local mode as on a cluster. Tables are made by a middleware from the JSON the handlers
//! answer (a list, one object, or a watch stream), so no handler knows about them.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::resources::columns::find;
use crate::resources::{Kind, registry};

/// What the client asked for besides the rows: `?includeObject=None|Metadata|Object`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// A request for a Table: which meta.k8s.io version, and what each row carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TableRequest {
    pub version: &'static str,
    pub include: IncludeObject,
}

/// The first media type of `Accept` that names a Table (`as=Table;g=meta.k8s.io;v=v1`), or
/// None when the client wants plain JSON. kubectl lists Table first, then plain JSON.
pub(super) fn requested(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<TableRequest>, ApiError> {
    let version = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(table_version);
    let Some(version) = version else {
        return Ok(None);
    };
    let include = match query_param(query, "includeObject").as_deref() {
        None | Some("" | "Metadata") => IncludeObject::Metadata,
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unrecognized includeObject value: \"{other}\"; use None, Metadata or Object"
            )));
        }
    };
    Ok(Some(TableRequest { version, include }))
}

/// `v1` or `v1beta1` when one media type of Accept names a meta.k8s.io Table.
fn table_version(media: &str) -> Option<&'static str> {
    let mut params = media.split(';').map(str::trim);
    if params.next() != Some("application/json") {
        return None;
    }
    let (mut as_, mut g, mut v) = (None, None, None);
    for p in params {
        match p.split_once('=') {
            Some(("as", x)) => as_ = Some(x),
            Some(("g", x)) => g = Some(x),
            Some(("v", x)) => v = Some(x),
            _ => {}
        }
    }
    match (as_, g, v) {
        (Some("Table"), Some("meta.k8s.io"), Some("v1")) => Some("v1"),
        (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => Some("v1beta1"),
        _ => None,
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.to_string())
    })
}

/// One column: its definition as sent, and how to fill it.
struct Column {
    definition: Value,
    json_path: String,
    type_: String,
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

fn name_column() -> Value {
    json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": NAME_DESCRIPTION,
        "priority": 0,
    })
}

/// Name, then the CRD's printer columns, as the API server builds them for a custom resource.
fn columns(kind: Kind) -> Vec<Column> {
    registry::printer_columns(kind)
        .iter()
        .cloned()
        .map(|c| Column {
            definition: json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format.clone().unwrap_or_default(),
                "description": c.description.clone().unwrap_or_else(|| format!(
                    "Custom resource definition column (in JSONPath format): {}",
                    c.json_path
                )),
                "priority": c.priority.unwrap_or(0),
            }),
            json_path: c.json_path,
            type_: c.type_,
        })
        .collect()
}

/// A cell as the API server's CRD table convertor makes it from a column's type.
fn cell(type_: &str, value: Option<&Value>, now: DateTime<Utc>) -> Value {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    match (type_, value) {
        ("string", Value::String(s)) => json!(s),
        ("string", other) => json!(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => json!(human_duration(now - t.with_timezone(&Utc))),
            Err(_) => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// Kubernetes' `duration.HumanDuration`: two or three significant figures, as kubectl
/// prints ages (`45s`, `3m12s`, `5h2m`, `12d`).
pub(super) fn human_duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The row's `object`: PartialObjectMetadata by default, as the API server sends.
fn row_object(object: &Value, request: TableRequest) -> Option<Value> {
    match request.include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(object.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": format!("meta.k8s.io/{}", request.version),
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

fn row(cells: Vec<Value>, object: &Value, request: TableRequest) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(cells));
    if let Some(object) = row_object(object, request) {
        row.insert("object".into(), object);
    }
    Value::Object(row)
}

fn table(columns: Vec<Value>, rows: Vec<Value>, metadata: Value, request: TableRequest) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{}", request.version),
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// A Table of objects of one kind; `metadata` is the list's (resourceVersion, continue).
pub(super) fn object_table(
    kind: Kind,
    objects: &[Value],
    metadata: Value,
    request: TableRequest,
    now: DateTime<Utc>,
) -> Value {
    let columns = columns(kind);
    let rows = objects
        .iter()
        .map(|object| {
            let name = object
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            let cells = std::iter::once(name)
                .chain(
                    columns
                        .iter()
                        .map(|c| cell(&c.type_, find(object, &c.json_path), now)),
                )
                .collect();
            row(cells, object, request)
        })
        .collect();
    let definitions = std::iter::once(name_column())
        .chain(columns.into_iter().map(|c| c.definition))
        .collect();
    table(definitions, rows, metadata, request)
}

/// A Table of events, with the columns `kubectl get events` shows on a cluster.
fn event_table(
    events: &[Value],
    metadata: Value,
    request: TableRequest,
    now: DateTime<Utc>,
) -> Value {
    let column = |name: &str, type_: &str, priority: u8, description: &str| json!({ "name": name, "type": type_, "format": "", "description": description, "priority": priority });
    let definitions = vec![
        column("Last Seen", "string", 0, "When the event last happened"),
        column("Type", "string", 0, "Normal or Warning"),
        column(
            "Reason",
            "string",
            0,
            "Why the event happened, in one CamelCase word",
        ),
        column(
            "Object",
            "string",
            0,
            "The object (or file) the event is about",
        ),
        column("Message", "string", 0, "What happened, for a human"),
        column("Count", "integer", 1, "How many times it happened"),
        column("First Seen", "string", 1, "When the event first happened"),
    ];
    let rows = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let text = |pointer: &str| event.pointer(pointer).cloned().unwrap_or(Value::Null);
            let age = |pointer: &str| cell("date", event.pointer(pointer), now);
            let involved = format!(
                "{}/{}",
                event
                    .pointer("/involvedObject/kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
                event
                    .pointer("/involvedObject/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
            let cells = vec![
                age("/lastTimestamp"),
                text("/type"),
                text("/reason"),
                json!(involved),
                text("/message"),
                text("/count"),
                age("/firstTimestamp"),
            ];
            // Stored events have no name of their own; kubectl needs one per row.
            let mut object = event.clone();
            if object.get("metadata").is_none() {
                let namespace = event.pointer("/involvedObject/namespace").cloned();
                object["metadata"] = json!({
                    "name": format!("{}.{}", involved.replace('/', "."), i + 1),
                    "namespace": namespace.filter(|n| n.as_str() != Some("")),
                });
            }
            row(cells, &object, request)
        })
        .collect();
    table(definitions, rows, metadata, request)
}

/// The Table for a JSON body a handler answered: a list, one object, or None when the
/// body is not something Tables are made of (then it goes out unchanged).
pub(super) fn convert(body: &Value, request: TableRequest, now: DateTime<Utc>) -> Option<Value> {
    let kind_field = body.get("kind")?.as_str()?;
    let list_metadata = || body.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if kind_field == "EventList" {
        let items = body.get("items")?.as_array()?;
        return Some(event_table(items, list_metadata(), request, now));
    }
    if kind_field == "SecretList" || kind_field == "Secret" {
        return super::secrets::table(body, request, now);
    }
    if let Some(kind) = kind_field
        .strip_suffix("List")
        .and_then(Kind::from_kind_field)
    {
        let items = body.get("items")?.as_array()?;
        return Some(object_table(kind, items, list_metadata(), request, now));
    }
    let kind = Kind::from_kind_field(kind_field)?;
    let rv = body.pointer("/metadata/resourceVersion").cloned();
    let metadata = json!({ "resourceVersion": rv.unwrap_or(json!("")) });
    Some(object_table(
        kind,
        std::slice::from_ref(body),
        metadata,
        request,
        now,
    ))
}

/// One line of a watch stream with its object turned into a one-row Table. BOOKMARK and
/// ERROR events, and lines that are not events, pass unchanged.
fn convert_event_line(line: &[u8], request: TableRequest) -> Vec<u8> {
    let Ok(mut event) = serde_json::from_slice::<Value>(line) else {
        return line.to_vec();
    };
    let is_change = matches!(
        event.get("type").and_then(Value::as_str),
        Some("ADDED" | "MODIFIED" | "DELETED")
    );
    let converted = is_change
        .then(|| event.get("object"))
        .flatten()
        .and_then(|object| convert(object, request, Utc::now()));
    match converted {
        Some(table) => {
            event["object"] = table;
            let mut out = serde_json::to_vec(&event).unwrap_or_default();
            out.push(b'\n');
            out
        }
        None => line.to_vec(),
    }
}

fn convert_watch(body: Body, request: TableRequest) -> Body {
    let mut pending: Vec<u8> = Vec::new();
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        pending.extend_from_slice(&chunk);
        let mut out = Vec::new();
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            out.extend(convert_event_line(&line, request));
        }
        Ok::<_, axum::Error>(Bytes::from(out))
    });
    Body::from_stream(stream)
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// Turns the JSON answers of GET requests into Tables when the client asked for one.
pub(super) async fn middleware(request: Request, next: Next) -> Response {
    if request.method() != Method::GET {
        return next.run(request).await;
    }
    let query = request.uri().query().map(str::to_string);
    let table_request = match requested(request.headers(), query.as_deref()) {
        Ok(Some(t)) => t,
        Ok(None) => return next.run(request).await,
        Err(e) => return e.into_response(),
    };
    let watch = matches!(
        query_param(query.as_deref(), "watch").as_deref(),
        Some("true" | "1")
    );
    let response = next.run(request).await;
    if !response.status().is_success() || !is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    if watch {
        return Response::from_parts(parts, convert_watch(body, table_request));
    }
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("reading the response to convert it to a Table: {e}"),
            )
            .into_response();
        }
    };
    let converted = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| convert(&v, table_request, Utc::now()));
    let mut response = match converted {
        Some(table) => Response::from_parts(parts, Body::from(table.to_string())),
        None => Response::from_parts(parts, Body::from(bytes)),
    };
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

#[cfg(test)]
mod tests;
