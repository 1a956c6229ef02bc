//! Plinth's [`Store`] on embedded SQLite (`data_dir/data.db`).
//!
//! One writer thread owns the only write connection and reader threads own read-only ones, in
//! a query lane for client-controlled reads and a point lane for key lookups (`engine`); every
//! async method ships a closure to one of them, bounded by the query timeout. Collections live as
//! JSON in `_collections` and as one table (or view) each (`ddl`, `schema_change`, `view`);
//! records move between canonical JSON and columns in `records`. The schema snapshot is
//! replaced only after a schema change commits. Record writes append to the change log
//! (`changelog`) in their transaction; the newest committed sequence is announced after commit.

mod auth_cache;
mod backup;
mod changelog;
mod checkpoint;
mod console;
mod count_cache;
mod counts;
mod ddl;
mod engine;
mod group;
pub mod logs;
pub mod pocketbase;
mod records;
mod row_marks;
mod schema_change;
mod sql_cache;
mod system;
mod text_params;
mod tx;
mod unsaved;
mod view;
mod wal_file;
mod wal_index;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tx_tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::collection::{Collection, Schema};
use domain::collection_validate::is_unique_on;
use domain::field::Field;
use domain::index::{Collation, IndexDef};
use domain::record::{Record, RecordData};
use domain::sql::{Dialect, SqlFragment};
use domain::store::Transaction;
use domain::{
    Change, ChangeRetention, ReadMark, RecordPage, RecordQuery, Store, StoreError, WriteError,
    WriteOp, WriteResult,
};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use serde_json::Value;
use tokio::sync::watch;

pub use crate::backup::snapshot_file;
use crate::engine::{Engine, Lane, Refused};
use crate::schema_change::SchemaChange;

/// How to open the database.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Reader threads (and connections) of the query lane; at least one is started.
    pub readers: usize,
    /// Reader threads of the point lane (reads by key no client can make slow); at least one.
    pub point_readers: usize,
    /// `synchronous=FULL` (an fsync per commit) instead of `NORMAL`.
    pub synchronous_full: bool,
    /// How long one read, or one record write (its rule guards included), may take, queueing
    /// included; `None` for no bound. PocketBase's `--queryTimeout` (30 s by default).
    pub query_timeout: Option<Duration>,
    /// The change log's byte budget: once its record snapshots take more, the oldest entries
    /// every reader has passed are pruned.
    pub change_log_max_bytes: u64,
    /// WAL frames (pages) from which a checkpoint is due ([`DEFAULT_WAL_CHECKPOINT_FRAMES`]);
    /// past twice as many the writer checkpoints itself. See `checkpoint.rs`.
    pub wal_checkpoint_frames: u32,
}

/// Frames of WAL from which a checkpoint is due by default: 16,000 (64 MiB with 4 KiB pages).
pub const DEFAULT_WAL_CHECKPOINT_FRAMES: u32 = checkpoint::DEFAULT_DUE_FRAMES;

/// PocketBase's default `--queryTimeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The change log's default byte budget (64 MiB).
pub const DEFAULT_CHANGE_LOG_MAX_BYTES: u64 = 64 << 20;

impl SqliteOptions {
    /// Query-lane readers for this machine: one per available core, at least two (so one slow
    /// query never holds every reader) and at most 32 (each holds a connection and its cache).
    pub fn default_readers() -> usize {
        thread::available_parallelism()
            .map_or(2, std::num::NonZeroUsize::get)
            .clamp(2, 32)
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            readers: SqliteOptions::default_readers(),
            point_readers: 2,
            synchronous_full: false,
            query_timeout: Some(DEFAULT_QUERY_TIMEOUT),
            change_log_max_bytes: DEFAULT_CHANGE_LOG_MAX_BYTES,
            wal_checkpoint_frames: DEFAULT_WAL_CHECKPOINT_FRAMES,
        }
    }
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot open the database file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot migrate the database: {0}")]
    Migrate(StoreError),
    #[error("cannot start the database threads: {0}")]
    Threads(std::io::Error),
}

