//! View collections: fields inferred from the SELECT, previews of unsaved views, listing and
//! reading views like tables, and the schema changes a view refuses. The queries are plain
//! SQL every engine speaks.

use domain::field::FieldKind;
use domain::{RecordQuery, StoreError};
use serde_json::json;

use crate::Engine;
use crate::support::{Fixture, base, number, open, relation, text, view};

/// `authors(name)` ← `books(title, pages, author)`, three books by two authors.
async fn library(fx: &Fixture) -> String {
    let authors = fx
        .create_collection(base("authors", vec![text("name")]))
        .await;
    fx.create_collection(base(
        "books",
        vec![
            text("title"),
            number("pages"),
            relation("author", &authors.id, 1, false, false),
        ],
    ))
    .await;
    let herbert = fx.create("authors", json!({"name": "Herbert"})).await;
    let le_guin = fx.create("authors", json!({"name": "Le Guin"})).await;
    for (title, pages, author) in [
        ("Dune", 412, &herbert),
        ("Children of Dune", 444, &herbert),
        ("Earthsea", 183, &le_guin),
    ] {
        fx.create(
            "books",
            json!({"title": title, "pages": pages, "author": author.id()}),
        )
        .await;
    }
    herbert.id().to_owned()
}

pub async fn view_fields_are_inferred_from_the_query(engine: &Engine) {
    let fx = open(engine).await;
    library(&fx).await;
    let fields = fx
        .store
        .infer_view_fields("select b.id, b.title as headline, b.pages, b.author from books b")
        .await
        .expect("inferred");
    let summary: Vec<(&str, &str)> = fields
        .iter()
        .map(|f| (f.name.as_str(), f.type_name()))
        .collect();
    assert_eq!(
        summary,
        [
            ("id", "text"),
            ("headline", "text"),
            ("pages", "number"),
            ("author", "relation")
        ]
    );
    assert!(fields[0].is_primary_key(), "id is the key");
    let FieldKind::Relation(options) = &fields[3].kind else {
        panic!("author is a relation");
    };
    assert_eq!(
        options.collection_id,
        fx.collection("authors").id,
        "options are copied"
    );
    // An aggregate is a number.
    let fields = fx
        .store
        .infer_view_fields("select author as id, count(*) as n from books group by author")
        .await
        .expect("inferred");
    assert_eq!(fields[1].name, "n");
    assert_eq!(fields[1].type_name(), "number");
}

pub async fn views_list_and_get_like_tables(engine: &Engine) {
    let fx = open(engine).await;
    let herbert = library(&fx).await;
    fx.create_collection(view(
        "long_books",
        "select id, title, pages, author from books where pages > 400",
    ))
    .await;
    assert_eq!(
        fx.texts("long_books", "title", "").await,
        ["Children of Dune", "Dune"]
    );
    assert_eq!(
        fx.texts("long_books", "title", "pages < 420").await,
        ["Dune"]
    );
    assert_eq!(
        fx.texts("long_books", "title", "author.name = 'Herbert'")
            .await,
        ["Children of Dune", "Dune"],
        "relations of a view resolve"
    );
    let page = fx.query("long_books", "", "-pages", 1, 1).await;
    assert_eq!(page.total, Some(2));
    assert_eq!(page.items[0].text("title"), "Children of Dune");
    assert_eq!(page.items[0].data["pages"], json!(444));
    assert_eq!(page.items[0].data["author"], json!(herbert));
    let id = page.items[0].id().to_owned();
    assert_eq!(
        fx.get("long_books", &id).await.as_ref(),
        Some(&page.items[0]),
        "a view row reads by id"
    );
    // A view follows its tables.
    fx.create("books", json!({"title": "Hyperion", "pages": 482}))
        .await;
    assert_eq!(fx.count("long_books").await, 3);
    // An aggregate view with a computed id.
    fx.create_collection(view(
        "per_author",
        "select author as id, count(*) as n from books where author != '' group by author",
    ))
    .await;
    let row = fx.get("per_author", &herbert).await.expect("grouped row");
    assert_eq!(row.data["n"], json!(2));
}

