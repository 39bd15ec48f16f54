//! Parsing YAML documents into objects, with errors that name file, document, line, column and field.
//!
//! A file is split into documents on `---` lines before any YAML is parsed, so a broken document
//! never hides the good ones and every line number counts from the top of the file. Each
//! document is read twice: leniently into JSON, to learn its apiVersion, kind and name; then
//! strictly into its kind's spec struct, whose `deny_unknown_fields` gives precise positions.
//! (Dispatching on `kind` with a tagged enum would buffer the document and lose every position.)
//! Finally [`validate`] checks what the schema cannot, and each problem is traced back to a line.

mod error;
mod locate;
mod schema;
mod split;

use std::cell::OnceCell;
use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use serde_path_to_error::Path;

use super::validate::{FieldError, validate};
use super::{API_VERSION, DEFAULT_WORKSPACE, GROUP, Kind, Object, ObjectMeta, registry};
use locate::LocationIndex;
use schema::Problem;

pub use error::DocumentError;
pub(crate) use schema::closest;

/// Files larger than this are refused whole: a resource is a few kilobytes, and the store
/// (like etcd) refuses objects much over a megabyte anyway.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// Parses every document of a file; one result per non-empty document, in order.
/// A bad document never hides the good ones.
pub fn parse_documents(file: &str, text: &str) -> Vec<Result<Object, DocumentError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut results = Vec::new();
    for (index, chunk) in split::documents(text).iter().enumerate() {
        let mut document = Document {
            file,
            number: index + 1,
            chunk,
            kind: None,
            namespace: None,
            name: None,
            locations: OnceCell::new(),
        };
        if let Some(result) = document.parse() {
            results.push(result);
        }
    }
    results
}

/// Parses a file's raw bytes: refuses files over [`MAX_FILE_BYTES`] and files that are not
/// UTF-8 text (one error for the whole file, document 0), then [`parse_documents`].
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Vec<Result<Object, DocumentError>> {
    if bytes.len() > MAX_FILE_BYTES {
        return vec![Err(DocumentError::whole_file(
            file,
            None,
            None,
            format!(
                "the file is {} bytes ({:.1} MiB), over the limit of {} bytes ({} MiB)",
                bytes.len(),
                bytes.len() as f64 / (1024.0 * 1024.0),
                MAX_FILE_BYTES,
                MAX_FILE_BYTES / (1024 * 1024)
            ),
            "split it into smaller files; resources are small, so a file this large is probably not a resource file",
        ))];
    }
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return vec![Err(DocumentError::whole_file(
            file,
            Some(1),
            None,
            "the file is UTF-16 text; orcaops reads UTF-8".into(),
            "save the file as UTF-8",
        ))];
    }
    let line_column = |offset: usize| {
        let before = &bytes[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        (line, (offset - line_start) as u64 + 1)
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let (line, column) = line_column(e.valid_up_to());
            return vec![Err(DocumentError::whole_file(
                file,
                Some(line),
                Some(column),
                format!(
                    "the file is not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
                "save the file as UTF-8; if it is binary, remove it from the folder",
            ))];
        }
    };
    if let Some(offset) = text.find('\0') {
        let (line, column) = line_column(offset);
        return vec![Err(DocumentError::whole_file(
            file,
            Some(line),
            Some(column),
            format!("the file holds a NUL byte at offset {offset}: it looks binary, not YAML"),
            "remove binary files from the folder; resource files are YAML text",
        ))];
    }
    parse_documents(file, text)
}

/// How deeply a document may nest. Resources nest a dozen levels at most, and each level
/// costs the later strict and position-tracking reads many stack frames: at serde-saphyr's
/// own limit (64) a debug build overflowed a 2 MiB thread stack, aborting the process
/// (found by tests/fuzz.rs). The lenient first read refuses deeper documents, so the others
/// never see them.
pub const MAX_NESTING: usize = 24;

