//! What protects the Docker daemon from orcaops, as the kubelet protects it from itself.
//!
//! A burst of 500 sandboxes once wedged a Docker 20.10 daemon for the whole machine:
//! every create, start and remove was sent at once, hundreds of sockets stayed open, and
//! when the daemon stopped answering nothing said so. So every Docker call goes through
//! the [`Gate`]:
//!
//! - the calls that make the daemon work (create, start, stop, remove, exec, copies)
//!   wait for one of `max_calls` permits of a FIFO-fair semaphore: a burst queues here,
//!   in order, instead of in the daemon;
//! - reads (inspect, list) have a lane of their own, `READS_PER_CALL` × `max_calls`
//!   permits wide, so that they never wait behind slow removals but cannot flood the
//!   daemon either: deleting 500 sandboxes at once sent about 400 `list_containers` and
//!   300 `inspect_container` at the same moment, and the daemon stopped answering
//!   `docker info` for seconds;
//! - every call has a deadline (`call_timeout`); streams that last as long as what they
//!   follow (log follow, wait, an exec's output) are bounded only until they are set up;
//! - the outcome of each call is remembered: a timeout or a broken connection makes the
//!   runtime *unavailable since T, with this error* until a call is answered again, and
//!   `ping` (so `/readyz`) reports it;
//! - live containers are counted against `max_containers`: a create above the limit is
//!   refused with [`RuntimeError::ContainerLimit`], and when room frees up it goes to the
//!   owners in the order they were refused (a waiting line), so later objects do not
//!   jump ahead.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};

use crate::metrics::CallLatency;
use crate::runtime::RuntimeError;

mod in_flight;
use in_flight::InFlight;

/// How the Docker runtime spares the daemon; `orcaops serve` sets it from its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DockerLimits {
    /// Docker calls that make the daemon work, at once (the rest wait in line).
    pub max_calls: usize,
    /// How long one Docker call may take before it counts as unanswered.
    pub call_timeout: Duration,
    /// Containers (Job attempts, sandbox services, warm-pool slots) alive at once.
    pub max_containers: usize,
}

/// The defaults fit a small (2-core) machine; see docs/local-mode.md.
pub const DEFAULT_MAX_CALLS: usize = 8;
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONTAINERS: usize = 64;

/// An owner refused for want of room that has not asked again for this long has gone
/// (deleted, or started elsewhere): it leaves the waiting line.
const LINE_FORGET_AFTER: Duration = Duration::from_secs(180);

impl Default for DockerLimits {
    fn default() -> Self {
        DockerLimits {
            max_calls: DEFAULT_MAX_CALLS,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_containers: DEFAULT_MAX_CONTAINERS,
        }
    }
}

impl DockerLimits {
    /// Checks the values; the error names the flag to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_calls == 0 {
            return Err("--max-docker-calls must be at least 1".into());
        }
        if self.max_containers == 0 {
            return Err("--max-containers must be at least 1".into());
        }
        if self.call_timeout.is_zero() {
            return Err("--docker-timeout must be at least 1 second".into());
        }
        Ok(())
    }
}

/// Which permits a call waits for: the calls that make the daemon work share
/// `max_calls`; reads (inspect, list) have their own, wider lane. A ping ([`Gate::probe`])
/// waits for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    Gated,
    Read,
}

/// How many reads may be under way for each permit of the gated lane.
pub const READS_PER_CALL: usize = 2;

/// What the runtime last learned of the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Answering,
    /// Calls time out or cannot connect, since `since`; `error` is the last one.
    Unavailable {
        since: DateTime<Utc>,
        error: String,
    },
}

#[derive(Default)]
struct Containers {
    /// Ids of the live containers this runtime created, started or found.
    live: HashSet<String>,
    /// Creates under way (a slot is held for each).
    reserved: usize,
    /// Owners refused for want of room, in the order they were first refused.
    line: Vec<(String, Instant)>,
}

impl Containers {
    fn in_use(&self) -> usize {
        self.live.len() + self.reserved
    }
}

/// See the module documentation.
pub(crate) struct Gate {
    limits: DockerLimits,
    calls: Semaphore,
    /// The permits of the read lane.
    reads: Semaphore,
    /// Gated calls waiting for a permit.
    waiting: AtomicUsize,
    health: Mutex<Health>,
    /// The last time the daemon went away and came back: `(since, until)`.
    last_outage: Mutex<Option<(DateTime<Utc>, DateTime<Utc>)>>,
    containers: Mutex<Containers>,
    /// Bumped whenever a container slot frees up.
    room: watch::Sender<u64>,
    /// How long each call took, by operation and outcome (exported as metrics).
    latency: CallLatency,
    /// The calls under way, by operation.
    in_flight: InFlight,
}

