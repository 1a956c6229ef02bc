//! Plinth's [`Store`] on PostgreSQL, for apps that outgrow one machine: several stateless
//! nodes share one database.
//!
//! Connections come from a pool (`deadpool-postgres`). Reads run on any connection in
//! parallel. Every write transaction (record writes, schema changes, interactive
//! transactions) first takes one cluster-wide transaction-level advisory lock, [`WRITE_LOCK`],
//! held until it commits: writes are serialized across every node as SQLite serializes them
//! on one machine, which keeps the change log's sequence in commit order (see `changelog`),
//! read-modify-write updates exact, and guards checked against the rows as committed.
//!
//! Each node keeps the schema in memory. A schema change bumps a version in the database in
//! its transaction and sends `NOTIFY plinth` on commit; every node's listener reloads the
//! schema and wakes its change-log waiters when notified, and a poll every
//! [`POLL_INTERVAL`] catches a notification lost with a dropped connection. NOTIFY only ever
//! wakes: the data is always read from the tables.

mod changelog;
mod console;
mod ddl;
mod records;
mod schema_change;
mod session;
mod sql;
mod system;
mod tx;
mod view;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use domain::collection::{Collection, Schema};
use domain::field::{Field, FieldKind};
use domain::record::{Record, RecordData};
use domain::sql::{Dialect, SqlFragment, quote_ident};
use domain::store::Transaction;
use domain::{
    Change, ChangeRetention, RecordPage, RecordQuery, Store, StoreError, WriteError, WriteOp,
    WriteResult,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio_postgres::NoTls;

use crate::schema_change::SchemaChange;
use crate::sql::{Statement, internal};

/// A pooled connection (closed rather than pooled when dropped inside a transaction).
pub(crate) type Conn = session::Session;

/// The cluster-wide writer lock (a transaction-level advisory lock key, "plinth" + 1).
pub const WRITE_LOCK: i64 = 0x706c_696e_7468_0001;

/// How often each node checks the database for changes it was not notified of.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why backups and restores answer no on PostgreSQL.
const BACKUPS_ELSEWHERE: &str = "this server runs on PostgreSQL: back the database up with PostgreSQL's own tools (pg_dump, base backups); Plinth's backup files hold SQLite databases only";

/// How long past a write's deadline the client waits for the server's own cancellation.
const GRACE: Duration = Duration::from_millis(200);

/// The channel `NOTIFY` wakes the nodes on.
pub(crate) const CHANNEL: &str = "plinth";

/// PocketBase's default `--queryTimeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default change-log byte budget (as on SQLite).
pub const DEFAULT_CHANGE_LOG_MAX_BYTES: u64 = 64 << 20;

/// How to connect.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections in the pool (reads run in parallel on them; writes take one each while
    /// they wait for the writer lock).
    pub pool_size: usize,
    /// How long one read, or one record write, may take, waiting for a connection and the
    /// writer lock included; `None` for no bound.
    pub query_timeout: Option<Duration>,
    /// The change log's byte budget: each prune also drops the oldest entries (that every
    /// reader of this node has passed) beyond the newest ones that fit in it.
    pub change_log_max_bytes: u64,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            query_timeout: Some(DEFAULT_QUERY_TIMEOUT),
            change_log_max_bytes: DEFAULT_CHANGE_LOG_MAX_BYTES,
        }
    }
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    #[error("invalid PostgreSQL connection URL: {0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("cannot migrate the database: {0}")]
    Migrate(StoreError),
}

/// The PostgreSQL store. Cheap to share as `Arc<PgStore>` / `Arc<dyn Store>`.
pub struct PgStore {
    pool: Pool,
    schema: Arc<SchemaCell>,
    /// The newest committed change-log sequence this node knows of.
    changes: Arc<watch::Sender<u64>>,
    /// The schema version this node's snapshot reflects.
    schema_version: Arc<AtomicU64>,
    /// The newest params version this node has seen.
    params_version: Arc<AtomicU64>,
    /// The newest relayed message's id this node was woken for.
    relays: Arc<watch::Sender<i64>>,
    /// This process's name among the nodes reading the change log (`_readers`).
    node: String,
    closed: Arc<AtomicBool>,
    query_timeout: Option<Duration>,
    /// The change log's byte budget, and its prunes between the fan-out's.
    byte_prune: Arc<changelog::BytePrune>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// Runs `$body` (which borrows `$conn`) until `$deadline`; past it the connection is closed,
/// so the server stops and rolls back whatever it was doing, and the call is `TimedOut`.
macro_rules! timed {
    // On a connection of `$pool` (a task that has no store to ask).
    (pool $pool:expr, $deadline:expr, |$conn:ident| $body:expr) => {{
        let deadline: Option<Instant> = $deadline;
        let $conn = connect(&$pool, deadline).await?;
        timed!(@run $conn, deadline, $body)
    }};
    (@run $conn:ident, $deadline:ident, $body:expr) => {
        match $deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), $body).await {
                Ok(result) => result,
                Err(_) => {
                    $conn.discard();
                    Err(StoreError::TimedOut)
                }
            },
            None => $body.await,
        }
    };
    ($store:expr, $deadline:expr, |$conn:ident| $body:expr) => {{
        let deadline: Option<Instant> = $deadline;
        let $conn = $store.connection(deadline).await?;
        timed!(@run $conn, deadline, $body)
    }};
}

