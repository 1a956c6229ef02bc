//! `POST /api/batch` end to end, sent the way the JS SDK sends it (multipart with one
//! `@jsonPayload` part): off by default, all-or-nothing, nested errors.

use serde_json::json;

use crate::files::send_multipart;
use crate::support::TestApp;

#[tokio::test]
async fn sdk_style_batches_commit_together_or_not_at_all() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let payload = json!({"requests": [
        {"method": "POST", "url": "/api/collections/notes/records", "headers": {}, "body": {"title": "a"}},
        {"method": "POST", "url": "/api/collections/notes/records", "headers": {}, "body": {"title": "b"}}
    ]})
    .to_string();
    let send = |payload: String| {
        let app = &app;
        async move {
            send_multipart(
                app,
                reqwest::Method::POST,
                "/api/batch",
                None,
                &[("@jsonPayload", &payload)],
                &[],
            )
            .await
        }
    };
    let (status, body) = send(payload.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["message"], "Batch requests are not allowed.");

    let (status, _) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "notes", "type": "base", "listRule": "", "createRule": "",
                   "fields": [{"name": "title", "type": "text", "required": true}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .patch_json(
            "/api/settings",
            Some(&token),
            json!({"batch": {"enabled": true}}),
        )
        .await;
    assert_eq!(status, 200);

    let (status, body) = send(payload).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["status"], 200);
    assert_eq!(body[1]["body"]["title"], "b");

    let failing = json!({"requests": [
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "c"}},
        {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": ""}}
    ]})
    .to_string();
    let (status, body) = send(failing).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Batch transaction failed.");
    assert_eq!(
        body["data"]["requests"]["1"]["response"]["data"]["title"]["code"],
        "validation_required"
    );
    let (_, list) = app.get("/api/collections/notes/records", None).await;
    assert_eq!(
        list["totalItems"], 2,
        "the failed batch left nothing behind"
    );
}
