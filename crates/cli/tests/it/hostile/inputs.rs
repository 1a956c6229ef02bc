//! Hostile inputs (issue #11 items 3, 4, 13 and 15c): long value lists, amplifying `expand`
//! parameters, hidden data reached through `sort` and `expand`, and bodies built to be
//! expensive to parse or sent to endpoints the caller may not use.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{NORMAL_TIMEOUT, assert_serving, spawn_capped};
use crate::support::{TestApp, assert_error};

const GENERIC_400: &str = "Something went wrong while processing your request.";

/// Creates a collection from `schema` as the superuser; returns its id.
async fn create_collection(app: &TestApp, token: &str, schema: Value) -> String {
    let (status, body) = app.post_json("/api/collections", Some(token), schema).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().expect("collection id").to_owned()
}

/// Creates a record as the superuser; returns its id.
async fn create_record(app: &TestApp, token: &str, collection: &str, body: Value) -> String {
    let (status, created) = app
        .post_json(
            &format!("/api/collections/{collection}/records"),
            Some(token),
            body,
        )
        .await;
    assert_eq!(status, 200, "{created}");
    created["id"].as_str().expect("record id").to_owned()
}

/// `tags` and `posts` (a relation to tags with a huge maxSelect, a 3-value select, a
/// hidden relation), all open to guests.
async fn tags_and_posts(app: &TestApp, token: &str) -> String {
    let tags = create_collection(
        app,
        token,
        json!({"name": "tags", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
               "fields": [{"name": "name", "type": "text"}]}),
    )
    .await;
    create_collection(
        app,
        token,
        json!({"name": "posts", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "tags", "type": "relation", "collectionId": tags, "maxSelect": 999_999},
            {"name": "sel", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
            {"name": "secret", "type": "relation", "collectionId": tags, "maxSelect": 1,
             "hidden": true},
            {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_",
             "maxSelect": 1}
        ]}),
    )
    .await;
    tags
}

/// 40,000 distinct values for a multi-value field (a ~400 KB body) were de-duplicated in
/// quadratic time on an async worker: a few such requests stalled every other client. Now
/// the list is refused with the field's "too many values" error, and the server keeps
/// serving while several are in flight.
#[tokio::test]
async fn long_value_lists_are_refused_without_stalling_the_server() {
    let mut app = spawn_capped().await;
    let token = app.admin_token().await;
    tags_and_posts(&app, &token).await;
    let ids: Vec<String> = (0..40_000).map(|i| format!("x{i:014}")).collect();
    let body = json!({ "tags": ids });
    let attacks: Vec<_> = (0..6)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/api/collections/posts/records");
            let body = body.clone();
            tokio::spawn(async move {
                let response = client.post(url).json(&body).send().await.expect("sent");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("JSON"))
            })
        })
        .collect();
    // A normal request is served while the attacks are in flight.
    assert_serving(&mut app, "during 6 x 40k relation ids").await;
    for attack in attacks {
        let (status, body) = attack.await.expect("attack task");
        let data = assert_error(status, &body, 400, "Failed to create record.");
        assert_eq!(
            data["tags"],
            json!({"code": "validation_too_many_values", "message": "Select no more than 10000.",
                   "params": {"maxSelect": 10_000}})
        );
    }
    // A select gets PocketBase's own answer for the same list.
    let values: Vec<String> = (0..40_000).map(|i| format!("v{i}")).collect();
    let (status, body) = app
        .post_json(
            "/api/collections/posts/records",
            None,
            json!({ "sel": values }),
        )
        .await;
    let data = assert_error(status, &body, 400, "Failed to create record.");
    assert_eq!(
        data["sel"],
        json!({"code": "validation_too_many_values", "message": "Select no more than 3.",
               "params": {"maxSelect": 3}})
    );
    assert_serving(&mut app, "after the long lists").await;
}

