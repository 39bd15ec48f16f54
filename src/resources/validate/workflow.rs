//! Rules for Workflows: inputs, nodes, the DAG their `needs` form, matrices, the CEL
//! expressions and `${{ }}` templates (each checked against what its node may see), the
//! schedule, and each node's Job.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::job::job_spec;
use super::{CheckSpec, MAX_NAME, Problems, dns_label, seconds};
use crate::resources::expr::{self, Scope};
use crate::resources::job::JobSpec;
use crate::resources::parse::closest;
use crate::resources::workflow::matrix::{EXCLUDE, INCLUDE};
use crate::resources::workflow::{
    ConcurrencyPolicy, DEFAULT_MAX_ACTIVE_RUNS, WorkflowJob, WorkflowSpec, naming,
};

/// The most combinations one matrix may have.
pub const MAX_COMBINATIONS: usize = 512;
/// The most nodes one run may have (matrices expanded).
pub const MAX_RUN_NODES: usize = 1000;
/// The most times `until` may run a node.
pub const MAX_UNTIL: u32 = 100;

impl CheckSpec for WorkflowSpec {
    fn check(&self, p: &mut Problems) {
        workflow_spec(p, self);
    }
}

fn workflow_spec(p: &mut Problems, spec: &WorkflowSpec) {
    if spec.jobs.is_empty() {
        p.push(
            "spec.jobs",
            "a Workflow needs at least one job",
            "add a job under spec.jobs",
        );
    }
    inputs(p, spec);
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, node) in spec.jobs.iter().enumerate() {
        let field = format!("spec.jobs[{i}]");
        dns_label(
            p,
            &format!("{field}.name"),
            "job name",
            &node.name,
            MAX_NAME,
        );
        if index.insert(node.name.as_str(), i).is_some() {
            p.push(
                format!("{field}.name"),
                format!("job name \"{}\" is used twice", node.name),
                "give each job its own name",
            );
        }
        matrix(p, &field, node);
        if node.max_parallel == Some(0) {
            p.push(
                format!("{field}.maxParallel"),
                "a maxParallel of 0 would never run the node",
                "use 1 or more, or remove it for no limit",
            );
        } else if node.max_parallel.is_some() && node.matrix.is_empty() {
            p.push(
                format!("{field}.maxParallel"),
                "maxParallel bounds a matrix's combinations, and this node has no matrix",
                "remove maxParallel, or give the node a matrix",
            );
        }
        if let Some(until) = &node.until {
            if until.limit == 0 || until.limit > MAX_UNTIL {
                p.push(
                    format!("{field}.until.limit"),
                    format!("a limit of {} is outside 1..={MAX_UNTIL}", until.limit),
                    format!("run the node at most {MAX_UNTIL} times"),
                );
            }
            seconds(
                p,
                &format!("{field}.until.delaySeconds"),
                until.delay_seconds,
                true,
            );
        }
        let (image_checked, _) = without_templates(&node.job);
        job_spec(p, &format!("{field}.job"), &image_checked);
    }
    needs(p, spec, &index);
    let cycle = find_cycle(spec, &index);
    if let Some(cycle) = &cycle {
        let names: Vec<&str> = cycle.iter().map(|&i| spec.jobs[i].name.as_str()).collect();
        p.push(
            format!("spec.jobs[{}].needs", cycle[0]),
            format!(
                "the needs form a cycle, so none of these jobs can start: {} -> {}",
                names.join(" -> "),
                names[0]
            ),
            "remove one of these needs",
        );
    }
    expressions(p, spec);
    run_nodes(p, spec);
    schedule(p, spec);
    triggers(p, spec);
    if spec.concurrency == Some(0) {
        p.push(
            "spec.concurrency",
            "a concurrency of 0 would never run a job",
            "use 1 or more, or remove it for no limit",
        );
    }
    if let Some(max) = spec.max_active_runs {
        if spec.concurrency_policy != ConcurrencyPolicy::Allow {
            p.push(
                "spec.maxActiveRuns",
                "maxActiveRuns bounds overlapping runs, which only concurrencyPolicy: Allow has",
                "set concurrencyPolicy: Allow, or remove maxActiveRuns",
            );
        } else if max == 0 || max > MAX_ACTIVE_RUNS_LIMIT {
            p.push(
                "spec.maxActiveRuns",
                format!("{max} runs at once is out of range (each run in progress is kept in the status)"),
                format!("use 1 to {MAX_ACTIVE_RUNS_LIMIT}, or remove it for the default of {DEFAULT_MAX_ACTIVE_RUNS}"),
            );
        }
    }
}

