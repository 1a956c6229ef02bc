//! The JavaScript hooks' shared state once loaded: the engine (the `hooks` crate), the
//! compiled `routerAdd` routes, and what invocations share (open script transactions,
//! after-commit hooks, `$app.store()`). Loading them, the app API scripts call and wiring
//! them into requests and writes are the `scripts` feature's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::store::Transaction;
use hooks::{Engine, Registry};
use serde_json::Value;

/// A transaction a script opened (`$app.runInTransaction`) or one a write opened for its
/// model hooks, shared by every invocation that takes part in it.
pub type SharedTx = Arc<tokio::sync::Mutex<Option<Box<dyn Transaction>>>>;

/// An after-commit hook run, queued until its transaction commits.
pub type AfterCommit = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A compiled `routerAdd` path (the `scripts` feature parses them, as Go's `ServeMux` does).
pub trait PathPattern: Send + Sync {
    /// The path values, when `path` matches.
    fn matches(&self, path: &str) -> Option<HashMap<String, String>>;
    /// Whether the pattern names a subtree (a trailing `/`, or a `{name...}` wildcard after at
    /// least one segment), whose root without its slash Go's router redirects to the slash.
    fn is_subtree(&self) -> bool;
}

/// One `routerAdd` route: its method, its pattern and its index into the registry's routes.
pub struct Route {
    pub method: String,
    pub pattern: Box<dyn PathPattern>,
    pub index: usize,
}

impl Route {
    /// Whether the route answers `method` (`HEAD` is answered by a `GET` route).
    fn answers(&self, method: &str) -> bool {
        self.method == method || (method == "HEAD" && self.method == "GET")
    }
}

/// The loaded hooks, their compiled routes, and what invocations share.
///
/// Several nodes: each node loads its own `pb_hooks` (every node must be given the same
/// files), and everything shared here is per node: `$app.store()` is one map per node, not
/// per cluster, and script transactions and their after-commit hooks belong to the node that
/// opened them (as they must).
pub struct Scripts {
    pub engine: Engine,
    /// `routerAdd` routes, most specific first.
    routes: Vec<Route>,
    /// Whether a route names a subtree ([`PathPattern::is_subtree`]).
    has_subtree: bool,
    /// The runtime the hooks' host calls block on and spawn into.
    handle: tokio::runtime::Handle,
    next_tx: AtomicU64,
    txs: Mutex<HashMap<u64, SharedTx>>,
    /// `$app.store()`: one process-wide map shared by every runtime.
    pub kv: Mutex<serde_json::Map<String, Value>>,
    /// After-success hooks waiting for the commit of a script transaction, by handle.
    pub after: Mutex<HashMap<u64, Vec<AfterCommit>>>,
    /// Where automigrate writes a file for each collection change made through the API
    /// (`--automigrate`); unset, it is off.
    pub automigrate_dir: std::sync::OnceLock<std::path::PathBuf>,
}

impl Scripts {
    /// The hooks of a started `engine` with their compiled `routes` (most specific first), on
    /// the current Tokio runtime.
    pub fn new(engine: Engine, routes: Vec<Route>) -> Scripts {
        let has_subtree = routes.iter().any(|route| route.pattern.is_subtree());
        Scripts {
            engine,
            routes,
            has_subtree,
            handle: tokio::runtime::Handle::current(),
            next_tx: AtomicU64::new(1),
            txs: Mutex::new(HashMap::new()),
            kv: Mutex::new(serde_json::Map::new()),
            after: Mutex::new(HashMap::new()),
            automigrate_dir: std::sync::OnceLock::new(),
        }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.engine.registry
    }

    /// The runtime the hooks were started on.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// The route for `method` and `path`, with its path values. `HEAD` finds `GET` routes.
    pub fn route_for(&self, method: &str, path: &str) -> Option<(usize, HashMap<String, String>)> {
        for route in &self.routes {
            if !route.answers(method) {
                continue;
            }
            if let Some(values) = route.pattern.matches(path) {
                return Some((route.index, values));
            }
        }
        None
    }

    /// Whether Go's router would redirect `method` `path` to `path/`: no route matches it as it
    /// is, and a subtree route of `method` (`/a/` or `/a/{rest...}`) matches it with the slash.
    /// The caller checks Plinth's own routes (which have no subtree but the dashboard's).
    pub fn subtree_redirect(&self, method: &str, path: &str) -> bool {
        if !self.has_subtree || path.ends_with('/') {
            return false;
        }
        let with_slash = format!("{path}/");
        // A subtree's root is rare: only then is the path looked up as it is.
        self.routes.iter().any(|route| {
            route.answers(method)
                && route.pattern.is_subtree()
                && route.pattern.matches(&with_slash).is_some()
        }) && self.route_for(method, path).is_none()
    }

    /// Puts a transaction a script opened in the table; returns its handle.
    pub fn open_tx(&self, tx: Box<dyn Transaction>) -> u64 {
        self.register_tx(Arc::new(tokio::sync::Mutex::new(Some(tx))))
    }

    /// Puts a shared transaction in the table; returns its handle.
    pub fn register_tx(&self, tx: SharedTx) -> u64 {
        let id = self.next_tx.fetch_add(1, Ordering::Relaxed);
        lock(&self.txs).insert(id, tx);
        id
    }

    /// The handle of a transaction already in the table.
    pub fn id_of(&self, tx: &SharedTx) -> Option<u64> {
        lock(&self.txs)
            .iter()
            .find(|(_, t)| Arc::ptr_eq(t, tx))
            .map(|(id, _)| *id)
    }

    pub fn forget_tx(&self, id: u64) {
        lock(&self.txs).remove(&id);
    }

    pub fn tx(&self, id: u64) -> Option<SharedTx> {
        lock(&self.txs).get(&id).cloned()
    }

    pub fn take_tx(&self, id: u64) -> Option<SharedTx> {
        lock(&self.txs).remove(&id)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
