//! The thread layout that keeps SQLite off the async runtime: one writer thread owning the only
//! write connection, and reader threads each owning a read-only connection. Async code sends a
//! boxed closure over a bounded channel and awaits the answer on a oneshot, so no blocking call
//! ever runs on a tokio worker. One writer means writes never contend for SQLite's lock.
//!
//! Readers come in two lanes. The point lane (two threads) runs only reads whose cost no client
//! controls: a record by primary key, alone or with predicates that read only that row (the
//! auth-record lookup behind every token; view, auth and batch rule checks of row-local rules), an
//! exact lookup through a single-column unique index (the identity lookup of every password and OTP
//! sign-in), the server's bookkeeping lists keyed by a unique index (a record's sign-in origins,
//! read after each sign-in), a setting, the change log by sequence. The query lane (sized to the
//! machine) runs everything a client's input can make expensive: lists (client filters and sorts),
//! reads by key whose rule reads other rows (relation hops, `@collection` joins) or matches with
//! `LIKE`, view collections, lookups no unique index serves, rule checks of would-be rows,
//! view-schema inference. `lib.rs` decides the lane per call. Separate lanes rather than a priority
//! queue: a priority queue still lets slow queries occupy every thread, so a short read would wait
//! for one to finish; with a lane of its own a short read never waits behind client-controlled work
//! at all.
//!
//! Point reads need not wait for a thread at all: a caller borrows one of a few spare read
//! connections and runs the read itself ([`Engine::read_inline`]), falling back to the point
//! lane when all are borrowed. These reads take microseconds, and on a busy core the switch to a
//! lane thread and back cost more than the read.
//!
//! Read connections open when first needed: a lane thread opens its own before its first job,
//! and an inline connection is opened by the first caller that finds every opened one borrowed.
//! Each costs about 135 KiB (SQLite's lookaside, its connection state and schema), and an idle
//! server that has served a few requests needs one or two of the seven.
//!
//! Every job may carry a deadline. A job still queued when it passes is answered without
//! running; a statement running when it passes is interrupted by SQLite's progress handler,
//! which each connection thread installs once and which reads the running job's deadline from
//! a thread-local, so arming it costs nothing per job. The channels are bounded: once full, a
//! sender waits (asynchronously) for room, and gives up at its deadline.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::{Checkpointer, Checkpoints};

/// Work for a connection thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Opens one more read connection, configured like every other (see `lib.rs`).
pub(crate) type Opener = Arc<dyn Fn() -> rusqlite::Result<Connection> + Send + Sync>;

/// The read connections of an engine: how many of each kind, opened when first needed.
pub(crate) struct Readers {
    /// Threads of the query lane.
    pub(crate) queries: usize,
    /// Threads of the point lane.
    pub(crate) points: usize,
    /// Connections a caller borrows for a point read on its own thread.
    pub(crate) inline: usize,
    pub(crate) open: Opener,
}

/// The inline connections: those opened and free, and how many may still be opened.
struct Inline {
    free: Vec<Connection>,
    unopened: usize,
    /// Set when the engine stops: nothing is lent or opened any more.
    stopped: bool,
}

/// Why a job did not run, or did not run to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// The engine stopped (closed, or its thread died).
    #[error("the database store is closed")]
    Closed,
    /// The job's deadline passed while it waited for room in the queue or for a thread.
    #[error("the query timed out before it ran")]
    Expired,
}

/// Which reader threads run a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Reads whose cost a client's filter or rule decides.
    Query,
    /// Reads by key whose cost no client controls.
    Point,
}

/// Jobs each queue holds before senders wait for room. Waiting senders are request futures,
/// each bounded by its deadline; the bound keeps the boxed jobs themselves from piling up.
const QUEUE_CAPACITY: usize = 256;

/// How many SQLite virtual-machine steps pass between two deadline checks.
const PROGRESS_STEPS: std::ffi::c_int = 1000;

thread_local! {
    /// The deadline of the job running on this connection thread.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Set when the progress handler interrupted a statement of the running job.
    static INTERRUPTED: Cell<bool> = const { Cell::new(false) };
}

