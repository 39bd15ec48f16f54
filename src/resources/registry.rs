//! The kind registry: every per-kind fact in one table, declared once per kind.
//!
//! What kube's `CustomResource` derive already knows is taken from it: kind, plural,
//! singular, short names and scope from its constants (cheap, for every CLI call);
//! categories, printer columns and the OpenAPI schema from each kind's CRD, built once when
//! first needed; only what the derive cannot say is declared here: the description in the OpenAPI
//! document, the CLI's extra aliases, whether an empty spec is valid, and whether a controller
//! runs the kind. The spec and status types come from the derive too (`HasSpec`,
//! `HasStatus`), so the strict YAML read, the validation and the status check are the
//! generic functions of [`def`], monomorphized per kind and stored as fn pointers.
//!
//! Adding a stored-only kind is its resource file, its `Kind` variant and one line in
//! [`declared`]; see docs/architecture.md, "Adding a kind".

use std::any::TypeId;
use std::sync::LazyLock;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;
use kube::core::Resource;
use kube::core::object::{HasSpec, HasStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::parse::{self, ReadSpec};
use super::validate::{self, CheckSpec, Problems};
use super::{Job, Kind, Object, Policy, Sandbox, SandboxTemplate, Workflow, Workspace};

/// Whether a controller acts on a kind, or the kind is only stored and validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Reconciled,
    StoredOnly,
}

/// A status that does not read as its kind's status type, with the path of the bad field.
pub type StatusError = serde_path_to_error::Error<serde_json::Error>;

/// What one kind declares about itself; everything else is read from its CRD.
pub struct KindDef {
    kind: Kind,
    controller: Controller,
    description: &'static str,
    /// Short names the CLI accepts beyond the CRD's, which stay few and cluster-safe
    /// (`template` would collide with other operators' resources on a cluster).
    aliases: &'static [&'static str],
    spec_required: bool,
    crd: fn() -> CustomResourceDefinition,
    names: fn() -> Names,
    read_spec: ReadSpec,
    check_spec: fn(&mut Problems, &Object),
    check_status: fn(&Value) -> Result<(), StatusError>,
}

/// The declaration of kind `K`: a stored-only kind whose spec may be empty, with no aliases.
/// The builder methods below say otherwise.
fn def<K>(kind: Kind, description: &'static str) -> KindDef
where
    K: CustomResourceExt + Resource<DynamicType = ()> + HasSpec + HasStatus,
    K::Scope: 'static,
    K::Spec: DeserializeOwned + Serialize + Default + CheckSpec,
    K::Status: DeserializeOwned,
{
    KindDef {
        kind,
        controller: Controller::StoredOnly,
        description,
        aliases: &[],
        spec_required: false,
        crd: K::crd,
        names: names_of::<K>,
        read_spec: parse::read_spec::<K::Spec>,
        check_spec: validate::typed::<K::Spec>,
        check_status: status_reads_as::<K::Status>,
    }
}

impl KindDef {
    fn reconciled(self) -> Self {
        KindDef {
            controller: Controller::Reconciled,
            ..self
        }
    }

    /// A spec that is missing or empty is refused at parse time, with a message saying so.
    fn spec_required(self) -> Self {
        KindDef {
            spec_required: true,
            ..self
        }
    }

    fn aliases(self, aliases: &'static [&'static str]) -> Self {
        KindDef { aliases, ..self }
    }
}

/// The names and scope the derive writes into the CRD, read from its constants: a CLI
/// that only resolves `jobs` or `sb` never pays for generating a schema.
struct Names {
    kind: &'static str,
    plural: &'static str,
    singular: String,
    short_names: &'static [&'static str],
    namespaced: bool,
}

fn names_of<K>() -> Names
where
    K: CustomResourceExt + Resource<DynamicType = ()>,
    K::Scope: 'static,
{
    let name = |cow: std::borrow::Cow<'static, str>| match cow {
        std::borrow::Cow::Borrowed(s) => s,
        // The derive's names are literals; an owned one is kept for the process's life.
        std::borrow::Cow::Owned(s) => &*s.leak(),
    };
    let kind = name(K::kind(&()));
    Names {
        kind,
        plural: name(K::plural(&())),
        // The derive's default, which none of ours overrides (a test compares with the CRD).
        singular: kind.to_ascii_lowercase(),
        short_names: K::shortnames(),
        namespaced: TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>(),
    }
}

