//! The OpenAPI v3 document of the whole API, served as Kubernetes serves its own:
//! `/openapi/v3` is an index, `/openapi/v3/apis/orcaops.dev/v1alpha1` the document.
//!
//! The paths and operations are built with utoipa's typed model, one set per kind, with
//! readable operationIds (`listJobs`, `patchJob`) for code generators and GPT Actions.
//! The schemas of the five kinds are the CRDs' `openAPIV3Schema`, marked with
//! `x-kubernetes-group-version-kind` so that `kubectl explain` finds them; the metadata
//! and Status schemas come from k8s-openapi. PATCH operations carry the GVK and a
//! `fieldValidation` parameter: kubectl reads them to learn that the server validates
//! fields itself, and does not fetch OpenAPI v2 (which orcaops does not serve).

use std::sync::OnceLock;

use axum::Json;
use axum::http::{HeaderMap, header};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{Map, Value, json};
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItemBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApiBuilder, PathsBuilder, Ref,
    Required, ResponseBuilder, Tag, Type,
};

use super::discovery::crd;
use super::error::ApiError;
use crate::resources::{API_VERSION, GROUP, Kind, VERSION};

const BASE: &str = super::BASE;
/// The OpenAPI version the document declares: the CRD schemas are OpenAPI 3.0
/// (`nullable`), as Kubernetes' own documents are.
const OPENAPI_VERSION: &str = "3.0.0";

/// `GET /openapi/v2`: not served; kubectl falls back to v3.
pub(super) async fn v2() -> ApiError {
    ApiError::not_found(format!(
        "OpenAPI v2 (orcaops serves OpenAPI v3 only: /openapi/v3{BASE})"
    ))
}

/// `GET /openapi/v3`: where each group-version's document is.
pub(super) async fn index() -> Json<Value> {
    let path = BASE.trim_start_matches('/');
    Json(json!({
        "paths": { path: { "serverRelativeURL": format!("/openapi/v3{BASE}") } }
    }))
}

/// `GET /openapi/v3/apis/orcaops.dev/v1alpha1`: the document, with a `servers` entry for
/// the address the client used (GPT Actions and code generators need an absolute URL).
pub(super) async fn document(headers: HeaderMap) -> Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    let mut document = DOCUMENT.get_or_init(build).clone();
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        document["servers"] = json!([{ "url": format!("http://{host}") }]);
    }
    Json(document)
}

/// Schema names as Kubernetes publishes CRDs: reversed group, version, kind.
fn schema_name(kind: &str) -> String {
    let group: Vec<&str> = GROUP.split('.').rev().collect();
    format!("{}.{VERSION}.{kind}", group.join("."))
}

fn schema_ref(name: &str) -> Ref {
    Ref::from_schema_name(name)
}

const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const WATCH_EVENT: &str = "dev.orcaops.v1alpha1.WatchEvent";
const EVENT_LIST: &str = "dev.orcaops.v1alpha1.EventList";

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn param(
    name: &str,
    location: ParameterIn,
    description: &str,
    schema: ObjectBuilder,
) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location.clone())
        .required(if location == ParameterIn::Path {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
}

fn path_param(name: &str, description: &str) -> ParameterBuilder {
    param(name, ParameterIn::Path, description, string_schema())
}

fn query(name: &str, description: &str, schema: ObjectBuilder) -> ParameterBuilder {
    param(name, ParameterIn::Query, description, schema)
}

fn namespace_param() -> ParameterBuilder {
    path_param(
        "namespace",
        "The workspace (namespace) the object belongs to, for example `default`.",
    )
}

fn list_params() -> Vec<ParameterBuilder> {
    vec![
        query(
            "labelSelector",
            "Only objects whose labels match, as kubectl's -l: `a=b,c!=d,e,!f`.",
            string_schema(),
        ),
        query(
            "fieldSelector",
            "Only objects whose fields match: `metadata.name=x`, `status.phase=Running`.",
            string_schema(),
        ),
        query(
            "limit",
            "The most objects to return; the response's metadata.continue fetches the next page.",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ),
        query(
            "continue",
            "The metadata.continue of the previous page.",
            string_schema(),
        ),
        query(
            "watch",
            "Stream changes instead of listing: one JSON `{type, object}` per line (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR).",
            ObjectBuilder::new().schema_type(Type::Boolean),
        ),
        query(
            "resourceVersion",
            "With watch=true: send the changes after this version (the list's metadata.resourceVersion), so nothing between the list and the watch is lost. Too old a version gets 410 Gone.",
            string_schema(),
        ),
    ]
}

fn write_params() -> Vec<ParameterBuilder> {
    vec![
        query(
            "fieldManager",
            "The name of the writer (kubectl sends one); recorded for information only.",
            string_schema(),
        ),
        query(
            "fieldValidation",
            "Strict, Warn or Ignore. orcaops always validates strictly: unknown or misspelt fields are refused with a message that names the field and the fix.",
            string_schema().enum_values(Some(["Strict", "Warn", "Ignore"])),
        ),
    ]
}

fn json_content(schema: Ref) -> ContentBuilder {
    ContentBuilder::new().schema(Some(schema))
}

fn ok(description: &str, schema: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json_content(schema_ref(schema)).build())
}

