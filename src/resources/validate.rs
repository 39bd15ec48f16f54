//! Validation beyond the schema: names, unique steps, quantities, durations, cron, DAG shape.
//!
//! Pure: it reads an [`Object`] and returns every problem it finds, each with the field path
//! (`spec.jobs[2].job.steps[0].name`), what is wrong and how to fix it. Every write path (folder,
//! CLI, REST) runs it, so a problem is reported before anything is stored.

mod job;
mod others;
mod workflow;

use std::collections::HashSet;
use std::fmt;

use serde::de::DeserializeOwned;

use super::{Kind, Object, quantity, registry};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.message, self.fix)
    }
}

/// All problems with this object (empty = valid).
pub fn validate(obj: &Object) -> Vec<FieldError> {
    let mut p = Problems::default();
    metadata(&mut p, obj);
    registry::check_spec(obj.kind, &mut p, obj);
    p.list
}

/// The rules of one kind's spec beyond its schema. Each spec type implements it beside its
/// rules; the registry finds it through the kind's `HasSpec::Spec`. A kind whose schema says
/// all there is to say writes an empty `impl`, so that having no rules is a stated choice.
pub(crate) trait CheckSpec {
    fn check(&self, _p: &mut Problems) {}
}

/// Reads the spec as its kind's type (objects from the REST API arrive untyped), then checks it.
pub(super) fn typed<S: DeserializeOwned + CheckSpec>(p: &mut Problems, obj: &Object) {
    match serde_json::from_value::<S>(obj.spec.clone()) {
        Ok(spec) => spec.check(p),
        Err(e) => p.push(
            "spec",
            format!("the spec does not match the {} schema: {e}", obj.kind),
            format!(
                "correct the spec; `orcaops crds` prints the {} schema",
                obj.kind
            ),
        ),
    }
}

/// The problems found so far.
#[derive(Default)]
pub(crate) struct Problems {
    list: Vec<FieldError>,
}

