//! Quota admission, pure: what each object holds or asks for ([`Demand`]), which
//! objects hold room and which wait for it ([`Standing`]), and whether one more fits
//! ([`admit`]). Waiting objects go in creation order: an object is admitted only when
//! what runs, plus every older object still waiting, plus itself fits every quota it
//! asks for. An object that could never fit (it alone asks more than a quota allows)
//! waits with a message that says so, and does not hold up the ones behind it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::resources::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::resources::workspace::Quotas;

/// The window `runsPerHour` counts over.
pub const RUN_WINDOW: TimeDelta = TimeDelta::hours(1);

/// The quotas of a workspace, parsed (validation refused any that do not parse).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub concurrent_jobs: Option<u64>,
    pub sandboxes: Option<u64>,
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub runs_per_hour: Option<u64>,
}

impl Limits {
    pub fn of(quotas: &Quotas) -> Limits {
        Limits {
            concurrent_jobs: quotas.concurrent_jobs.map(u64::from),
            sandboxes: quotas.sandboxes.map(u64::from),
            cpu_millis: quotas.cpu.as_deref().and_then(|c| parse_cpu_millis(c).ok()),
            memory_bytes: quotas
                .memory
                .as_deref()
                .and_then(|m| parse_memory_bytes(m).ok()),
            runs_per_hour: quotas.runs_per_hour.map(u64::from),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    pub fn hard(&self, dim: Dim) -> Option<u64> {
        match dim {
            Dim::ConcurrentJobs => self.concurrent_jobs,
            Dim::Sandboxes => self.sandboxes,
            Dim::Cpu => self.cpu_millis,
            Dim::Memory => self.memory_bytes,
            Dim::RunsPerHour => self.runs_per_hour,
        }
    }
}

/// One quota, by its field in `spec.quotas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    ConcurrentJobs,
    Sandboxes,
    Cpu,
    Memory,
    RunsPerHour,
}

impl Dim {
    pub const ALL: [Dim; 5] = [
        Dim::ConcurrentJobs,
        Dim::Sandboxes,
        Dim::Cpu,
        Dim::Memory,
        Dim::RunsPerHour,
    ];

    pub fn field(self) -> &'static str {
        match self {
            Dim::ConcurrentJobs => "concurrentJobs",
            Dim::Sandboxes => "sandboxes",
            Dim::Cpu => "cpu",
            Dim::Memory => "memory",
            Dim::RunsPerHour => "runsPerHour",
        }
    }

    /// An amount of this quota as a person (and a ResourceQuota) writes it.
    pub fn format(self, amount: u64) -> String {
        match self {
            Dim::Cpu => format_cpu(amount),
            Dim::Memory => format_memory(amount),
            _ => amount.to_string(),
        }
    }
}

/// `1500` millicores -> `1500m`, `2000` -> `2`.
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes in the largest binary unit that divides them: `536870912` -> `512Mi`.
pub fn format_memory(bytes: u64) -> String {
    for (suffix, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

/// What an object holds while it runs, or asks for to start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    pub jobs: u64,
    pub sandboxes: u64,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// 1 when starting means a new run (counted by `runsPerHour`).
    pub runs: u64,
}

impl Demand {
    pub fn get(&self, dim: Dim) -> u64 {
        match dim {
            Dim::ConcurrentJobs => self.jobs,
            Dim::Sandboxes => self.sandboxes,
            Dim::Cpu => self.cpu_millis,
            Dim::Memory => self.memory_bytes,
            Dim::RunsPerHour => self.runs,
        }
    }

    pub fn plus(&self, other: &Demand) -> Demand {
        Demand {
            jobs: self.jobs + other.jobs,
            sandboxes: self.sandboxes + other.sandboxes,
            cpu_millis: self.cpu_millis + other.cpu_millis,
            memory_bytes: self.memory_bytes + other.memory_bytes,
            runs: self.runs + other.runs,
        }
    }

    /// Whether this demand alone fits `limits` (else it never starts).
    pub fn fits_alone(&self, limits: &Limits) -> bool {
        Dim::ALL
            .into_iter()
            .all(|dim| limits.hard(dim).is_none_or(|hard| self.get(dim) <= hard))
    }
}

/// Where an object stands with its workspace's quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It runs (or was admitted and is starting): it holds its demand.
    Holding,
    /// It wants to start and has not been admitted.
    Waiting,
    /// Neither (finished, stopped, suspended, backing off before a retry).
    Idle,
}

