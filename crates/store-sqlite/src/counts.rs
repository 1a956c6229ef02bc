//! Exact totals kept up to date across writes, shared by every connection of a store.
//!
//! **Versions.** Each collection table carries three triggers (after insert, update and
//! delete) that add one to the collection's row in `_plinth_versions`, whoever writes: this
//! store's writer, a hook's raw SQL, another process with the `sqlite3` shell. A schema change
//! adds one to every row in its own transaction. So a collection's version moves with every
//! committed change to its rows, and two snapshots with the same version hold the same rows.
//!
//! **Reading.** A count whose filter reads only the counted row (no subquery: the rules and
//! filters that compare the row's own columns with bound values) is kept in one map for the
//! whole store, with the version read in the same snapshot as the count. A later list in a
//! snapshot of the same version gets it from memory. Counts that read other rows (relation
//! paths, `@collection`) go to the per-connection cache in `count_cache` instead.
//!
//! **Writing.** When a group of record writes (`group.rs`) touches a collection with kept
//! counts, it asks each kept count, for each record a write names, whether that row matched
//! before the write and after it (`SELECT COUNT(*) … WHERE (filter) AND id = ?`, a primary-key
//! probe), and adds the differences. It then checks that the collection's version moved by
//! exactly the number of row changes its writes declared: any other change (a relation
//! cascade, a trigger of the user's) leaves the difference unexplained, and the counts are not
//! carried forward. On commit, a count kept at the version the group started from moves to the
//! version it ended at, with its difference. A count nobody carried forward keeps its old
//! version and is counted again on its next use. So every answer is the count at the reader's
//! snapshot: never estimated, never stale.
//!
//! Bounds: [`ENTRIES`] counts per store (least recently used dropped first), keys up to
//! `count_cache::MAX_KEY_BYTES`, and at most [`CARRIED_PER_COLLECTION`] counts carried per
//! collection per group (the most recently used; the others are counted again when next
//! asked), which bounds what a write pays for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use domain::sql::quote_ident;
use domain::{Collection, Schema, StoreError, WriteOp};
use rusqlite::types::Value as SqlOut;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::internal;

/// The table of collection versions.
pub(crate) const VERSIONS: &str = "_plinth_versions";
/// Counts kept per store.
pub(crate) const ENTRIES: usize = 512;
/// Counts of one collection a group of writes carries forward.
pub(crate) const CARRIED_PER_COLLECTION: usize = 16;
/// Primary-key probes one group may spend carrying counts (a large batch of writes stops
/// carrying past it: its counts are made again when next asked).
pub(crate) const MAX_PROBES: usize = 4096;

/// One kept count, which was `count` at `version` of `collection`.
struct Entry {
    collection: String,
    probe: Arc<Probe>,
    count: i64,
    version: i64,
    used: u64,
}

/// Whether one row matches a kept count: `SELECT COUNT(*) … WHERE (filter) AND id = ?`, with
/// the filter's values (the row's id is bound after them). Made once per kept count.
struct Probe {
    sql: String,
    params: Vec<SqlOut>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    clock: u64,
}

/// The store's kept counts.
#[derive(Default)]
pub(crate) struct Counts {
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    carried: AtomicU64,
}

/// Whether a count with this filter can be kept here: its SQL reads no other row.
pub(crate) fn row_local(filter: Option<&str>) -> bool {
    let mentions = |sql: &str, word: &[u8]| {
        sql.as_bytes()
            .windows(word.len())
            .any(|window| window.eq_ignore_ascii_case(word))
    };
    filter.is_none_or(|sql| !mentions(sql, b"SELECT") && !mentions(sql, b"RANDOM("))
}

fn version(conn: &Connection, collection: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT v FROM \"_plinth_versions\" WHERE collection = ?")?
        .query_row([collection], |row| row.get(0))
        .optional()
}

