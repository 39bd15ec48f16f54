//! Rules for Sandboxes, SandboxTemplates, Workspaces and Policies.

use std::collections::HashSet;

use super::{
    CheckSpec, MAX_NAME, Problems, absolute_path, dns_label, env_vars, resources, seconds,
};
use crate::resources::common::Resources;
use crate::resources::expr::PolicyRule;
use crate::resources::policy::{NetworkRule, PatternRule, PolicySpec};
use crate::resources::quantity;
use crate::resources::sandbox::{HealthCheck, SandboxService, SandboxSpec, SandboxTemplateSpec};
use crate::resources::workspace::{WorkspaceSpec, notification_url};

impl CheckSpec for SandboxSpec {
    fn check(&self, p: &mut Problems) {
        sandbox_spec(p, self);
    }
}

impl CheckSpec for SandboxTemplateSpec {
    fn check(&self, p: &mut Problems) {
        sandbox_template_spec(p, self);
    }
}

impl CheckSpec for WorkspaceSpec {
    fn check(&self, p: &mut Problems) {
        workspace_spec(p, self);
    }
}

impl CheckSpec for PolicySpec {
    fn check(&self, p: &mut Problems) {
        policy_spec(p, self);
    }
}

fn sandbox_spec(p: &mut Problems, spec: &SandboxSpec) {
    if spec.services.is_empty() && spec.template_ref.is_none() {
        p.push(
            "spec.services",
            "a Sandbox needs at least one service, or a templateRef",
            "add a service (`- name: main` with `image: ...`) under spec.services, or name a SandboxTemplate in spec.templateRef",
        );
    }
    if let Some(template) = &spec.template_ref {
        dns_label(p, "spec.templateRef", "template name", template, MAX_NAME);
    }
    services(p, &spec.services);
    lifetimes(p, spec.idle_timeout_seconds, spec.ttl_seconds);
}

fn sandbox_template_spec(p: &mut Problems, spec: &SandboxTemplateSpec) {
    if spec.services.is_empty() {
        p.push(
            "spec.services",
            "a SandboxTemplate needs at least one service",
            "add a service (`- name: main` with `image: ...`) under spec.services",
        );
    }
    services(p, &spec.services);
    lifetimes(p, spec.idle_timeout_seconds, spec.ttl_seconds);
    if let Some(pool) = &spec.warm_pool {
        // A pool's containers are made before any Sandbox claims them, so there is no
        // moment at which to read a secret for them.
        for (i, service) in spec.services.iter().enumerate() {
            for (j, var) in service.env.iter().enumerate() {
                if var.secret_ref().is_some() {
                    p.push(
                        format!("spec.services[{i}].env[{j}].valueFrom"),
                        "a SandboxTemplate with a warm pool cannot read secrets: its containers are made before any sandbox claims them",
                        "drop spec.warmPool, or move this variable to the Sandboxes' own spec.services[].env",
                    );
                }
            }
        }
        if pool.size > MAX_POOL {
            p.push(
                "spec.warmPool.size",
                format!("a warm pool of {} is more than {MAX_POOL}", pool.size),
                format!("keep the pool at {MAX_POOL} or fewer"),
            );
        }
        if let Some(max) = pool.max_size
            && (max < pool.size || max > MAX_POOL)
        {
            p.push(
                "spec.warmPool.maxSize",
                format!("maxSize {max} is outside {}..={MAX_POOL}", pool.size),
                "set maxSize at least as large as size, or leave it out",
            );
        }
        if pool.refill_concurrency == Some(0) {
            p.push(
                "spec.warmPool.refillConcurrency",
                "a refill concurrency of 0 never refills the pool",
                "use 1 or more, or leave it out (4)",
            );
        }
    }
}

/// The largest warm pool one template may ask for.
const MAX_POOL: u32 = 100;

fn lifetimes(p: &mut Problems, idle: Option<u64>, ttl: Option<u64>) {
    seconds(p, "spec.idleTimeoutSeconds", idle, false);
    seconds(p, "spec.ttlSeconds", ttl, false);
}

