//! `plinth serve`: open the store, build the router, listen, and shut down gracefully on
//! SIGINT or SIGTERM (in-flight requests finish, the WAL is checkpointed, exit code 0).
//!
//! Connections are served by hyper's HTTP/1 server directly rather than `axum::serve`: the
//! latter sniffs every connection for an HTTP/2 preface first, which makes hyper read the
//! request in two pieces and double its read buffer, a cost each idle keep-alive or realtime
//! connection then carries for its whole life (issue #6). Plain-TCP HTTP/2 (h2c) goes with it;
//! PocketBase does not serve it either.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::Store;
use server::{AppState, ServerConfig};

use crate::config::{GlobalArgs, ServeArgs};

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    if !args.domains.is_empty() {
        anyhow::bail!(
            "serving domains with automatic TLS is not supported yet; put a TLS proxy in front and use --http"
        );
    }
    let hash_cost = global.hash_cost()?;
    let store = super::open_store(global, args.sync_full)?;
    let config = ServerConfig {
        body_limit: args.body_limit,
        bcrypt_cost: hash_cost,
        argon2: server::auth::password::Argon2Params::for_bcrypt_cost(hash_cost),
        storage_dir: Some(global.dir.join("storage")),
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    let state = AppState::new(dyn_store, config);
    // Open SSE streams would hold a graceful shutdown up for as long as they live.
    let realtime = state.realtime.clone();
    let app = server::router(state);
    let listener = tokio::net::TcpListener::bind(&args.http)
        .await
        .with_context(|| format!("listening on {}", args.http))?;
    let address = listener.local_addr().context("reading the bound address")?;
    if server::superusers::count(store.as_ref()).await.unwrap_or(0) == 0 {
        println!("No superuser exists yet. Create one with:");
        println!(
            "  plinth superuser upsert EMAIL PASSWORD --dir {}",
            shell_quote(&global.dir.display().to_string())
        );
        println!();
    }
    println!("Server started at http://{address}");
    println!("├─ REST API:  http://{address}/api/");
    println!("└─ Data dir:  {}", global.dir.display());
    serve_http1(listener, app, async move {
        shutdown_signal().await;
        realtime.shutdown();
    })
    .await;
    tracing::info!("shutting down: checkpointing the database");
    store.close().await.context("closing the database")?;
    Ok(())
}

/// Accepts connections until `shutdown` completes, then lets the open ones finish: each is
/// told to close once its in-flight request is answered, and this returns when all are gone.
/// `shutdown` must also end the realtime streams, or they would hold this up.
async fn serve_http1(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    use tower::ServiceExt as _;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's 30 s header-read timeout needs a timer, and without one it is off, as it was
    // under `axum::serve`; turning it on would also close idle keep-alive connections.
    http.header_read_timeout(None);
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
        // The rate limiter and realtime read the peer address from `ConnectInfo`.
        let service = app.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        );
        let connection = http.serve_connection(
            hyper_util::rt::TokioIo::new(tcp),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Clients that vanish mid-request are routine, not worth a log line.
            if let Err(error) = connection.await {
                tracing::trace!(%error, %peer, "connection ended with an error");
            }
        });
    }
    // Stop accepting now rather than leave clients waiting in the backlog during the drain.
    drop(listener);
    graceful.shutdown().await;
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
