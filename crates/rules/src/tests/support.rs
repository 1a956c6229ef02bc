//! The fixture the oracle observations were made on: the same collections and records as
//! the PocketBase instance, in an in-memory SQLite whose tables are declared the way
//! PocketBase (and our store) declares them. Values are inserted as a store binds them (JSON
//! as text, numbers as numbers, booleans as 0/1) so that SQLite's own column affinity decides
//! what is stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use domain::collection::{superusers_collection, users_collection};
use domain::field::{
    BasicOptions, DateOptions, FileOptions, JsonOptions, NumberOptions, RelationOptions,
    SelectOptions, TextOptions,
};
use domain::{
    AuthContext, Collection, CollectionType, Dialect, Field, FieldKind, Record, Schema,
    SqlFragment, SqlValue,
};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::{Compiled, Eval, RequestContext, Rule, compile_filter};

pub fn text(name: &str) -> Field {
    Field::new(name, FieldKind::Text(TextOptions::default()))
}

pub fn number(name: &str) -> Field {
    Field::new(name, FieldKind::Number(NumberOptions::default()))
}

pub fn boolean(name: &str) -> Field {
    Field::new(name, FieldKind::Bool(BasicOptions::default()))
}

pub fn json_field(name: &str) -> Field {
    Field::new(name, FieldKind::Json(JsonOptions::default()))
}

pub fn geo(name: &str) -> Field {
    Field::new(name, FieldKind::GeoPoint(BasicOptions::default()))
}

pub fn date(name: &str) -> Field {
    Field::new(name, FieldKind::Date(DateOptions::default()))
}

pub fn select(name: &str, max: u64, values: &[&str]) -> Field {
    Field::new(
        name,
        FieldKind::Select(SelectOptions {
            max_select: max,
            values: values.iter().map(|v| v.to_string()).collect(),
            ..SelectOptions::default()
        }),
    )
}

pub fn relation(name: &str, target: &str, max: u64) -> Field {
    Field::new(
        name,
        FieldKind::Relation(RelationOptions {
            collection_id: target.into(),
            max_select: max,
            ..RelationOptions::default()
        }),
    )
}

pub fn file(name: &str, max: u64) -> Field {
    Field::new(
        name,
        FieldKind::File(FileOptions {
            max_select: max,
            ..FileOptions::default()
        }),
    )
}

pub fn hidden(mut field: Field) -> Field {
    field.hidden = true;
    field
}

pub fn base(name: &str, list_rule: Option<&str>, fields: Vec<Field>) -> Collection {
    let mut collection = Collection::scaffold(CollectionType::Base, name);
    collection.id = domain::ids::collection_id("base", name);
    collection.list_rule = list_rule.map(str::to_owned);
    collection.fields.extend(fields);
    collection
}

pub fn id_of(name: &str) -> String {
    domain::ids::collection_id("base", name)
}

