//! The realtime hub's state: the connected SSE clients with their subscriptions and queues,
//! each client's backlog of changes whose checks need the database, and the bookkeeping of
//! the fan-out (how far it has read the change log, what is still being prepared, the bytes
//! held). The `realtime` feature runs the fan-out over it (tailing the change log, deciding
//! and rendering each change for each subscriber) and serves the SSE endpoints; its module
//! comments explain the bounds. Expanding relations in a rendered record is the `records`
//! feature's, handed to the hub at construction ([`ExpandRecords`]), so neither the hub nor
//! the fan-out depends on `records`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use domain::{AuthContext, Change, ChangeRetention, Collection, Record, Schema};
use futures_util::future::BoxFuture;
use rules::RequestContext;
use serde_json::Value;
use tokio::sync::{Notify, OnceCell, Semaphore};

use super::SharedState;
use super::settings::Realtime;
use crate::error::ApiResult;

/// Expands the relations named by `expand` (a subscription's `expand` option) into the
/// rendered `outputs` of `records` of `collection`, as the caller (`ctx`) may see them: the
/// `records` feature's `expand`, handed to [`Hub::new`] by the crate root.
pub type ExpandRecords = for<'a> fn(
    state: &'a SharedState,
    ctx: &'a RequestContext,
    collection: &'a Arc<Collection>,
    records: &'a [Record],
    outputs: &'a mut [Value],
    expand: &'a str,
) -> BoxFuture<'a, ApiResult<()>>;

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
        let settings = Realtime::default();
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
    pub(crate) fn apply(&mut self, settings: &Realtime) {
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
///
/// Several nodes: the clients are the node's own SSE connections, and each node's fan-out
/// reads the store's durable change log, so every node sees every committed change, whichever
/// node wrote it. What is per node today: the wake-up after a write is in-process (a change
/// written by another node is read at the next `poll_interval`, 2 s by default, unless the
/// store wakes waiters across nodes), `settle` makes a write's response wait only for this
/// node's subscribers, the client caps count this node's clients (the cluster admits N times
/// `maxClients`), and each node prunes the log up to what it has read itself, within the
/// retention (a node further behind than the retention would miss changes).
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

/// Database checks that clients' backlog workers run at once (see the module comment): few,
/// so realtime never takes every database reader from the API.
pub(crate) const CONCURRENT_CHECKS: usize = 2;

/// The default of [`RealtimeConfig::backlog_bytes`]: what every backlog together may hold.
pub const BACKLOG_BYTES: usize = 256 << 20;

pub(crate) struct HubInner {
    pub(crate) config: RwLock<RealtimeConfig>,
    clients: RwLock<Registry>,
    /// Places for the backlog workers' database checks, handed out in arrival order.
    pub(crate) checks: Semaphore,
    /// Approximate bytes of the changes some backlog holds, each counted once (a change adds
    /// its size when first deferred and takes it back when the last backlog lets it go).
    pub(crate) backlog_bytes: Arc<AtomicUsize>,
    /// The newest change-log sequence the fan-out has taken on (delivered, or queued in a
    /// client's backlog with the change itself): the pruning task may drop up to it.
    pub(crate) cursor: AtomicU64,
    /// Set once the fan-out task runs; guarded by an async mutex so the start (which reads
    /// the log's current sequence) happens once.
    pub(crate) started: tokio::sync::Mutex<bool>,
    /// Held by the fan-out while it takes on one change, and by a resuming subscription
    /// while it queues what the client missed, so the two never interleave.
    pub(crate) delivering: tokio::sync::Mutex<()>,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) shutdown: Notify,
    /// The schema snapshot client auth was last checked against.
    pub(crate) auth_schema: Mutex<Option<Arc<Schema>>>,
    /// Which changes are still being prepared (see [`Hub::settle`]).
    pub(crate) progress: Arc<Progress>,
    /// Expands relations in a rendered record (the `records` feature's, given at construction).
    pub(crate) expand: ExpandRecords,
}

