//! In-process tests of what the HTTP tests cannot see: the stored hash after a login, login
//! cost, the sweep of expired one-time codes and MFA sessions, and what OTP requests and
//! checks wait on (the hasher, locks).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::Store;
use serde_json::json;
use store_sqlite::SqliteStore;
use tower::ServiceExt;

use crate::state::{AppState, ServerConfig};

#[tokio::test]
async fn bcrypt_hashes_are_replaced_by_argon2id_on_login() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        SqliteStore::open(dir.path(), Default::default()).expect("store opens");
    let admin = crate::superusers::create(store.as_ref(), "admin@example.com", "Passw0rd!123", 4)
        .await
        .expect("superuser");
    // Give it a bcrypt hash, as a database imported from PocketBase has.
    let bcrypt_hash = super::password::hash("Passw0rd!123".into(), 4)
        .await
        .expect("bcrypt");
    let superusers = store
        .schema()
        .get("_superusers")
        .cloned()
        .expect("collection");
    let apply: domain::UpdateFn = Box::new(move |current| {
        let mut data = current.data.clone();
        data.insert(
            "password".into(),
            serde_json::Value::String(bcrypt_hash.clone()),
        );
        Ok(data)
    });
    store
        .write(vec![domain::WriteOp::Update {
            collection: superusers,
            id: admin.id().to_owned(),
            guard: None,
            apply,
            known: None,
        }])
        .await
        .expect("bcrypt hash stored");
    let config = ServerConfig {
        bcrypt_cost: 4,
        argon2: crate::state::Argon2Params::for_bcrypt_cost(4),
        ..ServerConfig::default()
    };
    let router = crate::router(AppState::new(store.clone(), config));
    let login = |password: &str| {
        Request::post("/api/collections/_superusers/auth-with-password")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"identity": "admin@example.com", "password": password}).to_string(),
            ))
            .expect("request")
    };
    let collection = store
        .schema()
        .get("_superusers")
        .cloned()
        .expect("collection");
    let stored = |store: Arc<dyn Store>, collection, id: String| async move {
        store
            .get_record(collection, &id, Vec::new())
            .await
            .expect("reads")
            .expect("exists")
    };
    let wrong = router
        .clone()
        .oneshot(login("wrong-pass"))
        .await
        .expect("answers");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let after_wrong = stored(store.clone(), collection.clone(), admin.id().to_owned()).await;
    assert!(
        after_wrong.text("password").starts_with("$2"),
        "no rehash on failure"
    );
    for _ in 0..2 {
        let ok = router
            .clone()
            .oneshot(login("Passw0rd!123"))
            .await
            .expect("answers");
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let after = stored(store.clone(), collection, admin.id().to_owned()).await;
    assert!(
        after.text("password").starts_with("$argon2id$"),
        "{}",
        after.text("password")
    );
    assert_eq!(
        after.text("tokenKey"),
        admin.text("tokenKey"),
        "sessions survive a rehash"
    );
}

