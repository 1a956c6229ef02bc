//! The collections API end to end over a real SQLite store in a temporary directory, driven
//! in-process with `oneshot`. Expected bodies are the ones PocketBase 0.40.6 answered.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use domain::collection::USERS_ID;
use domain::{Record, RecordData, Store, WriteOp};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::state::{AppState, ServerConfig, SharedState};

struct App {
    state: SharedState,
    superuser: String,
    user: String,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_sqlite::SqliteStore::open(dir.path(), Default::default()).expect("opens");
    let store: Arc<dyn Store> = store;
    let state = AppState::new(
        store.clone(),
        ServerConfig {
            bcrypt_cost: 4,
            ..ServerConfig::default()
        },
    );
    let admin = crate::superusers::create(store.as_ref(), "admin@example.com", "Passw0rd!123", 4)
        .await
        .expect("superuser");
    let schema = store.schema();
    let superusers = schema.get("_superusers").expect("superusers").clone();
    let superuser = crate::auth::token::auth_token(&superusers, &admin).expect("token");

    let users = schema.get_by_id(USERS_ID).expect("users").clone();
    let mut data = RecordData::new();
    for field in &users.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    data.insert("id".into(), json!("useruseruser001"));
    data.insert("email".into(), json!("alice@example.com"));
    data.insert("tokenKey".into(), json!(domain::ids::random_alnum(50)));
    data.insert(
        "password".into(),
        json!("$2a$04$invalidhashbutstoredanyway"),
    );
    let written = store
        .write(vec![WriteOp::Create {
            collection: users.clone(),
            data,
            guard: None,
        }])
        .await
        .expect("user");
    let record: Record = written[0].record().clone();
    let user = crate::auth::token::auth_token(&users, &record).expect("token");
    App {
        state,
        superuser,
        user,
        _dir: dir,
    }
}

impl App {
    async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, token);
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = crate::router(self.state.clone())
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("json body")
        };
        (status, value)
    }

    async fn su(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let token = self.superuser.clone();
        self.call(Some(&token), method, uri, body).await
    }
}

fn error(status: u16, message: &str, data: Value) -> Value {
    json!({"data": data, "message": message, "status": status})
}

#[tokio::test]
async fn only_superusers_may_use_the_collections_api() {
    let app = app().await;
    let user = app.user.clone();
    for (method, uri) in [
        ("GET", "/api/collections"),
        ("GET", "/api/collections/users"),
        ("POST", "/api/collections"),
        ("PATCH", "/api/collections/users"),
        ("DELETE", "/api/collections/nope"),
        ("DELETE", "/api/collections/users/truncate"),
        ("PUT", "/api/collections/import"),
        ("GET", "/api/collections/meta/scaffolds"),
        ("POST", "/api/collections/meta/dry-run-view"),
        ("GET", "/api/collections/meta/oauth2-providers"),
    ] {
        let (status, body) = app.call(None, method, uri, None).await;
        assert_eq!(status, 401, "{method} {uri}");
        assert_eq!(
            body,
            error(
                401,
                "The request requires valid record authorization token.",
                json!({})
            )
        );
        let (status, body) = app.call(Some(&user), method, uri, None).await;
        assert_eq!(status, 403, "{method} {uri}");
        assert_eq!(
            body,
            error(
                403,
                "The authorized record is not allowed to perform this action.",
                json!({})
            )
        );
    }
}

