//! Marks on record reads, so that an update can skip reading its row a second time.
//!
//! An update reads its row before the write (for the rules and the would-be row, on a reader)
//! and, for atomicity, again inside the write's transaction, where another write may have
//! changed it in between. The second read (and the second application of the patch to it)
//! was a fifth of an update's instructions. It is skipped when the store can tell that the row
//! is the same physical row, unchanged since the first read:
//!
//! - **Writes of this process.** The writer's update hook gives the table and rowid of every
//!   row it inserts, updates or deletes (a hook's raw SQL, triggers and cascades included);
//!   each hashes to one of [`SLOTS`] slots, noted as pending on the writer's thread. The WAL
//!   hook, which runs once a commit is visible to readers, stamps each pending slot with the
//!   commit's generation, then publishes that generation. A reader notes the generation
//!   before it reads (the mark), and reads the rowid with the row. The row is unchanged if its
//!   slot's stamp is not newer than the mark and it is not pending in the open transaction
//!   (an earlier write of the same group). A transaction rolled back leaves its slots pending
//!   until the next commit stamps them: a write that did not happen only voids marks.
//! - **Rows changed without the update hook** (a conflicting row deleted by `REPLACE`, the
//!   truncate optimisation, `VACUUM` renumbering rowids): the update then names the row by
//!   rowid and id together and must change exactly it; a row gone or moved changes nothing and
//!   the update runs the long way. A row put back at the same rowid is an insert, which the
//!   hook sees.
//! - **Other processes' commits** are found as the kept auth records find them (the WAL
//!   index's commit counter, `auth_cache.rs`): one found voids every mark taken before it, and
//!   the write's own check wants the counter where this process left it.
//! - **Schema changes**: the update's collection must be the writer's current one.
//! - **Another store** (a restore opens a new one): a mark carries its store's number.
//!
//! More slots changed in one transaction than [`MAX_PENDING`] void every mark taken before
//! it commits. Two rows sharing a slot only cost a second read.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::{Collection, ReadMark};

/// Slots rows hash into (a power of two): 128 KiB of stamps.
pub(crate) const SLOTS: usize = 1 << 14;
/// Slots one transaction may change before it voids every mark instead.
pub(crate) const MAX_PENDING: usize = 4096;

/// Numbers the stores of this process, so that a mark is only used by its own.
static STORES: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Slots changed since the last commit (the writer's thread only).
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

struct Pending {
    bits: Box<[u64; SLOTS / 64]>,
    list: Vec<u16>,
    overflow: bool,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            bits: Box::new([0; SLOTS / 64]),
            list: Vec::new(),
            overflow: false,
        }
    }
}

impl Pending {
    fn has(&self, slot: usize) -> bool {
        self.overflow || self.bits[slot / 64] & (1 << (slot % 64)) != 0
    }
}

/// The slot of row `rowid` of `table` (SQLite names are case-insensitive; the update hook
/// gives a table's name as declared).
pub(crate) fn slot(table: &str, rowid: i64) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in table.bytes() {
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= rowid as u64;
    hash = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (hash >> 40) as usize & (SLOTS - 1)
}

/// The writer's update hook: row `rowid` of `table` changed in the open transaction.
pub(crate) fn note_row(table: &str, rowid: i64) {
    let slot = slot(table, rowid);
    PENDING.with(|pending| {
        let Ok(mut pending) = pending.try_borrow_mut() else {
            return;
        };
        let pending = &mut *pending;
        if pending.overflow {
            return;
        }
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if pending.bits[word] & bit != 0 {
            return;
        }
        if pending.list.len() >= MAX_PENDING {
            pending.overflow = true;
            return;
        }
        pending.bits[word] |= bit;
        pending.list.push(slot as u16);
    });
}

pub(crate) struct RowMarks {
    store: u64,
    /// Commits of this process's writer seen by its WAL hook, and voids.
    generation: AtomicU64,
    /// Marks older than this are void.
    floor: AtomicU64,
    /// The generation at which a row of each slot last changed.
    slots: Box<[AtomicU64]>,
}

