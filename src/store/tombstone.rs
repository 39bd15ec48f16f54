//! Tombstones: a Job deleted by its `ttlSecondsAfterFinished` (or a Sandbox by its
//! expiry) is gone on purpose, but the file that declared it is still in the folder,
//! and a restart would read it as a new object to create and run again. The controller
//! that deletes such an object leaves a tombstone with a digest of the spec it had; the
//! folder does not create the object again while its file declares that same spec. A
//! changed spec is a new intent and is applied (the tombstone goes).

use crate::resources::ObjectKey;

/// What a controller deleted by itself, and from which declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    pub key: ObjectKey,
    /// The `orcaops.dev/source` annotation it had (`file:<path>`).
    pub source: String,
    /// [`spec_digest`] of the spec it had.
    pub spec_digest: String,
    /// Why it was deleted (`ttlSecondsAfterFinished`, `expired`).
    pub reason: String,
}

/// A digest of a spec, the same for the same declaration whatever the key order: the
/// hash run records keep too.
pub use crate::records::spec_hash as spec_digest;