#[tokio::test]
async fn create_view_list_and_find_case_insensitively() {
    let app = app().await;
    let (status, posts) = app
        .su("POST", "/api/collections", Some(json!({"name": "posts"})))
        .await;
    assert_eq!(status, 200, "{posts}");
    assert_eq!(posts["id"], "pbc_1125843985");
    assert_eq!(posts["type"], "base");
    assert_eq!(posts["system"], false);
    assert_eq!(posts["listRule"], Value::Null);
    assert_eq!(posts["indexes"], json!([]));
    assert_eq!(posts["fields"][0]["id"], "text3208210256");
    assert_eq!(posts["fields"][0]["primaryKey"], true);
    assert_eq!(posts["created"], posts["updated"]);
    assert!(posts.get("viewQuery").is_none());

    let (status, found) = app.su("GET", "/api/collections/POSTS", None).await;
    assert_eq!(status, 200);
    assert_eq!(found["id"], posts["id"]);

    let (status, list) = app
        .su("GET", "/api/collections?sort=-name&perPage=2", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["page"], 1);
    assert_eq!(list["perPage"], 2);
    assert_eq!(list["totalItems"], 7);
    assert_eq!(list["totalPages"], 4);
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["users", "posts"]);

    let (_, filtered) = app
        .su(
            "GET",
            "/api/collections?filter=type%3D'auth'&skipTotal=1",
            None,
        )
        .await;
    assert_eq!(filtered["totalItems"], -1);
    assert_eq!(filtered["items"].as_array().map(Vec::len), Some(2));
    let (status, body) = app.su("GET", "/api/collections?sort=nosuch", None).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        error(
            400,
            "Something went wrong while processing your request.",
            json!({})
        )
    );

    let (_, picked) = app
        .su("GET", "/api/collections?fields=name&sort=name", None)
        .await;
    assert_eq!(picked["items"][0], json!({"name": "_authOrigins"}));
    assert_eq!(picked["totalItems"], 7, "the envelope keeps its keys");
    let (_, picked) = app
        .su("GET", "/api/collections/posts?fields=id,type", None)
        .await;
    assert_eq!(picked, json!({"id": "pbc_1125843985", "type": "base"}));

    let (status, body) = app.su("GET", "/api/collections/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        error(404, "The requested resource wasn't found.", json!({}))
    );
}

#[tokio::test]
async fn create_reports_validation_errors_like_pocketbase() {
    let app = app().await;
    let (status, body) = app.su("POST", "/api/collections", Some(json!({}))).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        error(
            400,
            "Failed to create collection.",
            json!({"name": {"code": "validation_required", "message": "Cannot be blank."}})
        )
    );
    let (_, body) = app
        .su("POST", "/api/collections", Some(json!({"name": "USERS"})))
        .await;
    assert_eq!(
        body["data"]["name"],
        json!({"code": "validation_collection_name_exists",
               "message": "Collection name must be unique (case insensitive)."})
    );
    let (status, body) = app
        .su("POST", "/api/collections", Some(json!({"type": 123})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Failed to load the collection type data due to invalid formatting."
    );
    let (_, body) = app
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "x4", "fields": [{"name": "a", "type": "nope"}]})),
        )
        .await;
    assert_eq!(
        body["message"],
        "Failed to load the submitted data due to invalid formatting."
    );
    let (_, body) = app
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "x4", "fields": [
                {"type": "text"},
                {"name": "r", "type": "relation", "collectionId": "nope"},
                {"name": "a", "type": "text", "min": 10, "max": 5}
            ]})),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({"fields": {
            "1": {"name": {"code": "validation_required", "message": "Cannot be blank."}},
            "2": {"collectionId": {"code": "validation_field_relation_missing_collection",
                                    "message": "The relation collection doesn't exist."}},
            "3": {"max": {"code": "validation_min_greater_equal_than_required",
                          "message": "Must be no less than 10.", "params": {"threshold": 10}}}
        }})
    );
}

