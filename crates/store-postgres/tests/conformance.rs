//! Runs the `Store` conformance suite (`crates/store-conformance`) against `PgStore`: every
//! check on a fresh database of the PostgreSQL server `PLINTH_TEST_PG` names (a URL whose
//! user may create databases; `scripts/test-postgres.sh start` starts a throwaway one). Without
//! it the checks are skipped, and say so.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::{Dialect, Store};
use store_conformance::{Engine, OpenOptions, Opened};
use store_postgres::{PgOptions, PgStore};

/// A database made for one check, dropped with it.
struct TestDatabase {
    admin_url: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Dropped outside the test's runtime, which may be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

fn url_with_database(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("PLINTH_TEST_PG is a URL with a database");
    format!("{base}/{database}")
}

fn postgres() -> Option<Engine> {
    let Ok(admin_url) = std::env::var("PLINTH_TEST_PG") else {
        eprintln!(
            "skipped: PLINTH_TEST_PG is not set (scripts/test-postgres.sh start prints a value)"
        );
        return None;
    };
    Some(Engine::new(
        "postgres",
        Dialect::Postgres,
        move |options: OpenOptions| {
            let admin_url = admin_url.clone();
            Box::pin(async move {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "plinth_conformance_{}_{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                let (client, connection) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
                        .await
                        .expect("PLINTH_TEST_PG accepts connections");
                tokio::spawn(connection);
                client
                    .batch_execute(&format!(
                        "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
                    ))
                    .await
                    .expect("a test database is created");
                let database = TestDatabase {
                    admin_url: admin_url.clone(),
                    name: name.clone(),
                };
                let store = PgStore::open(
                    &url_with_database(&admin_url, &name),
                    PgOptions {
                        pool_size: 8,
                        query_timeout: Some(options.query_timeout),
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