impl Counts {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts answered from memory, counted, and carried forward by writes, since open.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.carried.load(Ordering::Relaxed),
        )
    }

    /// `sql` (`SELECT COUNT(*) FROM` `collection`'s table, `WHERE filter` when there is one)
    /// with `params`, on `conn`, which must be inside a read transaction so the version and the
    /// count come from one snapshot.
    pub(crate) fn count(
        &self,
        conn: &Connection,
        collection: &Collection,
        sql: &str,
        filter: Option<&str>,
        params: Vec<SqlOut>,
    ) -> rusqlite::Result<i64> {
        let key = crate::count_cache::key(sql, &params);
        // No version (a table this store did not set up): counted every time.
        let Ok(Some(version)) = version(conn, &collection.id) else {
            return run(conn, sql, params);
        };
        if key.len() > crate::count_cache::MAX_KEY_BYTES {
            return run(conn, sql, params);
        }
        {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            if let Some(entry) = inner.entries.get_mut(&key)
                && entry.version == version
            {
                entry.used = now;
                self.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("plinth_store_count_cache_hits_total").increment(1);
                return Ok(entry.count);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let count = run(conn, sql, params.clone())?;
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        // A newer version kept meanwhile by another reader stays.
        if inner
            .entries
            .get(&key)
            .is_none_or(|entry| entry.version <= version)
        {
            inner.entries.insert(
                key,
                Entry {
                    collection: collection.id.clone(),
                    probe: Arc::new(Probe {
                        sql: probe_sql(&quote_ident(&collection.name), filter),
                        params,
                    }),
                    count,
                    version,
                    used,
                },
            );
            if inner.entries.len() > ENTRIES {
                evict(&mut inner);
            }
        }
        Ok(count)
    }

    /// What a group of writes carries forward, taken inside its transaction before the first
    /// write: for each collection the writes name that has counts kept at its current
    /// version, those counts (the most recently used few).
    pub(crate) fn begin<'w>(
        &self,
        conn: &Connection,
        ops: impl Iterator<Item = &'w WriteOp>,
    ) -> Carry {
        let mut carry = Carry::default();
        let mut kept: HashMap<&str, Vec<(u64, String, Tracked)>> = HashMap::new();
        let named: Vec<&str>;
        {
            let inner = self.lock();
            // Nothing kept (every write of a store nobody lists with totals): nothing to do.
            if inner.entries.is_empty() {
                return carry;
            }
            let mut collections: Vec<&str> = ops.map(|op| op_target(op).0).collect();
            collections.sort_unstable();
            collections.dedup();
            named = collections;
            for (key, entry) in &inner.entries {
                if let Ok(at) = named.binary_search(&entry.collection.as_str()) {
                    kept.entry(named[at]).or_default().push((
                        entry.used,
                        key.clone(),
                        Tracked {
                            probe: Arc::clone(&entry.probe),
                            from: entry.version,
                            delta: 0,
                        },
                    ));
                }
            }
        }
        for (collection, mut entries) in kept {
            let Ok(Some(start)) = version(conn, collection) else {
                continue;
            };
            entries.retain(|(_, _, tracked)| tracked.from == start);
            entries.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.0));
            entries.truncate(CARRIED_PER_COLLECTION);
            if entries.is_empty() {
                continue;
            }
            carry.collections.insert(
                collection.to_owned(),
                Carried {
                    start,
                    declared: 0,
                    clean: true,
                    end: None,
                    counts: entries.into_iter().map(|(_, k, t)| (k, t)).collect(),
                },
            );
        }
        carry
    }

    /// Forgets every kept count: after a schema change, which may have made a version row
    /// again (at 0) for a collection whose row was deleted from outside.
    pub(crate) fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Moves the carried counts to the versions their collections reached, once the group's
    /// transaction committed.
    pub(crate) fn commit(&self, carry: Carry) {
        if carry.collections.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for carried in carry.collections.into_values() {
            let Some(end) = carried.end.filter(|_| carried.clean) else {
                continue;
            };
            for (key, tracked) in carried.counts {
                if let Some(entry) = inner.entries.get_mut(&key)
                    && entry.version == carried.start
                {
                    entry.count += tracked.delta;
                    entry.version = end;
                    self.carried.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("plinth_store_counts_carried_total").increment(1);
                }
            }
        }
    }
}

fn evict(inner: &mut Inner) {
    // The oldest quarter goes at once, so eviction runs rarely.
    let mut ages: Vec<u64> = inner.entries.values().map(|e| e.used).collect();
    let cut = ages.len() / 4;
    let (_, limit, _) = ages.select_nth_unstable(cut);
    let limit = *limit;
    inner.entries.retain(|_, entry| entry.used > limit);
}

