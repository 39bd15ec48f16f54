//! The error of one document: where it is (file, document, line, column, field), what is wrong,
//! and the fix; displayed compiler-style.

use std::fmt;

use crate::resources::Kind;

/// One problem in one document, with everything a person needs to find and fix it.
///
/// Displayed compiler-style:
/// `jobs/build.yaml:15:7: document 2 (Job default/build): spec.steps[0].comand: unknown field "comand", did you mean "command"?`
/// then `  fix: rename "comand" to "command"`.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentError {
    pub file: String,
    /// 1-based, counting the file's non-empty documents; 0 when the whole file is refused.
    pub document: usize,
    /// 1-based line in the file.
    pub line: Option<u64>,
    /// 1-based column, in characters.
    pub column: Option<u64>,
    /// The field path, such as `spec.steps[0].command`.
    pub field: Option<String>,
    pub message: String,
    pub fix: Option<String>,
    pub kind: Option<Kind>,
    /// The namespace (workspace) the object would go to, for namespaced kinds.
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Further problems found in the same document (validation reports every one it finds).
    pub also: Vec<DocumentError>,
}

impl DocumentError {
    fn fmt_one(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if self.document > 0 {
            write!(f, "document {}", self.document)?;
            match (self.kind, &self.name) {
                (Some(kind), Some(name)) => match &self.namespace {
                    Some(ns) => write!(f, " ({kind} {ns}/{name})")?,
                    None => write!(f, " ({kind} {name})")?,
                },
                (Some(kind), None) => write!(f, " ({kind})")?,
                (None, Some(name)) => write!(f, " ({name})")?,
                (None, None) => {}
            }
            f.write_str(": ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }

    /// This problem and the others found in the same document.
    pub fn problems(&self) -> impl Iterator<Item = &DocumentError> {
        std::iter::once(self).chain(self.also.iter())
    }

    pub(super) fn whole_file(
        file: &str,
        line: Option<u64>,
        column: Option<u64>,
        message: String,
        fix: &str,
    ) -> Self {
        DocumentError {
            file: file.to_string(),
            document: 0,
            line,
            column,
            field: None,
            message,
            fix: Some(fix.to_string()),
            kind: None,
            namespace: None,
            name: None,
            also: Vec::new(),
        }
    }
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_one(f)?;
        for other in &self.also {
            writeln!(f)?;
            other.fmt_one(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for DocumentError {}
