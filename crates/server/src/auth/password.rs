//! Password hashing. New hashes are argon2id, with parameters chosen so a login costs about
//! what PocketBase's bcrypt cost 10 costs; bcrypt hashes (PocketBase's format, from imported
//! data or the superuser CLI) still verify and are rehashed on the next successful login.
//! Hashing never runs on an async worker: bcrypt runs on the blocking pool, and each argon2id
//! hash or check on a thread of its own whose stack holds the algorithm's memory (see
//! `run_with_blocks`).

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::state::Argon2Params;

/// Blocks (1 KiB each) an argon2id run takes from its thread's stack: the default
/// parameters' 19 MiB (`Argon2Params::default().memory_kib`). A run that needs more (a hash
/// made with larger parameters) takes them from the heap.
const STACK_BLOCKS: usize = 19_456;

/// Runs needing at most this many blocks (1 MiB; the test-only weak parameters take 64) take
/// them from the heap: the stack array is zeroed whole, 19 MiB, whatever a run needs.
const SMALL_BLOCKS: usize = 1024;

/// The stack of a hashing thread: room for the blocks twice over (an unoptimized build may
/// build the array in a temporary before moving it) and for the algorithm's own frames. A
/// run on the stack writes the whole array; the rest of the reservation stays untouched.
const HASH_THREAD_STACK: usize = 2 * STACK_BLOCKS * Block::SIZE + (4 << 20);

/// The most blocks a stored hash may ask a check to take (256 MiB): a hash naming more is
/// refused rather than allowed to claim that memory.
const MAX_BLOCKS: usize = 256 * 1024;

/// The most passes a stored hash may ask a check to make (the default parameters make 7): a
/// hash naming more never matches, rather than holding a hashing permit for minutes.
const MAX_PASSES: u32 = 64;

/// The argon2id hasher for `params`.
fn hasher(params: &Argon2Params) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| PasswordError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Runs one bcrypt hash or check on the blocking pool, at most one per CPU at a time (the
/// permits are shared with argon2id runs).
async fn run_bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let permit = permits()
        .0
        .acquire()
        .await
        .map_err(|e| PasswordError(e.to_string()))?;
    // The permit goes with the work: a caller that stops waiting (a client that hung up)
    // does not free its place while the hash still runs.
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| PasswordError(e.to_string()))
}

/// Runs one argon2id run with `count` zeroed blocks, at most one per CPU at a time.
///
/// Each run gets a thread of its own and, up to `STACK_BLOCKS`, finds its blocks on that
/// thread's stack. When the thread ends, glibc gives the stack's pages back to the kernel
/// (`MADV_DONTNEED`), so a burst of logins leaves nothing behind. From the heap, the
/// allocator would keep each freed 19 MiB block until a later free let it purge the pages,
/// and small allocations placed in the freed range meanwhile would pin it: after 200
/// logins the server stayed 14 MiB above its idle size. Starting a thread costs tens of
/// microseconds, against tens of milliseconds for the hash.
async fn run_with_blocks<T: Send + 'static>(
    count: usize,
    work: impl FnOnce(&mut [Block]) -> T + Send + 'static,
) -> Result<T, PasswordError> {
    if count > MAX_BLOCKS {
        return Err(PasswordError(format!(
            "argon2id parameters asking for {count} KiB of memory (at most {MAX_BLOCKS})"
        )));
    }
    let permit = permits()
        .0
        .acquire()
        .await
        .map_err(|e| PasswordError(e.to_string()))?;
    // The permit goes with the work (to the thread, or to the blocking pool): a caller that
    // stops waiting (a client that hung up) does not free its place while the run goes on.
    // Shared, so that both are still here to run elsewhere if no thread can be started.
    let job = std::sync::Arc::new(std::sync::Mutex::new(Some((permit, work))));
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let on_thread = std::sync::Arc::clone(&job);
    let spawned = if refuse_hashing_threads() {
        Err(std::io::Error::other("hashing threads refused (test)"))
    } else {
        std::thread::Builder::new()
            .name("plinth-argon2".to_owned())
            .stack_size(HASH_THREAD_STACK)
            .spawn(move || {
                let answer = take(&on_thread).and_then(|(_permit, work)| {
                    let _running = Running::start();
                    if (SMALL_BLOCKS + 1..=STACK_BLOCKS).contains(&count) {
                        let mut memory = [Block::new(); STACK_BLOCKS];
                        memory.get_mut(..count).map(work)
                    } else {
                        with_heap_blocks(count, work)
                    }
                });
                let _ = sender.send(answer);
            })
    };
    let answer = match spawned {
        Ok(_) => receiver
            .await
            .map_err(|_| PasswordError("the hashing thread ended without an answer".to_owned()))?,
        Err(error) => {
            // At a thread limit: the blocking pool's threads, with the blocks from the heap.
            tracing::warn!(%error, "could not start a hashing thread; hashing on the blocking pool");
            let (permit, work) = take(&job)
                .ok_or_else(|| PasswordError("the hashing work was already taken".to_owned()))?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let _running = Running::start();
                with_heap_blocks(count, work)
            })
            .await
            .map_err(|e| PasswordError(e.to_string()))?
        }
    };
    answer.ok_or_else(|| PasswordError(format!("no memory for {count} argon2id blocks")))
}

