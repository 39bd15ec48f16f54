//! Bounds on one CEL expression, so that text from a Workflow can neither overflow a
//! stack nor keep a thread busy: its length is checked before parsing and its estimated
//! evaluation cost after, and parsing and evaluation run on a thread whose stack fits the
//! deepest expression the parser admits.
//!
//! Why a thread of its own: the CEL parser is generated (ANTLR) and recursive, at tens of
//! kilobytes of stack per bracket level in a debug build, so fifteen nested parentheses
//! overflowed a 2 MiB tokio worker. Its own recursion limit (96 levels) bounds the depth;
//! `STACK` is sized for that limit with `MAX_BYTES` of operators on top.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use super::ExprError;

/// The longest expression accepted (one `if`, `until` or `${{ }}`), in bytes.
pub const MAX_BYTES: usize = 2048;
/// The most evaluation steps an expression may be estimated to take.
pub const MAX_COST: u64 = 100_000;
/// How many elements a comprehension over a variable (not a literal list) is assumed to
/// visit: inputs, outputs and nodes are small maps.
const ASSUMED_RANGE: u64 = 100;
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
        Expr::Map(m) => sum(&mut m.entries.iter().flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })),
        Expr::Struct(s) => sum(&mut s.entries.iter().flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })),
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
