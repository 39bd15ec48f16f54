//! What a request asks to do, read from its method and path as the Kubernetes API server
//! reads a RequestInfo, and whether a role allows it. Pure functions: the middleware in
//! `mod.rs` supplies the caller.

use axum::http::Method;

use crate::resources::workspace::Role;

const GROUP: &str = "/apis/orcaops.dev/v1alpha1";

/// The verbs of the role table (docs/security.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    /// A write of the status subresource: controllers write status, not people.
    UpdateStatus,
    Logs,
    History,
    Artifacts,
    Run,
    Cancel,
    Rerun,
    Approve,
    Reject,
    Exec,
    Cp,
    Start,
    Stop,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::UpdateStatus => "update status of",
            Verb::Logs => "read the logs of",
            Verb::History => "read the history of",
            Verb::Artifacts => "download artifacts of",
            Verb::Run => "run",
            Verb::Cancel => "cancel",
            Verb::Rerun => "rerun",
            Verb::Approve => "approve",
            Verb::Reject => "reject",
            Verb::Exec => "exec into",
            Verb::Cp => "copy files of",
            Verb::Start => "start",
            Verb::Stop => "stop",
        }
    }

    fn reads(self) -> bool {
        matches!(
            self,
            Verb::Get | Verb::List | Verb::Watch | Verb::Logs | Verb::History | Verb::Artifacts
        )
    }
}

/// What a request needs from its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health, readiness and the version, as a Kubernetes API server answers them.
    Anyone,
    /// Any valid key: discovery, OpenAPI, MCP (whose tools are checked call by call) and
    /// the key endpoints (whose handlers check the key's workspace).
    Authenticated,
    /// A server admin key: metrics, everything across workspaces, cluster-scoped writes.
    ServerAdmin,
    /// A verb on a resource in one workspace (namespace), or on a cluster-scoped object
    /// (`namespace` None) such as the Workspace itself.
    Resource {
        verb: Verb,
        resource: String,
        namespace: Option<String>,
        name: Option<String>,
    },
}

/// Reads what a request asks for from its method, path and query.
pub fn need(method: &Method, path: &str, query: Option<&str>) -> Need {
    let path = path.trim_end_matches('/');
    match path {
        "/healthz" | "/readyz" | "/livez" | "/version" | super::LOCAL_KEY_PATH => {
            return Need::Anyone;
        }
        "/metrics" => return Need::ServerAdmin,
        _ => {}
    }
    // A webhook delivery is signed with its trigger's secret, not an API key.
    if path.starts_with("/hooks/") {
        return Need::Anyone;
    }
    // The dashboard: its pages and assets hold no data, and decide themselves between
    // the app and the login page; what it shows comes from the API, checked as usual.
    if path == "/ui" || path.starts_with("/ui/") {
        return match path {
            "/ui/session" => Need::Authenticated,
            "/ui/login-link" => Need::ServerAdmin,
            _ => Need::Anyone,
        };
    }
    if path == "/mcp" || path.starts_with("/mcp/") {
        return Need::Authenticated;
    }
    let watch = query.is_some_and(|q| {
        q.split('&')
            .any(|p| p == "watch=true" || p == "watch=1" || p == "watch")
    });
    if let Some(rest) = path.strip_prefix(GROUP) {
        return group_need(method, rest, watch);
    }
    if let Some(rest) = path.strip_prefix("/api/v1") {
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        return match segments.as_slice() {
            [] => Need::Authenticated,
            ["namespaces", ns, resource, tail @ ..] => {
                namespaced(method, ns, resource, tail, watch)
            }
            // Core resources across namespaces (`/api/v1/events`).
            _ => Need::ServerAdmin,
        };
    }
    // Discovery, OpenAPI, and paths that answer 404.
    Need::Authenticated
}

fn group_need(method: &Method, rest: &str, watch: bool) -> Need {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] => Need::Authenticated,
        ["apikeys", ..] => Need::Authenticated,
        // The audit log: who did what, everywhere.
        ["auditlog", ..] => Need::ServerAdmin,
        ["namespaces", ns, resource, tail @ ..] => namespaced(method, ns, resource, tail, watch),
        // Containers, runs and usage across workspaces.
        ["containers" | "runs" | "usage", ..] => Need::ServerAdmin,
        [resource] => Need::Resource {
            verb: collection_verb(method, watch),
            resource: resource.to_string(),
            namespace: None,
            name: None,
        },
        [resource, name, tail @ ..] => Need::Resource {
            verb: object_verb(method, tail),
            resource: resource.to_string(),
            namespace: None,
            name: Some(name.to_string()),
        },
    }
}

fn namespaced(method: &Method, ns: &str, resource: &str, tail: &[&str], watch: bool) -> Need {
    let (verb, name) = match tail {
        [] if matches!(resource, "runs" | "usage") => (Verb::History, None),
        [] => (collection_verb(method, watch), None),
        [name, rest @ ..] => (object_verb(method, rest), Some(name.to_string())),
    };
    Need::Resource {
        verb,
        resource: resource.to_string(),
        namespace: Some(ns.to_string()),
        name,
    }
}

