//! End-to-end tests of `POST /api/batch` over a real SQLite store: the settings switch, the
//! request checks, one transaction for every item, PocketBase's nested error, and files
//! stored only for batches that commit.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::Store;
use domain::collection::{Collection, CollectionType};
use domain::field::{Field, FieldKind, FileOptions, TextOptions};
use serde_json::{Value, json};
use store_sqlite::SqliteStore;
use tempfile::TempDir;
use tower::ServiceExt;

use crate::state::{AppState, ServerConfig, SharedState};

struct App {
    _dir: TempDir,
    router: Router,
    state: SharedState,
    superuser: String,
    notes: Arc<Collection>,
}

impl App {
    async fn new(enabled: bool) -> App {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).unwrap();
        let admin =
            crate::superusers::create(store.as_ref(), "admin@example.com", "Passw0rd!123", 4)
                .await
                .unwrap();
        let superusers = store.schema().get("_superusers").cloned().unwrap();
        let superuser = crate::auth::token::auth_token(&superusers, &admin).unwrap();
        let mut notes = Collection::scaffold(CollectionType::Base, "notes");
        notes.id = domain::ids::collection_id("base", "notes");
        for rule in [
            &mut notes.list_rule,
            &mut notes.view_rule,
            &mut notes.create_rule,
            &mut notes.update_rule,
            &mut notes.delete_rule,
        ] {
            *rule = Some(String::new());
        }
        let mut title = Field::new("title", FieldKind::Text(TextOptions::default()));
        if let FieldKind::Text(options) = &mut title.kind {
            options.required = true;
        }
        notes.fields.push(title);
        notes.fields.push(Field::new(
            "files",
            FieldKind::File(FileOptions {
                max_select: 3,
                ..Default::default()
            }),
        ));
        let schema = store.create_collection(notes).await.unwrap();
        let notes = schema.get("notes").cloned().unwrap();
        let config = ServerConfig {
            bcrypt_cost: 4,
            storage_dir: Some(dir.path().join("storage")),
            ..ServerConfig::default()
        };
        let state = AppState::new(store, config);
        let router = crate::router(state.clone());
        let app = App {
            _dir: dir,
            router,
            state,
            superuser,
            notes,
        };
        if enabled {
            let (status, _) = app
                .json(
                    "PATCH",
                    "/api/settings",
                    Some(&app.superuser.clone()),
                    json!({"batch": {"enabled": true, "maxRequests": 5}}),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        app
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn json(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, token);
        }
        self.send(builder.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn batch(&self, body: Value) -> (StatusCode, Value) {
        self.json("POST", "/api/batch", None, body).await
    }

    /// A multipart batch: the JSON under `@jsonPayload`, then `(part name, file name, bytes)`.
    async fn batch_multipart(
        &self,
        payload: Value,
        files: &[(&str, &str, &[u8])],
    ) -> (StatusCode, Value) {
        let boundary = "XbatchX";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{payload}\r\n"
            )
            .as_bytes(),
        );
        for (name, file_name, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let request = Request::builder()
            .method("POST")
            .uri("/api/batch")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    async fn count(&self) -> usize {
        let (_, list) = self
            .json("GET", "/api/collections/notes/records", None, Value::Null)
            .await;
        list["items"].as_array().map_or(0, Vec::len)
    }

    async fn stored_files(&self) -> Vec<String> {
        self.state
            .files
            .local()
            .list(&self.notes.id)
            .await
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn batch_is_off_by_default() {
    let app = App::new(false).await;
    let (status, body) = app.batch(json!({"requests": []})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"data": {}, "message": "Batch requests are not allowed.", "status": 403})
    );
}

#[tokio::test]
async fn request_lists_are_checked_like_pocketbase() {
    let app = App::new(true).await;
    let (status, body) = app.batch(json!({"requests": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"data": {"requests": {"code": "validation_required", "message": "Cannot be blank."}},
               "message": "Invalid batch request data.", "status": 400})
    );
    let six: Vec<Value> = (0..6)
        .map(|_| json!({"method": "POST", "url": "/api/collections/notes/records"}))
        .collect();
    let (_, body) = app.batch(json!({ "requests": six })).await;
    assert_eq!(
        body["data"]["requests"]["code"],
        "validation_length_too_long"
    );
    assert_eq!(
        body["data"]["requests"]["params"],
        json!({"max": 5, "min": 0})
    );
    let (_, body) = app
        .batch(json!({"requests": [{"method": "FOO", "url": "/x"}, {"url": ""}]}))
        .await;
    assert_eq!(
        body["data"],
        json!({"requests": {
            "0": {"method": {"code": "validation_in_invalid", "message": "Must be a valid value."}},
            "1": {"method": {"code": "validation_required", "message": "Cannot be blank."},
                  "url": {"code": "validation_required", "message": "Cannot be blank."}}}})
    );
    for (method, url) in [
        ("GET", "/api/collections/notes/records"),
        ("POST", "http://evil.example/api/collections/notes/records"),
        ("POST", "/api/settings"),
    ] {
        let (status, body) = app
            .batch(json!({"requests": [{"method": method, "url": url, "body": {"title": "x"}}]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(
            body,
            json!({"data": {"requests": {"0": {"code": "batch_request_failed",
                "message": "Batch request failed.",
                "response": {"data": {}, "message": "Something went wrong while processing your request.", "status": 400}}}},
               "message": "Batch transaction failed.", "status": 400}),
            "{url}"
        );
    }
    let (_, body) = app.json("POST", "/api/batch", None, json!([1])).await;
    assert_eq!(body["message"], "Failed to read the submitted batch data.");
    // Items are read into typed requests first, as PocketBase reads them: a wrong type fails
    // the read, before the list's length or any item's fields are checked.
    let url = "/api/collections/notes/records";
    for items in [
        json!([1]),
        json!(["x"]),
        json!([[]]),
        json!([{"method": 1, "url": url}]),
        json!([{"method": "POST", "url": 5}]),
        json!([{"method": "POST", "url": url, "body": "text"}]),
        json!([{"method": "POST", "url": url, "body": [1]}]),
        json!([{"method": "POST", "url": url, "headers": "x"}]),
        json!([{"method": "POST", "url": url, "headers": {"a": 1}}]),
        json!([
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            {},
            1
        ]),
    ] {
        let (status, body) = app.batch(json!({ "requests": items })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{items}");
        assert_eq!(
            body,
            json!({"data": {}, "message": "Failed to read the submitted batch data.", "status": 400}),
            "{items}"
        );
    }
    // `null` in each place reads as missing: the last item fails as a request without a
    // method or URL, the others are well-formed.
    let (status, body) = app
        .batch(json!({"requests": [
            {"method": "POST", "url": url, "body": {"title": "t"}, "headers": {"x-a": null}},
            {"method": "POST", "url": url, "body": {"title": "u"}, "headers": null},
            {"method": null, "url": null},
        ]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["message"], "Invalid batch request data.", "{body}");
    assert_eq!(
        body["data"]["requests"]["2"]["method"]["code"],
        "validation_required"
    );
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn every_kind_of_item_runs_and_answers_in_order() {
    let app = App::new(true).await;
    let (status, existing) = app
        .json(
            "POST",
            "/api/collections/notes/records",
            None,
            json!({"id": "existing0000001", "title": "old"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let _ = existing;
    let (status, body) = app
        .batch(json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records?fields=id,title",
             "body": {"id": "created00000001", "title": "a"}},
            {"method": "PATCH", "url": "/api/collections/notes/records/existing0000001?fields=title",
             "body": {"title": "patched"}},
            {"method": "PUT", "url": "/api/collections/notes/records?fields=id",
             "body": {"id": "upserted0000001", "title": "u"}},
            {"method": "PUT", "url": "/api/collections/notes/records?fields=title",
             "body": {"id": "existing0000001", "title": "upsert-updated"}},
            {"method": "DELETE", "url": "/api/collections/notes/records/created00000001"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!([
            {"body": {"id": "created00000001", "title": "a"}, "status": 200},
            {"body": {"title": "patched"}, "status": 200},
            {"body": {"id": "upserted0000001"}, "status": 200},
            {"body": {"title": "upsert-updated"}, "status": 200},
            {"body": null, "status": 204}
        ])
    );
    assert_eq!(app.count().await, 2);
}

#[tokio::test]
async fn one_failure_rolls_back_every_item_with_the_nested_error() {
    let app = App::new(true).await;
    let (status, body) = app
        .batch(json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "ok"}},
            {"method": "POST", "url": "/api/collections/notes/records", "body": {}}
        ]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"data": {"requests": {"1": {"code": "batch_request_failed", "message": "Batch request failed.",
            "response": {"data": {"title": {"code": "validation_required", "message": "Cannot be blank."}},
                         "message": "Failed to create record.", "status": 400}}}},
           "message": "Batch transaction failed.", "status": 400})
    );
    // A failure inside the transaction (duplicate id) also undoes the earlier item.
    let (status, body) = app
        .batch(json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "ok"}},
            {"method": "POST", "url": "/api/collections/notes/records", "body": {"id": "dupdupdupdupdup", "title": "1"}},
            {"method": "POST", "url": "/api/collections/notes/records", "body": {"id": "dupdupdupdupdup", "title": "2"}}
        ]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["data"]["requests"]["2"].is_object(), "{body}");
    let (_, body) = app
        .batch(json!({"requests": [
            {"method": "PATCH", "url": "/api/collections/notes/records/missing00000000", "body": {}}
        ]}))
        .await;
    assert_eq!(
        body["data"]["requests"]["0"]["response"],
        json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404})
    );
    let (_, body) = app
        .batch(json!({"requests": [
            {"method": "POST", "url": "/api/collections/nope/records", "body": {}}
        ]}))
        .await;
    assert_eq!(
        body["data"]["requests"]["0"]["response"]["message"],
        "Missing collection context."
    );
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn multipart_batches_store_files_only_when_they_commit() {
    let app = App::new(true).await;
    let payload = json!({"requests": [
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "with file"}}
    ]});
    let (status, body) = app
        .batch_multipart(payload, &[("requests.0.files", "hello.txt", b"hello")])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names = body[0]["body"]["files"].as_array().unwrap().clone();
    assert_eq!(names.len(), 1);
    let name = names[0].as_str().unwrap();
    // Renamed twice, as PocketBase does: hello_<10>_<10>.txt.
    assert!(
        name.starts_with("hello_") && name.ends_with(".txt") && name.len() == 6 + 11 + 11 + 3,
        "{name}"
    );
    let id = body[0]["body"]["id"].as_str().unwrap();
    assert_eq!(
        app.stored_files().await,
        vec![format!("{}/{id}/{name}", app.notes.id)]
    );

    // The second item fails: no record and no file is left from the first.
    let payload = json!({"requests": [
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "x"}},
        {"method": "POST", "url": "/api/collections/notes/records", "body": {}}
    ]});
    let (status, _) = app
        .batch_multipart(payload, &[("requests[0].files", "a.txt", b"aaa")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.stored_files().await.len(), 1);
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn a_truncated_multipart_body_is_a_clear_400_and_writes_nothing() {
    let app = App::new(true).await;
    let payload = json!({"requests": [
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "x"}}
    ]});
    let body = format!(
        "--B\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{payload}\r\n--B\r\nContent-Disposition: form-data; name=\"requests.0.files\"; filename=\"a.txt\"\r\n\r\nhalf a fi"
    );
    let request = Request::builder()
        .method("POST")
        .uri("/api/batch")
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=B")
        .body(Body::from(body))
        .unwrap();
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Failed to read the submitted batch data.");
    assert_eq!(app.count().await, 0);
    assert!(app.stored_files().await.is_empty());
}