/// Counts the argon2id runs going on (in tests: the most at once is kept, to check it never
/// passes the permits).
struct Running;

#[cfg(test)]
static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
#[cfg(test)]
static MOST_RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Running {
    fn start() -> Running {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            MOST_RUNNING.fetch_max(now, Ordering::SeqCst);
        }
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        #[cfg(test)]
        RUNNING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What `slot` holds, taken out of it (once).
fn take<T>(slot: &std::sync::Mutex<Option<T>>) -> Option<T> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// Runs `work` on `count` zeroed blocks taken from the heap; `None` when they cannot be had.
fn with_heap_blocks<T>(count: usize, work: impl FnOnce(&mut [Block]) -> T) -> Option<T> {
    let mut memory = Vec::new();
    memory.try_reserve_exact(count).ok()?;
    memory.resize(count, Block::new());
    Some(work(&mut memory))
}

/// Tests set this to run argon2id as when no thread can be started.
#[cfg(test)]
static REFUSE_HASHING_THREADS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn refuse_hashing_threads() -> bool {
    #[cfg(test)]
    {
        REFUSE_HASHING_THREADS.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// The hashing permits (one per CPU) and their number.
fn permits() -> &'static (tokio::sync::Semaphore, usize) {
    static PERMITS: std::sync::OnceLock<(tokio::sync::Semaphore, usize)> =
        std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        (tokio::sync::Semaphore::new(cpus), cpus)
    })
}

/// Takes every hashing permit, so no hash or verify can run until it is dropped: tests use it
/// to prove a request does not wait for the hasher.
#[cfg(test)]
pub(crate) async fn hold_all_hashing() -> tokio::sync::SemaphorePermit<'static> {
    let (semaphore, count) = permits();
    semaphore
        .acquire_many(u32::try_from(*count).unwrap_or(u32::MAX))
        .await
        .expect("the hashing semaphore is never closed")
}

/// Hashes `password` with bcrypt at `cost` (PocketBase's format).
pub async fn hash(password: String, cost: u32) -> Result<String, PasswordError> {
    run_bounded(move || bcrypt::hash(password, cost))
        .await?
        .map_err(|e| PasswordError(e.to_string()))
}

/// Hashes `password` with argon2id, in the PHC string format (`$argon2id$v=19$m=…`).
pub async fn hash_argon2(password: String, params: Argon2Params) -> Result<String, PasswordError> {
    let hasher = hasher(&params)?;
    let salt = argon2::password_hash::try_generate_salt()
        .map_err(|e| PasswordError(format!("no random salt: {e}")))?;
    let count = hasher.params().block_count();
    let (hasher, output) = run_with_blocks(count, move |blocks| {
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        hasher
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut output, blocks)
            .map(|()| (hasher, output))
    })
    .await?
    .map_err(|e| PasswordError(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(hasher.params())
            .map_err(|e| PasswordError(e.to_string()))?,
        salt: Some(Salt::new(&salt).map_err(|e| PasswordError(e.to_string()))?),
        hash: Some(Output::new(&output).map_err(|e| PasswordError(e.to_string()))?),
    };
    Ok(phc.to_string())
}

/// Whether a stored hash should be replaced by an argon2id one after a successful login.
pub fn needs_rehash(stored: &str) -> bool {
    stored.starts_with("$2")
}

