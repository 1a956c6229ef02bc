//! The durable change log (`_changes`): one row per record create, update or delete, appended
//! by the write path inside the same transaction as the write, so a rolled-back write leaves
//! no entry and a committed one is never missing. Readers tail it by sequence number; the
//! writer announces the newest committed sequence on a `watch` channel after each commit.
//!
//! A snapshot keeps what a subscriber could ever be shown, and hidden fields (superusers see
//! them), but never a secret: no password hash (of an auth record or any password field) and
//! no `tokenKey`. Consumers still need to know whether an auth record's tokens were revoked,
//! so a read fills `tokenKey` of an auth record that still exists with its current key: equal
//! to the key a subscriber holds exactly when that subscriber's token is still valid.
//!
//! The log is bounded by time and entries (the caller's retention) and by bytes (the store's
//! budget). The snapshots' total size is kept in memory: appends add to a per-transaction
//! count that SQLite's commit hook adds to the total (a rollback drops it), and pruning
//! subtracts what it deletes. Byte pruning only removes entries the log's reader has read past,
//! so an undelivered change is never lost; a reader that falls behind lets the log outgrow the
//! budget until it catches up.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::collection::Schema;
use domain::field::FieldKind;
use domain::json_out;
use domain::record::Record;
use domain::sql::quote_ident;
use domain::{Change, ChangeAction, ChangeRetention, Collection, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::internal;

/// The change log's total snapshot bytes, shared by the writer's hooks and the store.
pub(crate) type Size = Arc<AtomicU64>;

thread_local! {
    /// Snapshot bytes appended by the writer's open transaction (the writer's thread only).
    static PENDING: Cell<u64> = const { Cell::new(0) };
}

/// The fields no snapshot keeps: values no API answer ever shows, whoever asks.
fn is_secret(collection: &Collection, name: &str) -> bool {
    if collection.is_auth() && (name == "password" || name == "tokenKey") {
        return true;
    }
    collection
        .field(name)
        .is_some_and(|field| matches!(field.kind, FieldKind::Password(_)))
}

/// The record as the log keeps it: its JSON object without the secret fields, written
/// straight from the record (no copy of it first).
fn snapshot(collection: &Collection, record: &Record) -> Result<String, StoreError> {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (name, value) in record
        .data
        .iter()
        .filter(|(name, _)| !is_secret(collection, name))
    {
        if out.len() > 1 {
            out.push(b',');
        }
        json_out::push_str(&mut out, name);
        out.push(b':');
        json_out::push_value(&mut out, value);
    }
    out.push(b'}');
    String::from_utf8(out).map_err(|e| StoreError::Internal(e.to_string()))
}

/// The table, created by the `3_change_log` migration (and rebuilt from the older form by
/// `6_change_log_high_water`).
///
/// A sequence is never handed out twice, even after pruning emptied the log. SQLite gives a
/// new row the table's largest `seq` plus one, so the log never lets go of its largest: a
/// delete that takes the newest entry leaves a *high-water mark* in its place (see
/// [`keep_high_water`]), which no reader is shown. `AUTOINCREMENT` would promise the same by
/// rewriting a row of `sqlite_sequence` on every append: one more B-tree write and one more
/// page in every commit's WAL frames, 6 % of a create's CPU.
pub(crate) const CREATE_TABLE: &str = "CREATE TABLE _changes (
    seq          INTEGER PRIMARY KEY,
    collectionId TEXT NOT NULL,
    recordId     TEXT NOT NULL,
    action       TEXT NOT NULL,
    record       JSON NOT NULL,
    created      INTEGER NOT NULL
)";

/// The JSON paths of the secrets a snapshot of `collection` must not keep (`$."name"`).
pub(crate) fn secret_paths(collection: &Collection) -> Vec<String> {
    let mut names: Vec<&str> = Vec::new();
    if collection.is_auth() {
        names.extend(["password", "tokenKey"]);
    }
    for field in &collection.fields {
        if matches!(field.kind, FieldKind::Password(_)) && !names.contains(&field.name.as_str()) {
            names.push(&field.name);
        }
    }
    names
        .into_iter()
        .map(|name| format!("$.{}", serde_json::Value::String(name.to_owned())))
        .collect()
}

