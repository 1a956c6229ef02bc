//! The durable change log (`_changes`) on PostgreSQL: one row per record create, update or
//! delete, appended inside the write's transaction, so a rolled-back write leaves no entry
//! and a committed one is never missing.
//!
//! Sequence numbers follow commit order across every node: each write transaction holds the
//! cluster-wide writer lock (a transaction-level advisory lock, see `crate::WRITE_LOCK`) from
//! its start to its commit, so a later write cannot take a number before an earlier one has
//! committed. Numbers come from a PostgreSQL sequence, so they are never reused (a rolled-back
//! write leaves a gap). `_changes_head` holds the newest *committed* number, written in the
//! same transaction: a reader never sees a number whose entry is not visible yet.
//!
//! Snapshots keep no secret (password hashes, `tokenKey`); a read fills an auth record's
//! `tokenKey` with its current key, as the port documents.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use domain::collection::Schema;
use domain::field::FieldKind;
use domain::record::Record;
use domain::sql::quote_ident;
use domain::{Change, ChangeAction, ChangeRetention, Collection, StoreError};
use serde_json::Value;

use crate::Conn;
use crate::records::query;
use crate::sql::{Statement, internal};

/// Tables of the change log (created by the store's first schema step).
pub(crate) const CREATE_TABLES: &str = "
CREATE SEQUENCE _changes_seq;
CREATE TABLE _changes (
    seq            bigint PRIMARY KEY,
    \"collectionId\" text NOT NULL,
    \"recordId\"     text NOT NULL,
    action         text NOT NULL,
    record         text NOT NULL,
    created        bigint NOT NULL
);
CREATE TABLE _changes_head (
    id     integer PRIMARY KEY CHECK (id = 1),
    seq    bigint NOT NULL,
    schema bigint NOT NULL
);
INSERT INTO _changes_head (id, seq, schema) VALUES (1, 0, 0);
";

/// Snapshot bytes one read of the log returns at most (past its first entry).
const READ_BATCH_BYTES: usize = 4 << 20;

/// The fields no snapshot keeps: values no API answer ever shows, whoever asks.
fn is_secret(collection: &Collection, name: &str) -> bool {
    if collection.is_auth() && (name == "password" || name == "tokenKey") {
        return true;
    }
    collection
        .field(name)
        .is_some_and(|field| matches!(field.kind, FieldKind::Password(_)))
}

