//! Access control for every path that shows or changes a record: collection rules compiled
//! once per schema snapshot and cached, the per-request [`RequestContext`] they read, and the
//! translation of a rule into PocketBase's answers (403 for a superusers-only rule, a SQL
//! guard or an in-memory decision otherwise).
//!
//! Call sites use three things:
//! - [`collection_rules`] (or [`AppState::collection_rules`]) for the compiled
//!   [`CollectionRules`] of a collection of the current schema;
//! - [`request_context`] to describe the request (`@request.*`);
//! - [`sql_guard`] to turn one rule into a predicate for the store (`Err` 403 when only
//!   superusers may act), or [`rules::Rule::check_record`] to decide in memory.
//!
//! Client `filter`/`sort` text is compiled per request with [`compile_filter`] and
//! [`compile_sort`], which map the language's refusals to PocketBase's status codes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, Method};
use domain::{AuthContext, Collection, Dialect, Schema, SqlFragment};
use rules::{CollectionRules, Compiled, CompiledSort, Mode, RequestContext, Rule, RuleOutcome};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Compiled rules of the collections of one schema snapshot, built lazily per collection.
#[derive(Default)]
pub struct RulesCache {
    slot: Mutex<Option<CacheEntry>>,
}

struct CacheEntry {
    schema: Arc<Schema>,
    by_collection: HashMap<String, Arc<CollectionRules>>,
}

impl RulesCache {
    /// The compiled rules of `collection` (a collection of `schema`). A snapshot other than the
    /// cached one replaces the cache: schema changes always produce a new snapshot.
    pub fn get(&self, schema: &Arc<Schema>, collection: &Arc<Collection>) -> Arc<CollectionRules> {
        {
            let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = slot.as_ref()
                && Arc::ptr_eq(&entry.schema, schema)
                && let Some(found) = entry.by_collection.get(&collection.id)
            {
                return Arc::clone(found);
            }
        }
        // Compiling outside the lock keeps other requests moving; two requests may compile
        // the same rules once each, which is harmless.
        let compiled = Arc::new(compile_rules(schema, collection));
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_mut() {
            Some(entry) if Arc::ptr_eq(&entry.schema, schema) => {
                entry
                    .by_collection
                    .insert(collection.id.clone(), Arc::clone(&compiled));
            }
            _ => {
                *slot = Some(CacheEntry {
                    schema: Arc::clone(schema),
                    by_collection: HashMap::from([(collection.id.clone(), Arc::clone(&compiled))]),
                });
            }
        }
        compiled
    }
}

/// Compiles every rule of `collection`. A stored rule that no longer compiles (the schema it
/// referred to changed) fails closed: it matches no record, for anyone but superusers.
fn compile_rules(schema: &Arc<Schema>, collection: &Arc<Collection>) -> CollectionRules {
    let rule = |text: &Option<String>, which: &str| {
        Rule::compile(schema, collection, text.as_deref()).unwrap_or_else(|error| {
            tracing::warn!(
                collection = %collection.name,
                rule = which,
                %error,
                "stored rule does not compile; it matches nothing"
            );
            never(schema, collection)
        })
    };
    let auth = collection.auth.as_ref();
    CollectionRules {
        list: rule(&collection.list_rule, "listRule"),
        view: rule(&collection.view_rule, "viewRule"),
        create: rule(&collection.create_rule, "createRule"),
        update: rule(&collection.update_rule, "updateRule"),
        delete: rule(&collection.delete_rule, "deleteRule"),
        auth: auth.map(|a| rule(&a.auth_rule, "authRule")),
        manage: auth.map(|a| rule(&a.manage_rule, "manageRule")),
    }
}

/// A rule no record satisfies.
fn never(schema: &Arc<Schema>, collection: &Arc<Collection>) -> Rule {
    Compiled::compile(schema, collection, "1 = 2", Mode::Rule)
        .map(Rule::Expr)
        .unwrap_or(Rule::SuperusersOnly)
}

impl AppState {
    /// The compiled rules of `collection` in the current schema (see [`collection_rules`]).
    pub fn collection_rules(&self, collection: &Arc<Collection>) -> Arc<CollectionRules> {
        let schema = self.schema();
        // A collection object from an older snapshot is looked up again by id, so that the
        // rules always match the schema they are compiled against.
        let current = schema
            .get_by_id(&collection.id)
            .cloned()
            .unwrap_or_else(|| Arc::clone(collection));
        self.rules_cache.get(&schema, &current)
    }
}

/// The compiled rules of `collection`, which must belong to `schema`.
pub fn collection_rules(
    state: &AppState,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
) -> Arc<CollectionRules> {
    state.rules_cache.get(schema, collection)
}

