//! Keeps the dependency rule of ARCHITECTURE.md true: dependencies point toward `domain`, only
//! `cli` names a concrete store, and the pure crates never pull in a runtime or a driver; and
//! the server writes no engine-specific SQL.

use std::path::Path;

/// (crate folder, workspace crates it may depend on, crates.io packages it must never use)
const RULES: &[(&str, &[&str], &[&str])] = &[
    (
        "domain",
        &[],
        &["tokio", "axum", "rusqlite", "tokio-postgres", "hyper"],
    ),
    (
        "rules",
        &["domain"],
        &["tokio", "axum", "rusqlite", "tokio-postgres", "hyper"],
    ),
    ("store-sqlite", &["domain"], &["axum", "hyper"]),
    (
        "store-conformance",
        &["domain", "rules"],
        &[
            "axum",
            "hyper",
            "rusqlite",
            "tokio-postgres",
            "deadpool-postgres",
        ],
    ),
    (
        "hooks",
        &[],
        &["axum", "hyper", "rusqlite", "tokio-postgres", "reqwest"],
    ),
    (
        "server",
        &["domain", "rules", "hooks"],
        &["rusqlite", "tokio-postgres", "deadpool-postgres"],
    ),
    (
        "admin-ui",
        &[],
        &["tokio", "axum", "hyper", "rusqlite", "tokio-postgres"],
    ),
    (
        "cli",
        &[
            "domain",
            "rules",
            "store-sqlite",
            "server",
            "hooks",
            "admin-ui",
        ],
        &[],
    ),
];

const WORKSPACE_CRATES: &[&str] = &[
    "domain",
    "rules",
    "store-sqlite",
    "store-postgres",
    "store-conformance",
    "hooks",
    "server",
    "admin-ui",
    "cli",
];

fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_section = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[dependencies]";
            continue;
        }
        if in_section && let Some((name, _)) = line.split_once('=') {
            let name = name.trim().trim_end_matches(".workspace").to_owned();
            if !name.is_empty() && !name.starts_with('#') {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn crate_dependencies_follow_the_rule() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&crates).expect("crates dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !path.join("Cargo.toml").exists() {
            continue;
        }
        let rule = RULES.iter().find(|(folder, _, _)| *folder == name);
        let Some((_, allowed, banned)) = rule else {
            panic!("crate {name} has no row in the dependency table (tidy.rs and ARCHITECTURE.md)");
        };
        let manifest = std::fs::read_to_string(path.join("Cargo.toml")).expect("manifest");
        for dependency in normal_dependencies(&manifest) {
            if WORKSPACE_CRATES.contains(&dependency.as_str()) {
                assert!(
                    allowed.contains(&dependency.as_str()),
                    "{name} must not depend on {dependency}"
                );
            }
            assert!(
                !banned.contains(&dependency.as_str()),
                "{name} must not depend on {dependency}"
            );
        }
        seen.push(name);
    }
    assert!(seen.len() >= 5, "expected the five crates, saw {seen:?}");
}

#[test]
fn every_module_says_why_it_exists() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut missing = Vec::new();
    let mut stack = vec![crates];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if !path.ends_with("tests") && !path.ends_with("target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.components().any(|c| c.as_os_str() == "src")
                && path.file_name().is_none_or(|n| n != "tests.rs")
            {
                let text = std::fs::read_to_string(&path).expect("source");
                if !text.trim_start().starts_with("//!") {
                    missing.push(path.display().to_string());
                }
                assert!(!text.contains("dbg!("), "{} contains dbg!", path.display());
            }
        }
    }
    assert!(missing.is_empty(), "modules without a //! doc: {missing:?}");
}

/// SQL only one engine understands (JSON functions, collations, SQLite's own helpers). The
/// server asks the store (`Store::field_holds_any`, `IndexDef::render` in the engine) or the
/// rules emitter instead.
const ENGINE_SQL: &[&str] = &[
    "json_each",
    "json_valid",
    "json_extract",
    "json_array",
    "jsonb_",
    "COLLATE",
    "strftime(",
    "randomblob",
];

#[test]
fn the_server_writes_no_engine_specific_sql() {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut found = Vec::new();
    let mut stack = vec![server];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if !path.ends_with("tests") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_none_or(|n| n != "tests.rs")
            {
                let text = std::fs::read_to_string(&path).expect("source");
                // Unit tests sit at the end of a module, after `#[cfg(test)]`.
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for token in ENGINE_SQL {
                    if code.contains(token) {
                        found.push(format!("{}: {token}", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "engine-specific SQL in the server: {found:?}"
    );
}
