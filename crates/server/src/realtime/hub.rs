//! The realtime hub: the registry of connected SSE clients and the task that tails the
//! store's change log and fans each committed change out to them.
//!
//! Every client owns a bounded queue of ready-made SSE frames. The fan-out task only ever
//! `try_send`s into it: a client whose queue is full is disconnected on the spot, so one slow
//! reader can neither slow the hub nor grow memory. The task reads the log by sequence number
//! after a wake-up from the store (and on a slow poll, in case a wake-up is missed), so only
//! committed writes are published and none is skipped while the server runs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use domain::{AuthContext, Change, ChangeAction, ChangeRetention, Collection, Store};
use rules::{Eval, RequestContext, RuleOutcome};
use tokio::sync::{Notify, mpsc};

use super::subscription::{Subscription, Target};
use crate::response::{apply_fields, record_json};
use crate::state::AppState;

/// Tunables of the realtime hub.
// FIXME(#6): only the defaults are used; expose retention (and the lifetimes) as settings or
// `serve` flags.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// A stream with no message sent for this long is closed (PocketBase: 5 minutes).
    pub idle_timeout: Duration,
    /// A stream is closed after this long whatever happens (PocketBase: 30 minutes).
    pub max_lifetime: Duration,
    /// Frames queued per client before it counts as too slow and is disconnected.
    // FIXME(#6): bound the queue by bytes too; a few huge records can still take memory.
    pub client_buffer: usize,
    /// How often the log is read without a wake-up.
    pub poll_interval: Duration,
    /// Change-log entries read per round.
    pub batch: usize,
    /// What the hub prunes from the change log once it has delivered it.
    pub retention: ChangeRetention,
    /// How often the hub prunes.
    pub prune_interval: Duration,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            idle_timeout: Duration::from_secs(5 * 60),
            max_lifetime: Duration::from_secs(30 * 60),
            client_buffer: 512,
            poll_interval: Duration::from_secs(2),
            batch: 500,
            retention: ChangeRetention::default(),
            prune_interval: Duration::from_secs(60),
        }
    }
}

/// The hub shared by the handlers (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    config: RealtimeConfig,
    clients: RwLock<HashMap<String, Arc<Client>>>,
    /// Set once the fan-out task runs; guarded by an async mutex so the start (which reads
    /// the log's current sequence) happens once.
    started: tokio::sync::Mutex<bool>,
    shutting_down: AtomicBool,
    shutdown: Notify,
}

/// One connected SSE client.
pub(crate) struct Client {
    pub(crate) id: String,
    /// The peer address of the stream; subscription requests must come from it.
    pub(crate) ip: Option<IpAddr>,
    sender: mpsc::Sender<String>,
    state: Mutex<ClientState>,
    /// Set when the hub drops the client (slow, or shutting down); wakes its stream.
    closed: AtomicBool,
    pub(crate) kick: Notify,
}

struct ClientState {
    auth: AuthContext,
    subscriptions: Arc<[Subscription]>,
}

impl Client {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.kick.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn auth(&self) -> AuthContext {
        self.lock().auth.clone()
    }

    /// Replaces the client's auth and subscriptions together.
    pub(crate) fn set(&self, auth: AuthContext, subscriptions: Vec<Subscription>) {
        let mut state = self.lock();
        state.auth = auth;
        state.subscriptions = subscriptions.into();
    }

    fn snapshot(&self) -> (AuthContext, Arc<[Subscription]>) {
        let state = self.lock();
        (state.auth.clone(), Arc::clone(&state.subscriptions))
    }
}