/// The oracle's collections; `comments_list_rule` varies for the list-rule guard tests.
pub fn collections(comments_list_rule: Option<&str>) -> Vec<Collection> {
    let mut users = users_collection("");
    users.fields.push(text("nick"));
    users.fields.push(relation("team", &id_of("teams"), 1));
    users.fields.push(hidden(text("note")));
    users.fields.push(json_field("prefs"));
    let superusers = superusers_collection("");
    let teams = base(
        "teams",
        Some(""),
        vec![text("name"), select("labels", 3, &["x", "y", "z"])],
    );
    let private = base("priv", None, vec![text("code")]);
    let posts = base(
        "posts",
        Some(""),
        vec![
            text("title"),
            text("body"),
            number("views"),
            boolean("published"),
            date("publishedAt"),
            select("status", 1, &["draft", "live"]),
            select("tags", 4, &["a", "b", "c", "d"]),
            relation("author", domain::collection::USERS_ID, 1),
            relation("editors", domain::collection::USERS_ID, 5),
            relation("team", &id_of("teams"), 1),
            relation("p", &id_of("priv"), 1),
            json_field("meta"),
            geo("loc"),
            file("doc", 1),
            hidden(text("secret")),
        ],
    );
    let mut posts = posts;
    posts.fields.extend(domain::collection::timestamp_fields());
    let comments = base(
        "comments",
        comments_list_rule,
        vec![
            relation("post", &id_of("posts"), 1),
            text("text"),
            number("score"),
            relation("author", domain::collection::USERS_ID, 1),
        ],
    );
    let links = base(
        "links",
        Some(""),
        vec![text("label"), relation("posts", &id_of("posts"), 3)],
    );
    let mut extras = base(
        "extras",
        Some(""),
        vec![text("info"), relation("post", &id_of("posts"), 1)],
    );
    extras.indexes = vec!["CREATE UNIQUE INDEX `idx_extras_post` ON `extras` (`post`)".into()];
    let rt = base(
        "rt",
        Some(""),
        vec![
            text("title"),
            number("n"),
            select("tags", 3, &["a", "b", "c"]),
            relation("owner", domain::collection::USERS_ID, 1),
            relation("owners", domain::collection::USERS_ID, 3),
            boolean("flag"),
        ],
    );
    vec![
        superusers, users, teams, private, posts, comments, links, extras, rt,
    ]
}

