//! WAL checkpoints beside the writer instead of on it.
//!
//! SQLite's automatic checkpoint runs on the connection that committed, right after the commit:
//! here the writer thread. A checkpoint copies up to a thousand pages from the WAL back into
//! the database file and syncs both files, so every few hundred writes the writer stopped for
//! milliseconds, mostly waiting for the disk, and every write queued behind it waited too.
//!
//! So the writer's WAL hook (which replaces SQLite's automatic checkpoint on that connection)
//! asks a thread of its own to checkpoint, on a connection of its own, in `PASSIVE` mode: it
//! copies what no reader still needs, takes no lock a writer or reader waits on, and never
//! waits itself. The end of the job is left to the writer. While the writer keeps appending, a
//! checkpoint on another connection never quite reaches the end of the WAL, and SQLite starts
//! the WAL over from its beginning only when a write begins with every frame copied back;
//! without that the file would grow for as long as the load lasts. So once a background round
//! has run and at most [`TAIL_FRAMES`] frames are left (or [`ROUNDS`] rounds have run), the
//! writer copies the rest itself, a short pass, and its next write starts the WAL over. From
//! twice the due length on (large transactions, or the thread falling behind) the writer waits
//! for a round under way to end and checkpoints itself, as SQLite would have, so the WAL never
//! grows much past that bound.
//!
//! SQLite syncs the database file only at the end of a checkpoint that reached the end of the
//! WAL, so the writer's short pass used to sync every page the thread's rounds had copied too
//! (a thousand and more, scattered over the file: 5 to 6 ms under the benchmark's creates once
//! the table held a few hundred thousand rows, every write waiting). The thread now syncs the
//! file after each round that copied frames, through a descriptor of its own (`DbFile`), and
//! the writer's pass syncs only its tail: 1 to 2 ms. Create p90 6.2 → 4.4-4.7 ms and p99
//! 12.6-14.2 → 9.1-12.7 ms at that size (two alternating rounds, one core).
//!
//! Measured against SQLite's automatic checkpoint (benchmark data, server on one core, three
//! 10 s runs in a row while the table grows by some 130,000 rows a run, builds alternating):
//! record creates 3 to 8 % more a second, p99 16 to 24 % lower (12.3-16.2 ms → 10.8-13.1 ms).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;
use tokio::sync::oneshot;

use crate::auth_cache::AuthCache;
use crate::engine::DbFile;

/// WAL frames (pages) from which a checkpoint is due unless the store's options say otherwise
/// ([`crate::SqliteOptions::wal_checkpoint_frames`]): 64 MiB with 4 KiB pages, sixteen times
/// SQLite's automatic default. A longer WAL copies less and syncs less: a page written again
/// before the checkpoint (a table's last leaf, the change log's, a leaf of the random-id index
/// that two writes hit) is copied into the database file once, and each sync writes back fewer
/// scattered pages. Measured in session 32 (server on one core, `/proc` CPU time, 10 s runs,
/// 4,000 and 16,000 frames alternating): a record create's kernel time 22.4 → 19.7 µs on a
/// table of 600,000 posts (three pairs) and 17.0 → 14.9 µs on 10,000 (two pairs), updates
/// unchanged (36.2-37.7 against 36.3-37.1 µs in all), p99 the same. Session 21 had moved it from
/// 1,000 to 4,000 for the same reason; a try at 8,000 then had seemed to make updates dearer,
/// which these runs did not show.
pub const DEFAULT_DUE_FRAMES: u32 = 16_000;

/// Frames still to copy up to which the writer finishes a checkpoint after a background round.
pub(crate) const TAIL_FRAMES: i32 = 256;

/// Background rounds per WAL after which the writer finishes whatever is left: on a disk whose
/// sync is slow the frames appended during one round may never drop under [`TAIL_FRAMES`].
pub(crate) const ROUNDS: u32 = 4;

/// The checkpoint thread's connection and when its rounds are due.
pub(crate) struct Checkpointer {
    pub(crate) conn: Connection,
    /// WAL frames from which a round is due.
    pub(crate) due_frames: u32,
}

