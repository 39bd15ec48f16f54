//! One run of a Job, from the request to its end: start it ([`start_run`]: apply, or
//! rerun when the spec is unchanged) and follow it on a watch of that one job
//! ([`RunWatch`]) until it finishes. The CLI's `run` and the MCP tool `run_job` both
//! wait this way, so neither sends a request while it waits.

use reqwest::Method;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{ApiClient, Change, ClientError, ResumingWatch, object_path};
use crate::resources::job::{JobPhase, JobStatus};
use crate::resources::{Object, ObjectKey};

/// A run asked for; [`RunWatch`] follows it.
#[derive(Debug, Clone)]
pub struct StartedRun {
    pub key: ObjectKey,
    /// The number the controller gives this run.
    pub run: u32,
    /// What the apply did: `created`, `configured`, or `unchanged` (then a rerun was asked for).
    pub outcome: String,
    /// The job as the apply stored it: its resourceVersion is where the watch starts.
    pub applied: Object,
}

/// The status of a job object; the default when it has none yet.
pub fn job_status(job: &Object) -> JobStatus {
    serde_json::from_value(job.status.clone()).unwrap_or_default()
}

/// Applies `job` and makes sure that a new run of it starts.
pub async fn start_run(client: &ApiClient, job: &Object) -> Result<StartedRun, ClientError> {
    let key = job.key();
    // The run about to start is numbered after every run the job has had, so it is
    // known before the controller has seen the apply.
    let before = client
        .find_object(&key)
        .await?
        .map(|o| job_status(&o).total_runs)
        .unwrap_or(0);
    let (applied, outcome) = client.apply(job).await?;
    if outcome == "unchanged" {
        // An unchanged spec starts nothing by itself.
        client
            .json(Method::POST, &format!("{}/rerun", object_path(&key)), None)
            .await?;
    }
    Ok(StartedRun {
        key,
        run: before + 1,
        outcome,
        applied,
    })
}

/// Where one run stands, as a state of its job shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// The controller has not started this run yet; the job may still show an earlier one.
    Pending,
    /// This run has started and not ended.
    Running(JobStatus),
    /// This run has ended: Succeeded, Failed, TimedOut or Cancelled.
    Finished(JobStatus),
    /// The job was deleted before the run ended.
    Deleted,
}

impl RunState {
    /// Run `run` as `job` shows it.
    pub fn of(run: u32, job: &Object) -> RunState {
        let status = job_status(job);
        match status.run {
            Some(r) if r == run && status.phase.is_finished() => RunState::Finished(status),
            Some(r) if r == run => RunState::Running(status),
            _ => RunState::Pending,
        }
    }

    /// The run's phase: Pending until it has started.
    pub fn phase(&self) -> JobPhase {
        match self {
            RunState::Running(status) | RunState::Finished(status) => status.phase,
            RunState::Pending | RunState::Deleted => JobPhase::Pending,
        }
    }

    /// Whether the run has begun, so that its output can be followed.
    pub fn has_started(&self) -> bool {
        matches!(self, RunState::Running(_) | RunState::Finished(_))
    }
}

/// The states of one run, from a watch of its job started at the version the apply wrote:
/// every status change arrives as it happens.
pub struct RunWatch {
    run: u32,
    first: Option<RunState>,
    changes: mpsc::Receiver<Result<Option<Object>, ClientError>>,
    watcher: JoinHandle<()>,
}

impl RunWatch {
    pub fn new(client: &ApiClient, started: &StartedRun) -> RunWatch {
        // The watch runs in a task of its own and hands over through a channel: that
        // makes `next` cancel-safe, so callers can `select!` on it beside their own timers.
        let (tx, changes) = mpsc::channel(16);
        let watcher = tokio::spawn(watch_job(
            client.clone(),
            started.key.clone(),
            started.applied.metadata.resource_version.clone(),
            tx,
        ));
        RunWatch {
            run: started.run,
            first: Some(RunState::of(started.run, &started.applied)),
            changes,
            watcher,
        }
    }

    /// The run's state: first as the apply left it, then after each change of the job,
    /// until it is Finished or Deleted. Cancel-safe.
    pub async fn next(&mut self) -> Result<RunState, ClientError> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        match self.changes.recv().await {
            Some(Ok(Some(job))) => Ok(RunState::of(self.run, &job)),
            Some(Ok(None)) => Ok(RunState::Deleted),
            Some(Err(e)) => Err(e),
            None => Err(ClientError::unreachable("the watch of the job stopped")),
        }
    }
}