pub(crate) struct Engine {
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    /// One queue per lane, shared by the lane's threads, so an idle reader picks up the next job.
    queries: Mutex<Option<mpsc::Sender<Job>>>,
    points: Mutex<Option<mpsc::Sender<Job>>>,
    /// How many threads of each lane are running a job (query, point).
    busy: [Arc<AtomicUsize>; 2],
    /// Whether the writer is running a job, and the threads of each lane (writer, query,
    /// point), for [`Engine::stats`].
    writer_busy: Arc<AtomicUsize>,
    threads: [usize; 3],
    /// One receiver per thread; each completes when its thread has dropped its connection.
    exits: Mutex<Vec<oneshot::Receiver<()>>>,
    /// Read connections a caller borrows to run a point read on its own thread (see
    /// [`Engine::read_inline`]); emptied when the engine stops.
    inline: Mutex<Inline>,
    /// Opens a read connection (with the functions and the interrupt every one gets).
    open_reader: Opener,
    /// The WAL checkpoints beside the writer (see `checkpoint.rs`).
    checkpoints: Arc<Checkpoints>,
    /// Held until the inline connections are gone (the last field, so dropped after them);
    /// every thread holds it until it has closed its own connection.
    _db_file: DbFile,
}

/// The database file, opened once more outside SQLite: the checkpoint thread syncs what it
/// copied into the file (see `checkpoint.rs`). It must stay open until every connection of the
/// engine has closed: closing any descriptor of a file drops all the process's POSIX locks on
/// it, SQLite's included (SQLite avoids that for its own descriptors, but cannot know of this
/// one). So each thread and the engine hold a share, and the file closes with the last.
pub(crate) struct DbFiles {
    pub(crate) db: std::fs::File,
}

pub(crate) type DbFile = Arc<DbFiles>;

impl Engine {
    /// Starts the threads: the writer with its connection, every reader thread to open its own
    /// when its first job comes.
    pub(crate) fn start(
        mut writer: Connection,
        readers: Readers,
        checkpointer: Checkpointer,
        db_file: DbFile,
        auth_cache: &Arc<crate::auth_cache::AuthCache>,
    ) -> std::io::Result<Engine> {
        prepare(&mut writer).map_err(std::io::Error::other)?;
        let open = readers.open;
        let open_reader: Opener = Arc::new(move || {
            let mut conn = open()?;
            prepare(&mut conn)?;
            Ok(conn)
        });
        let queries = readers.queries.max(1);
        let points = readers.points.max(1);
        let threads = [1, queries, points];
        let mut exits = Vec::new();
        let checkpoints =
            Checkpoints::start(&mut writer, checkpointer, &db_file, auth_cache, &mut exits)?;
        let busy = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        let (writer_tx, writer_rx) = mpsc::channel::<Job>(QUEUE_CAPACITY);
        let writer_rx = Arc::new(Mutex::new(writer_rx));
        let writer_busy = Arc::new(AtomicUsize::new(0));
        spawn_lane(
            "writer",
            vec![Slot::Open(writer)],
            writer_rx,
            &writer_busy,
            &db_file,
            &mut exits,
        )?;
        let later = |count: usize| {
            (0..count)
                .map(|_| Slot::Later(Arc::clone(&open_reader)))
                .collect::<Vec<_>>()
        };
        let (queries_tx, queries_rx) = mpsc::channel::<Job>(QUEUE_CAPACITY);
        spawn_lane(
            "reader",
            later(queries),
            Arc::new(Mutex::new(queries_rx)),
            &busy[0],
            &db_file,
            &mut exits,
        )?;
        let (points_tx, points_rx) = mpsc::channel::<Job>(QUEUE_CAPACITY);
        spawn_lane(
            "point",
            later(points),
            Arc::new(Mutex::new(points_rx)),
            &busy[1],
            &db_file,
            &mut exits,
        )?;
        Ok(Engine {
            writer: Mutex::new(Some(writer_tx)),
            queries: Mutex::new(Some(queries_tx)),
            points: Mutex::new(Some(points_tx)),
            busy,
            writer_busy,
            threads,
            exits: Mutex::new(exits),
            inline: Mutex::new(Inline {
                free: Vec::new(),
                unopened: readers.inline.max(1),
                stopped: false,
            }),
            open_reader,
            checkpoints,
            _db_file: db_file,
        })
    }

