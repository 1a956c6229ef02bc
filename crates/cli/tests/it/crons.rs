//! The crons API on the real binary: `serve` registers PocketBase's system jobs that Plinth
//! has, lists them in PocketBase's order, and runs one on request.

use std::time::Duration;

use serde_json::json;

use crate::support::{TestApp, assert_error};

#[tokio::test]
async fn serve_lists_the_system_jobs_and_runs_one_on_request() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, body) = app.get("/api/crons", None).await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, body) = app.get("/api/crons", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            {"id": "__pbDBOptimize__", "expression": "0 0 * * *"},
            {"id": "__pbMFACleanup__", "expression": "0 * * * *"},
            {"id": "__pbOTPCleanup__", "expression": "0 * * * *"},
            {"id": "__pbLogsCleanup__", "expression": "0 */6 * * *"},
            {"id": "__plinthFilesCleanup__", "expression": "30 */6 * * *"},
        ])
    );

    // An OTP row of a collection that no longer exists is expired whatever its age, so the
    // cleanup job removes it at once.
    let (status, row) = app
        .post_json(
            "/api/collections/_otps/records",
            Some(&token),
            json!({"collectionRef": "gone_collection", "recordRef": "r1", "password": "123456789"}),
        )
        .await;
    assert_eq!(status, 200, "{row}");
    let id = row["id"].as_str().expect("id").to_owned();
    let path = format!("/api/collections/_otps/records/{id}");
    assert_eq!(app.get(&path, Some(&token)).await.0, 200);

    let (status, body) = app
        .send(
            reqwest::Method::POST,
            "/api/crons/__pbOTPCleanup__",
            Some(&token),
            None,
        )
        .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let mut gone = false;
    for _ in 0..100 {
        if app.get(&path, Some(&token)).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the OTP cleanup job removed the orphaned row");

    let (status, body) = app
        .send(
            reqwest::Method::POST,
            "/api/crons/__pbDBOptimize__",
            Some(&token),
            None,
        )
        .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (status, body) = app
        .send(
            reqwest::Method::POST,
            "/api/crons/__pbNoSuchJob__",
            Some(&token),
            None,
        )
        .await;
    assert_error(status, &body, 404, "Missing or invalid cron job.");
}
