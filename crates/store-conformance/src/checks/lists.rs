//! Reads: lists with predicates and sorts compiled by `rules`, pages and totals; reads by id
//! under filters, identity lookups, and predicates checked against stored and unsaved rows.

use domain::RecordQuery;
use domain::field::{Field, FieldKind, SelectOptions};
use serde_json::json;

use crate::Engine;
use crate::support::{
    Fixture, base, boolean, date, json_field, number, open, record_data, relation, text,
};

/// `teams(name)` and `people(name, age, active, born, meta, team → teams, tags)`; four people,
/// every name lowercase so that any collation orders them the same.
async fn people(fx: &Fixture) -> (String, String) {
    let teams = fx
        .create_collection(base("teams", vec![text("name")]))
        .await;
    let tags = Field::new(
        "tags",
        FieldKind::Select(SelectOptions {
            max_select: 3,
            values: vec!["x".into(), "y".into(), "z".into()],
            ..Default::default()
        }),
    );
    fx.create_collection(base(
        "people",
        vec![
            text("name"),
            number("age"),
            boolean("active"),
            date("born"),
            json_field("meta"),
            relation("team", &teams.id, 1, false, false),
            tags,
        ],
    ))
    .await;
    let red = fx.create("teams", json!({"name": "red"})).await;
    let blue = fx.create("teams", json!({"name": "blue"})).await;
    for person in [
        json!({"name": "ann", "age": 30, "active": true, "born": "1990-05-01 10:00:00.000Z",
               "meta": {"level": 3}, "team": red.id(), "tags": ["x", "y"]}),
        json!({"name": "bob", "age": 25, "active": false, "born": "1998-01-01 00:00:00.000Z",
               "meta": {"level": 1}, "team": blue.id(), "tags": ["y"]}),
        json!({"name": "cara", "age": 35.5, "active": true, "born": "1985-12-31 23:59:59.999Z",
               "meta": null, "team": "", "tags": []}),
        json!({"name": "dan", "age": 25, "active": true, "born": "",
               "meta": {"level": 2}, "team": red.id(), "tags": ["z"]}),
    ] {
        fx.create("people", person).await;
    }
    (red.id().to_owned(), blue.id().to_owned())
}

pub async fn filters_from_the_rules_language_select_rows(engine: &Engine) {
    let fx = open(engine).await;
    people(&fx).await;
    let cases: &[(&str, &[&str])] = &[
        ("age > 26", &["ann", "cara"]),
        ("age = 25", &["bob", "dan"]),
        ("age >= 25 && age < 30", &["bob", "dan"]),
        ("age = 35.5 || name = 'bob'", &["bob", "cara"]),
        ("active = true", &["ann", "cara", "dan"]),
        ("active = false", &["bob"]),
        ("name = 'bob'", &["bob"]),
        ("name = 'BOB'", &[]),
        ("name != 'bob'", &["ann", "cara", "dan"]),
        ("team.name = 'red'", &["ann", "dan"]),
        ("team = ''", &["cara"]),
        ("meta.level > 1", &["ann", "dan"]),
        ("meta.level = 1", &["bob"]),
        ("born > '1989-01-01 00:00:00.000Z'", &["ann", "bob"]),
        ("born = ''", &["dan"]),
        ("tags:each ?= 'y'", &["ann", "bob"]),
        ("tags:each = 'y'", &["bob"]),
        ("tags:length = 0", &["cara"]),
        ("(age = 25 || age = 30) && active = true", &["ann", "dan"]),
    ];
    let mut failures = Vec::new();
    for (filter, expected) in cases {
        let names = fx.texts("people", "name", filter).await;
        if names != *expected {
            failures.push(format!("{filter}: {names:?}, expected {expected:?}"));
        }
    }
    assert!(failures.is_empty(), "{}: {failures:#?}", fx.engine);
}

