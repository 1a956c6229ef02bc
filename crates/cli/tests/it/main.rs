//! The one end-to-end test binary: every module starts the real `plinth` binary on an
//! ephemeral port with a fresh data dir and talks HTTP to it.

mod support;

/// Superuser password auth, token format, refresh, guest fallback.
mod auth;
/// Health, CORS, default headers, 404s and malformed input in PocketBase's error shape.
mod basics;
/// `plinth superuser …`, `serve` start-up messages, graceful shutdown.
mod cli;
/// The collections API.
mod collections;
/// The records API.
mod records;
/// Guards the crate dependency rule of ARCHITECTURE.md.
mod tidy;
