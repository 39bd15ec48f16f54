//! Sources write desired state into the store. The watched folder is one.
//! (Temporary stub until the folder source lands.)
use std::path::PathBuf;
pub struct FolderSource;
impl FolderSource {
    pub fn new(_dir: PathBuf, _store: crate::store::LocalStore) -> Self {
        FolderSource
    }
    pub async fn run(
        self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), std::io::Error> {
        shutdown.cancelled().await;
        Ok(())
    }
}
