//! The Job controller's log followers: a task per running attempt that copies its
//! output into the attempt log as it is written, and wakes the Job when the attempt
//! ends (or, for a runner that holds for its artifacts, when its steps are over). They
//! live in memory and are rebuilt by the next reconcile after a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::journal;
use super::log_writer::LogWriter;
use crate::controller::{Context, ControllerError};
use crate::records;
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::runtime::ContainerInfo;
use crate::runtime::names::NONCE_LABEL;
use crate::runtime::runner::RunnerParser;

/// How long the output may pause before what was read is flushed to the live log.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// The least time between two wakes of a Job for a step that started.
const STEP_WAKE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The first wait after a follower could not write the live log; it doubles per
/// consecutive failure of the same container, up to [`MAX_RETRY_AFTER`].
const FIRST_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// The running followers, by container id.
#[derive(Default)]
pub struct Followers {
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
    /// Consecutive failures to write a container's live log (a full or read-only data
    /// dir): the follower waits before it wakes the Job, which would start it again at
    /// once, so a failing disk is retried with backoff rather than in a tight loop.
    failures: Mutex<HashMap<String, u32>>,
    /// The step each followed container is running now (by container id), as its
    /// markers say: the Job's summary names it.
    running: Mutex<HashMap<String, usize>>,
    /// Uids of deleted Jobs whose interrupted run is being recorded
    /// ([`super::deleted`]): the orphan sweep leaves their containers alone meanwhile.
    recording: Arc<Mutex<HashSet<String>>>,
}

/// Holds a deleted Job's containers back from the orphan sweep until dropped.
pub struct Recording {
    uids: Arc<Mutex<HashSet<String>>>,
    uid: String,
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.uids.lock().expect("followers lock").remove(&self.uid);
    }
}

impl Followers {
    /// Counts a failure of `container_id`'s follower; returns how long to wait.
    fn failed(&self, container_id: &str) -> std::time::Duration {
        let mut failures = self.failures.lock().expect("followers lock");
        let count = failures.entry(container_id.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        FIRST_RETRY_AFTER
            .saturating_mul(1 << (*count - 1).min(6))
            .min(MAX_RETRY_AFTER)
    }

    fn succeeded(&self, container_id: &str) {
        self.failures
            .lock()
            .expect("followers lock")
            .remove(container_id);
    }
}

impl Followers {
    /// Marks `uid`'s interrupted run as being recorded, until the guard is dropped.
    pub(super) fn recording(&self, uid: &str) -> Recording {
        self.recording
            .lock()
            .expect("followers lock")
            .insert(uid.to_string());
        Recording {
            uids: Arc::clone(&self.recording),
            uid: uid.to_string(),
        }
    }

    fn is_recording(&self, uid: &str) -> bool {
        self.recording.lock().expect("followers lock").contains(uid)
    }

    /// Stops following a container (it is being harvested or removed).
    pub fn stop(&self, container_id: &str) {
        if let Some(task) = self
            .tasks
            .lock()
            .expect("followers lock")
            .remove(container_id)
        {
            task.abort();
        }
    }

    /// The index of the step `container_id` is running, while it is followed.
    pub fn running_step(&self, container_id: &str) -> Option<usize> {
        self.running
            .lock()
            .expect("followers lock")
            .get(container_id)
            .copied()
    }

    /// Notes the step `container_id` runs now (None: it is no longer followed);
    /// returns whether that changed.
    fn set_running_step(&self, container_id: &str, step: Option<usize>) -> bool {
        let mut running = self.running.lock().expect("followers lock");
        match step {
            Some(step) => running.insert(container_id.to_string(), step) != Some(step),
            None => running.remove(container_id).is_some(),
        }
    }

