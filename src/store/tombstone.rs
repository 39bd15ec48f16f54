//! Tombstones: a Job deleted by its `ttlSecondsAfterFinished` (or a Sandbox by its
//! expiry) is gone on purpose, but the file that declared it is still in the folder,
//! and a restart would read it as a new object to create and run again. The controller
//! that deletes such an object leaves a tombstone with a digest of the spec it had; the
//! folder does not create the object again while its file declares that same spec. A
//! changed spec is a new intent and is applied (the tombstone goes).

use sha2::{Digest, Sha256};

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

/// A digest of a spec, the same for the same declaration whatever the key order.
pub fn spec_digest(spec: &serde_json::Value) -> String {
    // serde_json's maps are sorted (no preserve_order), so this text is canonical.
    let text = serde_json::to_string(spec).unwrap_or_default();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
