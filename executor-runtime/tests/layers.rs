//! The runtime's layout, checked: each folder of `src/` is a layer or a backend, a layer imports
//! only the layers before it, and a backend imports only layers, never another backend. So no
//! import circle crosses a folder, and a backend can be read (and removed) on its own.
//!
//! The check reads the sources: every `crate::<folder>` path outside comments, in `use` items and
//! inline paths alike (`crate::{a, b}` groups included), and every `super::` path that would leave
//! its folder.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The shared layers, in order: each may import the ones before it.
const LAYERS: &[&str] = &["task", "block", "remote"];
/// The backends: each may import the layers, and nothing else of the crate.
const BACKENDS: &[&str] = &["thread", "process", "mpi"];

#[test]
fn no_backend_imports_another_and_layers_import_only_the_layers_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut folders = BTreeSet::new();
    let mut faults = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let source = fs::read_to_string(file).unwrap();
        if let Some(folder) = folder_of(relative) {
            folders.insert(folder.to_string());
        }
        faults.extend(check(relative, &source));
    }
    let expected: BTreeSet<String> = LAYERS
        .iter()
        .chain(BACKENDS)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        folders, expected,
        "every folder of src/ is a layer or a backend"
    );
    assert!(
        faults.is_empty(),
        "imports across folders that the layout forbids:\n{}",
        faults.join("\n")
    );
}

#[test]
fn the_check_finds_a_backend_that_imports_another_and_a_layer_that_imports_a_backend() {
    let mpi = Path::new("mpi/pool.rs");
    assert_eq!(
        check(mpi, "use crate::remote::queue::CallQueue;\n"),
        Vec::<String>::new()
    );
    let faults = check(
        mpi,
        "use crate::process::pool::Queued;\nfn f() { crate::thread::x(); }\n",
    );
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert!(
        faults[0].contains("mpi/pool.rs:1 imports `process`"),
        "{faults:?}"
    );
    let grouped = check(
        Path::new("process/link.rs"),
        "use crate::{remote::wire, mpi::comm};\n",
    );
    assert_eq!(grouped.len(), 1, "{grouped:?}");
    let layer = check(
        Path::new("remote/queue.rs"),
        "use crate::thread::job::Job;\n",
    );
    assert_eq!(layer.len(), 1, "{layer:?}");
    let upward = check(Path::new("task/future.rs"), "use crate::block::identity;\n");
    assert_eq!(upward.len(), 1, "{upward:?}");
    let root = check(
        Path::new("thread/pool.rs"),
        "let b = crate::Backend::Thread;\n",
    );
    assert_eq!(root.len(), 1, "{root:?}");
    let commented = check(
        mpi,
        "// see crate::process::pool\n/// [`x`](crate::thread::x)\n",
    );
    assert!(commented.is_empty(), "{commented:?}");
    let lifecycle = Path::new("mpi/ranks/lifecycle.rs");
    assert!(check(lifecycle, "use super::super::pool::Block;\n").is_empty());
    let climbing = check(
        lifecycle,
        "use super::super::super::process::pool::Queued;\n",
    );
    assert_eq!(climbing.len(), 1, "{climbing:?}");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The folder a file belongs to; `None` for the crate root's own files (`lib.rs`, `fuzzing.rs`),
/// which wire the folders together.
fn folder_of(relative: &Path) -> Option<&str> {
    let mut parts = relative.components();
    let first = parts.next()?.as_os_str().to_str()?;
    parts.next().map(|_| first)
}

/// The folders `folder` may import besides itself.
fn allowed(folder: &str) -> &'static [&'static str] {
    if let Some(at) = LAYERS.iter().position(|l| *l == folder) {
        &LAYERS[..at]
    } else {
        LAYERS
    }
}

/// The forbidden imports of one file, as `path:line imports `folder``.
fn check(relative: &Path, source: &str) -> Vec<String> {
    let Some(folder) = folder_of(relative) else {
        return Vec::new();
    };
    // The file's module path has this many segments (`mpi/ranks/lifecycle.rs`: 3; a `mod.rs` is
    // its folder's module); `super::` that many times in a row reaches the crate root.
    let is_mod = relative.file_name().is_some_and(|n| n == "mod.rs");
    let segments = relative.components().count() - usize::from(is_mod);
    let mut faults = Vec::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut fault = |what: &str| {
            faults.push(format!(
                "{}:{} imports `{what}`: {}",
                relative.display(),
                number + 1,
                line.trim()
            ))
        };
        for target in crate_paths(code) {
            if target != folder && !allowed(folder).contains(&target.as_str()) {
                fault(&target);
            }
        }
        if consecutive_supers(code) >= segments {
            fault("super::");
        }
    }
    faults
}

/// The most `super::` in a row on a line.
fn consecutive_supers(code: &str) -> usize {
    let mut most = 0;
    for (at, _) in code.match_indices("super::") {
        let mut count = 0;
        let mut rest = &code[at..];
        while let Some(next) = rest.strip_prefix("super::") {
            count += 1;
            rest = next;
        }
        most = most.max(count);
    }
    most
}

/// The first segment of every `crate::` path on a line (lowercase: a module; anything else, such
/// as `crate::Backend`, is an item of the root, which the folders must not reach through).
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // Not a longer word ending in `crate` (`my_crate::`).
        if code[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inside = group.split('}').next().unwrap_or("");
            for item in inside.split(',') {
                let segment = item.trim().split("::").next().unwrap_or("").trim();
                if !segment.is_empty() {
                    found.push(segment.to_string());
                }
            }
        } else {
            let segment: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !segment.is_empty() {
                found.push(segment);
            }
        }
    }
    found
}