/// One SSE frame: `id:` is always the client id, no space after the colons.
pub(crate) fn frame(client_id: &str, event: &str, data: &str) -> String {
    format!("id:{client_id}\nevent:{event}\ndata:{data}\n\n")
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
                config,
                clients: RwLock::new(HashMap::new()),
                started: tokio::sync::Mutex::new(false),
                shutting_down: AtomicBool::new(false),
                shutdown: Notify::new(),
            }),
        }
    }

    pub fn config(&self) -> &RealtimeConfig {
        &self.inner.config
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.inner.read_clients().len()
    }

    /// Closes every stream and stops the fan-out task, so a graceful shutdown is not held
    /// up by streams that would otherwise stay open for up to 30 minutes.
    pub fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        self.inner.shutdown.notify_waiters();
        let clients: Vec<Arc<Client>> = self
            .inner
            .write_clients()
            .drain()
            .map(|(_, client)| client)
            .collect();
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
        tokio::spawn(run(
            Arc::downgrade(state),
            store,
            Arc::clone(&self.inner),
            cursor,
        ));
    }

    /// Registers a new client whose queue already holds its `PB_CONNECT` frame.
    pub(crate) fn connect(&self, ip: Option<IpAddr>) -> (Arc<Client>, mpsc::Receiver<String>) {
        let id = domain::ids::random_alnum(40);
        let (sender, receiver) = mpsc::channel(self.inner.config.client_buffer.max(2));
        let connect = frame(
            &id,
            "PB_CONNECT",
            &serde_json::json!({ "clientId": id }).to_string(),
        );
        // The queue is new and empty, so this cannot fail.
        let _ = sender.try_send(connect);
        let client = Arc::new(Client {
            id: id.clone(),
            ip,
            sender,
            state: Mutex::new(ClientState {
                auth: AuthContext::Guest,
                subscriptions: Arc::from(Vec::new()),
            }),
            closed: AtomicBool::new(false),
            kick: Notify::new(),
        });
        self.inner.write_clients().insert(id, Arc::clone(&client));
        (client, receiver)
    }

    pub(crate) fn client(&self, id: &str) -> Option<Arc<Client>> {
        self.inner.read_clients().get(id).cloned()
    }

    /// Queues a frame for one client the way the fan-out does.
    #[cfg(test)]
    pub(crate) fn send(&self, client: &Client, frame: String) {
        self.inner.send(client, frame);
    }

    /// Forgets a client (its stream ended).
    pub(crate) fn disconnect(&self, id: &str) {
        self.inner.write_clients().remove(id);
    }
}

