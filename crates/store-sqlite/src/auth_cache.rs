//! Auth records by id, kept in memory for the token check every authenticated request makes.
//!
//! A request with a token reads its auth record (the token key, and the record the rules see
//! as `@request.auth`). Under a read load that read was about a sixth of a record view's CPU:
//! a read transaction begun and ended (two `fcntl` locks on the WAL index) and the row decoded.
//! So a record read by id without filters, of an auth collection, is kept here and handed out
//! again while nothing can have changed it:
//!
//! - **Writes of this process.** The writer connection's update hook notes the table of every
//!   row it inserts, updates or deletes (a hook's raw SQL and cascades included) as a bit of
//!   [`BUCKETS`] (a hash of the table name), and its WAL hook, which SQLite calls once a commit
//!   is visible to readers and before the statement that committed returns, moves each noted
//!   bucket's generation on. An entry is valid while its bucket's generation is the one read
//!   before the row was read; one read around a commit is not kept. So once a write has been
//!   acknowledged, no read gets the record as it was before it.
//! - **Schema changes.** An entry is only valid for the same `Arc<Collection>` it was read
//!   with; a changed collection is a new one.
//! - **Other processes** (the `sqlite3` shell, `plinth superuser update` while serving): the
//!   hooks do not see their commits, so every hand-out first reads the commit counter of the
//!   WAL index (`iChange` in the `-shm` file's header, which SQLite moves on by one at every
//!   commit, whoever commits): one load from SQLite's own mapping of that header, no system
//!   call and no lock (`wal_index.rs`). The writer's WAL hook notes the counter after each of
//!   its commits; when it moved by more than that commit, or a hand-out finds it anywhere but
//!   where this process left it, another process has committed, and every generation moves
//!   on (nothing kept is handed out again without being read anew).
//!
//! Bounded by [`MAX_ENTRIES`]; when full it is emptied (a cache of hot sessions fills again at
//! once).

use foldhash::HashMap;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use domain::record::Record;
use domain::{Collection, ReadMark};

use crate::row_marks::RowMarks;
use crate::wal_index::CommitCounter;

/// Generation buckets: tables hash into these; a write to one moves its bucket on.
pub(crate) const BUCKETS: usize = 64;
/// Entries kept at most.
pub(crate) const MAX_ENTRIES: usize = 4096;
/// The commit counter is not known (at start, or it could not be read).
pub(crate) const UNKNOWN: u64 = u64::MAX;

thread_local! {
    /// Buckets of the tables the writer's open transaction changed (the writer's thread only).
    static CHANGED: Cell<u64> = const { Cell::new(0) };
}

struct Entry {
    collection: Arc<Collection>,
    record: Arc<Record>,
    generation: u64,
}

/// What a reader notes before reading a row, to keep it afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    bucket: usize,
    generation: u64,
}

pub(crate) struct AuthCache {
    generations: [AtomicU64; BUCKETS],
    /// The WAL index's commit counter with every commit up to it accounted for in the
    /// generations ([`UNKNOWN`] before the first).
    known: AtomicU64,
    /// The WAL index's commit counter (`None`: not in WAL mode, or the store closed; nothing
    /// is then kept). Behind a lock only so that closing the store can let the mapping go
    /// while no read is under way.
    counter: RwLock<Option<CommitCounter>>,
    /// By collection id, then record id.
    entries: Mutex<Entries>,
    /// Marks on record reads (`row_marks.rs`), voided with the generations here.
    pub(crate) rows: RowMarks,
}

#[derive(Default)]
struct Entries {
    by_collection: HashMap<String, HashMap<String, Entry>>,
    len: usize,
}

/// The bucket of a table: its name's ASCII-lowercase FNV-1a hash (SQLite names are
/// case-insensitive; the update hook gives the name as declared).
pub(crate) fn bucket(table: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in table.bytes() {
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % BUCKETS as u64) as usize
}

/// The writer's update hook: notes that `table` changed in the open transaction.
pub(crate) fn note_change(table: &str) {
    CHANGED.set(CHANGED.get() | (1 << bucket(table)));
}

