//! Injection attempts: user text must reach SQL only as bound values, never as SQL text.

use domain::Dialect;
use serde_json::json;

use super::support::Fixture;
use crate::{Compiled, Mode, compile_filter};

const PAYLOADS: &[&str] = &[
    "'; DROP TABLE posts; --",
    "\" OR 1=1 --",
    "x') OR ('1'='1",
    "\\'; DELETE FROM posts; --",
    "%' OR '%'='",
    "?",
    "$1",
    "0x27",
    "\u{2019}; DROP TABLE posts",
];

/// A filter literal for `payload` in single quotes.
fn quoted(payload: &str) -> String {
    format!("'{}'", payload.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[test]
fn literals_are_bound_never_spliced() {
    let f = Fixture::new();
    let posts = f.collection("posts");
    for payload in PAYLOADS {
        for template in [
            "title = {}",
            "title ~ {}",
            "title != {}",
            "meta.k = {}",
            "tags:each ?= {}",
        ] {
            let filter = template.replace("{}", &quoted(payload));
            let compiled = compile_filter(&f.schema, &posts, &filter, &f.auth("su"))
                .expect(&filter)
                .expect("not empty");
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let sql = compiled.to_sql(dialect, &f.ctx("su"));
                assert!(!sql.sql.contains("DROP"), "{filter}: {}", sql.sql);
                assert!(!sql.sql.contains("DELETE"), "{filter}: {}", sql.sql);
                assert!(!sql.sql.contains("1=1"), "{filter}: {}", sql.sql);
                if template == "title = {}" {
                    assert!(
                        sql.params
                            .contains(&domain::SqlValue::Text(payload.to_string())),
                        "{filter}: payload not bound as is"
                    );
                }
                assert_eq!(
                    sql.sql.matches('?').count(),
                    sql.params.len(),
                    "{}",
                    sql.sql
                );
            }
            let ids = f.run(&compiled, &f.ctx("su"), "posts");
            assert!(ids.len() <= 5);
        }
    }
    // The table is intact and nothing matched the payload titles.
    let all = f.filter("su", "posts", "id != ''").expect("runs");
    assert_eq!(all.len(), 5);
}

#[test]
fn request_values_are_bound() {
    let f = Fixture::new();
    let rt = f.collection("rt");
    let rule = "title = @request.query.q || title = @request.headers.x_q || title = @request.body.title || @request.body.tags:each ?= 'a' || @request.method = 'x'";
    let compiled = Compiled::compile(&f.schema, &rt, rule, Mode::Rule).expect("compiles");
    for payload in PAYLOADS {
        let ctx = f
            .ctx("alice")
            .with_query("q", payload)
            .with_header("X-Q", payload)
            .with_method(payload)
            .with_body(
                json!({"title": payload, "tags": [payload]})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let sql = compiled.to_sql(dialect, &ctx);
            if payload.len() > 2 {
                assert!(!sql.sql.contains(payload), "{payload}: {}", sql.sql);
            }
            let placeholders = sql.sql.matches('?').count();
            assert_eq!(placeholders, sql.params.len(), "{}", sql.sql);
        }
        assert_eq!(f.run(&compiled, &ctx, "rt"), Vec::<String>::new());
    }
}

#[test]
fn names_cannot_escape_quoting() {
    let f = Fixture::new();
    let posts = f.collection("posts");
    for attempt in [
        "title\" = 1 --",
        "title` = 1",
        "@collection.posts\".title = 1",
        "title; DROP TABLE posts = 1",
        "ti tle = 1",
        "@collection.x\"y.title = 1",
    ] {
        assert!(
            compile_filter(&f.schema, &posts, attempt, &f.auth("su")).is_err(),
            "{attempt} compiled"
        );
    }
    // Identifiers that do reach SQL are schema names, quoted with inner quotes doubled.
    let mut odd = super::support::base("we\"ird", Some(""), vec![super::support::text("a")]);
    odd.id = "odd".into();
    let schema = std::sync::Arc::new(domain::Schema::new(vec![odd]));
    let collection = schema.get("odd").cloned().expect("exists");
    let compiled = Compiled::compile(&schema, &collection, "a = 'x'", Mode::Rule).expect("ok");
    let sql = compiled.to_sql(Dialect::Sqlite, &f.ctx("su"));
    assert_eq!(sql.sql, "\"we\"\"ird\".\"a\" = ?");
}

/// A non-superuser's sort by an auth collection's `email` orders only by the addresses the
/// viewer may see: the value is NULL where `emailVisibility` is off (PocketBase sorts by the
/// hidden address, which a few probe accounts turn into a binary search for it).
#[test]
fn hidden_emails_do_not_order_a_sort() {
    use std::sync::Arc;

    use domain::collection::{superusers_collection, users_collection};
    use domain::{AuthContext, Record, Schema};

    use crate::{RequestContext, compile_sort};

    let mut users = users_collection("");
    users.list_rule = Some(String::new());
    let schema = Arc::new(Schema::new(vec![superusers_collection(""), users]));
    let users = schema.get("users").cloned().expect("users");
    let superuser = AuthContext::Record {
        collection: schema.get("_superusers").cloned().expect("superusers"),
        record: Arc::new(Record::new(serde_json::Map::new())),
        refreshable: true,
    };
    for (auth, masked) in [(AuthContext::Guest, true), (superuser, false)] {
        let ctx = RequestContext::new(auth.clone());
        for sort in ["email", "-email", "email:lower"] {
            let sql = compile_sort(&schema, &users, sort, &auth)
                .expect("sortable")
                .to_sql(Dialect::Sqlite, &ctx);
            let expr = &sql.terms[0].expr.sql;
            assert_eq!(
                expr.contains("CASE WHEN \"users\".\"emailVisibility\" = 1 THEN"),
                masked,
                "{sort} for {auth:?}: {expr}"
            );
        }
    }
}
