//! End-to-end tests of the SQLite store on temporary databases: every test opens a real
//! database in a temp dir and talks to it only through the `Store` trait (plus a side
//! connection where the physical layout itself is the thing under test).

use std::sync::Arc;

use domain::collection::{Collection, CollectionType, SUPERUSERS_ID, USERS_ID, USERS_NAME};
use domain::field::{
    AutodateOptions, BasicOptions, DateOptions, DomainOptions, EditorOptions, Field, FieldKind,
    FileOptions, JsonOptions, NumberOptions, RelationOptions, SelectOptions, TextOptions,
};
use domain::record::{Record, RecordData};
use domain::sql::{SqlFragment, SqlValue};
use domain::{
    RecordQuery, SortTerm, Store, StoreError, UpdateFn, WriteError, WriteOp, WriteResult,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{SqliteOptions, SqliteStore};

async fn open() -> (TempDir, Arc<SqliteStore>) {
    open_with(SqliteOptions::default())
}

/// A store in a fresh directory, opened with `options`.
fn open_with(options: SqliteOptions) -> (TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path(), options).expect("opens");
    (dir, store)
}

fn text(name: &str) -> Field {
    Field::new(name, FieldKind::Text(TextOptions::default()))
}

fn number(name: &str) -> Field {
    Field::new(name, FieldKind::Number(NumberOptions::default()))
}

fn relation(name: &str, target: &str, max_select: u64, required: bool, cascade: bool) -> Field {
    Field::new(
        name,
        FieldKind::Relation(RelationOptions {
            collection_id: target.to_owned(),
            max_select,
            required,
            cascade_delete: cascade,
            ..Default::default()
        }),
    )
}

fn base(name: &str, fields: Vec<Field>) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Base, name);
    collection.id = domain::ids::collection_id("base", name);
    collection.fields.extend(fields);
    collection
}

/// A collection with one field of every type.
fn posts() -> Collection {
    let mut collection = base(
        "posts",
        vec![
            text("title"),
            Field::new("body", FieldKind::Editor(EditorOptions::default())),
            number("n"),
            Field::new("ok", FieldKind::Bool(BasicOptions::default())),
            Field::new("mail", FieldKind::Email(DomainOptions::default())),
            Field::new("link", FieldKind::Url(DomainOptions::default())),
            Field::new("when", FieldKind::Date(DateOptions::default())),
            Field::new(
                "sel",
                FieldKind::Select(SelectOptions {
                    max_select: 1,
                    values: vec!["a".into(), "b".into()],
                    ..Default::default()
                }),
            ),
            Field::new(
                "sels",
                FieldKind::Select(SelectOptions {
                    max_select: 3,
                    values: vec!["a".into(), "b".into()],
                    ..Default::default()
                }),
            ),
            Field::new("meta", FieldKind::Json(JsonOptions::default())),
            relation("owner", USERS_ID, 1, false, false),
            relation("owners", USERS_ID, 5, false, false),
            Field::new(
                "doc",
                FieldKind::File(FileOptions {
                    max_select: 1,
                    ..Default::default()
                }),
            ),
            Field::new(
                "docs",
                FieldKind::File(FileOptions {
                    max_select: 4,
                    ..Default::default()
                }),
            ),
            Field::new("loc", FieldKind::GeoPoint(BasicOptions::default())),
            Field::new(
                "created",
                FieldKind::Autodate(AutodateOptions {
                    on_create: true,
                    on_update: false,
                }),
            ),
            Field::new(
                "updated",
                FieldKind::Autodate(AutodateOptions {
                    on_create: true,
                    on_update: true,
                }),
            ),
        ],
    );
    collection.indexes = vec!["CREATE INDEX `idx_posts_title` ON `posts` (`title`)".into()];
    collection
}

fn collection(store: &SqliteStore, name: &str) -> Arc<Collection> {
    store
        .schema()
        .get(name)
        .cloned()
        .expect("collection exists")
}

/// Complete record data: zero values, a fresh id, then `values`.
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

async fn create(store: &SqliteStore, name: &str, values: Value) -> Result<Record, StoreError> {
    let collection = collection(store, name);
    let data = record_data(&collection, values);
    let mut results = store
        .write(vec![WriteOp::Create {
            collection,
            data,
            guard: None,
        }])
        .await
        .map_err(|e| e.error)?;
    Ok(results.remove(0).record().clone())
}

async fn update(
    store: &SqliteStore,
    name: &str,
    id: &str,
    changes: Value,
) -> Result<Record, StoreError> {
    let apply: UpdateFn = Box::new(move |current: &Record| {
        let mut data = current.data.clone();
        if let Value::Object(changes) = changes.clone() {
            data.extend(changes);
        }
        Ok(data)
    });
    let mut results = store
        .write(vec![WriteOp::Update {
            collection: collection(store, name),
            id: id.to_owned(),
            guard: None,
            apply,
            known: None,
        }])
        .await
        .map_err(|e| e.error)?;
    Ok(results.remove(0).record().clone())
}

async fn delete(store: &SqliteStore, name: &str, id: &str) -> Result<Record, StoreError> {
    let mut results = store
        .write(vec![WriteOp::Delete {
            collection: collection(store, name),
            id: id.to_owned(),
            guard: None,
        }])
        .await
        .map_err(|e| e.error)?;
    Ok(results.remove(0).record().clone())
}

async fn get(store: &SqliteStore, name: &str, id: &str) -> Option<Record> {
    store
        .get_record(collection(store, name), id, Vec::new())
        .await
        .expect("reads")
}

async fn list(store: &SqliteStore, name: &str, filters: Vec<SqlFragment>) -> Vec<Record> {
    store
        .list_records(RecordQuery {
            collection: collection(store, name),
            filters,
            sort: Vec::new(),
            page: 1,
            per_page: 0,
            with_total: false,
        })
        .await
        .expect("lists")
        .items
}

fn eq(table: &str, column: &str, value: SqlValue) -> SqlFragment {
    let mut fragment = SqlFragment::column(table, column);
    fragment.push_sql(" = ").push_param(value);
    fragment
}

async fn new_user(store: &SqliteStore, email: &str) -> Record {
    create(
        store,
        USERS_NAME,
        json!({"email": email, "tokenKey": domain::ids::random_alnum(50), "password": "x"}),
    )
    .await
    .expect("user created")
}

