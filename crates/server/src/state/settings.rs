//! The runtime settings every feature reads (PocketBase's `settings` param: SMTP, S3, rate
//! limits, logs, backups, …) and the in-memory cache of them. This is only the model and the
//! cache: loading, validating, encrypting and the `/api/settings` routes are the `settings`
//! feature's.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The settings as stored, every section defaulted when missing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    #[serde(rename = "superuserIPs")]
    pub superuser_ips: Vec<String>,
    pub smtp: Smtp,
    pub backups: Backups,
    pub s3: S3,
    pub meta: Meta,
    pub rate_limits: RateLimits,
    pub trusted_proxy: TrustedProxy,
    pub batch: Batch,
    pub logs: Logs,
    /// A Plinth extension (PocketBase has no such section); see [`Realtime`].
    pub realtime: Realtime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Smtp {
    pub enabled: bool,
    pub port: u16,
    pub host: String,
    pub username: String,
    /// Write-only.
    pub password: String,
    /// `""`/`"PLAIN"` or `"LOGIN"`.
    pub auth_method: String,
    /// Implicit TLS from the first byte; otherwise STARTTLS when the server offers it.
    pub tls: bool,
    pub local_name: String,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            enabled: false,
            port: 587,
            host: "smtp.example.com".into(),
            username: String::new(),
            password: String::new(),
            auth_method: String::new(),
            tls: false,
            local_name: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct S3 {
    pub enabled: bool,
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    pub access_key: String,
    /// Write-only.
    pub secret: String,
    pub force_path_style: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Backups {
    pub cron: String,
    pub cron_max_keep: u32,
    pub s3: S3,
}

impl Default for Backups {
    fn default() -> Self {
        Backups {
            cron: String::new(),
            cron_max_keep: 3,
            s3: S3::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Meta {
    pub accent_color: String,
    pub app_name: String,
    #[serde(rename = "appURL")]
    pub app_url: String,
    pub sender_name: String,
    pub sender_address: String,
    pub hide_controls: bool,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            accent_color: "#1055c9".into(),
            app_name: "Acme".into(),
            app_url: "http://localhost:8090".into(),
            sender_name: "Support".into(),
            sender_address: "support@example.com".into(),
            hide_controls: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RateLimits {
    pub rules: Vec<RateLimitRule>,
    #[serde(rename = "excludedIPs")]
    pub excluded_ips: Vec<String>,
    pub enabled: bool,
}

impl Default for RateLimits {
    /// PocketBase's rules, but switched on (loopback excepted), so brute force against the auth endpoints is
    /// limited out of the box (PocketBase ships them off). `*:auth` allows a burst of 10 then
    /// one attempt per 6 s: kinder to a person mistyping than PocketBase's 2 per 3 s, and
    /// stricter over a day (14,400 guesses per IP instead of 57,600).
    fn default() -> Self {
        let rule = |label: &str, duration, max_requests| RateLimitRule {
            label: label.into(),
            audience: String::new(),
            duration,
            max_requests,
        };
        RateLimits {
            rules: vec![
                rule("*:auth", 60, 10),
                rule("*:create", 5, 20),
                rule("/api/batch", 1, 3),
                rule("/api/", 10, 300),
                // Not in PocketBase's defaults, and its `*:auth` does not cover request-otp
                // (observed on 0.40.6): each accepted request for a known email costs a hash,
                // so the route gets a bucket as tight as sign-in's of its own.
                rule("*:requestOTP", 60, 10),
            ],
            // Loopback is exempt out of the box: local tools, tests and health checks talk
            // from there, and behind a local reverse proxy every client would otherwise share
            // one bucket (configure `trustedProxy` there, so limits apply per real client).
            excluded_ips: vec!["127.0.0.1".into(), "::1".into()],
            enabled: true,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RateLimitRule {
    pub label: String,
    /// `""` (everyone), `"@guest"` or `"@auth"`.
    pub audience: String,
    /// Window in seconds.
    pub duration: u64,
    pub max_requests: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct TrustedProxy {
    pub headers: Vec<String>,
    #[serde(rename = "useLeftmostIP")]
    pub use_leftmost_ip: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Batch {
    pub enabled: bool,
    pub max_requests: u64,
    pub timeout: u64,
    pub max_body_size: u64,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            enabled: false,
            max_requests: 50,
            timeout: 3,
            max_body_size: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Logs {
    pub max_data_size: u64,
    pub max_days: u64,
    pub min_level: i64,
    #[serde(rename = "logIP")]
    pub log_ip: bool,
    pub log_auth_id: bool,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            max_data_size: 0,
            max_days: 5,
            min_level: 0,
            log_ip: true,
            log_auth_id: false,
        }
    }
}

/// Realtime tunables, a Plinth extension to PocketBase's settings: PocketBase hard-codes the
/// stream lifetimes and keeps no change log. Durations are in seconds, like the other
/// sections'. Applied without a restart (see [`super::hub::Hub::apply_settings`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Realtime {
    /// A stream with no message sent for this long is closed (PocketBase: 5 minutes).
    pub idle_timeout: u64,
    /// A stream is closed after this long whatever happens (PocketBase: 30 minutes).
    pub max_lifetime: u64,
    /// Messages waiting for one client before it is disconnected as too slow.
    pub client_queue_messages: u64,
    /// Bytes waiting for one client before it is disconnected as too slow (one message is
    /// always accepted into an empty queue).
    pub client_queue_bytes: u64,
    /// The change log keeps at least this many newest entries.
    pub change_log_max_entries: u64,
    /// The change log keeps entries younger than this.
    pub change_log_max_age: u64,
    /// Realtime clients connected at once; one more is answered 503.
    pub max_clients: u64,
    /// Realtime clients connected at once from one client IP; one more is answered 429.
    pub max_clients_per_ip: u64,
}

impl Default for Realtime {
    fn default() -> Self {
        Realtime {
            idle_timeout: 5 * 60,
            max_lifetime: 30 * 60,
            client_queue_messages: 512,
            client_queue_bytes: 4 << 20,
            change_log_max_entries: 10_000,
            change_log_max_age: 24 * 60 * 60,
            max_clients: 10_000,
            max_clients_per_ip: 1_000,
        }
    }
}

/// The settings loaded from the store, kept in memory: filled by the first
/// `settings::current` and replaced by every `PATCH /api/settings`.
///
/// Several nodes: each copy remembers the store's params version it was loaded at
/// (`Store::params_version`, which grows when any node changes a param); a copy older than the
/// store's current version is loaded again on its next use, so a settings change made on one
/// node is served by every node on its next request after the store has heard of it (on
/// PostgreSQL: a `NOTIFY`, or at worst the one-second poll).
///
/// The copy sits behind a lock held only to clone an `Arc`: a request asks for the settings
/// several times (the request log twice, the rate limiter once), and through an asynchronous
/// lock each ask cost a semaphore's acquire and release (its mutex included), about 150
/// instructions. Whoever loads or changes the settings holds [`SettingsCache::writer`] across
/// the store's reads and writes instead.
#[derive(Default)]
pub struct SettingsCache {
    writer: tokio::sync::Mutex<()>,
    published: std::sync::RwLock<Option<Arc<Settings>>>,
    version: std::sync::atomic::AtomicU64,
}

/// Held while the settings are loaded or changed; see [`SettingsCache::writer`].
pub type SettingsWriter<'a> = tokio::sync::MutexGuard<'a, ()>;

impl SettingsCache {
    /// The published settings, if loaded at `version` or later, without waiting. The version
    /// is read before the copy and [`SettingsCache::fill`] publishes the copy before the
    /// version: a caller that sees the new version sees the new copy.
    pub fn published_at(&self, version: u64) -> Option<Arc<Settings>> {
        if self.version.load(std::sync::atomic::Ordering::Acquire) < version {
            return None;
        }
        self.published
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Publishes `settings`, loaded or written at the store's params `version`, by the holder
    /// of the writer's guard.
    pub fn fill(&self, _writer: &SettingsWriter<'_>, settings: Arc<Settings>, version: u64) {
        *self
            .published
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(settings);
        self.version
            .store(version, std::sync::atomic::Ordering::Release);
    }

    /// The writer's guard, held exclusively: the loader and the PATCH handler fill the cache
    /// under it, so a load never overwrites a newer PATCH.
    pub async fn writer(&self) -> SettingsWriter<'_> {
        self.writer.lock().await
    }
}
