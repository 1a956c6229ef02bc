//! Lockout of password sign-in after repeated failures. The IP rate limit cannot protect an
//! account on its own: behind a reverse proxy every client may share one address, and a
//! botnet has many. So each identity typed into `auth-with-password` (per auth collection,
//! case-insensitively) is counted twice, and sign-in answers PocketBase's 429 without
//! checking the password (so a guess made during the lockout learns nothing) once either
//! count is reached within [`LOCKOUT_WINDOW`]:
//!
//! - [`MAX_FAILED_LOGINS`] per identity *and client address*: one attacking address locks
//!   only itself out of the account, so anyone can no longer keep the owner (a superuser, say)
//!   out with 10 requests per 15 minutes;
//! - [`MAX_FAILED_PER_IDENTITY`] per identity across all addresses: a botnet that brings a
//!   new address per guess still meets this ceiling, at the price of locking the owner out too
//!   (for at most one window) — the same trade every lockout makes, made ten times rarer.
//!
//! The address is the one the rate limit uses (`settings::rate_limit::client_ip`): the
//! forwarded client behind a configured `trustedProxy`, else the peer. Behind an unconfigured
//! local proxy every client is loopback and so shares the per-address count; configure the
//! proxy.
//!
//! - An attempt is *reserved* under the lock before the slow password check and counted
//!   against both limits while in flight, so a concurrent burst cannot pass the check all at
//!   once: at most the limit's worth of checks run, the rest answer 429 at once. The
//!   reservation becomes a failure, or is released on success (or if the request ends
//!   without an answer on the password).
//! - Only failures count: a success clears the failures of its identity and address, so test
//!   suites and scripts that sign in many times a minute never meet the lockout. It does not
//!   clear the identity-wide count: the owner signing in must not hand a botnet a fresh
//!   ceiling.
//! - Attempts refused during a lockout are not counted, so the lockout is bounded: it ends
//!   at most [`LOCKOUT_WINDOW`] after the failure that started it. OTP, OAuth2 and the
//!   password-reset email still work during it, and a password reset clears the identity.
//! - The key is the identity as typed, not the account: an unknown identity fails and locks
//!   exactly as a known one does, so the lockout reveals nothing about which accounts exist.
//! - Memory is bounded: at most [`MAX_TRACKED`] identities, each with at most
//!   [`MAX_FAILED_PER_IDENTITY`] timestamps and one address entry per counted failure or
//!   in-flight attempt (addresses cut to [`MAX_ADDRESS_KEY`] characters); when full,
//!   identities with nothing left in the window go first, then those not locked. Every
//!   counted failure also cost one password hash check, which bounds how fast any of it grows.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed password sign-ins allowed per identity and client address within [`LOCKOUT_WINDOW`].
pub const MAX_FAILED_LOGINS: usize = 10;
/// Failed password sign-ins allowed per identity from all addresses within [`LOCKOUT_WINDOW`].
pub const MAX_FAILED_PER_IDENTITY: usize = 100;
/// How far back failures count, and so the longest a lockout lasts.
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Identities tracked at once.
pub const MAX_TRACKED: usize = 100_000;
/// Longest client address kept as a key (a trusted header may carry a longer one).
pub const MAX_ADDRESS_KEY: usize = 64;

/// Recent failures and attempts in flight under one count.
#[derive(Default)]
struct Window {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

impl Window {
    fn recent(&self, now: Instant) -> usize {
        self.failures
            .iter()
            .filter(|at| now.duration_since(**at) < LOCKOUT_WINDOW)
            .count()
    }

    /// Counted against the limit: recent failures and reservations not yet decided.
    fn used(&self, now: Instant) -> usize {
        self.recent(now) + self.in_flight
    }

    fn idle(&self, now: Instant) -> bool {
        self.used(now) == 0
    }

    fn fail(&mut self, now: Instant, cap: usize) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.failures
            .retain(|at| now.duration_since(*at) < LOCKOUT_WINDOW);
        self.failures.push_back(now);
        while self.failures.len() > cap {
            self.failures.pop_front();
        }
    }
}

/// One identity's counts: across all addresses, and per address.
#[derive(Default)]
struct Identity {
    all: Window,
    by_address: HashMap<String, Window>,
}

impl Identity {
    fn locked(&self, now: Instant) -> bool {
        self.all.used(now) >= MAX_FAILED_PER_IDENTITY
            || self
                .by_address
                .values()
                .any(|window| window.used(now) >= MAX_FAILED_LOGINS)
    }
}

