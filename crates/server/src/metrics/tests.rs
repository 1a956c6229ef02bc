//! The metrics endpoint in process: who may read it, route-template labels, values that move,
//! the per-app gauges. (The page is parsed by a real Prometheus parser in the end-to-end test.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use domain::Store;
use serde_json::{Value, json};
use store_sqlite::SqliteStore;
use tempfile::TempDir;
use tower::ServiceExt;

use crate::state::{AppState, ServerConfig, SharedState};

const SECRET: &str = "s3cret-for-prometheus";

struct App {
    _dir: TempDir,
    router: Router,
    _state: SharedState,
    superuser: String,
}

impl App {
    async fn new(secret: Option<&str>) -> App {
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
            metrics_secret: secret.map(|s| crate::state::MetricsSecret(s.to_owned())),
            ..ServerConfig::default()
        };
        let state = AppState::new(store, config);
        let router = crate::router(state.clone());
        App {
            _dir: dir,
            router,
            _state: state,
            superuser,
        }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
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
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn page(&self) -> String {
        let (status, page) = self
            .send("GET", "/api/metrics", Some(&self.superuser), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    }
}

/// The value of the series `name` whose labels include every pair of `labels` (0 when absent).
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn a_superuser_or_the_configured_secret_may_read_the_metrics() {
    let app = App::new(Some(SECRET)).await;
    let (status, body) = app.send("GET", "/api/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = app
        .send("GET", "/api/metrics", Some("Bearer wrong-secret"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, page) = app
        .send(
            "GET",
            "/api/metrics",
            Some(&format!("Bearer {SECRET}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("# TYPE plinth_realtime_clients gauge"),
        "{page}"
    );
    // A bare secret (no `Bearer`) is not accepted: it would read as a token.
    let (status, _) = app.send("GET", "/api/metrics", Some(SECRET), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.page().await;

    // Without a configured secret no bearer opens it; an ordinary user is refused with 403.
    let app = App::new(None).await;
    let (status, _) = app
        .send(
            "GET",
            "/api/metrics",
            Some(&format!("Bearer {SECRET}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let password = "Passw0rd!123";
    let (status, _) = app
        .send(
            "POST",
            "/api/collections/users/records",
            None,
            Some(json!({"email": "u@example.com", "password": password, "passwordConfirm": password})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = app
        .send(
            "POST",
            "/api/collections/users/auth-with-password",
            None,
            Some(json!({"identity": "u@example.com", "password": password})),
        )
        .await;
    let token: Value = serde_json::from_str(&body).unwrap();
    let token = token["token"].as_str().unwrap();
    let (status, body) = app.send("GET", "/api/metrics", Some(token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn requests_are_counted_by_route_template_never_by_raw_path() {
    let app = App::new(None).await;
    let route = "/api/collections/{collection}/records/{id}";
    let labels = [("method", "GET"), ("route", route), ("status", "404")];
    let before = app.page().await;
    for id in ["aaaaaaaaaaaaaa1", "aaaaaaaaaaaaaa2", "aaaaaaaaaaaaaa3"] {
        let uri = format!("/api/collections/users/records/{id}");
        let (status, _) = app.send("GET", &uri, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = app
        .send("GET", "/api/no-such-route/zzz-unique-path", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let after = app.page().await;
    let name = "plinth_http_requests_total";
    assert!(
        value(&after, name, &labels) >= value(&before, name, &labels) + 3.0,
        "{after}"
    );
    assert!(value(&after, name, &[("route", "unmatched")]) >= 1.0);
    assert!(!after.contains("aaaaaaaaaaaaaa1"), "no raw path in a label");
    assert!(!after.contains("zzz-unique-path"), "no raw path in a label");
    let count = "plinth_http_request_duration_seconds_count";
    assert!(value(&after, count, &[("route", route)]) >= 3.0);

    // One route template, two statuses: two series, each counting its own answers (the series'
    // handles are kept per method, route and status after their first use).
    let list = "/api/collections/{collection}/records";
    let ok = [("method", "GET"), ("route", list), ("status", "200")];
    let missing = [("method", "GET"), ("route", list), ("status", "404")];
    for _ in 0..2 {
        let (status, _) = app
            .send("GET", "/api/collections/users/records", None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .send("GET", "/api/collections/nope/records", None, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = app
        .send("GET", "/api/collections/nope/records", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let last = app.page().await;
    let name = "plinth_http_requests_total";
    assert!(
        value(&last, name, &ok) >= value(&after, name, &ok) + 2.0,
        "{last}"
    );
    assert!(
        value(&last, name, &missing) >= value(&after, name, &missing) + 3.0,
        "{last}"
    );
    assert!(
        after.contains("plinth_http_request_duration_seconds_bucket{"),
        "latency is a histogram"
    );
}

#[tokio::test]
async fn the_page_reports_this_apps_store_and_realtime_and_cron_runs() {
    let app = App::new(None).await;
    let page = app.page().await;
    assert_eq!(
        value(&page, "plinth_store_threads", &[("queue", "writer")]),
        1.0
    );
    assert_eq!(value(&page, "plinth_realtime_clients", &[]), 0.0);
    assert_eq!(value(&page, "plinth_changelog_lag", &[]), 0.0);
    assert_eq!(value(&page, "plinth_logs_dropped_total", &[]), 0.0);
    assert_eq!(
        value(&page, "plinth_backup_deferred_file_removals", &[]),
        0.0
    );
    assert!(
        page.contains("# TYPE plinth_backups_total counter"),
        "{page}"
    );
    // A store job's time is recorded by its thread just after the job answered, so the
    // first page can come before it.
    let mut page = page;
    for _ in 0..100 {
        if page.contains("plinth_store_job_seconds_bucket{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        page = app.page().await;
    }
    assert!(page.contains("plinth_store_job_seconds_bucket{"), "{page}");

    let job = [("job", "__pbDBOptimize__"), ("result", "ok")];
    let before = value(&page, "plinth_cron_runs_total", &job);
    let (status, _) = app
        .send(
            "POST",
            "/api/crons/__pbDBOptimize__",
            Some(&app.superuser),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut counted = false;
    for _ in 0..100 {
        if value(&app.page().await, "plinth_cron_runs_total", &job) > before {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counted, "the optimize run was counted");
}
