//! Collections: creating, changing, renaming, deleting and importing them, and the schema
//! snapshot that follows each change only once it committed.

use domain::collection::USERS_NAME;
use domain::{Collection, StoreError};
use serde_json::json;

use crate::Engine;
use crate::support::{base, number, open, relation, text, validation_code, view};

fn books() -> Collection {
    base("books", vec![text("title"), number("pages")])
}

pub async fn creating_a_collection_publishes_it(engine: &Engine) {
    let fx = open(engine).await;
    let before = fx.store.schema().all().len();
    let definition = books();
    let id = definition.id.clone();
    let schema = fx
        .store
        .create_collection(definition)
        .await
        .expect("books created");
    let returned = schema
        .get("books")
        .expect("the returned schema holds books");
    assert_eq!(returned.id, id, "the id is kept");
    let names: Vec<&str> = returned.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["id", "title", "pages"], "fields in order");
    let current = fx.store.schema();
    assert_eq!(current.all().len(), before + 1);
    assert_eq!(
        current.get_by_id(&id).map(|c| c.name.as_str()),
        Some("books"),
        "store.schema() is the new snapshot"
    );
    // The table exists and takes records.
    let record = fx
        .create("books", json!({"title": "Dune", "pages": 412}))
        .await;
    assert_eq!(
        fx.get("books", record.id())
            .await
            .map(|r| r.data["pages"].clone()),
        Some(json!(412))
    );
}

pub async fn collection_names_are_unique_ignoring_case(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(books()).await;
    let mut again = base("BOOKS", vec![text("title")]);
    again.id = "pbc_other_books".into();
    let error = fx
        .store
        .create_collection(again)
        .await
        .expect_err("a second books");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    let schema = fx.store.schema();
    assert!(schema.get_by_id("pbc_other_books").is_none());
    assert_eq!(
        fx.collection("books").fields.len(),
        3,
        "the first is intact"
    );
}

pub async fn a_bad_index_is_refused_and_changes_nothing(engine: &Engine) {
    let fx = open(engine).await;
    let mut bad = base("shelves", vec![text("label")]);
    bad.indexes = vec!["CREATE INDEX idx_shelves_nope ON shelves (nope)".into()];
    let error = fx
        .store
        .create_collection(bad)
        .await
        .expect_err("an index on a missing column");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    assert!(fx.store.schema().get("shelves").is_none());

    fx.create_collection(books()).await;
    let kept = fx.create("books", json!({"title": "kept"})).await;
    let mut changed = (*fx.collection("books")).clone();
    changed.fields.push(text("isbn"));
    changed.indexes = vec!["CREATE INDEX idx_books_nope ON books (nope)".into()];
    let error = fx
        .store
        .update_collection(changed)
        .await
        .expect_err("an index on a missing column");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    let books = fx.collection("books");
    assert!(books.field("isbn").is_none(), "the snapshot did not change");
    assert!(books.indexes.is_empty());
    let record = fx
        .get("books", kept.id())
        .await
        .expect("the record is kept");
    assert!(record.get("isbn").is_none(), "the table did not change");
}

pub async fn renamed_fields_keep_their_data(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(books()).await;
    let record = fx
        .create("books", json!({"title": "Dune", "pages": 412}))
        .await;
    let mut changed = (*fx.collection("books")).clone();
    for field in &mut changed.fields {
        if field.name == "title" {
            field.name = "headline".into();
        }
    }
    fx.store
        .update_collection(changed)
        .await
        .expect("field renamed");
    let record = fx.get("books", record.id()).await.expect("kept");
    assert_eq!(
        record.data["headline"],
        json!("Dune"),
        "matched by field id"
    );
    assert!(record.get("title").is_none());
    assert_eq!(record.data["pages"], json!(412));
    assert_eq!(
        fx.texts("books", "headline", "headline = 'Dune'").await,
        ["Dune"]
    );
}