impl Drop for RunWatch {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Sends every new state of the job (None once it is deleted) until the receiver goes.
async fn watch_job(
    client: ApiClient,
    key: ObjectKey,
    rv: String,
    tx: mpsc::Sender<Result<Option<Object>, ClientError>>,
) {
    let by_name = format!("metadata.name={}", key.name);
    let mut watch = ResumingWatch::new(
        client,
        key.kind,
        Some(&key.namespace),
        None,
        Some(&by_name),
        &rv,
    );
    loop {
        let update = match watch.next().await {
            Ok(Change::Event { type_, .. }) if type_ == "DELETED" => Ok(None),
            Ok(Change::Event { object, .. }) => Ok(Some(*object)),
            Ok(Change::Relisted(mut objects)) => Ok(objects.pop()),
            Err(e) => Err(e),
        };
        let stop = !matches!(update, Ok(Some(_)));
        if tx.send(update).await.is_err() || stop {
            return;
        }
    }
}

/// Every run record of a Job, as the server keeps them (they outlive the Job), newest
/// first.
pub async fn job_runs(
    client: &ApiClient,
    key: &ObjectKey,
) -> Result<Vec<crate::records::RunRecord>, ClientError> {
    let value: serde_json::Value = client
        .json(Method::GET, &format!("{}/runs", object_path(key)), None)
        .await?;
    serde_json::from_value(value.get("items").cloned().unwrap_or_default())
        .map_err(|e| ClientError::usage(format!("unexpected run list from the server: {e}")))
}

/// A search of Job runs across jobs, as `GET …/runs` takes it (`orcaops history --all`,
/// the MCP tool `search_runs`). Empty fields are left out.
#[derive(Clone, Debug, Default)]
pub struct RunSearch {
    /// The workspace; None: every one.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub phase: Option<String>,
    /// RFC 3339, or a duration back from now (`24h`).
    pub since: Option<String>,
    pub until: Option<String>,
    /// `key=value` terms, comma-separated.
    pub labels: Option<String>,
    pub image: Option<String>,
    pub anomalous: bool,
    pub grep: Option<String>,
    pub limit: Option<usize>,
}

/// The runs a [`RunSearch`] finds, newest first, and whether there may be more than the
/// limit let through.
pub async fn search_runs(
    client: &ApiClient,
    search: &RunSearch,
) -> Result<(Vec<crate::records::RunRecord>, bool), ClientError> {
    let mut query = Vec::new();
    let mut param = |name: &str, value: &Option<String>| {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            query.push(format!("{name}={}", super::urlencode(v)));
        }
    };
    param("name", &search.name);
    param("phase", &search.phase);
    param("since", &search.since);
    param("until", &search.until);
    param("labelSelector", &search.labels);
    param("image", &search.image);
    param("grep", &search.grep);
    param("limit", &search.limit.map(|n| n.to_string()));
    if search.anomalous {
        query.push("anomalous=true".into());
    }
    let mut path = match &search.namespace {
        Some(ns) => format!(
            "/apis/orcaops.dev/v1alpha1/namespaces/{}/runs",
            super::urlencode(ns)
        ),
        None => "/apis/orcaops.dev/v1alpha1/runs".to_string(),
    };
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let value: serde_json::Value = client.json(Method::GET, &path, None).await?;
    let more = value
        .pointer("/metadata/maybeMore")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let runs = serde_json::from_value(value.get("items").cloned().unwrap_or_default())
        .map_err(|e| ClientError::usage(format!("unexpected run list from the server: {e}")))?;
    Ok((runs, more))
}

