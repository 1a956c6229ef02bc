//! Request logs, as PocketBase keeps them: every request is described by one entry
//! (`"GET /api/health"`, with method, url, status, execTime, IPs, auth, referer, user agent
//! and the error of a 4xx/5xx) written to the [`LogStore`] (`auxiliary.db`), plus the superuser
//! API over them (`api`).
//!
//! The request path only fills a small [`Pending`] and offers it to a bounded channel with
//! `try_send`: when the channel is full the entry is dropped and counted, never waited for.
//! One background task drains the channel and inserts what it finds in one batch, so under
//! load batches grow and inserts stay few. The entry's JSON, the `logIP`/`logAuthId`/
//! `maxDataSize` treatment and the `--dev` console line are made there, off the request path.
//! `DELETE /api/logs` first sends a flush marker through the same channel and waits for the
//! writer to reach it, so entries of requests answered before the truncate are truncated too.
//!
//! Settings: `logs.maxDays = 0` disables logging (nothing is sent), `minLevel` drops entries
//! below it, `maxDataSize` bounds an entry's `data`. Retention (`__pbLogsCleanup__`, every
//! 6 h) is in `cron::system`.

mod api;
mod entry;
#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Uri, header};
use axum::response::Response;
use domain::{AuthContext, LogStore};
use tokio::sync::mpsc;

pub use api::router;

use crate::chain::Continue;
use crate::error::LoggedError;
use crate::state::logs::{AppEntry, AuthSeen, Pending, Queued, RequestEntry};
use crate::state::{AppState, SharedState};

/// Entries waiting for the writer; more are dropped (and counted), never waited for. The
/// writer itself is held to a share of the time ([`Budget`]).
pub const CHANNEL_CAPACITY: usize = 1024;
/// How long the writer waits, after the first entry of a batch, for more to join it.
pub const LINGER: Duration = Duration::from_millis(100);
/// Most entries inserted in one transaction.
pub const BATCH_SIZE: usize = 512;
/// `data` larger than this (serialized) is cut when `logs.maxDataSize` is 0.
pub const DEFAULT_MAX_DATA_SIZE: usize = 16 << 10;
/// Longest `message`, in characters (PocketBase's cap).
pub const MAX_MESSAGE_CHARS: usize = 8000;

/// slog's levels, which PocketBase stores.
pub const LEVEL_DEBUG: i64 = -4;
pub const LEVEL_INFO: i64 = 0;
pub const LEVEL_WARN: i64 = 4;
pub const LEVEL_ERROR: i64 = 8;

/// Installs `store` in `state`'s logs and starts the writer task on the current Tokio runtime.
/// A second call changes nothing.
pub fn install(state: &SharedState, store: Arc<dyn LogStore>) {
    install_with_capacity(state, store, CHANNEL_CAPACITY);
}

/// [`install`] with another channel bound (tests).
pub fn install_with_capacity(state: &SharedState, store: Arc<dyn LogStore>, capacity: usize) {
    if let Some(receiver) = state.logs.install(store, capacity) {
        tokio::spawn(writer(Arc::downgrade(state), receiver));
    }
}

/// A logger's key-value attributes (`["k1", v1, "k2", v2, …]`, slog's style) as `data`; a
/// key without a value is kept under `!BADKEY`, as slog does.
pub fn attrs_data(attrs: &serde_json::Value) -> serde_json::Value {
    // Sorted by key, as PocketBase stores them.
    let mut data = std::collections::BTreeMap::new();
    let items = attrs.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut pairs = items.chunks(2);
    for pair in &mut pairs {
        match pair {
            [key, value] => {
                let key = key.as_str().map_or_else(|| key.to_string(), str::to_owned);
                data.insert(key, value.clone());
            }
            [lone] => {
                data.insert("!BADKEY".into(), lone.clone());
            }
            _ => {}
        }
    }
    serde_json::Value::Object(data.into_iter().collect())
}

/// The slot the `Auth` extractor fills with the caller it resolved, so the log needs no second
/// lookup. Put in the request's extensions only when it carries an `Authorization` header.
#[derive(Clone, Default)]
pub struct AuthSlot(Arc<OnceLock<(String, String)>>);

impl AuthSlot {
    /// Records `auth` (the first caller resolved wins; guests are not recorded).
    pub fn record(&self, auth: &AuthContext) {
        if let AuthContext::Record {
            collection, record, ..
        } = auth
        {
            let _ = self
                .0
                .set((collection.name.clone(), record.id().to_owned()));
        }
    }
}

/// Marks a response the static file handlers answered (the public directory and the
/// dashboard): PocketBase leaves their successes (2xx and redirects) out of the log and logs
/// their failures (observed on 0.40.6: `GET /hello.txt`, `GET /_/` and `GET /_` unlogged, a
/// missing `/_/…` file logged as a 404).
#[derive(Debug, Clone, Copy)]
pub struct StaticAnswer;

/// Whether a request's success is left out of the log, as PocketBase leaves it out: the logs
/// API itself, and the realtime stream (`GET /api/realtime`, a long-lived connection).
fn skips_success(method: &Method, path: &str) -> bool {
    path == "/api/logs"
        || path.starts_with("/api/logs/")
        || (method == Method::GET && path == "/api/realtime")
}

