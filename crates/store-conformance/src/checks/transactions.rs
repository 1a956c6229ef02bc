//! Settings (`_params`) and interactive transactions: nothing a transaction does is visible
//! outside it before commit, a rollback leaves nothing (records, change log, schema, params),
//! and a savepoint rollback undoes only the work after it.

use std::sync::Arc;

use domain::store::Transaction;
use domain::{Collection, RecordQuery, StoreError};
use serde_json::json;

use crate::Engine;
use crate::support::{Fixture, base, open, record_data, text};

pub async fn params_round_trip(engine: &Engine) {
    let fx = open(engine).await;
    assert_eq!(fx.store.get_param("conformance").await.expect("read"), None);
    for value in [
        json!({"meta": {"appName": "Plinth"}, "n": 1, "list": [1, "two", null]}),
        json!(5),
        json!("12"),
        json!(true),
        json!([]),
    ] {
        fx.store
            .set_param("conformance", value.clone())
            .await
            .expect("stored");
        assert_eq!(
            fx.store.get_param("conformance").await.expect("read"),
            Some(value),
            "{}: replaced and read back as JSON",
            fx.engine
        );
    }
}

fn create(collection: &Arc<Collection>, name: &str) -> domain::WriteOp {
    domain::WriteOp::Create {
        collection: Arc::clone(collection),
        data: record_data(collection, json!({ "name": name })),
        guard: None,
    }
}

async fn tx_names(tx: &mut Box<dyn Transaction>, collection: &Arc<Collection>) -> Vec<String> {
    let page = tx
        .list_records(RecordQuery {
            collection: Arc::clone(collection),
            filters: Vec::new(),
            sort: Vec::new(),
            page: 1,
            per_page: 100,
            with_total: false,
        })
        .await
        .expect("listed in the transaction");
    let mut names: Vec<String> = page
        .items
        .iter()
        .map(|r| r.text("name").to_owned())
        .collect();
    names.sort();
    names
}

async fn items(fx: &Fixture) -> Arc<Collection> {
    let mut items = base("items", vec![text("name")]);
    items.indexes = vec!["CREATE UNIQUE INDEX idx_items_name ON items (name)".into()];
    fx.create_collection(items).await
}

pub async fn a_transaction_is_invisible_until_commit(engine: &Engine) {
    let fx = open(engine).await;
    let items = items(&fx).await;
    let seq = fx.last_seq().await;
    let mut tx = fx.store.begin(None).await.expect("begins");
    let created = tx.write(vec![create(&items, "a")]).await.expect("written");
    let id = created[0].record().id().to_owned();
    let schema = tx
        .create_collection(base("scratch", vec![text("name")]))
        .await
        .expect("created in the transaction");
    assert!(schema.get("scratch").is_some());
    assert!(tx.schema().get("scratch").is_some());
    tx.set_param("tx-param", json!(1)).await.expect("set");
    // Inside: everything.
    assert!(
        tx.get_record(Arc::clone(&items), &id, Vec::new())
            .await
            .expect("read")
            .is_some()
    );
    assert_eq!(tx_names(&mut tx, &items).await, ["a"]);
    assert_eq!(
        tx.get_param("tx-param").await.expect("read"),
        Some(json!(1))
    );
    let found = tx
        .find_by_field(Arc::clone(&items), "name", "a")
        .await
        .expect("looked up");
    assert_eq!(found.map(|r| r.id().to_owned()), Some(id.clone()));
    assert!(
        tx.find_by_field(Arc::clone(&items), "nope", "a")
            .await
            .expect("an unknown field")
            .is_none()
    );
    let mut one_stored = domain::SqlFragment::default();
    one_stored
        .push_sql("(SELECT COUNT(*) FROM \"items\" AS \"other\") = ")
        .push_param(domain::SqlValue::Int(1));
    let unsaved = record_data(&items, json!({"name": "b"}));
    assert!(
        tx.matches_unsaved(Arc::clone(&items), unsaved.clone(), one_stored.clone())
            .await
            .expect("checked"),
        "other rows read through the transaction"
    );
    assert!(
        !fx.store
            .matches_unsaved(Arc::clone(&items), unsaved, one_stored)
            .await
            .expect("checked"),
        "outside, the row is not there yet"
    );
    // Outside: nothing yet.
    assert!(fx.get("items", &id).await.is_none());
    assert!(fx.store.schema().get("scratch").is_none());
    assert_eq!(fx.store.get_param("tx-param").await.expect("read"), None);
    assert_eq!(fx.last_seq().await, seq, "no entry before commit");
    tx.commit().await.expect("commits");
    assert!(fx.get("items", &id).await.is_some());
    assert!(fx.store.schema().get("scratch").is_some());
    assert_eq!(
        fx.store.get_param("tx-param").await.expect("read"),
        Some(json!(1))
    );
    assert_eq!(
        fx.change_summary(seq).await.len(),
        1,
        "the entry commits with it"
    );
}

