//! API rules: what PocketBase accepts when a rule is saved, and how rules that read the
//! request (`@request.auth.*` through joins, `@request.body.*`, `:changed`) decide, as
//! observed on PocketBase 0.40.6 with the `rt` collection.

use serde_json::{Map, Value, json};

use super::support::Fixture;
use crate::{Compiled, Eval, Mode, Rule, RuleOutcome};

#[test]
fn rule_validation_matches_pocketbase() {
    let f = Fixture::new();
    let posts = f.collection("posts");
    let accepted = [
        "title:length > 1",
        "title:each = 'x'",
        "title:isset = true",
        "title:changed = true",
        "meta:length = 1",
        "meta.arr:length = 1",
        "meta:each = 1",
        "author:length = 1",
        "author:each = 'x'",
        "tags:length > 1",
        "@request.body.tags:length > 1",
        "@request.body.tags:each = 'a'",
        "@request.body.author:length = 1",
        "comments_via_post.text ?= 'x'",
        "title:lower = 'x'",
        "@request.body.title:changed = true",
        "@request.body.title:isset = true",
        "@request.body.title:lower = 'x'",
        "@request.body.tags:lower = 'x'",
        "@request.query.x:lower = 'x'",
        "@request.auth.name:changed = true",
        "@request.auth.name:isset = true",
        "@request.auth.editors:length = 1",
        "@request.body.nope = 1",
        "@request.body.nope:isset = true",
        "@request.body.author.name = 'x'",
        "@request.body.author.nope = 1",
        "@request.body.editors.name ?= 'x'",
        "@request.body.editors:each ?= 'x'",
        "@request.auth.team.name = 'x'",
        "@request.auth.team.nope = 'x'",
        "@request.auth.nope = 'x'",
        "@request.auth.note = 'x'",
        "secret = 'x'",
        "@request.headers.x:isset = true",
        "views:lower = '1'",
        "id:length = 1",
        "editors.name:length = 1",
        "editors.team:length = 1",
        "published:each = 1",
        "@collection.comments.text:lower = 'x'",
        "geoDistance(loc.lon, loc.lat, 1, 2) < 1",
        "geoDistance(1,2,3,4,) < 1",
        "strftime('%Y') = 1",
        "strftime('%Y', created, 'unixepoch', 'x', 'y') = 1",
        "@request.query.a.b = 1",
        "@request.headers.a.b = 1",
        "@request.body.title.x = 1",
        "@request.body.meta.k = 1",
        "@request.auth.id.x = 1",
        "@request.body.editors.name:length = 1",
        "meta.k:length = 1",
    ];
    for rule in accepted {
        if let Err(e) = Rule::compile(&f.schema, &posts, Some(rule)) {
            panic!("{rule:?} was refused: {e}");
        }
    }
    let refused = [
        "@request.body.title:length > 1",
        "@request.body.title:each = 'a'",
        "@request.body.meta:length = 1",
        "comments_via_post:length = 1",
        "@request.query.x:changed = true",
        "@request.query.x:length = 1",
        "@request.method:lower = 'get'",
        "@request.context:isset = true",
        "tags:each:lower = 'a'",
        "editors:each.name = 1",
        "title:nope = 1",
        "geoDistance(1,2,3) < 1",
        "strftime(title, created) = 1",
        "lower(title) = 1",
        "title = geoDistance(geoDistance(1,2,3,4),2,3,4)",
        "strftime('%Y', strftime('%Y', strftime('%Y', created))) = 1",
        "strftime('%Y', strftime('%Y', strftime('%Y', strftime('%Y', created)))) = 1",
        "nope = 1",
        "title ~ 'x' && ",
        "@request.nope = 1",
        "@request.body = 1",
        "@request.auth = 1",
        "@collection.nope.x = 1",
        "@collection.comments.nope = 1",
        "@collection.comments = 1",
        "@request.body.nope:changed = true",
        "@now:lower = 1",
        "true:lower = 1",
        "null.x = 1",
    ];
    for rule in refused {
        assert!(
            Rule::compile(&f.schema, &posts, Some(rule)).is_err(),
            "{rule:?} was accepted"
        );
    }
}

