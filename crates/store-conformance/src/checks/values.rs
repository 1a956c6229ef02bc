//! Values: every field type comes back exactly as PocketBase stores and prints it (canonical
//! JSON, whole numbers without a fraction, JSON scalars keeping their JSON type, dates as
//! `YYYY-MM-DD HH:MM:SS.mmmZ` text), from writes, reads by id and lists alike.

use domain::collection::USERS_ID;
use domain::field::{
    AutodateOptions, BasicOptions, DomainOptions, EditorOptions, Field, FieldKind, FileOptions,
    SelectOptions,
};
use domain::{Collection, Record};
use serde_json::{Value, json};

use crate::Engine;
use crate::support::{Fixture, base, boolean, date, json_field, number, open, relation, text};

/// A collection with one field of every type.
fn everything() -> Collection {
    let select = |name: &str, max_select: u64| {
        Field::new(
            name,
            FieldKind::Select(SelectOptions {
                max_select,
                values: vec!["a".into(), "b".into()],
                ..Default::default()
            }),
        )
    };
    let file = |name: &str, max_select: u64| {
        Field::new(
            name,
            FieldKind::File(FileOptions {
                max_select,
                ..Default::default()
            }),
        )
    };
    let autodate = |name: &str, on_update: bool| {
        Field::new(
            name,
            FieldKind::Autodate(AutodateOptions {
                on_create: true,
                on_update,
            }),
        )
    };
    base(
        "everything",
        vec![
            text("title"),
            Field::new("body", FieldKind::Editor(EditorOptions::default())),
            number("n"),
            boolean("ok"),
            Field::new("mail", FieldKind::Email(DomainOptions::default())),
            Field::new("link", FieldKind::Url(DomainOptions::default())),
            date("when"),
            select("sel", 1),
            select("sels", 3),
            json_field("meta"),
            relation("owner", USERS_ID, 1, false, false),
            relation("owners", USERS_ID, 5, false, false),
            file("doc", 1),
            file("docs", 4),
            Field::new("loc", FieldKind::GeoPoint(BasicOptions::default())),
            autodate("created", false),
            autodate("updated", true),
        ],
    )
}

/// Writes `values`, then checks the created, fetched and listed records hold exactly them.
async fn round_trip(fx: &Fixture, name: &str, values: &Value) -> Record {
    let created = fx.create(name, values.clone()).await;
    for (key, value) in values.as_object().expect("an object") {
        assert_eq!(
            created.data.get(key),
            Some(value),
            "{}: {key} as written comes back from the write",
            fx.engine
        );
    }
    let fetched = fx.get(name, created.id()).await.expect("stored");
    assert_eq!(
        fetched, created,
        "{}: a read by id returns the same",
        fx.engine
    );
    let listed = fx.list(name, &format!("id = '{}'", created.id()), "").await;
    assert_eq!(
        listed,
        std::slice::from_ref(&created),
        "{}: a list returns the same",
        fx.engine
    );
    created
}

pub async fn every_field_kind_round_trips(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(everything()).await;
    let user = fx
        .create(
            domain::collection::USERS_NAME,
            json!({"email": "a@example.com", "tokenKey": "k".repeat(30), "password": "x"}),
        )
        .await;
    let values = json!({
        "title": "Hello",
        "body": "<p>hi</p>",
        "n": 2.5,
        "ok": true,
        "mail": "x@example.com",
        "link": "https://example.com/a?b=c",
        "when": "2024-01-02 03:04:05.678Z",
        "sel": "a",
        "sels": ["a", "b"],
        "meta": {"nested": [1, "two", null, true], "x": {"y": 1.5}},
        "owner": user.id(),
        "owners": [user.id()],
        "doc": "file_abc.png",
        "docs": ["one.png", "two.png"],
        "loc": {"lon": 1.5, "lat": -2},
        "created": "2024-01-01 00:00:00.000Z",
        "updated": "2024-01-01 00:00:00.000Z",
    });
    let created = round_trip(&fx, "everything", &values).await;
    let keys: Vec<&str> = created.data.keys().map(String::as_str).collect();
    let fields: Vec<String> = fx
        .collection("everything")
        .fields
        .iter()
        .map(|f| f.name.clone())
        .collect();
    assert_eq!(keys, fields, "every field, in field order");
    let updated = fx
        .update(
            "everything",
            created.id(),
            json!({"ok": false, "sels": ["b"], "n": -7, "loc": {"lon": -180, "lat": 90}}),
        )
        .await;
    assert_eq!(updated.data["ok"], json!(false));
    assert_eq!(updated.data["sels"], json!(["b"]));
    assert_eq!(updated.data["n"], json!(-7));
    assert_eq!(updated.data["loc"], json!({"lon": -180, "lat": 90}));
    assert_eq!(updated.data["title"], json!("Hello"));
    assert_eq!(
        fx.get("everything", created.id()).await.as_ref(),
        Some(&updated)
    );
}

pub async fn zero_values_come_back_canonical(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(everything()).await;
    let empty = fx.create("everything", json!({})).await;
    let expected = json!({
        "title": "", "body": "", "n": 0, "ok": false, "mail": "", "link": "", "when": "",
        "sel": "", "sels": [], "meta": null, "owner": "", "owners": [], "doc": "", "docs": [],
        "loc": {"lon": 0, "lat": 0},
    });
    let fetched = fx.get("everything", empty.id()).await.expect("stored");
    for (key, value) in expected.as_object().expect("object") {
        assert_eq!(
            fetched.data.get(key),
            Some(value),
            "{}: zero {key}",
            fx.engine
        );
        assert_eq!(
            empty.data.get(key),
            Some(value),
            "{}: zero {key}",
            fx.engine
        );
    }
}

