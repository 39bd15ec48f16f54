//! What the Job controller needs of a runtime, at the level of an attempt: Docker runs
//! one as a container ([`DockerRuntime`]), a cluster as a pod
//! ([`PodRuntime`](super::pod::PodRuntime)). The controller never sees a container spec
//! or a pod; each runtime builds its own from the [`AttemptRequest`].

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::docker::attempt::container_spec;
use super::names::{HAS_SERVICES_LABEL, SERVICE_LABEL, container_labels, step_env};
use super::{ContainerInfo, CopiedArtifact, DockerRuntime, LogLine, NetworkMode, Result};
use crate::resources::Object;
use crate::resources::job::JobSpec;

/// A stream of log lines, as [`JobRuntime::logs`] returns it.
pub type LogLines = BoxStream<'static, Result<LogLine>>;

/// One attempt of a Job, as the controller asks a runtime to start it.
#[derive(Clone, Copy, Debug)]
pub struct AttemptRequest<'a> {
    /// The Job as stored (name, namespace, uid: they name, label and own what runs).
    pub job: &'a Object,
    /// The Job's spec, already read from `job`.
    pub spec: &'a JobSpec,
    pub run: u32,
    pub attempt: u32,
    /// The container name the controller records (`orcaops-<ns>-<name>-<uid8>-r<run>a<attempt>`).
    /// Docker uses it as it is; a pod gets it cut to 63 characters ([`pod_name`](super::pod::pod_name)).
    pub name: &'a str,
    /// The runner's marker nonce; also a label.
    pub nonce: &'a str,
    /// The identity of the store that owns the attempt (`orcaops.dev/instance`).
    pub instance: &'a str,
    /// When the run's `timeoutSeconds` runs out, if it has one. The controller stops the
    /// attempt then; a pod also gets what is left as `activeDeadlineSeconds`.
    pub deadline: Option<DateTime<Utc>>,
    /// The memory limit when the spec names none (the server's `--default-memory`).
    pub default_memory_bytes: u64,
}

/// The runtime of Job attempts. Every call is idempotent where the controller needs it:
/// starting an attempt that exists adopts it, stopping or removing one that is gone
/// succeeds.
#[async_trait::async_trait]
pub trait JobRuntime: Send + Sync + 'static {
    /// Makes sure the image can run: Docker pulls it when missing; on a cluster the
    /// kubelet pulls, so there it does nothing.
    async fn ensure_image(&self, image: &str) -> Result<()>;
    /// Creates and starts the attempt, or adopts it when it exists already (never a second one).
    async fn start_attempt(&self, request: &AttemptRequest<'_>) -> Result<ContainerInfo>;
    /// Every attempt (running or not) carrying all the labels `key=value`.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>>;
    /// One attempt by id, None when it is gone.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>>;
    /// The attempt's output from the start, with timestamps, in lines. With `follow` the
    /// stream goes on until the attempt stops.
    fn logs(&self, id: &str, follow: bool) -> LogLines;
    /// Stops the attempt (SIGTERM, then SIGKILL after `grace_secs`); gone is fine.
    async fn stop(&self, id: &str, grace_secs: u32) -> Result<()>;
    /// Removes the attempt and what was made for it (its labels, as listed, say what
    /// that is); gone is fine.
    async fn remove(&self, attempt: &ContainerInfo) -> Result<()>;
    /// Copies `path` out of the attempt into `dest_dir`: a file as `dest_dir/<name>`, a
    /// directory as `dest_dir/<name>.tar`, with its size and sha256. Over `limit` bytes it
    /// is [`crate::runtime::RuntimeError::ArtifactTooLarge`], counted as it is read (a
    /// sparse file counts at its full size); neither a file nor a directory is
    /// [`crate::runtime::RuntimeError::NotRegular`].
    async fn copy_out(
        &self,
        id: &str,
        path: &str,
        dest_dir: &Path,
        name: &str,
        limit: u64,
    ) -> Result<CopiedArtifact>;
    /// Ends the runner's hold once the artifacts are copied (a pod holds; Docker does not,
    /// since it can copy from a stopped container).
    async fn release(&self, id: &str) -> Result<()>;
    /// What became of the attempt's services while its steps ran (one note for each that
    /// stopped), for the attempt's message. A runtime without services says nothing.
    async fn service_notes(&self, id: &str) -> Result<Vec<String>> {
        let _ = id;
        Ok(Vec::new())
    }
    /// Removes the services (and what was made for them) of attempts of store `instance`
    /// whose Job is not `live`, and returns how many. Those whose steps' container
    /// exists go with it ([`JobRuntime::remove`]); this finds the others.
    async fn remove_orphan_services(
        &self,
        instance: &str,
        live: &HashSet<String>,
    ) -> Result<usize> {
        let _ = (instance, live);
        Ok(0)
    }
    /// Whether the kernel killed the attempt for going over its memory limit (an exit
    /// of 137 is that, or a kill from outside). A runtime that cannot tell says false.
    async fn oom_killed(&self, id: &str) -> Result<bool> {
        let _ = id;
        Ok(false)
    }
    /// When the runtime itself went away (the Docker daemon stopped or restarted), if
    /// an attempt that ended at `ended` most likely ended with it. A runtime that cannot
    /// tell says None.
    fn went_away_around(&self, ended: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let _ = ended;
        None
    }
}

