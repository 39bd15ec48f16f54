//! The cleanup finalizer, in the shape of kube-runtime's `finalizer()`: a pure step
//! from an object's metadata, acted on in one place ([`super::reconcile::drive`]).

use crate::resources::{ObjectMeta, keys};

/// What the finalizer asks of a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Alive without our finalizer: add it (and read the object again) before anything
    /// runs, so a deletion waits for the cleanup.
    Add,
    /// Alive (or on a backend that keeps no finalizers): reconcile as usual.
    Apply,
    /// Being deleted and held by our finalizer: clean up, then remove it.
    Cleanup,
    /// Being deleted and not held by us (never added, or already removed): nothing is
    /// ours to do.
    Done,
}

/// The step for an object with `meta`; `keeps` is whether this backend keeps
/// finalizers and this kind carries one.
pub fn step(meta: &ObjectMeta, keeps: bool) -> Step {
    if !keeps {
        return Step::Apply;
    }
    let ours = meta.finalizers.iter().any(|f| f == keys::FINALIZER);
    match (meta.deletion_timestamp.is_some(), ours) {
        (false, false) => Step::Add,
        (false, true) => Step::Apply,
        (true, true) => Step::Cleanup,
        (true, false) => Step::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(deleting: bool, finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            name: "a".into(),
            deletion_timestamp: deleting.then(chrono::Utc::now),
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_live_object_gets_the_finalizer_once() {
        assert_eq!(step(&meta(false, &[]), true), Step::Add);
        assert_eq!(step(&meta(false, &["other"]), true), Step::Add);
        assert_eq!(step(&meta(false, &[keys::FINALIZER]), true), Step::Apply);
    }

    #[test]
    fn a_deleting_object_is_cleaned_up_only_while_we_hold_it() {
        assert_eq!(
            step(&meta(true, &["other", keys::FINALIZER]), true),
            Step::Cleanup
        );
        assert_eq!(step(&meta(true, &["other"]), true), Step::Done);
        assert_eq!(step(&meta(true, &[]), true), Step::Done);
    }

    #[test]
    fn without_finalizers_every_object_is_reconciled_as_usual() {
        for m in [
            meta(false, &[]),
            meta(true, &[]),
            meta(true, &[keys::FINALIZER]),
        ] {
            assert_eq!(step(&m, false), Step::Apply);
        }
    }
}