/// An object of the workspace, as admission sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub uid: String,
    /// Creation order: the oldest first, then by name.
    pub created: DateTime<Utc>,
    pub name: String,
    pub standing: Standing,
    /// What it holds, or would hold once started.
    pub demand: Demand,
}

impl Member {
    fn before(&self, created: DateTime<Utc>, name: &str) -> bool {
        (self.created, self.name.as_str()) < (created, name)
    }
}

/// The workspace's members and recent runs, as read for one admission or status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub members: Vec<Member>,
    /// When each run of the last hour started.
    pub run_starts: Vec<DateTime<Utc>>,
}

impl Snapshot {
    /// What the holders hold now (runs: those started within the hour), `except` one uid.
    pub fn held(&self, now: DateTime<Utc>, except: &str) -> Demand {
        let mut held = self
            .members
            .iter()
            .filter(|m| m.standing == Standing::Holding && m.uid != except)
            .fold(Demand::default(), |sum, m| sum.plus(&m.demand));
        held.runs = self.runs_within_hour(now) as u64;
        held
    }

    fn runs_within_hour(&self, now: DateTime<Utc>) -> usize {
        self.run_starts
            .iter()
            .filter(|t| **t > now - RUN_WINDOW)
            .count()
    }
}

/// The object asking to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applicant<'a> {
    pub uid: &'a str,
    pub name: &'a str,
    pub created: DateTime<Utc>,
    /// "job" or "sandbox", for the message.
    pub what: &'static str,
    pub demand: Demand,
}

/// Why an object waits, and when to look again (besides being woken).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub dim: Dim,
    pub message: String,
    pub retry_after: Option<Duration>,
}

/// Whether `applicant` may start now in workspace `workspace`.
pub fn admit(
    workspace: &str,
    limits: &Limits,
    snapshot: &Snapshot,
    applicant: &Applicant<'_>,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let me = &applicant.demand;
    let held = snapshot.held(now, applicant.uid);
    let ahead = snapshot
        .members
        .iter()
        .filter(|m| {
            m.standing == Standing::Waiting
                && m.uid != applicant.uid
                && m.before(applicant.created, applicant.name)
                && m.demand.fits_alone(limits)
        })
        .fold(Demand::default(), |sum, m| sum.plus(&m.demand));
    for dim in Dim::ALL {
        let (Some(hard), wanted) = (limits.hard(dim), me.get(dim)) else {
            continue;
        };
        if wanted == 0 {
            continue;
        }
        let field = dim.field();
        let what = applicant.what;
        if wanted > hard {
            return Err(Refusal {
                dim,
                message: format!(
                    "workspace {workspace}: this {what} asks for {field} {}, more than the quota of {}; \
                     it never starts unless spec.quotas.{field} of Workspace {workspace} is raised \
                     (or the {what} asks for less)",
                    dim.format(wanted),
                    dim.format(hard)
                ),
                retry_after: None,
            });
        }
        let (used, waiting) = (held.get(dim), ahead.get(dim));
        if used + waiting + wanted <= hard {
            continue;
        }
        let queue = if waiting > 0 {
            format!(", {} more waiting ahead", dim.format(waiting))
        } else {
            String::new()
        };
        let (usage, next, retry_after) = match dim {
            Dim::ConcurrentJobs => (
                format!("{used}/{hard} in use{queue}"),
                "starts when one ends".to_string(),
                None,
            ),
            Dim::Sandboxes => (
                format!("{used}/{hard} in use{queue}"),
                "starts when one is stopped or deleted".to_string(),
                None,
            ),
            Dim::Cpu | Dim::Memory => (
                format!(
                    "{}/{} in use{queue}, this {what} asks for {}",
                    dim.format(used),
                    dim.format(hard),
                    dim.format(wanted)
                ),
                "starts when room frees up".to_string(),
                None,
            ),
            Dim::RunsPerHour => {
                let oldest = snapshot
                    .run_starts
                    .iter()
                    .filter(|t| **t > now - RUN_WINDOW)
                    .min()
                    .copied()
                    .unwrap_or(now);
                let wait = (oldest + RUN_WINDOW - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_secs(1));
                (
                    format!("{used}/{hard} started in the last hour{queue}"),
                    format!("starts in {}s at the latest", wait.as_secs()),
                    Some(wait),
                )
            }
        };
        return Err(Refusal {
            dim,
            message: format!("workspace {workspace}: {field} {usage}; {next}"),
            retry_after,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
