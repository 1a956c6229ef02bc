//! Shared application state handed to every handler.

use std::sync::Arc;

use domain::{Schema, Store};

use crate::auth::password::Argon2Params;
use crate::settings::SettingsCache;
use crate::settings::rate_limit::Limiters;

/// Boot-time options of the HTTP layer (runtime settings live in the store).
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
    pub metrics_secret: Option<crate::metrics::MetricsSecret>,
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
    pub settings_key: Option<crate::settings::encryption::EncryptionKey>,
    /// The dashboard served at `/_/`; `None` answers 404 there.
    pub dashboard: Option<crate::dashboard::Dashboard>,
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
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: ServerConfig,
    /// The `settings` param, loaded once and replaced on every PATCH.
    pub settings: SettingsCache,
    /// Rate-limit buckets, keyed by rule and client.
    pub limiters: Limiters,
    /// Serializes MFA-session consumption so a session is used at most once.
    pub auth_lock: tokio::sync::Mutex<()>,
    /// When each auth email was last sent, by `collection:record:kind`, to drop resends.
    pub mail_sent: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Per-code locks and wrong-guess counts of one-time codes, and pending OTP deliveries.
    pub otp_guards: crate::auth::otp::OtpGuards,
    /// Recent failed password sign-ins per identity (see [`crate::auth::lockout`]).
    pub login_lockouts: crate::auth::lockout::Lockouts,
    /// Realtime clients and the change-log fan-out (started by the first SSE connection).
    pub realtime: crate::realtime::Hub,
    /// Collection rules compiled once per schema snapshot (see [`crate::access`]).
    pub rules_cache: crate::access::RulesCache,
    /// Where record files are stored (see [`crate::files`]).
    pub files: crate::files::FileStorages,
    /// Cron jobs (see [`crate::cron`]); they run only once `serve` starts the scheduler.
    pub crons: Arc<crate::cron::Crons>,
    /// JavaScript hooks, once `serve` has loaded them (see [`crate::scripts`]).
    pub scripts: std::sync::OnceLock<Arc<crate::scripts::Scripts>>,
    /// Backup and restore bookkeeping (see [`crate::backups`]).
    pub backups: crate::backups::Backups,
    /// Request logs (see [`crate::logs`]); written once `serve` installs a log store.
    pub logs: crate::logs::Logs,
    /// The first-run installer's one-time token (see [`crate::dashboard`]).
    pub installer: crate::dashboard::Installer,
    /// Gzipped dashboard files, made on first request.
    pub dashboard_gzip: crate::dashboard::GzipCache,
}

/// The state type axum passes around.
pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> SharedState {
        // A storage directory that cannot be created leaves files in memory rather than
        // refusing to boot; the error is logged loudly.
        let files =
            crate::files::FileStorages::new(config.storage_dir.clone()).unwrap_or_else(|error| {
                tracing::error!(%error, "file storage unavailable; keeping files in memory");
                crate::files::FileStorages::in_memory()
            });
        let state = Arc::new(AppState {
            files,
            store,
            config,
            settings: SettingsCache::default(),
            limiters: Limiters::default(),
            auth_lock: tokio::sync::Mutex::new(()),
            mail_sent: std::sync::Mutex::default(),
            otp_guards: crate::auth::otp::OtpGuards::default(),
            login_lockouts: crate::auth::lockout::Lockouts::default(),
            realtime: crate::realtime::Hub::default(),
            rules_cache: crate::access::RulesCache::default(),
            crons: Arc::default(),
            scripts: std::sync::OnceLock::new(),
            backups: crate::backups::Backups::default(),
            logs: crate::logs::Logs::default(),
            installer: crate::dashboard::Installer::default(),
            dashboard_gzip: crate::dashboard::GzipCache::default(),
        });
        crate::cron::system::register(&state);
        crate::metrics::install();
        state
    }

    /// The current schema snapshot.
    pub fn schema(&self) -> Arc<Schema> {
        self.store.schema()
    }
}
