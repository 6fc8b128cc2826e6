//! Tidy: the repository's invariants that no compiler checks, checked by reading the files
//! (as rust-analyzer's `tests/tidy.rs` does). It runs with `cargo test --workspace`, needs
//! nothing but std and takes well under a second. Each check names the file that breaks it
//! and says what to do.
//!
//! - No source file outside tests passes [`MAX_LINES`], except [`LONG_FILES`], the files
//!   over it today, each with the issue that splits it. The list only shrinks: a listed
//!   file back under the limit fails until its line is deleted.
//! - The storage, cluster and services crates ([`TRANSPORT_FREE`]) name no wire or HTTP
//!   crate.
//! - Nothing refers to the `shared` directory beside the repository, except
//!   [`SHARED_REFERENCES`].
//! - Every crate takes the workspace's lints (`[lints] workspace = true`).
//! - Library crates ([`QUIET_LIBRARIES`]) print nothing (`println!`, `eprintln!`, `dbg!`)
//!   outside their tests: they report through `tracing` or to their caller.
//!
//! Not checked: that every dependency in a Cargo.toml has a comment saying why; many have
//! none today.

use std::fs;
use std::path::{Path, PathBuf};

/// The longest a source file outside tests may be.
const MAX_LINES: usize = 1_000;

/// The files over [`MAX_LINES`] today, and the issue that splits each.
const LONG_FILES: &[(&str, &str)] = &[];

/// Crates with no wire types: the storage half, the cluster layer and the services (the core
/// room) under the API.
const TRANSPORT_FREE: &[&str] = &[
    "stele-core",
    "stele-log",
    "stele-index",
    "stele-cluster",
    "stele-services",
];

/// The wire and HTTP crates [`TRANSPORT_FREE`] crates must not name (our generated protobuf
/// types, `stele_proto`, included).
const WIRE_CRATES: &[&str] = &["tonic", "prost", "axum", "hyper", "stele_proto"];

/// Library crates, which must not print.
const QUIET_LIBRARIES: &[&str] = &[
    "stele-core",
    "stele-log",
    "stele-index",
    "stele-cluster",
    "stele-services",
    "stele-api",
    "stele-proto",
];

/// References to the `shared` directory beside the repository allowed for now, with why. Each must still be referred to
/// somewhere (else delete its line).
const SHARED_REFERENCES: &[(&str, &str)] = &[
    (
        "PROTOCOL.md",
        "the wire contract the .proto files were written from; not yet brought into docs/ \
         (issue 12, item 6 brought the design decisions only)",
    ),
    (
        "bench-peers/",
        "the peer systems' benchmark scripts (PostgreSQL, etcd, NATS), kept beside the \
         repository; docs/benchmarks.md says how they were run",
    ),
];

#[test]
fn no_source_file_outside_tests_passes_the_line_limit() {
    let root = repo_root();
    let mut failures = Vec::new();
    let mut over = Vec::new();
    for path in files_under(&root.join("crates"), &|p| {
        is_rs(p) && !is_test_file(&relative(&root, p))
    }) {
        let lines = read(&path).lines().count();
        let name = relative(&root, &path);
        if lines > MAX_LINES {
            over.push(name.clone());
            if !LONG_FILES.iter().any(|(f, _)| *f == name) {
                failures.push(format!(
                    "{name}: {lines} lines, over the limit of {MAX_LINES}: split it by job \
                     (or, with the issue that will split it, add it to LONG_FILES in {})",
                    this_file()
                ));
            }
        }
    }
    for (file, issue) in LONG_FILES {
        if !over.iter().any(|f| f == file) {
            failures.push(format!(
                "{file} is in LONG_FILES ({issue}) but is no longer over {MAX_LINES} lines \
                 (or is gone): delete its line from LONG_FILES in {}",
                this_file()
            ));
        }
    }
    assert_clean("file length", &failures);
}