fn status_reads_as<S: DeserializeOwned>(status: &Value) -> Result<(), StatusError> {
    serde_path_to_error::deserialize::<_, S>(status).map(drop)
}

/// Every kind, in the order of [`Kind::ALL`] (checked when the table is built).
fn declared() -> [KindDef; Kind::ALL.len()] {
    [
        def::<Job>(Kind::Job, "A Job: ordered steps run in one container image, with retries, timeouts, artifacts and a run history in its status.")
            .reconciled()
            .spec_required(),
        def::<Workflow>(Kind::Workflow, "A Workflow: a DAG of jobs with needs, CEL conditions, matrix fan-out and outputs passed on; each node runs as a Job.")
            .reconciled()
            .spec_required(),
        def::<Sandbox>(Kind::Sandbox, "A Sandbox: a long-lived environment of service containers that agents exec into.")
            .reconciled()
            .spec_required(),
        def::<SandboxTemplate>(Kind::SandboxTemplate, "A SandboxTemplate: a reusable Sandbox blueprint, optionally with a warm pool of ready sandboxes.")
            .reconciled()
            .spec_required()
            .aliases(&["template", "templates"]),
        def::<Workspace>(Kind::Workspace, "A Workspace: a tenant with quotas, members and defaults; namespaced resources live in one.")
            .reconciled(),
        def::<Policy>(Kind::Policy, "A Policy: rules on images, commands, resources and network, enforced on every write and run.")
            .aliases(&["pol"]),
    ]
}

/// One kind as the registry holds it: its declaration and its names.
struct Entry {
    def: KindDef,
    names: Names,
    /// The CRD's short names, then the declared aliases.
    short_names: Vec<&'static str>,
}

/// Built on first use, from the derive's constants.
static TABLE: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    declared()
        .into_iter()
        .enumerate()
        .map(|(index, def)| {
            // Lookups index the table by the enum's discriminant.
            assert_eq!(
                def.kind as usize, index,
                "{:?} is declared out of the order of Kind::ALL",
                def.kind
            );
            let names = (def.names)();
            let short_names = names
                .short_names
                .iter()
                .chain(def.aliases)
                .copied()
                .collect();
            Entry {
                names,
                short_names,
                def,
            }
        })
        .collect()
});

/// Built when first needed (a Table, discovery, OpenAPI, `orcaops crds`): generating a
/// CRD runs schemars over the whole spec type.
static CRDS: LazyLock<Vec<CustomResourceDefinition>> =
    LazyLock::new(|| TABLE.iter().map(|e| (e.def.crd)()).collect());

fn entry(kind: Kind) -> &'static Entry {
    &TABLE[kind as usize]
}

/// The CRD of `kind`, as `orcaops crds` prints it.
pub fn crd(kind: Kind) -> &'static CustomResourceDefinition {
    &CRDS[kind as usize]
}

/// The kind's name, as written in `kind:` (`SandboxTemplate`).
pub fn name(kind: Kind) -> &'static str {
    entry(kind).names.kind
}

/// The plural, as in URL paths (`sandboxtemplates`).
pub fn plural(kind: Kind) -> &'static str {
    entry(kind).names.plural
}

/// The lowercase singular (`sandboxtemplate`).
pub fn singular(kind: Kind) -> &'static str {
    &entry(kind).names.singular
}

/// The short names the CLI accepts: the CRD's, then the aliases declared here.
pub fn short_names(kind: Kind) -> &'static [&'static str] {
    &entry(kind).short_names
}

/// The short names the CRD declares, as discovery publishes them.
pub fn crd_short_names(kind: Kind) -> &'static [String] {
    crd(kind).spec.names.short_names.as_deref().unwrap_or(&[])
}

pub fn categories(kind: Kind) -> &'static [String] {
    crd(kind).spec.names.categories.as_deref().unwrap_or(&[])
}

pub fn namespaced(kind: Kind) -> bool {
    entry(kind).names.namespaced
}

/// The CRD's `additionalPrinterColumns`: what `kubectl get` shows, and what the REST facade's
/// Tables and (later) the CLI's own tables show.
pub fn printer_columns(kind: Kind) -> &'static [CustomResourceColumnDefinition] {
    crd(kind)
        .spec
        .versions
        .first()
        .and_then(|v| v.additional_printer_columns.as_deref())
        .unwrap_or(&[])
}

