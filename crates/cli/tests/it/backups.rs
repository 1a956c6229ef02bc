//! Backups end to end: create, list, download with a superuser file token, delete; uploads of
//! corrupt or foreign zips refused with nothing changed; a backup taken under a concurrent
//! write load restored through a real restart of the process; scheduled backups as a cron job.

use std::io::{BufRead, BufReader, Cursor, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::files::send_multipart;
use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, assert_error, plinth_bin, run_cli};

const VALIDATION: &str = "An error occurred while validating the submitted data.";

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get("/api/backups", Some(token)).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("a list").clone()
}

fn keys(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["key"].as_str().expect("key").to_owned())
        .collect()
}

async fn file_token(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post_json("/api/files/token", Some(token), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

async fn download(
    app: &TestApp,
    key: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let url = match token {
        Some(token) => app.url(&format!("/api/backups/{key}?token={token}")),
        None => app.url(&format!("/api/backups/{key}")),
    };
    let response = app.client.get(url).send().await.expect("sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.bytes().await.expect("body").to_vec(),
    )
}

fn zip_names(bytes: &[u8]) -> Vec<String> {
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip");
    archive
        .file_names()
        .map(|name| name.expect("name").into_owned())
        .collect()
}

/// A zip made of `(name, bytes)` entries.
fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    for (name, bytes) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("entry");
        zip.write_all(bytes).expect("write");
    }
    zip.finish().expect("finish");
    out.into_inner()
}