    /// Runs a point read on the caller's thread with a borrowed read connection, saving the
    /// two thread switches of a lane round trip (on a busy single core they cost more than the
    /// read itself). Only for reads the point lane would run, whose cost no client controls
    /// (a row by primary key with predicates that read only that row): they take microseconds,
    /// so blocking an async worker for them is like any other short computation. Hands `f`
    /// back when no connection is free (every one is borrowed, or the engine stopped); the
    /// caller then queues it on the point lane.
    ///
    /// The first caller to find every opened connection borrowed, while fewer than the
    /// configured number are open, opens one more (once per connection for the engine's life).
    pub(crate) fn read_inline<R, F: FnOnce(&mut Connection) -> R>(&self, f: F) -> Result<R, F> {
        let mut conn = {
            let mut inline = lock(&self.inline);
            if inline.stopped {
                return Err(f);
            }
            match inline.free.pop() {
                Some(conn) => conn,
                None if inline.unopened > 0 => {
                    inline.unopened -= 1;
                    drop(inline);
                    match (self.open_reader)() {
                        Ok(conn) => conn,
                        Err(error) => {
                            tracing::error!(%error, "cannot open a database read connection");
                            lock(&self.inline).unopened += 1;
                            return Err(f);
                        }
                    }
                }
                None => return Err(f),
            }
        };
        let result = f(&mut conn);
        let mut inline = lock(&self.inline);
        // After `stop`, the connection closes here instead of going back.
        if !inline.stopped {
            inline.free.push(conn);
        }
        Ok(result)
    }

    /// Runs `f` on the writer thread, without a deadline (schema changes, pruning).
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<R, Refused> {
        submit(&self.writer, None, f).await.map(|(r, _)| r)
    }

    /// Runs `f` on the writer thread before `deadline`; also says whether a statement of `f`
    /// was interrupted because the deadline passed.
    pub(crate) async fn write_until<R: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<(R, bool), Refused> {
        submit(&self.writer, deadline, f).await
    }

    /// Queues `f` for the writer thread and returns once it is queued, without waiting for it
    /// to run: for a job that holds the writer and talks to its caller over its own channels
    /// (an interactive transaction). Past `deadline`, a job still queued is dropped unrun, and
    /// statements of a running one are interrupted.
    pub(crate) async fn hold_writer(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Connection) + Send + 'static,
    ) -> Result<(), Refused> {
        enqueue(&self.writer, deadline, f).await.map(drop)
    }

    /// Runs `f` on the next free reader of `lane` before `deadline`; also says whether a
    /// statement of `f` was interrupted because the deadline passed.
    pub(crate) async fn read<R: Send + 'static>(
        &self,
        lane: Lane,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<(R, bool), Refused> {
        let queue = match lane {
            Lane::Query => &self.queries,
            Lane::Point => &self.points,
        };
        submit(queue, deadline, f).await
    }

    /// How many threads of `lane` are running a job right now (tests wait on it to know a lane
    /// is fully held).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn busy(&self, lane: Lane) -> usize {
        let counter = match lane {
            Lane::Query => &self.busy[0],
            Lane::Point => &self.busy[1],
        };
        counter.load(Ordering::Relaxed)
    }

    /// Checkpoints run so far (see `Checkpoints::ran`).
    #[cfg(test)]
    pub(crate) fn checkpoints_ran(&self) -> [u64; 3] {
        self.checkpoints.ran()
    }

    /// Syncs of the database file by the checkpoint thread (see `checkpoint.rs`).
    #[cfg(test)]
    pub(crate) fn checkpoints_synced(&self) -> u64 {
        self.checkpoints.synced()
    }

    /// Jobs waiting and running per queue (see [`domain::Store::stats`]).
    pub(crate) fn stats(&self) -> domain::store::StoreStats {
        let queued = |queue: &Mutex<Option<mpsc::Sender<Job>>>| {
            lock(queue).as_ref().map_or(0, |sender| {
                (sender.max_capacity() - sender.capacity()) as u64
            })
        };
        let lanes = [
            ("writer", &self.writer, &self.writer_busy, self.threads[0]),
            ("query", &self.queries, &self.busy[0], self.threads[1]),
            ("point", &self.points, &self.busy[1], self.threads[2]),
        ];
        domain::store::StoreStats {
            queues: lanes
                .into_iter()
                .map(|(name, queue, busy, threads)| domain::store::QueueStats {
                    name,
                    queued: queued(queue),
                    busy: busy.load(Ordering::Relaxed) as u64,
                    threads: threads as u64,
                })
                .collect(),
        }
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
        lock(&self.inline).stop();
        lock(&self.queries).take();
        lock(&self.points).take();
        lock(&self.writer).take();
        self.checkpoints.stop();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Threads are not joined here: a drop may happen on an async worker, which must not
        // block. Closing the queues is enough for them to finish on their own.
        self.stop();
    }
}