/// What the writer's hook and the checkpoint thread share, under one lock.
#[derive(Debug, Default)]
struct State {
    /// The writer asked for a round that has not started yet.
    wanted: bool,
    /// The thread is checkpointing.
    running: bool,
    /// The engine is stopping: the thread exits.
    stopped: bool,
    /// Frames of the current WAL known to be copied back.
    copied: i32,
    /// Background rounds run on the current WAL.
    rounds: u32,
    /// Bumped each time the WAL starts over, so a round that ended around a restart does not
    /// report frames of the WAL before it.
    generation: u64,
    /// Checkpoints run since the start: by the thread, by the writer after the rounds, and by
    /// the writer past its bound.
    ran: [u64; 3],
    /// Syncs of the database file by the thread after its rounds.
    synced: u64,
}

#[derive(Debug)]
pub(crate) struct Checkpoints {
    /// WAL frames from which a round is due.
    due: i32,
    /// Frames from which the writer checkpoints itself, first waiting for a round under way to
    /// end (only one checkpoint runs at a time): twice `due`. A WAL holds at most this plus one
    /// transaction's pages.
    bound: i32,
    state: Mutex<State>,
    /// The thread waits here for a request.
    wake: Condvar,
    /// The writer waits here for a round to end (past its bound).
    idle: Condvar,
}

