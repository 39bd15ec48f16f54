//! The dashboard's way of carrying a key: a cookie, set once at login (a key typed in, a
//! one-time login link, or `?token=` on a `/ui/` URL), HttpOnly so that no script reads
//! it, and SameSite=Strict so that no other site's page sends it.
//!
//! A cookie authenticates reads as a bearer token does; a write authenticated by one must
//! also carry [`CSRF_HEADER`], which a form on another site cannot add (the guard's
//! Origin check already refuses foreign pages; this is the second lock).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, header};

/// The header every cookie-authenticated write must carry (any value).
pub const CSRF_HEADER: &str = "x-orcaops-csrf";
/// How long a browser keeps a dashboard login.
pub const COOKIE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a one-time login link may wait for its first use.
pub const ONCE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Unused one-time links kept at most; the oldest goes first.
const ONCE_MAX: usize = 64;

/// The cookie's name. Browsers share cookies between the ports of a host, so each
/// server port has its own: two servers on one machine do not log each other out.
pub fn name(headers: &HeaderMap) -> String {
    let port = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|host| host.rsplit_once(':'))
        .map(|(_, port)| port)
        .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    match port {
        Some(port) => format!("orcaops-key-{port}"),
        None => "orcaops-key".to_string(),
    }
}

/// The key in the request's dashboard cookie, if it has one.
pub fn key(headers: &HeaderMap) -> Option<String> {
    let wanted = name(headers);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.trim_matches('"').to_string())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value that logs a browser in with `key` (None: logs it out).
pub fn set(headers: &HeaderMap, key: Option<&str>) -> String {
    let name = name(headers);
    match key {
        Some(key) => format!(
            "{name}={key}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            COOKIE_MAX_AGE.as_secs()
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Whether a method changes something, and so needs [`CSRF_HEADER`] with a cookie.
pub fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// One-time login links, as Jupyter prints them: each token logs one browser in with the
/// server admin key, once, within [`ONCE_TTL`]. Kept in memory: a restart forgets them.
#[derive(Default)]
pub struct OnceTokens {
    tokens: Mutex<HashMap<String, Instant>>,
}

impl OnceTokens {
    /// A new token (32 random bytes in hex).
    pub fn issue(&self) -> String {
        let token = super::token::random_secret();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, at| at.elapsed() < ONCE_TTL);
        while tokens.len() >= ONCE_MAX {
            let oldest = tokens
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(t) => tokens.remove(&t),
                None => break,
            };
        }
        tokens.insert(token.clone(), Instant::now());
        token
    }

    /// Uses a token up: true when it was issued, unused and not too old.
    pub fn redeem(&self, token: &str) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .remove(token)
            .is_some_and(|at| at.elapsed() < ONCE_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_cookie_is_named_by_port_and_found_among_others() {
        let h = headers(&[
            ("host", "127.0.0.1:7700"),
            ("cookie", "a=1; orcaops-key-7701=other"),
            ("cookie", "orcaops-key-7700=orca_x_y; b=2"),
        ]);
        assert_eq!(name(&h), "orcaops-key-7700");
        assert_eq!(key(&h).as_deref(), Some("orca_x_y"));
        let h = headers(&[("host", "[::1]"), ("cookie", "orcaops-key-7700=k")]);
        assert_eq!(name(&h), "orcaops-key");
        assert_eq!(key(&h), None);
        let set = set(&headers(&[("host", "localhost:9")]), Some("K"));
        assert!(set.starts_with("orcaops-key-9=K; Path=/; HttpOnly; SameSite=Strict"));
    }

    #[test]
    fn a_once_token_works_once() {
        let once = OnceTokens::default();
        let t = once.issue();
        assert_eq!(t.len(), 64);
        assert!(!once.redeem("nope"));
        assert!(once.redeem(&t));
        assert!(!once.redeem(&t));
        for _ in 0..ONCE_MAX + 5 {
            once.issue();
        }
        assert!(once.tokens.lock().unwrap().len() <= ONCE_MAX);
    }
}
