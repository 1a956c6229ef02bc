//! Interactive transactions on PostgreSQL (what JS hooks and migrations use): one pooled
//! connection inside `BEGIN`, holding the cluster-wide writer lock like every write.
//!
//! PostgreSQL aborts a whole transaction when one statement fails; the port wants a failed
//! call to leave the transaction as it was. So every call runs inside a savepoint of its own,
//! rolled back when the call fails. Nested savepoints of the caller sit on the same stack.
//!
//! The deadline is kept three ways: each call is bounded by it (a call still running then
//! closes the connection, which rolls everything back on the server); the server's own
//! `statement_timeout` and `lock_timeout` are set to it; and a watchdog terminates the
//! session at the deadline when its owner is idle, stuck or gone, releasing the lock.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use domain::collection::{Collection, Schema};
use domain::record::{Record, RecordData};
use domain::sql::SqlFragment;
use domain::store::Transaction;
use domain::{RecordPage, RecordQuery, StoreError, WriteError, WriteOp, WriteResult};
use serde_json::Value;

use crate::schema_change::SchemaChange;
use crate::sql::internal;
use crate::{CHANNEL, Conn, Publish, SchemaEdit, begin_write, changelog, records, system};

pub(crate) struct PgTransaction {
    conn: Option<Conn>,
    publish: Publish,
    deadline: Option<Instant>,
    schema: Arc<Schema>,
    /// The schema at each open savepoint of the caller, with `wrote` and `schema_changed`.
    savepoints: Vec<(Arc<Schema>, bool, Option<u64>)>,
    /// Whether records or params were written (wake the other nodes at commit).
    wrote: bool,
    /// The schema version this transaction's last schema change commits, if it changed the
    /// schema (published at commit).
    schema_changed: Option<u64>,
    /// Why the transaction is over, once it is.
    ended: Option<Ended>,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone, Copy)]
enum Ended {
    TimedOut,
    Broken,
}

impl Ended {
    fn error(self) -> StoreError {
        match self {
            Ended::TimedOut => StoreError::TimedOut,
            Ended::Broken => StoreError::Internal("the transaction has ended".into()),
        }
    }
}

/// Runs `$body` (borrowing `$conn`) as one atomic call of the transaction.
macro_rules! call {
    ($tx:ident, |$conn:ident| $body:expr) => {
        async {
            $tx.check()?;
            let deadline = $tx.deadline;
            let outcome = {
                let $conn: &Conn = match $tx.conn.as_ref() {
                    Some(conn) => conn,
                    None => return Err(Ended::Broken.error()),
                };
                let run = async {
                    $conn
                        .batch_execute("SAVEPOINT plinth_call")
                        .await
                        .map_err(internal)?;
                    let result = $body.await;
                    match &result {
                        Ok(_) => $conn
                            .batch_execute("RELEASE SAVEPOINT plinth_call")
                            .await
                            .map_err(internal)?,
                        Err(StoreError::TimedOut) => {}
                        Err(_) => $conn
                            .batch_execute(
                                "ROLLBACK TO SAVEPOINT plinth_call; RELEASE SAVEPOINT plinth_call",
                            )
                            .await
                            .map_err(internal)?,
                    }
                    result
                };
                match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline.into(), run)
                        .await
                        .unwrap_or(Err(StoreError::TimedOut)),
                    None => run.await,
                }
            };
            if matches!(outcome, Err(StoreError::TimedOut)) {
                $tx.end(Ended::TimedOut);
            }
            outcome
        }
        .await
    };
}

