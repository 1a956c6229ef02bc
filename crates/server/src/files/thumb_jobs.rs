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
//!
//! The shared state (slots, budget, generations under way, refusals) is on the ground floor
//! ([`crate::state::thumb_jobs`]); here is the generation.

use futures_util::FutureExt;
use image::ImageFormat;

use super::thumbs::{self, ThumbSize};
use crate::state::storage::{Storage, StorageError};
use crate::state::thumb_jobs::{Jobs, Landed, ThumbJobs, units_for};

/// Why a generation did not produce a thumb.
enum Outcome {
    Made,
    /// The image cannot be thumbnailed within the bounds (or at all): remembered.
    Refused,
    /// Something passing (storage, a full queue): tried again on a later request.
    Failed,
}

impl ThumbJobs {
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
        let flight = self.join_or_start(key, |landed| {
            let task = tokio::spawn(run(
                landed,
                storage.clone(),
                original.to_owned(),
                format,
                size,
            ));
            async move { task.await.unwrap_or(false) }.boxed().shared()
        });
        match flight {
            Some(flight) => flight.await,
            None => {
                tracing::debug!("too many thumbnails pending; serving the original");
                false
            }
        }
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
    let (jobs, key) = (landed.jobs(), landed.key());
    // A request that found no thumb may arrive here after an earlier generation finished
    // and left: look again before making it a second time.
    if let Ok(true) = storage.exists(key).await {
        return true;
    }
    match generate(jobs, &storage, &original, key, format, size).await {
        Outcome::Made => true,
        Outcome::Refused => {
            jobs.refuse(key);
            false
        }
        Outcome::Failed => false,
    }
}

/// Makes one thumb within the shared slots and budget.
async fn generate(
    jobs: &Jobs,
    storage: &Storage,
    original: &str,
    key: &str,
    format: ImageFormat,
    size: ThumbSize,
) -> Outcome {
    jobs.count_start();
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
    let Ok(Ok(slot)) = tokio::time::timeout(jobs.wait, jobs.slots.acquire()).await else {
        tracing::debug!("no thumbnail slot free in time; serving the original");
        return Outcome::Failed;
    };
    // The source is in memory from the read on (and a decoder may copy it while
    // planning): its length is held from the budget before it is read.
    let held = units_for(file_len);
    let Ok(Ok(mut budget)) = tokio::time::timeout(jobs.wait, jobs.budget.acquire_many(held)).await
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
        let Ok(Ok(extra)) = tokio::time::timeout(jobs.wait, jobs.budget.acquire_many(more)).await
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::state::thumb_jobs::TOTAL_BUDGET_BYTES;

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
        jobs.jobs().slots.add_permits(1);
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
        jobs.jobs().slots.add_permits(1);
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
