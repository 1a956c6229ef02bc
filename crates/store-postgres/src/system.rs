//! The store's own tables on PostgreSQL: `_migrations` (which schema steps ran, and the app's
//! migrations), `_collections` (every collection definition as JSON text, auth secrets
//! included), `_params` (settings, as text) and the change log (`changelog`). Steps are an
//! ordered list, each applied once in its own transaction; nodes that start together take a
//! session advisory lock first, so exactly one of them applies each step.

use domain::StoreError;
use domain::collection::{Collection, Schema};
use serde_json::Value;

use crate::Conn;
use crate::records::query;
use crate::schema_change::SchemaChange;
use crate::sql::{Statement, internal};

/// Table names the store uses for itself; no collection may take them.
pub(crate) const SYSTEM_TABLES: [&str; 8] = [
    "_migrations",
    "_collections",
    "_params",
    "_changes",
    "_changes_head",
    "_claims",
    "_relays",
    "_readers",
];

/// Held (as a session lock) while a node applies the store's schema steps.
const MIGRATE_LOCK: i64 = 0x706c_696e_7468_0002;

/// The store's own steps, in order. Append only.
const STEPS: [&str; 7] = [
    "1_system_tables",
    "2_bootstrap_collections",
    "3_console_guard",
    "4_claims",
    "5_params_version",
    "6_relays",
    "7_readers",
];

/// Applies the steps that have not run yet.
pub(crate) async fn migrate(conn: &Conn) -> Result<(), StoreError> {
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(internal)?;
    let result = migrate_locked(conn).await;
    let unlocked = conn
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK])
        .await;
    result?;
    unlocked.map_err(internal)?;
    Ok(())
}

async fn migrate_locked(conn: &Conn) -> Result<(), StoreError> {
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS _migrations (
            file    text COLLATE \"C\" PRIMARY KEY NOT NULL,
            applied bigint NOT NULL
        )",
    )
    .await
    .map_err(internal)?;
    for step in STEPS {
        conn.begin("BEGIN").await.map_err(internal)?;
        let result = run_step(conn, step).await;
        match result {
            Ok(()) => conn.end("COMMIT").await.map_err(internal)?,
            Err(error) => {
                let _ = conn.end("ROLLBACK").await;
                return Err(error);
            }
        }
    }
    Ok(())
}

async fn run_step(conn: &Conn, step: &str) -> Result<(), StoreError> {
    let done = conn
        .query("SELECT 1 FROM _migrations WHERE file = $1", &[&step])
        .await
        .map_err(internal)?;
    if !done.is_empty() {
        return Ok(());
    }
    tracing::info!(migration = step, "applying database migration");
    match step {
        "1_system_tables" => {
            conn.batch_execute(CREATE_SYSTEM_TABLES)
                .await
                .map_err(internal)?;
            conn.batch_execute(crate::changelog::CREATE_TABLES)
                .await
                .map_err(internal)?;
        }
        "2_bootstrap_collections" => {
            let mut change = SchemaChange::new(conn, &load_schema(conn).await?);
            for collection in domain::collection::system_collections() {
                change.create(collection).await?;
            }
            change.finish().await?;
        }
        "3_console_guard" => {
            conn.batch_execute(CONSOLE_GUARD_FUNCTION)
                .await
                .map_err(internal)?;
            // Tables of later steps get their guard where they are created.
            for table in SYSTEM_TABLES[..5].iter() {
                conn.batch_execute(&format!(
                    "CREATE TRIGGER _plinth_console_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
                     ON {table} FOR EACH STATEMENT EXECUTE FUNCTION _plinth_console_guard()"
                ))
                .await
                .map_err(internal)?;
            }
        }
        "4_claims" => {
            conn.batch_execute(
                "CREATE TABLE _claims (
                    key     text COLLATE \"C\" NOT NULL,
                    slot    bigint NOT NULL,
                    created bigint NOT NULL,
                    PRIMARY KEY (key, slot)
                );
                CREATE INDEX _claims_created ON _claims (created);
                CREATE TRIGGER _plinth_console_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
                    ON _claims FOR EACH STATEMENT EXECUTE FUNCTION _plinth_console_guard();",
            )
            .await
            .map_err(internal)?;
        }
        "5_params_version" => {
            conn.batch_execute(
                "ALTER TABLE _changes_head ADD COLUMN params bigint NOT NULL DEFAULT 0",
            )
            .await
            .map_err(internal)?;
        }
        "6_relays" => {
            conn.batch_execute(
                "CREATE TABLE _relays (
                    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    client_id text COLLATE \"C\" NOT NULL,
                    topic     text NOT NULL,
                    data      text NOT NULL,
                    expires   timestamptz NOT NULL,
                    taken     boolean NOT NULL DEFAULT FALSE,
                    answer    text
                );
                CREATE INDEX _relays_expires ON _relays (expires);
                CREATE TRIGGER _plinth_console_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
                    ON _relays FOR EACH STATEMENT EXECUTE FUNCTION _plinth_console_guard();",
            )
            .await
            .map_err(internal)?;
        }
        "7_readers" => {
            conn.batch_execute(
                "CREATE TABLE _readers (
                    node   text COLLATE \"C\" PRIMARY KEY,
                    cursor bigint NOT NULL,
                    seen   timestamptz NOT NULL
                );
                CREATE TRIGGER _plinth_console_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE
                    ON _readers FOR EACH STATEMENT EXECUTE FUNCTION _plinth_console_guard();",
            )
            .await
            .map_err(internal)?;
        }
        _ => return Err(StoreError::Internal(format!("unknown store step {step}"))),
    }
    let applied = now_us();
    conn.execute(
        "INSERT INTO _migrations (file, applied) VALUES ($1, $2)",
        &[&step, &applied],
    )
    .await
    .map_err(internal)?;
    Ok(())
}