fn error_response() -> ResponseBuilder {
    ResponseBuilder::new()
        .description("An error, as a Kubernetes Status: `reason` (NotFound, AlreadyExists, Conflict, Invalid, BadRequest, ...) and, for invalid objects, one `details.causes` entry per field.")
        .content("application/json", json_content(schema_ref(STATUS)).build())
}

/// An operation with the parts every one has: id, summary, tag, the error response.
fn operation(id: &str, summary: &str, description: &str, tag: &str) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .description(Some(description))
        .tag(tag)
        .response("default", error_response().build())
}

/// The Kubernetes extensions kubectl reads on an operation.
fn k8s_extensions(action: &str, kind: Kind) -> ExtensionsBuilder {
    ExtensionsBuilder::new()
        .add("x-kubernetes-action", action)
        .add(
            "x-kubernetes-group-version-kind",
            json!({ "group": GROUP, "version": VERSION, "kind": kind.as_str() }),
        )
}

struct KindDocs {
    kind: Kind,
    /// `Job`, `Jobs`: for operationIds.
    one: String,
    many: String,
    /// "job", "jobs": for prose.
    singular: &'static str,
    plural: &'static str,
    tag: String,
}

impl KindDocs {
    fn new(kind: Kind) -> Self {
        let one = kind.as_str().to_string();
        let plural = kind.plural();
        let many = format!("{}{}", &one[..1], &plural[1..]);
        KindDocs {
            kind,
            many,
            one,
            singular: kind.singular(),
            plural,
            tag: plural.to_string(),
        }
    }

    fn schema(&self) -> String {
        schema_name(self.kind.as_str())
    }

    fn list_schema(&self) -> String {
        schema_name(&format!("{}List", self.kind.as_str()))
    }

    fn scope_params(&self) -> Vec<ParameterBuilder> {
        if self.kind.namespaced() {
            vec![namespace_param()]
        } else {
            vec![]
        }
    }

