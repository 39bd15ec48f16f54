//! Tar archives, as uploads to a sandbox's `/files` are checked before Docker sees them
//! (`check_tar`) and as `orcaops cp` extracts a directory copied out of a sandbox
//! (`unpack_as`, into a temporary directory).
//!
//! Invariants: `check_tar` never panics and refuses an empty body; an extraction never
//! writes outside its directory (nothing new beside it, the file next to it untouched and
//! not hard-linked, nothing at the absolute names the archives use), and every symbolic
//! link it leaves resolves inside the copy.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use orcaops::cli::fuzzing::unpack_as;
use orcaops::server::fuzzing::check_tar;

use crate::harness::{Input, Rng, mutate_bytes};

/// An absolute name the archives use; an extraction must never create it.
const ABSOLUTE_ESCAPE: &str = "/tmp/orcaops-fuzz-escape";
const CANARY: &str = "outside.txt";

const NAMES: &[&[u8]] = &[
    b"src",
    b"src/",
    b"src/a.txt",
    b"src/sub",
    b"src/sub/b",
    b"src/l",
    b"src/l/x",
    b"src/h",
    b"./src/c",
    b"src//d",
    b"src/../orcaops-fuzz-escape",
    b"src/../../etc",
    b"..",
    b"../outside.txt",
    b"src/../outside.txt",
    b"/tmp/orcaops-fuzz-escape",
    b"/",
    b"",
    b".",
    b"src/\xff\xfe",
    b"src/\0hidden",
    b"src/\xe2\x80\xae",
];
const LINK_TARGETS: &[&[u8]] = &[
    b"a.txt",
    b"sub/b",
    b"src/a.txt",
    b"..",
    b"../..",
    b"../../outside.txt",
    b"/etc/passwd",
    b"/tmp/orcaops-fuzz-escape",
    b"sub/../../..",
    b".",
    b"l",
    b"",
    b"src/sub",
];

fn pick<'a>(rng: &mut Rng, from: &[&'a [u8]]) -> &'a [u8] {
    from[rng.usize(..from.len())]
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // The length counts itself: try until the digits are stable.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// A name of the pool, sometimes made long (GNU long name or PAX territory).
fn name(rng: &mut Rng) -> Vec<u8> {
    let mut name = pick(rng, NAMES).to_vec();
    if rng.u8(..8) == 0 {
        name.extend(std::iter::repeat_n(b'n', rng.usize(90..300)));
    }
    name
}

/// An archive of random headers: every entry type (and some that are none), names with
/// `..` and roots, links out, sizes from zero to absurd, data shorter than declared,
/// extension headers (GNU long names, PAX records), bad checksums, missing end blocks.
fn random_archive(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.usize(1..7) {
        let entry_type = [
            b'0', b'\0', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'L', b'K', b'x', b'g', b'S',
            b'V', b'D', b'?',
        ][rng.usize(..17)];
        let name = name(rng);
        let data: Vec<u8> = match entry_type {
            b'x' | b'g' => {
                let mut data = pax_record(
                    ["path", "linkpath", "size", "mtime", "uid"][rng.usize(..5)],
                    if rng.bool() {
                        &name
                    } else {
                        pick(rng, LINK_TARGETS)
                    },
                );
                if rng.u8(..4) == 0 {
                    data.extend_from_slice(b"99999999999999999999 path=x\n");
                }
                data
            }
            b'L' | b'K' => [name.as_slice(), b"\0"].concat(),
            _ => (0..rng.usize(..1200)).map(|_| rng.u8(..)).collect(),
        };
        let mut header = match rng.u8(..3) {
            0 => tar::Header::new_gnu(),
            1 => tar::Header::new_ustar(),
            _ => tar::Header::new_old(),
        };
        {
            let raw = header.as_old_mut();
            let n = name.len().min(raw.name.len());
            raw.name[..n].copy_from_slice(&name[..n]);
            let link = pick(rng, LINK_TARGETS);
            let n = link.len().min(raw.linkname.len());
            raw.linkname[..n].copy_from_slice(&link[..n]);
            raw.linkflag = [entry_type];
        }
        header.set_mode(rng.u32(..0o10000));
        header.set_mtime(if rng.u8(..10) == 0 {
            u64::MAX
        } else {
            1_700_000_000
        });
        let size = match rng.u8(..8) {
            0 => 0,
            1 => u64::MAX,
            2 => 0o77777777777,
            3 => rng.u64(..),
            4 => data.len() as u64 + rng.u64(1..4096),
            _ => data.len() as u64,
        };
        header.set_size(size);
        if rng.u8(..10) == 0 {
            // Numeric fields that are not numbers.
            header.as_old_mut().size = *b"zz\xff 12345\0\0\0";
        }
        if rng.u8(..12) != 0 {
            header.set_cksum();
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        let padding = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, padding));
    }
    match rng.u8(..4) {
        0 => {}
        1 => out.extend(std::iter::repeat_n(0u8, 512)),
        _ => out.extend(std::iter::repeat_n(0u8, 1024)),
    }
    if rng.u8(..6) == 0 {
        out.truncate(rng.usize(..=out.len()));
    }
    out
}

