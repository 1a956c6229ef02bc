//! Cron jobs: the registry behind PocketBase's crons API (`GET /api/crons`,
//! `POST /api/crons/{id}`) and JS `cronAdd`/`cronRemove`, and the scheduler that runs them.
//!
//! Jobs are kept in registration order; re-adding an id replaces the job and moves it to the
//! end, as in PocketBase. They are listed as PocketBase lists them: user jobs sorted by id
//! (byte order), then the system jobs — those whose id starts with `__pb` — in registration
//! order.
//!
//! The registry itself is on the ground floor ([`crate::state::crons`]); here are the
//! expressions, the scheduler, the API and the system jobs.
//!
//! The scheduler runs only under `plinth serve` ([`Crons::start`]): it wakes on every UTC
//! minute boundary and starts each due job in its own task. A job still running when it is due
//! again is **not** started a second time (that run is skipped with a debug log line), and
//! neither is one run by hand while it runs: a slow job never piles up copies of itself.
//! PocketBase starts a goroutine regardless; skipping is the safer reading for jobs that touch
//! the database. A job that fails or panics is logged through `tracing` with its id.

mod api;
pub mod schedule;
pub mod system;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Weak};

pub use api::router;
pub use schedule::{Schedule, ScheduleError};

use crate::state::crons::{Crons, Due, Job};

impl Crons {
    /// Registers `job` under `id` to run on `expression`, replacing any job with that id.
    /// A bad expression leaves the registry unchanged.
    pub fn add(&self, id: &str, expression: &str, job: Job) -> Result<(), ScheduleError> {
        let schedule = Schedule::parse(expression)?;
        self.insert(id, Arc::new(schedule), job);
        Ok(())
    }

    /// Spawns the scheduler on the current Tokio runtime: from the next UTC minute boundary on,
    /// every due job is started. It holds the registry weakly and stops when the returned
    /// handle is stopped or dropped, or when the registry is gone.
    pub fn start(self: &Arc<Self>) -> Ticker {
        self.start_with_clock(chrono::Utc::now, None, 1)
    }

    /// [`Crons::start`] for a node that may share its database with others: each due run is
    /// first claimed in the store ([`domain::Store::claim_once`], keyed by job id and minute),
    /// so a job runs once per cluster whichever nodes are up, not once per node.
    pub fn start_claiming(self: &Arc<Self>, store: Arc<dyn domain::Store>) -> Ticker {
        self.start_with_clock(chrono::Utc::now, Some(store), 1)
    }

    /// [`Crons::start`] reading the time from `clock`, which runs `speed` times as fast as
    /// Tokio's timer (tests drive a fast fake clock).
    fn start_with_clock(
        self: &Arc<Self>,
        clock: impl Fn() -> chrono::DateTime<chrono::Utc> + Send + 'static,
        claims: Option<Arc<dyn domain::Store>>,
        speed: u32,
    ) -> Ticker {
        let crons = Arc::downgrade(self);
        Ticker(tokio::spawn(tick(crons, clock, claims, speed.max(1))))
    }
}

/// The running scheduler; stopping or dropping it stops the ticks (runs in flight finish).
pub struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    pub fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Due for Schedule {
    fn is_due(&self, time: chrono::DateTime<chrono::Utc>) -> bool {
        Schedule::is_due(self, time)
    }

    fn expression(&self) -> &str {
        Schedule::expression(self)
    }
}

/// Starts each job due in `minute` that this node claims first.
fn run_claimed(
    crons: &Arc<Crons>,
    store: &Arc<dyn domain::Store>,
    minute: chrono::DateTime<chrono::Utc>,
) {
    for id in crons.due_ids(minute) {
        let crons = Arc::clone(crons);
        let store = Arc::clone(store);
        tokio::spawn(async move {
            match store
                .claim_once(&format!("cron:{id}"), minute.timestamp_millis())
                .await
            {
                Ok(true) => {
                    let _ = crons.run_now(&id);
                }
                Ok(false) => tracing::debug!(job = %id, "cron run claimed by another node"),
                Err(error) => {
                    tracing::warn!(job = %id, %error, "cannot claim a cron run; skipped");
                }
            }
        });
    }
}

/// The scheduler loop: sleep to the next minute boundary, start what is due, repeat.
async fn tick(
    crons: Weak<Crons>,
    clock: impl Fn() -> chrono::DateTime<chrono::Utc>,
    claims: Option<Arc<dyn domain::Store>>,
    speed: u32,
) {
    let mut last = None;
    loop {
        let now = clock();
        let minute = schedule::truncate_to_minute(now);
        if last != Some(minute) && last.is_some() {
            let Some(crons) = crons.upgrade() else {
                return;
            };
            match &claims {
                None => {
                    crons.run_due(minute);
                }
                Some(store) => run_claimed(&crons, store, minute),
            }
        }
        // The first pass only aligns to the clock: the minute already under way was due
        // before the scheduler existed.
        last = Some(minute);
        let next = minute + chrono::Duration::minutes(1);
        // Waking a little late keeps a slightly fast monotonic clock from landing in the old
        // minute; a wall-clock jump is absorbed because the wait is recomputed each minute.
        let wait = (next - now).to_std().unwrap_or_default() + std::time::Duration::from_millis(5);
        tokio::time::sleep(wait / speed).await;
    }
}
