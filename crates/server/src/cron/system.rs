//! Plinth's own periodic work registered under PocketBase's system job ids, so that
//! `GET /api/crons` lists them and `POST /api/crons/{id}` runs them as on PocketBase.
//!
//! PocketBase 0.40.6 lists four: `__pbDBOptimize__` (`0 0 * * *`), `__pbMFACleanup__` and
//! `__pbOTPCleanup__` (`0 * * * *`), `__pbLogsCleanup__` (`0 */6 * * *`). Plinth has the
//! expired-OTP and expired-MFA sweeps, the daily database optimization ([`Store::optimize`]:
//! on SQLite `PRAGMA optimize` and a truncating WAL checkpoint) and the request-log retention,
//! all four registered here under the same ids and schedules. Plinth's own periodic work is on the same scheduler under `__plinth…__`
//! ids, listed after PocketBase's, so it can be seen and run from `/api/crons` too: the
//! orphaned-file sweep. The realtime change-log pruning is not a cron job: it follows the
//! fan-out every minute and lives with it.

use std::sync::{Arc, Weak};

use domain::Store;
use domain::collection::{MFAS_ID, OTPS_ID};
use futures_util::FutureExt as _;

use crate::state::crons::{Crons, Job};
use crate::state::{AppState, SharedState};

pub const FILES_CLEANUP: &str = "__plinthFilesCleanup__";
pub const MFA_CLEANUP: &str = "__pbMFACleanup__";
pub const OTP_CLEANUP: &str = "__pbOTPCleanup__";
pub const DB_OPTIMIZE: &str = "__pbDBOptimize__";
pub const LOGS_CLEANUP: &str = "__pbLogsCleanup__";

/// Registers the system jobs of `state` in its registry. The jobs hold the state weakly (the
/// registry lives in it), so a job run after the state is gone does nothing.
pub fn register(state: &SharedState) {
    // First, as PocketBase lists it first.
    register_db_optimize(state);
    let crons: &Crons = &state.crons;
    for (id, table) in [(MFA_CLEANUP, MFAS_ID), (OTP_CLEANUP, OTPS_ID)] {
        let job = sweep_job(Arc::downgrade(state), table);
        if let Err(error) = crons.add(id, "0 * * * *", job) {
            // The expression is a constant; this only guards against a typo slipping in.
            tracing::error!(%error, job = id, "cannot register a system cron job");
        }
    }
    register_logs_cleanup(state);
    register_files_sweep(state);
}

/// `__pbLogsCleanup__` (every 6 hours, as PocketBase): removes the request logs older than
/// `logs.maxDays` days (none when it is 0, as logging is then off).
fn register_logs_cleanup(state: &SharedState) {
    let weak = Arc::downgrade(state);
    let job: Job = Arc::new(move || {
        let state = weak.clone();
        async move {
            let Some(state) = state.upgrade() else {
                return Ok(());
            };
            let removed = crate::logs::cleanup(&state).await.map_err(|e| e.message)?;
            if removed > 0 {
                tracing::debug!(removed, "removed old request logs");
            }
            Ok(())
        }
        .boxed()
    });
    if let Err(error) = state.crons.add(LOGS_CLEANUP, "0 */6 * * *", job) {
        tracing::error!(%error, job = LOGS_CLEANUP, "cannot register a system cron job");
    }
}

/// The orphaned-file sweep (see [`crate::files::cleanup`]) every six hours, at half past so
/// it does not start with PocketBase's jobs on the hour.
fn register_files_sweep(state: &SharedState) {
    let weak = Arc::downgrade(state);
    let job: Job = Arc::new(move || {
        let state = weak.clone();
        async move {
            let Some(state) = state.upgrade() else {
                return Ok(());
            };
            match crate::files::cleanup::remove_orphans(&state, crate::files::cleanup::GRACE).await
            {
                Ok(0) => Ok(()),
                Ok(removed) => {
                    tracing::info!(removed, "removed orphaned files");
                    Ok(())
                }
                Err(error) => Err(error.to_string()),
            }
        }
        .boxed()
    });
    if let Err(error) = state.crons.add(FILES_CLEANUP, "30 */6 * * *", job) {
        tracing::error!(%error, job = FILES_CLEANUP, "cannot register a system cron job");
    }
}

/// A job removing the expired rows of one of the `_otps` / `_mfas` tables.
fn sweep_job(state: Weak<AppState>, table: &'static str) -> Job {
    Arc::new(move || {
        let state = state.clone();
        async move {
            let Some(state) = state.upgrade() else {
                return Ok(());
            };
            match crate::auth::otp::sweep_expired_in(&state, &[table]).await {
                Ok(0) => Ok(()),
                Ok(removed) => {
                    tracing::debug!(removed, table, "removed expired rows");
                    Ok(())
                }
                Err(error) => Err(error.message),
            }
        }
        .boxed()
    })
}

/// Registers `__pbDBOptimize__` (`0 0 * * *`): the store's routine maintenance.
fn register_db_optimize(state: &SharedState) {
    let weak = Arc::downgrade(state);
    let job: Job = Arc::new(move || {
        let state = weak.clone();
        async move {
            let Some(state) = state.upgrade() else {
                return Ok(());
            };
            let store: &dyn Store = state.store.as_ref();
            store.optimize().await.map_err(|error| error.to_string())
        }
        .boxed()
    });
    if let Err(error) = state.crons.add(DB_OPTIMIZE, "0 0 * * *", job) {
        tracing::error!(%error, job = DB_OPTIMIZE, "cannot register a system cron job");
    }
}