#[async_trait::async_trait]
impl JobRuntime for DockerRuntime {
    async fn ensure_image(&self, image: &str) -> Result<()> {
        DockerRuntime::ensure_image(self, image).await
    }

    async fn start_attempt(&self, request: &AttemptRequest<'_>) -> Result<ContainerInfo> {
        let mut labels = container_labels(
            request.job,
            request.instance,
            request.run,
            request.attempt,
            request.nonce,
        );
        let services = request.spec.services.len();
        if services > 0 {
            labels.insert(HAS_SERVICES_LABEL.to_string(), services.to_string());
        }
        let mut container = container_spec(
            request.spec,
            labels.clone(),
            request.name,
            request.nonce,
            request.default_memory_bytes,
        );
        container.env = step_env(request.job, &request.spec.env, request.run, request.attempt);
        if services > 0 {
            self.start_services(request, &labels).await?;
            container.network = NetworkMode::Attached(request.name.to_string());
        }
        self.create_and_start(&container).await
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>> {
        // The attempts only: services carry their attempt's labels too.
        let mut attempts = DockerRuntime::list(self, labels).await?;
        attempts.retain(|c| !c.labels.contains_key(SERVICE_LABEL));
        Ok(attempts)
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        DockerRuntime::inspect(self, id).await
    }

    fn logs(&self, id: &str, follow: bool) -> LogLines {
        DockerRuntime::logs(self, id, follow).boxed()
    }

    async fn stop(&self, id: &str, grace_secs: u32) -> Result<()> {
        DockerRuntime::stop(self, id, grace_secs).await
    }

    async fn remove(&self, attempt: &ContainerInfo) -> Result<()> {
        // The attempt's services and network go with it (the network last, once nothing
        // is attached to it). Its labels came with the listing: no inspect is needed.
        DockerRuntime::remove(self, &attempt.id).await?;
        if attempt.labels.contains_key(HAS_SERVICES_LABEL) {
            self.remove_services_of(&attempt.labels).await?;
        }
        Ok(())
    }

    async fn service_notes(&self, id: &str) -> Result<Vec<String>> {
        DockerRuntime::service_notes(self, id).await
    }

    async fn remove_orphan_services(
        &self,
        instance: &str,
        live: &HashSet<String>,
    ) -> Result<usize> {
        DockerRuntime::remove_orphan_services(self, instance, live).await
    }

    async fn copy_out(
        &self,
        id: &str,
        path: &str,
        dest_dir: &Path,
        name: &str,
        limit: u64,
    ) -> Result<CopiedArtifact> {
        DockerRuntime::copy_out(self, id, path, dest_dir, name, limit).await
    }

    async fn release(&self, _id: &str) -> Result<()> {
        Ok(())
    }

    async fn oom_killed(&self, id: &str) -> Result<bool> {
        DockerRuntime::oom_killed(self, id).await
    }

    fn went_away_around(&self, ended: DateTime<Utc>) -> Option<DateTime<Utc>> {
        DockerRuntime::went_away_around(self, ended)
    }
}
