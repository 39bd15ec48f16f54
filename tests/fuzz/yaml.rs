//! YAML documents, as the folder source and `apply -f` read files: `parse_bytes` (size,
//! encoding, NUL checks, then every document parsed and validated).
//!
//! Invariants: every object that parses passes validation and has a name; every error
//! names the file and says something; an object that parses parses again, unchanged in
//! kind, name and spec, from its own JSON (what `get -o json` prints is re-appliable).

use orcaops::resources::parse::{parse_bytes, parse_documents};
use orcaops::resources::validate::validate;
use serde_json::Value;

use crate::harness::{Input, Rng, mutate_bytes, mutate_json};

const FILE: &str = "fuzz.yaml";

/// Line-level edits keep most of a document's structure and reach deeper than byte noise.
fn mutate_lines(rng: &mut Rng, bytes: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    for _ in 0..rng.usize(1..4) {
        let i = rng.usize(..lines.len());
        match rng.u8(..6) {
            0 => {
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            1 if lines.len() > 1 => {
                lines.remove(i);
            }
            2 => {
                let j = rng.usize(..lines.len());
                lines.swap(i, j);
            }
            3 => {
                let indent = [b" ".as_slice(), b"  ", b"\t", b"- "][rng.usize(..4)];
                lines[i].splice(0..0, indent.iter().copied());
            }
            4 => {
                let extra: &[u8] = [
                    b"<<: *a".as_slice(),
                    b"x: &a {k: v}",
                    b"  labels: *a",
                    b"---",
                    b"...",
                    b"spec: !!binary aGk=",
                    b"metadata: {name: [[[[[]]]]]}",
                    b"? [a, b]\n: c",
                ][rng.usize(..8)];
                lines.insert(i, extra.to_vec());
            }
            _ => {
                let mut line = std::mem::take(&mut lines[i]);
                mutate_bytes(rng, &mut line, &[]);
                lines[i] = line;
            }
        }
    }
    lines.join(&b'\n')
}

pub fn generate(rng: &mut Rng, corpus: &[Input]) -> Input {
    let base = &corpus[rng.usize(..corpus.len())];
    let bytes = match rng.u8(..4) {
        0 => mutate_lines(rng, &base.bytes),
        // Structure-aware: the first document as a JSON tree, mutated, written as JSON
        // (JSON is YAML) or YAML.
        1 => match serde_saphyr::from_slice::<Value>(&base.bytes) {
            Ok(mut value) => {
                mutate_json(rng, &mut value);
                if rng.bool() {
                    serde_json::to_vec(&value).unwrap()
                } else {
                    serde_saphyr::to_string(&value)
                        .map(String::into_bytes)
                        .unwrap_or_else(|_| serde_json::to_vec(&value).unwrap())
                }
            }
            Err(_) => mutate_lines(rng, &base.bytes),
        },
        _ => {
            let mut bytes = base.bytes.clone();
            mutate_bytes(rng, &mut bytes, corpus);
            bytes
        }
    };
    Input::new("", bytes)
}

pub fn check(input: &Input) {
    for result in parse_bytes(FILE, &input.bytes) {
        match result {
            Ok(obj) => {
                assert!(!obj.metadata.name.is_empty(), "an object without a name");
                let problems = validate(&obj);
                assert!(
                    problems.is_empty(),
                    "an object that parsed fails validation: {problems:?}"
                );
                let json = serde_json::to_string(&obj).expect("an object serializes");
                let again = parse_documents("again.json", &json);
                match again.as_slice() {
                    [Ok(back)] => {
                        assert_eq!(
                            (back.kind, &back.metadata.name, &back.spec),
                            (obj.kind, &obj.metadata.name, &obj.spec),
                            "the object changed when parsed from its own JSON"
                        );
                    }
                    other => panic!(
                        "an object that parsed does not parse from its own JSON {json}: {other:?}"
                    ),
                }
            }
            Err(e) => {
                assert_eq!(e.file, FILE, "an error names another file");
                assert!(!e.message.trim().is_empty(), "an error without a message");
            }
        }
    }
}
