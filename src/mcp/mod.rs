//! The MCP server: tools that let AI agents run jobs, apply resources, read status and
//! logs, and see containers. Every tool is a client of the HTTP API ([`ApiClient`]), so
//! the stdio transport (`orcaops mcp`, against a server or an embedded one) and the
//! streamable HTTP transport (`/mcp` on `orcaops serve`) share one code path.

mod compact;
mod jobs;
mod objects;
mod params;
mod runs;
mod sandbox_io;
mod sandboxes;
mod workflows;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::client::{ApiClient, ClientError};
use params::{
    ApplyArgs, ContainersArgs, CreateSandboxArgs, ExecInSandboxArgs, JobArgs, ListArgs,
    ListSandboxesArgs, LogsArgs, Parameters, ReadFileArgs, ResourceArgs, RunJobArgs, SandboxArgs,
    SandboxLogsArgs, StartSandboxArgs, WriteFileArgs,
};
use params::{ApproveNodeArgs, RerunWorkflowArgs, RunWorkflowArgs, SearchRunsArgs, WorkflowArgs};

/// What a tool answers: text for the model to read, and the same facts as JSON.
pub struct Answer {
    pub text: String,
    pub structured: Value,
}

/// A tool error: what went wrong and what to do next. Sent as a tool result with
/// `isError`, never as a protocol error, so the model reads it and can correct itself.
#[derive(Debug)]
pub struct ToolError(pub String);

impl ToolError {
    pub fn new(message: impl Into<String>) -> Self {
        ToolError(message.into())
    }
}

impl From<ClientError> for ToolError {
    fn from(e: ClientError) -> Self {
        ToolError(e.to_string())
    }
}

fn respond(result: Result<Answer, ToolError>) -> CallToolResult {
    match result {
        Ok(answer) => {
            let mut r = CallToolResult::success(vec![ContentBlock::text(answer.text)]);
            r.structured_content = Some(answer.structured);
            r
        }
        Err(ToolError(message)) => CallToolResult::error(vec![ContentBlock::text(message)]),
    }
}

/// Reads a tool's arguments, or answers why they are wrong.
macro_rules! args {
    ($params:expr) => {
        match $params.0 {
            Ok(args) => args,
            Err(message) => return respond(Err(ToolError(message))),
        }
    };
}

const INSTRUCTIONS: &str = "orcaops runs jobs in sandboxed Docker containers and keeps their \
status, logs and history. Use run_job for one-off commands (it waits and returns exit codes and \
the output tail); apply_resource to create or update resources from YAML; get_resource, \
list_resources and get_logs to inspect; cancel_job and delete_resource to stop or remove; \
list_containers to see what is running. Containers have no network unless asked for. For work \
that needs state across commands (a checkout, installed tools, a running service), open a \
sandbox: create_sandbox from a template (list_resources(kind=\"sandboxtemplate\") shows them), \
then exec_in_sandbox, write_file and read_file (sandbox_logs reads a service's own output); list_sandboxes, stop_sandbox, start_sandbox and \
delete_sandbox manage it. A sandbox stops by itself after its idle timeout. Workflows (DAGs of \
jobs, applied with apply_resource): run_workflow starts a run with inputs and waits for it, \
get_workflow shows each node's phase, approve_node decides an approval gate, rerun_workflow \
reruns all, only what failed, or from a node. search_runs finds past runs of every job by \
error text, phase, time, labels or image.";

/// The MCP server. Cheap to clone: one per session over HTTP.
#[derive(Clone)]
pub struct OrcaopsMcp {
    client: ApiClient,
    tool_router: ToolRouter<Self>,
}

#[tool_router(router = tool_router)]
impl OrcaopsMcp {
    pub fn new(client: ApiClient) -> Self {
        OrcaopsMcp {
            client,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Run shell commands in a fresh container and wait for the result: phase, \
        exit code and duration of each step, and the last lines of output. Each entry of \
        `commands` is one step run with `sh -c`; the first failure stops the job. Containers \
        have no network unless `network` is true. If the wait ends first, the job keeps running \
        and the answer says how to follow it.",
        annotations(open_world_hint = false)
    )]
    async fn run_job(
        &self,
        params: Parameters<RunJobArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let args = args!(params);
        respond(jobs::run_job(&self.client, args, &ctx).await)
    }

