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
    // On the very next request: B looks a collection it does not know up in the database.
    let (status, body) = b.get("/api/collections/tags/records", None).await;
    assert_eq!(status, 200, "{body}");
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

/// A local S3-compatible server (moto's), killed at the end of the test.
struct Moto(std::process::Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_moto() -> Option<Moto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let moto = Moto(child, port);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(moto);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Creates the test superuser in the database `url` (through `node`'s data dir).
fn add_superuser(node: &TestApp, url: &str) {
    let upsert = Command::new(plinth_bin())
        .args([
            "superuser",
            "upsert",
            crate::support::ADMIN_EMAIL,
            crate::support::ADMIN_PASSWORD,
        ])
        .arg(format!("--dir={}", node.dir.path().display()))
        .env("PLINTH_DB", url)
        .output()
        .expect("superuser upsert runs");
    assert!(upsert.status.success(), "{upsert:?}");
}

/// Every node runs this cron; the cluster must run it once per minute, not once per node.
const TICK_HOOK: &str = r#"
cronAdd("tick", "* * * * *", () => {
  const tick = new Record($app.findCollectionByNameOrId("ticks"));
  tick.set("node", $os.getenv("PLINTH_NODE_NAME"));
  tick.set("minute", new Date().toISOString().slice(0, 16));
  $app.save(tick);
});
"#;

/// A cluster node named `name` with the tick cron.
fn cluster_node(url: &str, name: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks = dir.path().join("hooks");
    std::fs::create_dir_all(&hooks).expect("hooks dir");
    std::fs::write(hooks.join("tick.pb.js"), TICK_HOOK).expect("hook written");
    TestApp::spawn_with(
        dir,
        &Launch {
            args: vec![
                format!("--hooksDir={}", hooks.display()),
                "--hooksWatch=false".into(),
            ],
            env: vec![
                ("PLINTH_DB".into(), url.into()),
                ("PLINTH_NODE_NAME".into(), name.into()),
            ],
            ..Launch::default()
        },
    )
}

/// Reads a numbered stream's note titles and seqs until it ends (its node died) or `until`
/// titles arrived.
async fn read_notes(stream: &mut Stream, heard: &mut Vec<(u64, String)>, until: usize) {
    while heard.len() < until {
        let Some(message) = stream.next(Duration::from_secs(10)).await else {
            return;
        };
        assert_eq!(message.event, "notes");
        heard.push((
            message.data["seq"].as_u64().expect("a numbered message"),
            message.data["record"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
}

/// The cluster proof: three nodes on one database and one S3 bucket. Files uploaded on one
/// node are served by another; SSE clients on B and C hear A's writes in order; a schema change
/// on A is served by B; `kill -9` of B in the middle of writes loses no acknowledged write, and
/// B's client resumes on C without missing or repeating an event; the cron every node runs
/// ran once per minute.
#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_share_one_database_and_one_bucket() {
    let Some(admin) = admin_url() else {
        return;
    };
    let Some(moto) = start_moto().await else {
        panic!("moto_server is not installed (pip install 'moto[server]'); .ci/run installs it");
    };
    let endpoint = format!("http://127.0.0.1:{}", moto.1);
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/plinth-cluster"))
        .send()
        .await
        .expect("bucket request");
    assert!(created.status().is_success());
    let database = Database::create(&admin, "cluster");

    let a = cluster_node(&database.url, "a");
    add_superuser(&a, &database.url);
    let admin_a = a.admin_token().await;
    let (status, body) = a
        .patch_json(
            "/api/settings",
            Some(&admin_a),
            json!({"s3": {"enabled": true, "bucket": "plinth-cluster", "region": "us-east-1",
                          "endpoint": endpoint, "accessKey": "test", "secret": "test",
                          "forcePathStyle": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for collection in [
        json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
               "fields": [{"name": "title", "type": "text"},
                          {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 1000000}]}),
        json!({"name": "ticks", "type": "base", "listRule": "",
               "fields": [{"name": "node", "type": "text"}, {"name": "minute", "type": "text"}]}),
    ] {
        let (status, body) = a
            .post_json("/api/collections", Some(&admin_a), collection)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut b = cluster_node(&database.url, "b");
    let c = cluster_node(&database.url, "c");

    // A file uploaded on A is in the bucket, so C serves it.
    let (status, uploaded) = crate::files::send_multipart(
        &a,
        reqwest::Method::POST,
        "/api/collections/notes/records",
        None,
        &[("title", "with a file")],
        &[("doc", "hello.txt", b"shared bytes")],
    )
    .await;
    assert_eq!(status, 200, "{uploaded}");
    let file = format!(
        "/api/files/notes/{}/{}",
        uploaded["id"].as_str().expect("id"),
        uploaded["doc"].as_str().expect("file name")
    );
    let served = reqwest::get(c.url(&file)).await.expect("download");
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.bytes().await.expect("bytes").as_ref(),
        b"shared bytes"
    );

    // A schema change on A is served by B.
    let (status, body) = a
        .post_json(
            "/api/collections",
            Some(&admin_a),
            json!({"name": "tags", "type": "base", "listRule": "", "fields": [{"name": "label", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = b.get("/api/collections/tags/records", None).await;
    assert_eq!(
        status, 200,
        "B serves the collection A created at once: {body}"
    );
    // A field added on A and written on B straight after: B stores it, or (when its copy of
    // the collection was still the old one) refuses the write; it never stores the record
    // without it.
    let (_, tags) = a.get("/api/collections/tags", Some(&admin_a)).await;
    let mut fields = tags["fields"].as_array().cloned().expect("fields");
    fields.push(json!({"name": "color", "type": "text"}));
    let (status, body) = a
        .patch_json(
            "/api/collections/tags",
            Some(&admin_a),
            json!({"fields": fields}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut stored = None;
    for _ in 0..2 {
        let (status, body) = b
            .post_json(
                "/api/collections/tags/records",
                Some(&admin_a),
                json!({"label": "sky", "color": "blue"}),
            )
            .await;
        match status {
            200 => {
                stored = Some(body);
                break;
            }
            400 => continue,
            other => panic!("{other}: {body}"),
        }
    }
    let stored = stored.expect("stored on the first or second try");
    assert_eq!(stored["color"], "blue", "{stored}");
    let (_, all) = a.get("/api/collections/tags/records", None).await;
    assert_eq!(all["totalItems"], 1, "a refused write left nothing: {all}");

    // Clients on B and C, then writes on A and B, and B dies in the middle of them.
    let (mut on_b, _) = Stream::connect_numbered(&b).await;
    let (status, body) = on_b.subscribe(&b, None, &["notes"]).await;
    assert_eq!(status, 204, "{body}");
    let (mut on_c, _) = Stream::connect_numbered(&c).await;
    let (status, body) = on_c.subscribe(&c, None, &["notes"]).await;
    assert_eq!(status, 204, "{body}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut acknowledged = Vec::new();
    let mut heard_on_b = Vec::new();
    for n in 0..40 {
        if n == 20 {
            read_notes(&mut on_b, &mut heard_on_b, 5).await;
            b.child.kill().expect("kill -9");
            let _ = b.child.wait();
        }
        let node = if n % 2 == 0 { &a } else { &b };
        let title = format!("note {n:02}");
        let answer = client
            .post(node.url("/api/collections/notes/records"))
            .json(&json!({"title": title}))
            .send()
            .await;
        if let Ok(response) = answer
            && response.status() == 200
        {
            acknowledged.push(title);
        }
    }
    assert!(acknowledged.len() >= 30, "A kept serving: {acknowledged:?}");

    // C's client heard every create, in commit order.
    let mut heard_on_c = Vec::new();
    read_notes(&mut on_c, &mut heard_on_c, acknowledged.len()).await;
    let more = on_c.next(Duration::from_millis(500)).await;
    assert!(more.is_none(), "nothing beyond the writes: {more:?}");
    assert!(
        heard_on_c.windows(2).all(|w| w[0].0 < w[1].0),
        "{heard_on_c:?}"
    );
    let titles_on_c: Vec<&String> = heard_on_c.iter().map(|(_, title)| title).collect();
    for title in &acknowledged {
        assert!(
            titles_on_c.contains(&title),
            "{title} was acknowledged, C never heard it"
        );
    }
    // No acknowledged write is lost: the database has each, as C serves it.
    let (status, stored) = c
        .get(
            "/api/collections/notes/records?perPage=100&filter=title~'note'",
            None,
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["totalItems"], heard_on_c.len(), "{stored}");

    // B's client reads what reached it, reconnects to C and resumes after the last seq it saw:
    // together, exactly what C's client heard.
    read_notes(&mut on_b, &mut heard_on_b, usize::MAX).await;
    let last_seen = heard_on_b.last().map_or(0, |(seq, _)| *seq);
    let (mut resumed, _) = Stream::connect_numbered(&c).await;
    let (status, body) = resumed.resume(&c, None, &["notes"], json!(last_seen)).await;
    assert_eq!(status, 204, "{body}");
    let missed = heard_on_c.len() - heard_on_b.len();
    read_notes(&mut resumed, &mut heard_on_b, heard_on_c.len()).await;
    assert_eq!(
        heard_on_b, heard_on_c,
        "B's client missed {missed} and got them back"
    );
    let extra = resumed.next(Duration::from_millis(500)).await;
    assert!(extra.is_none(), "no repeats: {extra:?}");

    // The cron all three nodes run ran once per minute (wait for a minute to go by).
    let mut ticks = Value::Null;
    for _ in 0..150 {
        let (_, body) = a
            .get("/api/collections/ticks/records?perPage=100", None)
            .await;
        ticks = body;
        if ticks["totalItems"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let minutes: Vec<&str> = ticks["items"]
        .as_array()
        .expect("ticks")
        .iter()
        .map(|tick| tick["minute"].as_str().unwrap_or_default())
        .collect();
    assert!(!minutes.is_empty(), "the cron ran: {ticks}");
    let mut distinct = minutes.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), minutes.len(), "once per minute: {ticks}");
    drop(moto);
}

/// Wrong guesses at a one-time code count across nodes: five in all, spread over two nodes,
/// use the code up, as five on one node do.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_otp_guesses_count_across_nodes() {
    let Some(admin) = admin_url() else {
        return;
    };
    let database = Database::create(&admin, "otp");
    let a = node(&database.url);
    let b = node(&database.url);
    add_superuser(&a, &database.url);
    let token = a.admin_token().await;
    let (status, body) = a
        .patch_json(
            "/api/collections/users",
            Some(&token),
            json!({"otp": {"enabled": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = a
        .post_json(
            "/api/collections/users/records",
            Some(&token),
            json!({"email": "otp@example.com", "password": "12345678", "passwordConfirm": "12345678"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = a
        .post_json(
            "/api/collections/users/request-otp",
            None,
            json!({"email": "otp@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let otp_id = body["otpId"].as_str().expect("otpId").to_owned();
    let row = format!("/api/collections/_otps/records/{otp_id}");
    for _ in 0..40 {
        if a.get(&row, Some(&token)).await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (n, node) in [&a, &b, &a, &b].into_iter().enumerate() {
        let (status, body) = node
            .post_json(
                "/api/collections/users/auth-with-otp",
                None,
                json!({"otpId": otp_id, "password": "000000"}),
            )
            .await;
        assert_eq!(status, 400, "guess {n}: {body}");
        assert_eq!(
            a.get(&row, Some(&token)).await.0,
            200,
            "the code lives after {n}"
        );
    }
    // The fifth wrong guess in the cluster (the third on B) uses the code up.
    let (status, body) = b
        .post_json(
            "/api/collections/users/auth-with-otp",
            None,
            json!({"otpId": otp_id, "password": "000000"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(a.get(&row, Some(&token)).await.0, 404, "the code is gone");
}

/// The all-in-one OAuth2 flow across nodes: the SDK's stream waits on B while the provider
/// sends the browser back to A. A leaves the answer in the database, B delivers it, and the
/// browser gets the success page; the same `state` a second time reaches nobody.
#[tokio::test(flavor = "multi_thread")]
async fn an_oauth2_redirect_reaches_the_waiting_client_on_another_node() {
    let Some(admin) = admin_url() else {
        return;
    };
    let database = Database::create(&admin, "relay");
    let a = node(&database.url);
    let b = node(&database.url);
    let mut waiting = Stream::connect(&b).await;
    let (status, body) = waiting.subscribe(&b, None, &["@oauth2"]).await;
    assert_eq!(status, 204, "{body}");
    let state = waiting.client_id().to_owned();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let redirect = |state: &str| {
        browser
            .get(a.url(&format!("/api/oauth2-redirect?state={state}&code=abc")))
            .send()
    };
    let started = std::time::Instant::now();
    let response = redirect(&state).await.expect("redirect answered");
    assert_eq!(response.status(), 307);
    assert_eq!(
        response.headers()["location"],
        "../_/#/auth/oauth2-redirect-success"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered once B took it, not at the deadline"
    );
    let message = waiting
        .next(Duration::from_secs(5))
        .await
        .expect("B's client got the answer");
    assert_eq!(message.event, "@oauth2");
    assert_eq!(message.data, json!({"state": state, "code": "abc"}));

    // A message past 8 KiB is not left for another node: the failure page at once.
    let mut other = Stream::connect(&b).await;
    let (status, _) = other.subscribe(&b, None, &["@oauth2"]).await;
    assert_eq!(status, 204);
    let long = "c".repeat(8 * 1024);
    let started = std::time::Instant::now();
    let response = browser
        .get(a.url(&format!(
            "/api/oauth2-redirect?state={}&code={long}",
            other.client_id()
        )))
        .send()
        .await
        .expect("redirect answered");
    assert_eq!(
        response.headers()["location"],
        "../_/#/auth/oauth2-redirect-failure"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(other.next(Duration::from_millis(300)).await.is_none());

    // The subscription was used up: nobody takes it again, and the browser is told so.
    let response = redirect(&state).await.expect("redirect answered");
    assert_eq!(
        response.headers()["location"],
        "../_/#/auth/oauth2-redirect-failure"
    );
    assert!(waiting.next(Duration::from_millis(300)).await.is_none());
}

/// Behind a round-robin balancer a subscription request can reach another node than the one
/// holding the stream. That node hands the request to the holder through the database and
/// answers with the holder's answer: the subscription takes effect, and refusals come back as
/// they would from the holder.
#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_request_reaches_the_stream_on_another_node() {
    let Some(admin) = admin_url() else {
        return;
    };
    let database = Database::create(&admin, "subscribe");
    let a = node(&database.url);
    let b = node(&database.url);
    add_superuser(&a, &database.url);
    let token = a.admin_token().await;
    let (status, body) = a
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "", "createRule": "", "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut on_b = Stream::connect(&b).await;
    // Sent to A, bound to the superuser: the stream on B hears A's write.
    let (status, body) = on_b.subscribe(&a, Some(&token), &["notes"]).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = a
        .post_json(
            "/api/collections/notes/records",
            None,
            json!({"title": "relayed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let message = on_b
        .next(Duration::from_secs(5))
        .await
        .expect("B's stream heard the write");
    assert_eq!(message.event, "notes");
    assert_eq!(message.data["record"]["title"], "relayed");

    // The holder's refusal comes back: the client is bound to the superuser now.
    let (status, body) = on_b.subscribe(&a, None, &["notes"]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"],
        "The current and the previous request authorization don't match."
    );
    // Clients no node holds: PocketBase's 404, after the relay's wait. At most 64 requests of
    // a node wait at once; the next is answered at once.
    let waiting: Vec<_> = (0..64)
        .map(|n| {
            tokio::spawn({
                let request = a
                    .client
                    .post(a.url("/api/realtime"))
                    .json(&json!({"clientId": format!("{n:0>40}"), "subscriptions": ["notes"]}));
                async move { request.send().await.map(|r| r.status().as_u16()) }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    let (status, body) = a
        .post_json(
            "/api/realtime",
            None,
            json!({"clientId": "x".repeat(40), "subscriptions": ["notes"]}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the 65th waiting request is answered at once"
    );
    for request in waiting {
        assert_eq!(request.await.expect("joined").expect("answered"), 404);
    }
}
