use serde_json::json;

use crate::support::{TestApp, assert_error};

#[tokio::test]
async fn health_answers_with_code_not_status() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"message": "API is healthy.", "code": 200, "data": {}})
    );
    let response = app
        .client
        .head(app.url("/api/health"))
        .send()
        .await
        .expect("head");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn default_headers_and_cors() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/health"))
        .header("Origin", "https://app.example")
        .send()
        .await
        .expect("get");
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
    assert_eq!(headers["x-xss-protection"], "1; mode=block");
    assert_eq!(headers["cross-origin-opener-policy"], "same-origin");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );

    let preflight = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            app.url("/api/collections/users/records"),
        )
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "PATCH")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("options");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii");
    assert!(allowed.contains("authorization"), "{allowed}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_404s_in_error_shape() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/nope", None).await;
    assert_error(status, &body, 404, "File not found.");
    let (status, body) = app.post_json("/api/nope", None, json!({})).await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    let (status, body) = app.delete("/api/health", None).await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    // A GET to a POST-only route falls through to the files, like an unknown path.
    let (status, body) = app
        .get("/api/collections/users/auth-with-password", None)
        .await;
    assert_error(status, &body, 404, "File not found.");
}

#[tokio::test]
async fn malformed_bodies_are_clear_400s() {
    let app = TestApp::spawn().await;
    let path = "/api/collections/_superusers/auth-with-password";
    for body in ["{bad", "[1,2]", "\"text\""] {
        let response = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        let status = response.status().as_u16();
        let value: serde_json::Value = response.json().await.expect("json");
        assert_error(
            status,
            &value,
            400,
            "An error occurred while loading the submitted data.",
        );
    }
    let response = app
        .client
        .post(app.url(path))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    let value: serde_json::Value = response.json().await.expect("json");
    assert_error(status, &value, 400, "Unsupported Content-Type.");
}

#[tokio::test]
async fn oversized_bodies_are_rejected_without_a_500() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let big = "x".repeat(33 << 20);
    let response = app
        .client
        .post(app.url("/api/collections/users/records"))
        .header("Authorization", &token)
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{big}\"}}"))
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    assert!(status == 413 || status == 400, "got {status}");
}

/// `fields` picks from the settings as from any JSON answer of PocketBase's: on a read and on
/// an update's answer (observed on 0.40.6).
#[tokio::test]
async fn settings_answers_keep_only_the_fields_asked_for() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, body) = app
        .get(
            "/api/settings?fields=meta.appName,batch.enabled",
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let app_name = body["meta"]["appName"].clone();
    assert!(app_name.is_string(), "{body}");
    assert_eq!(
        body,
        json!({"meta": {"appName": app_name}, "batch": {"enabled": false}})
    );
    let (status, body) = app
        .patch_json(
            "/api/settings?fields=meta.appName",
            Some(&admin),
            json!({"meta": {"appName": "Picked"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"meta": {"appName": "Picked"}}));
    let (status, body) = app.get("/api/settings", Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["appName"], "Picked");
    assert!(body["logs"].is_object(), "without `fields`, everything");
}

/// A path parameter that is not UTF-8 names nothing, as in PocketBase: the answers of an
/// unknown name in the JSON error shape, auth checked first, never axum's plain-text 400.
#[tokio::test]
async fn path_parameters_that_are_not_utf8_name_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (status, body) = app.get("/api/collections/users/records/%FF", None).await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    let (status, body) = app.get("/api/collections/%FF/records", None).await;
    assert_error(status, &body, 404, "Missing collection context.");
    let (status, body) = app.get("/api/collections/%FF", None).await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, body) = app.get("/api/collections/%FF", Some(&admin)).await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    let (status, body) = app.get("/api/files/users/%FF/x.png", None).await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    // Valid escapes are decoded as ever.
    let (status, body) = app
        .get("/api/collections/us%65rs/records", Some(&admin))
        .await;
    assert_eq!(status, 200, "{body}");
}