impl Problems {
    pub(crate) fn push(
        &mut self,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.list.push(FieldError {
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }
}

/// The longest name of a Job. Names of containers and pods derive from it with a run and
/// attempt suffix, and Kubernetes stops names and label values at 63 characters.
pub const MAX_JOB_NAME: usize = 52;
/// The longest DNS-1123 label.
pub const MAX_NAME: usize = 63;
/// A bound on every duration in seconds (ten years): larger values are mistakes, and would
/// overflow when added to a timestamp.
pub const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Why `name` is not a DNS-1123 label of at most `max` characters, if it is not.
pub(crate) fn dns_label_problem(name: &str, max: usize) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > max {
        return Some(format!(
            "is {} characters long, over the limit of {max}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "contains {c:?}: only lowercase letters, digits and '-' are allowed"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// A name lowercased with every disallowed character turned into '-': what to suggest instead.
pub(crate) fn dns_label_suggestion(name: &str, max: usize) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(max);
    let out = out.trim_matches('-');
    if out.is_empty() {
        "my-name".into()
    } else {
        out.to_string()
    }
}

/// Checks a name that must be a DNS-1123 label.
pub(crate) fn dns_label(p: &mut Problems, field: &str, what: &str, name: &str, max: usize) {
    if let Some(problem) = dns_label_problem(name, max) {
        p.push(
            field,
            format!("{what} \"{name}\" {problem}"),
            format!("use a name such as \"{}\"", dns_label_suggestion(name, max)),
        );
    }
}

fn metadata(p: &mut Problems, obj: &Object) {
    let name = &obj.metadata.name;
    if obj.kind == Kind::Job && name.len() > MAX_JOB_NAME && name.len() <= MAX_NAME {
        p.push(
            "metadata.name",
            format!(
                "Job name \"{name}\" is {} characters long; Job names are at most {MAX_JOB_NAME} so that the \
                 container and pod names made from it (with a run and attempt suffix) stay within \
                 Kubernetes' 63-character limit",
                name.len()
            ),
            format!("shorten the name to {MAX_JOB_NAME} characters or fewer"),
        );
    } else {
        let max = if obj.kind == Kind::Job {
            MAX_JOB_NAME
        } else {
            MAX_NAME
        };
        dns_label(p, "metadata.name", &format!("{} name", obj.kind), name, max);
    }
    match (&obj.metadata.namespace, obj.kind.namespaced()) {
        (Some(ns), true) => dns_label(
            p,
            "metadata.namespace",
            "namespace (workspace)",
            ns,
            MAX_NAME,
        ),
        (None, true) => p.push(
            "metadata.namespace",
            format!(
                "a {} belongs to a namespace (workspace), and none is set",
                obj.kind
            ),
            "set metadata.namespace, for example to \"default\"",
        ),
        (Some(ns), false) => p.push(
            "metadata.namespace",
            format!(
                "{} is cluster-scoped, so it has no namespace (it was given \"{ns}\")",
                obj.kind
            ),
            "remove metadata.namespace",
        ),
        (None, false) => {}
    }
    for (key, value) in &obj.metadata.labels {
        let field = format!("metadata.labels[\"{key}\"]");
        if let Some(problem) = label_key_problem(key) {
            p.push(
                &field,
                format!("label key \"{key}\" {problem}"),
                "use a key such as \"app\" or \"example.com/team\"",
            );
        }
        if let Some(problem) = label_value_problem(value) {
            p.push(
                &field,
                format!("label value \"{value}\" {problem}"),
                "use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit; \
                 put longer text in an annotation",
            );
        }
    }
    for key in obj.metadata.annotations.keys() {
        if let Some(problem) = label_key_problem(key) {
            p.push(
                format!("metadata.annotations[\"{key}\"]"),
                format!("annotation key \"{key}\" {problem}"),
                "use a key such as \"note\" or \"example.com/owner\"",
            );
        }
    }
}

/// Why `s` is not a label name (`[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63), if not.
fn label_name_problem(s: &str) -> Option<String> {
    if s.len() > MAX_NAME {
        return Some(format!(
            "is {} characters long, over the limit of {MAX_NAME}",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "contains {c:?}: only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(s.chars().next()) || !edge_ok(s.chars().last()) {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// Label and annotation keys: an optional DNS-subdomain prefix and '/', then a label name.
fn label_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("is empty".into());
    }
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix
                .split('.')
                .all(|part| dns_label_problem(part, MAX_NAME).is_none());
        if !valid {
            return Some(format!(
                "has the prefix \"{prefix}\", which is not a lowercase DNS name"
            ));
        }
    }
    if name.is_empty() {
        return Some("has nothing after its '/'".into());
    }
    label_name_problem(name)
}

fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        label_name_problem(value)
    }
}

/// Checks a list of environment variables: valid, unique names.
pub(crate) fn env_vars(p: &mut Problems, field: &str, env: &[super::common::EnvVar]) {
    let mut seen = HashSet::new();
    for (i, var) in env.iter().enumerate() {
        if let Some(reference) = var.secret_ref() {
            if !var.value.is_empty() {
                p.push(
                    format!("{field}[{i}]"),
                    format!(
                        "environment variable \"{}\" has both value and valueFrom",
                        var.name
                    ),
                    "keep one: value for a literal, or valueFrom.secretKeyRef {name, key} to read a Secret",
                );
            }
            if let Some(problem) = dns_label_problem(&reference.name, MAX_NAME) {
                p.push(
                    format!("{field}[{i}].valueFrom.secretKeyRef.name"),
                    format!("secret name \"{}\" {problem}", reference.name),
                    "name a Secret of the same namespace (kubectl get secrets)",
                );
            }
            if reference.key.is_empty() {
                p.push(
                    format!("{field}[{i}].valueFrom.secretKeyRef.key"),
                    "is empty",
                    "name the key of the Secret's data to read (kubectl describe secret NAME lists them)",
                );
            }
        }
        let field = format!("{field}[{i}].name");
        let name = &var.name;
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            p.push(
                &field,
                format!("\"{name}\" is not a valid environment variable name"),
                "use letters, digits and '_', not starting with a digit (for example \"BUILD_MODE\")",
            );
        } else if !seen.insert(name.as_str()) {
            p.push(
                &field,
                format!("environment variable \"{name}\" is set twice"),
                "keep one entry per variable",
            );
        }
    }
}

/// Checks CPU and memory quantities.
pub(crate) fn resources(
    p: &mut Problems,
    field: &str,
    resources: Option<&super::common::Resources>,
) {
    let Some(r) = resources else { return };
    if let Some(cpu) = &r.cpu
        && let Err(e) = quantity::parse_cpu_millis(cpu)
    {
        p.push(
            format!("{field}.cpu"),
            e,
            "use cores (\"1\", \"0.5\") or millicores (\"500m\")",
        );
    }
    if let Some(memory) = &r.memory
        && let Err(e) = quantity::parse_memory_bytes(memory)
    {
        p.push(
            format!("{field}.memory"),
            e,
            "use bytes with a suffix, such as \"256Mi\" or \"1Gi\"",
        );
    }
}

/// Checks a duration in seconds: above zero (unless `zero_ok`) and at most [`MAX_SECONDS`].
pub(crate) fn seconds(p: &mut Problems, field: &str, value: Option<u64>, zero_ok: bool) {
    match value {
        Some(0) if !zero_ok => p.push(
            field,
            "must be greater than 0",
            "give a number of seconds above 0, or remove the field",
        ),
        Some(s) if s > MAX_SECONDS => p.push(
            field,
            format!("{s} seconds is more than ten years"),
            format!("use at most {MAX_SECONDS} seconds"),
        ),
        _ => {}
    }
}

/// Checks that a path is absolute.
pub(crate) fn absolute_path(p: &mut Problems, field: &str, what: &str, path: &str) {
    if !path.starts_with('/') {
        p.push(
            field,
            format!("{what} \"{path}\" is not an absolute path"),
            format!(
                "write it from the root, such as \"/{}\"",
                path.trim_start_matches("./")
            ),
        );
    }
}

#[cfg(test)]
mod tests;
