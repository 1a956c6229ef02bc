//! `POST /api/sql` end to end: PocketBase's body, validation, shapes and errors; the bounds
//! (5,000 bytes, 1,000 rows, the query timeout); statements that would stale the schema refused
//! while the server keeps serving the collection.

use serde_json::{Value, json};

use crate::support::{Launch, TestApp, assert_error};

async fn sql(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    app.post_json("/api/sql", Some(token), json!({ "query": query }))
        .await
}

#[tokio::test]
async fn superusers_run_queries_and_writes_in_pocketbases_shapes() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;

    let (status, body) = sql(&app, "", "select 1").await;
    assert_error(
        status,
        &body,
        401,
        "The request requires valid record authorization token.",
    );

    let (status, body) = sql(&app, &token, "select 1 as a, 2.5 as b, null as c, 'x' as d").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["affectedRows"], 0);
    assert!(body["execTime"].is_u64(), "{body}");
    assert_eq!(
        body["columns"],
        json!([
            {"name": "a", "type": "", "nullable": true},
            {"name": "b", "type": "", "nullable": true},
            {"name": "c", "type": "", "nullable": true},
            {"name": "d", "type": "", "nullable": true},
        ])
    );
    assert_eq!(body["rows"], json!([["1", "2.5", null, "x"]]));

    let (status, body) = sql(
        &app,
        &token,
        "create table t1 (id text primary key, n int); insert into t1 values ('a', 1), ('b', 2)",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"execTime": body["execTime"], "affectedRows": 2, "columns": [], "rows": []})
    );
    let (_, body) = sql(&app, &token, "update t1 set n = n + 1 returning *").await;
    assert_eq!(
        (body["affectedRows"].clone(), body["rows"].clone()),
        (json!(2), json!([]))
    );
    let (_, body) = sql(
        &app,
        &token,
        "/* a query */ update t1 set n = n + 1 returning id, n",
    )
    .await;
    assert_eq!(body["rows"], json!([["a", "3"], ["b", "4"]]));
    assert_eq!(
        body["columns"][1],
        json!({"name": "n", "type": "INT", "nullable": true})
    );
    let (_, body) = sql(&app, &token, "select 5; select id from t1 order by id").await;
    assert_eq!(
        body["rows"],
        json!([["a"], ["b"]]),
        "the last statement answers"
    );

    let (status, body) = app
        .post_json(
            "/api/sql?fields=rows",
            Some(&token),
            json!({"QUERY": "select 7"}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"rows": [["7"]]})));
}

#[tokio::test]
async fn bad_input_and_bad_sql_answer_400_and_write_nothing() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for body in [json!({}), json!({"query": ""}), json!({"query": null})] {
        let (status, body) = app.post_json("/api/sql", Some(&token), body).await;
        let data = assert_error(
            status,
            &body,
            400,
            "An error occurred while validating the submitted data.",
        );
        assert_eq!(
            data,
            json!({"query": {"code": "validation_required", "message": "Cannot be blank."}})
        );
    }
    let (status, body) = app
        .post_json("/api/sql", Some(&token), json!({"query": 1}))
        .await;
    assert_error(
        status,
        &body,
        400,
        "An error occurred while loading the submitted data.",
    );
    let (status, body) = sql(&app, &token, "   ").await;
    assert_error(
        status,
        &body,
        400,
        "Failed to execute query. Raw error:\nempty query.",
    );
    let (status, body) = sql(&app, &token, "selec 1").await;
    assert_error(
        status,
        &body,
        400,
        "Failed to execute query. Raw error:\nSQL logic error: near \"selec\": syntax error (1).",
    );

    // 5,000 bytes pass; one more (here a two-byte character) is refused.
    let at_bound = format!("select '{}'", "é".repeat(2495));
    assert_eq!(at_bound.len(), 4999);
    assert_eq!(sql(&app, &token, &at_bound).await.0, 200);
    let past = format!("select '{}'", "é".repeat(2496));
    let (status, body) = sql(&app, &token, &past).await;
    let data = assert_error(
        status,
        &body,
        400,
        "An error occurred while validating the submitted data.",
    );
    assert_eq!(
        data["query"],
        json!({"code": "validation_length_too_long", "message": "The length must be no more than 5000.", "params": {"max": 5000, "min": 0}})
    );

    let (status, body) = sql(
        &app,
        &token,
        "create table t2 (x); insert into t2 values (1); insert into nope values (1)",
    )
    .await;
    assert_error(
        status,
        &body,
        400,
        "Failed to execute query. Raw error:\nSQL logic error: no such table: nope (1).",
    );
    let (_, body) = sql(
        &app,
        &token,
        "select count(*) from sqlite_schema where name = 't2'",
    )
    .await;
    assert_eq!(body["rows"], json!([["0"]]), "all or nothing");
}