/// The SQLite store. Cheap to share as `Arc<SqliteStore>` / `Arc<dyn Store>`.
pub struct SqliteStore {
    engine: Engine,
    schema: Arc<SchemaCell>,
    /// The newest committed change-log sequence; the writer bumps it after each commit.
    changes: Arc<watch::Sender<u64>>,
    /// Set by `close`: change waiters then fail instead of waiting for a writer that is gone.
    closed: Arc<AtomicBool>,
    query_timeout: Option<Duration>,
    change_log_max_bytes: u64,
    /// The newest sequence the change log's reader has read past (the `after` of its reads,
    /// the `up_to` of its prunes): the byte budget only ever prunes at or below it, so no entry
    /// is pruned before it was delivered.
    change_log_read: Arc<AtomicU64>,
    change_log_size: changelog::Size,
    /// The directory holding `data.db` (and the other database files a backup copies).
    data_dir: PathBuf,
    /// Record writes waiting to be committed together (see `group.rs`).
    group: Arc<group::Queue>,
    /// Exact totals kept across writes (see `counts.rs`).
    counts: Arc<counts::Counts>,
    /// Auth records read by id, while unchanged (`auth_cache.rs`).
    auth_cache: Arc<auth_cache::AuthCache>,
}

/// The published schema snapshot; readers clone the `Arc`, the writer swaps it after commit.
struct SchemaCell(RwLock<Arc<Schema>>);

impl SchemaCell {
    fn load(&self) -> Arc<Schema> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn store(&self, schema: Arc<Schema>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = schema;
    }
}

/// Prepared statements kept per connection; record SQL varies with filters and collections.
const STATEMENT_CACHE: usize = 256;

impl SqliteStore {
    /// A record by id under `filters`. An auth record read without filters (a token check's)
    /// comes from the kept auth records while its table is unchanged, and is kept when read.
    async fn record_by_id(
        &self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<Option<Arc<Record>>, StoreError> {
        let keep = filters.is_empty() && collection.is_auth();
        if keep && let Some(record) = self.auth_cache.get(&collection, id) {
            return Ok(Some(record));
        }
        let ticket = keep.then(|| {
            (
                self.auth_cache.ticket(&collection),
                Arc::clone(&self.auth_cache),
            )
        });
        let id = id.to_owned();
        let lane = get_lane(&collection, &filters);
        let read = move |conn: &mut Connection| {
            let found = records::get(conn, &collection, &id, filters).map(|r| r.map(Arc::new));
            if let (Some((ticket, cache)), Ok(Some(record))) = (&ticket, &found) {
                cache.put(*ticket, &collection, record);
            }
            found
        };
        self.read_on(lane, read).await
    }

    /// A read on `lane`; a point read runs on the calling thread when an inline connection is
    /// free (no hop to a reader thread and back).
    async fn read_on<T: Send + 'static>(
        &self,
        lane: Lane,
        read: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if lane == Lane::Point && !self.closed.load(Ordering::Acquire) {
            match self.engine.read_inline(read) {
                Ok(result) => return result,
                Err(read) => return self.read(lane, read).await,
            }
        }
        self.read(lane, read).await
    }

