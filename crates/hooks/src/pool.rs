//! The runtimes that run handlers. Each runtime lives on its own OS thread (QuickJS runtimes
//! are single-threaded) and takes one invocation at a time; an async caller hands it a job and
//! awaits the answer, so no async worker ever blocks on a script.
//!
//! Up to `pool_size` threads are kept once made (they are made on first need, so a server
//! without hooks pays nothing). A call the server makes waits for one of them, until its own
//! deadline, then fails with [`HookError::Busy`]. A call a running invocation makes (its
//! handler called the app, which fires other handlers while the first one waits) must run
//! elsewhere and must not wait for places its ancestors hold: it gets an idle pooled runtime
//! or a thread made for it alone, bounded by the nesting depth ([`MAX_DEPTH`]).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rquickjs::context::EvalOptions;
use rquickjs::{Context, Ctx, Function, Runtime};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::natives::{self, CURRENT, Current};
use crate::{ApiFailure, EngineConfig, HookError, Host, Registry};

/// The JavaScript half of the engine: PocketBase's globals over the natives.
const PRELUDE: &str = include_str!("js/prelude.js");

/// Thread stack of an engine thread; QuickJS recursion runs on it.
const THREAD_STACK: usize = 8 * 1024 * 1024;
/// QuickJS's own stack bound, below the thread's.
const JS_STACK: usize = 4 * 1024 * 1024;

/// How deep invocations may nest (a handler saving a record whose hooks save another …).
pub const MAX_DEPTH: u32 = 16;

struct Job {
    depth: u32,
    entry: String,
    arg: String,
    host: Arc<dyn Host>,
    deadline: Instant,
    reply: oneshot::Sender<Result<Value, HookError>>,
    permit: Option<OwnedSemaphorePermit>,
}

struct Inner {
    config: EngineConfig,
    registry: Arc<Registry>,
    idle: Mutex<Vec<Sender<Job>>>,
    pooled: Mutex<usize>,
    permits: Arc<Semaphore>,
}

