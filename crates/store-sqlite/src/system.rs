//! The store's own tables: `_migrations` (which schema steps ran), `_collections` (every
//! collection definition as JSON, auth secrets included), `_params` (settings) and
//! `_changes` (the change log, see `changelog`). Migrations
//! are an ordered list of named steps, each applied once in its own transaction, so later
//! versions add steps at the end.

use domain::StoreError;
use domain::collection::{Collection, Schema};
use domain::sql::quote_ident;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::Value;

use crate::internal;

/// Table names the store uses for itself; no collection may take them.
pub(crate) const SYSTEM_TABLES: [&str; 6] = [
    "_migrations",
    "_collections",
    "_params",
    "_changes",
    "_claims",
    "_plinth_versions",
];

/// The first schema step: a database that recorded it was made by Plinth.
pub(crate) const FIRST_MIGRATION: &str = "1_system_tables";

type Migration = fn(&Transaction<'_>) -> Result<(), StoreError>;

/// Every schema step, in order. Append only: a step's name is recorded once it ran.
const MIGRATIONS: [(&str, Migration); 6] = [
    (FIRST_MIGRATION, create_system_tables),
    ("2_bootstrap_collections", bootstrap_collections),
    ("3_change_log", create_change_log),
    ("4_strip_change_log_secrets", strip_change_log_secrets),
    ("5_claims", create_claims),
    ("6_change_log_high_water", change_log_high_water),
];

/// Applies the steps that have not run yet.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _migrations (
            file    TEXT PRIMARY KEY NOT NULL,
            applied INTEGER NOT NULL
        )",
    )
    .map_err(internal)?;
    for (name, step) in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(internal)?;
        let done: Option<i64> = tx
            .query_row("SELECT 1 FROM _migrations WHERE file = ?", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(internal)?;
        if done.is_none() {
            tracing::info!(migration = name, "applying database migration");
            step(&tx)?;
            let applied = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0);
            tx.execute(
                "INSERT INTO _migrations (file, applied) VALUES (?, ?)",
                params![name, applied],
            )
            .map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
    }
    Ok(())
}

fn create_system_tables(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE _collections (
            id         TEXT PRIMARY KEY NOT NULL,
            name       TEXT UNIQUE NOT NULL COLLATE NOCASE,
            type       TEXT DEFAULT 'base' NOT NULL,
            system     BOOLEAN DEFAULT FALSE NOT NULL,
            created    TEXT DEFAULT '' NOT NULL,
            updated    TEXT DEFAULT '' NOT NULL,
            definition JSON NOT NULL
        );
        CREATE TABLE _params (
            id      TEXT PRIMARY KEY NOT NULL,
            value   JSON DEFAULT NULL,
            created TEXT DEFAULT '' NOT NULL,
            updated TEXT DEFAULT '' NOT NULL
        );",
    )
    .map_err(internal)
}

/// Claims of once-per-slot work (`Store::claim_once`).
fn create_claims(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TABLE _claims (
            key     TEXT NOT NULL,
            slot    INTEGER NOT NULL,
            created INTEGER NOT NULL,
            PRIMARY KEY (key, slot)
        );
        CREATE INDEX _claims_created ON _claims (created);",
    )
    .map_err(internal)
}

/// Claims `(key, slot)` if nobody has; claims older than a day are dropped on the way.
pub(crate) fn claim_once(conn: &Connection, key: &str, slot: i64) -> Result<bool, StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    conn.prepare_cached("DELETE FROM _claims WHERE created < ?")
        .and_then(|mut stmt| stmt.execute([now.saturating_sub(24 * 60 * 60 * 1000)]))
        .map_err(internal)?;
    let inserted = conn
        .prepare_cached("INSERT OR IGNORE INTO _claims (key, slot, created) VALUES (?, ?, ?)")
        .and_then(|mut stmt| stmt.execute(params![key, slot, now]))
        .map_err(internal)?;
    Ok(inserted == 1)
}

fn create_change_log(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute_batch(crate::changelog::CREATE_TABLE)
        .map_err(internal)
}

/// The change log was first made with `AUTOINCREMENT`, which kept its newest sequence in
/// `sqlite_sequence` and rewrote that row on every append. This rebuilds it as it is made now
/// (`changelog::CREATE_TABLE`) with the same rows, and puts a high-water mark at the newest
/// sequence `sqlite_sequence` held when pruning had taken that entry, so no sequence is ever
/// handed out twice. A log made without it is left as it is.
fn change_log_high_water(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let made_with: String = tx
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '_changes'",
            [],
            |r| r.get(0),
        )
        .map_err(internal)?;
    if !made_with.to_ascii_uppercase().contains("AUTOINCREMENT") {
        return Ok(());
    }
    let high_water: i64 = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = '_changes'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?
        .unwrap_or(0);
    // Copied out and back rather than renamed: `ALTER TABLE … RENAME` checks every view and
    // trigger of the database, so one view reading `_changes` (or any view already broken)
    // would fail the step, and the store would never open again.
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE _changes_copy AS
             SELECT seq, collectionId, recordId, action, record, created FROM _changes;
         DROP TABLE _changes;
         {};
         INSERT INTO _changes (seq, collectionId, recordId, action, record, created)
             SELECT seq, collectionId, recordId, action, record, created FROM temp._changes_copy
             ORDER BY seq;
         DROP TABLE temp._changes_copy;",
        crate::changelog::CREATE_TABLE
    ))
    .map_err(internal)?;
    crate::changelog::keep_high_water(tx, high_water.max(0).unsigned_abs())
}

/// Change-log entries written before snapshots left secrets out still held password hashes
/// and token keys until pruned; this removes them once.
fn strip_change_log_secrets(tx: &Transaction<'_>) -> Result<(), StoreError> {
    crate::changelog::strip_stored_secrets(tx, &load_schema(tx)?)
}

