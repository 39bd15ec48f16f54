//! `PUT` and `GET .../sandboxes/{name}/files?path=`: one file as raw bytes, or a
//! directory as a tar archive, into and out of a service container.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    MAX_FILE_BYTES, Target, container_path, invalid_field, resolve, runtime_error, sandbox_key,
};
use crate::runtime::RuntimeError;
use crate::runtime::sandbox::PathKind;
use crate::server::AppState;
use crate::server::error::ApiError;

/// The header that says whether a download (or a HEAD) is a file or a directory.
pub const PATH_KIND_HEADER: &str = "x-orcaops-path-kind";
const DEFAULT_MODE: u32 = 0o644;

#[derive(Deserialize, Default)]
pub(super) struct FilesQuery {
    path: Option<String>,
    service: Option<String>,
    mode: Option<String>,
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file mode in octal (`644`, `0755`).
fn parse_mode(mode: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = mode.filter(|m| !m.is_empty()) else {
        return Ok(DEFAULT_MODE);
    };
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            invalid_field(
                "mode",
                format!("\"{text}\" is not an octal file mode such as 0644 or 755"),
            )
        })
}

enum Upload {
    File,
    Tar,
}

fn upload_kind(headers: &HeaderMap) -> Result<Upload, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/octet-stream" => Ok(Upload::File),
        "application/x-tar" | "application/tar" => Ok(Upload::Tar),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "a file upload is application/octet-stream (one file at path) or application/x-tar (extracted into the directory path), not {other}"
            ),
        )),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        format!(
            "an upload may carry at most {} MiB; split it, or copy a tar of parts",
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    )
}

pub(super) async fn upload(
    state: State<AppState>,
    path: Path<(String, String, String)>,
    query: Query<FilesQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match write_upload(state, path, query, headers, body).await {
        Ok(response) => response,
        Err(e) => {
            // A refusal may leave the rest of the body unread on the connection: close
            // it, and say so, or the client's next request on it would be lost.
            let mut response = e.into_response();
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

async fn write_upload(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(q): Query<FilesQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = sandbox_key(&ns, &plural, &name)?;
    let path = container_path(q.path.as_deref().unwrap_or(""))?;
    let kind = upload_kind(&headers)?;
    let mode = parse_mode(q.mode.as_deref())?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_FILE_BYTES) {
        return Err(too_large());
    }
    let target = resolve(&state, &key, q.service.as_deref()).await?;
    let bytes = axum::body::to_bytes(body, MAX_FILE_BYTES)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large()
            } else {
                ApiError::bad_request(format!("the upload broke off: {e}"))
            }
        })?;
    let _busy = state.activity.begin(&target.uid);
    let size = bytes.len();
    let sha256 = hex_sha256(&bytes);
    let written = match kind {
        Upload::File => {
            if path == "/" {
                return Err(invalid_field("path", "\"/\" is a directory; name the file"));
            }
            state
                .sandboxes
                .write_file(&target.container, &path, bytes, mode)
                .await
                .map_err(|e| runtime_error(&target, e))?;
            "file"
        }
        Upload::Tar => {
            check_tar(&bytes)?;
            extract_into(&state, &target, &path, bytes).await?;
            "directory"
        }
    };
    Ok(Json(json!({
        "path": path,
        "service": target.service,
        "kind": written,
        "bytes": size,
        "sha256": sha256,
    }))
    .into_response())
}

/// Refuses an upload that is not a tar archive, before the runtime sees it (Docker would
/// answer a server error, which is not the caller's to read). Pure.
pub fn check_tar(bytes: &[u8]) -> Result<(), ApiError> {
    let not_a_tar = |why: String| {
        let mut err = invalid_field(
            "body",
            format!(
                "the upload is not a tar archive ({why}); send a tar (e.g. `tar -cf - -C DIR .`) as application/x-tar, or one file as application/octet-stream"
            ),
        );
        (err.code, err.reason) = (StatusCode::BAD_REQUEST, "BadRequest");
        err
    };
    if bytes.is_empty() {
        return Err(not_a_tar("it is empty".into()));
    }
    let mut archive = tar::Archive::new(bytes);
    let entries = archive.entries().map_err(|e| not_a_tar(e.to_string()))?;
    let mut count = 0usize;
    for entry in entries {
        let entry = entry.map_err(|e| not_a_tar(e.to_string()))?;
        entry.path().map_err(|e| not_a_tar(e.to_string()))?;
        count += 1;
    }
    // A tar ends with two zero blocks; garbage that reads as no entry at all without
    // them is not one.
    if count == 0 && bytes.iter().any(|b| *b != 0) {
        return Err(not_a_tar("it holds no entries".into()));
    }
    Ok(())
}

