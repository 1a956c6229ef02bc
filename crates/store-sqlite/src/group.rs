//! Group commit: record writes that arrive while the writer is busy share one transaction.
//!
//! Each write joins a shared queue and then queues a writer job as before. The first of those
//! jobs to run takes every write waiting in the queue (up to [`MAX_GROUP`]) and runs them in one
//! `BEGIN IMMEDIATE … COMMIT`, each inside a savepoint of its own: a write that fails is rolled
//! back to its savepoint and fails alone, while the others still commit. The later jobs find
//! their write already taken and do nothing. A write is answered only after the commit that
//! holds it returned, so an acknowledgement means what it meant before: committed under the
//! configured `synchronous` mode. What the group saves is per-commit work: one WAL append of
//! the pages the writes share and, with `synchronous=FULL`, one fsync for the whole group.
//!
//! No write waits for a group to fill: a group is what happened to queue up while the previous
//! job ran, so on an idle server each write commits alone, as soon as it arrives.
//!
//! A write that gives up before a group took it (its deadline passed while queued, the store
//! closed, or the caller went away) is withdrawn from the queue by its [`Ticket`], so nothing
//! runs that its caller was not told about.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use domain::{Schema, StoreError, WriteError, WriteOp, WriteResult};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::auth_cache::AuthCache;
use crate::counts::Counts;
use crate::{changelog, engine, records};

/// The most writes one transaction holds. A group runs on the writer thread as one job, so
/// this bounds how long other writer jobs (schema changes, interactive transactions) wait.
pub(crate) const MAX_GROUP: usize = 64;

/// A write's outcome, and whether a statement of it was interrupted at its deadline.
pub(crate) type Outcome = (Result<Vec<WriteResult>, WriteError>, bool);

/// Writes waiting for a writer job to take them.
#[derive(Default)]
pub(crate) struct Queue {
    waiting: Mutex<VecDeque<Waiting>>,
    next_id: AtomicU64,
    /// Transactions committed by groups (tests count them).
    #[cfg(test)]
    commits: AtomicU64,
    /// Groups run again with savepoints after a bare write failed (tests count them).
    #[cfg(test)]
    reruns: AtomicU64,
}

struct Waiting {
    id: u64,
    ops: Vec<WriteOp>,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Outcome>,
}

/// A caller's place in the queue: its answer, and its way out while no group has taken it.
pub(crate) struct Ticket<'q> {
    queue: &'q Queue,
    id: u64,
    reply: oneshot::Receiver<Outcome>,
}

impl Queue {
    /// Adds a write to the queue; the caller then queues a writer job running [`run`].
    pub(crate) fn join(&self, ops: Vec<WriteOp>, deadline: Option<Instant>) -> Ticket<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.lock().push_back(Waiting {
            id,
            ops,
            deadline,
            reply,
        });
        Ticket {
            queue: self,
            id,
            reply: answer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the oldest waiting writes, at most [`MAX_GROUP`].
    fn take(&self) -> Vec<Waiting> {
        let mut waiting = self.lock();
        let n = waiting.len().min(MAX_GROUP);
        waiting.drain(..n).collect()
    }

    /// How many writes wait for a group (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// How many group transactions committed (tests).
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// How many groups ran again with savepoints (tests).
    #[cfg(test)]
    pub(crate) fn reruns(&self) -> u64 {
        self.reruns.load(Ordering::Relaxed)
    }
}

impl Ticket<'_> {
    /// Takes the write out of the queue if no group has taken it yet; says whether it did
    /// (then it never runs). When it did not, a group holds the write and will answer.
    pub(crate) fn withdraw(&self) -> bool {
        let mut waiting = self.queue.lock();
        match waiting.iter().position(|w| w.id == self.id) {
            Some(at) => {
                waiting.remove(at);
                true
            }
            None => false,
        }
    }

    /// Waits for the group that took the write to answer. `None` when it never will: the
    /// writer job running the group panicked (its transaction was rolled back) or the store
    /// stopped.
    pub(crate) async fn outcome(&mut self) -> Option<Outcome> {
        (&mut self.reply).await.ok()
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        // A caller that went away before a group took its write: the write must not run.
        self.withdraw();
    }
}