/// A new database starts with PocketBase's system collections, in its order: the auth
/// bookkeeping ones (`_mfas`, `_otps`, `_externalAuths`, `_authOrigins`), `_superusers` and
/// `users`.
fn bootstrap_collections(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let mut change = crate::schema_change::SchemaChange::new(tx, &load_schema(tx)?);
    for collection in domain::collection::system_collections() {
        change.create(collection)?;
    }
    change.finish()?;
    Ok(())
}

/// Reads every collection definition, in creation order.
pub(crate) fn load_schema(conn: &Connection) -> Result<Schema, StoreError> {
    let mut stmt = conn
        .prepare("SELECT id, definition FROM _collections ORDER BY rowid")
        .map_err(internal)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(internal)?;
    let mut collections = Vec::new();
    for row in rows {
        let (id, definition) = row.map_err(internal)?;
        let collection: Collection = serde_json::from_str(&definition).map_err(|e| {
            StoreError::Internal(format!(
                "stored definition of collection {id} is corrupt: {e}"
            ))
        })?;
        collections.push(collection);
    }
    Ok(Schema::new(collections))
}

/// Inserts or replaces a collection's row.
pub(crate) fn save_collection(
    conn: &Connection,
    collection: &Collection,
) -> Result<(), StoreError> {
    let definition = serde_json::to_string(collection)
        .map_err(|e| StoreError::Internal(format!("serializing a collection: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO _collections (id, name, type, system, created, updated, definition)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, type = excluded.type,
             system = excluded.system, created = excluded.created,
             updated = excluded.updated, definition = excluded.definition",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            collection.id,
            collection.name,
            collection.kind.as_str(),
            collection.system,
            collection.created,
            collection.updated,
            definition
        ])
    })
    .map_err(|e| crate::ddl::schema_error(e, &format!("collection {:?}", collection.name)))?;
    Ok(())
}

pub(crate) fn delete_collection_row(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM _collections WHERE id = ?")
        .and_then(|mut stmt| stmt.execute([id]))
        .map_err(internal)?;
    Ok(())
}

pub(crate) fn get_param(conn: &Connection, key: &str) -> Result<Option<Value>, StoreError> {
    let value: Option<rusqlite::types::Value> = conn
        .prepare_cached("SELECT value FROM _params WHERE id = ?")
        .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
        .map_err(internal)?;
    Ok(value.map(crate::records::json_from_sql))
}

pub(crate) fn set_param(conn: &Connection, key: &str, value: &Value) -> Result<(), StoreError> {
    let now = domain::time::now();
    let text = value.to_string();
    conn.prepare_cached(
        "INSERT INTO _params (id, value, created, updated) VALUES (?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET value = excluded.value, updated = excluded.updated",
    )
    .and_then(|mut stmt| stmt.execute(params![key, text, now, now]))
    .map_err(internal)?;
    Ok(())
}

/// Whether `file` names one of the store's own schema steps, which share `_migrations` with the
/// app's migrations but are not the app's to list, record or forget (forgetting one would run
/// it again at the next open).
pub(crate) fn is_store_step(file: &str) -> bool {
    MIGRATIONS.iter().any(|(name, _)| *name == file)
}

fn refuse_store_step(file: &str) -> Result<(), StoreError> {
    if is_store_step(file) {
        return Err(StoreError::Schema(format!(
            "the migration name {file:?} is reserved by the store"
        )));
    }
    Ok(())
}

/// The app's applied migrations, `(file, applied Unix microseconds)`, ordered by `applied`
/// then `file`; the store's own steps are left out.
pub(crate) fn applied_migrations(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT file, applied FROM _migrations ORDER BY applied, file")
        .map_err(internal)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(internal)?;
    let mut applied = Vec::new();
    for row in rows {
        let (file, at) = row.map_err(internal)?;
        if !is_store_step(&file) {
            applied.push((file, at));
        }
    }
    Ok(applied)
}

/// Records the app migration `file` as applied at `applied_us`.
pub(crate) fn record_migration(
    conn: &Connection,
    file: &str,
    applied_us: i64,
) -> Result<(), StoreError> {
    refuse_store_step(file)?;
    conn.prepare_cached(
        "INSERT INTO _migrations (file, applied) VALUES (?, ?)
         ON CONFLICT(file) DO UPDATE SET applied = excluded.applied",
    )
    .and_then(|mut stmt| stmt.execute(params![file, applied_us]))
    .map_err(internal)?;
    Ok(())
}

/// Removes the record of the app migration `file`; whether there was one.
pub(crate) fn forget_migration(conn: &Connection, file: &str) -> Result<bool, StoreError> {
    refuse_store_step(file)?;
    let removed = conn
        .prepare_cached("DELETE FROM _migrations WHERE file = ?")
        .and_then(|mut stmt| stmt.execute([file]))
        .map_err(internal)?;
    Ok(removed > 0)
}

/// Whether `name` is one of the store's own tables, or reserved by SQLite.
pub(crate) fn is_reserved_table(name: &str) -> bool {
    SYSTEM_TABLES.iter().any(|t| t.eq_ignore_ascii_case(name))
        || name.to_ascii_lowercase().starts_with("sqlite_")
}

/// `SELECT 1 FROM "table" LIMIT 0` compiles, i.e. the table or view and what it reads exist.
pub(crate) fn check_relation_compiles(conn: &Connection, name: &str) -> Result<(), String> {
    conn.prepare(&format!("SELECT * FROM {} LIMIT 0", quote_ident(name)))
        .map(|_| ())
        .map_err(|e| e.to_string())
}