impl RowMarks {
    pub(crate) fn new() -> RowMarks {
        RowMarks {
            store: STORES.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(1),
            floor: AtomicU64::new(0),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Taken before reading row `rowid` (read with it): the mark of that read.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn mark(
        &self,
        generation: u64,
        rowid: i64,
        collection: &Arc<Collection>,
    ) -> ReadMark {
        ReadMark {
            store: self.store,
            generation,
            row: rowid,
            collection: Arc::clone(collection),
        }
    }

    /// Every mark taken so far is void (another process committed, or what a commit changed
    /// is not known).
    pub(crate) fn void_all(&self) {
        let next = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.floor.fetch_max(next, Ordering::SeqCst);
    }

    /// The writer's WAL hook, after each of its commits: stamps the slots the transaction
    /// changed (before the generation is published, so a mark never postdates a stamp it
    /// should have seen). `clean` is false when a commit of another process may have come
    /// in between.
    pub(crate) fn committed(&self, clean: bool) {
        let next = self.generation.load(Ordering::SeqCst) + 1;
        let mut all = !clean;
        PENDING.with(|pending| {
            let Ok(mut pending) = pending.try_borrow_mut() else {
                all = true;
                return;
            };
            let pending = &mut *pending;
            for slot in pending.list.drain(..) {
                let slot = usize::from(slot);
                self.slots[slot].store(next, Ordering::SeqCst);
                pending.bits[slot / 64] = 0;
            }
            if pending.overflow {
                pending.bits.fill(0);
                pending.overflow = false;
                all = true;
            }
        });
        if all {
            self.floor.fetch_max(next, Ordering::SeqCst);
        }
        self.generation.fetch_max(next, Ordering::SeqCst);
    }

    /// On the writer, inside the write's transaction: whether the row `mark` was taken on, of
    /// `table`, has not changed since (other processes' commits are the caller's check).
    pub(crate) fn unchanged(&self, mark: &ReadMark, table: &str) -> bool {
        if mark.store != self.store || mark.generation < self.floor.load(Ordering::SeqCst) {
            return false;
        }
        let slot = slot(table, mark.row);
        if self.slots[slot].load(Ordering::SeqCst) > mark.generation {
            return false;
        }
        PENDING.with(|pending| pending.try_borrow().is_ok_and(|p| !p.has(slot)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection() -> Arc<Collection> {
        Arc::new(Collection::scaffold(domain::CollectionType::Base, "t"))
    }

    fn on_fresh_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        std::thread::scope(|scope| scope.spawn(f).join().expect("no panic"))
    }

    #[test]
    fn a_mark_holds_until_its_row_changes_in_a_commit() {
        on_fresh_thread(|| {
            let c = collection();
            let marks = RowMarks::new();
            let mark = marks.mark(marks.generation(), 7, &c);
            assert!(marks.unchanged(&mark, "posts"));
            // Another row, another table: still good (unless they share the slot).
            if slot("posts", 8) != slot("posts", 7) {
                note_row("posts", 8);
                assert!(marks.unchanged(&mark, "posts"));
            }
            // Changed in the open transaction: pending, not good.
            note_row("POSTS", 7);
            assert!(!marks.unchanged(&mark, "posts"));
            marks.committed(true);
            assert!(!marks.unchanged(&mark, "posts"), "stamped after the mark");
            // A mark taken after the commit is good.
            let later = marks.mark(marks.generation(), 7, &c);
            assert!(marks.unchanged(&later, "posts"));
            // Not another store's mark.
            let other = RowMarks::new();
            assert!(!other.unchanged(&later, "posts"));
        });
    }

    #[test]
    fn an_unclean_commit_or_an_overflow_voids_every_mark() {
        on_fresh_thread(|| {
            let c = collection();
            let marks = RowMarks::new();
            let mark = marks.mark(marks.generation(), 1, &c);
            marks.committed(false);
            assert!(!marks.unchanged(&mark, "t"));
            let mark = marks.mark(marks.generation(), 1, &c);
            assert!(marks.unchanged(&mark, "t"));
            marks.void_all();
            assert!(!marks.unchanged(&mark, "t"));

            let mark = marks.mark(marks.generation(), 1, &c);
            // Rows in other slots than the mark's, until the bound is passed.
            let overflowed = || PENDING.with(|p| p.borrow().overflow);
            let mut rowid = 1_000_000;
            while !overflowed() && rowid < 2_000_000 {
                rowid += 1;
                if slot("t", rowid) != slot("t", 1) {
                    note_row("t", rowid);
                }
            }
            assert!(overflowed());
            assert!(
                !marks.unchanged(&mark, "t"),
                "overflowed: anything may be pending"
            );
            marks.committed(true);
            assert!(
                !marks.unchanged(&mark, "t"),
                "voided by the overflowed commit"
            );
            let after = marks.mark(marks.generation(), 1, &c);
            assert!(marks.unchanged(&after, "t"), "the pending set was emptied");
        });
    }
}