pub async fn like_filters_ignore_case(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("notes", vec![text("body")]))
        .await;
    for body in ["Hello World", "hello there", "HELLO", "goodbye"] {
        fx.create("notes", json!({"body": body})).await;
    }
    let cases: &[(&str, &[&str])] = &[
        ("body ~ 'hello'", &["HELLO", "Hello World", "hello there"]),
        ("body ~ 'WORLD'", &["Hello World"]),
        ("body !~ 'hello'", &["goodbye"]),
        ("body ~ 'o t'", &["hello there"]),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            fx.texts("notes", "body", filter).await,
            *expected,
            "{}: {filter}",
            fx.engine
        );
    }
}

pub async fn filters_are_anded(engine: &Engine) {
    let fx = open(engine).await;
    people(&fx).await;
    let page = fx
        .store
        .list_records(RecordQuery {
            collection: fx.collection("people"),
            filters: vec![
                fx.filter("people", "age = 25"),
                fx.filter("people", "active = true || name = 'ann'"),
            ],
            sort: Vec::new(),
            page: 1,
            per_page: 10,
            with_total: true,
        })
        .await
        .expect("listed");
    let names: Vec<&str> = page.items.iter().map(|r| r.text("name")).collect();
    assert_eq!(names, ["dan"], "each filter bound its own parameters");
    assert_eq!(page.total, Some(1));
}

pub async fn a_mapped_list_sees_the_same_page(engine: &Engine) {
    let fx = open(engine).await;
    people(&fx).await;
    let query = || RecordQuery {
        collection: fx.collection("people"),
        filters: vec![fx.filter("people", "active = true")],
        sort: Vec::new(),
        page: 1,
        per_page: 2,
        with_total: true,
    };
    let page = fx.store.list_records(query()).await.expect("listed");
    let describe = |page: domain::RecordPage| {
        let names: Vec<String> = page
            .items
            .iter()
            .map(|r| r.text("name").to_owned())
            .collect();
        format!("{names:?} of {:?}", page.total).into_bytes()
    };
    let expected = describe(page);
    let mapped = fx
        .store
        .list_records_mapped(query(), Box::new(describe))
        .await
        .expect("listed");
    assert_eq!(
        String::from_utf8_lossy(&mapped),
        String::from_utf8_lossy(&expected),
        "{}",
        fx.engine
    );
    assert!(mapped.ends_with(b" of Some(3)"), "{}", fx.engine);
    // A query the store refuses fails the same way mapped or not.
    let bad = RecordQuery {
        per_page: 0,
        ..query()
    };
    let plain = fx.store.list_records(bad).await.is_err();
    let bad = RecordQuery {
        per_page: 0,
        ..query()
    };
    let mapped = fx
        .store
        .list_records_mapped(bad, Box::new(describe))
        .await
        .is_err();
    assert_eq!(plain, mapped, "{}", fx.engine);
}

pub async fn sorts_order_by_several_terms(engine: &Engine) {
    let fx = open(engine).await;
    people(&fx).await;
    let cases: &[(&str, &[&str])] = &[
        ("name", &["ann", "bob", "cara", "dan"]),
        ("-name", &["dan", "cara", "bob", "ann"]),
        ("-age,name", &["cara", "ann", "bob", "dan"]),
        ("age,-name", &["dan", "bob", "ann", "cara"]),
        ("-active,born", &["dan", "cara", "ann", "bob"]),
        ("meta.level,name", &["cara", "bob", "dan", "ann"]),
    ];
    for (sort, expected) in cases {
        let names: Vec<String> = fx
            .list("people", "", sort)
            .await
            .iter()
            .map(|r| r.text("name").to_owned())
            .collect();
        assert_eq!(names, *expected, "{}: sort {sort}", fx.engine);
    }
}

