//! JavaScript migrations (`pb_migrations`): applied in file-name order, recorded in
//! `_migrations`, all pending ones in one transaction, so a folder either moves the database
//! forward as a whole or not at all (PocketBase's behaviour, which deploy scripts rely on).
//!
//! Also here: the files Plinth writes itself, a blank template (`migrate create`), a snapshot
//! of the collections (`migrate collections`), and the automigrate files written when a
//! collection changes through the API, so a dev database's schema can be replayed elsewhere.
//! The generated JavaScript only uses what both PocketBase and Plinth provide (`Collection`,
//! `Field`, `unmarshal`, `fields.removeById`/`addAt`, `app.save`/`delete`/`importCollections`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use domain::{Collection, Store, StoreError};
use serde_json::{Map, Value, json};

use super::{AppHost, Scripts};
use crate::state::SharedState;

/// How long the one transaction of a migration run may stay open: generous, because a
/// migration may rewrite large tables, but bounded so a stuck script cannot hold the writer.
const TX_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Why migrations could not be applied, reverted or listed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("failed to apply migration {file}: {error}")]
    Apply { file: String, error: String },
    #[error("failed to revert migration {file}: {error}")]
    Revert { file: String, error: String },
    #[error("migrations: {0}")]
    Store(#[from] StoreError),
}

/// Which way a file runs.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Up,
    Down,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// The base name of a migration file, as `_migrations` records it.
fn base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Now in Unix microseconds, the unit of `_migrations.applied`.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The migration files of `dir` not yet recorded as applied, in the order they apply.
pub async fn pending(store: &dyn Store, dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let files = hooks::migration_files(dir);
    if files.is_empty() {
        return Ok(files);
    }
    let applied: HashSet<String> = store
        .applied_migrations()
        .await?
        .into_iter()
        .map(|(file, _)| file)
        .collect();
    Ok(files
        .into_iter()
        .filter(|f| !applied.contains(&base_name(f)))
        .collect())
}

/// The last `n` applied migrations, newest first (by applied time, then file name).
pub async fn last_applied(store: &dyn Store, n: usize) -> Result<Vec<String>, StoreError> {
    let applied = store.applied_migrations().await?;
    Ok(applied
        .into_iter()
        .rev()
        .take(n)
        .map(|(file, _)| file)
        .collect())
}

