//! Tokens that verified recently, so the same token sent again skips the signature check.
//!
//! A PocketBase token is verified against a key made of the record's `tokenKey` and the
//! collection's secret for the token's type, both read fresh on every request. Checking the
//! HS256 signature and parsing the token's two JSON parts is then the same work every time
//! for the same token and key: about a sixth of a `view` request's CPU. This cache keeps, per
//! exact token text, the key it verified with and its claims. A token found here is accepted
//! only if the key made from the record and collection just read is byte for byte the one it
//! verified with and it has not expired; anything else goes through the full check, so
//! rotating a `tokenKey` or a secret revokes as before.
//!
//! Bounded: tokens longer than [`MAX_TOKEN_BYTES`] are never kept, and two generations of at
//! most [`GENERATION`] tokens each are (a full generation becomes the old one, and the old one
//! is dropped; a token found in the old one moves back to the new).
//!
//! Several nodes: each node keeps its own; what it decides is what the full check decides.

use foldhash::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Longest token kept; PocketBase's are about 250 bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// Tokens per generation.
pub const GENERATION: usize = 2048;

/// Every claim any token type carries; absent ones are not serialized.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub collection_id: String,
    pub exp: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub token_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
}

/// A token that verified: the claims it carried and the key (`tokenKey` then secret) it
/// verified with.
pub struct Verified {
    pub claims: Claims,
    token_key: Box<str>,
    secret: Box<str>,
}

impl Verified {
    /// Whether the token still verifies with this `tokenKey` and secret at `now` (seconds).
    /// The key is compared as the concatenation it is, as the signature check would see it.
    pub fn holds(&self, token_key: &str, secret: &str, now: i64) -> bool {
        if self.claims.exp < now
            || self.token_key.len() + self.secret.len() != token_key.len() + secret.len()
        {
            return false;
        }
        // Parts of the same lengths (the usual case): two slice comparisons. Otherwise the
        // concatenations, a byte at a time.
        if self.token_key.len() == token_key.len() {
            return *self.token_key == *token_key && *self.secret == *secret;
        }
        self.token_key
            .bytes()
            .chain(self.secret.bytes())
            .eq(token_key.bytes().chain(secret.bytes()))
    }
}

#[derive(Default)]
struct Generations {
    new: HashMap<Box<str>, Arc<Verified>>,
    old: HashMap<Box<str>, Arc<Verified>>,
}

/// See the module docs.
#[derive(Default)]
pub struct VerifiedTokens {
    inner: Mutex<Generations>,
}

impl VerifiedTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `token` verified with last time, if it is kept.
    pub fn get(&self, token: &str) -> Option<Arc<Verified>> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let mut generations = self.lock();
        if let Some(verified) = generations.new.get(token) {
            return Some(Arc::clone(verified));
        }
        let (token, verified) = generations.old.remove_entry(token)?;
        let found = Arc::clone(&verified);
        insert(&mut generations, token, verified);
        Some(found)
    }

    /// Keeps `token`, which just verified with `token_key` and `secret`.
    pub fn put(&self, token: &str, claims: Claims, token_key: &str, secret: &str) {
        if token.len() > MAX_TOKEN_BYTES {
            return;
        }
        let verified = Arc::new(Verified {
            claims,
            token_key: token_key.into(),
            secret: secret.into(),
        });
        insert(&mut self.lock(), token.into(), verified);
    }

    /// Tokens kept, both generations.
    #[cfg(test)]
    fn len(&self) -> usize {
        let generations = self.lock();
        generations.new.len() + generations.old.len()
    }
}

fn insert(generations: &mut Generations, token: Box<str>, verified: Arc<Verified>) {
    if generations.new.len() >= GENERATION && !generations.new.contains_key(&token) {
        generations.old = std::mem::take(&mut generations.new);
    }
    generations.new.insert(token, verified);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            exp,
            ..Claims::default()
        }
    }

    #[test]
    fn a_kept_token_holds_only_with_the_same_key_and_before_it_expires() {
        let tokens = VerifiedTokens::default();
        tokens.put("t", claims(100), "key", "secret");
        let verified = tokens.get("t").expect("kept");
        assert!(verified.holds("key", "secret", 100));
        assert!(!verified.holds("key", "secret", 101), "expired");
        assert!(!verified.holds("kez", "secret", 0), "another tokenKey");
        assert!(!verified.holds("key", "secreT", 0), "another secret");
        // The same concatenation is the same signing key.
        assert!(verified.holds("keys", "ecret", 0));
        assert!(!verified.holds("key", "secret2", 0));
        assert!(tokens.get("u").is_none());
    }

    #[test]
    fn tokens_are_bounded_by_length_and_by_count() {
        let tokens = VerifiedTokens::default();
        let long = "x".repeat(MAX_TOKEN_BYTES + 1);
        tokens.put(&long, claims(1), "k", "s");
        assert!(tokens.get(&long).is_none(), "too long to keep");
        let at_bound = "x".repeat(MAX_TOKEN_BYTES);
        tokens.put(&at_bound, claims(1), "k", "s");
        assert!(tokens.get(&at_bound).is_some(), "kept at the bound");
        for n in 0..(3 * GENERATION) {
            tokens.put(&format!("token {n}"), claims(1), "k", "s");
            // One token in constant use stays however many others come.
            assert!(tokens.get(&at_bound).is_some(), "after {n}");
        }
        assert!(tokens.len() <= 2 * GENERATION, "{}", tokens.len());
        assert!(tokens.get("token 0").is_none(), "the oldest are dropped");
        assert!(
            tokens
                .get(&format!("token {}", 3 * GENERATION - 1))
                .is_some()
        );
    }
}
