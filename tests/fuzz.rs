//! Property-style fuzzing of every input orcaops parses from outside: YAML documents, the
//! JSON body of each kind, label and field selectors, PATCH bodies, tar uploads and the CEL
//! expressions and `${{ }}` templates of Workflows. Stable Rust, no afl: a seeded generator mutates a
//! committed corpus and each input goes to the real entry point under `catch_unwind`, with
//! invariants checked on what comes back. A short run is part of `cargo test`;
//! `scripts/fuzz.sh` runs a million inputs per target. See docs/testing.md.

#[path = "fuzz/cel.rs"]
mod cel;
#[path = "fuzz/harness.rs"]
mod harness;
#[path = "fuzz/json.rs"]
mod json;
#[path = "fuzz/patch.rs"]
mod patch;
#[path = "fuzz/selectors.rs"]
mod selectors;
#[path = "fuzz/tar.rs"]
mod tar;
#[path = "fuzz/yaml.rs"]
mod yaml;

// Default counts per target keep `cargo test` under a minute in debug; parsing YAML is by
// far the slowest (three reads of each document), hence its small share.

#[test]
fn fuzz_yaml_documents() {
    harness::run("yaml", 600, yaml::generate, yaml::check);
}

#[test]
fn fuzz_json_bodies() {
    harness::run("json", 5_000, json::generate, json::check);
}

#[test]
fn fuzz_selectors() {
    harness::run("selectors", 20_000, selectors::generate, selectors::check);
}

#[test]
fn fuzz_patch_bodies() {
    let base = patch::Base::load();
    harness::run("patch", 20_000, patch::generate, |input| base.check(input));
}

#[test]
fn fuzz_tar_upload_check() {
    harness::run("tar", 20_000, tar::generate, tar::check_upload);
}

#[test]
fn fuzz_tar_cp_extraction() {
    let sandbox = tar::Sandbox::new();
    harness::run("tar", 10_000, tar::generate, |input| {
        sandbox.check_unpack(input)
    });
}

#[test]
fn fuzz_cel_expressions_and_templates() {
    harness::run("cel", 1_000, cel::generate, cel::check);
}
