//! Policies, enforced on every door: the REST writes (and so the CLI and MCP), the
//! watched folder, `orcaops sync`, and once more by the controllers before a Job or a
//! Sandbox starts. One [`Policies`] holds the live set, read from the store and kept
//! current from its watch; [`Policies::review`] says what the policies covering an
//! object find in it, and [`Policies::record`] adds what was found to the policies'
//! reports (`status.violations`, bounded) and to events, written in the background.
//!
//! This layer reads the store and the resources; it knows no HTTP, no controller and no
//! runtime (see docs/architecture.md, "Layers").

pub mod admission;
pub mod eval;
pub mod report;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::resources::policy::{PolicyMode, PolicySpec};
use crate::resources::workspace::{WorkspaceDefaults, WorkspaceSpec};
use crate::resources::{Kind, Object, ObjectKey};
use crate::store::{ObjectStore, Result, WatchEvent};

pub use eval::{Compiled, Violation};

/// How often found violations are written into the policies' status and events.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Where a write came from, for the reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Door {
    /// The REST API (the CLI and MCP included).
    Api,
    /// A file of the watched folder (`serve --dir`).
    Folder(String),
    /// A file `orcaops sync` applies to a cluster.
    Sync(String),
    /// A controller about to start what an object declares.
    Controller,
    /// The Kubernetes API server's admission webhook, for this user (kubectl on a
    /// cluster).
    Admission(String),
}

impl Door {
    pub fn label(&self) -> String {
        match self {
            Door::Api => "api".into(),
            Door::Folder(file) => format!("folder:{file}"),
            Door::Sync(file) => format!("sync:{file}"),
            Door::Controller => "controller".into(),
            Door::Admission(user) if user.is_empty() => "admission".into(),
            Door::Admission(user) => format!("admission:{user}"),
        }
    }
}

/// What the policies covering one object found in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Review {
    pub violations: Vec<Violation>,
}

impl Review {
    fn with_mode(&self, mode: PolicyMode) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.mode == mode)
    }

    /// What an Enforce policy refuses.
    pub fn refusals(&self) -> impl Iterator<Item = &Violation> {
        self.with_mode(PolicyMode::Enforce)
    }

    /// What a Warn policy warns of.
    pub fn warnings(&self) -> impl Iterator<Item = &Violation> {
        self.with_mode(PolicyMode::Warn)
    }

    /// Whether an Enforce policy refuses the object.
    pub fn refused(&self) -> bool {
        self.refusals().next().is_some()
    }

    /// The refusal, one line per violation, after a first line naming the object.
    pub fn refusal_message(&self, obj: &Object) -> String {
        let mut lines = vec![format!(
            "{} {} is refused by policy:",
            obj.kind,
            display_name(obj)
        )];
        lines.extend(self.refusals().map(|v| format!("  {}", v.line())));
        lines.join("\n")
    }
}

fn display_name(obj: &Object) -> String {
    match obj.metadata.namespace.as_deref() {
        Some(ns) if obj.kind.namespaced() => format!("{ns}/{}", obj.metadata.name),
        _ => obj.metadata.name.clone(),
    }
}

/// The live policies, compiled, and what each workspace adds to them.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Compiled>,
    /// Per workspace: the policies it lists (`spec.policies`) and its defaults.
    workspaces: HashMap<String, (Vec<String>, Option<WorkspaceDefaults>)>,
}

