//! Rules for Jobs (and for the Jobs of Workflow nodes, see `workflow`).

use std::collections::{HashMap, HashSet};

use super::{
    CheckSpec, MAX_NAME, Problems, absolute_path, dns_label, env_vars, resources, seconds,
};
use crate::resources::job::{JobSecurity, JobSpec, ServiceReadiness, Step};

impl CheckSpec for JobSpec {
    fn check(&self, p: &mut Problems) {
        job_spec(p, "spec", self);
    }
}

/// Checks a Job spec found at `at` (`spec`, or `spec.jobs[2].job` inside a Workflow).
pub(super) fn job_spec(p: &mut Problems, at: &str, spec: &JobSpec) {
    if spec.image.trim().is_empty() {
        p.push(
            format!("{at}.image"),
            "the image is empty",
            "name a container image, such as \"alpine:3.20\"",
        );
    } else if spec.image.chars().any(char::is_whitespace) {
        p.push(
            format!("{at}.image"),
            format!("image \"{}\" contains whitespace", spec.image),
            "give only the image reference here; commands go in steps",
        );
    }
    steps(p, at, &spec.steps);
    env_vars(p, &format!("{at}.env"), &spec.env);
    if let Some(dir) = &spec.working_dir {
        absolute_path(p, &format!("{at}.workingDir"), "working directory", dir);
    }
    resources(p, &format!("{at}.resources"), spec.resources.as_ref());
    seconds(
        p,
        &format!("{at}.timeoutSeconds"),
        spec.timeout_seconds,
        false,
    );
    if let Some(retry) = &spec.retry {
        seconds(
            p,
            &format!("{at}.retry.backoffSeconds"),
            Some(retry.backoff_seconds),
            true,
        );
        seconds(
            p,
            &format!("{at}.retry.maxBackoffSeconds"),
            Some(retry.max_backoff_seconds),
            true,
        );
        if retry.backoff_seconds > retry.max_backoff_seconds {
            p.push(
                format!("{at}.retry.backoffSeconds"),
                format!(
                    "backoffSeconds ({}) is larger than maxBackoffSeconds ({})",
                    retry.backoff_seconds, retry.max_backoff_seconds
                ),
                "lower backoffSeconds or raise maxBackoffSeconds",
            );
        }
    }
    seconds(
        p,
        &format!("{at}.ttlSecondsAfterFinished"),
        spec.ttl_seconds_after_finished,
        true,
    );
    artifacts(p, at, spec);
    security(p, &format!("{at}.security"), &spec.security);
    services(p, at, spec);
}

/// How many services a Job may have (each is a container for every attempt).
pub const MAX_SERVICES: usize = 8;

fn services(p: &mut Problems, at: &str, spec: &JobSpec) {
    if spec.services.len() > MAX_SERVICES {
        p.push(
            format!("{at}.services"),
            format!(
                "the Job has {} services, over the limit of {MAX_SERVICES}",
                spec.services.len()
            ),
            "run fewer services beside the steps",
        );
    }
    let mut names = HashSet::new();
    // On a pod the services share one network namespace: one port, one service.
    let mut ports_taken: HashMap<u16, &str> = HashMap::new();
    for (i, service) in spec.services.iter().enumerate() {
        let field = format!("{at}.services[{i}]");
        // The name is a host name on the attempt's network, and part of a container name.
        dns_label(
            p,
            &format!("{field}.name"),
            "service name",
            &service.name,
            MAX_SERVICE_NAME,
        );
        if !names.insert(service.name.as_str()) {
            p.push(
                format!("{field}.name"),
                format!("service name \"{}\" is used twice", service.name),
                "give each service its own name",
            );
        }
        if service.name == "steps" {
            p.push(
                format!("{field}.name"),
                "service name \"steps\" is the name of the steps' own container in a pod",
                "choose another name, such as \"db\"",
            );
        }
        if service.image.trim().is_empty() {
            p.push(
                format!("{field}.image"),
                "the image is empty",
                "name a container image, such as \"postgres:16\"",
            );
        } else if service.image.chars().any(char::is_whitespace) {
            p.push(
                format!("{field}.image"),
                format!("image \"{}\" contains whitespace", service.image),
                "give only the image reference here; the command goes in `command`",
            );
        }
        if service.command.first().is_some_and(|c| c.trim().is_empty()) {
            p.push(
                format!("{field}.command"),
                "the command's first entry is empty: it must name the program",
                "write the program and its arguments, or leave `command` out for the image's own",
            );
        }
        env_vars(p, &format!("{field}.env"), &service.env);
        let mut ports = HashSet::new();
        for (j, port) in service.ports.iter().enumerate() {
            if *port == 0 {
                p.push(
                    format!("{field}.ports[{j}]"),
                    "port 0 is not a port",
                    "use a port from 1 to 65535",
                );
            } else if !ports.insert(*port) {
                p.push(
                    format!("{field}.ports[{j}]"),
                    format!("port {port} is listed twice"),
                    "list each port once",
                );
            } else if let Some(other) = ports_taken.insert(*port, &service.name) {
                p.push(
                    format!("{field}.ports[{j}]"),
                    format!("port {port} is also a port of service \"{other}\""),
                    "give each service its own ports (on a cluster they share the pod's network)",
                );
            }
        }
        if let Some(readiness) = &service.readiness {
            service_readiness(p, &format!("{field}.readiness"), readiness);
        }
    }
}

