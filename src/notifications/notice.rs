//! Which recorded events are worth a notification, and the body that tells of one. Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde::de::value::{Error as DeError, StrDeserializer};
use serde_json::{Value, json};

use crate::resources::anomaly::AnomalyKind;
use crate::resources::workspace::NotificationEvent;
use crate::resources::{API_VERSION, Kind};
use crate::store::{EventType, NewEvent};

/// One event to notify about, as the controller recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub event: NotificationEvent,
    pub recorded: NewEvent,
    pub time: DateTime<Utc>,
}

impl Notice {
    /// The notice of `recorded`, if it is one of the events notifications are about.
    pub fn of(recorded: &NewEvent, time: DateTime<Utc>) -> Option<Notice> {
        classify(recorded).map(|event| Notice {
            event,
            recorded: recorded.clone(),
            time,
        })
    }

    /// The workspace whose `spec.notifications` apply: the object's namespace.
    pub fn workspace(&self) -> &str {
        &self.recorded.involved.namespace
    }

    /// The JSON body of the delivery `delivery` (documented in docs/observability.md).
    pub fn body(&self, delivery: &uuid::Uuid) -> Value {
        let involved = &self.recorded.involved;
        json!({
            "apiVersion": API_VERSION,
            "kind": "Notification",
            "event": self.event.as_str(),
            "reason": self.recorded.reason,
            "type": match self.recorded.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            },
            "message": self.recorded.message,
            "object": {
                "kind": involved.kind,
                "namespace": involved.namespace,
                "name": involved.name,
                "uid": involved.uid,
            },
            "workspace": self.workspace(),
            "time": self.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "delivery": delivery.to_string(),
        })
    }
}

/// What `recorded` is about, if notifications care: a Job's run that ended `Failed` or
/// `TimedOut`, a Job's anomaly (its reason is the anomaly's kind), a Workflow node's
/// `ApprovalRequested`, a Sandbox's `Expiring`.
pub fn classify(recorded: &NewEvent) -> Option<NotificationEvent> {
    let kind = Kind::from_kind_field(&recorded.involved.kind)?;
    let reason = recorded.reason.as_str();
    match kind {
        Kind::Job if matches!(reason, "Failed" | "TimedOut") => Some(NotificationEvent::RunFailed),
        Kind::Job if is_anomaly(reason) => Some(NotificationEvent::Anomaly),
        Kind::Workflow if reason == "ApprovalRequested" => Some(NotificationEvent::ApprovalWaiting),
        Kind::Sandbox if reason == "Expiring" => Some(NotificationEvent::SandboxExpiring),
        _ => None,
    }
}

/// Whether `reason` names an [`AnomalyKind`], read by the type's own names.
fn is_anomaly(reason: &str) -> bool {
    AnomalyKind::deserialize(StrDeserializer::<DeError>::new(reason)).is_ok()
}

/// `url` as events and logs may show it: scheme, host, port and path, without
/// credentials, query or fragment.
pub fn shown(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InvolvedObject;

    fn recorded(kind: &str, type_: EventType, reason: &str) -> NewEvent {
        NewEvent {
            involved: InvolvedObject {
                kind: kind.into(),
                namespace: "team-a".into(),
                name: "build".into(),
                uid: "u-1".into(),
            },
            type_,
            reason: reason.into(),
            message: "exit code 1".into(),
        }
    }

    #[test]
    fn the_events_that_matter_are_matched_by_kind_and_reason() {
        use EventType::{Normal, Warning};
        use NotificationEvent::*;
        let cases = [
            ("Job", Warning, "Failed", Some(RunFailed)),
            ("Job", Warning, "TimedOut", Some(RunFailed)),
            ("Job", Normal, "Succeeded", None),
            ("Job", Normal, "Cancelled", None),
            ("Job", Warning, "SlowerThanUsual", Some(Anomaly)),
            ("Job", Warning, "NewErrorSignature", Some(Anomaly)),
            ("Job", Warning, "OutputSizeJump", Some(Anomaly)),
            (
                "Workflow",
                Normal,
                "ApprovalRequested",
                Some(ApprovalWaiting),
            ),
            ("Sandbox", Warning, "Expiring", Some(SandboxExpiring)),
            // A sandbox that failed is not a run that failed; nor is a Workflow's run
            // (its failed node Jobs tell of it).
            ("Sandbox", Warning, "Failed", None),
            ("Workflow", Warning, "Failed", None),
            ("Job", Normal, "ApprovalRequested", None),
            ("File", Warning, "Failed", None),
        ];
        for (kind, type_, reason, expected) in cases {
            assert_eq!(
                classify(&recorded(kind, type_, reason)),
                expected,
                "{kind} {reason}"
            );
        }
    }

    #[test]
    fn every_anomaly_kind_is_an_anomaly() {
        for kind in [
            AnomalyKind::SlowerThanUsual,
            AnomalyKind::FasterThanUsual,
            AnomalyKind::MemorySpike,
            AnomalyKind::NewFailure,
            AnomalyKind::Flaky,
            AnomalyKind::NewErrorSignature,
            AnomalyKind::OutputSizeJump,
        ] {
            assert!(is_anomaly(kind.as_str()), "{kind:?}");
        }
        assert!(!is_anomaly("Anomalous"));
    }

    #[test]
    fn the_body_names_the_event_the_object_and_the_delivery() {
        let time = "2026-01-02T03:04:05.678Z".parse().unwrap();
        let notice = Notice::of(&recorded("Job", EventType::Warning, "Failed"), time).unwrap();
        let delivery = uuid::Uuid::nil();
        assert_eq!(
            notice.body(&delivery),
            json!({
                "apiVersion": "orcaops.dev/v1alpha1",
                "kind": "Notification",
                "event": "runFailed",
                "reason": "Failed",
                "type": "Warning",
                "message": "exit code 1",
                "object": {"kind": "Job", "namespace": "team-a", "name": "build", "uid": "u-1"},
                "workspace": "team-a",
                "time": "2026-01-02T03:04:05.678Z",
                "delivery": "00000000-0000-0000-0000-000000000000",
            })
        );
    }

    #[test]
    fn a_shown_url_keeps_no_credentials_or_query() {
        let url = url::Url::parse("http://user:pw@alerts.internal:8080/in/orcaops?token=s3cr3t#x")
            .unwrap();
        assert_eq!(shown(&url), "http://alerts.internal:8080/in/orcaops");
        let url = url::Url::parse("http://alerts.internal/").unwrap();
        assert_eq!(shown(&url), "http://alerts.internal/");
    }
}
