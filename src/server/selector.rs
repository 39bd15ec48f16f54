//! Label and field selectors, parsed once per request and matched against objects, with
//! the grammar and the field set of the Kubernetes API.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::ApiError;
use crate::resources::Object;

/// The fields `fieldSelector` can name, as for custom resources in Kubernetes plus the
/// phase every orcaops status has.
pub const SELECTABLE_FIELDS: [&str; 3] = ["metadata.name", "metadata.namespace", "status.phase"];

#[derive(Clone, Debug, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &str| labels.get(k).map(String::as_str);
        match self {
            Self::Equals(k, v) => get(k) == Some(v),
            // As in Kubernetes, `k!=v` also matches objects without the label.
            Self::NotEquals(k, v) => get(k) != Some(v),
            Self::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Self::NotIn(k, vs) => get(k).is_none_or(|v| vs.iter().all(|x| x != v)),
            Self::Exists(k) => labels.contains_key(k),
            Self::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// `app=web,tier!=db,env in (a,b),env notin (c),release,!canary`: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, ApiError> {
        let bad = |term: &str, why: &str| {
            ApiError::bad_request(format!(
                "labelSelector \"{text}\": \"{term}\" {why}; use key=value, key!=value, \"key in (a,b)\", \"key notin (a,b)\", key or !key, separated by commas"
            ))
        };
        let mut requirements = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = term.strip_prefix('!') {
                LabelRequirement::DoesNotExist(
                    label_key(key.trim()).ok_or_else(|| bad(term, "has an invalid key"))?,
                )
            } else if let Some((key, values, negated)) = set_requirement(term) {
                let key = label_key(key).ok_or_else(|| bad(term, "has an invalid key"))?;
                let values = values
                    .iter()
                    .map(|v| label_value(v).ok_or_else(|| bad(term, "has an invalid value")))
                    .collect::<Result<Vec<_>, _>>()?;
                if values.is_empty() {
                    return Err(bad(term, "lists no values"));
                }
                if negated {
                    LabelRequirement::NotIn(key, values)
                } else {
                    LabelRequirement::In(key, values)
                }
            } else if let Some((key, value)) = term.split_once("!=") {
                LabelRequirement::NotEquals(
                    label_key(key.trim()).ok_or_else(|| bad(term, "has an invalid key"))?,
                    label_value(value.trim()).ok_or_else(|| bad(term, "has an invalid value"))?,
                )
            } else if let Some((key, value)) = term.split_once('=') {
                let value = value.strip_prefix('=').unwrap_or(value);
                LabelRequirement::Equals(
                    label_key(key.trim()).ok_or_else(|| bad(term, "has an invalid key"))?,
                    label_value(value.trim()).ok_or_else(|| bad(term, "has an invalid value"))?,
                )
            } else {
                LabelRequirement::Exists(
                    label_key(term).ok_or_else(|| bad(term, "is not a requirement"))?,
                )
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits at commas outside parentheses, so that `env in (a,b)` stays one term.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

/// `key in (a, b)` or `key notin (a, b)`: the key, the values and whether it is `notin`.
fn set_requirement(term: &str) -> Option<(&str, Vec<&str>, bool)> {
    let open = term.find('(')?;
    let inner = term[open + 1..].strip_suffix(')')?;
    let head = term[..open].trim_end();
    let (key, negated) = if let Some(key) = head.strip_suffix(" notin") {
        (key, true)
    } else {
        (head.strip_suffix(" in")?, false)
    };
    let values = inner
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    Some((key.trim(), values, negated))
}

fn label_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_string())
}

fn label_value(value: &str) -> Option<String> {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then(|| value.to_string())
}

#[derive(Clone, Debug, PartialEq)]
struct FieldRequirement {
    field: &'static str,
    value: String,
    equal: bool,
}

