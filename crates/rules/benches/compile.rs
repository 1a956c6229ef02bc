//! `cargo bench -p plinth-rules`: what parse + check + emit costs for typical and worst-case
//! filters, and emission alone for an already compiled rule (what a request pays once rules
//! are cached per schema). Plain timing loops, reported per iteration.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use domain::collection::{CollectionType, users_collection};
use domain::field::{AutodateOptions, RelationOptions, SelectOptions, TextOptions};
use domain::{AuthContext, Collection, Dialect, Field, FieldKind, Schema};
use rules::{Compiled, Mode, RequestContext};

fn text(name: &str) -> Field {
    Field::new(name, FieldKind::Text(TextOptions::default()))
}

fn relation(name: &str, target: &str, max_select: u64) -> Field {
    Field::new(
        name,
        FieldKind::Relation(RelationOptions {
            collection_id: target.to_owned(),
            max_select,
            ..RelationOptions::default()
        }),
    )
}

fn collection(id: &str, name: &str, fields: Vec<Field>) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Base, name);
    collection.id = id.to_owned();
    collection.fields.extend(fields);
    collection
}

fn schema() -> Arc<Schema> {
    let users = users_collection("2026-01-01 00:00:00.000Z");
    let teams = collection("teams0000000001", "teams", vec![text("name")]);
    let posts = collection(
        "posts0000000001",
        "posts",
        vec![
            text("title"),
            Field::new("published", FieldKind::Bool(Default::default())),
            relation("author", &users.id, 1),
            relation("team", "teams0000000001", 1),
            relation("editors", &users.id, 5),
            Field::new(
                "tags",
                FieldKind::Select(SelectOptions {
                    max_select: 3,
                    values: vec!["a".into(), "b".into(), "c".into()],
                    ..SelectOptions::default()
                }),
            ),
            Field::new(
                "created",
                FieldKind::Autodate(AutodateOptions {
                    on_create: true,
                    on_update: false,
                }),
            ),
        ],
    );
    let comments = collection(
        "comments0000001",
        "comments",
        vec![relation("post", "posts0000000001", 1), text("text")],
    );
    Arc::new(Schema::new(vec![users, teams, posts, comments]))
}

fn per_iteration(iterations: u32, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
}

fn main() {
    let schema = schema();
    let Some(posts) = schema.get("posts").cloned() else {
        eprintln!("the bench schema has no posts collection");
        std::process::exit(1);
    };
    let context = RequestContext::new(AuthContext::Guest);
    let worst = vec!["(title ~ 'x' || author.name = 'y' || comments_via_post.text ?~ 'z')"; 45]
        .join(" && ");
    let cases = [
        ("simple", "title = 'hello'".to_owned()),
        (
            "typical",
            "published = true && (author = @request.auth.id || editors ?= @request.auth.id) && created > @todayStart".to_owned(),
        ),
        (
            "relations",
            "author.name ~ 'a' && team.name = 'x' && comments_via_post.text ?~ 'great' && tags:each ?= 'a'".to_owned(),
        ),
        ("worst (135 comparisons, joins)", worst),
    ];
    println!(
        "{:<32} {:>6}  {:>18}  {:>12}",
        "filter", "bytes", "parse+check+emit", "emit only"
    );
    for (label, text) in &cases {
        let compiled = match Compiled::compile(&schema, &posts, text, Mode::Rule) {
            Ok(compiled) => compiled,
            Err(error) => {
                eprintln!("{label}: does not compile: {error:?}");
                std::process::exit(1);
            }
        };
        let full = per_iteration(2000, || {
            if let Ok(compiled) = Compiled::compile(&schema, &posts, text, Mode::Rule) {
                black_box(compiled.to_sql(Dialect::Sqlite, &context));
            }
        });
        let emit = per_iteration(2000, || {
            black_box(compiled.to_sql(Dialect::Sqlite, &context));
        });
        println!(
            "{label:<32} {:>6}  {full:>15.1} µs  {emit:>9.1} µs",
            text.len()
        );
    }
}
