//! Runs the `Store` conformance suite (`crates/store-conformance`) against `PgStore`: every
//! check on a fresh database of the PostgreSQL server `PLINTH_TEST_PG` names (a URL whose
//! user may create databases; `scripts/test-postgres.sh start` starts a throwaway one). Without
//! it the checks are skipped, and say so.

mod common;

use std::sync::Arc;

use domain::{Dialect, Store};
use store_conformance::{Engine, OpenOptions, Opened};
use store_postgres::{PgOptions, PgStore};

fn postgres() -> Option<Engine> {
    let admin_url = common::admin_url()?;
    Some(Engine::new(
        "postgres",
        Dialect::Postgres,
        move |options: OpenOptions| {
            let admin_url = admin_url.clone();
            Box::pin(async move {
                let (database, url) = common::fresh_database(&admin_url, "conformance").await;
                let store = PgStore::open(
                    &url,
                    PgOptions {
                        pool_size: 8,
                        query_timeout: Some(options.query_timeout),
                        ..PgOptions::default()
                    },
                )
                .await
                .expect("the store opens");
                let store: Arc<dyn Store> = store;
                Opened {
                    store,
                    keep_alive: Box::new(database),
                }
            })
        },
    ))
}

store_conformance::conformance_tests!(postgres());
