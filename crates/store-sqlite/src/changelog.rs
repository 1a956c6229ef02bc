//! The durable change log (`_changes`): one row per record create, update or delete, appended
//! by the write path inside the same transaction as the write, so a rolled-back write leaves
//! no entry and a committed one is never missing. Readers tail it by sequence number; the
//! writer announces the newest committed sequence on a `watch` channel after each commit.

use domain::record::Record;
use domain::{Change, ChangeAction, ChangeRetention, Collection, StoreError};
use rusqlite::{Connection, params};
use serde_json::Value;

use crate::internal;

/// The table, created by the `3_change_log` migration. `AUTOINCREMENT` so a sequence is never
/// reused, even after pruning emptied the table.
pub(crate) const CREATE_TABLE: &str = "CREATE TABLE _changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    collectionId TEXT NOT NULL,
    recordId     TEXT NOT NULL,
    action       TEXT NOT NULL,
    record       JSON NOT NULL,
    created      INTEGER NOT NULL
)";

/// Appends one entry for `record` of `collection`. Must run inside the write's transaction.
pub(crate) fn append(
    conn: &Connection,
    collection: &Collection,
    record: &Record,
    action: ChangeAction,
) -> Result<(), StoreError> {
    let snapshot = Value::Object(record.data.clone()).to_string();
    conn.prepare_cached(
        "INSERT INTO _changes (collectionId, recordId, action, record, created)
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

/// The newest sequence ever handed out (0 for a log that never had an entry). Read from
/// `sqlite_sequence` so it survives pruning.
pub(crate) fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let from_sequence: Option<i64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = '_changes'")
        .and_then(|mut stmt| {
            use rusqlite::OptionalExtension;
            stmt.query_row([], |r| r.get(0)).optional()
        })
        .map_err(internal)?;
    Ok(from_sequence.unwrap_or(0).max(0) as u64)
}

/// Entries after `after`, oldest first.
pub(crate) fn after(
    conn: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, collectionId, recordId, action, record, created FROM _changes
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .map_err(internal)?;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![after, limit], |r| {
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
    for row in rows {
        let (seq, collection_id, record_id, action, snapshot, created_ms) =
            row.map_err(internal)?;
        let action = ChangeAction::parse(&action).ok_or_else(|| {
            StoreError::Internal(format!("change {seq} has an unknown action {action:?}"))
        })?;
        let data = match serde_json::from_str::<Value>(&snapshot) {
            Ok(Value::Object(data)) => data,
            _ => {
                return Err(StoreError::Internal(format!(
                    "change {seq} has a corrupt record snapshot"
                )));
            }
        };
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

/// Deletes entries at or below `up_to` that are both beyond the newest `max_entries` and
/// older than `max_age_secs`.
pub(crate) fn prune(
    conn: &Connection,
    up_to: u64,
    retention: ChangeRetention,
) -> Result<u64, StoreError> {
    let newest = last_seq(conn)?;
    let keep_from = newest.saturating_sub(retention.max_entries);
    let bound = up_to.min(keep_from);
    let cutoff = now_ms().saturating_sub(
        i64::try_from(retention.max_age_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
    );
    let deleted = conn
        .prepare_cached("DELETE FROM _changes WHERE seq <= ? AND created < ?")
        .and_then(|mut stmt| {
            stmt.execute(params![i64::try_from(bound).unwrap_or(i64::MAX), cutoff])
        })
        .map_err(internal)?;
    Ok(deleted as u64)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