fn services(p: &mut Problems, services: &[SandboxService]) {
    let mut names = HashSet::new();
    for (i, service) in services.iter().enumerate() {
        let field = format!("spec.services[{i}]");
        dns_label(
            p,
            &format!("{field}.name"),
            "service name",
            &service.name,
            MAX_NAME,
        );
        if !names.insert(service.name.as_str()) {
            p.push(
                format!("{field}.name"),
                format!("service name \"{}\" is used twice", service.name),
                "give each service its own name",
            );
        }
        if service.image.trim().is_empty() {
            p.push(
                format!("{field}.image"),
                "the image is empty",
                "name a container image, such as \"postgres:16\"",
            );
        }
        env_vars(p, &format!("{field}.env"), &service.env);
        let mut ports = HashSet::new();
        let mut port_names = HashSet::new();
        for (j, port) in service.ports.iter().enumerate() {
            let port_field = format!("{field}.ports[{j}]");
            if port.container_port == 0 {
                p.push(
                    format!("{port_field}.containerPort"),
                    "port 0 is not a port",
                    "use a port from 1 to 65535",
                );
            } else if !ports.insert(port.container_port) {
                p.push(
                    format!("{port_field}.containerPort"),
                    format!("port {} is listed twice", port.container_port),
                    "list each port once",
                );
            }
            if let Some(name) = &port.name {
                dns_label(p, &format!("{port_field}.name"), "port name", name, 15);
                if !port_names.insert(name.as_str()) {
                    p.push(
                        format!("{port_field}.name"),
                        format!("port name \"{name}\" is used twice"),
                        "give each port its own name",
                    );
                }
            }
        }
        if let Some(check) = &service.health_check {
            health_check(p, &format!("{field}.healthCheck"), check);
        }
        let mut volumes = HashSet::new();
        for (j, volume) in service.volumes.iter().enumerate() {
            let volume_field = format!("{field}.volumes[{j}]");
            dns_label(
                p,
                &format!("{volume_field}.name"),
                "volume name",
                &volume.name,
                MAX_NAME,
            );
            absolute_path(
                p,
                &format!("{volume_field}.mountPath"),
                "mount path",
                &volume.mount_path,
            );
            if !volumes.insert(volume.mount_path.as_str()) {
                p.push(
                    format!("{volume_field}.mountPath"),
                    format!("two volumes are mounted at \"{}\"", volume.mount_path),
                    "mount each volume at its own path",
                );
            }
        }
        resources(p, &format!("{field}.resources"), service.resources.as_ref());
    }
}

fn health_check(p: &mut Problems, field: &str, check: &HealthCheck) {
    let probes = [
        check.exec.is_some(),
        check.tcp.is_some(),
        check.http.is_some(),
    ];
    match probes.iter().filter(|&&set| set).count() {
        0 => p.push(
            field,
            "the health check has no probe",
            "set exactly one of exec, tcp or http",
        ),
        1 => {}
        _ => p.push(
            field,
            "the health check has more than one probe",
            "keep exactly one of exec, tcp or http",
        ),
    }
    if check
        .exec
        .as_ref()
        .is_some_and(|e| e.first().is_none_or(|c| c.trim().is_empty()))
    {
        p.push(
            format!("{field}.exec"),
            "the exec probe is empty",
            "give the program and its arguments, such as [\"pg_isready\"]",
        );
    }
    if check.tcp.as_ref().is_some_and(|t| t.port == 0) {
        p.push(
            format!("{field}.tcp.port"),
            "port 0 is not a port",
            "use a port from 1 to 65535",
        );
    }
    if let Some(http) = &check.http {
        if http.port == 0 {
            p.push(
                format!("{field}.http.port"),
                "port 0 is not a port",
                "use a port from 1 to 65535",
            );
        }
        if let Some(path) = &http.path
            && !path.starts_with('/')
        {
            p.push(
                format!("{field}.http.path"),
                format!("HTTP path \"{path}\" does not start with '/'"),
                format!("write \"/{path}\""),
            );
        }
    }
    seconds(
        p,
        &format!("{field}.intervalSeconds"),
        check.interval_seconds,
        false,
    );
    seconds(
        p,
        &format!("{field}.timeoutSeconds"),
        check.timeout_seconds,
        false,
    );
    if check.failure_threshold == Some(0) {
        p.push(
            format!("{field}.failureThreshold"),
            "a failure threshold of 0 fails before any check",
            "use 1 or more, or leave it out (3)",
        );
    }
}

fn workspace_spec(p: &mut Problems, spec: &WorkspaceSpec) {
    notifications(p, spec);
    if let Some(quotas) = &spec.quotas {
        let limits = Resources {
            cpu: quotas.cpu.clone(),
            memory: quotas.memory.clone(),
        };
        resources(p, "spec.quotas", Some(&limits));
    }
    let mut members = HashSet::new();
    for (i, member) in spec.members.iter().enumerate() {
        let field = format!("spec.members[{i}].name");
        if member.name.trim().is_empty() {
            p.push(
                field,
                "the member name is empty",
                "give the member's user name",
            );
        } else if !members.insert(member.name.as_str()) {
            p.push(
                field,
                format!("member \"{}\" is listed twice", member.name),
                "list each member once, with one role",
            );
        }
    }
    if let Some(defaults) = &spec.defaults {
        resources(p, "spec.defaults.resources", defaults.resources.as_ref());
        seconds(
            p,
            "spec.defaults.timeoutSeconds",
            defaults.timeout_seconds,
            false,
        );
        if defaults
            .image
            .as_deref()
            .is_some_and(|i| i.trim().is_empty())
        {
            p.push(
                "spec.defaults.image",
                "the default image is empty",
                "name an image, or remove the field",
            );
        }
    }
    for (i, policy) in spec.policies.iter().enumerate() {
        dns_label(
            p,
            &format!("spec.policies[{i}]"),
            "policy name",
            policy,
            MAX_NAME,
        );
    }
}

