//! Concurrent writers: read-modify-write updates lose nothing, a unique index admits one of
//! several racing creates, and a reader tailing the change log from its cursor misses no entry
//! while writes commit around it (what realtime on several nodes relies on).

use std::collections::BTreeSet;
use std::sync::Arc;

use domain::{Record, WriteOp};
use serde_json::json;

use crate::Engine;
use crate::support::{base, number, open, record_data, text, validation_code};

const WRITERS: usize = 8;
const WRITES_EACH: usize = 10;

pub async fn concurrent_updates_lose_nothing(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("counters", vec![number("n")]))
        .await;
    let counter = fx.create("counters", json!({"n": 0})).await;
    let counters = fx.collection("counters");
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = Arc::clone(&fx.store);
        let counters = Arc::clone(&counters);
        let id = counter.id().to_owned();
        tasks.push(tokio::spawn(async move {
            for _ in 0..WRITES_EACH {
                store
                    .write(vec![WriteOp::Update {
                        collection: Arc::clone(&counters),
                        id: id.clone(),
                        guard: None,
                        apply: Box::new(|current: &Record| {
                            let mut data = current.data.clone();
                            let n = current.data["n"].as_i64().unwrap_or(-1_000_000);
                            data.insert("n".into(), json!(n + 1));
                            Ok(data)
                        }),
                        known: None,
                    }])
                    .await
                    .expect("incremented");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer finished");
    }
    let stored = fx.get("counters", counter.id()).await.expect("stored");
    assert_eq!(
        stored.data["n"],
        json!(WRITERS * WRITES_EACH),
        "{}: every increment read the one before",
        fx.engine
    );
}

pub async fn concurrent_duplicate_creates_admit_one(engine: &Engine) {
    let fx = open(engine).await;
    let mut items = base("items", vec![text("name")]);
    items.indexes = vec!["CREATE UNIQUE INDEX idx_items_name ON items (name)".into()];
    let items = fx.create_collection(items).await;
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = Arc::clone(&fx.store);
        let items = Arc::clone(&items);
        tasks.push(tokio::spawn(async move {
            let data = record_data(&items, json!({"name": "only"}));
            store
                .write(vec![WriteOp::Create {
                    collection: items,
                    data,
                    guard: None,
                }])
                .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.expect("writer finished") {
            Ok(_) => created += 1,
            Err(error) => assert_eq!(
                validation_code(&error.error, "name").as_deref(),
                Some("validation_not_unique"),
                "{}: a losing create is a unique violation, not {:?}",
                fx.engine,
                error.error
            ),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(fx.count("items").await, 1);
}

pub async fn a_tailing_reader_misses_no_entry_under_concurrent_writes(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("events", vec![text("who")]))
        .await;
    let events = fx.collection("events");
    let start = fx.last_seq().await;
    let mut writers = Vec::new();
    for worker in 0..WRITERS {
        let store = Arc::clone(&fx.store);
        let events = Arc::clone(&events);
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..WRITES_EACH {
                let data = record_data(&events, json!({"who": format!("w{worker}-{n}")}));
                let results = store
                    .write(vec![WriteOp::Create {
                        collection: Arc::clone(&events),
                        data,
                        guard: None,
                    }])
                    .await
                    .expect("created");
                ids.push(results[0].record().id().to_owned());
            }
            ids
        }));
    }
    // Tail as realtime does: read after the cursor, move the cursor to the newest entry read.
    let mut seen = BTreeSet::new();
    let mut cursor = start;
    let expected_total = WRITERS * WRITES_EACH;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < expected_total && std::time::Instant::now() < deadline {
        let batch = fx.store.changes_after(cursor, 7).await.expect("read");
        for change in &batch {
            assert!(
                change.seq > cursor,
                "{}: an entry at or before the cursor",
                fx.engine
            );
            seen.insert(change.record_id.clone());
        }
        match batch.last() {
            Some(last) => cursor = last.seq,
            None => tokio::task::yield_now().await,
        }
    }
    let mut written = BTreeSet::new();
    for writer in writers {
        written.extend(writer.await.expect("writer finished"));
    }
    assert_eq!(written.len(), expected_total);
    let missed: Vec<&String> = written.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "{}: the tailing reader never saw {} of {expected_total} committed creates",
        fx.engine,
        missed.len()
    );
}
