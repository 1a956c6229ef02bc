//! Prometheus metrics: `GET /api/metrics` in the text exposition format, for a superuser token
//! or the bearer secret configured with `--metricsSecret` (`PLINTH_METRICS_SECRET`). Every series
//! is listed in `docs/metrics.md`.
//!
//! Three sources make one page. Counters and histograms (store jobs, hook and cron runs,
//! backups) are recorded with the `metrics` macros wherever the work happens — the store's and
//! the hook engine's own threads included — into one process-wide recorder, installed once by
//! [`install`] (the first `AppState` does it). The HTTP request series, recorded on every
//! request, are kept in atomics of their own ([`http`]), which is several times cheaper a
//! request, and written in the same format. Process-wide rather than one per `AppState`
//! because those threads cannot reach an `AppState`, and because an app restarted in-process
//! (a backup restore) should keep counting rather than reset its counters. Tests that share a
//! process compare a series before and after, on labels only they produce. Gauges of one app's
//! state (realtime clients and queues, change-log lag, the store's queues) are read from that
//! `AppState` when the page is rendered and appended to the recorder's text, so each app reports
//! its own.
//!
//! Label values are bounded: the HTTP route is the route template axum matched, never the raw
//! path (a request no route matched is `unmatched`), and methods outside the usual few are
//! `other`. The recorder keeps histogram samples until they are folded into buckets: a task
//! folds them every few seconds ([`spawn_upkeep`]), so memory stays flat without scrapes.

mod http;

use std::fmt::Write as _;
use std::sync::{OnceLock, Weak};
use std::time::Duration;

use crate::routing::{Routes, get};
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiResult;
use crate::extract::Auth;
use crate::state::{AppState, SharedState};

pub use http::{RouteSeries, series, track, unmatched};

/// Histogram buckets of every `_seconds` series, from 1 ms to 30 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of `plinth_store_group_commit_writes`: how many record writes one SQLite
/// transaction committed (at most 64, the store's group bound).
const GROUP_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The backup counter another module records into: `plinth_backups_total{result}`, with
/// `result` one of `success` or `failure`.
pub const BACKUPS_TOTAL: &str = "plinth_backups_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; `None` when another recorder was installed first
/// (the page then shows only the gauges).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("plinth_store_group_commit_writes".into()),
                    &GROUP_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder is installed; /api/metrics shows gauges only"
                );
                return None;
            }
            describe();
            Some(handle)
        })
        .as_ref()
}

/// Records one backup's outcome (`success` or `failure`).
pub fn backup_finished(success: bool) {
    let result = if success { "success" } else { "failure" };
    metrics::counter!(BACKUPS_TOTAL, "result" => result).increment(1);
}

/// Describes the recorded series and makes the ones with a fixed label set appear at 0.
fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_histogram!(
        "plinth_store_job_seconds",
        Unit::Seconds,
        "Time a database job ran on its connection thread, by queue (a writer job is one transaction)."
    );
    describe_histogram!(
        "plinth_store_checkpoint_seconds",
        Unit::Seconds,
        "Time a background WAL checkpoint round took on its own thread (SQLite)."
    );
    describe_histogram!(
        "plinth_store_group_commit_writes",
        Unit::Count,
        "Record writes committed by one SQLite transaction (group commit: writes queued while the writer was busy share it)."
    );
    describe_counter!(
        "plinth_store_count_cache_hits_total",
        Unit::Count,
        "List totals (totalItems) answered from a reader's count cache instead of counting again (SQLite)."
    );
    describe_counter!(
        "plinth_hook_runs_total",
        Unit::Count,
        "JavaScript hook invocations, by kind and result (ok, error, timeout, out_of_memory, busy, engine)."
    );
    describe_histogram!(
        "plinth_hook_run_seconds",
        Unit::Seconds,
        "Time a JavaScript hook invocation took, by kind."
    );
    describe_counter!(
        "plinth_cron_runs_total",
        Unit::Count,
        "Cron job runs, by job id and result (ok, error, panic)."
    );
    describe_counter!(
        BACKUPS_TOTAL,
        Unit::Count,
        "Backups taken, by result (success, failure)."
    );
    for result in ["success", "failure"] {
        metrics::counter!(BACKUPS_TOTAL, "result" => result).increment(0);
    }
}

/// Folds histogram samples into buckets every few seconds while `state` lives.
pub fn spawn_upkeep(state: &SharedState) {
    let Some(handle) = install() else {
        return;
    };
    let state: Weak<AppState> = std::sync::Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            if state.strong_count() == 0 {
                return;
            }
            handle.run_upkeep();
        }
    });
}