/// One webhook, with a secret, whose filter and inputs name only what a delivery has.
fn triggers(p: &mut Problems, spec: &WorkflowSpec) {
    let mut webhooks = 0;
    for (i, trigger) in spec.triggers.iter().enumerate() {
        let at = format!("spec.triggers[{i}]");
        let Some(hook) = &trigger.webhook else {
            p.push(
                at,
                "the trigger says nothing",
                "give it a webhook (webhook: {secretRef: {name: hook-secret, key: token}})",
            );
            continue;
        };
        webhooks += 1;
        if webhooks == 2 {
            p.push(
                format!("{at}.webhook"),
                "a Workflow has one webhook (one URL, /hooks/<workspace>/<name>)",
                "keep one webhook; tell deliveries apart with its filter and inputs",
            );
        }
        let secret = &hook.secret_ref;
        if secret.name.is_empty() || secret.key.is_empty() {
            p.push(
                format!("{at}.webhook.secretRef"),
                "the webhook's secret is not named: deliveries could not be verified",
                "name a Secret and its key (orcaops secret create hook-secret --from-literal=token=...)",
            );
        }
        if let Some(filter) = &hook.filter
            && let Err(e) = crate::resources::expr::check_hook(filter, false)
        {
            p.push(format!("{at}.webhook.filter"), e.message, e.fix);
        }
        for (name, template) in &hook.inputs {
            let field = format!("{at}.webhook.inputs.{name}");
            if !spec.inputs.iter().any(|input| &input.name == name) {
                let declared: Vec<&str> = spec.inputs.iter().map(|i| i.name.as_str()).collect();
                p.push(
                    field,
                    format!(
                        "input \"{name}\" is not declared by the workflow (it declares {})",
                        match declared.is_empty() {
                            true => "none".to_string(),
                            false => declared.join(", "),
                        }
                    ),
                    format!("declare it under spec.inputs (- name: {name}), or drop it here"),
                );
            } else if let Err(e) = crate::resources::expr::check_hook(template, true) {
                p.push(field, e.message, e.fix);
            }
        }
    }
}

/// The most `maxActiveRuns` may be: every run in progress has its nodes in the status,
/// which must stay small.
const MAX_ACTIVE_RUNS_LIMIT: u32 = 10;

/// A name CEL reads as one identifier (`inputs.ref`), so no '-'.
fn identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn inputs(p: &mut Problems, spec: &WorkflowSpec) {
    let mut seen = HashSet::new();
    for (i, input) in spec.inputs.iter().enumerate() {
        let field = format!("spec.inputs[{i}].name");
        if !identifier(&input.name) {
            p.push(
                field,
                format!("input name \"{}\" is not an identifier", input.name),
                "use letters, digits and '_', starting with a letter (expressions read it as inputs.<name>)",
            );
        } else if !seen.insert(input.name.as_str()) {
            p.push(
                field,
                format!("input \"{}\" is declared twice", input.name),
                "declare each input once",
            );
        }
    }
}

