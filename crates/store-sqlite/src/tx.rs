//! Interactive transactions ([`domain::store::Transaction`]) on the writer thread.
//!
//! SQLite has one writer, and the store has one write connection, owned by the writer thread.
//! `begin` therefore queues one long job on that thread: it opens `BEGIN IMMEDIATE` and then
//! serves the transaction's commands, each a closure sent over a channel of its own, until the
//! transaction commits, rolls back, is dropped (its channel disconnects) or passes its
//! deadline. Meanwhile the transaction holds the writer: every other write (record writes,
//! schema changes, settings, change-log pruning) queues behind it, and gives up at its own
//! deadline. Reads through the transaction run on the writer connection too, so they see its
//! uncommitted rows; the store's reader threads keep seeing the last commit.
//!
//! The deadline bounds the whole transaction. The engine's progress handler interrupts a
//! statement running past it, the thread waits for the next command only until it, and once
//! it passed the transaction rolls back and the thread returns to other work, whether or not
//! anyone still holds the handle.
//!
//! Each command is atomic within the transaction (a `SAVEPOINT` around it), so a failed save
//! leaves the transaction as it was. What SQLite's savepoints do not undo is undone beside
//! them: the transaction's own schema and the change log's pending byte count are remembered
//! with every savepoint. The shared schema snapshot is swapped, and change-log consumers are
//! woken, only after `COMMIT`.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock, mpsc};
use std::time::Instant;

use async_trait::async_trait;
use domain::collection::{Collection, Schema};
use domain::record::{Record, RecordData};
use domain::sql::SqlFragment;
use domain::store::Transaction;
use domain::{RecordPage, RecordQuery, StoreError, WriteError, WriteOp, WriteResult};
use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::schema_change::SchemaChange;
use crate::{SchemaCell, announce_changes, changelog, engine, internal, records, system, unsaved};

/// The transaction is open.
const OPEN: u8 = 0;
/// Its deadline passed and it rolled back.
const TIMED_OUT: u8 = 1;
/// It committed, rolled back, or failed for good.
const ENDED: u8 = 2;

/// The savepoint around one command.
const STEP: &str = "plinth_step";
/// The savepoints of [`Transaction::savepoint`]; SQLite resolves a repeated name to the
/// innermost one, which is exactly a stack.
const NESTED: &str = "plinth_nested";

/// One command of a transaction, run on the writer thread.
type Command = Box<dyn FnOnce(&mut Connection, &mut State) -> Flow + Send>;

/// Whether the transaction goes on after a command.
enum Flow {
    Continue,
    /// The command committed or rolled back.
    End,
}

/// What the writer side of a transaction needs from the store.
pub(crate) struct Publish {
    pub(crate) schema: Arc<SchemaCell>,
    pub(crate) changes: Arc<watch::Sender<u64>>,
    /// The store's kept counts, forgotten when the transaction changed the schema.
    pub(crate) counts: Arc<crate::counts::Counts>,
    pub(crate) budget: Box<dyn Fn(&Connection) + Send>,
}

/// The transaction's state on the writer thread.
struct State {
    /// The schema as the transaction sees it.
    schema: Arc<Schema>,
    /// The same, shared with the handle so [`Transaction::schema`] needs no round trip (and
    /// stays right when a caller gave up waiting for a command that then ran).
    shown: Arc<SchemaCell>,
    /// Whether `schema` differs from the store's shared snapshot.
    schema_changed: bool,
    /// One mark per open [`Transaction::savepoint`], innermost last.
    savepoints: Vec<Mark>,
    deadline: Option<Instant>,
    /// What a commit publishes to.
    publish: Publish,
}

/// What a savepoint must restore beside the database.
struct Mark {
    schema: Arc<Schema>,
    schema_changed: bool,
    pending: u64,
}

impl State {
    fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    fn mark(&self) -> Mark {
        Mark {
            schema: Arc::clone(&self.schema),
            schema_changed: self.schema_changed,
            pending: changelog::pending(),
        }
    }

    fn set_schema(&mut self, schema: Arc<Schema>, changed: bool) {
        self.shown.store(Arc::clone(&schema));
        self.schema = schema;
        self.schema_changed = changed;
    }