    /// Stops every follower (the controllers are stopping).
    pub fn stop_all(&self) {
        for (_, task) in self.tasks.lock().expect("followers lock").drain() {
            task.abort();
        }
    }
}

/// Starts following a running container's output unless that already happens.
pub(super) fn follow(
    ctx: &Arc<Context>,
    key: &ObjectKey,
    obj: &Object,
    container: &ContainerInfo,
    run: u32,
    attempt: u32,
) {
    let mut followers = ctx.followers.tasks.lock().expect("followers lock");
    followers.retain(|_, task| !task.is_finished());
    if followers.contains_key(&container.id) {
        return;
    }
    let spec: crate::resources::JobSpec = match serde_json::from_value(obj.spec.clone()) {
        Ok(spec) => spec,
        Err(_) => return,
    };
    let run_dir = super::run_dir(ctx, obj, run);
    let log_path = records::attempt_log(&run_dir, attempt);
    let index_path = records::step_index(&run_dir, attempt);
    let nonce = container.label(NONCE_LABEL).unwrap_or_default().to_string();
    let task = tokio::spawn(follow_output(
        Arc::clone(ctx),
        key.clone(),
        (log_path, index_path),
        container.id.clone(),
        nonce,
        spec.steps.len(),
        !spec.artifacts.is_empty(),
    ));
    followers.insert(container.id.clone(), task);
}

/// Streams a running container's output into the attempt log (cut at the server's
/// output cap, see [`LogWriter`]), and wakes the Job when the container stops, or (for
/// a runner that `holds` for its artifacts to be collected) when its steps are over.
/// Runs as a task per container; see [`follow`].
///
/// The journal keeps what the log keeps, and every line that carries a runner marker
/// (the harvest needs those for the steps' exit codes): past the cap it grows by the
/// markers only.
async fn follow_output(
    ctx: Arc<Context>,
    key: ObjectKey,
    (log_path, index_path): (std::path::PathBuf, std::path::PathBuf),
    container_id: String,
    nonce: String,
    step_count: usize,
    holds: bool,
) {
    let result: Result<(), std::io::Error> = async {
        let mut log = LogWriter::create(
            &log_path,
            &index_path,
            step_count,
            ctx.limits.max_output_bytes,
        )
        .await?;
        let mut journal = journal::Writer::open(&journal::path(&log_path)).await?;
        let mut parser = RunnerParser::new(&nonce, step_count);
        let mut lines = ctx.jobs.logs(&container_id, true);
        let mut woken = false;
        let mut next_step_wake: Option<std::time::Instant> = None;
        let mut delayed_step_wake: Option<std::time::Instant> = None;
        loop {
            // Written lines are flushed when the output pauses, not line by line: a
            // follower that falls behind loses what Docker rotates away meanwhile.
            let next = match tokio::time::timeout(FLUSH_AFTER, lines.next()).await {
                Ok(next) => next,
                Err(_) => {
                    log.flush().await?;
                    journal.flush().await?;
                    lines.next().await
                }
            };
            let Some(Ok(line)) = next else { break };
            let carried = parser.push(&line);
            let mut kept = false;
            log.step_started(parser.running_step()).await?;
            // A step started: wake the Job, so its summary names the step; at most once
            // a second, so a job of many short steps does not reconcile at each one. A
            // step that starts sooner gets one wake at the end of that second.
            if parser.running_step().is_some()
                && ctx
                    .followers
                    .set_running_step(&container_id, parser.running_step())
            {
                let now = std::time::Instant::now();
                match next_step_wake {
                    Some(at) if now < at => {
                        if delayed_step_wake != Some(at) {
                            ctx.queue.add_after(key.clone(), at - now);
                            delayed_step_wake = Some(at);
                        }
                    }
                    _ => {
                        ctx.queue.add(key.clone());
                        next_step_wake = Some(now + STEP_WAKE_EVERY);
                    }
                }
            }
            if let Some((step, text)) = carried {
                kept = log.push(step, &text).await?;
            }
            if kept || (!nonce.is_empty() && line.text.contains(&nonce)) {
                journal.push(&line).await?;
            }
            if holds && !woken && parser.finished_code().is_some() {
                // The runner now waits for its artifacts to be copied out.
                woken = true;
                ctx.queue.add(key.clone());
            }
        }
        log.flush().await?;
        journal.flush().await
    }
    .await;
    match result {
        Ok(()) => ctx.followers.succeeded(&container_id),
        Err(e) => {
            let wait = ctx.followers.failed(&container_id);
            warn!(container = %container_id, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot write the live log");
            tokio::time::sleep(wait).await;
        }
    }
    ctx.followers.set_running_step(&container_id, None);
    // The stream ends when the container stops: look at the Job now.
    ctx.queue.add(key);
}

/// Removes the attempts of this store whose Job no longer exists. Returns how many.
pub async fn remove_orphans(ctx: &Context) -> Result<usize, ControllerError> {
    let (jobs, _) = ctx.store.list(Kind::Job, None).await?;
    let live: HashSet<&str> = jobs.iter().map(|j| j.metadata.uid.as_str()).collect();
    // Only this store's containers: other orcaops may share the Docker daemon.
    let containers = ctx
        .jobs
        .list(&[
            (keys::LABEL_KIND, Kind::Job.as_str()),
            (keys::LABEL_INSTANCE, ctx.store.instance_id()),
        ])
        .await?;
    let mut removed = 0;
    for c in containers {
        if c.label(keys::LABEL_UID)
            .is_some_and(|uid| !live.contains(uid) && !ctx.followers.is_recording(uid))
        {
            info!(container = %c.name, "removing a container whose Job is gone");
            ctx.followers.stop(&c.id);
            ctx.jobs.remove(&c).await?;
            removed += 1;
        }
    }
    // Services whose attempt never got its steps' container (a crash while they started).
    let live: HashSet<String> = live.into_iter().map(String::from).collect();
    removed += ctx
        .jobs
        .remove_orphan_services(ctx.store.instance_id(), &live)
        .await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_that_cannot_write_waits_longer_each_time_up_to_a_minute() {
        let followers = Followers::default();
        let waits: Vec<u64> = (0..9).map(|_| followers.failed("c1").as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // Another container has its own count, and a success forgets the failures.
        assert_eq!(followers.failed("c2").as_secs(), 1);
        followers.succeeded("c1");
        assert_eq!(followers.failed("c1").as_secs(), 1);
    }
}
