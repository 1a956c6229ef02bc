//! The realtime hub: the registry of connected SSE clients and the task that tails the
//! store's change log and fans each committed change out to them.
//!
//! Every client owns a queue of messages waiting for its stream, bounded by count and by
//! bytes. The fan-out task only ever pushes into it without waiting: a client whose queue is
//! full is disconnected on the spot, so one slow reader can neither slow the hub nor grow
//! memory. The task reads the log by sequence number after a wake-up from the store (and on a
//! slow poll, in case a wake-up is missed), so only committed writes are published and none is
//! skipped while the server runs. Each event is decided and rendered from the change's own
//! record state, so a subscriber sees the record as of that change, deletes included.
//!
//! The fan-out task never waits for SQL (issue #11: one guest with 200 subscriptions, each a
//! 3-hop filter, held every other client's events up for 13 s). Per change, each client's
//! subscriptions are decided in memory when they can be (row-local rules and filters, no
//! `expand`), and such a client gets its messages at once. A client with any subscription
//! whose decision or rendering needs the database, or with more decisions to make than the
//! fan-out's per-client budget ([`INLINE_RENDERS`]), gets the change queued in its own backlog
//! instead, with a snapshot of its auth and subscriptions, and a worker task of its own
//! drains that backlog in log order (a client with a backlog queues its cheap changes behind
//! it too, so its events never overtake each other). Workers share each change's decisions
//! through a per-change table (clients that see a change the same way — same auth, same kind
//! of topic, same options — still cost one check), and run their database checks under a
//! small semaphore that hands out places in arrival order, so an expensive client holds at
//! most one place at a time and cheap clients' checks are not queued behind all of its own.
//! A client's budget is its backlog: one that falls [`RealtimeConfig::client_buffer`] changes
//! behind is disconnected, as a slow reader is, and reconnects like any dropped stream (its
//! events are never dropped silently while it stays connected). Pruning the change log runs
//! in its own task, so it never waits for the fan-out either.
//!
//! Backlogs are bounded by bytes too, because a backlog holds each change with its parsed
//! record (a 1 MiB JSON array parses into ~16 MB of values, so 512 of them would be gigabytes).
//! Each deferred change is measured once (an estimate of its parsed record's memory) and
//! charged in full to every client whose backlog holds it, against `clientQueueBytes` (one
//! change always fits a client holding nothing), and once to the hub's total, against
//! [`RealtimeConfig::backlog_bytes`], until the last backlog lets it go. A client past either
//! budget is disconnected like a slow reader. Holding only sequence numbers and re-reading
//! each change from the store when the worker gets to it was the alternative, but it would
//! have made pruning wait for the slowest backlog and the change log's byte budget (which
//! prunes what the hub has read past) drop changes still owed; and each worker would parse
//! its own copy where clients now share one. The store also cuts one read of the log short
//! by snapshot bytes, so the fan-out itself never holds a batch of large records at once.
//!
//! Clients are capped in total and per client IP (both realtime settings); subscriptions per
//! client and topic length are capped where they are set (`POST /api/realtime`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::Duration;

use domain::{AuthContext, Change, ChangeAction, ChangeRetention, Collection, Schema};
use domain::{Record, Store};
use rules::RequestContext;
use tokio::sync::{Notify, OnceCell, Semaphore};

use super::subscription::{Subscription, Target};
use crate::access::{self, Decision, Question, SqlCheck};
use crate::response::{apply_fields, record_json};
use crate::state::AppState;

/// Tunables of the realtime hub. The lifetimes, queue bounds and retention are replaced at
/// runtime from the `realtime` settings section (see [`Hub::apply_settings`]); the rest are
/// boot-time constants.
#[derive(Debug, Clone, Copy)]
pub struct RealtimeConfig {
    /// A stream with no message sent for this long is closed (PocketBase: 5 minutes).
    pub idle_timeout: Duration,
    /// A stream is closed after this long whatever happens (PocketBase: 30 minutes).
    pub max_lifetime: Duration,
    /// Messages queued per client before it counts as too slow and is disconnected.
    pub client_buffer: usize,
    /// Bytes queued per client (as they would go on the wire) before it counts as too slow.
    /// One message is always accepted into an empty queue, whatever its size.
    pub client_buffer_bytes: usize,
    /// How often the log is read without a wake-up.
    pub poll_interval: Duration,
    /// Change-log entries read per round.
    pub batch: usize,
    /// What the hub prunes from the change log once it has delivered it.
    pub retention: ChangeRetention,
    /// How often the hub prunes.
    pub prune_interval: Duration,
    /// Realtime clients connected at once.
    pub max_clients: usize,
    /// Realtime clients connected at once from one client IP.
    pub max_clients_per_ip: usize,
    /// Approximate bytes of changes held in all clients' backlogs together, a change shared
    /// by many backlogs counted once (a boot-time constant, see the module comment).
    pub backlog_bytes: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        let settings = crate::settings::Realtime::default();
        let mut config = RealtimeConfig {
            idle_timeout: Duration::ZERO,
            max_lifetime: Duration::ZERO,
            client_buffer: 0,
            client_buffer_bytes: 0,
            poll_interval: Duration::from_secs(2),
            batch: 500,
            retention: ChangeRetention::default(),
            prune_interval: Duration::from_secs(60),
            max_clients: 0,
            max_clients_per_ip: 0,
            backlog_bytes: BACKLOG_BYTES,
        };
        config.apply(&settings);
        config
    }
}

