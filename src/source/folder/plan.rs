//! The pure decision of the folder source: from what the files declare and who owns what in
//! the store, which objects to apply, which to delete, and which declarations clash.

use std::collections::{BTreeMap, BTreeSet};

use super::scan::{Files, source_of};
use crate::resources::{Object, ObjectKey};

/// The store's view: for each object, its `orcaops.dev/source` (None when it has none).
pub(super) type Owners = BTreeMap<ObjectKey, Option<String>>;

/// A declaration that is not applied, because another owner has the object.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Clash {
    pub key: ObjectKey,
    /// The file whose declaration is not applied.
    pub file: String,
    /// Who keeps the object: `file:<path>`, another source, or None for no source at all.
    pub owner: Option<String>,
    /// Why the owner keeps it, for the message.
    pub reason: ClashReason,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum ClashReason {
    /// Another file declares it too, and was first (it owns it, or sorts first).
    DeclaredElsewhere,
    /// The same file declares it twice.
    DeclaredTwice,
    /// The owning file has errors, so what it owned stays as it is until it is fixed.
    OwnerHasErrors,
    /// The object exists and did not come from a file.
    NotFromFile,
}

impl Clash {
    /// The warning a person reads: both owners, and the fix.
    pub fn message(&self) -> String {
        let key = &self.key;
        let owner = self.owner.as_deref().unwrap_or("no source");
        let owner_file = self.owner.as_deref().and_then(|o| o.strip_prefix("file:"));
        match (self.reason, owner_file) {
            (ClashReason::DeclaredTwice, _) => format!(
                "{key} is declared twice in {}; the first is applied, the second is not. \
                 Fix: remove one of them, or rename it",
                self.file
            ),
            (ClashReason::OwnerHasErrors, Some(other)) => format!(
                "{key} is declared in {} but belongs to {other}, which has errors; {other}'s last good \
                 version stays in force. Fix: correct {other}, or remove {key} from it",
                self.file
            ),
            (_, Some(other)) => format!(
                "{key} is declared in both {other} and {}; {other}'s is applied, {}'s is not. \
                 Fix: rename one of them, or remove it from one file",
                self.file, self.file
            ),
            (_, None) => format!(
                "{key} already exists and was not created from a file (source: {owner}), so {}'s \
                 declaration is not applied. Fix: rename it in {}, or delete the existing object first",
                self.file, self.file
            ),
        }
    }
}

/// What to do.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    /// Objects to apply, with the file they come from.
    pub apply: Vec<(String, Object)>,
    /// Objects to delete, with the file that owned them.
    pub delete: Vec<(ObjectKey, String)>,
    pub clashes: Vec<Clash>,
}

