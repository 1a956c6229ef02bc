//! Tests of interactive transactions (`Store::begin`, the `tx` module) on temporary
//! databases: isolation from the rest of the store until commit, all-or-nothing rollback
//! (records, change log, schema, params, `_migrations`), per-call atomicity, savepoints, and
//! the deadline and drop paths that must always give the writer back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::collection::{Collection, CollectionType};
use domain::field::{Field, FieldKind, TextOptions};
use domain::record::{Record, RecordData};
use domain::sql::SqlFragment;
use domain::store::Transaction;
use domain::{RecordQuery, Store, StoreError, WriteOp};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{SqliteOptions, SqliteStore};

async fn open() -> (TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("opens");
    (dir, store)
}

fn base(name: &str, fields: &[&str]) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Base, name);
    collection.id = domain::ids::collection_id("base", name);
    collection.fields.extend(
        fields
            .iter()
            .map(|field| Field::new(field, FieldKind::Text(TextOptions::default()))),
    );
    collection
}

/// `items` with a text `name` under a unique index.
async fn with_items(store: &SqliteStore) -> Arc<Collection> {
    let mut items = base("items", &["name"]);
    items.indexes = vec!["CREATE UNIQUE INDEX idx_items_name ON items (name)".into()];
    store.create_collection(items).await.expect("created");
    store.schema().get("items").cloned().expect("items")
}

fn record_data(collection: &Collection, values: Value) -> RecordData {
    let mut data = RecordData::new();
    for field in &collection.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    data.insert("id".into(), json!(domain::ids::new_record_id()));
    if let Value::Object(values) = values {
        data.extend(values);
    }
    data
}

fn create_op(collection: &Arc<Collection>, name: &str) -> WriteOp {
    WriteOp::Create {
        collection: Arc::clone(collection),
        data: record_data(collection, json!({ "name": name })),
        guard: None,
    }
}

async fn tx_create(
    tx: &mut Box<dyn Transaction>,
    collection: &Arc<Collection>,
    name: &str,
) -> Result<Record, StoreError> {
    let mut results = tx
        .write(vec![create_op(collection, name)])
        .await
        .map_err(|error| error.error)?;
    Ok(results.remove(0).record().clone())
}

fn all(collection: &Arc<Collection>) -> RecordQuery {
    RecordQuery {
        collection: Arc::clone(collection),
        filters: Vec::new(),
        sort: Vec::new(),
        page: 1,
        per_page: 0,
        with_total: true,
    }
}