impl RealtimeConfig {
    /// Takes the runtime-tunable values from the settings section.
    fn apply(&mut self, settings: &crate::settings::Realtime) {
        self.idle_timeout = Duration::from_secs(settings.idle_timeout.max(1));
        self.max_lifetime = Duration::from_secs(settings.max_lifetime.max(1));
        self.client_buffer = usize::try_from(settings.client_queue_messages)
            .unwrap_or(usize::MAX)
            .max(1);
        self.client_buffer_bytes = usize::try_from(settings.client_queue_bytes)
            .unwrap_or(usize::MAX)
            .max(1);
        self.max_clients = usize::try_from(settings.max_clients)
            .unwrap_or(usize::MAX)
            .max(1);
        self.max_clients_per_ip = usize::try_from(settings.max_clients_per_ip)
            .unwrap_or(usize::MAX)
            .max(1);
        self.retention = ChangeRetention {
            max_entries: settings.change_log_max_entries,
            max_age_secs: settings.change_log_max_age,
        };
    }
}

/// See [`Hub::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubStats {
    pub clients: usize,
    pub queued_messages: usize,
    pub queued_bytes: usize,
    pub backlog_bytes: usize,
    pub cursor: Option<u64>,
}

/// The hub shared by the handlers (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// Renderings the fan-out task does for one client and one change (decisions another client
/// already made for the change are free); a client with more subscriptions to decide has the
/// change queued in its backlog, so many subscriptions cannot slow the fan-out either.
const INLINE_RENDERS: usize = 16;

/// Database checks that clients' backlog workers run at once (see the module comment): few,
/// so realtime never takes every database reader from the API.
const CONCURRENT_CHECKS: usize = 2;

/// The default of [`RealtimeConfig::backlog_bytes`]: what every backlog together may hold.
pub const BACKLOG_BYTES: usize = 256 << 20;

struct HubInner {
    config: RwLock<RealtimeConfig>,
    clients: RwLock<Registry>,
    /// Places for the backlog workers' database checks, handed out in arrival order.
    checks: Semaphore,
    /// Approximate bytes of the changes some backlog holds, each counted once (a change adds
    /// its size when first deferred and takes it back when the last backlog lets it go).
    backlog_bytes: Arc<AtomicUsize>,
    /// The newest change-log sequence the fan-out has taken on (delivered, or queued in a
    /// client's backlog with the change itself): the pruning task may drop up to it.
    cursor: AtomicU64,
    /// Set once the fan-out task runs; guarded by an async mutex so the start (which reads
    /// the log's current sequence) happens once.
    started: tokio::sync::Mutex<bool>,
    shutting_down: AtomicBool,
    shutdown: Notify,
    /// The schema snapshot client auth was last checked against.
    auth_schema: Mutex<Option<Arc<Schema>>>,
    /// Which changes are still being prepared (see [`Hub::settle`]).
    progress: Arc<Progress>,
}

/// The changes the fan-out has taken on whose messages are not all prepared yet (a change
/// is in the set from the moment the fan-out starts on it until the last backlog holding it
/// has rendered it), and a wake-up for writers waiting on them.
#[derive(Default)]
struct Progress {
    live: Mutex<std::collections::BTreeSet<u64>>,
    changed: Notify,
}

impl Progress {
    fn start(&self, seq: u64) {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(seq);
    }

    fn finish(&self, seq: u64) {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&seq);
        self.changed.notify_waiters();
    }

    /// Whether every change up to `seq` is prepared, given how far the fan-out has read.
    fn prepared(&self, seq: u64, cursor: u64) -> bool {
        cursor >= seq
            && self
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .first()
                .is_none_or(|oldest| *oldest > seq)
    }
}

/// How long a write's response waits for the realtime messages of its change to be
/// prepared (see [`Hub::settle`]).
pub(crate) const SETTLE_BOUND: Duration = Duration::from_secs(1);

/// The connected clients, and how many each client IP holds.
#[derive(Default)]
struct Registry {
    by_id: HashMap<Arc<str>, Arc<Client>>,
    /// Clients without a known IP (in-process tests) are not counted here.
    per_ip: HashMap<Box<str>, usize>,
}

impl Registry {
    fn remove(&mut self, id: &str) -> Option<Arc<Client>> {
        let client = self.by_id.remove(id)?;
        if let Some(ip) = &client.ip
            && let Some(count) = self.per_ip.get_mut(ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(ip);
            }
        }
        Some(client)
    }
}

/// Why a new realtime client was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// As many clients as `maxClients` are connected.
    Full,
    /// The client IP holds `maxClientsPerIp` clients.
    TooManyFromIp,
}

/// One message waiting in a client's queue. Both parts are shared: every subscriber that sees
/// a change the same way shares one `data`, and `event` is the subscription string.
struct Message {
    event: Arc<str>,
    data: Arc<str>,
}

impl Message {
    /// The bytes this message takes on the wire for `client_id` (what the byte bound counts).
    fn wire_len(&self, client_id: &str) -> usize {
        // "id:" "\nevent:" "\ndata:" "\n\n"
        client_id.len() + self.event.len() + self.data.len() + 3 + 7 + 6 + 2
    }
}

/// One connected SSE client. An idle client holds no queue allocation: the queue grows only
/// while messages wait and is released once drained.
pub(crate) struct Client {
    pub(crate) id: Arc<str>,
    /// The client IP of the stream request (the trusted proxy's forwarded address when one is
    /// configured); subscription requests must come from the same.
    pub(crate) ip: Option<Box<str>>,
    state: Mutex<ClientState>,
    /// Set when the hub drops the client (slow, or shutting down); wakes its stream.
    closed: AtomicBool,
    /// Wakes the stream: a message was queued or the client was closed.
    pub(crate) kick: Notify,
}

