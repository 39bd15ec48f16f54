//! What one Policy finds in one object: pure functions of the policy, the object (and the
//! one it replaces) and the workspace's defaults. The rules read what would run: a Job's
//! spec with its workspace's defaults filled in, each node of a Workflow as a Job, each
//! service of a Sandbox or SandboxTemplate.

use std::collections::BTreeMap;

use crate::resources::expr::{PolicyRule, PolicyVars};
use crate::resources::job::JobSpec;
use crate::resources::policy::{NetworkRule, PatternRule, PolicyMode, PolicySpec};
use crate::resources::quantity::{parse_cpu_millis, parse_memory_bytes};
use crate::resources::sandbox::{SandboxNetwork, SandboxService, SandboxSpec, SandboxTemplateSpec};
use crate::resources::workflow::WorkflowSpec;
use crate::resources::workspace::WorkspaceDefaults;
use crate::resources::{Kind, Object};

/// One rule of one policy, broken by one object: where, why, and how to comply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub policy: String,
    pub mode: PolicyMode,
    /// `images.deny`, `commands.deny`, `maxCpu`, `rules.<name>`, ...
    pub rule: String,
    /// The field of the object, as a path (`spec.steps[0].run`).
    pub field: String,
    pub message: String,
    pub fix: String,
}

impl Violation {
    /// One line: `policy P, rule R: spec.image: message (fix: ...)`.
    pub fn line(&self) -> String {
        format!(
            "policy {}, rule {}: {}: {} ({})",
            self.policy, self.rule, self.field, self.message, self.fix
        )
    }
}

/// A Policy ready to evaluate: its spec, its quantities parsed and its CEL compiled.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub name: String,
    pub spec: PolicySpec,
    max_cpu: Option<u64>,
    max_memory: Option<u64>,
    /// Each CEL rule's name, message, and the rule (or why it does not compile).
    rules: Vec<(String, String, Result<PolicyRule, String>)>,
}

impl Compiled {
    pub fn new(name: &str, spec: PolicySpec) -> Compiled {
        let rules = spec
            .rules
            .iter()
            .map(|r| {
                let compiled = PolicyRule::compile(&r.expression).map_err(|e| e.message);
                (r.name.clone(), r.message.clone(), compiled)
            })
            .collect();
        Compiled {
            name: name.to_string(),
            max_cpu: spec
                .max_cpu
                .as_deref()
                .and_then(|c| parse_cpu_millis(c).ok()),
            max_memory: spec
                .max_memory
                .as_deref()
                .and_then(|m| parse_memory_bytes(m).ok()),
            rules,
            spec,
        }
    }

    pub fn mode(&self) -> PolicyMode {
        self.spec.mode
    }

    /// Whether the policy has CEL rules.
    pub fn has_cel(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whether one of its CEL rules nests too deeply for the caller's stack, so that
    /// the policy must be checked on the CEL stack.
    pub fn needs_cel_stack(&self) -> bool {
        self.rules
            .iter()
            .any(|(_, _, rule)| rule.as_ref().is_ok_and(|r| !r.is_shallow()))
    }

    /// Whether the policy selects workspace `namespace` by its own `workspaces` patterns
    /// (an empty list selects all).
    pub fn selects(&self, namespace: &str) -> bool {
        self.spec.workspaces.is_empty() || self.spec.workspaces.iter().any(|p| glob(p, namespace))
    }
}

/// The kinds a policy covers.
pub fn covers(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Job | Kind::Workflow | Kind::Sandbox | Kind::SandboxTemplate
    )
}

/// Everything `policy` finds in `object` (replacing `old`), with the workspace's
/// `defaults` filled in where the object leaves them out. CEL rules are evaluated here:
/// call it on the CEL stack when [`Compiled::needs_cel_stack`].
pub fn check(
    policy: &Compiled,
    object: &Object,
    old: Option<&Object>,
    defaults: Option<&WorkspaceDefaults>,
) -> Vec<Violation> {
    let subject = Subject::new(object, old, defaults);
    let vars = policy.has_cel().then(|| subject.vars());
    check_subject(policy, &subject, vars.as_ref())
}

/// One write made ready for every policy that covers it: what would run is read from
/// the spec once, not once per policy.
pub struct Subject<'a> {
    object: &'a Object,
    old: Option<&'a Object>,
    workloads: Vec<Workload>,
}

impl<'a> Subject<'a> {
    pub fn new(
        object: &'a Object,
        old: Option<&'a Object>,
        defaults: Option<&WorkspaceDefaults>,
    ) -> Subject<'a> {
        let workloads = match covers(object.kind) {
            true => workloads(object, defaults),
            false => Vec::new(),
        };
        Subject {
            object,
            old,
            workloads,
        }
    }

    /// The object and the one it replaces as CEL rules see them; made once per write,
    /// on the thread that evaluates the rules.
    pub fn vars(&self) -> PolicyVars {
        PolicyVars::new(self.object, self.old)
    }
}

