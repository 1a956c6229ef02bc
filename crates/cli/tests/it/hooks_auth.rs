//! The auth request hooks end to end, against the answers observed from PocketBase 0.40.6:
//! `onRecordAuthRequest` shaping every auth answer (`meta`, the record), the password hook
//! seeing the identity (and a null record for an unknown one), refusals with an ApiError,
//! chains ended without `e.next()`, the email flows' hooks, and `$apis.recordAuthResponse`.

use serde_json::{Value, json};

use crate::smtp_sink::SmtpSink;
use crate::support::{Launch, TestApp, assert_error};

const USERS: &str = "/api/collections/users";

const HOOKS: &str = r#"
routerAdd("GET", "/store/{k}", (e) => e.json(200, { v: $app.store().get(e.request.pathValue("k")) }));
routerAdd("POST", "/custom-auth", (e) => {
  const r = $app.findAuthRecordByEmail("users", "a@x.com");
  return $apis.recordAuthResponse(e, r, "custom", { m: 1 });
});
routerAdd("POST", "/check-password", (e) => {
  const r = $app.findAuthRecordByEmail("users", "a@x.com");
  return e.json(200, { ok: r.validatePassword(e.requestInfo().body.password) });
});
onRecordAuthWithPasswordRequest((e) => {
  $app.store().set("pw", { identity: e.identity, identityField: e.identityField, password: e.password, record: e.record ? e.record.id : null, coll: e.collection.name });
  if (e.identity === "nonext@x.com") return;
  if (e.identity === "throw@x.com") throw new BadRequestError("pw refused");
  if (e.identity === "plain@x.com") throw new Error("plain");
  if (e.identity === "swap@x.com") e.record = $app.findAuthRecordByEmail("users", "a@x.com");
  e.next();
}, "users");
onRecordAuthRequest((e) => {
  $app.store().set("auth", { method: e.authMethod, token: typeof e.token, record: e.record.id, meta: e.meta });
  if (e.record.email() === "b@x.com") throw new ForbiddenError("auth refused");
  if (e.record.email() === "c@x.com") return;
  e.meta = { custom: "x" };
  e.record.set("name", "hooked");
  e.next();
}, "users");
onRecordAuthWithOAuth2Request((e) => {
  $app.store().set("oauth2", { provider: e.providerName, email: e.oAuth2User.email, isNew: e.isNewRecord, record: e.record ? e.record.id : null, createData: e.createData });
  if (e.oAuth2User.email === "refused@oidc.test") throw new BadRequestError("no oauth2");
  e.createData = { name: "from hook" };
  e.next();
}, "users");
onRecordAuthRefreshRequest((e) => { $app.store().set("refresh", { record: e.record.id }); e.next(); }, "users");
onRecordRequestOTPRequest((e) => { $app.store().set("reqotp", { record: e.record ? e.record.id : null, pw: e.password }); e.next(); }, "users");
onRecordAuthWithOTPRequest((e) => { $app.store().set("otp", { record: e.record.id }); e.next(); }, "users");
onRecordRequestPasswordResetRequest((e) => {
  $app.store().set("reqreset", { record: e.record.id });
  if (e.record.email() === "b@x.com") return;
  e.next();
}, "users");
onRecordConfirmPasswordResetRequest((e) => { $app.store().set("confreset", { record: e.record.id }); e.next(); }, "users");
onRecordRequestVerificationRequest((e) => { $app.store().set("reqverif", { record: e.record.id }); e.next(); }, "users");
onRecordConfirmVerificationRequest((e) => { $app.store().set("confverif", { record: e.record.id, verified: e.record.verified() }); e.next(); }, "users");
onRecordRequestEmailChangeRequest((e) => { $app.store().set("reqemail", { record: e.record.id, newEmail: e.newEmail }); e.next(); }, "users");
onRecordConfirmEmailChangeRequest((e) => { $app.store().set("confemail", { record: e.record.id, newEmail: e.newEmail }); e.next(); }, "users");
"#;

const PASSWORD: &str = "Passw0rd!123";

/// A server running [`HOOKS`], with no users.
async fn bare_app() -> TestApp {
    let hooks = tempfile::tempdir().expect("tempdir");
    std::fs::write(hooks.path().join("main.pb.js"), HOOKS).expect("writes hooks");
    let app = TestApp::spawn_launch(&Launch {
        args: vec![
            format!("--hooksDir={}", hooks.path().display()),
            "--hooksWatch=false".into(),
        ],
        ..Launch::default()
    })
    .await;
    drop(hooks);
    app
}