/// A container slot held while a create is under way; dropped unused, it frees the slot.
pub(crate) struct Slot<'a> {
    gate: &'a Gate,
    held: bool,
}

impl Slot<'_> {
    /// The container exists (created or adopted): it holds the slot from now on.
    pub(crate) fn fill(mut self, id: &str) {
        let mut containers = self.gate.containers.lock().expect("gate lock");
        containers.reserved -= 1;
        containers.live.insert(id.to_string());
        self.held = false;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.held {
            self.gate.containers.lock().expect("gate lock").reserved -= 1;
            self.gate.room.send_modify(|n| *n += 1);
        }
    }
}

impl Gate {
    pub(crate) fn new(limits: DockerLimits) -> Gate {
        Gate {
            limits,
            calls: Semaphore::new(limits.max_calls.max(1)),
            reads: Semaphore::new(limits.max_calls.max(1) * READS_PER_CALL),
            waiting: AtomicUsize::new(0),
            health: Mutex::new(Health::Answering),
            last_outage: Mutex::new(None),
            containers: Mutex::new(Containers::default()),
            room: watch::channel(0).0,
            latency: CallLatency::default(),
            in_flight: InFlight::default(),
        }
    }

    /// The latency of the calls through this gate, for `/metrics`.
    pub(crate) fn latency(&self) -> CallLatency {
        self.latency.clone()
    }

    pub(crate) fn limits(&self) -> DockerLimits {
        self.limits
    }