    #[tool(
        description = "Create or update resources from YAML (kinds Job, Workflow, Sandbox, \
        Workspace, Policy of apiVersion orcaops.dev/v1alpha1; several documents may be separated \
        by ---). Reports created, configured or unchanged per object. Invalid documents come back \
        as an error naming the line, column, field and the fix; valid ones are still applied.",
        annotations(open_world_hint = false, idempotent_hint = true)
    )]
    async fn apply_resource(&self, params: Parameters<ApplyArgs>) -> CallToolResult {
        let args = args!(params);
        respond(objects::apply(&self.client, args).await)
    }

    #[tool(
        description = "Show one resource: a compact spec and its status. For a job: phase, run, \
        attempt, each step's exit code, duration and last output lines, recent runs and events.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_resource(&self, params: Parameters<ResourceArgs>) -> CallToolResult {
        let args = args!(params);
        respond(objects::get(&self.client, args).await)
    }

    #[tool(
        description = "List resources of one kind in a workspace (or all workspaces), optionally \
        filtered by a label selector: name, phase, runs, age and a one-line summary each.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_resources(&self, params: Parameters<ListArgs>) -> CallToolResult {
        let args = args!(params);
        respond(objects::list(&self.client, args).await)
    }

    #[tool(
        description = "Read a job's output: the last lines of a run (default the latest), \
        optionally of one attempt or one step. Says when earlier lines were left out.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_logs(&self, params: Parameters<LogsArgs>) -> CallToolResult {
        let args = args!(params);
        respond(jobs::logs(&self.client, args).await)
    }

    #[tool(
        description = "Stop the run in progress of a job; it ends Cancelled. Waits a few seconds \
        for the container to stop and reports the phase.",
        annotations(destructive_hint = true, open_world_hint = false)
    )]
    async fn cancel_job(&self, params: Parameters<JobArgs>) -> CallToolResult {
        let args = args!(params);
        respond(jobs::cancel(&self.client, args).await)
    }

    #[tool(
        description = "Delete a resource. A job's containers are removed; its run records and \
        logs stay readable with get_logs.",
        annotations(destructive_hint = true, open_world_hint = false)
    )]
    async fn delete_resource(&self, params: Parameters<ResourceArgs>) -> CallToolResult {
        let args = args!(params);
        respond(objects::delete(&self.client, args).await)
    }

    #[tool(
        description = "List the Docker containers orcaops owns (running or finished but not yet \
        removed), each with the resource it belongs to: kind, workspace, name, run and attempt.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_containers(&self, params: Parameters<ContainersArgs>) -> CallToolResult {
        let args = args!(params);
        respond(objects::containers(&self.client, args).await)
    }

    #[tool(
        description = "Open a sandbox from a SandboxTemplate: long-lived service containers \
        to run many commands in, keeping files between them. Waits until it is Ready (unless \
        wait is false) and returns its name, phase, services with their endpoints, and when it \
        expires. Templates: list_resources(kind=\"sandboxtemplate\").",
        annotations(open_world_hint = false)
    )]
    async fn create_sandbox(
        &self,
        params: Parameters<CreateSandboxArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let args = args!(params);
        respond(sandboxes::create(&self.client, args, &ctx.ct).await)
    }

    #[tool(
        description = "Run a command in a Ready sandbox and return its exit code, stdout and \
        stderr (long output keeps its start and end, with a note of what was cut). `command` is \
        a shell line run with `sh -c`, or an array of the program and its arguments. Files \
        written by earlier commands are still there.",
        annotations(open_world_hint = false)
    )]
    async fn exec_in_sandbox(&self, params: Parameters<ExecInSandboxArgs>) -> CallToolResult {
        let args = args!(params);
        respond(sandbox_io::exec(&self.client, args).await)
    }

    #[tool(
        description = "Write a file into a sandbox (parent directories are created): text, or \
        bytes as base64 with encoding=\"base64\"; mode sets its permissions (\"755\" for a script).",
        annotations(open_world_hint = false, idempotent_hint = true)
    )]
    async fn write_file(&self, params: Parameters<WriteFileArgs>) -> CallToolResult {
        let args = args!(params);
        respond(sandbox_io::write(&self.client, args).await)
    }

    #[tool(
        description = "Read a file from a sandbox: its text, or base64 when it is not UTF-8; at \
        most max_bytes (default 64 KiB), saying when the file was longer.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_file(&self, params: Parameters<ReadFileArgs>) -> CallToolResult {
        let args = args!(params);
        respond(sandbox_io::read(&self.client, args).await)
    }

    #[tool(
        description = "Read what a sandbox's service wrote to its stdout and stderr (a \
        database's or server's own log, not the output of exec_in_sandbox commands): the last \
        lines, saying when earlier ones were left out.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn sandbox_logs(&self, params: Parameters<SandboxLogsArgs>) -> CallToolResult {
        let args = args!(params);
        respond(sandbox_io::logs(&self.client, args).await)
    }

    #[tool(
        description = "List sandboxes: name, phase (Pending, Starting, Ready, Stopped, Expired, \
        Failed), template, when each expires, and age.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_sandboxes(&self, params: Parameters<ListSandboxesArgs>) -> CallToolResult {
        let args = args!(params);
        respond(sandboxes::list(&self.client, args).await)
    }

    #[tool(
        description = "Stop a sandbox: its containers stop, their files and volumes are kept; \
        start_sandbox brings it back as it was.",
        annotations(open_world_hint = false, idempotent_hint = true)
    )]
    async fn stop_sandbox(&self, params: Parameters<SandboxArgs>) -> CallToolResult {
        let args = args!(params);
        respond(sandboxes::stop(&self.client, args).await)
    }

    #[tool(
        description = "Start a stopped or expired sandbox again (its files are kept) and wait \
        until it is Ready; its idle and TTL deadlines count from now.",
        annotations(open_world_hint = false, idempotent_hint = true)
    )]
    async fn start_sandbox(
        &self,
        params: Parameters<StartSandboxArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let args = args!(params);
        respond(sandboxes::start(&self.client, args, &ctx.ct).await)
    }

    #[tool(
        description = "Delete a sandbox: its containers, network and volumes are removed, with \
        every file in them.",
        annotations(destructive_hint = true, open_world_hint = false)
    )]
    async fn delete_sandbox(&self, params: Parameters<SandboxArgs>) -> CallToolResult {
        let args = args!(params);
        respond(sandboxes::delete(&self.client, args).await)
    }

    #[tool(
        description = "Start a run of an applied Workflow with inputs and wait for it to end \
        (unless wait is false): the run's phase and a compact DAG, each node with its phase, \
        duration and message. A retried call with the same idempotency_key answers with the \
        run the first call started instead of starting another.",
        annotations(open_world_hint = false)
    )]
    async fn run_workflow(&self, params: Parameters<RunWorkflowArgs>) -> CallToolResult {
        let args = args!(params);
        respond(workflows::run(&self.client, args).await)
    }

    #[tool(
        description = "Show a Workflow's current run as a compact DAG: phase, run, progress, \
        and each node (matrix combinations under their node) with its phase, needs, duration, \
        attempts, Job and message.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_workflow(&self, params: Parameters<WorkflowArgs>) -> CallToolResult {
        let args = args!(params);
        respond(workflows::get_workflow(&self.client, args).await)
    }

    #[tool(
        description = "Approve (approve=true, the default) or reject (approve=false) an \
        approval node of a Workflow's current run, with a message. Refused, with the reason, \
        for a node without an approval gate, a node that already ended, or a run that ended.",
        annotations(open_world_hint = false, idempotent_hint = true)
    )]
    async fn approve_node(&self, params: Parameters<ApproveNodeArgs>) -> CallToolResult {
        let args = args!(params);
        respond(workflows::approve(&self.client, args).await)
    }

    #[tool(
        description = "Search the runs of every job, newest first, including jobs since \
        deleted: by words in their error lines and output tails (grep), workspace, job, \
        phase, time (since), labels, image, or only anomalous ones. Each run comes with its \
        summary and the line that matched; use it to find when an error first appeared or \
        how a job failed before, then get_logs for the full output.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_runs(&self, params: Parameters<SearchRunsArgs>) -> CallToolResult {
        let args = args!(params);
        respond(runs::search(&self.client, args).await)
    }

    #[tool(
        description = "Start a new run of a Workflow: every node (mode \"all\"), only the \
        nodes that did not succeed in the last run (mode \"failed\"; the others keep their \
        results), or one node and everything downstream of it (from). Inputs not given keep \
        the last run's values.",
        annotations(open_world_hint = false)
    )]
    async fn rerun_workflow(&self, params: Parameters<RerunWorkflowArgs>) -> CallToolResult {
        let args = args!(params);
        respond(workflows::rerun(&self.client, args).await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for OrcaopsMcp {
    /// Over HTTP, a tool acts on the API with the key of the request that called it, so
    /// an agent can do through MCP exactly what its key allows, no more.
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        let caller = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_string());
        // Each call keeps its own answers' `Warning` headers (a Warn policy's findings),
        // to hand them to the model with the result rather than to the server's stderr.
        let client = match caller {
            Some(token) => self.client.clone().acting_as(Some(token)),
            None => self.client.clone(),
        }
        .keeping_warnings();
        let server = OrcaopsMcp {
            client: client.clone(),
            tool_router: self.tool_router.clone(),
        };
        let call = rmcp::handler::server::tool::ToolCallContext::new(&server, request, context);
        let mut response = server.tool_router.call(call).await?;
        let warnings = client.take_warnings();
        if let rmcp::model::CallToolResponse::Complete(result) = &mut response
            && !warnings.is_empty()
        {
            result
                .content
                .push(ContentBlock::text(policy_warnings(&warnings)));
        }
        Ok(response)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("orcaops", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// What Warn policies said of the call's writes, as a text block for the model.
fn policy_warnings(warnings: &[String]) -> String {
    let mut text = String::from("Warnings from the workspace's policies (the write was accepted):");
    for warning in warnings {
        text.push_str("\n- ");
        text.push_str(warning);
    }
    text
}

/// Serves MCP over stdin/stdout until the client closes it. Nothing else may write to
/// stdout meanwhile: it carries the protocol.
pub async fn serve_stdio(client: ApiClient) -> std::io::Result<()> {
    let service = OrcaopsMcp::new(client)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    service.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

/// The streamable HTTP transport, to mount at `/mcp`; its tools call the API at
/// `api_base` (the same server). Sessions end when `shutdown` is cancelled.
///
/// Host checking stays on for a loopback server (it defeats DNS rebinding from a
/// browser); a server bound to another address accepts any Host, as its API does.
pub fn http_service(
    api_base: &str,
    loopback: bool,
    shutdown: CancellationToken,
) -> Result<StreamableHttpService<OrcaopsMcp, LocalSessionManager>, ClientError> {
    // No key of its own: each tool call acts with its caller's (see `call_tool`).
    let client = ApiClient::new(api_base)?.acting_as(None);
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(shutdown);
    if !loopback {
        config = config.disable_allowed_hosts();
    }
    Ok(StreamableHttpService::new(
        move || Ok(OrcaopsMcp::new(client.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_listed_with_an_object_schema() {
        let server = OrcaopsMcp::new(ApiClient::new("http://127.0.0.1:1").unwrap());
        let tools = server.tool_router.list_all();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "apply_resource",
                "approve_node",
                "cancel_job",
                "create_sandbox",
                "delete_resource",
                "delete_sandbox",
                "exec_in_sandbox",
                "get_logs",
                "get_resource",
                "get_workflow",
                "list_containers",
                "list_resources",
                "list_sandboxes",
                "read_file",
                "rerun_workflow",
                "run_job",
                "run_workflow",
                "sandbox_logs",
                "search_runs",
                "start_sandbox",
                "stop_sandbox",
                "write_file",
            ]
        );
        for tool in &tools {
            assert_eq!(
                tool.input_schema.get("type"),
                Some(&Value::from("object")),
                "{}",
                tool.name
            );
            assert!(tool.description.as_ref().is_some_and(|d| d.len() > 40));
        }
        let run_job = tools.iter().find(|t| t.name == "run_job").unwrap();
        let props = run_job.input_schema.get("properties").unwrap();
        assert!(props.get("commands").is_some() && props.get("image").is_some());
    }
}
