//! Who is calling, and whether they may: API keys, roles and rate limits, checked before
//! any handler runs, for the REST API, watches, logs, exec, files and `/mcp` alike.
//!
//! - **Keys.** A request carries `Authorization: Bearer orca_<id>_<secret>`. The server
//!   keeps every key's row in memory (only the hash of its secret; see `token`), so a
//!   check costs a map lookup and a SHA-256. Rows are written through to SQLite.
//! - **The server admin key** lives in `<data-dir>/admin.key` (mode 0600), made at the
//!   first start. Clients on the same machine read it themselves: the server tells
//!   loopback callers where the file is ([`LOCAL_KEY_PATH`]), and the file's mode decides
//!   who can read it.
//! - **Roles** come from the Workspace's `spec.members`, looked up per request (cached
//!   for [`MEMBERS_TTL`]), so removing a member takes effect at once, not at key expiry.
//! - **Failures** are Kubernetes `Status` objects: 401 without a valid key, 403 naming
//!   the verb, the resource and the workspace, 429 with `Retry-After` past the key's rate.
//!   A caller outside a workspace gets 403 whether or not the object exists, so another
//!   workspace's objects are never revealed.

pub mod cookie;
pub mod keys_api;
pub(super) mod request;
mod token;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

pub use request::{Need, Verb, cluster_allows, need, role_allows};

use super::error::ApiError;
use crate::resources::workspace::{Role, WorkspaceSpec};
use crate::resources::{Kind, ObjectKey};
use crate::store::{LocalStore, ObjectStore, StoredKey};

/// Where a loopback client learns the path of the server admin key file.
pub const LOCAL_KEY_PATH: &str = "/.well-known/orcaops/local-admin-key";
/// The file in the data dir that holds the server admin key.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// The id of the server admin key's row.
pub const ADMIN_KEY_ID: &str = "admin";
/// How long a Workspace's members are trusted before they are read again.
pub const MEMBERS_TTL: Duration = Duration::from_secs(2);
/// How often a key's last use is written, at most.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

pub use crate::resources::keys::CREATED_BY;

pub use super::ratelimit::RateLimit;

/// The default of `--rate-limit`: generous for a person or an agent, a stop for a loop.
pub const DEFAULT_RATE_LIMIT: u32 = 200;

/// The caller of a request, once its key is checked. Handlers find it in the request's
/// extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub key_id: String,
    pub member: String,
    /// None for a server admin key.
    pub workspace: Option<String>,
    pub agent: Option<String>,
}

impl Identity {
    pub fn is_server_admin(&self) -> bool {
        self.workspace.is_none()
    }

    /// What `orcaops.dev/created-by` says of objects this caller creates.
    pub fn created_by(&self) -> String {
        self.agent.clone().unwrap_or_else(|| self.member.clone())
    }

    fn describe(&self) -> String {
        match &self.workspace {
            None => format!("server admin \"{}\"", self.member),
            Some(ws) => format!("\"{}\" of workspace {ws}", self.member),
        }
    }
}

/// A Workspace's members as last read, and when; None when it was not declared.
type CachedMembers = (Instant, Option<Vec<crate::resources::workspace::Member>>);

/// The keys, the members cache and the rate buckets of one server.
pub struct Auth {
    store: LocalStore,
    objects: Arc<dyn ObjectStore>,
    admin_key_file: PathBuf,
    keys: RwLock<HashMap<String, StoredKey>>,
    members: Mutex<HashMap<String, CachedMembers>>,
    buckets: super::ratelimit::Buckets,
    /// The dashboard's one-time login links.
    pub once: cookie::OnceTokens,
}