struct ClientState {
    /// Shared so the fan-out's per-change snapshot (and the subscribe handler's identity
    /// check) is a reference count rather than a copy of the whole auth record; the few
    /// writers replace it or copy it on write.
    auth: Arc<AuthContext>,
    subscriptions: Arc<[Subscription]>,
    queue: VecDeque<Message>,
    queued_bytes: usize,
    /// Changes whose checks need the database, waiting for this client's worker, in log
    /// order; empty (no allocation) for a client that only needs in-memory decisions.
    backlog: VecDeque<Deferred>,
    /// Approximate bytes of the changes in `backlog` and the one its worker is on, each
    /// counted in full (bounded by `clientQueueBytes`, one change always accepted when
    /// nothing is held).
    backlog_bytes: usize,
    /// A worker task is draining `backlog`.
    working: bool,
}

/// A change queued in a client's backlog, with the auth and subscriptions it had when the
/// fan-out reached it (so it is decided as it would have been at once).
struct Deferred {
    work: Arc<ChangeWork>,
    auth: Arc<AuthContext>,
    subscriptions: Arc<[Subscription]>,
}

/// Who sees a change the same way: the viewer, a view (`coll/id`) or list topic, the options.
type RenderKey = (String, bool, String);

/// The message data one way of seeing a change renders, decided once: `None` inside means
/// "not for this viewer".
type Rendered = Arc<OnceCell<Option<Arc<str>>>>;

/// One change on its way to the clients, with each distinct way of seeing it decided once:
/// `None` in a cell means "not for this viewer".
struct ChangeWork {
    change: Change,
    collection: Arc<Collection>,
    rendered: Mutex<HashMap<RenderKey, Rendered>>,
    /// The change's approximate size in memory, measured when it is first deferred.
    size: OnceLock<usize>,
    /// Set when the change's size was added to the hub's backlog total (only the fan-out
    /// task defers, so it is charged at most once); the drop takes it back.
    charged: AtomicBool,
    /// The hub's backlog total.
    held: Arc<AtomicUsize>,
    /// Where the change counts as being prepared until the last holder lets it go.
    progress: Arc<Progress>,
}

impl Drop for ChangeWork {
    fn drop(&mut self) {
        if *self.charged.get_mut() {
            let size = self.size.get().copied().unwrap_or(0);
            self.held.fetch_sub(size, Ordering::AcqRel);
        }
        self.progress.finish(self.change.seq);
    }
}

impl ChangeWork {
    fn new(change: Change, collection: Arc<Collection>, hub: &HubInner) -> ChangeWork {
        hub.progress.start(change.seq);
        ChangeWork {
            change,
            collection,
            rendered: Mutex::new(HashMap::new()),
            size: OnceLock::new(),
            charged: AtomicBool::new(false),
            held: Arc::clone(&hub.backlog_bytes),
            progress: Arc::clone(&hub.progress),
        }
    }

    /// The change's approximate size in memory: its parsed record dominates.
    fn size(&self) -> usize {
        *self.size.get_or_init(|| {
            let change = &self.change;
            std::mem::size_of::<ChangeWork>()
                + change.collection_id.len()
                + change.record_id.len()
                + map_size(&change.record.data)
        })
    }

    fn cell(&self, key: RenderKey) -> Rendered {
        let mut rendered = self.rendered.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(rendered.entry(key).or_default())
    }
}

/// The auth every guest client points at, so guests hold no allocation of their own.
static GUEST: LazyLock<Arc<AuthContext>> = LazyLock::new(|| Arc::new(AuthContext::Guest));

fn guest() -> Arc<AuthContext> {
    Arc::clone(&GUEST)
}

/// Queues keeping more than this many slots after a burst give the memory back once drained.
const KEEP_QUEUE_SLOTS: usize = 8;

impl Client {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        {
            let mut state = self.lock();
            state.queue = VecDeque::new();
            state.queued_bytes = 0;
            state.backlog = VecDeque::new();
            state.backlog_bytes = 0;
        }
        self.kick.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn auth(&self) -> Arc<AuthContext> {
        Arc::clone(&self.lock().auth)
    }

    /// Replaces the client's auth and subscriptions together.
    pub(crate) fn set(&self, auth: AuthContext, subscriptions: Vec<Subscription>) {
        let mut state = self.lock();
        state.auth = if auth.is_guest() {
            guest()
        } else {
            Arc::new(auth)
        };
        state.subscriptions = subscriptions.into();
    }

    pub(crate) fn subscriptions(&self) -> Arc<[Subscription]> {
        Arc::clone(&self.lock().subscriptions)
    }

    /// Removes the subscriptions named exactly `topic`; `false` when there were none.
    fn take_subscription(&self, topic: &str) -> bool {
        let mut state = self.lock();
        if !state.subscriptions.iter().any(|s| &*s.raw == topic) {
            return false;
        }
        let kept: Vec<Subscription> = state
            .subscriptions
            .iter()
            .filter(|s| &*s.raw != topic)
            .cloned()
            .collect();
        state.subscriptions = kept.into();
        true
    }

    /// Queues a message unless that takes the queue over a bound; `false` when it would.
    fn push(&self, message: Message, config: &RealtimeConfig) -> bool {
        let size = message.wire_len(&self.id);
        let mut state = self.lock();
        if !state.queue.is_empty()
            && (state.queue.len() >= config.client_buffer
                || state.queued_bytes.saturating_add(size) > config.client_buffer_bytes)
        {
            return false;
        }
        state.queued_bytes += size;
        state.queue.push_back(message);
        drop(state);
        self.kick.notify_one();
        true
    }

    /// The next queued message, rendered as an SSE frame.
    pub(crate) fn pop_frame(&self) -> Option<String> {
        let mut state = self.lock();
        let message = state.queue.pop_front()?;
        state.queued_bytes = state
            .queued_bytes
            .saturating_sub(message.wire_len(&self.id));
        if state.queue.is_empty() && state.queue.capacity() > KEEP_QUEUE_SLOTS {
            state.queue = VecDeque::new();
        }
        drop(state);
        Some(frame(&self.id, &message.event, &message.data))
    }

