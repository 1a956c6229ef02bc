//! In-process tests of what the HTTP tests cannot see: the stored hash after a login, login
//! timing, and the sweep of expired one-time codes and MFA sessions.

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
        data.insert("password".into(), serde_json::Value::String(bcrypt_hash));
        Ok(data)
    });
    store
        .write(vec![domain::WriteOp::Update {
            collection: superusers,
            id: admin.id().to_owned(),
            guard: None,
            apply,
        }])
        .await
        .expect("bcrypt hash stored");
    let config = ServerConfig {
        bcrypt_cost: 4,
        argon2: super::password::Argon2Params::for_bcrypt_cost(4),
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
    // Production parameters: the point is that both failures spend one real argon2id check.
    let router = crate::router(AppState::new(store.clone(), ServerConfig::default()));
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
    let mut timings = [Vec::new(), Vec::new()];
    for round in 0..22 {
        let identity = if round % 2 == 0 {
            "tim@example.com"
        } else {
            "nobody@example.com"
        };
        let start = std::time::Instant::now();
        let response = router
            .clone()
            .oneshot(post(
                "/api/collections/users/auth-with-password",
                json!({"identity": identity, "password": "wrong-pass"}),
            ))
            .await
            .expect("answers");
        let elapsed = start.elapsed();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        // The first of each kind warms up (the dummy hash is made on first use).
        if round >= 2 {
            timings[round % 2].push(elapsed);
        }
    }
    // The fastest run of each kind is its real cost; slower ones only measure contention
    // from other tests sharing the machine.
    let fastest = |values: &[std::time::Duration]| values.iter().min().copied().unwrap_or_default();
    let known = fastest(&timings[0]);
    let unknown = fastest(&timings[1]);
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (0.6..1.67).contains(&ratio),
        "wrong password {known:?} vs unknown identity {unknown:?}"
    );
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
        async move {
            super::bookkeeping::insert(
                &state,
                system,
                None,
                vec![
                    ("collectionRef", Value::String(collection)),
                    ("recordRef", Value::String("r1".into())),
                    ("created", created),
                ],
            )
            .await
            .expect("row stored")
            .id()
            .to_owned()
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
