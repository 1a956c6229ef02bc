//! Property tests. (1) Random records and random row-local expressions: the in-memory
//! evaluator must give exactly the rows SQLite gives for the emitted SQL, on a table declared
//! the way the store declares it. (2) Random input never panics the compiler and finishes
//! quickly.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{AuthContext, Collection, Dialect, Record, Schema, SqlFragment};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::support::{
    base, boolean, create_table, geo, insert, json_field, number, open_db, select, select_ids, text,
};
use crate::{Compiled, Eval, Mode, RequestContext, compile_filter};

pub(super) fn schema() -> (Arc<Schema>, Arc<Collection>) {
    let t = base(
        "t",
        Some(""),
        vec![
            text("title"),
            number("n"),
            boolean("flag"),
            select("sel", 1, &["a", "b", "5"]),
            select("tags", 3, &["a", "b", "c", "5"]),
            json_field("meta"),
            geo("loc"),
        ],
    );
    let schema = Arc::new(Schema::new(vec![t]));
    let collection = schema.get("t").cloned().expect("t exists");
    (schema, collection)
}

const TEXTS: &[&str] = &[
    "", "a", "A", "abc", "5", "5.0", "10", "x%y", "a_b", " 5", "é", "É", "-2.5", "true", "\\",
    "O'R", "1e1000",
];
const NUMBERS: &[f64] = &[0.0, 1.0, -2.5, 5.0, 10.0, 1.5, 100.0];

fn text_value() -> impl Strategy<Value = String> {
    prop::sample::select(TEXTS).prop_map(str::to_owned)
}

fn number_value() -> impl Strategy<Value = f64> {
    prop::sample::select(NUMBERS)
}

/// JSON values, `prop_pg.rs` uses them too. PostgreSQL's `jsonb` keeps neither the order of an
/// object's keys nor a number's written form, so an object with several keys, or a number like
/// `1e20` inside a structure, is not the same text on both engines: the evaluator leaves such a
/// value read as text to the database, and a key read out of it (`meta.k`) stays in memory.
fn json_value() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        Value::Null,
        json!({"k": 1, "a": "x"}),
        json!({"k": {"x": 1, "yy": 2}}),
        json!({"k": [1e20, "a"]}),
        json!([1e20]),
        json!(1e20),
        json!({"k": 1}),
        json!({"k": "a"}),
        json!({"k": [1, "a"]}),
        json!({"k": null}),
        json!({"k": 2.5}),
        json!([1, 2]),
        json!(["a"]),
        json!("str"),
        json!(5),
        json!(true),
        json!({"k": {"x": 1}}),
    ])
}

pub(super) fn record_value() -> impl Strategy<Value = Value> {
    (
        text_value(),
        number_value(),
        any::<bool>(),
        prop::sample::select(vec!["", "a", "b", "5"]),
        prop::sample::subsequence(vec!["a", "b", "c", "5"], 0..=3),
        json_value(),
        (prop::sample::select(vec![0.0, 23.5, -10.0]), prop::sample::select(vec![0.0, 42.1, 5.0])),
    )
        .prop_map(|(title, n, flag, sel, tags, meta, (lon, lat))| {
            json!({"title": title, "n": domain::record::number_to_json(n), "flag": flag,
                "sel": sel, "tags": tags, "meta": meta,
                "loc": {"lon": domain::record::number_to_json(lon), "lat": domain::record::number_to_json(lat)}})
        })
}

/// A filter literal for `text`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn operand() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "title", "n", "flag", "sel", "tags", "meta", "loc", "title:lower", "tags:each",
            "tags:length", "sel:each", "sel:length", "meta.k", "meta.k.0", "meta.0", "meta.k.x",
            "loc.lon", "loc.lat", "id", "null", "true", "false", "n:lower", "meta.k:lower",
        ])
        .prop_map(str::to_owned),
        3 => text_value().prop_map(|t| quote(&t)),
        2 => number_value().prop_map(|n| n.to_string()),
        2 => prop::sample::select(vec![
            "@request.query.q", "@request.query.missing", "@request.auth.id",
            "@request.body.title", "@request.body.n", "@request.body.tags:each",
            "@request.body.tags:length", "@request.body.title:isset", "@request.body.title:changed",
            "@request.query.q:lower", "@request.method", "@year", "@now", "@request.auth.verified",
        ])
        .prop_map(str::to_owned),
        1 => Just("geoDistance(loc.lon, loc.lat, 23.5, 42.1)".to_owned()),
    ]
}