/// A connection from `pool`, waiting for one until `deadline`.
async fn connect(pool: &Pool, deadline: Option<Instant>) -> Result<Conn, StoreError> {
    let get = pool.get();
    let got = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), get)
            .await
            .map_err(|_| StoreError::TimedOut)?,
        None => get.await,
    };
    got.map(Conn::new)
        .map_err(|e| StoreError::Internal(format!("no database connection: {e}")))
}

/// The published schema snapshot and the schema version it is of.
///
/// Several tasks publish schemas: this node's own schema changes, and the reloads after
/// another node's (the listener, the poll, a write that finds the database ahead). A reload
/// can finish after a newer schema was published (it read the database before that change
/// committed), so a schema only replaces an older one: without the version check, a reload
/// finishing late put the older schema back, and the node missed a collection it had just
/// created until the next schema change (seen once in CI's compat run on PostgreSQL).
pub(crate) struct SchemaCell(RwLock<(u64, Arc<Schema>)>);

impl SchemaCell {
    pub(crate) fn new(version: u64, schema: Arc<Schema>) -> Self {
        SchemaCell(RwLock::new((version, schema)))
    }

    pub(crate) fn load(&self) -> Arc<Schema> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner).1)
    }

    /// Publishes `schema`, read at `version` or later, unless a schema of a newer version is
    /// published already; answers whether it was.
    pub(crate) fn store(&self, version: u64, schema: Arc<Schema>) -> bool {
        let mut cell = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if version < cell.0 {
            return false;
        }
        *cell = (version, schema);
        true
    }
}

/// What a node shares with its background tasks and transactions to publish commits.
#[derive(Clone)]
pub(crate) struct Publish {
    pub(crate) pool: Pool,
    pub(crate) schema: Arc<SchemaCell>,
    pub(crate) changes: Arc<watch::Sender<u64>>,
    pub(crate) schema_version: Arc<AtomicU64>,
    pub(crate) params_version: Arc<AtomicU64>,
    pub(crate) relays: Arc<watch::Sender<i64>>,
}

impl Publish {
    /// Reads the database's head and brings this node up to it: a newer schema is loaded, a
    /// newer change-log sequence announced.
    pub(crate) async fn refresh(&self, conn: &Conn) -> Result<(), StoreError> {
        let (seq, version, params) = changelog::head_with_params(conn).await?;
        self.params_version.fetch_max(params, Ordering::AcqRel);
        if version > self.schema_version.load(Ordering::Acquire) {
            let schema = system::load_schema(conn).await?;
            self.publish_schema(version, Arc::new(schema));
        }
        self.changes.send_if_modified(|current| {
            let newer = seq > *current;
            if newer {
                *current = seq;
            }
            newer
        });
        Ok(())
    }

    /// Reads the newest relayed message's id and wakes the relay waiters when it is new.
    pub(crate) async fn look_for_relays(&self, conn: &Conn) {
        match system::last_relay(conn).await {
            Ok(id) => {
                self.relays.send_if_modified(|newest| {
                    let newer = id > *newest;
                    *newest = (*newest).max(id);
                    newer
                });
            }
            Err(error) => tracing::debug!(%error, "cannot read the newest relay"),
        }
    }

