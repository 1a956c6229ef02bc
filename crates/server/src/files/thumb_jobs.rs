//! Thumbnail generation as a bounded shared resource. A first request for a thumb decodes and
//! resamples its original, which costs CPU and memory no other request does; unbounded, a
//! handful of concurrent first requests for large images exhausts the server. So:
//! generations run on blocking threads, on about half the CPUs at a time (the async workers
//! keep the rest) and together within a memory budget (each holds the source file's length
//! before reading it, then the bytes its [`thumbs::plan`] priced); concurrent requests for
//! the same thumb wait for one generation (single flight); a generation runs on its own task,
//! so once started it completes and stores its thumb even when every requester has gone (a
//! client that disconnects cannot make the next request pay again); and a thumb that cannot
//! be made is remembered for a while (a bounded set), so the original is served without
//! retrying.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use image::ImageFormat;
use tokio::sync::Semaphore;

use super::storage::{Storage, StorageError};
use super::thumbs::{self, ThumbSize};

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
pub struct ThumbJobs {
    shared: Arc<Jobs>,
}

/// What the requests and the generation tasks share.
struct Jobs {
    slots: Semaphore,
    budget: Semaphore,
    /// Generations under way by thumb key; a generation's task removes its own entry when
    /// it ends, so a request arriving meanwhile joins it instead of starting another.
    pending: Mutex<HashMap<String, Flight>>,
    failed: Mutex<Failures>,
    /// Generations started (tests observe single flight and remembered refusals with it).
    started: AtomicU64,
    /// How long a generation waits for a slot or for budget.
    wait: Duration,
    /// At most this many entries in `pending`.
    max_pending: usize,
}

/// One generation under way: resolves to whether the thumb exists.
type Flight = Shared<BoxFuture<'static, bool>>;

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
struct Landed {
    jobs: Arc<Jobs>,
    key: String,
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

/// Why a generation did not produce a thumb.
enum Outcome {
    Made,
    /// The image cannot be thumbnailed within the bounds (or at all): remembered.
    Refused,
    /// Something passing (storage, a full queue): tried again on a later request.
    Failed,
}

/// Budget units for `bytes` (at least one, so every generation counts).
fn units_for(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(BUDGET_UNIT).max(1)).unwrap_or(u32::MAX)
}

impl ThumbJobs {
    /// Whether `key` is remembered as a thumb that cannot be made.
    pub fn is_refused(&self, key: &str) -> bool {
        self.shared.is_refused(key)
    }

