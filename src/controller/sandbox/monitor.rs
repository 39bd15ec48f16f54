//! Watching running service containers: one task per sandbox (or warm-pool slot) that
//! waits on each container and runs the health checks, and wakes the owner's reconcile
//! when a container stops or a service's readiness flips.
//!
//! Why a task and not probes inside the reconcile: a healthy sandbox then costs no
//! Docker list and no store read at all, a dead container is noticed the instant it
//! dies (Docker's wait returns), and probes keep their own rhythm (every 200 ms until a
//! service first passes, then every `intervalSeconds`) whatever the queue is doing.
//! The reconcile reads the verdicts ([`Monitors::verdict`]) as observations; the
//! decision stays pure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::controller::WorkQueue;
use crate::resources::ObjectKey;
use crate::runtime::DockerRuntime;
use crate::runtime::sandbox::names::ProbeSpec;

/// How often a service is probed until it first passes.
pub const STARTING_PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// One running container to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub service: String,
    pub container_id: String,
    pub probe: Option<ProbeSpec>,
}

/// What the monitor knows of one service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Passing its health check (or running, without one).
    pub ready: bool,
    /// Its container has stopped since it was handed to the monitor.
    pub stopped: bool,
    /// Probed at least once (or has no probe).
    pub known: bool,
}

struct Entry {
    targets: Vec<Target>,
    verdicts: Arc<Mutex<HashMap<String, Verdict>>>,
    cancel: CancellationToken,
}

/// Every monitor of this process, by owner id (a sandbox uid, or a slot's id).
#[derive(Default)]
pub struct Monitors {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Monitors {
    /// Makes the monitor of `id` watch exactly `targets`, waking `key` on news. Unchanged
    /// targets keep their task and verdicts; `seed` gives the readiness to assume for a
    /// target seen for the first time (what the stored status says, after a restart).
    pub fn ensure(
        &self,
        id: &str,
        key: &ObjectKey,
        targets: Vec<Target>,
        seed: impl Fn(&Target) -> bool,
        runtime: &DockerRuntime,
        queue: &Arc<WorkQueue<ObjectKey>>,
    ) {
        let mut entries = self.entries.lock().expect("monitors lock");
        // A container seen stopped and now handed over again was restarted: watch anew.
        if let Some(entry) = entries.get(id)
            && entry.targets == targets
            && !entry.cancel.is_cancelled()
            && !entry
                .verdicts
                .lock()
                .expect("verdicts lock")
                .values()
                .any(|v| v.stopped)
        {
            return;
        }
        let previous = entries.remove(id);
        let mut verdicts = HashMap::new();
        for target in &targets {
            let kept = previous
                .as_ref()
                .filter(|p| p.targets.contains(target))
                .and_then(|p| {
                    p.verdicts
                        .lock()
                        .expect("verdicts lock")
                        .get(&target.service)
                        .copied()
                })
                .filter(|v| !v.stopped);
            let verdict = kept.unwrap_or_else(|| match target.probe {
                None => Verdict {
                    ready: true,
                    stopped: false,
                    known: true,
                },
                Some(_) => Verdict {
                    ready: seed(target),
                    stopped: false,
                    known: false,
                },
            });
            verdicts.insert(target.service.clone(), verdict);
        }
        if let Some(p) = previous {
            p.cancel.cancel();
        }
        let verdicts = Arc::new(Mutex::new(verdicts));
        let cancel = CancellationToken::new();
        if !targets.is_empty() {
            tokio::spawn(watch(
                targets.clone(),
                Arc::clone(&verdicts),
                cancel.clone(),
                runtime.clone(),
                Arc::clone(queue),
                key.clone(),
            ));
        }
        entries.insert(
            id.to_string(),
            Entry {
                targets,
                verdicts,
                cancel,
            },
        );
    }

    /// Whether one service of `id` passes its health check, if the monitor watches
    /// that very container, has probed it, and has not seen it stop.
    pub fn verdict_for(&self, id: &str, service: &str, container_id: &str) -> Option<bool> {
        let entries = self.entries.lock().expect("monitors lock");
        let entry = entries.get(id)?;
        if !entry
            .targets
            .iter()
            .any(|t| t.service == service && t.container_id == container_id)
        {
            return None;
        }
        let verdicts = entry.verdicts.lock().expect("verdicts lock");
        verdicts
            .get(service)
            .filter(|v| v.known && !v.stopped)
            .map(|v| v.ready)
    }