#[tokio::test]
async fn unknown_identities_cost_the_same_as_wrong_passwords() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        SqliteStore::open(dir.path(), Default::default()).expect("store opens");
    // Production parameters: the point is that both failures spend one real argon2id check
    // with the same cost. Counted, not timed: a timing comparison flaked on a busy machine.
    let state = AppState::new(store.clone(), ServerConfig::default());
    let router = crate::router(state.clone());
    let post = |uri: &str, body: serde_json::Value| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let created = router
        .clone()
        .oneshot(post(
            "/api/collections/users/records",
            json!({"email": "tim@example.com", "password": "timpass123", "passwordConfirm": "timpass123"}),
        ))
        .await
        .expect("answers");
    assert_eq!(created.status(), StatusCode::OK);
    let users = store.schema().get("users").cloned().expect("users");
    let tim = store
        .find_by_field(users, "email", "tim@example.com")
        .await
        .expect("reads")
        .expect("tim exists");
    let tim_hash = tim
        .data
        .get("password")
        .and_then(serde_json::Value::as_str)
        .expect("stored hash")
        .to_owned();
    let dummy = super::dummy_hash(&state).await;
    // The same algorithm and cost: the parameter section of the PHC strings is equal.
    let params = |hash: &str| hash.split('$').take(4).collect::<Vec<_>>().join("$");
    assert!(tim_hash.starts_with("$argon2id$"), "{tim_hash}");
    assert_eq!(params(&tim_hash), params(&dummy));
    let checks = |hash: &str| {
        super::password::CHECKS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(hash)
            .copied()
            .unwrap_or(0)
    };
    let dummy_before = checks(&dummy);
    // Ten attempts per identity: the lockout answers the eleventh failure without a check.
    let attempts = crate::state::lockouts::MAX_FAILED_LOGINS;
    for round in 0..2 * attempts {
        let identity = if round % 2 == 0 {
            "tim@example.com"
        } else {
            "nobody@example.com"
        };
        let response = router
            .clone()
            .oneshot(post(
                "/api/collections/users/auth-with-password",
                json!({"identity": identity, "password": "wrong-pass"}),
            ))
            .await
            .expect("answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    // Every failure ran one check: against tim's hash, or against the dummy for the unknown
    // identity (other tests in this process may check the dummy too, never fewer times).
    assert_eq!(checks(&tim_hash), attempts);
    assert!(checks(&dummy) >= dummy_before + attempts);
}

#[tokio::test]
async fn the_sweep_removes_expired_otps_and_mfa_sessions_only() {
    use domain::collection::{MFAS_ID, OTPS_ID};
    use serde_json::Value;

    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        SqliteStore::open(dir.path(), Default::default()).expect("store opens");
    let state = AppState::new(store.clone(), ServerConfig::default());
    let users = store.schema().get("users").cloned().expect("users");
    let auth = users.auth.as_ref().expect("auth options");
    let (otp_duration, mfa_duration) = (auth.otp.duration as i64, auth.mfa.duration as i64);
    assert!(
        otp_duration < mfa_duration,
        "the test relies on the defaults"
    );
    let ago = |seconds: i64| {
        Value::String(domain::time::format(
            chrono::Utc::now() - chrono::Duration::seconds(seconds),
        ))
    };
    let row = |system: &'static str, collection: &str, created: Value| {
        let state = state.clone();
        let collection = collection.to_owned();
        // Backdated rows no save makes (autodates are the store's to set): written raw.
        async move {
            let system = super::bookkeeping::collection(&state, system).expect("system");
            let mut data = domain::values::blank_record(&system);
            let id = domain::ids::new_record_id();
            data.insert("id".into(), Value::String(id.clone()));
            data.insert("collectionRef".into(), Value::String(collection));
            data.insert("recordRef".into(), Value::String("r1".into()));
            data.insert("created".into(), created);
            state
                .store
                .write(vec![domain::WriteOp::Create {
                    collection: system,
                    data,
                    guard: None,
                }])
                .await
                .expect("row stored");
            id
        }
    };
    let fresh_otp = row(OTPS_ID, &users.id, ago(otp_duration - 30)).await;
    let old_otp = row(OTPS_ID, &users.id, ago(otp_duration + 30)).await;
    // Older than the OTP duration but within the MFA one: an MFA session still alive.
    let live_mfa = row(MFAS_ID, &users.id, ago(otp_duration + 30)).await;
    let old_mfa = row(MFAS_ID, &users.id, ago(mfa_duration + 30)).await;
    let orphan = row(OTPS_ID, "deleted_collection", ago(0)).await;

    let removed = super::otp::sweep_expired(&state).await.expect("sweeps");
    assert_eq!(removed, 3);
    for (system, id, kept) in [
        (OTPS_ID, &fresh_otp, true),
        (OTPS_ID, &old_otp, false),
        (MFAS_ID, &live_mfa, true),
        (MFAS_ID, &old_mfa, false),
        (OTPS_ID, &orphan, false),
    ] {
        let found = super::bookkeeping::get(&state, system, id)
            .await
            .expect("reads");
        assert_eq!(found.is_some(), kept, "{system} {id}");
    }
    assert_eq!(
        super::otp::sweep_expired(&state).await.expect("sweeps"),
        0,
        "nothing left to remove"
    );
}

