//! The OpenAPI v3 document of the whole API, served as Kubernetes serves its own:
//! `/openapi/v3` is an index, `/openapi/v3/apis/orcaops.dev/v1alpha1` the document.
//!
//! The paths and operations are built with utoipa's typed model, one set per kind, with
//! readable operationIds (`listJobs`, `patchJob`) for code generators and GPT Actions.
//! The schemas of the six kinds are the CRDs' `openAPIV3Schema`, marked with
//! `x-kubernetes-group-version-kind` so that `kubectl explain` finds them; the metadata
//! and Status schemas come from k8s-openapi. PATCH operations carry the GVK and a
//! `fieldValidation` parameter: kubectl reads them to learn that the server validates
//! fields itself, and does not fetch OpenAPI v2 (which orcaops does not serve).

use std::sync::OnceLock;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use utoipa::openapi::{InfoBuilder, OpenApiBuilder, PathsBuilder, Tag};

use super::error::ApiError;
use crate::resources::{GROUP, Kind, VERSION, registry};

mod operations;
mod paths;
mod sandbox_paths;
mod schemas;
mod workflow_paths;

use operations::KindDocs;
use schemas::{kind_schema, list_schema, meta_schemas, other_schemas};

const BASE: &str = super::BASE;
/// The OpenAPI version the document declares: the CRD schemas are OpenAPI 3.0
/// (`nullable`), as Kubernetes' own documents are.
const OPENAPI_VERSION: &str = "3.0.0";

/// `GET /openapi/v2`: not served; kubectl falls back to v3.
pub(super) async fn v2() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!(
            "OpenAPI v2 is not served; orcaops serves OpenAPI v3 at /openapi/v3 (the document: /openapi/v3{BASE})"
        ),
    )
}

/// `GET /openapi/v3`: where each group-version's document is.
pub(super) async fn index() -> Json<Value> {
    let path = BASE.trim_start_matches('/');
    Json(json!({
        "paths": { path: { "serverRelativeURL": format!("/openapi/v3{BASE}") } }
    }))
}

/// `GET /openapi/v3/apis/orcaops.dev/v1alpha1`: the document, with a `servers` entry for
/// the address the client used (GPT Actions and code generators need an absolute URL).
pub(super) async fn document(headers: HeaderMap) -> Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    let mut document = DOCUMENT.get_or_init(build).clone();
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        // Behind a TLS-terminating proxy (as a GPT Action needs), the proxy says so.
        let scheme = headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .filter(|p| matches!(*p, "http" | "https"))
            .unwrap_or("http");
        document["servers"] = json!([{ "url": format!("{scheme}://{host}") }]);
    }
    Json(document)
}

/// Schema names as Kubernetes publishes CRDs: reversed group, version, kind.
pub(super) fn schema_name(kind: &str) -> String {
    let group: Vec<&str> = GROUP.split('.').rev().collect();
    format!("{}.{VERSION}.{kind}", group.join("."))
}

/// The whole document, built once.
pub(super) fn build() -> Value {
    let kinds: Vec<KindDocs> = Kind::ALL.into_iter().map(KindDocs::new).collect();
    let mut paths = PathsBuilder::new();
    for docs in &kinds {
        paths = paths::kind_paths(paths, docs);
    }
    paths = paths::other_paths(sandbox_paths::sandbox_paths(paths::job_paths(paths)));
    paths = workflow_paths::workflow_paths(paths);
    let mut tags: Vec<Tag> = kinds
        .iter()
        .map(|d| {
            let mut tag = Tag::new(&d.tag);
            tag.description = Some(registry::description(d.kind).into());
            tag
        })
        .collect();
    tags.extend(["events", "health", "discovery"].map(Tag::new));
    let openapi = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("orcaops")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "orcaops runs declared Jobs (and soon Workflows and Sandboxes) in containers. This API has the Kubernetes form: objects under /apis/orcaops.dev/v1alpha1, errors as Status objects. A Job is created with createJob, watched with readJob until status.phase is Succeeded, Failed, Cancelled or TimedOut, and its output read with readJobLog.",
                ))
                .build(),
        )
        .paths(paths.build())
        .tags(Some(tags))
        .build();
    let mut document = serde_json::to_value(&openapi).expect("an OpenAPI document serializes");
    document["openapi"] = json!(OPENAPI_VERSION);
    let mut schemas = meta_schemas();
    schemas.extend(other_schemas());
    for kind in Kind::ALL {
        schemas.insert(schema_name(kind.as_str()), kind_schema(kind));
        schemas.insert(schema_name(&format!("{kind}List")), list_schema(kind));
    }
    document["components"] = json!({ "schemas": schemas });
    document
}

#[cfg(test)]
mod tests;
