//! Files end to end: uploads (record multipart and batch multipart), downloads with
//! PocketBase's headers, ranges, thumbnails, protected files with file tokens, and the
//! storage directory on disk after successes and failures.

use serde_json::{Value, json};

use crate::support::TestApp;

/// A `multipart/form-data` body: text parts `(name, value)` then file parts
/// `(name, file name, bytes)`. Returns the content type and the bytes.
pub fn multipart(texts: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----plinthTestBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (name, value) in texts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
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
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends a multipart request and returns the status and JSON body.
pub async fn send_multipart(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    texts: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (u16, Value) {
    let (content_type, body) = multipart(texts, files);
    let mut request = app
        .client
        .request(method, app.url(path))
        .header("Content-Type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body read");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A 1×1 PNG, scaled up by the server for thumbnails.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// `docs` with a public multi-file field and a protected single-file field; the view rule
/// lets only the record's owner see it. Batch is enabled. Returns the collection id.
pub async fn setup(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(token),
            json!({
                "name": "docs", "type": "base",
                "listRule": "", "viewRule": "owner = @request.auth.id", "createRule": "",
                "updateRule": "", "deleteRule": "",
                "fields": [
                    {"name": "title", "type": "text"},
                    {"name": "owner", "type": "text"},
                    {"name": "files", "type": "file", "maxSelect": 3, "thumbs": ["20x0"]},
                    {"name": "secret", "type": "file", "maxSelect": 1, "protected": true}
                ]
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(token),
            json!({"batch": {"enabled": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, collection) = app.get("/api/collections/docs", Some(token)).await;
    collection["id"].as_str().expect("collection id").to_owned()
}

#[tokio::test]
async fn batch_uploads_are_downloadable_with_pocketbase_headers() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let collection_id = setup(&app, &token).await;
    let payload = json!({"requests": [{"method": "POST", "url": "/api/collections/docs/records",
        "body": {"title": "t"}}]})
    .to_string();
    let (status, body) = send_multipart(
        &app,
        reqwest::Method::POST,
        "/api/batch",
        None,
        &[("@jsonPayload", &payload)],
        &[
            ("requests.0.files", "hello.txt", b"hello world"),
            ("requests.0.files", "red.png", PNG),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let record = &body[0]["body"];
    let id = record["id"].as_str().expect("id");
    let names: Vec<String> = record["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|v| v.as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names[0].starts_with("hello_") && names[0].ends_with(".txt"));
    let on_disk = app.dir.path().join("storage").join(&collection_id).join(id);
    assert!(on_disk.join(&names[0]).is_file());

    let text_url = app.url(&format!("/api/files/docs/{id}/{}", names[0]));
    let response = app.client.get(&text_url).send().await.expect("download");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"{}\"", names[0]).as_str()
    );
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(headers.get("x-frame-options").is_none());
    assert_eq!(response.text().await.expect("text"), "hello world");

    let response = app
        .client
        .get(&text_url)
        .header("Range", "bytes=0-4")
        .send()
        .await
        .expect("range");
    assert_eq!(response.status(), 206);
    assert_eq!(response.text().await.expect("text"), "hello");

    let png_url = app.url(&format!("/api/files/{collection_id}/{id}/{}", names[1]));
    let response = app
        .client
        .get(format!("{png_url}?thumb=20x0"))
        .send()
        .await
        .expect("thumb");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        response.headers()["content-disposition"],
        format!("inline; filename=\"20x0_{}\"", names[1]).as_str()
    );
    let thumb_file = on_disk
        .join(format!("thumbs_{}", names[1]))
        .join(format!("20x0_{}", names[1]));
    assert!(thumb_file.is_file(), "thumbnail cached on disk");

    // Deleting the record removes its files after the commit.
    let (status, _) = app
        .delete(&format!("/api/collections/docs/records/{id}"), Some(&token))
        .await;
    assert_eq!(status, 204);
    assert!(!on_disk.join(&names[0]).exists());
    let response = app.client.get(&text_url).send().await.expect("gone");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn protected_files_need_the_owners_file_token() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    setup(&app, &token).await;
    let mut users = Vec::new();
    for email in ["one@example.com", "two@example.com"] {
        let (status, user) = app
            .post_json(
                "/api/collections/users/records",
                None,
                json!({"email": email, "password": "12345678", "passwordConfirm": "12345678"}),
            )
            .await;
        assert_eq!(status, 200, "{user}");
        let (status, auth) = app
            .post_json(
                "/api/collections/users/auth-with-password",
                None,
                json!({"identity": email, "password": "12345678"}),
            )
            .await;
        assert_eq!(status, 200, "{auth}");
        users.push((
            user["id"].as_str().expect("id").to_owned(),
            auth["token"].as_str().expect("token").to_owned(),
        ));
    }
    let payload = json!({"requests": [{"method": "POST", "url": "/api/collections/docs/records",
        "body": {"owner": users[0].0}}]})
    .to_string();
    let (status, body) = send_multipart(
        &app,
        reqwest::Method::POST,
        "/api/batch",
        None,
        &[("@jsonPayload", &payload)],
        &[("requests.0.secret", "secret.txt", b"classified")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body[0]["body"]["id"].as_str().expect("id").to_owned();
    let (_, record) = app
        .get(&format!("/api/collections/docs/records/{id}"), Some(&token))
        .await;
    let name = record["secret"].as_str().expect("name").to_owned();
    let url = format!("/api/files/docs/{id}/{name}");

    let (status, _) = app.get(&url, None).await;
    assert_eq!(status, 404);
    let (status, _) = app.get(&url, Some(&users[0].1)).await;
    assert_eq!(status, 404, "the Authorization header is ignored");
    let mut file_tokens = Vec::new();
    for (_, auth) in &users {
        let (status, body) = app
            .post_json("/api/files/token", Some(auth), json!({}))
            .await;
        assert_eq!(status, 200);
        file_tokens.push(body["token"].as_str().expect("token").to_owned());
    }
    let (status, _) = app
        .get(&format!("{url}?token={}", file_tokens[1]), None)
        .await;
    assert_eq!(status, 404);
    let response = app
        .client
        .get(app.url(&format!("{url}?token={}", file_tokens[0])))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "classified");
    let (status, body) = app.post_json("/api/files/token", None, json!({})).await;
    assert_eq!(status, 401, "{body}");
}
