//! End-to-end tests of file downloads: the real router over a real SQLite store, with files
//! seeded straight into the local storage and records written through the store.

#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use domain::collection::{Collection, CollectionType};
use domain::field::{Field, FieldKind, FileOptions};
use domain::{Store, WriteOp};
use serde_json::{Value, json};
use store_sqlite::SqliteStore;
use tempfile::TempDir;
use tower::ServiceExt;

use super::storage::{file_key, thumb_key};
use crate::state::{AppState, ServerConfig, SharedState};

struct App {
    _dir: TempDir,
    router: Router,
    state: SharedState,
    superuser: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl App {
    async fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).unwrap();
        let admin =
            crate::superusers::create(store.as_ref(), "admin@example.com", "Passw0rd!123", 4)
                .await
                .unwrap();
        let superusers = store.schema().get("_superusers").cloned().unwrap();
        let superuser = crate::auth::token::auth_token(&superusers, &admin).unwrap();
        let config = ServerConfig {
            bcrypt_cost: 4,
            storage_dir: Some(dir.path().join("storage")),
            ..ServerConfig::default()
        };
        let state = AppState::new(store, config);
        let router = crate::router(state.clone());
        App {
            _dir: dir,
            router,
            state,
            superuser,
        }
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str, extra: &[(&str, &str)]) -> Answer {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(Body::empty()).unwrap()).await
    }

    /// A collection `docs` with a public file field `files` (thumbs `20x0`) and a protected
    /// single file field `secret`; `view_rule` applies to the record view.
    async fn docs(&self, view_rule: Option<&str>) -> Arc<Collection> {
        let mut collection = Collection::scaffold(CollectionType::Base, "docs");
        collection.id = domain::ids::collection_id("base", "docs");
        collection.view_rule = view_rule.map(str::to_owned);
        collection.fields.push(Field::new(
            "files",
            FieldKind::File(FileOptions {
                max_select: 5,
                thumbs: vec!["20x0".into()],
                ..Default::default()
            }),
        ));
        collection.fields.push(Field::new(
            "secret",
            FieldKind::File(FileOptions {
                max_select: 1,
                protected: true,
                ..Default::default()
            }),
        ));
        collection
            .fields
            .push(Field::new("owner", FieldKind::Text(Default::default())));
        let schema = self
            .state
            .store
            .create_collection(collection)
            .await
            .unwrap();
        schema.get("docs").cloned().unwrap()
    }

    /// A record of `collection` listing `files`/`secret`, and those files in storage.
    async fn seed(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        files: &[(&str, &[u8])],
        secret: Option<(&str, &[u8])>,
        owner: &str,
    ) {
        let mut data = domain::values::blank_record(collection);
        data.insert("id".into(), json!(id));
        data.insert(
            "files".into(),
            json!(files.iter().map(|(n, _)| *n).collect::<Vec<_>>()),
        );
        data.insert("secret".into(), json!(secret.map(|(n, _)| n).unwrap_or("")));
        data.insert("owner".into(), json!(owner));
        self.state
            .store
            .write(vec![WriteOp::Create {
                collection: collection.clone(),
                data,
                guard: None,
            }])
            .await
            .unwrap();
        let storage = self.state.files.local();
        for (name, bytes) in files.iter().chain(secret.as_ref()) {
            storage
                .put(
                    &file_key(&collection.id, id, name),
                    Bytes::copy_from_slice(bytes),
                )
                .await
                .unwrap();
        }
    }
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::DynamicImage::new_rgba8(width, height);
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

const RECORD: &str = "aaaaaaaaaaaaaaa";

