//! The one end-to-end test binary: every module starts the real `plinth` binary on an
//! ephemeral port with a fresh data dir and talks HTTP to it.

mod support;

/// Superuser password auth, token format, refresh, guest fallback.
mod auth;
/// Email flows (over a real SMTP server), OTP, MFA, impersonation, settings, rate limits.
mod auth_flows;
/// The backups API: create, list, download, upload checks, restore with a restart, crons.
mod backups;
/// Health, CORS, default headers, 404s and malformed input in PocketBase's error shape.
mod basics;
/// The batch API: one transaction, nested errors, SDK-style multipart.
mod batch;
/// `plinth superuser …`, `serve` start-up messages, graceful shutdown.
mod cli;
/// PocketBase's `serve` flags: `--publicDir`/`--indexFallback` static files, `--origins`,
/// `--http=:port`, `--encryptionEnv`, and the refusals.
mod cli_flags;
/// The collections API.
mod collections;
/// The crons API: system jobs listed and run on request.
mod crons;
/// The dashboard at /_/: headers, the first-run installer, the rule checker.
mod dashboard;
/// No acknowledged write lost when the server is killed during a concurrent write load.
mod durability;
/// File uploads, downloads, thumbnails, protected files and storage on disk.
pub(crate) mod files;
/// JavaScript hooks: routes, middlewares, model hooks in the write's transaction, crons,
/// runaway scripts.
mod hooks;
/// `$app`/`$apis`/`$mails`/`$security` services from hooks: expand, access, enrich, tokens,
/// mail, AES and regex strings.
mod hooks_app;
/// The auth request hooks and `$apis.recordAuthResponse`.
mod hooks_auth;
/// Record request hooks and onRecordEnrich from a `pb_hooks` dir.
mod hooks_records;
/// Hostile clients: every abuse request bounded, under a memory cap (issue #11).
mod hostile;
/// Moving from PocketBase: a real PocketBase 0.40.6 pb_data imported and converted in place.
mod import_pocketbase;
/// Request logs: `/api/logs`, its filters and stats, the log settings.
mod logs;
/// `GET /api/metrics`: Prometheus text checked with the reference parser, values that move.
mod metrics;
/// JavaScript migrations: `plinth migrate …`, `serve` applying them, automigrate files.
mod migrations;
/// OAuth2 sign-in against a real OpenID Connect provider (node-oidc-provider from npm).
mod oauth2;
/// PostgreSQL (when PLINTH_TEST_PG is set): a SQLite data dir moved over, two nodes sharing
/// one database.
mod postgres;
/// Realtime over SSE: the stream, subscriptions, rule-checked events.
mod realtime;
/// The records API.
mod records;
/// API rules, client filters and sort, expand privacy, injection attempts.
mod rules;
/// The shop example (examples/shop): 200 concurrent buyers for 10 items, HMAC callbacks.
mod shop;
/// A real SMTP server on loopback for the mail tests.
mod smtp_sink;
/// The SQL console `POST /api/sql`: shapes, bounds, refused schema changes.
mod sql_console;
/// Guards the crate dependency rule of ARCHITECTURE.md.
mod tidy;
/// Automatic TLS (ACME http-01) against a real ACME server, Debian's `pebble`.
mod tls;