impl PgTransaction {
    pub(crate) async fn begin(
        conn: Conn,
        publish: Publish,
        deadline: Option<Instant>,
    ) -> Result<Box<dyn Transaction>, StoreError> {
        let started = async {
            begin_write(&conn, deadline).await?;
            let row = conn
                .query_one("SELECT pg_backend_pid(), CAST(now() AS text)", &[])
                .await
                .map_err(internal)?;
            let pid: i32 = row.try_get(0).map_err(internal)?;
            let started: String = row.try_get(1).map_err(internal)?;
            let schema = Arc::new(system::load_schema(&conn).await?);
            Ok::<_, StoreError>((pid, started, schema))
        };
        let (pid, started, schema) = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline.into(), started).await {
                Ok(result) => result?,
                Err(_) => {
                    conn.discard();
                    return Err(StoreError::TimedOut);
                }
            },
            None => started.await?,
        };
        let watchdog = deadline.map(|deadline| {
            let pool = publish.pool.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline.into()).await;
                // Only this transaction: the connection may since serve someone else.
                if let Ok(conn) = pool.get().await {
                    let _ = conn
                        .execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE pid = $1 AND CAST(xact_start AS text) = $2",
                            &[&pid, &started],
                        )
                        .await;
                }
            })
        });
        Ok(Box::new(PgTransaction {
            conn: Some(conn),
            publish,
            deadline,
            schema,
            savepoints: Vec::new(),
            wrote: false,
            schema_changed: None,
            ended: None,
            watchdog,
        }))
    }

    /// Fails when the transaction is over or its deadline passed (which ends it).
    fn check(&mut self) -> Result<(), StoreError> {
        if let Some(ended) = self.ended {
            return Err(ended.error());
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.end(Ended::TimedOut);
            return Err(StoreError::TimedOut);
        }
        Ok(())
    }

    /// Ends the transaction by closing its connection (the server rolls it back).
    fn end(&mut self, why: Ended) {
        self.ended = Some(why);
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if let Some(conn) = self.conn.take() {
            conn.discard();
        }
    }

    async fn edit_schema(&mut self, edit: SchemaEdit) -> Result<Arc<Schema>, StoreError> {
        let current = Arc::clone(&self.schema);
        let schema: Result<(u64, Arc<Schema>), StoreError> = call!(self, |conn| async {
            let mut change = SchemaChange::new(conn, &current);
            edit.apply(&mut change).await?;
            let schema = Arc::new(change.finish().await?);
            let version = changelog::bump_schema(conn).await?;
            Ok((version, schema))
        });
        let (version, schema) = schema?;
        self.schema = Arc::clone(&schema);
        self.schema_changed = Some(version);
        Ok(schema)
    }

    async fn savepoint_sql(&mut self, sql: String) -> Result<(), StoreError> {
        self.check()?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(Ended::Broken.error());
        };
        let run = conn.batch_execute(&sql);
        let result = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), run)
                .await
                .unwrap_or_else(|_| Ok(())),
            None => run.await,
        };
        if let Err(error) = result {
            self.end(Ended::Broken);
            return Err(internal(error));
        }
        self.check()
    }
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if let Some(conn) = self.conn.take() {
            // Roll back off the caller's path; a connection that cannot is closed instead.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if conn.end("ROLLBACK").await.is_err() {
                            conn.discard();
                        }
                    });
                }
                Err(_) => {
                    conn.discard();
                }
            }
        }
    }
}

#[async_trait]
impl Transaction for PgTransaction {
    fn schema(&self) -> Arc<Schema> {
        Arc::clone(&self.schema)
    }

    async fn write(&mut self, ops: Vec<WriteOp>) -> Result<Vec<WriteResult>, WriteError> {
        let schema = Arc::clone(&self.schema);
        // The failing operation's index survives the savepoint's rollback.
        let mut failed_at = 0;
        let failed = &mut failed_at;
        let result: Result<Vec<WriteResult>, StoreError> = call!(self, |conn| async {
            records::run_ops(conn, &schema, ops).await.map_err(|e| {
                *failed = e.index;
                e.error
            })
        });
        match result {
            Ok(results) => {
                self.wrote |= !results.is_empty();
                Ok(results)
            }
            Err(error) => Err(WriteError {
                index: if self.ended.is_some() { 0 } else { failed_at },
                error,
            }),
        }
    }

    async fn get_record(
        &mut self,
        collection: Arc<Collection>,
        id: &str,
        filters: Vec<SqlFragment>,
    ) -> Result<Option<Record>, StoreError> {
        let filter = SqlFragment::and_all(filters);
        call!(self, |conn| records::load(
            conn,
            &collection,
            id,
            filter.as_ref()
        ))
    }

    async fn list_records(&mut self, query: RecordQuery) -> Result<RecordPage, StoreError> {
        call!(self, |conn| records::list(conn, &query, true))
    }

    async fn find_by_field(
        &mut self,
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
            .push_param(domain::SqlValue::Text(value.to_owned()));
        let query = RecordQuery {
            collection,
            filters: vec![filter],
            sort: Vec::new(),
            page: 1,
            per_page: 1,
            with_total: false,
        };
        let page = self.list_records(query).await?;
        Ok(page.items.into_iter().next())
    }

    async fn matches_unsaved(
        &mut self,
        collection: Arc<Collection>,
        data: RecordData,
        predicate: SqlFragment,
    ) -> Result<bool, StoreError> {
        call!(self, |conn| crate::matches_unsaved(
            conn,
            &collection,
            &data,
            &predicate
        ))
    }

    async fn create_collection(
        &mut self,
        collection: Collection,
    ) -> Result<Arc<Schema>, StoreError> {
        self.edit_schema(SchemaEdit::Create(collection)).await
    }