    fn where_(&self) -> &'static str {
        if self.kind.namespaced() {
            " in a workspace"
        } else {
            ""
        }
    }

    fn list(&self, all_namespaces: bool) -> OperationBuilder {
        let (id, summary) = if all_namespaces {
            (
                format!("list{}InAllWorkspaces", self.many),
                format!("List or watch the {} of every workspace", self.plural),
            )
        } else {
            (
                format!("list{}", self.many),
                format!("List or watch the {}{}", self.plural, self.where_()),
            )
        };
        let params = if all_namespaces {
            vec![]
        } else {
            self.scope_params()
        };
        operation(
            &id,
            &summary,
            &format!(
                "Returns a {}List. With watch=true, streams one JSON line per change instead. Send `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` for a Table with the printer columns, as kubectl does.",
                self.kind.as_str()
            ),
            &self.tag,
        )
        .parameters(Some(params.into_iter().chain(list_params())))
        .response(
            "200",
            ok(&format!("The {}", self.plural), &self.list_schema())
                .content(
                    "application/json;stream=watch",
                    json_content(schema_ref(WATCH_EVENT)).build(),
                )
                .build(),
        )
        .extensions(Some(k8s_extensions("list", self.kind).build()))
    }

    fn create(&self) -> OperationBuilder {
        operation(
            &format!("create{}", self.one),
            &format!("Create a {}{}", self.singular, self.where_()),
            &format!(
                "The body is one {} in JSON or YAML, validated exactly as a file of the watched folder. 409 AlreadyExists when the name is taken; 422 Invalid with one cause per field when the object is not valid.",
                self.kind.as_str()
            ),
            &self.tag,
        )
        .parameters(Some(self.scope_params().into_iter().chain(write_params())))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_content(schema_ref(&self.schema())).build())
                .content("application/yaml", json_content(schema_ref(&self.schema())).build())
                .build(),
        ))
        .response("201", ok("Created", &self.schema()).build())
        .extensions(Some(k8s_extensions("post", self.kind).build()))
    }

    fn item_params(&self) -> Vec<ParameterBuilder> {
        let mut params = self.scope_params();
        params.push(path_param(
            "name",
            &format!("The name of the {}.", self.singular),
        ));
        params
    }

    fn read(&self) -> OperationBuilder {
        operation(
            &format!("read{}", self.one),
            &format!("Read a {} (spec and status)", self.singular),
            &format!(
                "Returns the {} with its status: what was declared and what happened.",
                self.kind.as_str()
            ),
            &self.tag,
        )
        .parameters(Some(self.item_params()))
        .response("200", ok("The object", &self.schema()).build())
        .extensions(Some(k8s_extensions("get", self.kind).build()))
    }

    fn replace(&self) -> OperationBuilder {
        operation(
            &format!("replace{}", self.one),
            &format!("Replace a {}", self.singular),
            "Replaces labels, annotations and spec (status is never written here). A metadata.resourceVersion older than the stored one gets 409 Conflict: read again and retry.",
            &self.tag,
        )
        .parameters(Some(self.item_params().into_iter().chain(write_params())))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_content(schema_ref(&self.schema())).build())
                .build(),
        ))
        .response("200", ok("Replaced", &self.schema()).build())
        .extensions(Some(k8s_extensions("put", self.kind).build()))
    }

    fn patch(&self) -> OperationBuilder {
        let json_patch = ArrayBuilder::new().items(
            ObjectBuilder::new()
                .property(
                    "op",
                    string_schema()
                        .enum_values(Some(["add", "remove", "replace", "move", "copy", "test"])),
                )
                .property("path", string_schema())
                .property("from", string_schema())
                .property("value", ObjectBuilder::new())
                .required("op")
                .required("path"),
        );
        operation(
            &format!("patch{}", self.one),
            &format!("Patch a {}", self.singular),
            "Content-Type selects the patch: application/merge-patch+json (RFC 7386; null removes a field), application/json-patch+json (RFC 6902), or application/apply-patch+yaml (server-side apply: the whole declaration, created if absent). The result is validated as a file of the watched folder. Strategic merge patch is not supported (415).",
            &self.tag,
        )
        .parameters(Some(
            self.item_params()
                .into_iter()
                .chain(write_params())
                .chain([query(
                    "force",
                    "Server-side apply: accepted for kubectl; orcaops has one owner per object, so there are no conflicts to force.",
                    ObjectBuilder::new().schema_type(Type::Boolean),
                )]),
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/merge-patch+json",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                        .build(),
                )
                .content(
                    "application/json-patch+json",
                    ContentBuilder::new().schema(Some(json_patch)).build(),
                )
                .content(
                    "application/apply-patch+yaml",
                    json_content(schema_ref(&self.schema())).build(),
                )
                .build(),
        ))
        .response("200", ok("Patched", &self.schema()).build())
        .response("201", ok("Created by server-side apply", &self.schema()).build())
        .extensions(Some(k8s_extensions("patch", self.kind).build()))
    }

    fn delete(&self) -> OperationBuilder {
        operation(
            &format!("delete{}", self.one),
            &format!("Delete a {}", self.singular),
            &format!(
                "Deletes at once and returns the last state. Deleting a {} stops what it runs; its run records, logs and artifacts are kept.",
                self.singular
            ),
            &self.tag,
        )
        .parameters(Some(self.item_params()))
        .response("200", ok("Deleted", &self.schema()).build())
        .extensions(Some(k8s_extensions("delete", self.kind).build()))
    }

    fn read_status(&self) -> OperationBuilder {
        operation(
            &format!("read{}Status", self.one),
            &format!("Read the status of a {}", self.singular),
            "The status subresource: the same object, read through /status.",
            &self.tag,
        )
        .parameters(Some(self.item_params()))
        .response("200", ok("The object", &self.schema()).build())
        .extensions(Some(k8s_extensions("get", self.kind).build()))
    }
}

