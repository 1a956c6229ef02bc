//! Record writes through `Store::write`: several operations in order in one transaction, all
//! or nothing, with the failing operation's index; unique indexes as field errors.

use std::sync::Arc;

use domain::collection::USERS_NAME;
use domain::{Record, StoreError, ValidationErrors, WriteOp, WriteResult};
use serde_json::json;

use crate::Engine;
use crate::support::{Fixture, base, number, open, record_data, text, validation_code};

/// `items(name unique, rank)`.
async fn items(fx: &Fixture) {
    let mut items = base("items", vec![text("name"), number("rank")]);
    items.indexes = vec!["CREATE UNIQUE INDEX idx_items_name ON items (name)".into()];
    fx.create_collection(items).await;
}

pub async fn records_round_trip_through_writes_and_reads(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let created = fx.create("items", json!({"name": "a", "rank": 1})).await;
    assert_eq!(created.id().len(), 15);
    assert_eq!(created.data["name"], json!("a"));
    assert_eq!(fx.get("items", created.id()).await.as_ref(), Some(&created));
    let updated = fx.update("items", created.id(), json!({"rank": 2})).await;
    assert_eq!(updated.data["rank"], json!(2));
    assert_eq!(updated.data["name"], json!("a"), "untouched values stay");
    assert_eq!(fx.get("items", created.id()).await.as_ref(), Some(&updated));
    let deleted = fx.try_delete("items", created.id()).await.expect("deleted");
    let WriteResult::Deleted { record, cascaded } = deleted else {
        panic!("a delete answers Deleted, got {deleted:?}");
    };
    assert_eq!(record, updated, "the deleted record's last state");
    assert!(cascaded.is_empty());
    assert!(fx.get("items", created.id()).await.is_none());
}

pub async fn a_write_runs_its_operations_in_order(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let items = fx.collection("items");
    let data = record_data(&items, json!({"name": "a", "rank": 1}));
    let id = data["id"].as_str().expect("an id").to_owned();
    let results = fx
        .write(vec![
            WriteOp::Create {
                collection: Arc::clone(&items),
                data,
                guard: None,
            },
            WriteOp::Update {
                collection: Arc::clone(&items),
                id: id.clone(),
                guard: None,
                apply: Box::new(|current: &Record| {
                    // The create before it in the same write is visible.
                    let mut data = current.data.clone();
                    let rank = current.data["rank"].as_i64().unwrap_or(-100);
                    data.insert("rank".into(), json!(rank + 10));
                    Ok(data)
                }),
                known: None,
            },
            fx.create_op("items", json!({"name": "b"})),
            WriteOp::Delete {
                collection: Arc::clone(&items),
                id: id.clone(),
                guard: None,
            },
        ])
        .await
        .expect("written");
    assert_eq!(results.len(), 4, "one result per op");
    assert!(matches!(&results[0], WriteResult::Created(r) if r.data["rank"] == json!(1)));
    assert!(matches!(&results[1], WriteResult::Updated(r) if r.data["rank"] == json!(11)));
    assert!(matches!(&results[2], WriteResult::Created(r) if r.text("name") == "b"));
    assert!(
        matches!(&results[3], WriteResult::Deleted { record, .. } if record.data["rank"] == json!(11))
    );
    assert_eq!(fx.texts("items", "name", "").await, ["b"]);
}

pub async fn a_failed_operation_rolls_back_the_whole_write(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let existing = fx.create("items", json!({"name": "keep", "rank": 1})).await;
    let error = fx
        .write(vec![
            fx.create_op("items", json!({"name": "one"})),
            fx.update_op("items", existing.id(), json!({"name": "renamed"})),
            fx.delete_op("items", existing.id()),
            fx.create_op("items", json!({"name": "one"})),
            fx.create_op("items", json!({"name": "three"})),
        ])
        .await
        .expect_err("a duplicate name in the write");
    assert_eq!(error.index, 3, "the failing op's position");
    assert_eq!(
        validation_code(&error.error, "name").as_deref(),
        Some("validation_not_unique"),
        "{error:?}"
    );
    assert_eq!(fx.texts("items", "name", "").await, ["keep"]);
    assert_eq!(
        fx.get("items", existing.id()).await.as_ref(),
        Some(&existing),
        "the update and delete before it were undone"
    );
    // A missing record fails the same way.
    let error = fx
        .write(vec![
            fx.create_op("items", json!({"name": "two"})),
            fx.delete_op("items", "missing00000000"),
        ])
        .await
        .expect_err("nothing to delete");
    assert_eq!(error.index, 1);
    assert!(matches!(error.error, StoreError::NotFound), "{error:?}");
    assert_eq!(fx.count("items").await, 1);
}

