//! Which Docker calls are under way, by operation: waiting for a permit or running.
//! While many are, a debug line says so once a second, so that a slow daemon can be read
//! against what orcaops was asking of it at that moment.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// More calls than this under way is worth a line in the log.
const BUSY: usize = 16;
const REPORT_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Count {
    pub waiting: usize,
    pub running: usize,
}

#[derive(Default)]
pub(crate) struct InFlight {
    calls: Mutex<BTreeMap<&'static str, Count>>,
    reported: Mutex<Option<Instant>>,
}

/// One call under way; dropped (answered, failed or abandoned), it is no longer counted.
pub(crate) struct Ticket<'a> {
    in_flight: &'a InFlight,
    name: &'static str,
    running: bool,
}

impl InFlight {
    /// A call that waits for a permit (or runs at once: then call [`Ticket::run`]).
    pub(crate) fn enter(&self, name: &'static str) -> Ticket<'_> {
        self.change(name, |c| c.waiting += 1);
        Ticket {
            in_flight: self,
            name,
            running: false,
        }
    }

    /// Every operation under way, by name.
    pub(crate) fn snapshot(&self) -> BTreeMap<&'static str, Count> {
        self.calls.lock().expect("in-flight lock").clone()
    }

    fn change(&self, name: &'static str, f: impl FnOnce(&mut Count)) {
        let total = {
            let mut calls = self.calls.lock().expect("in-flight lock");
            let count = calls.entry(name).or_default();
            f(count);
            if *count == Count::default() {
                calls.remove(name);
            }
            calls.values().map(|c| c.waiting + c.running).sum::<usize>()
        };
        if total > BUSY {
            self.report();
        }
    }

    fn report(&self) {
        {
            let mut reported = self.reported.lock().expect("in-flight lock");
            if reported.is_some_and(|at| at.elapsed() < REPORT_EVERY) {
                return;
            }
            *reported = Some(Instant::now());
        }
        let (mut running, mut waiting) = (String::new(), String::new());
        for (name, count) in self.snapshot() {
            if count.running > 0 {
                write!(running, "{name}={} ", count.running).ok();
            }
            if count.waiting > 0 {
                write!(waiting, "{name}={} ", count.waiting).ok();
            }
        }
        tracing::debug!(
            running = running.trim_end(),
            waiting = waiting.trim_end(),
            "docker calls in flight"
        );
    }
}

impl Ticket<'_> {
    /// The call got its permit (or needed none) and is sent to the daemon.
    pub(crate) fn run(&mut self) {
        if !self.running {
            self.running = true;
            self.in_flight.change(self.name, |c| {
                c.waiting -= 1;
                c.running += 1;
            });
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let running = self.running;
        self.in_flight.change(self.name, |c| {
            if running {
                c.running -= 1;
            } else {
                c.waiting -= 1;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_while_under_way_and_forgotten_when_dropped() {
        let in_flight = InFlight::default();
        let mut a = in_flight.enter("remove_container");
        let b = in_flight.enter("remove_container");
        let c = in_flight.enter("list_containers");
        a.run();
        let counts = in_flight.snapshot();
        assert_eq!(
            counts["remove_container"],
            Count {
                waiting: 1,
                running: 1
            }
        );
        assert_eq!(
            counts["list_containers"],
            Count {
                waiting: 1,
                running: 0
            }
        );
        // Abandoned while waiting (the caller went away): no longer counted.
        drop(b);
        drop(c);
        assert_eq!(
            in_flight.snapshot()["remove_container"],
            Count {
                waiting: 0,
                running: 1
            }
        );
        drop(a);
        assert!(in_flight.snapshot().is_empty());
    }
}