/// The paths of one kind: collection, item, status, and (all namespaces) list.
fn kind_paths(paths: PathsBuilder, docs: &KindDocs) -> PathsBuilder {
    let (collection, all) = if docs.kind.namespaced() {
        (
            format!("{BASE}/namespaces/{{namespace}}/{}", docs.plural),
            Some(format!("{BASE}/{}", docs.plural)),
        )
    } else {
        (format!("{BASE}/{}", docs.plural), None)
    };
    let item = format!("{collection}/{{name}}");
    let mut paths = paths
        .path(
            &collection,
            PathItemBuilder::new()
                .operation(HttpMethod::Get, docs.list(false).build())
                .operation(HttpMethod::Post, docs.create().build())
                .build(),
        )
        .path(
            &item,
            PathItemBuilder::new()
                .operation(HttpMethod::Get, docs.read().build())
                .operation(HttpMethod::Put, docs.replace().build())
                .operation(HttpMethod::Patch, docs.patch().build())
                .operation(HttpMethod::Delete, docs.delete().build())
                .build(),
        );
    if let Some(all) = all {
        paths = paths
            .path(
                format!("{item}/status"),
                PathItemBuilder::new()
                    .operation(HttpMethod::Get, docs.read_status().build())
                    .build(),
            )
            .path(
                all,
                PathItemBuilder::new()
                    .operation(HttpMethod::Get, docs.list(true).build())
                    .build(),
            );
    }
    paths
}

