//! The SQL console (`Store::run_sql`): statements in one transaction, all or nothing, refused
//! when they would change a collection's table, and never a record write (no change-log
//! entries). The statements are SQL every engine speaks.

use domain::store::{SqlLimits, SqlOutcome};
use serde_json::json;

use crate::Engine;
use crate::support::{Fixture, base, open, text};

const LIMITS: SqlLimits = SqlLimits {
    max_rows: 100,
    max_bytes: 1 << 20,
};

async fn run(fx: &Fixture, sql: &str) -> SqlOutcome {
    fx.store
        .run_sql(sql, LIMITS)
        .await
        .unwrap_or_else(|e| panic!("{}: {sql} answered: {e:?}", fx.engine))
}

pub async fn sql_console_statements_are_all_or_nothing(engine: &Engine) {
    let fx = open(engine).await;
    fx.create_collection(base("items", vec![text("name")]))
        .await;
    for name in ["a", "b", "c"] {
        fx.create("items", json!({ "name": name })).await;
    }
    let seq = fx.last_seq().await;
    let outcome = run(&fx, "UPDATE items SET name = 'x' WHERE name = 'a'").await;
    let SqlOutcome::Done(output) = outcome else {
        panic!("{}: an update runs: {outcome:?}", fx.engine);
    };
    assert_eq!(output.affected_rows, 1);
    assert_eq!(fx.texts("items", "name", "").await, ["b", "c", "x"]);
    assert_eq!(
        fx.last_seq().await,
        seq,
        "console writes are not record writes"
    );

    let SqlOutcome::Done(output) = run(&fx, "SELECT name, 1 AS one FROM items ORDER BY name").await
    else {
        panic!("{}: a select runs", fx.engine);
    };
    let columns: Vec<&str> = output.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["name", "one"]);
    assert_eq!(
        output.rows,
        [
            [Some("b".to_owned()), Some("1".to_owned())],
            [Some("c".to_owned()), Some("1".to_owned())],
            [Some("x".to_owned()), Some("1".to_owned())],
        ],
        "every value as text"
    );

    let outcome = run(&fx, "UPDATE items SET name = 'y'; SELECT nope FROM nowhere").await;
    assert!(matches!(outcome, SqlOutcome::Failed(_)), "{outcome:?}");
    assert_eq!(
        fx.texts("items", "name", "").await,
        ["b", "c", "x"],
        "the first statement was rolled back"
    );
    for refused in [
        "DROP TABLE items",
        "ALTER TABLE items ADD COLUMN extra TEXT",
    ] {
        let outcome = run(&fx, refused).await;
        assert!(
            matches!(outcome, SqlOutcome::Failed(_)),
            "{refused}: {outcome:?}"
        );
    }
    assert_eq!(
        fx.count("items").await,
        3,
        "the collection's table is intact"
    );
    fx.create("items", json!({"name": "d"})).await;
}