#[derive(thiserror::Error, Debug)]
pub enum AuthError {
    #[error(
        "cannot read the server admin key {path}: {source}; fix its permissions, or delete it and restart to make a new one"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} does not hold an orcaops key (it must be one line, orca_admin_<64 hex digits>); delete it and restart to make a new one"
    )]
    Malformed { path: PathBuf },
    #[error("cannot write the server admin key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read or write API keys in the store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl Auth {
    /// Loads the keys of `store`, and the server admin key of its data dir, making the
    /// key (and its file, mode 0600) when there is none.
    pub async fn open(
        store: LocalStore,
        objects: Arc<dyn ObjectStore>,
        rate: Option<RateLimit>,
    ) -> Result<Auth, AuthError> {
        let admin_key_file = store.data_dir().join(ADMIN_KEY_FILE);
        let hash = admin_key_hash(&admin_key_file)?;
        // Absolute, for clients in other directories (LOCAL_KEY_PATH answers with it).
        let admin_key_file = std::fs::canonicalize(&admin_key_file).unwrap_or(admin_key_file);
        let mut keys: HashMap<String, StoredKey> = store
            .api_keys()
            .await?
            .into_iter()
            .map(|k| (k.id.clone(), k))
            .collect();
        let stored = keys.get(ADMIN_KEY_ID);
        if stored.is_none_or(|k| k.hash != hash || k.workspace.is_some()) {
            let admin = StoredKey {
                id: ADMIN_KEY_ID.into(),
                workspace: None,
                member: "local-admin".into(),
                agent: None,
                hash,
                created_at: Utc::now(),
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
                rotated_to: None,
            };
            store.put_api_key(&admin).await?;
            keys.insert(admin.id.clone(), admin);
        }
        Ok(Auth {
            store,
            objects,
            admin_key_file,
            keys: RwLock::new(keys),
            members: Mutex::new(HashMap::new()),
            buckets: super::ratelimit::Buckets::new(rate),
            once: cookie::OnceTokens::default(),
        })
    }

    pub fn admin_key_file(&self) -> &Path {
        &self.admin_key_file
    }

    /// The server admin key itself, read from its file: what a one-time login link logs a
    /// browser in with.
    pub fn admin_key(&self) -> Result<String, ApiError> {
        std::fs::read_to_string(&self.admin_key_file)
            .map(|text| text.trim().to_string())
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    format!(
                        "cannot read the server admin key {}: {e}",
                        self.admin_key_file.display()
                    ),
                )
            })
    }

    /// The identity a token proves, or why it proves none.
    pub fn authenticate(&self, token: &str) -> Result<Identity, ApiError> {
        let invalid = || {
            unauthorized(
                "the API key is not valid; check it, or ask a workspace admin for a new one (`orcaops key create`)",
            )
        };
        let (id, secret) = token::parse(token).ok_or_else(invalid)?;
        let now = Utc::now();
        let (identity, touch) = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            let key = keys.get(id).ok_or_else(invalid)?;
            if !token::same(&token::hash(secret), &key.hash) {
                return Err(invalid());
            }
            if let Some(at) = key.revoked_at {
                return Err(unauthorized(format!(
                    "API key {id} was revoked at {}; ask a workspace admin for a new one",
                    at.to_rfc3339()
                )));
            }
            if let Some(at) = key.expires_at.filter(|at| *at <= now) {
                let rotated = key
                    .rotated_to
                    .as_ref()
                    .map(|to| format!(" (it was rotated: use key {to})"))
                    .unwrap_or_default();
                return Err(unauthorized(format!(
                    "API key {id} expired at {}{rotated}",
                    at.to_rfc3339()
                )));
            }
            let touch = key.last_used_at.is_none_or(|at| now - at > TOUCH_EVERY);
            (
                Identity {
                    key_id: key.id.clone(),
                    member: key.member.clone(),
                    workspace: key.workspace.clone(),
                    agent: key.agent.clone(),
                },
                touch,
            )
        };
        if touch {
            self.touch(&identity.key_id, now);
        }
        Ok(identity)
    }

    /// Notes a key's use in memory, and in the store without holding up the request.
    fn touch(&self, id: &str, now: DateTime<Utc>) {
        if let Some(key) = self
            .keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            key.last_used_at = Some(now);
        }
        let store = self.store.clone();
        let used = vec![(id.to_string(), now)];
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_keys(&used).await {
                tracing::debug!(error = %e, "could not record a key's last use");
            }
        });
    }

    /// Takes one request from the key's bucket; Err with the seconds to wait when empty.
    fn take(&self, id: &str) -> Result<(), u64> {
        self.buckets.take(id)
    }

    /// The role of `member` in `workspace`, from its Workspace's members; None when the
    /// workspace is not declared or does not list the member.
    pub async fn role(&self, workspace: &str, member: &str) -> Result<Option<Role>, ApiError> {
        let cached = {
            let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            members
                .get(workspace)
                .filter(|(at, _)| at.elapsed() < MEMBERS_TTL)
                .map(|(_, m)| m.clone())
        };
        let members = match cached {
            Some(members) => members,
            None => {
                let key = ObjectKey::new(Kind::Workspace, "", workspace);
                let members = self.objects.get(&key).await?.and_then(|obj| {
                    serde_json::from_value::<WorkspaceSpec>(obj.spec)
                        .ok()
                        .map(|spec| spec.members)
                });
                self.members
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(workspace.to_string(), (Instant::now(), members.clone()));
                members
            }
        };
        Ok(members.and_then(|members| members.iter().find(|m| m.name == member).map(|m| m.role)))
    }

    /// Whether the caller may do what the request needs; Err is the 403 to send.
    pub async fn authorize(&self, who: &Identity, need: &Need) -> Result<(), ApiError> {
        if who.is_server_admin() {
            return Ok(());
        }
        let Need::Resource {
            verb,
            resource,
            namespace,
            name,
        } = need
        else {
            return match need {
                Need::ServerAdmin => Err(forbidden(format!(
                    "{} may not use this endpoint: it spans every workspace and needs a server admin key",
                    who.describe()
                ))),
                _ => Ok(()),
            };
        };
        let workspace = who.workspace.as_deref().unwrap_or_default();
        let role = self.role(workspace, &who.member).await?;
        let Some(role) = role else {
            return Err(forbidden(format!(
                "{} is not a member of workspace {workspace} (spec.members of Workspace {workspace} must list it); ask a workspace admin to add it",
                who.describe()
            )));
        };
        let allowed = match namespace {
            Some(ns) => ns == workspace && role_allows(role, *verb, resource),
            None => cluster_allows(role, workspace, *verb, resource, name.as_deref()),
        };
        if allowed {
            return Ok(());
        }
        let role_name = role_str(role);
        let target = match (namespace, name) {
            (Some(ns), Some(name)) => format!("{resource} \"{name}\" in workspace {ns}"),
            (Some(ns), None) => format!("{resource} in workspace {ns}"),
            (None, Some(name)) => format!("{resource} \"{name}\""),
            (None, None) => format!("{resource} across workspaces"),
        };
        Err(forbidden(format!(
            "{} ({role_name}) may not {} {target}",
            who.describe(),
            verb.as_str()
        )))
    }

    fn keys_snapshot(&self) -> Vec<StoredKey> {
        let mut keys: Vec<StoredKey> = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        keys
    }

    async fn save(&self, key: StoredKey) -> Result<(), ApiError> {
        self.store.put_api_key(&key).await?;
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.id.clone(), key);
        Ok(())
    }

    fn key(&self, id: &str) -> Option<StoredKey> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