fn collection_verb(method: &Method, watch: bool) -> Verb {
    match *method {
        Method::POST => Verb::Create,
        Method::DELETE => Verb::Delete,
        _ if watch => Verb::Watch,
        _ => Verb::List,
    }
}

fn object_verb(method: &Method, subresource: &[&str]) -> Verb {
    let write = !matches!(*method, Method::GET | Method::HEAD);
    match subresource.first().copied() {
        None => match *method {
            Method::PUT => Verb::Update,
            Method::PATCH => Verb::Patch,
            Method::DELETE => Verb::Delete,
            Method::POST => Verb::Create,
            _ => Verb::Get,
        },
        Some("status") if write => Verb::UpdateStatus,
        Some("status") => Verb::Get,
        Some("log") => Verb::Logs,
        Some("runs") if write => Verb::Run,
        Some("runs") => Verb::History,
        Some("artifacts") => Verb::Artifacts,
        Some("cancel") => Verb::Cancel,
        Some("rerun") => Verb::Rerun,
        Some("approve") => Verb::Approve,
        Some("reject") => Verb::Reject,
        // The exec WebSocket is a GET.
        Some("exec") => Verb::Exec,
        Some("files") => Verb::Cp,
        Some("start") => Verb::Start,
        Some("stop") => Verb::Stop,
        // Unknown subresources answer 404; only admins learn that much.
        Some(_) if write => Verb::UpdateStatus,
        Some(_) => Verb::Get,
    }
}

/// Whether `role` allows `verb` on `resource` inside its own workspace.
pub fn role_allows(role: Role, verb: Verb, resource: &str) -> bool {
    let workload = matches!(resource, "jobs" | "workflows" | "sandboxes");
    let readable = workload || matches!(resource, "sandboxtemplates" | "events" | "runs" | "usage");
    match role {
        Role::Admin => true,
        Role::Developer => (readable && verb.reads()) || (workload && verb != Verb::UpdateStatus),
        Role::Viewer => readable && verb.reads(),
    }
}

