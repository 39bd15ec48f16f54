//! Outgoing notifications: when a controller records that a run failed, an anomaly, an
//! approval waiting or a sandbox about to expire, a signed JSON body is POSTed to the
//! endpoints of the object's workspace (`Workspace.spec.notifications`) and to the
//! server-wide ones (`--notify-url`), retried with backoff, and the outcome recorded as
//! an event on the object (`Notified`, `NotificationFailed`). See docs/observability.md.
//!
//! Recording never waits for a delivery: [`Notifier::offer`] puts the notice on a
//! bounded queue (dropped, with a warning and a count, when it is full), and
//! [`Notifier::run`] delivers from it while the controllers run.

mod deliver;
pub mod notice;
pub mod retry;
pub mod signature;

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::Metrics;
use crate::store::{NewEvent, ObjectStore};
pub use notice::Notice;
pub use retry::Retry;

/// Notices waiting for delivery; past it, new ones are dropped.
pub const QUEUE: usize = 1024;
/// Notices being delivered at once (each to all its endpoints).
const IN_FLIGHT: usize = 32;

/// The headers of a delivery.
pub const SIGNATURE_HEADER: &str = "X-Orcaops-Signature-256";
pub const EVENT_HEADER: &str = "X-Orcaops-Event";
pub const DELIVERY_HEADER: &str = "X-Orcaops-Delivery";

/// The key that signs bodies; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(pub Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// What the server was started with (`--notify-url`, `--notify-secret-file`).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Told of every event of every workspace.
    pub urls: Vec<url::Url>,
    /// Signs the bodies sent to `urls`; None: they go unsigned.
    pub key: Option<SigningKey>,
    pub retry: Retry,
}

/// The queue of notices and what delivers them.
pub struct Notifier {
    settings: Settings,
    /// The store as it is, not as the controllers hold it: the outcomes recorded here
    /// are never notices themselves.
    objects: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    queue: mpsc::Sender<Notice>,
    /// Taken by [`Notifier::run`] for as long as it runs (one leadership term on a
    /// cluster), and there again for the next.
    pending: Mutex<mpsc::Receiver<Notice>>,
}

impl Notifier {
    pub fn new(settings: Settings, objects: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        Notifier {
            settings,
            objects,
            metrics,
            http: reqwest::Client::new(),
            queue,
            pending: Mutex::new(pending),
        }
    }

    /// Queues a notice of `recorded` if it is one; never waits.
    pub fn offer(&self, recorded: &NewEvent) {
        if let Some(notice) = Notice::of(recorded, chrono::Utc::now()) {
            self.enqueue(notice);
        }
    }

    /// Queues `notice` for delivery, or drops it (with a warning and a count) when the
    /// queue is full.
    pub fn enqueue(&self, notice: Notice) {
        let event = notice.event;
        if let Err(e) = self.queue.try_send(notice) {
            let notice = match e {
                mpsc::error::TrySendError::Full(n) | mpsc::error::TrySendError::Closed(n) => n,
            };
            let involved = &notice.recorded.involved;
            warn!(event = event.as_str(), kind = %involved.kind, namespace = %involved.namespace, name = %involved.name, queue = QUEUE, "notification dropped: too many waiting to be sent");
            self.metrics.notification(event.as_str(), "dropped");
        }
    }

    /// Delivers queued notices until `shutdown`; those still being sent then are dropped.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut pending = self.pending.lock().await;
        let mut sending = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
                notice = pending.recv(), if sending.len() < IN_FLIGHT => match notice {
                    Some(notice) => {
                        let me = Arc::clone(&self);
                        sending.spawn(async move { me.dispatch(notice).await });
                    }
                    None => break,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