impl Inline {
    /// Closes the free connections, and lets no more open or come back.
    fn stop(&mut self) {
        self.free.clear();
        self.stopped = true;
    }
}

/// A lane thread's connection: open from the start (the writer's), or opened before the
/// thread's first job.
enum Slot {
    Open(Connection),
    Later(Opener),
}

/// The functions and the deadline interrupt every connection of the engine has.
fn prepare(conn: &mut Connection) -> rusqlite::Result<()> {
    register_math_functions(conn)?;
    install_interrupt(conn)
}

/// Starts one thread per connection, all taking jobs from `queue`.
fn spawn_lane(
    name: &str,
    connections: Vec<Slot>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    busy: &Arc<AtomicUsize>,
    db_file: &DbFile,
    exits: &mut Vec<oneshot::Receiver<()>>,
) -> std::io::Result<()> {
    // The lane's metrics label; every job's run time is recorded under it (a writer job is one
    // transaction).
    let lane: &'static str = match name {
        "writer" => "writer",
        "point" => "point",
        _ => "query",
    };
    for (n, conn) in connections.into_iter().enumerate() {
        let queue = Arc::clone(&queue);
        let busy = Arc::clone(busy);
        let db_file = Arc::clone(db_file);
        let (exit_tx, exit_rx) = oneshot::channel();
        exits.push(exit_rx);
        thread::Builder::new()
            .name(format!("plinth-sqlite-{name}-{n}"))
            .spawn(move || {
                let mut slot = conn;
                schedule_as_batch();
                loop {
                    // The lock is held only while waiting for the next job.
                    let job = lock(&queue).blocking_recv();
                    match job {
                        Some(job) => {
                            if let Slot::Later(open) = &slot {
                                match open() {
                                    Ok(conn) => slot = Slot::Open(conn),
                                    Err(error) => {
                                        // The job is dropped unrun: its caller sees the store
                                        // refuse it. The next job tries again.
                                        tracing::error!(
                                            %error,
                                            "cannot open a database read connection"
                                        );
                                        continue;
                                    }
                                }
                            }
                            let Slot::Open(conn) = &mut slot else {
                                continue;
                            };
                            busy.fetch_add(1, Ordering::Relaxed);
                            let started = Instant::now();
                            run_job(conn, job);
                            metrics::histogram!("plinth_store_job_seconds", "lane" => lane)
                                .record(started.elapsed().as_secs_f64());
                            busy.fetch_sub(1, Ordering::Relaxed);
                        }
                        None => break,
                    }
                }
                drop(slot);
                drop(db_file);
                let _ = exit_tx.send(());
            })?;
    }
    Ok(())
}

/// Puts the calling connection thread under Linux's `SCHED_BATCH` policy: same share of the
/// CPU as any thread of the same nice value, but a job handed to it does not preempt the async
/// worker that queued it. The worker then goes on answering the requests it already holds
/// (queueing their jobs too) before the connection thread runs, so the writer finds several
/// writes waiting and commits them as one group, and a reader runs several queued reads in a
/// row instead of switching threads for each. On a machine with an idle core the thread runs
/// there at once, as before. Measured on one core (the benchmark's setting): 77 µs of CPU per
/// record create instead of 143, because group commits held 1.2 writes on average without it.
///
/// Only when the process runs at nice 0: setting the policy also sets the thread's nice
/// value, and an operator's `nice` must not be undone. Elsewhere (and if Linux refuses), the
/// thread keeps the default policy.
pub(crate) fn schedule_as_batch() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        if process_nice() != Some(0) {
            return;
        }
        // The library maps 0-100 onto nice 19 to -20; 48 is nice 0.
        let Ok(nice_zero) = thread_priority::ThreadPriorityValue::try_from(48u8) else {
            return;
        };
        let applied = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Crossplatform(nice_zero),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
        );
        if let Err(error) = applied {
            tracing::debug!(?error, "cannot put a database thread under SCHED_BATCH");
        }
    }
}

/// The process's nice value, from `/proc/self/stat`.
#[cfg(target_os = "linux")]
pub(crate) fn process_nice() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces; nice is the
    // 19th field of the line, the 17th after the name.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(16)?.parse().ok()
}