fn validation_code(error: &StoreError, field: &str) -> Option<String> {
    match error {
        StoreError::Validation(errors) => {
            errors.as_map()[field]["code"].as_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// A side connection, for asserting the physical layout.
fn side_connection(dir: &TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.path().join("data.db")).expect("side connection")
}

fn sql_of(conn: &rusqlite::Connection, name: &str) -> Option<String> {
    conn.query_row(
        "SELECT sql FROM sqlite_master WHERE name = ?",
        [name],
        |r| r.get(0),
    )
    .ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_creates_system_collections_once() {
    let (dir, store) = open().await;
    let schema = store.schema();
    let superusers = schema.get_by_id(SUPERUSERS_ID).expect("superusers");
    assert_eq!(superusers.name, "_superusers");
    assert!(superusers.system);
    let users = schema.get(USERS_NAME).expect("users");
    assert_eq!(users.id, USERS_ID);
    // Secrets survive the JSON round trip through `_collections`.
    let secret = users.auth.as_ref().expect("auth").auth_token.secret.clone();
    assert_eq!(secret.len(), 50);
    store.close().await.expect("closes");
    drop(store);

    let conn = side_connection(&dir);
    let users_sql = sql_of(&conn, "users").expect("users table");
    assert!(
        users_sql.contains(r#""email" TEXT DEFAULT '' NOT NULL"#),
        "{users_sql}"
    );
    assert!(
        users_sql
            .contains(r#""id" TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL"#),
        "{users_sql}"
    );
    assert_eq!(
        sql_of(&conn, "idx_email__pb_users_auth_").as_deref(),
        Some(
            r#"CREATE UNIQUE INDEX "idx_email__pb_users_auth_" ON "users" ("email") WHERE "email" != ''"#
        )
    );
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(journal, "wal");
    drop(conn);

    // Reopening neither duplicates nor regenerates anything.
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("reopens");
    assert_eq!(store.schema().all().len(), 6);
    let users = collection(&store, USERS_NAME);
    assert_eq!(users.auth.as_ref().expect("auth").auth_token.secret, secret);
    store.close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_field_kind_round_trips() {
    let (dir, store) = open().await;
    store.create_collection(posts()).await.expect("created");
    let user = new_user(&store, "a@example.com").await;
    let values = json!({
        "title": "Hello",
        "body": "<p>hi</p>",
        "n": 2.5,
        "ok": true,
        "mail": "x@example.com",
        "link": "https://example.com",
        "when": "2024-01-02 03:04:05.000Z",
        "sel": "a",
        "sels": ["a", "b"],
        "meta": {"nested": [1, "two", null]},
        "owner": user.id(),
        "owners": [user.id()],
        "doc": "file_abc.png",
        "docs": ["one.png", "two.png"],
        "loc": {"lon": 1.5, "lat": -2},
        "created": "2024-01-01 00:00:00.000Z",
        "updated": "2024-01-01 00:00:00.000Z",
    });
    let created = create(&store, "posts", values.clone())
        .await
        .expect("created");
    let mut expected = values.as_object().expect("object").clone();
    expected.insert("id".into(), json!(created.id()));
    let keys: Vec<&String> = created.data.keys().collect();
    let posts = collection(&store, "posts");
    let field_names: Vec<&String> = posts.fields.iter().map(|f| &f.name).collect();
    assert_eq!(keys, field_names, "every field, in field order");
    for (key, value) in &expected {
        assert_eq!(&created.data[key], value, "field {key}");
    }
    let fetched = get(&store, "posts", created.id()).await.expect("exists");
    assert_eq!(fetched, created);

    // Zero values come back in their canonical shapes.
    let empty = create(&store, "posts", json!({})).await.expect("created");
    assert_eq!(empty.data["n"], json!(0));
    assert_eq!(empty.data["ok"], json!(false));
    assert_eq!(empty.data["meta"], Value::Null);
    assert_eq!(empty.data["sels"], json!([]));
    assert_eq!(empty.data["loc"], json!({"lon": 0, "lat": 0}));
    assert_eq!(empty.data["owner"], json!(""));

    // JSON scalars keep their JSON types despite the column's numeric affinity.
    let scalars = create(&store, "posts", json!({"meta": "123", "n": 7}))
        .await
        .expect("created");
    assert_eq!(scalars.data["meta"], json!("123"));
    assert_eq!(scalars.data["n"], json!(7));
    let updated = update(
        &store,
        "posts",
        scalars.id(),
        json!({"meta": 42, "n": -1.25, "sels": ["b"]}),
    )
    .await
    .expect("updated");
    assert_eq!(updated.data["meta"], json!(42));
    assert_eq!(updated.data["n"], json!(-1.25));
    assert_eq!(updated.data["sels"], json!(["b"]));
    assert_eq!(
        updated.data["title"],
        json!(""),
        "untouched fields keep their value"
    );

    let conn = side_connection(&dir);
    let sql = sql_of(&conn, "posts").expect("table");
    for declaration in [
        r#""n" NUMERIC DEFAULT 0 NOT NULL"#,
        r#""ok" BOOLEAN DEFAULT FALSE NOT NULL"#,
        r#""sels" JSON DEFAULT '[]' NOT NULL"#,
        r#""meta" JSON DEFAULT NULL"#,
        r#""loc" JSON DEFAULT '{"lon":0,"lat":0}' NOT NULL"#,
        r#""owner" TEXT DEFAULT '' NOT NULL"#,
    ] {
        assert!(sql.contains(declaration), "{declaration} in {sql}");
    }

    let deleted = delete(&store, "posts", created.id())
        .await
        .expect("deleted");
    assert_eq!(deleted.id(), created.id());
    assert!(get(&store, "posts", created.id()).await.is_none());
    assert!(matches!(
        delete(&store, "posts", created.id()).await,
        Err(StoreError::NotFound)
    ));
}

/// A create or update answers with the record as a read of its row would: the write builds it
/// from the values it bound when the columns keep them as bound, and reads the row back when
/// they may not (numeric JSON text, which the column's NUMERIC affinity turns into a number)
/// or when a trigger of someone else's changed the row behind the write.
#[tokio::test(flavor = "multi_thread")]
async fn written_records_answer_as_a_read_would() {
    let (dir, store) = open().await;
    store.create_collection(posts()).await.expect("created");
    let user = new_user(&store, "a@example.com").await;
    let as_text = |record: &Record| serde_json::to_string(&record.data).expect("serializes");
    let numbers = [
        json!(0),
        json!(-0.0),
        json!(3.0),
        json!(2.5),
        json!(-1.25e-7),
        json!(1e20),
        json!(-1e300),
        json!(9_007_199_254_740_993_i64),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(9.223_372_036_854_776e18),
    ];
    let metas = [
        Value::Null,
        json!(5),
        json!(5.0),
        json!(-0.0),
        json!(1e20),
        json!("5"),
        json!(" 5 "),
        json!(""),
        json!(true),
        json!(false),
        json!([]),
        json!({}),
        json!([1, "a", null, 2.5]),
        json!({"k": 2.5, "n": {"deep": [true]}}),
    ];
    let texts = ["", " 5 ", "5.0", "0x10", "1e5", "null", "zoë ✓", "[1]"];
    let mut ids = Vec::new();
    for (n, meta) in metas.iter().enumerate() {
        let values = json!({
            "title": texts[n % texts.len()],
            "body": texts[(n + 3) % texts.len()],
            "n": numbers[n % numbers.len()],
            "ok": n % 2 == 0,
            "when": "2024-01-02 03:04:05.000Z",
            "sel": "a",
            "sels": if n % 3 == 0 { json!([]) } else { json!(["a", "b"]) },
            "meta": meta,
            "owner": if n % 2 == 0 { json!(user.id()) } else { json!("") },
            "owners": [user.id()],
            "docs": ["one.png"],
            "loc": {"lon": numbers[(n + 1) % numbers.len()].as_f64().map_or(0.0, |v| v.clamp(-180.0, 180.0)), "lat": 0.5},
        });
        let created = create(&store, "posts", values).await.expect("created");
        let read = get(&store, "posts", created.id()).await.expect("exists");
        assert_eq!(as_text(&created), as_text(&read), "create with meta {meta}");
        ids.push(created.id().to_owned());
    }
    for (n, id) in ids.iter().enumerate() {
        let changes = json!({
            "title": texts[(n + 1) % texts.len()],
            "n": numbers[(n + 5) % numbers.len()],
            "meta": metas[(n + 7) % metas.len()],
            "sels": ["b"],
        });
        let updated = update(&store, "posts", id, changes).await.expect("updated");
        let read = get(&store, "posts", id).await.expect("exists");
        assert_eq!(as_text(&updated), as_text(&read), "update {n}");
    }

    // Someone else's trigger changes the row after the insert: the answer has its change.
    side_connection(&dir)
        .execute_batch(
            "CREATE TRIGGER shout AFTER INSERT ON posts BEGIN \
             UPDATE posts SET title = upper(new.title) WHERE id = new.id; END",
        )
        .expect("trigger");
    let created = create(&store, "posts", json!({"title": "quiet"}))
        .await
        .expect("created");
    assert_eq!(created.data["title"], json!("QUIET"));
    let read = get(&store, "posts", created.id()).await.expect("exists");
    assert_eq!(as_text(&created), as_text(&read));
}

/// The `t` field of one page of `name`, its records' letters in the order the store gives.
async fn page_letters(
    store: &SqliteStore,
    name: &str,
    filters: Vec<SqlFragment>,
    sort: Vec<SortTerm>,
    page: u64,
    per_page: u64,
) -> String {
    let page = store
        .list_records(RecordQuery {
            collection: collection(store, name),
            filters,
            sort,
            page,
            per_page,
            with_total: false,
        })
        .await
        .expect("lists");
    page.items.iter().map(|r| r.text("t").to_owned()).collect()
}

/// Equal sort keys come in the order SQLite's plan gives them, as on PocketBase (observed on
/// 0.40.6 with the same records): walking an index on the key backwards gives them newest
/// first; a sort without an index keeps the scan's (insertion) order. Pages of either never
/// overlap or skip.
#[tokio::test(flavor = "multi_thread")]
async fn sorted_ties_come_in_the_plans_order_like_pocketbase() {
    let (_dir, store) = open().await;
    let mut indexed = base("indexed", vec![text("t"), number("score")]);
    indexed.indexes = vec!["CREATE INDEX idx_indexed_score ON indexed (score)".into()];
    store.create_collection(indexed).await.expect("created");
    store
        .create_collection(base("plain", vec![text("t"), number("score")]))
        .await
        .expect("created");
    for name in ["indexed", "plain"] {
        for (t, score) in [("a", 1), ("b", 2), ("c", 1), ("d", 2), ("e", 1), ("f", 2)] {
            create(&store, name, json!({"t": t, "score": score}))
                .await
                .expect("created");
        }
    }
    let order = |name: &'static str, descending: bool, page: u64, per_page: u64| {
        let sort = vec![SortTerm {
            expr: SqlFragment::column(name, "score"),
            descending,
        }];
        page_letters(&store, name, vec![], sort, page, per_page)
    };
    assert_eq!(order("indexed", true, 1, 0).await, "fdbeca");
    assert_eq!(order("indexed", false, 1, 0).await, "acebdf");
    assert_eq!(order("plain", true, 1, 0).await, "bdface");
    assert_eq!(order("plain", false, 1, 0).await, "acebdf");
    for name in ["indexed", "plain"] {
        for descending in [true, false] {
            let whole = order(name, descending, 1, 0).await;
            for per_page in [1, 2, 4] {
                let mut paged = String::new();
                for page in 1..=6u64.div_ceil(per_page) {
                    paged.push_str(&order(name, descending, page, per_page).await);
                }
                assert_eq!(paged, whole, "{name} descending={descending} by {per_page}");
            }
        }
    }
}

/// Without a sort a page has no order of its own: the plan's, as on PocketBase (0.40.6, the
/// same six records): insertion order for a table scan, the index's order for a filter SQLite
/// answers through an index (`score > 0` gave `bdfca` there). Pages never overlap.
#[tokio::test(flavor = "multi_thread")]
async fn unsorted_pages_come_in_the_plans_order_like_pocketbase() {
    let (_dir, store) = open().await;
    let mut items = base("items", vec![text("t"), number("score")]);
    items.indexes = vec!["CREATE INDEX idx_items_score ON items (score)".into()];
    store.create_collection(items).await.expect("created");
    for (t, score) in [("f", 3), ("b", 1), ("d", 2), ("a", 5), ("c", 4), ("e", 0)] {
        create(&store, "items", json!({"t": t, "score": score}))
            .await
            .expect("created");
    }
    let order = |filter: Option<&'static str>, page: u64, per_page: u64| {
        let filters = filter.map(SqlFragment::raw).into_iter().collect();
        page_letters(&store, "items", filters, vec![], page, per_page)
    };
    let by_score = Some("\"items\".\"score\" > 0");
    let by_text = Some("\"items\".\"t\" != ''");
    assert_eq!(order(None, 1, 0).await, "fbdace");
    assert_eq!(order(by_text, 1, 0).await, "fbdace");
    assert_eq!(order(by_score, 1, 0).await, "bdfca");
    for filter in [None, by_score] {
        let whole = order(filter, 1, 0).await;
        for per_page in [1, 2, 4] {
            let mut paged = String::new();
            for page in 1..=6u64.div_ceil(per_page) {
                paged.push_str(&order(filter, page, per_page).await);
            }
            assert_eq!(paged, whole, "{filter:?} by {per_page}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_filter_sort_and_page() {
    let (_dir, store) = open().await;
    store
        .create_collection(base("items", vec![text("name"), number("rank")]))
        .await
        .expect("created");
    for (name, rank) in [("c", 1), ("a", 3), ("b", 2), ("d", 2)] {
        create(&store, "items", json!({"name": name, "rank": rank}))
            .await
            .expect("created");
    }
    let query = |sort: Vec<SortTerm>, filters: Vec<SqlFragment>, page: u64| RecordQuery {
        collection: collection(&store, "items"),
        filters,
        sort,
        page,
        per_page: 2,
        with_total: true,
    };
    let names = |items: &[Record]| -> Vec<String> {
        items.iter().map(|r| r.text("name").to_owned()).collect()
    };
    // No sort: insertion order.
    let page = store
        .list_records(query(vec![], vec![], 1))
        .await
        .expect("lists");
    assert_eq!(names(&page.items), ["c", "a"]);
    assert_eq!(page.total, Some(4));
    let page = store
        .list_records(query(vec![], vec![], 2))
        .await
        .expect("lists");
    assert_eq!(names(&page.items), ["b", "d"]);
    // Sorted descending by rank; ties keep insertion order.
    let by_rank = vec![SortTerm {
        expr: SqlFragment::column("items", "rank"),
        descending: true,
    }];
    let page = store
        .list_records(query(by_rank.clone(), vec![], 1))
        .await
        .expect("lists");
    assert_eq!(names(&page.items), ["a", "b"]);
    let page = store
        .list_records(query(by_rank, vec![], 2))
        .await
        .expect("lists");
    assert_eq!(names(&page.items), ["d", "c"]);
    // Filters are AND-ed, with their parameters in order.
    let mut low = SqlFragment::column("items", "rank");
    low.push_sql(" <= ").push_param(SqlValue::Int(2));
    let mut not_b = SqlFragment::column("items", "name");
    not_b
        .push_sql(" != ")
        .push_param(SqlValue::Text("b".into()));
    let page = store
        .list_records(query(vec![], vec![low, not_b], 1))
        .await
        .expect("lists");
    assert_eq!(names(&page.items), ["c", "d"]);
    assert_eq!(page.total, Some(2));
    // get_record applies filters too.
    let c = &list(
        &store,
        "items",
        vec![eq("items", "name", SqlValue::Text("c".into()))],
    )
    .await[0];
    let hidden = store
        .get_record(
            collection(&store, "items"),
            c.id(),
            vec![eq("items", "rank", SqlValue::Int(99))],
        )
        .await
        .expect("reads");
    assert!(hidden.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_violations_name_their_fields() {
    let (_dir, store) = open().await;
    new_user(&store, "dup@example.com").await;
    let error = create(
        &store,
        USERS_NAME,
        json!({"email": "dup@example.com", "tokenKey": "k".repeat(50)}),
    )
    .await
    .expect_err("duplicate email");
    assert_eq!(
        validation_code(&error, "email").as_deref(),
        Some("validation_not_unique")
    );
    // The partial index lets several users have no email.
    for _ in 0..2 {
        new_user(&store, "").await;
    }

    let mut pairs = base("pairs", vec![text("a"), text("b")]);
    pairs.indexes = vec!["CREATE UNIQUE INDEX idx_ab ON pairs (a, b COLLATE NOCASE)".into()];
    store.create_collection(pairs).await.expect("created");
    create(&store, "pairs", json!({"a": "x", "b": "Y"}))
        .await
        .expect("created");
    create(&store, "pairs", json!({"a": "x", "b": "z"}))
        .await
        .expect("different b");
    let error = create(&store, "pairs", json!({"a": "x", "b": "y"}))
        .await
        .expect_err("same pair, ignoring case");
    let StoreError::Validation(errors) = &error else {
        panic!("expected a validation error, got {error:?}");
    };
    assert_eq!(errors.as_map().len(), 2);
    assert_eq!(
        validation_code(&error, "a").as_deref(),
        Some("validation_not_unique")
    );
    assert_eq!(
        validation_code(&error, "b").as_deref(),
        Some("validation_not_unique")
    );

    // A duplicate id is a unique violation of `id`.
    let existing = &list(&store, "pairs", vec![]).await[0];
    let error = create(&store, "pairs", json!({"id": existing.id(), "a": "new"}))
        .await
        .expect_err("duplicate id");
    assert_eq!(
        validation_code(&error, "id").as_deref(),
        Some("validation_not_unique")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn relations_must_point_at_existing_records() {
    let (_dir, store) = open().await;
    store.create_collection(posts()).await.expect("created");
    let user = new_user(&store, "a@example.com").await;
    let error = create(&store, "posts", json!({"owner": "missing00000000"}))
        .await
        .expect_err("missing owner");
    assert_eq!(
        validation_code(&error, "owner").as_deref(),
        Some("validation_missing_rel_records")
    );
    let error = create(
        &store,
        "posts",
        json!({"owners": [user.id(), "missing00000000"]}),
    )
    .await
    .expect_err("one missing");
    assert_eq!(
        validation_code(&error, "owners").as_deref(),
        Some("validation_missing_rel_records")
    );
    assert!(list(&store, "posts", vec![]).await.is_empty());
    let ok = create(
        &store,
        "posts",
        json!({"owner": user.id(), "owners": [user.id(), user.id()]}),
    )
    .await
    .expect("existing ids");
    let error = update(
        &store,
        "posts",
        ok.id(),
        json!({"owner": "missing00000000"}),
    )
    .await
    .expect_err("update checks too");
    assert_eq!(
        validation_code(&error, "owner").as_deref(),
        Some("validation_missing_rel_records")
    );
}

/// An update looks up the relation ids it sets, not those it leaves as stored (the store's
/// cascades keep those pointing at records), except for a relation to a view, whose rows come
/// and go with its query. The dangling ids here are made with raw SQL, as only the SQL console
/// or another process could.
#[tokio::test(flavor = "multi_thread")]
async fn updates_look_up_the_relations_they_set() {
    let (dir, store) = open().await;
    let notes = base("notes", vec![text("title"), number("n")]);
    store.create_collection(notes).await.expect("notes");
    let mut view = Collection::scaffold(CollectionType::View, "big_notes");
    view.view_query = Some("select id, title from notes where n > 1".into());
    store.create_collection(view).await.expect("view");
    let notes_id = collection(&store, "notes").id.clone();
    let view_id = collection(&store, "big_notes").id.clone();
    store
        .create_collection(base(
            "links",
            vec![
                text("label"),
                relation("note", &notes_id, 1, false, false),
                relation("notes", &notes_id, 5, false, false),
                relation("big", &view_id, 1, false, false),
            ],
        ))
        .await
        .expect("links");
    let a = create(&store, "notes", json!({"title": "a", "n": 2}))
        .await
        .expect("a");
    let b = create(&store, "notes", json!({"title": "b", "n": 2}))
        .await
        .expect("b");
    let link = create(
        &store,
        "links",
        json!({"note": a.id(), "notes": [a.id(), b.id()], "big": b.id()}),
    )
    .await
    .expect("link");
    // Both notes vanish behind the store's back; `b` also leaves the view.
    side_connection(&dir)
        .execute("DELETE FROM notes", [])
        .expect("raw delete");
    let error = update(&store, "links", link.id(), json!({"label": "x"}))
        .await
        .expect_err("the view's row is gone");
    assert_eq!(
        validation_code(&error, "big").as_deref(),
        Some("validation_missing_rel_records")
    );
    let StoreError::Validation(errors) = &error else {
        panic!("a validation error: {error:?}");
    };
    assert!(errors.as_map().get("note").is_none(), "kept: not looked up");
    assert!(
        errors.as_map().get("notes").is_none(),
        "kept: not looked up"
    );
    // Without the view relation, the kept ids pass, the long way and under a mark alike.
    let cleared = update(&store, "links", link.id(), json!({"big": ""}))
        .await
        .expect("kept relations are not looked up");
    assert_eq!(cleared.text("big"), "");
    let (read, mark) = marked_read(&store, "links", link.id()).await;
    let op = WriteOp::Update {
        collection: collection(&store, "links"),
        id: link.id().to_owned(),
        guard: None,
        apply: Box::new(|current: &Record| {
            let mut data = current.data.clone();
            data.insert("label".into(), json!("marked"));
            Ok(data)
        }),
        known: Some(domain::KnownRow {
            record: Arc::new(read),
            mark,
            data: None,
            guard: None,
        }),
    };
    assert_eq!(
        write_one(&store, op).await.expect("marked").text("label"),
        "marked"
    );
    // Setting a relation looks its ids up, the long way and under a mark.
    let error = update(&store, "links", link.id(), json!({"notes": [a.id()]}))
        .await
        .expect_err("changed: looked up");
    assert_eq!(
        validation_code(&error, "notes").as_deref(),
        Some("validation_missing_rel_records")
    );
    let (read, mark) = marked_read(&store, "links", link.id()).await;
    let missing = b.id().to_owned();
    let op = WriteOp::Update {
        collection: collection(&store, "links"),
        id: link.id().to_owned(),
        guard: None,
        apply: Box::new(move |current: &Record| {
            let mut data = current.data.clone();
            data.insert("note".into(), json!(missing.clone()));
            Ok(data)
        }),
        known: Some(domain::KnownRow {
            record: Arc::new(read),
            mark,
            data: None,
            guard: None,
        }),
    };
    let error = write_one(&store, op)
        .await
        .expect_err("changed under a mark");
    assert_eq!(
        validation_code(&error, "note").as_deref(),
        Some("validation_missing_rel_records")
    );
}

/// `articles` ← `comments` (cascade), `likes` (required, no cascade), `mentions` (optional
/// single and multiple).
async fn relation_fixture(store: &SqliteStore) -> String {
    let articles = base("articles", vec![text("title")]);
    let articles_id = articles.id.clone();
    store.create_collection(articles).await.expect("articles");
    store
        .create_collection(base(
            "comments",
            vec![relation("article", &articles_id, 1, true, true)],
        ))
        .await
        .expect("comments");
    store
        .create_collection(base(
            "likes",
            vec![relation("articles", &articles_id, 5, true, false)],
        ))
        .await
        .expect("likes");
    let mut mentions = base(
        "mentions",
        vec![
            relation("one", &articles_id, 1, false, false),
            relation("many", &articles_id, 5, false, false),
        ],
    );
    mentions.fields.push(Field::new(
        "updated",
        FieldKind::Autodate(AutodateOptions {
            on_create: true,
            on_update: true,
        }),
    ));
    store.create_collection(mentions).await.expect("mentions");
    articles_id
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_whose_field_holds_any_of_some_ids() {
    let (_dir, store) = open().await;
    relation_fixture(&store).await;
    let a1 = create(&store, "articles", json!({"title": "one"}))
        .await
        .expect("a1");
    let a2 = create(&store, "articles", json!({"title": "two"}))
        .await
        .expect("a2");
    let a3 = create(&store, "articles", json!({"title": "three"}))
        .await
        .expect("a3");
    let m1 = create(
        &store,
        "mentions",
        json!({"one": a1.id(), "many": [a2.id(), a3.id()]}),
    )
    .await
    .expect("m1");
    let m2 = create(&store, "mentions", json!({"one": a2.id(), "many": []}))
        .await
        .expect("m2");
    let mentions = collection(&store, "mentions");
    let ids_where = |field: &str, values: &[&str]| {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let predicate = store.field_holds_any(&mentions, field, &values);
        let store = Arc::clone(&store);
        async move {
            let mut ids: Vec<String> = list(&store, "mentions", vec![predicate])
                .await
                .iter()
                .map(|r| r.id().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let mut both = vec![m1.id().to_owned(), m2.id().to_owned()];
    both.sort();
    // A single relation compares its value; a multiple one looks inside its list.
    assert_eq!(ids_where("one", &[a1.id()]).await, vec![m1.id().to_owned()]);
    assert_eq!(ids_where("one", &[a1.id(), a2.id()]).await, both);
    assert_eq!(
        ids_where("many", &[a3.id()]).await,
        vec![m1.id().to_owned()]
    );
    assert_eq!(
        ids_where("many", &[a1.id(), "nope"]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids_where("id", &[m2.id(), "nope"]).await,
        vec![m2.id().to_owned()]
    );
    assert_eq!(ids_where("id", &[]).await, Vec::<String>::new());
    // Quotes in values are bound, never spliced.
    assert_eq!(
        ids_where("id", &["' OR 1=1 --"]).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_cascade_clear_or_block() {
    let (_dir, store) = open().await;
    relation_fixture(&store).await;
    let a1 = create(&store, "articles", json!({"title": "one"}))
        .await
        .expect("a1");
    let a2 = create(&store, "articles", json!({"title": "two"}))
        .await
        .expect("a2");
    let comment = create(&store, "comments", json!({"article": a1.id()}))
        .await
        .expect("comment");
    let other_comment = create(&store, "comments", json!({"article": a2.id()}))
        .await
        .expect("comment");
    let mention = create(
        &store,
        "mentions",
        json!({"one": a1.id(), "many": [a2.id(), a1.id()], "updated": "2020-01-01 00:00:00.000Z"}),
    )
    .await
    .expect("mention");
    let like = create(&store, "likes", json!({"articles": [a1.id()]}))
        .await
        .expect("like");

    // The like would lose its only (required) article: the whole delete is refused.
    let error = delete(&store, "articles", a1.id())
        .await
        .expect_err("blocked");
    assert!(matches!(error, StoreError::RequiredReference), "{error:?}");
    assert!(
        get(&store, "comments", comment.id()).await.is_some(),
        "rolled back"
    );
    assert_eq!(
        get(&store, "mentions", mention.id())
            .await
            .expect("mention")
            .data["one"],
        json!(a1.id())
    );

    // With a second article the like keeps the other one, and the delete goes through.
    update(
        &store,
        "likes",
        like.id(),
        json!({"articles": [a1.id(), a2.id()]}),
    )
    .await
    .expect("updated");
    let deleted = delete(&store, "articles", a1.id()).await.expect("deleted");
    assert_eq!(deleted.text("title"), "one");
    assert!(
        get(&store, "comments", comment.id()).await.is_none(),
        "cascaded"
    );
    assert!(get(&store, "comments", other_comment.id()).await.is_some());
    let like = get(&store, "likes", like.id()).await.expect("like");
    assert_eq!(like.data["articles"], json!([a2.id()]));
    let mention = get(&store, "mentions", mention.id())
        .await
        .expect("mention");
    assert_eq!(mention.data["one"], json!(""));
    assert_eq!(mention.data["many"], json!([a2.id()]));
    assert_ne!(
        mention.text("updated"),
        "2020-01-01 00:00:00.000Z",
        "touched"
    );

    // Truncating applies the same rules.
    store
        .truncate_collection(&collection(&store, "likes").id)
        .await
        .expect("likes truncated");
    store
        .truncate_collection(&collection(&store, "articles").id)
        .await
        .expect("articles truncated");
    assert!(list(&store, "articles", vec![]).await.is_empty());
    assert!(list(&store, "comments", vec![]).await.is_empty());
    assert_eq!(
        list(&store, "mentions", vec![]).await[0].data["many"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn self_references_and_cycles_terminate() {
    let (_dir, store) = open().await;
    let mut nodes = base("nodes", vec![text("name")]);
    let nodes_id = nodes.id.clone();
    nodes
        .fields
        .push(relation("parent", &nodes_id, 1, false, true));
    store.create_collection(nodes).await.expect("created");
    let root = create(&store, "nodes", json!({"name": "root"}))
        .await
        .expect("root");
    let child = create(
        &store,
        "nodes",
        json!({"name": "child", "parent": root.id()}),
    )
    .await
    .expect("child");
    let grandchild = create(&store, "nodes", json!({"name": "gc", "parent": child.id()}))
        .await
        .expect("grandchild");
    // Close the loop: root → grandchild → child → root.
    update(
        &store,
        "nodes",
        root.id(),
        json!({"parent": grandchild.id()}),
    )
    .await
    .expect("updated");
    delete(&store, "nodes", child.id()).await.expect("deleted");
    assert!(list(&store, "nodes", vec![]).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_deletion_is_refused_while_referenced() {
    let (_dir, store) = open().await;
    let articles_id = relation_fixture(&store).await;
    let error = store
        .delete_collection(&articles_id)
        .await
        .expect_err("referenced");
    let StoreError::Schema(message) = error else {
        panic!("expected a schema error");
    };
    assert!(
        message.ends_with("in comments, likes, mentions"),
        "{message}"
    );
    for name in ["comments", "likes", "mentions"] {
        let id = collection(&store, name).id.clone();
        store.delete_collection(&id).await.expect("deleted");
    }
    let schema = store
        .delete_collection(&articles_id)
        .await
        .expect("deleted");
    assert!(schema.get("articles").is_none());
    assert!(store.schema().get("articles").is_none());
    assert!(matches!(
        store.delete_collection(&articles_id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_collection(SUPERUSERS_ID).await,
        Err(StoreError::Schema(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn field_changes_migrate_the_table() {
    let (dir, store) = open().await;
    let mut things = base(
        "things",
        vec![
            text("name"),
            number("size"),
            Field::new(
                "tag",
                FieldKind::Select(SelectOptions {
                    max_select: 1,
                    values: vec!["a".into(), "b".into()],
                    ..Default::default()
                }),
            ),
            Field::new(
                "tags",
                FieldKind::Select(SelectOptions {
                    max_select: 2,
                    values: vec!["a".into(), "b".into()],
                    ..Default::default()
                }),
            ),
        ],
    );
    things.indexes = vec!["CREATE UNIQUE INDEX idx_name ON things (name)".into()];
    store.create_collection(things).await.expect("created");
    let first = create(
        &store,
        "things",
        json!({"name": "x", "size": 3, "tag": "a", "tags": ["a", "b"]}),
    )
    .await
    .expect("first");
    let second = create(&store, "things", json!({"name": "y", "size": 4}))
        .await
        .expect("second");

    // Rename `name` → `title` (same id), drop `size`, add `color`, flip single/multiple, and
    // point the index at the renamed column.
    let mut changed = (*collection(&store, "things")).clone();
    changed.fields.retain(|f| f.name != "size");
    for field in &mut changed.fields {
        match field.name.as_str() {
            "name" => field.name = "title".into(),
            "tag" | "tags" => {
                if let FieldKind::Select(o) = &mut field.kind {
                    o.max_select = if field.name == "tag" { 2 } else { 1 };
                }
            }
            _ => {}
        }
    }
    changed.fields.push(text("color"));
    changed.indexes = vec!["CREATE UNIQUE INDEX idx_title ON things (title)".into()];
    store.update_collection(changed).await.expect("updated");

    let first = get(&store, "things", first.id()).await.expect("kept");
    assert_eq!(first.data["title"], json!("x"));
    assert_eq!(first.data["color"], json!(""));
    assert_eq!(first.data["tag"], json!(["a"]));
    assert_eq!(first.data["tags"], json!("b"), "a list keeps its last item");
    assert!(first.data.get("size").is_none());
    let second = get(&store, "things", second.id()).await.expect("kept");
    assert_eq!(second.data["tag"], json!([]));
    assert_eq!(second.data["tags"], json!(""));
    // Insertion order survives the rebuild.
    let order: Vec<String> = list(&store, "things", vec![])
        .await
        .iter()
        .map(|r| r.text("title").to_owned())
        .collect();
    assert_eq!(order, ["x", "y"]);
    // The new index holds; the old one is gone.
    let error = create(&store, "things", json!({"title": "x"}))
        .await
        .expect_err("unique");
    assert_eq!(
        validation_code(&error, "title").as_deref(),
        Some("validation_not_unique")
    );
    let conn = side_connection(&dir);
    assert!(sql_of(&conn, "idx_name").is_none());
    assert!(sql_of(&conn, "idx_title").is_some());
    let sql = sql_of(&conn, "things").expect("table");
    assert!(!sql.contains("size"), "{sql}");

    // A type change is refused and changes nothing.
    let mut bad = (*collection(&store, "things")).clone();
    for field in &mut bad.fields {
        if field.name == "color" {
            field.kind = FieldKind::Number(NumberOptions::default());
        }
    }
    assert!(matches!(
        store.update_collection(bad).await,
        Err(StoreError::Schema(_))
    ));
    assert_eq!(
        get(&store, "things", first.id()).await.expect("kept").data["title"],
        json!("x")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn renaming_a_collection_moves_table_and_indexes() {
    let (dir, store) = open().await;
    let mut notes = base("notes", vec![text("title")]);
    notes.indexes = vec!["CREATE UNIQUE INDEX idx_notes_title ON notes (title)".into()];
    store.create_collection(notes).await.expect("created");
    let note = create(&store, "notes", json!({"title": "t"}))
        .await
        .expect("note");
    let mut view = Collection::scaffold(CollectionType::View, "note_titles");
    view.view_query = Some("select id, title from notes".into());
    store.create_collection(view).await.expect("view");
    let mut renamed = (*collection(&store, "notes")).clone();
    renamed.name = "Memos".into();
    let schema = store.update_collection(renamed).await.expect("renamed");
    assert!(schema.get("notes").is_none());
    // SQLite rewrites the view to read the renamed table (as PocketBase's does).
    assert_eq!(
        list(&store, "note_titles", vec![]).await[0].text("title"),
        "t"
    );
    assert_eq!(
        get(&store, "memos", note.id())
            .await
            .expect("kept")
            .text("title"),
        "t"
    );
    let error = create(&store, "Memos", json!({"title": "t"}))
        .await
        .expect_err("index follows");
    assert_eq!(
        validation_code(&error, "title").as_deref(),
        Some("validation_not_unique")
    );
    let conn = side_connection(&dir);
    assert!(sql_of(&conn, "notes").is_none());
    assert!(sql_of(&conn, "Memos").is_some());
    // Only the case changes.
    let mut recased = (*collection(&store, "memos")).clone();
    recased.name = "memos".into();
    store.update_collection(recased).await.expect("renamed");
    assert_eq!(collection(&store, "MEMOS").name, "memos");
    assert_eq!(list(&store, "memos", vec![]).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn view_collections_infer_fields_and_read() {
    let (_dir, store) = open().await;
    store.create_collection(posts()).await.expect("posts");
    let user = new_user(&store, "a@example.com").await;
    for n in [1, 2, 3] {
        create(
            &store,
            "posts",
            json!({"title": format!("t{n}"), "n": n, "owner": user.id()}),
        )
        .await
        .expect("post");
    }
    let query = "select p.id, p.title as headline, p.owner, p.sels, count(*) as c, cast(p.n as real) as r, lower(p.title) lw from posts p group by p.id";
    let inferred = store.infer_view_fields(query).await.expect("inferred");
    let summary: Vec<(String, String)> = inferred
        .iter()
        .map(|f| (f.name.clone(), f.type_name().to_owned()))
        .collect();
    assert_eq!(
        summary,
        [
            ("id", "text"),
            ("headline", "text"),
            ("owner", "relation"),
            ("sels", "select"),
            ("c", "number"),
            ("r", "number"),
            ("lw", "json"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert!(inferred[0].is_primary_key());
    assert!(
        inferred[1].id.starts_with("_clone_"),
        "copied fields get clone ids"
    );
    assert_eq!(inferred[1].id.len(), 11);
    assert!(inferred[3].is_multiple(), "options are copied");
    assert!(matches!(&inferred[4].kind, FieldKind::Number(o) if o.only_int));

    let mut view = Collection::scaffold(CollectionType::View, "post_stats");
    view.view_query = Some(query.to_owned());
    let schema = store.create_collection(view).await.expect("view created");
    let view = schema.get("post_stats").expect("view");
    let without_clone_ids = |fields: &[Field]| -> Vec<Field> {
        fields
            .iter()
            .cloned()
            .map(|mut f| {
                if f.id.starts_with("_clone_") {
                    f.id.clear();
                }
                f
            })
            .collect()
    };
    assert_eq!(
        without_clone_ids(&view.fields),
        without_clone_ids(&inferred)
    );
    let rows = list(
        &store,
        "post_stats",
        vec![eq("post_stats", "headline", SqlValue::Text("t2".into()))],
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].data["c"], json!(1));
    assert_eq!(rows[0].data["r"], json!(2));
    assert_eq!(rows[0].data["owner"], json!(user.id()));
    assert_eq!(rows[0].data["lw"], json!("t2"));
    assert!(get(&store, "post_stats", rows[0].id()).await.is_some());

    // A computed id is cast to text, so lookups by id work.
    let mut numbered = Collection::scaffold(CollectionType::View, "numbered");
    numbered.view_query =
        Some("select (row_number() over()) as id, title from posts -- numbered".into());
    store.create_collection(numbered).await.expect("created");
    assert_eq!(
        get(&store, "numbered", "2").await.expect("row 2").data["id"],
        json!("2")
    );

    // Views are read-only, and a change that would break one is refused.
    assert!(matches!(
        create(&store, "post_stats", json!({})).await,
        Err(StoreError::Schema(_))
    ));
    let mut posts_now = (*collection(&store, "posts")).clone();
    posts_now.fields.retain(|f| f.name != "title");
    posts_now.indexes.clear();
    let error = store
        .update_collection(posts_now)
        .await
        .expect_err("would break");
    assert!(
        matches!(&error, StoreError::Schema(m) if m.contains("post_stats")),
        "{error:?}"
    );
    assert_eq!(
        list(&store, "posts", vec![]).await[0].text("title"),
        "t1",
        "rolled back"
    );
    // A rebuild that keeps what the view reads leaves the view working.
    let mut posts_now = (*collection(&store, "posts")).clone();
    posts_now.fields.push(text("subtitle"));
    store.update_collection(posts_now).await.expect("updated");
    assert_eq!(list(&store, "post_stats", vec![]).await.len(), 3);

    // Updating the view re-creates it from the new query.
    let mut changed = (*collection(&store, "numbered")).clone();
    changed.view_query = Some("select id, n from posts".into());
    let schema = store.update_collection(changed).await.expect("updated");
    let fields: Vec<&str> = schema
        .get("numbered")
        .expect("view")
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(fields, ["id", "n"]);
    assert_eq!(list(&store, "numbered", vec![]).await.len(), 3);
    let id = collection(&store, "numbered").id.clone();
    store.delete_collection(&id).await.expect("view deleted");
    assert!(store.schema().get("numbered").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_view_queries_and_indexes_are_schema_errors() {
    let (_dir, store) = open().await;
    store.create_collection(posts()).await.expect("posts");
    for (query, needle) in [
        ("select title from posts", "missing required id"),
        (
            "select id from posts; drop table posts",
            "multiple statements",
        ),
        ("select * from posts", "wildcard"),
        (
            "delete from posts",
            "SQL logic error: near \"delete\": syntax error (1)",
        ),
        ("select id, nope from posts", "no such column"),
        ("with x as (select 1) delete from posts", "single SELECT"),
    ] {
        match store.infer_view_fields(query).await {
            Err(StoreError::Schema(message)) => {
                assert!(message.contains(needle), "{query}: {message}")
            }
            other => panic!("{query}: {other:?}"),
        }
        let mut view = Collection::scaffold(CollectionType::View, "v");
        view.view_query = Some(query.to_owned());
        assert!(
            matches!(
                store.create_collection(view).await,
                Err(StoreError::Schema(_))
            ),
            "{query}"
        );
    }
    assert_eq!(
        list(&store, "posts", vec![]).await.len(),
        0,
        "posts survived"
    );

    for index in [
        "CREATE INDEX idx_x ON posts (nope)",
        "CREATE INDEX idx_x ON posts (title); DROP TABLE posts",
        "CREATE INDEX idx_x ON posts (title) WHERE (SELECT 1)",
    ] {
        let mut collection = base("other", vec![text("title")]);
        collection.indexes = vec![index.to_owned()];
        match store.create_collection(collection).await {
            Err(StoreError::Schema(message)) => assert!(message.contains("index"), "{message}"),
            other => panic!("{index}: {other:?}"),
        }
    }
    // Index names are global in SQLite: a clash is refused, not an internal error.
    let mut clash = base("other", vec![text("title")]);
    clash.indexes = vec!["CREATE INDEX idx_posts_title ON other (title)".into()];
    assert!(matches!(
        store.create_collection(clash).await,
        Err(StoreError::Schema(_))
    ));
    assert!(store.schema().get("other").is_none());
    // Names are unique ignoring case, and system tables are off limits.
    for name in ["POSTS", "_collections", "sqlite_x"] {
        assert!(
            matches!(
                store.create_collection(base(name, vec![])).await,
                Err(StoreError::Schema(_))
            ),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn guards_decide_inside_the_transaction() {
    let (_dir, store) = open().await;
    store
        .create_collection(base("items", vec![text("name"), number("rank")]))
        .await
        .expect("created");
    let items = collection(&store, "items");
    let rank_is = |rank: i64| eq("items", "rank", SqlValue::Int(rank));

    let error = store
        .write(vec![WriteOp::Create {
            collection: Arc::clone(&items),
            data: record_data(&items, json!({"name": "a", "rank": 1})),
            guard: Some(rank_is(2)),
        }])
        .await
        .expect_err("guard fails");
    assert!(matches!(error.error, StoreError::GuardRejected));
    assert!(
        list(&store, "items", vec![]).await.is_empty(),
        "insert rolled back"
    );
    let results = store
        .write(vec![WriteOp::Create {
            collection: Arc::clone(&items),
            data: record_data(&items, json!({"name": "a", "rank": 1})),
            guard: Some(rank_is(1)),
        }])
        .await
        .expect("guard holds");
    let id = results[0].record().id().to_owned();

    let error = store
        .write(vec![WriteOp::Update {
            collection: Arc::clone(&items),
            id: id.clone(),
            guard: Some(rank_is(5)),
            apply: Box::new(|_: &Record| panic!("apply must not run when the guard hides the row")),
            known: None,
        }])
        .await
        .expect_err("hidden");
    assert!(matches!(error.error, StoreError::NotFound));
    let results = store
        .write(vec![WriteOp::Update {
            collection: Arc::clone(&items),
            id: id.clone(),
            guard: Some(rank_is(1)),
            apply: Box::new(|current: &Record| {
                let mut data = current.data.clone();
                let rank = data["rank"].as_i64().unwrap_or(0);
                data.insert("rank".into(), json!(rank + 10));
                data.insert("id".into(), json!("changedid000000"));
                Ok(data)
            }),
            known: None,
        }])
        .await
        .expect("updated");
    let WriteResult::Updated(record) = &results[0] else {
        panic!("expected Updated");
    };
    assert_eq!(record.data["rank"], json!(11));
    assert_eq!(record.id(), id, "the key never changes");

    let error = store
        .write(vec![WriteOp::Delete {
            collection: Arc::clone(&items),
            id: id.clone(),
            guard: Some(rank_is(1)),
        }])
        .await
        .expect_err("hidden");
    assert!(matches!(error.error, StoreError::NotFound));
    store
        .write(vec![WriteOp::Delete {
            collection: Arc::clone(&items),
            id: id.clone(),
            guard: Some(rank_is(11)),
        }])
        .await
        .expect("deleted");
    assert!(get(&store, "items", &id).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_operation_rolls_back_the_whole_write() {
    let (_dir, store) = open().await;
    let mut items = base("items", vec![text("name")]);
    items.indexes = vec!["CREATE UNIQUE INDEX idx_items_name ON items (name)".into()];
    store.create_collection(items).await.expect("created");
    let items = collection(&store, "items");
    let existing = create(&store, "items", json!({"name": "keep"}))
        .await
        .expect("created");
    let op = |name: &str| WriteOp::Create {
        collection: Arc::clone(&items),
        data: record_data(&items, json!({"name": name})),
        guard: None,
    };
    let rename_existing = WriteOp::Update {
        collection: Arc::clone(&items),
        id: existing.id().to_owned(),
        guard: None,
        apply: Box::new(|current: &Record| {
            let mut data = current.data.clone();
            data.insert("name".into(), json!("renamed"));
            Ok(data)
        }),
        known: None,
    };
    let WriteError { index, error } = store
        .write(vec![
            op("one"),
            rename_existing,
            op("two"),
            op("one"),
            op("three"),
        ])
        .await
        .expect_err("duplicate in the batch");
    assert_eq!(index, 3);
    assert_eq!(
        validation_code(&error, "name").as_deref(),
        Some("validation_not_unique")
    );
    let names: Vec<String> = list(&store, "items", vec![])
        .await
        .iter()
        .map(|r| r.text("name").to_owned())
        .collect();
    assert_eq!(names, ["keep"]);

    // An error from `apply` aborts the same way.
    let failing = WriteOp::Update {
        collection: Arc::clone(&items),
        id: existing.id().to_owned(),
        guard: None,
        apply: Box::new(|_: &Record| Err(StoreError::Validation(Default::default()))),
        known: None,
    };
    let error = store
        .write(vec![op("four"), failing])
        .await
        .expect_err("apply fails");
    assert_eq!(error.index, 1);
    assert_eq!(list(&store, "items", vec![]).await.len(), 1);

    // A panicking `apply` costs the write, not the writer thread.
    let panicking = WriteOp::Update {
        collection: Arc::clone(&items),
        id: existing.id().to_owned(),
        guard: None,
        apply: Box::new(|_: &Record| panic!("boom")),
        known: None,
    };
    assert!(store.write(vec![op("five"), panicking]).await.is_err());
    assert_eq!(list(&store, "items", vec![]).await.len(), 1);
    create(&store, "items", json!({"name": "six"}))
        .await
        .expect("writer still works");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_creates_updates_and_deletes_in_one_go() {
    let (_dir, store) = open().await;
    let articles_id = relation_fixture(&store).await;
    create(&store, "articles", json!({"title": "kept"}))
        .await
        .expect("article");
    let mut view = Collection::scaffold(CollectionType::View, "titles");
    view.view_query = Some("select id, title from articles".into());
    store.create_collection(view).await.expect("view");

    // Keep articles (renamed field), drop everything else that is not system, add tags.
    let mut articles = (*collection(&store, "articles")).clone();
    for field in &mut articles.fields {
        if field.name == "title" {
            field.name = "headline".into();
        }
    }
    let tags = base(
        "tags",
        vec![
            text("label"),
            relation("article", &articles_id, 1, false, false),
        ],
    );
    let users = (*collection(&store, USERS_NAME)).clone();
    let mut titles = (*collection(&store, "titles")).clone();
    titles.view_query = Some("select id, headline from articles".into());

    let schema = store
        .import_collections(vec![titles, users.clone(), articles, tags], true)
        .await
        .expect("imported");
    let mut names: Vec<&str> = schema.all().iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "_authOrigins",
            "_externalAuths",
            "_mfas",
            "_otps",
            "_superusers",
            "articles",
            "tags",
            "titles",
            "users"
        ]
    );
    assert_eq!(
        list(&store, "titles", vec![]).await[0].text("headline"),
        "kept"
    );
    assert_eq!(
        list(&store, "articles", vec![]).await[0].text("headline"),
        "kept"
    );

    // Deleting `articles` while the imported `tags` still points at it is refused as a
    // whole, naming the referencing collection.
    let tags = (*collection(&store, "tags")).clone();
    let error = store
        .import_collections(vec![users.clone(), tags], true)
        .await
        .expect_err("tags references articles");
    assert!(
        matches!(&error, StoreError::Schema(m) if m.ends_with("existing reference in tags")),
        "{error:?}"
    );
    assert!(store.schema().get("articles").is_some(), "nothing changed");
    assert!(store.schema().get("titles").is_some(), "nothing changed");

    // Without delete_missing, an import only adds and replaces.
    let mut users = users;
    users.list_rule = Some(String::new());
    let schema = store
        .import_collections(vec![users, base("extra", vec![text("x")])], false)
        .await
        .expect("imported");
    assert_eq!(schema.all().len(), 10);
    assert_eq!(
        schema.get(USERS_NAME).expect("users").list_rule.as_deref(),
        Some("")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn params_round_trip() {
    let (_dir, store) = open().await;
    assert_eq!(store.get_param("settings").await.expect("reads"), None);
    let settings = json!({"meta": {"appName": "Plinth"}, "n": 1});
    store
        .set_param("settings", settings.clone())
        .await
        .expect("stored");
    assert_eq!(
        store.get_param("settings").await.expect("reads"),
        Some(settings)
    );
    store
        .set_param("settings", json!(5))
        .await
        .expect("replaced");
    assert_eq!(
        store.get_param("settings").await.expect("reads"),
        Some(json!(5))
    );
    store.set_param("s", json!("12")).await.expect("stored");
    assert_eq!(
        store.get_param("s").await.expect("reads"),
        Some(json!("12"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_parallel_reads_and_writes() {
    let (_dir, store) = open().await;
    store
        .create_collection(base("events", vec![text("who"), number("seq")]))
        .await
        .expect("created");
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for seq in 0..25 {
                let who = format!("w{worker}");
                create(&store, "events", json!({"who": who, "seq": seq}))
                    .await
                    .expect("created");
                let mine = list(
                    &store,
                    "events",
                    vec![eq("events", "who", SqlValue::Text(who))],
                )
                .await;
                assert_eq!(
                    mine.len(),
                    seq + 1,
                    "a reader sees its own committed writes"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("task finished");
    }
    let page = store
        .list_records(RecordQuery {
            collection: collection(&store, "events"),
            filters: vec![],
            sort: vec![],
            page: 1,
            per_page: 1,
            with_total: true,
        })
        .await
        .expect("lists");
    assert_eq!(page.total, Some(16 * 25));
}

#[tokio::test(flavor = "multi_thread")]
async fn close_checkpoints_and_stops() {
    let (dir, store) = open().await;
    new_user(&store, "a@example.com").await;
    store.close().await.expect("closes");
    let wal = dir.path().join("data.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0,
        "the WAL was checkpointed"
    );
    assert!(matches!(
        store.get_param("x").await,
        Err(StoreError::Internal(_))
    ));
    store.close().await.expect("closing twice is harmless");
    drop(store);

    // Dropping an open store does not hang either.
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("reopens");
    assert_eq!(list(&store, USERS_NAME, vec![]).await.len(), 1);
    drop(store);
}

#[tokio::test(flavor = "multi_thread")]
async fn sustained_writes_keep_the_wal_bounded_with_checkpoints_off_the_writer() {
    // A quarter of the default length, so that some 50 MB of writes make several rounds.
    const DUE_FRAMES: u32 = 4000;
    const WRITER_FRAMES: u32 = 2 * DUE_FRAMES;
    let (dir, store) = open_with(SqliteOptions {
        wal_checkpoint_frames: DUE_FRAMES,
        ..SqliteOptions::default()
    });
    store
        .create_collection(base("notes", vec![text("body")]))
        .await
        .expect("created");
    // Writers that never pause: a checkpoint on another connection never reaches the end of
    // the WAL by itself, so without the writer finishing it the file would keep growing.
    let (tasks, each) = (4, 3000);
    let body = "x".repeat(1000);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (store, body) = (Arc::clone(&store), body.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..each {
                create(&store, "notes", json!({ "body": body }))
                    .await
                    .expect("created");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("writer task");
    }
    assert_eq!(list(&store, "notes", vec![]).await.len(), tasks * each);
    let [thread, writer, forced] = store.engine.checkpoints_ran();
    assert!(thread > 0, "the checkpoint thread ran ({thread})");
    // It synced what it copied, so the writer's pass syncs only its own tail.
    let synced = store.engine.checkpoints_synced();
    assert!(synced > 0, "the thread synced the database file ({synced})");
    assert!(
        writer > 0,
        "the writer finished checkpoints after the thread's rounds ({writer}; {forced} at its \
         bound)"
    );
    // Some 50 MB went through the WAL (each record is also in the change log, and indexes);
    // the WAL (which never shrinks while open) stayed within the writer's bound and one group.
    let frame = 4096 + 24;
    let wal = std::fs::metadata(dir.path().join("data.db-wal"))
        .expect("the WAL exists")
        .len();
    assert!(
        wal < u64::from(WRITER_FRAMES + DUE_FRAMES / 4) * frame,
        "WAL of {wal} bytes"
    );
    let db = std::fs::metadata(dir.path().join("data.db"))
        .expect("the database exists")
        .len();
    assert!(
        db > 12 << 20,
        "the data reached the database file ({db} bytes)"
    );
}

/// Every change-log entry after `after`, as `(action, collection name, record id)`.
async fn changes_since(store: &SqliteStore, after: u64) -> Vec<(String, String, String)> {
    let schema = store.schema();
    store
        .changes_after(after, 1000)
        .await
        .expect("changes read")
        .into_iter()
        .map(|change| {
            let name = schema
                .get_by_id(&change.collection_id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            (change.action.as_str().to_owned(), name, change.record_id)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_append_to_the_change_log_in_their_transaction() {
    let (_dir, store) = open().await;
    let mut items = base("items", vec![text("name")]);
    items.indexes = vec!["CREATE UNIQUE INDEX idx_items_name ON items (name)".into()];
    store.create_collection(items).await.expect("created");
    let start = store.last_change_seq().await.expect("seq");

    let item = create(&store, "items", json!({"name": "one"}))
        .await
        .expect("created");
    update(&store, "items", item.id(), json!({"name": "uno"}))
        .await
        .expect("updated");
    let changes = store.changes_after(start, 10).await.expect("read");
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].action, domain::ChangeAction::Create);
    assert_eq!(changes[0].record.text("name"), "one");
    assert_eq!(changes[1].action, domain::ChangeAction::Update);
    assert_eq!(changes[1].record.text("name"), "uno");
    assert!(changes[0].seq < changes[1].seq);
    assert_eq!(store.last_change_seq().await.expect("seq"), changes[1].seq);

    // A write that rolls back leaves no entry, not even for its operations that succeeded.
    let seq = store.last_change_seq().await.expect("seq");
    let items = collection(&store, "items");
    let error = store
        .write(vec![
            WriteOp::Create {
                collection: Arc::clone(&items),
                data: record_data(&items, json!({"name": "two"})),
                guard: None,
            },
            WriteOp::Create {
                collection: Arc::clone(&items),
                data: record_data(&items, json!({"name": "uno"})),
                guard: None,
            },
        ])
        .await
        .expect_err("duplicate name");
    assert_eq!(error.index, 1);
    assert!(changes_since(&store, seq).await.is_empty());
    assert_eq!(store.last_change_seq().await.expect("seq"), seq);

    // A delete records the last state.
    delete(&store, "items", item.id()).await.expect("deleted");
    let changes = store.changes_after(seq, 10).await.expect("read");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, domain::ChangeAction::Delete);
    assert_eq!(changes[0].record.text("name"), "uno");
    assert!(changes[0].seq > seq, "sequences are never reused");
}

#[tokio::test(flavor = "multi_thread")]
async fn cascades_append_entries_for_every_record_they_touch() {
    let (_dir, store) = open().await;
    relation_fixture(&store).await;
    let a1 = create(&store, "articles", json!({"title": "one"}))
        .await
        .expect("a1");
    let a2 = create(&store, "articles", json!({"title": "two"}))
        .await
        .expect("a2");
    let comment = create(&store, "comments", json!({"article": a1.id()}))
        .await
        .expect("comment");
    let mention = create(
        &store,
        "mentions",
        json!({"one": a1.id(), "many": [a2.id(), a1.id()]}),
    )
    .await
    .expect("mention");
    let like = create(&store, "likes", json!({"articles": [a1.id()]}))
        .await
        .expect("like");

    // A blocked delete rolls back everything, the cleared mention included.
    let seq = store.last_change_seq().await.expect("seq");
    delete(&store, "articles", a1.id())
        .await
        .expect_err("blocked by the like");
    assert!(changes_since(&store, seq).await.is_empty());

    delete(&store, "likes", like.id()).await.expect("like gone");
    let seq = store.last_change_seq().await.expect("seq");
    delete(&store, "articles", a1.id()).await.expect("deleted");
    let mut entries = changes_since(&store, seq).await;
    entries.sort();
    let mut expected = vec![
        (
            "delete".to_owned(),
            "articles".to_owned(),
            a1.id().to_owned(),
        ),
        (
            "delete".to_owned(),
            "comments".to_owned(),
            comment.id().to_owned(),
        ),
        // One update per relation field cleared (`one`, then `many`).
        (
            "update".to_owned(),
            "mentions".to_owned(),
            mention.id().to_owned(),
        ),
        (
            "update".to_owned(),
            "mentions".to_owned(),
            mention.id().to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(entries, expected);
    let changes = store.changes_after(seq, 10).await.expect("read");
    let cleared = changes
        .iter()
        .rfind(|c| c.record_id == mention.id())
        .expect("mention entry");
    assert_eq!(cleared.record.data["many"], json!([a2.id()]));
    assert_eq!(cleared.record.data["one"], json!(""));
    let deleted_comment = changes
        .iter()
        .find(|c| c.record_id == comment.id())
        .expect("comment entry");
    assert_eq!(deleted_comment.record.data["article"], json!(a1.id()));

    // Truncation goes through the same path.
    let seq = store.last_change_seq().await.expect("seq");
    store
        .truncate_collection(&collection(&store, "articles").id)
        .await
        .expect("truncated");
    let entries = changes_since(&store, seq).await;
    assert!(entries.contains(&(
        "delete".to_owned(),
        "articles".to_owned(),
        a2.id().to_owned()
    )));
    assert!(entries.contains(&(
        "update".to_owned(),
        "mentions".to_owned(),
        mention.id().to_owned()
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn change_wake_ups_and_pruning() {
    let (dir, store) = open().await;
    store
        .create_collection(base("items", vec![text("name")]))
        .await
        .expect("created");
    let start = store.last_change_seq().await.expect("seq");

    // A waiter wakes once a write commits.
    let waiter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.wait_for_changes(start).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "nothing committed yet");
    for n in 0..5 {
        create(&store, "items", json!({"name": format!("n{n}")}))
            .await
            .expect("created");
    }
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .expect("joined")
        .expect("not closed");
    let last = store.last_change_seq().await.expect("seq");
    assert_eq!(last, start + 5);

    // Pruning never goes past `up_to` nor into the newest `max_entries`.
    let everything_old = domain::ChangeRetention {
        max_entries: 2,
        max_age_secs: 0,
    };
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let pruned = store
        .prune_changes(start + 1, everything_old)
        .await
        .expect("pruned");
    assert_eq!(pruned, 1);
    let pruned = store
        .prune_changes(last, everything_old)
        .await
        .expect("pruned");
    assert_eq!(pruned, 2);
    let left: Vec<u64> = store
        .changes_after(0, 100)
        .await
        .expect("read")
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(left, [last - 1, last]);
    let young = domain::ChangeRetention {
        max_entries: 0,
        max_age_secs: 3600,
    };
    assert_eq!(store.prune_changes(last, young).await.expect("pruned"), 0);

    // After pruning everything and reopening, sequences continue where they were.
    store
        .prune_changes(
            last,
            domain::ChangeRetention {
                max_entries: 0,
                max_age_secs: 0,
            },
        )
        .await
        .expect("pruned");
    store.close().await.expect("closed");
    drop(store);
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("reopens");
    assert_eq!(store.last_change_seq().await.expect("seq"), last);
    create(&store, "items", json!({"name": "after"}))
        .await
        .expect("created");
    let changes = store.changes_after(0, 10).await.expect("read");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].seq, last + 1);
}

/// `(seq, action)` of every row of `_changes`, high-water marks included, through a side
/// connection; and whether the table was made with `AUTOINCREMENT`.
fn raw_change_rows(dir: &std::path::Path) -> (Vec<(i64, String)>, bool) {
    let conn = rusqlite::Connection::open(dir.join("data.db")).expect("side connection");
    let rows = conn
        .prepare("SELECT seq, action FROM _changes ORDER BY seq")
        .expect("prepared")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("queried")
        .collect::<Result<_, _>>()
        .expect("read");
    let made_with: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = '_changes'",
            [],
            |r| r.get(0),
        )
        .expect("table");
    (rows, made_with.contains("AUTOINCREMENT"))
}

/// Pruning the newest entry leaves a high-water mark in its place: readers never see it, it
/// counts as nothing pruned and weighs nothing, the next prune past it takes it, and no
/// sequence comes back, whichever way the entry went (retention or the byte budget).
#[tokio::test(flavor = "multi_thread")]
async fn pruning_the_newest_change_leaves_its_high_water_mark() {
    let (dir, store) = open().await;
    store
        .create_collection(base("items", vec![text("name")]))
        .await
        .expect("created");
    for n in 0..3 {
        create(&store, "items", json!({"name": format!("n{n}")}))
            .await
            .expect("created");
    }
    let last = store.last_change_seq().await.expect("seq");
    let nothing_kept = domain::ChangeRetention {
        max_entries: 0,
        max_age_secs: 0,
    };
    assert_eq!(
        store
            .prune_changes(last, nothing_kept)
            .await
            .expect("pruned"),
        3
    );
    let (rows, autoincrement) = raw_change_rows(dir.path());
    assert!(!autoincrement);
    assert_eq!(
        rows,
        [(last as i64, String::new())],
        "only the mark is left"
    );
    assert!(store.changes_after(0, 10).await.expect("read").is_empty());
    assert_eq!(store.last_change_seq().await.expect("seq"), last);
    // Pruning again finds nothing to prune, and keeps the mark.
    assert_eq!(
        store
            .prune_changes(last, nothing_kept)
            .await
            .expect("pruned"),
        0
    );
    assert_eq!(raw_change_rows(dir.path()).0.len(), 1);

    let next = create(&store, "items", json!({"name": "next"}))
        .await
        .expect("created");
    let changes = store.changes_after(0, 10).await.expect("read");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].seq, last + 1);
    assert_eq!(changes[0].record_id, next.id());
    // The next prune past the mark takes it with the entry, and marks the new newest.
    assert_eq!(
        store
            .prune_changes(last + 1, nothing_kept)
            .await
            .expect("pruned"),
        1
    );
    assert_eq!(
        raw_change_rows(dir.path()).0,
        [((last + 1) as i64, String::new())]
    );
    store.close().await.expect("closed");
    drop(store);

    // The byte budget's prune marks the newest it takes too.
    let store = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            change_log_max_bytes: 1,
            ..SqliteOptions::default()
        },
    )
    .expect("reopens");
    assert_eq!(store.last_change_seq().await.expect("seq"), last + 1);
    for name in ["over", "budget"] {
        create(&store, "items", json!({"name": name}))
            .await
            .expect("created");
    }
    let newest = store.last_change_seq().await.expect("seq");
    assert_eq!(newest, last + 3);
    // Retention keeps everything; the budget takes all that was read, the newest included.
    let keep_all = domain::ChangeRetention {
        max_entries: 1000,
        max_age_secs: 3600,
    };
    assert_eq!(
        store.prune_changes(newest, keep_all).await.expect("pruned"),
        2
    );
    assert_eq!(
        raw_change_rows(dir.path()).0,
        [(newest as i64, String::new())]
    );
    let next = create(&store, "items", json!({"name": "next"}))
        .await
        .expect("created");
    let changes = store.changes_after(0, 10).await.expect("read");
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].seq, changes[0].record_id.as_str()),
        (newest + 1, next.id())
    );
}

/// A log made with `AUTOINCREMENT` (before the high-water marks) is rebuilt without it when
/// the store opens: its entries kept with their sequences, and when pruning had emptied it,
/// the newest sequence `sqlite_sequence` held kept as a mark, so none is handed out twice.
#[tokio::test(flavor = "multi_thread")]
async fn an_autoincrement_change_log_is_rebuilt_with_its_high_water() {
    for emptied in [false, true] {
        let (dir, store) = open().await;
        store
            .create_collection(base("items", vec![text("name")]))
            .await
            .expect("created");
        let mut ids = Vec::new();
        for n in 0..3 {
            let record = create(&store, "items", json!({"name": format!("n{n}")}))
                .await
                .expect("created");
            ids.push(record.id().to_owned());
        }
        let last = store.last_change_seq().await.expect("seq");
        store.close().await.expect("closed");
        drop(store);
        {
            // The log as the `3_change_log` step used to make it, with the same rows.
            let conn = rusqlite::Connection::open(dir.path().join("data.db")).expect("side");
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE _changes_old (
                     seq          INTEGER PRIMARY KEY AUTOINCREMENT,
                     collectionId TEXT NOT NULL,
                     recordId     TEXT NOT NULL,
                     action       TEXT NOT NULL,
                     record       JSON NOT NULL,
                     created      INTEGER NOT NULL
                 );
                 INSERT INTO _changes_old SELECT * FROM _changes;
                 DROP TABLE _changes;
                 ALTER TABLE _changes_old RENAME TO _changes;
                 DELETE FROM _migrations WHERE file = '6_change_log_high_water';
                 COMMIT;",
            )
            .expect("old form");
            if emptied {
                conn.execute("DELETE FROM _changes", []).expect("pruned");
            }
            // A view reading the log, and one already broken: neither stops the rebuild.
            conn.execute_batch(
                "CREATE VIEW log_view AS SELECT seq, action FROM _changes;
                 CREATE TABLE gone (x); CREATE VIEW broken AS SELECT x FROM gone; DROP TABLE gone;",
            )
            .expect("views");
            let kept: i64 = conn
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = '_changes'",
                    [],
                    |r| r.get(0),
                )
                .expect("sequence");
            assert_eq!(kept, last as i64);
        }
        assert!(raw_change_rows(dir.path()).1, "made with AUTOINCREMENT");

        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("reopens");
        let (rows, autoincrement) = raw_change_rows(dir.path());
        assert!(!autoincrement, "rebuilt");
        assert_eq!(store.last_change_seq().await.expect("seq"), last);
        let kept: Vec<String> = store
            .changes_after(0, 10)
            .await
            .expect("read")
            .into_iter()
            .map(|change| change.record_id)
            .collect();
        if emptied {
            assert_eq!(rows, [(last as i64, String::new())]);
            assert!(kept.is_empty());
        } else {
            assert_eq!(rows.len(), 3);
            assert_eq!(kept, ids);
        }
        create(&store, "items", json!({"name": "after"}))
            .await
            .expect("created");
        let newest = store.changes_after(last, 10).await.expect("read");
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].seq, last + 1);
        let conn = rusqlite::Connection::open(dir.path().join("data.db")).expect("side");
        let through_view: i64 = conn
            .query_row("SELECT max(seq) FROM log_view", [], |r| r.get(0))
            .expect("the view reads the rebuilt log");
        assert_eq!(through_view, (last + 1) as i64);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unsaved_rows_match_like_stored_ones() {
    let (_dir, store) = open().await;
    let articles_id = relation_fixture(&store).await;
    let article = create(&store, "articles", json!({"title": "hello"}))
        .await
        .expect("article");
    let comments = collection(&store, "comments");
    let articles = collection(&store, "articles");
    let _ = articles_id;

    // A plain column of the row itself.
    let would_be = record_data(&articles, json!({"title": "draft"}));
    let title_is = |t: &str| eq("articles", "title", SqlValue::Text(t.into()));
    assert!(
        store
            .matches_unsaved(Arc::clone(&articles), would_be.clone(), title_is("draft"))
            .await
            .expect("checked")
    );
    assert!(
        !store
            .matches_unsaved(Arc::clone(&articles), would_be, title_is("hello"))
            .await
            .expect("checked")
    );
    // The unsaved row is not stored, and the stored rows are not seen under the table's name.
    assert_eq!(list(&store, "articles", vec![]).await.len(), 1);

    // A join to another table reads the stored data: the comment's article must be titled
    // "hello".
    let mut through = SqlFragment::default();
    through
        .push_sql("EXISTS (SELECT 1 FROM \"articles\" AS a WHERE a.\"id\" = \"comments\".\"article\" AND a.\"title\" = ")
        .push_param(SqlValue::Text("hello".into()))
        .push_sql(")");
    let good = record_data(&comments, json!({"article": article.id()}));
    let bad = record_data(&comments, json!({"article": "nosucharticle00"}));
    assert!(
        store
            .matches_unsaved(Arc::clone(&comments), good, through.clone())
            .await
            .expect("checked")
    );
    assert!(
        !store
            .matches_unsaved(Arc::clone(&comments), bad, through)
            .await
            .expect("checked")
    );
    assert_eq!(list(&store, "comments", vec![]).await.len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsaved_rows_compare_without_column_affinity() {
    let (_dir, store) = open().await;
    store
        .create_collection(base("items", vec![text("name"), number("rank")]))
        .await
        .expect("created");
    let items = collection(&store, "items");
    let data = record_data(&items, json!({"name": "5", "rank": 5}));
    // Same storage class: equal.
    for predicate in [
        eq("items", "rank", SqlValue::Int(5)),
        eq("items", "name", SqlValue::Text("5".into())),
    ] {
        assert!(
            store
                .matches_unsaved(Arc::clone(&items), data.clone(), predicate)
                .await
                .expect("checked")
        );
    }
    // Across storage classes: not converted (PocketBase's would-be-row query answers the
    // same).
    for predicate in [
        eq("items", "rank", SqlValue::Text("5".into())),
        eq("items", "name", SqlValue::Int(5)),
    ] {
        assert!(
            !store
                .matches_unsaved(Arc::clone(&items), data.clone(), predicate)
                .await
                .expect("checked")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_past_their_deadline_roll_back() {
    let (_dir, store) = open().await;
    store
        .create_collection(base("items", vec![text("name"), number("rank")]))
        .await
        .expect("created");
    let items = collection(&store, "items");
    let create = |name: &str, guard: Option<SqlFragment>| WriteOp::Create {
        collection: Arc::clone(&items),
        data: record_data(&items, json!({"name": name})),
        guard,
    };

    // Already past: refused before anything runs.
    let past = std::time::Instant::now();
    let error = store
        .write_before(vec![create("early", None)], past)
        .await
        .expect_err("past deadline");
    assert!(matches!(error.error, StoreError::TimedOut), "{error:?}");

    // A statement still running at the deadline is interrupted; the create before it in the
    // same transaction is rolled back with it.
    let mut slow = SqlFragment::default();
    slow.push_sql(
        "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) \
         SELECT count(*) FROM c) > 0",
    );
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_millis(100);
    let error = store
        .write_before(
            vec![create("first", None), create("slow", Some(slow))],
            deadline,
        )
        .await
        .expect_err("interrupted");
    assert!(matches!(error.error, StoreError::TimedOut), "{error:?}");
    assert_eq!(error.index, 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(list(&store, "items", vec![]).await.is_empty());

    // The deadline does not outlive its write.
    let far = std::time::Instant::now() + std::time::Duration::from_secs(60);
    store
        .write_before(vec![create("later", None)], far)
        .await
        .expect("within the deadline");
    store
        .write(vec![create("plain", None)])
        .await
        .expect("no deadline");
    assert_eq!(list(&store, "items", vec![]).await.len(), 2);
}

/// Every snapshot text in `_changes`, read through a side connection.
fn raw_change_log(dir: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("data.db")).expect("side connection");
    let mut stmt = conn
        .prepare("SELECT record FROM _changes ORDER BY seq")
        .expect("prepared");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("queried")
        .collect::<Result<_, _>>()
        .expect("read")
}

/// A second auth collection, `members`, whose records are deleted with the user they name in
/// `owner` (a cascading relation to `users`).
async fn create_members_of_users(store: &SqliteStore) {
    let mut members = Collection::scaffold(CollectionType::Auth, "members");
    members.id = domain::ids::collection_id("auth", "members");
    members
        .fields
        .push(relation("owner", USERS_ID, 1, false, true));
    store.create_collection(members).await.expect("created");
}

#[tokio::test(flavor = "multi_thread")]
async fn change_log_keeps_no_secrets() {
    let (dir, store) = open().await;
    // A second auth collection whose records cascade-delete with their user, and a base
    // collection with a password field of its own.
    create_members_of_users(&store).await;
    store
        .create_collection(base(
            "vaults",
            vec![Field::new(
                "pin",
                FieldKind::Password(domain::field::PasswordOptions::default()),
            )],
        ))
        .await
        .expect("created");

    let secrets = [
        "$2a$10$firsthashfirsthashfirsthash",
        "firstTokenKeyfirstTokenKeyfirstTokenKey",
        "$2a$10$secondhashsecondhashsecond",
        "secondTokenKeysecondTokenKeysecondToken",
        "memberTokenKeymemberTokenKeymemberToken",
        "$2a$10$memberhashmemberhashmember",
        "$2a$10$vaultpinhashvaultpinhashv",
    ];
    let user = create(
        &store,
        USERS_NAME,
        json!({"email": "a@example.com", "password": secrets[0], "tokenKey": secrets[1]}),
    )
    .await
    .expect("user");
    update(
        &store,
        USERS_NAME,
        user.id(),
        json!({"password": secrets[2], "tokenKey": secrets[3], "name": "Ann"}),
    )
    .await
    .expect("password changed");
    create(
        &store,
        "members",
        json!({"email": "m@example.com", "tokenKey": secrets[4], "password": secrets[5],
               "owner": user.id()}),
    )
    .await
    .expect("member");
    create(&store, "vaults", json!({"pin": secrets[6]}))
        .await
        .expect("vault");
    // Deleting the user cascades to the member: both last states reach the log.
    delete(&store, USERS_NAME, user.id())
        .await
        .expect("deleted");

    let log = raw_change_log(dir.path());
    assert_eq!(log.len(), 6, "{log:?}");
    for entry in &log {
        for secret in secrets {
            assert!(
                !entry.contains(secret),
                "{secret} in the change log: {entry}"
            );
        }
    }
    // What subscribers may see stays: every other field, in the collection's order.
    assert!(log[1].contains("Ann"), "{}", log[1]);
    let updated: Value = serde_json::from_str(&log[1]).expect("a JSON object");
    let kept: Vec<&str> = updated
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let users = collection(&store, USERS_NAME);
    let expected: Vec<&str> = users
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| !matches!(*name, "password" | "tokenKey"))
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(updated["name"], "Ann");
    assert_eq!(updated["email"], "a@example.com");
    let changes = store.changes_after(0, 10).await.expect("read");
    assert!(
        changes
            .iter()
            .any(|c| c.action == domain::ChangeAction::Delete
                && c.record.text("email") == "a@example.com"),
        "the user's delete is logged"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.action == domain::ChangeAction::Delete
                && c.record.text("email") == "m@example.com"),
        "the cascaded member's delete is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn change_log_reads_carry_the_current_token_key() {
    let (dir, store) = open().await;
    let user = new_user(&store, "a@example.com").await;
    let first_key = user.text("tokenKey").to_owned();
    update(&store, USERS_NAME, user.id(), json!({"name": "Ann"}))
        .await
        .expect("renamed");
    let changes = store.changes_after(0, 10).await.expect("read");
    // Not rotated: the key a token holder compares with is the current one.
    assert!(
        changes
            .iter()
            .all(|c| c.record.text("tokenKey") == first_key)
    );

    update(
        &store,
        USERS_NAME,
        user.id(),
        json!({"tokenKey": "rotated"}),
    )
    .await
    .expect("rotated");
    let changes = store.changes_after(0, 10).await.expect("read");
    // Every entry now shows a key the old token does not hold.
    assert!(
        changes
            .iter()
            .all(|c| c.record.text("tokenKey") == "rotated")
    );
    delete(&store, USERS_NAME, user.id())
        .await
        .expect("deleted");
    let changes = store.changes_after(0, 10).await.expect("read");
    assert!(changes.iter().all(|c| c.record.text("tokenKey").is_empty()));
    assert!(
        raw_change_log(dir.path())
            .iter()
            .all(|e| !e.contains(&first_key))
    );
}

/// A store whose change log may take `budget` bytes, with a `blobs` collection (one text
/// field, `body`) and one empty blob.
async fn store_with_a_blob(budget: u64) -> (TempDir, Arc<SqliteStore>, Record) {
    let (dir, store) = open_with(SqliteOptions {
        change_log_max_bytes: budget,
        ..SqliteOptions::default()
    });
    store
        .create_collection(base("blobs", vec![text("body")]))
        .await
        .expect("created");
    let blob = create(&store, "blobs", json!({"body": ""}))
        .await
        .expect("created");
    (dir, store, blob)
}

#[tokio::test(flavor = "multi_thread")]
async fn change_log_stays_within_its_byte_budget() {
    let budget: u64 = 12 << 20;
    let (dir, store, blob) = store_with_a_blob(budget).await;
    let stored_bytes = || -> u64 {
        raw_change_log(dir.path())
            .iter()
            .map(|e| e.len() as u64)
            .sum()
    };
    let five_mb = |n: usize| "abcdefghij"[n % 10..n % 10 + 1].repeat(5 << 20);

    // Unread entries are never pruned: the reader (the realtime hub) has not delivered them.
    for n in 0..3 {
        update(&store, "blobs", blob.id(), json!({"body": five_mb(n)}))
            .await
            .expect("updated");
    }
    // Read in rounds, as the hub does: one read is cut short by snapshot bytes.
    let mut unread = 0;
    let mut after = 0;
    loop {
        let batch = store.changes_after(after, 10).await.expect("read");
        let Some(newest) = batch.last() else { break };
        after = newest.seq;
        unread += batch.len();
    }
    assert_eq!(unread, 4);
    // The reader's next round starts after what it read.
    read_past_the_newest_change(&store).await;

    // Read as they come (as the hub does), repeated 5 MB updates keep the log in budget.
    for n in 0..8 {
        update(&store, "blobs", blob.id(), json!({"body": five_mb(n)}))
            .await
            .expect("updated");
        assert!(stored_bytes() <= budget, "{} > {budget}", stored_bytes());
        let last = store.last_change_seq().await.expect("seq");
        let newest = store.changes_after(last - 1, 10).await.expect("read");
        assert_eq!(newest.len(), 1, "the newest entry is always there");
        read_past_the_newest_change(&store).await;
    }
    // The time-based prune enforces the budget too, and reopening counts what is stored.
    let last = store.last_change_seq().await.expect("seq");
    store
        .prune_changes(last, domain::ChangeRetention::default())
        .await
        .expect("pruned");
    assert!(stored_bytes() <= budget);
    store.close().await.expect("closed");
    drop(store);
    let store = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            change_log_max_bytes: 4 << 20,
            ..SqliteOptions::default()
        },
    )
    .expect("reopens");
    update(&store, "blobs", blob.id(), json!({"body": "small"}))
        .await
        .expect("updated");
    assert!(stored_bytes() <= 4 << 20, "{}", stored_bytes());
}

/// A predicate that takes far longer than any test's timeout (a trillion steps).
fn slow_predicate() -> SqlFragment {
    let mut slow = SqlFragment::default();
    slow.push_sql(
        "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) \
         SELECT count(*) FROM c) > 0",
    );
    slow
}

/// Lists with `slow_predicate` on `items`, more than there are query readers.
fn slow_lists(
    store: &Arc<SqliteStore>,
    items: &Arc<Collection>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<domain::RecordPage, StoreError>>> {
    (0..n)
        .map(|_| {
            let store = Arc::clone(store);
            let query = RecordQuery {
                collection: Arc::clone(items),
                filters: vec![slow_predicate()],
                sort: Vec::new(),
                page: 1,
                per_page: 10,
                with_total: true,
            };
            tokio::spawn(async move { store.list_records(query).await })
        })
        .collect()
}

/// Waits until every query-lane thread runs a job.
async fn until_query_lane_held(store: &SqliteStore, readers: usize) {
    while store.engine.busy(crate::engine::Lane::Query) < readers {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn point_reads_and_sign_in_lookups_go_around_a_held_query_lane() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The slow lists never finish on their own; the timeout only ends the test.
    let store = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            readers: 2,
            query_timeout: Some(std::time::Duration::from_secs(10)),
            ..SqliteOptions::default()
        },
    )
    .expect("opens");
    store
        .create_collection(base("items", vec![text("name")]))
        .await
        .expect("created");
    let item = create(&store, "items", json!({"name": "a"}))
        .await
        .expect("created");
    let user = new_user(&store, "a@example.com").await;
    let items = collection(&store, "items");
    let users = collection(&store, USERS_NAME);

    let slow = slow_lists(&store, &items, 4);
    until_query_lane_held(&store, 2).await;
    // Every query reader is busy: the auth-record lookup, a setting, the sign-in identity
    // lookup (unique email index) and a read by id under a row-local rule are answered.
    assert!(get(&store, USERS_NAME, user.id()).await.is_some());
    store.get_param("settings").await.expect("param read");
    let found = store
        .find_by_field(Arc::clone(&users), "email", "a@example.com")
        .await
        .expect("looked up");
    assert_eq!(found.map(|r| r.id().to_owned()).as_deref(), Some(user.id()));
    let missing = store
        .find_by_field(Arc::clone(&users), "email", "b@example.com")
        .await
        .expect("looked up");
    assert!(missing.is_none());
    let by_id = store
        .find_by_field(Arc::clone(&items), "id", item.id())
        .await
        .expect("looked up");
    assert!(by_id.is_some());
    let ruled = store
        .get_record(
            Arc::clone(&items),
            item.id(),
            vec![eq("items", "name", SqlValue::Text("a".into()))],
        )
        .await
        .expect("read");
    assert!(ruled.is_some());
    // ... while the slow lists still hold the lane: nothing above waited for them.
    assert_eq!(store.engine.busy(crate::engine::Lane::Query), 2);
    assert!(slow.iter().all(|list| !list.is_finished()));
    for list in slow {
        let error = list.await.expect("joined").expect_err("timed out");
        assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    }
}

#[test]
fn lanes_follow_what_a_client_can_make_expensive() {
    use crate::engine::Lane;
    let users = domain::collection::users_collection("2024-01-01 00:00:00.000Z");
    // A unique email index with a partial condition: point lane, condition repeated.
    let (lane, filters) = crate::lookup_filters(&users, "email", "a@example.com");
    assert_eq!(lane, Lane::Point);
    assert_eq!(filters.len(), 2);
    assert_eq!(filters[1].sql, "(\"email\" != '')");
    // No unique index on the field: a scan, query lane.
    let (lane, filters) = crate::lookup_filters(&users, "name", "Ann");
    assert_eq!((lane, filters.len()), (Lane::Query, 1));
    let (lane, _) = crate::lookup_filters(&users, "id", "abc");
    assert_eq!(lane, Lane::Point);

    let row_local = eq("users", "name", SqlValue::Text("Ann".into()));
    assert_eq!(crate::get_lane(&users, &[]), Lane::Point);
    assert_eq!(
        crate::get_lane(&users, std::slice::from_ref(&row_local)),
        Lane::Point
    );
    let hop = SqlFragment::raw("EXISTS (SELECT 1 FROM \"posts\" WHERE 1)");
    assert_eq!(crate::get_lane(&users, &[row_local, hop]), Lane::Query);
    let like = SqlFragment::raw("\"users\".\"name\" LIKE ? ESCAPE '\\'");
    assert_eq!(crate::get_lane(&users, &[like]), Lane::Query);
    let mut view = base("v", vec![text("name")]);
    view.kind = CollectionType::View;
    assert_eq!(crate::get_lane(&view, &[]), Lane::Query);

    // Lists: the server's lookups of a record's sign-in origins go through the unique index
    // (collectionRef, recordRef, fingerprint); a list with a partial key, a client filter or no
    // filter at all is the query lane's.
    let origins = domain::collection::auth_bookkeeping_collections("2024-01-01 00:00:00.000Z")
        .into_iter()
        .find(|c| c.name == "_authOrigins")
        .map(Arc::new)
        .expect("origins");
    let lane = |filters: Vec<SqlFragment>| {
        crate::list_lane(&RecordQuery {
            collection: Arc::clone(&origins),
            filters,
            sort: Vec::new(),
            page: 1,
            per_page: 100,
            with_total: false,
        })
    };
    let key = |column: &str| eq("_authOrigins", column, SqlValue::Text("x".into()));
    assert_eq!(
        lane(vec![key("collectionRef"), key("recordRef")]),
        Lane::Point
    );
    assert_eq!(lane(vec![key("collectionRef")]), Lane::Query);
    assert_eq!(lane(vec![]), Lane::Query);
    let client = SqlFragment::raw("(\"_authOrigins\".\"recordRef\" = ?) OR 1");
    assert_eq!(lane(vec![client]), Lane::Query);
    let hop = SqlFragment::raw("EXISTS (SELECT 1)");
    assert_eq!(
        lane(vec![key("collectionRef"), key("recordRef"), hop]),
        Lane::Query
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_reads_and_writes_time_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(
        dir.path(),
        SqliteOptions {
            readers: 2,
            query_timeout: Some(std::time::Duration::from_millis(1500)),
            ..SqliteOptions::default()
        },
    )
    .expect("opens");
    store
        .create_collection(base("items", vec![text("name")]))
        .await
        .expect("created");
    let item = create(&store, "items", json!({"name": "a"}))
        .await
        .expect("created");
    let items = collection(&store, "items");
    for list in slow_lists(&store, &items, 4) {
        let error = list.await.expect("joined").expect_err("timed out");
        assert!(matches!(error, StoreError::TimedOut), "{error:?}");
    }
    // A filtered read by id is bounded the same way; a filter it could not decide does not
    // hold (PocketBase's rule lookups answer 404 then), nor does a predicate on a would-be row.
    let hidden = store
        .get_record(Arc::clone(&items), item.id(), vec![slow_predicate()])
        .await
        .expect("read");
    assert!(hidden.is_none());
    let matched = store
        .matches_unsaved(
            Arc::clone(&items),
            record_data(&items, json!({"name": "c"})),
            slow_predicate(),
        )
        .await
        .expect("checked");
    assert!(!matched);

    // So is a write whose guard runs a heavy subquery (the row is hidden, as above) or whose
    // create guard does; the writer then serves the next write.
    let error = store
        .write(vec![WriteOp::Update {
            collection: Arc::clone(&items),
            id: item.id().to_owned(),
            guard: Some(slow_predicate()),
            apply: Box::new(|current: &Record| Ok(current.data.clone())),
            known: None,
        }])
        .await
        .expect_err("interrupted");
    assert!(matches!(error.error, StoreError::NotFound), "{error:?}");
    let error = store
        .write(vec![WriteOp::Create {
            collection: Arc::clone(&items),
            data: record_data(&items, json!({"name": "c"})),
            guard: Some(slow_predicate()),
        }])
        .await
        .expect_err("interrupted");
    assert!(matches!(error.error, StoreError::TimedOut), "{error:?}");
    update(&store, "items", item.id(), json!({"name": "b"}))
        .await
        .expect("updated");
    // Nothing leaks into later work on the same threads.
    assert_eq!(list(&store, "items", vec![]).await.len(), 1);
}

/// The in-memory total of the change log's bytes and the writer's count of whole-log scans.
async fn change_log_total(store: &SqliteStore) -> (u64, u64, u64) {
    let kept = store
        .change_log_size
        .load(std::sync::atomic::Ordering::Relaxed);
    let (recounts, exact) = store
        .engine
        .write(|conn| {
            let recounts = crate::changelog::RECOUNTS.get();
            (
                recounts,
                crate::changelog::stored_size(conn).expect("recount"),
            )
        })
        .await
        .expect("on the writer");
    (kept, exact, recounts)
}

#[tokio::test(flavor = "multi_thread")]
async fn change_log_total_is_kept_without_recounting_per_write() {
    let (_dir, store, blob) = store_with_a_blob(64 << 10).await;
    // Over budget with nothing read yet: nothing may go, and no write recounts the log.
    for n in 0..8 {
        update(
            &store,
            "blobs",
            blob.id(),
            json!({"body": "x".repeat(20_000 + n)}),
        )
        .await
        .expect("updated");
    }
    let (kept, exact, recounts) = change_log_total(&store).await;
    assert_eq!(recounts, 0, "writes scanned the whole log");
    assert_eq!(kept, exact);
    assert!(kept > 64 << 10, "{kept}");
    // Once read past, the next write prunes to the budget; the total follows.
    let last = store.last_change_seq().await.expect("seq");
    assert_eq!(store.changes_after(0, 100).await.expect("read").len(), 9);
    // The reader's next round starts after what it read, which marks it read.
    assert!(
        store
            .changes_after(last, 100)
            .await
            .expect("read")
            .is_empty()
    );
    update(&store, "blobs", blob.id(), json!({"body": "small"}))
        .await
        .expect("updated");
    let (kept, exact, _) = change_log_total(&store).await;
    assert_eq!(kept, exact);
    assert!(kept <= 64 << 10, "{kept}");
    // A retention prune keeping nothing empties what was read.
    let pruned = store
        .prune_changes(
            last,
            domain::ChangeRetention {
                max_entries: 0,
                max_age_secs: 0,
            },
        )
        .await
        .expect("pruned");
    assert!(pruned > 0);
    let (kept, exact, _) = change_log_total(&store).await;
    assert_eq!(kept, exact);
}

/// Reads the change log after its newest entry, as a consumer that has read everything does:
/// nothing comes back.
async fn read_past_the_newest_change(store: &SqliteStore) {
    let last = store.last_change_seq().await.expect("seq");
    assert!(
        store
            .changes_after(last, 10)
            .await
            .expect("read")
            .is_empty()
    );
}

/// Sets the blob's body, reads the change log past the write as the realtime hub does (so all
/// of it may be pruned), and checks the log's total is exact and within `budget`; returns it.
async fn update_read_past(store: &SqliteStore, blob: &Record, body: String, budget: u64) -> u64 {
    update(store, "blobs", blob.id(), json!({ "body": body }))
        .await
        .expect("updated");
    read_past_the_newest_change(store).await;
    let (kept, exact, _) = change_log_total(store).await;
    assert_eq!(kept, exact);
    assert!(kept <= budget, "{kept} > {budget}");
    kept
}

/// A log at its byte budget under steady writes is pruned in steps (down to 1/16 below a small
/// budget), not after every write: each prune is one range delete and one more commit.
#[tokio::test(flavor = "multi_thread")]
async fn change_log_budget_prunes_in_steps_below_it() {
    let budget: u64 = 256 << 10;
    let (dir, store, blob) = store_with_a_blob(budget).await;
    let mut entries = Vec::new();
    for n in 0..600 {
        update_read_past(&store, &blob, format!("{n:04}").repeat(256), budget).await;
        entries.push(raw_change_log(dir.path()).len());
    }
    let prunes = entries.windows(2).filter(|w| w[1] < w[0]).count();
    // About 1.1 KB per snapshot: the budget holds ~230, a step frees ~15. 600 writes past
    // an empty log need ~25 steps; pruning after every write would be ~370.
    assert!((10..=40).contains(&prunes), "{prunes} prunes");
    let (kept, _, _) = change_log_total(&store).await;
    assert!(
        kept > budget - budget / 8,
        "pruned far below the budget: {kept}"
    );
}

/// Above a 4 MiB budget a prune frees a fixed 256 KiB, not 1/16 of the budget: the writer
/// prunes between two commits, and a step of megabytes held every write for milliseconds.
#[tokio::test(flavor = "multi_thread")]
async fn change_log_prunes_at_most_a_bounded_step_of_a_large_budget() {
    let budget: u64 = 8 << 20;
    assert_eq!(crate::changelog::prune_step(budget), 256 << 10);
    assert_eq!(crate::changelog::prune_step(256 << 10), 16 << 10);
    let (_dir, store, blob) = store_with_a_blob(budget).await;
    // About 48 KiB a snapshot: the budget holds ~170 of them.
    let entry: u64 = 48 << 10;
    let mut previous = 0;
    let mut prunes = 0;
    for n in 0..260 {
        let kept =
            update_read_past(&store, &blob, format!("{n:04}").repeat(12 << 10), budget).await;
        if kept < previous {
            prunes += 1;
            // One write's entry came in, a step and at most one entry's worth went.
            let freed = previous + entry - kept;
            assert!(
                freed <= (256 << 10) + 2 * entry,
                "write {n}: a prune freed {freed} bytes"
            );
        }
        previous = kept;
    }
    // ~90 writes past a full log at ~6 entries a step: some 15 prunes (7 with 1/16 steps).
    assert!((10..=30).contains(&prunes), "{prunes} prunes");
}

#[tokio::test(flavor = "multi_thread")]
async fn old_change_log_entries_lose_their_secrets_on_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("opens");
    let user = new_user(&store, "old@example.com").await;
    store.close().await.expect("closed");
    drop(store);
    // As an entry written before snapshots left secrets out, by a database not yet migrated.
    {
        let conn = rusqlite::Connection::open(dir.path().join("data.db")).expect("raw");
        let changed = conn
            .execute(
                "UPDATE _changes SET record = json_set(record, '$.password', '$2a$10$hash',
                 '$.tokenKey', 'oldkey') WHERE recordId = ?",
                [user.id()],
            )
            .expect("old entry");
        assert_eq!(changed, 1);
        conn.execute(
            "DELETE FROM _migrations WHERE file = '4_strip_change_log_secrets'",
            [],
        )
        .expect("unmigrated");
    }
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("reopens");
    let snapshots: Vec<String> = store
        .engine
        .write(|conn| {
            let mut stmt = conn
                .prepare("SELECT record FROM _changes")
                .expect("prepared");
            stmt.query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<Vec<String>, _>>()
                .expect("rows")
        })
        .await
        .expect("on the writer");
    assert_eq!(snapshots.len(), 1);
    assert!(!snapshots[0].contains("password"), "{}", snapshots[0]);
    assert!(!snapshots[0].contains("oldkey"), "{}", snapshots[0]);
    assert!(snapshots[0].contains("old@example.com"));
    // The in-memory total was taken after the migration.
    let (kept, exact, _) = change_log_total(&store).await;
    assert_eq!(kept, exact);
}

/// How many rows of the auth bookkeeping collections name `record_id` of `collection_id`.
async fn dependents_of(store: &SqliteStore, collection_id: &str, record_id: &str) -> usize {
    let mut found = 0;
    for dependent in domain::collection::AUTH_RECORD_DEPENDENTS {
        let dependent = store
            .schema()
            .get_by_id(dependent)
            .cloned()
            .expect("bootstrapped");
        let filters = vec![
            eq(
                &dependent.name,
                "collectionRef",
                SqlValue::Text(collection_id.to_owned()),
            ),
            eq(
                &dependent.name,
                "recordRef",
                SqlValue::Text(record_id.to_owned()),
            ),
        ];
        found += list(store, &dependent.name, filters).await.len();
    }
    found
}

/// One row in each auth bookkeeping collection for `record_id` of `collection_id`; returns
/// the `_externalAuths` row.
async fn add_dependents(store: &SqliteStore, collection_id: &str, record_id: &str) -> Record {
    let owner = json!({"collectionRef": collection_id, "recordRef": record_id});
    let with = |extra: Value| {
        let mut values = owner.clone();
        if let (Value::Object(values), Value::Object(extra)) = (&mut values, extra) {
            values.extend(extra);
        }
        values
    };
    let link = create(
        store,
        "_externalAuths",
        with(json!({"provider": "gitlab", "providerId": record_id})),
    )
    .await
    .expect("link");
    create(
        store,
        "_authOrigins",
        with(json!({"fingerprint": record_id})),
    )
    .await
    .expect("origin");
    create(store, "_otps", with(json!({"password": "hash"})))
        .await
        .expect("otp");
    create(store, "_mfas", with(json!({"method": "password"})))
        .await
        .expect("mfa");
    link
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_auth_records_take_their_bookkeeping_rows_in_the_same_transaction() {
    let (_dir, store) = open().await;
    let ann = new_user(&store, "ann@example.com").await;
    let bob = new_user(&store, "bob@example.com").await;
    add_dependents(&store, USERS_ID, ann.id()).await;
    let bob_link = add_dependents(&store, USERS_ID, bob.id()).await;
    // Same record id, another collection: not Ann's.
    add_dependents(&store, SUPERUSERS_ID, ann.id()).await;
    assert_eq!(dependents_of(&store, USERS_ID, ann.id()).await, 4);

    let before = store.last_change_seq().await.expect("seq");
    delete(&store, USERS_NAME, ann.id()).await.expect("deleted");
    assert_eq!(dependents_of(&store, USERS_ID, ann.id()).await, 0);
    assert_eq!(dependents_of(&store, USERS_ID, bob.id()).await, 4);
    assert_eq!(dependents_of(&store, SUPERUSERS_ID, ann.id()).await, 4);
    // The rows' deletes are logged with the record's, in the same commit.
    let deleted: Vec<_> = changes_since(&store, before).await;
    assert_eq!(deleted.len(), 5, "{deleted:?}");

    // A cleanup that cannot happen (a required reference to Bob's link) leaves the record,
    // not only its rows: one transaction.
    store
        .create_collection(base(
            "pins",
            vec![relation(
                "link",
                domain::collection::EXTERNAL_AUTHS_ID,
                1,
                true,
                false,
            )],
        ))
        .await
        .expect("pins");
    let pin = create(&store, "pins", json!({"link": bob_link.id()}))
        .await
        .expect("pin");
    let error = delete(&store, USERS_NAME, bob.id())
        .await
        .expect_err("blocked by the link's reference");
    assert!(matches!(error, StoreError::RequiredReference), "{error:?}");
    assert!(get(&store, USERS_NAME, bob.id()).await.is_some());
    assert_eq!(dependents_of(&store, USERS_ID, bob.id()).await, 4);

    // Truncating the collection cleans up too.
    delete(&store, "pins", pin.id()).await.expect("unpinned");
    store
        .truncate_collection(USERS_ID)
        .await
        .expect("truncated");
    assert!(get(&store, USERS_NAME, bob.id()).await.is_none());
    assert_eq!(dependents_of(&store, USERS_ID, bob.id()).await, 0);
    assert_eq!(dependents_of(&store, SUPERUSERS_ID, ann.id()).await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_records_deleted_by_a_cascade_take_their_bookkeeping_rows() {
    let (_dir, store) = open().await;
    let teams = base("teams", vec![text("name")]);
    let teams_id = teams.id.clone();
    store.create_collection(teams).await.expect("teams");
    let mut members = Collection::scaffold(CollectionType::Auth, "members");
    members.id = domain::ids::collection_id("auth", "members");
    members
        .fields
        .push(relation("team", &teams_id, 1, false, true));
    let members_id = members.id.clone();
    store.create_collection(members).await.expect("members");
    let team = create(&store, "teams", json!({"name": "a"}))
        .await
        .expect("team");
    let member = create(
        &store,
        "members",
        json!({"email": "m@example.com", "tokenKey": "k", "password": "x", "team": team.id()}),
    )
    .await
    .expect("member");
    add_dependents(&store, &members_id, member.id()).await;
    delete(&store, "teams", team.id()).await.expect("deleted");
    assert!(get(&store, "members", member.id()).await.is_none());
    assert_eq!(dependents_of(&store, &members_id, member.id()).await, 0);
}

/// Totals come from a reader's count cache only while nothing was committed since they were
/// counted: after a write through the store, and after a write by another connection (another
/// process), every total is exact again.
#[tokio::test(flavor = "multi_thread")]
async fn cached_totals_are_exact_after_every_kind_of_write() {
    let (dir, store) = open().await;
    store
        .create_collection(base("items", vec![text("name"), number("rank")]))
        .await
        .expect("created");
    for rank in 0..3 {
        create(&store, "items", json!({"name": "a", "rank": rank}))
            .await
            .expect("created");
    }
    let ranked = eq("items", "name", SqlValue::Text("a".into()));
    let total = || {
        let query = RecordQuery {
            collection: collection(&store, "items"),
            filters: vec![ranked.clone()],
            sort: vec![],
            page: 1,
            per_page: 1,
            with_total: true,
        };
        let store = Arc::clone(&store);
        async move { store.list_records(query).await.expect("lists").total }
    };
    let hits = store.counts.stats().0;
    // Counted once, then answered from the store's kept counts.
    for _ in 0..40 {
        assert_eq!(total().await, Some(3));
    }
    assert!(store.counts.stats().0 > hits, "repeated totals are kept");

    create(&store, "items", json!({"name": "a", "rank": 9}))
        .await
        .expect("created");
    for _ in 0..40 {
        assert_eq!(total().await, Some(4), "a write through the store");
    }
    let side = side_connection(&dir);
    side.execute(
        "INSERT INTO items (id, name, rank) VALUES ('sideinsert00001', 'a', 1)",
        [],
    )
    .expect("inserted by another connection");
    for _ in 0..40 {
        assert_eq!(total().await, Some(5), "a write by another connection");
    }
    side.execute("DELETE FROM items WHERE rank = 0", [])
        .expect("deleted by another connection");
    for _ in 0..40 {
        assert_eq!(total().await, Some(4), "a delete by another connection");
    }
}

/// Waits until `n` record writes wait for a group (the writer is held meanwhile).
async fn queued_writes(store: &SqliteStore, n: usize) {
    for _ in 0..1000 {
        if store.group.len() == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("{} writes queued, expected {n}", store.group.len());
}

/// Record statements run `OR FAIL` (no statement journal): a write whose later operation
/// breaks a unique index leaves nothing of itself behind, alone in its transaction or not.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_failing_on_its_second_unique_index_leaves_nothing() {
    let (_dir, store) = open().await;
    let mut items = base("items", vec![text("a"), text("b")]);
    items.indexes = vec![
        "CREATE UNIQUE INDEX idx_items_a ON items (a)".into(),
        "CREATE UNIQUE INDEX idx_items_b ON items (b)".into(),
    ];
    store.create_collection(items).await.expect("created");
    let items = collection(&store, "items");
    create(&store, "items", json!({"a": "a0", "b": "taken"}))
        .await
        .expect("created");
    let op = |a: &str, b: &str| WriteOp::Create {
        collection: Arc::clone(&items),
        data: record_data(&items, json!({"a": a, "b": b})),
        guard: None,
    };
    // Alone, then the same write again (its first op went nowhere, so it fails the same way).
    for _ in 0..2 {
        let error = store
            .write(vec![op("a1", "b1"), op("a2", "taken")])
            .await
            .expect_err("second op breaks idx_items_b");
        assert_eq!(error.index, 1);
        assert_eq!(
            validation_code(&error.error, "b").as_deref(),
            Some("validation_not_unique")
        );
    }
    let row = list(&store, "items", vec![]).await;
    assert_eq!(row.len(), 1, "only the first record: {row:?}");
    // No index entry of the failed writes was left: their values are free.
    store
        .write(vec![op("a1", "b1"), op("a2", "b2")])
        .await
        .expect("the values are free");
    let mut a: Vec<String> = list(&store, "items", vec![])
        .await
        .iter()
        .map(|r| r.data["a"].as_str().unwrap_or_default().to_owned())
        .collect();
    a.sort();
    assert_eq!(a, ["a0", "a1", "a2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_queued_together_commit_together_and_fail_alone() {
    let (_dir, store) = open().await;
    let mut items = base("items", vec![text("name")]);
    items.indexes = vec!["CREATE UNIQUE INDEX idx_items_name ON items (name)".into()];
    store.create_collection(items).await.expect("created");
    let items = collection(&store, "items");
    create(&store, "items", json!({"name": "taken"}))
        .await
        .expect("created");
    let seq_before = store.last_change_seq().await.expect("seq");
    let op = |name: &str| WriteOp::Create {
        collection: Arc::clone(&items),
        data: record_data(&items, json!({"name": name})),
        guard: None,
    };
    let panicking = WriteOp::Update {
        collection: Arc::clone(&items),
        id: list(&store, "items", vec![]).await[0].id().to_owned(),
        guard: None,
        apply: Box::new(|_: &Record| panic!("boom")),
        known: None,
    };

    // Hold the writer so the writes below queue up behind it.
    let held = store.begin(None).await.expect("holds the writer");
    let commits_before = store.group.commits();
    let soon = std::time::Instant::now() + std::time::Duration::from_millis(50);
    let batches: Vec<(Vec<WriteOp>, Option<std::time::Instant>)> = vec![
        (vec![op("one")], None),
        (vec![op("taken")], None),
        (vec![op("two")], None),
        // The second operation fails, so the first must be undone with it.
        (vec![op("half"), op("one")], None),
        (vec![op("late")], Some(soon)),
        (vec![op("doomed"), panicking], None),
        (vec![op("three")], None),
    ];
    let mut writes = Vec::new();
    for (n, (ops, deadline)) in batches.into_iter().enumerate() {
        let writer = Arc::clone(&store);
        writes.push(tokio::spawn(async move {
            match deadline {
                Some(deadline) => writer.write_before(ops, deadline).await,
                None => writer.write(ops).await,
            }
        }));
        // In this order, so "one" is written before the half write tries it again.
        queued_writes(&store, n + 1).await;
    }
    // A caller that goes away before its write ran takes the write with it.
    let gone = {
        let writer = Arc::clone(&store);
        let op = op("gone");
        tokio::spawn(async move { writer.write(vec![op]).await })
    };
    queued_writes(&store, 8).await;
    gone.abort();
    queued_writes(&store, 7).await;
    tokio::time::sleep_until(soon.into()).await;
    held.rollback().await.expect("released");

    let mut outcomes = Vec::new();
    for write in writes {
        outcomes.push(write.await.expect("joined"));
    }
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    let error = outcomes[1].as_ref().expect_err("duplicate");
    assert_eq!(error.index, 0);
    assert_eq!(
        validation_code(&error.error, "name").as_deref(),
        Some("validation_not_unique")
    );
    assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
    let error = outcomes[3].as_ref().expect_err("second op duplicates");
    assert_eq!(error.index, 1);
    assert!(
        matches!(
            outcomes[4],
            Err(WriteError {
                error: StoreError::TimedOut,
                ..
            })
        ),
        "{:?}",
        outcomes[4]
    );
    assert!(outcomes[5].is_err(), "the panicking write fails");
    assert!(outcomes[6].is_ok(), "{:?}", outcomes[6]);
    let mut names: Vec<String> = list(&store, "items", vec![])
        .await
        .iter()
        .map(|r| r.text("name").to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["one", "taken", "three", "two"]);
    // The three writes that succeeded shared one transaction, and only they left changes.
    assert_eq!(store.group.commits(), commits_before + 1);
    // Every failure here changed nothing before it failed, or had its savepoint.
    assert_eq!(store.group.reruns(), 0);
    let changes = changes_since(&store, seq_before).await;
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(store.group.len(), 0);

    // Alone, a write commits on its own at once.
    create(&store, "items", json!({"name": "four"}))
        .await
        .expect("created");
    assert_eq!(store.group.commits(), commits_before + 2);
}

/// A write that runs without a savepoint and fails after changing something (here a trigger
/// of someone else's refuses the inserted row) sends its whole group through again, every
/// write in a savepoint: the others still commit, once, and nothing of the failed one stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_bare_write_failing_after_its_change_runs_the_group_again() {
    let (dir, store) = open().await;
    store
        .create_collection(base("items", vec![text("name")]))
        .await
        .expect("created");
    let items = collection(&store, "items");
    let existing = create(&store, "items", json!({"name": "old"}))
        .await
        .expect("created");
    side_connection(&dir)
        .execute_batch(
            "CREATE TABLE audit (name TEXT);
             CREATE TRIGGER refuse AFTER INSERT ON items WHEN new.name = 'boom' BEGIN
               INSERT INTO audit VALUES (new.name);
               SELECT RAISE(FAIL, 'boom is refused');
             END;",
        )
        .expect("trigger");
    let seq_before = store.last_change_seq().await.expect("seq");
    let op = |name: &str| WriteOp::Create {
        collection: Arc::clone(&items),
        data: record_data(&items, json!({"name": name})),
        guard: None,
    };
    let rename = WriteOp::Update {
        collection: Arc::clone(&items),
        id: existing.id().to_owned(),
        guard: None,
        apply: Box::new(|current: &Record| {
            let mut data = current.data.clone();
            let name = format!("{}-renamed", current.text("name"));
            data.insert("name".into(), json!(name));
            Ok(data)
        }),
        known: None,
    };
    let held = store.begin(None).await.expect("holds the writer");
    let (commits, reruns) = (store.group.commits(), store.group.reruns());
    let mut writes = Vec::new();
    for (n, ops) in [vec![op("a")], vec![rename], vec![op("boom")], vec![op("b")]]
        .into_iter()
        .enumerate()
    {
        let writer = Arc::clone(&store);
        writes.push(tokio::spawn(async move { writer.write(ops).await }));
        queued_writes(&store, n + 1).await;
    }
    held.rollback().await.expect("released");
    let mut outcomes = Vec::new();
    for write in writes {
        outcomes.push(write.await.expect("joined"));
    }
    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    let renamed = outcomes[1].as_ref().expect("renamed");
    // The update ran twice, on the row as it was each time: renamed once, not twice.
    assert_eq!(renamed[0].record().text("name"), "old-renamed");
    assert!(outcomes[2].is_err(), "the refused insert fails");
    assert!(outcomes[3].is_ok(), "{:?}", outcomes[3]);
    assert_eq!(store.group.reruns(), reruns + 1);
    assert_eq!(store.group.commits(), commits + 1);
    let mut names: Vec<String> = list(&store, "items", vec![])
        .await
        .iter()
        .map(|r| r.text("name").to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b", "old-renamed"]);
    let audit: i64 = side_connection(&dir)
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .expect("audit");
    assert_eq!(audit, 0, "nothing of the refused write stays");
    let changes = changes_since(&store, seq_before).await;
    assert_eq!(
        changes.len(),
        3,
        "one entry per committed write: {changes:?}"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn connection_threads_run_under_sched_batch() {
    if crate::engine::process_nice() != Some(0) {
        eprintln!("SKIPPED: the test process is niced, so the store keeps the default policy");
        return;
    }
    let (_dir, store) = open().await;
    // A write and a read, so the threads have surely started.
    store.set_param("k", json!(1)).await.expect("written");
    assert_eq!(store.get_param("k").await.expect("read"), Some(json!(1)));
    // Other tests' stores start threads too; one caught before it set its policy is seen
    // again a moment later.
    let mut policies = Vec::new();
    for _ in 0..50 {
        policies = database_thread_policies();
        if !policies.is_empty() && policies.iter().all(|(_, p)| *p == 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!policies.is_empty(), "no database threads found");
    // 3 is SCHED_BATCH.
    assert!(policies.iter().all(|(_, p)| *p == 3), "{policies:?}");
    store.close().await.expect("closed");
}

/// The scheduling policy of every `plinth-sqlite-*` thread of this process.
#[cfg(target_os = "linux")]
fn database_thread_policies() -> Vec<(String, u32)> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let path = task.expect("task").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("plinth-sqlite") {
            continue;
        }
        // A thread that ended meanwhile has no stat to read.
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        // `policy` is the 41st field of the line, the 39th after the name.
        if let Some(policy) = rest.split_whitespace().nth(38).and_then(|p| p.parse().ok()) {
            policies.push((comm.trim().to_owned(), policy));
        }
    }
    policies
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_list_statement_is_not_prepared_again_for_each_page() {
    let (dir, store) = open().await;
    store
        .create_collection({
            let mut items = base("items", vec![text("name"), number("n"), number("odd")]);
            items.indexes = vec!["CREATE INDEX idx_items_n ON items (n)".into()];
            items
        })
        .await
        .expect("created");
    for i in 0..30 {
        create(
            &store,
            "items",
            json!({"name": format!("item {i}"), "n": i, "odd": i % 2}),
        )
        .await
        .expect("created");
    }
    let mut above = SqlFragment::column("items", "n");
    above.push_sql(" > ").push_param(SqlValue::Int(3));
    // A flag compared with 1 (as `published = true` is) on a column no index serves, and a
    // question mark inside a literal.
    let mut odd = SqlFragment::column("items", "odd");
    odd.push_sql(" = ")
        .push_param(SqlValue::Int(1))
        .push_sql(" AND '?' = ")
        .push_param(SqlValue::Text("?".into()));
    // A rule's shape: a flag or the caller's own rows.
    let mut rule = SqlFragment::default();
    rule.push_sql("(")
        .push_fragment(SqlFragment::column("items", "odd"))
        .push_sql(" = 1 OR ")
        .push_fragment(SqlFragment::column("items", "name"))
        .push_sql(" = ")
        .push_param(SqlValue::Text("item 2".into()))
        .push_sql(")");
    let query = RecordQuery {
        collection: collection(&store, "items"),
        filters: vec![rule, above, odd],
        sort: vec![SortTerm {
            expr: SqlFragment::column("items", "n"),
            descending: true,
        }],
        page: 1,
        per_page: 10,
        with_total: true,
    };
    let conn = side_connection(&dir);
    crate::configure(&conn, &SqliteOptions::default(), true).expect("configured as a reader");
    for page in [1, 2, 1, 2, 1] {
        let listed = crate::records::list_in(
            &conn,
            &RecordQuery {
                page,
                ..query.clone()
            },
            None,
        )
        .expect("listed");
        let numbers: Vec<i64> = listed
            .items
            .iter()
            .map(|r| r.data["n"].as_i64().expect("n"))
            .collect();
        // The odd numbers from 29 down to 5: ten on the first page, three on the second.
        let expected: Vec<i64> = (5..30).rev().filter(|n| n % 2 == 1).collect();
        let expected = if page == 1 {
            expected[..10].to_vec()
        } else {
            expected[10..].to_vec()
        };
        assert_eq!(numbers, expected, "page {page}");
        assert_eq!(listed.total, Some(13));
    }
    // The same statement from the cache: SQLite counts how often it had to prepare it again.
    let filter = SqlFragment::and_all(query.filters.clone());
    let (sql, _) = crate::records::page_sql(&query, filter.as_ref());
    let stmt = conn.prepare_cached(&sql).expect("cached");
    assert_eq!(
        stmt.get_status(rusqlite::StatementStatus::RePrepare),
        0,
        "{sql}"
    );
}

/// The total of `name`'s rows matching `filter`, as a list with its total answers it.
async fn total_of(store: &Arc<SqliteStore>, name: &str, filter: &SqlFragment) -> u64 {
    store
        .list_records(RecordQuery {
            collection: collection(store, name),
            filters: vec![filter.clone()],
            sort: vec![],
            page: 1,
            per_page: 1,
            with_total: true,
        })
        .await
        .expect("lists")
        .total
        .expect("a total")
}

/// The same count made directly on a connection of its own.
fn counted(dir: &TempDir, name: &str, filter: &SqlFragment) -> u64 {
    let conn = side_connection(dir);
    let params: Vec<rusqlite::types::Value> =
        filter.params.iter().map(crate::records::bind).collect();
    conn.query_row(
        &format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            domain::sql::quote_ident(name),
            filter.sql
        ),
        rusqlite::params_from_iter(params),
        |row| row.get::<_, i64>(0),
    )
    .expect("counted") as u64
}

/// A kept count is carried across writes through the store: after creates, updates and
/// deletes that change whether a row matches (and ones that do not), alone and in concurrent
/// groups, the total is answered from memory and equals a fresh count. A write the store did
/// not make (another connection), a schema change and a cascade are counted again.
#[tokio::test(flavor = "multi_thread")]
async fn kept_totals_are_carried_across_writes_and_stay_exact() {
    let (dir, store) = open().await;
    let mut items = base("items", vec![text("name"), number("rank")]);
    let items_id = items.id.clone();
    items
        .fields
        .push(relation("parent", &items_id, 1, false, true));
    store.create_collection(items).await.expect("created");
    let mut ids = Vec::new();
    for rank in 0..20 {
        let record = create(&store, "items", json!({"name": "a", "rank": rank}))
            .await
            .expect("created");
        ids.push(record.id().to_owned());
    }
    let filter = SqlFragment {
        sql: "(\"items\".\"rank\" > ? AND \"items\".\"name\" = ?)".into(),
        params: vec![SqlValue::Int(9), SqlValue::Text("a".into())],
    };
    let check = |what: &'static str| {
        let store = Arc::clone(&store);
        let filter = filter.clone();
        let dir = &dir;
        async move {
            let total = total_of(&store, "items", &filter).await;
            assert_eq!(total, counted(dir, "items", &filter), "after {what}");
            total
        }
    };
    assert_eq!(check("the first count").await, 10);
    let (_, misses, _) = store.counts.stats();
    assert_eq!(check("nothing").await, 10);
    assert_eq!(store.counts.stats().1, misses, "a repeated total is kept");

    // Writes through the store, each changing the match or not.
    create(&store, "items", json!({"name": "a", "rank": 50}))
        .await
        .expect("created");
    assert_eq!(check("a matching create").await, 11);
    create(&store, "items", json!({"name": "b", "rank": 50}))
        .await
        .expect("created");
    assert_eq!(check("a create that does not match").await, 11);
    update(&store, "items", &ids[15], json!({"rank": 1}))
        .await
        .expect("updated");
    assert_eq!(check("an update out of the match").await, 10);
    update(&store, "items", &ids[2], json!({"rank": 12}))
        .await
        .expect("updated");
    assert_eq!(check("an update into the match").await, 11);
    update(&store, "items", &ids[16], json!({"name": "a"}))
        .await
        .expect("updated");
    assert_eq!(check("an update that keeps the match").await, 11);
    delete(&store, "items", &ids[17]).await.expect("deleted");
    assert_eq!(check("a matching delete").await, 10);
    delete(&store, "items", &ids[0]).await.expect("deleted");
    assert_eq!(check("a delete that did not match").await, 10);
    let (_, after_writes, carried) = store.counts.stats();
    assert_eq!(
        after_writes, misses,
        "every write above was carried, none recounted"
    );
    assert!(carried >= 7, "carried {carried} times");

    // Concurrent writes, committed in groups; some fail alone (the update of a missing row).
    let mut writes = Vec::new();
    for round in 0..48u32 {
        let store = Arc::clone(&store);
        let target = ids[3 + (round as usize % 10)].clone();
        writes.push(tokio::spawn(async move {
            match round % 4 {
                0 => create(&store, "items", json!({"name": "a", "rank": round}))
                    .await
                    .map(drop),
                1 => update(&store, "items", &target, json!({"rank": round % 20}))
                    .await
                    .map(drop),
                2 => update(&store, "items", "nosuchrecord00", json!({"rank": 99}))
                    .await
                    .map(drop),
                _ => create(&store, "items", json!({"name": "b", "rank": 99}))
                    .await
                    .map(drop),
            }
        }));
    }
    let mut failed = 0;
    for write in writes {
        failed += usize::from(write.await.expect("joined").is_err());
    }
    assert_eq!(failed, 12, "the updates of a missing row fail, alone");
    check("concurrent grouped writes").await;
    assert_eq!(
        store.counts.stats().1,
        misses,
        "grouped writes were carried too"
    );

    // Another connection's write moves the version without the store knowing what changed.
    let side = side_connection(&dir);
    side.execute("UPDATE items SET rank = 30 WHERE id = ?", [ids[1].as_str()])
        .expect("updated by another connection");
    check("another connection's update").await;
    assert_eq!(store.counts.stats().1, misses + 1, "counted again");

    // A cascade changes rows no write named: counted again, and exact.
    let parent = create(&store, "items", json!({"name": "a", "rank": 40}))
        .await
        .expect("parent");
    create(
        &store,
        "items",
        json!({"name": "a", "rank": 41, "parent": parent.id()}),
    )
    .await
    .expect("child");
    let before = check("the parent and child").await;
    let misses = store.counts.stats().1;
    delete(&store, "items", parent.id()).await.expect("deleted");
    assert_eq!(check("a delete that cascades").await, before - 2);
    assert_eq!(
        store.counts.stats().1,
        misses + 1,
        "a cascade is counted again"
    );

    // A schema change moves every version.
    let misses = store.counts.stats().1;
    let mut changed = (*collection(&store, "items")).clone();
    changed.fields.push(text("extra"));
    store.update_collection(changed).await.expect("changed");
    check("a schema change").await;
    assert_eq!(store.counts.stats().1, misses + 1, "counted again");
}

/// The version triggers add one to a row made for them; triggers an earlier version wrote (an
/// upsert) are replaced when the store opens. A version row deleted from outside stops the
/// store-wide map from keeping that collection's counts (they stay exact) until a schema
/// change makes the row again.
#[tokio::test(flavor = "multi_thread")]
async fn version_triggers_are_rewritten_and_a_missing_version_row_is_never_trusted() {
    let (dir, store) = open().await;
    store
        .create_collection(base("items", vec![number("rank")]))
        .await
        .expect("created");
    let id = collection(&store, "items").id.clone();
    let [insert, ..] = crate::counts::trigger_names(&id);
    let side = side_connection(&dir);
    let version = |conn: &rusqlite::Connection| -> Option<i64> {
        use rusqlite::OptionalExtension;
        conn.query_row(
            "SELECT v FROM _plinth_versions WHERE collection = ?",
            [&id],
            |r| r.get(0),
        )
        .optional()
        .expect("version read")
    };
    let start = version(&side).expect("a version row");
    create(&store, "items", json!({"rank": 1}))
        .await
        .expect("created");
    assert_eq!(version(&side), Some(start + 1), "one insert, one step");
    let sql = sql_of(&side, &insert).expect("the insert trigger");
    assert!(
        sql.contains("UPDATE") && !sql.contains("ON CONFLICT"),
        "{sql}"
    );

    // An older store's trigger text is replaced at open.
    drop(store);
    side.execute_batch(&format!(
        "DROP TRIGGER \"{insert}\"; CREATE TRIGGER \"{insert}\" AFTER INSERT ON items BEGIN \
         INSERT INTO _plinth_versions (collection, v) VALUES ('{id}', 1) \
         ON CONFLICT (collection) DO UPDATE SET v = v + 1; END"
    ))
    .expect("old trigger");
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).expect("reopens");
    let sql = sql_of(&side, &insert).expect("the insert trigger");
    assert!(!sql.contains("ON CONFLICT"), "replaced at open: {sql}");
    let before = version(&side).expect("a version row");
    create(&store, "items", json!({"rank": 2}))
        .await
        .expect("created");
    assert_eq!(version(&side), Some(before + 1));

    // The row deleted from outside: no count is kept, each is exact.
    let filter = SqlFragment {
        sql: "(\"items\".\"rank\" > ?)".into(),
        params: vec![SqlValue::Int(0)],
    };
    side.execute("DELETE FROM _plinth_versions WHERE collection = ?", [&id])
        .expect("deleted from outside");
    let hits = store.counts.stats().0;
    assert_eq!(total_of(&store, "items", &filter).await, 2);
    assert_eq!(total_of(&store, "items", &filter).await, 2);
    side.execute(
        "INSERT INTO items (id, rank) VALUES ('outside0000000', 5)",
        [],
    )
    .expect("written from outside");
    assert_eq!(version(&side), None, "no trigger makes the row");
    assert_eq!(total_of(&store, "items", &filter).await, 3);
    assert_eq!(counted(&dir, "items", &filter), 3);
    assert_eq!(store.counts.stats().0, hits, "never answered from memory");

    // A schema change makes the row again, and counts are kept once more.
    let mut changed = (*collection(&store, "items")).clone();
    changed.fields.push(text("extra"));
    store.update_collection(changed).await.expect("changed");
    assert!(version(&side).is_some(), "made again");
    assert_eq!(total_of(&store, "items", &filter).await, 3);
    let (hits, misses, _) = store.counts.stats();
    assert_eq!(total_of(&store, "items", &filter).await, 3);
    assert_eq!(store.counts.stats().0, hits + 1, "kept again");
    side.execute(
        "INSERT INTO items (id, rank, extra) VALUES ('outside0000001', 5, '')",
        [],
    )
    .expect("written from outside");
    assert_eq!(total_of(&store, "items", &filter).await, 4);
    assert_eq!(
        store.counts.stats().1,
        misses + 1,
        "the outside write moved the version"
    );
}

/// A count that reads other rows (a subquery) is never kept by the store-wide map, whose
/// versions follow one collection only; it stays exact through writes to the other table.
#[tokio::test(flavor = "multi_thread")]
async fn totals_that_read_other_rows_are_not_kept_store_wide() {
    let (dir, store) = open().await;
    store
        .create_collection(base("tags", vec![text("name")]))
        .await
        .expect("tags");
    store
        .create_collection(base("notes", vec![text("tag")]))
        .await
        .expect("notes");
    for tag in ["x", "y", "x"] {
        create(&store, "notes", json!({"tag": tag}))
            .await
            .expect("note");
    }
    let filter = SqlFragment::raw(
        "EXISTS (SELECT 1 FROM \"tags\" WHERE \"tags\".\"name\" = \"notes\".\"tag\")",
    );
    assert_eq!(total_of(&store, "notes", &filter).await, 0);
    let kept = store.counts.stats().1;
    create(&store, "tags", json!({"name": "x"}))
        .await
        .expect("tag");
    assert_eq!(total_of(&store, "notes", &filter).await, 2);
    assert_eq!(counted(&dir, "notes", &filter), 2);
    assert_eq!(store.counts.stats().1, kept, "never in the store-wide map");
}

/// Carrying a count costs two primary-key probes per written row and count; a group may spend
/// `MAX_PROBES` of them. A write within the budget is carried; one past it is counted again.
#[tokio::test(flavor = "multi_thread")]
async fn carrying_counts_stops_at_the_probe_budget() {
    let (dir, store) = open().await;
    store
        .create_collection(base("rows", vec![number("n")]))
        .await
        .expect("created");
    let filter = SqlFragment {
        sql: "(\"rows\".\"n\" >= ?)".into(),
        params: vec![SqlValue::Int(0)],
    };
    let many = |count: usize| {
        let rows = collection(&store, "rows");
        (0..count)
            .map(|n| WriteOp::Create {
                collection: Arc::clone(&rows),
                data: record_data(&rows, json!({"n": n})),
                guard: None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(total_of(&store, "rows", &filter).await, 0);
    let misses = store.counts.stats().1;
    // One count kept: two probes per row, so this many rows spend the budget exactly.
    let within = crate::counts::MAX_PROBES / 2;
    store.write(many(within)).await.expect("written");
    assert_eq!(total_of(&store, "rows", &filter).await, within as u64);
    assert_eq!(store.counts.stats().1, misses, "carried within the budget");
    store.write(many(within + 1)).await.expect("written");
    let total = total_of(&store, "rows", &filter).await;
    assert_eq!(total, (2 * within + 1) as u64);
    assert_eq!(total, counted(&dir, "rows", &filter));
    assert_eq!(store.counts.stats().1, misses + 1, "counted again past it");
}

/// An auth record read by id without filters, from memory when it can be (`auth_cache.rs`).
async fn auth_record(store: &SqliteStore, name: &str, id: &str) -> Option<Record> {
    store
        .get_record(collection(store, name), id, Vec::new())
        .await
        .expect("read")
}

#[tokio::test(flavor = "multi_thread")]
async fn kept_auth_records_never_outlive_a_write_of_this_process() {
    let (dir, store) = open().await;
    create_members_of_users(&store).await;
    let user = new_user(&store, "kept@example.com").await;
    let first = auth_record(&store, USERS_NAME, user.id())
        .await
        .expect("found");
    assert_eq!(store.auth_cache.len(), 1, "kept");
    assert_eq!(
        auth_record(&store, USERS_NAME, user.id()).await,
        Some(first)
    );

    // An update is seen as soon as it returned.
    update(
        &store,
        USERS_NAME,
        user.id(),
        json!({"tokenKey": "rotated-key"}),
    )
    .await
    .expect("updated");
    let read = auth_record(&store, USERS_NAME, user.id())
        .await
        .expect("found");
    assert_eq!(read.text("tokenKey"), "rotated-key");

    // A record deleted by a cascade (a delete of another collection's row) is gone at once.
    let member = create(
        &store,
        "members",
        json!({"email": "m@example.com", "tokenKey": "member-key", "password": "x", "owner": user.id()}),
    )
    .await
    .expect("member");
    assert!(auth_record(&store, "members", member.id()).await.is_some());
    delete(&store, USERS_NAME, user.id())
        .await
        .expect("deleted");
    assert_eq!(auth_record(&store, USERS_NAME, user.id()).await, None);
    assert_eq!(auth_record(&store, "members", member.id()).await, None);

    // A changed collection is a new one: its records are read again, in its shape.
    let other = new_user(&store, "shape@example.com").await;
    assert!(auth_record(&store, USERS_NAME, other.id()).await.is_some());
    let mut users = (*collection(&store, USERS_NAME)).clone();
    users.fields.push(text("nickname"));
    store.update_collection(users).await.expect("field added");
    let read = auth_record(&store, USERS_NAME, other.id())
        .await
        .expect("found");
    assert_eq!(read.data.get("nickname"), Some(&json!("")));

    // Another process's write (here another connection, which the hooks do not see either)
    // is seen at once, kept or not.
    let read = auth_record(&store, USERS_NAME, other.id())
        .await
        .expect("found");
    assert_eq!(
        auth_record(&store, USERS_NAME, other.id()).await,
        Some(read)
    );
    let conn = side_connection(&dir);
    conn.execute(
        "UPDATE users SET tokenKey = 'from-outside' WHERE id = ?",
        [other.id()],
    )
    .expect("written outside");
    let read = auth_record(&store, USERS_NAME, other.id())
        .await
        .expect("found");
    assert_eq!(read.text("tokenKey"), "from-outside");
    // And when this process writes right after it, before anything was read again.
    assert!(auth_record(&store, USERS_NAME, other.id()).await.is_some());
    conn.execute(
        "UPDATE users SET tokenKey = 'outside-again' WHERE id = ?",
        [other.id()],
    )
    .expect("written outside");
    // (A write of another table, so only the commit counter can tell.)
    assert_ne!(
        crate::auth_cache::bucket("members"),
        crate::auth_cache::bucket(USERS_NAME)
    );
    create(
        &store,
        "members",
        json!({"email": "n@example.com", "tokenKey": "k", "password": "x"}),
    )
    .await
    .expect("member");
    let read = auth_record(&store, USERS_NAME, other.id())
        .await
        .expect("found");
    assert_eq!(read.text("tokenKey"), "outside-again");
}

/// Reads racing with updates: once an update has returned, no read answers the record as it
/// was before, whatever reads were kept around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_auth_records_are_never_older_than_an_acknowledged_update() {
    let (_dir, store) = open().await;
    let user = new_user(&store, "race@example.com").await;
    let id = user.id().to_owned();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (store, id, stop) = (Arc::clone(&store), id.clone(), Arc::clone(&stop));
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                auth_record(&store, USERS_NAME, &id).await.expect("found");
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        }));
    }
    for n in 0..300 {
        let key = format!("key-{n}");
        update(&store, USERS_NAME, &id, json!({ "tokenKey": key }))
            .await
            .expect("updated");
        let read = auth_record(&store, USERS_NAME, &id).await.expect("found");
        assert_eq!(read.text("tokenKey"), key, "update {n}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("reader");
    }
    assert!(reads > 300, "the readers ran ({reads})");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_auth_record_cache_is_bounded() {
    let (_dir, store) = open().await;
    let cache = &store.auth_cache;
    let users = collection(&store, USERS_NAME);
    new_user(&store, "bound@example.com").await;
    for n in 0..crate::auth_cache::MAX_ENTRIES + 10 {
        let ticket = cache.ticket(&users);
        let mut data = domain::record::RecordData::new();
        data.insert("id".into(), json!(format!("r{n}")));
        cache.put(ticket, &users, &Arc::new(Record::new(data)));
        assert!(cache.len() <= crate::auth_cache::MAX_ENTRIES);
    }
    let last = format!("r{}", crate::auth_cache::MAX_ENTRIES + 9);
    assert!(cache.get(&users, &last).is_some());
}

#[test]
fn write_statements_quote_every_name() {
    let collection = base("odd \"name\"", vec![text("a\"b"), number("score")]);
    assert_eq!(
        crate::records::insert_sql(&collection),
        r#"INSERT OR FAIL INTO "odd ""name""" ("id", "a""b", "score") VALUES (?, ?, ?)"#
    );
    let fields: Vec<&Field> = collection
        .fields
        .iter()
        .filter(|f| !f.is_primary_key())
        .collect();
    assert_eq!(
        crate::records::update_sql(&collection, &fields, None),
        r#"UPDATE OR FAIL "odd ""name""" SET "a""b" = ?, "score" = ? WHERE "id" = ?"#
    );
}

/// An update of `id` whose caller read the row under `read` (`row_marks.rs`): the values the
/// caller computed from that row set `title` to "known", `apply` (what runs on a row read
/// again inside the transaction) sets it to "read again", so the answer tells which way the
/// update went. Both add one to `n`.
fn marked_op(
    collection: Arc<Collection>,
    (record, mark): (Record, domain::ReadMark),
    guard: Option<SqlFragment>,
) -> WriteOp {
    let bump = |current: &Record, title: &str| {
        let mut data = current.data.clone();
        let n = current.data.get("n").and_then(Value::as_i64).unwrap_or(0);
        data.insert("n".into(), json!(n + 1));
        data.insert("title".into(), json!(title));
        data
    };
    WriteOp::Update {
        collection,
        id: record.id().to_owned(),
        guard,
        apply: Box::new(move |current: &Record| Ok(bump(current, "read again"))),
        known: Some(domain::KnownRow {
            data: Some(bump(&record, "known")),
            record: Arc::new(record),
            mark,
            guard: None,
        }),
    }
}

async fn marked_read(store: &SqliteStore, name: &str, id: &str) -> (Record, domain::ReadMark) {
    let (record, mark) = store
        .get_record_marked(collection(store, name), id)
        .await
        .expect("read")
        .expect("found");
    (record, mark.expect("a rowid table's read is marked"))
}

async fn write_one(store: &SqliteStore, op: WriteOp) -> Result<Record, StoreError> {
    let mut results = store.write(vec![op]).await.map_err(|e| e.error)?;
    Ok(results.remove(0).record().clone())
}

/// A guard the caller left to the known row (`KnownRow::guard`: its rule held on that row in
/// memory) is not built while the row is unchanged, and is built and checked on the row as
/// stored when the update takes the long way.
#[tokio::test]
async fn a_deferred_guard_is_built_only_for_the_long_way() {
    let (_dir, store) = open().await;
    store
        .create_collection(base("notes", vec![text("title"), number("n")]))
        .await
        .expect("collection");
    let notes = || collection(&store, "notes");
    let a = create(&store, "notes", json!({"title": "a", "n": 0}))
        .await
        .expect("a");
    let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // The guard `n < 5`, counting how often it is built.
    let deferred = |read| {
        let mut op = marked_op(notes(), read, None);
        let built = Arc::clone(&built);
        if let WriteOp::Update {
            known: Some(known), ..
        } = &mut op
        {
            known.guard = Some(Box::new(move || {
                built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut guard = SqlFragment::column("notes", "n");
                guard.push_sql(" < ").push_param(SqlValue::Int(5));
                Some(guard)
            }));
        }
        op
    };
    let builds = || built.load(std::sync::atomic::Ordering::SeqCst);

    // Unchanged: written from the known row, the guard never built.
    let read = marked_read(&store, "notes", a.id()).await;
    let written = write_one(&store, deferred(read)).await.expect("updated");
    assert_eq!(written.text("title"), "known");
    assert_eq!(builds(), 0);

    // Changed in between, still passing: the long way, the guard built and holding.
    let read = marked_read(&store, "notes", a.id()).await;
    update(&store, "notes", a.id(), json!({"n": 3}))
        .await
        .expect("n = 3");
    let written = write_one(&store, deferred(read)).await.expect("updated");
    assert_eq!(written.text("title"), "read again");
    assert_eq!(written.data.get("n"), Some(&json!(4)));
    assert_eq!(builds(), 1);

    // Changed in between so that the guard fails: refused as a hidden row, nothing written.
    let read = marked_read(&store, "notes", a.id()).await;
    update(&store, "notes", a.id(), json!({"n": 9}))
        .await
        .expect("n = 9");
    let error = write_one(&store, deferred(read))
        .await
        .expect_err("the guard fails on the stored row");
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
    assert_eq!(builds(), 2);
    let stored = get(&store, "notes", a.id()).await.expect("found");
    assert_eq!(stored.data.get("n"), Some(&json!(9)));
    assert_eq!(stored.text("title"), "read again");
}

/// An update on a row its caller read under a mark skips reading it again only while nothing
/// can have changed the row since: every way a row can change takes it the long way, where
/// `apply` runs on the row as stored.
#[tokio::test]
async fn a_marked_update_skips_its_read_only_while_the_row_is_unchanged() {
    let (dir, store) = open().await;
    store
        .create_collection(base("notes", vec![text("title"), number("n")]))
        .await
        .expect("collection");
    let notes = || collection(&store, "notes");
    let a = create(&store, "notes", json!({"title": "a", "n": 0}))
        .await
        .expect("a");
    let b = create(&store, "notes", json!({"title": "b", "n": 0}))
        .await
        .expect("b");
    let title = |record: &Record| record.text("title").to_owned();
    let n = |record: &Record| record.data.get("n").and_then(Value::as_i64);

    // Unchanged: the caller's values are written, and stored.
    let read = marked_read(&store, "notes", a.id()).await;
    let written = write_one(&store, marked_op(notes(), read, None))
        .await
        .expect("updated");
    assert_eq!((title(&written), n(&written)), ("known".into(), Some(1)));
    let stored = store
        .get_record(notes(), a.id(), Vec::new())
        .await
        .expect("read")
        .expect("found");
    assert_eq!(stored, written);

    // Values for some fields only: the others stay as read.
    let read = marked_read(&store, "notes", a.id()).await;
    let mut partial = marked_op(notes(), read, None);
    if let WriteOp::Update {
        known: Some(known), ..
    } = &mut partial
    {
        let mut only_title = RecordData::new();
        only_title.insert("title".into(), json!("partly known"));
        known.data = Some(only_title);
    }
    let written = write_one(&store, partial).await.expect("updated");
    assert_eq!(
        (title(&written), n(&written)),
        ("partly known".into(), Some(1))
    );

    // Another row's change leaves the mark good (unless the two share a slot).
    let read = marked_read(&store, "notes", a.id()).await;
    let b_read = marked_read(&store, "notes", b.id()).await;
    if crate::row_marks::slot("notes", read.1.row) != crate::row_marks::slot("notes", b_read.1.row)
    {
        update(&store, "notes", b.id(), json!({"title": "b2"}))
            .await
            .expect("b");
        let written = write_one(&store, marked_op(notes(), read, None))
            .await
            .expect("updated");
        assert_eq!(title(&written), "known");
    }

    // The row changed in between: read again, the change kept.
    let read = marked_read(&store, "notes", a.id()).await;
    update(&store, "notes", a.id(), json!({"n": 10}))
        .await
        .expect("a");
    let written = write_one(&store, marked_op(notes(), read, None))
        .await
        .expect("updated");
    assert_eq!(
        (title(&written), n(&written)),
        ("read again".into(), Some(11))
    );

    // An earlier write of the same transaction changed it (not committed yet).
    let read = marked_read(&store, "notes", a.id()).await;
    let set_n = WriteOp::Update {
        collection: notes(),
        id: a.id().to_owned(),
        guard: None,
        apply: Box::new(|current: &Record| {
            let mut data = current.data.clone();
            data.insert("n".into(), json!(20));
            Ok(data)
        }),
        known: None,
    };
    let results = store
        .write(vec![set_n, marked_op(notes(), read, None)])
        .await
        .expect("both");
    let written = results[1].record();
    assert_eq!(
        (title(written), n(written)),
        ("read again".into(), Some(21))
    );

    // Another process committed (another connection: no hook of this one sees it).
    let read = marked_read(&store, "notes", a.id()).await;
    side_connection(&dir)
        .execute("UPDATE notes SET n = 30 WHERE id = ?", [a.id()])
        .expect("written outside");
    let written = write_one(&store, marked_op(notes(), read, None))
        .await
        .expect("updated");
    assert_eq!(
        (title(&written), n(&written)),
        ("read again".into(), Some(31))
    );

    // Replaced by this process's raw SQL: `REPLACE` deletes the old row without the update
    // hook, and puts the new one at another rowid.
    let read = marked_read(&store, "notes", a.id()).await;
    let replace = format!(
        "INSERT OR REPLACE INTO notes (id, title, n) VALUES ('{}', 'replaced', 40)",
        a.id()
    );
    match store
        .run_sql(
            &replace,
            domain::store::SqlLimits {
                max_rows: 10,
                max_bytes: 1 << 20,
            },
        )
        .await
        .expect("runs")
    {
        domain::store::SqlOutcome::Done(_) => {}
        domain::store::SqlOutcome::Failed(message) => panic!("{message}"),
    }
    let written = write_one(&store, marked_op(notes(), read, None))
        .await
        .expect("updated");
    assert_eq!(
        (title(&written), n(&written)),
        ("read again".into(), Some(41))
    );

    // A guard is checked on the stored row either way.
    let read = marked_read(&store, "notes", a.id()).await;
    let refuse = SqlFragment {
        sql: "notes.n = ?".into(),
        params: vec![SqlValue::Int(999)],
    };
    let refused = write_one(&store, marked_op(notes(), read.clone(), Some(refuse))).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    let pass = SqlFragment {
        sql: "notes.n = ?".into(),
        params: vec![SqlValue::Int(41)],
    };
    let written = write_one(&store, marked_op(notes(), read, Some(pass)))
        .await
        .expect("updated");
    assert_eq!((title(&written), n(&written)), ("known".into(), Some(42)));
    // A guard with a subquery is decided before the write.
    let subquery = |n: i64| SqlFragment {
        sql: "EXISTS (SELECT 1 FROM notes AS o WHERE o.id = notes.id AND o.n = ?)".into(),
        params: vec![SqlValue::Int(n)],
    };
    let read = marked_read(&store, "notes", a.id()).await;
    let refused = write_one(
        &store,
        marked_op(notes(), read.clone(), Some(subquery(999))),
    )
    .await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    let written = write_one(&store, marked_op(notes(), read, Some(subquery(42))))
        .await
        .expect("updated");
    assert_eq!((title(&written), n(&written)), ("known".into(), Some(43)));

    // A deleted row is not found, not written back.
    let gone = create(&store, "notes", json!({"title": "gone"}))
        .await
        .expect("created");
    let read = marked_read(&store, "notes", gone.id()).await;
    delete(&store, "notes", gone.id()).await.expect("deleted");
    let missing = write_one(&store, marked_op(notes(), read, None)).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");

    // A schema change in between: the mark was taken with the collection as it was.
    let read = marked_read(&store, "notes", a.id()).await;
    let before = notes();
    let mut changed = (*before).clone();
    changed.fields.push(text("extra"));
    store.update_collection(changed).await.expect("changed");
    let written = write_one(&store, marked_op(before, read.clone(), None)).await;
    assert!(
        written.as_ref().is_ok_and(|w| title(w) == "read again"),
        "{written:?}"
    );
    let written = write_one(&store, marked_op(notes(), read, None))
        .await
        .expect("updated");
    assert_eq!(title(&written), "read again");
    assert_eq!(written.data.get("extra"), Some(&json!("")));

    // Another store's mark (a restore opens a new store on other files).
    let (_other_dir, other) = open().await;
    other
        .create_collection(base("notes", vec![text("title"), number("n")]))
        .await
        .expect("collection");
    let theirs = create(&other, "notes", json!({"id": a.id(), "title": "theirs"}))
        .await
        .expect("created");
    let (_, their_mark) = marked_read(&other, "notes", theirs.id()).await;
    let ours = store
        .get_record(notes(), a.id(), Vec::new())
        .await
        .expect("read")
        .expect("found");
    let mark = domain::ReadMark {
        collection: notes(),
        ..their_mark
    };
    let written = write_one(&store, marked_op(notes(), (ours, mark), None))
        .await
        .expect("updated");
    assert_eq!(title(&written), "read again");
}

/// Updates racing on one row, each computed from a marked read of it: none is lost (each adds
/// one to `n`, computed from its read where the mark holds and from the stored row where it
/// does not).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn marked_updates_racing_on_one_row_lose_nothing() {
    let (_dir, store) = open().await;
    store
        .create_collection(base("notes", vec![text("title"), number("n")]))
        .await
        .expect("collection");
    let row = create(&store, "notes", json!({"title": "a", "n": 0}))
        .await
        .expect("row");
    const TASKS: usize = 6;
    const EACH: usize = 150;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = Arc::clone(&store);
        let id = row.id().to_owned();
        tasks.push(tokio::spawn(async move {
            let mut known = 0;
            for _ in 0..EACH {
                let read = marked_read(&store, "notes", &id).await;
                let written = write_one(&store, marked_op(collection(&store, "notes"), read, None))
                    .await
                    .expect("updated");
                if written.text("title") == "known" {
                    known += 1;
                }
            }
            known
        }));
    }
    let mut known = 0;
    for task in tasks {
        known += task.await.expect("task");
    }
    let stored = store
        .get_record(collection(&store, "notes"), row.id(), Vec::new())
        .await
        .expect("read")
        .expect("found");
    assert_eq!(
        stored.data.get("n").and_then(Value::as_i64),
        Some((TASKS * EACH) as i64),
        "{known} of the updates went by their marks"
    );
}

/// A field may be called `rowid` (or `_rowid_`): the mark then names the rowid by the alias no
/// field shadows, and a marked update still writes the right row.
#[tokio::test]
async fn a_field_called_rowid_does_not_shadow_the_mark() {
    let (_dir, store) = open().await;
    store
        .create_collection(base(
            "odd",
            vec![text("title"), number("n"), text("rowid"), text("_rowid_")],
        ))
        .await
        .expect("collection");
    let first = create(&store, "odd", json!({"title": "a", "rowid": "999"}))
        .await
        .expect("first");
    let second = create(&store, "odd", json!({"title": "b", "rowid": "1"}))
        .await
        .expect("second");
    let read = marked_read(&store, "odd", second.id()).await;
    assert_eq!(read.1.row, 2, "the table's rowid, not the field");
    let written = write_one(&store, marked_op(collection(&store, "odd"), read, None))
        .await
        .expect("updated");
    assert_eq!(written.text("title"), "known");
    assert_eq!(written.text("rowid"), "1");
    let untouched = store
        .get_record(collection(&store, "odd"), first.id(), Vec::new())
        .await
        .expect("read")
        .expect("found");
    assert_eq!(untouched.text("title"), "a");
}