async fn create_notes(app: &TestApp, token: &str) {
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(token),
            json!({"name": "notes", "type": "base", "fields": [{"name": "title", "type": "text"}],
                   "listRule": "", "viewRule": "", "createRule": ""}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn add_note(app: &TestApp, title: &str) -> String {
    let (status, body) = app
        .post_json(
            "/api/collections/notes/records",
            None,
            json!({"title": title}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn create_list_download_and_delete() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    assert!(list(&app, &token).await.is_empty());
    let (status, body) = app.get("/api/backups", None).await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );

    let (status, body) = app
        .post_json("/api/backups", Some(&token), json!({"name": "first.zip"}))
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = app.post_json("/api/backups", Some(&token), json!({})).await;
    assert_eq!(status, 204, "{body}");
    let items = list(&app, &token).await;
    assert_eq!(items.len(), 2, "{items:?}");
    let names = keys(&items);
    assert_eq!(names[0], "first.zip");
    let default = &names[1];
    let stamp = default
        .strip_prefix("pb_backup_acme_")
        .and_then(|rest| rest.strip_suffix(".zip"))
        .unwrap_or_else(|| panic!("default name {default}"));
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{default}"
    );
    let first = &items[0];
    assert_eq!(
        first
            .as_object()
            .expect("object")
            .keys()
            .collect::<Vec<_>>(),
        ["modified", "key", "size"]
    );
    assert!(first["size"].as_u64().expect("size") > 1000);
    assert!(first["modified"].as_str().expect("modified").ends_with('Z'));

    // Names: PocketBase's pattern and length bound, and no overwriting.
    let (status, body) = app
        .post_json(
            "/api/backups",
            Some(&token),
            json!({"name": "Bad Name.zip"}),
        )
        .await;
    let data = assert_error(status, &body, 400, VALIDATION);
    assert_eq!(data["name"]["code"], "validation_match_invalid");
    let long = format!("{}.zip", "a".repeat(146));
    let (status, body) = app
        .post_json("/api/backups", Some(&token), json!({"name": long}))
        .await;
    assert_eq!(status, 204, "150 characters are allowed: {body}");
    let too_long = format!("{}.zip", "a".repeat(147));
    let (status, body) = app
        .post_json("/api/backups", Some(&token), json!({"name": too_long}))
        .await;
    let data = assert_error(status, &body, 400, VALIDATION);
    assert_eq!(data["name"]["code"], "validation_length_out_of_range");
    assert_eq!(data["name"]["params"], json!({"max": 150, "min": 1}));
    let (status, body) = app
        .post_json("/api/backups", Some(&token), json!({"name": "first.zip"}))
        .await;
    let data = assert_error(status, &body, 400, VALIDATION);
    assert_eq!(data["name"]["code"], "validation_backup_name_exists");

    // Download: a superuser's file token only.
    let (status, _, body) = download(&app, "first.zip", None).await;
    assert_eq!(status, 403);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        body["message"],
        "Insufficient permissions to access the resource."
    );
    let (status, _, _) = download(&app, "first.zip", Some(&token)).await;
    assert_eq!(status, 403, "an auth token is not a file token");
    let file = file_token(&app, &token).await;
    let (status, headers, bytes) = download(&app, "first.zip", Some(&file)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"first.zip\""
    );
    assert_eq!(bytes.len() as u64, first["size"].as_u64().expect("size"));
    let names = zip_names(&bytes);
    assert_eq!(names[0], "data.db", "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("backups/") || n.contains("-wal") || n.ends_with('/')),
        "{names:?}"
    );
    let (status, _, _) = download(&app, "nope.zip", Some(&file)).await;
    assert_eq!(status, 404);

    // A user's file token is not enough.
    let (status, body) = app
        .post_json(
            "/api/collections/users/records",
            Some(&token),
            json!({"email": "u@example.com", "password": "12345678", "passwordConfirm": "12345678"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections/users/auth-with-password",
            None,
            json!({"identity": "u@example.com", "password": "12345678"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let user_file = file_token(&app, body["token"].as_str().expect("token")).await;
    let (status, _, _) = download(&app, "first.zip", Some(&user_file)).await;
    assert_eq!(status, 403);

    // Delete.
    let (status, body) = app.delete("/api/backups/first.zip", Some(&token)).await;
    assert_eq!(status, 204, "{body}");
    assert!(!keys(&list(&app, &token).await).contains(&"first.zip".to_owned()));
    let (status, body) = app.delete("/api/backups/first.zip", Some(&token)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .starts_with("Invalid or already deleted backup file."),
        "{body}"
    );
    let (status, body) = app
        .post_json("/api/backups/nope.zip/restore", Some(&token), json!({}))
        .await;
    assert_error(status, &body, 400, "Missing or invalid backup file.");

    // Nothing is left in the scratch directory.
    let scratch = app.dir.path().join(".pb_temp_to_delete");
    let leftovers = std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0);
    assert_eq!(leftovers, 0);

    // canBackup tells the truth when nothing runs.
    let (status, body) = app.get("/api/health", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["canBackup"], true, "{body}");
}

#[tokio::test]
async fn corrupt_or_foreign_uploads_change_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let upload = |name: &'static str, bytes: Vec<u8>| {
        let app = &app;
        let token = token.clone();
        async move {
            send_multipart(
                app,
                reqwest::Method::POST,
                "/api/backups/upload",
                Some(&token),
                &[],
                &[("file", name, &bytes)],
            )
            .await
        }
    };
    // A good backup to build the hostile ones from.
    let (status, _) = app
        .post_json("/api/backups", Some(&token), json!({"name": "good.zip"}))
        .await;
    assert_eq!(status, 204);
    let file = file_token(&app, &token).await;
    let (_, _, good) = download(&app, "good.zip", Some(&file)).await;
    let data_db = {
        let mut archive = zip::ZipArchive::new(Cursor::new(&good)).expect("zip");
        let mut entry = archive.by_name("data.db").expect("data.db");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
        bytes
    };

    let random: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let (status, body) = upload("random.zip", random).await;
    let data = assert_error(status, &body, 400, VALIDATION);
    assert_eq!(data["file"]["code"], "validation_invalid_mime_type");

    let mut damaged = data_db.clone();
    let middle = damaged.len() / 2;
    for byte in &mut damaged[middle..middle + 4096] {
        *byte = 0x5a;
    }
    let foreign_db = {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("data.db");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE _collections (id TEXT, fields JSON); INSERT INTO _collections VALUES ('x', '[]');")
            .expect("create");
        drop(conn);
        std::fs::read(&path).expect("read")
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "nodata.zip",
            make_zip(&[("random.txt", b"hello")]),
            "no data.db",
        ),
        (
            "nested.zip",
            make_zip(&[("pb_data/data.db", &data_db)]),
            "no data.db",
        ),
        (
            "traversal.zip",
            make_zip(&[("data.db", &data_db), ("../evil.txt", b"x")]),
            "plain relative path",
        ),
        (
            "absolute.zip",
            make_zip(&[("data.db", &data_db), ("/etc/evil", b"x")]),
            "plain relative path",
        ),
        ("damaged.zip", make_zip(&[("data.db", &damaged)]), "data.db"),
        (
            "notsqlite.zip",
            make_zip(&[("data.db", b"SQLite format 3\0 but not really")]),
            "data.db",
        ),
        (
            "foreign.zip",
            make_zip(&[("data.db", &foreign_db)]),
            "not a Plinth database",
        ),
    ];
    for (name, bytes, reason) in cases {
        let (status, body) = upload(name, bytes).await;
        assert_eq!(status, 400, "{name}: {body}");
        let data = assert_error(status, &body, 400, VALIDATION);
        assert_eq!(
            data["file"]["code"], "validation_invalid_backup",
            "{name}: {body}"
        );
        let message = data["file"]["message"].as_str().expect("message");
        assert!(message.contains(reason), "{name}: {message}");
    }
    // A symbolic link entry.
    let symlink = {
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        zip.start_file("data.db", zip::write::SimpleFileOptions::default())
            .expect("entry");
        zip.write_all(&data_db).expect("write");
        zip.add_symlink(
            "storage/link",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .expect("link");
        zip.finish().expect("finish");
        out.into_inner()
    };
    let (status, body) = upload("symlink.zip", symlink).await;
    let data = assert_error(status, &body, 400, VALIDATION);
    assert!(
        data["file"]["message"]
            .as_str()
            .expect("message")
            .contains("link"),
        "{body}"
    );

    // Nothing changed: only the one good backup, and no scratch files.
    assert_eq!(keys(&list(&app, &token).await), ["good.zip"]);
    let backups_dir: Vec<_> = std::fs::read_dir(app.dir.path().join("backups"))
        .expect("backups dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(backups_dir, ["good.zip"]);
    let leftovers = std::fs::read_dir(app.dir.path().join(".pb_temp_to_delete"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0);

    // A real backup uploads, and its name must be new.
    let (status, body) = upload("copy.zip", good.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = upload("copy.zip", good).await;
    let data = assert_error(status, &body, 400, VALIDATION);
    assert_eq!(data["file"]["code"], "validation_backup_name_exists");
    let (status, body) = app
        .post_json("/api/backups/upload", Some(&token), json!({}))
        .await;
    let data = assert_error(status, &body, 400, VALIDATION);
    assert_eq!(data["file"]["code"], "validation_required");
    assert_eq!(keys(&list(&app, &token).await), ["copy.zip", "good.zip"]);
}

/// Starts `plinth serve` on a fixed port (a restart re-executes the same command line, so the
/// port must not be `0`), with the hooks and migrations folders outside the data dir.
fn spawn_on_fixed_port(dir: tempfile::TempDir, scripts: &Path) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(plinth_bin())
        .args(["serve", &format!("--http=127.0.0.1:{port}")])
        .arg(format!("--dir={}", dir.path().display()))
        .arg(format!("--hooksDir={}", scripts.join("pb_hooks").display()))
        .arg(format!(
            "--migrationsDir={}",
            scripts.join("pb_migrations").display()
        ))
        .env("PLINTH_INSECURE_TEST_HASHING", "1")
        .env("PLINTH_MIGRATIONS_DIR", scripts.join("pb_migrations"))
        .env("PLINTH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("plinth serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut startup_output = String::new();
    let mut started = false;
    for _ in 0..20 {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("reads stdout") == 0 {
            break;
        }
        startup_output.push_str(&line);
        if line.contains("Server started at ") {
            started = true;
            break;
        }
    }
    assert!(started, "server did not start: {startup_output}");
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        dir,
        child,
        startup_output,
    }
}

#[tokio::test]
async fn a_backup_under_write_load_restores_through_a_restart() {
    let scripts = tempfile::tempdir().expect("scripts dir");
    let dir = tempfile::tempdir().expect("data dir");
    let (code, _, stderr) = run_cli(
        dir.path(),
        &["superuser", "upsert", ADMIN_EMAIL, ADMIN_PASSWORD],
    );
    assert_eq!(code, 0, "{stderr}");
    let app = Arc::new(spawn_on_fixed_port(dir, scripts.path()));
    let pid = app.child.id();
    let token = app.admin_token().await;
    create_notes(&app, &token).await;
    let mut before = Vec::new();
    for i in 0..20 {
        before.push(add_note(&app, &format!("before {i}")).await);
    }

    // Writers keep going while the backup is taken; what each had acknowledged when the
    // backup request was sent must be in the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..3 {
        let app = app.clone();
        let stop = stop.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = add_note(&app, &format!("load {w}-{n}")).await;
                acked.lock().expect("lock").push(id);
                n += 1;
            }
        }));
    }
    // One more writer churns stored files: a record gets a file, has it replaced, is deleted.
    // Whatever record the backup holds must find its file in the backup too, although the
    // files removed after later commits go while the backup runs (they wait for it).
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "docs", "type": "base", "fields": [
                {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 1_000_000}],
                "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Records the file writer keeps (it deletes every other one), so the backup waits for one.
    let docs_kept = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let app = app.clone();
        let stop = stop.clone();
        let docs_kept = docs_kept.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let bytes = format!("first {n}").into_bytes();
                let (status, body) = send_multipart(
                    &app,
                    reqwest::Method::POST,
                    "/api/collections/docs/records",
                    None,
                    &[],
                    &[("doc", "first.txt", &bytes)],
                )
                .await;
                assert_eq!(status, 200, "{body}");
                let id = body["id"].as_str().expect("id").to_owned();
                let bytes = format!("second {n}").into_bytes();
                let (status, body) = send_multipart(
                    &app,
                    reqwest::Method::PATCH,
                    &format!("/api/collections/docs/records/{id}"),
                    None,
                    &[],
                    &[("doc", "second.txt", &bytes)],
                )
                .await;
                assert_eq!(status, 200, "{body}");
                if n.is_multiple_of(2) {
                    let (status, body) = app
                        .delete(&format!("/api/collections/docs/records/{id}"), None)
                        .await;
                    assert_eq!(status, 204, "{body}");
                } else {
                    docs_kept.fetch_add(1, Ordering::SeqCst);
                }
                n += 1;
            }
        }));
    }
    // On a busy machine the file writer can be slower than the note writers: both have
    // written before the backup starts.
    while acked.lock().expect("lock").len() < 30 || docs_kept.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked_before_backup: Vec<String> = acked.lock().expect("lock").clone();
    let (status, body) = app
        .post_json("/api/backups", Some(&token), json!({"name": "load.zip"}))
        .await;
    assert_eq!(status, 204, "{body}");
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.expect("writer");
    }
    let after = add_note(&app, "after the backup").await;

    // The zip's database passes SQLite's integrity check on its own.
    let file = file_token(&app, &token).await;
    let (status, _, bytes) = download(&app, "load.zip", Some(&file)).await;
    assert_eq!(status, 200);
    let check_dir = tempfile::tempdir().expect("dir");
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    archive.extract(check_dir.path()).expect("extract");
    let conn = rusqlite::Connection::open(check_dir.path().join("data.db")).expect("open");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("check");
    assert_eq!(integrity, "ok");
    drop(conn);

    // Restore: 204 first, then the process restarts on the same port with the old state.
    let (status, body) = app
        .post_json("/api/backups/load.zip/restore", Some(&token), json!({}))
        .await;
    assert_eq!(status, 204, "{body}");
    let mut restored = None;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(response) = app
            .client
            .get(app.url(&format!("/api/collections/notes/records/{after}")))
            .send()
            .await
        else {
            continue;
        };
        if response.status().as_u16() == 404 {
            restored = Some(());
            break;
        }
    }
    assert!(
        restored.is_some(),
        "the server did not come back with the backed-up state"
    );
    assert_eq!(app.child.id(), pid, "restarted in place");
    for id in before.iter().chain(&acked_before_backup) {
        let (status, body) = app
            .get(&format!("/api/collections/notes/records/{id}"), None)
            .await;
        assert_eq!(
            status, 200,
            "write {id} acknowledged before the backup is missing: {body}"
        );
    }
    // Every record the backup holds finds its stored file.
    let (status, docs) = app
        .get("/api/collections/docs/records?perPage=500", None)
        .await;
    assert_eq!(status, 200, "{docs}");
    let docs = docs["items"].as_array().expect("items").clone();
    assert!(
        !docs.is_empty(),
        "the file writer had written before the backup"
    );
    for doc in &docs {
        let id = doc["id"].as_str().expect("id");
        let name = doc["doc"].as_str().expect("file name");
        assert!(!name.is_empty(), "{doc}");
        let response = app
            .client
            .get(app.url(&format!("/api/files/docs/{id}/{name}")))
            .send()
            .await
            .expect("download");
        assert_eq!(
            response.status().as_u16(),
            200,
            "the backup lost the file {name} of {id}"
        );
    }
    // The token issued before the restore still works (same keys), and the backups are kept.
    assert!(keys(&list(&app, &token).await).contains(&"load.zip".to_owned()));
    let (status, body) = app.get("/api/health", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["canBackup"], true, "{body}");

    // The restored database passes the integrity check in place.
    let mut app = Arc::into_inner(app).expect("the only handle");
    assert_eq!(app.terminate(), 0);
    let conn = rusqlite::Connection::open(app.dir.path().join("data.db")).expect("open");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("check");
    assert_eq!(integrity, "ok");
    let scratch = app.dir.path().join(".pb_temp_to_delete");
    assert_eq!(
        std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0),
        0,
        "old data removed after boot"
    );
}