/// The oracle's records, by collection name.
pub fn records() -> BTreeMap<&'static str, Vec<Value>> {
    let mut all = BTreeMap::new();
    all.insert(
        "_superusers",
        vec![
            json!({"id": "admin", "email": "admin@example.com", "emailVisibility": false,
            "verified": true, "password": "x", "tokenKey": "k-admin",
            "created": "2026-01-01 00:00:00.000Z", "updated": "2026-01-01 00:00:00.000Z"}),
        ],
    );
    all.insert(
        "users",
        vec![
            json!({"id": "alice", "email": "alice@example.com", "emailVisibility": true,
                "verified": false, "password": "x", "tokenKey": "k-alice", "name": "Alice",
                "nick": "Al", "team": "T1", "note": "n-alice", "avatar": "",
                "prefs": {"s": "Hi", "slower": "x", "arr": [1, 2]},
                "created": "2026-11-28 04:22:10.000Z", "updated": "2026-11-28 04:22:10.000Z"}),
            json!({"id": "bob", "email": "bob@example.com", "emailVisibility": false,
                "verified": false, "password": "x", "tokenKey": "k-bob", "name": "Bob",
                "nick": "", "team": "T2", "note": "n-bob", "avatar": "", "prefs": {"s": "X"},
                "created": "2026-11-28 04:22:10.000Z", "updated": "2026-11-28 04:22:10.000Z"}),
            json!({"id": "carol", "email": "carol@example.com", "emailVisibility": true,
                "verified": false, "password": "x", "tokenKey": "k-carol", "name": "Carol",
                "nick": "C", "team": "", "note": "", "avatar": "", "prefs": null,
                "created": "2026-11-28 04:22:10.000Z", "updated": "2026-11-28 04:22:10.000Z"}),
        ],
    );
    all.insert(
        "teams",
        vec![
            json!({"id": "T1", "name": "Red", "labels": ["x", "y"]}),
            json!({"id": "T2", "name": "blue", "labels": []}),
            json!({"id": "t5", "name": "5", "labels": []}),
            json!({"id": "t50", "name": "5.0", "labels": []}),
            json!({"id": "t15", "name": "1.5", "labels": []}),
        ],
    );
    all.insert("priv", vec![json!({"id": "P1", "code": "p1"})]);
    let post = |id: &str, extra: Value| {
        let mut base = json!({"id": id, "title": "", "body": "", "views": 0, "published": false,
            "publishedAt": "", "status": "", "tags": [], "author": "", "editors": [],
            "team": "", "p": "", "meta": null, "loc": {"lon": 0, "lat": 0}, "doc": "",
            "secret": "", "created": "2026-11-28 04:22:10.000Z",
            "updated": "2026-11-28 04:22:10.000Z"});
        if let (Some(target), Value::Object(extra)) = (base.as_object_mut(), extra) {
            target.extend(extra);
        }
        base
    };
    all.insert(
        "posts",
        vec![
            post(
                "p1",
                json!({"title": "First Post", "views": 10, "published": true,
                "publishedAt": "2024-01-02 03:04:05.000Z", "status": "live", "tags": ["a", "b"],
                "author": "alice", "editors": ["alice", "bob"], "team": "T1",
                "meta": {"k": 1, "arr": [1, 2], "s": "hi"}, "loc": {"lon": 23.5, "lat": 42.1},
                "secret": "s1"}),
            ),
            post(
                "p2",
                json!({"title": "Second", "body": "50% off", "views": 5,
                "status": "draft", "tags": ["c"], "author": "bob", "editors": ["bob"],
                "meta": {"k": "x"}, "publishedAt": "2025-06-01 00:00:00.000Z"}),
            ),
            post("p3", json!({"title": "second", "body": "50 cents"})),
            post(
                "p4",
                json!({"title": "100% sure", "body": "a_b", "views": -2.5,
                "tags": ["a"], "author": "carol", "editors": ["alice"],
                "meta": {"k": 2, "arr": []}, "published": true,
                "loc": {"lon": 23.51, "lat": 42.1}}),
            ),
            post(
                "p5",
                json!({"body": "O'Reilly \"q\" \\ back", "views": 1000,
                "tags": ["a", "b", "c", "d"], "editors": ["alice", "bob", "carol"],
                "team": "T2", "meta": [1, 2, 3], "p": "P1", "status": "live"}),
            ),
        ],
    );
    all.insert(
        "comments",
        vec![
            json!({"id": "c1", "post": "p1", "text": "c1 on p1", "score": 1, "author": "alice"}),
            json!({"id": "c2", "post": "p1", "text": "c2 on p1", "score": 2, "author": "bob"}),
            json!({"id": "c3", "post": "p2", "text": "hello", "score": 5, "author": "alice"}),
            json!({"id": "c4", "post": "", "text": "orphan", "score": 0, "author": ""}),
        ],
    );
    all.insert(
        "links",
        vec![
            json!({"id": "l1", "label": "L1", "posts": ["p1", "p2"]}),
            json!({"id": "l2", "label": "L2", "posts": ["p1"]}),
        ],
    );
    all.insert(
        "extras",
        vec![
            json!({"id": "e1", "info": "E1", "post": "p1"}),
            json!({"id": "e2", "info": "E2", "post": "p2"}),
        ],
    );
    all.insert(
        "rt",
        vec![
            json!({"id": "r1", "title": "one", "n": 1, "tags": ["a"], "owner": "alice",
                "owners": ["alice", "bob"], "flag": false}),
            json!({"id": "r2", "title": "two", "n": 2, "tags": ["b", "c"], "owner": "bob",
                "owners": ["bob"], "flag": false}),
            json!({"id": "r3", "title": "three", "n": 3, "tags": [], "owner": "",
                "owners": [], "flag": false}),
        ],
    );
    all
}

/// The column declaration PocketBase (and our store) uses for a field.
pub fn column_type(field: &Field) -> &'static str {
    match &field.kind {
        _ if field.is_primary_key() => "TEXT PRIMARY KEY NOT NULL",
        FieldKind::Number(_) => "NUMERIC DEFAULT 0 NOT NULL",
        FieldKind::Bool(_) => "BOOLEAN DEFAULT FALSE NOT NULL",
        FieldKind::Json(_) => "JSON DEFAULT NULL",
        FieldKind::GeoPoint(_) => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL",
        _ if field.is_multiple() => "JSON DEFAULT '[]' NOT NULL",
        _ => "TEXT DEFAULT '' NOT NULL",
    }
}

