//! The paths of the sandbox subresources: exec (collected, streamed, WebSocket), files,
//! a service's log, stop and start.

use utoipa::openapi::path::{HttpMethod, PathItemBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ContentBuilder, KnownFormat, ObjectBuilder, PathsBuilder, Required, ResponseBuilder,
    SchemaFormat, Type,
};

use super::operations::{
    json_content, namespace_param, ok, operation, path_param, query, schema_ref, string_schema,
};
use super::schemas::{EXEC_REQUEST, EXEC_RESULT, EXEC_STREAM_EVENT, FILE_UPLOAD};
use super::{BASE, schema_name};

const TAG: &str = "sandboxes";

fn binary() -> ObjectBuilder {
    string_schema().format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
}

pub(super) fn sandbox_paths(paths: PathsBuilder) -> PathsBuilder {
    let item = format!("{BASE}/namespaces/{{namespace}}/sandboxes/{{name}}");
    let params = || {
        vec![
            namespace_param(),
            path_param("name", "The name of the sandbox."),
        ]
    };
    let service = || {
        query(
            "service",
            "The service (container) to use; the sandbox's first service when absent.",
            string_schema(),
        )
    };
    let path = || {
        query(
            "path",
            "An absolute path in the container, without `..` components (422 otherwise).",
            string_schema(),
        )
        .required(Required::True)
    };
    let not_ready = "A sandbox that is not Ready is 409 Conflict, with a message that says whether to wait (Pending, Starting: `orcaops get sandbox NAME -w`) or to start it (Stopped, Expired: POST .../start). An unknown service is 400 and lists the services.";

    let exec = operation(
        "execInSandbox",
        "Run a command in a sandbox",
        &format!(
            "Runs `command` in a service container and answers its exit code, stdout and stderr once it ends (each as text, or base64 when the bytes are not UTF-8). With `stream=true` the answer is `application/x-ndjson` instead: one JSON object per line as output arrives, `{{\"stream\":\"stdout\",\"data\":\"...\",\"encoding\":\"utf-8\"}}`, then `{{\"exit\":{{\"code\":0,\"timedOut\":false,\"durationMs\":12}}}}`. The request timeout of the API does not apply: `timeoutSeconds` bounds the command. {not_ready}"
        ),
        TAG,
    )
    .parameters(Some(params().into_iter().chain([query(
        "stream",
        "Stream the output as NDJSON lines while the command runs.",
        ObjectBuilder::new().schema_type(Type::Boolean),
    )])))
    .request_body(Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", json_content(schema_ref(EXEC_REQUEST)).build())
            .build(),
    ))
    .response(
        "200",
        ok("The exit code and the output", EXEC_RESULT)
            .content(
                "application/x-ndjson",
                json_content(schema_ref(EXEC_STREAM_EVENT)).build(),
            )
            .build(),
    );

    let exec_ws = operation(
        "execInSandboxInteractive",
        "Run an interactive command in a sandbox (WebSocket)",
        "Upgrade to a WebSocket with subprotocol `v5.channel.k8s.io` (or `v4.channel.k8s.io`), Kubernetes' exec framing: each binary message starts with its channel byte, 0 stdin (to the server), 1 stdout, 2 stderr, 3 the final status as JSON (`{\"status\":\"Success\"}`, or `{\"status\":\"Failure\",\"details\":{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"N\"}]}}`), 4 terminal size (to the server, `{\"Width\":80,\"Height\":24}`); in v5, `[255, 0]` from the client closes stdin. The server closes the socket after the status. Without the upgrade, the answer is 400.",
        TAG,
    )
    .parameters(Some(params().into_iter().chain([
        query(
            "command",
            "The program, then each argument: repeat the parameter (`command=sh&command=-c&command=ls`).",
            string_schema(),
        )
        .required(Required::True),
        service(),
        query(
            "stdin",
            "Attach stdin (channel 0).",
            ObjectBuilder::new().schema_type(Type::Boolean),
        ),
        query(
            "tty",
            "Allocate a terminal: stdout and stderr then arrive together on channel 1, and resizes (channel 4) apply.",
            ObjectBuilder::new().schema_type(Type::Boolean),
        ),
        query("env", "NAME=value; repeat for more.", string_schema()),
        query("workingDir", "An absolute directory to run in.", string_schema()),
        query(
            "timeoutSeconds",
            "Kill the command after this many seconds (exit code 124).",
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)),
        ),
    ])))
    .response(
        "101",
        ResponseBuilder::new()
            .description("Switching to the WebSocket protocol")
            .build(),
    );

    let upload = operation(
        "writeSandboxFiles",
        "Write a file or a directory into a sandbox",
        &format!(
            "`application/octet-stream`: the body becomes the file at `path` (parent directories are created; `mode` sets its permissions, default 0644). `application/x-tar`: the archive is extracted into the directory `path`, which is created if missing. At most {} MiB. {not_ready}",
            super::super::MAX_FILE_BYTES / (1024 * 1024)
        ),
        TAG,
    )
    .parameters(Some(params().into_iter().chain([
        path(),
        service(),
        query(
            "mode",
            "The file's permissions in octal (default 0644); ignored for a tar.",
            string_schema(),
        ),
    ])))
    .request_body(Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(
                "application/octet-stream",
                ContentBuilder::new().schema(Some(binary())).build(),
            )
            .content(
                "application/x-tar",
                ContentBuilder::new().schema(Some(binary())).build(),
            )
            .build(),
    ))
    .response("200", ok("Written", FILE_UPLOAD).build());

    let download = operation(
        "readSandboxFiles",
        "Read a file or a directory from a sandbox",
        &format!(
            "A file comes as `application/octet-stream` with Content-Length and X-Checksum-Sha256; a directory as a streamed `application/x-tar` whose root entry is the directory's name (as `docker cp` makes it). The header X-Orcaops-Path-Kind says `file` or `directory` (HEAD answers only the headers). A missing path is 404. {not_ready}"
        ),
        TAG,
    )
    .parameters(Some(params().into_iter().chain([path(), service()])))
    .response(
        "200",
        ResponseBuilder::new()
            .description("The file, or a tar of the directory")
            .content(
                "application/octet-stream",
                ContentBuilder::new().schema(Some(binary())).build(),
            )
            .content(
                "application/x-tar",
                ContentBuilder::new().schema(Some(binary())).build(),
            )
            .build(),
    );

    let log = operation(
        "readSandboxLog",
        "Read the output of a sandbox's service",
        &format!(
            "Plain text: what the service's command wrote to stdout and stderr, as they interleave (not what execs print). With follow=true the response streams what it writes next, until the container stops or the client goes. On a cluster this is 501: use `kubectl logs POD -c SERVICE`. {not_ready}"
        ),
        TAG,
    )
    .parameters(Some(params().into_iter().chain([
        service(),
        query(
            "follow",
            "Keep the response open and stream new output until the container stops.",
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
        ResponseBuilder::new()
            .description("The service's output")
            .content(
                "text/plain",
                ContentBuilder::new().schema(Some(string_schema())).build(),
            )
            .build(),
    );

    let action = |id: &str, summary: &str, description: &str| {
        operation(id, summary, description, TAG)
            .parameters(Some(params()))
            .response(
                "200",
                ok(
                    "The sandbox, with the request recorded",
                    &schema_name("Sandbox"),
                )
                .build(),
            )
    };
    paths
        .path(
            format!("{item}/exec"),
            PathItemBuilder::new()
                .operation(HttpMethod::Post, exec.build())
                .operation(HttpMethod::Get, exec_ws.build())
                .build(),
        )
        .path(
            format!("{item}/files"),
            PathItemBuilder::new()
                .operation(HttpMethod::Get, download.build())
                .operation(HttpMethod::Put, upload.build())
                .build(),
        )
        .path(
            format!("{item}/log"),
            PathItemBuilder::new()
                .operation(HttpMethod::Get, log.build())
                .build(),
        )
        .path(
            format!("{item}/stop"),
            PathItemBuilder::new()
                .operation(
                    HttpMethod::Post,
                    action(
                        "stopSandbox",
                        "Stop a sandbox",
                        "Sets spec.state to Stopped: the containers stop, their files and the volumes are kept. Start it again with startSandbox.",
                    )
                    .build(),
                )
                .build(),
        )
        .path(
            format!("{item}/start"),
            PathItemBuilder::new()
                .operation(
                    HttpMethod::Post,
                    action(
                        "startSandbox",
                        "Start a stopped or expired sandbox",
                        "Sets spec.state to Running and the annotation orcaops.dev/start to now, which also revives an Expired sandbox; its idle and TTL deadlines count from the new start. Watch readSandbox until status.phase is Ready.",
                    )
                    .build(),
                )
                .build(),
        )
}