#[tokio::test]
async fn scheduled_backups_follow_the_settings() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&token),
            json!({"backups": {"cron": "nope"}}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while saving the new settings.",
    );
    assert_eq!(data["backups"]["cron"]["code"], "validation_invalid_cron");
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&token),
            json!({"backups": {"cron": "0 0 * * *", "cronMaxKeep": 0}}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while saving the new settings.",
    );
    assert_eq!(
        data["backups"]["cronMaxKeep"]["code"],
        "validation_required"
    );

    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&token),
            json!({"backups": {"cron": "@daily", "cronMaxKeep": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backups"]["cron"], "@daily");
    let (_, crons) = app.get("/api/crons", Some(&token)).await;
    let auto = crons
        .as_array()
        .expect("list")
        .iter()
        .find(|job| job["id"] == "__pbAutoBackup__")
        .cloned()
        .unwrap_or_else(|| panic!("no auto backup job: {crons}"));
    assert_eq!(auto["expression"], "0 0 * * *");

    // A manual backup is never pruned; automatic ones beyond cronMaxKeep are.
    let (status, _) = app
        .post_json("/api/backups", Some(&token), json!({"name": "manual.zip"}))
        .await;
    assert_eq!(status, 204);
    let mut seen = Vec::new();
    for run in 0..2 {
        let (status, body) = app
            .post_json("/api/crons/__pbAutoBackup__", Some(&token), json!({}))
            .await;
        assert_eq!(status, 204, "{body}");
        let mut found = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let autos: Vec<String> = keys(&list(&app, &token).await)
                .into_iter()
                .filter(|k| k.starts_with("@auto_pb_backup_acme_") && !seen.contains(k))
                .collect();
            if let Some(key) = autos.into_iter().next() {
                found = Some(key);
                break;
            }
        }
        let key = found.unwrap_or_else(|| panic!("run {run} made no automatic backup"));
        seen.push(key);
        // The names carry the time to the second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let names = keys(&list(&app, &token).await);
    let autos: Vec<&String> = names.iter().filter(|k| k.starts_with("@auto_")).collect();
    assert_eq!(
        autos,
        [&seen[1]],
        "only the newest automatic backup is kept: {names:?}"
    );
    assert!(names.contains(&"manual.zip".to_owned()));

    let (status, _) = app
        .patch_json(
            "/api/settings",
            Some(&token),
            json!({"backups": {"cron": ""}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, crons) = app.get("/api/crons", Some(&token)).await;
    assert!(
        !crons
            .as_array()
            .expect("list")
            .iter()
            .any(|job| job["id"] == "__pbAutoBackup__"),
        "{crons}"
    );
}

#[tokio::test]
async fn one_backup_at_a_time_and_an_interrupted_one_leaves_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    // A large sparse file makes the backup take a while without using the disk.
    let storage = app.dir.path().join("storage").join("big");
    std::fs::create_dir_all(&storage).expect("dir");
    std::fs::File::create(storage.join("zeros.bin"))
        .expect("create")
        .set_len(64 << 30)
        .expect("sparse");
    let url = app.url("/api/backups");
    let client = app.client.clone();
    let first_token = token.clone();
    let first = tokio::spawn(async move {
        client
            .post(url)
            .header("Authorization", first_token)
            .json(&json!({"name": "slow.zip"}))
            .send()
            .await
    });
    let mut running = false;
    for _ in 0..500 {
        let (_, body) = app.get("/api/health", Some(&token)).await;
        if body["data"]["canBackup"] == false {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(running, "health never reported the running backup");
    let busy = "Try again later - another backup/restore process has already been started.";
    let (status, body) = app
        .post_json("/api/backups", Some(&token), json!({"name": "second.zip"}))
        .await;
    assert_error(status, &body, 400, busy);
    let (status, body) = app
        .post_json("/api/backups/slow.zip/restore", Some(&token), json!({}))
        .await;
    assert_error(status, &body, 400, busy);

    // The server dies mid-backup: no partial zip appears among the backups, and the scratch
    // files go at the next start.
    let mut app = app;
    let _ = app.child.kill();
    let _ = app.child.wait();
    let _ = first.await;
    let listed = std::fs::read_dir(app.dir.path().join("backups"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(listed, 0, "a partial backup was left in backups/");
    std::fs::remove_file(storage.join("zeros.bin")).expect("remove");
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().expect("dir"));
    drop(app);
    let app = TestApp::spawn_in(dir);
    let token = app.admin_token().await;
    assert!(list(&app, &token).await.is_empty());
    let scratch = app.dir.path().join(".pb_temp_to_delete");
    assert_eq!(
        std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0),
        0
    );
}