const CREATE_SYSTEM_TABLES: &str = "
CREATE TABLE _collections (
    \"_order\"   bigint GENERATED BY DEFAULT AS IDENTITY,
    id         text COLLATE \"C\" PRIMARY KEY NOT NULL,
    name       text COLLATE \"C\" NOT NULL,
    type       text DEFAULT 'base' NOT NULL,
    system     boolean DEFAULT FALSE NOT NULL,
    created    text DEFAULT '' NOT NULL,
    updated    text DEFAULT '' NOT NULL,
    definition text NOT NULL
);
CREATE UNIQUE INDEX _collections_name_nocase ON _collections (lower(name));
CREATE TABLE _params (
    id      text COLLATE \"C\" PRIMARY KEY NOT NULL,
    value   text DEFAULT NULL,
    created text DEFAULT '' NOT NULL,
    updated text DEFAULT '' NOT NULL
);
";

/// Refuses a write to a bookkeeping table while the SQL console runs (it sets
/// `plinth.console` for its transaction): a statement-level trigger on each of them.
const CONSOLE_GUARD_FUNCTION: &str = "
CREATE FUNCTION _plinth_console_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('plinth.console', true) = 'on' THEN
        RAISE EXCEPTION '\"%\" is one of Plinth''s bookkeeping tables and cannot be changed from the SQL console', TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$$;
";

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Reads every collection definition, in creation order.
pub(crate) async fn load_schema(conn: &Conn) -> Result<Schema, StoreError> {
    let rows = conn
        .query(
            "SELECT id, definition FROM _collections ORDER BY \"_order\"",
            &[],
        )
        .await
        .map_err(internal)?;
    let mut collections = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0).map_err(internal)?;
        let definition: String = row.try_get(1).map_err(internal)?;
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
pub(crate) async fn save_collection(
    conn: &Conn,
    collection: &Collection,
) -> Result<(), StoreError> {
    let definition = serde_json::to_string(collection)
        .map_err(|e| StoreError::Internal(format!("serializing a collection: {e}")))?;
    let mut statement = Statement::new(
        "INSERT INTO _collections (id, name, type, system, created, updated, definition) VALUES (",
    );
    statement
        .bind(collection.id.as_str())
        .push(", ")
        .bind(collection.name.as_str())
        .push(", ")
        .bind(collection.kind.as_str())
        .push(", ")
        .bind(collection.system)
        .push(", ")
        .bind(collection.created.as_str())
        .push(", ")
        .bind(collection.updated.as_str())
        .push(", ")
        .bind(definition)
        .push(
            ") ON CONFLICT (id) DO UPDATE SET name = excluded.name, type = excluded.type,
             system = excluded.system, created = excluded.created,
             updated = excluded.updated, definition = excluded.definition",
        );
    query(conn, &statement, true)
        .await
        .map_err(|e| crate::sql::schema_error(e, &format!("collection {:?}", collection.name)))?;
    Ok(())
}

