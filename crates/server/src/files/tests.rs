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
    assert!(answer.headers.get(super::FILE_RESPONSE_MARKER).is_none());
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

#[tokio::test]
async fn the_sweep_removes_only_unreferenced_files_past_the_grace_period() {
    let app = App::new().await;
    let docs = app.docs(Some("")).await;
    app.seed(&docs, RECORD, &[("kept_abc.txt", b"k")], None, "")
        .await;
    let storage = app.state.files.local();
    let orphans = [
        file_key(&docs.id, RECORD, "orphan_abc.txt"),
        thumb_key(&docs.id, RECORD, "orphan_abc.png", "100x100"),
        file_key(&docs.id, "nosuchrecord123", "x_abc.txt"),
        file_key("pbc_deleted", "somerecord12345", "y_abc.txt"),
    ];
    let kept_thumb = thumb_key(&docs.id, RECORD, "kept_abc.txt", "100x100");
    for key in orphans.iter().chain([&kept_thumb]) {
        storage.put(key, Bytes::from_static(b"o")).await.unwrap();
    }
    // Within the grace period nothing goes.
    let removed = super::cleanup::remove_orphans(&app.state, super::cleanup::GRACE)
        .await
        .unwrap();
    assert_eq!(removed, 0);
    let removed = super::cleanup::remove_orphans(&app.state, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, orphans.len());
    for key in &orphans {
        assert!(!storage.exists(key).await.unwrap(), "{key}");
    }
    assert!(
        storage
            .exists(&file_key(&docs.id, RECORD, "kept_abc.txt"))
            .await
            .unwrap()
    );
    assert!(storage.exists(&kept_thumb).await.unwrap());
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
        "Failed to test the S3 filesystem. Raw error: \nS3 backups filesystem is not enabled."
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
