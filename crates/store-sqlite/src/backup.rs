//! Consistent copies of the store's databases for backups, and the check a copy must pass
//! before a restore puts it in place.
//!
//! A copy is made with `VACUUM INTO` on a connection of its own, outside the engine's threads:
//! in WAL mode it reads one snapshot (every transaction committed before it started, nothing
//! later) while the writer goes on committing, and it writes a compact file in rollback-journal
//! mode that needs no `-wal` beside it, as PocketBase's backups hold. The request-log database
//! (`auxiliary.db`, written by the logs feature beside `data.db`) is copied the same way when
//! it exists.

use std::path::Path;

use domain::StoreError;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// The database files a backup holds, in the order they are written: the main one first.
pub(crate) const DATABASE_FILES: [&str; 2] = ["data.db", "auxiliary.db"];

/// How long a copy waits for a lock (only a WAL recovery or a checkpoint can hold one up).
const BUSY_TIMEOUT_MS: u64 = 10_000;

/// Copies every database file of `data_dir` that exists into `dest` (same names); `data.db`
/// must exist. Returns the names copied.
pub(crate) fn snapshot(data_dir: &Path, dest: &Path) -> Result<Vec<String>, StoreError> {
    let mut copied = Vec::new();
    for name in DATABASE_FILES {
        let source = data_dir.join(name);
        if name != DATABASE_FILES[0] && !source.is_file() {
            continue;
        }
        snapshot_file(&source, &dest.join(name))?;
        copied.push(name.to_owned());
    }
    Ok(copied)
}

/// Writes a consistent copy of the SQLite database `source` to `dest` (which must not exist)
/// while other connections keep writing to it.
pub fn snapshot_file(source: &Path, dest: &Path) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| StoreError::Internal(format!("opening {}: {error}", source.display())))?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(crate::internal)?;
    let target = dest
        .to_str()
        .ok_or_else(|| StoreError::Internal("the backup path is not valid UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(|error| StoreError::Internal(format!("copying {}: {error}", source.display())))?;
    Ok(())
}

/// Checks the unpacked database files in `dir`: `data.db` must be there, pass SQLite's
/// integrity check and hold Plinth's system tables; `auxiliary.db`, when there, must pass the
/// integrity check. Nothing in `dir` is changed.
pub(crate) fn verify(dir: &Path) -> Result<(), StoreError> {
    let refuse = |reason: String| StoreError::Schema(reason);
    let main = dir.join(DATABASE_FILES[0]);
    if !main.is_file() {
        return Err(refuse("the backup has no data.db at its root".into()));
    }
    let conn =
        open_read_only(&main).map_err(|e| refuse(format!("data.db cannot be opened: {e}")))?;
    integrity(&conn).map_err(|e| refuse(format!("data.db is damaged: {e}")))?;
    let plinth =
        is_plinth_database(&conn).map_err(|e| refuse(format!("data.db cannot be read: {e}")))?;
    if !plinth {
        return Err(refuse(
            "data.db is not a Plinth database (no Plinth system tables)".into(),
        ));
    }
    let auxiliary = dir.join(DATABASE_FILES[1]);
    if auxiliary.exists() {
        let conn = open_read_only(&auxiliary)
            .map_err(|e| refuse(format!("auxiliary.db cannot be opened: {e}")))?;
        integrity(&conn).map_err(|e| refuse(format!("auxiliary.db is damaged: {e}")))?;
    }
    Ok(())
}

fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    Ok(conn)
}

/// `PRAGMA integrity_check`, which answers the single row `ok` for a sound file (a file that
/// is not a database at all fails here too).
fn integrity(conn: &Connection) -> Result<(), String> {
    let mut statement = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| e.to_string())?;
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        let mut problems = rows.into_iter().take(3).collect::<Vec<_>>().join("; ");
        if problems.is_empty() {
            problems = "no answer".into();
        }
        Err(problems)
    }
}

/// Whether the database carries Plinth's system tables: `_collections` with its `definition`
/// column (PocketBase's has `fields` instead) and the first system migration recorded.
fn is_plinth_database(conn: &Connection) -> rusqlite::Result<bool> {
    let definition: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM pragma_table_info('_collections') WHERE name = 'definition'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if definition.is_none() {
        return Ok(false);
    }
    let migrations: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if migrations.is_none() {
        return Ok(false);
    }
    let first: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM _migrations WHERE file = ?1",
            [crate::system::FIRST_MIGRATION],
            |row| row.get(0),
        )
        .optional()?;
    Ok(first.is_some())
}

/// Runs `work` on a thread of its own (a copy can take a while and must not hold one of the
/// engine's threads) and awaits its answer.
pub(crate) async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("plinth-backup".into())
        .spawn(move || {
            let _ = sender.send(work());
        })
        .map_err(|e| StoreError::Internal(format!("cannot start the backup thread: {e}")))?;
    receiver
        .await
        .map_err(|_| StoreError::Internal("the backup thread ended without an answer".into()))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("data.db"),
            b"not a database at all, just text",
        )
        .unwrap();
        let error = verify(dir.path()).unwrap_err();
        assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    }

    #[test]
    fn a_foreign_sqlite_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("data.db")).unwrap();
        // PocketBase's `_collections` has `fields`, not `definition`.
        conn.execute_batch("CREATE TABLE _collections (id TEXT, fields JSON)")
            .unwrap();
        drop(conn);
        let error = verify(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a Plinth database"), "{error}");
    }

    #[test]
    fn a_missing_data_db_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = verify(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no data.db"), "{error}");
    }
}
