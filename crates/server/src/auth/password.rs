//! Password hashing. New hashes are argon2id, with parameters chosen so a login costs about
//! what PocketBase's bcrypt cost 10 costs; bcrypt hashes (PocketBase's format, from imported
//! data or the superuser CLI) still verify and are rehashed on the next successful login.
//! Hashing runs on the blocking pool, never on an async worker.

use argon2::{Algorithm, Argon2, Params, Version};

use crate::state::Argon2Params;

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

/// Runs one hash or verify on the blocking pool, at most one per CPU at a time. Each argon2id
/// check claims ~19 MiB; without this bound a burst of logins would spawn a blocking thread
/// (and claim that memory) per request, and the allocator keeps what it was given.
async fn run_bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let _permit = permits()
        .0
        .acquire()
        .await
        .map_err(|e| PasswordError(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PasswordError(e.to_string()))
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

/// Hashes `password` with argon2id.
pub async fn hash_argon2(password: String, params: Argon2Params) -> Result<String, PasswordError> {
    run_bounded(move || {
        use argon2::PasswordHasher;
        let hasher = hasher(&params)?;
        hasher
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| PasswordError(e.to_string()))
    })
    .await?
}

/// Whether a stored hash should be replaced by an argon2id one after a successful login.
pub fn needs_rehash(stored: &str) -> bool {
    stored.starts_with("$2")
}

/// Checks `password` against a stored bcrypt or argon2id hash. An empty or unknown hash
/// never matches.
pub async fn verify(password: String, stored: String) -> bool {
    run_bounded(move || verify_blocking(&password, &stored))
        .await
        .unwrap_or(false)
}

/// How many checks ran against each stored hash, so tests can see that a failure spent a
/// real check without timing it.
#[cfg(test)]
pub(crate) static CHECKS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, usize>>,
> = std::sync::LazyLock::new(Default::default);

pub(crate) fn verify_blocking(password: &str, stored: &str) -> bool {
    #[cfg(test)]
    {
        let mut checks = CHECKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *checks.entry(stored.to_owned()).or_default() += 1;
    }
    if stored.starts_with("$2") {
        bcrypt::verify(password, stored).unwrap_or(false)
    } else if stored.starts_with("$argon2") {
        use argon2::PasswordVerifier;
        // The parameters come from the hash itself, so any cost verifies.
        match argon2::password_hash::phc::PasswordHash::new(stored) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    } else {
        false
    }
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
}
