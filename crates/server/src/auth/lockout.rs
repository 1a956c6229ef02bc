//! Per-identity lockout of password sign-in after repeated failures. The IP rate limit cannot
//! protect an account on its own: behind a reverse proxy every client may share one address
//! (or bring its own in a header), and a botnet has many. So each identity typed into
//! `auth-with-password` (per auth collection, case-insensitively) may fail
//! [`MAX_FAILED_LOGINS`] times within [`LOCKOUT_WINDOW`]; past that, password sign-in for it
//! answers PocketBase's 429 until the oldest counted failure is [`LOCKOUT_WINDOW`] old,
//! without checking the password (so a guess made during the lockout learns nothing).
//!
//! - Only failures count: a successful sign-in clears the identity's failures, so test
//!   suites and scripts that sign in many times a minute never meet the lockout.
//! - Attempts refused during a lockout are not counted, so the lockout is bounded: it ends
//!   at most [`LOCKOUT_WINDOW`] after the failure that started it. OTP, OAuth2 and the
//!   password-reset email still work during it, and a password reset clears it.
//! - The key is the identity as typed, not the account: an unknown identity fails and locks
//!   exactly as a known one does, so the lockout reveals nothing about which accounts exist.
//! - Memory is bounded: at most [`MAX_TRACKED`] identities, each with at most
//!   [`MAX_FAILED_LOGINS`] timestamps; when full, identities with no failure left in the
//!   window go first, then those not locked.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed password sign-ins allowed per identity within [`LOCKOUT_WINDOW`].
pub const MAX_FAILED_LOGINS: usize = 10;
/// How far back failures count, and so the longest a lockout lasts.
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Identities tracked at once.
pub const MAX_TRACKED: usize = 100_000;

/// Recent failure times per `collection id + lowercased identity`.
#[derive(Default)]
pub struct Lockouts(Mutex<HashMap<String, VecDeque<Instant>>>);

/// The lockout key of an identity in an auth collection.
pub fn key(collection_id: &str, identity: &str) -> String {
    format!("{collection_id}\u{0}{}", identity.to_lowercase())
}

fn recent(failures: &VecDeque<Instant>, now: Instant) -> usize {
    failures
        .iter()
        .filter(|at| now.duration_since(**at) < LOCKOUT_WINDOW)
        .count()
}

impl Lockouts {
    /// Whether password sign-in for `key` is locked at `now`.
    pub fn is_locked(&self, key: &str, now: Instant) -> bool {
        let map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(key)
            .is_some_and(|failures| recent(failures, now) >= MAX_FAILED_LOGINS)
    }

    /// Counts a failed sign-in for `key` at `now`.
    pub fn record_failure(&self, key: &str, now: Instant) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.retain(|_, failures| recent(failures, now) > 0);
            if map.len() >= MAX_TRACKED {
                map.retain(|_, failures| recent(failures, now) >= MAX_FAILED_LOGINS);
            }
            if map.len() >= MAX_TRACKED {
                // Every tracked identity is locked: a flood of distinct identities. Starting
                // over keeps memory bounded; each lockout it drops was at most one window long.
                map.clear();
            }
        }
        let failures = map.entry(key.to_owned()).or_default();
        failures.retain(|at| now.duration_since(*at) < LOCKOUT_WINDOW);
        failures.push_back(now);
        while failures.len() > MAX_FAILED_LOGINS {
            failures.pop_front();
        }
    }

    /// Forgets `key`'s failures (after a successful sign-in or a password reset).
    pub fn clear(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }

    /// How many identities are tracked.
    pub fn tracked(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_allowed_failures_and_unlocks_after_the_window() {
        let lockouts = Lockouts::default();
        let start = Instant::now();
        let alice = key("users", "Alice@Example.com");
        assert_eq!(alice, key("users", "alice@example.com"), "case-insensitive");
        for i in 0..MAX_FAILED_LOGINS {
            assert!(!lockouts.is_locked(&alice, start), "after {i} failures");
            lockouts.record_failure(&alice, start + Duration::from_secs(i as u64));
        }
        let last = start + Duration::from_secs(MAX_FAILED_LOGINS as u64 - 1);
        assert!(lockouts.is_locked(&alice, last));
        assert!(!lockouts.is_locked(&key("users", "bob@example.com"), last));
        assert!(!lockouts.is_locked(&key("other", "alice@example.com"), last));
        // Bounded: once the first counted failure is a window old, one more attempt is allowed.
        assert!(lockouts.is_locked(&alice, start + LOCKOUT_WINDOW - Duration::from_millis(1)));
        assert!(!lockouts.is_locked(&alice, start + LOCKOUT_WINDOW));
        assert!(!lockouts.is_locked(&alice, last + LOCKOUT_WINDOW));
    }

    #[test]
    fn a_success_clears_the_failures() {
        let lockouts = Lockouts::default();
        let now = Instant::now();
        let k = key("users", "carol");
        for _ in 0..MAX_FAILED_LOGINS - 1 {
            lockouts.record_failure(&k, now);
        }
        lockouts.clear(&k);
        lockouts.record_failure(&k, now);
        assert!(!lockouts.is_locked(&k, now));
        assert_eq!(lockouts.tracked(), 1);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_identities() {
        let lockouts = Lockouts::default();
        let now = Instant::now();
        let victim = key("users", "victim");
        for _ in 0..MAX_FAILED_LOGINS {
            lockouts.record_failure(&victim, now);
        }
        for i in 0..MAX_TRACKED + 10 {
            lockouts.record_failure(&key("users", &format!("spray{i}")), now);
        }
        assert!(lockouts.tracked() <= MAX_TRACKED);
        assert!(
            lockouts.is_locked(&victim, now),
            "a locked identity outlives a spray of single failures"
        );
    }
}