fn notifications(p: &mut Problems, spec: &WorkspaceSpec) {
    for (i, notification) in spec.notifications.iter().enumerate() {
        let at = format!("spec.notifications[{i}]");
        if let Err((message, fix)) = notification_url(&notification.url) {
            p.push(format!("{at}.url"), message, fix);
        }
        if let Some(secret) = &notification.secret_ref
            && (secret.name.is_empty() || secret.key.is_empty())
        {
            p.push(
                format!("{at}.secretRef"),
                "the signing secret is not named: the receiver could not check the bodies",
                "name a Secret of this workspace and its key (kubectl create secret generic notify --from-literal=key=...), or drop secretRef to send unsigned",
            );
        }
    }
}

fn policy_spec(p: &mut Problems, spec: &PolicySpec) {
    for (i, pattern) in spec.workspaces.iter().enumerate() {
        if pattern.trim().is_empty() {
            p.push(
                format!("spec.workspaces[{i}]"),
                "the workspace pattern is empty",
                "write a name or a pattern such as \"team-*\"",
            );
        }
    }
    if let Some(images) = &spec.images {
        pattern_lists(
            p,
            "spec.images",
            &[("allow", &images.allow), ("deny", &images.deny)],
        );
        for (i, registry) in images.registries.iter().enumerate() {
            if registry.trim().is_empty() || registry.contains('/') {
                p.push(
                    format!("spec.images.registries[{i}]"),
                    format!("\"{registry}\" is not a registry host"),
                    "write a host, with its port if any, such as \"ghcr.io\" or \"registry.internal:5000\"",
                );
            }
        }
    }
    if let Some(commands) = &spec.commands {
        patterns(p, "spec.commands", commands);
    }
    if let Some(NetworkRule(modes)) = &spec.allow_network {
        for (i, mode) in modes.iter().enumerate() {
            if !NetworkRule::MODES.contains(&mode.as_str()) {
                p.push(
                    format!("spec.allowNetwork[{i}]"),
                    format!("\"{mode}\" is not a network mode"),
                    "use none, private or bridge (or write true or false)",
                );
            }
        }
    }
    for (i, label) in spec.required_labels.iter().enumerate() {
        let key = label.split_once('=').map_or(label.as_str(), |(k, _)| k);
        if key.trim().is_empty() {
            p.push(
                format!("spec.requiredLabels[{i}]"),
                "the label key is empty",
                "write a key (\"team\") or a key and value (\"env=prod\")",
            );
        }
    }
    if let Some(cpu) = &spec.max_cpu
        && let Err(e) = quantity::parse_cpu_millis(cpu)
    {
        p.push(
            "spec.maxCpu",
            e,
            "use cores (\"2\") or millicores (\"500m\")",
        );
    }
    if let Some(memory) = &spec.max_memory
        && let Err(e) = quantity::parse_memory_bytes(memory)
    {
        p.push(
            "spec.maxMemory",
            e,
            "use bytes with a suffix, such as \"4Gi\"",
        );
    }
    seconds(p, "spec.maxTimeoutSeconds", spec.max_timeout_seconds, false);
    let mut names = HashSet::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        if rule.name.trim().is_empty() {
            p.push(
                format!("{field}.name"),
                "the rule has no name",
                "name the rule: refusals quote it",
            );
        } else if !names.insert(rule.name.as_str()) {
            p.push(
                format!("{field}.name"),
                format!("rule name \"{}\" is used twice", rule.name),
                "give each rule its own name",
            );
        }
        if rule.expression.trim().is_empty() {
            p.push(
                format!("{field}.expression"),
                "the expression is empty",
                "write a CEL expression over `object` that is true when allowed",
            );
        } else if let Err(e) = PolicyRule::compile(&rule.expression) {
            p.push(format!("{field}.expression"), e.message, e.fix);
        }
        if rule.message.trim().is_empty() {
            p.push(
                format!("{field}.message"),
                "the message is empty",
                "say what the rule refuses and how to comply",
            );
        }
    }
}

fn patterns(p: &mut Problems, field: &str, rule: &PatternRule) {
    pattern_lists(p, field, &[("allow", &rule.allow), ("deny", &rule.deny)]);
}

fn pattern_lists(p: &mut Problems, field: &str, lists: &[(&str, &Vec<String>)]) {
    for (list, patterns) in lists {
        for (i, pattern) in patterns.iter().enumerate() {
            if pattern.trim().is_empty() {
                p.push(
                    format!("{field}.{list}[{i}]"),
                    "the pattern is empty",
                    "write a pattern such as \"docker.io/library/*\", or remove it",
                );
            }
        }
    }
}