/// The subresources only Jobs have: log, cancel, rerun, runs, artifacts.
fn job_paths(paths: PathsBuilder) -> PathsBuilder {
    let item = format!("{BASE}/namespaces/{{namespace}}/jobs/{{name}}");
    let job_params = || {
        vec![
            namespace_param(),
            path_param("name", "The name of the job."),
        ]
    };
    let run_param = || {
        query(
            "run",
            "The run number (1 is the first); the latest run when absent.",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
    };
    let text = |description: &str| {
        ResponseBuilder::new().description(description).content(
            "text/plain",
            ContentBuilder::new().schema(Some(string_schema())).build(),
        )
    };
    let log = operation(
        "readJobLog",
        "Read the output of a job",
        "Plain text: the combined output of the steps of one attempt, or of one step. With follow=true the response streams until the attempt ends.",
        "jobs",
    )
    .parameters(Some(job_params().into_iter().chain([
        run_param(),
        query(
            "attempt",
            "The attempt number within the run; the latest when absent.",
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)),
        ),
        query("step", "Only the output of the step with this name.", string_schema()),
        query(
            "follow",
            "Keep the response open and stream new output until the attempt ends.",
            ObjectBuilder::new().schema_type(Type::Boolean),
        ),
        query(
            "tailLines",
            "Only the last N lines.",
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)),
        ),
    ])))
    .response("200", text("The output").build());
    let action = |id: &str, summary: &str, description: &str| {
        operation(id, summary, description, "jobs")
            .parameters(Some(job_params()))
            .response(
                "200",
                ok("The job, with the request recorded", &schema_name("Job")).build(),
            )
    };
    let runs = operation(
        "listJobRuns",
        "List every run of a job",
        "Every run and attempt from the run records, which outlive the job's bounded status history.",
        "jobs",
    )
    .parameters(Some(job_params()))
    .response(
        "200",
        ResponseBuilder::new()
            .description("The runs")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .property("kind", string_schema())
                            .property(
                                "items",
                                ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Object)),
                            ),
                    ))
                    .build(),
            )
            .build(),
    );
    let artifact = operation(
        "downloadJobArtifact",
        "Download an artifact of a job",
        "The file a step produced and the job declared under spec.artifacts (a directory comes as a tar). Content-Length and X-Checksum-Sha256 are set.",
        "jobs",
    )
    .parameters(Some(job_params().into_iter().chain([
        path_param("artifact", "The artifact's name, as in spec.artifacts."),
        run_param(),
    ])))
    .response(
        "200",
        ResponseBuilder::new()
            .description("The artifact's bytes")
            .content(
                "application/octet-stream",
                ContentBuilder::new()
                    .schema(Some(string_schema().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Binary,
                    )))))
                    .build(),
            )
            .build(),
    );
    paths
        .path(format!("{item}/log"), PathItemBuilder::new().operation(HttpMethod::Get, log.build()).build())
        .path(
            format!("{item}/cancel"),
            PathItemBuilder::new()
                .operation(
                    HttpMethod::Post,
                    action(
                        "cancelJob",
                        "Cancel the running run of a job",
                        "Stops the running attempt; the job ends Cancelled. Cancelling a finished job changes nothing.",
                    )
                    .build(),
                )
                .build(),
        )
        .path(
            format!("{item}/rerun"),
            PathItemBuilder::new()
                .operation(
                    HttpMethod::Post,
                    action(
                        "rerunJob",
                        "Run a job again with the same spec",
                        "Starts a new run; the previous runs stay in the history.",
                    )
                    .build(),
                )
                .build(),
        )
        .path(format!("{item}/runs"), PathItemBuilder::new().operation(HttpMethod::Get, runs.build()).build())
        .path(
            format!("{item}/artifacts/{{artifact}}"),
            PathItemBuilder::new().operation(HttpMethod::Get, artifact.build()).build(),
        )
}

