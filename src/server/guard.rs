//! Requests a browser sends on behalf of some web page: the `Host` they name (DNS
//! rebinding) and the `Origin` they come from (cross-site requests, CORS).
//!
//! The API has no authentication yet, and it could not rely on one against a browser
//! anyway (a dashboard will use cookies, which a browser attaches to cross-site requests
//! too). So any page the user visits could otherwise create a Job or exec in a sandbox on
//! `127.0.0.1`. Two checks close that, before any handler runs (and for `/mcp` too):
//!
//! - **Host.** A page on `evil.example` whose name is re-pointed at `127.0.0.1` (DNS
//!   rebinding) is same-origin with itself, so the browser sends no `Origin`; but its
//!   requests name `evil.example` in `Host`. The server answers only to names it was told
//!   about: `localhost`, IP literals (a page cannot rebind an address), the machine's host
//!   name when bound beyond loopback, and `--allowed-host`.
//! - **Origin.** A cross-origin request (a form post, a `fetch`, a WebSocket) carries the
//!   page's `Origin`. It is refused unless it is the server's own origin or one listed
//!   with `--cors-origin`; those get CORS answers, preflights included.
//!
//! Requests without `Origin` (curl, the CLI, kubectl, MCP clients) are not affected.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::RateLimit;
use super::error::{ApiError, StatusCause};

/// Who may reach the API besides same-origin requests on its own names: the values of
/// `--cors-origin` and `--allowed-host`, checked by [`Access::new`]; and how fast one
/// API key may call it (`--rate-limit`).
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    /// Normalised origins (`scheme://host[:port]`, lowercase, no default port).
    origins: Vec<String>,
    /// Lowercase host names; `*.example.com` matches every name under example.com.
    hosts: Vec<String>,
    /// Requests per key; None: unlimited.
    pub(super) rate: Option<RateLimit>,
    /// A second listener that serves the same API over HTTPS.
    pub(super) tls: Option<super::tls::TlsOptions>,
    /// False only in `benches/auth.rs`, to measure what authentication costs.
    pub(super) authenticate: bool,
    /// False only in `benches/auth.rs`, to measure what the audit log costs.
    pub(super) audit: bool,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            origins: Vec::new(),
            hosts: Vec::new(),
            rate: RateLimit::per_second(super::auth::DEFAULT_RATE_LIMIT),
            tls: None,
            authenticate: true,
            audit: true,
        }
    }
}

/// A `--cors-origin` or `--allowed-host` value that cannot be used.
#[derive(thiserror::Error, Debug, PartialEq)]
pub enum AccessError {
    #[error(
        "--cors-origin {value:?}: {problem}; give an origin as a browser sends it, scheme://host[:port] (e.g. http://localhost:3000 or https://dash.example.com)"
    )]
    Origin { value: String, problem: String },
    #[error(
        "--allowed-host {value:?}: {problem}; give a host name as clients type it in URLs (e.g. orcaops.internal, or *.example.com for every name under example.com), without scheme or port"
    )]
    Host { value: String, problem: String },
}

