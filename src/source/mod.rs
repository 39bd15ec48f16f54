//! Sources write desired state into a store. This module holds the watched folder; the REST
//! facade and the CLI are the others.

pub mod folder;

pub use folder::{FolderSource, SourceError, SyncReport};