/// Removes the secrets from entries written before snapshots left them out (the
/// `4_strip_change_log_secrets` migration). Entries of collections since deleted are never
/// delivered and are left alone.
pub(crate) fn strip_stored_secrets(conn: &Connection, schema: &Schema) -> Result<(), StoreError> {
    for collection in schema.all() {
        for path in secret_paths(collection) {
            conn.prepare_cached(
                "UPDATE _changes SET record = json_remove(record, ?1)
                 WHERE collectionId = ?2 AND json_type(record, ?1) IS NOT NULL",
            )
            .and_then(|mut stmt| stmt.execute(params![path, collection.id]))
            .map_err(internal)?;
        }
    }
    Ok(())
}

/// Snapshot bytes the writer's open transaction has appended so far. A savepoint keeps it so
/// that rolling back to the savepoint (which SQLite's rollback hook does not see) can restore
/// it with [`set_pending`].
pub(crate) fn pending() -> u64 {
    PENDING.get()
}

/// Restores the count [`pending`] read at a savepoint.
pub(crate) fn set_pending(bytes: u64) {
    PENDING.set(bytes);
}

/// Appends one entry for `record` of `collection`. Must run inside the write's transaction.
pub(crate) fn append(
    conn: &Connection,
    collection: &Collection,
    record: &Record,
    action: ChangeAction,
) -> Result<(), StoreError> {
    let snapshot = snapshot(collection, record)?;
    PENDING.set(PENDING.get().saturating_add(snapshot.len() as u64));
    // One row, so `OR FAIL` spares the statement journal: see `records::insert_sql`.
    conn.prepare_cached(
        "INSERT OR FAIL INTO _changes (collectionId, recordId, action, record, created)
         VALUES (?, ?, ?, ?, ?)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            collection.id,
            record.id(),
            action.as_str(),
            snapshot,
            now_ms()
        ])
    })
    .map_err(internal)?;
    Ok(())
}

/// The newest sequence ever handed out (0 for a log that never had an entry): the largest
/// `seq` stored, which pruning keeps (an entry or its high-water mark).
pub(crate) fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let newest: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM _changes")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
        .map_err(internal)?;
    Ok(newest.unwrap_or(0).max(0).unsigned_abs())
}

/// Puts a high-water mark at `newest` (the largest `seq` before a delete) when the delete
/// took that entry; nothing when it is still there or the log never had an entry.
///
/// A mark is the row that holds a deleted newest entry's sequence so that SQLite never hands
/// it out again: an empty `action` (which every read of entries skips, `action <> ''`), no
/// collection or record, and an empty snapshot, so it adds nothing to the log's size.
pub(crate) fn keep_high_water(conn: &Connection, newest: u64) -> Result<(), StoreError> {
    let Ok(newest) = i64::try_from(newest) else {
        return Ok(());
    };
    if newest <= 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT OR IGNORE INTO _changes (seq, collectionId, recordId, action, record, created)
         VALUES (?, '', '', '', '', 0)",
    )
    .and_then(|mut stmt| stmt.execute([newest]))
    .map_err(internal)?;
    Ok(())
}

/// Snapshot bytes one read of the log returns at most (past its first entry): each parsed
/// record can take many times its text in memory, so a batch of large records is cut short
/// and its reader asks again.
pub(crate) const READ_BATCH_BYTES: usize = 4 << 20;