pub async fn views_refuse_writes(engine: &Engine) {
    let fx = open(engine).await;
    library(&fx).await;
    fx.create_collection(view("titles", "select id, title from books"))
        .await;
    let error = fx
        .try_create("titles", json!({"title": "new"}))
        .await
        .expect_err("a view is read-only");
    assert!(
        !matches!(error, StoreError::Internal(_)),
        "refused, not broken: {error:?}"
    );
    assert_eq!(fx.count("books").await, 3);
    assert_eq!(fx.count("titles").await, 3);
}

pub async fn bad_view_queries_are_schema_errors(engine: &Engine) {
    let fx = open(engine).await;
    library(&fx).await;
    for query in [
        "select title from books",
        "select id from books; delete from books",
        "delete from books",
        "select id, nope from books",
        "select id from nowhere",
    ] {
        let error = fx
            .store
            .infer_view_fields(query)
            .await
            .expect_err("refused");
        assert!(matches!(error, StoreError::Schema(_)), "{query}: {error:?}");
        let error = fx
            .store
            .create_collection(view("v", query))
            .await
            .expect_err("refused");
        assert!(matches!(error, StoreError::Schema(_)), "{query}: {error:?}");
        assert!(fx.store.schema().get("v").is_none());
    }
    assert_eq!(fx.count("books").await, 3, "nothing ran");
}

pub async fn sample_view_returns_fields_and_at_most_limit_rows(engine: &Engine) {
    let fx = open(engine).await;
    library(&fx).await;
    let (fields, rows) = fx
        .store
        .sample_view("select id, title, pages from books", 2)
        .await
        .expect("sampled");
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["id", "title", "pages"]);
    assert_eq!(rows.len(), 2, "at most the limit");
    for row in &rows {
        let keys: Vec<&str> = row.data.keys().map(String::as_str).collect();
        assert_eq!(keys, names, "rows are records of those fields");
        assert!(row.data["pages"].is_number(), "{row:?}");
    }
    assert!(
        fx.store.schema().all().iter().all(|c| !c.is_view()),
        "nothing saved"
    );
    let error = fx
        .store
        .sample_view("select title from books", 2)
        .await
        .expect_err("no id");
    assert!(matches!(error, StoreError::Schema(_)), "{error:?}");
}

pub async fn a_change_that_would_break_a_view_is_refused(engine: &Engine) {
    let fx = open(engine).await;
    library(&fx).await;
    fx.create_collection(view("titles", "select id, title from books"))
        .await;
    let mut books = (*fx.collection("books")).clone();
    books.fields.retain(|f| f.name != "title");
    let error = fx
        .store
        .update_collection(books)
        .await
        .expect_err("the view reads title");
    assert!(
        matches!(&error, StoreError::Schema(message) if message.contains("titles")),
        "the refusal names the view: {error:?}"
    );
    assert!(fx.collection("books").field("title").is_some());
    assert_eq!(fx.texts("books", "title", "title = 'Dune'").await, ["Dune"]);
    // A change that keeps what the view reads leaves it working; a view's own update
    // re-creates it from the new query.
    let mut books = (*fx.collection("books")).clone();
    books.fields.push(text("isbn"));
    fx.store.update_collection(books).await.expect("updated");
    assert_eq!(fx.count("titles").await, 3);
    let mut titles = (*fx.collection("titles")).clone();
    titles.view_query = Some("select id, pages from books".into());
    let schema = fx
        .store
        .update_collection(titles)
        .await
        .expect("view updated");
    let names: Vec<&str> = schema
        .get("titles")
        .expect("titles")
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["id", "pages"]);
    let page = fx
        .store
        .list_records(RecordQuery {
            collection: fx.collection("titles"),
            filters: Vec::new(),
            sort: Vec::new(),
            page: 1,
            per_page: 10,
            with_total: true,
        })
        .await
        .expect("listed");
    assert_eq!(page.total, Some(3));
    assert!(page.items.iter().all(|r| r.data["pages"].is_number()));
}
