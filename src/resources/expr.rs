//! CEL expressions and `${{ … }}` templates of Workflows: checked at apply (validation)
//! against what a node may see, and evaluated by the Workflow controller.
//!
//! An expression sees `inputs.<name>`, `matrix.<key>`, `jobs.<node>.phase`,
//! `jobs.<node>.outputs.<key>` and `workflow.run` (and, in `until`, the node's own
//! `outputs`). Node names hold '-', which CEL reads as a minus: write `jobs['wait-ready']`.
//! Every value is a string but `workflow.run`, an integer.

use std::collections::{BTreeMap, BTreeSet};

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use cel::{Context, Program, Value};

/// The roots an expression may name.
pub const ROOTS: [&str; 4] = ["inputs", "matrix", "jobs", "workflow"];
/// The root `until` adds: the node's own outputs.
pub const OUTPUTS: &str = "outputs";

/// What a node's expressions may refer to.
#[derive(Clone, Debug, Default)]
pub struct Scope<'a> {
    /// The declared inputs.
    pub inputs: BTreeSet<&'a str>,
    /// The keys of the node's matrix (none: the node has no matrix).
    pub matrix: BTreeSet<&'a str>,
    /// The nodes upstream of this one (its needs, transitively).
    pub upstream: BTreeSet<&'a str>,
    /// Every node of the workflow, to tell "unknown" from "not upstream".
    pub nodes: BTreeSet<&'a str>,
    /// The node the expression belongs to.
    pub node: &'a str,
    /// Whether `outputs` (the node's own) may be named: in `until` only.
    pub own_outputs: bool,
}

/// What is wrong with an expression or template, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    pub message: String,
    pub fix: String,
}

