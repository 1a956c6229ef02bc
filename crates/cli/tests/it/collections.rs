use serde_json::json;

use crate::support::{TestApp, assert_error};

/// PocketBase's first migration creates the system collections a few milliseconds apart, so
/// sorting by `created` lists them in creation order, `users` newest (observed on 0.40.6);
/// created in the same millisecond they would tie and come back in storage order whatever the
/// direction.
#[tokio::test]
async fn system_collections_sort_by_creation_as_in_pocketbase() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (status, newest) = app
        .get("/api/collections?sort=-created&fields=name", Some(&token))
        .await;
    assert_eq!(status, 200, "{newest}");
    assert_eq!(
        names(&newest),
        [
            "users",
            "_superusers",
            "_authOrigins",
            "_externalAuths",
            "_otps",
            "_mfas"
        ]
    );
    let (_, oldest) = app
        .get("/api/collections?sort=created&fields=name", Some(&token))
        .await;
    let mut reversed = names(&oldest);
    reversed.reverse();
    assert_eq!(reversed, names(&newest));
}

#[tokio::test]
async fn a_new_database_has_pocketbase_system_collections() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, users) = app.get("/api/collections/users", Some(&token)).await;
    assert_eq!(status, 200, "{users}");
    assert_eq!(users["id"], "_pb_users_auth_");
    assert_eq!(users["type"], "auth");
    assert_eq!(users["listRule"], "id = @request.auth.id");
    assert_eq!(users["createRule"], "");
    let names: Vec<&str> = users["fields"]
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
            "verified",
            "name",
            "avatar",
            "created",
            "updated"
        ]
    );
    assert!(
        users["authToken"].get("secret").is_none(),
        "secrets are never shown"
    );
    let (status, supers) = app.get("/api/collections/_superusers", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(supers["id"], "pbc_3142635823");
    assert_eq!(supers["system"], true);
    assert_eq!(supers["listRule"], serde_json::Value::Null);
}

#[tokio::test]
async fn collections_require_a_superuser() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/collections", None).await;
    assert!(status == 401 || status == 403, "{status} {body}");
    assert_eq!(body["status"], status);
}

#[tokio::test]
async fn schema_edits_migrate_without_losing_data() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, created) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "notes", "type": "base", "listRule": "", "viewRule": "",
                   "fields": [{"name": "text", "type": "text"}, {"name": "n", "type": "number"}]}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created["id"], "pbc_3395098727",
        "id is pbc_ + CRC32(type+name)"
    );
    let (status, record) = app
        .post_json(
            "/api/collections/notes/records",
            Some(&token),
            json!({"text": "keep me", "n": 3}),
        )
        .await;
    assert_eq!(status, 200, "{record}");

    // Rename a field and the collection, add a field, drop one.
    let mut fields = created["fields"].as_array().expect("fields").clone();
    fields.retain(|f| f["name"] != "n");
    for field in &mut fields {
        if field["name"] == "text" {
            field["name"] = json!("body");
        }
    }
    fields.push(json!({"name": "flag", "type": "bool"}));
    let (status, updated) = app
        .patch_json(
            "/api/collections/notes",
            Some(&token),
            json!({"name": "memos", "fields": fields}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "memos");
    let id = record["id"].as_str().expect("id");
    let (status, moved) = app
        .get(&format!("/api/collections/memos/records/{id}"), None)
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["body"], "keep me");
    assert_eq!(moved["flag"], false);
    assert!(moved.get("n").is_none() && moved.get("text").is_none());

    let (status, body) = app
        .delete("/api/collections/memos/truncate", Some(&token))
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, list) = app.get("/api/collections/memos/records", None).await;
    assert_eq!(list["totalItems"], 0);
    let (status, _) = app.delete("/api/collections/memos", Some(&token)).await;
    assert_eq!(status, 204);
    let (status, body) = app.get("/api/collections/memos", Some(&token)).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn invalid_definitions_are_validation_errors() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "users", "type": "base"}),
        )
        .await;
    let data = assert_error(status, &body, 400, "Failed to create collection.");
    assert_eq!(data["name"]["code"], "validation_collection_name_exists");
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "bad name!", "type": "base", "fields": [{"name": "x", "type": "text"}]}),
        )
        .await;
    let data = assert_error(status, &body, 400, "Failed to create collection.");
    assert_eq!(data["name"]["code"], "validation_match_invalid");
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "ok", "type": "base", "fields": [{"name": "x", "type": "nope"}]}),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "Failed to load the submitted data due to invalid formatting.",
    );
    let (status, body) = app
        .delete("/api/collections/_superusers", Some(&token))
        .await;
    assert_error(status, &body, 400, "Failed to delete collection.");
}

#[tokio::test]
async fn view_collections_infer_fields_and_are_read_only() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, view) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "user_stats", "type": "view", "listRule": "", "viewRule": "",
                   "viewQuery": "SELECT users.id, users.name, COUNT(*) AS total FROM users GROUP BY users.id"}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let fields = view["fields"].as_array().expect("fields");
    let total = fields
        .iter()
        .find(|f| f["name"] == "total")
        .expect("total field");
    assert_eq!(total["type"], "number");
    let (status, body) = app
        .post_json(
            "/api/collections/user_stats/records",
            Some(&token),
            json!({}),
        )
        .await;
    assert_error(status, &body, 400, "Unsupported collection type.");
    let (status, list) = app.get("/api/collections/user_stats/records", None).await;
    assert_eq!(status, 200, "{list}");
}

#[tokio::test]
async fn scaffolds_and_import() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, scaffolds) = app
        .get("/api/collections/meta/scaffolds", Some(&token))
        .await;
    assert_eq!(status, 200, "{scaffolds}");
    assert_eq!(scaffolds["base"]["type"], "base");
    assert_eq!(scaffolds["auth"]["type"], "auth");
    assert_eq!(scaffolds["view"]["type"], "view");
    let response = app
        .client
        .put(app.url("/api/collections/import"))
        .header("Authorization", &token)
        .json(&json!({"collections": [
            {"name": "imported", "type": "base", "fields": [{"name": "title", "type": "text"}]}
        ], "deleteMissing": false}))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 204);
    let (status, _) = app.get("/api/collections/imported", Some(&token)).await;
    assert_eq!(status, 200);
}