#[test]
fn error_messages_name_the_operand_and_span() {
    let f = Fixture::new();
    let posts = f.collection("posts");
    let err = Rule::compile(&f.schema, &posts, Some("title = 1 && nope = 1")).expect_err("unknown");
    assert_eq!(err.kind, crate::ErrorKind::UnknownField);
    assert_eq!(err.span, Some(crate::Span::new(13, 17)));
    assert_eq!(
        err.to_string(),
        "invalid left operand \"nope\" - unknown field \"nope\" (at 13..17)"
    );
    let err = Rule::compile(&f.schema, &posts, Some("@request.body.title:length > 1"))
        .expect_err("not multi");
    assert!(
        err.message
            .contains("doesn't support multivalue operations"),
        "{err}"
    );
}

fn list_rule(f: &Fixture, role: &str, rule: &str) -> Vec<String> {
    let rt = f.collection("rt");
    let compiled = Compiled::compile(&f.schema, &rt, rule, Mode::Rule).expect(rule);
    f.run(&compiled, &f.ctx(role), "rt")
}

#[test]
fn auth_paths_in_rules() {
    let f = Fixture::new();
    let all = vec!["r1", "r2", "r3"];
    let cases: [(&str, Vec<&str>); 17] = [
        ("owner = @request.auth.id", vec!["r1"]),
        ("@request.auth.team.name = 'Red'", all.clone()),
        ("@request.auth.team.name = 'blue'", vec![]),
        ("owners ?= @request.auth.id", vec![]),
        ("owners:each ?= @request.auth.id", vec!["r1"]),
        ("@request.auth.id ?= owners", vec![]),
        ("owner.team = @request.auth.team", vec!["r1"]),
        ("@request.auth.note = 'n-alice'", all.clone()),
        ("@request.auth.email = 'alice@example.com'", all.clone()),
        ("@request.auth.collectionName = 'users'", all.clone()),
        (
            "@request.auth.collectionId = '_pb_users_auth_'",
            all.clone(),
        ),
        ("@request.auth.team.labels:each ?= 'x'", all.clone()),
        ("@request.auth.team.labels:length = 2", all.clone()),
        ("@request.auth.emailVisibility = true", all.clone()),
        ("@request.auth.password = ''", vec![]),
        ("@request.auth.tokenKey != ''", all.clone()),
        ("@request.auth.created != ''", all.clone()),
    ];
    for (rule, expected) in cases {
        assert_eq!(list_rule(&f, "alice", rule), expected, "{rule}");
    }
    // Guests have no auth record: every @request.auth value is NULL.
    assert_eq!(list_rule(&f, "guest", "@request.auth.id = ''"), all);
    assert_eq!(
        list_rule(&f, "guest", "owner = @request.auth.id"),
        vec!["r3"]
    );
    assert_eq!(
        list_rule(&f, "guest", "@request.auth.team.name = 'Red'"),
        Vec::<String>::new()
    );
}

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// An update of `r1` by alice with `submitted`, checked by `rule` on the stored row.
fn update_allowed(f: &Fixture, rule: &str, submitted: Value) -> bool {
    let rt = f.collection("rt");
    let compiled = Compiled::compile(&f.schema, &rt, rule, Mode::Rule).expect(rule);
    let ctx = f
        .ctx("alice")
        .with_method("PATCH")
        .with_body(body(submitted));
    let matched = f.run(&compiled, &ctx, "rt").contains(&"r1".to_owned());
    let record = f.record("rt", "r1");
    match compiled.eval(&record, &ctx) {
        Eval::Match => assert!(matched, "{rule}: eval and SQL disagree"),
        Eval::NoMatch => assert!(!matched, "{rule}: eval and SQL disagree"),
        Eval::NeedsSql => {}
    }
    matched
}

