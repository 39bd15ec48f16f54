//! The pod runtime: Job attempts as pods, through the Kubernetes API.
//!
//! An attempt's id is `<namespace>/<pod name>`. Starting creates the NetworkPolicy
//! first (when the Job has `network: none`), then the pod; either one existing already
//! is adopted. The steps' output comes from `pods/log?timestamps=true`; artifacts are
//! copied with an exec of `tar` into the holding pod, which an exec then releases.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams, PostParams};
use kube::{Client, Resource};

use super::attach::Ending;
use super::build::{JobAttempt, STEPS_CONTAINER, build_network_policy, build_pod};
use super::collect::{artifact_copy_command, release_command};
use crate::runtime::artifact::store_tar;
use crate::runtime::job::{AttemptRequest, JobRuntime, LogLines};
use crate::runtime::log_lines::LineAssembler;
use crate::runtime::names::NONCE_LABEL;
use crate::runtime::runner::{RELEASE_FILE, RunnerParser};
use crate::runtime::{
    ContainerInfo, ContainerState, CopiedArtifact, LogLine, LogStream, Result, RuntimeError,
};

/// The annotation on an attempt's pod with its number of steps, so that a holding pod
/// can be recognised as done from its log alone (see [`PodRuntime::list`]).
pub const STEPS_ANNOTATION: &str = "orcaops.dev/steps";

/// The pipe between an exec's WebSocket and the artifact file.
const EXEC_BUFFER: usize = 64 * 1024;

/// How much of a failed exec's stderr its error keeps.
const MAX_EXEC_MESSAGE: usize = 1024;

/// Runs Job attempts as pods. Cloning is cheap.
#[derive(Clone)]
pub struct PodRuntime {
    client: Client,
}