/// JSON values of different types compare and sort the way SQLite orders what `json_extract`
/// returns (PocketBase's behaviour): nothing and JSON null first, then numbers (true and
/// false as 1 and 0), then text, objects and arrays; so a string is greater than any number.
pub async fn json_values_compare_and_sort_across_types(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("docs", vec![text("name"), json_field("meta")]))
        .await;
    for (name, k) in [
        ("one", json!(1)),
        ("two", json!(2)),
        ("text", json!("text")),
        ("abc", json!("Abc")),
        ("null", json!(null)),
        ("half", json!(1.5)),
        ("yes", json!(true)),
        ("list", json!([3])),
    ] {
        fx.create("docs", json!({"name": name, "meta": {"k": k}}))
            .await;
    }
    fx.create("docs", json!({"name": "none", "meta": {}})).await;
    let cases: &[(&str, &[&str])] = &[
        ("meta.k > 1", &["abc", "half", "list", "text", "two"]),
        (
            "meta.k >= 1",
            &["abc", "half", "list", "one", "text", "two", "yes"],
        ),
        ("meta.k < 2", &["half", "one", "yes"]),
        ("meta.k > 'B'", &["list", "text"]),
        ("meta.k < 'B'", &["abc", "half", "one", "two", "yes"]),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            fx.texts("docs", "name", filter).await,
            *expected,
            "{}: {filter}",
            fx.engine
        );
    }
    let names: Vec<String> = fx
        .list("docs", "", "-meta.k,name")
        .await
        .iter()
        .map(|r| r.text("name").to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "text", "list", "abc", "two", "half", "one", "yes", "none", "null"
        ],
        "{}: sort -meta.k",
        fx.engine
    );
}

pub async fn pages_split_the_rows_and_totals_count_every_match(engine: &Engine) {
    let fx = open(engine).await;
    people(&fx).await;
    let names = |page: &domain::RecordPage| -> Vec<String> {
        page.items
            .iter()
            .map(|r| r.text("name").to_owned())
            .collect()
    };
    let first = fx.query("people", "", "name", 1, 3).await;
    assert_eq!(names(&first), ["ann", "bob", "cara"]);
    assert_eq!(first.total, Some(4));
    let second = fx.query("people", "", "name", 2, 3).await;
    assert_eq!(names(&second), ["dan"]);
    assert_eq!(second.total, Some(4));
    let past = fx.query("people", "", "name", 3, 3).await;
    assert!(past.items.is_empty());
    assert_eq!(past.total, Some(4), "a page past the end still counts");
    let filtered = fx.query("people", "active = true", "-name", 2, 2).await;
    assert_eq!(names(&filtered), ["ann"]);
    assert_eq!(
        filtered.total,
        Some(3),
        "the total counts matches, not the page"
    );
    let without = fx
        .store
        .list_records(RecordQuery {
            collection: fx.collection("people"),
            filters: Vec::new(),
            sort: Vec::new(),
            page: 1,
            per_page: 2,
            with_total: false,
        })
        .await
        .expect("listed");
    assert_eq!(without.items.len(), 2);
    assert_eq!(without.total, None, "no total unless asked");
}

pub async fn get_record_applies_filters(engine: &Engine) {
    let fx = open(engine).await;
    people(&fx).await;
    let ann = fx.list("people", "name = 'ann'", "").await.remove(0);
    let people = fx.collection("people");
    let get = |filters: Vec<domain::SqlFragment>| {
        let store = std::sync::Arc::clone(&fx.store);
        let people = std::sync::Arc::clone(&people);
        let id = ann.id().to_owned();
        async move { store.get_record(people, &id, filters).await.expect("read") }
    };
    assert_eq!(get(vec![]).await.as_ref(), Some(&ann));
    assert!(get(vec![fx.filter("people", "age = 30")]).await.is_some());
    assert!(get(vec![fx.filter("people", "age = 31")]).await.is_none());
    assert!(
        get(vec![
            fx.filter("people", "age = 30"),
            fx.filter("people", "team.name = 'blue'")
        ])
        .await
        .is_none(),
        "every filter must hold"
    );
    assert!(
        get(vec![fx.filter("people", "team.name = 'red'")])
            .await
            .is_some(),
        "filters may read other rows"
    );
}

