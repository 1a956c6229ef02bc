//! [`LogStore`] on SQLite: `data_dir/auxiliary.db` with PocketBase's `_logs` table (same
//! columns, defaults and indexes), so an `auxiliary.db` written by PocketBase reads as is.
//!
//! Two connections: the writer inserts batches, the reader answers the superuser's queries
//! (read-only, bounded by the query timeout). A slow filter therefore never holds up the batch
//! inserts. Calls run on Tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::logs::{LOGS_TABLE, LogEntry, LogPage, LogQuery, LogStat, LogStore};
use domain::sql::{Dialect, SqlFragment};
use domain::store::StoreError;
use rusqlite::{Connection, OpenFlags, params_from_iter};
use serde_json::Value;

use crate::records::bind;

/// PocketBase's `_logs` layout (`auxiliary.db`).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS `_logs` (
    `id`      TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
    `level`   INTEGER DEFAULT 0 NOT NULL,
    `message` TEXT DEFAULT "" NOT NULL,
    `data`    JSON DEFAULT "{}" NOT NULL,
    `created` TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')) NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_logs_level on `_logs` (`level`);
CREATE INDEX IF NOT EXISTS idx_logs_message on `_logs` (`message`);
CREATE INDEX IF NOT EXISTS idx_logs_created_hour on `_logs` (strftime('%Y-%m-%d %H:00:00', `created`));
"#;

/// The columns read back, in [`LogEntry`]'s order.
const COLUMNS: &str =
    r#""_logs"."id", "_logs"."created", "_logs"."data", "_logs"."message", "_logs"."level""#;

/// Why the log database could not open.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the log database {path}: {source}")]
pub struct LogsOpenError {
    pub path: PathBuf,
    pub source: rusqlite::Error,
}

/// The SQLite log store.
pub struct SqliteLogStore {
    writer: Arc<Mutex<Connection>>,
    /// Opened by the first read (the dashboard's logs page): most servers never read them.
    reader: Arc<Mutex<Option<Connection>>>,
    path: Arc<Path>,
    query_timeout: Option<Duration>,
}

impl SqliteLogStore {
    /// Opens (creating if needed) `data_dir/auxiliary.db`.
    pub fn open(
        data_dir: &Path,
        query_timeout: Option<Duration>,
    ) -> Result<Arc<SqliteLogStore>, LogsOpenError> {
        let path = data_dir.join("auxiliary.db");
        let error = |source| LogsOpenError {
            path: path.clone(),
            source,
        };
        let writer = crate::wal_file::open_writer(&path).map_err(error)?;
        writer.busy_timeout(Duration::from_secs(5)).map_err(error)?;
        writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .map_err(error)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(error)?;
        writer.execute_batch(SCHEMA).map_err(error)?;
        Ok(Arc::new(SqliteLogStore {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(None)),
            path: path.into(),
            query_timeout,
        }))
    }

    /// Runs `work` on the reader, on the blocking pool, interrupted at the query timeout.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        let path = Arc::clone(&self.path);
        let deadline = self.query_timeout.map(|t| Instant::now() + t);
        run_blocking(move || {
            let mut slot = reader.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = match &mut *slot {
                Some(conn) => conn,
                empty => empty.insert(open_reader(&path).map_err(read_error)?),
            };
            if let Some(deadline) = deadline {
                conn.progress_handler(1000, Some(move || Instant::now() > deadline))
                    .map_err(read_error)?;
            }
            let result = work(conn);
            conn.progress_handler(0, None::<fn() -> bool>)
                .map_err(read_error)?;
            result.map_err(read_error)
        })
        .await
    }

    /// Runs `work` on the writer, on the blocking pool.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        run_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn).map_err(|e| StoreError::Internal(e.to_string()))
        })
        .await
    }
}

/// The read-only connection the log queries run on.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader.busy_timeout(Duration::from_secs(5))?;
    // Filters are SQL built elsewhere; the reader must never write.
    reader.pragma_update(None, "query_only", true)?;
    crate::engine::register_math_functions(&reader)?;
    Ok(reader)
}

async fn run_blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Internal(format!("log store task failed: {e}")))?
}

fn read_error(error: rusqlite::Error) -> StoreError {
    if crate::is_interrupt(&error) {
        StoreError::TimedOut
    } else {
        StoreError::Internal(error.to_string())
    }
}

/// ` WHERE a AND b` (or nothing) and its parameters.
fn where_clause(filters: &[SqlFragment]) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::new();
    let mut params = Vec::new();
    for (i, filter) in filters.iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE (" } else { " AND (" });
        sql.push_str(&filter.sql);
        sql.push(')');
        params.extend(filter.params.iter().map(bind));
    }
    (sql, params)
}