/// What `policy` finds in `subject`; `vars` are the subject's CEL values, needed when
/// the policy [`has_cel`](Compiled::has_cel) rules.
pub fn check_subject(
    policy: &Compiled,
    subject: &Subject<'_>,
    vars: Option<&PolicyVars>,
) -> Vec<Violation> {
    if !covers(subject.object.kind) {
        return Vec::new();
    }
    let mut found = Finder {
        policy,
        out: Vec::new(),
    };
    for workload in &subject.workloads {
        found.workload(workload);
    }
    found.labels(&subject.object.metadata.labels);
    if policy.has_cel() {
        match vars {
            Some(vars) => found.cel(vars),
            None => found.cel(&subject.vars()),
        }
    }
    found.out
}

/// What would run, read from one spec.
#[derive(Debug, Default)]
struct Workload {
    containers: Vec<Container>,
    /// The field and mode of the network.
    network: Option<(String, &'static str)>,
    /// The field and the timeout (None: none, runs unbounded). Jobs only.
    timeout: Option<(String, Option<u64>)>,
}

#[derive(Debug, Default)]
struct Container {
    /// The field of the container (`spec`, `spec.services[1]`).
    field: String,
    image: String,
    /// The image as a full reference (`busybox` is `busybox:latest`), which the image
    /// patterns match, worked out once for every policy.
    reference: String,
    /// Each command as `(field, text)`: a step's `run`, a `command` joined by spaces.
    commands: Vec<(String, String)>,
    /// `(field, quantity)` of the cpu and memory; None where none is set.
    cpu: Option<String>,
    memory: Option<String>,
    /// Whether the container's resources are checked against maxCpu and maxMemory (a
    /// Job's services share the Job's bounds and set none of their own).
    bounded: bool,
}

fn workloads(object: &Object, defaults: Option<&WorkspaceDefaults>) -> Vec<Workload> {
    let raw = &object.spec;
    match object.kind {
        Kind::Job => serde_json::from_value::<JobSpec>(raw.clone())
            .map(|spec| vec![job("spec", spec, raw, defaults)])
            .unwrap_or_default(),
        Kind::Workflow => serde_json::from_value::<WorkflowSpec>(raw.clone())
            .map(|spec| {
                spec.jobs
                    .into_iter()
                    .enumerate()
                    .map(|(i, node)| {
                        let node_raw = &raw["jobs"][i]["job"];
                        job(&format!("spec.jobs[{i}].job"), node.job, node_raw, defaults)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Kind::Sandbox => serde_json::from_value::<SandboxSpec>(raw.clone())
            .map(|spec| vec![sandbox(&spec.services, spec.network, defaults)])
            .unwrap_or_default(),
        Kind::SandboxTemplate => serde_json::from_value::<SandboxTemplateSpec>(raw.clone())
            .map(|spec| vec![sandbox(&spec.services, spec.network, defaults)])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn job(
    at: &str,
    mut spec: JobSpec,
    raw: &serde_json::Value,
    defaults: Option<&WorkspaceDefaults>,
) -> Workload {
    if let Some(defaults) = defaults {
        defaults.apply_to_job(&mut spec, raw);
    }
    let mut commands = Vec::new();
    for (i, step) in spec.steps.iter().enumerate() {
        if let Some(run) = &step.run {
            commands.push((format!("{at}.steps[{i}].run"), run.clone()));
        }
        if let Some(command) = &step.command {
            commands.push((format!("{at}.steps[{i}].command"), command.join(" ")));
        }
    }
    let resources = spec.resources.clone().unwrap_or_default();
    let mut containers = vec![Container {
        field: at.to_string(),
        reference: full_reference(&spec.image),
        image: spec.image.clone(),
        commands,
        cpu: resources.cpu,
        memory: resources.memory,
        bounded: true,
    }];
    for (i, service) in spec.services.iter().enumerate() {
        let field = format!("{at}.services[{i}]");
        let commands = match service.command.is_empty() {
            true => Vec::new(),
            false => vec![(format!("{field}.command"), service.command.join(" "))],
        };
        containers.push(Container {
            field,
            reference: full_reference(&service.image),
            image: service.image.clone(),
            commands,
            ..Default::default()
        });
    }
    let network = match spec.network {
        crate::resources::job::JobNetwork::None => "none",
        crate::resources::job::JobNetwork::Bridge => "bridge",
    };
    Workload {
        containers,
        network: Some((format!("{at}.network"), network)),
        timeout: Some((format!("{at}.timeoutSeconds"), spec.timeout_seconds)),
    }
}

fn sandbox(
    services: &[SandboxService],
    network: Option<SandboxNetwork>,
    defaults: Option<&WorkspaceDefaults>,
) -> Workload {
    let default_resources = defaults.and_then(|d| d.resources.clone());
    let containers = services
        .iter()
        .enumerate()
        .map(|(i, service)| {
            let field = format!("spec.services[{i}]");
            let resources = service
                .resources
                .clone()
                .or_else(|| default_resources.clone())
                .unwrap_or_default();
            let commands = match service.command.is_empty() {
                true => Vec::new(),
                false => vec![(format!("{field}.command"), service.command.join(" "))],
            };
            Container {
                field,
                reference: full_reference(&service.image),
                image: service.image.clone(),
                commands,
                cpu: resources.cpu,
                memory: resources.memory,
                bounded: true,
            }
        })
        .collect();
    let mode = match network.unwrap_or_default() {
        SandboxNetwork::None => "none",
        SandboxNetwork::Private => "private",
        SandboxNetwork::Bridge => "bridge",
    };
    Workload {
        containers,
        network: Some(("spec.network".to_string(), mode)),
        timeout: None,
    }
}

struct Finder<'a> {
    policy: &'a Compiled,
    out: Vec<Violation>,
}

impl Finder<'_> {
    fn push(&mut self, rule: &str, field: String, message: String, fix: String) {
        self.out.push(Violation {
            policy: self.policy.name.clone(),
            mode: self.policy.mode(),
            rule: rule.to_string(),
            field,
            message,
            fix,
        });
    }

    fn workload(&mut self, w: &Workload) {
        for c in &w.containers {
            self.image(c);
            if let Some(rule) = &self.policy.spec.commands {
                self.commands(c, rule);
            }
            if c.bounded {
                self.resources(c);
            }
        }
        if let (Some(rule), Some((field, mode))) = (&self.policy.spec.allow_network, &w.network)
            && !rule.allows(mode)
        {
            let NetworkRule(allowed) = rule;
            let allowed = match allowed.is_empty() {
                true => "none: the policy allows no network mode".to_string(),
                false => allowed.join(", "),
            };
            self.push(
                "allowNetwork",
                field.clone(),
                format!("network \"{mode}\" is not allowed"),
                format!("use one of: {allowed}"),
            );
        }
        if let (Some(max), Some((field, timeout))) =
            (self.policy.spec.max_timeout_seconds, &w.timeout)
        {
            match timeout {
                Some(t) if *t <= max => {}
                Some(t) => self.push(
                    "maxTimeoutSeconds",
                    field.clone(),
                    format!("timeout {t}s is above the maximum of {max}s"),
                    format!("set {field} to {max} or less"),
                ),
                None => self.push(
                    "maxTimeoutSeconds",
                    field.clone(),
                    "no timeout is set, so it could run for ever".to_string(),
                    format!(
                        "set {field} to {max} or less (or a workspace default, spec.defaults.timeoutSeconds)"
                    ),
                ),
            }
        }
    }

    fn image(&mut self, c: &Container) {
        let Some(rule) = &self.policy.spec.images else {
            return;
        };
        let field = format!("{}.image", c.field);
        let image = &c.reference;
        if let Some(p) = rule.deny.iter().find(|p| glob(p, image)) {
            self.push(
                "images.deny",
                field.clone(),
                format!("image \"{}\" matches the denied pattern \"{p}\"", c.image),
                "use an image the policy does not deny (pin a version tag or a digest)".into(),
            );
        }
        if !rule.allow.is_empty() && !rule.allow.iter().any(|p| glob(p, image)) {
            self.push(
                "images.allow",
                field.clone(),
                format!("image \"{}\" matches none of the allowed patterns", c.image),
                format!("use an image matching one of: {}", rule.allow.join(", ")),
            );
        }
        let registry = registry_of(&c.image);
        if !rule.registries.is_empty() && !rule.registries.iter().any(|r| r == registry) {
            self.push(
                "images.registries",
                field.clone(),
                format!("image \"{}\" comes from {registry}", c.image),
                format!(
                    "use an image from one of these registries: {}",
                    rule.registries.join(", ")
                ),
            );
        }
        if rule.require_digest && !c.image.contains("@sha256:") {
            self.push(
                "images.requireDigest",
                field,
                format!("image \"{}\" is not pinned by digest", c.image),
                "pin it as name@sha256:<digest> (docker inspect --format '{{index .RepoDigests 0}}' IMAGE)".into(),
            );
        }
    }

    fn commands(&mut self, c: &Container, rule: &PatternRule) {
        for (field, text) in &c.commands {
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if let Some(p) = rule.deny.iter().find(|p| glob(p, line)) {
                    self.push(
                        "commands.deny",
                        field.clone(),
                        format!(
                            "command `{}` matches the denied pattern \"{p}\"",
                            shorten(line)
                        ),
                        "remove the command, or do the work another way".into(),
                    );
                } else if !rule.allow.is_empty() && !rule.allow.iter().any(|p| glob(p, line)) {
                    self.push(
                        "commands.allow",
                        field.clone(),
                        format!(
                            "command `{}` matches none of the allowed patterns",
                            shorten(line)
                        ),
                        format!("use commands matching one of: {}", rule.allow.join(", ")),
                    );
                }
            }
        }
    }

    fn resources(&mut self, c: &Container) {
        if let Some(max) = self.policy.max_cpu {
            let field = format!("{}.resources.cpu", c.field);
            let shown = self.policy.spec.max_cpu.clone().unwrap_or_default();
            match c.cpu.as_deref().map(parse_cpu_millis) {
                Some(Ok(cpu)) if cpu <= max => {}
                Some(Ok(_)) => self.push(
                    "maxCpu",
                    field.clone(),
                    format!("cpu {} is above the maximum of {shown}", c.cpu.as_deref().unwrap_or("")),
                    format!("set {field} to {shown} or less"),
                ),
                // A malformed quantity is the validator's to report.
                Some(Err(_)) => {}
                None => self.push(
                    "maxCpu",
                    field.clone(),
                    "no cpu limit is set".into(),
                    format!("set {field} to {shown} or less (or a workspace default, spec.defaults.resources)"),
                ),
            }
        }
        if let Some(max) = self.policy.max_memory {
            let field = format!("{}.resources.memory", c.field);
            let shown = self.policy.spec.max_memory.clone().unwrap_or_default();
            match c.memory.as_deref().map(parse_memory_bytes) {
                Some(Ok(memory)) if memory <= max => {}
                Some(Ok(_)) => self.push(
                    "maxMemory",
                    field.clone(),
                    format!(
                        "memory {} is above the maximum of {shown}",
                        c.memory.as_deref().unwrap_or("")
                    ),
                    format!("set {field} to {shown} or less"),
                ),
                Some(Err(_)) => {}
                None => self.push(
                    "maxMemory",
                    field.clone(),
                    "no memory limit is set".into(),
                    format!("set {field} to {shown} or less (or a workspace default, spec.defaults.resources)"),
                ),
            }
        }
    }

    fn labels(&mut self, labels: &BTreeMap<String, String>) {
        for required in &self.policy.spec.required_labels {
            let (key, value) = match required.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (required.as_str(), None),
            };
            let ok = match (labels.get(key), value) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !ok {
                self.push(
                    "requiredLabels",
                    format!("metadata.labels.{key}"),
                    match value {
                        Some(v) => format!("label {key}={v} is required"),
                        None => format!("label {key} is required"),
                    },
                    match value {
                        Some(v) => format!("add `{key}: \"{v}\"` under metadata.labels"),
                        None => format!("add `{key}: <value>` under metadata.labels"),
                    },
                );
            }
        }
    }

    fn cel(&mut self, vars: &PolicyVars) {
        for (name, message, rule) in &self.policy.rules {
            let rule_name = format!("rules.{name}");
            let outcome = match rule {
                Ok(rule) => rule.allows(vars),
                Err(e) => Err(e.clone()),
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => self.push(
                    &rule_name,
                    "object".into(),
                    message.clone(),
                    format!(
                        "change the object so that `{}` holds",
                        rule.as_ref().map(|r| r.source()).unwrap_or("")
                    ),
                ),
                // A rule that cannot be evaluated fails closed: it is a violation.
                Err(e) => self.push(
                    &rule_name,
                    "object".into(),
                    format!("{message} (the rule could not be evaluated: {e})"),
                    "make sure the fields the rule reads are set, or fix the rule (has(object.spec.x) guards a missing field)".into(),
                ),
            }
        }
    }
}

fn shorten(line: &str) -> String {
    const MAX: usize = 80;
    match line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

/// `image` with the tag Docker reads when there is none: `busybox` is `busybox:latest`.
pub fn full_reference(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The registry an image is pulled from: the first part of the name when it is a host
/// (has a '.' or a ':', or is `localhost`), `docker.io` otherwise.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (`/`
/// included) and `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        // One byte is one character: match the bytes, without collecting anything.
        return glob_over(pattern.as_bytes(), text.as_bytes(), b'?', b'*');
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_over(&p, &t, '?', '*')
}

fn glob_over<T: PartialEq + Copy>(p: &[T], t: &[T], one: T, any: T) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == one || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == any {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == any)
}

#[cfg(test)]
mod tests;