fn matrix(p: &mut Problems, field: &str, node: &WorkflowJob) {
    let m = &node.matrix;
    for (key, values) in &m.axes {
        let at = format!("{field}.matrix[\"{key}\"]");
        if !identifier(key) {
            let near = closest(key, [INCLUDE, EXCLUDE]);
            p.push(
                &at,
                match near {
                    Some(reserved) => format!(
                        "matrix key \"{key}\" is not an identifier; did you mean \"{reserved}\"?"
                    ),
                    None => format!("matrix key \"{key}\" is not an identifier"),
                },
                "use letters, digits and '_', starting with a letter (expressions read it as matrix.<key>)",
            );
        }
        if values.is_empty() {
            p.push(
                &at,
                format!("matrix key \"{key}\" has no values, so the job would never run"),
                "list at least one value, or remove the key",
            );
        }
    }
    for (list, entries) in [(EXCLUDE, &m.exclude), (INCLUDE, &m.include)] {
        for (j, entry) in entries.iter().enumerate() {
            let at = format!("{field}.matrix.{list}[{j}]");
            if entry.is_empty() {
                p.push(
                    &at,
                    format!("the {list} entry is empty"),
                    "give the keys and values of a combination, or remove the entry",
                );
            }
            for key in entry.keys() {
                if list == EXCLUDE && !m.axes.contains_key(key) {
                    p.push(
                        &at,
                        format!("exclude names \"{key}\", which is not an axis of the matrix"),
                        "exclude combinations by the matrix's own axes",
                    );
                } else if !identifier(key) {
                    p.push(
                        &at,
                        format!("matrix key \"{key}\" is not an identifier"),
                        "use letters, digits and '_', starting with a letter",
                    );
                }
            }
        }
    }
    let product = m
        .axes
        .values()
        .map(Vec::len)
        .try_fold(1usize, |acc, n| acc.checked_mul(n));
    if !m.axes.is_empty() && product.is_none_or(|n| n > MAX_COMBINATIONS) {
        p.push(
            format!("{field}.matrix"),
            format!("the matrix has more than {MAX_COMBINATIONS} combinations"),
            format!("keep the product of the axes' lengths at {MAX_COMBINATIONS} or fewer"),
        );
    } else if !m.is_empty() && m.expand().is_empty() {
        p.push(
            format!("{field}.matrix"),
            "exclude removes every combination, so the node would never run",
            "exclude fewer combinations",
        );
    }
}

fn needs(p: &mut Problems, spec: &WorkflowSpec, index: &HashMap<&str, usize>) {
    for (i, node) in spec.jobs.iter().enumerate() {
        for (j, need) in node.needs.iter().enumerate() {
            let field = format!("spec.jobs[{i}].needs[{j}]");
            if need == &node.name {
                p.push(
                    field,
                    format!("job \"{need}\" needs itself"),
                    "remove it from its own needs",
                );
            } else if !index.contains_key(need.as_str()) {
                let near = closest(need, spec.jobs.iter().map(|n| n.name.as_str()));
                let hint = near
                    .map(|n| format!(", did you mean \"{n}\"?"))
                    .unwrap_or_default();
                p.push(
                    field,
                    format!(
                        "job \"{}\" needs \"{need}\", which is not a job of this workflow{hint}",
                        node.name
                    ),
                    match near {
                        Some(n) => format!("change \"{need}\" to \"{n}\""),
                        None => {
                            "name one of the jobs under spec.jobs, or remove the need".to_string()
                        }
                    },
                );
            }
        }
    }
}

/// Every `if`, `until` and template, against what its node may see.
fn expressions(p: &mut Problems, spec: &WorkflowSpec) {
    let nodes: BTreeSet<&str> = spec.jobs.iter().map(|n| n.name.as_str()).collect();
    let inputs: BTreeSet<&str> = spec.inputs.iter().map(|i| i.name.as_str()).collect();
    for (i, node) in spec.jobs.iter().enumerate() {
        let field = format!("spec.jobs[{i}]");
        let scope = Scope {
            inputs: inputs.clone(),
            matrix: node.matrix.keys().collect(),
            upstream: spec.upstream(i),
            nodes: nodes.clone(),
            node: &node.name,
            own_outputs: false,
        };
        let mut report = |at: String, result: Result<(), expr::ExprError>| {
            if let Err(e) = result {
                p.push(at, e.message, e.fix);
            }
        };
        if let Some(condition) = &node.if_ {
            report(format!("{field}.if"), expr::check(condition, &scope));
        }
        if let Some(until) = &node.until {
            let scope = Scope {
                own_outputs: true,
                ..scope.clone()
            };
            report(
                format!("{field}.until.expression"),
                expr::check(&until.expression, &scope),
            );
        }
        if let Some(approval) = &node.approval {
            report(
                format!("{field}.approval.message"),
                expr::check_template(&approval.message, &scope),
            );
        }
        let job = &node.job;
        report(
            format!("{field}.job.image"),
            expr::check_template(&job.image, &scope),
        );
        for (s, step) in job.steps.iter().enumerate() {
            if let Some(run) = &step.run {
                report(
                    format!("{field}.job.steps[{s}].run"),
                    expr::check_template(run, &scope),
                );
            }
            for (a, arg) in step.command.iter().flatten().enumerate() {
                report(
                    format!("{field}.job.steps[{s}].command[{a}]"),
                    expr::check_template(arg, &scope),
                );
            }
        }
        for (e, var) in job.env.iter().enumerate() {
            report(
                format!("{field}.job.env[{e}].value"),
                expr::check_template(&var.value, &scope),
            );
        }
    }
}

