//! Starting the JavaScript hooks for a command: load the hook files, report the ones that
//! fail (fatal with `--hooksWatch=false`, as PocketBase), hand the engine to the app state,
//! register the files' cron jobs, and watch the folder for changes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use server::SharedState;

use crate::config::GlobalArgs;

/// Loads the hooks into `state`. A missing or empty hooks folder is not an error.
pub async fn start(global: &GlobalArgs, state: &SharedState) -> anyhow::Result<()> {
    let scripts = server::scripts::start(global.hooks_config())
        .await
        .context("loading the JavaScript hooks")?;
    for failure in &scripts.engine.failures {
        eprintln!("failed to execute {}:", failure.file);
        eprintln!(" - {}", failure.error);
    }
    if !scripts.engine.failures.is_empty() && !global.hooks_watch {
        anyhow::bail!("a hook file failed to load (see above)");
    }
    server::scripts::register_crons(state, &scripts);
    let _ = state.scripts.set(scripts);
    Ok(())
}

/// The newest modification time under `dir` (names starting with `.` and `node_modules`
/// skipped), with the number of entries, so an added or removed file counts too.
fn fingerprint(dir: &Path) -> (Option<SystemTime>, usize) {
    let mut newest = None;
    let mut count = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "node_modules" {
                continue;
            }
            count += 1;
            if let Ok(meta) = entry.metadata() {
                if let Ok(modified) = meta.modified() {
                    newest = newest.max(Some(modified));
                }
                if meta.is_dir() && count < 10_000 {
                    stack.push(entry.path());
                }
            }
        }
    }
    (newest, count)
}

/// Resolves when a file in the hooks folder changes (polled each second), so `serve` can
/// restart the process, as PocketBase does with `--hooksWatch`.
pub async fn changed(dir: PathBuf) {
    let start = fingerprint(&dir);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if fingerprint(&dir) != start {
            eprintln!("File {} changed, restarting...", dir.display());
            return;
        }
    }
}
