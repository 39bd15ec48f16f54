//! The paths of the workflow subresources: runs (start one, honouring Idempotency-Key;
//! list them), rerun, approve, reject and cancel.

use utoipa::openapi::path::{HttpMethod, ParameterIn, PathItemBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, ObjectBuilder, PathsBuilder, Required, ResponseBuilder, Type,
};

use super::operations::{namespace_param, ok, operation, param, path_param, string_schema};
use super::{BASE, schema_name};

const TAG: &str = "workflows";

fn object() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Object)
}

fn inputs() -> ObjectBuilder {
    object()
        .description(Some(
            "The run's inputs, each declared in the Workflow's spec.inputs (422 otherwise).",
        ))
        .additional_properties(Some(string_schema()))
}

fn body(schema: ObjectBuilder) -> Option<utoipa::openapi::request_body::RequestBody> {
    Some(
        RequestBodyBuilder::new()
            .required(Some(Required::False))
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(schema)).build(),
            )
            .build(),
    )
}

/// The answer of runs and rerun.
fn run_answer(description: &str) -> ResponseBuilder {
    let schema = object()
        .property("kind", string_schema())
        .property("apiVersion", string_schema())
        .property("workflow", string_schema())
        .property("token", string_schema())
        .property(
            "run",
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .description(Some(
                    "The run's number (an integer); null until the controller has started it.",
                )),
        )
        .property(
            "phase",
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .description(Some(
                    "The run's phase (a string); null until it has started.",
                )),
        )
        .property("duplicate", ObjectBuilder::new().schema_type(Type::Boolean))
        .property("message", string_schema());
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new().schema(Some(schema)).build(),
    )
}

pub(super) fn workflow_paths(paths: PathsBuilder) -> PathsBuilder {
    let item = format!("{BASE}/namespaces/{{namespace}}/workflows/{{name}}");
    let params = || {
        vec![
            namespace_param(),
            path_param("name", "The name of the workflow."),
        ]
    };
    let start = operation(
        "startWorkflowRun",
        "Start a run of a workflow",
        "Starts a run with these inputs (the others take their defaults). With an Idempotency-Key header, a retried request starts no second run: it answers 200 with the run the first one started. 201: the run started (its number is in the answer); 202: accepted, not started yet (a run in progress, or the workflow is suspended).",
        TAG,
    )
    .parameters(Some(params().into_iter().chain([param(
        "Idempotency-Key",
        ParameterIn::Header,
        "1 to 100 letters, digits, '-', '_', '.' or ':'; the same key answers the same run.",
        string_schema(),
    )])))
    .request_body(body(object().property("inputs", inputs())))
    .response("200", run_answer("A retried request: the run it started").build())
    .response("201", run_answer("The run started").build())
    .response("202", run_answer("The run is asked for and starts later").build());
    let runs = operation(
        "listWorkflowRuns",
        "List every run of a workflow",
        "The workflow run records, newest first, each with every node; when there are none, the runs the workflow's status remembers.",
        TAG,
    )
    .parameters(Some(params()))
    .response(
        "200",
        ResponseBuilder::new()
            .description("The runs")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(
                        object()
                            .property("kind", string_schema())
                            .property("items", ArrayBuilder::new().items(object())),
                    ))
                    .build(),
            )
            .build(),
    );
    let rerun = operation(
        "rerunWorkflow",
        "Run a workflow again: all, only what failed, or from a node",
        "mode \"failed\" reruns only the nodes that did not succeed in the last run (the others keep their Job and outputs); from NODE reruns that node and everything downstream; neither: every node. Inputs not given keep the last run's values.",
        TAG,
    )
    .parameters(Some(params()))
    .request_body(body(
        object()
            .property("mode", string_schema().enum_values(Some(["all", "failed"])))
            .property("from", string_schema())
            .property("inputs", inputs()),
    ))
    .response("200", run_answer("The run of the token, when it already started").build())
    .response("201", run_answer("The run started").build())
    .response("202", run_answer("The run is asked for and starts later").build());
    let decision = |id: &str, summary: &str, description: &str| {
        operation(id, summary, description, TAG)
            .parameters(Some(params()))
            .request_body(body(
                object()
                    .property("node", string_schema())
                    .property("message", string_schema())
                    .property("by", string_schema())
                    .property(
                        "run",
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .description(Some("The run; needed when several runs are in progress (concurrencyPolicy: Allow)")),
                    ),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The decision, recorded for the current run")
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(
                                object()
                                    .property("kind", string_schema())
                                    .property(
                                        "run",
                                        ObjectBuilder::new().schema_type(Type::Integer),
                                    )
                                    .property("node", string_schema())
                                    .property(
                                        "approved",
                                        ObjectBuilder::new().schema_type(Type::Boolean),
                                    ),
                            ))
                            .build(),
                    )
                    .build(),
            )
    };
    let cancel = operation(
        "cancelWorkflow",
        "Cancel the run in progress of a workflow",
        "Records the run to cancel in the annotation orcaops.dev/cancel; 409 when no run is in progress, or when several are (concurrencyPolicy: Allow) and the body names none of them.",
        TAG,
    )
    .parameters(Some(params()))
    .request_body(body(
        object().property(
            "run",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .description(Some("The run to cancel; needed when several runs are in progress")),
        ),
    ))
    .response(
        "200",
        ok("The workflow, with the request recorded", &schema_name("Workflow")).build(),
    );
    let gate = "409 for a node without an approval gate, one that already ended, a run that ended, or several runs in progress and no run named; 404 for an unknown node (the answer lists the nodes with a gate).";
    paths
        .path(
            format!("{item}/runs"),
            PathItemBuilder::new()
                .operation(HttpMethod::Post, start.build())
                .operation(HttpMethod::Get, runs.build())
                .build(),
        )
        .path(
            format!("{item}/rerun"),
            PathItemBuilder::new()
                .operation(HttpMethod::Post, rerun.build())
                .build(),
        )
        .path(
            format!("{item}/approve"),
            PathItemBuilder::new()
                .operation(
                    HttpMethod::Post,
                    decision(
                        "approveWorkflowNode",
                        "Approve an approval node of the current run",
                        &format!("The node starts once its needs have finished. {gate}"),
                    )
                    .build(),
                )
                .build(),
        )
        .path(
            format!("{item}/reject"),
            PathItemBuilder::new()
                .operation(
                    HttpMethod::Post,
                    decision(
                        "rejectWorkflowNode",
                        "Reject an approval node of the current run",
                        &format!(
                            "The node fails with the message, and what needs it is skipped. {gate}"
                        ),
                    )
                    .build(),
                )
                .build(),
        )
        .path(
            format!("{item}/cancel"),
            PathItemBuilder::new()
                .operation(HttpMethod::Post, cancel.build())
                .build(),
        )
}
