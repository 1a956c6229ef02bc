//! `plinth serve`: open the store, build the router, listen, and shut down gracefully on
//! SIGINT or SIGTERM (in-flight requests finish, the WAL is checkpointed, exit code 0).
//!
//! Connections are served by hyper's HTTP/1 server directly rather than `axum::serve`: the
//! latter sniffs every connection for an HTTP/2 preface first, which makes hyper read the
//! request in two pieces and double its read buffer, a cost each idle keep-alive or realtime
//! connection then carries for its whole life (issue #6). Plain-TCP HTTP/2 (h2c) goes with it;
//! PocketBase does not serve it either.
//!
//! Every connection is bounded (issue #11): a request head must arrive complete within the
//! header timeout of the connection opening or of its previous response (hyper's timer, which
//! so also closes idle keep-alive connections and costs one timer entry per connection, no
//! buffer); a request body must arrive in full within the body timeout of its head (a timer
//! allocated only while a body read actually waits); and past the connection cap a new
//! connection is answered `503` in PocketBase's error shape and closed, rather than left
//! waiting in the backlog. Realtime streams are responses being written, which neither timer
//! touches: the hub gives them their own lifetimes and caps. Every response write, a stream's
//! too, must make progress within the write timeout (a timer armed only while a write waits),
//! so a client that stops reading cannot hold its connection.
//!
//! Each connection takes a file descriptor, and so do SQLite and stored files: at start the
//! soft open-file limit is raised to the hard one (as Go does for PocketBase), and the
//! connection cap is lowered to leave headroom under it ([`effective_max_connections`]), so
//! the cap refuses connections before `accept` and file opens fail for lack of descriptors.
//! One peer address may hold at most `--max-connections-per-ip` of them (answered `429`, so
//! one client cannot take every place); loopback peers are exempt unless configured, since a
//! local reverse proxy carries every client's connections.
mod drain;

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use domain::Store;
use futures_util::FutureExt as _;
use futures_util::future::Either;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use server::handoff::{Handoff, HandoffIo};
use server::request_line::FirstLine;
use server::{AppState, ServerConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::config::{GlobalArgs, ServeArgs};

/// A database URL fit to print: `postgres://host:port/db`, without user or password.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let host = host.split('?').next().unwrap_or(host);
            format!("{scheme}://{host}")
        }
        None => "(unparsed URL)".to_owned(),
    }
}

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let (http_address, https_address) = listen_addresses(&args);
    // Domains are checked (and cached certificates loaded) before anything else starts.
    let auto_tls = match &https_address {
        Some(_) => Some(super::autotls::AutoTls::new(&args.domains, &global.dir)?),
        None => None,
    };
    let hash_cost = global.hash_cost()?;
    super::import_pocketbase::convert_in_place_if_needed(global).await?;
    let store = match super::open_store(global, args.sync_full).await {
        Ok(store) => store,
        // Data a restore just put in place that will not open: the previous data, kept aside
        // until a boot succeeds, goes back.
        Err(error) => match server::backups::restore::roll_back(&global.dir) {
            Ok(true) => {
                eprintln!(
                    "The restored backup could not be opened ({error:#}); the previous data was put back."
                );
                super::open_store(global, args.sync_full).await?
            }
            _ => return Err(error),
        },
    };
    let config = ServerConfig {
        body_limit: args.body_limit,
        bcrypt_cost: hash_cost,
        argon2: server::state::Argon2Params::for_bcrypt_cost(hash_cost),
        storage_dir: Some(global.dir.join("storage")),
        public_dir: Some(global.public_dir()),
        index_fallback: global.index_fallback,
        origins: args.origins.clone(),
        settings_key: global.settings_key()?,
        metrics_secret: args
            .metrics_secret
            .clone()
            .map(server::state::MetricsSecret),
        data_dir: Some(global.dir.clone()),
        dashboard: Some(server::state::Dashboard(Arc::new(EmbeddedDashboard))),
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    let state = AppState::new(dyn_store, config);
    // Request logs go to their own database (PocketBase's auxiliary.db), written in batches.
    let log_store = store_sqlite::logs::SqliteLogStore::open(
        &global.dir,
        (global.query_timeout > 0).then(|| Duration::from_secs(global.query_timeout)),
    )
    .context("opening the log database")?;
    server::logs::install(&state, log_store);
    state.logs.set_dev(global.dev);
    // The settings are read once before anything listens: encrypted ones the key does not
    // open (or no key given) stop the start here, and plain ones are re-saved encrypted when
    // a key is given.
    let settings = server::settings::current(&state)
        .await
        .map_err(|error| anyhow::anyhow!("reading the settings: {}", error.message))?;
    let postgres = global.postgres_url()?;
    if postgres.is_some() && !settings.s3.enabled {
        // Another node cannot read a file this one keeps on its own disk.
        eprintln!(
            "Note: files are stored on this node's disk ({}). Before starting a second node on this database, enable S3-compatible storage (Settings > Files storage), or files uploaded to one node will be missing on the others.",
            global.dir.join("storage").display()
        );
    }
    // Open SSE streams would hold a graceful shutdown up for as long as they live.
    let realtime = state.realtime.clone();
    // Cron jobs run under `serve` only, as on PocketBase; no new run starts once shutdown
    // begins (runs in flight are ended with the runtime).
    super::hooks::start(global, &state).await?;
    // Pending migrations run after the hooks load (their model hooks fire for migration
    // saves, as in PocketBase) and before anything listens; a failure stops the start.
    if let Some(scripts) = server::scripts::of(&state) {
        let dir = global.migrations_dir();
        server::scripts::migrations::apply_pending(&state, scripts, &dir).await?;
        if global.automigrate {
            let _ = scripts.automigrate_dir.set(dir);
        }
    }
    for name in ["onBootstrap", "onServe"] {
        server::scripts::run_app_hook(&state, name, serde_json::json!({}))
            .await
            .map_err(|error| anyhow::anyhow!("{name} hook failed: {error}"))?;
    }
    let terminating = state.clone();
    let installer = state.clone();
    // Claimed in the store, so with several nodes on one database a job runs once.
    let crons = state.crons.start_claiming(state.store.clone());
    let app = server::service(state);
    let http_listener = bind(&http_address).await?;
    // With TLS the API is served on the HTTPS address and plain HTTP only answers the ACME
    // challenges and redirects.
    let (listener, redirect) = match (&auto_tls, &https_address) {
        (Some(tls), Some(https)) => (bind(https).await?, Some((http_listener, tls.clone()))),
        _ => (http_listener, None),
    };
    let address = listener.local_addr().context("reading the bound address")?;
    let scheme = if redirect.is_some() { "https" } else { "http" };
    if server::superusers::count(store.as_ref()).await.unwrap_or(0) == 0 {
        // The link works once, on this process; a restart prints a new one.
        let token = installer.installer.issue();
        println!(
            "No superuser exists yet. Open this link to create the first one (it works once):"
        );
        println!("  {scheme}://{}/_/#/install/{token}", browsable(address));
        println!("or create one from the command line:");
        println!(
            "  plinth superuser upsert EMAIL PASSWORD --dir {}",
            shell_quote(&global.dir.display().to_string())
        );
        println!();
    }
    println!("Server started at {scheme}://{address}");
    if let Some((plain, _)) = &redirect {
        let plain = plain.local_addr().context("reading the bound address")?;
        println!("├─ HTTP:      http://{plain} (ACME challenges, redirects to HTTPS)");
        println!("├─ Domains:   {}", args.domains.join(", "));
    }
    println!("├─ REST API:  {scheme}://{address}/api/");
    println!("├─ Dashboard: {scheme}://{}/_/", browsable(address));
    if let Some(url) = postgres {
        println!("├─ Database:  PostgreSQL {}", without_credentials(url));
    }
    println!("└─ Data dir:  {}", global.dir.display());
    let requested = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
    let nofile = raise_open_file_limit();
    let max_connections = effective_max_connections(requested, nofile);
    if max_connections < requested {
        tracing::warn!(
            requested,
            max_connections,
            open_files = nofile.unwrap_or(0),
            "the open-file limit leaves room for fewer connections than --max-connections"
        );
    }
    tracing::info!(
        max_connections,
        max_connections_per_ip = args.max_connections_per_ip,
        "connection caps"
    );
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(args.header_timeout),
        body_timeout: Duration::from_secs(args.body_timeout),
        write_timeout: Duration::from_secs(args.write_timeout),
        max_connections,
        max_per_ip: match args.max_connections_per_ip {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
        cap_loopback: args.cap_loopback_connections,
    };
    let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = global
        .hooks_watch
        .then(|| global.hooks_dir())
        .filter(|d| d.is_dir());
    let restarting = restart.clone();
    // The plain-HTTP side of TLS stops when the main listener's shutdown begins.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let redirects = async move {
        if let Some((plain, tls)) = redirect {
            tls.spawn_manager();
            let mut stopped = stopped;
            serve_http1(plain, tls.http_router(), limits, None, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
        }
    };
    let acceptor = match &auto_tls {
        Some(tls) => Some(tls.acceptor()?),
        None => None,
    };
    // A verified restore asks for a restart with its staged data (`server::backups`).
    let restore_state = terminating.clone();
    let staged_restore: Arc<Mutex<Option<std::path::PathBuf>>> = Arc::default();
    let staging = staged_restore.clone();
    let main = serve_http1(listener, app, limits, acceptor, async move {
        let hooks_changed = async {
            match watch {
                Some(dir) => super::hooks::changed(dir).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown_signal() => {}
            () = hooks_changed => restarting.store(true, Ordering::SeqCst),
            staged = restore_state.backups.restart_requested() => {
                *staging.lock().unwrap_or_else(PoisonError::into_inner) = Some(staged);
                restarting.store(true, Ordering::SeqCst);
            }
        }
        let _ = stopping.send(true);
        crons.stop();
        realtime.shutdown();
    });
    tokio::join!(main, redirects);
    let is_restart = restart.load(Ordering::SeqCst);
    if let Err(error) = server::scripts::run_app_hook(
        &terminating,
        "onTerminate",
        serde_json::json!({ "isRestart": is_restart }),
    )
    .await
    {
        tracing::warn!(%error, "onTerminate hook failed");
    }
    tracing::info!("shutting down: checkpointing the database");
    store.close().await.context("closing the database")?;
    let staged = staged_restore
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(staged) = staged {
        // The store is closed: nothing writes to the old data while it is moved aside.
        let mut swap = server::backups::restore::swap_in(&global.dir, &staged)
            .context("putting the restored backup in place")?;
        println!("Backup restored, restarting...");
        if let Err(error) = restart_process() {
            if let Err(undo) = swap.undo() {
                tracing::error!(%undo, "cannot put the old data back after a failed restart");
            }
            return Err(error);
        }
    } else if restart.load(Ordering::SeqCst) {
        restart_process()?;
    }
    Ok(())
}

/// The HTTP and HTTPS addresses, defaulted as PocketBase does: `127.0.0.1:8090` and no TLS,
/// or with domain arguments `0.0.0.0:80` and `0.0.0.0:443`.
fn listen_addresses(args: &ServeArgs) -> (String, Option<String>) {
    if args.domains.is_empty() {
        let http = args.http.clone().unwrap_or_else(|| "127.0.0.1:8090".into());
        (http, args.https.clone())
    } else {
        let http = args.http.clone().unwrap_or_else(|| "0.0.0.0:80".into());
        let https = args.https.clone().unwrap_or_else(|| "0.0.0.0:443".into());
        (http, Some(https))
    }
}

/// Listens on `address`; an empty host (`:8090`, Go's form) means every interface, IPv6 and
/// IPv4 where the host has IPv6, else IPv4's.
async fn bind(address: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let attempt = |address: String| async move {
        tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("listening on {address}"))
    };
    match address.strip_prefix(':') {
        Some(port) => match attempt(format!("[::]:{port}")).await {
            Ok(listener) => Ok(listener),
            Err(_) => attempt(format!("0.0.0.0:{port}")).await,
        },
        None => attempt(address.to_owned()).await,
    }
}