pub async fn find_by_field_matches_exactly(engine: &Engine) {
    let fx = open(engine).await;
    people(&fx).await;
    let people = fx.collection("people");
    let find = |field: &'static str, value: &'static str| {
        let store = std::sync::Arc::clone(&fx.store);
        let people = std::sync::Arc::clone(&people);
        async move {
            store
                .find_by_field(people, field, value)
                .await
                .expect("looked up")
                .map(|r| r.text("name").to_owned())
        }
    };
    assert_eq!(find("name", "bob").await.as_deref(), Some("bob"));
    assert_eq!(find("name", "BOB").await, None, "exact, case included");
    assert_eq!(find("name", "bo").await, None, "no pattern matching");
    assert_eq!(
        find("nope", "bob").await,
        None,
        "an unknown field finds nothing"
    );
    let users = fx.collection(domain::collection::USERS_NAME);
    let user = fx
        .create(
            domain::collection::USERS_NAME,
            json!({"email": "a@example.com", "tokenKey": "k".repeat(30), "password": "x"}),
        )
        .await;
    let found = fx
        .store
        .find_by_field(users, "email", "a@example.com")
        .await
        .expect("looked up");
    assert_eq!(found.map(|r| r.id().to_owned()).as_deref(), Some(user.id()));
}

pub async fn record_satisfies_answers_for_stored_rows(engine: &Engine) {
    let fx = open(engine).await;
    people(&fx).await;
    let ann = fx.list("people", "name = 'ann'", "").await.remove(0);
    let people = fx.collection("people");
    let satisfies = |id: &str, filter: Option<&str>| {
        let filters: Vec<_> = filter.map(|f| fx.filter("people", f)).into_iter().collect();
        let store = std::sync::Arc::clone(&fx.store);
        let people = std::sync::Arc::clone(&people);
        let id = id.to_owned();
        async move {
            store
                .record_satisfies(people, &id, filters)
                .await
                .expect("checked")
        }
    };
    assert!(satisfies(ann.id(), None).await);
    assert!(satisfies(ann.id(), Some("active = true && team.name = 'red'")).await);
    assert!(!satisfies(ann.id(), Some("active = false")).await);
    assert!(
        !satisfies("missing00000000", None).await,
        "a missing record does not"
    );
}

pub async fn matches_unsaved_checks_a_row_that_is_not_stored(engine: &Engine) {
    let fx = open(engine).await;
    let (red, _blue) = people(&fx).await;
    let people = fx.collection("people");
    let eve = record_data(
        &people,
        json!({"name": "eve", "age": 40, "active": true, "team": red, "tags": ["x"]}),
    );
    let matches = |filter: &str| {
        let predicate = fx.filter("people", filter);
        let store = std::sync::Arc::clone(&fx.store);
        let people = std::sync::Arc::clone(&people);
        let eve = eve.clone();
        async move {
            store
                .matches_unsaved(people, eve, predicate)
                .await
                .expect("checked")
        }
    };
    let mut failures = Vec::new();
    for (filter, expected) in [
        ("age > 35", true),
        ("age < 35", false),
        ("name = 'eve'", true),
        ("name = 'ann'", false),
        ("active = true && tags:each ?= 'x'", true),
        ("tags:each ?= 'y'", false),
        ("team.name = 'red'", true),
        ("team.name = 'blue'", false),
    ] {
        if matches(filter).await != expected {
            failures.push(filter);
        }
    }
    assert!(
        failures.is_empty(),
        "{}: wrong answers for {failures:?}",
        fx.engine
    );
    assert_eq!(fx.count("people").await, 4, "the row was not stored");
    assert!(fx.list("people", "name = 'eve'", "").await.is_empty());
}
