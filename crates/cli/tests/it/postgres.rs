//! Plinth on PostgreSQL, end to end, with the real binary: a SQLite data dir moved over with
//! `migrate-to-postgres`, then two nodes serving the same database. Runs when `PLINTH_TEST_PG`
//! names a server whose user may create databases (`scripts/test-postgres.sh start`); says
//! it was skipped otherwise.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::realtime::Stream;
use crate::support::{Launch, TestApp, plinth_bin};

/// A fresh database on the `PLINTH_TEST_PG` server, dropped at the end of the test.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin: &str, tag: &str) -> Database {
        let name = format!("plinth_it_{tag}_{}", std::process::id());
        let psql = |sql: &str| {
            let status = Command::new("psql")
                .args([admin, "-qc", sql])
                .status()
                .expect("psql runs");
            assert!(status.success(), "{sql}");
        };
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
        ));
        let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
        Database {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin.as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}

fn admin_url() -> Option<String> {
    let url = std::env::var("PLINTH_TEST_PG").ok();
    if url.is_none() {
        eprintln!("skipped: PLINTH_TEST_PG is not set (scripts/test-postgres.sh start prints one)");
    }
    url
}

/// A node on `url`, with its own (otherwise unused) data dir.
fn node(url: &str) -> TestApp {
    TestApp::spawn_with(
        tempfile::tempdir().expect("tempdir"),
        &Launch {
            env: vec![("PLINTH_DB".into(), url.into())],
            ..Launch::default()
        },
    )
}

async fn titles(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let (status, body) = app
        .get(
            "/api/collections/notes/records?sort=title&perPage=100",
            token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_sqlite_data_dir_moves_to_postgres_and_two_nodes_serve_it() {
    let Some(admin) = admin_url() else {
        return;
    };
    // Data written on SQLite: a collection with a relation to users, a user with a password.
    let mut sqlite = TestApp::spawn().await;
    let token = sqlite.admin_token().await;
    let (status, users) = sqlite.get("/api/collections/users", Some(&token)).await;
    assert_eq!(status, 200);
    let (status, body) = sqlite
        .post_json(
            "/api/collections",
            Some(&token),
            json!({
                "name": "notes", "type": "base",
                "listRule": "", "viewRule": "", "createRule": "",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "n", "type": "number"},
                    {"name": "meta", "type": "json"},
                    {"name": "owner", "type": "relation", "collectionId": users["id"], "maxSelect": 1}
                ],
                "indexes": ["CREATE UNIQUE INDEX idx_notes_title ON notes (title)"]
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, user) = sqlite
        .post_json(
            "/api/collections/users/records",
            None,
            json!({"email": "ann@example.com", "password": "an-12345678", "passwordConfirm": "an-12345678"}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    for (i, title) in ["alpha", "beta", "gamma"].iter().enumerate() {
        let (status, body) = sqlite
            .post_json(
                "/api/collections/notes/records",
                None,
                json!({"title": title, "n": i, "meta": {"b": 1, "a": [i]}, "owner": user["id"]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(sqlite.terminate(), 0, "a clean stop");

    // The move, with every collection's rows counted on arrival.
    let database = Database::create(&admin, "move");
    let moved = Command::new(plinth_bin())
        .arg("migrate-to-postgres")
        .arg(format!("--dir={}", sqlite.dir.path().display()))
        .env("PLINTH_DB", &database.url)
        .output()
        .expect("plinth runs");
    let stderr = String::from_utf8_lossy(&moved.stderr);
    assert!(moved.status.success(), "{stderr}");
    assert!(
        stderr.contains("3 records") || stderr.contains("records"),
        "{stderr}"
    );
    // A second move into the same database is refused: it would mix data.
    let again = Command::new(plinth_bin())
        .arg("migrate-to-postgres")
        .arg(format!("--dir={}", sqlite.dir.path().display()))
        .env("PLINTH_DB", &database.url)
        .output()
        .expect("plinth runs");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Two nodes on the database. What moved is served by both: records, the superuser, the
    // user's password, the unique index.
    let a = node(&database.url);
    let b = node(&database.url);
    assert_eq!(titles(&a, None).await, ["alpha", "beta", "gamma"]);
    assert_eq!(titles(&b, None).await, ["alpha", "beta", "gamma"]);
    let (status, signed_in) = b
        .post_json(
            "/api/collections/users/auth-with-password",
            None,
            json!({"identity": "ann@example.com", "password": "an-12345678"}),
        )
        .await;
    assert_eq!(status, 200, "{signed_in}");
    let (status, duplicate) = a
        .post_json(
            "/api/collections/notes/records",
            None,
            json!({"title": "alpha"}),
        )
        .await;
    assert_eq!(status, 400, "{duplicate}");
    assert_eq!(duplicate["data"]["title"]["code"], "validation_not_unique");
    let (_, one) = a
        .get("/api/collections/notes/records?filter=title%3D'beta'", None)
        .await;
    assert_eq!(one["items"][0]["meta"], json!({"b": 1, "a": [1]}));

    // Realtime across nodes: a client of B hears a create made on A, in order.
    let mut stream = Stream::connect(&b).await;
    let (status, body) = stream.subscribe(&b, None, &["notes"]).await;
    assert_eq!(status, 204, "{body}");
    for title in ["delta", "epsilon"] {
        let (status, body) = a
            .post_json(
                "/api/collections/notes/records",
                None,
                json!({"title": title}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let message = stream
            .next(Duration::from_secs(5))
            .await
            .expect("B's client hears A's writes");
        assert_eq!(message.event, "notes");
        heard.push(
            message.data["record"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(heard, ["delta", "epsilon"]);

    // A schema change on A is served by B without a restart.
    let admin_a = a.admin_token().await;
    let (status, body) = a
        .post_json(
            "/api/collections",
            Some(&admin_a),
            json!({"name": "tags", "type": "base", "listRule": "", "fields": [{"name": "label", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut served: Option<(u16, Value)> = None;
    for _ in 0..20 {
        let answer = b.get("/api/collections/tags/records", None).await;
        if answer.0 == 200 {
            served = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = served.expect("B serves the new collection within a second");
    assert_eq!(status, 200);
    assert_eq!(body["totalItems"], 0);

    // A settings change on A is served by B (its cached copy is older than the database's).
    let admin_b = b.admin_token().await;
    let (_, before) = b.get("/api/settings", Some(&admin_b)).await;
    assert_ne!(before["meta"]["appName"], "Renamed on A");
    let (status, body) = a
        .patch_json(
            "/api/settings",
            Some(&admin_a),
            json!({"meta": {"appName": "Renamed on A"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut seen = Value::Null;
    for _ in 0..40 {
        let (_, settings) = b.get("/api/settings", Some(&admin_b)).await;
        seen = settings["meta"]["appName"].clone();
        if seen == "Renamed on A" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, "Renamed on A", "B serves A's settings change");
}
