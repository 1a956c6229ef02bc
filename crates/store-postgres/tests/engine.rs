//! What only the PostgreSQL engine has to say: its own bounds (identifier length, the NUL
//! character), several stores on one database seeing each other's work, and the bookkeeping
//! tables the SQL console may not write. Skipped without `PLINTH_TEST_PG`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use domain::collection::{Collection, CollectionType};
use domain::field::{Field, FieldKind, TextOptions};
use domain::record::RecordData;
use domain::store::{SqlLimits, SqlOutcome};
use domain::{Store, StoreError, WriteOp};
use serde_json::json;
use store_postgres::{PgOptions, PgStore};

fn base(name: &str) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Base, name);
    collection.id = domain::ids::collection_id("base", name);
    collection
        .fields
        .push(Field::new("title", FieldKind::Text(TextOptions::default())));
    collection
}

async fn open(url: &str) -> Arc<PgStore> {
    PgStore::open(url, PgOptions::default())
        .await
        .expect("the store opens")
}

fn create(collection: &Arc<Collection>, title: &str) -> WriteOp {
    let mut data = RecordData::new();
    for field in &collection.fields {
        data.insert(field.name.clone(), field.zero_value());
    }
    data.insert("id".into(), json!(domain::ids::new_record_id()));
    data.insert("title".into(), json!(title));
    WriteOp::Create {
        collection: Arc::clone(collection),
        data,
        guard: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_past_postgresql_identifier_length_are_refused() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, url) = common::fresh_database(&admin, "engine").await;
    let store = open(&url).await;
    // 63 bytes is PostgreSQL's longest identifier; one more would be cut short silently.
    let longest = "n".repeat(63);
    store
        .create_collection(base(&longest))
        .await
        .expect("63 bytes fit");
    let error = store
        .create_collection(base(&"n".repeat(64)))
        .await
        .expect_err("64 bytes do not");
    assert!(
        matches!(&error, StoreError::Schema(message) if message.contains("63 bytes")),
        "{error:?}"
    );
    let mut long_field = base("fields");
    long_field.fields.push(Field::new(
        &"f".repeat(64),
        FieldKind::Text(TextOptions::default()),
    ));
    assert!(matches!(
        store.create_collection(long_field).await,
        Err(StoreError::Schema(_))
    ));
    store.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nul_character_is_a_field_error() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, url) = common::fresh_database(&admin, "engine").await;
    let store = open(&url).await;
    let schema = store
        .create_collection(base("notes"))
        .await
        .expect("created");
    let notes = Arc::clone(schema.get("notes").expect("notes"));
    let error = store
        .write(vec![create(&notes, "a\0b")])
        .await
        .expect_err("PostgreSQL text cannot hold NUL");
    let StoreError::Validation(errors) = error.error else {
        panic!("a field error, not {:?}", error.error);
    };
    assert!(format!("{errors:?}").contains("title"), "{errors:?}");
    store
        .write(vec![create(&notes, "ab")])
        .await
        .expect("the same write without NUL");
    store.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_on_one_database_see_each_others_writes_and_schema() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, url) = common::fresh_database(&admin, "engine").await;
    let a = open(&url).await;
    let b = open(&url).await;
    let schema = a.create_collection(base("notes")).await.expect("created");
    let notes = Arc::clone(schema.get("notes").expect("notes"));
    // B learns of the schema change through its listener (or, at worst, its poll).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while b.schema().get("notes").is_none() {
        assert!(tokio::time::Instant::now() < deadline, "B never saw notes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Writes from both stores land in one log, in commit order, and wake the other's waiters.
    let start = b.last_change_seq().await.expect("seq");
    let waiter = {
        let b = Arc::clone(&b);
        tokio::spawn(async move { b.wait_for_changes(start).await })
    };
    a.write(vec![create(&notes, "from a")])
        .await
        .expect("a writes");
    tokio::time::timeout(Duration::from_secs(3), waiter)
        .await
        .expect("B is woken")
        .expect("joined")
        .expect("no error");
    b.write(vec![create(&notes, "from b")])
        .await
        .expect("b writes");
    let changes = a.changes_after(start, 10).await.expect("read");
    let titles: Vec<&str> = changes
        .iter()
        .map(|c| c.record.data["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(titles, ["from a", "from b"]);
    assert!(changes[0].seq < changes[1].seq);
    // The pool reports itself as one queue for the metrics page.
    let stats = a.stats();
    assert_eq!(stats.queues.len(), 1);
    assert_eq!(stats.queues[0].name, "pool");
    assert_eq!(stats.queues[0].threads, 16, "the default pool size");
    assert_eq!(stats.queues[0].queued, 0);
    a.close().await.expect("closed");
    b.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sql_console_cannot_write_bookkeeping_tables() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, url) = common::fresh_database(&admin, "engine").await;
    let store = open(&url).await;
    let limits = SqlLimits {
        max_rows: 10,
        max_bytes: 1 << 20,
    };
    for sql in [
        "UPDATE _collections SET name = 'x'",
        "WITH gone AS (DELETE FROM _params RETURNING 1) SELECT count(*) FROM gone",
        "DROP TABLE users",
        "SET statement_timeout = 0",
    ] {
        let outcome = store.run_sql(sql, limits).await.expect("answered");
        assert!(
            matches!(outcome, SqlOutcome::Failed(_)),
            "{sql}: {outcome:?}"
        );
    }
    let SqlOutcome::Done(output) = store
        .run_sql("SELECT count(*) AS n FROM _collections", limits)
        .await
        .expect("answered")
    else {
        panic!("reading bookkeeping tables is allowed");
    };
    assert_eq!(output.columns[0].name, "n");
    assert_ne!(output.rows[0][0].as_deref(), Some("0"));
    store.close().await.expect("closed");
}

/// A write that gives up inside its transaction (its lock wait timed out, or its caller went
/// away) must not hand the connection back to the pool mid-transaction: the next caller would
/// run in an aborted transaction, or keep the writer lock held for everyone. With two pooled
/// connections, a few such writes would poison the whole pool.
#[tokio::test(flavor = "multi_thread")]
async fn writes_that_give_up_leave_the_pool_clean() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, url) = common::fresh_database(&admin, "engine").await;
    let store = PgStore::open(
        &url,
        PgOptions {
            pool_size: 2,
            query_timeout: Some(Duration::from_millis(300)),
            ..PgOptions::default()
        },
    )
    .await
    .expect("the store opens");
    let schema = store
        .create_collection(base("notes"))
        .await
        .expect("created");
    let notes = Arc::clone(schema.get("notes").expect("notes"));

    // Another session holds the writer lock.
    let (holder, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    let driver = tokio::spawn(connection);
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({})",
            store_postgres::WRITE_LOCK
        ))
        .await
        .expect("holds the lock");
    for i in 0..3 {
        // Times out waiting for the lock, inside its BEGIN.
        let error = store
            .write(vec![create(&notes, &format!("late {i}"))])
            .await
            .expect_err("the lock is held elsewhere");
        assert!(matches!(error.error, StoreError::TimedOut), "{error:?}");
        // Dropped by its caller while waiting for the lock.
        let dropped = tokio::time::timeout(
            Duration::from_millis(50),
            store.write(vec![create(&notes, &format!("gone {i}"))]),
        )
        .await;
        assert!(dropped.is_err(), "the write was still waiting");
    }
    holder.batch_execute("ROLLBACK").await.expect("released");

    // Every pooled connection is usable, and the writer lock is free, for many calls in a row.
    for i in 0..6 {
        store
            .write(vec![create(&notes, &format!("after {i}"))])
            .await
            .unwrap_or_else(|error| panic!("write {i} after the lock was released: {error:?}"));
        store
            .last_change_seq()
            .await
            .unwrap_or_else(|error| panic!("read {i}: {error:?}"));
    }
    let titles: Vec<String> = store
        .changes_after(0, 100)
        .await
        .expect("read")
        .into_iter()
        .filter_map(|c| c.record.data["title"].as_str().map(str::to_owned))
        .collect();
    assert!(
        titles.iter().all(|t| t.starts_with("after")),
        "only the writes that reported success are stored: {titles:?}"
    );
    assert_eq!(titles.len(), 6);
    driver.abort();
    store.close().await.expect("closed");
}

