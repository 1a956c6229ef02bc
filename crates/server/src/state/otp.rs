//! The guards of one-time codes (`request-otp`, `auth-with-otp`): per-code locks and
//! wrong-guess counts, and the bounds on OTP deliveries pending at once. The flows that use
//! them are the `auth::otp` feature's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// OTP deliveries (hash, store, mail) waiting or running at once; past this `request-otp`
/// answers 429 for every email alike, before looking the email up.
pub const MAX_PENDING_OTPS: usize = 64;
/// OTP deliveries pending at once for one client address; past this that address's
/// `request-otp` answers 429 (a person needs one).
pub const MAX_PENDING_OTPS_PER_ADDRESS: usize = 4;
/// Per-code locks kept before idle ones are forgotten.
const MAX_OTP_SLOTS: usize = 4096;
/// A per-code lock idle this long is forgotten once there are many: by then the code has
/// expired (PocketBase's default lifetime is 3 minutes), and a forgotten count only gives
/// back guesses that a fresh `request-otp` would give anyway.
const OTP_SLOT_IDLE: Duration = Duration::from_secs(3600);

/// Per-code locks and wrong-guess counts, and the bound on pending OTP deliveries.
///
/// Several nodes: the locks and the bounds on pending deliveries are per node (N ×
/// [`MAX_PENDING_OTPS`] in the cluster). What must hold across nodes is decided in the
/// database: a right code is used by the one node whose delete of its `_otps` row succeeds,
/// and each wrong guess takes a numbered claim (`Store::claim_once`), so five wrong guesses in
/// the whole cluster use a code up.
pub struct OtpGuards {
    slots: Mutex<HashMap<String, Arc<OtpSlot>>>,
    pending: Arc<tokio::sync::Semaphore>,
    /// Pending deliveries per client address; an entry lives only while it is non-zero, so
    /// there are at most [`MAX_PENDING_OTPS`] of them.
    pending_by_address: Arc<Mutex<HashMap<String, usize>>>,
}

/// A place among the pending OTP deliveries, for the whole and for one address; given back
/// when dropped.
pub struct PendingDelivery {
    _permit: tokio::sync::OwnedSemaphorePermit,
    by_address: Arc<Mutex<HashMap<String, usize>>>,
    address: Option<String>,
}

impl Drop for PendingDelivery {
    fn drop(&mut self) {
        let Some(address) = &self.address else {
            return;
        };
        let mut map = self
            .by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = map.get_mut(address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(address);
            }
        }
    }
}

/// One code's lock; the value is its wrong guesses so far.
pub struct OtpSlot {
    pub failures: tokio::sync::Mutex<u32>,
    touched: Mutex<Instant>,
}

impl Default for OtpGuards {
    fn default() -> Self {
        OtpGuards {
            slots: Mutex::default(),
            pending: Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_OTPS)),
            pending_by_address: Arc::default(),
        }
    }
}

impl OtpGuards {
    /// A place for one more pending delivery from `address`, or `None` past either bound.
    /// An empty address (no known peer: in-process tests) is bound by the total only.
    pub fn reserve_delivery(&self, address: &str) -> Option<PendingDelivery> {
        let address = (!address.is_empty()).then(|| address.to_owned());
        let mut map = self
            .pending_by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(address) = &address
            && map.get(address).copied().unwrap_or(0) >= MAX_PENDING_OTPS_PER_ADDRESS
        {
            return None;
        }
        let permit = self.pending.clone().try_acquire_owned().ok()?;
        if let Some(address) = &address {
            *map.entry(address.clone()).or_default() += 1;
        }
        Some(PendingDelivery {
            _permit: permit,
            by_address: Arc::clone(&self.pending_by_address),
            address,
        })
    }

    /// How many deliveries are pending (for tests).
    pub fn pending_deliveries(&self) -> usize {
        MAX_PENDING_OTPS - self.pending.available_permits()
    }

    /// The lock of code `otp_id`, made on first use.
    pub fn slot(&self, otp_id: &str) -> Arc<OtpSlot> {
        let now = Instant::now();
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slots.len() >= MAX_OTP_SLOTS && !slots.contains_key(otp_id) {
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1 || now.duration_since(slot.touched()) < OTP_SLOT_IDLE
            });
        }
        let slot = slots
            .entry(otp_id.to_owned())
            .or_insert_with(|| {
                Arc::new(OtpSlot {
                    failures: tokio::sync::Mutex::new(0),
                    touched: Mutex::new(now),
                })
            })
            .clone();
        *slot
            .touched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
        slot
    }

    /// Drops the lock of a code that is gone (used, exhausted or never existed).
    pub fn forget(&self, otp_id: &str) {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(otp_id);
    }

    /// How many per-code locks are held (for tests).
    pub fn slot_count(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

impl OtpSlot {
    fn touched(&self) -> Instant {
        *self
            .touched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