#[tokio::test]
async fn at_most_1000_rows_come_back() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    for (n, expected) in [(999, 999), (1000, 1000), (1001, 1000)] {
        let query = format!(
            "with recursive c(x) as (select 1 union all select x+1 from c where x<{n}) select x from c"
        );
        let (status, body) = sql(&app, &token, &query).await;
        assert_eq!(status, 200, "{body}");
        let rows = body["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), expected);
        assert_eq!(rows[expected - 1], json!([expected.to_string()]));
    }
}

#[tokio::test]
async fn the_query_timeout_bounds_a_runaway_query() {
    let launch = Launch {
        args: vec!["--queryTimeout=1".into()],
        ..Launch::default()
    };
    let app = TestApp::spawn_launch(&launch).await;
    let token = app.admin_token().await;
    let runaway =
        "with recursive c(x) as (select 1 union all select x+1 from c) select count(*) from c";
    let (status, body) = sql(&app, &token, runaway).await;
    assert_error(
        status,
        &body,
        400,
        "Failed to execute query. Raw error:\ninterrupted: the query ran past the query timeout (--queryTimeout).",
    );
    assert_eq!(
        sql(&app, &token, "select 1").await.0,
        200,
        "the server still answers"
    );
}

#[tokio::test]
async fn statements_that_would_stale_the_schema_are_refused_and_records_writes_are_raw() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let (status, body) = app
        .post_json(
            "/api/collections",
            Some(&token),
            json!({"name": "posts", "type": "base", "fields": [{"name": "title", "type": "text"}],
                   "listRule": "", "viewRule": ""}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, post) = app
        .post_json(
            "/api/collections/posts/records",
            Some(&token),
            json!({"title": "first"}),
        )
        .await;
    assert_eq!(status, 200, "{post}");

    for (query, part) in [
        ("drop table posts", "belongs to a collection"),
        (
            "alter table posts add column extra text",
            "belongs to a collection",
        ),
        (
            "alter table posts drop column title",
            "belongs to a collection",
        ),
        (
            "create index idx_title on posts (title)",
            "belongs to a collection",
        ),
        (
            "update _collections set name = 'renamed' where name = 'posts'",
            "bookkeeping",
        ),
        ("delete from _params", "bookkeeping"),
        ("begin", "transaction statements"),
        ("pragma foreign_keys = off", "PRAGMA foreign_keys"),
    ] {
        let (status, body) = sql(&app, &token, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["message"].as_str().expect("message");
        assert!(
            message.starts_with("Failed to execute query. Raw error:\n"),
            "{message}"
        );
        assert!(message.contains(part), "{query}: {message}");
    }
    // The collection still works with its schema.
    let (status, body) = app.get("/api/collections/posts/records", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["title"], "first");

    // A raw update of a record is a raw write: it lands, as in PocketBase.
    let (status, body) = sql(&app, &token, "update posts set title = 'raw'").await;
    assert_eq!(
        (status, body["affectedRows"].clone()),
        (200, json!(1)),
        "{body}"
    );
    let id = post["id"].as_str().expect("id");
    let (_, record) = app
        .get(&format!("/api/collections/posts/records/{id}"), None)
        .await;
    assert_eq!(record["title"], "raw");
}

#[tokio::test]
async fn the_values_returned_are_capped_at_32_mib() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let at_bound = "select printf('%.*c', 33554432, 'x') as big";
    let (status, body) = sql(&app, &token, at_bound).await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"][0][0].as_str().map(str::len), Some(32 << 20));
    let past = "select printf('%.*c', 33554431, 'x'), 'yz'";
    let (status, body) = sql(&app, &token, past).await;
    assert_error(
        status,
        &body,
        400,
        "Failed to execute query. Raw error:\nthe result holds more than 32 MiB of values; select fewer rows or columns.",
    );
}
