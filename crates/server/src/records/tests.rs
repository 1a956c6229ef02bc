//! End-to-end tests of the records API: the real router over a real SQLite store in a temp
//! dir, driven in-process. Expected bodies are the ones PocketBase 0.40.6 answered to the
//! same requests.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::collection::{Collection, CollectionType, USERS_ID};
use domain::field::{
    AutodateOptions, DateOptions, Field, FieldKind, JsonOptions, NumberOptions, RelationOptions,
    SelectOptions, TextOptions,
};
use domain::{Record, Store};
use serde_json::{Value, json};
use store_sqlite::SqliteStore;
use tempfile::TempDir;
use tower::ServiceExt;

use crate::state::{AppState, ServerConfig};

struct App {
    _dir: TempDir,
    router: Router,
    store: Arc<dyn Store>,
    superuser: String,
}

impl App {
    async fn new() -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> =
            SqliteStore::open(dir.path(), Default::default()).expect("store opens");
        let admin =
            crate::superusers::create(store.as_ref(), "admin@example.com", "Passw0rd!123", 4)
                .await
                .expect("superuser");
        let superusers = store
            .schema()
            .get("_superusers")
            .cloned()
            .expect("superusers collection");
        let superuser = crate::auth::token::auth_token(&superusers, &admin).expect("token");
        let config = ServerConfig {
            bcrypt_cost: 4,
            ..ServerConfig::default()
        };
        let router = crate::router(AppState::new(store.clone(), config));
        App {
            _dir: dir,
            router,
            store,
            superuser,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body reads");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (status, body)
    }

    /// A JSON request; `token` is sent as is in `Authorization`.
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, token);
        }
        let body = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).expect("request builds")).await
    }

    async fn su(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let token = self.superuser.clone();
        self.call(method, uri, Some(&token), body).await
    }

    async fn add_collection(&self, collection: Collection) -> Arc<Collection> {
        let name = collection.name.clone();
        let schema = self
            .store
            .create_collection(collection)
            .await
            .expect("collection created");
        schema.get(&name).cloned().expect("collection exists")
    }

    /// An auth token for a record of an auth collection.
    async fn token_for(&self, collection: &str, id: &str) -> String {
        let collection = self
            .store
            .schema()
            .get(collection)
            .cloned()
            .expect("auth collection");
        let record = self.record(&collection.name, id).await;
        crate::auth::token::auth_token(&collection, &record).expect("token")
    }

    async fn record(&self, collection: &str, id: &str) -> Record {
        let collection = self
            .store
            .schema()
            .get(collection)
            .cloned()
            .expect("collection");
        self.store
            .get_record(collection, id, Vec::new())
            .await
            .expect("store reads")
            .expect("record exists")
    }
}

fn field(name: &str, kind: FieldKind) -> Field {
    Field::new(name, kind)
}

fn text(name: &str) -> Field {
    field(name, FieldKind::Text(TextOptions::default()))
}

fn relation(name: &str, target: &str, max_select: u64) -> Field {
    field(
        name,
        FieldKind::Relation(RelationOptions {
            collection_id: target.to_owned(),
            max_select,
            ..Default::default()
        }),
    )
}

fn public(kind: CollectionType, name: &str, fields: Vec<Field>) -> Collection {
    let mut collection = Collection::scaffold(kind, name);
    collection.id = domain::ids::collection_id(kind.as_str(), name);
    for rule in [
        &mut collection.list_rule,
        &mut collection.view_rule,
        &mut collection.create_rule,
        &mut collection.update_rule,
        &mut collection.delete_rule,
    ] {
        *rule = Some(String::new());
    }
    collection.fields.extend(fields);
    if kind == CollectionType::Auth {
        collection.indexes = domain::collection::auth_indexes(&collection.id, name);
    }
    collection
}

/// `posts`: public rules, one field of several types, timestamps and a hidden field.
fn posts() -> Collection {
    let mut secret = text("secret");
    secret.hidden = true;
    public(
        CollectionType::Base,
        "posts",
        vec![
            field(
                "title",
                FieldKind::Text(TextOptions {
                    max: 50,
                    ..Default::default()
                }),
            ),
            field(
                "views",
                FieldKind::Number(NumberOptions {
                    max: Some(100.0),
                    ..Default::default()
                }),
            ),
            field(
                "tags",
                FieldKind::Select(SelectOptions {
                    max_select: 3,
                    values: ["a", "b", "c", "d"].map(String::from).to_vec(),
                    ..Default::default()
                }),
            ),
            field("meta", FieldKind::Json(JsonOptions::default())),
            field("publishedAt", FieldKind::Date(DateOptions::default())),
            secret,
            field(
                "created",
                FieldKind::Autodate(AutodateOptions {
                    on_create: true,
                    on_update: false,
                }),
            ),
            field(
                "updated",
                FieldKind::Autodate(AutodateOptions {
                    on_create: true,
                    on_update: true,
                }),
            ),
        ],
    )
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("record id").to_owned()
}

