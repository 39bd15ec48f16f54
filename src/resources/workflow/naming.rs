//! The names a run gives its nodes and their Jobs: deterministic (a restarted controller
//! finds the Job it made by name), DNS-safe, and shortened with a hash when long.

use sha2::{Digest, Sha256};

use super::WorkflowSpec;
use super::matrix::Combination;
use crate::resources::validate::{MAX_JOB_NAME, MAX_NAME};

/// One node of a run: a node of the spec, or one combination of its matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct RunNode {
    /// `test`, or `test-shard-1` for a combination.
    pub name: String,
    /// The index of its node in `spec.jobs`.
    pub index: usize,
    pub matrix: Combination,
}

/// Every node of a run, in the order of `spec.jobs` and each matrix's combinations.
pub fn expand(spec: &WorkflowSpec) -> Vec<RunNode> {
    let mut out = Vec::new();
    for (index, node) in spec.jobs.iter().enumerate() {
        let combos = node.matrix.expand();
        let names = combination_names(&node.name, &combos, node.matrix.is_empty());
        for (name, matrix) in names.into_iter().zip(combos) {
            out.push(RunNode {
                name,
                index,
                matrix,
            });
        }
    }
    out
}

/// The names of a node's combinations: `<node>-<key>-<value>...` in key order, made
/// DNS-safe; when that is longer than 63 characters, or two combinations would share a
/// name once made safe, `<node>-<hash of the combination>`.
fn combination_names(node: &str, combos: &[Combination], plain: bool) -> Vec<String> {
    if plain {
        return vec![node.to_string()];
    }
    let mut names: Vec<String> = combos
        .iter()
        .map(|combo| {
            let mut name = node.to_string();
            for (k, v) in combo {
                name.push('-');
                name.push_str(&dns_safe(k));
                name.push('-');
                name.push_str(&dns_safe(v));
            }
            name
        })
        .collect();
    for i in 0..names.len() {
        let shared = names.iter().filter(|n| **n == names[i]).count() > 1;
        if shared || names[i].len() > MAX_NAME {
            let text: Vec<String> = combos[i].iter().map(|(k, v)| format!("{k}={v}")).collect();
            names[i] = with_hash(node, &text.join("\n"), MAX_NAME);
        }
    }
    names
}

/// The Job of `node` in `run` of `workflow`: `<workflow>-<run>-<node>`, at most
/// [`MAX_JOB_NAME`] characters (a Job's container and pod names add to it); a longer one
/// keeps its start and ends with a hash of the whole name.
pub fn job_name(workflow: &str, run: u32, node: &str) -> String {
    let full = format!("{workflow}-{run}-{node}");
    if full.len() <= MAX_JOB_NAME {
        full
    } else {
        with_hash(&full, &full, MAX_JOB_NAME)
    }
}

/// `prefix` cut so that `-<8 hex of sha256(text)>` fits in `max`.
fn with_hash(prefix: &str, text: &str, max: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let keep = max - hash.len() - 1;
    let mut cut: String = prefix.chars().take(keep).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    format!("{cut}-{hash}")
}

/// Lowercase letters, digits and '-', with no '-' at either end ("x" when nothing is left).
fn dns_safe(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "x".into()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::validate::dns_label_problem;

    fn combo(pairs: &[(&str, &str)]) -> Combination {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn combinations_are_named_by_their_keys_and_values() {
        let names = combination_names(
            "test",
            &[combo(&[("shard", "1")]), combo(&[("shard", "Two_B")])],
            false,
        );
        assert_eq!(names, vec!["test-shard-1", "test-shard-two-b"]);
        assert_eq!(
            combination_names("build", &[combo(&[])], true),
            vec!["build"]
        );
    }

    #[test]
    fn clashing_or_long_names_get_a_hash() {
        let names = combination_names(
            "test",
            &[
                combo(&[("os", "A")]),
                combo(&[("os", "a")]),
                combo(&[("os", &"v".repeat(80))]),
            ],
            false,
        );
        assert_ne!(names[0], names[1]);
        for name in &names {
            assert!(name.starts_with("test-"), "{name}");
            assert_eq!(dns_label_problem(name, MAX_NAME), None, "{name}");
        }
        assert_eq!(names[2].len(), "test-".len() + 8);
    }

    #[test]
    fn job_names_fit_and_stay_deterministic() {
        assert_eq!(job_name("ci", 3, "build"), "ci-3-build");
        let long = job_name(&"w".repeat(40), 12, &"n".repeat(40));
        assert_eq!(long.len(), MAX_JOB_NAME);
        assert_eq!(dns_label_problem(&long, MAX_JOB_NAME), None);
        assert_eq!(long, job_name(&"w".repeat(40), 12, &"n".repeat(40)));
        assert_ne!(long, job_name(&"w".repeat(40), 13, &"n".repeat(40)));
    }
}
