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

/// Whether a call waits for a permit: the calls that make the daemon work do; reads
/// that answer from memory (inspect, list, ping) only get the deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    Gated,
    Free,
}

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
            waiting: AtomicUsize::new(0),
            health: Mutex::new(Health::Answering),
            last_outage: Mutex::new(None),
            containers: Mutex::new(Containers::default()),
            room: watch::channel(0).0,
            latency: CallLatency::default(),
        }
    }

    /// The latency of the calls through this gate, for `/metrics`.
    pub(crate) fn latency(&self) -> CallLatency {
        self.latency.clone()
    }

    pub(crate) fn limits(&self) -> DockerLimits {
        self.limits
    }

    /// Runs one Docker call: in line for a permit when `lane` is gated, then with the
    /// call deadline. The outer error is the daemon not answering (a timeout, a broken
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
        let _permit = match lane {
            Lane::Gated => {
                self.waiting.fetch_add(1, Ordering::Relaxed);
                let permit = self.calls.acquire().await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Some(permit.expect("the gate is never closed"))
            }
            Lane::Free => None,
        };
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
        let answer = tokio::time::timeout(timeout, call).await;
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
mod tests {
    use std::sync::Arc;

    use super::*;

    fn gate(max_calls: usize, max_containers: usize) -> Arc<Gate> {
        Arc::new(Gate::new(DockerLimits {
            max_calls,
            call_timeout: Duration::from_secs(5),
            max_containers,
        }))
    }

    #[tokio::test]
    async fn gated_calls_never_exceed_the_limit_and_are_served_in_order() {
        let gate = gate(2, 64);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (gate, in_flight, most, order) = (
                Arc::clone(&gate),
                Arc::clone(&in_flight),
                Arc::clone(&most),
                Arc::clone(&order),
            );
            tasks.push(tokio::spawn(async move {
                gate.call("create_container", Lane::Gated, async {
                    order.lock().unwrap().push(i);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, BollardError>(i)
                })
                .await
            }));
            // Queue them in a known order.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for task in tasks {
            assert!(task.await.unwrap().unwrap().is_ok());
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "at most 2 in flight");
        assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_fails_naming_it_and_marks_the_daemon_unavailable() {
        let gate = gate(2, 64);
        let result = gate
            .call("start_container", Lane::Gated, async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, BollardError>(())
            })
            .await;
        let error = result.unwrap_err().to_string();
        assert!(error.contains("start_container"), "{error}");
        assert!(error.contains("5s"), "{error}");
        assert!(matches!(gate.health(), Health::Unavailable { .. }));
        // An answer, even a refusal, means it answers again.
        let refused = gate
            .call("inspect_container", Lane::Free, async {
                Err::<(), _>(BollardError::DockerResponseServerError {
                    status_code: 404,
                    message: "no such container".into(),
                })
            })
            .await;
        assert!(refused.unwrap().is_err());
        assert_eq!(gate.health(), Health::Answering);
    }

    #[test]
    fn a_container_that_ended_during_the_last_outage_ended_with_the_daemon() {
        let gate = gate(1, 64);
        let before = Utc::now() - chrono::TimeDelta::minutes(10);
        assert_eq!(gate.went_away_around(Utc::now()), None, "no outage yet");
        gate.unavailable("cannot connect");
        let Health::Unavailable { since, .. } = gate.health() else {
            panic!("unavailable")
        };
        // While it is away, and after it answers again, until the slack runs out.
        assert_eq!(gate.went_away_around(Utc::now()), Some(since));
        assert_eq!(gate.went_away_around(before), None);
        gate.answered();
        assert_eq!(gate.went_away_around(Utc::now()), Some(since));
        assert_eq!(gate.went_away_around(before), None);
        let later = Utc::now() + chrono::TimeDelta::minutes(10);
        assert_eq!(gate.went_away_around(later), None);
    }

    #[tokio::test]
    async fn a_probe_success_does_not_clear_an_unavailability() {
        let gate = gate(1, 64);
        gate.unavailable("create_container timed out");
        gate.probe("ping", async { Ok::<_, BollardError>(()) })
            .await
            .unwrap();
        assert!(matches!(gate.health(), Health::Unavailable { .. }));
    }

    #[test]
    fn containers_above_the_limit_wait_in_line_and_go_in_order() {
        let gate = gate(8, 2);
        gate.reserve("a").unwrap().fill("c1");
        gate.reserve("b").unwrap().fill("c2");
        let refused = gate.reserve("c").err().unwrap();
        assert_eq!(
            refused.to_string(),
            "2 of 2 containers in use on this server; it starts when one ends; raise --max-containers to allow more"
        );
        assert!(gate.reserve("d").is_err());
        gate.ended("c1");
        assert_eq!(gate.next_in_line(), ["c"]);
        // d came later: it waits although there is room.
        assert!(gate.reserve("d").is_err());
        gate.reserve("c").unwrap().fill("c3");
        assert_eq!(gate.containers(), (2, 2));
        gate.ended("c2");
        gate.reserve("d").unwrap().fill("c4");
        assert!(gate.next_in_line().is_empty());
    }

    #[test]
    fn a_slot_not_filled_is_given_back() {
        let gate = gate(8, 1);
        let mut room = gate.room();
        drop(gate.reserve("a").unwrap());
        assert_eq!(gate.containers(), (0, 1));
        assert!(room.has_changed().unwrap());
        room.mark_unchanged();
        gate.reserve("a").unwrap().fill("x");
        gate.recount(HashSet::new());
        assert_eq!(gate.containers(), (0, 1));
        assert!(room.has_changed().unwrap());
    }

    #[test]
    fn zero_limits_are_refused_naming_the_flag() {
        let limits = DockerLimits {
            max_containers: 0,
            ..DockerLimits::default()
        };
        assert!(limits.validate().unwrap_err().contains("--max-containers"));
        assert!(DockerLimits::default().validate().is_ok());
    }
}