async fn submit<R: Send + 'static>(
    queue: &Mutex<Option<mpsc::Sender<Job>>>,
    deadline: Option<Instant>,
    f: impl FnOnce(&mut Connection) -> R + Send + 'static,
) -> Result<(R, bool), Refused> {
    let reply_rx = enqueue(queue, deadline, f).await?;
    match reply_rx.await {
        Ok(reply) => Ok(reply),
        Err(_) if deadline.is_some_and(|deadline| Instant::now() >= deadline) => {
            Err(Refused::Expired)
        }
        Err(_) => Err(Refused::Closed),
    }
}

/// Queues `f` (waiting for room until `deadline`); the receiver gets its result and whether a
/// statement of it was interrupted.
async fn enqueue<R: Send + 'static>(
    queue: &Mutex<Option<mpsc::Sender<Job>>>,
    deadline: Option<Instant>,
    f: impl FnOnce(&mut Connection) -> R + Send + 'static,
) -> Result<oneshot::Receiver<(R, bool)>, Refused> {
    let (reply_tx, reply_rx) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            // Dropping the reply sender tells the caller; it then checks its deadline.
            return;
        }
        DEADLINE.set(deadline);
        INTERRUPTED.set(false);
        let result = f(conn);
        DEADLINE.set(None);
        let _ = reply_tx.send((result, INTERRUPTED.replace(false)));
    });
    let sender = lock(queue).clone().ok_or(Refused::Closed)?;
    match deadline {
        None => sender.send(job).await.map_err(|_| Refused::Closed)?,
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), sender.send(job)).await {
            Ok(sent) => sent.map_err(|_| Refused::Closed)?,
            Err(_) => return Err(Refused::Expired),
        },
    }
    Ok(reply_rx)
}

/// Lifts the running job's deadline, so the statements that clean up after it passed (a
/// transaction's final `ROLLBACK`) are not interrupted in turn.
pub(crate) fn disarm_deadline() {
    DEADLINE.set(None);
}

/// Gives the statements that follow on this thread their own deadline (a write of a group,
/// see `group.rs`), replacing the job's.
pub(crate) fn arm_deadline(deadline: Option<Instant>) {
    DEADLINE.set(deadline);
    INTERRUPTED.set(false);
}

/// Lifts the deadline [`arm_deadline`] set and says whether it interrupted a statement.
pub(crate) fn end_deadline() -> bool {
    DEADLINE.set(None);
    INTERRUPTED.replace(false)
}

/// Runs one job, surviving a panic in it: the reply sender is dropped (the caller sees
/// `Closed`), any open transaction is rolled back, and the thread keeps serving.
fn run_job(conn: &mut Connection, job: Job) {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(conn)));
    if outcome.is_err() {
        DEADLINE.set(None);
        INTERRUPTED.set(false);
        tracing::error!("a database job panicked; its transaction was rolled back");
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// Installs the progress handler that interrupts a statement once the running job's deadline
/// has passed. SQLite then fails the statement with `SQLITE_INTERRUPT`; the job's transaction
/// rolls back when the job drops it.
fn install_interrupt(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.progress_handler(PROGRESS_STEPS, Some(deadline_passed))
}

/// Whether the running job's deadline has passed; if so, the job is marked interrupted. Asked
/// by the progress handler and by `plinth_like`.
fn deadline_passed() -> bool {
    let expired = DEADLINE
        .get()
        .is_some_and(|deadline| Instant::now() >= deadline);
    if expired {
        INTERRUPTED.set(true);
    }
    expired
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
    register_like(conn)
}

/// `plinth_like(text, pattern)`: `text LIKE pattern ESCAPE '\'` as SQLite answers it (see
/// `domain::like`), for the `~` and `!~` of filters and rules. Unlike SQLite's own `LIKE`,
/// which is one uninterruptible step however long its text and pattern, it stops once the
/// running job's deadline has passed, as the progress handler stops anything else: the
/// statement fails and the job is answered as timed out. The rules compiler passes anything
/// but a column of TEXT affinity through `CAST(… AS TEXT)`, so a number is matched by
/// SQLite's own text for it.
fn register_like(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;

    conn.create_scalar_function(
        "plinth_like",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            // The pattern is read once per statement while it stays the same (a bound
            // parameter), as SQLite keeps "auxiliary data" for constant arguments.
            let pattern = ctx.get_or_create_aux(1, |value| match value {
                ValueRef::Null => Ok(None),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                    if bytes.len() > domain::like::MAX_PATTERN_BYTES {
                        Err("LIKE or GLOB pattern too complex")
                    } else {
                        Ok(Some(domain::like::Pattern::new(
                            bytes,
                            Some(u32::from(b'\\')),
                        )))
                    }
                }
                _ => Err(NOT_TEXT),
            })?;
            // The compiler CASTs anything but a TEXT column; a number can still come from a
            // view's column typed as text. An integer reads as SQLite writes it; a REAL in
            // Rust's shortest form (SQLite would write `5.0` where this writes `5`).
            let number;
            let text = match ctx.get_raw(0) {
                ValueRef::Null => return Ok(None),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes,
                ValueRef::Integer(i) => {
                    number = i.to_string();
                    number.as_bytes()
                }
                ValueRef::Real(r) => {
                    number = r.to_string();
                    number.as_bytes()
                }
            };
            let Some(pattern) = pattern.as_ref() else {
                return Ok(None);
            };
            pattern
                .matches(text, &mut || !deadline_passed())
                .map(Some)
                .map_err(|_| rusqlite::Error::UserFunctionError("interrupted".into()))
        },
    )
}