pub fn role_str(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Developer => "developer",
        Role::Viewer => "viewer",
    }
}

/// The hash of the admin key in `path`, writing a new key there first when there is none.
fn admin_key_hash(path: &Path) -> Result<Vec<u8>, AuthError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = text.trim();
            match token::parse(text) {
                Some((ADMIN_KEY_ID, secret)) => Ok(token::hash(secret)),
                _ => Err(AuthError::Malformed {
                    path: path.to_path_buf(),
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let new = token::generate_with_id(ADMIN_KEY_ID);
            write_private(path, &format!("{}\n", new.token)).map_err(|source| {
                AuthError::Write {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            Ok(new.hash)
        }
        Err(source) => Err(AuthError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes a new file readable by its owner only, refusing to replace one.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

pub fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
}

pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message)
}

const NO_KEY: &str = "no API key: send `Authorization: Bearer <key>`. On the server's own machine the CLI and `orcaops mcp` find the local admin key by themselves; elsewhere pass --token or set ORCAOPS_TOKEN (kubectl: --token). Keys are made with `orcaops key create`";

/// The middleware: authenticates, rate-limits and authorizes every request, and leaves
/// the caller's [`Identity`] in the request's extensions.
pub async fn middleware(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let need = need(req.method(), req.uri().path(), req.uri().query());
    if need == Need::Anyone {
        return next.run(req).await;
    }
    let who = match req.headers().get(header::AUTHORIZATION) {
        Some(value) => token::bearer(value.as_bytes())
            .map_err(|e| unauthorized(format!("{e}; send `Authorization: Bearer <key>`")))
            .and_then(|token| auth.authenticate(token)),
        // The dashboard's cookie: a write must show it comes from the dashboard's own
        // script (a header no form on another site can add).
        None => match cookie::key(req.headers()) {
            None => Err(unauthorized(NO_KEY)),
            Some(_)
                if cookie::writes(req.method())
                    && !req.headers().contains_key(cookie::CSRF_HEADER) =>
            {
                return forbidden(format!(
                    "a write authenticated by the dashboard's cookie must carry the header {}; \
                     scripts and tools send `Authorization: Bearer <key>` instead",
                    cookie::CSRF_HEADER
                ))
                .into_response();
            }
            Some(token) => auth.authenticate(&token),
        },
    };
    let who = match who {
        Ok(who) => who,
        Err(e) => {
            let mut response = e.into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    if let Err(wait) = auth.take(&who.key_id) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!(
                "API key {} is over its rate limit; retry after {wait}s (the server's --rate-limit sets it)",
                who.key_id
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return response;
    }
    if let Err(e) = auth.authorize(&who, &need).await {
        return e.into_response();
    }
    req.extensions_mut().insert(who.clone());
    let mut response = next.run(req).await;
    // For the layers outside this one (the audit log): who was answered.
    response.extensions_mut().insert(who);
    response
}

/// `GET /.well-known/orcaops/local-admin-key`: where the server admin key file is, for a
/// client on this machine (loopback callers only). Reading the file is what proves the
/// client may use it.
pub async fn local_admin_key(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    let loopback = super::tls::peer(&request).is_some_and(|p| p.ip().to_canonical().is_loopback());
    if !loopback {
        return ApiError::not_found("the requested resource").into_response();
    }
    axum::Json(serde_json::json!({ "path": auth.admin_key_file() })).into_response()
}

/// An HTTP client that sends the server admin key of the data dir `data_dir`, for the
/// crate's tests of a served API.
#[cfg(test)]
pub(crate) fn admin_client(data_dir: &Path) -> reqwest::Client {
    let key = std::fs::read_to_string(data_dir.join(ADMIN_KEY_FILE)).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", key.trim()).parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}
