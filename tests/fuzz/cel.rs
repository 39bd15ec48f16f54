//! CEL expressions and `${{ … }}` templates of Workflows, as validation checks them at
//! apply (`expr::check`, `expr::check_template` against a node's scope) and as the
//! Workflow controller evaluates them (`expr::eval_bool` for `if` and `until`,
//! `expr::render` for templates) against a node's `Vars`.
//!
//! Inputs are labelled `expr` (one expression, as in `if:`) or `template` (text holding
//! `${{ }}`, as in `run:`). Generated ones come from a small CEL grammar (every operator,
//! macros, literals at their edges, names in and out of scope), wrapped in deep nesting or
//! long operator chains, or are byte-mutated corpus entries.
//!
//! Invariants: checking is deterministic and every refusal says what and how to fix it;
//! an expression that does not compile is not evaluated either; a text without `${{`
//! renders to itself and an unclosed `${{` is refused by both validation and rendering;
//! no input takes longer than `SLOW` to check and evaluate (a hang is a finding).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orcaops::resources::expr::{self, NodeVars, Scope, Vars};

use crate::harness::{Input, Rng, mutate_bytes};

/// Checking and evaluating one input is at most this slow, even in a debug build on a
/// busy machine: more means the evaluation cost is unbounded for some shape of input.
const SLOW: Duration = Duration::from_secs(5);

const NAMES: &[&str] = &[
    // In scope.
    "inputs.ref",
    "inputs['tag']",
    "inputs",
    "matrix.shard",
    "matrix['os']",
    "jobs.build.phase",
    "jobs.build.outputs.version",
    "jobs['build'].outputs['ünï']",
    "jobs['wait-ready'].phase",
    "jobs['wait-ready'].outputs.ready",
    "jobs.build.outputs",
    "jobs",
    "workflow.run",
    "workflow",
    "outputs.ready",
    "outputs",
    // Out of scope, unknown or malformed.
    "inputs.nope",
    "matrix.gpu",
    "jobs.nope.phase",
    "jobs.deploy.phase",
    "jobs.test.outputs.x",
    "jobs.build.status",
    "jobs[inputs.ref].phase",
    "jobs['wait-ready']",
    "jobs.wait-ready.phase",
    "workflow.name",
    "foo",
    "x",
    "ünïcödé",
    "_",
    "__result__",
    "@it",
    ".inputs.ref",
    "inputs.ref.deeper.still",
    "google.protobuf.Value",
];

const LITERALS: &[&str] = &[
    "0",
    "1",
    "-1",
    "42u",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615u",
    "18446744073709551616u",
    "0x7fffffffffffffff",
    "0xffffffffffffffffu",
    "0x",
    "1e308",
    "1e309",
    "-1e-400",
    ".5",
    "1.",
    "0.0",
    "'main'",
    "\"Succeeded\"",
    "''",
    "'é😀\u{202e}\u{200b}'",
    "'\\u0000'",
    "'\\x00\\xff'",
    "'\\uD800'",
    "'\\U0010FFFF'",
    "'\\U00110000'",
    "'\\z'",
    "'\\'",
    "r'raw \\d+'",
    "'''triple\n'''",
    "\"\"\"triple\"\"\"",
    "b'bytes'",
    "b'\\xff\\xfe'",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[1, 'a', null]",
    "{'k': 'v', 1: 2}",
    "{'k': 1, 'k': 2}",
    "duration('1h30m')",
    "duration('99999999999999h')",
    "timestamp('2026-01-01T00:00:00Z')",
    "timestamp('99999-99-99')",
    "int",
    "string",
    "dyn",
];

const BINARY: &[&str] = &[
    " + ", " - ", " * ", " / ", " % ", " == ", " != ", " < ", " <= ", " > ", " >= ", " && ",
    " || ", " in ",
];

const FUNCTIONS: &[&str] = &[
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "type",
    "dyn",
    "bool",
    "duration",
    "timestamp",
    "matches",
    "has",
    "nosuchfn",
];

const METHODS: &[&str] = &[
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "size",
    "getHours",
    "lowerAscii",
    "nope",
];

const MACROS: &[&str] = &["all", "exists", "exists_one", "map", "filter"];

const PATTERNS: &[&str] = &[
    "'^v[0-9]+$'",
    "'(a*)*b'",
    "'(a|aa)+$'",
    "'['",
    "'\\\\'",
    "'(?P<x>'",
    "'.{1000}{1000}'",
    "'\\\\p{Greek}+'",
];