fn shallow() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_NESTING;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Metadata as a person writes it. Fields a server sets are tolerated and ignored, so that the
/// output of `get -o yaml` can be applied again.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct InputMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "uid")]
    _uid: Option<IgnoredAny>,
    #[serde(default, rename = "resourceVersion")]
    _resource_version: Option<IgnoredAny>,
    #[serde(default, rename = "generation")]
    _generation: Option<IgnoredAny>,
    #[serde(default, rename = "creationTimestamp")]
    _creation_timestamp: Option<IgnoredAny>,
    #[serde(default, rename = "deletionTimestamp")]
    _deletion_timestamp: Option<IgnoredAny>,
    #[serde(default, rename = "managedFields")]
    _managed_fields: Option<IgnoredAny>,
    #[serde(default, rename = "selfLink")]
    _self_link: Option<IgnoredAny>,
    #[serde(default, rename = "finalizers")]
    _finalizers: Option<IgnoredAny>,
    #[serde(default, rename = "ownerReferences")]
    _owner_references: Option<IgnoredAny>,
}

/// The strict shape of one document of a known kind; `status` is accepted and ignored.
#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    bound = "S: DeserializeOwned"
)]
struct InputDocument<S> {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: InputMeta,
    #[serde(default)]
    spec: Option<S>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

/// A scalar as the strict read will see it: YAML `name: 123` is the name "123".
fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn kind_list() -> String {
    Kind::ALL.map(Kind::as_str).join(", ")
}

/// Errors are boxed inside the parser: a [`DocumentError`] is large.
type DocResult<T> = Result<T, Box<DocumentError>>;

/// One document being parsed, with what is known about it so far for error messages.
struct Document<'a> {
    file: &'a str,
    number: usize,
    chunk: &'a split::Chunk<'a>,
    kind: Option<Kind>,
    namespace: Option<String>,
    name: Option<String>,
    locations: OnceCell<Option<LocationIndex>>,
}

