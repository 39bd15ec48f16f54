//! A watch that outlives one connection: when the server ends a watch, it resumes from
//! the last resourceVersion seen (bookmarks keep that current while nothing matches);
//! when the server answers 410, it lists again and says so.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use serde_json::Value;

use super::api::{ApiClient, collection_path, urlencode};
use super::error::ClientError;
use crate::resources::{Kind, Object};

/// What the watch saw.
#[derive(Debug)]
pub enum Change {
    /// ADDED, MODIFIED or DELETED.
    Event { type_: String, object: Box<Object> },
    /// The version was too old (410): here is the whole list again, as of now.
    Relisted(Vec<Object>),
}

/// How long to wait before reconnecting after a watch that ended without an event, so
/// a server that keeps closing watches is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);
/// How long a server that went away (a restart) is waited for before giving up.
const SERVER_GONE_FOR: Duration = Duration::from_secs(30);

pub struct ResumingWatch {
    client: ApiClient,
    kind: Kind,
    ns: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    rv: String,
    events: Option<Pin<Box<dyn Stream<Item = Value> + Send>>>,
    /// Whether the current connection has delivered anything yet.
    fruitful: bool,
    /// Since when the server has not answered, while reconnecting.
    unreachable_since: Option<Instant>,
}

impl ResumingWatch {
    /// Watches `kind` in `ns` (None: every namespace) from `rv`, the version of a list or
    /// of an object just written.
    pub fn new(
        client: ApiClient,
        kind: Kind,
        ns: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
        rv: &str,
    ) -> ResumingWatch {
        ResumingWatch {
            client,
            kind,
            ns: ns.map(String::from),
            label_selector: label_selector.map(String::from),
            field_selector: field_selector.map(String::from),
            rv: rv.to_string(),
            events: None,
            fruitful: true,
            unreachable_since: None,
        }
    }

    fn path(&self) -> String {
        let mut path = format!(
            "{}?watch=true&allowWatchBookmarks=true",
            collection_path(self.kind, self.ns.as_deref())
        );
        if !self.rv.is_empty() {
            path.push_str(&format!("&resourceVersion={}", urlencode(&self.rv)));
        }
        if let Some(sel) = &self.label_selector {
            path.push_str(&format!("&labelSelector={}", urlencode(sel)));
        }
        if let Some(sel) = &self.field_selector {
            path.push_str(&format!("&fieldSelector={}", urlencode(sel)));
        }
        path
    }

    async fn relist(&mut self) -> Result<Change, ClientError> {
        self.events = None;
        let (items, rv) = self
            .client
            .list_selected(
                self.kind,
                self.ns.as_deref(),
                self.label_selector.as_deref(),
                self.field_selector.as_deref(),
            )
            .await?;
        self.rv = rv;
        Ok(Change::Relisted(items))
    }

    /// The next change. Errors only when the server cannot be reached or refuses the
    /// watch for a reason other than an old version.
    pub async fn next(&mut self) -> Result<Change, ClientError> {
        loop {
            if self.events.is_none() {
                if !self.fruitful {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
                match self.client.json_lines(&self.path()).await {
                    Ok(stream) => {
                        self.events = Some(Box::pin(stream));
                        self.unreachable_since = None;
                    }
                    Err(ClientError::Gone(_)) => return self.relist().await,
                    // A server restarting: wait for it, then resume (or relist).
                    Err(ClientError::Unreachable(_))
                        if self
                            .unreachable_since
                            .get_or_insert_with(Instant::now)
                            .elapsed()
                            < SERVER_GONE_FOR =>
                    {
                        self.fruitful = false;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                self.fruitful = false;
            }
            let Some(event) = self.events.as_mut().expect("connected above").next().await else {
                // The server ended the watch (its timeout, a restart): resume where we were.
                self.events = None;
                continue;
            };
            self.fruitful = true;
            let type_ = event.get("type").and_then(Value::as_str).unwrap_or("");
            let object = event.get("object").cloned().unwrap_or(Value::Null);
            if let Some(rv) = object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                self.rv = rv.to_string();
            }
            match type_ {
                "BOOKMARK" => continue,
                "ERROR" if object.get("code").and_then(Value::as_u64) == Some(410) => {
                    return self.relist().await;
                }
                "ERROR" => {
                    let message = object
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("the watch failed");
                    return Err(ClientError::usage(format!(
                        "the server ended the watch: {message}"
                    )));
                }
                _ => {
                    let object = serde_json::from_value(object).map_err(|e| {
                        ClientError::usage(format!("unexpected object in a watch event: {e}"))
                    })?;
                    return Ok(Change::Event {
                        type_: type_.to_string(),
                        object: Box::new(object),
                    });
                }
            }
        }
    }
}