/// Case variants of one back-relation were expanded separately, paths were unbounded and
/// every parent got its own copy of a subtree: a short `expand` made a huge response. Now
/// variants are one path, distinct paths are capped, and an expansion whose output would be
/// past the bound is refused.
#[tokio::test]
async fn expand_cannot_amplify_a_response() {
    let mut app = spawn_capped().await;
    let token = app.admin_token().await;
    create_collection(
        &app,
        &token,
        json!({"name": "posts", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_",
             "maxSelect": 1}
        ]}),
    )
    .await;
    let posts = app.get("/api/collections/posts", Some(&token)).await.1["id"]
        .as_str()
        .expect("posts id")
        .to_owned();
    create_collection(
        &app,
        &token,
        json!({"name": "comments", "type": "base", "listRule": "", "viewRule": "",
        "createRule": "",
        "fields": [
            {"name": "post", "type": "relation", "collectionId": posts, "maxSelect": 1},
            {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_",
             "maxSelect": 1}
        ]}),
    )
    .await;
    let mut post_ids = Vec::new();
    for i in 0..10 {
        post_ids
            .push(create_record(&app, &token, "posts", json!({ "title": format!("p{i}") })).await);
    }
    let mut creates = Vec::new();
    for post in &post_ids {
        for _ in 0..25 {
            let client = app.client.clone();
            let url = app.url("/api/collections/comments/records");
            let body = json!({ "post": post });
            creates.push(tokio::spawn(async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("sent")
                    .status()
            }));
        }
    }
    for create in creates {
        assert_eq!(create.await.expect("task").as_u16(), 200);
    }

    // 300 spellings of one back-relation path: one key, expanded once.
    let mut variants = Vec::new();
    for bits in 0u32..300 {
        let name: String = "comments"
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if bits >> i & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        variants.push(format!("{name}_via_post"));
    }
    variants.sort();
    variants.dedup();
    let (status, body) = app
        .get(
            &format!(
                "/api/collections/posts/records?perPage=1&expand={}",
                variants.join(",")
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let expand = body["items"][0]["expand"].as_object().expect("expand");
    assert_eq!(expand.len(), 1, "one path: {:?}", expand.keys());
    assert_eq!(
        expand.values().next().map(|v| v.as_array().map(Vec::len)),
        Some(Some(25))
    );

    // Back and forth through the back-relation: 10 × 25³ copies of comments.
    let (status, body) = app
        .get(
            "/api/collections/posts/records?expand=comments_via_post.post.comments_via_post.post.comments_via_post",
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "The expanded records are too many; expand fewer paths or ask for a smaller page.",
    );

    // More than 64 distinct paths (every path of up to six hops through posts, comments
    // and users) is refused.
    let mut paths: Vec<String> = vec![String::new()];
    let mut all = Vec::new();
    let mut frontier = vec![(String::new(), "posts")];
    for _ in 0..6 {
        let mut next = Vec::new();
        for (prefix, at) in &frontier {
            let steps: &[(&str, &str)] = match *at {
                "posts" => &[("author", "users"), ("comments_via_post", "comments")],
                "comments" => &[("post", "posts"), ("author", "users")],
                _ => &[
                    ("posts_via_author", "posts"),
                    ("comments_via_author", "comments"),
                ],
            };
            for (segment, target) in steps {
                let path = if prefix.is_empty() {
                    (*segment).to_owned()
                } else {
                    format!("{prefix}.{segment}")
                };
                all.push(path.clone());
                next.push((path, *target));
            }
        }
        frontier = next;
    }
    paths.extend(all);
    assert!(paths.len() > 65);
    let (status, body) = app
        .get(
            &format!(
                "/api/collections/posts/records?perPage=1&expand={}",
                paths.join(",")
            ),
            None,
        )
        .await;
    assert_error(status, &body, 400, "Too many expand paths (at most 64).");
    assert_serving(&mut app, "after the expand attacks").await;
}

/// PocketBase orders users by emails the viewer cannot see (a few probe accounts find an
/// address by binary search) and expands hidden relation fields; Plinth does neither.
#[tokio::test]
async fn sort_and_expand_do_not_reveal_hidden_data() {
    let mut app = spawn_capped().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/collections/users",
            Some(&token),
            json!({"listRule": "", "viewRule": ""}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Hidden addresses created in the reverse of their alphabetical order, and a visible one.
    let mut hidden = Vec::new();
    for (email, visible) in [
        ("zz@example.com", false),
        ("mm@example.com", true),
        ("aa@example.com", false),
    ] {
        let id = create_record(
            &app,
            &token,
            "users",
            json!({"email": email, "password": "Passw0rd!123", "passwordConfirm": "Passw0rd!123",
                   "emailVisibility": visible}),
        )
        .await;
        if !visible {
            hidden.push(id);
        }
    }
    for sort in ["email", "-email", "email:lower"] {
        let (status, body) = app
            .get(&format!("/api/collections/users/records?sort={sort}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        let order: Vec<&str> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|item| item["id"].as_str())
            .filter(|id| hidden.iter().any(|h| h == id))
            .collect();
        assert_eq!(
            order,
            hidden.iter().map(String::as_str).collect::<Vec<_>>(),
            "sort={sort}: hidden addresses keep insertion order"
        );
    }
    // Superusers still sort by the real addresses.
    let (_, body) = app
        .get("/api/collections/users/records?sort=email", Some(&token))
        .await;
    assert_eq!(body["items"][0]["email"], "aa@example.com");

    // A hidden relation field is not expanded for guests.
    tags_and_posts(&app, &token).await;
    let tag = create_record(&app, &token, "tags", json!({"name": "t"})).await;
    create_record(&app, &token, "posts", json!({"title": "p", "secret": tag})).await;
    let (status, body) = app
        .get("/api/collections/posts/records?expand=secret", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["items"][0]
            .get("expand")
            .is_none_or(|e| e.get("secret").is_none()),
        "{body}"
    );
    let (_, body) = app
        .get("/api/collections/posts/records?expand=secret", Some(&token))
        .await;
    assert_eq!(body["items"][0]["expand"]["secret"]["id"], tag.as_str());
    // Sorting by a hidden field stays refused, as filtering is.
    let (status, body) = app
        .get("/api/collections/posts/records?sort=secret", None)
        .await;
    assert_error(status, &body, 400, GENERIC_400);
    assert_serving(&mut app, "after the hidden-data probes").await;
}

/// A superuser-only endpoint answered 401/403 only after reading and parsing the whole
/// body (32 MB of JSON reached 1.2 GB). Now it refuses from the headers: a guest that
/// declares a 32 MB body and sends ten bytes of it gets its 401 at once.
#[tokio::test]
async fn superuser_endpoints_refuse_before_reading_the_body() {
    let mut app = spawn_capped().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    for path in [
        "/api/settings",
        "/api/settings/test/email",
        "/api/settings/test/s3",
        "/api/settings/apple/generate-client-secret",
        "/api/collections/users/impersonate/abc",
        "/api/backups",
        "/api/backups/upload",
        "/api/backups/x.zip/restore",
    ] {
        let method = if path == "/api/settings" {
            "PATCH"
        } else {
            "POST"
        };
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: 33000000\r\n\r\n{{\"a\":[{{}},"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut answer = vec![0u8; 4096];
        let read = tokio::time::timeout(NORMAL_TIMEOUT, stream.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer before the body was sent"))
            .expect("read");
        let text = String::from_utf8_lossy(&answer[..read]);
        assert!(text.starts_with("HTTP/1.1 401"), "{path}: {text}");
        assert!(
            text.contains("The request requires valid record authorization token."),
            "{path}: {text}"
        );
    }
    assert_serving(&mut app, "after the unread bodies").await;
}

/// Bodies that parse into far more memory than their size, or past PocketBase's own
/// bounds (Go's multipart parts and form size), are refused with the generic 400.
#[tokio::test]
async fn expensive_bodies_are_refused() {
    let mut app = spawn_capped().await;
    let token = app.admin_token().await;
    tags_and_posts(&app, &token).await;
    let url = app.url("/api/collections/posts/records");
    let send = |content_type: &'static str, body: Vec<u8>| {
        let request = app
            .client
            .post(url.clone())
            .header("Content-Type", content_type)
            .timeout(Duration::from_secs(120))
            .body(body);
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    // ~30 MB of empty objects: ten million values (over a gigabyte parsed).
    let mut body = b"{\"title\":[".to_vec();
    body.extend(b"{},".repeat(10_000_000));
    body.extend(b"{}]}");
    let (status, answer) = send("application/json", body).await;
    assert_error(status, &answer, 400, GENERIC_400);
    // Nesting past 128 levels.
    let deep = format!("{{\"title\":{}{}}}", "[".repeat(200), "]".repeat(200));
    let (status, answer) = send("application/json", deep.into_bytes()).await;
    assert_error(status, &answer, 400, GENERIC_400);
    // The same values inside a multipart `@jsonPayload`.
    let mut payload =
        b"--XB\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{\"title\":["
            .to_vec();
    payload.extend(b"0,".repeat(1_500_000));
    payload.extend(b"0]}\r\n--XB--\r\n");
    let (status, answer) = send("multipart/form-data; boundary=XB", payload).await;
    assert_error(status, &answer, 400, GENERIC_400);
    // 1001 multipart parts (PocketBase accepts 1000).
    for (parts, expected) in [(1000, 200), (1001, 400)] {
        let mut body = Vec::new();
        for _ in 0..parts {
            body.extend(b"--XB\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx\r\n");
        }
        body.extend(b"--XB--\r\n");
        let (status, answer) = send("multipart/form-data; boundary=XB", body).await;
        assert_eq!(status, expected, "{parts} parts: {answer}");
    }
    // A form-encoded body over 10 MiB.
    let mut form = b"title=".to_vec();
    form.extend(b"a".repeat(10 << 20));
    let (status, answer) = send("application/x-www-form-urlencoded", form).await;
    assert_error(status, &answer, 400, GENERIC_400);
    // Superusers are held to the same bounds.
    let response = app
        .client
        .patch(app.url("/api/settings"))
        .header("Authorization", &token)
        .header("Content-Type", "application/json")
        .body({
            let mut body = b"{\"meta\":{\"appName\":\"x\"},\"a\":[".to_vec();
            body.extend(b"{},".repeat(10_000_000));
            body.extend(b"{}]}");
            body
        })
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("JSON");
    assert_error(
        status,
        &answer,
        400,
        "An error occurred while loading the submitted data.",
    );
    assert_serving(&mut app, "after the expensive bodies").await;
}

/// The query parameters' own bounds, as PocketBase has them: 8 sort terms of at most 255
/// bytes, filters of at most 3500 bytes, pages of at most 1000 records.
#[tokio::test]
async fn query_parameters_are_bounded_like_pocketbase() {
    let mut app = spawn_capped().await;
    let token = app.admin_token().await;
    let list = "/api/collections/_superusers/records";
    for (query, expected) in [
        (format!("sort={}", ["id"; 8].join(",")), 200),
        (format!("sort={}", ["id"; 9].join(",")), 400),
        (format!("sort={}", "a".repeat(256)), 400),
        (format!("filter=id='{}'", "a".repeat(3500 - 5)), 200),
        (format!("filter=id='{}'", "a".repeat(3500 - 4)), 400),
    ] {
        let (status, body) = app.get(&format!("{list}?{query}"), Some(&token)).await;
        assert_eq!(status, expected, "{}: {body}", &query[..20]);
        if expected == 400 {
            assert_error(status, &body, 400, GENERIC_400);
        }
    }
    let (status, body) = app.get(&format!("{list}?perPage=5000"), Some(&token)).await;
    assert_eq!((status, body["perPage"].as_u64()), (200, Some(1000)));
    assert_serving(&mut app, "after the parameter bounds").await;
}