/// A random expression at most `depth` levels deep.
fn expression(rng: &mut Rng, depth: u32) -> String {
    let pick = |rng: &mut Rng, from: &[&str]| from[rng.usize(..from.len())].to_string();
    if depth == 0 {
        return if rng.bool() {
            pick(rng, NAMES)
        } else {
            pick(rng, LITERALS)
        };
    }
    let d = depth - 1;
    match rng.u8(..14) {
        0 => pick(rng, NAMES),
        1 => pick(rng, LITERALS),
        2 => format!(
            "{}{}",
            ["!", "-", "!!", "--"][rng.usize(..4)],
            expression(rng, d)
        ),
        3 | 4 => format!(
            "{}{}{}",
            expression(rng, d),
            pick(rng, BINARY),
            expression(rng, d)
        ),
        5 => format!(
            "{} ? {} : {}",
            expression(rng, d),
            expression(rng, d),
            expression(rng, d)
        ),
        6 => {
            let args: Vec<String> = (0..rng.usize(..3)).map(|_| expression(rng, d)).collect();
            format!("{}({})", pick(rng, FUNCTIONS), args.join(", "))
        }
        7 => {
            let method = pick(rng, METHODS);
            let arg = if method == "matches" && rng.bool() {
                pick(rng, PATTERNS)
            } else {
                expression(rng, d)
            };
            format!("{}.{method}({arg})", expression(rng, d))
        }
        8 => {
            let var = ["x", "k", "inputs", "__result__", "1"][rng.usize(..5)];
            let range = if rng.bool() {
                format!(
                    "[{}]",
                    (0..rng.usize(..6))
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                expression(rng, d)
            };
            let body = if rng.bool() {
                format!("{var} == {}", expression(rng, d))
            } else {
                expression(rng, d)
            };
            format!("{range}.{}({var}, {body})", pick(rng, MACROS))
        }
        9 => {
            let items: Vec<String> = (0..rng.usize(..4)).map(|_| expression(rng, d)).collect();
            format!("[{}]", items.join(", "))
        }
        10 => {
            let items: Vec<String> = (0..rng.usize(..3))
                .map(|_| format!("{}: {}", expression(rng, d), expression(rng, d)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        11 => format!("{}[{}]", expression(rng, d), expression(rng, d)),
        12 => format!(
            "{}.{}",
            expression(rng, d),
            ["phase", "outputs", "x", "ünï", "1"][rng.usize(..5)]
        ),
        _ => format!("({})", expression(rng, d)),
    }
}

/// Shapes that stress recursion and size: deep nesting, long chains, huge literals.
fn extreme(rng: &mut Rng) -> String {
    let n = [10, 50, 100, 200, 500, 2_000, 20_000][rng.usize(..7)];
    let core = expression(rng, 2);
    match rng.u8(..9) {
        0 => format!("{}{core}{}", "(".repeat(n), ")".repeat(n)),
        1 => format!("{}{core}{}", "[".repeat(n), "]".repeat(n)),
        2 => format!("{}{core}", ["!", "-"][rng.usize(..2)].repeat(n)),
        3 => vec![core; n].join(BINARY[rng.usize(..BINARY.len())]),
        4 => format!("{core}{}", ".a".repeat(n)),
        5 => format!("{core}{}", "['k']".repeat(n)),
        6 => format!("'{}'", "é".repeat(n * 50)),
        7 => "9".repeat(n),
        _ => {
            // Comprehensions inside comprehensions: the cost multiplies with each level.
            let mut e = "x == 1".to_string();
            for level in 0..(n / 10).clamp(2, 12) {
                e = format!("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].exists(v{level}, {e})");
            }
            e
        }
    }
}

/// A template: text and `${{ }}` pieces, some broken.
fn template(rng: &mut Rng) -> String {
    let mut text = String::new();
    for _ in 0..rng.usize(1..5) {
        text.push_str(
            ["echo ", "v", " ", "é😀", "$HOME ", "{{ x }}", "$", "}}", ""][rng.usize(..9)],
        );
        match rng.u8(..8) {
            0 => text.push_str("${{"),
            1 => text.push_str(&format!("${{{{ {}", expression(rng, 2))),
            2 => text.push_str(&format!("${{{{ {} }}", expression(rng, 2))),
            3 => text.push_str("${{}}"),
            4 => text.push_str("${{ '}}' }}"),
            5 => text.push_str("${{ ${{ inputs.ref }} }}"),
            _ => {
                let depth = rng.u32(..4);
                text.push_str(&format!("${{{{ {} }}}}", expression(rng, depth)));
            }
        }
    }
    text
}

/// CEL tokens for byte-level mutation, beside the harness's generic ones.
const TOKENS: &[&str] = &[
    "${{",
    "}}",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    ",",
    "?",
    ":",
    "'",
    "\"",
    "\\",
    "!",
    "&&",
    "||",
    "==",
    " in ",
    "has(",
    ".all(x, ",
    ".map(x, x)",
    "jobs['",
    "inputs.",
    "\u{0}",
    "\u{feff}",
];

pub fn generate(rng: &mut Rng, corpus: &[Input]) -> Input {
    match rng.u8(..8) {
        0 | 1 => {
            let depth = rng.u32(1..7);
            Input::new("expr", expression(rng, depth))
        }
        2 => Input::new("template", template(rng)),
        3 => Input::new(["expr", "template"][rng.usize(..2)], extreme(rng)),
        _ => {
            let base = &corpus[rng.usize(..corpus.len())];
            let mut bytes = base.bytes.clone();
            if rng.bool() {
                mutate_bytes(rng, &mut bytes, corpus);
            } else {
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(..=bytes.len());
                    let token = TOKENS[rng.usize(..TOKENS.len())];
                    bytes.splice(at..at, token.bytes());
                }
            }
            Input::new(base.label.clone(), bytes)
        }
    }
}

fn scope(own_outputs: bool) -> Scope<'static> {
    Scope {
        inputs: ["ref", "tag"].into(),
        matrix: ["shard", "os"].into(),
        upstream: ["build", "wait-ready"].into(),
        nodes: ["build", "wait-ready", "test", "deploy"].into(),
        node: "test",
        own_outputs,
    }
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn vars(own_outputs: bool) -> Vars {
    Vars {
        inputs: strings(&[("ref", "main"), ("tag", "v1.2.3\u{202e}😀")]),
        matrix: strings(&[("shard", "2"), ("os", "linux")]),
        jobs: BTreeMap::from([
            (
                "build".to_string(),
                NodeVars {
                    phase: "Succeeded".into(),
                    outputs: strings(&[
                        ("version", "1.0.0"),
                        ("ünï", ""),
                        ("big", &"x".repeat(4096)),
                    ]),
                },
            ),
            (
                "wait-ready".to_string(),
                NodeVars {
                    phase: "Failed".into(),
                    outputs: BTreeMap::new(),
                },
            ),
        ]),
        run: u32::MAX,
        outputs: own_outputs.then(|| strings(&[("ready", "yes")])),
    }
}

fn refusal_is_clear(source: &str, e: &expr::ExprError) {
    assert!(
        !e.message.trim().is_empty(),
        "`{source}`: a refusal without a message"
    );
    assert!(
        !e.fix.trim().is_empty(),
        "`{source}`: a refusal without a fix: {}",
        e.message
    );
}

/// Whether the refusal is about the text itself (it does not compile), not about names.
fn does_not_compile(e: &expr::ExprError) -> bool {
    [
        "is empty",
        "cannot be parsed",
        "not a valid CEL expression",
        "too long",
        "too deep",
    ]
    .iter()
    .any(|m| e.message.contains(m))
}

fn check_expression(source: &str) {
    for own_outputs in [false, true] {
        let scope = scope(own_outputs);
        let checked = expr::check(source, &scope);
        assert_eq!(
            checked,
            expr::check(source, &scope),
            "`{source}`: checking twice differs"
        );
        let evaluated = expr::eval_bool(source, &vars(own_outputs));
        let rendered = expr::render(&format!("${{{{ {source} }}}}"), &vars(own_outputs));
        if let Err(e) = &checked {
            refusal_is_clear(source, e);
            if does_not_compile(e) {
                assert!(
                    evaluated.is_err(),
                    "`{source}` was refused ({}) but evaluated",
                    e.message
                );
                if !source.contains("}}") {
                    assert!(
                        rendered.is_err(),
                        "`{source}` was refused ({}) but rendered",
                        e.message
                    );
                }
            }
        }
    }
}

fn check_text(text: &str) {
    let pieces = expr::pieces(text);
    for own_outputs in [false, true] {
        let scope = scope(own_outputs);
        let checked = expr::check_template(text, &scope);
        assert_eq!(
            checked,
            expr::check_template(text, &scope),
            "`{text}`: checking twice differs"
        );
        if let Err(e) = &checked {
            refusal_is_clear(text, e);
        }
        let rendered = expr::render(text, &vars(own_outputs));
        if !expr::has_template(text) {
            assert_eq!(
                rendered.as_deref(),
                Ok(text),
                "a text without a template changed"
            );
        }
        if pieces.is_err() {
            assert!(
                checked.is_err(),
                "`{text}`: an unclosed template passed validation"
            );
            assert!(
                rendered.is_err(),
                "`{text}`: an unclosed template was rendered"
            );
        }
    }
}

pub fn check(input: &Input) {
    let text = input.text();
    let started = Instant::now();
    if input.label == "template" {
        check_text(&text);
    } else {
        check_expression(&text);
    }
    let took = started.elapsed();
    assert!(
        took < SLOW,
        "checking and evaluating took {took:?} (more than {SLOW:?})"
    );
}
