//! Password hashing. New hashes are bcrypt (cost from the boot config), the format PocketBase
//! writes, so a database can move between PocketBase and Plinth in both directions. argon2id
//! hashes verify too. Hashing runs on the blocking pool, never on an async worker.

/// Hashes `password` with bcrypt at `cost`.
pub async fn hash(password: String, cost: u32) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| PasswordError(e.to_string()))?
        .map_err(|e| PasswordError(e.to_string()))
}

/// Checks `password` against a stored bcrypt or argon2id hash. An empty or unknown hash
/// never matches.
pub async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&password, &stored))
        .await
        .unwrap_or(false)
}

fn verify_blocking(password: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        bcrypt::verify(password, stored).unwrap_or(false)
    } else if stored.starts_with("$argon2") {
        use argon2::PasswordVerifier;
        match argon2::password_hash::phc::PasswordHash::new(stored) {
            Ok(parsed) => argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    } else {
        false
    }
}

/// Hashing failed (only on a broken runtime or an invalid cost).
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
        assert!(!verify("wrong".into(), hashed).await);
        assert!(!verify("x".into(), String::new()).await);
    }
}
