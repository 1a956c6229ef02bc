//! A fresh database per test on the server `PLINTH_TEST_PG` names, dropped afterwards.

use std::sync::atomic::{AtomicU64, Ordering};

/// A database made for one check, dropped with it.
pub struct TestDatabase {
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

pub fn url_with_database(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("PLINTH_TEST_PG is a URL with a database");
    format!("{base}/{database}")
}

/// The admin URL, or `None` (and a line saying the tests are skipped) when it is not set.
pub fn admin_url() -> Option<String> {
    let url = std::env::var("PLINTH_TEST_PG").ok();
    if url.is_none() {
        eprintln!(
            "skipped: PLINTH_TEST_PG is not set (scripts/test-postgres.sh start prints a value)"
        );
    }
    url
}

/// Creates a fresh, empty database; returns it (dropped with the guard) and its URL.
pub async fn fresh_database(admin_url: &str, tag: &str) -> (TestDatabase, String) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "plinth_{tag}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("PLINTH_TEST_PG accepts connections");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
        ))
        .await
        .expect("a test database is created");
    let url = url_with_database(admin_url, &name);
    (
        TestDatabase {
            admin_url: admin_url.to_owned(),
            name,
        },
        url,
    )
}