pub async fn an_update_fn_error_rolls_back_the_write(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let existing = fx.create("items", json!({"name": "keep"})).await;
    let failing = WriteOp::Update {
        collection: fx.collection("items"),
        id: existing.id().to_owned(),
        guard: None,
        apply: Box::new(|_: &Record| {
            Err(StoreError::Validation(ValidationErrors::single(
                "rank",
                domain::FieldError::new("validation_custom", "no"),
            )))
        }),
        known: None,
    };
    let error = fx
        .write(vec![fx.create_op("items", json!({"name": "new"})), failing])
        .await
        .expect_err("apply refuses");
    assert_eq!(error.index, 1);
    assert_eq!(
        validation_code(&error.error, "rank").as_deref(),
        Some("validation_custom"),
        "the UpdateFn's own error comes back: {error:?}"
    );
    assert_eq!(fx.texts("items", "name", "").await, ["keep"]);
}

pub async fn updates_read_the_current_row_and_keep_the_id(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let record = fx.create("items", json!({"name": "a", "rank": 1})).await;
    for _ in 0..3 {
        let results = fx
            .write(vec![WriteOp::Update {
                collection: fx.collection("items"),
                id: record.id().to_owned(),
                guard: None,
                apply: Box::new(|current: &Record| {
                    let mut data = current.data.clone();
                    let rank = current.data["rank"].as_i64().unwrap_or(-100);
                    data.insert("rank".into(), json!(rank * 2));
                    data.insert("id".into(), json!("changedid000000"));
                    Ok(data)
                }),
                known: None,
            }])
            .await
            .expect("updated");
        assert_eq!(
            results[0].record().id(),
            record.id(),
            "the key never changes"
        );
    }
    let stored = fx.get("items", record.id()).await.expect("still there");
    assert_eq!(
        stored.data["rank"],
        json!(8),
        "each update read the one before"
    );
    assert!(fx.get("items", "changedid000000").await.is_none());
}

pub async fn missing_records_are_not_found(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let error = fx
        .try_update("items", "missing00000000", json!({"rank": 1}))
        .await
        .expect_err("no such record");
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
    let error = fx
        .try_delete("items", "missing00000000")
        .await
        .expect_err("no such record");
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
    assert!(fx.get("items", "missing00000000").await.is_none());
}

pub async fn unique_violations_name_the_field(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    fx.create("items", json!({"name": "a"})).await;
    let other = fx.create("items", json!({"name": "b"})).await;
    let error = fx
        .try_create("items", json!({"name": "a"}))
        .await
        .expect_err("duplicate on create");
    let StoreError::Validation(errors) = &error else {
        panic!("a unique violation is a validation error, got {error:?}");
    };
    assert_eq!(
        errors.as_map().len(),
        1,
        "only the indexed field: {errors:?}"
    );
    assert_eq!(
        validation_code(&error, "name").as_deref(),
        Some("validation_not_unique")
    );
    let error = fx
        .try_update("items", other.id(), json!({"name": "a"}))
        .await
        .expect_err("duplicate on update");
    assert_eq!(
        validation_code(&error, "name").as_deref(),
        Some("validation_not_unique"),
        "{error:?}"
    );
    assert_eq!(fx.texts("items", "name", "").await, ["a", "b"]);
}

pub async fn composite_unique_violations_name_every_field(engine: &Engine) {
    let fx = open(engine).await;
    let mut pairs = base("pairs", vec![text("a"), text("b"), text("c")]);
    pairs.indexes = vec!["CREATE UNIQUE INDEX idx_pairs_ab ON pairs (a, b)".into()];
    fx.create_collection(pairs).await;
    fx.create("pairs", json!({"a": "x", "b": "y"})).await;
    fx.create("pairs", json!({"a": "x", "b": "z"})).await;
    fx.create("pairs", json!({"a": "w", "b": "y"})).await;
    let error = fx
        .try_create("pairs", json!({"a": "x", "b": "y", "c": "new"}))
        .await
        .expect_err("same pair");
    let StoreError::Validation(errors) = &error else {
        panic!("a unique violation is a validation error, got {error:?}");
    };
    let mut fields: Vec<&String> = errors.as_map().keys().collect();
    fields.sort();
    assert_eq!(fields, ["a", "b"]);
    assert_eq!(
        validation_code(&error, "b").as_deref(),
        Some("validation_not_unique")
    );
}

pub async fn a_duplicate_id_is_a_unique_violation_of_id(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let existing = fx.create("items", json!({"name": "a"})).await;
    let error = fx
        .try_create("items", json!({"id": existing.id(), "name": "b"}))
        .await
        .expect_err("duplicate id");
    assert_eq!(
        validation_code(&error, "id").as_deref(),
        Some("validation_not_unique"),
        "{error:?}"
    );
    assert_eq!(fx.texts("items", "name", "").await, ["a"]);
}