impl PodRuntime {
    pub fn new(client: Client) -> Self {
        PodRuntime { client }
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn policies(&self, namespace: &str) -> Api<NetworkPolicy> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The pod's info, with a holding pod whose steps are over reported as exited.
    async fn info(&self, pod: &Pod) -> Result<ContainerInfo> {
        let mut info = pod_info(pod);
        if info.state == ContainerState::Running
            && let Some(steps) = holding_steps(pod)
        {
            let nonce = info.label(NONCE_LABEL).unwrap_or_default().to_string();
            if let Some(code) = self.steps_over(&info.id, &nonce, steps).await? {
                info.state = ContainerState::Exited { code };
            }
        }
        Ok(info)
    }

    /// The steps' exit code once the log shows they are over (the last one ended, or
    /// one failed), None while they run.
    async fn steps_over(&self, id: &str, nonce: &str, steps: usize) -> Result<Option<i64>> {
        let mut parser = RunnerParser::new(nonce, steps);
        let mut lines = self.log_lines(id, false);
        while let Some(line) = lines.next().await {
            match line {
                Ok(line) => {
                    parser.push(&line);
                }
                // Gone meanwhile: the next look finds it gone.
                Err(RuntimeError::ContainerNotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(parser.finished_code())
    }

    fn log_lines(&self, id: &str, follow: bool) -> LogLines {
        let (namespace, name) = match split_id(id) {
            Ok(parts) => parts,
            Err(e) => return futures::stream::once(async { Err(e) }).boxed(),
        };
        let api = self.pods(namespace);
        let (name, id) = (name.to_string(), id.to_string());
        let params = LogParams {
            container: Some(STEPS_CONTAINER.to_string()),
            follow,
            timestamps: true,
            ..Default::default()
        };
        futures::stream::once(async move {
            match api.log_stream(&name, &params).await {
                Ok(reader) => log_stream_lines(reader),
                Err(e) => futures::stream::once(async move { Err(not_found_as(e, &id)) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    /// Runs `command` in the steps container, with its stdout going to `stdout`, and
    /// fails with its stderr when it exits non-zero, or with what broke when the
    /// connection ends before the command's exit status.
    async fn exec<W>(&self, id: &str, command: Vec<String>, stdout: &mut W) -> Result<()>
    where
        W: tokio::io::AsyncWrite + Unpin + Send,
    {
        let (namespace, name) = split_id(id)?;
        let params = AttachParams {
            // kube's 1 KiB pipe would copy a large artifact in tiny pieces.
            max_stdout_buf_size: Some(EXEC_BUFFER),
            ..AttachParams::default()
                .container(STEPS_CONTAINER)
                .stdin(false)
                .stdout(true)
                .stderr(true)
        };
        let shown = command.join(" ");
        let mut process = self
            .pods(namespace)
            .exec(name, command, &params)
            .await
            .map_err(|e| not_found_as(e, id))?;
        let status = process.take_status();
        let mut out = process.stdout().expect("stdout was asked for");
        let mut err = process.stderr().expect("stderr was asked for");
        let mut message = Vec::new();
        let ending = Ending::default();
        let (copied, _, status) = tokio::join!(
            ending.drain(&mut out, stdout),
            // All of it, so that a chatty command never blocks on a full pipe.
            ending.drain(&mut err, &mut message),
            ending.status(status),
        );
        copied?;
        message.truncate(MAX_EXEC_MESSAGE);
        let status = match Ending::finish(process, status).await {
            Ok(status) => status,
            // What was copied is not all there was: the caller must not keep it.
            Err(message) => {
                return Err(RuntimeError::Exec {
                    pod: id.to_string(),
                    command: shown,
                    message,
                });
            }
        };
        if status.status.as_deref() == Some("Success") {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&message).trim().to_string();
        let message = if stderr.is_empty() {
            status.message.unwrap_or_default()
        } else {
            stderr
        };
        Err(RuntimeError::Exec {
            pod: id.to_string(),
            command: shown,
            message,
        })
    }
}

#[async_trait::async_trait]
impl JobRuntime for PodRuntime {
    /// The kubelet pulls the image; a pull that fails shows as a waiting pod.
    async fn ensure_image(&self, _image: &str) -> Result<()> {
        Ok(())
    }

    async fn start_attempt(&self, request: &AttemptRequest<'_>) -> Result<ContainerInfo> {
        let attempt = JobAttempt {
            job: request.job,
            spec: request.spec,
            run: request.run,
            attempt: request.attempt,
            nonce: request.nonce,
            instance: request.instance,
            active_deadline_seconds: request
                .deadline
                .map(|deadline| (deadline - Utc::now()).num_seconds()),
            default_memory_bytes: request.default_memory_bytes,
        };
        let mut pod = build_pod(&attempt);
        pod.metadata.annotations.get_or_insert_default().insert(
            STEPS_ANNOTATION.to_string(),
            request.spec.steps.len().to_string(),
        );
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let id = format!("{namespace}/{name}");
        // Before the pod: a pod that starts first has the network until the policy arrives.
        if let Some(policy) = build_network_policy(&attempt) {
            match self
                .policies(&namespace)
                .create(&PostParams::default(), &policy)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_already_exists() => {}
                Err(e) => return Err(RuntimeError::Kube(e)),
            }
        }
        let pods = self.pods(&namespace);
        match pods.create(&PostParams::default(), &pod).await {
            Ok(created) => Ok(pod_info(&created)),
            // Created before a crash, or by a reconcile that raced this one: adopt it.
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let existing = pods.get(&name).await.map_err(|e| not_found_as(e, &id))?;
                self.info(&existing).await
            }
            Err(e) => Err(RuntimeError::Kube(e)),
        }
    }

    /// Pods with all the labels, in every namespace.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let params = ListParams::default().labels(&selector.join(","));
        let pods = Api::<Pod>::all(self.client.clone())
            .list(&params)
            .await
            .map_err(RuntimeError::Kube)?;
        let mut infos = Vec::with_capacity(pods.items.len());
        for pod in &pods.items {
            infos.push(self.info(pod).await?);
        }
        Ok(infos)
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let (namespace, name) = split_id(id)?;
        match self.pods(namespace).get_opt(name).await {
            Ok(Some(pod)) => Ok(Some(self.info(&pod).await?)),
            Ok(None) => Ok(None),
            Err(e) => Err(RuntimeError::Kube(e)),
        }
    }

    fn logs(&self, id: &str, follow: bool) -> LogLines {
        self.log_lines(id, follow)
    }

    /// Deletes the pod with `grace_secs` between SIGTERM and SIGKILL: the only way to
    /// signal a pod's container through the API.
    async fn stop(&self, id: &str, grace_secs: u32) -> Result<()> {
        let (namespace, name) = split_id(id)?;
        let params = DeleteParams {
            grace_period_seconds: Some(grace_secs),
            ..Default::default()
        };
        ignore_not_found(self.pods(namespace).delete(name, &params).await.map(drop))
    }

    /// Deletes the pod and its NetworkPolicy (named like it).
    async fn remove(&self, attempt: &ContainerInfo) -> Result<()> {
        let (namespace, name) = split_id(&attempt.id)?;
        let params = DeleteParams::default();
        ignore_not_found(self.pods(namespace).delete(name, &params).await.map(drop))?;
        ignore_not_found(
            self.policies(namespace)
                .delete(name, &params)
                .await
                .map(drop),
        )
    }

    /// An exec of `tar cf - -C <dir> <base>`, stored as local mode stores Docker's
    /// archive of the same path: a directory as the tar, a file unpacked.
    async fn copy_out(
        &self,
        id: &str,
        path: &str,
        dest_dir: &Path,
        name: &str,
        limit: u64,
    ) -> Result<CopiedArtifact> {
        tokio::fs::create_dir_all(dest_dir).await?;
        // The tar is kept aside until tar has said it succeeded: a missing path must not
        // leave an empty archive behind as the artifact.
        let spool = dest_dir.join(format!(".{name}.{}.exec", uuid::Uuid::new_v4().simple()));
        let result = async {
            let mut file = tokio::fs::File::create(&spool).await?;
            match self.exec(id, artifact_copy_command(path), &mut file).await {
                Ok(()) => {}
                Err(RuntimeError::Exec { message, .. }) if is_missing_path(&message) => {
                    return Err(RuntimeError::PathNotFound {
                        container: id.to_string(),
                        path: path.to_string(),
                    });
                }
                Err(e) => return Err(e),
            }
            let file = tokio::fs::File::open(&spool).await?;
            let chunks = tokio_util::io::ReaderStream::new(file).map_err(RuntimeError::Io);
            store_tar(chunks, dest_dir, name, limit).await
        }
        .await;
        let _ = tokio::fs::remove_file(&spool).await;
        result
    }

    /// Creates the runner's release file, so that the holding runner exits.
    async fn release(&self, id: &str) -> Result<()> {
        self.exec(id, release_command(), &mut tokio::io::sink())
            .await
    }
}

/// `(namespace, name)` of an attempt id `namespace/name`.
fn split_id(id: &str) -> Result<(&str, &str)> {
    id.split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .ok_or_else(|| RuntimeError::ContainerNotFound {
            container: format!("{id} (a pod is named namespace/name)"),
        })
}

fn not_found_as(e: kube::Error, id: &str) -> RuntimeError {
    match e {
        kube::Error::Api(s) if s.code == 404 => RuntimeError::ContainerNotFound {
            container: id.to_string(),
        },
        e => RuntimeError::Kube(e),
    }
}

fn ignore_not_found(result: kube::Result<()>) -> Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(RuntimeError::Kube(e)),
    }
}

/// What GNU tar and BusyBox tar say of a path that does not exist.
fn is_missing_path(stderr: &str) -> bool {
    stderr.contains("No such file or directory") || stderr.contains("Cannot stat")
}

/// A pod log (`timestamps=true`: each line starts with its RFC 3339 time) as lines. The
/// pod log does not tell stdout from stderr; every line counts as stdout.
fn log_stream_lines(reader: impl futures::AsyncBufRead + Send + 'static) -> LogLines {
    let reader = Box::pin(reader);
    futures::stream::unfold(
        (reader, LineAssembler::default(), false),
        |(mut reader, mut assembler, done)| async move {
            if done {
                return None;
            }
            let mut bytes = Vec::new();
            let lines: Vec<Result<LogLine>> = match reader.read_until(b'\n', &mut bytes).await {
                Ok(0) => {
                    let rest = assembler.finish().into_iter().map(Ok).collect();
                    return Some((rest, (reader, assembler, true)));
                }
                Ok(_) => assembler
                    .push_frame(LogStream::Stdout, &bytes)
                    .into_iter()
                    .map(Ok)
                    .collect(),
                Err(e) => vec![Err(RuntimeError::Io(e))],
            };
            Some((lines, (reader, assembler, false)))
        },
    )
    .flat_map(futures::stream::iter)
    .boxed()
}

/// The number of steps of a pod whose runner holds for collection, None for one that
/// does not hold (it exits when the steps are over, so its state says it).
fn holding_steps(pod: &Pod) -> Option<usize> {
    let holds = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .filter(|c| c.name == STEPS_CONTAINER)
        .flat_map(|c| c.command.iter().flatten())
        // Every pod mounts the runner's directory (for outputs); only a holding runner
        // waits for the release file.
        .any(|arg| arg.contains(RELEASE_FILE));
    if !holds {
        return None;
    }
    pod.metadata
        .annotations
        .as_ref()?
        .get(STEPS_ANNOTATION)?
        .parse()
        .ok()
}

/// Why the kubelet leaves a container waiting that it will not get past by itself: the
/// image cannot be pulled or named, or the container cannot be made from the pod's spec.
/// (`ContainerCreating` and `PodInitializing` are on their way; `CrashLoopBackOff`
/// needs a restart policy, which attempt pods do not have.)
const CANNOT_START: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The reason (with the kubelet's message) a container is stuck waiting, if it is.
pub(crate) fn cannot_start(state: &k8s_openapi::api::core::v1::ContainerState) -> Option<String> {
    let waiting = state.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    CANNOT_START
        .contains(&reason)
        .then(|| match waiting.message.as_deref() {
            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
            _ => reason.to_string(),
        })
}

/// A pod as the controller sees an attempt. The state is the `steps` container's:
/// waiting or running is Running (a pod being scheduled or pulling its image has
/// started as far as the controller can act), terminated is Exited with its code, and
/// waiting for a reason it will not get past ([`cannot_start`]) is CannotStart. A pod
/// that ended without that container ever running (deadline, eviction) is Exited with 0
/// if it succeeded and 1 otherwise.
pub(crate) fn pod_info(pod: &Pod) -> ContainerInfo {
    let meta = pod.meta();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let steps = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == STEPS_CONTAINER);
    let container_state = steps.and_then(|c| c.state.clone()).unwrap_or_default();
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let steps_started = container_state.running.is_some() || container_state.terminated.is_some();
    let stuck = cannot_start(&container_state).or_else(|| {
        (!steps_started)
            .then(|| service_not_ready(&status))
            .flatten()
    });
    let (state, started_at, finished_at) = match (&container_state.terminated, phase) {
        (Some(t), _) => (
            ContainerState::Exited {
                code: i64::from(t.exit_code),
            },
            t.started_at.as_ref().map(|t| time(&t.0)),
            t.finished_at.as_ref().map(|t| time(&t.0)),
        ),
        (None, "Succeeded") => (ContainerState::Exited { code: 0 }, None, None),
        (None, "Failed") => (ContainerState::Exited { code: 1 }, None, None),
        (None, "Unknown") => (ContainerState::Other("Unknown".to_string()), None, None),
        (None, "Pending" | "Running") if stuck.is_some() => (
            ContainerState::CannotStart {
                reason: stuck.unwrap_or_default(),
            },
            None,
            None,
        ),
        (None, _) => (
            ContainerState::Running,
            container_state
                .running
                .as_ref()
                .and_then(|r| r.started_at.as_ref())
                .or(status.start_time.as_ref())
                .map(|t| time(&t.0)),
            None,
        ),
    };
    // The kubelet's imageID of the steps container (`docker-pullable://…@sha256:…`).
    let image_id = steps
        .map(|c| c.image_id.clone())
        .filter(|id| !id.is_empty());
    ContainerInfo {
        id: format!("{namespace}/{name}"),
        name,
        labels: meta
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        state,
        started_at: started_at.flatten(),
        finished_at: finished_at.flatten(),
        image_id,
    }
}

/// A service (a native sidecar) the kubelet restarted before the steps started: its
/// startup probe failed `failureThreshold` times, or it exited, or its image cannot be
/// had. The steps would wait for it for ever, so the attempt cannot start.
fn service_not_ready(status: &k8s_openapi::api::core::v1::PodStatus) -> Option<String> {
    status.init_container_statuses.iter().flatten().find_map(|c| {
        let state = c.state.clone().unwrap_or_default();
        if let Some(stuck) = cannot_start(&state) {
            return Some(format!("service \"{}\" did not become ready: {stuck}", c.name));
        }
        if c.restart_count == 0 {
            return None;
        }
        let last = c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| {
                let reason = t.reason.as_deref().unwrap_or("Terminated");
                match t.message.as_deref().filter(|m| !m.is_empty()) {
                    Some(message) => format!("; it last ended {reason} with {}: {message}", t.exit_code),
                    None => format!("; it last ended {reason} with {}", t.exit_code),
                }
            })
            .unwrap_or_default();
        Some(format!(
            "service \"{}\" did not become ready: the kubelet restarted it {} time(s) (its startup probe failed, or it exited){last}",
            c.name, c.restart_count
        ))
    })
}

/// A Kubernetes time (jiff) as the application's (chrono), through RFC 3339.
pub(crate) fn time(t: &impl std::fmt::Display) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&t.to_string())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
pub(crate) mod exec_tests;
#[cfg(test)]
mod tests;