    /// Opens (or creates) `data_dir/data.db`, applies pending migrations (a new database gets
    /// the `_superusers` and `users` collections) and starts the connection threads.
    pub fn open(
        data_dir: &Path,
        options: SqliteOptions,
    ) -> Result<Arc<SqliteStore>, StoreOpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreOpenError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("data.db");
        let open_error = |source| StoreOpenError::Open {
            path: path.clone(),
            source,
        };
        // Opened before any connection, so that it closes after all of them (see `DbFiles`).
        let db_handle = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StoreOpenError::File {
                path: path.clone(),
                source,
            })?;
        let mut writer = wal_file::open_writer(&path).map_err(open_error)?;
        configure(&writer, &options, false).map_err(open_error)?;
        system::migrate(&mut writer).map_err(StoreOpenError::Migrate)?;
        let schema = system::load_schema(&writer).map_err(StoreOpenError::Migrate)?;
        {
            let tx = writer
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(open_error)?;
            counts::install(&tx, &schema).map_err(StoreOpenError::Migrate)?;
            tx.commit().map_err(open_error)?;
        }
        let last_change = changelog::last_seq(&writer).map_err(StoreOpenError::Migrate)?;

        let change_log_size: changelog::Size = Arc::new(AtomicU64::new(
            changelog::stored_size(&writer).map_err(StoreOpenError::Migrate)?,
        ));
        changelog::install_size_hooks(&mut writer, Arc::clone(&change_log_size))
            .map_err(StoreOpenError::Migrate)?;
        // Every row the writer changes, for the auth records kept in memory (`auth_cache.rs`;
        // the WAL hook installed with the checkpoints completes it).
        writer
            .update_hook(Some(
                |_: rusqlite::hooks::Action, _: &str, table: &str, rowid: i64| {
                    auth_cache::note_change(table);
                    row_marks::note_row(table, rowid);
                },
            ))
            .map_err(open_error)?;
        // The WAL index exists once the writer has read the database in WAL mode.
        let db_file: engine::DbFile = Arc::new(engine::DbFiles { db: db_handle });
        let auth_cache = Arc::new(auth_cache::AuthCache::new(wal_index::CommitCounter::open(
            &path,
        )));

        // Every other connection: read-only readers (opened when first needed), and one
        // read-write connection for the WAL checkpoints (see `checkpoint.rs`).
        let checkpointer = open_side(&path, &options, false).map_err(open_error)?;
        let reader_path = path.clone();
        let reader_options = options.clone();
        let open_reader: engine::Opener =
            Arc::new(move || open_side(&reader_path, &reader_options, true));
        let engine = Engine::start(
            writer,
            engine::Readers {
                queries: options.readers,
                points: options.point_readers,
                inline: options.point_readers,
                open: open_reader,
            },
            checkpoint::Checkpointer {
                conn: checkpointer,
                due_frames: options.wal_checkpoint_frames,
            },
            db_file,
            &auth_cache,
        )
        .map_err(StoreOpenError::Threads)?;
        Ok(Arc::new(SqliteStore {
            engine,
            schema: Arc::new(SchemaCell(RwLock::new(Arc::new(schema)))),
            changes: Arc::new(watch::Sender::new(last_change)),
            closed: Arc::new(AtomicBool::new(false)),
            query_timeout: options.query_timeout,
            change_log_max_bytes: options.change_log_max_bytes,
            // Entries committed before this process started were never going to be read.
            change_log_read: Arc::new(AtomicU64::new(last_change)),
            change_log_size,
            data_dir: data_dir.to_owned(),
            group: Arc::default(),
            counts: Arc::default(),
            auth_cache,
        }))
    }

    /// Runs one schema change on the writer in an IMMEDIATE transaction and publishes the
    /// resulting schema once it committed.
    async fn change_schema(
        &self,
        change: impl FnOnce(&mut SchemaChange<'_>) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Arc<Schema>, StoreError> {
        let cell = Arc::clone(&self.schema);
        let counts = Arc::clone(&self.counts);
        self.engine
            .write(move |conn| {
                let current = cell.load();
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(internal)?;
                let mut schema_change = SchemaChange::new(&tx, &current);
                change(&mut schema_change)?;
                let schema = Arc::new(schema_change.finish()?);
                tx.commit().map_err(internal)?;
                counts.clear();
                // Cached statements may name columns that are gone.
                conn.flush_prepared_statement_cache();
                cell.store(Arc::clone(&schema));
                Ok(schema)
            })
            .await
            .map_err(closed)?
    }

    /// A read's deadline, counted from now.
    fn query_deadline(&self) -> Option<Instant> {
        self.query_timeout.map(|timeout| Instant::now() + timeout)
    }

    /// Runs a read on `lane` within the query timeout; a read interrupted at its deadline, or
    /// still queued then, fails with [`StoreError::TimedOut`].
    async fn read<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.engine.read(lane, self.query_deadline(), f).await {
            Ok((Err(_), true)) | Err(Refused::Expired) => Err(StoreError::TimedOut),
            Ok((result, _)) => result,
            Err(Refused::Closed) => Err(closed(Refused::Closed)),
        }
    }

    /// A page read on its lane's thread, with `then` applied there.
    async fn list_then<T: Send + 'static>(
        &self,
        query: RecordQuery,
        then: impl FnOnce(RecordPage) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let lane = list_lane(&query);
        let counts = Arc::clone(&self.counts);
        self.read(lane, move |conn| {
            records::list(conn, &query, &counts).map(then)
        })
        .await
    }

    /// What the change log's byte budget needs on the writer thread after a write.
    fn budget(&self) -> impl Fn(&Connection) + Send + 'static {
        let read_up_to = Arc::clone(&self.change_log_read);
        let size = Arc::clone(&self.change_log_size);
        let max_bytes = self.change_log_max_bytes;
        move |conn| {
            let read_up_to = read_up_to.load(Ordering::Relaxed);
            if let Err(error) = changelog::enforce_budget(conn, read_up_to, max_bytes, &size) {
                tracing::warn!(%error, "cannot prune the change log to its byte budget");
            }
        }
    }
}