#[test]
fn storage_and_cluster_crates_name_no_wire_crate() {
    let root = repo_root();
    let mut failures = Vec::new();
    for krate in TRANSPORT_FREE {
        let dir = root.join("crates").join(krate);
        let files = files_under(&dir, &|p| is_rs(p) || p.ends_with("Cargo.toml"));
        assert!(!files.is_empty(), "no files found for {krate}");
        for path in files {
            for (n, line) in read(&path).lines().enumerate() {
                for word in identifiers(line) {
                    let wire = WIRE_CRATES
                        .iter()
                        .find(|w| word == **w || word.starts_with(&format!("{w}_")));
                    if let Some(wire) = wire {
                        failures.push(format!(
                            "{}:{}: names `{word}`; {krate} must stay transport-free \
                             (no {wire}): wire types belong in stele-api's adapters",
                            relative(&root, &path),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert_clean("transport-free crates", &failures);
}

#[test]
fn nothing_refers_outside_the_repository() {
    let root = repo_root();
    // Built here so that this file does not match itself.
    let pattern = format!("..{}shared/", '/');
    let mut failures = Vec::new();
    let mut used = vec![false; SHARED_REFERENCES.len()];
    for path in files_under(&root, &|_| true) {
        let Ok(text) = fs::read_to_string(&path) else {
            continue; // not text
        };
        for (n, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices(&pattern) {
                let target = &line[at + pattern.len()..];
                match SHARED_REFERENCES
                    .iter()
                    .position(|(allowed, _)| target.starts_with(allowed))
                {
                    Some(i) => used[i] = true,
                    None => failures.push(format!(
                        "{}:{}: refers to `{pattern}`, outside the repository: point it at \
                         the copy in docs/ (docs/design.md holds the design decisions)",
                        relative(&root, &path),
                        n + 1
                    )),
                }
            }
        }
    }
    for ((allowed, why), used) in SHARED_REFERENCES.iter().zip(used) {
        if !used {
            failures.push(format!(
                "`{pattern}{allowed}` ({why}) is no longer referred to: delete it from \
                 SHARED_REFERENCES in {}",
                this_file()
            ));
        }
    }
    assert_clean("references outside the repository", &failures);
}

#[test]
fn every_crate_takes_the_workspace_lints() {
    let root = repo_root();
    let mut failures = Vec::new();
    let mut crates = 0;
    for entry in fs::read_dir(root.join("crates")).expect("reading crates/") {
        let manifest = entry.expect("reading crates/").path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        crates += 1;
        let name = relative(&root, &manifest);
        let text = read(&manifest);
        let mut section = String::new();
        let mut takes_workspace = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
                if section.starts_with("[lints.") {
                    failures.push(format!(
                        "{name}: has its own `{section}` table; Cargo takes the workspace's \
                         lints whole or not at all: move the entry to [workspace.lints] in \
                         the root Cargo.toml"
                    ));
                }
            } else if section == "[lints]" && line.replace(' ', "") == "workspace=true" {
                takes_workspace = true;
            }
        }
        if !takes_workspace {
            failures.push(format!(
                "{name}: lacks `[lints] workspace = true`: every crate takes the workspace's \
                 lints"
            ));
        }
    }
    assert!(crates > 0, "no crates found under crates/");
    assert_clean("workspace lints", &failures);
}

#[test]
fn library_crates_do_not_print() {
    let root = repo_root();
    let mut failures = Vec::new();
    for krate in QUIET_LIBRARIES {
        let src = root.join("crates").join(krate).join("src");
        for path in files_under(&src, &|p| is_rs(p) && !is_test_file(&relative(&root, p))) {
            let text = read(&path);
            let lines: Vec<&str> = text.lines().collect();
            for (n, line) in lines.iter().enumerate().take(test_module_start(&lines)) {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for mac in ["println!", "eprintln!", "print!", "eprint!", "dbg!"] {
                    let found = code
                        .match_indices(mac)
                        .any(|(at, _)| !code[..at].ends_with(|c: char| is_ident(c)));
                    if found {
                        failures.push(format!(
                            "{}:{}: `{mac}` in library crate {krate}: log through \
                             `tracing` or return it to the caller",
                            relative(&root, &path),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert_clean("printing libraries", &failures);
}

// ---- helpers

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().expect("the repository root")
}

fn this_file() -> &'static str {
    "crates/stele-testkit/tests/tidy.rs"
}

/// Every file under `dir` that `keep` accepts, sorted; build output, git's files and
/// virtual environments are skipped.
fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let file_type = entry.file_type().expect("file type");
            if file_type.is_dir() {
                let skipped = matches!(
                    name.as_ref(),
                    "target" | ".git" | "tmp" | "node_modules" | "__pycache__"
                ) || name.starts_with(".venv");
                if !skipped {
                    pending.push(path);
                }
            } else if file_type.is_file() && keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_rs(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "rs")
}

/// Test code: anything in a `tests/` directory, and `tests.rs` modules (`relative`: from the
/// repository's root, with `/`).
fn is_test_file(relative: &str) -> bool {
    relative.split('/').any(|c| c == "tests") || relative.ends_with("/tests.rs")
}

/// The first line of the inline test module (`#[cfg(test)]` then `mod NAME {`), which
/// ends a file by convention, or the end.
fn test_module_start(lines: &[&str]) -> usize {
    (0..lines.len())
        .find(|&i| {
            lines[i].trim() == "#[cfg(test)]"
                && lines[i + 1..]
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.starts_with("mod ") && l.trim_end().ends_with('{'))
        })
        .unwrap_or(lines.len())
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn identifiers(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| !is_ident(c)).filter(|w| !w.is_empty())
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"))
}

fn relative(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.to_string_lossy().replace('\\', "/")
}

fn assert_clean(check: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "tidy ({check}): {} problem(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