/// Runs on the writer thread: takes the waiting writes and commits them as one transaction,
/// then calls `after_commit` (change announcements, the change log's budget) and answers each.
/// Does nothing when an earlier group already took every write.
///
/// **Savepoints only where a failure needs one.** A savepoint costs every write that has one
/// a copy of each page it changes (SQLite's sub-journal, in memory) and two statements: some
/// 9,000 instructions a create, 5 % of it. Most writes need none: a single create without a
/// guard, or a single update, fails before it changes anything (a relation or unique check,
/// its guard on the row read first, its `apply`), so its failure undoes nothing. These run
/// bare; writes of several operations, deletes (cascades) and guarded creates (the guard is
/// checked on the inserted row) keep their savepoint. A bare write that fails is checked: the
/// connection's change count (SQLite counts every row an `INSERT`, `UPDATE` or `DELETE`
/// changed, triggers included) must not have moved and the transaction must still be open
/// (SQLite rolls back the whole transaction when a write statement is interrupted at its
/// deadline). When that does not hold (an I/O error, a panic, an interrupt after the row was
/// written), the transaction is rolled back and the whole group runs again from its start,
/// every write in a savepoint, as before; the operations are kept as they were for that
/// ([`records::run_ops`] borrows them) and an update's `apply` runs again on the row as it
/// then is. So a group runs at most twice, and what is committed and answered is only ever
/// the last run.
pub(crate) fn run(
    conn: &Connection,
    queue: &Queue,
    schema: &Schema,
    counts: &Counts,
    marks: &AuthCache,
    after_commit: impl FnOnce(),
) {
    let mut group = queue.take();
    if group.is_empty() {
        return;
    }
    // Each write runs under its own deadline, set below; the job's own is not theirs.
    engine::arm_deadline(None);
    let pending = changelog::pending();
    let pass = match attempt(conn, &mut group, schema, counts, marks, false) {
        Some(pass) => pass,
        None => {
            changelog::set_pending(pending);
            #[cfg(test)]
            queue.reruns.fetch_add(1, Ordering::Relaxed);
            match attempt(conn, &mut group, schema, counts, marks, true) {
                Some(pass) => pass,
                // Unreachable: with every write in a savepoint no run is abandoned.
                None => Pass::failed(group.len(), "the group of writes could not run"),
            }
        }
    };
    let Pass {
        results,
        carry,
        broken,
    } = pass;
    let committed = match (&broken, carry) {
        (Some(error), _) => Err(error.clone()),
        (None, Some(mut carry)) if results.iter().any(|(result, _)| result.is_ok()) => {
            carry.finish(conn);
            execute(conn, "COMMIT")
                .map_err(|e| e.to_string())
                .map(|()| carry)
        }
        // Every write failed: nothing to keep. (Only successful writes read this error.)
        _ => Err("nothing to commit".to_owned()),
    };
    if committed.is_err()
        && !conn.is_autocommit()
        && let Err(error) = conn.execute_batch("ROLLBACK")
    {
        tracing::error!(%error, "cannot roll back a failed group of writes");
    }
    let committed = match committed {
        Ok(carry) => {
            let kept = results.iter().filter(|(r, _)| r.is_ok()).count();
            metrics::histogram!("plinth_store_group_commit_writes").record(kept as f64);
            #[cfg(test)]
            queue.commits.fetch_add(1, Ordering::Relaxed);
            counts.commit(carry);
            after_commit();
            Ok(())
        }
        Err(error) => Err(error),
    };
    for (write, (result, interrupted)) in group.into_iter().zip(results) {
        let last = write.ops.len().saturating_sub(1);
        let outcome = match (result, &committed) {
            // The write succeeded, but the transaction holding it was not committed.
            (Ok(_), Err(error)) => internal_failure(last, error),
            (result, _) => result,
        };
        let _ = write.reply.send((outcome, interrupted));
    }
}

/// One run of a group: each write's result (and whether a statement of it was interrupted),
/// the counts carried forward, and why the transaction is in no known state, if it is not.
struct Pass {
    results: Vec<(Result<Vec<WriteResult>, WriteError>, bool)>,
    /// `None` when the transaction never began.
    carry: Option<crate::counts::Carry>,
    broken: Option<String>,
}

impl Pass {
    fn failed(writes: usize, error: &str) -> Pass {
        Pass {
            results: (0..writes)
                .map(|_| (internal_failure(0, error), false))
                .collect(),
            carry: None,
            broken: Some(error.to_owned()),
        }
    }
}

