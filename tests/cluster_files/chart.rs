//! Loading the Helm chart and rendering it as `helm install orcaops -n orcaops-system`
//! would, with the test-only renderer of [`crate::render`].

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::objects::{Doc, check_object, documents, read};
use crate::render::Templates;
use crate::{NAMESPACE, root};

pub struct Chart {
    templates: Templates,
    /// The templates that produce manifests: every file but the `_` helpers and NOTES.txt.
    pub manifests: Vec<String>,
    /// Chart.yaml's fields as templates see them: `.Chart.Name`, `.Chart.AppVersion`.
    pub metadata: Value,
    pub values: Value,
}

fn chart_dir() -> PathBuf {
    root().join("charts/orcaops")
}

pub fn load_chart() -> Chart {
    let dir = chart_dir();
    let chart_yaml = one_document(&dir.join("Chart.yaml"));
    let values = one_document(&dir.join("values.yaml"));
    let metadata: serde_json::Map<String, Value> = chart_yaml
        .as_object()
        .expect("Chart.yaml is a map")
        .iter()
        .map(|(key, value)| (capitalized(key), value.clone()))
        .collect();

    let mut files: Vec<(String, String)> = std::fs::read_dir(dir.join("templates"))
        .expect("charts/orcaops/templates")
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            (name, read(&path))
        })
        .collect();
    files.sort();
    let templates = Templates::parse(files.iter().map(|(n, t)| (n.as_str(), t.as_str())))
        .unwrap_or_else(|e| panic!("charts/orcaops/templates/{e}"))
        .with_files(chart_files(&dir));
    let manifests = files
        .iter()
        .map(|(name, _)| name.clone())
        .filter(|name| !name.starts_with('_') && name != "NOTES.txt")
        .collect();
    Chart {
        templates,
        manifests,
        metadata: Value::Object(metadata),
        values,
    }
}

/// The files `.Files.Get` may read: the dashboards.
fn chart_files(dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir.join("dashboards"))
        .expect("charts/orcaops/dashboards")
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            (format!("dashboards/{name}"), read(&path))
        })
        .collect()
}

fn one_document(path: &Path) -> Value {
    let origin = path.strip_prefix(root()).unwrap().display().to_string();
    let mut docs = documents(&origin, &read(path));
    assert_eq!(docs.len(), 1, "{origin} holds one document");
    docs.remove(0).value
}

fn capitalized(key: &str) -> String {
    let mut chars = key.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// `overrides` merged into `base`, maps key by key, as `helm install --set` does.
fn merged(base: &Value, overrides: &Value) -> Value {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            let mut out = base.clone();
            for (key, value) in overrides {
                let merged_value = match base.get(key) {
                    Some(old) => merged(old, value),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged_value);
            }
            Value::Object(out)
        }
        _ => overrides.clone(),
    }
}

impl Chart {
    fn context(&self, overrides: &Value) -> Value {
        json!({
            "Values": merged(&self.values, overrides),
            "Release": { "Name": "orcaops", "Namespace": NAMESPACE },
            "Chart": self.metadata,
        })
    }

    /// Renders every manifest template as `helm install orcaops -n orcaops-system` would,
    /// and checks each document as the plain manifests are checked.
    pub fn render(&self, overrides: &Value) -> Vec<Doc> {
        let context = self.context(overrides);
        let mut docs = Vec::new();
        for name in &self.manifests {
            let text = self.templates.render(name, &context).unwrap_or_else(|e| {
                panic!("charts/orcaops/templates/{name} with {overrides}: {e}")
            });
            let origin = format!("charts/orcaops/templates/{name} rendered with {overrides}");
            docs.extend(documents(&origin, &text));
        }
        for doc in &docs {
            check_object(doc);
        }
        docs
    }

    pub fn notes(&self, overrides: &Value) -> String {
        let context = self.context(overrides);
        self.templates
            .render("NOTES.txt", &context)
            .unwrap_or_else(|e| panic!("charts/orcaops/templates/NOTES.txt: {e}"))
    }
}