/// Entries after `after`, oldest first, an auth record's `tokenKey` filled with its current
/// one; at most `limit`, and fewer once their snapshots reach [`READ_BATCH_BYTES`].
pub(crate) fn after(
    conn: &Connection,
    schema: &Schema,
    after: u64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    // The limit is written into the SQL (see `records::limit_clause`); the fan-out always
    // asks for the same batch size.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT seq, collectionId, recordId, action, record, created FROM _changes
             WHERE seq > ? AND action <> '' ORDER BY seq{}",
            crate::records::limit_clause(limit)
        ))
        .map_err(internal)?;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![after], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(internal)?;
    let mut changes = Vec::new();
    let mut read_bytes = 0usize;
    for row in rows {
        if read_bytes >= READ_BATCH_BYTES {
            break;
        }
        let (seq, collection_id, record_id, action, snapshot, created_ms) =
            row.map_err(internal)?;
        read_bytes = read_bytes.saturating_add(snapshot.len());
        let action = ChangeAction::parse(&action).ok_or_else(|| {
            StoreError::Internal(format!("change {seq} has an unknown action {action:?}"))
        })?;
        let mut data = match serde_json::from_str::<Value>(&snapshot) {
            Ok(Value::Object(data)) => data,
            _ => {
                return Err(StoreError::Internal(format!(
                    "change {seq} has a corrupt record snapshot"
                )));
            }
        };
        if let Some(collection) = schema.get_by_id(&collection_id)
            && collection.is_auth()
            && let Some(key) = current_token_key(conn, collection, &record_id)
        {
            data.insert("tokenKey".into(), Value::String(key));
        }
        changes.push(Change {
            seq: seq.max(0) as u64,
            collection_id,
            record_id,
            action,
            record: Record::new(data),
            created_ms,
        });
    }
    Ok(changes)
}

/// The current `tokenKey` of an auth record, if it still exists. A lookup that fails leaves
/// the key out, which reads as revoked: failing closed, and never stalling the log's reader.
fn current_token_key(conn: &Connection, collection: &Collection, id: &str) -> Option<String> {
    let sql = format!(
        "SELECT \"tokenKey\" FROM {} WHERE \"id\" = ?",
        quote_ident(&collection.name)
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], |r| r.get::<_, String>(0)).optional())
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read an auth record's token key for the change log");
            None
        })
}

/// Deletes entries at or below `up_to` that are both beyond the newest `max_entries` and
/// at least `max_age_secs` old (with 0, an entry written in this very millisecond goes too:
/// "keep nothing by age" must not depend on the clock having ticked), then enforces the byte
/// budget.
pub(crate) fn prune(
    conn: &Connection,
    up_to: u64,
    retention: ChangeRetention,
    max_bytes: u64,
    size: &Size,
) -> Result<u64, StoreError> {
    let newest = last_seq(conn)?;
    let keep_from = newest.saturating_sub(retention.max_entries);
    let bound = up_to.min(keep_from);
    let cutoff = now_ms().saturating_sub(
        i64::try_from(retention.max_age_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
    );
    // The delete and the mark that may replace the newest entry commit together.
    let tx = conn.unchecked_transaction().map_err(internal)?;
    let freed: Vec<(i64, bool)> = tx
        .prepare_cached(
            "DELETE FROM _changes WHERE seq <= ? AND created <= ?
             RETURNING octet_length(record), action <> ''",
        )
        .and_then(|mut stmt| {
            stmt.query_map(
                params![i64::try_from(bound).unwrap_or(i64::MAX), cutoff],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)),
            )?
            .collect()
        })
        .map_err(internal)?;
    keep_high_water(&tx, newest)?;
    tx.commit().map_err(internal)?;
    subtract(
        size,
        freed.iter().map(|(n, _)| n.max(&0).unsigned_abs()).sum(),
    );
    let entries = freed.iter().filter(|(_, entry)| *entry).count() as u64;
    Ok(entries + enforce_budget(conn, up_to, max_bytes, size)?)
}

/// What one byte prune frees beyond the budget: 256 KiB, or 1/16 of a budget smaller than
/// 4 MiB. A log at its budget under steady writes is pruned once per that many bytes written,
/// in one range delete, instead of after every commit an entry at a time. The step is bounded
/// because the writer does it between two commits: a 4 MiB step (1/16 of the default budget,
/// some 20,000 of the benchmark's entries) held every write for milliseconds once a second
/// and was most of the create and update p99 (9.7 against 6.8 ms with 256 KiB steps).
pub(crate) const PRUNE_STEP_BYTES: u64 = 256 << 10;

/// The bytes a prune of a log over `max_bytes` frees beyond it: see [`PRUNE_STEP_BYTES`].
pub(crate) fn prune_step(max_bytes: u64) -> u64 {
    PRUNE_STEP_BYTES.min(max_bytes / 16)
}