pub async fn a_rolled_back_transaction_leaves_nothing(engine: &Engine) {
    let fx = open(engine).await;
    let items = items(&fx).await;
    fx.create("items", json!({"name": "kept"})).await;
    let seq = fx.last_seq().await;
    let mut tx = fx.store.begin(None).await.expect("begins");
    tx.write(vec![create(&items, "gone")])
        .await
        .expect("written");
    // A failed call leaves the transaction as it was, and usable.
    let error = tx
        .write(vec![create(&items, "other"), create(&items, "kept")])
        .await
        .expect_err("duplicate");
    assert_eq!(error.index, 1);
    assert_eq!(tx_names(&mut tx, &items).await, ["gone", "kept"]);
    let schema = tx
        .create_collection(base("scratch", vec![text("name")]))
        .await
        .expect("created");
    let scratch = schema.get("scratch").cloned().expect("scratch");
    tx.write(vec![create(&scratch, "s")])
        .await
        .expect("written");
    tx.truncate_collection(&items.id).await.expect("truncated");
    tx.set_param("tx-param", json!({"a": 1}))
        .await
        .expect("set");
    tx.rollback().await.expect("rolls back");
    assert_eq!(fx.texts("items", "name", "").await, ["kept"]);
    assert!(fx.store.schema().get("scratch").is_none());
    assert_eq!(fx.store.get_param("tx-param").await.expect("read"), None);
    assert_eq!(fx.last_seq().await, seq);
    assert!(fx.changes_since(seq).await.is_empty());
    // The name is free: the table was never created.
    fx.create_collection(base("scratch", vec![text("other")]))
        .await;
    assert_eq!(fx.count("scratch").await, 0);
}

pub async fn a_savepoint_rollback_undoes_only_its_work(engine: &Engine) {
    let fx = open(engine).await;
    let items = items(&fx).await;
    let seq = fx.last_seq().await;
    let mut tx = fx.store.begin(None).await.expect("begins");
    tx.write(vec![create(&items, "outer")])
        .await
        .expect("written");
    tx.savepoint().await.expect("savepoint");
    tx.write(vec![create(&items, "inner")])
        .await
        .expect("written");
    tx.set_param("inner-param", json!(2)).await.expect("set");
    tx.savepoint().await.expect("nested savepoint");
    tx.write(vec![create(&items, "innermost")])
        .await
        .expect("written");
    tx.release_savepoint().await.expect("released");
    assert_eq!(
        tx_names(&mut tx, &items).await,
        ["inner", "innermost", "outer"]
    );
    tx.rollback_to_savepoint()
        .await
        .expect("rolled back to the first savepoint");
    assert_eq!(tx_names(&mut tx, &items).await, ["outer"]);
    assert_eq!(tx.get_param("inner-param").await.expect("read"), None);
    let error = tx
        .rollback_to_savepoint()
        .await
        .expect_err("no savepoint is open any more");
    assert!(matches!(error, StoreError::Internal(_)), "{error:?}");
    tx.commit().await.expect("commits");
    assert_eq!(fx.texts("items", "name", "").await, ["outer"]);
    let changes = fx.changes_since(seq).await;
    assert_eq!(changes.len(), 1, "the undone writes left no entries");
    assert_eq!(changes[0].record.text("name"), "outer");
}

pub async fn text_params_read_back_as_strings(engine: &Engine) {
    let fx = open(engine).await;
    let encrypted = "q83vEjRWeJA=";
    fx.store
        .set_param_text("settings", encrypted)
        .await
        .expect("stored verbatim");
    assert_eq!(
        fx.store.get_param("settings").await.expect("read"),
        Some(json!(encrypted)),
        "bare text reads back as a JSON string"
    );
    fx.store
        .set_param("settings", json!({"meta": {}}))
        .await
        .expect("replaced by JSON");
    assert_eq!(
        fx.store.get_param("settings").await.expect("read"),
        Some(json!({"meta": {}}))
    );
}

