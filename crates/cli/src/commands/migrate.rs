//! `plinth migrate up|down [n]|create <name>|collections|history-sync`, with PocketBase's
//! messages and `(y/N)` prompts, so deploy scripts written for it keep working. A prompt
//! reads one line of stdin; anything but `y`/`yes` (an empty or closed stdin included)
//! cancels, as in PocketBase; `-y` answers yes without asking.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use domain::Store;
use server::scripts::migrations;
use server::{AppState, ServerConfig, SharedState};

use crate::config::{GlobalArgs, MigrateArgs};

pub async fn run(global: &GlobalArgs, args: MigrateArgs) -> anyhow::Result<()> {
    let action = args.args.first().map(String::as_str).unwrap_or("up");
    let dir = global.migrations_dir();
    match action {
        "create" => {
            let name = args
                .args
                .get(1)
                .filter(|n| !n.is_empty())
                .context("missing migration file name")?;
            let path = migrations::new_file_path(&dir, name);
            write_confirmed(&path, &migrations::blank_template(), args.yes)
        }
        "collections" => {
            let store = super::open_store(global, false).await?;
            let schema = store.schema();
            let content = migrations::snapshot_template(schema.all());
            store.close().await.context("closing the database")?;
            let path = dir.join(format!("{}_collections_snapshot.js", unix_seconds()));
            write_confirmed(&path, &content, args.yes)
        }
        "up" => {
            let (state, store) = start(global).await?;
            let scripts = server::scripts::of(&state).context("the hook engine did not start")?;
            let result = migrations::apply_pending(&state, scripts, &dir).await;
            store.close().await.context("closing the database")?;
            let applied = result?;
            if applied.is_empty() {
                println!("No new migrations to apply.");
            }
            for file in applied {
                println!("Applied {file}");
            }
            Ok(())
        }
        "down" => {
            let (state, store) = start(global).await?;
            let applied = store.applied_migrations().await?.len();
            let n = match args.args.get(1) {
                None => 1,
                // PocketBase reads a bad number as 0 and a negative one as "all".
                Some(text) => match text.trim().parse::<i64>() {
                    Ok(n) if n < 0 => applied,
                    Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
                    Err(_) => 0,
                },
            };
            let names = migrations::last_applied(store.as_ref(), n).await?;
            println!("\n{}", names.join("\n"));
            let question =
                format!("Do you really want to revert the last {n} applied migration(s)?");
            if !confirm(&question, args.yes) {
                store.close().await.context("closing the database")?;
                println!("The command has been cancelled");
                return Ok(());
            }
            let scripts = server::scripts::of(&state).context("the hook engine did not start")?;
            let result = migrations::revert(&state, scripts, &dir, n).await;
            store.close().await.context("closing the database")?;
            let reverted = result?;
            if reverted.is_empty() {
                println!("No migrations to revert.");
            }
            for file in reverted {
                println!("Reverted {file}");
            }
            Ok(())
        }
        "history-sync" => {
            let store = super::open_store(global, false).await?;
            let result = migrations::history_sync(store.as_ref(), &dir).await;
            store.close().await.context("closing the database")?;
            result?;
            println!("The _migrations table was synced with the available migrations.");
            Ok(())
        }
        other => anyhow::bail!("unsupported command: {other:?}"),
    }
}

/// Opens the store and loads the hooks (so model hooks fire for what migrations save).
async fn start(global: &GlobalArgs) -> anyhow::Result<(SharedState, Arc<dyn Store>)> {
    let hash_cost = global.hash_cost()?;
    let store = super::open_store(global, false).await?;
    let config = ServerConfig {
        bcrypt_cost: hash_cost,
        argon2: server::state::Argon2Params::for_bcrypt_cost(hash_cost),
        storage_dir: Some(global.dir.join("storage")),
        settings_key: global.settings_key()?,
        ..ServerConfig::default()
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    let state = AppState::new(dyn_store, config);
    super::hooks::start(global, &state).await?;
    Ok((state, store))
}

/// Asks to write `path`, then writes it (creating the folder).
fn write_confirmed(path: &Path, content: &str, yes: bool) -> anyhow::Result<()> {
    let shown = path.display().to_string();
    if !confirm(
        &format!("Do you really want to create migration {shown:?}?"),
        yes,
    ) {
        println!("The command has been cancelled");
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("writing {shown}"))?;
    println!("Successfully created file {shown:?}");
    Ok(())
}

/// Prints `question (y/N) ` and reads one answer line; `yes` skips the question.
fn confirm(question: &str, yes: bool) -> bool {
    if yes {
        return true;
    }
    print!("{question} (y/N) ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