/// The log middleware, outermost: it sees every answer, 404s and panics included.
pub async fn layer<N: Continue>(state: SharedState, request: Request<Body>, next: N) -> Response {
    let enabled = state.logs.enabled();
    if !enabled {
        return next.run(request).await;
    }
    let settings = match crate::settings::current(&state).await {
        Ok(settings) => settings,
        Err(_) => return next.run(request).await,
    };
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    // The writer is out of time (or its channel is full) already: the entry would most likely
    // be dropped when the request is answered, so nothing more is taken from the request for
    // it. Under a load the writer cannot keep up with, that is most requests.
    if state.logs.shedding(started) {
        let response = next.run(request).await;
        let answer = Answer::of(&method, &uri, &response);
        if let Ok(settings) = crate::settings::current(&state).await
            && answer.logged(&state, answer.stored(&settings))
        {
            state.logs.count_dropped(1);
        }
        return response;
    }
    let created = chrono::Utc::now();
    let headers = request.headers();
    let peer = crate::peer::of(request.extensions());
    let forwarded_ip = if settings.trusted_proxy.headers.is_empty() {
        None
    } else {
        crate::settings::rate_limit::client_ip(headers, None, &settings.trusted_proxy)
    };
    let [user_agent, referer, token] = crate::extract::first_values(
        headers,
        [
            &header::USER_AGENT,
            &header::REFERER,
            &header::AUTHORIZATION,
        ],
    )
    .map(|value| value.cloned());
    let mut request = request;
    let slot = token.as_ref().map(|_| {
        let slot = AuthSlot::default();
        request.extensions_mut().insert(slot.clone());
        slot
    });

    let response = next.run(request).await;

    let answer = Answer::of(&method, &uri, &response);
    let status = answer.status;
    // The log settings as they are once the request is answered (a request changing them is
    // logged under the new ones, as in PocketBase).
    let settings = match crate::settings::current(&state).await {
        Ok(settings) => settings,
        Err(_) => return response,
    };
    let store = answer.stored(&settings);
    if !answer.logged(&state, store) {
        return response;
    }
    // The writer has spent its share of time (or its channel is full): the entry would be
    // dropped, so it is dropped here, before it costs allocations and a trip through the
    // channel.
    if state.logs.shedding(Instant::now()) {
        state.logs.count_dropped(1);
        return response;
    }
    let auth = match (slot.and_then(|slot| slot.0.get().cloned()), token) {
        (Some((collection, id)), _) => AuthSeen::Known(collection, id),
        (None, Some(token)) => AuthSeen::Token(owned(Some(token))),
        (None, None) => AuthSeen::Guest,
    };
    state.logs.offer(Pending::Request(Box::new(RequestEntry {
        created,
        method,
        url: uri.to_string(),
        status,
        exec: started.elapsed(),
        remote_ip: peer.map(|addr| addr.ip()),
        forwarded_ip,
        // Copied out rather than kept as views of the connection's read buffer, which the
        // connection could then not reuse for its next request.
        user_agent: owned(user_agent),
        referer: owned(referer),
        auth,
        error: response.extensions().get::<LoggedError>().cloned(),
        store,
        log_ip: settings.logs.log_ip,
        log_auth_id: settings.logs.log_auth_id,
    })));
    response
}

/// What the log needs to know of an answer to decide whether it makes an entry.
#[derive(Clone, Copy)]
struct Answer {
    status: u16,
    /// A success PocketBase leaves out of the log: answered by a static file handler, or on
    /// a path it does not log.
    skipped_success: bool,
}

impl Answer {
    fn of(method: &Method, uri: &Uri, response: &Response) -> Self {
        let status = response.status().as_u16();
        Answer {
            status,
            skipped_success: status < 400
                && (response.extensions().get::<StaticAnswer>().is_some()
                    || skips_success(method, uri.path())),
        }
    }

    /// Whether the log settings store this answer's entry.
    fn stored(self, settings: &crate::state::settings::Settings) -> bool {
        let level = if self.status >= 400 {
            LEVEL_ERROR
        } else {
            LEVEL_INFO
        };
        settings.logs.max_days > 0 && level >= settings.logs.min_level
    }

    /// Whether the answer makes an entry, to store (`stored`) or to print in dev mode.
    fn logged(self, state: &SharedState, stored: bool) -> bool {
        !self.skipped_success && (stored || state.logs.dev())
    }
}

/// Removes the logs older than `logs.maxDays` days (the `__pbLogsCleanup__` job); returns how
/// many. Nothing without a log store or with `maxDays` 0.
pub async fn cleanup(state: &SharedState) -> crate::ApiResult<u64> {
    let settings = crate::settings::current(state).await?;
    let Some(store) = state.logs.store() else {
        return Ok(0);
    };
    if settings.logs.max_days == 0 {
        return Ok(0);
    }
    let days = i64::try_from(settings.logs.max_days).unwrap_or(i64::MAX);
    let cutoff = chrono::Utc::now()
        .checked_sub_signed(chrono::Duration::try_days(days).unwrap_or(chrono::Duration::MAX))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    Ok(store.delete_before(&domain::time::format(cutoff)).await?)
}