/// Checks `password` against a stored bcrypt or argon2id hash. An empty or unknown hash
/// never matches.
pub async fn verify(password: String, stored: String) -> bool {
    count_check(&stored);
    if stored.starts_with("$2") {
        run_bounded(move || bcrypt::verify(password, &stored).unwrap_or(false))
            .await
            .unwrap_or(false)
    } else if stored.starts_with("$argon2") {
        verify_argon2(password, &stored).await
    } else {
        false
    }
}

/// Checks `password` against an argon2 hash in the PHC format, with the parameters the hash
/// names (so any cost verifies), comparing the outputs in constant time.
async fn verify_argon2(password: String, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.t_cost() > MAX_PASSES {
        tracing::warn!(
            passes = params.t_cost(),
            "an argon2id hash asks for more passes than a check makes"
        );
        return false;
    }
    let hasher = Argon2::new(algorithm, version, params);
    let count = hasher.params().block_count();
    let computed = run_with_blocks(count, move |blocks| {
        let mut output = [0u8; Output::MAX_LENGTH];
        let output = output.get_mut(..expected.len())?;
        hasher
            .hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), output, blocks)
            .ok()?;
        // `Output`'s equality is constant-time.
        Some(Output::new(output).is_ok_and(|computed| computed == expected))
    })
    .await;
    match computed {
        Ok(matched) => matched == Some(true),
        Err(error) => {
            // Refused parameters (over 256 MiB), or no way to run: never a match.
            tracing::warn!(%error, "an argon2id check did not run");
            false
        }
    }
}

/// How many checks ran against each stored hash, so tests can see that a failure spent a
/// real check without timing it.
#[cfg(test)]
pub(crate) static CHECKS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, usize>>,
> = std::sync::LazyLock::new(Default::default);

fn count_check(stored: &str) {
    #[cfg(test)]
    {
        let mut checks = CHECKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *checks.entry(stored.to_owned()).or_default() += 1;
    }
    #[cfg(not(test))]
    let _ = stored;
}