fn operator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "=", "!=", ">", ">=", "<", "<=", "~", "!~", "?=", "?!=", "?>", "?>=", "?<", "?<=", "?~",
        "?!~",
    ])
}

fn comparison() -> impl Strategy<Value = String> {
    (operand(), operator(), operand()).prop_map(|(l, op, r)| format!("{l} {op} {r}"))
}

pub(super) fn expression() -> impl Strategy<Value = String> {
    comparison().prop_recursive(3, 12, 3, |inner| {
        (
            prop::collection::vec(inner, 2..=3),
            prop::sample::select(vec![" && ", " || "]),
            any::<bool>(),
        )
            .prop_map(|(items, join, parens)| {
                let joined = items.join(join);
                if parens {
                    format!("({joined})")
                } else {
                    joined
                }
            })
    })
}

pub(super) fn request() -> impl Strategy<Value = (Option<String>, Option<Value>, bool)> {
    (
        prop::option::of(text_value()),
        prop::option::of(
            (
                text_value(),
                number_value(),
                prop::sample::subsequence(
                    vec![json!("a"), json!("b"), json!("5"), json!(5), json!(null)],
                    0..=2,
                ),
            )
                .prop_map(|(title, n, tags)| json!({"title": title, "n": n, "tags": tags})),
        ),
        any::<bool>(),
    )
}

thread_local! {
    static DB: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// `cases` per run, or `PROPTEST_CASES` when set (for longer hunts).
pub(super) fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

/// The request a generated case runs under: a signed-in user or a guest, the `q` query
/// parameter and the body, when generated.
pub(super) fn context(signed_in: bool, query: Option<&str>, body: Option<Value>) -> RequestContext {
    let auth = if signed_in {
        let users = Arc::new(domain::collection::users_collection(""));
        let user = json!({"id": "a", "email": "a@x.io", "verified": true});
        AuthContext::Record {
            collection: users,
            record: Arc::new(Record::new(user.as_object().cloned().unwrap_or_default())),
            refreshable: true,
        }
    } else {
        AuthContext::Guest
    };
    let mut ctx = RequestContext::new(auth).at(super::support::now());
    if let Some(q) = query {
        ctx = ctx.with_query("q", q);
    }
    if let Some(Value::Object(body)) = body {
        ctx = ctx.with_body(body);
    }
    ctx
}

/// The generated records as rows with ids `r0`, `r1`, ….
pub(super) fn rows(records: &[Value]) -> Vec<Record> {
    records
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let mut map = value.as_object().cloned().unwrap_or_default();
            map.insert("id".into(), json!(format!("r{i}")));
            Record::new(map)
        })
        .collect()
}

/// One case of the property: every record's in-memory verdict equals SQLite's.
fn agrees_with_sqlite(
    records: &[Value],
    filter: &str,
    query: Option<&str>,
    body: Option<Value>,
    signed_in: bool,
) -> Result<(), TestCaseError> {
    let (schema, collection) = schema();
    let compiled = match Compiled::compile(&schema, &collection, filter, Mode::Rule) {
        Ok(compiled) => compiled,
        // Some random combinations are invalid (e.g. `:each` on a body text field).
        Err(_) => return Ok(()),
    };
    prop_assert!(compiled.is_row_local(), "{filter}");
    let ctx = context(signed_in, query, body);
    let sql = compiled.to_sql(Dialect::Sqlite, &ctx);
    let rows = rows(records);
    let matched = DB.with(|cell| {
        let mut slot = cell.borrow_mut();
        let db = slot.get_or_insert_with(|| {
            let db = open_db();
            create_table(&db, &collection);
            db
        });
        db.execute("DELETE FROM \"t\"", []).expect("clear");
        for row in &rows {
            insert(db, &collection, &Value::Object(row.data.clone()));
        }
        select_ids(db, "t", &sql)
    });
    verdicts_agree(&compiled, &ctx, &rows, &matched, filter, &sql)
}

