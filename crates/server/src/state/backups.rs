//! Backup and restore bookkeeping: the busy flag that keeps one at a time, the file removals
//! held back while one runs, and a restore's request for a restart. Making, restoring and
//! listing backups are the `backups` feature's.

use std::path::PathBuf;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::BoxFuture;

/// Backup and restore bookkeeping shared by the handlers, the cron job and `serve`.
///
/// Several nodes: the busy flag is per node, so it keeps one backup or restore at a time on
/// this node only; another node may start one meanwhile, and its record writes do not wait
/// for this node's backup before removing files (the archive may then miss a file its database
/// copy names). A restore swaps the data directory of the node that ran it. Both are
/// single-node operations today; a cluster needs a lease in the database for them.
#[derive(Default)]
pub struct Backups {
    /// Set while a backup or restore runs.
    busy: AtomicBool,
    /// Work that came in while the busy flag was set (see [`Backups::when_idle`]); the mutex
    /// also orders it against the flag's release.
    deferred: std::sync::Mutex<Vec<Deferred>>,
    /// A verified restore waiting for `serve` to swap it in and restart: its staging dir.
    restart: std::sync::Mutex<Option<PathBuf>>,
    restart_notify: tokio::sync::Notify,
}

/// The busy flag, held for one backup or restore and released on drop.
pub struct BusyGuard<'a>(&'a Backups);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let queued = {
            let mut deferred = self
                .0
                .deferred
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.0.busy.store(false, Ordering::SeqCst);
            std::mem::take(&mut *deferred)
        };
        if queued.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    for work in queued {
                        work.await;
                    }
                });
            }
            // No runtime (a test dropping the guard outside one): the work is dropped; for file
            // removals the files stay as orphans, which the orphan sweep removes later.
            Err(_) => tracing::debug!(
                count = queued.len(),
                "deferred file removals left to the orphan sweep"
            ),
        }
    }
}

/// The most file removals held back during one backup; past it they are dropped, leaving
/// orphans the orphan sweep (`__plinthFilesCleanup__`) removes later.
pub const MAX_DEFERRED_REMOVALS: usize = 100_000;

/// Work held back while a backup or restore runs (a file removal, made by the `backups`
/// feature's `Backups::remove_files`).
pub type Deferred = BoxFuture<'static, ()>;

impl Backups {
    /// Whether a backup may start now (health's `canBackup`).
    pub fn can_backup(&self) -> bool {
        !self.busy.load(Ordering::SeqCst)
    }

    /// Runs `work` now, unless a backup or restore is running: then it waits until the busy
    /// flag is released (at most [`MAX_DEFERRED_REMOVALS`] wait; past it `work` is dropped).
    pub async fn when_idle(&self, work: Deferred) {
        {
            let mut deferred = self.deferred.lock().unwrap_or_else(PoisonError::into_inner);
            if self.busy.load(Ordering::SeqCst) {
                if deferred.len() < MAX_DEFERRED_REMOVALS {
                    deferred.push(work);
                }
                return;
            }
        }
        work.await;
    }

    /// How many file removals wait for the running backup to end.
    pub fn deferred_removals(&self) -> usize {
        self.deferred
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Takes the busy flag, or `None` when a backup or restore already holds it.
    pub fn try_begin(&self) -> Option<BusyGuard<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| BusyGuard(self))
    }

    /// Resolves with the staging directory once a restore asked for a restart.
    pub async fn restart_requested(&self) -> PathBuf {
        loop {
            let notified = self.restart_notify.notified();
            if let Some(dir) = self
                .restart
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
            {
                return dir;
            }
            notified.await;
        }
    }

    /// Asks `serve` to swap in the verified restore staged in `staged` and restart.
    pub fn request_restart(&self, staged: PathBuf) {
        *self.restart.lock().unwrap_or_else(PoisonError::into_inner) = Some(staged);
        self.restart_notify.notify_waiters();
    }
}