/// Hashing failed (only on a broken runtime or invalid parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bcrypt_round_trip_and_pocketbase_hash() {
        let hashed = hash("secret-pass".into(), 4).await.expect("hashes");
        assert!(verify("secret-pass".into(), hashed.clone()).await);
        assert!(!verify("wrong".into(), hashed.clone()).await);
        assert!(!verify("x".into(), String::new()).await);
        assert!(needs_rehash(&hashed));
    }

    #[tokio::test]
    async fn argon2id_round_trip_with_both_parameter_sets() {
        for params in [Argon2Params::for_bcrypt_cost(4), Argon2Params::default()] {
            let hashed = hash_argon2("secret-pass".into(), params)
                .await
                .expect("hashes");
            assert!(hashed.starts_with("$argon2id$v=19$"), "{hashed}");
            assert!(hashed.contains(&format!("m={}", params.memory_kib)));
            assert!(verify("secret-pass".into(), hashed.clone()).await);
            assert!(!verify("secret-pasS".into(), hashed.clone()).await);
            assert!(!needs_rehash(&hashed));
        }
    }

    /// Hashes made here and by the argon2 crate's own hasher (the format of every hash stored
    /// before this module ran argon2 itself) verify both ways, on the stack path and on the
    /// heap path, with one and with two lanes.
    #[tokio::test]
    async fn argon2id_hashes_match_the_crates_own_format() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let cases = [
            (64, 1, 1),
            (19_456, 2, 1),
            (256, 2, 2),
            // More than the stack holds: taken from the heap.
            (u32::try_from(STACK_BLOCKS).expect("small") + 1024, 1, 1),
        ];
        for (memory_kib, iterations, parallelism) in cases {
            let params = Argon2Params {
                memory_kib,
                iterations,
                parallelism,
            };
            let ours = hash_argon2("secret-pass".into(), params)
                .await
                .expect("hashes");
            let parsed = PasswordHash::new(&ours).expect("a PHC string");
            assert_eq!(parsed.algorithm.as_str(), "argon2id", "{ours}");
            assert_eq!(parsed.salt.map(|salt| salt.len()), Some(16), "{ours}");
            assert_eq!(parsed.hash.map(|hash| hash.len()), Some(32), "{ours}");
            let theirs = hasher(&params).expect("params");
            theirs
                .verify_password(b"secret-pass", ours.as_str())
                .expect("the crate verifies our hash");
            assert!(
                theirs
                    .verify_password(b"secret-pasS", ours.as_str())
                    .is_err()
            );
            let made = theirs
                .hash_password(b"secret-pass")
                .expect("hashes")
                .to_string();
            assert!(verify("secret-pass".into(), made.clone()).await, "{made}");
            assert!(!verify("secret-pass ".into(), made.clone()).await);
            assert!(
                !verify(
                    "secret-pass".into(),
                    made.replacen("$argon2id$", "$argon2i$", 1)
                )
                .await
            );
            assert!(verify("secret-pass".into(), ours).await);
        }
    }

    /// A stored hash that is not a whole argon2 PHC string, or that asks for more memory than
    /// a check may take, never matches (and never claims that memory).
    #[tokio::test]
    async fn malformed_or_oversized_argon2_hashes_never_match() {
        let good = hash_argon2("pw-12345678".into(), Argon2Params::for_bcrypt_cost(4))
            .await
            .expect("hashes");
        assert!(verify("pw-12345678".into(), good.clone()).await);
        let (head, tail) = good.rsplit_once('$').expect("a hash part");
        let huge = good.replacen("m=64,", &format!("m={},", MAX_BLOCKS + 1), 1);
        assert_ne!(huge, good);
        // Passes: a real hash at the bound verifies; one past it never matches.
        for (passes, matches) in [(MAX_PASSES, true), (MAX_PASSES + 1, false)] {
            let params = Argon2Params {
                memory_kib: 8,
                iterations: passes,
                parallelism: 1,
            };
            let stored = hash_argon2("pw-12345678".into(), params)
                .await
                .expect("hashes");
            assert_eq!(
                verify("pw-12345678".into(), stored.clone()).await,
                matches,
                "{stored}"
            );
        }
        for stored in [
            head.to_owned(),
            format!("{head}$"),
            format!("{head}${}", &tail[1..]),
            "$argon2id$v=19$m=64,t=1,p=1".to_owned(),
            "$argon2x$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            good.replacen("v=19", "v=99", 1),
            huge,
        ] {
            assert!(
                !verify("pw-12345678".into(), stored.clone()).await,
                "{stored}"
            );
        }
        let refused = run_with_blocks(MAX_BLOCKS + 1, |_| ()).await;
        assert!(refused.is_err());
        let taken = run_with_blocks(8, |blocks| blocks.len())
            .await
            .expect("runs");
        assert_eq!(taken, 8);
    }

    /// Where no hashing thread can be started, hashes and checks still run (on the blocking
    /// pool, blocks from the heap) and give the same answers.
    #[tokio::test]
    async fn argon2id_runs_without_a_thread_of_its_own() {
        use std::sync::atomic::Ordering;
        let stored = hash_argon2("pw-87654321".into(), Argon2Params::for_bcrypt_cost(4))
            .await
            .expect("hashes");
        REFUSE_HASHING_THREADS.store(true, Ordering::Relaxed);
        let made = hash_argon2("pw-87654321".into(), Argon2Params::for_bcrypt_cost(4)).await;
        let right = verify("pw-87654321".into(), stored.clone()).await;
        let wrong = verify("pw-87654322".into(), stored.clone()).await;
        REFUSE_HASHING_THREADS.store(false, Ordering::Relaxed);
        let made = made.expect("hashes on the blocking pool");
        assert!(right && !wrong);
        assert!(verify("pw-87654321".into(), made).await);
    }

    /// Callers that stop waiting (a client hanging up on its login) do not give their place
    /// back while their run goes on: however many are dropped, no more runs than permits are
    /// ever going on at once.
    #[tokio::test]
    async fn dropped_callers_keep_their_place_until_their_run_ends() {
        use std::sync::atomic::Ordering;
        let stored = hash_argon2("pw-13572468".into(), Argon2Params::default())
            .await
            .expect("hashes");
        let (_, permits) = permits();
        for _ in 0..3 * permits {
            let caller = tokio::spawn(verify("pw-13572468".into(), stored.clone()));
            tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            caller.abort();
        }
        for _ in 0..1000 {
            if RUNNING.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let most = MOST_RUNNING.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= *permits,
            "{most} runs at once, {permits} permits"
        );
    }
}