impl HubInner {
    fn read_clients(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Client>>> {
        self.clients.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_clients(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Client>>> {
        self.clients.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame, dropping the client when its queue is full or gone.
    fn send(&self, client: &Client, frame: String) {
        if client.sender.try_send(frame).is_err() {
            tracing::debug!(client = %client.id, "realtime: client too slow, disconnecting");
            self.write_clients().remove(&client.id);
            client.close();
        }
    }
}

/// The fan-out loop: read what committed after `cursor`, deliver it, wait for a wake-up.
async fn run(state: Weak<AppState>, store: Arc<dyn Store>, hub: Arc<HubInner>, mut cursor: u64) {
    let config = hub.config.clone();
    let mut last_prune = tokio::time::Instant::now();
    loop {
        if hub.shutting_down.load(Ordering::Acquire) {
            return;
        }
        match store.changes_after(cursor, config.batch).await {
            Ok(changes) if !changes.is_empty() => {
                let Some(state) = state.upgrade() else {
                    return;
                };
                for change in &changes {
                    deliver(&state, &hub, change).await;
                    cursor = change.seq;
                }
                if last_prune.elapsed() >= config.prune_interval {
                    last_prune = tokio::time::Instant::now();
                    if let Err(error) = store.prune_changes(cursor, config.retention).await {
                        tracing::warn!(%error, "realtime: pruning the change log failed");
                    }
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
            _ = store.wait_for_changes(cursor) => {}
            () = tokio::time::sleep(config.poll_interval) => {}
            () = shutdown => return,
        }
    }
}

/// Sends one change to every client with a matching subscription that may see it.
async fn deliver(state: &Arc<AppState>, hub: &HubInner, change: &Change) {
    let schema = state.schema();
    let Some(collection) = schema.get_by_id(&change.collection_id).cloned() else {
        return;
    };
    let clients: Vec<Arc<Client>> = hub.read_clients().values().cloned().collect();
    if collection.is_auth() {
        refresh_auth(&clients, &collection, change);
    }
    // Clients that see the record the same way share one rendering.
    let mut rendered: HashMap<(String, bool, String), Option<Arc<str>>> = HashMap::new();
    for client in clients {
        let (auth, subscriptions) = client.snapshot();
        for subscription in subscriptions.iter() {
            if !subscription.matches(&collection.id, &collection.name, &change.record_id) {
                continue;
            }
            let view = matches!(subscription.target, Some(Target::View(_)));
            let key = (viewer_key(&auth), view, subscription.options_key.clone());
            let data = match rendered.get(&key) {
                Some(data) => data.clone(),
                None => {
                    let data = render(state, &collection, change, &auth, subscription, view)
                        .await
                        .map(Arc::from);
                    rendered.insert(key, data.clone());
                    data
                }
            };
            if let Some(data) = data {
                hub.send(&client, frame(&client.id, &subscription.raw, &data));
            }
            if client.is_closed() {
                break;
            }
        }
    }
}

/// Who a message is rendered for: every superuser sees the same, guests the same, and each
/// auth record its own (owner-only email, rules naming `@request.auth`).
fn viewer_key(auth: &AuthContext) -> String {
    match auth {
        AuthContext::Guest => String::new(),
        _ if auth.is_superuser() => "@superuser".to_owned(),
        AuthContext::Record {
            collection, record, ..
        } => format!("{}/{}", collection.id, record.id()),
    }
}

/// A client authenticated as a record that was deleted, or whose token key changed, falls
/// back to a guest; otherwise its auth record is kept current for rule checks.
// FIXME(#6): PocketBase also drops the auth of every client of a collection whose auth token
// secret changes (a schema change, not a record change: it never reaches the change log).
fn refresh_auth(clients: &[Arc<Client>], collection: &Collection, change: &Change) {
    for client in clients {
        let mut state = client.lock();
        let AuthContext::Record {
            collection: auth_collection,
            record,
            ..
        } = &mut state.auth
        else {
            continue;
        };
        if auth_collection.id != collection.id || record.id() != change.record_id {
            continue;
        }
        let drop_auth = change.action == ChangeAction::Delete
            || change.record.text("tokenKey") != record.text("tokenKey");
        if drop_auth {
            state.auth = AuthContext::Guest;
        } else {
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

/// The `data` of the message for one subscription, or `None` when the subscriber may not see
/// the change.
async fn render(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    change: &Change,
    auth: &AuthContext,
    subscription: &Subscription,
    view: bool,
) -> Option<String> {
    let ctx = realtime_context(auth, subscription);
    if !allowed(state, collection, change, &ctx, subscription, view).await {
        return None;
    }
    let records = [change.record.clone()];
    let mut outputs = [record_json(collection, &records[0], auth)];
    // FIXME(#6): callers passing the auth collection's manageRule should see the email, as in
    // a GET (`records::common::reveal_managed_emails`, private to the records module).
    let expand = subscription.query_value("expand");
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
        return None;
    }
    let [mut record] = outputs;
    if apply_fields(&mut record, subscription.query_value("fields")).is_err() {
        return None;
    }
    let data = serde_json::json!({ "record": record, "action": change.action.as_str() });
    Some(data.to_string())
}

/// Whether the list (`coll/*`) or view (`coll/id`) rule and the options' `filter` let this
/// subscriber see the change: decided in memory on the change's own snapshot when the
/// expressions are row-local, else by SQL on the current row.
async fn allowed(
    state: &Arc<AppState>,
    collection: &Arc<Collection>,
    change: &Change,
    ctx: &RequestContext,
    subscription: &Subscription,
    view: bool,
) -> bool {
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
        Err(_) => return false,
    };
    let mut needs_sql = false;
    match rule.check_record(&change.record, ctx) {
        Eval::Match => {}
        Eval::NoMatch => return false,
        Eval::NeedsSql => needs_sql = true,
    }
    if let Some(filter) = &filter {
        match filter.eval(&change.record, ctx) {
            Eval::Match => {}
            Eval::NoMatch => return false,
            Eval::NeedsSql => needs_sql = true,
        }
    }
    if !needs_sql {
        return true;
    }
    if change.action == ChangeAction::Delete {
        // FIXME(#6): the row is gone, so a rule or filter that needs SQL (relations,
        // back-relations, `@collection`) cannot be checked after the fact; PocketBase checks
        // before deleting. Until the store evaluates guards for the change log inside the
        // write, such deletes are not delivered (fail closed).
        return false;
    }
    let dialect = state.store.dialect();
    let mut predicates = Vec::new();
    match rule.outcome(dialect, ctx) {
        RuleOutcome::SuperusersOnly => return false,
        RuleOutcome::Allow => {}
        RuleOutcome::Filter(predicate) => predicates.push(predicate),
    }
    if let Some(filter) = &filter {
        predicates.push(filter.to_sql(dialect, ctx));
    }
    // FIXME(#6): this reads the current row, which may already be newer than the change.
    matches!(
        state
            .store
            .get_record(Arc::clone(collection), &change.record_id, predicates)
            .await,
        Ok(Some(_))
    )
}