/// Describes one HTTP request for rules: caller, method, headers, query (first value of
/// each name) and, for create/update, the submitted body as canonical field values.
pub fn request_context(
    auth: &AuthContext,
    method: &Method,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: Option<Map<String, Value>>,
) -> RequestContext {
    let mut ctx = RequestContext::new(auth.clone()).with_method(method.as_str());
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            ctx = ctx.with_header(name.as_str(), value);
        }
    }
    for (name, value) in query {
        ctx = ctx.with_query(name, value);
    }
    if let Some(body) = body {
        ctx = ctx.with_body(body);
    }
    ctx
}

/// `rule` as a store guard for this request: `Err` 403 when only superusers may act, `None`
/// when unrestricted, else the predicate the row must satisfy.
pub fn sql_guard(
    rule: &Rule,
    dialect: Dialect,
    ctx: &RequestContext,
) -> ApiResult<Option<SqlFragment>> {
    match rule.outcome(dialect, ctx) {
        RuleOutcome::SuperusersOnly => Err(ApiError::forbidden(
            "Only superusers can perform this action.",
        )),
        RuleOutcome::Allow => Ok(None),
        RuleOutcome::Filter(predicate) => Ok(Some(predicate)),
    }
}

/// A client `filter` (records list, realtime options): `None` when empty. Refusals are
/// PocketBase's 403 for `@request`/`@collection` by non-superusers, the generic 400 else.
pub fn compile_filter(
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    filter: &str,
    auth: &AuthContext,
) -> ApiResult<Option<Compiled>> {
    rules::compile_filter(schema, collection, filter, auth).map_err(filter_error)
}

/// A client `sort`, with the same refusals as [`compile_filter`].
pub fn compile_sort(
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
    sort: &str,
    auth: &AuthContext,
) -> ApiResult<CompiledSort> {
    rules::compile_sort(schema, collection, sort, auth).map_err(filter_error)
}

fn filter_error(error: rules::Error) -> ApiError {
    tracing::debug!(%error, "client filter or sort refused");
    match error.status() {
        403 => ApiError::forbidden(error.api_message()),
        _ => ApiError::bad_request(),
    }
}

#[cfg(test)]
mod tests {
    use domain::collection::users_collection;

    use super::*;

    #[test]
    fn cache_follows_the_schema_snapshot() {
        let mut users = users_collection("");
        users.list_rule = Some("id = @request.auth.id".into());
        let schema = Arc::new(Schema::new(vec![users]));
        let collection = schema.get("users").cloned().expect("users");
        let cache = RulesCache::default();
        let first = cache.get(&schema, &collection);
        let again = cache.get(&schema, &collection);
        assert!(Arc::ptr_eq(&first, &again), "one compilation per snapshot");
        let next = Arc::new(Schema::new(vec![(*collection).clone()]));
        let next_collection = next.get("users").cloned().expect("users");
        let recompiled = cache.get(&next, &next_collection);
        assert!(
            !Arc::ptr_eq(&first, &recompiled),
            "a new snapshot recompiles"
        );
        assert!(matches!(recompiled.list, Rule::Expr(_)));
    }

    #[test]
    fn broken_stored_rules_fail_closed() {
        let mut users = users_collection("");
        users.view_rule = Some("nosuchfield = 1".into());
        let schema = Arc::new(Schema::new(vec![users]));
        let collection = schema.get("users").cloned().expect("users");
        let compiled = compile_rules(&schema, &collection);
        let ctx = RequestContext::new(AuthContext::Guest);
        let guard = sql_guard(&compiled.view, Dialect::Sqlite, &ctx)
            .expect("not superusers-only")
            .expect("a predicate");
        assert!(!guard.sql.is_empty());
        let record = domain::Record::new(domain::values::blank_record(&collection));
        assert_eq!(
            compiled.view.check_record(&record, &ctx),
            rules::Eval::NoMatch
        );
    }

    #[test]
    fn filter_refusals_map_to_pocketbase_statuses() {
        let schema = Arc::new(Schema::new(vec![users_collection("")]));
        let users = schema.get("users").cloned().expect("users");
        let guest = AuthContext::Guest;
        let status = |text: &str| {
            compile_filter(&schema, &users, text, &guest)
                .err()
                .map(|e| (e.status.as_u16(), e.message))
        };
        assert_eq!(
            status("@request.auth.id = ''").map(|s| s.0),
            Some(403),
            "@request by a guest"
        );
        assert_eq!(status("nope = 1").map(|s| s.0), Some(400));
        assert_eq!(status("name = 'x' &&").map(|s| s.0), Some(400));
        assert!(status("name = 'x'").is_none());
        assert!(
            compile_filter(&schema, &users, "", &guest)
                .expect("empty")
                .is_none()
        );
    }
}
