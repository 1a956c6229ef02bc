//! Thumbnail generation as a bounded shared resource. A first request for a thumb decodes and
//! resamples its original, which costs CPU and memory no other request does; unbounded, a
//! handful of concurrent first requests for large images exhausts the server. So:
//! generations run on blocking threads, at most one per CPU at a time and together within a
//! memory budget (each holds the bytes its [`thumbs::plan`] priced); concurrent requests for
//! the same thumb wait for one generation (single flight); and a thumb that cannot be made is
//! remembered for a while (a bounded set), so the original is served without retrying.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use image::ImageFormat;
use tokio::sync::{OnceCell, Semaphore};

use super::storage::{Storage, StorageError};
use super::thumbs::{self, ThumbSize};

/// Planned peak bytes all generations may hold together.
pub const TOTAL_BUDGET_BYTES: u64 = 512 << 20;
/// How many refused thumbs are remembered (oldest forgotten first).
pub const REMEMBERED_FAILURES: usize = 4096;
/// How long a request waits for a generation slot before the original is served instead.
pub const SLOT_WAIT: Duration = Duration::from_secs(30);
/// The budget's unit: one permit per MiB.
const BUDGET_UNIT: u64 = 1 << 20;

/// The shared state of thumbnail generation (one per server).
pub struct ThumbJobs {
    slots: Arc<Semaphore>,
    budget: Arc<Semaphore>,
    /// Generations under way by thumb key, with how many requests wait on each.
    pending: Mutex<HashMap<String, Pending>>,
    failed: Mutex<Failures>,
    /// Generations started (tests observe single flight and remembered refusals with it).
    started: AtomicU64,
    /// How long a request waits for a slot or for budget.
    wait: Duration,
}

impl Default for ThumbJobs {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        ThumbJobs::new(cpus, TOTAL_BUDGET_BYTES, SLOT_WAIT)
    }
}

impl ThumbJobs {
    /// `slots` generations at once within `budget` planned bytes, each request waiting at
    /// most `wait` for its turn.
    pub fn new(slots: usize, budget: u64, wait: Duration) -> Self {
        ThumbJobs {
            slots: Arc::new(Semaphore::new(slots)),
            budget: Arc::new(Semaphore::new((budget / BUDGET_UNIT) as usize)),
            pending: Mutex::default(),
            failed: Mutex::default(),
            started: AtomicU64::new(0),
            wait,
        }
    }
}

/// One generation under way: its outcome, once known, and how many requests wait on it.
type Pending = (Arc<OnceCell<bool>>, usize);

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

/// A request's hold on a pending generation; see [`ThumbJobs::ensure`].
struct Leave<'a> {
    jobs: &'a ThumbJobs,
    key: &'a str,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut pending = self
            .jobs
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, waiting)) = pending.get_mut(self.key) {
            *waiting = waiting.saturating_sub(1);
            if *waiting == 0 {
                pending.remove(self.key);
            }
        }
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

impl ThumbJobs {
    /// Whether `key` is remembered as a thumb that cannot be made.
    pub fn is_refused(&self, key: &str) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys
            .contains(key)
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
        let cell = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let (cell, waiting) = pending.entry(key.to_owned()).or_default();
            *waiting += 1;
            cell.clone()
        };
        // Removes the entry when the last request waiting on it finishes or goes away (a
        // client that disconnects must not leave its key behind).
        let _leave = Leave { jobs: self, key };
        *cell
            .get_or_init(|| async {
                // A request that found no thumb may arrive here after an earlier generation
                // finished and left: look again before making it a second time.
                if let Ok(true) = storage.exists(key).await {
                    return true;
                }
                match self.generate(storage, original, key, format, size).await {
                    Outcome::Made => true,
                    Outcome::Refused => {
                        self.failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(key);
                        false
                    }
                    Outcome::Failed => false,
                }
            })
            .await
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
        match storage.head(original).await {
            Ok(meta) if meta.size > thumbs::MAX_SOURCE_BYTES => {
                tracing::debug!(size = meta.size, "thumbnail source too large; serving it");
                return Outcome::Refused;
            }
            Ok(_) => {}
            Err(StorageError::NotFound) => return Outcome::Failed,
            Err(error) => {
                tracing::warn!(%error, "reading a thumbnail source failed");
                return Outcome::Failed;
            }
        }
        let Ok(Ok(slot)) =
            tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await
        else {
            tracing::debug!("no thumbnail slot free in time; serving the original");
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
        let units = plan.peak_bytes.div_ceil(BUDGET_UNIT).max(1);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        let Ok(Ok(budget)) =
            tokio::time::timeout(self.wait, self.budget.clone().acquire_many_owned(units)).await
        else {
            return Outcome::Failed;
        };
        // The permits travel with the work: a request that gives up does not free them
        // before the blocking thread is done.
        let made = tokio::task::spawn_blocking(move || {
            let made = thumbs::make(&source, format, size);
            drop((budget, slot));
            made
        })
        .await;
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

    /// How many thumbs are being made or waited for right now.
    pub fn in_flight(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// How many generations have started.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
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
}
