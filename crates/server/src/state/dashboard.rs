//! The dashboard's pieces of state: the files the binary plugs in (a boot option), the
//! gzipped copies made of them, and the first-run installer's token. Serving them is the
//! `dashboard` feature's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;

/// One file of the dashboard.
pub struct DashboardFile {
    pub bytes: std::borrow::Cow<'static, [u8]>,
    pub content_type: &'static str,
    /// Content-hashed name: cache forever.
    pub immutable: bool,
}

/// Where the dashboard's files come from; `path` is relative to `/_/` (`""` is the page).
pub trait DashboardFiles: Send + Sync + 'static {
    fn get(&self, path: &str) -> Option<DashboardFile>;
}

/// The dashboard as the server config holds it (the binary plugs in the files).
#[derive(Clone)]
pub struct Dashboard(pub Arc<dyn DashboardFiles>);

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dashboard")
    }
}

/// Gzipped copies of the dashboard files served so far, by path (a few dozen at most: the
/// bundle's). Several nodes: each node gzips and keeps its own copies, which are equal.
#[derive(Default)]
pub struct GzipCache(Mutex<HashMap<String, Bytes>>);

impl GzipCache {
    /// The gzipped copy of the file at `path`, made by `make` on first use and kept; `None`
    /// (nothing kept) when `make` fails.
    pub fn get_or_make(&self, path: &str, make: impl FnOnce() -> Option<Vec<u8>>) -> Option<Bytes> {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = cache.get(path) {
            return Some(hit.clone());
        }
        let zipped = Bytes::from(make()?);
        cache.insert(path.to_owned(), zipped.clone());
        Some(zipped)
    }
}

/// The one-time token of the first-run installer; a new one is issued at each start while no
/// superuser exists, and it is spent by the first successful install.
///
/// Several nodes: the token is held by the node whose `serve` printed it, so the installer
/// link works on that node only (a load balancer may send it elsewhere: open it on the node
/// that printed it). The install itself is safe anywhere: it refuses once a superuser exists.
#[derive(Default)]
pub struct Installer {
    token: Mutex<Option<String>>,
    /// One install at a time, so two racing requests cannot both create a "first" superuser.
    busy: tokio::sync::Mutex<()>,
}

impl Installer {
    /// Issues (and remembers) a fresh token.
    pub fn issue(&self) -> String {
        let token = domain::ids::random_alnum(40);
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        token
    }

    /// Whether `candidate` is the token held (compared in constant time).
    pub fn matches(&self, candidate: &str) -> bool {
        let held = self.token.lock().unwrap_or_else(|e| e.into_inner());
        held.as_deref().is_some_and(|token| {
            super::secrets::constant_time_eq(token.as_bytes(), candidate.as_bytes())
        })
    }

    /// Forgets the token: the first install has used it.
    pub fn spend(&self) {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Held for the whole of one install.
    pub async fn one_at_a_time(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.busy.lock().await
    }
}