impl Access {
    /// Checks and normalises the flags' values.
    pub fn new(cors_origins: &[String], allowed_hosts: &[String]) -> Result<Access, AccessError> {
        let origins = cors_origins
            .iter()
            .map(|value| {
                normalise_origin(value).map_err(|problem| AccessError::Origin {
                    value: value.clone(),
                    problem,
                })
            })
            .collect::<Result<_, _>>()?;
        let hosts = allowed_hosts
            .iter()
            .map(|value| {
                host_pattern(value).map_err(|problem| AccessError::Host {
                    value: value.clone(),
                    problem,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Access {
            origins,
            hosts,
            ..Access::default()
        })
    }

    /// At most `per_second` requests a second per API key (bursts of ten times that);
    /// 0 lifts the limit.
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.rate = RateLimit::per_second(per_second);
        self
    }

    /// Serves the API with no authentication at all: for `benches/auth.rs`, which
    /// measures what authentication adds to a request. No command can ask for it.
    #[doc(hidden)]
    pub fn unauthenticated_for_benchmarks(mut self) -> Self {
        self.authenticate = false;
        self
    }

    /// Serves the API without recording in the audit log: for `benches/auth.rs`, which
    /// measures what the log adds to a write. No command can ask for it.
    #[doc(hidden)]
    pub fn unaudited_for_benchmarks(mut self) -> Self {
        self.audit = false;
        self
    }

    /// Serves the API over HTTPS too, as `tls` says (`--tls-listen`).
    pub fn with_tls(mut self, tls: Option<super::tls::TlsOptions>) -> Self {
        self.tls = tls;
        self
    }

    /// Whether names beyond localhost and IP literals were listed: then MCP's own host
    /// check (which knows only the loopback names) must leave the decision to this one.
    pub fn lists_hosts(&self) -> bool {
        !self.hosts.is_empty()
    }
}

fn normalise_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value == "*" {
        return Err("\"*\" would let every web page act on the API; list each origin".into());
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err("it has no scheme".into());
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("the scheme {scheme:?} is not http or https"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err("it has no host".into());
    }
    if authority.contains(['/', '?', '#', '@', ' ']) {
        return Err("an origin has no path, query, user or spaces".into());
    }
    let (host, port) = split_host_port(authority).ok_or("its port is not a number")?;
    if host.is_empty() {
        return Err("it has no host".into());
    }
    Ok(origin_string(&scheme, &host, port))
}

/// `scheme://host[:port]`, the port left out when it is the scheme's default.
fn origin_string(scheme: &str, host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) if Some(p) != default_port(scheme) => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

fn host_pattern(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = value.strip_prefix("*.").unwrap_or(&value);
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
    {
        return Err(format!(
            "{c:?} is not allowed in a host name (letters, digits, '-' and '.')"
        ));
    }
    if name.split('.').any(str::is_empty) {
        return Err("it has an empty label".into());
    }
    Ok(value)
}

/// Splits `host[:port]` (`[v6]:port` for IPv6) into a lowercase host and its port. None:
/// the port is not a number.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.to_ascii_lowercase();
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{host}]"), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// What the guard knows when it runs: the listed names, and how the server is bound.
#[derive(Clone, Debug)]
pub(super) struct Guard {
    access: Arc<Access>,
    /// Names the machine answers to when bound beyond loopback (its host name).
    own_names: Arc<Vec<String>>,
}

impl Guard {
    pub(super) fn new(access: Access, bound: SocketAddr) -> Guard {
        let mut own_names = Vec::new();
        if !bound.ip().is_loopback() {
            for file in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
                if let Ok(name) = std::fs::read_to_string(file) {
                    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
                    if !name.is_empty() && !own_names.contains(&name) {
                        own_names.push(name);
                    }
                }
            }
        }
        Guard {
            access: Arc::new(access),
            own_names: Arc::new(own_names),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
            return true;
        }
        if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        if self.own_names.iter().any(|n| n == host) {
            return true;
        }
        self.access
            .hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
                None => pattern == host,
            })
    }
}

/// What to do with a request.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Serve it; with Some(origin), add CORS headers for that listed origin.
    Pass {
        cors: Option<String>,
    },
    /// A CORS preflight from a listed origin: answer it here.
    Preflight {
        origin: String,
    },
    Refuse(Box<ApiError>),
}

impl PartialEq for Verdict {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Verdict::Pass { cors: a }, Verdict::Pass { cors: b }) => a == b,
            (Verdict::Preflight { origin: a }, Verdict::Preflight { origin: b }) => a == b,
            (Verdict::Refuse(a), Verdict::Refuse(b)) => a.to_status() == b.to_status(),
            _ => false,
        }
    }
}

fn forbidden(message: String, field: &str, fix: &str) -> Verdict {
    let mut err = ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message);
    err.details.causes = vec![StatusCause {
        field: field.into(),
        message: fix.into(),
        reason: "FieldValueForbidden".into(),
    }];
    Verdict::Refuse(Box::new(err))
}