/// Every row's in-memory verdict equals the database's (`matched`: the ids the engine's SQL
/// `sql` selected). Row-local expressions only defer to SQL when a REAL must become text and
/// SQLite would print 17 digits (e.g. a geoDistance compared with a text column), or for a
/// value whose text differs between the engines (`eval::same_text_on_every_engine`).
pub(super) fn verdicts_agree(
    compiled: &Compiled,
    ctx: &RequestContext,
    rows: &[Record],
    matched: &[String],
    filter: &str,
    sql: &SqlFragment,
) -> Result<(), TestCaseError> {
    for row in rows {
        let verdict = compiled.eval(row, ctx);
        if verdict == Eval::NeedsSql {
            continue;
        }
        let in_sql = matched.iter().any(|id| id == row.id());
        prop_assert_eq!(
            verdict == Eval::Match,
            in_sql,
            "filter {} on {:?}\nsql {}\nparams {:?}",
            filter,
            row.data,
            sql.sql,
            sql.params
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn evaluator_agrees_with_sqlite(
        records in prop::collection::vec(record_value(), 1..6),
        filter in expression(),
        (query, body, signed_in) in request(),
    ) {
        agrees_with_sqlite(&records, &filter, query.as_deref(), body, signed_in)?;
    }
}

/// Found by the property at 20,000 cases: `json_each`'s `value` is a column without a declared
/// type, so a TEXT column compared with it does not turn it into text (`'' > 5` holds: numbers
/// sort before text).
#[test]
fn a_text_column_compared_with_each_item_keeps_the_item_a_number() {
    let record = json!({"title": "", "n": 0, "flag": false, "sel": "", "tags": [], "meta": null,
        "loc": {"lon": 0, "lat": 0}});
    let body = json!({"title": "", "n": 0.0, "tags": [5]});
    agrees_with_sqlite(
        &[record],
        "sel > @request.body.tags:each",
        None,
        Some(body),
        false,
    )
    .expect("the evaluator agrees with SQLite");
}

/// Pieces the grammar is made of, to build near-valid inputs.
const PIECES: &[&str] = &[
    "(",
    ")",
    "((",
    "))",
    "&&",
    "||",
    "=",
    "!=",
    "?=",
    "~",
    "!~",
    "?!~",
    ">",
    "<=",
    "title",
    "meta.k",
    "tags:each",
    "tags:length",
    "author.name",
    "@request.auth.id",
    "@request.body.x",
    "@collection.t.title",
    "@now",
    "'x'",
    "\"y\"",
    "'a\\'b'",
    "1",
    "-2.5",
    "geoDistance(",
    "strftime(",
    ",",
    ":lower",
    "//c\n",
    " ",
    "null",
    "true",
    "\\",
    "'",
    "\"",
    "@",
    "#",
    "é",
    "t_via_x.y",
    "a.b.c.d.e.f.g.h",
];

fn near_valid() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..40).prop_map(|parts| parts.join(" "))
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn random_text_never_panics(input in prop_oneof![near_valid(), any::<String>(), "[ -~]{0,64}"]) {
        // Every stage runs for a guest and for a signed-in user (whose `@request.auth.*`
        // values take other paths in the checker and emitter). A panic fails the property;
        // cost is bounded by the benchmark and the fuzz target, not by wall-clock asserts.
        let (schema, collection) = schema();
        let users = Arc::new(domain::collection::users_collection(""));
        let user = json!({"id": "a", "email": "a@x.io", "verified": true});
        let signed_in = AuthContext::Record {
            collection: users,
            record: Arc::new(Record::new(user.as_object().cloned().unwrap_or_default())),
            refreshable: true,
        };
        let mut compiled_any = false;
        for auth in [AuthContext::Guest, signed_in] {
            let ctx = RequestContext::new(auth.clone());
            if let Ok(Some(compiled)) = compile_filter(&schema, &collection, &input, &auth) {
                compiled_any = true;
                let _ = compiled.to_sql(Dialect::Sqlite, &ctx);
                let _ = compiled.to_sql(Dialect::Postgres, &ctx);
            }
            if let Ok(compiled) = Compiled::compile(&schema, &collection, &input, Mode::Rule) {
                let _ = compiled.to_sql(Dialect::Sqlite, &ctx);
                let record = Record::new(serde_json::Map::new());
                let _ = compiled.eval(&record, &ctx);
            }
        }
        // Blank text is "no filter": it never compiles to a predicate.
        if input.trim().is_empty() {
            prop_assert!(!compiled_any, "blank filter compiled: {input:?}");
        }
    }
}