/// A write's failure with `error` at operation `index`, for what is the group's fault, not
/// the write's (a savepoint or the transaction that could not be opened, closed or committed).
fn internal_failure(index: usize, error: &str) -> Result<Vec<WriteResult>, WriteError> {
    Err(WriteError {
        index,
        error: StoreError::Internal(error.to_owned()),
    })
}

/// Whether a write needs a savepoint of its own to fail alone: it may fail after changing
/// something (see [`run`]).
fn needs_savepoint(ops: &[WriteOp]) -> bool {
    !matches!(
        ops,
        [WriteOp::Create { guard: None, .. }] | [WriteOp::Update { .. }]
    )
}

/// Runs the group in one transaction, from `BEGIN IMMEDIATE` to just before `COMMIT`; every
/// write in a savepoint when `savepoints`, else only those that need one. `None` when a bare
/// write failed after changing something: the transaction is then rolled back, and the group
/// must run again with savepoints.
fn attempt(
    conn: &Connection,
    group: &mut [Waiting],
    schema: &Schema,
    counts: &Counts,
    marks: &AuthCache,
    savepoints: bool,
) -> Option<Pass> {
    if let Err(error) = execute(conn, "BEGIN IMMEDIATE") {
        return Some(Pass::failed(group.len(), &error.to_string()));
    }
    // Kept counts of the collections these writes touch, carried forward with them.
    let mut carry = counts.begin(conn, group.iter().flat_map(|write| write.ops.iter()));
    // Alone in its transaction, a write needs no savepoint: its failure rolls back the whole.
    let alone = group.len() == 1;
    let mut results = Vec::with_capacity(group.len());
    // Set when opening or closing a savepoint failed: the transaction is then in no known
    // state, so nothing of it is kept.
    let mut broken: Option<String> = None;
    for write in group.iter_mut() {
        if let Some(error) = &broken {
            results.push((internal_failure(0, error), false));
            continue;
        }
        if write.deadline.is_some_and(|d| Instant::now() >= d) {
            let timed_out = Err(WriteError {
                index: 0,
                error: StoreError::TimedOut,
            });
            results.push((timed_out, false));
            continue;
        }
        let mark = changelog::pending();
        let savepoint = !alone && (savepoints || needs_savepoint(&write.ops));
        if savepoint && let Err(error) = execute(conn, "SAVEPOINT grouped") {
            let error = error.to_string();
            results.push((internal_failure(0, &error), false));
            broken = Some(error);
            continue;
        }
        let changes = conn.total_changes();
        let probe = carry.before(conn, &write.ops);
        engine::arm_deadline(write.deadline);
        // A panic (in an update's `apply`, say) fails its own write, not the group's.
        let ops = &mut write.ops;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            records::run_ops(conn, schema, ops, Some(marks))
        }))
        .unwrap_or_else(|_| {
            tracing::error!("a record write panicked; it was rolled back");
            Err(WriteError {
                index: 0,
                error: StoreError::Internal("the write panicked".into()),
            })
        });
        let interrupted = engine::end_deadline();
        if result.is_ok()
            && let Some(probe) = probe
        {
            carry.after(conn, probe);
        }
        if savepoint {
            let closed = if result.is_ok() {
                execute(conn, "RELEASE grouped")
            } else {
                execute(conn, "ROLLBACK TO grouped").and_then(|()| execute(conn, "RELEASE grouped"))
            };
            if let Err(error) = closed {
                broken = Some(error.to_string());
            }
        } else if result.is_err()
            && !alone
            && (conn.total_changes() != changes || conn.is_autocommit())
        {
            // A bare write failed after changing something: nothing of this run is kept.
            if !conn.is_autocommit()
                && let Err(error) = conn.execute_batch("ROLLBACK")
            {
                tracing::error!(%error, "cannot roll back a group of writes to run it again");
                results.push((result, interrupted));
                broken = Some(error.to_string());
                continue;
            }
            return None;
        }
        if result.is_err() {
            changelog::set_pending(mark);
        }
        results.push((result, interrupted));
    }
    Some(Pass {
        results,
        carry: Some(carry),
        broken,
    })
}

/// Runs one statement of the group's own (`BEGIN`, `SAVEPOINT`, `COMMIT`…) from the statement
/// cache, so it is not parsed again for every group.
fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}
