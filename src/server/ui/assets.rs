//! The dashboard's files: embedded at build time, compressed once at first use, and
//! served with an ETag so that a browser asks again only when the binary changed.

use std::borrow::Cow;
use std::io::Write;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Every file of the dashboard, with its media type.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "login.html",
        "text/html; charset=utf-8",
        include_bytes!("assets/login.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "dag.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/dag.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
];

/// What the browser loads before the first page shows: the shell, its script and style.
const FIRST_LOAD: &[&str] = &["index.html", "app.js", "dag.js", "style.css"];

/// One file, ready to serve.
pub struct Asset {
    pub name: &'static str,
    pub media_type: &'static str,
    pub raw: Cow<'static, [u8]>,
    pub gzip: Vec<u8>,
    etag: String,
}

impl Asset {
    fn new(name: &'static str, media_type: &'static str, raw: Cow<'static, [u8]>) -> Asset {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let gzip: Vec<u8> = encoder
            .write_all(&raw)
            .and_then(|_| encoder.finish())
            .unwrap_or_default();
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&raw)[..12]));
        Asset {
            name,
            media_type,
            raw,
            gzip,
            etag,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The file, compressed when the browser accepts gzip; 304 when it has this version.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let mut response = if request
            .get(header::IF_NONE_MATCH)
            .is_some_and(|tag| tag.as_bytes() == self.etag.as_bytes())
        {
            StatusCode::NOT_MODIFIED.into_response()
        } else if accepts_gzip(request) && !self.gzip.is_empty() {
            let mut r = self.gzip.clone().into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        } else {
            self.raw.to_vec().into_response()
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.media_type),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        // Revalidated at each load: the ETag makes that a 304 without a body.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(tag) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, tag);
        }
        secure_headers(h);
        response
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name == "gzip" || name == "*") && !refused
        })
}

/// The headers every dashboard response carries: nothing but its own scripts run, it is
/// framed by no other page, and types are not sniffed.
pub fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn embedded() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        FILES
            .iter()
            .map(|(name, media_type, raw)| Asset::new(name, media_type, Cow::Borrowed(*raw)))
            .collect()
    })
}

/// The file `name`: from `ORCAOPS_UI_DIR` when it is set (read now, for working on the
/// dashboard without a rebuild), else the embedded one.
pub fn load(name: &str) -> Option<AssetRef> {
    let (known, media_type, _) = FILES.iter().find(|(n, _, _)| *n == name)?;
    if let Some(dir) = std::env::var_os("ORCAOPS_UI_DIR")
        && let Ok(raw) = std::fs::read(std::path::Path::new(&dir).join(known))
    {
        return Some(AssetRef::Owned(Box::new(Asset::new(
            known,
            media_type,
            Cow::Owned(raw),
        ))));
    }
    embedded()
        .iter()
        .find(|a| a.name == *known)
        .map(AssetRef::Static)
}

/// An embedded file, or one just read from `ORCAOPS_UI_DIR`.
pub enum AssetRef {
    Static(&'static Asset),
    Owned(Box<Asset>),
}

impl std::ops::Deref for AssetRef {
    type Target = Asset;
    fn deref(&self) -> &Asset {
        match self {
            AssetRef::Static(a) => a,
            AssetRef::Owned(a) => a,
        }
    }
}

pub fn index() -> AssetRef {
    load("index.html").expect("index.html is embedded")
}

pub fn login() -> AssetRef {
    load("login.html").expect("login.html is embedded")
}

/// The files of the first load as embedded, each with its raw and compressed size: what
/// `benches/dashboard.rs` reports against the 150 KiB budget.
pub fn first_load() -> Vec<(&'static str, usize, usize)> {
    embedded()
        .iter()
        .filter(|a| FIRST_LOAD.contains(&a.name))
        .map(|a| (a.name, a.raw.len(), a.gzip.len()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_offered_only_when_accepted() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            "gzip, deflate, br".parse().unwrap(),
        );
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, "br, gzip;q=0".parse().unwrap());
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn every_file_is_embedded_and_compresses() {
        for (name, raw, gzip) in first_load() {
            assert!(raw > 0, "{name} is empty");
            assert!(
                gzip > 0 && gzip < raw + 64,
                "{name}: {gzip} bytes compressed of {raw}"
            );
        }
        assert!(load("nope.js").is_none());
        assert!(load("../Cargo.toml").is_none());
    }
}