impl Document<'_> {
    fn text(&self) -> &str {
        &self.chunk.text
    }

    /// Line and column in the document's text of `field`, or of its nearest ancestor.
    fn locate(&self, field: &str) -> Option<(u64, u64)> {
        self.locations
            .get_or_init(|| LocationIndex::build(self.text()))
            .as_ref()
            .and_then(|index| index.find(field))
    }

    /// An error at `location` (in the document's text); without one, at the document's first line.
    fn error(
        &self,
        location: Option<(u64, u64)>,
        field: Option<String>,
        message: String,
        fix: Option<String>,
    ) -> Box<DocumentError> {
        let (line, column) = match location {
            Some((line, column)) => (Some(self.chunk.file_line(line)), Some(column)),
            None => (
                self.chunk
                    .first_content_line
                    .or(Some(self.chunk.start_line)),
                None,
            ),
        };
        Box::new(DocumentError {
            file: self.file.to_string(),
            document: self.number,
            line,
            column,
            field,
            message,
            fix,
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            also: Vec::new(),
        })
    }

    fn problem(&self, problem: Problem) -> Box<DocumentError> {
        self.error(
            problem.location,
            problem.field,
            problem.message,
            problem.fix,
        )
    }

    /// An error about `field`, positioned at that field (or its nearest ancestor).
    fn field_error(&self, field: &str, message: String, fix: String) -> Box<DocumentError> {
        self.error(
            self.locate(field),
            Some(field.to_string()),
            message,
            Some(fix),
        )
    }

    /// `None` for a document that holds only `null` (`~`).
    fn parse(&mut self) -> Option<Result<Object, DocumentError>> {
        let raw: Value = match serde_saphyr::from_str_with_options(self.text(), shallow()) {
            Ok(raw) => raw,
            Err(e) => {
                self.guess_identity();
                return Some(Err(*self.problem(schema::from_syntax(&e))));
            }
        };
        if raw.is_null() {
            return None;
        }
        Some(self.parse_value(&raw).map_err(|e| *e))
    }

    fn parse_value(&mut self, raw: &Value) -> DocResult<Object> {
        let Some(map) = raw.as_object() else {
            return Err(self.error(
                None,
                None,
                format!("a document must be a mapping with apiVersion, kind, metadata and spec; this one is {}", schema::describe(raw)),
                Some("start the document with `apiVersion: orcaops.dev/v1alpha1` and `kind:`".into()),
            ));
        };
        let kind = self.header(map)?;
        let StrictRead { meta, spec, given } = (registry::read_spec(kind))(self.text())
            .map_err(|e| self.problem(schema::from_serde(&e.0, &e.1, raw)))?;
        // After the strict read, so that a misspelt `sepc:` is reported as such.
        if !given && registry::spec_required(kind) {
            return Err(self.field_error(
                "spec",
                format!("missing spec: a {kind} declares what to run in its spec"),
                format!("add a `spec:` section; `orcaops crds` prints the {kind} schema"),
            ));
        }
        let namespace = meta.namespace.filter(|ns| !ns.is_empty());
        if !kind.namespaced()
            && let Some(ns) = namespace
        {
            return Err(self.field_error(
                "metadata.namespace",
                format!("{kind} is cluster-scoped, so it has no namespace (it was given \"{ns}\")"),
                "remove metadata.namespace".into(),
            ));
        }
        let object = Object {
            api_version: API_VERSION.to_string(),
            kind,
            metadata: ObjectMeta {
                name: meta.name.unwrap_or_default(),
                namespace: kind
                    .namespaced()
                    .then(|| namespace.unwrap_or_else(|| DEFAULT_WORKSPACE.to_string())),
                labels: meta.labels.unwrap_or_default(),
                annotations: meta.annotations.unwrap_or_default(),
                ..Default::default()
            },
            spec,
            status: Value::Null,
        };
        let mut problems = validate(&object)
            .into_iter()
            .map(|e: FieldError| self.field_error(&e.field, e.message, e.fix));
        match problems.next() {
            None => Ok(object),
            Some(mut first) => {
                first.also = problems.map(|e| *e).collect();
                Err(first)
            }
        }
    }

    /// Learns kind, namespace and name from the plain lines of a document that is not valid
    /// YAML, so that its error still names the object: `kind:` at the top level, `name:` and
    /// `namespace:` indented under `metadata:`.
    fn guess_identity(&mut self) {
        let value = |line: &str, key: &str| {
            let rest = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
            let rest = rest
                .split(" #")
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches(['"', '\'']);
            (!rest.is_empty()).then(|| rest.to_string())
        };
        let (mut name, mut namespace, mut in_metadata) = (None, None, false);
        let chunk = self.chunk;
        for line in chunk.text.lines() {
            let top_level = !line.starts_with([' ', '\t', '#']) && !line.trim().is_empty();
            if top_level {
                in_metadata = line.trim_end() == "metadata:";
                if let Some(kind) = value(line, "kind") {
                    self.kind = Kind::from_kind_field(&kind);
                }
            } else if in_metadata {
                name = name.or_else(|| value(line, "name"));
                namespace = namespace.or_else(|| value(line, "namespace"));
            }
        }
        self.name = name;
        self.namespace = match self.kind {
            Some(kind) if kind.namespaced() => {
                Some(namespace.unwrap_or_else(|| DEFAULT_WORKSPACE.to_string()))
            }
            _ => None,
        };
    }

    /// Checks apiVersion, kind, metadata.name and the presence of spec, leniently, and learns
    /// the kind, namespace and name that every later error names.
    fn header(&mut self, map: &Map<String, Value>) -> DocResult<Kind> {
        let kind_field = map.get("kind");
        self.kind = kind_field
            .and_then(Value::as_str)
            .and_then(Kind::from_kind_field);
        let metadata = map.get("metadata").and_then(Value::as_object);
        self.name = metadata
            .and_then(|m| m.get("name"))
            .and_then(scalar_string)
            .filter(|n| !n.is_empty());
        let namespace = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(scalar_string)
            .filter(|n| !n.is_empty());
        self.namespace = match self.kind {
            Some(kind) if kind.namespaced() => {
                Some(namespace.unwrap_or_else(|| DEFAULT_WORKSPACE.to_string()))
            }
            _ => None,
        };

        self.check_api_version(map.get("apiVersion"), kind_field)?;
        let kind = self.check_kind(kind_field)?;
        if metadata.is_none() {
            return Err(self.field_error(
                "metadata",
                "missing metadata (a mapping with at least a name)".into(),
                "add `metadata:` with `name: <name>` indented under it".into(),
            ));
        }
        if self.name.is_none() {
            return Err(self.field_error(
                "metadata.name",
                format!("missing metadata.name: every {kind} needs a name"),
                "add `name: <name>` under metadata (lowercase letters, digits and '-')".into(),
            ));
        }
        Ok(kind)
    }

    fn check_api_version(
        &self,
        api_version: Option<&Value>,
        kind: Option<&Value>,
    ) -> DocResult<()> {
        let orcaops_kind = self.kind.is_some();
        let Some(value) = api_version else {
            return Err(self.error(
                None,
                Some("apiVersion".into()),
                "missing apiVersion".into(),
                Some(format!(
                    "add `apiVersion: {API_VERSION}` at the top of the document"
                )),
            ));
        };
        let given = scalar_string(value).unwrap_or_default();
        if given == API_VERSION {
            return Ok(());
        }
        let message = if given.starts_with(&format!("{GROUP}/")) {
            format!("\"{given}\" is not a version orcaops serves; it serves {API_VERSION}")
        } else if orcaops_kind {
            format!("\"{given}\" is not orcaops' API; orcaops resources use {API_VERSION}")
        } else {
            let kind = kind
                .and_then(scalar_string)
                .unwrap_or_else(|| "resource".into());
            format!("\"{given}\" is not orcaops' API: this {kind} is not an orcaops resource")
        };
        let fix = if orcaops_kind || given.starts_with(&format!("{GROUP}/")) {
            format!("set `apiVersion: {API_VERSION}`")
        } else {
            format!(
                "move this document out of orcaops' files, or rewrite it as an orcaops resource with `apiVersion: {API_VERSION}`"
            )
        };
        Err(self.field_error("apiVersion", message, fix))
    }

    fn check_kind(&self, kind: Option<&Value>) -> DocResult<Kind> {
        if let Some(kind) = self.kind {
            return Ok(kind);
        }
        let Some(value) = kind else {
            return Err(self.error(
                None,
                Some("kind".into()),
                "missing kind".into(),
                Some(format!("add `kind:` with one of {}", kind_list())),
            ));
        };
        let given = scalar_string(value).unwrap_or_default();
        let near = Kind::parse(&given)
            .map(Kind::as_str)
            .or_else(|| closest(&given, Kind::ALL.map(Kind::as_str)));
        let (message, fix) = match near {
            Some(near) => (
                format!(
                    "unknown kind \"{given}\", did you mean \"{near}\"? (orcaops knows {})",
                    kind_list()
                ),
                format!("set `kind: {near}`"),
            ),
            None => (
                format!("unknown kind \"{given}\"; orcaops knows {}", kind_list()),
                format!("set kind to one of {}", kind_list()),
            ),
        };
        Err(self.field_error("kind", message, fix))
    }
}

