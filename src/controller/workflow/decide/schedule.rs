//! The scheduler of a Workflow with a `schedule`: each tick starts a run. Pure: what is
//! due comes from the status (`lastScheduleTime`) and the clock, so a restarted
//! controller neither repeats a tick nor starts a burst for the ticks it missed (the
//! rules of [`crate::resources::schedule`]: at most one catch-up run, none past
//! `startingDeadlineSeconds`).
//!
//! A tick while a run is in progress: under `Forbid` it waits, and when the run ends the
//! latest waiting tick starts one run (if it is not past its deadline by then); under
//! `Replace` the run is cancelled and the tick starts a new one; under `Allow` it starts
//! beside the runs in progress, unless `maxActiveRuns` are (then it waits as under
//! `Forbid`).

use chrono::SecondsFormat;

pub(super) use crate::resources::schedule::Due;
use crate::resources::schedule::{MISSED_COUNT_LIMIT, Schedule};

use super::*;

/// What the schedule says at `obs.now`; None without a (valid) schedule.
pub(super) fn due(obs: &Observed) -> Option<Due> {
    let expression = obs.spec.schedule.as_deref()?;
    let schedule = Schedule::parse(expression, obs.spec.time_zone.as_deref()).ok()?;
    let created = obs.meta.creation_timestamp.unwrap_or(obs.now);
    let deadline = obs.spec.starting_deadline_seconds.map(Duration::from_secs);
    Some(schedule.due(obs.status.last_schedule_time, created, obs.now, deadline))
}

pub(super) fn shown(tick: DateTime<Utc>) -> String {
    tick.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Decider<'_> {
    /// The tick due and not yet started.
    pub(super) fn waiting_tick(&self) -> Option<DateTime<Utc>> {
        let tick = self.due.as_ref()?.run?;
        self.status
            .last_schedule_time
            .is_none_or(|last| last < tick)
            .then_some(tick)
    }

    /// Starts the run of a due tick, when the policy lets it.
    pub(super) fn tick(&mut self) {
        let Some(tick) = self.waiting_tick() else {
            return;
        };
        // Suspended: the tick waits (and replaces nothing) until resumed.
        if self.obs.spec.suspend {
            return;
        }
        if self.active() {
            // A run started by this very decision is not replaced (nor joined) at once.
            let fresh = self.status.start_time == Some(self.obs.now);
            match self.obs.spec.concurrency_policy {
                ConcurrencyPolicy::Replace if !fresh => {
                    self.cancel_run(&format!("the tick of {} replaced it", shown(tick)));
                }
                ConcurrencyPolicy::Allow if !fresh && self.room() => self.park_current(),
                _ => return,
            }
        } else if !self.room() {
            return;
        }
        self.status.last_schedule_time = Some(tick);
        let skipped = self.due.as_ref().map_or(0, |d| d.skipped);
        let missed = match skipped {
            0 => String::new(),
            n if n >= MISSED_COUNT_LIMIT => {
                format!(" (more than {n} earlier ticks were missed; they do not run)")
            }
            n => format!(" ({n} earlier ticks were missed; they do not run)"),
        };
        self.events.push(Event::normal(
            "Scheduled",
            format!(
                "the tick of {} starts run {}{missed}",
                shown(tick),
                self.status.run.unwrap_or(0) + 1
            ),
        ));
        // The token already run stays part of the trigger, so it is not run again.
        let schedule = format!("schedule={}", shown(tick));
        let trigger = match run_trigger(&self.obs.meta, &self.obs.spec) {
            Some(token) => format!("{token}/{schedule}"),
            None => schedule,
        };
        self.start_run(trigger, false);
    }

    /// The next tick in the status, and a tick given up as too late.
    pub(super) fn schedule_status(&mut self) {
        let Some(due) = self.due.clone() else {
            self.status.next_schedule_time = None;
            return;
        };
        self.status.next_schedule_time = due.next;
        if let Some(late) = due.too_late
            && !self.obs.spec.suspend
            && self
                .status
                .last_schedule_time
                .is_none_or(|last| last < late)
        {
            self.status.last_schedule_time = Some(late);
            self.events.push(Event::warning(
                "MissedSchedule",
                format!(
                    "the tick of {} does not run: it is more than startingDeadlineSeconds ({}) late",
                    shown(late),
                    self.obs.spec.starting_deadline_seconds.unwrap_or_default()
                ),
            ));
        }
    }

    /// How long until the next tick.
    pub(super) fn next_tick(&self) -> Option<Duration> {
        self.due.as_ref()?;
        let next = self.status.next_schedule_time?;
        let wait = (next - self.obs.now).to_std().unwrap_or_default();
        Some(wait.max(Duration::from_secs(1)))
    }
}