    /// Whether changes wait in the backlog or its worker still runs.
    pub(crate) fn has_backlog(&self) -> bool {
        let state = self.lock();
        state.working || !state.backlog.is_empty()
    }

    /// Approximate bytes of the changes the client's backlog holds.
    #[cfg(test)]
    pub(crate) fn backlog_bytes(&self) -> usize {
        self.lock().backlog_bytes
    }

    /// How many messages and bytes wait in the queue.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> (usize, usize) {
        let state = self.lock();
        (state.queue.len(), state.queued_bytes)
    }
}

/// One SSE frame: `id:` is always the client id, no space after the colons.
pub(crate) fn frame(client_id: &str, event: &str, data: &str) -> String {
    let mut out = String::with_capacity(client_id.len() + event.len() + data.len() + 18);
    for part in ["id:", client_id, "\nevent:", event, "\ndata:", data, "\n\n"] {
        out.push_str(part);
    }
    out
}

/// The `PB_CONNECT` frame that opens every stream.
pub(crate) fn connect_frame(client_id: &str) -> String {
    frame(
        client_id,
        "PB_CONNECT",
        &serde_json::json!({ "clientId": client_id }).to_string(),
    )
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(RealtimeConfig::default())
    }
}

impl Hub {
    pub fn new(config: RealtimeConfig) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                config: RwLock::new(config),
                clients: RwLock::new(Registry::default()),
                checks: Semaphore::new(CONCURRENT_CHECKS),
                backlog_bytes: Arc::new(AtomicUsize::new(0)),
                cursor: AtomicU64::new(0),
                started: tokio::sync::Mutex::new(false),
                shutting_down: AtomicBool::new(false),
                shutdown: Notify::new(),
                auth_schema: Mutex::new(None),
                progress: Arc::new(Progress::default()),
            }),
        }
    }

    /// Waits, at most [`SETTLE_BOUND`], until every change up to `seq` has its realtime
    /// messages prepared: decided against each subscriber's rules and rendered, `expand`
    /// included. A write's response is sent only then, as PocketBase does (it prepares the
    /// messages in the request), so a subscriber's `expand` shows the related records as
    /// they were when the change committed and not as a later write left them. With no
    /// client connected there is nothing to wait for. The bound keeps a subscriber with
    /// expensive checks from holding writers' responses for longer than that.
    pub(crate) async fn settle(&self, seq: u64) {
        if seq == 0 || self.client_count() == 0 {
            return;
        }
        let inner = &self.inner;
        let waiting = async {
            loop {
                let changed = inner.progress.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if inner
                    .progress
                    .prepared(seq, inner.cursor.load(Ordering::Acquire))
                    || inner.shutting_down.load(Ordering::Acquire)
                {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(SETTLE_BOUND, waiting).await;
    }

    /// The current tunables.
    pub fn config(&self) -> RealtimeConfig {
        self.inner.config()
    }

    /// Applies the `realtime` settings section: lifetimes and queue bounds take effect for
    /// every stream at its next wake-up, retention at the next prune.
    pub fn apply_settings(&self, settings: &crate::settings::Realtime) {
        self.inner
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(settings);
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.inner.read_clients().by_id.len()
    }

    /// What the metrics endpoint reports: clients, the messages and bytes waiting in their
    /// queues, the bytes their backlogs hold, and the change-log sequence the fan-out has
    /// taken on (`None` until the fan-out runs, i.e. before the first SSE connection).
    pub fn stats(&self) -> HubStats {
        let clients: Vec<Arc<Client>> = self.inner.read_clients().by_id.values().cloned().collect();
        let (mut messages, mut bytes) = (0, 0);
        for client in &clients {
            let state = client.lock();
            messages += state.queue.len();
            bytes += state.queued_bytes;
        }
        let started = self.inner.started.try_lock().is_ok_and(|started| *started);
        HubStats {
            clients: clients.len(),
            queued_messages: messages,
            queued_bytes: bytes,
            backlog_bytes: self.inner.backlog_bytes.load(Ordering::Relaxed),
            cursor: started.then(|| self.inner.cursor.load(Ordering::Acquire)),
        }
    }

    /// Closes every stream and stops the fan-out task, so a graceful shutdown is not held
    /// up by streams that would otherwise stay open for up to 30 minutes.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.shutdown.notify_waiters();
        let clients: Vec<Arc<Client>> = {
            let mut registry = self.inner.write_clients();
            registry.per_ip.clear();
            registry.by_id.drain().map(|(_, client)| client).collect()
        };
        for client in clients {
            client.close();
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Starts the fan-out task on first use; it begins at the log's current end, so it is
    /// in place before the first client can subscribe.
    pub(crate) async fn ensure_started(&self, state: &Arc<AppState>) {
        let mut started = self.inner.started.lock().await;
        if *started {
            return;
        }
        let store = Arc::clone(&state.store);
        let cursor = match store.last_change_seq().await {
            Ok(seq) => seq,
            Err(error) => {
                tracing::error!(%error, "realtime: cannot read the change log; will retry");
                return;
            }
        };
        *started = true;
        self.inner.cursor.store(cursor, Ordering::Release);
        tokio::spawn(prune(
            Arc::downgrade(state),
            Arc::clone(&store),
            Arc::clone(&self.inner),
        ));
        tokio::spawn(run(
            Arc::downgrade(state),
            store,
            Arc::clone(&self.inner),
            cursor,
        ));
    }

    /// [`Hub::connect_from`] with the per-IP cap applied (the tests' shorthand).
    #[cfg(test)]
    pub(crate) fn connect(&self, ip: Option<String>) -> Result<Arc<Client>, Refusal> {
        self.connect_from(ip, true)
    }

    /// Registers a new client unless that takes the hub past a client cap. Its stream opens
    /// with `PB_CONNECT` (see `client_stream`). The per-IP cap applies only when
    /// `per_ip_capped` (not for loopback, where a local proxy's clients all come from).
    /// Exempt clients are still counted, so the registry stays consistent, and the total cap
    /// holds for everyone.
    pub(crate) fn connect_from(
        &self,
        ip: Option<String>,
        per_ip_capped: bool,
    ) -> Result<Arc<Client>, Refusal> {
        let config = self.config();
        let mut registry = self.inner.write_clients();
        if registry.by_id.len() >= config.max_clients {
            return Err(Refusal::Full);
        }
        if per_ip_capped
            && let Some(ip) = ip.as_deref()
            && registry.per_ip.get(ip).copied().unwrap_or(0) >= config.max_clients_per_ip
        {
            return Err(Refusal::TooManyFromIp);
        }
        let id: Arc<str> = Arc::from(domain::ids::random_alnum(40));
        let client = Arc::new(Client {
            id: Arc::clone(&id),
            ip: ip.map(String::into_boxed_str),
            state: Mutex::new(ClientState {
                auth: guest(),
                subscriptions: Arc::from(Vec::new()),
                queue: VecDeque::new(),
                queued_bytes: 0,
                backlog: VecDeque::new(),
                backlog_bytes: 0,
                working: false,
            }),
            closed: AtomicBool::new(false),
            kick: Notify::new(),
        });
        if let Some(ip) = &client.ip {
            *registry.per_ip.entry(ip.clone()).or_default() += 1;
        }
        registry.by_id.insert(id, Arc::clone(&client));
        Ok(client)
    }

    pub(crate) fn client(&self, id: &str) -> Option<Arc<Client>> {
        self.inner.read_clients().by_id.get(id).cloned()
    }

    /// Sends one message named `topic` with `data` to the client `client_id`, only if that
    /// client is connected and subscribed to exactly `topic`; returns whether it was queued.
    /// The subscription is used up by the message (the client no longer has it afterwards),
    /// so a second call with the same id and topic sends nothing until the client subscribes
    /// again.
    ///
    /// This is how a message that is no record event reaches one client: the OAuth2 redirect
    /// handler relays the provider's answer on `@oauth2` to the client whose id came back as
    /// the `state` parameter, once, as PocketBase does. A client over its queue bounds is
    /// disconnected, as by the fan-out, and `false` is returned.
    pub(crate) fn message_client(&self, client_id: &str, topic: &str, data: &str) -> bool {
        let Some(client) = self.client(client_id) else {
            return false;
        };
        if client.is_closed() || !client.take_subscription(topic) {
            return false;
        }
        self.inner.send(
            &client,
            Message {
                event: Arc::from(topic),
                data: Arc::from(data),
            },
        )
    }

    /// Sets what all backlogs together may hold (a boot-time value otherwise).
    #[cfg(test)]
    pub(crate) fn set_backlog_budget(&self, bytes: usize) {
        self.inner
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .backlog_bytes = bytes;
    }

    /// Approximate bytes of the changes all backlogs hold, each counted once.
    #[cfg(test)]
    pub(crate) fn backlogs_held(&self) -> usize {
        self.inner.backlog_bytes.load(Ordering::Acquire)
    }

    /// Queues a message for one client the way the fan-out does.
    #[cfg(test)]
    pub(crate) fn send(&self, client: &Client, event: &str, data: &str) -> bool {
        self.inner.send(
            client,
            Message {
                event: Arc::from(event),
                data: Arc::from(data),
            },
        )
    }

    /// Delivers one change as the fan-out task would, and waits until every client's
    /// backlog is worked off.
    #[cfg(test)]
    pub(crate) async fn deliver_for_test(&self, state: &Arc<AppState>, change: &Change) {
        self.deliver_without_waiting(state, change).await;
        for _ in 0..2000 {
            if !self
                .inner
                .clients()
                .iter()
                .any(|client| client.has_backlog())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the backlogs were not worked off");
    }

    /// Delivers one change as the fan-out task would: returns once the in-memory decisions
    /// are sent and the rest is queued in backlogs.
    #[cfg(test)]
    pub(crate) async fn deliver_without_waiting(&self, state: &Arc<AppState>, change: &Change) {
        deliver(state, &self.inner, change.clone()).await;
    }

    /// Takes every place for database checks, so deferred changes wait until it is dropped,
    /// and marks the fan-out as having read up to `cursor`.
    #[cfg(test)]
    pub(crate) async fn hold_checks_for_test(
        &self,
        cursor: u64,
    ) -> tokio::sync::SemaphorePermit<'_> {
        self.inner.cursor.store(cursor, Ordering::Release);
        self.inner
            .checks
            .acquire_many(CONCURRENT_CHECKS as u32)
            .await
            .expect("the semaphore is open")
    }

    /// Forgets a client (its stream ended).
    pub(crate) fn disconnect(&self, id: &str) {
        self.inner.write_clients().remove(id);
    }
}

impl HubInner {
    fn config(&self) -> RealtimeConfig {
        *self.config.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_clients(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.clients.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_clients(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.clients.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message, dropping the client when its queue is over a bound; `false` then.
    fn send(&self, client: &Client, message: Message) -> bool {
        if client.is_closed() {
            return false;
        }
        if client.push(message, &self.config()) {
            return true;
        }
        tracing::debug!(client = %client.id, "realtime: client too slow, disconnecting");
        self.drop_client(client);
        false
    }

    fn drop_client(&self, client: &Client) {
        self.write_clients().remove(&client.id);
        client.close();
    }

    /// Queues `deferred` in the client's backlog and starts its worker when none runs. A
    /// client whose backlog is full (by count or bytes), or whose change would take every
    /// backlog together past [`RealtimeConfig::backlog_bytes`], is disconnected instead.
    fn defer(self: &Arc<Self>, state: &Arc<AppState>, client: &Arc<Client>, deferred: Deferred) {
        if client.is_closed() {
            return;
        }
        let config = self.config();
        let work = &deferred.work;
        let size = work.size();
        // Only the fan-out task defers, so nothing charges this change meanwhile.
        let charge = !work.charged.load(Ordering::Acquire);
        let held = self.backlog_bytes.load(Ordering::Acquire);
        let mut client_state = client.lock();
        let holding = client_state.backlog_bytes > 0 || !client_state.backlog.is_empty();
        let too_far = holding
            && (client_state.backlog.len() >= config.client_buffer
                || client_state.backlog_bytes.saturating_add(size) > config.client_buffer_bytes);
        let too_much = charge && held > 0 && held.saturating_add(size) > config.backlog_bytes;
        if too_far || too_much {
            drop(client_state);
            tracing::debug!(client = %client.id, too_far, "realtime: client's checks too far behind, disconnecting");
            self.drop_client(client);
            return;
        }
        if charge {
            work.charged.store(true, Ordering::Release);
            self.backlog_bytes.fetch_add(size, Ordering::AcqRel);
        }
        client_state.backlog_bytes += size;
        client_state.backlog.push_back(deferred);
        if !client_state.working {
            client_state.working = true;
            tokio::spawn(work_off_backlog(
                Arc::clone(state),
                Arc::clone(self),
                Arc::clone(client),
            ));
        }
    }

    fn clients(&self) -> Vec<Arc<Client>> {
        self.read_clients().by_id.values().cloned().collect()
    }

    /// Checks every client's auth against `schema` when it is a snapshot not checked yet: a
    /// schema change never reaches the change log, so snapshots are compared instead.
    fn revalidate_auth_for(&self, schema: &Arc<Schema>) {
        let mut last = self
            .auth_schema
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_ref().is_some_and(|last| Arc::ptr_eq(last, schema)) {
            return;
        }
        revalidate_auth(&self.clients(), schema);
        *last = Some(Arc::clone(schema));
    }
}

/// The fan-out loop: read what committed after `cursor`, deliver it, wait for a wake-up.
async fn run(state: Weak<AppState>, store: Arc<dyn Store>, hub: Arc<HubInner>, mut cursor: u64) {
    loop {
        if hub.shutting_down.load(Ordering::Acquire) {
            return;
        }
        // Settings changed through the API apply within one round.
        if let Some(state) = state.upgrade()
            && let Ok(settings) = crate::settings::current(&state).await
        {
            hub.config
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .apply(&settings.realtime);
        }
        let config = hub.config();
        hub.revalidate_auth_for(&store.schema());
        match store.changes_after(cursor, config.batch).await {
            Ok(changes) if !changes.is_empty() => {
                let Some(state) = state.upgrade() else {
                    return;
                };
                for change in changes {
                    let seq = change.seq;
                    deliver(&state, &hub, change).await;
                    cursor = seq;
                    hub.cursor.store(cursor, Ordering::Release);
                    hub.progress.changed.notify_waiters();
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "realtime: reading the change log failed"),
        }
        if state.strong_count() == 0 {
            return;
        }
        let shutdown = hub.shutdown.notified();
        tokio::select! {
            waited = store.wait_for_changes(cursor) => {
                // A closed store (or a lost connection) answers at once: wait out a poll
                // interval instead of spinning on it.
                if waited.is_err() {
                    let shutdown = hub.shutdown.notified();
                    tokio::select! {
                        () = tokio::time::sleep(config.poll_interval) => {}
                        () = shutdown => return,
                    }
                }
            }
            () = tokio::time::sleep(config.poll_interval) => {}
            () = shutdown => return,
        }
    }
}

/// Prunes the change log every `prune_interval`, up to what the fan-out has taken on (a
/// change waiting in a client's backlog is held there, so the log need not keep it).
async fn prune(state: Weak<AppState>, store: Arc<dyn Store>, hub: Arc<HubInner>) {
    let mut pruned = hub.cursor.load(Ordering::Acquire);
    loop {
        let interval = hub.config().prune_interval;
        let shutdown = hub.shutdown.notified();
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown => return,
        }
        if hub.shutting_down.load(Ordering::Acquire) || state.strong_count() == 0 {
            return;
        }
        let cursor = hub.cursor.load(Ordering::Acquire);
        if cursor == pruned {
            continue;
        }
        pruned = cursor;
        if let Err(error) = store.prune_changes(cursor, hub.config().retention).await {
            tracing::warn!(%error, "realtime: pruning the change log failed");
        }
    }
}

/// Sends one change to every client with a matching subscription that may see it: at once
/// where every decision can be made in memory, else through the client's backlog (see the
/// module comment). Clients that see the change the same way share one decision and one
/// rendering.
async fn deliver(state: &Arc<AppState>, hub: &Arc<HubInner>, change: Change) {
    let schema = state.schema();
    let Some(collection) = schema.get_by_id(&change.collection_id).cloned() else {
        return;
    };
    // Secret changes that happened since the last round drop auth before anything is sent.
    hub.revalidate_auth_for(&schema);
    let clients = hub.clients();
    if collection.is_auth() {
        refresh_auth(&clients, &collection, &change);
    }
    let work = Arc::new(ChangeWork::new(change, collection, hub));
    let (change, collection) = (&work.change, &work.collection);
    for client in clients {
        let subscriptions = client.subscriptions();
        if !subscriptions
            .iter()
            .any(|s| s.receives(&collection.id, &collection.name, change))
        {
            continue;
        }
        // A snapshot, so the lock is not held across rendering.
        let auth = client.auth();
        let deferred = Deferred {
            work: Arc::clone(&work),
            auth,
            subscriptions,
        };
        // Behind a backlog, even a cheap change waits its turn.
        if client.has_backlog() {
            hub.defer(state, &client, deferred);
            continue;
        }
        let mut messages = Vec::new();
        let mut in_memory = true;
        let mut renders = 0usize;
        let viewer = viewer_key(&deferred.auth);
        for subscription in deferred.subscriptions.iter() {
            if !subscription.receives(&collection.id, &collection.name, change) {
                continue;
            }
            let view = matches!(subscription.target, Some(Target::View(_)));
            let cell = work.cell((viewer.clone(), view, subscription.options_key.clone()));
            let data = match cell.get() {
                Some(data) => data.clone(),
                // Past its budget, a client's remaining work goes to its backlog too.
                None if renders >= INLINE_RENDERS => {
                    in_memory = false;
                    break;
                }
                None => {
                    renders += 1;
                    let rendered = render(
                        state,
                        collection,
                        change,
                        &deferred.auth,
                        subscription,
                        view,
                        Checks::InMemory,
                    )
                    .await;
                    let Some(data) = rendered else {
                        in_memory = false;
                        break;
                    };
                    let data = data.map(Arc::from);
                    let _ = cell.set(data.clone());
                    data
                }
            };
            if let Some(data) = data {
                messages.push(Message {
                    event: Arc::clone(&subscription.raw),
                    data,
                });
            }
        }
        if !in_memory {
            hub.defer(state, &client, deferred);
            continue;
        }
        for message in messages {
            if !hub.send(&client, message) {
                break;
            }
        }
    }
}

/// A client's backlog worker: decides and sends its queued changes in order, the database
/// checks under the hub's semaphore, until the backlog is empty or the client is gone.
async fn work_off_backlog(state: Arc<AppState>, hub: Arc<HubInner>, client: Arc<Client>) {
    loop {
        let next = {
            let mut client_state = client.lock();
            let next = if client.is_closed() || hub.shutting_down.load(Ordering::Acquire) {
                client_state.backlog = VecDeque::new();
                None
            } else {
                client_state.backlog.pop_front()
            };
            if next.is_none() {
                client_state.working = false;
                if client_state.backlog.capacity() > KEEP_QUEUE_SLOTS {
                    client_state.backlog = VecDeque::new();
                }
            }
            next
        };
        let Some(deferred) = next else {
            return;
        };
        let (change, collection) = (&deferred.work.change, &deferred.work.collection);
        let viewer = viewer_key(&deferred.auth);
        for subscription in deferred.subscriptions.iter() {
            // A client dropped meanwhile needs no more checks.
            if client.is_closed() {
                break;
            }
            if !subscription.receives(&collection.id, &collection.name, change) {
                continue;
            }
            let view = matches!(subscription.target, Some(Target::View(_)));
            let cell = deferred
                .work
                .cell((viewer.clone(), view, subscription.options_key.clone()));
            let data = cell
                .get_or_init(|| async {
                    // Closed only at shutdown, when nothing is sent any more.
                    let _place = hub.checks.acquire().await.ok();
                    render(
                        &state,
                        collection,
                        change,
                        &deferred.auth,
                        subscription,
                        view,
                        Checks::Database,
                    )
                    .await
                    .flatten()
                    .map(Arc::from)
                })
                .await
                .clone();
            if let Some(data) = data {
                let message = Message {
                    event: Arc::clone(&subscription.raw),
                    data,
                };
                if !hub.send(&client, message) {
                    break;
                }
            }
        }
        // The change is let go only now: its size counted while its checks ran.
        let size = deferred.work.size();
        drop(deferred);
        let mut client_state = client.lock();
        client_state.backlog_bytes = client_state.backlog_bytes.saturating_sub(size);
    }
}

/// The approximate heap and inline size of a record's values (what a parsed change holds).
fn map_size(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    // A map entry's key, its value and the map's own bookkeeping.
    map.iter()
        .map(|(key, value)| std::mem::size_of::<String>() + key.len() + 16 + value_size(value))
        .sum()
}

fn value_size(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    std::mem::size_of::<Value>()
        + match value {
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(value_size).sum(),
            Value::Object(map) => map_size(map),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

/// Who a message is rendered for: guests all alike, and each auth record (superusers
/// included: their filters may name `@request.auth.*`) its own.
fn viewer_key(auth: &AuthContext) -> String {
    match auth {
        AuthContext::Guest => String::new(),
        AuthContext::Record {
            collection, record, ..
        } => format!("{}/{}", collection.id, record.id()),
    }
}

/// The auth token secret of an auth collection.
fn token_secret(collection: &Collection) -> Option<&str> {
    collection
        .auth
        .as_ref()
        .map(|auth| auth.auth_token.secret.as_str())
}

/// Drops the auth of clients whose tokens the schema no longer accepts: their collection's
/// auth token secret changed, or the collection is gone (PocketBase drops them too, and they
/// then see what a guest sees). Other clients get the current collection definition.
fn revalidate_auth(clients: &[Arc<Client>], schema: &Schema) {
    for client in clients {
        let mut state = client.lock();
        let AuthContext::Record { collection, .. } = &*state.auth else {
            continue;
        };
        let current = match schema.get_by_id(&collection.id) {
            Some(current) if Arc::ptr_eq(current, collection) => continue,
            Some(current) if token_secret(current) == token_secret(collection) => {
                Some(Arc::clone(current))
            }
            _ => None,
        };
        match current {
            // Copied only if a snapshot of the old auth is still in use somewhere.
            Some(current) => {
                if let AuthContext::Record { collection, .. } = Arc::make_mut(&mut state.auth) {
                    *collection = current;
                }
            }
            None => {
                tracing::debug!(client = %client.id, "realtime: auth token secret changed; now a guest");
                state.auth = guest();
            }
        }
    }
}

/// A client authenticated as a record that was deleted, or whose token key changed (a new
/// password, a "log out everywhere"), falls back to a guest, as in PocketBase; otherwise its
/// auth record is kept current for rule checks.
fn refresh_auth(clients: &[Arc<Client>], collection: &Collection, change: &Change) {
    for client in clients {
        let mut state = client.lock();
        let AuthContext::Record {
            collection: auth_collection,
            record,
            ..
        } = &*state.auth
        else {
            continue;
        };
        if auth_collection.id != collection.id || record.id() != change.record_id {
            continue;
        }
        let drop_auth = change.action == ChangeAction::Delete
            || change.record.text("tokenKey") != record.text("tokenKey");
        if drop_auth {
            state.auth = guest();
        } else if let AuthContext::Record { record, .. } = Arc::make_mut(&mut state.auth) {
            // Copied only if a snapshot of the old auth is still in use somewhere.
            **record = change.record.clone();
        }
    }
}

/// What rules see of a realtime delivery: a `GET` in the `realtime` context, the client's
/// auth, and the subscription options' query and headers.
fn realtime_context(auth: &AuthContext, subscription: &Subscription) -> RequestContext {
    let mut ctx = RequestContext::new(auth.clone())
        .with_method("GET")
        .with_context(rules::contexts::REALTIME);
    for (name, value) in &subscription.query {
        ctx = ctx.with_query(name, value);
    }
    for (name, value) in &subscription.headers {
        ctx = ctx.with_header(name, value);
    }
    ctx
}

/// Where a decision may look: in memory only (the fan-out task), or the database too (a
/// client's backlog worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    InMemory,
    Database,
}

/// The `data` of the message for one subscription: `Some(None)` when the subscriber may not
/// see the change, `None` when deciding or rendering needs the database and `checks` is
/// [`Checks::InMemory`].
async fn render(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    change: &Change,
    auth: &AuthContext,
    subscription: &Subscription,
    view: bool,
    checks: Checks,
) -> Option<Option<String>> {
    let ctx = realtime_context(auth, subscription);
    if !allowed(state, collection, change, &ctx, subscription, view, checks).await? {
        return Some(None);
    }
    let expand = subscription.query_value("expand");
    if !expand.is_empty() && checks == Checks::InMemory {
        return None;
    }
    let records = [change.record.clone()];
    let mut outputs = [record_json(collection, &records[0], auth)];
    // Managers see the email whatever its visibility, as in a GET.
    if collection.is_auth()
        && !auth.is_superuser()
        && outputs[0].get("email").is_none()
        && let Some(email) = change.record.get("email")
        && manages(state, collection, &change.record, &ctx, checks).await?
        && let Some(object) = outputs[0].as_object_mut()
    {
        object.insert("email".into(), email.clone());
    }
    if !expand.is_empty()
        && let Err(error) = crate::records::expand_records_for(
            state,
            &ctx,
            collection,
            &records,
            &mut outputs,
            Some(expand),
        )
        .await
    {
        tracing::debug!(message = %error.message, "realtime: expand failed");
        return Some(None);
    }
    let [mut record] = outputs;
    if apply_fields(&mut record, subscription.query_value("fields")).is_err() {
        return Some(None);
    }
    let data = serde_json::json!({ "record": record, "action": change.action.as_str() });
    Some(Some(data.to_string()))
}

/// Whether the caller passes the auth collection's manageRule for `record` (its state as of
/// the change); `None` when that needs the database and `checks` does not allow it.
async fn manages(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    record: &Record,
    ctx: &RequestContext,
    checks: Checks,
) -> Option<bool> {
    let rules = state.collection_rules(collection);
    let Some(manage) = rules.manage.as_ref() else {
        return Some(false);
    };
    let question = Question {
        rule: manage,
        filter: None,
        collection,
        record,
        stored: false,
    };
    decided(state, question, ctx, checks).await
}

/// Whether the list (`coll/*`) or view (`coll/id`) rule and the options' `filter` let this
/// subscriber see the change. Both are decided on the change's own record state: in memory
/// when the expressions are row-local, else by SQL over that state with the other tables as
/// stored (the row itself may be newer by now, or gone). `None` when the SQL is needed and
/// `checks` does not allow it.
async fn allowed(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    change: &Change,
    ctx: &RequestContext,
    subscription: &Subscription,
    view: bool,
    checks: Checks,
) -> Option<bool> {
    let rules = state.collection_rules(collection);
    let rule = if view { &rules.view } else { &rules.list };
    // Non-superuser filters naming `@request` or `@collection` are refused here, which drops
    // the event silently, as PocketBase does.
    let filter = match crate::access::compile_filter(
        &state.schema(),
        collection,
        subscription.query_value("filter"),
        &ctx.auth,
    ) {
        Ok(filter) => filter,
        Err(_) => return Some(false),
    };
    let question = Question {
        rule,
        filter: filter.as_ref(),
        collection,
        record: &change.record,
        stored: false,
    };
    decided(state, question, ctx, checks).await
}

/// [`access::decide`] for a change's record state: `None` when SQL is needed and `checks`
/// does not allow it; a failed check does not deliver.
async fn decided(
    state: &Arc<AppState>,
    question: Question<'_>,
    ctx: &RequestContext,
    checks: Checks,
) -> Option<bool> {
    let sql = match checks {
        Checks::InMemory => SqlCheck::Never,
        Checks::Database => SqlCheck::Lenient,
    };
    match access::decide(state.store.as_ref(), question, ctx, sql).await {
        Ok(Decision::NeedsSql(_)) => None,
        Ok(decision) => Some(decision.allows()),
        Err(error) => {
            tracing::warn!(%error, "realtime: checking a rule failed; not delivering");
            Some(false)
        }
    }
}