/// A service's container is `<attempt container>-<service>`; a pod's container name is
/// a DNS label of at most 63 characters, and the name is a host name besides.
const MAX_SERVICE_NAME: usize = 30;

fn service_readiness(p: &mut Problems, field: &str, readiness: &ServiceReadiness) {
    match (&readiness.tcp_port, &readiness.exec) {
        (Some(_), Some(_)) => p.push(
            field,
            "the readiness check has both tcpPort and exec",
            "keep one: tcpPort for a port that accepts connections, exec for a command that exits 0",
        ),
        (Some(0), None) => p.push(
            format!("{field}.tcpPort"),
            "port 0 is not a port",
            "use a port from 1 to 65535",
        ),
        (None, Some(exec)) if exec.first().is_none_or(|c| c.trim().is_empty()) => p.push(
            format!("{field}.exec"),
            "the exec check is empty: its first entry must name the program",
            "give the program and its arguments, such as [\"pg_isready\"]",
        ),
        _ => {}
    }
    seconds(
        p,
        &format!("{field}.periodSeconds"),
        readiness.period_seconds,
        false,
    );
    seconds(
        p,
        &format!("{field}.timeoutSeconds"),
        readiness.timeout_seconds,
        false,
    );
    if readiness.failure_threshold == Some(0) {
        p.push(
            format!("{field}.failureThreshold"),
            "a failure threshold of 0 fails before any check",
            format!(
                "use 1 or more, or leave it out ({})",
                ServiceReadiness::DEFAULT_FAILURE_THRESHOLD
            ),
        );
    }
}

/// The steps travel to the container as one argument of the runner shell, and Linux
/// caps one argument at 128 KiB; keep well below it.
pub const MAX_SCRIPT_BYTES: usize = 96 * 1024;