/// Appends one entry for `record` of `collection`. Must run inside a write transaction that
/// holds the writer lock.
pub(crate) async fn append(
    conn: &Conn,
    collection: &Collection,
    record: &Record,
    action: ChangeAction,
) -> Result<(), StoreError> {
    let mut data = record.data.clone();
    data.retain(|name, _| !is_secret(collection, name));
    let snapshot = Value::Object(data).to_string();
    conn.add_change_bytes(u64::try_from(snapshot.len()).unwrap_or(u64::MAX));
    let mut statement = Statement::new(
        "WITH entry AS (
            INSERT INTO _changes (seq, \"collectionId\", \"recordId\", action, record, created)
            VALUES (nextval('_changes_seq'), ",
    );
    statement
        .bind(collection.id.as_str())
        .push(", ")
        .bind(record.id())
        .push(", ")
        .bind(action.as_str())
        .push(", ")
        .bind(snapshot)
        .push(", ")
        .bind(now_ms())
        .push(
            ") RETURNING seq) UPDATE _changes_head SET seq = (SELECT seq FROM entry) WHERE id = 1",
        );
    query(conn, &statement, true).await.map_err(internal)?;
    Ok(())
}

/// The newest committed sequence (0 for a log that never had an entry; survives pruning)
/// and the schema version (bumped by every committed schema change).
pub(crate) async fn head(conn: &Conn) -> Result<(u64, u64), StoreError> {
    let (seq, schema, _) = head_with_params(conn).await?;
    Ok((seq, schema))
}

/// [`head`] and the params version (bumped by every param write).
pub(crate) async fn head_with_params(conn: &Conn) -> Result<(u64, u64, u64), StoreError> {
    let rows = query(
        conn,
        &Statement::new("SELECT seq, schema, params FROM _changes_head WHERE id = 1"),
        true,
    )
    .await
    .map_err(internal)?;
    let Some(row) = rows.first() else {
        return Ok((0, 0, 0));
    };
    let seq: i64 = row.try_get(0).map_err(internal)?;
    let schema: i64 = row.try_get(1).map_err(internal)?;
    let params: i64 = row.try_get(2).map_err(internal)?;
    Ok((
        seq.max(0) as u64,
        schema.max(0) as u64,
        params.max(0) as u64,
    ))
}

/// Marks a schema change in the transaction, so every node reloads the schema after it;
/// answers the schema version the transaction commits.
pub(crate) async fn bump_schema(conn: &Conn) -> Result<u64, StoreError> {
    let rows = query(
        conn,
        &Statement::new(
            "UPDATE _changes_head SET schema = schema + 1 WHERE id = 1 RETURNING schema",
        ),
        true,
    )
    .await
    .map_err(internal)?;
    let version: i64 = rows
        .first()
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(internal)?
        .unwrap_or(0);
    Ok(u64::try_from(version).unwrap_or(0))
}

pub(crate) async fn last_seq(conn: &Conn) -> Result<u64, StoreError> {
    Ok(head(conn).await?.0)
}

/// Entries after `after`, oldest first, an auth record's `tokenKey` filled with its current
/// one; at most `limit`, and fewer once their snapshots reach [`READ_BATCH_BYTES`].
pub(crate) async fn after(
    conn: &Conn,
    schema: &Schema,
    after: u64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    // The cut is made by the server: the client library holds every row a query answers, so
    // a batch of large snapshots cut here would all be in memory first. `octet_length` reads
    // a stored value's size from its header, without decompressing it.
    let mut statement = Statement::new(
        "SELECT seq, \"collectionId\", \"recordId\", action, record, created FROM (
           SELECT seq, \"collectionId\", \"recordId\", action, record, created,
                  coalesce(sum(octet_length(record)) OVER (ORDER BY seq
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
           FROM _changes WHERE seq > ",
    );
    statement
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .push(" ORDER BY seq LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .push(") AS page WHERE before < ")
        .bind(i64::try_from(READ_BATCH_BYTES).unwrap_or(i64::MAX))
        .push(" ORDER BY seq");
    let rows = query(conn, &statement, true).await.map_err(internal)?;
    let mut changes = Vec::new();
    for row in rows {
        let seq: i64 = row.try_get(0).map_err(internal)?;
        let collection_id: String = row.try_get(1).map_err(internal)?;
        let record_id: String = row.try_get(2).map_err(internal)?;
        let action: String = row.try_get(3).map_err(internal)?;
        let snapshot: String = row.try_get(4).map_err(internal)?;
        let created_ms: i64 = row.try_get(5).map_err(internal)?;
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
            && let Some(key) = current_token_key(conn, collection, &record_id).await
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
/// the key out, which reads as revoked: failing closed.
async fn current_token_key(conn: &Conn, collection: &Collection, id: &str) -> Option<String> {
    let mut statement = Statement::new(format!(
        "SELECT \"tokenKey\" FROM {} WHERE \"id\" = ",
        quote_ident(&collection.name)
    ));
    statement.bind(id);
    match query(conn, &statement, true).await {
        Ok(rows) => rows.first().and_then(|row| row.try_get(0).ok()),
        Err(error) => {
            tracing::warn!(%error, "cannot read an auth record's token key for the change log");
            None
        }
    }
}

/// Held (transaction-level) by the node pruning the change log; the others skip their turn.
const PRUNE_LOCK: i64 = 0x706c_696e_7468_0003;

/// How long a node that stopped reporting its reading position still holds pruning back: a
/// node reports at every prune (every minute while changes arrive), so one silent this long
/// is gone or stuck.
pub(crate) const READER_TIMEOUT_SECS: i64 = 600;

/// Prunes for the whole cluster: records that this node's realtime fan-out has read up to
/// `read` (and drops nodes silent for [`READER_TIMEOUT_SECS`]), then, unless another node is
/// pruning right now, prunes up to the position every live node has read, so no node's
/// fan-out loses a change it has not read yet: by `retention` when given, and to the byte
/// budget. Returns how many entries went.
pub(crate) async fn prune_for_cluster(
    conn: &Conn,
    node: &str,
    read: u64,
    retention: Option<ChangeRetention>,
    max_bytes: u64,
) -> Result<u64, StoreError> {
    conn.begin("BEGIN").await.map_err(internal)?;
    let result = async {
        let read = i64::try_from(read).unwrap_or(i64::MAX);
        conn.execute(
            "INSERT INTO _readers (node, cursor, seen) VALUES ($1, $2, now())
             ON CONFLICT (node) DO UPDATE SET cursor = excluded.cursor, seen = now()",
            &[&node, &read],
        )
        .await
        .map_err(internal)?;
        conn.execute(
            "DELETE FROM _readers WHERE seen < now() - $1::float8 * interval '1 second'",
            &[&(READER_TIMEOUT_SECS as f64)],
        )
        .await
        .map_err(internal)?;
        let locked: bool = conn
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(internal)?;
        if !locked {
            return Ok(0);
        }
        let everyone: i64 = conn
            .query_one("SELECT coalesce(min(cursor), 0)::bigint FROM _readers", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(internal)?;
        prune(
            conn,
            u64::try_from(everyone).unwrap_or(0),
            retention,
            max_bytes,
        )
        .await
    }
    .await;
    match result {
        Ok(pruned) => {
            conn.end("COMMIT").await.map_err(internal)?;
            Ok(pruned)
        }
        Err(error) => {
            conn.end("ROLLBACK").await.map_err(internal)?;
            Err(error)
        }
    }
}

/// Deletes entries at or below `up_to` that are both beyond the newest `max_entries` and
/// at least `max_age_secs` old (with 0, an entry written in this very millisecond goes too:
/// "keep nothing by age" must not depend on the clock having ticked), when `retention` is
/// given; then the oldest of them beyond the newest entries that fit in `max_bytes`.
pub(crate) async fn prune(
    conn: &Conn,
    up_to: u64,
    retention: Option<ChangeRetention>,
    max_bytes: u64,
) -> Result<u64, StoreError> {
    let aged = match retention {
        Some(retention) => prune_by_age(conn, up_to, retention).await?,
        None => 0,
    };
    // The byte budget: keep the newest entries that fit, drop older ones already read.
    let mut budget = Statement::new(
        "DELETE FROM _changes WHERE seq IN (
           SELECT seq FROM (
             SELECT seq, sum(pg_column_size(record)) OVER (ORDER BY seq DESC) AS newer
             FROM _changes
           ) AS sized
           WHERE newer > ",
    );
    budget
        .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
        .push(" AND seq <= ")
        .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
        .push(")");
    let params = budget.refs();
    let over = conn
        .execute(budget.sql.as_str(), &params)
        .await
        .map_err(internal)?;
    Ok(aged + over)
}

/// The retention part of [`prune`].
async fn prune_by_age(
    conn: &Conn,
    up_to: u64,
    retention: ChangeRetention,
) -> Result<u64, StoreError> {
    let newest = last_seq(conn).await?;
    let keep_from = newest.saturating_sub(retention.max_entries);
    let bound = up_to.min(keep_from);
    let cutoff = now_ms().saturating_sub(
        i64::try_from(retention.max_age_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
    );
    let mut statement = Statement::new("DELETE FROM _changes WHERE seq <= ");
    statement
        .bind(i64::try_from(bound).unwrap_or(i64::MAX))
        .push(" AND created <= ")
        .bind(cutoff);
    let params = statement.refs();
    conn.execute(statement.sql.as_str(), &params)
        .await
        .map_err(internal)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The byte budget between the realtime fan-out's prunes (once a minute while changes
/// arrive): each node counts the snapshot bytes its own commits append, and after every
/// quarter of the budget written starts a prune to the budget ([`prune_for_cluster`] without
/// a retention), off the write's path. Without it a minute of large writes could take the log
/// far past its budget before the next prune. As there, only entries every live node has read
/// may go.
pub(crate) struct BytePrune {
    max_bytes: u64,
    /// Snapshot bytes this node's commits appended since its last byte prune was started.
    appended: AtomicU64,
    /// How far this node's readers have read the log (the fan-out's position).
    read: AtomicU64,
    running: AtomicBool,
}

impl BytePrune {
    /// A node that has read the log up to `read` (at start, its head: the fan-out starts
    /// there).
    pub(crate) fn new(max_bytes: u64, read: u64) -> Self {
        BytePrune {
            max_bytes,
            appended: AtomicU64::new(0),
            read: AtomicU64::new(read),
            running: AtomicBool::new(false),
        }
    }

    /// The snapshot bytes written between two byte prunes: a quarter of the budget.
    pub(crate) fn every(&self) -> u64 {
        (self.max_bytes / 4).max(1)
    }

    /// Counts `bytes` a commit appended; true when a prune is due and none is running, in
    /// which case the caller starts one and calls [`BytePrune::done`] when it has ended.
    pub(crate) fn written(&self, bytes: u64) -> bool {
        if bytes == 0 {
            return false;
        }
        let total = self
            .appended
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if total < self.every() || self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.appended.store(0, Ordering::Relaxed);
        true
    }

    /// The prune [`BytePrune::written`] asked for has ended.
    pub(crate) fn done(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// This node's readers have read the log up to `seq`.
    pub(crate) fn read_up_to(&self, seq: u64) {
        self.read.fetch_max(seq, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::BytePrune;

    #[test]
    fn a_byte_prune_is_due_every_quarter_of_the_budget_one_at_a_time() {
        let prune = BytePrune::new(1_000, 7);
        assert_eq!(prune.every(), 250);
        assert!(!prune.written(0));
        assert!(!prune.written(249), "under a quarter");
        assert!(prune.written(1), "a quarter written");
        // One prune at a time: what is written meanwhile counts toward the next.
        assert!(!prune.written(300));
        prune.done();
        assert!(
            prune.written(1),
            "300 bytes were written while the last one ran"
        );
        prune.done();
        assert!(!prune.written(10));
        // A budget under 4 bytes still prunes, at every write.
        let tiny = BytePrune::new(0, 0);
        assert!(tiny.written(1));
    }

    #[test]
    fn the_read_position_only_moves_forward() {
        let prune = BytePrune::new(64, 10);
        assert_eq!(prune.read(), 10);
        prune.read_up_to(5);
        assert_eq!(prune.read(), 10);
        prune.read_up_to(12);
        assert_eq!(prune.read(), 12);
    }
}
