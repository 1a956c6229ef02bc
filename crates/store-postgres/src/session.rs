//! A pooled connection that knows when it is inside a transaction.
//!
//! A connection handed back to the pool in the middle of a transaction poisons the pool: the
//! next caller's statements run in someone else's transaction (or fail in an aborted one), and
//! a write's advisory lock stays held until that connection happens to commit. That happens
//! whenever a transaction does not reach its `COMMIT` or `ROLLBACK`: a `BEGIN … lock` batch
//! that times out waiting for the lock, a rollback that fails, or a caller whose future is
//! dropped (an HTTP client that went away). A [`Session`] dropped while its transaction is
//! open is closed instead, and PostgreSQL rolls the transaction back.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use deadpool_postgres::{ClientWrapper, Object};

pub(crate) struct Session {
    /// Present until the session is dropped or discarded.
    conn: Option<Object>,
    in_transaction: AtomicBool,
    /// Snapshot bytes the open transaction appended to the change log (`changelog::append`),
    /// for the byte budget's prune after the commit.
    change_bytes: AtomicU64,
}

impl Session {
    pub(crate) fn new(conn: Object) -> Self {
        Session {
            conn: Some(conn),
            in_transaction: AtomicBool::new(false),
            change_bytes: AtomicU64::new(0),
        }
    }

    /// Runs `sql`, which starts a transaction. From now until [`Session::end`] succeeds,
    /// dropping the session closes its connection.
    pub(crate) async fn begin(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.in_transaction.store(true, Ordering::Release);
        self.change_bytes.store(0, Ordering::Relaxed);
        self.client().batch_execute(sql).await
    }

    /// Like [`Session::begin`], and returns the first column of the last row the batch
    /// answered (its last statement's result, as text).
    pub(crate) async fn begin_reading(
        &self,
        sql: &str,
    ) -> Result<Option<String>, tokio_postgres::Error> {
        self.in_transaction.store(true, Ordering::Release);
        self.change_bytes.store(0, Ordering::Relaxed);
        let messages = self.client().simple_query(sql).await?;
        Ok(messages.iter().rev().find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        }))
    }

    /// Runs `sql`, which ends the transaction (`COMMIT` or `ROLLBACK` last); once it
    /// succeeded the connection may go back to the pool.
    pub(crate) async fn end(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.client().batch_execute(sql).await?;
        self.in_transaction.store(false, Ordering::Release);
        Ok(())
    }

    /// Counts `bytes` of snapshots appended to the change log by the open transaction.
    pub(crate) fn add_change_bytes(&self, bytes: u64) {
        self.change_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The snapshot bytes the last transaction appended (counted since its `begin`).
    pub(crate) fn change_bytes(&self) -> u64 {
        self.change_bytes.load(Ordering::Relaxed)
    }

    /// Closes the connection instead of returning it to the pool (the server rolls back
    /// whatever it was doing).
    pub(crate) fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = Object::take(conn);
        }
    }

    fn client(&self) -> &ClientWrapper {
        // `conn` is only taken by `discard` and `drop`, which consume the session.
        match self.conn.as_ref() {
            Some(conn) => conn,
            None => unreachable!("a session's connection is present until it is dropped"),
        }
    }
}

impl Deref for Session {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        self.client()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.in_transaction.load(Ordering::Acquire)
            && let Some(conn) = self.conn.take()
        {
            let _ = Object::take(conn);
        }
    }
}