/// What the strict read of one document found: its metadata, and its spec normalized back to
/// JSON. An absent spec reads as the kind's default, and `given` says so.
pub(super) struct StrictRead {
    meta: InputMeta,
    spec: Value,
    given: bool,
}

/// Where and why a strict read failed: the YAML error, and the path of the field it stopped at.
pub(super) type StrictError = Box<(serde_saphyr::Error, Path)>;

/// The strict read of a document as one kind's spec type, as the registry stores it per kind.
pub(super) type ReadSpec = fn(&str) -> Result<StrictRead, StrictError>;

/// The strict read of `text` as a document whose spec is an `S`; an error carries the path
/// of the field the deserializer stopped at.
pub(super) fn read_spec<S: DeserializeOwned + Serialize + Default>(
    text: &str,
) -> Result<StrictRead, StrictError> {
    let mut track = serde_path_to_error::Track::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        InputDocument::<S>::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
    });
    match result {
        Ok(document) => Ok(StrictRead {
            meta: document.metadata,
            given: document.spec.is_some(),
            spec: serde_json::to_value(document.spec.unwrap_or_default())
                .expect("a spec read from YAML serializes to JSON"),
        }),
        Err(e) => Err(Box::new((e, track.path()))),
    }
}

#[cfg(test)]
mod tests;