impl AuthCache {
    pub(crate) fn new(counter: Option<CommitCounter>) -> AuthCache {
        AuthCache {
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            known: AtomicU64::new(UNKNOWN),
            counter: RwLock::new(counter),
            entries: Mutex::default(),
            rows: RowMarks::new(),
        }
    }

    /// The WAL index's commit counter, as SQLite keeps it in the `-shm` file.
    fn change_counter(&self) -> Option<u64> {
        let counter = self.counter.read().unwrap_or_else(PoisonError::into_inner);
        counter.as_ref().map(|counter| u64::from(counter.read()))
    }

    /// Stops keeping records and lets the WAL index's mapping go (the store is closing): from
    /// here on every read goes to the database.
    pub(crate) fn close(&self) {
        let counter = self
            .counter
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(counter);
        self.bump_all();
    }

    fn bump_all(&self) {
        for generation in &self.generations {
            generation.fetch_add(1, Ordering::SeqCst);
        }
        self.rows.void_all();
    }

    /// The writer's WAL hook, after each of its commits (visible to readers, the committing
    /// statement not returned yet). `last` is the counter this hook saw after the writer's
    /// previous commit: one more now means no other commit came in between, and only the
    /// tables this transaction changed move on (a rolled-back savepoint's included, which
    /// only drops entries that were still good); anything else moves them all.
    pub(crate) fn committed(&self, last: &mut u64) {
        let changed = CHANGED.replace(0);
        let now = self.change_counter();
        match now {
            Some(now) if *last != UNKNOWN && now == (*last + 1) & u64::from(u32::MAX) => {
                for (i, generation) in self.generations.iter().enumerate() {
                    if changed & (1 << i) != 0 {
                        generation.fetch_add(1, Ordering::SeqCst);
                    }
                }
                self.rows.committed(true);
            }
            _ => {
                self.rows.committed(false);
                self.bump_all();
            }
        }
        *last = now.unwrap_or(UNKNOWN);
        self.known.store(*last, Ordering::SeqCst);
    }

    /// The record `id` of `collection`, if kept and still valid.
    pub(crate) fn get(&self, collection: &Arc<Collection>, id: &str) -> Option<Arc<Record>> {
        let now = self.change_counter()?;
        if now != self.known.load(Ordering::SeqCst) {
            // Another process committed (or this one's writer did, its hook not run yet).
            self.bump_all();
            self.known.store(now, Ordering::SeqCst);
            return None;
        }
        let generation = self.generations[bucket(&collection.name)].load(Ordering::SeqCst);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.by_collection.get(&collection.id)?.get(id)?;
        (entry.generation == generation && Arc::ptr_eq(&entry.collection, collection))
            .then(|| Arc::clone(&entry.record))
    }

    /// On the writer, inside a write's transaction: whether the row read under `mark`, of
    /// `table`, is unchanged since (`row_marks.rs`): no commit of another process since this
    /// process's last one (the counter is where this process left it), and none of this
    /// process's changed it.
    pub(crate) fn row_unchanged(&self, mark: &ReadMark, table: &str) -> bool {
        self.change_counter()
            .is_some_and(|now| now == self.known.load(Ordering::SeqCst))
            && self.rows.unchanged(mark, table)
    }

    /// Taken before reading a record of `collection`.
    pub(crate) fn ticket(&self, collection: &Collection) -> Ticket {
        let bucket = bucket(&collection.name);
        Ticket {
            bucket,
            generation: self.generations[bucket].load(Ordering::SeqCst),
        }
    }

    /// Keeps `record`, read after `ticket` was taken, unless its table may have changed since.
    pub(crate) fn put(&self, ticket: Ticket, collection: &Arc<Collection>, record: &Arc<Record>) {
        if self
            .counter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
            || self.generations[ticket.bucket].load(Ordering::SeqCst) != ticket.generation
        {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len >= MAX_ENTRIES {
            *entries = Entries::default();
        }
        let entry = Entry {
            collection: Arc::clone(collection),
            record: Arc::clone(record),
            generation: ticket.generation,
        };
        let replaced = entries
            .by_collection
            .entry(collection.id.clone())
            .or_default()
            .insert(record.id().to_owned(), entry);
        if replaced.is_none() {
            entries.len += 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len
    }
}