pub(crate) async fn delete_collection_row(conn: &Conn, id: &str) -> Result<(), StoreError> {
    let mut statement = Statement::new("DELETE FROM _collections WHERE id = ");
    statement.bind(id);
    query(conn, &statement, true).await.map_err(internal)?;
    Ok(())
}

/// A setting: JSON text parsed, or (an encrypted setting kept as bare text) the text itself.
pub(crate) async fn get_param(conn: &Conn, key: &str) -> Result<Option<Value>, StoreError> {
    let mut statement = Statement::new("SELECT value FROM _params WHERE id = ");
    statement.bind(key);
    let rows = query(conn, &statement, true).await.map_err(internal)?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let text: Option<String> = row.try_get(0).map_err(internal)?;
    Ok(Some(match text {
        None => Value::Null,
        Some(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }))
}

/// Stores a setting's text (JSON, or verbatim text) and bumps the params version in the same
/// statement, so every node's caches learn of it.
pub(crate) async fn set_param_text(conn: &Conn, key: &str, text: &str) -> Result<(), StoreError> {
    let now = domain::time::now();
    let mut statement =
        Statement::new("WITH saved AS (INSERT INTO _params (id, value, created, updated) VALUES (");
    statement
        .bind(key)
        .push(", ")
        .bind(text)
        .push(", ")
        .bind(now.as_str())
        .push(", ")
        .bind(now.as_str())
        .push(
            ") ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated = excluded.updated
             RETURNING 1) UPDATE _changes_head SET params = params + 1 WHERE id = 1",
        );
    query(conn, &statement, true).await.map_err(internal)?;
    Ok(())
}

fn is_store_step(file: &str) -> bool {
    STEPS.contains(&file)
}

fn refuse_store_step(file: &str) -> Result<(), StoreError> {
    if is_store_step(file) {
        return Err(StoreError::Schema(format!(
            "the migration name {file:?} is reserved by the store"
        )));
    }
    Ok(())
}

/// The app's applied migrations, ordered by `applied` then `file`; the store's steps are left
/// out.
pub(crate) async fn applied_migrations(conn: &Conn) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = query(
        conn,
        &Statement::new("SELECT file, applied FROM _migrations ORDER BY applied, file"),
        true,
    )
    .await
    .map_err(internal)?;
    let mut applied = Vec::new();
    for row in rows {
        let file: String = row.try_get(0).map_err(internal)?;
        let at: i64 = row.try_get(1).map_err(internal)?;
        if !is_store_step(&file) {
            applied.push((file, at));
        }
    }
    Ok(applied)
}

pub(crate) async fn record_migration(
    conn: &Conn,
    file: &str,
    applied_us: i64,
) -> Result<(), StoreError> {
    refuse_store_step(file)?;
    let mut statement = Statement::new("INSERT INTO _migrations (file, applied) VALUES (");
    statement
        .bind(file)
        .push(", ")
        .bind(applied_us)
        .push(") ON CONFLICT (file) DO UPDATE SET applied = excluded.applied");
    query(conn, &statement, true).await.map_err(internal)?;
    Ok(())
}

pub(crate) async fn forget_migration(conn: &Conn, file: &str) -> Result<bool, StoreError> {
    refuse_store_step(file)?;
    let mut statement = Statement::new("DELETE FROM _migrations WHERE file = ");
    statement.bind(file);
    let params = statement.refs();
    let removed = conn
        .execute(statement.sql.as_str(), &params)
        .await
        .map_err(internal)?;
    Ok(removed > 0)
}

/// Claims `(key, slot)` for the caller if nobody has (see `Store::claim_once`); claims older
/// than a day are dropped on the way.
pub(crate) async fn claim_once(conn: &Conn, key: &str, slot: i64) -> Result<bool, StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut prune = Statement::new("DELETE FROM _claims WHERE created < ");
    prune.bind(now.saturating_sub(24 * 60 * 60 * 1000));
    query(conn, &prune, true).await.map_err(internal)?;
    let mut claim = Statement::new("INSERT INTO _claims (key, slot, created) VALUES (");
    claim
        .bind(key)
        .push(", ")
        .bind(slot)
        .push(", ")
        .bind(now)
        .push(") ON CONFLICT DO NOTHING RETURNING 1");
    Ok(!query(conn, &claim, true)
        .await
        .map_err(internal)?
        .is_empty())
}