fn generic_400() -> Value {
    json!({"data": {}, "message": "Something went wrong while processing your request.", "status": 400})
}

#[tokio::test]
async fn create_view_list_and_delete_a_record() {
    let app = App::new().await;
    app.add_collection(posts()).await;
    let (status, created) = app
        .call(
            "POST",
            "/api/collections/posts/records",
            None,
            Some(
                json!({"title": "First", "views": "5", "tags": ["a", "a", "b"],
                        "meta": "{\"k\":1}", "publishedAt": "2024-05-06T07:08:09.123+02:00",
                        "secret": "ignored", "created": "2000-01-01", "nope": 1}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["collectionName"], "posts");
    assert_eq!(created["views"], 5);
    assert_eq!(created["tags"], json!(["a", "b"]));
    assert_eq!(created["meta"], json!({"k": 1}));
    assert_eq!(created["publishedAt"], "2024-05-06 05:08:09.123Z");
    assert_eq!(created["created"], created["updated"]);
    assert_ne!(created["created"], "2000-01-01 00:00:00.000Z");
    assert!(created.get("secret").is_none(), "hidden from guests");
    assert!(created.get("nope").is_none());
    let id = id_of(&created);
    assert_eq!(
        app.record("posts", &id).await.text("secret"),
        "",
        "hidden input ignored"
    );

    let (status, viewed) = app
        .su("GET", &format!("/api/collections/posts/records/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(viewed["secret"], "", "superusers see hidden fields");

    let (status, list) = app
        .call("GET", "/api/collections/POSTS/records", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            list["page"].clone(),
            list["perPage"].clone(),
            list["totalItems"].clone(),
            list["totalPages"].clone()
        ),
        (json!(1), json!(30), json!(1), json!(1))
    );
    assert_eq!(list["items"][0]["id"], id.as_str());

    let (status, body) = app
        .call(
            "DELETE",
            &format!("/api/collections/posts/records/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = app
        .call(
            "GET",
            &format!("/api/collections/posts/records/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"data": {}, "message": "The requested resource wasn't found.", "status": 404})
    );
}

/// `@request.headers.*` in a rule reads the request's headers (renamed: lowercase, `-` as
/// `_`, the first value of a repeated header), in memory and in SQL alike.
#[tokio::test]
async fn rules_read_the_request_headers() {
    let app = App::new().await;
    let mut posts = posts();
    posts.view_rule = Some("@request.headers.x_plinth_key = 'open'".into());
    posts.list_rule = Some("title = @request.headers.x_title".into());
    app.add_collection(posts).await;
    let (status, created) = app
        .su(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "t1", "views": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = id_of(&created);
    let get = |uri: String, headers: &[(&str, &str)]| {
        let mut builder = Request::builder().method("GET").uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).expect("request")
    };
    let view = format!("/api/collections/posts/records/{id}");
    for (headers, expected) in [
        (vec![("X-Plinth-Key", "open")], StatusCode::OK),
        (vec![("x-plinth-key", "shut")], StatusCode::NOT_FOUND),
        (
            vec![("X-Plinth-Key", "open"), ("X-Plinth-Key", "shut")],
            StatusCode::OK,
        ),
        (
            vec![("X-Plinth-Key", "shut"), ("X-Plinth-Key", "open")],
            StatusCode::NOT_FOUND,
        ),
        (vec![], StatusCode::NOT_FOUND),
    ] {
        let (status, body) = app.send(get(view.clone(), &headers)).await;
        assert_eq!(status, expected, "{headers:?}: {body}");
    }
    let list = "/api/collections/posts/records".to_string();
    let (status, page) = app.send(get(list.clone(), &[("X-Title", "t1")])).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalItems"], json!(1));
    let (status, page) = app.send(get(list, &[("X-Title", "t2")])).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["totalItems"], json!(0));
}

#[tokio::test]
async fn view_rules_answer_alike_in_memory_and_in_sql() {
    let app = App::new().await;
    // Row-local: decided in memory on the row read by id.
    let mut local = posts();
    local.view_rule = Some("views > 10 || title = @request.query.t".into());
    app.add_collection(local).await;
    // Reads another collection: the read's SQL guard decides.
    let mut joined = public(CollectionType::Base, "notes", vec![text("title")]);
    joined.id = "pbc_notes".into();
    joined.view_rule = Some("title = @request.query.t && @collection.posts.views ?> 40".into());
    app.add_collection(joined).await;

    let mut ids = Vec::new();
    for (title, views) in [("low", 5), ("high", 50)] {
        let (status, created) = app
            .su(
                "POST",
                "/api/collections/posts/records",
                Some(json!({"title": title, "views": views})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{created}");
        ids.push(id_of(&created));
    }
    let (status, note) = app
        .su(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"title": "n"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{note}");
    let note = id_of(&note);

    let (low, high) = (&ids[0], &ids[1]);
    let cases = [
        (
            format!("/api/collections/posts/records/{low}"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/api/collections/posts/records/{high}"),
            StatusCode::OK,
        ),
        (
            format!("/api/collections/posts/records/{low}?t=low"),
            StatusCode::OK,
        ),
        (
            format!("/api/collections/posts/records/{low}?t=high"),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/collections/posts/records/nosuchrecord12".to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/api/collections/notes/records/{note}?t=n"),
            StatusCode::OK,
        ),
        (
            format!("/api/collections/notes/records/{note}?t=m"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/api/collections/notes/records/{note}"),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (uri, expected) in cases {
        let (status, body) = app.call("GET", &uri, None, None).await;
        assert_eq!(status, expected, "{uri}: {body}");
        if expected == StatusCode::OK {
            assert_eq!(
                body["id"].as_str(),
                uri.rsplit('/').next().and_then(|t| t.split('?').next())
            );
        } else {
            assert_eq!(
                body["message"], "The requested resource wasn't found.",
                "{uri}"
            );
        }
    }
    // A superuser passes every rule.
    let (status, body) = app
        .su(
            "GET",
            &format!("/api/collections/posts/records/{low}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn list_paging_sort_and_bad_params() {
    let app = App::new().await;
    app.add_collection(posts()).await;
    for views in [3, 1, 2, 5, 4] {
        let (status, _) = app
            .call(
                "POST",
                "/api/collections/posts/records",
                None,
                Some(json!({"views": views})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let list = |query: &'static str| {
        let app = &app;
        async move {
            app.call(
                "GET",
                &format!("/api/collections/posts/records{query}"),
                None,
                None,
            )
            .await
        }
    };
    let (_, body) = list("?page=0&perPage=0").await;
    assert_eq!(
        (body["page"].clone(), body["perPage"].clone()),
        (json!(1), json!(30))
    );
    let (_, body) = list("?perPage=5000&fields=views").await;
    assert_eq!(body["perPage"], 1000);
    let (_, body) = list("?page=10&perPage=2").await;
    assert_eq!(
        body,
        json!({"items": [], "page": 10, "perPage": 2, "totalItems": 5, "totalPages": 3})
    );
    let (_, body) = list("?skipTotal=1&perPage=2&fields=views").await;
    assert_eq!(
        body,
        json!({"items": [{"views": 3}, {"views": 1}], "page": 1, "perPage": 2,
               "totalItems": -1, "totalPages": -1})
    );
    let (_, body) = list("?sort=-views&fields=views&perPage=3").await;
    assert_eq!(
        body["items"],
        json!([{"views": 5}, {"views": 4}, {"views": 3}])
    );
    let (_, body) = list("?sort=-@rowid&fields=views&perPage=1").await;
    assert_eq!(body["items"], json!([{"views": 4}]));
    for bad in [
        "?page=abc",
        "?perPage=1.5",
        "?skipTotal=yes",
        "?sort=nope",
        "?sort=,",
        "?sort=--views",
        "?filter=%20",
        "?fields=views:foo(1)",
    ] {
        let (status, body) = list(bad).await;
        assert_eq!(
            (status, body),
            (StatusCode::BAD_REQUEST, generic_400()),
            "{bad}"
        );
    }
    // Hidden fields sort for superusers only.
    let (status, _) = list("?sort=secret").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .su("GET", "/api/collections/posts/records?sort=secret", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Privileged references are refused before parameters are parsed.
    let (status, body) = list("?page=abc&sort=@request.auth.id").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"data": {}, "message": "Only superusers can filter by @request.", "status": 403})
        )
    );
    let (status, body) = list("?sort=@collection.b&filter=@request.a").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Only superusers can filter by @request.");
}

#[tokio::test]
async fn unknown_collections_locked_rules_and_views() {
    let app = App::new().await;
    app.add_collection(posts()).await;
    let mut locked = Collection::scaffold(CollectionType::Base, "locked");
    locked.id = "pbc_locked".into();
    locked.fields.push(text("title"));
    app.add_collection(locked).await;
    let mut view = Collection::scaffold(CollectionType::View, "pv");
    view.id = "pbc_pv".into();
    view.list_rule = Some(String::new());
    view.view_query = Some("SELECT id, title FROM posts".into());
    app.store
        .create_collection(view)
        .await
        .expect("view collection created");

    let missing = |message: &str| json!({"data": {}, "message": message, "status": 404});
    assert_eq!(
        app.call("GET", "/api/collections/nope/records", None, None)
            .await
            .1,
        missing("Missing collection context.")
    );
    assert_eq!(
        app.call("DELETE", "/api/collections/nope/records/x", None, None)
            .await
            .1,
        missing("Missing collection context.")
    );
    assert_eq!(
        app.call(
            "POST",
            "/api/collections/nope/records",
            None,
            Some(json!({}))
        )
        .await
        .1,
        missing("Missing or invalid collection context.")
    );
    assert_eq!(
        app.call(
            "PATCH",
            "/api/collections/nope/records/x",
            None,
            Some(json!({}))
        )
        .await
        .1,
        missing("Missing or invalid collection context.")
    );

    let forbidden =
        json!({"data": {}, "message": "Only superusers can perform this action.", "status": 403});
    for (method, uri) in [
        ("GET", "/api/collections/locked/records?page=abc"),
        ("GET", "/api/collections/locked/records/x"),
        ("POST", "/api/collections/locked/records"),
        ("PATCH", "/api/collections/locked/records/x"),
        ("DELETE", "/api/collections/locked/records/x"),
    ] {
        let (status, body) = app.call(method, uri, None, Some(json!({}))).await;
        assert_eq!(
            (status, body),
            (StatusCode::FORBIDDEN, forbidden.clone()),
            "{method} {uri}"
        );
    }
    // A malformed body is reported before the rule.
    let request = Request::builder()
        .method("POST")
        .uri("/api/collections/locked/records")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("garbage"))
        .expect("request builds");
    assert_eq!(
        app.send(request).await,
        (StatusCode::BAD_REQUEST, generic_400())
    );
    let (status, created) = app
        .su(
            "POST",
            "/api/collections/locked/records",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(
        (status, created["title"].clone()),
        (StatusCode::OK, json!("x"))
    );

    {
        let unsupported =
            json!({"data": {}, "message": "Unsupported collection type.", "status": 400});
        for (method, uri) in [
            ("POST", "/api/collections/pv/records"),
            ("PATCH", "/api/collections/pv/records/x"),
            ("DELETE", "/api/collections/pv/records/x"),
        ] {
            let (status, body) = app.call(method, uri, None, Some(json!({}))).await;
            assert_eq!(
                (status, body),
                (StatusCode::BAD_REQUEST, unsupported.clone()),
                "{method}"
            );
        }
        let (status, _) = app
            .call("GET", "/api/collections/pv/records", None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = app
            .call(
                "GET",
                "/api/collections/pv/records?sort=-@rowid",
                None,
                None,
            )
            .await;
        assert_eq!((status, body), (StatusCode::BAD_REQUEST, generic_400()));
    }
}

#[tokio::test]
async fn validation_errors_have_pocketbase_shape() {
    let app = App::new().await;
    app.add_collection(posts()).await;
    let (status, body) = app
        .call(
            "POST",
            "/api/collections/posts/records",
            None,
            Some(json!({"views": 101, "tags": ["a", "b", "c", "d"], "id": "ABC"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"data": {
                  "id": {"code": "validation_min_text_constraint",
                         "message": "Must be at least 15 character(s).", "params": {"min": 15}},
                  "views": {"code": "validation_max_number_constraint",
                            "message": "Must be less or equal than 100.", "params": {"max": 100}},
                  "tags": {"code": "validation_too_many_values",
                           "message": "Select no more than 3.", "params": {"maxSelect": 3}}},
               "message": "Failed to create record.", "status": 400})
    );
    let (status, created) = app
        .call(
            "POST",
            "/api/collections/posts/records",
            None,
            Some(json!({"id": "custom000000001"})),
        )
        .await;
    assert_eq!(
        (status, created["id"].clone()),
        (StatusCode::OK, json!("custom000000001"))
    );
    let (status, body) = app
        .call(
            "POST",
            "/api/collections/posts/records",
            None,
            Some(json!({"id": "custom000000001"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["data"],
        json!({"id": {"code": "validation_not_unique", "message": "Value must be unique."}})
    );
}

#[tokio::test]
async fn updates_apply_modifiers_and_keep_the_primary_key() {
    let app = App::new().await;
    app.add_collection(posts()).await;
    let (_, created) = app
        .call(
            "POST",
            "/api/collections/posts/records",
            None,
            Some(json!({"views": 10, "tags": ["a", "b"]})),
        )
        .await;
    let uri = format!("/api/collections/posts/records/{}", id_of(&created));
    let steps = [
        (json!({"views+": 5}), "views", json!(15)),
        (json!({"views-": 2.5}), "views", json!(12.5)),
        (json!({"tags-": "a"}), "tags", json!(["b"])),
        (json!({"+tags": "c"}), "tags", json!(["c", "b"])),
        (json!({"tags+": ["a"]}), "tags", json!(["c", "b", "a"])),
        (json!({"title+": "x"}), "title", json!("")),
    ];
    for (body, key, expected) in steps {
        let (status, updated) = app.call("PATCH", &uri, None, Some(body.clone())).await;
        assert_eq!(
            (status, updated[key].clone()),
            (StatusCode::OK, expected),
            "{body}"
        );
    }
    let (status, updated) = app.call("PATCH", &uri, None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(updated["updated"].as_str() >= created["updated"].as_str());
    assert_eq!(updated["created"], created["created"]);
    let (status, body) = app
        .call("PATCH", &uri, None, Some(json!({"id": "changedid000000"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"data": {"id": {"code": "validation_pk_change",
                               "message": "The record primary key cannot be changed."}},
               "message": "Failed to update record.", "status": 400})
    );
    let (status, _) = app
        .call(
            "PATCH",
            "/api/collections/posts/records/nonexistent0000",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_increments_are_not_lost() {
    let app = App::new().await;
    let mut counters = public(
        CollectionType::Base,
        "counters",
        vec![field("n", FieldKind::Number(NumberOptions::default()))],
    );
    counters.update_rule = Some(String::new());
    app.add_collection(counters).await;
    let (_, created) = app
        .call(
            "POST",
            "/api/collections/counters/records",
            None,
            Some(json!({})),
        )
        .await;
    let uri = format!("/api/collections/counters/records/{}", id_of(&created));
    let requests = (0..20).map(|_| app.call("PATCH", &uri, None, Some(json!({"n+": 1}))));
    for (status, _) in futures_util::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK);
    }
    let (_, body) = app.call("GET", &uri, None, None).await;
    assert_eq!(body["n"], 20);
}

#[tokio::test]
async fn fields_and_excerpts_filter_responses() {
    let app = App::new().await;
    app.add_collection(posts()).await;
    let (status, body) = app
        .call(
            "POST",
            "/api/collections/posts/records?fields=title:excerpt(4,true),views",
            None,
            Some(json!({"title": "<p>Post <b>number</b> 1</p>", "views": 2})),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"title": "Post...", "views": 2}))
    );
    let (_, body) = app
        .call(
            "GET",
            "/api/collections/posts/records?fields=title:excerpt(100)&perPage=1",
            None,
            None,
        )
        .await;
    assert_eq!(body["items"], json!([{"title": "Post number 1"}]));
    assert_eq!(body["totalItems"], 1);
}

#[tokio::test]
async fn form_bodies_are_accepted() {
    let app = App::new().await;
    app.add_collection(posts()).await;
    let request = Request::builder()
        .method("POST")
        .uri("/api/collections/posts/records")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("title=Form&views=7&tags=a&tags=c"))
        .expect("request builds");
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["title"].clone(),
            body["views"].clone(),
            body["tags"].clone()
        ),
        (json!("Form"), json!(7), json!(["a", "c"]))
    );
    let boundary = "XBOUNDARY";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nMulti\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"@jsonPayload\"\r\n\r\n{{\"views\":9,\"meta\":{{\"a\":[1]}}}}\r\n\
         --{boundary}--\r\n"
    );
    let request = Request::builder()
        .method("POST")
        .uri("/api/collections/posts/records")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(multipart))
        .expect("request builds");
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["title"].clone(),
            body["views"].clone(),
            body["meta"].clone()
        ),
        (json!("Multi"), json!(9), json!({"a": [1]}))
    );
    let request = Request::builder()
        .method("POST")
        .uri("/api/collections/posts/records")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("x"))
        .expect("request builds");
    let (status, body) = app.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Unsupported Content-Type.");
}

/// An auth collection with public rules, so that non-superusers can reach other records
/// while the rules crate compiles no expressions yet.
async fn members(app: &App) -> Arc<Collection> {
    let mut members = public(CollectionType::Auth, "members", vec![text("name")]);
    members.fields.push(field(
        "created",
        FieldKind::Autodate(AutodateOptions {
            on_create: true,
            on_update: false,
        }),
    ));
    app.add_collection(members).await
}

async fn sign_up(app: &App, email: &str, password: &str) -> Value {
    let (status, body) = app
        .call(
            "POST",
            "/api/collections/members/records",
            None,
            Some(
                json!({"email": email, "password": password, "passwordConfirm": password,
                        "name": "N"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn auth_records_sign_up_without_token_or_email() {
    let app = App::new().await;
    members(&app).await;
    let alice = sign_up(&app, "alice@example.com", "alicepass123").await;
    assert!(
        alice.get("email").is_none(),
        "email hidden without emailVisibility"
    );
    assert!(alice.get("token").is_none() && alice.get("tokenKey").is_none());
    assert!(alice.get("password").is_none());
    assert_eq!(
        (alice["verified"].clone(), alice["emailVisibility"].clone()),
        (json!(false), json!(false))
    );
    let stored = app.record("members", &id_of(&alice)).await;
    assert!(stored.text("password").starts_with("$argon2id$"));
    assert_eq!(stored.text("tokenKey").len(), 50);

    let cases = [
        (
            json!({}),
            json!({"password": "validation_required", "passwordConfirm": "validation_required"}),
        ),
        (
            json!({"email": "c@example.com", "password": "12345678"}),
            json!({"passwordConfirm": "validation_required"}),
        ),
        (
            json!({"email": "bad", "passwordConfirm": "12345678"}),
            json!({"password": "validation_required", "passwordConfirm": "validation_values_mismatch"}),
        ),
        (
            json!({"email": "c@example.com", "password": "12345678", "passwordConfirm": "12345678",
                "verified": true}),
            json!({"verified": "validation_values_mismatch"}),
        ),
        (
            json!({"email": "c@example.com", "password": "1234", "passwordConfirm": "1234"}),
            json!({"password": "validation_min_text_constraint"}),
        ),
        (
            json!({"password": "12345678", "passwordConfirm": "12345678"}),
            json!({"email": "validation_required"}),
        ),
        (
            json!({"email": "alice@example.com", "password": "12345678", "passwordConfirm": "12345678"}),
            json!({"email": "validation_not_unique"}),
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = app
            .call(
                "POST",
                "/api/collections/members/records",
                None,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["message"], "Failed to create record.");
        let codes: serde_json::Map<String, Value> = answer["data"]
            .as_object()
            .expect("error data")
            .iter()
            .map(|(k, v)| (k.clone(), v["code"].clone()))
            .collect();
        assert_eq!(Value::Object(codes), expected, "{body}");
    }
    let (status, verified) = app
        .su(
            "POST",
            "/api/collections/members/records",
            Some(json!({"email": "v@example.com", "password": "12345678",
                        "passwordConfirm": "12345678", "verified": true})),
        )
        .await;
    assert_eq!(
        (
            status,
            verified["verified"].clone(),
            verified["email"].clone()
        ),
        (StatusCode::OK, json!(true), json!("v@example.com"))
    );
}

#[tokio::test]
async fn auth_record_updates_need_the_old_password_and_rotate_the_token_key() {
    let app = App::new().await;
    members(&app).await;
    let alice = sign_up(&app, "alice@example.com", "alicepass123").await;
    let id = id_of(&alice);
    let uri = format!("/api/collections/members/records/{id}");
    let token = app.token_for("members", &id).await;
    let key_before = app.record("members", &id).await.text("tokenKey").to_owned();

    let update = |body: Value| {
        let (app, uri, token) = (&app, uri.clone(), token.clone());
        async move { app.call("PATCH", &uri, Some(&token), Some(body)).await }
    };
    let (status, body) =
        update(json!({"password": "alicepass456", "passwordConfirm": "alicepass456"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"data": {"oldPassword": {"code": "validation_required", "message": "Cannot be blank."}},
               "message": "Failed to update record.", "status": 400})
    );
    let (_, body) = update(
        json!({"password": "alicepass456", "passwordConfirm": "alicepass456",
                                  "oldPassword": "wrong"}),
    )
    .await;
    assert_eq!(
        body["data"],
        json!({"oldPassword": {"code": "validation_invalid_old_password",
                               "message": "Missing or invalid old password."}})
    );
    let (_, body) = update(json!({"oldPassword": "x"})).await;
    assert_eq!(body["data"].as_object().map(|d| d.len()), Some(2));
    let (_, body) = update(json!({"email": "alice2@example.com", "verified": true})).await;
    assert_eq!(
        body["data"],
        json!({"email": {"code": "validation_values_mismatch", "message": "Values don't match."},
               "verified": {"code": "validation_values_mismatch", "message": "Values don't match."}})
    );
    let (status, body) = update(json!({"email": "alice@example.com", "verified": false,
                                       "emailVisibility": true, "tokenKey": "x"}))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], "alice@example.com", "owners see their email");
    assert_eq!(
        app.record("members", &id).await.text("tokenKey"),
        key_before
    );

    let (status, body) = update(
        json!({"password": "alicepass456", "passwordConfirm": "alicepass456",
                                       "oldPassword": "alicepass123"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("token").is_none());
    let stored = app.record("members", &id).await;
    assert_ne!(
        stored.text("tokenKey"),
        key_before,
        "password change rotates the key"
    );
    assert!(
        crate::auth::password::verify("alicepass456".into(), stored.text("password").into()).await
    );
    // The old token no longer authenticates.
    let (status, body) = app
        .call(
            "POST",
            "/api/collections/members/auth-refresh",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Superusers change email and password without the old one.
    let (status, body) = app
        .su(
            "PATCH",
            &uri,
            Some(json!({"email": "alice3@example.com", "verified": true})),
        )
        .await;
    assert_eq!(
        (status, body["email"].clone(), body["verified"].clone()),
        (StatusCode::OK, json!("alice3@example.com"), json!(true))
    );
    let (status, body) = app
        .su("PATCH", &uri, Some(json!({"password": "newpass123"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["data"]["passwordConfirm"]["code"],
        "validation_required"
    );
}

#[tokio::test]
async fn expand_resolves_relations_back_relations_and_rules() {
    let app = App::new().await;
    let users = app.store.schema().get(USERS_ID).cloned().expect("users");
    let posts = app
        .add_collection(public(
            CollectionType::Base,
            "posts",
            vec![text("title"), relation("author", &users.id, 1)],
        ))
        .await;
    let comments = app
        .add_collection(public(
            CollectionType::Base,
            "comments",
            vec![
                relation("post", &posts.id, 1),
                text("text"),
                relation("likers", &users.id, 5),
                relation("related", &posts.id, 3),
            ],
        ))
        .await;
    let _ = comments;
    let (_, alice) = app
        .su(
            "POST",
            "/api/collections/users/records",
            Some(
                json!({"email": "alice@example.com", "password": "alicepass123",
                        "passwordConfirm": "alicepass123", "name": "Alice"}),
            ),
        )
        .await;
    let alice_id = id_of(&alice);
    let (_, p1) = app
        .su(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "P1", "author": alice_id})),
        )
        .await;
    let (_, p2) = app
        .su(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title": "P2"})),
        )
        .await;
    let (p1, p2) = (id_of(&p1), id_of(&p2));
    for (post, text, related) in [
        (&p1, "c1", vec![&p2]),
        (&p1, "c2", vec![]),
        (&p2, "c3", vec![&p1, &p2]),
    ] {
        let (status, _) = app
            .su(
                "POST",
                "/api/collections/comments/records",
                Some(json!({"post": post, "text": text, "likers": [alice_id], "related": related})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    // Superuser: forward, multiple, nested.
    let (status, body) = app
        .su("GET", "/api/collections/comments/records?expand=post.author,likers,related&fields=text,expand.post.title,expand.post.expand.author.name,expand.likers.name,expand.related.title", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["items"],
        json!([
            {"text": "c1", "expand": {"post": {"title": "P1", "expand": {"author": {"name": "Alice"}}},
                                      "likers": [{"name": "Alice"}], "related": [{"title": "P2"}]}},
            {"text": "c2", "expand": {"post": {"title": "P1", "expand": {"author": {"name": "Alice"}}},
                                      "likers": [{"name": "Alice"}]}},
            {"text": "c3", "expand": {"post": {"title": "P2", "expand": {}},
                                      "likers": [{"name": "Alice"}],
                                      "related": [{"title": "P1"}, {"title": "P2"}]}}
        ])
    );
    // Back-relations, single and multiple relation fields.
    let (_, body) = app
        .su("GET", &format!("/api/collections/posts/records/{p1}?expand=comments_via_post,COMMENTS_via_related&fields=id,expand.comments_via_post.text,expand.COMMENTS_via_related.text"), None)
        .await;
    assert_eq!(
        body,
        json!({"id": p1, "expand": {"comments_via_post": [{"text": "c1"}, {"text": "c2"}],
                                     "COMMENTS_via_related": [{"text": "c3"}]}})
    );
    // Paths deeper than six levels are cut, not dropped.
    let (_, body) = app
        .su(
            "GET",
            "/api/collections/comments/records?perPage=1&expand=post.comments_via_post.post.comments_via_post.post.comments_via_post.post&fields=expand.post.id",
            None,
        )
        .await;
    assert_eq!(body["items"][0]["expand"]["post"]["id"], p1.as_str());
    // A valid path with nothing to show still adds `expand: {}`; an invalid one adds nothing.
    let (_, body) = app
        .su(
            "GET",
            &format!("/api/collections/posts/records/{p2}?expand=author&fields=id,expand"),
            None,
        )
        .await;
    assert_eq!(body, json!({"id": p2, "expand": {}}));
    for bad in [
        "nope",
        "title",
        "author.nope",
        "comments_via_nope",
        "nope_via_post",
    ] {
        let (status, body) = app
            .su(
                "GET",
                &format!("/api/collections/posts/records/{p2}?expand={bad}&fields=id,expand"),
                None,
            )
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"id": p2})), "{bad}");
    }
    // Guests: users' view rule hides Alice (fail-closed rule), so only the key set remains.
    let (_, body) = app
        .call("GET", &format!("/api/collections/posts/records/{p1}?expand=author,comments_via_post&fields=expand.author,expand.comments_via_post.text"), None, None)
        .await;
    assert_eq!(
        body,
        json!({"expand": {"comments_via_post": [{"text": "c1"}, {"text": "c2"}]}})
    );
    // A superusers-only target drops the path for guests.
    let mut locked = Collection::scaffold(CollectionType::Base, "locked");
    locked.id = "pbc_locked".into();
    locked.list_rule = Some(String::new());
    let locked = app.add_collection(locked).await;
    let mut refs = public(
        CollectionType::Base,
        "refs",
        vec![relation("lk", &locked.id, 1)],
    );
    refs.id = "pbc_refs".into();
    app.add_collection(refs).await;
    let (_, lk) = app
        .su("POST", "/api/collections/locked/records", Some(json!({})))
        .await;
    app.su(
        "POST",
        "/api/collections/refs/records",
        Some(json!({"lk": id_of(&lk)})),
    )
    .await;
    let (_, body) = app
        .call(
            "GET",
            "/api/collections/refs/records?expand=lk&fields=expand",
            None,
            None,
        )
        .await;
    assert_eq!(body["items"], json!([{}]));
    let (_, body) = app
        .su(
            "GET",
            "/api/collections/refs/records?expand=lk&fields=expand.lk.id",
            None,
        )
        .await;
    assert_eq!(
        body["items"],
        json!([{"expand": {"lk": {"id": id_of(&lk)}}}])
    );
}

#[tokio::test]
async fn deletes_cascade_or_refuse_on_required_references() {
    let app = App::new().await;
    let posts = app
        .add_collection(public(CollectionType::Base, "posts", vec![text("title")]))
        .await;
    let mut required = relation("post", &posts.id, 1);
    if let FieldKind::Relation(options) = &mut required.kind {
        options.required = true;
    }
    app.add_collection(public(CollectionType::Base, "pins", vec![required]))
        .await;
    let (_, post) = app
        .call(
            "POST",
            "/api/collections/posts/records",
            None,
            Some(json!({})),
        )
        .await;
    let (status, body) = app
        .call(
            "POST",
            "/api/collections/pins/records",
            None,
            Some(json!({"post": "missing00000000"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["data"],
        json!({"post": {"code": "validation_missing_rel_records",
                        "message": "Failed to find all relation records with the provided ids."}})
    );
    let (status, _) = app
        .call(
            "POST",
            "/api/collections/pins/records",
            None,
            Some(json!({"post": id_of(&post)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(
            "DELETE",
            &format!("/api/collections/posts/records/{}", id_of(&post)),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"data": {}, "status": 400, "message":
                "Failed to delete record. Make sure that the record is not part of a required relation reference."})
        )
    );
}

/// The write pipeline's system path saves as a superuser would: values validated, plain
/// passwords hashed, the token key rotated with the password (unless kept), and a deleted
/// auth record's bookkeeping rows gone with it.
#[tokio::test]
async fn the_system_path_validates_hashes_and_rotates_token_keys() {
    use super::pipeline::{self, System, SystemChange};
    use domain::collection::EXTERNAL_AUTHS_ID;

    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        SqliteStore::open(dir.path(), Default::default()).expect("store opens");
    let config = ServerConfig {
        argon2: crate::state::Argon2Params::for_bcrypt_cost(4),
        ..ServerConfig::default()
    };
    let state = AppState::new(store.clone(), config);
    let system = System::of(&state);
    let users = store.schema().get("users").cloned().expect("users");

    let bad = pipeline::system_create(
        system,
        &users,
        SystemChange::new()
            .set("email", "not an email")
            .set("password", "secret123"),
    )
    .await
    .expect_err("validated");
    assert!(matches!(bad, domain::StoreError::Validation(_)), "{bad:?}");

    let created = pipeline::system_create(
        system,
        &users,
        SystemChange::new()
            .set("email", "sys@example.com")
            .set("password", "secret123"),
    )
    .await
    .expect("created");
    assert!(created.text("password").starts_with("$argon2id$"));
    assert!(
        crate::auth::password::verify("secret123".into(), created.text("password").into()).await
    );
    assert_eq!(created.text("tokenKey").len(), 50, "generated");

    let kept = pipeline::system_update(
        system,
        &users,
        created.id(),
        SystemChange::new()
            .set("password", "another123")
            .keep_token_key()
            .keep_autodates(),
    )
    .await
    .expect("rehashed");
    assert_eq!(kept.text("tokenKey"), created.text("tokenKey"));
    assert_eq!(kept.text("updated"), created.text("updated"));
    let rotated = pipeline::system_update(
        system,
        &users,
        created.id(),
        SystemChange::new().set("password", "third1234"),
    )
    .await
    .expect("updated");
    assert_ne!(rotated.text("tokenKey"), created.text("tokenKey"));

    crate::auth::bookkeeping::insert(
        &state,
        EXTERNAL_AUTHS_ID,
        None,
        vec![
            ("collectionRef", json!(users.id)),
            ("recordRef", json!(created.id())),
            ("provider", json!("gitlab")),
            ("providerId", json!("42")),
        ],
    )
    .await
    .expect("link");
    pipeline::system_delete(system, &users, created.id())
        .await
        .expect("deleted");
    let links = crate::auth::bookkeeping::find(
        &state,
        EXTERNAL_AUTHS_ID,
        &[("recordRef", created.id())],
        10,
    )
    .await
    .expect("reads");
    assert!(links.is_empty(), "{links:?}");
}
