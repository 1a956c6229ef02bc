//! A speed note without `cargo bench`: how long parse + check + emit takes for typical and
//! worst-case filters, and emission alone for an already compiled rule (what a request pays
//! once rules are cached). Run with
//! `cargo test -p plinth-rules --release -- --ignored --nocapture speed_note`.

use std::time::Instant;

use domain::Dialect;

use super::support::Fixture;
use crate::{Compiled, Mode};

fn per_iteration(iterations: u32, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
}

#[test]
#[ignore = "a measurement, not a check; run in release with --ignored --nocapture"]
fn speed_note() {
    let f = Fixture::new();
    let posts = f.collection("posts");
    let ctx = f.ctx("alice");
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
    for (label, text) in &cases {
        let compile = per_iteration(2000, || {
            let compiled =
                Compiled::compile(&f.schema, &posts, text, Mode::Rule).expect("compiles");
            std::hint::black_box(compiled.to_sql(Dialect::Sqlite, &ctx));
        });
        let compiled = Compiled::compile(&f.schema, &posts, text, Mode::Rule).expect("compiles");
        let emit = per_iteration(2000, || {
            std::hint::black_box(compiled.to_sql(Dialect::Sqlite, &ctx));
        });
        println!(
            "{label:<32} {len:>5} bytes  parse+check+emit {compile:>8.1} µs  emit only {emit:>7.1} µs",
            len = text.len()
        );
        assert!(compile > 0.0 && emit > 0.0);
    }
}
