//! The `Store` port: everything the server asks of a database. Implemented by
//! `store-sqlite` (and later `store-postgres`); the server only ever holds `Arc<dyn Store>`.
//!
//! Writes go through one door, [`Store::write`]: a list of operations run in order inside one
//! transaction, all or nothing. Rule guards travel with each operation as SQL predicates so
//! the store checks them against the row inside that same transaction.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::collection::{Collection, Schema};
use crate::error::ValidationErrors;
use crate::field::Field;
use crate::record::{Record, RecordData};
use crate::sql::{Dialect, SqlFragment};

/// Why a store call failed. Mapped to HTTP by the server; `Internal` details are logged, never
/// returned to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record (or collection) does not exist, or a guard hid it.
    #[error("not found")]
    NotFound,
    /// A create guard (rule evaluated on the new row) did not hold.
    #[error("rule rejected the write")]
    GuardRejected,
    /// Field-level problems found by the store: unique violations, missing relation targets.
    #[error("validation failed")]
    Validation(ValidationErrors),
    /// A delete is blocked by a required, non-cascading relation in another record.
    #[error("record is part of a required relation reference")]
    RequiredReference,
    /// A schema change the engine refused (bad index or view SQL, references in the way).
    #[error("schema change refused: {0}")]
    Schema(String),
    /// The query timeout (or a write's deadline) passed before the work finished: a read was
    /// interrupted, or a write rolled back with nothing written.
    #[error("the query timed out")]
    TimedOut,
    /// Anything else: I/O, driver errors, corrupted data.
    #[error("internal store error: {0}")]
    Internal(String),
    /// A hook (server-side script) refused the write and everything was rolled back. With
    /// `status`, the answer the script chose (`message`, `data`); without, the write's own
    /// failure message answers, and `message` is only logged.
    #[error("a hook refused the write: {message}")]
    Hook {
        status: Option<u16>,
        message: String,
        data: Value,
    },
}

/// An error of one operation inside [`Store::write`], with its position in the list.
#[derive(Debug, thiserror::Error)]
#[error("write operation {index} failed: {error}")]
pub struct WriteError {
    pub index: usize,
    pub error: StoreError,
}

/// One ORDER BY term.
#[derive(Debug, Clone, PartialEq)]
pub struct SortTerm {
    pub expr: SqlFragment,
    pub descending: bool,
}

/// A page of records from one collection.
#[derive(Debug, Clone)]
pub struct RecordQuery {
    pub collection: Arc<Collection>,
    /// Predicates AND-ed together (the list rule, the client filter, lookups).
    pub filters: Vec<SqlFragment>,
    pub sort: Vec<SortTerm>,
    /// 1-based page.
    pub page: u64,
    pub per_page: u64,
    /// Whether to count every matching row as well.
    pub with_total: bool,
}

#[derive(Debug, Clone)]
pub struct RecordPage {
    pub items: Vec<Record>,
    /// `Some` when the query asked for a total.
    pub total: Option<u64>,
}

/// Turns a page into what the caller answers (its response bytes, typically), run by
/// [`Store::list_records_mapped`] where the page was read.
pub type PageMap = Box<dyn FnOnce(RecordPage) -> Vec<u8> + Send>;

/// Computes a record's new values from its current state; runs inside the write
/// transaction, so read-modify-write modifiers (`views+`) cannot lose updates. It may run more
/// than once for one write (a group of writes that must run again after a failure, on a
/// transaction rolled back in between): only its result may count, never an effect of a call.
pub type UpdateFn = Box<dyn FnMut(&Record) -> Result<RecordData, StoreError> + Send>;

/// Where a store stood when it read a row ([`Store::get_record_marked`]): with it, a later
/// update of that row can skip reading the row again inside its transaction when the store
/// can tell nothing has changed the row since. Its meaning is the engine's own; an engine
/// that cannot tell gives none, and a mark it does not recognise is ignored.
#[derive(Debug, Clone)]
pub struct ReadMark {
    /// Which store instance made it.
    pub store: u64,
    /// The store's write generation before the read.
    pub generation: u64,
    /// The engine's address of the row (SQLite's rowid).
    pub row: i64,
    /// The collection as the row was read with: a write with another (a schema change in
    /// between) does not use the mark.
    pub collection: Arc<Collection>,
}

