//! What a decision says happened, for people: typed events, and the one function that
//! records them in the store.

use tracing::debug;

use super::{Context, ControllerError};
use crate::notifications::Notice;
use crate::store::{EventType, InvolvedObject, NewEvent};

/// One event a decision asks to record about the object it reconciled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    /// A CamelCase word a client can match on (`RunStarted`, `Expired`).
    pub reason: &'static str,
    pub message: String,
}

impl Event {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        Event {
            type_: EventType::Normal,
            reason,
            message: message.into(),
        }
    }

    pub fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Event {
            type_: EventType::Warning,
            reason,
            message: message.into(),
        }
    }
}

/// Records `events` about `involved`, in order, and offers each recorded one to the
/// notifications (which send only those they are about, later).
pub async fn record(
    ctx: &Context,
    involved: &InvolvedObject,
    events: Vec<Event>,
) -> Result<(), ControllerError> {
    for Event {
        type_,
        reason,
        message,
    } in events
    {
        debug!(reason, %message, "event");
        let event = NewEvent {
            involved: involved.clone(),
            type_,
            reason: reason.into(),
            message,
        };
        // Only an event notifications are about is copied, and it is sent once recorded.
        let notice = Notice::of(&event, chrono::Utc::now());
        ctx.store.record_event(event).await?;
        if let Some(notice) = notice {
            ctx.notifier.enqueue(notice);
        }
    }
    Ok(())
}