    /// Makes the thumbnail `key` of `original` unless it exists; `false` when it cannot be
    /// made (the original is then served, as PocketBase does).
    pub async fn ensure(
        &self,
        storage: &Storage,
        original: &str,
        key: &str,
        format: ImageFormat,
        size: ThumbSize,
    ) -> bool {
        if self.is_refused(key) {
            return false;
        }
        match storage.exists(key).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "checking a thumbnail failed");
                return false;
            }
        }
        let flight = {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match pending.get(key) {
                Some(flight) => flight.clone(),
                None if pending.len() >= self.shared.max_pending => {
                    tracing::debug!("too many thumbnails pending; serving the original");
                    return false;
                }
                None => {
                    // The entry goes in before the task can run (it is inserted under the
                    // lock the task needs to remove it), so the task always removes its own.
                    let landed = Landed {
                        jobs: self.shared.clone(),
                        key: key.to_owned(),
                    };
                    let task = tokio::spawn(run(
                        landed,
                        storage.clone(),
                        original.to_owned(),
                        format,
                        size,
                    ));
                    let flight = async move { task.await.unwrap_or(false) }.boxed().shared();
                    pending.insert(key.to_owned(), flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    /// How many thumbs are being made right now.
    pub fn in_flight(&self) -> usize {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many generations have started.
    pub fn started(&self) -> u64 {
        self.shared.started.load(Ordering::Relaxed)
    }
}

/// One generation, on its own task: whatever happens to the requests that asked for it, it
/// ends with the thumb stored, remembered as refused, or (something passing) neither.
async fn run(
    landed: Landed,
    storage: Storage,
    original: String,
    format: ImageFormat,
    size: ThumbSize,
) -> bool {
    let (jobs, key) = (&landed.jobs, landed.key.as_str());
    // A request that found no thumb may arrive here after an earlier generation finished
    // and left: look again before making it a second time.
    if let Ok(true) = storage.exists(key).await {
        return true;
    }
    match jobs.generate(&storage, &original, key, format, size).await {
        Outcome::Made => true,
        Outcome::Refused => {
            jobs.failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key);
            false
        }
        Outcome::Failed => false,
    }
}

impl Jobs {
    fn is_refused(&self, key: &str) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .contains(key)
    }

    async fn generate(
        &self,
        storage: &Storage,
        original: &str,
        key: &str,
        format: ImageFormat,
        size: ThumbSize,
    ) -> Outcome {
        self.started.fetch_add(1, Ordering::Relaxed);
        let file_len = match storage.head(original).await {
            Ok(meta) if meta.size > thumbs::MAX_SOURCE_BYTES => {
                tracing::debug!(size = meta.size, "thumbnail source too large; serving it");
                return Outcome::Refused;
            }
            Ok(meta) => meta.size,
            Err(StorageError::NotFound) => return Outcome::Failed,
            Err(error) => {
                tracing::warn!(%error, "reading a thumbnail source failed");
                return Outcome::Failed;
            }
        };
        let Ok(Ok(slot)) = tokio::time::timeout(self.wait, self.slots.acquire()).await else {
            tracing::debug!("no thumbnail slot free in time; serving the original");
            return Outcome::Failed;
        };
        // The source is in memory from the read on (and a decoder may copy it while
        // planning): its length is held from the budget before it is read.
        let held = units_for(file_len);
        let Ok(Ok(mut budget)) =
            tokio::time::timeout(self.wait, self.budget.acquire_many(held)).await
        else {
            tracing::debug!("no thumbnail budget free in time; serving the original");
            return Outcome::Failed;
        };
        let source = match storage.read_all(original).await {
            Ok(source) => source,
            Err(error) => {
                tracing::warn!(%error, "reading a thumbnail source failed");
                return Outcome::Failed;
            }
        };
        let planned = {
            let source = source.clone();
            tokio::task::spawn_blocking(move || thumbs::plan(&source, format, size)).await
        };
        let plan = match planned {
            Ok(Ok(plan)) => plan,
            Ok(Err(error)) => {
                tracing::debug!(%error, "thumbnail not made; serving the original");
                return Outcome::Refused;
            }
            Err(error) => {
                tracing::warn!(%error, "thumbnail task failed");
                return Outcome::Failed;
            }
        };
        // The plan's peak counts the file too: top the held budget up to it.
        let more = units_for(plan.peak_bytes).saturating_sub(held);
        if more > 0 {
            let Ok(Ok(extra)) =
                tokio::time::timeout(self.wait, self.budget.acquire_many(more)).await
            else {
                tracing::debug!("no thumbnail budget free in time; serving the original");
                return Outcome::Failed;
            };
            budget.merge(extra);
        }
        // This task outlives its requests, so the permits it holds are released only when
        // the blocking work is done and its result handled.
        let made = tokio::task::spawn_blocking(move || thumbs::make(&source, format, size)).await;
        drop((budget, slot));
        match made {
            Ok(Ok(bytes)) => match storage.put(key, bytes.into()).await {
                Ok(()) => Outcome::Made,
                Err(error) => {
                    tracing::warn!(%error, "storing a thumbnail failed");
                    Outcome::Failed
                }
            },
            Ok(Err(error)) => {
                tracing::debug!(%error, "thumbnail not made; serving the original");
                Outcome::Refused
            }
            Err(error) => {
                tracing::warn!(%error, "thumbnail task failed");
                Outcome::Failed
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn png() -> axum::body::Bytes {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::new_rgba8(30, 20)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner().into()
    }

    /// A request that finds no slot (or no budget) in time gets the original, and the thumb
    /// is not remembered as refused: a later request makes it.
    #[tokio::test]
    async fn no_slot_in_time_serves_the_original_without_remembering() {
        let storage = Storage::memory();
        storage.put("c/r/a_abcdefghij.png", png()).await.unwrap();
        let size = ThumbSize::parse("10x10").unwrap();
        let thumb = "c/r/thumbs_a_abcdefghij.png/10x10_a_abcdefghij.png";
        let busy = ThumbJobs::new(0, TOTAL_BUDGET_BYTES, Duration::from_millis(20));
        let made = busy
            .ensure(
                &storage,
                "c/r/a_abcdefghij.png",
                thumb,
                ImageFormat::Png,
                size,
            )
            .await;
        assert!(!made);
        assert!(!busy.is_refused(thumb));
        assert!(!storage.exists(thumb).await.unwrap());
        let poor = ThumbJobs::new(1, 0, Duration::from_millis(20));
        assert!(
            !poor
                .ensure(
                    &storage,
                    "c/r/a_abcdefghij.png",
                    thumb,
                    ImageFormat::Png,
                    size
                )
                .await
        );
        let free = ThumbJobs::new(1, TOTAL_BUDGET_BYTES, Duration::from_millis(20));
        assert!(
            free.ensure(
                &storage,
                "c/r/a_abcdefghij.png",
                thumb,
                ImageFormat::Png,
                size
            )
            .await
        );
        assert!(storage.exists(thumb).await.unwrap());
    }

    /// Generations outlive their requests, so their number is bounded: with every pending
    /// place taken (no slot free, so nothing finishes), a request for another thumb is
    /// served the original at once, and nothing about it is remembered.
    #[tokio::test]
    async fn pending_generations_are_bounded() {
        let storage = Storage::memory();
        storage.put("c/r/a_abcdefghij.png", png()).await.unwrap();
        let jobs = Arc::new(ThumbJobs::with_max_pending(
            0,
            TOTAL_BUDGET_BYTES,
            Duration::from_secs(60),
            2,
        ));
        let mut waiting = Vec::new();
        for side in [10, 11] {
            let (jobs, storage) = (jobs.clone(), storage.clone());
            waiting.push(tokio::spawn(async move {
                let size = ThumbSize::parse(&format!("{side}x{side}")).unwrap();
                let key = format!("c/r/thumbs_a_abcdefghij.png/{side}x{side}_a_abcdefghij.png");
                jobs.ensure(
                    &storage,
                    "c/r/a_abcdefghij.png",
                    &key,
                    ImageFormat::Png,
                    size,
                )
                .await
            }));
        }
        eventually(|| jobs.in_flight() == 2).await;
        assert_eq!(jobs.in_flight(), 2);
        let third = "c/r/thumbs_a_abcdefghij.png/12x12_a_abcdefghij.png";
        let made = jobs
            .ensure(
                &storage,
                "c/r/a_abcdefghij.png",
                third,
                ImageFormat::Png,
                ThumbSize::parse("12x12").unwrap(),
            )
            .await;
        assert!(!made, "past the bound the original is served");
        assert!(!jobs.is_refused(third), "and nothing is remembered");
        assert_eq!(jobs.in_flight(), 2);
        eventually(|| jobs.started() >= 2).await;
        assert_eq!(
            jobs.started(),
            2,
            "no generation started for the third thumb"
        );
        for task in waiting {
            task.abort();
        }
    }

    /// Waits (a bounded number of short sleeps) until `done` holds; the tests assert the
    /// outcome, not how long it took.
    async fn eventually(mut done: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Issue #11 fix-up: a generation ran inside the request's future, so a client that
    /// disconnected threw its work away and the next request started again. A generation
    /// now runs on its own task: once started it completes and stores the thumb whatever
    /// happens to the requests, and the next request finds it.
    #[tokio::test]
    async fn a_generation_whose_requester_left_still_completes_and_stores() {
        let storage = Storage::memory();
        storage.put("c/r/a_abcdefghij.png", png()).await.unwrap();
        let size = ThumbSize::parse("10x10").unwrap();
        let thumb = "c/r/thumbs_a_abcdefghij.png/10x10_a_abcdefghij.png";
        // No slot yet: the generation starts and waits, so the request can leave mid-way.
        let jobs = Arc::new(ThumbJobs::new(
            0,
            TOTAL_BUDGET_BYTES,
            Duration::from_secs(60),
        ));
        let request = {
            let (jobs, storage) = (jobs.clone(), storage.clone());
            tokio::spawn(async move {
                jobs.ensure(
                    &storage,
                    "c/r/a_abcdefghij.png",
                    thumb,
                    ImageFormat::Png,
                    size,
                )
                .await
            })
        };
        eventually(|| jobs.started() == 1).await;
        assert_eq!(jobs.started(), 1);
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        jobs.shared.slots.add_permits(1);
        eventually(|| jobs.in_flight() == 0).await;
        assert!(
            storage.exists(thumb).await.unwrap(),
            "the thumb is stored though its requester left"
        );
        assert!(
            jobs.ensure(
                &storage,
                "c/r/a_abcdefghij.png",
                thumb,
                ImageFormat::Png,
                size
            )
            .await
        );
        assert_eq!(jobs.started(), 1, "the next request uses the stored thumb");
    }

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

    /// A refusal found by a generation whose requester left is remembered all the same.
    #[tokio::test]
    async fn a_refusal_whose_requester_left_is_remembered() {
        let storage = Storage::memory();
        let broken = axum::body::Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really");
        storage.put("c/r/b_abcdefghij.png", broken).await.unwrap();
        let size = ThumbSize::parse("10x10").unwrap();
        let thumb = "c/r/thumbs_b_abcdefghij.png/10x10_b_abcdefghij.png";
        let jobs = Arc::new(ThumbJobs::new(
            0,
            TOTAL_BUDGET_BYTES,
            Duration::from_secs(60),
        ));
        let request = {
            let (jobs, storage) = (jobs.clone(), storage.clone());
            tokio::spawn(async move {
                jobs.ensure(
                    &storage,
                    "c/r/b_abcdefghij.png",
                    thumb,
                    ImageFormat::Png,
                    size,
                )
                .await
            })
        };
        eventually(|| jobs.started() == 1).await;
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        jobs.shared.slots.add_permits(1);
        eventually(|| jobs.in_flight() == 0).await;
        assert!(jobs.is_refused(thumb));
        assert!(
            !jobs
                .ensure(
                    &storage,
                    "c/r/b_abcdefghij.png",
                    thumb,
                    ImageFormat::Png,
                    size
                )
                .await
        );
        assert_eq!(jobs.started(), 1, "no second attempt");
    }
}
