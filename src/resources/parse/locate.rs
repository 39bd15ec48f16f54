//! Where a field sits in a document: a tree of source spans, read only when an error needs a line.
//!
//! Validation runs on typed values that have lost their positions, and reports field paths such
//! as `spec.steps[1].name`. This tree maps such a path back to the line and column of the key
//! (or list item) in the YAML text.

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// One YAML node with the positions of its children; scalars keep no value.
enum Node {
    Leaf,
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Leaf)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Node::Map(entries))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

/// One step of a field path: a mapping key or a list index.
#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Splits `spec.jobs[2].job.steps[0]` or `metadata.labels["a.b/c"]` into segments.
fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[\"") {
            let Some(end) = after.find("\"]") else { break };
            out.push(Segment::Key(after[..end].to_string()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else { break };
            let Ok(index) = after[..end].parse() else {
                break;
            };
            out.push(Segment::Index(index));
            rest = &after[end + 1..];
        } else {
            let rest_key = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_key.find(['.', '[']).unwrap_or(rest_key.len());
            if end > 0 {
                out.push(Segment::Key(rest_key[..end].to_string()));
            }
            rest = &rest_key[end..];
        }
    }
    out
}

/// The positions of every key and list item of one document.
pub(super) struct LocationIndex {
    root: Spanned<Node>,
}

impl LocationIndex {
    /// Reads the document's positions; `None` when it is not valid YAML.
    pub fn build(text: &str) -> Option<Self> {
        serde_saphyr::from_str(text)
            .ok()
            .map(|root| LocationIndex { root })
    }

    /// Line and column (in the document's text) of `path`, or of its deepest ancestor present
    /// in the document when the path itself is absent (a missing field points at its parent).
    pub fn find(&self, path: &str) -> Option<(u64, u64)> {
        let mut location = self.root.referenced;
        let mut node = &self.root.value;
        for segment in segments(path) {
            let next = match (node, &segment) {
                (Node::Map(entries), Segment::Key(key)) => entries
                    .iter()
                    .find(|(k, _)| &k.value == key)
                    .map(|(k, v)| (k.referenced, v)),
                (Node::Seq(items), Segment::Index(i)) => items.get(*i).map(|v| (v.referenced, v)),
                _ => None,
            };
            let Some((found, child)) = next else { break };
            location = found;
            node = &child.value;
        }
        (location.line() > 0).then(|| (location.line(), location.column()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_keys_and_indices() {
        assert_eq!(
            segments("spec.jobs[2].job.steps[0]"),
            vec![
                Segment::Key("spec".into()),
                Segment::Key("jobs".into()),
                Segment::Index(2),
                Segment::Key("job".into()),
                Segment::Key("steps".into()),
                Segment::Index(0),
            ]
        );
        assert_eq!(
            segments("metadata.labels[\"a.b/c\"]"),
            vec![
                Segment::Key("metadata".into()),
                Segment::Key("labels".into()),
                Segment::Key("a.b/c".into())
            ]
        );
    }

    #[test]
    fn finds_keys_items_and_falls_back_to_the_parent() {
        let text = "spec:\n  steps:\n    - name: a\n    - name: b\n      run: x\n";
        let index = LocationIndex::build(text).unwrap();
        assert_eq!(index.find("spec"), Some((1, 1)));
        assert_eq!(index.find("spec.steps[1].name"), Some((4, 7)));
        assert_eq!(index.find("spec.steps[1].run"), Some((5, 7)));
        assert_eq!(index.find("spec.steps[1].command"), Some((4, 7)));
        assert_eq!(index.find("spec.image"), Some((1, 1)));
    }
}
