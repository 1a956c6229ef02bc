//! Text snapshots of the emitted SQL for both dialects, one per construct. No database:
//! these pin the exact shape (and parameter order) of what the stores will splice in.

use domain::Dialect;
use serde_json::json;

use super::support::Fixture;
use crate::{Compiled, Mode};

#[allow(clippy::too_many_arguments)]
fn snapshot(
    f: &Fixture,
    (role, collection, text): (&str, &str, &str),
    sqlite: &str,
    sqlite_params: &str,
    postgres: &str,
    postgres_params: &str,
) {
    let mode = match (role, collection) {
        (_, "rt") => Mode::Rule,
        ("su", _) => Mode::SuperuserFilter,
        _ => Mode::Filter,
    };
    let compiled = Compiled::compile(&f.schema, &f.collection(collection), text, mode).expect(text);
    let body = json!({"title": "t", "tags": ["a"], "owner": "u1", "owners": ["u1", "u2"]});
    let ctx = f
        .ctx(role)
        .with_query("q", "Hi")
        .with_body(body.as_object().cloned().unwrap_or_default());
    let got = compiled.to_sql(Dialect::Sqlite, &ctx);
    assert_eq!(got.sql, sqlite, "sqlite: {text}");
    assert_eq!(
        format!("{:?}", got.params),
        sqlite_params,
        "sqlite params: {text}"
    );
    let got = compiled.to_sql(Dialect::Postgres, &ctx);
    assert_eq!(got.sql, postgres, "postgres: {text}");
    assert_eq!(
        format!("{:?}", got.params),
        postgres_params,
        "postgres params: {text}"
    );
}