    /// Rolls back to the savepoint `name` (and closes it), restoring what `mark` remembered.
    fn undo(&mut self, conn: &Connection, name: &str, mark: Mark) -> Result<(), StoreError> {
        let undone = conn
            .execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))
            .map_err(internal);
        changelog::set_pending(mark.pending);
        if !Arc::ptr_eq(&self.schema, &mark.schema) {
            // Cached statements may name tables or columns the rollback removed.
            conn.flush_prepared_statement_cache();
        }
        self.set_schema(mark.schema, mark.schema_changed);
        undone
    }

    /// Runs `f` inside a savepoint: kept when it succeeds, undone when it fails. The outer
    /// error is a failure of the savepoint itself.
    fn atomically<T, E>(
        &mut self,
        conn: &Connection,
        f: impl FnOnce(&Connection, Arc<Schema>) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        let mark = self.mark();
        conn.execute_batch(&format!("SAVEPOINT {STEP}"))
            .map_err(internal)?;
        let result = f(conn, Arc::clone(&self.schema));
        match &result {
            Ok(_) => conn
                .execute_batch(&format!("RELEASE {STEP}"))
                .map_err(internal)?,
            Err(_) => self.undo(conn, STEP, mark)?,
        }
        Ok(result)
    }

    /// Runs one schema change atomically and makes its result the transaction's schema.
    fn change_schema(
        &mut self,
        conn: &Connection,
        change: impl FnOnce(&mut SchemaChange<'_>) -> Result<(), StoreError>,
    ) -> Result<Arc<Schema>, StoreError> {
        let schema = self.atomically(conn, |conn, schema| {
            let mut schema_change = SchemaChange::new(conn, &schema);
            change(&mut schema_change)?;
            Ok::<_, StoreError>(Arc::new(schema_change.finish()?))
        })??;
        // Cached statements may name columns that are gone.
        conn.flush_prepared_statement_cache();
        self.set_schema(Arc::clone(&schema), true);
        Ok(schema)
    }

    /// After `COMMIT`: publishes the transaction's schema, wakes change-log consumers and keeps
    /// the change log within its byte budget.
    fn publish_after_commit(&self, conn: &Connection) {
        if self.schema_changed {
            // Cached statements may name columns that are gone.
            conn.flush_prepared_statement_cache();
            self.publish.counts.clear();
            self.publish.schema.store(Arc::clone(&self.schema));
        }
        announce_changes(conn, &self.publish.changes);
        (self.publish.budget)(conn);
    }

    /// Ends the transaction without committing: rolls back whatever is left of it.
    fn abort(&mut self, conn: &Connection) {
        // The deadline may be what ended it; the rollback itself must not be interrupted.
        engine::disarm_deadline();
        if !conn.is_autocommit()
            && let Err(error) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(%error, "cannot roll an interactive transaction back");
        }
        changelog::set_pending(0);
        if self.schema_changed {
            conn.flush_prepared_statement_cache();
        }
    }
}

/// Opens a transaction on the writer: called by `SqliteStore::begin`.
pub(crate) async fn begin(
    engine: &engine::Engine,
    publish: Publish,
    deadline: Option<Instant>,
) -> Result<Box<dyn Transaction>, StoreError> {
    let (commands_tx, commands_rx) = mpsc::channel::<Command>();
    let (started_tx, started_rx) = oneshot::channel::<Result<Arc<Schema>, StoreError>>();
    let status = Arc::new(AtomicU8::new(OPEN));
    let shown = Arc::new(SchemaCell(RwLock::new(publish.schema.load())));
    let job = {
        let status = Arc::clone(&status);
        let shown = Arc::clone(&shown);
        move |conn: &mut Connection| {
            serve(
                conn,
                publish,
                shown,
                commands_rx,
                started_tx,
                status,
                deadline,
            )
        }
    };
    let timed_out = || deadline.is_some_and(|deadline| Instant::now() >= deadline);
    engine
        .hold_writer(deadline, job)
        .await
        .map_err(|refused| match refused {
            engine::Refused::Expired => StoreError::TimedOut,
            engine::Refused::Closed => crate::closed(refused),
        })?;
    let started = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), started_rx)
            .await
            .map_err(|_| StoreError::TimedOut)?,
        None => started_rx.await,
    };
    // A job dropped unrun (its deadline passed in the queue, or the store closed) drops the
    // sender; dropping `commands_tx` on any error here tells a job that did start to roll back.
    let schema = match started {
        Ok(started) => started?,
        Err(_) if timed_out() => return Err(StoreError::TimedOut),
        Err(_) => return Err(crate::closed(engine::Refused::Closed)),
    };
    shown.store(schema);
    Ok(Box::new(SqliteTransaction {
        commands: commands_tx,
        shown,
        status,
        deadline,
    }))
}

