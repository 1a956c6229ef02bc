//! Tests of the cron registry, the scheduler (on a fake clock) and the crons API over a real
//! SQLite store, against what PocketBase 0.40.6 answered.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::Store;
use futures_util::FutureExt as _;
use serde_json::{Value, json};
use store_sqlite::SqliteStore;
use tempfile::TempDir;
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::state::crons::{Crons, Job, Run, UnknownJob};
use crate::state::{AppState, ServerConfig, SharedState};

/// A job counting its runs.
fn counting(count: &Arc<AtomicUsize>) -> Job {
    let count = count.clone();
    Arc::new(move || {
        count.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }.boxed()
    })
}

fn noop() -> Job {
    Arc::new(|| async { Ok(()) }.boxed())
}

/// Waits (a bounded time) until `check` holds.
async fn eventually(check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in time");
}

fn ids(crons: &Crons) -> Vec<String> {
    crons.list().into_iter().map(|job| job.id).collect()
}

#[test]
fn listing_sorts_user_jobs_and_keeps_system_jobs_last_in_registration_order() {
    let crons = Crons::default();
    for id in ["__pbDBOptimize__", "__pbMFACleanup__", "__pbOTPCleanup__"] {
        crons.add(id, "0 * * * *", noop()).unwrap();
    }
    for id in ["zeta", "alpha", "Beta", "", "é", "_x", "__PBx"] {
        crons.add(id, "*/5 * * * *", noop()).unwrap();
    }
    crons.add("__pbZZ", "1 * * * *", noop()).unwrap();
    crons.add("__pbAA", "1 * * * *", noop()).unwrap();
    // Re-adding a system job moves it to the end, as on PocketBase.
    crons.add("__pbMFACleanup__", "@daily", noop()).unwrap();
    assert_eq!(
        ids(&crons),
        [
            "",
            "Beta",
            "__PBx",
            "_x",
            "alpha",
            "zeta",
            "é",
            "__pbDBOptimize__",
            "__pbOTPCleanup__",
            "__pbZZ",
            "__pbAA",
            "__pbMFACleanup__"
        ]
    );
    let replaced = crons.list().pop().unwrap();
    assert_eq!(
        replaced.expression, "0 0 * * *",
        "macros are listed expanded"
    );
}

#[test]
fn a_bad_expression_leaves_the_registry_unchanged() {
    let crons = Crons::default();
    crons.add("job", "*/5 * * * *", noop()).unwrap();
    assert!(crons.add("job", "0 0 * * 7", noop()).is_err());
    assert_eq!(crons.list()[0].expression, "*/5 * * * *");
    assert!(crons.remove("job"));
    assert!(!crons.remove("job"));
    assert!(crons.list().is_empty());
}

#[tokio::test]
async fn a_running_job_is_not_started_twice_and_a_failure_frees_it() {
    let crons = Crons::default();
    let release = Arc::new(Notify::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let job: Job = {
        let (release, runs) = (release.clone(), runs.clone());
        Arc::new(move || {
            let (release, runs) = (release.clone(), runs.clone());
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                release.notified().await;
                Err("boom".to_owned())
            }
            .boxed()
        })
    };
    crons.add("slow", "* * * * *", job).unwrap();
    assert_eq!(crons.run_now("slow"), Ok(Run::Started));
    eventually(|| runs.load(Ordering::SeqCst) == 1).await;
    assert_eq!(crons.run_now("slow"), Ok(Run::AlreadyRunning));
    assert!(
        crons.run_due(chrono::Utc::now()).is_empty(),
        "not started by the schedule either"
    );
    release.notify_one();
    // The failed run clears the flag; the next start goes through.
    eventually(|| crons.run_now("slow") == Ok(Run::Started)).await;
    eventually(|| runs.load(Ordering::SeqCst) == 2).await;
    release.notify_one();
    assert_eq!(
        crons.run_now("missing"),
        Err(UnknownJob("missing".to_owned()))
    );
}

#[tokio::test]
async fn a_panicking_job_is_caught_and_can_run_again() {
    let crons = Crons::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let job: Job = {
        let runs = runs.clone();
        Arc::new(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            async { panic!("job panics") }.boxed()
        })
    };
    crons.add("panics", "* * * * *", job).unwrap();
    assert_eq!(crons.run_now("panics"), Ok(Run::Started));
    eventually(|| crons.run_now("panics") == Ok(Run::Started)).await;
    eventually(|| runs.load(Ordering::SeqCst) == 2).await;
}

