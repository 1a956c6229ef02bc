//! One module per subcommand.

pub mod autotls;
pub mod hooks;
pub mod import_pocketbase;
pub mod migrate;
pub mod serve;
pub mod superuser;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::Store;
use store_postgres::{PgOptions, PgStore};
use store_sqlite::{SqliteOptions, SqliteStore};

use crate::config::GlobalArgs;

/// Opens the store `--db` names: PostgreSQL for a `postgres://` URL, else (creating it when
/// needed) the SQLite database in `--dir`, with the global database flags.
pub async fn open_store(
    global: &GlobalArgs,
    synchronous_full: bool,
) -> anyhow::Result<Arc<dyn Store>> {
    let query_timeout =
        (global.query_timeout > 0).then(|| Duration::from_secs(global.query_timeout));
    if let Some(url) = global.postgres_url()? {
        let options = PgOptions {
            pool_size: global.db_pool.max(2),
            query_timeout,
            change_log_max_bytes: global.change_log_max_bytes,
        };
        let store = PgStore::open(url, options)
            .await
            .context("opening the PostgreSQL database")?;
        return Ok(store);
    }
    Ok(open_sqlite(global, synchronous_full)?)
}

/// Opens (creating when needed) the SQLite store in `--dir`, with the global database flags.
pub fn open_sqlite(
    global: &GlobalArgs,
    synchronous_full: bool,
) -> anyhow::Result<Arc<SqliteStore>> {
    let options = SqliteOptions {
        synchronous_full,
        query_timeout: (global.query_timeout > 0)
            .then(|| Duration::from_secs(global.query_timeout)),
        change_log_max_bytes: global.change_log_max_bytes,
        ..SqliteOptions::default()
    };
    if store_sqlite::pocketbase::detect(&global.dir)?
        == store_sqlite::pocketbase::DataDirKind::PocketBase
    {
        anyhow::bail!(
            "{} holds a PocketBase data directory: `plinth serve` converts it in place (after a backup), or `plinth import-pocketbase {} --dir NEW_DIR` copies it",
            global.dir.display(),
            global.dir.display()
        );
    }
    SqliteStore::open(&global.dir, options)
        .with_context(|| format!("opening the database in {}", global.dir.display()))
}