#[test]
fn body_values_in_update_rules() {
    let f = Fixture::new();
    let cases = [
        (
            "@request.body.title:changed = false",
            json!({"title": "one"}),
            true,
        ),
        (
            "@request.body.title:changed = false",
            json!({"title": "xx"}),
            false,
        ),
        ("@request.body.title:changed = false", json!({"n": 1}), true),
        ("@request.body.title:isset = false", json!({"n": 1}), true),
        (
            "@request.body.title:isset = false",
            json!({"title": "one"}),
            false,
        ),
        ("@request.body.n > 5", json!({"n": 7}), true),
        ("@request.body.n > 5", json!({"n": "7"}), true),
        (
            "@request.body.tags:length > 1",
            json!({"tags": ["a", "b"]}),
            true,
        ),
        (
            "@request.body.tags:each ?= 'b'",
            json!({"tags": ["a", "b"]}),
            true,
        ),
        (
            "@request.body.tags:each = 'b'",
            json!({"tags": ["a", "b"]}),
            false,
        ),
        (
            "@request.body.owner.name = 'Bob'",
            json!({"owner": "bob"}),
            true,
        ),
        (
            "@request.body.owners.name ?= 'Bob'",
            json!({"owners": ["bob"]}),
            true,
        ),
        ("@request.body.flag = true", json!({"flag": true}), true),
        ("@request.body.nope = 'x'", json!({"nope": "x"}), true),
        ("@request.body.title = title", json!({"title": "one"}), true),
        (
            "@request.body.title:lower = 'abc'",
            json!({"title": "ABC"}),
            true,
        ),
        ("@request.method = 'PATCH'", json!({}), true),
    ];
    for (rule, submitted, allowed) in cases {
        assert_eq!(
            update_allowed(&f, rule, submitted.clone()),
            allowed,
            "{rule} with {submitted}"
        );
    }
}

#[test]
fn create_rule_checks_the_new_row_in_memory() {
    let f = Fixture::new();
    let rt = f.collection("rt");
    let rule = Rule::compile(&f.schema, &rt, Some("owner = @request.auth.id")).expect("compiles");
    let ctx = f.ctx("alice").with_method("POST");
    let mut row = f.record("rt", "r3");
    assert_eq!(rule.check_record(&row, &ctx), Eval::NoMatch);
    row.data.insert("owner".into(), json!("alice"));
    assert_eq!(rule.check_record(&row, &ctx), Eval::Match);
    assert_eq!(rule.check_record(&row, &f.ctx("su")), Eval::Match);
}

#[test]
fn outcomes_per_caller() {
    let f = Fixture::new();
    let rt = f.collection("rt");
    let locked = Rule::compile(&f.schema, &rt, None).expect("null rule");
    let public = Rule::compile(&f.schema, &rt, Some("")).expect("empty rule");
    let owner = Rule::compile(&f.schema, &rt, Some("owner = @request.auth.id")).expect("rule");
    let dialect = domain::Dialect::Sqlite;
    assert_eq!(
        locked.outcome(dialect, &f.ctx("alice")),
        RuleOutcome::SuperusersOnly
    );
    assert_eq!(locked.outcome(dialect, &f.ctx("su")), RuleOutcome::Allow);
    assert_eq!(public.outcome(dialect, &f.ctx("guest")), RuleOutcome::Allow);
    let RuleOutcome::Filter(sql) = owner.outcome(dialect, &f.ctx("alice")) else {
        panic!("expected a filter");
    };
    assert_eq!(sql.sql, "\"rt\".\"owner\" = ?");
    assert_eq!(sql.params, vec![domain::SqlValue::Text("alice".into())]);
    // A guest's empty id turns the comparison into PocketBase's null-safe form.
    let RuleOutcome::Filter(sql) = owner.outcome(dialect, &f.ctx("guest")) else {
        panic!("expected a filter");
    };
    assert_eq!(
        sql.sql,
        "(\"rt\".\"owner\" = ? OR \"rt\".\"owner\" IS NULL)"
    );
    let rules = crate::CollectionRules::compile(&f.schema, &f.collection("users")).expect("users");
    assert!(matches!(rules.list, Rule::Expr(_)));
    assert!(rules.auth.is_some() && matches!(rules.manage, Some(Rule::SuperusersOnly)));
}