/// Replaces this process with a fresh run of the same command line (same PID), as
/// PocketBase does when a hook file changes or a backup was restored.
fn restart_process() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe().context("finding the running binary")?;
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(error).context("restarting after a hook change")
}

/// The bounds every connection is held to (see the module comment).
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    header_timeout: Duration,
    body_timeout: Duration,
    write_timeout: Duration,
    max_connections: usize,
    /// Connections one peer address may hold (`usize::MAX`: no cap).
    max_per_ip: usize,
    /// Whether loopback peers count under `max_per_ip`.
    cap_loopback: bool,
}

/// File descriptors kept free of connections for the database, its WAL, stored files and
/// thumbnails, logs and the listener.
const FD_HEADROOM: u64 = 256;

/// Raises the soft open-file limit to the hard limit; returns the limit now in force (`None`
/// where it cannot be read).
fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(error) => {
                tracing::warn!(%error, "cannot raise the open-file limit");
                rlimit::Resource::NOFILE
                    .get()
                    .ok()
                    .map(|(soft, _hard)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap in force: the requested one, lowered to leave [`FD_HEADROOM`]
/// descriptors (or half of a small limit) for everything else.
fn effective_max_connections(requested: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return requested;
    };
    let room = nofile.saturating_sub(FD_HEADROOM).max(nofile / 2).max(1);
    requested.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// Connections held per peer address (only those under the cap).
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// One peer address's place under the per-address cap, given back on drop.
struct IpSlot {
    counts: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Takes a place for `ip` unless it holds `max` already.
    fn take(counts: &Arc<PerIp>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut map = counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        let held = map.entry(ip).or_default();
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(IpSlot {
            counts: Arc::clone(counts),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = map.get_mut(&self.ip) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Connections being refused at once, at most: each holds a socket for a moment while the
/// `503` goes out; past this a surplus connection is closed without an answer.
const MAX_REFUSING: usize = 64;

/// How long a refused connection is given to take its `503`.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// What answers the requests of the connections [`serve_http1`] accepts, each request's
/// future of its own type, which hyper keeps in the connection's box for it.
trait Answers: Clone + Send + Sync + 'static {
    fn answer(
        &self,
        request: axum::extract::Request,
    ) -> impl Future<Output = axum::response::Response> + Send + 'static + use<Self>;
}

impl Answers for server::App {
    fn answer(
        &self,
        request: axum::extract::Request,
    ) -> impl Future<Output = axum::response::Response> + Send + 'static + use<> {
        server::App::answer(self, request)
    }
}

/// A router (the plain-HTTP side of `serve DOMAIN`), called as a tower service.
impl Answers for axum::Router {
    fn answer(
        &self,
        request: axum::extract::Request,
    ) -> impl Future<Output = axum::response::Response> + Send + 'static + use<> {
        use tower::ServiceExt as _;
        self.clone().oneshot(request).map(|answer| match answer {
            Ok(response) => response,
            Err(never) => match never {},
        })
    }
}

/// Accepts connections until `shutdown` completes, then lets the open ones finish: each is
/// told to close once its in-flight request is answered, and this returns when all are gone
/// (handed-off realtime streams: for at most [`HANDED_OFF_DRAIN`]). `shutdown` must also end
/// the realtime streams, or they would hold this up.
async fn serve_http1(
    listener: tokio::net::TcpListener,
    app: impl Answers,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let drain = drain::Drain::default();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The timer runs from when a connection is ready for a request head until the head is
    // complete: slow-loris heads and idle keep-alive connections end alike.
    http.timer(hyper_util::rt::TokioTimer::new());
    http.header_read_timeout(limits.header_timeout);
    let open = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    let per_ip = Arc::new(PerIp::default());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // A connection the client gave up on before we took it concerns no one.
                    if !is_connection_error(&error) {
                        // Most likely out of file descriptors: give open connections a moment
                        // to close rather than spin on the error.
                        tracing::error!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&open, limits.max_connections) else {
            tracing::debug!(%peer, "connection cap reached; refusing");
            // A TLS client cannot read a plain answer: it is only closed.
            if tls.is_none() {
                refuse(tcp, &refusing, Refusal::Full);
            }
            continue;
        };
        let ip = peer.ip().to_canonical();
        let ip_slot =
            if limits.max_per_ip == usize::MAX || (ip.is_loopback() && !limits.cap_loopback) {
                None
            } else {
                let Some(ip_slot) = PerIp::take(&per_ip, ip, limits.max_per_ip) else {
                    tracing::debug!(%peer, "per-address connection cap reached; refusing");
                    drop(slot);
                    if tls.is_none() {
                        refuse(tcp, &refusing, Refusal::TooManyFromIp);
                    }
                    continue;
                };
                Some(ip_slot)
            };
        // Each request's future runs in the peer address's scope (`server::peer`, which the
        // log, the rate limiter, realtime and the hooks read); the body gets its deadline from
        // the moment its head arrived.
        // A realtime stream may take the socket from hyper (`server::handoff`); the
        // connection's places under the caps go with the socket, so they are given back when
        // the connection ends, however and by whomever it ends.
        let body_timeout = limits.body_timeout;
        let handoff = Handoff::new(limits.write_timeout);
        let places: Box<dyn Send> = Box::new((slot, ip_slot));
        // Requests hyper parses after a realtime stream took the socket were pipelined behind
        // it by the client: they are not served (as when the stream held the connection).
        let service = hyper::service::service_fn({
            let (app, handoff) = (app.clone(), Arc::clone(&handoff));
            move |request: axum::extract::Request<Incoming>| {
                let answer = (!handoff.is_taken()).then(|| {
                    let (mut parts, body) = request.into_parts();
                    // Only the realtime stream can use it: other requests skip the allocation.
                    if parts.uri.path() == server::realtime::STREAM_PATH {
                        parts.extensions.insert(Arc::clone(&handoff));
                    }
                    let body = axum::body::Body::new(TimedBody::new(body, body_timeout));
                    server::peer::scope(
                        peer,
                        app.answer(axum::extract::Request::from_parts(parts, body))
                            .map(Ok::<_, std::convert::Infallible>),
                    )
                });
                // Either future as it is: an async block awaiting `answer` would hold it
                // twice (captured and awaited), doubling what each request allocates.
                match answer {
                    Some(answer) => Either::Left(answer),
                    None => Either::Right(std::future::ready(Ok(axum::response::Response::new(
                        axum::body::Body::empty(),
                    )))),
                }
            }
        });
        let Some(acceptor) = tls.clone() else {
            let connection = http.serve_connection(
                StallBound::new(
                    hyper_util::rt::TokioIo::new(HandoffIo::new(
                        FirstLine::new(tcp),
                        handoff,
                        places,
                    )),
                    limits.write_timeout,
                ),
                service,
            );
            let connection = drain.watch(connection);
            // `map`, not an async block, which would hold the connection twice.
            tokio::spawn(connection.map(move |ended| {
                // Clients that vanish mid-request are routine, not worth a log line.
                if let Err(error) = ended {
                    tracing::trace!(%error, %peer, "connection ended with an error");
                }
            }));
            continue;
        };
        let drain = drain.clone();
        let http = http.clone();
        tokio::spawn(async move {
            // The handshake is bounded like a request head.
            let stream =
                match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let connection = http.serve_connection(
                StallBound::new(
                    hyper_util::rt::TokioIo::new(HandoffIo::new(
                        FirstLine::new(stream),
                        handoff,
                        places,
                    )),
                    limits.write_timeout,
                ),
                service,
            );
            if let Err(error) = drain.watch(connection).await {
                tracing::trace!(%error, %peer, "connection ended with an error");
            }
        });
    }
    // Stop accepting now rather than leave clients waiting in the backlog during the drain.
    drop(listener);
    drain.shutdown().await;
    // Realtime streams that took their socket from hyper (`server::handoff`) are not hyper's
    // to wait for; they hold their connection's places until they have ended their body, which
    // `shutdown` told them to do. Bounded, for a client that stopped reading.
    let deadline = tokio::time::Instant::now() + HANDED_OFF_DRAIN;
    while open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long a shutdown waits for handed-off realtime streams to write their end.
const HANDED_OFF_DRAIN: Duration = Duration::from_secs(2);

/// One place under a counted cap, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(Arc::clone(counter)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// The server holds `max_connections`: `503`, it is the server that is full.
    Full,
    /// The peer address holds its share: `429`, as for realtime clients per IP, since it is
    /// this client that asks too much.
    TooManyFromIp,
}

/// The answer to a refused connection, in PocketBase's error shape.
fn refusal(why: Refusal) -> Vec<u8> {
    const FULL: &str =
        r#"{"data":{},"message":"Too many open connections; try again later.","status":503}"#;
    const FROM_IP: &str = r#"{"data":{},"message":"Too many open connections from this address; try again later.","status":429}"#;
    let (status, body) = match why {
        Refusal::Full => ("503 Service Unavailable", FULL),
        Refusal::TooManyFromIp => ("429 Too Many Requests", FROM_IP),
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers `503` (or `429`, see [`Refusal`]) on a connection past a cap and closes it. The request head is read first
/// (an HTTP client takes an answer that comes before its request for a broken connection),
/// then the rest is read and discarded briefly, so the close does not reset the connection
/// before the client has read the answer. All of it within [`REFUSAL_TIME`].
fn refuse(mut tcp: tokio::net::TcpStream, refusing: &Arc<AtomicUsize>, why: Refusal) {
    let Some(slot) = Slot::take(refusing, MAX_REFUSING) else {
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        let answer = async {
            skip_request_head(&mut tcp).await?;
            tcp.write_all(&refusal(why)).await?;
            tcp.shutdown().await?;
            let mut discard = [0u8; 1024];
            while tcp.read(&mut discard).await? != 0 {}
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSAL_TIME, answer).await;
    });
}

/// Reads up to the blank line that ends a request head (or the connection's end, or 64 KiB).
async fn skip_request_head(tcp: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buffer = [0u8; 1024];
    let mut last = [0u8; 4];
    let mut total = 0usize;
    while total < 64 << 10 {
        let n = tcp.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        total += n;
        for &byte in &buffer[..n] {
            last = [last[1], last[2], last[3], byte];
            if &last == b"\r\n\r\n" {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A connection's socket whose writes must make progress: a write or flush that has waited
/// `limit` without moving a byte fails, which ends the connection.
///
/// Its shutdown lingers: hyper closes a connection whose request body it did not read (a body
/// over the size limit answered 413 at once, say) while the client may still be sending it.
/// Closing a socket with unread data resets the connection, and a client still writing its
/// body then loses the answer it was sent. So, as Go's server does (and PocketBase with it),
/// the write side is shut first and what the client goes on sending is read and dropped until
/// it closes too, for at most [`LINGER_TIME`] and [`LINGER_BYTES`].
struct StallBound<T> {
    inner: T,
    limit: Duration,
    /// Armed while a write waits, so an idle connection holds no timer here.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set once the write side is shut: the linger's deadline and the bytes it may still drop.
    linger: Option<(Pin<Box<tokio::time::Sleep>>, usize)>,
}

/// How long a closing connection keeps reading what its client still sends.
const LINGER_TIME: Duration = Duration::from_millis(500);

/// How much a closing connection reads and drops at most.
const LINGER_BYTES: usize = 64 << 20;

impl<T> StallBound<T> {
    fn new(inner: T, limit: Duration) -> StallBound<T> {
        StallBound {
            inner,
            limit,
            stalled: None,
            linger: None,
        }
    }

    /// Passes a finished write on (and disarms the timer); fails a waiting one past `limit`.
    fn bound<R>(
        &mut self,
        cx: &mut TaskContext<'_>,
        result: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for StallBound<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + hyper::rt::Read + Unpin> hyper::rt::Write for StallBound<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.bound(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.bound(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.bound(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            let result = Pin::new(&mut this.inner).poll_shutdown(cx);
            match this.bound(cx, result) {
                Poll::Ready(Ok(())) => {
                    this.linger = Some((Box::pin(tokio::time::sleep(LINGER_TIME)), LINGER_BYTES));
                }
                other => return other,
            }
        }
        let Some((deadline, left)) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        let mut scratch = [0u8; 8 << 10];
        while *left > 0 {
            let mut buf = hyper::rt::ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, buf.unfilled()) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *left = left.saturating_sub(buf.filled().len());
                }
                // The client's end (or an error): nothing more to wait for.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// A request body that must arrive in full by a deadline; past it, reading fails (the
/// handler answers a client error and hyper closes the connection, the body being unread).
struct TimedBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    /// Armed on the first read that has to wait, so bodies that are already there (and
    /// requests without one) cost no timer.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> TimedBody {
        TimedBody {
            inner,
            deadline: tokio::time::Instant::now() + timeout,
            sleep: None,
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug)]
enum BodyError {
    Read(hyper::Error),
    TimedOut,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Read(error) => write!(f, "reading the request body: {error}"),
            BodyError::TimedOut => f.write_str("the request body did not arrive in time"),
        }
    }
}

impl std::error::Error for BodyError {}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(BodyError::Read))),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}

fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The dashboard's files, embedded from the `admin-ui` crate.
struct EmbeddedDashboard;

impl server::state::DashboardFiles for EmbeddedDashboard {
    fn get(&self, path: &str) -> Option<server::state::DashboardFile> {
        admin_ui::get(path).map(|asset| server::state::DashboardFile {
            bytes: asset.bytes,
            content_type: asset.content_type,
            immutable: asset.immutable,
        })
    }
}

/// An address a browser can open: a wildcard bind is reached on loopback.
fn browsable(address: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut address = address;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    address
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_print_without_credentials() {
        assert_eq!(
            without_credentials("postgres://app:s3cret@db.internal:5432/plinth?sslmode=disable"),
            "postgres://db.internal:5432/plinth"
        );
        assert_eq!(
            without_credentials("postgresql://db/plinth"),
            "postgresql://db/plinth"
        );
        assert_eq!(without_credentials("nonsense"), "(unparsed URL)");
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_for_files() {
        // The usual soft limit when nothing raises it.
        assert_eq!(effective_max_connections(20_000, Some(1024)), 768);
        assert_eq!(effective_max_connections(20_000, Some(1 << 20)), 20_000);
        assert_eq!(effective_max_connections(500, Some(1024)), 500);
        // A small limit keeps half for connections rather than none.
        assert_eq!(effective_max_connections(20_000, Some(300)), 150);
        assert_eq!(effective_max_connections(20_000, Some(1)), 1);
        assert_eq!(effective_max_connections(20_000, None), 20_000);
    }

    #[test]
    fn domains_turn_https_on_with_pocketbase_defaults() {
        use clap::Parser as _;
        let serve = |args: &[&str]| {
            let cli = crate::config::Cli::try_parse_from([&["plinth", "serve"], args].concat())
                .expect("parses");
            match cli.command {
                crate::config::Command::Serve(serve) => listen_addresses(&serve),
                _ => panic!("serve expected"),
            }
        };
        assert_eq!(serve(&[]), ("127.0.0.1:8090".to_owned(), None));
        assert_eq!(
            serve(&["example.com"]),
            ("0.0.0.0:80".to_owned(), Some("0.0.0.0:443".to_owned()))
        );
        assert_eq!(
            serve(&["example.com", "--http=:8080", "--https=:8443"]),
            (":8080".to_owned(), Some(":8443".to_owned()))
        );
        assert_eq!(
            serve(&["--https=127.0.0.1:8443"]),
            (
                "127.0.0.1:8090".to_owned(),
                Some("127.0.0.1:8443".to_owned())
            )
        );
    }

    #[test]
    fn per_ip_places_are_counted_and_given_back() {
        let counts = Arc::new(PerIp::default());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = PerIp::take(&counts, a, 2).expect("first");
        let _second = PerIp::take(&counts, a, 2).expect("second");
        assert!(
            PerIp::take(&counts, a, 2).is_none(),
            "a third from one address"
        );
        assert!(PerIp::take(&counts, b, 2).is_some(), "another address");
        drop(first);
        assert!(
            PerIp::take(&counts, a, 2).is_some(),
            "a closed one frees its place"
        );
    }
}
