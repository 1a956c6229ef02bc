//! Sign-in abuse (issue #11 items 9, 10, 14, 15): password guessing through a reverse proxy
//! on the same host (every client is loopback), floods of OTP guesses and requests, and
//! overlong credentials. Each test asserts the answers in PocketBase's shape and that the
//! server still serves.

use serde_json::{Value, json};

use super::{NORMAL_TIMEOUT, assert_serving, spawn_capped, spawn_capped_with};
use crate::smtp_sink::SmtpSink;
use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, Launch, TestApp, assert_error};

const USERS: &str = "/api/collections/users";

/// A password sign-in as a local reverse proxy forwards it (`X-Forwarded-For` from loopback).
async fn proxied_login(
    app: &TestApp,
    client_ip: &str,
    identity: &str,
    password: &str,
) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/api/collections/_superusers/auth-with-password"))
        .header("X-Forwarded-For", client_ip)
        .json(&json!({"identity": identity, "password": password}))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Behind nginx on the same host every client is 127.0.0.1, which the default `excludedIPs`
/// exempt. Without a configured `trustedProxy` no forwarding header can be believed (a proxy
/// that sets only `X-Real-IP` passes the client's own `X-Forwarded-For` through), so rotating
/// it buys no fresh bucket: every proxied client shares the loopback peer's. And once a proxy
/// has been seen, leaving the header out (a bare `proxy_pass`) does not regain the loopback
/// exemption either.
#[tokio::test]
async fn login_flood_through_a_local_proxy_is_rate_limited() {
    let mut app = spawn_capped().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        // A new address and a new identity each time: neither a fresh bucket nor the
        // per-identity lockout may be what answers.
        let (status, body) = proxied_login(
            &app,
            &format!("198.51.100.{i}"),
            &format!("guess{i}@example.com"),
            "wrong-pass",
        )
        .await;
        if status == 429 {
            assert_error(status, &body, 429, "Too Many Requests.");
        } else {
            assert_error(status, &body, 400, "Failed to authenticate.");
        }
        statuses.push(status);
    }
    assert!(statuses[..10].iter().all(|s| *s == 400), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Without the header the same requests are no longer exempt: they share the bucket.
    for i in 0..3 {
        let (status, body) = app
            .post_json(
                "/api/collections/_superusers/auth-with-password",
                None,
                json!({"identity": format!("local{i}@example.com"), "password": "x"}),
            )
            .await;
        assert_error(status, &body, 429, "Too Many Requests.");
    }
    assert_serving(&mut app, "after a proxied login flood").await;
}

