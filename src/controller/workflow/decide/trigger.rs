//! What starts a run, as its trigger says (`s<spec digest>`, `rerun=<token>`,
//! `schedule=<tick>`, joined by `/`), and the inputs a run starts with.

use super::*;

/// What starts a run. Without a schedule or triggers: the spec (a digest of it, `suspend`
/// aside, so suspending and resuming keep the run), plus the re-run token when someone
/// asked for one. With a schedule, only a re-run token (the ticks are the scheduler's);
/// with triggers (a webhook), only a token (each delivery sets one).
pub fn run_trigger(meta: &ObjectMeta, spec: &WorkflowSpec) -> Option<String> {
    let token = meta
        .annotations
        .get(keys::RERUN)
        .filter(|t| !t.is_empty())
        .map(|t| format!("rerun={t}"));
    if spec.schedule.is_some() || !spec.triggers.is_empty() {
        return token;
    }
    let digest = format!("s{}", spec_digest(spec));
    Some(match token {
        Some(token) => format!("{digest}/{token}"),
        None => digest,
    })
}

fn spec_digest(spec: &WorkflowSpec) -> String {
    let mut value = serde_json::to_value(spec).expect("a spec serializes");
    if let Some(map) = value.as_object_mut() {
        map.remove("suspend");
        map.remove("triggers");
    }
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Each input's default ("" when it has none).
pub(super) fn default_inputs(spec: &WorkflowSpec) -> BTreeMap<String, String> {
    spec.inputs
        .iter()
        .map(|i| (i.name.clone(), i.default.clone()))
        .collect()
}

/// The inputs of a run started by a re-run token: each input's default, overridden by
/// the annotation `orcaops.dev/inputs`.
pub(super) fn run_inputs(
    meta: &ObjectMeta,
    spec: &WorkflowSpec,
) -> Result<BTreeMap<String, String>, String> {
    let mut inputs = default_inputs(spec);
    let Some(given) = meta.annotations.get(keys::INPUTS) else {
        return Ok(inputs);
    };
    let given: BTreeMap<String, String> = serde_json::from_str(given).map_err(|e| {
        format!(
            "annotation {} is not a JSON object of strings ({e}); write it as {{\"ref\": \"main\"}}",
            keys::INPUTS
        )
    })?;
    for (name, value) in given {
        if !inputs.contains_key(&name) {
            let declared: Vec<&str> = spec.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "annotation {} gives input \"{name}\", which spec.inputs does not declare (it declares: {})",
                keys::INPUTS,
                declared.join(", ")
            ));
        }
        inputs.insert(name, value);
    }
    Ok(inputs)
}

/// A trigger without its `schedule=<tick>` part: what was asked for by the spec or a
/// token, which a tick does not change.
pub(super) fn request_of(trigger: &str) -> String {
    trigger
        .split('/')
        .filter(|p| !p.starts_with("schedule="))
        .collect::<Vec<_>>()
        .join("/")
}

/// What started a run, by its trigger, as the run records name it: `schedule` (a tick),
/// `api` (`POST .../runs`), `webhook` (a delivery), `rerun` (another token), `spec`
/// (applied or changed).
pub fn trigger_name(run_trigger: &str) -> &'static str {
    let parts: Vec<&str> = run_trigger.split('/').collect();
    if parts.iter().any(|p| p.starts_with("schedule=")) {
        "schedule"
    } else if parts
        .iter()
        .any(|p| p.starts_with(&format!("rerun={}", keys::RUN_TOKEN_PREFIX)))
    {
        "api"
    } else if parts
        .iter()
        .any(|p| p.starts_with(&format!("rerun={}", keys::HOOK_TOKEN_PREFIX)))
    {
        "webhook"
    } else if parts.iter().any(|p| p.starts_with("rerun=")) {
        "rerun"
    } else {
        "spec"
    }
}

/// The re-run token that started a run, by its trigger: none for a tick (whose trigger
/// carries the token an earlier run used) or a run the spec started.
pub fn run_token(run_trigger: &str) -> Option<&str> {
    if run_trigger.split('/').any(|p| p.starts_with("schedule=")) {
        return None;
    }
    run_trigger
        .split('/')
        .find_map(|p| p.strip_prefix("rerun="))
        .filter(|t| !t.is_empty())
}

/// The spec part of a trigger (`s<digest>`), if it has one.
pub(super) fn spec_part(trigger: &str) -> Option<&str> {
    trigger.split('/').next().filter(|p| p.starts_with('s'))
}
