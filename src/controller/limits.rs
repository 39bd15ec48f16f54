//! The server-wide bounds on what one Job may leave behind: its output, its artifacts,
//! and the memory of its containers when its spec names none. Chosen at start-up (the
//! `serve` and `operator` flags fill them; controllers never see the CLI) and read by
//! the Job controller, so that a job's output or files cannot exhaust the server.

use crate::records::output::DEFAULT_MAX_OUTPUT_BYTES;
use crate::runtime::docker::attempt::DEFAULT_MEMORY_BYTES;

/// The largest artifact kept unless the server is told otherwise.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 100 * 1024 * 1024;
/// All artifacts of one attempt together.
pub const DEFAULT_MAX_JOB_ARTIFACT_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The output one attempt keeps; past it the log ends with a marker.
    pub max_output_bytes: u64,
    /// The size of one artifact (a directory: its tar).
    pub max_artifact_bytes: u64,
    /// The size of all artifacts of one attempt together.
    pub max_job_artifact_bytes: u64,
    /// The memory limit of a Job's container when `spec.resources.memory` is absent.
    pub default_memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_artifact_bytes: DEFAULT_MAX_ARTIFACT_BYTES,
            max_job_artifact_bytes: DEFAULT_MAX_JOB_ARTIFACT_BYTES,
            default_memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}
