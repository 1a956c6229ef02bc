//! Thumbnail generation's shared state: the slots and the memory budget generations hold,
//! the generations under way (single flight), and the thumbs remembered as impossible. Making
//! a thumb is the `files` feature's (`files::thumb_jobs`, which explains the bounds).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::{BoxFuture, Shared};
use tokio::sync::Semaphore;

/// Planned peak bytes all generations may hold together.
pub const TOTAL_BUDGET_BYTES: u64 = 512 << 20;
/// How many refused thumbs are remembered (oldest forgotten first).
pub const REMEMBERED_FAILURES: usize = 4096;
/// Distinct thumbnails being made or waiting for a slot at once. Generations outlive the
/// requests that started them, so their number needs a bound of its own: past it, a request
/// for yet another thumb is served the original (and nothing is remembered).
pub const MAX_PENDING: usize = 256;
/// How long a generation waits for a slot (or for budget) before the original is served.
pub const SLOT_WAIT: Duration = Duration::from_secs(30);
/// The budget's unit: one permit per MiB.
const BUDGET_UNIT: u64 = 1 << 20;

/// How many generations may run at once on a machine with `cpus` CPUs: about half of them,
/// at least one, so the async workers serving every other request keep CPUs of their own.
pub fn slots_for(cpus: usize) -> usize {
    (cpus / 2).max(1)
}

/// The shared state of thumbnail generation (one per server).
///
/// Several nodes: per node. Each node bounds its own generations (the cluster runs up to N
/// times as many at once, each node within its own CPUs and memory), single flight holds
/// within a node only (two nodes may make the same thumb once each, storing equal bytes), and
/// refusals are remembered per node.
pub struct ThumbJobs {
    shared: Arc<Jobs>,
}

/// What the requests and the generation tasks share.
pub struct Jobs {
    /// Generations running at once.
    pub slots: Semaphore,
    /// The memory budget, in [`units_for`] units.
    pub budget: Semaphore,
    /// Generations under way by thumb key; a generation's task removes its own entry when
    /// it ends, so a request arriving meanwhile joins it instead of starting another.
    pending: Mutex<HashMap<String, Flight>>,
    failed: Mutex<Failures>,
    /// Generations started (tests observe single flight and remembered refusals with it).
    started: AtomicU64,
    /// How long a generation waits for a slot or for budget.
    pub wait: Duration,
    /// At most this many entries in `pending`.
    max_pending: usize,
}

/// One generation under way: resolves to whether the thumb exists.
pub type Flight = Shared<BoxFuture<'static, bool>>;

impl Default for ThumbJobs {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        ThumbJobs::new(slots_for(cpus), TOTAL_BUDGET_BYTES, SLOT_WAIT)
    }
}

impl ThumbJobs {
    /// `slots` generations at once within `budget` planned bytes, each waiting at most
    /// `wait` for its turn.
    pub fn new(slots: usize, budget: u64, wait: Duration) -> Self {
        let units = usize::try_from(budget / BUDGET_UNIT).unwrap_or(usize::MAX);
        ThumbJobs {
            shared: Arc::new(Jobs {
                slots: Semaphore::new(slots),
                budget: Semaphore::new(units.min(Semaphore::MAX_PERMITS)),
                pending: Mutex::default(),
                failed: Mutex::default(),
                started: AtomicU64::new(0),
                wait,
                max_pending: MAX_PENDING,
            }),
        }
    }

    /// The same, with another bound on pending generations (tests).
    pub fn with_max_pending(slots: usize, budget: u64, wait: Duration, max_pending: usize) -> Self {
        let mut jobs = Self::new(slots, budget, wait);
        if let Some(shared) = Arc::get_mut(&mut jobs.shared) {
            shared.max_pending = max_pending;
        }
        jobs
    }
}

/// A set of keys with a capacity, forgetting the oldest first.
#[derive(Default)]
struct Failures {
    keys: HashSet<String>,
    order: VecDeque<String>,
}

impl Failures {
    fn insert(&mut self, key: &str) {
        if !self.keys.insert(key.to_owned()) {
            return;
        }
        self.order.push_back(key.to_owned());
        while self.order.len() > REMEMBERED_FAILURES {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }
}

/// A generation task's hold on its `pending` entry, released however the task ends.
pub struct Landed {
    jobs: Arc<Jobs>,
    key: String,
}

impl Landed {
    /// What the generation shares with the others.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The thumb being made.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for Landed {
    fn drop(&mut self) {
        self.jobs
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// Budget units for `bytes` (at least one, so every generation counts).
pub fn units_for(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(BUDGET_UNIT).max(1)).unwrap_or(u32::MAX)
}

impl ThumbJobs {
    /// The generation of `key` under way, joined; else one started by `start` (given the
    /// entry's hold, which removes the entry when the generation ends) and registered, so that
    /// later requests join it; `None`, starting nothing, when too many are pending.
    pub fn join_or_start(&self, key: &str, start: impl FnOnce(Landed) -> Flight) -> Option<Flight> {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = pending.get(key) {
            return Some(flight.clone());
        }
        if pending.len() >= self.shared.max_pending {
            return None;
        }
        // The entry goes in before the generation can end (it is inserted under the lock its
        // hold needs to remove it), so the hold always removes its own entry.
        let flight = start(Landed {
            jobs: self.shared.clone(),
            key: key.to_owned(),
        });
        pending.insert(key.to_owned(), flight.clone());
        Some(flight)
    }

    /// Whether `key` is remembered as a thumb that cannot be made.
    pub fn is_refused(&self, key: &str) -> bool {
        self.shared.is_refused(key)
    }

    /// How many thumbs are being made right now.
    pub fn in_flight(&self) -> usize {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// What the generations share.
    pub fn jobs(&self) -> &Jobs {
        &self.shared
    }

    /// How many generations have started.
    pub fn started(&self) -> u64 {
        self.shared.started.load(Ordering::Relaxed)
    }
}

impl Jobs {
    /// Whether `key` is remembered as a thumb that cannot be made.
    pub fn is_refused(&self, key: &str) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .contains(key)
    }

    /// Remembers `key` as a thumb that cannot be made.
    pub fn refuse(&self, key: &str) {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
    }

    /// Counts a generation started.
    pub fn count_start(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generations take about half the CPUs, never none, so the async workers keep some.
    #[test]
    fn slots_are_about_half_the_cpus() {
        assert_eq!(slots_for(0), 1);
        assert_eq!(slots_for(1), 1);
        assert_eq!(slots_for(2), 1);
        assert_eq!(slots_for(3), 1);
        assert_eq!(slots_for(8), 4);
        assert_eq!(slots_for(64), 32);
    }
}
