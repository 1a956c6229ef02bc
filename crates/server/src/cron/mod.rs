//! Cron jobs: the registry behind PocketBase's crons API (`GET /api/crons`,
//! `POST /api/crons/{id}`) and JS `cronAdd`/`cronRemove`, and the scheduler that runs them.
//!
//! Jobs are kept in registration order; re-adding an id replaces the job and moves it to the
//! end, as in PocketBase. They are listed as PocketBase lists them: user jobs sorted by id
//! (byte order), then the system jobs — those whose id starts with `__pb` — in registration
//! order.
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

pub use api::router;
pub use schedule::{Schedule, ScheduleError};

/// What a job does when run: a fresh future per run, failing with a message to log.
pub type Job = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The id prefix of PocketBase's own jobs, listed after the user jobs.
pub const SYSTEM_PREFIX: &str = "__pb";

/// One registered job.
struct Entry {
    id: String,
    schedule: Schedule,
    job: Job,
    /// Set while a run of this job is in flight.
    running: Arc<AtomicBool>,
}

/// A job as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobInfo {
    pub id: String,
    pub expression: String,
}

/// The outcome of asking a job to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// A task running the job was spawned.
    Started,
    /// The job was still running from an earlier start; nothing was started.
    AlreadyRunning,
}

/// `run_now` named no registered job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no cron job with id {0:?}")]
pub struct UnknownJob(pub String);

/// The registry of cron jobs.
#[derive(Default)]
pub struct Crons {
    jobs: RwLock<Vec<Entry>>,
}

impl Crons {
    /// Registers `job` under `id` to run on `expression`, replacing any job with that id.
    /// A bad expression leaves the registry unchanged.
    pub fn add(&self, id: &str, expression: &str, job: Job) -> Result<(), ScheduleError> {
        let schedule = Schedule::parse(expression)?;
        let mut jobs = self.jobs.write().unwrap_or_else(PoisonError::into_inner);
        jobs.retain(|entry| entry.id != id);
        jobs.push(Entry {
            id: id.to_owned(),
            schedule,
            job,
            running: Arc::default(),
        });
        Ok(())
    }

    /// Unregisters the job `id`; returns whether there was one. A run in flight finishes.
    pub fn remove(&self, id: &str) -> bool {
        let mut jobs = self.jobs.write().unwrap_or_else(PoisonError::into_inner);
        let before = jobs.len();
        jobs.retain(|entry| entry.id != id);
        jobs.len() != before
    }

    /// The jobs in PocketBase's listing order (see the module comment).
    pub fn list(&self) -> Vec<JobInfo> {
        let jobs = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        let mut listed: Vec<JobInfo> = jobs
            .iter()
            .map(|entry| JobInfo {
                id: entry.id.clone(),
                expression: entry.schedule.expression().to_owned(),
            })
            .collect();
        // Stable: system jobs keep their registration order.
        listed.sort_by(|a, b| {
            let (a_system, b_system) = (is_system(&a.id), is_system(&b.id));
            a_system.cmp(&b_system).then_with(|| {
                if a_system {
                    std::cmp::Ordering::Equal
                } else {
                    a.id.cmp(&b.id)
                }
            })
        });
        listed
    }

    /// Starts the job `id` in the background now, whatever its schedule. Needs a Tokio runtime.
    pub fn run_now(&self, id: &str) -> Result<Run, UnknownJob> {
        let jobs = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        let entry = jobs
            .iter()
            .find(|entry| entry.id == id)
            .ok_or_else(|| UnknownJob(id.to_owned()))?;
        Ok(start(entry))
    }

    /// Starts every job due in the minute holding `time`; returns the ids started.
    pub fn run_due(&self, time: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        let jobs = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        jobs.iter()
            .filter(|entry| entry.schedule.is_due(time))
            .filter(|entry| start(entry) == Run::Started)
            .map(|entry| entry.id.clone())
            .collect()
    }

    /// Spawns the scheduler on the current Tokio runtime: from the next UTC minute boundary on,
    /// every due job is started. It holds the registry weakly and stops when the returned
    /// handle is stopped or dropped, or when the registry is gone.
    pub fn start(self: &Arc<Self>) -> Ticker {
        self.start_with_clock(chrono::Utc::now, 1)
    }

    /// [`Crons::start`] reading the time from `clock`, which runs `speed` times as fast as
    /// Tokio's timer (tests drive a fast fake clock).
    fn start_with_clock(
        self: &Arc<Self>,
        clock: impl Fn() -> chrono::DateTime<chrono::Utc> + Send + 'static,
        speed: u32,
    ) -> Ticker {
        let crons = Arc::downgrade(self);
        Ticker(tokio::spawn(tick(crons, clock, speed.max(1))))
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

fn is_system(id: &str) -> bool {
    id.starts_with(SYSTEM_PREFIX) || id.starts_with(PLINTH_PREFIX)
}

/// The id prefix of Plinth's own system jobs, listed after PocketBase's.
const PLINTH_PREFIX: &str = "__plinth";

/// Clears a job's running flag however its run ends.
struct RunningGuard(Arc<AtomicBool>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Spawns one run of `entry` unless one is in flight.
fn start(entry: &Entry) -> Run {
    if entry.running.swap(true, Ordering::AcqRel) {
        tracing::debug!(job = %entry.id, "cron job still running; not started again");
        return Run::AlreadyRunning;
    }
    let guard = RunningGuard(entry.running.clone());
    let id = entry.id.clone();
    let job = entry.job.clone();
    tokio::spawn(async move {
        let _guard = guard;
        // The job is called inside the caught future, so a panic while building its future
        // is caught too.
        let run = std::panic::AssertUnwindSafe(async move { job().await }).catch_unwind();
        let result = match run.await {
            Ok(Ok(())) => {
                tracing::debug!(job = %id, "cron job done");
                "ok"
            }
            Ok(Err(error)) => {
                tracing::error!(job = %id, %error, "cron job failed");
                "error"
            }
            Err(_) => {
                tracing::error!(job = %id, "cron job panicked");
                "panic"
            }
        };
        metrics::counter!("plinth_cron_runs_total", "job" => id, "result" => result).increment(1);
    });
    Run::Started
}

/// The scheduler loop: sleep to the next minute boundary, start what is due, repeat.
async fn tick(crons: Weak<Crons>, clock: impl Fn() -> chrono::DateTime<chrono::Utc>, speed: u32) {
    let mut last = None;
    loop {
        let now = clock();
        let minute = schedule::truncate_to_minute(now);
        if last != Some(minute) && last.is_some() {
            let Some(crons) = crons.upgrade() else {
                return;
            };
            crons.run_due(minute);
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