/// Names `X-Forwarded-For` as the trusted proxy header, as an operator behind nginx does.
async fn trust_forwarded_for(app: &TestApp) {
    let admin = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"trustedProxy": {"headers": ["X-Forwarded-For"], "useLeftmostIP": false}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Guessing one account's password from ever new addresses (a botnet) still meets the
/// per-identity ceiling: after 100 failures even the right password, from yet another
/// address, answers 429, and other accounts are unaffected.
#[tokio::test]
async fn password_guessing_from_many_addresses_locks_the_identity() {
    let mut app = spawn_capped().await;
    trust_forwarded_for(&app).await;
    for i in 0..100 {
        let (status, body) =
            proxied_login(&app, &format!("203.0.113.{i}"), ADMIN_EMAIL, "guess-pass").await;
        assert_error(status, &body, 400, "Failed to authenticate.");
    }
    let (status, body) = proxied_login(&app, "203.0.113.200", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_error(status, &body, 429, "Too Many Requests.");
    let (status, body) = proxied_login(&app, "203.0.113.201", "other@example.com", "x").await;
    assert_error(status, &body, 400, "Failed to authenticate.");
    assert_serving(&mut app, "after password guessing").await;
}

/// One address guessing a superuser's password locks only itself out: the owner, from
/// another address, still signs in (below the identity-wide ceiling).
#[tokio::test]
async fn a_lockout_from_one_address_leaves_the_owner_signing_in_from_another() {
    let mut app = spawn_capped().await;
    trust_forwarded_for(&app).await;
    for _ in 0..10 {
        let (status, body) = proxied_login(&app, "198.51.100.66", ADMIN_EMAIL, "guess").await;
        assert_error(status, &body, 400, "Failed to authenticate.");
    }
    let (status, body) = proxied_login(&app, "198.51.100.66", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_error(status, &body, 429, "Too Many Requests.");
    let (status, body) = proxied_login(&app, "198.51.100.1", ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "the owner is not locked out: {body}");
    assert_serving(&mut app, "after one address's lockout").await;
}

/// Sign-in rules whose SQL the query timeout interrupts fail closed: a heavy MFA rule still
/// demands the second factor (so flooding the query lane cannot skip MFA for someone who
/// knows the password), and a heavy `authRule` refuses the sign-in.
#[tokio::test(flavor = "multi_thread")]
async fn sign_in_rules_not_decided_in_time_fail_closed() {
    let mut app = spawn_capped_with(Launch {
        args: vec!["--queryTimeout=1".into()],
        ..Launch::default()
    })
    .await;
    let admin = app.admin_token().await;
    super::store::self_related_nodes(&app, &admin).await;
    // Holds for every user once every row was visited, which the 1 ms timeout never allows.
    let heavy_rule = "@collection.nodes.links.links.links.label !~ 'zz'";
    let (status, body) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"otp": {"enabled": true}, "mfa": {"enabled": true, "rule": heavy_rule}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/records"),
            None,
            json!({"email": "mfa@example.com", "password": "secret123", "passwordConfirm": "secret123"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let login = json!({"identity": "mfa@example.com", "password": "secret123"});
    let (status, body) = app
        .post_json(&format!("{USERS}/auth-with-password"), None, login.clone())
        .await;
    assert_eq!(status, 401, "the second factor is demanded: {body}");
    assert!(
        body["mfaId"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert!(body.get("token").is_none(), "{body}");

    let (status, body) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"mfa": {"enabled": false}, "authRule": heavy_rule}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(&format!("{USERS}/auth-with-password"), None, login)
        .await;
    assert_error(
        status,
        &body,
        403,
        "The request doesn't satisfy the collection requirements to authenticate.",
    );
    assert_serving(&mut app, "after sign-in rules timed out").await;
}

/// Credentials far past PocketBase's 255 characters are refused before any hashing.
#[tokio::test]
async fn megabyte_credentials_are_refused() {
    let mut app = spawn_capped().await;
    let huge = "p".repeat(1 << 20);
    for (identity, password, field) in [
        (huge.as_str(), "x", "identity"),
        (ADMIN_EMAIL, huge.as_str(), "password"),
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
        assert_eq!(data[field]["code"], "validation_length_out_of_range");
    }
    let admin = app.admin_token().await;
    let (status, body) = app
        .patch_json(USERS, Some(&admin), json!({"otp": {"enabled": true}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post_json(
            &format!("{USERS}/auth-with-otp"),
            None,
            json!({"otpId": "abcdefghijklmno", "password": huge}),
        )
        .await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(data["password"]["params"], json!({"max": 71, "min": 1}));
    assert_serving(&mut app, "after megabyte credentials").await;
}

/// A server with mail going to a sink, OTP on for `users`, and two users.
async fn otp_app() -> (TestApp, SmtpSink) {
    let app = spawn_capped().await;
    let sink = SmtpSink::start();
    let admin = app.admin_token().await;
    let (status, body) = app
        .patch_json(
            "/api/settings",
            Some(&admin),
            json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .patch_json(
            USERS,
            Some(&admin),
            json!({"otp": {"enabled": true, "length": 8, "duration": 300}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for email in ["target@example.com", "bystander@example.com"] {
        let (status, body) = app
            .post_json(
                &format!("{USERS}/records"),
                None,
                json!({"email": email, "password": "userpass123", "passwordConfirm": "userpass123"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    (app, sink)
}

async fn request_otp(app: &TestApp, email: &str) -> (u16, Value) {
    app.post_json(
        &format!("{USERS}/request-otp"),
        None,
        json!({"email": email}),
    )
    .await
}

async fn auth_with_otp(app: &TestApp, otp_id: &str, code: &str) -> (u16, Value) {
    app.post_json(
        &format!("{USERS}/auth-with-otp"),
        None,
        json!({"otpId": otp_id, "password": code}),
    )
    .await
}

/// Forty concurrent wrong guesses at one code: every one is refused, the code is dropped
/// after exactly five (so the right code fails afterwards), and another user's OTP sign-in
/// is served while the flood runs (guesses at one code queue only behind each other).
#[tokio::test]
async fn a_flood_of_guesses_at_one_code_leaves_other_codes_alone() {
    let (mut app, sink) = otp_app().await;
    let (_, body) = request_otp(&app, "target@example.com").await;
    let target_id = body["otpId"].as_str().expect("otpId").to_owned();
    let target_code = sink.wait_for("target@example.com", 0).await.code(8);
    let (_, body) = request_otp(&app, "bystander@example.com").await;
    let bystander_id = body["otpId"].as_str().expect("otpId").to_owned();
    let bystander_code = sink.wait_for("bystander@example.com", 0).await.code(8);
    let wrong = if target_code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };

    let guesses = (0..40).map(|_| auth_with_otp(&app, &target_id, wrong));
    let bystander = async {
        let response = app
            .client
            .post(app.url(&format!("{USERS}/auth-with-otp")))
            .timeout(NORMAL_TIMEOUT)
            .json(&json!({"otpId": bystander_id, "password": bystander_code}))
            .send()
            .await
            .expect("the bystander's sign-in is served during the flood");
        response.status().as_u16()
    };
    let (results, bystander_status) = tokio::join!(futures_join_all(guesses), bystander);
    assert_eq!(bystander_status, 200);
    for (status, body) in &results {
        assert_error(*status, body, 400, "Invalid or expired OTP.");
    }
    let (status, body) = auth_with_otp(&app, &target_id, &target_code).await;
    assert_error(status, &body, 400, "Invalid or expired OTP.");
    assert_serving(&mut app, "after an OTP guess flood").await;
}

/// Concurrent submissions of one right code: exactly one signs in.
#[tokio::test]
async fn one_code_signs_in_once_under_concurrency() {
    let (mut app, sink) = otp_app().await;
    let (_, body) = request_otp(&app, "target@example.com").await;
    let otp_id = body["otpId"].as_str().expect("otpId").to_owned();
    let code = sink.wait_for("target@example.com", 0).await.code(8);
    let results = futures_join_all((0..8).map(|_| auth_with_otp(&app, &otp_id, &code))).await;
    let ok = results.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(ok, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(status, _)| *status != 200) {
        assert_error(*status, body, 400, "Invalid or expired OTP.");
    }
    assert_serving(&mut app, "after concurrent OTP submissions").await;
}

/// A burst of OTP requests for known and unknown addresses: every one answers 200 with an
/// id (or PocketBase's 429 once too many deliveries are pending, for both kinds alike), and
/// mail goes only to the known address.
#[tokio::test]
async fn an_otp_request_burst_answers_alike_for_known_and_unknown_emails() {
    let (mut app, sink) = otp_app().await;
    let requests = (0..60).map(|i| {
        let email = if i % 2 == 0 {
            "target@example.com".to_owned()
        } else {
            format!("nobody{i}@example.com")
        };
        let app = &app;
        async move { request_otp(app, &email).await }
    });
    let results = futures_join_all(requests).await;
    for (status, body) in &results {
        if *status == 429 {
            assert_error(*status, body, 429, "Too Many Requests.");
        } else {
            assert_eq!(*status, 200, "{body}");
            assert_eq!(body["otpId"].as_str().map(str::len), Some(15), "{body}");
        }
    }
    sink.wait_for("target@example.com", 0).await;
    assert_eq!(sink.count_to("nobody1@example.com"), 0);
    assert_serving(&mut app, "after an OTP request burst").await;
}

/// `request-otp` has its own default rate-limit rule (PocketBase's `*:auth` does not cover
/// it): a flood from one client answers 429 after the burst of 10, for unknown emails too,
/// while another client is still served.
#[tokio::test]
async fn request_otp_floods_meet_their_own_rate_limit() {
    let (mut app, _sink) = otp_app().await;
    trust_forwarded_for(&app).await;
    let from = |ip: &'static str, i: usize| {
        app.client
            .post(app.url(&format!("{USERS}/request-otp")))
            .header("X-Forwarded-For", ip)
            .json(&json!({"email": format!("nobody{i}@example.com")}))
            .send()
    };
    let mut statuses = Vec::new();
    for i in 0..12 {
        let response = from("203.0.113.50", i).await.expect("sent");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        if status == 429 {
            assert_error(status, &body, 429, "Too Many Requests.");
        }
        statuses.push(status);
    }
    assert!(statuses[..10].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    let response = from("203.0.113.51", 99).await.expect("sent");
    assert_eq!(response.status().as_u16(), 200, "another client");
    assert_serving(&mut app, "after a request-otp flood").await;
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (index, future) in pinned.iter_mut().enumerate() {
            if done[index].is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => done[index] = Some(output),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}
