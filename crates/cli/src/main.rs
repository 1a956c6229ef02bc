//! The `plinth` binary: parses the command line (PocketBase-compatible), opens the store and
//! runs a subcommand. This is the only place where a concrete store meets the server.

mod alloc;
mod commands;
mod config;

use std::process::ExitCode;

use clap::Parser;

use config::{Cli, Command};

/// mimalloc instead of glibc's malloc: under load glibc spent about a fifth of the server's CPU
/// in `malloc`/`free` and their consolidation (perf, `view` workload); see docs/benchmarks.md.
/// Built with its arenas committed lazily (`.cargo/config.toml`), so an idle server is no
/// larger than with glibc. Called through [`alloc::Allocator`], which asks for plain blocks.
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.dev);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(&cli.global, args).await,
            Command::Superuser(args) => commands::superuser::run(&cli.global, args).await,
            Command::Migrate(args) => commands::migrate::run(&cli.global, args).await,
            Command::ImportPocketbase(args) => {
                commands::import_pocketbase::run(&cli.global, args).await
            }
            Command::MigrateToPostgres => {
                commands::import_pocketbase::migrate_to_postgres(&cli.global).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(dev: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if dev { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("PLINTH_LOG")
        .or_else(|_| EnvFilter::try_new(default))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
