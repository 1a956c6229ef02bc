//! The thread layout that keeps SQLite off the async runtime: one writer thread owning the only
//! write connection, and a few reader threads each owning a read-only connection. Async code
//! sends a boxed closure over a channel and awaits the answer on a oneshot, so no blocking call
//! ever runs on a tokio worker. One writer means writes never contend for SQLite's lock.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

/// Work for a connection thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The engine stopped (closed, or its thread died); the job was not run.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the database store is closed")]
pub(crate) struct Closed;

pub(crate) struct Engine {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// One queue shared by every reader thread, so an idle reader picks up the next job.
    readers: Mutex<Option<mpsc::Sender<Job>>>,
    /// One receiver per thread; each completes when its thread has dropped its connection.
    exits: Mutex<Vec<oneshot::Receiver<()>>>,
}

impl Engine {
    /// Starts the threads, moving each connection into its own.
    pub(crate) fn start(writer: Connection, readers: Vec<Connection>) -> std::io::Result<Engine> {
        for conn in std::iter::once(&writer).chain(readers.iter()) {
            register_math_functions(conn).map_err(std::io::Error::other)?;
        }
        let mut exits = Vec::new();
        let (writer_tx, writer_rx) = mpsc::channel::<Job>();
        let (exit_tx, exit_rx) = oneshot::channel();
        exits.push(exit_rx);
        thread::Builder::new()
            .name("plinth-sqlite-writer".into())
            .spawn(move || {
                let mut conn = writer;
                while let Ok(job) = writer_rx.recv() {
                    run_job(&mut conn, job);
                }
                drop(conn);
                let _ = exit_tx.send(());
            })?;

        let (reader_tx, reader_rx) = mpsc::channel::<Job>();
        let reader_rx = Arc::new(Mutex::new(reader_rx));
        for (n, reader) in readers.into_iter().enumerate() {
            let queue = Arc::clone(&reader_rx);
            let (exit_tx, exit_rx) = oneshot::channel();
            exits.push(exit_rx);
            thread::Builder::new()
                .name(format!("plinth-sqlite-reader-{n}"))
                .spawn(move || {
                    let mut conn = reader;
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = lock(&queue).recv();
                        match job {
                            Ok(job) => run_job(&mut conn, job),
                            Err(_) => break,
                        }
                    }
                    drop(conn);
                    let _ = exit_tx.send(());
                })?;
        }
        Ok(Engine {
            writer: Mutex::new(Some(writer_tx)),
            readers: Mutex::new(Some(reader_tx)),
            exits: Mutex::new(exits),
        })
    }

    /// Runs `f` on the writer thread.
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<R, Closed> {
        submit(&self.writer, f).await
    }

    /// Runs `f` on the next free reader thread.
    pub(crate) async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<R, Closed> {
        submit(&self.readers, f).await
    }

    /// Stops accepting jobs and waits until every thread has finished its queue and closed
    /// its connection.
    pub(crate) async fn shutdown(&self) {
        self.stop();
        let exits = std::mem::take(&mut *lock(&self.exits));
        for exit in exits {
            // An error means the thread is already gone, which is what we wait for.
            let _ = exit.await;
        }
    }

    /// Closes the queues; threads exit once the jobs already queued have run.
    fn stop(&self) {
        lock(&self.readers).take();
        lock(&self.writer).take();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Threads are not joined here: a drop may happen on an async worker, which must not
        // block. Closing the queues is enough for them to finish on their own.
        self.stop();
    }
}

async fn submit<R: Send + 'static>(
    queue: &Mutex<Option<mpsc::Sender<Job>>>,
    f: impl FnOnce(&mut Connection) -> R + Send + 'static,
) -> Result<R, Closed> {
    let (reply_tx, reply_rx) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        let _ = reply_tx.send(f(conn));
    });
    {
        let guard = lock(queue);
        let sender = guard.as_ref().ok_or(Closed)?;
        sender.send(job).map_err(|_| Closed)?;
    }
    reply_rx.await.map_err(|_| Closed)
}

/// Runs one job, surviving a panic in it: the reply sender is dropped (the caller sees
/// `Closed`), any open transaction is rolled back, and the thread keeps serving.
fn run_job(conn: &mut Connection, job: Job) {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(conn)));
    if outcome.is_err() {
        tracing::error!("a database job panicked; its transaction was rolled back");
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// The SQL math functions filters and rules emit (`geoDistance` becomes a great-circle
/// formula). The bundled SQLite is built without them; these follow SQLite's own math
/// functions: numeric text is converted, anything else (and a NaN result) is NULL.
pub(crate) fn register_math_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;

    type Unary = fn(f64) -> f64;
    let unary: [(&str, Unary); 11] = [
        ("acos", f64::acos),
        ("asin", f64::asin),
        ("atan", f64::atan),
        ("cos", f64::cos),
        ("sin", f64::sin),
        ("tan", f64::tan),
        ("sqrt", f64::sqrt),
        ("radians", f64::to_radians),
        ("degrees", f64::to_degrees),
        ("exp", f64::exp),
        ("ln", f64::ln),
    ];
    for (name, function) in unary {
        conn.create_scalar_function(
            name,
            1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            move |ctx| {
                let x = match ctx.get_raw(0) {
                    ValueRef::Integer(i) => i as f64,
                    ValueRef::Real(r) => r,
                    ValueRef::Text(t) => match std::str::from_utf8(t)
                        .ok()
                        .and_then(|t| t.trim().parse::<f64>().ok())
                    {
                        Some(x) => x,
                        None => return Ok(None),
                    },
                    _ => return Ok(None),
                };
                let y = function(x);
                Ok(if y.is_nan() { None } else { Some(y) })
            },
        )?;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod math_tests {
    use super::*;

    #[test]
    fn math_functions_follow_sqlite() {
        let conn = Connection::open_in_memory().expect("memory db");
        register_math_functions(&conn).expect("registered");
        let value: Option<f64> = conn
            .query_row("SELECT acos(cos(radians('60')))", [], |row| row.get(0))
            .expect("query");
        let expected = 60f64.to_radians();
        assert!(
            value.is_some_and(|v| (v - expected).abs() < 1e-9),
            "{value:?}"
        );
        let nan: Option<f64> = conn
            .query_row("SELECT acos(2), sqrt('abc')", [], |row| row.get(0))
            .expect("query");
        assert_eq!(nan, None);
    }
}