/// The pool of runtimes.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pool {
    pub fn start(config: EngineConfig, registry: Arc<Registry>) -> Result<Pool, HookError> {
        // Calls the server makes wait for one of the pooled runtimes (making a runtime costs
        // far more than waiting for one); only nested calls get runtimes of their own.
        let permits = Arc::new(Semaphore::new(config.pool_size.max(1)));
        Ok(Pool {
            inner: Arc::new(Inner {
                config,
                registry,
                idle: Mutex::new(Vec::new()),
                pooled: Mutex::new(0),
                permits,
            }),
        })
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Runs `entry` (a function of the prelude's `__entries`) with `arg` on a runtime.
    pub async fn call(
        &self,
        entry: &str,
        arg: Value,
        host: Arc<dyn Host>,
    ) -> Result<Value, HookError> {
        self.call_with(entry, arg, host, false).await
    }

    /// As [`Pool::call`], for a caller that holds the database's write transaction (model
    /// hooks): it must not wait for a pooled runtime, whose holders may be waiting for that
    /// very writer. Such calls are few at a time (one writer), so they take a runtime made for
    /// them when none is idle.
    pub async fn call_holding_writer(
        &self,
        entry: &str,
        arg: Value,
        host: Arc<dyn Host>,
    ) -> Result<Value, HookError> {
        self.call_with(entry, arg, host, true).await
    }

    async fn call_with(
        &self,
        entry: &str,
        arg: Value,
        host: Arc<dyn Host>,
        skip_permit: bool,
    ) -> Result<Value, HookError> {
        let started = Instant::now();
        let result = self.call_unmeasured(entry, arg, host, skip_permit).await;
        record_run(entry, &result, started);
        result
    }

    async fn call_unmeasured(
        &self,
        entry: &str,
        arg: Value,
        host: Arc<dyn Host>,
        skip_permit: bool,
    ) -> Result<Value, HookError> {
        let deadline = Instant::now() + self.inner.config.timeout;
        // An invocation made by a running one (its handler called the app, which fires more
        // hooks) must not wait for a place its ancestors hold: it goes past the cap, bounded
        // by the nesting depth instead.
        let parent = natives::current_depth();
        if let Some(depth) = parent
            && depth + 1 >= MAX_DEPTH
        {
            return Err(HookError::Engine(format!(
                "hooks nested more than {MAX_DEPTH} deep"
            )));
        }
        let permit = match parent {
            _ if skip_permit => None,
            Some(_) => None,
            None => Some(
                tokio::time::timeout_at(
                    deadline.into(),
                    self.inner.permits.clone().acquire_owned(),
                )
                .await
                .map_err(|_| HookError::Busy)?
                .map_err(|_| HookError::Engine("the hook pool is closed".into()))?,
            ),
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            depth: parent.map_or(0, |d| d + 1),
            entry: entry.to_owned(),
            arg: arg.to_string(),
            host,
            deadline,
            reply,
            permit,
        };
        self.dispatch(job)?;
        answer
            .await
            .map_err(|_| HookError::Engine("a hook thread stopped".into()))?
    }

    /// Runs `entry` on a runtime made for this call alone and dropped after it (each
    /// migration file runs in its own, as in PocketBase).
    pub async fn call_fresh(
        &self,
        entry: &str,
        arg: Value,
        host: Arc<dyn Host>,
    ) -> Result<Value, HookError> {
        let deadline = Instant::now() + self.inner.config.timeout;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            depth: natives::current_depth().map_or(0, |d| d + 1),
            entry: entry.to_owned(),
            arg: arg.to_string(),
            host,
            deadline,
            reply,
            permit: None,
        };
        let inner = self.inner.clone();
        let (tx, rx) = channel();
        tx.send(job)
            .map_err(|_| HookError::Engine("could not hand the job over".into()))?;
        spawn_thread(inner, rx, None)?;
        answer
            .await
            .map_err(|_| HookError::Engine("a hook thread stopped".into()))?
    }

    fn dispatch(&self, job: Job) -> Result<(), HookError> {
        let idle = lock(&self.inner.idle).pop();
        if let Some(worker) = idle {
            return match worker.send(job) {
                Ok(()) => Ok(()),
                // The thread died (it never should); make another.
                Err(std::sync::mpsc::SendError(job)) => self.spawn_for(job),
            };
        }
        self.spawn_for(job)
    }

    fn spawn_for(&self, job: Job) -> Result<(), HookError> {
        let keep = {
            let mut pooled = lock(&self.inner.pooled);
            if *pooled < self.inner.config.pool_size.max(1) {
                *pooled += 1;
                true
            } else {
                false
            }
        };
        let (tx, rx) = channel();
        tx.send(job)
            .map_err(|_| HookError::Engine("could not hand the job over".into()))?;
        spawn_thread(self.inner.clone(), rx, keep.then_some(tx))
    }
}

/// Starts an engine thread serving `rx`. With `me`, it is a pooled thread that goes back on
/// the idle list after each job; without, it ends after its first job.
fn spawn_thread(
    inner: Arc<Inner>,
    rx: Receiver<Job>,
    me: Option<Sender<Job>>,
) -> Result<(), HookError> {
    std::thread::Builder::new()
        .name("plinth-js".into())
        .stack_size(THREAD_STACK)
        .spawn(move || serve(inner, rx, me))
        .map(|_| ())
        .map_err(|e| HookError::Engine(format!("could not start a hook thread: {e}")))
}

