//! Unit tests of the log entries and the writer's bound.

use super::entry::{TRUNCATED_KEY, bound_data, percent_decode};

#[test]
fn message_urls_are_percent_decoded() {
    assert_eq!(
        percent_decode("/api/collections/users/records?filter=bad%3D%3D"),
        "/api/collections/users/records?filter=bad=="
    );
    assert_eq!(percent_decode("/a%zz%4"), "/a%zz%4");
}

#[test]
fn data_over_the_bound_is_cut_and_marked() {
    let small = serde_json::json!({"a": "x"});
    assert_eq!(bound_data(small.clone(), 100), small);
    let big = serde_json::json!({"userAgent": "u".repeat(5000), "status": 200});
    let cut = bound_data(big, 1000);
    assert!(cut.to_string().len() <= 1000, "{}", cut.to_string().len());
    assert_eq!(cut[TRUNCATED_KEY], true);
    assert_eq!(cut["status"], 200);
    // 0 means PocketBase's default bound.
    let default = bound_data(serde_json::json!({"x": "y".repeat(20_000)}), 0);
    assert!(default.to_string().len() <= super::DEFAULT_MAX_DATA_SIZE);
}

mod with_state {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use domain::{
        AuthContext, Dialect, LogEntry, LogPage, LogQuery, LogStat, LogStore, SqlFragment, Store,
        StoreError,
    };
    use serde_json::json;
    use store_sqlite::SqliteStore;
    use store_sqlite::logs::SqliteLogStore;

    use crate::logs::{BATCH_SIZE, LEVEL_ERROR, MAX_MESSAGE_CHARS};
    use crate::state::{AppState, ServerConfig, SharedState};

    /// A log store that only keeps what it is given (and the size of each batch).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<LogEntry>>, Mutex<Vec<usize>>);

    impl Recorder {
        /// The messages of the entries kept so far, in order.
        fn messages(&self) -> Vec<String> {
            let kept = self.0.lock().expect("lock");
            kept.iter().map(|e| e.message.clone()).collect()
        }
    }

    #[async_trait]
    impl LogStore for Recorder {
        fn dialect(&self) -> Dialect {
            Dialect::Sqlite
        }
        async fn append(&self, entries: Vec<LogEntry>) -> Result<(), StoreError> {
            self.1.lock().expect("lock").push(entries.len());
            self.0.lock().expect("lock").extend(entries);
            Ok(())
        }
        async fn list(&self, _: LogQuery) -> Result<LogPage, StoreError> {
            Ok(LogPage {
                items: Vec::new(),
                total: None,
            })
        }
        async fn get(&self, _: &str) -> Result<LogEntry, StoreError> {
            Err(StoreError::NotFound)
        }
        async fn stats(&self, _: Vec<SqlFragment>) -> Result<Vec<LogStat>, StoreError> {
            Ok(Vec::new())
        }
        async fn delete_all(&self) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn delete_before(&self, _: &str) -> Result<u64, StoreError> {
            Ok(0)
        }
    }