/// `metadata.name=build,status.phase!=Succeeded`: every term must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(Vec<FieldRequirement>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<FieldSelector, ApiError> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "fieldSelector \"{text}\": \"{term}\" is not field=value, field==value or field!=value"
                )));
            };
            let field = field.trim();
            let Some(field) = SELECTABLE_FIELDS.iter().find(|f| **f == field) else {
                return Err(ApiError::bad_request(format!(
                    "fieldSelector \"{text}\": field \"{field}\" is not supported; the supported fields are {}",
                    SELECTABLE_FIELDS.join(", ")
                )));
            };
            requirements.push(FieldRequirement {
                field,
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector(requirements))
    }

    pub fn matches(&self, obj: &Object) -> bool {
        self.0
            .iter()
            .all(|r| (field_value(obj, r.field) == r.value) == r.equal)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The value of a selectable field; absent ones are the empty string, as in Kubernetes.
fn field_value<'a>(obj: &'a Object, field: &str) -> &'a str {
    match field {
        "metadata.name" => &obj.metadata.name,
        "metadata.namespace" => obj.metadata.namespace.as_deref().unwrap_or(""),
        "status.phase" => obj
            .status
            .get("phase")
            .and_then(Value::as_str)
            .unwrap_or(""),
        _ => "",
    }
}

/// The label and field selectors of one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(labels.unwrap_or(""))?,
            fields: FieldSelector::parse(fields.unwrap_or(""))?,
        })
    }

    pub fn matches(&self, obj: &Object) -> bool {
        self.labels.matches(&obj.metadata.labels) && self.fields.matches(obj)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::Kind;

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "db".to_string()),
            ("orcaops.dev/kind".to_string(), "Job".to_string()),
        ])
    }

    fn selects(selector: &str) -> bool {
        LabelSelector::parse(selector).unwrap().matches(&labels())
    }

    #[test]
    fn equality_requirements() {
        assert!(selects(""));
        assert!(selects("app=web"));
        assert!(selects("app==web, tier"));
        assert!(selects("orcaops.dev/kind=Job"));
        assert!(!selects("app=api"));
        assert!(selects("app!=api,!missing"));
        assert!(
            selects("missing!=x"),
            "!= matches objects without the label"
        );
        assert!(!selects("missing"));
        assert!(!selects("!app"));
    }

    #[test]
    fn set_requirements() {
        assert!(selects("app in (api, web)"));
        assert!(!selects("app in (api)"));
        assert!(selects("app notin (api),tier in (db)"));
        assert!(!selects("app notin (web,api)"));
        assert!(selects("missing notin (a)"));
        assert!(!selects("missing in (a)"));
    }

    #[test]
    fn malformed_label_selectors_are_bad_requests() {
        for bad in ["app in ()", "=web", "app=we b", "!", "a b"] {
            let err = LabelSelector::parse(bad).unwrap_err();
            assert_eq!(err.code, axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert!(err.message.contains(bad), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn field_selectors() {
        let mut obj = Object::new(Kind::Job, "team", "build", json!({}));
        obj.status = json!({"phase": "Running"});
        let sel = |s: &str| FieldSelector::parse(s).unwrap().matches(&obj);
        assert!(sel(""));
        assert!(sel("metadata.name=build"));
        assert!(sel("metadata.name==build,metadata.namespace=team"));
        assert!(sel("status.phase!=Succeeded"));
        assert!(!sel("status.phase=Succeeded"));
        assert!(!sel("metadata.name!=build"));
        obj.status = Value::Null;
        let sel = |s: &str| FieldSelector::parse(s).unwrap().matches(&obj);
        assert!(sel("status.phase="), "a missing field is the empty string");
        let policy = Object::new(Kind::Policy, "", "limits", json!({}));
        assert!(
            FieldSelector::parse("metadata.namespace=")
                .unwrap()
                .matches(&policy)
        );
    }

    #[test]
    fn unknown_fields_name_the_supported_ones() {
        let err = FieldSelector::parse("spec.image=busybox").unwrap_err();
        assert_eq!(err.code, axum::http::StatusCode::BAD_REQUEST);
        for field in SELECTABLE_FIELDS {
            assert!(err.message.contains(field), "{}", err.message);
        }
        assert!(FieldSelector::parse("metadata.name").is_err());
    }
}