impl Checkpoints {
    /// Installs the hook on `writer` (which turns SQLite's automatic checkpoint off there) and
    /// starts the thread on the checkpointer's connection; `exits` gets a receiver that
    /// completes when the thread has closed it.
    pub(crate) fn start(
        writer: &mut Connection,
        Checkpointer { conn, due_frames }: Checkpointer,
        db_file: &DbFile,
        auth_cache: &Arc<AuthCache>,
        exits: &mut Vec<oneshot::Receiver<()>>,
    ) -> std::io::Result<Arc<Checkpoints>> {
        let checkpoints = Arc::new(Checkpoints::new(due_frames));
        let hook = Arc::clone(&checkpoints);
        let mut last = 0;
        let mut last_change = crate::auth_cache::UNKNOWN;
        let auth_cache = Arc::clone(auth_cache);
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames| {
                // The commit is visible to readers now; the committing statement has not
                // returned yet.
                auth_cache.committed(&mut last_change);
                hook.after_commit(frames, &mut last, || {
                    wal.checkpoint_v2(CheckpointMode::PASSIVE)
                });
                Ok(())
            }))
            .map_err(std::io::Error::other)?;
        let (exit_tx, exit_rx) = oneshot::channel();
        exits.push(exit_rx);
        let worker = Arc::clone(&checkpoints);
        let db_file = Arc::clone(db_file);
        thread::Builder::new()
            .name("plinth-sqlite-checkpoint".into())
            .spawn(move || {
                super::engine::schedule_as_batch();
                worker.run(&conn, &db_file);
                drop(conn);
                drop(db_file);
                let _ = exit_tx.send(());
            })?;
        Ok(checkpoints)
    }

    /// Checkpoints due from `due_frames` WAL frames (at least one), with the writer's own bound
    /// at twice that.
    fn new(due_frames: u32) -> Checkpoints {
        let due = i32::try_from(due_frames.max(1))
            .unwrap_or(i32::MAX / 2)
            .min(i32::MAX / 2);
        Checkpoints {
            due,
            bound: 2 * due,
            state: Mutex::default(),
            wake: Condvar::new(),
            idle: Condvar::new(),
        }
    }

    /// Tells the thread to exit once its current round (if any) is done.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_all();
    }

    /// Checkpoints run so far: by the thread, by the writer after the rounds, and by the writer
    /// past its bound.
    #[cfg(test)]
    pub(crate) fn ran(&self) -> [u64; 3] {
        self.lock().ran
    }

    /// Syncs of the database file the thread made after its rounds.
    #[cfg(test)]
    pub(crate) fn synced(&self) -> u64 {
        self.lock().synced
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer's side, after each commit: `frames` is the WAL's length now, `last` its
    /// length after the previous commit, `checkpoint` runs one on the writer's connection and
    /// answers (frames in the WAL, frames copied back).
    fn after_commit(
        &self,
        frames: i32,
        last: &mut i32,
        checkpoint: impl FnOnce() -> rusqlite::Result<(i32, i32)>,
    ) {
        let restarted = frames < *last;
        *last = frames;
        if !restarted && frames < self.due {
            return;
        }
        let mut state = self.lock();
        if restarted {
            state.generation += 1;
            state.copied = 0;
            state.rounds = 0;
        }
        if frames < self.due {
            return;
        }
        let forced = frames >= self.bound;
        if forced {
            // A round not started yet is the writer's now; one under way is waited for.
            state.wanted = false;
            while state.running {
                state = self
                    .idle
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        } else if state.running || state.wanted {
            // A round is under way; the writer looks again after its next commit.
            return;
        } else if state.rounds == 0
            || (frames - state.copied > TAIL_FRAMES && state.rounds < ROUNDS)
        {
            state.wanted = true;
            drop(state);
            self.wake.notify_one();
            return;
        }
        state.ran[if forced { 2 } else { 1 }] += 1;
        drop(state);
        match checkpoint() {
            Ok((_, done)) => {
                let mut state = self.lock();
                state.copied = state.copied.max(done);
            }
            // Busy: another process holds the checkpoint lock.
            Err(error) => tracing::debug!(%error, "the writer's WAL checkpoint did not run"),
        }
    }

    /// The thread's loop: one `PASSIVE` checkpoint per request, then a sync of what it copied
    /// into the database file.
    fn run(&self, conn: &Connection, db_file: &DbFile) {
        loop {
            let generation = {
                let mut state = self.lock();
                while !state.wanted && !state.stopped {
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.stopped {
                    return;
                }
                state.wanted = false;
                state.running = true;
                state.ran[0] += 1;
                state.generation
            };
            let started = std::time::Instant::now();
            let result = conn.wal_checkpoint_v2(Some(rusqlite::MAIN_DB), CheckpointMode::PASSIVE);
            // SQLite syncs the database file only when a checkpoint reaches the end of the WAL,
            // which a round beside a busy writer never does: the writer's own pass at the end
            // then synced every page the rounds had copied (1,000 and more, scattered), for
            // 5 ms and more with every write waiting. Synced here, its pass syncs its own few.
            let synced = match &result {
                Ok((_, done)) if *done > 0 => match db_file.db.sync_data() {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::debug!(%error, "cannot sync the database file after a checkpoint");
                        false
                    }
                },
                _ => false,
            };
            metrics::histogram!("plinth_store_checkpoint_seconds")
                .record(started.elapsed().as_secs_f64());
            let mut state = self.lock();
            state.running = false;
            state.synced += u64::from(synced);
            if state.generation == generation {
                state.rounds += 1;
                match result {
                    Ok((_, done)) => state.copied = state.copied.max(done),
                    Err(error) => {
                        tracing::debug!(%error, "a background WAL checkpoint did not run");
                    }
                }
            }
            drop(state);
            self.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUE_FRAMES: i32 = DEFAULT_DUE_FRAMES as i32;
    const WRITER_FRAMES: i32 = 2 * DUE_FRAMES;

    /// Runs the writer's side with a checkpoint that reports `done` frames copied, and says
    /// whether the writer checkpointed.
    fn commit(checkpoints: &Checkpoints, frames: i32, last: &mut i32, done: i32) -> bool {
        let mut ran = false;
        checkpoints.after_commit(frames, last, || {
            ran = true;
            Ok((frames, done))
        });
        ran
    }

    /// What a background round that copied up to `copied` leaves behind.
    fn round_done(checkpoints: &Checkpoints, copied: i32) {
        let mut state = checkpoints.lock();
        assert!(state.wanted, "a round was asked for");
        state.wanted = false;
        state.rounds += 1;
        state.copied = copied;
    }

    #[test]
    fn the_thread_copies_the_bulk_and_the_writer_only_a_short_tail() {
        let checkpoints = Checkpoints::new(DEFAULT_DUE_FRAMES);
        let mut last = 0;
        assert!(!commit(&checkpoints, DUE_FRAMES - 1, &mut last, 0));
        assert!(
            !checkpoints.lock().wanted,
            "nothing is due below the threshold"
        );
        // Due: the thread is asked, the writer does not copy.
        assert!(!commit(&checkpoints, DUE_FRAMES, &mut last, 0));
        // While the round is asked for or running, the writer leaves it alone.
        assert!(!commit(&checkpoints, DUE_FRAMES + 1, &mut last, 0));
        checkpoints.lock().running = true;
        assert!(!commit(&checkpoints, DUE_FRAMES + 2, &mut last, 0));
        checkpoints.lock().running = false;
        round_done(&checkpoints, DUE_FRAMES);
        // A long tail goes back to the thread.
        assert!(!commit(
            &checkpoints,
            DUE_FRAMES + TAIL_FRAMES + 1,
            &mut last,
            0
        ));
        round_done(&checkpoints, DUE_FRAMES + TAIL_FRAMES);
        // A short one the writer copies itself.
        let frames = DUE_FRAMES + 2 * TAIL_FRAMES;
        assert!(commit(&checkpoints, frames, &mut last, frames));
        assert_eq!(checkpoints.lock().copied, frames);
        assert_eq!(checkpoints.ran(), [0, 1, 0]);
    }

    #[test]
    fn the_writer_finishes_after_a_few_rounds_or_past_its_bound() {
        let checkpoints = Checkpoints::new(DEFAULT_DUE_FRAMES);
        let mut last = 0;
        let mut frames = DUE_FRAMES;
        // Each round leaves more than a short tail behind (a slow disk).
        for _ in 0..ROUNDS {
            assert!(!commit(&checkpoints, frames, &mut last, 0));
            round_done(&checkpoints, frames);
            frames += 2 * TAIL_FRAMES;
        }
        assert!(commit(&checkpoints, frames, &mut last, frames));
        // At the writer's bound it waits for the round under way, then copies.
        let checkpoints = Arc::new(Checkpoints::new(DEFAULT_DUE_FRAMES));
        let mut last = 0;
        assert!(!commit(&checkpoints, DUE_FRAMES, &mut last, 0));
        checkpoints.lock().running = true;
        assert!(!commit(&checkpoints, WRITER_FRAMES - 1, &mut last, 0));
        let round = Arc::clone(&checkpoints);
        let ends = thread::spawn(move || {
            thread::sleep(std::time::Duration::from_millis(50));
            round.lock().running = false;
            round.idle.notify_all();
        });
        let mut ran_alone = None;
        checkpoints.after_commit(WRITER_FRAMES, &mut last, || {
            ran_alone = Some(!checkpoints.lock().running);
            Ok((WRITER_FRAMES, WRITER_FRAMES))
        });
        assert_eq!(
            ran_alone,
            Some(true),
            "the writer waited for the round to end"
        );
        ends.join().expect("the round's thread");
        assert_eq!(checkpoints.ran(), [0, 0, 1]);
        assert!(!checkpoints.lock().wanted);
    }

    #[test]
    fn the_store_options_set_when_rounds_are_due_and_the_writers_bound() {
        let checkpoints = Checkpoints::new(10);
        let mut last = 0;
        assert!(!commit(&checkpoints, 9, &mut last, 0));
        assert!(!checkpoints.lock().wanted, "not due below 10 frames");
        assert!(!commit(&checkpoints, 10, &mut last, 0));
        assert!(checkpoints.lock().wanted, "due from 10 frames");
        // Past twice that the writer copies itself (no round is running here).
        assert!(commit(&checkpoints, 20, &mut last, 20));
        assert_eq!(checkpoints.ran(), [0, 0, 1]);
        // No length means a round due from the first frame, not never.
        let checkpoints = Checkpoints::new(0);
        assert_eq!((checkpoints.due, checkpoints.bound), (1, 2));
        let huge = Checkpoints::new(u32::MAX);
        assert!(huge.bound > huge.due, "the bound stays past the due length");
    }

    #[test]
    fn a_restarted_wal_forgets_what_was_copied_of_the_old_one() {
        let checkpoints = Checkpoints::new(DEFAULT_DUE_FRAMES);
        let mut last = 0;
        assert!(!commit(&checkpoints, DUE_FRAMES + 1000, &mut last, 0));
        round_done(&checkpoints, DUE_FRAMES + 990);
        // The WAL started over: the frames copied were of the old one.
        assert!(!commit(&checkpoints, 3, &mut last, 0));
        let state = checkpoints.lock();
        assert_eq!((state.copied, state.rounds, state.generation), (0, 0, 1));
        drop(state);
        // Due again: the thread is asked rather than the writer copying 1000 frames.
        assert!(!commit(&checkpoints, DUE_FRAMES, &mut last, 0));
        assert!(checkpoints.lock().wanted);
    }
}
