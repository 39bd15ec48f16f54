//! A node's matrix: axes of values, and GitHub Actions' reserved `include` and `exclude`
//! lists of combinations; [`Matrix::expand`] turns it into the combinations that run.
//!
//! Values are strings. An unquoted integer (`shard: [1, 2]`) is read as its text, since
//! the CRD schema says int-or-string; booleans and fractions are refused with a fix
//! (quote them), so a file reads the same on a cluster as locally.

use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One combination: axis (or included key) to value.
pub type Combination = BTreeMap<String, String>;

/// The reserved keys of a matrix.
pub const INCLUDE: &str = "include";
pub const EXCLUDE: &str = "exclude";

/// A matrix value: a string, or an integer kept as its decimal text.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MatrixValue(pub String);

impl Serialize for MatrixValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MatrixValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = MatrixValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer (quote anything else, such as \"true\")")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MatrixValue, E> {
                Ok(MatrixValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MatrixValue, E> {
                Ok(MatrixValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MatrixValue, E> {
                Ok(MatrixValue(v.to_string()))
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

impl JsonSchema for MatrixValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MatrixValue".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]
        })
    }
}

/// Axes of values, plus `include` and `exclude`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Matrix {
    pub axes: BTreeMap<String, Vec<MatrixValue>>,
    pub include: Vec<BTreeMap<String, MatrixValue>>,
    pub exclude: Vec<BTreeMap<String, MatrixValue>>,
}

impl Matrix {
    pub fn is_empty(&self) -> bool {
        self.axes.is_empty() && self.include.is_empty() && self.exclude.is_empty()
    }

    /// Every key a combination may hold: the axes and the keys `include` adds.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let mut keys: Vec<&str> = self.axes.keys().map(String::as_str).collect();
        for entry in &self.include {
            keys.extend(entry.keys().map(String::as_str));
        }
        keys.sort_unstable();
        keys.dedup();
        keys.into_iter()
    }

    /// The combinations that run, in order: the product of the axes (axes in name order,
    /// values in their order), without those matching an `exclude` entry, then `include`
    /// applied as GitHub Actions does: an entry extends every combination whose axis values
    /// it does not change, and is a combination of its own when it extends none. A node
    /// without a matrix has one empty combination.
    pub fn expand(&self) -> Vec<Combination> {
        if self.is_empty() {
            return vec![Combination::new()];
        }
        let mut combos: Vec<Combination> = if self.axes.is_empty() {
            Vec::new()
        } else {
            let mut combos = vec![Combination::new()];
            for (axis, values) in &self.axes {
                combos = combos
                    .into_iter()
                    .flat_map(|combo| {
                        values.iter().map(move |v| {
                            let mut next = combo.clone();
                            next.insert(axis.clone(), v.0.clone());
                            next
                        })
                    })
                    .collect();
            }
            combos
        };
        let matches = |combo: &Combination, entry: &BTreeMap<String, MatrixValue>| {
            entry.iter().all(|(k, v)| combo.get(k) == Some(&v.0))
        };
        combos.retain(|combo| !self.exclude.iter().any(|entry| matches(combo, entry)));
        let original = combos.len();
        for entry in &self.include {
            let fits = |combo: &Combination| {
                entry
                    .iter()
                    .filter(|(k, _)| self.axes.contains_key(*k))
                    .all(|(k, v)| combo.get(k) == Some(&v.0))
            };
            let mut extended = false;
            for combo in combos.iter_mut().take(original) {
                if fits(combo) {
                    for (k, v) in entry {
                        combo.insert(k.clone(), v.0.clone());
                    }
                    extended = true;
                }
            }
            if !extended {
                combos.push(
                    entry
                        .iter()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect(),
                );
            }
        }
        combos
    }
}