/// Decides for the keys in `scope` (all keys when None): what the files declare is applied,
/// unless another owner has the object; what a file owned and no longer declares is deleted,
/// unless that file has errors (or could not be read).
pub(super) fn plan(files: &Files, owners: &Owners, scope: Option<&BTreeSet<ObjectKey>>) -> Plan {
    // Declarations in file order; a file's documents in their order.
    let mut declared: BTreeMap<&ObjectKey, Vec<(&str, &Object)>> = BTreeMap::new();
    let declared_keys: Vec<(ObjectKey, &str, &Object)> = files
        .files
        .iter()
        .flat_map(|(file, state)| {
            state
                .objects
                .iter()
                .map(move |obj| (obj.key(), file.as_str(), obj))
        })
        .collect();
    for (key, file, obj) in &declared_keys {
        declared.entry(key).or_default().push((file, obj));
    }
    let mut plan = Plan::default();
    let in_scope = |key: &ObjectKey| scope.is_none_or(|s| s.contains(key));

    for (key, declarations) in &declared {
        if !in_scope(key) {
            continue;
        }
        let owner = owners.get(*key);
        let owner_file = owner
            .and_then(|o| o.as_deref())
            .and_then(|o| o.strip_prefix("file:"));
        let winner: Option<&str> = match (owner, owner_file) {
            // The object exists and no file made it: leave it alone.
            (Some(_), None) => None,
            (_, Some(owner_file)) if declarations.iter().any(|(f, _)| *f == owner_file) => {
                Some(owner_file)
            }
            (_, Some(owner_file))
                if files.files.get(owner_file).is_some_and(|s| s.failed())
                    || files.unknown(owner_file) =>
            {
                None
            }
            _ => Some(declarations[0].0),
        };
        let mut applied = false;
        for (file, obj) in declarations {
            if Some(*file) == winner && !applied {
                plan.apply.push((file.to_string(), (*obj).clone()));
                applied = true;
                continue;
            }
            let (clash_owner, reason) = match winner {
                Some(w) if w == *file => (Some(source_of(w)), ClashReason::DeclaredTwice),
                Some(w) => (Some(source_of(w)), ClashReason::DeclaredElsewhere),
                None => match owner_file {
                    Some(_) => (owner.cloned().flatten(), ClashReason::OwnerHasErrors),
                    None => (owner.cloned().flatten(), ClashReason::NotFromFile),
                },
            };
            plan.clashes.push(Clash {
                key: (*key).clone(),
                file: file.to_string(),
                owner: clash_owner,
                reason,
            });
        }
    }

    for (key, source) in owners {
        if !in_scope(key) || declared.contains_key(key) {
            continue;
        }
        let Some(owner_file) = source.as_deref().and_then(|s| s.strip_prefix("file:")) else {
            continue;
        };
        let keeps =
            files.files.get(owner_file).is_some_and(|s| s.failed()) || files.unknown(owner_file);
        if !keeps {
            plan.delete.push((key.clone(), owner_file.to_string()));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::super::scan::parse_file;
    use super::*;
    use crate::resources::Kind;

    fn job_yaml(name: &str, image: &str) -> String {
        format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  image: {image}\n  \
             steps: [{{name: a, run: x}}]\n"
        )
    }

    fn files(entries: &[(&str, &str)]) -> Files {
        let mut files = Files::default();
        for (rel, text) in entries {
            files
                .files
                .insert(rel.to_string(), parse_file(rel, text.as_bytes()));
        }
        files
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Kind::Job, "default", name)
    }

    fn owned_by(entries: &[(&str, Option<&str>)]) -> Owners {
        entries
            .iter()
            .map(|(name, source)| (key(name), source.map(str::to_string)))
            .collect()
    }

    fn applied(plan: &Plan) -> Vec<(String, String)> {
        plan.apply
            .iter()
            .map(|(f, o)| (f.clone(), o.metadata.name.clone()))
            .collect()
    }

    #[test]
    fn new_declarations_are_applied_and_vanished_ones_deleted() {
        let files = files(&[("a.yaml", &job_yaml("one", "alpine"))]);
        let owners = owned_by(&[
            ("gone", Some("file:old.yaml")),
            ("api", Some("api")),
            ("bare", None),
        ]);
        let plan = plan(&files, &owners, None);
        assert_eq!(applied(&plan), [("a.yaml".to_string(), "one".to_string())]);
        assert_eq!(plan.delete, [(key("gone"), "old.yaml".to_string())]);
        assert_eq!(plan.clashes, []);
        assert_eq!(
            plan.apply[0].1.metadata.annotations["orcaops.dev/source"],
            "file:a.yaml"
        );
    }

    #[test]
    fn a_file_with_errors_keeps_what_it_owned() {
        let broken = format!("{}---\nkind: Jbo\n", job_yaml("one", "alpine"));
        let files = files(&[("a.yaml", &broken)]);
        let owners = owned_by(&[("one", Some("file:a.yaml")), ("two", Some("file:a.yaml"))]);
        let plan = plan(&files, &owners, None);
        assert_eq!(applied(&plan), [("a.yaml".to_string(), "one".to_string())]);
        assert_eq!(plan.delete, []);
    }

    #[test]
    fn the_owner_keeps_its_object_and_the_other_file_clashes() {
        let files = files(&[
            ("a.yaml", &job_yaml("one", "alpine")),
            ("b.yaml", &job_yaml("one", "busybox")),
        ]);
        let plan_b = plan(&files, &owned_by(&[("one", Some("file:b.yaml"))]), None);
        assert_eq!(
            applied(&plan_b),
            [("b.yaml".to_string(), "one".to_string())]
        );
        assert_eq!(plan_b.clashes.len(), 1);
        assert_eq!(plan_b.clashes[0].file, "a.yaml");
        assert!(
            plan_b.clashes[0]
                .message()
                .contains("both b.yaml and a.yaml"),
            "{}",
            plan_b.clashes[0].message()
        );

        // Unowned: the first file in path order wins.
        let plan_new = plan(&files, &Owners::new(), None);
        assert_eq!(
            applied(&plan_new),
            [("a.yaml".to_string(), "one".to_string())]
        );
        assert_eq!(plan_new.clashes[0].file, "b.yaml");
    }

    #[test]
    fn an_object_moved_to_another_file_changes_owner() {
        let files = files(&[("b.yaml", &job_yaml("one", "alpine"))]);
        let plan = plan(&files, &owned_by(&[("one", Some("file:a.yaml"))]), None);
        assert_eq!(applied(&plan), [("b.yaml".to_string(), "one".to_string())]);
        assert_eq!(plan.delete, []);
    }

    #[test]
    fn objects_not_from_files_are_never_taken_over() {
        let files = files(&[("a.yaml", &job_yaml("one", "alpine"))]);
        let plan = plan(&files, &owned_by(&[("one", Some("api"))]), None);
        assert_eq!(plan.apply, []);
        assert_eq!(plan.clashes[0].reason, ClashReason::NotFromFile);
        assert!(plan.clashes[0].message().contains("source: api"));
    }

    #[test]
    fn the_scope_limits_the_plan() {
        let files = files(&[
            ("a.yaml", &job_yaml("one", "alpine")),
            ("b.yaml", &job_yaml("two", "alpine")),
        ]);
        let scope = BTreeSet::from([key("two")]);
        let plan = plan(
            &files,
            &owned_by(&[("gone", Some("file:c.yaml"))]),
            Some(&scope),
        );
        assert_eq!(applied(&plan), [("b.yaml".to_string(), "two".to_string())]);
        assert_eq!(plan.delete, []);
    }
}