#[tokio::test]
async fn run_due_starts_only_the_jobs_due_in_that_minute() {
    let crons = Crons::default();
    let (every, even, never) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    crons.add("every", "* * * * *", counting(&every)).unwrap();
    crons.add("even", "*/2 * * * *", counting(&even)).unwrap();
    crons.add("never", "0 0 30 2 *", counting(&never)).unwrap();
    let odd_minute = "2026-12-03T10:31:59Z".parse().unwrap();
    assert_eq!(crons.run_due(odd_minute), ["every"]);
    eventually(|| every.load(Ordering::SeqCst) == 1).await;
    let even_minute = "2026-12-03T10:32:00Z".parse().unwrap();
    let mut started = crons.run_due(even_minute);
    started.sort();
    assert_eq!(started, ["even", "every"]);
    eventually(|| even.load(Ordering::SeqCst) == 1).await;
    assert_eq!(never.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_scheduler_ticks_on_minute_boundaries_until_stopped() {
    let crons = Arc::new(Crons::default());
    let (every, even) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    crons.add("every", "* * * * *", counting(&every)).unwrap();
    crons.add("even", "*/2 * * * *", counting(&even)).unwrap();
    // A wall clock running 600 times as fast as the real one (a minute every 100 ms),
    // starting mid-minute.
    const SPEED: u32 = 600;
    let base: chrono::DateTime<chrono::Utc> = "2026-12-03T10:30:30Z".parse().unwrap();
    let origin = std::time::Instant::now();
    let clock = move || base + chrono::Duration::from_std(origin.elapsed() * SPEED).unwrap();
    let fake = |seconds: u64| Duration::from_secs(seconds) / SPEED;
    let ticker = crons.start_with_clock(clock, None, SPEED);
    // 10:31:00 is the first boundary; the minute under way at start is not run.
    tokio::time::sleep(fake(20)).await;
    assert_eq!(every.load(Ordering::SeqCst), 0);
    // Wait for the boundaries at 10:31, 10:32, 10:33 and 10:34 to have fired.
    eventually(|| every.load(Ordering::SeqCst) >= 4).await;
    ticker.stop();
    let elapsed = clock_minutes(origin, SPEED);
    // Let runs started before the stop finish counting.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let at_stop = every.load(Ordering::SeqCst);
    // One run per boundary passed, no more (a boundary may be in flight at the stop).
    assert!(
        (4..=elapsed + 1).contains(&(at_stop as u64)),
        "{at_stop} runs in {elapsed} boundaries"
    );
    let evens = even.load(Ordering::SeqCst);
    assert!(
        (at_stop / 2..=at_stop.div_ceil(2)).contains(&evens),
        "{evens} even-minute runs of {at_stop}"
    );
    tokio::time::sleep(fake(5 * 60)).await;
    assert_eq!(every.load(Ordering::SeqCst), at_stop, "no tick after stop");
}

#[tokio::test]
async fn schedulers_sharing_a_store_run_each_due_job_once() {
    // Three "nodes", each with its own registry and scheduler, claiming runs in one store.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    const SPEED: u32 = 600;
    let base: chrono::DateTime<chrono::Utc> = "2026-12-03T10:30:30Z".parse().unwrap();
    let origin = std::time::Instant::now();
    let clock = move || base + chrono::Duration::from_std(origin.elapsed() * SPEED).unwrap();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let crons = Arc::new(Crons::default());
        crons.add("every", "* * * * *", counting(&runs)).unwrap();
        let ticker = crons.start_with_clock(clock, Some(Arc::clone(&store)), SPEED);
        nodes.push((crons, ticker));
    }
    // Boundaries at 10:31, 10:32 and 10:33 (100 ms apart on this clock).
    eventually(|| runs.load(Ordering::SeqCst) >= 3).await;
    for (_, ticker) in &nodes {
        ticker.stop();
    }
    let elapsed = clock_minutes(origin, SPEED);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let total = runs.load(Ordering::SeqCst) as u64;
    // Once per boundary passed across the three nodes, not three times.
    assert!(
        (3..=elapsed + 1).contains(&total),
        "{total} runs in {elapsed} boundaries on three nodes"
    );
}

/// Minute boundaries passed since 10:30:30 on the fast clock.
fn clock_minutes(origin: std::time::Instant, speed: u32) -> u64 {
    (30 + (origin.elapsed() * speed).as_secs()) / 60
}

// ---- the HTTP API ----

struct App {
    _dir: TempDir,
    router: Router,
    state: SharedState,
    superuser: String,
}

impl App {
    async fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = SqliteStore::open(dir.path(), Default::default()).unwrap();
        let admin =
            crate::superusers::create(store.as_ref(), "admin@example.com", "Passw0rd!123", 4)
                .await
                .unwrap();
        let superusers = store.schema().get("_superusers").cloned().unwrap();
        let superuser = crate::auth::token::auth_token(&superusers, &admin).unwrap();
        let config = ServerConfig {
            bcrypt_cost: 4,
            argon2: crate::state::Argon2Params::for_bcrypt_cost(4),
            ..ServerConfig::default()
        };
        let state = AppState::new(store, config);
        let router = crate::router(state.clone());
        App {
            _dir: dir,
            router,
            state,
            superuser,
        }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, token);
        }
        let body = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(builder.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A token of an ordinary `users` record.
    async fn user_token(&self) -> String {
        let password = "Passw0rd!123";
        let (status, _) = self
            .send(
                "POST",
                "/api/collections/users/records",
                None,
                Some(json!({"email": "u@example.com", "password": password, "passwordConfirm": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = self
            .send(
                "POST",
                "/api/collections/users/auth-with-password",
                None,
                Some(json!({"identity": "u@example.com", "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        body["token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn only_superusers_may_list_or_run_jobs() {
    let app = App::new().await;
    let user = app.user_token().await;
    let guest = json!({"data": {}, "message": "The request requires valid record authorization token.", "status": 401});
    let forbidden = json!({"data": {}, "message": "The authorized record is not allowed to perform this action.", "status": 403});
    for (method, uri) in [
        ("GET", "/api/crons"),
        ("POST", "/api/crons/__pbOTPCleanup__"),
        ("POST", "/api/crons/missing"),
    ] {
        let (status, body) = app.send(method, uri, None, None).await;
        assert_eq!((status, &body), (StatusCode::UNAUTHORIZED, &guest), "{uri}");
        let (status, body) = app.send(method, uri, Some("not-a-token"), None).await;
        assert_eq!((status, &body), (StatusCode::UNAUTHORIZED, &guest), "{uri}");
        let (status, body) = app.send(method, uri, Some(&user), None).await;
        assert_eq!(
            (status, &body),
            (StatusCode::FORBIDDEN, &forbidden),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn the_listing_shows_user_jobs_then_the_system_jobs() {
    let app = App::new().await;
    let su = Some(app.superuser.as_str());
    let (status, body) = app.send("GET", "/api/crons", su, None).await;
    assert_eq!(status, StatusCode::OK);
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
    app.state.crons.add("zeta", "*/5 * * * *", noop()).unwrap();
    app.state.crons.add("alpha", "@hourly", noop()).unwrap();
    let (_, body) = app.send("GET", "/api/crons", su, None).await;
    assert_eq!(
        body,
        json!([
            {"id": "alpha", "expression": "0 * * * *"},
            {"id": "zeta", "expression": "*/5 * * * *"},
            {"id": "__pbDBOptimize__", "expression": "0 0 * * *"},
            {"id": "__pbMFACleanup__", "expression": "0 * * * *"},
            {"id": "__pbOTPCleanup__", "expression": "0 * * * *"},
            {"id": "__pbLogsCleanup__", "expression": "0 */6 * * *"},
            {"id": "__plinthFilesCleanup__", "expression": "30 */6 * * *"},
        ])
    );
    let (status, body) = app.send("GET", "/api/crons?fields=id", su, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0], json!({"id": "alpha"}));
}

#[tokio::test]
async fn posting_a_job_runs_it_in_the_background_and_an_unknown_id_is_404() {
    let app = App::new().await;
    let su = Some(app.superuser.as_str());
    let runs = Arc::new(AtomicUsize::new(0));
    app.state
        .crons
        .add("a job", "0 0 1 1 *", counting(&runs))
        .unwrap();
    let (status, body) = app.send("POST", "/api/crons/a%20job", su, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    eventually(|| runs.load(Ordering::SeqCst) == 1).await;
    let (status, body) = app.send("POST", "/api/crons/missing", su, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"data": {}, "message": "Missing or invalid cron job.", "status": 404})
    );
    let (status, _) = app.send("POST", "/api/crons/a%20jo", su, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.send("POST", "/api/crons/%FF", su, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Missing or invalid cron job.");
    let (status, body) = app.send("POST", "/api/crons/a%2Fb", su, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "The requested resource wasn't found.");
    let (status, _) = app.send("DELETE", "/api/crons/a%20job", su, None).await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_otp_cleanup_job_removes_expired_codes_only() {
    use domain::collection::{MFAS_ID, OTPS_ID};

    let app = App::new().await;
    let row = |system: &'static str, collection: &'static str| {
        let state = app.state.clone();
        async move {
            let mut fields = vec![
                ("collectionRef", Value::String(collection.into())),
                ("recordRef", Value::String("r1".into())),
            ];
            // A one-time code row needs its code (hashed by the pipeline).
            if system == OTPS_ID {
                fields.push(("password", Value::String("123456".into())));
            } else {
                // An MFA session records the first factor it followed.
                fields.push(("method", Value::String("password".into())));
            }
            crate::auth::bookkeeping::insert(&state, system, None, fields)
                .await
                .unwrap()
                .id()
                .to_owned()
        }
    };
    // Rows of a collection that no longer exists are expired whatever their age.
    let otp = row(OTPS_ID, "gone_collection").await;
    let mfa = row(MFAS_ID, "gone_collection").await;
    let (status, _) = app
        .send(
            "POST",
            "/api/crons/__pbOTPCleanup__",
            Some(&app.superuser),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let state = app.state.clone();
    for _ in 0..200 {
        if crate::auth::bookkeeping::get(&state, OTPS_ID, &otp)
            .await
            .unwrap()
            .is_none()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        crate::auth::bookkeeping::get(&state, OTPS_ID, &otp)
            .await
            .unwrap()
            .is_none(),
        "the OTP row is swept"
    );
    assert!(
        crate::auth::bookkeeping::get(&state, MFAS_ID, &mfa)
            .await
            .unwrap()
            .is_some(),
        "the MFA table is the other job's"
    );
}
