//! The ground floor: the application state handed to every handler, and its building blocks.
//!
//! Everything [`AppState`] and [`ServerConfig`] hold is defined here, in a submodule per piece,
//! with the methods that keep the piece itself consistent (its locks, bounds and counters).
//! Nothing here imports a feature module (`auth`, `settings`, `realtime`, `records`, `files`,
//! …; a tidy test holds that): features depend on the state, never the reverse. What a
//! feature does with its piece (HTTP handlers, the realtime fan-out, making thumbnails,
//! writing logs) stays in the feature, as free functions or as `impl` blocks there. Where a
//! piece needs a feature's logic, the feature hands it in: the rules cache takes a compile
//! step per call, the hub an `expand` function at construction, the cron registry a schedule
//! behind a trait, the backups gate opaque deferred work, the hooks their route patterns.
//!
//! Every piece says how it stays true when several server nodes share one database. Most are
//! per node today; the `Several nodes:` paragraph of each says what that means.

pub mod backups;
pub mod crons;
pub mod dashboard;
pub mod files;
pub mod hashing;
pub mod hub;
pub mod lockouts;
pub mod logs;
pub mod otp;
pub mod relay;
pub mod rules_cache;
pub mod scripts;
pub mod secrets;
pub mod settings;
pub mod storage;
pub mod thumb_jobs;
pub mod tokens;

mod limiters;

use std::sync::Arc;

use domain::{Schema, Store};

pub use dashboard::{Dashboard, DashboardFile, DashboardFiles};
pub use hashing::Argon2Params;
pub use limiters::{IpOrSubnet, Limiters, ip_matches, parse_ip_or_subnet};
pub use secrets::{EncryptionKey, MetricsSecret};

/// Boot-time options of the HTTP layer (runtime settings live in the store).
///
/// Several nodes: every node is booted with its own copy; the ones that must agree across
/// nodes are the encryption key, the hashing cost and the metrics secret (see their types).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body, in bytes (PocketBase's default is 32 MiB).
    pub body_limit: usize,
    /// bcrypt cost for hashes written in PocketBase's format (superuser CLI; tests lower it).
    pub bcrypt_cost: u32,
    /// argon2id parameters for new password hashes (tests lower them).
    pub argon2: Argon2Params,
    /// Directory of the local file storage (`<dataDir>/storage`); `None` keeps files in
    /// memory (tests).
    pub storage_dir: Option<std::path::PathBuf>,
    /// A bearer secret that also opens `GET /api/metrics` (besides a superuser token), for a
    /// Prometheus server that has no superuser account (`--metricsSecret`).
    pub metrics_secret: Option<MetricsSecret>,
    /// The data directory (`--dir`), where backups and their scratch files live; `None`
    /// (tests) leaves the backups API without a place to work.
    pub data_dir: Option<std::path::PathBuf>,
    /// The public directory served at `/` (`--publicDir`); `None` serves no files.
    pub public_dir: Option<std::path::PathBuf>,
    /// Answer the public `index.html` for a missing path (`--indexFallback`).
    pub index_fallback: bool,
    /// CORS allowed origins (`--origins`); `*` allows any.
    pub origins: Vec<String>,
    /// The key the settings are encrypted with at rest (`--encryptionEnv`).
    pub settings_key: Option<EncryptionKey>,
    /// The dashboard served at `/_/`; `None` answers 404 there.
    pub dashboard: Option<Dashboard>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 32 << 20,
            bcrypt_cost: 10,
            argon2: Argon2Params::default(),
            storage_dir: None,
            metrics_secret: None,
            data_dir: None,
            public_dir: None,
            index_fallback: true,
            origins: vec!["*".to_owned()],
            settings_key: None,
            dashboard: None,
        }
    }
}

