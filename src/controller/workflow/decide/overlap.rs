//! Overlapping runs (`concurrencyPolicy: Allow`): a run asked for while others are in
//! progress starts beside them, and each goes on with its own nodes and Jobs (named
//! with their run, so they cannot collide). The current run (`status.run`) is the
//! newest; the others wait in `status.activeRuns` (compact: their Pending nodes are left
//! out) and are driven by the same rules, one at a time, as a status of their own. At
//! most `maxActiveRuns` are in progress; a run asked for beyond it waits, and the
//! `RunWaiting` condition says why.

use super::*;
use crate::resources::workflow::ActiveRun;

impl<'a> Decider<'a> {
    /// Whether another run may start now without passing `maxActiveRuns` (1 but under
    /// Allow).
    pub(super) fn room(&self) -> bool {
        self.status.runs_in_progress().len() < self.obs.spec.max_active_runs()
    }

    /// Why a run asked for (by a token or a tick) waits under Allow: the runs in progress
    /// are as many as `maxActiveRuns` allows. None when nothing waits for that reason.
    pub(super) fn no_room(&self) -> Option<String> {
        if self.older
            || self.obs.spec.concurrency_policy != ConcurrencyPolicy::Allow
            || self.obs.spec.suspend
            || self.room()
            || (self.wanted().is_none() && self.waiting_tick().is_none())
        {
            return None;
        }
        let runs: Vec<String> = self
            .status
            .runs_in_progress()
            .iter()
            .map(u32::to_string)
            .collect();
        Some(format!(
            "{} runs are in progress ({}), the most spec.maxActiveRuns ({}) allows; it starts when one of them ends",
            runs.len(),
            runs.join(", "),
            self.obs.spec.max_active_runs()
        ))
    }

    /// The `RunWaiting` condition: true while a run waits for room under Allow.
    pub(super) fn waiting_condition(&mut self) {
        let now = self.obs.now;
        let waiting = self.no_room();
        let listed = self
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == WorkflowConditionType::RunWaiting);
        match waiting {
            Some(why) => set_condition(
                &mut self.status.conditions,
                WorkflowConditionType::RunWaiting,
                ConditionStatus::True,
                "MaxActiveRuns",
                &format!("a new run waits: {why}"),
                now,
            ),
            None if listed => set_condition(
                &mut self.status.conditions,
                WorkflowConditionType::RunWaiting,
                ConditionStatus::False,
                "NoneWaiting",
                "no run waits for room",
                now,
            ),
            None => {}
        }
    }

    /// The current run goes on beside the one about to start: it moves to `activeRuns`.
    pub(super) fn park_current(&mut self) {
        let mut run = ActiveRun::from_status(&self.status);
        run.phase = self.run_phase();
        self.status.active_runs.push(run);
    }

    /// Drives every run of `activeRuns`: follows its Jobs, starts what its DAG allows,
    /// and ends it when its nodes have.
    pub(super) fn drive_older(&mut self) {
        let runs: Vec<u32> = self.status.active_runs.iter().map(|r| r.run).collect();
        for run in runs {
            self.on_older(run, |d| d.drive());
        }
    }

    /// Cancels run `run` of `activeRuns`; false when it is not one of them.
    pub(super) fn cancel_older(&mut self, run: u32, why: &str) -> bool {
        self.on_older(run, |d| d.cancel_run(why))
    }

    /// Cancels the runs of `activeRuns` started for another spec than `spec`.
    pub(super) fn cancel_older_of_another_spec(&mut self, spec: &str) {
        let stale: Vec<u32> = self
            .status
            .active_runs
            .iter()
            .filter(|r| r.trigger.as_deref().and_then(spec_part) != Some(spec))
            .map(|r| r.run)
            .collect();
        for run in stale {
            self.cancel_older(run, "the spec changed");
        }
    }

    /// Runs `f` on run `run` of `activeRuns`, as a decision of its own over that run,
    /// then takes back what it decided: its actions and events (with its record when its
    /// nodes changed), and the run (still in progress), or its end in the history. False
    /// when `run` is not in `activeRuns`.
    fn on_older(&mut self, run: u32, f: impl FnOnce(&mut Decider<'a>)) -> bool {
        let Some(pos) = self.status.active_runs.iter().position(|r| r.run == run) else {
            return false;
        };
        let mut older = Decider {
            obs: self.obs,
            plan: std::mem::take(&mut self.plan),
            status: self.status.active_runs[pos].as_status(),
            actions: Vec::new(),
            events: Vec::new(),
            due: None,
            wake: None,
            older: true,
        };
        older.align_nodes();
        let nodes_before = older.status.nodes.clone();
        f(&mut older);
        if older.active() && older.status.nodes != nodes_before {
            older.status.phase = older.run_phase();
            older.record_run();
        }
        self.plan = std::mem::take(&mut older.plan);
        for action in std::mem::take(&mut older.actions) {
            match action {
                WorkflowAction::DeleteJob { name, why } => self.delete(&name, why),
                other => self.actions.push(other),
            }
        }
        self.events.append(&mut older.events);
        if let Some(wake) = older.wake {
            self.wake = Some(self.wake.map_or(wake, |w| w.min(wake)));
        }
        if older.active() {
            let phase = older.run_phase();
            let mut kept = ActiveRun::from_status(&older.status);
            kept.phase = phase;
            self.status.active_runs[pos] = kept;
        } else {
            self.status.active_runs.remove(pos);
            if let Some(ended) = older.status.history.into_iter().next() {
                self.status.history.insert(0, ended);
                self.status.history.truncate(HISTORY_LIMIT);
            }
        }
        true
    }
}
