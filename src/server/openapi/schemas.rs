//! The component schemas: the six kinds from their CRDs, their lists, and the
//! Kubernetes metadata and Status schemas from k8s-openapi.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{Map, Value, json};

use super::schema_name;
use crate::resources::{API_VERSION, GROUP, Kind, VERSION, registry};

pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(super) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(super) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(super) const WATCH_EVENT: &str = "dev.orcaops.v1alpha1.WatchEvent";
pub(super) const EVENT_LIST: &str = "dev.orcaops.v1alpha1.EventList";
pub(super) const EXEC_REQUEST: &str = "dev.orcaops.v1alpha1.SandboxExecRequest";
pub(super) const EXEC_RESULT: &str = "dev.orcaops.v1alpha1.SandboxExecResult";
pub(super) const EXEC_STREAM_EVENT: &str = "dev.orcaops.v1alpha1.SandboxExecStreamEvent";
pub(super) const FILE_UPLOAD: &str = "dev.orcaops.v1alpha1.SandboxFileUpload";

/// The schema of one kind: its CRD's, plus apiVersion, kind and metadata, as the
/// Kubernetes API server publishes a CRD.
pub(super) fn kind_schema(kind: Kind) -> Value {
    let mut schema = registry::schema(kind)
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| json!({ "type": "object" }));
    let properties = schema
        .as_object_mut()
        .expect("a CRD schema is an object")
        .entry("properties")
        .or_insert_with(|| json!({}));
    properties["apiVersion"] = json!({
        "description": format!("APIVersion: always {API_VERSION}."),
        "type": "string",
    });
    properties["kind"] = json!({
        "description": format!("Kind: always {kind}."),
        "type": "string",
    });
    properties["metadata"] = json!({
        "description": "Standard object's metadata: name, namespace (the workspace), labels, annotations; uid, resourceVersion, generation and creationTimestamp are set by the server.",
        "allOf": [{ "$ref": format!("#/components/schemas/{OBJECT_META}") }],
    });
    schema["description"] = json!(registry::description(kind));
    schema["x-kubernetes-group-version-kind"] =
        json!([{ "group": GROUP, "version": VERSION, "kind": kind.as_str() }]);
    schema
}

pub(super) fn list_schema(kind: Kind) -> Value {
    json!({
        "description": format!("A list of {}.", kind.plural()),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": { "type": "string" },
            "kind": { "type": "string" },
            "metadata": { "$ref": format!("#/components/schemas/{LIST_META}") },
            "items": {
                "type": "array",
                "items": { "$ref": format!("#/components/schemas/{}", schema_name(kind.as_str())) },
            },
        },
        "x-kubernetes-group-version-kind": [{ "group": GROUP, "version": VERSION, "kind": format!("{kind}List") }],
    })
}

/// ObjectMeta, ListMeta and Status, from k8s-openapi's schemas.
pub(super) fn meta_schemas() -> Map<String, Value> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<meta::ObjectMeta>();
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::Status>();
    generator.take_definitions(true).into_iter().collect()
}

pub(super) fn other_schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(
        WATCH_EVENT.into(),
        json!({
            "description": "One line of a watch stream.",
            "type": "object",
            "required": ["type", "object"],
            "properties": {
                "type": { "type": "string", "enum": ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"] },
                "object": { "type": "object", "description": "The object (an ERROR carries a Status)." },
            },
        }),
    );
    schemas.insert(
        EVENT_LIST.into(),
        json!({
            "description": "Events, newest last.",
            "type": "object",
            "properties": {
                "apiVersion": { "type": "string" },
                "kind": { "type": "string" },
                "items": { "type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "involvedObject": { "type": "object", "properties": {
                            "kind": { "type": "string" },
                            "namespace": { "type": "string" },
                            "name": { "type": "string" },
                            "uid": { "type": "string" },
                        }},
                        "type": { "type": "string", "enum": ["Normal", "Warning"] },
                        "reason": { "type": "string" },
                        "message": { "type": "string" },
                        "count": { "type": "integer" },
                        "firstTimestamp": { "type": "string", "format": "date-time" },
                        "lastTimestamp": { "type": "string", "format": "date-time" },
                    },
                }},
            },
        }),
    );
    schemas.extend(sandbox_schemas());
    schemas
}

/// The bodies of the sandbox exec and file endpoints (`client::wire`).
fn sandbox_schemas() -> Map<String, Value> {
    let encoding = json!({
        "type": "string",
        "enum": ["utf-8", "base64"],
        "description": "utf-8: the string is the output itself; base64: the output is not valid UTF-8 and the string is its standard base64.",
    });
    let mut schemas = Map::new();
    schemas.insert(
        EXEC_REQUEST.into(),
        json!({
            "description": "A command to run in a service container of a Ready sandbox.",
            "type": "object",
            "required": ["command"],
            "additionalProperties": false,
            "properties": {
                "command": {"type": "array", "minItems": 1, "items": {"type": "string"},
                    "description": "The program and its arguments, run without a shell; use [\"sh\", \"-c\", \"...\"] for shell syntax."},
                "service": {"type": "string", "description": "The service to run in; the sandbox's first service when absent."},
                "env": {"type": "array", "items": {"type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}},
                "workingDir": {"type": "string", "description": "An absolute directory to run in."},
                "timeoutSeconds": {"type": "integer", "minimum": 1,
                    "description": "Kill the command after this many seconds; the result then has timedOut true and exit code 124. No limit when absent."},
                "stdin": {"type": "string", "description": "Text written to the command's stdin, which is then closed."},
                "stdinBase64": {"type": "string", "description": "Bytes (standard base64) written to stdin instead of stdin."},
            },
        }),
    );
    schemas.insert(
        EXEC_RESULT.into(),
        json!({
            "description": "How a command ended, with all of its output.",
            "type": "object",
            "required": ["exitCode", "stdout", "stderr", "stdoutEncoding", "stderrEncoding", "timedOut", "durationMs"],
            "properties": {
                "exitCode": {"type": "integer", "description": "124 when it timed out, 126/127 when it could not run."},
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "stdoutEncoding": encoding,
                "stderrEncoding": encoding,
                "timedOut": {"type": "boolean"},
                "durationMs": {"type": "integer"},
            },
        }),
    );
    schemas.insert(
        EXEC_STREAM_EVENT.into(),
        json!({
            "description": "One line of a streamed exec: output as it arrives ({stream, data, encoding}), then one {exit}, or an {error} if the exec broke off.",
            "type": "object",
            "properties": {
                "stream": {"type": "string", "enum": ["stdout", "stderr"]},
                "data": {"type": "string"},
                "encoding": encoding,
                "exit": {"type": "object", "properties": {
                    "code": {"type": "integer"},
                    "timedOut": {"type": "boolean"},
                    "durationMs": {"type": "integer"},
                }},
                "error": {"type": "string"},
            },
        }),
    );
    schemas.insert(
        FILE_UPLOAD.into(),
        json!({
            "description": "What an upload wrote.",
            "type": "object",
            "required": ["path", "service", "kind", "bytes", "sha256"],
            "properties": {
                "path": {"type": "string"},
                "service": {"type": "string"},
                "kind": {"type": "string", "enum": ["file", "directory"]},
                "bytes": {"type": "integer", "description": "The size of the body received."},
                "sha256": {"type": "string", "description": "The SHA-256 of the body received, in hex."},
            },
        }),
    );
    schemas
}