fn steps(p: &mut Problems, at: &str, steps: &[Step]) {
    let script_bytes: usize = steps
        .iter()
        .map(|s| {
            s.run.as_ref().map_or(0, String::len)
                + s.command
                    .iter()
                    .flatten()
                    .map(|a| a.len() + 3)
                    .sum::<usize>()
        })
        .sum();
    if script_bytes > MAX_SCRIPT_BYTES {
        p.push(
            format!("{at}.steps"),
            format!(
                "the steps hold {} KiB of script, over the limit of {} KiB",
                script_bytes / 1024,
                MAX_SCRIPT_BYTES / 1024
            ),
            "put long scripts into the image (or a file the job fetches) and call them from a step",
        );
    }
    if steps.is_empty() {
        p.push(
            format!("{at}.steps"),
            "a Job needs at least one step",
            "add a step, such as `- name: build` with `run: make`",
        );
    }
    let mut seen = HashSet::new();
    for (i, step) in steps.iter().enumerate() {
        let field = format!("{at}.steps[{i}]");
        step_name(p, &format!("{field}.name"), &step.name);
        if !step.name.is_empty() && !seen.insert(step.name.as_str()) {
            p.push(
                format!("{field}.name"),
                format!(
                    "step name \"{}\" is used twice (step names name the steps' logs and results)",
                    step.name
                ),
                "give each step its own name",
            );
        }
        match (&step.run, &step.command) {
            (Some(_), Some(_)) => p.push(
                &field,
                format!("step \"{}\" has both run and command", step.name),
                "keep one: run for a shell script, command for an exec-form list",
            ),
            (None, None) => p.push(
                &field,
                format!("step \"{}\" has neither run nor command", step.name),
                "add `run: <shell script>` or `command: [program, args...]`",
            ),
            (Some(run), None) if run.trim().is_empty() => p.push(
                format!("{field}.run"),
                "the script is empty",
                "write the shell commands to run, or remove the step",
            ),
            (None, Some(command)) if command.first().is_none_or(|c| c.trim().is_empty()) => p.push(
                format!("{field}.command"),
                "the command is empty: its first entry must name the program",
                "write the program and its arguments, such as [\"make\", \"test\"]",
            ),
            (None, Some(command)) if command[0].starts_with('-') => p.push(
                format!("{field}.command[0]"),
                format!(
                    "\"{}\" starts with '-', so a shell would read it as an option, not a program",
                    command[0]
                ),
                format!("name the program by its path, such as \"./{}\"", command[0]),
            ),
            _ => {}
        }
    }
}

/// Step names name files (logs, results), so they are DNS-label-like, with '_' allowed too.
fn step_name(p: &mut Problems, field: &str, name: &str) {
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > MAX_NAME {
        Some(format!(
            "is {} characters long, over the limit of {MAX_NAME}",
            name.len()
        ))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
    {
        Some(format!(
            "contains {c:?}: only lowercase letters, digits, '-' and '_' are allowed"
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("must start and end with a letter or digit".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        p.push(
            field,
            format!("step name \"{name}\" {problem} (step names are used in file names)"),
            format!(
                "use a name such as \"{}\"",
                super::dns_label_suggestion(name, MAX_NAME)
            ),
        );
    }
}

fn artifacts(p: &mut Problems, at: &str, spec: &JobSpec) {
    let mut seen = HashSet::new();
    for (i, artifact) in spec.artifacts.iter().enumerate() {
        let field = format!("{at}.artifacts[{i}]");
        let name = &artifact.name;
        let safe = !name.is_empty()
            && name.len() <= 100
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !safe {
            p.push(
                format!("{field}.name"),
                format!("artifact name \"{name}\" is not a safe file name"),
                "use at most 100 letters, digits, '-', '_' and '.' (for example \"report.xml\")",
            );
        } else if !seen.insert(name.as_str()) {
            p.push(
                format!("{field}.name"),
                format!("artifact name \"{name}\" is used twice"),
                "give each artifact its own name",
            );
        }
        absolute_path(p, &format!("{field}.path"), "artifact path", &artifact.path);
    }
}

/// Kubernetes takes ids from 0 to 2^31 - 1; Docker would take more, but a Job must run on both.
const MAX_ID: i64 = i32::MAX as i64;

fn security(p: &mut Problems, at: &str, security: &JobSecurity) {
    for (field, id) in [
        ("runAsUser", security.run_as_user),
        ("runAsGroup", security.run_as_group),
    ] {
        if let Some(id) = id
            && !(0..=MAX_ID).contains(&id)
        {
            p.push(
                format!("{at}.{field}"),
                format!("{id} is not a valid id"),
                format!("use an id from 0 to {MAX_ID}"),
            );
        }
    }
    if security.run_as_non_root && security.run_as_user == Some(0) {
        p.push(
            format!("{at}.runAsUser"),
            "runAsUser is 0 (root) while runAsNonRoot is true",
            "use a non-zero uid, such as 1000, or remove runAsUser to run as uid 65534",
        );
    }
    // Docker can only set a group together with a user, so a group alone would run
    // differently on the two runtimes.
    if security.run_as_group.is_some()
        && security.run_as_user.is_none()
        && !security.run_as_non_root
    {
        p.push(
            format!("{at}.runAsGroup"),
            "runAsGroup is set without runAsUser",
            "set runAsUser as well (or runAsNonRoot: true), or remove runAsGroup",
        );
    }
}