    fn state(dir: &tempfile::TempDir) -> SharedState {
        let store: Arc<dyn Store> =
            SqliteStore::open(dir.path(), Default::default()).expect("store opens");
        AppState::new(store, ServerConfig::default())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_channel_drops_and_counts_instead_of_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(&dir);
        let recorder = Arc::new(Recorder::default());
        crate::logs::install_with_capacity(&state, recorder.clone(), 4);
        // The writer task cannot run before this test yields: 4 entries fit, 16 are dropped.
        for i in 0..20 {
            state
                .logs
                .log(LEVEL_ERROR, format!("entry {i}"), json!({"i": i}));
        }
        assert_eq!(state.logs.dropped(), 16);
        for _ in 0..200 {
            if recorder.0.lock().expect("lock").len() == 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let kept = recorder.messages();
        assert_eq!(kept, ["entry 0", "entry 1", "entry 2", "entry 3"]);
        // Room again once the writer drained the channel.
        state.logs.log(LEVEL_ERROR, "later".into(), json!({}));
        assert_eq!(state.logs.dropped(), 16);
    }

    #[tokio::test]
    async fn while_the_writer_is_out_of_time_requests_make_no_entries() {
        use tower::ServiceExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let public = tempfile::tempdir().expect("tempdir");
        std::fs::write(public.path().join("hello.txt"), "hi").expect("public file");
        let store: Arc<dyn Store> =
            SqliteStore::open(dir.path(), Default::default()).expect("store opens");
        let config = ServerConfig {
            public_dir: Some(public.path().to_path_buf()),
            ..ServerConfig::default()
        };
        let state = AppState::new(store, config);
        let recorder = Arc::new(Recorder::default());
        crate::logs::install(&state, recorder.clone());
        let app = crate::router(state.clone());
        let health = || {
            axum::http::Request::get("/api/health")
                .body(axum::body::Body::empty())
                .expect("request")
        };
        state
            .logs
            .shed_until(std::time::Instant::now() + std::time::Duration::from_secs(3600));
        for _ in 0..5 {
            let response = app.clone().oneshot(health()).await.expect("answer");
            assert_eq!(response.status(), 200);
        }
        assert_eq!(state.logs.dropped(), 5, "dropped on the request path");
        // What would make no entry anyway is not counted as dropped: a file (a
        // static answer from the public directory). A failure is.
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        let response = app
            .clone()
            .oneshot(get("/hello.txt"))
            .await
            .expect("answer");
        assert_eq!(response.status(), 200);
        assert_eq!(state.logs.dropped(), 5, "a static answer makes no entry");
        let response = app.clone().oneshot(get("/api/nope")).await.expect("answer");
        assert_eq!(response.status(), 404);
        assert_eq!(state.logs.dropped(), 6, "a failure would have made one");
        // Time again: the next request is logged.
        state.logs.shed_until(std::time::Instant::now());
        let response = app.clone().oneshot(health()).await.expect("answer");
        assert_eq!(response.status(), 200);
        for _ in 0..300 {
            if !recorder.0.lock().expect("lock").is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let kept = recorder.messages();
        assert_eq!(kept, ["GET /api/health"]);
        assert_eq!(state.logs.dropped(), 6);
    }

    #[tokio::test]
    async fn a_flush_returns_once_every_earlier_entry_is_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(&dir);
        let recorder = Arc::new(Recorder::default());
        crate::logs::install(&state, recorder.clone());
        for i in 0..3 {
            state.logs.log(LEVEL_ERROR, format!("entry {i}"), json!({}));
        }
        // Without the flush the writer would still be lingering for more entries here.
        state.logs.flush(std::time::Duration::from_secs(30)).await;
        let kept = recorder.messages();
        assert_eq!(kept, ["entry 0", "entry 1", "entry 2"]);
        // A flush with nothing queued returns too, and the writer keeps working after it.
        state.logs.flush(std::time::Duration::from_secs(30)).await;
        state.logs.log(LEVEL_ERROR, "later".into(), json!({}));
        state.logs.flush(std::time::Duration::from_secs(30)).await;
        assert_eq!(recorder.0.lock().expect("lock").len(), 4);
    }

    /// The ids the store lists for a client filter compiled as the API compiles it.
    async fn run(logs: &SqliteLogStore, text: &str) -> Vec<String> {
        let (schema, collection) = &*super::super::api::LOGS;
        let compiled = rules::compile_filter(schema, collection, text, &AuthContext::Guest)
            .expect("compiles")
            .expect("not empty");
        let ctx = rules::RequestContext::new(AuthContext::Guest);
        let page = logs
            .list(LogQuery {
                filters: vec![compiled.to_sql(Dialect::Sqlite, &ctx)],
                page: 1,
                per_page: 10,
                ..LogQuery::default()
            })
            .await
            .expect("list");
        page.items.into_iter().map(|e| e.id).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn batches_hold_at_most_the_batch_size_and_messages_are_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = state(&dir);
        let recorder = Arc::new(Recorder::default());
        crate::logs::install_with_capacity(&state, recorder.clone(), 2 * BATCH_SIZE);
        let total = BATCH_SIZE + 10;
        for i in 0..total {
            let message = if i == 0 {
                "m".repeat(MAX_MESSAGE_CHARS + 5)
            } else {
                "x".into()
            };
            state.logs.log(LEVEL_ERROR, message, json!({}));
        }
        for _ in 0..500 {
            if recorder.0.lock().expect("lock").len() == total {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let batches = recorder.1.lock().expect("lock").clone();
        assert_eq!(batches, [BATCH_SIZE, 10]);
        let first = recorder.0.lock().expect("lock")[0].message.chars().count();
        assert_eq!(first, MAX_MESSAGE_CHARS);
        assert_eq!(state.logs.dropped(), 0);
    }

    #[tokio::test]
    async fn client_filters_compile_to_the_logs_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = SqliteLogStore::open(dir.path(), None).expect("open");
        let entry = |id: &str, status: u16, agent: &str| LogEntry {
            id: id.into(),
            created: "2026-01-01 10:00:00.000Z".into(),
            data: json!({"status": status, "userAgent": agent, "nested": {"k": id}}),
            message: format!("GET /{id}"),
            level: if status >= 400 { 8 } else { 0 },
        };
        logs.append(vec![
            entry("a", 200, "curl"),
            entry("b", 404, "firefox"),
            entry("c", 500, "curl"),
        ])
        .await
        .expect("append");
        let (schema, collection) = &*super::super::api::LOGS;
        let superuser = AuthContext::Guest;
        assert_eq!(run(&logs, "data.status >= 400").await, ["b", "c"]);
        assert_eq!(
            run(&logs, "data.userAgent = 'curl' && level = 8").await,
            ["c"]
        );
        assert_eq!(run(&logs, "data.nested.k = 'b'").await, ["b"]);
        assert_eq!(run(&logs, "message ~ '/a' || id = 'c'").await, ["a", "c"]);
        assert_eq!(
            run(&logs, "created >= '2026-01-01 00:00:00.000Z'")
                .await
                .len(),
            3
        );
        // Quotes in values stay values.
        assert!(
            run(&logs, "message = \"x'); DROP TABLE _logs; --\"")
                .await
                .is_empty()
        );
        for bad in [
            "nope = 1",
            "data.status ==",
            "(",
            "@collection.users.id = 1",
        ] {
            assert!(
                rules::compile_filter(schema, collection, bad, &superuser).is_err(),
                "{bad}"
            );
        }
    }
}

#[test]
fn the_writer_budget_refills_with_time_and_is_spent_by_work() {
    use std::time::{Duration, Instant};

    use super::{Budget, WRITER_BURST, WRITER_SHARE};

    let start = Instant::now();
    let mut budget = Budget::new(start);
    assert!(budget.allows(start), "starts with a full burst");
    // Work longer than the burst exhausts it.
    budget.spend(WRITER_BURST + Duration::from_millis(10));
    assert!(!budget.allows(start));
    // Time passing refills it at the share: 10 ms of debt needs 10 ms / share to repay.
    let repay = Duration::from_secs_f64(0.010 / WRITER_SHARE);
    assert!(!budget.allows(start + repay - Duration::from_millis(20)));
    assert!(budget.allows(start + repay + Duration::from_millis(40)));
    // ready_in says when: zero once refilled, the debt over the share while in debt.
    assert_eq!(budget.ready_in(), Duration::ZERO);
    let mut owing = Budget::new(start);
    owing.spend(WRITER_BURST + Duration::from_millis(10));
    assert!(!owing.allows(start));
    let wait = owing.ready_in();
    assert!(
        wait >= repay && wait < repay + Duration::from_millis(1),
        "{wait:?}"
    );
    // Idle time saves up at most the burst.
    let mut idle = Budget::new(start);
    assert!(idle.allows(start + Duration::from_secs(3600)));
    idle.spend(WRITER_BURST);
    assert!(!idle.allows(start + Duration::from_secs(3600)));
}