/// Counts per `collection id + lowercased identity`.
///
/// Several nodes: the counts are per node. With N nodes behind a load balancer an attacker
/// spreading guesses over them gets up to N × [`MAX_FAILED_LOGINS`] guesses per identity and
/// address (and N × [`MAX_FAILED_PER_IDENTITY`] in all) per window before every node locks,
/// and a success or a password reset clears the count on its own node only. A cluster-wide
/// count would need the failures in the shared database; nothing does that today.
#[derive(Default)]
pub struct Lockouts(Mutex<HashMap<String, Identity>>);

/// The lockout key of an identity in an auth collection.
pub fn key(collection_id: &str, identity: &str) -> String {
    format!("{collection_id}\u{0}{}", identity.to_lowercase())
}

/// A reserved password check: counted against the limits until it ends. Dropping it without
/// an outcome releases it uncounted.
#[must_use]
pub struct Attempt<'a> {
    lockouts: &'a Lockouts,
    key: String,
    address: String,
    done: bool,
}

impl Attempt<'_> {
    /// The password was wrong (or the identity unknown): the reservation becomes a failure.
    pub fn failed(mut self, now: Instant) {
        self.done = true;
        let mut map = self.lockouts.map();
        if let Some(identity) = map.get_mut(&self.key) {
            identity.all.fail(now, MAX_FAILED_PER_IDENTITY);
            if let Some(window) = identity.by_address.get_mut(&self.address) {
                window.fail(now, MAX_FAILED_LOGINS);
            }
        }
    }

    /// The password was right: the reservation is released and this address's failures for
    /// the identity are forgotten.
    pub fn succeeded(mut self) {
        self.done = true;
        let mut map = self.lockouts.map();
        if let Some(identity) = map.get_mut(&self.key) {
            identity.all.in_flight = identity.all.in_flight.saturating_sub(1);
            identity.by_address.remove(&self.address);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut map = self.lockouts.map();
        if let Some(identity) = map.get_mut(&self.key) {
            identity.all.in_flight = identity.all.in_flight.saturating_sub(1);
            if let Some(window) = identity.by_address.get_mut(&self.address) {
                window.in_flight = window.in_flight.saturating_sub(1);
            }
        }
    }
}