/// When the log takes more than `max_bytes`, deletes its oldest entries at or below
/// `read_up_to` until it takes at most `max_bytes` less [`prune_step`]; returns how many
/// went. Cheap when the log is within its budget. The sizes come from the records' headers
/// (`octet_length` reads no content), and the entries go in one `DELETE` of a `seq` range.
pub(crate) fn enforce_budget(
    conn: &Connection,
    read_up_to: u64,
    max_bytes: u64,
    size: &Size,
) -> Result<u64, StoreError> {
    let total = size.load(Ordering::Relaxed);
    if total <= max_bytes {
        return Ok(0);
    }
    let low_water = max_bytes.saturating_sub(prune_step(max_bytes));
    let to_free = total.saturating_sub(low_water);
    let tx = conn.unchecked_transaction().map_err(internal)?;
    let read_up_to = i64::try_from(read_up_to).unwrap_or(i64::MAX);
    let mut freed = 0u64;
    let mut deleted = 0u64;
    let mut bound = None;
    {
        let mut oldest = tx
            .prepare_cached(
                "SELECT seq, octet_length(record), action <> '' FROM _changes
                 WHERE seq <= ? ORDER BY seq",
            )
            .map_err(internal)?;
        let mut rows = oldest.query([read_up_to]).map_err(internal)?;
        while freed < to_free {
            let Some(row) = rows.next().map_err(internal)? else {
                break;
            };
            let seq: i64 = row.get(0).map_err(internal)?;
            let len: i64 = row.get(1).map_err(internal)?;
            let entry: bool = row.get(2).map_err(internal)?;
            freed = freed.saturating_add(len.max(0).unsigned_abs());
            deleted += u64::from(entry);
            bound = Some(seq);
        }
    }
    if let Some(bound) = bound {
        let newest = last_seq(&tx)?;
        tx.prepare_cached("DELETE FROM _changes WHERE seq <= ?")
            .and_then(|mut stmt| stmt.execute([bound]))
            .map_err(internal)?;
        keep_high_water(&tx, newest)?;
    }
    // Still over budget with nothing more it may delete (the reader has not got past the
    // rest): every write until it has comes back here, so nothing here may read the whole log.
    // A commit that failed after its hook counted it leaves the total too high, which only
    // prunes sooner what was already read; an emptied log resets it to the truth.
    let emptied = total.saturating_sub(freed) > max_bytes && is_empty(&tx)?;
    tx.commit().map_err(internal)?;
    if emptied {
        size.store(0, Ordering::Relaxed);
    } else {
        subtract(size, freed);
    }
    Ok(deleted)
}

fn subtract(size: &Size, bytes: u64) {
    let _ = size.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some(n.saturating_sub(bytes))
    });
}

/// Whether the log holds no entry, high-water marks aside (a few primary-key steps: a mark
/// is only ever left at the newest sequence, and the next prune past it takes it).
fn is_empty(conn: &Connection) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM _changes WHERE action <> '')")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
        .map_err(internal)
}

#[cfg(test)]
thread_local! {
    /// Whole-log recounts made on this thread (tests check the writer makes none per write).
    pub(crate) static RECOUNTS: Cell<u64> = const { Cell::new(0) };
}

/// The snapshots' total size as stored (reads the whole log: only at open).
pub(crate) fn stored_size(conn: &Connection) -> Result<u64, StoreError> {
    #[cfg(test)]
    RECOUNTS.set(RECOUNTS.get() + 1);
    let bytes: i64 = conn
        .query_row(
            "SELECT COALESCE(SUM(octet_length(record)), 0) FROM _changes",
            [],
            |r| r.get(0),
        )
        .map_err(internal)?;
    Ok(bytes.max(0).unsigned_abs())
}

/// Keeps `size` current on the writer connection: a commit adds what its transaction
/// appended, a rollback forgets it.
pub(crate) fn install_size_hooks(conn: &mut Connection, size: Size) -> Result<(), StoreError> {
    conn.commit_hook(Some(move || {
        size.fetch_add(PENDING.replace(0), Ordering::Relaxed);
        // `false` lets the commit proceed.
        false
    }))
    .map_err(internal)?;
    conn.rollback_hook(Some(|| PENDING.set(0)))
        .map_err(internal)?;
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
