//! The WAL index's commit counter, read from SQLite's own mapping of the `-shm` file.
//!
//! The auth records kept in memory (`auth_cache.rs`) check, before every hand-out, that no
//! other process has committed since this one's last commit: they compare `iChange`, the
//! counter in the WAL index header that SQLite moves on by one at every commit, whoever
//! commits. Reading it with a `pread` of the `-shm` file cost a system call on every
//! authenticated request (about a microsecond of kernel time, some 4 % of a record view), and
//! the writer one more a commit. The header is memory that every connection of every process
//! shares: SQLite maps the file's first 32 KiB region, and a commit writes the header there.
//! So the counter is read from that mapping, with one atomic load.
//!
//! The mapping is SQLite's, of a connection opened for it alone and kept open for as long as
//! the counter is: SQLite unmaps a connection's WAL index regions only when the connection
//! closes (or leaves WAL mode, which a read-write connection in this process never asks for),
//! and the file cannot shrink under it while the connection holds the index open (SQLite
//! truncates the `-shm` file only for the first connection of all, under an exclusive lock
//! that an open connection's shared lock refuses). The connection runs no statement after
//! opening, so it holds no read lock and never stands in a checkpoint's way.
//!
//! This is one of the workspace's three modules of `unsafe` code (with `wal_file.rs` and the
//! binary's allocator): the file pointer and its `xShmMap` method come from SQLite's C
//! interface, and the load reads memory that C code writes.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::{Connection, OpenFlags, ffi};

/// The size SQLite maps the WAL index in (`WALINDEX_PGSZ`).
const REGION: i32 = 32 * 1024;
/// Where `iChange` sits in the index's first header copy (native byte order, 4-byte aligned).
const CHANGE_COUNTER: usize = 8;

/// The counter's word in SQLite's mapping, with the connection that keeps the mapping.
pub(crate) struct CommitCounter {
    /// The address of `iChange` (a `usize`, so the type is `Send` and `Sync`; see
    /// [`CommitCounter::read`]).
    word: usize,
    /// Never used after [`CommitCounter::open`]; dropped after `word` is last read (a
    /// `&self` borrow outlives every read).
    _conn: Mutex<Connection>,
}

impl CommitCounter {
    /// Opens a connection on the database at `path`, reads it once so that SQLite opens and
    /// maps its WAL index, and finds the counter in that mapping. `None` when the database is
    /// not in WAL mode or any step fails (the caller then keeps nothing in memory).
    pub(crate) fn open(path: &Path) -> Option<CommitCounter> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        // A read transaction in WAL mode opens the index and maps its first region; the
        // statement ends (and its read lock is released) before this returns.
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            .ok()?;
        // SAFETY: `conn` is an open connection, used on this thread only here.
        let region = unsafe { first_region(&conn) }?;
        Some(CommitCounter {
            word: region + CHANGE_COUNTER,
            _conn: Mutex::new(conn),
        })
    }

    /// The counter as the last commit (of any process) left it.
    pub(crate) fn read(&self) -> u32 {
        // SAFETY: `word` points into the first region SQLite mapped for `_conn`, which stays
        // mapped, at its full size, while `_conn` is open (see the module's note), and `self`
        // holds `_conn` open. The address is 4-byte aligned (a mapping starts on a page, the
        // offset is 8). SQLite's writers store the header with plain C writes, each aligned
        // 32-bit word in one piece on every platform Plinth builds for, so the load sees the
        // counter before or after a commit, never a torn value; this is how SQLite's own
        // readers of other processes see the same memory.
        let word = unsafe { AtomicU32::from_ptr(self.word as *mut u32) };
        word.load(Ordering::Acquire)
    }
}

/// The address of the WAL index's first region as SQLite maps it for `conn`'s database file,
/// once a read in WAL mode has opened the index.
///
/// # Safety
/// `conn` is open and not in use on another thread.
unsafe fn first_region(conn: &Connection) -> Option<usize> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the handle is `conn`'s; `FILE_POINTER` writes one pointer into `file`.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast::<c_void>(),
        )
    };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return None;
    }
    // SAFETY: `file` is the connection's open database file; its methods outlive it.
    let methods = unsafe { (*file).pMethods };
    if methods.is_null() {
        return None;
    }
    // SAFETY: `methods` points at the file's method table.
    let (version, map) = unsafe { ((*methods).iVersion, (*methods).xShmMap) };
    let map = map.filter(|_| version >= 2)?;
    let mut region: *mut c_void = std::ptr::null_mut();
    // SAFETY: asks for region 0, already mapped by the read in `open` (no extension); SQLite
    // hands back its existing mapping.
    let rc = unsafe { map(file, 0, REGION, 0, &raw mut region) };
    if rc != ffi::SQLITE_OK || region.is_null() {
        return None;
    }
    Some(region as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_database(dir: &Path) -> (std::path::PathBuf, Connection) {
        let path = dir.join("data.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
            .expect("wal");
        (path, conn)
    }

    #[test]
    fn the_counter_moves_with_every_commit_of_any_connection() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, writer) = wal_database(dir.path());
        let counter = CommitCounter::open(&path).expect("counter");
        let mut last = counter.read();
        for n in 0..5 {
            writer
                .execute("INSERT INTO t VALUES (?)", [n])
                .expect("insert");
            let now = counter.read();
            assert_eq!(now, last.wrapping_add(1), "one commit, one step");
            last = now;
        }
        // A transaction of several statements is one commit.
        writer
            .execute_batch("BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); COMMIT;")
            .expect("tx");
        assert_eq!(counter.read(), last.wrapping_add(1));
        // A rolled-back transaction commits nothing.
        let last = counter.read();
        writer
            .execute_batch("BEGIN; INSERT INTO t VALUES (3); ROLLBACK;")
            .expect("rollback");
        assert_eq!(counter.read(), last);
        // The pread the counter replaced reads the same word.
        use std::os::unix::fs::FileExt;
        let shm = std::fs::File::open(dir.path().join("data.db-shm")).expect("shm");
        let mut header = [0u8; 12];
        shm.read_exact_at(&mut header, 0).expect("header");
        let from_file = u32::from_ne_bytes(header[8..12].try_into().expect("word"));
        assert_eq!(counter.read(), from_file);
    }

    #[test]
    fn the_counter_survives_the_other_connections_closing() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, writer) = wal_database(dir.path());
        let counter = CommitCounter::open(&path).expect("counter");
        drop(writer);
        // The index stays (the counter's connection holds it), and a new writer continues it.
        let before = counter.read();
        let writer = Connection::open(&path).expect("reopen");
        writer
            .execute("INSERT INTO t VALUES (9)", [])
            .expect("insert");
        assert_eq!(counter.read(), before.wrapping_add(1));
    }

    #[test]
    fn a_database_not_in_wal_mode_has_no_counter() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("rollback.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (x);").expect("table");
        assert!(CommitCounter::open(&path).is_none());
    }
}
