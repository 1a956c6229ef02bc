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
        "store-postgres",
        &["domain"],
        &["axum", "hyper", "rusqlite"],
    ),
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
            "store-postgres",
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

/// The server's feature modules: the state may name none of them (ARCHITECTURE.md, "The
/// ground floor").
const FEATURES: &[&str] = &[
    "auth",
    "settings",
    "realtime",
    "records",
    "files",
    "collections",
    "logs",
    "mail",
    "cron",
    "backups",
    "import",
    "scripts",
    "batch",
    "dashboard",
    "metrics",
    "superusers",
    "access",
    "sql",
    "health",
];

/// The first path segments `text` names after each `prefix` (`prefix::a::b` gives `a`,
/// `prefix::{a::b, c}` gives `a` and `c`).
fn segments_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let ident = |s: &'a str| {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        &s[..end]
    };
    let mut found = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        // `foo_crate::` or `mycrate::` is not `crate::`.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                found.extend(group.split(',').map(|item| ident(item.trim())));
            }
            None => found.push(ident(rest)),
        }
    }
    found
}

#[test]
fn the_state_imports_no_feature() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut files = Vec::new();
    let mut stack: Vec<_> = std::fs::read_dir(&src)
        .expect("server src")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("state"))
        })
        .collect();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .expect("dir")
                    .map(|entry| entry.expect("entry").path()),
            );
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    assert!(
        files.iter().any(|path| path.ends_with("state/mod.rs")),
        "the ground floor moved: {files:?}"
    );
    let mut found = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("source");
        let mut named = segments_after(&text, "crate::");
        // `super::` back up to the crate root names a feature as well (`super::auth` from
        // `state/mod.rs`, `super::super::auth` from `state/hub.rs`); inline test modules add
        // a level, so this reads the code before them.
        let depth = path
            .strip_prefix(&src)
            .expect("under src")
            .components()
            .count()
            - usize::from(path.ends_with("mod.rs"));
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        named.extend(segments_after(code, &"super::".repeat(depth)));
        for name in named {
            if FEATURES.contains(&name) {
                found.push(format!("{}: {name}", path.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the state (the ground floor) names feature modules: {found:?}"
    );
}

/// `link-order.txt` (written by `bench/link_order.py`, handed to the linker by `build.rs`) is
/// a list of linker symbol names, one per line, each once: a name with a callgrind recursion
/// suffix (`f'2`), a space or a blank line would be a broken regeneration the linker skips
/// quietly.
#[test]
fn the_link_order_lists_symbol_names_once() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("link-order.txt");
    let text = std::fs::read_to_string(&path).expect("crates/cli/link-order.txt");
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        assert!(
            !line.is_empty() && !line.contains(char::is_whitespace) && !line.contains('\''),
            "line {} of link-order.txt is not a symbol name: {line:?}",
            n + 1
        );
        assert!(seen.insert(line), "{line} is listed twice");
    }
    assert!(seen.len() >= 1000, "only {} names", seen.len());
    for ours in ["_ZN6server", "_ZN12store_sqlite", "sqlite3"] {
        assert!(
            seen.iter().any(|name| name.starts_with(ours)),
            "no {ours}… function in link-order.txt"
        );
    }
}