/// The writer-thread side: opens the transaction, serves its commands, and always leaves the
/// connection outside any transaction when it returns.
fn serve(
    conn: &mut Connection,
    publish: Publish,
    shown: Arc<SchemaCell>,
    commands: mpsc::Receiver<Command>,
    started: oneshot::Sender<Result<Arc<Schema>, StoreError>>,
    status: Arc<AtomicU8>,
    deadline: Option<Instant>,
) {
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        let _ = started.send(Err(internal(error)));
        return;
    }
    // The writer is ours: no other schema change can commit until we end.
    let schema = publish.schema.load();
    let mut state = State {
        schema: Arc::clone(&schema),
        shown,
        schema_changed: false,
        savepoints: Vec::new(),
        deadline,
        publish,
    };
    state.shown.store(Arc::clone(&schema));
    changelog::set_pending(0);
    if started.send(Ok(schema)).is_err() {
        // `begin` gave up waiting (its deadline passed, or its caller went away).
        state.abort(conn);
        status.store(ENDED, Ordering::Release);
        return;
    }
    loop {
        let next = match deadline {
            Some(deadline) => commands
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|error| matches!(error, mpsc::RecvTimeoutError::Timeout)),
            None => commands.recv().map_err(|_| false),
        };
        let command = match next {
            Ok(command) => command,
            // Idle past the deadline: nobody may hold the writer that long.
            Err(true) => {
                status.store(TIMED_OUT, Ordering::Release);
                break;
            }
            // Dropped without commit or rollback.
            Err(false) => {
                status.store(ENDED, Ordering::Release);
                break;
            }
        };
        match command(conn, &mut state) {
            Flow::End => {
                status.store(ENDED, Ordering::Release);
                return;
            }
            Flow::Continue => {}
        }
        if state.expired() {
            status.store(TIMED_OUT, Ordering::Release);
            break;
        }
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back itself (an I/O error, a full disk).
            status.store(ENDED, Ordering::Release);
            break;
        }
    }
    state.abort(conn);
}

/// The handle a caller holds; every method is one command on the writer thread.
struct SqliteTransaction {
    commands: mpsc::Sender<Command>,
    shown: Arc<SchemaCell>,
    status: Arc<AtomicU8>,
    deadline: Option<Instant>,
}

impl SqliteTransaction {
    /// Why a command could not run: the transaction already ended.
    fn ended(&self) -> StoreError {
        let expired = self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline);
        if expired || self.status.load(Ordering::Acquire) == TIMED_OUT {
            StoreError::TimedOut
        } else {
            StoreError::Internal("the transaction has already ended".into())
        }
    }

    /// Runs `f` on the writer inside the transaction. A command that ran into the deadline
    /// answers `TimedOut` whatever it found (an interrupted rule check reads as "no match"),
    /// and one after which SQLite had rolled everything back answers `Internal`.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &mut State) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let command: Command = Box::new(move |conn, state| {
            let result = f(conn, state);
            let result = if state.expired() {
                Err(StoreError::TimedOut)
            } else if conn.is_autocommit() {
                Err(StoreError::Internal(
                    "the database rolled the transaction back".into(),
                ))
            } else {
                result
            };
            let _ = reply_tx.send(result);
            Flow::Continue
        });
        self.commands.send(command).map_err(|_| self.ended())?;
        reply_rx.await.map_err(|_| self.ended())?
    }

    /// Sends the final command (commit or rollback) and waits for its answer.
    async fn finish(&self, commit: bool) -> Result<(), StoreError> {
        let (reply_tx, reply_rx) = oneshot::channel::<Result<(), StoreError>>();
        let command: Command = Box::new(move |conn, state| {
            let _ = reply_tx.send(end(conn, state, commit));
            Flow::End
        });
        self.commands.send(command).map_err(|_| self.ended())?;
        reply_rx.await.map_err(|_| self.ended())?
    }
}

/// Commits (when asked, and still in time) or rolls back, then publishes what committed.
fn end(conn: &mut Connection, state: &mut State, commit: bool) -> Result<(), StoreError> {
    if !commit {
        state.abort(conn);
        return Ok(());
    }
    if state.expired() {
        state.abort(conn);
        return Err(StoreError::TimedOut);
    }
    if let Err(error) = conn.execute_batch("COMMIT") {
        state.abort(conn);
        return Err(internal(error));
    }
    state.publish_after_commit(conn);
    Ok(())
}

#[async_trait]
impl Transaction for SqliteTransaction {
    fn schema(&self) -> Arc<Schema> {
        self.shown.load()
    }

    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, WriteError> {
        let written = self
            .call(move |conn, state| {
                let mut ops = ops;
                state.atomically(conn, |conn, schema| {
                    records::run_ops(conn, &schema, &mut ops, None)
                })
            })
            .await;
        match written {
            Ok(result) => result,
            Err(error) => Err(WriteError { index: 0, error }),
        }
    }