/// The CRD's OpenAPI v3 schema of the whole object.
pub fn schema(kind: Kind) -> Option<&'static JSONSchemaProps> {
    crd(kind)
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
}

/// One sentence on the kind, for the OpenAPI document.
pub fn description(kind: Kind) -> &'static str {
    entry(kind).def.description
}

pub fn controller(kind: Kind) -> Controller {
    entry(kind).def.controller
}

/// The kinds a controller acts on, in [`Kind::ALL`] order.
pub fn reconciled() -> impl Iterator<Item = Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| controller(*k) == Controller::Reconciled)
}

/// Whether a document of this kind must carry a non-empty spec.
pub fn spec_required(kind: Kind) -> bool {
    entry(kind).def.spec_required
}

/// Checks that `status` reads as the kind's status type.
pub fn check_status(kind: Kind, status: &Value) -> Result<(), StatusError> {
    (entry(kind).def.check_status)(status)
}

/// The strict YAML read of a document as the kind's spec type.
pub(super) fn read_spec(kind: Kind) -> ReadSpec {
    entry(kind).def.read_spec
}

/// Reads the object's spec as its kind's type and runs the kind's checks on it.
pub(super) fn check_spec(kind: Kind, p: &mut Problems, obj: &Object) {
    (entry(kind).def.check_spec)(p, obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_kind_all() {
        for (index, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index);
            assert_eq!(entry(kind).def.kind, kind);
            // The enum's serde name is what the store writes; it must be the CRD's kind.
            assert_eq!(serde_json::to_value(kind).unwrap(), name(kind));
        }
    }

    #[test]
    fn names_scope_and_columns_are_the_crds() {
        let crds = [
            Job::crd(),
            Workflow::crd(),
            Sandbox::crd(),
            SandboxTemplate::crd(),
            Workspace::crd(),
            Policy::crd(),
        ];
        for (kind, crd) in Kind::ALL.into_iter().zip(crds) {
            let names = &crd.spec.names;
            assert_eq!(name(kind), names.kind);
            assert_eq!(plural(kind), names.plural);
            assert_eq!(Some(singular(kind)), names.singular.as_deref());
            assert_eq!(
                namespaced(kind),
                crd.spec.scope == "Namespaced",
                "{kind} scope"
            );
            let crd_short = names.short_names.clone().unwrap_or_default();
            assert_eq!(crd_short_names(kind), crd_short);
            assert!(
                short_names(kind)
                    .starts_with(&crd_short.iter().map(String::as_str).collect::<Vec<_>>())
            );
            assert_eq!(
                Some(printer_columns(kind)),
                crd.spec.versions[0].additional_printer_columns.as_deref()
            );
            assert_eq!(*super::crd(kind), crd);
        }
    }

    #[test]
    fn the_cli_keeps_its_aliases() {
        assert_eq!(short_names(Kind::Policy), ["opol", "pol"]);
        assert_eq!(
            short_names(Kind::SandboxTemplate),
            ["sbt", "template", "templates"]
        );
        assert_eq!(short_names(Kind::Job), ["ojob"]);
    }

    #[test]
    fn jobs_workflows_sandboxes_and_workspaces_are_reconciled_the_rest_stored() {
        assert_eq!(
            reconciled().collect::<Vec<_>>(),
            [
                Kind::Job,
                Kind::Workflow,
                Kind::Sandbox,
                Kind::SandboxTemplate,
                Kind::Workspace
            ]
        );
        assert_eq!(controller(Kind::Policy), Controller::StoredOnly);
    }

    #[test]
    fn scope_and_required_specs() {
        let namespaced_kinds: Vec<Kind> =
            Kind::ALL.into_iter().filter(|k| namespaced(*k)).collect();
        assert_eq!(
            namespaced_kinds,
            [
                Kind::Job,
                Kind::Workflow,
                Kind::Sandbox,
                Kind::SandboxTemplate
            ]
        );
        let required: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| spec_required(*k))
            .collect();
        assert_eq!(required, namespaced_kinds);
    }

    #[test]
    fn statuses_are_read_as_their_kinds_type() {
        assert!(check_status(Kind::Job, &serde_json::json!({"phase": "Running"})).is_ok());
        let err = check_status(Kind::Job, &serde_json::json!({"phase": "Sleeping"})).unwrap_err();
        assert_eq!(err.path().to_string(), "phase");
    }
}
