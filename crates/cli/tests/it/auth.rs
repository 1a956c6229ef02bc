use serde_json::{Value, json};

use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, assert_error};

pub(crate) fn jwt_payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let mut padded = payload.replace('-', "+").replace('_', "/");
    while !padded.len().is_multiple_of(4) {
        padded.push('=');
    }
    let bytes = decode_base64(&padded);
    serde_json::from_slice(&bytes).expect("json payload")
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes().filter(|b| *b != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte).expect("base64") as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

#[tokio::test]
async fn superuser_login_returns_pocketbase_token_and_record() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post_json(
            "/api/collections/_superusers/auth-with-password",
            None,
            json!({"identity": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let record = &body["record"];
    assert_eq!(record["collectionId"], "pbc_3142635823");
    assert_eq!(record["collectionName"], "_superusers");
    assert_eq!(record["email"], ADMIN_EMAIL);
    assert_eq!(record["verified"], true);
    assert!(record.get("password").is_none() && record.get("tokenKey").is_none());
    assert_eq!(record["id"].as_str().expect("id").len(), 15);
    let token = body["token"].as_str().expect("token");
    let payload = jwt_payload(token);
    assert_eq!(payload["type"], "auth");
    assert_eq!(payload["collectionId"], "pbc_3142635823");
    assert_eq!(payload["refreshable"], true);
    assert_eq!(payload["id"], record["id"]);
    let exp = payload["exp"].as_i64().expect("exp");
    let now = chrono_now();
    assert!(
        (exp - now - 86400).abs() < 60,
        "superuser tokens last a day"
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[tokio::test]
async fn fields_filter_applies_to_auth_responses() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post_json(
            "/api/collections/_superusers/auth-with-password?fields=token",
            None,
            json!({"identity": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert!(body["token"].is_string());
    let (_, health) = app.get("/api/health?fields=code", None).await;
    assert_eq!(health, json!({"code": 200}));
}

#[tokio::test]
async fn wrong_credentials_and_missing_fields() {
    let app = TestApp::spawn().await;
    let path = "/api/collections/_superusers/auth-with-password";
    let (status, body) = app
        .post_json(
            path,
            None,
            json!({"identity": ADMIN_EMAIL, "password": "wrong-pass"}),
        )
        .await;
    assert_error(status, &body, 400, "Failed to authenticate.");
    let (status, body) = app
        .post_json(
            path,
            None,
            json!({"identity": "ghost@example.com", "password": "x"}),
        )
        .await;
    assert_error(status, &body, 400, "Failed to authenticate.");
    let (status, body) = app
        .post_json(path, None, json!({"identity": ADMIN_EMAIL}))
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["password"]["code"], "validation_required");
    let (status, body) = app
        .post_json("/api/collections/nope/auth-with-password", None, json!({}))
        .await;
    // PocketBase 0.40.6: an unknown collection and a non-auth one get different messages.
    assert_error(status, &body, 404, "Missing or invalid collection context.");
}

#[tokio::test]
async fn refresh_and_token_forms() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let path = "/api/collections/_superusers/auth-refresh";
    let (status, body) = app.post_json(path, Some(&token), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], ADMIN_EMAIL);
    let bearer = format!("Bearer {token}");
    let (status, _) = app.post_json(path, Some(&bearer), json!({})).await;
    assert_eq!(status, 200, "Bearer prefix is accepted");
    let (status, body) = app.post_json(path, None, json!({})).await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, body) = app.post_json(path, Some("garbage"), json!({})).await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, body) = app
        .post_json(
            "/api/collections/users/auth-refresh",
            Some(&token),
            json!({}),
        )
        .await;
    assert_error(
        status,
        &body,
        403,
        "The request requires auth record from _superusers collection.",
    );
}

#[tokio::test]
async fn invalid_tokens_degrade_to_guest() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .get("/api/collections/users/records", Some("garbage"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"], json!([]));
    let token = app.admin_token().await;
    let mut tampered = token.clone();
    tampered.pop();
    let (status, body) = app.get("/api/collections", Some(&tampered)).await;
    assert!(
        status == 401 || status == 403,
        "a tampered token is a guest: {status} {body}"
    );
}

#[tokio::test]
async fn password_change_revokes_old_tokens() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    // Used first, so the token is among those the server verified recently.
    for _ in 0..2 {
        let (status, body) = app.get("/api/collections", Some(&token)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (code, _, err) = crate::support::run_cli(
        app.dir.path(),
        &["superuser", "update", ADMIN_EMAIL, "N3w-passw0rd"],
    );
    assert_eq!(code, 0, "{err}");
    let (status, _) = app
        .post_json(
            "/api/collections/_superusers/auth-refresh",
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, 401, "the old token must stop working");

    // A new token works until the collection's token secret changes.
    let (status, body) = app
        .post_json(
            "/api/collections/_superusers/auth-with-password",
            None,
            json!({"identity": ADMIN_EMAIL, "password": "N3w-passw0rd"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("a token").to_owned();
    let (status, body) = app.get("/api/collections", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch_json(
            "/api/collections/_superusers",
            Some(&token),
            json!({"authToken": {"secret": "a-brand-new-secret-of-at-least-30-chars"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app.get("/api/collections", Some(&token)).await;
    assert_eq!(
        status, 401,
        "a token signed with the old secret must stop working"
    );
}

/// Issue #11: password sign-in locks per identity after 10 failures, whatever the client's
/// address (behind a local reverse proxy every client is loopback, which the IP rate limit
/// exempts). Loopback is exempt from the IP limit here, so the lockout alone answers.
#[tokio::test]
async fn repeated_failures_lock_the_identity_not_the_server() {
    let app = TestApp::spawn().await;
    let login = |identity: &'static str, password: &'static str| {
        app.post_json(
            "/api/collections/_superusers/auth-with-password",
            None,
            json!({"identity": identity, "password": password}),
        )
    };
    // Successes never count: many sign-ins a minute stay fine, and a success clears the
    // failures before it, so 9 + 9 failures around one success lock nothing.
    for _ in 0..9 {
        let (status, body) = login(ADMIN_EMAIL, "wrong-pass").await;
        assert_error(status, &body, 400, "Failed to authenticate.");
    }
    for _ in 0..3 {
        let (status, body) = login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..9 {
        let (status, body) = login(ADMIN_EMAIL, "wrong-pass").await;
        assert_error(status, &body, 400, "Failed to authenticate.");
    }
    let (status, body) = login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    // Ten failures in a row lock the identity: even the right password gets PocketBase's 429,
    // and so does the identity in another case.
    for _ in 0..10 {
        let (status, body) = login(ADMIN_EMAIL, "wrong-pass").await;
        assert_error(status, &body, 400, "Failed to authenticate.");
    }
    for identity in [ADMIN_EMAIL, "ADMIN@example.com"] {
        let (status, body) = login(identity, ADMIN_PASSWORD).await;
        assert_error(status, &body, 429, "Too Many Requests.");
    }
    // An unknown identity locks the same way, so the lockout tells nothing about accounts.
    for _ in 0..10 {
        let (status, body) = login("ghost@example.com", "wrong-pass").await;
        assert_error(status, &body, 400, "Failed to authenticate.");
    }
    let (status, body) = login("ghost@example.com", "wrong-pass").await;
    assert_error(status, &body, 429, "Too Many Requests.");
    // Other identities and the rest of the server are unaffected.
    let (status, body) = login("other@example.com", "wrong-pass").await;
    assert_error(status, &body, 400, "Failed to authenticate.");
    let (status, _) = app.get("/api/health", None).await;
    assert_eq!(status, 200);
}

/// PocketBase's bounds on the credentials `auth-with-password` reads (255 characters each).
#[tokio::test]
async fn overlong_credentials_are_refused_before_hashing() {
    let app = TestApp::spawn().await;
    let long = "a".repeat(256);
    for (identity, password, field) in [
        (long.as_str(), "x", "identity"),
        (ADMIN_EMAIL, long.as_str(), "password"),
    ] {
        let (status, body) = app
            .post_json(
                "/api/collections/_superusers/auth-with-password",
                None,
                json!({"identity": identity, "password": password}),
            )
            .await;
        let data = assert_error(
            status,
            &body,
            400,
            "An error occurred while validating the submitted data.",
        );
        assert_eq!(
            data[field]["code"], "validation_length_out_of_range",
            "{data}"
        );
        assert_eq!(
            data[field]["message"], "The length must be between 1 and 255.",
            "{data}"
        );
        assert_eq!(data[field]["params"], json!({"max": 255, "min": 1}));
    }
}

/// A `users` record and its token.
async fn user_session(app: &TestApp, email: &str) -> String {
    let (status, body) = app
        .post_json(
            "/api/collections/users/records",
            None,
            json!({"email": email, "password": "userpass123", "passwordConfirm": "userpass123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections/users/auth-with-password",
            None,
            json!({"identity": email, "password": "userpass123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

/// PocketBase 0.40.6's order on the routes acting on the caller's own record: the collection
/// (404 for an unknown one, whatever the token), then the token (401), then whose collection
/// it is (403 naming the caller's own, which a base or view collection never is).
/// Impersonation names an unknown collection as a non-auth one.
#[tokio::test]
async fn auth_routes_check_the_collection_before_the_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = user_session(&app, "ann@example.com").await;
    for route in ["auth-refresh", "request-email-change"] {
        for token in [None, Some("abc"), Some(admin.as_str()), Some(user.as_str())] {
            let (status, body) = app
                .post_json(
                    &format!("/api/collections/nosuch/{route}"),
                    token,
                    json!({}),
                )
                .await;
            let data = assert_error(status, &body, 404, "Missing or invalid collection context.");
            assert_eq!(data, json!({}));
        }
    }
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "plain", "type": "base", "fields": [{"name": "title", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "pview", "type": "view", "viewQuery": "SELECT id, email FROM users"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for collection in ["plain", "pview"] {
        for route in ["auth-refresh", "request-email-change"] {
            let path = format!("/api/collections/{collection}/{route}");
            let (status, body) = app.post_json(&path, Some(&user), json!({})).await;
            assert_error(
                status,
                &body,
                403,
                "The request requires auth record from users collection.",
            );
            let (status, body) = app.post_json(&path, Some(&admin), json!({})).await;
            assert_error(
                status,
                &body,
                403,
                "The request requires auth record from _superusers collection.",
            );
            let (status, body) = app.post_json(&path, None, json!({})).await;
            assert_error(
                status,
                &body,
                401,
                "The request requires valid record authorization token.",
            );
        }
    }
    let impersonate = "/api/collections/nosuch/impersonate/abcdefghijklmno";
    let (status, body) = app.post_json(impersonate, Some(&admin), json!({})).await;
    assert_error(
        status,
        &body,
        404,
        "Missing or invalid auth collection context.",
    );
    let (status, body) = app.post_json(impersonate, None, json!({})).await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );
    // The record is looked up before the duration's bound is checked, as in PocketBase; a
    // duration that does not load is refused before either.
    let missing = "/api/collections/users/impersonate/abcdefghijklmno";
    let (status, body) = app
        .post_json(missing, Some(&admin), json!({"duration": -1}))
        .await;
    assert_error(status, &body, 404, "The requested resource wasn't found.");
    let (status, body) = app
        .post_json(missing, Some(&admin), json!({"duration": "x"}))
        .await;
    assert_error(
        status,
        &body,
        400,
        "An error occurred while loading the submitted data.",
    );
}

/// Exactly one `Bearer ` prefix (any case) is taken off the `Authorization` header, as
/// PocketBase does: with two spaces, or two prefixes, what is left is no token.
#[tokio::test]
async fn one_bearer_prefix_is_taken_off_the_token() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let path = "/api/collections/_superusers/auth-refresh";
    for (header, expected) in [
        (token.clone(), 200),
        (format!("Bearer {token}"), 200),
        (format!("bearer {token}"), 200),
        (format!("BEARER {token}"), 200),
        (format!("Bearer  {token}"), 401),
        (format!("Bearer Bearer {token}"), 401),
        (format!("Bearer\t{token}"), 401),
    ] {
        let (status, body) = app.post_json(path, Some(&header), json!({})).await;
        assert_eq!(status, expected, "{header:?}: {body}");
    }
    // A non-refreshable (impersonation) token comes back as it was sent, without its prefix.
    let (status, body) = app
        .get("/api/collections/_superusers/records", Some(&token))
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["items"][0]["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .post_json(
            &format!("/api/collections/_superusers/impersonate/{id}"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let impersonation = body["token"].as_str().expect("token").to_owned();
    let (status, body) = app
        .post_json(path, Some(&format!("BEARER {impersonation}")), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"], impersonation.as_str());
}

/// A POST with a raw JSON body, for bodies `post_json` cannot send.
async fn post_raw(app: &TestApp, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("Authorization", token);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body read");
    (status, serde_json::from_str(&text).expect("JSON answer"))
}

/// Superusers are verified and change their emails directly: PocketBase refuses the four
/// flows on `_superusers` before it reads the body (request-email-change once the caller is
/// known to be a superuser).
#[tokio::test]
async fn superusers_refuse_verification_and_email_change_before_the_body() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let user = user_session(&app, "bea@example.com").await;
    let base = "/api/collections/_superusers";
    let verified = "All superusers are verified by default.";
    let directly = "All superusers can change their emails directly.";
    for (route, token, body, message) in [
        (
            "request-verification",
            None,
            r#"{"email":"admin@example.com"}"#,
            verified,
        ),
        ("request-verification", None, "{}", verified),
        ("request-verification", None, "{", verified),
        ("confirm-verification", None, r#"{"token":"abc"}"#, verified),
        ("confirm-verification", None, "[", verified),
        (
            "request-email-change",
            Some(admin.as_str()),
            r#"{"newEmail":"new@example.com"}"#,
            directly,
        ),
        ("request-email-change", Some(admin.as_str()), "{", directly),
        (
            "confirm-email-change",
            None,
            r#"{"token":"abc","password":"x"}"#,
            directly,
        ),
        ("confirm-email-change", None, "[", directly),
    ] {
        let (status, answer) = post_raw(&app, &format!("{base}/{route}"), token, body).await;
        let data = assert_error(status, &answer, 400, message);
        assert_eq!(data, json!({}), "{route} {body}");
    }
    let (status, answer) = post_raw(&app, &format!("{base}/request-email-change"), None, "{").await;
    assert_error(
        status,
        &answer,
        401,
        "The request requires valid record authorization token.",
    );
    let (status, answer) = post_raw(
        &app,
        &format!("{base}/request-email-change"),
        Some(&user),
        "{",
    )
    .await;
    assert_error(
        status,
        &answer,
        403,
        "The request requires auth record from users collection.",
    );
    let (status, body) = app.get(&format!("{base}/records"), Some(&admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["items"][0]["email"], ADMIN_EMAIL,
        "the email is unchanged"
    );
}

/// A superuser record is saved verified whatever the form says, as in PocketBase.
#[tokio::test]
async fn superusers_are_always_saved_verified() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let records = "/api/collections/_superusers/records";
    let (status, created) = app
        .post_json(
            records,
            Some(&admin),
            json!({"email": "su3@example.com", "password": "su3-pass-1234",
                   "passwordConfirm": "su3-pass-1234", "verified": false}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["verified"], true);
    let (status, body) = app
        .post_json(
            records,
            Some(&admin),
            json!({"email": "su4@example.com", "password": "su4-pass-1234",
                   "passwordConfirm": "su4-pass-1234"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"], true);
    let id = created["id"].as_str().expect("id");
    let (status, body) = app
        .patch_json(
            &format!("{records}/{id}"),
            Some(&admin),
            json!({"verified": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verified"], true);
    let (_, body) = app.get(&format!("{records}/{id}"), Some(&admin)).await;
    assert_eq!(body["verified"], true, "as stored");
}
