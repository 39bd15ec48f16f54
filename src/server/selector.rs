//! Label and field selectors, parsed once per request and matched against objects, with
//! the grammar and the field set of the Kubernetes API. The label half is
//! `resources::selector`, which the store's label index answers too.

use serde_json::Value;

use super::error::ApiError;
use crate::resources::Object;
pub use crate::resources::selector::LabelSelector;

/// The fields `fieldSelector` can name, as for custom resources in Kubernetes plus the
/// phase every orcaops status has.
pub const SELECTABLE_FIELDS: [&str; 3] = ["metadata.name", "metadata.namespace", "status.phase"];

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
            labels: LabelSelector::parse(labels.unwrap_or(""))
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
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

    #[test]
    fn malformed_label_selectors_are_bad_requests() {
        for bad in ["app in ()", "=web", "app=we b", "!", "a b"] {
            let err = Selectors::parse(Some(bad), None).unwrap_err();
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
