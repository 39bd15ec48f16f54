//! The HTTP client the CLI and the MCP tools talk to the API with (`orcaops serve`, an
//! embedded server, or `operator --api`).

use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::Value;

use super::error::ClientError;
use crate::resources::{Kind, Object, ObjectKey};
use crate::server::Status;

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    credentials: Credentials,
    /// Where the `Warning` headers of answers go: None prints them to stderr (the CLI, as
    /// kubectl does); Some keeps them for the caller to take (`policy test`, MCP tools).
    warnings: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
}

/// The API key a client sends.
#[derive(Clone)]
enum Credentials {
    /// This one (`--token`, `ORCAOPS_TOKEN`, or an MCP caller's own), or none at all.
    Given(Option<String>),
    /// The server admin key of a server on this machine, found once on first use.
    Local(std::sync::Arc<tokio::sync::OnceCell<Option<String>>>),
}

/// Where a server tells a client on its own machine the path of its admin key file.
const LOCAL_KEY_PATH: &str = "/.well-known/orcaops/local-admin-key";

/// Whether `base` names this machine (the admin key is never sent anywhere else).
fn is_loopback(base: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

const BASE: &str = "/apis/orcaops.dev/v1alpha1";

pub fn collection_path(kind: Kind, ns: Option<&str>) -> String {
    match ns.filter(|_| kind.namespaced()) {
        Some(ns) => format!("{BASE}/namespaces/{ns}/{}", kind.plural()),
        None => format!("{BASE}/{}", kind.plural()),
    }
}

pub fn object_path(key: &ObjectKey) -> String {
    let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
    format!("{}/{}", collection_path(key.kind, ns), key.name)
}

impl ApiClient {
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(ClientError::usage(format!(
                "--server \"{base}\" is not an http:// URL; use for example http://127.0.0.1:7700"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| ClientError::usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(ApiClient {
            base,
            http,
            credentials: Credentials::Local(Default::default()),
            warnings: None,
        })
    }

    /// This client keeping the `Warning` headers of answers (a Warn policy's findings)
    /// for [`take_warnings`](Self::take_warnings) instead of printing them.
    pub fn keeping_warnings(mut self) -> Self {
        self.warnings = Some(Default::default());
        self
    }

    /// The warnings kept since the last call (none when they are printed).
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings
            .as_ref()
            .map(|w| std::mem::take(&mut *w.lock().expect("warnings lock")))
            .unwrap_or_default()
    }

    /// This client with `token` as its key (`--token`, `ORCAOPS_TOKEN`); None keeps
    /// finding the local admin key by itself.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        if let Some(token) = token.filter(|t| !t.trim().is_empty()) {
            self.credentials = Credentials::Given(Some(token.trim().to_string()));
        }
        self
    }

    /// This client with `token` as its key, or with none at all: never the local admin
    /// key (MCP over HTTP acts with each caller's own key).
    pub fn acting_as(mut self, token: Option<String>) -> Self {
        self.credentials = Credentials::Given(token);
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The key requests carry: the one given, or the admin key of a server on this
    /// machine, which tells loopback callers where its file is (the file's mode decides
    /// who may read it).
    pub async fn token(&self) -> Option<String> {
        match &self.credentials {
            Credentials::Given(token) => token.clone(),
            Credentials::Local(found) => found
                .get_or_init(|| async {
                    if !is_loopback(&self.base) {
                        return None;
                    }
                    let answer = self
                        .http
                        .get(format!("{}{LOCAL_KEY_PATH}", self.base))
                        .timeout(Duration::from_secs(3))
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())?;
                    let found: Value = answer.json().await.ok()?;
                    let path = found.get("path")?.as_str()?;
                    let key = std::fs::read_to_string(path).ok()?;
                    Some(key.trim().to_string())
                })
                .await
                .clone(),
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        ClientError::unreachable(format!(
            "cannot reach the orcaops server at {}: {e}\n  start one with `orcaops serve --dir DIR`, or point --server / ORCAOPS_SERVER at a running one",
            self.base
        ))
    }

    /// True when a server answers `/healthz`.
    pub async fn is_up(&self) -> bool {
        let request = self
            .http
            .get(format!("{}/healthz", self.base))
            .timeout(Duration::from_millis(800));
        matches!(request.send().await, Ok(r) if r.status().is_success())
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<reqwest::Response, ClientError> {
        self.request_with_headers(method, path, body, &[]).await
    }

    /// A request with headers of its own (such as `Idempotency-Key`).
    pub async fn request_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = self.token().await {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some((content_type, body)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        self.warn(response.headers());
        if response.status().is_success() {
            return Ok(response);
        }
        let code = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<Status>(&text) {
            Ok(status) => ClientError::from_status(code.as_u16(), status),
            // A HEAD answer has no body; its code still says what happened.
            Err(_) => {
                ClientError::refused(code.as_u16(), format!("the server answered {code}: {text}"))
            }
        })
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value, ClientError> {
        self.json_with_headers(method, path, body, &[]).await
    }

    pub async fn json_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        let response = self
            .request_with_headers(method, path, body, headers)
            .await?;
        response.json().await.map_err(|e| {
            ClientError::usage(format!("the server sent a body that is not JSON: {e}"))
        })
    }

    pub async fn get_object(&self, key: &ObjectKey) -> Result<Object, ClientError> {
        let value = self.json(Method::GET, &object_path(key), None).await?;
        serde_json::from_value(value)
            .map_err(|e| ClientError::usage(format!("unexpected object from the server: {e}")))
    }

    /// Like [`ApiClient::get_object`], but `None` when the object does not exist.
    pub async fn find_object(&self, key: &ObjectKey) -> Result<Option<Object>, ClientError> {
        match self.get_object(key).await {
            Ok(obj) => Ok(Some(obj)),
            Err(ClientError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list(
        &self,
        kind: Kind,
        ns: Option<&str>,
        selector: Option<&str>,
    ) -> Result<(Vec<Object>, String), ClientError> {
        self.list_selected(kind, ns, selector, None).await
    }

    /// A list with label and field selectors, and the resourceVersion to watch it from.
    pub async fn list_selected(
        &self,
        kind: Kind,
        ns: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<(Vec<Object>, String), ClientError> {
        let mut query = Vec::new();
        if let Some(sel) = labels {
            query.push(format!("labelSelector={}", urlencode(sel)));
        }
        if let Some(sel) = fields {
            query.push(format!("fieldSelector={}", urlencode(sel)));
        }
        let mut path = collection_path(kind, ns);
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        let value = self.json(Method::GET, &path, None).await?;
        let rv = value
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let items =
            serde_json::from_value(value.get("items").cloned().unwrap_or(Value::Array(vec![])))
                .map_err(|e| ClientError::usage(format!("unexpected list from the server: {e}")))?;
        Ok((items, rv))
    }

    /// Server-side apply of one object; returns the stored object and what happened.
    pub async fn apply(&self, obj: &Object) -> Result<(Object, String), ClientError> {
        self.apply_with(obj, false).await
    }

    /// Server-side apply; with `dry_run`, everything is checked (validation, policies)
    /// and nothing is written: the answer is what would be stored.
    pub async fn apply_with(
        &self,
        obj: &Object,
        dry_run: bool,
    ) -> Result<(Object, String), ClientError> {
        let body = serde_json::to_vec(obj).expect("objects serialize");
        let mut path = object_path(&obj.key());
        if dry_run {
            path.push_str("?dryRun=All");
        }
        let response = self
            .request(
                Method::PATCH,
                &path,
                Some(("application/apply-patch+yaml", body)),
            )
            .await?;
        let outcome = response
            .headers()
            .get("x-orcaops-apply")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("configured")
            .to_string();
        let obj = response
            .json()
            .await
            .map_err(|e| ClientError::usage(format!("unexpected answer to apply: {e}")))?;
        Ok((obj, outcome))
    }

    /// A streaming body, as chunks of bytes.
    pub async fn stream(
        &self,
        path: &str,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes, reqwest::Error>> + use<>, ClientError> {
        let response = self.request(Method::GET, path, None).await?;
        Ok(response.bytes_stream())
    }

    /// A newline-delimited JSON stream (a watch), as parsed values.
    pub async fn json_lines(
        &self,
        path: &str,
    ) -> Result<impl Stream<Item = Value> + use<>, ClientError> {
        let chunks = self.stream(path).await?;
        let mut buf = Vec::new();
        Ok(chunks
            .take_while(|c| futures::future::ready(c.is_ok()))
            .flat_map(move |chunk| {
                buf.extend_from_slice(&chunk.unwrap_or_default());
                let mut out = Vec::new();
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Ok(v) = serde_json::from_slice(&line) {
                        out.push(v);
                    }
                }
                futures::stream::iter(out)
            }))
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl ApiClient {
    /// Prints each `Warning` header of an answer (a Warn policy's finding) to stderr, as
    /// kubectl does (`Warning: <text>`), or keeps it (see `keeping_warnings`).
    fn warn(&self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all(reqwest::header::WARNING) {
            let Ok(text) = value.to_str() else { continue };
            let text = warning_text(text);
            match &self.warnings {
                Some(kept) => kept.lock().expect("warnings lock").push(text),
                None => eprintln!("Warning: {text}"),
            }
        }
    }
}

/// The text of a `Warning: 299 - "text"` header.
pub fn warning_text(header: &str) -> String {
    let rest = header.trim();
    let rest = rest
        .strip_prefix("299")
        .map(str::trim_start)
        .unwrap_or(rest);
    let rest = rest.strip_prefix('-').map(str::trim_start).unwrap_or(rest);
    let Some(quoted) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return rest.to_string();
    };
    // A backslash quotes the character after it (RFC 7230's quoted-pair).
    let mut text = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        text.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    text
}
