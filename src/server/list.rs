//! list: label and field selectors, and `limit`/`continue` pagination in key order.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::selector::Selectors;
use super::watch::{WatchParams, watch};
use crate::resources::validate::MAX_SECONDS;
use crate::resources::{API_VERSION, Kind};
use crate::store::PageQuery;

/// The query of a list or watch, as Kubernetes names it. Unknown parameters are ignored,
/// as the Kubernetes API server ignores them.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    watch: Option<String>,
    resource_version: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    limit: Option<u64>,
    #[serde(rename = "continue")]
    continue_: Option<String>,
    timeout_seconds: Option<u64>,
    allow_watch_bookmarks: Option<String>,
    send_initial_events: Option<String>,
}

/// A boolean query parameter; Kubernetes accepts the spellings of Go's `ParseBool`.
fn flag(name: &str, value: Option<&str>) -> Result<Option<bool>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(Some(true)),
        Some("false" | "0" | "f" | "F" | "FALSE" | "False") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name}=\"{other}\" is not a boolean; use true or false"
        ))),
    }
}

/// Where the next page starts: after the key (`ns`, `name`), at the resourceVersion of the
/// first page. Clients treat it as opaque; it is base64 of this JSON.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub(super) struct ContinueToken {
    pub rv: String,
    pub ns: String,
    pub name: String,
}

impl ContinueToken {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a token serializes"))
    }

    pub fn decode(text: &str) -> Result<ContinueToken, ApiError> {
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ContinueToken>(&bytes).ok())
            .filter(|t| t.rv.parse::<u64>().is_ok() && !t.name.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "the continue parameter is not a token this server issued; list again without it",
                )
            })
    }
}

pub(super) async fn list(
    state: AppState,
    kind: Kind,
    ns: Option<String>,
    query: ListQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let ns = ns.filter(|_| kind.namespaced());
    let selectors = Selectors::parse(
        query.label_selector.as_deref(),
        query.field_selector.as_deref(),
    )?;
    // The watch's deadline is computed from it: near u64::MAX it would overflow.
    if let Some(t) = query.timeout_seconds
        && t > MAX_SECONDS
    {
        return Err(ApiError::bad_request(format!(
            "timeoutSeconds {t} is over the limit of {MAX_SECONDS} (ten years); leave it out for no limit"
        )));
    }
    if flag("watch", query.watch.as_deref())? == Some(true) {
        let params = WatchParams {
            kind,
            ns,
            selectors,
            resource_version: query.resource_version.filter(|rv| !rv.is_empty()),
            bookmarks: flag(
                "allowWatchBookmarks",
                query.allow_watch_bookmarks.as_deref(),
            )?
            .unwrap_or(false),
            send_initial_events: flag("sendInitialEvents", query.send_initial_events.as_deref())?,
            timeout: query.timeout_seconds.map(std::time::Duration::from_secs),
        };
        return watch(state, params, super::logs::wants_event_stream(headers)).await;
    }
    let start = query
        .continue_
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(ContinueToken::decode)
        .transpose()?;
    if let Some(token) = &start
        && !state.objects.can_resume_from(&token.rv)
    {
        return Err(ApiError::new(
            StatusCode::GONE,
            "Expired",
            format!(
                "the continue token is too old: resourceVersion {} has left this server's history; list again without it",
                token.rv
            ),
        ));
    }
    // limit=0 means no limit, as in Kubernetes.
    let limit = query
        .limit
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let after = start.as_ref().map(|t| (t.ns.as_str(), t.name.as_str()));
    let page_query = PageQuery {
        kind,
        namespace: ns.as_deref(),
        after,
        limit,
        labels: Some(&selectors.labels),
    };
    let (items, remaining, rv) = if selectors.fields.is_empty() {
        // The store answers the label selector (the local one from its label index) and
        // cuts the page itself.
        let page = state.objects.list_page(page_query).await?;
        (page.items, page.remaining, page.resource_version)
    } else {
        // Field selectors filter after reading, so the page is cut here rather than in SQL.
        let whole = PageQuery {
            limit: None,
            ..page_query
        };
        let page = state.objects.list_page(whole).await?;
        let mut items: Vec<_> = page
            .items
            .into_iter()
            .filter(|o| selectors.matches(o))
            .collect();
        let remaining = limit.map_or(0, |l| items.len().saturating_sub(l));
        items.truncate(items.len() - remaining);
        (items, remaining, page.resource_version)
    };
    // Every page reports the first page's version: a watch from it then replays whatever
    // changed while the pages were read, so list + watch misses nothing.
    let rv = start.map_or(rv, |t| t.rv);
    let mut metadata = Map::new();
    if remaining > 0
        && let Some(last) = items.last()
    {
        let token = ContinueToken {
            rv: rv.clone(),
            ns: last.metadata.namespace.clone().unwrap_or_default(),
            name: last.metadata.name.clone(),
        };
        metadata.insert("continue".into(), token.encode().into());
        metadata.insert("remainingItemCount".into(), remaining.into());
    }
    metadata.insert("resourceVersion".into(), rv.into());
    Ok(Json(json!({
        "apiVersion": API_VERSION,
        "kind": format!("{}List", kind.as_str()),
        "metadata": Value::Object(metadata),
        "items": items,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = ContinueToken {
            rv: "42".into(),
            ns: "team-a".into(),
            name: "build".into(),
        };
        let text = token.encode();
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "URL-safe: {text}"
        );
        assert_eq!(ContinueToken::decode(&text).unwrap(), token);
    }

    #[test]
    fn foreign_continue_tokens_are_bad_requests() {
        let forged = URL_SAFE_NO_PAD.encode(br#"{"rv":"x","ns":"","name":"a"}"#);
        for bad in ["not base64!", "e30", forged.as_str()] {
            let err = ContinueToken::decode(bad).unwrap_err();
            assert_eq!(err.code, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn boolean_parameters() {
        assert_eq!(flag("watch", Some("true")).unwrap(), Some(true));
        assert_eq!(flag("watch", Some("0")).unwrap(), Some(false));
        assert_eq!(flag("watch", None).unwrap(), None);
        assert!(flag("watch", Some("yes")).is_err());
    }
}
