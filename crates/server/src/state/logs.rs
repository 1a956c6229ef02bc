//! The request log's state: the log store once installed, the bounded channel to the writer
//! task and what waits in it, and the drop counters. The log middleware, the writer and the
//! logs API are the `logs` feature's.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::Method;
use domain::LogStore;
use tokio::sync::mpsc;

use crate::error::LoggedError;

/// The log machinery of one app: the store (once `serve` installs one), the channel to the
/// writer task, and counters.
///
/// Several nodes: each node has its own channel and writer, and the log store is the node's
/// own `auxiliary.db` (beside its data directory), so a node's logs API shows the requests that
/// node served, not the cluster's; the drop counters and the writer's time budget are per node
/// too. A cluster-wide log view needs the entries in a shared store; nothing does that today.
#[derive(Default)]
pub struct Logs {
    store: OnceLock<Arc<dyn LogStore>>,
    sender: OnceLock<mpsc::Sender<Queued>>,
    dropped: AtomicU64,
    dev: AtomicBool,
    /// Until when (nanoseconds after [`clock_base`]) the writer has spent its share of time:
    /// entries made meanwhile would only be dropped by it, so the request path drops them
    /// first, before building them.
    shed_until: AtomicU64,
}

/// The base of [`Logs::shed_until`]'s clock.
fn clock_base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn clock_nanos(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(clock_base()).as_nanos()).unwrap_or(u64::MAX)
}

impl Logs {
    /// Installs `store` and the channel to the writer, bounded by `capacity`: the receiving
    /// end, for the writer task the `logs` feature starts; `None` when a store was installed
    /// already (a second install changes nothing).
    pub fn install(
        &self,
        store: Arc<dyn LogStore>,
        capacity: usize,
    ) -> Option<mpsc::Receiver<Queued>> {
        if self.store.set(store).is_err() {
            return None;
        }
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        self.sender.set(sender).ok()?;
        Some(receiver)
    }

    /// Whether entries are taken (a store is installed).
    pub fn enabled(&self) -> bool {
        self.sender.get().is_some()
    }

    /// The installed store, if any.
    pub fn store(&self) -> Option<&Arc<dyn LogStore>> {
        self.store.get()
    }

    /// Prints every request (and the cause of an error answer) to the console (`--dev`).
    pub fn set_dev(&self, on: bool) {
        self.dev.store(on, Ordering::Relaxed);
    }

    /// Whether entries are printed to the console (`--dev`).
    pub fn dev(&self) -> bool {
        self.dev.load(Ordering::Relaxed)
    }

    /// Entries dropped because the channel was full (or the writer out of time).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts `count` entries dropped.
    pub fn count_dropped(&self, count: u64) {
        self.dropped.fetch_add(count, Ordering::Relaxed);
    }

    /// Has the request path drop entries until `until` (the writer is out of time).
    pub fn shed_until(&self, until: Instant) {
        self.shed_until.store(clock_nanos(until), Ordering::Relaxed);
    }

    /// Whether an entry made now would be dropped: the writer is out of time until later, or
    /// the channel is full.
    pub fn shedding(&self, now: Instant) -> bool {
        clock_nanos(now) < self.shed_until.load(Ordering::Relaxed)
            || self
                .sender
                .get()
                .is_some_and(|sender| sender.capacity() == 0)
    }

    /// Offers an entry to the writer; drops it (counted) when the channel is full.
    pub fn offer(&self, pending: Pending) {
        let Some(sender) = self.sender.get() else {
            return;
        };
        if sender.try_send(Queued::Entry(pending)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until the writer has stored (or dropped) every entry offered before this call,
    /// so what follows (the truncate of `DELETE /api/logs`) sees them. Waits at most `limit`
    /// in all: a stalled store never holds the caller longer.
    pub async fn flush(&self, limit: Duration) {
        let Some(sender) = self.sender.get() else {
            return;
        };
        let (done, finished) = tokio::sync::oneshot::channel();
        let _ = tokio::time::timeout(limit, async move {
            if sender.send(Queued::Flush(done)).await.is_ok() {
                // Answered, or the writer dropped the marker (its batch was shed or it ended):
                // either way nothing offered before is still waiting.
                let _ = finished.await;
            }
        })
        .await;
    }

    /// Logs an entry that is not a request (a hook's `$app.logger()`), subject to the same
    /// settings; never waits.
    pub fn log(&self, level: i64, message: String, data: serde_json::Value) {
        self.offer(Pending::App(AppEntry {
            created: chrono::Utc::now(),
            level,
            message,
            data,
        }));
    }
}

/// What waits in the writer's channel.
pub enum Queued {
    Entry(Pending),
    /// Answered once every entry queued before it is stored (or dropped).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// What the request path hands to the writer.
pub enum Pending {
    Request(Box<RequestEntry>),
    App(AppEntry),
}

/// A request as seen by the log layer; turned into a [`domain::LogEntry`] by the writer.
pub struct RequestEntry {
    pub created: chrono::DateTime<chrono::Utc>,
    pub method: Method,
    /// The request target as sent (path and query).
    pub url: String,
    pub status: u16,
    pub exec: Duration,
    pub remote_ip: Option<IpAddr>,
    /// The client IP from the trusted proxy headers, when they name one.
    pub forwarded_ip: Option<String>,
    pub user_agent: String,
    pub referer: String,
    pub auth: AuthSeen,
    pub error: Option<LoggedError>,
    /// Whether the entry is stored (else only printed, under `--dev`), and what of it, as
    /// the settings said when the request was answered.
    pub store: bool,
    pub log_ip: bool,
    pub log_auth_id: bool,
}

/// An entry a logger made (a hook's `$app.logger()`).
pub struct AppEntry {
    pub created: chrono::DateTime<chrono::Utc>,
    pub level: i64,
    pub message: String,
    pub data: serde_json::Value,
}

/// Who made the request.
pub enum AuthSeen {
    Guest,
    /// Resolved by the handler (collection name, record id).
    Known(String, String),
    /// A token the handler never looked at: resolved by the writer.
    Token(String),
}