pub async fn dropped_fields_go_and_new_fields_read_as_zero(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(books()).await;
    let record = fx
        .create("books", json!({"title": "Dune", "pages": 412}))
        .await;
    let mut changed = (*fx.collection("books")).clone();
    changed.fields.retain(|f| f.name != "pages");
    changed.fields.push(text("isbn"));
    changed.fields.push(number("rating"));
    let schema = fx.store.update_collection(changed).await.expect("changed");
    let names: Vec<&str> = schema
        .get("books")
        .expect("books")
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["id", "title", "isbn", "rating"]);
    let record = fx.get("books", record.id()).await.expect("kept");
    let keys: Vec<&str> = record.data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["id", "title", "isbn", "rating"],
        "one value per field"
    );
    assert_eq!(record.data["title"], json!("Dune"));
    assert_eq!(record.data["isbn"], json!(""));
    assert_eq!(record.data["rating"], json!(0));
    // The dropped field's column is gone: a field of that name starts empty again.
    let mut again = (*fx.collection("books")).clone();
    again.fields.push(number("pages"));
    fx.store.update_collection(again).await.expect("re-added");
    let record = fx.get("books", record.id()).await.expect("kept");
    assert_eq!(
        record.data["pages"],
        json!(0),
        "the old data did not come back"
    );
}

pub async fn a_renamed_collection_keeps_its_records_and_indexes(engine: &Engine) {
    let fx = open(engine).await;
    let mut notes = base("notes", vec![text("title")]);
    notes.indexes = vec!["CREATE UNIQUE INDEX idx_notes_title ON notes (title)".into()];
    fx.create_collection(notes).await;
    let note = fx.create("notes", json!({"title": "t"})).await;
    let mut renamed = (*fx.collection("notes")).clone();
    renamed.name = "memos".into();
    let schema = fx.store.update_collection(renamed).await.expect("renamed");
    assert!(schema.get("notes").is_none(), "the old name is gone");
    assert_eq!(
        fx.get("memos", note.id())
            .await
            .map(|r| r.text("title").to_owned()),
        Some("t".to_owned())
    );
    let error = fx
        .try_create("memos", json!({"title": "t"}))
        .await
        .expect_err("the unique index follows the rename");
    assert_eq!(
        validation_code(&error, "title").as_deref(),
        Some("validation_not_unique"),
        "{error:?}"
    );
    // The old name is free again.
    let mut notes = base("notes", vec![text("body")]);
    notes.id = "pbc_new_notes".into();
    fx.create_collection(notes).await;
    assert_eq!(fx.count("notes").await, 0);
}

pub async fn a_deleted_collection_is_gone(engine: &Engine) {
    let fx = open(engine).await;
    let books = fx.create_collection(books()).await;
    fx.create("books", json!({"title": "Dune"})).await;
    let schema = fx
        .store
        .delete_collection(&books.id)
        .await
        .expect("deleted");
    assert!(schema.get("books").is_none());
    assert!(fx.store.schema().get_by_id(&books.id).is_none());
    let error = fx
        .store
        .delete_collection(&books.id)
        .await
        .expect_err("deleted twice");
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
    // Its table went with it: a new collection of the same name starts empty.
    fx.create_collection(base("books", vec![text("title")]))
        .await;
    assert_eq!(fx.count("books").await, 0);
}

pub async fn a_referenced_collection_cannot_be_deleted(engine: &Engine) {
    let fx = open(engine).await;
    let authors = fx
        .create_collection(base("authors", vec![text("name")]))
        .await;
    let books = fx
        .create_collection(base(
            "books",
            vec![relation("author", &authors.id, 1, false, false)],
        ))
        .await;
    let error = fx
        .store
        .delete_collection(&authors.id)
        .await
        .expect_err("books references authors");
    assert!(
        matches!(&error, StoreError::Schema(message) if message.contains("books")),
        "the refusal names the referencing collection: {error:?}"
    );
    assert!(fx.store.schema().get("authors").is_some());
    fx.store
        .delete_collection(&books.id)
        .await
        .expect("books deleted");
    fx.store
        .delete_collection(&authors.id)
        .await
        .expect("authors deleted once unreferenced");
}