fn probe_sql(table: &str, filter: Option<&str>) -> String {
    let id = quote_ident("id");
    match filter {
        Some(filter) => {
            format!("SELECT COUNT(*) FROM {table} WHERE ({filter}) AND {table}.{id} = ?")
        }
        None => format!("SELECT COUNT(*) FROM {table} WHERE {table}.{id} = ?"),
    }
}

fn run(conn: &Connection, sql: &str, params: Vec<SqlOut>) -> rusqlite::Result<i64> {
    conn.prepare_cached(sql)?
        .query_row(params_from_iter(params), |row| row.get(0))
}

/// The collection id and record id a write operation names.
fn op_target(op: &WriteOp) -> (&str, &str) {
    match op {
        WriteOp::Create {
            collection, data, ..
        } => (
            collection.id.as_str(),
            data.get("id").and_then(|v| v.as_str()).unwrap_or_default(),
        ),
        WriteOp::Update { collection, id, .. } | WriteOp::Delete { collection, id, .. } => {
            (collection.id.as_str(), id.as_str())
        }
    }
}

/// What a group carries forward: per collection id, its counts and their differences so far.
#[derive(Default)]
pub(crate) struct Carry {
    collections: HashMap<String, Carried>,
    probes: usize,
}

struct Carried {
    /// The collection's version when the group began.
    start: i64,
    /// Row changes the group's committed writes declared on the collection.
    declared: i64,
    /// Whether every difference was computed (no probe failed).
    clean: bool,
    counts: Vec<(String, Tracked)>,
    end: Option<i64>,
}

struct Tracked {
    probe: Arc<Probe>,
    from: i64,
    delta: i64,
}

/// One write's share of a [`Carry`]: what its rows matched before it ran.
pub(crate) struct WriteProbe {
    /// (collection id, record id, before: a 0/1 per carried count of that collection).
    rows: Vec<(String, String, Vec<i64>)>,
    declared: Vec<(String, i64)>,
    failed: Vec<String>,
}

impl Carry {
    fn probe(conn: &Connection, tracked: &Tracked, id: &str) -> rusqlite::Result<i64> {
        let mut params = tracked.probe.params.clone();
        params.push(SqlOut::Text(id.to_owned()));
        run(conn, &tracked.probe.sql, params)
    }

    /// Spends `n` probes of the budget; past it, nothing is carried any more.
    fn spend(&mut self, n: usize) -> bool {
        self.probes += n;
        if self.probes <= MAX_PROBES {
            return true;
        }
        for carried in self.collections.values_mut() {
            carried.clean = false;
        }
        false
    }

    /// Before a write runs (inside its savepoint): whether each row it names matches each
    /// carried count of its collection.
    pub(crate) fn before(&mut self, conn: &Connection, ops: &[WriteOp]) -> Option<WriteProbe> {
        if self.collections.is_empty() || self.probes > MAX_PROBES {
            return None;
        }
        let needed: usize = ops
            .iter()
            .filter_map(|op| self.collections.get(op_target(op).0))
            .map(|carried| 2 * carried.counts.len())
            .sum();
        if !self.spend(needed) {
            return None;
        }
        let mut probe = WriteProbe {
            rows: Vec::new(),
            declared: Vec::new(),
            failed: Vec::new(),
        };
        for op in ops {
            let (collection, id) = op_target(op);
            let Some(carried) = self.collections.get(collection) else {
                continue;
            };
            match probe.declared.iter_mut().find(|(c, _)| c == collection) {
                Some((_, n)) => *n += 1,
                None => probe.declared.push((collection.to_owned(), 1)),
            }
            if probe
                .rows
                .iter()
                .any(|(c, i, _)| c == collection && i == id)
            {
                continue;
            }
            let matched: rusqlite::Result<Vec<i64>> = carried
                .counts
                .iter()
                .map(|(_, tracked)| Self::probe(conn, tracked, id))
                .collect();
            match matched {
                Ok(matched) => probe
                    .rows
                    .push((collection.to_owned(), id.to_owned(), matched)),
                Err(_) => probe.failed.push(collection.to_owned()),
            }
        }
        Some(probe)
    }