/// A fresh database's store with a change-log budget of `max_bytes`, its `notes` collection,
/// and the log's head before any note was written.
async fn notes_within(
    admin: &str,
    max_bytes: u64,
) -> (common::TestDatabase, Arc<PgStore>, Arc<Collection>, u64) {
    let (database, url) = common::fresh_database(admin, "engine").await;
    let store = PgStore::open(
        &url,
        PgOptions {
            change_log_max_bytes: max_bytes,
            ..PgOptions::default()
        },
    )
    .await
    .expect("the store opens");
    let schema = store
        .create_collection(base("notes"))
        .await
        .expect("created");
    let notes = Arc::clone(schema.get("notes").expect("notes"));
    let start = store.last_change_seq().await.expect("seq");
    (database, store, notes, start)
}

/// Letters PostgreSQL cannot compress (a linear congruential sequence).
struct Noise(u64);

impl Default for Noise {
    fn default() -> Self {
        Noise(0x2545_f491)
    }
}

impl Noise {
    fn text(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                char::from(b'a' + ((self.0 >> 33) % 26) as u8)
            })
            .collect()
    }
}

/// Between the fan-out's prunes (a minute apart), writes themselves keep the log near its
/// byte budget: after each quarter of the budget a node writes, it prunes the entries its
/// readers have passed down to the budget, and keeps every entry they have not read.
#[tokio::test(flavor = "multi_thread")]
async fn writes_prune_the_change_log_to_its_byte_budget_as_they_go() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, store, notes, start) = notes_within(&admin, 80_000).await;
    let mut noise = Noise::default();
    let write = async |count: usize, noise: &mut Noise| {
        for i in 0..count {
            let text = noise.text(4_000);
            store
                .write(vec![create(&notes, &format!("{i} {text}"))])
                .await
                .expect("written");
        }
    };
    // 160 kB, twice the budget, that no reader has read: every entry stays, though the
    // writes started prunes.
    write(40, &mut noise).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let unread = store.changes_after(start, 100).await.expect("read");
    assert_eq!(unread.len(), 40, "entries no reader has read are kept");
    // The fan-out has passed them; the next quarter of the budget written prunes them down
    // to the newest that fit (20 entries of 4 kB), with no call to `prune_changes`.
    let read = unread.last().map(|c| c.seq).expect("a newest entry");
    store.skipped_changes(read);
    write(6, &mut noise).await;
    let newest = store.last_change_seq().await.expect("seq");
    let mut kept = Vec::new();
    for _ in 0..100 {
        kept = store.changes_after(start, 100).await.expect("read");
        if kept.len() <= 26 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (15..=26).contains(&kept.len()),
        "the budget (80 kB) and a quarter of it in 4 kB entries: {}",
        kept.len()
    );
    assert_eq!(kept.last().map(|c| c.seq), Some(newest), "the newest stay");
    store.close().await.expect("closed");
}

