//! The Kubernetes rules for structural schemas, which the API server enforces on every
//! `apiextensions.k8s.io/v1` CRD (it refuses a CRD whose schema breaks them):
//!
//! 1. the root, every property, every `additionalProperties` and every `items` schema has a
//!    `type`, unless it sets `x-kubernetes-int-or-string: true` or
//!    `x-kubernetes-preserve-unknown-fields: true`;
//! 2. a field or item named inside `allOf`, `anyOf`, `oneOf` or `not` is also specified
//!    outside of them;
//! 3. inside those junctors nothing sets `type`, `default`, `additionalProperties`,
//!    `nullable` or `description`, except the two patterns of
//!    `x-kubernetes-int-or-string: true`;
//! 4. `metadata` at the root restricts at most `name` and `generateName`.
//!
//! Besides the violations, [`check`] collects every path where
//! `x-kubernetes-preserve-unknown-fields` appears: those fields escape validation and
//! pruning, so the test keeps them to an explicit list.

use serde_json::{Map, Value};

const JUNCTORS: &[&str] = &["allOf", "anyOf", "oneOf"];
const FORBIDDEN_IN_JUNCTORS: &[&str] = &[
    "type",
    "default",
    "additionalProperties",
    "nullable",
    "description",
];

#[derive(Debug, Default)]
pub struct Findings {
    /// Each broken rule, with the path of the schema that breaks it.
    pub violations: Vec<String>,
    /// Every path with `x-kubernetes-preserve-unknown-fields`, as `.spec.a[*].b{*}`.
    pub preserve_unknown_fields: Vec<String>,
}

/// Checks an `openAPIV3Schema`.
pub fn check(root: &Value) -> Findings {
    let mut findings = Findings::default();
    walk(root, "", false, &mut findings);
    if let Some(metadata) = root.pointer("/properties/metadata") {
        check_metadata(metadata, &mut findings);
    }
    findings.preserve_unknown_fields.sort();
    findings
}

fn walk(schema: &Value, path: &str, in_junctor: bool, findings: &mut Findings) {
    let shown = if path.is_empty() { "<root>" } else { path };
    let Some(schema) = schema.as_object() else {
        findings
            .violations
            .push(format!("{shown}: a schema must be an object"));
        return;
    };
    let flag = |key: &str| schema.get(key) == Some(&Value::Bool(true));
    if schema.contains_key("x-kubernetes-preserve-unknown-fields") {
        findings.preserve_unknown_fields.push(path.to_string());
    }
    if in_junctor {
        for key in FORBIDDEN_IN_JUNCTORS {
            if schema.contains_key(*key) {
                findings.violations.push(format!(
                    "{shown}: `{key}` inside allOf/anyOf/oneOf/not (rule 3)"
                ));
            }
        }
    } else if !schema.contains_key("type")
        && !flag("x-kubernetes-int-or-string")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        findings.violations.push(format!(
            "{shown}: no `type` (and neither x-kubernetes-int-or-string nor x-kubernetes-preserve-unknown-fields) (rule 1)"
        ));
    }
    if schema.contains_key("properties") && schema.contains_key("additionalProperties") {
        findings.violations.push(format!(
            "{shown}: `properties` and `additionalProperties` are mutually exclusive"
        ));
    }

    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            walk(property, &format!("{path}.{name}"), in_junctor, findings);
        }
    }
    match schema.get("items") {
        Some(items @ Value::Object(_)) => walk(items, &format!("{path}[*]"), in_junctor, findings),
        Some(_) => findings.violations.push(format!(
            "{shown}: `items` must be one schema (tuples are not allowed)"
        )),
        None => {}
    }
    if let Some(additional @ Value::Object(_)) = schema.get("additionalProperties") {
        walk(additional, &format!("{path}{{*}}"), in_junctor, findings);
    }

    let int_or_string = flag("x-kubernetes-int-or-string");
    for junctor in JUNCTORS {
        let Some(branches) = schema.get(*junctor) else {
            continue;
        };
        let Some(branches) = branches.as_array() else {
            findings
                .violations
                .push(format!("{shown}: `{junctor}` must be a list"));
            continue;
        };
        for branch in branches {
            if int_or_string && is_int_or_string_pattern(junctor, branch) {
                continue;
            }
            check_branch(schema, branch, path, findings);
        }
    }
    if let Some(not) = schema.get("not") {
        check_branch(schema, not, path, findings);
    }
}

/// `anyOf: [{type: integer}, {type: string}]`, alone or wrapped in an `allOf`: the one
/// place where a type may appear inside a junctor.
fn is_int_or_string_pattern(junctor: &str, branch: &Value) -> bool {
    let is_type = |v: &Value, t: &str| {
        v.as_object()
            .is_some_and(|o| o.len() == 1 && o["type"] == t)
    };
    match junctor {
        "anyOf" => is_type(branch, "integer") || is_type(branch, "string"),
        "allOf" => branch
            .get("anyOf")
            .and_then(Value::as_array)
            .is_some_and(|any| {
                any.len() == 2 && is_type(&any[0], "integer") && is_type(&any[1], "string")
            }),
        _ => false,
    }
}

