//! Exact `totalItems` without counting again, for the counts the store-wide map (`counts`)
//! does not keep: those that read rows other than the counted one (relation paths,
//! `@collection`), and view collections. A reader connection remembers the counts it
//! computed, each with SQLite's `PRAGMA data_version` at the time, and answers a repeated count
//! from memory while that number has not moved.
//!
//! `data_version` changes on a connection whenever any *other* connection (the writer thread,
//! another process such as `plinth superuser upsert`) commits to the database, and only then;
//! readers never write. A count is kept only when the version read before it equals the
//! version read after it, so no commit happened in between and the count is exactly the
//! database's at that version; it is reused only while the version is still the same, so the
//! answer is always what counting now would give, never an estimate and never stale.
//!
//! The key is the count statement's SQL and its bound values (the caller's rules and filter,
//! including `@request.auth.*` and `@now` values), so two callers share a count only when they
//! ask the very same question. Each reader thread keeps its own map ([`ENTRIES`] entries, keys
//! up to [`MAX_KEY_BYTES`]); the writer connection never uses it (its own commits would not move
//! its `data_version`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use rusqlite::types::Value as SqlOut;
use rusqlite::{Connection, params_from_iter};

/// Counts kept per reader connection.
pub(crate) const ENTRIES: usize = 256;
/// Longest key (SQL and values) worth keeping; longer questions are counted each time.
pub(crate) const MAX_KEY_BYTES: usize = 16 * 1024;

#[derive(Default)]
struct Counts {
    entries: HashMap<String, (i64, i64)>,
    /// Keys oldest first, for eviction.
    order: VecDeque<String>,
}

thread_local! {
    static COUNTS: RefCell<Counts> = RefCell::new(Counts::default());
}

#[cfg(test)]
thread_local! {
    /// Hits on this thread only (tests run in parallel threads of one process).
    static THREAD_HITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |row| row.get(0))
}

/// The key of a count: its SQL, then each bound value tagged with its type.
pub(crate) fn key(sql: &str, params: &[SqlOut]) -> String {
    let mut key = String::with_capacity(sql.len() + 16 * params.len());
    key.push_str(sql);
    for param in params {
        key.push('\u{0}');
        match param {
            SqlOut::Null => key.push('n'),
            SqlOut::Integer(i) => {
                key.push('i');
                key.push_str(&i.to_string());
            }
            SqlOut::Real(r) => {
                key.push('r');
                key.push_str(&r.to_bits().to_string());
            }
            SqlOut::Text(t) => {
                key.push('t');
                key.push_str(&t.len().to_string());
                key.push(':');
                key.push_str(t);
            }
            SqlOut::Blob(b) => {
                key.push('b');
                key.push_str(&b.len().to_string());
                key.push(':');
                for byte in b {
                    key.push_str(&format!("{byte:02x}"));
                }
            }
        }
    }
    key
}

/// `SELECT COUNT(*) …` (`sql`, with `params`) on a reader connection, answered from memory
/// when the same count was made at the database's current version.
pub(crate) fn count(conn: &Connection, sql: &str, params: Vec<SqlOut>) -> rusqlite::Result<i64> {
    let key = key(sql, &params);
    if key.len() > MAX_KEY_BYTES {
        return run(conn, sql, params);
    }
    let before = data_version(conn)?;
    let known = COUNTS.with(|counts| {
        counts
            .borrow()
            .entries
            .get(&key)
            .and_then(|(version, n)| (*version == before).then_some(*n))
    });
    if let Some(n) = known {
        #[cfg(test)]
        THREAD_HITS.with(|hits| hits.set(hits.get() + 1));
        metrics::counter!("plinth_store_count_cache_hits_total").increment(1);
        return Ok(n);
    }
    let n = run(conn, sql, params)?;
    if data_version(conn)? == before {
        COUNTS.with(|counts| {
            let mut counts = counts.borrow_mut();
            if counts.entries.insert(key.clone(), (before, n)).is_none() {
                counts.order.push_back(key);
                while counts.order.len() > ENTRIES {
                    if let Some(oldest) = counts.order.pop_front() {
                        counts.entries.remove(&oldest);
                    }
                }
            }
        });
    }
    Ok(n)
}

fn run(conn: &Connection, sql: &str, params: Vec<SqlOut>) -> rusqlite::Result<i64> {
    conn.prepare_cached(sql)?
        .query_row(params_from_iter(params), |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> usize {
        COUNTS.with(|counts| counts.borrow().entries.len())
    }

    #[test]
    fn the_cache_keeps_its_newest_entries_and_skips_long_keys() {
        // A thread of its own: the cache is per thread.
        std::thread::spawn(|| {
            let conn = Connection::open_in_memory().expect("opens");
            conn.execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3);")
                .expect("table");
            let sql = "SELECT COUNT(*) FROM t WHERE n <= ?";
            for n in 0..(ENTRIES as i64 + 44) {
                let counted = count(&conn, sql, vec![SqlOut::Integer(n)]).expect("counts");
                assert_eq!(counted, n.clamp(0, 3));
            }
            assert_eq!(entries(), ENTRIES, "bounded at {ENTRIES}");
            // The newest is answered from memory; the oldest was dropped.
            let hits = THREAD_HITS.with(std::cell::Cell::get);
            count(&conn, sql, vec![SqlOut::Integer(ENTRIES as i64 + 43)]).expect("counts");
            assert_eq!(THREAD_HITS.with(std::cell::Cell::get), hits + 1);
            let hits = THREAD_HITS.with(std::cell::Cell::get);
            count(&conn, sql, vec![SqlOut::Integer(0)]).expect("counts");
            assert_eq!(
                THREAD_HITS.with(std::cell::Cell::get),
                hits,
                "the oldest entry was evicted"
            );
            // A key past the bound is never kept.
            let long = "x".repeat(MAX_KEY_BYTES);
            let before = entries();
            let sql = "SELECT COUNT(*) FROM t WHERE ? <> ''";
            assert_eq!(
                count(&conn, sql, vec![SqlOut::Text(long.clone())]).expect("counts"),
                3
            );
            assert_eq!(
                count(&conn, sql, vec![SqlOut::Text(long)]).expect("counts"),
                3
            );
            assert_eq!(entries(), before, "long keys are not kept");
        })
        .join()
        .expect("the test thread");
    }
}
