//! Label and field selectors, as every list and watch parses its query: `Selectors::parse`
//! (and each half alone), then matching against an object.
//!
//! Invariants: parsing is deterministic (the same text gives the same selector) and a
//! selector that parses matches without panicking; an empty selector matches everything.

use std::collections::BTreeMap;

use orcaops::resources::{Kind, Object};
use orcaops::server::fuzzing::{FieldSelector, LabelSelector, Selectors};
use serde_json::json;

use crate::harness::{Input, Rng, mutate_bytes};

const KEYS: &[&str] = &[
    "app",
    "tier",
    "env",
    "example.com/app",
    "a/b/c",
    "-a",
    "a-",
    "",
    " ",
    "é",
    "metadata.name",
    "metadata.namespace",
    "status.phase",
    "spec.image",
    "k8s.io/",
    "/x",
];
const OPS: &[&str] = &[
    "=", "==", "!=", " in ", " notin ", "!", "", " in (", ")", "(", ",", "=!", "===", " ",
];
const VALUES: &[&str] = &[
    "web", "", "a,b", "(a,b)", "(a)", "()", "x y", "Running", "-", "é", "a.b_c-d",
];

fn soup(rng: &mut Rng) -> String {
    let mut text = String::new();
    for i in 0..rng.usize(1..6) {
        if i > 0 {
            text.push_str([",", ", ", ",,", " , ", "("][rng.usize(..5)]);
        }
        if rng.u8(..5) == 0 {
            text.push('!');
        }
        text.push_str(KEYS[rng.usize(..KEYS.len())]);
        text.push_str(OPS[rng.usize(..OPS.len())]);
        text.push_str(VALUES[rng.usize(..VALUES.len())]);
        if rng.u8(..4) == 0 {
            text.push_str(OPS[rng.usize(..OPS.len())]);
        }
    }
    if rng.u8(..20) == 0 {
        text = text.repeat(rng.usize(2..200));
    }
    text
}

pub fn generate(rng: &mut Rng, corpus: &[Input]) -> Input {
    let bytes = if rng.bool() {
        soup(rng).into_bytes()
    } else {
        let mut bytes = corpus[rng.usize(..corpus.len())].bytes.clone();
        mutate_bytes(rng, &mut bytes, corpus);
        bytes
    };
    Input::new("", bytes)
}

fn object() -> Object {
    let mut obj = Object::new(Kind::Job, "default", "web-1", json!({"image": "busybox"}));
    obj.metadata.labels = BTreeMap::from([
        ("app".to_string(), "web".to_string()),
        ("example.com/app".to_string(), "a.b_c-d".to_string()),
        ("env".to_string(), "a".to_string()),
    ]);
    obj.status = json!({"phase": "Running"});
    obj
}

pub fn check(input: &Input) {
    let text = input.text();
    let obj = object();
    let labels = LabelSelector::parse(&text);
    assert_eq!(
        labels.as_ref().ok(),
        LabelSelector::parse(&text).as_ref().ok(),
        "parsing the same label selector twice differs"
    );
    if let Ok(selector) = &labels {
        let matched = selector.matches(&obj.metadata.labels);
        assert!(
            !selector.is_empty() || matched,
            "an empty label selector must match all"
        );
        selector.matches(&BTreeMap::new());
    }
    if let Ok(selector) = FieldSelector::parse(&text) {
        let matched = selector.matches(&obj);
        assert!(
            !selector.is_empty() || matched,
            "an empty field selector must match all"
        );
    }
    // The same text as both halves of a query, and each half alone.
    for (l, f) in [
        (Some(&*text), Some(&*text)),
        (Some(&*text), None),
        (None, Some(&*text)),
    ] {
        if let Ok(selectors) = Selectors::parse(l, f) {
            let matched = selectors.matches(&obj);
            assert!(
                !selectors.is_empty() || matched,
                "empty selectors must match all"
            );
        }
    }
}
