//! Record request hooks (`onRecord{Update,Delete,View}Request`, `onRecordsListRequest`) and
//! `onRecordEnrich` end to end: a `pb_hooks` dir passed with `--hooksDir`, collections made
//! through the API. The expected answers were observed on PocketBase 0.40.6 with the same
//! hook file.

use serde_json::{Value, json};

use crate::support::{Launch, TestApp, assert_error};

const HOOKS: &str = r#"
onRecordUpdateRequest((e) => {
  const t = e.record.getString("title");
  if (t === "u-throw") throw new BadRequestError("nope in update");
  if (t === "u-plain") throw new Error("plain");
  if (t === "u-nonext") return;
  e.record.set("note", "orig=" + e.record.original().getString("title") + " n=" + e.record.getInt("n"));
  e.record.set("n", 42);
  e.next();
}, "posts");
onRecordDeleteRequest((e) => {
  const t = e.record.getString("title");
  if (t === "d-nonext") return;
  if (t === "d-throw") throw new BadRequestError("no delete");
  if (t === "d-json") return e.json(200, { deleted: e.record.id });
  e.next();
}, "posts");
onRecordViewRequest((e) => {
  const t = e.record.getString("title");
  if (t === "v-custom") return e.json(201, { custom: e.record.getString("title"), x: typeof e.request });
  if (t === "v-nonext") return;
  if (t === "v-throw") throw new Error("plain");
  e.record.set("n", 7);
  e.next();
}, "posts");
onRecordsListRequest((e) => {
  if (e.requestInfo().query["hook"] !== "1") return e.next();
  e.result.totalItems = 999;
  e.result.page = 5;
  if (e.records.length) e.records[0].set("title", "changed");
  e.next();
}, "posts");
onRecordEnrich((e) => {
  e.record.hide("secret");
  e.record.withCustomData(true);
  e.record.set("computed", e.record.getInt("n") * 2);
  e.next();
}, "enr");
onRecordViewRequest((e) => { throw new ApiError(418, "teapot view"); }, "locked");
onRecordUpdateRequest((e) => { throw new ApiError(418, "teapot update"); }, "locked");
onRecordDeleteRequest((e) => { throw new ApiError(418, "teapot delete"); }, "locked");
"#;