/// A server with a superuser (its token returned), OTP on for `users` and one user
/// `otto@example.com`; `state` is kept so tests can reach its locks.
async fn otp_server() -> (
    tempfile::TempDir,
    crate::state::SharedState,
    axum::Router,
    String,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        SqliteStore::open(dir.path(), Default::default()).expect("store opens");
    let admin = crate::superusers::create(store.as_ref(), "admin@example.com", "Passw0rd!123", 4)
        .await
        .expect("superuser");
    let superusers = store
        .schema()
        .get("_superusers")
        .cloned()
        .expect("collection");
    let admin_token = super::token::auth_token(&superusers, &admin).expect("token");
    let config = ServerConfig {
        bcrypt_cost: 4,
        argon2: crate::state::Argon2Params::for_bcrypt_cost(4),
        ..ServerConfig::default()
    };
    let state = AppState::new(store, config);
    let router = crate::router(state.clone());
    let (status, _) = call(
        &router,
        Request::patch("/api/collections/users")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, &admin_token)
            .body(Body::from(
                json!({"otp": {"enabled": true, "length": 8}}).to_string(),
            ))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &router,
        post(
            "/api/collections/users/records",
            json!({"email": "otto@example.com", "password": "ottopass1", "passwordConfirm": "ottopass1"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    (dir, state, router, admin_token)
}

fn post(uri: &str, body: serde_json::Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = router.clone().oneshot(request).await.expect("answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Stores an OTP row for otto with a known code, as `request-otp` would.
async fn store_otp(state: &crate::state::SharedState, code: &str) -> String {
    use domain::collection::OTPS_ID;
    use serde_json::Value;
    let users = state.schema().get("users").cloned().expect("users");
    let otto = super::find_by_field(state, &users, "email", "otto@example.com")
        .await
        .expect("reads")
        .expect("otto");
    super::bookkeeping::insert(
        state,
        OTPS_ID,
        None,
        vec![
            ("collectionRef", Value::String(users.id.clone())),
            ("recordRef", Value::String(otto.id().to_owned())),
            // Hashed on the way in.
            ("password", Value::String(code.into())),
            ("sentTo", Value::String("otto@example.com".into())),
        ],
    )
    .await
    .expect("row")
    .id()
    .to_owned()
}

/// Issue #11 (10): `request-otp` answers before any hashing, for a known email as for an
/// unknown one: with every hashing permit held, both still answer, and the known email's
/// code is stored once hashing can run again (the unknown one's never is).
#[tokio::test]
async fn request_otp_answers_before_hashing_whether_or_not_the_email_exists() {
    use domain::collection::OTPS_ID;
    let (_dir, state, router, _) = otp_server().await;
    let held = super::password::hold_all_hashing().await;
    let mut ids = Vec::new();
    for email in ["otto@example.com", "nobody@example.com"] {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            call(
                &router,
                post(
                    "/api/collections/users/request-otp",
                    json!({"email": email}),
                ),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{email}: request-otp waited for the hasher"));
        assert_eq!(answer.0, StatusCode::OK, "{email}: {}", answer.1);
        ids.push(answer.1["otpId"].as_str().expect("otpId").to_owned());
    }
    drop(held);
    let mut stored = None;
    for _ in 0..200 {
        stored = super::bookkeeping::get(&state, OTPS_ID, &ids[0])
            .await
            .expect("reads");
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(stored.is_some(), "the known email's code is stored");
    assert!(
        super::bookkeeping::get(&state, OTPS_ID, &ids[1])
            .await
            .expect("reads")
            .is_none()
    );
}

/// The background deliveries are bounded: while hashing is stalled, the first
/// `MAX_PENDING_OTPS` requests are accepted and the next answers PocketBase's 429, for an
/// unknown email as for a known one; once hashing runs again, requests are accepted again.
#[tokio::test]
async fn pending_otp_deliveries_are_bounded_for_every_email_alike() {
    let (_dir, _state, router, _) = otp_server().await;
    let held = super::password::hold_all_hashing().await;
    for i in 0..crate::state::otp::MAX_PENDING_OTPS {
        let email = "otto@example.com";
        let (status, body) = call(
            &router,
            post(
                "/api/collections/users/request-otp",
                json!({"email": email}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{i}: {body}");
    }
    for email in ["otto@example.com", "nobody@example.com"] {
        let (status, body) = call(
            &router,
            post(
                "/api/collections/users/request-otp",
                json!({"email": email}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{email}: {body}");
        assert_eq!(body["message"], "Too Many Requests.");
    }
    drop(held);
    let mut status = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..200 {
        (status, _) = call(
            &router,
            post(
                "/api/collections/users/request-otp",
                json!({"email": "otto@example.com"}),
            ),
        )
        .await;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "accepted again once deliveries drain"
    );
}

/// Issue #11 (15a): checking a code takes no lock shared with other codes (the old global
/// lock is held here by the test, as a slow check of someone else's code would hold it).
#[tokio::test]
async fn an_otp_check_waits_on_no_lock_shared_with_other_codes() {
    let (_dir, state, router, _) = otp_server().await;
    let otp_id = store_otp(&state, "12345678").await;
    let _global = state.auth_lock.lock().await;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        call(
            &router,
            post(
                "/api/collections/users/auth-with-otp",
                json!({"otpId": otp_id, "password": "12345678"}),
            ),
        ),
    )
    .await
    .expect("the check did not wait on the global lock");
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
}

/// Concurrent wrong guesses at one code are counted exactly: the code is dropped after the
/// fifth, and the per-code lock is forgotten with it.
#[tokio::test]
async fn concurrent_wrong_guesses_drop_the_code_after_exactly_five() {
    let (_dir, state, router, _) = otp_server().await;
    let otp_id = store_otp(&state, "12345678").await;
    let guesses = (0..4).map(|_| {
        call(
            &router,
            post(
                "/api/collections/users/auth-with-otp",
                json!({"otpId": otp_id, "password": "00000000"}),
            ),
        )
    });
    for (status, _) in join_all(guesses).await {
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // Four wrong guesses leave the code usable.
    assert!(
        super::bookkeeping::get(&state, domain::collection::OTPS_ID, &otp_id)
            .await
            .expect("reads")
            .is_some()
    );
    let guesses = (0..6).map(|_| {
        call(
            &router,
            post(
                "/api/collections/users/auth-with-otp",
                json!({"otpId": otp_id, "password": "00000000"}),
            ),
        )
    });
    for (status, _) in join_all(guesses).await {
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (status, body) = call(
        &router,
        post(
            "/api/collections/users/auth-with-otp",
            json!({"otpId": otp_id, "password": "12345678"}),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "dropped after five: {body}"
    );
    assert_eq!(state.otp_guards.slot_count(), 0);
}

/// Polls the futures together (the tests' stand-in for `futures::join_all`).
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (index, future) in futures.iter_mut().enumerate() {
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

/// Issue #11 follow-up: the lockout reserves an attempt before the slow password check, so
/// a concurrent burst of 30 wrong guesses at one identity runs at most the limit's worth of
/// password checks (each answered 400 after its check); the rest answer 429 without one.
#[tokio::test]
async fn a_concurrent_guess_burst_runs_at_most_the_limit_of_password_checks() {
    let (_dir, _state, router, _) = otp_server().await;
    let guesses = (0..30).map(|i| {
        call(
            &router,
            post(
                "/api/collections/_superusers/auth-with-password",
                json!({"identity": "admin@example.com", "password": format!("guess-{i}")}),
            ),
        )
    });
    let answers = join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::BAD_REQUEST && body["message"] == "Failed to authenticate."
        })
        .count();
    let refused = answers
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::TOO_MANY_REQUESTS && body["message"] == "Too Many Requests."
        })
        .count();
    assert_eq!(
        checked,
        crate::state::lockouts::MAX_FAILED_LOGINS,
        "{answers:?}"
    );
    assert_eq!(
        refused,
        30 - crate::state::lockouts::MAX_FAILED_LOGINS,
        "{answers:?}"
    );
    // Nothing is left in flight: the identity stays locked by its ten failures alone.
    let (status, _) = call(
        &router,
        post(
            "/api/collections/_superusers/auth-with-password",
            json!({"identity": "admin@example.com", "password": "Passw0rd!123"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// `request-otp` from a client address, as the server sees it behind its listener.
fn request_otp_from(ip: &str, email: &str) -> Request<Body> {
    let mut request = post(
        "/api/collections/users/request-otp",
        json!({"email": email}),
    );
    let peer: std::net::SocketAddr = format!("{ip}:40000").parse().expect("address");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    request
}

/// Issue #11 follow-up: an unknown email costs no background work (no hash, no place among
/// the pending deliveries): with hashing stalled, more requests for unknown emails than
/// there are places are all answered, and none is left pending.
#[tokio::test]
async fn request_otp_does_no_work_for_unknown_emails() {
    let (_dir, state, router, _) = otp_server().await;
    let held = super::password::hold_all_hashing().await;
    for i in 0..crate::state::otp::MAX_PENDING_OTPS + 5 {
        let (status, body) = call(
            &router,
            post(
                "/api/collections/users/request-otp",
                json!({"email": format!("nobody{i}@example.com")}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{i}: {body}");
    }
    assert_eq!(state.otp_guards.pending_deliveries(), 0);
    drop(held);
}

/// Issue #11 follow-up: one address cannot fill the pending deliveries for everyone. With
/// hashing stalled, an address gets `MAX_PENDING_OTPS_PER_ADDRESS` places, then 429 (for an
/// unknown email alike), while another address is still served.
#[tokio::test]
async fn pending_otp_deliveries_are_bounded_per_address() {
    let (_dir, _state, router, _) = otp_server().await;
    let held = super::password::hold_all_hashing().await;
    for i in 0..crate::state::otp::MAX_PENDING_OTPS_PER_ADDRESS {
        let (status, body) =
            call(&router, request_otp_from("192.0.2.10", "otto@example.com")).await;
        assert_eq!(status, StatusCode::OK, "{i}: {body}");
    }
    for email in ["otto@example.com", "nobody@example.com"] {
        let (status, body) = call(&router, request_otp_from("192.0.2.10", email)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{email}: {body}");
        assert_eq!(body["message"], "Too Many Requests.");
    }
    let (status, body) = call(&router, request_otp_from("192.0.2.11", "otto@example.com")).await;
    assert_eq!(status, StatusCode::OK, "another address: {body}");
    drop(held);
}

/// `mfaId` as PocketBase reads it: the query string first, then the body, where a value that
/// is not text (or null) cannot be read (`None`), which only matters once MFA asks for it.
#[test]
fn mfa_id_reads_the_query_then_the_body() {
    let body = |value: serde_json::Value| match json!({"mfaId": value}) {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object"),
    };
    let query = vec![("mfaId".to_owned(), "fromquery".to_owned())];
    assert_eq!(super::mfa_id(&body(json!("x")), &[]), Some("x".to_owned()));
    assert_eq!(super::mfa_id(&body(json!(null)), &[]), Some(String::new()));
    assert_eq!(
        super::mfa_id(&serde_json::Map::new(), &[]),
        Some(String::new())
    );
    for wrong in [json!(5), json!(["a"]), json!({}), json!(true)] {
        assert_eq!(super::mfa_id(&body(wrong), &[]), None);
    }
    assert_eq!(
        super::mfa_id(&body(json!(5)), &query),
        Some("fromquery".to_owned()),
        "the query's comes first"
    );
    let empty = vec![("mfaId".to_owned(), String::new())];
    assert_eq!(
        super::mfa_id(&body(json!("x")), &empty),
        Some("x".to_owned())
    );
}
