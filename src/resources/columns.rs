//! The columns a kind is listed with: its CRD's printer columns, as `kubectl get` shows
//! them. The REST facade's Tables, `orcaops get` and MCP's lists all take their columns
//! from here, so a column added to a kind's derive shows everywhere; each renders the
//! cells for its reader (the facade as the API server types them, the CLI as text).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceColumnDefinition;
use serde_json::Value;

use super::{Kind, registry};

/// The columns of `kind` after NAME: those of priority 0, and with `wide` the others too
/// (as `-o wide`).
pub fn columns(
    kind: Kind,
    wide: bool,
) -> impl Iterator<Item = &'static CustomResourceColumnDefinition> {
    registry::printer_columns(kind)
        .iter()
        .filter(move |c| wide || c.priority.unwrap_or(0) == 0)
}

/// A column's header as kubectl prints it: `Phase` -> `PHASE`.
pub fn header(column: &CustomResourceColumnDefinition) -> String {
    column.name.to_ascii_uppercase()
}

/// Evaluates a simple JSONPath (`.status.phase`, `{.a.b[0].c}`) against `value`.
pub fn find<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut current = value;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let index: usize = index.strip_suffix(']')?.parse().ok()?;
            current = current.get(index)?;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_adds_the_columns_of_a_higher_priority() {
        let names = |wide| columns(Kind::Job, wide).map(header).collect::<Vec<_>>();
        assert_eq!(names(false), ["PHASE", "RUNS", "ATTEMPT", "AGE"]);
        assert_eq!(
            names(true),
            ["PHASE", "RUNS", "ATTEMPT", "SUMMARY", "ANOMALY", "AGE"]
        );
    }

    #[test]
    fn paths_read_fields_and_indexes() {
        let v = serde_json::json!({"a": {"b": [{"c": 3}]}, "s": "x"});
        assert_eq!(find(&v, ".a.b[0].c"), Some(&serde_json::json!(3)));
        assert_eq!(find(&v, "{.s}"), Some(&serde_json::json!("x")));
        assert_eq!(find(&v, ".a.missing"), None);
    }
}
