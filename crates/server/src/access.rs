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
//!   superusers may act), or [`decide`] to decide a rule for one record — in memory when it
//!   can, else in SQL — which every check of a rule against a record goes through (the
//!   records API, the write pipeline, sign-ins, realtime).
//!
//! Client `filter`/`sort` text is compiled per request with [`compile_filter`] and
//! [`compile_sort`], which map the language's refusals to PocketBase's status codes.

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use domain::{
    AuthContext, Collection, Dialect, Record, RecordQuery, Schema, SqlFragment, Store, StoreError,
};
use rules::{
    CollectionRules, Compiled, CompiledSort, Eval, Mode, RequestContext, Rule, RuleOutcome,
};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::state::rules_cache::{CompiledRules, RulesCache, SignInRules};

/// The compiled rules of `collection` (a collection of `schema`), from the cache or compiled
/// now (see [`RulesCache`]).
fn compiled(
    cache: &RulesCache,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
) -> Arc<CompiledRules> {
    cache.get_or_compile(schema, collection, || CompiledRules {
        api: Arc::new(compile_rules(schema, collection)),
        sign_in: Arc::new(compile_sign_in_rules(schema, collection)),
    })
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

fn compile_sign_in_rules(schema: &Arc<Schema>, collection: &Arc<Collection>) -> SignInRules {
    let Some(options) = collection.auth.as_ref() else {
        return SignInRules::default();
    };
    let rule = |text: Option<&str>, which: &str| match Rule::compile(schema, collection, text) {
        Ok(rule) => Some(rule),
        Err(error) => {
            tracing::warn!(collection = %collection.name, rule = which, %error, "stored sign-in rule does not compile");
            None
        }
    };
    SignInRules {
        auth: rule(options.auth_rule.as_deref(), "authRule"),
        mfa: rule(Some(options.mfa.rule.trim()), "mfa.rule"),
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
        Arc::clone(&compiled(&self.rules_cache, &schema, &current).api)
    }

    /// The compiled sign-in rules of `collection` in the current schema.
    pub fn sign_in_rules(&self, collection: &Arc<Collection>) -> Arc<SignInRules> {
        let schema = self.schema();
        let current = schema
            .get_by_id(&collection.id)
            .cloned()
            .unwrap_or_else(|| Arc::clone(collection));
        Arc::clone(&compiled(&self.rules_cache, &schema, &current).sign_in)
    }
}

/// The compiled rules of `collection`, which must belong to `schema`.
pub fn collection_rules(
    state: &AppState,
    schema: &Arc<Schema>,
    collection: &Arc<Collection>,
) -> Arc<CollectionRules> {
    Arc::clone(&compiled(&state.rules_cache, schema, collection).api)
}

/// A request's headers, for the rules to read when they ask (a clone of the map shares the
/// values' bytes).
struct RequestHeaders(HeaderMap);

impl rules::HeaderSource for RequestHeaders {
    fn for_each_pair(&self, each: &mut dyn FnMut(&str, &str)) {
        for (name, value) in &self.0 {
            if let Ok(value) = value.to_str() {
                each(name.as_str(), value);
            }
        }
    }
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
    let mut ctx = RequestContext::new(auth.clone())
        .with_method(method.as_str())
        .with_header_source(Arc::new(RequestHeaders(headers.clone())));
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

/// What a rule is asked about: one record of `collection`, and whether it is stored.
#[derive(Clone, Copy)]
pub struct Question<'a> {
    pub rule: &'a Rule,
    /// A client filter that must hold as well (a realtime subscription's `filter`).
    pub filter: Option<&'a Compiled>,
    pub collection: &'a Arc<Collection>,
    /// A stored record, or (with `stored: false`) a row that is not stored: the would-be row
    /// of a create, a record created earlier in the same batch, a deleted record's last state.
    pub record: &'a Record,
    pub stored: bool,
}

/// What [`decide`] may do when memory alone cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlCheck {
    /// Nothing: answer [`Decision::NeedsSql`] (the realtime fan-out, which must not wait).
    Never,
    /// Ask the store; a predicate not decided within the query timeout does not hold (a rule
    /// lookup that fails hides the record).
    Lenient,
    /// Ask the store; a predicate not decided in time is [`Decision::Undecided`], for checks
    /// where "does not hold" is the permissive answer (whether a sign-in needs MFA).
    Strict,
}

/// A rule's answer for one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The rule holds; with the predicate when SQL decided it (a write re-checks it as its
    /// guard inside the transaction).
    Allow(Option<SqlFragment>),
    Deny,
    /// Only SQL can tell, and [`SqlCheck::Never`] was asked for.
    NeedsSql(SqlFragment),
    /// [`SqlCheck::Strict`] and the store did not decide within the query timeout.
    Undecided,
}

