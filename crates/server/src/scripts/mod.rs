//! JavaScript hooks (`pb_hooks`) wired into the server: custom routes and middlewares, record
//! request and model hooks, cron jobs, and the app API scripts call (`host.rs`). The engine
//! itself (runtimes, loading, the JS side of the API) is the `hooks` crate.
//!
//! Nothing here runs unless a hook file registered something for the event at hand: every
//! entry point first asks the registry, a hash lookup, so a server without hooks (or a
//! collection without handlers) pays nothing measurable.

pub(crate) mod app_ops;
pub(crate) mod host;
pub(crate) mod layer;
pub mod migrations;
pub(crate) mod records;
pub mod routes;

use std::sync::{Arc, Mutex};

use hooks::{Engine, EngineConfig, HookError};
use serde_json::Value;

pub use host::AppHost;
pub use layer::layer;
pub(crate) use layer::render;
pub use records::register_crons;

use crate::error::ApiError;
use crate::state::SharedState;
pub(crate) use crate::state::scripts::{AfterCommit, SharedTx};
use crate::state::scripts::{Route, Scripts};

/// Why the hooks could not start.
#[derive(Debug, thiserror::Error)]
pub enum ScriptsError {
    #[error(transparent)]
    Engine(#[from] HookError),
    #[error("{0}")]
    Route(String),
}

/// Loads the hook files and compiles their routes. Load failures of single files are
/// returned in `engine.failures` (the caller decides whether they are fatal).
pub async fn start(config: EngineConfig) -> Result<Arc<Scripts>, ScriptsError> {
    let engine = Engine::start(config).await?;
    let mut compiled = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, route) in engine.registry.routes.iter().enumerate() {
        let pattern =
            routes::Pattern::parse(&route.path).map_err(|e| ScriptsError::Route(e.to_string()))?;
        if !seen.insert((route.method.clone(), route.path.clone())) {
            return Err(ScriptsError::Route(format!(
                "pattern \"{} {}\" conflicts with an earlier route",
                route.method, route.path
            )));
        }
        compiled.push((route.method.clone(), pattern, index));
    }
    compiled.sort_by_key(|b| std::cmp::Reverse(b.1.specificity()));
    let routes = compiled
        .into_iter()
        .map(|(method, pattern, index)| Route {
            method,
            pattern: Box::new(pattern),
            index,
        })
        .collect();
    Ok(Arc::new(Scripts::new(engine, routes)))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The scripts of this server, when hooks are on.
pub fn of(state: &SharedState) -> Option<&Arc<Scripts>> {
    state.scripts.get()
}

/// How a failed invocation is answered: a script's ApiError as it is; a runaway script
/// (time or memory) as PocketBase's generic 400, logged; any other throw as `fallback`.
pub(crate) fn api_error(error: HookError, fallback: ApiError) -> ApiError {
    match error {
        HookError::Thrown {
            api: Some(api),
            text,
        } => {
            let api = *api;
            tracing::debug!(error = %text, "hook answered an API error");
            let status = axum::http::StatusCode::from_u16(api.status)
                .unwrap_or(axum::http::StatusCode::BAD_REQUEST);
            let mut error = ApiError::new(status, &api.message);
            if api.data.as_object().is_some_and(|d| !d.is_empty()) {
                error.data = api.data;
            }
            error
        }
        HookError::Thrown { api: None, text } => {
            tracing::warn!(error = %text, "hook failed");
            fallback
        }
        HookError::TimedOut | HookError::OutOfMemory => {
            tracing::error!(%error, "hook stopped");
            ApiError::bad_request()
        }
        HookError::Busy => {
            tracing::error!(%error, "hook runtimes exhausted");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy, please try again.",
            )
        }
        HookError::Engine(text) => ApiError::internal(text),
    }
}

/// Runs an app lifecycle hook (`onBootstrap`, `onServe`, `onTerminate`) with `event` fields;
/// a throw is returned (the caller decides whether it stops the server).
pub async fn run_app_hook(state: &SharedState, name: &str, event: Value) -> Result<(), HookError> {
    let Some(scripts) = of(state).cloned() else {
        return Ok(());
    };
    if !scripts.registry().has(name) {
        return Ok(());
    }
    let links: Vec<Value> = scripts
        .registry()
        .handlers_for(name, "", "")
        .into_iter()
        .map(|h| serde_json::json!({ "h": h }))
        .collect();
    let host = Arc::new(AppHost::new(state.clone(), scripts.clone()));
    scripts
        .engine
        .call(
            "plain",
            serde_json::json!({ "links": links, "event": event, "core": false }),
            host,
        )
        .await
        .map(|_| ())
}