const NOT_TEXT: &str = "plinth_like takes a text pattern";

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

    /// `plinth_like` answers as SQLite's `LIKE … ESCAPE '\'` over every short combination of
    /// cases, wildcards, escapes, multi-byte and malformed UTF-8 and NUL bytes, as text and
    /// as blobs.
    #[test]
    fn plinth_like_answers_as_sqlite_like() {
        use rusqlite::types::Value as Sql;
        let conn = Connection::open_in_memory().expect("memory db");
        register_math_functions(&conn).expect("registered");
        let pieces: [&[u8]; 13] = [
            b"a",
            b"A",
            b"b",
            b"%",
            b"_",
            b"\\",
            "\u{e9}".as_bytes(),
            "\u{c9}".as_bytes(),
            "\u{1f600}".as_bytes(),
            b"\xc3",
            b"\xa9",
            b"Z",
            b"\0",
        ];
        // A small xorshift generator: the same cases every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let mut compare = conn
            .prepare("SELECT ?1 LIKE ?2 ESCAPE '\\', plinth_like(?1, ?2)")
            .expect("prepares");
        let mut matched = 0;
        for case in 0..30_000 {
            let mut make = |len: usize| -> Vec<u8> {
                (0..next(len + 1))
                    .flat_map(|_| pieces[next(pieces.len())].to_vec())
                    .collect()
            };
            let (text, pattern) = (make(7), make(5));
            let bind = |bytes: Vec<u8>| match String::from_utf8(bytes) {
                Ok(text) if case % 3 != 0 => Sql::Text(text),
                Ok(text) => Sql::Blob(text.into_bytes()),
                Err(bytes) => Sql::Blob(bytes.into_bytes()),
            };
            let (text, pattern) = (bind(text), bind(pattern));
            let (sqlite, ours): (Option<bool>, Option<bool>) = compare
                .query_row(rusqlite::params![text, pattern], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .expect("both answer");
            assert_eq!(ours, sqlite, "{text:?} LIKE {pattern:?}");
            matched += usize::from(sqlite == Some(true));
        }
        assert!(
            matched > 1_000,
            "the cases match often enough to mean something: {matched}"
        );
        let null: Option<bool> = conn
            .query_row("SELECT plinth_like(NULL, '%')", [], |row| row.get(0))
            .expect("answers");
        assert_eq!(null, None);
    }

    /// A `plinth_like` that outlives the running job's deadline fails its statement, and the
    /// job is told it was interrupted.
    #[test]
    fn plinth_like_stops_at_the_deadline() {
        let conn = Connection::open_in_memory().expect("memory db");
        register_math_functions(&conn).expect("registered");
        let text = "a".repeat(1 << 20);
        let pattern = format!("%{}b%", "a".repeat(3000));
        arm_deadline(Some(Instant::now() + std::time::Duration::from_millis(50)));
        let started = Instant::now();
        let answer: rusqlite::Result<bool> = conn.query_row(
            "SELECT plinth_like(?1, ?2)",
            rusqlite::params![text, pattern],
            |row| row.get(0),
        );
        let interrupted = end_deadline();
        assert!(answer.is_err(), "{answer:?}");
        assert!(interrupted);
        // SQLite's own LIKE takes seconds over this; the deadline check comes every
        // 65,536 steps.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let too_long = "%".repeat(domain::like::MAX_PATTERN_BYTES + 1);
        let answer: rusqlite::Result<bool> =
            conn.query_row("SELECT plinth_like('a', ?1)", [too_long], |row| row.get(0));
        assert!(
            answer.is_err_and(|e| e.to_string().contains("pattern too complex")),
            "as SQLite's LIKE"
        );
    }
}