pub async fn a_unique_index_cannot_be_added_over_duplicates(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(books()).await;
    fx.create("books", json!({"title": "same"})).await;
    fx.create("books", json!({"title": "same"})).await;
    let mut unique = (*fx.collection("books")).clone();
    unique.indexes = vec!["CREATE UNIQUE INDEX idx_books_title ON books (title)".into()];
    let error = fx
        .store
        .update_collection(unique.clone())
        .await
        .expect_err("duplicates in the way");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    assert!(fx.collection("books").indexes.is_empty());
    assert_eq!(fx.count("books").await, 2, "nothing was lost");
    // Once the duplicates are gone the index goes on, and holds.
    let records = fx.list("books", "", "").await;
    fx.update("books", records[1].id(), json!({"title": "other"}))
        .await;
    fx.store
        .update_collection(unique)
        .await
        .expect("the index is added");
    let error = fx
        .try_create("books", json!({"title": "same"}))
        .await
        .expect_err("the index holds");
    assert_eq!(
        validation_code(&error, "title").as_deref(),
        Some("validation_not_unique")
    );
}

pub async fn import_creates_and_replaces_collections(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(books()).await;
    let record = fx
        .create("books", json!({"title": "Dune", "pages": 412}))
        .await;
    let mut books = (*fx.collection("books")).clone();
    books.fields.push(text("isbn"));
    books.list_rule = Some(String::new());
    let authors = base("authors", vec![text("name")]);
    let schema = fx
        .store
        .import_collections(vec![books, authors], false)
        .await
        .expect("imported");
    assert_eq!(
        schema
            .get("books")
            .and_then(|c| c.list_rule.clone())
            .as_deref(),
        Some(""),
        "replaced"
    );
    assert!(schema.get("authors").is_some(), "created");
    assert!(
        schema.get(USERS_NAME).is_some(),
        "untouched without delete_missing"
    );
    let record = fx.get("books", record.id()).await.expect("records survive");
    assert_eq!(record.data["title"], json!("Dune"));
    assert_eq!(record.data["isbn"], json!(""));
    fx.create("authors", json!({"name": "Herbert"})).await;
}

pub async fn import_with_delete_missing_drops_the_unlisted(engine: &Engine) {
    let fx = open(engine).await;
    let system_before: Vec<String> = fx
        .store
        .schema()
        .all()
        .iter()
        .filter(|c| c.system)
        .map(|c| c.name.clone())
        .collect();
    fx.create_collection(books()).await;
    fx.create_collection(view("titles", "select id, title from books"))
        .await;
    let authors = base("authors", vec![text("name")]);
    let schema = fx
        .store
        .import_collections(vec![authors], true)
        .await
        .expect("imported");
    let mut names: Vec<String> = schema.all().iter().map(|c| c.name.clone()).collect();
    names.sort();
    let mut expected = system_before;
    expected.push("authors".into());
    expected.sort();
    assert_eq!(names, expected, "system collections stay, the rest go");
    assert!(fx.store.schema().get("books").is_none());
    // Its table went too.
    fx.create_collection(base("books", vec![text("title")]))
        .await;
    assert_eq!(fx.count("books").await, 0);
}

pub async fn a_refused_import_changes_nothing(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(books()).await;
    let record = fx.create("books", json!({"title": "Dune"})).await;
    let mut renamed = (*fx.collection("books")).clone();
    renamed.name = "volumes".into();
    let mut bad = base("broken", vec![text("x")]);
    bad.indexes = vec!["CREATE INDEX idx_broken ON broken (nope)".into()];
    let error = fx
        .store
        .import_collections(vec![renamed, base("fresh", vec![text("y")]), bad], false)
        .await
        .expect_err("one bad collection");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
    let schema = fx.store.schema();
    assert!(schema.get("fresh").is_none(), "nothing created");
    assert!(schema.get("volumes").is_none(), "nothing renamed");
    assert!(
        fx.get("books", record.id()).await.is_some(),
        "the records stay where they were"
    );
}

pub async fn import_refuses_to_drop_a_referenced_collection(engine: &Engine) {
    let fx = open(engine).await;
    let authors = fx
        .create_collection(base("authors", vec![text("name")]))
        .await;
    let books = fx
        .create_collection(base(
            "books",
            vec![relation("author", &authors.id, 1, false, false)],
        ))
        .await;
    let error = fx
        .store
        .import_collections(vec![(*books).clone()], true)
        .await
        .expect_err("books still references authors");
    assert!(
        matches!(&error, StoreError::Schema(message) if message.contains("books")),
        "the refusal names the referencing collection: {error:?}"
    );
    assert!(
        fx.store.schema().get("authors").is_some(),
        "nothing changed"
    );
}
