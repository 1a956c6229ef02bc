//! Plinth's own periodic work registered under PocketBase's system job ids, so that
//! `GET /api/crons` lists them and `POST /api/crons/{id}` runs them as on PocketBase.
//!
//! PocketBase 0.40.6 lists four: `__pbDBOptimize__` (`0 0 * * *`), `__pbMFACleanup__` and
//! `__pbOTPCleanup__` (`0 * * * *`), `__pbLogsCleanup__` (`0 */6 * * *`). Plinth has the
//! expired-OTP and expired-MFA sweeps and the request-log retention, registered here under the
//! same ids and schedules. Its store offers no optimize step yet, so `__pbDBOptimize__` is not
//! listed rather than listed as a job that does nothing. Plinth's other background work (the orphaned
//! file sweep, the realtime change-log pruning) has no PocketBase id and stays outside the
//! registry, so the listing shows nothing PocketBase would not.

use std::sync::{Arc, Weak};

use domain::collection::{MFAS_ID, OTPS_ID};
use futures_util::FutureExt as _;

use super::{Crons, Job};
use crate::state::{AppState, SharedState};

pub const MFA_CLEANUP: &str = "__pbMFACleanup__";
pub const OTP_CLEANUP: &str = "__pbOTPCleanup__";
pub const LOGS_CLEANUP: &str = "__pbLogsCleanup__";

/// Registers the system jobs of `state` in its registry. The jobs hold the state weakly (the
/// registry lives in it), so a job run after the state is gone does nothing.
pub fn register(state: &SharedState) {
    let crons: &Crons = &state.crons;
    for (id, table) in [(MFA_CLEANUP, MFAS_ID), (OTP_CLEANUP, OTPS_ID)] {
        let job = sweep_job(Arc::downgrade(state), table);
        if let Err(error) = crons.add(id, "0 * * * *", job) {
            // The expression is a constant; this only guards against a typo slipping in.
            tracing::error!(%error, job = id, "cannot register a system cron job");
        }
    }
    register_logs_cleanup(state);
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