/// The changes the fan-out has taken on whose messages are not all prepared yet (a change
/// is in the set from the moment the fan-out starts on it until the last backlog holding it
/// has rendered it), and a wake-up for writers waiting on them.
#[derive(Default)]
pub(crate) struct Progress {
    live: Mutex<std::collections::BTreeSet<u64>>,
    pub(crate) changed: Notify,
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
pub(crate) struct Message {
    pub(crate) event: Arc<str>,
    pub(crate) data: Arc<str>,
    /// The change-log sequence of the change the message reports (0 for other messages).
    pub(crate) seq: u64,
}

impl Message {
    /// A message that reports no change (the OAuth2 relay's, a script's).
    fn other(event: &str, data: &str) -> Message {
        Message {
            event: Arc::from(event),
            data: Arc::from(data),
            seq: 0,
        }
    }

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
    /// The stream asked for sequence numbers (`GET /api/realtime?seq=1`, a Plinth
    /// extension): record messages carry their change's `seq`, `PB_CONNECT` the hub's.
    pub(crate) numbered: AtomicBool,
}

pub(crate) struct ClientState {
    /// Shared so the fan-out's per-change snapshot (and the subscribe handler's identity
    /// check) is a reference count rather than a copy of the whole auth record; the few
    /// writers replace it or copy it on write.
    pub(crate) auth: Arc<AuthContext>,
    subscriptions: Arc<[Subscription]>,
    queue: VecDeque<Message>,
    queued_bytes: usize,
    /// Changes whose checks need the database, waiting for this client's worker, in log
    /// order; empty (no allocation) for a client that only needs in-memory decisions.
    pub(crate) backlog: VecDeque<Deferred>,
    /// Approximate bytes of the changes in `backlog` and the one its worker is on, each
    /// counted in full (bounded by `clientQueueBytes`, one change always accepted when
    /// nothing is held).
    pub(crate) backlog_bytes: usize,
    /// A worker task is draining `backlog`.
    pub(crate) working: bool,
}

/// A change queued in a client's backlog, with the auth and subscriptions it had when the
/// fan-out reached it (so it is decided as it would have been at once).
pub(crate) struct Deferred {
    pub(crate) work: Arc<ChangeWork>,
    pub(crate) auth: Arc<AuthContext>,
    pub(crate) subscriptions: Arc<[Subscription]>,
}

/// Who sees a change the same way: the viewer, a view (`coll/id`) or list topic, the options.
pub(crate) type RenderKey = (String, bool, String);

/// The message data one way of seeing a change renders, decided once: `None` inside means
/// "not for this viewer".
pub(crate) type Rendered = Arc<OnceCell<Option<Arc<str>>>>;

/// One change on its way to the clients, with each distinct way of seeing it decided once:
/// `None` in a cell means "not for this viewer".
pub(crate) struct ChangeWork {
    pub(crate) change: Change,
    pub(crate) collection: Arc<Collection>,
    rendered: Mutex<HashMap<RenderKey, Rendered>>,
    /// The change's approximate size in memory, measured when it is first deferred.
    size: OnceLock<usize>,
    /// Set when the change's size was added to the hub's backlog total (only the fan-out
    /// task defers, so it is charged at most once); the drop takes it back.
    pub(crate) charged: AtomicBool,
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
    pub(crate) fn new(change: Change, collection: Arc<Collection>, hub: &HubInner) -> ChangeWork {
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
    pub(crate) fn size(&self) -> usize {
        *self.size.get_or_init(|| change_size(&self.change))
    }

    pub(crate) fn cell(&self, key: RenderKey) -> Rendered {
        let mut rendered = self.rendered.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(rendered.entry(key).or_default())
    }
}

/// The auth every guest client points at, so guests hold no allocation of their own.
static GUEST: LazyLock<Arc<AuthContext>> = LazyLock::new(|| Arc::new(AuthContext::Guest));

pub(crate) fn guest() -> Arc<AuthContext> {
    Arc::clone(&GUEST)
}

/// Queues keeping more than this many slots after a burst give the memory back once drained.
pub(crate) const KEEP_QUEUE_SLOTS: usize = 8;

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

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
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