/// An update's row as the caller read it, with the read's mark: used in place of reading the
/// row again when the mark shows it unchanged (the guard is still checked, unless `guard`
/// below says it held, and the relations the update sets).
pub struct KnownRow {
    pub record: Arc<Record>,
    pub mark: ReadMark,
    /// The update's new values computed from `record` (what `apply` would give on it), when
    /// the caller already computed them; `None` runs `apply` on `record`.
    pub data: Option<RecordData>,
    /// Set when the caller decided the update's rule on `record` in memory (a rule that reads
    /// only the row and the request) and it held. The op's `guard` is then `None`: while the
    /// mark shows the row unchanged the rule holds without a check, and every other way of
    /// running the update builds the guard with this first ([`resolve_update_guard`]).
    pub guard: Option<GuardFn>,
}

/// Builds an update's guard (its rule as SQL for the request) when a write needs it.
pub type GuardFn = Box<dyn FnOnce() -> Option<SqlFragment> + Send>;

/// An update's guard as any way of running it but the known row's needs it: a guard left to
/// the known row ([`KnownRow::guard`]) is built and moved into `guard`, so a write run again
/// finds it there.
pub fn resolve_update_guard(guard: &mut Option<SqlFragment>, known: Option<&mut KnownRow>) {
    if let Some(build) = known.and_then(|known| known.guard.take()) {
        *guard = build();
    }
}

/// One record write.
pub enum WriteOp {
    /// Inserts `data` (complete: every field has a value). `guard`, if any, must hold for
    /// the inserted row or the whole write is rolled back with `GuardRejected`.
    Create {
        collection: Arc<Collection>,
        data: RecordData,
        guard: Option<SqlFragment>,
    },
    /// Loads the row (which must satisfy `guard`, else `NotFound`), computes the new values
    /// with `apply` and stores them.
    Update {
        collection: Arc<Collection>,
        id: String,
        guard: Option<SqlFragment>,
        apply: UpdateFn,
        /// The row as the caller read it before the write (see [`KnownRow`]), if it has it.
        known: Option<KnownRow>,
    },
    /// Deletes the row (which must satisfy `guard`, else `NotFound`), applying relation
    /// cascades: cascading references are deleted, optional ones cleared, required ones block.
    Delete {
        collection: Arc<Collection>,
        id: String,
        guard: Option<SqlFragment>,
    },
}

/// What one [`WriteOp`] produced.
#[derive(Debug, Clone)]
pub enum WriteResult {
    Created(Record),
    Updated(Record),
    /// The deleted record, and `(collection id, record id)` of every other record a relation
    /// cascade deleted with it (their files must go too).
    Deleted {
        record: Record,
        cascaded: Vec<(String, String)>,
    },
}

impl WriteResult {
    pub fn record(&self) -> &Record {
        match self {
            WriteResult::Created(r)
            | WriteResult::Updated(r)
            | WriteResult::Deleted { record: r, .. } => r,
        }
    }
}

/// What a change-log entry records happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    Create,
    Update,
    Delete,
}

impl ChangeAction {
    /// The word PocketBase's realtime messages use (`create`, `update`, `delete`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<ChangeAction> {
        match text {
            "create" => Some(ChangeAction::Create),
            "update" => Some(ChangeAction::Update),
            "delete" => Some(ChangeAction::Delete),
            _ => None,
        }
    }
}

/// One committed record write, as the durable change log keeps it. Realtime (and later
/// webhooks, the sync feed and the audit log) read these, each at its own cursor.
#[derive(Debug, Clone)]
pub struct Change {
    /// Strictly increasing, never reused (also across pruning and restarts).
    pub seq: u64,
    pub collection_id: String,
    pub record_id: String,
    pub action: ChangeAction,
    /// Every stored value of the record after the write (hidden fields included); for a
    /// delete, its last state before deletion. Secrets are never kept: no password hash
    /// (an auth record's `password`, any password field) and no `tokenKey`. Instead an auth
    /// record that still exists carries its *current* `tokenKey` when read, so a consumer
    /// holding an older key can tell the record's tokens were revoked.
    pub record: Record,
    /// When the write committed, in Unix milliseconds.
    pub created_ms: i64,
}