    async fn update_collection(
        &mut self,
        collection: Collection,
    ) -> Result<Arc<Schema>, StoreError> {
        self.edit_schema(SchemaEdit::Update(collection)).await
    }

    async fn delete_collection(&mut self, id: &str) -> Result<Arc<Schema>, StoreError> {
        self.edit_schema(SchemaEdit::Delete(id.to_owned())).await
    }

    async fn truncate_collection(&mut self, id: &str) -> Result<(), StoreError> {
        let schema = Arc::clone(&self.schema);
        let collection = schema.get_by_id(id).ok_or(StoreError::NotFound)?;
        call!(self, |conn| records::truncate(conn, &schema, collection))?;
        self.wrote = true;
        Ok(())
    }

    async fn import_collections(
        &mut self,
        collections: Vec<Collection>,
        delete_missing: bool,
    ) -> Result<Arc<Schema>, StoreError> {
        self.edit_schema(SchemaEdit::Import(collections, delete_missing))
            .await
    }

    async fn get_param(&mut self, key: &str) -> Result<Option<Value>, StoreError> {
        call!(self, |conn| system::get_param(conn, key))
    }

    async fn set_param(&mut self, key: &str, value: Value) -> Result<(), StoreError> {
        let text = value.to_string();
        call!(self, |conn| system::set_param_text(conn, key, &text))?;
        // The commit wakes the other nodes, whose caches then see the new params version.
        self.wrote = true;
        Ok(())
    }

    async fn applied_migrations(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        call!(self, |conn| system::applied_migrations(conn))
    }

    async fn record_migration(&mut self, file: &str, applied_us: i64) -> Result<(), StoreError> {
        call!(self, |conn| system::record_migration(
            conn, file, applied_us
        ))
    }

    async fn forget_migration(&mut self, file: &str) -> Result<bool, StoreError> {
        call!(self, |conn| system::forget_migration(conn, file))
    }

    async fn savepoint(&mut self) -> Result<(), StoreError> {
        let name = format!("plinth_sp_{}", self.savepoints.len());
        self.savepoint_sql(format!("SAVEPOINT {name}")).await?;
        self.savepoints
            .push((Arc::clone(&self.schema), self.wrote, self.schema_changed));
        Ok(())
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoints.is_empty() {
            return Err(StoreError::Internal("no savepoint is open".into()));
        }
        let name = format!("plinth_sp_{}", self.savepoints.len() - 1);
        self.savepoint_sql(format!("RELEASE SAVEPOINT {name}"))
            .await?;
        self.savepoints.pop();
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        if self.savepoints.is_empty() {
            return Err(StoreError::Internal("no savepoint is open".into()));
        }
        let name = format!("plinth_sp_{}", self.savepoints.len() - 1);
        self.savepoint_sql(format!(
            "ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"
        ))
        .await?;
        if let Some((schema, wrote, schema_changed)) = self.savepoints.pop() {
            self.schema = schema;
            self.wrote = wrote;
            self.schema_changed = schema_changed;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.check()?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(Ended::Broken.error());
        };
        let wake = match (self.schema_changed.is_some(), self.wrote) {
            (true, _) => format!("NOTIFY {CHANNEL}, 's'; "),
            (false, true) => format!("NOTIFY {CHANNEL}, 'c'; "),
            _ => String::new(),
        };
        let sql = format!("{wake}COMMIT");
        let run = conn.end(&sql);
        let committed = match self.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), run)
                .await
                .map_err(|_| StoreError::TimedOut)
                .and_then(|r| r.map_err(internal)),
            None => run.await.map_err(internal),
        };
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if let Err(error) = committed {
            self.end(Ended::Broken);
            return Err(error);
        }
        if let Some(version) = self.schema_changed {
            self.publish
                .publish_schema(version, Arc::clone(&self.schema));
        }
        if let Some(conn) = self.conn.as_ref()
            && let Err(error) = self.publish.refresh(conn).await
        {
            tracing::warn!(%error, "cannot read the change-log head after a commit");
        }
        // The connection goes back to the pool, outside any transaction.
        self.conn.take();
        Ok(())
    }

    async fn rollback(mut self: Box<Self>) -> Result<(), StoreError> {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
        if let Some(ended) = self.ended {
            return Err(ended.error());
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.end(Ended::TimedOut);
            return Err(StoreError::TimedOut);
        }
        if let Some(conn) = self.conn.take()
            && conn.end("ROLLBACK").await.is_err()
        {
            conn.discard();
        }
        Ok(())
    }
}
