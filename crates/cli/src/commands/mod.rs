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
use store_sqlite::{SqliteOptions, SqliteStore};

use crate::config::GlobalArgs;

/// Opens (creating when needed) the SQLite store in `--dir`, with the global database flags.
pub fn open_store(global: &GlobalArgs, synchronous_full: bool) -> anyhow::Result<Arc<SqliteStore>> {
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