#[tokio::test]
async fn auth_collections_get_their_system_parts_and_hide_secrets() {
    let app = app().await;
    let (status, members) = app
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "members", "type": "auth"})),
        )
        .await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["id"], "pbc_2620428958");
    let names: Vec<&str> = members["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "password",
            "tokenKey",
            "email",
            "emailVisibility",
            "verified"
        ]
    );
    assert_eq!(
        members["indexes"],
        json!([
            "CREATE UNIQUE INDEX `idx_tokenKey_pbc_2620428958` ON `members` (`tokenKey`)",
            "CREATE UNIQUE INDEX `idx_email_pbc_2620428958` ON `members` (`email`) WHERE `email` != ''"
        ])
    );
    assert_eq!(members["authToken"], json!({"duration": 432000}));
    assert_eq!(
        members["passwordAuth"],
        json!({"enabled": true, "identityFields": ["email"]})
    );
    assert_eq!(members["oauth2"]["mappedFields"]["name"], "");

    let (status, patched) = app
        .su(
            "PATCH",
            "/api/collections/members",
            Some(json!({"otp": {"enabled": true, "length": 6}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["otp"]["enabled"], true);
    assert_eq!(patched["otp"]["length"], 6);
    assert_eq!(patched["otp"]["duration"], 180);

    let (status, body) = app
        .su(
            "PATCH",
            "/api/collections/members",
            Some(json!({"authToken": {"duration": 5, "secret": "short"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        error(
            400,
            "Failed to update collection.",
            json!({"authToken": {
                "duration": {"code": "validation_min_greater_equal_than_required",
                             "message": "Must be no less than 10.", "params": {"threshold": 10}},
                "secret": {"code": "validation_length_out_of_range",
                           "message": "The length must be between 30 and 255.",
                           "params": {"max": 255, "min": 30}}
            }})
        )
    );
}

#[tokio::test]
async fn update_merges_and_guards_what_cannot_change() {
    let app = app().await;
    app.su(
        "POST",
        "/api/collections",
        Some(
            json!({"name": "p1", "fields": [{"name": "title", "type": "text"}],
                    "indexes": ["CREATE INDEX idx_title ON p1 (title)"]}),
        ),
    )
    .await;
    let (status, renamed) = app
        .su(
            "PATCH",
            "/api/collections/p1",
            Some(json!({"name": "p2", "listRule": ""})),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "p2");
    assert_eq!(renamed["listRule"], "");
    assert_eq!(
        renamed["fields"].as_array().map(Vec::len),
        Some(2),
        "fields untouched"
    );
    let index = renamed["indexes"][0].as_str().unwrap_or("");
    assert!(index.contains("p2") && !index.contains("p1"), "{index}");

    let (_, body) = app
        .su(
            "PATCH",
            "/api/collections/p2",
            Some(json!({"type": "auth"})),
        )
        .await;
    assert_eq!(
        body["data"]["type"],
        json!({"code": "validation_collection_type_change", "message": "Collection type cannot be changed."})
    );
    let (_, body) = app
        .su(
            "PATCH",
            "/api/collections/p2",
            Some(json!({"fields": [{"id": "text724990059", "name": "title", "type": "number"}]})),
        )
        .await;
    assert_eq!(
        body["data"]["fields"]["1"],
        json!({"code": "validation_field_type_change", "message": "Field type cannot be changed."})
    );
    let (status, _) = app
        .su("PATCH", "/api/collections/p2", Some(json!({"id": "other"})))
        .await;
    // PocketBase 0.40.6 answers 404 for an id no collection has.
    assert_eq!(status, 404);

    let (_, body) = app
        .su(
            "PATCH",
            "/api/collections/_superusers",
            Some(json!({"name": "admins", "listRule": ""})),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({
            "listRule": {"code": "validation_collection_system_rule_change",
                         "message": "System collection API rule cannot be changed."},
            "name": {"code": "validation_collection_system_name_change",
                     "message": "System collection name cannot be changed."}
        })
    );
    let (_, body) = app
        .su(
            "PATCH",
            "/api/collections/users",
            Some(json!({"fields": [
                {"id": "email3885137012", "name": "mail", "type": "email"}
            ]})),
        )
        .await;
    assert_eq!(
        body["data"]["fields"],
        json!({"code": "validation_system_field_change",
               "message": "System fields cannot be deleted or renamed."})
    );
    let (_, body) = app
        .su(
            "PATCH",
            "/api/collections/p2",
            Some(json!({"indexes": ["garbage"]})),
        )
        .await;
    assert_eq!(
        body["data"]["indexes"]["0"],
        json!({"code": "validation_invalid_index_expression", "message": "Invalid CREATE INDEX expression."})
    );
}

#[tokio::test]
async fn delete_and_truncate_refuse_what_pocketbase_refuses() {
    let app = app().await;
    let (_, posts) = app
        .su("POST", "/api/collections", Some(json!({"name": "posts"})))
        .await;
    for name in ["comments", "c2"] {
        let (status, body) = app
            .su(
                "POST",
                "/api/collections",
                Some(json!({"name": name, "fields": [
                    {"name": "post", "type": "relation", "collectionId": posts["id"], "maxSelect": 1}
                ]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app.su("DELETE", "/api/collections/posts", None).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        error(
            400,
            "Failed to delete collection probably due to existing reference in comments, c2.",
            json!({})
        )
    );
    let (status, body) = app.su("DELETE", "/api/collections/_superusers", None).await;
    assert_eq!(
        (status.as_u16(), body),
        (400, error(400, "Failed to delete collection.", json!({})))
    );
    let (status, body) = app
        .su("DELETE", "/api/collections/_superusers/truncate", None)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Failed to truncate collection (most likely due to required cascade delete record references)."
    );

    let (status, body) = app.su("DELETE", "/api/collections/c2", None).await;
    assert_eq!((status.as_u16(), body), (204, Value::Null));
    let (status, _) = app.su("DELETE", "/api/collections/c2", None).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .su("DELETE", "/api/collections/comments/truncate", None)
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn views_are_inferred_validated_and_dry_run() {
    let app = app().await;
    let (_, body) = app
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "v1", "type": "view", "createRule": ""})),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({
            "createRule": {"code": "validation_nil", "message": "Must be blank."},
            "fields": {"code": "validation_required", "message": "Cannot be blank."},
            "viewQuery": {"code": "validation_required", "message": "Cannot be blank."}
        })
    );
    let (status, view) = app
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "v1", "type": "view", "listRule": "",
                        "viewQuery": "select id, email from users",
                        "fields": [{"name": "ignored", "type": "bool"}]})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["viewQuery"], "select id, email from users");
    assert_eq!(view["fields"][0]["name"], "id");
    assert_eq!(view["fields"].as_array().map(Vec::len), Some(2));
    let (status, body) = app.su("DELETE", "/api/collections/v1/truncate", None).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "View collections cannot be truncated since they don't store their own records."
    );

    let (status, body) = app
        .su(
            "POST",
            "/api/collections/meta/dry-run-view",
            Some(json!({"query": "select id from users"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fields"][0]["name"], "id");
    assert_eq!(body["sample"], json!([{"id": "useruseruser001"}]));
    // The preview holds the query's first rows, read as its fields (a trailing comment does
    // not swallow the wrapping parenthesis).
    let (status, body) = app
        .su(
            "POST",
            "/api/collections/meta/dry-run-view",
            Some(json!({"query": "select id, n from (select 'a1' as id, 2 as n union all select 'b2', 3.5) -- two rows"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["sample"],
        json!([{"id": "a1", "n": 2}, {"id": "b2", "n": 3.5}])
    );
    let (_, body) = app
        .su(
            "POST",
            "/api/collections/meta/dry-run-view",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        body,
        error(
            400,
            "An error occurred while validating the submitted data.",
            json!({"query": {"code": "validation_required", "message": "Cannot be blank."}})
        )
    );
    let (status, body) = app
        .su(
            "POST",
            "/api/collections/meta/dry-run-view",
            Some(json!({"query": "select nope"})),
        )
        .await;
    assert_eq!(status, 400);
    let message = body["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("Invalid view query. Raw error: \n"),
        "{message}"
    );
}

#[tokio::test]
async fn import_scaffolds_and_providers() {
    let app = app().await;
    let (status, body) = app
        .su("PUT", "/api/collections/import", Some(json!({})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        error(
            400,
            "An error occurred while validating the submitted data.",
            json!({"collections": {"code": "validation_required", "message": "Cannot be blank."}})
        )
    );
    let (status, body) = app
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [
                {"id": "aaa000000000001", "name": "impa",
                 "fields": [{"name": "b", "type": "relation", "collectionId": "bbb000000000001"}]},
                {"id": "bbb000000000001", "name": "impb"}
            ]})),
        )
        .await;
    assert_eq!((status.as_u16(), body), (204, Value::Null));
    let (status, _) = app.su("GET", "/api/collections/impa", None).await;
    assert_eq!(status, 200);

    let (status, body) = app
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [{"name": "bad name"}]})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Failed to import collections.");
    assert_eq!(
        body["data"]["collections"]["code"],
        "validation_collections_import_failure"
    );
    let message = body["data"]["collections"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(
        message.starts_with("Data validations failed for collection \"bad name\" (pbc_")
            && message.contains("\"name\": \"must be in a valid format\""),
        "{message}"
    );

    let (status, scaffolds) = app.su("GET", "/api/collections/meta/scaffolds", None).await;
    assert_eq!(status, 200);
    assert_eq!(scaffolds["base"]["fields"][0]["id"], "text3208210256");
    assert_eq!(scaffolds["view"]["viewQuery"], "");
    assert_eq!(scaffolds["auth"]["name"], "");
    assert_eq!(scaffolds["auth"]["authToken"], json!({"duration": 432000}));

    let (status, providers) = app
        .su("GET", "/api/collections/meta/oauth2-providers", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(providers.as_array().map(Vec::len), Some(32));
}

/// A base collection `name` with one text field `a`, and two records whose `a` is `value`.
async fn with_two_equal_rows(app: &App, name: &str, value: &str) {
    let (status, body) = app
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": name, "fields": [{"name": "a", "type": "text"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        let (status, body) = app
            .su(
                "POST",
                &format!("/api/collections/{name}/records"),
                Some(json!({"a": value})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn a_unique_index_over_duplicates_is_a_field_error_not_a_500() {
    let app = app().await;
    with_two_equal_rows(&app, "dups", "x").await;
    let (status, body) = app
        .su(
            "PATCH",
            "/api/collections/dups",
            Some(json!({"indexes": ["CREATE UNIQUE INDEX idx_dups_a ON dups (a)"]})),
        )
        .await;
    // PocketBase 0.40.6: 400, "Failed to update collection.", the index's position keyed.
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Failed to update collection.");
    let entry = &body["data"]["indexes"]["0"];
    assert_eq!(
        entry["code"], "validation_invalid_index_expression",
        "{body}"
    );
    let message = entry["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("Failed to create index idx_dups_a - ") && message.contains("UNIQUE"),
        "{message}"
    );
    let (_, stored) = app.su("GET", "/api/collections/dups", None).await;
    assert_eq!(stored["indexes"], json!([]));
}

/// Store refusals of an index are worded as PocketBase's SQLite driver words them.
#[tokio::test]
async fn index_store_failures_use_the_driver_wording() {
    let app = app().await;
    let fields = json!([{"name": "a", "type": "text"}]);
    with_two_equal_rows(&app, "dupdata", "same").await;
    let (status, body) = app
        .su(
            "PATCH",
            "/api/collections/dupdata",
            Some(json!({"indexes": ["CREATE UNIQUE INDEX idx_dd ON dupdata (a)"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["indexes"]["0"]["message"],
        "Failed to create index idx_dd - constraint failed: UNIQUE constraint failed: dupdata.a (2067)."
    );
    // An index named like an existing table.
    let (status, body) = app
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "clash", "fields": fields,
                "indexes": ["CREATE INDEX dupdata ON clash (a)"]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["indexes"]["0"]["message"],
        "Failed to create index dupdata - SQL logic error: there is already a table named dupdata (1)."
    );
}

/// A PATCH body naming another id: unknown → 404; another collection's → `id` mismatch.
#[tokio::test]
async fn update_with_another_id() {
    let app = app().await;
    let (status, body) = app
        .su("POST", "/api/collections", Some(json!({"name": "ids"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .su(
            "PATCH",
            "/api/collections/ids",
            Some(json!({"id": "nosuchid"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "The requested resource wasn't found.");
    let (status, body) = app
        .su(
            "PATCH",
            "/api/collections/ids",
            Some(json!({"id": USERS_ID})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"],
        json!({"id": {"code": "validation_values_mismatch", "message": "Values don't match."}})
    );
}

/// An import with an index problem answers it alone, at the top level, before the other
/// items' problems; rule errors inside an import failure lose their closing period.
#[tokio::test]
async fn import_reports_index_problems_first() {
    let app = app().await;
    let (status, body) = app
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [
                {"name": "imp1", "fields": [{"name": "", "type": "text"}]},
                {"name": "imp2", "indexes": ["CREATE INDEX oops"]},
            ]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body,
        json!({"status": 400, "message": "Failed to import collections.", "data": {"indexes": {"0": {
            "code": "validation_invalid_index_expression",
            "message": "Invalid CREATE INDEX expression."}}}})
    );
    let (status, body) = app
        .su(
            "PUT",
            "/api/collections/import",
            Some(json!({"collections": [{"name": "imp3", "listRule": "nosuch = 1"}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["data"]["collections"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(
        message.ends_with("unknown field \\\"nosuch\\\"\"\n}."),
        "{message}"
    );
}

/// OAuth2 mappings to fields the collection lacks are dropped.
#[tokio::test]
async fn oauth2_mappings_to_missing_fields_are_dropped() {
    let app = app().await;
    let (status, body) = app
        .su(
            "POST",
            "/api/collections",
            Some(json!({"name": "mapped", "type": "auth",
                "fields": [{"name": "nick", "type": "text"}],
                "oauth2": {"mappedFields": {"name": "nick", "avatarURL": "nosuch"}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["oauth2"]["mappedFields"],
        json!({"id": "", "name": "nick", "username": "", "avatarURL": ""})
    );
}