pub fn router() -> Routes {
    Routes::new().route("/api/metrics", get(render))
}

async fn render(
    State(state): State<SharedState>,
    Auth(auth): Auth,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !auth.is_superuser() && !secret_matches(&state, &headers) {
        crate::settings::require_superuser(&auth)?;
    }
    let mut page = install().map(PrometheusHandle::render).unwrap_or_default();
    http::render(&mut page);
    gauges(&state, &mut page).await;
    let mut response = page.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Whether the request carries `Authorization: Bearer <the configured metrics secret>`.
fn secret_matches(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(secret) = state
        .config
        .metrics_secret
        .as_ref()
        .map(|secret| secret.0.as_str())
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let value = value.trim();
    let token = match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => value[7..].trim(),
        _ => return false,
    };
    crate::state::secrets::constant_time_eq(token.as_bytes(), secret.as_bytes())
}

/// Appends the gauges read from `state` now.
async fn gauges(state: &AppState, page: &mut String) {
    let hub = state.realtime.stats();
    gauge(
        page,
        "plinth_realtime_clients",
        "Realtime (SSE) clients connected.",
        &[("", hub.clients as u64)],
    );
    gauge(
        page,
        "plinth_realtime_queued_messages",
        "Realtime messages waiting in clients' queues to be written.",
        &[("", hub.queued_messages as u64)],
    );
    gauge(
        page,
        "plinth_realtime_queued_bytes",
        "Bytes of the realtime messages waiting in clients' queues.",
        &[("", hub.queued_bytes as u64)],
    );
    gauge(
        page,
        "plinth_realtime_backlog_bytes",
        "Bytes of the changes waiting in clients' backlogs for their rule checks.",
        &[("", hub.backlog_bytes as u64)],
    );
    let last = state.store.last_change_seq().await.unwrap_or(0);
    gauge(
        page,
        "plinth_changelog_last_seq",
        "The newest committed change-log sequence.",
        &[("", last)],
    );
    // No consumer yet (no SSE connection since start): nothing lags.
    let lag = hub.cursor.map_or(0, |cursor| last.saturating_sub(cursor));
    gauge(
        page,
        "plinth_changelog_lag",
        "Change-log entries committed but not yet taken on by the realtime fan-out.",
        &[("", lag)],
    );
    let stats = state.store.stats();
    let by_queue = |value: fn(&domain::store::QueueStats) -> u64| -> Vec<(&'static str, u64)> {
        stats.queues.iter().map(|q| (q.name, value(q))).collect()
    };
    gauge(
        page,
        "plinth_store_queued_jobs",
        "Database jobs waiting for a connection thread, by queue.",
        &by_queue(|q| q.queued),
    );
    gauge(
        page,
        "plinth_store_busy_threads",
        "Connection threads running a database job, by queue.",
        &by_queue(|q| q.busy),
    );
    gauge(
        page,
        "plinth_store_threads",
        "Connection threads serving each database queue.",
        &by_queue(|q| q.threads),
    );
    family(
        page,
        "plinth_logs_dropped_total",
        "counter",
        "Request log entries dropped, not stored: the writer's queue was full or its share of time spent.",
        &[("", state.logs.dropped())],
    );
    gauge(
        page,
        "plinth_backup_deferred_file_removals",
        "Stored-file removals waiting for the running backup to end.",
        &[("", state.backups.deferred_removals() as u64)],
    );
}

/// Writes one gauge family; a non-empty first item of a pair is its `queue` label.
fn gauge(page: &mut String, name: &str, help: &str, values: &[(&str, u64)]) {
    family(page, name, "gauge", help, values);
}

/// Writes one metric family of the given type (`gauge` or `counter`).
fn family(page: &mut String, name: &str, kind: &str, help: &str, values: &[(&str, u64)]) {
    if values.is_empty() {
        return;
    }
    if !page.is_empty() && !page.ends_with('\n') {
        page.push('\n');
    }
    let _ = writeln!(page, "# HELP {name} {help}");
    let _ = writeln!(page, "# TYPE {name} {kind}");
    for (label, value) in values {
        if label.is_empty() {
            let _ = writeln!(page, "{name} {value}");
        } else {
            let _ = writeln!(page, "{name}{{queue=\"{label}\"}} {value}");
        }
    }
}

#[cfg(test)]
mod tests;
