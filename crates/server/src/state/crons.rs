//! The cron registry: jobs by id with their schedules, and starting their runs (one at a time
//! per job). Parsing expressions, the minute scheduler, the crons API and the system jobs are
//! the `cron` feature's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

/// What a job does when run: a fresh future per run, failing with a message to log.
pub type Job = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The id prefix of PocketBase's own jobs, listed after the user jobs.
pub const SYSTEM_PREFIX: &str = "__pb";

/// One registered job.
struct Entry {
    id: String,
    schedule: Arc<dyn Due>,
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

/// When a registered job is due: the `cron` feature's parsed expression.
pub trait Due: Send + Sync {
    /// Whether the job is due in the minute holding `time`.
    fn is_due(&self, time: chrono::DateTime<chrono::Utc>) -> bool;
    /// The expression, as listed.
    fn expression(&self) -> &str;
}

/// The registry of cron jobs.
///
/// Several nodes: every node has its own registry and, under `serve`, its own scheduler, so
/// a job due at a minute runs once on every node (the system sweeps and the auto backup
/// included; the sweeps are safe to repeat, a backup would be made N times). Jobs added at
/// runtime (JS `cronAdd`) exist on the node whose hooks added them. Running a job once per
/// cluster needs a lease in the database; nothing does that today.
#[derive(Default)]
pub struct Crons {
    jobs: RwLock<Vec<Entry>>,
}

impl Crons {
    /// Registers `job` under `id` to run on `schedule`, replacing any job with that id (the
    /// `cron` feature's `Crons::add` parses an expression into a schedule first).
    pub fn insert(&self, id: &str, schedule: Arc<dyn Due>, job: Job) {
        let mut jobs = self.jobs.write().unwrap_or_else(PoisonError::into_inner);
        jobs.retain(|entry| entry.id != id);
        jobs.push(Entry {
            id: id.to_owned(),
            schedule,
            job,
            running: Arc::default(),
        });
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

    /// The ids of the jobs due in the minute holding `time`, without starting them.
    pub fn due_ids(&self, time: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        let jobs = self.jobs.read().unwrap_or_else(PoisonError::into_inner);
        jobs.iter()
            .filter(|entry| entry.schedule.is_due(time))
            .map(|entry| entry.id.clone())
            .collect()
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
