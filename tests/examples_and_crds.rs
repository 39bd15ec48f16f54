//! Every example parses and validates, and the checked-in CRDs match the code.

use orcaops::resources::parse::parse_bytes;
use orcaops::resources::validate::validate;
use orcaops::resources::{Kind, crds_yaml};

fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_parses_and_validates() {
    let mut files = Vec::new();
    yaml_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"),
        &mut files,
    );
    assert!(
        files.len() >= 5,
        "examples/ should hold the example files, found {files:?}"
    );
    let mut kinds = std::collections::HashSet::new();
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let docs = parse_bytes(&file.display().to_string(), &bytes);
        assert!(!docs.is_empty(), "{} holds no document", file.display());
        for doc in docs {
            let obj = doc.unwrap_or_else(|e| panic!("{e}"));
            let problems = validate(&obj);
            assert!(problems.is_empty(), "{}: {problems:?}", file.display());
            kinds.insert(obj.kind);
        }
    }
    for kind in Kind::ALL {
        assert!(kinds.contains(&kind), "no example of {kind}");
    }
}

#[test]
fn checked_in_crds_are_fresh() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/orcaops.dev.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == crds_yaml(),
        "crds/orcaops.dev.yaml is stale or missing: regenerate it with `cargo run -- crds > crds/orcaops.dev.yaml`"
    );
}

#[test]
fn crds_are_structural_and_name_every_kind() {
    let yaml = crds_yaml();
    for kind in Kind::ALL {
        assert!(
            yaml.contains(&format!("name: {}.orcaops.dev", kind.plural())),
            "CRD for {kind}"
        );
    }
    for kind in Kind::ALL {
        let crd = serde_json::to_value(kind.crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_eq!(schema["type"], "object", "{kind}");
        assert_eq!(schema["properties"]["spec"]["type"], "object", "{kind}");
        assert!(
            crd["spec"]["versions"][0]["subresources"]["status"].is_object(),
            "{kind} has a status subresource"
        );
    }
}
