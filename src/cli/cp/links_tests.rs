//! Crafted archives against the link rules of `cp` (real files in temp dirs).

use super::*;

/// A tar entry with a raw name (so `..` and `/` can be written) and a type.
fn raw_entry(
    builder: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

fn archive(entries: &[(&str, tar::EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        raw_entry(&mut builder, name, *kind, *link, data);
    }
    builder.into_inner().unwrap()
}

use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as L};

#[test]
fn only_relative_links_that_stay_inside_are_kept() {
    for (target, depth, inside) in [
        ("usr/lib", 0, true),
        ("./x", 0, true),
        ("../lib/x.so", 1, true),
        ("../../a", 1, false),
        ("..", 0, false),
        ("/etc/passwd", 5, false),
        ("a/../../b", 3, false),
        ("a/..", 3, false),
        ("", 0, true),
    ] {
        assert_eq!(
            link_stays_inside(Path::new(target), depth),
            inside,
            "{target} at depth {depth}"
        );
    }
}

#[test]
fn links_out_of_the_copy_are_skipped_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("copy");
    let tar = archive(&[
        ("src/", D, None, b""),
        ("src/abs", L, Some("/etc/passwd"), b""),
        ("src/up", L, Some(".."), b""),
        ("src/sub/", D, None, b""),
        ("src/sub/lib", L, Some("../data"), b""),
        ("src/sub/far", L, Some("../../x"), b""),
        ("src/data", F, None, b"kept"),
    ]);
    let warnings = unpack_as(&tar, &out).unwrap();
    assert!(!out.join("abs").exists() && fs::symlink_metadata(out.join("abs")).is_err());
    assert!(fs::symlink_metadata(out.join("up")).is_err());
    assert!(fs::symlink_metadata(out.join("sub/far")).is_err());
    assert_eq!(
        fs::read_link(out.join("sub/lib")).unwrap(),
        Path::new("../data")
    );
    assert_eq!(fs::read(out.join("sub/lib")).unwrap(), b"kept");
    let text = warnings.join("\n");
    for named in ["abs -> /etc/passwd", "up -> ..", "sub/far -> ../../x"] {
        assert!(text.contains(named), "{named} in {text}");
    }
    assert_eq!(warnings.len(), 3, "{text}");
}

#[test]
fn nothing_is_written_through_an_existing_link() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), "untouched").unwrap();
    let out = tmp.path().join("copy");
    fs::create_dir(&out).unwrap();
    // Left by an earlier copy (as docker cp would leave them).
    std::os::unix::fs::symlink(&outside, out.join("dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), out.join("file")).unwrap();
    let tar = archive(&[
        ("src/dir/victim", F, None, b"overwritten"),
        ("src/file", F, None, b"new file"),
    ]);
    let warnings = unpack_as(&tar, &out).unwrap();
    assert_eq!(
        fs::read_to_string(outside.join("victim")).unwrap(),
        "untouched"
    );
    assert!(warnings[0].contains("dir/victim"), "{warnings:?}");
    assert!(warnings[0].contains("symbolic link"), "{warnings:?}");
    // The link where a file is unpacked is replaced by the file.
    assert!(fs::symlink_metadata(out.join("file")).unwrap().is_file());
    assert_eq!(fs::read_to_string(out.join("file")).unwrap(), "new file");
    // A directory entry replaces a link too, and what follows goes into it.
    let tar = archive(&[
        ("src/dir/", D, None, b""),
        ("src/dir/victim", F, None, b"in"),
    ]);
    unpack_as(&tar, &out).unwrap();
    assert!(fs::symlink_metadata(out.join("dir")).unwrap().is_dir());
    assert_eq!(fs::read_to_string(out.join("dir/victim")).unwrap(), "in");
    assert_eq!(
        fs::read_to_string(outside.join("victim")).unwrap(),
        "untouched"
    );
    // The destination itself being a link is refused, naming it.
    std::os::unix::fs::symlink(&outside, tmp.path().join("alias")).unwrap();
    let err = unpack_as(&tar, &tmp.path().join("alias")).unwrap_err();
    assert!(err.to_string().contains("alias"), "{err}");
}

#[test]
fn dot_dot_and_absolute_entries_stop_the_copy() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["src/../../evil", "/etc/evil", "src/a/../../b"] {
        let out = tmp.path().join("copy");
        let err = unpack_as(&archive(&[(name, F, None, b"x")]), &out).unwrap_err();
        assert!(err.to_string().contains("leaves the directory"), "{err}");
    }
    assert!(!tmp.path().join("evil").exists());
    assert!(!tmp.path().join("b").exists());
}

#[test]
fn hard_links_only_to_files_of_the_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("copy");
    let tar = archive(&[
        ("src/a", F, None, b"alpha"),
        ("src/same", H, Some("src/a"), b""),
        ("src/passwd", H, Some("/etc/passwd"), b""),
        ("src/up", H, Some("src/../../x"), b""),
        ("src/fifo", tar::EntryType::Fifo, None, b""),
    ]);
    let warnings = unpack_as(&tar, &out).unwrap();
    assert_eq!(fs::read_to_string(out.join("same")).unwrap(), "alpha");
    assert!(fs::symlink_metadata(out.join("passwd")).is_err());
    assert!(fs::symlink_metadata(out.join("up")).is_err());
    assert!(fs::symlink_metadata(out.join("fifo")).is_err());
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w.contains("passwd")),
        "{warnings:?}"
    );
}

#[test]
fn uploads_leave_out_links_that_leave_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), "a").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("abs")).unwrap();
    std::os::unix::fs::symlink("..", src.join("up")).unwrap();
    std::os::unix::fs::symlink("../a.txt", src.join("sub/a")).unwrap();
    let (tar, warnings) = tar_directory(&src, "src").unwrap();
    let mut names = Vec::new();
    for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        let entry = entry.unwrap();
        names.push((
            entry.path().unwrap().display().to_string(),
            entry.link_name().unwrap().map(|l| l.display().to_string()),
        ));
    }
    assert!(
        names.contains(&("src/sub/a".into(), Some("../a.txt".into()))),
        "{names:?}"
    );
    assert!(names.contains(&("src/a.txt".into(), None)), "{names:?}");
    assert!(!names.iter().any(|(n, _)| n == "src/abs" || n == "src/up"));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // And it round-trips.
    let out = tmp.path().join("copy");
    unpack_as(&tar, &out).unwrap();
    assert_eq!(fs::read_to_string(out.join("sub/a")).unwrap(), "a");
}
