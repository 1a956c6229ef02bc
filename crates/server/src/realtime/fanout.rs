//! The realtime fan-out: the task that tails the store's change log and fans each committed
//! change out to the connected SSE clients. The registry of clients, their queues and backlogs
//! and the fan-out's bookkeeping are the hub's state, on the ground floor
//! ([`crate::state::hub`]); the logic that fills and drains them is here.
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
//!
//! [`RealtimeConfig::client_buffer`]: crate::state::hub::RealtimeConfig::client_buffer
//! [`RealtimeConfig::backlog_bytes`]: crate::state::hub::RealtimeConfig::backlog_bytes

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
#[cfg(test)]
use std::time::Duration;

use domain::{AuthContext, Change, ChangeAction, Collection, Schema};
use domain::{Record, Store};
use rules::RequestContext;

use super::subscription::{Subscription, Target};
use crate::access::{self, Decision, Question, SqlCheck};
use crate::response::{apply_fields, record_json};
use crate::state::AppState;
use crate::state::hub::{
    ChangeWork, Client, Deferred, ExpandRecords, Hub, HubInner, KEEP_QUEUE_SLOTS, Message,
    change_size, guest,
};

/// Renderings the fan-out task does for one client and one change (decisions another client
/// already made for the change are free); a client with more subscriptions to decide has the
/// change queued in its backlog, so many subscriptions cannot slow the fan-out either.
const INLINE_RENDERS: usize = 16;

impl Hub {
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
        if store.shared() {
            tokio::spawn(super::relay::follow(
                Arc::downgrade(state),
                Arc::clone(&store),
            ));
        }
        tokio::spawn(run(
            Arc::downgrade(state),
            store,
            Arc::clone(&self.inner),
            cursor,
        ));
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
}

