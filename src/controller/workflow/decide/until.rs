//! `until`: a node that runs again, a new Job per iteration, until its outputs satisfy
//! an expression, at most `limit` times, `delaySeconds` apart. Each iteration's Job is
//! named deterministically and labelled `orcaops.dev/iteration`, so a restarted
//! controller finds the latest one and never makes an iteration twice.

use chrono::TimeDelta;

use super::*;

/// The Job of `iteration` of `node`: `<workflow>-<run>-<node>` for the first (as every
/// node's), `<workflow>-<run>-<node>-i<iteration>` after, within the same length bound.
pub fn iteration_job_name(workflow: &str, run: u32, node: &str, iteration: u32) -> String {
    if iteration <= 1 {
        naming::job_name(workflow, run, node)
    } else {
        naming::job_name(workflow, run, &format!("{node}-i{iteration}"))
    }
}

impl Decider<'_> {
    /// Node `i`'s iteration `job` succeeded. Returns how the node ends (phase and
    /// message), or None when it goes on: the next iteration is started, or waits for its
    /// delay (then the decision asks to be woken).
    pub(super) fn iterate(
        &mut self,
        i: usize,
        job: &NodeJob,
    ) -> Option<(NodePhase, Option<String>)> {
        let obs = self.obs;
        let until = obs.spec.jobs[self.plan[i].index]
            .until
            .as_ref()
            .expect("a node with until");
        let done = job.iteration;
        let mut vars = self.vars(i);
        vars.outputs = Some(job.status.outputs.clone());
        let expression = &until.expression;
        match expr::eval_bool(expression, &vars) {
            Err(e) => Some((NodePhase::Failed, Some(format!("until: {e}")))),
            Ok(true) => Some((
                NodePhase::Succeeded,
                Some(format!(
                    "until `{expression}` was true after {done} iteration{}",
                    if done == 1 { "" } else { "s" }
                )),
            )),
            Ok(false) if done >= until.limit => Some((
                NodePhase::Failed,
                Some(format!(
                    "until `{expression}` was still false after {done} iterations, its limit"
                )),
            )),
            Ok(false) => {
                let next = done + 1;
                let ended = job.status.completion_time.unwrap_or(obs.now);
                let delay = until.delay_seconds.unwrap_or(0);
                let at = ended + TimeDelta::seconds(i64::try_from(delay).unwrap_or(i64::MAX / 2));
                self.status.nodes[i].phase = NodePhase::Running;
                if obs.now >= at && !obs.spec.suspend {
                    vars.outputs = None;
                    if self.create_job(i, next, &vars) {
                        let node = &mut self.status.nodes[i];
                        node.iterations = Some(next);
                        node.message = Some(format!("iteration {next} of at most {}", until.limit));
                    }
                } else {
                    self.status.nodes[i].message = Some(format!(
                        "until `{expression}` is false after iteration {done}; iteration {next} at {}",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ));
                    let wait = (at - obs.now).to_std().unwrap_or_default();
                    let wait = wait.max(Duration::from_secs(1));
                    self.wake = Some(self.wake.map_or(wait, |w| w.min(wait)));
                }
                None
            }
        }
    }
}