#[tokio::test]
async fn public_files_are_served_with_pocketbase_headers_ignoring_the_view_rule() {
    let app = App::new().await;
    // Superusers only for the record view: the public file is still served.
    let docs = app.docs(None).await;
    app.seed(
        &docs,
        RECORD,
        &[("hello_abc.txt", b"hello world")],
        None,
        "",
    )
    .await;
    let base = format!("/api/files/docs/{RECORD}");
    let answer = app.get(&format!("{base}/hello_abc.txt"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"hello world");
    assert_eq!(answer.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        answer.header("content-disposition"),
        "attachment; filename=\"hello_abc.txt\""
    );
    assert_eq!(
        answer.header("content-security-policy"),
        "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
    );
    assert_eq!(
        answer.header("cache-control"),
        "max-age=2592000, stale-while-revalidate=86400"
    );
    assert_eq!(answer.header("accept-ranges"), "bytes");
    assert!(!answer.header("last-modified").is_empty());
    assert!(answer.headers.get("x-frame-options").is_none());
    assert_eq!(answer.header("x-content-type-options"), "nosniff");

    // By collection id too, and ranges.
    let by_id = format!("/api/files/{}/{RECORD}/hello_abc.txt", docs.id);
    let answer = app.get(&by_id, &[("range", "bytes=6-")]).await;
    assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&answer.body[..], b"world");
    assert_eq!(answer.header("content-range"), "bytes 6-10/11");
    let answer = app.get(&by_id, &[("range", "bytes=0-1,6-7")]).await;
    assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT);
    let boundary = answer
        .header("content-type")
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap()
        .to_owned();
    assert_eq!(
        String::from_utf8(answer.body.to_vec()).unwrap(),
        format!(
            "--{boundary}\r\nContent-Range: bytes 0-1/11\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhe\r\n\
             --{boundary}\r\nContent-Range: bytes 6-7/11\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nwo\r\n\
             --{boundary}--\r\n"
        )
    );
    assert_eq!(
        answer.header("content-length"),
        answer.body.len().to_string()
    );
    let answer = app.get(&by_id, &[("range", "bytes=50-")]).await;
    assert_eq!(answer.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(answer.header("content-range"), "bytes */11");

    // Unknown names, records, collections and traversal attempts are plain 404s.
    for uri in [
        format!("{base}/other.txt"),
        "/api/files/docs/bbbbbbbbbbbbbbb/hello_abc.txt".to_string(),
        format!("/api/files/nope/{RECORD}/hello_abc.txt"),
        format!("{base}/..%2F..%2Fdata.db"),
    ] {
        let answer = app.get(&uri, &[]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(answer.json()["status"], 404, "{uri}");
    }
}

#[tokio::test]
async fn download_flag_and_image_types_choose_the_disposition() {
    let app = App::new().await;
    let docs = app.docs(Some("")).await;
    let image = png(40, 20);
    app.seed(&docs, RECORD, &[("pic_abc.png", &image)], None, "")
        .await;
    let uri = format!("/api/files/docs/{RECORD}/pic_abc.png");
    let answer = app.get(&uri, &[]).await;
    assert_eq!(answer.header("content-type"), "image/png");
    assert_eq!(
        answer.header("content-disposition"),
        "inline; filename=\"pic_abc.png\""
    );
    let answer = app.get(&format!("{uri}?download=1"), &[]).await;
    assert_eq!(
        answer.header("content-disposition"),
        "attachment; filename=\"pic_abc.png\""
    );
    let head = app
        .send(
            Request::builder()
                .method("HEAD")
                .uri(&uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), image.len().to_string());
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn thumbnails_are_made_once_and_cached_and_unknown_sizes_serve_the_original() {
    let app = App::new().await;
    let docs = app.docs(Some("")).await;
    let image = png(40, 20);
    app.seed(
        &docs,
        RECORD,
        &[("pic_abc.png", &image), ("note_abc.txt", b"text")],
        None,
        "",
    )
    .await;
    let uri = format!("/api/files/docs/{RECORD}/pic_abc.png");
    let answer = app.get(&format!("{uri}?thumb=20x0"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("content-disposition"),
        "inline; filename=\"20x0_pic_abc.png\""
    );
    let thumb = image::load_from_memory(&answer.body).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (20, 10));
    let key = thumb_key(&docs.id, RECORD, "pic_abc.png", "20x0");
    assert!(app.state.files.local().exists(&key).await.unwrap());

    // The default 100x100 is always allowed.
    let answer = app.get(&format!("{uri}?thumb=100x100"), &[]).await;
    let thumb = image::load_from_memory(&answer.body).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (100, 100));

    // A size the field does not list, and a non-image file: the original.
    let answer = app.get(&format!("{uri}?thumb=50x50"), &[]).await;
    assert_eq!(answer.body.len(), image.len());
    assert_eq!(
        answer.header("content-disposition"),
        "inline; filename=\"pic_abc.png\""
    );
    let answer = app
        .get(
            &format!("/api/files/docs/{RECORD}/note_abc.txt?thumb=100x100"),
            &[],
        )
        .await;
    assert_eq!(&answer.body[..], b"text");
}

#[tokio::test]
async fn an_image_that_fails_to_decode_is_served_as_is() {
    let app = App::new().await;
    let docs = app.docs(Some("")).await;
    app.seed(&docs, RECORD, &[("bad_abc.png", b"not a png")], None, "")
        .await;
    let answer = app
        .get(
            &format!("/api/files/docs/{RECORD}/bad_abc.png?thumb=100x100"),
            &[],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"not a png");
    let key = thumb_key(&docs.id, RECORD, "bad_abc.png", "100x100");
    assert!(!app.state.files.local().exists(&key).await.unwrap());
}

#[tokio::test]
async fn protected_files_need_a_file_token_that_passes_the_view_rule() {
    let app = App::new().await;
    let docs = app.docs(Some("owner = @request.auth.id")).await;
    // Two users, created through the API.
    let mut users = Vec::new();
    for email in ["u1@example.com", "u2@example.com"] {
        let answer = app
            .send(
                Request::builder()
                    .method("POST")
                    .uri("/api/collections/users/records")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(
                        json!({"email": email, "password": "12345678", "passwordConfirm": "12345678"})
                            .to_string(),
                    ))
                    .unwrap(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
        users.push(answer.json()["id"].as_str().unwrap().to_owned());
    }
    app.seed(
        &docs,
        RECORD,
        &[],
        Some(("secret_abc.txt", b"classified")),
        &users[0],
    )
    .await;
    let users_collection = app.state.schema().get("users").cloned().unwrap();
    let mut auth_tokens = Vec::new();
    for id in &users {
        let record = app
            .state
            .store
            .get_record(users_collection.clone(), id, Vec::new())
            .await
            .unwrap()
            .unwrap();
        auth_tokens.push(crate::auth::token::auth_token(&users_collection, &record).unwrap());
    }
    let file_token = |token: String| {
        let app = &app;
        async move {
            let answer = app
                .send(
                    Request::builder()
                        .method("POST")
                        .uri("/api/files/token")
                        .header(header::AUTHORIZATION, token)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK);
            answer.json()["token"].as_str().unwrap().to_owned()
        }
    };
    let owner_token = file_token(auth_tokens[0].clone()).await;
    let other_token = file_token(auth_tokens[1].clone()).await;
    let admin_token = file_token(app.superuser.clone()).await;
    let uri = format!("/api/files/docs/{RECORD}/secret_abc.txt");

    let answer = app.get(&uri, &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // The Authorization header is ignored, and an auth token is not a file token.
    let answer = app
        .get(&uri, &[("authorization", auth_tokens[0].as_str())])
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = app
        .get(&format!("{uri}?token={}", auth_tokens[0]), &[])
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = app.get(&format!("{uri}?token={other_token}"), &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = app.get(&format!("{uri}?token={owner_token}"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"classified");
    let answer = app.get(&format!("{uri}?token={admin_token}"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);

    // The token endpoint wants an auth record.
    let answer = app
        .send(
            Request::builder()
                .method("POST")
                .uri("/api/files/token")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.json()["message"],
        "The request requires valid record authorization token."
    );
}

/// Issue #11 item 2: concurrent first requests for one thumb each paid for a generation.
/// They now share one (single flight), and a thumb that cannot be made is remembered, so
/// later requests get the original without another attempt.
#[tokio::test]
async fn concurrent_thumb_requests_share_one_generation_and_refusals_are_remembered() {
    let app = Arc::new(App::new().await);
    let docs = app.docs(Some("")).await;
    let photo = png(300, 200);
    let broken = b"\x89PNG\r\n\x1a\nnot really".to_vec();
    app.seed(
        &docs,
        RECORD,
        &[
            ("photo_abcdefghij.png", &photo),
            ("broken_abcdefghij.png", &broken),
        ],
        None,
        "",
    )
    .await;
    let jobs = &app.state.files.thumbs;
    let url = format!("/api/files/docs/{RECORD}/photo_abcdefghij.png?thumb=100x100");
    let mut requests = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        let url = url.clone();
        requests.push(tokio::spawn(async move { app.get(&url, &[]).await }));
    }
    let mut bodies = Vec::new();
    for request in requests {
        let answer = request.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.header("content-disposition"),
            "inline; filename=\"100x100_photo_abcdefghij.png\""
        );
        bodies.push(answer.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(jobs.started(), 1, "one generation for eight requests");
    assert_eq!(jobs.in_flight(), 0, "nothing left waiting");

    let url = format!("/api/files/docs/{RECORD}/broken_abcdefghij.png?thumb=100x100");
    for _ in 0..3 {
        let answer = app.get(&url, &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], &broken[..], "the original is served");
    }
    assert_eq!(jobs.started(), 2, "the refusal is remembered");
    let thumb = thumb_key(&docs.id, RECORD, "broken_abcdefghij.png", "100x100");
    assert!(jobs.is_refused(&thumb));
}

/// A thumbnail source larger than `MAX_SOURCE_BYTES` is never read into memory: the original
/// is served, and the refusal remembered.
#[tokio::test]
async fn sources_past_the_byte_bound_are_served_without_being_read() {
    let app = App::new().await;
    let docs = app.docs(Some("")).await;
    let mut big = png(10, 10);
    big.resize(super::thumbs::MAX_SOURCE_BYTES as usize + 1, 0);
    app.seed(&docs, RECORD, &[("big_abcdefghij.png", &big)], None, "")
        .await;
    let url = format!("/api/files/docs/{RECORD}/big_abcdefghij.png?thumb=100x100");
    let answer = app.get(&url, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.len(), big.len(), "the original is served");
    let thumb = thumb_key(&docs.id, RECORD, "big_abcdefghij.png", "100x100");
    assert!(app.state.files.thumbs.is_refused(&thumb));
}

/// Issue #11 item 11: the sweep once deleted every key whose first segment was not a current
/// collection id, so on a shared bucket it deleted other programs' data. It now deletes only
/// keys of Plinth's layout and naming, under collections Plinth kept files for (including
/// deleted ones), that no record names — and leaves everything else in place.
#[tokio::test]
async fn the_sweep_removes_only_plinths_own_unreferenced_files_past_the_grace_period() {
    const KEPT: &str = "kept_abcdefghij.txt";
    let app = App::new().await;
    let docs = app.docs(Some("")).await;
    // A collection that kept files and was then deleted: its files are Plinth's orphans.
    let mut gone = Collection::scaffold(CollectionType::Base, "gone");
    gone.id = domain::ids::collection_id("base", "gone");
    gone.fields
        .push(Field::new("files", FieldKind::File(FileOptions::default())));
    let gone_id = gone.id.clone();
    app.state.store.create_collection(gone).await.unwrap();
    super::storage_for(&app.state).await.unwrap();
    app.state.store.delete_collection(&gone_id).await.unwrap();

    app.seed(&docs, RECORD, &[(KEPT, b"k")], None, "").await;
    let storage = app.state.files.local();
    let orphans = [
        file_key(&docs.id, RECORD, "orphan_abcdefghij.txt"),
        thumb_key(&docs.id, RECORD, "orphan_0123456789.png", "100x100"),
        file_key(&docs.id, "nosuchrecord123", "x_y_abcdefghij.txt"),
        file_key(&gone_id, "somerecord12345", "y_abcdefghij.txt"),
    ];
    let kept = [
        file_key(&docs.id, RECORD, KEPT),
        thumb_key(&docs.id, RECORD, KEPT, "100x100"),
    ];
    // Keys another program wrote into the same storage root.
    let foreign = [
        "backups/2024/db_abcdefghij.zip".to_owned(),
        "pbc_1234567/somerecord12345/y_abcdefghij.txt".to_owned(),
        "site/assets/logo_abcdefghij.png".to_owned(),
        "README.txt".to_owned(),
        format!("{}/notes.txt", docs.id),
        file_key(&docs.id, "nosuchrecord123", "handmade.txt"),
        file_key(&docs.id, RECORD, "Report_abcdefghij.txt"),
        format!("{}/{RECORD}/thumbs_{KEPT}/custom.bin", docs.id),
        format!("{}/{RECORD}/x_abcdefghij.txt/deeper", docs.id),
    ];
    for key in orphans.iter().chain(&foreign) {
        storage.put(key, Bytes::from_static(b"o")).await.unwrap();
    }
    storage
        .put(&kept[1], Bytes::from_static(b"t"))
        .await
        .unwrap();
    // Within the grace period nothing goes.
    let removed = super::cleanup::remove_orphans(&app.state, super::cleanup::GRACE)
        .await
        .unwrap();
    assert_eq!(removed, 0);
    let removed = super::cleanup::remove_orphans(&app.state, std::time::Duration::ZERO)
        .await
        .unwrap();
    for key in &orphans {
        assert!(!storage.exists(key).await.unwrap(), "{key}");
    }
    for key in foreign.iter().chain(&kept) {
        assert!(storage.exists(key).await.unwrap(), "{key} was deleted");
    }
    assert_eq!(removed, orphans.len());
    // The list of collections that keep files is durable.
    let owned = app
        .state
        .store
        .get_param(super::cleanup::OWNED_COLLECTIONS_PARAM)
        .await
        .unwrap()
        .unwrap();
    assert!(
        owned.as_array().unwrap().contains(&json!(gone_id)),
        "{owned}"
    );
}

/// A real S3-compatible server (moto's, from PyPI) on a free loopback port, or `None`
/// when `moto_server` is not installed (`pip install 'moto[server]'`).
pub(crate) struct Moto(std::process::Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn start_moto() -> Option<Moto> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("moto_server")
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
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

impl Moto {
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.1)
    }

    /// moto accepts an unsigned bucket creation.
    pub(crate) async fn create_bucket(&self, name: &str) {
        let created = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint()))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
    }
}

#[tokio::test]
async fn the_s3_settings_move_uploads_and_downloads_to_the_bucket() {
    let Some(moto) = start_moto().await else {
        eprintln!("moto_server not available; S3 settings test skipped");
        return;
    };
    moto.create_bucket("plinth-files").await;
    let app = App::new().await;
    let docs = app.docs(Some("")).await;
    let answer = app
        .send(
            Request::builder()
                .method("PATCH")
                .uri("/api/settings")
                .header(header::AUTHORIZATION, app.superuser.as_str())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({
                        "batch": {"enabled": true},
                        "s3": {"enabled": true, "bucket": "plinth-files", "region": "us-east-1",
                               "endpoint": moto.endpoint(), "accessKey": "test",
                               "secret": "test", "forcePathStyle": true}
                    })
                    .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
    let test_s3 = |filesystem: &'static str| {
        Request::builder()
            .method("POST")
            .uri("/api/settings/test/s3")
            .header(header::AUTHORIZATION, app.superuser.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "filesystem": filesystem }).to_string()))
            .unwrap()
    };
    assert_eq!(
        app.send(test_s3("storage")).await.status,
        StatusCode::NO_CONTENT
    );
    let answer = app.send(test_s3("backups")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json()["message"],
        "Failed to test the S3 filesystem. Raw error: \nS3 storage filesystem is not enabled."
    );
    assert_eq!(
        app.send(test_s3("")).await.json()["data"]["filesystem"]["code"],
        "validation_required"
    );
    let boundary = "XsX";
    let payload = json!({"requests": [{"method": "POST", "url": "/api/collections/docs/records",
        "body": {}}]});
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{payload}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"requests.0.files\"; filename=\"s3.txt\"\r\n\r\nin the bucket\r\n\
         --{boundary}--\r\n"
    );
    let answer = app
        .send(
            Request::builder()
                .method("POST")
                .uri("/api/batch")
                .header(header::AUTHORIZATION, app.superuser.as_str())
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
    let record = &answer.json()[0]["body"];
    let id = record["id"].as_str().unwrap().to_owned();
    let name = record["files"][0].as_str().unwrap().to_owned();
    // Nothing on the local disk; the bytes are in the bucket.
    assert!(
        app.state
            .files
            .local()
            .list(&docs.id)
            .await
            .unwrap()
            .is_empty()
    );
    let answer = app
        .get(
            &format!("/api/files/docs/{id}/{name}"),
            &[("range", "bytes=3-")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&answer.body[..], b"the bucket");
}

/// A multipart body: `(name, Some(filename), bytes)` for a file part, `(name, None, text)`
/// for a text field.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "plinthTestBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(filename) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl App {
    async fn upload(
        &self,
        method: &str,
        uri: &str,
        parts: &[(&str, Option<&str>, &[u8])],
    ) -> Answer {
        let (content_type, body) = multipart(parts);
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, &self.superuser)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    async fn stored(&self, collection: &Collection, id: &str) -> Vec<String> {
        let mut keys = self
            .state
            .files
            .local()
            .list(&super::storage::record_prefix(&collection.id, id))
            .await
            .unwrap();
        keys.sort();
        keys
    }
}