/// The change log's byte budget holds on PostgreSQL too: a prune keeps the newest entries that
/// fit and drops older ones, but never one past what the caller has read.
#[tokio::test(flavor = "multi_thread")]
async fn pruning_keeps_the_change_log_in_its_byte_budget() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, store, notes, start) = notes_within(&admin, 20_000).await;
    // Text PostgreSQL cannot compress, so each entry stores about 4 kB.
    let mut noise = Noise::default();
    for i in 0..20 {
        let text = noise.text(4_000);
        store
            .write(vec![create(&notes, &format!("{i} {text}"))])
            .await
            .expect("written");
    }
    let all = store.changes_after(start, 100).await.expect("read");
    assert_eq!(all.len(), 20);
    let retention = domain::store::ChangeRetention::default();
    // Read only up to the fifth: at most those five may go, however far over budget.
    let fifth = all[4].seq;
    let pruned = store.prune_changes(fifth, retention).await.expect("pruned");
    assert_eq!(pruned, 5);
    // Read up to the end: the oldest go until the rest fit.
    let newest = all[19].seq;
    store
        .prune_changes(newest, retention)
        .await
        .expect("pruned");
    let kept = store.changes_after(start, 100).await.expect("read");
    assert!(
        (2..=5).contains(&kept.len()),
        "about 20 kB of 4 kB entries: {}",
        kept.len()
    );
    assert_eq!(kept.last().map(|c| c.seq), Some(newest), "the newest stays");
    store.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_checked_against_a_collection_another_node_changed_is_refused() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, url) = common::fresh_database(&admin, "engine").await;
    let (a, b) = (open(&url).await, open(&url).await);
    a.create_collection(base("notes")).await.expect("created");
    // B looks the new collection up in the database rather than waiting for the wake-up.
    b.catch_up().await.expect("caught up");
    let seen_by_b = Arc::clone(b.schema().get("notes").expect("B knows notes"));

    // A adds a field; B's request was checked against the collection without it.
    let mut changed = (*seen_by_b).clone();
    changed
        .fields
        .push(Field::new("body", FieldKind::Text(TextOptions::default())));
    a.update_collection(changed).await.expect("updated");
    let error = b
        .write(vec![create(&seen_by_b, "stale")])
        .await
        .expect_err("the collection changed under the request");
    assert!(matches!(error.error, StoreError::Schema(_)), "{error:?}");
    // Nothing was stored, and B now knows the new field (loaded inside that write, or by
    // the wake-up before it).
    let current = Arc::clone(b.schema().get("notes").expect("notes"));
    assert!(current.field("body").is_some(), "B reloaded the schema");
    b.write(vec![create(&current, "fresh")])
        .await
        .expect("a write checked against the current collection is stored");
    let mut page = a
        .list_records(domain::RecordQuery {
            collection: Arc::clone(&current),
            filters: Vec::new(),
            sort: Vec::new(),
            page: 1,
            per_page: 10,
            with_total: false,
        })
        .await
        .expect("listed");
    assert_eq!(page.items.len(), 1, "only the fresh write was stored");
    let titles: Vec<_> = page
        .items
        .drain(..)
        .map(|r| r.data.get("title").cloned())
        .collect();
    assert_eq!(titles, [Some(json!("fresh"))]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_message_is_taken_once_and_expires() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, url) = common::fresh_database(&admin, "engine").await;
    let (a, b) = (open(&url).await, open(&url).await);
    assert!(a.shared());
    let client = "c".repeat(40);
    let id = a
        .post_relay(
            &client,
            "@oauth2",
            r#"{"code":"x"}"#,
            Duration::from_secs(5),
        )
        .await
        .expect("posted");
    // B is woken for it.
    tokio::time::timeout(Duration::from_secs(5), b.wait_for_relays(id - 1))
        .await
        .expect("woken within the poll interval")
        .expect("waited");
    let seen = b.relays_after(0, 10).await.expect("read");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (
            seen[0].id,
            seen[0].client_id.as_str(),
            seen[0].data.as_str()
        ),
        (id, client.as_str(), r#"{"code":"x"}"#)
    );
    assert!(!a.relay_taken(id).await.expect("asked"));
    // Two nodes race to take it: exactly one wins.
    let (first, second) = tokio::join!(a.take_relay(id), b.take_relay(id));
    assert_eq!(
        [first.expect("took"), second.expect("took")]
            .iter()
            .filter(|won| **won)
            .count(),
        1
    );
    assert!(a.relay_taken(id).await.expect("asked"));
    assert!(
        b.relays_after(0, 10).await.expect("read").is_empty(),
        "taken"
    );

    // One that expires is neither listed nor taken.
    let short = a
        .post_relay(&client, "@oauth2", "{}", Duration::from_millis(50))
        .await
        .expect("posted");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b.relays_after(id, 10).await.expect("read").is_empty());
    assert!(!b.take_relay(short).await.expect("asked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_waits_for_every_live_node_to_read() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (_database, url) = common::fresh_database(&admin, "engine").await;
    let (a, b) = (open(&url).await, open(&url).await);
    let schema = a.create_collection(base("notes")).await.expect("created");
    let notes = Arc::clone(schema.get("notes").expect("notes"));
    for n in 0..6 {
        a.write(vec![create(&notes, &format!("n{n}"))])
            .await
            .expect("written");
    }
    let seqs: Vec<u64> = a
        .changes_after(0, 100)
        .await
        .expect("read")
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs.len(), 6);
    let everything = domain::ChangeRetention {
        max_entries: 0,
        max_age_secs: 0,
    };
    // B has read two changes, A all six: A's prune keeps what B has not read.
    b.prune_changes(seqs[1], everything)
        .await
        .expect("B reports");
    a.prune_changes(seqs[5], everything)
        .await
        .expect("A prunes");
    let left: Vec<u64> = b
        .changes_after(0, 100)
        .await
        .expect("read")
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(left, seqs[2..].to_vec(), "B's unread changes are kept");

    // B goes silent past the timeout: it no longer holds pruning back.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    let driver = tokio::spawn(connection);
    let cursor = i64::try_from(seqs[1]).expect("small");
    let silenced = client
        .execute(
            "UPDATE _readers SET seen = now() - interval '1 hour' WHERE cursor = $1",
            &[&cursor],
        )
        .await
        .expect("updated");
    assert_eq!(silenced, 1, "B has one row");
    a.prune_changes(seqs[5], everything)
        .await
        .expect("A prunes");
    assert!(
        a.changes_after(0, 100).await.expect("read").is_empty(),
        "everything A read is gone once B is"
    );
    driver.abort();
}