impl Lockouts {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Identity>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves a password check for `key` from `address` at `now`, or `None` while either
    /// limit is reached (failures and reservations in flight both count).
    pub fn begin(&self, key: &str, address: &str, now: Instant) -> Option<Attempt<'_>> {
        let address: String = address.chars().take(MAX_ADDRESS_KEY).collect();
        let mut map = self.map();
        if let Some(identity) = map.get(key) {
            let pair_used = identity
                .by_address
                .get(&address)
                .map_or(0, |window| window.used(now));
            if identity.all.used(now) >= MAX_FAILED_PER_IDENTITY || pair_used >= MAX_FAILED_LOGINS {
                return None;
            }
        } else if map.len() >= MAX_TRACKED {
            map.retain(|_, identity| !identity.all.idle(now));
            if map.len() >= MAX_TRACKED {
                map.retain(|_, identity| identity.locked(now));
            }
            if map.len() >= MAX_TRACKED {
                // Every tracked identity is locked: a flood of distinct identities. Starting
                // over keeps memory bounded; each lockout it drops was at most one window long.
                map.clear();
            }
        }
        let identity = map.entry(key.to_owned()).or_default();
        if !identity.by_address.contains_key(&address) {
            identity.by_address.retain(|_, window| !window.idle(now));
        }
        identity.all.in_flight += 1;
        identity
            .by_address
            .entry(address.clone())
            .or_default()
            .in_flight += 1;
        Some(Attempt {
            lockouts: self,
            key: key.to_owned(),
            address,
            done: false,
        })
    }

    /// Forgets every count of `key` (after a password reset).
    pub fn clear(&self, key: &str) {
        self.map().remove(key);
    }

    /// How many identities are tracked.
    pub fn tracked(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a new attempt for `key` from `address` would be refused (releasing it if not).
    fn locked(lockouts: &Lockouts, key: &str, address: &str, now: Instant) -> bool {
        lockouts.begin(key, address, now).is_none()
    }

    fn fail(lockouts: &Lockouts, key: &str, address: &str, now: Instant) {
        lockouts
            .begin(key, address, now)
            .expect("not locked")
            .failed(now);
    }

    #[test]
    fn locks_after_the_allowed_failures_and_unlocks_after_the_window() {
        let lockouts = Lockouts::default();
        let start = Instant::now();
        let alice = key("users", "Alice@Example.com");
        assert_eq!(alice, key("users", "alice@example.com"), "case-insensitive");
        for i in 0..MAX_FAILED_LOGINS {
            assert!(!locked(&lockouts, &alice, "a", start), "after {i} failures");
            fail(
                &lockouts,
                &alice,
                "a",
                start + Duration::from_secs(i as u64),
            );
        }
        let last = start + Duration::from_secs(MAX_FAILED_LOGINS as u64 - 1);
        assert!(locked(&lockouts, &alice, "a", last));
        assert!(!locked(&lockouts, &alice, "b", last), "another address");
        assert!(!locked(
            &lockouts,
            &key("users", "bob@example.com"),
            "a",
            last
        ));
        assert!(!locked(
            &lockouts,
            &key("other", "alice@example.com"),
            "a",
            last
        ));
        // Bounded: once the first counted failure is a window old, one more attempt is allowed.
        assert!(locked(
            &lockouts,
            &alice,
            "a",
            start + LOCKOUT_WINDOW - Duration::from_millis(1)
        ));
        assert!(!locked(&lockouts, &alice, "a", start + LOCKOUT_WINDOW));
        assert!(!locked(&lockouts, &alice, "a", last + LOCKOUT_WINDOW));
    }

    #[test]
    fn the_identity_wide_ceiling_stops_many_addresses() {
        let lockouts = Lockouts::default();
        let now = Instant::now();
        let k = key("_superusers", "owner@example.com");
        for i in 0..MAX_FAILED_PER_IDENTITY {
            fail(&lockouts, &k, &format!("10.0.{}.{}", i / 256, i % 256), now);
        }
        assert!(locked(&lockouts, &k, "192.0.2.1", now), "a new address too");
        assert!(!locked(
            &lockouts,
            &key("_superusers", "x"),
            "192.0.2.1",
            now
        ));
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let lockouts = Lockouts::default();
        let now = Instant::now();
        let k = key("users", "dave");
        let held: Vec<_> = (0..MAX_FAILED_LOGINS)
            .map(|_| lockouts.begin(&k, "a", now).expect("reserved"))
            .collect();
        assert!(locked(&lockouts, &k, "a", now), "the limit is in flight");
        assert!(!locked(&lockouts, &k, "b", now));
        // Dropped without an outcome: released uncounted.
        drop(held);
        assert!(!locked(&lockouts, &k, "a", now));
    }

    #[test]
    fn a_success_clears_its_address_but_not_the_identity_ceiling() {
        let lockouts = Lockouts::default();
        let now = Instant::now();
        let k = key("users", "carol");
        for _ in 0..MAX_FAILED_LOGINS - 1 {
            fail(&lockouts, &k, "a", now);
        }
        lockouts.begin(&k, "a", now).expect("allowed").succeeded();
        for _ in 0..MAX_FAILED_LOGINS - 1 {
            fail(&lockouts, &k, "a", now);
        }
        assert!(!locked(&lockouts, &k, "a", now));
        assert_eq!(lockouts.tracked(), 1);
        let map = lockouts.map();
        let identity = map.get(&k).expect("tracked");
        assert_eq!(identity.all.recent(now), 2 * (MAX_FAILED_LOGINS - 1));
        assert_eq!(identity.all.in_flight, 0);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_identities() {
        let lockouts = Lockouts::default();
        let now = Instant::now();
        let victim = key("users", "victim");
        for _ in 0..MAX_FAILED_LOGINS {
            fail(&lockouts, &victim, "a", now);
        }
        for i in 0..MAX_TRACKED + 10 {
            fail(&lockouts, &key("users", &format!("spray{i}")), "a", now);
        }
        assert!(lockouts.tracked() <= MAX_TRACKED);
        assert!(
            locked(&lockouts, &victim, "a", now),
            "a locked identity outlives a spray of single failures"
        );
    }

    #[test]
    fn addresses_per_identity_stay_bounded() {
        let lockouts = Lockouts::default();
        let now = Instant::now();
        let k = key("users", "erin");
        for i in 0..MAX_FAILED_PER_IDENTITY {
            fail(&lockouts, &k, &format!("{i}{}", "9".repeat(500)), now);
        }
        let map = lockouts.map();
        let identity = map.get(&k).expect("tracked");
        assert!(identity.by_address.len() <= MAX_FAILED_PER_IDENTITY);
        assert!(
            identity
                .by_address
                .keys()
                .all(|address| address.len() <= MAX_ADDRESS_KEY)
        );
    }
}
