//! Cron schedules: when the next run is due, and what to do about the ticks missed
//! while nothing was watching (the server was down, or the object was suspended).
//!
//! The rules are the Kubernetes CronJob controller's, with one difference that matters
//! after an outage: however many ticks were missed, **at most one** catch-up run starts
//! (the latest tick's), never a burst. A tick older than `startingDeadlineSeconds` when
//! it is noticed is not started at all; it is reported as missed.
//!
//! Pure: the caller passes the clock, so the controller decides from a fixed `now` and
//! tests need no waiting.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// How many missed ticks are counted before counting stops ("more than 100").
pub const MISSED_COUNT_LIMIT: u32 = 100;

/// A parsed cron expression in a time zone (UTC unless one is named).
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

/// Why a schedule cannot be used: which of the two fields, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    Cron { expression: String, problem: String },
    TimeZone { name: String },
}

impl ScheduleError {
    /// What is wrong, without the fix.
    pub fn problem(&self) -> String {
        match self {
            ScheduleError::Cron {
                expression,
                problem,
            } => format!("\"{expression}\" is not a valid cron schedule: {problem}"),
            ScheduleError::TimeZone { name } => {
                format!("\"{name}\" is not a time zone of the IANA database")
            }
        }
    }

    /// What to write instead.
    pub fn fix(&self) -> &'static str {
        match self {
            ScheduleError::Cron { .. } => {
                "use five fields (minute hour day-of-month month day-of-week), such as \"0 3 * * *\", or @daily"
            }
            ScheduleError::TimeZone { .. } => {
                "use a name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
            }
        }
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.problem(), self.fix())
    }
}

impl std::error::Error for ScheduleError {}

/// A cron expression: five fields, or a nickname such as `@hourly`.
pub fn parse_cron(expression: &str) -> Result<Cron, ScheduleError> {
    expression.parse::<Cron>().map_err(|e| ScheduleError::Cron {
        expression: expression.to_string(),
        problem: e.to_string(),
    })
}

/// A time zone of the IANA database, such as `Europe/Berlin`.
pub fn parse_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>().map_err(|_| ScheduleError::TimeZone {
        name: name.to_string(),
    })
}

/// What a schedule says at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The tick to start a run for now, if any: the latest one not yet run.
    pub run: Option<DateTime<Utc>>,
    /// A tick that is due but past its starting deadline: not started, to be reported.
    pub too_late: Option<DateTime<Utc>>,
    /// Ticks missed before the one acted on (run or too late), which will never run;
    /// counting stops at [`MISSED_COUNT_LIMIT`].
    pub skipped: u32,
    /// When to look again: the next tick after `now`.
    pub next: Option<DateTime<Utc>>,
}