pub async fn migrations_are_recorded_and_forgotten(engine: &Engine) {
    let fx = open(engine).await;
    assert!(
        fx.store
            .applied_migrations()
            .await
            .expect("listed")
            .is_empty(),
        "the engine's own schema steps are not listed"
    );
    fx.store
        .record_migration("1700000002_b.js", 20)
        .await
        .expect("recorded");
    fx.store
        .record_migration("1700000001_a.js", 10)
        .await
        .expect("recorded");
    fx.store
        .record_migration("1700000003_c.js", 10)
        .await
        .expect("recorded");
    let listed = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs.iter().map(|(f, t)| ((*f).to_owned(), *t)).collect()
    };
    assert_eq!(
        fx.store.applied_migrations().await.expect("listed"),
        listed(&[
            ("1700000001_a.js", 10),
            ("1700000003_c.js", 10),
            ("1700000002_b.js", 20)
        ]),
        "ordered by applied, then file"
    );
    fx.store
        .record_migration("1700000001_a.js", 30)
        .await
        .expect("replaced");
    assert!(
        fx.store
            .forget_migration("1700000003_c.js")
            .await
            .expect("forgotten")
    );
    assert!(
        !fx.store
            .forget_migration("1700000003_c.js")
            .await
            .expect("nothing left")
    );
    assert_eq!(
        fx.store.applied_migrations().await.expect("listed"),
        listed(&[("1700000002_b.js", 20), ("1700000001_a.js", 30)])
    );
}

pub async fn a_transaction_past_its_deadline_rolls_back(engine: &Engine) {
    let fx = open(engine).await;
    let items = items(&fx).await;
    let mut tx = fx
        .store
        .begin(Some(
            std::time::Instant::now() + std::time::Duration::from_millis(300),
        ))
        .await
        .expect("begins");
    tx.write(vec![create(&items, "late")])
        .await
        .expect("written in time");
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let error = tx
        .write(vec![create(&items, "later")])
        .await
        .expect_err("past the deadline");
    assert!(matches!(error.error, StoreError::TimedOut), "{error:?}");
    assert_eq!(error.index, 0, "the whole transaction ended");
    let error = tx.commit().await.expect_err("nothing to commit");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    assert_eq!(fx.count("items").await, 0, "rolled back on its own");
    // The engine is free again.
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        fx.create("items", json!({"name": "after"})),
    )
    .await
    .expect("the next write is served");
}

pub async fn a_dropped_transaction_rolls_back(engine: &Engine) {
    let fx = open(engine).await;
    let items = items(&fx).await;
    let seq = fx.last_seq().await;
    let mut tx = fx.store.begin(None).await.expect("begins");
    tx.write(vec![create(&items, "dropped")])
        .await
        .expect("written");
    drop(tx);
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        fx.create("items", json!({"name": "after"})),
    )
    .await
    .expect("the engine is freed when the transaction is dropped");
    assert_eq!(fx.texts("items", "name", "").await, ["after"]);
    assert_eq!(fx.change_summary(seq).await.len(), 1);
}

/// `claim_once` admits one caller per `(key, slot)`, also when callers race.
pub async fn claims_admit_one_caller_per_slot(engine: &Engine) {
    let fx = open(engine).await;
    let claims: Vec<bool> = futures_join(&fx, "cron:a", 60_000).await;
    assert_eq!(
        claims.iter().filter(|won| **won).count(),
        1,
        "{}: one of eight racing claims wins: {claims:?}",
        fx.engine
    );
    assert!(
        !fx.store
            .claim_once("cron:a", 60_000)
            .await
            .expect("claimed"),
        "{}: a later claim of the same slot loses",
        fx.engine
    );
    assert!(
        fx.store
            .claim_once("cron:a", 120_000)
            .await
            .expect("claimed"),
        "{}: the next slot is free",
        fx.engine
    );
    assert!(
        fx.store
            .claim_once("cron:b", 60_000)
            .await
            .expect("claimed"),
        "{}: another key is free",
        fx.engine
    );
}

async fn futures_join(fx: &Fixture, key: &str, slot: i64) -> Vec<bool> {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&fx.store);
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            store.claim_once(&key, slot).await.expect("claimed")
        }));
    }
    let mut won = Vec::new();
    for task in tasks {
        won.push(task.await.expect("joined"));
    }
    won
}