    /// Publishes `schema`, of `version` (see [`SchemaCell::store`]): after this node committed
    /// a schema change, at once; after another node's, once loaded.
    pub(crate) fn publish_schema(&self, version: u64, schema: Arc<Schema>) {
        // Cached statements may name columns that are gone.
        self.pool.manager().statement_caches.clear();
        if self.schema.store(version, schema) {
            self.schema_version.fetch_max(version, Ordering::AcqRel);
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), applies pending
    /// schema steps (a new database gets the system collections) and starts the listener.
    pub async fn open(url: &str, options: PgOptions) -> Result<Arc<PgStore>, StoreOpenError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreOpenError::Url(e.to_string()))?;
        config.application_name("plinth");
        // Notices (`… already exists, skipping`) are not worth a log line. JIT is off: rule
        // predicates are long expressions (the rules crate writes SQLite's value rules out in
        // SQL) whose estimated cost crosses `jit_above_cost` while they run in microseconds,
        // and compiling them took hundreds of milliseconds per statement.
        let mut session = String::from("-c client_min_messages=warning -c jit=off");
        if let Some(timeout) = options.query_timeout {
            session.push_str(&format!(
                " -c statement_timeout={ms} -c lock_timeout={ms}",
                ms = timeout.as_millis()
            ));
        }
        config.options(session);
        config.connect_timeout(Duration::from_secs(10));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .build()
            .map_err(|e| StoreOpenError::Connect(e.to_string()))?;
        let conn = pool
            .get()
            .await
            .map(Conn::new)
            .map_err(|e| StoreOpenError::Connect(e.to_string()))?;
        system::migrate(&conn)
            .await
            .map_err(StoreOpenError::Migrate)?;
        let schema = system::load_schema(&conn)
            .await
            .map_err(StoreOpenError::Migrate)?;
        let (seq, version, params) = changelog::head_with_params(&conn)
            .await
            .map_err(StoreOpenError::Migrate)?;
        drop(conn);
        let publish = Publish {
            pool: pool.clone(),
            schema: Arc::new(SchemaCell::new(version, Arc::new(schema))),
            changes: Arc::new(watch::Sender::new(seq)),
            schema_version: Arc::new(AtomicU64::new(version)),
            params_version: Arc::new(AtomicU64::new(params)),
            relays: Arc::new(watch::Sender::new(0)),
        };
        let closed = Arc::new(AtomicBool::new(false));
        let background = vec![
            tokio::spawn(listen(config, publish.clone(), Arc::clone(&closed))),
            tokio::spawn(poll(publish.clone(), Arc::clone(&closed))),
        ];
        Ok(Arc::new(PgStore {
            pool,
            schema: publish.schema,
            changes: publish.changes,
            schema_version: publish.schema_version,
            params_version: publish.params_version,
            relays: publish.relays,
            node: domain::ids::random_alnum(20),
            closed,
            query_timeout: options.query_timeout,
            byte_prune: Arc::new(changelog::BytePrune::new(options.change_log_max_bytes, seq)),
            background,
        }))
    }

    fn publish(&self) -> Publish {
        Publish {
            pool: self.pool.clone(),
            schema: Arc::clone(&self.schema),
            changes: Arc::clone(&self.changes),
            schema_version: Arc::clone(&self.schema_version),
            params_version: Arc::clone(&self.params_version),
            relays: Arc::clone(&self.relays),
        }
    }

    /// A read's deadline, counted from now.
    fn query_deadline(&self) -> Option<Instant> {
        self.query_timeout.map(|timeout| Instant::now() + timeout)
    }

    /// A pooled connection, waited for until `deadline`.
    async fn connection(&self, deadline: Option<Instant>) -> Result<Conn, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        connect(&self.pool, deadline).await
    }

    /// Runs a schema change in a write transaction and publishes the resulting schema once it
    /// committed.
    async fn change_schema(&self, change: SchemaEdit) -> Result<Arc<Schema>, StoreError> {
        let conn = self.connection(None).await?;
        begin_write(&conn, None).await?;
        let result = async {
            // The schema as of the lock: another node may have changed it since this one
            // last looked.
            let current = Arc::new(system::load_schema(&conn).await?);
            let mut schema_change = SchemaChange::new(&conn, &current);
            change.apply(&mut schema_change).await?;
            let schema = Arc::new(schema_change.finish().await?);
            let version = changelog::bump_schema(&conn).await?;
            Ok::<_, StoreError>((version, schema))
        }
        .await;
        let (version, schema) = finish_write(&conn, result).await?;
        self.publish().publish_schema(version, Arc::clone(&schema));
        Ok(schema)
    }

    /// Inside a write transaction (the writer lock held, so no schema change can commit
    /// before this one does), with `version` the database's schema version: the schema to
    /// write with. When another node changed the schema after this node loaded it (its
    /// notification still on the way), it is loaded and published first. A write whose
    /// collection is no longer the one the request was checked against is refused: its
    /// values were validated for fields that changed, and storing them could drop what the
    /// client sent for a field this node did not know yet.
    async fn schema_current_for(
        &self,
        conn: &Conn,
        version: u64,
        checked: &[Arc<Collection>],
    ) -> Result<Arc<Schema>, WriteError> {
        if version > self.schema_version.load(Ordering::Acquire) {
            let schema = system::load_schema(conn)
                .await
                .map_err(|error| WriteError { index: 0, error })?;
            self.publish().publish_schema(version, Arc::new(schema));
        }
        let schema = self.schema.load();
        for (index, checked) in checked.iter().enumerate() {
            let current = schema.get_by_id(&checked.id);
            let same = current
                .is_some_and(|current| Arc::ptr_eq(current, checked) || **current == **checked);
            if !same {
                return Err(WriteError {
                    index,
                    error: StoreError::Schema(format!(
                        "collection {:?} changed while the request was in flight",
                        checked.name
                    )),
                });
            }
        }
        Ok(schema)
    }

    /// Runs a record write; it must finish before `deadline` (when given) and within the query
    /// timeout, or it rolls back.
    async fn write_until(
        &self,
        ops: Vec<WriteOp>,
        deadline: Option<Instant>,
    ) -> Result<Vec<WriteResult>, WriteError> {
        let deadline = match (deadline, self.query_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let at = |error| WriteError { index: 0, error };
        let past = |deadline: Option<Instant>| deadline.is_some_and(|d| Instant::now() >= d);
        if past(deadline) {
            return Err(at(StoreError::TimedOut));
        }
        let conn = self.connection(deadline).await.map_err(at)?;
        let checked: Vec<Arc<Collection>> = ops
            .iter()
            .map(|op| match op {
                WriteOp::Create { collection, .. }
                | WriteOp::Update { collection, .. }
                | WriteOp::Delete { collection, .. } => Arc::clone(collection),
            })
            .collect();
        let work = async {
            let version = begin_write_reading_schema(&conn, deadline)
                .await
                .map_err(at)?;
            let schema = match self.schema_current_for(&conn, version, &checked).await {
                Ok(schema) => schema,
                Err(error) => {
                    conn.end("ROLLBACK").await.map_err(|e| at(internal(e)))?;
                    return Err(error);
                }
            };
            let result = records::run_ops(&conn, &schema, ops).await;
            let last = result.as_ref().map_or(0, Vec::len).saturating_sub(1);
            match result {
                Ok(_) if past(deadline) => {
                    conn.end("ROLLBACK").await.map_err(|e| at(internal(e)))?;
                    Err(WriteError {
                        index: last,
                        error: StoreError::TimedOut,
                    })
                }
                Ok(results) => {
                    conn.end(&format!("NOTIFY {CHANNEL}, 'c'; COMMIT"))
                        .await
                        .map_err(|e| WriteError {
                            index: last,
                            error: internal(e),
                        })?;
                    Ok(results)
                }
                Err(error) => {
                    conn.end("ROLLBACK").await.map_err(|e| at(internal(e)))?;
                    Err(error)
                }
            }
        };
        // The server cancels a statement at the deadline itself (so a guard it cancels hides
        // its row); this bound, a little later, catches the rest.
        let result = match deadline {
            Some(deadline) => {
                match tokio::time::timeout_at((deadline + GRACE).into(), work).await {
                    Ok(result) => result,
                    Err(_) => {
                        // Closing the connection rolls the transaction back on the server.
                        conn.discard();
                        return Err(at(StoreError::TimedOut));
                    }
                }
            }
            None => work.await,
        };
        let result = match result {
            // A statement the server cancelled at the timeout: the whole write rolled back.
            Err(WriteError {
                index,
                error: StoreError::TimedOut,
            }) => Err(WriteError {
                index,
                error: StoreError::TimedOut,
            }),
            other => other,
        };
        if result.is_ok() {
            if self.byte_prune.written(conn.change_bytes()) {
                self.prune_to_budget();
            }
            if let Err(error) = self.publish().refresh(&conn).await {
                tracing::warn!(%error, "cannot read the change-log head after a write");
            }
        }
        result
    }

    /// Prunes the change log to its byte budget on a task of its own (see
    /// [`changelog::BytePrune`]), up to what every node has read.
    fn prune_to_budget(&self) {
        let (pool, node, prune) = (
            self.pool.clone(),
            self.node.clone(),
            Arc::clone(&self.byte_prune),
        );
        let deadline = self.query_deadline();
        tokio::spawn(async move {
            let pruned: Result<u64, StoreError> = async {
                timed!(pool pool, deadline, |conn| changelog::prune_for_cluster(
                    &conn,
                    &node,
                    prune.read(),
                    None,
                    prune.max_bytes()
                ))
            }
            .await;
            if let Err(error) = pruned {
                tracing::warn!(%error, "cannot prune the change log to its byte budget");
            }
            prune.done();
        });
    }
}