/// Decides on a request from its method, headers and (HTTP/2) URI authority. Pure.
pub(super) fn decide(
    guard: &Guard,
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&str>,
) -> Verdict {
    let host_header = headers
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string())
        .or_else(|| authority.map(str::to_string));
    // HTTP/1.0 may send no Host; a browser always does.
    let host = match host_header.as_deref().map(split_host_port) {
        None => None,
        Some(Some((host, port))) => {
            if !guard.host_allowed(&host) {
                return forbidden(
                    format!(
                        "this server does not answer to the name {host:?} (Host header): a web page may be trying to reach it through DNS rebinding. If you reach it by that name, start it with --allowed-host {host}"
                    ),
                    "Host",
                    &format!("add --allowed-host {host} to orcaops serve (or operator --api)"),
                );
            }
            Some((host, port))
        }
        Some(None) => {
            return Verdict::Refuse(Box::new(ApiError::bad_request(format!(
                "the Host header {:?} is not host[:port]",
                host_header.unwrap_or_default()
            ))));
        }
    };
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Verdict::Pass { cors: None };
    };
    let raw = origin.to_str().unwrap_or("\u{fffd}");
    let normal = normalise_origin(raw).ok();
    let same_origin = match (&normal, &host) {
        (Some(origin), Some((host, port))) => {
            let scheme = origin.split("://").next().unwrap_or("http");
            *origin == origin_string(scheme, host, *port)
        }
        _ => false,
    };
    let listed = normal
        .as_ref()
        .filter(|o| guard.access.origins.contains(o))
        .cloned();
    let preflight =
        method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match (listed, same_origin) {
        (Some(origin), _) if preflight => Verdict::Preflight { origin },
        (Some(origin), _) => Verdict::Pass { cors: Some(origin) },
        (None, true) => Verdict::Pass { cors: None },
        (None, false) => forbidden(
            format!(
                "requests from web pages at {raw} are refused (Origin header): a page on another site may not act on this API. If that page is yours, start the server with --cors-origin {raw}"
            ),
            "Origin",
            &format!("add --cors-origin {raw} to orcaops serve (or operator --api)"),
        ),
    }
}

/// The methods and response headers a listed origin may use.
const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
const EXPOSE_HEADERS: &str = "Content-Disposition, Content-Length, X-Checksum-Sha256, X-Orcaops-Path-Kind, X-Orcaops-Apply, Warning";
/// How long a browser may cache a preflight answer (seconds).
const PREFLIGHT_MAX_AGE: &str = "600";