/// Applies every pending file of `dir` in one transaction and records each in
/// `_migrations`; answers the applied names. On any failure nothing is kept, and the error
/// names the file. A file whose top level never calls `migrate` is skipped (not recorded).
pub async fn apply_pending(
    state: &SharedState,
    scripts: &Arc<Scripts>,
    dir: &Path,
) -> Result<Vec<String>, MigrationError> {
    let files = pending(state.store.as_ref(), dir).await?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let tx = state
        .store
        .begin(Some(Instant::now() + TX_DEADLINE))
        .await?;
    let id = scripts.open_tx(tx);
    let mut applied = Vec::new();
    let mut failure = None;
    for path in &files {
        let file = base_name(path);
        let step = async {
            if !run_file(state, scripts, path, Direction::Up, id).await? {
                return Ok(false);
            }
            in_tx(scripts, id, |open| {
                let file = file.clone();
                Box::pin(async move { open.record_migration(&file, now_us()).await })
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok::<bool, String>(true)
        };
        match step.await {
            Ok(true) => applied.push(file),
            Ok(false) => {}
            Err(error) => {
                failure = Some(MigrationError::Apply { file, error });
                break;
            }
        }
    }
    match failure {
        Some(error) => {
            if let Err(rollback) = finish(state, scripts, id, false).await {
                tracing::debug!(%rollback, "migration transaction already ended");
            }
            Err(error)
        }
        None => {
            finish(state, scripts, id, true).await?;
            Ok(applied)
        }
    }
}

/// Reverts the last `n` applied migrations, newest first, each in its own transaction (its
/// `down`, then its `_migrations` row). A file without `down` reverts as a no-op; a recorded
/// file that is gone from `dir`, or never calls `migrate`, is left alone (as PocketBase does).
/// Answers the reverted names.
pub async fn revert(
    state: &SharedState,
    scripts: &Arc<Scripts>,
    dir: &Path,
    n: usize,
) -> Result<Vec<String>, MigrationError> {
    let mut reverted = Vec::new();
    for file in last_applied(state.store.as_ref(), n).await? {
        let path = dir.join(&file);
        if !path.is_file() {
            continue;
        }
        let tx = state
            .store
            .begin(Some(Instant::now() + TX_DEADLINE))
            .await?;
        let id = scripts.open_tx(tx);
        let step = async {
            if !run_file(state, scripts, &path, Direction::Down, id).await? {
                return Ok(false);
            }
            in_tx(scripts, id, |open| {
                let file = file.clone();
                Box::pin(async move { open.forget_migration(&file).await.map(|_| ()) })
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok::<bool, String>(true)
        };
        match step.await {
            Ok(true) => {
                finish(state, scripts, id, true).await?;
                reverted.push(file);
            }
            Ok(false) => {
                let _ = finish(state, scripts, id, false).await;
            }
            Err(error) => {
                let _ = finish(state, scripts, id, false).await;
                return Err(MigrationError::Revert { file, error });
            }
        }
    }
    Ok(reverted)
}

/// Forgets the applied migrations whose file is no longer in `dir`; answers how many.
pub async fn history_sync(store: &dyn Store, dir: &Path) -> Result<usize, StoreError> {
    let mut forgotten = 0;
    for (file, _) in store.applied_migrations().await? {
        if !dir.join(&file).is_file() && store.forget_migration(&file).await? {
            forgotten += 1;
        }
    }
    Ok(forgotten)
}

/// Runs one file's top level and its `up` or `down` in a fresh runtime, with an app bound to
/// the transaction `tx`. Answers whether the file called `migrate`.
async fn run_file(
    state: &SharedState,
    scripts: &Arc<Scripts>,
    path: &Path,
    direction: Direction,
    tx: u64,
) -> Result<bool, String> {
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let host = Arc::new(AppHost::new(state.clone(), scripts.clone()));
    let answer = scripts
        .engine
        .pool
        .call_fresh(
            "migration",
            json!({
                "file": file.to_string_lossy(),
                "direction": direction.as_str(),
                "tx": tx,
            }),
            host,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer
        .get("found")
        .and_then(Value::as_bool)
        .unwrap_or(false))
}

type TxFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Runs `work` on the open transaction registered as `id`.
async fn in_tx<F>(scripts: &Scripts, id: u64, work: F) -> Result<(), StoreError>
where
    F: for<'a> FnOnce(&'a mut Box<dyn domain::store::Transaction>) -> TxFuture<'a>,
{
    let shared = scripts.tx(id).ok_or_else(ended)?;
    let mut guard = shared.lock().await;
    let open = guard.as_mut().ok_or_else(ended)?;
    work(open).await
}

fn ended() -> StoreError {
    StoreError::Internal("the migration transaction has already ended".into())
}

/// Commits or rolls back the transaction `id`, and runs (or drops) the after-success hooks
/// of the writes made in it.
async fn finish(
    state: &SharedState,
    scripts: &Arc<Scripts>,
    id: u64,
    commit: bool,
) -> Result<(), StoreError> {
    let shared = scripts.take_tx(id).ok_or_else(ended)?;
    let open = shared.lock().await.take().ok_or_else(ended)?;
    if commit {
        open.commit().await?;
        super::records::after_commit(state, scripts, id).await;
    } else {
        super::records::after_rollback(state, scripts, id).await;
        open.rollback().await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------- new files

/// A name as a file-name part: words of ASCII letters and digits, lower case, joined by `_`,
/// with a break where a lower-case letter or digit meets an upper-case one ("AddStuffNow" →
/// "add_stuff_now"; "HTTPServer" → "httpserver"; other characters separate words), as
/// PocketBase names `migrate create` files.
pub fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for word in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('_');
        }
        let mut previous_upper = true;
        for c in word.chars() {
            let upper = c.is_ascii_uppercase();
            if upper && !previous_upper {
                out.push('_');
            }
            previous_upper = upper;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The path `migrate create` would write for `name` now: `<dir>/<unix-seconds>_<snake>.js`.
pub fn new_file_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}_{}.js", now_secs(), snake_case(name)))
}

/// The body of a blank migration (`migrate create`).
pub fn blank_template() -> String {
    concat!(
        "/// <reference path=\"../pb_data/types.d.ts\" />\n",
        "migrate((app) => {\n",
        "  // Apply the change here (runs inside one transaction with the other pending files).\n",
        "}, (app) => {\n",
        "  // Undo it here (`migrate down`); leave empty when it cannot be undone.\n",
        "});\n",
    )
    .to_owned()
}

/// A collection's definition as migration files carry it: the API shape without the
/// timestamps and without OAuth2 providers (their client secrets never go into files).
fn definition(collection: &Collection) -> Value {
    let mut json = collection.to_api_json();
    if let Some(object) = json.as_object_mut() {
        object.remove("created");
        object.remove("updated");
        if let Some(Value::Object(oauth2)) = object.get_mut("oauth2") {
            oauth2.remove("providers");
        }
    }
    json
}

/// `value` as pretty JSON whose lines after the first are indented by `indent`.
fn js_value(value: &Value, indent: &str) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    text.replace('\n', &format!("\n{indent}"))
}

fn js_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The body of `migrate collections`: every collection's definition, imported on top of
/// what exists (nothing is deleted); its down does nothing.
pub fn snapshot_template(collections: &[Arc<Collection>]) -> String {
    let list = Value::Array(collections.iter().map(|c| definition(c)).collect());
    format!(
        "/// <reference path=\"../pb_data/types.d.ts\" />\n\
         migrate((app) => {{\n\
         \x20 const snapshot = {};\n\
         \n\
         \x20 return app.importCollections(snapshot, false);\n\
         }}, (app) => {{\n\
         \x20 return null;\n\
         }});\n",
        js_value(&list, "  ")
    )
}

fn create_body(collection: &Value) -> String {
    format!(
        "  const collection = new Collection({});\n\n  return app.save(collection);\n",
        js_value(collection, "  ")
    )
}

fn delete_body(id: &str) -> String {
    format!(
        "  const collection = app.findCollectionByNameOrId({});\n\n  return app.delete(collection);\n",
        js_string(id)
    )
}

/// The statements that turn the definition `from` into `to` (same collection), or `None`
/// when nothing differs: the changed top-level properties through `unmarshal`, removed
/// fields by id, then every field not yet in its final place and shape put there with
/// `addAt` (which replaces a field of the same id).
fn update_body(id: &str, from: &Value, to: &Value) -> Option<String> {
    let empty = Map::new();
    let from_map = from.as_object().unwrap_or(&empty);
    let to_map = to.as_object().unwrap_or(&empty);
    let mut changed = Map::new();
    for (key, value) in to_map {
        if key != "fields" && from_map.get(key) != Some(value) {
            changed.insert(key.clone(), value.clone());
        }
    }
    for key in from_map.keys() {
        if key != "fields" && !to_map.contains_key(key) {
            changed.insert(key.clone(), Value::Null);
        }
    }
    let fields = |m: &Map<String, Value>| -> Vec<Value> {
        m.get("fields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let field_id = |f: &Value| f.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
    let (old_fields, new_fields) = (fields(from_map), fields(to_map));
    let new_ids: HashSet<String> = new_fields.iter().map(field_id).collect();

    let mut steps = Vec::new();
    if !changed.is_empty() {
        steps.push(format!(
            "  unmarshal({}, collection);\n",
            js_value(&Value::Object(changed), "  ")
        ));
    }
    let mut current: Vec<Value> = Vec::new();
    for field in old_fields {
        let fid = field_id(&field);
        if new_ids.contains(&fid) {
            current.push(field);
        } else {
            steps.push(format!(
                "  collection.fields.removeById({});\n",
                js_string(&fid)
            ));
        }
    }
    for (at, field) in new_fields.iter().enumerate() {
        if current.get(at) == Some(field) {
            continue;
        }
        let fid = field_id(field);
        current.retain(|f| field_id(f) != fid);
        current.insert(at.min(current.len()), field.clone());
        steps.push(format!(
            "  collection.fields.addAt({at}, new Field({}));\n",
            js_value(field, "  ")
        ));
    }
    if steps.is_empty() {
        return None;
    }
    Some(format!(
        "  const collection = app.findCollectionByNameOrId({});\n\n{}\n  return app.save(collection);\n",
        js_string(id),
        steps.join("\n")
    ))
}

fn migration_file(comment: &str, up: &str, down: &str) -> String {
    format!(
        "/// <reference path=\"../pb_data/types.d.ts\" />\n// {comment}\nmigrate((app) => {{\n{up}}}, (app) => {{\n{down}}});\n"
    )
}

/// What changed, for [`automigrate`].
pub enum CollectionChange<'a> {
    Created(&'a Collection),
    Updated {
        old: &'a Collection,
        new: &'a Collection,
    },
    Deleted(&'a Collection),
}

/// The automigrate file for a change: its name suffix (`created_posts`) and content, or
/// `None` for an update that changed nothing.
pub fn automigrate_file(change: &CollectionChange<'_>) -> Option<(String, String)> {
    match change {
        CollectionChange::Created(c) => Some((
            format!("created_{}", c.name),
            migration_file(
                &format!(
                    "Written by Plinth when the collection {:?} was created.",
                    c.name
                ),
                &create_body(&definition(c)),
                &delete_body(&c.id),
            ),
        )),
        CollectionChange::Deleted(c) => Some((
            format!("deleted_{}", c.name),
            migration_file(
                &format!(
                    "Written by Plinth when the collection {:?} was deleted.",
                    c.name
                ),
                &delete_body(&c.id),
                &create_body(&definition(c)),
            ),
        )),
        CollectionChange::Updated { old, new } => {
            let (from, to) = (definition(old), definition(new));
            let up = update_body(&new.id, &from, &to)?;
            let down = update_body(&new.id, &to, &from)?;
            Some((
                format!("updated_{}", new.name),
                migration_file(
                    &format!(
                        "Written by Plinth when the collection {:?} was updated.",
                        new.name
                    ),
                    &up,
                    &down,
                ),
            ))
        }
    }
}

/// Writes `content` as `<dir>/<ts>_<suffix>.js` and answers the file's base name (creating
/// `dir` when missing). `ts` is now in Unix seconds, or one past the newest timestamp already
/// in the folder when that is later: files apply in name order, so two changes within one
/// second (delete then re-create `posts`) must still sort in the order they happened.
pub fn write_new_file(dir: &Path, suffix: &str, content: &str) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let newest = hooks::migration_files(dir)
        .iter()
        .filter_map(|p| {
            let name = base_name(p);
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            // Only names shaped like ours (`<10 digits>_…`) take part, so a hand-named
            // `1_init.js` or a far-future stamp of another length changes nothing.
            (digits.len() == 10 && name[10..].starts_with('_'))
                .then(|| digits.parse::<u64>().ok())
                .flatten()
        })
        .max();
    let mut ts = now_secs().max(newest.map_or(0, |n| n + 1));
    loop {
        let name = format!("{ts}_{suffix}.js");
        let path = dir.join(&name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                std::io::Write::write_all(&mut file, content.as_bytes())?;
                return Ok(name);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Automigrate: after a collection was created, updated or deleted through the collections
/// API, writes the migration that replays the change into the folder set with
/// `Scripts::automigrate_dir` and records it as applied (this database already has the
/// change). Off when no folder is set. Failures are logged: the API change itself stands.
pub async fn automigrate(state: &SharedState, change: CollectionChange<'_>) {
    let Some(scripts) = super::of(state) else {
        return;
    };
    let Some(dir) = scripts.automigrate_dir.get() else {
        return;
    };
    let Some((suffix, content)) = automigrate_file(&change) else {
        return;
    };
    match write_new_file(dir, &suffix, &content) {
        Ok(name) => {
            if let Err(error) = state.store.record_migration(&name, now_us()).await {
                tracing::error!(%error, file = %name, "automigrate: could not record the file as applied");
            }
        }
        Err(error) => {
            tracing::error!(%error, dir = %dir.display(), "automigrate: could not write the migration file");
        }
    }
}

#[cfg(test)]
mod tests;
