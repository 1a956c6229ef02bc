//! The change log: one entry per changed record, written in the write's transaction (none for
//! a write that rolled back), strictly ordered, read from a cursor, without secrets; the
//! wake-up after commit; pruning within its bounds.

use std::time::Duration;

use domain::collection::USERS_NAME;
use domain::{ChangeAction, ChangeRetention};
use serde_json::json;

use crate::Engine;
use crate::support::{Fixture, base, open, relation, text};

async fn items(fx: &Fixture) {
    let mut items = base("items", vec![text("name")]);
    items.indexes = vec!["CREATE UNIQUE INDEX idx_items_name ON items (name)".into()];
    fx.create_collection(items).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub async fn a_fresh_store_has_an_empty_change_log(engine: &Engine) {
    let fx = open(engine).await;
    assert_eq!(fx.last_seq().await, 0);
    assert!(fx.changes_since(0).await.is_empty());
}

pub async fn writes_append_entries_in_commit_order(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let start = fx.last_seq().await;
    let before = now_ms();
    let item = fx.create("items", json!({"name": "one"})).await;
    fx.update("items", item.id(), json!({"name": "uno"})).await;
    let results = fx
        .write(vec![
            fx.create_op("items", json!({"name": "two"})),
            fx.create_op("items", json!({"name": "three"})),
            fx.delete_op("items", item.id()),
        ])
        .await
        .expect("written");
    let after = now_ms();
    let changes = fx.changes_since(start).await;
    let summary: Vec<(ChangeAction, String)> = changes
        .iter()
        .map(|c| (c.action, c.record.text("name").to_owned()))
        .collect();
    assert_eq!(
        summary,
        [
            (ChangeAction::Create, "one".to_owned()),
            (ChangeAction::Update, "uno".to_owned()),
            (ChangeAction::Create, "two".to_owned()),
            (ChangeAction::Create, "three".to_owned()),
            (ChangeAction::Delete, "uno".to_owned()),
        ],
        "a delete records the last state"
    );
    let items_id = fx.collection("items").id.clone();
    for (n, change) in changes.iter().enumerate() {
        assert_eq!(change.collection_id, items_id);
        assert_eq!(change.record_id, change.record.id());
        assert!(
            (before - 1000..=after + 1000).contains(&change.created_ms),
            "entry {n} committed at {} (between {before} and {after})",
            change.created_ms
        );
        if n > 0 {
            assert!(change.seq > changes[n - 1].seq, "strictly increasing");
        }
    }
    assert_eq!(changes[2].record_id, results[0].record().id());
    assert_eq!(
        changes[2].record,
        *results[0].record(),
        "the record after the write"
    );
    assert_eq!(
        fx.last_seq().await,
        changes.last().expect("entries").seq,
        "last_change_seq is the newest entry"
    );
}

pub async fn a_rolled_back_write_appends_nothing(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    fx.create("items", json!({"name": "taken"})).await;
    let seq = fx.last_seq().await;
    let error = fx
        .write(vec![
            fx.create_op("items", json!({"name": "fresh"})),
            fx.create_op("items", json!({"name": "taken"})),
        ])
        .await
        .expect_err("duplicate");
    assert_eq!(error.index, 1);
    assert!(fx.changes_since(seq).await.is_empty());
    assert_eq!(fx.last_seq().await, seq);
    // Sequences are not reused after a rollback either.
    fx.create("items", json!({"name": "next"})).await;
    let changes = fx.changes_since(seq).await;
    assert_eq!(changes.len(), 1);
    assert!(changes[0].seq > seq);
    assert_eq!(changes[0].record.text("name"), "next");
}

pub async fn changes_are_read_from_a_cursor(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    for n in 0..7 {
        fx.create("items", json!({"name": format!("n{n}")})).await;
    }
    let everything = fx.changes_since(0).await;
    assert_eq!(everything.len(), 7);
    let limited = fx.store.changes_after(0, 3).await.expect("read");
    assert!(
        (1..=3).contains(&limited.len()),
        "at most the limit, at least one while any is left: {}",
        limited.len()
    );
    let seqs = |changes: &[domain::Change]| changes.iter().map(|c| c.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(&limited),
        seqs(&everything[..limited.len()]),
        "oldest first"
    );
    let middle = everything[3].seq;
    let rest = fx.changes_since(middle).await;
    assert_eq!(
        seqs(&rest),
        seqs(&everything[4..]),
        "strictly after the cursor"
    );
    let last = everything[6].seq;
    assert!(
        fx.store
            .changes_after(last, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert!(
        fx.store
            .changes_after(last + 100, 10)
            .await
            .expect("read")
            .is_empty()
    );
}

/// Snapshot bytes one read of the log returns at most past its first entry, on every engine:
/// a batch of large records is cut short and its reader asks again, so the fan-out never holds
/// hundreds of them at once.
const READ_BATCH_BYTES: usize = 4 << 20;

pub async fn a_read_of_the_change_log_is_cut_short_by_snapshot_bytes(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("blobs", vec![text("body")]))
        .await;
    let start = fx.last_seq().await;
    let body = "x".repeat(READ_BATCH_BYTES / 2 + 1);
    for _ in 0..4 {
        fx.create("blobs", json!({ "body": body })).await;
    }
    let first = fx.store.changes_after(start, 100).await.expect("read");
    assert_eq!(first.len(), 2, "the second snapshot reaches the budget");
    let rest = fx
        .store
        .changes_after(first[1].seq, 100)
        .await
        .expect("read");
    assert_eq!(rest.len(), 2, "the reader asks again for the rest");
    let huge = "x".repeat(READ_BATCH_BYTES + 1);
    fx.create("blobs", json!({ "body": huge })).await;
    let last = fx
        .store
        .changes_after(rest[1].seq, 100)
        .await
        .expect("read");
    assert_eq!(last.len(), 1, "one entry is always returned");
    assert_eq!(last[0].record.text("body").len(), huge.len());
}

pub async fn cascades_are_logged_with_their_write(engine: &Engine) {
    let fx = open(engine).await;
    let parents = fx
        .create_collection(base("parents", vec![text("name")]))
        .await;
    fx.create_collection(base(
        "children",
        vec![relation("parent", &parents.id, 1, true, true)],
    ))
    .await;
    fx.create_collection(base(
        "mentions",
        vec![relation("parent", &parents.id, 1, false, false)],
    ))
    .await;
    let parent = fx.create("parents", json!({"name": "p"})).await;
    let child = fx.create("children", json!({"parent": parent.id()})).await;
    let mention = fx.create("mentions", json!({"parent": parent.id()})).await;
    let seq = fx.last_seq().await;
    fx.try_delete("parents", parent.id())
        .await
        .expect("deleted");
    let mut entries = fx.change_summary(seq).await;
    entries.sort();
    let entry =
        |action: &str, name: &str, id: &str| (action.to_owned(), name.to_owned(), id.to_owned());
    assert_eq!(
        entries,
        [
            entry("delete", "children", child.id()),
            entry("delete", "parents", parent.id()),
            entry("update", "mentions", mention.id()),
        ]
    );
    let changes = fx.changes_since(seq).await;
    let cleared = changes
        .iter()
        .find(|c| c.record_id == mention.id())
        .expect("the mention's entry");
    assert_eq!(
        cleared.record.data["parent"],
        json!(""),
        "the state after the clear"
    );
    // Truncation logs every record it deletes.
    let seq = fx.last_seq().await;
    let a = fx.create("parents", json!({"name": "a"})).await;
    let b = fx.create("parents", json!({"name": "b"})).await;
    let seq_created = fx.last_seq().await;
    assert!(seq_created > seq);
    fx.store
        .truncate_collection(&parents.id)
        .await
        .expect("truncated");
    let mut entries = fx.change_summary(seq_created).await;
    entries.sort();
    let mut expected = vec![
        entry("delete", "parents", a.id()),
        entry("delete", "parents", b.id()),
    ];
    expected.sort();
    assert_eq!(entries, expected);
}

pub async fn the_change_log_keeps_no_secrets(engine: &Engine) {
    let fx = open(engine).await;
    let hash = "$2a$10$firsthashfirsthashfirsthashfirsthash";
    let first_key = "firstTokenKeyfirstTokenKeyfirstTokenKey";
    let user = fx
        .create(
            USERS_NAME,
            json!({"email": "a@example.com", "password": hash, "tokenKey": first_key}),
        )
        .await;
    fx.update(USERS_NAME, user.id(), json!({"name": "Ann"}))
        .await;
    let secret_free = |changes: &[domain::Change], key: &str| {
        for change in changes {
            let text = serde_json::to_string(&change.record.data).expect("json");
            assert!(
                !text.contains(hash),
                "{}: a password hash in the log: {text}",
                fx.engine
            );
            assert_eq!(
                change.record.text("tokenKey"),
                key,
                "{}: the entry carries the current tokenKey",
                fx.engine
            );
        }
    };
    let changes = fx.changes_since(0).await;
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[1].record.text("name"),
        "Ann",
        "what subscribers may see stays"
    );
    assert_eq!(changes[1].record.text("email"), "a@example.com");
    secret_free(&changes, first_key);
    fx.update(
        USERS_NAME,
        user.id(),
        json!({"tokenKey": "rotatedKeyrotatedKeyrotatedKey"}),
    )
    .await;
    secret_free(&fx.changes_since(0).await, "rotatedKeyrotatedKeyrotatedKey");
    fx.try_delete(USERS_NAME, user.id()).await.expect("deleted");
    let changes = fx.changes_since(0).await;
    assert_eq!(changes.len(), 4);
    for change in &changes {
        let text = serde_json::to_string(&change.record.data).expect("json");
        assert!(!text.contains(hash), "{text}");
        assert!(
            !text.contains(first_key),
            "no key of a deleted record: {text}"
        );
        assert!(
            !text.contains("rotatedKeyrotatedKey"),
            "no key of a deleted record: {text}"
        );
    }
}

pub async fn wait_for_changes_wakes_after_a_commit(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let start = fx.last_seq().await;
    let waiter = {
        let store = std::sync::Arc::clone(&fx.store);
        tokio::spawn(async move { store.wait_for_changes(start).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    fx.create("items", json!({"name": "a"})).await;
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken within 5 s of the commit")
        .expect("joined")
        .expect("the store is open");
    // A change already committed past `after` resolves at once.
    tokio::time::timeout(Duration::from_secs(5), fx.store.wait_for_changes(start))
        .await
        .expect("resolves when a change is already there")
        .expect("the store is open");
}

pub async fn pruning_keeps_the_newest_and_stops_at_up_to(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    for n in 0..5 {
        fx.create("items", json!({"name": format!("n{n}")})).await;
    }
    let seqs: Vec<u64> = fx.changes_since(0).await.iter().map(|c| c.seq).collect();
    assert_eq!(seqs.len(), 5);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let everything_old = ChangeRetention {
        max_entries: 2,
        max_age_secs: 0,
    };
    let young = ChangeRetention {
        max_entries: 0,
        max_age_secs: 3600,
    };
    assert_eq!(
        fx.store
            .prune_changes(seqs[4], young)
            .await
            .expect("pruned"),
        0,
        "young entries stay"
    );
    assert_eq!(
        fx.store
            .prune_changes(seqs[0], everything_old)
            .await
            .expect("pruned"),
        1,
        "never past up_to"
    );
    assert_eq!(
        fx.store
            .prune_changes(seqs[4], everything_old)
            .await
            .expect("pruned"),
        2,
        "the newest max_entries stay"
    );
    let left: Vec<u64> = fx.changes_since(0).await.iter().map(|c| c.seq).collect();
    assert_eq!(left, seqs[3..]);
    let nothing_kept = ChangeRetention {
        max_entries: 0,
        max_age_secs: 0,
    };
    fx.store
        .prune_changes(seqs[4], nothing_kept)
        .await
        .expect("pruned");
    assert!(fx.changes_since(0).await.is_empty());
    assert_eq!(
        fx.last_seq().await,
        seqs[4],
        "the newest seq survives pruning"
    );
    fx.create("items", json!({"name": "after"})).await;
    let changes = fx.changes_since(0).await;
    assert_eq!(changes.len(), 1);
    assert!(changes[0].seq > seqs[4], "sequences are never reused");
}

pub async fn waiting_for_changes_fails_once_the_store_is_closed(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let seq = fx.last_seq().await;
    fx.store.close().await.expect("closed");
    let waited = tokio::time::timeout(Duration::from_secs(5), fx.store.wait_for_changes(seq))
        .await
        .expect("answers instead of waiting forever");
    assert!(waited.is_err(), "a closed store has no changes to wait for");
}