/// 199 levels of alternating `&&`/`||` groups cannot be flattened; every stage recurses
/// through them, which must fit comfortably in a small thread stack.
#[test]
fn deep_alternating_groups_fit_a_small_stack() {
    let mut text = String::from("title = 'x'");
    for level in 0..199 {
        let join = if level % 2 == 0 { "&&" } else { "||" };
        text = format!("title = 'x' {join} ({text})");
    }
    let worker = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let (schema, collection) = schema();
            let compiled = Compiled::compile(&schema, &collection, &text, Mode::Rule)
                .expect("200 comparisons are allowed");
            let ctx = RequestContext::new(AuthContext::Guest);
            let sql = compiled.to_sql(Dialect::Sqlite, &ctx);
            let record = Record::new(
                json!({"id": "r", "title": "x"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            let db = open_db();
            create_table(&db, &collection);
            insert(&db, &collection, &Value::Object(record.data.clone()));
            let ids = select_ids(&db, "t", &sql);
            (sql.params.len(), compiled.eval(&record, &ctx), ids)
        })
        .expect("spawn");
    let (params, verdict, ids) = worker.join().expect("no stack overflow");
    assert_eq!(params, 200);
    assert_eq!(verdict, Eval::Match);
    // SQLite accepts the nesting too (its expression depth limit is 1000).
    assert_eq!(ids, vec!["r".to_owned()]);
}

#[test]
fn worst_case_inputs_stay_fast() {
    let (schema, collection) = schema();
    let worst = [
        "(".repeat(crate::MAX_LEN),
        format!("{}title = 'x'{}", "(".repeat(1740), ")".repeat(1740)),
        vec!["title ~ 'a%b%c%d%e%f%'"; 140].join(" || "),
        vec!["tags:each = tags:each"; 150].join(" && "),
        format!("title = '{}'", "\\".repeat(3000)),
    ];
    for input in worst {
        let started = Instant::now();
        if let Ok(compiled) = Compiled::compile(&schema, &collection, &input, Mode::Rule) {
            let ctx = RequestContext::new(AuthContext::Guest);
            let _ = compiled.to_sql(Dialect::Sqlite, &ctx);
            let record = Record::new(
                json!({"id": "r", "title": "a".repeat(100), "tags": ["a", "b", "c"]})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            let _ = compiled.eval(&record, &ctx);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "took {:?} on {}…",
            started.elapsed(),
            &input[..40.min(input.len())]
        );
    }
}

/// A JSON value whose text PostgreSQL writes differently (several keys, `1e20` inside) is left
/// to the database when read as text; a key read out of it stays in memory.
#[test]
fn engine_specific_json_text_is_left_to_the_database() {
    let (schema, collection) = schema();
    let ctx = context(false, None, None);
    let eval = |filter: &str, meta: Value| {
        let compiled =
            Compiled::compile(&schema, &collection, filter, Mode::Rule).expect("compiles");
        let record = rows(&[
            json!({"title": "", "n": 0, "flag": false, "sel": "", "tags": [],
            "meta": meta, "loc": {"lon": 0, "lat": 0}}),
        ])
        .remove(0);
        compiled.eval(&record, &ctx)
    };
    assert_eq!(eval("meta ~ 'k'", json!({"k": 1, "a": 2})), Eval::NeedsSql);
    assert_eq!(eval("meta ~ 'k'", json!([1e20])), Eval::NeedsSql);
    assert_eq!(
        eval("meta.k ~ 'x'", json!({"k": {"x": 1, "yy": 2}})),
        Eval::NeedsSql
    );
    assert_eq!(eval("meta.k = 1", json!({"k": 1, "a": 2})), Eval::Match);
    assert_eq!(eval("meta ~ 'k'", json!({"k": 1})), Eval::Match);
    assert_eq!(eval("n > '1e1000'", json!(null)), Eval::NeedsSql);
    assert_eq!(eval("n > '1e100'", json!(null)), Eval::NoMatch);
}
