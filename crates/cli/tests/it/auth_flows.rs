use serde_json::{Value, json};

use crate::auth::jwt_payload;
use crate::smtp_sink::SmtpSink;
use crate::support::{TestApp, assert_error};

const USERS: &str = "/api/collections/users";

/// A server whose SMTP settings point at a fresh sink, with rate limits off so the flows can
/// sign in as often as they need. Returns the superuser token too.
async fn app_with_mail() -> (TestApp, SmtpSink, String) {
    let app = TestApp::spawn().await;
    let sink = SmtpSink::start();
    let admin = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({
                "smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port},
                "meta": {"appName": "FlowTest", "appURL": "https://app.test",
                          "senderName": "Flow Bot", "senderAddress": "bot@app.test"},
                "rateLimits": {"enabled": false},
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (app, sink, admin)
}

async fn create_user(app: &TestApp, email: &str, password: &str) -> Value {
    let (status, body) = app
        .post_json(
            &format!("{USERS}/records"),
            None,
            json!({"email": email, "password": password, "passwordConfirm": password}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    app.post_json(
        &format!("{USERS}/auth-with-password"),
        None,
        json!({"identity": email, "password": password}),
    )
    .await
}

#[tokio::test]
async fn verification_round_trip_over_real_smtp() {
    let (app, sink, admin) = app_with_mail().await;
    let user = create_user(&app, "bob@example.com", "bobpass123").await;
    let (status, body) = app
        .post_json(&format!("{USERS}/request-verification"), None, json!({}))
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["email"]["code"], "validation_required");
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-verification"),
            None,
            json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(status, 204, "unknown emails answer 204 too");
    let (status, body) = app
        .post_json(
            "/api/collections/_superusers/request-verification",
            None,
            json!({"email": "admin@example.com"}),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "All superusers are verified by default.",
    );

    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-verification"),
            None,
            json!({"email": "bob@example.com"}),
        )
        .await;
    assert_eq!(status, 204);
    let mail = sink.wait_for("bob@example.com", 0).await;
    // A second request right away answers the same but sends nothing (resend guard).
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-verification"),
            None,
            json!({"email": "bob@example.com"}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(mail.from, "bot@app.test");
    assert_eq!(mail.subject(), "Verify your FlowTest email");
    assert!(
        mail.text()
            .contains("https://app.test/_/#/auth/confirm-verification/eyJ")
    );
    let token = mail.token();
    let payload = jwt_payload(&token);
    assert_eq!(payload["type"], "verification");
    assert_eq!(payload["email"], "bob@example.com");
    assert_eq!(payload["id"], user["id"]);
    assert_eq!(payload["collectionId"], "_pb_users_auth_");
    assert_eq!(sink.count_to("ghost@example.com"), 0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        sink.count_to("bob@example.com"),
        1,
        "the resend was dropped"
    );

    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-verification"),
            None,
            json!({"token": "abc"}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["token"]["code"], "validation_invalid_token_claims");
    for _ in 0..2 {
        let (status, body) = app
            .post_json(
                &format!("{USERS}/confirm-verification"),
                None,
                json!({"token": token}),
            )
            .await;
        assert_eq!(status, 204, "idempotent: {body}");
    }
    let (_, record) = app
        .get(
            &format!("{USERS}/records/{}", user["id"].as_str().expect("id")),
            Some(&admin),
        )
        .await;
    assert_eq!(record["verified"], true);
}

#[tokio::test]
async fn password_reset_rotates_the_token_key() {
    let (app, sink, _) = app_with_mail().await;
    create_user(&app, "carol@example.com", "carolpass1").await;
    let (status, session) = login(&app, "carol@example.com", "carolpass1").await;
    assert_eq!(status, 200);
    let old_token = session["token"].as_str().expect("token").to_owned();
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-password-reset"),
            None,
            json!({"email": "carol@example.com"}),
        )
        .await;
    assert_eq!(status, 204);
    let token = sink.wait_for("carol@example.com", 0).await.token();
    assert_eq!(jwt_payload(&token)["type"], "passwordReset");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-password-reset"),
            None,
            json!({"token": token, "password": "newpass123", "passwordConfirm": "other1234"}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(
        data["passwordConfirm"]["code"],
        "validation_values_mismatch"
    );
    assert!(data.get("token").is_none(), "{data}");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-password-reset"),
            None,
            json!({"token": token, "password": "newpass123", "passwordConfirm": "newpass123"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-password-reset"),
            None,
            json!({"token": token, "password": "newpass456", "passwordConfirm": "newpass456"}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(
        data["token"]["code"], "validation_invalid_token",
        "single use"
    );
    let (status, _) = login(&app, "carol@example.com", "carolpass1").await;
    assert_eq!(status, 400);
    let (status, body) = login(&app, "carol@example.com", "newpass123").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["record"]["verified"], true,
        "a reset proves the address"
    );
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-refresh"),
            Some(&old_token),
            json!({}),
        )
        .await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
}

#[tokio::test]
async fn email_change_round_trip() {
    let (app, sink, _) = app_with_mail().await;
    create_user(&app, "dan@example.com", "danpass123").await;
    create_user(&app, "taken@example.com", "takenpass1").await;
    let (_, session) = login(&app, "dan@example.com", "danpass123").await;
    let auth = session["token"].as_str().expect("token").to_owned();
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-email-change"),
            None,
            json!({"newEmail": "x@example.com"}),
        )
        .await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-email-change"),
            Some(&auth),
            json!({"newEmail": "taken@example.com"}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["newEmail"]["code"], "validation_invalid_new_email");
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-email-change"),
            Some(&auth),
            json!({"newEmail": "dan2@example.com"}),
        )
        .await;
    assert_eq!(status, 204);
    let token = sink.wait_for("dan2@example.com", 0).await.token();
    let payload = jwt_payload(&token);
    assert_eq!(payload["type"], "emailChange");
    assert_eq!(payload["email"], "dan@example.com");
    assert_eq!(payload["newEmail"], "dan2@example.com");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-email-change"),
            None,
            json!({"token": token, "password": "wrong"}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["password"]["code"], "validation_invalid_password");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-email-change"),
            None,
            json!({"token": token, "password": "danpass123"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = login(&app, "dan2@example.com", "danpass123").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["verified"], true);
    let (status, _) = login(&app, "dan@example.com", "danpass123").await;
    assert_eq!(status, 400);
    let (status, _) = app
        .post_json(&format!("{USERS}/auth-refresh"), Some(&auth), json!({}))
        .await;
    assert_eq!(status, 401, "the email change rotated the token key");
}

#[tokio::test]
async fn otp_sign_in_and_mfa() {
    let (app, sink, admin) = app_with_mail().await;
    create_user(&app, "eve@example.com", "evepass123").await;
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-otp"),
            None,
            json!({"email": "eve@example.com"}),
        )
        .await;
    assert_error(
        status,
        &body,
        403,
        "The collection is not configured to allow OTP authentication.",
    );
    let (status, body) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"otp": {"enabled": true, "length": 6, "duration": 300}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, methods) = app.get(&format!("{USERS}/auth-methods"), None).await;
    assert_eq!(status, 200);
    assert_eq!(methods["otp"], json!({"enabled": true, "duration": 300}));
    assert_eq!(methods["mfa"], json!({"enabled": false, "duration": 0}));
    assert_eq!(methods["emailPassword"], true);

    let (status, ghost) = app
        .post_json(
            &format!("{USERS}/request-otp"),
            None,
            json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ghost["otpId"].as_str().expect("otpId").len(), 15);
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-otp"),
            None,
            json!({"email": "eve@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    let otp_id = body["otpId"].as_str().expect("otpId").to_owned();
    let code = sink.wait_for("eve@example.com", 0).await.code(6);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": wrong}),
        )
        .await;
    assert_error(status, &body, 400, "Invalid or expired OTP.");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "eve@example.com");
    assert_eq!(
        body["record"]["verified"], true,
        "the code reached the address"
    );
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code}),
        )
        .await;
    assert_error(status, &body, 400, "Invalid or expired OTP.");
    // Verifying the address by OTP reset the password nobody had proved (pre-hijacking);
    // give eve a new one for the MFA part.
    let (status, _) = login(&app, "eve@example.com", "evepass123").await;
    assert_eq!(status, 400);
    let (_, users) = app
        .get(
            &format!("{USERS}/records?filter=(email='eve@example.com')"),
            Some(&admin),
        )
        .await;
    let eve_id = users["items"][0]["id"].as_str().expect("eve").to_owned();
    let (status, body) = app
        .patch_json(
            &format!("{USERS}/records/{eve_id}"),
            Some(&admin),
            json!({"password": "evepass456", "passwordConfirm": "evepass456"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"mfa": {"enabled": true, "duration": 600}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = login(&app, "eve@example.com", "evepass456").await;
    assert_eq!(status, 401, "{body}");
    let mfa_id = body["mfaId"].as_str().expect("mfaId").to_owned();
    let (status, row) = app
        .get(
            &format!("/api/collections/_mfas/records/{mfa_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["method"], "password");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-password?mfaId={mfa_id}"),
            None,
            json!({"identity": "eve@example.com", "password": "evepass456"}),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        "A different authentication method is required.",
    );
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-otp"),
            None,
            json!({"email": "eve@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    let otp_id = body["otpId"].as_str().expect("otpId").to_owned();
    let code = sink.wait_for("eve@example.com", 1).await.code(6);
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code, "mfaId": "nope"}),
        )
        .await;
    assert_error(status, &body, 400, "Invalid or expired MFA session.");
    // The failed MFA check consumed that code; ask for another.
    let (_, body) = app
        .post_json(
            &format!("{USERS}/request-otp"),
            None,
            json!({"email": "eve@example.com"}),
        )
        .await;
    let otp_id = body["otpId"].as_str().expect("otpId").to_owned();
    let code = sink.wait_for("eve@example.com", 2).await.code(6);
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code, "mfaId": mfa_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        jwt_payload(body["token"].as_str().expect("token"))["type"],
        "auth"
    );
}

