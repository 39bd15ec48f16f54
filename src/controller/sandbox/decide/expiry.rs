//! Deadlines: when a sandbox expires (idle or TTL), what `status.expiresAt` says, the
//! Expiring condition a minute ahead, and how background work postpones an idle expiry.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Decider, Step};
use crate::controller::reconcile::Fate;
use crate::resources::common::{ConditionStatus, set_condition};
use crate::resources::sandbox::SandboxConditionType;
use crate::store::EventType;

/// The Expiring condition turns True (with a Warning event) this long before expiry.
pub const EXPIRING_AHEAD: TimeDelta = TimeDelta::seconds(60);
/// `lastActivityTime` is written when activity moved it at least this much, or when
/// expiry is near: agents exec often, and a status write per exec would be a storm.
pub const ACTIVITY_WRITE_SLACK: TimeDelta = TimeDelta::seconds(10);

/// The Expiring condition's reason after background work postponed an idle expiry.
pub const REASON_BACKGROUND: &str = "BackgroundWork";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryKind {
    Idle,
    Ttl,
}

impl ExpiryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryKind::Idle => "idle",
            ExpiryKind::Ttl => "ttl",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            ExpiryKind::Idle => "Idle",
            ExpiryKind::Ttl => "TTL",
        }
    }
}

/// The earlier of the idle and TTL deadlines, given when the sandbox started and when
/// it was last used. `None` when neither applies or the sandbox has not started.
pub fn deadline(
    idle_secs: Option<u64>,
    ttl_secs: Option<u64>,
    started_at: Option<DateTime<Utc>>,
    last_activity: Option<DateTime<Utc>>,
) -> Option<(DateTime<Utc>, ExpiryKind)> {
    let started = started_at?;
    let last = last_activity.map_or(started, |l| l.max(started));
    let secs = |s: u64| TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
    let idle = idle_secs.map(|s| (last + secs(s), ExpiryKind::Idle));
    let ttl = ttl_secs.map(|s| (started + secs(s), ExpiryKind::Ttl));
    match (idle, ttl) {
        (Some(i), Some(t)) => Some(if t.0 < i.0 { t } else { i }),
        (i, t) => i.or(t),
    }
}

fn whole_secs(d: TimeDelta) -> i64 {
    (d.num_milliseconds().max(0) + 999) / 1000
}

