//! One module per subcommand.

pub mod serve;
pub mod superuser;

use std::sync::Arc;

use anyhow::Context;
use store_sqlite::{SqliteOptions, SqliteStore};

/// Opens (creating when needed) the SQLite store in `dir`.
pub fn open_store(
    dir: &std::path::Path,
    synchronous_full: bool,
) -> anyhow::Result<Arc<SqliteStore>> {
    let options = SqliteOptions {
        synchronous_full,
        ..SqliteOptions::default()
    };
    SqliteStore::open(dir, options)
        .with_context(|| format!("opening the database in {}", dir.display()))
}