/// The lane of a read by primary key. Alone, or with predicates that read only the row itself
/// (a rule such as `owner = @request.auth.id`), it costs one row's evaluation whatever a client
/// sends, so it goes around client-controlled work: this covers the auth-record lookup behind
/// every token and the view, auth and batch rule checks of most rules. A predicate that reads
/// other rows (relation hops, `@collection` joins), or a view collection's own query, can be
/// as slow as a list.
fn get_lane(collection: &Collection, filters: &[SqlFragment]) -> Lane {
    if !collection.is_view() && filters.iter().all(is_row_local) {
        Lane::Point
    } else {
        Lane::Query
    }
}

/// Whether `predicate` reads only the row it is checked against, cheaply. The rule compiler
/// writes every read of other rows (relation hops, back-relations, `@collection` joins, the
/// items of a multi-valued field) as a subquery, so a predicate without `SELECT` has none.
/// `LIKE` (`plinth_like`) is left to the query lane as well: its cost is the text's length
/// times the pattern's, and the pattern may come from the request; it stops at the deadline,
/// but a point reader should not spend that long. Anything else (a quoted identifier
/// that happens to contain one of these words, say) errs towards the query lane.
fn is_row_local(predicate: &SqlFragment) -> bool {
    let sql = predicate.sql.to_ascii_uppercase();
    !sql.contains("SELECT") && !sql.contains("LIKE")
}

/// The lane of a list: the query lane, except for the server's own lookups through a unique
/// index. Those are lists whose filters all read only the row, some of them `column = ?`
/// equalities (as the server builds them) on every column of a unique index (one row at most)
/// or, in a system collection, on all its columns but the last: the server bounds what its
/// bookkeeping keeps per record (a sign-in's origins, pruned to a few per record, read after
/// every password sign-in; one OAuth2 link per provider), so that prefix reaches a handful of
/// rows through the index.
fn list_lane(query: &RecordQuery) -> Lane {
    let collection = &query.collection;
    if collection.is_view() || !query.filters.iter().all(is_row_local) {
        return Lane::Query;
    }
    let equal: Vec<&str> = collection
        .fields
        .iter()
        .map(|field| field.name.as_str())
        .filter(|name| {
            let mut expected = SqlFragment::column(&collection.name, name);
            expected.push_sql(" = ?");
            query
                .filters
                .iter()
                .any(|filter| filter.params.len() == 1 && filter.sql == expected.sql)
        })
        .collect();
    if equal.is_empty() {
        // An index serves a list only through equalities on its columns.
        return Lane::Query;
    }
    let covered = |column: &str| equal.iter().any(|name| name.eq_ignore_ascii_case(column));
    let served = collection
        .indexes
        .iter()
        .filter_map(|sql| IndexDef::parse(sql).ok())
        .filter(|index| index.unique && index.condition.is_none())
        .any(|index| {
            let plain = index
                .columns
                .iter()
                .all(|column| matches!(column.collation, None | Some(Collation::Binary)));
            let needed = if collection.system {
                index.columns.len().saturating_sub(1).max(1)
            } else {
                index.columns.len()
            };
            plain
                && index.columns.len() >= needed
                && index.columns[..needed]
                    .iter()
                    .all(|column| covered(&column.name))
        });
    if served { Lane::Point } else { Lane::Query }
}

