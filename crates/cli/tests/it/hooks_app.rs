//! The app services hooks reach through `$app`, `$apis`, `$mails` and `$security`, end to end:
//! relation expansion, rule checks, the records API's view of a record, auth tokens that the
//! auth endpoints accept, mail through a real SMTP sink, and AES/regex helpers. Expected
//! values were observed on PocketBase 0.40.6 running the same routes.

use serde_json::json;

use crate::auth::jwt_payload;
use crate::smtp_sink::SmtpSink;
use crate::support::{Launch, TestApp};

const HOOKS: &str = r#"
routerAdd("GET", "/t/expand/{id}", (e) => {
  const r = $app.findRecordById("posts", e.request.pathValue("id"));
  const out = $app.expandRecord(r, ["author", "nope"], null);
  const a = r.expandedOne("author");
  return e.json(200, {ret: typeof out, one: a ? a.id : null, oneEmail: a ? a.email() : null, all: r.expandedAll("author").length, rec: r});
});
routerAdd("GET", "/t/access/{id}", (e) => {
  const r = $app.findRecordById("posts", e.request.pathValue("id"));
  const info = e.requestInfo();
  return e.json(200, {
    pos: $app.canAccessRecord(r, info, "n > 0"),
    neg: $app.canAccessRecord(r, info, "n > 100"),
    nul: $app.canAccessRecord(r, info, null),
    empty: $app.canAccessRecord(r, info, ""),
    auth: $app.canAccessRecord(r, info, "@request.auth.id != ''"),
    owner: $app.canAccessRecord(r, info, "author = @request.auth.id"),
    query: $app.canAccessRecord(r, info, "@request.query.k = 'v'"),
  });
});
routerAdd("GET", "/t/badrule/{id}", (e) => {
  const r = $app.findRecordById("posts", e.request.pathValue("id"));
  try { return e.json(200, {v: $app.canAccessRecord(r, e.requestInfo(), "nosuch = 1")}); } catch (err) { return e.json(200, {err: String(err)}); }
});
routerAdd("GET", "/t/enrich/{id}", (e) => {
  const r = $app.findRecordById("posts", e.request.pathValue("id"));
  $apis.enrichRecord(e, r, "author");
  return e.json(200, r);
});
routerAdd("GET", "/t/enrichuser/{id}", (e) => {
  const r = $app.findRecordById("users", e.request.pathValue("id"));
  $apis.enrichRecords(e, [r]);
  return e.json(200, r);
});
routerAdd("GET", "/t/tokens/{id}", (e) => {
  const u = $app.findRecordById("users", e.request.pathValue("id"));
  return e.json(200, {auth: u.newAuthToken(), verification: u.newVerificationToken(),
    passwordReset: u.newPasswordResetToken(), file: u.newFileToken()});
});
routerAdd("GET", "/t/regex", (e) => {
  const out = {};
  for (const p of ["[a-c]{5}", "\\d{4}", "(ab){2}", "^abc$", "[a-"]) {
    try { out[p] = $security.randomStringByRegex(p); } catch (err) { out[p] = "ERR " + err; }
  }
  return e.json(200, out);
});
routerAdd("GET", "/t/enc", (e) => {
  const key = "abcdefghijklmnopqrstuvwxyz012345";
  const c = $security.encrypt("hello world", key);
  let bad; try { bad = $security.encrypt("x", "short"); } catch (err) { bad = "ERR " + err; }
  let wrongKey; try { wrongKey = $security.decrypt(c, "abcdefghijklmnopqrstuvwxyz012346"); } catch (err) { wrongKey = "ERR " + err; }
  return e.json(200, {c, dec: $security.decrypt(c, key), bad, wrongKey,
    pb: $security.decrypt("Rd7QtdfcR9hawWv+VghugZb7i+w1Zdg1Jw3MeB1dXTUD7JWB3RWw", key)});
});
routerAdd("GET", "/t/mail", (e) => {
  const m = new MailerMessage({from: {address: "hooks@app.test", name: "Hook Bot"},
    to: [{address: "x@y.test", name: "X"}], cc: [{address: "cc@y.test"}], bcc: [{address: "bcc@y.test"}],
    subject: "Hello from a hook", html: "<p>Hi <b>there</b></p>", headers: {"X-Custom": "yes"}});
  $app.newMailClient().send(m);
  return e.json(200, {sent: true});
});
routerAdd("GET", "/t/mailto", (e) => {
  $app.newMailClient().send(new MailerMessage({from: {address: "hooks@app.test"},
    to: [{address: e.request.url.query().get("to")}], subject: "Plain", text: "just text"}));
  return e.json(200, {sent: true});
});
onMailerSend((e) => {
  const to = e.message.to.map((t) => t.address).join(",");
  if (to === "blocked@y.test") return;
  if (to === "rewrite@y.test") e.message.subject = "Rewritten";
  e.next();
});
routerAdd("GET", "/t/mails/{id}", (e) => {
  const u = $app.findRecordById("users", e.request.pathValue("id"));
  $mails.sendRecordPasswordReset($app, u);
  $mails.sendRecordVerification($app, u);
  $mails.sendRecordChangeEmail($app, u, "new@example.com");
  $mails.sendRecordOTP($app, u, "otpid123", "654321");
  return e.noContent(204);
});
"#;