/// Extracts a tar into the directory `dir` (created with its parents if missing).
async fn extract_into(
    state: &AppState,
    target: &Target,
    dir: &str,
    tar: Bytes,
) -> Result<(), ApiError> {
    let runtime = state.sandboxes.as_ref();
    if let Ok(PathKind::File) = runtime.path_kind(&target.container, dir).await {
        return Err(invalid_field(
            "path",
            format!("{dir} is a file; a tar is extracted into a directory"),
        ));
    }
    runtime
        .extract_tar(&target.container, dir, tar)
        .await
        .map_err(|e| runtime_error(target, e))
}

pub(super) async fn download(
    State(state): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
    Query(q): Query<FilesQuery>,
    method: Method,
) -> Result<Response, ApiError> {
    let key = sandbox_key(&ns, &plural, &name)?;
    let path = container_path(q.path.as_deref().unwrap_or(""))?;
    let target = resolve(&state, &key, q.service.as_deref()).await?;
    let runtime = state.sandboxes.as_ref();
    let busy = state.activity.begin(&target.uid);
    let kind = match runtime.path_kind(&target.container, &path).await {
        Ok(kind) => Some(kind),
        // A runtime that cannot tell a file from a directory (a cluster's pods) reads
        // the path as a file, which refuses a directory.
        Err(RuntimeError::Unsupported { .. }) if method != Method::HEAD => None,
        Err(e) => return Err(runtime_error(&target, e)),
    };
    let name = base_name(&path);
    if kind != Some(PathKind::Directory) {
        if method == Method::HEAD {
            return Ok(with_file_headers(
                StatusCode::OK.into_response(),
                "file",
                name,
            ));
        }
        let content = match runtime
            .read_file(&target.container, &path, MAX_FILE_BYTES as u64)
            .await
        {
            // Not a file, where the kind was not known: a directory, which travels as a
            // tar only where the runtime makes them (its refusal says what to use).
            Err(e @ RuntimeError::NotAFile { .. }) if kind.is_none() => runtime
                .download_tar(&target.container, &path)
                .await
                .and(Err(e)),
            other => other,
        }
        .map_err(|e| runtime_error(&target, e))?;
        return Ok(file_response(content, &path));
    }
    let response = if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        let stream = runtime
            .download_tar(&target.container, &path)
            .await
            .map_err(|e| runtime_error(&target, e))?;
        // The sandbox stays busy until the whole archive is sent.
        let body = stream.map(move |chunk| {
            let _busy = &busy;
            chunk.map_err(std::io::Error::other)
        });
        Body::from_stream(body).into_response()
    };
    Ok(with_file_headers(
        response,
        "directory",
        &format!("{name}.tar"),
    ))
}

/// The last segment of a path, or `root` for `/`: the name a download is saved as.
fn base_name(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("root")
}

/// The headers every download carries: its media type, kind and file name.
fn with_file_headers(mut response: Response, kind: &'static str, file_name: &str) -> Response {
    let content_type = match kind {
        "directory" => "application/x-tar",
        _ => "application/octet-stream",
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(PATH_KIND_HEADER, header::HeaderValue::from_static(kind));
    if let Ok(value) = format!("attachment; filename=\"{file_name}\"").parse() {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// One file's bytes as a download: its length, checksum, kind and name in the headers.
fn file_response(content: Bytes, path: &str) -> Response {
    let mut response = Body::from(content.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, content.len().into());
    if let Ok(sha) = hex_sha256(&content).parse() {
        headers.insert("x-checksum-sha256", sha);
    }
    with_file_headers(response, "file", base_name(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode(None).unwrap(), 0o644);
        assert_eq!(parse_mode(Some("755")).unwrap(), 0o755);
        assert_eq!(parse_mode(Some("0600")).unwrap(), 0o600);
        for bad in ["9", "rwx", "77777"] {
            assert_eq!(
                parse_mode(Some(bad)).unwrap_err().details.causes[0].field,
                "mode"
            );
        }
    }

    #[test]
    fn garbage_is_not_a_tar() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "a.txt", &b"hi"[..])
            .unwrap();
        let good = builder.into_inner().unwrap();
        check_tar(&good).unwrap();
        check_tar(&[0u8; 1024]).unwrap();
        let mut corrupt = good.clone();
        corrupt[0] ^= 0xff;
        for bad in [
            b"this is not a tar".to_vec(),
            vec![],
            vec![0xab; 4096],
            corrupt,
        ] {
            let err = check_tar(&bad).unwrap_err();
            assert_eq!(err.code, StatusCode::BAD_REQUEST);
            assert_eq!(err.details.causes[0].field, "body");
            assert!(err.message.contains("not a tar archive"), "{}", err.message);
        }
    }

    #[test]
    fn uploads_are_a_file_or_a_tar() {
        let mut headers = HeaderMap::new();
        assert!(matches!(upload_kind(&headers), Ok(Upload::File)));
        headers.insert(header::CONTENT_TYPE, "application/x-tar".parse().unwrap());
        assert!(matches!(upload_kind(&headers), Ok(Upload::Tar)));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            upload_kind(&headers).err().unwrap().code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
