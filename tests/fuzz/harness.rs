//! The loop every fuzz target shares: the committed seed corpus first, then N inputs made
//! from it by a seeded generator, each fed to the real entry point under `catch_unwind`.
//!
//! Deterministic on purpose: the same seed and count give the same inputs, so a crash is
//! reproduced by its seed and index alone, and CI never flakes on a lucky draw. The seed
//! is printed; `ORCAOPS_FUZZ_SEED` changes it and `ORCAOPS_FUZZ_INPUTS` the count. Every
//! panicking input is also written to `<target dir>/fuzz-crashes/<target>/` so that it can
//! be added to the corpus as a regression.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use fastrand::Rng;

/// The seed when `ORCAOPS_FUZZ_SEED` is unset.
const DEFAULT_SEED: u64 = 0x0bca_0b5e_ed00_0001;
/// A run stops after this many panics: one is enough to fail, a few help to see a pattern.
const MAX_CRASHES: usize = 5;

/// One input: a label the target reads (a resource plural, a patch kind; empty if none)
/// and the bytes.
#[derive(Clone, Debug)]
pub struct Input {
    pub label: String,
    pub bytes: Vec<u8>,
}

impl Input {
    pub fn new(label: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Input {
        Input {
            label: label.into(),
            bytes: bytes.into(),
        }
    }

    /// The bytes as text, invalid UTF-8 replaced (for entry points that take a `&str`).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim().replace('_', "");
    let parsed = if let Some(hex) = value.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        value.parse()
    };
    Some(parsed.unwrap_or_else(|e| {
        panic!("{name}={value:?} is not a number ({e}); use a decimal or 0x-prefixed hex u64")
    }))
}

/// The seed of a run (the one printed), as set or the default.
pub fn seed() -> u64 {
    env_number("ORCAOPS_FUZZ_SEED").unwrap_or(DEFAULT_SEED)
}

/// How many generated inputs each target runs: `ORCAOPS_FUZZ_INPUTS`, or the target's
/// default (sized so that the whole fuzz test stays under a minute in a debug build, as a
/// CI step).
pub fn inputs(default: u64) -> u64 {
    env_number("ORCAOPS_FUZZ_INPUTS").unwrap_or(default)
}

/// The corpus of a target: every file of `tests/fuzz/corpus/<target>/`, sorted by name. A
/// file named `<label>--<rest>` carries that label.
pub fn corpus(target: &str) -> Vec<Input> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading the fuzz corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "the fuzz corpus {} is empty; commit a few seed inputs there",
        dir.display()
    );
    paths
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            let label = name.split_once("--").map_or("", |(l, _)| l);
            Input::new(label, std::fs::read(p).expect("a readable corpus file"))
        })
        .collect()
}

/// Where crashing inputs are written: `$CARGO_TARGET_DIR/fuzz-crashes/<target>/` (or the
/// crate's `target/`).
fn crash_dir(target: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    base.join("fuzz-crashes").join(target)
}

