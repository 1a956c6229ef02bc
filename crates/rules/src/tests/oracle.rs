//! Observations of PocketBase 0.40.6 turned into tests: each filter was run against the real
//! binary (same collections and records as `support`) as a superuser, a guest or a user, and
//! the answer is asserted here against the SQL we emit, run on SQLite. Every run also checks
//! that the in-memory evaluator agrees with SQLite on every record it can decide.

use super::support::Fixture;

/// What the API answered: the matching ids, or a refusal.
#[derive(Debug, PartialEq)]
enum Answer {
    Rows(&'static [&'static str]),
    Bad,
    Forbidden(&'static str),
}

use Answer::{Bad, Forbidden, Rows};

const ALL: &[&str] = &["p1", "p2", "p3", "p4", "p5"];
const REQUEST: &str = "Only superusers can filter by @request.";
const COLLECTION: &str = "Only superusers can filter by @collection.";

fn check(fixture: &Fixture, cases: &[(&str, &str, &str, Answer)]) {
    let mut failures = Vec::new();
    for (role, collection, filter, expected) in cases {
        let got = match fixture.filter(role, collection, filter) {
            Ok(ids) => format!("{ids:?}"),
            Err((400, _)) => "Bad".into(),
            Err((_, message)) => format!("Forbidden({message:?})"),
        };
        let want = match expected {
            Rows(ids) => format!("{ids:?}"),
            Bad => "Bad".into(),
            Forbidden(message) => format!("Forbidden({message:?})"),
        };
        if got != want {
            failures.push(format!(
                "{role} {collection} {filter:?}: got {got}, PocketBase {want}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn syntax_edge_cases() {
    let f = Fixture::new();
    check(
        &f,
        &[
            ("su", "posts", "", Rows(ALL)),
            ("su", "posts", " ", Bad),
            ("su", "posts", "title", Bad),
            ("su", "posts", "title == 'x'", Bad),
            ("su", "posts", "title = 'a' title = 'b'", Bad),
            ("su", "posts", "title = 'x' &&", Bad),
            ("su", "posts", "views = .5", Bad),
            ("su", "posts", "views = 5.", Bad),
            ("su", "posts", "views = - 2.5", Bad),
            ("su", "posts", "views = 1e3", Bad),
            ("su", "posts", "views = +5", Bad),
            ("su", "posts", "views = 1.2.3", Bad),
            ("su", "posts", "views = 10abc", Bad),
            ("su", "posts", "views = 10 &&", Bad),
            ("su", "posts", "&& views = 10", Bad),
            ("su", "posts", "()", Bad),
            ("su", "posts", "(views = 10", Bad),
            ("su", "posts", "views = 10)", Bad),
            ("su", "posts", "#views = 1", Bad),
            ("su", "posts", "_x = 1", Bad),
            ("su", "posts", "views = 'abc", Bad),
            ("su", "posts", "views = -2.5", Rows(&["p4"])),
            ("su", "posts", "views = 007", Rows(&[])),
            ("su", "posts", "views=10", Rows(&["p1"])),
            ("su", "posts", "views>=10&&views<=1000", Rows(&["p1", "p5"])),
            ("su", "posts", "((views = 10))", Rows(&["p1"])),
            ("su", "posts", "views = 10 || (title = 'x')", Rows(&["p1"])),
            ("su", "posts", "title = 'x' // comment", Rows(&[])),
            (
                "su",
                "posts",
                "views > 5 || title = 'x' && views < 3",
                Rows(&["p1", "p5"]),
            ),
            (
                "su",
                "posts",
                "(views > 5 || title = 'x') && views < 3",
                Rows(&[]),
            ),
        ],
    );
}

#[test]
fn literals_and_escapes() {
    let f = Fixture::new();
    check(
        &f,
        &[
            ("su", "posts", "true = 1", Rows(ALL)),
            ("su", "posts", "null = ''", Rows(ALL)),
            ("su", "posts", "1 = 1", Rows(ALL)),
            ("su", "posts", "'a' = 'a'", Rows(ALL)),
            ("su", "posts", "'a' != \"a\"", Rows(&[])),
            ("su", "posts", "title = \"O'Reilly\"", Rows(&[])),
            (
                "su",
                "posts",
                "body ~ \"O'Reilly \\\"q\\\"\"",
                Rows(&["p5"]),
            ),
            ("su", "posts", "body ~ 'O\\'Reilly'", Rows(&["p5"])),
            ("su", "posts", "body ~ '\\\\ back'", Rows(&["p5"])),
            (
                "su",
                "posts",
                "body = 'O\\'Reilly \"q\" \\\\ back'",
                Rows(&["p5"]),
            ),
            (
                "su",
                "posts",
                "body = 'O\\'Reilly \"q\" \\ back'",
                Rows(&["p5"]),
            ),
            (
                "su",
                "posts",
                "body = \"O'Reilly \\\"q\\\" \\ back\"",
                Rows(&["p5"]),
            ),
            ("su", "posts", "body = 'x\\\\'", Rows(&[])),
            ("su", "posts", "body = 'x\\\\' || true = 1", Rows(ALL)),
            ("su", "teams", "name = 5", Rows(&["t50"])),
            ("su", "teams", "name = 5.0", Rows(&["t50"])),
            ("su", "teams", "name = 1.5", Rows(&["t15"])),
            ("su", "teams", "name > 4", Rows(&["T1", "T2", "t5", "t50"])),
            ("su", "teams", "name = '5'", Rows(&["t5"])),
        ],
    );
}

#[test]
fn comparisons_and_null_safety() {
    let f = Fixture::new();
    check(
        &f,
        &[
            ("su", "posts", "title = 'Second'", Rows(&["p2"])),
            ("su", "posts", "title = 'second'", Rows(&["p3"])),
            ("su", "posts", "views > 5", Rows(&["p1", "p5"])),
            ("su", "posts", "views > '5'", Rows(&["p1", "p5"])),
            ("su", "posts", "views = 10", Rows(&["p1"])),
            ("su", "posts", "views = ''", Rows(&[])),
            ("su", "posts", "title = 5", Rows(&[])),
            ("su", "posts", "published = true", Rows(&["p1", "p4"])),
            ("su", "posts", "published = 1", Rows(&["p1", "p4"])),
            ("su", "posts", "published = TRUE", Rows(&["p1", "p4"])),
            ("su", "posts", "published = 'true'", Rows(&[])),
            ("su", "posts", "published = '1'", Rows(&["p1", "p4"])),
            ("su", "posts", "status = ''", Rows(&["p3", "p4"])),
            ("su", "posts", "status = null", Rows(&["p3", "p4"])),
            ("su", "posts", "status != ''", Rows(&["p1", "p2", "p5"])),
            ("su", "posts", "status != 'live'", Rows(&["p2", "p3", "p4"])),
            ("su", "posts", "title = body", Rows(&[])),
            ("su", "posts", "title != body", Rows(ALL)),
            ("su", "posts", "id = null", Rows(&[])),
        ],
    );
}

#[test]
fn like_operator() {
    let f = Fixture::new();
    check(
        &f,
        &[
            ("su", "posts", "title ~ 'sec'", Rows(&["p2", "p3"])),
            ("su", "posts", "title ~ '50%'", Rows(&[])),
            ("su", "posts", "body ~ '50\\%'", Rows(&["p2"])),
            ("su", "posts", "body ~ 'a_b'", Rows(&["p4"])),
            ("su", "posts", "title ~ body", Rows(&["p1"])),
            ("su", "posts", "title !~ 'sec'", Rows(&["p1", "p4", "p5"])),
            ("su", "posts", "title ~ '100%'", Rows(&["p4"])),
            ("su", "posts", "title ~ '100\\%'", Rows(&["p4"])),
            ("su", "posts", "title ~ '%sure'", Rows(&["p4"])),
            ("su", "posts", "body ~ '\\%'", Rows(&["p2"])),
            ("su", "posts", "body ~ '_'", Rows(&["p4"])),
            ("su", "posts", "body ~ '\\_'", Rows(&["p4"])),
            ("su", "posts", "tags ~ 'a'", Rows(&["p1", "p4", "p5"])),
            ("su", "posts", "tags:lower ~ 'A'", Rows(&["p1", "p4", "p5"])),
            // A number (or bool) on the right is turned into text and wrapped in `%`.
            ("su", "posts", "views ~ 10", Rows(&["p1", "p5"])),
            ("su", "posts", "views ~ 2.5", Rows(&["p4"])),
            ("su", "posts", "views ~ -2.5", Rows(&["p4"])),
            ("su", "posts", "views !~ 0", Rows(&["p2", "p4"])),
            ("su", "posts", "views ~ true", Rows(&["p1", "p5"])),
            ("su", "posts", "views ~ 1.0", Rows(&["p1", "p5"])),
            ("su", "posts", "title ~ 1", Rows(&["p4"])),
        ],
    );
}

#[test]
fn modifiers() {
    let f = Fixture::new();
    check(
        &f,
        &[
            ("su", "posts", "tags = 'a'", Rows(&[])),
            ("su", "posts", "tags:each ?= 'a'", Rows(&["p1", "p4", "p5"])),
            ("su", "posts", "tags:each = 'a'", Rows(&["p4"])),
            ("su", "posts", "tags:length > 1", Rows(&["p1", "p5"])),
            ("su", "posts", "title:lower = 'first post'", Rows(&["p1"])),
            ("su", "posts", "views:lower = '10'", Rows(&["p1"])),
            ("su", "posts", "title:upper = 'x'", Bad),
            ("su", "posts", "title:isset = true", Rows(&[])),
            ("su", "posts", "title:changed = true", Rows(&[])),
            (
                "su",
                "posts",
                "title:length > 1",
                Rows(&["p1", "p2", "p3", "p4"]),
            ),
            ("su", "posts", "title:each = 'x'", Rows(&[])),
            (
                "su",
                "posts",
                "author:length = 1",
                Rows(&["p1", "p2", "p4"]),
            ),
            ("su", "posts", "author:each = 'x'", Rows(&[])),
            ("su", "posts", "editors:length = 2", Rows(&["p1"])),
            ("su", "posts", "editors:each ?= 'x'", Rows(&[])),
            ("su", "posts", "editors:each = author", Rows(&["p2", "p3"])),
            ("su", "posts", "published:each = 1", Rows(&["p1", "p4"])),
            ("su", "posts", "meta:each = 1", Rows(&[])),
            ("su", "posts", "meta:length = 2", Rows(&[])),
            ("su", "posts", "views:length = 1", Rows(&[])),
            ("su", "posts", "tags:each:lower = 'a'", Bad),
            // Both sides multi-valued: every pair of items is compared.
            (
                "su",
                "posts",
                "tags:each = tags:each",
                Rows(&["p2", "p3", "p4"]),
            ),
            ("su", "posts", "tags:each != tags:each", Rows(&[])),
            ("su", "posts", "tags:each ?= tags:each", Rows(ALL)),
            (
                "su",
                "posts",
                "editors.name = editors.name",
                Rows(&["p2", "p3", "p4"]),
            ),
            ("su", "posts", "comments_via_post:length = 2", Bad),
            ("su", "posts", "comments_via_post ?= 'x'", Bad),
        ],
    );
}

#[test]
fn relations_and_multi_values() {
    let f = Fixture::new();
    check(
        &f,
        &[
            ("su", "posts", "author.name = 'Alice'", Rows(&["p1"])),
            ("su", "posts", "author.team.name = 'Red'", Rows(&["p1"])),
            ("su", "posts", "author.name = ''", Rows(&["p3", "p5"])),
            (
                "su",
                "posts",
                "author.name != 'Alice'",
                Rows(&["p2", "p3", "p4", "p5"]),
            ),
            ("su", "posts", "editors.name = 'Alice'", Rows(&["p4"])),
            (
                "su",
                "posts",
                "editors.name ?= 'Alice'",
                Rows(&["p1", "p4", "p5"]),
            ),
            (
                "su",
                "posts",
                "editors.name ?!= 'Alice'",
                Rows(&["p1", "p2", "p3", "p5"]),
            ),
            (
                "su",
                "posts",
                "editors.name != 'Alice'",
                Rows(&["p2", "p3"]),
            ),
            (
                "su",
                "posts",
                "editors.team.name ?= 'blue'",
                Rows(&["p1", "p2", "p5"]),
            ),
            (
                "su",
                "posts",
                "author.name = 'Alice' && author.nick = 'Al'",
                Rows(&["p1"]),
            ),
            (
                "su",
                "posts",
                "editors.name ?= 'Alice' && editors.nick ?= ''",
                Rows(&[]),
            ),
            (
                "su",
                "posts",
                "editors.name:lower ?= 'alice'",
                Rows(&["p1", "p4", "p5"]),
            ),
            ("su", "posts", "author.name:lower = 'alice'", Rows(&["p1"])),
            (
                "su",
                "posts",
                "editors.team:length = 1",
                Rows(&["p1", "p2", "p4"]),
            ),
            ("su", "posts", "editors.name:length = 1", Rows(&[])),
            ("su", "posts", "author.team:each = 'x'", Rows(&[])),
            ("su", "posts", "author.team.id = 'x'", Rows(&[])),
            (
                "su",
                "posts",
                "editors.name = author.name",
                Rows(&["p2", "p3"]),
            ),
            (
                "su",
                "posts",
                "editors.name ?= author.name",
                Rows(&["p1", "p2", "p3"]),
            ),
            (
                "su",
                "posts",
                "editors.name = comments_via_post.text",
                Rows(&["p3"]),
            ),
            (
                "su",
                "posts",
                "author.name = editors.name",
                Rows(&["p2", "p3"]),
            ),
            ("su", "posts", "'Alice' = editors.name", Rows(&["p4"])),
            (
                "su",
                "posts",
                "comments_via_post.text = 'c1 on p1'",
                Rows(&[]),
            ),
            (
                "su",
                "posts",
                "comments_via_post.post ?= id",
                Rows(&["p1", "p2"]),
            ),
            (
                "su",
                "posts",
                "comments_via_post.text:length = 2",
                Rows(&[]),
            ),
            (
                "su",
                "posts",
                "links_via_posts.label ?= 'L2'",
                Rows(&["p1"]),
            ),
            ("su", "posts", "links_via_posts.label = 'L1'", Rows(&["p2"])),
            ("su", "posts", "extras_via_post.info = 'E1'", Rows(&["p1"])),
            (
                "su",
                "posts",
                "extras_via_post.info != 'E1'",
                Rows(&["p2", "p3", "p4", "p5"]),
            ),
            (
                "su",
                "posts",
                "@collection.comments.post ?= id",
                Rows(&["p1", "p2"]),
            ),
            ("su", "posts", "@collection.comments.post = id", Rows(&[])),
            (
                "su",
                "posts",
                "@collection.COMMENTS.post ?= id",
                Rows(&["p1", "p2"]),
            ),
            (
                "su",
                "posts",
                "@collection.comments:c.post ?= id && @collection.comments:c.score > 1",
                Rows(&[]),
            ),
            (
                "su",
                "posts",
                "@collection.comments.post ?= id && @collection.comments.score > 1",
                Rows(&[]),
            ),
            ("su", "posts", "@collection.comments.score > 1", Rows(&[])),
            (
                "su",
                "posts",
                "@collection.pbc_1125843985.title ?= 'x'",
                Rows(&[]),
            ),
        ],
    );
}

#[test]
fn names_and_paths() {
    let f = Fixture::new();
    check(
        &f,
        &[
            ("su", "posts", "Title = 'First Post'", Bad),
            ("su", "posts", "TITLE = 'First Post'", Bad),
            ("su", "posts", "@Request.auth.id != ''", Bad),
            ("su", "posts", "collectionName = 'posts'", Bad),
            ("su", "posts", "collectionId != ''", Bad),
            ("su", "posts", "expand.author = 1", Bad),
            ("su", "posts", "author.collectionName = 'users'", Bad),
            ("su", "posts", "a.b.c.d.e.f.g = 1", Bad),
            ("su", "posts", "author.team.id.x = 'x'", Bad),
            ("su", "posts", "editors.team.name.x = 'x'", Bad),
            ("su", "posts", "views.x = 1", Bad),
            ("su", "posts", "tags.x = 1", Bad),
            ("su", "posts", "title.x = 1", Bad),
            ("su", "posts", "author.id.x = 1", Bad),
            ("su", "posts", "meta.k = 1", Rows(&["p1"])),
            ("su", "posts", "meta.arr.1 = 2", Rows(&["p1"])),
            ("su", "posts", "meta.k = 'x'", Rows(&["p2"])),
            ("su", "posts", "meta.s ~ 'h'", Rows(&["p1"])),
            ("su", "posts", "meta.missing = null", Rows(ALL)),
            ("su", "posts", "meta = null", Rows(&["p3"])),
            ("su", "posts", "meta.a.b.c.d.e.f.g.h = 1", Rows(&[])),
            ("su", "posts", "meta.arr.-1 = 1", Bad),
            ("su", "posts", "meta.0 = 1", Rows(&["p5"])),
            ("su", "posts", "meta.a-b = 1", Bad),
            // Modifiers are read only off the json field's own name: after it, a segment
            // keeps its letters, digits and `_` (`s:lower` is the key `slower`).
            ("su", "posts", "meta.s:lower = 'hi'", Rows(&[])),
            ("su", "posts", "meta.s:lower = null", Rows(ALL)),
            ("su", "posts", "meta.arr:length = null", Rows(ALL)),
            ("su", "posts", "meta.arr:each > 0", Rows(&[])),
            ("su", "posts", "meta.s:upper = 'x'", Rows(&[])),
            ("su", "posts", "meta.k:x:y = null", Rows(ALL)),
            ("su", "posts", "meta.:k = 1", Rows(&["p1"])),
            ("su", "posts", "meta.k: = 1", Bad),
            ("su", "posts", "meta.: = 1", Bad),
            ("su", "posts", "meta.:.k = 1", Bad),
            ("su", "posts", "meta:lower.k = 1", Bad),
            ("su", "posts", "meta:upper = 1", Bad),
            ("su", "posts", "meta:lower = null", Rows(&["p3"])),
            ("su", "posts", "meta:length = null", Rows(&["p3"])),
            ("su", "posts", "meta.00 = 1", Rows(&["p5"])),
            ("su", "posts", "meta.:0 = 1", Rows(&[])),
            ("su", "posts", "meta.arr.1:x = 2", Rows(&[])),
            ("su", "posts", "title:lower:upper = 'x'", Bad),
            ("su", "posts", "author.name:lower = 'alice'", Rows(&["p1"])),
            ("su", "posts", "loc.lon > 23", Rows(&["p1", "p4"])),
            ("su", "posts", "loc.x = 1", Rows(&[])),
            ("su", "posts", "loc.lon.x = 1", Rows(&[])),
            ("su", "posts", "@nope = 1", Bad),
        ],
    );
}

#[test]
fn functions_and_macros() {
    let f = Fixture::new();
    check(
        &f,
        &[
            (
                "su",
                "posts",
                "geoDistance(loc.lon, loc.lat, 23.5, 42.1) < 1",
                Rows(&["p1", "p4"]),
            ),
            ("su", "posts", "geoDistance(1,2,3,4) > 0", Rows(ALL)),
            ("su", "posts", "geoDistance(1 ,2, 3 , 4 ) > 0", Rows(ALL)),
            ("su", "posts", "GEODISTANCE(1,2,3,4) > 0", Bad),
            ("su", "posts", "geoDistance('1',2,3,4) > 0", Bad),
            ("su", "posts", "geoDistance (1,2,3,4) > 0", Bad),
            (
                "su",
                "posts",
                "geoDistance(loc.lon, loc.lat, @request.query.x, 1) > 0",
                Rows(&[]),
            ),
            (
                "su",
                "posts",
                "strftime('%Y', publishedAt) = '2024'",
                Rows(&["p1"]),
            ),
            (
                "su",
                "posts",
                "strftime(\"%Y\", publishedAt) = \"2024\"",
                Rows(&["p1"]),
            ),
            (
                "su",
                "posts",
                "strftime('%Y', '2024-01-01') = '2024'",
                Rows(ALL),
            ),
            ("su", "posts", "strftime('%Y', 123) = '1970'", Rows(&[])),
            (
                "su",
                "posts",
                "strftime('%Y-%m', publishedAt, 'start of month', '+1 month') = '2024-02'",
                Rows(&["p1"]),
            ),
            (
                "su",
                "posts",
                "strftime('%Y', publishedAt, title) = '2024'",
                Bad,
            ),
            (
                "su",
                "posts",
                "strftime('%Y', geoDistance(1,2,3,4)) = '1970'",
                Bad,
            ),
            (
                "su",
                "posts",
                "'2024' = strftime('%Y', publishedAt)",
                Rows(&["p1"]),
            ),
            (
                "su",
                "posts",
                "strftime('%Y', publishedAt) = strftime('%Y', created)",
                Rows(&[]),
            ),
            ("su", "posts", "strftime() = 1", Bad),
            (
                "su",
                "posts",
                "strftime('%Y', publishedAt,) = '2024'",
                Rows(&["p1"]),
            ),
            (
                "su",
                "posts",
                "editors.name ?= strftime('%Y', publishedAt)",
                Rows(&["p3"]),
            ),
            (
                "su",
                "posts",
                "strftime('%Y', comments_via_post.text) ?= '1'",
                Rows(&[]),
            ),
            ("su", "posts", "publishedAt < @now", Rows(ALL)),
            (
                "su",
                "posts",
                "created > @yesterday && @weekday >= 0",
                Rows(ALL),
            ),
            ("su", "posts", "@now = @now", Rows(ALL)),
            (
                "su",
                "posts",
                "@todayStart <= @now && @todayEnd >= @now && @monthStart < @monthEnd && @yearStart < @yearEnd",
                Rows(ALL),
            ),
            (
                "su",
                "posts",
                "@hour >= 0 && @minute >= 0 && @second >= 0 && @day >= 1 && @month >= 1 && @year > 2000",
                Rows(ALL),
            ),
        ],
    );
}

#[test]
fn request_values_for_superusers() {
    let f = Fixture::new();
    check(
        &f,
        &[
            ("su", "posts", "@request.auth.id != ''", Rows(ALL)),
            (
                "su",
                "posts",
                "@request.auth.email = 'admin@example.com'",
                Rows(ALL),
            ),
            (
                "su",
                "posts",
                "@request.auth.collectionName = '_superusers'",
                Rows(ALL),
            ),
            ("su", "posts", "@request.auth.nope = null", Rows(ALL)),
            ("su", "posts", "@request.query.perPage = 500", Rows(&[])),
            ("su", "posts", "@request.query.filter ~ 'query'", Rows(ALL)),
            ("su", "posts", "@request.headers.x_foo = null", Rows(ALL)),
            ("su", "posts", "@request.method = 'GET'", Rows(ALL)),
            ("su", "posts", "@request.context = 'default'", Rows(ALL)),
            ("su", "posts", "@request.body.title = null", Rows(ALL)),
            (
                "su",
                "posts",
                "@request.body.title:isset = false",
                Rows(ALL),
            ),
            (
                "su",
                "posts",
                "@request.query.perPage:isset = true",
                Rows(ALL),
            ),
            (
                "su",
                "posts",
                "@request.query.perPage:lower = '500'",
                Rows(ALL),
            ),
            ("su", "posts", "@request.nope = 1", Bad),
            ("su", "posts", "@request.auth.verified = false", Rows(&[])),
            (
                "su",
                "posts",
                "@request.auth.emailVisibility = false",
                Rows(ALL),
            ),
            ("su", "posts", "@request.auth.team.name = 'Red'", Rows(&[])),
            ("su", "posts", "@request.auth.id = author", Rows(&[])),
            ("su", "posts", "editors ?= @request.auth.id", Rows(&[])),
            ("su", "posts", "@request.auth.id:lower = ''", Rows(&[])),
            ("su", "posts", "@request.headers.x_nope ~ ''", Rows(&[])),
            ("su", "posts", "@request.query.nope ~ ''", Rows(&[])),
            ("su", "posts", "@request.body.nope ~ ''", Rows(&[])),
            ("su", "posts", "@request.auth.nope ~ ''", Rows(&[])),
            (
                "su",
                "posts",
                "@request.query.nope = @request.query.nope2",
                Rows(ALL),
            ),
        ],
    );
}

#[test]
fn non_superuser_restrictions() {
    let f = Fixture::new();
    let mut cases = Vec::new();
    for role in ["guest", "alice"] {
        cases.extend([
            (role, "posts", "@request.auth.id = ''", Forbidden(REQUEST)),
            (role, "posts", "title = '@request.x'", Forbidden(REQUEST)),
            (
                role,
                "posts",
                "title = '@collection.x'",
                Forbidden(COLLECTION),
            ),
            (role, "posts", "title ~ \"@request\"", Rows(&[])),
            (
                role,
                "posts",
                "@collection.comments.post ?= id",
                Forbidden(COLLECTION),
            ),
            (
                role,
                "posts",
                "@collection.x = 1 && @request.x = 1",
                Forbidden(COLLECTION),
            ),
            (
                role,
                "posts",
                "@request.x = 1 && @collection.x = 1",
                Forbidden(COLLECTION),
            ),
            (role, "posts", "secret = 's1'", Bad),
            (role, "posts", "author.note = 'n-alice'", Bad),
            (role, "posts", "p.code = 'p1'", Bad),
            (role, "posts", "p.code = ''", Bad),
            (role, "posts", "p.code != 'p1'", Bad),
            (role, "posts", "author.name = ''", Rows(&["p3", "p5"])),
            (role, "posts", "author.name != 'Alice'", Rows(&["p3", "p5"])),
            (
                role,
                "posts",
                "comments_via_post.text ?= 'hello'",
                Rows(&["p2"]),
            ),
        ]);
    }
    cases.extend([
        ("guest", "posts", "author.name = 'Alice'", Rows(&[])),
        ("guest", "posts", "editors.name ?= 'Alice'", Rows(&[])),
        (
            "guest",
            "posts",
            "author.email = 'alice@example.com'",
            Rows(&[]),
        ),
        ("guest", "posts", "author.email != ''", Rows(&[])),
        (
            "guest",
            "posts",
            "editors.email ?= 'bob@example.com'",
            Rows(&[]),
        ),
        ("guest", "posts", "author.team.name = 'Red'", Rows(&[])),
        ("alice", "posts", "author.name = 'Alice'", Rows(&["p1"])),
        (
            "alice",
            "posts",
            "editors.name ?= 'Alice'",
            Rows(&["p1", "p4", "p5"]),
        ),
        ("alice", "posts", "editors.name = 'Alice'", Rows(&["p4"])),
        ("alice", "posts", "editors.name != 'Alice'", Rows(&["p3"])),
        (
            "alice",
            "posts",
            "author.email = 'alice@example.com'",
            Rows(&["p1"]),
        ),
        (
            "alice",
            "posts",
            "author.email = 'bob@example.com'",
            Rows(&[]),
        ),
        ("alice", "posts", "author.email != ''", Rows(&["p1"])),
        (
            "alice",
            "posts",
            "editors.email ?= 'bob@example.com'",
            Rows(&[]),
        ),
        ("alice", "posts", "author.team.name = 'Red'", Rows(&["p1"])),
        (
            "alice",
            "posts",
            "author.team.name = 'Red' || editors.nick = 'x'",
            Rows(&["p1"]),
        ),
        (
            "bob",
            "posts",
            "author.email = 'bob@example.com'",
            Rows(&[]),
        ),
        ("bob", "users", "email = 'bob@example.com'", Rows(&[])),
        ("bob", "users", "email != ''", Rows(&[])),
        ("bob", "users", "team.name != ''", Rows(&["bob"])),
    ]);
    check(&f, &cases);
}

#[test]
fn relation_hops_apply_the_target_list_rule() {
    let f = Fixture::with_comments_rule(Some("author = @request.auth.id"));
    check(
        &f,
        &[
            (
                "alice",
                "posts",
                "comments_via_post.text ?= 'hello'",
                Rows(&["p2"]),
            ),
            (
                "alice",
                "posts",
                "comments_via_post.text ?= 'c2 on p1'",
                Rows(&[]),
            ),
            (
                "alice",
                "posts",
                "comments_via_post.text = 'c1 on p1'",
                Rows(&[]),
            ),
            (
                "alice",
                "posts",
                "comments_via_post.author.name ?= 'Bob'",
                Rows(&[]),
            ),
            // Superusers and rules are not restricted.
            (
                "su",
                "posts",
                "comments_via_post.text ?= 'c2 on p1'",
                Rows(&["p1"]),
            ),
        ],
    );
    // In a rule, an `@request.auth` json field's sub-path reads as a record's does.
    for (rule, alice, bob) in [
        ("@request.auth.prefs.s:lower = 'x'", true, false),
        ("@request.auth.prefs.arr:length = null", true, true),
        ("@request.auth.prefs.s = 'X'", false, true),
        ("@request.auth.prefs:lower = null", false, false),
    ] {
        let f = Fixture::with_comments_rule(Some(rule));
        let rows = |sees: bool| Rows(if sees { &["c1"] } else { &[] });
        check(
            &f,
            &[
                ("alice", "comments", "id = 'c1'", rows(alice)),
                ("bob", "comments", "id = 'c1'", rows(bob)),
            ],
        );
    }
    let locked = Fixture::with_comments_rule(None);
    check(
        &locked,
        &[("alice", "posts", "comments_via_post.text ?= 'hello'", Bad)],
    );
}

#[test]
fn sorting_through_relations() {
    let f = Fixture::new();
    let cases: &[(&str, &str, Answer)] = &[
        ("su", "author.name", Rows(&["p3", "p5", "p1", "p2", "p4"])),
        ("su", "-author.name", Rows(&["p4", "p2", "p1", "p3", "p5"])),
        ("su", "editors.name", Rows(&["p3", "p1", "p4", "p5", "p2"])),
        ("su", "meta.k", Rows(&["p3", "p5", "p1", "p4", "p2"])),
        ("su", "-title:lower", Rows(&["p2", "p3", "p1", "p4", "p5"])),
        (
            "su",
            "comments_via_post.score",
            Rows(&["p3", "p4", "p5", "p1", "p2"]),
        ),
        ("su", "secret", Rows(&["p2", "p3", "p4", "p5", "p1"])),
        ("su", "@request.auth.id", Bad),
        ("su", "author.email", Rows(&["p3", "p5", "p1", "p2", "p4"])),
        ("guest", "author.name", Rows(&["p3", "p5"])),
        ("guest", "-author.name", Rows(&["p3", "p5"])),
        ("guest", "editors.name", Rows(&["p3"])),
        ("guest", "meta.k", Rows(&["p3", "p5", "p1", "p4", "p2"])),
        (
            "guest",
            "-title:lower",
            Rows(&["p2", "p3", "p1", "p4", "p5"]),
        ),
        (
            "guest",
            "comments_via_post.score",
            Rows(&["p3", "p4", "p5", "p1", "p2"]),
        ),
        ("guest", "secret", Bad),
        ("guest", "@request.auth.id", Forbidden(REQUEST)),
        ("guest", "author.email", Rows(&["p3", "p5"])),
        ("alice", "author.name", Rows(&["p3", "p5", "p1"])),
        ("alice", "-author.name", Rows(&["p1", "p3", "p5"])),
        ("alice", "editors.name", Rows(&["p3", "p1", "p4", "p5"])),
        ("alice", "author.email", Rows(&["p3", "p5", "p1"])),
    ];
    let mut failures = Vec::new();
    for (role, sort, expected) in cases {
        let got = match f.sort(role, "posts", sort) {
            Ok(ids) => format!("{ids:?}"),
            Err((400, _)) => "Bad".into(),
            Err((_, message)) => format!("Forbidden({message:?})"),
        };
        let want = match expected {
            Rows(ids) => format!("{ids:?}"),
            Bad => "Bad".into(),
            Forbidden(message) => format!("Forbidden({message:?})"),
        };
        if got != want {
            failures.push(format!("{role} sort={sort}: got {got}, PocketBase {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