/// How much of the change log to keep. Pruning only ever removes entries at or below the
/// sequence the caller says every reader has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRetention {
    /// Keep at least the newest this many entries.
    pub max_entries: u64,
    /// Keep entries younger than this, in seconds (0: none by age).
    pub max_age_secs: u64,
}

impl Default for ChangeRetention {
    fn default() -> Self {
        ChangeRetention {
            max_entries: 10_000,
            max_age_secs: 24 * 60 * 60,
        }
    }
}

/// A database engine.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The dialect predicates must be written in.
    fn dialect(&self) -> Dialect;

    /// The current schema snapshot (cheap: an `Arc` clone).
    fn schema(&self) -> Arc<Schema>;

    /// A predicate, in this engine's SQL, on the rows of `collection`: its `field` holds one of
    /// `values`. For a field that keeps a list (a multiple relation, select or file field) any
    /// item counts; `id` and single-valued fields compare their value. The values are bound,
    /// however many there are. Expanding relations and deciding a rule for many records at
    /// once select rows with it, so nothing above the store writes this SQL.
    fn field_holds_any(
        &self,
        collection: &Collection,
        field: &str,
        values: &[String],
    ) -> SqlFragment;

    /// Creates a collection's table (or view) and stores its definition.
    async fn create_collection(&self, collection: Collection) -> Result<Arc<Schema>, StoreError>;

    /// Replaces a collection's definition, migrating its table in one transaction: fields are
    /// matched by id, so renames keep data; dropped fields lose their column.
    async fn update_collection(&self, collection: Collection) -> Result<Arc<Schema>, StoreError>;

    /// Drops a collection and its table. Refused while other collections reference it.
    async fn delete_collection(&self, id: &str) -> Result<Arc<Schema>, StoreError>;

    /// Deletes every record of a collection (with relation cascades).
    async fn truncate_collection(&self, id: &str) -> Result<(), StoreError>;

    /// Creates or replaces many collections in one transaction; with `delete_missing`, drops
    /// the non-system collections not listed.
    async fn import_collections(
        &self,
        collections: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Arc<Schema>, StoreError>;

    /// The fields a view collection with this SELECT would have (types inferred). A view's
    /// query is written in the engine's own SQL (SQLite's here, PostgreSQL's there) and run as
    /// the engine reads it; it is the one place a collection carries SQL of one dialect.
    async fn infer_view_fields(&self, query: &str) -> Result<Vec<Field>, StoreError>;

    /// The fields of an unsaved view and its first `limit` rows, read as records of those
    /// fields: the dashboard's preview before a view is saved. Runs read-only, under the
    /// query timeout.
    async fn sample_view(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<(Vec<Field>, Vec<Record>), StoreError>;

    /// A page of records. Fails with [`StoreError::TimedOut`] past the query timeout.
    async fn list_records(&self, query: RecordQuery) -> Result<RecordPage, StoreError>;

    /// [`Store::list_records`], with `map` applied to the page. An engine that reads on
    /// threads of its own runs `map` there, so the records are built, serialized and freed on
    /// one thread and only `map`'s bytes cross back. The answer is the same either way.
    async fn list_records_mapped(
        &self,
        query: RecordQuery,
        map: PageMap,
    ) -> Result<Vec<u8>, StoreError> {
        let page = self.list_records(query).await?;
        Ok(map(page))
    }

    /// The record whose `field` equals `value` exactly, if any: the identity lookup behind
    /// sign-ins and OTP requests. An engine may answer it ahead of client-controlled queries
    /// when a unique index serves it, so a guest's heavy filters cannot hold sign-ins up;
    /// rows a partial unique index leaves out (an auth collection's empty emails) may then not
    /// be found. Without an index this is an ordinary one-row list.
    async fn find_by_field(
        &self,
        collection: Arc<Collection>,
        field: &str,
        value: &str,
    ) -> Result<Option<Record>, StoreError> {
        if collection.field(field).is_none() {
            return Ok(None);
        }
        let mut filter = SqlFragment::column(&collection.name, field);
        filter
            .push_sql(" = ")
            .push_param(crate::sql::SqlValue::Text(value.to_owned()));
        let page = self
            .list_records(RecordQuery {
                collection,
                filters: vec![filter],
                sort: Vec::new(),
                page: 1,
                per_page: 1,
                with_total: false,
            })
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// One record by id, if it exists and satisfies every filter. Filters not decided within
    /// the query timeout do not hold (`None`), as a rule lookup that fails hides the record.
    async fn get_record(
        &self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<Option<Record>, StoreError>;

    /// A record by id with the mark of its read ([`ReadMark`]), for an update that follows;
    /// an engine that cannot mark its reads gives none.
    async fn get_record_marked(
        &self,
        collection: Arc<Collection>,
        id: &str,
    ) -> Result<Option<(Record, Option<ReadMark>)>, StoreError> {
        Ok(self
            .get_record(collection, id, Vec::new())
            .await?
            .map(|record| (record, None)))
    }

    /// An auth record by id, for a token check: shared, since an engine may keep auth records
    /// in memory and hand out the same one to every request.
    async fn get_auth_record(
        &self,
        collection: Arc<Collection>,
        id: &str,
    ) -> Result<Option<Arc<Record>>, StoreError> {
        Ok(self
            .get_record(collection, id, Vec::new())
            .await?
            .map(Arc::new))
    }

    /// Whether the stored record `id` exists and satisfies every filter. Unlike
    /// [`Store::get_record`], filters not decided within the query timeout fail with
    /// [`StoreError::TimedOut`] instead of reading as "does not hold": for checks where
    /// "does not hold" is the permissive answer (whether a sign-in needs a second factor).
    async fn record_satisfies(
        &self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<bool, StoreError>;

    /// Whether `data`, taken as a row of `collection` that is not stored (the would-be row of
    /// a create, or a deleted record's last state), satisfies `predicate`. Other rows the
    /// predicate reads (relations, `@collection` joins) are the stored ones. A predicate not
    /// decided within the query timeout does not hold.
    async fn matches_unsaved(
        &self,
        collection: Arc<Collection>,
        data: RecordData,
        predicate: SqlFragment,
    ) -> Result<bool, StoreError>;

    /// Runs the operations in order in one transaction; all or nothing. Bounded by the query
    /// timeout like a read: an update or delete guard not decided in time hides its row
    /// (`NotFound`); anything else still running then rolls back with `TimedOut`.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, WriteError>;

    /// As [`Store::write`], but rolled back with [`StoreError::TimedOut`] when `deadline`
    /// passes before the transaction commits, including while a statement is running or the
    /// write waits for its turn.
    async fn write_before(
        &self,
        ops: Vec<WriteOp>,
        deadline: std::time::Instant,
    ) -> Result<Vec<WriteResult>, WriteError>;

    /// Committed change-log entries with `seq > after`, oldest first, at most `limit`. An
    /// engine may return fewer (at least one while any is left) to bound a read's memory.
    async fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// The change-log reader moved past every entry up to `seq` without reading them (the
    /// realtime fan-out with no client connected): an engine that prunes only what was read
    /// (the byte budget) may now prune them. Reading with [`Store::changes_after`] says
    /// the same of `after`.
    fn skipped_changes(&self, seq: u64) {
        let _ = seq;
    }

    /// The newest committed change-log sequence (0 when the log has never had an entry).
    async fn last_change_seq(&self) -> Result<u64, StoreError>;

    /// Resolves once a change with `seq > after` may have committed (possibly spuriously,
    /// e.g. when it already had). This is a wake-up, not a delivery: callers then read
    /// [`Store::changes_after`]. A networked engine may back it with `LISTEN/NOTIFY`; callers
    /// still poll now and then in case a wake-up is lost. Fails once the store is closed.
    async fn wait_for_changes(&self, after: u64) -> Result<(), StoreError>;

    /// Deletes change-log entries with `seq <= up_to` that fall outside `retention`; returns
    /// how many went.
    async fn prune_changes(
        &self,
        up_to: u64,
        retention: ChangeRetention,
    ) -> Result<u64, StoreError>;

    /// A stored setting (PocketBase's `_params`), e.g. `settings`.
    async fn get_param(&self, key: &str) -> Result<Option<Value>, StoreError>;

    /// Stores a setting.
    async fn set_param(&self, key: &str, value: Value) -> Result<(), StoreError>;

    /// Flushes what can be flushed before shutdown (a WAL checkpoint on SQLite).
    async fn close(&self) -> Result<(), StoreError>;

    /// Opens an interactive [`Transaction`]: reads and writes made through it see each
    /// other's uncommitted effects, and nothing becomes visible to the rest of the store (its
    /// reads, [`Store::schema`], [`Store::wait_for_changes`]) until [`Transaction::commit`].
    ///
    /// `deadline` bounds the whole transaction, from this call (waiting for the engine
    /// included) to the commit; `None` means the store's query timeout, counted from now. Past
    /// it, a running statement is interrupted, the transaction rolls back on its own (also
    /// when its owner is idle, stuck or gone) and every later call answers
    /// [`StoreError::TimedOut`]; `begin` itself answers `TimedOut` when the transaction could
    /// not start in time.
    ///
    /// An engine may serialize transactions with every other write (SQLite has one writer:
    /// while a transaction is open, [`Store::write`] and schema changes wait for it), so a
    /// transaction should be short and must not wait on other writes of the same store.
    /// Engines without interactive transactions answer [`StoreError::Internal`].
    async fn begin(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<Box<dyn Transaction>, StoreError> {
        let _ = deadline;
        Err(StoreError::Internal(
            "this store does not support interactive transactions".into(),
        ))
    }

    /// As [`Transaction::applied_migrations`], outside any transaction.
    async fn applied_migrations(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tx = self.begin(None).await?;
        let applied = tx.applied_migrations().await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// As [`Transaction::record_migration`], committed at once.
    async fn record_migration(&self, file: &str, applied_us: i64) -> Result<(), StoreError> {
        let mut tx = self.begin(None).await?;
        tx.record_migration(file, applied_us).await?;
        tx.commit().await
    }

    /// As [`Transaction::forget_migration`], committed at once.
    async fn forget_migration(&self, file: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin(None).await?;
        let forgotten = tx.forget_migration(file).await?;
        tx.commit().await?;
        Ok(forgotten)
    }

    /// Runs the SQL a superuser typed into the SQL console (`POST /api/sql`): one or more
    /// statements, in one transaction, all or nothing, within the query timeout. Returns the
    /// last statement's columns and at most `limits.max_rows` of its rows, every value as
    /// text. A statement the engine refuses (one that would change a collection's table, the
    /// store's own bookkeeping tables or the connection itself, so the schema snapshot would
    /// go stale), and any SQL error, comes back as [`SqlOutcome::Failed`] with nothing
    /// written. Writes made here are not record writes: no validation, no hooks, no
    /// change-log entries (so no realtime events), as raw SQL bypasses them in PocketBase.
    async fn run_sql(&self, sql: &str, limits: SqlLimits) -> Result<SqlOutcome, StoreError> {
        let _ = (sql, limits);
        Err(StoreError::Internal(
            "run_sql is not supported by this engine".into(),
        ))
    }

    /// Routine maintenance (PocketBase's daily `__pbDBOptimize__` job): refreshes the query
    /// planner's statistics and returns space the write-ahead log holds.
    async fn optimize(&self) -> Result<(), StoreError> {
        Err(StoreError::Internal(
            "optimize is not supported by this engine".into(),
        ))
    }

    /// A number that grows whenever a param (the settings, say) changes, on any node sharing
    /// the database: a cache of params compares it with the number it loaded at to know it is
    /// stale. An engine only one process uses may leave it at 0 (that process's own writes
    /// update its caches).
    fn params_version(&self) -> u64 {
        0
    }

    /// Claims the one run of `key` (a cron job, say) in time slot `slot`: `true` for exactly one
    /// caller per `(key, slot)` among every node sharing the database, `false` for the rest,
    /// so work every node schedules runs once. Claims are kept at least a day.
    async fn claim_once(&self, key: &str, slot: i64) -> Result<bool, StoreError> {
        let _ = (key, slot);
        Ok(true)
    }

    /// Whether other processes (nodes) may share this database. State a node keeps in memory
    /// (realtime clients, say) then has to be reached through the database.
    fn shared(&self) -> bool {
        false
    }

    /// Brings this node's schema snapshot up to the database's now, for a caller that is about
    /// to answer "no such collection": on a shared database another node may have created it
    /// a moment ago. An engine only one process uses is always current.
    async fn catch_up(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Leaves `data` for the realtime client `client_id`, which may be connected to another
    /// node sharing the database, on `topic`; the message expires after `ttl` (database clock).
    /// Returns its id, for [`Store::relay_taken`]. Only for [`Store::shared`] engines.
    async fn post_relay(
        &self,
        client_id: &str,
        topic: &str,
        data: &str,
        ttl: std::time::Duration,
    ) -> Result<i64, StoreError> {
        let _ = (client_id, topic, data, ttl);
        Err(StoreError::Internal(
            "relays are not supported by this engine".into(),
        ))
    }

    /// Relayed messages with an id above `after` that nobody took yet and that have not
    /// expired, oldest first, at most `limit`.
    async fn relays_after(&self, after: i64, limit: usize) -> Result<Vec<Relay>, StoreError> {
        let _ = (after, limit);
        Ok(Vec::new())
    }

    /// Takes the relayed message `id` for delivery: `true` for exactly one caller, and only
    /// while it has not expired.
    async fn take_relay(&self, id: i64) -> Result<bool, StoreError> {
        let _ = id;
        Ok(false)
    }

    /// Whether the relayed message `id` was taken.
    async fn relay_taken(&self, id: i64) -> Result<bool, StoreError> {
        let _ = id;
        Ok(false)
    }

    /// Leaves the holder's answer to the relayed message `id` (a request carried out for
    /// another node), for [`Store::relay_answer`].
    async fn answer_relay(&self, id: i64, answer: &str) -> Result<(), StoreError> {
        let _ = (id, answer);
        Ok(())
    }

    /// The answer left for the relayed message `id`, once there is one.
    async fn relay_answer(&self, id: i64) -> Result<Option<String>, StoreError> {
        let _ = id;
        Ok(None)
    }

    /// Drops the relayed message `id` (its sender is done waiting).
    async fn forget_relay(&self, id: i64) -> Result<(), StoreError> {
        let _ = id;
        Ok(())
    }

    /// Returns when a message newer than `after` may have been relayed. A wake-up can be lost,
    /// so the caller bounds the wait and looks anyway; an engine without relays never returns.
    async fn wait_for_relays(&self, after: i64) -> Result<(), StoreError> {
        let _ = after;
        std::future::pending::<()>().await;
        Ok(())
    }

    /// Counters of the engine's work queues, for the metrics endpoint.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Writes a consistent copy of each of the store's database files into the existing,
    /// empty directory `dir` while writes go on: the copy holds every write committed before
    /// the call and nothing half done. Returns the names of the files written, the main
    /// database first (for SQLite, `data.db`, then `auxiliary.db` when there is one).
    async fn snapshot(&self, dir: &std::path::Path) -> Result<Vec<String>, StoreError> {
        let _ = dir;
        Err(StoreError::Internal(
            "snapshot is not supported by this engine".into(),
        ))
    }

    /// Checks the database files a [`Store::snapshot`] wrote into `dir` (an unpacked backup)
    /// before they replace the live ones: they must be intact and be this engine's databases.
    /// A refusal is [`StoreError::Schema`] carrying the reason, fit to show a superuser.
    async fn verify_snapshot(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        let _ = dir;
        Err(StoreError::Internal(
            "verify_snapshot is not supported by this engine".into(),
        ))
    }

    /// Stores a setting as `text`, verbatim rather than as JSON: an encrypted `settings` value,
    /// which PocketBase keeps as bare base64 ([`Store::get_param`] reads it back as a string).
    async fn set_param_text(&self, key: &str, text: &str) -> Result<(), StoreError> {
        let _ = (key, text);
        Err(StoreError::Internal(
            "set_param_text is not supported by this engine".into(),
        ))
    }
}

/// An open interactive transaction (see [`Store::begin`]): what JS hooks and migrations use to
/// read and write through one transaction, seeing its own uncommitted state.
///
/// Every call is atomic within the transaction: one that fails leaves the transaction as it
/// was before the call and still usable (JS code may catch a failed save and go on), except
/// for [`StoreError::TimedOut`] (the deadline passed: the whole transaction rolled back) and
/// [`StoreError::Internal`] after the transaction ended (the store closed, a commit failed, a
/// callback panicked), after which every call fails the same way.
///
/// Dropping a transaction without [`Transaction::commit`] or [`Transaction::rollback`] rolls
/// it back; the drop itself never blocks, and the engine is freed as soon as any call still
/// running finishes (at the latest at the deadline).
#[async_trait]
pub trait Transaction: Send {
    /// The schema as this transaction sees it: the store's schema when the transaction
    /// started, with the transaction's own collection changes (cheap: an `Arc` clone). Record
    /// writes through the transaction must use collections from here.
    fn schema(&self) -> Arc<Schema>;

    /// Runs the operations in order with [`Store::write`]'s semantics (guards, [`UpdateFn`],
    /// relation cascades, unique violations as field errors, change-log entries), all or
    /// nothing within the transaction: on failure none of them took effect and the
    /// transaction's earlier work is intact. Change-log entries become visible, and
    /// [`Store::wait_for_changes`] wakes, only when the transaction commits. When the whole
    /// transaction ended instead (`TimedOut`, `Internal`), the error's index is 0.
    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, WriteError>;

    /// As [`Store::get_record`], reading through the transaction (its uncommitted rows
    /// included). A filter interrupted by the deadline ends the transaction (`TimedOut`).
    async fn get_record(
        &mut self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<Option<Record>, StoreError>;

    /// As [`Store::list_records`], reading through the transaction.
    async fn list_records(&mut self, query: RecordQuery) -> Result<RecordPage, StoreError>;

    /// As [`Store::find_by_field`] (an exact match of `field`, `None` for an unknown field),
    /// reading through the transaction.
    async fn find_by_field(
        &mut self,
        collection: Arc<Collection>,
        field: &str,
        value: &str,
    ) -> Result<Option<Record>, StoreError>;

    /// As [`Store::matches_unsaved`]; the other rows the predicate reads are the
    /// transaction's (its uncommitted rows included).
    async fn matches_unsaved(
        &mut self,
        collection: Arc<Collection>,
        data: RecordData,
        predicate: SqlFragment,
    ) -> Result<bool, StoreError>;

    /// As [`Store::create_collection`], inside the transaction; returns the transaction's new
    /// schema (also [`Transaction::schema`] from now on). The store's shared schema changes
    /// only when the transaction commits.
    async fn create_collection(
        &mut self,
        collection: Collection,
    ) -> Result<Arc<Schema>, StoreError>;

    /// As [`Store::update_collection`], inside the transaction (see `create_collection`).
    async fn update_collection(
        &mut self,
        collection: Collection,
    ) -> Result<Arc<Schema>, StoreError>;

    /// As [`Store::delete_collection`], inside the transaction (see `create_collection`).
    async fn delete_collection(&mut self, id: &str) -> Result<Arc<Schema>, StoreError>;

    /// As [`Store::truncate_collection`], inside the transaction (change-log entries
    /// included, as for `write`).
    async fn truncate_collection(&mut self, id: &str) -> Result<(), StoreError>;

    /// As [`Store::import_collections`], inside the transaction (see `create_collection`).
    async fn import_collections(
        &mut self,
        collections: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Arc<Schema>, StoreError>;

    /// As [`Store::get_param`], reading through the transaction.
    async fn get_param(&mut self, key: &str) -> Result<Option<Value>, StoreError>;

    /// As [`Store::set_param`], inside the transaction.
    async fn set_param(&mut self, key: &str, value: Value) -> Result<(), StoreError>;

    /// The app migrations recorded as applied (PocketBase's `_migrations`): `(file, applied)`
    /// with `applied` in Unix microseconds, ordered by `applied` then `file`. The engine's own
    /// schema steps, kept in the same table by some engines, are not listed.
    async fn applied_migrations(&mut self) -> Result<Vec<(String, i64)>, StoreError>;

    /// Records `file` as applied at `applied_us` (Unix microseconds), replacing an earlier
    /// record of the same file. A name the engine uses for its own schema steps is refused
    /// with [`StoreError::Schema`].
    async fn record_migration(&mut self, file: &str, applied_us: i64) -> Result<(), StoreError>;

    /// Removes the record of `file`; says whether there was one. A name the engine uses for
    /// its own schema steps is refused with [`StoreError::Schema`].
    async fn forget_migration(&mut self, file: &str) -> Result<bool, StoreError>;

    /// Opens a nested savepoint (a stack: nested `runInTransaction`). Work done after it can
    /// be undone with [`Transaction::rollback_to_savepoint`] without ending the transaction.
    async fn savepoint(&mut self) -> Result<(), StoreError>;

    /// Closes the innermost savepoint, keeping its work as part of the enclosing level.
    /// Fails with [`StoreError::Internal`] when no savepoint is open.
    async fn release_savepoint(&mut self) -> Result<(), StoreError>;

    /// Undoes everything since the innermost savepoint opened (records, change-log entries,
    /// collections, including [`Transaction::schema`], params, migration records) and closes
    /// it. Fails with [`StoreError::Internal`] when no savepoint is open.
    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError>;

    /// Makes everything durable and visible at once, savepoints still open included: the
    /// shared schema is replaced, and change-log consumers are woken. On any error nothing was
    /// committed (past the deadline: `TimedOut`).
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Undoes everything and ends the transaction. Errors only when the transaction had
    /// already ended (`TimedOut` past the deadline); nothing of it was committed either way.
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}

/// Bounds of one [`Store::run_sql`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Rows of the last statement returned; the rest are not read.
    pub max_rows: usize,
    /// Bytes of values (text and blobs) the returned rows may hold; past it the call fails.
    pub max_bytes: usize,
}

/// A column of [`SqlOutput`]: its name and the type it was declared with (empty for an
/// expression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlColumn {
    pub name: String,
    pub declared_type: String,
}

/// What the SQL console's statements produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlOutput {
    /// The last statement's columns (none for a statement that returns no rows).
    pub columns: Vec<SqlColumn>,
    /// Its rows, every value as text (`None` for NULL).
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows changed by the last INSERT, UPDATE or DELETE the call ran (0 when it ran none).
    pub affected_rows: u64,
}

/// The answer of [`Store::run_sql`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlOutcome {
    Done(SqlOutput),
    /// The statements failed or were refused, and nothing was written: the engine's message,
    /// shown to the superuser as is.
    Failed(String),
}

/// One work queue of an engine (for SQLite: the writer, the query readers, the point readers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// A short fixed name (`writer`, `query`, `point`): a metrics label.
    pub name: &'static str,
    /// Jobs waiting for a thread.
    pub queued: u64,
    /// Threads running a job now.
    pub busy: u64,
    /// Threads serving the queue.
    pub threads: u64,
}

/// A message left in a shared database for a realtime client on whichever node holds it (the
/// OAuth2 redirect's answer, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub id: i64,
    pub client_id: String,
    pub topic: String,
    pub data: String,
}

/// See [`Store::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub queues: Vec<QueueStats>,
}