    /// After a write succeeded (before its savepoint is released): adds what its rows match
    /// now, less what they matched before, to the carried counts.
    pub(crate) fn after(&mut self, conn: &Connection, probe: WriteProbe) {
        for collection in probe.failed {
            if let Some(carried) = self.collections.get_mut(&collection) {
                carried.clean = false;
            }
        }
        for (collection, n) in probe.declared {
            if let Some(carried) = self.collections.get_mut(&collection) {
                carried.declared += n;
            }
        }
        for (collection, id, before) in probe.rows {
            let Some(carried) = self.collections.get_mut(&collection) else {
                continue;
            };
            let now: rusqlite::Result<Vec<i64>> = carried
                .counts
                .iter()
                .map(|(_, tracked)| Self::probe(conn, tracked, &id))
                .collect();
            match now {
                Ok(now) => {
                    for ((_, tracked), (now, before)) in
                        carried.counts.iter_mut().zip(now.into_iter().zip(before))
                    {
                        tracked.delta += now - before;
                    }
                }
                Err(_) => carried.clean = false,
            }
        }
    }

    /// After the last write, before the commit: each collection's version must have moved by
    /// exactly the row changes the writes declared, else something else changed its rows.
    pub(crate) fn finish(&mut self, conn: &Connection) {
        for (collection, carried) in &mut self.collections {
            match version(conn, collection) {
                Ok(Some(end)) if end - carried.start == carried.declared => {
                    carried.end = Some(end);
                }
                _ => carried.clean = false,
            }
        }
    }
}

const EVENTS: [&str; 3] = ["INSERT", "UPDATE", "DELETE"];

/// The names of a collection's version triggers (after insert, update, delete).
pub(crate) fn trigger_names(collection: &str) -> [String; 3] {
    EVENTS.map(|event| format!("_plinth_v_{}_{collection}", event.to_ascii_lowercase()))
}

/// Gives every collection table its version triggers and every collection a version row, and
/// moves every version on (a schema change can change what any count counts). Runs inside the
/// transaction that opens the store or changes its schema.
///
/// A trigger only adds one to the row made here: an `UPDATE` by primary key costs a write
/// about 0.7 µs, where the upsert the triggers once ran (making a missing row) cost 3 µs and a
/// statement journal. A row deleted from outside is made again at the next open or schema
/// change; until then the collection's version reads as missing, and its counts are neither
/// kept nor carried. Triggers written by an earlier version (any other text) are replaced.
pub(crate) fn install(conn: &Connection, schema: &Schema) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS \"_plinth_versions\" (
            collection TEXT PRIMARY KEY NOT NULL,
            v          INTEGER NOT NULL
        ) WITHOUT ROWID;
        UPDATE \"_plinth_versions\" SET v = v + 1;",
    )
    .map_err(internal)?;
    let installed: HashMap<String, String> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '\\_plinth\\_v\\_%' ESCAPE '\\'",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
            })?
            .map(|row| row.map(|(name, sql)| (name, sql.unwrap_or_default())))
            .collect()
        })
        .map_err(internal)?;
    for collection in schema.all().iter().filter(|c| !c.is_view()) {
        conn.prepare_cached(
            "INSERT INTO \"_plinth_versions\" (collection, v) VALUES (?, 0)
             ON CONFLICT (collection) DO NOTHING",
        )
        .and_then(|mut stmt| stmt.execute([&collection.id]))
        .map_err(internal)?;
        for (event, name) in EVENTS.into_iter().zip(trigger_names(&collection.id)) {
            let sql = trigger_sql(collection, event, &name);
            match installed.get(&name) {
                Some(stored) if *stored == sql => continue,
                Some(_) => conn
                    .execute_batch(&format!("DROP TRIGGER {}", quote_ident(&name)))
                    .map_err(internal)?,
                None => {}
            }
            conn.execute_batch(&sql).map_err(internal)?;
        }
    }
    Ok(())
}

/// The `CREATE TRIGGER` statement of one of `collection`'s version triggers, as SQLite keeps
/// it in `sqlite_master` (so an installed trigger can be compared with it).
fn trigger_sql(collection: &Collection, event: &str, name: &str) -> String {
    format!(
        "CREATE TRIGGER {} AFTER {event} ON {} BEGIN \
         UPDATE \"_plinth_versions\" SET v = v + 1 WHERE collection = '{}'; END",
        quote_ident(name),
        quote_ident(&collection.name),
        collection.id.replace('\'', "''"),
    )
}