impl HubInner {
    /// Queues `deferred` in the client's backlog and starts its worker when none runs. A
    /// client whose backlog is full (by count or bytes), or whose change would take every
    /// backlog together past [`RealtimeConfig::backlog_bytes`], is disconnected instead.
    ///
    /// [`RealtimeConfig::backlog_bytes`]: crate::state::hub::RealtimeConfig::backlog_bytes
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
        if let Some(skipped_to) = skip_unwatched(&store, &hub, cursor).await {
            cursor = skipped_to;
        } else {
            match store.changes_after(cursor, config.batch).await {
                Ok(changes) if !changes.is_empty() => {
                    let Some(state) = state.upgrade() else {
                        return;
                    };
                    for change in changes {
                        let seq = change.seq;
                        let taking_on = hub.delivering.lock().await;
                        deliver(&state, &hub, change).await;
                        cursor = seq;
                        hub.cursor.store(cursor, Ordering::Release);
                        drop(taking_on);
                        hub.progress.changed.notify_waiters();
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "realtime: reading the change log failed"),
            }
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

/// With no client connected, nobody needs the changes committed since `cursor`: the fan-out
/// moves past them without reading them (a write-heavy server with no realtime clients then
/// spends nothing on realtime). Returns the new cursor, or `None` when someone is connected.
///
/// A client that connects meanwhile misses nothing it asked for: the newest sequence is read
/// before the client count, so a client counted after it subscribes after that sequence (its
/// topics start at the newest committed change, see `subscribe_held`), and a resuming client
/// takes the `delivering` lock this holds.
async fn skip_unwatched(store: &Arc<dyn Store>, hub: &HubInner, cursor: u64) -> Option<u64> {
    if hub.client_count() != 0 {
        return None;
    }
    let newest = store.last_change_seq().await.ok()?;
    if newest <= cursor {
        return Some(cursor);
    }
    let taking_on = hub.delivering.lock().await;
    if hub.client_count() != 0 {
        return None;
    }
    hub.cursor.store(newest, Ordering::Release);
    drop(taking_on);
    store.skipped_changes(newest);
    hub.progress.changed.notify_waiters();
    Some(newest)
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
                        hub.expand,
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
                    seq: change.seq,
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
                        hub.expand,
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
                    seq: change.seq,
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
            // The auth is copied only if a snapshot of the old one is still in use somewhere;
            // the record is replaced, not changed in place.
            *record = Arc::new(change.record.clone());
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
#[allow(clippy::too_many_arguments)]
async fn render(
    state: &Arc<AppState>,
    expand_records: ExpandRecords,
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
        && let Err(error) =
            expand_records(state, &ctx, collection, &records, &mut outputs, expand).await
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

/// Why a subscription did not resume where the client left off.
#[derive(Debug)]
pub(crate) enum ResumeError {
    /// Changes after the resume point were pruned from the log (or the point is past the
    /// log's newest change).
    Pruned,
    /// More changes were missed than the client's queue may hold.
    TooFarBehind,
    Store(domain::StoreError),
}

impl From<domain::StoreError> for ResumeError {
    fn from(error: domain::StoreError) -> Self {
        ResumeError::Store(error)
    }
}

/// Replaces `client`'s subscriptions with `subscriptions` and queues, in log order, every
/// change after `after` they receive that the fan-out has already taken on, then lets the
/// fan-out go on from there: the client gets each change after `after` once, in order,
/// whichever node it was connected to before. The missed changes are read from the store
/// before the fan-out is held, so it waits only for the few that committed meanwhile.
pub(crate) async fn resume(
    state: &Arc<AppState>,
    hub: &Hub,
    client: &Arc<Client>,
    auth: AuthContext,
    subscriptions: Vec<Subscription>,
    after: u64,
) -> Result<(), ResumeError> {
    let inner = &hub.inner;
    let store = &state.store;
    let config = inner.config();
    let budget = Budget {
        changes: config.client_buffer.max(1),
        bytes: config.client_buffer_bytes,
    };
    let head = store.last_change_seq().await?;
    if after > head {
        return Err(ResumeError::Pruned);
    }
    if after < head {
        // The log is pruned from its oldest end: whatever follows its oldest entry is whole.
        let oldest = store.changes_after(0, 1).await?;
        if oldest.first().is_none_or(|change| change.seq > after + 1) {
            return Err(ResumeError::Pruned);
        }
    }
    // Nothing reaches the client through its old topics while it catches up.
    client.set(auth.clone(), Vec::new());
    let mut missed = Missed::default();
    let mut read_to = after;
    // What the fan-out has taken on so far, without holding it.
    let first = inner.cursor.load(Ordering::Acquire);
    read_missed(store, &mut missed, &mut read_to, first, budget).await?;
    let taking_on = inner.delivering.lock().await;
    let cursor = inner.cursor.load(Ordering::Acquire);
    read_missed(store, &mut missed, &mut read_to, cursor, budget).await?;
    let schema = state.schema();
    let live: Vec<Subscription> = subscriptions
        .iter()
        .cloned()
        .map(|mut subscription| {
            subscription.since = cursor.max(after);
            subscription
        })
        .collect();
    let replayed: Arc<[Subscription]> = subscriptions
        .into_iter()
        .map(|mut subscription| {
            subscription.since = after;
            subscription
        })
        .collect();
    client.set(auth, live);
    let auth = client.auth();
    for change in missed.changes {
        let Some(collection) = schema.get_by_id(&change.collection_id).cloned() else {
            continue;
        };
        if !replayed
            .iter()
            .any(|s| s.receives(&collection.id, &collection.name, &change))
        {
            continue;
        }
        let deferred = Deferred {
            work: Arc::new(ChangeWork::new(change, collection, inner)),
            auth: Arc::clone(&auth),
            subscriptions: Arc::clone(&replayed),
        };
        inner.defer(state, client, deferred);
    }
    drop(taking_on);
    Ok(())
}

/// What a resuming client may be sent at once: its queue's bounds, by count and by bytes.
#[derive(Clone, Copy)]
struct Budget {
    changes: usize,
    bytes: usize,
}

/// The changes a resuming client missed, and their approximate memory.
#[derive(Default)]
struct Missed {
    changes: Vec<Change>,
    bytes: usize,
}

/// Reads the changes after `*read_to` up to `to` into `missed`, within `budget` (one change
/// always fits, as in a backlog).
async fn read_missed(
    store: &Arc<dyn Store>,
    missed: &mut Missed,
    read_to: &mut u64,
    to: u64,
    budget: Budget,
) -> Result<(), ResumeError> {
    while *read_to < to {
        let batch = store
            .changes_after(*read_to, budget.changes.min(512))
            .await?;
        let Some(last) = batch.last().map(|change| change.seq) else {
            break;
        };
        for change in batch.into_iter().filter(|change| change.seq <= to) {
            missed.bytes = missed.bytes.saturating_add(change_size(&change));
            missed.changes.push(change);
        }
        *read_to = last.min(to);
        let count = missed.changes.len();
        if count > budget.changes || (count > 1 && missed.bytes > budget.bytes) {
            return Err(ResumeError::TooFarBehind);
        }
    }
    *read_to = (*read_to).max(to);
    Ok(())
}
