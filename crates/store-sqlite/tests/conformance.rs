//! Runs the `Store` conformance suite (`crates/store-conformance`) against `SqliteStore`: every
//! check on a fresh database in its own temp dir.

use std::sync::Arc;

use domain::{Dialect, Store};
use store_conformance::{Engine, OpenOptions, Opened};
use store_sqlite::{SqliteOptions, SqliteStore};

fn sqlite() -> Engine {
    Engine::new("sqlite", Dialect::Sqlite, |options: OpenOptions| {
        Box::pin(async move {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteStore::open(
                dir.path(),
                SqliteOptions {
                    readers: 2,
                    query_timeout: Some(options.query_timeout),
                    ..SqliteOptions::default()
                },
            )
            .expect("the store opens");
            let store: Arc<dyn Store> = store;
            Opened {
                store,
                keep_alive: Box::new(dir),
            }
        })
    })
}

store_conformance::conformance_tests!(sqlite());