    /// A monitor that already knows every service is ready, without a task (tests).
    #[cfg(test)]
    pub fn insert_ready(&self, id: &str, services: &[&str]) {
        let verdicts = services
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    Verdict {
                        ready: true,
                        stopped: false,
                        known: true,
                    },
                )
            })
            .collect();
        let targets = services
            .iter()
            .map(|s| Target {
                service: s.to_string(),
                container_id: format!("c-{s}"),
                probe: None,
            })
            .collect();
        self.entries.lock().expect("monitors lock").insert(
            id.to_string(),
            Entry {
                targets,
                verdicts: Arc::new(Mutex::new(verdicts)),
                cancel: CancellationToken::new(),
            },
        );
    }

    /// Whether `id` is watched, and every service it watches is ready and running.
    pub fn all_ready(&self, id: &str) -> bool {
        let entries = self.entries.lock().expect("monitors lock");
        entries.get(id).is_some_and(|e| {
            !e.targets.is_empty()
                && e.verdicts
                    .lock()
                    .expect("verdicts lock")
                    .values()
                    .all(|v| v.ready && !v.stopped)
        })
    }

    /// Whether a container of `id` stopped while watched.
    pub fn any_stopped(&self, id: &str) -> bool {
        let entries = self.entries.lock().expect("monitors lock");
        entries.get(id).is_some_and(|e| {
            e.verdicts
                .lock()
                .expect("verdicts lock")
                .values()
                .any(|v| v.stopped)
        })
    }

    /// Stops watching `id` (stopped, expired, deleted, claimed).
    pub fn stop(&self, id: &str) {
        if let Some(entry) = self.entries.lock().expect("monitors lock").remove(id) {
            entry.cancel.cancel();
        }
    }

    pub fn stop_all(&self) {
        for (_, entry) in self.entries.lock().expect("monitors lock").drain() {
            entry.cancel.cancel();
        }
    }
}

struct ProbeClock {
    next: Instant,
    failures: u32,
    checks: u32,
}

/// How many quick checks a service gets before it is checked at its own interval
/// (about 30 s of starting).
const QUICK_CHECKS: u32 = 150;

async fn watch(
    targets: Vec<Target>,
    verdicts: Arc<Mutex<HashMap<String, Verdict>>>,
    cancel: CancellationToken,
    runtime: DockerRuntime,
    queue: Arc<WorkQueue<ObjectKey>>,
    key: ObjectKey,
) {
    let mut waits: FuturesUnordered<_> = targets
        .iter()
        .map(|t| {
            let runtime = runtime.clone();
            let id = t.container_id.clone();
            let service = t.service.clone();
            async move {
                // An error (the container is gone) means the same as an exit.
                let _ = runtime.wait(&id).await;
                service
            }
        })
        .collect();
    let now = Instant::now();
    let mut clocks: HashMap<String, ProbeClock> = targets
        .iter()
        .filter(|t| t.probe.is_some())
        .map(|t| {
            (
                t.service.clone(),
                ProbeClock {
                    next: now,
                    failures: 0,
                    checks: 0,
                },
            )
        })
        .collect();
    loop {
        let next_probe = clocks.values().map(|c| c.next).min();
        tokio::select! {
            _ = cancel.cancelled() => return,
            Some(service) = waits.next(), if !waits.is_empty() => {
                if cancel.is_cancelled() {
                    return;
                }
                debug!(%key, %service, "a sandbox container stopped");
                if let Some(v) = verdicts.lock().expect("verdicts lock").get_mut(&service) {
                    v.stopped = true;
                    v.ready = false;
                }
                clocks.remove(&service);
                queue.add(key.clone());
            }
            _ = sleep_until(next_probe) => {
                let now = Instant::now();
                let due: Vec<&Target> = targets
                    .iter()
                    .filter(|t| clocks.get(&t.service).is_some_and(|c| c.next <= now))
                    .collect();
                let results = futures::future::join_all(due.iter().map(|t| {
                    let probe = t.probe.as_ref().expect("probed targets have a probe");
                    let runtime = runtime.clone();
                    async move {
                        // A runtime error is a failed check too: the service is not answering.
                        runtime
                            .probe(&t.container_id, &probe.probe, probe.timeout)
                            .await
                            .unwrap_or(false)
                    }
                }))
                .await;
                if cancel.is_cancelled() {
                    return;
                }
                let mut changed = false;
                for (target, passed) in due.into_iter().zip(results) {
                    let probe = target.probe.as_ref().expect("probed targets have a probe");
                    let Some(clock) = clocks.get_mut(&target.service) else { continue };
                    let mut all = verdicts.lock().expect("verdicts lock");
                    let Some(v) = all.get_mut(&target.service) else { continue };
                    let was = v.ready;
                    if passed {
                        clock.failures = 0;
                        v.ready = true;
                    } else {
                        clock.failures += 1;
                        // A ready service is given `failureThreshold` chances; one not
                        // yet ready is simply not ready.
                        if !v.ready || clock.failures >= probe.failure_threshold {
                            v.ready = false;
                        }
                    }
                    v.known = true;
                    changed |= was != v.ready;
                    clock.checks += 1;
                    // Quick checks while starting, for a fast Ready; a service that has
                    // not passed for a while is checked at its own interval.
                    let quick = !v.ready && clock.checks < QUICK_CHECKS;
                    clock.next = Instant::now()
                        + if quick { STARTING_PROBE_INTERVAL } else { probe.interval };
                }
                if changed {
                    queue.add(key.clone());
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
