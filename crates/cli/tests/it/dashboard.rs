//! The dashboard at `/_/` (issue #14): the embedded bundle's caching and security headers, the
//! first-run installer link and its one-time token, and the rule checker the editors call.

use serde_json::{Value, json};

use crate::support::{TestApp, assert_error};

/// The installer link `serve` printed, as `(url path after the host, token)`.
fn installer_token(output: &str) -> String {
    let line = output
        .lines()
        .find(|l| l.contains("/_/#/install/"))
        .unwrap_or_else(|| panic!("no installer link in: {output}"));
    line.rsplit('/').next().expect("token").trim().to_owned()
}

#[tokio::test]
async fn the_page_is_never_cached_and_carries_a_strict_policy() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client.get(app.url("/_/")).send().await.expect("get");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap_or("")
            .contains("no-cache")
    );
    let policy = headers["content-security-policy"].to_str().expect("csp");
    for directive in [
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = page.text().await.expect("body");
    assert!(html.contains("<div id=\"app\">"), "{html}");

    // Every asset the page names: cached for a year, gzipped when the client asks.
    let assets: Vec<String> = html
        .split("\"/_/assets/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap_or("").to_owned())
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{html}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "{html}");
    for asset in &assets {
        let plain = client
            .get(app.url(&format!("/_/assets/{asset}")))
            .header("accept-encoding", "identity")
            .send()
            .await
            .expect("get");
        assert_eq!(plain.status(), 200, "{asset}");
        assert_eq!(
            plain.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(plain.headers().get("content-encoding").is_none());
        let plain_len = plain.bytes().await.expect("body").len();
        let zipped = client
            .get(app.url(&format!("/_/assets/{asset}")))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .expect("get");
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{asset}");
        let zipped_len = zipped.bytes().await.expect("body").len();
        assert!(
            zipped_len < plain_len,
            "{asset}: {zipped_len} >= {plain_len}"
        );
    }

    // `/_` redirects; unknown and hidden names are 404s in the error shape.
    let bare = client.get(app.url("/_")).send().await.expect("get");
    assert_eq!(bare.status(), 307);
    assert_eq!(bare.headers()["location"], "/_/");
    for path in ["/_/assets/nope.js", "/_/.env", "/_/assets/.hidden"] {
        let (status, body) = app.get(path, None).await;
        assert_error(status, &body, 404, "File not found.");
    }
}

#[tokio::test]
async fn the_installer_link_creates_the_first_superuser_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = TestApp::spawn_in(dir);
    let token = installer_token(&app.startup_output);
    assert!(token.len() >= 32, "{token}");

    // A wrong token is refused and creates nothing.
    let body = |token: &str, password: &str, confirm: &str| json!({"token": token, "email": "first@example.com", "password": password, "passwordConfirm": confirm});
    let (status, reply) = app
        .post_json(
            "/api/installer",
            None,
            body("not-the-token", "long-enough-1", "long-enough-1"),
        )
        .await;
    assert_error(
        status,
        &reply,
        403,
        "The installer link is invalid or was already used.",
    );

    // Bad input: each problem beside its field; the token stays valid.
    let (status, reply) = app
        .post_json(
            "/api/installer",
            None,
            json!({"token": token, "email": "nope", "password": "short", "passwordConfirm": "other"}),
        )
        .await;
    let data = assert_error(
        status,
        &reply,
        400,
        "An error occurred while validating the submitted data.",
    );
    for key in ["email", "password", "passwordConfirm"] {
        assert!(data[key]["code"].is_string(), "{key}: {data}");
    }

    let (status, reply) = app
        .post_json(
            "/api/installer",
            None,
            body(&token, "long-enough-1", "long-enough-1"),
        )
        .await;
    assert_eq!(status, 204, "{reply}");
    let (status, auth) = app
        .post_json(
            "/api/collections/_superusers/auth-with-password",
            None,
            json!({"identity": "first@example.com", "password": "long-enough-1"}),
        )
        .await;
    assert_eq!(status, 200, "{auth}");

    // Spent: the same link cannot make a second superuser.
    let (status, reply) = app
        .post_json(
            "/api/installer",
            None,
            body(&token, "long-enough-2", "long-enough-2"),
        )
        .await;
    assert_error(
        status,
        &reply,
        403,
        "The installer link is invalid or was already used.",
    );
    let token = auth["token"].as_str().expect("token");
    let (_, list) = app
        .get("/api/collections/_superusers/records", Some(token))
        .await;
    assert_eq!(list["totalItems"], 1, "{list}");
}