async fn names(store: &SqliteStore, collection: &Arc<Collection>) -> Vec<String> {
    let page = store.list_records(all(collection)).await.expect("lists");
    page.items
        .iter()
        .map(|record| record.data["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn tx_names(tx: &mut Box<dyn Transaction>, collection: &Arc<Collection>) -> Vec<String> {
    let page = tx.list_records(all(collection)).await.expect("lists");
    page.items
        .iter()
        .map(|record| record.data["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A predicate that takes far longer than any test's deadline.
fn slow_predicate() -> SqlFragment {
    let mut slow = SqlFragment::default();
    slow.push_sql(
        "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) \
         SELECT count(*) FROM c) > 0",
    );
    slow
}

fn count_items_is(n: i64) -> SqlFragment {
    let mut predicate = SqlFragment::default();
    predicate
        .push_sql("(SELECT COUNT(*) FROM items AS other) = ")
        .push_param(domain::SqlValue::Int(n));
    predicate
}

/// Whether the store's running total of change-log bytes matches what is stored (a savepoint
/// rolled back must take its entries' bytes out of the total, as SQLite's rollback hook does
/// not fire for it).
fn change_log_size_is_exact(store: &SqliteStore, dir: &TempDir) {
    let side = rusqlite::Connection::open(dir.path().join("data.db")).expect("side");
    let stored: i64 = side
        .query_row(
            "SELECT COALESCE(SUM(octet_length(record)), 0) FROM _changes",
            [],
            |r| r.get(0),
        )
        .expect("summed");
    let counted = store
        .change_log_size
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted, stored.unsigned_abs());
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(flavor = "multi_thread")]
async fn uncommitted_rows_are_seen_inside_only() {
    let (_dir, store) = open().await;
    let items = with_items(&store).await;
    let mut tx = store.begin(None).await.expect("begins");
    let record = tx_create(&mut tx, &items, "a").await.expect("created");

    // Inside: by id, in lists, by field, and by predicates that read other rows.
    let found = tx
        .get_record(Arc::clone(&items), record.id(), Vec::new())
        .await
        .expect("reads");
    assert_eq!(found.map(|r| r.data["name"].clone()), Some(json!("a")));
    let page = tx.list_records(all(&items)).await.expect("lists");
    assert_eq!((page.items.len(), page.total), (1, Some(1)));
    let by_name = tx
        .find_by_field(Arc::clone(&items), "name", "a")
        .await
        .expect("finds");
    assert_eq!(
        by_name.map(|r| r.id().to_owned()),
        Some(record.id().to_owned())
    );
    assert!(
        tx.find_by_field(Arc::clone(&items), "nope", "a")
            .await
            .expect("unknown field")
            .is_none()
    );
    let unsaved = record_data(&items, json!({"name": "b"}));
    assert!(
        tx.matches_unsaved(Arc::clone(&items), unsaved.clone(), count_items_is(1))
            .await
            .expect("checked")
    );

    // Outside: nothing yet.
    assert!(
        store
            .get_record(Arc::clone(&items), record.id(), Vec::new())
            .await
            .expect("reads")
            .is_none()
    );
    assert!(names(&store, &items).await.is_empty());
    assert!(
        store
            .matches_unsaved(Arc::clone(&items), unsaved, count_items_is(0))
            .await
            .expect("checked")
    );

    tx.commit().await.expect("commits");
    assert_eq!(names(&store, &items).await, vec!["a"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_leaves_nothing() {
    let (dir, store) = open().await;
    let items = with_items(&store).await;
    store
        .write(vec![create_op(&items, "kept")])
        .await
        .expect("written");
    let seq = store.last_change_seq().await.expect("seq");
    let schema_before = store.schema();

    let mut tx = store.begin(None).await.expect("begins");
    let schema = tx
        .create_collection(base("scratch", &["name"]))
        .await
        .expect("created in tx");
    let scratch = schema.get("scratch").cloned().expect("scratch");
    tx_create(&mut tx, &scratch, "s").await.expect("created");
    tx_create(&mut tx, &items, "gone").await.expect("created");
    tx.truncate_collection(&items.id).await.expect("truncated");
    assert!(tx_names(&mut tx, &items).await.is_empty());
    tx.set_param("tx-param", json!({"a": 1}))
        .await
        .expect("set");
    assert_eq!(
        tx.get_param("tx-param").await.expect("read"),
        Some(json!({"a": 1}))
    );
    tx.record_migration("1700000000_x.js", 5)
        .await
        .expect("recorded");
    assert_eq!(
        tx.applied_migrations().await.expect("listed"),
        vec![("1700000000_x.js".to_owned(), 5)]
    );
    tx.rollback().await.expect("rolls back");

    assert!(Arc::ptr_eq(&store.schema(), &schema_before));
    assert!(store.schema().get("scratch").is_none());
    let side = rusqlite::Connection::open(dir.path().join("data.db")).expect("side");
    let tables: i64 = side
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'scratch'",
            [],
            |r| r.get(0),
        )
        .expect("counted");
    assert_eq!(tables, 0);
    assert_eq!(names(&store, &items).await, vec!["kept"]);
    assert_eq!(store.get_param("tx-param").await.expect("read"), None);
    assert!(store.applied_migrations().await.expect("listed").is_empty());
    assert_eq!(store.last_change_seq().await.expect("seq"), seq);
    assert!(
        store
            .changes_after(seq, 100)
            .await
            .expect("read")
            .is_empty()
    );

    // The store goes on as before; the rolled-back sequence numbers are handed out again,
    // since none of them was ever visible.
    store
        .write(vec![create_op(&items, "after")])
        .await
        .expect("written");
    assert_eq!(store.last_change_seq().await.expect("seq"), seq + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_write_leaves_the_transaction_usable() {
    let (dir, store) = open().await;
    let items = with_items(&store).await;
    let seq = store.last_change_seq().await.expect("seq");
    let mut tx = store.begin(None).await.expect("begins");
    tx_create(&mut tx, &items, "a").await.expect("created");

    // A unique violation is a field error, and undoes only its own call.
    let error = tx_create(&mut tx, &items, "a")
        .await
        .expect_err("duplicate");
    match &error {
        StoreError::Validation(errors) => {
            assert_eq!(
                errors.as_map()["name"]["code"],
                json!("validation_not_unique")
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    // All or nothing within one call: `c` goes with the duplicate after it.
    let error = tx
        .write(vec![create_op(&items, "c"), create_op(&items, "a")])
        .await
        .expect_err("duplicate");
    assert_eq!(error.index, 1);
    assert_eq!(tx_names(&mut tx, &items).await, vec!["a"]);
    tx_create(&mut tx, &items, "b").await.expect("still usable");
    // A failed schema change leaves the schema as it was.
    let before = tx.schema();
    let error = tx
        .create_collection(base("items", &["other"]))
        .await
        .expect_err("name taken");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    assert!(Arc::ptr_eq(&tx.schema(), &before));
    tx.commit().await.expect("commits");

    assert_eq!(names(&store, &items).await, vec!["a", "b"]);
    let changes = store.changes_after(seq, 100).await.expect("read");
    let logged: Vec<&Value> = changes.iter().map(|c| &c.record.data["name"]).collect();
    assert_eq!(logged, vec![&json!("a"), &json!("b")]);
    change_log_size_is_exact(&store, &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_transaction_rolls_it_back_and_frees_the_writer() {
    let (_dir, store) = open().await;
    let items = with_items(&store).await;
    let mut tx = store.begin(None).await.expect("begins");
    tx_create(&mut tx, &items, "dropped")
        .await
        .expect("created");

    // A write queued behind the open transaction runs once it is dropped.
    let queued = {
        let store = Arc::clone(&store);
        let op = create_op(&items, "queued");
        tokio::spawn(async move { store.write(vec![op]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!queued.is_finished(), "the transaction holds the writer");
    drop(tx);
    tokio::time::timeout(secs(5), queued)
        .await
        .expect("runs promptly")
        .expect("joined")
        .expect("written");

    let started = Instant::now();
    store
        .write(vec![create_op(&items, "after")])
        .await
        .expect("written");
    assert!(started.elapsed() < secs(5));
    assert_eq!(names(&store, &items).await, vec!["queued", "after"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_deadline_a_transaction_rolls_back_and_times_out() {
    let (_dir, store) = open().await;
    let items = with_items(&store).await;

    // Idle past its deadline, with its handle still held: the writer is freed anyway.
    let started = Instant::now();
    let mut tx = store
        .begin(Some(started + Duration::from_millis(300)))
        .await
        .expect("begins");
    tx_create(&mut tx, &items, "idle").await.expect("created");
    store
        .write(vec![create_op(&items, "waited")])
        .await
        .expect("written once the transaction timed out");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < secs(10), "{waited:?}");
    let error = tx_create(&mut tx, &items, "late").await.expect_err("ended");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    let error = tx.get_param("x").await.expect_err("ended");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    let error = tx.commit().await.expect_err("ended");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    assert_eq!(names(&store, &items).await, vec!["waited"]);

    // A statement running at the deadline is interrupted; the call answers `TimedOut`, not the
    // "does not hold" an interrupted rule check means outside a transaction.
    let started = Instant::now();
    let mut tx = store
        .begin(Some(started + Duration::from_millis(300)))
        .await
        .expect("begins");
    let record = tx_create(&mut tx, &items, "interrupted")
        .await
        .expect("created");
    let error = tx
        .get_record(Arc::clone(&items), record.id(), vec![slow_predicate()])
        .await
        .expect_err("interrupted");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    assert!(started.elapsed() < secs(10));
    let error = tx.rollback().await.expect_err("already ended");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    let started = Instant::now();
    store
        .write(vec![create_op(&items, "free")])
        .await
        .expect("written");
    assert!(started.elapsed() < secs(5));
    assert_eq!(names(&store, &items).await, vec!["waited", "free"]);

    // `begin` itself gives up when the writer is not free in time.
    let holder = store.begin(None).await.expect("begins");
    let started = Instant::now();
    let error = store
        .begin(Some(started + Duration::from_millis(200)))
        .await
        .err()
        .expect("writer busy");
    assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    assert!(started.elapsed() < secs(5));
    holder.rollback().await.expect("rolls back");
    let mut tx = store.begin(None).await.expect("writer free again");
    tx_create(&mut tx, &items, "last").await.expect("created");
    tx.commit().await.expect("commits");
    assert_eq!(names(&store, &items).await, vec!["waited", "free", "last"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collection_created_in_a_transaction_is_published_on_commit() {
    let (_dir, store) = open().await;
    let mut tx = store.begin(None).await.expect("begins");
    let returned = tx
        .create_collection(base("fresh", &["name"]))
        .await
        .expect("created");
    assert!(returned.get("fresh").is_some());
    let fresh = tx.schema().get("fresh").cloned().expect("seen by the tx");
    assert!(store.schema().get("fresh").is_none(), "not yet published");
    let record = tx_create(&mut tx, &fresh, "one").await.expect("saved");
    assert!(
        tx.get_record(Arc::clone(&fresh), record.id(), Vec::new())
            .await
            .expect("reads")
            .is_some()
    );

    // Altered in the same transaction, and its record still there.
    let mut altered = (*fresh).clone();
    altered
        .fields
        .push(Field::new("extra", FieldKind::Text(TextOptions::default())));
    let schema = tx.update_collection(altered).await.expect("updated");
    let fresh = schema.get("fresh").cloned().expect("fresh");
    assert!(fresh.field("extra").is_some());
    assert!(
        tx.schema()
            .get("fresh")
            .is_some_and(|c| c.field("extra").is_some())
    );
    assert_eq!(tx_names(&mut tx, &fresh).await, vec!["one"]);
    assert!(store.schema().get("fresh").is_none());

    tx.commit().await.expect("commits");
    let published = store.schema().get("fresh").cloned().expect("published");
    assert!(published.field("extra").is_some());
    let found = store
        .get_record(Arc::clone(&published), record.id(), Vec::new())
        .await
        .expect("reads");
    assert_eq!(found.map(|r| r.data["name"].clone()), Some(json!("one")));

    // Deleted and imported inside a transaction, then rolled back: the shared schema stays.
    let mut tx = store.begin(None).await.expect("begins");
    let schema = tx.delete_collection(&published.id).await.expect("deleted");
    assert!(schema.get("fresh").is_none());
    let schema = tx
        .import_collections(vec![base("imported", &["name"])], false)
        .await
        .expect("imported");
    assert!(schema.get("imported").is_some());
    tx.rollback().await.expect("rolls back");
    assert!(store.schema().get("fresh").is_some());
    assert!(store.schema().get("imported").is_none());
    assert_eq!(names(&store, &published).await, vec!["one"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn change_log_consumers_wake_only_after_commit() {
    let (_dir, store) = open().await;
    let items = with_items(&store).await;
    let start = store.last_change_seq().await.expect("seq");
    let waiter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.wait_for_changes(start).await })
    };
    let mut tx = store.begin(None).await.expect("begins");
    tx_create(&mut tx, &items, "a").await.expect("created");
    tx_create(&mut tx, &items, "b").await.expect("created");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiter.is_finished(), "nothing committed yet");
    assert_eq!(store.last_change_seq().await.expect("seq"), start);
    assert!(
        store
            .changes_after(start, 10)
            .await
            .expect("read")
            .is_empty()
    );

    tx.commit().await.expect("commits");
    tokio::time::timeout(secs(5), waiter)
        .await
        .expect("woken")
        .expect("joined")
        .expect("not closed");
    assert_eq!(store.last_change_seq().await.expect("seq"), start + 2);
    assert_eq!(store.changes_after(start, 10).await.expect("read").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn savepoints_nest() {
    let (dir, store) = open().await;
    let items = with_items(&store).await;
    let seq = store.last_change_seq().await.expect("seq");
    let mut tx = store.begin(None).await.expect("begins");
    tx_create(&mut tx, &items, "a").await.expect("created");

    // Rolled back to: records, params, collections and the tx's schema all go.
    tx.savepoint().await.expect("savepoint");
    tx_create(&mut tx, &items, "b").await.expect("created");
    tx.set_param("inner", json!(true)).await.expect("set");
    tx.create_collection(base("inner", &["name"]))
        .await
        .expect("created");
    tx.record_migration("1_inner.js", 1)
        .await
        .expect("recorded");
    assert!(tx.schema().get("inner").is_some());
    tx.rollback_to_savepoint().await.expect("rolled back");
    assert_eq!(tx_names(&mut tx, &items).await, vec!["a"]);
    assert_eq!(tx.get_param("inner").await.expect("read"), None);
    assert!(tx.schema().get("inner").is_none());
    assert!(tx.applied_migrations().await.expect("listed").is_empty());

    // Released: kept.
    tx.savepoint().await.expect("savepoint");
    tx_create(&mut tx, &items, "c").await.expect("created");
    tx.release_savepoint().await.expect("released");

    // No savepoint left to close.
    let error = tx.rollback_to_savepoint().await.expect_err("none open");
    assert!(matches!(error, StoreError::Internal(_)), "{error:?}");
    let error = tx.release_savepoint().await.expect_err("none open");
    assert!(matches!(error, StoreError::Internal(_)), "{error:?}");

    // Two levels: the inner one undone, the outer one kept.
    tx.savepoint().await.expect("outer");
    tx_create(&mut tx, &items, "d").await.expect("created");
    tx.savepoint().await.expect("inner");
    tx_create(&mut tx, &items, "e").await.expect("created");
    tx.rollback_to_savepoint().await.expect("inner undone");
    tx.release_savepoint().await.expect("outer kept");
    assert_eq!(tx_names(&mut tx, &items).await, vec!["a", "c", "d"]);
    tx.commit().await.expect("commits");

    assert_eq!(names(&store, &items).await, vec!["a", "c", "d"]);
    // The change log holds exactly what committed.
    let logged: Vec<Value> = store
        .changes_after(seq, 100)
        .await
        .expect("read")
        .into_iter()
        .map(|c| c.record.data["name"].clone())
        .collect();
    assert_eq!(logged, vec![json!("a"), json!("c"), json!("d")]);
    change_log_size_is_exact(&store, &dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn migration_bookkeeping() {
    let (_dir, store) = open().await;
    // The store's own steps share the table but are not the app's.
    assert!(store.applied_migrations().await.expect("listed").is_empty());
    let error = store
        .record_migration("1_system_tables", 1)
        .await
        .expect_err("reserved");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    let error = store
        .forget_migration("1_system_tables")
        .await
        .expect_err("reserved");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");

    store
        .record_migration("2_b.js", 20)
        .await
        .expect("recorded");
    store
        .record_migration("1_a.js", 10)
        .await
        .expect("recorded");
    store
        .record_migration("0_z.js", 10)
        .await
        .expect("recorded");
    assert_eq!(
        store.applied_migrations().await.expect("listed"),
        vec![
            ("0_z.js".to_owned(), 10),
            ("1_a.js".to_owned(), 10),
            ("2_b.js".to_owned(), 20)
        ]
    );
    // Recording again moves it.
    store
        .record_migration("0_z.js", 30)
        .await
        .expect("recorded");
    let mut tx = store.begin(None).await.expect("begins");
    assert!(tx.forget_migration("1_a.js").await.expect("forgot"));
    assert!(!tx.forget_migration("1_a.js").await.expect("nothing left"));
    assert_eq!(
        tx.applied_migrations().await.expect("listed"),
        vec![("2_b.js".to_owned(), 20), ("0_z.js".to_owned(), 30)]
    );
    tx.commit().await.expect("commits");
    assert!(store.forget_migration("2_b.js").await.expect("forgot"));
    assert_eq!(
        store.applied_migrations().await.expect("listed"),
        vec![("0_z.js".to_owned(), 30)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_update_ends_the_transaction_and_frees_the_writer() {
    let (_dir, store) = open().await;
    let items = with_items(&store).await;
    let existing = store
        .write(vec![create_op(&items, "x")])
        .await
        .expect("written")
        .remove(0)
        .record()
        .clone();
    let mut tx = store.begin(None).await.expect("begins");
    tx_create(&mut tx, &items, "in-tx").await.expect("created");
    let apply: domain::UpdateFn = Box::new(|_| panic!("a hook bug"));
    let error = tx
        .write(vec![WriteOp::Update {
            collection: Arc::clone(&items),
            id: existing.id().to_owned(),
            guard: None,
            apply,
            known: None,
        }])
        .await
        .expect_err("panicked");
    assert!(matches!(error.error, StoreError::Internal(_)), "{error:?}");
    let error = tx.get_param("x").await.expect_err("ended");
    assert!(matches!(error, StoreError::Internal(_)), "{error:?}");
    drop(tx);
    let started = Instant::now();
    store
        .write(vec![create_op(&items, "after")])
        .await
        .expect("written");
    assert!(started.elapsed() < secs(5));
    assert_eq!(names(&store, &items).await, vec!["x", "after"]);
}