/// A node's Job with templates in its image replaced by a placeholder, so the image rules
/// (no whitespace, not empty) apply to what is written around them; and whether it had any.
fn without_templates(job: &JobSpec) -> (JobSpec, bool) {
    let mut job = job.clone();
    let had = expr::has_template(&job.image);
    if had && let Ok(pieces) = expr::pieces(&job.image) {
        job.image = pieces
            .into_iter()
            .map(|piece| match piece {
                expr::Piece::Text(t) => t,
                expr::Piece::Expr(_) => "x",
            })
            .collect();
    }
    (job, had)
}

/// The expanded nodes: within bounds, and each name used once.
fn run_nodes(p: &mut Problems, spec: &WorkflowSpec) {
    if spec
        .jobs
        .iter()
        .any(|n| n.matrix.axes.values().map(Vec::len).product::<usize>() > MAX_COMBINATIONS)
    {
        return;
    }
    let nodes = naming::expand(spec);
    if nodes.len() > MAX_RUN_NODES {
        p.push(
            "spec.jobs",
            format!(
                "a run would have {} nodes (matrices expanded), over the limit of {MAX_RUN_NODES}",
                nodes.len()
            ),
            "split the workflow, or shrink its matrices",
        );
        return;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for node in &nodes {
        // Two jobs of one name are reported on their own.
        if let Some(&first) = seen.get(node.name.as_str())
            && spec.jobs[first].name != spec.jobs[node.index].name
        {
            p.push(
                format!("spec.jobs[{}].name", node.index),
                format!(
                    "a combination of \"{}\" and job \"{}\" would both be named \"{}\"",
                    spec.jobs[first.min(node.index)].name,
                    spec.jobs[first.max(node.index)].name,
                    node.name
                ),
                "rename one of the jobs",
            );
        }
        seen.entry(&node.name).or_insert(node.index);
    }
}

fn schedule(p: &mut Problems, spec: &WorkflowSpec) {
    if let Some(schedule) = &spec.schedule
        && let Err(e) = crate::resources::schedule::parse_cron(schedule)
    {
        p.push("spec.schedule", e.problem(), e.fix());
    }
    if let Some(zone) = &spec.time_zone {
        if spec.schedule.is_none() {
            p.push(
                "spec.timeZone",
                "timeZone is set without a schedule",
                "add a schedule, or remove timeZone",
            );
        }
        if let Err(e) = crate::resources::schedule::parse_zone(zone) {
            p.push("spec.timeZone", e.problem(), e.fix());
        }
    }
    if spec.starting_deadline_seconds.is_some() && spec.schedule.is_none() {
        p.push(
            "spec.startingDeadlineSeconds",
            "startingDeadlineSeconds is set without a schedule",
            "add a schedule, or remove startingDeadlineSeconds",
        );
    }
    seconds(
        p,
        "spec.startingDeadlineSeconds",
        spec.starting_deadline_seconds,
        false,
    );
}

/// The first cycle among the nodes' needs (self-needs aside, reported on their own), as node
/// indices in order: each needs the one after it, and the last needs the first.
fn find_cycle(spec: &WorkflowSpec, index: &HashMap<&str, usize>) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let edges: Vec<Vec<usize>> = spec
        .jobs
        .iter()
        .enumerate()
        .map(|(i, node)| {
            node.needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .filter(|&j| j != i)
                .collect()
        })
        .collect();
    let mut marks = vec![Mark::New; spec.jobs.len()];
    for start in 0..spec.jobs.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search: (node, next edge to follow), with the path on the stack.
        let mut stack = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&target) = edges[node].get(*next) {
                *next += 1;
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::OnPath;
                        stack.push((target, 0));
                    }
                    Mark::OnPath => {
                        let from = stack
                            .iter()
                            .position(|&(n, _)| n == target)
                            .expect("on the path");
                        return Some(stack[from..].iter().map(|&(n, _)| n).collect());
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