#[tokio::test]
async fn the_batch_body_limit_comes_from_the_settings() {
    let app = App::new(true).await;
    let (status, _) = app
        .json(
            "PATCH",
            "/api/settings",
            Some(&app.superuser.clone()),
            json!({"batch": {"maxBodySize": 200}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let big = "x".repeat(300);
    let (status, body) = app
        .batch(json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": big}}
        ]}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, body) = app
        .batch_multipart(
            json!({"requests": [{"method": "POST", "url": "/api/collections/notes/records",
                                 "body": {"title": "x"}}]}),
            &[("requests.0.files", "big.txt", &[b'y'; 400])],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(app.count().await, 0);
    assert!(app.stored_files().await.is_empty());
}

#[tokio::test]
async fn later_items_see_records_created_by_earlier_ones() {
    let app = App::new(true).await;
    let su = app.superuser.clone();
    let (status, _) = app
        .json(
            "PATCH",
            "/api/collections/notes",
            Some(&su),
            json!({"updateRule": "title != 'locked'"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .batch(json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records?fields=id,title",
             "body": {"id": "created00000001", "title": "a"}},
            {"method": "PATCH", "url": "/api/collections/notes/records/created00000001?fields=title",
             "body": {"title": "b"}},
            {"method": "PUT", "url": "/api/collections/notes/records?fields=title",
             "body": {"id": "created00000001", "title": "c"}}
        ]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!([
            {"body": {"id": "created00000001", "title": "a"}, "status": 200},
            {"body": {"title": "b"}, "status": 200},
            {"body": {"title": "c"}, "status": 200}
        ])
    );
    assert_eq!(app.count().await, 1);

    // The update rule is checked on the would-be row of the earlier create (as PocketBase
    // checks it on the row inside its transaction): refused, and the whole batch with it.
    let (status, body) = app
        .batch(json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records",
             "body": {"id": "created00000002", "title": "locked"}},
            {"method": "PATCH", "url": "/api/collections/notes/records/created00000002",
             "body": {"title": "b"}}
        ]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["data"]["requests"]["1"]["response"]["status"], 404);
    assert_eq!(app.count().await, 1);
}