/// Leaves a message for a realtime client on any node (see `Store::post_relay`), dropping
/// expired ones on the way (their senders stopped waiting), and wakes every node's listener.
pub(crate) async fn post_relay(
    conn: &Conn,
    client_id: &str,
    topic: &str,
    data: &str,
    ttl_ms: i64,
) -> Result<i64, StoreError> {
    conn.execute("DELETE FROM _relays WHERE expires < now()", &[])
        .await
        .map_err(internal)?;
    let row = conn
        .query_one(
            "INSERT INTO _relays (client_id, topic, data, expires)
             VALUES ($1, $2, $3, now() + $4::float8 * interval '1 millisecond') RETURNING id",
            &[&client_id, &topic, &data, &(ttl_ms as f64)],
        )
        .await
        .map_err(internal)?;
    conn.batch_execute(&format!("NOTIFY {}, 'r'", crate::CHANNEL))
        .await
        .map_err(internal)?;
    row.try_get(0).map_err(internal)
}

/// Relayed messages above `after`, not taken and not expired, oldest first.
pub(crate) async fn relays_after(
    conn: &Conn,
    after: i64,
    limit: usize,
) -> Result<Vec<domain::Relay>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .query(
            "SELECT id, client_id, topic, data FROM _relays
             WHERE id > $1 AND NOT taken AND expires > now() ORDER BY id LIMIT $2",
            &[&after, &limit],
        )
        .await
        .map_err(internal)?;
    rows.iter()
        .map(|row| {
            Ok(domain::Relay {
                id: row.try_get(0).map_err(internal)?,
                client_id: row.try_get(1).map_err(internal)?,
                topic: row.try_get(2).map_err(internal)?,
                data: row.try_get(3).map_err(internal)?,
            })
        })
        .collect()
}

/// Marks the relayed message `id` taken; `true` for the one caller that did, while unexpired.
pub(crate) async fn take_relay(conn: &Conn, id: i64) -> Result<bool, StoreError> {
    let taken = conn
        .execute(
            "UPDATE _relays SET taken = TRUE WHERE id = $1 AND NOT taken AND expires > now()",
            &[&id],
        )
        .await
        .map_err(internal)?;
    Ok(taken == 1)
}

/// Whether the relayed message `id` was taken.
pub(crate) async fn relay_taken(conn: &Conn, id: i64) -> Result<bool, StoreError> {
    let rows = conn
        .query("SELECT taken FROM _relays WHERE id = $1", &[&id])
        .await
        .map_err(internal)?;
    match rows.first() {
        Some(row) => row.try_get(0).map_err(internal),
        None => Ok(false),
    }
}

/// Stores the answer to the relayed message `id`.
pub(crate) async fn answer_relay(conn: &Conn, id: i64, answer: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE _relays SET answer = $2 WHERE id = $1",
        &[&id, &answer],
    )
    .await
    .map_err(internal)?;
    Ok(())
}

/// The answer to the relayed message `id`, if any yet.
pub(crate) async fn relay_answer(conn: &Conn, id: i64) -> Result<Option<String>, StoreError> {
    let rows = conn
        .query("SELECT answer FROM _relays WHERE id = $1", &[&id])
        .await
        .map_err(internal)?;
    match rows.first() {
        Some(row) => row.try_get(0).map_err(internal),
        None => Ok(None),
    }
}

/// Deletes the relayed message `id`.
pub(crate) async fn forget_relay(conn: &Conn, id: i64) -> Result<(), StoreError> {
    conn.execute("DELETE FROM _relays WHERE id = $1", &[&id])
        .await
        .map_err(internal)?;
    Ok(())
}

/// The newest relayed message's id (0 when there is none).
pub(crate) async fn last_relay(conn: &Conn) -> Result<i64, StoreError> {
    let row = conn
        .query_one("SELECT coalesce(max(id), 0)::bigint FROM _relays", &[])
        .await
        .map_err(internal)?;
    row.try_get(0).map_err(internal)
}

/// Whether `name` is one of the store's own tables, or reserved by PostgreSQL.
pub(crate) fn is_reserved_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SYSTEM_TABLES.iter().any(|t| t.eq_ignore_ascii_case(name))
        || lower.starts_with("pg_")
        || lower.starts_with("_plinth")
}