    /// Whether the client has a subscription named exactly `topic`.
    pub(crate) fn has_subscription(&self, topic: &str) -> bool {
        self.lock().subscriptions.iter().any(|s| &*s.raw == topic)
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
        if message.seq > 0 && self.numbered.load(Ordering::Acquire) {
            return Some(frame(
                &self.id,
                &message.event,
                &with_seq(&message.data, message.seq),
            ));
        }
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

/// The `PB_CONNECT` frame that opens every stream; with `seq`, for a numbered stream.
pub(crate) fn connect_frame(client_id: &str, seq: Option<u64>) -> String {
    let data = match seq {
        Some(seq) => serde_json::json!({ "clientId": client_id, "seq": seq }),
        None => serde_json::json!({ "clientId": client_id }),
    };
    frame(client_id, "PB_CONNECT", &data.to_string())
}

/// A rendered record message (a JSON object) with `"seq"` added as its last key.
pub(crate) fn with_seq(data: &str, seq: u64) -> String {
    match data.strip_suffix('}') {
        Some(head) if head.trim_end().ends_with('{') => format!("{head}\"seq\":{seq}}}"),
        Some(head) => format!("{head},\"seq\":{seq}}}"),
        None => data.to_owned(),
    }
}

impl Hub {
    /// A hub with `config`, rendering `expand` with the `records` feature's `expand`.
    pub fn new(config: RealtimeConfig, expand: ExpandRecords) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                config: RwLock::new(config),
                clients: RwLock::new(Registry::default()),
                checks: Semaphore::new(CONCURRENT_CHECKS),
                backlog_bytes: Arc::new(AtomicUsize::new(0)),
                cursor: AtomicU64::new(0),
                started: tokio::sync::Mutex::new(false),
                delivering: tokio::sync::Mutex::new(()),
                shutting_down: AtomicBool::new(false),
                shutdown: Notify::new(),
                auth_schema: Mutex::new(None),
                progress: Arc::new(Progress::default()),
                expand,
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
    pub fn apply_settings(&self, settings: &Realtime) {
        self.inner
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(settings);
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.inner.client_count()
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

    /// The newest change-log sequence the fan-out has taken on.
    pub(crate) fn cursor(&self) -> u64 {
        self.inner.cursor.load(Ordering::Acquire)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
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
            numbered: AtomicBool::new(false),
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
        self.inner.send(&client, Message::other(topic, data))
    }

    /// Queues one message named `name` with `data` for the client `client_id`, subscribed to
    /// it or not (a script's `client.send`); `false` when no such client is connected or its
    /// queue is over its bounds (it is then disconnected, as by the fan-out).
    pub(crate) fn message_any(&self, client_id: &str, name: &str, data: &str) -> bool {
        self.client(client_id)
            .is_some_and(|client| self.inner.send(&client, Message::other(name, data)))
    }

    /// Ends a client's stream (a script's `client.discard()`).
    pub(crate) fn discard(&self, client: &Client) {
        self.inner.drop_client(client);
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
        self.inner.send(client, Message::other(event, data))
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
    pub(crate) fn config(&self) -> RealtimeConfig {
        *self.config.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many clients are connected.
    pub(crate) fn client_count(&self) -> usize {
        self.read_clients().by_id.len()
    }

    fn read_clients(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.clients.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_clients(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.clients.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message, dropping the client when its queue is over a bound; `false` then.
    pub(crate) fn send(&self, client: &Client, message: Message) -> bool {
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

    pub(crate) fn drop_client(&self, client: &Client) {
        self.write_clients().remove(&client.id);
        client.close();
    }

    pub(crate) fn clients(&self) -> Vec<Arc<Client>> {
        self.read_clients().by_id.values().cloned().collect()
    }
}

/// The approximate memory a change takes once parsed and queued (its record dominates): what
/// the backlog budgets, and a resuming client's replay, are counted in.
pub(crate) fn change_size(change: &domain::Change) -> usize {
    std::mem::size_of::<ChangeWork>()
        + change.collection_id.len()
        + change.record_id.len()
        + map_size(&change.record.data)
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

/// What a topic watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every record of the collection (`coll/*` or `coll`); checked with the list rule.
    List,
    /// One record (`coll/<id>`); checked with the view rule.
    View(String),
}

/// One parsed subscription of a client.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    /// The string as subscribed, echoed as the event name (shared by every queued message).
    pub raw: Arc<str>,
    /// The collection id or name the topic names (matched exactly against both).
    pub collection: String,
    /// `None` for strings that are no record topic (e.g. `@oauth2`): accepted, never matched
    /// by record events.
    pub target: Option<Target>,
    /// `options.query`, values coerced to text.
    pub query: Vec<(String, String)>,
    /// `options.headers`, names normalized like `@request.headers.*`, values as text.
    pub headers: Vec<(String, String)>,
    /// The raw options text, part of the fan-out cache key (equal options, equal output).
    pub options_key: String,
    /// The newest change-log sequence committed when this topic was subscribed: only changes
    /// after it are delivered (a write that committed before the subscription is not an event
    /// for it, however late the hub reads it).
    pub since: u64,
}

impl Subscription {
    /// The first `options.query` value named `name`, or `""`.
    pub(crate) fn query_value(&self, name: &str) -> &str {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// Whether `change` of the collection `(id, name)` is an event for this topic: a change
    /// that committed before the topic was subscribed is not.
    pub(crate) fn receives(
        &self,
        collection_id: &str,
        collection_name: &str,
        change: &domain::Change,
    ) -> bool {
        self.since < change.seq && self.matches(collection_id, collection_name, &change.record_id)
    }

    /// Whether this topic covers the record `record_id` of the collection `(id, name)`.
    pub(crate) fn matches(
        &self,
        collection_id: &str,
        collection_name: &str,
        record_id: &str,
    ) -> bool {
        if self.collection != collection_id && self.collection != collection_name {
            return false;
        }
        match &self.target {
            Some(Target::List) => true,
            Some(Target::View(id)) => id == record_id,
            None => false,
        }
    }
}
