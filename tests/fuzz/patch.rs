//! PATCH bodies, as the REST API applies them to a stored object: merge patches (RFC
//! 7386) and JSON patches (RFC 6902) through `apply_patch`, then the patched JSON admitted
//! as a body; server-side apply bodies admitted whole. Corpus files are named
//! `<merge|json|apply>--<name>`.
//!
//! Invariants: a patch that is refused leaves the stored JSON untouched (a JSON patch is
//! all or nothing); a merge patch that applies leaves an object; what is admitted after a
//! patch is of the stored kind and name and passes validation.

use bytes::Bytes;
use orcaops::resources::parse::parse_documents;
use orcaops::resources::validate::validate;
use orcaops::server::fuzzing::{PatchKind, admit, apply_patch, pins_resource_version};
use serde_json::{Value, json};

use crate::harness::{Input, Rng, mutate_bytes, mutate_json, random_value};

const LABELS: [&str; 3] = ["merge", "json", "apply"];

/// The objects patched: the Job and the Sandbox of the YAML corpus, as the store holds
/// them (with server metadata).
pub struct Base {
    objects: Vec<(Value, &'static str)>,
}

impl Base {
    pub fn load() -> Base {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus/yaml/");
        let objects = [("hello.yaml", "jobs"), ("scratch.yaml", "sandboxes")]
            .into_iter()
            .map(|(file, plural)| {
                let text = std::fs::read_to_string(format!("{dir}{file}")).unwrap();
                let mut obj = parse_documents(file, &text)
                    .remove(0)
                    .expect("a valid corpus object");
                obj.metadata.namespace = Some("default".into());
                obj.metadata.resource_version = "7".into();
                obj.metadata.uid = "0b5e".into();
                (serde_json::to_value(&obj).unwrap(), plural)
            })
            .collect();
        Base { objects }
    }

    pub fn check(&self, input: &Input) {
        let (stored, plural) = &self.objects[input.bytes.len() % self.objects.len()];
        let name = stored["metadata"]["name"].as_str().unwrap();
        let kind = match input.label.as_str() {
            "merge" => PatchKind::Merge,
            "json" => PatchKind::Json,
            _ => PatchKind::Apply,
        };
        pins_resource_version(kind, &input.bytes);
        if kind == PatchKind::Apply {
            // Server-side apply: the body is a whole declaration.
            let body = Bytes::copy_from_slice(&input.bytes);
            if let Ok(obj) = admit(&body, plural, Some("default"), Some(name)) {
                assert_eq!(obj.metadata.name, name, "applied under another name");
                assert!(validate(&obj).is_empty(), "applied but invalid");
            }
            assert!(apply_patch(&mut stored.clone(), kind, &input.bytes).is_err());
            return;
        }
        let mut target = stored.clone();
        match apply_patch(&mut target, kind, &input.bytes) {
            Err(_) => assert_eq!(&target, stored, "a refused patch changed the object"),
            Ok(()) => {
                if kind == PatchKind::Merge {
                    assert!(target.is_object(), "a merge patch left a non-object");
                }
                let text = serde_json::to_string_pretty(&target).unwrap();
                let body = Bytes::from(text);
                if let Ok(obj) = admit(&body, plural, Some("default"), Some(name)) {
                    assert_eq!(obj.metadata.name, name, "patched into another name");
                    assert_eq!(obj.metadata.namespace.as_deref(), Some("default"));
                    assert!(validate(&obj).is_empty(), "patched but invalid");
                }
            }
        }
    }
}

/// A JSON pointer into the stored object, sometimes bent: past the end, `-`, bad escapes.
fn pointer(rng: &mut Rng) -> String {
    const POINTERS: &[&str] = &[
        "",
        "/",
        "/spec",
        "/spec/image",
        "/spec/steps",
        "/spec/steps/0",
        "/spec/steps/0/run",
        "/spec/steps/-",
        "/spec/steps/99",
        "/spec/steps/01",
        "/spec/steps/-1",
        "/spec/steps/18446744073709551616",
        "/metadata",
        "/metadata/name",
        "/metadata/labels",
        "/metadata/labels/a~1b",
        "/metadata/labels/~2",
        "/metadata/resourceVersion",
        "/kind",
        "/apiVersion",
        "/status",
        "spec",
        "/spec/image/x",
        "/~",
        "/spec/services/0/ports",
    ];
    let mut p = POINTERS[rng.usize(..POINTERS.len())].to_string();
    if rng.u8(..6) == 0 {
        p.push_str(POINTERS[rng.usize(..POINTERS.len())]);
    }
    p
}

fn json_patch(rng: &mut Rng) -> Value {
    const OPS: &[&str] = &[
        "add", "remove", "replace", "move", "copy", "test", "bogus", "",
    ];
    let ops: Vec<Value> = (0..rng.usize(0..5))
        .map(|_| {
            let mut op = json!({"op": OPS[rng.usize(..OPS.len())], "path": pointer(rng)});
            if rng.u8(..4) != 0 {
                op["value"] = random_value(rng, 0);
            }
            if rng.u8(..3) == 0 {
                op["from"] = json!(pointer(rng));
            }
            if rng.u8(..10) == 0 {
                mutate_json(rng, &mut op);
            }
            op
        })
        .collect();
    Value::Array(ops)
}

fn merge_patch(rng: &mut Rng) -> Value {
    let mut patch = json!({});
    for _ in 0..rng.usize(1..4) {
        let p = pointer(rng);
        let mut at = &mut patch;
        for part in p.split('/').filter(|s| !s.is_empty()) {
            if !at.is_object() {
                *at = json!({});
            }
            at = at
                .as_object_mut()
                .unwrap()
                .entry(part.to_string())
                .or_insert(json!({}));
        }
        *at = random_value(rng, 0);
    }
    patch
}

pub fn generate(rng: &mut Rng, corpus: &[Input]) -> Input {
    let mode = rng.u8(..4);
    if mode < 2 {
        let label = LABELS[rng.usize(..2)];
        let value = if label == "json" {
            json_patch(rng)
        } else {
            merge_patch(rng)
        };
        let mut bytes = serde_json::to_vec(&value).unwrap();
        if mode == 1 {
            mutate_bytes(rng, &mut bytes, corpus);
        }
        return Input::new(label, bytes);
    }
    let base = &corpus[rng.usize(..corpus.len())];
    let mut bytes = base.bytes.clone();
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut value) if mode == 2 => {
            mutate_json(rng, &mut value);
            bytes = serde_json::to_vec(&value).unwrap();
        }
        _ => mutate_bytes(rng, &mut bytes, corpus),
    }
    // Sometimes the body of one kind sent as another.
    let label = if rng.u8(..8) == 0 {
        LABELS[rng.usize(..3)].to_string()
    } else {
        base.label.clone()
    };
    Input::new(label, bytes)
}
