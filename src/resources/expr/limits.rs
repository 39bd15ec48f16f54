//! Bounds on one CEL expression, so that text from a Workflow can neither overflow a
//! stack nor keep a thread busy: its length is checked before parsing and its estimated
//! evaluation cost after, and parsing and evaluation run on a thread whose stack fits the
//! deepest expression the parser admits.
//!
//! Why a thread of its own: the CEL parser is generated (ANTLR) and recursive, at tens of
//! kilobytes of stack per bracket level in a debug build, so fifteen nested parentheses
//! overflowed a 2 MiB tokio worker. Its own recursion limit (96 levels) bounds the depth;
//! `STACK` is sized for that limit with `MAX_BYTES` of operators on top.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::ExprError;

/// The longest expression accepted (one `if`, `until` or `${{ }}`), in bytes.
pub const MAX_BYTES: usize = 2048;
/// The most evaluation steps an expression may be estimated to take.
pub const MAX_COST: u64 = 100_000;
/// How many elements a comprehension over a variable (not a literal list) is assumed to
/// visit: inputs, outputs and nodes are small maps.
const ASSUMED_RANGE: u64 = 100;
/// The most memory one `matches()` pattern may compile to. A pattern like `.{1000}{1000}`
/// is short to write and takes seconds and megabytes to compile; this refuses it at once.
const PATTERN_BYTES: usize = 256 << 10;
/// The stack parsing and evaluation run on. Only the pages touched are committed.
const STACK: usize = 256 << 20;

/// Refuses an expression too long to parse safely.
pub fn check_length(source: &str) -> Result<(), ExprError> {
    if source.len() > MAX_BYTES {
        return Err(ExprError::new(
            format!(
                "the expression is too long ({} bytes; at most {MAX_BYTES}): `{}…`",
                source.len(),
                source.chars().take(60).collect::<String>()
            ),
            "split it: compute the value in an earlier node and pass it as an output",
        ));
    }
    Ok(())
}

/// Refuses an expression whose evaluation may take more than `MAX_COST` steps:
/// comprehensions (`all`, `exists`, `map`, `filter`) inside each other multiply.
pub fn check_cost(source: &str, e: &IdedExpr) -> Result<(), ExprError> {
    let cost = cost(e);
    if cost > MAX_COST {
        return Err(ExprError::new(
            format!(
                "`{source}` may take too long to evaluate (an estimated {cost} steps; at most {MAX_COST})"
            ),
            "nest fewer comprehensions (all, exists, exists_one, map, filter), or iterate over shorter lists",
        ));
    }
    Ok(())
}

/// Refuses a `matches()` whose pattern is not a string literal, or that compiles to more
/// than `PATTERN_BYTES`: the pattern is compiled at every evaluation, so a pattern computed
/// at run time, or a huge one, would let text from outside keep a thread busy.
pub fn check_patterns(source: &str, e: &IdedExpr) -> Result<(), ExprError> {
    let mut found = Ok(());
    visit(e, &mut |e| {
        let Expr::Call(call) = &e.expr else { return };
        if call.func_name != "matches" || found.is_err() {
            return;
        }
        found = match call.args.last().map(|a| &a.expr) {
            Some(Expr::Literal(LiteralValue::String(pattern))) => check_pattern(source, pattern),
            _ => Err(ExprError::new(
                format!("`{source}`: the pattern of matches() must be a quoted string"),
                "write the pattern as a literal, such as matches('^v[0-9]+$')",
            )),
        };
    });
    found
}

fn check_pattern(source: &str, pattern: &str) -> Result<(), ExprError> {
    let fix = "use a smaller pattern: fewer or smaller counted repetitions ({n}), or a shorter alternation";
    match regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_BYTES)
        .build()
    {
        Ok(_) => Ok(()),
        Err(regex::Error::CompiledTooBig(_)) => Err(ExprError::new(
            format!(
                "`{source}`: the pattern '{pattern}' is too large (it compiles to more than {} KiB)",
                PATTERN_BYTES >> 10
            ),
            fix,
        )),
        Err(e) => Err(ExprError::new(
            format!("`{source}`: the pattern '{pattern}' is not a valid regular expression: {e}"),
            "correct the pattern; the syntax is RE2's (https://github.com/google/re2/wiki/Syntax)",
        )),
    }
}

/// Calls `f` on `e` and on every expression inside it.
fn visit(e: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(e);
    for child in children(e) {
        visit(child, f);
    }
}

/// How deeply `e` nests: 1 for a name or a literal, one more for each operator, call,
/// field or comprehension around it. Evaluation recurses as deep.
pub fn depth(e: &IdedExpr) -> usize {
    1 + children(e).into_iter().map(depth).max().unwrap_or(0)
}

/// The expressions `e` is made of.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::Call(c) => c.target.iter().map(|t| &**t).chain(c.args.iter()).collect(),
        Expr::Select(s) => vec![&*s.operand],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m.entries.iter().flat_map(entry_values).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(entry_values).collect(),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_values(entry: &cel::common::ast::IdedEntryExpr) -> Vec<&IdedExpr> {
    match &entry.expr {
        EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

/// An upper estimate of the steps evaluating `e` takes, saturating.
fn cost(e: &IdedExpr) -> u64 {
    let sum = |items: &mut dyn Iterator<Item = &IdedExpr>| {
        items.fold(1u64, |total, x| total.saturating_add(cost(x)))
    };
    match &e.expr {
        Expr::Comprehension(c) => {
            let per_element = cost(&c.loop_cond).saturating_add(cost(&c.loop_step));
            range_len(&c.iter_range)
                .saturating_mul(per_element)
                .saturating_add(cost(&c.iter_range))
                .saturating_add(cost(&c.accu_init))
                .saturating_add(cost(&c.result))
        }
        Expr::Call(c) => sum(&mut c.target.iter().map(|t| &**t).chain(c.args.iter())),
        Expr::Select(s) => sum(&mut std::iter::once(&*s.operand)),
        Expr::List(l) => sum(&mut l.elements.iter()),
        Expr::Map(m) => sum(&mut m.entries.iter().flat_map(entry_values)),
        Expr::Struct(s) => sum(&mut s.entries.iter().flat_map(entry_values)),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 1,
    }
}

/// How many elements a comprehension over `range` visits, at most.
fn range_len(range: &IdedExpr) -> u64 {
    match &range.expr {
        Expr::List(l) => l.elements.len() as u64,
        Expr::Map(m) => m.entries.len() as u64,
        // `map` and `filter` give at most as many elements as they visit.
        Expr::Comprehension(c) => range_len(&c.iter_range),
        _ => ASSUMED_RANGE,
    }
}

/// Runs `work` on a thread with a stack deep enough for any expression the parser
/// admits; an error if no such thread could be started.
pub fn on_cel_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("cel".into())
            .stack_size(STACK)
            .spawn_scoped(scope, work)
            .map_err(|e| format!("cannot start a thread to parse CEL: {e}"))?;
        thread
            .join()
            .map_err(|_| "the CEL parser or evaluator failed".to_string())
    })
}
