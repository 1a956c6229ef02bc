//! Loading a hooks folder: which files count (PocketBase's rules), and running their top
//! level once in a loader runtime that records registrations instead of acting on them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::pool::Pool;
use crate::{EngineConfig, HookError, Host, HostError, HostResult, Registry};

/// A hook file whose top level failed; what it registered before the failure is kept.
#[derive(Debug, Clone, Deserialize)]
pub struct LoadFailure {
    pub file: String,
    pub error: String,
}

/// The hook files of `dir`: direct children named `*.pb.js` or `*.pb.ts`, sorted by name
/// (PocketBase 0.40 loads them in map order, which is random; name order is one of those
/// orders and the one its docs promise).
pub fn hook_files(dir: &Path) -> Vec<PathBuf> {
    files_matching(dir, |name| {
        name.ends_with(".pb.js") || name.ends_with(".pb.ts")
    })
}

/// The migration files of `dir`: direct children named `*.js` or `*.ts`, in plain string
/// order of their names, as PocketBase applies them.
pub fn migration_files(dir: &Path) -> Vec<PathBuf> {
    files_matching(dir, |name| name.ends_with(".js") || name.ends_with(".ts"))
}

fn files_matching(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// The loader has no app yet: a top-level `$app` call fails with a clear message.
struct NoApp;

impl Host for NoApp {
    fn call(&self, op: &str, _args: Value) -> HostResult {
        Err(HostError::go(format!(
            "{op}: the app is not available while hook files load; call it inside a handler"
        )))
    }
}

#[derive(Deserialize)]
struct Loaded {
    registry: Registry,
    failures: Vec<LoadFailure>,
}

/// Runs every hook file's top level and returns what they registered.
pub async fn load(config: &EngineConfig) -> Result<(Registry, Vec<LoadFailure>), HookError> {
    let Some(dir) = &config.hooks_dir else {
        return Ok((Registry::default(), Vec::new()));
    };
    let files = hook_files(dir);
    if files.is_empty() {
        return Ok((Registry::default(), Vec::new()));
    }
    let pool = Pool::start(config.clone(), Arc::new(Registry::default()))?;
    let files: Vec<String> = files
        .iter()
        .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()))
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    let answer = pool
        .call_fresh("load", json!({ "files": files }), Arc::new(NoApp))
        .await?;
    let loaded: Loaded = serde_json::from_value(answer)
        .map_err(|e| HookError::Engine(format!("unreadable registrations: {e}")))?;
    Ok((loaded.registry, loaded.failures))
}
