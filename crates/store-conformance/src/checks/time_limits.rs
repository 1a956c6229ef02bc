//! The query timeout where the port promises it: a slow list fails with `TimedOut`, a filter
//! not decided in time does not hold (or fails, for `record_satisfies`), and a write past its
//! deadline rolls back whole; the engine serves the next call normally afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{Record, RecordQuery, StoreError, WriteOp};
use serde_json::json;

use crate::support::{Fixture, base, open_with, record_data, slow_predicate, text};
use crate::{Engine, OpenOptions};

const TIMEOUT: Duration = Duration::from_millis(600);
/// How long a timed-out call may take in all: the timeout and generous slack.
const BOUND: Duration = Duration::from_secs(10);

async fn with_items(engine: &Engine) -> (Fixture, Record) {
    let fx = open_with(
        engine,
        OpenOptions {
            query_timeout: TIMEOUT,
        },
    )
    .await;
    fx.create_collection(base("items", vec![text("name")]))
        .await;
    let item = fx.create("items", json!({"name": "a"})).await;
    (fx, item)
}

pub async fn a_slow_list_times_out(engine: &Engine) {
    let (fx, _item) = with_items(engine).await;
    let started = Instant::now();
    let error = fx
        .store
        .list_records(RecordQuery {
            collection: fx.collection("items"),
            filters: vec![slow_predicate()],
            sort: Vec::new(),
            page: 1,
            per_page: 10,
            with_total: true,
        })
        .await
        .expect_err("too slow");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    assert_eq!(fx.count("items").await, 1, "the next read is served");
}

pub async fn filters_not_decided_in_time_do_not_hold(engine: &Engine) {
    let (fx, item) = with_items(engine).await;
    let items = fx.collection("items");
    let started = Instant::now();
    let hidden = fx
        .store
        .get_record(Arc::clone(&items), item.id(), vec![slow_predicate()])
        .await
        .expect("a get answers");
    assert!(hidden.is_none(), "an undecided filter hides the record");
    let error = fx
        .store
        .record_satisfies(Arc::clone(&items), item.id(), vec![slow_predicate()])
        .await
        .expect_err("record_satisfies fails instead");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    let matched = fx
        .store
        .matches_unsaved(
            Arc::clone(&items),
            record_data(&items, json!({"name": "b"})),
            slow_predicate(),
        )
        .await
        .expect("matches_unsaved answers");
    assert!(!matched, "an undecided predicate does not hold");
    assert!(
        started.elapsed() < BOUND * 3,
        "took {:?}",
        started.elapsed()
    );
    assert!(fx.get("items", item.id()).await.is_some());
}

pub async fn writes_past_their_deadline_roll_back(engine: &Engine) {
    let (fx, item) = with_items(engine).await;
    let items = fx.collection("items");
    let create = |name: &str, guard| WriteOp::Create {
        collection: Arc::clone(&items),
        data: record_data(&items, json!({ "name": name })),
        guard,
    };
    let error = fx
        .store
        .write_before(vec![create("early", None)], Instant::now())
        .await
        .expect_err("already past");
    assert!(matches!(error.error, StoreError::TimedOut), "{error:?}");
    let started = Instant::now();
    let error = fx
        .store
        .write_before(
            vec![
                create("first", None),
                create("slow", Some(slow_predicate())),
            ],
            started + Duration::from_millis(300),
        )
        .await
        .expect_err("interrupted");
    assert!(matches!(error.error, StoreError::TimedOut), "{error:?}");
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    assert_eq!(
        fx.texts("items", "name", "").await,
        ["a"],
        "rolled back whole"
    );

    // Without a deadline the query timeout bounds a write: an update guard not decided in
    // time hides its row, a slow create guard rolls the write back.
    let error = fx
        .write(vec![WriteOp::Update {
            collection: Arc::clone(&items),
            id: item.id().to_owned(),
            guard: Some(slow_predicate()),
            apply: crate::support::merge(json!({"name": "changed"})),
            known: None,
        }])
        .await
        .expect_err("hidden");
    assert!(matches!(error.error, StoreError::NotFound), "{error:?}");
    let error = fx
        .write(vec![
            create("second", None),
            create("slow", Some(slow_predicate())),
        ])
        .await
        .expect_err("interrupted");
    assert!(matches!(error.error, StoreError::TimedOut), "{error:?}");
    assert_eq!(fx.texts("items", "name", "").await, ["a"]);
    // The deadline does not outlive its write.
    fx.store
        .write_before(
            vec![create("later", None)],
            Instant::now() + Duration::from_secs(60),
        )
        .await
        .expect("within the deadline");
    fx.create("items", json!({"name": "plain"})).await;
    assert_eq!(fx.texts("items", "name", "").await, ["a", "later", "plain"]);
}
