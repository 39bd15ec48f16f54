//! JSON bodies of each kind, as the REST API admits a POST or PUT: `admit` (UTF-8, one
//! document, parsed and validated as a file of the folder is, the kind and name matching
//! the path). Corpus files are named `<plural>--<name>.json`, the path they are sent to.
//!
//! Invariants: an admitted object is of the path's kind, has the path's name (when one is
//! given) and namespace (when namespaced), and passes validation.

use bytes::Bytes;
use orcaops::resources::Kind;
use orcaops::resources::validate::validate;
use orcaops::server::fuzzing::admit;
use serde_json::Value;

use crate::harness::{Input, Rng, mutate_bytes, mutate_json};

const PLURALS: [&str; 7] = [
    "jobs",
    "workflows",
    "sandboxes",
    "sandboxtemplates",
    "workspaces",
    "policies",
    "nonsense",
];

pub fn generate(rng: &mut Rng, corpus: &[Input]) -> Input {
    let base = &corpus[rng.usize(..corpus.len())];
    // Mostly the path of the body's own kind; sometimes another (a mismatch to refuse).
    let label = if rng.u8(..8) == 0 {
        PLURALS[rng.usize(..PLURALS.len())].to_string()
    } else {
        base.label.clone()
    };
    let bytes = match serde_json::from_slice::<Value>(&base.bytes) {
        Ok(mut value) if rng.u8(..3) != 0 => {
            for _ in 0..rng.usize(1..4) {
                mutate_json(rng, &mut value);
            }
            let mut bytes = serde_json::to_vec(&value).unwrap();
            if rng.u8(..4) == 0 {
                mutate_bytes(rng, &mut bytes, corpus);
            }
            bytes
        }
        _ => {
            let mut bytes = base.bytes.clone();
            mutate_bytes(rng, &mut bytes, corpus);
            bytes
        }
    };
    Input::new(label, bytes)
}

pub fn check(input: &Input) {
    let plural = input.label.as_str();
    let kind = Kind::ALL.into_iter().find(|k| k.plural() == plural);
    let namespaced = kind.is_some_and(Kind::namespaced);
    let ns = namespaced.then_some("fuzz-ns");
    // The name from the path only half of the time: a create names none.
    let path_name = input.bytes.len().is_multiple_of(2).then_some("fuzz-name");
    let body = Bytes::copy_from_slice(&input.bytes);
    if let Ok(obj) = admit(&body, plural, ns, path_name) {
        assert_eq!(Some(obj.kind), kind, "admitted at the path of another kind");
        if let Some(name) = path_name {
            assert_eq!(obj.metadata.name, name, "admitted under another name");
        }
        if namespaced {
            assert_eq!(
                obj.metadata.namespace.as_deref(),
                ns,
                "admitted in another namespace"
            );
        }
        let problems = validate(&obj);
        assert!(problems.is_empty(), "admitted but invalid: {problems:?}");
    }
}