/// One schema change, as the port's methods name them.
pub(crate) enum SchemaEdit {
    Create(Collection),
    Update(Collection),
    Delete(String),
    Import(Vec<Collection>, bool),
}

impl SchemaEdit {
    pub(crate) async fn apply(self, change: &mut SchemaChange<'_>) -> Result<(), StoreError> {
        match self {
            SchemaEdit::Create(collection) => change.create(collection).await,
            SchemaEdit::Update(collection) => change.update(collection).await,
            SchemaEdit::Delete(id) => change.delete(&id).await,
            SchemaEdit::Import(collections, delete_missing) => {
                change.import(collections, delete_missing).await
            }
        }
    }
}

/// The batch that starts a write transaction: the statement and lock timeouts left until
/// `deadline` (none for schema changes, which may build indexes over large tables), then the
/// writer lock.
fn begin_write_sql(deadline: Option<Instant>) -> String {
    let timeout_ms = match deadline {
        Some(deadline) => deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .max(1),
        None => 0,
    };
    format!(
        "BEGIN; SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL lock_timeout = {timeout_ms}; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
    )
}

/// Starts a write transaction (see [`begin_write_sql`]).
pub(crate) async fn begin_write(conn: &Conn, deadline: Option<Instant>) -> Result<(), StoreError> {
    conn.begin(&begin_write_sql(deadline))
        .await
        .map_err(internal)
}

