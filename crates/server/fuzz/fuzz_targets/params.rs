//! Fuzzes the `expand`, `fields` and `sort` strings directly (no URL decoding): the first
//! input byte picks which, the rest is the parameter. `expand` is parsed into paths,
//! `fields` is applied to a record with nested expansions and long text (excerpts), and
//! `sort` is compiled for a guest and a superuser against a users collection and emitted
//! for both dialects. Refusals are fine; a panic or a hang is a bug.

#![no_main]

use std::sync::{Arc, OnceLock};

use domain::collection::{superusers_collection, users_collection};
use domain::{AuthContext, Collection, Dialect, Record, Schema};
use libfuzzer_sys::fuzz_target;
use rules::RequestContext;
use serde_json::json;
use server::records::expand::{MAX_DEPTH, parse_expand};
use server::response::apply_fields;

struct World {
    schema: Arc<Schema>,
    users: Arc<Collection>,
    superuser: AuthContext,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut users = users_collection("");
        users.list_rule = Some(String::new());
        let schema = Arc::new(Schema::new(vec![superusers_collection(""), users]));
        let users = schema.get("users").cloned().expect("users");
        let superuser = AuthContext::Record {
            collection: schema.get("_superusers").cloned().expect("superusers"),
            record: Arc::new(Record::new(serde_json::Map::new())),
            refreshable: true,
        };
        World {
            schema,
            users,
            superuser,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match kind % 3 {
        0 => {
            for path in parse_expand(text) {
                assert!(!path.is_empty() && path.len() <= MAX_DEPTH);
                assert!(path.iter().all(|s| !s.contains(',')));
            }
        }
        1 => {
            let mut record = json!({
                "id": "r1", "title": "<p>Hello &amp; <i>world</i></p><script>x</script>",
                "body": "a&#x41;&#99999999;&bogus; <!-- c --> b", "n": 1.5,
                "expand": {"author": {"id": "u1", "name": "A", "expand": {"x": [{"y": 1}]}}}
            });
            let _ = apply_fields(&mut record, text);
        }
        _ => {
            let world = world();
            for auth in [AuthContext::Guest, world.superuser.clone()] {
                if let Ok(sort) = rules::compile_sort(&world.schema, &world.users, text, &auth) {
                    let ctx = RequestContext::new(auth);
                    let _ = sort.to_sql(Dialect::Sqlite, &ctx);
                    let _ = sort.to_sql(Dialect::Postgres, &ctx);
                }
            }
        }
    }
});