#[tokio::test]
async fn impersonation_and_auth_rule() {
    let (app, _sink, admin) = app_with_mail().await;
    let user = create_user(&app, "fay@example.com", "faypass123").await;
    let id = user["id"].as_str().expect("id");
    let (status, body) = app
        .post_json(&format!("{USERS}/impersonate/{id}"), None, json!({}))
        .await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (_, session) = login(&app, "fay@example.com", "faypass123").await;
    let user_token = session["token"].as_str().expect("token");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/impersonate/{id}"),
            Some(user_token),
            json!({}),
        )
        .await;
    assert_error(
        status,
        &body,
        403,
        "The authorized record is not allowed to perform this action.",
    );
    let (status, body) = app
        .post_json(&format!("{USERS}/impersonate/zzz"), Some(&admin), json!({}))
        .await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/impersonate/{id}"),
            Some(&admin),
            json!({"duration": -1}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(
        data["duration"]["code"],
        "validation_min_greater_equal_than_required"
    );
    let (status, body) = app
        .post_json(
            &format!("{USERS}/impersonate/{id}"),
            Some(&admin),
            json!({"duration": 100}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], id);
    let token = body["token"].as_str().expect("token").to_owned();
    let payload = jwt_payload(&token);
    assert_eq!(payload["refreshable"], false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((payload["exp"].as_i64().expect("exp") - now - 100).abs() < 10);
    let (status, body) = app
        .post_json(&format!("{USERS}/auth-refresh"), Some(&token), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["token"],
        token.as_str(),
        "non-refreshable tokens come back unchanged"
    );

    let (status, _) = app
        .patch_json(USERS, Some(&admin), json!({"authRule": null}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = login(&app, "fay@example.com", "faypass123").await;
    assert_error(
        status,
        &body,
        403,
        "The request doesn't satisfy the collection requirements to authenticate.",
    );
    let (status, _) = login(&app, "fay@example.com", "wrongpass1").await;
    assert_eq!(status, 400, "wrong credentials are still a plain failure");
    // An expression is evaluated on the record signing in.
    let (status, _) = app
        .patch_json(USERS, Some(&admin), json!({"authRule": "verified = true"}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = login(&app, "fay@example.com", "faypass123").await;
    assert_error(
        status,
        &body,
        403,
        "The request doesn't satisfy the collection requirements to authenticate.",
    );
    let (status, _) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"authRule": "id = @request.auth.id && verified = false"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = login(&app, "fay@example.com", "faypass123").await;
    assert_eq!(
        status, 200,
        "an unverified record passes a rule that asks for it"
    );
    let (status, _) = app
        .patch_json(USERS, Some(&admin), json!({"authRule": ""}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = login(&app, "fay@example.com", "faypass123").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn settings_are_superuser_only_with_write_only_secrets_and_test_email() {
    let (app, sink, admin) = app_with_mail().await;
    let (status, body) = app.get("/api/settings", None).await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    create_user(&app, "gus@example.com", "guspass123").await;
    let (_, session) = login(&app, "gus@example.com", "guspass123").await;
    let (status, body) = app
        .get(
            "/api/settings",
            Some(session["token"].as_str().expect("token")),
        )
        .await;
    assert_error(
        status,
        &body,
        403,
        "The authorized record is not allowed to perform this action.",
    );
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"smtp": {"username": "mailer", "password": "s3cret!"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["smtp"]["username"], "mailer");
    assert!(body["smtp"].get("password").is_none(), "{body}");
    assert_eq!(body["meta"]["appName"], "FlowTest");
    let (_, body) = app.get("/api/settings", Some(&admin)).await;
    assert!(body["smtp"].get("password").is_none());
    assert_eq!(body["smtp"]["port"], sink.port);
    assert_eq!(body["rateLimits"]["rules"][0]["label"], "*:auth");
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"meta": {"appName": "", "appURL": "bad"}}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while saving the new settings.",
    );
    assert_eq!(data["meta"]["appName"]["code"], "validation_required");
    assert_eq!(data["meta"]["appURL"]["code"], "validation_is_url");

    let (status, body) = app
        .post_json("/api/settings/test/email", Some(&admin), json!({}))
        .await;
    let data = assert_error(status, &body, 400, "Failed to send the test email.");
    assert_eq!(data["template"]["code"], "validation_required");
    let (status, body) = app
        .post_json(
            "/api/settings/test/email",
            Some(&admin),
            json!({"email": "ops@example.com", "template": "password-reset", "collection": "users"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let mail = sink.wait_for("ops@example.com", 0).await;
    assert_eq!(mail.subject(), "Reset your FlowTest password");
    assert_eq!(
        mail.auth.as_deref(),
        Some("mailer:s3cret!"),
        "SMTP AUTH used the stored secret"
    );
    // Implicit TLS against the plain sink fails, and the superuser is told why.
    let (status, _) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"smtp": {"tls": true}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post_json(
            "/api/settings/test/email",
            Some(&admin),
            json!({"email": "ops@example.com", "template": "otp"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.starts_with("Failed to send the test email. Raw error: \n"),
        "{message}"
    );
    assert_eq!(sink.count_to("ops@example.com"), 1);
}

#[tokio::test]
async fn brute_force_reaches_429_with_default_rate_limits() {
    let app = TestApp::spawn().await;
    create_user(&app, "hal@example.com", "halpass123").await;
    let admin = app.admin_token().await;
    // Loopback is exempt by default; clients arrive through a trusted proxy header, as behind
    // a reverse proxy.
    let (status, body) = app
        .send(
            reqwest::Method::PATCH,
            "/api/settings",
            Some(&admin),
            Some(json!({"trustedProxy": {"headers": ["X-Real-IP"]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rateLimits"]["enabled"], true,
        "limits are on by default"
    );
    let attempt_as = |ip: &'static str, identity: &'static str| {
        let request = app
            .client
            .post(app.url("/api/collections/users/auth-with-password"))
            .header("X-Real-IP", ip)
            .json(&json!({"identity": identity, "password": "wrongpass1"}));
        async move {
            let response = request.send().await.expect("sent");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    let attempt = |ip: &'static str| attempt_as(ip, "hal@example.com");
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let (status, body) = attempt("203.0.113.7").await;
        if status == 429 {
            assert_error(status, &body, 429, "Too Many Requests.");
        }
        statuses.push(status);
    }
    // The default `*:auth` rule allows a burst of 10 attempts per IP.
    assert!(statuses[..10].iter().all(|s| *s == 400), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another client is not affected, and neither is loopback.
    assert_eq!(attempt_as("203.0.113.8", "ivy@example.com").await.0, 400);
    // Loopback is exempt from the IP limit (each attempt names another identity, so the
    // lockout is not what answers).
    for i in 0..12 {
        let (status, _) = login(&app, &format!("ghost{i}@example.com"), "wrongpass1").await;
        assert_eq!(status, 400, "loopback is exempt by default");
    }
    // hal's lockout is per address: the guesses from 203.0.113.7 do not lock the owner out
    // from elsewhere.
    let (status, body) = login(&app, "hal@example.com", "halpass123").await;
    assert_eq!(status, 200, "{body}");
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn forged_expired_and_misused_tokens_are_refused() {
    let (app, sink, admin) = app_with_mail().await;
    let ivy = create_user(&app, "ivy@example.com", "ivypass123").await;
    let other = create_user(&app, "jon@example.com", "jonpass123").await;
    let (_, session) = login(&app, "ivy@example.com", "ivypass123").await;
    let token = session["token"].as_str().expect("token").to_owned();
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post_json(&format!("{USERS}/auth-refresh"), Some(&token), json!({}))
                .await
                .0
        }
    };
    assert_eq!(refresh(token.clone()).await, 200);
    let parts: Vec<&str> = token.split('.').collect();
    // `alg: none` with the genuine payload.
    let none_header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(refresh(format!("{none_header}.{}.", parts[1])).await, 401);
    // The genuine signature over a payload naming another user.
    let mut payload = jwt_payload(&token);
    payload["id"] = other["id"].clone();
    let swapped = base64_url(payload.to_string().as_bytes());
    assert_eq!(
        refresh(format!("{}.{swapped}.{}", parts[0], parts[2])).await,
        401
    );
    // A users token on the superusers collection names the caller's collection.
    let (status, body) = app
        .post_json(
            "/api/collections/_superusers/auth-refresh",
            Some(&token),
            json!({}),
        )
        .await;
    assert_error(
        status,
        &body,
        403,
        "The request requires auth record from users collection.",
    );
    // A verification token is not an auth token.
    app.post_json(
        &format!("{USERS}/request-verification"),
        None,
        json!({"email": "ivy@example.com"}),
    )
    .await;
    let verification = sink.wait_for("ivy@example.com", 0).await.token();
    assert_eq!(refresh(verification).await, 401);
    // An expired impersonation token.
    let id = ivy["id"].as_str().expect("id");
    let (_, body) = app
        .post_json(
            &format!("{USERS}/impersonate/{id}"),
            Some(&admin),
            json!({"duration": 1}),
        )
        .await;
    let short = body["token"].as_str().expect("token").to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(refresh(short).await, 401);
}

#[tokio::test]
async fn login_from_a_new_location_sends_an_alert() {
    let (app, sink, admin) = app_with_mail().await;
    create_user(&app, "kim@example.com", "kimpass123").await;
    let login_as = |agent: &'static str| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(app.url(&format!("{USERS}/auth-with-password")))
                .header("User-Agent", agent)
                .json(&json!({"identity": "kim@example.com", "password": "kimpass123"}))
                .send()
                .await
                .expect("sent");
            response.status().as_u16()
        }
    };
    assert_eq!(login_as("Browser/1").await, 200);
    assert_eq!(login_as("Browser/1").await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        sink.count_to("kim@example.com"),
        0,
        "the first origin is not alerted"
    );
    assert_eq!(login_as("Phone/2").await, 200);
    let mail = sink.wait_for("kim@example.com", 0).await;
    assert_eq!(mail.subject(), "Login from a new location");
    assert!(mail.text().contains("127.0.0.1 Phone/2"), "{}", mail.text());
    assert_eq!(login_as("Browser/1").await, 200, "a remembered origin");
    let (_, origins) = app
        .get("/api/collections/_authOrigins/records", Some(&admin))
        .await;
    let fingerprints: Vec<&str> = origins["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|o| o["collectionRef"] == "_pb_users_auth_")
        .map(|o| o["fingerprint"].as_str().expect("fingerprint"))
        .collect();
    assert_eq!(fingerprints.len(), 2, "{origins}");
    assert!(
        fingerprints.iter().all(|f| f.len() == 64),
        "hashed: {origins}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.count_to("kim@example.com"), 1);
}

#[tokio::test]
async fn superuser_ips_restrict_superusers_only() {
    let (app, _sink, admin) = app_with_mail().await;
    create_user(&app, "lee@example.com", "leepass123").await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"superuserIPs": ["10.9.9.9"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/api/settings", Some(&admin)).await;
    assert_error(
        status,
        &body,
        403,
        "You are not allowed to perform this request.",
    );
    let (status, body) = app
        .post_json(
            "/api/collections/_superusers/auth-with-password",
            None,
            json!({"identity": crate::support::ADMIN_EMAIL, "password": crate::support::ADMIN_PASSWORD}),
        )
        .await;
    assert_error(
        status,
        &body,
        403,
        "You are not allowed to perform this request.",
    );
    let (status, _) = login(&app, "lee@example.com", "leepass123").await;
    assert_eq!(status, 200, "other collections are not restricted");
}

#[tokio::test]
async fn superuser_ips_take_subnets_and_refuse_what_is_not_an_address() {
    let (app, _sink, admin) = app_with_mail().await;
    // Not an address: refused with PocketBase's field errors, and not saved (saved, it would
    // have shut every superuser out).
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"superuserIPs": ["10.0.0.0/8", "bad", "1.2.3.4/33", ""]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["superuserIPs"]["1"]["code"], "validation_invlaid_ip_or_subnet",
        "{body}"
    );
    assert_eq!(
        body["data"]["superuserIPs"]["2"]["code"],
        "validation_invlaid_ip_or_subnet"
    );
    assert_eq!(
        body["data"]["superuserIPs"]["3"]["code"],
        "validation_required"
    );
    assert!(body["data"]["superuserIPs"].get("0").is_none(), "{body}");
    let (status, body) = app.get("/api/settings", Some(&admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["superuserIPs"], json!([]));

    // A subnet holding the client's address lets the superuser in; one that does not, not.
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"superuserIPs": ["10.0.0.0/8", "127.0.0.0/8"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/api/settings", Some(&admin)).await;
    assert_eq!(status, 200, "inside 127.0.0.0/8: {body}");
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"superuserIPs": ["10.0.0.0/8"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get("/api/settings", Some(&admin)).await;
    assert_error(
        status,
        &body,
        403,
        "You are not allowed to perform this request.",
    );
}

#[tokio::test]
async fn auth_responses_expand_relations() {
    let (app, _sink, admin) = app_with_mail().await;
    let (status, teams) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "teams", "type": "base", "viewRule": "",
                   "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{teams}");
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "members", "type": "auth", "createRule": "",
                   "fields": [{"name": "team", "type": "relation",
                               "collectionId": teams["id"], "maxSelect": 1}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, team) = app
        .post_json(
            "/api/collections/teams/records",
            Some(&admin),
            json!({"title": "Blue"}),
        )
        .await;
    let (status, body) = app
        .post_json(
            "/api/collections/members/records",
            None,
            json!({"email": "mia@example.com", "password": "miapass123",
                   "passwordConfirm": "miapass123", "team": team["id"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections/members/auth-with-password?expand=team&fields=record.expand,token",
            None,
            json!({"identity": "mia@example.com", "password": "miapass123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["expand"]["team"]["title"], "Blue", "{body}");
    assert!(body["token"].is_string());
    assert!(
        body["record"].get("email").is_none(),
        "fields applied after expand"
    );
    let token = body["token"].as_str().expect("token");
    let (status, body) = app
        .post_json(
            "/api/collections/members/auth-refresh?expand=team",
            Some(token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["expand"]["team"]["title"], "Blue", "{body}");
}

/// Three answers observed from PocketBase 0.40.6: JSON values of the wrong type cannot be
/// loaded into an auth form (form-encoded text is fine), a valid token of another auth
/// collection is named as such, and auth-methods lists no identity fields while password
/// sign-in is off.
#[tokio::test]
async fn auth_forms_refuse_wrong_types_and_foreign_tokens() {
    let (app, sink, admin) = app_with_mail().await;
    create_user(&app, "kim@example.com", "kimpass123").await;
    for body in [
        json!({"identity": 12, "password": "kimpass123"}),
        json!({"identity": "kim@example.com", "password": 12345678}),
        json!({"identity": "kim@example.com", "password": true}),
        json!({"identity": "kim@example.com", "password": ["kimpass123"]}),
    ] {
        let (status, answer) = app
            .post_json(&format!("{USERS}/auth-with-password"), None, body)
            .await;
        let data = assert_error(
            status,
            &answer,
            400,
            "An error occurred while loading the submitted data.",
        );
        assert_eq!(data, json!({}));
    }
    let (status, answer) = app
        .post_json(
            &format!("{USERS}/request-password-reset"),
            None,
            json!({"email": 12}),
        )
        .await;
    assert_error(
        status,
        &answer,
        400,
        "An error occurred while loading the submitted data.",
    );
    // Nulls are blanks.
    let (status, answer) = app
        .post_json(
            &format!("{USERS}/auth-with-password"),
            None,
            json!({"identity": null, "password": null}),
        )
        .await;
    let data = assert_error(
        status,
        &answer,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["identity"]["code"], "validation_required");
    // The same values as form text are plain strings: a wrong password, not a bad form.
    let (status, answer) = app
        .post_form(
            &format!("{USERS}/auth-with-password"),
            "identity=kim%40example.com&password=12345678",
        )
        .await;
    assert_error(status, &answer, 400, "Failed to authenticate.");

    // A verification token of another auth collection.
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "staff", "type": "auth", "createRule": "", "fields": []}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections/staff/records",
            None,
            json!({"email": "lee@example.com", "password": "leepass123", "passwordConfirm": "leepass123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .post_json(
            "/api/collections/staff/request-verification",
            None,
            json!({"email": "lee@example.com"}),
        )
        .await;
    assert_eq!(status, 204);
    let token = sink.wait_for("lee@example.com", 0).await.token();
    let (status, answer) = app
        .post_json(
            &format!("{USERS}/confirm-verification"),
            None,
            json!({"token": token}),
        )
        .await;
    let data = assert_error(
        status,
        &answer,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(
        data["token"]["code"],
        "validation_token_collection_mismatch"
    );
    let (status, _) = app
        .post_json(
            "/api/collections/staff/confirm-verification",
            None,
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, 204, "the token still works on its own collection");

    // Password sign-in off: no identity fields are offered.
    let (status, body) = app
        .patch_json(
            "/api/collections/staff",
            Some(&admin),
            json!({"passwordAuth": {"enabled": false, "identityFields": ["email"]}, "oauth2": {"enabled": false}, "otp": {"enabled": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, methods) = app.get("/api/collections/staff/auth-methods", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        methods["password"],
        json!({"enabled": false, "identityFields": []})
    );
    let (_, collection) = app.get("/api/collections/staff", Some(&admin)).await;
    assert_eq!(
        collection["passwordAuth"]["identityFields"],
        json!(["email"]),
        "the stored setting is kept"
    );
}

/// Enables OTP (6 digits) on `users`, optionally with MFA.
async fn enable_otp(app: &TestApp, admin: &str, mfa: bool) {
    let (status, body) = app
        .patch_json(
            USERS,
            Some(admin),
            json!({"otp": {"enabled": true, "length": 6, "duration": 300},
                   "mfa": {"enabled": mfa, "duration": 600}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Requests a code for `email` and returns `(otpId, code)` once the `index`-th mail arrives.
async fn request_code(
    app: &TestApp,
    sink: &SmtpSink,
    email: &str,
    index: usize,
) -> (String, String) {
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-otp"),
            None,
            json!({"email": email}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let otp_id = body["otpId"].as_str().expect("otpId").to_owned();
    (otp_id, sink.wait_for(email, index).await.code(6))
}

/// Account pre-hijacking (issue #11): someone registers the victim's address with a password
/// they know and leaves it unverified. When the owner signs in with an emailed code (proving
/// the address), the account becomes the owner's: the registrant's password fails (400, as
/// on PocketBase) and the registrant's tokens stop working (the token key rotated).
#[tokio::test]
async fn otp_verification_takes_the_account_from_whoever_registered_it() {
    let (app, sink, admin) = app_with_mail().await;
    enable_otp(&app, &admin, false).await;
    let squatter = create_user(&app, "victim@example.com", "squatter123").await;
    assert_eq!(squatter["verified"], false);
    let (status, session) = login(&app, "victim@example.com", "squatter123").await;
    assert_eq!(status, 200, "{session}");
    let squatter_token = session["token"].as_str().expect("token").to_owned();

    let (otp_id, code) = request_code(&app, &sink, "victim@example.com", 0).await;
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], squatter["id"]);
    assert_eq!(body["record"]["verified"], true);
    let owner_token = body["token"].as_str().expect("token").to_owned();

    let (status, body) = login(&app, "victim@example.com", "squatter123").await;
    assert_error(status, &body, 400, "Failed to authenticate.");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-refresh"),
            Some(&squatter_token),
            json!({}),
        )
        .await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-refresh"),
            Some(&owner_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "the owner's new session works: {body}");

    // An already verified account keeps its password through an OTP sign-in.
    let (otp_id, code) = request_code(&app, &sink, "victim@example.com", 1).await;
    let (status, _) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-refresh"),
            Some(&owner_token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "no second reset: {body}");
}

/// Where MFA applies to the record, the password alone never signs in, so OTP verification
/// keeps it (as PocketBase does): password then OTP, or OTP then password, in one sign-in.
/// Where the MFA rule leaves the record out, the unproven password is reset.
#[tokio::test]
async fn otp_verification_keeps_the_password_only_where_mfa_applies() {
    let (app, sink, admin) = app_with_mail().await;
    enable_otp(&app, &admin, true).await;
    create_user(&app, "mia@example.com", "miapass123").await;
    let (status, body) = login(&app, "mia@example.com", "miapass123").await;
    assert_eq!(status, 401, "{body}");
    let mfa_id = body["mfaId"].as_str().expect("mfaId").to_owned();
    let (otp_id, code) = request_code(&app, &sink, "mia@example.com", 0).await;
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code, "mfaId": mfa_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["verified"], true);
    let (status, body) = login(&app, "mia@example.com", "miapass123").await;
    assert_eq!(
        status, 401,
        "the password is still right (MFA asks for more): {body}"
    );
    assert!(body["mfaId"].is_string(), "{body}");

    // OTP first, then the password as the second factor.
    create_user(&app, "noa@example.com", "noapass123").await;
    let (otp_id, code) = request_code(&app, &sink, "noa@example.com", 0).await;
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code}),
        )
        .await;
    assert_eq!(status, 401, "first factor: {body}");
    let mfa_id = body["mfaId"].as_str().expect("mfaId").to_owned();
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-password"),
            None,
            json!({"identity": "noa@example.com", "password": "noapass123", "mfaId": mfa_id}),
        )
        .await;
    assert_eq!(status, 200, "second factor: {body}");
    assert_eq!(body["record"]["verified"], true);

    // An MFA rule that leaves the record out: its password alone would sign in, so it goes.
    let (status, body) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"mfa": {"enabled": true, "duration": 600, "rule": "name = 'needs mfa'"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    create_user(&app, "lux@example.com", "luxpass123").await;
    let (otp_id, code) = request_code(&app, &sink, "lux@example.com", 0).await;
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": otp_id, "password": code}),
        )
        .await;
    assert_eq!(status, 200, "no MFA for this record: {body}");
    let (status, body) = login(&app, "lux@example.com", "luxpass123").await;
    assert_error(status, &body, 400, "Failed to authenticate.");
}

/// An email change never hands an account to the new address's owner without the password:
/// the confirmation needs the account's current password, so whoever proves the new address
/// also proved the password (no reset is needed, and PocketBase does none), and the change
/// rotates the token key.
#[tokio::test]
async fn email_change_to_a_new_address_needs_the_account_password() {
    let (app, sink, _) = app_with_mail().await;
    create_user(&app, "sam@example.com", "sampass123").await;
    let (_, session) = login(&app, "sam@example.com", "sampass123").await;
    let token = session["token"].as_str().expect("token").to_owned();
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-email-change"),
            Some(&token),
            json!({"newEmail": "owner@example.com"}),
        )
        .await;
    assert_eq!(status, 204);
    let change = sink.wait_for("owner@example.com", 0).await.token();
    // The new address's owner, without the password, cannot take the change.
    for guess in ["", "owner-guess1"] {
        let (status, body) = app
            .post_json(
                &format!("{USERS}/confirm-email-change"),
                None,
                json!({"token": change, "password": guess}),
            )
            .await;
        let data = assert_error(
            status,
            &body,
            400,
            "An error occurred while validating the submitted data.",
        );
        assert!(data["password"]["code"].is_string(), "{data}");
    }
    let (status, _) = login(&app, "owner@example.com", "sampass123").await;
    assert_eq!(status, 400, "nothing changed");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-email-change"),
            None,
            json!({"token": change, "password": "sampass123"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = login(&app, "owner@example.com", "sampass123").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["verified"], true);
    let (status, _) = app
        .post_json(&format!("{USERS}/auth-refresh"), Some(&token), json!({}))
        .await;
    assert_eq!(status, 401, "sessions from before the change end");
}

/// PocketBase reads `mfaId` apart from the sign-in form: a value that is not text is ignored
/// while MFA does not apply, and is "Failed to read MFA Id." once MFA asks for it. The OTP
/// check comes before it.
#[tokio::test]
async fn an_mfa_id_of_a_wrong_type_matters_only_once_mfa_asks_for_it() {
    let (app, _sink, admin) = app_with_mail().await;
    create_user(&app, "max@example.com", "maxpass123").await;
    let sign_in = |mfa_id: Value| {
        let app = &app;
        async move {
            app.post_json(
                &format!("{USERS}/auth-with-password"),
                None,
                json!({"identity": "max@example.com", "password": "maxpass123", "mfaId": mfa_id}),
            )
            .await
        }
    };
    for mfa_id in [json!(5), json!(["a"]), json!({})] {
        let (status, body) = sign_in(mfa_id.clone()).await;
        assert_eq!(status, 200, "MFA off, mfaId {mfa_id}: {body}");
    }
    enable_otp(&app, &admin, true).await;
    for mfa_id in [json!(5), json!(["a"]), json!({}), json!(true)] {
        let (status, body) = sign_in(mfa_id).await;
        let data = assert_error(status, &body, 400, "Failed to read MFA Id.");
        assert_eq!(data, json!({}));
    }
    let (status, body) = sign_in(Value::Null).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["mfaId"].is_string(), "{body}");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": "abcdefghijklmno", "password": "123456", "mfaId": 5}),
        )
        .await;
    assert_error(status, &body, 400, "Invalid or expired OTP.");
}

/// PocketBase caps the emails and the OTP id of the auth forms at 255 characters, checked
/// before the email's format.
#[tokio::test]
async fn auth_forms_cap_emails_and_otp_ids_at_255_characters() {
    let (app, _sink, admin) = app_with_mail().await;
    create_user(&app, "nia@example.com", "niapass123").await;
    let (_, session) = login(&app, "nia@example.com", "niapass123").await;
    let token = session["token"].as_str().expect("token").to_owned();
    enable_otp(&app, &admin, false).await;
    let at_most = format!("{}@example.com", "a".repeat(243));
    let too_long = format!("{}@example.com", "a".repeat(244));
    let not_an_email = "a".repeat(256);
    let length_error = json!({
        "code": "validation_length_out_of_range",
        "message": "The length must be between 1 and 255.",
        "params": {"max": 255, "min": 1},
    });
    for (route, key, auth) in [
        ("request-verification", "email", None),
        ("request-password-reset", "email", None),
        ("request-email-change", "newEmail", Some(token.as_str())),
    ] {
        for value in [&too_long, &not_an_email] {
            let (status, body) = app
                .post_json(&format!("{USERS}/{route}"), auth, json!({key: value}))
                .await;
            let data = assert_error(
                status,
                &body,
                400,
                "An error occurred while validating the submitted data.",
            );
            assert_eq!(data, json!({key: length_error}), "{route}");
        }
        let (status, body) = app
            .post_json(&format!("{USERS}/{route}"), auth, json!({key: at_most}))
            .await;
        assert_eq!(status, 204, "{route} takes 255 characters: {body}");
    }
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": "a".repeat(256), "password": "123456"}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data, json!({"otpId": length_error}));
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": "a".repeat(255), "password": "123456"}),
        )
        .await;
    assert_error(status, &body, 400, "Invalid or expired OTP.");
}

/// The confirm routes read the claims they require (`email`, `newEmail`) from the token as
/// it is: a token missing another claim (here `collectionId`) or carrying one of another type
/// is an invalid token, as in PocketBase, not a token without the required claim.
#[tokio::test]
async fn confirm_tokens_missing_other_claims_are_invalid_tokens() {
    let (app, _sink, _) = app_with_mail().await;
    create_user(&app, "ora@example.com", "orapass123").await;
    let unsigned = |claims: Value| {
        format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            base64_url(claims.to_string().as_bytes())
        )
    };
    for claims in [
        json!({"id": "abc", "type": "verification", "email": "ora@example.com", "exp": 9999999999_i64}),
        json!({"id": "abc", "type": "verification", "email": 5, "exp": 9999999999_i64}),
        json!({"email": "ora@example.com", "collectionId": 5}),
    ] {
        let (status, body) = app
            .post_json(
                &format!("{USERS}/confirm-verification"),
                None,
                json!({"token": unsigned(claims.clone())}),
            )
            .await;
        let data = assert_error(
            status,
            &body,
            400,
            "An error occurred while validating the submitted data.",
        );
        assert_eq!(
            data["token"]["code"], "validation_invalid_token",
            "{claims}"
        );
    }
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-verification"),
            None,
            json!({"token": unsigned(json!({"id": "abc", "type": "verification", "email": ""}))}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["token"]["code"], "validation_invalid_token_claims");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-email-change"),
            None,
            json!({"token": unsigned(json!({"collectionId": 5, "newEmail": "n@example.com"})),
                   "password": "x"}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["token"]["code"], "validation_invalid_token");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-email-change"),
            None,
            json!({"token": unsigned(json!({"id": "abc", "type": "emailChange", "newEmail": 5})),
                   "password": "x"}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["token"]["code"], "validation_invalid_token_payload");
}