impl Decider<'_> {
    /// When activity seen by this process (or a postponement) is newer than the stored one.
    fn fresh_last_activity(&self) -> Option<DateTime<Utc>> {
        match (self.status.last_activity_time, self.obs.activity.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn deadline_with(&self, last: Option<DateTime<Utc>>) -> Option<(DateTime<Utc>, ExpiryKind)> {
        let e = &self.obs.effective;
        deadline(
            e.idle_timeout_seconds,
            e.ttl_seconds,
            self.status.started_at,
            last,
        )
    }

    /// Checks the deadline of a started sandbox. `Step::Done` when it expired (or when a
    /// count of background processes is needed first); otherwise keeps `expiresAt`, the
    /// Expiring condition and the requeue up to date.
    pub(super) fn check_expiry(&mut self) -> Step {
        let now = self.obs.now;
        let Some((due, kind)) = self.deadline_with(self.fresh_last_activity()) else {
            self.clear_expiry();
            return Step::Continue;
        };
        let mut postponed = None;
        if now >= due {
            if kind == ExpiryKind::Ttl {
                self.expire(kind);
                return Step::Done;
            }
            let activity = &self.obs.activity;
            if activity.busy {
                postponed = Some("an exec in progress keeps sandbox alive");
            } else {
                match activity.background {
                    None if self.any_running() => {
                        self.count_processes = true;
                        return Step::Done;
                    }
                    Some(n) if n > 0 => {
                        postponed = Some("background process keeps sandbox alive");
                    }
                    _ => {
                        self.expire(kind);
                        return Step::Done;
                    }
                }
            }
        }
        if let Some(why) = postponed {
            // Work in progress is activity: the idle clock starts again now.
            self.status.last_activity_time = Some(now);
            let previous = self.expiring_reason();
            if previous.as_deref() != Some(REASON_BACKGROUND) {
                self.event(EventType::Normal, "KeptAlive", why.to_string());
            }
            self.set_expiring(ConditionStatus::False, REASON_BACKGROUND, why);
        } else {
            self.record_activity();
        }
        self.publish_deadline(postponed.is_some());
        Step::Continue
    }

    /// Copies fresh activity into the status when it moved enough to matter.
    fn record_activity(&mut self) {
        let Some(fresh) = self.obs.activity.last else {
            return;
        };
        let stored = self
            .status
            .last_activity_time
            .or(self.status.started_at)
            .unwrap_or(fresh);
        if fresh <= stored {
            return;
        }
        let near = self
            .deadline_with(self.status.last_activity_time)
            .is_some_and(|(due, _)| due - self.obs.now <= EXPIRING_AHEAD);
        if near || fresh - stored >= ACTIVITY_WRITE_SLACK {
            self.status.last_activity_time = Some(fresh);
        }
    }

    /// Sets `expiresAt` from the stored times (so the status agrees with itself), the
    /// Expiring condition, and the requeue for both.
    fn publish_deadline(&mut self, just_postponed: bool) {
        let now = self.obs.now;
        let Some((expires, kind)) = self.deadline_with(self.status.last_activity_time) else {
            return;
        };
        self.status.expires_at = Some(expires);
        self.status.expiry_reason = Some(kind.as_str().to_string());
        // What really counts: activity this process saw may be newer than the status.
        let (due, _) = self
            .deadline_with(self.fresh_last_activity())
            .unwrap_or((expires, kind));
        // Background work postponed the idle deadline, and nobody has used the sandbox
        // since: the next check is at the deadline itself, with no warning before it.
        let kept_alive = kind == ExpiryKind::Idle
            && self.expiring_reason().as_deref() == Some(REASON_BACKGROUND)
            && self
                .obs
                .activity
                .last
                .is_none_or(|a| Some(a) <= self.status.last_activity_time);
        if !just_postponed && !kept_alive {
            let remaining = due - now;
            if remaining <= EXPIRING_AHEAD {
                let message = format!("expires in {}s ({})", whole_secs(remaining), kind.as_str());
                let was = self.expiring_condition();
                if was.is_none_or(|(status, reason)| {
                    status != ConditionStatus::True || reason != kind.reason()
                }) {
                    self.event(EventType::Warning, "Expiring", message.clone());
                    self.set_expiring(ConditionStatus::True, kind.reason(), &message);
                }
            } else {
                let message = format!("expires at {} ({})", expires.to_rfc3339(), kind.as_str());
                self.set_expiring(ConditionStatus::False, "NotDue", &message);
                self.requeue_at(due - EXPIRING_AHEAD);
            }
        }
        self.requeue_at(due);
    }

    fn clear_expiry(&mut self) {
        self.status.expires_at = None;
        self.status.expiry_reason = None;
        self.status
            .conditions
            .retain(|c| c.type_ != SandboxConditionType::Expiring);
    }

    fn expiring_condition(&self) -> Option<(ConditionStatus, String)> {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == SandboxConditionType::Expiring)
            .map(|c| (c.status, c.reason.clone()))
    }

    fn expiring_reason(&self) -> Option<String> {
        self.expiring_condition().map(|(_, reason)| reason)
    }

    fn set_expiring(&mut self, status: ConditionStatus, reason: &str, message: &str) {
        set_condition(
            &mut self.status.conditions,
            SandboxConditionType::Expiring,
            status,
            reason,
            message,
            self.obs.now,
        );
    }

    /// Idle or TTL deadline passed: stop (phase Expired) or delete, as `onExpiry` says.
    fn expire(&mut self, kind: ExpiryKind) {
        use crate::resources::sandbox::ExpiryAction;
        let e = &self.obs.effective;
        let why = match kind {
            ExpiryKind::Idle => format!(
                "idle: no activity for {}s (idleTimeoutSeconds)",
                e.idle_timeout_seconds.unwrap_or_default()
            ),
            ExpiryKind::Ttl => format!(
                "ttl: {}s after its start (ttlSeconds)",
                e.ttl_seconds.unwrap_or_default()
            ),
        };
        match e.on_expiry {
            ExpiryAction::Delete => {
                self.event(
                    EventType::Warning,
                    "Expired",
                    format!("expired ({why}); deleting the sandbox"),
                );
                // Said before the Sandbox goes: nothing is left to say it after.
                self.status_first = true;
                self.fate = Fate::Delete { reason: "expired" };
            }
            ExpiryAction::Stop => {
                self.event(
                    EventType::Warning,
                    "Expired",
                    format!("expired ({why}); containers stopped, files and volumes kept"),
                );
                let now = self.obs.now;
                self.status.expired_at = Some(now);
                self.status.message = Some(format!(
                    "expired ({why}); set the annotation orcaops.dev/start to the current time to start it again"
                ));
                self.stop_containers();
                self.set_phase_quietly(crate::resources::sandbox::SandboxPhase::Expired);
                self.clear_expiry();
                self.set_ready(ConditionStatus::False, "Expired", "the sandbox expired");
            }
        }
    }
}