/// The first of `run`'s error lines, then output tail lines, then its summary, that holds every word
/// of `grep` (case-insensitive): what a search found, to show beside the run.
pub fn matching_line(run: &crate::records::RunRecord, grep: &str) -> Option<String> {
    let words: Vec<String> = grep
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let holds = |line: &str| {
        let line = line.to_lowercase();
        !words.is_empty() && words.iter().all(|w| line.contains(w.as_str()))
    };
    let errors = run.steps.iter().flat_map(|s| {
        s.errors
            .iter()
            .map(move |e| (s.name.as_str(), format!("line {}: {}", e.line, e.text)))
    });
    let tails = run.steps.iter().flat_map(|s| {
        s.output_tail
            .lines()
            .map(move |l| (s.name.as_str(), l.to_string()))
    });
    errors
        .chain(tails)
        .chain(std::iter::once(("summary", run.summary.clone())))
        .find(|(_, line)| holds(line))
        .map(|(step, line)| format!("{step}: {}", line.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Kind;

    fn job(run: Option<u32>, phase: JobPhase) -> Object {
        let mut obj = Object::new(Kind::Job, "default", "j", serde_json::json!({}));
        obj.status = serde_json::to_value(JobStatus {
            phase,
            run,
            ..Default::default()
        })
        .unwrap();
        obj
    }

    #[test]
    fn an_earlier_run_that_finished_leaves_the_new_one_pending() {
        let state = RunState::of(2, &job(Some(1), JobPhase::Succeeded));
        assert_eq!(state, RunState::Pending);
        assert!(!state.has_started());
        assert_eq!(
            RunState::of(1, &job(None, JobPhase::Pending)),
            RunState::Pending
        );
    }

    #[test]
    fn the_run_asked_for_is_followed_to_its_end() {
        let running = RunState::of(2, &job(Some(2), JobPhase::Running));
        assert!(matches!(running, RunState::Running(_)));
        assert!(running.has_started());
        assert_eq!(running.phase(), JobPhase::Running);
        let ended = RunState::of(2, &job(Some(2), JobPhase::TimedOut));
        assert!(matches!(ended, RunState::Finished(ref s) if s.phase == JobPhase::TimedOut));
        assert!(ended.has_started());
    }

    /// The wait the CLI and MCP share, against a real API over a local store: this test
    /// writes the statuses the controller would.
    #[tokio::test]
    async fn a_run_is_followed_from_pending_to_its_end_and_a_deletion_ends_the_wait() {
        use std::sync::Arc;
        use std::time::Duration;

        use crate::resources::job::{JobSpec, Step};
        use crate::server::AppState;
        use crate::store::LocalStore;

        let data = tempfile::tempdir().unwrap();
        let store = LocalStore::open(data.path()).await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let state = AppState {
            objects: Arc::new(store.clone()),
            records: store.clone(),
            // Never called: the wait reads Jobs, not sandboxes.
            sandboxes: Arc::new(crate::runtime::PodRuntime::new(
                crate::kubeapi::mock::mock_client().0,
            )),
            activity: crate::controller::activity::SandboxActivity::new(),
            shutdown: shutdown.clone(),
            leading: None,
            metrics: Default::default(),
            policies: crate::policy::Policies::watching(Arc::new(store.clone())),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = ApiClient::new(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let served = crate::server::serve_api(listener, state).await.unwrap();

        let spec = JobSpec {
            image: "busybox:latest".into(),
            steps: vec![Step::script("main", "true")],
            ..Default::default()
        };
        let job = Object::new(
            Kind::Job,
            "default",
            "j",
            serde_json::to_value(spec).unwrap(),
        );
        let started = start_run(&client, &job).await.unwrap();
        assert_eq!((started.run, started.outcome.as_str()), (1, "created"));
        let mut watch = RunWatch::new(&client, &started);
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .expect("a state within 10 s")
                .unwrap()
        };
        assert_eq!(next().await, RunState::Pending);
        let status = |phase, total_runs| {
            serde_json::to_value(JobStatus {
                phase,
                run: Some(1),
                total_runs,
                ..Default::default()
            })
            .unwrap()
        };
        let key = started.key.clone();
        store
            .update_status(&key, "", status(JobPhase::Running, 1))
            .await
            .unwrap();
        assert!(matches!(next().await, RunState::Running(s) if s.phase == JobPhase::Running));
        store
            .update_status(&key, "", status(JobPhase::Succeeded, 1))
            .await
            .unwrap();
        assert!(matches!(next().await, RunState::Finished(s) if s.phase == JobPhase::Succeeded));

        // The same spec again starts nothing by itself: a rerun is asked for, as run 2.
        let again = start_run(&client, &job).await.unwrap();
        assert_eq!((again.run, again.outcome.as_str()), (2, "unchanged"));
        let mut watch = RunWatch::new(&client, &again);
        assert_eq!(watch.next().await.unwrap(), RunState::Pending);
        store.delete(&key).await.unwrap();
        let mut last = watch.next().await.unwrap();
        // The rerun's annotation may arrive first.
        while last == RunState::Pending {
            last = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .expect("a state within 10 s")
                .unwrap();
        }
        assert_eq!(last, RunState::Deleted);

        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), served).await;
    }

    #[test]
    fn a_job_without_status_has_the_default_one() {
        let mut obj = job(None, JobPhase::Pending);
        obj.status = serde_json::Value::Null;
        assert_eq!(job_status(&obj), JobStatus::default());
    }
}