impl Decision {
    pub fn allows(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// The one place a rule is decided for a record: in memory when the rule (and filter) read
/// only the row and the request, else in SQL — the stored row looked up under the predicate,
/// or an unsaved row offered in place of the table (`Store::matches_unsaved`). Superusers
/// pass every rule; a superusers-only rule denies everyone else.
pub async fn decide(
    store: &dyn Store,
    question: Question<'_>,
    ctx: &RequestContext,
    sql: SqlCheck,
) -> Result<Decision, StoreError> {
    let Question {
        rule,
        filter,
        collection,
        record,
        stored,
    } = question;
    let dialect = store.dialect();
    let mut predicates = Vec::new();
    match rule.check_record(record, ctx) {
        Eval::Match => {}
        Eval::NoMatch => return Ok(Decision::Deny),
        Eval::NeedsSql => match rule.outcome(dialect, ctx) {
            RuleOutcome::SuperusersOnly => return Ok(Decision::Deny),
            RuleOutcome::Allow => {}
            RuleOutcome::Filter(predicate) => predicates.push(predicate),
        },
    }
    if let Some(filter) = filter {
        match filter.eval(record, ctx) {
            Eval::Match => {}
            Eval::NoMatch => return Ok(Decision::Deny),
            Eval::NeedsSql => predicates.push(filter.to_sql(dialect, ctx)),
        }
    }
    let Some(predicate) = SqlFragment::and_all(predicates) else {
        return Ok(Decision::Allow(None));
    };
    let holds = match sql {
        SqlCheck::Never => return Ok(Decision::NeedsSql(predicate)),
        _ if !stored => {
            store
                .matches_unsaved(
                    Arc::clone(collection),
                    record.data.clone(),
                    predicate.clone(),
                )
                .await?
        }
        SqlCheck::Lenient => store
            .get_record(Arc::clone(collection), record.id(), vec![predicate.clone()])
            .await?
            .is_some(),
        SqlCheck::Strict => match store
            .record_satisfies(Arc::clone(collection), record.id(), vec![predicate.clone()])
            .await
        {
            Ok(holds) => holds,
            Err(StoreError::TimedOut) => return Ok(Decision::Undecided),
            Err(error) => return Err(error),
        },
    };
    Ok(if holds {
        Decision::Allow(Some(predicate))
    } else {
        Decision::Deny
    })
}

/// [`decide`] for many stored records of `collection` at once: in memory for each, then one
/// query for all those that need SQL (the predicate depends on the request, not the row).
pub async fn decide_stored_many(
    store: &dyn Store,
    rule: &Rule,
    collection: &Arc<Collection>,
    records: &[Record],
    ctx: &RequestContext,
) -> Result<Vec<bool>, StoreError> {
    let mut allowed = vec![false; records.len()];
    let mut unsure: Vec<String> = Vec::new();
    let mut predicate = None;
    for (i, record) in records.iter().enumerate() {
        let question = Question {
            rule,
            filter: None,
            collection,
            record,
            stored: true,
        };
        match decide(store, question, ctx, SqlCheck::Never).await? {
            Decision::Allow(_) => allowed[i] = true,
            Decision::Deny | Decision::Undecided => {}
            Decision::NeedsSql(needed) => {
                unsure.push(record.id().to_owned());
                predicate.get_or_insert(needed);
            }
        }
    }
    if let Some(predicate) = predicate {
        let ids = store.field_holds_any(collection, "id", &unsure);
        let page = store
            .list_records(RecordQuery {
                collection: Arc::clone(collection),
                filters: vec![predicate, ids],
                sort: Vec::new(),
                page: 1,
                per_page: unsure.len() as u64,
                with_total: false,
            })
            .await?;
        let found: std::collections::HashSet<&str> = page.items.iter().map(Record::id).collect();
        for (i, record) in records.iter().enumerate() {
            if found.contains(record.id()) {
                allowed[i] = true;
            }
        }
    }
    Ok(allowed)
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
    .with_detail(error)
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
        let first = compiled(&cache, &schema, &collection).api.clone();
        let again = compiled(&cache, &schema, &collection).api.clone();
        assert!(Arc::ptr_eq(&first, &again), "one compilation per snapshot");
        let next = Arc::new(Schema::new(vec![(*collection).clone()]));
        let next_collection = next.get("users").cloned().expect("users");
        let recompiled = compiled(&cache, &next, &next_collection).api.clone();
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
