//! Hostile clients (issue #11): each abuse request goes to a server started under a memory
//! cap, and each test asserts the answer, that the server is still alive, and that a normal
//! request is still served afterwards (and, where the attack is long-running, during it).
//!
//! The server under test is the debug build the rest of the suite uses (dependencies are
//! optimized, see the workspace profile); the cap is an address-space limit (`prlimit --as`),
//! so an unbounded allocation aborts the process and the liveness check fails.
//! Outcomes are asserted, never wall-clock times; the one time bound is the client's own
//! timeout on the normal request, generous enough for a loaded CI machine.

/// Sign-in abuse: password guessing through a local proxy, OTP guess and request floods,
/// overlong credentials.
mod auth;
/// File downloads: thumbnails of huge images, `Range` headers with many ranges.
mod files;
/// Long value lists, `expand` amplification, hidden data via sort/expand, expensive bodies.
mod inputs;
/// Slow-loris headers and bodies, idle and surplus connections, realtime caps and head-of-line
/// blocking.
mod serving;
/// Database work: query timeout, reader lanes, a bounded writer.
mod store;

use std::time::Duration;

use crate::support::{Launch, TestApp};

/// Address-space cap for hostile tests: well above what a normal run needs (the debug server
/// idles far below it), well below what any of the attacks would take unbounded.
pub const MEMORY_CAP: u64 = 2 << 30;

/// Starts a server under [`MEMORY_CAP`] with the default superuser.
pub async fn spawn_capped() -> TestApp {
    spawn_capped_with(Launch::default()).await
}

/// Starts a server under [`MEMORY_CAP`] with extra launch options.
pub async fn spawn_capped_with(mut launch: Launch) -> TestApp {
    launch.memory_cap.get_or_insert(MEMORY_CAP);
    TestApp::spawn_launch(&launch).await
}

/// Asserts the process has not exited and `/api/health` answers 200 within `NORMAL_TIMEOUT`.
pub async fn assert_serving(app: &mut TestApp, context: &str) {
    if let Ok(Some(status)) = app.child.try_wait() {
        panic!("{context}: the server exited ({status})");
    }
    let response = reqwest::Client::new()
        .get(app.url("/api/health"))
        .timeout(NORMAL_TIMEOUT)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{context}: health not served: {error}"));
    assert_eq!(response.status().as_u16(), 200, "{context}: health status");
    if let Ok(Some(status)) = app.child.try_wait() {
        panic!("{context}: the server exited ({status})");
    }
}

/// How long a normal request may take while an attack is going on (a bound on the outcome
/// "still served", not a performance measurement).
pub const NORMAL_TIMEOUT: Duration = Duration::from_secs(5);