fn names(record: &Value, field: &str) -> Vec<String> {
    match &record[field] {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn record_creates_and_updates_store_replace_and_remove_uploads() {
    let app = App::new().await;
    let docs = app.docs(Some("")).await;
    let base = "/api/collections/docs/records";
    let created = app
        .upload(
            "POST",
            base,
            &[
                ("owner", None, b"me"),
                ("files", Some("Hello World.txt"), b"hello"),
                ("files", Some("two.txt"), b"second"),
                ("secret", Some("key.pem"), b"s3cr3t"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.json());
    let record = created.json();
    let id = record["id"].as_str().unwrap().to_owned();
    let files = names(&record, "files");
    assert_eq!(files.len(), 2, "{record}");
    // PocketBase's naming: the sanitized stem, `_`, 10 random characters, the extension.
    assert!(
        files[0].starts_with("hello_world_") && files[0].ends_with(".txt"),
        "{files:?}"
    );
    assert_eq!(files[0].len(), "hello_world_".len() + 10 + ".txt".len());
    assert_eq!(record["owner"], "me");
    let download = app
        .get(&format!("/api/files/docs/{id}/{}", files[1]), &[])
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(&download.body[..], b"second");
    assert_eq!(app.stored(&docs, &id).await.len(), 3);

    // Append one, remove one by name, replace the single file.
    let updated = app
        .upload(
            "PATCH",
            &format!("{base}/{id}"),
            &[
                ("files+", Some("three.txt"), b"third"),
                ("files-", None, files[0].as_bytes()),
                ("secret", Some("new.pem"), b"n3w"),
            ],
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.json());
    let record = updated.json();
    let now = names(&record, "files");
    assert_eq!(now.len(), 2, "{record}");
    assert_eq!(now[0], files[1]);
    assert!(now[1].starts_with("three_"), "{now:?}");
    let secret = names(&record, "secret");
    assert!(secret[0].starts_with("new_"), "{secret:?}");
    // The removed and the replaced files are gone from storage; the others stay.
    let stored = app.stored(&docs, &id).await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(stored.iter().all(|key| !key.ends_with(&files[0])));
    assert!(stored.iter().any(|key| key.ends_with(&secret[0])));

    // Clearing a field with an empty value removes its files.
    let cleared = app
        .upload("PATCH", &format!("{base}/{id}"), &[("files", None, b"")])
        .await;
    assert_eq!(cleared.status, 200, "{:?}", cleared.json());
    assert!(names(&cleared.json(), "files").is_empty());
    assert_eq!(app.stored(&docs, &id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_uploads_are_refused_and_leave_no_files() {
    let app = App::new().await;
    let mut collection = Collection::scaffold(CollectionType::Base, "small");
    collection.fields.push(Field::new(
        "pics",
        FieldKind::File(FileOptions {
            max_select: 2,
            max_size: 1024,
            mime_types: vec!["text/plain".into()],
            ..Default::default()
        }),
    ));
    let schema = app.state.store.create_collection(collection).await.unwrap();
    let small = schema.get("small").cloned().unwrap();
    let base = "/api/collections/small/records";
    let big = vec![b'a'; 2048];
    for (parts, code) in [
        (
            vec![("pics", Some("big.txt"), &big[..])],
            "validation_file_size_limit",
        ),
        (
            vec![
                ("pics", Some("a.txt"), &b"a"[..]),
                ("pics", Some("b.txt"), b"b"),
                ("pics", Some("c.txt"), b"c"),
            ],
            "validation_too_many_files",
        ),
    ] {
        let answer = app.upload("POST", base, &parts).await;
        assert_eq!(answer.status, 400, "{:?}", answer.json());
        let body = answer.json();
        assert_eq!(body["message"], "Failed to create record.");
        assert_eq!(body["data"]["pics"]["code"], code, "{body}");
    }
    let listed = app
        .state
        .files
        .local()
        .list(&format!("{}/", small.id))
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    // A body over the server limit is accepted when the file fields allow it, not beyond.
    let ok = app
        .upload("POST", base, &[("pics", Some("fine.txt"), &big[..1000])])
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.json());
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_beyond_the_file_fields_allowance_are_413() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).unwrap();
    let admin = crate::superusers::create(store.as_ref(), "admin@example.com", "Passw0rd!123", 4)
        .await
        .unwrap();
    let superusers = store.schema().get("_superusers").cloned().unwrap();
    let token = crate::auth::token::auth_token(&superusers, &admin).unwrap();
    let mut collection = Collection::scaffold(CollectionType::Base, "tiny");
    collection.fields.push(Field::new(
        "doc",
        FieldKind::File(FileOptions {
            max_select: 1,
            max_size: 4096,
            ..Default::default()
        }),
    ));
    store.create_collection(collection).await.unwrap();
    let config = ServerConfig {
        bcrypt_cost: 4,
        body_limit: 1024,
        storage_dir: Some(dir.path().join("storage")),
        ..ServerConfig::default()
    };
    let router = crate::router(AppState::new(store, config));
    for (size, status) in [
        (3000usize, StatusCode::OK),
        (8000, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let payload = vec![b'x'; size];
        let (content_type, body) = multipart(&[("doc", Some("d.bin"), &payload)]);
        let response = router
            .clone()
            .oneshot(
                Request::builder()
                    .method("POST")
                    .uri("/api/collections/tiny/records")
                    .header(header::AUTHORIZATION, &token)
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{size} bytes");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_deleted_by_a_cascade_lose_their_files() {
    let app = App::new().await;
    let mut parents = Collection::scaffold(CollectionType::Base, "parents");
    parents
        .fields
        .push(Field::new("name", FieldKind::Text(Default::default())));
    let schema = app.state.store.create_collection(parents).await.unwrap();
    let parents = schema.get("parents").cloned().unwrap();
    let mut children = Collection::scaffold(CollectionType::Base, "children");
    children.fields.push(Field::new(
        "parent",
        FieldKind::Relation(domain::field::RelationOptions {
            collection_id: parents.id.clone(),
            max_select: 1,
            cascade_delete: true,
            ..Default::default()
        }),
    ));
    children.fields.push(Field::new(
        "doc",
        FieldKind::File(FileOptions {
            max_select: 1,
            ..Default::default()
        }),
    ));
    let schema = app.state.store.create_collection(children).await.unwrap();
    let children = schema.get("children").cloned().unwrap();

    let parent = app
        .upload(
            "POST",
            "/api/collections/parents/records",
            &[("name", None, b"p")],
        )
        .await
        .json();
    let parent_id = parent["id"].as_str().unwrap().to_owned();
    let child = app
        .upload(
            "POST",
            "/api/collections/children/records",
            &[
                ("parent", None, parent_id.as_bytes()),
                ("doc", Some("c.txt"), b"child file"),
            ],
        )
        .await;
    assert_eq!(child.status, 200, "{:?}", child.json());
    let child_id = child.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(app.stored(&children, &child_id).await.len(), 1);

    let deleted = app
        .send(
            Request::builder()
                .method("DELETE")
                .uri(format!("/api/collections/parents/records/{parent_id}"))
                .header(header::AUTHORIZATION, &app.superuser)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert!(app.stored(&children, &child_id).await.is_empty());
}
