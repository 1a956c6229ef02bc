//! Plinth's embedded JavaScript engine, so a PocketBase `pb_hooks` folder (and `pb_migrations`)
//! runs unchanged. QuickJS through `rquickjs`: small, fast to build, ES2020.
//!
//! The shape follows PocketBase's own model, because hook files are written against it:
//! a *loader* runtime runs each hook file's top level once and records what it registers
//! (routes, middlewares, event handlers, cron jobs) as **source text**; a *pool* of runtimes
//! recompiles those sources on first use and runs them. Handlers therefore cannot see a
//! file's top-level bindings (as in PocketBase) and share state only through the host.
//!
//! The engine knows nothing of HTTP or databases. Everything a script asks of the app
//! (`$app.findRecordById`, `$app.save`, `$http.send`, the core action behind `e.next()`) is
//! one call to a [`Host`] the caller passes with each invocation, with JSON in and out. That
//! keeps this crate free of the server's types and lets the server answer each call with
//! the right transaction.
//!
//! Bounds: each invocation has a wall-clock deadline enforced by QuickJS's interrupt
//! handler, each runtime a memory limit and a stack limit; a runtime that was interrupted or
//! ran out of memory is thrown away and rebuilt. Runtimes beyond the pool are made on demand
//! (a handler calling the app that fires more hooks needs another runtime) up to a cap.

mod loader;
mod natives;
mod pool;
mod registry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use loader::{LoadFailure, hook_files, load, migration_files};
pub use pool::Pool;
pub use registry::{Cron, HandlerSource, Hook, Link, Registry, Route};

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The hooks folder (`--hooksDir`); `None` or a missing folder means no hooks.
    pub hooks_dir: Option<PathBuf>,
    /// Prewarmed runtimes (`--hooksPool`).
    pub pool_size: usize,
    /// Wall-clock bound of one invocation (`--hooksTimeout`).
    pub timeout: Duration,
    /// Memory bound of one runtime (`--hooksMemoryLimit`).
    pub memory_limit: usize,
    /// Values `$os.getenv` may read (the whole environment when `None`).
    pub env_allow: Option<Vec<String>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hooks_dir: None,
            pool_size: 15,
            timeout: Duration::from_secs(30),
            memory_limit: 64 * 1024 * 1024,
            env_allow: None,
        }
    }
}

/// What the app answers a script: any JSON value, or an error that the script sees thrown.
pub type HostResult = Result<Value, HostError>;

/// An error a host call throws into the script.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    /// An API error (status, message, data): thrown as PocketBase's `ApiError`.
    #[error("{message}")]
    Api {
        status: u16,
        message: String,
        data: Value,
    },
    /// Any other failure: thrown as a `GoError` carrying `message`. `status` (when set) is
    /// how it is answered if no script catches it: 404 for "no rows", 400 for validation
    /// (with `data`).
    #[error("{message}")]
    Go {
        message: String,
        status: Option<u16>,
        data: Value,
    },
}

impl HostError {
    pub fn go(message: impl Into<String>) -> Self {
        HostError::Go {
            message: message.into(),
            status: None,
            data: Value::Null,
        }
    }

    /// PocketBase's "no rows" error: a `GoError` answered 404 when uncaught.
    pub fn no_rows() -> Self {
        HostError::Go {
            message: "sql: no rows in result set".into(),
            status: Some(404),
            data: Value::Null,
        }
    }
}

/// The app side of an invocation: every `$app.*`, `$http.*`, `e.next()` core step, … arrives
/// here as an operation name and JSON arguments. Called on the engine's own threads, which
/// may block (they are not async workers).
pub trait Host: Send + Sync {
    fn call(&self, op: &str, args: Value) -> HostResult;
}

/// Why an invocation failed, past what the script itself caught.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    /// The script threw. `api` is set when it threw (or returned) an `ApiError`, or an
    /// uncaught host error with a status; `text` is the error as logs show it, with file and
    /// line where known.
    #[error("{text}")]
    Thrown {
        api: Option<Box<ApiFailure>>,
        text: String,
    },
    /// The invocation ran past its time bound and was interrupted.
    #[error("the hook ran past its time limit and was interrupted")]
    TimedOut,
    /// The runtime ran out of its memory bound.
    #[error("the hook ran out of memory")]
    OutOfMemory,
    /// Every runtime is busy and the overflow cap is reached.
    #[error("every hook runtime is busy")]
    Busy,
    /// The engine itself failed (a runtime could not be made, a thread died).
    #[error("hook engine error: {0}")]
    Engine(String),
}

/// An API answer a script chose: status, message, data.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiFailure {
    pub status: u16,
    pub message: String,
    pub data: Value,
}

/// The loaded hooks and the runtimes that run them.
pub struct Engine {
    pub registry: Arc<Registry>,
    pub pool: Pool,
    pub failures: Vec<LoadFailure>,
}

impl Engine {
    /// Loads the hook files (top level run once in a loader runtime) and starts the pool.
    /// Files that fail are reported in `failures`; what they registered before failing is
    /// kept, as in PocketBase.
    pub async fn start(config: EngineConfig) -> Result<Engine, HookError> {
        let (registry, failures) = load(&config).await?;
        let registry = Arc::new(registry);
        let pool = Pool::start(config, registry.clone())?;
        Ok(Engine {
            registry,
            pool,
            failures,
        })
    }

    /// Runs the prelude's entry `entry` with `arg` on a pooled runtime.
    pub async fn call(
        &self,
        entry: &str,
        arg: Value,
        host: Arc<dyn Host>,
    ) -> Result<Value, HookError> {
        self.pool.call(entry, arg, host).await
    }

    /// As [`Engine::call`] for a caller holding the write transaction (see
    /// [`Pool::call_holding_writer`]).
    pub async fn call_holding_writer(
        &self,
        entry: &str,
        arg: Value,
        host: Arc<dyn Host>,
    ) -> Result<Value, HookError> {
        self.pool.call_holding_writer(entry, arg, host).await
    }
}