#[tokio::test]
async fn with_a_superuser_no_installer_link_is_printed_or_accepted() {
    let app = TestApp::spawn().await;
    assert!(
        !app.startup_output.contains("/_/#/install/"),
        "{}",
        app.startup_output
    );
    let (status, reply) = app
        .post_json(
            "/api/installer",
            None,
            json!({"token": "", "email": "x@example.com", "password": "long-enough-1", "passwordConfirm": "long-enough-1"}),
        )
        .await;
    assert_error(
        status,
        &reply,
        403,
        "The installer link is invalid or was already used.",
    );
}

#[tokio::test]
async fn check_rule_marks_errors_in_utf16_offsets_against_an_unsaved_draft() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let check = |collection: Value, rule: &str| json!({"collection": collection, "rule": rule});
    // An unsaved collection with a field that exists only in the draft.
    let draft = json!({
        "name": "drafts",
        "type": "base",
        "fields": [{"name": "title", "type": "text"}, {"name": "score", "type": "number"}]
    });
    let (status, ok) = app
        .post_json(
            "/api/collections/meta/check-rule",
            Some(&token),
            check(draft.clone(), "title ~ 'a' && score > 2"),
        )
        .await;
    assert_eq!((status, &ok), (200, &json!({"ok": true})));
    let (_, empty) = app
        .post_json(
            "/api/collections/meta/check-rule",
            Some(&token),
            check(draft.clone(), ""),
        )
        .await;
    assert_eq!(empty, json!({"ok": true}));

    // "é" is one UTF-16 unit but two bytes: the span must count units.
    let rule = "title = 'é' && nope = 1";
    let (_, bad) = app
        .post_json(
            "/api/collections/meta/check-rule",
            Some(&token),
            check(draft.clone(), rule),
        )
        .await;
    assert_eq!(bad["ok"], false, "{bad}");
    let start = bad["start"].as_u64().expect("start") as usize;
    let end = bad["end"].as_u64().expect("end") as usize;
    let units: Vec<u16> = rule.encode_utf16().collect();
    assert_eq!(
        String::from_utf16_lossy(&units[start..end]),
        "nope",
        "{bad}"
    );
    assert!(
        bad["message"].as_str().unwrap_or("").contains("nope"),
        "{bad}"
    );

    // A syntax error has a place too.
    let (_, syntax) = app
        .post_json(
            "/api/collections/meta/check-rule",
            Some(&token),
            check(draft.clone(), "title = "),
        )
        .await;
    assert_eq!(syntax["ok"], false, "{syntax}");

    // An existing collection is read as an update: its stored fields count, and so do the
    // draft's renames.
    let (_, users) = app.get("/api/collections/users", Some(&token)).await;
    let (_, stored) = app
        .post_json(
            "/api/collections/meta/check-rule",
            Some(&token),
            check(
                json!({"id": users["id"], "name": "users"}),
                "@request.auth.id = id && verified = true",
            ),
        )
        .await;
    assert_eq!(stored, json!({"ok": true}));

    // Superusers only.
    let (status, reply) = app
        .post_json(
            "/api/collections/meta/check-rule",
            None,
            check(draft, "title = 1"),
        )
        .await;
    assert_eq!(status, 401, "{reply}");
}