/// A header's text (lossy), `""` when absent (no allocation then).
fn owned(value: Option<HeaderValue>) -> String {
    value.map_or_else(String::new, |value| {
        String::from_utf8_lossy(value.as_bytes()).into_owned()
    })
}

/// Drains the channel into the store, one batch per wake-up, until the app is gone.
async fn writer(state: Weak<AppState>, mut receiver: mpsc::Receiver<Queued>) {
    let mut queued = Vec::with_capacity(BATCH_SIZE);
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let mut budget = Budget::new(Instant::now());
    loop {
        batch.clear();
        queued.clear();
        if receiver.recv_many(&mut queued, BATCH_SIZE).await == 0 {
            return;
        }
        // Flush markers are answered when this iteration ends (dropping one answers it too,
        // on every path out of the iteration).
        let mut flushes = Vec::new();
        for item in queued.drain(..) {
            match item {
                Queued::Entry(pending) => batch.push(pending),
                Queued::Flush(done) => flushes.push(done),
            }
        }
        // Wait a moment for more before writing: one transaction per few entries rather than
        // one per request, and senders do not wake this task while it waits. Not when someone
        // waits for a flush.
        if batch.len() < BATCH_SIZE && flushes.is_empty() {
            tokio::time::sleep(LINGER).await;
            while batch.len() < BATCH_SIZE {
                match receiver.try_recv() {
                    Ok(Queued::Entry(pending)) => batch.push(pending),
                    Ok(Queued::Flush(done)) => flushes.push(done),
                    Err(_) => break,
                }
            }
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        let started = Instant::now();
        if !budget.allows(started) {
            state.logs.count_dropped(batch.len() as u64);
            budget.warn_dropped(started, state.logs.dropped());
            state.logs.shed_until(started + budget.ready_in());
            continue;
        }
        let settings = match crate::settings::current(&state).await {
            Ok(settings) => settings,
            Err(error) => {
                tracing::warn!(message = %error.message, "cannot read the log settings");
                continue;
            }
        };
        let dev = state.logs.dev();
        let mut entries = Vec::with_capacity(batch.len());
        for pending in batch.drain(..) {
            // A request entry was decided when it was answered; a logger's entry is now.
            let store = match &pending {
                Pending::Request(request) => request.store,
                Pending::App(app) => {
                    settings.logs.max_days > 0 && app.level >= settings.logs.min_level
                }
            };
            let entry = entry::build(&state, &settings.logs, pending).await;
            if dev {
                entry::print(&entry);
            }
            if store {
                entries.push(entry);
            }
        }
        let Some(store) = state.logs.store() else {
            continue;
        };
        if let Err(error) = store.append(entries).await {
            tracing::warn!(%error, "cannot write request logs");
        }
        for done in flushes {
            let _ = done.send(());
        }
        budget.spend(started.elapsed());
        // Out of time after this batch: requests stop making entries until it refills.
        let ready_in = budget.ready_in();
        if !ready_in.is_zero() {
            state.logs.shed_until(Instant::now() + ready_in);
        }
    }
}

/// The writer's share of time: it may be busy (building and inserting entries) at most
/// [`WRITER_SHARE`] of the wall-clock time, with bursts up to [`WRITER_BURST`] of saved-up
/// time. Past it, batches are dropped and counted, so logging can never take more than a
/// bounded slice of the machine from the requests it describes, however many arrive.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Busy time still allowed, in seconds (negative after an expensive batch).
    allowance: f64,
    last: Instant,
    last_warning: Option<Instant>,
}

/// The most of the wall-clock time the writer may spend busy, on average.
pub const WRITER_SHARE: f64 = 0.04;
/// Busy time the writer may save up for a burst.
pub const WRITER_BURST: Duration = Duration::from_millis(250);

impl Budget {
    pub(crate) fn new(now: Instant) -> Self {
        Budget {
            allowance: WRITER_BURST.as_secs_f64(),
            last: now,
            last_warning: None,
        }
    }

    /// Refills the allowance for the time passed; whether a batch may be written now.
    pub(crate) fn allows(&mut self, now: Instant) -> bool {
        let passed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.allowance = (self.allowance + passed * WRITER_SHARE).min(WRITER_BURST.as_secs_f64());
        self.allowance > 0.0
    }

    pub(crate) fn spend(&mut self, busy: Duration) {
        self.allowance -= busy.as_secs_f64();
    }

    /// How long until the allowance is positive again (zero when it is now).
    pub(crate) fn ready_in(&self) -> Duration {
        if self.allowance > 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(-self.allowance / WRITER_SHARE + 1e-6).unwrap_or(WRITER_BURST)
    }

    /// Says (at most once a minute) that entries are being dropped.
    fn warn_dropped(&mut self, now: Instant, dropped: u64) {
        if self
            .last_warning
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(60))
        {
            self.last_warning = Some(now);
            tracing::warn!(
                dropped,
                "request logs dropped: more requests than the log writer's share of time allows"
            );
        }
    }
}