/// What handlers share: the store, the boot config, and the runtime caches built on them.
///
/// Several nodes: the store is the one thing the nodes share; everything else here is the
/// node's own memory, made consistent across nodes only as far as each field's type says.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: ServerConfig,
    /// The `settings` param, loaded once and replaced on every PATCH (see
    /// [`settings::SettingsCache`] for what that means with several nodes).
    pub settings: settings::SettingsCache,
    /// Rate-limit buckets, keyed by rule and client (per node: see [`Limiters`]).
    pub limiters: Limiters,
    /// Serializes MFA-session consumption so a session is used at most once.
    ///
    /// Several nodes: the lock is per node; a session's single use across nodes is decided
    /// by the database, where only one node's delete of its `_mfas` row succeeds.
    pub auth_lock: tokio::sync::Mutex<()>,
    /// When each auth email was last sent, by `collection:record:kind`, to drop resends.
    ///
    /// Several nodes: this map is per node; before sending, each node also claims the email's
    /// two-minute slot in the database (`Store::claim_once`), so the cluster sends at most
    /// one per slot (and at most two within any two minutes).
    pub mail_sent: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Per-code locks and wrong-guess counts of one-time codes, and pending OTP deliveries
    /// (per node: see [`otp::OtpGuards`]).
    pub otp_guards: otp::OtpGuards,
    /// Recent failed password sign-ins per identity (per node: see [`lockouts::Lockouts`]).
    pub login_lockouts: lockouts::Lockouts,
    /// Realtime clients and the change-log fan-out's bookkeeping (started by the first SSE
    /// connection; fed from the durable change log: see [`hub::Hub`]).
    pub realtime: hub::Hub,
    /// Collection rules compiled once per schema snapshot (see [`rules_cache::RulesCache`]).
    pub rules_cache: rules_cache::RulesCache,
    /// Where record files are stored (local disk is single-node only: see
    /// [`files::FileStorages`]).
    pub files: files::FileStorages,
    /// Cron jobs; they run only once `serve` starts the scheduler (on every node: see
    /// [`crons::Crons`]).
    pub crons: Arc<crons::Crons>,
    /// JavaScript hooks, once `serve` has loaded them (per node: see [`scripts::Scripts`]).
    pub scripts: std::sync::OnceLock<Arc<scripts::Scripts>>,
    /// Backup and restore bookkeeping (single-node operations: see [`backups::Backups`]).
    pub backups: backups::Backups,
    /// Request logs, written once `serve` installs a log store (per node: see
    /// [`logs::Logs`]).
    pub logs: logs::Logs,
    /// The first-run installer's one-time token (held by one node: see
    /// [`dashboard::Installer`]).
    pub installer: dashboard::Installer,
    /// Gzipped dashboard files, made on first request.
    pub dashboard_gzip: dashboard::GzipCache,
    /// Tokens that verified recently, with the key they verified with (per node: see
    /// [`tokens::VerifiedTokens`]).
    pub verified_tokens: tokens::VerifiedTokens,
}

/// The state type axum passes around.
pub type SharedState = Arc<AppState>;

/// What the state is built with from the features: handed in by the crate root (`AppState::new`
/// in `lib.rs`), which sees every feature, so that the ground floor names none.
pub struct Wiring {
    /// The `records` feature's `expand`, for the realtime hub.
    pub expand_records: hub::ExpandRecords,
}

impl AppState {
    /// The state on `store` and `config`, its pieces empty, wired with what `wiring` hands in.
    /// Registering the system cron jobs and installing the metrics recorder are left to the
    /// caller (`AppState::new` does both).
    pub fn assemble(store: Arc<dyn Store>, config: ServerConfig, wiring: Wiring) -> SharedState {
        // A storage directory that cannot be created leaves files in memory rather than
        // refusing to boot; the error is logged loudly.
        let files = files::FileStorages::new(config.storage_dir.clone()).unwrap_or_else(|error| {
            tracing::error!(%error, "file storage unavailable; keeping files in memory");
            files::FileStorages::in_memory()
        });
        Arc::new(AppState {
            files,
            store,
            config,
            settings: settings::SettingsCache::default(),
            limiters: Limiters::default(),
            auth_lock: tokio::sync::Mutex::new(()),
            mail_sent: std::sync::Mutex::default(),
            otp_guards: otp::OtpGuards::default(),
            login_lockouts: lockouts::Lockouts::default(),
            realtime: hub::Hub::new(hub::RealtimeConfig::default(), wiring.expand_records),
            rules_cache: rules_cache::RulesCache::default(),
            crons: Arc::default(),
            scripts: std::sync::OnceLock::new(),
            backups: backups::Backups::default(),
            logs: logs::Logs::default(),
            installer: dashboard::Installer::default(),
            dashboard_gzip: dashboard::GzipCache::default(),
            verified_tokens: tokens::VerifiedTokens::default(),
        })
    }

    /// The current schema snapshot.
    pub fn schema(&self) -> Arc<Schema> {
        self.store.schema()
    }
}