    async fn get_record(
        &mut self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<Option<Record>, StoreError> {
        let id = id.to_owned();
        self.call(move |conn, _| records::get(conn, &collection, &id, filters))
            .await
    }

    async fn list_records(&mut self, query: RecordQuery) -> Result<RecordPage, StoreError> {
        self.call(move |conn, _| records::list_in(conn, &query, None))
            .await
    }

    async fn find_by_field(
        &mut self,
        collection: Arc<Collection>,
        field: &str,
        value: &str,
    ) -> Result<Option<Record>, StoreError> {
        let Some(field) = collection.field(field) else {
            return Ok(None);
        };
        let (_, filters) = crate::lookup_filters(&collection, &field.name, value);
        let query = RecordQuery {
            collection,
            filters,
            sort: Vec::new(),
            page: 1,
            per_page: 1,
            with_total: false,
        };
        let page = self
            .call(move |conn, _| records::list_in(conn, &query, None))
            .await?;
        Ok(page.items.into_iter().next())
    }

    async fn matches_unsaved(
        &mut self,
        collection: Arc<Collection>,
        data: RecordData,
        predicate: SqlFragment,
    ) -> Result<bool, StoreError> {
        self.call(move |conn, _| unsaved::matches(conn, &collection, &data, &predicate))
            .await
    }

    async fn create_collection(
        &mut self,
        collection: Collection,
    ) -> Result<Arc<Schema>, StoreError> {
        self.call(move |conn, state| {
            state.change_schema(conn, move |change| change.create(collection))
        })
        .await
    }

    async fn update_collection(
        &mut self,
        collection: Collection,
    ) -> Result<Arc<Schema>, StoreError> {
        self.call(move |conn, state| {
            state.change_schema(conn, move |change| change.update(collection))
        })
        .await
    }

    async fn delete_collection(&mut self, id: &str) -> Result<Arc<Schema>, StoreError> {
        let id = id.to_owned();
        self.call(move |conn, state| state.change_schema(conn, move |change| change.delete(&id)))
            .await
    }

    async fn truncate_collection(&mut self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.call(move |conn, state| {
            state.atomically(conn, |conn, schema| {
                let collection = schema.get_by_id(&id).ok_or(StoreError::NotFound)?;
                records::truncate(conn, &schema, collection)
            })?
        })
        .await
    }

    async fn import_collections(
        &mut self,
        collections: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Arc<Schema>, StoreError> {
        self.call(move |conn, state| {
            state.change_schema(conn, move |change| {
                change.import(collections, delete_missing)
            })
        })
        .await
    }

    async fn get_param(&mut self, key: &str) -> Result<Option<Value>, StoreError> {
        let key = key.to_owned();
        self.call(move |conn, _| system::get_param(conn, &key))
            .await
    }

    async fn set_param(&mut self, key: &str, value: Value) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.call(move |conn, state| {
            state.atomically(conn, |conn, _| system::set_param(conn, &key, &value))?
        })
        .await
    }

    async fn applied_migrations(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        self.call(move |conn, _| system::applied_migrations(conn))
            .await
    }

    async fn record_migration(&mut self, file: &str, applied_us: i64) -> Result<(), StoreError> {
        let file = file.to_owned();
        self.call(move |conn, state| {
            state.atomically(conn, |conn, _| {
                system::record_migration(conn, &file, applied_us)
            })?
        })
        .await
    }

    async fn forget_migration(&mut self, file: &str) -> Result<bool, StoreError> {
        let file = file.to_owned();
        self.call(move |conn, state| {
            state.atomically(conn, |conn, _| system::forget_migration(conn, &file))?
        })
        .await
    }

    async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.call(move |conn, state| {
            let mark = state.mark();
            conn.execute_batch(&format!("SAVEPOINT {NESTED}"))
                .map_err(internal)?;
            state.savepoints.push(mark);
            Ok(())
        })
        .await
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.call(move |conn, state| {
            if state.savepoints.is_empty() {
                return Err(no_savepoint());
            }
            conn.execute_batch(&format!("RELEASE {NESTED}"))
                .map_err(internal)?;
            state.savepoints.pop();
            Ok(())
        })
        .await
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        self.call(move |conn, state| {
            let mark = state.savepoints.pop().ok_or_else(no_savepoint)?;
            state.undo(conn, NESTED, mark)
        })
        .await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.finish(true).await
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.finish(false).await
    }
}

fn no_savepoint() -> StoreError {
    StoreError::Internal("no savepoint is open in this transaction".into())
}