fn read_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<LogEntry> {
    let data: String = row.get(2)?;
    Ok(LogEntry {
        id: row.get(0)?,
        created: row.get(1)?,
        // A row written by another program may hold text that is not JSON: shown as text.
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
        message: row.get(3)?,
        level: row.get(4)?,
    })
}

#[async_trait]
impl LogStore for SqliteLogStore {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn append(&self, entries: Vec<LogEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO `_logs` (`id`, `level`, `message`, `data`, `created`) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for entry in &entries {
                    insert.execute(rusqlite::params![
                        entry.id,
                        entry.level,
                        entry.message,
                        entry.data.to_string(),
                        entry.created,
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn list(&self, query: LogQuery) -> Result<LogPage, StoreError> {
        self.read(move |conn| {
            let (filter_sql, mut params) = where_clause(&query.filters);
            let total = if query.with_total {
                let sql = format!("SELECT COUNT(*) FROM {LOGS_TABLE}{filter_sql}");
                let count: i64 =
                    conn.query_row(&sql, params_from_iter(params.iter()), |row| row.get(0))?;
                Some(u64::try_from(count).unwrap_or(0))
            } else {
                None
            };
            let mut sql = format!("SELECT {COLUMNS} FROM {LOGS_TABLE}{filter_sql} ORDER BY ");
            for term in &query.sort {
                sql.push_str(&term.expr.sql);
                sql.push_str(if term.descending { " DESC, " } else { " ASC, " });
                params.extend(term.expr.params.iter().map(bind));
            }
            // Insertion order breaks ties (and is the order without a sort, as in PocketBase).
            // The page size is written into the SQL (see `records::limit_clause`).
            let per_page = i64::try_from(query.per_page).unwrap_or(i64::MAX);
            sql.push_str("\"_logs\".rowid ASC");
            sql.push_str(&crate::records::limit_clause(per_page));
            sql.push_str(" OFFSET ?");
            let offset = i64::try_from(query.page.saturating_sub(1).saturating_mul(query.per_page))
                .unwrap_or(i64::MAX);
            params.push(offset.into());
            let mut statement = conn.prepare(&sql)?;
            let items = statement
                .query_map(params_from_iter(params.iter()), read_entry)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(LogPage { items, total })
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<LogEntry, StoreError> {
        let id = id.to_owned();
        let found = self
            .read(move |conn| {
                let sql = format!("SELECT {COLUMNS} FROM {LOGS_TABLE} WHERE \"_logs\".\"id\" = ?1");
                match conn.query_row(&sql, [&id], read_entry) {
                    Ok(entry) => Ok(Some(entry)),
                    Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .await?;
        found.ok_or(StoreError::NotFound)
    }

    async fn stats(&self, filters: Vec<SqlFragment>) -> Result<Vec<LogStat>, StoreError> {
        self.read(move |conn| {
            let (filter_sql, params) = where_clause(&filters);
            // The same expression as the `idx_logs_created_hour` index.
            let sql = format!(
                "SELECT strftime('%Y-%m-%d %H:00:00', \"_logs\".\"created\") AS hour, COUNT(*) \
                 FROM {LOGS_TABLE}{filter_sql} GROUP BY hour ORDER BY hour"
            );
            let mut statement = conn.prepare(&sql)?;
            statement
                .query_map(params_from_iter(params.iter()), |row| {
                    let hour: Option<String> = row.get(0)?;
                    let total: i64 = row.get(1)?;
                    Ok(LogStat {
                        date: format!("{}.000Z", hour.unwrap_or_default()),
                        total: u64::try_from(total).unwrap_or(0),
                    })
                })?
                .collect()
        })
        .await
    }

    async fn delete_all(&self) -> Result<u64, StoreError> {
        self.write(|conn| {
            let removed = conn.execute("DELETE FROM `_logs`", [])?;
            Ok(removed as u64)
        })
        .await
    }

    async fn delete_before(&self, cutoff: &str) -> Result<u64, StoreError> {
        let cutoff = cutoff.to_owned();
        self.write(move |conn| {
            let removed = conn.execute("DELETE FROM `_logs` WHERE `created` < ?1", [&cutoff])?;
            Ok(removed as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use domain::SqlValue;
    use domain::store::SortTerm;
    use serde_json::json;

    use super::*;

    fn entry(id: &str, created: &str, level: i64, status: i64) -> LogEntry {
        LogEntry {
            id: id.into(),
            created: created.into(),
            data: json!({"status": status, "type": "request"}),
            message: format!("GET /{id}"),
            level,
        }
    }

    async fn store_with_entries() -> (tempfile::TempDir, Arc<SqliteLogStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteLogStore::open(dir.path(), Some(Duration::from_secs(5))).expect("open");
        store
            .append(vec![
                entry("a", "2026-01-01 10:15:00.000Z", 0, 200),
                entry("b", "2026-01-01 10:45:00.000Z", 8, 404),
                entry("c", "2026-01-01 12:00:00.000Z", 8, 500),
            ])
            .await
            .expect("append");
        (dir, store)
    }

    #[tokio::test]
    async fn entries_round_trip_in_insertion_order_with_paging() {
        let (_dir, store) = store_with_entries().await;
        let page = store
            .list(LogQuery {
                page: 1,
                per_page: 2,
                with_total: true,
                ..LogQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(page.total, Some(3));
        let ids: Vec<_> = page.items.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            page.items[1].data,
            json!({"status": 404, "type": "request"})
        );
        let second = store
            .list(LogQuery {
                page: 2,
                per_page: 2,
                ..LogQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(second.total, None);
        assert_eq!(second.items.len(), 1);
        assert_eq!(store.get("c").await.expect("get").level, 8);
        assert!(matches!(store.get("zz").await, Err(StoreError::NotFound)));
    }

    #[tokio::test]
    async fn filters_sorts_stats_and_deletes() {
        let (_dir, store) = store_with_entries().await;
        let mut errors = SqlFragment::raw("json_extract(\"_logs\".\"data\", '$.status') >= ");
        errors.push_param(SqlValue::Int(400));
        let page = store
            .list(LogQuery {
                filters: vec![errors.clone()],
                sort: vec![SortTerm {
                    expr: SqlFragment::raw("\"_logs\".\"created\""),
                    descending: true,
                }],
                page: 1,
                per_page: 10,
                with_total: true,
            })
            .await
            .expect("list");
        let ids: Vec<_> = page.items.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);

        let stats = store.stats(Vec::new()).await.expect("stats");
        assert_eq!(
            stats,
            [
                LogStat {
                    date: "2026-01-01 10:00:00.000Z".into(),
                    total: 2
                },
                LogStat {
                    date: "2026-01-01 12:00:00.000Z".into(),
                    total: 1
                },
            ]
        );
        let filtered = store.stats(vec![errors]).await.expect("stats");
        assert_eq!(filtered.iter().map(|s| s.total).sum::<u64>(), 2);

        assert_eq!(
            store
                .delete_before("2026-01-01 11:00:00.000Z")
                .await
                .expect("delete"),
            2
        );
        assert_eq!(store.delete_all().await.expect("delete"), 1);
        assert!(store.stats(Vec::new()).await.expect("stats").is_empty());
    }

    #[tokio::test]
    async fn a_pocketbase_layout_is_reused_and_the_reader_cannot_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("auxiliary.db")).expect("open");
        conn.execute_batch(SCHEMA).expect("schema");
        // A row as PocketBase writes it, with the column defaults.
        conn.execute(
            "INSERT INTO _logs (id, message, data) VALUES ('pb1', 'GET /', '{\"x\":1}')",
            [],
        )
        .expect("insert");
        drop(conn);
        let store = SqliteLogStore::open(dir.path(), None).expect("open");
        let read = store.get("pb1").await.expect("get");
        assert_eq!(read.data, json!({"x": 1}));
        assert!(read.created.ends_with('Z'));
        let writes = store
            .list(LogQuery {
                filters: vec![SqlFragment::raw("1 = 1); DELETE FROM _logs; --")],
                page: 1,
                per_page: 1,
                ..LogQuery::default()
            })
            .await;
        assert!(writes.is_err());
        assert!(store.get("pb1").await.is_ok());
    }

    #[tokio::test]
    async fn a_query_past_the_timeout_is_interrupted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            SqliteLogStore::open(dir.path(), Some(Duration::from_millis(100))).expect("open");
        store
            .append(vec![entry("a", "2026-01-01 10:15:00.000Z", 0, 200)])
            .await
            .expect("append");
        let endless = SqlFragment::raw(
            "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) \
             SELECT count(*) FROM c) > 0",
        );
        let listed = store
            .list(LogQuery {
                filters: vec![endless.clone()],
                page: 1,
                per_page: 1,
                ..LogQuery::default()
            })
            .await;
        assert!(matches!(listed, Err(StoreError::TimedOut)), "{listed:?}");
        let stats = store.stats(vec![endless]).await;
        assert!(matches!(stats, Err(StoreError::TimedOut)), "{stats:?}");
        // The reader is usable again afterwards.
        assert!(store.get("a").await.is_ok());
    }
}