pub fn create_table(db: &Connection, collection: &Collection) {
    let columns: Vec<String> = collection
        .fields
        .iter()
        .map(|f| format!("{} {}", domain::sql::quote_ident(&f.name), column_type(f)))
        .collect();
    let sql = format!(
        "CREATE TABLE {} ({})",
        domain::sql::quote_ident(&collection.name),
        columns.join(", ")
    );
    db.execute(&sql, []).expect("create table");
}

/// A field value as a store binds it: the one stored form (`domain::storage`).
pub fn bind_value(field: &Field, value: &Value) -> rusqlite::types::Value {
    to_sqlite(&domain::storage::stored_field_value(field, Some(value)))
}

pub fn insert(db: &Connection, collection: &Collection, record: &Value) {
    let names: Vec<String> = collection
        .fields
        .iter()
        .map(|f| domain::sql::quote_ident(&f.name))
        .collect();
    let marks = vec!["?"; names.len()].join(", ");
    let values: Vec<rusqlite::types::Value> = collection
        .fields
        .iter()
        .map(|f| bind_value(f, record.get(&f.name).unwrap_or(&f.zero_value())))
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({marks})",
        domain::sql::quote_ident(&collection.name),
        names.join(", ")
    );
    db.execute(&sql, rusqlite::params_from_iter(values))
        .expect("insert");
}

pub fn to_sqlite(value: &SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        SqlValue::Null => V::Null,
        SqlValue::Int(i) => V::Integer(*i),
        SqlValue::Real(r) => V::Real(*r),
        SqlValue::Text(t) => V::Text(t.clone()),
    }
}

/// Ids of `table` rows matching `predicate`, sorted.
pub fn select_ids(db: &Connection, table: &str, predicate: &SqlFragment) -> Vec<String> {
    let sql = format!(
        "SELECT \"id\" FROM {} WHERE {} ORDER BY \"id\"",
        domain::sql::quote_ident(table),
        predicate.sql
    );
    let mut statement = db
        .prepare(&sql)
        .unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
    let params = rusqlite::params_from_iter(predicate.params.iter().map(to_sqlite));
    let rows = statement
        .query_map(params, |row| row.get::<_, String>(0))
        .unwrap_or_else(|e| panic!("query {sql}: {e}"));
    rows.map(|r| r.expect("row")).collect()
}

/// An in-memory database with the math functions PocketBase's SQLite has built in (the
/// bundled SQLite of rusqlite is compiled without them).
pub fn open_db() -> Connection {
    use rusqlite::functions::FunctionFlags;
    let db = Connection::open_in_memory().expect("open sqlite");
    // The store's `plinth_like(text, pattern)`, answered here by SQLite's own
    // `text LIKE pattern ESCAPE '\'` on a second connection, so the oracle keeps comparing the
    // evaluator with SQLite itself (the store's implementation is checked against SQLite's
    // in the store's tests).
    let builtin = std::sync::Mutex::new(Connection::open_in_memory().expect("open sqlite"));
    db.create_scalar_function(
        "plinth_like",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let text = ctx.get::<rusqlite::types::Value>(0)?;
            let pattern = ctx.get::<rusqlite::types::Value>(1)?;
            let conn = builtin.lock().expect("builtin LIKE connection");
            conn.query_row(
                "SELECT ?1 LIKE ?2 ESCAPE '\\'",
                rusqlite::params![text, pattern],
                |row| row.get::<_, Option<bool>>(0),
            )
        },
    )
    .expect("plinth_like");
    type Math = fn(f64) -> f64;
    let math: [(&str, Math); 4] = [
        ("acos", f64::acos),
        ("cos", f64::cos),
        ("sin", f64::sin),
        ("radians", f64::to_radians),
    ];
    for (name, function) in math {
        db.create_scalar_function(
            name,
            1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            move |ctx| {
                use rusqlite::types::ValueRef;
                let x = match ctx.get_raw(0) {
                    ValueRef::Integer(i) => i as f64,
                    ValueRef::Real(r) => r,
                    ValueRef::Text(t) => match std::str::from_utf8(t)
                        .ok()
                        .and_then(|t| t.trim().parse::<f64>().ok())
                    {
                        Some(x) => x,
                        None => return Ok(None),
                    },
                    _ => return Ok(None),
                };
                let y = function(x);
                Ok(if y.is_nan() { None } else { Some(y) })
            },
        )
        .expect("register math function");
    }
    db
}

