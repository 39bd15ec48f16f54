//! The Docker runtime (bollard).
pub struct DockerRuntime;