impl PolicySet {
    /// The set of `policies` and `workspaces` (objects of those kinds); one that does not
    /// parse is left out (the store holds only validated objects).
    pub fn build(policies: &[Object], workspaces: &[Object]) -> PolicySet {
        let policies = policies
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| {
                serde_json::from_value::<PolicySpec>(p.spec.clone())
                    .ok()
                    .map(|spec| Compiled::new(&p.metadata.name, spec))
            })
            .collect();
        let workspaces = workspaces
            .iter()
            .filter_map(|w| {
                let spec = serde_json::from_value::<WorkspaceSpec>(w.spec.clone()).ok()?;
                Some((w.metadata.name.clone(), (spec.policies, spec.defaults)))
            })
            .collect();
        PolicySet {
            policies,
            workspaces,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policies that cover workspace `namespace`: those that select it, and those it
    /// lists.
    pub fn covering(&self, namespace: &str) -> impl Iterator<Item = &Compiled> {
        let listed = self.workspaces.get(namespace).map(|(l, _)| l.as_slice());
        self.policies
            .iter()
            .filter(move |p| p.selects(namespace) || listed.is_some_and(|l| l.contains(&p.name)))
    }

    /// What the covering policies find in `obj`, replacing `old`.
    pub fn review(&self, obj: &Object, old: Option<&Object>) -> Review {
        if self.policies.is_empty() || !eval::covers(obj.kind) {
            return Review::default();
        }
        let namespace = obj
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(crate::resources::DEFAULT_WORKSPACE);
        let defaults = self.workspaces.get(namespace).and_then(|(_, d)| d.as_ref());
        let covering: Vec<&Compiled> = self.covering(namespace).collect();
        let subject = eval::Subject::new(obj, old, defaults);
        let run = || {
            let vars = covering.iter().any(|p| p.has_cel()).then(|| subject.vars());
            covering
                .iter()
                .flat_map(|p| eval::check_subject(p, &subject, vars.as_ref()))
                .collect::<Vec<_>>()
        };
        let violations = if covering.iter().any(|p| p.needs_cel_stack()) {
            // One thread with a deep stack for every CEL rule of the write.
            crate::resources::expr::on_cel_stack(run).unwrap_or_else(|e| {
                covering
                    .iter()
                    .filter(|p| p.needs_cel_stack())
                    .map(|p| Violation {
                        policy: p.name.clone(),
                        mode: p.mode(),
                        rule: "rules".into(),
                        field: "object".into(),
                        message: format!("the policy's rules could not be evaluated: {e}"),
                        fix: "try again; if it persists, report it".into(),
                    })
                    .collect()
            })
        } else {
            run()
        };
        Review { violations }
    }
}

/// The live policy set of a store, and the reports of what it finds.
pub struct Policies {
    store: Arc<dyn ObjectStore>,
    /// False on a cluster, where the API server's admission (and the operator's
    /// controllers through it) is where policies are to be enforced: nothing is reviewed.
    enabled: bool,
    cache: tokio::sync::Mutex<Cache>,
    reports: Mutex<report::Pending>,
    flusher: OnceLock<()>,
}

struct Cache {
    /// The store's changes, drained before each review: a Policy or a Workspace whose
    /// spec changed makes the set stale. None: read once, never refreshed (`sync`).
    feed: Option<broadcast::Receiver<WatchEvent>>,
    stale: bool,
    /// Without a feed: how long a set read from the store is used.
    max_age: Option<Duration>,
    built: std::time::Instant,
    set: Arc<PolicySet>,
    /// The generation of each Policy and Workspace the set was built from: a status
    /// write (reports, usage) does not make it stale.
    generations: HashMap<ObjectKey, i64>,
}

impl Policies {
    /// The policies of `store`, kept current from its watch (a server's doors and
    /// controllers share one).
    pub fn watching(store: Arc<dyn ObjectStore>) -> Arc<Policies> {
        let feed = store.watch();
        Self::with_feed(store, Some(feed))
    }

    /// The policies of `store`, read again when the last read is older than `every`:
    /// for a store whose watch would cost requests of its own (`orcaops sync` against a
    /// cluster).
    pub fn polling(store: Arc<dyn ObjectStore>, every: Duration) -> Arc<Policies> {
        let mut policies = Self::with_feed(store, None);
        Arc::get_mut(&mut policies)
            .expect("just made")
            .cache
            .get_mut()
            .max_age = Some(every);
        policies
    }

    /// Reviews nothing: for a store whose own admission enforces policies (a cluster).
    pub fn disabled(store: Arc<dyn ObjectStore>) -> Arc<Policies> {
        let mut policies = Self::with_feed(store, None);
        Arc::get_mut(&mut policies).expect("just made").enabled = false;
        policies
    }