/// [`begin_write`], and the database's schema version as of the lock, in the same round trip.
pub(crate) async fn begin_write_reading_schema(
    conn: &Conn,
    deadline: Option<Instant>,
) -> Result<u64, StoreError> {
    let sql = format!(
        "{}; SELECT schema FROM _changes_head WHERE id = 1",
        begin_write_sql(deadline)
    );
    let version = conn.begin_reading(&sql).await.map_err(internal)?;
    Ok(version.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Commits (with a wake-up for every node) after `result` succeeded, rolls back otherwise.
async fn finish_write<T>(conn: &Conn, result: Result<T, StoreError>) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            conn.end(&format!("NOTIFY {CHANNEL}, 's'; COMMIT"))
                .await
                .map_err(internal)?;
            Ok(value)
        }
        Err(error) => {
            conn.end("ROLLBACK").await.map_err(internal)?;
            Err(error)
        }
    }
}

fn closed() -> StoreError {
    StoreError::Internal("the database store is closed".into())
}

/// Listens for `NOTIFY plinth` on a connection of its own and refreshes the node on each;
/// reconnects after a pause when the connection drops.
async fn listen(config: tokio_postgres::Config, publish: Publish, closed: Arc<AtomicBool>) {
    use futures_util::StreamExt;
    while !closed.load(Ordering::Acquire) {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (sender, mut notified) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(note)) => {
                                if sender.send(note.payload() == "r").is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    while let Some(first) = notified.recv().await {
                        let (mut relay, mut other) = (first, !first);
                        while let Ok(next) = notified.try_recv() {
                            relay |= next;
                            other |= !next;
                        }
                        if let Ok(conn) = publish.pool.get().await {
                            let conn = Conn::new(conn);
                            if other && let Err(error) = publish.refresh(&conn).await {
                                tracing::warn!(%error, "cannot refresh after a notification");
                            }
                            if relay {
                                publish.look_for_relays(&conn).await;
                            }
                        }
                        if closed.load(Ordering::Acquire) {
                            break;
                        }
                    }
                }
                driver.abort();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot open the PostgreSQL listener connection");
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Checks the database's head every [`POLL_INTERVAL`], for wake-ups a listener missed.
async fn poll(publish: Publish, closed: Arc<AtomicBool>) {
    while !closed.load(Ordering::Acquire) {
        tokio::time::sleep(POLL_INTERVAL).await;
        if let Ok(conn) = publish.pool.get().await {
            let conn = Conn::new(conn);
            if let Err(error) = publish.refresh(&conn).await {
                tracing::debug!(%error, "cannot poll the change-log head");
            }
            publish.look_for_relays(&conn).await;
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn schema(&self) -> Arc<Schema> {
        self.schema.load()
    }

    fn field_holds_any(
        &self,
        collection: &Collection,
        field: &str,
        values: &[String],
    ) -> SqlFragment {
        if collection.field(field).is_some_and(Field::is_multiple) {
            domain::sql::list_holds_any(Dialect::Postgres, &collection.name, field, values)
        } else {
            domain::sql::column_in(Dialect::Postgres, &collection.name, field, values)
        }
    }

    async fn create_collection(&self, collection: Collection) -> Result<Arc<Schema>, StoreError> {
        self.change_schema(SchemaEdit::Create(collection)).await
    }

    async fn update_collection(&self, collection: Collection) -> Result<Arc<Schema>, StoreError> {
        self.change_schema(SchemaEdit::Update(collection)).await
    }

    async fn delete_collection(&self, id: &str) -> Result<Arc<Schema>, StoreError> {
        self.change_schema(SchemaEdit::Delete(id.to_owned())).await
    }

    async fn truncate_collection(&self, id: &str) -> Result<(), StoreError> {
        let schema = self.schema.load();
        let collection = schema.get_by_id(id).ok_or(StoreError::NotFound)?;
        let conn = self.connection(None).await?;
        begin_write(&conn, None).await?;
        let result = records::truncate(&conn, &schema, collection).await;
        let committed = match result {
            Ok(()) => conn
                .end(&format!("NOTIFY {CHANNEL}, 'c'; COMMIT"))
                .await
                .map_err(internal),
            Err(error) => {
                conn.end("ROLLBACK").await.map_err(internal)?;
                Err(error)
            }
        };
        committed?;
        self.publish().refresh(&conn).await
    }

    async fn import_collections(
        &self,
        collections: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Arc<Schema>, StoreError> {
        self.change_schema(SchemaEdit::Import(collections, delete_missing))
            .await
    }

    async fn infer_view_fields(&self, query: &str) -> Result<Vec<Field>, StoreError> {
        let schema = self.schema.load();
        let collections: Vec<Collection> = schema.all().iter().map(|c| (**c).clone()).collect();
        timed!(self, self.query_deadline(), |conn| async {
            view::ViewPlan::new(&conn, &collections, query)
                .await
                .map(|plan| plan.fields)
        })
    }

    async fn sample_view(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<(Vec<Field>, Vec<Record>), StoreError> {
        let schema = self.schema.load();
        let collections: Vec<Collection> = schema.all().iter().map(|c| (**c).clone()).collect();
        timed!(self, self.query_deadline(), |conn| async {
            let plan = view::ViewPlan::new(&conn, &collections, query).await?;
            let rows = sample(&conn, &plan, limit).await;
            Ok((plan.fields, rows?))
        })
    }

    async fn list_records(&self, query: RecordQuery) -> Result<RecordPage, StoreError> {
        timed!(self, self.query_deadline(), |conn| records::list(
            &conn, &query, false
        ))
    }

    async fn get_record(
        &self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<Option<Record>, StoreError> {
        let has_filters = !filters.is_empty();
        let found: Result<Option<Record>, StoreError> = timed!(
            self,
            self.query_deadline(),
            |conn| records::get(&conn, &collection, id, filters)
        );
        match found {
            // Filters not decided in time do not hold.
            Err(StoreError::TimedOut) if has_filters => Ok(None),
            other => other,
        }
    }

    async fn record_satisfies(
        &self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<bool, StoreError> {
        timed!(self, self.query_deadline(), |conn| records::satisfies(
            &conn,
            &collection,
            id,
            filters
        ))
    }

    async fn matches_unsaved(
        &self,
        collection: Arc<Collection>,
        data: RecordData,
        predicate: SqlFragment,
    ) -> Result<bool, StoreError> {
        let found: Result<bool, StoreError> =
            timed!(self, self.query_deadline(), |conn| matches_unsaved(
                &conn,
                &collection,
                &data,
                &predicate
            ));
        match found {
            Err(StoreError::TimedOut) => Ok(false),
            other => other,
        }
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, WriteError> {
        self.write_until(ops, None).await
    }

    async fn write_before(
        &self,
        ops: Vec<WriteOp>,
        deadline: Instant,
    ) -> Result<Vec<WriteResult>, WriteError> {
        self.write_until(ops, Some(deadline)).await
    }

    async fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        // The caller has read everything up to `after`; the byte budget may prune it.
        self.byte_prune.read_up_to(after);
        let schema = self.schema.load();
        timed!(self, self.query_deadline(), |conn| changelog::after(
            &conn, &schema, after, limit
        ))
    }

    fn skipped_changes(&self, seq: u64) {
        self.byte_prune.read_up_to(seq);
    }

    async fn last_change_seq(&self) -> Result<u64, StoreError> {
        Ok(*self.changes.borrow())
    }

    async fn wait_for_changes(&self, after: u64) -> Result<(), StoreError> {
        let mut receiver = self.changes.subscribe();
        receiver
            .wait_for(|seq| *seq > after || self.closed.load(Ordering::Acquire))
            .await
            .map_err(|_| closed())?;
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        Ok(())
    }

    async fn prune_changes(
        &self,
        up_to: u64,
        retention: ChangeRetention,
    ) -> Result<u64, StoreError> {
        self.byte_prune.read_up_to(up_to);
        let max_bytes = self.byte_prune.max_bytes();
        timed!(self, self.query_deadline(), |conn| {
            changelog::prune_for_cluster(&conn, &self.node, up_to, Some(retention), max_bytes)
        })
    }

    async fn get_param(&self, key: &str) -> Result<Option<Value>, StoreError> {
        timed!(self, self.query_deadline(), |conn| system::get_param(
            &conn, key
        ))
    }

    async fn set_param(&self, key: &str, value: Value) -> Result<(), StoreError> {
        let text = value.to_string();
        self.set_param_text(key, &text).await
    }

    async fn set_param_text(&self, key: &str, text: &str) -> Result<(), StoreError> {
        let publish = self.publish();
        timed!(self, self.query_deadline(), |conn| async {
            system::set_param_text(&conn, key, text).await?;
            // Wake the other nodes, and know of this write here at once.
            conn.batch_execute(&format!("NOTIFY {CHANNEL}, 'p'"))
                .await
                .map_err(internal)?;
            publish.refresh(&conn).await
        })
    }

    /// The connection pool as one queue: callers waiting for a connection, connections in use,
    /// and the pool's size.
    fn stats(&self) -> domain::store::StoreStats {
        let status = self.pool.status();
        domain::store::StoreStats {
            queues: vec![domain::store::QueueStats {
                name: "pool",
                queued: status.waiting as u64,
                busy: status.size.saturating_sub(status.available) as u64,
                threads: status.max_size as u64,
            }],
        }
    }

    fn params_version(&self) -> u64 {
        self.params_version.load(Ordering::Acquire)
    }

    async fn begin(&self, deadline: Option<Instant>) -> Result<Box<dyn Transaction>, StoreError> {
        let deadline = deadline.or_else(|| self.query_deadline());
        let conn = self.connection(deadline).await?;
        tx::PgTransaction::begin(conn, self.publish(), deadline).await
    }

    async fn applied_migrations(&self) -> Result<Vec<(String, i64)>, StoreError> {
        timed!(self, self.query_deadline(), |conn| {
            system::applied_migrations(&conn)
        })
    }

    async fn record_migration(&self, file: &str, applied_us: i64) -> Result<(), StoreError> {
        timed!(
            self,
            self.query_deadline(),
            |conn| system::record_migration(&conn, file, applied_us)
        )
    }

    async fn forget_migration(&self, file: &str) -> Result<bool, StoreError> {
        timed!(
            self,
            self.query_deadline(),
            |conn| system::forget_migration(&conn, file)
        )
    }

    async fn run_sql(
        &self,
        sql: &str,
        limits: domain::store::SqlLimits,
    ) -> Result<domain::store::SqlOutcome, StoreError> {
        let deadline = self.query_deadline();
        let conn = self.connection(deadline).await?;
        console::run(conn, sql, limits, deadline).await
    }

    /// Not here: a PostgreSQL database is backed up with PostgreSQL's tools, which also see
    /// what other nodes write.
    async fn snapshot(&self, _dir: &std::path::Path) -> Result<Vec<String>, StoreError> {
        Err(StoreError::Schema(BACKUPS_ELSEWHERE.into()))
    }

    async fn verify_snapshot(&self, _dir: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Schema(BACKUPS_ELSEWHERE.into()))
    }

    async fn claim_once(&self, key: &str, slot: i64) -> Result<bool, StoreError> {
        timed!(self, self.query_deadline(), |conn| system::claim_once(
            &conn, key, slot
        ))
    }

    fn shared(&self) -> bool {
        true
    }

    async fn catch_up(&self) -> Result<(), StoreError> {
        let publish = self.publish();
        timed!(self, self.query_deadline(), |conn| publish.refresh(&conn))
    }

    async fn post_relay(
        &self,
        client_id: &str,
        topic: &str,
        data: &str,
        ttl: Duration,
    ) -> Result<i64, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        timed!(self, self.query_deadline(), |conn| system::post_relay(
            &conn, client_id, topic, data, ttl_ms
        ))
    }

    async fn relays_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<domain::Relay>, StoreError> {
        timed!(self, self.query_deadline(), |conn| system::relays_after(
            &conn, after, limit
        ))
    }

    async fn take_relay(&self, id: i64) -> Result<bool, StoreError> {
        timed!(self, self.query_deadline(), |conn| system::take_relay(
            &conn, id
        ))
    }

    async fn relay_taken(&self, id: i64) -> Result<bool, StoreError> {
        timed!(self, self.query_deadline(), |conn| system::relay_taken(
            &conn, id
        ))
    }

    async fn answer_relay(&self, id: i64, answer: &str) -> Result<(), StoreError> {
        timed!(self, self.query_deadline(), |conn| system::answer_relay(
            &conn, id, answer
        ))
    }

    async fn relay_answer(&self, id: i64) -> Result<Option<String>, StoreError> {
        timed!(self, self.query_deadline(), |conn| system::relay_answer(
            &conn, id
        ))
    }

    async fn forget_relay(&self, id: i64) -> Result<(), StoreError> {
        timed!(self, self.query_deadline(), |conn| system::forget_relay(
            &conn, id
        ))
    }

    async fn wait_for_relays(&self, after: i64) -> Result<(), StoreError> {
        let mut newest = self.relays.subscribe();
        newest
            .wait_for(|id| *id > after)
            .await
            .map(|_| ())
            .map_err(|_| closed())
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        let conn = self.connection(None).await?;
        conn.batch_execute("ANALYZE").await.map_err(internal)
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        for task in &self.background {
            task.abort();
        }
        self.changes.send_modify(|_| {});
        self.pool.close();
        Ok(())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

/// Whether `data`, as a row of `collection` that is not stored, satisfies `predicate`: the
/// row is a one-row subquery named like the table, so the predicate reads it unchanged.
pub(crate) async fn matches_unsaved(
    conn: &Conn,
    collection: &Collection,
    data: &RecordData,
    predicate: &SqlFragment,
) -> Result<bool, StoreError> {
    if collection.fields.is_empty() {
        return Err(StoreError::Schema(format!(
            "collection {:?} has no fields",
            collection.name
        )));
    }
    let mut statement = Statement::new("SELECT 1 FROM (SELECT ");
    for (i, field) in collection.fields.iter().enumerate() {
        if i > 0 {
            statement.push(", ");
        }
        // Typed like the table's column, so the predicate compares as it would there.
        statement
            .push("CAST(")
            .bind(records::stored(field, data.get(&field.name)))
            .push(&format!(
                " AS {}){} AS {}",
                value_type(field),
                if value_type(field) == "text" {
                    " COLLATE \"C\""
                } else {
                    ""
                },
                quote_ident(&field.name)
            ));
    }
    statement
        .push(&format!(") AS {} WHERE (", quote_ident(&collection.name)))
        .push_fragment(predicate)
        .push(") LIMIT 1");
    let rows = records::query(conn, &statement, false)
        .await
        .map_err(internal)?;
    Ok(!rows.is_empty())
}

/// The column type of a field's values (as `ddl::column_type`, without constraints).
fn value_type(field: &Field) -> &'static str {
    match &field.kind {
        FieldKind::Number(_) => "double precision",
        FieldKind::Bool(_) => "boolean",
        FieldKind::Json(_) | FieldKind::GeoPoint(_) => "jsonb",
        _ if field.is_multiple() => "jsonb",
        _ => "text",
    }
}

/// The first `limit` rows of an unsaved view's query, read in a read-only transaction.
async fn sample(
    conn: &Conn,
    plan: &view::ViewPlan,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    let view = Collection {
        id: String::new(),
        list_rule: None,
        view_rule: None,
        create_rule: None,
        update_rule: None,
        delete_rule: None,
        name: "_sample".to_owned(),
        kind: domain::CollectionType::View,
        fields: plan.fields.clone(),
        indexes: Vec::new(),
        created: String::new(),
        updated: String::new(),
        system: false,
        view_query: None,
        auth: None,
    };
    let mut statement = Statement::new(format!(
        "SELECT {} FROM ({}\n) AS {} LIMIT ",
        records::select_list(&view),
        plan.query(),
        quote_ident(&view.name)
    ));
    statement.bind(i64::try_from(limit).unwrap_or(i64::MAX));
    conn.begin("BEGIN READ ONLY").await.map_err(internal)?;
    let rows = records::query(conn, &statement, false).await;
    let _ = conn.end("ROLLBACK").await;
    let rows = rows.map_err(|error| {
        if sql::is_cancel(&error) {
            StoreError::TimedOut
        } else {
            StoreError::Schema(format!("invalid view query: {}", sql::describe(&error)))
        }
    })?;
    rows.iter()
        .map(|row| records::read_record(row, &view))
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)
}

#[cfg(test)]
mod schema_cell_tests {
    use super::*;

    fn schema_of(names: &[&str]) -> Arc<Schema> {
        Arc::new(Schema::new(
            names
                .iter()
                .map(|name| {
                    domain::Collection::scaffold(domain::collection::CollectionType::Base, name)
                })
                .collect(),
        ))
    }

    /// A reload that read the database before this node's own schema change committed, and
    /// finishes after it was published, must not put the older schema back.
    #[test]
    fn an_older_schema_never_replaces_a_newer_one() {
        let cell = SchemaCell::new(3, schema_of(&["a"]));
        assert!(
            cell.store(5, schema_of(&["a", "b"])),
            "this node's change, version 5"
        );
        assert!(
            !cell.store(4, schema_of(&["a"])),
            "a late reload of version 4"
        );
        assert!(cell.load().get("b").is_some(), "the newer schema stays");
        assert!(
            cell.store(5, schema_of(&["a", "b", "c"])),
            "the same version again"
        );
        assert!(cell.store(6, schema_of(&["c"])));
        assert!(cell.load().get("a").is_none());
    }
}