/// Whether `role` in `workspace` allows a verb on a cluster-scoped object: members read
/// their own Workspace and admins change it; every caller reads Policies (they say what
/// is allowed). Everything else cluster-scoped needs a server admin key.
pub fn cluster_allows(
    role: Role,
    workspace: &str,
    verb: Verb,
    resource: &str,
    name: Option<&str>,
) -> bool {
    match resource {
        "workspaces" if name == Some(workspace) => {
            verb.reads() || (role == Role::Admin && matches!(verb, Verb::Update | Verb::Patch))
        }
        "policies" => verb.reads(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(verb: Verb, resource: &str, ns: Option<&str>, name: Option<&str>) -> Need {
        Need::Resource {
            verb,
            resource: resource.into(),
            namespace: ns.map(String::from),
            name: name.map(String::from),
        }
    }

    #[test]
    fn paths_read_as_kubernetes_request_info() {
        let ns = "/apis/orcaops.dev/v1alpha1/namespaces/team-a";
        let cases = [
            (Method::GET, "/healthz".to_string(), None, Need::Anyone),
            (Method::GET, "/metrics".into(), None, Need::ServerAdmin),
            (Method::POST, "/mcp".into(), None, Need::Authenticated),
            (Method::GET, "/apis".into(), None, Need::Authenticated),
            (Method::GET, "/openapi/v2".into(), None, Need::Authenticated),
            (
                Method::GET,
                format!("{ns}/jobs"),
                None,
                res(Verb::List, "jobs", Some("team-a"), None),
            ),
            (
                Method::GET,
                format!("{ns}/jobs"),
                Some("watch=true&resourceVersion=1"),
                res(Verb::Watch, "jobs", Some("team-a"), None),
            ),
            (
                Method::POST,
                format!("{ns}/jobs"),
                None,
                res(Verb::Create, "jobs", Some("team-a"), None),
            ),
            (
                Method::GET,
                format!("{ns}/jobs/build"),
                None,
                res(Verb::Get, "jobs", Some("team-a"), Some("build")),
            ),
            (
                Method::PATCH,
                format!("{ns}/jobs/build"),
                None,
                res(Verb::Patch, "jobs", Some("team-a"), Some("build")),
            ),
            (
                Method::DELETE,
                format!("{ns}/jobs/build"),
                None,
                res(Verb::Delete, "jobs", Some("team-a"), Some("build")),
            ),
            (
                Method::PUT,
                format!("{ns}/jobs/build/status"),
                None,
                res(Verb::UpdateStatus, "jobs", Some("team-a"), Some("build")),
            ),
            (
                Method::GET,
                format!("{ns}/jobs/build/log"),
                None,
                res(Verb::Logs, "jobs", Some("team-a"), Some("build")),
            ),
            (
                Method::GET,
                format!("{ns}/jobs/build/runs"),
                None,
                res(Verb::History, "jobs", Some("team-a"), Some("build")),
            ),
            (
                Method::POST,
                format!("{ns}/workflows/ci/runs"),
                None,
                res(Verb::Run, "workflows", Some("team-a"), Some("ci")),
            ),
            (
                Method::GET,
                format!("{ns}/jobs/build/artifacts/out"),
                None,
                res(Verb::Artifacts, "jobs", Some("team-a"), Some("build")),
            ),
            (
                Method::GET,
                format!("{ns}/sandboxes/dev/exec"),
                None,
                res(Verb::Exec, "sandboxes", Some("team-a"), Some("dev")),
            ),
            (
                Method::PUT,
                format!("{ns}/sandboxes/dev/files"),
                None,
                res(Verb::Cp, "sandboxes", Some("team-a"), Some("dev")),
            ),
            (
                Method::POST,
                format!("{ns}/workflows/ci/approve"),
                None,
                res(Verb::Approve, "workflows", Some("team-a"), Some("ci")),
            ),
            (
                Method::GET,
                format!("{ns}/runs"),
                None,
                res(Verb::History, "runs", Some("team-a"), None),
            ),
            (
                Method::GET,
                format!("{ns}/usage"),
                None,
                res(Verb::History, "usage", Some("team-a"), None),
            ),
            (
                Method::GET,
                "/apis/orcaops.dev/v1alpha1/runs".into(),
                None,
                Need::ServerAdmin,
            ),
            (
                Method::GET,
                "/apis/orcaops.dev/v1alpha1/usage".into(),
                None,
                Need::ServerAdmin,
            ),
            (
                Method::GET,
                "/apis/orcaops.dev/v1alpha1/containers".into(),
                None,
                Need::ServerAdmin,
            ),
            (
                Method::GET,
                "/apis/orcaops.dev/v1alpha1/jobs".into(),
                None,
                res(Verb::List, "jobs", None, None),
            ),
            (
                Method::PUT,
                "/apis/orcaops.dev/v1alpha1/workspaces/team-a".into(),
                None,
                res(Verb::Update, "workspaces", None, Some("team-a")),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/team-a/events".into(),
                None,
                res(Verb::List, "events", Some("team-a"), None),
            ),
            (
                Method::GET,
                "/api/v1/events".into(),
                None,
                Need::ServerAdmin,
            ),
            (
                Method::POST,
                "/apis/orcaops.dev/v1alpha1/apikeys".into(),
                None,
                Need::Authenticated,
            ),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(need(&method, &path, query), want, "{method} {path}");
        }
    }

    #[test]
    fn roles_allow_what_the_table_says() {
        use Verb::*;
        for verb in [Get, List, Watch, Logs, History, Artifacts] {
            assert!(role_allows(Role::Viewer, verb, "jobs"), "{verb:?}");
        }
        for verb in [
            Create, Update, Patch, Delete, Run, Cancel, Rerun, Exec, Cp, Approve, Reject,
        ] {
            assert!(!role_allows(Role::Viewer, verb, "jobs"), "viewer {verb:?}");
            assert!(
                role_allows(Role::Developer, verb, "sandboxes"),
                "developer {verb:?}"
            );
        }
        assert!(!role_allows(Role::Developer, UpdateStatus, "jobs"));
        assert!(!role_allows(Role::Developer, Create, "sandboxtemplates"));
        assert!(!role_allows(Role::Developer, Get, "secrets"));
        assert!(!role_allows(Role::Viewer, Get, "secrets"));
        assert!(!role_allows(Role::Developer, Create, "apikeys"));
        assert!(role_allows(Role::Admin, Get, "secrets"));
        assert!(role_allows(Role::Admin, Create, "sandboxtemplates"));
    }

    #[test]
    fn cluster_objects_are_a_members_own_workspace_and_policies() {
        assert!(cluster_allows(
            Role::Viewer,
            "team-a",
            Verb::Get,
            "workspaces",
            Some("team-a")
        ));
        assert!(!cluster_allows(
            Role::Viewer,
            "team-a",
            Verb::Get,
            "workspaces",
            Some("team-b")
        ));
        assert!(!cluster_allows(
            Role::Viewer,
            "team-a",
            Verb::List,
            "workspaces",
            None
        ));
        assert!(!cluster_allows(
            Role::Developer,
            "team-a",
            Verb::Update,
            "workspaces",
            Some("team-a")
        ));
        assert!(cluster_allows(
            Role::Admin,
            "team-a",
            Verb::Patch,
            "workspaces",
            Some("team-a")
        ));
        assert!(!cluster_allows(
            Role::Admin,
            "team-a",
            Verb::Delete,
            "workspaces",
            Some("team-a")
        ));
        assert!(cluster_allows(
            Role::Viewer,
            "team-a",
            Verb::List,
            "policies",
            None
        ));
        assert!(!cluster_allows(
            Role::Admin,
            "team-a",
            Verb::Create,
            "policies",
            None
        ));
    }
}