/// A server running [`HOOKS`], mailing to a sink, rate limits off; users a, b, c and swap.
async fn app() -> (TestApp, SmtpSink, String, Value) {
    let app = bare_app().await;
    let sink = SmtpSink::start();
    let admin = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({
                "smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port},
                "rateLimits": {"enabled": false},
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch_json(USERS, Some(&admin), json!({"otp": {"enabled": true}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut ids = serde_json::Map::new();
    for name in ["a", "b", "c", "swap"] {
        let (status, body) = app
            .post_json(
                &format!("{USERS}/records"),
                None,
                json!({"email": format!("{name}@x.com"), "password": PASSWORD,
                       "passwordConfirm": PASSWORD, "name": format!("n{name}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ids.insert(name.into(), body["id"].clone());
    }
    (app, sink, admin, Value::Object(ids))
}

async fn stored(app: &TestApp, key: &str) -> Value {
    let (status, body) = app.get(&format!("/store/{key}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["v"].clone()
}

async fn login(app: &TestApp, identity: &str) -> (u16, Value) {
    app.post_json(
        &format!("{USERS}/auth-with-password"),
        None,
        json!({"identity": identity, "password": PASSWORD}),
    )
    .await
}

#[tokio::test]
async fn sign_in_hooks_shape_refuse_and_end_the_answer() {
    let (app, _sink, _admin, ids) = app().await;

    // The password hook sees the identity and the found record; the auth hook's `e.meta` and
    // record change show in the answer.
    let (status, body) = login(&app, "a@x.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"], json!({"custom": "x"}));
    assert_eq!(body["record"]["name"], "hooked");
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(
        stored(&app, "pw").await,
        json!({"identity": "a@x.com", "identityField": "", "password": PASSWORD,
               "record": ids["a"], "coll": "users"})
    );
    assert_eq!(
        stored(&app, "auth").await,
        json!({"method": "password", "token": "string", "record": ids["a"], "meta": null})
    );

    // An unknown identity: the hook runs with a null record, then the usual refusal.
    let (status, body) = login(&app, "zz@x.com").await;
    assert_error(status, &body, 400, "Failed to authenticate.");
    assert_eq!(stored(&app, "pw").await["record"], Value::Null);
    assert_eq!(stored(&app, "pw").await["identity"], "zz@x.com");

    // Validation comes first: an empty form never reaches the hook.
    let (status, body) = app
        .post_json(&format!("{USERS}/auth-with-password"), None, json!({}))
        .await;
    assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(stored(&app, "pw").await["identity"], "zz@x.com");

    // No `e.next()`: PocketBase's empty 200.
    let (status, body) = login(&app, "nonext@x.com").await;
    assert_eq!((status, body), (200, Value::Null));
    // An ApiError keeps its status and text; any other throw is the generic 400.
    let (status, body) = login(&app, "throw@x.com").await;
    assert_error(status, &body, 400, "Pw refused.");
    let (status, body) = login(&app, "plain@x.com").await;
    assert_error(
        status,
        &body,
        400,
        "Something went wrong while processing your request.",
    );
    // The auth hook refusing, or ending the chain.
    let (status, body) = login(&app, "b@x.com").await;
    assert_error(status, &body, 403, "Auth refused.");
    let (status, body) = login(&app, "c@x.com").await;
    assert_eq!((status, body), (200, Value::Null));
    // The record the hook leaves is the one checked and signed in.
    let (status, body) = login(&app, "swap@x.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "a@x.com");

    // A refresh: its own hook, then the auth hook with an empty method.
    let (_, session) = login(&app, "a@x.com").await;
    let token = session["token"].as_str().expect("token");
    let (status, body) = app
        .post_json(&format!("{USERS}/auth-refresh"), Some(token), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"], json!({"custom": "x"}));
    assert_eq!(stored(&app, "refresh").await, json!({"record": ids["a"]}));
    assert_eq!(stored(&app, "auth").await["method"], "");

    // `$apis.recordAuthResponse` from a route: the same answer, through the auth hook.
    let (status, body) = app.post_json("/custom-auth", None, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"], json!({"custom": "x"}));
    assert_eq!(body["record"]["email"], "a@x.com");
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(
        stored(&app, "auth").await,
        json!({"method": "custom", "token": "string", "record": ids["a"], "meta": {"m": 1}})
    );

    // `record.validatePassword` checks the stored argon2id hash through the host.
    for (password, ok) in [(PASSWORD, true), ("Passw0rd!124", false), ("", false)] {
        let (status, body) = app
            .post_json("/check-password", None, json!({ "password": password }))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ok"], ok, "{password:?}");
    }
}

#[tokio::test]
async fn email_flow_and_otp_hooks_fire_after_validation() {
    let (app, sink, admin, ids) = app().await;

    // Password reset: fires for a known email only; without `e.next()` nothing is mailed.
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-password-reset"),
            None,
            json!({"email": "zz@x.com"}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(stored(&app, "reqreset").await, Value::Null);
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-password-reset"),
            None,
            json!({"email": "b@x.com"}),
        )
        .await;
    assert_eq!((status, body), (200, Value::Null));
    assert_eq!(stored(&app, "reqreset").await, json!({"record": ids["b"]}));
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-password-reset"),
            None,
            json!({"email": "a@x.com"}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(stored(&app, "reqreset").await, json!({"record": ids["a"]}));
    let token = sink.wait_for("a@x.com", 0).await.token();
    assert_eq!(sink.count_to("b@x.com"), 0);
    let new_password = "N3wPassw0rd!";
    let (status, body) = app
        .post_json(
            &format!("{USERS}/confirm-password-reset"),
            None,
            json!({"token": "bad", "password": new_password, "passwordConfirm": new_password}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(stored(&app, "confreset").await, Value::Null);
    let (status, _) = app
        .post_json(
            &format!("{USERS}/confirm-password-reset"),
            None,
            json!({"token": token, "password": new_password, "passwordConfirm": new_password}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(stored(&app, "confreset").await, json!({"record": ids["a"]}));

    // Verification.
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-verification"),
            None,
            json!({"email": "c@x.com"}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(stored(&app, "reqverif").await, json!({"record": ids["c"]}));
    let token = sink.wait_for("c@x.com", 0).await.token();
    let (status, _) = app
        .post_json(
            &format!("{USERS}/confirm-verification"),
            None,
            json!({"token": token}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        stored(&app, "confverif").await,
        json!({"record": ids["c"], "verified": false})
    );

    // An already verified record: the hook still runs, nothing is mailed.
    let (status, body) = app
        .patch_json(
            &format!("{USERS}/records/{}", ids["swap"].as_str().expect("id")),
            Some(&admin),
            json!({"verified": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-verification"),
            None,
            json!({"email": "swap@x.com"}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        stored(&app, "reqverif").await,
        json!({"record": ids["swap"]})
    );
    assert_eq!(sink.count_to("swap@x.com"), 0);

    // Email change: the hook sees the new address.
    let (status, session) = app
        .post_json(
            &format!("{USERS}/auth-with-password"),
            None,
            json!({"identity": "a@x.com", "password": new_password}),
        )
        .await;
    assert_eq!(status, 200, "{session}");
    let auth = session["token"].as_str().expect("token");
    let (status, _) = app
        .post_json(
            &format!("{USERS}/request-email-change"),
            Some(auth),
            json!({"newEmail": "new@x.com"}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        stored(&app, "reqemail").await,
        json!({"record": ids["a"], "newEmail": "new@x.com"})
    );
    let token = sink.wait_for("new@x.com", 0).await.token();
    let (status, _) = app
        .post_json(
            &format!("{USERS}/confirm-email-change"),
            None,
            json!({"token": token, "password": new_password}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        stored(&app, "confemail").await,
        json!({"record": ids["a"], "newEmail": "new@x.com"})
    );

    // OTP: the request hook fires for unknown emails too (null record), with the code.
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-otp"),
            None,
            json!({"email": "zz@x.com"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored(&app, "reqotp").await["record"], Value::Null);
    let (status, body) = app
        .post_json(
            &format!("{USERS}/request-otp"),
            None,
            json!({"email": "swap@x.com"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let hooked = stored(&app, "reqotp").await;
    assert_eq!(hooked["record"], ids["swap"]);
    let code = hooked["pw"].as_str().expect("code").to_owned();
    assert_eq!(sink.wait_for("swap@x.com", 0).await.code(code.len()), code);
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": body["otpId"], "password": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"], json!({"custom": "x"}));
    assert_eq!(stored(&app, "otp").await, json!({"record": ids["swap"]}));
    assert_eq!(stored(&app, "auth").await["method"], "otp");
}

#[tokio::test]
async fn the_oauth2_hook_sees_the_provider_user_and_shapes_the_sign_up() {
    let provider = crate::oauth2::OidcProvider::start();
    let app = bare_app().await;
    let admin = app.admin_token().await;
    crate::oauth2::enable_oidc(&app, &admin, &provider, json!({})).await;
    let (status, body) =
        crate::oauth2::oauth2_login_with(&app, "olly", json!({"name": "submitted"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "olly@oidc.test");
    // The auth hook replaced the provider's `meta`, and the record's name.
    assert_eq!(body["meta"], json!({"custom": "x"}));
    let id = body["record"]["id"].clone();
    assert_eq!(
        stored(&app, "oauth2").await,
        json!({"provider": "oidc", "email": "olly@oidc.test", "isNew": true, "record": null,
               "createData": {"name": "submitted"}})
    );
    assert_eq!(stored(&app, "auth").await["method"], "oauth2");
    // What the hook put in `e.createData` is what the new record was made from.
    let (status, stored_user) = app
        .get(
            &format!("{USERS}/records/{}", id.as_str().expect("id")),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{stored_user}");
    assert_eq!(stored_user["name"], "from hook");
    // The second sign-in finds the linked record.
    let (status, body) = crate::oauth2::oauth2_login_with(&app, "olly", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored(&app, "oauth2").await["isNew"], false);
    assert_eq!(stored(&app, "oauth2").await["record"], id);
    // A refusal from the hook answers as it is, and nothing is created.
    let (status, body) = crate::oauth2::oauth2_login_with(&app, "refused", json!({})).await;
    assert_error(status, &body, 400, "No oauth2.");
    let (status, list) = app.get(&format!("{USERS}/records"), Some(&admin)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalItems"], 1, "{list}");
}