    fn with_feed(
        store: Arc<dyn ObjectStore>,
        feed: Option<broadcast::Receiver<WatchEvent>>,
    ) -> Arc<Policies> {
        Arc::new(Policies {
            enabled: true,
            store,
            cache: tokio::sync::Mutex::new(Cache {
                feed,
                stale: true,
                max_age: None,
                built: std::time::Instant::now(),
                set: Arc::new(PolicySet::default()),
                generations: HashMap::new(),
            }),
            reports: Mutex::new(report::Pending::default()),
            flusher: OnceLock::new(),
        })
    }

    /// The current set: rebuilt from the store when a Policy or Workspace spec changed
    /// since the last one. Changes are in the feed before their write returns, so a
    /// review after a policy write always sees that policy.
    pub async fn current(&self) -> Result<Arc<PolicySet>> {
        let mut cache = self.cache.lock().await;
        cache.drain();
        if cache.stale {
            let (policies, _) = self.store.list(Kind::Policy, None).await?;
            let (workspaces, _) = self.store.list(Kind::Workspace, None).await?;
            cache.generations = policies
                .iter()
                .chain(&workspaces)
                .map(|o| (o.key(), o.metadata.generation))
                .collect();
            cache.set = Arc::new(PolicySet::build(&policies, &workspaces));
            cache.stale = false;
            cache.built = std::time::Instant::now();
        }
        Ok(Arc::clone(&cache.set))
    }

    /// Whether reviews look at anything (false on a cluster): a door that needs to read
    /// the stored object only for the review skips the read.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// What the live policies find in `obj`, replacing `old` (None: a create). Records
    /// nothing: see [`Policies::record`].
    pub async fn review(&self, obj: &Object, old: Option<&Object>) -> Result<Review> {
        if !self.enabled || !eval::covers(obj.kind) {
            return Ok(Review::default());
        }
        Ok(self.current().await?.review(obj, old))
    }

    /// Adds what `review` found in `obj` (which came through `door`) to the reports:
    /// the policies' `status.violations` and a Warning event on the object, written
    /// within [`FLUSH_EVERY`]. `blocked`: a controller did not start it.
    pub fn record(self: &Arc<Self>, review: &Review, obj: &Object, door: &Door, blocked: bool) {
        if review.violations.is_empty() {
            return;
        }
        self.reports.lock().expect("policy reports lock").add(
            review,
            obj,
            door,
            blocked,
            chrono::Utc::now(),
        );
        self.start_flusher();
    }

    /// Writes what was recorded since the last flush now.
    pub async fn flush(&self) {
        let pending = std::mem::take(&mut *self.reports.lock().expect("policy reports lock"));
        pending.write(self.store.as_ref()).await;
    }

    fn start_flusher(self: &Arc<Self>) {
        if self.flusher.get().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.flusher.set(()).is_err() {
            return;
        }
        let policies: Weak<Policies> = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                let Some(policies) = policies.upgrade() else {
                    return;
                };
                policies.flush().await;
            }
        });
    }
}

impl Cache {
    /// Reads every change waiting in the feed; a Policy or Workspace whose generation
    /// moved (or that came or went), or a feed that lost changes, makes the set stale.
    fn drain(&mut self) {
        let Some(feed) = self.feed.as_mut() else {
            if self.max_age.is_some_and(|age| self.built.elapsed() >= age) {
                self.stale = true;
            }
            return;
        };
        loop {
            match feed.try_recv() {
                Ok(event) => {
                    let obj = &event.object;
                    if !matches!(obj.kind, Kind::Policy | Kind::Workspace) {
                        continue;
                    }
                    let deleted = event.type_ == crate::store::WatchEventType::Deleted;
                    let known = self.generations.get(&obj.key()).copied();
                    if deleted || known != Some(obj.metadata.generation) {
                        self.stale = true;
                    }
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return,
                Err(TryRecvError::Lagged(_)) => self.stale = true,
            }
        }
    }
}

#[cfg(test)]
mod tests;