pub async fn json_values_keep_their_json_types(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("docs", vec![json_field("meta")]))
        .await;
    for value in [
        json!("123"),
        json!("true"),
        json!(""),
        json!("null"),
        json!(42),
        json!(-1.25),
        json!(true),
        json!(false),
        Value::Null,
        json!([]),
        json!({}),
        json!([1, "1", [true], {"a": null}]),
        json!({"b": 1, "a": 2, "nested": {"z": [], "y": "text with \"quotes\""}}),
        json!(9_007_199_254_740_991_i64),
    ] {
        round_trip(&fx, "docs", &json!({ "meta": value })).await;
    }
    // An update can change the JSON type.
    let record = fx.create("docs", json!({"meta": "7"})).await;
    let updated = fx.update("docs", record.id(), json!({"meta": 7})).await;
    assert_eq!(updated.data["meta"], json!(7));
    assert_eq!(
        fx.get("docs", record.id()).await.expect("stored").data["meta"],
        json!(7)
    );
}

pub async fn numbers_round_trip_exactly(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("nums", vec![number("n")])).await;
    for value in [
        json!(0),
        json!(7),
        json!(-3),
        json!(2.5),
        json!(0.1),
        json!(-1.25),
        json!(1e-7),
        json!(123_456_789_012_i64),
        json!(9_007_199_254_740_991_i64),
        json!(1.7976931348623157e308),
    ] {
        round_trip(&fx, "nums", &json!({ "n": value })).await;
    }
    // Whole floats print without a fraction, with all their digits, as PocketBase (Go)
    // prints them, also past what an engine keeps as an integer.
    for (written, printed) in [
        (10.0, "10"),
        (-1e18, "-1000000000000000000"),
        (1e19, "10000000000000000000"),
    ] {
        let record = fx.create("nums", json!({ "n": written })).await;
        let fetched = fx.get("nums", record.id()).await.expect("stored");
        assert_eq!(
            fetched.data["n"].to_string(),
            printed,
            "{}: {written} read back",
            fx.engine
        );
        let listed = fx
            .list("nums", &format!("id = '{}'", record.id()), "")
            .await;
        assert_eq!(
            listed[0].data["n"].to_string(),
            printed,
            "{}: listed",
            fx.engine
        );
    }
}

pub async fn text_keeps_every_character(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("texts", vec![text("t")])).await;
    for value in [
        "plain",
        "  leading and trailing  ",
        "quotes ' \" ` and \\ backslashes",
        "percent % underscore _ star * question ?",
        "line\nbreaks\r\nand\ttabs",
        "unicode: héllo wörld ß 日本語 😀",
        "'; DROP TABLE texts; --",
        "$1 ?1 :name @x",
    ] {
        round_trip(&fx, "texts", &json!({ "t": value })).await;
        let filter = format!("t = {}", serde_json::to_string(value).expect("quoted"));
        assert_eq!(
            fx.list("texts", &filter, "").await.len(),
            1,
            "{}: found by {filter}",
            fx.engine
        );
    }
}

pub async fn dates_compare_in_filters(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("events", vec![text("name"), date("at")]))
        .await;
    for (name, at) in [
        ("early", "2024-01-01 00:00:00.000Z"),
        ("noon", "2024-01-01 12:00:00.000Z"),
        ("late", "2024-01-01 23:59:59.999Z"),
        ("next", "2024-01-02 00:00:00.000Z"),
        ("never", ""),
    ] {
        round_trip(&fx, "events", &json!({"name": name, "at": at})).await;
    }
    let cases: &[(&str, &[&str])] = &[
        (
            "at >= '2024-01-01 12:00:00.000Z'",
            &["late", "next", "noon"],
        ),
        ("at < '2024-01-01 12:00:00.000Z' && at != ''", &["early"]),
        ("at = '2024-01-01 23:59:59.999Z'", &["late"]),
        ("at > '2024-01-01 23:59:59.998Z'", &["late", "next"]),
        ("at = ''", &["never"]),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            fx.texts("events", "name", filter).await,
            *expected,
            "{}: {filter}",
            fx.engine
        );
    }
    let sorted: Vec<String> = fx
        .list("events", "", "-at")
        .await
        .iter()
        .map(|r| r.text("name").to_owned())
        .collect();
    assert_eq!(sorted, ["next", "late", "noon", "early", "never"]);
}

pub async fn hidden_and_password_fields_are_read_but_hashes_never_logged(engine: &Engine) {
    let fx = open(engine).await;
    let mut note = text("note");
    note.hidden = true;
    let pin = Field::new(
        "pin",
        FieldKind::Password(domain::field::PasswordOptions::default()),
    );
    fx.create_collection(base("vaults", vec![text("label"), note, pin]))
        .await;
    let hash = "$2a$10$vaultpinhashvaultpinhashvaultpinhash";
    let seq = fx.last_seq().await;
    let vault = round_trip(
        &fx,
        "vaults",
        &json!({"label": "v", "note": "hidden but stored", "pin": hash}),
    )
    .await;
    fx.try_delete("vaults", vault.id()).await.expect("deleted");
    let changes = fx.changes_since(seq).await;
    assert_eq!(changes.len(), 2);
    for change in &changes {
        assert_eq!(
            change.record.text("note"),
            "hidden but stored",
            "{}: hidden fields are logged",
            fx.engine
        );
        let logged = serde_json::to_string(&change.record.data).expect("json");
        assert!(
            !logged.contains(hash),
            "{}: a password hash logged: {logged}",
            fx.engine
        );
    }
}