fn cors_headers(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The middleware: refuses, answers a preflight, or serves with CORS headers.
pub(super) async fn middleware(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    match decide(&guard, req.method(), req.headers(), authority.as_deref()) {
        Verdict::Refuse(err) => {
            // Logged: a user whose own page is refused finds the flag here too.
            tracing::warn!(method = %req.method(), path = %req.uri().path(), reason = %err.message, "refused a request from a browser context");
            let mut response = err.into_response();
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static("Origin"));
            response
        }
        Verdict::Preflight { origin } => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            cors_headers(headers, &origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE),
            );
            response
        }
        Verdict::Pass { cors } => {
            let mut response = next.run(req).await;
            if let Some(origin) = cors {
                let headers = response.headers_mut();
                cors_headers(headers, &origin);
                headers.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE_HEADERS),
                );
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(origins: &[&str], hosts: &[&str], bound: &str) -> Guard {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Guard::new(
            Access::new(&own(origins), &own(hosts)).unwrap(),
            bound.parse().unwrap(),
        )
    }

    fn request(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(header::HOST, h.parse().unwrap());
        }
        if let Some(o) = origin {
            headers.insert(header::ORIGIN, o.parse().unwrap());
        }
        headers
    }

    fn verdict(g: &Guard, method: Method, host: Option<&str>, origin: Option<&str>) -> Verdict {
        decide(g, &method, &request(host, origin), None)
    }

    fn refused(v: Verdict) -> ApiError {
        match v {
            Verdict::Refuse(e) => *e,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    const PASS: Verdict = Verdict::Pass { cors: None };

    #[test]
    fn clients_without_origin_on_our_names_pass() {
        let g = guard(&[], &[], "127.0.0.1:7700");
        for host in [
            "127.0.0.1:7700",
            "localhost:7700",
            "LOCALHOST",
            "[::1]:7700",
            "10.1.2.3:80",
            "app.localhost:7700",
        ] {
            assert_eq!(verdict(&g, Method::POST, Some(host), None), PASS, "{host}");
        }
        // HTTP/1.0 without Host.
        assert_eq!(verdict(&g, Method::GET, None, None), PASS);
    }

    #[test]
    fn an_unknown_name_is_dns_rebinding_and_the_refusal_names_the_flag() {
        let g = guard(
            &[],
            &["orcaops.internal", "*.svc.cluster.local"],
            "0.0.0.0:8080",
        );
        let err = refused(verdict(&g, Method::GET, Some("evil.example:7700"), None));
        assert_eq!(err.code, StatusCode::FORBIDDEN);
        assert!(
            err.message.contains("--allowed-host evil.example"),
            "{}",
            err.message
        );
        assert_eq!(err.details.causes[0].field, "Host");
        for ok in [
            "orcaops.internal:8080",
            "ORCAOPS.internal.",
            "api.orcaops.svc.cluster.local",
        ] {
            assert_eq!(verdict(&g, Method::GET, Some(ok), None), PASS, "{ok}");
        }
        for bad in [
            "svc.cluster.local",
            "xorcaops.internal",
            "evilsvc.cluster.local",
        ] {
            refused(verdict(&g, Method::GET, Some(bad), None));
        }
    }

    #[test]
    fn a_foreign_origin_is_refused_on_every_method_and_our_own_passes() {
        let g = guard(&[], &[], "127.0.0.1:7700");
        for method in [Method::GET, Method::POST, Method::PUT, Method::OPTIONS] {
            let err = refused(verdict(
                &g,
                method.clone(),
                Some("127.0.0.1:7700"),
                Some("https://evil.example"),
            ));
            assert_eq!(err.code, StatusCode::FORBIDDEN, "{method}");
            assert!(
                err.message.contains("--cors-origin https://evil.example"),
                "{}",
                err.message
            );
        }
        // `null` (sandboxed frames, file://) and a different port are foreign too.
        for foreign in ["null", "http://127.0.0.1:7701", "http://localhost:7700"] {
            refused(verdict(
                &g,
                Method::POST,
                Some("127.0.0.1:7700"),
                Some(foreign),
            ));
        }
        assert_eq!(
            verdict(
                &g,
                Method::POST,
                Some("127.0.0.1:7700"),
                Some("http://127.0.0.1:7700")
            ),
            PASS
        );
        assert_eq!(
            verdict(
                &g,
                Method::GET,
                Some("localhost"),
                Some("http://localhost:80")
            ),
            PASS
        );
    }

    #[test]
    fn listed_origins_get_cors_and_preflights() {
        let g = guard(&["http://LOCALHOST:3000/"], &[], "127.0.0.1:7700");
        let origin = Some("http://localhost:3000");
        assert_eq!(
            verdict(&g, Method::POST, Some("127.0.0.1:7700"), origin),
            Verdict::Pass {
                cors: Some("http://localhost:3000".into())
            }
        );
        let mut headers = request(Some("127.0.0.1:7700"), origin);
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            "POST".parse().unwrap(),
        );
        assert_eq!(
            decide(&g, &Method::OPTIONS, &headers, None),
            Verdict::Preflight {
                origin: "http://localhost:3000".into()
            }
        );
        // A preflight from anywhere else is refused like the request would be.
        headers.insert(header::ORIGIN, "http://localhost:4000".parse().unwrap());
        refused(decide(&g, &Method::OPTIONS, &headers, None));
    }

    #[test]
    fn bad_flag_values_say_what_to_give() {
        let one = |s: &str| vec![s.to_string()];
        for bad in [
            "*",
            "localhost:3000",
            "ftp://x",
            "http://x/app",
            "http://x:y",
        ] {
            let err = Access::new(&one(bad), &[]).unwrap_err();
            assert!(
                err.to_string().contains("scheme://host[:port]"),
                "{bad}: {err}"
            );
        }
        for bad in ["http://x", "a b", "", "x..y", "host:80"] {
            let err = Access::new(&[], &one(bad)).unwrap_err();
            assert!(err.to_string().contains("--allowed-host"), "{bad}: {err}");
        }
        assert_eq!(
            normalise_origin("HTTPS://Dash.Example.com:443").unwrap(),
            "https://dash.example.com"
        );
    }
}