/// The filters of an exact lookup of `field` = `value`, and the lane to run it on. A
/// single-column unique index finds at most one row in a few page reads, whatever the table
/// holds, so such a lookup (an auth collection's email, a username identity field, the id)
/// takes the point lane, with the index's partial condition repeated (SQLite cannot tell that a
/// bound value satisfies `email != ''`, and would scan the table without it). Any other field
/// is a scan, which takes the query lane like a list.
fn lookup_filters(collection: &Collection, field: &str, value: &str) -> (Lane, Vec<SqlFragment>) {
    let mut equal = SqlFragment::column(&collection.name, field);
    equal
        .push_sql(" = ")
        .push_param(domain::SqlValue::Text(value.to_owned()));
    let mut filters = vec![equal];
    if collection.is_view() {
        return (Lane::Query, filters);
    }
    if field == "id" {
        return (Lane::Point, filters);
    }
    let index = collection
        .indexes
        .iter()
        .filter_map(|sql| IndexDef::parse(sql).ok())
        .filter(|index| {
            // An index with its own collation does not serve a plain `=`.
            is_unique_on(index, field)
                && matches!(index.columns[0].collation, None | Some(Collation::Binary))
        })
        // A full index needs no condition.
        .min_by_key(|index| index.condition.is_some());
    match index {
        Some(index) => {
            if let Some(condition) = index.condition_sql(Dialect::Sqlite) {
                filters.push(SqlFragment::raw(format!("({condition})")));
            }
            (Lane::Point, filters)
        }
        None => (Lane::Query, filters),
    }
}

/// Announces the newest committed change (called on the writer after a commit, so nothing
/// is announced for a write that rolled back).
fn announce_changes(conn: &Connection, changes: &watch::Sender<u64>) {
    match changelog::last_seq(conn) {
        Ok(seq) => {
            changes.send_if_modified(|current| {
                let newer = seq > *current;
                if newer {
                    *current = seq;
                }
                newer
            });
        }
        // Readers also poll, so a missed announcement only delays delivery.
        Err(error) => tracing::warn!(%error, "cannot read the change-log sequence"),
    }
}

/// A connection beside the writer: a reader, or the checkpoints' read-write one.
fn open_side(path: &Path, options: &SqliteOptions, reader: bool) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn, options, reader)?;
    Ok(conn)
}

fn configure(conn: &Connection, options: &SqliteOptions, reader: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_millis(5000))?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    let synchronous = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Plans never depend on bound values. Without this SQLite plans some statements with the
    // values bound at the time and marks them to be prepared again whenever those parameters
    // are bound anew, so a cached list under a rule such as `published = true || author = ?`
    // was parsed and planned on every execution. What it gives up: a partial index is used
    // only when the query states its condition (the identity lookups add it, see
    // `lookup_filters`), not when a bound value happens to imply it.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    if reader {
        // Guards and filters are SQL built elsewhere; a reader must never write.
        conn.pragma_update(None, "query_only", true)?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Whether a statement failed because the query timeout interrupted it.
pub(crate) fn is_interrupt(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted)
}

/// A driver error nobody can act on: logged by the server, shown as a 500.
pub(crate) fn internal(error: rusqlite::Error) -> StoreError {
    StoreError::Internal(error.to_string())
}