impl ExprError {
    fn new(message: impl Into<String>, fix: impl Into<String>) -> Self {
        ExprError {
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Compiles `source` and checks every name it uses against `scope`.
pub fn check(source: &str, scope: &Scope<'_>) -> Result<(), ExprError> {
    let refs = limits::on_cel_stack(|| {
        let program = compile(source)?;
        let mut refs = Vec::new();
        references(program.expression(), &mut Vec::new(), &mut refs);
        Ok(refs)
    })
    .map_err(|e| ExprError::new(format!("`{source}`: {e}"), "simplify the expression"))??;
    for path in refs {
        check_path(&path, scope)?;
    }
    Ok(())
}

/// Parses `source` within the limits. Call it on the CEL stack (`limits::on_cel_stack`):
/// the parser recurses deeply.
fn compile(source: &str) -> Result<Program, ExprError> {
    if source.trim().is_empty() {
        return Err(ExprError::new(
            "the expression is empty",
            "write a CEL expression, such as inputs.ref == 'main'",
        ));
    }
    limits::check_length(source)?;
    // A parser of text from outside must not take the process down: a panic in it is
    // one more refusal.
    let compiled = std::panic::catch_unwind(|| Program::compile(source)).map_err(|_| {
        ExprError::new(
            format!("`{source}` cannot be parsed as CEL"),
            "simplify the expression",
        )
    })?;
    let program = compiled.map_err(|e| {
        let detail = e
            .errors
            .iter()
            .map(|e| format!("column {}: {}", e.pos.1 + 1, e.msg))
            .collect::<Vec<_>>()
            .join("; ");
        ExprError::new(
            format!("`{source}` is not a valid CEL expression: {detail}"),
            "correct the expression; strings are quoted ('main'), and names with '-' are indexed (jobs['my-node'])",
        )
    })?;
    limits::check_cost(source, program.expression())?;
    limits::check_patterns(source, program.expression())?;
    Ok(program)
}

/// The names used in an expression, root first: `jobs.build.outputs.v` and
/// `jobs['build'].outputs` are both `[jobs, build, outputs, ...]`.
fn references(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if let Some(path) = path_of(e)
        && !bound.contains(&path[0])
    {
        out.push(path);
        return;
    }
    match &e.expr {
        Expr::Ident(name) => {
            if !bound.contains(name) {
                out.push(vec![name.clone()]);
            }
        }
        Expr::Select(s) => references(&s.operand, bound, out),
        Expr::Call(c) => {
            if let Some(target) = &c.target {
                references(target, bound, out);
            }
            for arg in &c.args {
                references(arg, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            references(&c.iter_range, bound, out);
            references(&c.accu_init, bound, out);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            references(&c.loop_cond, bound, out);
            references(&c.loop_step, bound, out);
            references(&c.result, bound, out);
            bound.truncate(before);
        }
        Expr::List(l) => l.elements.iter().for_each(|x| references(x, bound, out)),
        Expr::Map(m) => {
            for entry in &m.entries {
                if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                    references(&me.key, bound, out);
                    references(&me.value, bound, out);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let cel::common::ast::EntryExpr::StructField(f) = &entry.expr {
                    references(&f.value, bound, out);
                }
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// `a.b['c'].d` as `[a, b, c, d]`; `None` when it is not a name with fields.
fn path_of(e: &IdedExpr) -> Option<Vec<String>> {
    match &e.expr {
        Expr::Ident(name) => Some(vec![name.clone()]),
        Expr::Select(s) => {
            let mut path = path_of(&s.operand)?;
            path.push(s.field.clone());
            Some(path)
        }
        Expr::Call(c) if c.func_name == "_[_]" && c.target.is_none() && c.args.len() == 2 => {
            match &c.args[1].expr {
                Expr::Literal(LiteralValue::String(key)) => {
                    let mut path = path_of(&c.args[0])?;
                    path.push(key.to_string());
                    Some(path)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn check_path(path: &[String], scope: &Scope<'_>) -> Result<(), ExprError> {
    let root = path[0].as_str();
    let field = path.get(1).map(String::as_str);
    let joined = path.join(".");
    match root {
        "inputs" => match field {
            Some(name) if !scope.inputs.contains(name) => Err(ExprError::new(
                format!(
                    "`{joined}`: the workflow has no input \"{name}\"{}",
                    listed(&scope.inputs)
                ),
                format!(
                    "declare it under spec.inputs (`- name: {name}`), or use one that is declared"
                ),
            )),
            _ => Ok(()),
        },
        "matrix" if scope.matrix.is_empty() => Err(ExprError::new(
            format!("`{joined}`: node \"{}\" has no matrix", scope.node),
            "give the node a matrix, or remove the reference",
        )),
        "matrix" => match field {
            Some(key) if !scope.matrix.contains(key) => Err(ExprError::new(
                format!(
                    "`{joined}`: the matrix of \"{}\" has no key \"{key}\"{}",
                    scope.node,
                    listed(&scope.matrix)
                ),
                "use one of the matrix's keys",
            )),
            _ => Ok(()),
        },
        "jobs" => {
            let Some(node) = field else {
                return Err(ExprError::new(
                    format!("`{joined}` names no node"),
                    "write jobs.<node>.phase or jobs.<node>.outputs.<key> (jobs['my-node'] when the name has '-')",
                ));
            };
            if !scope.nodes.contains(node) {
                return Err(ExprError::new(
                    format!("`{joined}`: the workflow has no node \"{node}\""),
                    "name a node of spec.jobs (jobs['my-node'] when the name has '-'; a bare '-' is a minus)",
                ));
            }
            if !scope.upstream.contains(node) {
                return Err(ExprError::new(
                    format!(
                        "`{joined}`: node \"{node}\" is not upstream of \"{}\", so it may not have run yet",
                        scope.node
                    ),
                    format!(
                        "add \"{node}\" to the needs of \"{}\" (directly or through a node it needs)",
                        scope.node
                    ),
                ));
            }
            match path.get(2).map(String::as_str) {
                None | Some("phase") | Some("outputs") => Ok(()),
                Some(other) => Err(ExprError::new(
                    format!("`{joined}`: a node has no \"{other}\""),
                    format!("use jobs['{node}'].phase or jobs['{node}'].outputs.<key>"),
                )),
            }
        }
        "workflow" => match field {
            None | Some("run") => Ok(()),
            Some(other) => Err(ExprError::new(
                format!("`{joined}`: the workflow has no \"{other}\""),
                "use workflow.run",
            )),
        },
        OUTPUTS if scope.own_outputs => Ok(()),
        _ => {
            let roots = if scope.own_outputs {
                "inputs, matrix, jobs, workflow and outputs"
            } else {
                "inputs, matrix, jobs and workflow"
            };
            Err(ExprError::new(
                format!("`{joined}`: unknown variable \"{root}\"; expressions here see {roots}"),
                format!("start the name with one of {roots} (strings are quoted: '{root}')"),
            ))
        }
    }
}

fn listed(names: &BTreeSet<&str>) -> String {
    if names.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = names.iter().copied().collect();
        format!(" (it has {})", names.join(", "))
    }
}

/// One piece of a template: text as written, or an expression between `${{` and `}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Expr(&'a str),
}

/// `s` without the whitespace CEL itself skips around tokens (space, tab, line feed,
/// carriage return, form feed). `str::trim` would also drop what CEL refuses, such as a
/// vertical tab or a no-break space, and a template would then run what `check` refuses.
fn trim_cel(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c'))
}

/// Splits `text` at its `${{ … }}` templates.
pub fn pieces(text: &str) -> Result<Vec<Piece<'_>>, ExprError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else {
            return Err(ExprError::new(
                format!(
                    "a template opened with `${{{{` is never closed: `{}`",
                    &rest[start..]
                ),
                "close it with `}}`, as in ${{ inputs.ref }}",
            ));
        };
        out.push(Piece::Expr(trim_cel(&after[..end])));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Whether `text` holds a template.
pub fn has_template(text: &str) -> bool {
    text.contains("${{")
}

/// Checks every template in `text`.
pub fn check_template(text: &str, scope: &Scope<'_>) -> Result<(), ExprError> {
    for piece in pieces(text)? {
        if let Piece::Expr(source) = piece {
            check(source, scope)?;
        }
    }
    Ok(())
}

/// What a node's expressions are evaluated with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vars {
    pub inputs: BTreeMap<String, String>,
    pub matrix: BTreeMap<String, String>,
    /// Upstream nodes (by their name in the spec): phase and outputs.
    pub jobs: BTreeMap<String, NodeVars>,
    pub run: u32,
    /// The node's own outputs, for `until`.
    pub outputs: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeVars {
    pub phase: String,
    pub outputs: BTreeMap<String, String>,
}

/// The CEL standard library, built once for the process: `Context::default()` builds it
/// again for every context, which cost more than most evaluations.
static STDLIB: std::sync::LazyLock<std::sync::Arc<cel::Env>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(cel::Env::stdlib()));

/// A context with the standard library and no variables.
fn base_context() -> Context<'static, 'static> {
    Context::with_env(STDLIB.clone())
}

/// What an expression is evaluated with: the variables it may name.
pub trait Bindings: Sync {
    fn context(&self) -> Context<'static, 'static>;
}

impl Bindings for Vars {
    fn context(&self) -> Context<'static, 'static> {
        let mut ctx = base_context();
        let jobs: serde_json::Map<String, serde_json::Value> = self
            .jobs
            .iter()
            .map(|(name, node)| {
                let fields = serde_json::json!({"phase": node.phase, "outputs": node.outputs});
                (name.clone(), fields)
            })
            .collect();
        let mut add = |name: &str, value: serde_json::Value| {
            let value = cel::to_value(value).expect("JSON is a CEL value");
            ctx.add_variable_from_value(name, value);
        };
        add("inputs", serde_json::json!(self.inputs));
        add("matrix", serde_json::json!(self.matrix));
        add("jobs", serde_json::Value::Object(jobs));
        add("workflow", serde_json::json!({"run": self.run}));
        if let Some(outputs) = &self.outputs {
            add(OUTPUTS, serde_json::json!(outputs));
        }
        ctx
    }
}

/// Evaluates a condition; anything but a boolean is an error that says what it was.
pub fn eval_bool(source: &str, vars: &impl Bindings) -> Result<bool, String> {
    match eval(source, vars)? {
        Value::Bool(b) => Ok(b),
        other => Err(format!(
            "`{source}` gave {}, not true or false",
            display(&other).unwrap_or_else(|| format!("{other:?}"))
        )),
    }
}

fn eval(source: &str, vars: &impl Bindings) -> Result<Value, String> {
    limits::on_cel_stack(|| {
        let program = compile(source).map_err(|e| e.message)?;
        let context = vars.context();
        program
            .execute(&context)
            .map_err(|e| format!("`{source}` cannot be evaluated: {e}"))
    })
    .map_err(|e| format!("`{source}` cannot be evaluated: {e}"))?
}

/// `text` with each `${{ … }}` replaced by its value as text.
pub fn render(text: &str, vars: &impl Bindings) -> Result<String, String> {
    if !has_template(text) {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text).map_err(|e| e.message)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Expr(source) => {
                let value = eval(source, vars)?;
                let Some(shown) = display(&value) else {
                    return Err(format!(
                        "`${{{{ {source} }}}}` gave a {:?}, which has no text form; pick one value from it",
                        value.type_of()
                    ));
                };
                out.push_str(&shown);
            }
        }
    }
    Ok(out)
}

/// A scalar as text; `None` for lists, maps and the like.
fn display(value: &Value) -> Option<String> {
    Some(match value {
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        _ => return None,
    })
}

mod limits;
pub use limits::{MAX_BYTES, MAX_COST};

#[cfg(test)]
mod tests;

/// The names a Policy rule may use: the object written, and the one it replaces (null
/// on create).
pub const POLICY_ROOTS: [&str; 2] = ["object", "oldObject"];

/// A Policy's CEL rule (`spec.rules[].expression`), compiled once and evaluated on
/// every write it covers.
#[derive(Clone, Debug)]
pub struct PolicyRule {
    source: String,
    program: std::sync::Arc<Program>,
    /// How deeply the expression nests (its evaluation recurses as deep).
    depth: usize,
}

impl PolicyRule {
    /// Compiles `source` within the limits, and checks that it names only `object` and
    /// `oldObject`.
    pub fn compile(source: &str) -> Result<PolicyRule, ExprError> {
        let program = compile_rooted(
            source,
            &POLICY_ROOTS,
            "a policy rule",
            "a rule sees `object` (what is written) and `oldObject` (what it replaces, null on create), such as object.spec.timeoutSeconds <= 600",
        )?;
        let depth = limits::depth(program.expression());
        Ok(PolicyRule {
            source: source.to_string(),
            program: std::sync::Arc::new(program),
            depth,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// How deeply the rule's expression nests.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether the rule nests shallowly enough to be evaluated on any thread's stack;
    /// deeper rules are evaluated on the CEL stack ([`on_cel_stack`]).
    pub fn is_shallow(&self) -> bool {
        self.depth <= SHALLOW_DEPTH
    }

    /// Whether the rule allows the object in `vars`; an expression that is not a
    /// boolean, or fails (a missing field), is an error that says so. A rule that is not
    /// [`is_shallow`](Self::is_shallow) must be called on the CEL stack
    /// ([`on_cel_stack`]), once for a whole batch of rules.
    pub fn allows(&self, vars: &PolicyVars) -> Result<bool, String> {
        match self.program.execute(&vars.context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "`{}` gave {}, not true or false",
                self.source,
                display(&other).unwrap_or_else(|| format!("{other:?}"))
            )),
            Err(e) => Err(format!("`{}` cannot be evaluated: {e}", self.source)),
        }
    }
}

/// How deeply a policy rule may nest and still be evaluated on the caller's stack
/// (a tokio worker's 2 MiB): evaluation recurses once per level, and twelve levels
/// cover every rule a person writes (`a && b && c || has(x.y) && x.y.all(...)`).
/// A deeper one costs a thread with the CEL stack per write, which is what this avoids.
pub const SHALLOW_DEPTH: usize = 12;

/// What a policy rule is evaluated with: the object written and the one it replaces,
/// bound once per write as CEL variables (turning a value into the interpreter's own is
/// a walk over all of it), not once per rule.
pub struct PolicyVars {
    context: Context<'static, 'static>,
}

impl PolicyVars {
    /// `object` (as written) and `old` (`None` on create: `oldObject` is null).
    pub fn new<T: serde::Serialize>(object: &T, old: Option<&T>) -> PolicyVars {
        let convert = |v: &T| cel::to_value(v).unwrap_or(Value::Null);
        let mut context = base_context();
        context.add_variable_from_value("object", convert(object));
        context.add_variable_from_value("oldObject", old.map(convert).unwrap_or(Value::Null));
        PolicyVars { context }
    }
}

impl std::fmt::Debug for PolicyVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyVars { object, oldObject }")
    }
}

/// Compiles `source` (on the CEL stack) and checks that every name it uses starts with
/// one of `roots`; `what` and `fix` say what sees them, for the error.
fn compile_rooted(
    source: &str,
    roots: &[&str],
    what: &str,
    fix: &str,
) -> Result<Program, ExprError> {
    let (program, refs) = limits::on_cel_stack(|| {
        let program = compile(source)?;
        let mut refs = Vec::new();
        references(program.expression(), &mut Vec::new(), &mut refs);
        Ok::<_, ExprError>((program, refs))
    })
    .map_err(|e| ExprError::new(format!("`{source}`: {e}"), "simplify the expression"))??;
    match refs.iter().find(|path| !roots.contains(&path[0].as_str())) {
        Some(path) => Err(ExprError::new(
            format!("`{source}` names `{}`, which {what} cannot see", path[0]),
            fix,
        )),
        None => Ok(program),
    }
}

/// The names a webhook's filter and input templates may use: the delivery's JSON body,
/// and its headers (names in lower case).
pub const HOOK_ROOTS: [&str; 2] = ["body", "headers"];

const HOOK_FIX: &str = "a webhook's filter and inputs see `body` (the delivery's JSON) and `headers` (names in lower case), such as body.ref == 'refs/heads/main' or headers['x-github-event'] == 'push'";

/// Checks a webhook filter (`template` false) or input (`template` true: text with
/// `${{ … }}`) against what a delivery provides.
pub fn check_hook(text: &str, template: bool) -> Result<(), ExprError> {
    if !template {
        return compile_rooted(text, &HOOK_ROOTS, "a webhook filter", HOOK_FIX).map(|_| ());
    }
    for piece in pieces(text)? {
        if let Piece::Expr(source) = piece {
            compile_rooted(source, &HOOK_ROOTS, "a webhook input", HOOK_FIX)?;
        }
    }
    Ok(())
}

/// What a webhook delivery's filter and inputs are evaluated with.
#[derive(Clone, Debug)]
pub struct HookContext {
    pub body: serde_json::Value,
    /// Header names in lower case; values of a repeated header joined by ", ".
    pub headers: BTreeMap<String, String>,
}

impl Bindings for HookContext {
    fn context(&self) -> Context<'static, 'static> {
        let mut ctx = base_context();
        let body = cel::to_value(&self.body).unwrap_or(Value::Null);
        ctx.add_variable_from_value("body", body);
        let headers = cel::to_value(&self.headers).expect("strings are CEL values");
        ctx.add_variable_from_value("headers", headers);
        ctx
    }
}

/// Runs `work` on a thread whose stack is deep enough for any expression the parser
/// admits (one thread for a batch of evaluations, not one each).
pub fn on_cel_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, String> {
    limits::on_cel_stack(work)
}
