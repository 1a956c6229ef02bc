//! Fuzzes the whole pipeline a client filter or a stored rule goes through: parse, check
//! against a small schema (relations, back-relations, json, select, auth fields), emit SQL
//! for both dialects, and evaluate in memory. Any panic, stack overflow or hang is a bug;
//! refusals are expected.

#![no_main]

use std::sync::{Arc, OnceLock};

use domain::collection::users_collection;
use domain::field::{Field, FieldKind, RelationOptions, SelectOptions};
use domain::{AuthContext, Collection, CollectionType, Dialect, Record, Schema};
use libfuzzer_sys::fuzz_target;
use rules::{Compiled, Mode, RequestContext};

struct World {
    schema: Arc<Schema>,
    posts: Arc<Collection>,
    record: Record,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let users = users_collection("");
        let mut posts = Collection::scaffold(CollectionType::Base, "posts");
        posts.id = "pbc_posts".into();
        posts.fields.push(Field::new("title", FieldKind::Text(Default::default())));
        posts.fields.push(Field::new("n", FieldKind::Number(Default::default())));
        posts.fields.push(Field::new("meta", FieldKind::Json(Default::default())));
        posts.fields.push(Field::new(
            "tags",
            FieldKind::Select(SelectOptions {
                values: vec!["a".into(), "b".into()],
                max_select: 2,
                ..Default::default()
            }),
        ));
        posts.fields.push(Field::new(
            "author",
            FieldKind::Relation(RelationOptions {
                collection_id: users.id.clone(),
                max_select: 1,
                ..Default::default()
            }),
        ));
        let mut comments = Collection::scaffold(CollectionType::Base, "comments");
        comments.id = "pbc_comments".into();
        comments.fields.push(Field::new("text", FieldKind::Text(Default::default())));
        comments.fields.push(Field::new(
            "post",
            FieldKind::Relation(RelationOptions {
                collection_id: posts.id.clone(),
                max_select: 1,
                ..Default::default()
            }),
        ));
        let schema = Arc::new(Schema::new(vec![users, posts, comments]));
        let posts = schema.get("posts").cloned().expect("posts");
        let record = Record::new(
            serde_json::from_value(serde_json::json!({
                "id": "p1", "title": "hello", "n": 3, "meta": {"k": [1, "x"]},
                "tags": ["a"], "author": "u1"
            }))
            .expect("record data"),
        );
        World { schema, posts, record }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let w = world();
    let mode = match selector % 3 {
        0 => Mode::Rule,
        1 => Mode::Filter,
        _ => Mode::SuperuserFilter,
    };
    if text.is_empty() {
        return;
    }
    let Ok(compiled) = Compiled::compile(&w.schema, &w.posts, text, mode) else {
        return;
    };
    let ctx = RequestContext::new(AuthContext::Guest)
        .with_method("POST")
        .with_header("X-Token", "t")
        .with_query("q", "1")
        .with_body(serde_json::Map::from_iter([(
            "title".to_owned(),
            serde_json::Value::String("x".into()),
        )]));
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let sql = compiled.to_sql(dialect, &ctx);
        // Every user value is a bound parameter: the placeholders and values line up.
        if dialect == Dialect::Sqlite {
            assert_eq!(sql.sql.matches('?').count(), sql.params.len(), "{}", sql.sql);
        }
    }
    let _ = compiled.eval(&w.record, &ctx);
    let _ = rules::compile_sort(&w.schema, &w.posts, text, &AuthContext::Guest);
});