fn closed(_: Refused) -> StoreError {
    StoreError::Internal("the database store is closed".into())
}

impl SqliteStore {
    /// Runs a record write on the writer thread. It must finish before `deadline` (when given)
    /// and within the query timeout: SQLite's progress handler interrupts a statement still
    /// running then (a guard's heavy subquery, say), and the transaction rolls back.
    async fn write_until(
        &self,
        ops: Vec<WriteOp>,
        deadline: Option<Instant>,
    ) -> Result<Vec<WriteResult>, WriteError> {
        let cell = Arc::clone(&self.schema);
        let changes = Arc::clone(&self.changes);
        let budget = self.budget();
        let deadline = match (deadline, self.query_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let queue = Arc::clone(&self.group);
        let counts = Arc::clone(&self.counts);
        let marks = Arc::clone(&self.auth_cache);
        let mut ticket = self.group.join(ops, deadline);
        let job = self
            .engine
            .write_until(deadline, move |conn| {
                group::run(conn, &queue, &cell.load(), &counts, &marks, || {
                    announce_changes(conn, &changes);
                    budget(conn);
                });
            })
            .await;
        let outcome = match job {
            Ok(_) => ticket.outcome().await,
            // The job did not run; neither did the write, unless an earlier job's group took
            // it, and then that group answers.
            Err(refused) if ticket.withdraw() => {
                let error = match refused {
                    Refused::Expired => StoreError::TimedOut,
                    Refused::Closed => closed(refused),
                };
                return Err(WriteError { index: 0, error });
            }
            Err(_) => ticket.outcome().await,
        };
        match outcome {
            // An interrupted statement surfaces as a driver error of the operation that was
            // running; a guard that could not be decided hid its row (`NotFound`).
            Some((Err(error), true)) if !matches!(error.error, StoreError::NotFound) => {
                Err(WriteError {
                    index: error.index,
                    error: StoreError::TimedOut,
                })
            }
            Some((result, _)) => result,
            // The job running the group panicked and rolled back, or the store stopped.
            None => Err(WriteError {
                index: 0,
                error: closed(Refused::Closed),
            }),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
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
        // Multiple fields are JSON array text (PocketBase's layout); the rest compare as is.
        if collection.field(field).is_some_and(Field::is_multiple) {
            domain::sql::list_holds_any(Dialect::Sqlite, &collection.name, field, values)
        } else {
            domain::sql::column_in(Dialect::Sqlite, &collection.name, field, values)
        }
    }

    async fn create_collection(&self, collection: Collection) -> Result<Arc<Schema>, StoreError> {
        self.change_schema(move |change| change.create(collection))
            .await
    }

    async fn update_collection(&self, collection: Collection) -> Result<Arc<Schema>, StoreError> {
        self.change_schema(move |change| change.update(collection))
            .await
    }

    async fn delete_collection(&self, id: &str) -> Result<Arc<Schema>, StoreError> {
        let id = id.to_owned();
        self.change_schema(move |change| change.delete(&id)).await
    }

    async fn truncate_collection(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        let cell = Arc::clone(&self.schema);
        let changes = Arc::clone(&self.changes);
        let budget = self.budget();
        self.engine
            .write(move |conn| {
                let schema = cell.load();
                let collection = schema.get_by_id(&id).ok_or(StoreError::NotFound)?;
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(internal)?;
                records::truncate(&tx, &schema, collection)?;
                tx.commit().map_err(internal)?;
                announce_changes(conn, &changes);
                budget(conn);
                Ok(())
            })
            .await
            .map_err(closed)?
    }

    async fn import_collections(
        &self,
        collections: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Arc<Schema>, StoreError> {
        self.change_schema(move |change| change.import(collections, delete_missing))
            .await
    }

    async fn infer_view_fields(&self, query: &str) -> Result<Vec<Field>, StoreError> {
        let query = query.to_owned();
        let schema = self.schema.load();
        self.read(Lane::Query, move |conn| {
            let collections: Vec<Collection> = schema.all().iter().map(|c| (**c).clone()).collect();
            view::ViewPlan::new(conn, &collections, &query).map(|plan| plan.fields)
        })
        .await
    }

    async fn sample_view(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<(Vec<Field>, Vec<Record>), StoreError> {
        let query = query.to_owned();
        let schema = self.schema.load();
        self.read(Lane::Query, move |conn| {
            let collections: Vec<Collection> = schema.all().iter().map(|c| (**c).clone()).collect();
            let fields = view::ViewPlan::new(conn, &collections, &query)?.fields;
            let rows = records::sample(conn, &fields, &query, limit)?;
            Ok((fields, rows))
        })
        .await
    }

    async fn list_records(&self, query: RecordQuery) -> Result<RecordPage, StoreError> {
        self.list_then(query, |page| page).await
    }

    async fn list_records_mapped(
        &self,
        query: RecordQuery,
        map: domain::store::PageMap,
    ) -> Result<Vec<u8>, StoreError> {
        self.list_then(query, map).await
    }

    async fn get_record(
        &self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<Option<Record>, StoreError> {
        Ok(self
            .record_by_id(collection, id, filters)
            .await?
            .map(Arc::unwrap_or_clone))
    }

    async fn get_auth_record(
        &self,
        collection: Arc<Collection>,
        id: &str,
    ) -> Result<Option<Arc<Record>>, StoreError> {
        self.record_by_id(collection, id, Vec::new()).await
    }

    async fn get_record_marked(
        &self,
        collection: Arc<Collection>,
        id: &str,
    ) -> Result<Option<(Record, Option<ReadMark>)>, StoreError> {
        if collection.is_view() {
            let found = self.record_by_id(collection, id, Vec::new()).await?;
            return Ok(found.map(|record| (Arc::unwrap_or_clone(record), None)));
        }
        let marks = Arc::clone(&self.auth_cache);
        let id = id.to_owned();
        let read = move |conn: &mut Connection| {
            // Noted before the read begins: a commit after it stamps a newer generation.
            let generation = marks.rows.generation();
            let found = records::load_marked(conn, &collection, &id).map_err(internal)?;
            Ok(found.map(|(record, rowid)| {
                let mark = rowid.map(|rowid| marks.rows.mark(generation, rowid, &collection));
                (record, mark)
            }))
        };
        self.read_on(Lane::Point, read).await
    }

    async fn record_satisfies(
        &self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.read(Lane::Query, move |conn| {
            records::satisfies(conn, &collection, &id, filters)
        })
        .await
    }

    async fn find_by_field(
        &self,
        collection: Arc<Collection>,
        field: &str,
        value: &str,
    ) -> Result<Option<Record>, StoreError> {
        let Some(field) = collection.field(field) else {
            return Ok(None);
        };
        let (lane, filters) = lookup_filters(&collection, &field.name, value);
        let query = RecordQuery {
            collection,
            filters,
            sort: Vec::new(),
            page: 1,
            per_page: 1,
            with_total: false,
        };
        let counts = Arc::clone(&self.counts);
        let page = self
            .read(lane, move |conn| records::list(conn, &query, &counts))
            .await?;
        Ok(page.items.into_iter().next())
    }

    async fn matches_unsaved(
        &self,
        collection: Arc<Collection>,
        data: RecordData,
        predicate: SqlFragment,
    ) -> Result<bool, StoreError> {
        self.read(Lane::Query, move |conn| {
            unsaved::matches(conn, &collection, &data, &predicate)
        })
        .await
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
        self.change_log_read.fetch_max(after, Ordering::Relaxed);
        let cell = Arc::clone(&self.schema);
        self.read(Lane::Point, move |conn| {
            changelog::after(conn, &cell.load(), after, limit)
        })
        .await
    }

    fn skipped_changes(&self, seq: u64) {
        self.change_log_read.fetch_max(seq, Ordering::Relaxed);
    }

    async fn last_change_seq(&self) -> Result<u64, StoreError> {
        Ok(*self.changes.borrow())
    }

    async fn wait_for_changes(&self, after: u64) -> Result<(), StoreError> {
        let closed = || StoreError::Internal("the database store is closed".into());
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
        self.change_log_read.fetch_max(up_to, Ordering::Relaxed);
        let size = Arc::clone(&self.change_log_size);
        let max_bytes = self.change_log_max_bytes;
        self.engine
            .write(move |conn| changelog::prune(conn, up_to, retention, max_bytes, &size))
            .await
            .map_err(closed)?
    }

    async fn get_param(&self, key: &str) -> Result<Option<Value>, StoreError> {
        let key = key.to_owned();
        self.read(Lane::Point, move |conn| system::get_param(conn, &key))
            .await
    }

    async fn set_param(&self, key: &str, value: Value) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.engine
            .write(move |conn| system::set_param(conn, &key, &value))
            .await
            .map_err(closed)?
    }

    async fn set_param_text(&self, key: &str, text: &str) -> Result<(), StoreError> {
        let (key, text) = (key.to_owned(), text.to_owned());
        self.engine
            .write(move |conn| text_params::set_param_text(conn, &key, &text))
            .await
            .map_err(closed)?
    }

    /// See [`Store::begin`] and the `tx` module: the transaction holds the writer thread, so
    /// every other write of this store waits until it ends (or gives up at its own deadline).
    async fn begin(&self, deadline: Option<Instant>) -> Result<Box<dyn Transaction>, StoreError> {
        let deadline = deadline.or_else(|| self.query_deadline());
        let publish = tx::Publish {
            schema: Arc::clone(&self.schema),
            changes: Arc::clone(&self.changes),
            counts: Arc::clone(&self.counts),
            budget: Box::new(self.budget()),
        };
        tx::begin(&self.engine, publish, deadline).await
    }

    async fn applied_migrations(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(Lane::Point, |conn| system::applied_migrations(conn))
            .await
    }

    async fn record_migration(&self, file: &str, applied_us: i64) -> Result<(), StoreError> {
        let file = file.to_owned();
        self.engine
            .write(move |conn| system::record_migration(conn, &file, applied_us))
            .await
            .map_err(closed)?
    }

    async fn forget_migration(&self, file: &str) -> Result<bool, StoreError> {
        let file = file.to_owned();
        self.engine
            .write(move |conn| system::forget_migration(conn, &file))
            .await
            .map_err(closed)?
    }

    async fn claim_once(&self, key: &str, slot: i64) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.engine
            .write(move |conn| system::claim_once(conn, &key, slot))
            .await
            .map_err(closed)?
    }

    async fn run_sql(
        &self,
        sql: &str,
        limits: domain::store::SqlLimits,
    ) -> Result<domain::store::SqlOutcome, StoreError> {
        self.console(sql, limits).await
    }

    async fn optimize(&self) -> Result<(), StoreError> {
        self.optimize_now().await
    }

    fn stats(&self) -> domain::store::StoreStats {
        self.engine.stats()
    }

    async fn snapshot(&self, dir: &Path) -> Result<Vec<String>, StoreError> {
        let data_dir = self.data_dir.clone();
        let dir = dir.to_owned();
        backup::off_thread(move || backup::snapshot(&data_dir, &dir)).await
    }

    async fn verify_snapshot(&self, dir: &Path) -> Result<(), StoreError> {
        let dir = dir.to_owned();
        backup::off_thread(move || backup::verify(&dir)).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Before the engine's connections close, so that the last of them (on its own thread)
        // is the one that finishes the database, as when no counter is kept.
        self.auth_cache.close();
        let checkpoint = self
            .engine
            .write(|conn| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .map_err(internal)
            })
            .await;
        self.engine.shutdown().await;
        // Wake every change waiter; they see the flag and fail.
        self.closed.store(true, Ordering::Release);
        self.changes.send_modify(|_| {});
        match checkpoint {
            Ok(result) => result,
            // Closing twice is fine: the first close already checkpointed.
            Err(_) => Ok(()),
        }
    }
}