pub async fn auth_emails_are_unique_but_may_be_empty(engine: &Engine) {
    let fx = open(engine).await;
    let user = |email: &str| json!({"email": email, "tokenKey": domain::ids::random_alnum(50), "password": "hash"});
    fx.create(USERS_NAME, user("dup@example.com")).await;
    let error = fx
        .try_create(USERS_NAME, user("dup@example.com"))
        .await
        .expect_err("duplicate email");
    assert_eq!(
        validation_code(&error, "email").as_deref(),
        Some("validation_not_unique"),
        "{error:?}"
    );
    // The email index leaves empty emails out.
    fx.create(USERS_NAME, user("")).await;
    fx.create(USERS_NAME, user("")).await;
    assert_eq!(fx.count(USERS_NAME).await, 3);
}

pub async fn a_failing_create_guard_rolls_back(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let items = fx.collection("items");
    let seq = fx.last_seq().await;
    let error = fx
        .write(vec![
            fx.create_op("items", json!({"name": "first"})),
            WriteOp::Create {
                collection: Arc::clone(&items),
                data: record_data(&items, json!({"name": "a", "rank": 1})),
                guard: Some(fx.filter("items", "rank = 2")),
            },
        ])
        .await
        .expect_err("the guard does not hold");
    assert_eq!(error.index, 1);
    assert!(
        matches!(error.error, StoreError::GuardRejected),
        "{error:?}"
    );
    assert_eq!(fx.count("items").await, 0, "the whole write rolled back");
    assert_eq!(fx.last_seq().await, seq, "and logged nothing");
    // The guard reads the inserted row, other rows included.
    fx.create("items", json!({"name": "other", "rank": 5}))
        .await;
    let results = fx
        .write(vec![WriteOp::Create {
            collection: Arc::clone(&items),
            data: record_data(&items, json!({"name": "b", "rank": 1})),
            guard: Some(fx.filter("items", "rank = 1 && name = 'b'")),
        }])
        .await
        .expect("the guard holds");
    assert_eq!(results[0].record().text("name"), "b");
    let mut counts = domain::SqlFragment::default();
    counts
        .push_sql("(SELECT COUNT(*) FROM \"items\" AS \"other\") = ")
        .push_param(domain::SqlValue::Int(3));
    fx.write(vec![WriteOp::Create {
        collection: Arc::clone(&items),
        data: record_data(&items, json!({"name": "c"})),
        guard: Some(counts),
    }])
    .await
    .expect("the guard sees the new row in the table");
}

pub async fn an_update_guard_hides_the_row(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let record = fx.create("items", json!({"name": "a", "rank": 1})).await;
    let error = fx
        .write(vec![WriteOp::Update {
            collection: fx.collection("items"),
            id: record.id().to_owned(),
            guard: Some(fx.filter("items", "rank = 5")),
            apply: Box::new(|_: &Record| {
                Err(StoreError::Internal("apply ran on a hidden row".into()))
            }),
            known: None,
        }])
        .await
        .expect_err("hidden");
    assert!(matches!(error.error, StoreError::NotFound), "{error:?}");
    assert_eq!(fx.get("items", record.id()).await.as_ref(), Some(&record));
    let results = fx
        .write(vec![WriteOp::Update {
            collection: fx.collection("items"),
            id: record.id().to_owned(),
            guard: Some(fx.filter("items", "rank = 1")),
            apply: crate::support::merge(json!({"rank": 2})),
            known: None,
        }])
        .await
        .expect("the guard holds");
    assert_eq!(results[0].record().data["rank"], json!(2));
}

pub async fn a_delete_guard_hides_the_row(engine: &Engine) {
    let fx = open(engine).await;
    items(&fx).await;
    let record = fx.create("items", json!({"name": "a", "rank": 1})).await;
    let delete = |guard: &str| WriteOp::Delete {
        collection: fx.collection("items"),
        id: record.id().to_owned(),
        guard: Some(fx.filter("items", guard)),
    };
    let error = fx
        .write(vec![
            fx.create_op("items", json!({"name": "b"})),
            delete("rank = 2"),
        ])
        .await
        .expect_err("hidden");
    assert_eq!(error.index, 1);
    assert!(matches!(error.error, StoreError::NotFound), "{error:?}");
    assert_eq!(fx.texts("items", "name", "").await, ["a"]);
    fx.write(vec![delete("rank = 1")]).await.expect("deleted");
    assert!(fx.get("items", record.id()).await.is_none());
}
