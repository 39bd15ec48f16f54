//! One notice to each of its endpoints: where it goes, the key that signs it, the
//! attempts, and the outcome recorded on the object.

use std::time::Duration;

use bytes::Bytes;
use tracing::{info, warn};

use super::notice::{Notice, shown};
use super::retry::{Answer, Verdict, verdict};
use super::{DELIVERY_HEADER, EVENT_HEADER, Notifier, SIGNATURE_HEADER, SigningKey, signature};
use crate::resources::common::SecretKeySelector;
use crate::resources::workspace::{WorkspaceSpec, notification_url};
use crate::resources::{Kind, ObjectKey};
use crate::store::{EventType, NewEvent, SecretValue};

/// One endpoint of one notice.
struct Target {
    url: url::Url,
    signing: Signing,
}

enum Signing {
    Unsigned,
    Key(SigningKey),
    /// A key of a Secret in the notice's workspace, read when it is sent.
    Secret(SecretKeySelector),
}

enum Outcome {
    Delivered {
        answer: Answer,
        attempts: usize,
    },
    Failed {
        answer: Answer,
        attempts: usize,
    },
    /// Not sent: the body could not be signed.
    Unsigned(String),
}

fn attempts(n: usize) -> String {
    match n {
        1 => "1 attempt".into(),
        n => format!("{n} attempts"),
    }
}

impl Notifier {
    /// Sends `notice` to each of its endpoints, at once, and records each outcome.
    pub(super) async fn dispatch(&self, notice: Notice) {
        let targets = self.targets(&notice).await;
        let sends = targets.iter().map(|target| self.deliver(&notice, target));
        futures::future::join_all(sends).await;
    }

    /// The server-wide endpoints, then those of the notice's workspace that want it.
    async fn targets(&self, notice: &Notice) -> Vec<Target> {
        let signing = || match &self.settings.key {
            Some(key) => Signing::Key(key.clone()),
            None => Signing::Unsigned,
        };
        let mut targets: Vec<Target> = (self.settings.urls.iter())
            .map(|url| Target {
                url: url.clone(),
                signing: signing(),
            })
            .collect();
        let workspace = notice.workspace();
        if workspace.is_empty() {
            return targets;
        }
        let key = ObjectKey::new(Kind::Workspace, "", workspace);
        let spec = match self.objects.get(&key).await {
            // A workspace nobody declared (`default`) has the server-wide endpoints only.
            Ok(None) => return targets,
            Ok(Some(obj)) => serde_json::from_value::<WorkspaceSpec>(obj.spec),
            Err(e) => {
                warn!(%workspace, error = %e, "cannot read the workspace's notifications; sending to the server-wide endpoints only");
                return targets;
            }
        };
        let Ok(spec) = spec else {
            return targets;
        };
        for declared in spec.notifications {
            // Applying checked the URL; one that fails now is skipped, not guessed at.
            if let (true, Ok(url)) = (
                declared.wants(notice.event),
                notification_url(&declared.url),
            ) {
                let signing = match declared.secret_ref {
                    Some(selector) => Signing::Secret(selector),
                    None => Signing::Unsigned,
                };
                targets.push(Target { url, signing });
            }
        }
        targets
    }

