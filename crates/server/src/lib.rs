//! Plinth's HTTP API: PocketBase-compatible routes over an `Arc<dyn Store>`.
//!
//! The router is assembled here; each feature folder registers its own routes. Handlers know
//! HTTP and nothing about SQL text: predicates come from `rules`, statements from the store.

pub mod access;
pub mod auth;
pub mod backups;
pub mod batch;
pub mod chain;
pub mod collections;
pub mod cron;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod files;
pub mod handoff;
pub mod health;
pub mod import;
pub use domain::json_out;
pub mod logs;
pub mod mail;
pub mod metrics;
pub mod middleware;
pub mod peer;
pub mod realtime;
pub mod records;
pub mod request_line;
pub mod response;
pub mod routing;
pub mod scripts;
pub mod settings;
pub mod sql;
pub mod state;
pub mod static_files;
pub mod superusers;

use std::sync::Arc;

use axum::Router;
use domain::{AuthContext, Store};
use futures_util::future::BoxFuture;

use crate::chain::Continue as _;

pub use error::{ApiError, ApiResult};
pub use state::{AppState, ServerConfig, SharedState};

impl AppState {
    /// The state with every feature wired in: the ground floor's [`AppState::assemble`] with
    /// what it needs from the features, then the system cron jobs registered and the
    /// process-wide metrics recorder installed. This is the crate's composition root: the only
    /// place that hands one feature's logic to the state or to another feature.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> SharedState {
        let wiring = state::Wiring {
            expand_records: records::expand_for_realtime,
        };
        let state = AppState::assemble(store, config, wiring);
        cron::system::register(&state);
        metrics::install();
        state
    }
}

/// How the rate limiter learns who calls, from the auth feature.
const CALLERS: settings::rate_limit::Callers = settings::rate_limit::Callers {
    claimed_collection,
    resolve: resolve_caller,
};

fn claimed_collection(state: &SharedState, token: &str) -> Option<String> {
    // A token seen before has its claims kept already: a lookup instead of decoding them.
    if let Some(kept) = state.verified_tokens.get(token) {
        return Some(kept.claims.collection_id.clone());
    }
    auth::token::unverified_claims(token).map(|claims| claims.collection_id)
}

fn resolve_caller<'a>(state: &'a SharedState, token: &'a str) -> BoxFuture<'a, AuthContext> {
    Box::pin(auth::token::resolve_auth_token(state, token))
}

/// The whole API, ready to serve, as an axum router (tests call it as one).
pub fn router(state: SharedState) -> Router {
    Router::new().fallback_service(service(state))
}

/// The whole API, ready to serve: what [`router`] routes every request to. A tower service
/// (each request's future boxed), and [`App::answer`] for a server that can hold the future
/// as it is.
pub fn service(state: SharedState) -> App {
    let config = state.config.clone();
    realtime::spawn_hub(&state);
    metrics::spawn_upkeep(&state);
    backups::spawn(&state);
    let api = routing::Routes::new()
        .merge(health::router())
        .merge(collections::router())
        .merge(records::router())
        .merge(realtime::router())
        .merge(auth::router())
        .merge(settings::router())
        .merge(files::router())
        .merge(batch::router())
        .merge(cron::router())
        .merge(sql::router())
        .merge(metrics::router())
        .merge(backups::router())
        .merge(logs::router())
        .merge(dashboard::router());
    let per_route = LimitsThenHooks(state.clone());
    middleware::wrap(api, state, config, per_route)
}

/// What [`service`] builds.
pub type App = middleware::Api<LimitsThenHooks>;

/// Per route: the rate limiter, then the hooks' custom routes and middlewares, as in
/// PocketBase, whose limiter runs before the hooks' middlewares and limits custom routes like
/// any other (observed on 0.40.6: a `routerAdd` route over its rule's limit is a 429, and a
/// `routerUse` middleware's header is not on it).
#[derive(Clone)]
pub struct LimitsThenHooks(SharedState);

impl chain::Middleware for LimitsThenHooks {
    fn handle<N: chain::Continue>(
        &self,
        request: axum::extract::Request,
        next: N,
    ) -> impl std::future::Future<Output = axum::response::Response> + Send + 'static + use<N> {
        let state = self.0.clone();
        let limited = settings::rate_limit::Limit {
            state: state.clone(),
            callers: CALLERS,
            next: chain::Then(move |request| scripts::layer(state, request, next)),
        };
        limited.run(request)
    }
}