/// The instant the fixture's requests happen at.
pub fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 4, 30, 0)
        .single()
        .expect("valid instant")
}

pub struct Fixture {
    pub schema: Arc<Schema>,
    pub db: Connection,
    pub data: BTreeMap<&'static str, Vec<Value>>,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture::with_comments_rule(Some(""))
    }

    pub fn with_comments_rule(rule: Option<&str>) -> Self {
        let schema = Arc::new(Schema::new(collections(rule)));
        let db = open_db();
        let data = records();
        for collection in schema.all() {
            create_table(&db, collection);
            for record in data.get(collection.name.as_str()).into_iter().flatten() {
                insert(&db, collection, record);
            }
        }
        Fixture { schema, db, data }
    }

    pub fn collection(&self, name: &str) -> Arc<Collection> {
        self.schema.get(name).cloned().expect("collection exists")
    }

    pub fn record(&self, collection: &str, id: &str) -> Record {
        let value = self
            .data
            .get(collection)
            .and_then(|rows| rows.iter().find(|r| r["id"] == id))
            .cloned()
            .expect("record exists");
        match value {
            Value::Object(map) => Record::new(map),
            _ => unreachable!("records are objects"),
        }
    }

    /// `su`, `guest`, or a user id.
    pub fn auth(&self, role: &str) -> AuthContext {
        match role {
            "guest" => AuthContext::Guest,
            "su" => AuthContext::Record {
                collection: self.collection("_superusers"),
                record: Arc::new(self.record("_superusers", "admin")),
                refreshable: true,
            },
            user => AuthContext::Record {
                collection: self.collection("users"),
                record: Arc::new(self.record("users", user)),
                refreshable: true,
            },
        }
    }

    pub fn ctx(&self, role: &str) -> RequestContext {
        RequestContext::new(self.auth(role)).at(now())
    }

    /// Runs a client filter as the API would; `Err((status, message))` when refused.
    pub fn filter(
        &self,
        role: &str,
        collection: &str,
        filter: &str,
    ) -> Result<Vec<String>, (u16, &'static str)> {
        let ctx = self
            .ctx(role)
            .with_query("filter", filter)
            .with_query("perPage", "500");
        self.filter_with(&ctx, collection, filter)
    }

    pub fn filter_with(
        &self,
        ctx: &RequestContext,
        collection: &str,
        filter: &str,
    ) -> Result<Vec<String>, (u16, &'static str)> {
        let target = self.collection(collection);
        // The API ANDs the collection's list rule with the client filter.
        let mut parts = Vec::new();
        match Rule::compile(&self.schema, &target, target.list_rule.as_deref()) {
            Ok(Rule::Expr(rule)) if !ctx.auth.is_superuser() => parts.push(rule),
            Ok(Rule::SuperusersOnly) if !ctx.auth.is_superuser() => return Err((403, "")),
            Ok(_) => {}
            Err(e) => panic!("list rule of {collection} does not compile: {e}"),
        }
        let compiled = compile_filter(&self.schema, &target, filter, &ctx.auth)
            .map_err(|e| (e.status(), e.api_message()))?;
        parts.extend(compiled);
        Ok(self.run_all(&parts, ctx, collection))
    }

    /// Lists `collection` as the API would with a `sort` (list rule and sort filters AND-ed,
    /// ORDER BY the sort terms, then insertion order); `Err((status, message))` when refused.
    pub fn sort(
        &self,
        role: &str,
        collection: &str,
        sort: &str,
    ) -> Result<Vec<String>, (u16, &'static str)> {
        let ctx = self.ctx(role);
        let target = self.collection(collection);
        let compiled = crate::compile_sort(&self.schema, &target, sort, &ctx.auth)
            .map_err(|e| (e.status(), e.api_message()))?;
        let sorted = compiled.to_sql(Dialect::Sqlite, &ctx);
        let mut filters = sorted.filters;
        if !ctx.auth.is_superuser()
            && let Ok(Rule::Expr(rule)) =
                Rule::compile(&self.schema, &target, target.list_rule.as_deref())
        {
            filters.push(rule.to_sql(Dialect::Sqlite, &ctx));
        }
        let predicate = SqlFragment::and_all(filters).unwrap_or_else(|| SqlFragment::raw("1"));
        let mut order = SqlFragment::default();
        for term in sorted.terms {
            order.push_fragment(term.expr);
            order.push_sql(if term.descending { " DESC, " } else { " ASC, " });
        }
        let mut sql = SqlFragment::raw(format!(
            "SELECT \"id\" FROM {} WHERE ",
            domain::sql::quote_ident(collection)
        ));
        sql.push_fragment(predicate).push_sql(" ORDER BY ");
        sql.push_fragment(order).push_sql("_rowid_");
        let mut statement = self.db.prepare(&sql.sql).expect("prepare sort");
        let params = rusqlite::params_from_iter(sql.params.iter().map(to_sqlite));
        let rows = statement
            .query_map(params, |row| row.get::<_, String>(0))
            .expect("query sort");
        Ok(rows.map(|r| r.expect("row")).collect())
    }

    /// Runs a compiled expression on SQLite, checking the evaluator agrees on every record
    /// it can decide.
    pub fn run(&self, compiled: &Compiled, ctx: &RequestContext, collection: &str) -> Vec<String> {
        self.run_all(std::slice::from_ref(compiled), ctx, collection)
    }

    /// Runs expressions AND-ed together (an empty list matches everything).
    pub fn run_all(
        &self,
        parts: &[Compiled],
        ctx: &RequestContext,
        collection: &str,
    ) -> Vec<String> {
        let fragments: Vec<SqlFragment> = parts
            .iter()
            .map(|c| c.to_sql(Dialect::Sqlite, ctx))
            .collect();
        let sql = SqlFragment::and_all(fragments).unwrap_or_else(|| SqlFragment::raw("1"));
        let ids = select_ids(&self.db, collection, &sql);
        for row in self.data.get(collection).into_iter().flatten() {
            let Value::Object(map) = row.clone() else {
                continue;
            };
            let record = Record::new(map);
            let expected = ids.iter().any(|id| id == record.id());
            let mut verdict = Eval::Match;
            for part in parts {
                match part.eval(&record, ctx) {
                    Eval::NoMatch => verdict = Eval::NoMatch,
                    Eval::NeedsSql => {
                        // Row-local expressions answer in memory, except for values whose
                        // text differs between the engines (left to the database).
                        let engine_specific = record
                            .data
                            .values()
                            .any(|v| !crate::eval::same_text_on_every_engine(v));
                        assert!(
                            !part.is_row_local() || engine_specific,
                            "row-local expression fell back to SQL: {}",
                            sql.sql
                        );
                        if verdict == Eval::Match {
                            verdict = Eval::NeedsSql;
                        }
                    }
                    Eval::Match => {}
                }
            }
            match verdict {
                Eval::NeedsSql => {}
                Eval::Match => assert!(
                    expected,
                    "eval matched {} but SQL did not: {}",
                    record.id(),
                    sql.sql
                ),
                Eval::NoMatch => assert!(
                    !expected,
                    "SQL matched {} but eval did not: {}",
                    record.id(),
                    sql.sql
                ),
            }
        }
        ids
    }
}