impl Serialize for Matrix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let extra = usize::from(!self.include.is_empty()) + usize::from(!self.exclude.is_empty());
        let mut map = s.serialize_map(Some(self.axes.len() + extra))?;
        for (axis, values) in &self.axes {
            map.serialize_entry(axis, values)?;
        }
        if !self.include.is_empty() {
            map.serialize_entry(INCLUDE, &self.include)?;
        }
        if !self.exclude.is_empty() {
            map.serialize_entry(EXCLUDE, &self.exclude)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Matrix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MatrixVisitor;
        impl<'de> Visitor<'de> for MatrixVisitor {
            type Value = Matrix;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of axis names to lists of values, with optional include and exclude lists")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Matrix, A::Error> {
                let mut matrix = Matrix::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        INCLUDE => matrix.include = map.next_value()?,
                        EXCLUDE => matrix.exclude = map.next_value()?,
                        _ => {
                            let values = map.next_value().map_err(|e: A::Error| {
                                match crate::resources::parse::closest(&key, [INCLUDE, EXCLUDE]) {
                                    Some(reserved) => de::Error::custom(format!(
                                        "{e}; did you mean \"{reserved}\"?"
                                    )),
                                    None => e,
                                }
                            })?;
                            if matrix.axes.insert(key.clone(), values).is_some() {
                                return Err(de::Error::custom(format!(
                                    "matrix axis \"{key}\" is given twice"
                                )));
                            }
                        }
                    }
                }
                Ok(matrix)
            }
        }
        d.deserialize_map(MatrixVisitor)
    }
}

impl JsonSchema for Matrix {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Matrix".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Axes map to lists of values; `include` and `exclude` to lists of maps. One
        // structural schema cannot say both, so the items are left open here and the
        // reader above (and validation) say what is allowed.
        json_schema!({
            "description": "Axes (name to a list of values), and the reserved keys include and exclude (lists of combinations).",
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(yaml: &str) -> Matrix {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn combo(pairs: &[(&str, &str)]) -> Combination {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn integers_are_read_as_text_and_booleans_are_refused() {
        let m = matrix("shard: [1, \"2\", 3]\n");
        assert_eq!(
            m.axes["shard"],
            vec![
                MatrixValue("1".into()),
                MatrixValue("2".into()),
                MatrixValue("3".into())
            ]
        );
        let e = serde_saphyr::from_str::<Matrix>("flag: [true]\n").unwrap_err();
        assert!(e.to_string().contains("quote"), "{e}");
    }

    #[test]
    fn the_product_of_the_axes_in_name_order() {
        let m = matrix("os: [linux, mac]\nshard: [1, 2]\n");
        assert_eq!(
            m.expand(),
            vec![
                combo(&[("os", "linux"), ("shard", "1")]),
                combo(&[("os", "linux"), ("shard", "2")]),
                combo(&[("os", "mac"), ("shard", "1")]),
                combo(&[("os", "mac"), ("shard", "2")]),
            ]
        );
    }

    #[test]
    fn exclude_removes_partial_matches_and_include_extends_or_adds() {
        let m = matrix(
            "os: [linux, mac]\nshard: [1, 2]\nexclude: [{os: mac, shard: 2}]\n\
             include: [{os: linux, extra: big}, {os: windows, shard: 9}]\n",
        );
        assert_eq!(
            m.expand(),
            vec![
                combo(&[("extra", "big"), ("os", "linux"), ("shard", "1")]),
                combo(&[("extra", "big"), ("os", "linux"), ("shard", "2")]),
                combo(&[("os", "mac"), ("shard", "1")]),
                combo(&[("os", "windows"), ("shard", "9")]),
            ]
        );
        assert_eq!(m.keys().collect::<Vec<_>>(), vec!["extra", "os", "shard"]);
    }

    #[test]
    fn no_matrix_is_one_combination_and_include_alone_lists_them() {
        assert_eq!(Matrix::default().expand(), vec![Combination::new()]);
        let m = matrix("include: [{a: p}, {a: q}]\n");
        assert_eq!(m.expand(), vec![combo(&[("a", "p")]), combo(&[("a", "q")])]);
    }

    #[test]
    fn it_round_trips_through_json() {
        let m = matrix("shard: [1, 2]\nexclude: [{shard: 2}]\n");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"shard": ["1", "2"], "exclude": [{"shard": "2"}]})
        );
        assert_eq!(serde_json::from_value::<Matrix>(json).unwrap(), m);
    }
}
