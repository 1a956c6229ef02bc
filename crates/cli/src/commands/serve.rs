//! `plinth serve`: open the store, build the router, listen, and shut down gracefully on
//! SIGINT or SIGTERM (in-flight requests finish, the WAL is checkpointed, exit code 0).

use std::sync::Arc;

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
    let store = super::open_store(&global.dir, args.sync_full)?;
    let config = ServerConfig {
        body_limit: args.body_limit,
        bcrypt_cost: global.bcrypt_cost,
        argon2: server::auth::password::Argon2Params::for_bcrypt_cost(global.bcrypt_cost),
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
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        realtime.shutdown();
    })
    .await
    .context("serving HTTP")?;
    tracing::info!("shutting down: checkpointing the database");
    store.close().await.context("closing the database")?;
    Ok(())
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