struct World {
    app: TestApp,
    sink: SmtpSink,
    user: String,
    user_token: String,
    post: String,
}

async fn world() -> World {
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
    let sink = SmtpSink::start();
    let admin = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({
                "smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port},
                "meta": {"appName": "HookApp", "appURL": "https://app.test",
                          "senderName": "App Bot", "senderAddress": "bot@app.test"},
                "rateLimits": {"enabled": false},
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch_json(
            "/api/collections/users",
            Some(&admin),
            json!({"listRule": "", "viewRule": ""}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let users_id = body["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&admin),
            json!({"name": "posts", "type": "base", "listRule": "", "viewRule": "",
                   "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"},
                              {"name": "author", "type": "relation", "collectionId": users_id, "maxSelect": 1}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            "/api/collections/users/records",
            None,
            json!({"email": "u1@example.com", "password": "Passw0rd!123",
                   "passwordConfirm": "Passw0rd!123", "name": "U1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let user = body["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .post_json(
            "/api/collections/posts/records",
            Some(&admin),
            json!({"title": "alpha", "n": 1, "author": user}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let post = body["id"].as_str().expect("id").to_owned();
    let (status, body) = app
        .post_json(
            "/api/collections/users/auth-with-password",
            None,
            json!({"identity": "u1@example.com", "password": "Passw0rd!123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let user_token = body["token"].as_str().expect("token").to_owned();
    World {
        app,
        sink,
        user,
        user_token,
        post,
    }
}

#[tokio::test]
async fn expand_access_and_enrich_answer_as_pocketbase() {
    let w = world().await;
    let (status, body) = w.app.get(&format!("/t/expand/{}", w.post), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["one"], w.user.as_str());
    assert_eq!(body["all"], 1);
    // The expanded record is a full record (its email readable), shown without the email
    // since emailVisibility is off, as PocketBase renders it.
    assert_eq!(body["oneEmail"], "u1@example.com");
    let author = &body["rec"]["expand"]["author"];
    assert_eq!(author["id"], w.user.as_str());
    assert_eq!(author["name"], "U1");
    assert_eq!(author["collectionName"], "users");
    assert!(author.get("email").is_none(), "{body}");
    assert!(body["rec"]["expand"].get("nope").is_none());

    // PocketBase 0.40.6: {"pos":true,"neg":false,"nul":false,"empty":true,"auth":false,"owner":false}
    let (status, body) = w.app.get(&format!("/t/access/{}?k=v", w.post), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"pos": true, "neg": false, "nul": false, "empty": true, "auth": false, "owner": false, "query": true})
    );
    // As the author: {"auth":true,"owner":true} (the rest unchanged).
    let (_, body) = w
        .app
        .get(&format!("/t/access/{}", w.post), Some(&w.user_token))
        .await;
    assert_eq!(
        body,
        json!({"pos": true, "neg": false, "nul": false, "empty": true, "auth": true, "owner": true, "query": false})
    );
    let (_, body) = w.app.get(&format!("/t/badrule/{}", w.post), None).await;
    let err = body["err"].as_str().expect("an error");
    assert!(err.starts_with("GoError: "), "{err}");
    assert!(err.contains("nosuch"), "{err}");

    // enrichRecord answers as the records API: the author's email only for its owner.
    let (status, guest) = w.app.get(&format!("/t/enrich/{}", w.post), None).await;
    assert_eq!(status, 200, "{guest}");
    let (_, api) = w
        .app
        .get(
            &format!("/api/collections/posts/records/{}?expand=author", w.post),
            None,
        )
        .await;
    assert_eq!(guest, api);
    assert!(guest["expand"]["author"].get("email").is_none(), "{guest}");
    let (_, owner) = w
        .app
        .get(&format!("/t/enrich/{}", w.post), Some(&w.user_token))
        .await;
    assert_eq!(owner["expand"]["author"]["email"], "u1@example.com");
    let (_, me) = w
        .app
        .get(&format!("/t/enrichuser/{}", w.user), Some(&w.user_token))
        .await;
    assert_eq!(me["email"], "u1@example.com");
    assert!(me.get("tokenKey").is_none() && me.get("password").is_none());
    let (_, other) = w.app.get(&format!("/t/enrichuser/{}", w.user), None).await;
    assert!(other.get("email").is_none(), "{other}");
    assert_eq!(other["name"], "U1");
}

#[tokio::test]
async fn tokens_are_accepted_by_the_auth_endpoints() {
    let w = world().await;
    let (status, body) = w.app.get(&format!("/t/tokens/{}", w.user), None).await;
    assert_eq!(status, 200, "{body}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    // Claims and lifetimes as PocketBase 0.40.6 issues them (the users collection's
    // defaults: 5 days, 1 day, 30 minutes, 3 minutes).
    for (kind, ttl, extra) in [
        ("auth", 432_000, json!({"refreshable": true})),
        ("verification", 86_400, json!({"email": "u1@example.com"})),
        ("passwordReset", 1_800, json!({"email": "u1@example.com"})),
        ("file", 180, json!({})),
    ] {
        let claims = jwt_payload(body[kind].as_str().expect("token"));
        assert_eq!(claims["type"], kind, "{claims}");
        assert_eq!(claims["id"], w.user.as_str());
        assert_eq!(claims["collectionId"], "_pb_users_auth_");
        let exp = claims["exp"].as_i64().expect("exp");
        assert!((exp - now - ttl).abs() <= 5, "{kind}: {claims}");
        for (k, v) in extra.as_object().expect("object") {
            assert_eq!(&claims[k], v, "{kind}: {claims}");
        }
        let keys = claims.as_object().expect("object").len();
        assert_eq!(
            keys,
            4 + extra.as_object().expect("object").len(),
            "{claims}"
        );
    }
    let auth = body["auth"].as_str().expect("auth");
    let (status, refreshed) = w
        .app
        .post_json("/api/collections/users/auth-refresh", Some(auth), json!({}))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["record"]["id"], w.user.as_str());
    let (status, _) = w
        .app
        .post_json(
            "/api/collections/users/confirm-verification",
            None,
            json!({"token": body["verification"]}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, out) = w
        .app
        .post_json(
            "/api/collections/users/confirm-password-reset",
            None,
            json!({"token": body["passwordReset"], "password": "N3wPassw0rd!",
                   "passwordConfirm": "N3wPassw0rd!"}),
        )
        .await;
    assert_eq!(status, 204, "{out}");
    let (status, _) = w
        .app
        .post_json(
            "/api/collections/users/auth-with-password",
            None,
            json!({"identity": "u1@example.com", "password": "N3wPassw0rd!"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn mail_goes_through_smtp_with_the_auth_templates() {
    let w = world().await;
    let (status, body) = w.app.get("/t/mail", None).await;
    assert_eq!(status, 200, "{body}");
    let mail = w.sink.wait_for("x@y.test", 0).await;
    assert_eq!(mail.from, "hooks@app.test");
    for to in ["x@y.test", "cc@y.test", "bcc@y.test"] {
        assert!(mail.to.iter().any(|t| t == to), "{:?}", mail.to);
    }
    assert_eq!(mail.subject(), "Hello from a hook");
    let text = mail.text();
    assert!(text.contains("<b>there</b>"), "{text}");
    assert!(mail.raw.contains("X-Custom: yes"), "{}", mail.raw);
    assert!(
        !mail.raw.to_ascii_lowercase().contains("bcc:"),
        "{}",
        mail.raw
    );

    let (status, _) = w.app.get(&format!("/t/mails/{}", w.user), None).await;
    assert_eq!(status, 204);
    let reset = w.sink.wait_for("u1@example.com", 0).await;
    let verify = w.sink.wait_for("u1@example.com", 1).await;
    let otp = w.sink.wait_for("u1@example.com", 2).await;
    let change = w.sink.wait_for("new@example.com", 0).await;
    assert_eq!(jwt_payload(&reset.token())["type"], "passwordReset");
    assert_eq!(jwt_payload(&verify.token())["type"], "verification");
    let claims = jwt_payload(&change.token());
    assert_eq!(claims["type"], "emailChange");
    assert_eq!(claims["newEmail"], "new@example.com");
    assert_eq!(claims["email"], "u1@example.com");
    assert_eq!(otp.code(6), "654321");
    assert!(reset.subject().contains("HookApp"), "{}", reset.subject());
    // The reset token works against the API.
    let (status, out) = w
        .app
        .post_json(
            "/api/collections/users/confirm-password-reset",
            None,
            json!({"token": reset.token(), "password": "N3wPassw0rd!",
                   "passwordConfirm": "N3wPassw0rd!"}),
        )
        .await;
    assert_eq!(status, 204, "{out}");
}

#[tokio::test]
async fn on_mailer_send_changes_or_stops_every_message() {
    let w = world().await;
    let (status, _) = w.app.get("/t/mailto?to=rewrite@y.test", None).await;
    assert_eq!(status, 200);
    let mail = w.sink.wait_for("rewrite@y.test", 0).await;
    assert_eq!(mail.subject(), "Rewritten");
    assert!(mail.text().contains("just text"));
    // A handler without e.next(): nothing is sent and the script sees no error.
    let (status, body) = w.app.get("/t/mailto?to=blocked@y.test", None).await;
    assert_eq!(status, 200, "{body}");
    // The auth flows' mail goes through the same handlers (PocketBase still answers 204).
    let (status, body) = w
        .app
        .post_json(
            "/api/collections/users/records",
            None,
            json!({"email": "blocked@y.test", "password": "Passw0rd!123",
                   "passwordConfirm": "Passw0rd!123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = w
        .app
        .post_json(
            "/api/collections/users/request-password-reset",
            None,
            json!({"email": "blocked@y.test"}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = w
        .app
        .post_json(
            "/api/collections/users/request-password-reset",
            None,
            json!({"email": "u1@example.com"}),
        )
        .await;
    assert_eq!(status, 204);
    let reset = w.sink.wait_for("u1@example.com", 0).await;
    assert_eq!(jwt_payload(&reset.token())["type"], "passwordReset");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.sink.count_to("blocked@y.test"), 0);
}

#[tokio::test]
async fn security_helpers_match_pocketbase() {
    let w = world().await;
    let (status, body) = w.app.get("/t/regex", None).await;
    assert_eq!(status, 200, "{body}");
    let five = body["[a-c]{5}"].as_str().expect("string");
    assert!(
        five.len() == 5 && five.chars().all(|c| "abc".contains(c)),
        "{five}"
    );
    let digits = body["\\d{4}"].as_str().expect("string");
    assert!(digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(body["(ab){2}"], "abab");
    assert_eq!(body["^abc$"], "ERR GoError: unsupported pattern operator 9");
    // PocketBase: "ERR GoError: error parsing regexp: missing closing ]: `[a-`"
    assert_eq!(
        body["[a-"],
        "ERR GoError: error parsing regexp: missing closing ]: `[a-`"
    );

    let (status, body) = w.app.get("/t/enc", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dec"], "hello world");
    assert_eq!(body["pb"], "hello world");
    assert_eq!(body["bad"], "ERR GoError: crypto/aes: invalid key size 5");
    assert_eq!(
        body["wrongKey"],
        "ERR GoError: cipher: message authentication failed"
    );
    // Nonce (12) + text (11) + tag (16), base64: as long as PocketBase's.
    assert_eq!(body["c"].as_str().expect("c").len(), 52);
}