/// A server with the hook file above and the `posts`, `enr` and `locked` collections; the
/// hooks dir lives as long as the server.
async fn app() -> (TestApp, tempfile::TempDir) {
    let hooks = tempfile::tempdir().expect("tempdir");
    std::fs::write(hooks.path().join("main.pb.js"), HOOKS).expect("hook file");
    let app = TestApp::spawn_launch(&Launch {
        args: vec![
            format!("--hooksDir={}", hooks.path().display()),
            "--hooksWatch=false".to_owned(),
        ],
        ..Launch::default()
    })
    .await;
    let su = app.admin_token().await;
    let fields = json!([
        {"name": "title", "type": "text"},
        {"name": "n", "type": "number"},
        {"name": "note", "type": "text"},
        {"name": "secret", "type": "text"},
    ]);
    for name in ["posts", "enr"] {
        let (status, body) = app
            .post_json(
                "/api/collections",
                Some(&su),
                json!({"name": name, "type": "base", "listRule": "", "viewRule": "",
                       "createRule": "", "updateRule": "", "deleteRule": "", "fields": fields}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let closed = r#"title = "open""#;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&su),
            json!({"name": "locked", "type": "base", "listRule": "", "viewRule": closed,
                   "createRule": "", "updateRule": closed, "deleteRule": closed,
                   "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (app, hooks)
}

async fn create(app: &TestApp, collection: &str, body: Value) -> String {
    let (status, rec) = app
        .post_json(
            &format!("/api/collections/{collection}/records"),
            None,
            body,
        )
        .await;
    assert_eq!(status, 200, "{rec}");
    rec["id"].as_str().expect("id").to_owned()
}

/// The status, Content-Length, Content-Type and body text of one request.
async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Option<String>, String) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (length, kind) = (header("content-length"), header("content-type"));
    let status = response.status().as_u16();
    (status, length, kind, response.text().await.expect("body"))
}

/// The stored record, read through the list endpoint (whose hook only acts on `?hook=1`).
async fn stored(app: &TestApp, collection: &str, id: &str) -> (u16, Value) {
    app.get(
        &format!("/api/collections/{collection}/records?filter=(id='{id}')"),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_request_hook() {
    let (app, _hooks) = app().await;
    let path = |id: &str| format!("/api/collections/posts/records/{id}");

    // A change before `e.next()` is written; `original()` is the stored row, `e.record`
    // already holds the submitted values.
    let id = create(&app, "posts", json!({"title": "u-ok", "n": 1})).await;
    let (status, body) = app
        .patch_json(&path(&id), None, json!({"title": "u-ok2", "n": 5}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["n"], 42);
    assert_eq!(body["title"], "u-ok2");
    assert_eq!(body["note"], "orig=u-ok n=5");
    let (_, list) = stored(&app, "posts", &id).await;
    assert_eq!(list["items"][0]["n"], 42, "{list}");
    assert_eq!(list["items"][0]["note"], "orig=u-ok n=5");

    // A BadRequestError keeps its message; nothing is stored.
    let id = create(&app, "posts", json!({"title": "u-throw", "n": 1})).await;
    let (status, body) = app
        .patch_json(&path(&id), None, json!({"title": "u-throw", "n": 5}))
        .await;
    assert_error(status, &body, 400, "Nope in update.");
    let (_, list) = stored(&app, "posts", &id).await;
    assert_eq!(list["items"][0]["n"], 1, "{list}");

    // A plain Error is the generic 400.
    let id = create(&app, "posts", json!({"title": "u-plain", "n": 1})).await;
    let (status, body) = app
        .patch_json(&path(&id), None, json!({"title": "u-plain", "n": 5}))
        .await;
    assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );

    // No `e.next()`: PocketBase's empty 200, nothing stored.
    let id = create(&app, "posts", json!({"title": "u-nonext", "n": 1})).await;
    let (status, length, kind, text) = raw(
        &app,
        reqwest::Method::PATCH,
        &path(&id),
        Some(json!({"title": "u-nonext", "n": 5})),
    )
    .await;
    assert_eq!(
        (status, length.as_deref(), kind, text.as_str()),
        (200, Some("0"), None, "")
    );
    let (_, list) = stored(&app, "posts", &id).await;
    assert_eq!(list["items"][0]["n"], 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_request_hook() {
    let (app, _hooks) = app().await;
    let path = |id: &str| format!("/api/collections/posts/records/{id}");

    // No `e.next()`: an empty 200 (observed on PocketBase), and the record stays.
    let id = create(&app, "posts", json!({"title": "d-nonext"})).await;
    let (status, length, kind, text) = raw(&app, reqwest::Method::DELETE, &path(&id), None).await;
    assert_eq!(
        (status, length.as_deref(), kind, text.as_str()),
        (200, Some("0"), None, "")
    );
    assert_eq!(stored(&app, "posts", &id).await.1["totalItems"], 1);

    let id = create(&app, "posts", json!({"title": "d-throw"})).await;
    let (status, body) = app.delete(&path(&id), None).await;
    assert_error(status, &body, 400, "No delete.");
    assert_eq!(stored(&app, "posts", &id).await.1["totalItems"], 1);

    // The hook's own answer, and nothing deleted.
    let id = create(&app, "posts", json!({"title": "d-json"})).await;
    let (status, body) = app.delete(&path(&id), None).await;
    assert_eq!((status, body), (200, json!({"deleted": id})));
    assert_eq!(stored(&app, "posts", &id).await.1["totalItems"], 1);

    // Through `e.next()`: the usual 204, and the record is gone.
    let id = create(&app, "posts", json!({"title": "d-ok"})).await;
    let (status, _, _, text) = raw(&app, reqwest::Method::DELETE, &path(&id), None).await;
    assert_eq!((status, text.as_str()), (204, ""));
    assert_eq!(stored(&app, "posts", &id).await.1["totalItems"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_request_hook() {
    let (app, _hooks) = app().await;
    let path = |id: &str| format!("/api/collections/posts/records/{id}");

    // A custom answer (status and body as written; `e.request` is undefined there).
    let id = create(&app, "posts", json!({"title": "v-custom"})).await;
    let (status, length, kind, text) = raw(&app, reqwest::Method::GET, &path(&id), None).await;
    assert_eq!((status, kind.as_deref()), (201, Some("application/json")));
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body, json!({"custom": "v-custom", "x": "undefined"}));
    assert_eq!(length, Some(text.len().to_string()));

    let id = create(&app, "posts", json!({"title": "v-nonext"})).await;
    let (status, length, kind, text) = raw(&app, reqwest::Method::GET, &path(&id), None).await;
    assert_eq!(
        (status, length.as_deref(), kind, text.as_str()),
        (200, Some("0"), None, "")
    );

    let id = create(&app, "posts", json!({"title": "v-throw"})).await;
    let (status, body) = app.get(&path(&id), None).await;
    assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );

    // A change before `e.next()` shows in the answer (not stored).
    let id = create(&app, "posts", json!({"title": "v-ok", "n": 1})).await;
    let (status, body) = app
        .get(&format!("{}?fields=title,n", path(&id)), None)
        .await;
    assert_eq!((status, body), (200, json!({"title": "v-ok", "n": 7})));
    let (_, list) = stored(&app, "posts", &id).await;
    assert_eq!(list["items"][0]["n"], 1, "{list}");

    // A missing record is the 404, before any hook.
    let (status, body) = app.get(&path("nonexistent1234"), None).await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_come_before_the_hooks() {
    let (app, _hooks) = app().await;
    let closed = create(&app, "locked", json!({"title": "closed"})).await;
    let path = format!("/api/collections/locked/records/{closed}");
    let missing = "The requested resource wasn't found.";
    let (status, body) = app.get(&path, None).await;
    assert_error(status, &body, 404, missing);
    let (status, body) = app.patch_json(&path, None, json!({"title": "open"})).await;
    assert_error(status, &body, 404, missing);
    let (status, body) = app.delete(&path, None).await;
    assert_error(status, &body, 404, missing);
    // Past the rule, the hook answers.
    let open = create(&app, "locked", json!({"title": "open"})).await;
    let (status, body) = app
        .get(&format!("/api/collections/locked/records/{open}"), None)
        .await;
    assert_error(status, &body, 418, "Teapot view.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_request_hook() {
    let (app, _hooks) = app().await;
    for title in ["a", "b", "c"] {
        create(&app, "posts", json!({"title": title, "n": 1})).await;
    }
    let (status, body) = app
        .get(
            "/api/collections/posts/records?hook=1&perPage=2&sort=title&fields=title,n",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // As PocketBase: the edited result and record show; totalPages is not recomputed.
    assert_eq!(
        body,
        json!({"items": [{"title": "changed", "n": 1}, {"title": "b", "n": 1}],
               "page": 5, "perPage": 2, "totalItems": 999, "totalPages": 2})
    );
    // Nothing was stored.
    let (_, body) = app
        .get(
            "/api/collections/posts/records?sort=title&fields=title",
            None,
        )
        .await;
    assert_eq!(
        body["items"],
        json!([{"title": "a"}, {"title": "b"}, {"title": "c"}])
    );
    assert_eq!(body["totalItems"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_hides_and_adds() {
    let (app, _hooks) = app().await;
    // The create answer is enriched too.
    let (status, created) = app
        .post_json(
            "/api/collections/enr/records",
            None,
            json!({"title": "e1", "n": 3, "secret": "s"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["computed"], 6);
    assert!(created.get("secret").is_none(), "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    let (status, list) = app.get("/api/collections/enr/records", None).await;
    assert_eq!(status, 200, "{list}");
    let item = &list["items"][0];
    assert_eq!(item["computed"], 6);
    assert!(item.get("secret").is_none(), "{item}");
    assert_eq!(item["title"], "e1");

    let (status, view) = app
        .get(
            &format!("/api/collections/enr/records/{id}?fields=title,computed"),
            None,
        )
        .await;
    assert_eq!((status, view), (200, json!({"title": "e1", "computed": 6})));

    let (status, updated) = app
        .patch_json(
            &format!("/api/collections/enr/records/{id}"),
            None,
            json!({"n": 10}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["computed"], 20);
    assert!(updated.get("secret").is_none(), "{updated}");

    // Posts has no enrich handler: its answers are untouched.
    let pid = create(&app, "posts", json!({"title": "plain", "secret": "s"})).await;
    let (_, body) = stored(&app, "posts", &pid).await;
    assert_eq!(body["items"][0]["secret"], "s");
    assert!(body["items"][0].get("computed").is_none());
}