    /// Runs one Docker call: in line for a permit of its lane, then with the call
    /// deadline. The outer error is the daemon not answering (a timeout, a broken
    /// connection), which also marks the runtime unavailable; the inner result is
    /// Docker's answer, for the caller to read.
    pub(crate) async fn call<T>(
        &self,
        name: &'static str,
        lane: Lane,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<Result<T, BollardError>, RuntimeError> {
        self.call_for(name, lane, self.limits.call_timeout, call)
            .await
    }

    /// A gated call that takes `extra` on top of the call timeout by design (a stop
    /// waits out its grace period).
    pub(crate) async fn call_within<T>(
        &self,
        name: &'static str,
        extra: Duration,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<Result<T, BollardError>, RuntimeError> {
        self.call_for(name, Lane::Gated, self.limits.call_timeout + extra, call)
            .await
    }

    async fn call_for<T>(
        &self,
        name: &'static str,
        lane: Lane,
        timeout: Duration,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<Result<T, BollardError>, RuntimeError> {
        let started = Instant::now();
        let mut ticket = self.in_flight.enter(name);
        let _permit = match lane {
            Lane::Gated => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let permit = self.calls.acquire().await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Some(permit.expect("the gate is never closed"))
            }
            Lane::Read => Some(
                self.reads
                    .acquire()
                    .await
                    .expect("the gate is never closed"),
            ),
        };
        ticket.run();
        let answer = tokio::time::timeout(timeout, call).await;
        let outcome = match &answer {
            Err(_) => "timeout",
            Ok(Err(e)) if is_transport(e) => "unreachable",
            Ok(_) => "answered",
        };
        self.latency.observe(name, outcome, started.elapsed());
        match answer {
            Err(_) => {
                let error = RuntimeError::Timeout {
                    call: name,
                    after: timeout,
                };
                self.unavailable(&error.to_string());
                Err(error)
            }
            Ok(Err(e)) if is_transport(&e) => {
                let error = RuntimeError::Unreachable {
                    message: format!("{name}: {e}"),
                };
                self.unavailable(&error.to_string());
                Err(error)
            }
            Ok(answer) => {
                self.answered();
                Ok(answer)
            }
        }
    }

    /// Like [`Gate::call`] for a call whose success proves nothing about the rest (a
    /// ping answers while creates hang): a failure is remembered, a success is not.
    pub(crate) async fn probe<T>(
        &self,
        name: &'static str,
        call: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, RuntimeError> {
        let timeout = self.limits.call_timeout;
        let started = Instant::now();
        let mut ticket = self.in_flight.enter(name);
        ticket.run();
        let answer = tokio::time::timeout(timeout, call).await;
        drop(ticket);
        let outcome = match &answer {
            Ok(Ok(_)) => "answered",
            Ok(Err(_)) => "unreachable",
            Err(_) => "timeout",
        };
        self.latency.observe(name, outcome, started.elapsed());
        let error = match answer {
            Ok(Ok(value)) => return Ok(value),
            Err(_) => RuntimeError::Timeout {
                call: name,
                after: timeout,
            },
            Ok(Err(e)) => RuntimeError::Unreachable {
                message: format!("{name}: {e}"),
            },
        };
        self.unavailable(&error.to_string());
        Err(error)
    }

    pub(crate) fn health(&self) -> Health {
        self.health.lock().expect("gate lock").clone()
    }

    fn unavailable(&self, error: &str) {
        let mut health = self.health.lock().expect("gate lock");
        match &mut *health {
            Health::Unavailable { error: last, .. } => *last = error.to_string(),
            Health::Answering => {
                tracing::warn!(%error, "the Docker daemon stopped answering");
                *health = Health::Unavailable {
                    since: Utc::now(),
                    error: error.to_string(),
                };
            }
        }
    }

    fn answered(&self) {
        let mut health = self.health.lock().expect("gate lock");
        if let Health::Unavailable { since, .. } = &*health {
            tracing::info!(%since, "the Docker daemon answers again");
            *self.last_outage.lock().expect("gate lock") = Some((*since, Utc::now()));
            *health = Health::Answering;
        }
    }

    /// When the daemon went away, if a container that ended at `ended` most likely ended
    /// with it: a daemon that is stopped stops its containers after it stops answering,
    /// and one killed and started again stops them before it answers again.
    pub(crate) fn went_away_around(&self, ended: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let slack = chrono::TimeDelta::seconds(5);
        if let Health::Unavailable { since, .. } = &*self.health.lock().expect("gate lock")
            && ended >= *since - slack
        {
            return Some(*since);
        }
        let outage = *self.last_outage.lock().expect("gate lock");
        outage
            .filter(|(since, until)| ended >= *since - slack && ended <= *until + slack)
            .map(|(since, _)| since)
    }

    /// Docker calls running and waiting for a permit: `(in flight, waiting)`.
    pub(crate) fn load(&self) -> (usize, usize) {
        let free = self.calls.available_permits();
        (
            self.limits.max_calls.max(1) - free,
            self.waiting.load(Ordering::Relaxed),
        )
    }

    /// Holds a container slot for `owner` (the uid of the object the container is for),
    /// or says how full the server is. Owners refused earlier go first.
    pub(crate) fn reserve(&self, owner: &str) -> Result<Slot<'_>, RuntimeError> {
        let mut containers = self.containers.lock().expect("gate lock");
        let now = Instant::now();
        containers
            .line
            .retain(|(_, seen)| now.duration_since(*seen) < LINE_FORGET_AFTER);
        let limit = self.limits.max_containers;
        let free = limit.saturating_sub(containers.in_use());
        let place = containers.line.iter().position(|(o, _)| o == owner);
        let ahead = place.unwrap_or(containers.line.len());
        if ahead < free {
            if let Some(place) = place {
                containers.line.remove(place);
            }
            containers.reserved += 1;
            return Ok(Slot {
                gate: self,
                held: true,
            });
        }
        match place {
            Some(place) => containers.line[place].1 = now,
            None => containers.line.push((owner.to_string(), now)),
        }
        Err(RuntimeError::ContainerLimit {
            in_use: containers.in_use(),
            limit,
            owner: owner.to_string(),
            ahead,
        })
    }

    /// A running container found (unpaused, adopted): it holds a slot, even above the
    /// limit, since it runs already.
    pub(crate) fn adopt(&self, id: &str) {
        self.containers
            .lock()
            .expect("gate lock")
            .live
            .insert(id.to_string());
    }

    /// A container stopped or was removed: its slot is free.
    pub(crate) fn ended(&self, id: &str) {
        let freed = self.containers.lock().expect("gate lock").live.remove(id);
        if freed {
            self.room.send_modify(|n| *n += 1);
        }
    }

    /// Replaces what is counted with what Docker lists as alive.
    pub(crate) fn recount(&self, alive: HashSet<String>) {
        let freed = {
            let mut containers = self.containers.lock().expect("gate lock");
            let before = containers.live.len();
            containers.live = alive;
            containers.live.len() < before
        };
        if freed {
            self.room.send_modify(|n| *n += 1);
        }
    }

    /// `(in use, limit)`.
    pub(crate) fn containers(&self) -> (usize, usize) {
        let containers = self.containers.lock().expect("gate lock");
        (containers.in_use(), self.limits.max_containers)
    }

    /// The owners that may take the slots free now, first in line first.
    pub(crate) fn next_in_line(&self) -> Vec<String> {
        let containers = self.containers.lock().expect("gate lock");
        let free = self
            .limits
            .max_containers
            .saturating_sub(containers.in_use());
        containers
            .line
            .iter()
            .take(free)
            .map(|(owner, _)| owner.clone())
            .collect()
    }

    /// Changes whenever a container slot frees up.
    pub(crate) fn room(&self) -> watch::Receiver<u64> {
        self.room.subscribe()
    }
}

/// Whether the error says the daemon did not answer (rather than answering "no").
fn is_transport(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::RequestTimeoutError
            | BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
            | BollardError::HttpClientError { .. }
            | BollardError::SocketNotFoundError(_)
    )
}

#[cfg(test)]
mod tests;
