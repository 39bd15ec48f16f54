//! The flags that bound what one Job may leave behind (`serve`; see
//! [`crate::controller::limits`]), in a block of their own. Sizes are quantities as a
//! Job's `resources.memory` reads them: `64Mi`, `1Gi`, `1000000`.

use clap::Args;

use crate::controller::limits::Limits;
use crate::resources::quantity::parse_memory_bytes;

#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// The output one attempt keeps (steps together); past it the log ends with a marker line and the step runs on.
    #[arg(long, env = "ORCAOPS_MAX_OUTPUT_BYTES", default_value = "64Mi", value_parser = size)]
    pub max_output_bytes: u64,
    /// The largest artifact kept (a directory: its tar); a larger one fails the attempt, or is skipped when optional.
    #[arg(long, env = "ORCAOPS_MAX_ARTIFACT_BYTES", default_value = "100Mi", value_parser = size)]
    pub max_artifact_bytes: u64,
    /// All artifacts of one attempt together.
    #[arg(long, env = "ORCAOPS_MAX_JOB_ARTIFACT_BYTES", default_value = "1Gi", value_parser = size)]
    pub max_job_artifact_bytes: u64,
    /// The memory limit of a Job's container when its spec sets no resources.memory.
    #[arg(long, env = "ORCAOPS_DEFAULT_MEMORY", default_value = "512Mi", value_parser = size)]
    pub default_memory: u64,
}

fn size(text: &str) -> Result<u64, String> {
    match parse_memory_bytes(text) {
        Ok(0) => Err("must be more than 0".to_string()),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(format!("{e} (a size such as 64Mi, 1Gi or 1000000)")),
    }
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_output_bytes: self.max_output_bytes,
            max_artifact_bytes: self.max_artifact_bytes,
            max_job_artifact_bytes: self.max_job_artifact_bytes,
            default_memory_bytes: self.default_memory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn defaults_are_the_documented_ones_and_sizes_read_as_quantities() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.limits.limits(), Limits::default());
        let cli =
            Cli::try_parse_from(["x", "--max-output-bytes", "1Ki", "--default-memory", "1Gi"])
                .unwrap();
        assert_eq!(cli.limits.max_output_bytes, 1024);
        assert_eq!(cli.limits.default_memory, 1 << 30);
        let error = Cli::try_parse_from(["x", "--max-output-bytes", "lots"])
            .err()
            .unwrap();
        assert!(error.to_string().contains("--max-output-bytes"), "{error}");
        assert!(Cli::try_parse_from(["x", "--max-artifact-bytes", "0"]).is_err());
    }
}
