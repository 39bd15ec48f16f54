//! The web dashboard at `/ui/`: a page shell, its script and style, embedded in the
//! binary and served gzip-compressed, plus the login that puts a key in a cookie.
//!
//! The pages hold no data: everything they show is read from the same API the CLI uses,
//! authenticated by the cookie (see `auth::cookie`), and kept live by watches served as
//! server-sent events. So the dashboard can show nothing a key could not read anyway.
//!
//! - `GET /ui/...`: the app when the cookie holds a valid key, else the login page (401).
//!   `?token=KEY` on any of them logs the browser in first, for scripts and links.
//! - `GET /ui/login?once=T`: a one-time link (printed by `serve`, opened by `orcaops ui`)
//!   logs in with the server admin key. `POST /ui/login`: the login form.
//! - `POST /ui/logout`, `GET /ui/session` (who the cookie is), `POST /ui/login-link` (a
//!   new one-time link; server admin only).
//! - `GET /ui/assets/{file}`: the embedded files. `ORCAOPS_UI_DIR` serves them from a
//!   directory instead, read at each request, for working on the dashboard.

mod assets;

use std::sync::Arc;

use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

pub use assets::{Asset, first_load};

use super::auth::{Auth, Identity, cookie};

/// Where the dashboard lives.
pub const ROOT: &str = "/ui/";

pub fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent(ROOT) }))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/login", get(login_page).post(login_form))
        .route("/ui/logout", post(logout))
        .route("/ui/session", get(session))
        .route("/ui/login-link", post(login_link))
        .route("/ui/", get(page))
        .route("/ui/{*rest}", get(page))
        .with_state(auth)
}

/// The URL of a one-time login link on the server reached at `base` (`http://host:port`).
pub fn login_url(base: &str, once: &str) -> String {
    format!("{}/ui/login?once={once}", base.trim_end_matches('/'))
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match assets::load(&file) {
        Some(asset) => asset.respond(&headers),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("the dashboard has no file {file}"),
        )
            .into_response(),
    }
}

#[derive(Deserialize, Default)]
struct PageQuery {
    token: Option<String>,
}

/// Any dashboard page: the app for a logged-in browser, the login page otherwise.
async fn page(
    State(auth): State<Arc<Auth>>,
    Query(query): Query<PageQuery>,
    request: Request,
) -> Response {
    let headers = request.headers();
    let uri = request.uri();
    if let Some(token) = query.token.as_deref() {
        // Log in with the key given, then go to the same page without it in the URL.
        let here = without_token(uri.path(), uri.query());
        return match auth.authenticate(token) {
            Ok(_) => logged_in(headers, token, &here),
            Err(e) => login(headers, Some(&e.to_status().message), &here),
        };
    }
    let next = match uri.query() {
        Some(q) => format!("{}?{q}", uri.path()),
        None => uri.path().to_string(),
    };
    match cookie::key(headers).map(|key| auth.authenticate(&key)) {
        Some(Ok(_)) => {
            // The shell holds no data: compressed and revalidated like the other files.
            let mut response = assets::index().respond(headers);
            no_referrer(&mut response);
            response
        }
        Some(Err(e)) => login(headers, Some(&e.to_status().message), &next),
        None => login(headers, None, &next),
    }
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    once: Option<String>,
    next: Option<String>,
}

async fn login_page(
    State(auth): State<Arc<Auth>>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    let next = safe_next(query.next.as_deref());
    match query.once.as_deref() {
        Some(once) if auth.once.redeem(once) => match auth.admin_key() {
            Ok(key) => logged_in(&headers, &key, &next),
            Err(e) => login(&headers, Some(&e.to_status().message), &next),
        },
        Some(_) => login(
            &headers,
            Some(
                "this login link was used already, or is over a day old; run `orcaops ui` for a new one, or enter a key",
            ),
            &next,
        ),
        None => login(&headers, None, &next),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
    next: Option<String>,
}

async fn login_form(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let key = form.key.trim();
    match auth.authenticate(key) {
        Ok(_) => logged_in(&headers, key, &next),
        Err(e) => login(&headers, Some(&e.to_status().message), &next),
    }
}

async fn logout(headers: HeaderMap) -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    set_cookie(&mut response, &cookie::set(&headers, None));
    response
}

async fn session(Extension(who): Extension<Identity>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "member": who.member,
        "workspace": who.workspace,
        "admin": who.is_server_admin(),
        "agent": who.agent,
    }))
}

/// A new one-time login link for the server reached as this request's Host.
async fn login_link(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Json<serde_json::Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let url = login_url(&format!("http://{host}"), &auth.once.issue());
    Json(serde_json::json!({ "url": url }))
}

/// Sets the cookie and goes on to `next`.
fn logged_in(headers: &HeaderMap, key: &str, next: &str) -> Response {
    let mut response = Redirect::to(next).into_response();
    set_cookie(&mut response, &cookie::set(headers, Some(key)));
    no_referrer(&mut response);
    response
}

/// The login page (401), with an error when there is one, returning to `next`.
fn login(headers: &HeaderMap, error: Option<&str>, next: &str) -> Response {
    let error = error
        .map(|e| {
            format!(
                r#"<p class="error" data-testid="login-error" role="alert">{}</p>"#,
                escape(e)
            )
        })
        .unwrap_or_default();
    let page = assets::login()
        .text()
        .replace("<!--error-->", &error)
        .replace("<!--next-->", &escape(next));
    let mut response = html(StatusCode::UNAUTHORIZED, page);
    // A stale cookie is dropped, so the browser stops sending it.
    if !error.is_empty() && cookie::key(headers).is_some() {
        set_cookie(&mut response, &cookie::set(headers, None));
    }
    response
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    assets::secure_headers(h);
    no_referrer(&mut response);
    response
}

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A URL with a token in it must not leak through the Referer of what it links to on
/// other sites. (Not `no-referrer`: with it, Chromium posts the login form with
/// `Origin: null`, which the guard refuses as a foreign page.)
fn no_referrer(response: &mut Response) {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// Where to go after login: a dashboard path, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with(ROOT) && !n.contains("//") && !n.contains('\\') => n.to_string(),
        _ => ROOT.to_string(),
    }
}

/// `path?query` without its `token` parameter.
fn without_token(path: &str, query: Option<&str>) -> String {
    let rest: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty() && *p != "token" && !p.starts_with("token="))
        .collect();
    let here = safe_next(Some(path));
    if rest.is_empty() {
        here
    } else {
        format!("{here}?{}", rest.join("&"))
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_login_only_dashboard_paths() {
        assert_eq!(
            safe_next(Some("/ui/jobs/default/a?x=1")),
            "/ui/jobs/default/a?x=1"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
        assert_eq!(safe_next(Some("/apis/x")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn the_token_leaves_the_url() {
        assert_eq!(
            without_token("/ui/jobs", Some("token=abc&ns=a")),
            "/ui/jobs?ns=a"
        );
        assert_eq!(without_token("/ui/", Some("token=abc")), "/ui/");
        assert_eq!(
            escape(r#"<a href="x">'&"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