fn serve(inner: Arc<Inner>, rx: Receiver<Job>, me: Option<Sender<Job>>) {
    let mut runtime: Option<JsRuntime> = None;
    while let Ok(mut job) = rx.recv() {
        if runtime.is_none() {
            match JsRuntime::new(&inner.config, inner.registry.clone()) {
                Ok(made) => runtime = Some(made),
                Err(error) => {
                    let _ = job.reply.send(Err(error));
                    if me.is_none() {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(rt) = runtime.as_ref() else { continue };
        let permit = job.permit.take();
        let (answer, broken) = rt.run(&job);
        if broken {
            runtime = None;
        }
        let _ = job.reply.send(answer);
        match &me {
            Some(me) => {
                lock(&inner.idle).push(me.clone());
                drop(permit);
            }
            None => {
                drop(permit);
                return;
            }
        }
    }
}

/// One QuickJS runtime with the prelude loaded.
struct JsRuntime {
    runtime: Runtime,
    context: Context,
    deadline: Rc<Cell<Instant>>,
    memory_limit: usize,
    /// Jobs run, for the periodic heap check.
    jobs: Cell<u64>,
}

/// How often (in jobs) a runtime measures its heap.
const HEAP_CHECK_EVERY: u64 = 64;

impl JsRuntime {
    fn new(config: &EngineConfig, registry: Arc<Registry>) -> Result<JsRuntime, HookError> {
        let fail = |e: rquickjs::Error| HookError::Engine(format!("could not make a runtime: {e}"));
        let runtime = Runtime::new().map_err(fail)?;
        runtime.set_memory_limit(config.memory_limit);
        runtime.set_max_stack_size(JS_STACK);
        let deadline = Rc::new(Cell::new(Instant::now() + config.timeout));
        let watched = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() >= watched.get())));
        let context = Context::full(&runtime).map_err(fail)?;
        let hooks_dir = config
            .hooks_dir
            .as_ref()
            .and_then(|d| std::path::absolute(d).ok())
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        context.with(|ctx| -> Result<(), HookError> {
            natives::install(&ctx, registry, config).map_err(|e| js_failure(&ctx, e))?;
            ctx.globals()
                .set("__hooks", hooks_dir)
                .map_err(|e| js_failure(&ctx, e))?;
            let mut options = EvalOptions::default();
            options.filename = Some("prelude.js".into());
            options.strict = false;
            ctx.eval_with_options::<(), _>(PRELUDE, options)
                .map_err(|e| js_failure(&ctx, e))
        })?;
        Ok(JsRuntime {
            runtime,
            context,
            deadline,
            memory_limit: config.memory_limit,
            jobs: Cell::new(0),
        })
    }

    /// Runs one job; the flag says the runtime must be thrown away (interrupted or out of
    /// memory: its state can no longer be trusted).
    fn run(&self, job: &Job) -> (Result<Value, HookError>, bool) {
        self.deadline.set(job.deadline);
        natives::DEADLINE.with(|d| *d.borrow_mut() = Some(self.deadline.clone()));
        CURRENT.with(|c| {
            *c.borrow_mut() = Some(Current {
                host: job.host.clone(),
                deadline: job.deadline,
                depth: job.depth,
            })
        });
        let raw = self.context.with(|ctx| -> Result<String, HookError> {
            let entry: Function = ctx
                .globals()
                .get("__entry")
                .map_err(|e| js_failure(&ctx, e))?;
            entry
                .call::<_, String>((job.entry.as_str(), job.arg.as_str()))
                .map_err(|e| js_failure(&ctx, e))
        });
        CURRENT.with(|c| *c.borrow_mut() = None);
        natives::DEADLINE.with(|d| *d.borrow_mut() = None);
        // The bound is on the script's own time: host calls (a system route behind a
        // middleware, a write waiting for the writer) moved the deadline forward.
        let timed_out = Instant::now() >= self.deadline.get();
        // Far in the future, so nothing left over is interrupted between jobs.
        self.deadline
            .set(Instant::now() + std::time::Duration::from_secs(86_400 * 365));
        let answer = match raw {
            // An interrupt surfaces as an (empty) InternalError, caught or not.
            Ok(text) if timed_out && text.contains("\"ok\":false") => {
                return (Err(HookError::TimedOut), true);
            }
            Ok(text) => parse_answer(&text),
            Err(_) if timed_out => return (Err(HookError::TimedOut), true),
            Err(HookError::Thrown { text, .. }) if is_oom(&text) => {
                return (Err(HookError::OutOfMemory), true);
            }
            Err(other) => Err(other),
        };
        let oom = match &answer {
            Err(HookError::Thrown { text, .. }) => is_oom(text),
            _ => false,
        };
        // Measuring the heap walks all of it, so it is done every few jobs only. Reference
        // counting frees most garbage at once; a full cycle collection runs when the heap
        // has grown, and a runtime close to its limit is rebuilt.
        let jobs = self.jobs.get() + 1;
        self.jobs.set(jobs);
        let mut broken = oom;
        if !oom && jobs.is_multiple_of(HEAP_CHECK_EVERY) {
            let used = self.runtime.memory_usage().malloc_size.max(0) as u64;
            broken = used >= (self.memory_limit as u64 / 10) * 9;
            if !broken && used >= self.memory_limit as u64 / 4 {
                self.runtime.run_gc();
            }
        }
        (answer, broken)
    }
}

/// QuickJS reports running out of memory as "out of memory", or, when even the error
/// object cannot be made, by throwing `null` (a script throwing `null` itself is taken for
/// the same; both end the runtime).
fn is_oom(text: &str) -> bool {
    text.contains("out of memory") || text == "null"
}

/// The prelude's answer: `{"ok":true,"value":…}` or `{"ok":false,"error":{api, text}}`.
fn parse_answer(text: &str) -> Result<Value, HookError> {
    let parsed: Value = serde_json::from_str(text)
        .map_err(|e| HookError::Engine(format!("unreadable answer from the prelude: {e}")))?;
    if parsed.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(parsed.get("value").cloned().unwrap_or(Value::Null));
    }
    let error = parsed.get("error").cloned().unwrap_or(Value::Null);
    let text = error
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("Error")
        .to_owned();
    if is_oom(&text) {
        return Err(HookError::OutOfMemory);
    }
    let api = error
        .get("api")
        .filter(|a| a.is_object())
        .map(|a| ApiFailure {
            status: a
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(400),
            message: a
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            data: a.get("data").cloned().unwrap_or(Value::Null),
        })
        .map(Box::new);
    Err(HookError::Thrown { api, text })
}