/// A junctor branch: rule 2 (it names only what the schema outside names) and rule 3.
fn check_branch(outside: &Map<String, Value>, branch: &Value, path: &str, findings: &mut Findings) {
    let shown = if path.is_empty() { "<root>" } else { path };
    if let Some(properties) = branch.get("properties").and_then(Value::as_object) {
        let known = outside.get("properties").and_then(Value::as_object);
        for name in properties.keys() {
            if !known.is_some_and(|k| k.contains_key(name)) {
                findings.violations.push(format!(
                    "{shown}.{name}: named inside a junctor but not outside it (rule 2)"
                ));
            }
        }
    }
    if branch.get("items").is_some() && outside.get("items").is_none() {
        findings.violations.push(format!(
            "{shown}[*]: items inside a junctor but not outside it (rule 2)"
        ));
    }
    walk(branch, path, true, findings);
}

/// Rule 4: the API server owns `metadata`; a CRD may only restrict its name.
fn check_metadata(metadata: &Value, findings: &mut Findings) {
    let Some(metadata) = metadata.as_object() else {
        return;
    };
    for key in metadata.keys() {
        match key.as_str() {
            "type" => {}
            "properties" => {
                for name in metadata[key].as_object().into_iter().flat_map(Map::keys) {
                    if name != "name" && name != "generateName" {
                        findings.violations.push(format!(
                            ".metadata.{name}: only name and generateName may be restricted (rule 4)"
                        ));
                    }
                }
            }
            other => findings
                .violations
                .push(format!(".metadata: `{other}` is not allowed (rule 4)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(properties: Value) -> Value {
        json!({ "type": "object", "properties": properties })
    }

    #[test]
    fn typed_schemas_pass() {
        let schema = object(json!({
            "spec": object(json!({
                "list": { "type": "array", "items": { "type": "string" } },
                "map": { "type": "object", "additionalProperties": { "type": "integer" } },
                "port": {
                    "x-kubernetes-int-or-string": true,
                    "anyOf": [{ "type": "integer" }, { "type": "string" }]
                }
            }))
        }));
        let findings = check(&schema);
        assert!(findings.violations.is_empty(), "{:?}", findings.violations);
        assert!(findings.preserve_unknown_fields.is_empty());
    }

    #[test]
    fn a_schema_without_type_is_named_by_its_path() {
        let schema = object(json!({
            "spec": object(json!({
                "list": { "type": "array", "items": { "description": "untyped" } },
                "map": { "type": "object", "additionalProperties": {} }
            }))
        }));
        let violations = check(&schema).violations;
        assert_eq!(violations.len(), 2, "{violations:?}");
        for path in [".spec.list[*]", ".spec.map{*}"] {
            let expected = format!("{path}: no `type`");
            assert!(
                violations.iter().any(|v| v.starts_with(&expected)),
                "{expected:?} missing from {violations:?}"
            );
        }
    }

    #[test]
    fn types_and_defaults_inside_junctors_are_violations() {
        // What schemars makes of an untagged enum: the branches carry their own types.
        let schema = object(json!({
            "value": {
                "anyOf": [
                    { "type": "string", "nullable": true },
                    { "type": "object", "properties": { "extra": { "type": "string" } } }
                ]
            }
        }));
        let violations = check(&schema).violations;
        let expected = [
            ".value: no `type`",
            ".value: `type` inside",
            ".value: `nullable` inside",
            ".value.extra: named inside a junctor but not outside it",
            ".value.extra: `type` inside",
        ];
        for expected in expected {
            assert!(
                violations.iter().any(|v| v.starts_with(expected)),
                "{expected:?} missing from {violations:?}"
            );
        }
    }

    #[test]
    fn preserve_unknown_fields_is_allowed_untyped_and_reported() {
        let schema = object(json!({
            "spec": object(json!({
                "raw": { "x-kubernetes-preserve-unknown-fields": true },
                "items": { "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } }
            }))
        }));
        let findings = check(&schema);
        assert!(findings.violations.is_empty(), "{:?}", findings.violations);
        assert_eq!(
            findings.preserve_unknown_fields,
            [".spec.items[*]", ".spec.raw"]
        );
    }

    #[test]
    fn metadata_may_only_restrict_the_name() {
        let schema = object(json!({
            "metadata": object(json!({ "name": { "type": "string", "maxLength": 63 }, "labels": { "type": "object" } }))
        }));
        let violations = check(&schema).violations;
        assert_eq!(
            violations,
            [".metadata.labels: only name and generateName may be restricted (rule 4)"]
        );
    }
}