#[cfg(test)]
mod lazy_tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// An engine on a fresh database in `dir` whose readers open with `open`: one thread per
    /// lane, two inline connections.
    fn engine(dir: &std::path::Path, open: Opener) -> Engine {
        let path = dir.join("data.db");
        let options = crate::SqliteOptions::default();
        let writer = crate::wal_file::open_writer(&path).expect("writer");
        crate::configure(&writer, &options, false).expect("configures");
        let db = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("file");
        let checkpointer = crate::open_side(&path, &options, false).expect("checkpointer");
        let auth_cache = Arc::new(crate::auth_cache::AuthCache::new(None));
        Engine::start(
            writer,
            Readers {
                queries: 1,
                points: 1,
                inline: 2,
                open,
            },
            Checkpointer {
                conn: checkpointer,
                due_frames: 1000,
            },
            Arc::new(DbFiles { db }),
            &auth_cache,
        )
        .expect("starts")
    }

    fn select_one(conn: &mut Connection) -> i64 {
        conn.query_row("SELECT CAST(1 + sqrt(0) AS INTEGER)", [], |row| row.get(0))
            .expect("answers")
    }

    #[tokio::test]
    async fn read_connections_open_when_first_needed_and_again_after_a_failed_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data.db");
        let (attempts, opened) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let failing = Arc::new(AtomicBool::new(true));
        let open: Opener = {
            let (attempts, opened, failing) = (
                Arc::clone(&attempts),
                Arc::clone(&opened),
                Arc::clone(&failing),
            );
            let options = crate::SqliteOptions::default();
            Arc::new(move || {
                attempts.fetch_add(1, Ordering::SeqCst);
                if failing.load(Ordering::SeqCst) {
                    return Err(rusqlite::Error::InvalidQuery);
                }
                let conn = crate::open_side(&path, &options, true)?;
                opened.fetch_add(1, Ordering::SeqCst);
                Ok(conn)
            })
        };
        let engine = engine(dir.path(), open);
        // The writer works at once; no reader opened yet.
        assert_eq!(engine.write(select_one).await, Ok(1));
        assert_eq!(attempts.load(Ordering::SeqCst), 0);

        // A failed open refuses the job (lane) or hands it back (inline), and is not counted
        // as open: the next job tries again.
        assert_eq!(
            engine.read(Lane::Query, None, select_one).await,
            Err(Refused::Closed)
        );
        assert!(engine.read_inline(select_one).is_err());
        assert_eq!(lock(&engine.inline).unopened, 2);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);

        failing.store(false, Ordering::SeqCst);
        assert_eq!(
            engine.read(Lane::Query, None, select_one).await,
            Ok((1, false))
        );
        assert_eq!(
            engine.read(Lane::Point, None, select_one).await,
            Ok((1, false))
        );
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        // Each lane thread keeps the connection it opened.
        assert_eq!(
            engine.read(Lane::Query, None, select_one).await,
            Ok((1, false))
        );
        assert_eq!(opened.load(Ordering::SeqCst), 2);

        // Inline: one connection serves reads one after another; a second opens only while the
        // first is borrowed, and no more than two ever open.
        assert_eq!(engine.read_inline(select_one).ok(), Some(1));
        assert_eq!(engine.read_inline(select_one).ok(), Some(1));
        assert_eq!(opened.load(Ordering::SeqCst), 3);
        let nested = engine.read_inline(|conn| {
            let inner = engine.read_inline(|inner| {
                let third = engine.read_inline(select_one);
                (select_one(inner), third.is_err())
            });
            (select_one(conn), inner.ok())
        });
        assert_eq!(nested.ok(), Some((1, Some((1, true)))));
        assert_eq!(opened.load(Ordering::SeqCst), 4);
        assert_eq!(lock(&engine.inline).free.len(), 2);

        // Once stopped, nothing is lent or opened any more.
        engine.shutdown().await;
        assert!(engine.read_inline(select_one).is_err());
        assert_eq!(opened.load(Ordering::SeqCst), 4);
    }
}
