//! Label selectors, with the grammar of the Kubernetes API: what a list or watch asks
//! for in `labelSelector`, and what controllers look objects up by. Here, below every
//! layer that uses them, so that the local store can answer one from its label index
//! and the REST facade and the controllers build them the same way.

use std::collections::BTreeMap;

/// One term of a [`LabelSelector`].
#[derive(Clone, Debug, PartialEq)]
pub enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelRequirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
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

/// A label selector the caller wrote wrong; the message quotes the selector and the term
/// and lists the forms that are accepted.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// `app=web,tier!=db,env in (a,b),env notin (c),release,!canary`: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelRequirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let bad = |term: &str, why: &str| {
            SelectorError(format!(
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

    /// The selector of objects whose label `key` is `value`.
    pub fn equals(key: &str, value: &str) -> LabelSelector {
        LabelSelector(vec![LabelRequirement::Equals(
            key.to_string(),
            value.to_string(),
        )])
    }

    /// A selector of these requirements, all of which must hold.
    pub fn of(requirements: Vec<LabelRequirement>) -> LabelSelector {
        LabelSelector(requirements)
    }

    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.0
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn malformed_label_selectors_quote_the_term() {
        for bad in ["app in ()", "=web", "app=we b", "!", "a b"] {
            let err = LabelSelector::parse(bad).unwrap_err();
            assert!(err.0.contains(bad), "{bad}: {err}");
            assert!(err.0.contains("key=value"), "{bad}: {err}");
        }
    }

    #[test]
    fn built_selectors_equal_parsed_ones() {
        assert_eq!(
            LabelSelector::equals("orcaops.dev/workflow", "ci"),
            LabelSelector::parse("orcaops.dev/workflow=ci").unwrap()
        );
        assert_eq!(
            LabelSelector::of(vec![LabelRequirement::In(
                "a".into(),
                vec!["x".into(), "y".into()]
            )]),
            LabelSelector::parse("a in (x,y)").unwrap()
        );
    }
}
