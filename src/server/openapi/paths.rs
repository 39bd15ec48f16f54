//! The paths of the document: per kind, the Job subresources, events, health, discovery.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItemBuilder};
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, ObjectBuilder, PathsBuilder, ResponseBuilder, Type,
};

use super::operations::{
    KindDocs, namespace_param, ok, operation, path_param, query, string_schema,
};
use super::schemas::EVENT_LIST;
use super::{BASE, schema_name};

/// The paths of one kind: collection, item, status, and (all namespaces) list.
pub(super) fn kind_paths(paths: PathsBuilder, docs: &KindDocs) -> PathsBuilder {
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
    paths = paths.path(
        format!("{item}/status"),
        PathItemBuilder::new()
            .operation(HttpMethod::Get, docs.read_status().build())
            .operation(HttpMethod::Put, docs.replace_status().build())
            .operation(HttpMethod::Patch, docs.patch_status().build())
            .build(),
    );
    if let Some(all) = all {
        paths = paths.path(
            all,
            PathItemBuilder::new()
                .operation(HttpMethod::Get, docs.list(true).build())
                .build(),
        );
    }
    paths
}

/// The subresources only Jobs have: log, cancel, rerun, runs, artifacts.
pub(super) fn job_paths(paths: PathsBuilder) -> PathsBuilder {
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
        "Plain text: the combined output of the steps of one attempt, or of one step. With follow=true the response streams until the attempt ends. With `Accept: text/event-stream`, server-sent events instead: one `data:` event per line whose `id` is the byte offset after it (a reconnecting EventSource sends Last-Event-ID and gets only what followed), then `event: end` when the log is complete.",
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
    .response(
        "200",
        text("The output")
            .content(
                "text/event-stream",
                ContentBuilder::new().schema(Some(string_schema())).build(),
            )
            .build(),
    );
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
pub(super) fn other_paths(paths: PathsBuilder) -> PathsBuilder {
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