/// Events, health and discovery.
fn other_paths(paths: PathsBuilder) -> PathsBuilder {
    let event_params = || {
        vec![
            query(
                "fieldSelector",
                "`involvedObject.kind=Job`, `involvedObject.name=hello`, or both separated by a comma. Events about files of the watched folder have kind File.",
                string_schema(),
            ),
            query(
                "limit",
                "The most events to return (default 100).",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ),
        ]
    };
    let events = operation(
        "listEventsInWorkspace",
        "List the events of a workspace",
        "What happened to the objects of a workspace: runs started and finished, retries, refusals.",
        "events",
    )
    .parameters(Some(std::iter::once(namespace_param()).chain(event_params())))
    .response("200", ok("The events", EVENT_LIST).build());
    let all_events = operation(
        "listEvents",
        "List the events of every workspace",
        "Every event, including Warnings about files of the watched folder that failed to parse (involvedObject.kind=File).",
        "events",
    )
    .parameters(Some(event_params()))
    .response("200", ok("The events", EVENT_LIST).build());
    let plain = |id: &str, summary: &str, description: &str| {
        let response = ResponseBuilder::new()
            .description("ok")
            .content(
                "text/plain",
                ContentBuilder::new().schema(Some(string_schema())).build(),
            )
            .build();
        PathItemBuilder::new()
            .operation(
                HttpMethod::Get,
                OperationBuilder::new()
                    .operation_id(Some(id))
                    .summary(Some(summary))
                    .description(Some(description))
                    .tag("health")
                    .response("200", response)
                    .response(
                        "503",
                        ResponseBuilder::new()
                            .description("Not ready: what is unreachable")
                            .content(
                                "text/plain",
                                ContentBuilder::new().schema(Some(string_schema())).build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    let discovery = |id: &str, summary: &str| {
        PathItemBuilder::new()
            .operation(
                HttpMethod::Get,
                OperationBuilder::new()
                    .operation_id(Some(id))
                    .summary(Some(summary))
                    .description(Some("A discovery document, as kubectl reads it."))
                    .tag("discovery")
                    .response(
                        "200",
                        ResponseBuilder::new()
                            .description("The document")
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    paths
        .path(
            "/api/v1/namespaces/{namespace}/events",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, events.build())
                .build(),
        )
        .path(
            "/api/v1/events",
            PathItemBuilder::new()
                .operation(HttpMethod::Get, all_events.build())
                .build(),
        )
        .path(
            "/healthz",
            plain(
                "healthz",
                "Liveness",
                "ok while the process serves requests.",
            ),
        )
        .path(
            "/readyz",
            plain(
                "readyz",
                "Readiness",
                "ok when the store and Docker answer; 503 naming what does not.",
            ),
        )
        .path("/version", discovery("getVersion", "The server's version"))
        .path("/apis", discovery("getApiGroups", "The API groups"))
        .path(
            BASE,
            discovery("getApiResources", "The resources of orcaops.dev/v1alpha1"),
        )
}

/// The schema of one kind: its CRD's, plus apiVersion, kind and metadata, as the
/// Kubernetes API server publishes a CRD.
fn kind_schema(kind: Kind) -> Value {
    let mut schema = crd(kind)
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
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
    schema["description"] = json!(kind_description(kind));
    schema["x-kubernetes-group-version-kind"] =
        json!([{ "group": GROUP, "version": VERSION, "kind": kind.as_str() }]);
    schema
}

fn kind_description(kind: Kind) -> &'static str {
    match kind {
        Kind::Job => {
            "A Job: ordered steps run in one container image, with retries, timeouts, artifacts and a run history in its status."
        }
        Kind::Workflow => "A Workflow: a DAG of jobs with needs, conditions and matrix fan-out.",
        Kind::Sandbox => {
            "A Sandbox: a long-lived environment of service containers that agents exec into."
        }
        Kind::Workspace => {
            "A Workspace: a tenant with quotas, members and defaults; namespaced resources live in one."
        }
        Kind::Policy => {
            "A Policy: rules on images, commands, resources and network, enforced on every write and run."
        }
    }
}

fn list_schema(kind: Kind) -> Value {
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
fn meta_schemas() -> Map<String, Value> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<meta::ObjectMeta>();
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::Status>();
    generator.take_definitions(true).into_iter().collect()
}

fn other_schemas() -> Map<String, Value> {
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
    schemas
}

/// The whole document, built once.
pub(super) fn build() -> Value {
    let kinds: Vec<KindDocs> = Kind::ALL.into_iter().map(KindDocs::new).collect();
    let mut paths = PathsBuilder::new();
    for docs in &kinds {
        paths = kind_paths(paths, docs);
    }
    paths = other_paths(job_paths(paths));
    let mut tags: Vec<Tag> = kinds
        .iter()
        .map(|d| {
            let mut tag = Tag::new(&d.tag);
            tag.description = Some(kind_description(d.kind).into());
            tag
        })
        .collect();
    tags.extend(["events", "health", "discovery"].map(Tag::new));
    let openapi = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("orcaops")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "orcaops runs declared Jobs (and soon Workflows and Sandboxes) in containers. This API has the Kubernetes form: objects under /apis/orcaops.dev/v1alpha1, errors as Status objects. A Job is created with createJob, watched with readJob until status.phase is Succeeded, Failed, Cancelled or TimedOut, and its output read with readJobLog.",
                ))
                .build(),
        )
        .paths(paths.build())
        .tags(Some(tags))
        .build();
    let mut document = serde_json::to_value(&openapi).expect("an OpenAPI document serializes");
    document["openapi"] = json!(OPENAPI_VERSION);
    let mut schemas = meta_schemas();
    schemas.extend(other_schemas());
    for kind in Kind::ALL {
        schemas.insert(schema_name(kind.as_str()), kind_schema(kind));
        schemas.insert(schema_name(&format!("{kind}List")), list_schema(kind));
    }
    document["components"] = json!({ "schemas": schemas });
    document
}

#[cfg(test)]
mod tests;
