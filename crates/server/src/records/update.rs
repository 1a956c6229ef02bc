//! `PATCH /api/collections/{collection}/records/{id}`: changes the sent fields. The changes
//! (modifiers included) are applied to the record as it is inside the write transaction, so
//! concurrent `views+` requests never lose an increment.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use domain::values::{self, ApplyContext, RecordInput};
use domain::{Collection, Record, StoreError, UpdateFn, WriteOp, WriteResult};
use rules::{Eval, RequestContext, Rule, RuleOutcome};
use serde_json::Value;

use super::common::{
    RequestMeta, body_values, read_body, refuse_superusers_only, refuse_view, respond_with_record,
    target_for_write,
};
use super::query::QueryParams;
use super::write;
use crate::access;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::state::SharedState;

const FAILED: &str = "Failed to update record.";

pub async fn update(
    State(state): State<SharedState>,
    Path((collection, id)): Path<(String, String)>,
    Auth(auth): Auth,
    RawQuery(raw_query): RawQuery,
    request: Request,
) -> ApiResult<Json<Value>> {
    let target = target_for_write(&state, &collection)?;
    let collection = &target.collection;
    refuse_view(collection)?;
    let meta = RequestMeta::of(&request);
    let body = read_body(request, &state).await?;
    refuse_superusers_only(&target.rules.update, &auth)?;
    let params = QueryParams::parse(raw_query.as_deref());
    let current = state
        .store
        .get_record(collection.clone(), &id, Vec::new())
        .await?
        .ok_or_else(ApiError::not_found)?;

    let mut input = write::parse_input(collection, &body, &auth);
    let now = domain::time::now();
    let apply_ctx = ApplyContext {
        creating: false,
        now: &now,
    };
    // The rule reads the stored record, and `@request.body` as the record would become.
    let (would_be, _) = values::apply(collection, &current.data, &input, &apply_ctx);
    let body_seen = body_values(collection, &body, &input, &would_be);
    let ctx = access::request_context(
        &auth,
        &meta.method,
        &meta.headers,
        params.pairs(),
        Some(body_seen),
    );
    let dialect = state.store.dialect();
    let guard = access::sql_guard(&target.rules.update, dialect, &ctx)?;
    if !passes(&state, &target.rules.update, collection, &current, &ctx).await? {
        return Err(ApiError::not_found());
    }

    if collection.is_auth() {
        let manager = match &target.rules.manage {
            Some(manage) => passes(&state, manage, collection, &current, &ctx).await?,
            None => auth.is_superuser(),
        };
        let errors = write::auth_form_errors(&body, &input, Some(&current), manager).await;
        if !errors.is_empty() {
            return Err(ApiError::validation(FAILED, errors));
        }
    }
    // Validate against the record as read, so that errors come back before any hashing; the
    // write validates again against the row it actually changes.
    values::build(collection, &current.data, &input, &apply_ctx)
        .map_err(|errors| ApiError::validation(FAILED, errors))?;
    write::hash_passwords(&state, &mut input).await?;

    let results = state
        .store
        .write(vec![WriteOp::Update {
            collection: collection.clone(),
            id,
            guard,
            apply: update_fn(collection.clone(), input, now),
        }])
        .await
        .map_err(|error| ApiError::from_store(error.error, FAILED))?;
    let Some(WriteResult::Updated(record)) = results.into_iter().next() else {
        return Err(ApiError::internal(
            "the store did not report the updated record",
        ));
    };
    respond_with_record(&state, &ctx, collection, record, &params).await
}

/// The change as a function of the current row. An auth record gets a new token key when
/// its password is set or its email changes, which revokes every token issued before.
fn update_fn(collection: Arc<Collection>, input: RecordInput, now: String) -> UpdateFn {
    Box::new(move |record: &Record| {
        let ctx = ApplyContext {
            creating: false,
            now: &now,
        };
        let mut data = values::build(&collection, &record.data, &input, &ctx)
            .map_err(StoreError::Validation)?;
        if collection.is_auth() && !input.touches("tokenKey") {
            let password_set = input.password("password").is_some_and(|p| !p.is_empty());
            let email_changed = data.get("email") != record.data.get("email");
            if password_set || email_changed {
                data.insert(
                    "tokenKey".into(),
                    Value::String(domain::ids::random_alnum(50)),
                );
            }
        }
        Ok(data)
    })
}

/// Whether `record` passes `rule` for this request: in memory when the rule reads only the
/// row and the request, else by looking the row up under the rule's predicate. A
/// superusers-only rule passes for superusers alone.
async fn passes(
    state: &SharedState,
    rule: &Rule,
    collection: &Arc<Collection>,
    record: &Record,
    ctx: &RequestContext,
) -> ApiResult<bool> {
    Ok(match rule.check_record(record, ctx) {
        Eval::Match => true,
        Eval::NoMatch => false,
        Eval::NeedsSql => match rule.outcome(state.store.dialect(), ctx) {
            RuleOutcome::SuperusersOnly => false,
            RuleOutcome::Allow => true,
            RuleOutcome::Filter(predicate) => state
                .store
                .get_record(collection.clone(), record.id(), vec![predicate])
                .await?
                .is_some(),
        },
    })
}