/// Bytes as a Rust-style escaped string, readable for text and exact for binary.
pub fn escaped(bytes: &[u8]) -> String {
    const SHOWN: usize = 1024;
    let shown: String = bytes[..bytes.len().min(SHOWN)].escape_ascii().to_string();
    if bytes.len() > SHOWN {
        format!("{shown}... ({} bytes in all)", bytes.len())
    } else {
        shown
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs a target: the corpus, then `inputs()` generated inputs. `check` calls the entry
/// point and asserts its invariants (a failed assertion is a panic like any other).
/// Fails the test naming every panicking input; returns how many inputs ran.
pub fn run(
    target: &str,
    default_inputs: u64,
    mut generate: impl FnMut(&mut Rng, &[Input]) -> Input,
    mut check: impl FnMut(&Input),
) -> u64 {
    let corpus = corpus(target);
    let seed = seed();
    // Each target draws its own stream, so adding a target never shifts another's inputs.
    let target_seed = target.bytes().fold(seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = Rng::with_seed(target_seed);
    let count = inputs(default_inputs);
    let started = Instant::now();
    let mut crashes: Vec<String> = Vec::new();
    let mut ran = 0u64;
    // A stack overflow aborts the process before any hook runs: with ORCAOPS_FUZZ_TRACE set,
    // each input is written to `last-input` first, so the one that aborted is on disk.
    let trace = std::env::var_os("ORCAOPS_FUZZ_TRACE").map(|_| {
        let dir = crash_dir(target);
        std::fs::create_dir_all(&dir).ok();
        dir.join("last-input")
    });

    let cases = corpus
        .iter()
        .cloned()
        .map(|input| ("corpus".to_string(), input))
        .chain((0..count).map(|i| (format!("input {i}"), generate(&mut rng, &corpus))));
    for (which, input) in cases {
        ran += 1;
        if let Some(trace) = &trace {
            std::fs::write(trace, &input.bytes).ok();
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
        if let Err(payload) = outcome {
            let dir = crash_dir(target);
            std::fs::create_dir_all(&dir).ok();
            let label = if input.label.is_empty() {
                String::new()
            } else {
                format!("{}--", input.label)
            };
            let file = dir.join(format!("{label}seed-{seed:#x}-{}", which.replace(' ', "-")));
            std::fs::write(&file, &input.bytes).ok();
            crashes.push(format!(
                "{which} (label {:?}): {}\n  written to {}\n  input: b\"{}\"",
                input.label,
                panic_message(payload.as_ref()),
                file.display(),
                escaped(&input.bytes)
            ));
            if crashes.len() >= MAX_CRASHES {
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "fuzz {target}: {ran} inputs ({} corpus + {} generated, seed {seed:#x}), {} panics in {seconds:.1} s",
        corpus.len(),
        ran - corpus.len() as u64,
        crashes.len()
    );
    assert!(
        crashes.is_empty(),
        "fuzz {target}: {} panicking inputs (reproduce with ORCAOPS_FUZZ_SEED={seed:#x}):\n{}",
        crashes.len(),
        crashes.join("\n")
    );
    ran
}

/// Tokens that trip parsers: YAML structure, tags, anchors, numbers at the edges,
/// control bytes, bidi and astral characters, invalid UTF-8.
pub const NASTY: &[&[u8]] = &[
    b"&a ",
    b"*a",
    b"*b",
    b"<<: *a\n",
    b"<<: [*a, *b]\n",
    b"[[[[[[[[[[[[[[[[",
    b"]]]]]]]]",
    b"{{{{{{{{{{{{",
    b"}}}}",
    b"!!binary ",
    b"!!str ",
    b"!!int ",
    b"!!float ",
    b"!!map ",
    b"!!seq ",
    b"!<tag:yaml.org,2002:str> ",
    b"!custom ",
    b"%YAML 1.2\n",
    b"%TAG ! tag:x,2000:\n",
    b"\n---\n",
    b"\n...\n",
    b"? ",
    b": ",
    b"- ",
    b"|\n",
    b">-\n",
    b"|+2\n",
    b"\t",
    b"\0",
    b"\r\n",
    b"\r",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x80\xae",
    b"\xf0\x9f\x98\x80",
    b"\\u0000",
    b"\\ud800",
    b"99999999999999999999999999999999",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"1e400",
    b"-1e-400",
    b"0x7fffffffffffffff",
    b"0o777",
    b".nan",
    b"-.inf",
    b"~",
    b"null",
    b"true",
    b"\"",
    b"'",
    b"#",
    b",",
    b"\\",
    b"\"\\",
    b"metadata:",
    b"spec:",
    b"kind: Job",
    b"apiVersion: orcaops.dev/v1alpha1",
    b"namespace:",
    b"labels:",
    b"name:",
];

/// `len` bytes of one repeated printable character (a long string).
fn long_string(rng: &mut Rng) -> Vec<u8> {
    let len = [64, 255, 256, 4096, 70_000][rng.usize(..5)];
    vec![b"aZ-._/9"[rng.usize(..7)]; len]
}

/// Applies one to four byte-level mutations: flips, random bytes, nasty-token inserts,
/// deletions, duplications, long strings, truncation, and splices with another input.
pub fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>, corpus: &[Input]) {
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(..=bytes.len());
        match rng.u8(..10) {
            0 if !bytes.is_empty() => {
                let i = rng.usize(..bytes.len());
                bytes[i] ^= 1 << rng.u8(..8);
            }
            1 if !bytes.is_empty() => {
                let i = rng.usize(..bytes.len());
                bytes[i] = rng.u8(..);
            }
            2 | 3 => {
                let token = NASTY[rng.usize(..NASTY.len())];
                bytes.splice(at..at, token.iter().copied());
            }
            4 => {
                let end = (at + rng.usize(..64)).min(bytes.len());
                bytes.drain(at..end);
            }
            5 => {
                let end = (at + rng.usize(..128)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.usize(..=bytes.len());
                bytes.splice(to..to, copy);
            }
            6 if rng.u8(..8) == 0 => {
                let long = long_string(rng);
                bytes.splice(at..at, long);
            }
            7 => bytes.truncate(at),
            8 if !corpus.is_empty() => {
                let other = &corpus[rng.usize(..corpus.len())].bytes;
                let from = rng.usize(..=other.len());
                let end = (from + rng.usize(..512)).min(other.len());
                bytes.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let token = NASTY[rng.usize(..NASTY.len())];
                let end = (at + token.len()).min(bytes.len());
                bytes.splice(at..end, token.iter().copied());
            }
        }
    }
}

/// A random JSON value: the edges of each type (huge, negative, fractional numbers;
/// empty, long and unicode strings; deep and empty containers).
pub fn random_value(rng: &mut Rng, depth: u32) -> serde_json::Value {
    use serde_json::{Value, json};
    match rng.u8(..14) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!(u64::MAX),
        4 => [json!(-1), json!(0), json!(1.5e308), json!(-0.0), json!(0.1)][rng.usize(..5)].clone(),
        5 => json!(""),
        6 => json!(
            [
                "x",
                "busybox:latest",
                "a b",
                "é\u{202e}😀",
                "-",
                "/abs",
                "../up",
                "1Gi",
                "100m",
                "0",
                "*:latest",
                "Warn"
            ][rng.usize(..12)]
        ),
        7 => Value::String(String::from_utf8(long_string(rng)).unwrap()),
        8 if depth < 6 => Value::Array(
            (0..rng.usize(..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        9 if depth < 6 => {
            let keys = [
                "name", "image", "run", "steps", "x", "", "spec", "labels", "a.b/c",
            ];
            Value::Object(
                (0..rng.usize(..4))
                    .map(|_| {
                        (
                            keys[rng.usize(..keys.len())].to_string(),
                            random_value(rng, depth + 1),
                        )
                    })
                    .collect(),
            )
        }
        10 => {
            // Deep nesting, past any recursion limit a parser keeps.
            let mut v = json!(1);
            for _ in 0..rng.usize(1..300) {
                v = json!([v]);
            }
            v
        }
        _ => json!(rng.u32(..100)),
    }
}

/// Mutates a JSON tree in place at a random node: replaces it, drops or renames a key
/// (a typo, an unknown field), adds one, duplicates or empties an array.
pub fn mutate_json(rng: &mut Rng, value: &mut serde_json::Value) {
    use serde_json::Value;
    // Walk down a random path, stopping at a random depth.
    let mut node = value;
    loop {
        let go_on = rng.u8(..4) != 0;
        let next_index = match node {
            Value::Object(map) if go_on && !map.is_empty() => Some(rng.usize(..map.len())),
            Value::Array(items) if go_on && !items.is_empty() => Some(rng.usize(..items.len())),
            _ => None,
        };
        let Some(i) = next_index else { break };
        node = match node {
            Value::Object(map) => map.values_mut().nth(i).unwrap(),
            Value::Array(items) => &mut items[i],
            _ => unreachable!(),
        };
    }
    match (rng.u8(..6), &mut *node) {
        (0, Value::Object(map)) if !map.is_empty() => {
            let key = map.keys().nth(rng.usize(..map.len())).unwrap().clone();
            map.remove(&key);
        }
        (1, Value::Object(map)) if !map.is_empty() => {
            let key = map.keys().nth(rng.usize(..map.len())).unwrap().clone();
            let v = map.remove(&key).unwrap();
            let mut typo = key.into_bytes();
            mutate_bytes(rng, &mut typo, &[]);
            map.insert(String::from_utf8_lossy(&typo).into_owned(), v);
        }
        (2, Value::Object(map)) => {
            let keys = [
                "unknown",
                "name",
                "namespace",
                "labels",
                "spec",
                "status",
                "kind",
            ];
            map.insert(
                keys[rng.usize(..keys.len())].to_string(),
                random_value(rng, 0),
            );
        }
        (3, Value::Array(items)) if !items.is_empty() => {
            let v = items[rng.usize(..items.len())].clone();
            for _ in 0..rng.usize(1..4) {
                items.push(v.clone());
            }
        }
        (4, Value::Array(items)) => items.clear(),
        _ => *node = random_value(rng, 0),
    }
}
