//! The tools' inputs: one struct per tool, whose doc comments become the JSON schema
//! descriptions a model reads, and the extractor that turns bad arguments into tool errors.

use std::collections::BTreeMap;

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A tool's arguments, or why they could not be read.
///
/// rmcp's own `Parameters` answers bad arguments with a JSON-RPC error, which clients
/// show opaquely; the MCP spec asks for a tool error the model can read and correct.
/// The `#[tool]` macro finds the input schema through a type named `Parameters`, so
/// this one keeps the name.
pub struct Parameters<P>(pub Result<P, String>);

impl<P: JsonSchema> JsonSchema for Parameters<P> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        P::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        P::json_schema(generator)
    }
}

impl<S, P: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Parameters<P> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, rmcp::ErrorData> {
        let arguments = context.arguments.take().unwrap_or_default();
        let parsed = serde_json::from_value(serde_json::Value::Object(arguments)).map_err(|e| {
            format!(
                "invalid arguments for {}: {e}; see the tool's input schema",
                context.name
            )
        });
        Ok(Parameters(parsed))
    }
}

fn default_workspace() -> String {
    crate::resources::DEFAULT_WORKSPACE.to_string()
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RunJobArgs {
    /// The container image; it needs /bin/sh. Example: "busybox:latest".
    pub image: String,
    /// Shell commands run in order, one step each, with `sh -c`; the first that fails
    /// stops the job. Example: ["make", "make test"]. Give `commands` or `script`.
    #[serde(default)]
    pub commands: Vec<String>,
    /// One shell script run as a single step, instead of `commands`.
    #[serde(default)]
    pub script: Option<String>,
    /// Environment variables for every step.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds before the job is stopped and ends TimedOut (default: no limit).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Wait for the job to finish before answering (default true).
    #[serde(default)]
    pub wait: Option<bool>,
    /// The longest wait, in seconds (default 120, at most 900). The job keeps running
    /// when the wait ends first; the answer says how to follow it.
    #[serde(default)]
    pub max_wait_seconds: Option<u64>,
    /// The job's name (default: run-<random>). An existing job of that name is
    /// updated, or re-run when its spec is unchanged.
    #[serde(default)]
    pub name: Option<String>,
    /// The workspace (namespace), default "default".
    #[serde(default)]
    pub workspace: Option<String>,
    /// Give the container a network (default false: no network at all).
    #[serde(default)]
    pub network: Option<bool>,
    /// How many lines of output to return (default 40, at most 500).
    #[serde(default)]
    pub tail_lines: Option<usize>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ApplyArgs {
    /// Resource YAML (apiVersion orcaops.dev/v1alpha1; kinds Job, Workflow, Sandbox,
    /// Workspace, Policy). Several documents may be separated by `---` lines.
    pub yaml: String,
    /// Put every namespaced object into this workspace, overriding metadata.namespace.
    #[serde(default)]
    pub workspace: Option<String>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ResourceArgs {
    /// job, workflow, sandbox, workspace or policy (singular, plural or short: wf, sb, ws).
    pub kind: String,
    pub name: String,
    /// The workspace (namespace) of a job, workflow or sandbox; default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// job, workflow, sandbox, workspace or policy (singular, plural or short: wf, sb, ws).
    pub kind: String,
    /// The workspace (namespace), default "default". Ignored for workspaces and policies.
    #[serde(default = "default_workspace")]
    pub workspace: String,
    /// List every workspace instead of one.
    #[serde(default)]
    pub all_workspaces: bool,
    /// Only objects with these labels, as kubectl's -l: "app=web,tier!=db".
    #[serde(default)]
    pub label_selector: Option<String>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// The job's name.
    pub job: String,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
    /// Which run (default: the latest). Runs count from 1.
    #[serde(default)]
    pub run: Option<u32>,
    /// Which attempt of the run (default: the latest).
    #[serde(default)]
    pub attempt: Option<u32>,
    /// Only this step's output.
    #[serde(default)]
    pub step: Option<String>,
    /// How many of the last lines to return (default 100, at most 2000).
    #[serde(default)]
    pub tail_lines: Option<usize>,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct JobArgs {
    /// The job's name.
    pub name: String,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ContainersArgs {
    /// Only containers of resources in this workspace (default: every workspace).
    #[serde(default)]
    pub workspace: Option<String>,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateSandboxArgs {
    /// The SandboxTemplate to start from (its services, network and deadlines); see
    /// them with list_resources(kind="sandboxtemplate").
    pub template: String,
    /// The sandbox's name (default: sb-<random>).
    #[serde(default)]
    pub name: Option<String>,
    /// Stop the sandbox after this many seconds without exec or file activity
    /// (default: the template's).
    #[serde(default, alias = "idleTimeoutSeconds")]
    pub idle_timeout_seconds: Option<u64>,
    /// Stop it this many seconds after it starts, whatever its activity (default: the
    /// template's).
    #[serde(default, alias = "ttlSeconds")]
    pub ttl_seconds: Option<u64>,
    /// Wait until the sandbox is Ready before answering (default true).
    #[serde(default)]
    pub wait: Option<bool>,
    /// The longest wait, in seconds (default 120, at most 600).
    #[serde(default, alias = "maxWaitSeconds")]
    pub max_wait_seconds: Option<u64>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

/// A command: one string run with `sh -c`, or the program and its arguments.
#[derive(Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

impl Default for CommandLine {
    fn default() -> Self {
        CommandLine::Argv(Vec::new())
    }
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ExecInSandboxArgs {
    /// The sandbox's name.
    #[serde(alias = "name")]
    pub sandbox: String,
    /// A shell command line run with `sh -c` ("cd /work && make test"), or an array
    /// of the program and its arguments (["python3", "-c", "print(1)"]).
    pub command: CommandLine,
    /// The service (container) to run in (default: the sandbox's first).
    #[serde(default)]
    pub service: Option<String>,
    /// Kill the command after this many seconds (default 120, at most 900); the
    /// answer then says it timed out (exit code 124).
    #[serde(default, alias = "timeoutSeconds")]
    pub timeout_seconds: Option<u64>,
    /// Text given to the command on stdin.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Environment variables for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The directory to run in (absolute).
    #[serde(default, alias = "workingDir")]
    pub working_dir: Option<String>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

/// How `content` is written.
#[derive(Deserialize, JsonSchema, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContentEncoding {
    /// The content is the text of the file.
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "text")]
    Utf8,
    /// The content is the file's bytes in standard base64.
    #[serde(rename = "base64")]
    Base64,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    /// The sandbox's name.
    #[serde(alias = "name")]
    pub sandbox: String,
    /// The file's absolute path; missing parent directories are created.
    pub path: String,
    /// What the file holds: text, or base64 with encoding="base64".
    pub content: String,
    /// "utf-8" (default) or "base64".
    #[serde(default)]
    pub encoding: ContentEncoding,
    /// Permissions in octal, e.g. "755" for a script (default "644").
    #[serde(default)]
    pub mode: Option<String>,
    /// The service (container) (default: the sandbox's first).
    #[serde(default)]
    pub service: Option<String>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    /// The sandbox's name.
    #[serde(alias = "name")]
    pub sandbox: String,
    /// The file's absolute path.
    pub path: String,
    /// The most bytes to return (default 65536, at most 1048576); a longer file is
    /// cut, and the answer says so.
    #[serde(default, alias = "maxBytes")]
    pub max_bytes: Option<usize>,
    /// The service (container) (default: the sandbox's first).
    #[serde(default)]
    pub service: Option<String>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SandboxLogsArgs {
    /// The sandbox's name.
    #[serde(alias = "name")]
    pub sandbox: String,
    /// The service (container) whose output to read (default: the sandbox's first).
    #[serde(default)]
    pub service: Option<String>,
    /// How many of the last lines to return (default 100, at most 2000).
    #[serde(default, alias = "tailLines")]
    pub tail_lines: Option<usize>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ListSandboxesArgs {
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
    /// List every workspace instead of one.
    #[serde(default)]
    pub all_workspaces: bool,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SandboxArgs {
    /// The sandbox's name.
    #[serde(alias = "name")]
    pub sandbox: String,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct StartSandboxArgs {
    /// The sandbox's name.
    #[serde(alias = "name")]
    pub sandbox: String,
    /// Wait until it is Ready again (default true).
    #[serde(default)]
    pub wait: Option<bool>,
    /// The longest wait, in seconds (default 120, at most 600).
    #[serde(default, alias = "maxWaitSeconds")]
    pub max_wait_seconds: Option<u64>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RunWorkflowArgs {
    /// The Workflow's name (it must be applied first, with apply_resource).
    pub name: String,
    /// The run's inputs, each declared in the Workflow's spec.inputs. Example: {"ref": "main"}.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Wait for the run to end before answering (default true).
    #[serde(default)]
    pub wait: Option<bool>,
    /// The longest wait, in seconds (default 300, at most 900). The run goes on when the
    /// wait ends first; get_workflow follows it.
    #[serde(default)]
    pub max_wait_seconds: Option<u64>,
    /// Makes a retried call safe: a second call with the same key answers with the run
    /// the first one started instead of starting another. Default: a fresh key.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct WorkflowArgs {
    /// The Workflow's name.
    pub name: String,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ApproveNodeArgs {
    /// The Workflow's name.
    pub name: String,
    /// The approval node: its name in spec.jobs, or one matrix combination's.
    pub node: String,
    /// true approves (the node starts); false rejects (the node fails, and what needs
    /// it is skipped). Default true.
    #[serde(default)]
    pub approve: Option<bool>,
    /// Why; kept with the decision.
    #[serde(default)]
    pub message: String,
    /// The run whose node this decides; needed only when several runs are in progress
    /// (concurrencyPolicy: Allow).
    #[serde(default)]
    pub run: Option<u32>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RerunWorkflowArgs {
    /// The Workflow's name.
    pub name: String,
    /// "failed": rerun only the nodes that did not succeed in the last run (the others
    /// keep their results); "all" (the default): every node.
    #[serde(default)]
    pub mode: Option<String>,
    /// Rerun this node and everything downstream of it instead (not with mode).
    #[serde(default)]
    pub from: Option<String>,
    /// Inputs replacing the last run's; the others keep their values.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// The workspace (namespace), default "default".
    #[serde(default = "default_workspace")]
    pub workspace: String,
}

#[derive(Deserialize, JsonSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchRunsArgs {
    /// Words to find, as a phrase, in each run's summary, extracted error lines and output
    /// tails (for example "undefined reference" or "ModuleNotFoundError").
    #[serde(default)]
    pub grep: Option<String>,
    /// Only runs of this workspace (namespace); default: every workspace.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Only runs of this job.
    #[serde(default)]
    pub job: Option<String>,
    /// Only runs that ended so: Succeeded, Failed, TimedOut or Cancelled.
    #[serde(default)]
    pub phase: Option<String>,
    /// Only runs that finished within this long (30m, 24h, 7d) or since a time (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// Only runs of jobs with these labels: "key=value,key2=value2".
    #[serde(default)]
    pub labels: Option<String>,
    /// Only runs of this image (a name matches every tag of it).
    #[serde(default)]
    pub image: Option<String>,
    /// Only runs that showed an anomaly.
    #[serde(default)]
    pub anomalous: bool,
    /// How many runs to return, newest first (default 20, at most 100).
    #[serde(default)]
    pub limit: Option<usize>,
}