/// An exception that escaped the prelude's own catch (a syntax error in the prelude, an
/// uncatchable interrupt, out of memory), as text.
fn js_failure(ctx: &Ctx<'_>, error: rquickjs::Error) -> HookError {
    let text = match error {
        rquickjs::Error::Exception => describe(&ctx.catch()),
        other => other.to_string(),
    };
    HookError::Thrown { api: None, text }
}

fn describe(value: &rquickjs::Value<'_>) -> String {
    if let Some(exception) = value.as_exception() {
        let message = exception.message().unwrap_or_default();
        let stack = exception.stack().unwrap_or_default();
        let name: String = exception
            .get::<_, String>("name")
            .unwrap_or_else(|_| "Error".into());
        let at = stack
            .lines()
            .next()
            .map(|l| l.trim().to_owned())
            .unwrap_or_default();
        return if at.is_empty() {
            format!("{name}: {message}")
        } else {
            format!("{name}: {message} {at}")
        };
    }
    if let Some(s) = value.as_string().and_then(|s| s.to_string().ok()) {
        return s;
    }
    format!("{value:?}")
}

/// Counts one invocation by kind (the prelude entry: `route`, `model`, `plain`, …, a fixed set)
/// and result, and records its time, for the server's metrics endpoint.
fn record_run(entry: &str, result: &Result<Value, HookError>, started: Instant) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(HookError::Thrown { .. }) => "error",
        Err(HookError::TimedOut) => "timeout",
        Err(HookError::OutOfMemory) => "out_of_memory",
        Err(HookError::Busy) => "busy",
        Err(HookError::Engine(_)) => "engine",
    };
    let kind = entry.to_owned();
    metrics::counter!("plinth_hook_runs_total", "kind" => kind.clone(), "result" => outcome)
        .increment(1);
    metrics::histogram!("plinth_hook_run_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_into_values_and_api_failures() {
        assert_eq!(
            parse_answer(r#"{"ok":true,"value":{"a":1}}"#).ok(),
            Some(serde_json::json!({"a":1}))
        );
        match parse_answer(
            r#"{"ok":false,"error":{"api":{"status":418,"message":"Teapot.","data":{}},"text":"x"}}"#,
        ) {
            Err(HookError::Thrown { api: Some(api), .. }) => {
                assert_eq!(api.status, 418);
                assert_eq!(api.message, "Teapot.");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_answer(
                r#"{"ok":false,"error":{"api":null,"text":"InternalError: out of memory"}}"#
            ),
            Err(HookError::OutOfMemory)
        ));
    }
}