#[test]
fn both_dialects() {
    let f = Fixture::new();
    snapshot(
        &f,
        (
            "su",
            "posts",
            r#"status = '' || status != '' || title = body || title != 'x'"#,
        ),
        r#"(("posts"."status" = ? OR "posts"."status" IS NULL) OR ("posts"."status" IS NOT ? AND "posts"."status" IS NOT NULL) OR COALESCE("posts"."title", '') = COALESCE("posts"."body", '') OR "posts"."title" IS NOT ?)"#,
        r#"[Text(""), Text(""), Text("x")]"#,
        r#"((("posts"."status" = (CAST(? AS text)) COLLATE "C") OR ("posts"."status" IS NULL)) OR (("posts"."status" IS DISTINCT FROM (CAST(? AS text)) COLLATE "C") AND NOT ("posts"."status" IS NULL)) OR (COALESCE("posts"."title", '') = (COALESCE("posts"."body", '')) COLLATE "C") OR ("posts"."title" IS DISTINCT FROM (CAST(? AS text)) COLLATE "C"))"#,
        r#"[Text(""), Text(""), Text("x")]"#,
    );
    snapshot(
        &f,
        (
            "su",
            "posts",
            r#"title ~ 'a%' && title !~ body && views >= 1.5"#,
        ),
        r#"(plinth_like("posts"."title", ?) AND (NOT plinth_like("posts"."title", ('%' || "posts"."body" || '%'))) AND "posts"."views" >= ?)"#,
        r#"[Text("a%"), Real(1.5)]"#,
        r#"(LOWER(("posts"."title") COLLATE "C") LIKE CAST(? AS text) ESCAPE '\' AND LOWER(("posts"."title") COLLATE "C") NOT LIKE LOWER((('%' || "posts"."body" || '%')) COLLATE "C") ESCAPE '\' AND ("posts"."views" >= CAST(? AS double precision)))"#,
        r#"[Text("a%"), Real(1.5)]"#,
    );
    snapshot(
        &f,
        (
            "su",
            "posts",
            r#"meta.arr.1 = 2 && tags:length > 1 && published = true"#,
        ),
        r#"((CASE WHEN json_valid("posts"."meta") THEN json_extract("posts"."meta", ?) ELSE json_extract(json_object('pb', "posts"."meta"), ?) END) IS ? AND json_array_length(CASE WHEN json_valid("posts"."tags") THEN (CASE WHEN json_type("posts"."tags") = 'array' THEN "posts"."tags" ELSE json_array("posts"."tags") END) WHEN "posts"."tags" = '' OR "posts"."tags" IS NULL THEN json_array() ELSE json_array("posts"."tags") END) > ? AND "posts"."published" = 1)"#,
        r#"[Text("$.arr[1]"), Text("$.pb.arr[1]"), Real(2.0), Real(1.0)]"#,
        r#"(((SELECT (CASE WHEN (COALESCE(jsonb_typeof("_v"), 'null') = 'null') THEN NULL ELSE ROW((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END), CAST((CASE jsonb_typeof("_v") WHEN 'number' THEN CAST(("_v" #>> '{}') AS double precision) WHEN 'boolean' THEN (CASE WHEN "_v" = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END) AS double precision), (CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS text)) COLLATE "C") END) FROM (SELECT NULLIF(jsonb_extract_path("posts"."meta", CAST(? AS text), CAST(? AS text)), 'null'::jsonb) AS "_v") AS "_b") IS NOT DISTINCT FROM (CASE WHEN FALSE THEN NULL ELSE ROW(1, CAST(CAST(? AS double precision) AS double precision), (CAST('' AS text)) COLLATE "C") END)) AND ((CASE WHEN jsonb_typeof("posts"."tags") = 'array' THEN jsonb_array_length("posts"."tags") WHEN "posts"."tags" IS NULL THEN 0 ELSE 1 END) > CAST(? AS double precision)) AND (CAST("posts"."published" AS integer) = CAST(TRUE AS integer)))"#,
        r#"[Text("arr"), Text("1"), Real(2.0), Real(1.0)]"#,
    );
    snapshot(
        &f,
        ("su", "posts", r#"author.name = 'A'"#),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = "posts"."author" WHERE ("__s0j0"."name" = ?))"#,
        r#"[Text("A")]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = "posts"."author" WHERE (("__s0j0"."name" = (CAST(? AS text)) COLLATE "C")))"#,
        r#"[Text("A")]"#,
    );
    snapshot(
        &f,
        ("su", "posts", r#"links_via_posts.label ?= 'L'"#),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "links" AS "__s0j0" ON "posts"."id" IN (SELECT "value" FROM json_each((CASE WHEN json_valid("__s0j0"."posts") THEN (CASE WHEN json_type("__s0j0"."posts") = 'array' THEN "__s0j0"."posts" ELSE json_array("__s0j0"."posts") END) ELSE json_array("__s0j0"."posts") END))) WHERE ("__s0j0"."label" = ?))"#,
        r#"[Text("L")]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "links" AS "__s0j0" ON "__s0j0"."posts" @> jsonb_build_array("posts"."id") WHERE (("__s0j0"."label" = (CAST(? AS text)) COLLATE "C")))"#,
        r#"[Text("L")]"#,
    );
    snapshot(
        &f,
        ("su", "posts", r#"@collection.comments:c.post ?= id"#),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "comments" AS "__s0j0" ON 1 WHERE (COALESCE("__s0j0"."post", '') = COALESCE("posts"."id", '')))"#,
        r#"[]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "comments" AS "__s0j0" ON TRUE WHERE ((COALESCE("__s0j0"."post", '') = (COALESCE("posts"."id", '')) COLLATE "C")))"#,
        r#"[]"#,
    );
    snapshot(
        &f,
        ("su", "posts", r#"geoDistance(loc.lon, loc.lat, 1, 2) < 5"#),
        r#"(6371 * acos(min(1, max(-1, cos(radians((CASE WHEN json_valid("posts"."loc") THEN json_extract("posts"."loc", ?) ELSE json_extract(json_object('pb', "posts"."loc"), ?) END))) * cos(radians(?)) * cos(radians(?) - radians((CASE WHEN json_valid("posts"."loc") THEN json_extract("posts"."loc", ?) ELSE json_extract(json_object('pb', "posts"."loc"), ?) END))) + sin(radians((CASE WHEN json_valid("posts"."loc") THEN json_extract("posts"."loc", ?) ELSE json_extract(json_object('pb', "posts"."loc"), ?) END))) * sin(radians(?)))))) < ?"#,
        r#"[Text("$.lat"), Text("$.pb.lat"), Real(2.0), Real(1.0), Text("$.lon"), Text("$.pb.lon"), Text("$.lat"), Text("$.pb.lat"), Real(2.0), Real(5.0)]"#,
        r#"((6371 * acos(LEAST(1, GREATEST(-1, cos(radians((SELECT (CASE WHEN (COALESCE(jsonb_typeof("_v"), 'null') = 'null') THEN NULL WHEN (CASE WHEN ((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) = 2 AND (CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) ~ '^[ \t\n\v\f\r]*[+-]{0,1}([0-9]+\.{0,1}[0-9]*|\.[0-9]+)([eE][+-]{0,1}[0-9]{1,3}){0,1}[ \t\n\v\f\r]*$') THEN 1 ELSE (CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) END) = 1 THEN (CASE WHEN ((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) = 2 AND (CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) ~ '^[ \t\n\v\f\r]*[+-]{0,1}([0-9]+\.{0,1}[0-9]*|\.[0-9]+)([eE][+-]{0,1}[0-9]{1,3}){0,1}[ \t\n\v\f\r]*$') THEN (CASE WHEN abs(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric)) > 1.7976931348623157e308 THEN (CASE WHEN CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric) > 0 THEN CAST('Infinity' AS double precision) ELSE CAST('-Infinity' AS double precision) END) WHEN abs(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric)) < 2.4703282292062328e-324 THEN CAST(0 AS double precision) ELSE CAST(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric) AS double precision) END) ELSE (CASE jsonb_typeof("_v") WHEN 'number' THEN CAST(("_v" #>> '{}') AS double precision) WHEN 'boolean' THEN (CASE WHEN "_v" = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END) END) END) FROM (SELECT NULLIF(jsonb_extract_path("posts"."loc", CAST(? AS text)), 'null'::jsonb) AS "_v") AS "_b"))) * cos(radians(CAST(? AS double precision))) * cos(radians(CAST(? AS double precision)) - radians((SELECT (CASE WHEN (COALESCE(jsonb_typeof("_v"), 'null') = 'null') THEN NULL WHEN (CASE WHEN ((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) = 2 AND (CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) ~ '^[ \t\n\v\f\r]*[+-]{0,1}([0-9]+\.{0,1}[0-9]*|\.[0-9]+)([eE][+-]{0,1}[0-9]{1,3}){0,1}[ \t\n\v\f\r]*$') THEN 1 ELSE (CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) END) = 1 THEN (CASE WHEN ((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) = 2 AND (CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) ~ '^[ \t\n\v\f\r]*[+-]{0,1}([0-9]+\.{0,1}[0-9]*|\.[0-9]+)([eE][+-]{0,1}[0-9]{1,3}){0,1}[ \t\n\v\f\r]*$') THEN (CASE WHEN abs(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric)) > 1.7976931348623157e308 THEN (CASE WHEN CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric) > 0 THEN CAST('Infinity' AS double precision) ELSE CAST('-Infinity' AS double precision) END) WHEN abs(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric)) < 2.4703282292062328e-324 THEN CAST(0 AS double precision) ELSE CAST(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric) AS double precision) END) ELSE (CASE jsonb_typeof("_v") WHEN 'number' THEN CAST(("_v" #>> '{}') AS double precision) WHEN 'boolean' THEN (CASE WHEN "_v" = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END) END) END) FROM (SELECT NULLIF(jsonb_extract_path("posts"."loc", CAST(? AS text)), 'null'::jsonb) AS "_v") AS "_b"))) + sin(radians((SELECT (CASE WHEN (COALESCE(jsonb_typeof("_v"), 'null') = 'null') THEN NULL WHEN (CASE WHEN ((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) = 2 AND (CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) ~ '^[ \t\n\v\f\r]*[+-]{0,1}([0-9]+\.{0,1}[0-9]*|\.[0-9]+)([eE][+-]{0,1}[0-9]{1,3}){0,1}[ \t\n\v\f\r]*$') THEN 1 ELSE (CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) END) = 1 THEN (CASE WHEN ((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END) = 2 AND (CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) ~ '^[ \t\n\v\f\r]*[+-]{0,1}([0-9]+\.{0,1}[0-9]*|\.[0-9]+)([eE][+-]{0,1}[0-9]{1,3}){0,1}[ \t\n\v\f\r]*$') THEN (CASE WHEN abs(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric)) > 1.7976931348623157e308 THEN (CASE WHEN CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric) > 0 THEN CAST('Infinity' AS double precision) ELSE CAST('-Infinity' AS double precision) END) WHEN abs(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric)) < 2.4703282292062328e-324 THEN CAST(0 AS double precision) ELSE CAST(CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS numeric) AS double precision) END) ELSE (CASE jsonb_typeof("_v") WHEN 'number' THEN CAST(("_v" #>> '{}') AS double precision) WHEN 'boolean' THEN (CASE WHEN "_v" = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END) END) END) FROM (SELECT NULLIF(jsonb_extract_path("posts"."loc", CAST(? AS text)), 'null'::jsonb) AS "_v") AS "_b"))) * sin(radians(CAST(? AS double precision))))))) < CAST(? AS double precision))"#,
        r#"[Text("lat"), Real(2.0), Real(1.0), Text("lon"), Text("lat"), Real(2.0), Real(5.0)]"#,
    );
    snapshot(
        &f,
        (
            "su",
            "posts",
            r#"strftime('%Y-%m', created, 'start of month') = '2024-01'"#,
        ),
        r#"strftime(?, "posts"."created", ?) = ?"#,
        r#"[Text("%Y-%m"), Text("start of month"), Text("2024-01")]"#,
        r#"(to_char((CASE WHEN ("posts"."created" ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$') THEN (CASE WHEN (CAST(NULLIF(regexp_replace(substr("posts"."created", 6, 2), '[^0-9]', '', 'g'), '') AS integer) BETWEEN 1 AND 12) AND (CAST(NULLIF(regexp_replace(substr("posts"."created", 9, 2), '[^0-9]', '', 'g'), '') AS integer) BETWEEN 1 AND 31) AND (COALESCE(CAST(NULLIF(regexp_replace(substr("posts"."created", 12, 2), '[^0-9]', '', 'g'), '') AS integer), 0) <= 24) AND (COALESCE(CAST(NULLIF(regexp_replace(substr("posts"."created", 15, 2), '[^0-9]', '', 'g'), '') AS integer), 0) <= 59) THEN (TIMESTAMP '2000-01-01 00:00:00' + make_interval(years => CAST(NULLIF(regexp_replace(substr("posts"."created", 1, 4), '[^0-9]', '', 'g'), '') AS integer) - 2000, months => CAST(NULLIF(regexp_replace(substr("posts"."created", 6, 2), '[^0-9]', '', 'g'), '') AS integer) - 1, days => CAST(NULLIF(regexp_replace(substr("posts"."created", 9, 2), '[^0-9]', '', 'g'), '') AS integer) - 1, hours => COALESCE(CAST(NULLIF(regexp_replace(substr("posts"."created", 12, 2), '[^0-9]', '', 'g'), '') AS integer), 0), mins => COALESCE(CAST(NULLIF(regexp_replace(substr("posts"."created", 15, 2), '[^0-9]', '', 'g'), '') AS integer), 0), secs => COALESCE(CAST(substring("posts"."created" from '^.{16}:([0-9]{2}(\.[0-9]+)?)') AS double precision), 0)) - COALESCE(CAST(substring("posts"."created" from '([+-][0-9]{2}:[0-9]{2})$') AS interval), INTERVAL '0 seconds')) END) END), ?) = (CAST(? AS text)) COLLATE "C")"#,
        r#"[Text("YYYY\"-\"MM"), Text("2024-01")]"#,
    );
    snapshot(
        &f,
        (
            "su",
            "posts",
            r#"created > @yesterday && title:lower = @request.query.q:lower"#,
        ),
        r#"("posts"."created" > ? AND LOWER("posts"."title") = LOWER(?))"#,
        r#"[Text("2026-11-27 04:30:00.000Z"), Text("Hi")]"#,
        r#"(("posts"."created" > (CAST(? AS text)) COLLATE "C") AND (LOWER(("posts"."title") COLLATE "C") = (CAST(? AS text)) COLLATE "C"))"#,
        r#"[Text("2026-11-27 04:30:00.000Z"), Text("hi")]"#,
    );
    snapshot(
        &f,
        ("guest", "posts", r#"author.name = 'A'"#),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = "posts"."author" WHERE ("__s0j0"."name" = ?) AND (("__s0j0"."id" = '' OR "__s0j0"."id" IS NULL) OR (("__s0j0"."id" = ? OR "__s0j0"."id" IS NULL))))"#,
        r#"[Text("A"), Text("")]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = "posts"."author" WHERE (("__s0j0"."name" = (CAST(? AS text)) COLLATE "C")) AND (("__s0j0"."id" = '' OR "__s0j0"."id" IS NULL) OR ((("__s0j0"."id" = (CAST(? AS text)) COLLATE "C") OR ("__s0j0"."id" IS NULL)))))"#,
        r#"[Text("A"), Text("")]"#,
    );
    snapshot(
        &f,
        (
            "su",
            "rt",
            r#"@request.body.title:changed = false && @request.body.tags:each ?= 'a'"#,
        ),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN json_each(?) AS "__s0j0" WHERE (((? IS NOT "rt"."title") IS 0 AND "__s0j0"."value" = ?)))"#,
        r#"[Text("[\"a\"]"), Text("t"), Text("a")]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN LATERAL jsonb_array_elements(CAST(? AS jsonb)) AS "__s0j0"("value") ON TRUE WHERE (((CAST((CAST(? AS text) IS DISTINCT FROM ("rt"."title") COLLATE "C") AS integer) IS NOT DISTINCT FROM CAST(FALSE AS integer)) AND ((SELECT (CASE WHEN (COALESCE(jsonb_typeof("_v"), 'null') = 'null') THEN NULL ELSE ROW((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END), CAST((CASE jsonb_typeof("_v") WHEN 'number' THEN CAST(("_v" #>> '{}') AS double precision) WHEN 'boolean' THEN (CASE WHEN "_v" = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END) AS double precision), (CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS text)) COLLATE "C") END) FROM (SELECT "__s0j0"."value" AS "_v") AS "_b") = (CASE WHEN FALSE THEN NULL ELSE ROW(2, CAST(0 AS double precision), (CAST(CAST(? AS text) AS text)) COLLATE "C") END)))))"#,
        r#"[Text("[\"a\"]"), Text("t"), Text("a")]"#,
    );
}

/// The dialect arms of joins and lists that `both_dialects` does not reach: items of a
/// multi-valued column, a multiple forward relation, a plain comparison with a list column,
/// and relations named by request values (single and multiple).
#[test]
fn both_dialects_of_lists_and_bound_relations() {
    let f = Fixture::new();
    snapshot(
        &f,
        ("su", "posts", r#"tags:each ?= 'a'"#),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN json_each((CASE WHEN json_valid("posts"."tags") THEN (CASE WHEN json_type("posts"."tags") = 'array' THEN "posts"."tags" ELSE json_array("posts"."tags") END) ELSE json_array("posts"."tags") END)) AS "__s0j0" WHERE ("__s0j0"."value" = ?))"#,
        r#"[Text("a")]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN LATERAL jsonb_array_elements_text((CASE WHEN jsonb_typeof("posts"."tags") = 'array' THEN "posts"."tags" ELSE jsonb_build_array("posts"."tags") END)) AS "__s0j0"("value") ON TRUE WHERE (("__s0j0"."value" = (CAST(? AS text)) COLLATE "C")))"#,
        r#"[Text("a")]"#,
    );
    snapshot(
        &f,
        ("su", "posts", r#"editors.name ?= 'A'"#),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN json_each((CASE WHEN json_valid("posts"."editors") THEN (CASE WHEN json_type("posts"."editors") = 'array' THEN "posts"."editors" ELSE json_array("posts"."editors") END) ELSE json_array("posts"."editors") END)) AS "__s0j0e" LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = "__s0j0e"."value" WHERE ("__s0j0"."name" = ?))"#,
        r#"[Text("A")]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN LATERAL jsonb_array_elements_text((CASE WHEN jsonb_typeof("posts"."editors") = 'array' THEN "posts"."editors" ELSE jsonb_build_array("posts"."editors") END)) AS "__s0j0e"("value") ON TRUE LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = "__s0j0e"."value" WHERE (("__s0j0"."name" = (CAST(? AS text)) COLLATE "C")))"#,
        r#"[Text("A")]"#,
    );
    snapshot(
        &f,
        ("su", "posts", r#"tags = 'a'"#),
        r#""posts"."tags" = ?"#,
        r#"[Text("a")]"#,
        r#"((SELECT (CASE WHEN (COALESCE(jsonb_typeof("_v"), 'null') = 'null') THEN NULL ELSE ROW((CASE WHEN jsonb_typeof("_v") IN ('number', 'boolean') THEN 1 ELSE 2 END), CAST((CASE jsonb_typeof("_v") WHEN 'number' THEN CAST(("_v" #>> '{}') AS double precision) WHEN 'boolean' THEN (CASE WHEN "_v" = 'true'::jsonb THEN 1 ELSE 0 END) ELSE 0 END) AS double precision), (CAST((CASE jsonb_typeof("_v") WHEN 'string' THEN ("_v" #>> '{}') WHEN 'object' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') WHEN 'array' THEN regexp_replace(CAST("_v" AS text), '("([^"\\]|\\.)*")|([,:]) ', '\1\3', 'g') ELSE '' END) AS text)) COLLATE "C") END) FROM (SELECT "posts"."tags" AS "_v") AS "_b") = (CASE WHEN FALSE THEN NULL ELSE ROW(2, CAST(0 AS double precision), (CAST(CAST(? AS text) AS text)) COLLATE "C") END))"#,
        r#"[Text("a")]"#,
    );
    snapshot(
        &f,
        ("su", "rt", r#"@request.body.owner.name = 'x'"#),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = ? WHERE ("__s0j0"."name" = ?))"#,
        r#"[Text("u1"), Text("x")]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = CAST(? AS text) WHERE (("__s0j0"."name" = (CAST(? AS text)) COLLATE "C")))"#,
        r#"[Text("u1"), Text("x")]"#,
    );
    snapshot(
        &f,
        ("su", "rt", r#"@request.body.owners.name ?= 'x'"#),
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN json_each(?) AS "__s0j0e" LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = "__s0j0e"."value" WHERE ("__s0j0"."name" = ?))"#,
        r#"[Text("[\"u1\",\"u2\"]"), Text("x")]"#,
        r#"EXISTS (SELECT 1 FROM (SELECT 1) AS "__s0jr" LEFT JOIN LATERAL jsonb_array_elements_text(CAST(? AS jsonb)) AS "__s0j0e"("value") ON TRUE LEFT JOIN "users" AS "__s0j0" ON "__s0j0"."id" = "__s0j0e"."value" WHERE (("__s0j0"."name" = (CAST(? AS text)) COLLATE "C")))"#,
        r#"[Text("[\"u1\",\"u2\"]"), Text("x")]"#,
    );
}
