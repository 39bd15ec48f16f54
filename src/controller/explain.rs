//! The optional summariser's place in the Job controller: after a failed run's record
//! is written, a few sentences on why it failed are asked for in the background and
//! added to the record. Nothing waits for them, and when the summariser is off, slow or
//! down, the run and its record are as they would be without it.

use std::sync::Arc;

use tracing::{debug, warn};

use crate::records::RunRecord;
use crate::resources::job::JobPhase;
use crate::store::LocalStore;

/// What writes a failed run's explanation (`serve --summarizer-url`; see
/// [`crate::summary`]).
#[async_trait::async_trait]
pub trait Explainer: Send + Sync {
    /// A few sentences on why `record` failed, or why none could be had.
    async fn explain(&self, record: &RunRecord) -> Result<String, String>;
}

/// Whether a run ended so that an explanation is worth asking for.
pub fn wanted(record: &RunRecord) -> bool {
    matches!(record.phase, JobPhase::Failed | JobPhase::TimedOut)
}

/// Asks `explainer` about `record` in the background and adds the answer to the run's
/// record in `records`.
pub fn spawn(explainer: Arc<dyn Explainer>, records: LocalStore, record: RunRecord) {
    tokio::spawn(async move {
        let which = format!("{}/{} run {}", record.namespace, record.name, record.run);
        match explainer.explain(&record).await {
            Ok(text) => match records
                .set_run_explanation(&record.uid, record.run, &text)
                .await
            {
                Ok(()) => debug!(run = %which, "run explained"),
                Err(e) => warn!(run = %which, error = %e, "cannot keep the run's explanation"),
            },
            Err(e) => warn!(run = %which, error = %e, "the summariser did not explain the run"),
        }
    });
}