/// Recomputes the checksum of every block that looks like a header, so that byte-level
/// mutations reach past the checksum test.
fn fix_checksums(bytes: &mut [u8]) {
    for block in bytes.chunks_exact_mut(512) {
        if &block[257..262] == b"ustar" || block[0].is_ascii_alphanumeric() {
            let mut header = tar::Header::new_old();
            header.as_mut_bytes().copy_from_slice(block);
            header.set_cksum();
            block.copy_from_slice(header.as_bytes());
        }
    }
}

pub fn generate(rng: &mut Rng, corpus: &[Input]) -> Input {
    let bytes = if rng.bool() {
        random_archive(rng)
    } else {
        let mut bytes = corpus[rng.usize(..corpus.len())].bytes.clone();
        mutate_bytes(rng, &mut bytes, corpus);
        if rng.bool() {
            fix_checksums(&mut bytes);
        }
        bytes
    };
    Input::new("", bytes)
}

pub fn check_upload(input: &Input) {
    let result = check_tar(&input.bytes);
    if input.bytes.is_empty() {
        assert!(result.is_err(), "an empty upload was taken for a tar");
    }
}

/// The directory extractions go into, `<tmp>/out`, with a canary file beside it.
pub struct Sandbox {
    base: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let base = tempfile::tempdir().expect("a temporary directory");
        fs::write(base.path().join(CANARY), "canary").unwrap();
        Sandbox { base }
    }

    pub fn check_unpack(&self, input: &Input) {
        let base = self.base.path();
        let out = base.join("out");
        if fs::symlink_metadata(&out).is_ok() {
            fs::remove_dir_all(&out).expect("clearing the last extraction");
        }
        let _ = unpack_as(&input.bytes, &out);

        let beside: BTreeSet<String> = fs::read_dir(base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            beside.iter().all(|n| n == "out" || n == CANARY),
            "the extraction wrote beside its directory: {beside:?}"
        );
        let canary = base.join(CANARY);
        assert_eq!(
            fs::read_to_string(&canary).unwrap(),
            "canary",
            "the file beside changed"
        );
        assert_eq!(
            fs::metadata(&canary).unwrap().nlink(),
            1,
            "the file beside was hard-linked"
        );
        assert!(
            fs::symlink_metadata(ABSOLUTE_ESCAPE).is_err(),
            "the extraction wrote {ABSOLUTE_ESCAPE}"
        );
        if out.exists() {
            let root = fs::canonicalize(&out).unwrap();
            links_stay_inside(&out, &root, Path::new(""));
        }
    }
}

/// Every symbolic link below `dir` (at `rel` in the copy) is relative, resolves inside
/// the copy by its text, and, when it resolves at all, inside it on disk too.
fn links_stay_inside(dir: &Path, root: &Path, rel: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            let mut at: Vec<Component> = rel.components().collect();
            for c in target.components() {
                match c {
                    Component::Normal(_) => at.push(c),
                    Component::CurDir => {}
                    Component::ParentDir => {
                        assert!(
                            at.pop().is_some(),
                            "the link {} -> {} leads out of the copy",
                            path.display(),
                            target.display()
                        );
                    }
                    _ => panic!(
                        "the link {} -> {} is absolute",
                        path.display(),
                        target.display()
                    ),
                }
            }
            if let Ok(resolved) = fs::canonicalize(&path) {
                assert!(
                    resolved.starts_with(root),
                    "the link {} resolves to {} outside the copy",
                    path.display(),
                    resolved.display()
                );
            }
        } else if meta.is_dir() {
            links_stay_inside(&path, root, &rel.join(entry.file_name()));
        }
    }
}