    async fn deliver(&self, notice: &Notice, target: &Target) {
        let event = notice.event.as_str();
        let url = shown(&target.url);
        let outcome = match self.key(notice, &target.signing).await {
            Ok(key) => self.send(notice, target, key.as_ref()).await,
            Err(why) => Outcome::Unsigned(why),
        };
        let involved = &notice.recorded.involved;
        let (type_, reason, message) = match outcome {
            Outcome::Delivered {
                answer,
                attempts: n,
            } => {
                self.metrics.notification(event, "delivered");
                info!(event, %url, kind = %involved.kind, namespace = %involved.namespace, name = %involved.name, attempts = n, "notification sent");
                let message = format!("sent {event} to {url}: {answer} after {}", attempts(n));
                (EventType::Normal, "Notified", message)
            }
            Outcome::Failed {
                answer,
                attempts: n,
            } => {
                self.metrics.notification(event, "failed");
                warn!(event, %url, kind = %involved.kind, namespace = %involved.namespace, name = %involved.name, attempts = n, error = %answer, "notification failed");
                let retried = match verdict(&answer) {
                    Verdict::GiveUp => " (not retried: the endpoint refused it)",
                    _ => "",
                };
                let message = format!(
                    "could not send {event} to {url} after {}: {answer}{retried}",
                    attempts(n)
                );
                (EventType::Warning, "NotificationFailed", message)
            }
            Outcome::Unsigned(why) => {
                self.metrics.notification(event, "failed");
                warn!(event, %url, kind = %involved.kind, namespace = %involved.namespace, name = %involved.name, error = %why, "notification not sent");
                let message = format!("did not send {event} to {url}: {why}");
                (EventType::Warning, "NotificationFailed", message)
            }
        };
        let recorded = NewEvent {
            involved: involved.clone(),
            type_,
            reason: reason.into(),
            message,
        };
        if let Err(e) = self.objects.record_event(recorded).await {
            warn!(error = %e, "cannot record a notification's outcome");
        }
    }

    /// The key that signs for `signing`; a Secret that cannot be read is a reason not to
    /// send (an unsigned body would be refused by a receiver that checks).
    async fn key(&self, notice: &Notice, signing: &Signing) -> Result<Option<SigningKey>, String> {
        let selector = match signing {
            Signing::Unsigned => return Ok(None),
            Signing::Key(key) => return Ok(Some(key.clone())),
            Signing::Secret(selector) => selector,
        };
        let workspace = notice.workspace();
        let (name, key) = (&selector.name, &selector.key);
        let create = format!(
            "create it with kubectl create secret generic {name} --from-literal={key}=VALUE -n {workspace}, and give the receiver the same VALUE"
        );
        match self.objects.read_secret_key(workspace, name, key).await {
            Ok(SecretValue::Found(value)) => Ok(Some(SigningKey(value.into_bytes()))),
            Ok(SecretValue::NoSecret) => Err(format!(
                "there is no secret {name} in workspace {workspace} to sign it with; {create}"
            )),
            Ok(SecretValue::NoKey) => Err(format!("secret {name} has no key {key}; {create}")),
            Ok(SecretValue::NotText) => {
                Err(format!("key {key} of secret {name} is not text; {create}"))
            }
            Ok(SecretValue::Native) => Err(format!("secret {name} is not readable here; {create}")),
            Err(e) => Err(format!("cannot read secret {name}: {e}")),
        }
    }

    /// Attempts until delivered, refused, or out of attempts.
    async fn send(&self, notice: &Notice, target: &Target, key: Option<&SigningKey>) -> Outcome {
        let delivery = uuid::Uuid::new_v4();
        let body = Bytes::from(
            serde_json::to_vec(&notice.body(&delivery)).expect("a JSON value serialises"),
        );
        let signed = key.map(|key| signature::sign(&key.0, &body));
        let retry = &self.settings.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = (self.http.post(target.url.clone()))
                .timeout(retry.attempt_timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(EVENT_HEADER, notice.event.as_str())
                .header(DELIVERY_HEADER, delivery.to_string());
            if let Some(signed) = &signed {
                request = request.header(SIGNATURE_HEADER, signed);
            }
            let answer = match request.body(body.clone()).send().await {
                Ok(response) => Answer::Status(response.status().as_u16()),
                Err(e) => Answer::Unreachable(unreachable(e, retry.attempt_timeout)),
            };
            let wait = match verdict(&answer) {
                Verdict::Delivered => {
                    return Outcome::Delivered {
                        answer,
                        attempts: attempt,
                    };
                }
                Verdict::Retry => retry.wait_after(attempt),
                Verdict::GiveUp => None,
            };
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => {
                    return Outcome::Failed {
                        answer,
                        attempts: attempt,
                    };
                }
            }
        }
    }
}

/// Why an attempt got no answer, without the URL (it may carry credentials).
fn unreachable(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}s", timeout.as_secs_f64());
    }
    let e = e.without_url();
    let mut cause: &dyn std::error::Error = &e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("no answer: {cause}")
}