impl Schedule {
    /// Parses `expression` (five fields, or a nickname such as `@hourly`) in `time_zone`
    /// (an IANA name; UTC when None).
    pub fn parse(expression: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let cron = parse_cron(expression)?;
        let zone = time_zone.map_or(Ok(Tz::UTC), parse_zone)?;
        Ok(Schedule { cron, zone })
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest tick at or before `at`.
    fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&at.with_timezone(&self.zone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// What is due at `now`, given the last tick a run was started (or reported missed)
    /// for, and when the object was created (ticks before it never count).
    /// `starting_deadline` bounds how late a tick may still start.
    pub fn due(
        &self,
        last_tick: Option<DateTime<Utc>>,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
        starting_deadline: Option<std::time::Duration>,
    ) -> Due {
        let since = last_tick.map_or(created, |t| t.max(created));
        let next = self.next_after(now);
        let latest = self
            .latest_at_or_before(now)
            .filter(|latest| *latest > since);
        let Some(latest) = latest else {
            return Due {
                run: None,
                too_late: None,
                skipped: 0,
                next,
            };
        };
        let mut skipped = 0;
        let mut tick = self.next_after(since);
        while let Some(t) = tick
            && t < latest
            && skipped < MISSED_COUNT_LIMIT
        {
            skipped += 1;
            tick = self.next_after(t);
        }
        let late = starting_deadline.is_some_and(|deadline| {
            let waited = (now - latest).to_std().unwrap_or_default();
            waited > deadline
        });
        Due {
            run: (!late).then_some(latest),
            too_late: late.then_some(latest),
            skipped,
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, h, m, s).unwrap()
    }

    fn every_five() -> Schedule {
        Schedule::parse("*/5 * * * *", None).unwrap()
    }

    #[test]
    fn nothing_is_due_before_the_first_tick_after_creation() {
        let due = every_five().due(None, at(10, 1, 0), at(10, 4, 59), None);
        assert_eq!(due.run, None);
        assert_eq!(due.next, Some(at(10, 5, 0)));
        // A tick at the creation instant itself does not count: it was before the object.
        let due = every_five().due(None, at(10, 5, 0), at(10, 5, 0), None);
        assert_eq!(due.run, None);
    }

    #[test]
    fn a_tick_is_due_once_and_then_the_next_one() {
        let schedule = every_five();
        let due = schedule.due(None, at(10, 1, 0), at(10, 5, 2), None);
        assert_eq!(due.run, Some(at(10, 5, 0)));
        assert_eq!((due.skipped, due.too_late), (0, None));
        assert_eq!(due.next, Some(at(10, 10, 0)));
        // Once run, the same tick is not due again.
        let again = schedule.due(Some(at(10, 5, 0)), at(10, 1, 0), at(10, 7, 0), None);
        assert_eq!(again.run, None);
        let later = schedule.due(Some(at(10, 5, 0)), at(10, 1, 0), at(10, 10, 0), None);
        assert_eq!(later.run, Some(at(10, 10, 0)));
    }

    #[test]
    fn after_an_outage_only_the_latest_missed_tick_runs() {
        // Down from 10:06 to 11:02: ticks 10:10 ... 11:00 were missed (11 of them).
        let due = every_five().due(Some(at(10, 5, 0)), at(9, 0, 0), at(11, 2, 0), None);
        assert_eq!(due.run, Some(at(11, 0, 0)));
        assert_eq!(due.skipped, 10, "10:10 to 10:55 never run");
        assert_eq!(due.next, Some(at(11, 5, 0)));
    }

    #[test]
    fn a_tick_past_its_starting_deadline_is_reported_not_run() {
        let deadline = Some(Duration::from_secs(60));
        let late = every_five().due(Some(at(10, 5, 0)), at(9, 0, 0), at(10, 11, 30), deadline);
        assert_eq!((late.run, late.too_late), (None, Some(at(10, 10, 0))));
        let in_time = every_five().due(Some(at(10, 5, 0)), at(9, 0, 0), at(10, 10, 45), deadline);
        assert_eq!((in_time.run, in_time.too_late), (Some(at(10, 10, 0)), None));
    }

    #[test]
    fn missed_ticks_are_counted_up_to_a_limit() {
        let every_minute = Schedule::parse("* * * * *", None).unwrap();
        let due = every_minute.due(Some(at(0, 0, 0)), at(0, 0, 0), at(20, 0, 0), None);
        assert_eq!(due.run, Some(at(20, 0, 0)));
        assert_eq!(due.skipped, MISSED_COUNT_LIMIT);
    }

    #[test]
    fn a_time_zone_moves_the_ticks() {
        // 03:00 in Berlin is 02:00 UTC in December (CET, UTC+1).
        let berlin = Schedule::parse("0 3 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(berlin.next_after(at(0, 0, 0)), Some(at(2, 0, 0)));
        let utc = Schedule::parse("0 3 * * *", None).unwrap();
        assert_eq!(utc.next_after(at(0, 0, 0)), Some(at(3, 0, 0)));
    }

    #[test]
    fn bad_expressions_and_zones_say_what_to_write() {
        let cron = Schedule::parse("every five minutes", None).unwrap_err();
        assert!(matches!(cron, ScheduleError::Cron { .. }), "{cron}");
        assert!(cron.to_string().contains("five fields"), "{cron}");
        let zone = Schedule::parse("0 3 * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(
            zone,
            ScheduleError::TimeZone {
                name: "Mars/Olympus".into()
            }
        );
        assert!(zone.to_string().contains("Europe/Berlin"), "{zone}");
        assert!(Schedule::parse("@daily", Some("UTC")).is_ok());
    }
}
